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

use crate::body::{self, Body, ChannelBody, ReadError};
use crate::keys::{Counts, KeyPool, Outcome, unix_now};
use crate::openai::chat::PreparedCall;
use crate::openai::{self, error::error_body};
use crate::router::{App, with_log};
use crate::upstream::{Auth, Call, Failure};

/// Largest upstream answer read whole (non-streamed answers with images can be big).
pub const ANSWER_LIMIT: usize = 256 * 1024 * 1024;
/// Largest single SSE event accepted from upstream.
const MAX_EVENT: usize = 64 * 1024 * 1024;

/// An OpenAI error response.
pub fn oai_error(
    status: StatusCode,
    message: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Response<Body> {
    let (kind, default_code) = openai::error::kind_for_status(status.as_u16());
    body::json(
        status,
        &error_body(message, kind, code.or(default_code), param),
    )
}

/// 400 for a request the translation refused, naming the field.
fn translate_error(e: &openai::TranslateError) -> Response<Body> {
    oai_error(
        StatusCode::BAD_REQUEST,
        &e.message,
        None,
        e.param.as_deref(),
    )
}

/// 400 for a model name that is not a model id (see [`crate::model`]).
fn invalid_model(name: &str) -> Response<Body> {
    oai_error(
        StatusCode::BAD_REQUEST,
        &crate::model::invalid_message(name),
        Some("invalid_model"),
        Some("model"),
    )
}

/// Read a request body as JSON, answering 413 / 400 / 408 in OpenAI's format.
pub async fn read_json(app: &App, req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = read_body(app, req).await?;
    parse_json(&bytes).map_err(|m| oai_error(StatusCode::BAD_REQUEST, &m, None, Some("body")))
}

/// Read a non-empty request body within `MAX_BODY_BYTES` and
/// `CLIENT_TIMEOUT`, or the OpenAI error to answer.
pub async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let limit = app.cfg.max_body_bytes;
    let read = tokio::time::timeout(
        app.cfg.client_timeout,
        body::read_limited(req.into_body(), limit),
    );
    let bytes = match read.await {
        Err(_) => {
            return Err(oai_error(
                StatusCode::REQUEST_TIMEOUT,
                "The request body did not arrive in time.",
                None,
                None,
            ));
        }
        Ok(Err(ReadError::TooLarge)) => {
            return Err(oai_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Request body is larger than MAX_BODY_BYTES ({limit} bytes)."),
                Some("request_too_large"),
                None,
            ));
        }
        Ok(Err(ReadError::Io(e))) => {
            return Err(oai_error(
                StatusCode::BAD_REQUEST,
                &format!("Could not read the request body: {e}"),
                None,
                None,
            ));
        }
        Ok(Ok(b)) => b,
    };
    if bytes.is_empty() {
        return Err(oai_error(
            StatusCode::BAD_REQUEST,
            "The request body is empty; expected a JSON object.",
            None,
            Some("body"),
        ));
    }
    Ok(bytes)
}

/// Parse JSON with a nesting limit (serde_json's own limit is 128; deeper
/// input is refused before parsing so it can never exhaust the stack).
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("The request body is not valid JSON: {e}"))
}

/// Read a whole (non-streamed) upstream answer, bounded by `ANSWER_LIMIT` and
/// by `TIME_OUT`: a body that stalls or never ends must not hold the request
/// (and its upstream connection) forever. Errors carry the status to answer.
pub async fn read_whole(
    app: &App,
    res: Response<Incoming>,
) -> Result<(http::response::Parts, Bytes), (StatusCode, String)> {
    let read = crate::upstream::read_answer(res, ANSWER_LIMIT);
    match tokio::time::timeout(app.upstream.timeout(), read).await {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(m)) => Err((StatusCode::BAD_GATEWAY, m)),
        Err(_) => Err((
            StatusCode::GATEWAY_TIMEOUT,
            "Gemini's answer did not complete within TIME_OUT.".to_string(),
        )),
    }
}

/// Whether a model name is safe to put in an upstream path and to record: no
/// `/`, `?`, `#`, `%`, `..`, whitespace or control characters, at most 200
/// characters (the rule is [`crate::model::valid`]).
pub fn valid_model(m: &str) -> bool {
    crate::model::valid(m)
}

/// Turn a failed upstream call into an OpenAI error response.
pub fn failure_response(app: &App, f: Failure, model: &str) -> Response<Body> {
    match f {
        Failure::Upstream {
            status,
            body,
            outcome,
            key,
            ..
        } => {
            let mut mapped = openai::error::from_gemini(status.as_u16(), &body);
            if let Some(h) = app.cfg.not_found_hint(status.as_u16()) {
                let m = format!(
                    "{} {h}",
                    mapped.body["error"]["message"].as_str().unwrap_or("")
                );
                mapped.body["error"]["message"] = m.into();
            }
            let msg = mapped.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            app.stats.error(model, &key, status.as_u16(), &msg);
            match outcome {
                Outcome::KeyInvalid(m) => oai_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "Every Gemini key tried was rejected by Google ({m}). The gateway's keys need attention."
                    ),
                    Some("no_working_key"),
                    None,
                ),
                Outcome::Region(m) => oai_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{m} Hint: Google refuses calls from this server's region; run the gateway (or its upstream) from a supported region."
                    ),
                    Some("unsupported_region"),
                    None,
                ),
                _ => {
                    let mut res = body::json(
                        StatusCode::from_u16(mapped.status).unwrap_or(StatusCode::BAD_GATEWAY),
                        &mapped.body,
                    );
                    if let Some(s) = mapped.retry_after {
                        set_retry_after(&mut res, Duration::from_secs(s));
                    }
                    if let Some(r) = mapped.should_retry {
                        res.headers_mut().insert(
                            HeaderName::from_static("x-should-retry"),
                            HeaderValue::from_static(if r { "true" } else { "false" }),
                        );
                    }
                    res
                }
            }
        }
        Failure::Network(m) => {
            app.stats.error(model, "", 502, &m);
            oai_error(
                StatusCode::BAD_GATEWAY,
                &format!("Could not reach Gemini: {m}"),
                Some("upstream_unreachable"),
                None,
            )
        }
        Failure::Timeout => {
            app.stats.error(model, "", 504, "timeout");
            oai_error(
                StatusCode::GATEWAY_TIMEOUT,
                "Gemini did not answer within TIME_OUT.",
                Some("timeout"),
                None,
            )
        }
        Failure::Cooling(d, c) => {
            let mut res = oai_error(
                StatusCode::TOO_MANY_REQUESTS,
                &no_key_message(&c, Some(d)),
                Some("rate_limit_exceeded"),
                None,
            );
            set_retry_after(&mut res, d);
            res
        }
        Failure::Unavailable(c) => oai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &no_key_message(&c, None),
            Some("no_available_key"),
            None,
        ),
    }
}

/// "No usable key" text with the pool's counts.
pub fn no_key_message(c: &Counts, wait: Option<Duration>) -> String {
    let total = c.active + c.cooling + c.resting + c.disabled;
    let mut m = format!(
        "No usable Gemini key: {total} keys ({} active, {} cooling, {} resting, {} disabled).",
        c.active, c.cooling, c.resting, c.disabled
    );
    if let Some(d) = wait {
        m.push_str(&format!(" Retry in {} s.", secs_ceil(d)));
    }
    m
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Set `Retry-After` (seconds, at least 1) and `retry-after-ms`.
pub fn set_retry_after(res: &mut Response<Body>, d: Duration) {
    let secs = secs_ceil(d).max(1);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res.headers_mut().insert(
        HeaderName::from_static("retry-after-ms"),
        HeaderValue::from(d.as_millis().max(1) as u64),
    );
}

fn json_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

/// The general path of a chat request: parse it, fetch remote images, and
/// translate it (also where every invalid request gets its error).
async fn translate_chat(app: &App, bytes: &[u8]) -> Result<PreparedCall, Response<Body>> {
    let value = parse_json(bytes)
        .map_err(|m| oai_error(StatusCode::BAD_REQUEST, &m, None, Some("body")))?;
    let value = crate::gemini::fetch::inline_remote_images(app, value)
        .await
        .map_err(|e| translate_error(&e))?;
    openai::chat::translate_request(&value, &app.cfg.translate)
        .map(PreparedCall::from)
        .map_err(|e| translate_error(&e))
}

/// `POST /v1/chat/completions`.
pub async fn chat(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let bytes = match read_body(&app, req).await {
        Ok(b) => b,
        Err(res) => return with_log(res, "chat", "", ""),
    };
    let call = match openai::chat::translate_request_fast(&bytes, &app.cfg.translate) {
        Some(call) => call,
        None => match translate_chat(&app, &bytes).await {
            Ok(call) => call,
            Err(res) => return with_log(res, "chat", "", ""),
        },
    };
    if !valid_model(&call.model) {
        return with_log(invalid_model(&call.model), "chat", "", "");
    }
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
        body: Bytes::from(call.body),
        model: &call.model,
        auth: Auth::GoogHeader,
        headers: json_headers(),
    };
    let started = Instant::now();
    let answer = match app.upstream.call(&app.pool, &up).await {
        Ok(a) => a,
        Err(f) => {
            return with_log(
                failure_response(&app, f, &call.model),
                "chat",
                &call.model,
                "",
            );
        }
    };
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);
    let masked = app.pool.masked(answer.key).to_string();
    let created = unix_now();

    if !call.stream {
        let (_, bytes) = match read_whole(&app, answer.response).await {
            Ok(x) => x,
            Err((status, m)) => {
                let code = if status == StatusCode::GATEWAY_TIMEOUT {
                    "timeout"
                } else {
                    "upstream_error"
                };
                return with_log(
                    oai_error(status, &m, Some(code), None),
                    "chat",
                    &call.model,
                    &masked,
                );
            }
        };
        let ctx = openai::response::ResponseCtx {
            model: &call.client_model,
            created,
            opts: &app.cfg.translate,
        };
        let Some(out) = openai::response::translate_response_bytes(&bytes, &ctx) else {
            return with_log(
                oai_error(
                    StatusCode::BAD_GATEWAY,
                    "Gemini answered with invalid JSON.",
                    Some("upstream_error"),
                    None,
                ),
                "chat",
                &call.model,
                &masked,
            );
        };
        // An upstream that echoes the pool key must not hand it to the client.
        let out = crate::upstream::redact(Bytes::from(out), app.pool.key(answer.key));
        let mut res = Response::new(body::full(out));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return with_log(res, "chat", &call.model, &masked);
    }

    // Nothing has reached the client yet: a stream that breaks, goes silent,
    // ends empty or opens with an error event before its first event is
    // retried on another key, within the same MAX_RETRIES budget.
    let idle = app.cfg.stream_idle_timeout;
    let mut response = answer.response;
    let mut key = answer.key;
    let mut used = answer.attempts;
    let mut tried = vec![key];
    let mut parser = openai::stream::SseParser::new(MAX_EVENT);
    let mut pending: Vec<String> = Vec::new();
    let incoming = loop {
        let mut body = response.into_body();
        let outcome =
            match open_stream(&mut body, &mut parser, &mut pending, idle, app.cfg.cooldown).await {
                Ok(()) => break body,
                Err(outcome) => outcome,
            };
        crate::debug!(
            "stream on key {} failed before its first event; trying another key",
            app.pool.masked(key)
        );
        app.pool.report(key, &call.model, &outcome);
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
        let budget = app.upstream.attempts().saturating_sub(used);
        let retried = if budget == 0 {
            None
        } else {
            Some(
                app.upstream
                    .call_with(&app.pool, &up, &mut tried, budget)
                    .await,
            )
        };
        match retried {
            Some(Ok(a)) => {
                app.stats.retried(a.attempts);
                used += a.attempts;
                response = a.response;
                key = a.key;
                parser = openai::stream::SseParser::new(MAX_EVENT);
                pending.clear();
            }
            // No budget left, or no other key to try: the stream's own failure
            // is the answer.
            None | Some(Err(Failure::Unavailable(_))) => {
                return with_log(
                    oai_error(status, message, Some(code), None),
                    "chat",
                    &call.model,
                    app.pool.masked(key),
                );
            }
            Some(Err(f)) => {
                return with_log(
                    failure_response(&app, f, &call.model),
                    "chat",
                    &call.model,
                    "",
                );
            }
        }
    };
    let masked = app.pool.masked(key).to_string();

    let (tx, out_body) = ChannelBody::pair(32);
    let mut tr = openai::stream::StreamTranslator::new(
        &call.client_model,
        created,
        call.include_usage,
        &app.cfg.translate,
    );
    // The events read while opening the stream are translated here and
    // queued before the response is returned, so its head and first chunks
    // leave in one write.
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut ended_early = false;
    for ev in pending {
        if let openai::stream::Step::Ended = tr.on_event(&ev, &mut out) {
            ended_early = true;
            break;
        }
    }
    // Every byte sent passes the redactor: an upstream that echoes the pool
    // key must not hand it to the client (each chunk ends an event, so
    // nothing is held back).
    let mut redactor = crate::upstream::Redactor::new(app.pool.key(key));
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
    }
    let stats_app = app.clone();
    let model = call.model.clone();
    let masked_task = masked.clone();
    tokio::spawn(async move {
        if ended_early {
            return;
        }
        let mut incoming = incoming;
        let mut events: Vec<String> = Vec::new();
        loop {
            let mut ended = false;
            match tokio::time::timeout(idle, incoming.frame()).await {
                Err(_) => {
                    tr.fail(
                        "Gemini's stream went silent for longer than STREAM_IDLE_TIMEOUT.",
                        "timeout",
                        &mut out,
                    );
                    stats_app
                        .stats
                        .error(&model, &masked_task, 504, "stream idle timeout");
                    ended = true;
                }
                Ok(None) => {
                    if let Some(last) = parser.finish() {
                        let _ = tr.on_event(&last, &mut out);
                    }
                    tr.finish(&mut out);
                    ended = true;
                }
                Ok(Some(Err(_))) => {
                    tr.fail(
                        "The connection to Gemini broke in the middle of the answer.",
                        "upstream_error",
                        &mut out,
                    );
                    stats_app
                        .stats
                        .error(&model, &masked_task, 502, "stream cut mid-way");
                    ended = true;
                }
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        if parser.push(data, &mut events).is_err() {
                            tr.fail(
                                "Gemini sent an event that is too large.",
                                "upstream_error",
                                &mut out,
                            );
                            ended = true;
                        }
                        for ev in events.drain(..) {
                            if ended {
                                break;
                            }
                            if let openai::stream::Step::Ended = tr.on_event(&ev, &mut out) {
                                ended = true;
                            }
                        }
                    }
                }
            }
            let mut chunk = if out.is_empty() {
                Bytes::new()
            } else {
                redactor.push(Bytes::from(std::mem::replace(
                    &mut out,
                    Vec::with_capacity(1024),
                )))
            };
            if ended {
                let rest = redactor.finish();
                if !rest.is_empty() {
                    chunk = Bytes::from([&chunk[..], &rest[..]].concat());
                }
            }
            if !chunk.is_empty() && tx.send(chunk).await.is_err() {
                // The client went away: dropping `incoming` cancels the upstream call.
                return;
            }
            if ended {
                return;
            }
        }
    });
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
    with_log(res, "chat", &call.model, &masked)
}

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
pub async fn embeddings(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let value = match read_json(&app, req).await {
        Ok(v) => v,
        Err(res) => return with_log(res, "embeddings", "", ""),
    };
    let call = match openai::embeddings::translate_request(&value) {
        Ok(c) => c,
        Err(e) => {
            return with_log(translate_error(&e), "embeddings", "", "");
        }
    };
    if !valid_model(&call.model) {
        return with_log(invalid_model(&call.model), "embeddings", "", "");
    }
    let path = app
        .upstream
        .path(&format!("/models/{}:batchEmbedContents", call.model));
    let mut answers = Vec::with_capacity(call.batches.len());
    let mut masked = String::new();
    for batch in &call.batches {
        let up = Call {
            method: Method::POST,
            path: path.clone(),
            body: Bytes::from(serde_json::to_vec(batch).unwrap_or_default()),
            model: &call.model,
            auth: Auth::GoogHeader,
            headers: json_headers(),
        };
        let answer = match app.upstream.call(&app.pool, &up).await {
            Ok(a) => a,
            Err(f) => {
                return with_log(
                    failure_response(&app, f, &call.model),
                    "embeddings",
                    &call.model,
                    "",
                );
            }
        };
        masked = app.pool.masked(answer.key).to_string();
        let parsed = match read_whole(&app, answer.response).await {
            Ok((_, bytes)) => serde_json::from_slice::<Value>(&bytes).ok(),
            Err(_) => None,
        };
        match parsed {
            Some(v) => answers.push(v),
            None => {
                return with_log(
                    oai_error(
                        StatusCode::BAD_GATEWAY,
                        "Gemini answered with invalid JSON.",
                        Some("upstream_error"),
                        None,
                    ),
                    "embeddings",
                    &call.model,
                    &masked,
                );
            }
        }
    }
    match openai::embeddings::translate_response(&answers, &call) {
        Ok(v) => with_log(
            body::json(StatusCode::OK, &v),
            "embeddings",
            &call.model,
            &masked,
        ),
        Err(e) => with_log(
            oai_error(
                StatusCode::BAD_GATEWAY,
                &format!("Unexpected answer from Gemini: {}", e.message),
                Some("upstream_error"),
                None,
            ),
            "embeddings",
            &call.model,
            &masked,
        ),
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
        };
        let answer = app.upstream.call(pool, &up).await?;
        let page: Value = match read_whole(app, answer.response).await {
            Ok((_, b)) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err((StatusCode::GATEWAY_TIMEOUT, _)) => return Err(Failure::Timeout),
            Err((_, m)) => return Err(Failure::Network(m)),
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
pub async fn models(app: Arc<App>, id: Option<String>) -> Response<Body> {
    if let Some(id) = &id
        && !valid_model(openai::bare_model(id))
    {
        return with_log(invalid_model(id), "models", "", "");
    }
    let models = match list_all_models(&app, &app.pool, false).await {
        Ok(m) => m,
        Err(f) => return with_log(failure_response(&app, f, ""), "models", "", ""),
    };
    let list = openai::models::translate_list(&models, &app.cfg.translate);
    match id {
        None => with_log(body::json(StatusCode::OK, &list), "models", "", ""),
        Some(id) => {
            let id = openai::bare_model(&id);
            let found = list["data"]
                .as_array()
                .and_then(|d| d.iter().find(|m| m["id"] == id))
                .cloned();
            match found {
                Some(m) => with_log(body::json(StatusCode::OK, &m), "models", id, ""),
                None => with_log(
                    oai_error(
                        StatusCode::NOT_FOUND,
                        &format!(
                            "The model `{}` does not exist or you do not have access to it.",
                            id.chars().take(100).collect::<String>()
                        ),
                        Some("model_not_found"),
                        Some("model"),
                    ),
                    "models",
                    "",
                    "",
                ),
            }
        }
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
