//! Removing the WhatsApp session (device identity and Signal state) from its database, so the
//! next start links as a new device.
//!
//! whatsapp-rust can deregister a device but leaves its keys in storage, and a device that the
//! phone removed cannot be reused: its identity must go. The archive lives beside the session
//! (in the same SQLite file by default) and is left alone.

use crate::config::DatabaseUrl;
use crate::store::{Location, StoreError, locate};

/// Deletes every row of the session store at `url`, in one transaction.
pub async fn wipe_session(url: &DatabaseUrl) -> Result<(), StoreError> {
    match locate(url)? {
        Location::Sqlite(path) => tokio::task::spawn_blocking(move || wipe_sqlite(&path))
            .await
            .map_err(|err| StoreError::Other(format!("session wipe stopped: {err}")))?,
        Location::Postgres => wipe_postgres(url).await,
    }
}

fn wipe_sqlite(path: &std::path::Path) -> Result<(), StoreError> {
    let failed = |err: rusqlite::Error| {
        StoreError::Unavailable(format!("wiping the session in {}: {err}", path.display()))
    };
    let mut conn = rusqlite::Connection::open(path).map_err(failed)?;
    // The library's own connections may be mid-write; wait for them rather than fail.
    conn.busy_timeout(std::time::Duration::from_secs(15))
        .map_err(failed)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(failed)?;
    for table in super::TABLES.iter().map(|t| t.sqlite) {
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [table],
                |row| row.get(0),
            )
            .map_err(failed)?;
        if exists {
            tx.execute(&format!("DELETE FROM \"{table}\""), [])
                .map_err(failed)?;
        }
    }
    tx.commit().map_err(failed)
}

async fn wipe_postgres(url: &DatabaseUrl) -> Result<(), StoreError> {
    let pool = crate::store::pg::connect(url).await?;
    let mut conn = pool
        .get()
        .await
        .map_err(|err| crate::store::pg::pool_error(&err))?;
    let tx = conn
        .transaction()
        .await
        .map_err(|err| crate::store::pg::query_error(&err))?;
    for table in super::TABLES.iter().map(|t| t.postgres) {
        let exists = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(|err| crate::store::pg::query_error(&err))?
            .get::<_, bool>(0);
        if exists {
            tx.execute(&format!("DELETE FROM {table}"), &[])
                .await
                .map_err(|err| crate::store::pg::query_error(&err))?;
        }
    }
    tx.commit()
        .await
        .map_err(|err| crate::store::pg::query_error(&err))
}
