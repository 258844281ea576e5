//! The local Unix socket: local users reach the bridge (and `/mcp`) through it without a token,
//! the socket's owner, group and mode decide who they are, and TCP asks every peer for the
//! token once one is configured, loopback included.
//!
//! The parts that need root (another user refused by the socket's mode) are skipped otherwise;
//! tests/run.sh runs as root.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::stdio::StdioClient;
use common::{KillOnDrop, free_port, get, get_with, serve_command, terminate, wait_with_timeout};
use serde_json::json;

const TOKEN: &str = "local-socket-token-8c41e2b09d7f";

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Waits until the socket file at `path` accepts connections.
fn wait_for_socket(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `whatsapp-mcp status --json` with `env` and no token; its exit status and stdout.
fn status(data: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let output = Command::new(common::binary())
        .args(["status", "--json"])
        .envs(common::isolated_env(data))
        .env("WHATSAPP_MCP_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("status runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A desktop client's session through the relay: initialize, the tool list, one tool call.
fn stdio_session(data: &Path, env: &[(&str, &str)]) {
    let mut client = StdioClient::spawn_with(&["stdio"], data, env);
    client.initialize();
    client.initialized();
    let tools = client
        .request("tools/list", &json!({}))
        .expect("tools/list");
    assert!(
        tools["tools"]
            .as_array()
            .is_some_and(|tools| tools.len() > 10),
        "{tools}"
    );
    let result = client
        .request(
            "tools/call",
            &json!({"name": "get_sync_status", "arguments": {}}),
        )
        .expect("get_sync_status");
    assert_ne!(result["isError"], json!(true), "{result}");
    let exit = client.close().expect("stdio exits once stdin closes");
    assert!(exit.success(), "{exit:?}");
}

/// `curl` on the socket as another user (`runuser`); true when the request got an answer.
fn curl_as(user: &str, group: Option<&str>, socket: &Path) -> bool {
    let mut command = Command::new("runuser");
    command.args(["-u", user]);
    if let Some(group) = group {
        command.args(["-g", group]);
    }
    command
        .args(["--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--unix-socket")
        .arg(socket)
        .arg("http://localhost/api/status")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let output = command.output().expect("runuser and curl are installed");
    String::from_utf8_lossy(&output.stdout).trim() == "200"
}

#[test]
fn local_users_use_the_socket_and_tcp_wants_the_token_from_everyone() {
    let data = tempfile::tempdir().unwrap();
    // A directory others may enter, so the socket's own mode is what keeps them out.
    let run = tempfile::tempdir().unwrap();
    std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = run.path().join("bridge.sock");
    let socket_str = socket.to_str().unwrap();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = serve_command(data.path(), bridge, mcp)
        .env("WHATSAPP_MCP_TOKEN", TOKEN)
        .env("WHATSAPP_MCP_SOCKET", socket_str)
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("WHATSAPP_MCP_FAKE_SEED", "demo")
        .spawn()
        .map(KillOnDrop)
        .expect("serve starts");
    wait_for_socket(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the socket is for its owner and group only");

    // Through the socket: no token needed, by the status command and the stdio relay.
    let (code, stdout, stderr) = status(data.path(), &[("WHATSAPP_MCP_SOCKET", socket_str)]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(report.get("state").is_some(), "{report}");
    stdio_session(data.path(), &[("WHATSAPP_MCP_SOCKET", socket_str)]);

    // On TCP, loopback proves nothing: no token, no answer (but /health).
    for url in [
        format!("http://127.0.0.1:{bridge}/api/status"),
        format!("http://127.0.0.1:{bridge}/status"),
        format!("http://127.0.0.1:{mcp}/sse"),
    ] {
        let (code, body) = get(&url);
        assert_eq!(code, 401, "{url}: {body}");
        let (code, _) = get_with(&url, &[("Authorization", "Bearer wrong-wrong-wrong-wrong")]);
        assert_eq!(code, 401, "{url}");
    }
    for url in [
        format!("http://127.0.0.1:{bridge}/health"),
        format!("http://127.0.0.1:{mcp}/health"),
    ] {
        assert_eq!(get(&url).0, 200, "{url}");
    }
    let (code, _) = get_with(
        &format!("http://127.0.0.1:{bridge}/api/status"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(code, 200);
    // A client on TCP without the token is told what is missing.
    let tcp = format!("http://127.0.0.1:{bridge}");
    let (code, _, stderr) = status(data.path(), &[("WHATSAPP_BRIDGE_URL", &tcp)]);
    assert_eq!(code, Some(i32::from(whatsapp_mcp::exit::EXIT_UNREACHABLE)));
    assert!(stderr.contains("token"), "{stderr}");
    // With the token, TCP works for the relay too.
    stdio_session(
        data.path(),
        &[("WHATSAPP_BRIDGE_URL", &tcp), ("WHATSAPP_MCP_TOKEN", TOKEN)],
    );

    if is_root() {
        // The socket is root's, group root, mode 0660: another user is refused by the kernel;
        // with the socket's group handed to them, they get in.
        assert!(
            !curl_as("nobody", None, &socket),
            "nobody is not in the group"
        );
        std::os::unix::fs::chown(&socket, None, Some(65534)).unwrap();
        assert!(curl_as("nobody", Some("nogroup"), &socket));
        assert!(
            !curl_as("daemon", None, &socket),
            "daemon is not in nogroup"
        );
    } else {
        eprintln!("skipped the other-user checks: they need root");
    }

    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_socket_passed_by_systemd_as_local_serves_the_bridge() {
    let data = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("bridge.sock");
    let (bridge, mcp) = (free_port(), free_port());
    let mut command = Command::new("systemd-socket-activate");
    command
        .arg("-l")
        .arg(format!("127.0.0.1:{bridge}"))
        .arg("-l")
        .arg(format!("127.0.0.1:{mcp}"))
        .arg("-l")
        .arg(&socket)
        .arg("--fdname=bridge:mcp:local")
        .arg("-E")
        .arg(format!("WHATSAPP_MCP_TOKEN={TOKEN}"));
    for (key, value) in common::isolated_env(data.path()) {
        command.arg("-E").arg(format!("{key}={value}"));
    }
    let mut child = command
        .arg(common::binary())
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(KillOnDrop)
        .expect("systemd-socket-activate is installed (package systemd)");
    wait_for_socket(&socket);
    // The first connection starts the service; status waits for its answer.
    let (code, stdout, stderr) = status(
        data.path(),
        &[("WHATSAPP_MCP_SOCKET", socket.to_str().unwrap())],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("\"state\""), "{stdout}");
    assert_eq!(get(&format!("http://127.0.0.1:{bridge}/api/status")).0, 401);
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}

/// Every route of the bridge (the list the remote and proxy tests walk, checked against the
/// routers' sources) through the local socket with no token: all answer but a login form
/// holding a wrong token, and the `/mcp` the relay needs is among them.
#[test]
fn every_bridge_route_answers_on_the_socket_without_a_token() {
    use common::netns::{Access, BRIDGE, ROUTES, assert_every_route_is_covered};
    assert_every_route_is_covered();
    let data = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("bridge.sock");
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = serve_command(data.path(), bridge, mcp)
        .env("WHATSAPP_MCP_TOKEN", TOKEN)
        .env("WHATSAPP_MCP_SOCKET", &socket)
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("WHATSAPP_MCP_FAKE_SEED", "demo")
        .spawn()
        .map(KillOnDrop)
        .expect("serve starts");
    wait_for_socket(&socket);
    let mut tried = 0;
    // The account is logged out last, so every route before it sees a linked one.
    let mut routes: Vec<_> = ROUTES.iter().filter(|r| r.port == BRIDGE).collect();
    routes.sort_by_key(|r| r.path == "/api/logout");
    for route in routes {
        let mut curl = Command::new("curl");
        curl.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
        ])
        .arg("--unix-socket")
        .arg(&socket)
        .args(["-X", route.method]);
        if route.method == "POST" {
            curl.args(["-H", &format!("Content-Type: {}", route.content_type())])
                .args(["-H", "Accept: application/json, text/event-stream"])
                .args(["--data-raw", route.body]);
        }
        let output = curl
            .arg(format!("http://localhost{}", route.path))
            .output()
            .expect("curl is installed");
        let code = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        match route.access {
            Access::WrongLogin => assert_eq!(code, "401", "{}", route.label()),
            Access::Token | Access::Open => assert!(
                !matches!(code.as_str(), "401" | "403" | "000"),
                "{} answered {code} on the local socket",
                route.label()
            ),
        }
        tried += 1;
    }
    assert!(tried >= 10, "only {tried} bridge routes");
    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
}
