//! Choosing a key: [`KeyPool::pick`] and the selections (`KEY_SELECTION`)
//! over the keys not parked for the model ([`super::parking`]), and what a
//! pick answers when no key can serve.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::parking::{Held, MAX_PARK};
use super::pool::{KeyPool, Pick, QuotaWait, Slot, State};
use super::quota::{Clock, Full, Policy};
use super::{Selection, lock, unix_now};

/// One decision's view of time: the pool's instant and, when quota aware,
/// the policy and the quota clock.
pub(super) struct At<'a> {
    pub(super) now: Instant,
    /// The call's estimated input tokens (0: not counted).
    pub(super) tokens: u32,
    pub(super) quota: Option<(&'a Policy, Clock)>,
}

/// Why a key cannot serve now: how long until it can, and whether (and
/// which) quota limit is part of it.
struct Wait {
    wait: Duration,
    full: Option<Full>,
}

/// One pick: the model, the keys already tried, the time, the model's index.
struct Ctx<'a> {
    model: &'a str,
    tried: &'a [usize],
    at: At<'a>,
    held: Held<'a>,
}

/// When a key in state `st` can next be used for `model` (None = now), and
/// whether a quota limit is part of why; a disabled or removed key ("never
/// until re-verified") is `Err(())`.
fn wait_in(st: &State, model: &str, at: &At<'_>) -> Result<Option<Wait>, ()> {
    let now = at.now;
    if st.disabled.is_some() || st.removed {
        return Err(());
    }
    let mut wait: Option<Duration> = None;
    if let Some(r) = st.rest_until.filter(|r| *r > now) {
        wait = Some(r - now);
    }
    for c in &st.cooling {
        if c.model == model && c.until > now {
            let w = c.until - now;
            wait = Some(wait.map_or(w, |x| x.max(w)));
        }
    }
    let full = at.quota.as_ref().and_then(|(policy, clock)| {
        st.quota
            .full(crate::model::label(model), policy, clock, at.tokens)
    });
    if let Some(f) = full {
        wait = Some(wait.map_or(f.wait, |x| x.max(f.wait)));
    }
    Ok(wait.map(|wait| Wait { wait, full }))
}

impl KeyPool {
    /// Choose a usable key for `model`, skipping indices in `tried`.
    ///
    /// Every selection chooses evenly among the usable keys: a dead key's
    /// turns are never handed to its neighbour. When quota aware, a key
    /// without headroom for the model is skipped like a cooling one, and
    /// the call is counted on the key chosen (under its lock: concurrent
    /// picks cannot overshoot a limit). Cost: a key found unusable is
    /// parked out of the model's rotation until it may serve again
    /// ([`super::parking`]), so a pick looks at the usable keys only — the
    /// same with 3 keys or 10,000 of which 9,900 are cooling (round robin,
    /// random, time window; least used looks at every usable key) — plus
    /// a word per 64 parked keys; when no key at all can serve, one pass
    /// over the keys says why. No allocation.
    pub fn pick(&self, model: &str, tried: &[usize]) -> Pick {
        self.pick_tokens(model, tried, 0)
    }

    /// [`KeyPool::pick`] for a call of `tokens` estimated input tokens
    /// (counted against the keys' input tokens per minute).
    pub fn pick_tokens(&self, model: &str, tried: &[usize], tokens: u32) -> Pick {
        self.apply_corrections();
        let n = self.slots.len();
        if n == 0 {
            return Pick::Unavailable;
        }
        // The generation first: a policy stored after it unparks what this
        // pick parks by the policy it loads.
        let generation = self.parking.generation();
        let now = Instant::now();
        let policy = self.policy.load();
        let qmodel = crate::model::label(model);
        let cx = Ctx {
            model,
            tried,
            at: At {
                now,
                tokens,
                quota: policy.aware.then(|| (&**policy, self.quota_clock(now))),
            },
            held: self.parking.hold(qmodel, n, generation, now),
        };
        self.wake_parked(&cx.held, now);
        // A key that lost its last slot to a concurrent pick between the
        // check and the count is skipped on the next round. After 4 rounds,
        // or when none is usable: why — unless a key parked by mistake can
        // serve after all (then it is unparked and the choice made again).
        let (mut rounds, mut again, mut evicted) = (0, true, false);
        let i = loop {
            rounds += 1;
            let chosen = if rounds <= 4 {
                self.choose(n, &cx)
            } else {
                None
            };
            let Some(i) = chosen else {
                if let Some(pick) = self.none_usable(&cx, again) {
                    return pick;
                }
                (rounds, again) = (0, false);
                continue;
            };
            let Some(slot) = self.slots.get(i) else {
                continue;
            };
            let mut st = lock(&slot.state);
            if let Some((policy, clock)) = &cx.at.quota {
                if !st.quota.reserve(qmodel, policy, clock, tokens) {
                    continue;
                }
                evicted = std::mem::take(&mut st.quota.evicted);
                self.note_quota(i, qmodel, clock, 1, i64::from(tokens));
            }
            st.last_used = Some(unix_now());
            drop(st);
            slot.calls.fetch_add(1, Ordering::Relaxed);
            break i;
        };
        // The model index is let go first (unparking takes the table).
        drop(cx);
        if evicted {
            // Another model's counts made room: it may serve that one sooner.
            self.unpark_key(i);
        }
        Pick::Key(i)
    }

    /// The key the configured selection chooses among the usable ones.
    fn choose(&self, n: usize, cx: &Ctx<'_>) -> Option<usize> {
        match Selection::from_u8(self.selection.load(Ordering::Relaxed)) {
            Selection::RoundRobin => self.next_in_turn(n, cx),
            Selection::Random => self.random_usable(n, cx),
            // The usable key with the fewest calls (dead keys never count as
            // least used); ties go to the lowest index.
            Selection::LeastUsed => {
                let mut best: Option<(u64, usize)> = None;
                let mut off = 0;
                while let Some(o) = cx.held.index().next_free(0, off, n) {
                    off = o + 1;
                    if self.usable(o, cx) {
                        let calls = self
                            .slots
                            .get(o)
                            .map_or(u64::MAX, |s| s.calls.load(Ordering::Relaxed));
                        if best.is_none_or(|(c, _)| calls < c) {
                            best = Some((calls, o));
                        }
                    }
                }
                best.map(|(_, i)| i)
            }
            // One key per 10-second window; when that key is dead, the
            // window's calls go round robin over the usable keys instead of
            // all to the next one.
            Selection::TimeWindow => {
                let window = (cx.at.now.duration_since(self.epoch).as_secs() / 10) as usize % n;
                if self.usable(window, cx) {
                    Some(window)
                } else {
                    self.next_in_turn(n, cx)
                }
            }
        }
    }

    /// Nothing usable: say how long until the first cooling, resting or
    /// full key comes back (a tried key counts too: it may serve the next
    /// request); when every such key is at a quota limit, say which. A
    /// parked key found usable after all (freed by a change no event
    /// told of) is unparked, and `None` says to choose again.
    fn none_usable(&self, cx: &Ctx<'_>, unpark: bool) -> Option<Pick> {
        let mut soonest: Option<Wait> = None;
        let (mut waiting, mut full, mut stale) = (0, 0, false);
        for (i, slot) in self.slots.iter() {
            match wait_in(&lock(&slot.state), cx.model, &cx.at) {
                Ok(Some(w)) => {
                    waiting += 1;
                    full += usize::from(w.full.is_some());
                    if soonest.as_ref().is_none_or(|s| w.wait < s.wait) {
                        soonest = Some(w);
                    }
                }
                Ok(None) if unpark && !cx.tried.contains(&i) && cx.held.index().is_parked(i) => {
                    cx.held.index().unpark(i);
                    stale = true;
                }
                _ => {}
            }
        }
        if stale {
            return None;
        }
        Some(match soonest {
            Some(Wait {
                wait,
                full: Some(f),
            }) if full == waiting => Pick::Quota(QuotaWait {
                keys: full,
                limit: f.limit,
                window: f.window,
                wait,
            }),
            Some(w) => Pick::Cooling(w.wait),
            None => Pick::Unavailable,
        })
    }

    /// Whether key `index` can serve the pick's model now and was not tried
    /// yet. A parked key is not looked at; a key found unusable is parked
    /// until it may serve again (see [`KeyPool::park_unusable`]).
    fn usable(&self, index: usize, cx: &Ctx<'_>) -> bool {
        if cx.tried.contains(&index) || cx.held.index().is_parked(index) {
            return false;
        }
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        #[cfg(test)]
        self.examined.fetch_add(1, Ordering::Relaxed);
        let st = lock(&slot.state);
        match wait_in(&st, cx.model, &cx.at) {
            Ok(None) => true,
            found => {
                self.park_unusable(index, slot, &st, found.map(|w| w.map(|w| w.wait)), cx);
                false
            }
        }
    }

    /// Park key `index` (state `st`, locked) found unusable (`wait`: until
    /// it may serve this call, `Err`: disabled or removed) until the
    /// earliest moment it may serve any call of the model.
    fn park_unusable(
        &self,
        index: usize,
        slot: &Slot,
        st: &State,
        wait: Result<Option<Duration>, ()>,
        cx: &Ctx<'_>,
    ) {
        let wait = match wait {
            Err(()) => MAX_PARK,
            // Full perhaps only for this call's tokens: a call counting
            // none is the smallest (its limits are rpm, rpd, cooling, rest).
            Ok(Some(_)) if cx.at.tokens > 0 => {
                let at = At {
                    now: cx.at.now,
                    tokens: 0,
                    quota: cx.at.quota,
                };
                match wait_in(st, cx.model, &at) {
                    Ok(Some(w)) => w.wait,
                    _ => return,
                }
            }
            Ok(Some(w)) => w,
            Ok(None) => return,
        };
        // A little early (the quota clock counts whole ms): at worst one
        // more look.
        let wait = wait.saturating_sub(Duration::from_millis(1)).min(MAX_PARK);
        self.park(&cx.held, index, slot, cx.at.now + wait);
    }

    /// Round robin over the usable keys among the first `n`: the first
    /// usable key at or after the cursor, and the cursor moves to just after
    /// the key chosen (one compare-and-swap; a pick that lost the race scans
    /// again from where the winner left it). So usable keys take turns
    /// whatever dead keys lie between them, also under many concurrent
    /// callers. Parked keys are skipped 64 at a time, unlooked at.
    fn next_in_turn(&self, n: usize, cx: &Ctx<'_>) -> Option<usize> {
        let mut cursor = self.cursor.load(Ordering::Acquire);
        loop {
            let start = cursor % n;
            let mut off = 0;
            let i = loop {
                let o = cx.held.index().next_free(start, off, n)?;
                let i = (start + o) % n;
                if self.usable(i, cx) {
                    break i;
                }
                off = o + 1;
            };
            match self.cursor.compare_exchange_weak(
                cursor,
                (i + 1) % n,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(i),
                Err(moved) => cursor = moved,
            }
        }
    }

    /// A key drawn uniformly from the usable ones among the first `n`. First
    /// a few draws over all keys, taking the first usable one (rejection
    /// sampling: uniform over the usable keys, and O(1) while most keys are
    /// healthy); if those all hit dead keys, draws among the unparked keys
    /// only (uniform too: a key found unusable is parked and the draw
    /// repeated).
    fn random_usable(&self, n: usize, cx: &Ctx<'_>) -> Option<usize> {
        for _ in 0..n.min(8) {
            let i = self.random_below(n);
            if self.usable(i, cx) {
                return Some(i);
            }
        }
        let index = cx.held.index();
        loop {
            let free = index.count_free(n, cx.tried);
            if free == 0 {
                return None;
            }
            let i = index.nth_free(n, self.random_below(free), cx.tried)?;
            if self.usable(i, cx) {
                return Some(i);
            }
            if !index.is_parked(i) {
                // Neither usable nor parked (full only for this call's
                // tokens, or unparked meanwhile): one pass of reservoir
                // sampling over the unparked keys settles it.
                return self.reservoir(n, cx);
            }
        }
    }

    /// Reservoir sampling over the usable unparked keys (uniform).
    fn reservoir(&self, n: usize, cx: &Ctx<'_>) -> Option<usize> {
        let (mut chosen, mut seen, mut off) = (None, 0, 0);
        while let Some(i) = cx.held.index().next_free(0, off, n) {
            off = i + 1;
            if self.usable(i, cx) {
                seen += 1;
                if self.random_below(seen) == 0 {
                    chosen = Some(i);
                }
            }
        }
        chosen
    }

    /// A pseudo-random number in `0..bound` (splitmix64 over a shared Weyl
    /// sequence: lock-free, cheap, well spread; not for secrets).
    fn random_below(&self, bound: usize) -> usize {
        let mut z = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z as u128 * bound as u128) >> 64) as usize
    }
}
