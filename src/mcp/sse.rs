//! The legacy HTTP+SSE transport (MCP 2024-11-05), which clients configure as
//! `http://HOST:3000/sse`: `GET /sse` opens an event stream whose first event, `endpoint`,
//! names `/messages?sessionId=…`; the client POSTs JSON-RPC messages there (answered
//! `202 Accepted`) and reads every response from the stream.
//!
//! Each stream is one session: an rmcp server running over [`SseTransport`], a pair of channels.
//! Dropping the stream (the client went away) removes the session, which closes the server's
//! input and ends it. Comments (`: keep-alive`) flow while the stream is idle so proxies and
//! clients do not time it out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::service::serve_server;
use rmcp::transport::Transport;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::guard::{refusal, scope_refusal};
use super::tools::WhatsAppTools;
use crate::app::AppContext;

/// Messages a session may have queued in either direction before senders wait.
const CHANNEL_DEPTH: usize = 64;

/// Why a message could not be handed to the other side: the session is gone.
#[derive(Debug, thiserror::Error)]
#[error("the SSE session is closed")]
pub struct SessionClosed;

/// rmcp's view of one SSE session: messages POSTed by the client come in, messages for the
/// event stream go out.
#[derive(Debug)]
pub struct SseTransport {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    outgoing: mpsc::Sender<ServerJsonRpcMessage>,
}

impl Transport<RoleServer> for SseTransport {
    type Error = SessionClosed;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), SessionClosed>> + Send + 'static {
        let outgoing = self.outgoing.clone();
        async move { outgoing.send(item).await.map_err(|_| SessionClosed) }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), SessionClosed> {
        self.incoming.close();
        Ok(())
    }
}

/// The open SSE sessions of one server.
#[derive(Clone, Debug)]
pub struct SseSessions {
    ctx: AppContext,
    sessions: Arc<Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>>,
    keep_alive: Duration,
    max_sessions: usize,
    shutdown: CancellationToken,
}

impl SseSessions {
    pub fn new(
        ctx: AppContext,
        keep_alive: Duration,
        max_sessions: usize,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            ctx,
            sessions: Arc::default(),
            keep_alive,
            max_sessions,
            shutdown,
        }
    }

    /// How many sessions are open right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts and
        // removes), so a poisoned lock is still usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes its session from the table when the event stream is dropped.
struct SessionGuard {
    sessions: SseSessions,
    id: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
        tracing::debug!(session = %self.id, "SSE session closed");
    }
}

/// `GET /sse`: opens a session and streams its messages.
pub async fn open(State(sessions): State<SseSessions>) -> Response {
    if sessions.len() >= sessions.max_sessions {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "too many open SSE sessions ({}); close some clients or use the Streamable HTTP endpoint /mcp",
                sessions.max_sessions
            ),
        );
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (to_server, incoming) = mpsc::channel(CHANNEL_DEPTH);
    let (outgoing, to_client) = mpsc::channel(CHANNEL_DEPTH);
    sessions.lock().insert(id.clone(), to_server);

    let tools = WhatsAppTools::new(sessions.ctx.clone());
    let session_id = id.clone();
    tokio::spawn(async move {
        match serve_server(tools, SseTransport { incoming, outgoing }).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(err) => {
                tracing::debug!(session = %session_id, error = %err, "SSE session ended before initialisation");
            }
        }
    });
    tracing::debug!(session = %id, "SSE session opened");

    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={id}"));
    let guard = SessionGuard {
        sessions: sessions.clone(),
        id,
    };
    // The guard travels in the stream's state, so the session lives exactly as long as the
    // connection's response body.
    let messages = stream::unfold((to_client, guard), |(mut to_client, guard)| async move {
        let message = to_client.recv().await?;
        let event = match serde_json::to_string(&message) {
            Ok(json) => Event::default().event("message").data(json),
            Err(err) => Event::default().comment(format!("unserialisable message dropped: {err}")),
        };
        Some((Ok::<Event, Infallible>(event), (to_client, guard)))
    });
    let events = stream::once(async move { Ok::<Event, Infallible>(endpoint) })
        .chain(messages)
        .take_until(sessions.shutdown.clone().cancelled_owned());
    sse_response(events, sessions.keep_alive)
}

fn sse_response(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    keep_alive: Duration,
) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keep_alive).text("keep-alive"))
        .into_response();
    // Proxies such as nginx buffer responses unless told otherwise, which would hold back
    // every event.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST /messages?sessionId=…`: hands one JSON-RPC message to its session.
pub async fn post(
    State(sessions): State<SseSessions>,
    Query(query): Query<SessionQuery>,
    request: Request,
) -> Response {
    let Some(id) = query.session_id.filter(|id| !id.is_empty()) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "missing sessionId: open GET /sse first and POST to the endpoint it announces",
        );
    };
    let Some(sender) = sessions.lock().get(&id).cloned() else {
        return refusal(
            StatusCode::NOT_FOUND,
            &format!("unknown or closed session {id:?}: open a new one with GET /sse"),
        );
    };
    // The body limit middleware has already buffered the body within bounds.
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        );
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(err) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("parse error: the body is not a JSON-RPC message ({err})"),
            );
        }
    };
    if let Some(refused) = scope_refusal(&body, &parts.extensions) {
        return refused;
    }
    // The handler sees the request as on Streamable HTTP, credential included (tools/list
    // shows what it may call).
    if let ClientJsonRpcMessage::Request(request) = &mut message {
        request.request.extensions_mut().insert(parts);
    }
    match sender.send(message).await {
        Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
        Err(_) => refusal(
            StatusCode::NOT_FOUND,
            &format!("session {id:?} has closed: open a new one with GET /sse"),
        ),
    }
}
