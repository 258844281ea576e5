//! The accept loop of both HTTP ports: HTTP/1.1 connections with time limits on how long a
//! client may take to send its request, Nagle's algorithm off, and a graceful stop.
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
use tokio::net::TcpListener;
use tower::ServiceExt as _;

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

/// Serves `app` on `listener` until `stop` resolves, then stops accepting, lets every open
/// connection finish its current exchange, and returns once all of them have closed.
pub(crate) async fn serve(listener: TcpListener, app: Router, stop: impl Future<Output = ()>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        no_delay(&stream, peer);
        let service = TowerToHyperService::new(app.clone().map_request(
            move |request: axum::http::Request<Incoming>| {
                let mut request = request.map(|body| with_deadline(body, BODY_READ_TIMEOUT));
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Timeouts and clients that hang up land here; nothing the service did wrong.
                tracing::debug!(%peer, error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
        let server = tokio::spawn(serve(listener, app, async {
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
}
