//! The one client of the running service, used by `status`, `qr`, `pair`, `logout` and the
//! `stdio` relay: it decides how to reach the service and shows the token where one is needed.
//!
//! The way in is chosen in one place ([`Route::choose`]): the local Unix socket when it exists
//! and no `bridge.url` was set (no token: the socket's group decides who may connect), else
//! TCP to `bridge.url` with the token, if one is configured.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

use crate::config::{Config, DEFAULT_LOCAL_SOCKET};

/// The base URL requests name when they go through the local socket; only the path counts.
const SOCKET_BASE: &str = "http://localhost";

/// How the service is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The local Unix socket at this path.
    Socket(PathBuf),
    /// TCP to this base URL.
    Tcp(String),
}

impl Route {
    /// The socket when it exists and `bridge.url` was not set, else TCP.
    pub fn choose(config: &Config) -> Self {
        use std::os::unix::fs::FileTypeExt as _;
        if !config.bridge_url_set
            && let Some(path) = &config.local_socket.path
            && std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
        {
            return Route::Socket(path.clone());
        }
        Route::Tcp(config.bridge_url.trim_end_matches('/').to_owned())
    }
}

/// Time limits of one kind of client.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// For connecting (socket activation included).
    pub connect: Option<Duration>,
    /// For a whole request and its answer.
    pub global: Option<Duration>,
}

/// A client of the service's bridge.
#[derive(Debug)]
pub struct BridgeClient {
    agent: ureq::Agent,
    route: Route,
    authorization: Option<String>,
}

impl BridgeClient {
    pub fn new(config: &Config, limits: Limits) -> Self {
        Self::with_route(config, Route::choose(config), limits)
    }

    /// A client that reaches the service by `route`.
    pub fn with_route(config: &Config, route: Route, limits: Limits) -> Self {
        let mut builder = ureq::Agent::config_builder()
            .timeout_connect(limits.connect)
            .timeout_global(limits.global)
            .http_status_as_error(false);
        // Roots are read only for an https:// URL: the plain routes start without that cost.
        if matches!(&route, Route::Tcp(base) if base.starts_with("https://")) {
            builder = builder.tls_config(crate::tls::client_config(config.tls.as_ref()));
        }
        let agent_config = builder.build();
        let (agent, authorization) = match &route {
            Route::Socket(path) => (
                ureq::Agent::with_parts(
                    agent_config,
                    SocketConnector {
                        path: Arc::from(path.as_path()),
                    },
                    DefaultResolver::default(),
                ),
                None,
            ),
            Route::Tcp(_) => (
                agent_config.into(),
                config
                    .token
                    .as_ref()
                    .map(|token| format!("Bearer {}", token.expose())),
            ),
        };
        Self {
            agent,
            route,
            authorization,
        }
    }

    /// The full URL of `path` on the service.
    pub fn url(&self, path: &str) -> String {
        match &self.route {
            Route::Socket(_) => format!("{SOCKET_BASE}{path}"),
            Route::Tcp(base) => format!("{base}{path}"),
        }
    }

    /// `GET path`, with the token where the route needs it.
    pub fn get(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.authorize(self.agent.get(self.url(path)))
    }

    /// `POST path`, with the token where the route needs it.
    pub fn post(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.authorize(self.agent.post(self.url(path)))
    }

    /// `DELETE path`, with the token where the route needs it.
    pub fn delete(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.authorize(self.agent.delete(self.url(path)))
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// True when requests carry a token.
    pub fn sends_token(&self) -> bool {
        self.authorization.is_some()
    }

    /// Where the service is looked for, for messages: the socket's path or the base URL.
    pub fn location(&self) -> String {
        match &self.route {
            Route::Socket(path) => path.display().to_string(),
            Route::Tcp(base) => base.clone(),
        }
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    /// `err` in words, with what to do when the local socket turned this user away.
    pub fn describe(&self, err: &ureq::Error) -> String {
        let refused_by_mode = matches!(
            (&self.route, err),
            (Route::Socket(_), ureq::Error::Io(io)) if io.kind() == std::io::ErrorKind::PermissionDenied
        );
        if refused_by_mode {
            format!(
                "{err}: only members of the group whatsapp-mcp may use {}. Run `sudo adduser \
                 $USER whatsapp-mcp` and log in again, or use TCP with the token \
                 (WHATSAPP_BRIDGE_URL and WHATSAPP_MCP_TOKEN)",
                self.location()
            )
        } else {
            err.to_string()
        }
    }

    /// What to tell the user when the service answered 401: what was sent and how to fix it.
    pub fn unauthorized_hint(&self) -> String {
        let sent = if self.sends_token() {
            "the token given is wrong"
        } else {
            "no token was given"
        };
        format!(
            "the service wants its token ({sent}). Set WHATSAPP_MCP_TOKEN (or \
             WHATSAPP_MCP_TOKEN_FILE, or [auth] token_file in the config) to the token in \
             /etc/whatsapp-mcp/token on the service's machine; on that machine, members of the \
             group whatsapp-mcp need none: they reach it through {DEFAULT_LOCAL_SOCKET} when \
             WHATSAPP_BRIDGE_URL is not set."
        )
    }
}

/// Connects every request to the local socket, whatever host the URL names.
#[derive(Debug)]
struct SocketConnector {
    path: Arc<Path>,
}

impl Connector for SocketConnector {
    type Out = SocketTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let stream = UnixStream::connect(&self.path)?;
        let config = &details.config;
        Ok(Some(SocketTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
        }))
    }
}

/// One connection on the local socket, for ureq.
#[derive(Debug)]
struct SocketTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

/// A time limit as the socket calls take it: `None` waits for ever.
fn limit(timeout: &NextTimeout) -> Option<Duration> {
    timeout.not_zero().map(|duration| *duration)
}

/// ureq's error for an I/O error, a time limit reached where the limit says so.
fn io_error(err: std::io::Error, timeout: &NextTimeout) -> ureq::Error {
    match err.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ureq::Error::Timeout(timeout.reason)
        }
        _ => ureq::Error::Io(err),
    }
}

impl Transport for SocketTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream
            .set_write_timeout(limit(&timeout))
            .map_err(ureq::Error::Io)?;
        let output = &self.buffers.output()[..amount];
        self.stream
            .write_all(output)
            .map_err(|err| io_error(err, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream
            .set_read_timeout(limit(&timeout))
            .map_err(ureq::Error::Io)?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match self.stream.read(input) {
                Ok(amount) => break amount,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(io_error(err, &timeout)),
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open when a read would block: no EOF and nothing unasked-for waiting.
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [0u8; 1];
        let open = matches!(
            self.stream.read(&mut probe),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
        );
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> Config {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |key: &str| {
            env.iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.clone())
        };
        Config::load_with_env(None, &lookup).unwrap()
    }

    #[test]
    fn the_socket_is_used_when_it_exists_and_no_url_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.sock");
        let socket = path.to_str().unwrap();
        let token = "a-token-of-sixteen-chars";

        // No socket file yet: TCP, with the token.
        let cfg = config(&[
            ("WHATSAPP_MCP_SOCKET", socket),
            ("WHATSAPP_MCP_TOKEN", token),
        ]);
        assert!(matches!(Route::choose(&cfg), Route::Tcp(_)));

        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let client = BridgeClient::new(&cfg, Limits::default());
        assert_eq!(client.route(), &Route::Socket(path.clone()));
        assert!(!client.sends_token(), "the socket needs no token");
        assert_eq!(client.url("/api/status"), "http://localhost/api/status");

        // An explicit URL means TCP even with the socket there.
        let cfg = config(&[
            ("WHATSAPP_MCP_SOCKET", socket),
            ("WHATSAPP_BRIDGE_URL", "http://127.0.0.1:9/"),
            ("WHATSAPP_MCP_TOKEN", token),
        ]);
        let client = BridgeClient::new(&cfg, Limits::default());
        assert_eq!(client.route(), &Route::Tcp("http://127.0.0.1:9".to_owned()));
        assert!(client.sends_token());

        // `none` turns the socket off.
        let cfg = config(&[("WHATSAPP_MCP_SOCKET", "none")]);
        assert!(matches!(Route::choose(&cfg), Route::Tcp(_)));
    }

    #[test]
    fn requests_cross_the_socket_with_their_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            // Two requests on one kept connection, then the client goes.
            let (mut stream, _) = listener.accept().unwrap();
            let mut seen = String::new();
            let mut buf = [0u8; 4096];
            for answer in ["first", "second"] {
                let n = stream.read(&mut buf).unwrap();
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                stream.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        let cfg = config(&[("WHATSAPP_MCP_SOCKET", path.to_str().unwrap())]);
        let client = BridgeClient::new(&cfg, Limits::default());
        for expected in ["first", "second"] {
            let mut response = client.get("/api/status").call().unwrap();
            assert_eq!(response.body_mut().read_to_string().unwrap(), expected);
        }
        drop(client);
        let seen = server.join().unwrap();
        assert!(seen.starts_with("GET /api/status HTTP/1.1\r\n"), "{seen}");
        assert!(
            !seen.to_ascii_lowercase().contains("authorization"),
            "{seen}"
        );
    }
}
