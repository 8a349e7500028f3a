//! The pool's side of quotas: its policy and quota clock, what a 429
//! teaches a key ([`KeyPool::learn`]), the token corrections answers hand
//! back ([`KeyPool::token_hook`]), and why no key had headroom
//! ([`QuotaWait`]). The limits and counts themselves are in [`super::quota`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::lock;
use super::pool::KeyPool;
use super::quota::{Clock, Policy, Window};
use crate::clock::unix_ms;
use crate::store::model::{Change, KeyState};

/// Why no key had headroom: the limit that binds, and when a slot opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaWait {
    /// Keys at their limit.
    pub keys: usize,
    /// The limit of the key whose slot opens first.
    pub limit: u32,
    /// Its window.
    pub window: Window,
    /// Until the earliest slot opens.
    pub wait: Duration,
}

impl QuotaWait {
    /// "all 3 keys are at their 5 requests/minute limit for gemini-2.5-flash;
    /// the next slot opens in 14 s".
    pub fn message(&self, model: &str) -> String {
        let keys = match self.keys {
            1 => "the only key is".to_string(),
            n => format!("all {n} keys are"),
        };
        let their = if self.keys == 1 { "its" } else { "their" };
        format!(
            "{keys} at {their} {} {} limit for {}; the next slot opens in {} s",
            self.limit,
            self.window.unit(),
            crate::model::label(model),
            self.wait.as_secs_f64().ceil() as u64
        )
    }
}

/// Most token corrections waiting to be applied (past it they are dropped:
/// the estimate stands).
const MAX_CORRECTIONS: usize = 4096;

/// Answers' prompt tokens, handed over by the meters' hooks (any thread,
/// after the call) and applied to the keys' token counts on the next pick.
#[derive(Debug, Default)]
pub(super) struct Corrections {
    pending: std::sync::atomic::AtomicBool,
    /// (key index, model, estimate, actual).
    list: Mutex<Vec<(usize, String, u32, u32)>>,
}

impl KeyPool {
    /// Change the quota policy (`QUOTA_AWARE`, `KEY_TIER`, `MODEL_LIMITS`)
    /// while running: the next pick uses it.
    pub fn set_quota(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
        self.unpark_all();
    }

    /// The quota policy in force.
    pub fn quota_policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Move the quota clock forward by `d` (for tests: a minute or a
    /// Pacific day passes at once for the counts; cooldowns keep their time).
    pub fn advance_quota_clock(&self, d: Duration) {
        self.quota_offset_ms
            .fetch_add(d.as_millis() as u64, Ordering::Relaxed);
        self.unpark_all();
    }

    /// A hook for the meter of a call on key `index` for `model` whose input
    /// tokens were estimated at `estimate`: told the answer's
    /// `promptTokenCount`, it corrects the key's token count (on the next
    /// pick). None when nothing was counted.
    pub fn token_hook(
        &self,
        index: usize,
        model: &str,
        estimate: u32,
    ) -> Option<Box<dyn FnOnce(u64) + Send + Sync>> {
        if estimate == 0 || !self.policy.load().aware {
            return None;
        }
        let c = self.corrections.clone();
        let model = crate::model::label(model).to_string();
        Some(Box::new(move |actual| {
            let actual = actual.min(u64::from(u32::MAX)) as u32;
            let mut list = lock(&c.list);
            if list.len() < MAX_CORRECTIONS {
                list.push((index, model, estimate, actual));
                c.pending.store(true, Ordering::Release);
            }
        }))
    }

    /// Apply the token corrections handed over since the last time.
    pub(super) fn apply_corrections(&self) {
        // A load first: the swap's write happens only when there is work.
        if !self.corrections.pending.load(Ordering::Acquire)
            || !self.corrections.pending.swap(false, Ordering::AcqRel)
        {
            return;
        }
        let list = std::mem::take(&mut *lock(&self.corrections.list));
        let clock = self.quota_clock(Instant::now());
        for (index, model, estimate, actual) in list {
            if let Some(slot) = self.slots.get(index) {
                lock(&slot.state)
                    .quota
                    .correct(&model, estimate, actual, &clock);
                if actual < estimate {
                    self.unpark_key(index);
                }
                let more = i64::from(actual) - i64::from(estimate);
                self.note_quota(index, &model, &clock, 0, more);
            }
        }
    }

    /// The lines of requests waiting for headroom.
    pub(super) fn queue(&self) -> &super::queue::Queue {
        &self.queue
    }

    /// The quota clock now.
    pub(super) fn quota_clock(&self, now: Instant) -> Clock {
        let offset = self.quota_offset_ms.load(Ordering::Relaxed);
        let ms = (now.duration_since(self.epoch).as_millis() as u64).saturating_add(offset);
        let wall_ms = unix_ms().saturating_add(offset);
        let (day, to_midnight) = super::outcome::pacific_day_and_left(wall_ms / 1000);
        Clock {
            ms,
            day,
            to_midnight,
            wall_ms,
            replicas: self.sharing.replicas.load(Ordering::Relaxed),
        }
    }

    /// Learn from a 429's body (Google's `QuotaFailure`) the limits key
    /// `index` has for `model`, and whether it is free tier: Google's stated
    /// value replaces what the key had (up or down). Logged once per key ×
    /// model and value. Call it before [`KeyPool::report`] of the 429.
    pub fn learn(&self, index: usize, model: &str, body: &[u8]) {
        let found = super::quota::violations(body);
        if found.is_empty() {
            return;
        }
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let model = crate::model::label(model);
        let clock = self.quota_clock(Instant::now());
        let at_ms = unix_ms();
        let mut st = lock(&slot.state);
        let was_free = st.quota.free;
        let changed = st.quota.learn(model, &found, &clock, at_ms);
        let now_free = st.quota.free && !was_free;
        let removed = st.removed;
        drop(st);
        // A limit raised (Google's value, up or down): it may serve sooner.
        self.unpark_key(index);
        if now_free {
            crate::info!(
                "key {} is free tier (a 429 named a free-tier quota)",
                slot.masked
            );
        }
        let mut records = Vec::new();
        for (window, value) in &changed {
            crate::info!(
                "key {} limit learned from a 429: {} {} for {}",
                slot.masked,
                value,
                window.unit(),
                model
            );
            records.push((window.name(), Some(*value)));
        }
        if now_free && records.is_empty() {
            records.push(("", None));
        }
        for (window, value) in records.into_iter().filter(|_| !removed) {
            self.record(Change::Learned {
                id: slot.id().to_string(),
                model: model.to_string(),
                window: window.to_string(),
                value,
                free: now_free,
                at_ms,
            });
        }
    }

    /// Set the tier of key `index` (`Some(true)`: free, the built-in
    /// defaults apply; `Some(false)`: paid, never capped at them; `None`: as
    /// learned / `KEY_TIER`), recorded in the store. False: no such key.
    pub fn set_tier(&self, index: usize, tier: Option<bool>) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let at_ms = unix_ms();
        let mut st = lock(&slot.state);
        if st.removed {
            return false;
        }
        st.quota.tier = tier;
        st.quota.tier_at = at_ms;
        drop(st);
        self.unpark_key(index);
        let tier = tier.map(|free| if free { "free" } else { "paid" }.to_string());
        self.record(Change::Tier {
            id: slot.id().to_string(),
            tier,
            at_ms,
        });
        true
    }

    /// Take a key's stored quota knowledge (tier, learned tier and limits;
    /// the later stamp wins), at start-up or from another replica.
    pub(super) fn merge_quota(q: &mut super::quota::KeyQuota, s: &KeyState, clock: &Clock) {
        if s.tier.at_ms > q.tier_at {
            q.tier = match s.tier.value.as_deref() {
                Some("free") => Some(true),
                Some("paid") => Some(false),
                _ => None,
            };
            q.tier_at = s.tier.at_ms;
        }
        q.free |= s.free;
        for (k, v) in &s.limits {
            let Some((model, window)) = k.rsplit_once('|') else {
                continue;
            };
            if model.is_empty() {
                continue;
            }
            let m = q.entry(model, clock);
            if v.at_ms < m.learned_at {
                continue;
            }
            let slot = match window {
                "rpm" => &mut m.learned.rpm,
                "rpd" => &mut m.learned.rpd,
                "tpm" => &mut m.learned.tpm,
                _ => continue,
            };
            *slot = Some(v.value);
            m.learned_at = v.at_ms;
        }
    }
}
