//! The native side: Gemini API calls passed through byte for byte
//! (`/v1beta/...`, `/gemini/v1beta/...`, `/gemini/v1/...`, `/v1/models/...:action`),
//! Gemini's own OpenAI-compatible endpoint (`/openai/v1/...`), and `/verify`.
//!
//! Pass-through means: the request body goes upstream unchanged, the client's
//! credential is replaced by a pool key (`x-goog-api-key`, never in the URL),
//! `?key=` is removed and other query parameters kept, hop-by-hop headers are
//! dropped both ways, and the answer streams back as it arrives, content
//! encoding and all.

pub mod fetch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::body::{self, Body, ChannelBody, ReadError};
use crate::keys::{KeyPool, Outcome, mask, token_matches};
use crate::router::{self, Api, App, google_error, with_log};
use crate::upstream::{Auth, Call, Failure};

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

/// Which keys a native call uses, decided from the caller's credential.
enum Keys {
    /// The server's pool (the caller presented an allowed token).
    Server,
    /// The backup pool (lite rules: a trusted single client key).
    Backup,
    /// The caller's own keys (`CLIENT_KEYS_ENABLED`).
    Client(KeyPool),
}

/// Decide who may call and with which keys (see the module doc of issue 4:
/// token → server pool; else client keys when enabled; else 401/403).
fn authorize<B>(app: &App, req: &Request<B>) -> Result<Keys, Box<Response<Body>>> {
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
    if token_matches(&app.cfg.allowed_tokens, &cred) || open {
        return Ok(Keys::Server);
    }
    if app.cfg.client_keys_enabled {
        let keys = crate::config::parse_list(&cred).unwrap_or_default();
        // The lite edition's rule: a single key that is trusted may use the backup pool.
        if keys.len() == 1
            && !app.backup.is_empty()
            && token_matches(&app.cfg.trusted_api_keys, &keys[0])
        {
            return Ok(Keys::Backup);
        }
        if !keys.is_empty() {
            return Ok(Keys::Client(KeyPool::new(
                keys,
                crate::keys::Selection::RoundRobin,
                u32::MAX,
            )));
        }
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
        .filter(|p| !(p.is_empty() || p.starts_with("key=") || *p == "key"))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// The model a native path is about (`/models/{m}:action` or `/models/{m}`).
fn model_of(rest: &str) -> &str {
    let Some(m) = rest
        .strip_prefix("/models/")
        .or_else(|| rest.strip_prefix("/tunedModels/"))
    else {
        return "";
    };
    m.split(':').next().unwrap_or("")
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
    let model = model_of(rest).to_string();
    let action = rest.rsplit_once(':').map(|(_, a)| a).unwrap_or("");
    let method = req.method().clone();
    let query = query_without_key(req.uri().query());
    let sse = query.contains("alt=sse");
    let streaming = action == "streamGenerateContent";
    let list_models = method == Method::GET && rest == "/models";

    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(4);
    for name in FORWARD_REQUEST {
        for v in req.headers().get_all(*name) {
            headers.push((HeaderName::from_static(name), v.clone()));
        }
    }
    let body = if method == Method::GET || method == Method::HEAD {
        Bytes::new()
    } else {
        let limit = app.cfg.max_body_bytes;
        match tokio::time::timeout(
            app.cfg.client_timeout,
            body::read_limited(req.into_body(), limit),
        )
        .await
        {
            Err(_) => {
                return with_log(
                    gerr(
                        StatusCode::REQUEST_TIMEOUT,
                        "The request body did not arrive in time.",
                    ),
                    "native",
                    &model,
                    "",
                );
            }
            Ok(Err(ReadError::TooLarge)) => {
                return with_log(
                    gerr(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("Request body is larger than MAX_BODY_BYTES ({limit} bytes)."),
                    ),
                    "native",
                    &model,
                    "",
                );
            }
            Ok(Err(ReadError::Io(e))) => {
                return with_log(
                    gerr(
                        StatusCode::BAD_REQUEST,
                        &format!("Could not read the request body: {e}"),
                    ),
                    "native",
                    &model,
                    "",
                );
            }
            Ok(Ok(b)) => b,
        }
    };
    let tail = format!("{rest}{query}");
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
    let started = Instant::now();
    let answer = match app.upstream.call(pool, &up).await {
        Ok(a) => a,
        Err(f) => return with_log(native_failure(&app, f, &model), "native", &model, ""),
    };
    app.stats.upstream_latency(started.elapsed());
    app.stats.retried(answer.attempts - 1);
    let masked = pool.masked(answer.key).to_string();

    if list_models && app.cfg.native_derived_models {
        return with_log(
            derived_model_list(&app, answer.response).await,
            "native",
            "",
            &masked,
        );
    }
    let (parts, incoming) = answer.response.into_parts();
    let out_body = if streaming {
        forward_stream(incoming, app.cfg.stream_idle_timeout, sse)
    } else {
        incoming
            .map_err(|e| Box::new(e) as crate::body::BoxError)
            .boxed()
    };
    let mut res = Response::new(out_body);
    *res.status_mut() = parts.status;
    copy_response_headers(&parts.headers, res.headers_mut());
    with_log(res, "native", &model, &masked)
}

/// Copy upstream response headers, minus hop-by-hop ones.
fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !DROP_RESPONSE.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Forward a streamed answer as it arrives; if it breaks or goes silent,
/// end it with Google's error object in the stream's own framing.
fn forward_stream(mut incoming: Incoming, idle: Duration, sse: bool) -> Body {
    let (tx, body) = ChannelBody::pair(32);
    tokio::spawn(async move {
        loop {
            let failure = match tokio::time::timeout(idle, incoming.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data()
                        && tx.send(data).await.is_err()
                    {
                        return; // client gone: dropping `incoming` cancels upstream
                    }
                    continue;
                }
                Ok(None) => return,
                Ok(Some(Err(_))) => (
                    StatusCode::BAD_GATEWAY,
                    "The connection to Gemini broke in the middle of the answer.",
                ),
                Err(_) => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gemini's stream went silent for longer than STREAM_IDLE_TIMEOUT.",
                ),
            };
            let err = google_error(failure.0, failure.1);
            let tail = if sse {
                format!("data: {err}\r\n\r\n")
            } else {
                format!(",\r\n{err}\n]")
            };
            let _ = tx.send(Bytes::from(tail)).await;
            return;
        }
    });
    body
}

/// The model list with the derived `-search`/`-thinking` variants added (`NATIVE_DERIVED_MODELS`).
async fn derived_model_list(app: &App, res: Response<Incoming>) -> Response<Body> {
    let Ok((_, bytes)) = crate::upstream::read_answer(res, crate::handlers::ANSWER_LIMIT).await
    else {
        return gerr(
            StatusCode::BAD_GATEWAY,
            "Could not read Gemini's model list.",
        );
    };
    let mut page: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    if let Some(models) = page.get_mut("models").and_then(Value::as_array_mut) {
        let mut extra = Vec::new();
        for m in models.iter() {
            let name = m.get("name").and_then(Value::as_str).unwrap_or("");
            let bare = crate::openai::bare_model(name);
            let o = &app.cfg.translate;
            let mut add = |suffix: &str| {
                let mut d = m.clone();
                d["name"] = json!(format!("models/{bare}{suffix}"));
                extra.push(d);
            };
            if o.search_models.iter().any(|s| s == bare) {
                add("-search");
            }
            if o.thinking_models.iter().any(|s| s == bare) {
                add("-thinking");
                add("-non-thinking");
            }
        }
        models.extend(extra);
    }
    body::json(StatusCode::OK, &page)
}

/// Turn a failed call into a native answer: upstream errors pass through as
/// they came; the gateway's own conditions use Google's error format.
fn native_failure(app: &App, f: Failure, model: &str) -> Response<Body> {
    match f {
        Failure::Upstream {
            status,
            headers,
            body,
            outcome,
        } => {
            let msg =
                crate::openai::error::from_gemini(status.as_u16(), &body).body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
            app.stats.error(model, "", status.as_u16(), &msg);
            match outcome {
                Outcome::KeyInvalid(m) => gerr(
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
                _ => {
                    let scrubbed = crate::openai::error::scrub(&String::from_utf8_lossy(&body));
                    let mut res = Response::new(body::full(scrubbed));
                    *res.status_mut() = status;
                    copy_response_headers(&headers, res.headers_mut());
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
    if !safe_path(&rest) || rest.is_empty() {
        return crate::handlers::oai_error(StatusCode::NOT_FOUND, "Unknown route.", None, None);
    }
    let method = req.method().clone();
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for name in ["content-type", "accept"] {
        if let Some(v) = req.headers().get(name) {
            headers.push((HeaderName::from_static(name), v.clone()));
        }
    }
    let query = query_without_key(req.uri().query());
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        match crate::handlers::read_json(&app, req).await {
            Ok(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            Err(res) => return res,
        }
    };
    let model = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("model")
                .and_then(Value::as_str)
                .map(|m| crate::openai::bare_model(m).to_string())
        })
        .unwrap_or_default();
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
            let (parts, incoming) = answer.response.into_parts();
            let mut res = Response::new(
                incoming
                    .map_err(|e| Box::new(e) as crate::body::BoxError)
                    .boxed(),
            );
            *res.status_mut() = parts.status;
            copy_response_headers(&parts.headers, res.headers_mut());
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

/// `POST /verify`: check keys (the pool's, or those in `x-goog-api-key`) in
/// parallel with a models.get call, streaming one SSE line per key as each
/// finishes; `?format=json` returns one document.
pub async fn verify(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let given: Vec<String> = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::config::parse_list(v).unwrap_or_default())
        .unwrap_or_default();
    let as_json =
        router::query_param(req.uri().query().unwrap_or(""), "format").as_deref() == Some("json");
    let from_pool = given.is_empty();
    let keys: Vec<(Option<usize>, String)> = if from_pool {
        (0..app.pool.len())
            .map(|i| (Some(i), app.pool.key(i).to_string()))
            .collect()
    } else {
        given.into_iter().map(|k| (None, k)).collect()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(keys.len().max(1));
    for (index, key) in keys {
        let app = app.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
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
    }
}
