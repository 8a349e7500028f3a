//! The state store: one interface ([`StoreHandle`]) over three modes chosen
//! at start-up from [`Config`]: *memory* (default), *file* (`DATA_DIR`, see
//! [`file`]) and *redis* (`REDIS_URL`, `REDIS_PREFIX`, see [`redis`]).
//!
//! The request path never waits on it: [`StoreHandle::record`] pushes a
//! [`Change`] into a bounded in-memory queue (counters are merged in place,
//! so they are never lost to a full queue; past [`QUEUE_MAX`] the oldest other
//! change is dropped, counted and warned about) and a background task writes
//! batches behind every [`FLUSH_EVERY`]. [`open`] returns the [`Snapshot`] to
//! start from; [`StoreHandle::subscribe`] yields the other replicas' changes.
//! When Redis is unreachable the handle works in memory, reports
//! [`Status::Degraded`], reconnects with backoff (up to 30 s) and then writes
//! what it kept: counters are added, the later deadline wins.

pub mod crypt;
pub mod errlog;
pub mod file;
pub mod kept;
pub mod meter;
pub mod model;
pub mod quota;
pub mod redis;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;

pub use model::{
    AffinityRecord, Bucket, Change, Counts, Grain, KeyId, KeyRecord, KeySource, KeyState, Lww,
    QuotaDay, QuotaDelta, QuotaSeen, QuotaView, Snapshot, Usage, key_id,
};

use crate::config::Config;

/// How often a replica syncs its quota counts (see [`quota`]).
pub use quota::SYNC_EVERY as QUOTA_SYNC_EVERY;

/// How often the background task writes a batch.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Most non-counter changes waiting to be written.
pub const QUEUE_MAX: usize = 4096;
/// Most distinct (key, model, minute) counters waiting to be written.
const USAGE_MAX: usize = 100_000;

/// Which mode, from the configuration (`REDIS_URL` wins over `DATA_DIR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing kept past the process.
    Memory,
    /// `$DATA_DIR/state.redb`.
    File(PathBuf),
    /// Shared in Redis.
    Redis {
        /// `REDIS_URL` (a secret).
        url: String,
        /// `REDIS_PREFIX`.
        prefix: String,
    },
}

impl Mode {
    /// The mode `cfg` asks for.
    pub fn from_config(cfg: &Config) -> Mode {
        match (&cfg.redis_url, &cfg.data_dir) {
            (Some(url), _) => Mode::Redis {
                url: url.clone(),
                prefix: cfg.redis_prefix.clone(),
            },
            (None, Some(dir)) => Mode::File(dir.clone()),
            (None, None) => Mode::Memory,
        }
    }
}

/// What `/health` reports as `"store"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Memory mode.
    Memory,
    /// File mode, writing fine.
    File,
    /// Redis mode, connected.
    Redis,
    /// The store cannot be written now (Redis down, disk error): working in memory.
    Degraded,
}

impl Status {
    /// `"memory"`, `"file"`, `"redis"` or `"degraded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Memory => "memory",
            Status::File => "file",
            Status::Redis => "redis",
            Status::Degraded => "degraded",
        }
    }

    fn from_u8(v: u8) -> Status {
        [
            Status::Memory,
            Status::File,
            Status::Redis,
            Status::Degraded,
        ]
        .get(v as usize)
        .copied()
        .unwrap_or(Status::Degraded)
    }
}

/// What another replica did, as [`StoreHandle::subscribe`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One of its changes (never a counter).
    Change(Change),
    /// Changes may have been missed (the connection was lost): reload with
    /// [`StoreHandle::load`].
    Resync,
}

enum Backend {
    Memory,
    File {
        store: Arc<Mutex<file::FileStore>>,
        touched: BTreeSet<file::Touched>,
        last_prune_ms: u64,
    },
    Redis(Box<redis::RedisStore>),
}

struct Shared {
    queue: Mutex<VecDeque<Change>>,
    usage: Mutex<BTreeMap<(KeyId, String, u64), Counts>>,
    dropped: AtomicU64,
    status: AtomicU8,
    mode: Status,
    mirror: Arc<Mutex<Snapshot>>,
    backend: tokio::sync::Mutex<Backend>,
    events: broadcast::Sender<Event>,
    errlog: errlog::State,
    kept: kept::State,
    quota: Mutex<quota::Tracker>,
}

/// The store, as the rest of the gateway holds it: cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Open the store `cfg` asks for and load what it holds. An unreachable
/// Redis is not an error (the handle starts degraded); an invalid
/// `REDIS_URL`, a `DATA_DIR` that cannot be created or a state file held by
/// another process is.
pub async fn open(cfg: &Config) -> Result<(StoreHandle, Snapshot), String> {
    open_mode(Mode::from_config(cfg), cfg.encryption_key.as_deref()).await
}

/// [`open`] with the mode and `ENCRYPTION_KEY` given directly.
pub async fn open_mode(
    mode: Mode,
    encryption_key: Option<&str>,
) -> Result<(StoreHandle, Snapshot), String> {
    let crypt = Arc::new(crypt::Crypt::new(encryption_key)?);
    let now = crate::clock::unix_now() * 1000;
    let replica = key_id(&format!(
        "{}-{}-{:?}",
        std::process::id(),
        now,
        std::time::Instant::now()
    ));
    let (backend, mut snap, status) = match &mode {
        Mode::Memory => (Backend::Memory, Snapshot::default(), Status::Memory),
        Mode::File(dir) => {
            let (dir, c) = (dir.clone(), crypt.clone());
            let (fs, snap) = tokio::task::spawn_blocking(move || file::FileStore::open(&dir, c))
                .await
                .map_err(|e| format!("store: {e}"))??;
            let b = Backend::File {
                store: Arc::new(Mutex::new(fs)),
                touched: BTreeSet::new(),
                last_prune_ms: 0,
            };
            (b, snap, Status::File)
        }
        Mode::Redis { url, prefix } => {
            let mut r = redis::RedisStore::new(url, prefix, crypt.clone(), &replica)?;
            match r.read_all().await {
                Ok(snap) => (Backend::Redis(Box::new(r)), snap, Status::Redis),
                Err(e) => {
                    crate::warn!(
                        "store: Redis unreachable at start ({e}); running in memory, reconnecting in the background"
                    );
                    (
                        Backend::Redis(Box::new(r)),
                        Snapshot::default(),
                        Status::Degraded,
                    )
                }
            }
        }
    };
    snap.prune(now);
    let kind = match mode {
        Mode::Memory => Status::Memory,
        Mode::File(_) => Status::File,
        Mode::Redis { .. } => Status::Redis,
    };
    let shared = shared(backend, kind, status, snap.clone());
    tokio::spawn(flush_loop(Arc::downgrade(&shared)));
    if let Mode::Redis { url, prefix } = mode
        && let Ok(client) = ::redis::Client::open(url.as_str())
    {
        let resync_first = status == Status::Degraded;
        let channel = format!("{prefix}events");
        tokio::spawn(subscribe_loop(
            Arc::downgrade(&shared),
            client,
            channel,
            replica,
            resync_first,
            crypt,
        ));
    }
    Ok((StoreHandle { shared }, snap))
}

/// The shared part of a handle, before its background tasks are started.
fn shared(backend: Backend, kind: Status, status: Status, snap: Snapshot) -> Arc<Shared> {
    let (events, _) = broadcast::channel(1024);
    Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        usage: Mutex::new(BTreeMap::new()),
        dropped: AtomicU64::new(0),
        status: AtomicU8::new(status as u8),
        mode: kind,
        mirror: Arc::new(Mutex::new(snap)),
        backend: tokio::sync::Mutex::new(backend),
        events,
        errlog: errlog::State::new(),
        kept: kept::State::new(),
        quota: Mutex::default(),
    })
}

impl StoreHandle {
    /// A memory-mode store, built without waiting (for [`crate::app::App::new`]).
    /// Its write-behind task starts when a tokio runtime is running; outside
    /// one (plain unit tests) changes wait in the queue until [`Self::flush`].
    pub fn memory() -> StoreHandle {
        let shared = shared(
            Backend::Memory,
            Status::Memory,
            Status::Memory,
            Snapshot::default(),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(flush_loop(Arc::downgrade(&shared)));
        }
        StoreHandle { shared }
    }

    /// Record a change, never blocking or failing: counters are merged into
    /// the pending ones; other changes are queued (past [`QUEUE_MAX`] the
    /// oldest queued one is dropped, counted, and warned about).
    pub fn record(&self, change: Change) {
        if let Change::Usage(u) = change {
            let mut usage = lock(&self.shared.usage);
            let k = (u.key_id, u.model, u.at_ms - u.at_ms % 60_000);
            if usage.len() >= USAGE_MAX && !usage.contains_key(&k) {
                drop(usage);
                self.dropped();
                return;
            }
            usage.entry(k).or_default().add(&u.counts);
            return;
        }
        let mut q = lock(&self.shared.queue);
        if q.len() >= QUEUE_MAX {
            q.pop_front();
            drop(q);
            self.dropped();
            q = lock(&self.shared.queue);
        }
        q.push_back(change);
    }

    fn dropped(&self) {
        let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            crate::warn!(
                "store: write queue full, {n} change(s) dropped so far (the store is slow or down)"
            );
        }
    }

    /// How many changes were dropped because the queue was full.
    pub fn dropped_count(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The store's status now (for `/health`).
    pub fn status(&self) -> Status {
        Status::from_u8(self.shared.status.load(Ordering::Relaxed))
    }

    /// Other replicas' changes (Redis mode; nothing comes in other modes).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// What the store holds now: in Redis mode read from Redis (the local
    /// view when it is unreachable), else this process's view.
    pub async fn load(&self) -> Snapshot {
        let mut b = self.shared.backend.lock().await;
        if let Backend::Redis(r) = &mut *b
            && let Ok(s) = r.read_all().await
        {
            return s;
        }
        lock(&self.shared.mirror).clone()
    }

    /// Whether the store is shared with other replicas (Redis mode).
    pub fn is_shared(&self) -> bool {
        self.shared.mode == Status::Redis
    }

    /// The owner record of `name` as another replica wrote it (Redis mode;
    /// `None` in other modes, when absent, or past [`kept::READ_TIMEOUT`]).
    pub async fn affinity(&self, name: &str) -> Option<AffinityRecord> {
        if !self.is_shared() || name.len() > 256 {
            return None;
        }
        let read = async {
            let mut b = self.shared.backend.lock().await;
            let Backend::Redis(r) = &mut *b else {
                return None;
            };
            let key = format!("{}aff:{name}", r.prefix());
            let mut con = r.connection().await.ok()?;
            drop(b);
            let v: Option<String> = ::redis::cmd("GET")
                .arg(key)
                .query_async(&mut con)
                .await
                .ok()?;
            serde_json::from_str(&v?).ok()
        };
        tokio::time::timeout(kept::READ_TIMEOUT, read)
            .await
            .ok()
            .flatten()
    }

    /// Write everything recorded so far now (the background task does this
    /// every [`FLUSH_EVERY`]; call it at shutdown). On failure the changes
    /// are kept for the next try and the status is `degraded`.
    pub async fn flush(&self) -> Result<(), String> {
        let mut b = self.shared.backend.lock().await;
        let mut batch: Vec<Change> = lock(&self.shared.queue).drain(..).collect();
        let usage = std::mem::take(&mut *lock(&self.shared.usage));
        batch.extend(usage.into_iter().map(|((key_id, model, at_ms), counts)| {
            Change::Usage(Usage {
                key_id,
                model,
                at_ms,
                counts,
            })
        }));
        let r = self.write(&mut b, batch).await;
        let r = r.and(self.write_errors(&mut b).await);
        let r = r.and(self.write_kept(&mut b).await);
        let ok = self.shared.mode;
        let now = if r.is_ok() { ok } else { Status::Degraded };
        let before = Status::from_u8(self.shared.status.swap(now as u8, Ordering::Relaxed));
        if before != now {
            match &r {
                Ok(()) => crate::warn!(
                    "store: {} store reachable again; pending changes written",
                    ok.as_str()
                ),
                Err(e) => crate::warn!("store: cannot write ({e}); working in memory, retrying"),
            }
        }
        r
    }

    async fn write(&self, b: &mut Backend, batch: Vec<Change>) -> Result<(), String> {
        if !batch.is_empty() {
            let mut m = lock(&self.shared.mirror);
            for c in &batch {
                m.apply(c);
            }
        }
        match b {
            Backend::Memory => Ok(()),
            Backend::File {
                store,
                touched,
                last_prune_ms,
            } => {
                touched.extend(batch.iter().flat_map(file::Touched::of));
                let now = crate::clock::unix_now() * 1000;
                let prune = now.saturating_sub(*last_prune_ms) > 600_000;
                if touched.is_empty() && !prune {
                    return Ok(());
                }
                let (store, mirror, t) = (
                    store.clone(),
                    self.shared.mirror.clone(),
                    std::mem::take(touched),
                );
                let (r, t) = tokio::task::spawn_blocking(move || {
                    let mut fs = lock(&store);
                    let r = fs.write(&t, &lock(&mirror));
                    let r = if prune && r.is_ok() { fs.prune(now) } else { r };
                    (r, t)
                })
                .await
                .map_err(|e| format!("store: {e}"))?;
                if r.is_err() {
                    touched.extend(t);
                } else if prune {
                    *last_prune_ms = now;
                }
                r
            }
            Backend::Redis(r) => {
                if batch.is_empty() {
                    return r.connection().await.map(drop);
                }
                let res = r.write(&batch).await;
                if res.is_err() {
                    self.requeue(batch);
                }
                res
            }
        }
    }

    /// Put a batch that could not be written back in front of the queue.
    fn requeue(&self, batch: Vec<Change>) {
        let mut others = Vec::new();
        for c in batch {
            match c {
                Change::Usage(u) => {
                    let k = (u.key_id, u.model, u.at_ms);
                    lock(&self.shared.usage)
                        .entry(k)
                        .or_default()
                        .add(&u.counts);
                }
                c => others.push(c),
            }
        }
        let mut q = lock(&self.shared.queue);
        for c in others.into_iter().rev() {
            q.push_front(c);
        }
        while q.len() > QUEUE_MAX {
            q.pop_front();
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Write what is pending and close the store (the state file is released).
    pub async fn shutdown(&self) -> Result<(), String> {
        let r = self.flush().await;
        *self.shared.backend.lock().await = Backend::Memory;
        r
    }
}

async fn flush_loop(weak: Weak<Shared>) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(shared) = weak.upgrade() else { return };
        let _ = StoreHandle { shared }.flush().await;
    }
}

/// Apply other replicas' changes from `{prefix}events`, reconnecting with
/// backoff; after a reconnect, tell subscribers to resync.
async fn subscribe_loop(
    weak: Weak<Shared>,
    client: ::redis::Client,
    channel: String,
    me: String,
    resync_first: bool,
    crypt: Arc<crypt::Crypt>,
) {
    let mut backoff = Duration::from_millis(250);
    let mut first = !resync_first;
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        let sub = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, ::redis::RedisError>(ps)
        };
        let ps = tokio::time::timeout(Duration::from_secs(3), sub).await;
        let Ok(Ok(ps)) = ps else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            continue;
        };
        backoff = Duration::from_millis(250);
        if !first && let Some(s) = weak.upgrade() {
            let _ = s.events.send(Event::Resync);
        }
        first = false;
        let mut stream = ps.into_on_message();
        while let Some(msg) = stream.next().await {
            let Some(shared) = weak.upgrade() else { return };
            let Ok(m) = serde_json::from_slice::<redis::EventMsg>(msg.get_payload_bytes()) else {
                continue;
            };
            if m.from == me {
                continue;
            }
            let mut mirror = lock(&shared.mirror);
            for c in m.changes {
                // Keys travel sealed like they are stored (ENCRYPTION_KEY).
                let c = match c {
                    Change::AddKey { key, source, at_ms } => match crypt.open(&key) {
                        Ok(key) => Change::AddKey { key, source, at_ms },
                        Err(e) => {
                            crate::warn!("store: a key added by another replica was skipped: {e}");
                            continue;
                        }
                    },
                    c => c,
                };
                mirror.apply(&c);
                let _ = shared.events.send(Event::Change(c));
            }
        }
    }
}
