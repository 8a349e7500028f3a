//! Configuration: the environment plus an optional `.env` file → [`Config`].
//!
//! The environment wins over `.env`. Lists (`API_KEYS`, `ALLOWED_TOKENS`, …)
//! are JSON arrays, or plain comma-separated lists since users paste both.
//! A malformed value stops start-up with one line naming the variable and
//! what was wrong, never echoing the value of a secret.

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
    "VERIFY_ON_START",
    "TEST_MODEL",
    "KEEPALIVE_URL",
    "KEEPALIVE_MINUTES",
    "SPACE_HOST",
    "METRICS_PUBLIC",
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
];

/// Variables whose values are secrets: never printed unmasked.
const SECRET_VARIABLES: &[&str] = &[
    "API_KEYS",
    "ALLOWED_TOKENS",
    "AUTH_TOKEN",
    "BACKUP_API_KEYS",
    "TRUSTED_API_KEYS",
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
    /// `AUTH_TOKEN`: admin token for `/status` actions (else any allowed token).
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
    /// `DEMO`: run against the built-in fake upstream.
    pub demo: bool,
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
            .map(|s| s.trim())
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
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(err(name, "expected true or false")),
            },
        }
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| err(name, &format!("expected a non-negative number, got {v:?}"))),
        }
    }

    fn seconds(&mut self, name: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let s: f64 = self.number(name, default)?;
        if !s.is_finite() || !(0.0..=1e9).contains(&s) {
            return Err(err(name, "expected a number of seconds ≥ 0"));
        }
        Ok(Duration::from_secs_f64(s))
    }

    fn list(&mut self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.raw(name) {
            None => Ok(Vec::new()),
            Some(v) => parse_list(v).map_err(|p| err(name, &p)),
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

fn err(var: &'static str, problem: &str) -> ConfigError {
    ConfigError {
        var,
        problem: problem.to_string(),
    }
}

/// Parse a list given as a JSON array of strings, or as a comma-separated
/// list (surrounding quotes and brackets tolerated). Empty items are dropped,
/// duplicates removed (first kept). The error never contains the value.
pub fn parse_list(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim().trim_matches(|c| c == '"' || c == '\'').trim();
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
                        _ => return Err(format!("item {i} of the JSON array is not a string")),
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
        // No keys at all means demo mode: the built-in fake upstream.
        let demo = v.bool("DEMO", false)? || api_keys.is_empty();
        let host = v.string("HOST", "0.0.0.0");
        let port: u16 = v.number("PORT", 8000)?;
        let base_url = v
            .string(
                "BASE_URL",
                "https://generativelanguage.googleapis.com/v1beta",
            )
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || base_url.parse::<http::Uri>().is_err()
        {
            return Err(err("BASE_URL", "expected an http:// or https:// URL"));
        }
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
        let check_hours: f64 = v.number("CHECK_INTERVAL_HOURS", 1.0)?;
        // Bounded so `hours * 3600` always fits a `Duration` (no panic on `1e300`).
        if !check_hours.is_finite() || !(0.0..=1e6).contains(&check_hours) {
            return Err(err(
                "CHECK_INTERVAL_HOURS",
                "expected a number of hours ≥ 0",
            ));
        }
        let keepalive_minutes: f64 = v.number("KEEPALIVE_MINUTES", 30.0)?;
        if !keepalive_minutes.is_finite() || !(0.0..=1e7).contains(&keepalive_minutes) {
            return Err(err("KEEPALIVE_MINUTES", "expected a number of minutes ≥ 0"));
        }
        let space_host = v.opt_string("SPACE_HOST");
        let keepalive_url = v
            .opt_string("KEEPALIVE_URL")
            .or_else(|| space_host.map(|h| format!("https://{h}/health")));

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
        let translate = Options {
            show_thinking: v.bool("SHOW_THINKING_PROCESS", true)?,
            thinking_budget_map,
            thinking_models: v.list("THINKING_MODELS")?,
            search_models: v.list("SEARCH_MODELS")?,
            show_search_link: v.bool("SHOW_SEARCH_LINK", true)?,
            code_execution: v.bool("TOOLS_CODE_EXECUTION_ENABLED", false)?,
            url_context: v.bool("URL_CONTEXT_ENABLED", false)?,
            url_context_models: v.list("URL_CONTEXT_MODELS")?,
            safety_settings,
        };

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
            max_body_bytes: v.number("MAX_BODY_BYTES", 20 * 1024 * 1024)?,
            max_retries: v.number("MAX_RETRIES", 3)?,
            max_failures: v.number("MAX_FAILURES", 10)?,
            cooldown: v.seconds("COOLDOWN_SECONDS", 60.0)?,
            key_selection,
            check_interval: (check_hours > 0.0)
                .then(|| Duration::from_secs_f64(check_hours * 3600.0)),
            verify_on_start: v.bool("VERIFY_ON_START", false)?,
            test_model: v.string("TEST_MODEL", "gemini-2.5-flash-lite"),
            keepalive_url,
            keepalive_interval: (keepalive_minutes > 0.0)
                .then(|| Duration::from_secs_f64(keepalive_minutes * 60.0)),
            metrics_public: v.bool("METRICS_PUBLIC", false)?,
            client_keys_enabled: v.bool("CLIENT_KEYS_ENABLED", false)?,
            backup_api_keys: v.list("BACKUP_API_KEYS")?,
            trusted_api_keys: v.list("TRUSTED_API_KEYS")?,
            native_derived_models: v.bool("NATIVE_DERIVED_MODELS", false)?,
            translate,
            max_fetch_bytes: v.number("MAX_FETCH_BYTES", 10 * 1024 * 1024)?,
            allow_private_fetch: v.bool("ALLOW_PRIVATE_FETCH", false)?,
            fetch_timeout: v.seconds("FETCH_TIMEOUT", 20.0)?,
            client_timeout: v.seconds("CLIENT_TIMEOUT", 30.0)?,
            max_connections: v.number("MAX_CONNECTIONS", 4096)?,
            max_header_bytes: v.number("MAX_HEADER_BYTES", 64 * 1024)?,
            max_headers: v.number("MAX_HEADERS", 100)?,
            shutdown_grace: v.seconds("SHUTDOWN_GRACE", 10.0)?,
            demo,
            seen: Vec::new(),
        };
        let mut cfg = cfg;
        cfg.seen = v.seen;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-field checks that run after parsing.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.allowed_tokens.is_empty() && !self.allow_anonymous && !self.demo {
            return Err(err(
                "ALLOWED_TOKENS",
                "no tokens set; set ALLOWED_TOKENS=[\"sk-...\"] (or ALLOW_ANONYMOUS=true to run open)",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(err("MAX_CONNECTIONS", "must be between 1 and 1000000"));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_header_bytes) {
            return Err(err("MAX_HEADER_BYTES", "must be between 1024 and 16777216"));
        }
        if !(1..=10_000).contains(&self.max_headers) {
            return Err(err("MAX_HEADERS", "must be between 1 and 10000"));
        }
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

    /// The admin token check for `/status` actions: `AUTH_TOKEN` if set,
    /// else any allowed token.
    pub fn admin_tokens(&self) -> Vec<String> {
        match &self.auth_token {
            Some(t) => vec![t.clone()],
            None => self.allowed_tokens.clone(),
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
        let c = cfg(&[("ALLOWED_TOKENS", "[\"sk-1\"]")]).unwrap();
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
    fn space_host_turns_into_a_keepalive_url() {
        let c = cfg(&[("ALLOWED_TOKENS", "sk"), ("SPACE_HOST", "me-gw.hf.space")]).unwrap();
        assert_eq!(
            c.keepalive_url.as_deref(),
            Some("https://me-gw.hf.space/health")
        );
        let c = cfg(&[("ALLOWED_TOKENS", "sk"), ("CHECK_INTERVAL_HOURS", "0")]).unwrap();
        assert!(c.check_interval.is_none());
    }
}
