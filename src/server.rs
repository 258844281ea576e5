//! `serve`: runs both HTTP ports on listeners it is given until a shutdown future resolves.
//!
//! [`run`] never binds anything itself, so the same code serves systemd's sockets, sockets bound
//! from the config, or `127.0.0.1:0` in a test.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::access::{AccessPolicy, BrowserSessions};
use crate::app::AppContext;
use crate::connections::{self, Listener};
use crate::http;
use crate::listeners::Listeners;
use crate::mcp;
use crate::report;
use crate::systemd::Notifier;

/// How long open connections get to finish after a stop request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the last notifications to systemd (`STOPPING=1`) may take to go out at exit.
const NOTIFY_FLUSH: Duration = Duration::from_secs(1);

/// How often the `STATUS=` line is refreshed even when the link state has not changed, so the
/// message count stays current.
const STATUS_REFRESH: Duration = Duration::from_secs(30);

/// How often the archive is probed between those refreshes, so a database outage and the
/// recovery from it reach `STATUS=` within seconds rather than at the next refresh.
const ARCHIVE_PROBE: Duration = Duration::from_secs(5);

/// Serves the bridge and the MCP port until `shutdown` resolves, then drains and returns.
///
/// Sends `READY=1` once both servers accept connections; the caller has already opened the
/// store, so readiness means listeners and store are both up.
pub async fn run(
    ctx: AppContext,
    listeners: Listeners,
    notifier: Notifier,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let local_paths = listeners.local_paths();
    let bridge = into_tokio(listeners.bridge)?;
    let mcp_listeners = into_tokio(listeners.mcp)?;
    let local = listeners
        .local
        .into_iter()
        .map(|listener| {
            listener
                .set_nonblocking(true)
                .context("making the local socket non-blocking")?;
            tokio::net::UnixListener::from_std(listener)
                .map(Listener::Local)
                .context("registering the local socket with tokio")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addrs = |listeners: &[tokio::net::TcpListener]| -> std::io::Result<Vec<_>> {
        listeners
            .iter()
            .map(tokio::net::TcpListener::local_addr)
            .collect()
    };
    let (bridge_addrs, mcp_addrs) = (addrs(&bridge)?, addrs(&mcp_listeners)?);

    let policy = AccessPolicy::from_config(&ctx.config);
    // One MCP endpoint serves the MCP port and `/mcp` on the bridge (for `whatsapp-mcp stdio`).
    let mcp_endpoint = mcp::Endpoint::new(ctx.clone(), policy.clone());
    // Browser logins are for the bridge's pages; the MCP port takes the header only.
    let bridge_policy = policy.with_browser_login(BrowserSessions::new(ctx.config.tls.is_some()));
    let bridge_app =
        http::bridge_router(ctx.clone(), bridge_policy).merge(mcp_endpoint.bridge_routes());
    let mcp_app = mcp_endpoint.router();
    // With `[tls]`, both TCP ports speak TLS; the files are checked here, so a certificate that
    // does not load stops the service at start instead of failing every handshake.
    let acceptor = ctx
        .config
        .tls
        .as_ref()
        .map(crate::tls::acceptor)
        .transpose()
        .context("setting up TLS ([tls] cert_file and key_file)")?;
    let tcp = |listeners: Vec<tokio::net::TcpListener>| {
        listeners
            .into_iter()
            .map(|listener| match &acceptor {
                Some(acceptor) => Listener::Tls(listener, acceptor.clone()),
                None => Listener::Tcp(listener),
            })
            .collect::<Vec<_>>()
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut servers = Vec::new();
    for (listeners, app) in [
        (tcp(bridge), bridge_app.clone()),
        (tcp(mcp_listeners), mcp_app),
        // The local socket serves the bridge, `/mcp` included, to local users.
        (local, bridge_app),
    ] {
        for listener in listeners {
            servers.push(tokio::spawn(connections::serve(
                listener,
                app.clone(),
                stopped(stop_rx.clone()),
            )));
        }
    }

    // Subscribe before the first report, so a state change that lands while it is being built
    // still wakes the mirror below instead of being counted as already seen.
    let changes = ctx.status.subscribe();
    let first_report = report::build(&ctx).await;
    let first_line = report::status_line(&first_report);
    notifier.ready(&first_line);
    tracing::info!(
        bridge = ?bridge_addrs,
        mcp = ?mcp_addrs,
        local = ?local_paths,
        activated = listeners.activated,
        backend = ctx.store.kind().as_str(),
        "whatsapp-mcp {} ready",
        env!("CARGO_PKG_VERSION"),
    );

    let _watchdog = notifier.watchdog_interval().map(|interval| {
        tracing::debug!(?interval, "watchdog enabled");
        notifier.spawn_watchdog(interval)
    });
    let status_mirror = tokio::spawn(mirror_status(
        ctx.clone(),
        notifier.clone(),
        first_line,
        first_report.statistics.database_exists,
        changes,
    ));

    shutdown.await;
    tracing::info!("stop requested; draining connections");
    notifier.stopping("stopping: finishing open requests");
    status_mirror.abort();
    let _ = stop_tx.send(true);
    mcp_endpoint.shutdown();

    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        for server in servers {
            server.await.context("HTTP server task")?;
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them"),
    }
    tracing::info!("stopped");
    notifier.flush(NOTIFY_FLUSH);
    Ok(())
}

fn into_tokio(
    listeners: Vec<std::net::TcpListener>,
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    listeners
        .into_iter()
        .map(|listener| {
            listener
                .set_nonblocking(true)
                .context("making a listener non-blocking")?;
            tokio::net::TcpListener::from_std(listener).context("registering a listener with tokio")
        })
        .collect()
}

/// Keeps systemd's `STATUS=` line in step with the link state and the archive size.
async fn mirror_status(
    ctx: AppContext,
    notifier: Notifier,
    mut last: String,
    mut archive_up: bool,
    mut changes: watch::Receiver<crate::state::EngineStatus>,
) {
    let mut refreshed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(ARCHIVE_PROBE) => {
                // The probe is cheap; the full report (with its counts) is rebuilt only when the
                // archive came or went, or when the regular refresh is due.
                let up = ctx.store.health().await.connected;
                if up == archive_up && refreshed.elapsed() < STATUS_REFRESH {
                    continue;
                }
            }
        }
        let report = report::build(&ctx).await;
        archive_up = report.statistics.database_exists;
        refreshed = tokio::time::Instant::now();
        let line = report::status_line(&report);
        if line != last {
            notifier.status(&line);
            last = line;
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled, so a stop request that arrives between the call and `run`
/// sending `READY=1` is a clean stop rather than the signal's default (death).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    }
}
