//! HTTP checks in front of every MCP endpoint: the DNS-rebinding guard (`Host` and `Origin`)
//! and the request body limit.
//!
//! A web page the user visits can make their browser send requests to `127.0.0.1:3000`, and
//! with a rebound DNS name even read the answers. Browsers always send `Host` (the name they
//! think they talk to) and, cross-origin, `Origin`; a local MCP server that answers only to
//! loopback names and refuses foreign origins is out of such a page's reach. The bearer token
//! middleware runs before this guard, so any non-loopback peer here has already shown the token.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{Config, Secret};

/// Who may talk to the MCP endpoints, beyond the bearer-token rule.
#[derive(Clone, Debug)]
pub struct OriginGuard {
    inner: Arc<GuardInner>,
}

#[derive(Debug)]
struct GuardInner {
    /// Normalised `scheme://host[:port]` origins that browsers may call from.
    allowed_origins: Vec<String>,
    /// Extra host names or addresses (beyond loopback) the server answers to.
    listen_hosts: Vec<String>,
    token: Option<Secret>,
}

impl OriginGuard {
    pub fn new(config: &Config) -> Self {
        let mut listen_hosts = Vec::new();
        for addr in [config.mcp_listen, config.bridge_listen] {
            if !addr.ip().is_unspecified() {
                listen_hosts.push(normalise_host(&addr.ip().to_string()));
            }
        }
        Self {
            inner: Arc::new(GuardInner {
                allowed_origins: config
                    .allowed_origins
                    .iter()
                    .filter_map(|origin| normalise_origin(origin))
                    .collect(),
                listen_hosts,
                token: config.token.clone(),
            }),
        }
    }

    /// True when the request carries the configured bearer token.
    fn has_token(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.inner.token else {
            return false;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .is_some_and(|presented| {
                constant_time_eq::constant_time_eq(
                    presented.trim().as_bytes(),
                    expected.expose().as_bytes(),
                )
            })
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = normalise_host(strip_port(host));
        if name == "localhost" {
            return true;
        }
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>()
            && crate::config::is_loopback(ip)
        {
            return true;
        }
        self.inner.listen_hosts.contains(&name)
    }

    /// Checks `Host` and `Origin`; `Err` carries the refusal to send.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok());
        let trusted = self.has_token(headers);
        if let Some(host) = host
            && !trusted
            && !self.host_allowed(host)
        {
            tracing::warn!(
                host,
                "refused a request for a foreign Host (DNS-rebinding guard)"
            );
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: this server answers to localhost only, not to Host {host:?}; clients on other machines send `Authorization: Bearer <token>`"
                ),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let raw = origin.to_str().unwrap_or("");
            let same_origin = host.is_some_and(|host| {
                normalise_origin(raw).is_some_and(|o| {
                    o == format!("http://{}", normalise_authority(host))
                        || o == format!("https://{}", normalise_authority(host))
                })
            });
            let listed =
                normalise_origin(raw).is_some_and(|o| self.inner.allowed_origins.contains(&o));
            if !(same_origin || listed) {
                tracing::warn!(origin = raw, "refused a request from a foreign Origin");
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "forbidden: requests from the web origin {raw:?} are not allowed; add it to mcp.allowed_origins (WHATSAPP_MCP_ALLOWED_ORIGINS) if this web app should use the server"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Middleware form of [`OriginGuard::check`].
pub async fn check_origin(
    State(guard): State<OriginGuard>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err((status, message)) => refusal(status, &message),
    }
}

/// How much of an oversized body (in multiples of the limit) is read and dropped so the client
/// gets the 413; beyond that the connection is simply closed.
const DRAIN_FACTOR: usize = 4;

/// Reads and drops up to `cap` bytes of `body`.
async fn drain(body: Body, cap: usize) {
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = chunks.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > cap {
            break;
        }
    }
}

/// Middleware: reads the body up to `limit` bytes, answering 413 beyond it, so no handler (ours
/// or rmcp's) ever buffers more.
pub async fn limit_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body too large: the limit is {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        // Read what the client sends before answering: hanging up on an unread body resets
        // the connection, and the client would see the reset instead of this answer.
        drain(request.into_body(), limit.saturating_mul(DRAIN_FACTOR)).await;
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(err) => {
            let over_limit = std::error::Error::source(&err).is_some_and(
                <dyn std::error::Error + 'static>::is::<http_body_util::LengthLimitError>,
            );
            if over_limit {
                too_large()
            } else if crate::connections::is_body_timeout(&err) {
                refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {} s",
                        crate::connections::BODY_READ_TIMEOUT.as_secs()
                    ),
                )
            } else {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            }
        }
    }
}

/// Middleware for the Streamable HTTP endpoint: a JSON body that is not one JSON-RPC message
/// gets the answer `/messages` gives it (400 with a JSON-RPC parse error). rmcp would answer
/// 415 Unsupported Media Type in plain text, telling the client its Content-Type is wrong.
/// Runs inside [`limit_body`], so the body is already buffered and within bounds.
pub async fn require_json_rpc(request: Request, next: Next) -> Response {
    let json_post = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
                essence.trim().eq_ignore_ascii_case("application/json")
            });
    if !json_post {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        );
    };
    if let Err(err) = serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(&bytes) {
        return refusal(
            StatusCode::BAD_REQUEST,
            &format!("parse error: the body is not a JSON-RPC message ({err})"),
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A JSON-RPC shaped error answer, so MCP clients show the message instead of a parse error.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST => -32700,
        StatusCode::NOT_FOUND => -32001,
        _ => -32000,
    };
    (
        status,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[::1]:3000` → `[::1]`
        return rest
            .split_once(']')
            .map_or(host, |(inside, _)| &host[..inside.len() + 2]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn normalise_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => host,
    }
}

/// `host[:port]` with the host normalised and the port kept.
fn normalise_authority(authority: &str) -> String {
    let name = strip_port(authority);
    let port = &authority[name.len()..];
    format!("{}{port}", normalise_host(name))
}

/// `scheme://host[:port]`, lower-case, default ports dropped; `None` for anything else (paths
/// are tolerated because people paste URLs into configs).
fn normalise_origin(origin: &str) -> Option<String> {
    let origin = origin.trim();
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") {
        return None;
    }
    let authority = rest.split('/').next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut normalised = normalise_authority(authority);
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    if let Some(stripped) = normalised.strip_suffix(default_port) {
        normalised = stripped.to_owned();
    }
    Some(format!("{scheme}://{normalised}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(origins: &[&str], token: Option<&str>) -> OriginGuard {
        let mut config = Config::load_with_env(None, &|_| None).unwrap();
        config.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
        config.token = token.map(Secret::new);
        OriginGuard::new(&config)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn loopback_hosts_pass_and_rebound_names_do_not() {
        let g = guard(&[], None);
        for host in [
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "127.0.0.2",
            "LOCALHOST",
        ] {
            assert!(g.check(&headers(&[("host", host)])).is_ok(), "{host}");
        }
        for host in [
            "evil.example:3000",
            "192.0.2.1:3000",
            "localhost.evil.example",
        ] {
            assert!(g.check(&headers(&[("host", host)])).is_err(), "{host}");
        }
    }

    #[test]
    fn a_valid_token_lifts_the_host_rule_but_not_the_origin_rule() {
        let g = guard(&[], Some("t0ken-t0ken-t0ken-t0ken"));
        let with_token = headers(&[
            ("host", "mcp.example.org"),
            ("authorization", "Bearer t0ken-t0ken-t0ken-t0ken"),
        ]);
        assert!(g.check(&with_token).is_ok());
        let wrong = headers(&[
            ("host", "mcp.example.org"),
            ("authorization", "Bearer nope"),
        ]);
        assert!(g.check(&wrong).is_err());
        let mut foreign = with_token.clone();
        foreign.insert("origin", "https://evil.example".parse().unwrap());
        assert!(g.check(&foreign).is_err());
    }

    #[test]
    fn origins_must_be_the_same_or_listed() {
        let g = guard(&["https://app.example.com", "http://localhost:5173/"], None);
        let ok = |origin: &str| {
            g.check(&headers(&[("host", "localhost:3000"), ("origin", origin)]))
                .is_ok()
        };
        assert!(ok("http://localhost:3000"));
        assert!(ok("https://app.example.com:443"));
        assert!(ok("http://LOCALHOST:5173"));
        assert!(!ok("http://localhost:8000"));
        assert!(!ok("https://evil.example"));
        assert!(!ok("null"));
    }
}
