//! The OpenAI-side handlers: `/v1/chat/completions`, `/v1/embeddings` and
//! `/v1/models`. Each reads and checks the request, calls the pure
//! translation in [`crate::openai`], runs the call over the key pool, and
//! translates the answer back — streaming it chunk by chunk when asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::answer::{LogInfo, read_whole, upstream_failed};
use crate::app::App;
use crate::body::{self, Body, ChannelBody};
use crate::error::GatewayError;
use crate::keys::{KeyPool, Outcome, unix_now};
use crate::openai;
use crate::openai::chat::PreparedCall;
use crate::request::{parse_json, read_nonempty_body};
use crate::store::meter::Meter;
use crate::upstream::{Answer, Auth, Call, Failure};

/// Largest single SSE event accepted from upstream.
pub(crate) const MAX_EVENT: usize = 64 * 1024 * 1024;

/// Read a request body as JSON, answering 413 / 400 / 408.
pub async fn read_json(app: &App, req: Request<Incoming>) -> Result<Value, GatewayError> {
    parse_json(&read_nonempty_body(app, req).await?)
}

/// Whether a model name is safe to put in an upstream path and to record: no
/// `/`, `?`, `#`, `%`, `..`, whitespace or control characters, at most 200
/// characters (the rule is [`crate::model::valid`]).
pub fn valid_model(m: &str) -> bool {
    crate::model::valid(m)
}

/// `FILTERED_MODELS`: a 404 naming `shown` (the client's name) when
/// `model` is filtered.
pub(crate) fn refuse_filtered(app: &App, model: &str, shown: &str) -> Result<(), GatewayError> {
    if crate::model::filtered(&app.cfg().filtered_models, model) {
        return Err(GatewayError::ModelNotFound(
            shown.chars().take(100).collect(),
        ));
    }
    Ok(())
}

/// The model rules applied to a client's model name (`models/` removed):
/// 404 when it is filtered (`FILTERED_MODELS`), then `MODEL_ALIASES`, then
/// 400 when the result is not a model id and 404 when it is filtered.
/// Returns the Gemini model to call.
pub(crate) fn gemini_model(app: &App, client: &str) -> Result<String, GatewayError> {
    let client = openai::bare_model(client);
    refuse_filtered(app, client, client)?;
    let cfg = app.cfg();
    let model = crate::model::resolve_alias(&cfg.model_aliases, client).into_owned();
    if !valid_model(&model) {
        return Err(GatewayError::InvalidModel(model));
    }
    refuse_filtered(app, &model, client)?;
    Ok(model)
}

/// The model rules applied to a request body's `model` member before it is
/// translated ([`gemini_model`]): the member is replaced by the Gemini
/// model an alias stands for. Returns the client's name (minus `models/`)
/// when it was replaced, for the answer's `model` field. A missing or
/// non-string `model` is left for the translator to refuse.
pub(crate) fn alias_in_body(app: &App, value: &mut Value) -> Result<Option<String>, GatewayError> {
    let Some(Value::String(m)) = value.get("model") else {
        return Ok(None);
    };
    let client = openai::bare_model(m).to_string();
    if client.is_empty() {
        return Ok(None);
    }
    let model = gemini_model(app, &client)?;
    if model == client {
        return Ok(None);
    }
    if let Some(slot) = value.get_mut("model") {
        *slot = Value::String(model);
    }
    Ok(Some(client))
}

pub(crate) fn json_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

/// The general path of a chat request: parse it, fetch remote images, and
/// translate it (also where every invalid request gets its error).
async fn translate_chat(app: &App, bytes: &[u8]) -> Result<PreparedCall, GatewayError> {
    // One UTF-8 check over the whole body is cheaper than one per string;
    // a body that is not UTF-8 gets `parse_json`'s error.
    let mut value = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text).map_err(GatewayError::InvalidJson)?,
        Err(_) => parse_json(bytes)?,
    };
    let client = alias_in_body(app, &mut value)?;
    let value = crate::gemini::fetch::inline_remote_images(app, value)
        .await
        .map_err(GatewayError::Invalid)?;
    let mut call = openai::chat::prepare_request(&value, &app.cfg().translate)
        .map_err(GatewayError::Invalid)?;
    if let Some(client) = client {
        call.client_model = client;
    }
    Ok(call)
}

/// `POST /v1/chat/completions`: [`prepare_chat`], one call over the pool,
/// then the [`whole_answer`], or a stream opened with retries
/// ([`open_with_retries`]) and pumped to the client ([`start_stream`]).
pub async fn chat(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let mut call = prepare_chat(&app, req).await?;
    log.model.clone_from(&call.model);
    let path = if call.stream {
        app.upstream.path(&format!(
            "/models/{}:streamGenerateContent?alt=sse",
            call.model
        ))
    } else {
        app.upstream
            .path(&format!("/models/{}:generateContent", call.model))
    };
    let up = Call {
        method: Method::POST,
        path,
        body: Bytes::from(std::mem::take(&mut call.body)),
        model: &call.model,
        auth: Auth::GoogHeader,
        headers: json_headers(),
        route: log.route,
    };
    let started = Instant::now();
    let answer = app
        .upstream
        .call(&app.pool, &up)
        .await
        .map_err(|f| upstream_failed(&app, f, &call.model, false))?;
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);
    log.key = app.pool.masked(answer.key).to_string();
    let created = unix_now();
    if !call.stream {
        return whole_answer(&app, &call, &up, answer, created).await;
    }
    let opened = open_with_retries(&app, &up, answer, log).await?;
    log.key = app.pool.masked(opened.key).to_string();
    Ok(start_stream(&app, &call, opened, created, log.key.clone()))
}

/// Read a chat request and translate it ([`translate_chat`]); the model
/// must be a model id.
async fn prepare_chat(app: &App, req: Request<Incoming>) -> Result<PreparedCall, GatewayError> {
    let bytes = read_nonempty_body(app, req).await?;
    let call = translate_chat(app, &bytes).await?;
    if !valid_model(&call.model) {
        return Err(GatewayError::InvalidModel(call.model));
    }
    refuse_filtered(app, &call.model, &call.client_model)?;
    Ok(call)
}

/// A non-streamed answer: read whole, translated, the pool key masked.
async fn whole_answer(
    app: &App,
    call: &PreparedCall,
    up: &Call<'_>,
    mut answer: Answer,
    created: u64,
) -> Result<Response<Body>, GatewayError> {
    let bytes = match read_whole(app, answer.response).await {
        Ok((_, bytes)) => bytes,
        Err(e) => {
            let why = Outcome::Transient(e.to_string());
            let (status, message) = (e.status().as_u16(), e.to_string());
            let (m, pool) = (&mut answer.meter, &app.pool);
            app.upstream
                .answer_failed(m, pool, up, answer.key, status, &why, &message);
            return Err(e);
        }
    };
    answer.meter.whole(&bytes);
    let ctx = openai::response::ResponseCtx {
        model: &call.client_model,
        created,
        opts: &app.cfg().translate,
    };
    let Some(out) = openai::response::translate_response_bytes(&bytes, &ctx) else {
        return Err(GatewayError::BadAnswer(
            "Gemini answered with invalid JSON.".into(),
        ));
    };
    // An upstream that echoes the pool key must not hand it to the client.
    let out = crate::upstream::redact(Bytes::from(out), app.pool.key(answer.key));
    let mut res = Response::new(body::full(out));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// A Gemini stream whose first event has arrived (see [`open_with_retries`]).
pub(crate) struct OpenedStream {
    /// The rest of the upstream body.
    pub(crate) incoming: Incoming,
    /// The SSE parser, holding any partial event.
    pub(crate) parser: openai::stream::SseParser,
    /// The events read while opening.
    pub(crate) pending: Vec<String>,
    /// The pool key serving it.
    pub(crate) key: usize,
    /// Its usage, recorded when the stream ends.
    pub(crate) meter: Meter,
}

/// Open the stream: nothing has reached the client yet, so a stream that
/// breaks, goes silent, ends empty or opens with an error event before its
/// first event is retried on another key, within the same MAX_RETRIES budget.
pub(crate) async fn open_with_retries(
    app: &App,
    up: &Call<'_>,
    answer: Answer,
    log: &mut LogInfo,
) -> Result<OpenedStream, GatewayError> {
    let idle = app.cfg().stream_idle_timeout;
    let mut response = answer.response;
    let mut key = answer.key;
    let mut meter = answer.meter;
    let mut used = answer.attempts;
    let mut tried = vec![key];
    loop {
        let mut parser = openai::stream::SseParser::new(MAX_EVENT);
        let mut pending: Vec<String> = Vec::new();
        let mut incoming = response.into_body();
        let opened = open_stream(
            &mut incoming,
            &mut parser,
            &mut pending,
            idle,
            app.cfg().cooldown,
            &mut meter,
        );
        let outcome = match opened.await {
            Ok(()) => {
                return Ok(OpenedStream {
                    incoming,
                    parser,
                    pending,
                    key,
                    meter,
                });
            }
            Err(outcome) => outcome,
        };
        crate::debug!(
            "stream on key {} failed before its first event; trying another key",
            app.pool.masked(key)
        );
        app.pool.report(key, up.model, &outcome);
        let (status, message) = stream_status(&outcome);
        let upstream = &app.upstream;
        upstream.answer_failed(&mut meter, &app.pool, up, key, status, &outcome, message);
        let budget = app.upstream.attempts().saturating_sub(used);
        let retried = if budget == 0 {
            None
        } else {
            Some(
                app.upstream
                    .call_with(&app.pool, up, &mut tried, budget)
                    .await,
            )
        };
        match retried {
            Some(Ok(a)) => {
                app.stats.retried(a.attempts);
                used += a.attempts;
                response = a.response;
                key = a.key;
                meter = a.meter;
            }
            // No budget left, or no other key to try: the stream's own failure
            // is the answer.
            None | Some(Err(Failure::Unavailable(_))) => {
                log.key = app.pool.masked(key).to_string();
                return Err(stream_failed(&outcome));
            }
            Some(Err(f)) => {
                log.key.clear();
                return Err(upstream_failed(app, f, up.model, false));
            }
        }
    }
}

/// The status and message a stream that failed before its first event is logged with.
fn stream_status(outcome: &Outcome) -> (u16, &str) {
    match outcome {
        Outcome::Quota { message, .. } => (429, message),
        Outcome::Transient(m) if m.starts_with("stream silent") => (504, m),
        Outcome::Transient(m) | Outcome::KeyInvalid(m) | Outcome::Region(m) => (502, m),
        Outcome::Success | Outcome::Client => (502, "stream failed before its first event"),
    }
}

/// The answer for a stream that failed before its first event on every key tried.
fn stream_failed(outcome: &Outcome) -> GatewayError {
    let (status, code, message) = match outcome {
        Outcome::Quota { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Gemini's stream failed before its first event on every key tried (quota).",
        ),
        Outcome::Transient(m) if m.starts_with("stream silent") => (
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "Gemini's stream stayed silent for longer than STREAM_IDLE_TIMEOUT before its first event.",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "Gemini's stream failed before its first event on every key tried.",
        ),
    };
    GatewayError::StreamFailed {
        status,
        code,
        message,
    }
}

/// The streamed answer: the events read while opening are translated and
/// queued before the response is returned (so its head and first chunks
/// leave in one write); a task pumps the rest ([`Pump::run`]).
fn start_stream(
    app: &Arc<App>,
    call: &PreparedCall,
    opened: OpenedStream,
    created: u64,
    masked: String,
) -> Response<Body> {
    let (tx, out_body) = ChannelBody::pair(32);
    let mut tr = openai::stream::StreamTranslator::new(
        &call.client_model,
        created,
        call.include_usage,
        &app.cfg().translate,
    );
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut ended_early = false;
    for ev in &opened.pending {
        if let openai::stream::Step::Ended = tr.on_event(ev, &mut out) {
            ended_early = true;
            break;
        }
    }
    // Every byte sent passes the redactor: an upstream that echoes the pool
    // key must not hand it to the client (each chunk ends an event, so
    // nothing is held back).
    let mut redactor = crate::upstream::Redactor::new(app.pool.key(opened.key));
    if !out.is_empty() {
        let first = redactor.push(Bytes::from(std::mem::take(&mut out)));
        // A fresh channel always has room.
        let _ = tx.try_send(first);
    }
    if ended_early {
        let rest = redactor.finish();
        if !rest.is_empty() {
            let _ = tx.try_send(rest);
        }
    } else {
        let pump = Pump {
            app: app.clone(),
            model: call.model.clone(),
            masked,
            incoming: opened.incoming,
            parser: opened.parser,
            tr,
            redactor,
            tx,
            out,
            meter: opened.meter,
        };
        tokio::spawn(pump.run());
    }
    let mut res = Response::new(out_body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    res
}

/// The task that carries a Gemini stream to the client as OpenAI chunks.
struct Pump {
    app: Arc<App>,
    model: String,
    /// The serving key, masked (for `/status`'s errors).
    masked: String,
    incoming: Incoming,
    parser: openai::stream::SseParser,
    tr: openai::stream::StreamTranslator,
    redactor: crate::upstream::Redactor,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    /// Translated bytes not sent yet.
    out: Vec<u8>,
    /// The attempt's usage (tokens from the upstream bytes), recorded when the pump ends.
    meter: Meter,
}

impl Pump {
    /// Read, translate and send until the stream ends, breaks, goes silent
    /// for `STREAM_IDLE_TIMEOUT` (each ends with an error chunk), or the
    /// client goes away (dropping `incoming` cancels the upstream call).
    async fn run(mut self) {
        let idle = self.app.cfg().stream_idle_timeout;
        let mut events: Vec<String> = Vec::new();
        loop {
            let next = tokio::time::timeout(idle, self.incoming.frame()).await;
            let ended = self.step(next, &mut events);
            let mut chunk = if self.out.is_empty() {
                Bytes::new()
            } else {
                let out = std::mem::replace(&mut self.out, Vec::with_capacity(1024));
                self.redactor.push(Bytes::from(out))
            };
            if ended {
                let rest = self.redactor.finish();
                if !rest.is_empty() {
                    chunk = Bytes::from([&chunk[..], &rest[..]].concat());
                }
            }
            if !chunk.is_empty() && self.tx.send(chunk).await.is_err() {
                return;
            }
            if ended {
                return;
            }
        }
    }

    /// Translate one read of the upstream body into `self.out`; whether the
    /// stream has ended.
    fn step(&mut self, next: FrameRead, events: &mut Vec<String>) -> bool {
        let out = &mut self.out;
        match next {
            Err(_) => {
                self.tr.fail(
                    "Gemini's stream went silent for longer than STREAM_IDLE_TIMEOUT.",
                    "timeout",
                    out,
                );
                let stats = &self.app.stats;
                stats.error(&self.model, &self.masked, 504, "stream idle timeout");
                true
            }
            Ok(None) => {
                if let Some(last) = self.parser.finish() {
                    let _ = self.tr.on_event(&last, out);
                }
                self.tr.finish(out);
                true
            }
            Ok(Some(Err(_))) => {
                self.tr.fail(
                    "The connection to Gemini broke in the middle of the answer.",
                    "upstream_error",
                    out,
                );
                let stats = &self.app.stats;
                stats.error(&self.model, &self.masked, 502, "stream cut mid-way");
                true
            }
            Ok(Some(Ok(frame))) => {
                let Some(data) = frame.data_ref() else {
                    return false;
                };
                self.meter.chunk(data);
                let mut ended = false;
                if self.parser.push(data, events).is_err() {
                    self.tr.fail(
                        "Gemini sent an event that is too large.",
                        "upstream_error",
                        out,
                    );
                    ended = true;
                }
                for ev in events.drain(..) {
                    if ended {
                        break;
                    }
                    if let openai::stream::Step::Ended = self.tr.on_event(&ev, out) {
                        ended = true;
                    }
                }
                ended
            }
        }
    }
}

/// One read of an upstream body under the idle timeout.
pub(crate) type FrameRead =
    Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, tokio::time::error::Elapsed>;

/// Read a Gemini stream up to its first complete event. `Err` says why the
/// stream failed before that (so it can be retried on another key): it broke,
/// went silent, ended empty, or opened with an error event that is not the
/// client's fault.
async fn open_stream(
    body: &mut Incoming,
    parser: &mut openai::stream::SseParser,
    events: &mut Vec<String>,
    idle: Duration,
    cooldown: Duration,
    meter: &mut Meter,
) -> Result<(), Outcome> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(Outcome::Transient(
                    "stream silent before its first event".into(),
                ));
            }
            Ok(Some(Err(_))) => {
                return Err(Outcome::Transient(
                    "stream broke before its first event".into(),
                ));
            }
            Ok(None) => {
                events.extend(parser.finish());
                break;
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    meter.chunk(data);
                    if parser.push(data, events).is_err() {
                        return Err(Outcome::Transient("oversized stream event".into()));
                    }
                    if !events.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    let Some(first) = events.first() else {
        return Err(Outcome::Transient("empty stream".into()));
    };
    let parsed: Option<Value> = serde_json::from_str(first).ok();
    let error = parsed.as_ref().and_then(|v| {
        v.get("error")
            .or_else(|| v.get(0).and_then(|e| e.get("error")))
    });
    if let Some(e) = error {
        let code = e.get("code").and_then(Value::as_u64).unwrap_or(500) as u16;
        let outcome = crate::keys::classify(code, first.as_bytes(), None, cooldown);
        if !matches!(
            outcome,
            Outcome::Client | Outcome::Region(_) | Outcome::Success
        ) {
            return Err(outcome);
        }
    }
    Ok(())
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let mut value = read_json(&app, req).await?;
    let client = alias_in_body(&app, &mut value)?;
    let mut call = openai::embeddings::translate_request(&value).map_err(GatewayError::Invalid)?;
    if !valid_model(&call.model) {
        return Err(GatewayError::InvalidModel(call.model));
    }
    if let Some(client) = client {
        call.client_model = client;
    }
    log.model.clone_from(&call.model);
    let path = app
        .upstream
        .path(&format!("/models/{}:batchEmbedContents", call.model));
    let mut answers = Vec::with_capacity(call.batches.len());
    for batch in &call.batches {
        let up = Call {
            method: Method::POST,
            path: path.clone(),
            body: Bytes::from(serde_json::to_vec(batch).unwrap_or_default()),
            model: &call.model,
            auth: Auth::GoogHeader,
            headers: json_headers(),
            route: log.route,
        };
        let mut answer = match app.upstream.call(&app.pool, &up).await {
            Ok(a) => a,
            Err(f) => {
                log.key.clear();
                return Err(upstream_failed(&app, f, &call.model, false));
            }
        };
        log.key = app.pool.masked(answer.key).to_string();
        let parsed = match read_whole(&app, answer.response).await {
            Ok((_, bytes)) => {
                answer.meter.whole(&bytes);
                serde_json::from_slice::<Value>(&bytes).ok()
            }
            Err(_) => None,
        };
        let Some(v) = parsed else {
            return Err(GatewayError::BadAnswer(
                "Gemini answered with invalid JSON.".into(),
            ));
        };
        answers.push(v);
    }
    match openai::embeddings::translate_response(&answers, &call) {
        Ok(v) => Ok(body::json(StatusCode::OK, &v)),
        Err(e) => Err(GatewayError::BadAnswer(
            format!("Unexpected answer from Gemini: {}", e.message).into(),
        )),
    }
}

/// Fetch every page of Gemini's model list with a pool key.
pub async fn list_all_models(app: &App, pool: &KeyPool, v1: bool) -> Result<Vec<Value>, Failure> {
    let mut models = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..50 {
        let mut rest = String::from("/models?pageSize=1000");
        if let Some(t) = &token {
            rest.push_str("&pageToken=");
            rest.push_str(&encode_query(t));
        }
        let path = if v1 {
            app.upstream.path_v1(&rest)
        } else {
            app.upstream.path(&rest)
        };
        let up = Call {
            method: Method::GET,
            path,
            body: Bytes::new(),
            model: "",
            auth: Auth::GoogHeader,
            headers: Vec::new(),
            route: "models",
        };
        let answer = app.upstream.call(pool, &up).await?;
        let page: Value = match read_whole(app, answer.response).await {
            Ok((_, b)) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(GatewayError::AnswerTimeout) => return Err(Failure::Timeout),
            Err(e) => return Err(Failure::Network(e.to_string())),
        };
        if let Some(list) = page.get("models").and_then(Value::as_array) {
            models.extend(list.iter().cloned());
        }
        token = page
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(models)
}

/// Percent-encode a query value (RFC 3986 unreserved characters kept).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /v1/models` (id = None) and `GET /v1/models/{id}`.
pub async fn models(
    app: Arc<App>,
    id: Option<String>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    if let Some(id) = &id
        && !valid_model(openai::bare_model(id))
    {
        return Err(GatewayError::InvalidModel(id.clone()));
    }
    let models = list_all_models(&app, &app.pool, false)
        .await
        .map_err(|f| upstream_failed(&app, f, "", false))?;
    let list = {
        let cfg = app.cfg();
        let mut list = openai::models::translate_list(&models, &cfg.translate);
        openai::models::apply_rules(&mut list, &cfg.model_aliases, &cfg.filtered_models);
        list
    };
    let Some(id) = id else {
        return Ok(body::json(StatusCode::OK, &list));
    };
    let id = openai::bare_model(&id);
    let found = list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|m| m["id"] == id));
    match found {
        Some(m) => {
            log.model = id.to_string();
            Ok(body::json(StatusCode::OK, m))
        }
        None => Err(GatewayError::ModelNotFound(id.chars().take(100).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_cannot_escape_the_path() {
        assert!(valid_model("gemini-2.5-flash"));
        assert!(valid_model("gemini-2.0-flash-001"));
        for bad in ["", "a/b", "../x", "a?b", "a#b", "a%2Fb", "a b", "..", "x\n"] {
            assert!(!valid_model(bad), "{bad:?}");
        }
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode_query("a b/c=="), "a%20b%2Fc%3D%3D");
    }
}
