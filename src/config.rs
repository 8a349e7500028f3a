//! Configuration: the environment plus an optional `.env` file → [`Config`].
//!
//! The environment wins over `.env`. Lists (`API_KEYS`, `ALLOWED_TOKENS`, …)
//! are JSON arrays, or plain comma-separated lists since users paste both.
//! A malformed value stops start-up with one line naming the variable and
//! what was wrong, never echoing the value of a secret.
//!
//! Newcomer mistakes are caught here rather than at the first call: one pair of
//! outer quotes pasted into a value (`'["k1","k2"]'` from a shell line) is
//! removed; a list item holding whitespace, a comma, a quote or a bracket is
//! refused; a variable name one or two edits away from a known one (`API_KEY`,
//! `api_keys`, `TIMEOUT`) is reported, and a missing `API_KEYS` is an error
//! unless demo mode applies (neither `API_KEYS` nor `ALLOWED_TOKENS` set, or
//! `DEMO=true`); a `BASE_URL` without a path gets `/v1beta`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::keys::{Selection, mask};
use crate::openai::Options;

/// Every variable the gateway reads, with its default (as shown in
/// `.env.example`). A test checks this list, the code and `.env.example` agree.
pub const VARIABLES: &[&str] = &[
    "API_KEYS",
    "ALLOWED_TOKENS",
    "AUTH_TOKEN",
    "ALLOW_ANONYMOUS",
    "HOST",
    "PORT",
    "BASE_URL",
    "TIME_OUT",
    "STREAM_IDLE_TIMEOUT",
    "LOG_LEVEL",
    "CORS_ORIGINS",
    "MAX_BODY_BYTES",
    "MAX_RETRIES",
    "MAX_FAILURES",
    "COOLDOWN_SECONDS",
    "KEY_SELECTION",
    "CHECK_INTERVAL_HOURS",
    "CHECK_CRON",
    "VERIFY_ON_START",
    "TEST_MODEL",
    "KEEPALIVE_URL",
    "KEEPALIVE_MINUTES",
    "SPACE_HOST",
    "METRICS_PUBLIC",
    "VERIFY_MAX_KEYS",
    "CLIENT_KEYS_ENABLED",
    "BACKUP_API_KEYS",
    "TRUSTED_API_KEYS",
    "NATIVE_DERIVED_MODELS",
    "SHOW_THINKING_PROCESS",
    "THINKING_MODELS",
    "THINKING_BUDGET_MAP",
    "SEARCH_MODELS",
    "SHOW_SEARCH_LINK",
    "TOOLS_CODE_EXECUTION_ENABLED",
    "URL_CONTEXT_ENABLED",
    "URL_CONTEXT_MODELS",
    "SAFETY_SETTINGS",
    "MAX_FETCH_BYTES",
    "ALLOW_PRIVATE_FETCH",
    "FETCH_TIMEOUT",
    "CLIENT_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "MAX_HEADERS",
    "SHUTDOWN_GRACE",
    "DEMO",
    "ENV_FILE",
    "DATA_DIR",
    "REDIS_URL",
    "REDIS_PREFIX",
    "ENCRYPTION_KEY",
    "ERROR_LOG_MAX",
    "ERROR_LOG_DAYS",
    "ERROR_LOG_RECORD_BODY",
];

/// Variables whose values are secrets: never printed unmasked.
const SECRET_VARIABLES: &[&str] = &[
    "API_KEYS",
    "ALLOWED_TOKENS",
    "AUTH_TOKEN",
    "BACKUP_API_KEYS",
    "TRUSTED_API_KEYS",
    "REDIS_URL",
    "ENCRYPTION_KEY",
];

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The variable's name, e.g. `PORT`.
    pub var: &'static str,
    /// What is wrong (never the value of a secret).
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// The gateway's whole configuration.
#[derive(Clone)]
pub struct Config {
    /// `API_KEYS`: the pool of Gemini keys.
    pub api_keys: Vec<String>,
    /// `ALLOWED_TOKENS`: bearer tokens clients must present.
    pub allowed_tokens: Vec<String>,
    /// `AUTH_TOKEN`: the admin token (`/status`, `/verify`, `/metrics`, native
    /// `DELETE`); when unset, the first entry of `ALLOWED_TOKENS` is the admin.
    pub auth_token: Option<String>,
    /// `ALLOW_ANONYMOUS`: run without tokens (explicit opt-in).
    pub allow_anonymous: bool,
    /// `HOST`: listen address.
    pub host: String,
    /// `PORT`: listen port.
    pub port: u16,
    /// `BASE_URL`: Gemini API base, e.g. `https://generativelanguage.googleapis.com/v1beta`.
    pub base_url: String,
    /// `TIME_OUT`: wait for upstream response headers.
    pub time_out: Duration,
    /// `STREAM_IDLE_TIMEOUT`: longest silence inside a stream.
    pub stream_idle_timeout: Duration,
    /// `LOG_LEVEL`.
    pub log_level: crate::log::Level,
    /// `CORS_ORIGINS`: allowed origins, `*` for any.
    pub cors_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
    /// `MAX_RETRIES`: extra attempts on other keys (0 = one attempt).
    pub max_retries: u32,
    /// `MAX_FAILURES`: consecutive transient failures before a key rests.
    pub max_failures: u32,
    /// `COOLDOWN_SECONDS`: default 429 cooldown when Google gives no delay.
    pub cooldown: Duration,
    /// `KEY_SELECTION`: how the next key is chosen.
    pub key_selection: Selection,
    /// `CHECK_INTERVAL_HOURS`: re-verification period (None = off).
    pub check_interval: Option<Duration>,
    /// `CHECK_CRON`: re-verification on a cron schedule (six fields, seconds
    /// first, UTC); when set it replaces `CHECK_INTERVAL_HOURS`.
    pub check_cron: Option<String>,
    /// `VERIFY_ON_START`: verify every key at start-up.
    pub verify_on_start: bool,
    /// `TEST_MODEL`: model used by verification (models.get, no quota).
    pub test_model: String,
    /// `KEEPALIVE_URL`: URL pinged by the keep-alive job.
    pub keepalive_url: Option<String>,
    /// `KEEPALIVE_MINUTES`: keep-alive period (None = off).
    pub keepalive_interval: Option<Duration>,
    /// `METRICS_PUBLIC`: `/metrics` without a token.
    pub metrics_public: bool,
    /// `VERIFY_MAX_KEYS`: most keys one `POST /verify` call may name.
    pub verify_max_keys: usize,
    /// `CLIENT_KEYS_ENABLED`: callers may bring their own Gemini keys on native routes.
    pub client_keys_enabled: bool,
    /// `BACKUP_API_KEYS`: the lite edition's backup pool.
    pub backup_api_keys: Vec<String>,
    /// `TRUSTED_API_KEYS`: single client keys allowed to use the backup pool.
    pub trusted_api_keys: Vec<String>,
    /// `NATIVE_DERIVED_MODELS`: list `-search`/`-thinking` variants to native clients too.
    pub native_derived_models: bool,
    /// Translation settings (thinking, search, code execution, safety, …).
    pub translate: Options,
    /// `MAX_FETCH_BYTES`: largest remote image fetched for `image_url`.
    pub max_fetch_bytes: usize,
    /// `ALLOW_PRIVATE_FETCH`: allow fetching images from private addresses.
    pub allow_private_fetch: bool,
    /// `FETCH_TIMEOUT`: time for all remote images of one request together.
    pub fetch_timeout: Duration,
    /// `CLIENT_TIMEOUT`: a request's headers must arrive within this.
    pub client_timeout: Duration,
    /// `MAX_CONNECTIONS`: concurrent client connections.
    pub max_connections: usize,
    /// `MAX_HEADER_BYTES`: largest request head (request line + headers); larger → 431.
    pub max_header_bytes: usize,
    /// `MAX_HEADERS`: most request headers; more → 431.
    pub max_headers: usize,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may finish on shutdown.
    pub shutdown_grace: Duration,
    /// `DEMO`: run against the built-in fake upstream. Unset: only when
    /// neither `API_KEYS` nor `ALLOWED_TOKENS` is set (and no near miss of
    /// either is); `true`: always (with the configured tokens, if any);
    /// `false`: never (a missing `API_KEYS` is then an error).
    pub demo: bool,
    /// `DATA_DIR`: keep the state in `$DATA_DIR/state.redb` (file mode).
    pub data_dir: Option<std::path::PathBuf>,
    /// `REDIS_URL`: share the state in Redis (redis mode; wins over `DATA_DIR`). A secret.
    pub redis_url: Option<String>,
    /// `REDIS_PREFIX`: the prefix of every Redis key (default `gb:`).
    pub redis_prefix: String,
    /// `ENCRYPTION_KEY`: encrypts the stored key list at rest. A secret.
    pub encryption_key: Option<String>,
    /// `ERROR_LOG_MAX`: most entries the error log keeps (default 10,000).
    pub error_log_max: usize,
    /// `ERROR_LOG_DAYS`: oldest error log entries kept, in days (default 7).
    pub error_log_days: u64,
    /// `ERROR_LOG_RECORD_BODY`: failed attempts keep the request body
    /// (capped at 64 KiB, keys masked; default false).
    pub error_log_record_body: bool,
    /// `BASE_URL` has a path but no API version segment (`v1beta`, `v1`, …):
    /// an upstream 404 then names `BASE_URL` in its message.
    pub base_url_unversioned: bool,
    /// Lines to log once logging is set up: near-miss variable names, a
    /// `BASE_URL` that was completed or looks unversioned.
    pub notes: Vec<(crate::log::Level, String)>,
    /// Which variables were set (name, masked value) — printed at start-up.
    pub seen: Vec<(String, String)>,
}

/// Secrets masked: `{:?}` of a configuration never prints a key or token.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |v: &[String]| v.iter().map(|k| mask(k)).collect::<Vec<_>>();
        f.debug_struct("Config")
            .field("api_keys", &masked(&self.api_keys))
            .field("allowed_tokens", &masked(&self.allowed_tokens))
            .field("auth_token", &self.auth_token.as_deref().map(mask))
            .field("backup_api_keys", &masked(&self.backup_api_keys))
            .field("trusted_api_keys", &masked(&self.trusted_api_keys))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("base_url", &self.base_url)
            .field("demo", &self.demo)
            .field("data_dir", &self.data_dir)
            .field("redis_url", &self.redis_url.as_deref().map(mask))
            .field("redis_prefix", &self.redis_prefix)
            .field("encryption_key", &self.encryption_key.as_deref().map(mask))
            .field("base_url_unversioned", &self.base_url_unversioned)
            .field("notes", &self.notes)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// Reads typed values from a variable map, remembering what it saw.
struct Vars<'a> {
    map: &'a HashMap<String, String>,
    seen: Vec<(String, String)>,
}

impl<'a> Vars<'a> {
    fn raw(&mut self, name: &'static str) -> Option<&'a str> {
        let v = self
            .map
            .get(name)
            .map(|s| unquote(s))
            .filter(|s| !s.is_empty())?;
        let shown = if SECRET_VARIABLES.contains(&name) {
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

    fn string(&mut self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_string()
    }

    fn opt_string(&mut self, name: &'static str) -> Option<String> {
        self.raw(name).map(str::to_string)
    }

    fn bool(&mut self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => parse_bool(name, v),
        }
    }

    /// A number in `min..=max` (`max: None` = no upper bound but the type's);
    /// the error names the range: "expected a whole number 1–10000, got "0"".
    fn number<T>(
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

    fn seconds(&mut self, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let s = self.number(name, default, 0.0, Some(1e9), "a number of seconds")?;
        Ok(Duration::from_secs_f64(s))
    }

    fn list(&mut self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.raw(name) {
            None => Ok(Vec::new()),
            Some(v) => parse_list(v)
                .and_then(|items| check_items(&items).map(|()| items))
                .map_err(|p| err(name, &p)),
        }
    }

    fn json(&mut self, name: &'static str) -> Result<Option<Value>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str(v)
                .map(Some)
                .map_err(|e| err(name, &format!("not valid JSON ({e})"))),
        }
    }
}

/// Check a cron expression the way the scheduler will read it
/// (tokio-cron-scheduler: six fields, seconds first, UTC) and that it fires
/// at least once from now on.
fn check_cron_expression(expr: &str) -> Result<(), &'static str> {
    let mut job = tokio_cron_scheduler::Job::new(expr, |_, _| {}).map_err(|_| {
        "expected a cron expression of six fields (second minute hour day month weekday, UTC), e.g. \"0 0 */6 * * *\""
    })?;
    match job.job_data() {
        Ok(data) if data.next_tick > 0 => Ok(()),
        _ => Err("the cron expression never fires"),
    }
}

fn err(var: &'static str, problem: &str) -> ConfigError {
    ConfigError {
        var,
        problem: problem.to_string(),
    }
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
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
fn check_items(items: &[String]) -> Result<(), String> {
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

/// Levenshtein distance between two names (bytes).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known variable an unknown name most likely means: the same name in
/// another case (`api_keys`), or within one edit (known names of up to 5
/// characters, so `HOME` is not `HOST`) or two edits (`API_KEY`, `TIMEOUT`).
pub fn near_miss(name: &str) -> Option<&'static str> {
    if name.len() > 64 || VARIABLES.contains(&name) {
        return None;
    }
    let up = name.to_ascii_uppercase();
    VARIABLES
        .iter()
        .map(|k| (distance(&up, k), *k))
        .filter(|(d, k)| *d <= if k.len() <= 5 { 1 } else { 2 })
        .min()
        .map(|(_, k)| k)
}

/// Unknown names in `map` that look like known ones, sorted: (name, known).
fn near_misses(map: &HashMap<String, String>) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = map
        .keys()
        .filter_map(|n| near_miss(n).map(|k| (n.clone(), k)))
        .collect();
    out.sort();
    out
}

/// " (API_KEY is set: did you mean API_KEYS?)" for the near misses of `var`,
/// and for `API_KEYS` also other unknown names holding `API_KEY`
/// (`GEMINI_API_KEY`); empty when there is none.
fn hint(map: &HashMap<String, String>, var: &str) -> String {
    let mut names: Vec<&str> = map
        .keys()
        .filter(|n| n.len() <= 64 && !VARIABLES.contains(&n.as_str()))
        .filter(|n| match near_miss(n) {
            Some(k) => k == var,
            None => var == "API_KEYS" && n.to_ascii_uppercase().contains("API_KEY"),
        })
        .map(String::as_str)
        .collect();
    names.sort();
    names.truncate(3);
    if names.is_empty() {
        return String::new();
    }
    format!(" ({} is set: did you mean {var}?)", names.join(", "))
}

/// Whether a `BASE_URL` path segment is an API version (`v1`, `v1beta`, `v1alpha`, `v2`…).
fn is_version(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() >= 2 && b[0] == b'v' && b[1].is_ascii_digit()
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
const WHOLE: &str = "a whole number";

/// Read `BASE_URL`: an http(s) URL without a trailing `/`. With no path at
/// all, `/v1beta` is added (and a note says so); with a path holding no API
/// version segment, a warning is noted and the second value is `true`.
fn base_url(
    v: &mut Vars<'_>,
    notes: &mut Vec<(crate::log::Level, String)>,
) -> Result<(String, bool), ConfigError> {
    let mut url = v
        .string(
            "BASE_URL",
            "https://generativelanguage.googleapis.com/v1beta",
        )
        .trim_end_matches('/')
        .to_string();
    let uri = match url.parse::<http::Uri>() {
        Ok(u) if url.starts_with("https://") || url.starts_with("http://") => u,
        _ => return Err(err("BASE_URL", "expected an http:// or https:// URL")),
    };
    if uri.path().trim_matches('/').is_empty() && uri.query().is_none() {
        url.push_str("/v1beta");
        let m = format!("BASE_URL has no API version; using {url} (add /v1 or /v1beta to choose)");
        notes.push((crate::log::Level::Info, m));
        return Ok((url, false));
    }
    if uri.path().split('/').any(is_version) {
        return Ok((url, false));
    }
    let m = format!(
        "BASE_URL {url} names no API version (/v1beta, /v1); Gemini answers 404 to every call unless the proxy adds one"
    );
    notes.push((crate::log::Level::Warn, m));
    Ok((url, true))
}

/// The translation settings (thinking, search, code execution, safety, …).
fn translate_options(v: &mut Vars<'_>) -> Result<Options, ConfigError> {
    let thinking_budget_map = match v.json("THINKING_BUDGET_MAP")? {
        None => Vec::new(),
        Some(Value::Object(m)) => {
            let mut out = Vec::new();
            for (k, b) in m {
                let b = b.as_i64().ok_or_else(|| {
                    err(
                        "THINKING_BUDGET_MAP",
                        "expected a JSON object of model → integer",
                    )
                })?;
                out.push((k, b));
            }
            out
        }
        Some(_) => {
            return Err(err(
                "THINKING_BUDGET_MAP",
                "expected a JSON object of model → integer",
            ));
        }
    };
    let safety_settings = match v.json("SAFETY_SETTINGS")? {
        None => None,
        Some(Value::Array(a)) => Some(Value::Array(a)),
        Some(_) => {
            return Err(err(
                "SAFETY_SETTINGS",
                "expected a JSON array of {category, threshold}",
            ));
        }
    };
    Ok(Options {
        show_thinking: v.bool("SHOW_THINKING_PROCESS", true)?,
        thinking_budget_map,
        thinking_models: v.list("THINKING_MODELS")?,
        search_models: v.list("SEARCH_MODELS")?,
        show_search_link: v.bool("SHOW_SEARCH_LINK", true)?,
        code_execution: v.bool("TOOLS_CODE_EXECUTION_ENABLED", false)?,
        url_context: v.bool("URL_CONTEXT_ENABLED", false)?,
        url_context_models: v.list("URL_CONTEXT_MODELS")?,
        safety_settings,
    })
}

impl Config {
    /// Load from the process environment and an optional `.env` in the
    /// working directory (or the file named by `ENV_FILE`); the environment wins.
    pub fn load() -> Result<Config, ConfigError> {
        Config::load_with(&[])
    }

    /// Like [`Config::load`], with `extra` variables set on top (command-line flags).
    pub fn load_with(extra: &[(&str, String)]) -> Result<Config, ConfigError> {
        let mut map = HashMap::new();
        let path = std::env::var("ENV_FILE").unwrap_or_else(|_| ".env".to_string());
        if let Ok(iter) = dotenvy::from_path_iter(&path) {
            for (n, item) in iter.enumerate() {
                match item {
                    Ok((k, v)) => {
                        map.insert(k, v);
                    }
                    Err(_) => {
                        return Err(ConfigError {
                            var: "ENV_FILE",
                            problem: format!("{path}: line {} could not be parsed", n + 1),
                        });
                    }
                }
            }
        }
        for (k, v) in std::env::vars() {
            map.insert(k, v);
        }
        for (k, v) in extra {
            map.insert(k.to_string(), v.clone());
        }
        Config::from_map(&map)
    }

    /// Build from a variable map (used by [`Config::load`] and by tests).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut v = Vars {
            map,
            seen: Vec::new(),
        };
        let api_keys = v.list("API_KEYS")?;
        let allowed_tokens = v.list("ALLOWED_TOKENS")?;
        let auth_token = v.opt_string("AUTH_TOKEN");
        let allow_anonymous = v.bool("ALLOW_ANONYMOUS", false)?;
        let misses = near_misses(map);
        let mut notes: Vec<(crate::log::Level, String)> = misses
            .iter()
            .map(|(name, known)| {
                let m = format!("{name} is not a setting of this gateway; did you mean {known}?");
                (crate::log::Level::Warn, m)
            })
            .collect();
        // Demo mode (the built-in fake upstream) only when asked for, or when
        // nothing at all is configured: a misspelled API_KEYS must not
        // silently turn into fake answers.
        let demo_setting = v.raw("DEMO").map(|d| parse_bool("DEMO", d)).transpose()?;
        let near_required = misses
            .iter()
            .any(|(_, k)| matches!(*k, "API_KEYS" | "ALLOWED_TOKENS"));
        let demo = demo_setting
            .unwrap_or(api_keys.is_empty() && allowed_tokens.is_empty() && !near_required);
        let host = v.string("HOST", "0.0.0.0");
        let port: u16 = match v.raw("PORT") {
            None => 8000,
            Some(p) => p.parse().map_err(|_| {
                err(
                    "PORT",
                    &format!("expected a port number 1–65535 (0 picks a free one), got {p:?}"),
                )
            })?,
        };
        let (base_url, base_url_unversioned) = base_url(&mut v, &mut notes)?;
        let log_level = match v.raw("LOG_LEVEL") {
            None => crate::log::Level::Info,
            Some(l) => crate::log::Level::parse(l)
                .ok_or_else(|| err("LOG_LEVEL", "expected error, warn, info or debug"))?,
        };
        let cors_origins = match v.list("CORS_ORIGINS")? {
            l if l.is_empty() => vec!["*".to_string()],
            l => l,
        };
        let key_selection = match v.raw("KEY_SELECTION") {
            None => Selection::RoundRobin,
            Some(s) => Selection::parse(s).ok_or_else(|| {
                err(
                    "KEY_SELECTION",
                    "expected round_robin, random, least_used or time_window",
                )
            })?,
        };
        // Bounded so `hours * 3600` always fits a `Duration` (no panic on `1e300`).
        let check_hours: f64 = v.number(
            "CHECK_INTERVAL_HOURS",
            1.0,
            0.0,
            Some(1e6),
            "a number of hours",
        )?;
        let check_cron = v.opt_string("CHECK_CRON");
        if let Some(expr) = &check_cron {
            check_cron_expression(expr).map_err(|p| err("CHECK_CRON", p))?;
        }
        let keepalive_minutes: f64 = v.number(
            "KEEPALIVE_MINUTES",
            30.0,
            0.0,
            Some(1e7),
            "a number of minutes",
        )?;
        let space_host = v.opt_string("SPACE_HOST");
        let keepalive_url = v
            .opt_string("KEEPALIVE_URL")
            .or_else(|| space_host.map(|h| format!("https://{h}/health")));

        let translate = translate_options(&mut v)?;

        let cfg = Config {
            api_keys,
            allowed_tokens,
            auth_token,
            allow_anonymous,
            host,
            port,
            base_url,
            time_out: v.seconds("TIME_OUT", 45.0)?,
            stream_idle_timeout: v.seconds("STREAM_IDLE_TIMEOUT", 120.0)?,
            log_level,
            cors_origins,
            max_body_bytes: v.number("MAX_BODY_BYTES", 20 * 1024 * 1024, 0, None, WHOLE)?,
            max_retries: v.number("MAX_RETRIES", 3, 0, Some(u32::MAX), WHOLE)?,
            max_failures: v.number("MAX_FAILURES", 10, 0, Some(u32::MAX), WHOLE)?,
            cooldown: v.seconds("COOLDOWN_SECONDS", 60.0)?,
            key_selection,
            check_interval: (check_hours > 0.0)
                .then(|| Duration::from_secs_f64(check_hours * 3600.0)),
            check_cron,
            verify_on_start: v.bool("VERIFY_ON_START", false)?,
            test_model: v.string("TEST_MODEL", "gemini-2.5-flash-lite"),
            keepalive_url,
            keepalive_interval: (keepalive_minutes > 0.0)
                .then(|| Duration::from_secs_f64(keepalive_minutes * 60.0)),
            metrics_public: v.bool("METRICS_PUBLIC", false)?,
            verify_max_keys: v.number("VERIFY_MAX_KEYS", 50, 1, Some(10_000), WHOLE)?,
            client_keys_enabled: v.bool("CLIENT_KEYS_ENABLED", false)?,
            backup_api_keys: v.list("BACKUP_API_KEYS")?,
            trusted_api_keys: v.list("TRUSTED_API_KEYS")?,
            native_derived_models: v.bool("NATIVE_DERIVED_MODELS", false)?,
            translate,
            max_fetch_bytes: v.number("MAX_FETCH_BYTES", 10 * 1024 * 1024, 0, None, WHOLE)?,
            allow_private_fetch: v.bool("ALLOW_PRIVATE_FETCH", false)?,
            fetch_timeout: v.seconds("FETCH_TIMEOUT", 20.0)?,
            client_timeout: v.seconds("CLIENT_TIMEOUT", 30.0)?,
            max_connections: v.number("MAX_CONNECTIONS", 4096, 1, Some(1_000_000), WHOLE)?,
            max_header_bytes: v.number(
                "MAX_HEADER_BYTES",
                64 * 1024,
                1024,
                Some(16 * 1024 * 1024),
                WHOLE,
            )?,
            max_headers: v.number("MAX_HEADERS", 100, 1, Some(10_000), WHOLE)?,
            shutdown_grace: v.seconds("SHUTDOWN_GRACE", 10.0)?,
            demo,
            data_dir: v.opt_string("DATA_DIR").map(std::path::PathBuf::from),
            redis_url: v.opt_string("REDIS_URL"),
            redis_prefix: v.string("REDIS_PREFIX", "gb:"),
            encryption_key: v.opt_string("ENCRYPTION_KEY"),
            error_log_max: v.number("ERROR_LOG_MAX", 10_000, 1, Some(10_000_000), WHOLE)?,
            error_log_days: v.number("ERROR_LOG_DAYS", 7, 1, Some(3650), WHOLE)?,
            error_log_record_body: v.bool("ERROR_LOG_RECORD_BODY", false)?,
            base_url_unversioned,
            notes,
            seen: Vec::new(),
        };
        let mut cfg = cfg;
        cfg.seen = v.seen;
        cfg.validate()?;
        cfg.require_keys_and_tokens(map, demo_setting)?;
        Ok(cfg)
    }

    /// No keys is an error unless in demo mode (naming near misses such as
    /// `API_KEY`); no tokens is an error unless open or in demo mode.
    fn require_keys_and_tokens(
        &self,
        map: &HashMap<String, String>,
        demo_setting: Option<bool>,
    ) -> Result<(), ConfigError> {
        if self.api_keys.is_empty() && !self.demo {
            let why = if demo_setting == Some(false) {
                "DEMO=false and "
            } else {
                ""
            };
            return Err(err(
                "API_KEYS",
                &format!(
                    "{why}no Gemini keys set{}; set API_KEYS=[\"AIza…\"], or DEMO=true to try the built-in fake Gemini",
                    hint(map, "API_KEYS")
                ),
            ));
        }
        if self.allowed_tokens.is_empty() && !self.allow_anonymous && !self.demo {
            return Err(err(
                "ALLOWED_TOKENS",
                &format!(
                    "no tokens set{}; set ALLOWED_TOKENS=[\"sk-...\"] (or ALLOW_ANONYMOUS=true to run open)",
                    hint(map, "ALLOWED_TOKENS")
                ),
            ));
        }
        Ok(())
    }

    /// Cross-field checks that run after parsing.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.time_out.is_zero() {
            return Err(err("TIME_OUT", "must be greater than 0"));
        }
        if self.client_timeout.is_zero() {
            return Err(err("CLIENT_TIMEOUT", "must be greater than 0"));
        }
        if self.fetch_timeout.is_zero() {
            return Err(err("FETCH_TIMEOUT", "must be greater than 0"));
        }
        Ok(())
    }

    /// For an upstream 404 behind a `BASE_URL` without an API version: the
    /// sentence to add to the answer's message (else `None`).
    pub fn not_found_hint(&self, status: u16) -> Option<&'static str> {
        (status == 404 && self.base_url_unversioned)
            .then_some("(BASE_URL names no API version such as /v1beta: check BASE_URL.)")
    }

    /// The admin token (as in gemini-balance): `AUTH_TOKEN` if set, else the
    /// first entry of `ALLOWED_TOKENS` only. Empty when neither is set.
    pub fn admin_tokens(&self) -> Vec<String> {
        match &self.auth_token {
            Some(t) => vec![t.clone()],
            None => self.allowed_tokens.iter().take(1).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn defaults_match_the_python_gateway() {
        let c = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKENS", "[\"sk-1\"]")]).unwrap();
        assert!(!c.demo);
        assert_eq!(c.port, 8000);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(
            c.base_url,
            "https://generativelanguage.googleapis.com/v1beta"
        );
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.max_failures, 10);
        assert_eq!(c.time_out, Duration::from_secs(45));
        assert_eq!(c.cors_origins, vec!["*"]);
        assert_eq!(c.max_body_bytes, 20 * 1024 * 1024);
    }

    #[test]
    fn lists_accept_json_and_commas() {
        assert_eq!(parse_list(r#"["k1","k2"]"#).unwrap(), vec!["k1", "k2"]);
        assert_eq!(parse_list("k1, k2,,k1").unwrap(), vec!["k1", "k2"]);
        assert_eq!(parse_list("[k1,k2]").unwrap(), vec!["k1", "k2"]);
        assert_eq!(parse_list("\"k1\",\"k2\"").unwrap(), vec!["k1", "k2"]);
        assert!(parse_list("[1,2]").is_err());
    }

    #[test]
    fn refuses_to_start_open_without_consent() {
        let e = cfg(&[("API_KEYS", "k1")]).unwrap_err();
        assert_eq!(e.var, "ALLOWED_TOKENS");
        assert!(cfg(&[("API_KEYS", "k1"), ("ALLOW_ANONYMOUS", "true")]).is_ok());
        assert!(cfg(&[]).unwrap().demo, "no keys means demo mode");
    }

    #[test]
    fn malformed_values_name_the_variable_and_hide_secrets() {
        let e = cfg(&[("ALLOWED_TOKENS", "sk-1"), ("PORT", "eighty")]).unwrap_err();
        assert_eq!(e.var, "PORT");
        let e = cfg(&[("ALLOWED_TOKENS", r#"["sk-secret-123", 5]"#)]).unwrap_err();
        assert_eq!(e.var, "ALLOWED_TOKENS");
        assert!(!e.to_string().contains("sk-secret-123"));
        let e = cfg(&[("ALLOWED_TOKENS", "sk"), ("SAFETY_SETTINGS", "{")]).unwrap_err();
        assert_eq!(e.var, "SAFETY_SETTINGS");
        let e = cfg(&[("ALLOWED_TOKENS", "sk"), ("BASE_URL", "ftp://x")]).unwrap_err();
        assert_eq!(e.var, "BASE_URL");
    }

    #[test]
    fn seen_variables_are_masked() {
        let c = cfg(&[
            ("ALLOWED_TOKENS", "sk-abcdefgh12345678"),
            ("API_KEYS", r#"["AIzaSyA1234567890abcdefghijklmnopqrstu"]"#),
        ])
        .unwrap();
        let shown = format!("{:?}", c.seen);
        assert!(!shown.contains("AIzaSyA1234567890abcdefghijklmnopqrstu"));
        assert!(!shown.contains("sk-abcdefgh12345678"));
        assert!(shown.contains("rstu"));
    }

    #[test]
    fn the_admin_is_auth_token_or_the_first_allowed_token() {
        let c = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKENS", "sk-1,sk-2,sk-3")]).unwrap();
        assert_eq!(c.admin_tokens(), vec!["sk-1"]);
        let c = cfg(&[
            ("API_KEYS", "k1"),
            ("ALLOWED_TOKENS", "sk-1,sk-2"),
            ("AUTH_TOKEN", "adm"),
        ])
        .unwrap();
        assert_eq!(c.admin_tokens(), vec!["adm"]);
        assert_eq!(c.verify_max_keys, 50);
        let e = cfg(&[
            ("API_KEYS", "k1"),
            ("ALLOWED_TOKENS", "sk"),
            ("VERIFY_MAX_KEYS", "0"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "VERIFY_MAX_KEYS");
    }

    #[test]
    fn space_host_turns_into_a_keepalive_url() {
        let c = cfg(&[
            ("API_KEYS", "k1"),
            ("ALLOWED_TOKENS", "sk"),
            ("SPACE_HOST", "me-gw.hf.space"),
        ])
        .unwrap();
        assert_eq!(
            c.keepalive_url.as_deref(),
            Some("https://me-gw.hf.space/health")
        );
        let c = cfg(&[
            ("API_KEYS", "k1"),
            ("ALLOWED_TOKENS", "sk"),
            ("CHECK_INTERVAL_HOURS", "0"),
        ])
        .unwrap();
        assert!(c.check_interval.is_none());
    }

    #[test]
    fn check_cron_is_validated_at_start_up() {
        assert_eq!(with(&[]).unwrap().check_cron, None, "off by default");
        for good in ["0 0 */6 * * *", "*/1 * * * * *", "0 30 4 * * Mon-Fri"] {
            let c = with(&[("CHECK_CRON", good)]).unwrap();
            assert_eq!(c.check_cron.as_deref(), Some(good));
        }
        for bad in ["0 * * * *", "every hour", "0 0 25 * * *", "0 0 0 30 2 *"] {
            let e = with(&[("CHECK_CRON", bad)]).unwrap_err();
            assert_eq!(e.var, "CHECK_CRON", "{bad}");
            let line = e.to_string();
            assert!(
                line.starts_with("configuration error: CHECK_CRON: "),
                "{line}"
            );
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    /// A working minimum plus `pairs`.
    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![("API_KEYS", "k1"), ("ALLOWED_TOKENS", "sk-1")];
        all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
        all.extend_from_slice(pairs);
        cfg(&all)
    }

    #[test]
    fn demo_mode_only_when_nothing_is_set_or_asked_for() {
        assert!(cfg(&[]).unwrap().demo);
        // Tokens without keys: a mistake, not a demo.
        let e = cfg(&[("ALLOWED_TOKENS", "sk-1")]).unwrap_err();
        assert_eq!(e.var, "API_KEYS");
        assert!(e.problem.contains("DEMO=true"), "{e}");
        // DEMO=true keeps the configured tokens.
        let c = cfg(&[("DEMO", "true"), ("ALLOWED_TOKENS", "sk-1")]).unwrap();
        assert!(c.demo);
        assert_eq!(c.allowed_tokens, vec!["sk-1"]);
        // DEMO=false: never demo.
        assert_eq!(cfg(&[("DEMO", "false")]).unwrap_err().var, "API_KEYS");
        assert!(!with(&[]).unwrap().demo);
        assert!(with(&[("DEMO", "yes")]).unwrap().demo);
    }

    #[test]
    fn a_misspelled_variable_is_named() {
        for typo in ["API_KEY", "api_keys", "APIKEYS", "Api_Keys", "API_KEYS_"] {
            let e =
                cfg(&[(typo, "AIza-secret-value-1234"), ("ALLOWED_TOKENS", "sk-1")]).unwrap_err();
            assert_eq!(e.var, "API_KEYS", "{typo}");
            assert!(
                e.problem
                    .contains(&format!("{typo} is set: did you mean API_KEYS?")),
                "{e}"
            );
            assert!(!e.to_string().contains("AIza-secret-value-1234"));
            // Alone, a near miss does not fall back to demo mode either.
            assert_eq!(cfg(&[(typo, "AIza-x")]).unwrap_err().var, "API_KEYS");
        }
        let e = cfg(&[("GEMINI_API_KEY", "x"), ("ALLOWED_TOKENS", "sk")]).unwrap_err();
        assert!(e.problem.contains("GEMINI_API_KEY is set"), "{e}");
        // A GEMINI_API_KEY in a developer's shell does not block the demo.
        assert!(cfg(&[("GEMINI_API_KEY", "x")]).unwrap().demo);
        let e = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKEN", "sk")]).unwrap_err();
        assert_eq!(e.var, "ALLOWED_TOKENS");
        assert!(e.problem.contains("ALLOWED_TOKEN is set"), "{e}");
        // Other near misses are warnings; unrelated names are not.
        let c = with(&[
            ("TIMEOUT", "5"),
            ("LOGLEVEL", "debug"),
            ("HOME", "/root"),
            ("HOSTNAME", "box"),
            ("PATH", "/bin"),
            ("TERM", "xterm"),
            ("SPACE_ID", "me/gw"),
        ])
        .unwrap();
        let notes: Vec<&str> = c.notes.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("LOGLEVEL") && notes[0].ends_with("LOG_LEVEL?"));
        assert!(notes[1].starts_with("TIMEOUT") && notes[1].ends_with("TIME_OUT?"));
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("API_KEY", "API_KEYS"), 1);
        assert_eq!(distance("APIKEY", "API_KEYS"), 2);
        assert_eq!(distance("HOME", "HOST"), 2);
        assert_eq!(distance("", "ABC"), 3);
        assert_eq!(near_miss("HOME"), None);
        assert_eq!(near_miss("PORTS"), Some("PORT"));
        assert_eq!(near_miss("PORT"), None);
        assert_eq!(near_miss(&"A".repeat(100)), None);
    }

    #[test]
    fn one_pair_of_outer_quotes_is_removed() {
        assert_eq!(unquote(r#"'["k1","k2"]'"#), r#"["k1","k2"]"#);
        assert_eq!(unquote(r#""8000""#), "8000");
        assert_eq!(unquote(r#""k1","k2""#), r#""k1","k2""#);
        assert_eq!(unquote("'"), "'");
        let c = with(&[
            ("API_KEYS", r#"'["k1","k2"]'"#),
            ("ALLOWED_TOKENS", r#""sk-a,sk-b""#),
            ("PORT", "'8001'"),
            ("VERIFY_ON_START", "\"true\""),
            ("SAFETY_SETTINGS", r#"'[{"category":"c","threshold":"t"}]'"#),
        ])
        .unwrap();
        assert_eq!(c.api_keys, vec!["k1", "k2"]);
        assert_eq!(c.allowed_tokens, vec!["sk-a", "sk-b"]);
        assert_eq!(c.port, 8001);
        assert!(c.verify_on_start);
        assert!(c.translate.safety_settings.is_some());
        // Quotes around each item still work.
        assert_eq!(
            with(&[("API_KEYS", r#""k1","k2""#)]).unwrap().api_keys,
            vec!["k1", "k2"]
        );
    }

    #[test]
    fn an_item_holding_separators_is_refused() {
        for (var, v) in [
            ("API_KEYS", r#"["k1 k2"]"#),
            ("API_KEYS", "k1 k2"),
            ("API_KEYS", r#"["k1,k2"]"#),
            ("API_KEYS", r#"'["k1","k2"]"#),
            ("ALLOWED_TOKENS", "sk-1\tsk-2"),
            ("BACKUP_API_KEYS", r#"["b1","b 2"]"#),
            ("TRUSTED_API_KEYS", r#"["t{1}"]"#),
            ("THINKING_MODELS", r#"["gemini 2.5"]"#),
            ("CORS_ORIGINS", r#"["https://a.com https://b.com"]"#),
        ] {
            let e = with(&[(var, v)]).unwrap_err();
            assert_eq!(e.var, var, "{v}");
            assert!(e.problem.starts_with("item "), "{e}");
            assert!(!e.problem.contains("k1"), "{e}");
        }
        let e = with(&[("API_KEYS", r#"["k1","k2"]'"#)]).unwrap_err();
        assert_eq!(e.var, "API_KEYS");
    }

    #[test]
    fn a_base_url_gets_its_version() {
        let c = with(&[("BASE_URL", "https://generativelanguage.googleapis.com")]).unwrap();
        assert_eq!(
            c.base_url,
            "https://generativelanguage.googleapis.com/v1beta"
        );
        assert!(!c.base_url_unversioned);
        assert_eq!(c.notes.len(), 1);
        assert!(c.notes[0].1.contains("/v1beta"), "{:?}", c.notes);
        let c = with(&[("BASE_URL", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9/v1beta");
        for ok in [
            "https://x.dev/v1",
            "https://x.dev/p/v1alpha/",
            "https://x.dev/v1beta",
        ] {
            let c = with(&[("BASE_URL", ok)]).unwrap();
            assert!(!c.base_url_unversioned && c.notes.is_empty(), "{ok}");
            assert_eq!(c.not_found_hint(404), None);
        }
        let c = with(&[("BASE_URL", "https://proxy.example/gemini")]).unwrap();
        assert!(c.base_url_unversioned);
        assert_eq!(c.base_url, "https://proxy.example/gemini");
        assert_eq!(c.notes[0].0, crate::log::Level::Warn);
        assert!(c.not_found_hint(404).unwrap().contains("BASE_URL"));
        assert_eq!(c.not_found_hint(400), None);
    }

    #[test]
    fn numbers_name_their_range() {
        let e = with(&[("PORT", "99999")]).unwrap_err();
        assert!(e.problem.contains("1–65535"), "{e}");
        assert!(with(&[("PORT", "0")]).is_ok(), "0 picks a free port");
        for (var, v, range) in [
            ("MAX_CONNECTIONS", "0", "1–1000000"),
            ("MAX_HEADERS", "10001", "1–10000"),
            ("MAX_HEADER_BYTES", "1", "1024–16777216"),
            ("MAX_RETRIES", "-1", "0–4294967295"),
            ("TIME_OUT", "-1", "0–1000000000"),
            ("CHECK_INTERVAL_HOURS", "1e300", "0–1000000"),
            ("KEEPALIVE_MINUTES", "NaN", "0–10000000"),
            ("MAX_BODY_BYTES", "lots", "≥ 0"),
        ] {
            let e = with(&[(var, v)]).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.problem.contains(range), "{e}");
            assert!(!e.problem.contains("non-negative"), "{e}");
        }
    }
}
