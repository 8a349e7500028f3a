//! Reading typed values from the variable map: [`Vars`] (strings, booleans,
//! numbers in a range, seconds, lists, JSON) and the list syntax shared with
//! the rest of the gateway ([`parse_list`], [`unquote`]).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::ConfigError;
use super::table::is_secret;
use crate::keys::mask;

/// Reads typed values from a variable map, remembering what it saw.
pub(super) struct Vars<'a> {
    pub(super) map: &'a HashMap<String, String>,
    pub(super) seen: Vec<(String, String)>,
}

impl<'a> Vars<'a> {
    pub(super) fn raw(&mut self, name: &'static str) -> Option<&'a str> {
        let v = self
            .map
            .get(name)
            .map(|s| unquote(s))
            .filter(|s| !s.is_empty())?;
        let shown = if is_secret(name) {
            match parse_list(v) {
                Ok(items) => format!(
                    "[{}]",
                    items.iter().map(|k| mask(k)).collect::<Vec<_>>().join(", ")
                ),
                Err(_) => "(unparsable)".to_string(),
            }
        } else {
            v.to_string()
        };
        self.seen.push((name.to_string(), shown));
        Some(v)
    }

    pub(super) fn string(&mut self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_string()
    }

    pub(super) fn opt_string(&mut self, name: &'static str) -> Option<String> {
        self.raw(name).map(str::to_string)
    }

    pub(super) fn bool(&mut self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => parse_bool(name, v),
        }
    }

    /// A number in `min..=max` (`max: None` = no upper bound but the type's);
    /// the error names the range: "expected a whole number 1–10000, got "0"".
    pub(super) fn number<T>(
        &mut self,
        name: &'static str,
        default: T,
        min: T,
        max: Option<T>,
        unit: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        match v.parse::<T>() {
            // NaN fails both comparisons.
            Ok(x) if x >= min && max.is_none_or(|m| x <= m) => Ok(x),
            _ => {
                let range = match max {
                    Some(m) => format!("{min}–{m}"),
                    None => format!("≥ {min}"),
                };
                Err(err(name, &format!("expected {unit} {range}, got {v:?}")))
            }
        }
    }

    pub(super) fn seconds(
        &mut self,
        name: &'static str,
        default: f64,
    ) -> Result<Duration, ConfigError> {
        let s = self.number(name, default, 0.0, Some(1e9), "a number of seconds")?;
        Ok(Duration::from_secs_f64(s))
    }

    pub(super) fn list(&mut self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.raw(name) {
            None => Ok(Vec::new()),
            Some(v) => parse_list(v)
                .and_then(|items| check_items(&items).map(|()| items))
                .map_err(|p| err(name, &p)),
        }
    }

    pub(super) fn json(&mut self, name: &'static str) -> Result<Option<Value>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str(v)
                .map(Some)
                .map_err(|e| err(name, &format!("not valid JSON ({e})"))),
        }
    }
}

/// A [`ConfigError`] about `var`.
pub(super) fn err(var: &'static str, problem: &str) -> ConfigError {
    ConfigError {
        var,
        problem: problem.to_string(),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
pub(super) fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(err(name, "expected true or false")),
    }
}

/// `v` trimmed, without one pair of matching outer quotes (`'…'` or `"…"`)
/// that do not occur inside: what a shell would remove, and what pasting
/// `NAME='value'` into a Space secret or a `docker --env-file` leaves in.
/// `"k1","k2"` is left alone (its quotes belong to the items).
pub fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q))
            && !inner.contains(q)
        {
            return inner.trim();
        }
    }
    v
}

/// Refuse list items that cannot be one key, token, model or origin: a
/// space, comma, quote or bracket inside means the list was written wrongly
/// (`["k1 k2"]`, `'["k1"` …), and merging it into one item only fails later
/// as a 401 or a bad key. Names the item's position, never its value.
pub(super) fn check_items(items: &[String]) -> Result<(), String> {
    for (i, item) in items.iter().enumerate() {
        let what = if item.chars().any(char::is_whitespace) {
            "whitespace"
        } else if item.contains(',') {
            "a comma"
        } else if item.contains(['"', '\'']) {
            "a quote"
        } else if item.contains(['[', ']', '{', '}']) {
            "a bracket"
        } else {
            continue;
        };
        return Err(format!(
            "item {} holds {what}; write a JSON array [\"key1\",\"key2\"] or key1,key2, one value per item",
            i + 1
        ));
    }
    Ok(())
}

/// Parse a list given as a JSON array of strings, or as a comma-separated
/// list (brackets tolerated; one pair of quotes around an item removed).
/// Empty items are dropped, duplicates removed (first kept). The error never
/// contains the value. `Config` also refuses items holding separators.
pub fn parse_list(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = unquote(s);
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    if raw.starts_with('[') {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => push(s),
                        _ => {
                            return Err(format!(
                                "item {} of the JSON array is not a string",
                                i + 1
                            ));
                        }
                    }
                }
            }
            _ => {
                // `[a, b]` without quotes, or a broken array: accept plain items.
                let inner = raw.trim_start_matches('[').trim_end_matches(']');
                if inner.contains('[') || inner.contains(']') || inner.contains('{') {
                    return Err("not a valid JSON array of strings".into());
                }
                inner.split(',').for_each(&mut push);
            }
        }
    } else {
        raw.split(',').for_each(push);
    }
    Ok(out)
}

/// "a whole number" in range messages.
pub(super) const WHOLE: &str = "a whole number";
