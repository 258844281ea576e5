//! The service manager protocol: readiness, status text, watchdog pings and stopping notices.
//!
//! Every call is a silent no-op when `NOTIFY_SOCKET` is absent, so the same binary runs under
//! systemd, under `systemd-socket-activate`, or from a shell.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends notifications to the service manager, if there is one.
#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Looks at `NOTIFY_SOCKET` once; later calls are cheap when it is absent.
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// A notifier that never sends anything (tests, `stdio`).
    pub fn disabled() -> Self {
        Self { enabled: false }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled
            && let Err(err) = sd_notify::notify(states)
        {
            tracing::debug!(error = %err, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    fn watchdog_ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// The ping interval systemd asked for (half of `WATCHDOG_USEC`), when the watchdog is on
    /// and meant for this process (`WATCHDOG_PID`).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
    }

    /// Pings the watchdog every `interval` for as long as the runtime proves it can still run
    /// new tasks. A stalled or deadlocked runtime cannot run this loop, so the pings stop and
    /// systemd restarts the service.
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
