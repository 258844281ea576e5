//! The MCP HTTP transports in-process: the legacy SSE pair (endpoint event, 202 + answer on the
//! stream, keep-alives, concurrent sessions, cleanup on disconnect, unknown sessions) and the
//! guards in front of both transports (bearer token for remote peers, Host and Origin, body
//! limit, malformed JSON-RPC). After every refusal the server still serves.

mod mcp_support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mcp_support::{Client, TOKEN, rig};
use serde_json::{Value, json};
use tower::ServiceExt;

const LOCAL: &str = "127.0.0.1:50000";
const REMOTE: &str = "192.0.2.7:50000";

/// An open legacy SSE stream.
struct SseStream {
    body: Body,
    buffer: String,
}

impl SseStream {
    async fn open(app: &Router) -> (Self, String) {
        let response = app
            .clone()
            .oneshot(
                Request::get("/sse")
                    .header("host", "localhost:3000")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = Self {
            body: response.into_body(),
            buffer: String::new(),
        };
        let (event, data) = stream.next_event().await;
        assert_eq!(event, "endpoint");
        assert!(data.starts_with("/messages?sessionId="), "{data}");
        (stream, data)
    }

    /// The next complete event as (event name, data); comments are returned as ("comment", …).
    async fn next_event(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.trim_start().to_owned());
                    } else if let Some(comment) = line.strip_prefix(':') {
                        return ("comment".into(), comment.trim().to_owned());
                    }
                }
                return (event, data.join("\n"));
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("no event within 5 s")
                .expect("stream ended")
                .unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// The next JSON-RPC message, skipping keep-alive comments.
    async fn next_message(&mut self) -> Value {
        loop {
            let (event, data) = self.next_event().await;
            if event == "message" {
                return serde_json::from_str(&data).unwrap();
            }
        }
    }
}

async fn post(app: &Router, uri: &str, body: impl Into<Body>) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(
            Request::post(uri)
                .header("host", "localhost:3000")
                .header("content-type", "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn initialize(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "sse-test", "version": "1"}}})
    .to_string()
}

#[tokio::test]
async fn legacy_sse_sessions_answer_on_their_own_stream_and_close_on_disconnect() {
    let rig = rig(|_| {}).await;
    let app = rig.app(LOCAL);

    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(SseStream::open(&app).await);
    }
    assert_eq!(rig.endpoint.sse_sessions(), 4);
    for (n, (stream, endpoint)) in sessions.iter_mut().enumerate() {
        let id = 100 + n as u64;
        let (status, body) = post(&app, endpoint, initialize(id)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let answer = stream.next_message().await;
        assert_eq!(answer["id"], id);
        assert_eq!(answer["result"]["serverInfo"]["name"], "whatsapp-mcp");
        let (status, _) = post(
            &app,
            endpoint,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (stream, endpoint) = &mut sessions[2];
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "list_groups", "arguments": {}}});
    assert_eq!(
        post(&app, endpoint, call.to_string()).await.0,
        StatusCode::ACCEPTED
    );
    let answer = stream.next_message().await;
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["result"]["structuredContent"]["count"], 1);

    // Idle streams carry keep-alive comments.
    let (event, _) = stream.next_event().await;
    assert_eq!(event, "comment");

    // Malformed JSON-RPC is refused with a parse error and the session lives on.
    let (status, body) = post(&app, endpoint, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("parse error"), "{body}");
    let (status, body) = post(&app, endpoint, vec![b' '; 70 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("too large"), "{body}");
    let ping = json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}).to_string();
    assert_eq!(post(&app, endpoint, ping).await.0, StatusCode::ACCEPTED);
    assert_eq!(stream.next_message().await["id"], 8);

    let (status, body) = post(&app, "/messages?sessionId=feedface", initialize(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("GET /sse"), "{body}");
    let (status, body) = post(&app, "/messages", initialize(1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("sessionId"), "{body}");

    // Dropping a stream (the client went away) ends its session.
    let closed_endpoint = sessions[0].1.clone();
    drop(sessions);
    assert_eq!(rig.endpoint.sse_sessions(), 0);
    let (status, _) = post(&app, &closed_endpoint, initialize(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sse_sessions_are_capped() {
    let rig = rig(|_| {}).await;
    let app = rig.app(LOCAL);
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(SseStream::open(&app).await);
    }
    let refused = app
        .clone()
        .oneshot(
            Request::get("/sse")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    open.pop();
    SseStream::open(&app).await;
}

#[tokio::test]
async fn every_tcp_peer_needs_the_token_on_every_transport() {
    let rig = rig(|_| {}).await;
    let remote = rig.bare_app(REMOTE);
    for (method, uri, peer) in [
        ("POST", "/mcp", REMOTE),
        ("GET", "/sse", REMOTE),
        ("POST", "/messages?sessionId=x", REMOTE),
        // Loopback proves nothing: a reverse proxy and other local users come from there too.
        ("POST", "/mcp", LOCAL),
        ("GET", "/sse", LOCAL),
        ("POST", "/messages?sessionId=x", LOCAL),
    ] {
        for auth in [None, Some("Bearer wrong-token")] {
            let mut request = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "mcp.example.org:3000");
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = rig
                .bare_app(peer)
                .oneshot(request.body(Body::from(initialize(1))).unwrap())
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {auth:?}"
            );
        }
    }
    // With the token, a remote client may use its own host name.
    let mut client = Client::new(remote);
    client.headers = vec![
        ("authorization", format!("Bearer {TOKEN}")),
        ("host", "mcp.example.org:3000".to_owned()),
    ];
    client.initialize().await;
    assert_eq!(client.ok("list_groups", json!({})).await["count"], 1);
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    // With no token configured, loopback clients need none, and the Host/Origin rule is what
    // keeps a page with a rebound DNS name out (with a token, it gets a 401 first).
    let rig = rig(|config| {
        config.allowed_origins = vec!["https://app.example.com".into()];
        config.token = None;
    })
    .await;
    let app = rig.bare_app(LOCAL);
    for (host, origin, expected) in [
        ("attacker.example:3000", None, StatusCode::FORBIDDEN),
        (
            "localhost:3000",
            Some("https://evil.example"),
            StatusCode::FORBIDDEN,
        ),
        (
            "localhost:3000",
            Some("https://app.example.com"),
            StatusCode::OK,
        ),
    ] {
        for uri in ["/mcp", "/sse"] {
            let method = if uri == "/mcp" { "POST" } else { "GET" };
            let mut request = Request::builder()
                .method(method)
                .uri(uri)
                .header("host", host)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::from(initialize(1))).unwrap())
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                expected,
                "{uri} host={host} origin={origin:?}"
            );
            if expected == StatusCode::FORBIDDEN {
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                let text = String::from_utf8_lossy(&bytes);
                assert!(text.contains("forbidden"), "{text}");
            }
        }
    }
    let health = app
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn streamable_http_refuses_bad_bodies_and_keeps_serving() {
    let rig = rig(|_| {}).await;
    let mut client = Client::new(rig.app(LOCAL));
    client.initialize().await;

    // Answered as /messages answers it: 400 and a JSON-RPC parse error, not rmcp's 415.
    let malformed = client.post_raw("{\"jsonrpc\": \"2.0\", \"id\": 1,").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{malformed:?}");
    assert!(malformed.text.contains("-32700"), "{}", malformed.text);
    assert!(malformed.text.contains("parse error"), "{}", malformed.text);

    let oversized = client.post_raw(vec![b' '; 70 * 1024]).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(oversized.text.contains("too large"), "{}", oversized.text);

    let not_rpc = client.post_raw("[1, 2, 3]").await;
    assert_eq!(not_rpc.status, StatusCode::BAD_REQUEST, "{not_rpc:?}");
    assert!(
        not_rpc.text.contains("not a JSON-RPC message"),
        "{}",
        not_rpc.text
    );

    let mut stale = Client::new(rig.app(LOCAL));
    stale.session = Some("no-such-session".into());
    let gone = stale
        .post_raw(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}).to_string())
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{gone:?}");

    assert_eq!(client.ok("list_groups", json!({})).await["count"], 1);
}

#[tokio::test]
async fn the_bridge_serves_streamable_http_for_the_stdio_relay() {
    let rig = rig(|_| {}).await;
    // The relay's usual way in: the local socket, which needs no token.
    let bridge =
        rig.endpoint
            .bridge_routes()
            .layer(axum::Extension(whatsapp_mcp::access::Peer::Local {
                uid: 1000,
                pid: None,
            }));
    let mut client = Client::new(bridge.clone());
    client.initialize().await;
    assert_eq!(
        client.ok("get_sync_status", json!({})).await["state"],
        "connected"
    );
    let sse = bridge
        .oneshot(Request::get("/sse").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        sse.status(),
        StatusCode::NOT_FOUND,
        "only /mcp is on the bridge"
    );
}
