//! A second machine for tests that need one: two network namespaces joined by a veth pair, curl
//! run inside either of them, and the list of every route the two routers serve, each with a
//! request to try and the access it should need.
//!
//! Used by tests/remote_access.rs (the service on the veth address) and tests/reverse_proxy.rs
//! (nginx on the veth address, the service behind it on loopback). Needs root, iproute2
//! (`ip netns`) and curl.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::KillOnDrop;

/// The right token and a wrong one; both are listed in tests/log_secrets.txt, so the suite's
/// final log scan looks for them too.
pub const TOKEN: &str = "remote-access-token-5f2c9a7e13b4";
pub const WRONG: &str = "remote-access-wrong-0d8e6b1a47c3";

/// TEST-NET-1 (RFC 5737): addresses that exist only on the veth pair.
pub const SERVER_IP: &str = "192.0.2.1";
pub const CLIENT_IP: &str = "192.0.2.2";
/// The default ports; every namespace has its own port space, so they are free there.
pub const BRIDGE: u16 = 8080;
pub const MCP: u16 = 3000;

/// What a route asks of a request before it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The token (or, on the bridge's pages, a browser login): 401 without it.
    Token,
    /// Nothing: `/health`, and the login form that a browser must be able to open.
    Open,
    /// `POST /login` with a wrong token in its form: refused with 401 and no session cookie,
    /// whatever header comes with it.
    WrongLogin,
}

/// One request per route: which port, method, path (with query), body, and the access needed.
#[derive(Debug)]
pub struct Route {
    pub port: u16,
    pub method: &'static str,
    pub path: &'static str,
    /// A JSON body (starting with `{`) or a form (`name=value&...`).
    pub body: &'static str,
    pub access: Access,
}

impl Route {
    /// The body's media type: JSON or an HTML form.
    pub fn content_type(&self) -> &'static str {
        if self.body.starts_with('{') {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        }
    }

    /// This route's request, sent from namespace `netns` to `base` (`scheme://host:port`),
    /// with `headers` added.
    pub fn request(&self, netns: &str, base: &str, headers: &[String]) -> Curl {
        let mut curl = Curl::new(netns, self.method, &format!("{base}{}", self.path));
        for header in headers {
            curl = curl.header(header);
        }
        if self.method == "POST" {
            curl = curl
                .header("Accept: application/json, text/event-stream")
                .body(self.content_type(), self.body);
        }
        curl
    }

    /// `METHOD :port/path`, for messages.
    pub fn label(&self) -> String {
        format!("{} :{}{}", self.method, self.port, self.path)
    }
}

pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"remote","version":"1"}}}"#;

const fn route(port: u16, method: &'static str, path: &'static str) -> Route {
    Route {
        port,
        method,
        path,
        body: "",
        access: Access::Token,
    }
}

const fn with_body(mut route: Route, body: &'static str) -> Route {
    route.body = body;
    route
}

const fn with_access(mut route: Route, access: Access) -> Route {
    route.access = access;
    route
}

/// Every route of both routers; [`declared_routes`] checks that none is missing.
pub const ROUTES: &[Route] = &[
    with_access(route(BRIDGE, "GET", "/health"), Access::Open),
    route(BRIDGE, "GET", "/api/status"),
    route(BRIDGE, "GET", "/api/session-backend"),
    route(BRIDGE, "GET", "/status"),
    route(BRIDGE, "GET", "/qr"),
    route(BRIDGE, "GET", "/api/link"),
    route(BRIDGE, "POST", "/api/link"),
    with_body(
        route(BRIDGE, "POST", "/api/pair"),
        r#"{"phone":"+31612345678"}"#,
    ),
    with_body(
        route(BRIDGE, "POST", "/api/logout"),
        r#"{"wipe_archive":false}"#,
    ),
    with_access(route(BRIDGE, "GET", "/login"), Access::Open),
    with_access(
        with_body(
            route(BRIDGE, "POST", "/login"),
            "token=remote-access-wrong-0d8e6b1a47c3&next=%2Fqr",
        ),
        Access::WrongLogin,
    ),
    with_body(route(BRIDGE, "POST", "/mcp"), INITIALIZE),
    route(BRIDGE, "GET", "/no-such-page"),
    with_access(route(MCP, "GET", "/health"), Access::Open),
    with_body(route(MCP, "POST", "/mcp"), INITIALIZE),
    route(MCP, "GET", "/mcp"),
    route(MCP, "GET", "/sse"),
    with_body(route(MCP, "POST", "/messages?sessionId=none"), INITIALIZE),
    route(MCP, "GET", "/no-such-page"),
];

/// Routes that exist in test builds only (`fake-engine`) and are left out of the check.
const TEST_BUILD_ONLY: &[&str] = &["/debug/sessions"];

/// The paths the routers declare, read from every source file of `src/http` and `src/mcp`
/// (unit tests left out), whether rustfmt kept the path on the `.route(` line or not.
pub fn declared_routes() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = BTreeSet::new();
    for dir in ["http", "mcp"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            for marker in [".route(", ".route_service("] {
                for rest in code.split(marker).skip(1) {
                    if let Some(quoted) = rest.trim_start().strip_prefix('"') {
                        paths.insert(quoted.split('"').next().unwrap().to_owned());
                    }
                }
            }
        }
    }
    paths.retain(|path| !TEST_BUILD_ONLY.contains(&path.as_str()));
    paths
}

/// Fails the test when a declared route has no line in [`ROUTES`].
pub fn assert_every_route_is_covered() {
    let covered: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| r.path.split('?').next().unwrap().to_owned())
        .collect();
    let declared = declared_routes();
    let missing: Vec<&String> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without an access check in tests/common/netns.rs: {missing:?}"
    );
}

/// Runs `ip` with `args` and fails the test if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair ([`SERVER_IP`] on the server's end, [`CLIENT_IP`] on
/// the client's), loopback up in both; removed (with the pair) when dropped.
#[derive(Debug)]
pub struct Namespaces {
    pub server: String,
    pub client: String,
}

impl Namespaces {
    pub fn new() -> Self {
        // Interface names have at most 15 bytes: "wamcp", the pid, a counter and one letter.
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "wamcp{}{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
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
            let cidr = format!("{addr}/24");
            ip(&["-n", netns, "addr", "add", &cidr, "dev", dev]);
            ip(&["-n", netns, "link", "set", dev, "up"]);
            ip(&["-n", netns, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// `program` run inside namespace `netns` (`ip netns exec` execs it: the child's pid is
    /// the program's own).
    pub fn command(netns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, program]);
        command
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for netns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}

/// A curl request run inside a namespace.
#[derive(Debug)]
pub struct Curl {
    command: Command,
    max_time: f64,
}

/// What came back: the status (0 when nothing did) and the whole answer, headers and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    fn parse(text: String) -> Self {
        let status = text
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Self { status, text }
    }

    fn head(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .map_or(self.text.as_str(), |(head, _)| head)
    }

    /// The body, after the blank line that ends the headers.
    pub fn body(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }

    /// Every value of header `name` (case-insensitive).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head()
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
            .collect()
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }
}

impl Curl {
    /// `method url` from inside `netns`, headers shown (`-i`), 3 s at most.
    pub fn new(netns: &str, method: &str, url: &str) -> Self {
        let mut command = Namespaces::command(netns, "curl");
        command.args(["-s", "-i", "-X", method]).arg(url);
        Self {
            command,
            max_time: 3.0,
        }
    }

    pub fn header(mut self, header: &str) -> Self {
        self.command.arg("-H").arg(header);
        self
    }

    pub fn body(mut self, content_type: &str, body: &str) -> Self {
        self.command
            .arg("-H")
            .arg(format!("Content-Type: {content_type}"))
            .arg("--data-binary")
            .arg(body);
        self
    }

    /// Further curl options (`--resolve`, `--cacert`, ...).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.command.args(args);
        self
    }

    pub fn max_time(mut self, seconds: f64) -> Self {
        self.max_time = seconds;
        self
    }

    /// Sends the request and waits for the whole answer (or the time limit).
    pub fn send(mut self) -> Answer {
        let out = self
            .command
            .arg("--max-time")
            .arg(self.max_time.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("curl");
        Answer::parse(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sends the request and hands over the answer line by line as it arrives, for event
    /// streams.
    pub fn stream(mut self) -> Stream {
        let mut child = self
            .command
            .args(["-N", "--max-time"])
            .arg(self.max_time.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("curl");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line.trim_end_matches('\r').to_owned()).is_err() {
                    break;
                }
            }
        });
        Stream {
            _curl: child,
            lines,
            seen: String::new(),
        }
    }
}

/// An answer still arriving; curl is stopped when this is dropped.
pub struct Stream {
    _curl: KillOnDrop,
    lines: mpsc::Receiver<String>,
    /// Everything read so far, for messages and secret checks.
    pub seen: String,
}

impl Stream {
    /// The next line, or `None` if none came within `timeout` or the answer ended.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push_str(&line);
        self.seen.push('\n');
        Some(line)
    }

    /// The status line and headers, up to the blank line.
    pub fn head(&mut self, timeout: Duration) -> Answer {
        let deadline = Instant::now() + timeout;
        let mut text = String::new();
        while let Some(line) = self.line(deadline.saturating_duration_since(Instant::now())) {
            if line.is_empty() {
                break;
            }
            text.push_str(&line);
            text.push_str("\r\n");
        }
        Answer::parse(text)
    }

    /// The next server-sent event as (event name, data), skipping comments (keep-alives);
    /// `None` if none was complete within `timeout`.
    pub fn event(&mut self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        let (mut event, mut data) = (String::from("message"), Vec::new());
        loop {
            let line = self.line(deadline.saturating_duration_since(Instant::now()))?;
            if line.is_empty() {
                if !data.is_empty() {
                    return Some((event, data.join("\n")));
                }
                event = String::from("message");
            } else if let Some(value) = line.strip_prefix("event:") {
                event = value.trim_start().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            }
        }
    }
}
