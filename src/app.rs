//! The shared state every request handler and job sees: the configuration,
//! the key pools, the upstream client and the traffic counters.
//!
//! This is the bottom of the request path (see docs/architecture.md): it
//! imports the pool, the upstream client and the counters, and nothing that
//! answers requests imports it back into a circle.

use std::sync::atomic::AtomicBool;

use crate::config::Config;
use crate::keys::KeyPool;
use crate::status::Stats;
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
}

impl App {
    /// Build the shared state from a configuration.
    pub fn new(cfg: Config) -> App {
        let pool = KeyPool::new(cfg.api_keys.clone(), cfg.key_selection, cfg.max_failures);
        let backup = KeyPool::new(
            cfg.backup_api_keys.clone(),
            cfg.key_selection,
            cfg.max_failures,
        );
        let upstream = Upstream::new(
            crate::upstream::build_client(),
            &cfg.base_url,
            cfg.time_out,
            cfg.cooldown,
            cfg.max_retries,
        );
        App {
            cfg,
            pool,
            backup,
            upstream,
            stats: Stats::default(),
            shutting_down: AtomicBool::new(false),
        }
    }
}
