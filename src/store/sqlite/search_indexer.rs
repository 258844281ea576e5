//! Brings the SQLite search index up to the archive in the background, in batches, when writes pause.
//!
//! A history sync stores messages faster than FTS5 can index them one transaction at a time,
//! so large inserts leave their messages above the index's mark (see V5__search_backlog.sql)
//! and this task indexes them once the writer has been quiet for a moment. Searches scan the
//! rows above the mark meanwhile, so they stay complete; only their speed depends on the task.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::{archive, in_write_transaction};

/// Messages indexed per transaction: about a tenth of a second, so a live message waiting for
/// the writer is not held up for long.
const BATCH: u64 = 4_000;
/// The writer counts as quiet after this long without a write.
const QUIET: Duration = Duration::from_millis(100);
/// A backlog waits at most this long for quiet; under continuous writes it is indexed a batch
/// at a time in between.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// After a failed batch (disk full, database gone), the task rests this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The store's side of the task: it reports writes and wakes the task when a backlog appears.
/// The task ends when the last handle (and so the last clone of the store) is dropped.
#[derive(Clone, Debug)]
pub(super) struct SearchIndexer {
    wake: mpsc::Sender<()>,
    last_write: Arc<Mutex<Instant>>,
}

impl SearchIndexer {
    /// Starts the task; with `backlog`, it first indexes what an earlier run left behind.
    pub(super) fn start(writer: &Arc<Mutex<Connection>>, backlog: bool) -> Self {
        let (wake, woken) = mpsc::channel(1);
        let last_write = Arc::new(Mutex::new(Instant::now()));
        tokio::spawn(run(Arc::downgrade(writer), Arc::clone(&last_write), woken));
        let indexer = SearchIndexer { wake, last_write };
        if backlog {
            indexer.wake();
        }
        indexer
    }

    /// Notes that a write just finished, so the task keeps out of the way of a burst.
    pub(super) fn wrote(&self) {
        if let Ok(mut last) = self.last_write.lock() {
            *last = Instant::now();
        }
    }

    /// Asks the task to look for messages to index (a no-op if it is already asked).
    pub(super) fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

async fn run(
    writer: Weak<Mutex<Connection>>,
    last_write: Arc<Mutex<Instant>>,
    mut woken: mpsc::Receiver<()>,
) {
    while woken.recv().await.is_some() {
        let mut waiting_since = Instant::now();
        loop {
            let quiet_for = last_write.lock().map_or(QUIET, |last| last.elapsed());
            if quiet_for < QUIET && waiting_since.elapsed() < MAX_WAIT {
                tokio::time::sleep(QUIET - quiet_for).await;
                continue;
            }
            let Some(writer) = writer.upgrade() else {
                return;
            };
            let batch = tokio::task::spawn_blocking(move || {
                in_write_transaction(&writer, |conn| archive::index_pending(conn, BATCH))
            })
            .await;
            match batch {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => waiting_since = Instant::now(),
                Ok(Err(err)) => {
                    // The next write wakes the task again; searches scan the backlog meanwhile.
                    tracing::warn!(error = %err, "could not add messages to the search index");
                    tokio::time::sleep(RETRY_AFTER).await;
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the search indexing task stopped");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{SqliteStore, archive};
    use crate::jid::Jid;
    use crate::store::Store;
    use crate::store::model::{MessageQuery, NewMessage, Page};
    use crate::store::search;

    fn chat() -> Jid {
        Jid::parse("31622222222@s.whatsapp.net").unwrap()
    }

    fn message(i: usize, text: &str, caption: Option<&str>) -> NewMessage {
        NewMessage {
            chat: chat(),
            id: format!("m{i}"),
            sender: Some(chat()),
            timestamp: 10_000 + i as i64,
            from_me: false,
            text: Some(text.to_owned()),
            caption: caption.map(str::to_owned),
            quoted_id: None,
            media: None,
        }
    }

    /// The ids a search must return: messages holding every term, folded, newest first.
    fn expected(archive: &[NewMessage], query: &str) -> Vec<String> {
        let terms: Vec<String> = query.split_whitespace().map(search::fold).collect();
        let mut hits: Vec<&NewMessage> = archive
            .iter()
            .filter(|m| {
                let folded =
                    search::message_search_text([m.text.as_deref(), m.caption.as_deref(), None]);
                terms.iter().all(|t| folded.contains(t.as_str()))
            })
            .collect();
        hits.sort_by_key(|m| std::cmp::Reverse(m.timestamp));
        hits.into_iter().map(|m| m.id.clone()).collect()
    }

    /// Every hit, page after page.
    async fn search(store: &SqliteStore, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for page in 0.. {
            let found = store
                .list_messages(MessageQuery {
                    text: Some(query.to_owned()),
                    page: Page::new(200, page),
                    ..MessageQuery::default()
                })
                .await
                .unwrap();
            if found.is_empty() {
                return ids;
            }
            ids.extend(found.into_iter().map(|m| m.id));
        }
        ids
    }

    async fn assert_searches_match(store: &SqliteStore, archive: &[NewMessage], stage: &str) {
        for query in ["creme", "KILIMANJARO", "brûlée 7", "trip 11", "menu"] {
            assert_eq!(
                search(store, query).await,
                expected(archive, query),
                "{query:?} {stage}"
            );
        }
    }

    async fn integrity_check(store: &SqliteStore) {
        store
            .write(|conn| {
                conn.execute(
                    "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
                    [],
                )
            })
            .await
            .expect("the search index matches the messages");
    }

    async fn backlog(store: &SqliteStore) -> u64 {
        store.stats().await.unwrap().search_backlog
    }

    /// Waits for the background indexer to empty the backlog, failing after a minute.
    async fn wait_until_indexed(store: &SqliteStore, failure: &str) {
        let mut waited = Duration::ZERO;
        while backlog(store).await > 0 {
            assert!(waited < Duration::from_secs(60), "{failure}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
    }

    #[tokio::test]
    async fn search_finds_every_message_on_both_sides_of_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wa.db")).await.unwrap();
        let mut archive: Vec<NewMessage> = (0..1_200)
            .map(|i| match i % 3 {
                0 => message(i, &format!("Crème brûlée {i}"), Some("the menu")),
                1 => message(i, &format!("kilimanjaro trip {i}"), None),
                _ => message(i, &format!("nothing to see {i}"), None),
            })
            .collect();

        // Written without waking the indexer, more than a write indexes itself: all wait.
        let batch = archive.clone();
        store
            .write_counted(move |conn, counts| archive::insert_messages(conn, &batch, counts))
            .await
            .unwrap();
        assert_eq!(backlog(&store).await, 1_200);
        assert_searches_match(&store, &archive, "with nothing indexed").await;

        let indexed = store
            .write(|conn| archive::index_pending(conn, 600))
            .await
            .unwrap();
        assert_eq!((indexed, backlog(&store).await), (600, 600));
        assert_searches_match(&store, &archive, "with half indexed").await;

        // Edits and revokes on both sides of the mark keep the index true.
        for (i, text) in [(10, "kilimanjaro at last"), (1_000, "crème again")] {
            store
                .edit_message(chat(), format!("m{i}"), text.to_owned(), 20_000)
                .await
                .unwrap();
            archive[i].text = Some(text.to_owned());
        }
        for i in [3, 1_002] {
            store
                .delete_message(chat(), format!("m{i}"), 20_000)
                .await
                .unwrap();
            archive[i].text = None;
            archive[i].caption = None;
        }
        assert_searches_match(&store, &archive, "after edits").await;
        store
            .write(|conn| archive::index_pending(conn, 10_000))
            .await
            .unwrap();
        assert_eq!(backlog(&store).await, 0);
        assert_searches_match(&store, &archive, "with everything indexed").await;
        integrity_check(&store).await;

        // The newest row goes (a LID merge drops duplicates this way); the next message takes
        // its pk and must still be indexed.
        store
            .write(|conn| conn.execute("DELETE FROM messages WHERE id = 'm1199'", []))
            .await
            .unwrap();
        archive.pop();
        let late = message(5_000, "kilimanjaro, late", None);
        store.insert_messages(vec![late.clone()]).await.unwrap();
        archive.push(late);
        assert_eq!(backlog(&store).await, 0, "a small insert indexes itself");
        assert_searches_match(&store, &archive, "after a reused pk").await;
        integrity_check(&store).await;

        store.clear_archive().await.unwrap();
        let fresh = vec![message(1, "kilimanjaro again", None)];
        store.insert_messages(fresh.clone()).await.unwrap();
        assert_searches_match(&store, &fresh, "after clearing").await;
        integrity_check(&store).await;
    }

    #[tokio::test]
    async fn the_background_indexer_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wa.db")).await.unwrap();
        let archive: Vec<NewMessage> = (0..9_000)
            .map(|i| message(i, &format!("kilimanjaro trip {i}"), None))
            .collect();
        store.insert_messages(archive.clone()).await.unwrap();
        wait_until_indexed(&store, "the indexer did not catch up").await;
        integrity_check(&store).await;
        assert_searches_match(&store, &archive, "once indexed").await;
    }

    #[tokio::test]
    async fn a_backlog_left_by_an_earlier_run_is_indexed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.db");
        let archive: Vec<NewMessage> = (0..800)
            .map(|i| message(i, &format!("Crème brûlée {i}"), Some("the menu")))
            .collect();
        {
            let store = SqliteStore::open(path.clone()).await.unwrap();
            let batch = archive.clone();
            store
                .write_counted(move |conn, counts| archive::insert_messages(conn, &batch, counts))
                .await
                .unwrap();
            assert_eq!(backlog(&store).await, 800);
        }
        let store = SqliteStore::open(path).await.unwrap();
        wait_until_indexed(&store, "nothing indexed on open").await;
        integrity_check(&store).await;
        assert_searches_match(&store, &archive, "after reopening").await;
    }
}
