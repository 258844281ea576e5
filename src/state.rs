//! The live link state of the WhatsApp account, published by the engine and read by everyone else.
//!
//! The engine is the only writer; the bridge pages, `/api/status`, the MCP status tool and the
//! systemd `STATUS=` line all read the same snapshot through a `watch` channel, so they can never
//! disagree about whether the account is linked. The same handle carries a feed of which chats
//! the archive just changed in ([`ArchiveChange`]), for MCP clients subscribed to them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::jid::Jid;

/// What the archive just committed, announced after the commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveChange {
    /// Something in this chat changed (a message, a reaction, an edit, a receipt); `chat` is
    /// the archive's own JID for it. `new` when the chat was not in the archive before.
    Chat { chat: Jid, new: bool },
    /// Many chats may have changed at once (a history sync chunk): anyone watching any chat,
    /// or the list of chats, should look again.
    Many,
}

/// Changes a slow reader may fall behind by before it is told to look at everything again.
const CHANGE_BACKLOG: usize = 1024;

/// Where the link to WhatsApp stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// No WhatsApp engine is running in this process.
    EngineOff,
    /// The engine is starting or loading its session.
    Starting,
    /// No account is linked and no QR code has been issued yet.
    NotLinked,
    /// A QR code (or pairing code) is waiting to be scanned.
    AwaitingScan,
    /// Opening the connection to WhatsApp.
    Connecting,
    /// Linked and online.
    Connected,
    /// Linked but offline; the engine retries with backoff.
    Disconnected,
    /// The phone removed this device: it must be linked again.
    LoggedOut,
    /// Another client took over this device's connection.
    StreamReplaced,
    /// WhatsApp rejected this client version: the package needs an upgrade.
    ClientOutdated,
}

impl LinkState {
    /// Every state, in the order a linking session usually walks through them.
    pub const ALL: [Self; 10] = [
        Self::EngineOff,
        Self::Starting,
        Self::NotLinked,
        Self::AwaitingScan,
        Self::Connecting,
        Self::Connected,
        Self::Disconnected,
        Self::LoggedOut,
        Self::StreamReplaced,
        Self::ClientOutdated,
    ];

    /// The state whose [`LinkState::as_str`] is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EngineOff => "engine_off",
            Self::Starting => "starting",
            Self::NotLinked => "not_linked",
            Self::AwaitingScan => "awaiting_scan",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::LoggedOut => "logged_out",
            Self::StreamReplaced => "stream_replaced",
            Self::ClientOutdated => "client_outdated",
        }
    }

    /// True once a device identity exists, whether or not it is online right now.
    pub fn is_linked(self) -> bool {
        matches!(
            self,
            Self::Connecting | Self::Connected | Self::Disconnected | Self::StreamReplaced
        )
    }

    /// How healthy this state is, for colouring the dashboard.
    pub fn severity(self) -> Severity {
        match self {
            Self::Connected => Severity::Good,
            Self::Starting | Self::Connecting | Self::AwaitingScan | Self::NotLinked => {
                Severity::Pending
            }
            Self::Disconnected | Self::StreamReplaced | Self::EngineOff => Severity::Warning,
            Self::LoggedOut | Self::ClientOutdated => Severity::Bad,
        }
    }
}

/// A coarse health grade shared by the dashboard colours and the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Good,
    Pending,
    Warning,
    Bad,
}

/// The linked account, once known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The device JID, e.g. `31612345678:12@s.whatsapp.net`.
    pub jid: String,
    /// The phone number in international form without `+`.
    pub phone: String,
    pub push_name: Option<String>,
}

/// A QR code the user can scan to link this device.
#[derive(Clone, PartialEq, Eq)]
pub struct QrCode {
    /// The raw string to encode; never logged.
    pub code: String,
    pub issued_at: DateTime<Utc>,
    /// How long WhatsApp keeps this code valid.
    pub valid_for_secs: u64,
}

impl std::fmt::Debug for QrCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QrCode")
            .field("code", &"[redacted]")
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// History sync progress as WhatsApp reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    /// True while history chunks are still arriving.
    pub active: bool,
    /// Percent complete when WhatsApp says so.
    pub percent: Option<u8>,
    pub chunks_received: u64,
    pub messages_received: u64,
    pub last_sync_at: Option<DateTime<Utc>>,
}

/// Everything the engine publishes about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    pub state: LinkState,
    pub account: Option<Account>,
    pub qr: Option<QrCode>,
    pub sync: SyncProgress,
    /// The last error worth showing the user, already free of secrets and message content.
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl EngineStatus {
    pub fn new(state: LinkState) -> Self {
        Self {
            state,
            account: None,
            qr: None,
            sync: SyncProgress::default(),
            last_error: None,
            updated_at: Utc::now(),
        }
    }

    /// One line for people: the dashboard headline and systemd's `STATUS=`.
    pub fn headline(&self) -> String {
        let who = self
            .account
            .as_ref()
            .map(|a| format!(" as +{}", a.phone))
            .unwrap_or_default();
        match self.state {
            LinkState::EngineOff => "WhatsApp engine not running".to_owned(),
            LinkState::Starting => "starting".to_owned(),
            LinkState::NotLinked => {
                "not linked: open the /qr page or run `whatsapp-mcp qr`".to_owned()
            }
            LinkState::AwaitingScan => {
                "waiting for the QR code to be scanned (open /qr or run `whatsapp-mcp qr`)"
                    .to_owned()
            }
            LinkState::Connecting => format!("connecting{who}"),
            LinkState::Connected if self.sync.active => match self.sync.percent {
                Some(percent) => format!("connected{who}, syncing history ({percent}%)"),
                None => format!("connected{who}, syncing history"),
            },
            LinkState::Connected => format!("connected{who}"),
            LinkState::Disconnected => "disconnected, reconnecting".to_owned(),
            LinkState::LoggedOut => {
                "logged out by the phone: link again with /qr or `whatsapp-mcp qr`".to_owned()
            }
            LinkState::StreamReplaced => {
                "another client took over this WhatsApp session; restart the service to reclaim it"
                    .to_owned()
            }
            LinkState::ClientOutdated => {
                "WhatsApp rejected this client version (405): upgrade whatsapp-mcp".to_owned()
            }
        }
    }
}

/// The shared handle: one writer (the engine), many readers.
#[derive(Clone, Debug)]
pub struct StatusHandle {
    tx: watch::Sender<EngineStatus>,
    changes: broadcast::Sender<ArchiveChange>,
}

impl StatusHandle {
    pub fn new(initial: EngineStatus) -> Self {
        Self {
            tx: watch::Sender::new(initial),
            changes: broadcast::Sender::new(CHANGE_BACKLOG),
        }
    }

    /// Whether anyone follows the archive's changes (when nobody does, the writer skips the
    /// work of saying what changed).
    pub fn changes_followed(&self) -> bool {
        self.changes.receiver_count() > 0
    }

    /// Tells the followers what the archive just committed.
    pub fn announce(&self, change: ArchiveChange) {
        // An error only means nobody follows now.
        let _ = self.changes.send(change);
    }

    /// Follows the archive's changes from now on. A receiver that lags gets
    /// `RecvError::Lagged` and should treat it as [`ArchiveChange::Many`].
    pub fn follow_changes(&self) -> broadcast::Receiver<ArchiveChange> {
        self.changes.subscribe()
    }

    pub fn snapshot(&self) -> EngineStatus {
        self.tx.borrow().clone()
    }

    /// Replaces the status; readers are woken only when something actually changed.
    pub fn publish(&self, status: EngineStatus) {
        self.tx.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }

    /// Edits the status in place and stamps it.
    pub fn update(&self, edit: impl FnOnce(&mut EngineStatus)) {
        self.tx.send_if_modified(|current| {
            let mut next = current.clone();
            edit(&mut next);
            if next == *current {
                return false;
            }
            next.updated_at = Utc::now();
            *current = next;
            true
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<EngineStatus> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_name() {
        for state in LinkState::ALL {
            assert_eq!(LinkState::from_name(state.as_str()), Some(state));
        }
        assert_eq!(LinkState::from_name("bogus"), None);
    }

    #[test]
    fn unchanged_updates_wake_nobody() {
        let handle = StatusHandle::new(EngineStatus::new(LinkState::Starting));
        let mut rx = handle.subscribe();
        rx.borrow_and_update();
        handle.update(|s| s.state = LinkState::Starting);
        assert!(!rx.has_changed().unwrap());
        handle.update(|s| s.state = LinkState::NotLinked);
        assert!(rx.has_changed().unwrap());
    }
}
