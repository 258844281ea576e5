//! Named tokens and their scopes: a `whatsapp:read` token reads everything and acts on nothing,
//! a `whatsapp:send` token acts and reads nothing, on both MCP transports and the bridge. The
//! routers are driven in-process with a non-loopback peer (the token rule is the same for all).

mod mcp_support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mcp_support::{ALICE, Client, GROUP, TOKEN, rig};
use serde_json::{Value, json};
use tower::ServiceExt;
use whatsapp_mcp::access::AccessPolicy;
use whatsapp_mcp::config::{NamedToken, Scope, Secret};
use whatsapp_mcp::http::bridge_router;
use whatsapp_mcp::mcp::WRITE_TOOLS;

const PEER: &str = "192.0.2.7:50000";
const READER: &str = "reader-token-0123456789abcdef";
const SENDER: &str = "sender-token-0123456789abcdef";

async fn scoped_rig() -> mcp_support::Rig {
    rig(|config| {
        config.tokens = vec![
            NamedToken {
                name: "reader".to_owned(),
                secret: Secret::new(READER),
                scopes: vec![Scope::Read],
            },
            NamedToken {
                name: "sender".to_owned(),
                secret: Secret::new(SENDER),
                scopes: vec![Scope::Send],
            },
        ];
    })
    .await
}

fn client(rig: &mcp_support::Rig, token: &str) -> Client {
    let mut client = Client::new(rig.bare_app(PEER));
    client.headers = vec![("authorization", format!("Bearer {token}"))];
    client
}

/// Arguments that make each tool do its work on the seeded archive.
fn arguments(tool: &str) -> Value {
    match tool {
        "send_message" => json!({"recipient": ALICE, "message": "hello"}),
        "send_file" => json!({"recipient": ALICE, "media_path": "note.txt"}),
        "send_audio_message" => json!({"recipient": ALICE, "media_path": "voice.ogg"}),
        "reply_to_message" => json!({"chat_jid": ALICE, "message_id": "A1", "message": "yes"}),
        "send_reaction" => json!({"chat_jid": ALICE, "message_id": "A1", "emoji": "👍"}),
        "mark_read" => json!({"chat_jid": ALICE, "message_ids": ["A1"]}),
        "request_history" => json!({"chat_jid": GROUP}),
        "edit_message" => json!({"chat_jid": ALICE, "message_id": "A1", "message": "changed"}),
        "delete_message" => json!({"chat_jid": ALICE, "message_id": "A1"}),
        "send_poll" => json!({"recipient": ALICE, "question": "Lunch?", "options": ["Yes", "No"]}),
        "get_poll_results" => json!({"chat_jid": ALICE, "message_id": "A1"}),
        "search_contacts" => json!({"query": "a"}),
        "get_chat" | "get_group" => json!({"chat_jid": GROUP}),
        "get_direct_chat_by_contact" | "get_contact_chats" | "get_last_interaction" => {
            json!({"jid": ALICE})
        }
        "get_message_context" | "download_media" => json!({"chat_jid": ALICE, "message_id": "A1"}),
        _ => json!({}),
    }
}

/// The answer to one JSON-RPC request: HTTP status, the `WWW-Authenticate` header, and the
/// response message with the request's id.
async fn call(
    client: &Client,
    id: u64,
    method: &str,
    params: Value,
) -> (StatusCode, String, Value) {
    let answer = client
        .post_raw(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
    let challenge = answer
        .headers
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let message = answer
        .messages
        .into_iter()
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| {
            panic!(
                "no answer with id {id}: HTTP {} {}",
                answer.status, answer.text
            )
        });
    (answer.status, challenge, message)
}

fn assert_insufficient(
    what: &str,
    status: StatusCode,
    challenge: &str,
    message: &Value,
    scope: &str,
) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {message}");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains(&format!("scope=\"{scope}\"")),
        "{what}: WWW-Authenticate {challenge:?}"
    );
    let text = message["error"]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("insufficient_scope") && text.contains(scope),
        "{what}: {message}"
    );
}

/// The names a `tools/list` answer shows.
fn tool_names(listed: &Value) -> Vec<String> {
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools/list answer: {listed}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every tool the server has, as the main token's `tools/list` shows them.
async fn every_tool(rig: &mcp_support::Rig) -> Vec<String> {
    let mut main = client(rig, TOKEN);
    main.initialize().await;
    let tools = tool_names(&main.request("tools/list", json!({})).await);
    assert_eq!(tools.len(), 23, "{tools:?}");
    tools
}

#[tokio::test]
async fn a_read_token_reads_everything_and_acts_on_nothing() {
    let rig = scoped_rig().await;
    let tools = every_tool(&rig).await;
    let mut reader = client(&rig, READER);
    reader.initialize().await;
    // The list shows only what the token may call.
    let listed = reader.request("tools/list", json!({})).await;
    let shown = tool_names(&listed);
    let readable: Vec<&String> = tools
        .iter()
        .filter(|tool| !WRITE_TOOLS.contains(&tool.as_str()))
        .collect();
    assert_eq!(shown.iter().collect::<Vec<_>>(), readable, "{listed}");
    // Every call is checked on its own, whatever the list showed.
    let (mut served, mut refused) = (0, 0);
    for (n, tool) in tools.iter().enumerate() {
        let params = json!({"name": tool, "arguments": arguments(tool)});
        let (status, challenge, message) =
            call(&reader, 100 + n as u64, "tools/call", params).await;
        if WRITE_TOOLS.contains(&tool.as_str()) {
            assert_insufficient(tool, status, &challenge, &message, "whatsapp:send");
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::OK, "{tool}: {message}");
            assert!(message["result"].is_object(), "{tool}: {message}");
            served += 1;
        }
    }
    assert_eq!((served, refused), (13, 10));
    // Resources are reading too.
    let (status, _, message) = call(
        &reader,
        200,
        "resources/read",
        json!({"uri": "whatsapp://status"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert!(
        rig.calls()
            .iter()
            .all(|call| matches!(call, mcp_support::Call::Download { .. })),
        "a read token made the engine act: {:?}",
        rig.calls()
    );
}

#[tokio::test]
async fn a_send_token_acts_and_reads_nothing() {
    let rig = scoped_rig().await;
    let mut sender = client(&rig, SENDER);
    sender.initialize().await;
    // Listing what there is to call is part of the handshake, not reading the account; it
    // shows the tools that act and nothing else.
    let mut shown = tool_names(&sender.request("tools/list", json!({})).await);
    shown.sort();
    let mut acting = WRITE_TOOLS.map(str::to_owned).to_vec();
    acting.sort();
    assert_eq!(shown, acting);
    let (status, _, message) = call(
        &sender,
        10,
        "tools/call",
        json!({"name": "send_message", "arguments": arguments("send_message")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_eq!(message["result"]["isError"], json!(false), "{message}");
    assert_eq!(rig.calls().len(), 1);
    for (id, method, params) in [
        (
            11,
            "tools/call",
            json!({"name": "list_chats", "arguments": {}}),
        ),
        (
            12,
            "tools/call",
            json!({"name": "download_media", "arguments": arguments("download_media")}),
        ),
        (13, "resources/read", json!({"uri": "whatsapp://status"})),
        (14, "resources/list", json!({})),
    ] {
        let (status, challenge, message) = call(&sender, id, method, params.clone()).await;
        assert_insufficient(
            &format!("{method} {params}"),
            status,
            &challenge,
            &message,
            "whatsapp:read",
        );
    }
    assert_eq!(rig.calls().len(), 1, "{:?}", rig.calls());
}

#[tokio::test]
async fn the_main_token_still_grants_everything() {
    let rig = scoped_rig().await;
    every_tool(&rig).await;
    let mut main = client(&rig, TOKEN);
    main.initialize().await;
    assert_eq!(main.ok("list_groups", json!({})).await["count"], 1);
    main.ok("send_message", arguments("send_message")).await;
    assert_eq!(rig.calls().len(), 1);
}

/// An open legacy SSE stream's body and the endpoint it announced.
async fn open_sse(app: &Router, token: &str) -> (Body, String) {
    let response = app
        .clone()
        .oneshot(
            Request::get("/sse")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut seen = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .expect("the stream is open")
            .unwrap();
        if let Ok(bytes) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
        if let Some(line) = seen.lines().find_map(|l| l.strip_prefix("data:"))
            && seen.contains("\n\n")
        {
            return (body, line.trim().to_owned());
        }
    }
}

/// The message with `id` from an open SSE stream.
async fn sse_answer(body: &mut Body, id: u64) -> Value {
    let mut seen = String::new();
    loop {
        for line in seen.lines() {
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(message) = serde_json::from_str::<Value>(data.trim())
                && message["id"] == json!(id)
            {
                return message;
            }
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap_or_else(|_| panic!("no answer {id} within 5 s: {seen}"))
            .expect("the stream is open")
            .unwrap();
        if let Ok(bytes) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}

async fn post_sse(
    app: &Router,
    endpoint: &str,
    token: &str,
    message: Value,
) -> (StatusCode, String, String) {
    let response = app
        .clone()
        .oneshot(
            Request::post(endpoint)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(message.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn scopes_hold_on_the_legacy_sse_transport() {
    let rig = scoped_rig().await;
    let app = rig.bare_app(PEER);
    let (mut stream, endpoint) = open_sse(&app, READER).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "scope-test", "version": "1"}}});
    assert_eq!(
        post_sse(&app, &endpoint, READER, init).await.0,
        StatusCode::ACCEPTED
    );
    sse_answer(&mut stream, 1).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post_sse(&app, &endpoint, READER, initialized).await.0,
        StatusCode::ACCEPTED
    );
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}});
    assert_eq!(
        post_sse(&app, &endpoint, READER, list).await.0,
        StatusCode::ACCEPTED
    );
    let shown = tool_names(&sse_answer(&mut stream, 4).await);
    assert_eq!(shown.len(), 13, "{shown:?}");
    assert!(
        shown
            .iter()
            .all(|tool| !WRITE_TOOLS.contains(&tool.as_str())),
        "{shown:?}"
    );
    let read = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "list_chats", "arguments": {}}});
    assert_eq!(
        post_sse(&app, &endpoint, READER, read).await.0,
        StatusCode::ACCEPTED
    );
    assert!(sse_answer(&mut stream, 2).await["result"].is_object());
    for tool in WRITE_TOOLS {
        let act = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments(tool)}});
        let (status, challenge, body) = post_sse(&app, &endpoint, READER, act).await;
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_insufficient(tool, status, &challenge, &message, "whatsapp:send");
        assert_eq!(message["id"], json!(3), "{body}");
    }
    assert!(rig.calls().is_empty(), "{:?}", rig.calls());
}

#[tokio::test]
async fn the_bridge_gives_status_to_readers_and_linking_to_senders() {
    let rig = scoped_rig().await;
    let peer = PEER.parse().unwrap();
    let app = bridge_router(rig.ctx.clone(), AccessPolicy::from_config(&rig.ctx.config))
        .layer(MockConnectInfo::<std::net::SocketAddr>(peer));
    let send = |method: &'static str, path: &'static str, token: &'static str| {
        let app = app.clone();
        async move {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(if method == "POST" { "{}" } else { "" }))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (response.status(), challenge)
        }
    };
    for path in ["/api/status", "/status", "/api/session-backend"] {
        // Served: /api/session-backend answers 503 here, the rig having no session store.
        let (status, _) = send("GET", path, READER).await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
            "{path} with the read scope: {status}"
        );
        let (status, challenge) = send("GET", path, SENDER).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            challenge.contains("scope=\"whatsapp:read\""),
            "{path}: {challenge}"
        );
    }
    for (method, path) in [
        ("GET", "/qr"),
        ("GET", "/api/link"),
        ("POST", "/api/link"),
        ("POST", "/api/pair"),
        ("POST", "/api/logout"),
    ] {
        let (status, challenge) = send(method, path, READER).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(
            challenge.contains("scope=\"whatsapp:send\""),
            "{method} {path}: {challenge}"
        );
        let (status, _) = send(method, path, SENDER).await;
        assert_ne!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} with the send scope"
        );
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with the send scope"
        );
    }
}
