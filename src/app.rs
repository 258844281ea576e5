//! The composition root: the running application built from a [`Config`]. `serve`, `stdio
//! --standalone` and the benchmarks start it here, so they open the same store and engine the
//! same way; everything above (`server`, `http`, `mcp`, `report`) receives the [`AppContext`].

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::engine::Engine;
use crate::state::{EngineStatus, LinkState, StatusHandle};
use crate::store::{Store, StoreError};

/// What every part of the service shares: settings, the live status, the store and the engine.
#[derive(Clone, Debug)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub status: StatusHandle,
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn Engine>,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
}

impl AppContext {
    pub fn new(
        config: Config,
        status: StatusHandle,
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            status,
            store,
            engine,
            started_at: Utc::now(),
            started: Instant::now(),
        }
    }
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the archive {url}: {source}")]
    Archive {
        /// The archive's URL, password hidden.
        url: String,
        source: StoreError,
    },
    #[error("cannot start the WhatsApp engine: {0}")]
    Engine(crate::engine::StartError),
}

/// Opens the archive (running its migrations) and starts the engine `config` names, with the
/// session in its session database.
pub async fn start(config: Config) -> Result<AppContext, StartError> {
    let store = crate::store::open(&config.database_url)
        .await
        .map_err(|source| StartError::Archive {
            url: config.database_url.redacted(),
            source,
        })?;
    crate::shared_dirs::prepare(&config.data_dir, &config.outbox_dir, &config.media_dir);
    let status = StatusHandle::new(EngineStatus::new(LinkState::EngineOff));
    let engine = crate::engine::start(
        config.engine,
        Arc::clone(&store),
        status.clone(),
        config.media_dir.clone(),
        &config.session_database_url,
    )
    .await
    .map_err(StartError::Engine)?;
    Ok(AppContext::new(config, status, store, engine))
}
