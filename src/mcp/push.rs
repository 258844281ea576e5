//! Push: the chat resources a client watches, and the loop that tells it when they change.
//!
//! The archive's writer announces each commit on [`crate::state::StatusHandle`]'s change feed.
//! A session follows that feed once it watches anything: either through the legacy
//! `resources/subscribe` (clients before protocol 2026-07-28; one [`Watch`] per session, added
//! to and taken from by subscribe and unsubscribe) or through `subscriptions/listen` (one
//! [`Watch`] per listen request, fixed by its filter). [`forward`] turns the feed into
//! `notifications/resources/updated` for the URIs watched and `notifications/resources/list_changed`
//! when a chat appears, and ends when its client is gone. A burst of changes (a history chunk,
//! many messages at once) becomes one notification per URI.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, SubscriptionSink};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::jid::Jid;
use crate::state::ArchiveChange;

/// The list of chats, newest activity first.
pub const CHATS_URI: &str = "whatsapp://chats";
/// One chat with its recent messages: `whatsapp://chat/{chat_jid}`.
pub const CHAT_URI_PREFIX: &str = "whatsapp://chat/";
pub const CHAT_URI_TEMPLATE: &str = "whatsapp://chat/{chat_jid}";

/// How often a follower with nothing to say checks that its client is still there.
const CLOSED_CHECK: Duration = Duration::from_secs(5);

/// What a watchable URI names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// [`CHATS_URI`].
    Chats,
    /// A chat, by the JID or phone number the URI gives.
    Chat(Jid),
}

/// The URI for the chat `jid`.
pub fn chat_uri(jid: &Jid) -> String {
    format!("{CHAT_URI_PREFIX}{jid}")
}

/// What `uri` names, `None` when it is not a chat resource, or why a chat URI is malformed.
pub fn target(uri: &str) -> Option<Result<Target, String>> {
    if uri == CHATS_URI {
        return Some(Ok(Target::Chats));
    }
    let jid = uri.strip_prefix(CHAT_URI_PREFIX)?;
    let jid = jid
        .replace("%40", "@")
        .replace("%2B", "+")
        .replace("%2b", "+");
    Some(
        Jid::parse(&jid)
            .map(Target::Chat)
            .map_err(|err| format!("{uri}: {err}")),
    )
}

/// The resources one client watches, each under the URI it asked with.
#[derive(Debug, Default)]
pub struct Watch {
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// URIs of the list of chats.
    chats: BTreeSet<String>,
    /// URIs of single chats, under the archive's own JID for each.
    by_chat: HashMap<Jid, BTreeSet<String>>,
    /// Whether the client hears of new chats.
    list_changed: bool,
    /// Whether a follower runs for this watch (legacy sessions start one on demand).
    followed: bool,
}

impl Watch {
    /// A watch that hears of new chats, as every session that looked at the resources does.
    pub fn new(list_changed: bool) -> Self {
        Self {
            state: Mutex::new(WatchState {
                list_changed,
                ..WatchState::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `uri`, which names `target`; a chat is kept under `canonical`, the archive's own
    /// JID for it (the one changes are announced under).
    pub fn add(&self, uri: &str, target: Target, canonical: Option<Jid>) {
        let mut state = self.state();
        match target {
            Target::Chats => {
                state.chats.insert(uri.to_owned());
            }
            Target::Chat(jid) => {
                let key = canonical.unwrap_or(jid);
                state.by_chat.entry(key).or_default().insert(uri.to_owned());
            }
        }
    }

    /// Stops watching `uri`; false when it was not watched.
    pub fn remove(&self, uri: &str) -> bool {
        let mut state = self.state();
        let mut found = state.chats.remove(uri);
        state.by_chat.retain(|_, uris| {
            found |= uris.remove(uri);
            !uris.is_empty()
        });
        found
    }

    /// Makes the client hear of new chats.
    pub fn hear_new_chats(&self) {
        self.state().list_changed = true;
    }

    /// True the first time it is called: the caller then starts the follower.
    pub fn claim_follower(&self) -> bool {
        !std::mem::replace(&mut self.state().followed, true)
    }

    /// The URIs to tell of after `changes`, and whether to say the list of chats changed.
    fn due(&self, changes: &[ArchiveChange]) -> (BTreeSet<String>, bool) {
        let state = self.state();
        let mut uris = BTreeSet::new();
        let mut list_changed = false;
        for change in changes {
            match change {
                ArchiveChange::Chat { chat, new } => {
                    uris.extend(state.chats.iter().cloned());
                    if let Some(watched) = state.by_chat.get(chat) {
                        uris.extend(watched.iter().cloned());
                    }
                    list_changed |= *new;
                }
                ArchiveChange::Many => {
                    uris.extend(state.chats.iter().cloned());
                    uris.extend(state.by_chat.values().flatten().cloned());
                    list_changed = true;
                }
            }
        }
        (uris, list_changed && state.list_changed)
    }
}

/// Where a follower's notifications go.
#[derive(Debug)]
pub enum Outlet {
    /// The session itself (legacy `resources/subscribe`).
    Session(Peer<RoleServer>),
    /// One `subscriptions/listen` stream.
    Listen(SubscriptionSink),
}

impl Outlet {
    /// Sends one notification; false when the client can no longer be told anything.
    async fn updated(&self, uri: String) -> bool {
        match self {
            Outlet::Session(peer) => peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
                .is_ok(),
            Outlet::Listen(sink) => sink.notify_resource_updated(uri).await.is_ok(),
        }
    }

    async fn list_changed(&self) -> bool {
        match self {
            Outlet::Session(peer) => peer.notify_resource_list_changed().await.is_ok(),
            Outlet::Listen(sink) => sink.notify_resource_list_changed().await.is_ok(),
        }
    }

    fn closed(&self) -> bool {
        match self {
            Outlet::Session(peer) => peer.is_transport_closed(),
            Outlet::Listen(_) => false,
        }
    }
}

/// Tells `outlet` of every change on `feed` that `watch` covers, until `stop` is cancelled,
/// the watch is dropped (its session ended) or the client is gone.
pub async fn forward(
    watch: Weak<Watch>,
    mut feed: broadcast::Receiver<ArchiveChange>,
    outlet: Outlet,
    stop: CancellationToken,
) {
    let mut check = tokio::time::interval(CLOSED_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            received = feed.recv() => received,
            _ = check.tick() => {
                if outlet.closed() || watch.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        let mut changes = match first {
            Ok(change) => vec![change],
            // Fell behind: everything may have changed.
            Err(RecvError::Lagged(_)) => vec![ArchiveChange::Many],
            Err(RecvError::Closed) => return,
        };
        // Whatever else is already waiting goes into the same round.
        loop {
            match feed.try_recv() {
                Ok(change) => changes.push(change),
                Err(TryRecvError::Lagged(_)) => changes.push(ArchiveChange::Many),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let Some(watched) = watch.upgrade() else {
            return;
        };
        let (uris, list_changed) = watched.due(&changes);
        drop(watched);
        for uri in uris {
            if !outlet.updated(uri).await {
                return;
            }
        }
        if list_changed && !outlet.list_changed().await {
            return;
        }
    }
}

/// Starts a follower for a legacy session's `watch`, once per session.
pub fn follow_session(
    watch: &Arc<Watch>,
    feed: broadcast::Receiver<ArchiveChange>,
    peer: Peer<RoleServer>,
) {
    if watch.claim_follower() {
        tokio::spawn(forward(
            Arc::downgrade(watch),
            feed,
            Outlet::Session(peer),
            CancellationToken::new(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn chat_uris_name_chats_by_jid_or_phone() {
        assert_eq!(target(CHATS_URI), Some(Ok(Target::Chats)));
        assert_eq!(
            target("whatsapp://chat/31611111111@s.whatsapp.net"),
            Some(Ok(Target::Chat(jid("31611111111@s.whatsapp.net"))))
        );
        assert_eq!(
            target("whatsapp://chat/31611111111%40s.whatsapp.net"),
            Some(Ok(Target::Chat(jid("31611111111@s.whatsapp.net"))))
        );
        assert_eq!(
            target("whatsapp://chat/%2B31611111111"),
            Some(Ok(Target::Chat(jid("31611111111@s.whatsapp.net"))))
        );
        assert!(matches!(target("whatsapp://chat/"), Some(Err(_))));
        assert_eq!(target("whatsapp://status"), None);
        assert_eq!(target("whatsapp://media/a/b"), None);
    }

    #[test]
    fn a_change_is_due_to_the_watchers_of_its_chat_and_of_the_list() {
        let watch = Watch::new(true);
        let ada = jid("31611111111@s.whatsapp.net");
        let bob = jid("31622222222@s.whatsapp.net");
        watch.add(
            "whatsapp://chat/+31611111111",
            Target::Chat(jid("+31611111111")),
            None,
        );
        watch.add(
            "whatsapp://chat/31611111111@s.whatsapp.net",
            Target::Chat(bob.clone()),
            Some(ada.clone()),
        );
        let (uris, list) = watch.due(&[ArchiveChange::Chat {
            chat: bob.clone(),
            new: false,
        }]);
        assert!(uris.is_empty());
        assert!(!list);
        let (uris, list) = watch.due(&[
            ArchiveChange::Chat {
                chat: ada.clone(),
                new: false,
            },
            ArchiveChange::Chat {
                chat: ada.clone(),
                new: false,
            },
        ]);
        assert_eq!(
            uris.len(),
            2,
            "one notification per URI, however many changes"
        );
        assert!(!list);
        watch.add(CHATS_URI, Target::Chats, None);
        let (uris, list) = watch.due(&[ArchiveChange::Chat {
            chat: bob,
            new: true,
        }]);
        assert_eq!(uris.into_iter().collect::<Vec<_>>(), vec![CHATS_URI]);
        assert!(list);
        assert!(watch.remove(CHATS_URI));
        assert!(!watch.remove(CHATS_URI));
        assert!(watch.remove("whatsapp://chat/+31611111111"));
        let (uris, list) = watch.due(&[ArchiveChange::Many]);
        assert_eq!(
            uris.into_iter().collect::<Vec<_>>(),
            vec!["whatsapp://chat/31611111111@s.whatsapp.net"]
        );
        assert!(list);
    }

    #[test]
    fn new_chats_are_told_only_to_a_watch_that_hears_of_them() {
        let watch = Watch::new(false);
        let (_, list) = watch.due(&[ArchiveChange::Many]);
        assert!(!list);
        watch.hear_new_chats();
        let (_, list) = watch.due(&[ArchiveChange::Many]);
        assert!(list);
    }

    #[test]
    fn one_follower_per_watch() {
        let watch = Watch::new(true);
        assert!(watch.claim_follower());
        assert!(!watch.claim_follower());
    }
}
