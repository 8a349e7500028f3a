//! The Files API upload protocol (`/upload/v1beta/files`, `/upload/v1/files`,
//! also under `/gemini` and `/hf`): resumable (`start`, then `upload` /
//! `upload, finalize` chunks) and one-shot (multipart) uploads, the bytes
//! streamed through without being held whole (`MAX_UPLOAD_BYTES`, 413 past
//! it).
//!
//! The `start` call goes upstream on a pool key; Google's upload URL is kept
//! in an upload session (`crate::affinity::Session`) and the client gets
//! back the same path on the gateway with `?upload_id=<session id>`: the
//! chunk calls carry no credential, so that unguessable id is theirs. The
//! finalized file is recorded as the key's (see [`super::files`]). With
//! `PROXIES` every call of an upload goes through its key's proxy, as the
//! key's API calls do ([`crate::proxy::send_for_key`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use serde_json::Value;

use super::files::{Caller, owner_index, record, refusal};
use crate::affinity::{SESSION_TTL_MS, Session};
use crate::answer::{ANSWER_LIMIT, LogInfo, upstream_failed};
use crate::app::App;
use crate::auth::Keys;
use crate::body::{self, Body, BoxError};
use crate::error::GatewayError;
use crate::keys::Pick;
use crate::request::{query_param, read_body};
use crate::upstream::{Auth, Call, response_headers};

/// Request headers of the upload protocol passed upstream.
const UPLOAD_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "x-goog-upload-protocol",
    "x-goog-upload-command",
    "x-goog-upload-offset",
    "x-goog-upload-header-content-length",
    "x-goog-upload-header-content-type",
    "x-goog-upload-file-name",
    "x-goog-api-client",
    "user-agent",
];

/// A request body passed on as it arrives, counting its bytes; it fails
/// once more than `left` bytes came.
struct Counted {
    inner: Incoming,
    left: u64,
    seen: Arc<AtomicU64>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    let n = d.len() as u64;
                    self.seen.fetch_add(n, Ordering::Relaxed);
                    if n > self.left {
                        return Poll::Ready(Some(
                            Err("upload larger than MAX_UPLOAD_BYTES".into()),
                        ));
                    }
                    self.left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn too_large(max: u64) -> GatewayError {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("The upload is larger than MAX_UPLOAD_BYTES ({max} bytes)."),
    )
}

/// A header's value as text.
fn header_str<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The upstream origin (`scheme://host:port`) and the upload path for
/// `version`, from `BASE_URL` (`…/v1beta` → `…/upload/v1beta/files`).
fn upstream_upload(
    app: &App,
    version: &str,
) -> Option<(http::uri::Scheme, http::uri::Authority, String)> {
    let base: Uri = app.cfg().base_url.trim_end_matches('/').parse().ok()?;
    let p = base.clone().into_parts();
    let path = base.path().trim_end_matches('/');
    let head = match path.rsplit_once('/') {
        Some((h, last)) if last.starts_with("v1") => h,
        _ => path,
    };
    Some((
        p.scheme?,
        p.authority?,
        format!("{head}/upload/{version}/files"),
    ))
}

/// An upload call (see the module doc). `keys` is `None` for a chunk call
/// (`?upload_id=`), which carries no credential.
pub async fn upload(
    app: Arc<App>,
    req: Request<Incoming>,
    version: &'static str,
    keys: Option<Keys>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    if let Some(id) = query_param(req.uri().query().unwrap_or(""), "upload_id") {
        return chunk(&app, req, &id, log).await;
    }
    match keys {
        Some(Keys::Server) => {}
        _ => {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "Uploads go through the gateway's own key pool: use a gateway token as the API key.",
            ));
        }
    }
    if req.method() != Method::POST {
        return Err(GatewayError::MethodNotAllowed("POST"));
    }
    let caller = Caller::of(&app, &req);
    let resumable = header_str(&req, "x-goog-upload-protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("resumable"));
    if resumable {
        start(&app, req, version, &caller, log).await
    } else {
        one_shot(&app, req, version, &caller, log).await
    }
}

/// The resumable `start`: on a pool key, and a session for its upload URL.
async fn start(
    app: &App,
    req: Request<Incoming>,
    version: &'static str,
    caller: &Caller,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let max = app.cfg().max_upload_bytes;
    let announced = header_str(&req, "x-goog-upload-header-content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let own_url = session_base(&req);
    let Some((_, _, path)) = upstream_upload(app, version) else {
        return Err(GatewayError::Internal);
    };
    let headers = UPLOAD_HEADERS
        .iter()
        .filter(|n| **n != "content-length")
        .filter_map(|n| {
            req.headers()
                .get(*n)
                .map(|v| (http::HeaderName::from_static(n), v.clone()))
        })
        .collect();
    let body = read_body(app, req).await?;
    let call = Call {
        method: Method::POST,
        path,
        body,
        model: "",
        auth: Auth::GoogHeader,
        headers,
        route: log.route,
    };
    let answer = app
        .upstream
        .call(&app.pool, &call)
        .await
        .map_err(|f| upstream_failed(app, f, "", false))?;
    log.key = app.pool.masked(answer.key).to_string();
    let (parts, incoming) = answer.response.into_parts();
    drop(incoming);
    let upstream = parts
        .headers
        .get("x-goog-upload-url")
        .and_then(|v| v.to_str().ok())
        .and_then(|u| u.parse::<Uri>().ok())
        .and_then(|u| u.path_and_query().map(|pq| pq.as_str().to_string()));
    let (Some(upstream), Some(key_id)) = (upstream, app.pool.id(answer.key)) else {
        return Err(GatewayError::BadAnswer(
            "Gemini's answer to the upload start has no X-Goog-Upload-URL.".into(),
        ));
    };
    let session = Session {
        upstream,
        key_id: key_id.to_string(),
        token: caller.tag().to_string(),
        expires_ms: crate::clock::unix_ms() + SESSION_TTL_MS,
        received: 0,
        announced,
    };
    let Some(id) = app.affinity.open_session(session) else {
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many uploads are open at once; try again shortly.",
        ));
    };
    let url = format!("{own_url}?upload_id={id}&upload_protocol=resumable");
    let mut res = Response::new(body::empty());
    let h = res.headers_mut();
    h.insert("x-goog-upload-status", HeaderValue::from_static("active"));
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert("x-goog-upload-url", v.clone());
        h.insert("x-goog-upload-control-url", v);
    }
    if let Some(g) = parts.headers.get("x-goog-upload-chunk-granularity") {
        h.insert("x-goog-upload-chunk-granularity", g.clone());
    }
    Ok(res)
}

/// `scheme://host/path` of this request: where the chunks come back.
fn session_base<B>(req: &Request<B>) -> String {
    let scheme = header_str(req, "x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .map(str::trim)
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    let host = header_str(req, "x-forwarded-host")
        .or_else(|| header_str(req, "host"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}{}", req.uri().path())
}

/// A chunk of a resumable upload, on the session's key.
async fn chunk(
    app: &App,
    req: Request<Incoming>,
    id: &str,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let Some(session) = app.affinity.session(id) else {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "This upload session is unknown or expired (sessions last one hour); start the upload again.",
        ));
    };
    let owner = crate::affinity::Owner {
        key_id: session.key_id.clone(),
        token: session.token.clone(),
        expires_ms: session.expires_ms,
    };
    let index = owner_index(app, "This upload", &owner)?;
    log.key = app.pool.masked(index).to_string();
    let max = app.cfg().max_upload_bytes;
    let left = max.saturating_sub(session.received);
    let finalize =
        header_str(&req, "x-goog-upload-command").is_some_and(|c| c.contains("finalize"));
    let (answer, seen) = send_streamed(app, req, &session.upstream, index, left).await?;
    app.affinity.received(id, seen);
    let (parts, bytes) = answer;
    if finalize || !parts.status.is_success() {
        app.affinity.close_session(id);
    }
    if finalize && parts.status.is_success() {
        record_file(app, &bytes, index, session.token);
        super::owners::written(app).await;
    }
    Ok(passed(parts, bytes))
}

/// A one-shot (multipart) upload on a pool key.
async fn one_shot(
    app: &App,
    req: Request<Incoming>,
    version: &'static str,
    caller: &Caller,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let Pick::Key(index) = app.pool.pick("", &[]) else {
        return Err(upstream_failed(
            app,
            crate::upstream::Failure::Unavailable(app.pool.counts()),
            "",
            false,
        ));
    };
    log.key = app.pool.masked(index).to_string();
    let Some((_, _, path)) = upstream_upload(app, version) else {
        return Err(GatewayError::Internal);
    };
    let query = super::query_without_key(req.uri().query());
    let target = format!("{path}{query}");
    let max = app.cfg().max_upload_bytes;
    let ((parts, bytes), _) = send_streamed(app, req, &target, index, max).await?;
    if parts.status.is_success() {
        record_file(app, &bytes, index, caller.tag().to_string());
        super::owners::written(app).await;
    }
    Ok(passed(parts, bytes))
}

/// Record the file an upload's final answer (`{"file": {...}}`) names.
fn record_file(app: &App, answer: &[u8], index: usize, token: String) {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return;
    };
    let Some(name) = v
        .pointer("/file/name")
        .and_then(Value::as_str)
        .and_then(crate::affinity::resource_name)
    else {
        return;
    };
    let expires = v
        .pointer("/file/expirationTime")
        .and_then(Value::as_str)
        .and_then(super::files::rfc3339_ms);
    record(app, &name, index, token, expires);
}

/// Upstream's answer as the client gets it.
fn passed(parts: http::response::Parts, bytes: Bytes) -> Response<Body> {
    let mut res = Response::new(body::full(bytes));
    *res.status_mut() = parts.status;
    *res.headers_mut() = response_headers(parts.headers);
    res.headers_mut().remove(header::CONTENT_LENGTH);
    res.headers_mut().remove("x-goog-upload-url");
    res.headers_mut().remove("x-goog-upload-control-url");
    res
}

/// Stream `req`'s body to `target` (a path and query on the upstream
/// origin) on key `index`, at most `left` bytes; the answer read whole (key
/// masked) and the bytes sent.
async fn send_streamed(
    app: &App,
    req: Request<Incoming>,
    target: &str,
    index: usize,
    left: u64,
) -> Result<((http::response::Parts, Bytes), u64), GatewayError> {
    let max = app.cfg().max_upload_bytes;
    let length = header_str(&req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > left) {
        return Err(too_large(max));
    }
    let Some((scheme, authority, _)) = upstream_upload(app, "v1beta") else {
        return Err(GatewayError::Internal);
    };
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(target)
        .build()
        .map_err(|_| GatewayError::Internal)?;
    let (parts, incoming) = req.into_parts();
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Counted {
        inner: incoming,
        left,
        seen: seen.clone(),
    };
    let mut up = Request::new(counted.boxed());
    *up.method_mut() = parts.method.clone();
    *up.uri_mut() = uri;
    for n in UPLOAD_HEADERS {
        if let Some(v) = parts.headers.get(*n) {
            up.headers_mut().insert(*n, v.clone());
        }
    }
    let key = app.pool.key(index);
    if let Ok(mut v) = HeaderValue::from_str(key) {
        v.set_sensitive(true);
        up.headers_mut().insert("x-goog-api-key", v);
    }
    // The body may take a while to send: TIME_OUT plus a second per MiB.
    let wait =
        app.upstream.timeout() + Duration::from_secs(length.unwrap_or(left.min(1 << 30)) >> 20);
    // The streamed bodies go on their own client (the shared one sends whole
    // bodies), through the key's proxy when `PROXIES` is set.
    let key_id = app.pool.id(index).unwrap_or_default();
    let proxies = app.upstream.proxies();
    let sent = tokio::time::timeout(wait, crate::proxy::send_for_key(proxies, key_id, up)).await;
    use crate::proxy::SideError;
    let res = match sent {
        Ok(Ok(res)) => res,
        Ok(Err(_)) if seen.load(Ordering::Relaxed) > left => return Err(too_large(max)),
        Ok(Err(SideError::Down(m))) => return Err(GatewayError::ProxiesDown(m)),
        Ok(Err(SideError::Proxy(m))) => {
            return Err(GatewayError::Unreachable(format!(
                "{m}; it rests and the next try of this upload goes through another proxy"
            )));
        }
        Ok(Err(SideError::Request(e))) => {
            crate::debug!("upload on key {} failed: {e}", app.pool.masked(index));
            return Err(GatewayError::Unreachable(
                "the upload to Gemini broke off".into(),
            ));
        }
        Err(_) => return Err(GatewayError::Timeout),
    };
    let (mut parts, incoming) = res.into_parts();
    crate::upstream::redact_headers(&mut parts.headers, key);
    let read = tokio::time::timeout(
        app.upstream.timeout(),
        body::read_limited(incoming, ANSWER_LIMIT),
    );
    let bytes = match read.await {
        Ok(Ok(b)) => crate::upstream::redact(b, key),
        Err(_) => return Err(GatewayError::AnswerTimeout),
        Ok(Err(_)) => {
            return Err(GatewayError::BadAnswer(
                "Could not read Gemini's answer to the upload.".into(),
            ));
        }
    };
    let n = seen.load(Ordering::Relaxed);
    Ok(((parts, bytes), n))
}
