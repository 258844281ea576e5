//! History-sync ingest rate: the generated archive replayed as `EngineEvent::History` chunks
//! through `Ingest::apply` (the one path every engine writes by) into SQLite and PostgreSQL.
//!
//! The chunks are generated before the clock starts, so the figure is the archive's write rate
//! (insert, search index, chat upserts, commit), not the generator's. Under `cargo test` a
//! small archive is ingested and counted instead.

#[path = "support/archive.rs"]
mod archive;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use std::sync::Arc;
use std::time::{Duration, Instant};

use archive::{Archive, HISTORY_CHUNK, Spec};
use measure::{Samples, full_run, report_rate};
use whatsapp_mcp::config::DatabaseUrl;
use whatsapp_mcp::engine::ingest::{EngineEvent, HistoryConversation, Ingest};
use whatsapp_mcp::state::{EngineStatus, LinkState, StatusHandle};
use whatsapp_mcp::store::Store;

fn main() {
    let spec = measure::size(Spec::FULL, Spec::SMOKE);
    let chunk = measure::size(HISTORY_CHUNK, 50);
    let archive = Archive::plan(spec);
    println!(
        "history-sync ingest: {} messages, {} chats, {} contacts, chunks of {chunk} messages{}",
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
    runtime.block_on(run("SQLite", &sqlite, &archive, chunk, 50_000.0));

    // What ships: a server with PostgreSQL's durable defaults. Then the test suite's cluster
    // (fsync, synchronous_commit and full_page_writes off), a setting no server should run
    // with, for comparison only.
    let durable = common::pg::PgCluster::start_durable();
    runtime.block_on(run(
        "PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)",
        &durable.new_database(),
        &archive,
        chunk,
        20_000.0,
    ));
    drop(durable);
    let fast = common::pg::PgCluster::start();
    runtime.block_on(run(
        "PostgreSQL (fsync off: test setting, not for production)",
        &fast.new_database(),
        &archive,
        chunk,
        20_000.0,
    ));
}

async fn run(backend: &str, url: &str, archive: &Archive, chunk: usize, target: f64) {
    let url = DatabaseUrl::parse("bench", url).expect("a database URL");
    let store: Arc<dyn Store> = whatsapp_mcp::store::open(&url)
        .await
        .expect("the store opens");
    let ingest = Ingest::new(
        Arc::clone(&store),
        StatusHandle::new(EngineStatus::new(LinkState::Connected)),
    );

    // The address book, LID links and groups arrive before history, as on a real link.
    let started = Instant::now();
    ingest
        .apply(EngineEvent::Contacts(archive.contact_updates()))
        .await
        .expect("contacts stored");
    for (lid, phone) in archive.lid_links() {
        ingest
            .apply(EngineEvent::LidMapping { lid, phone })
            .await
            .expect("LID link stored");
    }
    for (n, (jid, participants)) in archive.groups().into_iter().enumerate() {
        let name = archive.chats[n].name.clone();
        ingest
            .apply(EngineEvent::Group {
                jid,
                name,
                participants,
            })
            .await
            .expect("group stored");
    }
    let setup = started.elapsed();

    let chunks: Vec<Vec<HistoryConversation>> = archive.history_chunks(chunk).collect();
    let total: u64 = chunks
        .iter()
        .flatten()
        .map(|c| c.messages.len() as u64)
        .sum();
    assert_eq!(total, archive.total_messages(), "the generator's plan");
    let count = chunks.len() as u64;

    let mut per_chunk = Samples::new();
    let started = Instant::now();
    for (n, conversations) in chunks.into_iter().enumerate() {
        let progress = Some(((n as u64 + 1) * 100 / count) as u8);
        let t = Instant::now();
        ingest
            .apply(EngineEvent::History {
                conversations,
                progress,
            })
            .await
            .expect("history chunk stored");
        per_chunk.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    // SQLite indexes a history sync for search in the background, once writes pause; searches
    // scan what is not indexed yet. How long that takes is reported on its own line.
    let mut backlog = store.stats().await.expect("archive stats").search_backlog;
    let backlog_at_end = backlog;
    while backlog > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        backlog = store.stats().await.expect("archive stats").search_backlog;
    }
    let searchable = started.elapsed();

    let stats = store.stats().await.expect("archive stats");
    assert_eq!(stats.message_count, total, "every message stored once");
    assert_eq!(
        stats.chat_count,
        archive.chats.len() as u64,
        "every chat stored once"
    );
    assert_eq!(ingest.status().snapshot().sync.messages_received, total);

    println!(
        "{backend}: contacts, {} LID links and {} groups in {:.2} s",
        archive.lid_links().len(),
        archive.groups().len(),
        setup.as_secs_f64()
    );
    report_rate(
        &format!("{backend}: history sync through Ingest::apply, stored"),
        total,
        elapsed,
        "msg",
        None,
    );
    if backlog_at_end > 0 {
        println!(
            "{backend}: {backlog_at_end} messages awaited the search index after the last chunk; all searchable by index {:.2} s later",
            (searchable - elapsed).as_secs_f64()
        );
    }
    // The figure that counts: the archive is usable once every message can be found.
    report_rate(
        &format!("{backend}: history sync until every message is searchable"),
        total,
        searchable,
        "msg",
        // Targets are for release builds at full size; a smoke run only checks answers.
        full_run().then_some(target),
    );
    per_chunk.report(
        &format!("{backend}: one History event ({chunk} msg)"),
        None::<Duration>,
    );
    if let Some(bytes) = stats.database_bytes {
        println!(
            "{backend}: database size after ingest {:.0} MB",
            bytes as f64 / 1e6
        );
    }
}
