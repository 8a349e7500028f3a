//! The store's data model: plain typed records (the key list, setting
//! overrides, per-key state, usage buckets), the [`Change`]s that update them,
//! and the merge rules every mode and every replica applies alike:
//!
//! * counters add up;
//! * deadlines (cooldowns, rests): the later one wins;
//! * flags and values (disabled, failures, settings, a key added or removed):
//!   the later change wins (by its `at_ms` stamp);
//! * a removed key's state is ignored: a removal wins over stale state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A key's stable id: the first 12 hex digits of the SHA-256 of the key. The
/// same on every replica and across restarts, and it reveals nothing of the key.
pub type KeyId = String;

/// The [`KeyId`] of a Gemini key.
pub fn key_id(key: &str) -> KeyId {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    hex(&digest.as_ref()[..6])
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Where a key in the list came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// `API_KEYS`.
    Env,
    /// Added at runtime (admin API).
    Added,
}

/// One entry of the stored key list: a live key, or the remembered removal
/// of one (then `key` is empty: a removed key's value is not kept).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The full key (empty when removed). Encrypted at rest with `ENCRYPTION_KEY`.
    pub key: String,
    /// Where it came from.
    pub source: KeySource,
    /// Removed at runtime: a restart with the same `API_KEYS` keeps it out.
    pub removed: bool,
    /// When it was added or removed (unix ms): the later change wins.
    pub at_ms: u64,
}

/// A value with the time it was set: the later one wins a merge (a tie goes
/// to the newcomer, so re-applying a change is harmless).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Lww<T> {
    /// When it was set (unix ms).
    pub at_ms: u64,
    /// The value.
    pub value: T,
}

impl<T> Lww<T> {
    /// Take `other` if it is at least as recent.
    pub fn merge(&mut self, other: Lww<T>) {
        if other.at_ms >= self.at_ms {
            *self = other;
        }
    }
}

/// One key's state, as the pool needs it after a restart or from a replica.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Disabled, with the reason (`None`: enabled).
    pub disabled: Lww<Option<String>>,
    /// Per-model cooldown deadlines (unix ms).
    pub cooldowns: BTreeMap<String, u64>,
    /// Resting (after too many consecutive failures) until (unix ms; 0 = not).
    pub rest_until_ms: u64,
    /// Consecutive transient failures.
    pub failures: Lww<u32>,
    /// The tier set through the admin API (`"free"`, `"paid"`; `None`: as `KEY_TIER`).
    #[serde(default)]
    pub tier: Lww<Option<String>>,
    /// Known free tier (a 429 named a `…FreeTier` quota).
    #[serde(default)]
    pub free: bool,
    /// Limits learned from 429s: `{model}|{rpm|rpd|tpm}` → Google's value.
    #[serde(default)]
    pub limits: BTreeMap<String, Lww<u32>>,
}

impl KeyState {
    /// Merge another view of the same key (see the module rules).
    pub fn merge(&mut self, other: KeyState) {
        self.disabled.merge(other.disabled);
        for (model, until) in other.cooldowns {
            let e = self.cooldowns.entry(model).or_insert(0);
            *e = (*e).max(until);
        }
        self.rest_until_ms = self.rest_until_ms.max(other.rest_until_ms);
        self.failures.merge(other.failures);
        self.tier.merge(other.tier);
        self.free |= other.free;
        for (k, v) in other.limits {
            match self.limits.get_mut(&k) {
                Some(old) => old.merge(v),
                None => {
                    self.limits.insert(k, v);
                }
            }
        }
    }

    /// The quota knowledge of this state alone (what a clear keeps).
    pub fn quota_part(&self) -> KeyState {
        KeyState {
            tier: self.tier.clone(),
            free: self.free,
            limits: self.limits.clone(),
            ..KeyState::default()
        }
    }

    /// A state cleared at `at_ms`: enabled and no failures as of then.
    pub fn cleared(at_ms: u64) -> KeyState {
        KeyState {
            disabled: Lww { at_ms, value: None },
            failures: Lww { at_ms, value: 0 },
            ..KeyState::default()
        }
    }

    /// Drop deadlines that have passed.
    pub fn expire(&mut self, now_ms: u64) {
        self.cooldowns.retain(|_, until| *until > now_ms);
        if self.rest_until_ms <= now_ms {
            self.rest_until_ms = 0;
        }
    }
}

/// Usage counters: only what happened is stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Counts {
    /// Upstream attempts.
    pub requests: u64,
    /// 2xx answers.
    pub successes: u64,
    /// Failures: the key was bad (401/403, invalid, suspended).
    pub key_invalid: u64,
    /// Failures: 429 (quota / rate limit).
    pub rate_limited: u64,
    /// Failures: 5xx, connection errors, timeouts.
    pub transient: u64,
    /// Failures: a region not supported (no key blamed).
    pub region: u64,
    /// Failures: the client's own fault (400, 404, 413…).
    pub client: u64,
    /// `usageMetadata.promptTokenCount`.
    pub prompt_tokens: u64,
    /// `usageMetadata.candidatesTokenCount`.
    pub output_tokens: u64,
    /// `usageMetadata.thoughtsTokenCount`.
    pub thought_tokens: u64,
    /// Client requests: counted once per client request, on its first
    /// attempt's key and model (on key `""` when no key could be tried), so
    /// a retried request counts one client request and several `requests`.
    pub client_requests: u64,
}

impl Counts {
    /// The counter names, as stored in Redis hashes.
    pub const NAMES: [&'static str; 11] = [
        "requests",
        "successes",
        "key_invalid",
        "rate_limited",
        "transient",
        "region",
        "client",
        "prompt_tokens",
        "output_tokens",
        "thought_tokens",
        "client_requests",
    ];

    fn slots(&mut self) -> [&mut u64; 11] {
        [
            &mut self.requests,
            &mut self.successes,
            &mut self.key_invalid,
            &mut self.rate_limited,
            &mut self.transient,
            &mut self.region,
            &mut self.client,
            &mut self.prompt_tokens,
            &mut self.output_tokens,
            &mut self.thought_tokens,
            &mut self.client_requests,
        ]
    }

    /// `(name, value)` of every counter.
    pub fn fields(&self) -> [(&'static str, u64); 11] {
        let mut c = *self;
        let v = c.slots().map(|s| *s);
        std::array::from_fn(|i| (Self::NAMES[i], v[i]))
    }

    /// Add `v` to the counter called `name` (unknown names are ignored).
    pub fn add_named(&mut self, name: &str, v: u64) {
        if let Some(i) = Self::NAMES.iter().position(|n| *n == name) {
            let slot = &mut *self.slots()[i];
            *slot = slot.saturating_add(v);
        }
    }

    /// Add every counter of `other`.
    pub fn add(&mut self, other: &Counts) {
        for (slot, (_, v)) in self.slots().into_iter().zip(other.fields()) {
            *slot = slot.saturating_add(v);
        }
    }

    /// All zero.
    pub fn is_zero(&self) -> bool {
        self.fields().iter().all(|(_, v)| *v == 0)
    }
}

/// The width of a usage bucket.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    /// Per key × model per minute, kept 48 h (`/admin/usage` windows `1h`
    /// and `24h` list minutes by key, by model or both).
    Minute,
    /// Per key × model per hour, kept 7 days.
    Hour,
    /// Per key × model per day, kept 90 days.
    Day,
}

impl Grain {
    /// Every grain.
    pub const ALL: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

    /// The bucket width in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Grain::Minute => 60,
            Grain::Hour => 3600,
            Grain::Day => 86_400,
        }
    }

    /// How long buckets are kept, in seconds.
    pub fn retention(self) -> u64 {
        match self {
            Grain::Minute => 48 * 3600,
            Grain::Hour => 7 * 86_400,
            Grain::Day => 90 * 86_400,
        }
    }

    /// A short tag used in stored keys.
    pub fn tag(self) -> u8 {
        match self {
            Grain::Minute => 0,
            Grain::Hour => 1,
            Grain::Day => 2,
        }
    }

    /// The grain of a tag.
    pub fn from_tag(tag: u8) -> Option<Grain> {
        Grain::ALL.into_iter().find(|g| g.tag() == tag)
    }
}

/// Which usage bucket counters belong to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    /// Its width.
    pub grain: Grain,
    /// Its start (unix seconds, a multiple of the width).
    pub start: u64,
    /// The key (empty for client requests that found no key to try).
    pub key_id: KeyId,
    /// The model.
    pub model: String,
}

impl Bucket {
    /// Expired at `now_ms`?
    pub fn expired(&self, now_ms: u64) -> bool {
        self.start + self.grain.seconds() + self.grain.retention() <= now_ms / 1000
    }
}

/// One upstream attempt's counters, for a key and a model at a time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The key used.
    pub key_id: KeyId,
    /// The model called.
    pub model: String,
    /// When (unix ms).
    pub at_ms: u64,
    /// What happened.
    pub counts: Counts,
}

impl Usage {
    /// The three buckets this usage counts in (per key × model: minute,
    /// hour and day).
    pub fn buckets(&self) -> [Bucket; 3] {
        let secs = self.at_ms / 1000;
        Grain::ALL.map(|grain| Bucket {
            grain,
            start: secs - secs % grain.seconds(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
        })
    }
}

/// A change to the stored state. The request path records these; the store
/// writes them behind and shares them with the other replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Change {
    /// A key added (at runtime, or first seen in `API_KEYS`).
    AddKey {
        /// The full key.
        key: String,
        /// Where it came from.
        source: KeySource,
        /// When (unix ms).
        at_ms: u64,
    },
    /// A key removed at runtime (remembered).
    RemoveKey {
        /// Its id.
        id: KeyId,
        /// When (unix ms).
        at_ms: u64,
    },
    /// A setting overridden at runtime (`value: None`: back to env/default).
    Setting {
        /// The variable name.
        name: String,
        /// The value in the environment's syntax, or `None` to revert.
        value: Option<String>,
        /// When (unix ms).
        at_ms: u64,
    },
    /// A key disabled with a reason (`reason: None`: enabled again).
    Disable {
        /// The key.
        id: KeyId,
        /// Why, or `None` to enable.
        reason: Option<String>,
        /// When (unix ms).
        at_ms: u64,
    },
    /// A key cools down for one model until a deadline.
    Cooldown {
        /// The key.
        id: KeyId,
        /// The model.
        model: String,
        /// Until (unix ms).
        until_ms: u64,
    },
    /// A key rests (all models) until a deadline.
    Rest {
        /// The key.
        id: KeyId,
        /// Until (unix ms).
        until_ms: u64,
    },
    /// A key's consecutive failure count.
    Failures {
        /// The key.
        id: KeyId,
        /// The count.
        count: u32,
        /// When (unix ms).
        at_ms: u64,
    },
    /// A key's state cleared (an admin reset, a passed re-verification:
    /// `model: None`, everything; the daily quota reset: one model's cooldown).
    Clear {
        /// The key.
        id: KeyId,
        /// Only this model's cooldown, or (`None`) the whole state.
        model: Option<String>,
        /// When (unix ms): a whole clear stamps `disabled` and `failures` with it.
        at_ms: u64,
    },
    /// A key's tier set through the admin API (`None`: back to `KEY_TIER`).
    Tier {
        /// The key.
        id: KeyId,
        /// `"free"`, `"paid"` or `None`.
        tier: Option<String>,
        /// When (unix ms).
        at_ms: u64,
    },
    /// What a 429 taught about a key: a limit for a model, and/or that the
    /// key is free tier.
    Learned {
        /// The key.
        id: KeyId,
        /// The model.
        model: String,
        /// `"rpm"`, `"rpd"` or `"tpm"`.
        window: String,
        /// Google's value (`None`: only the tier was learned).
        value: Option<u32>,
        /// The quota was a free-tier one.
        free: bool,
        /// When (unix ms).
        at_ms: u64,
    },
    /// Usage counters to add.
    Usage(Usage),
    /// Which key owns a file, cache or batch (`owner: None`: deleted).
    Affinity {
        /// `files/…`, `cachedContents/…` or `batches/…`.
        name: String,
        /// Its owner, or `None` to forget it.
        owner: Option<AffinityRecord>,
    },
}

/// Most affinity records a snapshot keeps.
pub const AFFINITY_MAX: usize = 100_000;

/// Who owns one file, cache or batch (see `crate::affinity`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AffinityRecord {
    /// The pool key's stable id (`key_id`).
    pub key_id: String,
    /// A tag of the client token that created it (a hash; empty for an open gateway).
    pub token: String,
    /// When Google forgets it (unix ms).
    pub expires_ms: u64,
}

impl Change {
    /// A counter change (merged locally when the queue is full, never dropped).
    pub fn is_counter(&self) -> bool {
        matches!(self, Change::Usage(_))
    }

    /// The key whose state this changes, if any.
    pub fn state_key(&self) -> Option<&str> {
        match self {
            Change::Disable { id, .. }
            | Change::Cooldown { id, .. }
            | Change::Rest { id, .. }
            | Change::Failures { id, .. }
            | Change::Tier { id, .. }
            | Change::Learned { id, .. }
            | Change::Clear { id, .. } => Some(id),
            _ => None,
        }
    }

    /// This change as a one-field [`KeyState`] (for state changes).
    pub fn as_state(&self) -> Option<KeyState> {
        let mut s = KeyState::default();
        match self {
            Change::Disable { reason, at_ms, .. } => {
                s.disabled = Lww {
                    at_ms: *at_ms,
                    value: reason.clone(),
                }
            }
            Change::Cooldown {
                model, until_ms, ..
            } => {
                s.cooldowns.insert(model.clone(), *until_ms);
            }
            Change::Rest { until_ms, .. } => s.rest_until_ms = *until_ms,
            Change::Failures { count, at_ms, .. } => {
                s.failures = Lww {
                    at_ms: *at_ms,
                    value: *count,
                }
            }
            Change::Tier { tier, at_ms, .. } => {
                s.tier = Lww {
                    at_ms: *at_ms,
                    value: tier.clone(),
                }
            }
            Change::Learned {
                model,
                window,
                value,
                free,
                at_ms,
                ..
            } => {
                s.free = *free;
                if let Some(v) = value {
                    let v = Lww {
                        at_ms: *at_ms,
                        value: *v,
                    };
                    s.limits.insert(format!("{model}|{window}"), v);
                }
            }
            _ => return None,
        }
        Some(s)
    }
}

/// One replica's calls on a key × model counted in one (unix) second, to
/// add to the shared quota counts (`store::quota`): a call given back after
/// Google's 429 is `-1`, a token estimate corrected is the difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaDelta {
    /// The key.
    pub key_id: KeyId,
    /// The model (its label).
    pub model: String,
    /// The second the calls were counted in (unix).
    pub sec: u64,
    /// The Pacific day they count for.
    pub day: i64,
    /// Requests added (negative: given back).
    pub requests: i64,
    /// Estimated input tokens added.
    pub tokens: i64,
}

/// The other replicas' calls on a key × model in one second, as last read
/// (`None`: unchanged since the last read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaSeen {
    /// The key.
    pub key_id: KeyId,
    /// The model.
    pub model: String,
    /// The second (unix).
    pub sec: u64,
    /// Their requests in that second.
    pub requests: Option<u32>,
    /// Their estimated input tokens in that second.
    pub tokens: Option<u32>,
    /// Requests they added since the last read (for the day's count).
    pub added: i64,
}

/// The other replicas' requests on a key × model on a Pacific day (read once,
/// at the first sync: later ones arrive as [`QuotaSeen::added`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaDay {
    /// The key.
    pub key_id: KeyId,
    /// The model.
    pub model: String,
    /// The Pacific day.
    pub day: i64,
    /// Their requests that day.
    pub requests: u32,
}

/// What one quota sync brought back: the others' counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaView {
    /// Replicas syncing now (this one included; at least 1).
    pub replicas: usize,
    /// Seconds whose counts changed.
    pub seconds: Vec<QuotaSeen>,
    /// Day totals (first sync only).
    pub days: Vec<QuotaDay>,
}

/// Most usage buckets a [`Snapshot`] holds (model names come from clients):
/// past it, counters of new buckets are not kept (existing ones still add up).
pub const USAGE_BUCKETS_MAX: usize = 400_000;

/// Everything the store holds, as loaded at start-up.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The key list: live keys and remembered removals, by id.
    pub keys: BTreeMap<KeyId, KeyRecord>,
    /// Runtime setting overrides (a `None` value: reverted).
    pub settings: BTreeMap<String, Lww<Option<String>>>,
    /// Per-key state, by id.
    pub states: BTreeMap<KeyId, KeyState>,
    /// Usage counters by bucket.
    pub usage: BTreeMap<Bucket, Counts>,
    /// Who owns each file, cache and batch, by name.
    pub affinity: BTreeMap<String, AffinityRecord>,
}

impl Snapshot {
    /// Apply one change (the merge rules of the module).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::AddKey { key, source, at_ms } => self.merge_key(
                key_id(key),
                KeyRecord {
                    key: key.clone(),
                    source: *source,
                    removed: false,
                    at_ms: *at_ms,
                },
            ),
            Change::RemoveKey { id, at_ms } => {
                let source = self.keys.get(id).map_or(KeySource::Added, |r| r.source);
                self.merge_key(
                    id.clone(),
                    KeyRecord {
                        key: String::new(),
                        source,
                        removed: true,
                        at_ms: *at_ms,
                    },
                )
            }
            Change::Setting { name, value, at_ms } => {
                let new = Lww {
                    at_ms: *at_ms,
                    value: value.clone(),
                };
                match self.settings.get_mut(name) {
                    Some(old) => old.merge(new),
                    None => {
                        self.settings.insert(name.clone(), new);
                    }
                }
            }
            Change::Usage(u) => {
                // One search per bucket (the map holds every key's buckets).
                for b in u.buckets() {
                    let full = self.usage.len() >= USAGE_BUCKETS_MAX;
                    match self.usage.entry(b) {
                        std::collections::btree_map::Entry::Occupied(mut c) => {
                            c.get_mut().add(&u.counts)
                        }
                        std::collections::btree_map::Entry::Vacant(v) if !full => {
                            v.insert(u.counts);
                        }
                        std::collections::btree_map::Entry::Vacant(_) => {}
                    }
                }
            }
            Change::Clear { id, model, at_ms } => self.clear_state(id, model.as_deref(), *at_ms),
            Change::Affinity { name, owner } => match owner {
                Some(o)
                    if self.affinity.len() < AFFINITY_MAX || self.affinity.contains_key(name) =>
                {
                    self.affinity.insert(name.clone(), o.clone());
                }
                Some(_) => {}
                None => {
                    self.affinity.remove(name);
                }
            },
            _ => {
                if let (Some(id), Some(s)) = (change.state_key(), change.as_state()) {
                    self.merge_state(id, s);
                }
            }
        }
    }

    /// Merge one key record: the later wins; on a tie, a removal wins.
    pub fn merge_key(&mut self, id: KeyId, rec: KeyRecord) {
        let take = match self.keys.get(&id) {
            None => true,
            Some(old) => rec.at_ms > old.at_ms || (rec.at_ms == old.at_ms && rec.removed),
        };
        if take {
            if rec.removed {
                self.states.remove(&id);
            }
            self.keys.insert(id, rec);
        }
    }

    /// Merge one key's state (ignored for a removed key).
    pub fn merge_state(&mut self, id: &str, state: KeyState) {
        if self.keys.get(id).is_some_and(|r| r.removed) {
            return;
        }
        self.states.entry(id.to_string()).or_default().merge(state);
    }

    /// Clear one model's cooldown, or (`model: None`) a key's whole state,
    /// keeping `at_ms` as the stamp of `disabled` and `failures`.
    pub fn clear_state(&mut self, id: &str, model: Option<&str>, at_ms: u64) {
        match model {
            Some(m) => {
                if let Some(s) = self.states.get_mut(id) {
                    s.cooldowns.remove(m);
                }
            }
            None if self.keys.get(id).is_some_and(|r| r.removed) => {}
            None => {
                // A clear (an admin reset) keeps what is known of the quota.
                let mut cleared = KeyState::cleared(at_ms);
                if let Some(old) = self.states.get(id) {
                    cleared.merge(old.quota_part());
                }
                self.states.insert(id.to_string(), cleared);
            }
        }
    }

    /// The pool's key list: the `API_KEYS` keys not removed at runtime (in
    /// their order; one new in `API_KEYS` is in), then the keys added at
    /// runtime (oldest first).
    pub fn key_list(&self, env_keys: &[String]) -> Vec<(String, KeySource)> {
        let mut out: Vec<(String, KeySource)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for k in env_keys {
            let id = key_id(k);
            if !self.keys.get(&id).is_some_and(|r| r.removed) && seen.insert(id) {
                out.push((k.clone(), KeySource::Env));
            }
        }
        let mut added: Vec<_> = self
            .keys
            .iter()
            .filter(|(id, r)| !r.removed && !r.key.is_empty() && !seen.contains(*id))
            .collect();
        added.sort_by_key(|(id, r)| (r.at_ms, (*id).clone()));
        out.extend(added.into_iter().map(|(_, r)| (r.key.clone(), r.source)));
        out
    }

    /// The settings overridden at runtime (reverted ones left out).
    pub fn setting_overrides(&self) -> BTreeMap<String, String> {
        self.settings
            .iter()
            .filter_map(|(n, v)| v.value.clone().map(|v| (n.clone(), v)))
            .collect()
    }

    /// Drop expired usage buckets and passed deadlines.
    pub fn prune(&mut self, now_ms: u64) {
        self.usage.retain(|b, _| !b.expired(now_ms));
        for s in self.states.values_mut() {
            s.expire(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, c: Change) -> KeyState {
        let mut s = Snapshot::default();
        s.apply(&c);
        s.states.remove(id).unwrap_or_default()
    }

    #[test]
    fn key_id_is_short_stable_and_hides_the_key() {
        let k = "AIzaSyA1234567890abcdefghijklmnopqrstu";
        assert_eq!(key_id(k), key_id(k));
        assert_eq!(key_id(k).len(), 12);
        assert!(key_id(k).bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!k.contains(&key_id(k)));
        assert_ne!(key_id(k), key_id("AIzaSyA1234567890abcdefghijklmnopqrstv"));
    }

    #[test]
    fn later_deadline_wins_and_later_flag_wins() {
        let mut a = state(
            "k",
            Change::Cooldown {
                id: "k".into(),
                model: "m".into(),
                until_ms: 500,
            },
        );
        a.merge(state(
            "k",
            Change::Cooldown {
                id: "k".into(),
                model: "m".into(),
                until_ms: 300,
            },
        ));
        assert_eq!(a.cooldowns["m"], 500);
        a.merge(state(
            "k",
            Change::Rest {
                id: "k".into(),
                until_ms: 9,
            },
        ));
        a.merge(state(
            "k",
            Change::Rest {
                id: "k".into(),
                until_ms: 4,
            },
        ));
        assert_eq!(a.rest_until_ms, 9);
        let dis = |r: Option<&str>, at| Change::Disable {
            id: "k".into(),
            reason: r.map(Into::into),
            at_ms: at,
        };
        a.merge(state("k", dis(Some("bad"), 20)));
        a.merge(state("k", dis(None, 10))); // stale enable loses
        assert_eq!(a.disabled.value.as_deref(), Some("bad"));
        a.merge(state("k", dis(None, 30)));
        assert_eq!(a.disabled.value, None);
        a.expire(400);
        assert_eq!(a.cooldowns["m"], 500);
        a.expire(500);
        assert!(a.cooldowns.is_empty() && a.rest_until_ms == 0);
    }

    #[test]
    fn removal_is_remembered_and_wins_over_stale_state() {
        let env = vec!["k1".to_string(), "k2".to_string()];
        let mut s = Snapshot::default();
        s.apply(&Change::AddKey {
            key: "k3".into(),
            source: KeySource::Added,
            at_ms: 5,
        });
        s.apply(&Change::RemoveKey {
            id: key_id("k1"),
            at_ms: 6,
        });
        s.apply(&Change::Disable {
            id: key_id("k1"),
            reason: Some("x".into()),
            at_ms: 5,
        });
        assert!(
            !s.states.contains_key(&key_id("k1")),
            "state of a removed key ignored"
        );
        let list: Vec<_> = s.key_list(&env).into_iter().map(|(k, _)| k).collect();
        assert_eq!(list, ["k2", "k3"]);
        // a stale add (older than the removal) does not bring it back; a newer one does
        s.apply(&Change::AddKey {
            key: "k1".into(),
            source: KeySource::Added,
            at_ms: 4,
        });
        assert!(s.keys[&key_id("k1")].removed);
        s.apply(&Change::AddKey {
            key: "k1".into(),
            source: KeySource::Added,
            at_ms: 7,
        });
        assert_eq!(s.key_list(&env).len(), 3);
        // a key new in API_KEYS is in
        let env2 = vec!["k2".to_string(), "k4".to_string()];
        let list: Vec<_> = s.key_list(&env2).into_iter().map(|(k, _)| k).collect();
        assert_eq!(list, ["k2", "k4", "k3", "k1"]);
    }

    #[test]
    fn usage_counts_in_three_buckets_and_adds_up() {
        let mut s = Snapshot::default();
        let c = Counts {
            requests: 1,
            successes: 1,
            prompt_tokens: 10,
            ..Counts::default()
        };
        let u = Usage {
            key_id: "abc".into(),
            model: "m".into(),
            at_ms: 90_061_000,
            counts: c,
        };
        s.apply(&Change::Usage(u.clone()));
        s.apply(&Change::Usage(u.clone()));
        assert_eq!(s.usage.len(), 3);
        let [m, h, d] = u.buckets();
        assert_eq!((m.start, m.key_id.as_str()), (90_060, "abc"));
        assert_eq!((h.start, d.start), (90_000, 86_400));
        assert_eq!(s.usage[&d].prompt_tokens, 20);
        assert_eq!(s.usage[&h].requests, 2);
        s.prune(90_061_000 + 49 * 3600 * 1000);
        assert_eq!(s.usage.len(), 2, "minute buckets go after 48 h");
        s.prune(90_061_000 + 8 * 86_400 * 1000);
        assert_eq!(s.usage.len(), 1, "hour buckets go after 7 days");
    }

    #[test]
    fn counts_by_name_and_settings_revert() {
        let mut c = Counts::default();
        c.add_named("rate_limited", 2);
        c.add_named("nope", 5);
        assert_eq!(c.rate_limited, 2);
        assert!(!c.is_zero());
        assert_eq!(c.fields().iter().map(|f| f.1).sum::<u64>(), 2);
        let mut s = Snapshot::default();
        let set = |v: Option<&str>, at| Change::Setting {
            name: "MAX_RETRIES".into(),
            value: v.map(Into::into),
            at_ms: at,
        };
        s.apply(&set(Some("5"), 1));
        assert_eq!(s.setting_overrides()["MAX_RETRIES"], "5");
        s.apply(&set(None, 2));
        s.apply(&set(Some("7"), 1)); // stale
        assert!(s.setting_overrides().is_empty());
    }

    #[test]
    fn changes_round_trip_as_json() {
        let c = Change::Cooldown {
            id: "k".into(),
            model: "m".into(),
            until_ms: 3,
        };
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Change>(&j).unwrap(), c);
    }
}
