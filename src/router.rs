//! Path → handler: the `/hf` prefix, telling OpenAI calls from native Gemini
//! calls, authentication, and the gateway's own small routes (`/`, `/health`,
//! `/status`, `/metrics`).
//!
//! Every route is mounted at `/` and again under `/hf`. Errors answered here
//! use the format of the API that was called: OpenAI's error object on the
//! OpenAI routes, Google's `{"error":{"code","message","status"}}` on native ones.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::{self, Body};
use crate::config::Config;
use crate::keys::{KeyPool, mask, token_matches};
use crate::status::Stats;
use crate::upstream::Upstream;

/// Everything a handler needs, shared by all connections.
pub struct App {
    /// The configuration.
    pub cfg: Config,
    /// The server's key pool.
    pub pool: KeyPool,
    /// The lite edition's backup pool (`BACKUP_API_KEYS`).
    pub backup: KeyPool,
    /// The upstream client and retry loop.
    pub upstream: Upstream,
    /// Traffic counters.
    pub stats: Stats,
    /// Set once shutdown began: new requests get 503.
    pub shutting_down: AtomicBool,
}

impl App {
    /// Build the shared state from a configuration.
    pub fn new(cfg: Config) -> App {
        let pool = KeyPool::new(cfg.api_keys.clone(), cfg.key_selection, cfg.max_failures);
        let backup = KeyPool::new(
            cfg.backup_api_keys.clone(),
            cfg.key_selection,
            cfg.max_failures,
        );
        let upstream = Upstream::new(
            crate::upstream::build_client(),
            &cfg.base_url,
            cfg.time_out,
            cfg.cooldown,
            cfg.max_retries,
        );
        App {
            cfg,
            pool,
            backup,
            upstream,
            stats: Stats::default(),
            shutting_down: AtomicBool::new(false),
        }
    }
}

/// Which error format a route answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Google's `{"error":{"code","message","status"}}`.
    Google,
}

/// What the request log line should say besides method, path and status.
#[derive(Clone, Debug, Default)]
pub struct LogInfo {
    /// Model the request was for.
    pub model: String,
    /// Masked key that served it.
    pub key: String,
    /// Route label for metrics.
    pub route: &'static str,
}

/// Attach log details to a response (read and removed by the server).
pub fn with_log(
    mut res: Response<Body>,
    route: &'static str,
    model: &str,
    key: &str,
) -> Response<Body> {
    res.extensions_mut().insert(LogInfo {
        model: model.to_string(),
        key: key.to_string(),
        route,
    });
    res
}

/// An error response in the format of `api`.
pub fn error(api: Api, status: StatusCode, message: &str) -> Response<Body> {
    match api {
        Api::OpenAi => {
            let (kind, code) = crate::openai::error::kind_for_status(status.as_u16());
            body::json(
                status,
                &crate::openai::error::error_body(message, kind, code, None),
            )
        }
        Api::Google => body::json(status, &google_error(status, message)),
    }
}

/// Google's error envelope for the gateway's own errors.
pub fn google_error(status: StatusCode, message: &str) -> serde_json::Value {
    let s = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        408 | 504 => "DEADLINE_EXCEEDED",
        413 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status.as_u16(), "message": message, "status": s}})
}

/// The path without the `/hf` mount prefix.
pub fn strip_mount(path: &str) -> &str {
    match path.strip_prefix("/hf") {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// `text` (a request path, or a model name) as it may be logged: the id of
/// `/status/keys/{id}/reset` (unless an index), any `/`- or `:`-separated
/// part that is a key of the pool or the backup pool (also percent-encoded),
/// and any `AIza…` key inside a part are masked. Borrowed, after one pass
/// and no allocation, when nothing needs masking (every ordinary request).
pub fn loggable<'a>(app: &App, text: &'a str) -> Cow<'a, str> {
    let mut out = String::new();
    let mut changed = false;
    let mut copied = 0;
    let mut offset = 0;
    let (mut before, mut last) = ("", "");
    for part in text.split(['/', ':']) {
        let reset_id = before == "status" && last == "keys";
        if let Some(masked) = masked_part(app, part, reset_id) {
            out.push_str(&text[copied..offset]);
            out.push_str(&masked);
            copied = offset + part.len();
            changed = true;
        }
        offset += part.len() + 1;
        (before, last) = (last, part);
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The masked form of one part of a logged path, if it must be masked (see [`loggable`]).
fn masked_part(app: &App, part: &str, reset_id: bool) -> Option<String> {
    if part.is_empty() || (reset_id && part.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let decoded = if part.contains('%') {
        Cow::Owned(percent_decode(part))
    } else {
        Cow::Borrowed(part)
    };
    for pool in [&app.pool, &app.backup] {
        if let Some(i) = pool.position(&decoded) {
            return Some(pool.masked(i).to_string());
        }
    }
    if reset_id {
        // A masked form or anything else: shown masked too.
        return Some(match app.pool.find(&decoded) {
            Some(i) => app.pool.masked(i).to_string(),
            None => mask(&decoded),
        });
    }
    if decoded.contains("AIza") {
        let scrubbed = crate::openai::error::scrub(&decoded);
        if scrubbed != decoded {
            return Some(scrubbed);
        }
    }
    None
}

/// The bearer token of a request, if any.
pub fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A native-style credential: `x-goog-api-key` header or `?key=`.
pub fn native_credential<B>(req: &Request<B>) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.trim().to_string());
    }
    query_param(req.uri().query().unwrap_or(""), "key")
}

/// The first value of `name` in a query string (percent-decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decode `%XX` escapes and `+` (lossy on invalid UTF-8).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the OpenAI-style bearer token is allowed (or the gateway is open).
pub fn openai_authorized<B>(app: &App, req: &Request<B>) -> bool {
    if app.cfg.allowed_tokens.is_empty() && (app.cfg.allow_anonymous || app.cfg.demo) {
        return true;
    }
    bearer(req).is_some_and(|t| token_matches(&app.cfg.allowed_tokens, t))
}

/// Who a credential is, as far as the admin routes are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The admin token (or the gateway is open and has no admin token).
    Admin,
    /// One of `ALLOWED_TOKENS` that is not the admin token.
    Client,
    /// No credential, or one the gateway does not know.
    Unknown,
}

/// The role of `credential`. The admin token is `AUTH_TOKEN`, or, when that
/// is unset, the first entry of `ALLOWED_TOKENS` only (as in gemini-balance);
/// a gateway run open (`ALLOW_ANONYMOUS` or demo, no tokens) has no admin
/// token, and everyone is admin.
pub fn role(app: &App, credential: Option<&str>) -> Role {
    let admins = app.cfg.admin_tokens();
    if admins.is_empty() && (app.cfg.allow_anonymous || app.cfg.demo) {
        return Role::Admin;
    }
    match credential {
        Some(c) if token_matches(&admins, c) => Role::Admin,
        Some(c) if token_matches(&app.cfg.allowed_tokens, c) => Role::Client,
        _ => Role::Unknown,
    }
}

/// Whether the admin token is presented as the bearer token (for `/status`,
/// `/verify` and `/metrics`).
pub fn admin_authorized<B>(app: &App, req: &Request<B>) -> bool {
    role(app, bearer(req)) == Role::Admin
}

/// `None` for the admin; else the answer for everyone else: 401 without a
/// known token, 403 for a client token that is not the admin token.
fn admin_only<B>(app: &App, req: &Request<B>) -> Option<Response<Body>> {
    match role(app, bearer(req)) {
        Role::Admin => None,
        Role::Client => Some(not_admin(Api::OpenAi)),
        Role::Unknown => Some(unauthorized(Api::OpenAi)),
    }
}

/// 403 for a valid client token on an admin-only route or action.
pub fn not_admin(api: Api) -> Response<Body> {
    error(
        api,
        StatusCode::FORBIDDEN,
        "This token is not the admin token: admin routes take AUTH_TOKEN, or the first of ALLOWED_TOKENS when AUTH_TOKEN is unset.",
    )
}

/// The id in `/status/keys/{id}/reset` (percent-decoded), if the path is one
/// and names a key.
fn reset_target(path: &str) -> Option<String> {
    let id = path
        .strip_prefix("/status/keys/")?
        .strip_suffix("/reset")
        .filter(|id| !id.is_empty())?;
    Some(percent_decode(id))
}

fn unauthorized(api: Api) -> Response<Body> {
    let mut res = error(
        api,
        StatusCode::UNAUTHORIZED,
        "Missing or invalid token: send `Authorization: Bearer <token>` with one of ALLOWED_TOKENS.",
    );
    if api == Api::OpenAi {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

fn method_not_allowed(api: Api, allow: &'static str) -> Response<Body> {
    let mut res = error(
        api,
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method not allowed; use {allow}."),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// Route one request (CORS, logging and the panic guard are the server's).
pub async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = strip_mount(req.uri().path()).to_string();
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;

    // The gateway's own routes.
    match path.as_str() {
        "/" => {
            return if is_get {
                with_log(
                    body::text(StatusCode::OK, "gemini-balance is running\n"),
                    "root",
                    "",
                    "",
                )
            } else {
                method_not_allowed(Api::OpenAi, "GET, HEAD")
            };
        }
        "/health" | "/healthz" => {
            return if is_get {
                with_log(health(&app), "health", "", "")
            } else {
                method_not_allowed(Api::OpenAi, "GET, HEAD")
            };
        }
        _ => {}
    }

    // Native Gemini routes: /v1beta/..., /gemini/v1beta/..., /gemini/v1/...,
    // and /v1/models... when the credential or the `:action` says native.
    if let Some((version, rest)) = native_route(&path, &req) {
        return crate::gemini::native(app, req, version, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/openai/v1") {
        // Deleting through Gemini's OpenAI layer deletes what the pool's keys
        // hold: the admin's alone (as on the native routes).
        if method == Method::DELETE
            && role(&app, bearer(&req)) != Role::Admin
            && openai_authorized(&app, &req)
        {
            return with_log(not_admin(Api::OpenAi), "openai_compat", "", "");
        }
        let rest = rest.to_string();
        return crate::gemini::openai_compat(app, req, rest).await;
    }

    match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" | "/chat" | "/v1/chat" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            crate::handlers::chat(app, req).await
        }
        "/v1/embeddings" | "/embeddings" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            crate::handlers::embeddings(app, req).await
        }
        "/v1/models" | "/models" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            crate::handlers::models(app, None).await
        }
        p if p.starts_with("/v1/models/") => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            let id = percent_decode(&p["/v1/models/".len()..]);
            crate::handlers::models(app, Some(id)).await
        }
        "/verify" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            crate::gemini::verify(app, req).await
        }
        "/status" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            with_log(status(&app), "status", "", "")
        }
        "/status/verify" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            let report = crate::scheduler::verify_all(&app, false).await;
            body::json(StatusCode::OK, &report)
        }
        p if reset_target(p).is_some() => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            let id = reset_target(p).unwrap_or_default();
            match app.pool.find(&id) {
                Some(i) => {
                    app.pool.reset(i);
                    crate::info!("key {} reset by admin", app.pool.masked(i));
                    body::json(StatusCode::OK, &json!({"reset": app.pool.masked(i)}))
                }
                None => error(Api::OpenAi, StatusCode::NOT_FOUND, "No such key."),
            }
        }
        "/dashboard" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            with_log(crate::dashboard::page(), "dashboard", "", "")
        }
        "/dashboard.css" | "/dashboard.js" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            with_log(crate::dashboard::asset(&path), "dashboard", "", "")
        }
        "/metrics" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !app.cfg.metrics_public
                && let Some(refused) = admin_only(&app, &req)
            {
                return refused;
            }
            let mut res = Response::new(body::full(app.stats.prometheus(&app.pool)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            with_log(res, "metrics", "", "")
        }
        _ => error(
            Api::OpenAi,
            StatusCode::NOT_FOUND,
            &format!("Unknown route {} {}.", method, truncate(&path, 200)),
        ),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Which native route a path is: `(version, rest)` where `rest` starts with
/// `/models...` (or is another resource path like `/files`).
fn native_route<'a, B>(path: &'a str, req: &Request<B>) -> Option<(&'static str, &'a str)> {
    for (prefix, version) in [
        ("/gemini/v1beta", "v1beta"),
        ("/v1beta", "v1beta"),
        ("/gemini/v1", "v1"),
    ] {
        if let Some(rest) = path.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some((version, rest));
        }
    }
    // `/v1/models...` is OpenAI's unless the call is plainly native: a
    // `:action` suffix, or a Google credential and no bearer token.
    if let Some(rest) = path.strip_prefix("/v1")
        && rest.starts_with("/models")
    {
        let action = rest.contains(':');
        let native_cred = native_credential(req).is_some() && bearer(req).is_none();
        if action || native_cred {
            return Some(("v1", rest));
        }
    }
    None
}

fn health(app: &App) -> Response<Body> {
    let c = app.pool.counts();
    body::json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            // "demo": answers come from the built-in fake upstream, not Google.
            "mode": if app.cfg.demo { "demo" } else { "gateway" },
            "version": crate::VERSION,
            "uptime_seconds": app.stats.uptime(),
            "keys": {"total": app.pool.len(), "active": c.active, "cooling": c.cooling, "resting": c.resting, "disabled": c.disabled},
        }),
    )
}

fn status(app: &App) -> Response<Body> {
    let c = app.pool.counts();
    body::json(
        StatusCode::OK,
        &json!({
            "version": crate::VERSION,
            "uptime_seconds": app.stats.uptime(),
            "keys": app.pool.snapshot(),
            "key_counts": {"total": app.pool.len(), "active": c.active, "cooling": c.cooling, "resting": c.resting, "disabled": c.disabled},
            "traffic": app.stats.snapshot(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_hf_mount() {
        assert_eq!(strip_mount("/hf/v1/models"), "/v1/models");
        assert_eq!(strip_mount("/hf"), "/");
        assert_eq!(strip_mount("/hfx"), "/hfx");
        assert_eq!(strip_mount("/v1/models"), "/v1/models");
    }

    #[test]
    fn keys_in_logged_paths_are_masked() {
        // Built from pieces so that no key-shaped string sits in the source.
        let google = concat!("AIza", "SyA1234567890abcdefghijklmnopqrs_-9");
        let other = concat!("AIza", "SyB1234567890abcdefghijklmnopqrs_-8");
        let vars: std::collections::HashMap<String, String> = [
            ("API_KEYS", format!("[\"{google}\",\"plain-pool-key-42\"]")),
            ("BACKUP_API_KEYS", "backup-key-0000077".to_string()),
            ("ALLOWED_TOKENS", "sk-x".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let app = App::new(Config::from_map(&vars).expect("config"));
        let m = |p: &str| loggable(&app, p).into_owned();
        assert!(matches!(
            loggable(&app, "/v1beta/models/gemini-2.5-flash:generateContent"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            loggable(&app, "gemini-2.5-flash"),
            Cow::Borrowed(_)
        ));
        assert_eq!(m("/status/keys/3/reset"), "/status/keys/3/reset");
        assert_eq!(
            m(&format!("/status/keys/{google}/reset")),
            "/status/keys/AIza…s_-9/reset"
        );
        assert_eq!(
            m("/hf/status/keys/plain-pool-key-42/reset"),
            "/hf/status/keys/plai…y-42/reset"
        );
        assert_eq!(
            m("/status/keys/plain%2Dpool-key-42/reset"),
            "/status/keys/plai…y-42/reset"
        );
        assert_eq!(
            m("/status/keys/not-a-key-at-all/reset"),
            "/status/keys/not-…-all/reset"
        );
        assert_eq!(
            m("/v1beta/files/backup-key-0000077"),
            "/v1beta/files/back…0077"
        );
        assert_eq!(
            m(&format!("/v1beta/models/{other}:generateContent")),
            "/v1beta/models/AIza…s_-8:generateContent"
        );
        assert_eq!(m(&format!("x{other}y/z")), "xAIza…s_-8y/z");
        assert_eq!(
            m("plain-pool-key-42"),
            "plai…y-42",
            "a key given as the model"
        );
        assert_eq!(m("/plain-pool-key-4"), "/plain-pool-key-4");
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(
            query_param("a=1&key=ab%2Bc&x", "key").as_deref(),
            Some("ab+c")
        );
        assert_eq!(query_param("alt=sse", "key"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
