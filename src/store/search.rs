//! Turning what a person or model types into search patterns, the same way for every backend.
//!
//! Names are matched case-insensitively through a lower-cased `search_key`; message text through
//! the full-text index, whose trigram matching needs terms of three characters or more, so
//! shorter terms become substring filters instead.

/// Lower-cases and strips accents, so "Müller", "MULLER" and "müller" compare equal.
pub(crate) fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The folded text a message is found by: its text, caption and file name.
pub(crate) fn message_search_text(parts: [Option<&str>; 3]) -> String {
    let joined: Vec<&str> = parts.into_iter().flatten().collect();
    fold(&joined.join("\n"))
}

/// Lower-cases and joins the given names into one searchable string.
pub(crate) fn fold_key<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut key = String::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if !key.is_empty() {
            key.push('\n');
        }
        key.extend(part.chars().flat_map(char::to_lowercase));
    }
    key
}

/// `%text%` for LIKE, lower-cased, with LIKE's wildcards escaped; `None` for blank input.
pub(crate) fn like_pattern(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.chars().flat_map(char::to_lowercase) {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    Some(pattern)
}

/// A free-text message search: every term must appear (in any order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextQuery {
    terms: Vec<String>,
}

/// Terms shorter than this cannot use the trigram index.
const MIN_INDEXED_CHARS: usize = 3;

impl TextQuery {
    /// Splits on whitespace; a quoted span ("see you soon") stays one term.
    pub(crate) fn parse(text: &str) -> Self {
        let mut terms = Vec::new();
        for (i, chunk) in text.split('"').enumerate() {
            if i % 2 == 1 {
                let phrase = chunk.trim();
                if !phrase.is_empty() {
                    terms.push(phrase.to_owned());
                }
            } else {
                terms.extend(chunk.split_whitespace().map(str::to_owned));
            }
        }
        Self { terms }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    fn long_terms(&self) -> impl Iterator<Item = &String> {
        self.terms
            .iter()
            .filter(|t| t.chars().count() >= MIN_INDEXED_CHARS)
    }

    /// The FTS5 MATCH expression for the indexed terms: each a quoted phrase, all required.
    pub(crate) fn fts5_match(&self) -> Option<String> {
        let phrases: Vec<String> = self
            .long_terms()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect();
        (!phrases.is_empty()).then(|| phrases.join(" AND "))
    }

    /// One accent-folded LIKE pattern per term, for backends that match every term by substring.
    pub(crate) fn folded_like_patterns(&self) -> Vec<String> {
        self.terms
            .iter()
            .filter_map(|t| like_pattern(&fold(t)))
            .collect()
    }

    /// LIKE patterns for the terms too short for the index.
    pub(crate) fn short_terms_like(&self) -> Vec<String> {
        self.terms
            .iter()
            .filter(|t| t.chars().count() < MIN_INDEXED_CHARS)
            .filter_map(|t| like_pattern(t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_pattern(" 50%_off\\ ").unwrap(), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("ÄRGER").unwrap(), "%ärger%");
        assert_eq!(like_pattern("   "), None);
    }

    #[test]
    fn queries_split_into_indexed_and_short_terms() {
        let q = TextQuery::parse("dinner \"at eight\" ok 😀");
        assert_eq!(q.fts5_match().unwrap(), "\"dinner\" AND \"at eight\"");
        assert_eq!(
            q.short_terms_like(),
            vec!["%ok%".to_owned(), "%😀%".to_owned()]
        );
        let q = TextQuery::parse("say \"\"\"hi\"");
        assert!(!q.is_empty());
        assert!(TextQuery::parse("  ").is_empty());
    }

    #[test]
    fn quotes_inside_terms_cannot_break_the_expression() {
        let q = TextQuery::parse("it's a\"b");
        assert_eq!(q.fts5_match().unwrap(), "\"it's\"");
        let q = TextQuery::parse("x\"y\"\"z");
        assert!(
            q.fts5_match()
                .is_none_or(|m| m.matches('"').count() % 2 == 0)
        );
    }

    #[test]
    fn folding_removes_case_and_accents() {
        assert_eq!(
            fold("Grüße an Frau MÜLLER, Ångström"),
            "gruße an frau muller, angstrom"
        );
        assert_eq!(fold("東京タワー"), "東京タワー");
        assert_eq!(
            TextQuery::parse("Müller \"köln\"").folded_like_patterns(),
            ["%muller%", "%koln%"]
        );
    }

    #[test]
    fn keys_fold_case_in_any_script() {
        assert_eq!(
            fold_key(["Ådne ÖSTLUND", "", "ΑΛΈΞΗΣ"]),
            "ådne östlund\nαλέξησ"
        );
    }
}
