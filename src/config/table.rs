//! The table of settings ([`SETTINGS`]), one row per variable of
//! [`VARIABLES`](super::VARIABLES) in the same order: its group (the section
//! of `.env.example` it sits in), a short description, whether it is a
//! secret, whether it can change while the gateway runs ([`Apply`]), and how
//! to show its current value in the environment's syntax (secrets masked with
//! [`mask`]). `GET /admin/config` lists it; `PATCH /admin/config` refuses the
//! rows that are not [`Apply::Live`], and [`carry_fixed`] holds their values
//! when the configuration is rebuilt at run time.

use std::time::Duration;

use super::Config;
use crate::keys::{Selection, mask};
use crate::log::Level;

/// Whether a setting can change while the gateway runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Takes effect on the next request after `PATCH /admin/config`.
    Live,
    /// Read once at start-up; why it cannot change while running.
    Restart(&'static str),
    /// Not a setting one patches: the keys have their own API (`/admin/keys`).
    Keys,
}

/// One row of the table.
#[derive(Clone, Copy)]
pub struct Setting {
    /// The variable's name.
    pub name: &'static str,
    /// Its section in `.env.example` ("Keys and access", "Server", …).
    pub group: &'static str,
    /// What it does, in a few words.
    pub description: &'static str,
    /// Whether its value is a secret (shown masked, never in full).
    pub secret: bool,
    /// Whether it applies live.
    pub apply: Apply,
    /// Its current value in the environment's syntax; secrets already
    /// masked; `None` when unset and without a default.
    pub value: fn(&Config) -> Option<String>,
}

impl Setting {
    /// Whether `PATCH /admin/config` may change it.
    pub fn live(&self) -> bool {
        self.apply == Apply::Live
    }

    /// Where its current value comes from: `stored` (a runtime override),
    /// `env` (the environment or `.env`), or `default`.
    pub fn source(&self, cfg: &Config) -> &'static str {
        if cfg.sources.stored.contains_key(self.name) {
            "stored"
        } else if cfg
            .sources
            .env
            .get(self.name)
            .is_some_and(|v| !super::unquote(v).is_empty())
        {
            "env"
        } else {
            "default"
        }
    }
}

/// The row for `name`, if it is a setting.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Whether `name`'s value is a secret.
pub fn is_secret(name: &str) -> bool {
    find(name).is_some_and(|s| s.secret)
}

const KEYS: &str = "Keys and access";
const STATE: &str = "State";
const SERVER: &str = "Server";
const UPSTREAM: &str = "Upstream calls and the key pool";
const TRANSLATION: &str = "Translation";

const STORE: &str = "the store is opened with it at start-up";
const LISTENER: &str = "the listening socket is bound at start-up";
const CONN_BUILDER: &str = "hyper's connection settings are built once at start-up";
const CLIENTS: &str = "the upstream clients are built once at start-up";
const REVERIFY: &str = "the re-verification job is scheduled at start-up";
const KEEPALIVE: &str = "the keep-alive job is scheduled at start-up";

/// A live, non-secret row (see the modifiers).
const fn row(
    name: &'static str,
    group: &'static str,
    description: &'static str,
    value: fn(&Config) -> Option<String>,
) -> Setting {
    Setting {
        name,
        group,
        description,
        secret: false,
        apply: Apply::Live,
        value,
    }
}

impl Setting {
    /// A secret.
    const fn secret(mut self) -> Setting {
        self.secret = true;
        self
    }

    /// Needs a restart, because `why`.
    const fn restart(mut self, why: &'static str) -> Setting {
        self.apply = Apply::Restart(why);
        self
    }

    /// Managed through `/admin/keys`.
    const fn keys(mut self) -> Setting {
        self.apply = Apply::Keys;
        self
    }
}

fn secs(d: Duration) -> Option<String> {
    Some(d.as_secs_f64().to_string())
}

fn list(items: &[String]) -> Option<String> {
    serde_json::to_string(items).ok()
}

fn masked_list(items: &[String]) -> Option<String> {
    list(&items.iter().map(|k| mask(k)).collect::<Vec<_>>())
}

fn env(cfg: &Config, name: &str) -> Option<String> {
    cfg.sources
        .env
        .get(name)
        .map(|v| super::unquote(v).to_string())
        .filter(|v| !v.is_empty())
}

/// A Redis URL with its password masked (`rediss://default:AbCd…wXyZ@host:6379`)
/// and any query left out.
pub fn mask_url(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return mask(url);
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        None => url.to_string(),
        Some((userinfo, host)) => {
            let userinfo = match userinfo.split_once(':') {
                Some((user, pass)) => format!("{user}:{}", mask(pass)),
                None => mask(userinfo),
            };
            format!("{scheme}://{userinfo}@{host}{path}")
        }
    }
}

fn selection(s: Selection) -> &'static str {
    match s {
        Selection::RoundRobin => "round_robin",
        Selection::Random => "random",
        Selection::LeastUsed => "least_used",
        Selection::TimeWindow => "time_window",
    }
}

fn level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
    }
}

/// Every setting, in the order of [`VARIABLES`](super::VARIABLES).
pub static SETTINGS: &[Setting] = &[
    row("API_KEYS", KEYS, "Gemini API keys to balance over", |c| masked_list(&c.api_keys))
        .secret()
        .keys(),
    row("ALLOWED_TOKENS", KEYS, "bearer tokens clients must send", |c| {
        masked_list(&c.allowed_tokens)
    })
    .secret(),
    row("AUTH_TOKEN", KEYS, "the admin token (default: the first of ALLOWED_TOKENS)", |c| {
        c.auth_token.as_deref().map(mask)
    })
    .secret(),
    row("ALLOW_ANONYMOUS", KEYS, "run without any token", |c| {
        Some(c.allow_anonymous.to_string())
    }),
    row("HOST", SERVER, "listen address", |c| Some(c.host.clone())).restart(LISTENER),
    row("PORT", SERVER, "listen port (0 picks a free one)", |c| Some(c.port.to_string()))
        .restart(LISTENER),
    row("BASE_URL", SERVER, "Gemini API base URL", |c| Some(c.base_url.clone())).restart(
        "the upstream's address is parsed once into the client at start-up (demo mode points it at the built-in fake)",
    ),
    row("UPSTREAM_PROTOCOL", UPSTREAM, "HTTP versions of Gemini calls: auto (HTTP/2 when TLS negotiates it), http1, http2", |c| {
        Some(c.upstream_protocol.name().to_string())
    })
    .restart(CLIENTS),
    row("UPSTREAM_STREAMS_PER_CONNECTION", UPSTREAM, "most Gemini calls in flight on one upstream connection; past it another opens", |c| {
        Some(c.upstream_streams.to_string())
    })
    .restart(CLIENTS),
    row("TIME_OUT", UPSTREAM, "seconds to wait for Gemini's response headers (and a whole non-streamed answer)", |c| {
        secs(c.time_out)
    }),
    row("STREAM_IDLE_TIMEOUT", UPSTREAM, "longest silence inside a stream, in seconds", |c| {
        secs(c.stream_idle_timeout)
    }),
    row(
        "REQUEST_TIMEOUT",
        UPSTREAM,
        "seconds every attempt and retry of a request may take together, until a whole answer or a stream's first content",
        |c| secs(c.request_timeout),
    ),
    row("TIMEOUT_RETRIES", UPSTREAM, "retries of a timed-out generation (Google may have spent the quota)", |c| {
        Some(c.timeout_retries.to_string())
    }),
    row(
        "HEARTBEAT_SECONDS",
        UPSTREAM,
        "a silent stream gets a heartbeat this often, in seconds (0: never)",
        |c| secs(c.heartbeat),
    ),
    row("FAKE_STREAM_ENABLED", UPSTREAM, "serve stream:true by a non-streamed call, sent on as stream events", |c| {
        Some(c.fake_stream.to_string())
    }),
    row("FAKE_STREAM_MODELS", UPSTREAM, "models served that way even when FAKE_STREAM_ENABLED is off", |c| {
        list(&c.fake_stream_models)
    }),
    row("NONSTREAM_KEEPALIVE", UPSTREAM, "a slow non-streamed answer sends whitespace before its JSON (errors then come with 200)", |c| {
        Some(c.nonstream_keepalive.to_string())
    }),
    row("STREAM_SMOOTHING", UPSTREAM, "large text events of streams are re-cut into small ones sent at a steady pace", |c| {
        Some(c.stream_smoothing.to_string())
    }),
    row(
        "STREAM_SMOOTHING_MAX_DELAY",
        UPSTREAM,
        "the most smoothing delays any text, in seconds (at most 10)",
        |c| secs(c.stream_smoothing_max_delay),
    ),
    row("LOG_LEVEL", SERVER, "error, warn, info or debug", |c| Some(level(c.log_level).into())),
    row("CORS_ORIGINS", SERVER, "allowed CORS origins", |c| list(&c.cors_origins)),
    row("MAX_BODY_BYTES", SERVER, "largest request body in bytes", |c| {
        Some(c.max_body_bytes.to_string())
    }),
    row("MAX_UPLOAD_BYTES", SERVER, "largest file upload (Files API) in bytes", |c| {
        Some(c.max_upload_bytes.to_string())
    }),
    row("FILES_USER_ISOLATION", SERVER, "a client token sees only its own files, caches and batches", |c| {
        Some(c.files_user_isolation.to_string())
    }),
    row("IMAGE_MODEL", TRANSLATION, "model behind /v1/images/generations (imagen-* go through :predict)", |c| {
        Some(c.image_model.clone())
    }),
    row("TTS_MODEL", TRANSLATION, "model behind /v1/audio/speech for tts-1, tts-1-hd, gpt-4o-mini-tts", |c| {
        Some(c.tts_model.clone())
    }),
    row("IMAGE_URL_TTL", STATE, "minutes a generated image answered as a url is served", |c| {
        Some(c.image_url_ttl_minutes.to_string())
    }),
    row("MAX_RETRIES", UPSTREAM, "extra attempts on other keys after a failure", |c| {
        Some(c.max_retries.to_string())
    }),
    row("MAX_FAILURES", UPSTREAM, "consecutive transient failures before a key rests", |c| {
        Some(c.max_failures.to_string())
    }),
    row("COOLDOWN_SECONDS", UPSTREAM, "429 cooldown when Google names no delay", |c| {
        secs(c.cooldown)
    }),
    row("KEY_SELECTION", UPSTREAM, "round_robin, random, least_used or time_window", |c| {
        Some(selection(c.key_selection).into())
    }),
    row("QUOTA_AWARE", UPSTREAM, "count calls per key and model, skip keys at a quota limit", |c| {
        Some(c.quota.aware.to_string())
    }),
    row("KEY_TIER", UPSTREAM, "free (built-in free-tier limits apply) or paid; unset = unknown", |c| {
        c.quota.free.then(|| "free".to_string()).or_else(|| env(c, "KEY_TIER"))
    }),
    row("MODEL_LIMITS", UPSTREAM, "per model rpm/rpd/tpm limits (JSON, * patterns)", |c| {
        (!c.quota.configured.is_empty()).then(|| c.quota.configured.to_json())
    }),
    row("QUEUE_TIMEOUT", UPSTREAM, "seconds a request may wait for quota headroom (0 = answer 429 at once)", |c| {
        secs(c.queue_timeout)
    }),
    row("QUEUE_MAX", UPSTREAM, "most requests waiting for quota headroom per model", |c| {
        Some(c.queue_max.to_string())
    }),
    row("CHECK_INTERVAL_HOURS", UPSTREAM, "hours between key re-verifications (0 = off)", |c| {
        Some(c.check_interval.map_or(0.0, |d| d.as_secs_f64() / 3600.0).to_string())
    })
    .restart(REVERIFY),
    row("CHECK_CRON", UPSTREAM, "re-verify on this cron schedule instead (UTC)", |c| {
        c.check_cron.clone()
    })
    .restart(REVERIFY),
    row("VERIFY_ON_START", UPSTREAM, "verify every key at start-up", |c| {
        Some(c.verify_on_start.to_string())
    })
    .restart("it is only read at start-up"),
    row("TEST_MODEL", UPSTREAM, "model used to verify keys (models.get)", |c| {
        Some(c.test_model.clone())
    }),
    row("KEEPALIVE_URL", UPSTREAM, "URL pinged to keep a free Space awake", |c| {
        c.keepalive_url.clone()
    })
    .restart(KEEPALIVE),
    row("KEEPALIVE_MINUTES", UPSTREAM, "minutes between keep-alive pings (0 = off)", |c| {
        Some(c.keepalive_interval.map_or(0.0, |d| d.as_secs_f64() / 60.0).to_string())
    })
    .restart(KEEPALIVE),
    row("SPACE_HOST", UPSTREAM, "set by Hugging Face; the default keep-alive URL", |c| {
        env(c, "SPACE_HOST")
    })
    .restart(KEEPALIVE),
    row("METRICS_PUBLIC", UPSTREAM, "serve /metrics without a token", |c| {
        Some(c.metrics_public.to_string())
    }),
    row("VERIFY_MAX_KEYS", UPSTREAM, "most keys one POST /verify call may name", |c| {
        Some(c.verify_max_keys.to_string())
    }),
    row("CLIENT_KEYS_ENABLED", KEYS, "native routes accept a caller's own Gemini keys", |c| {
        Some(c.client_keys_enabled.to_string())
    }),
    row("BACKUP_API_KEYS", KEYS, "lite edition: the backup key pool", |c| {
        masked_list(&c.backup_api_keys)
    })
    .secret()
    .restart("the backup pool is built at start-up"),
    row("TRUSTED_API_KEYS", KEYS, "lite edition: client keys allowed to use the backup pool", |c| {
        masked_list(&c.trusted_api_keys)
    })
    .secret(),
    row("VERTEX_API_KEYS", KEYS, "Vertex AI express mode API keys, the pool behind /vertex-express", |c| {
        masked_list(&c.vertex_api_keys)
    })
    .secret()
    .restart("the Vertex Express pool is built at start-up"),
    row("VERTEX_EXPRESS_BASE_URL", KEYS, "Vertex AI express mode base URL", |c| {
        Some(c.vertex_base_url.clone())
    }),
    row("NATIVE_DERIVED_MODELS", TRANSLATION, "offer -search/-thinking variants to native clients too", |c| {
        Some(c.native_derived_models.to_string())
    }),
    row("SHOW_THINKING_PROCESS", TRANSLATION, "return thought summaries as reasoning_content", |c| {
        Some(c.translate.show_thinking.to_string())
    }),
    row("THINKING_MODELS", TRANSLATION, "models offered with -thinking/-non-thinking variants", |c| {
        list(&c.translate.thinking_models)
    }),
    row("THINKING_BUDGET_MAP", TRANSLATION, "thinking budget per model (JSON object)", |c| {
        let map: serde_json::Map<String, serde_json::Value> = c
            .translate
            .thinking_budget_map
            .iter()
            .map(|(m, b)| (m.clone(), (*b).into()))
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }),
    row("SEARCH_MODELS", TRANSLATION, "models offered with a -search variant", |c| {
        list(&c.translate.search_models)
    }),
    row("SHOW_SEARCH_LINK", TRANSLATION, "append search sources as markdown links", |c| {
        Some(c.translate.show_search_link.to_string())
    }),
    row("TOOLS_CODE_EXECUTION_ENABLED", TRANSLATION, "add the codeExecution tool", |c| {
        Some(c.translate.code_execution.to_string())
    }),
    row("URL_CONTEXT_ENABLED", TRANSLATION, "add the urlContext tool for URL_CONTEXT_MODELS", |c| {
        Some(c.translate.url_context.to_string())
    }),
    row("URL_CONTEXT_MODELS", TRANSLATION, "models that get urlContext when enabled", |c| {
        list(&c.translate.url_context_models)
    }),
    row("SAFETY_SETTINGS", TRANSLATION, "JSON array of {category, threshold} (default: all OFF)", |c| {
        c.translate.safety_settings.as_ref().map(|v| v.to_string())
    }),
    row("MODEL_ALIASES", TRANSLATION, "client model name or * pattern → Gemini model (JSON object)", |c| {
        let map: serde_json::Map<String, serde_json::Value> = c
            .model_aliases
            .iter()
            .map(|(m, t)| (m.clone(), t.clone().into()))
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }),
    row("FILTERED_MODELS", TRANSLATION, "models hidden from lists and refused (404); * patterns", |c| {
        list(&c.filtered_models)
    }),
    row("CUSTOM_HEADERS", UPSTREAM, "headers added to every upstream call (JSON object)", |c| {
        let map: serde_json::Map<String, serde_json::Value> = c
            .custom_headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().into()))
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }),
    row("PROXIES", UPSTREAM, "outbound proxies for upstream calls (JSON list of http://, https:// or socks5:// URLs)", |c| {
        list(&c.proxies.iter().map(crate::proxy::ProxySpec::masked).collect::<Vec<_>>())
    })
    .secret()
    .restart("each proxy's pooled client is built once at start-up"),
    row("PROXIES_PER_KEY", UPSTREAM, "each key always through the same proxy (false: rotate)", |c| {
        Some(c.proxies_per_key.to_string())
    })
    .restart("each proxy's pooled client is built once at start-up"),
    row("PROXY_CA_FILE", UPSTREAM, "PEM certificates https:// proxies may be signed by (besides the webpki roots)", |c| {
        (!c.proxy_ca_file.is_empty()).then(|| c.proxy_ca_file.clone())
    })
    .restart("each proxy's pooled client is built once at start-up"),
    row("MAX_FETCH_BYTES", TRANSLATION, "largest remote image fetched for image_url", |c| {
        Some(c.max_fetch_bytes.to_string())
    }),
    row("ALLOW_PRIVATE_FETCH", TRANSLATION, "allow fetching images from private addresses", |c| {
        Some(c.allow_private_fetch.to_string())
    }),
    row("FETCH_TIMEOUT", TRANSLATION, "seconds for all remote images of one request", |c| {
        secs(c.fetch_timeout)
    }),
    row("CLIENT_TIMEOUT", SERVER, "seconds a client has for its headers, body and idle time", |c| {
        secs(c.client_timeout)
    })
    .restart(CONN_BUILDER),
    row("MAX_CONNECTIONS", SERVER, "concurrent client connections", |c| {
        Some(c.max_connections.to_string())
    })
    .restart("the connection limit is a semaphore sized at start-up"),
    row("MAX_HEADER_BYTES", SERVER, "largest request head in bytes (431 past it)", |c| {
        Some(c.max_header_bytes.to_string())
    })
    .restart(CONN_BUILDER),
    row("MAX_HEADERS", SERVER, "most request headers (431 past it)", |c| {
        Some(c.max_headers.to_string())
    })
    .restart(CONN_BUILDER),
    row("SHUTDOWN_GRACE", SERVER, "seconds in-flight requests may finish on shutdown", |c| {
        secs(c.shutdown_grace)
    }),
    row("DEMO", KEYS, "answer from the built-in fake Gemini", |c| Some(c.demo.to_string()))
        .restart("demo mode starts the built-in fake upstream at start-up"),
    row("ENV_FILE", KEYS, "path of the .env file", |c| {
        env(c, "ENV_FILE").or_else(|| Some(".env".into()))
    })
    .restart("the file is read once at start-up"),
    row("DATA_DIR", STATE, "directory of the state file (file mode)", |c| {
        c.data_dir.as_ref().map(|d| d.display().to_string())
    })
    .restart(STORE),
    row("REDIS_URL", STATE, "Redis URL (redis mode, shared by replicas)", |c| {
        c.redis_url.as_deref().map(mask_url)
    })
    .secret()
    .restart(STORE),
    row("REDIS_PREFIX", STATE, "prefix of every Redis key", |c| Some(c.redis_prefix.clone()))
        .restart(STORE),
    row("ENCRYPTION_KEY", STATE, "encrypts the stored key list at rest", |c| {
        c.encryption_key.as_deref().map(mask)
    })
    .secret()
    .restart(STORE),
    row("ERROR_LOG_MAX", STATE, "most entries the error log keeps", |c| {
        Some(c.error_log_max.to_string())
    }),
    row("ERROR_LOG_DAYS", STATE, "days the error log keeps an entry", |c| {
        Some(c.error_log_days.to_string())
    }),
    row(
        "ERROR_LOG_RECORD_BODY",
        STATE,
        "failed attempts keep the request body (64 KiB, keys masked)",
        |c| Some(c.error_log_record_body.to_string()),
    ),
    row(
        "RESPONSES_TTL",
        STATE,
        "seconds a stored Responses API response is kept (previous_response_id, GET /v1/responses/{id})",
        |c| secs(c.responses_ttl),
    ),
];

/// Hold every setting that cannot change while running ([`Apply::Restart`],
/// [`Apply::Keys`]) at its running value: `new` is a configuration rebuilt
/// from the variables at run time, `old` the one in use (which may hold
/// values `main` set after parsing, such as demo mode's `BASE_URL`).
pub fn carry_fixed(new: &mut Config, old: &Config) {
    new.api_keys.clone_from(&old.api_keys);
    new.host.clone_from(&old.host);
    new.port = old.port;
    new.base_url.clone_from(&old.base_url);
    new.base_url_unversioned = old.base_url_unversioned;
    new.check_interval = old.check_interval;
    new.check_cron.clone_from(&old.check_cron);
    new.verify_on_start = old.verify_on_start;
    new.keepalive_url.clone_from(&old.keepalive_url);
    new.keepalive_interval = old.keepalive_interval;
    new.backup_api_keys.clone_from(&old.backup_api_keys);
    new.vertex_api_keys.clone_from(&old.vertex_api_keys);
    new.client_timeout = old.client_timeout;
    new.max_connections = old.max_connections;
    new.upstream_protocol = old.upstream_protocol;
    new.upstream_streams = old.upstream_streams;
    new.max_header_bytes = old.max_header_bytes;
    new.max_headers = old.max_headers;
    new.demo = old.demo;
    new.data_dir.clone_from(&old.data_dir);
    new.redis_url.clone_from(&old.redis_url);
    new.redis_prefix.clone_from(&old.redis_prefix);
    new.encryption_key.clone_from(&old.encryption_key);
    new.proxies.clone_from(&old.proxies);
    new.proxies_per_key = old.proxies_per_key;
    new.proxy_ca_file.clone_from(&old.proxy_ca_file);
}
