//! Tool latencies through the MCP layer on a 1 M-message archive, on SQLite and PostgreSQL.
//!
//! Each sample is one `tools/call` JSON-RPC request POSTed to the real Streamable HTTP router
//! (the service's middleware, rmcp's session handling, argument parsing, the tool code, the
//! store query, result serialisation and the event-stream answer), driven in-process through
//! tower without a TCP socket, and parsed back by the client. Under `cargo test` a small archive
//! is used and every answer is still checked.

#[path = "support/archive.rs"]
mod archive;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/mcp_support/mod.rs"]
mod mcp_support;
#[path = "support/measure.rs"]
mod measure;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use archive::{Archive, MARKER, Spec};
use axum::extract::connect_info::MockConnectInfo;
use mcp_support::Client;
use measure::{Samples, full_run};
use serde_json::{Value, json};
use whatsapp_mcp::access::AccessPolicy;
use whatsapp_mcp::config::{Config, DatabaseUrl, EngineKind};
use whatsapp_mcp::mcp::Endpoint;

/// p99 targets: listing chats and messages, and full-text search over the whole archive.
const LISTING_TARGET: Duration = Duration::from_millis(5);
const SEARCH_TARGET: Duration = Duration::from_millis(20);

/// Search terms: the planted marker (a known number of hits), common and rare words in several
/// scripts, an accent-folded spelling, and two words that must both appear.
const SEARCHES: [&str; 10] = [
    MARKER,
    "tomorrow",
    "cumpleanos",
    "спасибо",
    "شكرا",
    "ありがとう",
    "打电话",
    "grüße",
    "boarding-pass",
    "\"see later\" train",
];

fn main() {
    let spec = measure::size(Spec::FULL, Spec::SMOKE);
    let archive = Archive::plan(spec);
    println!(
        "MCP tool latency: {} messages, {} chats, {} contacts{}",
        spec.messages,
        spec.chats,
        spec.contacts,
        if full_run() { "" } else { " (smoke run)" }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = format!("sqlite://{}", dir.path().join("archive.db").display());
    runtime.block_on(run("SQLite", &sqlite, &archive));

    let cluster = common::pg::PgCluster::start();
    runtime.block_on(run("PostgreSQL", &cluster.new_database(), &archive));
}

async fn run(backend: &str, url: &str, archive: &Archive) {
    // The application as `serve` builds it, on this archive and without a WhatsApp connection.
    let mut config = Config::load_with_env(None, &|_| None).expect("default config");
    let dir = tempfile::tempdir().expect("a temporary directory");
    config.data_dir = dir.path().join("data");
    config.media_dir = dir.path().join("media");
    config.outbox_dir = dir.path().join("outbox");
    config.database_url = DatabaseUrl::parse("bench", url).expect("a database URL");
    config.session_database_url = config.database_url.clone();
    config.engine = EngineKind::None;
    let ctx = whatsapp_mcp::app::start(config)
        .await
        .expect("the application starts");
    let started = Instant::now();
    let stored = archive
        .write_store(ctx.store.as_ref())
        .await
        .expect("archive written");
    assert_eq!(stored, archive.total_messages());
    println!(
        "{backend}: archive written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let endpoint = Endpoint::new(ctx, AccessPolicy::new(None));
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("an address");
    let mut client = Client::new(endpoint.router().layer(MockConnectInfo(peer)));
    client.initialize().await;

    let rounds = measure::size(1_000, 20);
    let search_rounds = measure::size(101, 10);
    let listing = full_run().then_some(LISTING_TARGET);
    let search = full_run().then_some(SEARCH_TARGET);
    let mut rng = fastrand::Rng::with_seed(spec_seed(archive));

    // Warm the caches the way a running service has them warm.
    for _ in 0..measure::size(50, 2) {
        client.ok("list_chats", json!({})).await;
    }

    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let page = rng.u32(..10);
        let out = timed(
            &mut samples,
            &mut client,
            "list_chats",
            json!({"page": page}),
        )
        .await;
        assert_eq!(
            rows(&out, "chats"),
            expected_page(archive.chats.len() as u64, 20, page)
        );
    }
    samples.report(
        &format!("{backend}: list_chats (20, last message)"),
        listing,
    );

    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let plan = &archive.chats[rng.usize(..archive.chats.len())];
        let name = plan
            .name
            .clone()
            .unwrap_or_else(|| plan.jid.user()[..6.min(plan.jid.user().len())].to_owned());
        let word = name.split(' ').next().unwrap_or(&name).to_owned();
        let out = timed(
            &mut samples,
            &mut client,
            "list_chats",
            json!({"query": word, "include_last_message": false}),
        )
        .await;
        assert!(rows(&out, "chats") >= 1, "no chat matches {word:?}");
    }
    samples.report(&format!("{backend}: list_chats query=<name>"), listing);

    let big = archive.biggest_chat();
    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let page = rng.u32(..50);
        let out = timed(
            &mut samples,
            &mut client,
            "list_messages",
            json!({"chat_jid": archive.chats[big].jid.as_str(), "page": page}),
        )
        .await;
        assert_eq!(
            rows(&out, "messages"),
            expected_page(archive.chats[big].messages, 20, page)
        );
    }
    samples.report(
        &format!(
            "{backend}: list_messages biggest chat ({} msg), paged, context 1+1",
            archive.chats[big].messages
        ),
        listing,
    );

    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let plan = &archive.chats[rng.usize(..archive.chats.len())];
        let out = timed(
            &mut samples,
            &mut client,
            "list_messages",
            json!({"chat_jid": plan.jid.as_str(), "include_context": false}),
        )
        .await;
        assert_eq!(rows(&out, "messages"), plan.messages.min(20));
    }
    samples.report(
        &format!("{backend}: list_messages any chat, page 0"),
        listing,
    );

    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let page = rng.u32(..5);
        let out = timed(
            &mut samples,
            &mut client,
            "list_messages",
            json!({"page": page, "context_before": 2, "context_after": 2}),
        )
        .await;
        assert_eq!(
            rows(&out, "messages"),
            expected_page(archive.total_messages(), 20, page)
        );
    }
    samples.report(
        &format!("{backend}: list_messages all chats, paged, context 2+2"),
        listing,
    );

    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let contact = &archive.contacts[rng.usize(..archive.contacts.len())];
        let name = contact
            .full_name
            .clone()
            .or_else(|| contact.push_name.clone())
            .unwrap_or_default();
        let out = timed(
            &mut samples,
            &mut client,
            "search_contacts",
            json!({"query": name}),
        )
        .await;
        assert!(rows(&out, "contacts") >= 1, "no contact matches {name:?}");
    }
    samples.report(&format!("{backend}: search_contacts <name>"), listing);

    let mut samples = Samples::new();
    let began = Instant::now();
    while more(&samples, rounds, began) {
        let n = rng.usize(..archive.chats.len());
        let messages = archive.chat_messages(n);
        let message = &messages[rng.usize(..messages.len())];
        let out = timed(
            &mut samples,
            &mut client,
            "get_message_context",
            json!({"message_id": message.id, "chat_jid": message.chat.as_str(), "before": 5, "after": 5}),
        )
        .await;
        assert_eq!(out["message"]["id"], json!(message.id));
    }
    samples.report(&format!("{backend}: get_message_context 5+5"), listing);

    let mut all = Samples::new();
    for term in SEARCHES {
        let mut samples = Samples::new();
        let began = Instant::now();
        for round in 0..search_rounds {
            if round > 1 && began.elapsed() > BUDGET / 4 {
                break;
            }
            let t = Instant::now();
            let out = client
                .ok(
                    "list_messages",
                    json!({"query": term, "limit": 20, "include_context": false}),
                )
                .await;
            if round > 0 {
                samples.push(t.elapsed());
                all.push(t.elapsed());
            }
            if term == MARKER {
                assert_eq!(rows(&out, "messages"), archive.marker_count().min(20));
            }
        }
        samples.report(&format!("{backend}: search {term:?}"), search);
    }
    all.report(&format!("{backend}: full-text search, all terms"), search);

    // The marker's full count, across pages of 200, proves the index finds every hit.
    let mut found = 0;
    for page in 0.. {
        let out = client
            .ok(
                "list_messages",
                json!({"query": MARKER, "limit": 200, "page": page, "include_context": false}),
            )
            .await;
        let n = rows(&out, "messages");
        found += n;
        if n < 200 {
            break;
        }
    }
    assert_eq!(found, archive.marker_count(), "every planted marker found");
}

/// Most time one operation is sampled for, so a slow query cannot hold the run up for long;
/// the sample count printed says when it cut a series short.
const BUDGET: Duration = Duration::from_secs(30);

/// Whether to take another sample: fewer than `rounds` so far and within [`BUDGET`].
fn more(samples: &Samples, rounds: usize, began: Instant) -> bool {
    samples.len() < rounds && (samples.len() < 2 || began.elapsed() < BUDGET)
}

/// One timed tool call that must succeed.
async fn timed(samples: &mut Samples, client: &mut Client, tool: &str, args: Value) -> Value {
    let t = Instant::now();
    let out = client.ok(tool, args).await;
    samples.push(t.elapsed());
    out
}

fn rows(out: &Value, key: &str) -> u64 {
    out[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .len() as u64
}

/// How many rows page `page` of `limit` holds when there are `total`.
fn expected_page(total: u64, limit: u64, page: u32) -> u64 {
    total.saturating_sub(u64::from(page) * limit).min(limit)
}

fn spec_seed(archive: &Archive) -> u64 {
    archive.spec.seed ^ 0x5EED
}
