//! The shared state every request handler and job sees: the configuration,
//! the key pools, the upstream client, the traffic counters and the store.
//!
//! This is the bottom of the request path (see docs/architecture.md): it
//! imports the pool, the upstream client and the counters, and nothing that
//! answers requests imports it back into a circle.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use tokio::sync::broadcast;

use crate::config::Config;
use crate::keys::KeyPool;
use crate::status::Stats;
use crate::store::{Change, Event, KeySource, Snapshot, StoreHandle};
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
    /// Other replicas' changes, subscribed when the store was opened (so
    /// none is missed) and taken by `crate::replica::start`.
    events: Mutex<Option<broadcast::Receiver<Event>>>,
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

    /// Build the shared state on an opened store and what it loaded: the
    /// pool starts from `API_KEYS` and the snapshot (keys removed at runtime
    /// stay out, keys added at runtime come back, kept states and running
    /// cooldowns are restored), records every later state change in the
    /// store, and records the `API_KEYS` keys the store did not know yet.
    pub fn with_store(cfg: Config, store: StoreHandle, snap: Snapshot) -> App {
        let events = Mutex::new(Some(store.subscribe()));
        let pool = KeyPool::new(Vec::new(), cfg.key_selection, cfg.max_failures);
        let new_env = pool.load(&cfg.api_keys, &snap);
        drop(snap);
        let recorder = store.clone();
        pool.set_recorder(Box::new(move |change| recorder.record(change)));
        for key in new_env {
            // Stamped 0: a key in API_KEYS never outweighs a removal recorded
            // anywhere (by another replica, or before Redis was reachable).
            store.record(Change::AddKey {
                key,
                source: KeySource::Env,
                at_ms: 0,
            });
        }
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
            store,
            events,
        }
    }

    /// The subscription to other replicas' changes, once (for
    /// `crate::replica::start`; later calls get `None`).
    pub fn take_events(&self) -> Option<broadcast::Receiver<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Apply a setting another replica changed (`value: None`: reverted to
    /// env/default), or one found in the store on a resync.
    ///
    /// An empty stub for now: connected by the settings work (live settings,
    /// `/admin/config`), which replaces this body with the real one.
    pub fn apply_setting_event(&self, name: &str, value: Option<&str>) {
        // connected by the settings work
        let _ = (name, value);
    }
}
