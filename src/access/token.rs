//! Who may pass: the bearer token on TCP, the browser login on the bridge, and the local socket.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::oauth::{OAuthError, OAuthVerifier, looks_like_jwt};
use super::{BrowserSessions, Grant, Peer, bearer, same_secret};
use crate::config::{Config, NamedToken, Secret, is_loopback};

/// The bearer tokens a server accepts: the main one, which grants every scope, the named ones
/// of `[auth.tokens.NAME]`, each with its own scopes, and OAuth access tokens when `[oauth]`
/// is configured.
#[derive(Debug, Default)]
pub(super) struct Credentials {
    main: Option<Secret>,
    named: Vec<NamedToken>,
    oauth: Option<OAuthVerifier>,
}

impl Credentials {
    pub(super) fn of(config: &Config) -> Self {
        Self {
            main: config.token.clone(),
            named: config.tokens.clone(),
            oauth: config.oauth.clone().map(OAuthVerifier::new),
        }
    }

    fn any(&self) -> bool {
        self.main.is_some() || !self.named.is_empty() || self.oauth.is_some()
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

/// Set on a request that a bearer credential (a static token or an OAuth access token) let
/// in, so the Host rule of [`super::OriginGuard`] knows a remote client is asking.
#[derive(Clone, Copy, Debug)]
pub(super) struct BearerAdmitted;

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
    /// Let in, with these scopes; `bearer` when a bearer credential did it.
    Admit { grant: Grant, bearer: bool },
    /// No credential, or an unknown one.
    Refuse,
    /// An OAuth access token that was not accepted, and why.
    RefuseToken(OAuthError),
}

impl Verdict {
    fn admit(grant: Grant) -> Self {
        Self::Admit {
            grant,
            bearer: false,
        }
    }
}

impl AccessPolicy {
    /// The rule with only a main token (or none).
    pub fn new(token: Option<Secret>) -> Self {
        Self {
            credentials: Arc::new(Credentials {
                main: token,
                named: Vec::new(),
                oauth: None,
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

    /// The OAuth settings, when access tokens are accepted.
    pub fn oauth(&self) -> Option<&crate::config::OAuthSettings> {
        self.credentials.oauth.as_ref().map(OAuthVerifier::settings)
    }

    async fn judge(&self, peer: Option<Peer>, headers: &HeaderMap) -> Verdict {
        let addr = match peer {
            Some(Peer::Local { .. }) => return Verdict::admit(Grant::ALL),
            Some(Peer::Tcp(addr)) => addr,
            None => return Verdict::Refuse,
        };
        if !self.credentials.any() {
            return if is_loopback(addr.ip()) {
                Verdict::admit(Grant::ALL)
            } else {
                Verdict::Refuse
            };
        }
        if let Some(presented) = bearer(headers) {
            if let Some(grant) = self.credentials.grant_for(presented) {
                return Verdict::Admit {
                    grant,
                    bearer: true,
                };
            }
            if let Some(oauth) = &self.credentials.oauth
                && looks_like_jwt(presented)
            {
                return match oauth.verify(presented).await {
                    Ok(grant) => Verdict::Admit {
                        grant,
                        bearer: true,
                    },
                    Err(err) => Verdict::RefuseToken(err),
                };
            }
        }
        let browser = self
            .browser
            .as_ref()
            .is_some_and(|sessions| sessions.admits(headers));
        if browser {
            Verdict::admit(Grant::ALL)
        } else {
            Verdict::Refuse
        }
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
    let refused = match policy.judge(peer, request.headers()).await {
        Verdict::Admit { grant, bearer } => {
            request.extensions_mut().insert(grant);
            if bearer {
                request.extensions_mut().insert(BearerAdmitted);
            }
            return next.run(request).await;
        }
        Verdict::Refuse => None,
        Verdict::RefuseToken(err) => Some(err),
    };
    let path = request.uri().path().to_owned();
    // Log the peer, never the header: a wrong token is still somebody's secret.
    match (peer, &refused) {
        (Some(peer), None) => {
            tracing::warn!(%peer, %path, "refused a request without a valid bearer token");
        }
        (Some(peer), Some(err)) => {
            tracing::warn!(%peer, %path, reason = %err, "refused an OAuth access token");
        }
        (None, _) => tracing::error!(%path, "refused a request whose peer is unknown"),
    }
    if refused.is_none() && policy.browser.is_some() && opens_a_page(&request) {
        return to_login(&path);
    }
    let metadata = policy
        .oauth()
        .map(|oauth| super::resource::metadata_url(oauth, request.headers(), &path));
    refusal(metadata.as_deref(), refused.as_ref())
}

/// The answer to a request that was not let in: 401 with a challenge naming, when OAuth is
/// configured, the protected resource metadata (RFC 9728, 5.1) and what was wrong with the
/// token; 403 for an account that is not let in; 503 while the issuer's keys are out of reach.
fn refusal(metadata: Option<&str>, refused: Option<&OAuthError>) -> Response {
    let mut challenge = String::from("Bearer realm=\"whatsapp-mcp\"");
    if let Some(url) = metadata {
        challenge.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    let (status, message) = match refused {
        None => (
            StatusCode::UNAUTHORIZED,
            "unauthorized: send the header `Authorization: Bearer <token>` (the token is in /etc/whatsapp-mcp/token); local users in the group whatsapp-mcp need none through /run/whatsapp-mcp/bridge.sock".to_owned(),
        ),
        Some(err @ OAuthError::Invalid(reason)) => {
            challenge.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{reason}\""
            ));
            (StatusCode::UNAUTHORIZED, format!("invalid_token: {err}"))
        }
        Some(err @ OAuthError::AccountNotListed) => {
            challenge.push_str(", error=\"insufficient_scope\", error_description=\"account not let in\"");
            (StatusCode::FORBIDDEN, format!("insufficient_scope: {err}"))
        }
        Some(err @ OAuthError::Unavailable(_)) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                axum::Json(serde_json::json!({
                    "error": format!("temporarily_unavailable: {err}; try again shortly")
                })),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
            return response;
        }
    };
    let mut response =
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
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

    impl AccessPolicy {
        fn decide(&self, peer: Option<Peer>, headers: &HeaderMap) -> Verdict {
            futures_util::FutureExt::now_or_never(self.judge(peer, headers))
                .expect("no OAuth, so no wait")
        }
    }

    fn admit(grant: Grant) -> Verdict {
        Verdict::admit(grant)
    }

    fn admit_bearer(grant: Grant) -> Verdict {
        Verdict::Admit {
            grant,
            bearer: true,
        }
    }

    #[test]
    fn without_a_token_loopback_passes_and_nobody_else() {
        let open = AccessPolicy::new(None);
        for ip in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(
                open.decide(tcp(ip), &HeaderMap::new()),
                admit(Grant::ALL),
                "{ip}"
            );
        }
        assert_eq!(
            open.decide(tcp("192.0.2.7"), &auth("Bearer anything")),
            Verdict::Refuse
        );
    }

    #[test]
    fn with_a_token_every_tcp_peer_shows_it_loopback_included() {
        let policy = AccessPolicy::new(Some(Secret::new(TOKEN)));
        for ip in ["127.0.0.1", "::1", "192.0.2.7"] {
            let peer = tcp(ip);
            assert_eq!(
                policy.decide(peer, &HeaderMap::new()),
                Verdict::Refuse,
                "{ip}"
            );
            for wrong in [
                "Bearer wrong",
                "Basic s3cret-token-0123456789",
                "Bearer s3cret-token-012345678",
            ] {
                assert_eq!(
                    policy.decide(peer, &auth(wrong)),
                    Verdict::Refuse,
                    "{ip} {wrong}"
                );
            }
            assert_eq!(
                policy.decide(peer, &auth(&format!("Bearer {TOKEN}"))),
                admit_bearer(Grant::ALL),
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
        assert_eq!(policy.decide(local, &HeaderMap::new()), admit(Grant::ALL));
        assert_eq!(
            policy.decide(None, &auth(&format!("Bearer {TOKEN}"))),
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
        assert_eq!(plain.decide(tcp("127.0.0.1"), &headers), Verdict::Refuse);
        let bridge = plain.with_browser_login(sessions);
        assert_eq!(bridge.decide(tcp("127.0.0.1"), &headers), admit(Grant::ALL));
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
            oauth: None,
        };
        let policy = AccessPolicy {
            credentials: Arc::new(credentials),
            browser: None,
        };
        let peer = tcp("192.0.2.7");
        assert_eq!(
            policy.decide(peer, &auth("Bearer reader-token-0123456789")),
            admit_bearer(Grant::of(&[Scope::Read]))
        );
        assert_eq!(
            policy.decide(peer, &auth(&format!("Bearer {TOKEN}"))),
            admit_bearer(Grant::ALL)
        );
        assert_eq!(
            policy.decide(peer, &auth("Bearer reader-token-012345678")),
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
                oauth: None,
            }),
            browser: None,
        };
        assert!(named_only.token_required());
        assert_eq!(
            named_only.decide(tcp("127.0.0.1"), &HeaderMap::new()),
            Verdict::Refuse
        );
    }
}
