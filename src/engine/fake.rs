//! A stand-in WhatsApp connection for tests: it records actions, stores what it "sends", and
//! plays realistic event sequences through the same [`Ingest`] as the real engine.
//!
//! Compiled only with the `fake-engine` cargo feature; the shipped binary never contains it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::ingest::{
    DEFAULT_QR_VALIDITY_SECS, EngineEvent, HistoryConversation, Ingest, VoteChoice, option_hash,
};
use super::{
    DownloadedMedia, Engine, EngineError, MediaKind, OutgoingFile, OutgoingPoll, OutgoingText,
};
use crate::jid::Jid;
use crate::state::{Account, LinkState};
use crate::store::StoreError;
use crate::store::model::{
    ChatUpdate, ContactUpdate, Delivery, Media, Message, NewMessage, NewPoll,
};

/// An action a caller asked of the fake engine, as it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendText {
        to: String,
        text: String,
        reply_to: Option<String>,
        mentions: Vec<String>,
    },
    SendFile {
        to: String,
        file_name: String,
        kind: MediaKind,
        caption: Option<String>,
    },
    SendVoiceNote {
        to: String,
        file_name: String,
    },
    React {
        chat: String,
        message_id: String,
        emoji: String,
    },
    Edit {
        chat: String,
        message_id: String,
        text: String,
    },
    Revoke {
        chat: String,
        message_id: String,
    },
    SendPoll {
        to: String,
        question: String,
        options: Vec<String>,
        selectable: u32,
    },
    MarkRead {
        chat: String,
        message_ids: Vec<String>,
    },
    RequestHistory {
        chat: String,
        count: u32,
    },
    Download {
        chat: String,
        message_id: String,
    },
    StartLinking,
    PairCode {
        phone: String,
    },
    Logout {
        wipe_archive: bool,
    },
}

/// The fake engine. Its account is `31600000000`.
#[derive(Debug)]
pub struct FakeEngine {
    ingest: Ingest,
    media_dir: PathBuf,
    actions: Mutex<Vec<Action>>,
    next_id: AtomicU64,
    /// When set, linking works: the phone "scans" this long after linking starts.
    scan_after: Option<Duration>,
    /// True while a simulated scan is pending, so a second request does not start another.
    linking: std::sync::Arc<AtomicBool>,
    /// Where history sync chunks are acknowledged, when the test wants WhatsApp's side of it.
    ack_log: Option<PathBuf>,
}

/// How often the fake inbox is looked at.
const INBOX_POLL: Duration = Duration::from_millis(50);

/// What one fake inbox file brings, as events: a message from a contact, a poll they ask
/// (`"poll": {"question", "options", "multiple"?}`) or their vote in one (`"vote": {"poll_id",
/// "options"}`, carried by option hash as WhatsApp carries votes).
fn inbox_events(bytes: &[u8]) -> Result<Vec<EngineEvent>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Incoming {
        chat: String,
        sender: Option<String>,
        text: Option<String>,
        id: Option<String>,
        poll: Option<IncomingPoll>,
        vote: Option<IncomingVote>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct IncomingPoll {
        question: String,
        options: Vec<String>,
        #[serde(default)]
        multiple: bool,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct IncomingVote {
        poll_id: String,
        options: Vec<String>,
    }
    let incoming: Incoming = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
    let chat = Jid::parse(&incoming.chat).map_err(|err| err.to_string())?;
    let sender = match incoming.sender {
        Some(sender) => Jid::parse(&sender).map_err(|err| err.to_string())?,
        None => chat.clone(),
    };
    let now = Utc::now();
    if let Some(vote) = incoming.vote {
        return Ok(vec![EngineEvent::PollVote {
            chat,
            poll_id: vote.poll_id,
            voter: sender,
            choice: VoteChoice::Hashes(vote.options.iter().map(|o| option_hash(o)).collect()),
            timestamp: now.timestamp(),
        }]);
    }
    let id = incoming
        .id
        .unwrap_or_else(|| format!("INBOX-{}", now.timestamp_micros()));
    let text = match (&incoming.text, &incoming.poll) {
        (_, Some(poll)) => super::poll_text(&poll.question, &poll.options),
        (Some(text), None) => text.clone(),
        (None, None) => return Err("a message needs \"text\", \"poll\" or \"vote\"".to_owned()),
    };
    let message = NewMessage {
        chat: chat.clone(),
        id: id.clone(),
        sender: Some(sender),
        timestamp: now.timestamp(),
        from_me: false,
        text: Some(text),
        caption: None,
        quoted_id: None,
        media: None,
    };
    let mut events = vec![EngineEvent::Messages(vec![message])];
    if let Some(poll) = incoming.poll {
        events.push(EngineEvent::Poll(NewPoll {
            chat,
            message_id: id,
            selectable: if poll.multiple {
                poll.options.len() as u32
            } else {
                1
            },
            question: poll.question,
            options: poll.options,
            secret: None,
        }));
    }
    Ok(events)
}

/// The pairing code the fake hands out; real ones have the same shape.
pub const FAKE_PAIR_CODE: &str = "K7QX-2M9P";

/// The fake account's phone number.
pub const OWN_PHONE: &str = "31600000000";

impl FakeEngine {
    pub fn new(ingest: Ingest, media_dir: PathBuf) -> Self {
        Self {
            ingest,
            media_dir,
            actions: Mutex::new(Vec::new()),
            // Counted from the start time, so a restarted service never reuses an id (as
            // WhatsApp's own random ids never repeat).
            next_id: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |since| since.as_micros() as u64),
            ),
            scan_after: None,
            linking: std::sync::Arc::default(),
            ack_log: None,
        }
    }

    /// Makes history sync acknowledged the way WhatsApp's is: a chunk is acknowledged (a line
    /// appended to `path` and flushed to disk) only after `Ingest::apply` returned, and a later
    /// `play_history` with the same file re-sends only the chunks that were never acknowledged,
    /// as WhatsApp re-sends unacknowledged history after a reconnect. The file is the server's
    /// memory, so it survives the process being killed; see [`AckLog`] for its lines.
    pub fn with_ack_log(mut self, path: PathBuf) -> Self {
        self.ack_log = Some(path);
        self
    }

    /// Makes linking work like on a real phone that scans after `delay`: `start_linking` shows a
    /// QR code that rotates once halfway, `pair_code` hands out [`FAKE_PAIR_CODE`], and the
    /// account is connected when the delay is over. Without this, the fake cannot link, so a
    /// test never links by accident.
    pub fn with_scan_after(mut self, delay: Duration) -> Self {
        self.scan_after = Some(delay);
        self
    }

    /// Makes messages arrive while the service runs, as contacts would send them: every
    /// `*.json` file that appears in `dir` (`{"chat": JID, "sender": JID?, "text": TEXT,
    /// "id": ID?}`) is applied as one incoming message and then removed. A file that does not
    /// parse is renamed to `*.bad` and logged, so a test sees its mistake.
    pub fn with_inbox(self, dir: PathBuf) -> Self {
        let ingest = self.ingest.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INBOX_POLL);
            loop {
                tick.tick().await;
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                    .collect();
                files.sort();
                for path in files {
                    let parsed = std::fs::read(&path)
                        .map_err(|err| err.to_string())
                        .and_then(|bytes| inbox_events(&bytes));
                    match parsed {
                        Ok(events) => {
                            if let Err(err) = ingest.apply_all(events).await {
                                tracing::error!(error = %err, "the fake inbox could not store a message");
                                continue;
                            }
                            let _ = std::fs::remove_file(&path);
                        }
                        Err(err) => {
                            tracing::error!(file = %path.display(), error = %err, "a fake inbox file is malformed");
                            let _ = std::fs::rename(&path, path.with_extension("bad"));
                        }
                    }
                }
            }
        });
        self
    }

    /// Simulates the phone accepting the link after `delay`, once; `rotate` shows a second QR
    /// code halfway through, as WhatsApp does when the first one expires.
    fn scan_later(&self, delay: Duration, rotate: bool) {
        if self.linking.swap(true, Ordering::SeqCst) {
            return;
        }
        let ingest = self.ingest.clone();
        let linking = std::sync::Arc::clone(&self.linking);
        tokio::spawn(async move {
            tokio::time::sleep(delay / 2).await;
            let mut played = Ok(());
            if rotate {
                played = ingest
                    .apply(EngineEvent::QrCode {
                        code: FAKE_QR_CODES[1].to_owned(),
                        valid_for_secs: DEFAULT_QR_VALIDITY_SECS,
                    })
                    .await;
            }
            tokio::time::sleep(delay / 2).await;
            for event in [
                EngineEvent::Paired {
                    account: Self::account(),
                },
                EngineEvent::Connected {
                    account: Self::account(),
                },
            ] {
                if played.is_ok() {
                    played = ingest.apply(event).await;
                }
            }
            if let Err(err) = played {
                tracing::error!(error = %err, "the fake engine could not link");
            }
            linking.store(false, Ordering::SeqCst);
        });
    }

    pub fn account() -> Account {
        Account {
            jid: format!("{OWN_PHONE}:7@s.whatsapp.net"),
            phone: OWN_PHONE.to_owned(),
            push_name: Some("Test Account".to_owned()),
        }
    }

    /// Everything asked of the engine so far, oldest first.
    pub fn actions(&self) -> Vec<Action> {
        self.actions.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Feeds one event through the ingest path, as the real engine would.
    pub async fn emit(&self, event: EngineEvent) -> Result<(), StoreError> {
        self.ingest.apply(event).await
    }

    fn record(&self, action: Action) {
        if let Ok(mut actions) = self.actions.lock() {
            actions.push(action);
        }
    }

    fn require_connected(&self) -> Result<(), EngineError> {
        match self.ingest.status().snapshot().state {
            LinkState::Connected => Ok(()),
            LinkState::Disconnected | LinkState::Connecting | LinkState::StreamReplaced => Err(
                EngineError::Disconnected("the fake connection is down".to_owned()),
            ),
            _ => Err(EngineError::NotLinked),
        }
    }

    fn new_id(&self) -> String {
        format!(
            "3EB0FA{:014X}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn store_sent(&self, mut message: NewMessage) -> Result<Message, EngineError> {
        message.id = self.new_id();
        let (chat, id) = (message.chat.clone(), message.id.clone());
        self.ingest
            .apply(EngineEvent::Messages(vec![message]))
            .await
            .map_err(|err| EngineError::Failed(format!("sent but not archived: {err}")))?;
        // The stand-in recipient's phone is always online: the server takes the message and
        // the phone confirms delivery at once, as receipts would on a good day.
        for delivery in [Delivery::Sent, Delivery::Delivered] {
            self.ingest
                .apply(EngineEvent::Delivery {
                    chat: chat.clone(),
                    message_ids: vec![id.clone()],
                    delivery,
                })
                .await
                .map_err(|err| EngineError::Failed(format!("sent but not archived: {err}")))?;
        }
        self.ingest
            .store()
            .message(chat, id)
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    /// A whole linking-and-sync life: QR, pairing, connection, a history sync of `messages`
    /// messages in `chats` chats (in chunks, with progress), names, a LID-addressed sender that
    /// is later linked to their phone number, a group, reactions, an edit and a revoke.
    pub async fn play_history(&self, chats: usize, messages: usize) -> Result<(), StoreError> {
        self.emit(EngineEvent::QrCode {
            code: "2@fakeRef1,fakeNoiseKey,fakeIdentityKey,fakeAdvSecret".to_owned(),
            valid_for_secs: DEFAULT_QR_VALIDITY_SECS,
        })
        .await?;
        self.emit(EngineEvent::Paired {
            account: Self::account(),
        })
        .await?;
        self.emit(EngineEvent::Connected {
            account: Self::account(),
        })
        .await?;
        let mut acks = match &self.ack_log {
            Some(path) => Some(AckLog::open(path, Utc::now().timestamp())?),
            None => None,
        };
        // The history is the same on every delivery, so a re-sent chunk carries the same
        // messages as the first time.
        let now = acks
            .as_ref()
            .map_or_else(|| Utc::now().timestamp(), |acks| acks.base);
        let chats = chats.max(1);
        let mut sent = 0;
        let mut chunk = 0;
        while sent < messages {
            let take = HISTORY_CHUNK.min(messages - sent);
            let first = sent;
            sent += take;
            chunk += 1;
            if acks
                .as_ref()
                .is_some_and(|acks| acks.acked.contains(&(chunk - 1)))
            {
                continue;
            }
            let mut conversations: Vec<HistoryConversation> = Vec::new();
            for i in first..sent {
                let chat_no = i % chats;
                let chat = Jid::parse(&format!("3161{chat_no:07}"))
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                let from_me = i % 3 == 0;
                let message = NewMessage {
                    chat: chat.clone(),
                    id: format!("HIST{i:08}"),
                    sender: (!from_me).then(|| chat.clone()),
                    timestamp: now - (messages - i) as i64 * 60,
                    from_me,
                    text: Some(SAMPLE_TEXTS[i % SAMPLE_TEXTS.len()].to_owned()),
                    caption: None,
                    quoted_id: None,
                    media: None,
                };
                match conversations.iter_mut().find(|c| c.chat.jid == chat) {
                    Some(conversation) => conversation.messages.push(message),
                    None => {
                        let mut update = ChatUpdate::new(chat);
                        update.unread_count = Some(0);
                        conversations.push(HistoryConversation {
                            chat: update,
                            messages: vec![message],
                        });
                    }
                }
            }
            let progress = ((sent * 100) / messages.max(1)).min(100) as u8;
            self.emit(EngineEvent::History {
                conversations,
                progress: Some(progress),
            })
            .await?;
            if let Some(acks) = &mut acks {
                acks.acknowledge(chunk - 1, first, take)?;
            }
        }
        self.emit(EngineEvent::HistoryComplete).await
    }

    /// A small, fixed archive for tool tests: named contacts (one known first by LID), a direct
    /// chat in three languages, a group with members, an image with download keys, reactions,
    /// an edit and a revoke. The account is connected afterwards.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        let jid = |s: &str| Jid::parse(s).map_err(|e| StoreError::Other(e.to_string()));
        let ada = jid(DEMO_ADA)?;
        let bob = jid(DEMO_BOB)?;
        let ada_lid = jid(DEMO_ADA_LID)?;
        let group = jid(DEMO_GROUP)?;
        self.emit(EngineEvent::Connected {
            account: Self::account(),
        })
        .await?;
        let base = 1_767_225_600; // 2026-01-01T00:00:00Z
        let msg =
            |chat: &Jid, id: &str, sender: Option<&Jid>, minutes: i64, text: &str| NewMessage {
                chat: chat.clone(),
                id: id.to_owned(),
                sender: sender.cloned(),
                timestamp: base + minutes * 60,
                from_me: sender.is_none(),
                text: Some(text.to_owned()),
                caption: None,
                quoted_id: None,
                media: None,
            };
        let mut direct = vec![
            msg(
                &ada,
                "DEMO-A1",
                Some(&ada),
                1,
                "Hi! Are we still on for dinner tomorrow?",
            ),
            msg(&ada, "DEMO-A2", None, 2, "Yes, 8 pm at the usual place"),
            msg(
                &ada,
                "DEMO-A3",
                Some(&ada),
                3,
                "Grüße von Frau Müller aus Köln",
            ),
            msg(&ada, "DEMO-A4", Some(&ada), 4, "明日は東京タワーに行きます"),
            msg(
                &ada,
                "DEMO-A5",
                None,
                5,
                "Call me on +31 6 1234 5678 if anything changes",
            ),
        ];
        let mut photo = msg(&ada, "DEMO-A6", Some(&ada), 6, "");
        photo.text = None;
        photo.caption = Some("the view from the tower".to_owned());
        photo.media = Some(Media {
            media_type: "image".to_owned(),
            file_name: None,
            mime_type: Some("image/jpeg".to_owned()),
            file_length: Some(DEMO_IMAGE.len() as u64),
            url: Some("https://mmg.whatsapp.net/v/t62.7118-24/demo".to_owned()),
            direct_path: Some("/v/t62.7118-24/demo".to_owned()),
            media_key: Some(vec![7; 32]),
            file_sha256: Some(Sha256::digest(DEMO_IMAGE).to_vec()),
            file_enc_sha256: Some(vec![9; 32]),
        });
        direct.push(photo);
        let mut reply = msg(&ada, "DEMO-A7", None, 7, "Beautiful!");
        reply.quoted_id = Some("DEMO-A6".to_owned());
        direct.push(reply);
        let bob_chat: Vec<NewMessage> = (0..40)
            .map(|i| {
                msg(
                    &bob,
                    &format!("DEMO-B{i:02}"),
                    if i % 2 == 0 { Some(&bob) } else { None },
                    10 + i,
                    &format!("bike ride planning, message {i}"),
                )
            })
            .collect();
        // Ada first shows up in the group under her LID, before WhatsApp links it to her number.
        let group_messages = vec![
            msg(
                &group,
                "DEMO-G1",
                Some(&ada_lid),
                60,
                "Climbing on Saturday?",
            ),
            msg(&group, "DEMO-G2", Some(&bob), 61, "Count me in"),
            msg(&group, "DEMO-G3", None, 62, "Great, see you at 10"),
        ];
        let mut ada_chat = ChatUpdate::new(ada.clone());
        ada_chat.unread_count = Some(2);
        let mut group_chat = ChatUpdate::new(group.clone());
        group_chat.name = Some("Climbing club".to_owned());
        self.emit(EngineEvent::History {
            conversations: vec![
                HistoryConversation {
                    chat: ada_chat,
                    messages: direct,
                },
                HistoryConversation {
                    chat: ChatUpdate::new(bob.clone()),
                    messages: bob_chat,
                },
                HistoryConversation {
                    chat: group_chat,
                    messages: group_messages,
                },
            ],
            progress: Some(100),
        })
        .await?;
        self.emit(EngineEvent::HistoryComplete).await?;
        // Ada read our answer; the reply to her photo has reached her phone but is unread.
        for (id, delivery) in [
            ("DEMO-A2", Delivery::Read),
            ("DEMO-A7", Delivery::Delivered),
        ] {
            self.emit(EngineEvent::Delivery {
                chat: ada.clone(),
                message_ids: vec![id.to_owned()],
                delivery,
            })
            .await?;
        }
        let mut ada_contact = ContactUpdate::new(ada.clone());
        ada_contact.full_name = Some("Ada Lovelace".to_owned());
        ada_contact.push_name = Some("Ada".to_owned());
        let mut bob_contact = ContactUpdate::new(bob.clone());
        bob_contact.push_name = Some("Bob".to_owned());
        bob_contact.business_name = Some("Bob's Bikes".to_owned());
        self.emit(EngineEvent::Contacts(vec![ada_contact, bob_contact]))
            .await?;
        self.emit(EngineEvent::LidMapping {
            lid: ada_lid,
            phone: ada.clone(),
        })
        .await?;
        self.emit(EngineEvent::Group {
            jid: group.clone(),
            name: Some("Climbing club".to_owned()),
            participants: vec![
                (ada.clone(), "superadmin".to_owned()),
                (bob.clone(), "member".to_owned()),
                (
                    jid(&format!("{OWN_PHONE}@s.whatsapp.net"))?,
                    "admin".to_owned(),
                ),
            ],
        })
        .await?;
        self.emit(EngineEvent::Reaction {
            chat: ada.clone(),
            message_id: "DEMO-A6".to_owned(),
            sender: jid(&format!("{OWN_PHONE}@s.whatsapp.net"))?,
            emoji: "😍".to_owned(),
            timestamp: base + 8 * 60,
        })
        .await?;
        self.emit(EngineEvent::Edit {
            chat: bob.clone(),
            message_id: "DEMO-B00".to_owned(),
            text: "bike ride planning, message 0 (edited)".to_owned(),
            timestamp: base + 70 * 60,
        })
        .await?;
        self.emit(EngineEvent::Revoke {
            chat: bob,
            message_id: "DEMO-B01".to_owned(),
            timestamp: base + 71 * 60,
        })
        .await
    }
}

/// Messages per history sync chunk of [`FakeEngine::play_history`].
pub const HISTORY_CHUNK: usize = 500;

/// WhatsApp's record of which history sync chunks this device acknowledged, kept in a file so
/// it outlives the process. Lines, each written whole and flushed to disk before the next step:
///
/// - `base SECONDS`: the time the history is anchored to (written once, first), so re-sent
///   chunks carry the same timestamps;
/// - `chunk N FIRST COUNT`: chunk `N` (from 0), holding messages `HIST{FIRST}` up to
///   `HIST{FIRST + COUNT - 1}`, was applied to the archive and acknowledged.
///
/// A line without its newline was cut off by a crash and does not count.
#[derive(Debug)]
pub struct AckLog {
    file: std::fs::File,
    base: i64,
    acked: std::collections::BTreeSet<usize>,
}

impl AckLog {
    /// Opens (or starts) the log; `now` anchors the history when the log is new.
    fn open(path: &std::path::Path, now: i64) -> Result<Self, StoreError> {
        use std::io::Write as _;
        let io =
            |err: std::io::Error| StoreError::Other(format!("ack log {}: {err}", path.display()));
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(io(err)),
        };
        let mut base = None;
        let mut acked = std::collections::BTreeSet::new();
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["base", seconds] => base = seconds.parse().ok(),
                ["chunk", n, _, _] => {
                    if let Ok(n) = n.parse() {
                        acked.insert(n);
                    }
                }
                _ => {}
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // A line cut off by a crash is dropped, so the next record starts on a line of its own
        // and the torn one can never be read back as a different, complete record.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            file.set_len(whole as u64).map_err(io)?;
        }
        let base = match base {
            Some(base) => base,
            None => {
                file.write_all(format!("base {now}\n").as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(io)?;
                now
            }
        };
        Ok(Self { file, base, acked })
    }

    /// Records chunk `n` as acknowledged, durably.
    fn acknowledge(&mut self, n: usize, first: usize, count: usize) -> Result<(), StoreError> {
        use std::io::Write as _;
        self.file
            .write_all(format!("chunk {n} {first} {count}\n").as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|err| StoreError::Other(format!("acknowledging chunk {n}: {err}")))?;
        self.acked.insert(n);
        Ok(())
    }
}

/// Contacts and chats of [`FakeEngine::seed_demo`].
pub const DEMO_ADA: &str = "31611111111@s.whatsapp.net";
pub const DEMO_ADA_LID: &str = "123456789012345@lid";
pub const DEMO_BOB: &str = "31622222222@s.whatsapp.net";
pub const DEMO_GROUP: &str = "120363000000000001@g.us";
/// The bytes `download_media` writes for the demo image: a real 1280 x 960 JPEG, so a picture
/// can be made of it.
pub const DEMO_IMAGE: &[u8] = include_bytes!("fake_demo.jpg");

/// The QR strings the fake shows while linking, in order; shaped like WhatsApp's.
pub const FAKE_QR_CODES: [&str; 2] = [
    "2@fakeLinkRef1,fakeNoiseKey,fakeIdentityKey,fakeAdvSecret",
    "2@fakeLinkRef2,fakeNoiseKey,fakeIdentityKey,fakeAdvSecret",
];

const SAMPLE_TEXTS: &[&str] = &[
    "Are we still on for tomorrow?",
    "Bis später, ich bin unterwegs",
    "¿Dónde nos vemos?",
    "Привет, как дела?",
    "了解です、ありがとう",
    "Call me on +44 20 7946 0958",
    "ok",
    "See you at the station at 9",
];

#[async_trait::async_trait]
impl Engine for FakeEngine {
    async fn send_text(&self, to: Jid, text: OutgoingText) -> Result<Message, EngineError> {
        self.require_connected()?;
        self.record(Action::SendText {
            to: to.to_string(),
            text: text.text.clone(),
            reply_to: text.reply_to.clone(),
            mentions: text.mentions.iter().map(ToString::to_string).collect(),
        });
        self.store_sent(NewMessage {
            text: Some(text.text),
            quoted_id: text.reply_to,
            ..NewMessage::ours(to, String::new())
        })
        .await
    }

    async fn send_poll(&self, to: Jid, poll: OutgoingPoll) -> Result<Message, EngineError> {
        self.require_connected()?;
        self.record(Action::SendPoll {
            to: to.to_string(),
            question: poll.question.clone(),
            options: poll.options.clone(),
            selectable: poll.selectable,
        });
        let sent = self
            .store_sent(NewMessage {
                text: Some(super::poll_text(&poll.question, &poll.options)),
                ..NewMessage::ours(to.clone(), String::new())
            })
            .await?;
        self.ingest
            .apply(EngineEvent::Poll(NewPoll {
                chat: to,
                message_id: sent.id.clone(),
                question: poll.question,
                options: poll.options,
                selectable: poll.selectable,
                secret: None,
            }))
            .await
            .map_err(|err| EngineError::Failed(format!("sent but not archived: {err}")))?;
        Ok(sent)
    }

    async fn send_file(
        &self,
        to: Jid,
        file: OutgoingFile,
        kind: MediaKind,
        caption: Option<String>,
    ) -> Result<Message, EngineError> {
        self.require_connected()?;
        let bytes = file.read().await?;
        self.record(Action::SendFile {
            to: to.to_string(),
            file_name: file.file_name.clone(),
            kind,
            caption: caption.clone(),
        });
        let media_type = match kind {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        };
        self.store_sent(NewMessage {
            caption,
            media: Some(Media {
                media_type: media_type.to_owned(),
                file_name: Some(file.file_name),
                mime_type: Some(file.mime_type),
                file_length: Some(bytes.len() as u64),
                file_sha256: Some(Sha256::digest(&bytes).to_vec()),
                ..Media::default()
            }),
            ..NewMessage::ours(to, String::new())
        })
        .await
    }

    async fn send_voice_note(&self, to: Jid, file: OutgoingFile) -> Result<Message, EngineError> {
        self.require_connected()?;
        let length = file.size()?;
        self.record(Action::SendVoiceNote {
            to: to.to_string(),
            file_name: file.file_name.clone(),
        });
        self.store_sent(NewMessage {
            media: Some(Media {
                media_type: "voice".to_owned(),
                mime_type: Some("audio/ogg; codecs=opus".to_owned()),
                file_length: Some(length),
                ..Media::default()
            }),
            ..NewMessage::ours(to, String::new())
        })
        .await
    }

    async fn react(&self, chat: Jid, message_id: String, emoji: String) -> Result<(), EngineError> {
        self.require_connected()?;
        self.ingest
            .store()
            .message(chat.clone(), message_id.clone())
            .await
            .map_err(|err| EngineError::NotFound(err.to_string()))?;
        self.record(Action::React {
            chat: chat.to_string(),
            message_id: message_id.clone(),
            emoji: emoji.clone(),
        });
        let me = Jid::from_phone(OWN_PHONE).map_err(|err| EngineError::Failed(err.to_string()))?;
        self.ingest
            .apply(EngineEvent::Reaction {
                chat,
                message_id,
                sender: me,
                emoji,
                timestamp: Utc::now().timestamp(),
            })
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    async fn edit_text(
        &self,
        chat: Jid,
        message_id: String,
        text: String,
    ) -> Result<Message, EngineError> {
        self.require_connected()?;
        self.record(Action::Edit {
            chat: chat.to_string(),
            message_id: message_id.clone(),
            text: text.clone(),
        });
        self.ingest
            .own_edit(chat, message_id, text)
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    async fn revoke(&self, chat: Jid, message_id: String) -> Result<(), EngineError> {
        self.require_connected()?;
        self.record(Action::Revoke {
            chat: chat.to_string(),
            message_id: message_id.clone(),
        });
        self.ingest
            .own_revoke(chat, message_id)
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    async fn mark_read(&self, chat: Jid, message_ids: Vec<String>) -> Result<(), EngineError> {
        self.require_connected()?;
        self.record(Action::MarkRead {
            chat: chat.to_string(),
            message_ids,
        });
        let mut update = ChatUpdate::new(chat);
        update.unread_count = Some(0);
        self.ingest
            .apply(EngineEvent::Chats(vec![update]))
            .await
            .map_err(|err| EngineError::Failed(err.to_string()))
    }

    async fn request_history(&self, chat: Jid, count: u32) -> Result<(), EngineError> {
        self.require_connected()?;
        self.record(Action::RequestHistory {
            chat: chat.to_string(),
            count,
        });
        Ok(())
    }

    async fn download_media(
        &self,
        chat: Jid,
        message_id: String,
    ) -> Result<DownloadedMedia, EngineError> {
        self.record(Action::Download {
            chat: chat.to_string(),
            message_id: message_id.clone(),
        });
        let message = self
            .ingest
            .store()
            .message(chat, message_id.clone())
            .await
            .map_err(|err| EngineError::NotFound(err.to_string()))?;
        let media = message
            .media
            .ok_or_else(|| EngineError::Media(format!("message {message_id} has no media")))?;
        let expected = media
            .file_sha256
            .ok_or_else(|| EngineError::Media("the message has no file hash".to_owned()))?;
        let name = super::media::file_name(&expected, media.mime_type.as_deref());
        let path = self.media_dir.join(name);
        if let Some(copy) =
            super::media::verified_copy(&path, &expected, media.mime_type.clone()).await
        {
            return Ok(copy);
        }
        // The fake's "server" only holds the demo image.
        if Sha256::digest(DEMO_IMAGE).as_slice() != expected.as_slice() {
            return Err(EngineError::Media(
                "the media is no longer available on WhatsApp's servers".to_owned(),
            ));
        }
        super::media::write_new(&self.media_dir, &path, DEMO_IMAGE)
            .await
            .map_err(|err| EngineError::Media(err.to_string()))?;
        Ok(DownloadedMedia {
            path,
            mime_type: media.mime_type,
            size_bytes: DEMO_IMAGE.len() as u64,
            reused: false,
        })
    }

    async fn start_linking(&self) -> Result<(), EngineError> {
        let Some(delay) = self.scan_after else {
            return Err(EngineError::Unavailable(
                "this fake engine was started without linking (seed scan-after:MS)".to_owned(),
            ));
        };
        self.record(Action::StartLinking);
        let state = self.ingest.status().snapshot().state;
        if state.is_linked() || self.linking.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.emit(EngineEvent::QrCode {
            code: FAKE_QR_CODES[0].to_owned(),
            valid_for_secs: DEFAULT_QR_VALIDITY_SECS,
        })
        .await
        .map_err(|err| EngineError::Failed(err.to_string()))?;
        self.scan_later(delay, true);
        Ok(())
    }

    async fn pair_code(&self, phone: Jid) -> Result<String, EngineError> {
        let Some(delay) = self.scan_after else {
            return Err(EngineError::Unavailable(
                "this fake engine was started without linking (seed scan-after:MS)".to_owned(),
            ));
        };
        let digits = phone
            .phone()
            .ok_or_else(|| EngineError::Recipient(format!("{phone} is not a phone number")))?
            .to_owned();
        self.record(Action::PairCode { phone: digits });
        if self.ingest.status().snapshot().state.is_linked() {
            return Err(EngineError::Failed(
                "this server is already linked; run `whatsapp-mcp logout` first".to_owned(),
            ));
        }
        self.scan_later(delay, false);
        Ok(FAKE_PAIR_CODE.to_owned())
    }

    async fn logout(&self, wipe_archive: bool) -> Result<(), EngineError> {
        self.record(Action::Logout { wipe_archive });
        if wipe_archive {
            self.ingest.clear_archive().await.map_err(|err| {
                EngineError::Failed(format!("could not delete the archive: {err}"))
            })?;
        }
        self.emit(EngineEvent::NotLinked {
            note: Some("unlinked with `whatsapp-mcp logout`".to_owned()),
        })
        .await
        .map_err(|err| EngineError::Failed(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_file_is_a_message_from_the_contact() {
        let events =
            inbox_events(br#"{"chat": "31611111111@s.whatsapp.net", "text": "hi", "id": "X1"}"#)
                .unwrap();
        let [EngineEvent::Messages(messages)] = events.as_slice() else {
            panic!("{events:?}");
        };
        let message = &messages[0];
        assert_eq!(message.id, "X1");
        assert_eq!(message.sender, Some(message.chat.clone()));
        assert!(!message.from_me);
        assert_eq!(message.text.as_deref(), Some("hi"));
    }

    #[test]
    fn a_malformed_inbox_file_says_why() {
        assert!(inbox_events(b"{").is_err());
        let err = inbox_events(br#"{"chat": "not a jid", "text": "hi"}"#).unwrap_err();
        assert!(!err.is_empty());
        let err = inbox_events(br#"{"chat": "31611111111@s.whatsapp.net"}"#).unwrap_err();
        assert!(err.contains("text"), "{err}");
        let err =
            inbox_events(br#"{"chat": "31611111111@s.whatsapp.net", "txt": "hi"}"#).unwrap_err();
        assert!(err.contains("txt"), "{err}");
    }
}
