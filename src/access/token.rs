//! Who may pass: the bearer token on TCP, the browser login on the bridge, and the local socket.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{BrowserSessions, Grant, Peer, bearer, same_secret};
use crate::config::{Config, NamedToken, Secret, is_loopback};

/// The bearer tokens a server accepts: the main one, which grants every scope, and the named
/// ones of `[auth.tokens.NAME]`, each with its own scopes.
#[derive(Debug, Default)]
pub(super) struct Credentials {
    main: Option<Secret>,
    named: Vec<NamedToken>,
}

impl Credentials {
    pub(super) fn of(config: &Config) -> Self {
        Self {
            main: config.token.clone(),
            named: config.tokens.clone(),
        }
    }

    fn any(&self) -> bool {
        self.main.is_some() || !self.named.is_empty()
    }

    /// What `presented` grants, if it is one of the tokens. Every token is compared (each in
    /// constant time), so the time taken does not say which one nearly matched.
    pub(super) fn grant_for(&self, presented: &str) -> Option<Grant> {
        let presented = presented.trim();
        let mut grant = None;
        if let Some(main) = &self.main
            && same_secret(presented, main.expose())
        {
            grant = Some(Grant::ALL);
        }
        for named in &self.named {
            if same_secret(presented, named.secret.expose()) {
                grant = Some(Grant::of(&named.scopes));
            }
        }
        grant
    }
}

/// The access rule of one router (see the module documentation of [`crate::access`]).
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    credentials: Arc<Credentials>,
    /// Browser logins accepted in place of the header (the bridge's pages), if any.
    browser: Option<BrowserSessions>,
}

/// What the policy decided about one request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Let in, with these scopes.
    Admit(Grant),
    /// No credential, or the wrong one.
    Refuse,
}

impl AccessPolicy {
    /// The rule with only a main token (or none).
    pub fn new(token: Option<Secret>) -> Self {
        Self {
            credentials: Arc::new(Credentials {
                main: token,
                named: Vec::new(),
            }),
            browser: None,
        }
    }

    /// The rule `config` describes: its main token and its named tokens.
    pub fn from_config(config: &Config) -> Self {
        Self {
            credentials: Arc::new(Credentials::of(config)),
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

    /// True when `presented` is the main token, the one a browser login asks for (a browser
    /// session can do everything, so a token with fewer scopes does not open one).
    pub fn is_token(&self, presented: &str) -> bool {
        self.credentials
            .main
            .as_ref()
            .is_some_and(|expected| same_secret(presented.trim(), expected.expose()))
    }

    /// True when any token is configured, so TCP peers must show one.
    pub fn token_required(&self) -> bool {
        self.credentials.any()
    }

    fn judge(&self, peer: Option<Peer>, headers: &HeaderMap) -> Verdict {
        let grant = match peer {
            Some(Peer::Local { .. }) => Some(Grant::ALL),
            Some(Peer::Tcp(_)) if self.credentials.any() => bearer(headers)
                .and_then(|presented| self.credentials.grant_for(presented))
                .or_else(|| {
                    self.browser
                        .as_ref()
                        .is_some_and(|sessions| sessions.admits(headers))
                        .then_some(Grant::ALL)
                }),
            Some(Peer::Tcp(addr)) => is_loopback(addr.ip()).then_some(Grant::ALL),
            None => None,
        };
        grant.map_or(Verdict::Refuse, Verdict::Admit)
    }
}

/// Middleware: lets a request through when [`AccessPolicy`] admits its peer, else answers 401
/// (or, for a browser opening a page of the bridge, sends it to the login form).
pub async fn require_token(
    State(policy): State<AccessPolicy>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = Peer::of(&request);
    if let Verdict::Admit(grant) = policy.judge(peer, request.headers()) {
        request.extensions_mut().insert(grant);
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
                Verdict::Admit(Grant::ALL),
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
                Verdict::Admit(Grant::ALL),
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
        assert_eq!(
            policy.judge(local, &HeaderMap::new()),
            Verdict::Admit(Grant::ALL)
        );
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
        assert_eq!(
            bridge.judge(tcp("127.0.0.1"), &headers),
            Verdict::Admit(Grant::ALL)
        );
    }

    #[test]
    fn a_named_token_admits_with_its_own_scopes() {
        use crate::config::{NamedToken, Scope};
        let credentials = Credentials {
            main: Some(Secret::new(TOKEN)),
            named: vec![NamedToken {
                name: "assistant".to_owned(),
                secret: Secret::new("reader-token-0123456789"),
                scopes: vec![Scope::Read],
            }],
        };
        let policy = AccessPolicy {
            credentials: Arc::new(credentials),
            browser: None,
        };
        let peer = tcp("192.0.2.7");
        assert_eq!(
            policy.judge(peer, &auth("Bearer reader-token-0123456789")),
            Verdict::Admit(Grant::of(&[Scope::Read]))
        );
        assert_eq!(
            policy.judge(peer, &auth(&format!("Bearer {TOKEN}"))),
            Verdict::Admit(Grant::ALL)
        );
        assert_eq!(
            policy.judge(peer, &auth("Bearer reader-token-012345678")),
            Verdict::Refuse
        );
        // Only the main token opens a browser session, which can do everything.
        assert!(policy.is_token(TOKEN));
        assert!(!policy.is_token("reader-token-0123456789"));
        // With only named tokens, loopback proves nothing either.
        let named_only = AccessPolicy {
            credentials: Arc::new(Credentials {
                main: None,
                named: policy.credentials.named.clone(),
            }),
            browser: None,
        };
        assert!(named_only.token_required());
        assert_eq!(
            named_only.judge(tcp("127.0.0.1"), &HeaderMap::new()),
            Verdict::Refuse
        );
    }
}
