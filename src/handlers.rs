//! The OpenAI chat handler, `/v1/chat/completions` (`/v1/embeddings` and
//! `/v1/models` are in [`crate::models_api`]), and what the other API
//! handlers share with it: model rules, opening a stream with retries. Each reads and checks the request, calls the pure
//! translation in [`crate::openai`], runs the call over the key pool, and
//! translates the answer back — streaming it chunk by chunk when asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::answer::{LogInfo, empty_failed, upstream_failed};
use crate::app::{App, Lane};
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
    Ok(alias_of(app, client)?.unwrap_or_else(|| client.to_string()))
}

/// [`gemini_model`] for a bare name: the Gemini model when an alias replaces
/// `client`, `None` when `client` itself is called (nothing allocated).
fn alias_of(app: &App, client: &str) -> Result<Option<String>, GatewayError> {
    refuse_filtered(app, client, client)?;
    let cfg = app.cfg();
    let model = crate::model::resolve_alias(&cfg.model_aliases, client);
    if !valid_model(&model) {
        return Err(GatewayError::InvalidModel(model.into_owned()));
    }
    refuse_filtered(app, &model, client)?;
    Ok((model != client).then(|| model.into_owned()))
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
    let client = openai::bare_model(m);
    if client.is_empty() {
        return Ok(None);
    }
    // `gemini_model` takes `models/` off once more (`models/models/x`).
    let bare = openai::bare_model(client);
    let model = match alias_of(app, bare)? {
        Some(target) => target,
        None if bare == client => return Ok(None),
        None => bare.to_string(),
    };
    let client = client.to_string();
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
    chat_on(app, req, log, Lane::Gemini).await
}

/// [`chat`] on `lane`'s upstream and pool (`/vertex-express/v1/chat/completions`
/// on [`Lane::Vertex`]).
pub async fn chat_on(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
    lane: Lane,
) -> Result<Response<Body>, GatewayError> {
    // Each step is awaited on the heap: a stream waiting for its first
    // event (for minutes, thousands at once) then holds only the state of
    // the step it waits in, not the union of every step's state machine.
    let (mut call, pin) = Box::pin(prepare_chat(&app, req)).await?;
    // Files pin a call to their key in the Gemini pool only.
    let pin = pin.filter(|_| lane == Lane::Gemini);
    log.model.clone_from(&call.model);
    if call.stream {
        return Box::pin(chat_stream(app, call, pin, log, lane)).await;
    }
    let every = app.cfg().heartbeat;
    if app.cfg().nonstream_keepalive && !every.is_zero() {
        return Box::pin(chat_keepalive(app, call, pin, log, every, lane)).await;
    }
    let path = app.path_on(lane, &format!("/models/{}:generateContent", call.model));
    let up = Call {
        method: Method::POST,
        path,
        body: Bytes::from(std::mem::take(&mut call.body)),
        model: &call.model,
        auth: Auth::GoogHeader,
        headers: json_headers(),
        route: log.route,
    };
    let answer = Box::pin(first_answer(&app, &up, pin, log)).await?;
    let created = unix_now();
    let reading = crate::answer::read_answer(&app, &up, answer, pin.is_some(), log);
    let answer = Box::pin(reading).await?;
    whole_answer(&app, &call, answer, created, app.pool_on(lane))
}

/// A non-streamed chat kept alive with whitespace (`NONSTREAM_KEEPALIVE`,
/// see [`crate::keepalive`]).
async fn chat_keepalive(
    app: Arc<App>,
    mut call: PreparedCall,
    pin: Option<usize>,
    log: &mut LogInfo,
    every: Duration,
    lane: Lane,
) -> Result<Response<Body>, GatewayError> {
    let path = app.path_on(lane, &format!("/models/{}:generateContent", call.model));
    let body = Bytes::from(std::mem::take(&mut call.body));
    let (route, a) = (log.route, app.clone());
    let making = async move {
        let up = Call {
            method: Method::POST,
            path,
            body,
            model: &call.model,
            auth: Auth::GoogHeader,
            headers: json_headers(),
            route,
        };
        let mut log = LogInfo {
            route,
            ..LogInfo::default()
        };
        let answer = first_answer(&app, &up, pin, &mut log).await?;
        let created = unix_now();
        let answer = crate::answer::read_answer(&app, &up, answer, pin.is_some(), &mut log).await?;
        let res = whole_answer(&app, &call, answer, created, app.pool_on(lane))?;
        Ok((res, log.key))
    };
    let budget = crate::longcall::current();
    let making = Box::pin(crate::longcall::scoped(budget, making));
    crate::keepalive::respond(&a, making, every, crate::error::Api::OpenAi, log).await
}

/// One call over the pool, or on key `pin` only (the owner of a Gemini file
/// the call names), its latency and retries counted.
async fn first_answer(
    app: &App,
    up: &Call<'_>,
    pin: Option<usize>,
    log: &mut LogInfo,
) -> Result<Answer, GatewayError> {
    let started = Instant::now();
    let pool = app.pool_for(&up.path);
    let answer = crate::gemini::owners::call_on(app, pool, up, pin)
        .await
        .map_err(|f| upstream_failed(app, f, up.model, false))?;
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);
    log.key = pool.masked(answer.key).to_string();
    Ok(answer)
}

/// A streamed chat: the stream is opened (with retries) up to its first
/// content. If that takes longer than `HEARTBEAT_SECONDS`, the 200 goes out
/// and `: keep-alive` comments flow while the opening goes on (other keys
/// included, invisibly); a failure then ends the stream with an error
/// chunk and `[DONE]`.
async fn chat_stream(
    app: Arc<App>,
    call: PreparedCall,
    pin: Option<usize>,
    log: &mut LogInfo,
    lane: Lane,
) -> Result<Response<Body>, GatewayError> {
    // Fake streaming: a non-streamed call, sent on as stream events.
    let fake = app.cfg().fake_stream_for(&call.model);
    let path = if fake {
        app.path_on(lane, &format!("/models/{}:generateContent", call.model))
    } else {
        let rest = format!("/models/{}:streamGenerateContent?alt=sse", call.model);
        app.path_on(lane, &rest)
    };
    let heartbeat = app.cfg().heartbeat;
    // Built outside this function's state machine: a local async block
    // would keep its full size here (moved-out locals keep their storage).
    let mut opening = stream_opening(app.clone(), call, pin, path, log.route, fake);
    let created = unix_now();
    let done = if heartbeat.is_zero() {
        Some(opening.as_mut().await)
    } else {
        crate::longcall::within(&mut opening, heartbeat).await
    };
    if let Some(done) = done {
        let (call, opened) = done?;
        log.key = app.pool_on(lane).masked(opened.key()).to_string();
        let masked = log.key.clone();
        let started = start_stream(&app, &call, opened, created, masked, lane);
        return Ok(Box::pin(started).await);
    }
    // Silent for HEARTBEAT_SECONDS: commit the 200 and keep the line alive.
    let opening = Box::pin(crate::keepalive::until_drained(&app, opening));
    let beat = crate::longcall::OPENAI_HEARTBEAT;
    let out_body = body::beating_into(opening, heartbeat, beat, 32, move |done, tx| {
        after_opening(app, done, created, lane, tx)
    });
    Ok(sse_response(out_body))
}

/// The rest of a stream whose opening outlasted `HEARTBEAT_SECONDS`: its
/// events pumped to the client, or its failure as an error chunk and
/// `[DONE]`.
async fn after_opening(
    app: Arc<App>,
    done: Result<(PreparedCall, Opened), GatewayError>,
    created: u64,
    lane: Lane,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    match done {
        Ok((call, opened)) => {
            let masked = app.pool_on(lane).masked(opened.key()).to_string();
            let served = (masked, lane);
            if let Some(pump) = feed(&app, &call, opened, created, served, &tx).await {
                pump.run().await;
            }
        }
        Err(e) => {
            let res = e.into_openai();
            let error = res.into_body().collect().await.map(|c| c.to_bytes());
            let mut out = b"data: ".to_vec();
            out.extend_from_slice(&error.unwrap_or_default());
            out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
            let _ = tx.send(Bytes::from(out)).await;
        }
    }
}

/// A stream's opening: its first answer over the pool (or on key `pin`),
/// then its first content event with retries on other keys, or the whole
/// answer when `fake` streaming; on the heap, under the request's deadline
/// wherever it is polled.
fn stream_opening(
    app: Arc<App>,
    mut call: PreparedCall,
    pin: Option<usize>,
    path: String,
    route: &'static str,
    fake: bool,
) -> std::pin::Pin<
    Box<impl Future<Output = Result<(PreparedCall, Opened), GatewayError>> + Send + use<>>,
> {
    // The body is kept for retries while the stream opens: at its size.
    call.body.shrink_to_fit();
    let body = Bytes::from(std::mem::take(&mut call.body));
    let budget = crate::longcall::current();
    let opening = async move {
        let up = Call {
            method: Method::POST,
            path,
            body,
            model: &call.model,
            auth: Auth::GoogHeader,
            headers: json_headers(),
            route,
        };
        let mut log = LogInfo {
            route,
            ..LogInfo::default()
        };
        // Boxed, as the retries in `open_stream_on`: a silent stream's
        // opening keeps only the state of the step it waits in.
        let answer = Box::pin(first_answer(&app, &up, pin, &mut log)).await?;
        let pinned = pin.is_some();
        let opened = if fake {
            let reading = crate::answer::read_answer(&app, &up, answer, pinned, &mut log);
            Opened::Whole(Box::pin(reading).await?)
        } else {
            Opened::Stream(open_stream_on(&app, &up, answer, pinned, &mut log).await?)
        };
        Ok::<_, GatewayError>((call, opened))
    };
    Box::pin(crate::longcall::scoped(budget, opening))
}

/// Read a chat request and translate it ([`translate_chat`]); the model
/// must be a model id. Also the key the call must go on when it names a
/// Gemini file or cache the gateway saw created (`FILES_USER_ISOLATION`
/// applies: another token's file is a 404).
async fn prepare_chat(
    app: &App,
    req: Request<Incoming>,
) -> Result<(PreparedCall, Option<usize>), GatewayError> {
    let caller = crate::gemini::owners::Caller::of(app, &req);
    let bytes = read_nonempty_body(app, req).await?;
    let call = translate_chat(app, &bytes).await?;
    if !valid_model(&call.model) {
        return Err(GatewayError::InvalidModel(call.model));
    }
    refuse_filtered(app, &call.model, &call.client_model)?;
    let pin = crate::gemini::owners::pin_body(app, &caller, &call.body).await?;
    Ok((call, pin))
}

/// A whole non-streamed answer read (see [`crate::answer::read_answer`]).
type WholeAnswer = crate::answer::Whole;

/// A non-streamed answer: translated, the key of `pool` that served it masked.
fn whole_answer(
    app: &App,
    call: &PreparedCall,
    answer: WholeAnswer,
    created: u64,
    pool: &KeyPool,
) -> Result<Response<Body>, GatewayError> {
    let bytes = answer.bytes;
    let mut meter = answer.meter;
    let ctx = openai::response::ResponseCtx {
        model: &call.client_model,
        created,
        opts: &app.cfg().translate,
    };
    let Some(out) = openai::response::translate_response_calls(&bytes, &ctx, call.one_call) else {
        return Err(GatewayError::BadAnswer(
            "Gemini answered with invalid JSON.".into(),
        ));
    };
    meter.tell(out.prompt_tokens, out.output_tokens, out.thought_tokens);
    // An upstream that echoes the pool key must not hand it to the client.
    let out = crate::upstream::redact(Bytes::from(out.body), pool.key(answer.key));
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
    pub(crate) incoming: crate::lanes::UpBody,
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
pub(crate) fn open_with_retries<'a>(
    app: &'a App,
    up: &'a Call<'_>,
    answer: Answer,
    log: &'a mut LogInfo,
) -> impl Future<Output = Result<OpenedStream, GatewayError>> + 'a {
    open_stream_on(app, up, answer, false, log)
}

/// [`open_with_retries`], with no retry on another key when `pinned`. A
/// plain function around an `async move` block, not an `async fn`: the
/// answer stays in one slot (each retry's replaces it), where an `async fn`
/// keeps its arguments and a moved copy of each, doubling their share of a
/// silent stream's state.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn holds its arguments twice"
)]
fn open_stream_on<'a>(
    app: &'a App,
    up: &'a Call<'_>,
    mut answer: Answer,
    pinned: bool,
    log: &'a mut LogInfo,
) -> impl Future<Output = Result<OpenedStream, GatewayError>> + 'a {
    async move {
        let idle = app.cfg().stream_idle_timeout;
        let pool = app.pool_for(&up.path);
        let mut used = answer.attempts;
        let mut tried = crate::answer::tried_first(pool, answer.key, pinned);
        loop {
            let mut parser = openai::stream::SseParser::new(MAX_EVENT);
            let mut pending: Vec<String> = Vec::new();
            let mut incoming = answer.response.into_body();
            let opened = open_stream(
                &mut incoming,
                &mut parser,
                &mut pending,
                idle,
                app.cfg().cooldown,
                &mut answer.meter,
            );
            let outcome = match opened.await {
                Ok(()) => {
                    return Ok(OpenedStream {
                        incoming,
                        parser,
                        pending,
                        key: answer.key,
                        meter: answer.meter,
                    });
                }
                Err(outcome) => outcome,
            };
            let key = answer.key;
            crate::debug!(
                "stream on key {} failed before its first event; trying another key",
                pool.masked(key)
            );
            let empty = matches!(&outcome, Outcome::Transient(m) if m.starts_with("empty_answer"));
            if empty {
                // Logged as `empty_answer`; the key is not charged.
                app.stats.error(
                    up.model,
                    pool.masked(key),
                    502,
                    crate::longcall::EMPTY_ANSWER,
                );
            } else {
                pool.report(key, up.model, &outcome);
            }
            let (status, message) = stream_status(&outcome);
            let upstream = &app.upstream;
            upstream.answer_failed(&mut answer.meter, pool, up, key, status, &outcome, message);
            let silent = is_silent(&outcome);
            let retry = crate::answer::retry_stream(app, pool, up, &mut tried, used, silent, true);
            match retry.await {
                Some(Ok(a)) => {
                    used += a.attempts;
                    answer = a;
                }
                // No budget left, or no other key to try: the stream's own failure
                // is the answer.
                None | Some(Err(Failure::Unavailable(_))) if empty => {
                    log.key = pool.masked(key).to_string();
                    return Err(empty_failed());
                }
                None | Some(Err(Failure::Unavailable(_))) => {
                    log.key = pool.masked(key).to_string();
                    return Err(stream_failed(&outcome));
                }
                Some(Err(f)) => {
                    log.key.clear();
                    return Err(upstream_failed(app, f, up.model, false));
                }
            }
        }
    }
}

/// Whether a stream failed for staying silent (a timed-out generation).
fn is_silent(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Transient(m) if m.starts_with("stream silent"))
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
            "Gemini's stream stayed silent before its first event for longer than STREAM_IDLE_TIMEOUT (or until the request's REQUEST_TIMEOUT).",
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
async fn start_stream(
    app: &Arc<App>,
    call: &PreparedCall,
    opened: Opened,
    created: u64,
    masked: String,
    lane: Lane,
) -> Response<Body> {
    let (tx, out_body) = ChannelBody::pair(32);
    // A fresh channel has room for the first chunk: `feed` completes at once.
    if let Some(pump) = feed(app, call, opened, created, (masked, lane), &tx).await {
        tokio::spawn(pump.run());
    }
    sse_response(out_body)
}

/// What a pump has written to `out` so far, with secrets masked (the
/// buffer is left empty); at the end (`ended`), with the bytes the
/// redactor still held.
pub(crate) fn take_redacted(
    out: &mut Vec<u8>,
    redactor: &mut crate::upstream::Redactor,
    ended: bool,
) -> Bytes {
    let mut chunk = if out.is_empty() {
        Bytes::new()
    } else {
        redactor.push_from(out)
    };
    if ended {
        let rest = redactor.finish();
        if !rest.is_empty() {
            chunk = Bytes::from([&chunk[..], &rest[..]].concat());
        }
    }
    chunk
}

/// The head of a streamed answer around `body`: `text/event-stream`, not cached, not
/// buffered by proxies (`x-accel-buffering: no`).
pub(crate) fn sse_response(body: Body) -> Response<Body> {
    let mut res = Response::new(body);
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

/// Translate the events read while opening and send them; the pump that
/// carries the rest, unless the stream already ended. `served`: the
/// serving key, masked, and the lane whose pool holds it.
async fn feed(
    app: &Arc<App>,
    call: &PreparedCall,
    opened: Opened,
    created: u64,
    served: (String, Lane),
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> Option<Pump> {
    let (masked, lane) = served;
    let pool = app.pool_on(lane);
    let mut tr = openai::stream::StreamTranslator::new(
        &call.client_model,
        created,
        call.include_usage,
        &app.cfg().translate,
    )
    .first_call_only(call.one_call);
    let opened = match opened {
        Opened::Stream(s) => s,
        Opened::Whole(w) => {
            feed_whole(pool, &mut tr, w, tx).await;
            return None;
        }
    };
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
    let mut redactor = crate::upstream::Redactor::new(pool.key(opened.key));
    if !out.is_empty() {
        let first = redactor.push(Bytes::from(std::mem::take(&mut out)));
        if tx.send(first).await.is_err() {
            return None;
        }
    }
    if ended_early {
        let rest = redactor.finish();
        if !rest.is_empty() {
            let _ = tx.send(rest).await;
        }
        return None;
    }
    Some(Pump {
        app: app.clone(),
        model: call.model.clone(),
        masked,
        incoming: opened.incoming,
        parser: opened.parser,
        tr,
        redactor,
        tx: tx.clone(),
        out,
        meter: opened.meter,
    })
}

/// What an opening produced: an upstream stream at its first content, or
/// (fake streaming) a whole answer to send as stream events.
enum Opened {
    Stream(OpenedStream),
    Whole(WholeAnswer),
}

impl Opened {
    /// The pool key serving it.
    fn key(&self) -> usize {
        match self {
            Opened::Stream(s) => s.key,
            Opened::Whole(w) => w.key,
        }
    }
}

/// Fake streaming: send a whole answer as ordinary chunks (text in pieces,
/// tool calls, usage, finish reason; [`crate::longcall::answer_events`]).
async fn feed_whole(
    pool: &KeyPool,
    tr: &mut openai::stream::StreamTranslator,
    whole: WholeAnswer,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut out: Vec<u8> = Vec::with_capacity(whole.bytes.len() + 1024);
    match crate::longcall::answer_events(&whole.bytes) {
        Some(events) => {
            for ev in &events {
                if let openai::stream::Step::Ended = tr.on_event(ev, &mut out) {
                    break;
                }
            }
            tr.finish(&mut out);
        }
        None => tr.fail(
            "Gemini answered with invalid JSON.",
            "upstream_error",
            &mut out,
        ),
    }
    let mut redactor = crate::upstream::Redactor::new(pool.key(whole.key));
    let mut chunk = redactor.push(Bytes::from(out)).to_vec();
    chunk.extend_from_slice(&redactor.finish());
    let _ = tx.send(Bytes::from(chunk)).await;
}

/// The task that carries a Gemini stream to the client as OpenAI chunks.
struct Pump {
    app: Arc<App>,
    model: String,
    /// The serving key, masked (for `/status`'s errors).
    masked: String,
    incoming: crate::lanes::UpBody,
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
    /// client goes away (dropping `incoming` cancels the upstream call);
    /// `: keep-alive` every `HEARTBEAT_SECONDS` of silence.
    async fn run(mut self) {
        let (idle, heartbeat) = {
            let cfg = self.app.cfg();
            (cfg.stream_idle_timeout, cfg.heartbeat)
        };
        let mut events: Vec<String> = Vec::new();
        let mut heard = Instant::now();
        let mut drain = self.app.drain.subscribe();
        loop {
            let left = idle.saturating_sub(heard.elapsed());
            let wait = if heartbeat.is_zero() {
                left
            } else {
                left.min(heartbeat)
            };
            let next = tokio::select! {
                next = tokio::time::timeout(wait, self.incoming.frame()) => next,
                () = crate::longcall::drained(&mut drain) => {
                    // Shutdown: end with an error chunk and [DONE], not a cut.
                    let mut out = std::mem::take(&mut self.out);
                    self.tr.fail("The gateway is shutting down; retry the request.", "server_shutting_down", &mut out);
                    let _ = self.tx.send(self.redactor.push(Bytes::from(out))).await;
                    return;
                }
            };
            if next.is_err() && wait < left {
                // Silent for HEARTBEAT_SECONDS (not yet STREAM_IDLE_TIMEOUT).
                let beat = Bytes::from_static(crate::longcall::OPENAI_HEARTBEAT);
                if self.tx.send(beat).await.is_err() {
                    return;
                }
                continue;
            }
            heard = Instant::now();
            let ended = self.step(next, &mut events);
            let chunk = crate::handlers::take_redacted(&mut self.out, &mut self.redactor, ended);
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

/// Read a Gemini stream up to its first event with content (or an answer
/// such as a blocked prompt). `Err` says why the stream failed before that
/// (so it can be retried on another key): it broke, went silent, ended
/// empty or with no content (`empty_answer`), or opened with an error
/// event that is not the client's fault.
async fn open_stream(
    body: &mut crate::lanes::UpBody,
    parser: &mut openai::stream::SseParser,
    events: &mut Vec<String>,
    idle: Duration,
    cooldown: Duration,
    meter: &mut Meter,
) -> Result<(), Outcome> {
    loop {
        // The first event must come before the request's deadline too.
        match tokio::time::timeout(crate::longcall::clamp(idle), body.frame()).await {
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
                    // Events without content (an empty answer so far) are
                    // kept, and the stream read on to its first content.
                    if events
                        .iter()
                        .any(|e| !crate::longcall::is_empty_answer(e.as_bytes()))
                    {
                        break;
                    }
                }
            }
        }
    }
    if events.is_empty() {
        return Err(Outcome::Transient("empty stream".into()));
    }
    let first = events
        .iter()
        .find(|e| !crate::longcall::is_empty_answer(e.as_bytes()));
    let Some(first) = first else {
        return Err(Outcome::Transient(
            "empty_answer: Gemini's stream ended with no content".into(),
        ));
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
}
