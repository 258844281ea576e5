//! The MCP endpoint: the WhatsApp tools ([`tools`]) served over Streamable HTTP (`/mcp`, rmcp's
//! service), the legacy HTTP+SSE pair (`/sse` + `/messages`, [`sse`]) and stdin/stdout
//! ([`stdio`]).
//!
//! Only this module knows JSON-RPC. Every HTTP route sits behind the same layers of
//! [`crate::access`]: security headers, the access policy, the DNS-rebinding guard, and a body
//! limit; `/health` skips all but the headers.

pub mod confirm;
pub mod guard;
pub mod ledger;
pub mod output;
pub mod params;
pub mod picture;
pub mod policy;
pub mod prompts;
pub mod push;
pub mod sse;
pub mod stdio;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::access::{AccessPolicy, OriginGuard, metadata_routes, require_token, security_headers};
use crate::app::AppContext;

pub use tools::{STATUS_URI, WRITE_TOOLS, WhatsAppTools};

/// Largest JSON-RPC request body accepted on the MCP endpoints.
pub const MCP_BODY_LIMIT: usize = 1024 * 1024;

/// Tunables of the HTTP transports; the defaults are what the service uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often an idle event stream gets a keep-alive comment.
    pub keep_alive: Duration,
    /// Most legacy SSE sessions open at once.
    pub max_sse_sessions: usize,
    /// Largest request body.
    pub body_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            max_sse_sessions: 256,
            body_limit: MCP_BODY_LIMIT,
        }
    }
}

/// The MCP endpoint of one server: its routes and the switch that ends all sessions.
#[derive(Clone)]
pub struct Endpoint {
    ctx: AppContext,
    policy: AccessPolicy,
    options: Options,
    shutdown: CancellationToken,
    sse: sse::SseSessions,
    streamable: StreamableHttpService<WhatsAppTools, LocalSessionManager>,
    /// The same session table rmcp serves `/mcp` from, kept for counting.
    streamable_sessions: Arc<LocalSessionManager>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("options", &self.options)
            .field("sse_sessions", &self.sse.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn new(ctx: AppContext, policy: AccessPolicy) -> Self {
        Self::with_options(ctx, policy, Options::default())
    }

    pub fn with_options(ctx: AppContext, policy: AccessPolicy, options: Options) -> Self {
        let shutdown = CancellationToken::new();
        // Host and Origin are checked by our own guard (which also lets token-authenticated
        // remote clients use their own host names), so rmcp's loopback-only list is cleared.
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_sse_keep_alive(Some(options.keep_alive))
            .with_max_request_body_bytes(options.body_limit)
            .with_cancellation_token(shutdown.child_token());
        let factory_ctx = ctx.clone();
        let streamable_sessions = Arc::new(LocalSessionManager::default());
        let streamable = StreamableHttpService::new(
            move || Ok(WhatsAppTools::new(factory_ctx.clone())),
            Arc::clone(&streamable_sessions),
            config,
        );
        let sse = sse::SseSessions::new(
            ctx.clone(),
            options.keep_alive,
            options.max_sse_sessions,
            shutdown.child_token(),
        );
        Self {
            ctx,
            policy,
            options,
            shutdown,
            sse,
            streamable,
            streamable_sessions,
        }
    }

    /// The routes of the MCP port: `/health`, `/mcp`, `/sse` and `/messages`.
    pub fn router(&self) -> Router {
        let transports = Router::new()
            .route("/sse", get(sse::open))
            .route("/messages", post(sse::post))
            .with_state(self.sse.clone())
            .merge(self.streamable_route());
        // An explicit fallback, so unknown paths stay behind the token check below when the
        // metadata routes are merged in (a merge keeps only one router's fallback).
        let routes =
            self.guarded(transports.fallback(|| async { axum::http::StatusCode::NOT_FOUND }));
        #[cfg(feature = "fake-engine")]
        let routes = routes.route(
            "/debug/sessions",
            get(debug_sessions).with_state(self.clone()),
        );
        // `/health` skips the token and the Host/Origin guard: it reveals nothing, and load
        // balancers and proxies probe it under their own names and without credentials. So
        // does the OAuth resource metadata, which a client reads before it has a token.
        let routes = routes
            .layer(middleware::from_fn_with_state(
                self.policy.clone(),
                require_token,
            ))
            .route(
                "/health",
                get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
            )
            .merge(metadata_routes(self.policy.clone()));
        routes.layer(middleware::map_response(security_headers))
    }

    /// Streamable HTTP at `/mcp` for the bridge port, so `whatsapp-mcp stdio` needs nothing but
    /// `WHATSAPP_BRIDGE_URL` to reach the daemon.
    pub fn bridge_routes(&self) -> Router {
        self.outer(self.guarded(self.streamable_route()))
    }

    /// rmcp's Streamable HTTP service at `/mcp`, with bodies that are not JSON-RPC refused the
    /// way `/messages` refuses them.
    fn streamable_route(&self) -> Router {
        Router::new()
            .route_service("/mcp", self.streamable.clone())
            .route_layer(middleware::from_fn(guard::require_json_rpc))
    }

    /// The DNS-rebinding guard and the body limit.
    fn guarded(&self, routes: Router) -> Router {
        let origin_guard = OriginGuard::new(&self.ctx.config);
        routes
            .layer(middleware::from_fn_with_state(
                self.options.body_limit,
                guard::limit_body,
            ))
            .layer(middleware::from_fn_with_state(
                origin_guard,
                guard::check_origin,
            ))
    }

    /// The access policy and the security headers, as on the bridge.
    fn outer(&self, routes: Router) -> Router {
        routes
            .layer(middleware::from_fn_with_state(
                self.policy.clone(),
                require_token,
            ))
            .layer(middleware::map_response(security_headers))
    }

    /// Ends every MCP session and event stream, so a graceful stop is not held up by clients
    /// that keep their streams open.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Open legacy SSE sessions.
    pub fn sse_sessions(&self) -> usize {
        self.sse.len()
    }

    /// Open Streamable HTTP sessions (ended by `DELETE /mcp` or after rmcp's idle timeout).
    pub async fn streamable_sessions(&self) -> usize {
        self.streamable_sessions.sessions.read().await.len()
    }
}

/// `GET /debug/sessions`, in test builds only: open sessions of both transports and the tasks
/// alive in the runtime and the tool calls under way, so load tests can show that clients which went away left nothing
/// behind.
#[cfg(feature = "fake-engine")]
async fn debug_sessions(
    axum::extract::State(endpoint): axum::extract::State<Endpoint>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "sse_sessions": endpoint.sse_sessions(),
        "streamable_sessions": endpoint.streamable_sessions().await,
        "alive_tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "running_tool_calls": tools::running_tool_calls(),
    }))
}
