//! The PostgreSQL backend of the archive: the same contract as SQLite, on a pooled server.
//!
//! Every write runs in one transaction; connection failures surface as
//! [`StoreError::Unavailable`] and the pool replaces dead connections on the next call, so the
//! service recovers by itself when the server comes back.

mod archive;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use super::model::{
    Chat, ChatQuery, ChatUpdate, Claim, Contact, ContactUpdate, Delivery, Message, MessageContext,
    MessageQuery, Neighbours, NewMessage, NewPoll, NewPollVote, Page, Participant, Poll,
};
use super::pg;
use super::{
    ArchiveStats, BackendHealth, CountChange, Store, StoreError, check_lid_pair, check_role,
};
use crate::config::{BackendKind, DatabaseUrl};
use crate::jid::Jid;

mod embedded {
    refinery::embed_migrations!("src/store/postgres_migrations");
}

/// The table refinery records the archive's applied migrations in (the session store keeps its
/// own, so the two schemas can share a database).
const HISTORY_TABLE: &str = "archive_schema_history";

/// An open PostgreSQL archive.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    location: String,
    statistics: Arc<Mutex<Statistics>>,
    /// The database's size and when it was measured: `pg_database_size` looks at every file of
    /// the database (near a millisecond, more than the rest of `stats`), so it is measured at
    /// most once per [`SIZE_REFRESH`].
    size: Arc<Mutex<Option<(Instant, u64)>>>,
}

/// How long `stats` reports a measured database size before measuring again.
const SIZE_REFRESH: Duration = Duration::from_secs(10);

/// When the planner's statistics of `messages` are next refreshed. A history sync can add a
/// million rows in under a minute, faster than autovacuum's next look; until statistics are
/// taken the planner guesses a near-empty table and a common search word can take a
/// hundred times longer. So the store runs `ANALYZE` itself as the table grows.
#[derive(Debug)]
struct Statistics {
    /// Rows inserted since the last `ANALYZE` (or since the store was opened).
    inserted: u64,
    /// How many more rows make the statistics stale.
    stale_after: u64,
    /// An `ANALYZE` is under way.
    running: bool,
}

impl Statistics {
    /// Never more often than every this many new rows.
    const MIN_ROWS: u64 = 50_000;

    fn new() -> Self {
        Statistics {
            inserted: 0,
            stale_after: Self::MIN_ROWS,
            running: false,
        }
    }

    /// Counts new rows; true when an `ANALYZE` should start now.
    fn count(&mut self, rows: u64) -> bool {
        self.inserted += rows;
        if self.running || self.inserted < self.stale_after {
            return false;
        }
        self.running = true;
        true
    }

    /// An `ANALYZE` ended; the table had `rows` rows by the planner's new count.
    fn analyzed(&mut self, rows: u64) {
        self.running = false;
        self.inserted = 0;
        // Stale again once the table grew by half (never less than MIN_ROWS).
        self.stale_after = (rows / 2).max(Self::MIN_ROWS);
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn runner() -> refinery::Runner {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY_TABLE);
    runner
}

impl PostgresStore {
    /// Connects, then applies pending migrations under an advisory lock.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let pool = pg::connect(url).await?;
        pg::migrate(&pool, &runner(), pg::advisory_key("whatsapp-mcp archive")).await?;
        let store = Self {
            pool,
            location: url.redacted(),
            statistics: Arc::new(Mutex::new(Statistics::new())),
            size: Arc::new(Mutex::new(None)),
        };
        if let Ok(Some(ctype)) = store.ascii_only_search_index().await {
            tracing::warn!(
                "the PostgreSQL database's LC_CTYPE is {ctype:?}: its search index covers only \
                 ASCII letters and digits, so searches for words in other scripts read every \
                 message; a database created with a UTF-8 locale avoids this (e.g. createdb \
                 --template=template0 --locale=C.UTF-8)"
            );
        }
        Ok(store)
    }

    /// The database's `LC_CTYPE` when pg_trgm, which classifies characters by it, makes
    /// trigrams of ASCII letters and digits only (a `C` or `POSIX` database); `None` when words
    /// in Cyrillic, Arabic and CJK scripts get trigrams too.
    pub async fn ascii_only_search_index(&self) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT cardinality(show_trgm('жش日')) = 0, current_setting('lc_ctype')",
                &[],
            )
            .await
            .map_err(|err| pg::query_error(&err))?;
        Ok(row.get::<_, bool>(0).then(|| row.get(1)))
    }

    /// Notes `rows` new messages and, when the planner's picture of the table has gone stale,
    /// refreshes it in the background; a failure only means autovacuum will do it later.
    fn count_new_rows(&self, rows: u64) {
        let start = self
            .statistics
            .lock()
            .map(|mut stats| stats.count(rows))
            .unwrap_or(false);
        if !start {
            return;
        }
        let (pool, statistics) = (self.pool.clone(), Arc::clone(&self.statistics));
        tokio::spawn(async move {
            let rows = async {
                let client = pool.get().await.ok()?;
                client.batch_execute("ANALYZE messages").await.ok()?;
                let row = client
                    .query_one(
                        "SELECT reltuples::BIGINT FROM pg_class WHERE oid = 'messages'::regclass",
                        &[],
                    )
                    .await
                    .ok()?;
                Some(row.get::<_, i64>(0).max(0) as u64)
            }
            .await;
            if rows.is_none() {
                tracing::debug!("refreshing the archive's planner statistics failed");
            }
            if let Ok(mut stats) = statistics.lock() {
                stats.analyzed(rows.unwrap_or(0));
            }
        });
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|err| pg::pool_error(&err))
    }
}

/// Runs a write in one transaction on a pooled connection; evaluates to a `Result`.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        async {
            let mut client = $store.client().await?;
            let transaction = client
                .transaction()
                .await
                .map_err(|err| pg::query_error(&err))?;
            let value = {
                let $tx: &deadpool_postgres::Transaction<'_> = &transaction;
                $body.await.map_err(|err| pg::query_error(&err))?
            };
            transaction
                .commit()
                .await
                .map_err(|err| pg::query_error(&err))?;
            Ok::<_, StoreError>(value)
        }
        .await
    }};
}

/// `write_tx!` for writes that add or remove messages, chats or contacts: the body also gets a
/// tally (`&mut CountChange`), added to the stored counts as the transaction's last statement.
macro_rules! counted_write_tx {
    ($store:expr, |$tx:ident, $counts:ident| $body:expr) => {
        write_tx!($store, |$tx| async {
            let mut tally = CountChange::default();
            let value = {
                let $counts = &mut tally;
                $body.await?
            };
            archive::add_counts($tx, tally).await?;
            Ok::<_, tokio_postgres::Error>(value)
        })
    };
}

/// Runs a read on a pooled connection; evaluates to a `Result`.
macro_rules! read {
    ($store:expr, |$client:ident| $body:expr) => {{
        async {
            let $client = $store.client().await?;
            $body.await.map_err(|err| pg::query_error(&err))
        }
        .await
    }};
}

fn not_found(what: &str, shown: impl std::fmt::Display) -> StoreError {
    StoreError::NotFound(format!("no {what} {shown} in the archive"))
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    async fn health(&self) -> BackendHealth {
        let expected = runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        let mut health = BackendHealth {
            backend: BackendKind::Postgres,
            location: self.location.clone(),
            connected: false,
            schema_version: None,
            expected_schema_version: expected,
            missing_tables: Vec::new(),
            error: None,
        };
        let checked = async {
            let client = self.client().await?;
            let version: Option<i32> = client
                .query_one(&format!("SELECT MAX(version) FROM {HISTORY_TABLE}"), &[])
                .await
                .map_err(|err| pg::query_error(&err))?
                .get(0);
            let present: Vec<String> = client
                .query(
                    "SELECT table_name::TEXT FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_name = ANY($1)",
                    &[&super::REQUIRED_TABLES],
                )
                .await
                .map_err(|err| pg::query_error(&err))?
                .iter()
                .map(|row| row.get(0))
                .collect();
            Ok::<_, StoreError>((version, present))
        }
        .await;
        match checked {
            Ok((version, present)) => {
                health.connected = true;
                health.schema_version = version.map(i64::from);
                health.missing_tables = super::REQUIRED_TABLES
                    .iter()
                    .filter(|t| !present.iter().any(|p| p == *t))
                    .map(|t| (*t).to_owned())
                    .collect();
            }
            Err(err) => health.error = Some(err.to_string()),
        }
        health
    }

    async fn stats(&self) -> Result<ArchiveStats, StoreError> {
        let recent_size = self.size.lock().ok().and_then(|size| {
            size.filter(|(measured, _)| measured.elapsed() < SIZE_REFRESH)
                .map(|(_, bytes)| bytes)
        });
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT messages, chats, contacts, (SELECT MAX(timestamp) FROM messages),
                        CASE WHEN $1 THEN pg_database_size(current_database()) END
                 FROM archive_counts",
                &[&recent_size.is_none()],
            )
            .await
            .map_err(|err| pg::query_error(&err))?;
        let measured = row
            .get::<_, Option<i64>>(4)
            .and_then(|bytes| u64::try_from(bytes).ok());
        if let (Some(bytes), Ok(mut size)) = (measured, self.size.lock()) {
            *size = Some((Instant::now(), bytes));
        }
        let count = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(ArchiveStats {
            message_count: count(0),
            chat_count: count(1),
            contact_count: count(2),
            last_message_at: row
                .get::<_, Option<i64>>(3)
                .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0)),
            database_bytes: measured.or(recent_size),
            // The trigram index is maintained as rows are written.
            search_backlog: 0,
        })
    }

    async fn upsert_contacts(&self, contacts: Vec<ContactUpdate>) -> Result<(), StoreError> {
        counted_write_tx!(self, |tx, counts| archive::upsert_contacts(
            tx, &contacts, counts
        ))
    }

    async fn link_lid(&self, lid: Jid, phone: Jid) -> Result<(), StoreError> {
        check_lid_pair(&lid, &phone)?;
        counted_write_tx!(self, |tx, counts| archive::link_lid(
            tx, &lid, &phone, counts
        ))
    }

    async fn upsert_chats(&self, chats: Vec<ChatUpdate>) -> Result<(), StoreError> {
        counted_write_tx!(self, |tx, counts| archive::upsert_chats(tx, &chats, counts))
    }

    async fn insert_history(
        &self,
        messages: Vec<NewMessage>,
        chats: Vec<ChatUpdate>,
    ) -> Result<u64, StoreError> {
        let inserted = counted_write_tx!(self, |tx, counts| async {
            let inserted = archive::insert_messages(tx, &messages, counts).await?;
            archive::upsert_chats(tx, &chats, counts).await?;
            Ok(inserted)
        })?;
        self.count_new_rows(inserted);
        Ok(inserted)
    }

    async fn edit_message(
        &self,
        chat: Jid,
        id: String,
        text: String,
        edited_at: i64,
    ) -> Result<(), StoreError> {
        let changed = write_tx!(self, |tx| archive::edit_message(
            tx, &chat, &id, &text, edited_at
        ))?;
        if changed == 0 {
            return Err(StoreError::NotFound("no such message".to_owned()));
        }
        Ok(())
    }

    async fn delete_message(
        &self,
        chat: Jid,
        id: String,
        deleted_at: i64,
    ) -> Result<(), StoreError> {
        let changed = write_tx!(self, |tx| archive::delete_message(
            tx, &chat, &id, deleted_at
        ))?;
        if changed == 0 {
            return Err(StoreError::NotFound("no such message".to_owned()));
        }
        Ok(())
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
        write_tx!(self, |tx| archive::set_delivery(tx, &chat, &ids, delivery))
    }

    async fn set_reaction(
        &self,
        chat: Jid,
        message_id: String,
        sender: Jid,
        emoji: String,
        timestamp: i64,
    ) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::set_reaction(
            tx,
            &chat,
            &message_id,
            &sender,
            &emoji,
            timestamp
        ))
    }

    async fn record_poll(&self, poll: NewPoll) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::record_poll(tx, &poll))
    }

    async fn set_poll_vote(&self, vote: NewPollVote) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::set_poll_vote(tx, &vote))
    }

    async fn set_participants(
        &self,
        group: Jid,
        participants: Vec<(Jid, String)>,
    ) -> Result<(), StoreError> {
        for (_, role) in &participants {
            check_role(role)?;
        }
        counted_write_tx!(self, |tx, counts| archive::set_participants(
            tx,
            &group,
            &participants,
            counts
        ))
    }

    async fn clear_archive(&self) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::clear_archive(tx))
    }

    async fn set_sync_state(&self, key: String, value: String) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::set_sync_state(tx, &key, &value))
    }

    async fn claim_request(
        &self,
        key: String,
        tool: String,
        now: i64,
    ) -> Result<Claim, StoreError> {
        write_tx!(self, |tx| archive::claim_request(tx, &key, &tool, now))
    }

    async fn finish_request(&self, key: String, outcome: String) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::finish_request(tx, &key, &outcome))
    }

    async fn release_request(&self, key: String) -> Result<(), StoreError> {
        write_tx!(self, |tx| archive::release_request(tx, &key))
    }

    async fn sync_state(&self, key: String) -> Result<Option<String>, StoreError> {
        read!(self, |client| archive::sync_state(&client, &key))
    }

    async fn list_chats(&self, query: ChatQuery) -> Result<Vec<Chat>, StoreError> {
        read!(self, |client| archive::list_chats(&client, &query))
    }

    async fn chat(&self, jid: Jid) -> Result<Chat, StoreError> {
        read!(self, |client| archive::chat(&client, &jid))?.ok_or_else(|| not_found("chat", &jid))
    }

    async fn list_messages(&self, query: MessageQuery) -> Result<Vec<Message>, StoreError> {
        read!(self, |client| archive::list_messages(&client, &query))
    }

    async fn message(&self, chat: Jid, id: String) -> Result<Message, StoreError> {
        read!(self, |client| archive::message(&client, &chat, &id))?
            .ok_or_else(|| not_found("message", format!("{id} in {chat}")))
    }

    async fn messages_by_id(&self, id: String) -> Result<Vec<Message>, StoreError> {
        read!(self, |client| archive::messages_by_id(&client, &id))
    }

    async fn message_context(
        &self,
        chat: Jid,
        id: String,
        before: u32,
        after: u32,
    ) -> Result<MessageContext, StoreError> {
        read!(self, |client| archive::message_context(
            &client, &chat, &id, before, after
        ))?
        .ok_or_else(|| not_found("message", format!("{id} in {chat}")))
    }

    async fn neighbours(
        &self,
        messages: Vec<(String, String)>,
        before: u32,
        after: u32,
    ) -> Result<Vec<Neighbours>, StoreError> {
        read!(self, |client| archive::neighbours(
            &client, &messages, before, after
        ))
    }

    async fn search_contacts(&self, query: String, page: Page) -> Result<Vec<Contact>, StoreError> {
        read!(self, |client| archive::search_contacts(
            &client, &query, page
        ))
    }

    async fn contact(&self, jid: Jid) -> Result<Contact, StoreError> {
        read!(self, |client| archive::contact(&client, &jid))?
            .ok_or_else(|| not_found("contact", &jid))
    }

    async fn contact_chats(&self, jid: Jid, page: Page) -> Result<Vec<Chat>, StoreError> {
        read!(self, |client| archive::contact_chats(&client, &jid, page))
    }

    async fn last_interaction(&self, jid: Jid) -> Result<Option<Message>, StoreError> {
        read!(self, |client| archive::last_interaction(&client, &jid))
    }

    async fn participants(&self, group: Jid) -> Result<Vec<Participant>, StoreError> {
        read!(self, |client| archive::participants(&client, &group))
    }

    async fn poll(&self, chat: Jid, message_id: String) -> Result<Poll, StoreError> {
        read!(self, |client| archive::poll(&client, &chat, &message_id))?
            .ok_or_else(|| not_found("poll", format!("{message_id} in {chat}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Statistics;

    #[test]
    fn statistics_are_refreshed_as_the_table_grows_by_half() {
        let mut stats = Statistics::new();
        assert!(!stats.count(49_999));
        assert!(stats.count(1));
        // One at a time: rows arriving meanwhile do not start a second.
        assert!(!stats.count(100_000));
        stats.analyzed(50_000);
        assert!(!stats.count(49_999));
        assert!(stats.count(1));
        stats.analyzed(400_000);
        assert!(!stats.count(199_999));
        assert!(stats.count(1));
        // A failed ANALYZE (no row count) falls back to the minimum.
        stats.analyzed(0);
        assert!(stats.count(50_000));
    }
}
