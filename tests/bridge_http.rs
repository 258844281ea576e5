//! The bridge's routes in-process, with the engine status set to each state a user can meet.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt;
use tower::ServiceExt;

use whatsapp_mcp::access::{AccessPolicy, BrowserSessions, LOGIN_COOKIE};
use whatsapp_mcp::app::AppContext;
use whatsapp_mcp::config::{Config, Secret};
use whatsapp_mcp::http::bridge_router;
use whatsapp_mcp::state::{Account, EngineStatus, LinkState, QrCode, StatusHandle};
use whatsapp_mcp::store::{self, Store};

const TOKEN: &str = "test-token-5b1e0c7d9a";

struct Bridge {
    ctx: AppContext,
    /// The browser logins of this bridge, kept across the routers built per request.
    sessions: BrowserSessions,
    _dir: tempfile::TempDir,
}

impl Bridge {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let env = move |key: &str| match key {
            "WHATSAPP_MCP_DATA_DIR" => Some(data.clone()),
            "WHATSAPP_MCP_TOKEN" => Some(TOKEN.to_owned()),
            _ => None,
        };
        let config = Config::from_toml("", &dir.path().join("config.toml"), &env).unwrap();
        let store: std::sync::Arc<dyn Store> = store::open(&config.database_url).await.unwrap();
        let status = StatusHandle::new(EngineStatus::new(LinkState::EngineOff));
        Self {
            ctx: AppContext::new(
                config,
                status,
                store,
                std::sync::Arc::new(whatsapp_mcp::engine::NoEngine::new("tests")),
            ),
            sessions: BrowserSessions::default(),
            _dir: dir,
        }
    }

    fn router(&self, peer: &str) -> Router {
        let peer = SocketAddr::new(peer.parse().unwrap(), 50000);
        bridge_router(
            self.ctx.clone(),
            AccessPolicy::new(Some(Secret::new(TOKEN))).with_browser_login(self.sessions.clone()),
        )
        .layer(MockConnectInfo(peer))
    }

    async fn get(
        &self,
        peer: &str,
        path: &str,
        auth: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::get(path);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        self.send(peer, request.body(Body::empty()).unwrap()).await
    }

    async fn send(
        &self,
        peer: &str,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = self.router(peer).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    /// A client on this machine that shows the token, as every TCP client must.
    async fn local(&self, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        self.get("127.0.0.1", path, Some(&format!("Bearer {TOKEN}")))
            .await
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = self.local(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn set(&self, edit: impl FnOnce(&mut EngineStatus)) {
        self.ctx.status.update(edit);
    }
}

fn account() -> Account {
    Account {
        jid: "31612345678:7@s.whatsapp.net".to_owned(),
        phone: "31612345678".to_owned(),
        push_name: Some("Ada <script>".to_owned()),
    }
}

#[tokio::test]
async fn health_answers_with_the_version() {
    let bridge = Bridge::new().await;
    let body = bridge.json("/health").await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn api_status_keeps_the_original_fields_and_adds_ours() {
    let bridge = Bridge::new().await;
    let status = bridge.json("/api/status").await;
    for path in [
        "/sync_status/active",
        "/sync_status/authenticated",
        "/sync_status/connected",
        "/bridge_status/running",
        "/bridge_status/authenticated",
        "/bridge_status/api_responsive",
        "/statistics/message_count",
        "/statistics/chat_count",
        "/statistics/last_sync_time",
        "/statistics/database_size_mb",
        "/statistics/database_exists",
        "/authentication/has_qr_code",
        "/authentication/qr_url",
        "/last_check",
        "/error",
        "/backend",
        "/account",
        "/uptime_seconds",
        "/version",
        "/source",
        "/license",
    ] {
        assert!(status.pointer(path).is_some(), "missing {path} in {status}");
    }
    assert_eq!(status["backend"], "sqlite");
    assert_eq!(status["statistics"]["database_exists"], true);
    assert_eq!(status["state"], "engine_off");
    assert_eq!(status["authentication"]["has_qr_code"], false);
    assert!(chrono::DateTime::parse_from_rfc3339(status["last_check"].as_str().unwrap()).is_ok());
    assert_eq!(status["source"], env!("CARGO_PKG_REPOSITORY"));
    assert_eq!(status["license"], "AGPL-3.0-only");
}

#[tokio::test]
async fn awaiting_scan_shows_an_svg_qr_that_is_never_cached() {
    let bridge = Bridge::new().await;
    bridge.set(|s| {
        s.state = LinkState::AwaitingScan;
        s.qr = Some(QrCode {
            code: "2@AbCdEf==,Ghij==,Klmn==,Opqr==".to_owned(),
            issued_at: Utc::now(),
            valid_for_secs: 20,
        });
    });
    let status = bridge.json("/api/status").await;
    assert_eq!(status["authentication"]["has_qr_code"], true);
    assert_eq!(status["state"], "awaiting_scan");
    // The raw code is for the page and the `qr` command only, never the JSON status.
    assert!(!status.to_string().contains("AbCdEf"));

    let (code, headers, page) = bridge.local("/qr").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains("data-state=\"awaiting_scan\""));
    assert!(
        !page.contains("<script"),
        "the page must not load or contain scripts"
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );

    // A rotated code yields a different picture.
    bridge.set(|s| {
        s.qr.as_mut().unwrap().code = "2@ZyXwVu==,Tsrq==,Ponm==,Lkji==".to_owned();
    });
    let (_, _, rotated) = bridge.local("/qr").await;
    assert_ne!(page, rotated);
}

#[tokio::test]
async fn linked_accounts_are_reported_everywhere() {
    let bridge = Bridge::new().await;
    bridge.set(|s| {
        s.state = LinkState::Connected;
        s.account = Some(account());
    });
    let status = bridge.json("/api/status").await;
    assert_eq!(status["sync_status"]["connected"], true);
    assert_eq!(status["sync_status"]["authenticated"], true);
    assert_eq!(status["account"]["phone"], "31612345678");
    assert_eq!(status["status_text"], "connected as +31612345678");

    let (_, _, qr) = bridge.local("/qr").await;
    assert!(qr.contains("data-state=\"linked\""), "{qr}");
    assert!(!qr.contains("<svg"));

    let (_, headers, dashboard) = bridge.local("/status").await;
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(dashboard.contains("class=\"badge good\""), "{dashboard}");
    assert!(dashboard.contains("http-equiv=\"refresh\""));
    let source_link = format!("<a href=\"{}\"", env!("CARGO_PKG_REPOSITORY"));
    assert!(dashboard.contains(&source_link), "{dashboard}");
    // Names come from other people: they are escaped, never markup.
    assert!(dashboard.contains("Ada &lt;script&gt;"), "{dashboard}");
    assert!(!dashboard.contains("<script"));
}

#[tokio::test]
async fn trouble_states_are_coloured_and_explained() {
    let bridge = Bridge::new().await;
    for (state, class, words) in [
        (LinkState::LoggedOut, "bad", "logged out"),
        (LinkState::ClientOutdated, "bad", "upgrade whatsapp-mcp"),
        (LinkState::StreamReplaced, "warning", "another client"),
        (LinkState::Disconnected, "warning", "reconnecting"),
        (LinkState::NotLinked, "pending", "not linked"),
        (LinkState::EngineOff, "warning", "not running"),
    ] {
        bridge.set(|s| {
            s.state = state;
            s.qr = None;
        });
        let (_, _, dashboard) = bridge.local("/status").await;
        assert!(
            dashboard.contains(&format!(
                "class=\"badge {class}\" data-state=\"{}\"",
                state.as_str()
            )),
            "{state:?}: {dashboard}"
        );
        assert!(dashboard.contains(words), "{state:?}: {dashboard}");
        let status = bridge.json("/api/status").await;
        assert_eq!(status["state"], state.as_str());
        let (_, _, qr) = bridge.local("/qr").await;
        assert!(!qr.contains("<svg"), "{state:?}");
    }
}

#[tokio::test]
async fn session_backend_reports_kind_and_schema_without_secrets() {
    let bridge = Bridge::new().await;
    let body = bridge.json("/api/session-backend").await;
    assert_eq!(body["backend"], "sqlite");
    assert_eq!(body["connected"], true);
    assert_eq!(body["schema_ok"], true);
    assert_eq!(body["missing_tables"], serde_json::json!([]));
    assert!(body["location"].as_str().unwrap().starts_with("sqlite:///"));
    // The session store shares the file; no engine has created its tables in this test.
    assert_eq!(body["session"]["backend"], "sqlite");
    assert_eq!(body["session"]["connected"], true);
    assert_eq!(body["session"]["initialized"], false);
    assert_eq!(body["session"]["missing_tables"][0], "device");
}

#[tokio::test]
async fn every_tcp_peer_needs_the_token_loopback_included() {
    let bridge = Bridge::new().await;
    for path in ["/api/status", "/status", "/qr", "/api/session-backend"] {
        for peer in ["192.0.2.10", "2001:db8::1", "127.0.0.1", "::1"] {
            let (code, headers, body) = bridge.get(peer, path, None).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{peer} {path}");
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
            assert!(!body.contains(TOKEN));
            let (code, _, _) = bridge
                .get(peer, path, Some("Bearer nope-nope-nope-nope"))
                .await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{peer} {path}");
            let (code, _, _) = bridge
                .get(peer, path, Some(&format!("Bearer {TOKEN}")))
                .await;
            assert_eq!(code, StatusCode::OK, "{peer} {path}");
        }
    }
    // Liveness answers anyone: it tells nothing but the version.
    for peer in ["192.0.2.10", "127.0.0.1"] {
        let (code, _, _) = bridge.get(peer, "/health", None).await;
        assert_eq!(code, StatusCode::OK, "{peer}");
    }
}

#[tokio::test]
async fn a_browser_logs_in_once_and_then_sees_the_pages() {
    let bridge = Bridge::new().await;
    let page = |path: &str, cookie: Option<&str>| {
        let mut request = Request::get(path)
            .header(header::HOST, "localhost:8080")
            .header(header::ACCEPT, "text/html,application/xhtml+xml");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty()).unwrap()
    };
    // A page without a login sends the browser to the form, which comes back to the page.
    let (code, headers, _) = bridge.send("127.0.0.1", page("/qr", None)).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login?next=/qr");
    let (code, headers, body) = bridge
        .send("127.0.0.1", page("/login?next=/qr", None))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body.contains("name=\"token\"") && body.contains("value=\"/qr\""),
        "{body}"
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("form-action 'self'")
    );

    let login = |form: String, origin: &str| {
        Request::post("/login")
            .header(header::HOST, "localhost:8080")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap()
    };
    let (code, headers, body) = bridge
        .send(
            "127.0.0.1",
            login(
                "token=wrong-wrong-wrong&next=%2Fqr".to_owned(),
                "http://localhost:8080",
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key(header::SET_COOKIE));
    assert!(!body.contains("wrong-wrong-wrong"));
    // Another site's page cannot log the browser in, even with the token.
    let (code, headers, _) = bridge
        .send(
            "127.0.0.1",
            login(format!("token={TOKEN}"), "https://evil.example"),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(!headers.contains_key(header::SET_COOKIE));

    let (code, headers, _) = bridge
        .send(
            "127.0.0.1",
            login(format!("token={TOKEN}&next=%2Fqr"), "http://localhost:8080"),
        )
        .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/qr");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie names a session, not the token"
    );
    let pair = cookie.split(';').next().unwrap();
    for path in ["/qr", "/status", "/api/status"] {
        let (code, _, _) = bridge.send("127.0.0.1", page(path, Some(pair))).await;
        assert_eq!(code, StatusCode::OK, "{path}");
    }
    // A made-up session is no login.
    let forged = format!("{LOGIN_COOKIE}={}", "0".repeat(64));
    let (code, _, _) = bridge
        .send("127.0.0.1", page("/status", Some(&forged)))
        .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn unknown_paths_get_a_helpful_404() {
    let bridge = Bridge::new().await;
    let (code, _, body) = bridge.local("/api/send").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("/api/status"));
}
