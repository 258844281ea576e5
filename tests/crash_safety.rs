//! `kill -9` in the middle of a 100 000-message history sync, then a restart, on SQLite and on
//! PostgreSQL: every chunk the fake engine acknowledged to "WhatsApp" is in the archive, the
//! store opens cleanly, and the resumed sync re-sends only what was never acknowledged and
//! completes without duplicates. And `whatsapp-mcp backup` during such a sync: the copy is
//! sound and holds every message acknowledged before it began.
#![cfg(feature = "fake-engine")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{KillOnDrop, free_port, get, terminate, wait_for_http, wait_with_timeout};

const MESSAGES: usize = 100_000;
const CHATS: usize = 50;
/// Messages per chunk of the fake's history sync (`HISTORY_CHUNK`).
const CHUNK: usize = whatsapp_mcp::engine::fake::HISTORY_CHUNK;
/// The process is killed once this many chunks are acknowledged: well inside the sync.
const KILL_AFTER_CHUNKS: usize = 70;
/// Generous bounds for a debug build on a slow machine; they only stop a hung test.
const SYNC_TIMEOUT: Duration = Duration::from_secs(900);

/// Where the archive lives and how the test reads it directly.
enum Archive {
    Sqlite(PathBuf),
    Postgres { url: String, _cluster: PgCluster },
}

impl Archive {
    fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// Checks the store's own consistency and returns every (chat, id) stored and the row count.
    fn inspect(&self) -> (HashSet<(String, String)>, usize) {
        match self {
            Self::Sqlite(path) => {
                // Opening read-write replays the WAL, as the next start of the service does.
                let db = rusqlite::Connection::open(path).unwrap();
                let check: Vec<String> = db
                    .prepare("PRAGMA integrity_check")
                    .unwrap()
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(check, ["ok"], "SQLite integrity_check");
                let violations: Vec<String> = db
                    .prepare("PRAGMA foreign_key_check")
                    .unwrap()
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert!(
                    violations.is_empty(),
                    "foreign key violations in {violations:?}"
                );
                let rows: Vec<(String, String)> = db
                    .prepare("SELECT chat_jid, id FROM messages")
                    .unwrap()
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let count = rows.len();
                (rows.into_iter().collect(), count)
            }
            Self::Postgres { url, .. } => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(inspect_postgres(url)),
        }
    }
}

async fn inspect_postgres(url: &str) -> (HashSet<(String, String)>, usize) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // amcheck verifies every B-tree index against its table: no half-applied write survives.
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        .await
        .unwrap();
    let checked = client
        .query(
            "SELECT bt_index_check(c.oid, true), c.relname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.amname = 'btree' AND n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap();
    assert!(!checked.is_empty(), "no indexes were checked");
    let rows = client
        .query("SELECT chat_jid, id FROM messages", &[])
        .await
        .unwrap();
    let count = rows.len();
    (
        rows.iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect(),
        count,
    )
}

/// The acknowledged chunks in the ack log, chunk number → (first message, count), and how many
/// times each was acknowledged. Only whole lines count; a line cut by the kill does not.
fn acknowledged(log: &Path) -> (BTreeMap<usize, (usize, usize)>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut chunks = BTreeMap::new();
    let mut repeats = 0;
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["base", _] => {}
            ["chunk", n, first, count] => {
                let entry = (first.parse().unwrap(), count.parse().unwrap());
                if chunks.insert(n.parse().unwrap(), entry).is_some() {
                    repeats += 1;
                }
            }
            other => panic!("unexpected ack log line {other:?}"),
        }
    }
    (chunks, repeats)
}

/// The (chat, id) of message number `i` of the fake's history.
fn message_key(i: usize) -> (String, String) {
    (
        format!("3161{:07}@s.whatsapp.net", i % CHATS),
        format!("HIST{i:08}"),
    )
}

fn serve(data: &Path, archive: &Archive, ack_log: &Path, bridge: u16) -> KillOnDrop {
    Command::new(common::binary())
        .arg("serve")
        .envs(common::isolated_env(data))
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env(
            "WHATSAPP_MCP_FAKE_SEED",
            format!("history:{CHATS}:{MESSAGES}"),
        )
        .env("WHATSAPP_MCP_FAKE_ACK_LOG", ack_log)
        .env("DATABASE_URL", archive.url())
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
        .env("WHATSAPP_MCP_LISTEN", "127.0.0.1:0")
        .env("WHATSAPP_MCP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(KillOnDrop)
        .unwrap()
}

fn killed_mid_sync_then_resumed(archive: &Archive, data: &Path) {
    let ack_log = data.join("whatsapp-acks.log");
    let started = Instant::now();
    let mut first = serve(data, archive, &ack_log, free_port());
    while acknowledged(&ack_log).0.len() < KILL_AFTER_CHUNKS {
        assert!(
            started.elapsed() < SYNC_TIMEOUT,
            "the sync did not get going"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the service exited during the sync"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no shutdown code runs, whatever transaction is open is cut off.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = started.elapsed();

    let (acked, repeats) = acknowledged(&ack_log);
    assert_eq!(repeats, 0, "a chunk was acknowledged twice");
    let acked_messages: usize = acked.values().map(|(_, count)| count).sum();
    let (stored, rows) = archive.inspect();
    let missing: Vec<(String, String)> = acked
        .values()
        .flat_map(|&(first, count)| first..first + count)
        .map(message_key)
        .filter(|key| !stored.contains(key))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged messages missing after the crash: {missing:?}"
    );
    assert_eq!(rows, stored.len(), "a message is stored twice");
    assert!(
        acked.len() < MESSAGES / CHUNK,
        "the sync finished before the kill; nothing was tested"
    );
    eprintln!(
        "killed after {killed_at:.1?}: {} chunks / {acked_messages} messages acknowledged, \
         {rows} messages in the archive",
        acked.len()
    );

    // The restart re-sends what was never acknowledged; `serve` is ready once it is stored.
    let bridge = free_port();
    let restarted = Instant::now();
    let mut second = serve(data, archive, &ack_log, bridge);
    let url = format!("http://127.0.0.1:{bridge}");
    assert!(
        wait_for_http(&format!("{url}/health"), SYNC_TIMEOUT),
        "the restarted service did not come up"
    );
    let resumed_in = restarted.elapsed();
    let (code, body) = get(&format!("{url}/api/status"));
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["statistics"]["message_count"], MESSAGES, "{report}");
    assert_eq!(report["statistics"]["chat_count"], CHATS, "{report}");
    assert_eq!(report["sync_status"]["progress_percent"], 100, "{report}");
    assert_eq!(report["sync_status"]["active"], false, "{report}");
    // Only the unacknowledged chunks came again: the sync resumed rather than started over.
    assert_eq!(
        report["sync_status"]["history_messages_received"],
        MESSAGES - acked_messages,
        "{report}"
    );
    terminate(second.id());
    let exit = wait_with_timeout(&mut second, Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");

    let (acked, repeats) = acknowledged(&ack_log);
    assert_eq!(repeats, 0, "a chunk was acknowledged twice");
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..MESSAGES / CHUNK).collect::<Vec<_>>()
    );
    let (stored, rows) = archive.inspect();
    assert_eq!((rows, stored.len()), (MESSAGES, MESSAGES));
    assert!(
        (0..MESSAGES)
            .map(message_key)
            .all(|key| stored.contains(&key))
    );
    eprintln!("the restart resumed and completed the sync in {resumed_in:.1?}");
}

#[test]
fn sqlite_survives_kill_9_during_history_sync() {
    let data = tempfile::tempdir().unwrap();
    let archive = Archive::Sqlite(data.path().join("archive.db"));
    killed_mid_sync_then_resumed(&archive, data.path());
}

#[test]
fn postgres_survives_kill_9_during_history_sync() {
    let data = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let archive = Archive::Postgres {
        url: cluster.new_database(),
        _cluster: cluster,
    };
    killed_mid_sync_then_resumed(&archive, data.path());
}

#[test]
fn sqlite_backup_during_history_sync_holds_every_acknowledged_message() {
    let data = tempfile::tempdir().unwrap();
    let archive = Archive::Sqlite(data.path().join("whatsapp.db"));
    let ack_log = data.path().join("whatsapp-acks.log");
    let started = Instant::now();
    let mut service = serve(data.path(), &archive, &ack_log, free_port());
    while acknowledged(&ack_log).0.len() < 20 {
        assert!(
            started.elapsed() < SYNC_TIMEOUT,
            "the sync did not get going"
        );
        assert!(service.try_wait().unwrap().is_none(), "the service exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (acked, _) = acknowledged(&ack_log);
    let copy = data.path().join("backup.db");
    let backup = || {
        Command::new(common::binary())
            .arg("backup")
            .arg(&copy)
            .envs(common::isolated_env(data.path()))
            .env("DATABASE_URL", archive.url())
            .output()
            .unwrap()
    };
    let out = backup();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let still_syncing = acknowledged(&ack_log).0.len() < MESSAGES / CHUNK;
    // A second backup to the same name is refused, and leaves the first alone.
    let again = backup();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    terminate(service.id());
    let exit = wait_with_timeout(&mut service, Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");

    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the copy holds private messages");
    let (stored, rows) = Archive::Sqlite(copy).inspect();
    let missing = acked
        .values()
        .flat_map(|&(first, count)| first..first + count)
        .map(message_key)
        .filter(|key| !stored.contains(key))
        .count();
    assert_eq!(
        missing, 0,
        "acknowledged before the backup, missing from it"
    );
    assert!(
        printed.contains(&format!("backed up {rows} messages")),
        "{printed}"
    );
    eprintln!(
        "backup during the sync: {} chunks acknowledged before it, {rows} messages in the copy, \
         sync still running afterwards: {still_syncing}",
        acked.len()
    );
}
