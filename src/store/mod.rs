//! Persistent storage behind one trait; the backend is chosen once from the database URL.
//!
//! The store knows nothing of HTTP, MCP or WhatsApp's wire protocol: it keeps rows and answers
//! queries. Callers hold an `Arc<dyn Store>` and never learn which engine is underneath.

mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{BackendKind, DatabaseUrl};

pub use sqlite::SqliteStore;

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

/// The archive and session storage the rest of the program talks to.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> BackendKind;

    /// Checks the connection and the schema without changing anything.
    async fn health(&self) -> BackendHealth;

    /// Counts for the status page.
    async fn stats(&self) -> Result<ArchiveStats, StoreError>;
}

/// Opens (creating and migrating as needed) the store named by `url`.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    match url.kind() {
        Some(BackendKind::Sqlite) => {
            let path = url.sqlite_path().ok_or_else(|| {
                StoreError::Other(format!(
                    "{url} names no file: use sqlite:///path/to/file.db"
                ))
            })?;
            Ok(Arc::new(SqliteStore::open(path).await?))
        }
        Some(BackendKind::Postgres) => Err(StoreError::Other(
            "PostgreSQL storage is not available in this build yet; use a sqlite:// URL".to_owned(),
        )),
        None => Err(StoreError::Other(format!("unsupported database URL {url}"))),
    }
}
