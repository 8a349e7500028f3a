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
//! All state sits behind [`KeyPool`]'s methods (`pick`, `report`, `snapshot`,
//! `reset`, `revive`), so a shared store (Redis) could replace it without
//! touching the handlers. Locks are short and per key; selection is lock-free
//! (one compare-and-swap for round robin, one atomic add per random draw) and
//! even among the usable keys, whatever dead keys lie between them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
// The pool's clock: tokio's, so tests can pause and advance it
// (`tokio::time::pause`); outside a runtime, or unpaused, it is std's.
use tokio::time::Instant;

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
    fn from_u8(v: u8) -> Selection {
        match v {
            1 => Selection::Random,
            2 => Selection::LeastUsed,
            3 => Selection::TimeWindow,
            _ => Selection::RoundRobin,
        }
    }
}

/// What an upstream answer means for the key that made it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 2xx: resets consecutive failures.
    Success,
    /// The key itself is bad (invalid, expired, suspended, 401/403): disable it.
    KeyInvalid(String),
    /// 429: cool the key down for this model until the deadline.
    Quota {
        /// How long to cool.
        cooldown: Duration,
        /// A per-day quota (cooling until Google's daily reset).
        daily: bool,
        /// Google's message.
        message: String,
    },
    /// 5xx, connection error, timeout: retry elsewhere; counts toward a rest.
    Transient(String),
    /// A problem shared by every key (region not supported): no key is blamed.
    Region(String),
    /// The client's own fault (400, 404, 413, …): returned at once, no key blamed.
    Client,
}

/// Classify an upstream answer (status, body, `Retry-After` header) into an
/// [`Outcome`]. `default_cooldown` is used for a 429 that names no delay.
pub fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    default_cooldown: Duration,
) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Success;
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| match v {
        Value::Array(a) => a.first().and_then(|e| e.get("error")),
        v => v.get("error"),
    });
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let gstatus = err
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let details: &[Value] = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let reason = details
        .iter()
        .find_map(|d| d.get("reason").and_then(Value::as_str))
        .unwrap_or("");
    let short = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        crate::openai::error::scrub(&message)
    };
    match status {
        400 if matches!(reason, "API_KEY_INVALID" | "API_KEY_EXPIRED")
            || message.contains("API key not valid")
            || message.contains("API key expired") =>
        {
            Outcome::KeyInvalid(short)
        }
        400 if gstatus == "FAILED_PRECONDITION" && message.contains("location") => {
            Outcome::Region(short)
        }
        401 | 403 => Outcome::KeyInvalid(short),
        429 => {
            let daily = details.iter().any(|d| {
                d.get("violations")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v.get("quotaId")
                                .and_then(Value::as_str)
                                .is_some_and(|q| q.contains("PerDay"))
                        })
                    })
            });
            let delay = details
                .iter()
                .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
                .and_then(parse_duration)
                .or_else(|| {
                    retry_after
                        .and_then(|r| r.trim().parse::<f64>().ok())
                        // Bounded like `retryDelay`: a hostile `Retry-After: 1e30`
                        // must not panic (`from_secs_f64`) or overflow `Instant + d`.
                        .filter(|s| s.is_finite() && (0.0..1e9).contains(s))
                        .map(Duration::from_secs_f64)
                });
            let cooldown = if daily {
                until_pacific_midnight(SystemTime::now())
            } else {
                delay.unwrap_or(default_cooldown)
            };
            Outcome::Quota {
                cooldown,
                daily,
                message: short,
            }
        }
        408 | 500 | 502 | 503 | 504 | 499 => Outcome::Transient(short),
        s if s >= 500 => Outcome::Transient(short),
        _ => Outcome::Client,
    }
}

/// Parse a protobuf Duration string (`"26s"`, `"1.5s"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// Time from `now` until the next midnight in US Pacific time, when Google
/// resets daily quotas (PST = UTC−8, PDT = UTC−7 from the second Sunday of
/// March to the first Sunday of November).
pub fn until_pacific_midnight(now: SystemTime) -> Duration {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let offset = if is_pacific_dst(t) {
        7 * 3600
    } else {
        8 * 3600
    };
    let local = t - offset;
    let next_midnight_local = (local.div_euclid(86400) + 1) * 86400;
    Duration::from_secs((next_midnight_local - local).max(1) as u64)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Whether US Pacific daylight time is in force at unix time `t`.
fn is_pacific_dst(t: i64) -> bool {
    let (year, _, _) = civil_from_days((t - 8 * 3600).div_euclid(86400));
    // n-th Sunday of a month, as days since epoch.
    let nth_sunday = |month: u32, n: i64| {
        let first = days_from_civil(year, month, 1);
        let weekday = (first + 4).rem_euclid(7); // 0 = Sunday
        first + (7 - weekday) % 7 + 7 * (n - 1)
    };
    let start = nth_sunday(3, 2) * 86400 + 2 * 3600 + 8 * 3600; // 02:00 PST
    let end = nth_sunday(11, 1) * 86400 + 2 * 3600 + 7 * 3600; // 02:00 PDT
    t >= start && t < end
}

/// Mutable state of one key, behind a short lock.
#[derive(Debug, Default)]
struct State {
    /// Why the key is disabled (None = not disabled).
    disabled: Option<String>,
    /// Per-model cooldowns (429).
    cooling: Vec<Cooling>,
    /// Consecutive transient failures.
    consecutive: u32,
    /// Resting after too many transient failures, until.
    rest_until: Option<Instant>,
    /// The next rest's length.
    backoff: Duration,
    /// Last error message (scrubbed).
    last_error: Option<String>,
    /// When the key was last used (unix seconds).
    last_used: Option<u64>,
}

/// One per-model cooldown of a key (a 429).
#[derive(Debug)]
struct Cooling {
    /// The model the quota was exhausted for.
    model: String,
    /// Usable again for it at this instant.
    until: Instant,
    /// A per-day quota: cleared by [`KeyPool::reset_daily_quotas`] at
    /// midnight Pacific.
    daily: bool,
}

/// One key of the pool.
#[derive(Debug)]
struct Slot {
    key: String,
    masked: String,
    state: Mutex<State>,
    successes: AtomicU64,
    failures: AtomicU64,
    calls: AtomicU64,
}

/// The result of [`KeyPool::pick`].
#[derive(Clone, Debug, PartialEq)]
pub enum Pick {
    /// Use the key at this index.
    Key(usize),
    /// No usable key: some are cooling; the first is usable again after this long.
    Cooling(Duration),
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
fn cool(cooling: &mut Vec<Cooling>, entry: Cooling, now: Instant) {
    cooling.retain(|c| c.model != entry.model && c.until > now);
    if cooling.len() >= MAX_COOLING
        && let Some(i) = (0..cooling.len()).min_by_key(|i| cooling[*i].until)
    {
        cooling.swap_remove(i);
    }
    cooling.push(entry);
}

const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The pool of Gemini keys.
#[derive(Debug)]
pub struct KeyPool {
    slots: Vec<Slot>,
    /// Round robin: where the next scan starts (just after the last key chosen).
    cursor: AtomicUsize,
    /// Random: the state of the pseudo-random sequence.
    seed: AtomicU64,
    /// `KEY_SELECTION` (a [`Selection`] as `u8`); changes live.
    selection: AtomicU8,
    /// `MAX_FAILURES`; changes live.
    max_failures: AtomicU32,
    epoch: Instant,
    /// Full key → index, built on first use by [`KeyPool::position`].
    by_key: std::sync::OnceLock<std::collections::HashMap<Box<str>, usize>>,
}

impl KeyPool {
    /// A pool over `keys` (duplicates should already be removed).
    pub fn new(keys: Vec<String>, selection: Selection, max_failures: u32) -> KeyPool {
        let slots = keys
            .into_iter()
            .map(|key| Slot {
                masked: mask(&key),
                key,
                state: Mutex::new(State::default()),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                calls: AtomicU64::new(0),
            })
            .collect();
        KeyPool {
            slots,
            cursor: AtomicUsize::new(0),
            // Pools need not agree on their random sequence: seed from the clock.
            seed: AtomicU64::new(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as u64,
            ),
            selection: AtomicU8::new(selection as u8),
            max_failures: AtomicU32::new(max_failures.max(1)),
            epoch: Instant::now(),
            by_key: std::sync::OnceLock::new(),
        }
    }

    /// Change `KEY_SELECTION` and `MAX_FAILURES` while running (settings
    /// changed at run time): the next pick and the next failure use them.
    pub fn set_policy(&self, selection: Selection, max_failures: u32) {
        self.selection.store(selection as u8, Ordering::Relaxed);
        self.max_failures
            .store(max_failures.max(1), Ordering::Relaxed);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the pool has no keys.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The key at `index` (to put in the upstream request; never log it).
    pub fn key(&self, index: usize) -> &str {
        &self.slots[index].key
    }

    /// The masked form of the key at `index`.
    pub fn masked(&self, index: usize) -> &str {
        &self.slots[index].masked
    }

    /// The index of the key whose full value is `key`, in one hash lookup
    /// (the map is built once, on first use), so that scanning text for pool
    /// keys costs the same with ten keys or ten thousand.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.by_key
            .get_or_init(|| {
                let mut map = std::collections::HashMap::with_capacity(self.slots.len());
                for (i, s) in self.slots.iter().enumerate() {
                    map.entry(s.key.as_str().into()).or_insert(i);
                }
                map
            })
            .get(key)
            .copied()
    }

    /// Find a key by its full value, masked form, or decimal index.
    pub fn find(&self, id: &str) -> Option<usize> {
        if let Ok(i) = id.parse::<usize>() {
            return (i < self.slots.len()).then_some(i);
        }
        self.slots
            .iter()
            .position(|s| s.masked == id || subtle_eq(&s.key, id))
    }

    /// When the key at `index` can next be used for `model` (None = now;
    /// `Some(None)`-like "never until re-verified" is reported as `Err(())`).
    fn wait_for(&self, index: usize, model: &str, now: Instant) -> Result<Option<Duration>, ()> {
        let st = lock(&self.slots[index].state);
        if st.disabled.is_some() {
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
        Ok(wait)
    }

    /// Whether key `index` can serve `model` now and was not tried yet.
    fn usable(&self, index: usize, model: &str, tried: &[usize], now: Instant) -> bool {
        !tried.contains(&index) && matches!(self.wait_for(index, model, now), Ok(None))
    }

    /// Choose a usable key for `model`, skipping indices in `tried`.
    ///
    /// Every selection chooses evenly among the usable keys: a dead key's
    /// turns are never handed to its neighbour. Cost: O(1) per pick while the
    /// keys are healthy, O(n) over the keys in the worst case (a long run of
    /// dead keys, or none usable), as before; no allocation.
    pub fn pick(&self, model: &str, tried: &[usize]) -> Pick {
        let n = self.slots.len();
        if n == 0 {
            return Pick::Unavailable;
        }
        let now = Instant::now();
        let chosen = match Selection::from_u8(self.selection.load(Ordering::Relaxed)) {
            Selection::RoundRobin => self.next_in_turn(model, tried, now),
            Selection::Random => self.random_usable(model, tried, now),
            // The usable key with the fewest calls (dead keys never count as
            // least used); ties go to the lowest index.
            Selection::LeastUsed => (0..n)
                .filter(|i| self.usable(*i, model, tried, now))
                .min_by_key(|i| self.slots[*i].calls.load(Ordering::Relaxed)),
            // One key per 10-second window; when that key is dead, the
            // window's calls go round robin over the usable keys instead of
            // all to the next one.
            Selection::TimeWindow => {
                let window = (now.duration_since(self.epoch).as_secs() / 10) as usize % n;
                if self.usable(window, model, tried, now) {
                    Some(window)
                } else {
                    self.next_in_turn(model, tried, now)
                }
            }
        };
        if let Some(i) = chosen {
            let slot = &self.slots[i];
            slot.calls.fetch_add(1, Ordering::Relaxed);
            lock(&slot.state).last_used = Some(unix_now());
            return Pick::Key(i);
        }
        // Nothing usable: say how long until the first cooling or resting key
        // comes back (a tried key counts too: it may serve the next request).
        let mut soonest: Option<Duration> = None;
        for i in 0..n {
            if let Ok(Some(w)) = self.wait_for(i, model, now) {
                soonest = Some(soonest.map_or(w, |s: Duration| s.min(w)));
            }
        }
        match soonest {
            Some(w) => Pick::Cooling(w),
            None => Pick::Unavailable,
        }
    }

    /// Round robin over the usable keys: the first usable key at or after the
    /// cursor, and the cursor moves to just after the key chosen (one
    /// compare-and-swap; a pick that lost the race scans again from where the
    /// winner left it). So usable keys take turns whatever dead keys lie
    /// between them, also under many concurrent callers.
    fn next_in_turn(&self, model: &str, tried: &[usize], now: Instant) -> Option<usize> {
        let n = self.slots.len();
        let mut cursor = self.cursor.load(Ordering::Acquire);
        loop {
            let start = cursor % n;
            let i = (0..n)
                .map(|step| (start + step) % n)
                .find(|i| self.usable(*i, model, tried, now))?;
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

    /// A key drawn uniformly from the usable ones. First a few draws over
    /// all keys, taking the first usable one (rejection sampling: uniform
    /// over the usable keys, and O(1) while most keys are healthy); if those
    /// all hit dead keys, one pass with reservoir sampling (uniform too).
    fn random_usable(&self, model: &str, tried: &[usize], now: Instant) -> Option<usize> {
        let n = self.slots.len();
        for _ in 0..n.min(8) {
            let i = self.random_below(n);
            if self.usable(i, model, tried, now) {
                return Some(i);
            }
        }
        let mut chosen = None;
        let mut seen = 0;
        for i in 0..n {
            if self.usable(i, model, tried, now) {
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

    /// Record what an upstream call on key `index` for `model` came to.
    pub fn report(&self, index: usize, model: &str, outcome: &Outcome) {
        let slot = &self.slots[index];
        let mut st = lock(&slot.state);
        match outcome {
            Outcome::Success => {
                slot.successes.fetch_add(1, Ordering::Relaxed);
                st.consecutive = 0;
                st.backoff = Duration::ZERO;
                st.rest_until = None;
            }
            Outcome::Client | Outcome::Region(_) => {}
            Outcome::KeyInvalid(msg) => {
                slot.failures.fetch_add(1, Ordering::Relaxed);
                if st.disabled.is_none() {
                    crate::warn!("key {} disabled: {}", slot.masked, msg);
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
                let entry = Cooling {
                    model: model.to_string(),
                    until: now + *cooldown,
                    daily: *daily,
                };
                cool(&mut st.cooling, entry, now);
                st.last_error = Some(message.clone());
                crate::debug!(
                    "key {} cooling for {} ({} s)",
                    slot.masked,
                    model,
                    cooldown.as_secs()
                );
            }
            Outcome::Transient(msg) => {
                slot.failures.fetch_add(1, Ordering::Relaxed);
                st.consecutive += 1;
                st.last_error = Some(msg.clone());
                if st.consecutive >= self.max_failures.load(Ordering::Relaxed) {
                    let rest = if st.backoff.is_zero() {
                        FIRST_BACKOFF
                    } else {
                        (st.backoff * 2).min(MAX_BACKOFF)
                    };
                    st.backoff = rest;
                    st.rest_until = Some(Instant::now() + rest);
                    st.consecutive = 0;
                    crate::warn!(
                        "key {} resting {} s after transient failures",
                        slot.masked,
                        rest.as_secs()
                    );
                }
            }
        }
    }

    /// Bring a key back: clears disabled, cooling, rest and failure streak.
    pub fn reset(&self, index: usize) {
        let mut st = lock(&self.slots[index].state);
        st.disabled = None;
        st.cooling.clear();
        st.rest_until = None;
        st.consecutive = 0;
        st.backoff = Duration::ZERO;
    }

    /// Clear every per-day quota cooldown (Google resets daily quotas at
    /// midnight Pacific; the scheduler calls this then). Per-minute cooldowns
    /// stay. Returns how many cooldowns were cleared, and logs it.
    pub fn reset_daily_quotas(&self) -> usize {
        let now = Instant::now();
        let mut cleared = 0;
        for s in &self.slots {
            let mut st = lock(&s.state);
            st.cooling.retain(|c| {
                // Count the ones still in force; drop expired ones silently.
                cleared += usize::from(c.daily && c.until > now);
                !c.daily
            });
        }
        crate::info!("daily quota reset: {} per-day cooldowns cleared", cleared);
        cleared
    }

    /// Indices of keys that need re-verification (disabled or failing).
    pub fn needing_verification(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| {
                let st = lock(&self.slots[*i].state);
                st.disabled.is_some() || st.consecutive > 0 || st.rest_until.is_some()
            })
            .collect()
    }

    /// Key counts by state, now.
    pub fn counts(&self) -> Counts {
        let now = Instant::now();
        let mut c = Counts::default();
        for s in &self.slots {
            let st = lock(&s.state);
            if st.disabled.is_some() {
                c.disabled += 1;
            } else if st.rest_until.is_some_and(|r| r > now) {
                c.resting += 1;
            } else if st.cooling.iter().any(|c| c.until > now) {
                c.cooling += 1;
            } else {
                c.active += 1;
            }
        }
        c
    }

    /// Every key, masked, with state and counters (for `/status`).
    pub fn snapshot(&self) -> Value {
        let now = Instant::now();
        let wall = unix_now();
        let keys: Vec<Value> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let st = lock(&s.state);
                let cooling: Vec<Value> = st
                    .cooling
                    .iter()
                    .filter(|c| c.until > now)
                    .map(|c| json!({"model": c.model, "seconds_left": (c.until - now).as_secs_f64().ceil() as u64, "until": wall + (c.until - now).as_secs()}))
                    .collect();
                let state = if st.disabled.is_some() {
                    "disabled"
                } else if st.rest_until.is_some_and(|r| r > now) {
                    "resting"
                } else if !cooling.is_empty() {
                    "cooling"
                } else {
                    "active"
                };
                json!({
                    "index": i,
                    "key": s.masked,
                    "state": state,
                    "disabled_reason": st.disabled,
                    "cooling": cooling,
                    "resting_seconds_left": st.rest_until.filter(|r| *r > now).map(|r| (r - now).as_secs_f64().ceil() as u64),
                    "successes": s.successes.load(Ordering::Relaxed),
                    "failures": s.failures.load(Ordering::Relaxed),
                    "consecutive_failures": st.consecutive,
                    "last_error": st.last_error,
                    "last_used": st.last_used,
                })
            })
            .collect();
        Value::Array(keys)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seconds since the unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> KeyPool {
        KeyPool::new(
            (0..n).map(|i| format!("key-{i}-abcdefghijkl")).collect(),
            Selection::RoundRobin,
            2,
        )
    }

    #[test]
    fn position_finds_full_keys_only() {
        let p = KeyPool::new(
            vec!["key-one-000000".into(), "key-two-000000".into()],
            Selection::RoundRobin,
            3,
        );
        assert_eq!(p.position("key-two-000000"), Some(1));
        assert_eq!(p.position("key-one-000000"), Some(0));
        assert_eq!(p.position("key-two"), None);
        assert_eq!(p.position(p.masked(0)), None);
    }

    #[test]
    fn masks_keys() {
        assert_eq!(mask("AIzaSA1234567890abcdefghijklmnopqrx1Y2"), "AIza…x1Y2");
        assert_eq!(mask("sk-12345"), "…45");
        assert_eq!(mask("abc"), "…");
    }

    #[test]
    fn round_robin_is_even() {
        let p = pool(3);
        let mut counts = [0; 3];
        for _ in 0..300 {
            if let Pick::Key(i) = p.pick("m", &[]) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn other_selections_spread_and_skip_dead_keys() {
        for sel in [
            Selection::Random,
            Selection::LeastUsed,
            Selection::TimeWindow,
        ] {
            let p = KeyPool::new(
                (0..4).map(|i| format!("key-{i}-abcdefghijkl")).collect(),
                sel,
                3,
            );
            p.report(2, "m", &Outcome::KeyInvalid("bad".into()));
            let mut counts = [0; 4];
            for _ in 0..400 {
                match p.pick("m", &[]) {
                    Pick::Key(i) => counts[i] += 1,
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(counts[2], 0, "{sel:?} never picks a disabled key");
            match sel {
                Selection::LeastUsed => assert!(
                    counts
                        .iter()
                        .enumerate()
                        .all(|(i, c)| i == 2 || (133..=134).contains(c)),
                    "{counts:?}"
                ),
                Selection::Random => assert!(
                    counts.iter().enumerate().all(|(i, c)| i == 2 || *c > 50),
                    "{sel:?} {counts:?}"
                ),
                // One 10-second slice: the same key every time (its key, 0, is usable).
                _ => assert_eq!(counts.iter().filter(|c| **c > 0).count(), 1, "{counts:?}"),
            }
        }
        assert_eq!(Selection::parse("time-window"), Some(Selection::TimeWindow));
        assert_eq!(Selection::parse("nope"), None);
    }

    #[test]
    fn invalid_keys_are_skipped_until_reset() {
        let p = pool(2);
        p.report(0, "m", &Outcome::KeyInvalid("bad".into()));
        for _ in 0..10 {
            assert_eq!(p.pick("m", &[]), Pick::Key(1));
        }
        p.report(1, "m", &Outcome::KeyInvalid("bad".into()));
        assert_eq!(p.pick("m", &[]), Pick::Unavailable);
        p.reset(0);
        assert_eq!(p.pick("m", &[]), Pick::Key(0));
    }

    // Timing tests run on tokio's paused clock: `advance` moves the pool's
    // time exactly, without sleeping.
    #[tokio::test(start_paused = true)]
    async fn quota_cools_per_model() {
        let p = pool(1);
        let q = Outcome::Quota {
            cooldown: Duration::from_secs(30),
            daily: false,
            message: "q".into(),
        };
        p.report(0, "a", &q);
        assert!(
            matches!(p.pick("a", &[]), Pick::Cooling(d) if d <= Duration::from_secs(30) && d > Duration::from_secs(28))
        );
        assert_eq!(p.pick("b", &[]), Pick::Key(0));
    }

    #[tokio::test(start_paused = true)]
    async fn quota_cooldown_ends_exactly_on_time() {
        let p = pool(1);
        let q = Outcome::Quota {
            cooldown: Duration::from_secs(30),
            daily: false,
            message: "q".into(),
        };
        p.report(0, "a", &q);
        tokio::time::advance(Duration::from_millis(29_500)).await;
        assert_eq!(p.pick("a", &[]), Pick::Cooling(Duration::from_millis(500)));
        assert_eq!(p.counts().cooling, 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(p.pick("a", &[]), Pick::Key(0), "back after exactly 30 s");
        assert_eq!(p.counts().active, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn rests_double_from_five_seconds_to_five_minutes() {
        let p = pool(1); // MAX_FAILURES = 2
        let mut expected = FIRST_BACKOFF;
        for _ in 0..9 {
            p.report(0, "m", &Outcome::Transient("503".into()));
            p.report(0, "m", &Outcome::Transient("503".into()));
            assert_eq!(p.pick("m", &[]), Pick::Cooling(expected));
            tokio::time::advance(expected - Duration::from_millis(1)).await;
            assert_eq!(p.counts().resting, 1, "still resting 1 ms before the end");
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(p.pick("m", &[]), Pick::Key(0), "usable after {expected:?}");
            expected = (expected * 2).min(MAX_BACKOFF);
        }
        assert_eq!(expected, MAX_BACKOFF, "the rests reached the cap");
        p.report(0, "m", &Outcome::Success);
        p.report(0, "m", &Outcome::Transient("503".into()));
        p.report(0, "m", &Outcome::Transient("503".into()));
        assert_eq!(
            p.pick("m", &[]),
            Pick::Cooling(FIRST_BACKOFF),
            "a success restarts the backoff"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_window_moves_every_ten_seconds() {
        let p = KeyPool::new(
            (0..3).map(|i| format!("key-{i}-abcdefghijkl")).collect(),
            Selection::TimeWindow,
            2,
        );
        for window in [0, 1, 2, 0, 1] {
            for _ in 0..5 {
                assert_eq!(p.pick("m", &[]), Pick::Key(window));
            }
            tokio::time::advance(Duration::from_millis(9_999)).await;
            assert_eq!(p.pick("m", &[]), Pick::Key(window), "same 10 s window");
            tokio::time::advance(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn daily_reset_clears_per_day_cooldowns_only() {
        let p = pool(3);
        let daily = Outcome::Quota {
            cooldown: Duration::from_secs(20 * 3600),
            daily: true,
            message: "per day".into(),
        };
        let minute = Outcome::Quota {
            cooldown: Duration::from_secs(60),
            daily: false,
            message: "per minute".into(),
        };
        p.report(0, "a", &daily);
        p.report(1, "a", &minute);
        p.report(2, "a", &daily);
        p.report(2, "b", &minute);
        assert_eq!(p.counts().cooling, 3);
        assert_eq!(p.reset_daily_quotas(), 2);
        // Key 0 is back for "a"; key 1 still cools for "a"; key 2 is back for
        // "a" but still cools for "b".
        assert_eq!(p.pick("a", &[1, 2]), Pick::Key(0));
        assert_eq!(p.pick("a", &[0, 2]), Pick::Cooling(Duration::from_secs(60)));
        assert_eq!(p.pick("a", &[0, 1]), Pick::Key(2));
        assert_eq!(p.pick("b", &[0, 1]), Pick::Cooling(Duration::from_secs(60)));
        assert_eq!(p.counts().cooling, 2);
        assert_eq!(p.reset_daily_quotas(), 0, "nothing left to clear");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(p.counts().active, 3, "the per-minute cooldowns ran out");
        // An expired per-day cooldown is dropped but not counted.
        p.report(0, "a", &daily);
        tokio::time::advance(Duration::from_secs(20 * 3600)).await;
        assert_eq!(p.reset_daily_quotas(), 0);
    }

    #[test]
    fn the_clock_works_outside_a_runtime() {
        // The pool is also used from plain threads (no tokio runtime): its
        // clock then falls back to std's.
        let p = pool(1);
        p.report(
            0,
            "a",
            &Outcome::Quota {
                cooldown: Duration::from_millis(20),
                daily: false,
                message: "q".into(),
            },
        );
        assert!(matches!(p.pick("a", &[]), Pick::Cooling(_)));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(p.pick("a", &[]), Pick::Key(0));
    }

    #[test]
    fn a_keys_cooling_list_is_capped() {
        let p = pool(1);
        let quota = |secs| Outcome::Quota {
            cooldown: Duration::from_secs(secs),
            daily: false,
            message: "q".into(),
        };
        // A long cooldown first: it outlives the flood below.
        p.report(0, "gemini-2.5-pro", &quota(86_400));
        for i in 0..1000 {
            p.report(0, &format!("m-{i}"), &quota(60 + i));
        }
        let len = || lock(&p.slots[0].state).cooling.len();
        assert_eq!(len(), MAX_COOLING);
        assert!(matches!(p.pick("gemini-2.5-pro", &[]), Pick::Cooling(_)));
        assert!(matches!(p.pick("m-999", &[]), Pick::Cooling(_)));
        assert_eq!(
            p.pick("m-0", &[]),
            Pick::Key(0),
            "the soonest-ending made room"
        );
        // Invalid names are recorded as `other`, whole names never.
        let huge = "x".repeat(100_000);
        p.report(0, &huge, &quota(90_000));
        let st = lock(&p.slots[0].state);
        assert_eq!(st.cooling.len(), MAX_COOLING);
        assert!(
            st.cooling
                .iter()
                .all(|c| c.model.len() <= crate::model::MAX_LEN)
        );
        assert!(st.cooling.iter().any(|c| c.model == crate::model::OTHER));
        drop(st);
        // Expired entries are pruned before anything is evicted.
        let entry = |model: &str, until| Cooling {
            model: model.to_string(),
            until,
            daily: false,
        };
        let mut list = vec![entry("old", Instant::now())];
        let now = Instant::now() + Duration::from_millis(1);
        cool(&mut list, entry("new", now + Duration::from_secs(1)), now);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].model, "new");
    }

    #[test]
    fn transient_failures_rest_then_success_resets() {
        let p = pool(1);
        p.report(0, "m", &Outcome::Transient("503".into()));
        assert_eq!(p.pick("m", &[]), Pick::Key(0));
        p.report(0, "m", &Outcome::Success);
        p.report(0, "m", &Outcome::Transient("503".into()));
        assert_eq!(p.pick("m", &[]), Pick::Key(0), "success reset the streak");
        p.report(0, "m", &Outcome::Transient("503".into()));
        assert!(matches!(p.pick("m", &[]), Pick::Cooling(d) if d <= FIRST_BACKOFF));
        assert_eq!(p.counts().resting, 1);
    }

    #[test]
    fn tried_keys_are_skipped() {
        let p = pool(2);
        let first = match p.pick("m", &[]) {
            Pick::Key(i) => i,
            other => panic!("{other:?}"),
        };
        assert_eq!(p.pick("m", &[first]), Pick::Key(1 - first));
        assert_eq!(p.pick("m", &[0, 1]), Pick::Unavailable);
    }

    #[test]
    fn classifies_google_errors() {
        let cd = Duration::from_secs(60);
        let invalid = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        assert!(matches!(
            classify(400, invalid, None, cd),
            Outcome::KeyInvalid(_)
        ));
        let quota = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"26s"}]}}"#;
        assert!(
            matches!(classify(429, quota, None, cd), Outcome::Quota { cooldown, daily: false, .. } if cooldown == Duration::from_secs(26))
        );
        assert!(
            matches!(classify(429, b"", Some("7"), cd), Outcome::Quota { cooldown, .. } if cooldown == Duration::from_secs(7))
        );
        assert!(
            matches!(classify(429, b"", None, cd), Outcome::Quota { cooldown, .. } if cooldown == cd)
        );
        let daily = br#"[{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED","details":[{"violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}]"#;
        assert!(matches!(
            classify(429, daily, None, cd),
            Outcome::Quota { daily: true, .. }
        ));
        assert!(matches!(
            classify(503, b"{}", None, cd),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            classify(403, b"{}", None, cd),
            Outcome::KeyInvalid(_)
        ));
        let region = br#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#;
        assert!(matches!(
            classify(400, region, None, cd),
            Outcome::Region(_)
        ));
        let client = br#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(classify(400, client, None, cd), Outcome::Client);
        assert_eq!(classify(404, b"", None, cd), Outcome::Client);
    }

    #[test]
    fn pacific_midnight() {
        // 2026-07-01 06:00 UTC = 2026-06-30 23:00 PDT → 1 h to midnight.
        let t =
            UNIX_EPOCH + Duration::from_secs(days_from_civil(2026, 7, 1) as u64 * 86400 + 6 * 3600);
        assert_eq!(until_pacific_midnight(t), Duration::from_secs(3600));
        // 2026-01-15 07:00 UTC = 2026-01-14 23:00 PST → 1 h.
        let t = UNIX_EPOCH
            + Duration::from_secs(days_from_civil(2026, 1, 15) as u64 * 86400 + 7 * 3600);
        assert_eq!(until_pacific_midnight(t), Duration::from_secs(3600));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn constant_time_tokens() {
        let toks = vec!["sk-1".to_string(), "sk-2".to_string()];
        assert!(token_matches(&toks, "sk-2"));
        assert!(!token_matches(&toks, "sk-3"));
        assert!(!token_matches(&toks, ""));
    }
}
