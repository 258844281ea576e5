//! Access from another machine, for real: the binary listens on a veth address inside a network
//! namespace of its own, and every request comes from a second namespace on the other end of
//! the pair, so the service sees a non-loopback peer (not a simulated one).
//!
//! Every route of both routers is tried without a token, with a wrong one, with the right one
//! and a foreign `Origin`, and with the right one alone: only the last passes. The routes are
//! read from the router sources, so a route added without a line here fails the test. Neither
//! token may appear in an answer or in the service's log. Needs root (`ip netns`, iproute2) and
//! curl.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "remote-access-token-5f2c9a7e13b4";
const WRONG: &str = "remote-access-wrong-0d8e6b1a47c3";
/// TEST-NET-1 (RFC 5737): addresses that exist only on this veth pair.
const SERVER_IP: &str = "192.0.2.1";
const CLIENT_IP: &str = "192.0.2.2";
const BRIDGE: u16 = 8080;
const MCP: u16 = 3000;

/// One request per route: which port, method, path (with query), and body.
struct Route {
    port: u16,
    method: &'static str,
    path: &'static str,
    body: &'static str,
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"remote","version":"1"}}}"#;

const ROUTES: &[Route] = &[
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/health",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/api/status",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/api/session-backend",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/status",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/qr",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/api/link",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "POST",
        path: "/api/link",
        body: "",
    },
    Route {
        port: BRIDGE,
        method: "POST",
        path: "/api/pair",
        body: r#"{"phone":"+31612345678"}"#,
    },
    Route {
        port: BRIDGE,
        method: "POST",
        path: "/api/logout",
        body: r#"{"wipe_archive":false}"#,
    },
    Route {
        port: BRIDGE,
        method: "POST",
        path: "/mcp",
        body: INITIALIZE,
    },
    Route {
        port: BRIDGE,
        method: "GET",
        path: "/no-such-page",
        body: "",
    },
    Route {
        port: MCP,
        method: "GET",
        path: "/health",
        body: "",
    },
    Route {
        port: MCP,
        method: "POST",
        path: "/mcp",
        body: INITIALIZE,
    },
    Route {
        port: MCP,
        method: "GET",
        path: "/mcp",
        body: "",
    },
    Route {
        port: MCP,
        method: "GET",
        path: "/sse",
        body: "",
    },
    Route {
        port: MCP,
        method: "POST",
        path: "/messages?sessionId=none",
        body: INITIALIZE,
    },
    Route {
        port: MCP,
        method: "GET",
        path: "/no-such-page",
        body: "",
    },
];

/// The paths the routers declare, read from their sources.
fn declared_routes() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for source in [
        include_str!("../src/http/mod.rs"),
        include_str!("../src/mcp/mod.rs"),
    ] {
        for marker in [".route(\"", ".route_service(\""] {
            for rest in source.split(marker).skip(1) {
                paths.insert(rest.split('"').next().unwrap().to_owned());
            }
        }
    }
    paths
}

/// Two namespaces joined by a veth pair; removed (with the pair) when dropped.
struct Namespaces {
    server: String,
    client: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespaces {
    fn new() -> Self {
        let tag = format!("wamcp{}", std::process::id());
        let ns = Self {
            server: format!("{tag}s"),
            client: format!("{tag}c"),
        };
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        ip(&["netns", "add", &ns.server]);
        ip(&["netns", "add", &ns.client]);
        ip(&[
            "link", "add", &a, "netns", &ns.server, "type", "veth", "peer", "name", &b, "netns",
            &ns.client,
        ]);
        for (netns, dev, addr) in [(&ns.server, &a, SERVER_IP), (&ns.client, &b, CLIENT_IP)] {
            ip(&[
                "-n",
                netns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ]);
            ip(&["-n", netns, "link", "set", dev, "up"]);
            ip(&["-n", netns, "link", "set", "lo", "up"]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for netns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}

/// A request from the client namespace: status and whole answer (headers and body).
fn curl(ns: &Namespaces, route: &Route, headers: &[String]) -> (u16, String) {
    let url = format!("http://{SERVER_IP}:{}{}", route.port, route.path);
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns.client,
        "curl",
        "-s",
        "-i",
        "--max-time",
        "3",
    ])
    .args(["-X", route.method]);
    for header in headers {
        cmd.arg("-H").arg(header);
    }
    if route.method == "POST" {
        cmd.args(["-H", "Content-Type: application/json"])
            .args(["-H", "Accept: application/json, text/event-stream"])
            .args(["--data-binary", route.body]);
    }
    let out = cmd.arg(&url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn remote_peers_need_the_token_on_every_route_and_foreign_origins_are_refused() {
    let declared = declared_routes();
    let covered: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| r.path.split('?').next().unwrap().to_owned())
        .collect();
    let missing: Vec<&String> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without an access check in this test: {missing:?}"
    );

    let ns = Namespaces::new();
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("serve.log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.server, common::binary(), "serve"])
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("WHATSAPP_MCP_LOG", "debug")
        .env("WHATSAPP_MCP_TOKEN", TOKEN)
        .env(
            "WHATSAPP_MCP_BRIDGE_LISTEN",
            format!("{SERVER_IP}:{BRIDGE}"),
        )
        .env("WHATSAPP_MCP_LISTEN", format!("{SERVER_IP}:{MCP}"))
        .env_remove("PORT")
        .env_remove("MCP_PORT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let health = &ROUTES[0];
    let auth = vec![format!("Authorization: Bearer {TOKEN}")];
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(&ns, health, &auth).0 != 200 {
        assert!(Instant::now() < deadline, "the service never answered");
        assert!(child.try_wait().unwrap().is_none(), "the service exited");
        std::thread::sleep(Duration::from_millis(100));
    }

    let foreign = "Origin: https://evil.example".to_owned();
    let mut answers = Vec::new();
    let mut checked = 0;
    for route in ROUTES {
        let what = format!("{} :{}{}", route.method, route.port, route.path);
        for (case, headers, allowed) in [
            ("no token", vec![], &[401][..]),
            (
                "wrong token",
                vec![format!("Authorization: Bearer {WRONG}")],
                &[401],
            ),
            (
                "not a bearer token",
                vec![format!("Authorization: Basic {TOKEN}")],
                &[401],
            ),
            ("foreign Origin, no token", vec![foreign.clone()], &[401]),
        ] {
            let (status, text) = curl(&ns, route, &headers);
            assert!(allowed.contains(&status), "{what} with {case}: {text}");
            answers.push(text);
            checked += 1;
        }
        // The token lifts the Host rule, not the Origin rule; /health reveals nothing and skips
        // both, because load balancers probe it under their own names.
        let with_origin = vec![auth[0].clone(), foreign.clone()];
        let (status, text) = curl(&ns, route, &with_origin);
        if route.path == "/health" {
            assert_eq!(status, 200, "{what}: {text}");
        } else {
            assert_eq!(
                status, 403,
                "{what} with the token and a foreign Origin: {text}"
            );
        }
        answers.push(text);
        let (status, text) = curl(&ns, route, &auth);
        assert!(
            status != 0 && status != 401 && status != 403,
            "{what} with the right token: {text}"
        );
        answers.push(text);
        checked += 2;
    }
    println!(
        "{checked} requests over {} routes from a non-loopback peer",
        ROUTES.len()
    );

    common::terminate(child.id());
    common::wait_with_timeout(&mut child, Duration::from_secs(15)).expect("a clean exit");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("refused a request without a valid bearer token"),
        "{log}"
    );
    for secret in [TOKEN, WRONG] {
        assert!(!log.contains(secret), "a token in the log");
        for answer in &answers {
            assert!(!answer.contains(secret), "a token in an answer: {answer}");
        }
    }
}
