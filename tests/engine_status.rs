//! Trouble on the WhatsApp side reaches the people watching: `/api/status` and systemd's
//! `STATUS=` line of the real binary, with the fake engine put in each state at start.
#![cfg(feature = "fake-engine")]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{NotifySocket, free_port, get, terminate, wait_for_http, wait_with_timeout};

/// Runs `serve` with the fake engine seeded into `seed`; returns the last STATUS= line and the
/// JSON of `/api/status`.
fn observe(seed: &str) -> (String, serde_json::Value) {
    let data = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    let bridge = free_port();
    let mut child = common::serve_command(data.path(), bridge, free_port())
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("WHATSAPP_MCP_FAKE_SEED", seed)
        .env("NOTIFY_SOCKET", &notify.path)
        .stderr(Stdio::null())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let url = format!("http://127.0.0.1:{bridge}");
    assert!(wait_for_http(
        &format!("{url}/health"),
        Duration::from_secs(20)
    ));
    let lines = notify.collect_until(Duration::from_secs(5), |line| line == "READY=1");
    let status = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("STATUS="))
        .cloned()
        .unwrap_or_else(|| panic!("no STATUS= in {lines:?}"));
    let (code, body) = get(&format!("{url}/api/status"));
    assert_eq!(code, 200, "{body}");
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn logged_out_is_visible_and_says_what_to_do() {
    let (status, report) = observe("logged-out");
    assert!(status.contains("logged out"), "{status}");
    assert!(status.contains("qr"), "tells how to link again: {status}");
    assert_eq!(report["state"], "logged_out");
    assert_eq!(report["sync_status"]["authenticated"], false);
    assert!(report["account"].is_null());
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("removed")),
        "{report}"
    );
}

#[test]
fn stream_replaced_is_visible_and_says_what_happened() {
    let (status, report) = observe("stream-replaced");
    assert!(status.contains("another client"), "{status}");
    assert_eq!(report["state"], "stream_replaced");
    assert_eq!(report["sync_status"]["connected"], false);
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("another client")),
        "{report}"
    );
}

#[test]
fn a_synced_account_shows_its_archive() {
    let (status, report) = observe("history:5:1200");
    assert!(status.contains("connected as +31600000000"), "{status}");
    assert!(status.contains("1 200 messages in 5 chats"), "{status}");
    assert_eq!(report["statistics"]["message_count"], 1200);
    assert_eq!(report["sync_status"]["history_messages_received"], 1200);
    assert_eq!(report["sync_status"]["progress_percent"], 100);
}
