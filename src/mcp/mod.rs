//! The MCP endpoint on port 3000. The tools and transports are not in this build yet: every MCP
//! path answers with an explicit JSON-RPC error instead of pretending to work.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{any, get};

use crate::http::{AccessPolicy, require_token, security_headers};

/// Largest JSON-RPC request body accepted on the MCP port.
pub const MCP_BODY_LIMIT: usize = 1024 * 1024;

/// The routes of the MCP port, guarded by `policy`.
pub fn router(policy: AccessPolicy) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/mcp", any(unavailable))
        .route("/sse", any(unavailable))
        .route("/messages", any(unavailable))
        .layer(DefaultBodyLimit::max(MCP_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(policy, require_token))
        .layer(middleware::map_response(security_headers))
}

async fn unavailable() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32000,
                "message": "the MCP tools are not available in this version of whatsapp-mcp"
            }
        })),
    )
}
