//! The WhatsApp session store: the device identity and Signal state that whatsapp-rust keeps
//! through its storage `Backend`, on SQLite or PostgreSQL.
//!
//! For `sqlite://` this is whatsapp-rust's own backend (whatsapp-rust-sqlite-storage), in the
//! same file as the archive: its tables and the archive's do not overlap, and using the
//! library's backend keeps its schema upgrades and semantics exactly as upstream ships them.
//! whatsapp-rust has no PostgreSQL backend, so `postgres://` gets [`PgSessionStore`], ours.

mod postgres;
mod wipe;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wacore::store::error::StoreError as WaStoreError;
use wacore::store::traits::Backend;

use super::{Location, StoreError, locate};
use crate::config::{BackendKind, DatabaseUrl};
use crate::store::pg::describe;

pub use postgres::PgSessionStore;
pub use wipe::wipe_session;

/// The device row every table is keyed by. One process links one WhatsApp account.
pub const DEVICE_ID: i32 = 1;

/// Opens (creating and migrating as needed) the session store named by `url`, in the shape
/// whatsapp-rust's `BotBuilder::with_backend_arc` takes.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Backend>, StoreError> {
    match locate(url)? {
        Location::Sqlite(path) => Ok(Arc::new(open_sqlite(&path).await?)),
        Location::Postgres => Ok(Arc::new(PgSessionStore::open(url).await?)),
    }
}

/// One table of the session store, by its name in each backend.
#[derive(Clone, Copy, Debug)]
struct Table {
    /// In whatsapp-rust's SQLite backend (whatsapp-rust-sqlite-storage 0.7).
    sqlite: &'static str,
    /// In ours on PostgreSQL (`src/store/session/postgres_migrations`).
    postgres: &'static str,
    /// Its presence shows the store was created (checked by [`health`]).
    core: bool,
}

const fn table(sqlite: &'static str, postgres: &'static str, core: bool) -> Table {
    Table {
        sqlite,
        postgres,
        core,
    }
}

/// Every table of the session store, children first (the order a wipe deletes in).
const TABLES: [Table; 18] = [
    table("pending_inbound_messages", "wa_pending_inbound", false),
    table("msg_secrets", "wa_msg_secrets", false),
    table("sent_messages", "wa_sent_messages", false),
    table("tc_tokens", "wa_tc_tokens", false),
    table("group_metadata", "wa_group_metadata", false),
    table("device_registry", "wa_device_registry", false),
    table("base_keys", "wa_base_keys", false),
    table("lid_pn_mapping", "wa_lid_pn_mapping", false),
    table("sender_key_devices", "wa_sender_key_devices", false),
    table(
        "app_state_mutation_macs",
        "wa_app_state_mutation_macs",
        false,
    ),
    table("app_state_versions", "wa_app_state_versions", false),
    table("app_state_keys", "wa_app_state_keys", false),
    table("sender_keys", "wa_sender_keys", true),
    table("signed_prekeys", "wa_signed_prekeys", false),
    table("prekeys", "wa_prekeys", true),
    table("sessions", "wa_sessions", true),
    table("identities", "wa_identities", true),
    table("device", "wa_device", true),
];

/// The names of the core tables in one backend, parents first (`device` leads).
fn core_tables(name: fn(&Table) -> &'static str) -> Vec<&'static str> {
    TABLES.iter().rev().filter(|t| t.core).map(name).collect()
}

/// Whether the session database answers and holds the session tables.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SessionHealth {
    pub backend: BackendKind,
    /// The URL with any password hidden.
    pub location: String,
    pub connected: bool,
    /// True once the session tables exist (the engine creates them when it first opens).
    pub initialized: bool,
    pub missing_tables: Vec<String>,
    pub error: Option<String>,
}

/// Checks the session database without creating or changing anything.
pub async fn health(url: &DatabaseUrl) -> SessionHealth {
    let mut health = SessionHealth {
        backend: url.kind().unwrap_or(BackendKind::Sqlite),
        location: url.redacted(),
        connected: false,
        initialized: false,
        missing_tables: Vec::new(),
        error: None,
    };
    let (wanted, present) = match locate(url) {
        Ok(Location::Sqlite(path)) => (core_tables(|t| t.sqlite), sqlite_tables(path).await),
        Ok(Location::Postgres) => (core_tables(|t| t.postgres), postgres_tables(url).await),
        Err(err) => (Vec::new(), Err(err)),
    };
    match present {
        Ok(present) => {
            health.connected = true;
            health.missing_tables = wanted
                .iter()
                .filter(|t| !present.iter().any(|p| p == *t))
                .map(|t| (*t).to_owned())
                .collect();
            health.initialized = health.missing_tables.is_empty();
        }
        Err(err) => health.error = Some(err.to_string()),
    }
    health
}

async fn sqlite_tables(path: PathBuf) -> Result<Vec<String>, StoreError> {
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Err(StoreError::Unavailable(format!(
                "{} does not exist yet",
                path.display()
            )));
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(|err| StoreError::Other(err.to_string()))?;
        stmt.query_map([], |row| row.get::<_, String>(0))
            .and_then(Iterator::collect)
            .map_err(|err| StoreError::Other(err.to_string()))
    })
    .await
    .map_err(|err| StoreError::Other(format!("check task failed: {err}")))?
}

async fn postgres_tables(url: &DatabaseUrl) -> Result<Vec<String>, StoreError> {
    let pool = crate::store::pg::connect(url).await?;
    let client = pool
        .get()
        .await
        .map_err(|err| crate::store::pg::pool_error(&err))?;
    let rows = client
        .query(
            "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )
        .await
        .map_err(|err| crate::store::pg::query_error(&err))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// whatsapp-rust's SQLite backend on `path`, with the file made private first: it holds the
/// keys that let anyone act as this linked device.
async fn open_sqlite(path: &Path) -> Result<whatsapp_rust_sqlite_storage::SqliteStore, StoreError> {
    let owned = path.to_owned();
    let lock = tokio::task::spawn_blocking(move || {
        crate::store::sqlite::prepare_private_file(&owned)?;
        crate::store::sqlite::lock_directory(&owned)
    })
    .await
    .map_err(|err| StoreError::Other(format!("open task failed: {err}")))??;
    let location = path
        .to_str()
        .ok_or_else(|| StoreError::Other(format!("{} is not a UTF-8 path", path.display())))?;
    // SQLite would read a leading `file:` as a URI with options, not as a file name.
    let location = if location.starts_with("file:") {
        format!("./{location}")
    } else {
        location.to_owned()
    };
    let opened = whatsapp_rust_sqlite_storage::SqliteStore::new(&location)
        .await
        .map_err(|err| from_wacore(&err, &path.display().to_string()));
    drop(lock);
    opened
}

/// whatsapp-rust's storage error in our terms, with its cause chain spelled out (its own
/// messages are generic, e.g. "database connection error").
fn from_wacore(err: &WaStoreError, location: &str) -> StoreError {
    let text = format!("session store {location}: {}", describe(err));
    match err {
        WaStoreError::Connection(_) | WaStoreError::Io(_) => StoreError::Unavailable(text),
        _ => StoreError::Other(text),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[tokio::test]
    async fn sqlite_session_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/whatsapp.db");
        let url = DatabaseUrl::parse("t", &format!("sqlite://{}", path.display())).unwrap();
        let backend = open(&url).await.unwrap();
        assert!(!backend.exists().await.unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[tokio::test]
    async fn unreadable_location_is_reported_without_panic() {
        let url = DatabaseUrl::parse("t", "sqlite:///proc/no/such/dir/whatsapp.db").unwrap();
        let err = open(&url).await.err().expect("cannot open under /proc");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("/proc/no/such/dir"), "{err}");
    }
}
