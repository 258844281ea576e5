//! `/login`: how a browser gets onto the bridge's pages once a token guards them. The form takes
//! the token once; the answer sets the cookie of a browser login ([`BrowserSessions`]).

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::access::{AccessPolicy, Peer, browser_landing, cross_site};

/// The login page may post its form to itself, which the bridge's usual policy forbids.
const LOGIN_PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'";

#[derive(Debug, Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

// The token is a secret: it never appears in a debug print.
impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// `GET /login`: the form, or straight to the page when no token is needed.
pub(super) async fn form(
    State(policy): State<AccessPolicy>,
    Query(query): Query<Next>,
) -> Response {
    let landing = browser_landing(query.next.as_deref().unwrap_or_default());
    if !policy.token_required() || policy.browser_sessions().is_none() {
        return see_other(landing, None);
    }
    page(StatusCode::OK, landing, None)
}

/// `POST /login`: checks the token and hands out the cookie.
pub(super) async fn submit(
    State(policy): State<AccessPolicy>,
    parts: axum::http::request::Parts,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let landing = browser_landing(form.next.as_deref().unwrap_or_default());
    if let Some(why) = cross_site(&parts.headers) {
        return super::error_json(
            StatusCode::FORBIDDEN,
            &format!("refused a cross-site login ({why})"),
        );
    }
    let Some(sessions) = policy
        .browser_sessions()
        .filter(|_| policy.token_required())
    else {
        return see_other(landing, None);
    };
    if !policy.is_token(&form.token) {
        let peer = Peer::from_extensions(&parts.extensions).map(|peer| peer.to_string());
        tracing::warn!(
            peer = peer.as_deref().unwrap_or("unknown"),
            "refused a browser login with a wrong token"
        );
        return page(
            StatusCode::UNAUTHORIZED,
            landing,
            Some("That is not the token. It is in /etc/whatsapp-mcp/token on the server."),
        );
    }
    match sessions.open() {
        Ok(id) => {
            tracing::info!("a browser logged in to the bridge's pages");
            see_other(landing, Some(sessions.cookie(&id)))
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot draw a session id");
            super::error_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot open a browser login: the system's random source failed",
            )
        }
    }
}

fn see_other(landing: &'static str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(landing));
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    super::no_store(response)
}

fn page(status: StatusCode, landing: &'static str, problem: Option<&str>) -> Response {
    let mut response = (status, Html(super::pages::login(landing, problem))).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(LOGIN_PAGE_POLICY),
    );
    super::no_store(response)
}
