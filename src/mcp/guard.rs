//! The MCP side of the checks in front of every MCP endpoint: the Host/Origin guard of
//! [`crate::access`] answering in JSON-RPC's shape, the request body limit, and bodies that must
//! be JSON-RPC messages.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::OriginGuard;

/// Middleware form of [`OriginGuard::check`].
pub async fn check_origin(
    State(guard): State<OriginGuard>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check(request.headers()) {
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
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
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
