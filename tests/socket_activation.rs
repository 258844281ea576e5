//! The real binary under `systemd-socket-activate`, talking sd_notify to a socket the test holds.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{NotifySocket, free_port, get, terminate, wait_with_timeout};

/// Starts the binary behind `systemd-socket-activate` with the given `-l` ports and fd names.
fn activate(
    ports: &[u16],
    fdnames: &str,
    notify: &NotifySocket,
    data_dir: &std::path::Path,
    watchdog_usec: u64,
) -> common::KillOnDrop {
    let mut cmd = Command::new("systemd-socket-activate");
    for port in ports {
        cmd.arg("-l").arg(format!("127.0.0.1:{port}"));
    }
    if !fdnames.is_empty() {
        cmd.arg(format!("--fdname={fdnames}"));
    }
    // systemd-socket-activate passes only a few variables of its own environment on (PATH,
    // HOME, ...), so the notify socket and the test's isolation are handed over with -E, as
    // systemd itself sets a service's environment.
    cmd.arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.path.display()));
    for (key, value) in common::isolated_env(data_dir) {
        cmd.arg("-E").arg(format!("{key}={value}"));
    }
    if watchdog_usec > 0 {
        cmd.arg("-E").arg(format!("WATCHDOG_USEC={watchdog_usec}"));
    }
    // WATCHDOG_PID must be the service's own pid; `exec` keeps the shell's pid for the binary.
    cmd.arg("sh")
        .arg("-c")
        .arg(format!(
            "export WATCHDOG_PID=$$; exec {} serve",
            common::binary()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd
        .spawn()
        .map(common::KillOnDrop)
        .expect("systemd-socket-activate is installed (package systemd)");
    // The first connection makes systemd-socket-activate start the service, like systemd does.
    common::wait_for_listener(ports[0], Duration::from_secs(10));
    child
}

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
