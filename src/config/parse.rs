//! The parts of [`Config::from_map`](super::Config::from_map) that read more
//! than one plain value: demo mode and near-miss notes, `PORT`, `BASE_URL`,
//! `LOG_LEVEL`, `KEY_SELECTION`, the scheduled jobs and the translation
//! options. Each reads its variables in the order the start-up log lists them.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::ConfigError;
use super::hints::near_misses;
use super::vars::{Vars, err, parse_bool};
use crate::keys::Selection;
use crate::log::Level;
use crate::openai::Options;

/// Notes to log once logging is set up.
pub(super) type Notes = Vec<(Level, String)>;

/// Demo mode, the `DEMO` setting as given, and the near-miss warnings.
///
/// Demo mode (the built-in fake upstream) only when asked for, or when
/// nothing at all is configured (`nothing_set`): a misspelled `API_KEYS` must
/// not silently turn into fake answers.
pub(super) fn demo_mode(
    v: &mut Vars<'_>,
    map: &HashMap<String, String>,
    nothing_set: bool,
) -> Result<(bool, Option<bool>, Notes), ConfigError> {
    let misses = near_misses(map);
    let notes: Notes = misses
        .iter()
        .map(|(name, known)| {
            let m = format!("{name} is not a setting of this gateway; did you mean {known}?");
            (Level::Warn, m)
        })
        .collect();
    let demo_setting = v.raw("DEMO").map(|d| parse_bool("DEMO", d)).transpose()?;
    let near_required = misses
        .iter()
        .any(|(_, k)| matches!(*k, "API_KEYS" | "ALLOWED_TOKENS"));
    let demo = demo_setting.unwrap_or(nothing_set && !near_required);
    Ok((demo, demo_setting, notes))
}

/// `PORT` (default 8000; 0 picks a free port).
pub(super) fn port(v: &mut Vars<'_>) -> Result<u16, ConfigError> {
    match v.raw("PORT") {
        None => Ok(8000),
        Some(p) => p.parse().map_err(|_| {
            err(
                "PORT",
                &format!("expected a port number 1–65535 (0 picks a free one), got {p:?}"),
            )
        }),
    }
}

/// `LOG_LEVEL` (default info).
pub(super) fn log_level(v: &mut Vars<'_>) -> Result<Level, ConfigError> {
    match v.raw("LOG_LEVEL") {
        None => Ok(Level::Info),
        Some(l) => {
            Level::parse(l).ok_or_else(|| err("LOG_LEVEL", "expected error, warn, info or debug"))
        }
    }
}

/// `KEY_SELECTION` (default round robin).
pub(super) fn key_selection(v: &mut Vars<'_>) -> Result<Selection, ConfigError> {
    match v.raw("KEY_SELECTION") {
        None => Ok(Selection::RoundRobin),
        Some(s) => Selection::parse(s).ok_or_else(|| {
            err(
                "KEY_SELECTION",
                "expected round_robin, random, least_used or time_window",
            )
        }),
    }
}

/// `UPSTREAM_PROTOCOL`: `auto` (default), `http1` or `http2`.
pub(super) fn protocol(v: &mut Vars<'_>) -> Result<crate::lanes::Protocol, ConfigError> {
    match v.raw("UPSTREAM_PROTOCOL") {
        None => Ok(crate::lanes::Protocol::Auto),
        Some(s) => crate::lanes::Protocol::parse(s)
            .ok_or_else(|| err("UPSTREAM_PROTOCOL", "expected auto, http1 or http2")),
    }
}

/// `QUOTA_AWARE` (default true), `KEY_TIER` (`free`, `paid` or unset) and
/// `MODEL_LIMITS` (JSON), as the key pools' quota policy.
pub(super) fn quota(v: &mut Vars<'_>) -> Result<crate::keys::QuotaPolicy, ConfigError> {
    use crate::keys::{ModelLimits, QuotaPolicy as Policy};
    let aware = v.bool("QUOTA_AWARE", true)?;
    let free = match v.raw("KEY_TIER").map(|t| t.trim().to_ascii_lowercase()) {
        None => false,
        Some(t) if t == "free" => true,
        Some(t) if t == "paid" => false,
        Some(_) => return Err(err("KEY_TIER", "expected free or paid")),
    };
    let configured = match v.json("MODEL_LIMITS")? {
        None => ModelLimits::default(),
        Some(j) => ModelLimits::parse(&j).map_err(|p| err("MODEL_LIMITS", &p))?,
    };
    Ok(Policy {
        aware,
        free,
        configured,
    })
}

/// The scheduled jobs' settings.
pub(super) struct Jobs {
    /// `CHECK_INTERVAL_HOURS` (None = off).
    pub check_interval: Option<Duration>,
    /// `CHECK_CRON`, checked.
    pub check_cron: Option<String>,
    /// `KEEPALIVE_URL`, or `https://$SPACE_HOST/health`.
    pub keepalive_url: Option<String>,
    /// `KEEPALIVE_MINUTES` (None = off).
    pub keepalive_interval: Option<Duration>,
}

/// `CHECK_INTERVAL_HOURS`, `CHECK_CRON`, `KEEPALIVE_MINUTES`, `SPACE_HOST`
/// and `KEEPALIVE_URL`.
pub(super) fn jobs(v: &mut Vars<'_>) -> Result<Jobs, ConfigError> {
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
    Ok(Jobs {
        check_interval: (check_hours > 0.0).then(|| Duration::from_secs_f64(check_hours * 3600.0)),
        check_cron,
        keepalive_url,
        keepalive_interval: (keepalive_minutes > 0.0)
            .then(|| Duration::from_secs_f64(keepalive_minutes * 60.0)),
    })
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

/// Whether a `BASE_URL` path segment is an API version (`v1`, `v1beta`, `v1alpha`, `v2`…).
fn is_version(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() >= 2 && b[0] == b'v' && b[1].is_ascii_digit()
}

/// Read `BASE_URL`: an http(s) URL without a trailing `/`. With no path at
/// all, `/v1beta` is added (and a note says so); with a path holding no API
/// version segment, a warning is noted and the second value is `true`.
pub(super) fn base_url(
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

/// The default `VERTEX_EXPRESS_BASE_URL`: Vertex AI express mode's global
/// endpoint for Google's models (what google-genai uses with an API key).
pub const VERTEX_EXPRESS_BASE_URL: &str =
    "https://aiplatform.googleapis.com/v1beta1/publishers/google";

/// Read `VERTEX_EXPRESS_BASE_URL`: an http(s) URL, its trailing `/` removed.
pub(super) fn vertex_base_url(v: &mut Vars<'_>) -> Result<String, ConfigError> {
    const NAME: &str = "VERTEX_EXPRESS_BASE_URL";
    let url = v.string("VERTEX_EXPRESS_BASE_URL", VERTEX_EXPRESS_BASE_URL);
    let url = url.trim_end_matches('/');
    match url.parse::<http::Uri>() {
        Ok(u)
            if u.query().is_none()
                && (url.starts_with("https://") || url.starts_with("http://")) =>
        {
            Ok(url.to_string())
        }
        _ => Err(err(
            NAME,
            "expected an http:// or https:// URL without a query",
        )),
    }
}

/// `MODEL_ALIASES`: a JSON object of client model name (or `*` pattern) →
/// Gemini model id, at most [`crate::model::MAX_ALIASES`] entries.
pub(super) fn model_aliases(v: &mut Vars<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    const WHAT: &str = "expected a JSON object of model name or pattern → Gemini model id";
    let m = match v.json("MODEL_ALIASES")? {
        None => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(err("MODEL_ALIASES", WHAT)),
    };
    if m.len() > crate::model::MAX_ALIASES {
        return Err(err(
            "MODEL_ALIASES",
            &format!("at most {} entries", crate::model::MAX_ALIASES),
        ));
    }
    let mut out = Vec::with_capacity(m.len());
    for (k, t) in m {
        match t.as_str() {
            Some(t) if crate::model::valid(t) && !k.is_empty() => out.push((k, t.to_string())),
            _ => return Err(err("MODEL_ALIASES", WHAT)),
        }
    }
    Ok(out)
}

/// `FILTERED_MODELS`: model names or `*` patterns (a JSON list or a
/// comma-separated list), at most [`crate::model::MAX_FILTERED`].
pub(super) fn filtered_models(v: &mut Vars<'_>) -> Result<Vec<String>, ConfigError> {
    let list = v.list("FILTERED_MODELS")?;
    if list.len() > crate::model::MAX_FILTERED {
        return Err(err(
            "FILTERED_MODELS",
            &format!("at most {} entries", crate::model::MAX_FILTERED),
        ));
    }
    Ok(list)
}

/// Headers `CUSTOM_HEADERS` may not set: the key header, the credential,
/// what the client library computes, and the hop-by-hop headers.
pub const FORBIDDEN_CUSTOM_HEADERS: &[&str] = &[
    "x-goog-api-key",
    "authorization",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Most `CUSTOM_HEADERS` entries accepted.
const MAX_CUSTOM_HEADERS: usize = 64;

/// `CUSTOM_HEADERS`: a JSON object of header name → string value, added to
/// every upstream call. A name that would override the key or a hop-by-hop
/// header, or that is not a valid header, is refused naming it.
pub(super) fn custom_headers(v: &mut Vars<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    const WHAT: &str = "expected a JSON object of header name → string value";
    let m = match v.json("CUSTOM_HEADERS")? {
        None => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(err("CUSTOM_HEADERS", WHAT)),
    };
    if m.len() > MAX_CUSTOM_HEADERS {
        let m = format!("at most {MAX_CUSTOM_HEADERS} headers");
        return Err(err("CUSTOM_HEADERS", &m));
    }
    let mut out = Vec::with_capacity(m.len());
    for (k, value) in m {
        let name = k.trim().to_ascii_lowercase();
        let shown: String = name.chars().take(64).collect();
        if FORBIDDEN_CUSTOM_HEADERS.contains(&name.as_str()) {
            let m = format!(
                "may not set `{shown}` (the key, credential and hop-by-hop headers are the gateway's)"
            );
            return Err(err("CUSTOM_HEADERS", &m));
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(err(
                "CUSTOM_HEADERS",
                &format!("`{shown}` is not a valid header name"),
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(err(
                "CUSTOM_HEADERS",
                &format!("the value of `{shown}` must be a string"),
            ));
        };
        if http::HeaderValue::from_str(text).is_err() {
            let m = format!("the value of `{shown}` is not a valid header value");
            return Err(err("CUSTOM_HEADERS", &m));
        }
        out.push((name, text.to_string()));
    }
    Ok(out)
}

/// The translation settings (thinking, search, code execution, safety, …).
pub(super) fn translate_options(v: &mut Vars<'_>) -> Result<Options, ConfigError> {
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

/// `PROXIES`: a list of `http://` / `https://` / `socks5://` proxy URLs (see
/// [`crate::proxy::ProxySpec::parse`]); an invalid entry, two entries for one
/// proxy, or more than [`crate::proxy::MAX_PROXIES`] are refused, naming the
/// entry with its credentials masked. `https://` ones also trust the
/// certificates of `ca_file` (`PROXY_CA_FILE`, when set): read, and refused
/// when unreadable or holding no certificate, only if one is listed.
pub(super) fn proxies(
    v: &mut Vars<'_>,
    ca_file: &str,
) -> Result<Vec<crate::proxy::ProxySpec>, ConfigError> {
    let items = v.list("PROXIES")?;
    if items.len() > crate::proxy::MAX_PROXIES {
        let m = format!("at most {} proxies", crate::proxy::MAX_PROXIES);
        return Err(err("PROXIES", &m));
    }
    let mut out: Vec<crate::proxy::ProxySpec> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = crate::proxy::ProxySpec::parse(item)
            .map_err(|e| err("PROXIES", &format!("entry {}: {e}", i + 1)))?;
        if out
            .iter()
            .any(|o| (o.kind, &o.host, o.port) == (p.kind, &p.host, p.port))
        {
            let m = format!("entry {}: `{}` is listed twice", i + 1, p.masked());
            return Err(err("PROXIES", &m));
        }
        out.push(p);
    }
    let https = out.iter().any(|p| p.kind == crate::proxy::Kind::Https);
    if https && !ca_file.is_empty() {
        let ca = crate::proxy::load_ca(ca_file).map_err(|e| err("PROXY_CA_FILE", &e))?;
        for p in &mut out {
            p.trust(&ca).map_err(|e| err("PROXY_CA_FILE", &e))?;
        }
    }
    Ok(out)
}
