//! The binary as users meet it: socket-activated cold start and idle memory of `serve`, `stdio`
//! cold start (relay to a running `serve`, and `--standalone`) and its idle memory, and
//! Streamable HTTP throughput of `get_chat` with 64 concurrent clients over loopback. `serve`'s
//! figures are taken with the archive on SQLite and on PostgreSQL.
//!
//! `cargo bench` builds the binary with the release profile; under `cargo test` the debug
//! binary runs a few rounds of each, checking the answers, and no targets are judged.

#[path = "support/archive.rs"]
mod archive;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use archive::{Archive, Spec};
use common::stdio::StdioClient;
use common::{KillOnDrop, free_port, terminate, wait_with_timeout};
use measure::{Samples, full_run, rss_kb};
use serde_json::{Value, json};

fn main() {
    println!(
        "process benchmarks of {}{}",
        common::binary(),
        if full_run() { "" } else { " (smoke run)" }
    );
    let cluster = common::pg::PgCluster::start();
    // What ships: the WhatsApp engine on. Offline it fails to connect and backs off, as it
    // does on a machine that cannot reach WhatsApp; `none` is the archive and tools alone.
    for engine in ["whatsapp", "none"] {
        socket_activated_cold_start("SQLite", None, engine);
        socket_activated_cold_start("PostgreSQL", Some(&cluster.new_database()), engine);
    }
    stdio_cold_start();
    http_throughput("SQLite", None);
    http_throughput("PostgreSQL", Some(cluster.new_database()));
}

/// Whether something listens on 127.0.0.1:`port`, read from /proc so that checking does not
/// itself connect (a connection would start the socket-activated service).
fn listening(port: u16) -> bool {
    let needle = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&needle.as_str()) && fields.get(3) == Some(&"0A")
        })
}

/// A plain HTTP/1.1 GET on a fresh connection; returns the status line once the response is
/// complete (the server closes after it).
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response.lines().next().unwrap_or_default().to_owned()
}

/// `database`: a PostgreSQL URL, or `None` for the default SQLite file in the data directory.
/// `engine`: the `WHATSAPP_MCP_ENGINE` the service runs with.
fn socket_activated_cold_start(backend: &str, database: Option<&str>, engine: &str) {
    let rounds = measure::size(30, 3);
    let target = full_run().then_some(Duration::from_millis(100));
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut first_ever = Samples::new();
    let mut again = Samples::new();
    let mut rss = Vec::new();
    for round in 0..rounds {
        // The first round creates and migrates the archive; later ones open it.
        if round == 0 {
            std::fs::remove_dir_all(data.path()).ok();
            std::fs::create_dir_all(data.path()).expect("the data directory");
        }
        let (bridge, mcp) = (free_port(), free_port());
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l")
            .arg(format!("127.0.0.1:{bridge}"))
            .arg("-l")
            .arg(format!("127.0.0.1:{mcp}"))
            .arg("--fdname=bridge:mcp");
        let env = common::isolated_env(data.path());
        for (key, value) in env.iter().filter(|(key, _)| *key != "WHATSAPP_MCP_ENGINE") {
            cmd.arg("-E").arg(format!("{key}={value}"));
        }
        cmd.arg("-E").arg("WHATSAPP_MCP_LOG=warn");
        cmd.arg("-E").arg(format!("WHATSAPP_MCP_ENGINE={engine}"));
        if let Some(url) = database {
            cmd.arg("-E").arg(format!("DATABASE_URL={url}"));
        }
        let mut child = KillOnDrop(
            cmd.arg(common::binary())
                .arg("serve")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("systemd-socket-activate is installed (package systemd)"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(listening(bridge) && listening(mcp)) {
            assert!(Instant::now() < deadline, "the sockets were never bound");
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let status = http_get(mcp, "/health");
        let elapsed = started.elapsed();
        assert!(status.contains(" 200 "), "first response: {status:?}");
        if round == 0 {
            first_ever.push(elapsed);
        } else {
            again.push(elapsed);
        }
        // Idle memory: after the first request has been served and things have settled.
        std::thread::sleep(Duration::from_millis(measure::size(2_000, 300)));
        if let Some(kb) = rss_kb(child.id()) {
            rss.push(kb);
        }
        terminate(child.id());
        let exit = wait_with_timeout(&mut child, Duration::from_secs(15));
        assert!(
            exit.is_some_and(|e| e.success()),
            "serve did not stop cleanly: {exit:?}"
        );
    }
    first_ever.report(
        &format!("serve ({backend}, engine {engine}): socket-activated first request, new archive"),
        target,
    );
    again.report(
        &format!(
            "serve ({backend}, engine {engine}): socket-activated first request, existing archive"
        ),
        target,
    );
    report_rss(
        &format!("serve ({backend}, engine {engine}): idle VmRSS, empty archive"),
        &rss,
        TARGET_RSS_KIB,
    );
}

/// `get_chat` calls per second that 64 kept-alive clients should get through on 2 cores.
const TARGET_CALLS_PER_SECOND: f64 = 5_000.0;

/// User plus system CPU time a process has used so far, from /proc/PID/stat (in clock ticks of
/// 1/100 s, the fixed USER_HZ Linux reports there). Includes the time spent by its threads and
/// by children that already ended and were waited for.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name in parentheses may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the name: state is field 0, utime field 11, stime field 12 (stat(5) fields 14, 15).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// 25 MB (decimal) in the KiB that /proc reports as "kB".
const TARGET_RSS_KIB: u64 = 25_000_000 / 1024;

/// KiB as decimal megabytes.
fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn report_rss(name: &str, samples: &[u64], target_kb: u64) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let max = sorted.last().copied().unwrap_or_default();
    let verdict = if !full_run() {
        String::new()
    } else if max <= target_kb {
        format!("  target <= {:.0} MB met", mb(target_kb))
    } else {
        format!(
            "  target <= {:.0} MB MISSED by {:.1} MB",
            mb(target_kb),
            mb(max - target_kb)
        )
    };
    println!(
        "{name:<58} n={:<5} median {:.1} MB  max {:.1} MB{verdict}",
        samples.len(),
        mb(median),
        mb(max)
    );
}

fn stdio_cold_start() {
    let rounds = measure::size(30, 3);
    let init_target = full_run().then_some(Duration::from_millis(20));
    let data = tempfile::tempdir().expect("a temporary directory");
    let archive = format!("sqlite://{}", data.path().join("whatsapp.db").display());
    let (mut daemon, bridge, _) = common::serve_archive(data.path(), &archive);
    let standalone_data = tempfile::tempdir().expect("a temporary directory");
    // The standalone process is the only user of its archive; create it once so every round
    // measures opening it, as a desktop client's restarts do.
    for (mode, args, dir) in [
        ("relay", vec!["stdio"], data.path()),
        (
            "--standalone",
            vec!["stdio", "--standalone"],
            standalone_data.path(),
        ),
    ] {
        let mut init = Samples::new();
        let mut list = Samples::new();
        let mut rss = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let mut session = StdioClient::spawn(&args, dir, bridge);
            session.initialize();
            init.push(started.elapsed());
            session.initialized();
            let tools = session
                .request("tools/list", &json!({}))
                .expect("tools/list");
            list.push(started.elapsed());
            assert!(
                tools["tools"].as_array().is_some_and(|t| t.len() >= 19),
                "{tools}"
            );
            std::thread::sleep(Duration::from_millis(measure::size(1_000, 200)));
            if let Some(kb) = rss_kb(session.child.id()) {
                rss.push(kb);
            }
            // Closing stdin is how a desktop client ends the session.
            let exit = session.close();
            assert!(exit.is_some(), "stdio {mode} did not exit on EOF");
        }
        init.report(
            &format!("stdio {mode}: spawn -> initialize answered"),
            init_target,
        );
        list.report(&format!("stdio {mode}: spawn -> tools/list answered"), None);
        report_rss(&format!("stdio {mode}: idle VmRSS"), &rss, TARGET_RSS_KIB);
    }
    terminate(daemon.id());
    wait_with_timeout(&mut daemon, Duration::from_secs(15));
}

/// One Streamable HTTP session over a kept-alive loopback connection.
struct HttpSession {
    agent: ureq::Agent,
    url: String,
    session: String,
}

impl HttpSession {
    fn open(port: u16) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let response = agent
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .send(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}})
                .to_string(),
            )
            .expect("initialize");
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        let mut this = Self {
            agent,
            url,
            session,
        };
        this.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        this
    }

    fn post(&mut self, body: &Value) -> String {
        let mut response = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-06-18")
            .send(body.to_string())
            .expect("POST /mcp");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("a body");
        assert!(status == 200 || status == 202, "HTTP {status}: {text}");
        text
    }
}

/// `database`: a PostgreSQL URL, or `None` for a SQLite file in a temporary directory.
fn http_throughput(backend: &str, database: Option<String>) {
    let clients = 64;
    let duration = Duration::from_millis(measure::size(20_000, 1_000));
    let spec = Spec {
        messages: measure::size(100_000, 300),
        chats: measure::size(1_000, 10),
        contacts: measure::size(200, 5),
        seed: Spec::FULL.seed,
    };
    let archive = Arc::new(Archive::plan(spec));
    let data = tempfile::tempdir().expect("a temporary directory");
    let url = database
        .unwrap_or_else(|| format!("sqlite://{}", data.path().join("whatsapp.db").display()));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let url = whatsapp_mcp::config::DatabaseUrl::parse("bench", &url).expect("a URL");
            let store = whatsapp_mcp::store::open(&url).await.expect("the store");
            archive.write_store(store.as_ref()).await.expect("written");
        });
    let (mut daemon, _, mcp) = common::serve_archive(data.path(), &url);

    let stop = Arc::new(AtomicBool::new(false));
    // Every client opens its session first; the clock starts when all are ready.
    let ready = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|n| {
            let stop = Arc::clone(&stop);
            let archive = Arc::clone(&archive);
            let ready = Arc::clone(&ready);
            std::thread::spawn(move || {
                let mut session = HttpSession::open(mcp);
                ready.wait();
                let mut samples = Samples::new();
                let mut rng = fastrand::Rng::with_seed(n as u64);
                let mut id = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    let chat = &archive.chats[rng.usize(..archive.chats.len())];
                    id += 1;
                    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": "get_chat", "arguments": {"chat_jid": chat.jid.as_str()}}});
                    let t = Instant::now();
                    let text = session.post(&body);
                    samples.push(t.elapsed());
                    assert!(
                        text.contains(chat.jid.as_str()) && !text.contains("\"isError\":true"),
                        "get_chat {}: {text}",
                        chat.jid
                    );
                }
                samples
            })
        })
        .collect();
    ready.wait();
    let cpu_before = cpu_time(daemon.id());
    let started = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut all = Samples::new();
    for thread in threads {
        let samples = thread.join().expect("a client thread");
        assert!(!samples.is_empty(), "a client made no call");
        all.merge(samples);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(daemon.id()).saturating_sub(cpu_before);
    measure::report_rate(
        &format!("HTTP ({backend}): get_chat, {clients} concurrent clients"),
        all.len() as u64,
        elapsed,
        "call",
        full_run().then_some(TARGET_CALLS_PER_SECOND),
    );
    println!(
        "HTTP ({backend}): serve CPU time (user + system) per call {:.1} µs over {} calls",
        cpu.as_secs_f64() * 1e6 / all.len().max(1) as f64,
        all.len()
    );
    all.report(
        &format!("HTTP ({backend}): get_chat latency, {clients} clients"),
        None,
    );
    if let Some(kb) = rss_kb(daemon.id()) {
        println!(
            "HTTP ({backend}): serve VmRSS after the run ({} messages archived) {:.1} MB",
            spec.messages,
            mb(kb)
        );
    }
    terminate(daemon.id());
    wait_with_timeout(&mut daemon, Duration::from_secs(15));
}
