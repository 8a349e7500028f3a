//! Quota counts shared across replicas (Redis mode; issue 15): each replica
//! counts its calls per key × model locally (the pick never waits on the
//! store) and a background tick ([`StoreHandle::quota_sync`], every
//! [`SYNC_EVERY`]) writes what it counted since the last tick and reads the
//! others' counts back, in one pipelined round trip:
//!
//! * `{p}qs:{unix second}` — hash, `{key id}|{model}|r` (requests) and
//!   `…|t` (input tokens) → count, `HINCRBY` by each replica (a call given
//!   back after Google's 429 is `-1`), expiring after two minutes: the
//!   sliding minute at one-second grain;
//! * `{p}qd:{Pacific day}` — hash, `{key id}|{model}` → requests that day,
//!   expiring after three days;
//! * `{p}qr` — hash, replica id → when it last synced (unix ms): how many
//!   replicas share the keys (see `keys::shared` for why that matters).
//!
//! Each tick reads the newest few seconds' hashes (older ones no longer
//! change), so a replica's view of the others lags by one or two ticks; the
//! first tick reads the whole last minute and the day's totals (so a
//! restarted replica keeps counting where the pool left off). A replica's
//! own additions are subtracted from what it reads: the pool is told only
//! the others' counts ([`QuotaView`]).

use std::collections::HashMap;
use std::time::Duration;

use super::model::{QuotaDay, QuotaDelta, QuotaSeen, QuotaView};
use super::{Backend, StoreHandle, lock};

/// How often a replica syncs its quota counts.
pub const SYNC_EVERY: Duration = Duration::from_millis(250);
/// Seconds re-read on each tick (writes of a slow tick land late).
const REREAD: u64 = 3;
/// A replica not seen for this long no longer counts.
const REPLICA_STALE_MS: u64 = 3_000;
/// Most deltas kept while Redis is unreachable.
const PENDING_MAX: usize = 100_000;
/// How long a second's hash lives in Redis.
const SECOND_TTL: i64 = 120;
/// How long a day's hash lives in Redis.
const DAY_TTL: i64 = 3 * 86_400;

/// One replica's side of the sync.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    /// The first sync (whole minute, day totals) is done.
    started: bool,
    /// What this replica added to each recent second's fields.
    mine: HashMap<(u64, String), i64>,
    /// The others' value of each recent second's field, as last read.
    seen: HashMap<(u64, String), i64>,
    /// Deltas not written yet (Redis unreachable).
    pending: Vec<QuotaDelta>,
}

fn field(d: &QuotaDelta, suffix: &str) -> String {
    format!("{}|{}|{suffix}", d.key_id, d.model)
}

impl StoreHandle {
    /// Write this replica's new quota counts and read the others' (Redis
    /// mode; `None` in the other modes and while Redis is unreachable, when
    /// the deltas are kept for the next tick). `day` is the Pacific day now.
    pub async fn quota_sync(
        &self,
        deltas: Vec<QuotaDelta>,
        now_ms: u64,
        day: i64,
    ) -> Option<QuotaView> {
        let mut b = self.shared.backend.lock().await;
        let Backend::Redis(r) = &mut *b else {
            return None;
        };
        let (pending, started) = {
            let mut t = lock(&self.shared.quota);
            let room = PENDING_MAX.saturating_sub(t.pending.len());
            t.pending.extend(deltas.into_iter().take(room));
            (std::mem::take(&mut t.pending), t.started)
        };
        let p = r.prefix().to_string();
        let now_sec = now_ms / 1000;
        let from = now_sec.saturating_sub(if started { REREAD } else { 61 });
        let mut pipe = redis::pipe();
        for d in &pending {
            let sk = format!("{p}qs:{}", d.sec);
            pipe.hincr(&sk, field(d, "r"), d.requests).ignore();
            if d.tokens != 0 {
                pipe.hincr(&sk, field(d, "t"), d.tokens).ignore();
            }
            pipe.expire(&sk, SECOND_TTL).ignore();
            let dk = format!("{p}qd:{}", d.day);
            pipe.hincr(&dk, format!("{}|{}", d.key_id, d.model), d.requests)
                .ignore();
            pipe.expire(&dk, DAY_TTL).ignore();
        }
        pipe.hset(format!("{p}qr"), r.replica(), now_ms).ignore();
        pipe.hgetall(format!("{p}qr"));
        for s in from..=now_sec {
            pipe.hgetall(format!("{p}qs:{s}"));
        }
        if !started {
            pipe.hgetall(format!("{p}qd:{day}"));
        }
        // `connection` waits out its backoff by itself (and starts it on a
        // failed connect); a failed round trip starts it here.
        let res: Result<Vec<redis::Value>, ()> = match r.connection().await {
            Ok(mut con) => match pipe.query_async(&mut con).await {
                Ok(v) => Ok(v),
                Err(_) => {
                    r.failed();
                    Err(())
                }
            },
            Err(_) => Err(()),
        };
        let values = match res {
            Ok(v) => v,
            Err(()) => {
                let mut t = lock(&self.shared.quota);
                let room = PENDING_MAX.saturating_sub(t.pending.len());
                let mut back: Vec<QuotaDelta> = pending.into_iter().take(room).collect();
                back.append(&mut t.pending);
                t.pending = back;
                return None;
            }
        };
        drop(b);
        let mut t = lock(&self.shared.quota);
        Some(t.read(&pending, values, from, now_ms, day))
    }
}

/// `HGETALL`'s answer as pairs (anything else: none).
fn pairs(v: redis::Value) -> Vec<(String, i64)> {
    redis::from_redis_value::<Vec<(String, i64)>>(v).unwrap_or_default()
}

/// `{key id}|{model}|{suffix}` → (key id, model, suffix).
fn split(f: &str) -> Option<(&str, &str, &str)> {
    let (id, rest) = f.split_once('|')?;
    let (model, suffix) = rest.rsplit_once('|')?;
    Some((id, model, suffix))
}

impl Tracker {
    /// Take the answers of a sync whose writes were `written` and whose
    /// reads started at second `from`: the others' counts.
    fn read(
        &mut self,
        written: &[QuotaDelta],
        values: Vec<redis::Value>,
        from: u64,
        now_ms: u64,
        day: i64,
    ) -> QuotaView {
        for d in written {
            *self.mine.entry((d.sec, field(d, "r"))).or_default() += d.requests;
            *self.mine.entry((d.sec, field(d, "t"))).or_default() += d.tokens;
        }
        let mut values = values.into_iter();
        let replicas = values
            .next()
            .map(pairs)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, at)| (*at as u64) + REPLICA_STALE_MS > now_ms)
            .count()
            .max(1);
        let first = !self.started;
        let mut seconds: HashMap<(u64, String, String), QuotaSeen> = HashMap::new();
        let now_sec = now_ms / 1000;
        for s in from..=now_sec {
            for (f, total) in values.next().map(pairs).unwrap_or_default() {
                let Some((id, model, suffix)) = split(&f) else {
                    continue;
                };
                let others = total - self.mine.get(&(s, f.clone())).copied().unwrap_or(0);
                let before = self.seen.insert((s, f.clone()), others);
                if before == Some(others) {
                    continue;
                }
                let e = seconds
                    .entry((s, id.to_string(), model.to_string()))
                    .or_insert_with(|| QuotaSeen {
                        key_id: id.to_string(),
                        model: model.to_string(),
                        sec: s,
                        requests: None,
                        tokens: None,
                        added: 0,
                    });
                let value = others.clamp(0, i64::from(u32::MAX)) as u32;
                if suffix == "r" {
                    e.requests = Some(value);
                    // The first read's seconds are in the day's totals already.
                    if !first {
                        e.added = others - before.unwrap_or(0);
                    }
                } else {
                    e.tokens = Some(value);
                }
            }
        }
        let mut days = Vec::new();
        if first {
            let mine_today: i64 = written
                .iter()
                .filter(|d| d.day == day)
                .map(|d| d.requests)
                .sum();
            for (f, total) in values.next().map(pairs).unwrap_or_default() {
                let Some((id, model)) = f.split_once('|') else {
                    continue;
                };
                let mine: i64 = if mine_today == 0 {
                    0
                } else {
                    written
                        .iter()
                        .filter(|d| d.day == day && d.key_id == id && d.model == model)
                        .map(|d| d.requests)
                        .sum()
                };
                days.push(QuotaDay {
                    key_id: id.to_string(),
                    model: model.to_string(),
                    day,
                    requests: (total - mine).clamp(0, i64::from(u32::MAX)) as u32,
                });
            }
            self.started = true;
        }
        let keep = now_sec.saturating_sub(REREAD + 5);
        self.mine.retain(|(s, _), _| *s >= keep);
        self.seen.retain(|(s, _), _| *s >= keep);
        QuotaView {
            replicas,
            seconds: seconds.into_values().collect(),
            days,
        }
    }
}
