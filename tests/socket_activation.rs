//! The real binary under `systemd-socket-activate`, talking sd_notify to a socket the test holds.

mod common;
mod wire;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use common::{
    NotifySocket, free_port, get, socket_activate as activate, terminate, wait_with_timeout,
};

#[test]
fn named_sockets_readiness_status_watchdog_and_clean_stop() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    // The MCP socket comes first on purpose: the names, not the order, must decide.
    let mut child = activate(
        &[mcp, bridge],
        "mcp:bridge",
        &notify,
        data.path(),
        1_000_000,
    );

    let (status, body) = get(&format!("http://127.0.0.1:{bridge}/api/status"));
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["bridge_status"]["running"], true);
    assert_eq!(report["backend"], "sqlite");
    assert!(
        data.path().join("whatsapp.db").exists(),
        "the service must use the test's data directory, not the machine's"
    );

    let seen = notify.collect_until(Duration::from_secs(10), |line| line == "READY=1");
    assert!(
        seen.iter().any(|l| l == "READY=1"),
        "no READY=1 in {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("STATUS=") && l.contains("messages")),
        "no STATUS= with the archive size in {seen:?}"
    );

    // WATCHDOG_USEC=1s asks for a ping every 0.5 s: about 6 in 3 s.
    let mut pings = 0;
    let window = notify.collect_until(Duration::from_secs(3), |_| false);
    pings += window.iter().filter(|l| *l == "WATCHDOG=1").count();
    assert!(
        (4..=9).contains(&pings),
        "expected about 6 watchdog pings in 3 s, got {pings}: {window:?}"
    );

    let (status, body) = get(&format!("http://127.0.0.1:{mcp}/health"));
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&format!("http://127.0.0.1:{bridge}/status"));
    assert_eq!(status, 200);

    terminate(child.id());
    let stopping = notify.collect_until(Duration::from_secs(10), |line| line == "STOPPING=1");
    assert!(stopping.iter().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits after SIGTERM");
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn unnamed_sockets_are_taken_by_position() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = activate(&[bridge, mcp], "", &notify, data.path(), 0);

    let (status, body) = get(&format!("http://127.0.0.1:{bridge}/api/session-backend"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"schema_ok\":true"), "{body}");
    // The MCP port answers MCP paths, not bridge ones.
    let (status, _) = get(&format!("http://127.0.0.1:{mcp}/api/status"));
    assert_eq!(status, 404);

    let seen = notify.collect_until(Duration::from_secs(10), |line| line == "READY=1");
    assert!(seen.iter().any(|l| l == "READY=1"), "{seen:?}");
    // No WATCHDOG_USEC: no pings.
    let quiet = notify.collect_until(Duration::from_millis(1500), |_| false);
    assert!(!quiet.iter().any(|l| l == "WATCHDOG=1"), "{quiet:?}");

    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_single_passed_socket_is_refused_clearly() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let port = free_port();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.path.display()))
        .args(
            common::isolated_env(data.path())
                .into_iter()
                .flat_map(|(key, value)| ["-E".to_owned(), format!("{key}={value}")]),
        )
        .arg(common::binary())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    // Trigger the exec; the connection is dropped when the service gives up.
    common::wait_for_listener(port, Duration::from_secs(10));
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(!exit.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("two are needed"), "{stderr}");
    let seen = notify.collect_until(Duration::from_millis(200), |_| false);
    assert!(!seen.iter().any(|l| l == "READY=1"), "{seen:?}");
}

#[test]
fn every_socket_of_a_name_is_served() {
    // A socket unit with two ListenStream= lines hands over two descriptors with one name.
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge_a, bridge_b, mcp_a, mcp_b) = (free_port(), free_port(), free_port(), free_port());
    let mut child = activate(
        &[bridge_a, mcp_a, bridge_b, mcp_b],
        "bridge:mcp:bridge:mcp",
        &notify,
        data.path(),
        0,
    );
    for bridge in [bridge_a, bridge_b] {
        let (status, body) = get(&format!("http://127.0.0.1:{bridge}/api/status"));
        assert_eq!(status, 200, "bridge port {bridge}: {body}");
    }
    for mcp in [mcp_a, mcp_b] {
        let mut client = wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp"))
            .unwrap_or_else(|err| panic!("MCP port {mcp}: {err}"));
        let result = client.call("get_sync_status", &json!({})).unwrap();
        assert_ne!(result["isError"], json!(true), "{result}");
        // The MCP ports answer MCP paths, not bridge ones.
        let (status, _) = get(&format!("http://127.0.0.1:{mcp}/api/status"));
        assert_eq!(status, 404);
    }
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}

/// A service manager that stops reading its notify socket: the queue fills (the watchdog pings
/// every 10 ms here) and every further send would wait. Nothing else may: health checks and
/// tool calls keep being answered for 30 s, and SIGTERM still stops the service cleanly.
#[test]
fn a_notify_socket_nobody_reads_holds_nothing_up() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = activate(&[bridge, mcp], "bridge:mcp", &notify, data.path(), 20_000);
    let seen = notify.collect_until(Duration::from_secs(10), |line| line == "READY=1");
    assert!(seen.iter().any(|l| l == "READY=1"), "{seen:?}");
    // From here on nobody reads the notify socket.

    let mut client = wire::Streamable::open(&format!("http://127.0.0.1:{mcp}/mcp")).unwrap();
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let (status, body) = get(&format!("http://127.0.0.1:{bridge}/health"));
        assert_eq!(status, 200, "after {:?}: {body}", started.elapsed());
        let result = client
            .call("get_sync_status", &json!({}))
            .unwrap_or_else(|err| panic!("after {:?}: {err}", started.elapsed()));
        assert_ne!(result["isError"], json!(true), "{result}");
        rounds += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{rounds} rounds of /health and a tool call with the notify queue full");

    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15))
        .expect("SIGTERM stops the service while its notify socket is full");
    assert!(exit.success(), "{exit:?}");
}
