//! The bridge on port 8080: health, the JSON status API, and the HTML status and QR pages.
//!
//! Handlers only read: the live status from [`crate::state`] and counts from the store. Every
//! response carries headers that keep browsers from sniffing, framing or leaking it.

mod link;
mod login;
mod pages;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::access::{
    AccessPolicy, OriginGuard, metadata_routes, require_scope, require_token, security_headers,
};
use crate::app::AppContext;
use crate::config::Scope;
use crate::report;
use crate::state::LinkState;

/// Largest request body the bridge accepts; it has no endpoint that takes a body yet.
const BRIDGE_BODY_LIMIT: usize = 64 * 1024;

/// The bridge's routes. Everything but `/health` and `/login` sits behind `policy`; everything
/// but `/health` behind the same Host/Origin rule as the MCP endpoints: a page that rebinds its
/// own DNS name to 127.0.0.1 would otherwise be "same origin" with the bridge and could read the
/// QR code or log the account out. `policy` should accept browser logins, which `/login` opens.
pub fn bridge_router(ctx: AppContext, policy: AccessPolicy) -> Router {
    let origin_guard = OriginGuard::new(&ctx.config);
    // Reading the status needs `whatsapp:read`; linking (the QR code is the account's key)
    // and logging out need `whatsapp:send`.
    let reading = Router::new()
        .route("/api/status", get(api_status))
        .route("/api/session-backend", get(session_backend))
        .route("/status", get(status_page))
        .route_layer(middleware::from_fn_with_state(Scope::Read, require_scope));
    let acting = Router::new()
        .route("/qr", get(qr_page))
        .route("/api/link", get(link::get_link).post(link::post_link))
        .route("/api/pair", post(link::post_pair))
        .route("/api/logout", post(link::post_logout))
        .route_layer(middleware::from_fn_with_state(Scope::Send, require_scope));
    let guarded = reading
        .merge(acting)
        .fallback(not_found)
        .with_state(ctx)
        .layer(middleware::from_fn_with_state(
            origin_guard.clone(),
            same_site_only,
        ))
        .layer(DefaultBodyLimit::max(BRIDGE_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            policy.clone(),
            require_token,
        ));
    let metadata = metadata_routes(policy.clone());
    let login = Router::new()
        .route("/login", get(login::form).post(login::submit))
        .with_state(policy)
        .layer(middleware::from_fn_with_state(origin_guard, same_site_only))
        .layer(DefaultBodyLimit::max(BRIDGE_BODY_LIMIT));
    guarded
        .merge(login)
        .merge(metadata)
        .route("/health", get(health))
        .layer(middleware::map_response(security_headers))
}

/// Middleware: refuses requests for a foreign `Host` or from a foreign `Origin` (see
/// [`OriginGuard`]), answering in the bridge's own error shape.
async fn same_site_only(
    State(guard): State<OriginGuard>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match guard.check_request(&request) {
        Ok(()) => next.run(request).await,
        Err((status, message)) => error_json(status, &message),
    }
}

/// The bridge's error shape: `{"error": "..."}`.
fn error_json(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness only: answers as long as the process serves HTTP, whatever the database does.
async fn health() -> impl IntoResponse {
    axum::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

async fn api_status(State(ctx): State<AppContext>) -> Response {
    let report = report::build(&ctx).await;
    no_store(axum::Json(report).into_response())
}

#[derive(Serialize)]
struct SessionBackend {
    /// `sqlite` or `postgres`.
    backend: String,
    /// The archive's database, password hidden.
    location: String,
    /// The WhatsApp session database, password hidden.
    session_location: String,
    connected: bool,
    schema_ok: bool,
    schema_version: Option<i64>,
    expected_schema_version: i64,
    missing_tables: Vec<String>,
    error: Option<String>,
    /// The WhatsApp session store (device keys), which may live in another database.
    session: crate::store::session::SessionHealth,
}

async fn session_backend(State(ctx): State<AppContext>) -> Response {
    let health = ctx.store.health().await;
    let session = crate::store::session::health(&ctx.config.session_database_url).await;
    let status = if health.schema_ok() && session.connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = SessionBackend {
        backend: health.backend.as_str().to_owned(),
        location: ctx.config.database_url.redacted(),
        session_location: ctx.config.session_database_url.redacted(),
        connected: health.connected,
        schema_ok: health.schema_ok(),
        schema_version: health.schema_version,
        expected_schema_version: health.expected_schema_version,
        missing_tables: health.missing_tables,
        error: health.error,
        session,
    };
    no_store((status, axum::Json(body)).into_response())
}

async fn status_page(State(ctx): State<AppContext>) -> Response {
    let report = report::build(&ctx).await;
    no_store(Html(pages::dashboard(&report)).into_response())
}

async fn qr_page(State(ctx): State<AppContext>) -> Response {
    let engine = ctx.status.snapshot();
    // Opening the page is how people ask to link: (re)start linking when no code is showing.
    if engine.qr.is_none() && matches!(engine.state, LinkState::NotLinked | LinkState::LoggedOut) {
        let linker = std::sync::Arc::clone(&ctx.engine);
        tokio::spawn(async move {
            if let Err(err) = linker.start_linking().await {
                tracing::debug!(error = %err, "could not start linking");
            }
        });
    }
    no_store(Html(pages::qr(&engine)).into_response())
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not found: try /status, /qr, /api/status, /api/session-backend or /health"
        })),
    )
}

/// Status and QR answers change from one second to the next and must never be cached.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
