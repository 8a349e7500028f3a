//! The key pool: which Gemini key serves the next call, and what each
//! upstream outcome does to a key.
//!
//! A key is *active*, *cooling* for one model (429, until a deadline),
//! *resting* (after `MAX_FAILURES` consecutive transient failures, with a
//! backoff doubling from 5 s to 5 min) or *disabled* (invalid, expired,
//! suspended: until it passes re-verification). Selection skips every key that
//! is not usable for the model at hand, so a request is never sent on a key
//! known to be dead.
//!
//! Keys can be added and removed while requests run: the slots form an
//! append-only list ([`slots`]); a removed key is tombstoned, never shifted,
//! so the index an in-flight request holds stays valid, and a key added again
//! revives its slot. Every state change is handed to the store's recorder
//! (`KeyPool::set_recorder`, without a lock held) and changes made by other
//! replicas come back through `KeyPool::apply` ([`sync`]).
//!
//! * [`outcome`] — upstream answer → [`Outcome`]; the Pacific-midnight clock.
//! * [`pool`] — [`KeyPool`]: its keys and state, outcomes (`report`), resets.
//! * [`select`] — choosing a key (`pick`) under `KEY_SELECTION`.
//! * [`parking`] — keys parked out of a model's rotation until they may
//!   serve again, so a pick's cost does not grow with the unusable keys.
//! * [`headroom`] — the pool's side of quotas: policy, quota clock, learning
//!   from 429s, token corrections, [`QuotaWait`].
//! * [`quota`] — limits per key × model (learned, `MODEL_LIMITS`, free-tier
//!   defaults) and the counts that let `pick` skip a key without headroom.
//! * [`shared`] — quota counts shared across replicas (Redis mode) and the
//!   share rule that bounds their overshoot.
//! * [`queue`] — waiting in line for quota headroom (`QUEUE_TIMEOUT`).
//! * [`slots`] — the append-only slot list behind the pool.
//! * [`sync`] — the pool and the store: adding/removing keys, restoring kept
//!   state, applying other replicas' changes.
//! * [`view`] — what `/status` and `/admin/keys` show of the keys.
//!
//! Locks are short and per key; selection takes no pool-wide lock (one
//! compare-and-swap for round robin, one atomic add per random draw; the
//! model's parking index is read-locked, written only when a model is
//! first seen) and is even among the usable keys, whatever dead keys lie
//! between them.

pub mod headroom;
pub mod outcome;
mod parking;
pub mod pool;
pub mod queue;
pub mod quota;
mod select;
pub mod shared;
pub mod slots;
pub mod sync;
pub mod view;

#[cfg(test)]
mod tests;

use std::sync::Mutex;

pub use crate::clock::unix_now;
#[cfg(test)]
pub(crate) use outcome::days_from_civil;
pub use outcome::{Outcome, classify, parse_duration, until_pacific_midnight};
pub use pool::{Counts, KeyLengths, KeyPool, MAX_COOLING, MAX_KEYS, Pick, QuotaWait, Recorder};
pub use quota::{
    ModelLimits, Policy as QuotaPolicy, QuotaInfo, WindowInfo, estimate_tokens,
    info_json as quota_json,
};
pub use sync::Added;
pub use view::{KeyInfo, Today};

/// Mask a secret for display: `AIza…x1Y2` (first 4, last 4); short values
/// show only their last 2 characters.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 12 {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    } else if chars.len() > 4 {
        let tail: String = chars[chars.len() - 2..].iter().collect();
        format!("…{tail}")
    } else {
        "…".to_string()
    }
}

/// How the next key is chosen (`KEY_SELECTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Each call takes the next usable key in turn.
    RoundRobin,
    /// A pseudo-random usable key.
    Random,
    /// The usable key with the fewest calls so far.
    LeastUsed,
    /// The lite edition's habit: one key per 10-second slice of time.
    TimeWindow,
}

impl Selection {
    /// Parse `KEY_SELECTION`.
    pub fn parse(s: &str) -> Option<Selection> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "round_robin" | "roundrobin" => Some(Selection::RoundRobin),
            "random" => Some(Selection::Random),
            "least_used" => Some(Selection::LeastUsed),
            "time_window" => Some(Selection::TimeWindow),
            _ => None,
        }
    }

    /// The selection a [`KeyPool`] keeps in an atomic (see [`KeyPool::set_policy`]).
    pub(crate) fn from_u8(v: u8) -> Selection {
        match v {
            1 => Selection::Random,
            2 => Selection::LeastUsed,
            3 => Selection::TimeWindow,
            _ => Selection::RoundRobin,
        }
    }
}
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Constant-time string equality (length differences still return early,
/// which reveals only the length).
pub fn subtle_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether `candidate` is one of `tokens`, comparing every token in constant time.
pub fn token_matches(tokens: &[String], candidate: &str) -> bool {
    let mut found = false;
    for t in tokens {
        found |= subtle_eq(t, candidate);
    }
    found
}
