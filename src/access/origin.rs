//! The DNS-rebinding guard: `Host` and `Origin`.
//!
//! A web page the user visits can make their browser send requests to `127.0.0.1:3000`, and
//! with a rebound DNS name even read the answers. Browsers always send `Host` (the name they
//! think they talk to) and, cross-origin, `Origin`; a server that answers only to loopback
//! names and refuses foreign origins is out of such a page's reach. A request that shows the
//! token may use any host name (a remote client reaches the server under its own name).

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::config::Config;

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
    credentials: super::token::Credentials,
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
                credentials: super::token::Credentials::of(config),
            }),
        }
    }

    /// True when the request carries one of the configured bearer tokens.
    fn has_token(&self, headers: &HeaderMap) -> bool {
        super::bearer(headers)
            .is_some_and(|presented| self.inner.credentials.grant_for(presented).is_some())
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

    /// [`OriginGuard::check`] for a request that [`super::require_token`] has let in: one a
    /// bearer credential admitted (an OAuth access token included) may name any `Host`.
    pub fn check_request<B>(
        &self,
        request: &axum::http::Request<B>,
    ) -> Result<(), (StatusCode, String)> {
        let bearer = request
            .extensions()
            .get::<super::token::BearerAdmitted>()
            .is_some();
        self.check_trusting(request.headers(), bearer)
    }

    /// Checks `Host` and `Origin`; `Err` carries the refusal to send.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        self.check_trusting(headers, false)
    }

    fn check_trusting(
        &self,
        headers: &HeaderMap,
        bearer: bool,
    ) -> Result<(), (StatusCode, String)> {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok());
        let trusted = bearer || self.has_token(headers);
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

/// The header that gives a request away as sent by a page of another site, if one does.
///
/// Browsers send `Sec-Fetch-Site` and `Origin` on cross-site POSTs; command-line clients send
/// neither. `Origin` must name the host the request was sent to. Requests that change state
/// (linking, logging out, logging in) are refused when this says something.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Some(format!("Sec-Fetch-Site: {}", text(site)));
    }
    let origin = text(headers.get(header::ORIGIN)?);
    let host = headers.get(header::HOST).map(text);
    let matches_host = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(&host))
    });
    (!matches_host).then(|| format!("Origin: {origin}"))
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
    use crate::config::Secret;

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
