//! The connection supervisor: the one task that creates, runs, retries and retires the
//! whatsapp-rust client.
//!
//! The library's own reconnect loop is switched off (`enable_auto_reconnect = false`) so each
//! `Client::run` is exactly one connection; this loop decides what happens next from how it
//! ended. Linked: reconnect with [`Backoff`]. Logged out: wipe the session and wait to be linked
//! again. Stream replaced: stay off (two clients with one identity would keep knocking each
//! other off) until restarted or told otherwise. Client outdated or temporarily banned: wait
//! long. Not linked: connect only while someone wants to link (the `/qr` page, `qr`, `pair`),
//! so an idle unlinked server does not keep fetching QR codes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use whatsapp_rust::Client;
use whatsapp_rust::bot::{Bot, BotHandle};

use super::Shared;
use super::backoff::{Backoff, STABLE_AFTER};
use super::events::{ArchiveHook, Forwarder, Observed, Verdict};
use crate::engine::ingest::EngineEvent;
use crate::store::StoreError;

/// How long to wait before trying again after WhatsApp rejected this version: the client fetches
/// the current version string on each connect, so a later attempt can succeed on its own.
const OUTDATED_RETRY: Duration = Duration::from_secs(6 * 3600);
/// The shortest pause after WhatsApp said "too many requests".
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(60);
/// How long a stopping connection gets to flush its state.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests other tasks make of the supervisor.
#[derive(Debug)]
pub(super) enum Command {
    /// Start (or keep) linking: connect without a session to get QR codes.
    Link,
    /// Unlink: deregister if connected, then wipe the session.
    Logout {
        reason: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What ended a wait.
enum Wake {
    Stop,
    Command(Command),
    Elapsed,
}

/// Runs until the engine is stopped.
pub(super) async fn supervise(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut backoff = Backoff::new();
    let mut link_wanted = false;
    let mut live: Option<Arc<Client>> = None;
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        let paired = match &live {
            Some(client) => client.pn().is_some(),
            None => session_exists(&shared).await,
        };
        if !paired && !link_wanted {
            mark_not_linked(&shared, None).await;
            match wait(&shared, &mut commands, None).await {
                Wake::Stop => break,
                Wake::Command(command) => {
                    handle_idle_command(&shared, command, &mut link_wanted, &mut live).await;
                }
                Wake::Elapsed => {}
            }
            continue;
        }
        let reusable = live.take().filter(|c| !c.shutdown_signal().is_fired());
        let (client, mut run): (Arc<Client>, RunFuture) = match reusable {
            Some(client) => {
                let run_client = Arc::clone(&client);
                (client, Box::pin(async move { run_client.run().await }))
            }
            None => match build(&shared).await {
                Ok((client, handle)) => (client, Box::pin(handle)),
                Err(reason) => {
                    tracing::error!(error = %reason, "cannot set up the WhatsApp client");
                    let delay = backoff.next_delay();
                    apply(&shared, EngineEvent::Disconnected { reason }).await;
                    match wait(&shared, &mut commands, Some(delay)).await {
                        Wake::Stop => break,
                        Wake::Command(c) => {
                            handle_idle_command(&shared, c, &mut link_wanted, &mut live).await;
                        }
                        Wake::Elapsed => {}
                    }
                    continue;
                }
            },
        };
        *shared.client.write().await = Some(Arc::clone(&client));
        if let Ok(mut observed) = shared.observed.lock() {
            *observed = Observed::default();
        }
        if paired {
            apply(&shared, EngineEvent::Connecting).await;
        }
        tracing::info!(
            attempt = backoff.attempts() + 1,
            linked = paired,
            "connecting to WhatsApp"
        );
        let mut pending_logout = None;
        loop {
            tokio::select! {
                _ = &mut run => break,
                () = shared.stop.cancelled() => {
                    stop_client(&client, run).await;
                    *shared.client.write().await = None;
                    return;
                }
                Some(command) = commands.recv() => match command {
                    Command::Link => link_wanted = true,
                    Command::Logout { reason, reply } => {
                        if client.is_logged_in() {
                            client.logout().await;
                        } else {
                            client.disconnect().await;
                        }
                        pending_logout = Some((reason, reply));
                    }
                },
            }
        }
        *shared.client.write().await = None;
        let observed = shared
            .observed
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default();
        if let Some((reason, reply)) = pending_logout {
            client.disconnect().await;
            let result = forget_session(&shared, &reason).await;
            link_wanted = false;
            backoff.reset();
            let _ = reply.send(result);
            continue;
        }
        match observed.verdict {
            Some(Verdict::LoggedOut(reason)) => {
                client.disconnect().await;
                tracing::warn!(%reason, "WhatsApp logged this device out; link it again");
                if let Err(err) = forget_session(&shared, &reason).await {
                    tracing::error!(error = %err, "could not wipe the session");
                }
                link_wanted = false;
                backoff.reset();
            }
            Some(Verdict::StreamReplaced) => {
                client.disconnect().await;
                tracing::warn!(
                    "another client connected with this device's identity; staying off until restarted"
                );
                apply(&shared, EngineEvent::StreamReplaced).await;
                match wait_for_logout(&shared, &mut commands).await {
                    None => break,
                    Some((reason, reply)) => {
                        let result = forget_session(&shared, &reason).await;
                        let _ = reply.send(result);
                        backoff.reset();
                    }
                }
            }
            Some(Verdict::ClientOutdated) => {
                client.disconnect().await;
                tracing::error!(
                    retry_in_secs = OUTDATED_RETRY.as_secs(),
                    "WhatsApp rejected this client version (405): upgrade whatsapp-mcp"
                );
                apply(&shared, EngineEvent::ClientOutdated).await;
                if let Wake::Stop = pause(
                    &shared,
                    &mut commands,
                    OUTDATED_RETRY,
                    &mut link_wanted,
                    &mut live,
                )
                .await
                {
                    break;
                }
            }
            Some(Verdict::TemporaryBan {
                reason,
                retry_after,
            }) => {
                client.disconnect().await;
                tracing::error!(retry_in_secs = retry_after.as_secs(), %reason, "not reconnecting until the ban ends");
                apply(&shared, EngineEvent::Disconnected { reason }).await;
                if let Wake::Stop = pause(
                    &shared,
                    &mut commands,
                    retry_after,
                    &mut link_wanted,
                    &mut live,
                )
                .await
                {
                    break;
                }
            }
            Some(Verdict::QrExhausted) => {
                tracing::info!("the QR codes expired unscanned; linking stops until asked again");
                link_wanted = false;
                mark_not_linked(
                    &shared,
                    Some(
                        "the QR codes expired before one was scanned; reload /qr or run `whatsapp-mcp qr` for new ones",
                    ),
                ).await;
            }
            None if observed.paired => {
                // WhatsApp closes the stream right after pairing; the new identity connects now.
                backoff.reset();
                live = Some(client);
            }
            None => {
                let was_stable = observed
                    .connected_at
                    .is_some_and(|at| at.elapsed() >= STABLE_AFTER);
                if was_stable {
                    backoff.reset();
                }
                let mut delay = backoff.next_delay();
                if observed.rate_limited {
                    delay = delay.max(RATE_LIMIT_PAUSE);
                }
                let reason = match (&observed.connected_at, observed.last_disconnect) {
                    (Some(_), Some(reason)) => format!("connection lost: {reason}"),
                    (Some(_), None) => "connection lost".to_owned(),
                    (None, _) => "cannot reach WhatsApp".to_owned(),
                };
                // The library's own account of the attempt, which it logged at debug only.
                let cause = crate::logging::take_connect_failure();
                tracing::warn!(
                    attempt = backoff.attempts(),
                    retry_in_ms = delay.as_millis() as u64,
                    reason = %reason,
                    cause = cause.as_deref().unwrap_or("-"),
                    "WhatsApp connection failed; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                if paired {
                    apply(&shared, EngineEvent::Disconnected { reason }).await;
                } else {
                    // Someone is waiting for a QR code that cannot come: tell them why.
                    let note = format!(
                        "{reason}; no QR code until WhatsApp answers (next try in {} s)",
                        delay.as_secs().max(1)
                    );
                    mark_not_linked(&shared, Some(&note)).await;
                }
                live = Some(client);
                if let Wake::Stop =
                    pause(&shared, &mut commands, delay, &mut link_wanted, &mut live).await
                {
                    break;
                }
            }
        }
    }
    if let Some(client) = live {
        client.disconnect().await;
    }
}

/// Waits `delay` (or for a command that cuts it short); returns `Stop` to end the loop.
async fn pause(
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    delay: Duration,
    link_wanted: &mut bool,
    live: &mut Option<Arc<Client>>,
) -> Wake {
    match wait(shared, commands, Some(delay)).await {
        Wake::Stop => Wake::Stop,
        Wake::Command(command) => {
            handle_idle_command(shared, command, link_wanted, live).await;
            Wake::Elapsed
        }
        Wake::Elapsed => Wake::Elapsed,
    }
}

/// Blocks until stopped, a command arrives, or `delay` passes (never, when `None`).
async fn wait(
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    delay: Option<Duration>,
) -> Wake {
    let sleep = async {
        match delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shared.stop.cancelled() => Wake::Stop,
        command = commands.recv() => match command {
            Some(command) => Wake::Command(command),
            None => Wake::Stop,
        },
        () = sleep => Wake::Elapsed,
    }
}

/// While replaced by another client only a logout (or a stop) moves things on.
async fn wait_for_logout(
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<(String, oneshot::Sender<Result<(), StoreError>>)> {
    loop {
        match wait(shared, commands, None).await {
            Wake::Stop => return None,
            Wake::Command(Command::Logout { reason, reply }) => return Some((reason, reply)),
            Wake::Command(Command::Link) | Wake::Elapsed => {}
        }
    }
}

async fn handle_idle_command(
    shared: &Shared,
    command: Command,
    link_wanted: &mut bool,
    live: &mut Option<Arc<Client>>,
) {
    match command {
        Command::Link => *link_wanted = true,
        Command::Logout { reason, reply } => {
            if let Some(client) = live.take() {
                client.disconnect().await;
            }
            *link_wanted = false;
            let _ = reply.send(forget_session(shared, &reason).await);
        }
    }
}

/// One connection's run loop.
type RunFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Builds a client on the session store, with our event forwarder and durability hook, and
/// starts its first connection.
async fn build(shared: &Shared) -> Result<(Arc<Client>, BotHandle), String> {
    let builder = Bot::builder()
        .with_backend_arc(Arc::clone(&shared.backend))
        .with_event_handler(Forwarder::new(
            Arc::clone(&shared.observed),
            Arc::clone(&shared.acks),
            shared.events.clone(),
        ))
        .with_inbound_durability_hook(ArchiveHook::new(shared.ingest.clone()));
    // Test builds can be pointed at a stand-in server; release builds always reach WhatsApp.
    #[cfg(feature = "fake-engine")]
    let built = match super::loopback::server() {
        Some(server) => {
            builder
                .with_transport_factory(super::loopback::transport(&server))
                .with_http_client(super::loopback::LoopbackHttp::new(&server))
                .build()
                .await
        }
        None => builder.build().await,
    };
    #[cfg(not(feature = "fake-engine"))]
    let built = builder.build().await;
    let bot = built.map_err(|err| format!("building the client: {err}"))?;
    let client = bot.client();
    // One `run` = one connection; this supervisor does the retrying.
    client.enable_auto_reconnect.store(false, Ordering::Relaxed);
    // `spawn` wires the event handlers and the history sync worker, and starts the run.
    let handle = bot.spawn();
    Ok((client, handle))
}

/// Gracefully closes a connection, flushing the library's buffered state.
async fn stop_client(client: &Arc<Client>, run: RunFuture) {
    client.disconnect().await;
    if tokio::time::timeout(STOP_TIMEOUT, run).await.is_err() {
        tracing::warn!("the WhatsApp connection did not stop in time");
    }
}

/// True when the session store holds a linked device.
async fn session_exists(shared: &Shared) -> bool {
    match shared.backend.load().await {
        Ok(device) => device.is_some_and(|d| d.pn.is_some()),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the WhatsApp session; treating it as absent");
            false
        }
    }
}

/// Wipes the session and publishes the logged-out state.
async fn forget_session(shared: &Shared, reason: &str) -> Result<(), StoreError> {
    let wiped = crate::store::session::wipe_session(&shared.session_url).await;
    apply(
        shared,
        EngineEvent::LoggedOut {
            reason: reason.to_owned(),
        },
    )
    .await;
    wiped
}

/// Publishes "not linked" (with why, when there is a reason), leaving a logged-out state and
/// its explanation in place.
async fn mark_not_linked(shared: &Shared, note: Option<&str>) {
    let note = note.map(str::to_owned);
    apply(shared, EngineEvent::NotLinked { note }).await;
}

async fn apply(shared: &Shared, event: EngineEvent) {
    if let Err(err) = shared.ingest.apply(event).await {
        tracing::warn!(error = %err, "could not publish the WhatsApp link state");
    }
}
