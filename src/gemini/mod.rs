//! The native side: Gemini API calls passed through byte for byte
//! (`/v1beta/...`, `/gemini/v1beta/...`, `/gemini/v1/...`, `/v1/models/...:action`),
//! Gemini's own OpenAI-compatible endpoint (`/openai/v1/...`), and `/verify`.
//!
//! Pass-through means: the request body goes upstream unchanged, the client's
//! credential is replaced by a pool key (`x-goog-api-key`, never in the URL),
//! `?key=` is removed and other query parameters kept, hop-by-hop headers are
//! dropped both ways, and the answer goes back unchanged except that the pool
//! key is masked in it: a stream as it arrives, a plain answer once read
//! whole within `TIME_OUT` (see the `forward` module).

pub mod fetch;
mod forward;
pub mod gzip;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::body::{self, Body, ChannelBody, ReadError};
use crate::keys::{KeyPool, Outcome, mask, token_matches};
use crate::router::{self, Api, App, with_log};
use crate::upstream::{Auth, Call, Failure};
use forward::{Outgoing, forward_stream, read_plain, take_accept_encoding};

/// Request headers forwarded upstream (everything else — credentials,
/// cookies, hop-by-hop — stays here).
const FORWARD_REQUEST: &[&str] = &[
    "content-type",
    "accept",
    "accept-encoding",
    "x-goog-api-client",
    "x-goog-user-project",
    "x-server-timeout",
    "user-agent",
];

/// Response headers never passed back (hop-by-hop, or set by us).
const DROP_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "alt-svc",
    "server",
    "via",
    "x-goog-api-key",
];

fn gerr(status: StatusCode, message: &str) -> Response<Body> {
    router::error(Api::Google, status, message)
}

/// How many calls each caller's own key list has made (by a hash of the
/// list; forgotten wholesale past [`TURNS_CAP`] lists, so it cannot grow).
static CLIENT_TURNS: std::sync::Mutex<Option<HashMap<u64, usize>>> = std::sync::Mutex::new(None);
const TURNS_CAP: usize = 10_000;

/// The next turn for the caller's key list `cred` (0, 1, 2, … per list).
fn client_turn(cred: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cred.hash(&mut h);
    let id = h.finish();
    let mut guard = CLIENT_TURNS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() >= TURNS_CAP && !map.contains_key(&id) {
        map.clear();
    }
    let n = map.entry(id).or_insert(0);
    let turn = *n;
    *n = n.wrapping_add(1);
    turn
}

/// Which keys a native call uses, decided from the caller's credential.
enum Keys {
    /// The server's pool (the caller presented an allowed token).
    Server,
    /// The backup pool (lite rules: a trusted single client key).
    Backup,
    /// The caller's own keys (`CLIENT_KEYS_ENABLED`).
    Client(KeyPool),
}

/// Decide who may call and with which keys (see [`caller_keys`]). A `DELETE`
/// with the shared keys (the pool or the backup pool) deletes what every
/// caller's files, caches and tuned models share, so it takes the admin token
/// (`AUTH_TOKEN`, or the first of `ALLOWED_TOKENS`): anyone else gets 403. A
/// `DELETE` with the caller's own keys (`CLIENT_KEYS_ENABLED`) is theirs.
fn authorize<B>(app: &App, req: &Request<B>) -> Result<Keys, Box<Response<Body>>> {
    if req.method() != Method::DELETE {
        return caller_keys(app, req);
    }
    let cred = router::native_credential(req).or_else(|| router::bearer(req).map(str::to_string));
    if router::role(app, cred.as_deref().filter(|c| !c.is_empty())) == router::Role::Admin {
        return Ok(Keys::Server);
    }
    match caller_keys(app, req)? {
        own @ Keys::Client(_) => Ok(own),
        Keys::Server | Keys::Backup => Err(Box::new(gerr(
            StatusCode::FORBIDDEN,
            "Only the admin token may delete shared resources (files, cached contents, tuned models, …) held by the gateway's keys: AUTH_TOKEN, or the first of ALLOWED_TOKENS when AUTH_TOKEN is unset.",
        ))),
    }
}

/// Who may call and with which keys: token → server pool; else client keys
/// when enabled; else 401/403.
fn caller_keys<B>(app: &App, req: &Request<B>) -> Result<Keys, Box<Response<Body>>> {
    let cred = router::native_credential(req).or_else(|| router::bearer(req).map(str::to_string));
    let open = app.cfg.allowed_tokens.is_empty() && (app.cfg.allow_anonymous || app.cfg.demo);
    let Some(cred) = cred.filter(|c| !c.is_empty()) else {
        return if open {
            Ok(Keys::Server)
        } else {
            Err(Box::new(gerr(
                StatusCode::UNAUTHORIZED,
                "Missing credential: pass one of ALLOWED_TOKENS as `x-goog-api-key`, `?key=` or `Authorization: Bearer`.",
            )))
        };
    };
    if token_matches(&app.cfg.allowed_tokens, &cred) {
        return Ok(Keys::Server);
    }
    if app.cfg.client_keys_enabled {
        let mut keys = crate::config::parse_list(&cred).unwrap_or_default();
        // The lite edition's rule: a single key that is trusted may use the backup pool.
        if keys.len() == 1
            && !app.backup.is_empty()
            && token_matches(&app.cfg.trusted_api_keys, &keys[0])
        {
            return Ok(Keys::Backup);
        }
        if !keys.is_empty() {
            // Each call with the same list starts one key further on, so a
            // caller's calls spread over its keys (the pool is built per call).
            let turn = client_turn(&cred) % keys.len();
            keys.rotate_left(turn);
            return Ok(Keys::Client(KeyPool::new(
                keys,
                crate::keys::Selection::RoundRobin,
                u32::MAX,
            )));
        }
    }
    if open {
        return Ok(Keys::Server);
    }
    Err(Box::new(gerr(
        StatusCode::FORBIDDEN,
        "The credential is not one of ALLOWED_TOKENS.",
    )))
}

/// Whether every byte of a native path is safe to forward (no traversal,
/// no escapes, no query or fragment smuggled in).
fn safe_path(rest: &str) -> bool {
    !rest.contains("..")
        && rest.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b':' | b'@')
        })
}

/// The query string without `key=` (other parameters kept as sent).
fn query_without_key(query: Option<&str>) -> String {
    let Some(q) = query else { return String::new() };
    let kept: Vec<&str> = q
        .split('&')
        // Names compare decoded: `%6Bey=` is `key=` to Google too.
        .filter(|p| {
            !p.is_empty() && router::percent_decode(p.split('=').next().unwrap_or("")) != "key"
        })
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// The model a native path is about: `/models/{m}:action`, `/models/{m}`,
/// `/tunedModels/{m}/...` (the segment up to `:` or `/`).
fn model_of(rest: &str) -> &str {
    let Some(m) = rest
        .strip_prefix("/models/")
        .or_else(|| rest.strip_prefix("/tunedModels/"))
    else {
        return "";
    };
    m.split([':', '/']).next().unwrap_or("")
}

/// A native call: `version` is `v1beta` or `v1`, `rest` the path after it.
pub async fn native(
    app: Arc<App>,
    req: Request<Incoming>,
    version: &'static str,
    rest: &str,
) -> Response<Body> {
    let keys = match authorize(&app, &req) {
        Ok(k) => k,
        Err(res) => return with_log(*res, "native", "", ""),
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    if !safe_path(rest) {
        return with_log(
            gerr(
                StatusCode::BAD_REQUEST,
                "Invalid characters in the request path.",
            ),
            "native",
            "",
            "",
        );
    }
    let model = model_of(rest);
    if !model.is_empty() && !crate::model::valid(model) {
        return with_log(
            gerr(
                StatusCode::BAD_REQUEST,
                &crate::model::invalid_message(model),
            ),
            "native",
            "",
            "",
        );
    }
    let model = model.to_string();
    let action = rest.rsplit_once(':').map(|(_, a)| a).unwrap_or("");
    let method = req.method().clone();
    let query = query_without_key(req.uri().query());
    let sse = query.contains("alt=sse");
    let streaming = action == "streamGenerateContent";
    let list_models = method == Method::GET && rest == "/models";

    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(4);
    // One pass over what the client sent (cheaper than a lookup per name).
    for (k, v) in req.headers() {
        if FORWARD_REQUEST.contains(&k.as_str()) {
            headers.push((k.clone(), v.clone()));
        }
    }
    let gzip_out = streaming && take_accept_encoding(&mut headers);
    let body = if method == Method::GET || method == Method::HEAD {
        Bytes::new()
    } else {
        match read_raw(&app, req, Api::Google).await {
            Ok(b) => b,
            Err(res) => return with_log(*res, "native", &model, ""),
        }
    };
    // A derived name (`…-search`, `…-thinking`, `…-non-thinking`) that the
    // native model list offers is served by its base model, with the tool or
    // thinking budget it stands for; every other call goes as it came.
    let derived = if app.cfg.native_derived_models {
        derive(&app.cfg.translate, &model)
    } else {
        None
    };
    let (rest, body, model) = match derived {
        Some(d) => {
            let rest = rest.replacen(
                &format!("/models/{model}"),
                &format!("/models/{}", d.base),
                1,
            );
            let body = if matches!(action, "generateContent" | "streamGenerateContent") {
                d.apply(&body)
            } else {
                body
            };
            (rest, body, d.base)
        }
        None => (rest.to_string(), body, model),
    };
    let tail = crate::upstream::join(&rest, &query);
    let path = if version == "v1" {
        app.upstream.path_v1(&tail)
    } else {
        app.upstream.path(&tail)
    };
    let up = Call {
        method,
        path,
        body,
        model: &model,
        auth: Auth::GoogHeader,
        headers,
    };
    let pool: &KeyPool = match &keys {
        Keys::Server => &app.pool,
        Keys::Backup => &app.backup,
        Keys::Client(p) => p,
    };
    let own = matches!(keys, Keys::Client(_));
    let started = Instant::now();
    let mut answer = match app.upstream.call(pool, &up).await {
        Ok(a) => a,
        Err(f) => {
            return with_log(native_failure(&app, f, &model, own), "native", &model, "");
        }
    };
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);

    if list_models && app.cfg.native_derived_models {
        let masked = pool.masked(answer.key).to_string();
        return with_log(
            derived_model_list(&app, answer.response).await,
            "native",
            "",
            &masked,
        );
    }
    let idle = app.cfg.stream_idle_timeout;
    // A stream's first frame is read before anything reaches the client: a
    // stream that breaks, stays silent or ends empty before it is retried on
    // another key within the same MAX_RETRIES budget.
    let mut tried = vec![answer.key];
    let mut used = answer.attempts;
    let (parts, out_body) = loop {
        if !streaming {
            match read_plain(&app, answer.response, pool.key(answer.key)).await {
                Ok(done) => break done,
                Err((status, message, why)) => {
                    let masked = pool.masked(answer.key).to_string();
                    pool.report(answer.key, &model, &Outcome::Transient(why.into()));
                    app.stats.error(&model, &masked, status.as_u16(), why);
                    return with_log(gerr(status, message), "native", &model, &masked);
                }
            }
        }
        let (mut parts, mut incoming) = answer.response.into_parts();
        let first = tokio::time::timeout(idle, incoming.frame()).await;
        let (outcome, status, message) = match first {
            Ok(Some(Ok(_))) => {
                let out = Outgoing::new(pool.key(answer.key), &mut parts.headers, gzip_out, false);
                break (parts, forward_stream(first, incoming, idle, sse, out));
            }
            Ok(None) => (
                "stream ended empty",
                StatusCode::BAD_GATEWAY,
                "Gemini's stream ended before its first byte on every key tried.",
            ),
            Ok(Some(Err(_))) => (
                "stream broke before its first byte",
                StatusCode::BAD_GATEWAY,
                "Gemini's stream broke before its first byte on every key tried.",
            ),
            Err(_) => (
                "stream silent before its first byte",
                StatusCode::GATEWAY_TIMEOUT,
                "Gemini's stream stayed silent for longer than STREAM_IDLE_TIMEOUT before its first byte.",
            ),
        };
        crate::debug!(
            "native stream on key {} failed before its first byte; trying another key",
            pool.masked(answer.key)
        );
        pool.report(answer.key, &model, &Outcome::Transient(outcome.into()));
        let budget = app.upstream.attempts().saturating_sub(used);
        let retried = if budget == 0 {
            None
        } else {
            Some(app.upstream.call_with(pool, &up, &mut tried, budget).await)
        };
        match retried {
            Some(Ok(a)) => {
                app.stats.retried(a.attempts);
                used += a.attempts;
                answer = a;
            }
            // No budget left, or no other key to try: the stream's own
            // failure is the answer.
            None | Some(Err(Failure::Unavailable(_))) => {
                let masked = pool.masked(answer.key).to_string();
                return with_log(gerr(status, message), "native", &model, &masked);
            }
            Some(Err(f)) => {
                return with_log(native_failure(&app, f, &model, own), "native", &model, "");
            }
        }
    };
    let masked = pool.masked(answer.key).to_string();
    let mut res = Response::new(out_body);
    *res.status_mut() = parts.status;
    *res.headers_mut() = response_headers(parts.headers);
    with_log(res, "native", &model, &masked)
}

/// What a derived model name stands for (see [`derive`]).
#[derive(Debug, PartialEq)]
struct Derived {
    /// The real model.
    base: String,
    /// `-search`: add the Google Search tool.
    search: bool,
    /// `-thinking` → `Some(budget)`, `-non-thinking` → `Some(0)`.
    thinking_budget: Option<i64>,
}

/// Read `model` as a derived name the model list offers (the base must be in
/// `SEARCH_MODELS` for `-search`, in `THINKING_MODELS` for the thinking ones).
fn derive(o: &crate::openai::Options, model: &str) -> Option<Derived> {
    let listed =
        |list: &[String], id: &str| list.iter().any(|m| crate::openai::bare_model(m) == id);
    if let Some(base) = model.strip_suffix("-search") {
        return listed(&o.search_models, base).then(|| Derived {
            base: base.to_string(),
            search: true,
            thinking_budget: None,
        });
    }
    let (base, budget) = if let Some(b) = model.strip_suffix("-non-thinking") {
        (b, 0)
    } else if let Some(b) = model.strip_suffix("-thinking") {
        let mapped = o.thinking_budget_map.iter().find(|(m, _)| m == b);
        (b, mapped.map_or(-1, |(_, n)| *n))
    } else {
        return None;
    };
    listed(&o.thinking_models, base).then(|| Derived {
        base: base.to_string(),
        search: false,
        thinking_budget: Some(budget),
    })
}

impl Derived {
    /// The request body with the derived setting added (in whichever of
    /// camelCase or snake_case the body already uses). What the caller set
    /// itself wins; a body that is not a JSON object goes unchanged.
    fn apply(&self, body: &Bytes) -> Bytes {
        let Ok(Value::Object(mut root)) = serde_json::from_slice::<Value>(body) else {
            return body.clone();
        };
        let pick =
            |m: &serde_json::Map<String, Value>, camel: &'static str, snake: &'static str| {
                if m.contains_key(snake) && !m.contains_key(camel) {
                    snake
                } else {
                    camel
                }
            };
        if self.search {
            let tools = root.entry("tools").or_insert_with(|| json!([]));
            if let Some(list) = tools.as_array_mut() {
                let has = list
                    .iter()
                    .any(|t| t.get("googleSearch").is_some() || t.get("google_search").is_some());
                if !has {
                    list.push(json!({"googleSearch": {}}));
                }
            }
        }
        if let Some(budget) = self.thinking_budget {
            let g = pick(&root, "generationConfig", "generation_config");
            let gen_cfg = root.entry(g).or_insert_with(|| json!({}));
            if let Some(gm) = gen_cfg.as_object_mut() {
                let t = pick(gm, "thinkingConfig", "thinking_config");
                let tc = gm.entry(t).or_insert_with(|| json!({}));
                if let Some(tm) = tc.as_object_mut()
                    && !tm.contains_key("thinkingBudget")
                    && !tm.contains_key("thinking_budget")
                {
                    tm.insert("thinkingBudget".into(), json!(budget));
                }
            }
        }
        Bytes::from(serde_json::to_vec(&Value::Object(root)).unwrap_or_default())
    }
}

/// Read a request body as raw bytes (never re-serialised), bounded by
/// `MAX_BODY_BYTES` and `CLIENT_TIMEOUT`; failures answer in `api`'s format.
async fn read_raw(
    app: &App,
    req: Request<Incoming>,
    api: Api,
) -> Result<Bytes, Box<Response<Body>>> {
    let limit = app.cfg.max_body_bytes;
    let read = tokio::time::timeout(
        app.cfg.client_timeout,
        body::read_limited(req.into_body(), limit),
    );
    let (status, message) = match read.await {
        Ok(Ok(b)) => return Ok(b),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.".to_string(),
        ),
        Ok(Err(ReadError::TooLarge)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than MAX_BODY_BYTES ({limit} bytes)."),
        ),
        Ok(Err(ReadError::Io(e))) => (
            StatusCode::BAD_REQUEST,
            format!("Could not read the request body: {e}"),
        ),
    };
    Err(Box::new(router::error(api, status, &message)))
}

/// The upstream response headers to pass on: all but hop-by-hop ones (and
/// the others in `DROP_RESPONSE`), kept in place rather than copied.
fn response_headers(mut headers: HeaderMap) -> HeaderMap {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| DROP_RESPONSE.contains(&k.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    headers
}

/// The model list with the derived `-search`/`-thinking` variants added (`NATIVE_DERIVED_MODELS`).
async fn derived_model_list(app: &App, res: Response<Incoming>) -> Response<Body> {
    let limit = crate::handlers::ANSWER_LIMIT;
    let Ok((mut parts, bytes)) = crate::handlers::read_whole(app, res).await else {
        return gerr(
            StatusCode::BAD_GATEWAY,
            "Could not read Gemini's model list.",
        );
    };
    let bytes = gzip::decode_answer(&mut parts.headers, bytes, limit);
    let Ok(mut page) = serde_json::from_slice::<Value>(&bytes) else {
        return gerr(
            StatusCode::BAD_GATEWAY,
            "Gemini's model list is not valid JSON.",
        );
    };
    if let Some(models) = page.get_mut("models").and_then(Value::as_array_mut) {
        let o = &app.cfg.translate;
        let listed =
            |list: &[String], id: &str| list.iter().any(|m| crate::openai::bare_model(m) == id);
        let mut out = Vec::with_capacity(models.len());
        for m in models.drain(..) {
            let bare =
                crate::openai::bare_model(m.get("name").and_then(Value::as_str).unwrap_or(""))
                    .to_string();
            let mut variants = Vec::new();
            if !bare.is_empty() && listed(&o.search_models, &bare) {
                variants.push("-search");
            }
            if !bare.is_empty() && listed(&o.thinking_models, &bare) {
                variants.extend(["-thinking", "-non-thinking"]);
            }
            let derived: Vec<Value> = variants
                .into_iter()
                .map(|suffix| {
                    let mut d = m.clone();
                    d["name"] = json!(format!("models/{bare}{suffix}"));
                    d
                })
                .collect();
            out.push(m);
            out.extend(derived);
        }
        *models = out;
    }
    body::json(StatusCode::OK, &page)
}

/// Turn a failed call into a native answer: upstream errors pass through as
/// they came; the gateway's own conditions use Google's error format. A
/// rejected *pool* key is the gateway's problem (503); a rejected key the
/// caller brought (`own_keys`) is the caller's, so Google's answer passes through.
fn native_failure(app: &App, f: Failure, model: &str, own_keys: bool) -> Response<Body> {
    match f {
        Failure::Upstream {
            status,
            headers,
            body,
            outcome,
            key,
        } => {
            let msg =
                crate::openai::error::from_gemini(status.as_u16(), &body).body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
            app.stats.error(model, &key, status.as_u16(), &msg);
            match outcome {
                Outcome::KeyInvalid(m) if !own_keys => gerr(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "Every Gemini key tried was rejected by Google ({m}). The gateway's keys need attention."
                    ),
                ),
                Outcome::Region(m) => gerr(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{m} Hint: Google refuses calls from this server's region; run the gateway from a supported region."
                    ),
                ),
                _ if app.cfg.not_found_hint(status.as_u16()).is_some() => {
                    let hint = app.cfg.not_found_hint(404).unwrap_or_default();
                    gerr(StatusCode::NOT_FOUND, &format!("{msg} {hint}"))
                }
                _ => {
                    let scrubbed = crate::openai::error::scrub(&String::from_utf8_lossy(&body));
                    let mut res = Response::new(body::full(scrubbed));
                    *res.status_mut() = status;
                    *res.headers_mut() = response_headers(headers);
                    res.headers_mut().remove(header::CONTENT_LENGTH);
                    res.headers_mut().remove(header::CONTENT_ENCODING);
                    res
                }
            }
        }
        Failure::Network(m) => gerr(
            StatusCode::BAD_GATEWAY,
            &format!("Could not reach Gemini: {m}"),
        ),
        Failure::Timeout => gerr(
            StatusCode::GATEWAY_TIMEOUT,
            "Gemini did not answer within TIME_OUT.",
        ),
        Failure::Cooling(d, c) => {
            let mut res = gerr(
                StatusCode::TOO_MANY_REQUESTS,
                &crate::handlers::no_key_message(&c, Some(d)),
            );
            crate::handlers::set_retry_after(&mut res, d);
            res
        }
        Failure::Unavailable(c) => gerr(
            StatusCode::SERVICE_UNAVAILABLE,
            &crate::handlers::no_key_message(&c, None),
        ),
    }
}

/// `/openai/v1/...`: Gemini's own OpenAI-compatible endpoint, with a pool key as Bearer.
pub async fn openai_compat(app: Arc<App>, req: Request<Incoming>, rest: String) -> Response<Body> {
    if !router::openai_authorized(&app, &req) {
        return crate::handlers::oai_error(
            StatusCode::UNAUTHORIZED,
            "Missing or invalid token.",
            Some("invalid_api_key"),
            None,
        );
    }
    if !safe_path(&rest) || !rest.starts_with('/') {
        return crate::handlers::oai_error(StatusCode::NOT_FOUND, "Unknown route.", None, None);
    }
    let method = req.method().clone();
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for name in FORWARD_REQUEST {
        for v in req.headers().get_all(*name) {
            headers.push((HeaderName::from_static(name), v.clone()));
        }
    }
    let gzip_out = take_accept_encoding(&mut headers);
    let query = query_without_key(req.uri().query());
    let body = if method == Method::GET || method == Method::HEAD {
        Bytes::new()
    } else {
        // The bytes go upstream as sent; they are parsed only to learn the model.
        match read_raw(&app, req, Api::OpenAi).await {
            Ok(b) => b,
            Err(res) => return with_log(*res, "openai_compat", "", ""),
        }
    };
    /// The one field read from the body (the rest is skipped, not built).
    #[derive(serde::Deserialize)]
    struct ModelOnly<'a> {
        #[serde(borrow, default)]
        model: Option<std::borrow::Cow<'a, str>>,
    }
    let model = serde_json::from_slice::<ModelOnly>(&body)
        .ok()
        .and_then(|v| v.model)
        .map(|m| crate::openai::bare_model(&m).to_string())
        .unwrap_or_default();
    if !model.is_empty() && !crate::model::valid(&model) {
        return with_log(
            crate::handlers::oai_error(
                StatusCode::BAD_REQUEST,
                &crate::model::invalid_message(&model),
                Some("invalid_model"),
                Some("model"),
            ),
            "openai_compat",
            "",
            "",
        );
    }
    let up = Call {
        method,
        path: app.upstream.path(&format!("/openai{rest}{query}")),
        body,
        model: &model,
        auth: Auth::Bearer,
        headers,
    };
    match app.upstream.call(&app.pool, &up).await {
        Ok(answer) => {
            let masked = app.pool.masked(answer.key).to_string();
            let (mut parts, mut incoming) = answer.response.into_parts();
            // Streamed or not, the answer is forwarded as it arrives under the
            // idle timeout, with the pool key masked; if it breaks, the
            // client's connection breaks too (no OpenAI error event is
            // spliced into it).
            let idle = app.cfg.stream_idle_timeout;
            let first = tokio::time::timeout(idle, incoming.frame()).await;
            let key = app.pool.key(answer.key);
            let outgoing = Outgoing::new(key, &mut parts.headers, gzip_out, true);
            let out = forward_stream(first, incoming, idle, true, outgoing);
            let mut res = Response::new(out);
            *res.status_mut() = parts.status;
            *res.headers_mut() = response_headers(parts.headers);
            with_log(res, "openai_compat", &model, &masked)
        }
        Err(f) => with_log(
            crate::handlers::failure_response(&app, f, &model),
            "openai_compat",
            &model,
            "",
        ),
    }
}

/// `POST /verify`: check keys (the pool's, or at most `VERIFY_MAX_KEYS` in
/// `x-goog-api-key`) in parallel with a models.get call, at most
/// [`crate::scheduler::VERIFY_PARALLEL`] at a time, streaming one SSE line per
/// key as each finishes; `?format=json` returns one document.
pub async fn verify(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let given: Vec<String> = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::config::parse_list(v).unwrap_or_default())
        .unwrap_or_default();
    let max = app.cfg.verify_max_keys;
    if given.len() > max {
        return with_log(
            router::error(
                Api::OpenAi,
                StatusCode::BAD_REQUEST,
                &format!(
                    "Too many keys: one /verify call checks at most {max} (VERIFY_MAX_KEYS); {} were sent.",
                    given.len()
                ),
            ),
            "verify",
            "",
            "",
        );
    }
    let as_json =
        router::query_param(req.uri().query().unwrap_or(""), "format").as_deref() == Some("json");
    let from_pool = given.is_empty();
    let keys: Vec<(Option<usize>, String)> = if from_pool {
        (0..app.pool.len())
            .map(|i| (Some(i), app.pool.key(i).to_string()))
            .collect()
    } else {
        // A pool key named in the header gets its result applied like a pool
        // check, so /health does not call active a key /verify called bad.
        let in_pool =
            |k: &str| (0..app.pool.len()).find(|&i| crate::keys::subtle_eq(app.pool.key(i), k));
        given.into_iter().map(|k| (in_pool(&k), k)).collect()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(keys.len().max(1));
    // In parallel, but a large pool does not open hundreds of calls at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(
        crate::scheduler::VERIFY_PARALLEL,
    ));
    for (index, key) in keys {
        let app = app.clone();
        let tx = tx.clone();
        let permits = permits.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = crate::scheduler::verify_key(&app, &key).await;
            if let Some(i) = index {
                crate::scheduler::apply_verification(&app, i, &result);
            }
            let line = match result {
                Ok(()) => json!({"key": mask(&key), "status": "GOOD"}),
                Err(reason) => json!({"key": mask(&key), "status": "BAD", "reason": reason}),
            };
            let _ = tx.send(line).await;
        });
    }
    drop(tx);
    if as_json {
        let mut results = Vec::new();
        while let Some(v) = rx.recv().await {
            results.push(v);
        }
        let good = results.iter().filter(|r| r["status"] == "GOOD").count();
        return with_log(
            body::json(
                StatusCode::OK,
                &json!({"total": results.len(), "good": good, "bad": results.len() - good, "results": results}),
            ),
            "verify",
            "",
            "",
        );
    }
    let (btx, out) = ChannelBody::pair(16);
    tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if btx
                .send(Bytes::from(format!("data: {v}\n\n")))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = btx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let mut res = Response::new(out);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    with_log(res, "verify", "", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_the_key_parameter() {
        assert_eq!(query_without_key(Some("alt=sse&key=abc")), "?alt=sse");
        assert_eq!(query_without_key(Some("key=abc")), "");
        assert_eq!(
            query_without_key(Some("pageSize=2&pageToken=x&key=k")),
            "?pageSize=2&pageToken=x"
        );
        assert_eq!(query_without_key(None), "");
    }

    #[test]
    fn paths_cannot_escape() {
        assert!(safe_path("/models/gemini-2.5-flash:generateContent"));
        assert!(!safe_path("/models/../files"));
        assert!(!safe_path("/models/a%2F..%2Fb"));
        assert!(!safe_path("/models/a b"));
        assert_eq!(
            model_of("/models/gemini-2.5-flash:streamGenerateContent"),
            "gemini-2.5-flash"
        );
        assert_eq!(model_of("/models"), "");
        assert_eq!(model_of("/tunedModels/t-1/operations/o"), "t-1");
        assert_eq!(model_of("/models/m/operations:cancel"), "m");
        assert_eq!(model_of("/files/f"), "");
    }

    #[test]
    fn derived_names_and_what_they_add() {
        let o = crate::openai::Options {
            search_models: vec!["gemini-2.5-flash".into()],
            thinking_models: vec!["models/gemini-2.5-pro".into(), "gemini-2.5-flash".into()],
            thinking_budget_map: vec![("gemini-2.5-flash".into(), 2048)],
            ..Default::default()
        };
        let d = |m: &str| derive(&o, m);
        assert_eq!(d("gemini-2.5-flash"), None);
        assert_eq!(d("gemini-2.5-pro-search"), None, "not in SEARCH_MODELS");
        assert_eq!(d("gemini-2.0-flash-thinking"), None);
        assert_eq!(
            d("gemini-2.5-pro-thinking").unwrap().thinking_budget,
            Some(-1)
        );
        assert_eq!(
            d("gemini-2.5-flash-thinking").unwrap().thinking_budget,
            Some(2048)
        );
        let non = d("gemini-2.5-pro-non-thinking").unwrap();
        assert_eq!(
            (non.base.as_str(), non.thinking_budget),
            ("gemini-2.5-pro", Some(0))
        );
        let search = d("gemini-2.5-flash-search").unwrap();
        assert!(search.search && search.base == "gemini-2.5-flash");

        let apply = |d: &Derived, body: &str| -> Value {
            serde_json::from_slice(&d.apply(&Bytes::from(body.to_string()))).unwrap()
        };
        let v = apply(&search, r#"{"contents":[],"tools":[{"codeExecution":{}}]}"#);
        assert_eq!(
            v["tools"],
            json!([{"codeExecution": {}}, {"googleSearch": {}}])
        );
        let v = apply(&search, r#"{"tools":[{"google_search":{}}]}"#);
        assert_eq!(
            v["tools"],
            json!([{"google_search": {}}]),
            "not added twice"
        );
        let v = apply(
            &non,
            r#"{"generation_config":{"thinking_config":{"include_thoughts":true}}}"#,
        );
        assert_eq!(
            v["generation_config"]["thinking_config"],
            json!({"include_thoughts": true, "thinkingBudget": 0})
        );
        let v = apply(
            &non,
            r#"{"generationConfig":{"thinkingConfig":{"thinkingBudget":77}}}"#,
        );
        assert_eq!(
            v["generationConfig"]["thinkingConfig"]["thinkingBudget"], 77,
            "the caller's wins"
        );
        let v = apply(&non, r#"{}"#);
        assert_eq!(v["generationConfig"]["thinkingConfig"]["thinkingBudget"], 0);
        assert_eq!(&non.apply(&Bytes::from_static(b"[1,2]"))[..], b"[1,2]");
        assert_eq!(
            &non.apply(&Bytes::from_static(b"not json"))[..],
            b"not json"
        );
    }
}
