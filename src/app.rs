//! The shared state every request handler and job sees: the configuration,
//! the key pools, the upstream client, the traffic counters and the store.
//!
//! This is the bottom of the request path (see docs/architecture.md): it
//! imports the pool, the upstream client and the counters, and nothing that
//! answers requests imports it back into a circle.

use std::sync::atomic::AtomicBool;

use crate::config::Config;
use crate::keys::KeyPool;
use crate::status::Stats;
use crate::store::meter::Recorder;
use crate::store::{Snapshot, StoreHandle};
use crate::upstream::Upstream;

/// Everything a handler needs, shared by all connections.
pub struct App {
    /// The configuration.
    pub cfg: Config,
    /// The server's key pool.
    pub pool: KeyPool,
    /// The lite edition's backup pool (`BACKUP_API_KEYS`).
    pub backup: KeyPool,
    /// The upstream client and retry loop.
    pub upstream: Upstream,
    /// Traffic counters.
    pub stats: Stats,
    /// Set once shutdown began: new requests get 503.
    pub shutting_down: AtomicBool,
    /// The state store (memory, file or Redis; see `crate::store`).
    pub store: StoreHandle,
}

impl App {
    /// Build the shared state from a configuration, with a memory store.
    pub fn new(cfg: Config) -> App {
        App::with_store(cfg, StoreHandle::memory(), Snapshot::default())
    }

    /// Open the store `cfg` names (`DATA_DIR`, `REDIS_URL`) and build the
    /// shared state on it. Fails on a store that cannot be opened (an invalid
    /// `REDIS_URL`, an unusable `DATA_DIR`); an unreachable Redis is not a
    /// failure (the store starts degraded and reconnects).
    pub async fn open(cfg: Config) -> Result<App, String> {
        let (store, snap) = crate::store::open(&cfg).await?;
        Ok(App::with_store(cfg, store, snap))
    }

    /// Build the shared state on an opened store and what it loaded.
    pub fn with_store(cfg: Config, store: StoreHandle, _snap: Snapshot) -> App {
        let pool = KeyPool::new(cfg.api_keys.clone(), cfg.key_selection, cfg.max_failures);
        let backup = KeyPool::new(
            cfg.backup_api_keys.clone(),
            cfg.key_selection,
            cfg.max_failures,
        );
        let mut upstream = Upstream::new(
            crate::upstream::build_client(),
            &cfg.base_url,
            cfg.time_out,
            cfg.cooldown,
            cfg.max_retries,
        );
        // Every attempt of a client's call is recorded: usage, error log.
        upstream.set_recorder(Recorder::new(store.clone(), cfg.error_log_record_body));
        store.set_error_log_limits(cfg.error_log_max, cfg.error_log_days);
        App {
            cfg,
            pool,
            backup,
            upstream,
            stats: Stats::default(),
            shutting_down: AtomicBool::new(false),
            store,
        }
    }
}
