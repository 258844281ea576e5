//! The MCP side of the checks in front of every MCP endpoint: the Host/Origin guard of
//! [`crate::access`] answering in JSON-RPC's shape, the request body limit, and bodies that must
//! be JSON-RPC messages, and the scope each call needs.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::{Grant, OriginGuard, insufficient_scope_challenge, insufficient_scope_message};
use crate::config::Scope;

/// Middleware form of [`OriginGuard::check`].
pub async fn check_origin(
    State(guard): State<OriginGuard>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check_request(&request) {
        Ok(()) => next.run(request).await,
        Err((status, message)) => refusal(status, &message),
    }
}

/// How much of an oversized body (in multiples of the limit) is read and dropped so the client
/// gets the 413; beyond that the connection is simply closed.
const DRAIN_FACTOR: usize = 4;

/// Reads and drops up to `cap` bytes of `body`.
async fn drain(body: Body, cap: usize) {
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = chunks.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > cap {
            break;
        }
    }
}

/// Middleware: reads the body up to `limit` bytes, answering 413 beyond it, so no handler (ours
/// or rmcp's) ever buffers more.
pub async fn limit_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body too large: the limit is {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        // Read what the client sends before answering: hanging up on an unread body resets
        // the connection, and the client would see the reset instead of this answer.
        drain(request.into_body(), limit.saturating_mul(DRAIN_FACTOR)).await;
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(err) => {
            let over_limit = std::error::Error::source(&err).is_some_and(
                <dyn std::error::Error + 'static>::is::<http_body_util::LengthLimitError>,
            );
            if over_limit {
                too_large()
            } else if crate::connections::is_body_timeout(&err) {
                refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {} s",
                        crate::connections::BODY_READ_TIMEOUT.as_secs()
                    ),
                )
            } else {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            }
        }
    }
}

/// Middleware for the Streamable HTTP endpoint: a JSON body that is not one JSON-RPC message
/// gets the answer `/messages` gives it (400 with a JSON-RPC parse error). rmcp would answer
/// 415 Unsupported Media Type in plain text, telling the client its Content-Type is wrong.
/// Runs inside [`limit_body`], so the body is already buffered and within bounds.
pub async fn require_json_rpc(request: Request, next: Next) -> Response {
    let json_post = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
                essence.trim().eq_ignore_ascii_case("application/json")
            });
    if !json_post {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        );
    };
    if let Err(err) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(&bytes) {
        return refusal(
            StatusCode::BAD_REQUEST,
            &format!("parse error: the body is not a JSON-RPC message ({err})"),
        );
    }
    if let Some(refused) = scope_refusal(&bytes, &parts.extensions) {
        return refused;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The scopes a JSON-RPC message needs: `whatsapp:send` for a tool that acts
/// ([`super::WRITE_TOOLS`]); none for the handshake, `ping`, `tools/list`, notifications and
/// responses; `whatsapp:read` for everything else (other tools, resources, and whatever a later
/// protocol version adds); both for a message whose method cannot be read here.
pub fn required_scopes(body: &[u8]) -> &'static [Scope] {
    #[derive(serde::Deserialize)]
    struct Message {
        method: Option<String>,
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        name: Option<serde_json::Value>,
    }
    let Ok(message) = serde_json::from_slice::<Message>(body) else {
        return &Scope::ALL;
    };
    let Some(method) = message.method else {
        return &[];
    };
    match method.as_str() {
        "initialize" | "ping" | "tools/list" => &[],
        notification if notification.starts_with("notifications/") => &[],
        "tools/call" => {
            let name = message.params.and_then(|p| p.name);
            match super::tools::tool_scope(
                name.as_ref()
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(""),
            ) {
                Scope::Send => &[Scope::Send],
                Scope::Read => &[Scope::Read],
            }
        }
        _ => &[Scope::Read],
    }
}

/// 403 `insufficient_scope` for a message the request's [`Grant`] does not cover, answering
/// the request's own id so the client can tell which call was refused.
pub fn scope_refusal(body: &[u8], extensions: &axum::http::Extensions) -> Option<Response> {
    let grant = Grant::of_request(extensions);
    let scope = required_scopes(body)
        .iter()
        .copied()
        .find(|scope| !grant.allows(*scope))?;
    let id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|message| message.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    tracing::warn!(%scope, "refused an MCP call without the scope it needs");
    Some(
        (
            StatusCode::FORBIDDEN,
            [(
                header::WWW_AUTHENTICATE,
                insufficient_scope_challenge(scope),
            )],
            axum::Json(serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": -32000, "message": insufficient_scope_message(scope)},
            })),
        )
            .into_response(),
    )
}

/// A JSON-RPC shaped error answer, so MCP clients show the message instead of a parse error.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST => -32700,
        StatusCode::NOT_FOUND => -32001,
        _ => -32000,
    };
    (
        status,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_needs_the_scope_of_what_it_does() {
        let call = |name: &str| {
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": name, "arguments": {}}})
            .to_string()
        };
        for (body, expected) in [
            (
                r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#.to_owned(),
                &[][..],
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
                &[],
            ),
            (r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned(), &[]),
            (r#"{"jsonrpc":"2.0","id":3,"result":{}}"#.to_owned(), &[]),
            (call("send_message"), &[Scope::Send]),
            (call("delete_message"), &[Scope::Send]),
            (call("list_chats"), &[Scope::Read]),
            (call("download_media"), &[Scope::Read]),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"whatsapp://status"}}"#
                    .to_owned(),
                &[Scope::Read],
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":"some/later/method"}"#.to_owned(),
                &[Scope::Read],
            ),
            // Prompts carry messages, and completion shows chat names.
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"catch_up"}}"#
                    .to_owned(),
                &[Scope::Read],
            ),
            (
                r#"{"jsonrpc":"2.0","id":8,"method":"completion/complete","params":{}}"#.to_owned(),
                &[Scope::Read],
            ),
            // A method this reader cannot make out needs every scope.
            (
                r#"{"jsonrpc":"2.0","id":6,"method":"tools/list","method":"tools/call"}"#
                    .to_owned(),
                &Scope::ALL,
            ),
        ] {
            assert_eq!(required_scopes(body.as_bytes()), expected, "{body}");
        }
    }
}
