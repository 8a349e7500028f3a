//! [`KeyPool`]: the keys' slots and state, choosing a key ([`KeyPool::pick`])
//! and recording what a call on it came to ([`KeyPool::report`]).
//!
//! The hot path (`pick`, `report` of a success) takes no pool-wide lock and
//! allocates nothing: it reads the slot list's published length, and locks
//! only the one key's state for a few instructions. State changes (a key
//! disabled, a cooldown, a rest, the failure streak, a reset) are handed to
//! the recorder after the key's lock is released.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use arc_swap::ArcSwap;
use std::time::Duration;

// The pool's clock: tokio's, so tests can pause and advance it
// (`tokio::time::pause`); outside a runtime, or unpaused, it is std's.
use tokio::time::Instant;

use super::headroom::Corrections;
pub use super::headroom::QuotaWait;
use super::quota::{KeyQuota, Policy};
use super::slots::Slots;
use super::view::Today;
use super::{Outcome, Selection, lock, mask, subtle_eq, unix_now};
use crate::clock::unix_ms;
use crate::store::model::{Change, KeyId, KeySource, key_id};

/// Where a pool hands its state changes (the store's `record`). It must not
/// block: it is called on the request path (never with a lock held).
pub type Recorder = Box<dyn Fn(Change) + Send + Sync>;

/// Most slots a pool holds (live keys and removed ones kept as tombstones);
/// past it, adding a key fails.
pub const MAX_KEYS: usize = 100_000;

/// Mutable state of one key, behind a short lock.
#[derive(Debug)]
pub(super) struct State {
    /// Removed at runtime (a tombstone: its index stays valid).
    pub(super) removed: bool,
    /// Where the key came from.
    pub(super) source: KeySource,
    /// Why the key is disabled (None = not disabled).
    pub(super) disabled: Option<String>,
    /// When `disabled` was last set (unix ms): the later change wins.
    pub(super) disabled_at: u64,
    /// Per-model cooldowns (429).
    pub(super) cooling: Vec<Cooling>,
    /// Consecutive transient failures.
    pub(super) consecutive: u32,
    /// When `consecutive` was last recorded (unix ms).
    pub(super) failures_at: u64,
    /// Resting after too many transient failures, until.
    pub(super) rest_until: Option<Instant>,
    /// The next rest's length.
    pub(super) backoff: Duration,
    /// Last error message (scrubbed).
    pub(super) last_error: Option<String>,
    /// When the key was last used (unix seconds).
    pub(super) last_used: Option<u64>,
    /// Today's calls on this key (UTC day).
    pub(super) today: Today,
    /// Its quota counts and learned limits per model.
    pub(super) quota: KeyQuota,
}

impl State {
    pub(super) fn fresh(source: KeySource) -> State {
        State {
            removed: false,
            source,
            disabled: None,
            disabled_at: 0,
            cooling: Vec::new(),
            consecutive: 0,
            failures_at: 0,
            rest_until: None,
            backoff: Duration::ZERO,
            last_error: None,
            last_used: None,
            today: Today::default(),
            quota: KeyQuota::default(),
        }
    }

    /// Clear disabled, cooldowns, rest and the failure streak.
    pub(super) fn clear(&mut self, at_ms: u64) {
        self.disabled = None;
        self.disabled_at = at_ms;
        self.cooling.clear();
        self.rest_until = None;
        self.consecutive = 0;
        self.failures_at = at_ms;
        self.backoff = Duration::ZERO;
    }

    /// `"active"`, `"cooling"`, `"resting"` or `"disabled"` at `now`
    /// (disabled and resting win over cooling).
    pub(super) fn label(&self, now: Instant) -> &'static str {
        if self.disabled.is_some() {
            "disabled"
        } else if self.rest_until.is_some_and(|r| r > now) {
            "resting"
        } else if self.cooling.iter().any(|c| c.until > now) {
            "cooling"
        } else {
            "active"
        }
    }
}

/// One per-model cooldown of a key (a 429).
#[derive(Debug)]
pub(super) struct Cooling {
    /// The model the quota was exhausted for.
    pub(super) model: String,
    /// Usable again for it at this instant.
    pub(super) until: Instant,
    /// A per-day quota: cleared by [`KeyPool::reset_daily_quotas`] at
    /// midnight Pacific.
    pub(super) daily: bool,
}

/// One key of the pool.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) key: String,
    pub(super) masked: String,
    /// The stable id (`store::key_id`), computed on first use.
    id: OnceLock<KeyId>,
    pub(super) state: Mutex<State>,
    pub(super) successes: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) calls: AtomicU64,
    /// The model indexes this key is parked in (a bit each; see
    /// [`super::parking`]).
    pub(super) parked: AtomicU64,
}

impl Slot {
    pub(super) fn new(key: String, source: KeySource) -> Slot {
        Slot {
            masked: mask(&key),
            key,
            id: OnceLock::new(),
            state: Mutex::new(State::fresh(source)),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            parked: AtomicU64::new(0),
        }
    }

    /// The key's stable id.
    pub(super) fn id(&self) -> &str {
        self.id.get_or_init(|| key_id(&self.key))
    }
}

/// The result of [`KeyPool::pick`].
#[derive(Clone, Debug, PartialEq)]
pub enum Pick {
    /// Use the key at this index.
    Key(usize),
    /// No usable key: some are cooling; the first is usable again after this long.
    Cooling(Duration),
    /// No usable key: every one that could serve is at a quota limit.
    Quota(QuotaWait),
    /// No usable key: every key is disabled (or resting with none cooling).
    Unavailable,
}

/// Counts of keys by state, for error bodies, `/health` and `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Usable for any model.
    pub active: usize,
    /// Cooling for at least one model.
    pub cooling: usize,
    /// Resting after transient failures.
    pub resting: usize,
    /// Disabled until re-verified.
    pub disabled: usize,
}

/// Most models one key keeps a cooldown for; past it the cooldown that ends
/// first makes room (a client cycling through model names cannot grow it).
pub const MAX_COOLING: usize = 64;

/// Put `entry` (a model's cooldown) in a key's cooling list: expired entries
/// and the model's old one go first, and a full list drops the entry that
/// ends soonest.
pub(super) fn cool(cooling: &mut Vec<Cooling>, entry: Cooling, now: Instant) {
    cooling.retain(|c| c.model != entry.model && c.until > now);
    if cooling.len() >= MAX_COOLING
        && let Some(i) = (0..cooling.len()).min_by_key(|i| cooling[*i].until)
    {
        cooling.swap_remove(i);
    }
    cooling.push(entry);
}

pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(5);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Lookups by full key and by id, built on first use (a pool built per
/// call for a client's own keys never needs them).
#[derive(Debug, Default)]
pub(super) struct Index {
    built: bool,
    pub(super) by_key: HashMap<Box<str>, usize>,
    pub(super) by_id: HashMap<KeyId, usize>,
    /// The byte lengths keys have, so a text of another length is known not
    /// to be a key without hashing it.
    key_lengths: KeyLengths,
}

/// A set of key lengths (bit `n`: some key is `n` bytes long; the last bit
/// stands for every length from 255 up): a text of a length not in it is not
/// a key.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyLengths([u64; 4]);

impl KeyLengths {
    /// Both sets at once.
    pub fn union(self, other: KeyLengths) -> KeyLengths {
        KeyLengths(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    /// Add the length of `key`.
    fn insert(&mut self, key: &str) {
        let n = key.len().min(255);
        self.0[n / 64] |= 1 << (n % 64);
    }

    /// Whether some key is as long as `text`.
    pub fn may_be_key(self, text: &str) -> bool {
        let n = text.len().min(255);
        self.0[n / 64] & (1 << (n % 64)) != 0
    }
}

impl Index {
    pub(super) fn insert(&mut self, slot: &Slot, i: usize) {
        self.by_key.entry(slot.key.as_str().into()).or_insert(i);
        self.by_id.entry(slot.id().to_string()).or_insert(i);
        self.key_lengths.insert(&slot.key);
    }
}

/// The pool of Gemini keys.
pub struct KeyPool {
    pub(super) slots: Slots<Slot>,
    /// Full key / id → index; its write lock also serialises adding keys.
    index: RwLock<Box<Index>>,
    /// Keys not removed.
    pub(super) live: AtomicUsize,
    /// Round robin: where the next scan starts (just after the last key chosen).
    pub(super) cursor: AtomicUsize,
    /// Random: the state of the pseudo-random sequence.
    pub(super) seed: AtomicU64,
    /// `KEY_SELECTION` (a [`Selection`] as `u8`); changes live.
    pub(super) selection: AtomicU8,
    /// `MAX_FAILURES`; changes live.
    max_failures: AtomicU32,
    pub(super) epoch: Instant,
    recorder: OnceLock<Recorder>,
    /// `QUOTA_AWARE`, `KEY_TIER`, `MODEL_LIMITS`; changes live.
    pub(super) policy: ArcSwap<Policy>,
    /// Added to the quota clock (tests move a day forward at once).
    pub(super) quota_offset_ms: AtomicU64,
    /// The lines of requests waiting for headroom (`QUEUE_TIMEOUT`).
    pub(super) queue: Box<super::queue::Queue>,
    /// Token estimates to correct from answers (see [`KeyPool::token_hook`]).
    pub(super) corrections: Arc<Corrections>,
    /// Quota counts shared with other replicas (Redis mode).
    pub(super) sharing: Box<super::shared::Sharing>,
    /// Keys parked out of each model's rotation.
    pub(super) parking: Box<super::parking::Parking>,
    /// Keys whose state a pick looked at (tests: a pick's cost).
    #[cfg(test)]
    pub(super) examined: AtomicU64,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("keys", &self.len())
            .field(
                "selection",
                &Selection::from_u8(self.selection.load(Ordering::Relaxed)),
            )
            .finish_non_exhaustive()
    }
}

impl KeyPool {
    /// A pool over `keys` (duplicates should already be removed), all from
    /// `API_KEYS`; past [`MAX_KEYS`] keys are left out with a warning.
    pub fn new(keys: Vec<String>, selection: Selection, max_failures: u32) -> KeyPool {
        let epoch = Instant::now();
        let pool = KeyPool {
            slots: Slots::default(),
            index: RwLock::new(Box::default()),
            live: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
            // Pools need not agree on their random sequence: seed from the clock.
            seed: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as u64,
            ),
            selection: AtomicU8::new(selection as u8),
            max_failures: AtomicU32::new(max_failures.max(1)),
            epoch,
            recorder: OnceLock::new(),
            policy: ArcSwap::from_pointee(Policy::default()),
            quota_offset_ms: AtomicU64::new(0),
            queue: Box::default(),
            corrections: Arc::default(),
            sharing: Default::default(),
            parking: Box::new(super::parking::Parking::new(epoch)),
            #[cfg(test)]
            examined: AtomicU64::new(0),
        };
        let total = keys.len();
        for key in keys.into_iter().take(MAX_KEYS) {
            pool.slots.push(Slot::new(key, KeySource::Env));
        }
        pool.live.store(pool.slots.len(), Ordering::Relaxed);
        if total > MAX_KEYS {
            crate::warn!(
                "{} keys past the first {MAX_KEYS} left out",
                total - MAX_KEYS
            );
        }
        pool
    }

    /// Change `KEY_SELECTION` and `MAX_FAILURES` while running (settings
    /// changed at run time): the next pick and the next failure use them.
    pub fn set_policy(&self, selection: Selection, max_failures: u32) {
        self.selection.store(selection as u8, Ordering::Relaxed);
        self.max_failures
            .store(max_failures.max(1), Ordering::Relaxed);
    }

    /// Hand every later state change to `recorder` (once; later calls are
    /// ignored and return false).
    pub fn set_recorder(&self, recorder: Recorder) -> bool {
        self.recorder.set(recorder).is_ok()
    }

    /// Hand one change to the recorder, if any (never with a lock held).
    pub(super) fn record(&self, change: Change) {
        if let Some(r) = self.recorder.get() {
            r(change);
        }
    }

    /// Number of keys (removed ones not counted).
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether the pool has no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of slots: every index below it is valid (removed keys keep
    /// theirs); see [`KeyPool::live_indices`] for the keys in service.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The indices of the keys not removed, in order.
    pub fn live_indices(&self) -> Vec<usize> {
        self.slots
            .iter()
            .filter(|(_, s)| !lock(&s.state).removed)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether the key at `index` exists and is not removed.
    pub fn is_live(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .is_some_and(|s| !lock(&s.state).removed)
    }

    /// Whether the key at `index` is disabled (until it passes re-verification).
    pub fn is_disabled(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .is_some_and(|s| lock(&s.state).disabled.is_some())
    }

    /// The key at `index` (to put in the upstream request; never log it).
    /// Removed keys keep their slot, so an index from `pick` stays valid.
    pub fn key(&self, index: usize) -> &str {
        self.slots.get(index).map_or("", |s| s.key.as_str())
    }

    /// The masked form of the key at `index`.
    pub fn masked(&self, index: usize) -> &str {
        self.slots.get(index).map_or("…", |s| s.masked.as_str())
    }

    /// The stable id of the key at `index` (`store::key_id`).
    pub fn id(&self, index: usize) -> Option<&str> {
        self.slots.get(index).map(Slot::id)
    }

    /// Run `f` on the built index.
    pub(super) fn with_index<R>(&self, f: impl FnOnce(&Index) -> R) -> R {
        {
            let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
            if idx.built {
                return f(&idx);
            }
        }
        let idx = self.index_mut();
        f(&idx)
    }

    /// The index, locked for writing (and built). Adding keys holds it.
    pub(super) fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Box<Index>> {
        let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
        idx_built(&mut idx, &self.slots);
        idx
    }

    /// The index of the key whose full value is `key`, in one hash lookup,
    /// so that scanning text for pool keys costs the same with ten keys or
    /// ten thousand (removed keys are found too: their value is still masked).
    pub fn position(&self, key: &str) -> Option<usize> {
        self.with_index(|idx| {
            if idx.key_lengths.may_be_key(key) {
                idx.by_key.get(key).copied()
            } else {
                None
            }
        })
    }

    /// The byte lengths the pool's keys have (see [`KeyLengths`]): one lock
    /// for a caller about to test many texts.
    pub fn key_lengths(&self) -> KeyLengths {
        self.with_index(|idx| idx.key_lengths)
    }

    /// The index of the key with stable id `id`.
    pub fn position_of_id(&self, id: &str) -> Option<usize> {
        self.with_index(|idx| idx.by_id.get(id).copied())
    }

    /// Find a key in service by its id, full value, masked form, or decimal index.
    pub fn find(&self, id: &str) -> Option<usize> {
        if let Some(i) = self.position_of_id(id) {
            return self.is_live(i).then_some(i);
        }
        if let Ok(i) = id.parse::<usize>() {
            return self.is_live(i).then_some(i);
        }
        self.slots
            .iter()
            .find(|(_, s)| (s.masked == id || subtle_eq(&s.key, id)) && !lock(&s.state).removed)
            .map(|(i, _)| i)
    }

    /// Record what an upstream call on key `index` for `model` came to. A
    /// change of the key's state is handed to the recorder after the key's
    /// lock is released (a success on a healthy key changes nothing).
    pub fn report(&self, index: usize, model: &str, outcome: &Outcome) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let mut st = lock(&slot.state);
        st.today.count(outcome, unix_now() / 86_400);
        let mut changes: [Option<Change>; 2] = [None, None];
        // Whether the key may serve sooner than it was parked for.
        let mut sooner = false;
        match outcome {
            Outcome::Success => {
                sooner = st.rest_until.is_some();
                slot.successes.fetch_add(1, Ordering::Relaxed);
                if !st.quota.models.is_empty() {
                    let model = crate::model::label(model);
                    st.quota.settle(model, &self.quota_clock(Instant::now()));
                }
                if st.consecutive > 0 {
                    let at_ms = unix_ms();
                    st.failures_at = at_ms;
                    changes[0] = Some(Change::Failures {
                        id: slot.id().to_string(),
                        count: 0,
                        at_ms,
                    });
                }
                st.consecutive = 0;
                st.backoff = Duration::ZERO;
                st.rest_until = None;
            }
            Outcome::Client | Outcome::Region(_) => {}
            Outcome::KeyInvalid(msg) => {
                slot.failures.fetch_add(1, Ordering::Relaxed);
                if st.disabled.is_none() {
                    crate::warn!("key {} disabled: {}", slot.masked, msg);
                    let at_ms = unix_ms();
                    st.disabled_at = at_ms;
                    changes[0] = Some(Change::Disable {
                        id: slot.id().to_string(),
                        reason: Some(msg.clone()),
                        at_ms,
                    });
                }
                st.disabled = Some(msg.clone());
                st.last_error = Some(msg.clone());
            }
            Outcome::Quota {
                cooldown,
                daily,
                message,
            } => {
                slot.failures.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let model = crate::model::label(model);
                // Google did not count a refused call: give its slot back.
                let clock = self.quota_clock(now);
                if st.quota.release(model, &clock) {
                    self.note_quota(index, model, &clock, -1, 0);
                }
                let entry = Cooling {
                    model: model.to_string(),
                    until: now + *cooldown,
                    daily: *daily,
                };
                cool(&mut st.cooling, entry, now);
                sooner = true;
                st.last_error = Some(message.clone());
                crate::debug!(
                    "key {} cooling for {} ({} s)",
                    slot.masked,
                    model,
                    cooldown.as_secs()
                );
                changes[0] = Some(Change::Cooldown {
                    id: slot.id().to_string(),
                    model: model.to_string(),
                    until_ms: unix_ms().saturating_add(cooldown.as_millis() as u64),
                });
            }
            Outcome::Transient(msg) => {
                slot.failures.fetch_add(1, Ordering::Relaxed);
                st.last_error = Some(msg.clone());
                changes = self.transient(slot, &mut st);
            }
        }
        let record = !st.removed;
        drop(st);
        if sooner {
            self.unpark_key(index);
        }
        if record {
            for c in changes.into_iter().flatten() {
                self.record(c);
            }
        }
    }

    /// A transient failure: the streak grows; at `MAX_FAILURES` the key rests.
    fn transient(&self, slot: &Slot, st: &mut State) -> [Option<Change>; 2] {
        st.consecutive += 1;
        let at_ms = unix_ms();
        let mut rest = None;
        if st.consecutive >= self.max_failures.load(Ordering::Relaxed) {
            let length = if st.backoff.is_zero() {
                FIRST_BACKOFF
            } else {
                (st.backoff * 2).min(MAX_BACKOFF)
            };
            st.backoff = length;
            st.rest_until = Some(Instant::now() + length);
            st.consecutive = 0;
            crate::warn!(
                "key {} resting {} s after transient failures",
                slot.masked,
                length.as_secs()
            );
            rest = Some(Change::Rest {
                id: slot.id().to_string(),
                until_ms: at_ms + length.as_millis() as u64,
            });
        }
        st.failures_at = at_ms;
        let failures = Change::Failures {
            id: slot.id().to_string(),
            count: st.consecutive,
            at_ms,
        };
        [rest, Some(failures)]
    }

    /// Bring a key back: clears disabled, cooling, rest and failure streak
    /// (recorded when there was something to clear).
    pub fn reset(&self, index: usize) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let at_ms = unix_ms();
        let mut st = lock(&slot.state);
        let had = st.disabled.is_some()
            || !st.cooling.is_empty()
            || st.rest_until.is_some()
            || st.consecutive > 0;
        st.clear(at_ms);
        let record = had && !st.removed;
        drop(st);
        self.unpark_key(index);
        if record {
            self.record(Change::Clear {
                id: slot.id().to_string(),
                model: None,
                at_ms,
            });
        }
    }

    /// Clear every per-day quota cooldown (Google resets daily quotas at
    /// midnight Pacific; the scheduler calls this then). Per-minute cooldowns
    /// stay. Returns how many cooldowns were cleared, and logs it.
    pub fn reset_daily_quotas(&self) -> usize {
        let now = Instant::now();
        let at_ms = unix_ms();
        let mut cleared = 0;
        for (_, s) in self.slots.iter() {
            let mut models = Vec::new();
            let mut st = lock(&s.state);
            st.cooling.retain(|c| {
                // Count the ones still in force; drop expired ones silently.
                if c.daily && c.until > now {
                    models.push(c.model.clone());
                }
                !c.daily
            });
            let record = !st.removed;
            drop(st);
            cleared += models.len();
            for model in models.into_iter().filter(|_| record) {
                self.record(Change::Clear {
                    id: s.id().to_string(),
                    model: Some(model),
                    at_ms,
                });
            }
        }
        self.unpark_all();
        crate::info!("daily quota reset: {} per-day cooldowns cleared", cleared);
        cleared
    }

    /// Indices of keys that need re-verification (disabled or failing).
    pub fn needing_verification(&self) -> Vec<usize> {
        self.slots
            .iter()
            .filter(|(_, s)| {
                let st = lock(&s.state);
                !st.removed
                    && (st.disabled.is_some() || st.consecutive > 0 || st.rest_until.is_some())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Key counts by state, now (removed keys not counted).
    pub fn counts(&self) -> Counts {
        let now = Instant::now();
        let mut c = Counts::default();
        for (_, s) in self.slots.iter() {
            let st = lock(&s.state);
            if st.removed {
                continue;
            }
            match st.label(now) {
                "disabled" => c.disabled += 1,
                "resting" => c.resting += 1,
                "cooling" => c.cooling += 1,
                _ => c.active += 1,
            }
        }
        c
    }
}

/// `idx`, built over `slots` if it was not yet.
fn idx_built<'a>(idx: &'a mut Index, slots: &Slots<Slot>) -> &'a Index {
    if !idx.built {
        for (i, s) in slots.iter() {
            idx.insert(s, i);
        }
        idx.built = true;
    }
    idx
}
