//! Hostile HTTP clients against the real binary on both ports: oversized bodies and headers get
//! refusals and the process lives on; clients that trickle their headers, never finish them,
//! never send anything or never finish their body are cut off, and while a crowd of them hangs
//! on, a normal client is still served and an event stream stays open.
//!
//! The cut-off times are printed (`--nocapture`); the assertions only bound them generously, so
//! they fail when a connection is never cut off, not when a machine is slow.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, free_port, get, wait_for_http};

/// Far above the server's 10 s header and 30 s body limits: only "never" fails.
const CUT_OFF_BOUND: Duration = Duration::from_secs(75);

/// Slow clients of each kind per port.
const CROWD: usize = 40;

struct Service {
    child: KillOnDrop,
    bridge: u16,
    mcp: u16,
    _data: tempfile::TempDir,
}

fn start() -> Service {
    let data = tempfile::tempdir().unwrap();
    let (bridge, mcp) = (free_port(), free_port());
    let child = Command::new(common::binary())
        .arg("serve")
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
        .env("WHATSAPP_MCP_LISTEN", format!("127.0.0.1:{mcp}"))
        .env_remove("PORT")
        .env_remove("MCP_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    for port in [bridge, mcp] {
        assert!(wait_for_http(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_secs(30)
        ));
    }
    Service {
        child,
        bridge,
        mcp,
        _data: data,
    }
}

/// Sends `head` and `body` (ignoring a server that hangs up early) and returns the status line.
fn exchange(port: u16, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
}

#[test]
fn oversized_requests_are_refused_and_the_service_lives_on() {
    let mut svc = start();
    let big = vec![b' '; 2 * 1024 * 1024];
    let cases = [
        (
            svc.mcp,
            post_head("/mcp", big.len(), ""),
            big.clone(),
            "413",
        ),
        (
            svc.mcp,
            post_head("/messages?sessionId=nope", big.len(), ""),
            big.clone(),
            "413",
        ),
        (
            svc.bridge,
            post_head("/mcp", big.len(), ""),
            big.clone(),
            "413",
        ),
        (
            svc.bridge,
            post_head("/api/pair", 200 * 1024, ""),
            vec![b' '; 200 * 1024],
            "413",
        ),
    ];
    for (port, head, body, want) in &cases {
        let status = exchange(*port, head, body);
        assert!(
            status.contains(want),
            "port {port} {}: {status:?}",
            head.lines().next().unwrap()
        );
    }

    // Without a Content-Length, the same limit holds for a chunked body.
    let mut chunked = Vec::new();
    for _ in 0..64 {
        chunked.extend_from_slice(format!("{:x}\r\n", 32 * 1024).as_bytes());
        chunked.extend_from_slice(&[b' '; 32 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for port in [svc.mcp, svc.bridge] {
        let head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let status = exchange(port, head, &chunked);
        assert!(status.contains("413"), "chunked on {port}: {status:?}");
    }

    // Headers far beyond what any client sends are refused by the HTTP layer itself.
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    for port in [svc.mcp, svc.bridge] {
        let status = exchange(port, &huge_header, b"");
        assert!(
            status.is_empty() || status.contains("431") || status.contains("400"),
            "huge header on {port}: {status:?}"
        );
    }

    assert!(svc.child.try_wait().unwrap().is_none(), "the service died");
    for port in [svc.mcp, svc.bridge] {
        assert_eq!(get(&format!("http://127.0.0.1:{port}/health")).0, 200);
    }
}

/// How one slow client behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Sends its request head one byte every 200 ms, forever.
    Trickle,
    /// Sends the request line and one header, then nothing.
    StalledHead,
    /// Connects and sends nothing.
    Silent,
    /// Sends a complete head announcing 1000 bytes of body, and one byte of it.
    StalledBody,
}

/// What happened to a slow client: how long until the server hung up, and its answer if any.
#[derive(Debug)]
struct CutOff {
    kind: Kind,
    port: u16,
    after: Option<Duration>,
    status_line: String,
}

fn slow_client(kind: Kind, port: u16) -> CutOff {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let trickle = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}",
        "a".repeat(10_000)
    );
    match kind {
        Kind::Trickle | Kind::Silent => {}
        Kind::StalledHead => stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap(),
        Kind::StalledBody => {
            stream
                .write_all(post_head("/mcp", 1000, "").as_bytes())
                .unwrap();
            stream.write_all(b"{").unwrap();
        }
    }
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = 0;
    let after = loop {
        if started.elapsed() > CUT_OFF_BOUND {
            break None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break Some(started.elapsed()),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if kind == Kind::Trickle {
                    let byte = trickle.as_bytes()[sent % trickle.len()];
                    if stream.write_all(&[byte]).is_err() {
                        break Some(started.elapsed());
                    }
                    sent += 1;
                }
            }
            Err(_) => break Some(started.elapsed()),
        }
    };
    CutOff {
        kind,
        port,
        after,
        status_line: String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
    }
}

#[test]
fn slow_clients_are_cut_off_and_do_not_crowd_out_others() {
    let mut svc = start();
    let kinds = [
        Kind::Trickle,
        Kind::StalledHead,
        Kind::Silent,
        Kind::StalledBody,
    ];
    let mut crowd = Vec::new();
    for port in [svc.bridge, svc.mcp] {
        for kind in kinds {
            for _ in 0..CROWD {
                crowd.push(std::thread::spawn(move || slow_client(kind, port)));
            }
        }
    }
    // An event stream lives longer than any request-reading limit: it must not be cut.
    let mcp = svc.mcp;
    let stream_watch = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", mcp)).unwrap();
        stream
            .write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let started = Instant::now();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while started.elapsed() < Duration::from_secs(20) {
            match stream.read(&mut buf) {
                Ok(0) => return (false, seen),
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return (false, seen),
            }
        }
        (true, seen)
    });

    // With the whole crowd connected, a normal client still gets its answers.
    std::thread::sleep(Duration::from_secs(2));
    let normal_started = Instant::now();
    for port in [svc.bridge, svc.mcp] {
        let (status, body) = get(&format!("http://127.0.0.1:{port}/health"));
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = get(&format!("http://127.0.0.1:{}/api/status", svc.bridge));
    assert_eq!(status, 200);
    println!(
        "normal client served in {:?} beside {} slow connections",
        normal_started.elapsed(),
        crowd.len()
    );

    let results: Vec<CutOff> = crowd.into_iter().map(|t| t.join().unwrap()).collect();
    for kind in kinds {
        for port in [svc.bridge, svc.mcp] {
            let times: Vec<Duration> = results
                .iter()
                .filter(|r| r.kind == kind && r.port == port)
                .filter_map(|r| r.after)
                .collect();
            let max = times.iter().max().copied().unwrap_or_default();
            let min = times.iter().min().copied().unwrap_or_default();
            println!(
                "{kind:?} on {}: {} of {CROWD} cut off, after {min:.1?} to {max:.1?}",
                if port == svc.bridge {
                    "8080 (bridge)"
                } else {
                    "3000 (mcp)"
                },
                times.len()
            );
        }
    }
    for result in &results {
        assert!(result.after.is_some(), "never cut off: {result:?}");
        // Both ports serve /mcp; its body reader answers before hanging up.
        if result.kind == Kind::StalledBody {
            assert!(
                result.status_line.contains("408"),
                "a stalled body on /mcp: {result:?}"
            );
        }
    }

    let (survived, seen) = stream_watch.join().unwrap();
    assert!(survived, "the event stream was cut: {seen:?}");
    assert!(seen.contains("event: endpoint"), "{seen:?}");
    assert!(svc.child.try_wait().unwrap().is_none(), "the service died");
    for port in [svc.bridge, svc.mcp] {
        assert_eq!(get(&format!("http://127.0.0.1:{port}/health")).0, 200);
    }
}
