//! Quotas the fake enforces, like Google's per project × model limits.
//!
//! A key carries limits by its name — leading `-`-separated segments
//! `rpm<N>` (requests per minute) and `rpd<N>` (requests per day), e.g.
//! `rpm5-key-a` or `rpm5-rpd20-key-b` — or explicitly
//! ([`FakeState::set_limits`](crate::FakeState::set_limits), control endpoint
//! `POST /__fake/limits/{key}` with `{"rpm": 5, "rpd": 20}`). Only
//! `generateContent` and `streamGenerateContent` count, per key × model:
//! requests in a sliding minute, and requests in Google's day (reset at
//! midnight US Pacific). An accepted call counts; a refused one does not.
//! Over a limit the call gets Google's real 429 body naming the violated
//! quota (`QuotaFailure` with `quotaMetric`, `quotaId`
//! `GenerateRequestsPerMinutePerProjectPerModel-FreeTier` or
//! `GenerateRequestsPerDayPerProjectPerModel-FreeTier`, `quotaDimensions`
//! {location, model}, `quotaValue`), a `Help` link and, per minute, a
//! `RetryInfo` with the real whole seconds until a slot frees.
//!
//! The quota clock is the real one plus an offset tests move forward
//! ([`FakeState::advance_clock`](crate::FakeState::advance_clock), control
//! endpoint `POST /__fake/clock` with `{"advance_secs": N}`), so a day
//! passes without waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A key's limits at the fake (`None` = unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute (sliding).
    pub rpm: Option<u32>,
    /// Requests per Pacific day.
    pub rpd: Option<u32>,
}

impl Limits {
    /// Limits named by a key's leading segments (`rpm5-rpd20-…`).
    pub fn from_key(key: &str) -> Limits {
        let mut l = Limits::default();
        for seg in key.split('-') {
            if let Some(n) = seg.strip_prefix("rpm").and_then(|n| n.parse().ok()) {
                l.rpm = Some(n);
            } else if let Some(n) = seg.strip_prefix("rpd").and_then(|n| n.parse().ok()) {
                l.rpd = Some(n);
            } else {
                break;
            }
        }
        l
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.rpd.is_some()
    }
}

/// Which quota a refused call broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Requests per minute; whole seconds until a slot frees.
    Minute { limit: u32, retry_secs: u64 },
    /// Requests per day (until Pacific midnight).
    Day { limit: u32 },
}

/// Most key × model windows kept (keys with limits are the tests' own).
const MAX_WINDOWS: usize = 10_000;

/// One key × model's counts.
#[derive(Debug, Default)]
struct Window {
    /// Accepted calls in the last minute (quota clock, ms), oldest first.
    minute: VecDeque<u64>,
    /// The Pacific day counted, and its accepted calls.
    day: (i64, u32),
}

/// The counters and the clock offset.
#[derive(Debug)]
pub(crate) struct Quotas {
    base: Instant,
    base_unix_ms: u64,
    offset_ms: u64,
    windows: HashMap<(String, String), Window>,
}

impl Quotas {
    pub(crate) fn new() -> Quotas {
        Quotas {
            base: Instant::now(),
            base_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            offset_ms: 0,
            windows: HashMap::new(),
        }
    }

    /// Move the quota clock forward.
    pub(crate) fn advance(&mut self, ms: u64) {
        self.offset_ms = self.offset_ms.saturating_add(ms);
    }

    /// Monotonic ms on the quota clock.
    fn now_ms(&self) -> u64 {
        (self.base.elapsed().as_millis() as u64).saturating_add(self.offset_ms)
    }

    /// Forget every count (the clock offset stays).
    pub(crate) fn clear(&mut self) {
        self.windows.clear();
    }

    /// Count a call of `key` on `model` under `limits`, or say which limit
    /// it breaks (then it is not counted).
    pub(crate) fn admit(
        &mut self,
        key: &str,
        model: &str,
        limits: Limits,
    ) -> Result<(), Violation> {
        let now = self.now_ms();
        let day = pacific_day((self.base_unix_ms + now) / 1000);
        let id = (key.to_string(), model.to_string());
        if !self.windows.contains_key(&id) && self.windows.len() >= MAX_WINDOWS {
            self.windows.clear();
        }
        let w = self.windows.entry(id).or_default();
        while w.minute.front().is_some_and(|t| t + 60_000 <= now) {
            w.minute.pop_front();
        }
        if w.day.0 != day {
            w.day = (day, 0);
        }
        if let Some(limit) = limits.rpd
            && w.day.1 >= limit
        {
            return Err(Violation::Day { limit });
        }
        if let Some(limit) = limits.rpm
            && w.minute.len() >= limit as usize
        {
            let oldest = w.minute.front().copied().unwrap_or(now);
            let left = (oldest + 60_000).saturating_sub(now);
            return Err(Violation::Minute {
                limit,
                retry_secs: left.div_ceil(1000).max(1),
            });
        }
        w.minute.push_back(now);
        if w.minute.len() > limits.rpm.unwrap_or(0).max(1) as usize {
            w.minute.pop_front();
        }
        w.day.1 += 1;
        Ok(())
    }
}

/// The day number (since 1970) in US Pacific time at unix second `t`.
pub(crate) fn pacific_day(t: u64) -> i64 {
    let t = t as i64;
    let offset = if pacific_dst(t) { 7 * 3600 } else { 8 * 3600 };
    (t - offset).div_euclid(86_400)
}

/// Whether US Pacific daylight time is in force at unix second `t`
/// (second Sunday of March 02:00 PST to first Sunday of November 02:00 PDT).
fn pacific_dst(t: i64) -> bool {
    let year = year_of((t - 8 * 3600).div_euclid(86_400));
    let nth_sunday = |month: u32, n: i64| {
        let first = days_from_civil(year, month, 1);
        let weekday = (first + 4).rem_euclid(7);
        first + (7 - weekday) % 7 + 7 * (n - 1)
    };
    let start = nth_sunday(3, 2) * 86_400 + 10 * 3600;
    let end = nth_sunday(11, 1) * 86_400 + 9 * 3600;
    t >= start && t < end
}

/// The year of day `z` since 1970-01-01.
fn year_of(z: i64) -> i64 {
    let mut y = 1970 + z.div_euclid(366);
    while days_from_civil(y + 1, 1, 1) <= z {
        y += 1;
    }
    y
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_key_names() {
        assert_eq!(
            Limits::from_key("rpm5-rpd20-key"),
            Limits {
                rpm: Some(5),
                rpd: Some(20)
            }
        );
        assert_eq!(Limits::from_key("rpd3-x").rpd, Some(3));
        assert!(!Limits::from_key("key-rpm5").any());
    }

    #[test]
    fn minute_and_day_windows() {
        let mut q = Quotas::new();
        let l = Limits {
            rpm: Some(2),
            rpd: Some(3),
        };
        assert!(q.admit("k", "m", l).is_ok());
        assert!(q.admit("k", "m", l).is_ok());
        assert!(q.admit("k", "other", l).is_ok(), "per model");
        match q.admit("k", "m", l) {
            Err(Violation::Minute {
                limit: 2,
                retry_secs,
            }) => assert!((59..=60).contains(&retry_secs)),
            other => panic!("{other:?}"),
        }
        q.advance(61_000);
        assert!(q.admit("k", "m", l).is_ok());
        assert_eq!(q.admit("k", "m", l), Err(Violation::Day { limit: 3 }));
        q.advance(86_400_000);
        assert!(q.admit("k", "m", l).is_ok(), "a new Pacific day");
    }

    #[test]
    fn pacific_days() {
        // 2026-07-01 06:59:59 UTC is still 2026-06-30 in PDT.
        let d = days_from_civil(2026, 7, 1);
        assert_eq!(pacific_day((d * 86_400 + 6 * 3600 + 3599) as u64), d - 1);
        assert_eq!(pacific_day((d * 86_400 + 7 * 3600) as u64), d);
        let w = days_from_civil(2026, 1, 15);
        assert_eq!(pacific_day((w * 86_400 + 8 * 3600) as u64), w);
    }
}
