//! The pool's slots: an append-only list that readers walk without a lock.
//!
//! Slots live in segments that double in size (16, 32, 64, …) and are never
//! moved or freed while the pool lives, so `&Slot` (and the key inside it)
//! stays valid for as long as the pool is borrowed, also while other threads
//! add keys. Readers load the published length once ([`Slots::len`]) and
//! index below it: no lock, no allocation. Appending takes the pool's
//! index lock (one writer at a time) and publishes the new length last.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Size of the first segment; segment `k` holds `FIRST << k` slots.
const FIRST: usize = 16;
/// Number of segments: room for `FIRST * (2^SEGMENTS - 1)` slots, far above
/// [`super::MAX_KEYS`].
const SEGMENTS: usize = 20;

/// One segment: allocated on first use, then never moved.
type Segment<T> = OnceLock<Box<[OnceLock<T>]>>;

/// An append-only list of `T`, readable without a lock.
pub struct Slots<T> {
    segments: Box<[Segment<T>]>,
    len: AtomicUsize,
}

/// Segment and offset of index `i`.
fn locate(i: usize) -> (usize, usize) {
    let j = i / FIRST + 1;
    let k = (usize::BITS - 1 - j.leading_zeros()) as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            segments: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl<T> std::fmt::Debug for Slots<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slots({})", self.len())
    }
}

impl<T> Slots<T> {
    /// How many slots are published (every index below is readable).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether there is no slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot at `i`, if published.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len() {
            return None;
        }
        let (k, off) = locate(i);
        self.segments.get(k)?.get()?.get(off)?.get()
    }

    /// Append `value`, returning its index (`None` when the list is full).
    /// Callers serialise appends (the pool holds its index lock).
    pub fn push(&self, value: T) -> Option<usize> {
        let i = self.len.load(Ordering::Acquire);
        let (k, off) = locate(i);
        let segment = self
            .segments
            .get(k)?
            .get_or_init(|| (0..FIRST << k).map(|_| OnceLock::new()).collect());
        segment.get(off)?.set(value).ok()?;
        self.len.store(i + 1, Ordering::Release);
        Some(i)
    }

    /// Every published slot with its index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        (0..self.len()).filter_map(|i| self.get(i).map(|s| (i, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_indices() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(15), (0, 15));
        assert_eq!(locate(16), (1, 0));
        assert_eq!(locate(47), (1, 31));
        assert_eq!(locate(48), (2, 0));
        let s: Slots<usize> = Slots::default();
        for i in 0..1000 {
            assert_eq!(s.push(i * 3), Some(i));
        }
        assert_eq!(s.len(), 1000);
        assert!((0..1000).all(|i| s.get(i) == Some(&(i * 3))));
        assert_eq!(s.get(1000), None);
        assert_eq!(s.iter().count(), 1000);
    }

    #[test]
    fn readers_see_slots_appended_by_another_thread() {
        let s: std::sync::Arc<Slots<String>> = std::sync::Arc::default();
        let w = s.clone();
        let writer = std::thread::spawn(move || {
            for i in 0..5000 {
                w.push(format!("k{i}"));
            }
        });
        while s.len() < 5000 {
            let n = s.len();
            if n > 0 {
                assert_eq!(s.get(n - 1), Some(&format!("k{}", n - 1)));
            }
        }
        writer.join().unwrap();
    }
}
