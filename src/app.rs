//! The shared state every request handler and job sees: the configuration,
//! the key pools, the upstream client, the traffic counters and the store.
//!
//! This is the bottom of the request path (see docs/architecture.md): it
//! imports the pool, the upstream client and the counters, and nothing that
//! answers requests imports it back into a circle.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::config::{Config, Live, Refusal};
use crate::keys::KeyPool;
use crate::status::Stats;
use crate::store::meter::Recorder;
use crate::store::{Change, Event, KeySource, Snapshot, StoreHandle};
use crate::upstream::Upstream;

/// Which upstream a call of the gateway's own pools goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// The Gemini Developer API (`BASE_URL`) with the server's pool.
    Gemini,
    /// Vertex AI express mode (`VERTEX_EXPRESS_BASE_URL`) with the Vertex
    /// pool (`VERTEX_API_KEYS`).
    Vertex,
}

impl Lane {
    /// The lane of an upstream call's path: a whole URL (`http…`) is
    /// Vertex's (see [`App::path_on`]); a path on `BASE_URL`'s host starts
    /// with `/`.
    pub fn of(path: &str) -> Lane {
        if path.starts_with("http") {
            Lane::Vertex
        } else {
            Lane::Gemini
        }
    }
}

/// Everything a handler needs, shared by all connections.
pub struct App {
    /// The configuration, which changes live: read it with [`App::cfg`].
    pub settings: Live,
    /// The server's key pool.
    pub pool: KeyPool,
    /// The lite edition's backup pool (`BACKUP_API_KEYS`).
    pub backup: KeyPool,
    /// The Vertex AI Express pool (`VERTEX_API_KEYS`; see [`Lane`]): kept in
    /// memory, not in the store.
    pub vertex: KeyPool,
    /// The upstream client and retry loop.
    pub upstream: Upstream,
    /// Traffic counters.
    pub stats: Stats,
    /// Set once shutdown began: new requests get 503.
    pub shutting_down: AtomicBool,
    /// Becomes `true` when open streams must end (shutdown, before
    /// `SHUTDOWN_GRACE` runs out): each streams' task holds a receiver and
    /// ends with its route's error event.
    pub drain: tokio::sync::watch::Sender<bool>,
    /// The state store (memory, file or Redis; see `crate::store`).
    pub store: StoreHandle,
    /// Stored Responses API responses (`crate::responses`).
    pub responses: crate::responses::Kept,
    /// Generated images served at `/images/{id}.png` (`crate::media::kept`).
    pub images: crate::media::Kept,
    /// Which key owns each file, cache and batch; upload sessions.
    pub affinity: crate::affinity::Affinity,
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

    /// Build the shared state on an opened store and what it loaded: runtime
    /// setting overrides kept in the store win over the environment (one the
    /// parser refuses now is left out with a warning); the pool starts from
    /// `API_KEYS` and the snapshot (keys removed at runtime stay out, keys
    /// added at runtime come back, kept states and running cooldowns are
    /// restored), records every later state change in the store, and records
    /// the `API_KEYS` keys the store did not know yet.
    pub fn with_store(cfg: Config, store: StoreHandle, snap: Snapshot) -> App {
        let before = cfg.notes.len();
        let cfg = cfg.with_stored_lenient(&snap.setting_overrides());
        for (level, note) in cfg.notes.iter().skip(before) {
            if crate::log::enabled(*level) {
                crate::log::write(*level, format_args!("{note}"));
            }
        }
        let events = Mutex::new(Some(store.subscribe()));
        let affinity = crate::affinity::Affinity::default();
        affinity.restore(snap.affinity.clone());
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
        for p in [&pool, &backup] {
            p.set_quota(cfg.quota.clone());
            p.set_queue(cfg.queue_timeout, cfg.queue_max);
        }
        // Vertex Express has its own quotas: only its 429s count.
        let vertex = KeyPool::new(
            cfg.vertex_api_keys.clone(),
            cfg.key_selection,
            cfg.max_failures,
        );
        let mut upstream =
            Upstream::new(&cfg.base_url, cfg.time_out, cfg.cooldown, cfg.max_retries);
        upstream.set_custom_headers(&cfg.custom_headers);
        upstream.set_smoothing(cfg.smoothing());
        upstream.set_protocol(cfg.upstream_protocol, cfg.upstream_streams);
        upstream.set_proxies(&cfg.proxies, cfg.proxies_per_key);
        // Every attempt of a client's call is recorded: usage, error log.
        upstream.set_recorder(Recorder::new(store.clone(), cfg.error_log_record_body));
        store.set_error_log_limits(cfg.error_log_max, cfg.error_log_days);
        let images = match &cfg.data_dir {
            Some(dir) => crate::media::Kept::on_disk(dir.join("images")),
            None => crate::media::Kept::default(),
        };
        App {
            settings: Live::new(cfg),
            pool,
            backup,
            vertex,
            upstream,
            stats: Stats::default(),
            shutting_down: AtomicBool::new(false),
            drain: tokio::sync::watch::Sender::new(false),
            store,
            responses: crate::responses::Kept::default(),
            images,
            affinity,
            events,
        }
    }

    /// The upstream path (or URL) for `rest` (`/models/{m}:{action}…`) on
    /// `lane`: under `BASE_URL`'s version, or the whole URL under
    /// `VERTEX_EXPRESS_BASE_URL`.
    pub fn path_on(&self, lane: Lane, rest: &str) -> String {
        match lane {
            Lane::Gemini => self.upstream.path(rest),
            Lane::Vertex => crate::upstream::join(&self.cfg().vertex_base_url, rest),
        }
    }

    /// The pool behind `lane`.
    pub fn pool_on(&self, lane: Lane) -> &KeyPool {
        match lane {
            Lane::Gemini => &self.pool,
            Lane::Vertex => &self.vertex,
        }
    }

    /// The gateway's pool for an upstream call to `path`: the Vertex pool for
    /// a call [`App::path_on`] made for [`Lane::Vertex`] (the only calls
    /// whose path is a whole URL), else the server's pool.
    pub fn pool_for(&self, path: &str) -> &KeyPool {
        self.pool_on(Lane::of(path))
    }

    /// The subscription to other replicas' changes, once (for
    /// `crate::replica::start`; later calls get `None`).
    pub fn take_events(&self) -> Option<broadcast::Receiver<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The configuration now (one lock-free load): read what you need and
    /// let it go; copy values out before an `.await`.
    pub fn cfg(&self) -> arc_swap::Guard<Arc<Config>> {
        self.settings.load()
    }

    /// The configuration now, as an `Arc` one may keep (across an `.await`).
    pub fn cfg_full(&self) -> Arc<Config> {
        self.settings.load_full()
    }

    /// Set (`Some`, in the environment's syntax) or revert (`None`) runtime
    /// setting overrides, live: validated by the start-up parser as a whole
    /// (nothing applied on a refusal), then passed on to the key pools, the
    /// upstream and the log level, and swapped in for the next request. Used
    /// by `PATCH`/`DELETE /admin/config` (which also record the change in the
    /// store) and for the store's setting changes from other replicas (which
    /// must not be recorded again). Returns the names changed.
    pub fn apply_settings(
        &self,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<&'static str>, Refusal> {
        self.settings
            .change(changes, |old, new| self.tune(old, new))
    }

    /// The store's event loop calls this for every change another replica
    /// made: a `Change::Setting` is applied with [`App::apply_settings`] (and
    /// not recorded again); a refusal (a setting this version does not know,
    /// or a value its parser refuses) is logged and skipped. Other changes
    /// are not settings and are ignored here. Returns whether it applied one.
    pub fn apply_setting_change(&self, change: &Change) -> bool {
        let Change::Setting { name, value, .. } = change else {
            return false;
        };
        match self.apply_settings(&[(name.clone(), value.clone())]) {
            Ok(_) => {
                crate::info!("setting {name} changed by another replica");
                true
            }
            Err(r) => {
                crate::warn!(
                    "setting change from another replica ignored: {}",
                    r.message()
                );
                false
            }
        }
    }

    /// After a resync with the store (`Event::Resync`): make the runtime
    /// overrides exactly `stored` (`Snapshot::setting_overrides()`), leaving
    /// out with a warning each one this version refuses.
    pub fn reload_settings(&self, stored: &BTreeMap<String, String>) {
        for w in self.settings.reset(stored, |old, new| self.tune(old, new)) {
            crate::warn!("{w}");
        }
    }

    /// Pass settings that long-lived objects hold on to them: the key pools'
    /// `KEY_SELECTION` and `MAX_FAILURES`, the upstream's `TIME_OUT`,
    /// `COOLDOWN_SECONDS`, `MAX_RETRIES`, `STREAM_SMOOTHING` and `CUSTOM_HEADERS`, `LOG_LEVEL`, and the error log's
    /// `ERROR_LOG_MAX`, `ERROR_LOG_DAYS` and `ERROR_LOG_RECORD_BODY`.
    fn tune(&self, old: &Config, new: &Config) {
        self.vertex.set_policy(new.key_selection, new.max_failures);
        for pool in [&self.pool, &self.backup] {
            pool.set_policy(new.key_selection, new.max_failures);
            if new.quota != old.quota {
                pool.set_quota(new.quota.clone());
            }
            pool.set_queue(new.queue_timeout, new.queue_max);
        }
        self.upstream
            .set_policy(new.time_out, new.cooldown, new.max_retries);
        self.upstream.set_smoothing(new.smoothing());
        if new.custom_headers != old.custom_headers {
            self.upstream.set_custom_headers(&new.custom_headers);
        }
        if new.log_level != old.log_level {
            crate::log::set_level(new.log_level);
        }
        self.store
            .set_error_log_limits(new.error_log_max, new.error_log_days);
        if let Some(r) = self.upstream.recorder() {
            r.set_record_body(new.error_log_record_body);
        }
    }
}
