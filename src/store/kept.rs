//! Kept documents: opaque text values under a name, each with its own
//! expiry, kept in the store so that a restart (`DATA_DIR`) or another
//! replica (Redis) can read them — the Responses API's stored responses
//! live here. The request path never waits on a write: [`StoreHandle::keep`]
//! and [`StoreHandle::forget`] queue the operation (bounded by count and
//! bytes; past either the oldest queued one is dropped and counted), and
//! the store's write-behind task writes the queue with its other changes.
//! [`StoreHandle::kept`] reads one document: first the queue (a write not
//! yet done), then the backend, bounded by [`READ_TIMEOUT`].
//!
//! File mode: table `kept`, name → `expires|value`, expired rows pruned
//! every [`PRUNE_EVERY_MS`] and the table held to [`FILE_MAX`] rows (the
//! soonest to expire go first). Redis mode: `{p}kept:{name}` strings
//! written with their TTL (`SET … EX`), so Redis forgets them itself.
//! Memory mode: nothing is queued (the caller's own memory is all there is).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{Backend, StoreHandle};

/// Longest wait for one read from the backend.
pub const READ_TIMEOUT: Duration = Duration::from_millis(1500);
/// Most operations waiting to be written.
const QUEUE_MAX: usize = 4096;
/// Most bytes of values waiting to be written.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Longest value kept (bytes).
pub const VALUE_MAX: usize = 16 * 1024 * 1024;
/// Longest name (bytes).
const NAME_MAX: usize = 256;
/// Most rows the file keeps.
const FILE_MAX: u64 = 50_000;
/// How often the file's expired rows are pruned.
const PRUNE_EVERY_MS: u64 = 600_000;

const KEPT: TableDefinition<&str, &str> = TableDefinition::new("kept");

/// One queued operation.
#[derive(Clone, Debug)]
enum Op {
    /// Keep `value` under `name` until `expires` (unix seconds).
    Put {
        name: String,
        value: String,
        expires: u64,
    },
    /// Forget `name`.
    Delete { name: String },
}

impl Op {
    fn name(&self) -> &str {
        match self {
            Op::Put { name, .. } | Op::Delete { name } => name,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Op::Put { name, value, .. } => name.len() + value.len(),
            Op::Delete { name } => name.len(),
        }
    }
}

/// The queue of kept-document operations (part of the store's shared state).
pub(super) struct State {
    queue: Mutex<VecDeque<Op>>,
    bytes: AtomicU64,
    dropped: AtomicU64,
    pruned_ms: AtomicU64,
}

impl State {
    pub(super) fn new() -> State {
        State {
            queue: Mutex::new(VecDeque::new()),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pruned_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Op>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `op`, dropping the oldest queued ones past the bounds.
    fn push(&self, op: Op) {
        let mut q = self.lock();
        let mut bytes = self.bytes.load(Ordering::Relaxed) as usize + op.bytes();
        q.push_back(op);
        while q.len() > QUEUE_MAX || bytes > QUEUE_BYTES {
            let Some(old) = q.pop_front() else { break };
            bytes = bytes.saturating_sub(old.bytes());
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                crate::warn!("store: kept-document queue full, {n} write(s) dropped so far");
            }
        }
        self.bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// Take everything queued.
    fn drain(&self) -> Vec<Op> {
        let mut q = self.lock();
        self.bytes.store(0, Ordering::Relaxed);
        q.drain(..).collect()
    }

    /// Put a batch that could not be written back in front of the queue.
    fn requeue(&self, ops: Vec<Op>) {
        let mut q = self.lock();
        let mut bytes = self.bytes.load(Ordering::Relaxed) as usize;
        for op in ops.into_iter().rev() {
            bytes += op.bytes();
            q.push_front(op);
        }
        while q.len() > QUEUE_MAX || bytes > QUEUE_BYTES {
            let Some(old) = q.pop_front() else { break };
            bytes = bytes.saturating_sub(old.bytes());
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// The latest queued operation on `name`: `Some(Some(value))` for a
    /// put still in the future, `Some(None)` for a delete (or an expired
    /// put), `None` when nothing is queued for it.
    fn pending(&self, name: &str, now: u64) -> Option<Option<String>> {
        let q = self.lock();
        q.iter()
            .rev()
            .find(|op| op.name() == name)
            .map(|op| match op {
                Op::Put { value, expires, .. } if *expires > now => Some(value.clone()),
                _ => None,
            })
    }
}

impl StoreHandle {
    /// Keep `value` under `name` until `expires` (unix seconds), written
    /// behind (never waits). Memory mode, an over-long name or value: not
    /// kept.
    pub fn keep(&self, name: &str, value: String, expires: u64) {
        if self.shared.mode == super::Status::Memory
            || name.is_empty()
            || name.len() > NAME_MAX
            || value.len() > VALUE_MAX
        {
            return;
        }
        self.shared.kept.push(Op::Put {
            name: name.to_string(),
            value,
            expires,
        });
    }

    /// Forget the document `name`, written behind.
    pub fn forget(&self, name: &str) {
        if self.shared.mode == super::Status::Memory || name.len() > NAME_MAX {
            return;
        }
        self.shared.kept.push(Op::Delete {
            name: name.to_string(),
        });
    }

    /// The document `name` if it is kept and has not expired: a queued
    /// write first, then the backend within [`READ_TIMEOUT`] (a slow or
    /// unreachable store reads as absent).
    pub async fn kept(&self, name: &str) -> Option<String> {
        if self.shared.mode == super::Status::Memory || name.len() > NAME_MAX {
            return None;
        }
        let now = crate::clock::unix_now();
        if let Some(p) = self.shared.kept.pending(name, now) {
            return p;
        }
        match tokio::time::timeout(READ_TIMEOUT, self.read_kept(name, now)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                crate::debug!("store: reading a kept document failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    async fn read_kept(&self, name: &str, now: u64) -> Result<Option<String>, String> {
        let mut b = self.shared.backend.lock().await;
        match &mut *b {
            Backend::Memory => Ok(None),
            Backend::File { store, .. } => {
                let (store, name) = (store.clone(), name.to_string());
                drop(b);
                tokio::task::spawn_blocking(move || {
                    let fs = super::lock(&store);
                    file_get(&fs.db, &name, now).map_err(|e| format!("store: {e}"))
                })
                .await
                .map_err(|e| format!("store: {e}"))?
            }
            Backend::Redis(r) => {
                let (mut con, key) = (r.connection().await?, format!("{}kept:{name}", r.prefix()));
                drop(b);
                let v: Option<String> = ::redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut con)
                    .await
                    .map_err(super::redis::err)?;
                Ok(v)
            }
        }
    }

    /// Write the queued operations (called by the store's flush).
    pub(super) async fn write_kept(&self, b: &mut Backend) -> Result<(), String> {
        let s = &self.shared.kept;
        let ops = s.drain();
        let now_ms = crate::clock::unix_now() * 1000;
        let prune = now_ms.saturating_sub(s.pruned_ms.load(Ordering::Relaxed)) >= PRUNE_EVERY_MS;
        if ops.is_empty() && !prune {
            return Ok(());
        }
        let r = match b {
            Backend::Memory => return Ok(()),
            Backend::File { store, .. } => {
                let store = store.clone();
                let (r, back) = tokio::task::spawn_blocking(move || {
                    let fs = super::lock(&store);
                    let r = file_write(&fs.db, &ops, prune, now_ms / 1000);
                    (r.map_err(|e| format!("store: {e}")), ops)
                })
                .await
                .map_err(|e| format!("store: {e}"))?;
                r.map_err(|e| (e, back))
            }
            Backend::Redis(r) => redis_write(r, &ops, now_ms / 1000)
                .await
                .map_err(|e| (e, ops)),
        };
        match r {
            Ok(()) => {
                if prune {
                    s.pruned_ms.store(now_ms, Ordering::Relaxed);
                }
                Ok(())
            }
            Err((e, back)) => {
                s.requeue(back);
                Err(e)
            }
        }
    }
}

/// Split a stored `expires|value` row.
fn split_row(row: &str) -> Option<(u64, &str)> {
    let (t, v) = row.split_once('|')?;
    Some((t.parse().ok()?, v))
}

fn file_get(db: &Database, name: &str, now: u64) -> Result<Option<String>, redb::Error> {
    let tx = db.begin_read()?;
    let t = match tx.open_table(KEPT) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(row) = t.get(name)? else {
        return Ok(None);
    };
    Ok(split_row(row.value())
        .filter(|(expires, _)| *expires > now)
        .map(|(_, v)| v.to_string()))
}

fn file_write(db: &Database, ops: &[Op], prune: bool, now: u64) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(KEPT)?;
        for op in ops {
            match op {
                Op::Put {
                    name,
                    value,
                    expires,
                } => {
                    t.insert(name.as_str(), format!("{expires}|{value}").as_str())?;
                }
                Op::Delete { name } => {
                    t.remove(name.as_str())?;
                }
            }
        }
        if prune || t.len()? > FILE_MAX {
            // Expired rows go; past FILE_MAX the soonest to expire go too.
            let mut rows: Vec<(u64, String)> = Vec::new();
            for r in t.iter()? {
                let (k, v) = r?;
                let expires = split_row(v.value()).map_or(0, |(e, _)| e);
                rows.push((expires, k.value().to_string()));
            }
            rows.sort_unstable();
            let over = (rows.len() as u64).saturating_sub(FILE_MAX) as usize;
            for (i, (expires, name)) in rows.iter().enumerate() {
                if *expires > now && i >= over {
                    break;
                }
                t.remove(name.as_str())?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

async fn redis_write(r: &mut super::redis::RedisStore, ops: &[Op], now: u64) -> Result<(), String> {
    let p = r.prefix().to_string();
    let mut con = r.connection().await?;
    let mut pipe = ::redis::pipe();
    pipe.atomic();
    for op in ops {
        match op {
            Op::Put {
                name,
                value,
                expires,
            } => {
                let ttl = expires.saturating_sub(now);
                if ttl == 0 {
                    pipe.del(format!("{p}kept:{name}")).ignore();
                } else {
                    pipe.set_ex(format!("{p}kept:{name}"), value, ttl).ignore();
                }
            }
            Op::Delete { name } => {
                pipe.del(format!("{p}kept:{name}")).ignore();
            }
        }
    }
    let res: Result<(), _> = pipe.query_async(&mut con).await;
    if let Err(e) = res {
        r.failed();
        return Err(super::redis::err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_and_the_latest_op_wins() {
        let s = State::new();
        for i in 0..QUEUE_MAX + 10 {
            s.push(Op::Put {
                name: format!("n{i}"),
                value: "v".into(),
                expires: u64::MAX,
            });
        }
        assert_eq!(s.lock().len(), QUEUE_MAX);
        assert_eq!(s.pending("n0", 0), None, "the oldest was dropped");
        assert_eq!(s.pending("n20", 0), Some(Some("v".into())));
        s.push(Op::Delete { name: "n20".into() });
        assert_eq!(s.pending("n20", 0), Some(None));
        let big = "x".repeat(QUEUE_BYTES / 2 + 1);
        s.push(Op::Put {
            name: "a".into(),
            value: big.clone(),
            expires: 5,
        });
        s.push(Op::Put {
            name: "b".into(),
            value: big,
            expires: 5,
        });
        assert!(s.bytes.load(Ordering::Relaxed) as usize <= QUEUE_BYTES);
        assert_eq!(s.pending("b", 10), Some(None), "expired");
        assert_eq!(s.drain().len(), 1);
        assert_eq!(s.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn rows_split() {
        assert_eq!(split_row("12|a|b"), Some((12, "a|b")));
        assert_eq!(split_row("x|a"), None);
    }
}
