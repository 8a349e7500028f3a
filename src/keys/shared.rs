//! Quota counts shared across replicas (Redis mode): the pool's side.
//!
//! Each replica counts its own calls per key × model at pick time, in local
//! memory (the request path never waits on the store), and notes them as
//! [`QuotaDelta`]s; a background tick (`crate::replica`, every 250 ms)
//! hands them to the store (`StoreHandle::quota_sync`) and applies what it
//! reads back of the other replicas ([`KeyPool::apply_quota_view`]) to each
//! key × model's [`Others`]. A pick counts local + others' last-known.
//!
//! **The overshoot bound.** Another replica's calls reach this one a tick or
//! two late (at most [`SYNC_LAG_MS`]): calls made in that lag by two
//! replicas at once could both take a key's last slots. So each replica
//! may make only its share of a key's headroom unseen: with `N` replicas
//! syncing, `h` the headroom left when this replica's recent (not yet
//! surely seen) calls `r` are set aside, a call is allowed while
//! `r < max(1, h / N)`. The replicas' unseen calls together are then at
//! most `h + N - 1` (at most one past the headroom per replica), whatever
//! the interleaving, and the pick still never waits on Redis (a key whose
//! share is spent is skipped like a full one, its slot open again within
//! [`SYNC_LAG_MS`]). Alone (memory/file modes, or one replica) `N = 1` and
//! the rule is the plain limit. The same holds for the requests per day.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::lock;
use super::pool::KeyPool;
use super::quota::Clock;
use crate::store::model::{QuotaDelta, QuotaView};

/// How long a call of this replica may stay unseen by the others (a push
/// tick, a read tick and slack).
pub const SYNC_LAG_MS: u64 = 1_000;
/// Most (key, model, second) deltas waiting for the next tick.
const PENDING_MAX: usize = 100_000;
/// Most seconds of others' counts kept per key × model.
const OTHERS_CAP: usize = 64;

/// The other replicas' counts of one key × model, as last read.
#[derive(Debug, Default)]
pub(super) struct Others {
    /// (unix second, requests, input tokens), oldest first.
    seconds: VecDeque<(u64, u32, u32)>,
    /// (Pacific day, requests).
    day: (i64, u32),
}

/// When a call counted in unix second `sec` leaves the sliding minute (wall ms).
fn leaves(sec: u64) -> u64 {
    (sec + 1) * 1000 + 60_000
}

impl Others {
    fn live<'a>(&'a self, c: &'a Clock) -> impl Iterator<Item = &'a (u64, u32, u32)> + 'a {
        self.seconds
            .iter()
            .filter(|(s, _, _)| leaves(*s) > c.wall_ms)
    }

    /// Their requests in the sliding minute.
    pub(super) fn minute(&self, c: &Clock) -> u32 {
        self.live(c).map(|(_, r, _)| *r).sum()
    }

    /// Their input tokens in the sliding minute.
    pub(super) fn tokens(&self, c: &Clock) -> u64 {
        self.live(c).map(|(_, _, t)| u64::from(*t)).sum()
    }

    /// Their requests today.
    pub(super) fn day(&self, c: &Clock) -> u32 {
        if self.day.0 == c.day { self.day.1 } else { 0 }
    }

    /// Until their oldest counted request leaves the minute (None: none).
    pub(super) fn minute_resets_ms(&self, c: &Clock) -> Option<u64> {
        self.live(c)
            .find(|(_, r, _)| *r > 0)
            .map(|(s, _, _)| leaves(*s) - c.wall_ms)
    }

    /// Until their oldest counted tokens leave the minute (None: none).
    pub(super) fn tokens_resets_ms(&self, c: &Clock) -> Option<u64> {
        self.live(c)
            .find(|(_, _, t)| *t > 0)
            .map(|(s, _, _)| leaves(*s) - c.wall_ms)
    }

    /// Their counts of second `sec` (a value `None` is unchanged).
    fn set(&mut self, sec: u64, requests: Option<u32>, tokens: Option<u32>, c: &Clock) {
        while self
            .seconds
            .front()
            .is_some_and(|(s, _, _)| leaves(*s) <= c.wall_ms)
        {
            self.seconds.pop_front();
        }
        let at = self.seconds.partition_point(|(s, _, _)| *s < sec);
        match self.seconds.get_mut(at) {
            Some(e) if e.0 == sec => {
                e.1 = requests.unwrap_or(e.1);
                e.2 = tokens.unwrap_or(e.2);
            }
            _ => {
                let e = (sec, requests.unwrap_or(0), tokens.unwrap_or(0));
                self.seconds.insert(at, e);
                if self.seconds.len() > OTHERS_CAP {
                    self.seconds.pop_front();
                }
            }
        }
    }

    /// Add `added` requests to their count of `day` (a later day starts over).
    fn add_day(&mut self, day: i64, added: i64) {
        if day > self.day.0 {
            self.day = (day, 0);
        }
        if day == self.day.0 {
            let n = i64::from(self.day.1) + added;
            self.day.1 = n.clamp(0, i64::from(u32::MAX)) as u32;
        }
    }
}

/// Whether a replica's own unseen calls `recent` have used its share of a
/// limit `limit` with `used` counted in all (`replicas` syncing); see the
/// module doc.
pub(super) fn share_spent(limit: u32, used: u32, recent: u32, replicas: u32) -> bool {
    if replicas <= 1 || recent == 0 {
        return false;
    }
    let headroom = limit.saturating_sub(used.saturating_sub(recent));
    recent >= (headroom / replicas).max(1)
}

/// (key index, model, unix second) → (Pacific day, requests, tokens).
type Pending = HashMap<(usize, String, u64), (i64, i64, i64)>;

/// The pool's sharing state: on in Redis mode.
#[derive(Debug)]
pub(super) struct Sharing {
    on: AtomicBool,
    /// Replicas syncing (this one included).
    pub(super) replicas: AtomicU32,
    /// Counts not yet handed over.
    pending: Mutex<Pending>,
}

impl Default for Sharing {
    fn default() -> Sharing {
        Sharing {
            on: AtomicBool::new(false),
            replicas: AtomicU32::new(1),
            pending: Mutex::default(),
        }
    }
}

impl KeyPool {
    /// Share this pool's quota counts with other replicas from now on (the
    /// caller runs the sync tick: [`KeyPool::take_quota_deltas`],
    /// [`KeyPool::apply_quota_view`]).
    pub fn share_quota(&self) {
        self.sharing.on.store(true, Ordering::Relaxed);
    }

    /// Note `requests` calls and `tokens` input tokens counted (or given
    /// back) on key `index` for `model` now, when shared.
    pub(super) fn note_quota(&self, index: usize, model: &str, c: &Clock, req: i64, tok: i64) {
        if !self.sharing.on.load(Ordering::Relaxed) || (req == 0 && tok == 0) {
            return;
        }
        let mut p = lock(&self.sharing.pending);
        let k = (index, model.to_string(), c.wall_ms / 1000);
        if p.len() >= PENDING_MAX && !p.contains_key(&k) {
            return;
        }
        let e = p.entry(k).or_insert((c.day, 0, 0));
        e.1 += req;
        e.2 += tok;
    }

    /// The quota clock's wall time (unix ms) and Pacific day now.
    pub fn quota_now(&self) -> (u64, i64) {
        let c = self.quota_clock(tokio::time::Instant::now());
        (c.wall_ms, c.day)
    }

    /// This replica's counts since the last call, for the store.
    pub fn take_quota_deltas(&self) -> Vec<QuotaDelta> {
        let p = std::mem::take(&mut *lock(&self.sharing.pending));
        p.into_iter()
            .filter_map(|((index, model, sec), (day, requests, tokens))| {
                Some(QuotaDelta {
                    key_id: self.id(index)?.to_string(),
                    model,
                    sec,
                    day,
                    requests,
                    tokens,
                })
            })
            .collect()
    }

    /// Take the other replicas' counts a sync read (see the module doc).
    pub fn apply_quota_view(&self, v: &QuotaView) {
        let replicas = u32::try_from(v.replicas.max(1)).unwrap_or(u32::MAX);
        self.sharing.replicas.store(replicas, Ordering::Relaxed);
        let c = self.quota_clock(tokio::time::Instant::now());
        // Others' counts may have gone down (a refused call given back, a
        // replica gone): a key parked by them is looked at again.
        for s in &v.seconds {
            let Some(i) = self.position_of_id(&s.key_id) else {
                continue;
            };
            let Some(slot) = self.slots.get(i) else {
                continue;
            };
            let (day, _) = super::outcome::pacific_day_and_left(s.sec);
            let mut st = lock(&slot.state);
            let m = st.quota.entry(&s.model, &c);
            m.others.set(s.sec, s.requests, s.tokens, &c);
            if s.added != 0 {
                m.others.add_day(day, s.added);
            }
            drop(st);
            self.unpark_key(i);
        }
        for d in &v.days {
            let Some(i) = self.position_of_id(&d.key_id) else {
                continue;
            };
            let Some(slot) = self.slots.get(i) else {
                continue;
            };
            let mut st = lock(&slot.state);
            let m = st.quota.entry(&d.model, &c);
            m.others.day = (d.day, d.requests);
            drop(st);
            self.unpark_key(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replica_spends_only_its_share_of_the_headroom_unseen() {
        // Alone: only the limit counts.
        assert!(!share_spent(5, 4, 4, 1));
        // Two replicas, 5 free: two unseen calls each, then wait for the sync.
        assert!(!share_spent(5, 1, 1, 2));
        assert!(share_spent(5, 2, 2, 2));
        // One slot left: one unseen call each at most (one over, per replica).
        assert!(!share_spent(5, 4, 0, 2));
        assert!(share_spent(5, 5, 1, 2));
        // Seen calls do not count against the share.
        assert!(!share_spent(10, 6, 1, 2));
    }

    #[test]
    fn others_slide_out_of_the_minute_and_count_per_day() {
        let c = |wall_ms| Clock {
            ms: 0,
            day: 7,
            to_midnight: std::time::Duration::from_secs(60),
            wall_ms,
            replicas: 2,
        };
        let mut o = Others::default();
        o.set(100, Some(2), Some(50), &c(100_500));
        o.set(101, Some(1), None, &c(101_000));
        o.set(100, Some(3), None, &c(101_000));
        assert_eq!(o.minute(&c(101_000)), 4);
        assert_eq!(o.tokens(&c(101_000)), 50);
        assert_eq!(o.minute_resets_ms(&c(101_000)), Some(60_000));
        assert_eq!(o.minute(&c(161_000)), 1, "second 100 left at 161 s");
        o.add_day(7, 3);
        o.add_day(7, -1);
        assert_eq!(o.day(&c(0)), 2);
        o.add_day(8, 1);
        assert_eq!(o.day(&c(0)), 0, "a later day starts over");
    }
}
