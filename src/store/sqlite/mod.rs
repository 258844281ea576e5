//! The embedded SQLite backend (rusqlite, WAL): the default store, one file under the data dir.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use rusqlite::{Connection, OptionalExtension};

use super::{ArchiveStats, BackendHealth, Store, StoreError};
use crate::config::BackendKind;

mod embedded {
    refinery::embed_migrations!("src/store/sqlite_migrations");
}

/// Tables the current schema version must contain.
const REQUIRED_TABLES: &[&str] = &[
    "chats",
    "contacts",
    "group_participants",
    "messages",
    "reactions",
    "sync_state",
];

/// An open SQLite archive. Calls run on tokio's blocking pool, one at a time per connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens or creates the database at `path`, applying pending migrations.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        let opened_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&opened_path))
            .await
            .map_err(|err| StoreError::Other(format!("open task failed: {err}")))??;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| StoreError::Other("connection lock poisoned".to_owned()))?;
            work(&guard).map_err(map_error)
        })
        .await
        .map_err(|err| StoreError::Other(format!("query task failed: {err}")))?
    }
}

fn open_blocking(path: &Path) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| {
                StoreError::Unavailable(format!("cannot create {}: {err}", parent.display()))
            })?;
    }
    let mut conn = Connection::open(path)
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
    // The archive holds private messages: keep it readable by the service alone.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|err| {
        StoreError::Unavailable(format!("cannot restrict {}: {err}", path.display()))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(map_error)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(map_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(map_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map_error)?;
    embedded::migrations::runner()
        .run(&mut conn)
        .map_err(|err| StoreError::Other(format!("migrating {}: {err}", path.display())))?;
    Ok(conn)
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
            .with_conn(|conn| {
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
                for table in REQUIRED_TABLES {
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
            .with_conn(|conn| {
                let count = |sql: &str| -> rusqlite::Result<u64> {
                    conn.query_row(sql, [], |row| row.get::<_, i64>(0))
                        .map(|n| u64::try_from(n).unwrap_or(0))
                };
                let last: Option<i64> =
                    conn.query_row("SELECT MAX(timestamp) FROM messages", [], |row| row.get(0))?;
                Ok(ArchiveStats {
                    message_count: count("SELECT COUNT(*) FROM messages")?,
                    chat_count: count("SELECT COUNT(*) FROM chats")?,
                    contact_count: count("SELECT COUNT(*) FROM contacts")?,
                    last_message_at: last.and_then(|secs| DateTime::from_timestamp(secs, 0)),
                    database_bytes: None,
                })
            })
            .await?;
        // The WAL file holds recent writes until a checkpoint, so it is part of the size.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        stats.database_bytes = Some(size(&path) + size(&wal));
        Ok(stats)
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
        assert_eq!(health.schema_version, Some(1));
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

    #[tokio::test]
    async fn a_dropped_table_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wa.db")).await.unwrap();
        store
            .with_conn(|conn| conn.execute_batch("DROP TABLE reactions"))
            .await
            .unwrap();
        let health = store.health().await;
        assert!(!health.schema_ok());
        assert_eq!(health.missing_tables, vec!["reactions".to_owned()]);
    }
}
