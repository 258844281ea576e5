//! Applying what WhatsApp tells us to the archive and the link state.
//!
//! Every engine (the real one on whatsapp-rust, the fake one in tests) turns its input into
//! [`EngineEvent`]s and hands them to one [`Ingest`], so history sync, live messages, names,
//! LID links and connection changes are stored the same way whoever produced them. `apply`
//! returns only after the store has committed the event: the real engine acknowledges a message
//! to WhatsApp after that, so a crash never loses an acknowledged message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use crate::jid::Jid;
use crate::state::{Account, ArchiveChange, LinkState, QrCode, StatusHandle};
use crate::store::model::{
    ChatUpdate, ContactUpdate, Delivery, Message, NewMessage, NewPoll, NewPollVote,
};
use crate::store::{Store, StoreError};

/// One conversation's worth of a history sync chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConversation {
    pub chat: ChatUpdate,
    pub messages: Vec<NewMessage>,
}

/// Something WhatsApp told the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    /// A QR code to show for linking (they rotate every ~20 s).
    QrCode {
        code: String,
        valid_for_secs: u64,
    },
    /// No account is linked; `note` says why when there is something to say (e.g. codes expired).
    NotLinked {
        note: Option<String>,
    },
    /// The phone accepted the link; the device identity is stored.
    Paired {
        account: Account,
    },
    Connecting,
    Connected {
        account: Account,
    },
    /// The connection dropped; the engine retries.
    Disconnected {
        reason: String,
    },
    /// The phone unlinked this device (or the session is invalid): link again.
    LoggedOut {
        reason: String,
    },
    /// Another client connected with this device's identity.
    StreamReplaced,
    /// WhatsApp refused this client version (405).
    ClientOutdated,
    /// A chunk of history sync.
    History {
        conversations: Vec<HistoryConversation>,
        /// WhatsApp's overall progress, when it says.
        progress: Option<u8>,
    },
    /// History sync has delivered everything it will deliver for now.
    HistoryComplete,
    /// New messages (live, or sent by us from another device).
    Messages(Vec<NewMessage>),
    Reaction {
        chat: Jid,
        message_id: String,
        sender: Jid,
        emoji: String,
        timestamp: i64,
    },
    Edit {
        chat: Jid,
        message_id: String,
        text: String,
        timestamp: i64,
    },
    Revoke {
        chat: Jid,
        message_id: String,
        timestamp: i64,
    },
    /// How far some of our own messages in `chat` got (receipts, server acks, history sync).
    Delivery {
        chat: Jid,
        message_ids: Vec<String>,
        delivery: Delivery,
    },
    /// Names from the address book, push names or business profiles.
    Contacts(Vec<ContactUpdate>),
    /// A LID and a phone number belong to the same person.
    LidMapping {
        lid: Jid,
        phone: Jid,
    },
    /// Chat metadata (names, archive/pin/mute, unread counts).
    Chats(Vec<ChatUpdate>),
    /// A group's name and members.
    Group {
        jid: Jid,
        name: Option<String>,
        participants: Vec<(Jid, String)>,
    },
    /// A poll was asked; its message comes in [`EngineEvent::Messages`] too.
    Poll(NewPoll),
    /// Someone voted in the poll `poll_id` of `chat` (or took the vote back: no options).
    PollVote {
        chat: Jid,
        poll_id: String,
        voter: Jid,
        choice: VoteChoice,
        timestamp: i64,
    },
}

/// The options a vote picks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoteChoice {
    /// By name (our own votes, the fake engine).
    Names(Vec<String>),
    /// By the SHA-256 of each name, as WhatsApp carries them; matched against the poll's
    /// options when stored.
    Hashes(Vec<Vec<u8>>),
}

/// The hash WhatsApp names a poll option by.
pub fn option_hash(name: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(name.as_bytes()).to_vec()
}

/// Applies engine events to the store and the published status.
#[derive(Clone, Debug)]
pub struct Ingest {
    store: Arc<dyn Store>,
    status: StatusHandle,
    /// Chats known to be in the archive, each with the archive's own JID for it, so a chat's
    /// first message is told apart from the rest with one lookup a chat per process. Filled
    /// only while someone follows changes.
    known_chats: Arc<Mutex<HashMap<Jid, Jid>>>,
}

/// How long WhatsApp keeps a QR code valid when it does not say.
pub const DEFAULT_QR_VALIDITY_SECS: u64 = 20;

impl Ingest {
    pub fn new(store: Arc<dyn Store>, status: StatusHandle) -> Self {
        Self {
            store,
            status,
            known_chats: Arc::default(),
        }
    }

    pub fn status(&self) -> &StatusHandle {
        &self.status
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Archives an edit of our own message made just now; returns the message as archived.
    pub async fn own_edit(
        &self,
        chat: Jid,
        message_id: String,
        text: String,
    ) -> Result<Message, StoreError> {
        self.apply(EngineEvent::Edit {
            chat: chat.clone(),
            message_id: message_id.clone(),
            text,
            timestamp: Utc::now().timestamp(),
        })
        .await?;
        self.store.message(chat, message_id).await
    }

    /// Deletes the whole archive (a logout that wipes it); chats seen before count as new
    /// again when they come back.
    pub async fn clear_archive(&self) -> Result<(), StoreError> {
        self.store.clear_archive().await?;
        self.lock_known().clear();
        if self.status.changes_followed() {
            self.status.announce(ArchiveChange::Many);
        }
        Ok(())
    }

    /// Archives the deletion for everyone of our own message, made just now.
    pub async fn own_revoke(&self, chat: Jid, message_id: String) -> Result<(), StoreError> {
        self.apply(EngineEvent::Revoke {
            chat,
            message_id,
            timestamp: Utc::now().timestamp(),
        })
        .await
    }

    /// Applies `events` in order, stopping at the first that fails: what came before it is
    /// stored, it and what follows are not.
    pub async fn apply_all(
        &self,
        events: impl IntoIterator<Item = EngineEvent>,
    ) -> Result<(), StoreError> {
        for event in events {
            self.apply(event).await?;
        }
        Ok(())
    }

    /// Stores the event (if it carries data) and updates the link state. Returns once the data
    /// is committed; an error means nothing of this event was stored and it may be retried.
    pub async fn apply(&self, event: EngineEvent) -> Result<(), StoreError> {
        match event {
            EngineEvent::QrCode {
                code,
                valid_for_secs,
            } => self.status.update(|s| {
                s.state = LinkState::AwaitingScan;
                // A code on screen supersedes whatever kept linking from working before.
                s.last_error = None;
                s.qr = Some(QrCode {
                    code,
                    issued_at: Utc::now(),
                    valid_for_secs,
                });
            }),
            EngineEvent::NotLinked { note } => self.status.update(|s| {
                // A logout's explanation stays visible until there is something newer to say.
                if s.state == LinkState::LoggedOut && note.is_none() {
                    return;
                }
                s.state = LinkState::NotLinked;
                s.qr = None;
                s.account = None;
                if note.is_some() {
                    s.last_error = note;
                }
            }),
            EngineEvent::Paired { account } => self.status.update(|s| {
                s.state = LinkState::Connecting;
                s.qr = None;
                s.account = Some(account);
                s.last_error = None;
            }),
            EngineEvent::Connecting => self.status.update(|s| {
                if !matches!(s.state, LinkState::AwaitingScan | LinkState::NotLinked) {
                    s.state = LinkState::Connecting;
                }
            }),
            EngineEvent::Connected { account } => self.status.update(|s| {
                s.state = LinkState::Connected;
                s.qr = None;
                s.account = Some(account);
                s.last_error = None;
            }),
            EngineEvent::Disconnected { reason } => self.status.update(|s| {
                s.state = LinkState::Disconnected;
                s.last_error = Some(reason);
            }),
            EngineEvent::LoggedOut { reason } => self.status.update(|s| {
                s.state = LinkState::LoggedOut;
                s.qr = None;
                s.account = None;
                s.sync.active = false;
                s.last_error = Some(reason);
            }),
            EngineEvent::StreamReplaced => self.status.update(|s| {
                s.state = LinkState::StreamReplaced;
                s.last_error = Some(
                    "another client connected with this device's identity; this one stopped so the two do not keep replacing each other".to_owned(),
                );
            }),
            EngineEvent::ClientOutdated => self.status.update(|s| {
                s.state = LinkState::ClientOutdated;
                s.last_error = Some(
                    "WhatsApp rejected this client version (405); install a newer whatsapp-mcp"
                        .to_owned(),
                );
            }),
            EngineEvent::History {
                conversations,
                progress,
            } => {
                let chats: Vec<ChatUpdate> =
                    conversations.iter().map(|c| c.chat.clone()).collect();
                let messages: Vec<NewMessage> = conversations
                    .into_iter()
                    .flat_map(|c| c.messages)
                    .collect();
                let count = messages.len() as u64;
                self.store.insert_history(messages, chats).await?;
                if self.status.changes_followed() {
                    self.status.announce(ArchiveChange::Many);
                }
                self.status.update(|s| {
                    s.sync.active = true;
                    s.sync.chunks_received += 1;
                    s.sync.messages_received += count;
                    if progress.is_some() {
                        s.sync.percent = progress;
                    }
                    s.sync.last_sync_at = Some(Utc::now());
                });
            }
            EngineEvent::HistoryComplete => self.status.update(|s| {
                s.sync.active = false;
                s.sync.percent = Some(100);
                s.sync.last_sync_at = Some(Utc::now());
            }),
            EngineEvent::Messages(messages) => {
                let chats = distinct(messages.iter().map(|m| &m.chat));
                let fresh = self.absent(&chats).await;
                self.store.insert_messages(messages).await?;
                self.announce(chats, &fresh).await;
            }
            EngineEvent::Reaction {
                chat,
                message_id,
                sender,
                emoji,
                timestamp,
            } => {
                self.store
                    .set_reaction(chat.clone(), message_id, sender, emoji, timestamp)
                    .await?;
                self.announce(vec![chat], &HashSet::new()).await;
            }
            EngineEvent::Edit {
                chat,
                message_id,
                text,
                timestamp,
            } => {
                ignore_missing(
                    self.store
                        .edit_message(chat.clone(), message_id, text, timestamp)
                        .await,
                )?;
                self.announce(vec![chat], &HashSet::new()).await;
            }
            EngineEvent::Revoke {
                chat,
                message_id,
                timestamp,
            } => {
                ignore_missing(
                    self.store
                        .delete_message(chat.clone(), message_id, timestamp)
                        .await,
                )?;
                self.announce(vec![chat], &HashSet::new()).await;
            }
            EngineEvent::Delivery {
                chat,
                message_ids,
                delivery,
            } => {
                self.store
                    .set_delivery(chat.clone(), message_ids, delivery)
                    .await?;
                self.announce(vec![chat], &HashSet::new()).await;
            }
            EngineEvent::Contacts(contacts) => self.store.upsert_contacts(contacts).await?,
            EngineEvent::LidMapping { lid, phone } => self.store.link_lid(lid, phone).await?,
            EngineEvent::Chats(updates) => {
                let chats = distinct(updates.iter().map(|c| &c.jid));
                let fresh = self.absent(&chats).await;
                self.store.upsert_chats(updates).await?;
                self.announce(chats, &fresh).await;
            }
            EngineEvent::Group {
                jid,
                name,
                participants,
            } => {
                let fresh = self.absent(std::slice::from_ref(&jid)).await;
                let mut chat = ChatUpdate::new(jid.clone());
                chat.name = name;
                self.store.upsert_chats(vec![chat]).await?;
                self.store.set_participants(jid.clone(), participants).await?;
                self.announce(vec![jid], &fresh).await;
            }
            EngineEvent::Poll(poll) => {
                let chat = poll.chat.clone();
                self.store.record_poll(poll).await?;
                self.announce(vec![chat], &HashSet::new()).await;
            }
            EngineEvent::PollVote {
                chat,
                poll_id,
                voter,
                choice,
                timestamp,
            } => {
                let options = match choice {
                    VoteChoice::Names(names) => names,
                    VoteChoice::Hashes(hashes) => {
                        match self.store.poll(chat.clone(), poll_id.clone()).await {
                            Ok(poll) => poll
                                .options
                                .into_iter()
                                .filter(|name| hashes.contains(&option_hash(name)))
                                .collect(),
                            // A vote in a poll older than the archive: nothing to count it in.
                            Err(StoreError::NotFound(_)) => return Ok(()),
                            Err(err) => return Err(err),
                        }
                    }
                };
                self.store
                    .set_poll_vote(NewPollVote {
                        chat: chat.clone(),
                        poll_id,
                        voter,
                        options,
                        timestamp,
                    })
                    .await?;
                self.announce(vec![chat], &HashSet::new()).await;
            }
        }
        Ok(())
    }
}

impl Ingest {
    /// Which of `chats` the archive does not hold yet; nothing when nobody follows changes.
    async fn absent(&self, chats: &[Jid]) -> HashSet<Jid> {
        let mut absent = HashSet::new();
        if !self.status.changes_followed() {
            return absent;
        }
        for chat in chats {
            if self.canonical(chat).await.is_none() {
                absent.insert(chat.clone());
            }
        }
        absent
    }

    /// Tells the followers that `chats` changed, each under the archive's own JID for it (a
    /// chat reached by a contact's LID is announced under the JID the archive keeps).
    async fn announce(&self, chats: Vec<Jid>, fresh: &HashSet<Jid>) {
        if !self.status.changes_followed() {
            return;
        }
        for chat in chats {
            let new = fresh.contains(&chat);
            let canonical = self.canonical(&chat).await.unwrap_or(chat);
            self.status.announce(ArchiveChange::Chat {
                chat: canonical,
                new,
            });
        }
    }

    /// The archive's own JID for `chat`, `None` when the archive does not hold it. Looked up
    /// once a chat per process; a failed lookup counts as held, under the JID given, since it
    /// is no reason to call a chat new.
    async fn canonical(&self, chat: &Jid) -> Option<Jid> {
        if let Some(known) = self.lock_known().get(chat) {
            return Some(known.clone());
        }
        let canonical = match self.store.chat(chat.clone()).await {
            Ok(found) => Jid::parse(&found.jid).unwrap_or_else(|_| chat.clone()),
            Err(StoreError::NotFound(_)) => return None,
            Err(_) => return Some(chat.clone()),
        };
        let mut known = self.lock_known();
        known.insert(chat.clone(), canonical.clone());
        known.insert(canonical.clone(), canonical.clone());
        Some(canonical)
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashMap<Jid, Jid>> {
        self.known_chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The distinct JIDs among `jids`, in their first order.
fn distinct<'a>(jids: impl Iterator<Item = &'a Jid>) -> Vec<Jid> {
    let mut seen = HashSet::new();
    jids.filter(|jid| seen.insert(*jid)).cloned().collect()
}

/// An edit or revoke of a message we never stored (older than the archive) is not an error.
fn ignore_missing(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::NotFound(_)) => Ok(()),
        other => other,
    }
}
