//! Access control for both HTTP ports: loopback peers pass, everyone else shows the bearer token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{Secret, is_loopback};

/// The token a non-loopback peer must present, if one is configured.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    token: Option<Arc<Secret>>,
}

impl AccessPolicy {
    pub fn new(token: Option<Secret>) -> Self {
        Self {
            token: token.map(Arc::new),
        }
    }

    fn allows(&self, peer: SocketAddr, authorization: Option<&str>) -> bool {
        if is_loopback(peer.ip()) {
            return true;
        }
        let (Some(expected), Some(given)) = (&self.token, authorization) else {
            return false;
        };
        let Some(presented) = given
            .strip_prefix("Bearer ")
            .or_else(|| given.strip_prefix("bearer "))
        else {
            return false;
        };
        constant_time_eq::constant_time_eq(
            presented.trim().as_bytes(),
            expected.expose().as_bytes(),
        )
    }
}

/// Middleware: rejects non-loopback requests without the right `Authorization: Bearer` header.
pub async fn require_token(
    State(policy): State<AccessPolicy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if policy.allows(peer, authorization) {
        return next.run(request).await;
    }
    // Log the peer, never the header: a wrong token is still somebody's secret.
    tracing::warn!(%peer, path = %request.uri().path(), "refused a request without a valid bearer token");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"whatsapp-mcp\"")],
        axum::Json(serde_json::json!({
            "error": "unauthorized: requests from other machines need the header `Authorization: Bearer <token>` (the token is in /etc/whatsapp-mcp/token)"
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn loopback_needs_nothing() {
        let policy = AccessPolicy::new(None);
        assert!(policy.allows(peer("127.0.0.1"), None));
        assert!(policy.allows(peer("127.0.0.2"), None));
        assert!(policy.allows(peer("::1"), None));
        assert!(policy.allows(peer("::ffff:127.0.0.1"), None));
    }

    #[test]
    fn remote_peers_need_the_exact_token() {
        let policy = AccessPolicy::new(Some(Secret::new("s3cret-token-0123456789")));
        let remote = peer("192.0.2.7");
        assert!(!policy.allows(remote, None));
        assert!(!policy.allows(remote, Some("Bearer wrong")));
        assert!(!policy.allows(remote, Some("Basic s3cret-token-0123456789")));
        assert!(!policy.allows(remote, Some("Bearer s3cret-token-012345678")));
        assert!(policy.allows(remote, Some("Bearer s3cret-token-0123456789")));
        let open = AccessPolicy::new(None);
        assert!(!open.allows(remote, Some("Bearer anything")));
    }
}
