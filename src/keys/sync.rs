//! The pool and the store: adding and removing keys at runtime, restoring
//! the state kept by the store at start-up, and applying other replicas'
//! changes (without recording them again: no echo).
//!
//! Merge rules, as the store's (`store::model`): a later `disabled` or
//! failure count wins (by its unix-ms stamp), the later cooldown or rest
//! deadline wins, and a removal wins over stale state (a removed key's state
//! is dropped; adding it again starts it fresh).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::pool::{Cooling, KeyPool, MAX_BACKOFF, MAX_KEYS, Slot, State, cool};
use super::{lock, until_pacific_midnight};
use crate::clock::unix_ms;
use crate::store::model::{Change, KeyId, KeySource, KeyState, Snapshot};

/// What [`KeyPool::add`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// A new key, at this index.
    New(usize),
    /// A key removed before, back in service in its old slot.
    Revived(usize),
    /// Already in the pool, at this index.
    Duplicate(usize),
    /// The pool holds [`MAX_KEYS`] slots already.
    Full,
}

impl Added {
    /// Whether the key was put in service.
    pub fn is_added(self) -> bool {
        matches!(self, Added::New(_) | Added::Revived(_))
    }
}

impl KeyPool {
    /// Add `key` at runtime (the admin API): it serves the next request.
    /// Recorded as `AddKey` when it was not in service.
    pub fn add(&self, key: &str, source: KeySource) -> Added {
        let at_ms = unix_ms();
        let added = self.insert(key, source);
        if added.is_added() {
            crate::info!("key {} added ({source:?})", super::mask(key));
            self.record(Change::AddKey {
                key: key.to_string(),
                source,
                at_ms,
            });
        }
        added
    }

    /// Put `key` in service (a new slot, or its old one revived), unrecorded.
    fn insert(&self, key: &str, source: KeySource) -> Added {
        let mut idx = self.index_mut();
        if let Some(&i) = idx.by_key.get(key) {
            let Some(slot) = self.slots.get(i) else {
                return Added::Full;
            };
            let mut st = lock(&slot.state);
            if !st.removed {
                return Added::Duplicate(i);
            }
            *st = State::fresh(source);
            drop(st);
            self.unpark_key(i);
            self.live.fetch_add(1, Ordering::Relaxed);
            return Added::Revived(i);
        }
        if self.slots.len() >= MAX_KEYS {
            return Added::Full;
        }
        let Some(i) = self.slots.push(Slot::new(key.to_string(), source)) else {
            return Added::Full;
        };
        if let Some(slot) = self.slots.get(i) {
            idx.insert(slot, i);
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        Added::New(i)
    }

    /// Remove the key at `index` at runtime: it is picked no more (a request
    /// holding its index finishes), its state is dropped, and the removal is
    /// recorded (a restart with the same `API_KEYS` keeps it out). False if
    /// there is no such key in service.
    pub fn remove(&self, index: usize) -> bool {
        let at_ms = unix_ms();
        if !self.tombstone(index) {
            return false;
        }
        if let Some(id) = self.id(index) {
            crate::info!("key {} removed", self.masked(index));
            self.record(Change::RemoveKey {
                id: id.to_string(),
                at_ms,
            });
        }
        true
    }

    /// Take the key at `index` out of service, unrecorded.
    fn tombstone(&self, index: usize) -> bool {
        let _adding = self.index_mut(); // one add or remove at a time
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        let mut st = lock(&slot.state);
        if st.removed {
            return false;
        }
        *st = State::fresh(st.source);
        st.removed = true;
        self.live.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Restore kept per-key state (at start-up, or after a resync): for every
    /// key in service, the later `disabled`/failure stamp wins, cooldowns and
    /// rests still running (unix-ms deadlines) are taken when later than the
    /// pool's own. Nothing is recorded.
    pub fn restore(&self, states: &BTreeMap<KeyId, KeyState>) {
        for (id, state) in states {
            self.merge_state(id, state);
        }
    }

    /// Merge one key's kept state into its slot (see [`KeyPool::restore`]).
    fn merge_state(&self, id: &str, s: &KeyState) -> bool {
        let Some(i) = self.position_of_id(id) else {
            return false;
        };
        let merged = self.merge_into(i, s);
        // A state cleared or a limit raised elsewhere: it may serve sooner.
        self.unpark_key(i);
        merged
    }

    /// [`KeyPool::merge_state`] into the slot at `i`.
    fn merge_into(&self, i: usize, s: &KeyState) -> bool {
        let Some(slot) = self.slots.get(i) else {
            return false;
        };
        let (now_ms, now) = (unix_ms(), Instant::now());
        let mut st = lock(&slot.state);
        if st.removed {
            return false;
        }
        if s.disabled.at_ms >= st.disabled_at && (s.disabled.at_ms > 0 || st.disabled.is_none()) {
            if st.disabled.is_none() && s.disabled.value.is_some() {
                crate::debug!("key {} disabled by another replica", slot.masked);
            }
            st.disabled = s.disabled.value.clone();
            st.disabled_at = s.disabled.at_ms;
        }
        let clock = self.quota_clock(now);
        KeyPool::merge_quota(&mut st.quota, s, &clock);
        if s.failures.at_ms > st.failures_at {
            st.consecutive = s.failures.value;
            st.failures_at = s.failures.at_ms;
        }
        for (model, until_ms) in &s.cooldowns {
            let Some(left) = until_ms.checked_sub(now_ms).filter(|l| *l > 0) else {
                continue;
            };
            let left = Duration::from_millis(left);
            let until = now + left;
            if st
                .cooling
                .iter()
                .any(|c| c.model == *model && c.until >= until)
            {
                continue;
            }
            // A deadline at the next Pacific midnight is a per-day quota's.
            let midnight = until_pacific_midnight(std::time::SystemTime::now());
            let daily = left + Duration::from_secs(2) >= midnight;
            let entry = Cooling {
                model: crate::model::label(model).to_string(),
                until,
                daily,
            };
            cool(&mut st.cooling, entry, now);
        }
        if let Some(left) = s.rest_until_ms.checked_sub(now_ms).filter(|l| *l > 0) {
            let left = Duration::from_millis(left);
            if st.rest_until.is_none_or(|r| r < now + left) {
                st.rest_until = Some(now + left);
                st.backoff = st.backoff.max(left).min(MAX_BACKOFF);
            }
        }
        true
    }

    /// Apply another replica's change, without recording it again. Returns
    /// whether it concerned this pool (settings and counters do not).
    pub fn apply(&self, change: &Change) -> bool {
        match change {
            Change::AddKey { key, source, .. } => self.insert(key, *source).is_added(),
            Change::RemoveKey { id, .. } => {
                self.position_of_id(id).is_some_and(|i| self.tombstone(i))
            }
            Change::Clear { id, model, at_ms } => {
                let Some(i) = self.position_of_id(id) else {
                    return false;
                };
                let Some(slot) = self.slots.get(i) else {
                    return false;
                };
                let mut st = lock(&slot.state);
                match model {
                    None => st.clear(*at_ms),
                    Some(m) => st.cooling.retain(|c| c.model != *m),
                }
                drop(st);
                self.unpark_key(i);
                true
            }
            Change::Setting { .. } | Change::Usage(_) => false,
            other => match (other.state_key(), other.as_state()) {
                (Some(id), Some(state)) => self.merge_state(id, &state),
                _ => false,
            },
        }
    }

    /// Bring the pool in line with a whole snapshot (after missed events):
    /// keys removed there are removed here (a removal wins over a stale
    /// state), keys live there are in service here, and their state is
    /// merged. Keys the snapshot does not know stay. Nothing is recorded.
    pub fn reconcile(&self, snap: &Snapshot) {
        for (id, rec) in &snap.keys {
            if rec.removed {
                if let Some(i) = self.position_of_id(id) {
                    self.tombstone(i);
                }
            } else if !rec.key.is_empty() {
                self.insert(&rec.key, rec.source);
            }
        }
        self.restore(&snap.states);
    }

    /// Build the pool's key list from `API_KEYS` and a loaded snapshot: keys
    /// removed at runtime stay out, keys added at runtime come back, and the
    /// kept state is restored. Returns the `API_KEYS` keys the store did not
    /// know (to be recorded as added from the environment).
    pub fn load(&self, env_keys: &[String], snap: &Snapshot) -> Vec<String> {
        let mut new_env = Vec::new();
        for (key, source) in snap.key_list(env_keys) {
            if source == KeySource::Env
                && !snap.keys.contains_key(&crate::store::model::key_id(&key))
            {
                new_env.push(key.clone());
            }
            self.insert(&key, source);
        }
        self.restore(&snap.states);
        new_env
    }
}
