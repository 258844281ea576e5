//! whatsapp-rust's storage `Backend` on PostgreSQL: every method of its five store traits.
//!
//! Semantics follow whatsapp-rust's SQLite backend, method by method: the same upsert and
//! merge rules, `None`/empty results for missing rows, and one transaction wherever it writes
//! several rows together. Read-then-write steps it guards with an immediate transaction become
//! single statements here (`INSERT … ON CONFLICT … WHERE`, `DELETE … RETURNING`), which
//! PostgreSQL executes atomically. Batches run in one transaction with their statements
//! pipelined on the connection, applied in order, so a key repeated within a batch ends with
//! its last value exactly as the SQLite loop does.
//!
//! Errors: a lost or refused connection reaches whatsapp-rust as
//! `StoreError::Connection`, anything else as `StoreError::Database`, both carrying our
//! [`crate::store::StoreError`] with the driver's message. Nothing here panics on bad data.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Object, Pool, Transaction};
use futures_util::future::try_join_all;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use wacore::store::Device;
use wacore::store::device::{CachedNoiseCert, CachedServerCertChain};
use wacore::store::error::{Result as WaResult, StoreError as WaStoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceInfo, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry,
};

use super::DEVICE_ID;
use crate::config::DatabaseUrl;
use crate::store::{StoreError, pg};

mod embedded {
    refinery::embed_migrations!("src/store/session/postgres_migrations");
}

/// refinery's history table for this migration set; the archive keeps its own.
const MIGRATION_TABLE: &str = "wa_session_schema_history";
/// The advisory lock held while this set migrates.
const MIGRATION_LOCK: i64 = pg::advisory_key("whatsapp-mcp session schema");

/// Length of an app-state master key; other lengths are unusable (see `get_sync_key`).
const APP_STATE_KEY_LEN: usize = 32;
/// Length of an app-state LT-hash.
const HASH_STATE_LEN: usize = 128;

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// The session store on a PostgreSQL pool.
#[derive(Clone)]
pub struct PgSessionStore {
    pool: Pool,
    device_id: i32,
}

impl std::fmt::Debug for PgSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSessionStore")
            .field("device_id", &self.device_id)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgSessionStore {
    /// Connects to `url` and applies pending migrations (one process at a time).
    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let pool = pg::connect(url).await?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool (e.g. one shared with the archive), applying pending migrations.
    pub async fn with_pool(pool: Pool) -> Result<Self, StoreError> {
        let mut runner = embedded::migrations::runner();
        runner.set_migration_table_name(MIGRATION_TABLE);
        pg::migrate(&pool, &runner, MIGRATION_LOCK)
            .await
            .map_err(|err| match err {
                StoreError::Unavailable(text) => {
                    StoreError::Unavailable(format!("session schema: {text}"))
                }
                StoreError::NotFound(text)
                | StoreError::Conflict(text)
                | StoreError::Other(text) => StoreError::Other(format!("session schema: {text}")),
            })?;
        Ok(Self {
            pool,
            device_id: DEVICE_ID,
        })
    }

    async fn client(&self) -> WaResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|err| wa(pg::pool_error(&err)))
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> WaResult<u64> {
        let conn = self.client().await?;
        let statement = conn.prepare_cached(sql).await.map_err(db)?;
        conn.execute(&statement, params).await.map_err(db)
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> WaResult<Option<Row>> {
        let conn = self.client().await?;
        let statement = conn.prepare_cached(sql).await.map_err(db)?;
        conn.query_opt(&statement, params).await.map_err(db)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> WaResult<Vec<Row>> {
        let conn = self.client().await?;
        let statement = conn.prepare_cached(sql).await.map_err(db)?;
        conn.query(&statement, params).await.map_err(db)
    }

    /// Runs `sql` once per parameter row inside one transaction. Returns rows affected.
    async fn execute_batch<'p>(
        &self,
        sql: &str,
        rows: impl IntoIterator<Item = Params<'p>>,
    ) -> WaResult<u64> {
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.map_err(db)?;
        let affected = execute_each(&tx, sql, rows).await?;
        tx.commit().await.map_err(db)?;
        Ok(affected)
    }

    /// One optional `bytea` column of one optional row.
    async fn bytes_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> WaResult<Option<Vec<u8>>> {
        match self.query_opt(sql, params).await? {
            Some(row) => Ok(Some(get(&row, 0)?)),
            None => Ok(None),
        }
    }
}

/// Sends every row's statement before awaiting any reply (pipelining), in order, on `tx`.
async fn execute_each<'p>(
    tx: &Transaction<'_>,
    sql: &str,
    rows: impl IntoIterator<Item = Params<'p>>,
) -> WaResult<u64> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    let pending = rows
        .into_iter()
        .map(|params| tx.execute_raw(&statement, params));
    let counts = try_join_all(pending).await.map_err(db)?;
    Ok(counts.into_iter().sum())
}

/// Our error at whatsapp-rust's boundary: unavailability as a connection error so its callers
/// can tell an outage from a bad statement.
fn wa(err: StoreError) -> WaStoreError {
    match err {
        StoreError::Unavailable(_) => WaStoreError::Connection(Box::new(err)),
        _ => WaStoreError::Database(Box::new(err)),
    }
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "taken by value to be passed to map_err by name"
)]
fn db(err: tokio_postgres::Error) -> WaStoreError {
    wa(pg::query_error(&err))
}

fn get<'r, T: FromSql<'r>>(row: &'r Row, index: usize) -> WaResult<T> {
    row.try_get(index).map_err(db)
}

fn named<'r, T: FromSql<'r>>(row: &'r Row, name: &str) -> WaResult<T> {
    row.try_get(name).map_err(db)
}

fn to_u32(value: i64, what: &str) -> WaResult<u32> {
    u32::try_from(value)
        .map_err(|_| WaStoreError::Validation(format!("{what} {value} is out of range")))
}

fn count(affected: u64) -> u32 {
    u32::try_from(affected).unwrap_or(u32::MAX)
}

fn now() -> i64 {
    wacore::time::now_secs()
}

// --- device row ---------------------------------------------------------------------------------

/// The `wa_device` columns after `id`, in the order `DeviceRow::params` binds them.
const DEVICE_COLUMNS: [&str; 31] = [
    "lid",
    "pn",
    "registration_id",
    "noise_key",
    "identity_key",
    "signed_pre_key",
    "signed_pre_key_id",
    "signed_pre_key_signature",
    "adv_secret_key",
    "account",
    "push_name",
    "app_version_primary",
    "app_version_secondary",
    "app_version_tertiary",
    "app_version_last_fetched_ms",
    "edge_routing_info",
    "props_hash",
    "next_pre_key_id",
    "first_unupload_pre_key_id",
    "server_has_prekeys",
    "nct_salt",
    "cert_intermediate_key",
    "cert_intermediate_not_before",
    "cert_intermediate_not_after",
    "cert_leaf_key",
    "cert_leaf_not_before",
    "cert_leaf_not_after",
    "login_counter",
    "lid_migrated",
    "last_signed_pre_key_rotation_ms",
    "read_receipts_disabled",
];

/// `INSERT` of a full device row; `create` uses it bare, `save` with the upsert tail.
static DEVICE_INSERT: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=DEVICE_COLUMNS.len() + 1)
        .map(|n| format!("${n}"))
        .collect();
    format!(
        "INSERT INTO wa_device (id, {}) VALUES ({})",
        DEVICE_COLUMNS.join(", "),
        placeholders.join(", ")
    )
});

static DEVICE_UPSERT: LazyLock<String> = LazyLock::new(|| {
    let updates: Vec<String> = DEVICE_COLUMNS
        .iter()
        .map(|column| format!("{column} = EXCLUDED.{column}"))
        .collect();
    format!(
        "{} ON CONFLICT (id) DO UPDATE SET {}",
        *DEVICE_INSERT,
        updates.join(", ")
    )
});

static DEVICE_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM wa_device WHERE id = $1",
        DEVICE_COLUMNS.join(", ")
    )
});

/// A `Device` flattened into column values (owned, so the parameters can borrow them).
struct DeviceRow {
    lid: String,
    pn: String,
    registration_id: i64,
    noise_key: Vec<u8>,
    identity_key: Vec<u8>,
    signed_pre_key: Vec<u8>,
    signed_pre_key_id: i64,
    signed_pre_key_signature: Vec<u8>,
    adv_secret_key: Vec<u8>,
    account: Option<Vec<u8>>,
    push_name: String,
    app_version_primary: i64,
    app_version_secondary: i64,
    app_version_tertiary: i64,
    app_version_last_fetched_ms: i64,
    edge_routing_info: Option<Vec<u8>>,
    props_hash: Option<String>,
    next_pre_key_id: i64,
    first_unupload_pre_key_id: i64,
    server_has_prekeys: bool,
    nct_salt: Option<Vec<u8>>,
    cert_intermediate_key: Option<Vec<u8>>,
    cert_intermediate_not_before: Option<i64>,
    cert_intermediate_not_after: Option<i64>,
    cert_leaf_key: Option<Vec<u8>>,
    cert_leaf_not_before: Option<i64>,
    cert_leaf_not_after: Option<i64>,
    login_counter: i32,
    lid_migrated: bool,
    last_signed_pre_key_rotation_ms: i64,
    read_receipts_disabled: bool,
}

/// Private key then public key, 32 bytes each: the layout whatsapp-rust's SQLite backend uses,
/// so a row can be compared or moved between backends by hand.
fn keypair_bytes(pair: &KeyPair) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(&pair.private_key.serialize()[..]);
    bytes.extend_from_slice(pair.public_key.public_key_bytes());
    bytes
}

fn keypair_from(bytes: &[u8], what: &str) -> WaResult<KeyPair> {
    if bytes.len() != 64 {
        return Err(WaStoreError::Validation(format!(
            "{what} key pair has length {} (expected 64)",
            bytes.len()
        )));
    }
    let private = PrivateKey::deserialize(&bytes[..32])
        .map_err(|err| WaStoreError::Serialization(Box::new(err)))?;
    let public = PublicKey::from_djb_public_key_bytes(&bytes[32..])
        .map_err(|err| WaStoreError::Serialization(Box::new(err)))?;
    Ok(KeyPair::new(public, private))
}

impl DeviceRow {
    fn from_device(device: &Device) -> Self {
        let chain = device.server_cert_chain.as_ref();
        Self {
            lid: device
                .lid
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            pn: device
                .pn
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            registration_id: i64::from(device.registration_id),
            noise_key: keypair_bytes(&device.noise_key),
            identity_key: keypair_bytes(&device.identity_key),
            signed_pre_key: keypair_bytes(&device.signed_pre_key),
            signed_pre_key_id: i64::from(device.signed_pre_key_id),
            signed_pre_key_signature: device.signed_pre_key_signature.to_vec(),
            adv_secret_key: device.adv_secret_key.to_vec(),
            account: device
                .account
                .as_deref()
                .map(wacore::store::device::account_serde::to_bytes),
            push_name: device.push_name.clone(),
            app_version_primary: i64::from(device.app_version_primary),
            app_version_secondary: i64::from(device.app_version_secondary),
            app_version_tertiary: i64::from(device.app_version_tertiary),
            app_version_last_fetched_ms: device.app_version_last_fetched_ms,
            edge_routing_info: device.edge_routing_info.clone(),
            props_hash: device.props_hash.clone(),
            next_pre_key_id: i64::from(device.next_pre_key_id),
            first_unupload_pre_key_id: i64::from(device.first_unupload_pre_key_id),
            server_has_prekeys: device.server_has_prekeys,
            nct_salt: device.nct_salt.clone(),
            cert_intermediate_key: chain.map(|c| c.intermediate.key.to_vec()),
            cert_intermediate_not_before: chain.map(|c| c.intermediate.not_before),
            cert_intermediate_not_after: chain.map(|c| c.intermediate.not_after),
            cert_leaf_key: chain.map(|c| c.leaf.key.to_vec()),
            cert_leaf_not_before: chain.map(|c| c.leaf.not_before),
            cert_leaf_not_after: chain.map(|c| c.leaf.not_after),
            login_counter: device.login_counter,
            lid_migrated: device.lid_migrated,
            last_signed_pre_key_rotation_ms: device.last_signed_pre_key_rotation_ms,
            read_receipts_disabled: device.read_receipts_disabled,
        }
    }

    /// `id` followed by the columns in `DEVICE_COLUMNS` order.
    fn params<'a>(&'a self, id: &'a i32) -> Params<'a> {
        vec![
            id,
            &self.lid,
            &self.pn,
            &self.registration_id,
            &self.noise_key,
            &self.identity_key,
            &self.signed_pre_key,
            &self.signed_pre_key_id,
            &self.signed_pre_key_signature,
            &self.adv_secret_key,
            &self.account,
            &self.push_name,
            &self.app_version_primary,
            &self.app_version_secondary,
            &self.app_version_tertiary,
            &self.app_version_last_fetched_ms,
            &self.edge_routing_info,
            &self.props_hash,
            &self.next_pre_key_id,
            &self.first_unupload_pre_key_id,
            &self.server_has_prekeys,
            &self.nct_salt,
            &self.cert_intermediate_key,
            &self.cert_intermediate_not_before,
            &self.cert_intermediate_not_after,
            &self.cert_leaf_key,
            &self.cert_leaf_not_before,
            &self.cert_leaf_not_after,
            &self.login_counter,
            &self.lid_migrated,
            &self.last_signed_pre_key_rotation_ms,
            &self.read_receipts_disabled,
        ]
    }
}

fn device_from_row(row: &Row) -> WaResult<Device> {
    let lid: String = named(row, "lid")?;
    let pn: String = named(row, "pn")?;
    let signature: Vec<u8> = named(row, "signed_pre_key_signature")?;
    let adv_secret: Vec<u8> = named(row, "adv_secret_key")?;
    let account: Option<Vec<u8>> = named(row, "account")?;
    let account = account
        .map(|bytes| {
            wacore::store::device::account_serde::from_bytes(&bytes)
                .map_err(|err| WaStoreError::Serialization(Box::new(err)))
        })
        .transpose()?;
    let tertiary: i64 = named(row, "app_version_tertiary")?;
    Ok(Device {
        // An unparsable JID reads as unset, as in the SQLite backend: the device re-learns it.
        pn: (!pn.is_empty()).then(|| pn.parse().ok()).flatten(),
        lid: (!lid.is_empty()).then(|| lid.parse().ok()).flatten(),
        registration_id: to_u32(named(row, "registration_id")?, "registration_id")?,
        noise_key: keypair_from(&named::<Vec<u8>>(row, "noise_key")?, "noise")?,
        identity_key: keypair_from(&named::<Vec<u8>>(row, "identity_key")?, "identity")?,
        signed_pre_key: keypair_from(&named::<Vec<u8>>(row, "signed_pre_key")?, "signed pre-key")?,
        signed_pre_key_id: to_u32(named(row, "signed_pre_key_id")?, "signed_pre_key_id")?,
        signed_pre_key_signature: signature.try_into().map_err(|_| {
            WaStoreError::Validation("Invalid signed_pre_key_signature length".to_owned())
        })?,
        adv_secret_key: adv_secret
            .try_into()
            .map_err(|_| WaStoreError::Validation("Invalid adv_secret_key length".to_owned()))?,
        account: account.map(Arc::new),
        push_name: named(row, "push_name")?,
        app_version_primary: to_u32(named(row, "app_version_primary")?, "app_version_primary")?,
        app_version_secondary: to_u32(
            named(row, "app_version_secondary")?,
            "app_version_secondary",
        )?,
        // Same leniency as the SQLite backend: an impossible value becomes 0 and is refetched.
        app_version_tertiary: u32::try_from(tertiary).unwrap_or(0),
        app_version_last_fetched_ms: named(row, "app_version_last_fetched_ms")?,
        device_props: Arc::new(wacore::store::device::DEVICE_PROPS.clone()),
        client_profile: wacore::client_profile::ClientProfile::web(),
        edge_routing_info: named(row, "edge_routing_info")?,
        props_hash: named(row, "props_hash")?,
        next_pre_key_id: to_u32(named(row, "next_pre_key_id")?, "next_pre_key_id")?,
        first_unupload_pre_key_id: to_u32(
            named(row, "first_unupload_pre_key_id")?,
            "first_unupload_pre_key_id",
        )?,
        server_has_prekeys: named(row, "server_has_prekeys")?,
        nct_salt: named(row, "nct_salt")?,
        nct_salt_sync_seen: false,
        server_cert_chain: cert_chain_from_row(row)?,
        login_counter: named(row, "login_counter")?,
        lid_migrated: named(row, "lid_migrated")?,
        last_signed_pre_key_rotation_ms: named(row, "last_signed_pre_key_rotation_ms")?,
        read_receipts_disabled: named(row, "read_receipts_disabled")?,
    })
}

/// The cached certificate chain is only a shortcut for the next handshake: an incomplete or
/// malformed one reads as absent (the next connect does the full handshake and stores it
/// again) rather than stopping the device from loading.
fn cert_chain_from_row(row: &Row) -> WaResult<Option<CachedServerCertChain>> {
    let cert = |prefix: &str| -> WaResult<Option<CachedNoiseCert>> {
        let key: Option<Vec<u8>> = named(row, &format!("cert_{prefix}_key"))?;
        let not_before: Option<i64> = named(row, &format!("cert_{prefix}_not_before"))?;
        let not_after: Option<i64> = named(row, &format!("cert_{prefix}_not_after"))?;
        Ok(match (key, not_before, not_after) {
            (Some(key), Some(not_before), Some(not_after)) => match <[u8; 32]>::try_from(key) {
                Ok(key) => Some(CachedNoiseCert {
                    key,
                    not_before,
                    not_after,
                }),
                Err(key) => {
                    tracing::warn!(
                        length = key.len(),
                        "cached server certificate key has the wrong length; ignoring the cache"
                    );
                    None
                }
            },
            _ => None,
        })
    };
    Ok(match (cert("intermediate")?, cert("leaf")?) {
        (Some(intermediate), Some(leaf)) => Some(CachedServerCertChain { intermediate, leaf }),
        _ => None,
    })
}

// --- SignalStore -------------------------------------------------------------------------------

const PUT_IDENTITY: &str = "INSERT INTO wa_identities (device_id, address, key) VALUES ($1, $2, $3) \
     ON CONFLICT (device_id, address) DO UPDATE SET key = EXCLUDED.key";
const PUT_SESSION: &str = "INSERT INTO wa_sessions (device_id, address, record) VALUES ($1, $2, $3) \
     ON CONFLICT (device_id, address) DO UPDATE SET record = EXCLUDED.record";
const STORE_PREKEY: &str = "INSERT INTO wa_prekeys (device_id, id, record, uploaded) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (device_id, id) DO UPDATE SET record = EXCLUDED.record, uploaded = EXCLUDED.uploaded";
const PUT_SENDER_KEY: &str = "INSERT INTO wa_sender_keys (device_id, address, record) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (device_id, address) DO UPDATE SET record = EXCLUDED.record";

#[async_trait]
impl SignalStore for PgSessionStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> WaResult<()> {
        let key = &key[..];
        self.execute(PUT_IDENTITY, &[&self.device_id, &address, &key])
            .await?;
        Ok(())
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> WaResult<()> {
        if identities.is_empty() {
            return Ok(());
        }
        let keys: Vec<(&str, &[u8])> = identities
            .iter()
            .map(|(address, key)| (address.as_ref(), &key[..]))
            .collect();
        self.execute_batch(
            PUT_IDENTITY,
            keys.iter()
                .map(|(address, key)| vec![&self.device_id as _, address as _, key as _]),
        )
        .await?;
        Ok(())
    }

    async fn load_identity(&self, address: &str) -> WaResult<Option<[u8; 32]>> {
        let key = self
            .bytes_opt(
                "SELECT key FROM wa_identities WHERE device_id = $1 AND address = $2",
                &[&self.device_id, &address],
            )
            .await?;
        key.map(|key| {
            <[u8; 32]>::try_from(key).map_err(|key| {
                WaStoreError::Validation(format!(
                    "identity key for '{address}' has invalid length {} (expected 32)",
                    key.len()
                ))
            })
        })
        .transpose()
    }

    async fn delete_identity(&self, address: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_identities WHERE device_id = $1 AND address = $2",
            &[&self.device_id, &address],
        )
        .await?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> WaResult<Option<Bytes>> {
        Ok(self
            .bytes_opt(
                "SELECT record FROM wa_sessions WHERE device_id = $1 AND address = $2",
                &[&self.device_id, &address],
            )
            .await?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> WaResult<()> {
        self.execute(PUT_SESSION, &[&self.device_id, &address, &session])
            .await?;
        Ok(())
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, &[u8])> = sessions
            .iter()
            .map(|(address, record)| (address.as_ref(), record.as_ref()))
            .collect();
        self.execute_batch(
            PUT_SESSION,
            rows.iter()
                .map(|(address, record)| vec![&self.device_id as _, address as _, record as _]),
        )
        .await?;
        Ok(())
    }

    async fn delete_session(&self, address: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_sessions WHERE device_id = $1 AND address = $2",
            &[&self.device_id, &address],
        )
        .await?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> WaResult<bool> {
        let row = self
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM wa_sessions WHERE device_id = $1 AND address = $2)",
                &[&self.device_id, &address],
            )
            .await?;
        row.map_or(Ok(false), |row| get(&row, 0))
    }

    async fn has_signal_state_for_user(&self, user: &str) -> WaResult<bool> {
        // Addresses are `user@server` (device 0) or `user:device@server`. starts_with avoids
        // LIKE, whose wildcards would need escaping.
        let at = format!("{user}@");
        let colon = format!("{user}:");
        let row = self
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM wa_sessions WHERE device_id = $1 \
                     AND (starts_with(address, $2) OR starts_with(address, $3))) \
                 OR EXISTS (SELECT 1 FROM wa_identities WHERE device_id = $1 \
                     AND (starts_with(address, $2) OR starts_with(address, $3)))",
                &[&self.device_id, &at, &colon],
            )
            .await?;
        row.map_or(Ok(false), |row| get(&row, 0))
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> WaResult<()> {
        self.execute(
            STORE_PREKEY,
            &[&self.device_id, &i64::from(id), &record, &uploaded],
        )
        .await?;
        Ok(())
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> WaResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, &[u8])> = keys
            .iter()
            .map(|(id, record)| (i64::from(*id), record.as_ref()))
            .collect();
        self.execute_batch(
            STORE_PREKEY,
            rows.iter().map(|(id, record)| {
                vec![&self.device_id as _, id as _, record as _, &uploaded as _]
            }),
        )
        .await?;
        Ok(())
    }

    async fn load_prekey(&self, id: u32) -> WaResult<Option<Bytes>> {
        Ok(self
            .bytes_opt(
                "SELECT record FROM wa_prekeys WHERE device_id = $1 AND id = $2",
                &[&self.device_id, &i64::from(id)],
            )
            .await?
            .map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> WaResult<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().copied().map(i64::from).collect();
        let rows = self
            .query(
                "SELECT id, record FROM wa_prekeys WHERE device_id = $1 AND id = ANY($2)",
                &[&self.device_id, &ids],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    to_u32(get(row, 0)?, "pre-key id")?,
                    Bytes::from(get::<Vec<u8>>(row, 1)?),
                ))
            })
            .collect()
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> WaResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // UPDATE only: a key consumed since the upload snapshot must stay deleted.
        let ids: Vec<i64> = ids.iter().copied().map(i64::from).collect();
        self.execute(
            "UPDATE wa_prekeys SET uploaded = TRUE WHERE device_id = $1 AND id = ANY($2)",
            &[&self.device_id, &ids],
        )
        .await?;
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_prekeys WHERE device_id = $1 AND id = $2",
            &[&self.device_id, &i64::from(id)],
        )
        .await?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> WaResult<u32> {
        let row = self
            .query_opt(
                "SELECT COALESCE(MAX(id), 0) FROM wa_prekeys WHERE device_id = $1",
                &[&self.device_id],
            )
            .await?;
        match row {
            Some(row) => to_u32(get(&row, 0)?, "pre-key id"),
            None => Ok(0),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> WaResult<()> {
        self.execute(
            "INSERT INTO wa_signed_prekeys (device_id, id, record) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, id) DO UPDATE SET record = EXCLUDED.record",
            &[&self.device_id, &i64::from(id), &record],
        )
        .await?;
        Ok(())
    }

    async fn load_signed_prekey(&self, id: u32) -> WaResult<Option<Vec<u8>>> {
        self.bytes_opt(
            "SELECT record FROM wa_signed_prekeys WHERE device_id = $1 AND id = $2",
            &[&self.device_id, &i64::from(id)],
        )
        .await
    }

    async fn load_all_signed_prekeys(&self) -> WaResult<Vec<(u32, Vec<u8>)>> {
        let rows = self
            .query(
                "SELECT id, record FROM wa_signed_prekeys WHERE device_id = $1 ORDER BY id",
                &[&self.device_id],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((to_u32(get(row, 0)?, "signed pre-key id")?, get(row, 1)?)))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_signed_prekeys WHERE device_id = $1 AND id = $2",
            &[&self.device_id, &i64::from(id)],
        )
        .await?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> WaResult<()> {
        self.execute(PUT_SENDER_KEY, &[&self.device_id, &address, &record])
            .await?;
        Ok(())
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        if sender_keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, &[u8])> = sender_keys
            .iter()
            .map(|(address, record)| (address.as_ref(), record.as_ref()))
            .collect();
        self.execute_batch(
            PUT_SENDER_KEY,
            rows.iter()
                .map(|(address, record)| vec![&self.device_id as _, address as _, record as _]),
        )
        .await?;
        Ok(())
    }

    async fn get_sender_key(&self, address: &str) -> WaResult<Option<Vec<u8>>> {
        self.bytes_opt(
            "SELECT record FROM wa_sender_keys WHERE device_id = $1 AND address = $2",
            &[&self.device_id, &address],
        )
        .await
    }

    async fn delete_sender_key(&self, address: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_sender_keys WHERE device_id = $1 AND address = $2",
            &[&self.device_id, &address],
        )
        .await?;
        Ok(())
    }
}

// --- AppSyncStore ------------------------------------------------------------------------------

const PUT_MUTATION_MAC: &str = "INSERT INTO wa_app_state_mutation_macs \
     (device_id, name, index_mac, version, value_mac) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (device_id, name, index_mac) \
     DO UPDATE SET version = EXCLUDED.version, value_mac = EXCLUDED.value_mac";

#[async_trait]
impl AppSyncStore for PgSessionStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> WaResult<Option<AppStateSyncKey>> {
        let row = self
            .query_opt(
                "SELECT key_data, fingerprint, timestamp FROM wa_app_state_keys \
                 WHERE device_id = $1 AND key_id = $2",
                &[&self.device_id, &key_id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key = AppStateSyncKey {
            key_data: get(&row, 0)?,
            fingerprint: get(&row, 1)?,
            timestamp: get(&row, 2)?,
        };
        // Like the SQLite backend, a key that is not a 32-byte master key reads as absent, so
        // the sync path asks the phone for it again instead of deriving unusable sub-keys.
        if key.key_data.len() != APP_STATE_KEY_LEN {
            tracing::warn!(
                length = key.key_data.len(),
                "stored app-state sync key has the wrong length; treating it as absent"
            );
            return Ok(None);
        }
        Ok(Some(key))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> WaResult<()> {
        self.execute(
            "INSERT INTO wa_app_state_keys (device_id, key_id, key_data, fingerprint, timestamp) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, key_id) DO UPDATE SET \
             key_data = EXCLUDED.key_data, fingerprint = EXCLUDED.fingerprint, \
             timestamp = EXCLUDED.timestamp",
            &[
                &self.device_id,
                &key_id,
                &key.key_data,
                &key.fingerprint,
                &key.timestamp,
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_version(&self, name: &str) -> WaResult<HashState> {
        let row = self
            .query_opt(
                "SELECT version, hash, index_keys, index_values, mac_mismatch_fatal \
                 FROM wa_app_state_versions WHERE device_id = $1 AND name = $2",
                &[&self.device_id, &name],
            )
            .await?;
        let Some(row) = row else {
            return Ok(HashState::default());
        };
        let version: i64 = get(&row, 0)?;
        let hash: Vec<u8> = get(&row, 1)?;
        let keys: Vec<String> = get(&row, 2)?;
        let values: Vec<Vec<u8>> = get(&row, 3)?;
        let (Ok(version), Ok(hash), true) = (
            u64::try_from(version),
            <[u8; HASH_STATE_LEN]>::try_from(hash),
            keys.len() == values.len(),
        ) else {
            // As in the SQLite backend: an unusable state resets the collection, which then
            // syncs again from version 0.
            tracing::warn!(
                collection = name,
                "stored app-state version is malformed; resetting"
            );
            return Ok(HashState::default());
        };
        Ok(HashState {
            version,
            hash,
            index_value_map: keys.into_iter().zip(values).collect(),
            mac_mismatch_fatal: get(&row, 4)?,
        })
    }

    async fn set_version(&self, name: &str, state: HashState) -> WaResult<()> {
        let version = i64::try_from(state.version).map_err(|_| {
            WaStoreError::Validation(format!("app-state version {} is too large", state.version))
        })?;
        let hash = &state.hash[..];
        let (keys, values): (Vec<&str>, Vec<&[u8]>) = state
            .index_value_map
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_slice()))
            .unzip();
        self.execute(
            "INSERT INTO wa_app_state_versions \
             (device_id, name, version, hash, index_keys, index_values, mac_mismatch_fatal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, name) DO UPDATE SET \
             version = EXCLUDED.version, hash = EXCLUDED.hash, index_keys = EXCLUDED.index_keys, \
             index_values = EXCLUDED.index_values, \
             mac_mismatch_fatal = EXCLUDED.mac_mismatch_fatal",
            &[
                &self.device_id,
                &name,
                &version,
                &hash,
                &keys,
                &values,
                &state.mac_mismatch_fatal,
            ],
        )
        .await?;
        Ok(())
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> WaResult<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let version = i64::try_from(version).map_err(|_| {
            WaStoreError::Validation(format!("app-state version {version} is too large"))
        })?;
        self.execute_batch(
            PUT_MUTATION_MAC,
            mutations.iter().map(|mutation| {
                vec![
                    &self.device_id as _,
                    &name as _,
                    &mutation.index_mac as _,
                    &version as _,
                    &mutation.value_mac as _,
                ]
            }),
        )
        .await?;
        Ok(())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> WaResult<Option<Vec<u8>>> {
        self.bytes_opt(
            "SELECT value_mac FROM wa_app_state_mutation_macs \
             WHERE device_id = $1 AND name = $2 AND index_mac = $3",
            &[&self.device_id, &name, &index_mac],
        )
        .await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> WaResult<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<&[u8]> = index_macs.iter().map(|mac| &mac[..]).collect();
        let rows = self
            .query(
                "SELECT index_mac, value_mac FROM wa_app_state_mutation_macs \
                 WHERE device_id = $1 AND name = $2 AND index_mac = ANY($3)",
                &[&self.device_id, &name, &wanted],
            )
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let index: Vec<u8> = get(row, 0)?;
            // Only 32-byte keys were asked for, so any other length cannot be a match.
            if let Ok(index) = <[u8; 32]>::try_from(index) {
                found.insert(index, get(row, 1)?);
            }
        }
        Ok(found)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> WaResult<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        self.execute(
            "DELETE FROM wa_app_state_mutation_macs \
             WHERE device_id = $1 AND name = $2 AND index_mac = ANY($3)",
            &[&self.device_id, &name, &index_macs],
        )
        .await?;
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_app_state_mutation_macs WHERE device_id = $1 AND name = $2",
            &[&self.device_id, &name],
        )
        .await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> WaResult<Option<Vec<u8>>> {
        // The newest key that get_sync_key would return: unusable rows are skipped.
        self.bytes_opt(
            "SELECT key_id FROM wa_app_state_keys \
             WHERE device_id = $1 AND octet_length(key_data) = $2 \
             ORDER BY key_id DESC LIMIT 1",
            &[&self.device_id, &(APP_STATE_KEY_LEN as i32)],
        )
        .await
    }
}

// --- ProtocolStore -----------------------------------------------------------------------------

const SET_SENDER_KEY_STATUS: &str = "INSERT INTO wa_sender_key_devices \
     (device_id, group_jid, device_jid, has_key, updated_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (device_id, group_jid, device_jid) \
     DO UPDATE SET has_key = EXCLUDED.has_key, updated_at = EXCLUDED.updated_at";
const PUT_LID_MAPPING: &str = "INSERT INTO wa_lid_pn_mapping \
     (device_id, lid, phone_number, created_at, updated_at, learning_source) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id, lid) DO UPDATE SET \
     phone_number = EXCLUDED.phone_number, updated_at = EXCLUDED.updated_at, \
     learning_source = EXCLUDED.learning_source";
const UPDATE_DEVICE_LIST: &str = "INSERT INTO wa_device_registry \
     (device_id, user_id, devices, timestamp, phash, raw_id, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, user_id) DO UPDATE SET \
     devices = EXCLUDED.devices, timestamp = EXCLUDED.timestamp, phash = EXCLUDED.phash, \
     raw_id = EXCLUDED.raw_id, updated_at = EXCLUDED.updated_at";
/// A redelivered buffer entry replaces the old one and restarts its age, like SQLite's REPLACE.
const STORE_PENDING_INBOUND: &str = "INSERT INTO wa_pending_inbound \
     (device_id, chat, sender, id, message, inserted_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (device_id, chat, sender, id) \
     DO UPDATE SET message = EXCLUDED.message, inserted_at = EXCLUDED.inserted_at";
const DELETE_PENDING_INBOUND: &str = "DELETE FROM wa_pending_inbound \
     WHERE device_id = $1 AND chat = $2 AND sender = $3 AND id = $4";
const LID_MAPPING_COLUMNS: &str = "lid, phone_number, created_at, updated_at, learning_source";

fn lid_mapping_from_row(row: &Row) -> WaResult<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: get(row, 0)?,
        phone_number: get(row, 1)?,
        created_at: get(row, 2)?,
        updated_at: get(row, 3)?,
        learning_source: get(row, 4)?,
    })
}

/// A device list as bound values; `devices` is the JSON whatsapp-rust's types serialize to.
struct DeviceListRow {
    user: String,
    devices: String,
    timestamp: i64,
    phash: Option<String>,
    raw_id: Option<i64>,
}

impl DeviceListRow {
    fn new(record: DeviceListRecord) -> WaResult<Self> {
        Ok(Self {
            devices: serde_json::to_string(&record.devices)
                .map_err(|err| WaStoreError::Serialization(Box::new(err)))?,
            user: record.user,
            timestamp: record.timestamp,
            phash: record.phash,
            raw_id: record.raw_id.map(i64::from),
        })
    }

    fn params<'a>(&'a self, device_id: &'a i32, now: &'a i64) -> Params<'a> {
        vec![
            device_id,
            &self.user,
            &self.devices,
            &self.timestamp,
            &self.phash,
            &self.raw_id,
            now,
        ]
    }
}

#[async_trait]
impl ProtocolStore for PgSessionStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> WaResult<Vec<(String, bool)>> {
        let rows = self
            .query(
                "SELECT device_jid, has_key FROM wa_sender_key_devices \
                 WHERE device_id = $1 AND group_jid = $2",
                &[&self.device_id, &group_jid],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect()
    }

    async fn set_sender_key_status(
        &self,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> WaResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now();
        self.execute_batch(
            SET_SENDER_KEY_STATUS,
            entries.iter().map(|(device_jid, has_key)| {
                vec![
                    &self.device_id as _,
                    &group_jid as _,
                    device_jid as _,
                    has_key as _,
                    &now as _,
                ]
            }),
        )
        .await?;
        Ok(())
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_sender_key_devices WHERE device_id = $1 AND group_jid = $2",
            &[&self.device_id, &group_jid],
        )
        .await?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> WaResult<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        self.execute(
            "DELETE FROM wa_sender_key_devices WHERE device_id = $1 AND device_jid = ANY($2)",
            &[&self.device_id, &device_jids],
        )
        .await?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_sender_key_devices WHERE device_id = $1",
            &[&self.device_id],
        )
        .await?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {LID_MAPPING_COLUMNS} FROM wa_lid_pn_mapping \
                     WHERE device_id = $1 AND lid = $2"
                ),
                &[&self.device_id, &lid],
            )
            .await?;
        row.as_ref().map(lid_mapping_from_row).transpose()
    }

    async fn get_pn_mapping(&self, phone: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {LID_MAPPING_COLUMNS} FROM wa_lid_pn_mapping \
                     WHERE device_id = $1 AND phone_number = $2 \
                     ORDER BY updated_at DESC LIMIT 1"
                ),
                &[&self.device_id, &phone],
            )
            .await?;
        row.as_ref().map(lid_mapping_from_row).transpose()
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> WaResult<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> WaResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // created_at is kept on update: it records when the mapping was first learned.
        self.execute_batch(
            PUT_LID_MAPPING,
            entries.iter().map(|entry| {
                vec![
                    &self.device_id as _,
                    &entry.lid as _,
                    &entry.phone_number as _,
                    &entry.created_at as _,
                    &entry.updated_at as _,
                    &entry.learning_source as _,
                ]
            }),
        )
        .await?;
        Ok(())
    }

    async fn get_all_lid_mappings(&self) -> WaResult<Vec<LidPnMappingEntry>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {LID_MAPPING_COLUMNS} FROM wa_lid_pn_mapping WHERE device_id = $1"
                ),
                &[&self.device_id],
            )
            .await?;
        rows.iter().map(lid_mapping_from_row).collect()
    }

    async fn save_base_key(
        &self,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> WaResult<()> {
        self.execute(
            "INSERT INTO wa_base_keys (device_id, address, message_id, base_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, address, message_id) \
             DO UPDATE SET base_key = EXCLUDED.base_key",
            &[&self.device_id, &address, &message_id, &base_key, &now()],
        )
        .await?;
        Ok(())
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> WaResult<bool> {
        let stored = self
            .bytes_opt(
                "SELECT base_key FROM wa_base_keys \
                 WHERE device_id = $1 AND address = $2 AND message_id = $3",
                &[&self.device_id, &address, &message_id],
            )
            .await?;
        Ok(stored.as_deref() == Some(current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_base_keys WHERE device_id = $1 AND address = $2 AND message_id = $3",
            &[&self.device_id, &address, &message_id],
        )
        .await?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> WaResult<()> {
        let row = DeviceListRow::new(record)?;
        let now = now();
        self.execute(UPDATE_DEVICE_LIST, &row.params(&self.device_id, &now))
            .await?;
        Ok(())
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> WaResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records
            .into_iter()
            .map(DeviceListRow::new)
            .collect::<WaResult<Vec<_>>>()?;
        let now = now();
        self.execute_batch(
            UPDATE_DEVICE_LIST,
            rows.iter().map(|row| row.params(&self.device_id, &now)),
        )
        .await?;
        Ok(())
    }

    async fn get_devices(&self, user: &str) -> WaResult<Option<DeviceListRecord>> {
        let row = self
            .query_opt(
                "SELECT user_id, devices, timestamp, phash, raw_id FROM wa_device_registry \
                 WHERE device_id = $1 AND user_id = $2",
                &[&self.device_id, &user],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let devices: String = get(&row, 1)?;
        let devices: Vec<DeviceInfo> = serde_json::from_str(&devices)
            .map_err(|err| WaStoreError::Serialization(Box::new(err)))?;
        let raw_id: Option<i64> = get(&row, 4)?;
        Ok(Some(DeviceListRecord {
            user: get(&row, 0)?,
            devices,
            timestamp: get(&row, 2)?,
            phash: get(&row, 3)?,
            raw_id: raw_id.map(|raw| to_u32(raw, "raw_id")).transpose()?,
        }))
    }

    async fn delete_devices(&self, user: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_device_registry WHERE device_id = $1 AND user_id = $2",
            &[&self.device_id, &user],
        )
        .await?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> WaResult<Option<Vec<u8>>> {
        self.bytes_opt(
            "SELECT info FROM wa_group_metadata WHERE device_id = $1 AND group_jid = $2",
            &[&self.device_id, &group_jid],
        )
        .await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> WaResult<()> {
        self.execute(
            "INSERT INTO wa_group_metadata (device_id, group_jid, info, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, group_jid) \
             DO UPDATE SET info = EXCLUDED.info, updated_at = EXCLUDED.updated_at",
            &[&self.device_id, &group_jid, &blob, &now()],
        )
        .await?;
        Ok(())
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_group_metadata WHERE device_id = $1 AND group_jid = $2",
            &[&self.device_id, &group_jid],
        )
        .await?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> WaResult<Option<TcTokenEntry>> {
        let row = self
            .query_opt(
                "SELECT token, token_timestamp, sender_timestamp FROM wa_tc_tokens \
                 WHERE device_id = $1 AND jid = $2",
                &[&self.device_id, &jid],
            )
            .await?;
        row.map(|row| {
            Ok(TcTokenEntry {
                token: get(&row, 0)?,
                token_timestamp: get(&row, 1)?,
                sender_timestamp: get(&row, 2)?,
            })
        })
        .transpose()
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> WaResult<()> {
        self.execute(
            "INSERT INTO wa_tc_tokens \
             (device_id, jid, token, token_timestamp, sender_timestamp, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id, jid) DO UPDATE SET \
             token = EXCLUDED.token, token_timestamp = EXCLUDED.token_timestamp, \
             sender_timestamp = EXCLUDED.sender_timestamp, updated_at = EXCLUDED.updated_at",
            &[
                &self.device_id,
                &jid,
                &entry.token,
                &entry.token_timestamp,
                &entry.sender_timestamp,
                &now(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_tc_token(&self, jid: &str) -> WaResult<()> {
        self.execute(
            "DELETE FROM wa_tc_tokens WHERE device_id = $1 AND jid = $2",
            &[&self.device_id, &jid],
        )
        .await?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> WaResult<Vec<String>> {
        let rows = self
            .query(
                "SELECT jid FROM wa_tc_tokens WHERE device_id = $1",
                &[&self.device_id],
            )
            .await?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> WaResult<u32> {
        // Gone only when both halves are stale: the received token (expired or a placeholder)
        // and the sender bucket (expired or never set).
        let deleted = self
            .execute(
                "DELETE FROM wa_tc_tokens WHERE device_id = $1 \
                 AND (octet_length(token) = 0 OR token_timestamp < $2) \
                 AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
                &[&self.device_id, &token_cutoff, &sender_cutoff],
            )
            .await?;
        Ok(count(deleted))
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> WaResult<()> {
        // One statement, so it is atomic against store_received_tc_token on the same row: the
        // token bytes are never touched here and the sender bucket only moves forward.
        self.execute(
            "INSERT INTO wa_tc_tokens \
             (device_id, jid, token, token_timestamp, sender_timestamp, updated_at) \
             VALUES ($1, $2, ''::bytea, $3, $3, $4) ON CONFLICT (device_id, jid) DO UPDATE SET \
             sender_timestamp = GREATEST(wa_tc_tokens.sender_timestamp, EXCLUDED.sender_timestamp), \
             updated_at = EXCLUDED.updated_at",
            &[&self.device_id, &jid, &sender_timestamp, &now()],
        )
        .await?;
        Ok(())
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> WaResult<()> {
        // Newer wins, atomically: the conflict WHERE keeps a fresher real token, a placeholder
        // never blocks a real one, and the sender bucket is left as it is.
        self.execute(
            "INSERT INTO wa_tc_tokens \
             (device_id, jid, token, token_timestamp, sender_timestamp, updated_at) \
             VALUES ($1, $2, $3, $4, NULL, $5) ON CONFLICT (device_id, jid) DO UPDATE SET \
             token = EXCLUDED.token, token_timestamp = EXCLUDED.token_timestamp, \
             updated_at = EXCLUDED.updated_at \
             WHERE octet_length(wa_tc_tokens.token) = 0 \
                OR EXCLUDED.token_timestamp >= wa_tc_tokens.token_timestamp",
            &[&self.device_id, &jid, &token, &token_timestamp, &now()],
        )
        .await?;
        Ok(())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> WaResult<()> {
        self.execute(
            "INSERT INTO wa_sent_messages (device_id, chat_jid, message_id, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, chat_jid, message_id) \
             DO UPDATE SET payload = EXCLUDED.payload, created_at = EXCLUDED.created_at",
            &[&self.device_id, &chat_jid, &message_id, &payload, &now()],
        )
        .await?;
        Ok(())
    }

    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        // Read and delete in one statement: two retry receipts cannot both take the payload.
        self.bytes_opt(
            "DELETE FROM wa_sent_messages \
             WHERE device_id = $1 AND chat_jid = $2 AND message_id = $3 RETURNING payload",
            &[&self.device_id, &chat_jid, &message_id],
        )
        .await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        let deleted = self
            .execute(
                "DELETE FROM wa_sent_messages WHERE device_id = $1 AND created_at < $2",
                &[&self.device_id, &cutoff_timestamp],
            )
            .await?;
        Ok(count(deleted))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> WaResult<()> {
        self.execute(
            STORE_PENDING_INBOUND,
            &[&self.device_id, &chat, &sender, &id, &message, &now()],
        )
        .await?;
        Ok(())
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        self.bytes_opt(
            "SELECT message FROM wa_pending_inbound \
             WHERE device_id = $1 AND chat = $2 AND sender = $3 AND id = $4",
            &[&self.device_id, &chat, &sender, &id],
        )
        .await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> WaResult<()> {
        self.execute(
            DELETE_PENDING_INBOUND,
            &[&self.device_id, &chat, &sender, &id],
        )
        .await?;
        Ok(())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        let deleted = self
            .execute(
                "DELETE FROM wa_pending_inbound WHERE device_id = $1 AND inserted_at < $2",
                &[&self.device_id, &cutoff_timestamp],
            )
            .await?;
        Ok(count(deleted))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> WaResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = now();
        self.execute_batch(
            STORE_PENDING_INBOUND,
            rows.iter().map(|row| {
                vec![
                    &self.device_id as _,
                    &row.chat as _,
                    &row.sender as _,
                    &row.id as _,
                    &row.message as _,
                    &now as _,
                ]
            }),
        )
        .await?;
        Ok(())
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> WaResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.execute_batch(
            DELETE_PENDING_INBOUND,
            keys.iter().map(|key| {
                vec![
                    &self.device_id as _,
                    &key.chat as _,
                    &key.sender as _,
                    &key.id as _,
                ]
            }),
        )
        .await?;
        Ok(())
    }
}

// --- MsgSecretStore ----------------------------------------------------------------------------

/// On conflict: the later deadline wins and 0 ("never") beats any deadline; the parent message
/// time keeps the larger (known) value. These are `merge_msg_secret_expiry` and
/// `merge_msg_secret_message_ts` of wacore, in SQL.
const PUT_MSG_SECRET: &str = "INSERT INTO wa_msg_secrets \
     (device_id, chat, sender, msg_id, secret, created_at, expires_at, message_ts) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (device_id, chat, sender, msg_id) \
     DO UPDATE SET secret = EXCLUDED.secret, created_at = EXCLUDED.created_at, \
     expires_at = CASE WHEN wa_msg_secrets.expires_at = 0 OR EXCLUDED.expires_at = 0 THEN 0 \
         ELSE GREATEST(wa_msg_secrets.expires_at, EXCLUDED.expires_at) END, \
     message_ts = GREATEST(wa_msg_secrets.message_ts, EXCLUDED.message_ts)";

#[async_trait]
impl MsgSecretStore for PgSessionStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> WaResult<usize> {
        if entries.is_empty() {
            return Ok(0);
        }
        let now = now();
        let rows: Vec<(&str, &str, &str, &[u8])> = entries
            .iter()
            .map(|entry| {
                (
                    entry.chat.as_ref(),
                    entry.sender.as_ref(),
                    entry.msg_id.as_ref(),
                    &entry.secret[..],
                )
            })
            .collect();
        let stored = self
            .execute_batch(
                PUT_MSG_SECRET,
                rows.iter()
                    .zip(&entries)
                    .map(|((chat, sender, msg_id, secret), entry)| {
                        vec![
                            &self.device_id as _,
                            chat as _,
                            sender as _,
                            msg_id as _,
                            secret as _,
                            &now as _,
                            &entry.expires_at as _,
                            &entry.message_ts as _,
                        ]
                    }),
            )
            .await?;
        Ok(usize::try_from(stored).unwrap_or(usize::MAX))
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        self.bytes_opt(
            "SELECT secret FROM wa_msg_secrets \
             WHERE device_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
            &[&self.device_id, &chat, &sender, &msg_id],
        )
        .await
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<(Vec<u8>, i64)>> {
        let row = self
            .query_opt(
                "SELECT secret, message_ts FROM wa_msg_secrets \
                 WHERE device_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
                &[&self.device_id, &chat, &sender, &msg_id],
            )
            .await?;
        row.map(|row| Ok((get(&row, 0)?, get(&row, 1)?)))
            .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        let deleted = self
            .execute(
                "DELETE FROM wa_msg_secrets \
                 WHERE device_id = $1 AND expires_at <> 0 AND expires_at <= $2",
                &[&self.device_id, &cutoff_timestamp],
            )
            .await?;
        Ok(count(deleted))
    }
}

// --- DeviceStore -------------------------------------------------------------------------------

#[async_trait]
impl DeviceStore for PgSessionStore {
    async fn save(&self, device: &Device) -> WaResult<()> {
        let row = DeviceRow::from_device(device);
        self.execute(&DEVICE_UPSERT, &row.params(&self.device_id))
            .await?;
        Ok(())
    }

    async fn load(&self) -> WaResult<Option<Device>> {
        let row = self.query_opt(&DEVICE_SELECT, &[&self.device_id]).await?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn exists(&self) -> WaResult<bool> {
        let row = self
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM wa_device WHERE id = $1)",
                &[&self.device_id],
            )
            .await?;
        row.map_or(Ok(false), |row| get(&row, 0))
    }

    async fn create(&self) -> WaResult<i32> {
        // A fresh identity, unpaired: as in the SQLite backend, the row starts without JIDs,
        // account, caches or counters. Creating over an existing device is an error.
        let mut device = Device::new();
        device.pn = None;
        device.lid = None;
        device.account = None;
        device.edge_routing_info = None;
        device.props_hash = None;
        device.nct_salt = None;
        device.server_cert_chain = None;
        device.login_counter = 0;
        device.lid_migrated = false;
        device.read_receipts_disabled = false;
        let row = DeviceRow::from_device(&device);
        self.execute(&DEVICE_INSERT, &row.params(&self.device_id))
            .await?;
        Ok(self.device_id)
    }

    async fn resource_report(&self) -> wacore::stats::StorageResourceReport {
        // The data lives in the server; the pool's buffers are not session state.
        wacore::stats::StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}
