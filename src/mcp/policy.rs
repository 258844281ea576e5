//! The safety rules the sending tools obey: which recipients are allowed, which files may be
//! sent, and how typed times are read.
//!
//! A malicious incoming message can try to steer a model into forwarding private chats or files;
//! these checks hold whatever the model was told.

use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::engine::{MediaKind, OutgoingFile};
use crate::jid::Jid;

/// How long after sending WhatsApp lets its sender change a message's text (15 minutes).
pub const EDIT_WINDOW_SECS: i64 = 15 * 60;

/// How long after sending WhatsApp lets its sender delete a message for everyone (about two and
/// a half days; the phone app refuses later deletions too).
pub const DELETE_WINDOW_SECS: i64 = 60 * 60 * 60;

/// A span of seconds in words: "14 min", "3 h", "2 days".
pub fn span(secs: i64) -> String {
    match secs {
        s if s < 2 * 60 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The most answers WhatsApp lets a poll have.
pub const MAX_POLL_OPTIONS: usize = 12;

/// Checks a poll's answers (already trimmed): 2 to [`MAX_POLL_OPTIONS`], none empty, none
/// twice (votes name answers by a hash of their text, so two equal ones could not be told
/// apart).
pub fn poll_options(options: &[String]) -> Result<(), PolicyError> {
    if options.len() < 2 || options.len() > MAX_POLL_OPTIONS {
        return Err(PolicyError::PollSize(options.len()));
    }
    if options.iter().any(String::is_empty) {
        return Err(PolicyError::EmptyAnswer);
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = options.iter().find(|option| !seen.insert(option.as_str())) {
        return Err(PolicyError::AnswerTwice(twice.clone()));
    }
    Ok(())
}

/// Largest file `send_file` and `send_audio_message` will read (WhatsApp's own document limit
/// is higher, but nothing an assistant sends needs more).
pub const MAX_OUTGOING_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Why a policy check refused its input; each message says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("mcp.allowed_recipients: {0}")]
    Recipient(crate::jid::JidError),
    #[error("media_path is empty: give the name of a file in the outbox directory")]
    EmptyPath,
    #[error(
        "the outbox directory {} is not usable ({source}): the server's administrator must create it; files to send go there",
        dir.display()
    )]
    Outbox {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{name}: no such file; put the file into the outbox directory {} and pass its name",
        outbox.display()
    )]
    NoSuchFile { name: String, outbox: PathBuf },
    #[error("{name}: cannot be read ({source})")]
    Unreadable {
        name: String,
        source: std::io::Error,
    },
    #[error(
        "{name} is outside the outbox directory {}: only files in that directory can be sent (symlinks are followed before this check); copy the file there first",
        outbox.display()
    )]
    Outside { name: String, outbox: PathBuf },
    #[error(
        "{name} is outside the outbox directory {}: it was moved while being checked",
        outbox.display()
    )]
    Moved { name: String, outbox: PathBuf },
    #[error("{0} is not a regular file")]
    NotRegular(String),
    #[error(
        "{name} is {mib} MiB; the limit is {} MiB",
        MAX_OUTGOING_FILE_BYTES / (1024 * 1024)
    )]
    TooLarge { name: String, mib: u64 },
    #[error(
        "{field}: {input:?} is not an ISO-8601 time; use e.g. 2025-01-31T18:00:00Z, 2025-01-31T18:00:00+01:00 or 2025-01-31"
    )]
    Time { field: String, input: String },
    #[error("options: a poll needs 2 to {MAX_POLL_OPTIONS} answers, not {0}")]
    PollSize(usize),
    #[error("options: an answer is empty")]
    EmptyAnswer,
    #[error("options: {0:?} is there twice")]
    AnswerTwice(String),
}

/// The recipients the server may send to; empty means anyone.
#[derive(Clone, Debug, Default)]
pub struct RecipientPolicy {
    allowed: Vec<Jid>,
}

impl RecipientPolicy {
    /// Parses the configured entries (phone numbers or JIDs); unparsable entries are reported
    /// rather than silently dropped, because a typo would otherwise widen nothing but confuse.
    pub fn new(entries: &[String]) -> Result<Self, PolicyError> {
        let allowed = entries
            .iter()
            .map(|entry| Jid::parse(entry).map_err(PolicyError::Recipient))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { allowed })
    }

    pub fn is_restricted(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// True when `canonical` (a JID already mapped from LID to phone where known) or one of its
    /// other known addresses is on the list.
    pub fn allows(&self, addresses: &[&Jid]) -> bool {
        self.allowed.is_empty() || addresses.iter().any(|jid| self.allowed.contains(jid))
    }
}

/// Resolves `requested` to a regular file inside `outbox`, following symlinks first so a link
/// pointing out of the outbox is refused, and checks its size.
pub fn outbox_file(outbox: &Path, requested: &str) -> Result<OutgoingFile, PolicyError> {
    let requested = requested.trim();
    if requested.is_empty() {
        return Err(PolicyError::EmptyPath);
    }
    let root = outbox
        .canonicalize()
        .map_err(|source| PolicyError::Outbox {
            dir: outbox.to_path_buf(),
            source,
        })?;
    let unreadable = |source: std::io::Error| PolicyError::Unreadable {
        name: requested.to_owned(),
        source,
    };
    let candidate = {
        let path = Path::new(requested);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            root.join(path)
        }
    };
    let resolved = candidate.canonicalize().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            PolicyError::NoSuchFile {
                name: requested.to_owned(),
                outbox: root.clone(),
            }
        } else {
            unreadable(err)
        }
    })?;
    if !resolved.starts_with(&root) {
        return Err(PolicyError::Outside {
            name: requested.to_owned(),
            outbox: root,
        });
    }
    // Opened now and only ever read through this handle, so the path cannot be swapped for
    // something else between this check and the send. The handle's real location is checked
    // again: a component replaced by a symlink after `canonicalize` shows up here. Non-blocking,
    // so a FIFO planted in the outbox cannot stall the call.
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&resolved)
        .map_err(unreadable)?;
    let opened =
        std::fs::read_link(format!("/proc/self/fd/{}", handle.as_raw_fd())).map_err(unreadable)?;
    if !opened.starts_with(&root) {
        return Err(PolicyError::Moved {
            name: requested.to_owned(),
            outbox: root,
        });
    }
    let metadata = handle.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(PolicyError::NotRegular(requested.to_owned()));
    }
    if metadata.len() > MAX_OUTGOING_FILE_BYTES {
        return Err(PolicyError::TooLarge {
            name: requested.to_owned(),
            mib: metadata.len().div_ceil(1024 * 1024),
        });
    }
    let file_name = resolved
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    Ok(OutgoingFile::new(
        handle,
        resolved.clone(),
        file_name,
        mime_for(&resolved).to_owned(),
        MAX_OUTGOING_FILE_BYTES,
    ))
}

/// The media kind a file is sent as.
pub fn kind_of(file: &OutgoingFile) -> MediaKind {
    MediaKind::from_mime(&file.mime_type)
}

/// The MIME type of a file, from its extension; unknown types travel as documents.
pub fn mime_for(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" => "video/mp4",
        "3gp" => "video/3gpp",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "wav" => "audio/wav",
        "amr" => "audio/amr",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// Reads an ISO-8601 time (with offset, without one meaning UTC, or a bare date at midnight
/// UTC) into Unix seconds.
pub fn parse_time(field: &str, input: &str) -> Result<i64, PolicyError> {
    let text = input.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc().timestamp());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp());
    }
    Err(PolicyError::Time {
        field: field.to_owned(),
        input: input.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_usual_iso_spellings() {
        assert_eq!(
            parse_time("after", "2025-01-31T18:00:00Z").ok(),
            Some(1_738_346_400)
        );
        assert_eq!(
            parse_time("after", "2025-01-31T19:00:00+01:00").ok(),
            Some(1_738_346_400)
        );
        assert_eq!(
            parse_time("after", "2025-01-31T18:00:00").ok(),
            Some(1_738_346_400)
        );
        assert_eq!(parse_time("after", "2025-01-31").ok(), Some(1_738_281_600));
        let err = parse_time("before", "last tuesday")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("before:") && err.contains("ISO-8601"),
            "{err}"
        );
    }

    #[test]
    fn the_allow_list_compares_canonical_jids() {
        let policy = RecipientPolicy::new(&["+31 6 1111 1111".to_owned()]).unwrap();
        let same = Jid::parse("31611111111@s.whatsapp.net").unwrap();
        let device = Jid::parse("31611111111:7@s.whatsapp.net").unwrap();
        let other = Jid::parse("31622222222").unwrap();
        assert!(policy.allows(&[&same]));
        assert!(policy.allows(&[&device]));
        assert!(!policy.allows(&[&other]));
        assert!(RecipientPolicy::new(&["not a number".to_owned()]).is_err());
        assert!(RecipientPolicy::default().allows(&[&other]));
    }

    #[test]
    fn files_outside_the_outbox_are_refused_even_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        std::fs::create_dir(&outbox).unwrap();
        std::fs::write(outbox.join("photo.jpg"), b"jpeg").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), outbox.join("link.txt")).unwrap();

        let ok = outbox_file(&outbox, "photo.jpg").unwrap();
        assert_eq!(ok.mime_type, "image/jpeg");
        assert_eq!(ok.file_name, "photo.jpg");
        assert_eq!(kind_of(&ok), MediaKind::Image);
        assert!(outbox_file(&outbox, outbox.join("photo.jpg").to_str().unwrap()).is_ok());

        for escape in [
            "../secret.txt",
            "link.txt",
            dir.path().join("secret.txt").to_str().unwrap(),
            "/etc/passwd",
        ] {
            let err = outbox_file(&outbox, escape).unwrap_err().to_string();
            assert!(err.contains("outside the outbox"), "{escape}: {err}");
        }
        let missing = outbox_file(&outbox, "nope.pdf").unwrap_err().to_string();
        assert!(missing.contains("no such file"), "{missing}");
        let dir_err = outbox_file(&outbox, ".").unwrap_err().to_string();
        assert!(dir_err.contains("not a regular file"), "{dir_err}");
    }

    #[tokio::test]
    async fn the_checked_file_is_sent_even_if_its_path_is_swapped_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        std::fs::create_dir(&outbox).unwrap();
        std::fs::write(outbox.join("report.pdf"), b"the report").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"private key").unwrap();
        let checked = outbox_file(&outbox, "report.pdf").unwrap();
        // After the check, the name is made to point out of the outbox.
        std::fs::remove_file(outbox.join("report.pdf")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), outbox.join("report.pdf"))
            .unwrap();
        assert_eq!(checked.read().await.unwrap(), b"the report");
        assert_eq!(checked.size().unwrap(), 10);
        // A FIFO planted in the outbox is refused, not waited on.
        let fifo = outbox.join("pipe.mp3");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = outbox_file(&outbox, "pipe.mp3").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
