//! The real WhatsApp engine with no network at all: it must start, fail to connect, back off
//! with growing delays, stay idle in between, report why, and stop cleanly on SIGTERM.
//!
//! The service runs in a network namespace of its own (`unshare -n`), so the test is offline on
//! any machine; its listening sockets are opened outside by `systemd-socket-activate`, which is
//! how the test can still talk to it. Needs root (for `unshare`) and the systemd package.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{NotifySocket, free_port, get, terminate, wait_with_timeout};

/// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`, 100 on Linux).
const CLK_TCK: u64 = 100;

/// The user plus system CPU time of `pid` so far, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name is in parentheses and may contain spaces: count fields after it.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let (utime, stime): (u64, u64) = (fields[11].parse().unwrap(), fields[12].parse().unwrap());
    (utime + stime) * 1000 / CLK_TCK
}

/// The `retry_in_ms` figures of the log lines so far, in order.
fn retry_delays(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| line.split("retry_in_ms=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn offline_it_backs_off_idles_reports_and_stops_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let (bridge, mcp) = (free_port(), free_port());
    let log_path = data.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{bridge}"))
        .arg("-l")
        .arg(format!("127.0.0.1:{mcp}"))
        .arg("--fdname=bridge:mcp")
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.path.display()))
        .arg("-E")
        .arg("WHATSAPP_MCP_ENGINE=whatsapp");
    // The shared isolation switches the engine off; this test is about the engine.
    for (key, value) in common::isolated_env(data.path()) {
        if key != "WHATSAPP_MCP_ENGINE" {
            cmd.arg("-E").arg(format!("{key}={value}"));
        }
    }
    // `unshare -n` and `exec` keep the pid, so LISTEN_PID still names the service.
    cmd.arg("unshare")
        .arg("-n")
        .arg(common::binary())
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    let mut child = cmd
        .spawn()
        .map(common::KillOnDrop)
        .expect("systemd-socket-activate is installed (package systemd)");
    common::wait_for_listener(bridge, Duration::from_secs(10));
    let base = format!("http://127.0.0.1:{bridge}");
    let (status, body) = get(&format!("{base}/health"));
    assert_eq!(status, 200, "{body}");
    let pid = child.id();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("whatsapp-mcp"), "{exe:?}");
    // No interface but a downed loopback: truly offline.
    let netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(netns, std::fs::read_link("/proc/self/ns/net").unwrap());

    // Over ~6 s: attempts 1, 2 and 3 fail and the waits between them grow.
    let cpu_before = cpu_ms(pid);
    let watched = Instant::now();
    let mut delays = Vec::new();
    while watched.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(250));
        delays = retry_delays(&std::fs::read_to_string(&log_path).unwrap());
    }
    let cpu = cpu_ms(pid) - cpu_before;
    let elapsed = watched.elapsed();
    println!("retry delays: {delays:?} ms; CPU {cpu} ms in {elapsed:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(delays.len() >= 2, "{log}");
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
    assert!(log.contains("WhatsApp connection failed"), "{log}");
    // Waiting is sleeping: a busy loop would burn seconds of CPU in six seconds.
    assert!(cpu < 600, "{cpu} ms of CPU in {elapsed:?}");

    // Status as people see it: not linked, not connected.
    let (status, body) = get(&format!("{base}/api/status"));
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(report["account"].is_null(), "{report}");
    let state = report["state"].as_str().unwrap();
    assert!(
        matches!(state, "disconnected" | "connecting" | "not_linked"),
        "{report}"
    );
    // Never linked: the status says what to do rather than why the network failed.
    let text = report["status_text"].as_str().unwrap();
    assert!(
        text.contains("not linked") || text.contains("disconnected"),
        "{report}"
    );
    // …and the error field says why no QR code appears.
    let error = report["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(error.contains("cannot reach WhatsApp"), "{report}");
    assert!(error.contains("no QR code"), "{report}");
    let lines = notify.collect_until(Duration::from_secs(2), |_| false);
    assert!(lines.iter().any(|l| l == "READY=1"), "{lines:?}");
    // systemd's STATUS= follows the link state, not just the first line it was given.
    let last_status = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= in {lines:?}"));
    assert!(
        last_status.contains("not linked") || last_status.contains("disconnected"),
        "{lines:?}"
    );

    // SIGTERM while it waits to retry: out promptly and with exit 0.
    let stopping = Instant::now();
    terminate(pid);
    let exit = wait_with_timeout(&mut child, Duration::from_secs(10)).expect("exits on SIGTERM");
    println!("stopped in {:?}", stopping.elapsed());
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(stopping.elapsed() < Duration::from_secs(5));
}
