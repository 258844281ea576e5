//! The archive's records and query shapes, shared by every backend.
//!
//! Times are Unix seconds (UTC) here; the MCP layer turns them into ISO-8601. JIDs are canonical
//! [`Jid`]s: no device part, and a person known by both a phone number and a LID is stored under
//! the phone number.

use serde::Serialize;

use crate::jid::{ChatKind, Jid};

/// Largest page any query returns, whatever the caller asks for.
pub const MAX_PAGE_SIZE: u32 = 200;

/// A contact as the address book, the person themselves, or their business profile name them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// Phone-number JID when known, else the LID.
    pub jid: String,
    pub lid: Option<String>,
    pub phone: Option<String>,
    pub full_name: Option<String>,
    pub first_name: Option<String>,
    pub push_name: Option<String>,
    pub business_name: Option<String>,
}

impl Contact {
    /// The best name to show: address book first, then what the person calls themselves.
    pub fn display_name(&self) -> Option<&str> {
        [
            &self.full_name,
            &self.first_name,
            &self.business_name,
            &self.push_name,
        ]
        .into_iter()
        .find_map(|name| name.as_deref().filter(|n| !n.trim().is_empty()))
    }
}

/// New facts about a contact; `None` leaves what is stored untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactUpdate {
    pub jid: Jid,
    pub full_name: Option<String>,
    pub first_name: Option<String>,
    pub push_name: Option<String>,
    pub business_name: Option<String>,
}

impl ContactUpdate {
    /// An update that changes nothing yet; set the fields you know.
    pub fn new(jid: Jid) -> Self {
        Self {
            jid,
            full_name: None,
            first_name: None,
            push_name: None,
            business_name: None,
        }
    }
}

/// New facts about a chat; `None` leaves what is stored untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatUpdate {
    pub jid: Jid,
    pub name: Option<String>,
    pub last_message_at: Option<i64>,
    pub unread_count: Option<u32>,
    pub archived: Option<bool>,
    pub pinned: Option<bool>,
    /// Unix time until which the chat is muted; `Some(0)` unmutes.
    pub muted_until: Option<i64>,
}

impl ChatUpdate {
    /// An update that changes nothing yet; set the fields you know.
    pub fn new(jid: Jid) -> Self {
        Self {
            jid,
            name: None,
            last_message_at: None,
            unread_count: None,
            archived: None,
            pinned: None,
            muted_until: None,
        }
    }
}

/// Media attached to a message, with what is needed to download it later.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Media {
    /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
    pub media_type: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub file_length: Option<u64>,
    #[serde(skip)]
    pub url: Option<String>,
    #[serde(skip)]
    pub direct_path: Option<String>,
    #[serde(skip)]
    pub media_key: Option<Vec<u8>>,
    #[serde(skip)]
    pub file_sha256: Option<Vec<u8>>,
    #[serde(skip)]
    pub file_enc_sha256: Option<Vec<u8>>,
}

/// A message as it arrives from WhatsApp (history sync, live, or sent by us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub chat: Jid,
    pub id: String,
    /// Who wrote it; `None` for our own messages in direct chats.
    pub sender: Option<Jid>,
    pub timestamp: i64,
    pub from_me: bool,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub quoted_id: Option<String>,
    pub media: Option<Media>,
}

impl NewMessage {
    /// A message we sent just now, still empty: the sender fills in the text, caption, quote
    /// or media it sent.
    pub fn ours(chat: Jid, id: String) -> Self {
        NewMessage {
            chat,
            id,
            sender: None,
            timestamp: chrono::Utc::now().timestamp(),
            from_me: true,
            text: None,
            caption: None,
            quoted_id: None,
            media: None,
        }
    }
}

/// A poll to record: the message that asked it and what it offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPoll {
    pub chat: Jid,
    pub message_id: String,
    pub question: String,
    pub options: Vec<String>,
    /// How many options one voter may pick (0: any number).
    pub selectable: u32,
    /// The key its votes are sealed with, when known.
    pub secret: Option<Vec<u8>>,
}

/// One voter's choice in a poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPollVote {
    pub chat: Jid,
    pub poll_id: String,
    pub voter: Jid,
    /// The options picked, by name; empty when the vote was taken back.
    pub options: Vec<String>,
    pub timestamp: i64,
}

/// A stored poll and its votes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poll {
    pub chat_jid: String,
    pub message_id: String,
    pub question: String,
    pub options: Vec<String>,
    pub selectable: u32,
    pub secret: Option<Vec<u8>>,
    /// Each voter's latest choice, oldest first; taken-back votes are left out.
    pub votes: Vec<PollVote>,
}

/// A voter's latest choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollVote {
    pub voter_jid: String,
    pub voter_name: Option<String>,
    pub options: Vec<String>,
    pub timestamp: i64,
}

/// A reaction to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reaction {
    pub sender_jid: String,
    pub sender_name: Option<String>,
    pub emoji: String,
    pub timestamp: i64,
}

/// A stored message with names resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub chat_jid: String,
    pub chat_name: Option<String>,
    pub id: String,
    pub sender_jid: Option<String>,
    pub sender_name: Option<String>,
    pub timestamp: i64,
    pub from_me: bool,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub quoted_id: Option<String>,
    pub media: Option<Media>,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// How far one of our own messages got; `None` for other people's messages.
    pub delivery: Option<Delivery>,
    pub reactions: Vec<Reaction>,
}

/// How far one of our own messages got. The order matters: a status only ever moves forward,
/// because receipts arrive out of order (a read receipt can overtake the delivery receipt).
/// In a group it is the furthest any member got: "read" means at least one member read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// WhatsApp's server has the message.
    Sent = 1,
    /// It reached the recipient's phone.
    Delivered = 2,
    /// The recipient opened it.
    Read = 3,
    /// The recipient played the voice note or video.
    Played = 4,
}

impl Delivery {
    /// The number the archive stores.
    pub fn rank(self) -> i16 {
        self as i16
    }

    /// The status a stored number stands for; unknown numbers (a newer schema) read as `None`.
    pub fn from_rank(rank: i64) -> Option<Self> {
        match rank {
            1 => Some(Self::Sent),
            2 => Some(Self::Delivered),
            3 => Some(Self::Read),
            4 => Some(Self::Played),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
        }
    }
}

/// A stored chat with its resolved name and latest message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chat {
    pub jid: String,
    pub kind: ChatKind,
    /// The chat's own name (groups) or the contact's best name (direct chats).
    pub name: Option<String>,
    pub last_message_at: Option<i64>,
    pub unread_count: u32,
    pub archived: bool,
    pub pinned: bool,
    pub muted_until: Option<i64>,
    pub last_message: Option<Message>,
}

/// How to order a chat list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChatSort {
    /// Most recent activity first.
    #[default]
    LastActive,
    /// Alphabetical by display name.
    Name,
}

/// Filters and paging for [`crate::store::Store::list_chats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatQuery {
    /// Matches the chat name, the contact's names, or the JID.
    pub query: Option<String>,
    pub kind: Option<ChatKind>,
    pub sort: ChatSort,
    pub include_last_message: bool,
    pub page: Page,
}

/// Filters and paging for [`crate::store::Store::list_messages`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageQuery {
    pub chat: Option<Jid>,
    pub sender: Option<Jid>,
    /// Only messages strictly after this time.
    pub after: Option<i64>,
    /// Only messages strictly before this time.
    pub before: Option<i64>,
    /// Full-text search over text, captions and file names.
    pub text: Option<String>,
    pub page: Page,
}

/// A page of results: `limit` rows after skipping `page * limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub page: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self { limit: 20, page: 0 }
    }
}

impl Page {
    pub fn new(limit: u32, page: u32) -> Self {
        Self {
            limit: limit.clamp(1, MAX_PAGE_SIZE),
            page,
        }
    }

    /// The row limit, clamped to `1..=MAX_PAGE_SIZE`.
    pub fn limit(self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_PAGE_SIZE))
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page).saturating_mul(self.limit())
    }
}

/// A message with its neighbours in the same chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageContext {
    pub message: Message,
    pub before: Vec<Message>,
    pub after: Vec<Message>,
}

/// The messages around one message of a chat, both lists in chronological order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Neighbours {
    pub before: Vec<Message>,
    pub after: Vec<Message>,
}

/// A member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub jid: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// `member`, `admin` or `superadmin`.
    pub role: String,
}

/// What the ledger of acting calls holds for a request key (see [`super::Store::claim_request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No call had the key: this one has it now, and acts.
    New,
    /// A call of `tool` had the key first, at `started_at` (Unix seconds); `outcome` is its
    /// answer, `None` while it runs or if it was cut off before its answer was recorded.
    Taken {
        tool: String,
        started_at: i64,
        outcome: Option<String>,
    },
}

/// How long the ledger remembers a request key: far longer than any client retries.
pub const CLAIM_RETENTION_SECS: i64 = 7 * 24 * 3600;
