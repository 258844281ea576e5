//! The real binary when its database fails: PostgreSQL stopped for 30 s while clients keep
//! calling tools (answers, reports the outage, recovers by itself), and SQLite on a full disk and
//! on a read-only file system (clear errors, nothing corrupted, earlier data intact).
#![cfg(feature = "fake-engine")]

mod common;
mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{NotifySocket, free_port, get, terminate, wait_with_timeout};
use serde_json::{Value, json};

/// How long PostgreSQL stays down.
const OUTAGE: Duration = Duration::from_secs(30);

/// One thing a load client did, and when.
#[derive(Debug)]
struct Event {
    at: Instant,
    what: &'static str,
    /// `Ok(true)`: answered and worked; `Ok(false)`: answered with an error; `Err`: no answer.
    outcome: Result<bool, String>,
}

fn tool_outcome(outcome: &wire::Outcome) -> Result<bool, String> {
    match outcome {
        Ok(result) => Ok(result["isError"] != json!(true)),
        Err(err) => Err(err.clone()),
    }
}

/// Keeps one Streamable HTTP and one SSE session calling tools, and `/health` polled on both
/// ports, until `stop`; every outcome is logged.
fn keep_calling(
    bridge: u16,
    mcp: u16,
    stop: &Arc<AtomicBool>,
    log: &Arc<Mutex<Vec<Event>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let record = |log: &Arc<Mutex<Vec<Event>>>, what, outcome| {
        log.lock().unwrap().push(Event {
            at: Instant::now(),
            what,
            outcome,
        });
    };
    let mut threads = Vec::new();
    let (stop1, log1) = (Arc::clone(stop), Arc::clone(log));
    threads.push(std::thread::spawn(move || {
        let mut client = wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp")).unwrap();
        while !stop1.load(Ordering::SeqCst) {
            let outcome = client.call("list_chats", &json!({"limit": 5}));
            record(&log1, "streamable list_chats", tool_outcome(&outcome));
            let outcome = client.call("search_contacts", &json!({"query": "ada"}));
            record(&log1, "streamable search_contacts", tool_outcome(&outcome));
            std::thread::sleep(Duration::from_millis(100));
        }
        client.close().unwrap();
    }));
    let (stop2, log2) = (Arc::clone(stop), Arc::clone(log));
    threads.push(std::thread::spawn(move || {
        let mut client = wire::Sse::open(mcp).unwrap();
        while !stop2.load(Ordering::SeqCst) {
            let outcome = client.call("list_messages", &json!({"query": "dinner"}));
            record(&log2, "sse list_messages", tool_outcome(&outcome));
            std::thread::sleep(Duration::from_millis(100));
        }
        client.close();
    }));
    let (stop3, log3) = (Arc::clone(stop), Arc::clone(log));
    threads.push(std::thread::spawn(move || {
        while !stop3.load(Ordering::SeqCst) {
            for (what, port) in [("health mcp", mcp), ("health bridge", bridge)] {
                let started = Instant::now();
                let (code, body) = get(&format!("http://127.0.0.1:{port}/health"));
                // /health must not wait on the database: anything slow counts as a failure.
                let outcome = if code == 200 && started.elapsed() < Duration::from_secs(2) {
                    Ok(true)
                } else {
                    Err(format!("HTTP {code} after {:?}: {body}", started.elapsed()))
                };
                record(&log3, what, outcome);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    threads
}

#[test]
fn postgres_outage_under_load_is_reported_and_recovered_from() {
    let data = tempfile::tempdir().unwrap();
    let mut cluster = PgCluster::start();
    let url = cluster.new_database();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = common::serve_demo(data.path(), &url, &notify, bridge, mcp);
    let pid = child.id();
    let status_url = format!("http://127.0.0.1:{bridge}/api/status");

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let threads = keep_calling(bridge, mcp, &stop, &log);
    std::thread::sleep(Duration::from_secs(3));

    cluster.stop();
    let down_at = Instant::now();
    let mut status_lines = Vec::new();
    let mut outage_reports = 0;
    while down_at.elapsed() < OUTAGE {
        status_lines.extend(notify.collect_until(Duration::from_millis(500), |_| false));
        let (code, body) = get(&status_url);
        assert_eq!(code, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        if report["statistics"]["database_exists"] == json!(false)
            && report["error"]
                .as_str()
                .is_some_and(|e| e.contains("archive unavailable"))
        {
            outage_reports += 1;
        }
    }
    cluster.start_again();
    let up_at = Instant::now();
    // Recovered: a tool call answers normally again on the sessions opened before the outage.
    let recovered_at = loop {
        let first_ok = log
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.at > up_at && e.what.contains("list") && e.outcome == Ok(true))
            .map(|e| e.at);
        if let Some(at) = first_ok {
            break at;
        }
        assert!(
            up_at.elapsed() < Duration::from_secs(60),
            "no tool works again after PostgreSQL came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let recovered_status: Vec<String> = notify
        .collect_until(Duration::from_secs(20), |l| {
            l.starts_with("STATUS=") && l.contains("messages in")
        })
        .into_iter()
        .filter(|l| l.starts_with("STATUS="))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }

    let events = std::mem::take(&mut *log.lock().unwrap());
    let no_answer: Vec<&Event> = events.iter().filter(|e| e.outcome.is_err()).collect();
    assert!(
        no_answer.is_empty(),
        "requests without an answer: {no_answer:?}"
    );
    let during = |e: &&Event| e.at > down_at + Duration::from_secs(1) && e.at < up_at;
    let failed_tools = events
        .iter()
        .filter(during)
        .filter(|e| e.what.contains("list") && e.outcome == Ok(false))
        .count();
    let health_checks = events.iter().filter(|e| e.what.contains("health")).count();
    assert!(failed_tools > 0, "no tool call noticed the outage");
    assert!(outage_reports > 0, "/api/status never reported the outage");
    let outage_status = status_lines
        .iter()
        .find(|l| l.starts_with("STATUS=") && l.contains("archive unavailable"));
    assert!(
        outage_status.is_some(),
        "STATUS= never reported the outage: {status_lines:?}"
    );
    assert!(
        recovered_status.iter().any(|l| l.contains("messages in")),
        "STATUS= did not recover: {recovered_status:?}"
    );
    let (code, body) = get(&status_url);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, &report["error"]), (200, &Value::Null), "{body}");
    assert!(report["statistics"]["message_count"].as_u64() > Some(0));
    assert_eq!(child.id(), pid);
    assert!(child.try_wait().unwrap().is_none(), "the service exited");
    eprintln!(
        "PostgreSQL down {OUTAGE:?}: {} requests, {health_checks} /health all answered, \
         {failed_tools} tool calls answered with an error during the outage, \
         {outage_reports} /api/status reports of it, first STATUS= {:?}; tools worked again \
         {:.2?} after PostgreSQL was back",
        events.len(),
        outage_status.unwrap(),
        recovered_at.duration_since(up_at),
    );
    terminate(pid);
    let exit = wait_with_timeout(&mut child, Duration::from_secs(20)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}

/// A tmpfs of `size` mounted on a fresh directory for the life of the value (root only, as in
/// CI): a file system that fills up or turns read-only for real.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the disk fault tests mount a tmpfs and need root (as CI runs them)"
        );
        let dir = tempfile::tempdir().unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size},mode=0700")],
            dir.path(),
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, option: &str) {
        mount(&["-o", &format!("remount,{option}")], self.path());
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0xA5u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn mount(args: &[&str], target: &Path) {
    let status = Command::new("mount")
        .args(args)
        .args(["tmpfs"])
        .arg(target)
        .status()
        .unwrap();
    assert!(status.success(), "mount {args:?} {}", target.display());
}

fn integrity(path: &Path) -> (String, i64) {
    let db = rusqlite::Connection::open(path).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    let count: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
        .unwrap();
    (check, count)
}

fn send(client: &mut wire::Streamable, text: &str) -> Value {
    client
        .call(
            "send_message",
            &json!({"recipient": "31611111111", "message": text}),
        )
        .unwrap()
}

fn error_text(result: &Value) -> String {
    assert_eq!(result["isError"], json!(true), "{result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

#[test]
fn sqlite_on_a_full_disk_fails_clearly_and_recovers() {
    let disk = SmallDisk::mount("4m");
    let db = disk.path().join("archive.db");
    let url = format!("sqlite://{}", db.display());
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = common::serve_demo(disk.path(), &url, &notify, bridge, mcp);
    let mut client = wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp")).unwrap();
    assert_eq!(
        send(&mut client, "before the disk filled")["isError"],
        json!(false)
    );

    let filler = disk.fill();
    // Each message needs new pages sooner or later; keep writing until SQLite hits the wall.
    let mut refused = None;
    for i in 0..200 {
        let result = send(
            &mut client,
            &format!("written on a full disk {i} {}", "x".repeat(2000)),
        );
        if result["isError"] == json!(true) {
            refused = Some(error_text(&result));
            break;
        }
    }
    let refused = refused.expect("no write failed on a full disk");
    assert!(refused.contains("full"), "{refused}");
    let (code, body) = get(&format!("http://127.0.0.1:{bridge}/api/status"));
    assert_eq!(code, 200, "{body}");
    let reads = client
        .call("list_messages", &json!({"query": "disk filled"}))
        .unwrap();
    assert_eq!(reads["isError"], json!(false), "reads still work: {reads}");

    std::fs::remove_file(&filler).unwrap();
    let result = send(&mut client, "after space was freed");
    assert_eq!(result["isError"], json!(false), "{result}");
    client.close().unwrap();
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(20)).expect("exits");
    assert!(exit.success(), "{exit:?}");

    let (check, _) = integrity(&db);
    assert_eq!(check, "ok");
    let store = rusqlite::Connection::open(&db).unwrap();
    for text in ["before the disk filled", "after space was freed"] {
        let found: i64 = store
            .query_row(
                "SELECT count(*) FROM messages WHERE text = ?1",
                [text],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1, "{text}");
    }
    eprintln!("full disk: the tool said {refused:?}");

    // Starting on a disk without room for a new archive: a clear message and a failure exit.
    let elsewhere = tempfile::tempdir().unwrap();
    let filler = disk.fill();
    let fresh = disk.path().join("fresh.db");
    let out = Command::new(common::binary())
        .arg("serve")
        .envs(common::isolated_env(elsewhere.path()))
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("DATABASE_URL", format!("sqlite://{}", fresh.display()))
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", "127.0.0.1:0")
        .env("WHATSAPP_MCP_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    std::fs::remove_file(&filler).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the archive"), "{stderr}");
    eprintln!("start on a full disk: exit 1, {:?}", stderr.trim());
}

#[test]
fn sqlite_on_a_read_only_file_system_is_refused_clearly_and_left_intact() {
    let disk = SmallDisk::mount("16m");
    let db = disk.path().join("archive.db");
    let url = format!("sqlite://{}", db.display());
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = common::serve_demo(disk.path(), &url, &notify, bridge, mcp);
    let mut client = wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp")).unwrap();
    assert_eq!(
        send(&mut client, "before read-only")["isError"],
        json!(false)
    );
    client.close().unwrap();
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(20)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    let (_, before) = integrity(&db);

    // Linux refuses to make a file system read-only while files on it are open for writing, so
    // this is the start on a read-only disk (a full disk under a running service is tested above).
    disk.remount("ro");
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(common::binary())
        .arg("serve")
        .envs(common::isolated_env(elsewhere.path()))
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("DATABASE_URL", &url)
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", "127.0.0.1:0")
        .env("WHATSAPP_MCP_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    disk.remount("rw");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the archive"), "{stderr}");
    assert!(
        stderr.contains("Read-only file system"),
        "says why: {stderr}"
    );
    eprintln!(
        "start on a read-only file system: exit 1, {:?}",
        stderr.trim()
    );

    let (check, count) = integrity(&db);
    assert_eq!((check.as_str(), count), ("ok", before));
    let store = rusqlite::Connection::open(&db).unwrap();
    let found: i64 = store
        .query_row(
            "SELECT count(*) FROM messages WHERE text = 'before read-only'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, 1);
}

/// The archive file is there but read-only for the service's user (root writes regardless, so
/// the service runs as `nobody`, as the packaged unit runs as its own unprivileged user).
#[test]
fn sqlite_read_only_archive_file_is_refused_clearly_and_left_intact() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches to the nobody user and needs root (as CI runs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let open_up = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    open_up(dir.path(), 0o755);
    let db = dir.path().join("archive.db");
    let url = format!("sqlite://{}", db.display());
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = common::serve_demo(dir.path(), &url, &notify, bridge, mcp);
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(20)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    let (_, before) = integrity(&db);
    open_up(&db, 0o644);

    // nobody needs a binary it may run and a data directory of its own.
    let home = tempfile::tempdir().unwrap();
    open_up(home.path(), 0o755);
    let binary = home.path().join("whatsapp-mcp");
    std::fs::copy(env!("CARGO_BIN_EXE_whatsapp-mcp"), &binary).unwrap();
    open_up(&binary, 0o755);
    let data = home.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user");
    std::os::unix::fs::chown(&data, Some(nobody.uid.as_raw()), None).unwrap();
    let mut command = Command::new("runuser");
    command.args(["-u", "nobody", "--", "env"]);
    for (key, value) in common::isolated_env(&data) {
        command.arg(format!("{key}={value}"));
    }
    let out = command
        .arg(format!("DATABASE_URL={url}"))
        .arg("WHATSAPP_MCP_BRIDGE_LISTEN=127.0.0.1:0")
        .arg("WHATSAPP_MCP_LISTEN=127.0.0.1:0")
        .arg(&binary)
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .expect("runuser (util-linux) is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the archive"), "{stderr}");
    assert!(stderr.contains("Permission denied"), "says why: {stderr}");
    eprintln!(
        "start with a read-only archive file: exit 1, {:?}",
        stderr.trim()
    );
    let (check, count) = integrity(&db);
    assert_eq!((check.as_str(), count), ("ok", before));
}
