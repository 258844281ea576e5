//! The accept loop of both HTTP ports and the local Unix socket: HTTP/1.1 connections with time
//! limits on how long a client may take to send its request, Nagle's algorithm off on TCP, the
//! peer of each connection recorded for [`crate::access`], and a graceful stop.
//!
//! axum's own `serve` gives hyper no timer, so hyper's header timeout never fires there: a
//! client that trickles its headers a byte at a time, or never finishes them, or never finishes
//! its body, would hold a connection and a task for as long as it likes.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::StreamExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener};
use tower::ServiceExt as _;

use crate::access::Peer;

/// Time a client has to send a request's headers once it has started one, and to start the
/// next request on an idle keep-alive connection. Also what an idle connection is kept for.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a client has to send a whole request body once its headers have arrived. Bodies are
/// at most 1 MiB (JSON-RPC messages), so this leaves room for slow links, not for stalling.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request body ended early: the client did not send it in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyTimedOut(Duration);

/// True when `err` (or what caused it) is a [`BodyTimedOut`].
pub(crate) fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// A listening socket the service accepts HTTP connections on.
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// A TCP port whose connections start with a TLS handshake.
    Tls(TcpListener, tokio_rustls::TlsAcceptor),
    /// The local socket: its file mode and group decide who may connect.
    Local(UnixListener),
}

/// Serves `app` on `listener` until `stop` resolves, then stops accepting, lets every open
/// connection finish its current exchange, and returns once all of them have closed.
pub(crate) async fn serve(listener: Listener, app: Router, stop: impl Future<Output = ()>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut stop => break,
        };
        match accepted {
            Ok(Accepted::Tcp(stream, addr)) => {
                no_delay(&stream, addr);
                let peer = Peer::Tcp(addr);
                match &listener {
                    Listener::Tls(_, acceptor) => {
                        spawn_tls_connection(&http, &graceful, acceptor, stream, app.clone(), peer);
                    }
                    _ => {
                        spawn_connection(&http, &graceful, TokioIo::new(stream), app.clone(), peer);
                    }
                }
            }
            Ok(Accepted::Local(stream)) => {
                let peer = local_peer(&stream);
                let io = TokioIo::new(stream);
                spawn_connection(&http, &graceful, io, app.clone(), peer);
            }
            Err(err) => accept_failed(&err).await,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Tcp(listener) => f.debug_tuple("Tcp").field(listener).finish(),
            Listener::Tls(listener, _) => f.debug_tuple("Tls").field(listener).finish(),
            Listener::Local(listener) => f.debug_tuple("Local").field(listener).finish(),
        }
    }
}

/// One accepted connection.
enum Accepted {
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    Local(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Tcp(listener) | Listener::Tls(listener, _) => {
            let (stream, addr) = listener.accept().await?;
            Ok(Accepted::Tcp(stream, addr))
        }
        Listener::Local(listener) => Ok(Accepted::Local(listener.accept().await?.0)),
    }
}

/// Who is on the other end of a local connection, as the kernel tells it; logged, since the
/// local socket needs no token and the uid is what says who used it.
fn local_peer(stream: &tokio::net::UnixStream) -> Peer {
    match stream.peer_cred() {
        Ok(cred) => {
            tracing::info!(uid = cred.uid(), pid = cred.pid(), "local connection");
            Peer::Local {
                uid: cred.uid(),
                pid: cred.pid(),
            }
        }
        Err(err) => {
            // Without credentials the peer is still one the socket's mode let in; u32::MAX is
            // the kernel's "no user" and marks it in the log.
            tracing::warn!(error = %err, "cannot read the credentials of a local connection");
            Peer::Local {
                uid: u32::MAX,
                pid: None,
            }
        }
    }
}

/// Serves one connection on its own task, each request carrying `peer`.
fn spawn_connection<I>(
    http: &hyper::server::conn::http1::Builder,
    graceful: &GracefulShutdown,
    io: TokioIo<I>,
    app: Router,
    peer: Peer,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = graceful.watch(http.serve_connection(io, service_for(app, peer)));
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            // Timeouts and clients that hang up land here; nothing the service did wrong.
            tracing::debug!(%peer, error = %err, "connection closed with an error");
        }
    });
}

/// Like [`spawn_connection`], after a TLS handshake on the connection's own task, which the
/// client must finish within [`HEADER_READ_TIMEOUT`].
fn spawn_tls_connection(
    http: &hyper::server::conn::http1::Builder,
    graceful: &GracefulShutdown,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    app: Router,
    peer: Peer,
) {
    let (http, acceptor, watcher) = (http.clone(), acceptor.clone(), graceful.watcher());
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not finished in time");
                return;
            }
        };
        let connection =
            watcher.watch(http.serve_connection(TokioIo::new(stream), service_for(app, peer)));
        if let Err(err) = connection.await {
            tracing::debug!(%peer, error = %err, "connection closed with an error");
        }
    });
}

/// The router as hyper's service for one connection: each request carries `peer` and a body
/// deadline.
fn service_for(
    app: Router,
    peer: Peer,
) -> TowerToHyperService<
    impl tower::Service<
        axum::http::Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
    + Send,
> {
    TowerToHyperService::new(
        app.map_request(move |request: axum::http::Request<Incoming>| {
            let mut request = request.map(|body| with_deadline(body, BODY_READ_TIMEOUT));
            let extensions = request.extensions_mut();
            extensions.insert(peer);
            if let Peer::Tcp(addr) = peer {
                extensions.insert(ConnectInfo(addr));
            }
            request
        }),
    )
}

/// Turns Nagle's algorithm off on an accepted connection.
///
/// An MCP answer over Streamable HTTP leaves in more than one write (rmcp's SSE priming event,
/// then the result). With Nagle on, the second small write waits until the client acknowledges
/// the first, and clients delay that acknowledgement by up to 40 ms on Linux: every tool call
/// on a kept-alive connection would take at least that long. Set here, on each accepted
/// connection, so it holds whether systemd passed the listener or the service bound it.
fn no_delay(stream: &tokio::net::TcpStream, peer: std::net::SocketAddr) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %err, "cannot turn Nagle's algorithm off");
    }
}

/// A request body that fails with [`BodyTimedOut`] if it is not complete by `limit` from now.
fn with_deadline(body: Incoming, limit: Duration) -> Body {
    let deadline = tokio::time::Instant::now() + limit;
    let chunks = Body::new(body).into_data_stream();
    let bounded = futures_util::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => Some((Err(axum::Error::new(BodyTimedOut(limit))), None)),
        }
    });
    Body::from_stream(bounded)
}

/// Accept errors are about one connection (reset before accept) or about the process (out of
/// file descriptors); for the latter, pause instead of spinning on the same error.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %err, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    use axum::routing::post;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn echo_peer(request: axum::http::Request<Body>) -> String {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        match axum::body::to_bytes(request.into_body(), 1024).await {
            Ok(bytes) => format!("{} {}", peer.unwrap_or_default(), bytes.len()),
            Err(err) => format!("body error: {err}"),
        }
    }

    #[tokio::test]
    async fn handlers_see_the_peer_and_the_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/", post(echo_peer));
        let server = tokio::spawn(serve(Listener::Tcp(listener), app, async {
            let _ = stop_rx.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1 5"), "{answer}");
        let _ = stop_tx.send(());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn local_connections_carry_the_credentials_of_their_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route(
            "/",
            axum::routing::get(|request: axum::http::Request<Body>| async move {
                format!("{:?}", Peer::of(&request))
            }),
        );
        let server = tokio::spawn(serve(Listener::Local(listener), app, async {
            let _ = stop_rx.await;
        }));
        let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let uid = nix::unistd::Uid::effective().as_raw();
        let expected = format!(
            "Some(Local {{ uid: {uid}, pid: Some({}) }})",
            std::process::id()
        );
        assert!(answer.ends_with(&expected), "{answer}");
        let _ = stop_tx.send(());
        server.await.unwrap();
    }
}
