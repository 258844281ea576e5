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

#[test]
fn commands_of_later_releases_fail_honestly() {
    for args in [
        &["qr"][..],
        &["pair", "--phone", "+31600000000"],
        &["logout"],
    ] {
        let (code, stdout, stderr) = run(args, &[]);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains("not available yet"), "{args:?}: {stderr}");
        assert_eq!(stdout, "");
    }
}

#[test]
fn version_completions_and_man_page() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("whatsapp-mcp {}", env!("CARGO_PKG_VERSION"))
    );
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
