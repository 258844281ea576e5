//! The embedded SQLite backend (rusqlite, WAL): the default store, one file under the data dir.
//!
//! One writer connection serialises writes (SQLite allows one writer at a time anyway); a few
//! reader connections serve queries concurrently, which WAL mode lets proceed during writes.

mod archive;
mod search_indexer;

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::Semaphore;

use super::model::{
    Chat, ChatQuery, ChatUpdate, Claim, Contact, ContactUpdate, Delivery, Message, MessageContext,
    MessageQuery, Neighbours, NewMessage, NewPoll, NewPollVote, Page, Participant, Poll,
};
use super::{
    ArchiveStats, BackendHealth, CountChange, Store, StoreError, check_lid_pair, check_role,
};
use crate::config::BackendKind;
use crate::jid::Jid;

/// Reader connections kept open; more would only contend for the same two cores' worth of work.
const READERS: usize = 4;

mod embedded {
    refinery::embed_migrations!("src/store/sqlite_migrations");
}

/// An open SQLite archive. Calls run on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_slots: Arc<Semaphore>,
    indexer: search_indexer::SearchIndexer,
}

impl SqliteStore {
    /// Opens or creates the database at `path`, applying pending migrations.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        let opened_path = path.clone();
        let (writer, backlog, readers) = tokio::task::spawn_blocking(move || {
            let writer = open_blocking(&opened_path)?;
            let backlog = archive::search_backlog_bound(&writer).map_err(map_error)? > 0;
            let readers = (0..READERS)
                .map(|_| open_reader(&opened_path))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((writer, backlog, readers))
        })
        .await
        .map_err(|err| StoreError::Other(format!("open task failed: {err}")))??;
        let writer = Arc::new(Mutex::new(writer));
        Ok(Self {
            path,
            indexer: search_indexer::SearchIndexer::start(&writer, backlog),
            writer,
            readers: Arc::new(Mutex::new(readers)),
            reader_slots: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// Runs `work` in one immediate transaction on the writer connection.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = Arc::clone(&self.writer);
        let written = tokio::task::spawn_blocking(move || in_write_transaction(&writer, work))
            .await
            .map_err(|err| StoreError::Other(format!("write task failed: {err}")))?;
        self.indexer.wrote();
        written
    }

    /// Runs `work` in one write transaction that also adds the rows it counted to the stored
    /// counts.
    async fn write_counted<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection, &mut CountChange) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write(move |conn| {
            let mut counts = CountChange::default();
            let value = work(conn, &mut counts)?;
            archive::add_counts(conn, counts)?;
            Ok(value)
        })
        .await
    }

    /// Runs `work` on a free reader connection. If the caller stops waiting (a cancelled tool
    /// call), the statement under way is interrupted, so the reader comes back to the pool at
    /// once instead of finishing a long search for nobody.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.reader_slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Other("store closed".to_owned()))?;
        let conn = self
            .readers
            .lock()
            .map_err(|_| StoreError::Other("reader pool poisoned".to_owned()))?
            .pop()
            .ok_or_else(|| StoreError::Other("no reader connection free".to_owned()))?;
        let watch = InterruptIfAbandoned::new(&conn);
        let running = Arc::clone(&watch.running);
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            // One read transaction: the statements of a read see one snapshot, so a search
            // cannot miss a batch the indexer moves from the backlog into the index between
            // its two lookups.
            let result = conn
                .unchecked_transaction()
                .and_then(|snapshot| {
                    let value = work(&snapshot)?;
                    snapshot.commit()?;
                    Ok(value)
                })
                .map_err(map_error);
            // Done before the connection is shared again, so a late interrupt cannot reach
            // the next reader's statement.
            if let Ok(mut running) = running.lock() {
                *running = false;
            }
            if let Ok(mut pool) = readers.lock() {
                pool.push(conn);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|err| StoreError::Other(format!("query task failed: {err}")))?
    }
}

/// Runs `work` in one immediate transaction on the writer connection, on the calling thread.
fn in_write_transaction<T>(
    writer: &Mutex<Connection>,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let mut guard = writer
        .lock()
        .map_err(|_| StoreError::Other("writer lock poisoned".to_owned()))?;
    let tx = guard
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(map_error)?;
    let value = work(&tx).map_err(map_error)?;
    tx.commit().map_err(map_error)?;
    Ok(value)
}

/// Interrupts a reader's work when dropped while that work is still running.
struct InterruptIfAbandoned {
    handle: rusqlite::InterruptHandle,
    running: Arc<Mutex<bool>>,
}

impl InterruptIfAbandoned {
    fn new(conn: &Connection) -> Self {
        InterruptIfAbandoned {
            handle: conn.get_interrupt_handle(),
            running: Arc::new(Mutex::new(true)),
        }
    }
}

impl Drop for InterruptIfAbandoned {
    fn drop(&mut self) {
        // Held while interrupting: the work cannot finish and hand its connection on meanwhile.
        if let Ok(running) = self.running.lock()
            && *running
        {
            self.handle.interrupt();
        }
    }
}

fn open_blocking(path: &Path) -> Result<Connection, StoreError> {
    prepare_private_file(path)?;
    let mut conn = Connection::open(path)
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(map_error)?;
    // Two openers of a new database at once would both see an empty history and both try to
    // create the tables, and switching a new file to WAL can fail at once with SQLITE_BUSY
    // beside another connection doing the same: openers take turns from here.
    let lock = lock_directory(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(map_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(map_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map_error)?;
    // A history chunk inserts into five indexes at scattered places, so one commit dirties
    // thousands of pages. With SQLite's default 2 MiB cache and a checkpoint every 1 000 WAL
    // pages, nearly every commit re-read pages and copied the WAL back with an fsync; a larger
    // writer cache and a checkpoint every ~40 MiB of WAL (truncated back to 64 MiB after) cut
    // that to a fraction. Only the writer gets the large cache; it fills only as it is used.
    for (pragma, value) in [
        ("cache_size", -32_768),
        ("wal_autocheckpoint", 10_000),
        ("journal_size_limit", 64 * 1024 * 1024),
    ] {
        conn.pragma_update(None, pragma, value).map_err(map_error)?;
    }
    let migrated = embedded::migrations::runner()
        .run(&mut conn)
        .map_err(|err| StoreError::Other(format!("migrating {}: {err}", path.display())));
    drop(lock);
    migrated?;
    Ok(conn)
}

/// Creates the parent directory (0700) and the file (0600) if missing, and tightens the mode of
/// an existing file, before SQLite opens it with the process umask: the archive holds private
/// messages and the session store the keys that let anyone act as this linked device.
pub(crate) fn prepare_private_file(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| {
                StoreError::Unavailable(format!("cannot create {}: {err}", parent.display()))
            })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))
}

/// Takes an exclusive lock on the database's directory until the returned handle is dropped.
///
/// Migrations check what is applied and then apply the rest, so two openers at once (in this
/// process or another) would both try to create the first tables. The lock is on the directory
/// rather than the file: closing another descriptor of the database file would drop SQLite's own
/// POSIX locks on it, and a lock file of its own would be one more file left behind.
pub(crate) fn lock_directory(path: &Path) -> Result<std::fs::File, StoreError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|handle| handle.lock().map(|()| handle))
        .map_err(|err| StoreError::Unavailable(format!("cannot lock {}: {err}", dir.display())))
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(map_error)?;
    // `rarray(?)` lets a query take a list of row ids as one parameter (full-text search).
    rusqlite::vtab::array::load_module(&conn).map_err(map_error)?;
    archive::register_search_functions(&conn).map_err(map_error)?;
    Ok(conn)
}

/// What [`backup`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    pub messages: u64,
    pub bytes: u64,
}

/// Copies the archive at `source` to a new file `dest` with SQLite's online backup, while the
/// service may go on writing to it.
///
/// The copy is one step over every page, which reads a single snapshot (WAL readers do not
/// block the writer): everything committed before the copy began is in it, nothing half
/// written is. It goes to a temporary file beside `dest`, is checked (`quick_check`) and
/// synced, and only then takes `dest`'s name, so a failed or interrupted backup never leaves a
/// file that looks complete. An existing `dest` is refused rather than overwritten.
pub(crate) fn backup(source: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    if dest.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists already; give a new file name",
            dest.display()
        )));
    }
    // Read-write (never used to write) rather than read-only: a read-only connection cannot
    // open a WAL database whose shared-memory file is gone, as it is after a clean stop.
    if !source.is_file() {
        return Err(StoreError::NotFound(format!(
            "no archive at {}",
            source.display()
        )));
    }
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", source.display())))?;
    src.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(map_error)?;
    let name = dest
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dest.with_file_name(format!(".{name}.partial"));
    let copied = copy_into(&src, &partial);
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let summary = copied?;
    std::fs::rename(&partial, dest).map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        StoreError::Other(format!("cannot name the backup {}: {err}", dest.display()))
    })?;
    Ok(summary)
}

/// The backup proper, into `path`: copy, check, count, sync.
fn copy_into(src: &Connection, path: &Path) -> Result<BackupSummary, StoreError> {
    // The copy holds private messages: 0600 from the start, as the archive itself.
    prepare_private_file(path)?;
    let mut dst = Connection::open(path).map_err(|err| {
        StoreError::Unavailable(format!("cannot create {}: {err}", path.display()))
    })?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(src, &mut dst).map_err(map_error)?;
        // -1: every page in one step, so the copy is one snapshot and never starts over
        // because the service wrote in between. Busy means the source is locked for a moment
        // (a checkpoint); try again shortly, for as long as the busy timeout would.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match backup.step(-1).map_err(map_error)? {
                StepResult::Done => break,
                _ if std::time::Instant::now() > deadline => {
                    return Err(StoreError::Unavailable(
                        "the archive stayed locked for 30 s; try again".to_owned(),
                    ));
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }
    let check: String = dst
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(map_error)?;
    if check != "ok" {
        return Err(StoreError::Other(format!(
            "the copy fails its check: {check}"
        )));
    }
    // A backup is a single file: no WAL beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(map_error)?;
    let messages: i64 = dst
        .query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
        .map_err(map_error)?;
    drop(dst);
    let file = std::fs::File::open(path).map_err(|err| StoreError::Other(err.to_string()))?;
    file.sync_all()
        .map_err(|err| StoreError::Other(format!("cannot sync {}: {err}", path.display())))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        messages: u64::try_from(messages).unwrap_or(0),
        bytes,
    })
}

fn latest_schema_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

#[expect(clippy::needless_pass_by_value, reason = "shaped for `map_err`")]
fn map_error(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &err {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound(err.to_string()),
        rusqlite::Error::SqliteFailure(code, _) => match code.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(err.to_string()),
            ErrorCode::CannotOpen
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Other(err.to_string()),
        },
        _ => StoreError::Other(err.to_string()),
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn health(&self) -> BackendHealth {
        let mut health = BackendHealth {
            backend: BackendKind::Sqlite,
            location: format!("sqlite://{}", self.path.display()),
            connected: false,
            schema_version: None,
            expected_schema_version: latest_schema_version(),
            missing_tables: Vec::new(),
            error: None,
        };
        if !self.path.exists() {
            health.error = Some(format!("{} does not exist", self.path.display()));
            return health;
        }
        let checked = self
            .read(|conn| {
                let version: Option<i64> = conn
                    .query_row(
                        "SELECT MAX(version) FROM refinery_schema_history",
                        [],
                        |row| row.get(0),
                    )
                    .optional()?
                    .flatten();
                let mut stmt =
                    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
                let mut missing = Vec::new();
                for table in super::REQUIRED_TABLES {
                    if !stmt.exists([table])? {
                        missing.push((*table).to_owned());
                    }
                }
                Ok((version, missing))
            })
            .await;
        match checked {
            Ok((version, missing)) => {
                health.connected = true;
                health.schema_version = version;
                health.missing_tables = missing;
            }
            Err(err) => health.error = Some(err.to_string()),
        }
        health
    }

    async fn stats(&self) -> Result<ArchiveStats, StoreError> {
        let path = self.path.clone();
        let mut stats = self
            .read(|conn| {
                let (message_count, chat_count, contact_count, last) = archive::counts(conn)?;
                Ok(ArchiveStats {
                    message_count,
                    chat_count,
                    contact_count,
                    last_message_at: last.and_then(|secs| DateTime::from_timestamp(secs, 0)),
                    database_bytes: None,
                    search_backlog: archive::search_backlog_bound(conn)?,
                })
            })
            .await?;
        // The WAL file holds recent writes until a checkpoint, so it is part of the size.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        stats.database_bytes = Some(size(&path) + size(&wal));
        Ok(stats)
    }

    async fn upsert_contacts(&self, contacts: Vec<ContactUpdate>) -> Result<(), StoreError> {
        self.write_counted(move |conn, counts| archive::upsert_contacts(conn, &contacts, counts))
            .await
    }

    async fn link_lid(&self, lid: Jid, phone: Jid) -> Result<(), StoreError> {
        check_lid_pair(&lid, &phone)?;
        self.write_counted(move |conn, counts| archive::link_lid(conn, &lid, &phone, counts))
            .await
    }

    async fn upsert_chats(&self, chats: Vec<ChatUpdate>) -> Result<(), StoreError> {
        self.write_counted(move |conn, counts| archive::upsert_chats(conn, &chats, counts))
            .await
    }

    async fn insert_history(
        &self,
        messages: Vec<NewMessage>,
        chats: Vec<ChatUpdate>,
    ) -> Result<u64, StoreError> {
        let inserted = self
            .write_counted(move |conn, counts| {
                let inserted = archive::insert_messages(conn, &messages, counts)?;
                archive::upsert_chats(conn, &chats, counts)?;
                Ok(inserted)
            })
            .await?;
        if inserted > 0 {
            self.indexer.wake();
        }
        Ok(inserted)
    }

    async fn edit_message(
        &self,
        chat: Jid,
        id: String,
        text: String,
        edited_at: i64,
    ) -> Result<(), StoreError> {
        let changed = self
            .write(move |conn| archive::edit_message(conn, &chat, &id, &text, edited_at))
            .await?;
        found(changed, "message")
    }

    async fn delete_message(
        &self,
        chat: Jid,
        id: String,
        deleted_at: i64,
    ) -> Result<(), StoreError> {
        let changed = self
            .write(move |conn| archive::delete_message(conn, &chat, &id, deleted_at))
            .await?;
        found(changed, "message")
    }

    async fn set_delivery(
        &self,
        chat: Jid,
        ids: Vec<String>,
        delivery: Delivery,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write(move |conn| archive::set_delivery(conn, &chat, &ids, delivery))
            .await
    }

    async fn set_reaction(
        &self,
        chat: Jid,
        message_id: String,
        sender: Jid,
        emoji: String,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            archive::set_reaction(conn, &chat, &message_id, &sender, &emoji, timestamp)
        })
        .await
    }

    async fn record_poll(&self, poll: NewPoll) -> Result<(), StoreError> {
        self.write(move |conn| archive::record_poll(conn, &poll))
            .await
    }

    async fn set_poll_vote(&self, vote: NewPollVote) -> Result<(), StoreError> {
        self.write(move |conn| archive::set_poll_vote(conn, &vote))
            .await
    }

    async fn set_participants(
        &self,
        group: Jid,
        participants: Vec<(Jid, String)>,
    ) -> Result<(), StoreError> {
        for (_, role) in &participants {
            check_role(role)?;
        }
        self.write_counted(move |conn, counts| {
            archive::set_participants(conn, &group, &participants, counts)
        })
        .await
    }

    async fn clear_archive(&self) -> Result<(), StoreError> {
        self.write(archive::clear_archive).await
    }

    async fn set_sync_state(&self, key: String, value: String) -> Result<(), StoreError> {
        self.write(move |conn| archive::set_sync_state(conn, &key, &value))
            .await
    }

    async fn sync_state(&self, key: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn| archive::sync_state(conn, &key)).await
    }

    async fn claim_request(
        &self,
        key: String,
        tool: String,
        now: i64,
    ) -> Result<Claim, StoreError> {
        self.write(move |conn| archive::claim_request(conn, &key, &tool, now))
            .await
    }

    async fn finish_request(&self, key: String, outcome: String) -> Result<(), StoreError> {
        self.write(move |conn| archive::finish_request(conn, &key, &outcome))
            .await
    }

    async fn release_request(&self, key: String) -> Result<(), StoreError> {
        self.write(move |conn| archive::release_request(conn, &key))
            .await
    }

    async fn list_chats(&self, query: ChatQuery) -> Result<Vec<Chat>, StoreError> {
        self.read(move |conn| archive::list_chats(conn, &query))
            .await
    }

    async fn chat(&self, jid: Jid) -> Result<Chat, StoreError> {
        let shown = jid.to_string();
        self.read(move |conn| archive::chat(conn, &jid))
            .await
            .map_err(|err| not_found_as(err, "chat", &shown))
    }

    async fn list_messages(&self, query: MessageQuery) -> Result<Vec<Message>, StoreError> {
        self.read(move |conn| archive::list_messages(conn, &query))
            .await
    }

    async fn message(&self, chat: Jid, id: String) -> Result<Message, StoreError> {
        let shown = format!("{id} in {chat}");
        self.read(move |conn| archive::message(conn, &chat, &id))
            .await
            .map_err(|err| not_found_as(err, "message", &shown))
    }

    async fn messages_by_id(&self, id: String) -> Result<Vec<Message>, StoreError> {
        self.read(move |conn| archive::messages_by_id(conn, &id))
            .await
    }

    async fn message_context(
        &self,
        chat: Jid,
        id: String,
        before: u32,
        after: u32,
    ) -> Result<MessageContext, StoreError> {
        let shown = format!("{id} in {chat}");
        self.read(move |conn| archive::message_context(conn, &chat, &id, before, after))
            .await
            .map_err(|err| not_found_as(err, "message", &shown))
    }

    async fn neighbours(
        &self,
        messages: Vec<(String, String)>,
        before: u32,
        after: u32,
    ) -> Result<Vec<Neighbours>, StoreError> {
        self.read(move |conn| archive::neighbours(conn, &messages, before, after))
            .await
    }

    async fn search_contacts(&self, query: String, page: Page) -> Result<Vec<Contact>, StoreError> {
        self.read(move |conn| archive::search_contacts(conn, &query, page))
            .await
    }

    async fn contact(&self, jid: Jid) -> Result<Contact, StoreError> {
        let shown = jid.to_string();
        self.read(move |conn| archive::contact(conn, &jid))
            .await
            .map_err(|err| not_found_as(err, "contact", &shown))
    }

    async fn contact_chats(&self, jid: Jid, page: Page) -> Result<Vec<Chat>, StoreError> {
        self.read(move |conn| archive::contact_chats(conn, &jid, page))
            .await
    }

    async fn last_interaction(&self, jid: Jid) -> Result<Option<Message>, StoreError> {
        self.read(move |conn| archive::last_interaction(conn, &jid))
            .await
    }

    async fn participants(&self, group: Jid) -> Result<Vec<Participant>, StoreError> {
        self.read(move |conn| archive::participants(conn, &group))
            .await
    }

    async fn poll(&self, chat: Jid, message_id: String) -> Result<Poll, StoreError> {
        let shown = format!("{message_id} in {chat}");
        self.read(move |conn| archive::poll(conn, &chat, &message_id))
            .await
            .map_err(|err| not_found_as(err, "poll", &shown))
    }
}

/// `NotFound` when an update touched no row.
fn found(changed: usize, what: &str) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound(format!("no such {what}")))
    } else {
        Ok(())
    }
}

/// Names the missing thing in a `NotFound`, which rusqlite words generically.
fn not_found_as(err: StoreError, what: &str, shown: &str) -> StoreError {
    match err {
        StoreError::NotFound(_) => {
            StoreError::NotFound(format!("no {what} {shown} in the archive"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_migrates_and_reports_a_healthy_empty_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/wa.db");
        let store = SqliteStore::open(path.clone()).await.unwrap();
        let health = store.health().await;
        assert!(health.schema_ok(), "{health:?}");
        assert_eq!(health.schema_version, Some(latest_schema_version()));
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.message_count, 0);
        assert!(stats.database_bytes.unwrap() > 0);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(store);
        // Re-opening applies nothing new and keeps the schema.
        let again = SqliteStore::open(path).await.unwrap();
        assert!(again.health().await.schema_ok());
    }

    /// The statements of one read see one snapshot: a write committed between them (the
    /// background indexer moving a batch from the backlog into the index) is seen by neither.
    #[tokio::test]
    async fn a_read_sees_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let store = SqliteStore::open(path.clone()).await.unwrap();
        let mark = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.query_row("SELECT indexed_through FROM search_progress", [], |row| {
                row.get(0)
            })
        };
        let (before, after) = store
            .read(move |conn| {
                let before = mark(conn)?;
                let other = Connection::open(&path)?;
                other.execute("UPDATE search_progress SET indexed_through = 42", [])?;
                Ok((before, mark(conn)?))
            })
            .await
            .unwrap();
        assert_eq!((before, after), (0, 0));
        let seen = store.read(mark).await.unwrap();
        assert_eq!(seen, 42, "the next read sees the write");
    }

    #[test]
    fn concurrent_openers_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || open_blocking(&path).map(drop))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        let applied: i64 = conn
            .query_row("SELECT COUNT(*) FROM refinery_schema_history", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(applied, latest_schema_version());
    }

    #[tokio::test]
    async fn both_ways_of_finding_the_newest_hits_agree() {
        use crate::store::model::{MessageQuery, NewMessage, Page};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wa.db")).await.unwrap();
        let chat = Jid::parse("31611111111@s.whatsapp.net").unwrap();
        // Every other message says "harbour" (the time index is walked); three old ones say
        // "lighthouse" (each hit is looked up). Times are shuffled against insertion order.
        let messages: Vec<NewMessage> = (0..400i64)
            .map(|i| NewMessage {
                chat: chat.clone(),
                id: format!("m{i}"),
                sender: Some(chat.clone()),
                timestamp: 1_000 + (i * 7919) % 400,
                from_me: false,
                text: Some(match i {
                    5..=7 => "the lighthouse".to_owned(),
                    i if i % 2 == 0 => format!("harbour {i}"),
                    _ => "nothing".to_owned(),
                }),
                caption: None,
                quoted_id: None,
                media: None,
            })
            .collect();
        let expected = |word: &str, page: u32, limit: u32| -> Vec<String> {
            let mut hits: Vec<&NewMessage> = messages
                .iter()
                .filter(|m| m.text.as_deref().unwrap().contains(word))
                .collect();
            hits.sort_by_key(|m| std::cmp::Reverse(m.timestamp));
            hits.iter()
                .skip((page * limit) as usize)
                .take(limit as usize)
                .map(|m| m.id.clone())
                .collect()
        };
        store.insert_messages(messages.clone()).await.unwrap();
        for (word, page, limit, walks) in [
            ("harbour", 0, 20, true),
            ("harbour", 3, 20, true),
            ("lighthouse", 0, 20, false),
        ] {
            let hits = messages
                .iter()
                .filter(|m| m.text.as_deref().unwrap().contains(word))
                .count();
            let page = Page::new(limit, page);
            let chosen = store
                .read(move |conn| archive::walk_time_index(conn, hits, page))
                .await
                .unwrap();
            assert_eq!(chosen, walks, "{word}");
            let found = store
                .list_messages(MessageQuery {
                    text: Some(word.to_owned()),
                    page,
                    ..MessageQuery::default()
                })
                .await
                .unwrap();
            let found: Vec<String> = found.into_iter().map(|m| m.id).collect();
            assert_eq!(
                found,
                expected(word, page.page, limit),
                "{word} page {}",
                page.page
            );
        }
    }

    #[test]
    fn an_abandoned_read_is_interrupted_and_its_reader_returned() {
        // A runtime of its own, let go without waiting for blocking work: without the
        // interrupt, the endless statement would otherwise keep the test from ever ending.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let outcome = runtime.block_on(abandon_a_read());
        runtime.shutdown_background();
        outcome.expect("a reader never came back: the abandoned statement still runs");
    }

    async fn abandon_a_read() -> Result<(), tokio::time::error::Elapsed> {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("wa.db")).await.unwrap());
        // A statement that never ends by itself; its caller gives up after a moment.
        let endless = store.read(|conn| {
            conn.query_row(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
                [],
                |row| row.get::<_, i64>(0),
            )
        });
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(200), endless)
                .await
                .is_err()
        );
        // Every reader must be usable again: all of them at once, each holding its own.
        let barrier = Arc::new(std::sync::Barrier::new(READERS));
        let all = (0..READERS).map(|_| {
            let barrier = Arc::clone(&barrier);
            store.read(move |conn| {
                barrier.wait();
                conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
            })
        });
        let answers = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            futures_util::future::join_all(all),
        )
        .await?;
        assert!(answers.into_iter().all(|a| a.unwrap() == 1));
        Ok(())
    }

    #[tokio::test]
    async fn a_dropped_table_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wa.db")).await.unwrap();
        store
            .write(|conn| conn.execute_batch("DROP TABLE reactions"))
            .await
            .unwrap();
        let health = store.health().await;
        assert!(!health.schema_ok());
        assert_eq!(health.missing_tables, vec!["reactions".to_owned()]);
    }
}
