//! The real binary without socket activation, and the `check-config` command.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, get, terminate, wait_for_http, wait_with_timeout};

fn run(args: &[&str], envs: &[(&str, String)]) -> (i32, String, String) {
    let out = Command::new(common::binary())
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("MCP_PORT")
        .env_remove("PORT")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binds_its_own_ports_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let (bridge, mcp) = (free_port(), free_port());
    let mut child = Command::new(common::binary())
        .arg("serve")
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{bridge}"))
        // PORT wins over MCP_PORT, as the original documented.
        .env("WHATSAPP_MCP_LISTEN", "127.0.0.1:1")
        .env("MCP_PORT", "2")
        .env("PORT", mcp.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    assert!(wait_for_http(
        &format!("http://127.0.0.1:{bridge}/health"),
        Duration::from_secs(20)
    ));
    let (status, _) = get(&format!("http://127.0.0.1:{mcp}/health"));
    assert_eq!(status, 200);
    assert!(data.path().join("whatsapp.db").exists());

    // `status` talks to the running service through WHATSAPP_BRIDGE_URL.
    let (code, stdout, stderr) = run(
        &["status"],
        &[
            ("WHATSAPP_BRIDGE_URL", format!("http://127.0.0.1:{bridge}")),
            (
                "WHATSAPP_MCP_CONFIG",
                data.path().join("config.toml").display().to_string(),
            ),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("state:    engine_off"), "{stdout}");
    assert!(stdout.contains("0 messages in 0 chats"), "{stdout}");

    terminate(child.id());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(15)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    // Nothing but protocol may ever reach stdout; `serve` prints nothing there.
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "");
}

#[test]
fn status_explains_an_unreachable_service() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut envs = common::isolated_env(data.path());
    envs.push(("WHATSAPP_BRIDGE_URL", format!("http://127.0.0.1:{port}")));
    let (code, _, stderr) = run(&["status"], &envs);
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("cannot reach the service"), "{stderr}");
}

#[test]
fn check_config_prints_the_effective_settings_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-7f3a9c2e81b4d6a0\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[bridge]\nlisten = \"0.0.0.0:8080\"\n[auth]\ntoken_file = \"{}\"\n\
             [storage]\ndatabase_url = \"postgres://wa:pa55word@db.example/wa\"\n",
            token_file.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        &["--config", config.to_str().unwrap(), "check-config"],
        &[("WHATSAPP_MCP_DATA_DIR", "/srv/wa".to_owned())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("listen = \"0.0.0.0:8080\""), "{stdout}");
    assert!(
        stdout.contains("postgres://wa:***@db.example/wa"),
        "{stdout}"
    );
    assert!(stdout.contains("data_dir = \"/srv/wa\""), "{stdout}");
    for secret in ["pa55word", "tok-7f3a9c2e81b4d6a0"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[test]
fn check_config_rejects_bad_files_with_the_reason_and_code_78() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[mcp]\nlisten = \"127.0.0.1:3000\"\nport = 1\n",
            "unknown field `port`",
        ),
        (
            "[bridge]\nlisten = \"not an address\"\n",
            "invalid socket address",
        ),
        ("[bridge\n", "config.toml"),
        (
            "[storage]\ndatabase_url = \"mysql://x\"\n",
            "unsupported database URL",
        ),
        // Reachable from the network without a token: refused rather than opened up.
        ("[mcp]\nlisten = \"0.0.0.0:3000\"\n", "no bearer token"),
    ];
    for (text, expected) in cases {
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let (code, stdout, stderr) =
            run(&["--config", config.to_str().unwrap(), "check-config"], &[]);
        assert_eq!(code, 78, "{text}: {stdout}{stderr}");
        assert!(
            stderr.contains(expected),
            "{text}: expected {expected:?} in {stderr}"
        );
    }
    let (code, _, stderr) = run(
        &["--config", "/nonexistent/whatsapp-mcp.toml", "check-config"],
        &[],
    );
    assert_eq!(code, 78);
    assert!(
        stderr.contains("cannot read /nonexistent/whatsapp-mcp.toml"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_public_socket_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let mut envs = common::isolated_env(data.path());
    envs.push((
        "WHATSAPP_MCP_BRIDGE_LISTEN",
        format!("0.0.0.0:{}", free_port()),
    ));
    envs.push(("WHATSAPP_MCP_LISTEN", format!("127.0.0.1:{}", free_port())));
    let (code, _, stderr) = run(&["serve"], &envs);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("no bearer token"), "{stderr}");
}

/// A running `serve` with the engine `engine` (and fake seed `seed`), on ports of its own.
struct Daemon {
    child: common::KillOnDrop,
    /// Environment for a command-line client of this daemon.
    client_env: Vec<(&'static str, String)>,
    bridge: String,
    _data: tempfile::TempDir,
}

fn daemon(engine: &str, seed: &str) -> Daemon {
    let data = tempfile::tempdir().unwrap();
    let bridge = free_port();
    let envs = common::isolated_env(data.path());
    let child = common::serve_command(data.path(), bridge, free_port())
        .env("WHATSAPP_MCP_ENGINE", engine)
        .env("WHATSAPP_MCP_FAKE_SEED", seed)
        .stderr(Stdio::null())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let url = format!("http://127.0.0.1:{bridge}");
    assert!(wait_for_http(
        &format!("{url}/health"),
        Duration::from_secs(20)
    ));
    let mut client_env = envs;
    client_env.push(("WHATSAPP_BRIDGE_URL", url.clone()));
    Daemon {
        child,
        client_env,
        bridge: url,
        _data: data,
    }
}

#[test]
fn linking_commands_explain_a_service_they_cannot_use() {
    // Nobody listens: the same exit code and advice as `status`.
    let data = tempfile::tempdir().unwrap();
    let mut envs = common::isolated_env(data.path());
    envs.push((
        "WHATSAPP_BRIDGE_URL",
        format!("http://127.0.0.1:{}", free_port()),
    ));
    for args in [
        &["qr"][..],
        &["pair", "--phone", "+31600000000"],
        &["logout"],
    ] {
        let (code, stdout, stderr) = run(args, &envs);
        assert_eq!(code, 69, "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot reach the service"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stdout, "", "{args:?}");
    }

    // A service running without a WhatsApp connection says so, and nothing is drawn.
    let mut service = daemon("none", "");
    for args in [
        &["qr"][..],
        &["pair", "--phone", "+31600000000"],
        &["logout"],
    ] {
        let (code, stdout, stderr) = run(args, &service.client_env);
        assert_eq!(code, 69, "{args:?}: {stderr}");
        assert!(
            stderr.contains("without a WhatsApp connection"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stdout, "", "{args:?}");
    }
    terminate(service.child.id());
    assert!(wait_with_timeout(&mut service.child, Duration::from_secs(15)).is_some());
}

#[cfg(feature = "fake-engine")]
mod with_the_fake_engine {
    use super::*;

    fn link_state(service: &Daemon) -> serde_json::Value {
        let (status, body) = get(&format!("{}/api/link", service.bridge));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn qr_draws_each_code_and_exits_once_linked() {
        let service = daemon("fake", "scan-after:3000");
        let started = std::time::Instant::now();
        let (code, stdout, stderr) = run(&["qr"], &service.client_env);
        assert_eq!(code, 0, "{stdout}{stderr}");
        // The phone "scans" after 3 s: not before, and not long after.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_secs(15),
            "{took:?}"
        );
        // Two codes were drawn (the fake rotates once) in half blocks, 80 columns at most.
        assert!(stdout.contains("(new code)"), "{stdout}");
        let pictures: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains('▀') || l.contains('█'))
            .collect();
        // Two pictures of a version-4 code: 33 modules, about 17 lines each.
        assert!(pictures.len() >= 2 * 15, "{stdout}");
        assert!(stdout.lines().all(|l| l.chars().count() <= 80), "{stdout}");
        assert!(stdout.contains("Linked devices"), "{stdout}");
        assert!(
            stdout.trim_end().ends_with("linked as +31600000000"),
            "{stdout}"
        );
        // The raw code is drawn, never printed.
        assert!(!stdout.contains("fakeLinkRef") && !stderr.contains("fakeLinkRef"));
        assert_eq!(link_state(&service)["state"], "connected");

        // Once linked there is nothing to scan.
        let (code, stdout, _) = run(&["qr"], &service.client_env);
        assert_eq!(code, 0);
        assert_eq!(stdout.trim(), "linked as +31600000000");
    }

    #[test]
    fn logout_then_pair_with_a_code() {
        let service = daemon("fake", "scan-after:1500");
        let (code, _, stderr) = run(&["qr"], &service.client_env);
        assert_eq!(code, 0, "{stderr}");

        // A pairing code for a linked server is refused by the engine; logout unlinks it.
        let (code, stdout, stderr) = run(&["logout"], &service.client_env);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("the archive is kept"), "{stdout}");
        let state = link_state(&service);
        assert_eq!(state["state"], "not_linked", "{state}");
        assert!(state["account"].is_null());

        let (code, stdout, stderr) = run(&["logout", "--wipe-archive"], &service.client_env);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("the archive are deleted"), "{stdout}");

        // A bad number is refused before anything is asked of WhatsApp.
        let (code, stdout, stderr) = run(&["pair", "--phone", "12"], &service.client_env);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(
            stderr.contains("HTTP 400") && stderr.contains("7 to 15 digits"),
            "{stderr}"
        );
        let (code, stdout, stderr) =
            run(&["pair", "--phone", "+31 6 1234 5678"], &service.client_env);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("Pairing code: K7QX-2M9P"), "{stdout}");
        assert!(
            stdout.contains("Link with phone number instead"),
            "{stdout}"
        );
        assert!(
            stdout.trim_end().ends_with("linked as +31600000000"),
            "{stdout}"
        );
        // Pairing draws no QR code.
        assert!(!stdout.contains('▀'), "{stdout}");
    }

    #[test]
    fn ctrl_c_stops_waiting_cleanly() {
        let service = daemon("fake", "scan-after:600000");
        let mut qr = Command::new(common::binary())
            .arg("qr")
            .envs(service.client_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map(common::KillOnDrop)
            .unwrap();
        // Wait for the code to show, then interrupt as a terminal would.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while link_state(&service)["state"] != "awaiting_scan" {
            assert!(std::time::Instant::now() < deadline, "no QR code");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1500));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(qr.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let exit = wait_with_timeout(&mut qr, Duration::from_secs(5)).expect("exits on Ctrl-C");
        assert_eq!(exit.code(), Some(130), "{exit:?}");
        let mut stdout = String::new();
        let mut stderr = String::new();
        std::io::Read::read_to_string(qr.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        std::io::Read::read_to_string(qr.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(stdout.contains('▀') || stdout.contains('█'), "{stdout}");
        assert!(stderr.contains("stopped"), "{stderr}");
    }
}

#[test]
fn version_completions_and_man_page() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    // The version first, then what the binary as distributed is licensed under and where its
    // source is.
    assert_eq!(
        stdout.lines().next().unwrap_or_default(),
        format!("whatsapp-mcp {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(stdout.contains("AGPL-3.0-only"), "{stdout}");
    assert!(stdout.contains(env!("CARGO_PKG_REPOSITORY")), "{stdout}");
    let (code, stdout, _) = run(&["completions", "bash"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("check-config"));
    let (code, stdout, _) = run(&["manpage"], &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(".TH whatsapp-mcp"),
        "{}",
        &stdout[..stdout.len().min(200)]
    );
}
