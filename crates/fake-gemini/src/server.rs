//! The fake's server: the accept loop (HTTP/1.1 and h2c), routing of the
//! native API, keys and per-key behaviors, the request log, and the control
//! endpoints under `/__fake/`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::{Abort, Ctx, FakeBody, echo_key, error_response, plain_json, silence, trickle};
use crate::embeddings::{batch_embed, count_tokens, embed};
use crate::encoding::{accepts_gzip, gzip_response, parse_query, pct_decode};
use crate::errors::{
    GoogleError, err_expired, err_internal, err_invalid_json, err_invalid_key, err_method,
    err_model_not_found, err_no_key, err_overloaded, err_quota, err_quota_violation, err_region,
    err_route_not_found, err_suspended, google_error,
};
use crate::generate::generate;
use crate::models::{get_model, list_models, model_known};
#[cfg(feature = "full")]
use crate::openai_compat::openai_compat;
use crate::plan::StreamMode;
use crate::{FakeState, KeyBehavior, Recorded};

pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<FakeState>,
    shutdown: Option<watch::Receiver<bool>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let st = state.clone();
                let sd = shutdown.clone();
                tokio::spawn(serve_conn(stream, st, sd));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

pub(crate) async fn serve_conn(
    stream: TcpStream,
    state: Arc<FakeState>,
    shutdown: Option<watch::Receiver<bool>>,
) {
    let _ = stream.set_nodelay(true);
    state.connections.fetch_add(1, Ordering::SeqCst);
    let max_streams = state.h2_max_streams.load(Ordering::SeqCst);
    let svc = service_fn(move |req| handle(state.clone(), req));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if max_streams > 0 {
        builder.http2().max_concurrent_streams(max_streams);
    }
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    match shutdown {
        Some(mut rx) => {
            tokio::select! {
                _ = conn => {}
                _ = rx.changed() => {}
            }
        }
        None => {
            let _ = conn.await;
        }
    }
}

// ---------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------

pub(crate) const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) enum Call {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
    /// Imagen's `:predict` (see `media`).
    Predict,
}

pub(crate) enum Route {
    List,
    Get(String),
    Call(String, Call),
}

/// Serve one request; the answer is gzip-encoded (as Google does) when the
/// request accepts gzip — control endpoints excepted.
pub(crate) async fn handle(
    state: Arc<FakeState>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Abort> {
    let gzip = !req.uri().path().starts_with("/__fake/")
        && req
            .headers()
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .any(|v| v.to_str().is_ok_and(accepts_gzip));
    let counted = !req.uri().path().starts_with("/__fake/");
    let _in_flight = counted.then(|| InFlight::enter(&state));
    let res = handle_api(state.clone(), req).await?;
    Ok(if gzip { gzip_response(res) } else { res })
}

/// Counts one request in flight at the fake while it lives.
struct InFlight(Arc<FakeState>);

impl InFlight {
    fn enter(state: &Arc<FakeState>) -> InFlight {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The API version of `path`, the rest of it, and whether it is a Vertex
/// Express path (`/v1beta1/publishers/google/…`).
fn split_version(path: &str) -> Option<(&'static str, &str, bool)> {
    if let Some((v, r)) = crate::vertex::strip(path) {
        return Some((v, r, true));
    }
    if let Some(r) = strip_version(path, "/v1beta") {
        return Some(("v1beta", r, false));
    }
    strip_version(path, "/v1").map(|r| ("v1", r, false))
}

pub(crate) async fn handle_api(
    state: Arc<FakeState>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Abort> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let qp = parse_query(query.as_deref().unwrap_or(""));
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(e),
    };

    if let Some(rest) = path.strip_prefix("/__fake/") {
        let body = body.unwrap_or_default();
        return Ok(control(&state, &parts.method, rest, &body));
    }
    let api_key = record_request(&state, &parts, &path, query, &qp, &body);

    let q = |name: &str| qp.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let pretty = q("prettyPrint") != Some("false");
    let mut ctx = Ctx {
        version: "v1beta",
        array_stream: false,
        pretty,
        empty: false,
    };

    #[cfg(feature = "full")]
    if let Ok(b) = &body
        && let Some(res) = crate::files::route(
            &state,
            &parts.method,
            &path,
            &qp,
            &parts.headers,
            api_key.as_deref(),
            b,
        )
    {
        return Ok(res);
    }
    // Route.
    let Some((version, rest, vertex)) = split_version(&path) else {
        return Ok(error_response(&ctx, err_route_not_found()));
    };
    ctx.version = version;
    #[cfg(feature = "full")]
    if let Some(oa) = rest.strip_prefix("/openai/").filter(|_| !vertex) {
        return openai_compat(&state, &parts.method, oa, api_key, body).await;
    }
    let route = match parse_route(rest) {
        Some(r) if !vertex || crate::vertex::serves(&r) => r,
        _ => return Ok(error_response(&ctx, err_route_not_found())),
    };
    let want_post = matches!(route, Route::Call(..));
    if (want_post && parts.method != Method::POST) || (!want_post && parts.method != Method::GET) {
        return Ok(error_response(&ctx, err_method(&parts.method, &path)));
    }
    let sse = q("alt") == Some("sse");
    let is_stream = matches!(route, Route::Call(_, Call::Stream));
    ctx.array_stream = is_stream && !sse;

    // Auth, then what the key is set to do.
    let Some(key) = api_key else {
        return Ok(error_response(&ctx, err_no_key()));
    };
    let (cut, reshape) = match key_behavior(&state, &ctx, &key, &route, is_stream).await? {
        Ok(plan) => plan,
        Err(refusal) => return Ok(refusal),
    };
    ctx.empty = matches!(reshape, Some(KeyBehavior::Empty));

    let Ok(body) = body else {
        let msg = format!("Request payload size exceeds the limit: {BODY_LIMIT} bytes.");
        let e = google_error(413, "INVALID_ARGUMENT", msg, vec![]);
        return Ok(error_response(&ctx, e));
    };

    match route {
        Route::List => Ok(list_models(&ctx, q("pageSize"), q("pageToken"))),
        Route::Get(m) => Ok(get_model(&ctx, &m)),
        Route::Call(model, call) => {
            if matches!(call, Call::Generate | Call::Stream)
                && model_known(&model)
                && let Err(v) = state.admit(&key, &model)
            {
                return Ok(error_response(&ctx, err_quota_violation(&model, &v)));
            }
            #[cfg(feature = "full")]
            if let Err(e) = crate::files::check_generate(&state, &key, &body) {
                return Ok(error_response(&ctx, e));
            }
            if vertex && let Err(e) = crate::vertex::check_roles(&body) {
                return Ok(error_response(&ctx, e));
            }
            let stream = StreamMode { sse, cut };
            let res = call_model(&state, &ctx, &model, call, stream, &body).await;
            let res = match (res, reshape) {
                (Ok(r), Some(KeyBehavior::EchoKey { split })) => Ok(echo_key(r, &key, split)),
                (Ok(r), Some(KeyBehavior::Trickle { ms })) => Ok(trickle(r, ms)),
                (Ok(r), Some(KeyBehavior::Silent { ms })) => {
                    Ok(silence(r, state.scaled(ms), false))
                }
                (Ok(r), Some(KeyBehavior::SilentCut { ms })) => {
                    Ok(silence(r, state.scaled(ms), true))
                }
                (res, _) => res,
            };
            Ok(res.unwrap_or_else(|e| error_response(&ctx, e)))
        }
    }
}

/// Record the request for the tests to inspect and return the Gemini key it
/// carries (`x-goog-api-key`, `?key=`, or on the OpenAI-compatible routes a
/// bearer token).
fn record_request<E>(
    state: &FakeState,
    parts: &http::request::Parts,
    path: &str,
    query: Option<String>,
    qp: &[(String, String)],
    body: &Result<bytes::Bytes, E>,
) -> Option<String> {
    let header_key = parts
        .headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // Gemini's OpenAI-compatible layer takes the key as a bearer token.
    let openai_path = ["/v1beta/openai/", "/v1/openai/"]
        .iter()
        .any(|p| path.starts_with(p));
    let bearer_key = authorization
        .as_deref()
        .filter(|_| openai_path)
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let api_key = header_key
        .or_else(|| {
            qp.iter()
                .find(|(k, v)| k == "key" && !v.is_empty())
                .map(|(_, v)| v.clone())
        })
        .or(bearer_key);
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.record(Recorded {
        method: parts.method.to_string(),
        path: path.to_string(),
        query,
        api_key: api_key.clone(),
        authorization,
        headers,
        body: body.as_ref().ok().cloned().unwrap_or_default(),
        version: format!("{:?}", parts.version),
    });
    api_key
}

/// What a key's configured [`KeyBehavior`] does to this request: refuse it
/// with Google's error (`Ok(Err(answer))`), drop the connection (`Err`), wait,
/// or let it through with a stream cut (`cut`) or a reshaped answer.
async fn key_behavior(
    state: &FakeState,
    ctx: &Ctx,
    key: &str,
    route: &Route,
    is_stream: bool,
) -> Result<Result<(Option<usize>, Option<KeyBehavior>), Response<FakeBody>>, Abort> {
    let model_for_quota = match route {
        Route::Get(m) | Route::Call(m, _) => m.clone(),
        Route::List => "gemini-2.5-flash".to_string(),
    };
    let refuse = |e| Ok(Err(error_response(ctx, e)));
    match state.behavior(key) {
        KeyBehavior::Ok => {}
        b @ (KeyBehavior::EchoKey { .. } | KeyBehavior::Trickle { .. } | KeyBehavior::Empty) => {
            return Ok(Ok((None, Some(b))));
        }
        KeyBehavior::Silent { ms } if !is_stream => tokio::time::sleep(state.scaled(ms)).await,
        KeyBehavior::SilentCut { ms } if !is_stream => {
            tokio::time::sleep(state.scaled(ms)).await;
            return Err(Abort);
        }
        b @ (KeyBehavior::Silent { .. } | KeyBehavior::SilentCut { .. }) => {
            return Ok(Ok((None, Some(b))));
        }
        KeyBehavior::Invalid => return refuse(err_invalid_key()),
        KeyBehavior::Expired => return refuse(err_expired()),
        KeyBehavior::Suspended => return refuse(err_suspended(key)),
        KeyBehavior::Quota { retry_secs } => {
            return refuse(err_quota(&model_for_quota, Some(retry_secs)));
        }
        KeyBehavior::QuotaDay => return refuse(err_quota(&model_for_quota, None)),
        KeyBehavior::Overloaded => return refuse(err_overloaded()),
        KeyBehavior::Internal => return refuse(err_internal()),
        KeyBehavior::Region => return refuse(err_region()),
        KeyBehavior::Slow { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        KeyBehavior::CutAfter { events } => {
            if !is_stream {
                return Err(Abort);
            }
            return Ok(Ok((Some(events), None)));
        }
        KeyBehavior::Hang => std::future::pending::<()>().await,
    }
    Ok(Ok((None, None)))
}

/// A model method (`generateContent`, `streamGenerateContent`, `countTokens`,
/// `embedContent`, `batchEmbedContents`) on a known model.
async fn call_model(
    state: &FakeState,
    ctx: &Ctx,
    model: &str,
    call: Call,
    stream: StreamMode,
    body: &[u8],
) -> Result<Response<FakeBody>, GoogleError> {
    let method = match call {
        Call::Generate => "generateContent",
        Call::Stream => "streamGenerateContent",
        Call::CountTokens => "countTokens",
        Call::Embed => "embedContent",
        Call::BatchEmbed => "batchEmbedContents",
        Call::Predict => "predict",
    };
    #[cfg(feature = "full")]
    let imagen = crate::media::is_imagen(model);
    #[cfg(not(feature = "full"))]
    let imagen = false;
    if !(model_known(model) || imagen) || imagen != matches!(call, Call::Predict) {
        return Err(err_model_not_found(model, ctx.version, method));
    }
    let root = parse_body(body)?;
    #[cfg(feature = "full")]
    crate::media::check_image_config(&root)?;
    match call {
        #[cfg(feature = "full")]
        Call::Generate if crate::media::wants_audio(&root) => {
            crate::media::speech(ctx, model, &root)
        }
        #[cfg(feature = "full")]
        Call::Predict => crate::media::predict(ctx, &root),
        #[cfg(not(feature = "full"))]
        Call::Predict => Err(err_model_not_found(model, ctx.version, method)),
        Call::Generate => generate(state, ctx, model, &root, None).await,
        Call::Stream => generate(state, ctx, model, &root, Some(stream)).await,
        Call::CountTokens => count_tokens(ctx, &root),
        Call::Embed => embed(ctx, &root),
        Call::BatchEmbed => batch_embed(ctx, model, &root),
    }
}

pub(crate) fn strip_version<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

pub(crate) fn parse_route(rest: &str) -> Option<Route> {
    if rest == "/models" {
        return Some(Route::List);
    }
    let tail = pct_decode(rest.strip_prefix("/models/")?, false);
    let (model, method) = match tail.split_once(':') {
        Some((m, meth)) => (m, Some(meth)),
        None => (tail.as_str(), None),
    };
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let model = model.to_string();
    match method {
        None => Some(Route::Get(model)),
        Some("generateContent") => Some(Route::Call(model, Call::Generate)),
        Some("streamGenerateContent") => Some(Route::Call(model, Call::Stream)),
        Some("countTokens") => Some(Route::Call(model, Call::CountTokens)),
        Some("embedContent") => Some(Route::Call(model, Call::Embed)),
        Some("batchEmbedContents") => Some(Route::Call(model, Call::BatchEmbed)),
        Some("predict") => Some(Route::Call(model, Call::Predict)),
        Some(_) => None,
    }
}

pub(crate) fn parse_body(body: &[u8]) -> Result<Value, GoogleError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(err_invalid_json(
            "Unknown name \"\": Root element must be a message.",
        )),
        Err(e) => Err(err_invalid_json(&format!("Unexpected token.\n{e}"))),
    }
}

// ---------------------------------------------------------------------------
// Control endpoints
// ---------------------------------------------------------------------------

pub(crate) fn control(
    state: &FakeState,
    method: &Method,
    rest: &str,
    body: &[u8],
) -> Response<FakeBody> {
    let bad = |m: &str| plain_json(400, serde_json::json!({ "error": m }).to_string());
    if let Some(key) = rest.strip_prefix("keys/") {
        if method != Method::POST {
            return bad("use POST");
        }
        let key = pct_decode(key, false);
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let num = |k: &str| v.get(k).and_then(Value::as_u64);
        let b = match v.get("behavior").and_then(Value::as_str).unwrap_or("") {
            "ok" => KeyBehavior::Ok,
            "invalid" | "bad" => KeyBehavior::Invalid,
            "expired" => KeyBehavior::Expired,
            "suspended" => KeyBehavior::Suspended,
            "quota" => KeyBehavior::Quota {
                retry_secs: num("retry_secs").unwrap_or(2),
            },
            "quota-day" | "quota_day" => KeyBehavior::QuotaDay,
            "overloaded" | "overload" => KeyBehavior::Overloaded,
            "internal" => KeyBehavior::Internal,
            "region" => KeyBehavior::Region,
            "slow" => KeyBehavior::Slow {
                ms: num("ms").unwrap_or(300),
            },
            "cut" => KeyBehavior::CutAfter {
                events: num("events").unwrap_or(2) as usize,
            },
            "hang" => KeyBehavior::Hang,
            "echo" => KeyBehavior::EchoKey { split: false },
            "echo-split" => KeyBehavior::EchoKey { split: true },
            "trickle" => KeyBehavior::Trickle {
                ms: num("ms").unwrap_or(300),
            },
            "silent" => KeyBehavior::Silent {
                ms: num("ms").unwrap_or(1000),
            },
            "silentcut" | "silent-cut" => KeyBehavior::SilentCut {
                ms: num("ms").unwrap_or(1000),
            },
            "empty" => KeyBehavior::Empty,
            _ => return bad("unknown behavior"),
        };
        state.set_key(&key, b);
        return plain_json(200, "{\"ok\": true}\n".to_string());
    }
    if let Some(key) = rest.strip_prefix("limits/") {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .map(|n| n.min(u32::MAX as u64) as u32)
        };
        let limits = crate::Limits {
            rpm: num("rpm"),
            rpd: num("rpd"),
        };
        state.set_limits(&pct_decode(key, false), limits);
        return plain_json(200, "{\"ok\": true}\n".to_string());
    }
    if rest == "time_scale" && method == Method::POST {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let scale = v.get("scale").and_then(Value::as_f64).unwrap_or(-1.0);
        if !(scale.is_finite() && (0.0..=1000.0).contains(&scale)) {
            return bad("scale: a number 0–1000");
        }
        state.set_time_scale(scale);
        return plain_json(200, "{\"ok\": true}\n".to_string());
    }
    if rest == "clock" && method == Method::POST {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let secs = v.get("advance_secs").and_then(Value::as_f64).unwrap_or(0.0);
        if !(secs.is_finite() && (0.0..1e9).contains(&secs)) {
            return bad("advance_secs: a number of seconds 0–1e9");
        }
        state.advance_clock(Duration::from_secs_f64(secs));
        return plain_json(200, "{\"ok\": true}\n".to_string());
    }
    if let Some(key) = rest.strip_prefix("count/") {
        let n = state.count_for_key(&pct_decode(key, false));
        return plain_json(200, format!("{{\"count\": {n}}}\n"));
    }
    match (method, rest) {
        (&Method::GET, "requests") => {
            let list: Vec<Value> = state
                .requests()
                .into_iter()
                .map(|r| {
                    serde_json::json!({
                        "method": r.method,
                        "path": r.path,
                        "query": r.query,
                        "api_key": r.api_key,
                        "authorization": r.authorization,
                        "headers": r.headers,
                        "body": String::from_utf8_lossy(&r.body),
                    })
                })
                .collect();
            plain_json(
                200,
                serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into()),
            )
        }
        (&Method::POST, "clear") => {
            state.clear();
            plain_json(200, "{\"ok\": true}\n".to_string())
        }
        _ => plain_json(
            404,
            "{\"error\": \"unknown control endpoint\"}\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn keys_named_with_limits_get_googles_429_past_them() {
        let fake = Fake::start().await.unwrap();
        let path = "/v1beta/models/gemini-2.5-flash:generateContent";
        let body = user("hi");
        for _ in 0..2 {
            assert_eq!(post(&fake, path, "rpm2-rpd3-k", &body).await.status, 200);
        }
        let r = post(&fake, path, "rpm2-rpd3-k", &body).await;
        assert_eq!(r.status, 429, "{}", r.text());
        let e = r.json()["error"].clone();
        assert_eq!(e["status"], "RESOURCE_EXHAUSTED");
        let v = &e["details"][0]["violations"][0];
        assert_eq!(
            v["quotaId"],
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        );
        assert_eq!(v["quotaValue"], "2");
        assert_eq!(v["quotaDimensions"]["model"], "gemini-2.5-flash");
        assert_eq!(v["quotaDimensions"]["location"], "global");
        assert_eq!(
            e["details"][1]["@type"],
            "type.googleapis.com/google.rpc.Help"
        );
        let retry = e["details"][2]["retryDelay"].as_str().unwrap();
        assert!(["59s", "60s"].contains(&retry), "{retry}");
        assert_eq!(fake.state.quota_refusals(), 1);
        // Another model has its own count; a minute later a slot is free.
        let other = "/v1beta/models/gemini-2.5-pro:generateContent";
        assert_eq!(post(&fake, other, "rpm2-rpd3-k", &body).await.status, 200);
        let r = send(
            fake.addr,
            "POST",
            "/__fake/clock",
            &[],
            r#"{"advance_secs": 60}"#,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(post(&fake, path, "rpm2-rpd3-k", &body).await.status, 200);
        // The day's third call was that one: the fourth breaks the day's limit.
        fake.state.advance_clock(Duration::from_secs(60));
        let r = post(&fake, path, "rpm2-rpd3-k", &body).await;
        assert_eq!(r.status, 429);
        let e = r.json()["error"].clone();
        let v = &e["details"][0]["violations"][0];
        assert_eq!(
            v["quotaId"],
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        );
        assert_eq!(v["quotaValue"], "3");
        // Limits set through the control endpoint; a plain key is unlimited.
        let r = send(
            fake.addr,
            "POST",
            "/__fake/limits/plain",
            &[],
            r#"{"rpm": 1}"#,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(post(&fake, path, "plain", &body).await.status, 200);
        assert_eq!(post(&fake, path, "plain", &body).await.status, 429);
        for _ in 0..5 {
            assert_eq!(post(&fake, path, "free-of-limits", &body).await.status, 200);
        }
    }

    #[tokio::test]
    async fn control_endpoints() {
        let fake = Fake::start().await.unwrap();
        let r = send(
            fake.addr,
            "POST",
            "/__fake/keys/k1",
            &[],
            r#"{"behavior": "quota", "retry_secs": 9}"#,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            fake.state.behavior("k1"),
            KeyBehavior::Quota { retry_secs: 9 }
        );
        let r = send(
            fake.addr,
            "POST",
            "/__fake/keys/k2",
            &[],
            r#"{"behavior": "cut", "events": 3}"#,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            fake.state.behavior("k2"),
            KeyBehavior::CutAfter { events: 3 }
        );
        let r = send(
            fake.addr,
            "POST",
            "/__fake/keys/k3",
            &[],
            r#"{"behavior": "nope"}"#,
        )
        .await;
        assert_eq!(r.status, 400);
        let q = post(&fake, GEN, "k1", &user("hi")).await;
        assert_eq!(q.status, 429);
        let list = send(fake.addr, "GET", "/__fake/requests", &[], "")
            .await
            .json();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["api_key"], "k1");
        assert_eq!(list[0]["path"], GEN);
        assert!(list[0]["body"].as_str().unwrap().contains("\"hi\""));
        let c = send(fake.addr, "GET", "/__fake/count/k1", &[], "")
            .await
            .json();
        assert_eq!(c["count"], 1);
        assert_eq!(
            send(fake.addr, "POST", "/__fake/clear", &[], "")
                .await
                .status,
            200
        );
        let list = send(fake.addr, "GET", "/__fake/requests", &[], "")
            .await
            .json();
        assert_eq!(list, json!([]));
        assert_eq!(
            send(fake.addr, "GET", "/__fake/whatever", &[], "")
                .await
                .status,
            404
        );
    }

    #[tokio::test]
    async fn bad_requests_and_garbage_never_break_the_server() {
        let fake = Fake::start().await.unwrap();
        let r = send(
            fake.addr,
            "POST",
            GEN,
            &[("x-goog-api-key", "k")],
            "{not json",
        )
        .await;
        assert_eq!(r.status, 400);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JSON payload received.")
        );
        let r = post(&fake, GEN, "k", &json!({"contents": []})).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json()["error"]["message"],
            "* GenerateContentRequest.contents: contents is not specified\n"
        );
        let r = send(fake.addr, "POST", GEN, &[("x-goog-api-key", "k")], "").await;
        assert_eq!(r.status, 400);
        let r = send(fake.addr, "GET", "/v1beta/nothing?key=k", &[], "").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["error"]["status"], "NOT_FOUND");
        let r = send(fake.addr, "GET", &format!("{GEN}?key=k"), &[], "").await;
        assert_eq!(r.status, 405);
        let r = post(
            &fake,
            "/v1beta/models/llama:generateContent",
            "k",
            &user("x"),
        )
        .await;
        assert_eq!(r.status, 404);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("generateContent")
        );
        let r = post(
            &fake,
            "/v1beta/models/gemini-9-ultra:generateContent",
            "k",
            &user("x"),
        )
        .await;
        assert_eq!(r.status, 404);
        for ok in [
            "gemini-flash-latest",
            "gemini-2.0-flash-001",
            "gemini-3-flash",
        ] {
            let r = post(
                &fake,
                &format!("/v1beta/models/{ok}:generateContent"),
                "k",
                &user("x"),
            )
            .await;
            assert_eq!(r.status, 200, "{ok}");
        }
        let r = post(
            &fake,
            "/v1beta/models/gemini-2.5-flash%3AgenerateContent",
            "k",
            &user("x"),
        )
        .await;
        assert_eq!(r.status, 200);
        let weird = [
            "[]",
            "5",
            "null",
            r#"{"contents": 5}"#,
            r#"{"contents": [5]}"#,
            r#"{"contents": [{"parts": "x"}]}"#,
            r#"{"contents": [{"parts": [5, null, {"text": 5}]}]}"#,
            r#"{"contents": [{"parts": [{"text": "[[events=99999999999999999999]] [[status=abc]] [[gap=1 events=2]] [[ [[]]"}]}]}"#,
            r#"{"contents": [{"parts": [{"text": "x"}]}], "tools": 5, "toolConfig": [], "generationConfig": 3}"#,
            r##"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"$ref": "#"}}}}]}]}"##,
            r#"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": 7, "items": 3, "properties": []}}]}]}"#,
            r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "array", "minItems": "1e308", "maxItems": -5}}}"#,
            r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 1e300}}"#,
            r#"{"contents": [{"parts": [{"inlineData": 3}, {"functionResponse": 4}]}]}"#,
            r##"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "array", "minItems": 10, "items": {"$ref": "#"}}, "b": {"$ref": "#"}}}}]}]}"##,
            r##"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {"type": "array", "minItems": 10, "items": {"$ref": "#"}}}}"##,
        ];
        for path in [
            GEN,
            SSE,
            ARR,
            "/v1beta/models/gemini-2.5-flash:countTokens",
            "/v1beta/models/text-embedding-004:embedContent",
            "/v1beta/models/text-embedding-004:batchEmbedContents",
        ] {
            for w in weird {
                let r = send(fake.addr, "POST", path, &[("x-goog-api-key", "k")], w).await;
                assert!(
                    r.status == 200 || r.status == 400,
                    "{path} {w} -> {}",
                    r.status
                );
                assert!(!r.body.is_empty());
                assert!(!r.body_error, "{path} {w}");
            }
        }
        // Raw garbage on the socket, then the server still answers.
        let mut s = TcpStream::connect(fake.addr).await.unwrap();
        s.write_all(b"\x00\x01GARBAGE / \xff\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        let r = post(&fake, GEN, "k", &user("still alive")).await;
        assert_eq!(text_of(&r.json(), 0), "Echo: still alive");
    }

    #[tokio::test]
    async fn echo_and_trickle_keys() {
        let fake = Fake::start().await.unwrap();
        let key = "echo-split-key-0000000001";
        let r = post(&fake, GEN, key, &user("hi")).await;
        assert_eq!(r.status, 200);
        assert_eq!(text_of(&r.json(), 0), format!("{key} Echo: hi"));
        let ev = sse_events(&post(&fake, SSE, "echo-key-0000000001", &user("hi")).await);
        assert!(text_of(&ev[0], 0).starts_with("echo-key-0000000001 "));
        // Split: the key arrives in two frames.
        let stream = TcpStream::connect(fake.addr).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::post(SSE)
            .header("host", "fake")
            .header("x-goog-api-key", key)
            .body(Full::new(Bytes::from(user("hi").to_string())))
            .unwrap();
        let mut body = tx.send_request(req).await.unwrap().into_body();
        let mut frames = Vec::new();
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                frames.push(d);
            }
        }
        let half = &key.as_bytes()[..key.len() / 2];
        assert!(
            frames
                .iter()
                .all(|f| !f.windows(key.len()).any(|w| w == key.as_bytes()))
        );
        assert!(frames.iter().any(|f| f.ends_with(half)), "{frames:?}");
        // Trickle: headers at once, the body 8 bytes at a time.
        fake.state.set_key("t", KeyBehavior::Trickle { ms: 1 });
        let r = post(&fake, GEN, "t", &user("hi")).await;
        assert_eq!(text_of(&r.json(), 0), "Echo: hi");
    }

    #[tokio::test]
    async fn h2c_slow_and_hang() {
        let fake = Fake::start().await.unwrap();
        let stream = TcpStream::connect(fake.addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method("POST")
            .uri(format!("http://{}{SSE}", fake.addr))
            .header("x-goog-api-key", "k")
            .body(Full::new(Bytes::from(user("over h2").to_string())))
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("Echo: over h2"));

        let start = std::time::Instant::now();
        let r = post(&fake, GEN, "slow-1", &user("hi")).await;
        assert_eq!(r.status, 200);
        assert!(start.elapsed() >= Duration::from_millis(300));

        let hang = tokio::time::timeout(
            Duration::from_millis(300),
            post(&fake, GEN, "hang-1", &user("hi")),
        )
        .await;
        assert!(hang.is_err());
        assert_eq!(fake.state.count_for_key("hang-1"), 1);
    }
}
