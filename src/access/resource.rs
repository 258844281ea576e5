//! OAuth protected resource metadata (RFC 9728): where a client learns which authorization
//! server issues the tokens this server accepts, and the scopes it knows. Served without a
//! token on both ports when `[oauth]` is configured; 401 answers point to it.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AccessPolicy;
use crate::config::{OAuthSettings, Scope};

/// The path of the metadata; a resource with a path has its metadata under this plus that path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The resource a request names: the configured one, or the scheme and `Host` the request
/// came with, plus `path` (`/mcp`, `/sse`) when the request was for an MCP endpoint.
fn resource(oauth: &OAuthSettings, headers: &HeaderMap, path: &str) -> String {
    if let Some(configured) = &oauth.resource {
        return configured.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| plain_authority(host))
        .unwrap_or("localhost");
    let endpoint = match path {
        "/mcp" | "/sse" => path,
        _ => "",
    };
    format!("http://{host}{endpoint}")
}

/// True for a `Host` value that can stand in a URL and a quoted header parameter as it is.
fn plain_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// Where the metadata of `resource` lives (RFC 9728, 3.1: the well-known path goes between the
/// authority and the resource's own path).
fn metadata_url_of(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("http", resource));
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    format!("{scheme}://{authority}{METADATA_PATH}{path}")
}

/// The metadata URL for a 401 answer to a request for `path`.
pub(super) fn metadata_url(oauth: &OAuthSettings, headers: &HeaderMap, path: &str) -> String {
    metadata_url_of(&resource(oauth, headers, path))
}

/// `GET /.well-known/oauth-protected-resource[/PATH]`: the metadata, or 404 without OAuth.
async fn protected_resource(State(policy): State<AccessPolicy>, request: Request) -> Response {
    let Some(oauth) = policy.oauth() else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "OAuth is not configured on this server"})),
        )
            .into_response();
    };
    let suffix = request
        .uri()
        .path()
        .strip_prefix(METADATA_PATH)
        .unwrap_or("");
    let resource = resource(oauth, request.headers(), suffix);
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        axum::Json(serde_json::json!({
            "resource": resource,
            "authorization_servers": [oauth.issuer],
            "scopes_supported": Scope::ALL.iter().map(|scope| scope.as_str()).collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
            "resource_name": "whatsapp-mcp",
        })),
    )
        .into_response()
}

/// The metadata routes, for both ports' routers (outside the token check).
pub fn metadata_routes(policy: AccessPolicy) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(METADATA_PATH, get(protected_resource))
        .route(
            &format!("{METADATA_PATH}/{{*rest}}"),
            get(protected_resource),
        )
        .with_state(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(resource: Option<&str>) -> OAuthSettings {
        OAuthSettings {
            issuer: "https://issuer.example".to_owned(),
            issuer_aliases: Vec::new(),
            audience: "aud".to_owned(),
            resource: resource.map(str::to_owned),
            accounts: Default::default(),
        }
    }

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_metadata_url_puts_the_well_known_path_before_the_resource_path() {
        let derived = settings(None);
        assert_eq!(
            metadata_url(&derived, &host("mcp.example:3000"), "/mcp"),
            "http://mcp.example:3000/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url(&derived, &host("mcp.example:3000"), "/api/status"),
            "http://mcp.example:3000/.well-known/oauth-protected-resource"
        );
        // A Host that could break out of the quoted parameter is not echoed.
        assert_eq!(
            metadata_url(&derived, &host("a\", error=x"), "/mcp"),
            "http://localhost/.well-known/oauth-protected-resource/mcp"
        );
        let proxied = settings(Some("https://example.org/whatsapp"));
        assert_eq!(
            metadata_url(&proxied, &host("127.0.0.1:3000"), "/mcp"),
            "https://example.org/.well-known/oauth-protected-resource/whatsapp"
        );
    }
}
