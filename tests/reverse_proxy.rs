//! The reverse proxy of packaging/NETWORK.md, for real: Debian's nginx, configured with the site
//! file taken verbatim from the guide, terminates TLS on a veth address in one network
//! namespace and passes requests to the service listening on 127.0.0.1 in the same namespace,
//! so every request the service gets arrives from loopback. The client is a second namespace on
//! the other end of the veth pair.
//!
//! Through the proxy, every route of both routers refuses a request without the token or with
//! a wrong one (only `/health` and the login form answer), and with the token everything works:
//! an MCP exchange over Streamable HTTP (`/mcp` with its session header) and over the legacy
//! transport (`/sse` stream, `POST /messages`, answers on the stream), and a browser login
//! whose cookie the proxy marks `Secure`, while a login posted from another site is refused.
//! Then the guide's alternative, a proxy that shows the token itself behind client
//! certificates: clients without a certificate of the right authority are stopped by nginx,
//! a client with one gets in without a token. The token appears neither in answers nor in
//! nginx's access and error logs nor in the service's log.
//!
//! The guide's blocks are used as written except for these strings, replaced by plain text
//! substitution: in the site, the certificate path [`DOC_CERT`] and key path [`DOC_KEY`] (the
//! test makes a self-signed pair with openssl) and the server name [`DOC_NAME`]; in the client
//! certificate lines, the authority [`DOC_CLIENT_CA`] and the token's place [`DOC_TOKEN`]. The
//! ports are kept: the namespace has ports of its own, so nginx listens on 443 and the service
//! on 3000 and 8080 there, as in the guide.
//!
//! Needs root (`ip netns`), iproute2, curl, openssl and nginx (Debian package `nginx`); nginx
//! runs as a private instance (`-c`/`-p` in a temporary directory, own pid file, logs and
//! temporary paths, in the foreground) and is stopped at the end.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{
    Access, Answer, BRIDGE, CLIENT_IP, Curl, INITIALIZE, MCP, Namespaces, ROUTES, SERVER_IP, TOKEN,
    WRONG,
};
use serde_json::Value;

/// The lines before the site file and before the client certificate lines in
/// packaging/NETWORK.md.
const SITE: &str = "<!-- tested: nginx site -->";
const CLIENT_CERTIFICATES: &str = "<!-- tested: nginx client certificates -->";
/// The guide's server name, certificate and key, replaced by the test's own.
const DOC_NAME: &str = "mcp.example.org";
const DOC_CERT: &str = "/etc/letsencrypt/live/mcp.example.org/fullchain.pem";
const DOC_KEY: &str = "/etc/letsencrypt/live/mcp.example.org/privkey.pem";
/// In the client certificate lines: the authority's certificate and the token's place.
const DOC_CLIENT_CA: &str = "/etc/nginx/whatsapp-mcp-clients-ca.pem";
const DOC_TOKEN: &str = "PASTE-THE-TOKEN-HERE";
/// The name the client uses; curl resolves it to the proxy's veth address itself.
const NAME: &str = "whatsapp.proxy.test";

/// The fenced block after the line `marker` in packaging/NETWORK.md.
fn block_from_the_guide(marker: &str) -> String {
    let guide = include_str!("../packaging/NETWORK.md");
    let (_, after) = guide
        .split_once(&format!("{marker}\n"))
        .unwrap_or_else(|| panic!("packaging/NETWORK.md no longer has {marker}"));
    let mut lines = after.lines();
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "a fenced block must follow {marker}, not {fence:?}"
    );
    let block: Vec<&str> = lines.take_while(|line| line.trim_end() != "```").collect();
    block.join("\n") + "\n"
}

/// The site with the test's certificate, key and name in place of the guide's.
fn site_for_the_test(dir: &Path) -> String {
    let mut site = block_from_the_guide(SITE);
    for (from, to) in [
        (DOC_CERT, dir.join("cert.pem").display().to_string()),
        (DOC_KEY, dir.join("key.pem").display().to_string()),
        (DOC_NAME, NAME.to_owned()),
    ] {
        site = replace(&site, from, &to);
    }
    // A kernel without IPv6 cannot open the guide's `[::]` listener.
    if !Path::new("/proc/net/if_inet6").exists() {
        site = site
            .lines()
            .filter(|line| !line.contains("listen [::]"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    site
}

/// `text` with `from` replaced by `to`; fails the test if the guide no longer has `from`.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the guide's block no longer has {from}"
    );
    text.replace(from, to)
}

/// `site` with the guide's client certificate lines added to its server block, the test's
/// authority in place of the guide's and the token in its place.
fn with_client_certificates(site: &str, ca: &Path) -> String {
    let lines = block_from_the_guide(CLIENT_CERTIFICATES);
    let lines = replace(&lines, DOC_CLIENT_CA, &ca.display().to_string());
    let lines = replace(&lines, DOC_TOKEN, TOKEN);
    let end = site.rfind('}').expect("the site ends its server block");
    format!("{}{lines}{}", &site[..end], &site[end..])
}

/// A whole nginx configuration around `site`: what Debian's /etc/nginx/nginx.conf sets around
/// the sites it includes, with the pid file, logs and temporary files in `dir`.
fn private_nginx_conf(dir: &Path, site: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{\n    worker_connections 64;\n}}\n\
         http {{\n\
         \x20   sendfile on;\n\
         \x20   tcp_nopush on;\n\
         \x20   types_hash_max_size 2048;\n\
         \x20   include /etc/nginx/mime.types;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n\
         \x20   ssl_prefer_server_ciphers on;\n\
         \x20   access_log {d}/access.log;\n\
         \x20   gzip on;\n\
         \x20   client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \n{site}\n}}\n"
    )
}

/// Runs a command to its end and fails the test if it fails.
fn run(command: &mut Command) -> String {
    let out = command.output().expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?}: {text}");
    text
}

/// The private nginx, stopped (gracefully, so its logs are complete) when dropped.
struct Nginx(common::KillOnDrop);

impl Nginx {
    /// Checks and starts an nginx with `site` in namespace `netns`, everything of its own in
    /// `dir`; returns once it listens (it writes its pid file after binding its sockets; the
    /// check leaves an empty one behind, which is removed first).
    fn start(netns: &str, dir: &Path, site: &str) -> Self {
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, private_nginx_conf(dir, site)).unwrap();
        let prefix = format!("{}/", dir.display());
        let error_log = dir.join("error.log");
        let nginx = |extra: &[&str]| {
            let mut command = Namespaces::command(netns, "nginx");
            command
                .args(extra)
                .arg("-c")
                .arg(&conf)
                .args(["-p", &prefix, "-e"])
                .arg(&error_log);
            command
        };
        run(&mut nginx(&["-t", "-q"]));
        let pid_file = dir.join("nginx.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut nginx = Self(
            nginx(&[])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(common::KillOnDrop)
                .expect("nginx (Debian package nginx) is installed"),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::fs::read_to_string(&pid_file).map_or(true, |pid| pid.trim().is_empty()) {
            let log = || std::fs::read_to_string(&error_log).unwrap_or_default();
            assert!(Instant::now() < deadline, "nginx never started: {}", log());
            assert!(
                nginx.0.try_wait().unwrap().is_none(),
                "nginx exited: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn stop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            common::wait_with_timeout(&mut self.0, Duration::from_secs(10));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Requests from the client namespace to the proxy, by name, checking its certificate.
struct Proxy<'a> {
    client: &'a str,
    resolve: String,
    cacert: String,
}

impl Proxy<'_> {
    fn url(path: &str) -> String {
        format!("https://{NAME}{path}")
    }

    /// curl's options that send the name to the proxy's address and check its certificate.
    fn tls_args(&self) -> [&str; 4] {
        ["--resolve", &self.resolve, "--cacert", &self.cacert]
    }

    fn request(&self, method: &str, path: &str) -> Curl {
        Curl::new(self.client, method, &Self::url(path)).args(&self.tls_args())
    }

    /// A JSON-RPC POST with the token, as an MCP client sends it.
    fn rpc(&self, path: &str, body: &str, session: Option<&str>) -> Curl {
        let mut curl = self
            .request("POST", path)
            .header(&format!("Authorization: Bearer {TOKEN}"))
            .header("Accept: application/json, text/event-stream")
            .header("MCP-Protocol-Version: 2025-06-18")
            .body("application/json", body);
        if let Some(session) = session {
            curl = curl.header(&format!("Mcp-Session-Id: {session}"));
        }
        curl
    }
}

/// The JSON-RPC answer with id `id` in a body that is either JSON or server-sent events.
fn rpc_result(answer: &Answer, id: u64) -> Value {
    let body = answer.body();
    let candidates: Vec<&str> = if body.trim_start().starts_with('{') {
        vec![body]
    } else {
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .collect()
    };
    candidates
        .into_iter()
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .find(|message| message["id"] == id)
        .unwrap_or_else(|| panic!("no answer with id {id}: {}", answer.text))
}

fn tool_names(message: &Value) -> Vec<String> {
    message["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list: {message}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn has_session_cookie(answer: &Answer) -> bool {
    answer
        .headers("set-cookie")
        .iter()
        .any(|cookie| cookie.starts_with("whatsapp_mcp_session="))
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

#[test]
fn behind_nginx_on_the_same_host_every_request_needs_the_token() {
    let started = Instant::now();
    common::netns::assert_every_route_is_covered();

    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    // nginx's workers (not root) must reach their temporary directories inside.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .arg("-subj")
        .arg(format!("/CN={NAME}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{NAME}"))
        .args(["-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let site = site_for_the_test(dir.path());

    // The service as packaged: both ports on loopback, a token configured, no other setting.
    let data = tempfile::tempdir().unwrap();
    let serve_log = data.path().join("serve.log");
    let mut service = Namespaces::command(&ns.server, common::binary())
        .arg("serve")
        .envs(common::isolated_env(data.path()))
        .env("WHATSAPP_MCP_ENGINE", "fake")
        .env("WHATSAPP_MCP_LOG", "debug")
        .env("WHATSAPP_MCP_TOKEN", TOKEN)
        .env("WHATSAPP_MCP_BRIDGE_LISTEN", format!("127.0.0.1:{BRIDGE}"))
        .env("WHATSAPP_MCP_LISTEN", format!("127.0.0.1:{MCP}"))
        .env_remove("PORT")
        .env_remove("MCP_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&serve_log).unwrap())
        .spawn()
        .map(common::KillOnDrop)
        .unwrap();
    let local = |port: u16, method: &str, path: &str| {
        Curl::new(
            &ns.server,
            method,
            &format!("http://127.0.0.1:{port}{path}"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while local(MCP, "GET", "/health").send().status != 200 {
        assert!(Instant::now() < deadline, "the service never answered");
        assert!(
            service.try_wait().unwrap().is_none(),
            "the service exited: {}",
            std::fs::read_to_string(&serve_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut proxy_process = Nginx::start(&ns.server, dir.path(), &site);
    let proxy = Proxy {
        client: &ns.client,
        resolve: format!("{NAME}:443:{SERVER_IP}"),
        cacert: cert.display().to_string(),
    };
    let health = proxy.request("GET", "/health").send();
    assert_eq!(health.status, 200, "{}", health.text);
    println!(
        "nginx and the service up after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let auth = format!("Authorization: Bearer {TOKEN}");
    let mut answers = Vec::new();

    // Loopback is no credential: the proxy's own peer address, without the token, opens nothing.
    for (port, method, path) in [
        (MCP, "GET", "/sse"),
        (BRIDGE, "GET", "/api/status"),
        (BRIDGE, "GET", "/qr"),
    ] {
        let answer = local(port, method, path).send();
        assert_eq!(
            answer.status, 401,
            "{method} :{port}{path} from loopback without the token: {}",
            answer.text
        );
        answers.push(answer);
    }
    let answer = local(MCP, "POST", "/mcp")
        .header("Accept: application/json, text/event-stream")
        .body("application/json", INITIALIZE)
        .send();
    assert_eq!(
        answer.status, 401,
        "POST /mcp from loopback: {}",
        answer.text
    );
    answers.push(answer);

    // Every route through the proxy. The proxy picks the port by path, so routes both ports
    // serve (`/health`, `/no-such-page`, `/mcp`) are tried once.
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    for route in ROUTES {
        if !seen.insert((route.method, route.path)) {
            continue;
        }
        let what = format!("{} {} through the proxy", route.method, route.path);
        let send = |headers: &[String]| {
            route
                .request(&ns.client, &Proxy::url(""), headers)
                .args(&proxy.tls_args())
                .send()
        };
        for (case, headers) in [
            ("no token", vec![]),
            (
                "a wrong token",
                vec![format!("Authorization: Bearer {WRONG}")],
            ),
            (
                "a token that is not a bearer token",
                vec![format!("Authorization: Basic {TOKEN}")],
            ),
        ] {
            let answer = send(&headers);
            let expected = match route.access {
                Access::Token | Access::WrongLogin => 401,
                Access::Open => 200,
            };
            assert_eq!(
                answer.status, expected,
                "{what} with {case}: {}",
                answer.text
            );
            answers.push(answer);
            checked += 1;
        }
        let answer = send(std::slice::from_ref(&auth));
        if route.access == Access::WrongLogin {
            assert_eq!(answer.status, 401, "{what}: {}", answer.text);
        } else {
            // Not refused, and not nginx's own failure to reach the service either.
            assert!(
                ![0, 401, 403, 502, 504].contains(&answer.status),
                "{what} with the token: {}",
                answer.text
            );
        }
        answers.push(answer);
        checked += 1;
    }
    for answer in &answers {
        assert!(
            !has_session_cookie(answer),
            "a session cookie without the token: {}",
            answer.text
        );
    }
    println!(
        "{checked} requests over {} routes through the proxy, {:.1} s",
        seen.len(),
        started.elapsed().as_secs_f64()
    );

    // Streamable HTTP: initialize, the session header, tools/list, and the session's end.
    let init = proxy.rpc("/mcp", INITIALIZE, None).max_time(10.0).send();
    assert_eq!(init.status, 200, "initialize over /mcp: {}", init.text);
    let session = init
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no Mcp-Session-Id: {}", init.text))
        .to_owned();
    let server = rpc_result(&init, 1);
    assert!(
        server["result"]["serverInfo"]["name"].is_string(),
        "{server}"
    );
    let refused = proxy
        .request("POST", "/mcp")
        .header(&format!("Mcp-Session-Id: {session}"))
        .header("Accept: application/json, text/event-stream")
        .body("application/json", TOOLS_LIST)
        .send();
    assert_eq!(
        refused.status, 401,
        "a session id is no credential: {}",
        refused.text
    );
    let initialized = proxy.rpc("/mcp", INITIALIZED, Some(&session)).send();
    assert_eq!(initialized.status, 202, "{}", initialized.text);
    let list = proxy
        .rpc("/mcp", TOOLS_LIST, Some(&session))
        .max_time(10.0)
        .send();
    assert_eq!(list.status, 200, "tools/list over /mcp: {}", list.text);
    let tools = tool_names(&rpc_result(&list, 2));
    for tool in ["list_chats", "list_messages", "send_message"] {
        assert!(tools.iter().any(|t| t == tool), "{tool} missing: {tools:?}");
    }
    let end = proxy
        .request("DELETE", "/mcp")
        .header(&auth)
        .header(&format!("Mcp-Session-Id: {session}"))
        .send();
    assert!(
        (200..300).contains(&end.status),
        "DELETE /mcp: {}",
        end.text
    );
    println!(
        "Streamable HTTP through the proxy: session {}…, {} tools",
        &session[..session.len().min(8)],
        tools.len()
    );
    answers.extend([init, refused, initialized, list, end]);

    // Legacy SSE: the stream names the endpoint, POSTs are accepted with 202, and their answers
    // come back on the stream, through nginx, as they are sent.
    let wait = Duration::from_secs(10);
    let mut stream = proxy
        .request("GET", "/sse")
        .header(&auth)
        .header("Accept: text/event-stream")
        .max_time(60.0)
        .stream();
    let head = stream.head(wait);
    assert_eq!(head.status, 200, "GET /sse: {}", head.text);
    let (event, endpoint) = stream
        .event(wait)
        .unwrap_or_else(|| panic!("no endpoint event: {}", stream.seen));
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");
    let post = |body: &str| {
        let answer = proxy.rpc(&endpoint, body, None).send();
        assert_eq!(answer.status, 202, "POST {endpoint}: {}", answer.text);
        answer
    };
    let refused = proxy
        .request("POST", &endpoint)
        .body("application/json", INITIALIZE)
        .send();
    assert_eq!(
        refused.status, 401,
        "the SSE session id is no credential: {}",
        refused.text
    );
    answers.push(refused);
    answers.push(post(INITIALIZE));
    let next_message = |stream: &mut common::netns::Stream| loop {
        let (event, data) = stream
            .event(wait)
            .unwrap_or_else(|| panic!("no answer on the stream: {}", stream.seen));
        if event == "message" {
            return serde_json::from_str::<Value>(&data).unwrap();
        }
    };
    let server = next_message(&mut stream);
    assert_eq!(server["id"], 1, "{server}");
    assert!(
        server["result"]["serverInfo"]["name"].is_string(),
        "{server}"
    );
    answers.push(post(INITIALIZED));
    answers.push(post(TOOLS_LIST));
    let list = next_message(&mut stream);
    assert_eq!(list["id"], 2, "{list}");
    let sse_tools = tool_names(&list);
    assert_eq!(sse_tools, tools, "both transports offer the same tools");
    let stream_text = std::mem::take(&mut stream.seen);
    drop(stream);
    println!(
        "legacy SSE through the proxy: {} tools, {:.1} s",
        sse_tools.len(),
        started.elapsed().as_secs_f64()
    );

    // A browser: a page sends it to the form, the form with the token sets a cookie that the
    // proxy marks Secure, and the cookie opens the pages.
    let browser = |method: &str, path: &str| {
        proxy
            .request(method, path)
            .header("Accept: text/html")
            .header(&format!("Origin: https://{NAME}"))
            .header("Sec-Fetch-Site: same-origin")
    };
    let to_login = browser("GET", "/qr").send();
    assert_eq!(to_login.status, 303, "{}", to_login.text);
    assert_eq!(
        to_login.header("location"),
        Some("/login?next=/qr"),
        "{}",
        to_login.text
    );
    let form = browser("GET", "/login?next=/qr").send();
    assert_eq!(form.status, 200, "{}", form.text);
    assert!(form.body().contains("name=\"token\""), "{}", form.text);
    let wrong = browser("POST", "/login")
        .body(
            "application/x-www-form-urlencoded",
            &format!("token={WRONG}&next=%2Fqr"),
        )
        .send();
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(!has_session_cookie(&wrong), "{}", wrong.text);
    // The proxy names its own origin as the service's; any other stays foreign.
    let forged = proxy
        .request("POST", "/login")
        .header("Origin: https://evil.example")
        .body(
            "application/x-www-form-urlencoded",
            &format!("token={TOKEN}&next=%2Fqr"),
        )
        .send();
    assert_eq!(
        forged.status, 403,
        "a login posted from another site: {}",
        forged.text
    );
    assert!(!has_session_cookie(&forged), "{}", forged.text);
    let login = browser("POST", "/login")
        .body(
            "application/x-www-form-urlencoded",
            &format!("token={TOKEN}&next=%2Fqr"),
        )
        .send();
    assert_eq!(login.status, 303, "login through the proxy: {}", login.text);
    assert_eq!(login.header("location"), Some("/qr"), "{}", login.text);
    let cookie = login
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("whatsapp_mcp_session="))
        .unwrap_or_else(|| panic!("no session cookie: {}", login.text))
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(
            cookie
                .split(';')
                .any(|part| part.trim().eq_ignore_ascii_case(attribute)),
            "{attribute} missing: {cookie}"
        );
    }
    let pair = format!("Cookie: {}", cookie.split(';').next().unwrap());
    for path in ["/qr", "/status", "/api/status"] {
        let page = browser("GET", path).header(&pair).send();
        assert_eq!(
            page.status, 200,
            "{path} with the cookie through the proxy: {}",
            page.text
        );
        answers.push(page);
    }
    answers.extend([to_login, form, wrong, forged, login]);
    println!(
        "browser login through the proxy, {:.1} s",
        started.elapsed().as_secs_f64()
    );

    proxy_process.stop();

    // The guide's other way: the proxy shows the token itself, to clients that hold a
    // certificate of the test's own authority, and to nobody else.
    let gated_dir = dir.path().join("client-certificates");
    std::fs::create_dir(&gated_dir).unwrap();
    std::fs::set_permissions(
        &gated_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=test clients",
        "-days",
        "1",
        "-keyout",
        &file("ca.key"),
        "-out",
        &file("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=alice",
        "-keyout",
        &file("alice.key"),
        "-out",
        &file("alice.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &file("alice.csr"),
        "-CA",
        &file("ca.pem"),
        "-CAkey",
        &file("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        &file("alice.pem"),
    ]);
    let mut gated = Nginx::start(
        &ns.server,
        &gated_dir,
        &with_client_certificates(&site, &dir.path().join("ca.pem")),
    );
    let (alice_cert, alice_key) = (file("alice.pem"), file("alice.key"));
    let alice = ["--cert", &alice_cert, "--key", &alice_key];
    let (stranger_cert, stranger_key) = (file("cert.pem"), file("key.pem"));
    let stranger = ["--cert", &stranger_cert, "--key", &stranger_key];
    for (who, certificate) in [
        ("no certificate", &[][..]),
        ("a certificate of another authority", &stranger[..]),
    ] {
        let answer = proxy.request("GET", "/api/status").args(certificate).send();
        assert!(
            answer.status == 400 && !answer.text.contains("uptime_seconds"),
            "a client with {who} behind the token-showing proxy: {}",
            answer.text
        );
        answers.push(answer);
    }
    let status = proxy.request("GET", "/api/status").args(&alice).send();
    assert_eq!(status.status, 200, "alice's certificate: {}", status.text);
    // The proxy's header replaces whatever the client sends.
    let own = proxy
        .request("GET", "/api/status")
        .args(&alice)
        .header(&format!("Authorization: Bearer {WRONG}"))
        .send();
    assert_eq!(own.status, 200, "{}", own.text);
    let init = proxy
        .request("POST", "/mcp")
        .args(&alice)
        .header("Accept: application/json, text/event-stream")
        .body("application/json", INITIALIZE)
        .max_time(10.0)
        .send();
    assert_eq!(
        init.status, 200,
        "initialize with alice's certificate: {}",
        init.text
    );
    assert!(init.header("mcp-session-id").is_some(), "{}", init.text);
    answers.extend([status, own, init]);
    gated.stop();
    println!(
        "client certificates with the token shown by the proxy, {:.1} s",
        started.elapsed().as_secs_f64()
    );

    common::terminate(service.id());
    common::wait_with_timeout(&mut service, Duration::from_secs(15)).expect("a clean exit");

    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let access_log = read(&dir.path().join("access.log")) + &read(&gated_dir.join("access.log"));
    let nginx_errors = read(&dir.path().join("error.log")) + &read(&gated_dir.join("error.log"));
    let service_log = read(&serve_log);
    // Keep nginx's logs with the suite's, which tests/scan_logs.sh searches at the end.
    if let Some(logs) = std::env::var_os("WHATSAPP_MCP_TEST_LOG_DIR") {
        let pid = std::process::id();
        for (name, text) in [("access", &access_log), ("error", &nginx_errors)] {
            let copy = Path::new(&logs).join(format!("reverse_proxy-nginx-{name}-{pid}.log"));
            std::fs::write(copy, text).unwrap();
        }
    }
    assert!(
        access_log.contains(CLIENT_IP),
        "nginx logs the real client: {access_log}"
    );
    assert!(
        service_log.lines().any(|line| line
            .contains("refused a request without a valid bearer token")
            && line.contains("127.0.0.1")),
        "the service saw the proxy's requests from loopback and refused them: {service_log}"
    );
    for secret in [TOKEN, WRONG] {
        for (what, text) in [
            ("nginx's access log", &access_log),
            ("nginx's error log", &nginx_errors),
            ("the service's log", &service_log),
            ("the SSE stream", &stream_text),
        ] {
            assert!(!text.contains(secret), "a token in {what}");
        }
        for answer in &answers {
            assert!(
                !answer.text.contains(secret),
                "a token in an answer: {}",
                answer.text
            );
        }
    }
    println!(
        "no token in {} answers or in {} + {} + {} bytes of logs; {:.1} s in all",
        answers.len(),
        access_log.len(),
        nginx_errors.len(),
        service_log.len(),
        started.elapsed().as_secs_f64()
    );
}
