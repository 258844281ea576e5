//! Browser logins for the bridge's pages: a browser cannot add an `Authorization` header to a
//! page it navigates to, so `/login` takes the token once and hands back a cookie naming a
//! random session. The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other
//! site's page makes the browser send it) and lives in this process only: a restart logs every
//! browser out, and the token never sits in the browser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie's name.
pub const LOGIN_COOKIE: &str = "whatsapp_mcp_session";

/// How long a browser login lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Most browser logins held at once; the oldest goes first.
const MAX_SESSIONS: usize = 64;

/// The pages a login may come back to; anything else lands on the dashboard.
const LANDINGS: &[&str] = &["/status", "/qr"];

/// The open browser logins of one server.
#[derive(Clone, Debug, Default)]
pub struct BrowserSessions {
    /// Session id (64 hex digits from the OS's random source) → when it ends.
    open: Arc<Mutex<HashMap<String, Instant>>>,
    /// The ports speak TLS themselves, so the cookie is marked `Secure`.
    secure: bool,
}

impl BrowserSessions {
    /// Browser logins whose cookie is marked `Secure` when the service serves TLS itself (behind
    /// a proxy, the proxy marks it).
    pub fn new(secure: bool) -> Self {
        Self {
            secure,
            ..Self::default()
        }
    }

    /// Opens a session and returns its id.
    pub fn open(&self) -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, ends| *ends > now);
        while open.len() >= MAX_SESSIONS {
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, ends)| **ends)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            open.remove(&oldest);
        }
        open.insert(id.clone(), now + LIFETIME);
        Ok(id)
    }

    /// True when `headers` carry the cookie of a session still open.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let now = Instant::now();
        let open = self.lock();
        cookies(headers, LOGIN_COOKIE).any(|id| open.get(id).is_some_and(|ends| *ends > now))
    }

    /// The `Set-Cookie` value that hands session `id` to the browser.
    pub fn cookie(&self, id: &str) -> HeaderValue {
        let value = format!(
            "{LOGIN_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            LIFETIME.as_secs(),
            if self.secure { "; Secure" } else { "" }
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The values of every cookie called `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// Where a login for `path` lands: `path` itself if it is one of the pages, else the dashboard.
/// Only fixed paths, so the login form can never send a browser off-site.
pub fn landing(path: &str) -> &'static str {
    LANDINGS
        .iter()
        .find(|landing| **landing == path)
        .copied()
        .unwrap_or(LANDINGS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_open_sessions_are_admitted() {
        let sessions = BrowserSessions::default();
        let id = sessions.open().unwrap();
        assert_eq!(id.len(), 64);
        assert!(sessions.admits(&with_cookie(&format!("{LOGIN_COOKIE}={id}"))));
        assert!(!sessions.admits(&with_cookie(&format!("{LOGIN_COOKIE}=0{id}"))));
        assert!(!sessions.admits(&with_cookie(&format!("other={id}"))));
        assert!(!sessions.admits(&HeaderMap::new()));
        // Another server's sessions are not this one's.
        assert!(!BrowserSessions::default().admits(&with_cookie(&format!("{LOGIN_COOKIE}={id}"))));
    }

    #[test]
    fn the_oldest_session_makes_room() {
        let sessions = BrowserSessions::default();
        let first = sessions.open().unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.open().unwrap();
        }
        assert!(!sessions.admits(&with_cookie(&format!("{LOGIN_COOKIE}={first}"))));
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_stays_with_this_site_and_out_of_scripts() {
        let cookie = BrowserSessions::default().cookie("abc");
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with(&format!("{LOGIN_COOKIE}=abc;")));
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(!text.contains("Secure"));
        let over_tls = BrowserSessions::new(true).cookie("abc");
        assert!(over_tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn logins_land_on_our_own_pages_only() {
        assert_eq!(landing("/qr"), "/qr");
        assert_eq!(landing("/status"), "/status");
        assert_eq!(landing("//evil.example/"), "/status");
        assert_eq!(landing("https://evil.example"), "/status");
    }
}
