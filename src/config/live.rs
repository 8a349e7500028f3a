//! The live configuration: the [`Config`] every request reads, swapped
//! atomically when settings change at run time ([`Live::change`], behind
//! `PATCH`/`DELETE /admin/config` and the store's events from other replicas).
//!
//! It is an [`ArcSwap`] (the `arc-swap` crate) holding `Arc<Config>`: a
//! request's [`Live::load`] is a lock-free read that never waits for a change
//! in progress, and a change builds a whole new configuration with exactly
//! the start-up parser ([`Config::with_stored`]) before swapping it in, so a
//! request sees the old settings or the new ones, never a mix. Changes are
//! serialised by a mutex that only they take (never held across an await).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use super::table::{self, Apply, Setting};
use super::{Config, ConfigError, near_miss};

/// The configuration in use, and the lock that orders changes to it.
pub struct Live {
    cfg: ArcSwap<Config>,
    change: Mutex<()>,
}

/// Why a settings change was refused (a 400, nothing applied).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Not a setting of this gateway (the message names a near miss).
    Unknown(String),
    /// A setting that cannot change while running.
    Restart(&'static str, &'static str),
    /// `API_KEYS`: keys have their own API.
    Keys(&'static str),
    /// The start-up parser refused the new settings.
    Invalid(ConfigError),
}

impl Refusal {
    /// The setting at fault.
    pub fn name(&self) -> &str {
        match self {
            Refusal::Unknown(n) => n,
            Refusal::Restart(n, _) | Refusal::Keys(n) => n,
            Refusal::Invalid(e) => e.var,
        }
    }

    /// One line saying what is wrong (the parser's own line for a bad value;
    /// never a secret value).
    pub fn message(&self) -> String {
        match self {
            Refusal::Unknown(n) => match near_miss(n) {
                Some(k) => format!("{n} is not a setting of this gateway; did you mean {k}?"),
                None => format!("{n} is not a setting of this gateway"),
            },
            Refusal::Restart(n, why) => format!(
                "{n} cannot change while running ({why}); set it in the environment and restart"
            ),
            Refusal::Keys(n) => format!(
                "{n} is not changed through /admin/config: add and remove keys with /admin/keys"
            ),
            Refusal::Invalid(e) => e.to_string(),
        }
    }
}

/// The row of a setting that may change while running, or why not.
pub fn patchable(name: &str) -> Result<&'static Setting, Refusal> {
    let s = table::find(name).ok_or_else(|| Refusal::Unknown(name.chars().take(64).collect()))?;
    match s.apply {
        Apply::Live => Ok(s),
        Apply::Restart(why) => Err(Refusal::Restart(s.name, why)),
        Apply::Keys => Err(Refusal::Keys(s.name)),
    }
}

impl Live {
    /// Start from `cfg`.
    pub fn new(cfg: Config) -> Live {
        Live {
            cfg: ArcSwap::from_pointee(cfg),
            change: Mutex::new(()),
        }
    }

    /// The configuration now: one lock-free load. Read what you need and let
    /// the guard go (copy values out before an `.await`); hold
    /// [`Live::load_full`] for longer.
    pub fn load(&self) -> Guard<Arc<Config>> {
        self.cfg.load()
    }

    /// The configuration now, as an `Arc` one may keep.
    pub fn load_full(&self) -> Arc<Config> {
        self.cfg.load_full()
    }

    /// Set (`Some`, in the environment's syntax) or revert (`None`) runtime
    /// overrides: every name must be a live setting, and the whole new set of
    /// variables must pass the start-up parser, or nothing changes. `tune`
    /// gets the old and the new configuration just before the new one is
    /// swapped in (to pass settings on to long-lived objects). Returns the
    /// names changed.
    pub fn change(
        &self,
        changes: &[(String, Option<String>)],
        tune: impl FnOnce(&Config, &Config),
    ) -> Result<Vec<&'static str>, Refusal> {
        let names = changes
            .iter()
            .map(|(n, _)| patchable(n).map(|s| s.name))
            .collect::<Result<Vec<_>, _>>()?;
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.cfg.load_full();
        let mut stored: BTreeMap<String, String> = old.sources.stored.clone();
        for (name, value) in changes {
            match value {
                Some(v) => stored.insert(name.clone(), v.clone()),
                None => stored.remove(name),
            };
        }
        let new = old.with_stored(&stored).map_err(Refusal::Invalid)?;
        tune(&old, &new);
        self.cfg.store(Arc::new(new));
        Ok(names)
    }

    /// Make the runtime overrides exactly `stored` (what the store holds,
    /// after a resync), leaving out with a warning (returned) each one that is
    /// not a live setting or that the parser refuses; `tune` as in
    /// [`Live::change`].
    pub fn reset(
        &self,
        stored: &BTreeMap<String, String>,
        tune: impl FnOnce(&Config, &Config),
    ) -> Vec<String> {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.cfg.load_full();
        let new = old.with_stored_lenient(stored);
        let warnings = new
            .notes
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m.starts_with("stored setting"))
            .cloned()
            .collect();
        tune(&old, &new);
        self.cfg.store(Arc::new(new));
        warnings
    }
}
