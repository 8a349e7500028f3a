//! The error log: one [`ErrorEntry`] per failed upstream attempt (retried or
//! final), recorded without waiting ([`StoreHandle::record_error`] pushes it
//! into a bounded queue, [`QUEUE_MAX`]) and written behind with the store's
//! other changes:
//!
//! * *memory*: a ring in the process ([`Ring`]);
//! * *file*: the redb tables `errors` (id → entry) and `error_bodies`;
//! * *redis*: shared by every replica: `{p}errlog` (a sorted set of ids, all
//!   scored 0 so that they sort by id), `{p}errlog:e` (id → entry) and
//!   `{p}errlog:b` (id → request body).
//!
//! Every mode keeps at most `ERROR_LOG_MAX` entries and none older than
//! `ERROR_LOG_DAYS` (checked at every write and once a minute). An id is
//! `{unix ms, 13 digits}-{sequence, 6 digits}-{replica, 6 hex}`: unique across
//! replicas and sorted by time, so the last id of a page is the cursor of
//! the next.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Backend, StoreHandle, lock};

/// Longest Google message kept (bytes, cut on a character boundary).
pub const MESSAGE_MAX: usize = 1024;
/// Longest request body kept with `ERROR_LOG_RECORD_BODY` (bytes).
pub const BODY_MAX: usize = 64 * 1024;
/// Most entries one page of a listing holds.
pub const PAGE_MAX: usize = 500;
/// Most entries waiting to be written (past it the oldest is dropped).
pub const QUEUE_MAX: usize = 1024;
/// Most bytes of request bodies the memory ring keeps (older bodies are dropped).
const RING_BODY_BYTES: usize = 32 << 20;
/// How often entries past `ERROR_LOG_DAYS` are pruned without a write.
const PRUNE_EVERY_MS: u64 = 60_000;

const ERRORS: TableDefinition<&str, &str> = TableDefinition::new("errors");
const ERROR_BODIES: TableDefinition<&str, &str> = TableDefinition::new("error_bodies");

/// One failed upstream attempt.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Unique, sorted by time (set by [`StoreHandle::record_error`]).
    pub id: String,
    /// When the attempt failed (unix ms).
    pub time_ms: u64,
    /// The route-table label of the client's request (`chat`, `native`, …).
    pub route: String,
    /// The model called.
    pub model: String,
    /// The key's id ([`super::key_id`]).
    pub key_id: String,
    /// The key, masked ([`crate::keys::mask`]).
    pub key: String,
    /// The HTTP status (upstream's; 502 / 504 when there was no answer).
    pub status: u16,
    /// Google's `error.status` (`RESOURCE_EXHAUSTED`, …), if it said one.
    pub google_status: String,
    /// Google's `error.message`, or what went wrong (at most [`MESSAGE_MAX`] bytes).
    pub message: String,
    /// Which attempt of the client's request (1 = the first).
    pub attempt: u32,
    /// From sending the attempt to knowing it failed.
    pub latency_ms: u64,
    /// The request body (`ERROR_LOG_RECORD_BODY`), keys masked, at most [`BODY_MAX`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl ErrorEntry {
    /// The entry as the admin API shows it (`time` in unix seconds); the
    /// body only when `with_body` (the detail view).
    pub fn to_json(&self, with_body: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "time": self.time_ms as f64 / 1000.0,
            "route": self.route,
            "model": self.model,
            "key_id": self.key_id,
            "key": self.key,
            "status": self.status,
            "google_status": self.google_status,
            "message": self.message,
            "attempt": self.attempt,
            "latency_ms": self.latency_ms,
        });
        if with_body {
            v["body"] = json!(self.body);
        }
        v
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `id` has the shape of an entry id (safe in a Redis range or a path).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 27
        && b[..13].iter().all(u8::is_ascii_digit)
        && b[13] == b'-'
        && b[14..20].iter().all(u8::is_ascii_digit)
        && b[20] == b'-'
        && b[21..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Which entries a listing or a deletion is about (every field optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// This HTTP status.
    pub status: Option<u16>,
    /// This key: its id or its masked form.
    pub key: Option<String>,
    /// This model.
    pub model: Option<String>,
    /// This route label.
    pub route: Option<String>,
    /// At or after (unix ms).
    pub since_ms: Option<u64>,
    /// At or before (unix ms).
    pub until_ms: Option<u64>,
}

impl Filter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &ErrorEntry) -> bool {
        self.status.is_none_or(|s| s == e.status)
            && self
                .key
                .as_ref()
                .is_none_or(|k| *k == e.key_id || *k == e.key)
            && self.model.as_ref().is_none_or(|m| *m == e.model)
            && self.route.as_ref().is_none_or(|r| *r == e.route)
            && self.since_ms.is_none_or(|s| e.time_ms >= s)
            && self.until_ms.is_none_or(|u| e.time_ms <= u)
    }

    /// No condition at all.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The first id past every entry this filter and `cursor` allow (a
    /// listing goes down from just below it).
    fn upper(&self, cursor: Option<&str>) -> Option<String> {
        let until = self
            .until_ms
            .map(|u| format!("{:013}", u.saturating_add(1).min(9_999_999_999_999)));
        match (cursor.map(str::to_string), until) {
            (Some(c), Some(u)) => Some(c.min(u)),
            (c, u) => c.or(u),
        }
    }

    /// Whether listing down from `e` can stop (it is older than `since`).
    fn past(&self, e: &ErrorEntry) -> bool {
        self.since_ms.is_some_and(|s| e.time_ms < s)
    }
}

/// One page of a listing, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The entries (without their bodies).
    pub entries: Vec<ErrorEntry>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// Collects a page from entries walked newest first; `false` from
/// [`Collect::push`] says the walk can stop.
struct Collect<'a> {
    filter: &'a Filter,
    limit: usize,
    page: Page,
}

impl Collect<'_> {
    fn push(&mut self, mut e: ErrorEntry) -> bool {
        if self.filter.past(&e) {
            return false;
        }
        if !self.filter.matches(&e) {
            return true;
        }
        if self.page.entries.len() == self.limit {
            self.page.next_cursor = self.page.entries.last().map(|e| e.id.clone());
            return false;
        }
        e.body = None;
        self.page.entries.push(e);
        true
    }
}

/// The error log's limits: `ERROR_LOG_MAX` entries, `ERROR_LOG_DAYS` days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most entries kept.
    pub max: usize,
    /// Oldest kept, in days.
    pub days: u64,
}

impl Limits {
    /// The smallest id still kept at `now_ms`.
    fn cutoff(&self, now_ms: u64) -> String {
        format!(
            "{:013}",
            now_ms.saturating_sub(self.days.saturating_mul(86_400_000))
        )
    }
}

/// The error log's part of the store's shared state.
pub(super) struct State {
    queue: Mutex<VecDeque<ErrorEntry>>,
    ring: Mutex<Ring>,
    max: AtomicU64,
    days: AtomicU64,
    seq: AtomicU64,
    replica: String,
    pruned_ms: AtomicU64,
}

impl State {
    pub(super) fn new() -> State {
        let seed = format!(
            "{}-{:?}-{:?}",
            std::process::id(),
            std::time::SystemTime::now(),
            std::time::Instant::now()
        );
        State {
            queue: Mutex::new(VecDeque::new()),
            ring: Mutex::new(Ring::default()),
            max: AtomicU64::new(10_000),
            days: AtomicU64::new(7),
            seq: AtomicU64::new(0),
            replica: super::key_id(&seed)[..6].to_string(),
            pruned_ms: AtomicU64::new(0),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max: self.max.load(Ordering::Relaxed) as usize,
            days: self.days.load(Ordering::Relaxed),
        }
    }
}

/// The memory mode's log: entries by id, bounded like the others, plus a
/// budget for the request bodies it holds.
#[derive(Default)]
pub(super) struct Ring {
    entries: BTreeMap<String, ErrorEntry>,
    body_bytes: usize,
}

impl Ring {
    fn insert(&mut self, e: ErrorEntry) {
        self.body_bytes += e.body.as_ref().map_or(0, String::len);
        if let Some(old) = self.entries.insert(e.id.clone(), e) {
            self.body_bytes -= old.body.map_or(0, |b| b.len());
        }
    }

    fn remove(&mut self, id: &str) -> bool {
        match self.entries.remove(id) {
            Some(e) => {
                self.body_bytes -= e.body.map_or(0, |b| b.len());
                true
            }
            None => false,
        }
    }

    fn trim(&mut self, limits: Limits, now_ms: u64) {
        let cutoff = limits.cutoff(now_ms);
        while let Some(first) = self.entries.keys().next().cloned() {
            if self.entries.len() <= limits.max && first >= cutoff {
                break;
            }
            self.remove(&first);
        }
        for e in self.entries.values_mut() {
            if self.body_bytes <= RING_BODY_BYTES {
                break;
            }
            if let Some(b) = e.body.take() {
                self.body_bytes -= b.len();
            }
        }
    }

    fn page(&self, filter: &Filter, cursor: Option<&str>, limit: usize) -> Page {
        let mut c = Collect {
            filter,
            limit,
            page: Page::default(),
        };
        let upper = filter.upper(cursor);
        let range = match upper {
            Some(u) => self.entries.range(..u),
            None => self.entries.range::<String, _>(..),
        };
        for (_, e) in range.rev() {
            if !c.push(e.clone()) {
                break;
            }
        }
        c.page
    }

    fn delete(&mut self, filter: &Filter) -> u64 {
        let ids: Vec<String> = self
            .entries
            .values()
            .filter(|e| filter.matches(e))
            .map(|e| e.id.clone())
            .collect();
        ids.iter().filter(|id| self.remove(id)).count() as u64
    }
}

impl StoreHandle {
    /// Set `ERROR_LOG_MAX` and `ERROR_LOG_DAYS` (applied at the next write).
    pub fn set_error_log_limits(&self, max: usize, days: u64) {
        let s = &self.shared.errlog;
        s.max.store(max as u64, Ordering::Relaxed);
        s.days.store(days, Ordering::Relaxed);
    }

    /// Record a failed attempt, never blocking: it gets its id here and is
    /// written with the next batch (past [`QUEUE_MAX`] waiting entries the
    /// oldest is dropped and counted).
    pub fn record_error(&self, mut e: ErrorEntry) {
        let s = &self.shared.errlog;
        let seq = s.seq.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        e.id = format!(
            "{:013}-{seq:06}-{}",
            e.time_ms.min(9_999_999_999_999),
            s.replica
        );
        let mut q = lock(&s.queue);
        if q.len() >= QUEUE_MAX {
            q.pop_front();
            drop(q);
            self.dropped();
            q = lock(&s.queue);
        }
        q.push_back(e);
    }

    /// Write the waiting entries (and prune past the limits); on failure
    /// they wait for the next try.
    pub(super) async fn write_errors(&self, b: &mut Backend) -> Result<(), String> {
        let s = &self.shared.errlog;
        let entries: Vec<ErrorEntry> = lock(&s.queue).drain(..).collect();
        let now = now_ms();
        let prune = now.saturating_sub(s.pruned_ms.load(Ordering::Relaxed)) >= PRUNE_EVERY_MS;
        if entries.is_empty() && !prune {
            return Ok(());
        }
        if prune {
            // Usage buckets past their retention leave the process too.
            lock(&self.shared.mirror).prune(now);
        }
        let limits = s.limits();
        let r = match b {
            Backend::Memory => {
                let mut ring = lock(&s.ring);
                for e in entries {
                    ring.insert(e);
                }
                ring.trim(limits, now);
                s.pruned_ms.store(now, Ordering::Relaxed);
                return Ok(());
            }
            Backend::File { store, .. } => {
                let store = store.clone();
                let (r, back) = tokio::task::spawn_blocking(move || {
                    let fs = lock(&store);
                    let r = file_write(&fs.db, &entries, limits, now);
                    (r, entries)
                })
                .await
                .map_err(|e| format!("store: {e}"))?;
                r.map_err(|e| (e, back))
            }
            Backend::Redis(r) => redis_write(r, &entries, limits, now)
                .await
                .map_err(|e| (e, entries)),
        };
        match r {
            Ok(()) => {
                s.pruned_ms.store(now, Ordering::Relaxed);
                Ok(())
            }
            Err((e, back)) => {
                let mut q = lock(&s.queue);
                for x in back.into_iter().rev() {
                    q.push_front(x);
                }
                while q.len() > QUEUE_MAX {
                    q.pop_front();
                }
                Err(e)
            }
        }
    }

    /// One page of the error log, newest first: entries passing `filter`,
    /// older than `cursor` (an id), at most `limit`. What this process
    /// recorded is written first; in Redis mode the page is read from Redis.
    pub async fn error_page(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, String> {
        let _ = self.flush().await;
        let mut b = self.shared.backend.lock().await;
        match &mut *b {
            Backend::Memory => Ok(lock(&self.shared.errlog.ring).page(filter, cursor, limit)),
            Backend::File { store, .. } => {
                let (store, f, c) = (store.clone(), filter.clone(), cursor.map(str::to_string));
                tokio::task::spawn_blocking(move || {
                    file_page(&lock(&store).db, &f, c.as_deref(), limit)
                })
                .await
                .map_err(|e| format!("store: {e}"))?
            }
            Backend::Redis(r) => {
                let (mut con, p) = (r.connection().await?, r.prefix().to_string());
                let mut c = Collect {
                    filter,
                    limit,
                    page: Page::default(),
                };
                redis_walk(&mut con, &p, filter.upper(cursor), |e| c.push(e)).await?;
                Ok(c.page)
            }
        }
    }

    /// One entry in full (with the request body, if one was recorded).
    pub async fn error_entry(&self, id: &str) -> Result<Option<ErrorEntry>, String> {
        let _ = self.flush().await;
        let mut b = self.shared.backend.lock().await;
        match &mut *b {
            Backend::Memory => Ok(lock(&self.shared.errlog.ring).entries.get(id).cloned()),
            Backend::File { store, .. } => {
                let (store, id) = (store.clone(), id.to_string());
                tokio::task::spawn_blocking(move || file_get(&lock(&store).db, &id))
                    .await
                    .map_err(|e| format!("store: {e}"))?
            }
            Backend::Redis(r) => {
                let (mut con, p) = (r.connection().await?, r.prefix().to_string());
                let (e, body): (Option<String>, Option<String>) = redis::pipe()
                    .hget(format!("{p}errlog:e"), id)
                    .hget(format!("{p}errlog:b"), id)
                    .query_async(&mut con)
                    .await
                    .map_err(super::redis::err)?;
                Ok(e.and_then(|j| parse(&j)).map(|mut e| {
                    e.body = body;
                    e
                }))
            }
        }
    }

    /// Delete the entries passing `filter` (all with an empty one); how many.
    pub async fn delete_errors(&self, filter: &Filter) -> Result<u64, String> {
        let _ = self.flush().await;
        let mut b = self.shared.backend.lock().await;
        match &mut *b {
            Backend::Memory => Ok(lock(&self.shared.errlog.ring).delete(filter)),
            Backend::File { store, .. } => {
                let (store, f) = (store.clone(), filter.clone());
                tokio::task::spawn_blocking(move || file_delete(&lock(&store).db, &f))
                    .await
                    .map_err(|e| format!("store: {e}"))?
            }
            Backend::Redis(r) => {
                let (mut con, p) = (r.connection().await?, r.prefix().to_string());
                redis_delete(&mut con, &p, filter).await
            }
        }
    }
}

/// Now, in unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn parse(json: &str) -> Option<ErrorEntry> {
    serde_json::from_str(json).ok()
}

fn encode(e: &ErrorEntry) -> Result<String, String> {
    let mut e = e.clone();
    e.body = None;
    serde_json::to_string(&e).map_err(|x| format!("store: cannot encode an error entry: {x}"))
}

// ---- file mode ----

fn ferr<E: Into<redb::Error>>(e: E) -> String {
    format!("store error log: {}", e.into())
}

/// Insert `entries` and drop what is past `limits`, in one transaction.
fn file_write(
    db: &Database,
    entries: &[ErrorEntry],
    limits: Limits,
    now: u64,
) -> Result<(), String> {
    let txn = db.begin_write().map_err(ferr)?;
    {
        let mut t = txn.open_table(ERRORS).map_err(ferr)?;
        let mut bodies = txn.open_table(ERROR_BODIES).map_err(ferr)?;
        for e in entries {
            t.insert(e.id.as_str(), encode(e)?.as_str()).map_err(ferr)?;
            if let Some(b) = &e.body {
                bodies.insert(e.id.as_str(), b.as_str()).map_err(ferr)?;
            }
        }
        let cutoff = limits.cutoff(now);
        let mut doomed: Vec<String> = Vec::new();
        let len = t.len().map_err(ferr)? as usize;
        let excess = len.saturating_sub(limits.max);
        for row in t.iter().map_err(ferr)? {
            let (id, _) = row.map_err(ferr)?;
            let id = id.value();
            if doomed.len() < excess || id < cutoff.as_str() {
                doomed.push(id.to_string());
            } else {
                break;
            }
        }
        for id in &doomed {
            t.remove(id.as_str()).map_err(ferr)?;
            bodies.remove(id.as_str()).map_err(ferr)?;
        }
    }
    txn.commit().map_err(ferr)
}

/// Open a table for reading; `None` when it was never written.
fn read_table(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'static, &'static str, &'static str>,
) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static str>>, String> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(ferr(e)),
    }
}

fn file_page(
    db: &Database,
    f: &Filter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page, String> {
    let txn = db.begin_read().map_err(ferr)?;
    let mut c = Collect {
        filter: f,
        limit,
        page: Page::default(),
    };
    let Some(t) = read_table(&txn, ERRORS)? else {
        return Ok(c.page);
    };
    let upper = f.upper(cursor);
    let rows = match &upper {
        Some(u) => t.range::<&str>(..u.as_str()),
        None => t.range::<&str>(..),
    }
    .map_err(ferr)?;
    for row in rows.rev() {
        let (_, v) = row.map_err(ferr)?;
        if let Some(e) = parse(v.value())
            && !c.push(e)
        {
            break;
        }
    }
    Ok(c.page)
}

fn file_get(db: &Database, id: &str) -> Result<Option<ErrorEntry>, String> {
    let txn = db.begin_read().map_err(ferr)?;
    let Some(t) = read_table(&txn, ERRORS)? else {
        return Ok(None);
    };
    let Some(mut e) = t.get(id).map_err(ferr)?.and_then(|v| parse(v.value())) else {
        return Ok(None);
    };
    if let Some(b) = read_table(&txn, ERROR_BODIES)? {
        e.body = b.get(id).map_err(ferr)?.map(|v| v.value().to_string());
    }
    Ok(Some(e))
}

fn file_delete(db: &Database, f: &Filter) -> Result<u64, String> {
    let txn = db.begin_write().map_err(ferr)?;
    let n;
    {
        let mut t = txn.open_table(ERRORS).map_err(ferr)?;
        let mut bodies = txn.open_table(ERROR_BODIES).map_err(ferr)?;
        let mut doomed = Vec::new();
        for row in t.iter().map_err(ferr)? {
            let (id, v) = row.map_err(ferr)?;
            if parse(v.value()).is_some_and(|e| f.matches(&e)) {
                doomed.push(id.value().to_string());
            }
        }
        for id in &doomed {
            t.remove(id.as_str()).map_err(ferr)?;
            bodies.remove(id.as_str()).map_err(ferr)?;
        }
        n = doomed.len() as u64;
    }
    txn.commit().map_err(ferr)?;
    Ok(n)
}

// ---- Redis mode ----

/// Drop ids older than `ARGV[2]` (a 13-digit ms prefix) and the oldest past
/// `ARGV[1]` entries, from the set and both hashes.
const TRIM: &str = "local z, e, b = KEYS[1], KEYS[2], KEYS[3] \
local max = tonumber(ARGV[1]) \
local dead = redis.call('ZRANGEBYLEX', z, '-', '(' .. ARGV[2], 'LIMIT', 0, 5000) \
local n = redis.call('ZCARD', z) - #dead \
if n > max then \
  local extra = redis.call('ZRANGE', z, #dead, #dead + (n - max) - 1) \
  for _, id in ipairs(extra) do table.insert(dead, id) end \
end \
for i = 1, #dead, 500 do \
  local chunk = {unpack(dead, i, math.min(i + 499, #dead))} \
  redis.call('ZREM', z, unpack(chunk)) \
  redis.call('HDEL', e, unpack(chunk)) \
  redis.call('HDEL', b, unpack(chunk)) \
end \
return #dead";

async fn redis_write(
    r: &mut super::redis::RedisStore,
    entries: &[ErrorEntry],
    limits: Limits,
    now: u64,
) -> Result<(), String> {
    let mut con = r.connection().await?;
    let p = r.prefix();
    let (z, eh, bh) = (
        format!("{p}errlog"),
        format!("{p}errlog:e"),
        format!("{p}errlog:b"),
    );
    let mut pipe = redis::pipe();
    pipe.atomic();
    for e in entries {
        pipe.zadd(&z, &e.id, 0).ignore();
        pipe.hset(&eh, &e.id, encode(e)?).ignore();
        if let Some(b) = &e.body {
            pipe.hset(&bh, &e.id, b).ignore();
        }
    }
    pipe.cmd("EVAL")
        .arg(TRIM)
        .arg(3)
        .arg(&z)
        .arg(&eh)
        .arg(&bh)
        .arg(limits.max)
        .arg(limits.cutoff(now))
        .ignore();
    let res: Result<(), _> = pipe.query_async(&mut con).await;
    res.map_err(|e| {
        // The connection is gone: reconnect with backoff (as the other writes do).
        r.failed();
        super::redis::err(e)
    })
}

/// Walk the shared log newest first from below `upper`, handing each entry
/// to `visit` until it returns `false` or the log ends.
async fn redis_walk(
    con: &mut MultiplexedConnection,
    p: &str,
    upper: Option<String>,
    mut visit: impl FnMut(ErrorEntry) -> bool,
) -> Result<(), String> {
    let z = format!("{p}errlog");
    let mut max = match upper {
        Some(u) => format!("({u}"),
        None => "+".to_string(),
    };
    loop {
        let ids: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
            .arg(&z)
            .arg(&max)
            .arg("-")
            .arg("LIMIT")
            .arg(0)
            .arg(200)
            .query_async(con)
            .await
            .map_err(super::redis::err)?;
        let Some(last) = ids.last() else {
            return Ok(());
        };
        max = format!("({last}");
        let rows: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(format!("{p}errlog:e"))
            .arg(&ids)
            .query_async(con)
            .await
            .map_err(super::redis::err)?;
        for e in rows.into_iter().flatten().filter_map(|j| parse(&j)) {
            if !visit(e) {
                return Ok(());
            }
        }
    }
}

async fn redis_delete(con: &mut MultiplexedConnection, p: &str, f: &Filter) -> Result<u64, String> {
    let (z, eh, bh) = (
        format!("{p}errlog"),
        format!("{p}errlog:e"),
        format!("{p}errlog:b"),
    );
    let mut doomed: Vec<String> = Vec::new();
    redis_walk(con, p, f.upper(None), |e| {
        if f.past(&e) {
            return false;
        }
        if f.matches(&e) {
            doomed.push(e.id);
        }
        true
    })
    .await?;
    for chunk in doomed.chunks(500) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.zrem(&z, chunk).ignore();
        pipe.hdel(&eh, chunk).ignore();
        pipe.hdel(&bh, chunk).ignore();
        let r: Result<(), _> = pipe.query_async(con).await;
        r.map_err(super::redis::err)?;
    }
    Ok(doomed.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: u64, n: u64, status: u16, body: Option<usize>) -> ErrorEntry {
        ErrorEntry {
            id: format!("{ms:013}-{n:06}-abcdef"),
            time_ms: ms,
            status,
            key_id: format!("k{}", n % 2),
            key: format!("mask{}", n % 2),
            body: body.map(|n| "x".repeat(n)),
            ..ErrorEntry::default()
        }
    }

    #[test]
    fn ids_are_checked_and_sorted_by_time() {
        let a = entry(1_700_000_000_000, 5, 500, None).id;
        let b = entry(1_700_000_000_001, 0, 500, None).id;
        assert!(valid_id(&a) && valid_id(&b) && a < b);
        for bad in ["", "x", "1700000000000-000001-abcdeg", "../../etc/passwd"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hé", 9), "hé");
    }

    #[test]
    fn ring_pages_filters_and_trims() {
        let mut r = Ring::default();
        for i in 0..10u64 {
            r.insert(entry(1000 + i, i, if i % 2 == 0 { 429 } else { 500 }, None));
        }
        let f = Filter::default();
        let p = r.page(&f, None, 4);
        let ids: Vec<u64> = p.entries.iter().map(|e| e.time_ms).collect();
        assert_eq!(ids, [1009, 1008, 1007, 1006]);
        let p2 = r.page(&f, p.next_cursor.as_deref(), 4);
        assert_eq!(p2.entries[0].time_ms, 1005);
        let f429 = Filter {
            status: Some(429),
            since_ms: Some(1003),
            until_ms: Some(1008),
            ..Filter::default()
        };
        let t: Vec<u64> = r
            .page(&f429, None, 50)
            .entries
            .iter()
            .map(|e| e.time_ms)
            .collect();
        assert_eq!(t, [1008, 1006, 1004]);
        let by_key = Filter {
            key: Some("mask1".into()),
            ..Filter::default()
        };
        assert_eq!(r.page(&by_key, None, 50).entries.len(), 5);
        r.trim(Limits { max: 3, days: 1 }, 1010);
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.page(&f, None, 50).entries[2].time_ms, 1007);
        r.trim(Limits { max: 3, days: 1 }, 1008 + 86_400_000);
        assert_eq!(r.entries.len(), 2, "older than a day dropped");
        assert_eq!(r.delete(&Filter::default()), 2);
    }

    #[test]
    fn ring_bounds_the_bodies_it_keeps() {
        let mut r = Ring::default();
        for i in 0..600u64 {
            r.insert(entry(1000 + i, i, 500, Some(BODY_MAX)));
        }
        r.trim(
            Limits {
                max: 10_000,
                days: 1,
            },
            1000,
        );
        assert_eq!(r.entries.len(), 600);
        assert!(r.body_bytes <= RING_BODY_BYTES);
        let newest = r.entries.values().next_back().unwrap();
        assert!(newest.body.is_some(), "the newest bodies are kept");
        assert!(r.entries.values().next().unwrap().body.is_none());
    }
}
