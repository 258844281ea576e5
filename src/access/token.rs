//! Who may pass: the bearer token on TCP, the browser login on the bridge, and the local socket.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{BrowserSessions, Peer, bearer, same_secret};
use crate::config::{Secret, is_loopback};

/// The access rule of one router (see the module documentation of [`crate::access`]).
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    token: Option<Arc<Secret>>,
    /// Browser logins accepted in place of the header (the bridge's pages), if any.
    browser: Option<BrowserSessions>,
}

/// What the policy decided about one request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Admit,
    /// No credential, or the wrong one.
    Refuse,
}

impl AccessPolicy {
    pub fn new(token: Option<Secret>) -> Self {
        Self {
            token: token.map(Arc::new),
            browser: None,
        }
    }

    /// The same rule, also admitting browsers logged in through `sessions`.
    pub fn with_browser_login(mut self, sessions: BrowserSessions) -> Self {
        self.browser = Some(sessions);
        self
    }

    /// The browser logins this policy accepts, if it accepts any.
    pub fn browser_sessions(&self) -> Option<&BrowserSessions> {
        self.browser.as_ref()
    }

    /// True when `presented` is the configured token.
    pub fn is_token(&self, presented: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|expected| same_secret(presented.trim(), expected.expose()))
    }

    /// True when a token is configured, so TCP peers must show it.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    fn judge(&self, peer: Option<Peer>, headers: &HeaderMap) -> Verdict {
        let admitted = match peer {
            Some(Peer::Local { .. }) => true,
            Some(Peer::Tcp(addr)) => match &self.token {
                Some(_) => {
                    bearer(headers).is_some_and(|presented| self.is_token(presented))
                        || self
                            .browser
                            .as_ref()
                            .is_some_and(|sessions| sessions.admits(headers))
                }
                None => is_loopback(addr.ip()),
            },
            None => false,
        };
        if admitted {
            Verdict::Admit
        } else {
            Verdict::Refuse
        }
    }
}

/// Middleware: lets a request through when [`AccessPolicy`] admits its peer, else answers 401
/// (or, for a browser opening a page of the bridge, sends it to the login form).
pub async fn require_token(
    State(policy): State<AccessPolicy>,
    request: Request,
    next: Next,
) -> Response {
    let peer = Peer::of(&request);
    if policy.judge(peer, request.headers()) == Verdict::Admit {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    // Log the peer, never the header: a wrong token is still somebody's secret.
    match peer {
        Some(peer) => {
            tracing::warn!(%peer, %path, "refused a request without a valid bearer token");
        }
        None => tracing::error!(%path, "refused a request whose peer is unknown"),
    }
    if policy.browser.is_some() && opens_a_page(&request) {
        return to_login(&path);
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"whatsapp-mcp\"")],
        axum::Json(serde_json::json!({
            "error": "unauthorized: send the header `Authorization: Bearer <token>` (the token is in /etc/whatsapp-mcp/token); local users in the group whatsapp-mcp need none through /run/whatsapp-mcp/bridge.sock"
        })),
    )
        .into_response()
}

/// True for a browser navigating to a page (as opposed to a program calling the API).
fn opens_a_page(request: &Request) -> bool {
    request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// `303 See Other` to the login form, which comes back to `path` afterwards.
fn to_login(path: &str) -> Response {
    let target = format!("/login?next={}", super::browser::landing(path));
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn tcp(ip: &str) -> Option<Peer> {
        Some(Peer::Tcp(SocketAddr::new(ip.parse().unwrap(), 40000)))
    }

    fn auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    const TOKEN: &str = "s3cret-token-0123456789";

    #[test]
    fn without_a_token_loopback_passes_and_nobody_else() {
        let open = AccessPolicy::new(None);
        for ip in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(
                open.judge(tcp(ip), &HeaderMap::new()),
                Verdict::Admit,
                "{ip}"
            );
        }
        assert_eq!(
            open.judge(tcp("192.0.2.7"), &auth("Bearer anything")),
            Verdict::Refuse
        );
    }

    #[test]
    fn with_a_token_every_tcp_peer_shows_it_loopback_included() {
        let policy = AccessPolicy::new(Some(Secret::new(TOKEN)));
        for ip in ["127.0.0.1", "::1", "192.0.2.7"] {
            let peer = tcp(ip);
            assert_eq!(
                policy.judge(peer, &HeaderMap::new()),
                Verdict::Refuse,
                "{ip}"
            );
            for wrong in [
                "Bearer wrong",
                "Basic s3cret-token-0123456789",
                "Bearer s3cret-token-012345678",
            ] {
                assert_eq!(
                    policy.judge(peer, &auth(wrong)),
                    Verdict::Refuse,
                    "{ip} {wrong}"
                );
            }
            assert_eq!(
                policy.judge(peer, &auth(&format!("Bearer {TOKEN}"))),
                Verdict::Admit,
                "{ip}"
            );
        }
    }

    #[test]
    fn local_socket_peers_pass_without_a_token_and_unknown_peers_never() {
        let policy = AccessPolicy::new(Some(Secret::new(TOKEN)));
        let local = Some(Peer::Local {
            uid: 1000,
            pid: Some(42),
        });
        assert_eq!(policy.judge(local, &HeaderMap::new()), Verdict::Admit);
        assert_eq!(
            policy.judge(None, &auth(&format!("Bearer {TOKEN}"))),
            Verdict::Refuse
        );
    }

    #[test]
    fn a_browser_login_counts_only_where_it_is_accepted() {
        let sessions = BrowserSessions::default();
        let id = sessions.open().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("theme=dark; {}={id}", super::super::LOGIN_COOKIE)
                .parse()
                .unwrap(),
        );
        let plain = AccessPolicy::new(Some(Secret::new(TOKEN)));
        assert_eq!(plain.judge(tcp("127.0.0.1"), &headers), Verdict::Refuse);
        let bridge = plain.with_browser_login(sessions);
        assert_eq!(bridge.judge(tcp("127.0.0.1"), &headers), Verdict::Admit);
    }
}
