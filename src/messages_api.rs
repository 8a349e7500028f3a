//! The Anthropic Messages handlers: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens` (also under `/anthropic` and `/hf`).
//! Each reads the request within the body limits, resolves the model
//! through `MODEL_ALIASES`, calls the pure translation in
//! [`crate::anthropic`], runs the call over the key pool with the chat
//! route's retries (before the first byte), error classes and metering, and
//! translates the answer back — streaming it event by event, with `ping`s
//! while Gemini is silent, when asked.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::answer::{LogInfo, read_whole, upstream_failed};
use crate::anthropic::{
    AnswerCtx, Assembler, Step, StreamTranslator, count_body, model_of, prepare, translate_answer,
};
use crate::app::App;
use crate::body::{self, Body, ChannelBody};
use crate::error::GatewayError;
use crate::handlers::{OpenedStream, json_headers, open_with_retries};
use crate::openai::stream::SseParser;
use crate::request::{parse_json, read_nonempty_body};
use crate::store::meter::Meter;
use crate::upstream::{Auth, Call};

/// Longest wait between `ping`s while Gemini is silent (Claude Code gives
/// up on a stream after 5 minutes without bytes).
const PING_EVERY: Duration = Duration::from_secs(15);

/// Most unknown member names remembered (each is logged once).
const MAX_LOGGED_NAMES: usize = 256;

/// Read the body and the Gemini model it is for (`MODEL_ALIASES` applied).
async fn read_request(
    app: &App,
    req: Request<Incoming>,
) -> Result<(Value, String, String), GatewayError> {
    let bytes = read_nonempty_body(app, req).await?;
    let value = match std::str::from_utf8(&bytes) {
        Ok(text) => serde_json::from_str(text).map_err(GatewayError::InvalidJson)?,
        Err(_) => parse_json(&bytes)?,
    };
    let client = model_of(&value).map_err(GatewayError::Invalid)?.to_string();
    let value = inline_remote_sources(app, value).await?;
    let model = crate::handlers::gemini_model(app, &client)?;
    Ok((value, client, model))
}

/// Where the `source` objects of image and document blocks are (top level
/// and inside `tool_result`s): `(JSON pointer of the block, param, source)`.
fn sources<'a>(req: &'a Value) -> Vec<(String, String, &'a serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    let mut visit = |b: &'a Value, ptr: String, param: String| {
        if matches!(
            b.get("type").and_then(Value::as_str),
            Some("image" | "document")
        ) && let Some(Value::Object(src)) = b.get("source")
        {
            out.push((ptr, param, src));
        }
    };
    let messages = req.get("messages").and_then(Value::as_array);
    for (i, m) in messages.into_iter().flatten().enumerate() {
        let Some(blocks) = m.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, b) in blocks.iter().enumerate() {
            let (ptr, param) = (
                format!("/messages/{i}/content/{j}"),
                format!("messages[{i}].content[{j}]"),
            );
            if let Some(inner) = b.get("content").and_then(Value::as_array) {
                for (k, c) in inner.iter().enumerate() {
                    visit(
                        c,
                        format!("{ptr}/content/{k}"),
                        format!("{param}.content[{k}]"),
                    );
                }
            }
            visit(b, ptr, param);
        }
    }
    out
}

/// Fetch the `http(s)` sources of image and document blocks and put them
/// inline (base64), as the chat route does with `image_url`s: the same
/// inline budget (the client's base64 data counted too), size and type
/// limits, `FETCH_TIMEOUT` and private-address rule
/// ([`crate::gemini::fetch::inline_remote_images`]). Errors name the block.
async fn inline_remote_sources(app: &App, mut req: Value) -> Result<Value, GatewayError> {
    let found = sources(&req);
    let is_url = |src: &serde_json::Map<String, Value>| {
        src.get("type").and_then(Value::as_str) == Some("url")
    };
    if !found.iter().any(|(_, _, src)| is_url(src)) {
        return Ok(req);
    }
    // One synthetic chat message holding every source as an `image_url`.
    let mut parts = Vec::with_capacity(found.len());
    let mut remote: Vec<(usize, String, String)> = Vec::new();
    for (ptr, param, src) in &found {
        let url = if is_url(src) {
            remote.push((parts.len(), ptr.clone(), param.clone()));
            src.get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            let mime = src.get("media_type").and_then(Value::as_str).unwrap_or("");
            let data = src.get("data").and_then(Value::as_str).unwrap_or("");
            format!("data:{mime};base64,{data}")
        };
        parts.push(serde_json::json!({"type": "image_url", "image_url": {"url": url}}));
    }
    drop(found);
    let synthetic = serde_json::json!({"messages": [{"role": "user", "content": parts}]});
    let fetched = crate::gemini::fetch::inline_remote_images(app, synthetic)
        .await
        .map_err(|mut e| {
            // Name the block, not the synthetic part.
            let k = e.param.as_deref().and_then(|p| {
                p.strip_prefix("messages[0].content[")?
                    .split(']')
                    .next()?
                    .parse::<usize>()
                    .ok()
            });
            e.param = match remote.iter().find(|(n, _, _)| Some(*n) == k) {
                Some((_, _, param)) => Some(format!("{param}.source.url")),
                None => Some("messages".into()),
            };
            GatewayError::Invalid(e)
        })?;
    for (n, ptr, _) in remote {
        let url = fetched
            .pointer(&format!("/messages/0/content/{n}/image_url/url"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some((head, data)) = url.strip_prefix("data:").and_then(|u| u.split_once(',')) else {
            continue;
        };
        let mime = head.split(';').next().unwrap_or("");
        if let Some(block) = req.pointer_mut(&ptr) {
            block["source"] =
                serde_json::json!({"type": "base64", "media_type": mime, "data": data});
        }
    }
    Ok(req)
}

/// Log each top-level member name the gateway does not know, once per
/// process (at most [`MAX_LOGGED_NAMES`] names are remembered).
fn note_unknown(names: &[String]) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if names.is_empty() {
        return;
    }
    let mut guard = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let seen = guard.get_or_insert_with(HashSet::new);
    for n in names {
        if seen.len() >= MAX_LOGGED_NAMES || seen.contains(n) {
            continue;
        }
        let shown: String = n
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        crate::info!("/v1/messages: accepted and ignored the unknown member `{shown}`");
        seen.insert(n.clone());
    }
}

/// Log, once per model (at most [`MAX_LOGGED_NAMES`] models remembered),
/// that a `web_search` tool was dropped beside function tools because the
/// model cannot combine them; whether this call logged.
fn note_dropped_search(model: &str) -> bool {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut guard = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let seen = guard.get_or_insert_with(HashSet::new);
    if seen.len() >= MAX_LOGGED_NAMES || seen.contains(model) {
        return false;
    }
    crate::info!(
        "/v1/messages: web_search dropped beside function tools on {model} (it cannot combine Google Search with function calling)"
    );
    seen.insert(model.to_string());
    true
}

/// A new message id: `msg_` and 24 hex digits, unique in this process.
fn message_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = crate::openai::response::hash_bytes(format!("{now}/{n}").as_bytes());
    format!("msg_{h:016x}{:08x}", n as u32)
}

/// `POST /v1/messages`.
pub async fn messages(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let (value, client, model) = read_request(&app, req).await?;
    let safety = app.cfg().translate.safety_settings.clone();
    let call = prepare(&value, &model, safety.as_ref()).map_err(GatewayError::Invalid)?;
    drop(value);
    note_unknown(&call.unknown);
    if call.search_dropped {
        note_dropped_search(&model);
    }
    log.model.clone_from(&model);
    // Stop sequences are matched by the gateway, on Gemini's stream even for
    // a whole answer, so that it can stop reading at the match.
    let via_stream = call.stream || !call.stops.is_empty();
    let path = if via_stream {
        app.upstream
            .path(&format!("/models/{model}:streamGenerateContent?alt=sse"))
    } else {
        app.upstream
            .path(&format!("/models/{model}:generateContent"))
    };
    let up = Call {
        method: Method::POST,
        path,
        body: Bytes::from(call.body),
        model: &model,
        auth: Auth::GoogHeader,
        headers: json_headers(),
        route: log.route,
    };
    let started = Instant::now();
    let answer = app
        .upstream
        .call(&app.pool, &up)
        .await
        .map_err(|f| upstream_failed(&app, f, &model, false))?;
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);
    log.key = app.pool.masked(answer.key).to_string();
    let id = message_id();
    if !via_stream {
        let answer = crate::answer::read_answer(&app, &up, answer, false, log).await?;
        return whole(&app, answer, &id, &client);
    }
    let opened = open_with_retries(&app, &up, answer, log).await?;
    log.key = app.pool.masked(opened.key).to_string();
    if !call.stream {
        let ctx = AnswerCtx {
            id: &id,
            model: &client,
        };
        return whole_until_stop(&app, Assembler::new(&ctx, &call.stops), opened).await;
    }
    let tr = StreamTranslator::new(&id, &client).with_stops(&call.stops);
    Ok(start_stream(&app, &model, tr, opened, log.key.clone()))
}

/// A non-streamed answer read whole: translated, the pool key redacted.
fn whole(
    app: &App,
    answer: crate::answer::Whole,
    id: &str,
    client: &str,
) -> Result<Response<Body>, GatewayError> {
    let bytes = answer.bytes;
    let ctx = AnswerCtx { id, model: client };
    let Some(out) = translate_answer(&bytes, &ctx) else {
        return Err(GatewayError::BadAnswer(
            "Gemini answered with invalid JSON.".into(),
        ));
    };
    let out = crate::upstream::redact(Bytes::from(out), app.pool.key(answer.key));
    let mut res = Response::new(body::full(out));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// A whole answer read from Gemini's stream (a request with stop
/// sequences): read until a stop sequence matches, then the stream is
/// dropped (so Gemini generates no further), or to its end; each read
/// bounded by `STREAM_IDLE_TIMEOUT`. The tokens Gemini counted until then
/// are the usage.
async fn whole_until_stop(
    app: &App,
    mut whole: Assembler,
    mut opened: OpenedStream,
) -> Result<Response<Body>, GatewayError> {
    let idle = app.cfg().stream_idle_timeout;
    let mut events = std::mem::take(&mut opened.pending);
    let broken = |m: &str| GatewayError::BadAnswer(m.to_string().into());
    loop {
        let mut done = false;
        for ev in events.drain(..) {
            if whole.on_event(&ev).map_err(|m| broken(&m))? {
                done = true;
                break;
            }
        }
        if done {
            break;
        }
        let wait = crate::longcall::clamp(idle);
        let read = tokio::time::timeout(wait, opened.incoming.frame()).await;
        match read {
            Err(_) => return Err(GatewayError::AnswerTimeout),
            Ok(None) => {
                events.extend(opened.parser.finish());
                let last = events
                    .drain(..)
                    .try_for_each(|ev| whole.on_event(&ev).map(drop));
                last.map_err(|m| broken(&m))?;
                break;
            }
            Ok(Some(Err(_))) => {
                return Err(broken(
                    "The connection to Gemini broke in the middle of the answer.",
                ));
            }
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    opened.meter.chunk(data);
                    if opened.parser.push(data, &mut events).is_err() {
                        return Err(broken("Gemini sent an event that is too large."));
                    }
                }
            }
        }
    }
    if !whole.complete() {
        return Err(broken(
            "Gemini's stream ended before its answer was complete.",
        ));
    }
    let Some(out) = whole.message() else {
        return Err(broken("Gemini answered with invalid JSON."));
    };
    let out = crate::upstream::redact(Bytes::from(out), app.pool.key(opened.key));
    let mut res = Response::new(body::full(out));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// `POST /v1/messages/count_tokens`: Gemini's `countTokens` →
/// `{"input_tokens": n}`.
pub async fn count_tokens(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let (value, _, model) = read_request(&app, req).await?;
    let body = count_body(&value, &model).map_err(GatewayError::Invalid)?;
    drop(value);
    log.model.clone_from(&model);
    let up = Call {
        method: Method::POST,
        path: app.upstream.path(&format!("/models/{model}:countTokens")),
        body: Bytes::from(body),
        model: &model,
        auth: Auth::GoogHeader,
        headers: json_headers(),
        route: log.route,
    };
    let mut answer = app
        .upstream
        .call(&app.pool, &up)
        .await
        .map_err(|f| upstream_failed(&app, f, &model, false))?;
    log.key = app.pool.masked(answer.key).to_string();
    let (_, bytes) = read_whole(&app, answer.response).await?;
    answer.meter.whole(&bytes);
    let parsed: Value = serde_json::from_slice(&bytes)
        .map_err(|_| GatewayError::BadAnswer("Gemini answered with invalid JSON.".into()))?;
    let n = parsed
        .get("totalTokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(body::json(
        StatusCode::OK,
        &serde_json::json!({"input_tokens": n}),
    ))
}

/// The streamed answer: the events read while opening are translated and
/// queued before the response is returned; a task pumps the rest.
fn start_stream(
    app: &Arc<App>,
    model: &str,
    mut tr: StreamTranslator,
    opened: OpenedStream,
    masked: String,
) -> Response<Body> {
    let (tx, out_body) = ChannelBody::pair(32);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut ended = false;
    for ev in &opened.pending {
        if tr.on_event(ev, &mut out) == Step::Ended {
            ended = true;
            break;
        }
    }
    let mut redactor = crate::upstream::Redactor::new(app.pool.key(opened.key));
    if !out.is_empty() {
        let first = redactor.push(Bytes::from(std::mem::take(&mut out)));
        // A fresh channel always has room.
        let _ = tx.try_send(first);
    }
    if ended {
        let rest = redactor.finish();
        if !rest.is_empty() {
            let _ = tx.try_send(rest);
        }
    } else {
        let pump = Pump {
            app: app.clone(),
            model: model.to_string(),
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
    crate::handlers::sse_response(out_body)
}

/// The task that carries a Gemini stream to the client as Anthropic events.
struct Pump {
    app: Arc<App>,
    model: String,
    /// The serving key, masked (for `/status`'s errors).
    masked: String,
    incoming: crate::lanes::UpBody,
    parser: SseParser,
    tr: StreamTranslator,
    redactor: crate::upstream::Redactor,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    /// Translated bytes not sent yet.
    out: Vec<u8>,
    /// The attempt's usage, recorded when the pump ends (on drop).
    meter: Meter,
}

impl Pump {
    /// Read, translate and send until the stream ends, breaks, goes silent
    /// for `STREAM_IDLE_TIMEOUT` (each ends with an `error` event), or the
    /// client goes away; a `ping` goes out after each quiet stretch of
    /// [`PING_EVERY`] (or a quarter of the idle timeout, if shorter).
    async fn run(mut self) {
        let idle = self.app.cfg().stream_idle_timeout;
        let ping = PING_EVERY.min(idle / 4).max(Duration::from_millis(10));
        let mut silent = Duration::ZERO;
        let mut events: Vec<String> = Vec::new();
        loop {
            let wait = ping.min(idle.saturating_sub(silent));
            let ended = match tokio::time::timeout(wait, self.incoming.frame()).await {
                Err(_) => {
                    silent += wait;
                    if silent >= idle {
                        self.tr.fail(
                            "Gemini's stream went silent for longer than STREAM_IDLE_TIMEOUT.",
                            "timeout_error",
                            &mut self.out,
                        );
                        let stats = &self.app.stats;
                        stats.error(&self.model, &self.masked, 504, "stream idle timeout");
                        true
                    } else {
                        self.tr.ping(&mut self.out);
                        false
                    }
                }
                Ok(next) => {
                    silent = Duration::ZERO;
                    self.step(next, &mut events)
                }
            };
            let chunk = crate::handlers::take_redacted(&mut self.out, &mut self.redactor, ended);
            if !chunk.is_empty() && self.tx.send(chunk).await.is_err() {
                return;
            }
            if ended {
                return;
            }
        }
    }

    /// Translate one read of the upstream body; whether the stream has ended.
    fn step(
        &mut self,
        next: Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>,
        events: &mut Vec<String>,
    ) -> bool {
        let out = &mut self.out;
        match next {
            None => {
                if let Some(last) = self.parser.finish() {
                    let _ = self.tr.on_event(&last, out);
                }
                self.tr.finish(out);
                true
            }
            Some(Err(_)) => {
                self.tr.fail(
                    "The connection to Gemini broke in the middle of the answer.",
                    "api_error",
                    out,
                );
                let stats = &self.app.stats;
                stats.error(&self.model, &self.masked, 502, "stream cut mid-way");
                true
            }
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else {
                    return false;
                };
                self.meter.chunk(data);
                if self.parser.push(data, events).is_err() {
                    self.tr
                        .fail("Gemini sent an event that is too large.", "api_error", out);
                    return true;
                }
                for ev in events.drain(..) {
                    if self.tr.on_event(&ev, out) == Step::Ended {
                        return true;
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_search_is_logged_once_per_model() {
        assert!(note_dropped_search("gemini-2.0-flash-test-a"));
        assert!(!note_dropped_search("gemini-2.0-flash-test-a"));
        assert!(note_dropped_search("gemini-2.0-flash-test-b"));
    }
}
