//! The front door of both HTTP ports and the local socket: who is asking ([`Peer`]), whether
//! they may ([`AccessPolicy`]: the bearer token, a browser login), whether a browser page is
//! behind the request ([`OriginGuard`]: `Host` and `Origin`), and the headers every answer
//! carries. `http` and `mcp` build their routers on these layers; new access rules go here.
//!
//! The rules, in one place:
//! - A peer on the local Unix socket is let in: the socket's owner, group and mode decided who
//!   could connect (the package gives it to the group `whatsapp-mcp`). Its uid is logged.
//! - A TCP peer shows the token (`Authorization: Bearer`, or on the bridge the cookie of a
//!   browser login) on every request but `/health` once a token is configured, whatever its
//!   address: a reverse proxy on the same host and another local user both arrive from
//!   loopback, so loopback proves nothing.
//! - With no token configured at all, loopback peers are let in and everyone else is refused
//!   (the configuration already refuses to listen beyond loopback without a token).
//! - What an admitted request may do is its [`Grant`]: every scope, except for a named token
//!   of `[auth.tokens.NAME]`, which grants its own. Routes that read need `whatsapp:read`,
//!   routes and tools that act need `whatsapp:send` ([`require_scope`]; the MCP endpoints
//!   check each JSON-RPC call in `mcp::guard`); without it the answer is 403
//!   `insufficient_scope`.
//! - With `[oauth]`, a bearer that is none of the static tokens is checked as an OAuth access
//!   token ([`OAuthVerifier`]: the issuer's keys, `iss`, `aud`, `exp`, `nbf`); its scopes, or
//!   its account's in `[oauth.accounts]`, are its grant. 401 answers then name the protected
//!   resource metadata, served on both ports without a token ([`metadata_routes`]).

mod browser;
mod oauth;
mod origin;
mod resource;
mod scope;
mod token;

use std::fmt;
use std::net::SocketAddr;

use axum::http::{HeaderValue, header};
use axum::response::Response;

pub use browser::{BrowserSessions, LOGIN_COOKIE, landing as browser_landing};
pub use oauth::{OAuthError, OAuthVerifier};
pub use origin::{OriginGuard, cross_site};
pub use resource::{METADATA_PATH, metadata_routes};
pub use scope::{Grant, insufficient_scope_challenge, insufficient_scope_message, require_scope};
pub use token::{AccessPolicy, require_token};

/// Who is on the other end of a connection, as the accept loop saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer and its address.
    Tcp(SocketAddr),
    /// A process on this host connected through the local Unix socket, with the credentials
    /// the kernel reported for it (`SO_PEERCRED`).
    Local { uid: u32, pid: Option<i32> },
}

impl Peer {
    /// The peer of `request`: what the accept loop recorded, or the TCP address axum's
    /// `ConnectInfo` carries (in-process tests supply that, or its `MockConnectInfo`).
    pub fn of<B>(request: &axum::http::Request<B>) -> Option<Self> {
        Self::from_extensions(request.extensions())
    }

    /// [`Peer::of`] from a request's extensions.
    pub fn from_extensions(extensions: &axum::http::Extensions) -> Option<Self> {
        use axum::extract::ConnectInfo;
        use axum::extract::connect_info::MockConnectInfo;
        extensions
            .get::<Peer>()
            .copied()
            .or_else(|| {
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| Peer::Tcp(info.0))
            })
            .or_else(|| {
                extensions
                    .get::<MockConnectInfo<SocketAddr>>()
                    .map(|info| Peer::Tcp(info.0))
            })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Local { uid, .. } => write!(f, "local uid {uid}"),
        }
    }
}

/// Headers every response gets: no sniffing, no framing, no referrer, and a content policy
/// that allows nothing but our own inline styles and the inline QR image. A page that needs
/// more (the login form posts to itself) sets its own policy, which is kept.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; form-action 'none'",
        ));
    response
}

/// The token in an `Authorization: Bearer` header, if the header is one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// Compares a presented secret with the expected one in constant time.
fn same_secret(presented: &str, expected: &str) -> bool {
    constant_time_eq::constant_time_eq(presented.as_bytes(), expected.as_bytes())
}
