//! What the admin routes show of the pool: `/status`'s key list
//! ([`KeyPool::snapshot`]), `/admin/keys`' entries ([`KeyPool::list`],
//! [`KeyInfo`]) and the export of full keys ([`KeyPool::export`]). Only the
//! export holds full keys.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::pool::KeyPool;
use super::quota::QuotaInfo;
use super::{Outcome, lock, unix_now};
use crate::store::model::KeySource;

/// One key's calls today (UTC day), counted by the pool itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Today {
    /// The day counted (days since 1970-01-01, UTC).
    pub day: u64,
    /// Upstream attempts on the key.
    pub requests: u64,
    /// 2xx answers.
    pub successes: u64,
    /// Every other answer (429s included).
    pub failures: u64,
    /// 429s.
    pub rate_limited: u64,
}

impl Today {
    /// Count one call that came to `outcome` on `day`.
    pub(super) fn count(&mut self, outcome: &Outcome, day: u64) {
        if self.day != day {
            *self = Today {
                day,
                ..Today::default()
            };
        }
        self.requests += 1;
        match outcome {
            Outcome::Success => self.successes += 1,
            Outcome::Quota { .. } => {
                self.failures += 1;
                self.rate_limited += 1;
            }
            _ => self.failures += 1,
        }
    }

    /// The counts as of `day` (zero when they are from another day).
    pub fn on(self, day: u64) -> Today {
        if self.day == day {
            self
        } else {
            Today {
                day,
                ..Today::default()
            }
        }
    }
}

/// One key as `GET /admin/keys` shows it (never the key itself).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyInfo {
    /// The stable id (`store::key_id`).
    pub id: String,
    /// The masked key.
    pub masked: String,
    /// Where it came from.
    pub source: KeySource,
    /// `"active"`, `"cooling"`, `"resting"` or `"disabled"`.
    pub state: &'static str,
    /// Why it is disabled.
    pub reason: Option<String>,
    /// Models it cools for, with the seconds left.
    pub cooling: Vec<(String, u64)>,
    /// Today's calls.
    pub today: Today,
    /// When it was last used (unix seconds).
    pub last_used: Option<u64>,
    /// Its last error (scrubbed).
    pub last_error: Option<String>,
    /// Its quota per model: used and limit in the minute and the day.
    pub quota: Vec<QuotaInfo>,
    /// The tier set through the admin API (`"free"`, `"paid"`), if any.
    pub tier: Option<&'static str>,
    /// Whether the built-in free-tier limits apply to it (its tier, or
    /// learned from a 429, or `KEY_TIER=free`).
    pub free_tier: bool,
}

/// Whole seconds left until `until` (rounded up).
fn secs_left(until: Instant, now: Instant) -> u64 {
    (until - now).as_secs_f64().ceil() as u64
}

impl KeyPool {
    /// Every key in service, for `GET /admin/keys`.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.list_page(0, usize::MAX).0
    }

    /// At most `limit` keys in service from slot `from` on, in order, and
    /// the slot to go on from when more keys follow (`GET /admin/keys`'
    /// `cursor`): the cost is the page's, not the pool's.
    pub fn list_page(&self, from: usize, limit: usize) -> (Vec<KeyInfo>, Option<usize>) {
        let now = Instant::now();
        self.apply_corrections();
        let policy = self.quota_policy();
        let clock = self.quota_clock(now);
        let day = unix_now() / 86_400;
        let mut out = Vec::with_capacity(self.len().min(limit).min(4096));
        for i in from..self.slots.len() {
            let Some(s) = self.slots.get(i) else {
                continue;
            };
            let st = lock(&s.state);
            if st.removed {
                continue;
            }
            if out.len() == limit {
                return (out, Some(i));
            }
            out.push(KeyInfo {
                id: s.id().to_string(),
                masked: s.masked.clone(),
                source: st.source,
                state: st.label(now),
                reason: st.disabled.clone(),
                cooling: st
                    .cooling
                    .iter()
                    .filter(|c| c.until > now)
                    .map(|c| (c.model.clone(), secs_left(c.until, now)))
                    .collect(),
                today: st.today.on(day),
                last_used: st.last_used,
                last_error: st.last_error.clone(),
                quota: st.quota.info(&policy, &clock),
                tier: st.quota.tier.map(|free| if free { "free" } else { "paid" }),
                free_tier: st.quota.tier.unwrap_or(st.quota.free || policy.free),
            });
        }
        (out, None)
    }

    /// Remaining calls per model and window (`"minute"`, `"day"`; input
    /// tokens: `"tokens"`), summed
    /// over the keys in service with a known limit for the model (for
    /// `/metrics`; at most [`super::MAX_COOLING`] models, by name).
    pub fn quota_remaining(&self) -> Vec<(String, &'static str, u64)> {
        let now = Instant::now();
        self.apply_corrections();
        let policy = self.quota_policy();
        let clock = self.quota_clock(now);
        let mut sums: std::collections::BTreeMap<String, [Option<u64>; 3]> =
            std::collections::BTreeMap::new();
        for (_, s) in self.slots.iter() {
            let st = lock(&s.state);
            if st.removed || st.disabled.is_some() {
                continue;
            }
            for q in st.quota.info(&policy, &clock) {
                let at = sums.len();
                if at >= super::MAX_COOLING && !sums.contains_key(&q.model) {
                    continue;
                }
                let e = sums.entry(q.model).or_default();
                for (slot, w) in e.iter_mut().zip([q.minute, q.day, q.tokens]) {
                    if let Some(limit) = w.limit {
                        let left = u64::from(limit.saturating_sub(w.used));
                        *slot = Some(slot.unwrap_or(0) + left);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (model, [minute, day, tokens]) in sums {
            for (window, v) in [("minute", minute), ("day", day), ("tokens", tokens)] {
                if let Some(v) = v {
                    out.push((model.clone(), window, v));
                }
            }
        }
        out
    }

    /// The full keys in service whose state `keep` accepts (`true` for a
    /// disabled key), one per line's worth: for the export route only.
    pub fn export(&self, keep: impl Fn(bool) -> bool) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, s)| {
                let st = lock(&s.state);
                !st.removed && keep(st.disabled.is_some())
            })
            .map(|(_, s)| s.key.clone())
            .collect()
    }

    /// Every key in service, masked, with state and counters (for `/status`).
    pub fn snapshot(&self) -> Value {
        let now = Instant::now();
        self.apply_corrections();
        let policy = self.quota_policy();
        let clock = self.quota_clock(now);
        let wall = unix_now();
        let keys: Vec<Value> = self
            .slots
            .iter()
            .filter_map(|(i, s)| {
                let st = lock(&s.state);
                if st.removed {
                    return None;
                }
                let cooling: Vec<Value> = st
                    .cooling
                    .iter()
                    .filter(|c| c.until > now)
                    .map(|c| json!({"model": c.model, "seconds_left": secs_left(c.until, now), "until": wall + (c.until - now).as_secs()}))
                    .collect();
                Some(json!({
                    "index": i,
                    "id": s.id(),
                    "key": s.masked,
                    "state": st.label(now),
                    "disabled_reason": st.disabled,
                    "cooling": cooling,
                    "resting_seconds_left": st.rest_until.filter(|r| *r > now).map(|r| secs_left(r, now)),
                    "successes": s.successes.load(Ordering::Relaxed),
                    "failures": s.failures.load(Ordering::Relaxed),
                    "consecutive_failures": st.consecutive,
                    "last_error": st.last_error,
                    "last_used": st.last_used,
                    "quota": super::quota::info_json(&st.quota.info(&policy, &clock)),
                }))
            })
            .collect();
        Value::Array(keys)
    }
}
