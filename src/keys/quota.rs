//! Quota-aware scheduling: each key's limits per model (requests per
//! minute, per Pacific day, input tokens per minute) and its counts, so a
//! key without headroom is skipped *before* a call is wasted on it.
//!
//! A key × model's limits come from, in order (field by field):
//! 1. what a 429 taught ([`violations`]: the `quotaValue` of the violated
//!    `quotaId`; a `…FreeTier` id also marks the key free tier);
//! 2. `MODEL_LIMITS` ([`ModelLimits`], with `*` patterns);
//! 3. the built-in free-tier defaults ([`FREE_TIER`], read on
//!    [`FREE_TIER_READ`]) — only for keys known to be free tier
//!    (`KEY_TIER=free`, or learned);
//! 4. none: the key is never throttled before its first 429.
//!
//! Counting ([`KeyQuota`], inside each key's state): requests in a sliding
//! minute (their times, at most the limit's worth kept) and requests in
//! Google's day (reset at midnight Pacific). A call is counted when its key
//! is picked (a reservation), so concurrent requests do not overshoot; a
//! call Google refused with a 429 is given back. Input tokens in a sliding
//! minute are counted from an estimate made before the call
//! ([`estimate_tokens`]), corrected to the answer's `promptTokenCount`
//! once it is known (`KeyPool::token_hook`).

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::Duration;

use memchr::memmem;
use serde_json::Value;

/// Limits of one key for one model (`None` = not known: not enforced).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Requests per day (Pacific).
    pub rpd: Option<u32>,
    /// Input tokens per minute.
    pub tpm: Option<u32>,
}

impl Limits {
    /// Each limit of `self`, or else `other`'s.
    pub fn or(self, other: Limits) -> Limits {
        Limits {
            rpm: self.rpm.or(other.rpm),
            rpd: self.rpd.or(other.rpd),
            tpm: self.tpm.or(other.tpm),
        }
    }

    const fn new(rpm: u32, rpd: u32, tpm: u32) -> Limits {
        Limits {
            rpm: Some(rpm),
            rpd: Some(rpd),
            tpm: Some(tpm),
        }
    }
}

/// When [`FREE_TIER`] was read: the values seen in Google's 429 bodies and
/// the last published table (docs/wire-formats-2.md E.5).
pub const FREE_TIER_READ: &str = "2026-08";

/// Built-in free-tier limits (rpm, rpd, input tpm) per model pattern, read
/// on [`FREE_TIER_READ`]; the most specific pattern wins. Only a starting
/// point: Google changes them, and a 429's values replace them. No entry
/// holds a 0 (as `gemini-2.5-pro` had in 2026-03): a key never tried for
/// a model could never learn otherwise; its first 429 teaches it the 0.
pub const FREE_TIER: &[(&str, Limits)] = &[
    ("gemini-2.5-flash", Limits::new(10, 20, 250_000)),
    ("gemini-2.5-flash-lite", Limits::new(15, 20, 250_000)),
    ("gemini-2.5-flash*", Limits::new(10, 20, 250_000)),
    ("gemini-3.1-flash-lite*", Limits::new(15, 500, 250_000)),
    ("gemini-2.0-flash", Limits::new(15, 1_500, 1_000_000)),
    ("gemini-2.0-flash-lite", Limits::new(30, 1_500, 1_000_000)),
    ("gemini-*flash*", Limits::new(10, 20, 250_000)),
    ("gemma-3*", Limits::new(30, 14_400, 15_000)),
];

/// Most `MODEL_LIMITS` entries.
pub const MAX_MODEL_LIMITS: usize = 256;

/// `MODEL_LIMITS`: per model (exact name or `*` pattern) limits, e.g.
/// `{"gemini-2.5-pro":{"rpm":5,"rpd":100,"tpm":250000},"gemini-*":{"rpm":10}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelLimits(Vec<(String, Limits)>);

impl ModelLimits {
    /// Parse the JSON object of `MODEL_LIMITS`.
    pub fn parse(v: &Value) -> Result<ModelLimits, String> {
        let Some(obj) = v.as_object() else {
            return Err(
                "expected a JSON object {\"model\": {\"rpm\": N, \"rpd\": N, \"tpm\": N}}".into(),
            );
        };
        if obj.len() > MAX_MODEL_LIMITS {
            return Err(format!("at most {MAX_MODEL_LIMITS} models"));
        }
        let mut out = Vec::with_capacity(obj.len());
        for (model, l) in obj {
            let Some(l) = l.as_object() else {
                return Err(format!("{model}: expected an object of rpm, rpd, tpm"));
            };
            let mut limits = Limits::default();
            for (name, n) in l {
                let n = n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{model}.{name}: expected a whole number"))?;
                match name.as_str() {
                    "rpm" => limits.rpm = Some(n),
                    "rpd" => limits.rpd = Some(n),
                    "tpm" => limits.tpm = Some(n),
                    _ => return Err(format!("{model}: unknown limit {name:?} (rpm, rpd, tpm)")),
                }
            }
            out.push((model.clone(), limits));
        }
        Ok(ModelLimits(out))
    }

    /// The limits for `model`: an exact entry, else the most specific
    /// matching pattern.
    pub fn get(&self, model: &str) -> Option<Limits> {
        lookup(self.0.iter().map(|(p, l)| (p.as_str(), *l)), model)
    }

    /// Whether no model is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Back to `MODEL_LIMITS`' JSON.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        for (model, l) in &self.0 {
            let mut o = serde_json::Map::new();
            for (k, v) in [("rpm", l.rpm), ("rpd", l.rpd), ("tpm", l.tpm)] {
                if let Some(v) = v {
                    o.insert(k.into(), v.into());
                }
            }
            m.insert(model.clone(), Value::Object(o));
        }
        Value::Object(m).to_string()
    }
}

/// The entry for `model`: exact first, then the matching pattern with the
/// most literal characters.
fn lookup<'a>(entries: impl Iterator<Item = (&'a str, Limits)>, model: &str) -> Option<Limits> {
    let mut best: Option<(usize, Limits)> = None;
    for (pattern, l) in entries {
        if pattern == model {
            return Some(l);
        }
        if pattern.contains('*') && glob(pattern, model) {
            let weight = pattern.len() - pattern.matches('*').count();
            if best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, l));
            }
        }
    }
    best.map(|(_, l)| l)
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (no allocation: it runs on every pick).
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut t) = text.strip_prefix(first) else {
        return false;
    };
    let mut rest = parts.peekable();
    if rest.peek().is_none() {
        return t.is_empty();
    }
    while let Some(p) = rest.next() {
        if rest.peek().is_none() {
            return t.ends_with(p);
        }
        match t.find(p) {
            Some(i) => t = &t[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// How the pool applies quotas (`QUOTA_AWARE`, `KEY_TIER`, `MODEL_LIMITS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `QUOTA_AWARE`: count and skip keys without headroom (else only react to 429s).
    pub aware: bool,
    /// `KEY_TIER=free`: every key is free tier (the built-in defaults apply).
    pub free: bool,
    /// `MODEL_LIMITS`.
    pub configured: ModelLimits,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            aware: true,
            free: false,
            configured: ModelLimits::default(),
        }
    }
}

/// A quota window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Requests in a sliding minute.
    Minute,
    /// Requests in a Pacific day.
    Day,
    /// Input tokens in a sliding minute.
    Tokens,
}

impl Window {
    /// `"rpm"`, `"rpd"`, `"tpm"` (as in `MODEL_LIMITS` and the store).
    pub fn name(self) -> &'static str {
        match self {
            Window::Minute => "rpm",
            Window::Day => "rpd",
            Window::Tokens => "tpm",
        }
    }

    /// "requests/minute", "requests/day", "input tokens/minute".
    pub fn unit(self) -> &'static str {
        match self {
            Window::Minute => "requests/minute",
            Window::Day => "requests/day",
            Window::Tokens => "input tokens/minute",
        }
    }
}

/// One violated quota named by a 429.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Its window (`PerMinute`, `PerDay`, `InputTokens` in the quotaId).
    pub window: Window,
    /// `quotaValue`, if given.
    pub value: Option<u32>,
    /// A `…FreeTier` / `free_tier` quota.
    pub free: bool,
    /// `quotaDimensions.model`, if given.
    pub model: Option<String>,
}

/// The violations of a 429 body's `QuotaFailure` (found by `@type`, in any
/// order; at most 8).
pub fn violations(body: &[u8]) -> Vec<Violation> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let err = match &v {
        Value::Array(a) => a.first().and_then(|e| e.get("error")),
        v => v.get("error"),
    };
    let details = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    details
        .iter()
        .filter_map(|d| d.get("violations").and_then(Value::as_array))
        .flatten()
        .filter_map(violation)
        .take(8)
        .collect()
}

fn violation(v: &Value) -> Option<Violation> {
    let id = v.get("quotaId").and_then(Value::as_str).unwrap_or("");
    let metric = v.get("quotaMetric").and_then(Value::as_str).unwrap_or("");
    let window = if id.contains("InputTokens") || metric.contains("input_token") {
        Window::Tokens
    } else if id.contains("PerDay") {
        Window::Day
    } else if id.contains("PerMinute") {
        Window::Minute
    } else {
        return None;
    };
    let value = match v.get("quotaValue") {
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(n) => n.as_u64(),
        None => None,
    }
    .map(|n| n.min(u32::MAX as u64) as u32);
    Some(Violation {
        window,
        value,
        free: id.contains("FreeTier") || metric.contains("free_tier"),
        model: v
            .get("quotaDimensions")
            .and_then(|d| d.get("model"))
            .and_then(Value::as_str)
            .map(|m| m.chars().take(128).collect()),
    })
}

/// The quota clock of one decision: monotonic ms (sliding minute) and the
/// Pacific day with the time left in it.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Monotonic milliseconds.
    pub ms: u64,
    /// Days since 1970 in US Pacific time.
    pub day: i64,
    /// Time until the next Pacific midnight.
    pub to_midnight: Duration,
    /// Wall-clock unix ms (other replicas' counts are by unix second).
    pub wall_ms: u64,
    /// Replicas sharing the counts (1: alone; see [`super::shared`]).
    pub replicas: u32,
}

/// Most timestamps kept for a model whose minute limit is not known (so
/// `/admin/keys` can show use before a limit is learned).
const UNKNOWN_MINUTE_CAP: usize = 64;
/// Most timestamps kept for any one minute window.
const MINUTE_CAP: usize = 10_000;
/// Most entries of a token window (past it the two oldest merge, at the
/// later time: counted a little longer, never shorter).
const TOKEN_CAP: usize = 256;

/// Tokens an image, audio or video part counts for (Gemini's 258 per
/// image; a floor for other media).
const MEDIA_TOKENS: u64 = 258;

/// An estimate of a generate request's input tokens, before the call:
/// a quarter of the bytes of its `"text"` strings, 258 per inline or file
/// media part; a quarter of the whole body when it holds no `"text"` (an
/// OpenAI-shaped body). No parse: two vectorized searches with searchers
/// built once (a per-quote scan cost ≈ 12,000 instructions on a translated
/// request, whose safety settings alone hold some forty quotes).
pub fn estimate_tokens(body: &[u8]) -> u32 {
    // Inside a JSON string a quote is always escaped, so `"text"` and
    // `…Data"` are only ever found as keys or whole string values.
    static TEXT: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"text\""));
    static DATA: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"ata\""));
    const MEDIA: [&[u8]; 4] = [b"\"inlineD", b"\"inline_d", b"\"fileD", b"\"file_d"];
    let (mut text, mut found) = (0usize, false);
    for at in TEXT.find_iter(body) {
        if let Some(len) = string_after_colon(&body[at + 6..]) {
            text += len;
            found = true;
        }
    }
    let media = DATA
        .find_iter(body)
        .filter(|&at| MEDIA.iter().any(|k| body[..at].ends_with(k)))
        .count();
    let total = if found || media > 0 {
        (text as u64).div_ceil(4) + media as u64 * MEDIA_TOKENS
    } else {
        (body.len() as u64).div_ceil(4)
    };
    total.clamp(1, u64::from(u32::MAX)) as u32
}

/// The byte length of the JSON string that `rest` holds after `: ` (None
/// when `rest` is not `: "…"`).
fn string_after_colon(rest: &[u8]) -> Option<usize> {
    let mut i = 0;
    let skip = |i: &mut usize| {
        while rest.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    skip(&mut i);
    (rest.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    skip(&mut i);
    (rest.get(i) == Some(&b'"')).then_some(())?;
    let start = i + 1;
    let mut j = start;
    loop {
        j += memchr::memchr2(b'"', b'\\', rest.get(j..)?)?;
        if rest[j] == b'"' {
            return Some(j - start);
        }
        j += 2;
    }
}

/// One key's counts for one model.
#[derive(Debug)]
pub(super) struct ModelQuota {
    pub(super) model: String,
    /// What 429s taught.
    pub(super) learned: Limits,
    /// When a learned limit last changed (unix ms; the later one wins).
    pub(super) learned_at: u64,
    /// Times (quota clock ms) of calls in the last minute, oldest first.
    minute: VecDeque<u64>,
    /// Estimated input tokens of the last minute's calls, (time, tokens), oldest first.
    tokens: VecDeque<(u64, u32)>,
    /// The Pacific day counted and its calls.
    day: (i64, u32),
    /// Last call (quota clock ms), to evict the stalest model.
    last: u64,
    /// The other replicas' counts (Redis mode).
    pub(super) others: super::shared::Others,
}

impl ModelQuota {
    fn prune(&mut self, c: &Clock) {
        while self.minute.front().is_some_and(|t| t + 60_000 <= c.ms) {
            self.minute.pop_front();
        }
        if self.day.0 != c.day {
            self.day = (c.day, 0);
        }
        while self.tokens.front().is_some_and(|(t, _)| t + 60_000 <= c.ms) {
            self.tokens.pop_front();
        }
    }

    /// Input tokens counted in the sliding minute (other replicas' too).
    pub(super) fn tokens_used(&self, c: &Clock) -> u64 {
        self.tokens
            .iter()
            .filter(|(t, _)| t + 60_000 > c.ms)
            .map(|(_, n)| u64::from(*n))
            .sum::<u64>()
            + self.others.tokens(c)
    }

    /// This replica's calls the others may not have seen yet.
    fn recent(&self, c: &Clock) -> u32 {
        self.minute
            .iter()
            .rev()
            .take_while(|t| *t + super::shared::SYNC_LAG_MS > c.ms)
            .count() as u32
    }

    /// Until the oldest of this replica's unseen calls is seen.
    fn recent_wait(&self, c: &Clock) -> Duration {
        self.minute
            .iter()
            .find(|t| *t + super::shared::SYNC_LAG_MS > c.ms)
            .map_or(Duration::ZERO, |t| {
                Duration::from_millis(t + super::shared::SYNC_LAG_MS - c.ms)
            })
    }

    /// How long until `need` more tokens fit under `limit` (zero: they fit).
    fn tokens_wait(&self, c: &Clock, need: u64, limit: u64) -> Duration {
        let mut used = self.tokens_used(c);
        for (t, n) in self.tokens.iter().filter(|(t, _)| t + 60_000 > c.ms) {
            if used == 0 || used + need <= limit {
                break;
            }
            used -= u64::from(*n);
            if used == 0 || used + need <= limit {
                return Duration::from_millis(t + 60_000 - c.ms);
            }
        }
        // Still over with the local counts gone: the others' must leave.
        if used > 0 && used + need > limit {
            return Duration::from_millis(self.others.tokens_resets_ms(c).unwrap_or(60_000));
        }
        Duration::ZERO
    }

    /// Calls in the sliding minute and today, as of `c` (other replicas' too).
    pub(super) fn used(&self, c: &Clock) -> (u32, u32) {
        let minute = self.minute.iter().filter(|t| *t + 60_000 > c.ms).count() as u32;
        let day = if self.day.0 == c.day { self.day.1 } else { 0 };
        (
            minute.saturating_add(self.others.minute(c)),
            day.saturating_add(self.others.day(c)),
        )
    }

    /// When the oldest call of the minute (this replica's or another's) leaves it.
    pub(super) fn minute_resets(&self, c: &Clock) -> Duration {
        let mine = self
            .minute
            .iter()
            .find(|t| *t + 60_000 > c.ms)
            .map(|t| t + 60_000 - c.ms);
        let theirs = self.others.minute_resets_ms(c);
        let ms = match (mine, theirs) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        Duration::from_millis(ms)
    }
}

/// Why a key has no headroom: the limit, its window, and how long until a slot opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// The limit reached.
    pub limit: u32,
    /// Its window.
    pub window: Window,
    /// Until a slot opens.
    pub wait: Duration,
}

/// With other replicas sharing the key: whether this replica's unseen
/// calls used its share of the minute's or the day's headroom (see
/// [`super::shared`]); then it waits until they are seen.
fn share_full(m: &ModelQuota, limits: &Limits, minute: u32, day: u32, c: &Clock) -> Option<Full> {
    if c.replicas <= 1 {
        return None;
    }
    let recent = m.recent(c);
    let spent = |limit: Option<u32>, used: u32| {
        limit.filter(|l| {
            *l > 0 && used < *l && super::shared::share_spent(*l, used, recent, c.replicas)
        })
    };
    let (limit, window) = match (spent(limits.rpm, minute), spent(limits.rpd, day)) {
        (Some(l), _) => (l, Window::Minute),
        (None, Some(l)) => (l, Window::Day),
        (None, None) => return None,
    };
    Some(Full {
        limit,
        window,
        wait: m.recent_wait(c).max(Duration::from_millis(1)),
    })
}

/// One key's quota state: its tier and per model counts (at most
/// [`super::MAX_COOLING`] models; the stalest makes room).
#[derive(Debug, Default)]
pub(super) struct KeyQuota {
    /// Known free tier (learned from a `…FreeTier` 429).
    pub(super) free: bool,
    /// The tier set through the admin API (`Some(true)`: free; `Some(false)`:
    /// paid, never the free-tier defaults; `None`: as learned / `KEY_TIER`).
    pub(super) tier: Option<bool>,
    /// When `tier` was set (unix ms): the later change wins.
    pub(super) tier_at: u64,
    pub(super) models: Vec<ModelQuota>,
    /// A model's counts were dropped to make room (the pick that did it
    /// unparks the key: it may serve that model sooner).
    pub(super) evicted: bool,
}

impl KeyQuota {
    /// The effective limits for `model` under `policy`.
    pub(super) fn limits(&self, model: &str, policy: &Policy) -> Limits {
        let learned = self
            .models
            .iter()
            .find(|m| m.model == model)
            .map_or_else(Limits::default, |m| m.learned);
        let configured = policy.configured.get(model).unwrap_or_default();
        let free = if self.tier.unwrap_or(self.free || policy.free) {
            lookup(FREE_TIER.iter().map(|(p, l)| (*p, *l)), model).unwrap_or_default()
        } else {
            Limits::default()
        };
        learned.or(configured).or(free)
    }

    fn find(&self, model: &str) -> Option<&ModelQuota> {
        self.models.iter().find(|m| m.model == model)
    }

    /// The entry for `model`, made (evicting the stalest past the cap).
    pub(super) fn entry(&mut self, model: &str, c: &Clock) -> &mut ModelQuota {
        if let Some(i) = self.models.iter().position(|m| m.model == model) {
            return &mut self.models[i];
        }
        if self.models.len() >= super::MAX_COOLING
            && let Some(i) = (0..self.models.len()).min_by_key(|i| self.models[*i].last)
        {
            self.models.swap_remove(i);
            self.evicted = true;
        }
        self.models.push(ModelQuota {
            model: model.to_string(),
            learned: Limits::default(),
            learned_at: 0,
            minute: VecDeque::new(),
            tokens: VecDeque::new(),
            day: (c.day, 0),
            last: c.ms,
            others: super::shared::Others::default(),
        });
        let last = self.models.len() - 1;
        &mut self.models[last]
    }

    /// Whether `model` has no headroom now for a call of `tokens`
    /// estimated input tokens, and why (the longest wait wins). A call
    /// larger than the whole token limit still goes when the window is empty.
    pub(super) fn full(
        &self,
        model: &str,
        policy: &Policy,
        c: &Clock,
        tokens: u32,
    ) -> Option<Full> {
        let limits = self.limits(model, policy);
        if limits.rpm.is_none() && limits.rpd.is_none() && limits.tpm.is_none() {
            return None;
        }
        let (minute, day, resets) = match self.find(model) {
            Some(m) => {
                let (a, b) = m.used(c);
                (a, b, m.minute_resets(c))
            }
            None => (0, 0, Duration::ZERO),
        };
        if let Some(m) = self.find(model)
            && let Some(f) = share_full(m, &limits, minute, day, c)
        {
            return Some(f);
        }
        let mut out: Option<Full> = None;
        if let Some(limit) = limits.rpd
            && day >= limit
        {
            out = Some(Full {
                limit,
                window: Window::Day,
                wait: c.to_midnight,
            });
        }
        if let Some(limit) = limits.rpm
            && minute >= limit
        {
            let wait = if limit == 0 {
                Duration::from_secs(60)
            } else {
                resets
            };
            if out.is_none_or(|o| o.wait < wait) {
                out = Some(Full {
                    limit,
                    window: Window::Minute,
                    wait,
                });
            }
        }
        if let Some(limit) = limits.tpm
            && tokens > 0
            && let Some(m) = self.find(model)
        {
            let wait = m.tokens_wait(c, u64::from(tokens), u64::from(limit));
            if !wait.is_zero() && out.is_none_or(|o| o.wait < wait) {
                out = Some(Full {
                    limit,
                    window: Window::Tokens,
                    wait,
                });
            }
        }
        out
    }

    /// Count a call on `model` of `tokens` estimated input tokens if it
    /// has headroom (false: it has none).
    pub(super) fn reserve(&mut self, model: &str, policy: &Policy, c: &Clock, tokens: u32) -> bool {
        if self.full(model, policy, c, tokens).is_some() {
            return false;
        }
        let cap = self
            .limits(model, policy)
            .rpm
            .map_or(UNKNOWN_MINUTE_CAP, |l| (l as usize).clamp(1, MINUTE_CAP));
        let m = self.entry(model, c);
        m.prune(c);
        m.minute.push_back(c.ms);
        while m.minute.len() > cap {
            m.minute.pop_front();
        }
        m.day.1 = m.day.1.saturating_add(1);
        m.last = c.ms;
        if tokens > 0 {
            m.tokens.push_back((c.ms, tokens));
            if m.tokens.len() > TOKEN_CAP
                && let (Some((_, a)), Some((t, b))) = (m.tokens.pop_front(), m.tokens.pop_front())
            {
                m.tokens.push_front((t, a.saturating_add(b)));
            }
        }
        true
    }

    /// A call on `model` was answered: its count moves from the pick to
    /// now, after Google counted it, so the gateway's minute never ends
    /// before Google's (the newest count moves: the window stays in order).
    pub(super) fn settle(&mut self, model: &str, c: &Clock) {
        if let Some(m) = self.models.iter_mut().find(|m| m.model == model) {
            if let Some(t) = m.minute.back_mut() {
                *t = (*t).max(c.ms);
            }
            if let Some((t, _)) = m.tokens.back_mut() {
                *t = (*t).max(c.ms);
            }
        }
    }

    /// The answer of a call estimated at `estimate` input tokens said
    /// `actual`: more is counted now, less is taken off the newest counts.
    pub(super) fn correct(&mut self, model: &str, estimate: u32, actual: u32, c: &Clock) {
        let Some(m) = self.models.iter_mut().find(|m| m.model == model) else {
            return;
        };
        if actual > estimate {
            let at = m.tokens.back().map_or(c.ms, |(t, _)| (*t).max(c.ms));
            m.tokens.push_back((at, actual - estimate));
            if m.tokens.len() > TOKEN_CAP
                && let (Some((_, a)), Some((t, b))) = (m.tokens.pop_front(), m.tokens.pop_front())
            {
                m.tokens.push_front((t, a.saturating_add(b)));
            }
            return;
        }
        let mut less = estimate - actual;
        while less > 0
            && let Some((_, n)) = m.tokens.back_mut()
        {
            let take = less.min(*n);
            *n -= take;
            less -= take;
            if *n == 0 {
                m.tokens.pop_back();
            }
        }
    }

    /// Give back the call last counted on `model` (Google refused it).
    /// Returns whether a call was given back.
    pub(super) fn release(&mut self, model: &str, c: &Clock) -> bool {
        if let Some(i) = self.models.iter().position(|m| m.model == model) {
            let m = &mut self.models[i];
            let had = m.minute.pop_back().is_some();
            if m.day.0 == c.day {
                m.day.1 = m.day.1.saturating_sub(1);
            }
            return had;
        }
        false
    }

    /// Take what a 429 names for `model`; returns the limits that changed
    /// (window, new value) for the log.
    pub(super) fn learn(
        &mut self,
        model: &str,
        found: &[Violation],
        c: &Clock,
        at_ms: u64,
    ) -> Vec<(Window, u32)> {
        let mut changed = Vec::new();
        for v in found {
            if v.model.as_deref().is_some_and(|m| m != model) {
                continue;
            }
            self.free |= v.free;
            let Some(value) = v.value else { continue };
            let m = self.entry(model, c);
            let slot = match v.window {
                Window::Minute => &mut m.learned.rpm,
                Window::Day => &mut m.learned.rpd,
                Window::Tokens => &mut m.learned.tpm,
            };
            if *slot != Some(value) {
                *slot = Some(value);
                m.learned_at = at_ms;
                changed.push((v.window, value));
            }
        }
        changed
    }
}

/// One window of a key × model as `/admin/keys` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowInfo {
    /// Calls counted in the window.
    pub used: u32,
    /// The limit in force (`None`: not known, not enforced).
    pub limit: Option<u32>,
    /// Whole seconds until the window frees a slot (minute: the oldest call
    /// leaves it; day: Pacific midnight).
    pub resets_in: u64,
}

/// A key's quota for one model as `/admin/keys` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaInfo {
    /// The model.
    pub model: String,
    /// Requests in the sliding minute.
    pub minute: WindowInfo,
    /// Requests in the Pacific day.
    pub day: WindowInfo,
    /// Estimated input tokens in the sliding minute.
    pub tokens: WindowInfo,
}

/// `{model: {minute: {used, limit, resets_in}, day: {…}, tokens: {…}}}` of one
/// key, as `/admin/keys` and `/status` show it.
pub fn info_json(q: &[QuotaInfo]) -> Value {
    let window = |w: WindowInfo| serde_json::json!({"used": w.used, "limit": w.limit, "resets_in": w.resets_in});
    let m: serde_json::Map<String, Value> = q
        .iter()
        .map(|q| {
            let v =
                serde_json::json!({"minute": window(q.minute), "day": window(q.day), "tokens": window(q.tokens)});
            (q.model.clone(), v)
        })
        .collect();
    Value::Object(m)
}

impl KeyQuota {
    /// What `/admin/keys` shows: every model the key has counts or learned
    /// limits for.
    pub(super) fn info(&self, policy: &Policy, c: &Clock) -> Vec<QuotaInfo> {
        self.models
            .iter()
            .map(|m| {
                let limits = self.limits(&m.model, policy);
                let (minute, day) = m.used(c);
                QuotaInfo {
                    model: m.model.clone(),
                    minute: WindowInfo {
                        used: minute,
                        limit: limits.rpm,
                        resets_in: m.minute_resets(c).as_secs_f64().ceil() as u64,
                    },
                    day: WindowInfo {
                        used: day,
                        limit: limits.rpd,
                        resets_in: c.to_midnight.as_secs_f64().ceil() as u64,
                    },
                    tokens: WindowInfo {
                        used: m.tokens_used(c).min(u64::from(u32::MAX)) as u32,
                        limit: limits.tpm,
                        resets_in: m
                            .tokens
                            .iter()
                            .find(|(t, _)| t + 60_000 > c.ms)
                            .map_or(0, |(t, _)| (t + 60_000 - c.ms).div_ceil(1000)),
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(ms: u64) -> Clock {
        Clock {
            ms,
            day: 20_000,
            to_midnight: Duration::from_secs(3_600),
            wall_ms: 1_000_000_000 + ms,
            replicas: 1,
        }
    }

    #[test]
    fn estimates_input_tokens_from_text_and_media() {
        let text = "word ".repeat(800);
        let body = serde_json::json!({"contents": [{"role": "user", "parts": [{"text": text}]}]});
        let n = estimate_tokens(body.to_string().as_bytes());
        assert!((1000..1100).contains(&n), "{n}");
        // A megabyte of inline image data counts as one image, not its bytes.
        let image = "A".repeat(1 << 20);
        let body = serde_json::json!({"contents": [{"role": "user", "parts": [
            {"text": text},
            {"inlineData": {"mimeType": "image/png", "data": image}}
        ]}]});
        assert_eq!(estimate_tokens(body.to_string().as_bytes()), 1000 + 258);
        assert_eq!(estimate_tokens(b""), 1);
        // Settings around the text do not count; escapes end nowhere early.
        let body = br#"{"contents":[{"parts":[{"text" : "ab\"cd\\"}]}],"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"OFF"}]}"#;
        assert_eq!(estimate_tokens(body), 2);
        // An OpenAI-shaped body: a quarter of it.
        assert_eq!(estimate_tokens(&[b'x'; 400]), 100);
        // Every media spelling counts once; a key merely ending in "data" does not.
        let body = br#"{"contents":[{"parts":[{"file_data":{"file_uri":"u"}},{"fileData":{}},
            {"inline_data":{"data":"x"}},{"text":"\"inlineData\" \\"}]}],"metadata":"x"}"#;
        assert_eq!(estimate_tokens(body), 3 * 258 + 5);
        // A string cut off at the end counts nothing.
        assert_eq!(estimate_tokens(br#"{"text":"abc\"#), 4);
    }

    #[test]
    fn input_tokens_slide_like_requests() {
        let mut q = KeyQuota::default();
        let policy = Policy {
            configured: ModelLimits::parse(&serde_json::json!({"m": {"tpm": 1000}})).unwrap(),
            ..Policy::default()
        };
        assert!(q.reserve("m", &policy, &clock(0), 600));
        assert!(q.reserve("m", &policy, &clock(1_000), 300));
        let full = q.full("m", &policy, &clock(2_000), 200).unwrap();
        assert_eq!((full.window, full.limit), (Window::Tokens, 1000));
        assert_eq!(full.wait, Duration::from_secs(58), "once the 600 leave");
        assert!(q.full("m", &policy, &clock(2_000), 100).is_none());
        assert!(!q.reserve("m", &policy, &clock(2_000), 200));
        assert!(q.reserve("m", &policy, &clock(60_000), 200));
        // Larger than the whole limit: goes when the window is empty.
        assert!(q.full("m", &policy, &clock(200_000), 5_000).is_none());
        let info = &q.info(&policy, &clock(60_000))[0];
        assert_eq!((info.tokens.used, info.tokens.limit), (500, Some(1000)));
    }

    #[test]
    fn globs_and_lookup_prefer_the_most_specific() {
        assert!(glob("gemini-*", "gemini-2.5-flash"));
        assert!(glob("*flash*", "gemini-2.5-flash-lite"));
        assert!(!glob("gemini-*-pro", "gemini-2.5-flash"));
        assert!(glob("*", "x") && glob("a*b*c", "a-b-c") && !glob("a*b*c", "a-c-b"));
        assert!(!glob("ab*ba", "aba") && glob("m", "m") && !glob("m", "mm"));
        let ml = ModelLimits::parse(&serde_json::json!({
            "gemini-*": {"rpm": 1},
            "gemini-2.5-*": {"rpm": 2},
            "gemini-2.5-pro": {"rpm": 3, "rpd": 100, "tpm": 250000}
        }))
        .unwrap();
        assert_eq!(ml.get("gemini-2.5-pro").unwrap().rpd, Some(100));
        assert_eq!(ml.get("gemini-2.5-flash").unwrap().rpm, Some(2));
        assert_eq!(ml.get("gemini-3-pro").unwrap().rpm, Some(1));
        assert_eq!(ml.get("gemma"), None);
        assert!(ModelLimits::parse(&serde_json::json!({"m": {"rpx": 1}})).is_err());
        assert!(ModelLimits::parse(&serde_json::json!({"m": {"rpm": -1}})).is_err());
        assert!(ModelLimits::parse(&serde_json::json!([1])).is_err());
        let back = ModelLimits::parse(&serde_json::from_str(&ml.to_json()).unwrap()).unwrap();
        assert_eq!(back, ml);
    }

    #[test]
    fn reads_googles_quota_failure_in_any_order() {
        let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[
            {"@type":"type.googleapis.com/google.rpc.Help","links":[]},
            {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[
              {"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests",
               "quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier",
               "quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"20"},
              {"quotaMetric":"generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
               "quotaId":"GenerateContentPaidTierInputTokensPerModelPerMinute","quotaValue":"1000000"}]},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"38s"}]}}"#;
        let v = violations(body);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].window, Window::Day);
        assert_eq!(v[0].value, Some(20));
        assert!(v[0].free);
        assert_eq!(v[0].model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(v[1].window, Window::Tokens);
        assert!(!v[1].free);
        assert!(violations(b"not json").is_empty());
    }

    #[test]
    fn limits_come_learned_then_configured_then_free_tier() {
        let mut q = KeyQuota::default();
        let mut policy = Policy::default();
        assert_eq!(q.limits("gemini-2.5-flash", &policy), Limits::default());
        policy.free = true;
        assert_eq!(q.limits("gemini-2.5-flash", &policy).rpd, Some(20));
        policy.configured =
            ModelLimits::parse(&serde_json::json!({"gemini-*": {"rpm": 7}})).unwrap();
        assert_eq!(q.limits("gemini-2.5-flash", &policy).rpm, Some(7));
        let learned = [Violation {
            window: Window::Minute,
            value: Some(3),
            free: true,
            model: None,
        }];
        let c = clock(0);
        assert_eq!(
            q.learn("gemini-2.5-flash", &learned, &c, 1),
            vec![(Window::Minute, 3)]
        );
        assert!(
            q.learn("gemini-2.5-flash", &learned, &c, 1).is_empty(),
            "once"
        );
        assert_eq!(q.limits("gemini-2.5-flash", &policy).rpm, Some(3));
        // A learned free tier brings the defaults without KEY_TIER.
        policy = Policy::default();
        assert!(q.free);
        assert_eq!(q.limits("gemini-2.5-flash", &policy).rpd, Some(20));
    }

    #[test]
    fn the_minute_slides_and_the_day_counts() {
        let mut q = KeyQuota::default();
        let policy = Policy {
            configured: ModelLimits::parse(&serde_json::json!({"m": {"rpm": 2, "rpd": 3}}))
                .unwrap(),
            ..Policy::default()
        };
        assert!(q.reserve("m", &policy, &clock(0), 0));
        assert!(q.reserve("m", &policy, &clock(10_000), 0));
        let full = q.full("m", &policy, &clock(20_000), 0).unwrap();
        assert_eq!(full.window, Window::Minute);
        assert_eq!(full.wait, Duration::from_secs(40));
        assert!(!q.reserve("m", &policy, &clock(20_000), 0));
        assert!(q.reserve("m", &policy, &clock(60_000), 0));
        let full = q.full("m", &policy, &clock(120_000), 0).unwrap();
        assert_eq!((full.window, full.limit), (Window::Day, 3));
        assert_eq!(full.wait, Duration::from_secs(3_600));
        q.release("m", &clock(120_000));
        assert!(q.reserve("m", &policy, &clock(120_000), 0));
        // Another model is counted apart.
        assert!(q.reserve("other", &policy, &clock(120_000), 0));
        // A new day.
        let next = Clock {
            day: 20_001,
            ..clock(200_000)
        };
        assert!(q.full("m", &policy, &next, 0).is_none());
    }
}
