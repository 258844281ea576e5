//! Persistent storage behind one trait; the backend is chosen once from the database URL.
//!
//! The store knows nothing of HTTP, MCP or WhatsApp's wire protocol: it keeps rows and answers
//! queries. Callers hold an `Arc<dyn Store>` and never learn which engine is underneath.

pub mod model;
pub mod pg;
mod postgres;
mod search;
pub mod session;
pub(crate) mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{BackendKind, DatabaseUrl};
use crate::jid::Jid;
use model::{
    Chat, ChatQuery, ChatUpdate, Contact, ContactUpdate, Delivery, Message, MessageContext,
    MessageQuery, Neighbours, NewMessage, Page, Participant,
};

pub use postgres::PostgresStore;
pub use sqlite::{BackupSummary, SqliteStore};

/// What can go wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or opened right now; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// Counts and sizes for `/api/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveStats {
    pub message_count: u64,
    pub chat_count: u64,
    pub contact_count: u64,
    /// Time of the newest archived message.
    pub last_message_at: Option<DateTime<Utc>>,
    /// Bytes used by the database, when the backend can tell.
    pub database_bytes: Option<u64>,
    /// Messages stored but not yet in the search index (found by a slower scan meanwhile); may
    /// also count, until the indexer passes them, messages deleted before they were indexed.
    pub search_backlog: u64,
}

/// Rows one write transaction added to the archive (negative: removed), added to the stored
/// counts (`archive_counts`) once before it commits, so `stats` reads them instead of counting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CountChange {
    messages: i64,
    chats: i64,
    contacts: i64,
}

impl CountChange {
    fn is_none(self) -> bool {
        self == Self::default()
    }
}

/// The result of checking that the database is reachable and its schema is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendHealth {
    pub backend: BackendKind,
    /// The URL with any password hidden.
    pub location: String,
    pub connected: bool,
    pub schema_version: Option<i64>,
    pub expected_schema_version: i64,
    /// Tables the current schema needs that are absent.
    pub missing_tables: Vec<String>,
    pub error: Option<String>,
}

impl BackendHealth {
    pub fn schema_ok(&self) -> bool {
        self.connected
            && self.missing_tables.is_empty()
            && self.schema_version == Some(self.expected_schema_version)
    }
}

/// Tables the archive's current schema must contain, on either backend.
const REQUIRED_TABLES: &[&str] = &[
    "archive_counts",
    "chats",
    "contacts",
    "group_participants",
    "messages",
    "poll_votes",
    "polls",
    "reactions",
    "sync_state",
    "tool_requests",
];

/// The archive and session storage the rest of the program talks to.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// Checks the connection and the schema without changing anything.
    async fn health(&self) -> BackendHealth;

    /// Counts for the status page.
    async fn stats(&self) -> Result<ArchiveStats, StoreError>;

    // --- writes: each call is one transaction -------------------------------------------------

    /// Adds or updates contacts; `None` fields keep what is stored.
    async fn upsert_contacts(&self, contacts: Vec<ContactUpdate>) -> Result<(), StoreError>;

    /// Records that `lid` and `phone` are the same person and merges everything stored under
    /// the LID (contact, chat, messages, reactions, group memberships) into the phone number.
    async fn link_lid(&self, lid: Jid, phone: Jid) -> Result<(), StoreError>;

    /// Adds or updates chats; `None` fields keep what is stored.
    async fn upsert_chats(&self, chats: Vec<ChatUpdate>) -> Result<(), StoreError>;

    /// Stores messages, creating their chats as needed. A message already stored (same chat and
    /// id) is updated with any fields it lacked, never duplicated. Returns how many were new.
    async fn insert_messages(&self, messages: Vec<NewMessage>) -> Result<u64, StoreError> {
        if messages.is_empty() {
            return Ok(0);
        }
        self.insert_history(messages, Vec::new()).await
    }

    /// One history sync chunk in one transaction: `insert_messages`, then `upsert_chats` (the
    /// messages create their chats; the chat updates then name them). All or nothing.
    async fn insert_history(
        &self,
        messages: Vec<NewMessage>,
        chats: Vec<ChatUpdate>,
    ) -> Result<u64, StoreError>;

    /// Replaces a message's text after an edit.
    async fn edit_message(
        &self,
        chat: Jid,
        id: String,
        text: String,
        edited_at: i64,
    ) -> Result<(), StoreError>;

    /// Marks a message deleted for everyone and drops its content.
    async fn delete_message(
        &self,
        chat: Jid,
        id: String,
        deleted_at: i64,
    ) -> Result<(), StoreError>;

    /// Moves our own messages `ids` in `chat` forward to `delivery` (never backward). Ids that
    /// are not stored, or not ours, are skipped: a receipt can arrive for a message sent before
    /// this archive existed. Returns how many messages changed.
    async fn set_delivery(
        &self,
        chat: Jid,
        ids: Vec<String>,
        delivery: Delivery,
    ) -> Result<u64, StoreError>;

    /// Sets `sender`'s reaction to a message; an empty emoji removes it.
    async fn set_reaction(
        &self,
        chat: Jid,
        message_id: String,
        sender: Jid,
        emoji: String,
        timestamp: i64,
    ) -> Result<(), StoreError>;

    /// Records a poll's question and options (a poll seen again keeps what it had, and gains
    /// its secret if it lacked one).
    async fn record_poll(&self, poll: model::NewPoll) -> Result<(), StoreError>;

    /// Sets `voter`'s choice in a poll (later wins; an empty choice takes the vote back).
    async fn set_poll_vote(&self, vote: model::NewPollVote) -> Result<(), StoreError>;

    /// Replaces a group's member list.
    async fn set_participants(
        &self,
        group: Jid,
        participants: Vec<(Jid, String)>,
    ) -> Result<(), StoreError>;

    /// Deletes every archived message, chat, contact and group (for `logout --wipe-archive`).
    async fn clear_archive(&self) -> Result<(), StoreError>;

    /// Stores a small progress marker (e.g. the oldest synced message of a chat).
    async fn set_sync_state(&self, key: String, value: String) -> Result<(), StoreError>;

    async fn sync_state(&self, key: String) -> Result<Option<String>, StoreError>;

    /// Claims `key` for one call of the acting tool `tool`, at `now` (Unix seconds), in one
    /// statement, so two calls with one key cannot both act; claims older than
    /// [`model::CLAIM_RETENTION_SECS`] are forgotten on the way.
    async fn claim_request(
        &self,
        key: String,
        tool: String,
        now: i64,
    ) -> Result<model::Claim, StoreError>;

    /// Records the answer of the call that claimed `key`.
    async fn finish_request(&self, key: String, outcome: String) -> Result<(), StoreError>;

    /// Gives `key` up: its call did nothing, and may be made again.
    async fn release_request(&self, key: String) -> Result<(), StoreError>;

    // --- reads ---------------------------------------------------------------------------------

    async fn list_chats(&self, query: ChatQuery) -> Result<Vec<Chat>, StoreError>;

    /// One chat, with its latest message.
    async fn chat(&self, jid: Jid) -> Result<Chat, StoreError>;

    /// Messages newest first, filtered; full-text search when `query.text` is set.
    async fn list_messages(&self, query: MessageQuery) -> Result<Vec<Message>, StoreError>;

    async fn message(&self, chat: Jid, id: String) -> Result<Message, StoreError>;

    /// Every stored message with this id, in any chat (ids are unique per sender, so more than
    /// one is rare but possible), newest first, at most a handful.
    async fn messages_by_id(&self, id: String) -> Result<Vec<Message>, StoreError>;

    /// A message with up to `before` older and `after` newer messages of the same chat, both in
    /// chronological order.
    async fn message_context(
        &self,
        chat: Jid,
        id: String,
        before: u32,
        after: u32,
    ) -> Result<MessageContext, StoreError>;

    /// The neighbours of each listed message, given as (chat, id) with the chat as the archive
    /// stores it (a listed message's `chat_jid`), in the order given: up to `before` older and
    /// `after` newer messages of its chat. A message the archive lacks gets none. One call
    /// serves a whole page of results.
    async fn neighbours(
        &self,
        messages: Vec<(String, String)>,
        before: u32,
        after: u32,
    ) -> Result<Vec<Neighbours>, StoreError>;

    /// Contacts whose name or number contains `query`.
    async fn search_contacts(&self, query: String, page: Page) -> Result<Vec<Contact>, StoreError>;

    async fn contact(&self, jid: Jid) -> Result<Contact, StoreError>;

    /// Chats the contact is in: the direct chat and groups where they wrote, latest first.
    async fn contact_chats(&self, jid: Jid, page: Page) -> Result<Vec<Chat>, StoreError>;

    /// The most recent message to or from the contact, in any chat.
    async fn last_interaction(&self, jid: Jid) -> Result<Option<Message>, StoreError>;

    async fn participants(&self, group: Jid) -> Result<Vec<Participant>, StoreError>;

    /// A poll with every voter's latest choice, oldest vote first.
    async fn poll(&self, chat: Jid, message_id: String) -> Result<model::Poll, StoreError>;
}

/// Option names as the archive keeps them: a JSON array.
fn names_json(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".to_owned())
}

/// Option names read back; a value that is not a JSON array of strings reads as none.
fn names_from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Refuses a LID link whose halves are not a LID and a phone-number JID.
fn check_lid_pair(lid: &Jid, phone: &Jid) -> Result<(), StoreError> {
    if lid.is_lid() && phone.phone().is_some() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "cannot link {lid} to {phone}: expected a @lid and a @s.whatsapp.net address"
        )))
    }
}

/// Group roles the archive knows.
fn check_role(role: &str) -> Result<(), StoreError> {
    if matches!(role, "member" | "admin" | "superadmin") {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "unknown group role {role:?}: expected member, admin or superadmin"
        )))
    }
}

/// Where a database URL points. [`locate`] is the one place a URL's scheme picks a backend;
/// the archive, the session store, the session wipe and backups all match on this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The SQLite file a `sqlite://` URL names.
    Sqlite(PathBuf),
    /// A PostgreSQL database, connected to with the URL itself.
    Postgres,
}

/// Resolves `url` to a [`Location`], or says why it names none.
pub fn locate(url: &DatabaseUrl) -> Result<Location, StoreError> {
    match url.kind() {
        Some(BackendKind::Sqlite) => url.sqlite_path().map(Location::Sqlite).ok_or_else(|| {
            StoreError::Other(format!(
                "{url} names no file: use sqlite:///path/to/file.db"
            ))
        }),
        Some(BackendKind::Postgres) => Ok(Location::Postgres),
        None => Err(StoreError::Other(format!("unsupported database URL {url}"))),
    }
}

/// Copies the archive named by `url` to the new file `dest` while the service may be running
/// (SQLite's online backup; see [`sqlite::backup`]). A PostgreSQL archive is backed up with
/// PostgreSQL's own tools, which the error names.
pub async fn backup(url: &DatabaseUrl, dest: PathBuf) -> Result<BackupSummary, StoreError> {
    match locate(url)? {
        Location::Sqlite(path) => tokio::task::spawn_blocking(move || sqlite::backup(&path, &dest))
            .await
            .map_err(|err| StoreError::Other(format!("backup task failed: {err}")))?,
        Location::Postgres => Err(StoreError::Other(format!(
            "the archive is in PostgreSQL ({url}): back it up with pg_dump --format=custom, \
             restore with pg_restore (see the README)"
        ))),
    }
}

/// Opens (creating and migrating as needed) the store named by `url`.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    match locate(url)? {
        Location::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        Location::Postgres => Ok(Arc::new(PostgresStore::open(url).await?)),
    }
}
