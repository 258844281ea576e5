//! What an admitted request may do: the [`Grant`] its credential carries, and the refusal a
//! request gets when its credential lacks a scope.

use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Scope;

/// The scopes a request was let in with. [`super::require_token`] records it on every request
/// it admits: every scope for the main token, a browser login, a local-socket peer and (with no
/// token configured) a loopback peer; a named token's own scopes otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    read: bool,
    send: bool,
}

impl Grant {
    pub const ALL: Grant = Grant {
        read: true,
        send: true,
    };

    pub fn of(scopes: &[Scope]) -> Self {
        Self {
            read: scopes.contains(&Scope::Read),
            send: scopes.contains(&Scope::Send),
        }
    }

    pub fn allows(self, scope: Scope) -> bool {
        match scope {
            Scope::Read => self.read,
            Scope::Send => self.send,
        }
    }

    /// The grant recorded on a request; a request that was never admitted has none and may do
    /// nothing.
    pub fn of_request(extensions: &Extensions) -> Self {
        extensions.get::<Grant>().copied().unwrap_or(Grant {
            read: false,
            send: false,
        })
    }
}

/// The `WWW-Authenticate` value of a request whose credential lacks `scope` (RFC 6750, 3.1).
pub fn insufficient_scope_challenge(scope: Scope) -> HeaderValue {
    HeaderValue::from_static(match scope {
        Scope::Read => {
            "Bearer realm=\"whatsapp-mcp\", error=\"insufficient_scope\", scope=\"whatsapp:read\""
        }
        Scope::Send => {
            "Bearer realm=\"whatsapp-mcp\", error=\"insufficient_scope\", scope=\"whatsapp:send\""
        }
    })
}

/// The words of that refusal.
pub fn insufficient_scope_message(scope: Scope) -> String {
    format!(
        "insufficient_scope: this token does not grant {scope}; use a token with that scope \
         (see [auth.tokens] in the configuration)"
    )
}

/// Middleware for routes that need `scope`: 403 `insufficient_scope` unless the request's
/// [`Grant`] allows it. Runs inside [`super::require_token`].
pub async fn require_scope(State(scope): State<Scope>, request: Request, next: Next) -> Response {
    if Grant::of_request(request.extensions()).allows(scope) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), %scope, "refused a request without the scope it needs");
    (
        StatusCode::FORBIDDEN,
        [(
            header::WWW_AUTHENTICATE,
            insufficient_scope_challenge(scope),
        )],
        axum::Json(serde_json::json!({ "error": insufficient_scope_message(scope) })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_allows_exactly_its_scopes() {
        let read = Grant::of(&[Scope::Read]);
        assert!(read.allows(Scope::Read) && !read.allows(Scope::Send));
        let send = Grant::of(&[Scope::Send]);
        assert!(!send.allows(Scope::Read) && send.allows(Scope::Send));
        assert!(Scope::ALL.iter().all(|s| Grant::ALL.allows(*s)));
        let none = Grant::of_request(&Extensions::new());
        assert!(Scope::ALL.iter().all(|s| !none.allows(*s)));
    }
}
