//! The OpenAI Responses API handlers: `POST /v1/responses` (whole or
//! streamed) and `GET` / `DELETE /v1/responses/{id}`. A create reads the
//! body within the chat route's limits, continues a stored conversation
//! (`previous_response_id`, `item_reference`), translates through
//! [`crate::responses`] and the chat translator, runs the call over the
//! key pool exactly as the chat route does (same retries, also before a
//! stream's first byte, error classes, metering), and answers with a
//! `response` object or its event stream; with `store` (the default) the
//! conversation is kept for `RESPONSES_TTL`, owned by the caller's token.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::answer::{LogInfo, upstream_failed};
use crate::app::App;
use crate::body::{self, Body, ChannelBody};
use crate::error::GatewayError;
use crate::handlers::{FrameRead, OpenedStream, json_headers, open_with_retries, valid_model};
use crate::keys::unix_now;
use crate::openai;
use crate::request::{bearer, parse_json, read_nonempty_body};
use crate::responses::{self, Assembler, Entry, owner_of, remap_param};
use crate::store::meter::Meter;
use crate::upstream::{Auth, Call};

/// OpenAI's 404 for a response id that is unknown, expired, not stored or
/// another token's (all look the same).
fn not_found(param: Option<&str>) -> Response<Body> {
    let body = openai::error::error_body(
        "No response with this id was found (it may have expired, been deleted, or been created with store: false).",
        "invalid_request_error",
        Some("not_found"),
        param,
    );
    body::json(StatusCode::NOT_FOUND, &body)
}

/// The caller's owner hash (its bearer token; empty on an open gateway).
fn owner<B>(req: &Request<B>) -> String {
    owner_of(bearer(req).unwrap_or(""))
}

/// `GET` and `DELETE /v1/responses/{id}` (a response kept in the store by
/// another replica or before a restart too).
pub async fn by_id(
    app: &App,
    method: &Method,
    owner_token: Option<&str>,
    id: &str,
) -> Response<Body> {
    let who = owner_of(owner_token.unwrap_or(""));
    let found = stored(app, id, &who).await;
    if *method == Method::DELETE {
        return if found.is_some() && app.responses.delete(id, &who) {
            app.store.forget(&format!("resp:{id}"));
            body::json(
                StatusCode::OK,
                &json!({"id": id, "object": "response", "deleted": true}),
            )
        } else {
            not_found(None)
        };
    }
    match found {
        Some(e) => body::json(StatusCode::OK, &e.response),
        None => not_found(None),
    }
}

/// The conversation so far: the stored one of `previous_response_id`, then
/// this request's items with `item_reference`s resolved. `Err(None)`: the
/// previous response is not there (404).
async fn conversation(
    app: &App,
    obj: &serde_json::Map<String, Value>,
    previous: Option<&str>,
    who: &str,
) -> Result<Vec<Value>, Option<GatewayError>> {
    let mut items = Vec::new();
    if let Some(prev) = previous {
        let e = stored(app, prev, who).await.ok_or(None)?;
        items = e.input;
        items.extend(e.output);
    }
    let input = responses::input_items(obj).map_err(|e| Some(GatewayError::Invalid(e)))?;
    for (i, item) in input.into_iter().enumerate() {
        if item.get("type").and_then(Value::as_str) != Some("item_reference") {
            items.push(item);
            continue;
        }
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        match stored_item(app, id, who).await {
            Some(found) => items.push(found),
            None => {
                return Err(Some(GatewayError::Invalid(openai::TranslateError::new(
                    format!("input[{i}].id"),
                    "no stored item has this id (unknown, expired, or another token's)",
                ))));
            }
        }
    }
    if items.len() > responses::MAX_ITEMS {
        return Err(Some(GatewayError::Invalid(openai::TranslateError::new(
            "input",
            format!("too many input items (at most {})", responses::MAX_ITEMS),
        ))));
    }
    Ok(items)
}

/// What the stored response needs besides the answer.
struct Keep {
    /// Whether to keep it (`store`).
    store: bool,
    /// The owner hash.
    owner: String,
    /// The conversation's input items.
    items: Vec<Value>,
}

impl Keep {
    /// Keep the finished response (when `store`).
    fn put(self, app: &App, asm: &Assembler, response: &Value) {
        if !self.store {
            return;
        }
        let ttl = app.cfg().responses_ttl.as_secs();
        let entry = Entry {
            owner: self.owner,
            expires: unix_now() + ttl,
            input: self.items,
            output: asm.output().to_vec(),
            response: response.clone(),
            bytes: 0,
        };
        // Written behind to the store too (file / Redis), so that a restart
        // or another replica can continue the conversation.
        let id = asm.id();
        app.store
            .keep(&format!("resp:{id}"), entry.to_json(), entry.expires);
        for iid in entry.output.iter().filter_map(|i| i.get("id")?.as_str()) {
            app.store
                .keep(&format!("item:{iid}"), id.to_string(), entry.expires);
        }
        app.responses.put(id, entry);
    }
}

/// The stored response `id` if `who` made it: this process's memory first,
/// then the store (a restart, another replica), within the store's short
/// read timeout; what the store had is remembered in memory.
async fn stored(app: &App, id: &str, who: &str) -> Option<Entry> {
    if let Some(e) = app.responses.get(id, who) {
        return Some(e);
    }
    let text = app.store.kept(&format!("resp:{id}")).await?;
    let e = Entry::from_json(&text)?;
    if e.expires <= unix_now() {
        return None;
    }
    app.responses.put(id, e.clone());
    (e.owner == who).then_some(e)
}

/// An output item of a response `who` made, by item id (memory, then the
/// store as in [`stored`]).
async fn stored_item(app: &App, item_id: &str, who: &str) -> Option<Value> {
    if let Some(found) = app.responses.item(item_id, who) {
        return Some(found);
    }
    let rid = app.store.kept(&format!("item:{item_id}")).await?;
    stored(app, &rid, who).await?;
    app.responses.item(item_id, who)
}

/// `POST /v1/responses`.
pub async fn create(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let who = owner(&req);
    let bytes = read_nonempty_body(&app, req).await?;
    let mut value = parse_json(&bytes)?;
    let client = crate::handlers::alias_in_body(&app, &mut value)?;
    let Some(obj) = value.as_object() else {
        return Err(GatewayError::Invalid(openai::TranslateError::new(
            "body",
            "the request body must be a JSON object",
        )));
    };
    responses::check_fields(obj).map_err(GatewayError::Invalid)?;
    let head = responses::head(obj).map_err(GatewayError::Invalid)?;
    let items = match conversation(&app, obj, head.previous.as_deref(), &who).await {
        Ok(items) => items,
        Err(None) => return Ok(not_found(Some("previous_response_id"))),
        Err(Some(e)) => return Err(e),
    };
    let opts = app.cfg().translate.clone();
    let mut tr = responses::translate(&value, &items, &opts).map_err(GatewayError::Invalid)?;
    if let Some(client) = client {
        tr.settings.model = client;
    }
    let origin = tr.origin;
    let chat = crate::gemini::fetch::inline_remote_images(&app, tr.chat)
        .await
        .map_err(|e| GatewayError::Invalid(remap_param(e, &origin)))?;
    let call = openai::chat::prepare_request(&chat, &opts)
        .map_err(|e| GatewayError::Invalid(remap_param(e, &origin)))?;
    if !valid_model(&call.model) {
        return Err(GatewayError::InvalidModel(call.model));
    }
    crate::handlers::refuse_filtered(&app, &call.model, &tr.settings.model)?;
    log.model.clone_from(&call.model);
    let settings = tr.settings;
    let keep = Keep {
        store: settings.store,
        owner: who,
        items,
    };
    let stream = settings.stream;
    let path = if stream {
        format!("/models/{}:streamGenerateContent?alt=sse", call.model)
    } else {
        format!("/models/{}:generateContent", call.model)
    };
    let up = Call {
        method: Method::POST,
        path: app.upstream.path(&path),
        body: Bytes::from(call.body),
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
    let asm = Assembler::new(settings, unix_now(), stream);
    if !stream {
        let answer = crate::answer::read_answer(&app, &up, answer, false, log).await?;
        return whole(&app, asm, keep, &answer.bytes, answer.key);
    }
    let opened = open_with_retries(&app, &up, answer, log).await?;
    log.key = app.pool.masked(opened.key).to_string();
    Ok(start_stream(
        &app,
        call.model,
        asm,
        keep,
        opened,
        log.key.clone(),
    ))
}

/// A whole answer: translated, kept, the pool key redacted.
fn whole(
    app: &App,
    mut asm: Assembler,
    keep: Keep,
    bytes: &[u8],
    key: usize,
) -> Result<Response<Body>, GatewayError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(GatewayError::BadAnswer(
            "Gemini answered with invalid JSON.".into(),
        ));
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(GatewayError::BadAnswer(
            "Gemini answered with invalid JSON.".into(),
        ));
    }
    let mut sink = Vec::new();
    let response = if asm.feed(text, &mut sink) {
        asm.snapshot(None)
    } else {
        asm.finish(&mut sink)
    };
    keep.put(app, &asm, &response);
    let out = serde_json::to_vec(&response).unwrap_or_default();
    let out = crate::upstream::redact(Bytes::from(out), app.pool.key(key));
    let mut res = Response::new(body::full(out));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// The streamed answer: the events read while opening are translated and
/// queued before the response is returned; a task pumps the rest.
fn start_stream(
    app: &Arc<App>,
    model: String,
    mut asm: Assembler,
    keep: Keep,
    opened: OpenedStream,
    masked: String,
) -> Response<Body> {
    let (tx, out_body) = ChannelBody::pair(32);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    for ev in &opened.pending {
        if asm.feed(ev, &mut out) {
            break;
        }
    }
    let mut redactor = crate::upstream::Redactor::new(app.pool.key(opened.key));
    if !out.is_empty() {
        let first = redactor.push(Bytes::from(std::mem::take(&mut out)));
        let _ = tx.try_send(first);
    }
    if asm.is_done() {
        let rest = redactor.finish();
        if !rest.is_empty() {
            let _ = tx.try_send(rest);
        }
    } else {
        let pump = Pump {
            app: app.clone(),
            model,
            masked,
            incoming: opened.incoming,
            parser: opened.parser,
            asm,
            keep: Some(keep),
            redactor,
            tx,
            out,
            meter: opened.meter,
        };
        tokio::spawn(pump.run());
    }
    crate::handlers::sse_response(out_body)
}

/// The task that carries a Gemini stream to the client as Responses events.
struct Pump {
    app: Arc<App>,
    model: String,
    /// The serving key, masked.
    masked: String,
    incoming: crate::lanes::UpBody,
    parser: openai::stream::SseParser,
    asm: Assembler,
    /// Kept when the response completes.
    keep: Option<Keep>,
    redactor: crate::upstream::Redactor,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    /// Translated bytes not sent yet.
    out: Vec<u8>,
    /// The attempt's usage, recorded when the pump ends.
    meter: Meter,
}

impl Pump {
    /// Read, translate and send until the stream ends, breaks, goes silent
    /// for `STREAM_IDLE_TIMEOUT` (each ends with `error` + `response.failed`),
    /// or the client goes away.
    async fn run(mut self) {
        let idle = self.app.cfg().stream_idle_timeout;
        let mut events: Vec<String> = Vec::new();
        loop {
            let next = tokio::time::timeout(idle, self.incoming.frame()).await;
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

    /// A failure mid-stream: logged, and the terminal events.
    fn fail(&mut self, message: &str, code: &str, status: u16, why: &str) {
        self.asm.fail(message, code, &mut self.out);
        let stats = &self.app.stats;
        stats.error(&self.model, &self.masked, status, why);
    }

    /// Translate one read of the upstream body; whether the stream ended.
    fn step(&mut self, next: FrameRead, events: &mut Vec<String>) -> bool {
        match next {
            Err(_) => {
                self.fail(
                    "Gemini's stream went silent for longer than STREAM_IDLE_TIMEOUT.",
                    "timeout",
                    504,
                    "stream idle timeout",
                );
                true
            }
            Ok(None) => {
                if let Some(last) = self.parser.finish() {
                    let _ = self.asm.feed(&last, &mut self.out);
                }
                if !self.asm.is_done() {
                    let response = self.asm.finish(&mut self.out);
                    if let Some(keep) = self.keep.take() {
                        keep.put(&self.app, &self.asm, &response);
                    }
                }
                true
            }
            Ok(Some(Err(_))) => {
                self.fail(
                    "The connection to Gemini broke in the middle of the answer.",
                    "server_error",
                    502,
                    "stream cut mid-way",
                );
                true
            }
            Ok(Some(Ok(frame))) => {
                let Some(data) = frame.data_ref() else {
                    return false;
                };
                self.meter.chunk(data);
                if self.parser.push(data, events).is_err() {
                    self.fail(
                        "Gemini sent an event that is too large.",
                        "server_error",
                        502,
                        "oversized event",
                    );
                    return true;
                }
                for ev in events.drain(..) {
                    if self.asm.feed(&ev, &mut self.out) {
                        return true;
                    }
                }
                false
            }
        }
    }
}
