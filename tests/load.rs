//! Load on the real binary: many concurrent MCP sessions (half Streamable HTTP, half legacy SSE)
//! calling read tools against a large archive for a fixed time, while other clients keep
//! connecting, starting a tool call and hanging up mid-stream. Every call must succeed, and once
//! all clients are gone no session and no task may be left behind. Latency and memory are
//! printed, not asserted.
//!
//! Sized by environment variables, defaults in brackets: `WHATSAPP_MCP_LOAD_MESSAGES`
//! [1 000 000] archive messages, `WHATSAPP_MCP_LOAD_SESSIONS` [200], `WHATSAPP_MCP_LOAD_SECONDS`
//! [60]; smaller values make a quick local run.
#![cfg(feature = "fake-engine")]

mod common;
mod wire;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{KillOnDrop, free_port, terminate, wait_for_http, wait_with_timeout};
use serde_json::{Value, json};

const CHATS: usize = 2_000;

/// Words of the fake history's texts, in several scripts, for full-text search.
const SEARCHES: [&str; 4] = ["station", "tomorrow", "Привет", "ありがとう"];

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// The `n`th call of a client: a mix of what assistants ask most (recent chats, a chat's
/// messages, full-text search, contacts, context around a message, sync status).
fn request(client: usize, n: usize, messages: usize) -> (&'static str, Value) {
    let chat = format!("3161{:07}", (client * 31 + n * 7) % CHATS);
    let message = (client * 7919 + n * 104_729) % messages;
    match n % 6 {
        0 => (
            "list_chats",
            json!({"limit": 20, "include_last_message": true}),
        ),
        1 => ("list_messages", json!({"chat_jid": chat, "limit": 20})),
        2 => (
            "list_messages",
            json!({"query": SEARCHES[n % SEARCHES.len()], "limit": 10}),
        ),
        3 => ("search_contacts", json!({"query": &chat[..8], "limit": 10})),
        4 => (
            "get_message_context",
            json!({"message_id": format!("HIST{message:08}"),
                   "chat_jid": format!("3161{:07}", message % CHATS), "before": 3, "after": 3}),
        ),
        _ => ("get_sync_status", json!({})),
    }
}

/// The tool and what kind of call it was, for the per-call figures.
fn label(tool: &str, arguments: &Value) -> String {
    match (arguments.get("query"), arguments.get("chat_jid")) {
        (Some(_), _) if tool == "list_messages" => format!("{tool}(query)"),
        (_, Some(_)) if tool == "list_messages" => format!("{tool}(chat)"),
        _ => tool.to_owned(),
    }
}

/// Latencies (µs) and failures of every call, shared by the client threads.
#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<u64>>,
    by_call: Mutex<std::collections::BTreeMap<String, Vec<u64>>>,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, tool: &str, started: Instant, outcome: &wire::Outcome) {
        let micros = started.elapsed().as_micros() as u64;
        self.latencies.lock().unwrap().push(micros);
        self.by_call
            .lock()
            .unwrap()
            .entry(tool.to_owned())
            .or_default()
            .push(micros);
        let failure = match outcome {
            Ok(result) if result["isError"] == json!(true) => Some(format!("{tool}: {result}")),
            Ok(_) => None,
            Err(err) => Some(format!("{tool}: {err}")),
        };
        if let Some(failure) = failure {
            self.failures.lock().unwrap().push(failure);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

#[test]
fn concurrent_sessions_against_a_large_archive() {
    let messages = setting("WHATSAPP_MCP_LOAD_MESSAGES", 1_000_000) as usize;
    let sessions = setting("WHATSAPP_MCP_LOAD_SESSIONS", 200) as usize;
    let seconds = setting("WHATSAPP_MCP_LOAD_SECONDS", 60);

    // The archive is filled through the real ingest path (the fake engine's history sync)
    // before the service answers.
    let data = tempfile::tempdir().unwrap();
    let (bridge, mcp) = (free_port(), free_port());
    let started = Instant::now();
    let mut child = Command::new(common::binary())
        .arg("serve")
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env(
            "WHATSAPP_MCP_FAKE_SEED",
            format!("history:{CHATS}:{messages}"),
        )
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
        .env("WHATSAPP_MCP_LISTEN", format!("127.0.0.1:{mcp}"))
        .env("WHATSAPP_MCP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Hundreds of sessions coming and going are logged; kept beside the archive, not printed.
        .stderr(std::fs::File::create(data.path().join("serve.log")).unwrap())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let pid = child.id();
    assert!(
        wait_for_http(
            &format!("http://127.0.0.1:{mcp}/health"),
            Duration::from_secs(1800)
        ),
        "the service did not come up"
    );
    let filled_in = started.elapsed();
    let (_, hwm_after_fill) = wire::memory_kib(pid);
    // The quietest of a few samples: the first requests may still be finishing.
    let before = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            wire::sessions(mcp)
        })
        .min_by_key(|s| s["alive_tasks"].as_u64())
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let hung_up = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for client in 0..sessions {
        let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
        threads.push(std::thread::spawn(move || {
            let url = format!("http://127.0.0.1:{mcp}/mcp");
            let mut n = 0;
            if client % 2 == 0 {
                let mut session = wire::Streamable::open(&url).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let (tool, arguments) = request(client, n, messages);
                    let started = Instant::now();
                    let outcome = session.call(tool, &arguments);
                    tally.record(&label(tool, &arguments), started, &outcome);
                    n += 1;
                }
                session.close().unwrap();
            } else {
                let mut session = wire::Sse::open(mcp).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let (tool, arguments) = request(client, n, messages);
                    let started = Instant::now();
                    let outcome = session.call(tool, &arguments);
                    tally.record(&label(tool, &arguments), started, &outcome);
                    n += 1;
                }
                session.close();
            }
        }));
    }
    // Clients that come, start a call and vanish mid-stream, over both transports. The server
    // finishes a call whose client is gone (nothing cancels it), so they ask for something
    // modest: a stream of abandoned full-text searches would occupy the archive's readers.
    for transport in 0..2 {
        let (stop, hung_up) = (Arc::clone(&stop), Arc::clone(&hung_up));
        threads.push(std::thread::spawn(move || {
            let chats = json!({"limit": 20, "include_last_message": true});
            while !stop.load(Ordering::Relaxed) {
                if transport == 0 {
                    let session =
                        wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp")).unwrap();
                    session.call_and_hang_up("list_chats", &chats).unwrap();
                    // The client cancelled its request, then closes its session.
                    session.close().unwrap();
                } else {
                    wire::Sse::open(mcp)
                        .unwrap()
                        .call_and_vanish("list_chats", &chats);
                }
                hung_up.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak_rss) = (Arc::clone(&stop), Arc::clone(&peak_rss));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak_rss.fetch_max(wire::memory_kib(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(seconds));
    let during = wire::sessions(mcp);
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    sampler.join().unwrap();
    let (rss_after, hwm) = wire::memory_kib(pid);

    // Everything the clients opened must go away once they have: give the server a moment to
    // see the hang-ups and finish the calls it was still running for vanished clients.
    let settle = Instant::now();
    let after = loop {
        let now = wire::sessions(mcp);
        let settled = now["sse_sessions"] == 0
            && now["streamable_sessions"] == 0
            && now["alive_tasks"].as_u64() <= before["alive_tasks"].as_u64();
        if settled || settle.elapsed() > Duration::from_secs(30) {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    let failures = tally.failures.lock().unwrap();
    let mut latencies = std::mem::take(&mut *tally.latencies.lock().unwrap());
    latencies.sort_unstable();
    let calls = latencies.len();
    eprintln!(
        "archive of {messages} messages in {CHATS} chats filled in {filled_in:.1?} \
         (peak RSS then {} MiB)\n\
         {sessions} sessions for {seconds} s: {calls} calls ({:.0}/s), {} failed; \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         during the run: {during}; {} clients hung up mid-stream\n\
         server memory: peak RSS during the run {} MiB, VmHWM {} MiB, RSS after {} MiB\n\
         after the clients left: {after} (before: {before}, settled in {:.1?})",
        hwm_after_fill / 1024,
        calls as f64 / seconds as f64,
        failures.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        hung_up.load(Ordering::Relaxed),
        peak_rss.load(Ordering::Relaxed) / 1024,
        hwm / 1024,
        rss_after / 1024,
        settle.elapsed(),
    );
    for (call, mut latencies) in std::mem::take(&mut *tally.by_call.lock().unwrap()) {
        latencies.sort_unstable();
        eprintln!(
            "  {call}: {} calls, p50 {:.1} ms, p99 {:.1} ms",
            latencies.len(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );
    }
    assert!(
        failures.is_empty(),
        "{} failed calls, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(calls >= sessions, "hardly any calls were made: {calls}");
    assert!(hung_up.load(Ordering::Relaxed) > 0);
    assert!(
        during["sse_sessions"].as_u64() >= Some((sessions / 2) as u64),
        "the SSE clients were not all connected: {during}"
    );
    assert_eq!(
        after["sse_sessions"], 0,
        "SSE sessions left behind: {after}"
    );
    assert_eq!(
        after["streamable_sessions"], 0,
        "Streamable HTTP sessions left behind: {after}"
    );
    assert!(
        after["alive_tasks"].as_u64() <= before["alive_tasks"].as_u64(),
        "tasks left behind: {after}, before the clients came: {before}"
    );
    terminate(pid);
    let exit = wait_with_timeout(&mut child, Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}
