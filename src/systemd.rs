//! The service manager protocol: readiness, status text, watchdog pings, start-up time
//! extensions and stopping notices.
//!
//! Every call is a silent no-op when `NOTIFY_SOCKET` is absent, so the same binary runs under
//! systemd, under `systemd-socket-activate`, or from a shell.
//!
//! Sending never blocks the caller. A notification is a datagram on a blocking socket, and a
//! service manager that is busy (or a reader that stopped) lets its queue fill up, after which
//! every send waits. So callers only record what they want to say, and one thread of its own
//! does the sending: while it waits, newer `STATUS=` lines replace older ones and repeated
//! pings fold into one, so nothing piles up and the async runtime never waits on systemd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use sd_notify::NotifyState;

/// How long the service manager is asked to wait for the next sign of life while start-up
/// work (migrations, the first open of a large archive) is still going on.
const START_EXTENSION: Duration = Duration::from_secs(30);

/// How often that request is renewed; well inside [`START_EXTENSION`].
const START_EXTENSION_EVERY: Duration = Duration::from_secs(10);

/// Sends notifications to the service manager, if there is one.
#[derive(Clone, Debug)]
pub struct Notifier {
    outbox: Option<Arc<Outbox>>,
}

/// What has been said but not yet sent, and the sending thread's wake-up.
#[derive(Debug, Default)]
struct Outbox {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Set, under the lock, while the sending thread holds a batch it has not sent yet.
    in_flight: AtomicBool,
}

/// Notifications waiting for the sending thread. Flags fold repeats; the status keeps only the
/// newest line.
#[derive(Debug, Default)]
struct Pending {
    ready: bool,
    stopping: bool,
    watchdog: bool,
    extend_usec: Option<u32>,
    status: Option<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        !self.ready
            && !self.stopping
            && !self.watchdog
            && self.extend_usec.is_none()
            && self.status.is_none()
    }

    /// The states of one datagram, in the order systemd should read them.
    fn states(&self) -> Vec<NotifyState<'_>> {
        let mut states = Vec::with_capacity(5);
        if self.ready {
            states.push(NotifyState::Ready);
        }
        if let Some(status) = &self.status {
            states.push(NotifyState::Status(status));
        }
        if let Some(usec) = self.extend_usec {
            states.push(NotifyState::ExtendTimeoutUsec(usec));
        }
        if self.watchdog {
            states.push(NotifyState::Watchdog);
        }
        if self.stopping {
            states.push(NotifyState::Stopping);
        }
        states
    }
}

impl Outbox {
    fn post(&self, change: impl FnOnce(&mut Pending)) {
        change(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_one();
    }

    /// The sending thread: waits for something to say, takes all of it, sends it as one
    /// datagram. Only this thread ever blocks on the notify socket.
    fn send_forever(&self) {
        loop {
            let batch = {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                while pending.is_empty() {
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                self.in_flight.store(true, Ordering::SeqCst);
                std::mem::take(&mut *pending)
            };
            if let Err(err) = sd_notify::notify(&batch.states()) {
                tracing::debug!(error = %err, "sd_notify failed");
            }
            self.in_flight.store(false, Ordering::SeqCst);
        }
    }
}

impl Notifier {
    /// Looks at `NOTIFY_SOCKET` once and, when it is set, starts the sending thread.
    pub fn from_env() -> Self {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return Self::disabled();
        }
        let outbox = Arc::new(Outbox::default());
        let sender = Arc::clone(&outbox);
        let started = std::thread::Builder::new()
            .name("sd-notify".to_owned())
            .spawn(move || sender.send_forever());
        match started {
            Ok(_) => Self {
                outbox: Some(outbox),
            },
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the sd_notify thread; not notifying systemd");
                Self::disabled()
            }
        }
    }

    /// A notifier that never sends anything (tests, `stdio`).
    pub fn disabled() -> Self {
        Self { outbox: None }
    }

    fn post(&self, change: impl FnOnce(&mut Pending)) {
        if let Some(outbox) = &self.outbox {
            outbox.post(change);
        }
    }

    pub fn ready(&self, status: &str) {
        self.post(|pending| {
            pending.ready = true;
            pending.status = Some(status.to_owned());
        });
    }

    pub fn status(&self, status: &str) {
        self.post(|pending| pending.status = Some(status.to_owned()));
    }

    pub fn stopping(&self, status: &str) {
        self.post(|pending| {
            pending.stopping = true;
            pending.status = Some(status.to_owned());
        });
    }

    /// Waits up to `limit` for everything posted so far to be sent: the process is about to
    /// exit, and with it the sending thread (a `STOPPING=1` posted just before the end would
    /// otherwise be lost).
    pub fn flush(&self, limit: Duration) {
        let Some(outbox) = &self.outbox else { return };
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            {
                let pending = outbox
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if pending.is_empty() && !outbox.in_flight.load(Ordering::SeqCst) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tracing::debug!("the last notifications to systemd were not sent in time");
    }

    fn watchdog_ping(&self) {
        self.post(|pending| pending.watchdog = true);
    }

    fn extend_start(&self, by: Duration) {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.post(|pending| pending.extend_usec = Some(usec));
    }

    /// Keeps asking the service manager for more start-up time for as long as the returned
    /// handle lives, from [`START_EXTENSION_EVERY`] on. systemd never shortens its own
    /// `TimeoutStartSec=` for this, so a quick start is unaffected; a slow one (a long
    /// migration, a large archive) is not killed while it is making progress.
    pub fn extend_start_while_busy(&self) -> Option<BackgroundTask> {
        self.outbox.as_ref()?;
        let notifier = self.clone();
        Some(BackgroundTask(tokio::spawn(async move {
            let start = tokio::time::Instant::now() + START_EXTENSION_EVERY;
            let mut ticker = tokio::time::interval_at(start, START_EXTENSION_EVERY);
            loop {
                ticker.tick().await;
                notifier.extend_start(START_EXTENSION);
            }
        })))
    }

    /// The ping interval systemd asked for (half of `WATCHDOG_USEC`), when the watchdog is on
    /// and meant for this process (`WATCHDOG_PID`).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.outbox.as_ref()?;
        sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
    }

    /// Pings the watchdog every `interval` for as long as the runtime proves it can still run
    /// new tasks. A stalled or deadlocked runtime cannot run this loop, so the pings stop and
    /// systemd restarts the service. A service manager that is slow to read holds up only the
    /// sending thread, never this loop.
    pub fn spawn_watchdog(&self, interval: Duration) -> BackgroundTask {
        let notifier = self.clone();
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                // A round trip through the scheduler: a fresh task must be picked up promptly.
                let probe = tokio::time::timeout(interval / 2, tokio::spawn(async {})).await;
                if matches!(probe, Ok(Ok(()))) {
                    notifier.watchdog_ping();
                } else {
                    tracing::warn!(
                        "runtime did not schedule a probe task in time; withholding the watchdog ping"
                    );
                }
            }
        });
        BackgroundTask(handle)
    }
}

/// A background loop that ends when its owner drops this handle.
#[derive(Debug)]
pub struct BackgroundTask(tokio::task::JoinHandle<()>);

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_notifications_fold_into_one_datagram() {
        let outbox = Outbox::default();
        outbox.post(|p| p.status = Some("opening the archive".into()));
        outbox.post(|p| p.watchdog = true);
        outbox.post(|p| p.watchdog = true);
        outbox.post(|p| {
            p.ready = true;
            p.status = Some("ready: 3 chats".into());
        });
        let pending = std::mem::take(&mut *outbox.pending.lock().unwrap());
        let lines: Vec<String> = pending.states().iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["READY=1", "STATUS=ready: 3 chats", "WATCHDOG=1"]);
        assert!(outbox.pending.lock().unwrap().is_empty());
    }

    #[test]
    fn stopping_comes_last() {
        let pending = Pending {
            stopping: true,
            status: Some("stopping".into()),
            extend_usec: Some(30_000_000),
            ..Pending::default()
        };
        let lines: Vec<String> = pending.states().iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "STATUS=stopping",
                "EXTEND_TIMEOUT_USEC=30000000",
                "STOPPING=1"
            ]
        );
    }
}
