#![no_main]
//! Fuzz target: arbitrary bytes POSTed as a JSON-RPC body to the MCP endpoint, in process, over
//! the fake engine's demo archive: to Streamable HTTP `/mcp` without a session and inside an
//! initialised one, and to the legacy SSE `/messages` of an open event stream.
//!
//! The first input byte picks the route; the rest is the body. Invariants checked on every
//! input: no panic, no 5xx, an answer within a bounded time, and a body that is not one
//! JSON-RPC message answered 400 with a JSON-RPC parse error (-32700).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;
use whatsapp_mcp::config::Config;
use whatsapp_mcp::engine::fake::FakeEngine;
use whatsapp_mcp::engine::ingest::Ingest;
use whatsapp_mcp::access::AccessPolicy;
use whatsapp_mcp::mcp::Endpoint;
use whatsapp_mcp::app::AppContext;
use whatsapp_mcp::state::{EngineStatus, LinkState, StatusHandle};
use whatsapp_mcp::store::{SqliteStore, Store};

/// Longest a single request may take before the input counts as a hang. Generous: libFuzzer's
/// own `-timeout` catches real deadlocks, this catches an answer that never comes.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

struct Harness {
    runtime: Runtime,
    app: Router,
    /// The Streamable HTTP session the "inside a session" inputs use; replaced if it closes.
    session: Mutex<String>,
    /// `/messages?sessionId=…` of the SSE stream kept open (and drained) for the whole run.
    sse_endpoint: String,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (app, session, sse_endpoint) = runtime.block_on(setup());
        Harness {
            runtime,
            app,
            session: Mutex::new(session),
            sse_endpoint,
        }
    })
}

/// A data directory (under `$TMPDIR`, one per process), the demo archive and the MCP router as
/// seen from a loopback peer.
async fn setup() -> (Router, String, String) {
    let dir = std::env::temp_dir().join(format!("whatsapp-mcp-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("outbox")).expect("a data directory");
    std::fs::write(dir.join("outbox/photo.jpg"), b"\xFF\xD8\xFF\xE0jpeg").expect("an outbox file");
    let data_dir = dir.display().to_string();
    let env = move |name: &str| (name == "WHATSAPP_MCP_DATA_DIR").then(|| data_dir.clone());
    let config = Config::from_toml("", Path::new("/nonexistent/config.toml"), &env)
        .expect("the default config");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.join("archive.db"))
            .await
            .expect("an archive"),
    );
    let status = StatusHandle::new(EngineStatus::new(LinkState::NotLinked));
    let engine = FakeEngine::new(
        Ingest::new(Arc::clone(&store), status.clone()),
        config.media_dir.clone(),
    );
    engine.seed_demo().await.expect("the demo archive");
    let ctx = AppContext::new(config, status, store, Arc::new(engine));
    let endpoint = Endpoint::new(ctx, AccessPolicy::new(None));
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    let app = endpoint.router().layer(MockConnectInfo(peer));
    let session = initialize(&app).await;
    let sse_endpoint = open_sse(&app).await;
    (app, session, sse_endpoint)
}

fn post(path: &str, session: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post(path)
        .header("host", "127.0.0.1:3000")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18");
    }
    request.body(Body::from(body)).expect("a request")
}

/// Sends `request` and reads the whole answer, bounded by [`ANSWER_WITHIN`].
async fn exchange(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Vec<u8>) {
    let what = format!("{} {}", request.method(), request.uri());
    let answer = async {
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map(|bytes| bytes.to_vec())
            .unwrap_or_default();
        (status, session, body)
    };
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(answer) => answer,
        Err(_) => panic!("{what}: no complete answer within {ANSWER_WITHIN:?}"),
    }
}

async fn initialize(app: &Router) -> String {
    let hello = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "1"}}});
    let (status, session, body) = exchange(app, post("/mcp", None, hello.to_string().into())).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let session = session.expect("a session id");
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = exchange(app, post("/mcp", Some(&session), ack.to_string().into())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    session
}

/// Opens `GET /sse`, reads the `endpoint` event, and keeps draining the stream in a task so the
/// session's answers never back up.
async fn open_sse(app: &Router) -> String {
    use http_body_util::BodyExt as _;
    let request = Request::get("/sse")
        .header("host", "127.0.0.1:3000")
        .header("accept", "text/event-stream")
        .body(Body::empty())
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut seen = String::new();
    let endpoint = loop {
        let frame = body
            .frame()
            .await
            .expect("the endpoint event")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
        if let Some(line) = seen.lines().find_map(|line| line.strip_prefix("data:"))
            && line.contains("sessionId=")
        {
            break line.trim().to_owned();
        }
    };
    tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
    let hello = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "1"}}});
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    for message in [hello, ack] {
        let (status, _, _) = exchange(app, post(&endpoint, None, message.to_string().into())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    endpoint
}

/// The answer to bytes that are not one JSON-RPC message: 400 and a JSON-RPC parse error.
fn assert_parse_error(route: &str, status: StatusCode, body: &[u8]) {
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{route}: not JSON-RPC but {status}: {}",
        String::from_utf8_lossy(body)
    );
    let answer: Value = serde_json::from_slice(body)
        .unwrap_or_else(|err| panic!("{route}: the refusal is not JSON ({err})"));
    assert_eq!(answer["jsonrpc"], "2.0", "{route}: {answer}");
    assert_eq!(answer["error"]["code"], -32700, "{route}: {answer}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let is_json_rpc = serde_json::from_slice::<ClientJsonRpcMessage>(body).is_ok();
    h.runtime.block_on(async {
        let (route, status, answer) = match selector % 3 {
            0 => {
                let (status, session, answer) =
                    exchange(&h.app, post("/mcp", None, body.into())).await;
                // An `initialize` opens a session; close it so sessions do not pile up.
                if let Some(session) = session {
                    let close = Request::delete("/mcp")
                        .header("host", "127.0.0.1:3000")
                        .header("mcp-session-id", session)
                        .body(Body::empty())
                        .expect("a request");
                    let (closed, _, _) = exchange(&h.app, close).await;
                    assert!(closed.is_success(), "closing a session: {closed}");
                }
                ("/mcp", status, answer)
            }
            1 => {
                let session = h.session.lock().expect("not poisoned").clone();
                let (status, _, answer) =
                    exchange(&h.app, post("/mcp", Some(&session), body.into())).await;
                if status == StatusCode::NOT_FOUND {
                    // Whatever ended the session, the next input gets a fresh one.
                    *h.session.lock().expect("not poisoned") = initialize(&h.app).await;
                }
                ("/mcp in a session", status, answer)
            }
            _ => {
                let (status, _, answer) =
                    exchange(&h.app, post(&h.sse_endpoint, None, body.into())).await;
                ("/messages", status, answer)
            }
        };
        assert!(
            !status.is_server_error(),
            "{route}: {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        if !is_json_rpc {
            assert_parse_error(route, status, &answer);
        }
    });
});
