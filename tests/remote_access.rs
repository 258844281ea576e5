//! Access from another machine, for real: the binary listens on a veth address inside a network
//! namespace of its own, and every request comes from a second namespace on the other end of
//! the pair, so the service sees a non-loopback peer (not a simulated one).
//!
//! Every route of both routers is tried without a token, with a wrong one, with a non-bearer
//! one, with a foreign `Origin`, with the right token and a foreign `Origin`, and with the right
//! token alone: only the last passes, except `/health` and the login form, which answer anyone
//! (the form still refuses a foreign `Origin`), and a login with a wrong token, which nothing
//! lets through. The routes are read from the router sources, so a route added without a line
//! in tests/common/netns.rs fails the test. A browser login with the right token then opens the
//! bridge's pages. Neither token may appear in an answer or in the service's log. Needs root
//! (`ip netns`, iproute2) and curl.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::netns::{
    Access, Answer, BRIDGE, Curl, MCP, Namespaces, ROUTES, SERVER_IP, TOKEN, WRONG,
};

/// The statuses a request without a valid credential may get, by the route's access rule and
/// whether it came with a foreign `Origin`.
fn refused(access: Access, foreign_origin: bool, path: &str) -> &'static [u16] {
    match (access, foreign_origin) {
        (Access::Token, _) => &[401],
        // `/health` skips the Host/Origin guard; the login form does not.
        (Access::Open, true) if path != "/health" => &[403],
        (Access::Open, _) => &[200],
        (Access::WrongLogin, true) => &[403],
        (Access::WrongLogin, false) => &[401],
    }
}

fn has_session_cookie(answer: &Answer) -> bool {
    answer
        .headers("set-cookie")
        .iter()
        .any(|cookie| cookie.starts_with("whatsapp_mcp_session="))
}

#[test]
fn remote_peers_need_the_token_on_every_route_and_foreign_origins_are_refused() {
    common::netns::assert_every_route_is_covered();

    let ns = Namespaces::new();
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("serve.log");
    let mut child = Namespaces::command(&ns.server, common::binary())
        .arg("serve")
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
    let base = |port: u16| format!("http://{SERVER_IP}:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Curl::new(&ns.client, "GET", &format!("{}/health", base(BRIDGE)))
        .send()
        .status
        != 200
    {
        assert!(Instant::now() < deadline, "the service never answered");
        assert!(child.try_wait().unwrap().is_none(), "the service exited");
        std::thread::sleep(Duration::from_millis(100));
    }

    let auth = format!("Authorization: Bearer {TOKEN}");
    let foreign = "Origin: https://evil.example".to_owned();
    let mut answers = Vec::new();
    let mut checked = 0;
    for route in ROUTES {
        let what = route.label();
        let send =
            |headers: &[String]| route.request(&ns.client, &base(route.port), headers).send();
        for (case, headers, foreign_origin) in [
            ("no token", vec![], false),
            (
                "wrong token",
                vec![format!("Authorization: Bearer {WRONG}")],
                false,
            ),
            (
                "not a bearer token",
                vec![format!("Authorization: Basic {TOKEN}")],
                false,
            ),
            ("foreign Origin, no token", vec![foreign.clone()], true),
        ] {
            let answer = send(&headers);
            let allowed = refused(route.access, foreign_origin, route.path);
            assert!(
                allowed.contains(&answer.status),
                "{what} with {case}: {}",
                answer.text
            );
            answers.push(answer);
            checked += 1;
        }
        // The token lifts the Host rule, not the Origin rule; /health reveals nothing and skips
        // both, because load balancers probe it under their own names.
        let answer = send(&[auth.clone(), foreign.clone()]);
        if route.path == "/health" {
            assert_eq!(answer.status, 200, "{what}: {}", answer.text);
        } else {
            assert_eq!(
                answer.status, 403,
                "{what} with the token and a foreign Origin: {}",
                answer.text
            );
        }
        answers.push(answer);
        let answer = send(std::slice::from_ref(&auth));
        if route.access == Access::WrongLogin {
            assert_eq!(
                answer.status, 401,
                "{what}: the header does not make a wrong token in the form right: {}",
                answer.text
            );
        } else {
            assert!(
                ![0, 401, 403].contains(&answer.status),
                "{what} with the right token: {}",
                answer.text
            );
        }
        answers.push(answer);
        checked += 2;
    }
    for answer in &answers {
        assert!(
            !has_session_cookie(answer),
            "a session cookie without the token: {}",
            answer.text
        );
    }
    println!(
        "{checked} requests over {} routes from a non-loopback peer",
        ROUTES.len()
    );

    // A browser on the other machine logs in with the form and then sees the pages, while the
    // API still refuses a request that has neither the header nor the cookie.
    let bridge = base(BRIDGE);
    let origin = format!("Origin: {bridge}");
    let login = Curl::new(&ns.client, "POST", &format!("{bridge}/login"))
        .header(&origin)
        .header("Sec-Fetch-Site: same-origin")
        .body(
            "application/x-www-form-urlencoded",
            &format!("token={TOKEN}&next=%2Fqr"),
        )
        .send();
    assert_eq!(login.status, 303, "{}", login.text);
    assert_eq!(login.header("location"), Some("/qr"), "{}", login.text);
    let cookie = login
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("whatsapp_mcp_session="))
        .unwrap_or_else(|| panic!("no session cookie: {}", login.text))
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let pair = format!("Cookie: {}", cookie.split(';').next().unwrap());
    for path in ["/status", "/qr", "/api/status"] {
        let page = Curl::new(&ns.client, "GET", &format!("{bridge}{path}"))
            .header(&pair)
            .header("Accept: text/html")
            .send();
        assert_eq!(page.status, 200, "{path} with the cookie: {}", page.text);
        answers.push(page);
    }
    let page = Curl::new(&ns.client, "GET", &format!("{bridge}/status"))
        .header("Accept: text/html")
        .send();
    assert_eq!(page.status, 303, "a page without login: {}", page.text);
    assert_eq!(
        page.header("location"),
        Some("/login?next=/status"),
        "{}",
        page.text
    );
    answers.push(login);

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
            assert!(
                !answer.text.contains(secret),
                "a token in an answer: {}",
                answer.text
            );
        }
    }
}
