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
//!
//! Settings also change while running: [`table::SETTINGS`] says for each
//! variable its group, whether it is a secret and whether it can change live;
//! [`Config::with_stored`] rebuilds the configuration from the start-up
//! variables with runtime overrides over them (stored > env > default) through
//! the same parser, and [`live::Live`] holds the one in use. The parts:
//! `vars` (typed reads, list syntax), `parse` (the readers of several values),
//! `hints` (near misses), `table`, `live`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use crate::keys::{Selection, mask};
use crate::openai::Options;

mod hints;
pub mod live;
pub use live::{Live, Refusal};
pub use table::{Apply, SETTINGS, Setting};
mod parse;
pub mod table;
#[cfg(test)]
mod tests;
mod vars;

use hints::hint;
pub use hints::near_miss;
use vars::{Vars, WHOLE, err};
pub use vars::{parse_list, unquote};

/// Every variable the gateway reads, with its default (as shown in
/// `.env.example`). A test checks this list, the code and `.env.example`
/// agree, and another that [`table::SETTINGS`] has one row for each, in order.
pub const VARIABLES: &[&str] = &[
    "API_KEYS",
    "ALLOWED_TOKENS",
    "AUTH_TOKEN",
    "ALLOW_ANONYMOUS",
    "HOST",
    "PORT",
    "BASE_URL",
    "UPSTREAM_PROTOCOL",
    "UPSTREAM_STREAMS_PER_CONNECTION",
    "TIME_OUT",
    "STREAM_IDLE_TIMEOUT",
    "REQUEST_TIMEOUT",
    "TIMEOUT_RETRIES",
    "HEARTBEAT_SECONDS",
    "FAKE_STREAM_ENABLED",
    "FAKE_STREAM_MODELS",
    "NONSTREAM_KEEPALIVE",
    "STREAM_SMOOTHING",
    "STREAM_SMOOTHING_MAX_DELAY",
    "LOG_LEVEL",
    "CORS_ORIGINS",
    "MAX_BODY_BYTES",
    "MAX_UPLOAD_BYTES",
    "FILES_USER_ISOLATION",
    "IMAGE_MODEL",
    "TTS_MODEL",
    "IMAGE_URL_TTL",
    "MAX_RETRIES",
    "MAX_FAILURES",
    "COOLDOWN_SECONDS",
    "KEY_SELECTION",
    "QUOTA_AWARE",
    "KEY_TIER",
    "MODEL_LIMITS",
    "QUEUE_TIMEOUT",
    "QUEUE_MAX",
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
    "VERTEX_API_KEYS",
    "VERTEX_EXPRESS_BASE_URL",
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
    "MODEL_ALIASES",
    "FILTERED_MODELS",
    "CUSTOM_HEADERS",
    "PROXIES",
    "PROXIES_PER_KEY",
    "PROXY_CA_FILE",
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
    "RESPONSES_TTL",
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
    /// `UPSTREAM_PROTOCOL`: the HTTP versions Gemini calls use.
    pub upstream_protocol: crate::lanes::Protocol,
    /// `UPSTREAM_STREAMS_PER_CONNECTION`: most Gemini calls in flight on one
    /// upstream connection (past it, another connection opens).
    pub upstream_streams: usize,
    /// `STREAM_IDLE_TIMEOUT`: longest silence inside a stream.
    pub stream_idle_timeout: Duration,
    /// `REQUEST_TIMEOUT`: deadline over every attempt and retry of one
    /// request, until a whole answer, or a stream's first content.
    pub request_timeout: Duration,
    /// `TIMEOUT_RETRIES`: how often a timed-out generation is retried.
    pub timeout_retries: u32,
    /// `HEARTBEAT_SECONDS`: a silent stream gets a heartbeat this often (0: never).
    pub heartbeat: Duration,
    /// `FAKE_STREAM_ENABLED`: serve every `stream:true` request by a
    /// non-streamed upstream call, sent on as stream events.
    pub fake_stream: bool,
    /// `FAKE_STREAM_MODELS`: models served that way even when
    /// `FAKE_STREAM_ENABLED` is off.
    pub fake_stream_models: Vec<String>,
    /// `NONSTREAM_KEEPALIVE`: a slow non-streamed answer commits its 200 and
    /// sends whitespace every `HEARTBEAT_SECONDS` before the JSON body.
    pub nonstream_keepalive: bool,
    /// `STREAM_SMOOTHING`: large text events of Gemini streams are re-cut
    /// into small ones sent at a steady pace ([`crate::smooth`]).
    pub stream_smoothing: bool,
    /// `STREAM_SMOOTHING_MAX_DELAY`: the most smoothing delays any text.
    pub stream_smoothing_max_delay: Duration,
    /// `LOG_LEVEL`.
    pub log_level: crate::log::Level,
    /// `CORS_ORIGINS`: allowed origins, `*` for any.
    pub cors_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
    /// `MAX_UPLOAD_BYTES`: largest file the Files API upload routes pass on.
    pub max_upload_bytes: u64,
    /// `FILES_USER_ISOLATION`: a client token sees and uses only the files,
    /// caches and batches it created.
    pub files_user_isolation: bool,
    /// `IMAGE_MODEL`: the model `/v1/images/generations` calls when the
    /// request names none or an OpenAI image model.
    pub image_model: String,
    /// `TTS_MODEL`: the model `/v1/audio/speech` calls for `tts-1`,
    /// `tts-1-hd` and `gpt-4o-mini-tts`.
    pub tts_model: String,
    /// `IMAGE_URL_TTL`: minutes a generated image answered as a `url` is served.
    pub image_url_ttl_minutes: u64,
    /// `MAX_RETRIES`: extra attempts on other keys (0 = one attempt).
    pub max_retries: u32,
    /// `MAX_FAILURES`: consecutive transient failures before a key rests.
    pub max_failures: u32,
    /// `COOLDOWN_SECONDS`: default 429 cooldown when Google gives no delay.
    pub cooldown: Duration,
    /// `KEY_SELECTION`: how the next key is chosen.
    pub key_selection: Selection,
    /// `QUOTA_AWARE`, `KEY_TIER`, `MODEL_LIMITS`: the key pools' quota policy.
    pub quota: crate::keys::QuotaPolicy,
    /// `QUEUE_TIMEOUT`: longest wait in line for quota headroom (0 = none).
    pub queue_timeout: Duration,
    /// `QUEUE_MAX`: most requests waiting per model.
    pub queue_max: usize,
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
    /// `VERTEX_API_KEYS`: Vertex AI express mode API keys, the pool behind
    /// the `/vertex-express/…` routes (empty: those routes say so).
    pub vertex_api_keys: Vec<String>,
    /// `VERTEX_EXPRESS_BASE_URL`: Vertex AI express mode's base, without a
    /// trailing `/` (`{base}/models/{m}:{action}`).
    pub vertex_base_url: String,
    /// `NATIVE_DERIVED_MODELS`: list `-search`/`-thinking` variants to native clients too.
    pub native_derived_models: bool,
    /// Translation settings (thinking, search, code execution, safety, …).
    pub translate: Options,
    /// `MODEL_ALIASES`: client model name or `*` pattern → Gemini model
    /// (over the built-in defaults, see [`crate::model::resolve_alias`]).
    pub model_aliases: Vec<(String, String)>,
    /// `FILTERED_MODELS`: model names or `*` patterns hidden from every
    /// model list and refused with 404 on every route
    /// (see [`crate::model::filtered`]).
    pub filtered_models: Vec<String>,
    /// `CUSTOM_HEADERS`: headers added to every upstream call (name in
    /// lower case, value); never the key header, `authorization`, `host`,
    /// `content-length` or a hop-by-hop header.
    pub custom_headers: Vec<(String, String)>,
    /// `PROXIES`: outbound proxies every upstream call goes through (empty:
    /// straight to Google); credentials inside, shown only masked.
    pub proxies: Vec<crate::proxy::ProxySpec>,
    /// `PROXIES_PER_KEY`: each key always through the same proxy
    /// (rendezvous hashing); `false`: plain rotation.
    pub proxies_per_key: bool,
    /// `PROXY_CA_FILE`: PEM certificates `https://` proxies may be signed by
    /// besides the webpki roots (empty: none); read at parse time.
    pub proxy_ca_file: String,
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
    /// `RESPONSES_TTL`: how long stored Responses API responses are kept
    /// for `previous_response_id` and `GET /v1/responses/{id}`.
    pub responses_ttl: Duration,
    /// `BASE_URL` has a path but no API version segment (`v1beta`, `v1`, …):
    /// an upstream 404 then names `BASE_URL` in its message.
    pub base_url_unversioned: bool,
    /// Lines to log once logging is set up: near-miss variable names, a
    /// `BASE_URL` that was completed or looks unversioned.
    pub notes: Vec<(crate::log::Level, String)>,
    /// Which variables were set (name, masked value) — printed at start-up.
    pub seen: Vec<(String, String)>,
    /// Where the values came from: the variables read at start-up and the
    /// overrides stored at run time (see [`Config::with_stored`]).
    pub sources: Sources,
}

/// Where the values of a [`Config`] came from. Holds secrets in full: never
/// printed (the `Debug` of [`Config`] leaves it out).
#[derive(Clone, Default)]
pub struct Sources {
    /// The variables read at start-up (environment and `.env`, plus what
    /// [`Config::pin`] added) that name a setting or look like one.
    pub env: HashMap<String, String>,
    /// Overrides set at run time (`PATCH /admin/config`, kept by the store),
    /// in the environment's syntax, applied over `env`.
    pub stored: BTreeMap<String, String>,
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
            .field("vertex_api_keys", &masked(&self.vertex_api_keys))
            .field("vertex_base_url", &self.vertex_base_url)
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

/// The entries of `map` the parser looks at: the settings, names one or two
/// edits away from one, and names holding `API_KEY` (see [`hint`]).
fn relevant(map: &HashMap<String, String>) -> HashMap<String, String> {
    map.iter()
        .filter(|(n, _)| {
            VARIABLES.contains(&n.as_str())
                || near_miss(n).is_some()
                || (n.len() <= 64 && n.to_ascii_uppercase().contains("API_KEY"))
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// The configuration at start-up: the variables `env` (see [`Config::from_map`])
/// with the overrides kept by the store (`Snapshot::setting_overrides()`)
/// over them. Precedence: stored > env > default. `env` must be valid on its
/// own (its error is returned); a stored override that is not a live setting
/// or that the parser refuses is left out with a warning in `notes`.
pub fn with_overrides(
    env: &HashMap<String, String>,
    stored: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    Ok(Config::from_map(env)?.with_stored_lenient(stored))
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
        let nothing_set = api_keys.is_empty() && allowed_tokens.is_empty();
        let (demo, demo_setting, mut notes) = parse::demo_mode(&mut v, map, nothing_set)?;
        let host = v.string("HOST", "0.0.0.0");
        let port = parse::port(&mut v)?;
        let (base_url, base_url_unversioned) = parse::base_url(&mut v, &mut notes)?;
        let log_level = parse::log_level(&mut v)?;
        let cors_origins = match v.list("CORS_ORIGINS")? {
            l if l.is_empty() => vec!["*".to_string()],
            l => l,
        };
        let key_selection = parse::key_selection(&mut v)?;
        let quota = parse::quota(&mut v)?;
        let jobs = parse::jobs(&mut v)?;
        let translate = parse::translate_options(&mut v)?;
        let proxy_ca_file = v.string("PROXY_CA_FILE", "");

        let cfg = Config {
            api_keys,
            allowed_tokens,
            auth_token,
            allow_anonymous,
            host,
            port,
            base_url,
            time_out: v.seconds("TIME_OUT", 300.0)?,
            upstream_protocol: parse::protocol(&mut v)?,
            upstream_streams: v.number(
                "UPSTREAM_STREAMS_PER_CONNECTION",
                crate::upstream::STREAMS_PER_CONNECTION,
                1,
                Some(10_000),
                WHOLE,
            )?,
            stream_idle_timeout: v.seconds("STREAM_IDLE_TIMEOUT", 120.0)?,
            request_timeout: v.seconds("REQUEST_TIMEOUT", 600.0)?,
            timeout_retries: v.number("TIMEOUT_RETRIES", 1, 0, Some(u32::MAX), WHOLE)?,
            heartbeat: v.seconds("HEARTBEAT_SECONDS", 15.0)?,
            fake_stream: v.bool("FAKE_STREAM_ENABLED", false)?,
            fake_stream_models: v.list("FAKE_STREAM_MODELS")?,
            nonstream_keepalive: v.bool("NONSTREAM_KEEPALIVE", false)?,
            stream_smoothing: v.bool("STREAM_SMOOTHING", false)?,
            stream_smoothing_max_delay: Duration::from_secs_f64(v.number(
                "STREAM_SMOOTHING_MAX_DELAY",
                1.0,
                0.0,
                Some(10.0),
                "a number of seconds (at most 10)",
            )?),
            log_level,
            cors_origins,
            max_body_bytes: v.number("MAX_BODY_BYTES", 20 * 1024 * 1024, 0, None, WHOLE)?,
            max_upload_bytes: v.number("MAX_UPLOAD_BYTES", 2 << 30, 0, None, WHOLE)?,
            files_user_isolation: v.bool("FILES_USER_ISOLATION", true)?,
            image_model: v.string("IMAGE_MODEL", "gemini-2.5-flash-image"),
            tts_model: v.string("TTS_MODEL", "gemini-2.5-flash-preview-tts"),
            image_url_ttl_minutes: v.number("IMAGE_URL_TTL", 60, 1, Some(7 * 24 * 60), WHOLE)?,
            max_retries: v.number("MAX_RETRIES", 3, 0, Some(u32::MAX), WHOLE)?,
            max_failures: v.number("MAX_FAILURES", 10, 0, Some(u32::MAX), WHOLE)?,
            cooldown: v.seconds("COOLDOWN_SECONDS", 60.0)?,
            key_selection,
            quota,
            queue_timeout: v.seconds("QUEUE_TIMEOUT", 0.0)?,
            queue_max: v.number("QUEUE_MAX", 100, 0, Some(1_000_000), WHOLE)?,
            check_interval: jobs.check_interval,
            check_cron: jobs.check_cron,
            verify_on_start: v.bool("VERIFY_ON_START", false)?,
            test_model: v.string("TEST_MODEL", "gemini-2.5-flash-lite"),
            keepalive_url: jobs.keepalive_url,
            keepalive_interval: jobs.keepalive_interval,
            metrics_public: v.bool("METRICS_PUBLIC", false)?,
            verify_max_keys: v.number("VERIFY_MAX_KEYS", 50, 1, Some(10_000), WHOLE)?,
            client_keys_enabled: v.bool("CLIENT_KEYS_ENABLED", false)?,
            backup_api_keys: v.list("BACKUP_API_KEYS")?,
            trusted_api_keys: v.list("TRUSTED_API_KEYS")?,
            vertex_api_keys: v.list("VERTEX_API_KEYS")?,
            vertex_base_url: parse::vertex_base_url(&mut v)?,
            native_derived_models: v.bool("NATIVE_DERIVED_MODELS", false)?,
            translate,
            model_aliases: parse::model_aliases(&mut v)?,
            filtered_models: parse::filtered_models(&mut v)?,
            custom_headers: parse::custom_headers(&mut v)?,
            proxies: parse::proxies(&mut v, &proxy_ca_file)?,
            proxies_per_key: v.bool("PROXIES_PER_KEY", true)?,
            proxy_ca_file,
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
            responses_ttl: v.seconds("RESPONSES_TTL", 86_400.0)?,
            base_url_unversioned,
            notes,
            seen: Vec::new(),
            sources: Sources {
                env: relevant(map),
                stored: BTreeMap::new(),
            },
        };
        let mut cfg = cfg;
        cfg.seen = v.seen;
        cfg.validate()?;
        cfg.require_keys_and_tokens(map, demo_setting)?;
        Ok(cfg)
    }

    /// This configuration's start-up variables with `stored` over them,
    /// parsed by exactly the start-up parser ([`Config::from_map`]): the
    /// same one-line errors, and nothing changes on an error. The settings
    /// that cannot change while running keep their running values
    /// ([`table::carry_fixed`]). Precedence: stored > env > default.
    pub fn with_stored(&self, stored: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut map = self.sources.env.clone();
        map.extend(stored.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut new = Config::from_map(&map)?;
        new.sources = Sources {
            env: self.sources.env.clone(),
            stored: stored.clone(),
        };
        table::carry_fixed(&mut new, self);
        Ok(new)
    }

    /// [`Config::with_stored`] for overrides that were kept (start-up, other
    /// replicas), never failing: an override that is not a live setting, or
    /// that the parser refuses, is left out with a warning in
    /// [`Config::notes`] (a bad stored value must not stop the gateway).
    pub fn with_stored_lenient(&self, stored: &BTreeMap<String, String>) -> Config {
        let mut notes = Vec::new();
        let mut keep = BTreeMap::new();
        for (name, value) in stored {
            if table::find(name).is_some_and(|s| s.live()) {
                keep.insert(name.clone(), value.clone());
            } else {
                let m = format!(
                    "stored setting {name} ignored: it is not a setting that can change while running"
                );
                notes.push((crate::log::Level::Warn, m));
            }
        }
        loop {
            match self.with_stored(&keep) {
                Ok(mut c) => {
                    c.notes.extend(notes);
                    return c;
                }
                Err(_) if keep.is_empty() => {
                    let mut c = self.clone();
                    c.notes.extend(notes);
                    return c;
                }
                Err(e) => {
                    notes.push((
                        crate::log::Level::Warn,
                        format!("stored setting ignored: {e}"),
                    ));
                    if keep.remove(e.var).is_none() {
                        keep.clear();
                    }
                }
            }
        }
    }

    /// Record `value` for `name` as if it came from the environment, for a
    /// value decided after parsing (demo mode's keys and token), so that a
    /// configuration rebuilt at run time ([`Config::with_stored`]) keeps it.
    pub fn pin(&mut self, name: &str, value: String) {
        self.sources.env.insert(name.to_string(), value);
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
        if self.request_timeout.is_zero() {
            return Err(err("REQUEST_TIMEOUT", "must be greater than 0"));
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

    /// The bound of `STREAM_SMOOTHING` when it is on.
    pub fn smoothing(&self) -> Option<Duration> {
        self.stream_smoothing
            .then_some(self.stream_smoothing_max_delay)
    }

    /// Whether a `stream:true` request for `model` is served by a
    /// non-streamed upstream call (`FAKE_STREAM_ENABLED`, `FAKE_STREAM_MODELS`).
    pub fn fake_stream_for(&self, model: &str) -> bool {
        self.fake_stream || self.fake_stream_models.iter().any(|m| m == model)
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
