//! Log lines reach journald with their priority and target, and nothing reaches stdout.
//!
//! A private journald runs in its own mount namespace (tmpfs over /run/systemd and /run/log), so
//! the test needs root and the systemd package but no booted systemd.

mod common;

use std::process::Command;

/// Runs the binary under a private journald with stderr connected to a journal stream, exactly
/// as systemd connects a service (`JOURNAL_STREAM` names the stream's device and inode), and
/// prints `journalctl -o json` for our identifier.
const SCRIPT: &str = r#"
set -eu
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/journal
mount -t tmpfs tmpfs /run/log
/lib/systemd/systemd-journald &
journald=$!
trap 'kill $journald 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ] && break
  sleep 0.05
done
systemd-cat -t stream-wrapper sh -c '
  echo $$ >"$OUT/pid"
  export JOURNAL_STREAM=$(stat -L -c "%d:%i" /proc/self/fd/2)
  exec "$BIN" serve >"$OUT/stdout.txt"
' &
wrapper=$!
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$BRIDGE_PORT/health" >/dev/null 2>&1 && break
  sleep 0.05
done
kill -TERM "$(cat "$OUT/pid")"
wait $wrapper || true
journalctl --sync 2>/dev/null || true
journalctl -o json --no-pager SYSLOG_IDENTIFIER=whatsapp-mcp
"#;

#[test]
fn log_lines_carry_priority_and_target_in_the_journal() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test starts a private journald and needs root (the README test command runs as root)"
    );
    let data = tempfile::tempdir().unwrap();
    let bridge = common::free_port();
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", SCRIPT])
        .env("BIN", common::binary())
        .env("OUT", data.path())
        .env("BRIDGE_PORT", bridge.to_string())
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_MCP_LOG_TARGET", "auto")
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
        .env("WHATSAPP_MCP_LISTEN", "127.0.0.1:0")
        .output()
        .expect("unshare runs (package util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "script failed: {stderr}");

    let entries: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ready = entries
        .iter()
        .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains("ready")))
        .unwrap_or_else(|| panic!("no ready line in the journal: {stdout}\n{stderr}"));
    // Native journal fields, not text on a stream: priority 6 is info.
    assert_eq!(ready["PRIORITY"], "6", "{ready}");
    assert_eq!(ready["TARGET"], "whatsapp_mcp::server", "{ready}");
    assert_eq!(ready["SYSLOG_IDENTIFIER"], "whatsapp-mcp");
    // Structured fields keep their own names (tracing-journald prefixes them with F_).
    assert_eq!(ready["F_BACKEND"], "sqlite", "{ready}");
    assert!(
        entries
            .iter()
            .any(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains("SIGTERM"))),
        "{stdout}"
    );
    let service_stdout = std::fs::read_to_string(data.path().join("stdout.txt")).unwrap();
    assert_eq!(service_stdout, "", "nothing may be written to stdout");
}
