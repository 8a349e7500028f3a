//! Keys parked out of a model's rotation, so a pick costs the same whatever
//! number of keys cannot serve.
//!
//! Per model (at most [`MAX_MODELS`], the least recently used makes room)
//! a [`ModelIndex`] holds one bit per key — set: *parked*, known unusable
//! for the model until a wake-up time — and a min-heap of those wake-up
//! times. A pick walks only the keys whose bit is clear (64 keys per word
//! skipped at once, no lock taken for a parked key); a key it finds
//! unusable (cooling, resting, out of quota, disabled, removed) is parked
//! until the earliest moment it could serve again, never later:
//! a cooldown's or rest's end, the quota slot's opening (computed for the
//! smallest call: a key full only for this call's input tokens is skipped,
//! not parked), at most [`MAX_PARK`] (disabled and removed keys, and a
//! bound on any error of the wall-clock-based waits). Each pick first wakes
//! the keys whose time has come (one atomic load when none has).
//!
//! Anything that can make a key usable *earlier* unparks it: a change to
//! its state (a report on a parked key, a reset, another replica's change,
//! a learned limit, a tier, a token correction, the other replicas' counts)
//! unparks that key from every model's index ([`KeyPool::unpark_key`]: each
//! slot keeps a mask of the indexes that parked it); a change of policy, of
//! the quota clock or the daily reset unparks every key
//! ([`KeyPool::unpark_all`]). Parking is done under the key's lock and
//! events unpark after changing the key under that lock, so an event is
//! never missed; a policy change bumps a generation that a parking pick
//! checks after parking (and undoes it when it moved).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::lock;
use super::pool::{KeyPool, Slot};

/// Most models with an index (past it the least recently used makes room).
pub(super) const MAX_MODELS: usize = 64;
/// Longest a key stays parked before it is looked at again.
pub(super) const MAX_PARK: Duration = Duration::from_secs(60);

/// One model's parked keys and their wake-up times.
#[derive(Debug)]
pub(super) struct ModelIndex {
    name: Box<str>,
    /// This index's bit in a slot's mask.
    bit: u64,
    /// Bit `i`: key `i` is parked.
    words: Box<[AtomicU64]>,
    /// (wake-up, ns since the pool's epoch; key index), soonest first.
    wakes: Mutex<BinaryHeap<Reverse<(u64, usize)>>>,
    /// The soonest wake-up (`u64::MAX`: none); written under `wakes`' lock.
    next_wake: AtomicU64,
    /// When last used (ms since the pool's epoch), for eviction.
    used: AtomicU64,
}

impl ModelIndex {
    fn new(name: &str, id: usize, keys: usize) -> ModelIndex {
        let words = keys.div_ceil(64).max(1).next_power_of_two();
        ModelIndex {
            name: name.into(),
            bit: 1 << id,
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            wakes: Mutex::default(),
            next_wake: AtomicU64::new(u64::MAX),
            used: AtomicU64::new(0),
        }
    }

    /// How many keys the index covers.
    fn capacity(&self) -> usize {
        self.words.len() * 64
    }

    /// Whether key `i` is parked.
    #[inline]
    pub(super) fn is_parked(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (i % 64)) != 0)
    }

    /// Park key `i` until `wake` (ns since the epoch); true if it was not
    /// parked already. An overfull heap (entries left by unparking events)
    /// unparks everything instead.
    fn park(&self, i: usize, wake: u64) -> bool {
        let Some(word) = self.words.get(i / 64) else {
            return false;
        };
        let b = 1 << (i % 64);
        if word.fetch_or(b, Ordering::AcqRel) & b != 0 {
            return false;
        }
        let mut heap = lock(&self.wakes);
        if heap.len() >= 2 * self.capacity() + 64 {
            self.clear(&mut heap);
            return false;
        }
        heap.push(Reverse((wake, i)));
        self.next_wake.fetch_min(wake, Ordering::AcqRel);
        true
    }

    /// Unpark key `i`.
    pub(super) fn unpark(&self, i: usize) {
        if let Some(w) = self.words.get(i / 64) {
            w.fetch_and(!(1 << (i % 64)), Ordering::AcqRel);
        }
    }

    /// Unpark every key (the caller holds `wakes`' lock).
    fn clear(&self, heap: &mut BinaryHeap<Reverse<(u64, usize)>>) {
        heap.clear();
        for w in self.words.iter() {
            w.store(0, Ordering::Release);
        }
        self.next_wake.store(u64::MAX, Ordering::Release);
    }

    /// Unpark the keys whose wake-up time `now` (ns) reached; `unmask`
    /// clears this index's bit in a key's slot mask first.
    fn wake(&self, now: u64, mut unmask: impl FnMut(usize, u64)) {
        if now < self.next_wake.load(Ordering::Acquire) {
            return;
        }
        let mut heap = lock(&self.wakes);
        while let Some(Reverse((at, i))) = heap.peek().copied() {
            if at > now {
                break;
            }
            heap.pop();
            unmask(i, self.bit);
            self.unpark(i);
        }
        let next = heap.peek().map_or(u64::MAX, |Reverse((at, _))| *at);
        self.next_wake.store(next, Ordering::Release);
    }

    /// The unparked keys among the first `n`, as words (bit set: free).
    fn free_word(&self, w: usize, n: usize) -> u64 {
        let Some(word) = self.words.get(w) else {
            return 0;
        };
        let free = !word.load(Ordering::Acquire);
        let start = w * 64;
        if start >= n {
            0
        } else if n - start >= 64 {
            free
        } else {
            free & ((1u64 << (n - start)) - 1)
        }
    }

    /// The first unparked key in `lo..hi` (`hi` ≤ the keys `n`).
    fn first_free(&self, lo: usize, hi: usize, n: usize) -> Option<usize> {
        let mut w = lo / 64;
        let mut mask = !0u64 << (lo % 64);
        while w * 64 < hi {
            let free = self.free_word(w, n) & mask;
            if free != 0 {
                let i = w * 64 + free.trailing_zeros() as usize;
                return (i < hi).then_some(i);
            }
            w += 1;
            mask = !0;
        }
        None
    }

    /// The first unparked key at or after `start + off` going round the
    /// first `n` keys (and never back to `start`): its offset from `start`.
    pub(super) fn next_free(&self, start: usize, off: usize, n: usize) -> Option<usize> {
        let from = start + off;
        if from < n {
            if let Some(i) = self.first_free(from, n, n) {
                return Some(i - start);
            }
            self.first_free(0, start, n).map(|i| i + n - start)
        } else {
            self.first_free(from - n, start, n).map(|i| i + n - start)
        }
    }

    /// How many of the first `n` keys are unparked and not in `skip`.
    pub(super) fn count_free(&self, n: usize, skip: &[usize]) -> usize {
        let words = n.div_ceil(64).min(self.words.len());
        let free: usize = (0..words)
            .map(|w| self.free_word(w, n).count_ones() as usize)
            .sum();
        let skipped = skip
            .iter()
            .enumerate()
            .filter(|(k, i)| **i < n && !self.is_parked(**i) && !skip[..*k].contains(i))
            .count();
        free.saturating_sub(skipped)
    }

    /// The `nth` (from 0) unparked key among the first `n`, not in `skip`.
    pub(super) fn nth_free(&self, n: usize, mut nth: usize, skip: &[usize]) -> Option<usize> {
        for w in 0..n.div_ceil(64).min(self.words.len()) {
            let mut free = self.free_word(w, n);
            for i in skip.iter().filter(|i| **i / 64 == w) {
                free &= !(1 << (i % 64));
            }
            let count = free.count_ones() as usize;
            if nth >= count {
                nth -= count;
                continue;
            }
            for _ in 0..nth {
                free &= free - 1;
            }
            return Some(w * 64 + free.trailing_zeros() as usize);
        }
        None
    }
}

/// The models' indexes, by name.
#[derive(Debug, Default)]
struct Table {
    by_name: HashMap<Box<str>, usize>,
    models: Vec<ModelIndex>,
}

/// The pool's parked keys (see the module doc).
#[derive(Debug)]
pub(super) struct Parking {
    table: RwLock<Table>,
    /// Bumped by [`KeyPool::unpark_all`].
    generation: AtomicU64,
    epoch: Instant,
}

/// One pick's hold on a model's index (the table stays read-locked).
pub(super) struct Held<'a> {
    table: RwLockReadGuard<'a, Table>,
    id: usize,
    /// The generation when the pick began.
    generation: u64,
}

impl Held<'_> {
    /// The model's index.
    pub(super) fn index(&self) -> &ModelIndex {
        &self.table.models[self.id]
    }
}

impl Parking {
    /// No key parked.
    pub(super) fn new(epoch: Instant) -> Parking {
        Parking {
            table: RwLock::default(),
            generation: AtomicU64::new(0),
            epoch,
        }
    }

    /// Nanoseconds since the pool's epoch.
    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The generation now (load it before the policy a pick uses).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The index of `model` covering `n` keys (made, grown or evicting the
    /// least recently used as needed), used at `now`.
    pub(super) fn hold(&self, model: &str, n: usize, generation: u64, now: Instant) -> Held<'_> {
        let ms = self.ns(now) / 1_000_000;
        {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            if let Some(&id) = table.by_name.get(model)
                && table.models[id].capacity() >= n
            {
                // A write only when the millisecond changed (the line stays shared).
                let used = &table.models[id].used;
                if used.load(Ordering::Relaxed) != ms {
                    used.store(ms, Ordering::Relaxed);
                }
                return Held {
                    table,
                    id,
                    generation,
                };
            }
        }
        {
            let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
            let t = &mut *table;
            match t.by_name.get(model).copied() {
                Some(id) if t.models[id].capacity() >= n => {}
                Some(id) => t.models[id] = ModelIndex::new(model, id, n),
                None if t.models.len() < MAX_MODELS => {
                    let id = t.models.len();
                    t.models.push(ModelIndex::new(model, id, n));
                    t.by_name.insert(model.into(), id);
                }
                None => {
                    let id = (0..t.models.len())
                        .min_by_key(|id| t.models[*id].used.load(Ordering::Relaxed))
                        .unwrap_or(0);
                    t.by_name.remove(&t.models[id].name);
                    t.models[id] = ModelIndex::new(model, id, n);
                    t.by_name.insert(model.into(), id);
                }
            }
        }
        self.hold(model, n, generation, now)
    }
}

impl KeyPool {
    /// Wake the keys of `held`'s model whose time has come.
    pub(super) fn wake_parked(&self, held: &Held<'_>, now: Instant) {
        let now = self.parking.ns(now);
        held.index().wake(now, |i, bit| {
            if let Some(s) = self.slots.get(i) {
                s.parked.fetch_and(!bit, Ordering::AcqRel);
            }
        });
    }

    /// Park key `i` (`slot`, whose lock the caller holds) in `held`'s model
    /// until `until`.
    pub(super) fn park(&self, held: &Held<'_>, i: usize, slot: &Slot, until: Instant) {
        let index = held.index();
        if !index.park(i, self.parking.ns(until)) {
            return;
        }
        slot.parked.fetch_or(index.bit, Ordering::AcqRel);
        if self.parking.generation() != held.generation {
            // Everything was unparked since the pick began: so is this key.
            slot.parked.fetch_and(!index.bit, Ordering::AcqRel);
            index.unpark(i);
        }
    }

    /// Key `index` may be usable earlier than it was parked for: unpark it
    /// from every model (call it after the change, outside the key's lock).
    pub(super) fn unpark_key(&self, index: usize) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        if slot.parked.load(Ordering::Acquire) == 0 {
            return;
        }
        let mask = slot.parked.swap(0, Ordering::AcqRel);
        let table = self.parking.table.read().unwrap_or_else(|p| p.into_inner());
        for m in table.models.iter().filter(|m| mask & m.bit != 0) {
            m.unpark(index);
        }
    }

    /// Every key may be usable earlier than it was parked for (a new
    /// policy, the quota clock moved, the daily reset): unpark them all.
    pub(super) fn unpark_all(&self) {
        self.parking.generation.fetch_add(1, Ordering::AcqRel);
        let table = self.parking.table.read().unwrap_or_else(|p| p.into_inner());
        for m in &table.models {
            m.clear(&mut lock(&m.wakes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_keys_are_found_round_the_ring_past_parked_words() {
        let m = ModelIndex::new("m", 0, 300);
        for i in (0..300).filter(|i| ![5, 130, 299].contains(i)) {
            assert!(m.park(i, 1));
        }
        assert!(!m.park(7, 1), "parked once");
        assert_eq!(m.next_free(0, 0, 300), Some(5));
        assert_eq!(m.next_free(0, 6, 300), Some(130));
        assert_eq!(m.next_free(200, 0, 300), Some(99));
        assert_eq!(m.next_free(200, 100, 300), Some(105), "wrapped to 5");
        assert_eq!(m.next_free(200, 106, 300), Some(230), "then 130");
        assert_eq!(m.next_free(200, 231, 300), None, "never back to the start");
        assert_eq!(m.next_free(0, 0, 100), Some(5), "only the first n");
        assert_eq!(m.next_free(10, 0, 100), Some(95), "5, wrapped");
        assert_eq!(m.count_free(300, &[]), 3);
        assert_eq!(m.count_free(300, &[130, 130, 7]), 2);
        assert_eq!(m.nth_free(300, 0, &[]), Some(5));
        assert_eq!(m.nth_free(300, 2, &[]), Some(299));
        assert_eq!(m.nth_free(300, 1, &[130]), Some(299));
        assert_eq!(m.nth_free(300, 3, &[]), None);
        let mut woken = Vec::new();
        m.wake(0, |i, _| woken.push(i));
        assert!(woken.is_empty(), "not yet");
        m.wake(1, |i, _| woken.push(i));
        assert_eq!(woken.len(), 297);
        assert_eq!(m.count_free(300, &[]), 300);
    }
}
