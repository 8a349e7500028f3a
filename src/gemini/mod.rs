//! The native side: Gemini API calls passed through byte for byte
//! (`/v1beta/...`, `/gemini/v1beta/...`, `/gemini/v1/...`, `/v1/models/...:action`),
//! and Gemini's own OpenAI-compatible endpoint (`/openai/v1/...`).
//!
//! Pass-through means: the request body goes upstream unchanged, the client's
//! credential is replaced by a pool key (`x-goog-api-key`, never in the URL),
//! `?key=` is removed and other query parameters kept, hop-by-hop headers are
//! dropped both ways, and the answer goes back unchanged except that the pool
//! key is masked in it: a stream as it arrives, a plain answer once read
//! whole within `TIME_OUT` (see the `forward` module).

pub mod fetch;
pub mod files;
mod forward;
pub mod gzip;
pub mod lenient;
mod long;
pub mod owners;
mod pages;
pub mod types;
pub mod upload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::answer::{ANSWER_LIMIT, LogInfo, read_whole, upstream_failed};
use crate::app::App;
use crate::auth::Keys;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::keys::{KeyPool, Outcome};
use crate::request::{percent_decode, read_body};
use crate::upstream::{Auth, Call, Failure, response_headers};
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
        .filter(|p| !p.is_empty() && percent_decode(p.split('=').next().unwrap_or("")) != "key")
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

/// A native call, checked and ready to go upstream (see [`prepare`]).
pub(crate) struct Prepared {
    method: Method,
    /// The upstream path and query (`?key=` removed).
    path: String,
    body: Bytes,
    /// The model the call is about (a derived name's base), or empty.
    model: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `:streamGenerateContent`.
    streaming: bool,
    /// `?alt=sse`.
    sse: bool,
    /// A stream the client takes gzip-encoded (upstream sends it plain, so
    /// that the pool key can be masked in it).
    gzip_out: bool,
    /// `GET /models`.
    list_models: bool,
}

/// The `version` of a native call to Vertex AI Express (`crate::vertex`):
/// sent under `VERTEX_EXPRESS_BASE_URL` on the Vertex pool.
pub const VERTEX: &str = "vertex-express";

/// A native call: `version` is `v1beta`, `v1` or [`VERTEX`], `rest` the path after it,
/// `keys` what the caller's credential allows (checked by the route table).
pub async fn native(
    app: Arc<App>,
    req: Request<Incoming>,
    version: &'static str,
    rest: &str,
    keys: Keys,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    // Files API resources on the heap: a pass-through call (a silent
    // stream, say) does not carry their state machine's space.
    if files::is_resource(rest) {
        return Box::pin(files::resource(app, req, version, rest, keys, log)).await;
    }
    pass(app, req, version, rest, keys, log).await
}

/// A native call passed through: on the key that owns the file or cache
/// its body names (see [`files`]), else over the pool.
async fn pass(
    app: Arc<App>,
    req: Request<Incoming>,
    version: &'static str,
    rest: &str,
    keys: Keys,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    // Vertex Express has no Files API: nothing there is pinned to a key.
    let files = matches!(keys, Keys::Server) && version != VERTEX;
    let caller = files.then(|| files::Caller::of(&app, &req));
    let call = Box::pin(prepare(&app, req, version, rest, log)).await?;
    let pinned = match &caller {
        Some(c) => Box::pin(files::pin_body(&app, c, &call.body)).await?,
        None => None,
    };
    let heartbeat = app.cfg().heartbeat;
    let fake = call.streaming && app.cfg().fake_stream_for(&call.model);
    // Fake streaming serves the JSON-array form too; heartbeats on SSE.
    let beats = call.sse && !heartbeat.is_zero();
    // Such a stream goes out plain even to a client that accepts gzip: a
    // heartbeat cannot pass a gzip stream without flushing it, and SSE
    // events compress little (Node's `fetch` asks for gzip by default).
    if call.streaming && (fake || beats) {
        return Box::pin(long::sse_stream(app, call, keys, pinned, log, heartbeat)).await;
    }
    let generate = call.path.contains(":generateContent");
    if !call.streaming && generate && app.cfg().nonstream_keepalive && !heartbeat.is_zero() {
        let keepalive = long::plain_keepalive(app, call, keys, pinned, log, heartbeat);
        return Box::pin(keepalive).await;
    }
    let up = Call {
        method: call.method,
        path: call.path,
        body: call.body,
        model: &call.model,
        auth: Auth::GoogHeader,
        headers: call.headers,
        route: log.route,
    };
    let pool: &KeyPool = match &keys {
        Keys::Server => app.pool_for(&up.path),
        Keys::Backup => &app.backup,
        Keys::Client(p) => p,
    };
    let own = matches!(keys, Keys::Client(_));
    let started = Instant::now();
    let answer = Box::pin(files::call_on(&app, pool, &up, pinned))
        .await
        .map_err(|f| upstream_failed(&app, f, &call.model, own))?;
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);

    if call.list_models
        && (app.cfg().native_derived_models || !app.cfg().filtered_models.is_empty())
    {
        log.key = pool.masked(answer.key).to_string();
        return Box::pin(derived_model_list(&app, answer.response)).await;
    }
    let opened = Opening {
        app: &app,
        pool,
        up: &up,
        own,
        pinned: pinned.is_some(),
    };
    let (parts, out_body) = if call.streaming {
        Box::pin(opened.open_stream(answer, call.sse, call.gzip_out, log)).await?
    } else {
        Box::pin(opened.read_plain(answer, log)).await?
    };
    let mut res = Response::new(out_body);
    *res.status_mut() = parts.status;
    *res.headers_mut() = response_headers(parts.headers);
    Ok(res)
}

/// Check a native request and read it: the path (no traversal or escapes),
/// the model named in it, the headers to forward, the body, and a derived
/// model name's base and setting (`NATIVE_DERIVED_MODELS`).
async fn prepare(
    app: &App,
    req: Request<Incoming>,
    version: &'static str,
    rest: &str,
    log: &mut LogInfo,
) -> Result<Prepared, GatewayError> {
    let rest = if rest.is_empty() { "/" } else { rest };
    if !safe_path(rest) {
        return Err(GatewayError::InvalidPath);
    }
    let model = model_of(rest);
    if !model.is_empty() && !crate::model::valid(model) {
        return Err(GatewayError::InvalidModel(model.to_string()));
    }
    // The model rules: FILTERED_MODELS (404), then MODEL_ALIASES on a
    // `/models/{m}` path, whose Gemini name then goes upstream.
    let (model, aliased) = {
        let cfg = app.cfg();
        let filtered = |m: &str| crate::model::filtered(&cfg.filtered_models, m);
        if !model.is_empty() && filtered(model) {
            return Err(GatewayError::ModelNotFound(model.to_string()));
        }
        let target = if rest.starts_with("/models/") && !model.is_empty() {
            crate::model::resolve_alias(&cfg.model_aliases, model)
        } else {
            std::borrow::Cow::Borrowed(model)
        };
        if !crate::model::valid(&target) && !model.is_empty() {
            return Err(GatewayError::InvalidModel(target.into_owned()));
        }
        if !model.is_empty() && filtered(&target) {
            return Err(GatewayError::ModelNotFound(model.to_string()));
        }
        let aliased = (target != model)
            .then(|| rest.replacen(&format!("/models/{model}"), &format!("/models/{target}"), 1));
        (target.into_owned(), aliased)
    };
    let rest = aliased.as_deref().unwrap_or(rest);
    log.model.clone_from(&model);
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
        read_body(app, req).await?
    };
    // A derived name (`…-search`, `…-thinking`, `…-non-thinking`) that the
    // native model list offers is served by its base model, with the tool or
    // thinking budget it stands for; every other call goes as it came.
    let derived = {
        let cfg = app.cfg();
        if cfg.native_derived_models {
            derive(&cfg.translate, &model)
        } else {
            None
        }
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
            log.model.clone_from(&d.base);
            (rest, body, d.base)
        }
        None => (rest.to_string(), body, model),
    };
    let tail = crate::upstream::join(&rest, &query);
    let path = match version {
        "v1" => app.upstream.path_v1(&tail),
        VERTEX => app.path_on(crate::app::Lane::Vertex, &tail),
        _ => app.upstream.path(&tail),
    };
    Ok(Prepared {
        method,
        path,
        body,
        model,
        headers,
        streaming,
        sse,
        gzip_out,
        list_models,
    })
}

/// What opening a native stream needs: the call, and the keys it runs on.
struct Opening<'a> {
    app: &'a App,
    pool: &'a KeyPool,
    up: &'a Call<'a>,
    /// The caller's own keys (`CLIENT_KEYS_ENABLED`).
    own: bool,
    /// The call must stay on its key (it names a file or cache of it).
    pinned: bool,
}

/// An answer whose first byte has arrived: the answer (its key and meter),
/// its head, the rest of its body, and that first read.
type FirstByte = (
    usize,
    crate::store::meter::Meter,
    http::response::Parts,
    crate::lanes::UpBody,
    forward::FirstRead,
);

impl Opening<'_> {
    /// Wait for an answer's first byte (`/openai/v1`): one that breaks,
    /// ends or stays silent before it is retried on another key within the
    /// MAX_RETRIES budget (a silent one, `TIMEOUT_RETRIES`), like the other
    /// routes' streams; with none left, an error in the route's format.
    async fn first_byte(&self, answer: crate::upstream::Answer) -> Result<FirstByte, GatewayError> {
        let (app, pool, up) = (self.app, self.pool, self.up);
        let idle = app.cfg().stream_idle_timeout;
        let mut tried = vec![answer.key];
        let mut used = answer.attempts;
        let crate::upstream::Answer {
            mut response,
            mut key,
            mut meter,
            ..
        } = answer;
        loop {
            let (parts, mut incoming) = response.into_parts();
            let first = tokio::time::timeout(crate::longcall::clamp(idle), incoming.frame()).await;
            let (why, status, message) = match &first {
                Ok(Some(Ok(_))) => return Ok((key, meter, parts, incoming, first)),
                // A body that is empty on purpose (a 204, a HEAD) is the answer.
                Ok(None) if parts.status == StatusCode::NO_CONTENT || up.method == Method::HEAD => {
                    return Ok((key, meter, parts, incoming, first));
                }
                Ok(None) => (
                    "stream ended empty",
                    StatusCode::BAD_GATEWAY,
                    "Gemini's answer ended before its first byte on every key tried.",
                ),
                Ok(Some(Err(_))) => (
                    "stream broke before its first byte",
                    StatusCode::BAD_GATEWAY,
                    "Gemini's answer broke before its first byte on every key tried.",
                ),
                Err(_) => (
                    "stream silent before its first byte",
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gemini stayed silent before the first byte of its answer for longer than STREAM_IDLE_TIMEOUT (or until the request's REQUEST_TIMEOUT).",
                ),
            };
            let outcome = Outcome::Transient(why.into());
            pool.report(key, up.model, &outcome);
            app.upstream
                .answer_failed(&mut meter, pool, up, key, status.as_u16(), &outcome, why);
            let silent = status == StatusCode::GATEWAY_TIMEOUT;
            let mut budget = app.upstream.attempts().saturating_sub(used);
            if silent && !crate::longcall::timed_out() {
                budget = 0;
            }
            let code = if silent { "timeout" } else { "upstream_error" };
            let failed = GatewayError::StreamFailed {
                status,
                code,
                message,
            };
            if budget == 0 {
                return Err(failed);
            }
            match Box::pin(app.upstream.call_with(pool, up, &mut tried, budget)).await {
                Ok(a) => {
                    app.stats.retried(a.attempts);
                    used += a.attempts;
                    (response, key, meter) = (a.response, a.key, a.meter);
                }
                Err(Failure::Unavailable(_)) => return Err(failed),
                Err(f) => return Err(upstream_failed(app, f, up.model, self.own)),
            }
        }
    }

    /// A whole (not streamed) answer; an empty one (`empty_answer`) is
    /// retried on another key within the MAX_RETRIES budget, and with none
    /// left answered 502.
    async fn read_plain(
        &self,
        mut answer: crate::upstream::Answer,
        log: &mut LogInfo,
    ) -> Result<(http::response::Parts, Body), GatewayError> {
        let (app, pool, up) = (self.app, self.pool, self.up);
        let mut tried = vec![answer.key];
        let mut used = answer.attempts;
        loop {
            log.key = pool.masked(answer.key).to_string();
            let key = pool.key(answer.key);
            let generate = up.path.contains(":generateContent");
            let read = read_plain(app, answer.response, key, &mut answer.meter, generate);
            let (e, why) = match read.await {
                Ok(done) => return Ok(done),
                Err(failed) => failed,
            };
            let outcome = Outcome::Transient(why.into());
            let empty = why == crate::longcall::EMPTY_ANSWER;
            if !empty {
                // An empty answer is logged, but the key is not charged.
                pool.report(answer.key, up.model, &outcome);
            }
            let status = e.status().as_u16();
            let m = &mut answer.meter;
            let message = if empty {
                "empty_answer: Gemini answered 200 with no content"
            } else {
                why
            };
            app.upstream
                .answer_failed(m, pool, up, answer.key, status, &outcome, message);
            app.stats.error(up.model, &log.key, status, why);
            let budget = app.upstream.attempts().saturating_sub(used);
            if !empty || budget == 0 {
                return Err(e);
            }
            match Box::pin(app.upstream.call_with(pool, up, &mut tried, budget)).await {
                Ok(a) => {
                    app.stats.retried(a.attempts);
                    used += a.attempts;
                    answer = a;
                }
                Err(Failure::Unavailable(_)) => return Err(e),
                Err(f) => return Err(upstream_failed(app, f, up.model, self.own)),
            }
        }
    }

    /// A stream's first frame is read before anything reaches the client: a
    /// stream that breaks, stays silent or ends empty before it is retried on
    /// another key within the same MAX_RETRIES budget. Returns the answer's
    /// head and the body that forwards it.
    async fn open_stream(
        &self,
        mut answer: crate::upstream::Answer,
        sse: bool,
        gzip_out: bool,
        log: &mut LogInfo,
    ) -> Result<(http::response::Parts, Body), GatewayError> {
        let (app, pool, up) = (self.app, self.pool, self.up);
        let idle = app.cfg().stream_idle_timeout;
        let mut tried = vec![answer.key];
        let mut used = answer.attempts;
        loop {
            let (mut parts, mut incoming) = answer.response.into_parts();
            // The first byte must come before the request's deadline too.
            let wait = crate::longcall::clamp(idle);
            let first = tokio::time::timeout(wait, incoming.frame()).await;
            let (outcome, status, message) = match first {
                Ok(Some(Ok(_))) => {
                    log.key = pool.masked(answer.key).to_string();
                    let key = pool.key(answer.key);
                    let beat = crate::longcall::NATIVE_HEARTBEAT;
                    let out = Outgoing::new(key, &mut parts.headers, gzip_out, false)
                        .metered(answer.meter)
                        .beating(
                            if sse {
                                app.cfg().heartbeat
                            } else {
                                Duration::ZERO
                            },
                            beat,
                        )
                        .draining(app.drain.subscribe());
                    let body = forward_stream(first, incoming, idle, sse, out, None);
                    return Ok((parts, body));
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
                    "Gemini's stream stayed silent before its first byte for longer than STREAM_IDLE_TIMEOUT (or until the request's REQUEST_TIMEOUT).",
                ),
            };
            let silent = status == StatusCode::GATEWAY_TIMEOUT;
            crate::debug!(
                "native stream on key {} failed before its first byte; trying another key",
                pool.masked(answer.key)
            );
            let why = Outcome::Transient(outcome.into());
            pool.report(answer.key, up.model, &why);
            let (m, code) = (&mut answer.meter, status.as_u16());
            app.upstream
                .answer_failed(m, pool, up, answer.key, code, &why, outcome);
            let allowed = !self.pinned;
            let retry =
                crate::answer::retry_stream(app, pool, up, &mut tried, used, silent, allowed);
            match retry.await {
                Some(Ok(a)) => {
                    used += a.attempts;
                    answer = a;
                }
                // No budget left, or no other key to try: the stream's own
                // failure is the answer.
                None | Some(Err(Failure::Unavailable(_))) => {
                    log.key = pool.masked(answer.key).to_string();
                    let code = if status == StatusCode::GATEWAY_TIMEOUT {
                        "timeout"
                    } else {
                        "upstream_error"
                    };
                    return Err(GatewayError::StreamFailed {
                        status,
                        code,
                        message,
                    });
                }
                Some(Err(f)) => {
                    return Err(upstream_failed(app, f, up.model, self.own));
                }
            }
        }
    }
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

/// The model list without the `FILTERED_MODELS` and with the derived
/// `-search`/`-thinking` variants added (`NATIVE_DERIVED_MODELS`).
async fn derived_model_list(
    app: &App,
    res: Response<crate::lanes::UpBody>,
) -> Result<Response<Body>, GatewayError> {
    let limit = ANSWER_LIMIT;
    let Ok((mut parts, bytes)) = read_whole(app, res).await else {
        return Err(GatewayError::BadAnswer(
            "Could not read Gemini's model list.".into(),
        ));
    };
    let bytes = gzip::decode_answer(&mut parts.headers, bytes, limit);
    let Ok(mut page) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(GatewayError::BadAnswer(
            "Gemini's model list is not valid JSON.".into(),
        ));
    };
    if let Some(models) = page.get_mut("models").and_then(Value::as_array_mut) {
        let cfg = app.cfg();
        let o = &cfg.translate;
        let derive = cfg.native_derived_models;
        let listed = |list: &[String], id: &str| {
            derive && list.iter().any(|m| crate::openai::bare_model(m) == id)
        };
        let mut out = Vec::with_capacity(models.len());
        for m in models.drain(..) {
            let bare =
                crate::openai::bare_model(m.get("name").and_then(Value::as_str).unwrap_or(""))
                    .to_string();
            if !bare.is_empty() && crate::model::filtered(&cfg.filtered_models, &bare) {
                continue;
            }
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
    Ok(body::json(StatusCode::OK, &page))
}

/// The model rules on a `/openai/v1` body naming `model`: 404 when it is
/// filtered; an alias rewrites the body's `model` to the Gemini name (the
/// only case the bytes do not go upstream as sent).
fn compat_rules(app: &App, body: Bytes, model: String) -> Result<(Bytes, String), GatewayError> {
    if model.is_empty() {
        return Ok((body, model));
    }
    let cfg = app.cfg();
    let filtered = |m: &str| crate::model::filtered(&cfg.filtered_models, m);
    if filtered(&model) {
        return Err(GatewayError::ModelNotFound(model));
    }
    let target = crate::model::resolve_alias(&cfg.model_aliases, &model).into_owned();
    if target == model {
        return Ok((body, model));
    }
    if !crate::model::valid(&target) {
        return Err(GatewayError::InvalidModel(target));
    }
    if filtered(&target) {
        return Err(GatewayError::ModelNotFound(model));
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return Ok((body, model));
    };
    if let Some(slot) = value.get_mut("model") {
        *slot = Value::String(target.clone());
    }
    let body = serde_json::to_vec(&value).map(Bytes::from).unwrap_or(body);
    Ok((body, target))
}

/// The model rules on a `/openai/v1/models/{m}` path: 404 when `m` is
/// filtered, an alias's Gemini name in its place. Other paths as they are.
fn compat_path_rules(app: &App, rest: &str) -> Result<String, GatewayError> {
    let Some(m) = rest.strip_prefix("/models/").filter(|m| !m.contains('/')) else {
        return Ok(rest.to_string());
    };
    let cfg = app.cfg();
    let target = crate::model::resolve_alias(&cfg.model_aliases, m);
    if crate::model::filtered(&cfg.filtered_models, m)
        || crate::model::filtered(&cfg.filtered_models, &target)
    {
        return Err(GatewayError::ModelNotFound(m.to_string()));
    }
    if !crate::model::valid(&target) {
        return Err(GatewayError::InvalidModel(target.into_owned()));
    }
    Ok(format!("/models/{target}"))
}

/// Gemini's OpenAI model list without the `FILTERED_MODELS` (read whole:
/// the list is small).
async fn filtered_compat_list(
    app: &App,
    res: Response<crate::lanes::UpBody>,
) -> Result<Response<Body>, GatewayError> {
    let status = res.status();
    let Ok((mut parts, bytes)) = read_whole(app, res).await else {
        return Err(GatewayError::BadAnswer(
            "Could not read Gemini's model list.".into(),
        ));
    };
    let bytes = gzip::decode_answer(&mut parts.headers, bytes, ANSWER_LIMIT);
    let Ok(mut page) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(GatewayError::BadAnswer(
            "Gemini's model list is not valid JSON.".into(),
        ));
    };
    if let Some(data) = page.get_mut("data").and_then(Value::as_array_mut) {
        let filtered = &app.cfg().filtered_models;
        data.retain(|m| {
            let id = m.get("id").and_then(Value::as_str).unwrap_or("");
            !crate::model::filtered(filtered, crate::openai::bare_model(id))
        });
    }
    Ok(body::json(status, &page))
}

/// `/openai/v1/...`: Gemini's own OpenAI-compatible endpoint, with a pool
/// key as Bearer (the caller's token is checked by the route table).
pub async fn openai_compat(
    app: Arc<App>,
    req: Request<Incoming>,
    rest: &str,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    if !safe_path(rest) || !rest.starts_with('/') {
        return Err(GatewayError::NotFound("Unknown route."));
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
        read_body(&app, req).await?
    };
    /// The one field read from the body (the rest is skipped, not built).
    #[derive(serde::Deserialize)]
    struct ModelOnly<'a> {
        #[serde(borrow, default)]
        model: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        stream: Option<bool>,
    }
    let (model, streaming) = match serde_json::from_slice::<ModelOnly>(&body) {
        Ok(v) => (
            v.model
                .map(|m| crate::openai::bare_model(&m).to_string())
                .unwrap_or_default(),
            v.stream == Some(true),
        ),
        Err(_) => (String::new(), false),
    };
    if !model.is_empty() && !crate::model::valid(&model) {
        return Err(GatewayError::InvalidModel(model));
    }
    let (body, model) = compat_rules(&app, body, model)?;
    let rest = compat_path_rules(&app, rest)?;
    let list_models = method == Method::GET && rest == "/models";
    log.model.clone_from(&model);
    let up = Call {
        method,
        path: app.upstream.path(&format!("/openai{rest}{query}")),
        body,
        model: &model,
        auth: Auth::Bearer,
        headers,
        route: log.route,
    };
    let answer = app
        .upstream
        .call(&app.pool, &up)
        .await
        .map_err(|f| upstream_failed(&app, f, &model, false))?;
    if list_models && !app.cfg().filtered_models.is_empty() {
        log.key = app.pool.masked(answer.key).to_string();
        return filtered_compat_list(&app, answer.response).await;
    }
    // Streamed or not, the answer is forwarded as it arrives under the idle
    // timeout, with the pool key masked; if it breaks, the client's
    // connection breaks too (no OpenAI error event is spliced into it).
    // An answer that is not a stream must be complete by the request's
    // deadline (`REQUEST_TIMEOUT`); a stream, have sent its first byte.
    let idle = app.cfg().stream_idle_timeout;
    let deadline = crate::longcall::current().map(|b| b.deadline);
    let opening = Opening {
        app: &app,
        pool: &app.pool,
        up: &up,
        own: false,
        pinned: false,
    };
    let (index, meter, mut parts, incoming, first) = opening.first_byte(answer).await?;
    log.key = app.pool.masked(index).to_string();
    let key = app.pool.key(index);
    let every = if streaming {
        app.cfg().heartbeat
    } else {
        std::time::Duration::ZERO
    };
    // A stream with heartbeats goes out plain (see `pass`).
    let gzip_out = gzip_out && every.is_zero();
    let outgoing = Outgoing::new(key, &mut parts.headers, gzip_out, true)
        .metered(meter)
        .beating(every, crate::longcall::OPENAI_HEARTBEAT)
        .draining(app.drain.subscribe());
    let deadline = deadline.filter(|_| !streaming);
    let out = forward_stream(first, incoming, idle, true, outgoing, deadline);
    let mut res = Response::new(out);
    *res.status_mut() = parts.status;
    *res.headers_mut() = response_headers(parts.headers);
    Ok(res)
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
