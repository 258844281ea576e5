//! Tool latency as users meet it: the `serve` binary over a 1 M-message archive (SQLite, then
//! PostgreSQL), called by kept-alive clients over real loopback sockets.
//!
//! Three clients, one after the other, against the same running service:
//! - `stdio`: `whatsapp-mcp stdio` relaying to the service, driven over its stdin and stdout
//!   the way a desktop client drives it;
//! - `streamable`: Streamable HTTP, every request on one kept-alive HTTP/1.1 connection;
//! - `sse`: the legacy HTTP+SSE pair, answers read from the open event stream.
//!
//! Each sample is the time from writing a `tools/call` request to having parsed its answer.
//! Per path and tool: p50 and p99 of at least 1 000 calls (full run). Full-text search is
//! measured on terms drawn from the archive itself (see [`draw_terms`]): each path gets 1 000
//! terms of its own, so every term is asked once, the first time since the service started.
//!
//! `cargo bench --bench end_to_end` runs it on the release binary; under `cargo test` a small
//! archive and a few calls check the answers on every path, and no target is judged.

#[path = "support/archive.rs"]
mod archive;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/wire/mod.rs"]
mod wire;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use archive::{Archive, Language, Spec};
use common::stdio::StdioClient;
use common::{terminate, wait_with_timeout};
use measure::{Samples, full_run};
use serde_json::{Value, json};

/// p99 targets: listings, contacts, chats and context; full-text search.
const LISTING_TARGET: Duration = Duration::from_millis(5);
const SEARCH_TARGET: Duration = Duration::from_millis(20);

/// The client paths, in the order they run.
const PATHS: [&str; 3] = ["stdio", "streamable", "sse"];

fn main() {
    let spec = measure::size(Spec::FULL, Spec::SMOKE);
    let archive = Archive::plan(spec);
    let per_path = measure::size(1_000, 20);
    let terms = draw_terms(&archive, per_path * PATHS.len(), spec.seed);
    println!(
        "end-to-end tool latency of {}: {} messages, {} chats{}",
        common::binary(),
        spec.messages,
        spec.chats,
        if full_run() { "" } else { " (smoke run)" }
    );
    let data = tempfile::tempdir().expect("a temporary directory");
    let sqlite = format!("sqlite://{}", data.path().join("whatsapp.db").display());
    run("SQLite", &sqlite, data.path(), &archive, &terms);
    let cluster = common::pg::PgCluster::start();
    let pg_data = tempfile::tempdir().expect("a temporary directory");
    run(
        "PostgreSQL",
        &cluster.new_database(),
        pg_data.path(),
        &archive,
        &terms,
    );
}

/// An MCP client on one of the three paths.
trait Client {
    /// Calls a tool; returns its structured result, or what went wrong.
    fn call(&mut self, tool: &str, arguments: &Value) -> Result<Value, String>;
}

/// The structured content of a tool result that did not fail.
fn structured(mut result: Value) -> Result<Value, String> {
    if result["isError"] == json!(true) {
        return Err(result.to_string());
    }
    Ok(result["structuredContent"].take())
}

impl Client for wire::Streamable {
    fn call(&mut self, tool: &str, arguments: &Value) -> Result<Value, String> {
        structured(wire::Streamable::call(self, tool, arguments)?)
    }
}

impl Client for wire::Sse {
    fn call(&mut self, tool: &str, arguments: &Value) -> Result<Value, String> {
        structured(wire::Sse::call(self, tool, arguments)?)
    }
}

impl Client for StdioClient {
    fn call(&mut self, tool: &str, arguments: &Value) -> Result<Value, String> {
        structured(self.request("tools/call", &json!({"name": tool, "arguments": arguments}))?)
    }
}

/// Writes the archive, starts `serve` on it and measures every path.
fn run(backend: &str, url: &str, data: &Path, archive: &Archive, terms: &[String]) {
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let url = whatsapp_mcp::config::DatabaseUrl::parse("bench", url).expect("a URL");
            let store = whatsapp_mcp::store::open(&url).await.expect("the store");
            archive.write_store(store.as_ref()).await.expect("written");
        });
    println!(
        "{backend}: archive written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (mut daemon, bridge, mcp) = common::serve_archive(data, url);
    let per_path = terms.len() / PATHS.len();
    for (n, path) in PATHS.into_iter().enumerate() {
        let mut client: Box<dyn Client> = match path {
            "stdio" => {
                let mut relay = StdioClient::spawn(&["stdio"], data, bridge);
                relay.initialize();
                relay.initialized();
                Box::new(relay)
            }
            "streamable" => Box::new(
                wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp"))
                    .expect("a Streamable HTTP session"),
            ),
            _ => Box::new(wire::Sse::open(mcp).expect("an SSE session")),
        };
        let label = format!("{backend} {path}");
        tools(&label, client.as_mut(), archive);
        search(
            &label,
            client.as_mut(),
            &terms[n * per_path..(n + 1) * per_path],
        );
    }
    terminate(daemon.id());
    wait_with_timeout(&mut daemon, Duration::from_secs(15));
}

/// One timed call that must succeed.
fn timed(samples: &mut Samples, client: &mut dyn Client, tool: &str, args: &Value) -> Value {
    let started = Instant::now();
    let out = client
        .call(tool, args)
        .unwrap_or_else(|err| panic!("{tool} {args}: {err}"));
    samples.push(started.elapsed());
    out
}

fn rows(out: &Value, key: &str) -> usize {
    out[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .len()
}

/// The listing, contact and context tools, as `mcp_tools.rs` measures them in process.
fn tools(label: &str, client: &mut dyn Client, archive: &Archive) {
    let rounds = measure::size(1_000, 10);
    let target = full_run().then_some(LISTING_TARGET);
    let mut rng = fastrand::Rng::with_seed(archive.chats.len() as u64);
    // The service is warm for a running desktop session; so is this one.
    for _ in 0..measure::size(50, 2) {
        timed(&mut Samples::new(), client, "list_chats", &json!({}));
    }
    let big = archive.biggest_chat();
    /// A measured operation: its name, and what makes one call's tool and arguments.
    type Op<'a> = (
        &'a str,
        Box<dyn FnMut(&mut fastrand::Rng) -> (&'static str, Value) + 'a>,
    );
    let chats = &archive.chats;
    let ops: Vec<Op<'_>> = vec![
        (
            "list_chats (20, last message)",
            Box::new(|rng| ("list_chats", json!({"page": rng.u32(..10)}))),
        ),
        (
            "list_chats query=<name>",
            Box::new(|rng| {
                let plan = &chats[rng.usize(..chats.len())];
                let name = plan
                    .name
                    .clone()
                    .unwrap_or_else(|| plan.jid.user()[..6.min(plan.jid.user().len())].to_owned());
                let word = name.split(' ').next().unwrap_or(&name).to_owned();
                (
                    "list_chats",
                    json!({"query": word, "include_last_message": false}),
                )
            }),
        ),
        (
            "list_messages biggest chat, paged, context 1+1",
            Box::new(move |rng| {
                (
                    "list_messages",
                    json!({"chat_jid": chats[big].jid.as_str(), "page": rng.u32(..50)}),
                )
            }),
        ),
        (
            "list_messages any chat, page 0",
            Box::new(|rng| {
                let plan = &chats[rng.usize(..chats.len())];
                (
                    "list_messages",
                    json!({"chat_jid": plan.jid.as_str(), "include_context": false}),
                )
            }),
        ),
        (
            "list_messages all chats, paged, context 2+2",
            Box::new(|rng| {
                (
                    "list_messages",
                    json!({"page": rng.u32(..5), "context_before": 2, "context_after": 2}),
                )
            }),
        ),
        (
            "search_contacts <name>",
            Box::new(|rng| {
                let contact = &archive.contacts[rng.usize(..archive.contacts.len())];
                let name = contact
                    .full_name
                    .clone()
                    .or_else(|| contact.push_name.clone())
                    .unwrap_or_default();
                ("search_contacts", json!({"query": name}))
            }),
        ),
        (
            "get_message_context 5+5",
            Box::new(|rng| {
                let n = rng.usize(..chats.len());
                let messages = archive.chat_messages(n);
                let message = &messages[rng.usize(..messages.len())];
                (
                    "get_message_context",
                    json!({"message_id": message.id, "chat_jid": message.chat.as_str(),
                        "before": 5, "after": 5}),
                )
            }),
        ),
        (
            "get_sync_status",
            Box::new(|_| ("get_sync_status", json!({}))),
        ),
    ];
    for (name, mut make) in ops {
        let mut samples = Samples::new();
        for _ in 0..rounds {
            // Arguments are made before the clock starts: generating a chat's messages for
            // get_message_context is the benchmark's work, not the service's.
            let (tool, args) = make(&mut rng);
            let out = timed(&mut samples, client, tool, &args);
            // Names and chats taken from the archive must be found; pages may lie past the end.
            let must_find = match name {
                "list_chats query=<name>" => Some("chats"),
                "list_messages any chat, page 0" => Some("messages"),
                "search_contacts <name>" => Some("contacts"),
                _ => None,
            };
            if let Some(key) = must_find {
                assert!(rows(&out, key) >= 1, "{name}: nothing found for {args}");
            }
        }
        samples.report(&format!("{label}: {name}"), target);
    }
}

/// Full-text search, each term once.
fn search(label: &str, client: &mut dyn Client, terms: &[String]) {
    let target = full_run().then_some(SEARCH_TARGET);
    let mut all = Samples::new();
    let mut empty = 0;
    for term in terms {
        let out = timed(
            &mut all,
            client,
            "list_messages",
            &json!({"query": term, "limit": 20, "include_context": false}),
        );
        if rows(&out, "messages") == 0 {
            empty += 1;
        }
    }
    all.report(
        &format!("{label}: search, {} archive terms once each", terms.len()),
        target,
    );
    // Every term was taken from messages, so (almost) every search finds something; a
    // search path that finds nothing would look fast for the wrong reason.
    assert!(
        empty * 20 <= terms.len(),
        "{empty} of {} searches found nothing",
        terms.len()
    );
}

/// Which writing system a term is in, for spreading the draw over all of them.
fn script(term: &str) -> &'static str {
    let c = term.chars().find(|c| c.is_alphabetic()).unwrap_or(' ');
    match c as u32 {
        0x0400..=0x04FF => "cyrillic",
        0x0600..=0x06FF => "arabic",
        0x3040..=0x30FF => "kana",
        0x4E00..=0x9FFF => "han",
        _ if c.is_ascii() => "ascii",
        _ => "latin",
    }
}

/// `count` distinct search terms drawn from the archive's own messages.
///
/// Candidates are the words of the messages and the two-word phrases that occur in them (as
/// quoted phrases). How many messages hold each is counted on a seeded sample of the archive;
/// the candidates are ranked by that count and cut into three equal frequency bands (rare,
/// middling, common). A third of the terms comes from each band, taken round-robin across the
/// writing systems so that every script the generator writes is searched, and shuffled so
/// the bands interleave over the run. Nothing here knows which terms the store finds fast.
fn draw_terms(archive: &Archive, count: usize, seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x7e57);
    let mut frequency: HashMap<String, u32> = HashMap::new();
    let mut chats: Vec<usize> = (0..archive.chats.len()).collect();
    rng.shuffle(&mut chats);
    chats.truncate(measure::size(800, chats.len()));
    for n in chats {
        let language = archive.chats[n].language;
        for message in archive.chat_messages(n) {
            let Some(text) = message.text.as_deref().or(message.caption.as_deref()) else {
                continue;
            };
            let words = split_words(text, language);
            let mut seen: HashSet<String> = HashSet::new();
            for (i, word) in words.iter().enumerate() {
                seen.insert((*word).to_owned());
                if let Some(next) = words.get(i + 1) {
                    seen.insert(format!("\"{word}{}{next}\"", language.separator()));
                }
            }
            for term in seen {
                *frequency.entry(term).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(String, u32)> = frequency.into_iter().collect();
    // By frequency, ties broken by the text, so the ranking does not depend on hash order.
    ranked.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let band = ranked.len().div_ceil(3);
    let mut terms = Vec::with_capacity(count);
    for (n, slice) in ranked.chunks(band).enumerate() {
        let wanted = count / 3 + usize::from(n < count % 3);
        let mut by_script: Vec<Vec<&String>> = Vec::new();
        let mut scripts: Vec<&str> = Vec::new();
        for (term, _) in slice {
            let s = script(term);
            match scripts.iter().position(|known| *known == s) {
                Some(i) => by_script[i].push(term),
                None => {
                    scripts.push(s);
                    by_script.push(vec![term]);
                }
            }
        }
        for group in &mut by_script {
            rng.shuffle(group);
        }
        let mut taken = 0;
        'fill: while taken < wanted {
            let before = taken;
            for group in &mut by_script {
                if let Some(term) = group.pop() {
                    terms.push(term.clone());
                    taken += 1;
                    if taken == wanted {
                        break 'fill;
                    }
                }
            }
            assert!(taken > before, "the archive has too few distinct terms");
        }
        println!(
            "search terms, band {n}: {wanted} of {} candidates held by {}..{} of the sampled messages",
            slice.len(),
            slice.first().map_or(0, |t| t.1),
            slice.last().map_or(0, |t| t.1),
        );
    }
    rng.shuffle(&mut terms);
    terms
}

/// The vocabulary words of `text`, in order: split at the language's separator, or matched
/// against its word list where words are written without spaces.
fn split_words(text: &str, language: Language) -> Vec<&str> {
    let vocabulary = language.words();
    if !language.separator().is_empty() {
        return text
            .split(' ')
            .filter(|word| vocabulary.contains(word))
            .collect();
    }
    let mut words = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match vocabulary.iter().find(|word| rest.starts_with(**word)) {
            Some(word) => {
                words.push(&rest[..word.len()]);
                rest = &rest[word.len()..];
            }
            None => rest = &rest[c.len_utf8()..],
        }
    }
    words
}
