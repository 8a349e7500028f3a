//! Fake Gemini upstream server: a look-alike of `generativelanguage.googleapis.com`.
//!
//! This module owns the fake upstream used by the integration tests (in process),
//! the client tests (through the gateway), the `--demo` mode (no real Gemini key
//! needed) and the benchmark (`gemini-balance fake --port N`, a separate process).
//!
//! It follows Gemini's wire format where it matters (see
//! `docs/wire-formats.md`, Parts A and D):
//! - non-stream bodies are pretty-printed (2-space indent, `"key": value`) with
//!   `Content-Type: application/json; charset=UTF-8`; `<`/`>` in strings are
//!   written as `\u003c`/`\u003e` like Google does;
//! - `:streamGenerateContent?alt=sse` sends `data: <one-line JSON>\r\n\r\n` events in
//!   Google's compact style (`{"a": 1,"b": 2}`), no `[DONE]`;
//! - `:streamGenerateContent` without `alt=sse` sends a JSON array written as
//!   `[{pretty}\n,\r\n{pretty}\n]`;
//! - `usageMetadata` is cumulative on every chunk, `finishReason` only on the last
//!   one, `responseId`/`modelVersion` on every chunk, default-valued fields omitted;
//! - error bodies follow §A.6 (wrapped in a one-element array for non-SSE streams).
//!
//! Routes (under `/v1beta` and `/v1`): `GET models` (paginated; the fake's default
//! `pageSize` is 3 instead of Google's 50 so that pagination is always exercised),
//! `GET models/{m}`, `POST models/{m}:generateContent`, `:streamGenerateContent`,
//! `:countTokens`, `:embedContent`, `:batchEmbedContents`; and Gemini's own
//! OpenAI-compatible layer (§A.7) under `{version}/openai/`: `POST chat/completions`
//! (plain, or `stream: true` as `data: {chunk}\n\n` events ending in `data: [DONE]`),
//! `GET models`, `GET models/{id}`, `POST embeddings` (float or base64), keyed by
//! `Authorization: Bearer <key>` with the same per-key behaviors, errors as
//! Google's envelope in a one-element array.
//!
//! When the request sends `Accept-Encoding: gzip`, every answer (errors and
//! streams too) comes back `Content-Encoding: gzip`, each chunk its own stored
//! deflate block so streams stay streamed.
//!
//! Answers are deterministic and driven by the request. Directives in the last
//! user text (removed from the echoed text):
//! - `[[status=NNN]]` answer with that HTTP status and Google's matching error body;
//! - `[[events=N gap=MS]]` stream N one-word text events MS ms apart (non-stream:
//!   one text of N words, sent after `(N-1)*MS` ms);
//! - `[[words=N]]` answer text of N words;
//! - `[[block]]` prompt blocked (200, `promptFeedback.blockReason = SAFETY`);
//! - `[[finish=REASON]]` that `finishReason`;
//! - `[[image]]` an extra `inlineData` part holding a 1x1 PNG.
//!
//! Like Gemini, generate calls refuse a turn of `functionResponse` parts whose
//! count differs from the calls of the model turn before it, and on `gemini-3*`
//! a replayed `functionCall` (current turn) without its `thoughtSignature`;
//! a request naming `cachedContent` reports `cachedContentTokenCount: 1024`;
//! `responseLogprobs` adds a `logprobsResult` (non-stream answers).
//!
//! Key behaviors (see [`KeyBehavior`]) are chosen per key, explicitly or by key
//! prefix. Control endpoints for out-of-process use (not recorded):
//! `POST /__fake/keys/{key}` (`{"behavior": "quota", "retry_secs": 5}`),
//! `GET /__fake/requests`, `POST /__fake/clear`, `GET /__fake/count/{key}`.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// ---------------------------------------------------------------------------
// Public state types
// ---------------------------------------------------------------------------

/// How a key behaves at the fake.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyBehavior {
    /// Answers normally.
    Ok,
    /// 400 `INVALID_ARGUMENT`, `ErrorInfo.reason = API_KEY_INVALID`.
    Invalid,
    /// 400 `INVALID_ARGUMENT` "API key expired. Please renew the API key.",
    /// `ErrorInfo.reason = API_KEY_EXPIRED`.
    Expired,
    /// 403 `PERMISSION_DENIED` "Permission denied: Consumer 'api_key:...' has been
    /// suspended.", `ErrorInfo.reason = CONSUMER_SUSPENDED`.
    Suspended,
    /// 429 `RESOURCE_EXHAUSTED` with a per-minute `QuotaFailure` and
    /// `RetryInfo.retryDelay = "<retry_secs>s"`.
    Quota {
        /// Seconds reported in `RetryInfo`.
        retry_secs: u64,
    },
    /// 429 `RESOURCE_EXHAUSTED`, quotaId `GenerateRequestsPerDayPerProjectPerModel-FreeTier`,
    /// no `RetryInfo`.
    QuotaDay,
    /// 503 `UNAVAILABLE` "The model is overloaded. Please try again later."
    Overloaded,
    /// 500 `INTERNAL`.
    Internal,
    /// 400 `FAILED_PRECONDITION` "User location is not supported for the API use."
    Region,
    /// Answers like `Ok` after waiting `ms` milliseconds (before the headers).
    Slow {
        /// Delay before the response headers.
        ms: u64,
    },
    /// Streams: send `events` events, then drop the connection abruptly (no final
    /// chunk). Non-stream calls: the connection is reset before any headers.
    CutAfter {
        /// Number of events delivered before the cut.
        events: usize,
    },
    /// Accept the request and never answer.
    Hang,
    /// Generate calls answer like `Ok` with the request's own key written
    /// into the first text (as an upstream that echoes it would); with
    /// `split`, the chunk holding it is sent in two frames 50 ms apart, cut
    /// in the middle of the key.
    EchoKey {
        /// Cut the key across two frames.
        split: bool,
    },
    /// Generate calls send their headers at once, then the body a few bytes
    /// at a time, `ms` milliseconds apart.
    Trickle {
        /// Gap between two pieces of the body.
        ms: u64,
    },
}

/// Everything one request to the fake looked like, for assertions.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// URL path without the query, as sent (not percent-decoded).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Key from `x-goog-api-key`, else from `?key=`, else (on the `/openai/`
    /// routes only) from `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// All request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Bytes,
}

/// At most this many requests are kept in the log (oldest dropped first), so a
/// long benchmark run does not grow without bound. Per-key counts are exact.
const LOG_CAP: usize = 10_000;

/// Shared state: behaviors and the request log.
pub struct FakeState {
    keys: RwLock<HashMap<String, KeyBehavior>>,
    log: Mutex<VecDeque<Recorded>>,
    counts: Mutex<HashMap<String, usize>>,
    seq: AtomicU64,
    /// API requests being handled now, and the most at once so far.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeState {
    /// Fresh state: no explicit key behaviors, empty log.
    pub fn new() -> Arc<Self> {
        Arc::new(FakeState {
            keys: RwLock::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
            counts: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        })
    }

    /// Set the behavior for a key (overrides the prefix default).
    pub fn set_key(&self, key: &str, behavior: KeyBehavior) {
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), behavior);
    }

    /// Behavior for a key; keys not set explicitly default by PREFIX of the key
    /// string: "bad"→Invalid, "expired"→Expired, "suspended"→Suspended,
    /// "quota-day"→QuotaDay, "quota"→Quota{retry_secs:2}, "overload"→Overloaded,
    /// "internal"→Internal, "region"→Region, "slow"→Slow{ms:300},
    /// "cut"→CutAfter{events:2}, "hang"→Hang, "echo-split"→EchoKey{split:true},
    /// "echo"→EchoKey{split:false}, "trickle"→Trickle{ms:300}, anything else → Ok.
    pub fn behavior(&self, key: &str) -> KeyBehavior {
        if let Some(b) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return b.clone();
        }
        default_behavior(key)
    }

    /// All recorded requests so far (clone), oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Forget all recorded requests, per-key counts and the in-flight peak
    /// (key behaviors stay).
    pub fn clear(&self) {
        lock(&self.log).clear();
        lock(&self.counts).clear();
        let now = self.in_flight.load(Ordering::SeqCst);
        self.peak_in_flight.store(now, Ordering::SeqCst);
    }

    /// How many requests carried each key (generation/embedding/count calls and
    /// model GETs alike).
    pub fn count_for_key(&self, key: &str) -> usize {
        lock(&self.counts).get(key).copied().unwrap_or(0)
    }

    /// The most API requests the fake was handling at the same moment (from
    /// arrival until the answer's headers; control requests not counted).
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    fn record(&self, r: Recorded) {
        if let Some(k) = &r.api_key {
            *lock(&self.counts).entry(k.clone()).or_insert(0) += 1;
        }
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAP {
            log.pop_front();
        }
        log.push_back(r);
    }

    fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

fn default_behavior(key: &str) -> KeyBehavior {
    let table: [(&str, KeyBehavior); 14] = [
        ("bad", KeyBehavior::Invalid),
        ("expired", KeyBehavior::Expired),
        ("suspended", KeyBehavior::Suspended),
        ("quota-day", KeyBehavior::QuotaDay),
        ("quota", KeyBehavior::Quota { retry_secs: 2 }),
        ("overload", KeyBehavior::Overloaded),
        ("internal", KeyBehavior::Internal),
        ("region", KeyBehavior::Region),
        ("slow", KeyBehavior::Slow { ms: 300 }),
        ("cut", KeyBehavior::CutAfter { events: 2 }),
        ("hang", KeyBehavior::Hang),
        ("echo-split", KeyBehavior::EchoKey { split: true }),
        ("echo", KeyBehavior::EchoKey { split: false }),
        ("trickle", KeyBehavior::Trickle { ms: 300 }),
    ];
    for (p, b) in table {
        if key.starts_with(p) {
            return b;
        }
    }
    KeyBehavior::Ok
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// A running fake. Dropping it stops accepting and closes open connections.
pub struct Fake {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (behaviors, request log).
    pub state: Arc<FakeState>,
    _shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    /// Bind 127.0.0.1:0 with fresh state and serve on the current tokio runtime
    /// (spawned task).
    pub async fn start() -> std::io::Result<Fake> {
        Fake::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), FakeState::new()).await
    }

    /// Bind `addr` and serve `state` on the current tokio runtime (spawned task).
    pub async fn start_on(addr: SocketAddr, state: Arc<FakeState>) -> std::io::Result<Fake> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let st = state.clone();
        let task = tokio::spawn(async move { accept_loop(listener, st, Some(rx)).await });
        Ok(Fake {
            addr,
            state,
            _shutdown: tx,
            task,
        })
    }

    /// e.g. "http://127.0.0.1:PORT/v1beta" — what the gateway's BASE_URL should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve forever on `listener` (used by `gemini-balance fake --port N` for the
/// benchmark). HTTP/1.1 and h2c (prior knowledge), one task per connection.
pub async fn serve(listener: TcpListener, state: Arc<FakeState>) {
    accept_loop(listener, state, None).await
}

async fn accept_loop(
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

async fn serve_conn(
    stream: TcpStream,
    state: Arc<FakeState>,
    shutdown: Option<watch::Receiver<bool>>,
) {
    let _ = stream.set_nodelay(true);
    let svc = service_fn(move |req| handle(state.clone(), req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
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

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct Abort;

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake: connection reset on purpose")
    }
}

impl std::error::Error for Abort {}

/// Response body: a queue of chunks, optionally spaced in time, optionally
/// ending in an error (which makes hyper cut the connection).
struct FakeBody {
    chunks: VecDeque<Bytes>,
    gap: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    started: bool,
    fail_at_end: bool,
    full: bool,
}

impl FakeBody {
    fn full(b: impl Into<Bytes>) -> Self {
        let mut chunks = VecDeque::with_capacity(1);
        chunks.push_back(b.into());
        FakeBody {
            chunks,
            gap: Duration::ZERO,
            sleep: None,
            started: false,
            fail_at_end: false,
            full: true,
        }
    }

    fn stream(chunks: Vec<Bytes>, gap: Duration, cut: bool) -> Self {
        FakeBody {
            chunks: chunks.into(),
            gap,
            sleep: None,
            started: false,
            fail_at_end: cut,
            full: false,
        }
    }
}

/// Delay before cutting a connection, so the client reads what was sent.
const CUT_DELAY: Duration = Duration::from_millis(30);

impl Body for FakeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.chunks.is_empty() && !this.fail_at_end {
            return Poll::Ready(None);
        }
        let cutting = this.chunks.is_empty();
        let wait = if cutting {
            CUT_DELAY
        } else if this.started {
            this.gap
        } else {
            Duration::ZERO
        };
        if !wait.is_zero() {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if cutting {
            this.fail_at_end = false;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fake: stream cut on purpose",
            ))));
        }
        this.started = true;
        Poll::Ready(this.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && !self.fail_at_end
    }

    fn size_hint(&self) -> SizeHint {
        if self.full {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Ordered JSON with Google's two output styles
// ---------------------------------------------------------------------------

/// Output JSON value; objects keep insertion order (serde_json's map is sorted).
#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    F64(f64),
    F32(f32),
    Str(Cow<'static, str>),
    Arr(Vec<J>),
    Obj(Vec<(Cow<'static, str>, J)>),
}

impl J {
    fn s(v: impl Into<Cow<'static, str>>) -> J {
        J::Str(v.into())
    }

    fn obj<const N: usize>(items: [(&'static str, J); N]) -> J {
        J::Obj(
            items
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        )
    }

    fn push(&mut self, k: &'static str, v: J) {
        if let J::Obj(m) = self {
            m.push((Cow::Borrowed(k), v));
        }
    }

    fn from_value(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    J::Int(i)
                } else {
                    J::F64(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => J::s(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(m) => J::Obj(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), J::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Pretty style: 2-space indent, `"key": value`, one member per line.
    fn pretty(&self) -> String {
        let mut out = String::with_capacity(256);
        write_pretty(self, &mut out, 0);
        out
    }

    /// Google's one-line style: `{"a": 1,"b": [1,2]}`.
    fn compact(&self) -> String {
        let mut out = String::with_capacity(256);
        write_compact(self, &mut out);
        out
    }
}

fn write_indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn write_scalar(j: &J, out: &mut String) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(i) => out.push_str(&i.to_string()),
        J::F64(f) => write_f64(*f, out),
        J::F32(f) => {
            if f.is_finite() {
                out.push_str(&f.to_string())
            } else {
                out.push('0')
            }
        }
        J::Str(s) => write_str(s, out),
        J::Arr(_) | J::Obj(_) => {}
    }
}

fn write_f64(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push('0');
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        out.push_str(&(f as i64).to_string());
    } else {
        out.push_str(&f.to_string());
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_pretty(j: &J, out: &mut String, ind: usize) {
    match j {
        J::Arr(v) if v.is_empty() => out.push_str("[]"),
        J::Obj(m) if m.is_empty() => out.push_str("{}"),
        J::Arr(v) => {
            out.push_str("[\n");
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                write_indent(out, ind + 1);
                write_pretty(x, out, ind + 1);
            }
            out.push('\n');
            write_indent(out, ind);
            out.push(']');
        }
        J::Obj(m) => {
            out.push_str("{\n");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                write_indent(out, ind + 1);
                write_str(k, out);
                out.push_str(": ");
                write_pretty(v, out, ind + 1);
            }
            out.push('\n');
            write_indent(out, ind);
            out.push('}');
        }
        s => write_scalar(s, out),
    }
}

fn write_compact(j: &J, out: &mut String) {
    match j {
        J::Arr(v) => {
            out.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(x, out);
            }
            out.push(']');
        }
        J::Obj(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push_str(": ");
                write_compact(v, out);
            }
            out.push('}');
        }
        s => write_scalar(s, out),
    }
}

// ---------------------------------------------------------------------------
// Errors (docs/wire-formats.md §A.6)
// ---------------------------------------------------------------------------

/// A Google error: HTTP status plus the `{"error": {...}}` body.
struct GErr {
    code: u16,
    body: J,
}

const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";
const LOCALIZED: &str = "type.googleapis.com/google.rpc.LocalizedMessage";
const SERVICE: &str = "generativelanguage.googleapis.com";

fn gerr(code: u16, status: &'static str, message: impl Into<String>, details: Vec<J>) -> GErr {
    let mut e = J::obj([
        ("code", J::Int(code as i64)),
        ("message", J::s(message.into())),
        ("status", J::s(status)),
    ]);
    if !details.is_empty() {
        e.push("details", J::Arr(details));
    }
    GErr {
        code,
        body: J::obj([("error", e)]),
    }
}

fn error_info(reason: &'static str, extra_meta: Option<(&'static str, String)>) -> J {
    let mut meta = J::obj([("service", J::s(SERVICE))]);
    if let Some((k, v)) = extra_meta {
        meta.push(k, J::s(v));
    }
    J::obj([
        ("@type", J::s(ERROR_INFO)),
        ("reason", J::s(reason)),
        ("domain", J::s("googleapis.com")),
        ("metadata", meta),
    ])
}

fn localized(msg: &str) -> J {
    J::obj([
        ("@type", J::s(LOCALIZED)),
        ("locale", J::s("en-US")),
        ("message", J::s(msg.to_string())),
    ])
}

fn err_no_key() -> GErr {
    gerr(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        vec![],
    )
}

fn err_invalid_key() -> GErr {
    let m = "API key not valid. Please pass a valid API key.";
    gerr(
        400,
        "INVALID_ARGUMENT",
        m,
        vec![error_info("API_KEY_INVALID", None), localized(m)],
    )
}

fn err_expired() -> GErr {
    let m = "API key expired. Please renew the API key.";
    gerr(
        400,
        "INVALID_ARGUMENT",
        m,
        vec![error_info("API_KEY_EXPIRED", None), localized(m)],
    )
}

fn err_suspended(key: &str) -> GErr {
    let m = format!("Permission denied: Consumer 'api_key:{key}' has been suspended.");
    gerr(
        403,
        "PERMISSION_DENIED",
        m.clone(),
        vec![
            error_info(
                "CONSUMER_SUSPENDED",
                Some(("consumer", "projects/123456789012".to_string())),
            ),
            localized(&m),
        ],
    )
}

fn err_quota(model: &str, retry_secs: Option<u64>) -> GErr {
    let (quota_id, limit) = match retry_secs {
        Some(_) => ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "10"),
        None => ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "250"),
    };
    let metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
    let mut msg = format!(
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}"
    );
    if let Some(s) = retry_secs {
        msg.push_str(&format!("\nPlease retry in {s}s."));
    }
    let mut details = vec![
        J::obj([
            ("@type", J::s("type.googleapis.com/google.rpc.QuotaFailure")),
            (
                "violations",
                J::Arr(vec![J::obj([
                    ("quotaMetric", J::s(metric)),
                    ("quotaId", J::s(quota_id)),
                    (
                        "quotaDimensions",
                        J::obj([
                            ("location", J::s("global")),
                            ("model", J::s(model.to_string())),
                        ]),
                    ),
                    ("quotaValue", J::s(limit)),
                ])]),
            ),
        ]),
        J::obj([
            ("@type", J::s("type.googleapis.com/google.rpc.Help")),
            (
                "links",
                J::Arr(vec![J::obj([
                    ("description", J::s("Learn more about Gemini API quotas")),
                    (
                        "url",
                        J::s("https://ai.google.dev/gemini-api/docs/rate-limits"),
                    ),
                ])]),
            ),
        ]),
    ];
    if let Some(s) = retry_secs {
        details.push(J::obj([
            ("@type", J::s("type.googleapis.com/google.rpc.RetryInfo")),
            ("retryDelay", J::s(format!("{s}s"))),
        ]));
    }
    gerr(429, "RESOURCE_EXHAUSTED", msg, details)
}

fn err_overloaded() -> GErr {
    gerr(
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
        vec![],
    )
}

fn err_internal() -> GErr {
    gerr(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        vec![],
    )
}

fn err_region() -> GErr {
    gerr(
        400,
        "FAILED_PRECONDITION",
        "User location is not supported for the API use.",
        vec![],
    )
}

fn err_model_not_found(model: &str, version: &str, method: &str) -> GErr {
    gerr(
        404,
        "NOT_FOUND",
        format!(
            "models/{model} is not found for API version {version}, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
        ),
        vec![],
    )
}

fn err_invalid_json(detail: &str) -> GErr {
    let m = format!("Invalid JSON payload received. {detail}");
    gerr(
        400,
        "INVALID_ARGUMENT",
        m.clone(),
        vec![J::obj([
            ("@type", J::s("type.googleapis.com/google.rpc.BadRequest")),
            (
                "fieldViolations",
                J::Arr(vec![J::obj([("description", J::s(m))])]),
            ),
        ])],
    )
}

fn err_bad(message: impl Into<String>) -> GErr {
    gerr(400, "INVALID_ARGUMENT", message, vec![])
}

fn err_route_not_found() -> GErr {
    gerr(404, "NOT_FOUND", "Method not found.", vec![])
}

fn err_method(method: &Method, path: &str) -> GErr {
    gerr(
        405,
        "UNIMPLEMENTED",
        format!("Method not allowed: {method} {path}"),
        vec![],
    )
}

/// The error body Google sends for `[[status=NNN]]`.
fn err_for_status(code: u16, model: &str) -> GErr {
    match code {
        400 => err_bad("Request contains an invalid argument."),
        401 => gerr(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            vec![],
        ),
        403 => gerr(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            vec![],
        ),
        404 => err_model_not_found(model, "v1beta", "generateContent"),
        408 => gerr(408, "DEADLINE_EXCEEDED", "Request timed out.", vec![]),
        429 => err_quota(model, Some(2)),
        499 => gerr(499, "CANCELLED", "The operation was cancelled.", vec![]),
        500 => err_internal(),
        502 => gerr(502, "UNAVAILABLE", "Bad Gateway", vec![]),
        503 => err_overloaded(),
        504 => gerr(
            504,
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
            vec![],
        ),
        c => gerr(c, "UNKNOWN", format!("Simulated error {c}."), vec![]),
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// How the current call formats its output.
struct Ctx {
    version: &'static str,
    /// `:streamGenerateContent` without `alt=sse`: errors are array-wrapped.
    array_stream: bool,
    /// `prettyPrint=false` turns pretty-printing off.
    pretty: bool,
}

const JSON_CT: &str = "application/json; charset=UTF-8";

fn with_headers(status: u16, ct: &'static str, body: FakeBody) -> Response<FakeBody> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        http::header::VARY,
        HeaderValue::from_static("Origin, X-Origin, Referer"),
    );
    h.insert(
        http::header::SERVER,
        HeaderValue::from_static("scaffolding on HTTPServer2"),
    );
    h.insert(
        HeaderName::from_static("x-xss-protection"),
        HeaderValue::from_static("0"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn json_response(ctx: &Ctx, status: u16, j: &J) -> Response<FakeBody> {
    let mut s = if ctx.pretty { j.pretty() } else { j.compact() };
    s.push('\n');
    with_headers(status, JSON_CT, FakeBody::full(s))
}

fn error_response(ctx: &Ctx, e: GErr) -> Response<FakeBody> {
    if ctx.array_stream {
        let mut s = String::from("[");
        s.push_str(&if ctx.pretty {
            e.body.pretty()
        } else {
            e.body.compact()
        });
        s.push_str("\n]");
        with_headers(e.code, JSON_CT, FakeBody::full(s))
    } else {
        json_response(ctx, e.code, &e.body)
    }
}

fn plain_json(status: u16, s: String) -> Response<FakeBody> {
    with_headers(status, JSON_CT, FakeBody::full(s))
}

// ---------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------

const BODY_LIMIT: usize = 64 * 1024 * 1024;

enum Call {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
}

enum Route {
    List,
    Get(String),
    Call(String, Call),
}

/// `res` with `key` written at the start of its first text (`"text": "`,
/// or `"content": "` on the OpenAI-compatible layer); with `split`, that
/// chunk is cut in two frames in the middle of the key.
fn echo_key(mut res: Response<FakeBody>, key: &str, split: bool) -> Response<FakeBody> {
    const MARKS: [&[u8]; 2] = [b"\"text\": \"", b"\"content\": \""];
    let body = res.body_mut();
    let found = body.chunks.iter().enumerate().find_map(|(i, c)| {
        MARKS.iter().find_map(|m| {
            c.windows(m.len())
                .position(|w| w == *m)
                .map(|p| (i, p + m.len()))
        })
    });
    let Some((i, at)) = found else {
        return res;
    };
    let old = &body.chunks[i];
    let mut new = Vec::with_capacity(old.len() + key.len() + 1);
    new.extend_from_slice(&old[..at]);
    new.extend_from_slice(key.as_bytes());
    new.push(b' ');
    new.extend_from_slice(&old[at..]);
    let new = Bytes::from(new);
    if split {
        let cut = at + key.len() / 2;
        body.chunks[i] = new.slice(cut..);
        body.chunks.insert(i, new.slice(..cut));
        body.gap = body.gap.max(Duration::from_millis(50));
    } else {
        body.chunks[i] = new;
    }
    res
}

/// `res` with its body re-cut into 8-byte pieces sent `ms` apart.
fn trickle(mut res: Response<FakeBody>, ms: u64) -> Response<FakeBody> {
    let body = res.body_mut();
    let pieces: VecDeque<Bytes> = body
        .chunks
        .drain(..)
        .flat_map(|c| {
            (0..c.len())
                .step_by(8)
                .map(move |i| c.slice(i..(i + 8).min(c.len())))
                .collect::<Vec<_>>()
        })
        .collect();
    body.chunks = pieces;
    body.gap = Duration::from_millis(ms);
    res
}

/// Serve one request; the answer is gzip-encoded (as Google does) when the
/// request accepts gzip — control endpoints excepted.
async fn handle(
    state: Arc<FakeState>,
    req: Request<Incoming>,
) -> Result<Response<FakeBody>, Abort> {
    let gzip = !req.uri().path().starts_with("/__fake/")
        && req
            .headers()
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .any(|v| v.to_str().is_ok_and(crate::gemini::gzip::accepts_gzip));
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

/// Re-frame a response body as a gzip stream: every chunk becomes its own
/// stored deflate block, so a streamed answer is still streamed chunk by
/// chunk; a body that ends in a cut gets no gzip trailer.
fn gzip_response(mut res: Response<FakeBody>) -> Response<FakeBody> {
    let body = res.body_mut();
    let mut enc = crate::gemini::gzip::GzipEncoder::new();
    let n = body.chunks.len();
    let mut out = VecDeque::with_capacity(n.max(1));
    for (i, c) in body.chunks.drain(..).enumerate() {
        let mut b = enc.chunk(&c);
        if i + 1 == n && !body.fail_at_end {
            b.extend(enc.finish());
        }
        out.push_back(Bytes::from(b));
    }
    if n == 0 && !body.fail_at_end {
        out.push_back(Bytes::from(enc.finish()));
    }
    body.chunks = out;
    res.headers_mut().insert(
        http::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    res
}

async fn handle_api(
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
        path: path.clone(),
        query: query.clone(),
        api_key: api_key.clone(),
        authorization,
        headers,
        body: body.as_ref().cloned().unwrap_or_default(),
    });

    let q = |name: &str| qp.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let pretty = q("prettyPrint") != Some("false");
    let mut ctx = Ctx {
        version: "v1beta",
        array_stream: false,
        pretty,
    };

    // Route.
    let (version, rest) = if let Some(r) = strip_version(&path, "/v1beta") {
        ("v1beta", r)
    } else if let Some(r) = strip_version(&path, "/v1") {
        ("v1", r)
    } else {
        return Ok(error_response(&ctx, err_route_not_found()));
    };
    ctx.version = version;
    if let Some(oa) = rest.strip_prefix("/openai/") {
        return openai_compat(&state, &parts.method, oa, api_key, body).await;
    }
    let route = match parse_route(rest) {
        Some(r) => r,
        None => return Ok(error_response(&ctx, err_route_not_found())),
    };
    let want_post = matches!(route, Route::Call(..));
    if (want_post && parts.method != Method::POST) || (!want_post && parts.method != Method::GET) {
        return Ok(error_response(&ctx, err_method(&parts.method, &path)));
    }
    let sse = q("alt") == Some("sse");
    let is_stream = matches!(route, Route::Call(_, Call::Stream));
    ctx.array_stream = is_stream && !sse;

    // Auth.
    let Some(key) = api_key else {
        return Ok(error_response(&ctx, err_no_key()));
    };
    let model_for_quota = match &route {
        Route::Get(m) | Route::Call(m, _) => m.clone(),
        Route::List => "gemini-2.5-flash".to_string(),
    };
    let mut cut = None;
    let mut reshape = None;
    match state.behavior(&key) {
        KeyBehavior::Ok => {}
        b @ (KeyBehavior::EchoKey { .. } | KeyBehavior::Trickle { .. }) => reshape = Some(b),
        KeyBehavior::Invalid => return Ok(error_response(&ctx, err_invalid_key())),
        KeyBehavior::Expired => return Ok(error_response(&ctx, err_expired())),
        KeyBehavior::Suspended => return Ok(error_response(&ctx, err_suspended(&key))),
        KeyBehavior::Quota { retry_secs } => {
            return Ok(error_response(
                &ctx,
                err_quota(&model_for_quota, Some(retry_secs)),
            ));
        }
        KeyBehavior::QuotaDay => {
            return Ok(error_response(&ctx, err_quota(&model_for_quota, None)));
        }
        KeyBehavior::Overloaded => return Ok(error_response(&ctx, err_overloaded())),
        KeyBehavior::Internal => return Ok(error_response(&ctx, err_internal())),
        KeyBehavior::Region => return Ok(error_response(&ctx, err_region())),
        KeyBehavior::Slow { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        KeyBehavior::CutAfter { events } => {
            if !is_stream {
                return Err(Abort);
            }
            cut = Some(events);
        }
        KeyBehavior::Hang => std::future::pending::<()>().await,
    }

    let body = match body {
        Ok(b) => b,
        Err(_) => {
            return Ok(error_response(
                &ctx,
                gerr(
                    413,
                    "INVALID_ARGUMENT",
                    format!("Request payload size exceeds the limit: {BODY_LIMIT} bytes."),
                    vec![],
                ),
            ));
        }
    };

    match route {
        Route::List => Ok(list_models(&ctx, q("pageSize"), q("pageToken"))),
        Route::Get(m) => Ok(get_model(&ctx, &m)),
        Route::Call(model, call) => {
            let method = match call {
                Call::Generate => "generateContent",
                Call::Stream => "streamGenerateContent",
                Call::CountTokens => "countTokens",
                Call::Embed => "embedContent",
                Call::BatchEmbed => "batchEmbedContents",
            };
            if !model_known(&model) {
                return Ok(error_response(
                    &ctx,
                    err_model_not_found(&model, ctx.version, method),
                ));
            }
            let root = match parse_body(&body) {
                Ok(v) => v,
                Err(e) => return Ok(error_response(&ctx, e)),
            };
            let res = match call {
                Call::Generate => generate(&state, &ctx, &model, &root, None).await,
                Call::Stream => {
                    generate(&state, &ctx, &model, &root, Some(StreamMode { sse, cut })).await
                }
                Call::CountTokens => count_tokens(&ctx, &root),
                Call::Embed => embed(&ctx, &root),
                Call::BatchEmbed => batch_embed(&ctx, &model, &root),
            };
            let res = match (res, reshape) {
                (Ok(r), Some(KeyBehavior::EchoKey { split })) => Ok(echo_key(r, &key, split)),
                (Ok(r), Some(KeyBehavior::Trickle { ms })) => Ok(trickle(r, ms)),
                (res, _) => res,
            };
            Ok(res.unwrap_or_else(|e| error_response(&ctx, e)))
        }
    }
}

fn strip_version<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

fn parse_route(rest: &str) -> Option<Route> {
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
        Some(_) => None,
    }
}

fn parse_body(body: &[u8]) -> Result<Value, GErr> {
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

fn control(state: &FakeState, method: &Method, rest: &str, body: &[u8]) -> Response<FakeBody> {
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
            _ => return bad("unknown behavior"),
        };
        state.set_key(&key, b);
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

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

struct ModelInfo {
    id: &'static str,
    version: &'static str,
    display: &'static str,
    description: &'static str,
    input: i64,
    output: i64,
    methods: &'static [&'static str],
    /// temperature, topP, topK, maxTemperature
    sampling: Option<(f64, f64, i64, f64)>,
    thinking: bool,
}

const GEN_METHODS: &[&str] = &[
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
];

const CATALOGUE: &[ModelInfo] = &[
    ModelInfo {
        id: "gemini-2.5-flash",
        version: "001",
        display: "Gemini 2.5 Flash",
        description: "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to 1 million tokens, released in June of 2025.",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.5-pro",
        version: "2.5",
        display: "Gemini 2.5 Pro",
        description: "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.5-flash-lite",
        version: "001",
        display: "Gemini 2.5 Flash-Lite",
        description: "Stable version of Gemini 2.5 Flash-Lite, released in July of 2025",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.0-flash",
        version: "2.0",
        display: "Gemini 2.0 Flash",
        description: "Gemini 2.0 Flash",
        input: 1_048_576,
        output: 8_192,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 40, 2.0)),
        thinking: false,
    },
    ModelInfo {
        id: "gemini-3-pro-preview",
        version: "3-pro-preview-11-2025",
        display: "Gemini 3 Pro Preview",
        description: "Gemini 3 Pro Preview",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.5-flash-image",
        version: "2.0",
        display: "Nano Banana",
        description: "Gemini 2.5 Flash Image",
        input: 32_768,
        output: 32_768,
        methods: &["generateContent", "countTokens", "batchGenerateContent"],
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: false,
    },
    ModelInfo {
        id: "gemini-embedding-001",
        version: "001",
        display: "Gemini Embedding 001",
        description: "Obtain a distributed representation of a text.",
        input: 2_048,
        output: 1,
        methods: &[
            "embedContent",
            "countTextTokens",
            "countTokens",
            "asyncBatchEmbedContent",
        ],
        sampling: None,
        thinking: false,
    },
    ModelInfo {
        id: "text-embedding-004",
        version: "004",
        display: "Text Embedding 004",
        description: "Obtain a distributed representation of a text.",
        input: 2_048,
        output: 1,
        methods: &["embedContent"],
        sampling: None,
        thinking: false,
    },
];

/// The fake's default page size (Google's real default is 50).
const DEFAULT_PAGE_SIZE: usize = 3;

/// A model the fake serves: the catalogue, any `fake-*` name, and `gemini-*`
/// names that are not from the future (no version, or major version 1–3, e.g.
/// `gemini-flash-latest`, `gemini-2.0-flash-001`); `gemini-9-ultra` is 404 as
/// at Google.
fn model_known(m: &str) -> bool {
    if CATALOGUE.iter().any(|c| c.id == m) || m.starts_with("fake-") {
        return true;
    }
    let Some(rest) = m.strip_prefix("gemini-").filter(|r| !r.is_empty()) else {
        return false;
    };
    let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
    major.is_empty() || major.parse::<u32>().is_ok_and(|v| (1..=3).contains(&v))
}

fn model_json(c: &ModelInfo) -> J {
    let mut j = J::obj([
        ("name", J::s(format!("models/{}", c.id))),
        ("version", J::s(c.version)),
        ("displayName", J::s(c.display)),
        ("description", J::s(c.description)),
        ("inputTokenLimit", J::Int(c.input)),
        ("outputTokenLimit", J::Int(c.output)),
        (
            "supportedGenerationMethods",
            J::Arr(c.methods.iter().map(|m| J::s(*m)).collect()),
        ),
    ]);
    if let Some((t, p, k, mt)) = c.sampling {
        j.push("temperature", J::F64(t));
        j.push("topP", J::F64(p));
        j.push("topK", J::Int(k));
        j.push("maxTemperature", J::F64(mt));
    }
    if c.thinking {
        j.push("thinking", J::Bool(true));
    }
    j
}

fn list_models(ctx: &Ctx, page_size: Option<&str>, token: Option<&str>) -> Response<FakeBody> {
    let size = page_size
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|n| *n > 0)
        .map(|n| n.min(1000) as usize)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match decode_page_token(t) {
            Some(o) if o <= CATALOGUE.len() => o,
            _ => {
                return error_response(ctx, err_bad("Invalid page token provided."));
            }
        },
    };
    let end = (offset + size).min(CATALOGUE.len());
    let models: Vec<J> = CATALOGUE[offset..end].iter().map(model_json).collect();
    let mut j = J::Obj(vec![]);
    if !models.is_empty() {
        j.push("models", J::Arr(models));
    }
    if end < CATALOGUE.len() {
        j.push(
            "nextPageToken",
            J::s(b64_std(format!("offset:{end}").as_bytes())),
        );
    }
    json_response(ctx, 200, &j)
}

fn decode_page_token(t: &str) -> Option<usize> {
    let raw = b64_decode(t)?;
    let s = std::str::from_utf8(&raw).ok()?;
    s.strip_prefix("offset:")?.parse().ok()
}

fn get_model(ctx: &Ctx, m: &str) -> Response<FakeBody> {
    if let Some(c) = CATALOGUE.iter().find(|c| c.id == m) {
        return json_response(ctx, 200, &model_json(c));
    }
    if model_known(m) {
        let j = J::obj([
            ("name", J::s(format!("models/{m}"))),
            ("version", J::s("001")),
            ("displayName", J::s(m.to_string())),
            ("description", J::s(format!("Fake model {m}"))),
            ("inputTokenLimit", J::Int(1_048_576)),
            ("outputTokenLimit", J::Int(65_536)),
            (
                "supportedGenerationMethods",
                J::Arr(GEN_METHODS.iter().map(|m| J::s(*m)).collect()),
            ),
            ("temperature", J::F64(1.0)),
            ("topP", J::F64(0.95)),
            ("topK", J::Int(64)),
            ("maxTemperature", J::F64(2.0)),
        ]);
        return json_response(ctx, 200, &j);
    }
    error_response(ctx, err_model_not_found(m, ctx.version, "get"))
}

// ---------------------------------------------------------------------------
// Request field helpers (camelCase and snake_case)
// ---------------------------------------------------------------------------

fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel)
        .filter(|x| !x.is_null())
        .or_else(|| v.get(snake).filter(|x| !x.is_null()))
}

fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn parts_of(content: &Value) -> &[Value] {
    arr(content.get("parts"))
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Deterministic token estimate of a text: max(words, ceil(chars / 4)).
fn tok(s: &str) -> u64 {
    if s.is_empty() {
        return 0;
    }
    let chars = s.chars().count() as u64;
    words(s).max(chars.div_ceil(4))
}

fn compact_value(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Prompt token counts: text plus media by modality.
#[derive(Default)]
struct PromptCount {
    text: u64,
    media: Vec<(&'static str, u64)>,
    /// Tokens of the `cachedContent` named by the request (part of the prompt).
    cached: u64,
}

impl PromptCount {
    fn total(&self) -> u64 {
        self.text + self.media.iter().map(|m| m.1).sum::<u64>()
    }

    fn add_media(&mut self, mime: &str) {
        let modality = if mime.starts_with("image/") {
            "IMAGE"
        } else if mime.starts_with("audio/") {
            "AUDIO"
        } else if mime.starts_with("video/") {
            "VIDEO"
        } else {
            "DOCUMENT"
        };
        match self.media.iter_mut().find(|m| m.0 == modality) {
            Some(m) => m.1 += 258,
            None => self.media.push((modality, 258)),
        }
    }

    fn details(&self) -> J {
        let mut v = Vec::new();
        if self.text > 0 {
            v.push(J::obj([
                ("modality", J::s("TEXT")),
                ("tokenCount", J::Int(self.text as i64)),
            ]));
        }
        for (m, n) in &self.media {
            v.push(J::obj([
                ("modality", J::s(*m)),
                ("tokenCount", J::Int(*n as i64)),
            ]));
        }
        J::Arr(v)
    }
}

fn count_parts(pc: &mut PromptCount, parts: &[Value]) {
    for p in parts {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            pc.text += tok(t);
        }
        for (c, s) in [("inlineData", "inline_data"), ("fileData", "file_data")] {
            if let Some(d) = field(p, c, s) {
                let mime = field(d, "mimeType", "mime_type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                pc.add_media(mime);
            }
        }
        for (c, s) in [
            ("functionCall", "function_call"),
            ("functionResponse", "function_response"),
        ] {
            if let Some(f) = field(p, c, s) {
                pc.text += 1 + tok(&compact_value(f));
            }
        }
    }
}

/// Deterministic prompt count of a GenerateContentRequest-like object.
fn count_prompt(req: &Value) -> PromptCount {
    let mut pc = PromptCount::default();
    for c in arr(req.get("contents")) {
        count_parts(&mut pc, parts_of(c));
    }
    if let Some(si) = field(req, "systemInstruction", "system_instruction") {
        count_parts(&mut pc, parts_of(si));
    }
    for t in arr(req.get("tools")) {
        if let Some(d) = field(t, "functionDeclarations", "function_declarations") {
            pc.text += tok(&compact_value(d));
        }
    }
    if field(req, "cachedContent", "cached_content").is_some() {
        pc.cached = 1024;
    }
    pc
}

// ---------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Directives {
    status: Option<u16>,
    events: Option<usize>,
    gap_ms: u64,
    words: Option<usize>,
    block: bool,
    finish: Option<String>,
    image: bool,
}

const MAX_WORDS: usize = 200_000;

/// Parse `[[k=v ...]]` directives; recognised ones are removed from the text.
fn parse_directives(text: &str) -> (Directives, String) {
    let mut d = Directives::default();
    if !text.contains("[[") {
        return (d, text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("]]") else {
            break;
        };
        let inner = &after[..end];
        if apply_directive(&mut d, inner) {
            out.push_str(&rest[..start]);
        } else {
            out.push_str(&rest[..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    (d, out)
}

fn apply_directive(d: &mut Directives, inner: &str) -> bool {
    let toks: Vec<&str> = inner.split_whitespace().collect();
    if toks.is_empty() {
        return false;
    }
    let mut next = Directives {
        gap_ms: d.gap_ms,
        ..Directives::default()
    };
    for t in &toks {
        let (k, v) = t.split_once('=').unwrap_or((t, ""));
        match k {
            "status" => match v.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => next.status = Some(c),
                _ => return false,
            },
            "events" => match v.parse::<usize>() {
                Ok(n) => next.events = Some(n.min(MAX_WORDS)),
                _ => return false,
            },
            "gap" => match v.parse::<u64>() {
                Ok(n) => next.gap_ms = n.min(600_000),
                _ => return false,
            },
            "words" => match v.parse::<usize>() {
                Ok(n) => next.words = Some(n.min(MAX_WORDS)),
                _ => return false,
            },
            "block" if v.is_empty() => next.block = true,
            "image" if v.is_empty() => next.image = true,
            "finish"
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                next.finish = Some(v.to_ascii_uppercase())
            }
            _ => return false,
        }
    }
    d.status = next.status.or(d.status);
    d.events = next.events.or(d.events);
    d.gap_ms = next.gap_ms;
    d.words = next.words.or(d.words);
    d.block |= next.block;
    d.image |= next.image;
    d.finish = next.finish.or(d.finish.take());
    true
}

const LOREM: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

fn lorem(n: usize) -> String {
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(LOREM[i % LOREM.len()]);
    }
    s
}

// ---------------------------------------------------------------------------
// Schema-driven value generator (tool args and JSON mode)
// ---------------------------------------------------------------------------

fn num_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn resolve_ref<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let path = r.strip_prefix("#")?;
    if path.is_empty() {
        return Some(root);
    }
    root.pointer(path)
}

/// Generate a value for a schema (at most `GEN_BUDGET` nodes, depth 16).
fn gen_from_schema(s: &Value) -> J {
    let mut budget = GEN_BUDGET;
    gen_value(s, s, "", 0, &mut budget)
}

const GEN_BUDGET: u32 = 10_000;

fn gen_value(s: &Value, root: &Value, name: &str, depth: u32, budget: &mut u32) -> J {
    if depth > 16 || *budget == 0 {
        return J::Null;
    }
    *budget -= 1;
    let Some(o) = s.as_object() else {
        return J::s("test");
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        if let Some(t) = resolve_ref(root, r) {
            return gen_value(t, root, name, depth + 1, budget);
        }
        return J::Obj(vec![]);
    }
    if let Some(c) = o.get("const") {
        return J::from_value(c);
    }
    if let Some(e) = o
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return J::from_value(e);
    }
    for k in ["anyOf", "any_of", "oneOf", "one_of", "allOf", "all_of"] {
        let branches = arr(o.get(k));
        let non_null = branches.iter().find(|b| {
            b.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| !t.eq_ignore_ascii_case("null"))
        });
        if let Some(b) = non_null.or(branches.first()) {
            return gen_value(b, root, name, depth + 1, budget);
        }
    }
    let ty = match o.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .or_else(|| ts.first().and_then(Value::as_str))
            .unwrap_or("string")
            .to_ascii_lowercase(),
        _ => {
            if o.contains_key("properties") {
                "object".into()
            } else if o.contains_key("items") {
                "array".into()
            } else {
                "string".into()
            }
        }
    };
    let min = num_of(o.get("minimum")).or(num_of(o.get("exclusiveMinimum")).map(|m| m + 1.0));
    let max = num_of(o.get("maximum")).or(num_of(o.get("exclusiveMaximum")).map(|m| m - 1.0));
    let clamp = |x: f64| {
        let x = min.map_or(x, |m| x.max(m));
        max.map_or(x, |m| x.min(m))
    };
    match ty.as_str() {
        "string" => J::s(gen_string(o, name)),
        "integer" => J::Int(clamp(1.0).round() as i64),
        "number" => J::F64(clamp(1.5)),
        "boolean" => J::Bool(true),
        "null" => J::Null,
        "array" => {
            let min_items = num_of(field(s, "minItems", "min_items"))
                .unwrap_or(1.0)
                .max(1.0);
            let max_items = num_of(field(s, "maxItems", "max_items")).unwrap_or(10.0);
            let n = min_items.min(max_items).clamp(0.0, 10.0) as usize;
            let item_schema = o.get("items").cloned().unwrap_or(Value::Null);
            let item_name = name.strip_suffix('s').unwrap_or(name);
            J::Arr(
                (0..n)
                    .map(|_| gen_value(&item_schema, root, item_name, depth + 1, budget))
                    .collect(),
            )
        }
        "object" => {
            let props = o.get("properties").and_then(Value::as_object);
            let required: Option<Vec<&str>> = o
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect());
            let mut names: Vec<&str> = Vec::new();
            for n in arr(field(s, "propertyOrdering", "property_ordering")) {
                if let Some(n) = n.as_str()
                    && props.is_some_and(|p| p.contains_key(n))
                    && !names.contains(&n)
                {
                    names.push(n);
                }
            }
            if let Some(p) = props {
                for k in p.keys() {
                    if !names.contains(&k.as_str()) {
                        names.push(k);
                    }
                }
            }
            let mut out = Vec::new();
            for n in names {
                if required.as_ref().is_some_and(|r| !r.contains(&n)) {
                    continue;
                }
                let sch = props.and_then(|p| p.get(n)).unwrap_or(&Value::Null);
                out.push((
                    Cow::Owned(n.to_string()),
                    gen_value(sch, root, n, depth + 1, budget),
                ));
            }
            J::Obj(out)
        }
        _ => J::s("test"),
    }
}

fn gen_string(o: &serde_json::Map<String, Value>, name: &str) -> String {
    let fmt = o.get("format").and_then(Value::as_str).unwrap_or("");
    let lname = name.to_ascii_lowercase();
    let mut s = match fmt {
        "date-time" => "2025-01-01T00:00:00Z".to_string(),
        "date" => "2025-01-01".to_string(),
        "time" => "12:00:00".to_string(),
        "email" => "test@example.com".to_string(),
        "uri" | "url" => "https://example.com".to_string(),
        "uuid" => "00000000-0000-4000-8000-000000000000".to_string(),
        _ if lname.contains("city") || lname.contains("location") => "Paris".to_string(),
        _ => "test".to_string(),
    };
    let min_len = num_of(o.get("minLength")).unwrap_or(0.0).clamp(0.0, 1000.0) as usize;
    while s.chars().count() < min_len {
        s.push('x');
    }
    if let Some(max_len) = num_of(o.get("maxLength")) {
        let max_len = max_len.max(0.0) as usize;
        s = s.chars().take(max_len).collect();
    }
    s
}

// ---------------------------------------------------------------------------
// generateContent / streamGenerateContent
// ---------------------------------------------------------------------------

/// A 1x1 PNG.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
const THOUGHT_TEXT: &str = "**Thinking**\n\nConsidering the question.";
const RENDERED_CONTENT: &str = "<style>\n.container {\n  align-items: center;\n  display: flex;\n}\n</style>\n<div class=\"container\">\n  <a class=\"chip\" href=\"https://example.com/search\">fake search</a>\n</div>\n";

/// One output part.
#[derive(Clone)]
enum P {
    Thought(String),
    Text(String),
    Call {
        name: String,
        args: J,
        sig: Option<String>,
    },
    Image,
    Code,
    CodeResult,
}

impl P {
    fn json(&self) -> J {
        match self {
            P::Thought(t) => J::obj([("text", J::s(t.clone())), ("thought", J::Bool(true))]),
            P::Text(t) => J::obj([("text", J::s(t.clone()))]),
            P::Call { name, args, sig } => {
                let mut j = J::obj([(
                    "functionCall",
                    J::obj([("name", J::s(name.clone())), ("args", args.clone())]),
                )]);
                if let Some(s) = sig {
                    j.push("thoughtSignature", J::s(s.clone()));
                }
                j
            }
            P::Image => J::obj([(
                "inlineData",
                J::obj([("mimeType", J::s("image/png")), ("data", J::s(PNG_1X1))]),
            )]),
            P::Code => J::obj([(
                "executableCode",
                J::obj([
                    ("language", J::s("PYTHON")),
                    ("code", J::s("print(2 + 2)\n")),
                ]),
            )]),
            P::CodeResult => J::obj([(
                "codeExecutionResult",
                J::obj([("outcome", J::s("OUTCOME_OK")), ("output", J::s("4\n"))]),
            )]),
        }
    }

    /// (candidate tokens, thought tokens)
    fn tokens(&self) -> (u64, u64) {
        match self {
            P::Thought(t) => (0, tok(t)),
            P::Text(t) => (words(t), 0),
            P::Call { args, .. } => (1 + args.compact().len() as u64 / 4, 0),
            P::Image => (1290, 0),
            P::Code => (5, 0),
            P::CodeResult => (2, 0),
        }
    }
}

struct Plan {
    parts: Vec<P>,
    /// Whether candidates i >= 1 prefix their first text with "[i] ".
    prefix: bool,
    n_cand: usize,
    finish: String,
    grounding_query: Option<String>,
    blocked: bool,
    words_per_event: usize,
    gap_ms: u64,
    has_call: bool,
}

struct StreamMode {
    sse: bool,
    cut: Option<usize>,
}

fn user_text(parts: &[Value]) -> String {
    let mut s = String::new();
    for p in parts {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        }
    }
    s
}

fn pick_function(req: &Value, model: &str) -> Option<P> {
    let tcfg = field(req, "toolConfig", "tool_config")
        .and_then(|t| field(t, "functionCallingConfig", "function_calling_config"));
    let mode = tcfg
        .and_then(|c| c.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    if mode.eq_ignore_ascii_case("NONE") {
        return None;
    }
    let allowed: Vec<&str> =
        arr(tcfg.and_then(|c| field(c, "allowedFunctionNames", "allowed_function_names")))
            .iter()
            .filter_map(Value::as_str)
            .collect();
    let decl = arr(req.get("tools"))
        .iter()
        .flat_map(|t| arr(field(t, "functionDeclarations", "function_declarations")))
        .find(|d| {
            d.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| allowed.is_empty() || allowed.contains(&n))
        })?;
    let name = decl
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let schema = decl
        .get("parameters")
        .filter(|v| !v.is_null())
        .or_else(|| field(decl, "parametersJsonSchema", "parameters_json_schema"));
    let args = match schema {
        Some(s) => match gen_from_schema(s) {
            j @ J::Obj(_) => j,
            _ => J::Obj(vec![]),
        },
        None => J::Obj(vec![]),
    };
    let sig = (model.starts_with("gemini-3") || model.starts_with("gemini-2.5"))
        .then(|| b64_std(format!("sig:{name}").as_bytes()));
    Some(P::Call { name, args, sig })
}

fn has_tool(req: &Value, names: &[(&str, &str)]) -> bool {
    arr(req.get("tools"))
        .iter()
        .any(|t| names.iter().any(|(c, s)| field(t, c, s).is_some()))
}

/// Gemini's checks on tool turns: a turn of `functionResponse` parts answers
/// exactly the calls of the model turn before it, and Gemini 3 wants the
/// `thoughtSignature` of the first call of each model turn since the last
/// user text back.
fn check_function_turns(contents: &[Value], model: &str) -> Result<(), GErr> {
    let is_call = |p: &&Value| field(p, "functionCall", "function_call").is_some();
    let is_resp = |p: &&Value| field(p, "functionResponse", "function_response").is_some();
    let mut calls_before = 0;
    for c in contents {
        let parts = parts_of(c);
        let responses = parts.iter().filter(is_resp).count();
        if responses > 0 && responses != calls_before {
            return Err(err_bad(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
            ));
        }
        calls_before = parts.iter().filter(is_call).count();
    }
    if !model.starts_with("gemini-3") {
        return Ok(());
    }
    let current = contents
        .iter()
        .rposition(|c| {
            c.get("role").and_then(Value::as_str) != Some("model")
                && parts_of(c).iter().any(|p| p.get("text").is_some())
        })
        .unwrap_or(0);
    for (i, c) in contents.iter().enumerate().skip(current) {
        if let Some(first) = parts_of(c).iter().find(is_call)
            && field(first, "thoughtSignature", "thought_signature").is_none()
        {
            let name = field(first, "functionCall", "function_call")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(err_bad(format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                i + 1
            )));
        }
    }
    Ok(())
}

fn plan_generate(req: &Value, model: &str, stream: Option<&StreamMode>) -> Result<Plan, GErr> {
    let contents = match req.get("contents") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => {
            return Err(err_invalid_json(&format!(
                "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), {}",
                compact_value(other)
            )));
        }
    };
    if contents.is_empty() {
        return Err(err_bad(
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    }
    for (i, c) in contents.iter().enumerate() {
        if !c.is_object() {
            return Err(err_invalid_json(&format!(
                "Invalid value at 'contents[{i}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), {}",
                compact_value(c)
            )));
        }
        if parts_of(c).is_empty() {
            return Err(err_bad(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )));
        }
    }
    check_function_turns(contents, model)?;
    let last = contents.last().map(parts_of).unwrap_or(&[]);
    let (d, clean) = parse_directives(&user_text(last));
    if let Some(code) = d.status.filter(|c| *c != 200) {
        return Err(err_for_status(code, model));
    }
    let gcfg = field(req, "generationConfig", "generation_config");
    let gfield = |c: &str, s: &str| gcfg.and_then(|g| field(g, c, s));
    let n_cand = num_of(gfield("candidateCount", "candidate_count"))
        .unwrap_or(1.0)
        .clamp(1.0, 8.0) as usize;
    let include_thoughts = gfield("thinkingConfig", "thinking_config")
        .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let json_mode = gfield("responseMimeType", "response_mime_type")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    let want_image = d.image
        || arr(gfield("responseModalities", "response_modalities"))
            .iter()
            .any(|m| m.as_str().is_some_and(|m| m.eq_ignore_ascii_case("IMAGE")));
    let mut plan = Plan {
        parts: Vec::new(),
        prefix: true,
        n_cand,
        finish: d.finish.clone().unwrap_or_else(|| "STOP".to_string()),
        grounding_query: None,
        blocked: d.block,
        words_per_event: if d.events.is_some() { 1 } else { 4 },
        gap_ms: d.gap_ms,
        has_call: false,
    };
    if plan.blocked {
        return Ok(plan);
    }
    let fn_responses: Vec<String> = last
        .iter()
        .filter_map(|p| field(p, "functionResponse", "function_response"))
        .map(|f| {
            let name = f.get("name").and_then(Value::as_str).unwrap_or("");
            let resp = f
                .get("response")
                .map(compact_value)
                .unwrap_or_else(|| "{}".into());
            format!("Tool {name} returned: {resp}")
        })
        .collect();
    if let Some(n) = d.events.or(d.words) {
        if include_thoughts {
            plan.parts.push(P::Thought(THOUGHT_TEXT.to_string()));
        }
        plan.parts.push(P::Text(lorem(n)));
    } else if !fn_responses.is_empty() {
        plan.parts.push(P::Text(fn_responses.join("\n")));
    } else if let Some(call) = pick_function(req, model) {
        plan.has_call = true;
        plan.parts.push(call);
    } else if json_mode {
        plan.prefix = false;
        let schema = [
            ("responseJsonSchema", "response_json_schema"),
            ("_responseJsonSchema", "_response_json_schema"),
            ("responseSchema", "response_schema"),
        ]
        .iter()
        .find_map(|(c, s)| gfield(c, s));
        let j = match schema {
            Some(s) => gen_from_schema(s),
            None => J::obj([("answer", J::s("ok"))]),
        };
        plan.parts.push(P::Text(j.pretty()));
    } else {
        let clean = clean.trim();
        let mut text = if clean.is_empty() {
            "Hello from the fake Gemini.".to_string()
        } else {
            format!("Echo: {clean}")
        };
        let mimes: Vec<&str> = last
            .iter()
            .filter_map(|p| field(p, "inlineData", "inline_data"))
            .map(|d| {
                field(d, "mimeType", "mime_type")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
            })
            .collect();
        if !mimes.is_empty() {
            if clean.is_empty() {
                text = "Echo:".to_string();
            }
            let mut uniq: Vec<&str> = Vec::new();
            for m in &mimes {
                if !uniq.contains(m) {
                    uniq.push(m);
                }
            }
            text.push_str(&format!(
                " (received {} {} part{})",
                mimes.len(),
                uniq.join(", "),
                if mimes.len() == 1 { "" } else { "s" }
            ));
        }
        if include_thoughts {
            plan.parts.push(P::Thought(THOUGHT_TEXT.to_string()));
        }
        plan.parts.push(P::Text(text));
        if has_tool(
            req,
            &[
                ("googleSearch", "google_search"),
                ("googleSearchRetrieval", "google_search_retrieval"),
            ],
        ) {
            plan.grounding_query = Some(if clean.is_empty() {
                "fake search".to_string()
            } else {
                clean.to_string()
            });
        }
        if has_tool(req, &[("codeExecution", "code_execution")]) {
            plan.parts.push(P::Text("Let me compute it.".to_string()));
            plan.parts.push(P::Code);
            plan.parts.push(P::CodeResult);
            plan.parts.push(P::Text("The answer is 4.".to_string()));
        }
    }
    if want_image {
        plan.parts.push(P::Image);
    }
    // A cut stream must have more events than the cut point: one word per event
    // and enough words in the last text part.
    if let Some(n) = stream.and_then(|s| s.cut) {
        plan.words_per_event = 1;
        if let Some(P::Text(t)) = plan
            .parts
            .iter_mut()
            .rev()
            .find(|p| matches!(p, P::Text(_)))
        {
            let have = words(t) as usize;
            let need = n.min(MAX_WORDS) + 1;
            if have < need {
                if !t.is_empty() {
                    t.push(' ');
                }
                t.push_str(&lorem(need - have));
            }
        }
    }
    Ok(plan)
}

/// Parts for candidate `i` (prefixing the first text with "[i] ").
fn prefixed(parts: &[P], i: usize, prefix: bool) -> Vec<P> {
    let mut v = parts.to_vec();
    if i > 0
        && prefix
        && let Some(P::Text(t)) = v.iter_mut().find(|p| matches!(p, P::Text(_)))
    {
        *t = format!("[{i}] {t}");
    }
    v
}

fn grounding_json(parts: &[P], query: &str) -> J {
    let (idx, text) = parts
        .iter()
        .enumerate()
        .find_map(|(i, p)| match p {
            P::Text(t) => Some((i, t.as_str())),
            _ => None,
        })
        .unwrap_or((0, ""));
    let mut segment = J::Obj(vec![]);
    if idx > 0 {
        segment.push("partIndex", J::Int(idx as i64));
    }
    segment.push("endIndex", J::Int(text.len() as i64));
    segment.push("text", J::s(text.to_string()));
    let web = |uri: &'static str, title: &'static str| {
        J::obj([("web", J::obj([("uri", J::s(uri)), ("title", J::s(title))]))])
    };
    J::obj([
        (
            "searchEntryPoint",
            J::obj([("renderedContent", J::s(RENDERED_CONTENT))]),
        ),
        (
            "groundingChunks",
            J::Arr(vec![
                web("https://example.com/a", "Example A"),
                web("https://example.com/b", "Example B"),
            ]),
        ),
        (
            "groundingSupports",
            J::Arr(vec![J::obj([
                ("segment", segment),
                ("groundingChunkIndices", J::Arr(vec![J::Int(0), J::Int(1)])),
                ("confidenceScores", J::Arr(vec![J::F64(0.9), J::F64(0.8)])),
            ])]),
        ),
        ("retrievalMetadata", J::Obj(vec![])),
        ("webSearchQueries", J::Arr(vec![J::s(query.to_string())])),
    ])
}

/// `Some(top candidates)` when the request set `responseLogprobs`.
fn logprobs_wanted(req: &Value) -> Option<usize> {
    let g = field(req, "generationConfig", "generation_config")?;
    let on = field(g, "responseLogprobs", "response_logprobs").and_then(Value::as_bool);
    on.filter(|b| *b)?;
    Some(num_of(g.get("logprobs")).unwrap_or(0.0).clamp(0.0, 20.0) as usize)
}

/// Gemini's `logprobsResult` for the words of the visible text: each chosen
/// word, and `n` top candidates per position (the chosen one first).
fn logprobs_json(parts: &[P], n: usize) -> J {
    let mut chosen = Vec::new();
    let mut top = Vec::new();
    let words = parts.iter().filter_map(|p| match p {
        P::Text(t) => Some(t.split_whitespace()),
        _ => None,
    });
    for (i, w) in words.flatten().enumerate() {
        let lp = -0.125 * (i as f64 + 1.0);
        let entry =
            |t: String, lp: f64| J::obj([("token", J::s(t)), ("logProbability", J::F64(lp))]);
        chosen.push(entry(w.to_string(), lp));
        let alts = (0..n)
            .map(|k| match k {
                0 => entry(w.to_string(), lp),
                _ => entry(format!("alt{k}"), lp - k as f64),
            })
            .collect();
        top.push(J::obj([("candidates", J::Arr(alts))]));
    }
    J::obj([
        ("topCandidates", J::Arr(top)),
        ("chosenCandidates", J::Arr(chosen)),
    ])
}

fn usage_json(pc: &PromptCount, cand: u64, thoughts: u64) -> J {
    let prompt = pc.total() + pc.cached;
    let mut u = J::obj([("promptTokenCount", J::Int(prompt as i64))]);
    if pc.cached > 0 {
        u.push("cachedContentTokenCount", J::Int(pc.cached as i64));
    }
    if cand > 0 {
        u.push("candidatesTokenCount", J::Int(cand as i64));
    }
    u.push("totalTokenCount", J::Int((prompt + cand + thoughts) as i64));
    if prompt > 0 {
        u.push("promptTokensDetails", pc.details());
    }
    if thoughts > 0 {
        u.push("thoughtsTokenCount", J::Int(thoughts as i64));
    }
    u
}

fn candidate_json(index: usize, parts: &[P], finish: Option<&str>, grounding: Option<J>) -> J {
    let mut c = J::obj([(
        "content",
        J::obj([
            ("parts", J::Arr(parts.iter().map(P::json).collect())),
            ("role", J::s("model")),
        ]),
    )]);
    if let Some(f) = finish {
        c.push("finishReason", J::s(f.to_string()));
    }
    if let Some(g) = grounding {
        c.push("groundingMetadata", g);
    }
    c.push("index", J::Int(index as i64));
    c
}

fn response_json(candidates: Vec<J>, usage: J, model: &str, id: &str) -> J {
    let mut r = J::Obj(vec![]);
    if !candidates.is_empty() {
        r.push("candidates", J::Arr(candidates));
    }
    r.push("usageMetadata", usage);
    r.push("modelVersion", J::s(model.to_string()));
    r.push("responseId", J::s(id.to_string()));
    r
}

fn blocked_json(pc: &PromptCount, model: &str, id: &str) -> J {
    let rating = |c: &'static str, p: &'static str| {
        J::obj([("category", J::s(c)), ("probability", J::s(p))])
    };
    J::obj([
        (
            "promptFeedback",
            J::obj([
                ("blockReason", J::s("SAFETY")),
                (
                    "safetyRatings",
                    J::Arr(vec![
                        rating("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
                        rating("HARM_CATEGORY_HATE_SPEECH", "HIGH"),
                        rating("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
                        rating("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
                    ]),
                ),
            ]),
        ),
        ("usageMetadata", usage_json(pc, 0, 0)),
        ("modelVersion", J::s(model.to_string())),
        ("responseId", J::s(id.to_string())),
    ])
}

/// Split `text` into pieces of `n` words (whitespace kept; concatenation == text).
fn split_words(text: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    let mut prev_ws = true;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws {
            if count == n {
                out.push(text[start..i].to_string());
                start = i;
                count = 0;
            }
            count += 1;
        }
        prev_ws = ws;
    }
    out.push(text[start..].to_string());
    out
}

/// Stream events (lists of parts) for one candidate.
fn events_for(parts: &[P], wpe: usize, has_call: bool) -> Vec<Vec<P>> {
    let mut ev = Vec::new();
    for p in parts {
        match p {
            P::Text(t) => {
                for seg in split_words(t, wpe) {
                    ev.push(vec![P::Text(seg)]);
                }
            }
            other => ev.push(vec![other.clone()]),
        }
    }
    if has_call || ev.is_empty() {
        // The STOP arrives in a separate event with an empty text part.
        ev.push(vec![P::Text(String::new())]);
    }
    ev
}

fn response_id(n: u64) -> String {
    let mut bytes = [0u8; 17];
    let a = splitmix64(n ^ 0x5eed_0000_0000_0001);
    let b = splitmix64(a);
    let c = splitmix64(b);
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..16].copy_from_slice(&b.to_le_bytes());
    bytes[16] = c as u8;
    b64_url(&bytes)
}

async fn generate(
    state: &FakeState,
    ctx: &Ctx,
    model: &str,
    req: &Value,
    stream: Option<StreamMode>,
) -> Result<Response<FakeBody>, GErr> {
    let plan = plan_generate(req, model, stream.as_ref())?;
    let pc = count_prompt(req);
    let id = response_id(state.next_id());

    let Some(mode) = stream else {
        // Non-stream.
        if plan.gap_ms > 0 && plan.words_per_event == 1 {
            let n = plan.parts.iter().map(|p| p.tokens().0).sum::<u64>();
            let total = plan.gap_ms.saturating_mul(n.saturating_sub(1)).min(600_000);
            tokio::time::sleep(Duration::from_millis(total)).await;
        }
        if plan.blocked {
            return Ok(json_response(ctx, 200, &blocked_json(&pc, model, &id)));
        }
        let mut cands = Vec::with_capacity(plan.n_cand);
        let (mut ct, mut tt) = (0, 0);
        for i in 0..plan.n_cand {
            let parts = prefixed(&plan.parts, i, plan.prefix);
            for p in &parts {
                let (c, t) = p.tokens();
                ct += c;
                tt += t;
            }
            let g = plan
                .grounding_query
                .as_deref()
                .map(|q| grounding_json(&parts, q));
            let mut cand = candidate_json(i, &parts, Some(&plan.finish), g);
            if let Some(n) = logprobs_wanted(req) {
                cand.push("logprobsResult", logprobs_json(&parts, n));
            }
            cands.push(cand);
        }
        let j = response_json(cands, usage_json(&pc, ct, tt), model, &id);
        return Ok(json_response(ctx, 200, &j));
    };

    // Stream: build the chunk objects.
    let mut chunks: Vec<J> = Vec::new();
    if plan.blocked {
        chunks.push(blocked_json(&pc, model, &id));
    } else {
        let base = events_for(&plan.parts, plan.words_per_event, plan.has_call);
        let per_cand: Vec<(Vec<Vec<P>>, Option<J>)> = (0..plan.n_cand)
            .map(|i| {
                let mut ev = base.clone();
                if i > 0
                    && plan.prefix
                    && let Some(P::Text(t)) = ev
                        .iter_mut()
                        .flat_map(|e| e.iter_mut())
                        .find(|p| matches!(p, P::Text(_)))
                {
                    *t = format!("[{i}] {t}");
                }
                let g = plan
                    .grounding_query
                    .as_deref()
                    .map(|q| grounding_json(&prefixed(&plan.parts, i, plan.prefix), q));
                (ev, g)
            })
            .collect();
        let total = base.len();
        let (mut ct, mut tt) = (0, 0);
        for k in 0..total {
            let mut cands = Vec::with_capacity(plan.n_cand);
            for (i, (ev, g)) in per_cand.iter().enumerate() {
                let Some(parts) = ev.get(k) else { continue };
                for p in parts {
                    let (c, t) = p.tokens();
                    ct += c;
                    tt += t;
                }
                let last = k + 1 == ev.len();
                cands.push(candidate_json(
                    i,
                    parts,
                    last.then_some(plan.finish.as_str()),
                    if last { g.clone() } else { None },
                ));
            }
            chunks.push(response_json(cands, usage_json(&pc, ct, tt), model, &id));
        }
    }

    let cut = mode.cut.map(|n| n.min(chunks.len().saturating_sub(1)));
    let send = cut.unwrap_or(chunks.len());
    let gap = Duration::from_millis(plan.gap_ms);
    let mut frames: Vec<Bytes> = Vec::with_capacity(send);
    if mode.sse {
        for c in &chunks[..send] {
            let mut s = String::with_capacity(512);
            s.push_str("data: ");
            write_compact(c, &mut s);
            s.push_str("\r\n\r\n");
            frames.push(Bytes::from(s));
        }
        let body = FakeBody::stream(frames, gap, cut.is_some());
        let mut r = with_headers(200, "text/event-stream", body);
        r.headers_mut().insert(
            http::header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
        Ok(r)
    } else {
        for (k, c) in chunks[..send].iter().enumerate() {
            let mut s = String::with_capacity(1024);
            s.push_str(if k == 0 { "[" } else { "\n,\r\n" });
            if ctx.pretty {
                write_pretty(c, &mut s, 0);
            } else {
                write_compact(c, &mut s);
            }
            if cut.is_none() && k + 1 == send {
                s.push_str("\n]");
            }
            frames.push(Bytes::from(s));
        }
        if frames.is_empty() && cut.is_none() {
            frames.push(Bytes::from_static(b"[]"));
        }
        Ok(with_headers(
            200,
            JSON_CT,
            FakeBody::stream(frames, gap, cut.is_some()),
        ))
    }
}

// ---------------------------------------------------------------------------
// countTokens and embeddings
// ---------------------------------------------------------------------------

fn count_tokens(ctx: &Ctx, root: &Value) -> Result<Response<FakeBody>, GErr> {
    let gcr = field(root, "generateContentRequest", "generate_content_request");
    if gcr.is_some() && root.get("contents").is_some() {
        return Err(err_bad(
            "* CountTokensRequest: contents and generate_content_request cannot both be set\n",
        ));
    }
    let pc = count_prompt(gcr.unwrap_or(root));
    let total = pc.total();
    let mut j = J::Obj(vec![]);
    if total > 0 {
        j.push("totalTokens", J::Int(total as i64));
        j.push("promptTokensDetails", pc.details());
    }
    Ok(json_response(ctx, 200, &j))
}

fn embed_text(content: &Value) -> String {
    let mut s = String::new();
    for p in parts_of(content) {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        }
    }
    s
}

fn embedding_values(text: &str, dim: usize) -> J {
    J::obj([(
        "values",
        J::Arr(embedding_vec(text, dim).into_iter().map(J::F32).collect()),
    )])
}

/// The fake's deterministic unit-length embedding of `text` (native and `/openai` alike).
fn embedding_vec(text: &str, dim: usize) -> Vec<f32> {
    let seed = fnv1a(text.as_bytes());
    let mut v: Vec<f64> = (0..dim)
        .map(|i| {
            let r = splitmix64(seed.wrapping_add(i as u64));
            (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v.into_iter().map(|x| x as f32).collect()
}

fn dimension(req: &Value) -> Result<usize, GErr> {
    match num_of(field(req, "outputDimensionality", "output_dimensionality")) {
        None => Ok(768),
        Some(d) if (1.0..=3072.0).contains(&d) => Ok(d as usize),
        Some(d) => Err(err_bad(format!(
            "* EmbedContentRequest.output_dimensionality: output_dimensionality must be between 1 and 3072, got {d}\n"
        ))),
    }
}

fn embed(ctx: &Ctx, root: &Value) -> Result<Response<FakeBody>, GErr> {
    let Some(content) = root.get("content").filter(|c| c.is_object()) else {
        return Err(err_bad(
            "* EmbedContentRequest.content: content is not specified\n",
        ));
    };
    let dim = dimension(root)?;
    let j = J::obj([("embedding", embedding_values(&embed_text(content), dim))]);
    Ok(json_response(ctx, 200, &j))
}

fn batch_embed(ctx: &Ctx, model: &str, root: &Value) -> Result<Response<FakeBody>, GErr> {
    let reqs = arr(root.get("requests"));
    if reqs.is_empty() {
        return Err(err_bad(
            "* BatchEmbedContentsRequest.requests: requests is not specified\n",
        ));
    }
    if reqs.len() > 100 {
        return Err(err_bad(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
        ));
    }
    let want = format!("models/{model}");
    let mut out = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let m = r.get("model").and_then(Value::as_str).unwrap_or("");
        if m != want {
            return Err(err_bad(format!(
                "* BatchEmbedContentsRequest.requests[{i}].model: model must match the model in the URL ({want}), got \"{m}\"\n"
            )));
        }
        let Some(content) = r.get("content").filter(|c| c.is_object()) else {
            return Err(err_bad(format!(
                "* BatchEmbedContentsRequest.requests[{i}].content: content is not specified\n"
            )));
        };
        out.push(embedding_values(&embed_text(content), dimension(r)?));
    }
    Ok(json_response(
        ctx,
        200,
        &J::obj([("embeddings", J::Arr(out))]),
    ))
}

// ---------------------------------------------------------------------------
// Gemini's OpenAI-compatible endpoint (docs/wire-formats.md §A.7): `{prefix}/openai/...`
// ---------------------------------------------------------------------------

/// An error of the OpenAI-compatible layer: Google's envelope wrapped in a
/// one-element array (docs/wire-formats.md §A.7), not OpenAI's error shape.
fn oa_error(e: GErr) -> Response<FakeBody> {
    let mut s = String::from("[");
    s.push_str(&e.body.pretty());
    s.push_str("\n]");
    with_headers(e.code, JSON_CT, FakeBody::full(s))
}

fn oa_json(j: &J) -> Response<FakeBody> {
    with_headers(200, "application/json", FakeBody::full(j.compact()))
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `POST chat/completions` (plain and `stream: true`), `GET models`,
/// `GET models/{id}`, `POST embeddings`; the key is the bearer token and
/// gets the same per-key behaviors as on the native routes.
async fn openai_compat(
    state: &FakeState,
    method: &Method,
    rest: &str,
    key: Option<String>,
    body: Result<Bytes, Box<dyn std::error::Error + Send + Sync>>,
) -> Result<Response<FakeBody>, Abort> {
    enum R {
        Chat,
        Models,
        Model(String),
        Embeddings,
    }
    let route = match rest {
        "chat/completions" => R::Chat,
        "models" => R::Models,
        "embeddings" => R::Embeddings,
        r => match r.strip_prefix("models/") {
            Some(id) if !id.is_empty() => {
                let id = pct_decode(id, false);
                R::Model(id.strip_prefix("models/").unwrap_or(&id).to_string())
            }
            _ => return Ok(oa_error(err_route_not_found())),
        },
    };
    let want_post = matches!(route, R::Chat | R::Embeddings);
    if (want_post && method != Method::POST) || (!want_post && method != Method::GET) {
        return Ok(oa_error(err_method(method, rest)));
    }
    let Some(key) = key else {
        return Ok(oa_error(err_no_key()));
    };
    let Ok(body) = body else {
        return Ok(oa_error(gerr(
            413,
            "INVALID_ARGUMENT",
            format!("Request payload size exceeds the limit: {BODY_LIMIT} bytes."),
            vec![],
        )));
    };
    let root = if want_post {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(oa_error(err_invalid_json(
                    "Request body is not a JSON object.",
                )));
            }
        }
    } else {
        Value::Null
    };
    let model = root
        .get("model")
        .and_then(Value::as_str)
        .map(|m| m.strip_prefix("models/").unwrap_or(m).to_string());
    let stream =
        matches!(route, R::Chat) && root.get("stream").and_then(Value::as_bool) == Some(true);
    let quota_model = match (&route, &model) {
        (R::Model(m), _) | (_, Some(m)) => m.clone(),
        _ => "gemini-2.5-flash".to_string(),
    };
    let mut cut = None;
    let mut reshape = None;
    match state.behavior(&key) {
        KeyBehavior::Ok => {}
        b @ (KeyBehavior::EchoKey { .. } | KeyBehavior::Trickle { .. }) => reshape = Some(b),
        KeyBehavior::Invalid => return Ok(oa_error(err_invalid_key())),
        KeyBehavior::Expired => return Ok(oa_error(err_expired())),
        KeyBehavior::Suspended => return Ok(oa_error(err_suspended(&key))),
        KeyBehavior::Quota { retry_secs } => {
            return Ok(oa_error(err_quota(&quota_model, Some(retry_secs))));
        }
        KeyBehavior::QuotaDay => return Ok(oa_error(err_quota(&quota_model, None))),
        KeyBehavior::Overloaded => return Ok(oa_error(err_overloaded())),
        KeyBehavior::Internal => return Ok(oa_error(err_internal())),
        KeyBehavior::Region => return Ok(oa_error(err_region())),
        KeyBehavior::Slow { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        KeyBehavior::CutAfter { events } => {
            if !stream {
                return Err(Abort);
            }
            cut = Some(events);
        }
        KeyBehavior::Hang => std::future::pending::<()>().await,
    }
    let res = match route {
        R::Models => Ok(oa_json(&J::obj([
            ("object", J::s("list")),
            (
                "data",
                J::Arr(CATALOGUE.iter().map(|c| oa_model(c.id)).collect()),
            ),
        ]))),
        R::Model(m) if model_known(&m) => Ok(oa_json(&oa_model(&m))),
        R::Model(m) => Err(err_model_not_found(&m, "v1beta", "get")),
        R::Chat => match oa_chat(state, &root, model.as_deref(), stream, cut).await {
            Ok(r) => match reshape {
                Some(KeyBehavior::EchoKey { split }) => Ok(echo_key(r, &key, split)),
                Some(KeyBehavior::Trickle { ms }) => Ok(trickle(r, ms)),
                _ => Ok(r),
            },
            e => e,
        },
        R::Embeddings => oa_embeddings(&root, model.as_deref()),
    };
    Ok(res.unwrap_or_else(oa_error))
}

fn oa_model(id: &str) -> J {
    J::obj([
        ("id", J::s(format!("models/{id}"))),
        ("object", J::s("model")),
        ("owned_by", J::s("google")),
    ])
}

/// The text of an OpenAI message `content` (a string or text parts).
fn oa_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn oa_usage(prompt: u64, completion: u64) -> J {
    J::obj([
        ("completion_tokens", J::Int(completion as i64)),
        ("prompt_tokens", J::Int(prompt as i64)),
        ("total_tokens", J::Int((prompt + completion) as i64)),
    ])
}

/// A tool call for the first function the request offers (or the one
/// `tool_choice` names), with arguments generated from its schema.
fn oa_tool_call(req: &Value, n: u64) -> Option<J> {
    let choice = req.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let named = choice
        .and_then(|c| c.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    let f = arr(req.get("tools"))
        .iter()
        .filter_map(|t| t.get("function"))
        .find(|f| named.is_none_or(|n| f.get("name").and_then(Value::as_str) == Some(n)))?;
    let name = f.get("name").and_then(Value::as_str)?.to_string();
    let args = match f.get("parameters").map(gen_from_schema) {
        Some(j @ J::Obj(_)) => j,
        _ => J::Obj(vec![]),
    };
    Some(J::obj([
        (
            "function",
            J::obj([("arguments", J::s(args.compact())), ("name", J::s(name))]),
        ),
        ("id", J::s(format!("function-call-{n}"))),
        ("type", J::s("function")),
    ]))
}

async fn oa_chat(
    state: &FakeState,
    req: &Value,
    model: Option<&str>,
    stream: bool,
    cut: Option<usize>,
) -> Result<Response<FakeBody>, GErr> {
    let Some(model) = model else {
        return Err(err_bad("model is required"));
    };
    let messages = arr(req.get("messages"));
    if messages.is_empty() {
        return Err(err_bad("messages must not be empty"));
    }
    if !model_known(model) {
        return Err(err_model_not_found(model, "v1beta", "generateContent"));
    }
    let prompt: u64 = messages
        .iter()
        .map(|m| tok(&oa_text(m.get("content"))))
        .sum::<u64>()
        .max(1);
    let last = &messages[messages.len() - 1];
    let role = last.get("role").and_then(Value::as_str).unwrap_or("");
    let (d, clean) = parse_directives(&oa_text(last.get("content")));
    if let Some(code) = d.status.filter(|c| *c != 200) {
        return Err(err_for_status(code, model));
    }
    let n = state.next_id();
    let id = response_id(n);
    let created = unix_secs();
    let call = if role == "tool" {
        None
    } else {
        oa_tool_call(req, n)
    };
    let text = if let Some(w) = d.events.or(d.words) {
        lorem(w)
    } else if role == "tool" {
        format!("Tool returned: {}", clean.trim())
    } else if clean.trim().is_empty() {
        "Hello from the fake Gemini.".to_string()
    } else {
        format!("Echo: {}", clean.trim())
    };
    let completion = if call.is_some() { 5 } else { words(&text) };
    let head = |object: &'static str, choices: Vec<J>| {
        J::obj([
            ("choices", J::Arr(choices)),
            ("created", J::Int(created)),
            ("id", J::s(id.clone())),
            ("model", J::s(model.to_string())),
            ("object", J::s(object)),
        ])
    };
    if !stream {
        let (message, finish) = match &call {
            Some(c) => (
                J::obj([
                    ("role", J::s("assistant")),
                    ("tool_calls", J::Arr(vec![c.clone()])),
                ]),
                "tool_calls",
            ),
            None => (
                J::obj([("content", J::s(text)), ("role", J::s("assistant"))]),
                "stop",
            ),
        };
        let mut j = head(
            "chat.completion",
            vec![J::obj([
                ("finish_reason", J::s(finish)),
                ("index", J::Int(0)),
                ("message", message),
            ])],
        );
        j.push("usage", oa_usage(prompt, completion));
        return Ok(oa_json(&j));
    }
    // Stream: one delta per piece of text; the last carries finish_reason
    // ("stop" even after a tool call, as Gemini's layer does), then usage
    // when asked for, then [DONE].
    let deltas: Vec<J> = match &call {
        Some(c) => {
            let mut tc = c.clone();
            if let J::Obj(m) = &mut tc {
                m.insert(0, (Cow::Borrowed("index"), J::Int(0)));
            }
            vec![J::obj([
                ("role", J::s("assistant")),
                ("tool_calls", J::Arr(vec![tc])),
            ])]
        }
        None => split_words(&text, if d.events.is_some() { 1 } else { 4 })
            .into_iter()
            .map(|seg| J::obj([("content", J::s(seg)), ("role", J::s("assistant"))]))
            .collect(),
    };
    let total = deltas.len();
    let mut events: Vec<Bytes> = Vec::with_capacity(total + 2);
    for (k, delta) in deltas.into_iter().enumerate() {
        let mut choice = J::obj([("delta", delta)]);
        if k + 1 == total {
            choice.push("finish_reason", J::s("stop"));
        }
        choice.push("index", J::Int(0));
        let j = head("chat.completion.chunk", vec![choice]);
        events.push(Bytes::from(format!("data: {}\n\n", j.compact())));
    }
    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if include_usage {
        let mut j = head("chat.completion.chunk", vec![]);
        j.push("usage", oa_usage(prompt, completion));
        events.push(Bytes::from(format!("data: {}\n\n", j.compact())));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    if let Some(c) = cut {
        events.truncate(c.min(total.saturating_sub(1)));
    }
    let body = FakeBody::stream(events, Duration::from_millis(d.gap_ms), cut.is_some());
    Ok(with_headers(200, "text/event-stream", body))
}

fn oa_embeddings(req: &Value, model: Option<&str>) -> Result<Response<FakeBody>, GErr> {
    let Some(model) = model else {
        return Err(err_bad("model is required"));
    };
    if !model_known(model) {
        return Err(err_model_not_found(model, "v1beta", "embedContent"));
    }
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return Err(err_bad(
                "input must be a string or a non-empty array of strings",
            ));
        }
    };
    let dim = match num_of(req.get("dimensions")) {
        None => 768,
        Some(d) if (1.0..=3072.0).contains(&d) => d as usize,
        Some(d) => {
            return Err(err_bad(format!(
                "dimensions must be between 1 and 3072, got {d}"
            )));
        }
    };
    let base64 = match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(err_bad(format!("unsupported encoding_format {other:?}"))),
    };
    let mut data = Vec::with_capacity(inputs.len());
    let mut prompt = 0;
    for (i, text) in inputs.iter().enumerate() {
        prompt += tok(text);
        let v = embedding_vec(text, dim);
        let embedding = if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            J::s(b64_std(&bytes))
        } else {
            J::Arr(v.into_iter().map(J::F32).collect())
        };
        data.push(J::obj([
            ("embedding", embedding),
            ("index", J::Int(i as i64)),
            ("object", J::s("embedding")),
        ]));
    }
    Ok(oa_json(&J::obj([
        ("data", J::Arr(data)),
        ("model", J::s(model.to_string())),
        ("object", J::s("list")),
        (
            "usage",
            J::obj([
                ("prompt_tokens", J::Int(prompt as i64)),
                ("total_tokens", J::Int(prompt as i64)),
            ]),
        ),
    ])))
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k, true), pct_decode(v, true))
        })
        .collect()
}

fn pct_decode(s: &str, plus_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            if n > 1 { chunk[1] } else { 0 },
            if n > 2 { chunk[2] } else { 0 },
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= n {
                out.push(alphabet[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn b64_std(data: &[u8]) -> String {
    b64_encode(data, B64_STD, true)
}

fn b64_url(data: &[u8]) -> String {
    b64_encode(data, B64_URL, false)
}

/// Decode standard or URL-safe base64, padding optional.
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Resp {
        status: u16,
        headers: http::HeaderMap,
        body: Vec<u8>,
        body_error: bool,
    }

    impl Resp {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!("body is not JSON ({e}): {}", self.text());
            })
        }
        fn ct(&self) -> &str {
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        }
    }

    async fn send_raw(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Resp, hyper::Error> {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "fake");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let resp = tx.send_request(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        let mut body_error = false;
        while let Some(f) = body.frame().await {
            match f {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        out.extend_from_slice(&d);
                    }
                }
                Err(_) => {
                    body_error = true;
                    break;
                }
            }
        }
        Ok(Resp {
            status,
            headers,
            body: out,
            body_error,
        })
    }

    async fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        send_raw(addr, method, path, headers, body).await.unwrap()
    }

    async fn post(fake: &Fake, path: &str, key: &str, body: &Value) -> Resp {
        send(
            fake.addr,
            "POST",
            path,
            &[
                ("x-goog-api-key", key),
                ("content-type", "application/json"),
            ],
            &body.to_string(),
        )
        .await
    }

    fn user(text: &str) -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
    }

    const GEN: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
    const SSE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    const ARR: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

    fn sse_events(r: &Resp) -> Vec<Value> {
        let t = r.text();
        assert!(
            t.ends_with("\r\n\r\n") || r.body_error,
            "bad SSE tail: {t:?}"
        );
        t.split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let line = e.strip_prefix("data: ").expect("data: prefix");
                assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
                serde_json::from_str(line).unwrap()
            })
            .collect()
    }

    fn text_of(chunk: &Value, cand: usize) -> String {
        chunk["candidates"][cand]["content"]["parts"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p.get("thought").is_none())
                    .filter_map(|p| p["text"].as_str())
                    .collect::<String>()
            })
            .unwrap_or_default()
    }

    #[test]
    fn writers_follow_google_style() {
        let j = J::obj([
            ("a", J::Int(1)),
            ("b", J::Arr(vec![J::Int(1), J::F64(0.5)])),
            ("c", J::obj([("d", J::s("<x>\"\n"))])),
            ("e", J::Obj(vec![])),
            ("f", J::Arr(vec![])),
        ]);
        assert_eq!(
            j.compact(),
            r#"{"a": 1,"b": [1,0.5],"c": {"d": "\u003cx\u003e\"\n"},"e": {},"f": []}"#
        );
        assert_eq!(
            j.pretty(),
            "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    0.5\n  ],\n  \"c\": {\n    \"d\": \"\\u003cx\\u003e\\\"\\n\"\n  },\n  \"e\": {},\n  \"f\": []\n}"
        );
        assert_eq!(b64_std(b"sig:f"), "c2lnOmY=");
        assert_eq!(b64_decode("c2lnOmY=").unwrap(), b"sig:f");
        assert_eq!(split_words("a b  c d e", 2), vec!["a b  ", "c d ", "e"]);
        assert_eq!(split_words("", 4), vec![String::new()]);
        assert_eq!(pct_decode("a%3Ab+c%zz", true), "a:b c%zz");
    }

    #[tokio::test]
    async fn pagination_walks_all_models() {
        let fake = Fake::start().await.unwrap();
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &token {
                Some(t) => format!("/v1beta/models?key=k&pageToken={}", t.replace('=', "%3D")),
                None => "/v1beta/models?key=k".to_string(),
            };
            let r = send(fake.addr, "GET", &path, &[], "").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.ct(), "application/json; charset=UTF-8");
            assert!(
                r.text()
                    .starts_with("{\n  \"models\": [\n    {\n      \"name\": \"models/")
            );
            let v = r.json();
            pages += 1;
            for m in v["models"].as_array().unwrap() {
                names.push(m["name"].as_str().unwrap().to_string());
                assert!(m["inputTokenLimit"].as_i64().unwrap() > 0);
                assert!(m["supportedGenerationMethods"].is_array());
            }
            match v.get("nextPageToken") {
                Some(t) => token = Some(t.as_str().unwrap().to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(names.contains(&"models/text-embedding-004".to_string()));
        let all = send(fake.addr, "GET", "/v1/models?key=k&pageSize=100", &[], "").await;
        assert_eq!(all.json()["models"].as_array().unwrap().len(), 8);
        assert!(all.json().get("nextPageToken").is_none());
        let bad = send(
            fake.addr,
            "GET",
            "/v1beta/models?key=k&pageToken=!!",
            &[],
            "",
        )
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.json()["error"]["status"], "INVALID_ARGUMENT");
        let one = send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-pro?key=k",
            &[],
            "",
        )
        .await;
        assert_eq!(one.json()["displayName"], "Gemini 2.5 Pro");
        let nf = send(fake.addr, "GET", "/v1beta/models/llama-3?key=k", &[], "").await;
        assert_eq!(nf.status, 404);
        assert_eq!(nf.json()["error"]["status"], "NOT_FOUND");
        assert!(
            nf.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("models/llama-3 is not found for API version v1beta")
        );
    }

    #[tokio::test]
    async fn generate_plain_text_shape() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, GEN, "k", &user("hello world")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.ct(), "application/json; charset=UTF-8");
        let t = r.text();
        assert!(
            t.starts_with(
                "{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"parts\": [\n          {\n            \"text\": \"Echo: hello world\"\n          }\n        ],\n        \"role\": \"model\"\n      },\n      \"finishReason\": \"STOP\",\n      \"index\": 0\n    }\n  ],\n  \"usageMetadata\": {\n    \"promptTokenCount\": "
            ),
            "{t}"
        );
        assert!(t.ends_with("}\n"));
        let v = r.json();
        let u = &v["usageMetadata"];
        assert_eq!(u["candidatesTokenCount"], 3);
        assert_eq!(
            u["totalTokenCount"].as_u64().unwrap(),
            u["promptTokenCount"].as_u64().unwrap() + 3
        );
        assert_eq!(v["modelVersion"], "gemini-2.5-flash");
        assert!(v["responseId"].as_str().unwrap().len() > 10);
        // Empty user text.
        let e = post(&fake, GEN, "k", &user("   ")).await.json();
        assert_eq!(text_of(&e, 0), "Hello from the fake Gemini.");
        // models/ prefix in the URL model segment is not doubled; v1 works too.
        let v1 = post(
            &fake,
            "/v1/models/fake-model:generateContent",
            "k",
            &user("x"),
        )
        .await;
        assert_eq!(v1.json()["modelVersion"], "fake-model");
    }

    #[tokio::test]
    async fn sse_framing_and_cumulative_usage() {
        let fake = Fake::start().await.unwrap();
        let r = post(
            &fake,
            SSE,
            "k",
            &user("one two three four five six seven eight nine ten"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.ct(), "text/event-stream");
        let raw = r.text();
        assert!(raw.starts_with("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Echo: one two three \"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": "), "{raw}");
        assert!(!raw.contains("[DONE]"));
        let ev = sse_events(&r);
        assert_eq!(ev.len(), 3);
        let mut prev = 0;
        for (i, e) in ev.iter().enumerate() {
            let last = i + 1 == ev.len();
            assert_eq!(e["candidates"][0].get("finishReason").is_some(), last);
            let c = e["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap();
            assert!(c > prev);
            prev = c;
            assert_eq!(e["responseId"], ev[0]["responseId"]);
            assert_eq!(e["modelVersion"], "gemini-2.5-flash");
        }
        assert_eq!(prev, 11);
        let all: String = ev.iter().map(|e| text_of(e, 0)).collect();
        assert_eq!(
            all,
            "Echo: one two three four five six seven eight nine ten"
        );
    }

    #[tokio::test]
    async fn json_array_stream_framing() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, ARR, "k", &user("a b c d e f g h i j")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.ct(), "application/json; charset=UTF-8");
        let t = r.text();
        assert!(t.starts_with("[{\n  \"candidates\": [\n"), "{t}");
        assert!(t.contains("}\n,\r\n{\n  \"candidates\""));
        assert!(t.ends_with("}\n]"));
        let v: Value = serde_json::from_str(&t).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert!(arr[2]["candidates"][0]["finishReason"] == "STOP");
        assert!(arr[0]["candidates"][0].get("finishReason").is_none());
    }

    #[tokio::test]
    async fn key_behaviors_return_google_errors() {
        let fake = Fake::start().await.unwrap();
        let cases: &[(&str, u16, &str, Option<&str>)] = &[
            ("bad-1", 400, "INVALID_ARGUMENT", Some("API_KEY_INVALID")),
            (
                "expired-1",
                400,
                "INVALID_ARGUMENT",
                Some("API_KEY_EXPIRED"),
            ),
            (
                "suspended-1",
                403,
                "PERMISSION_DENIED",
                Some("CONSUMER_SUSPENDED"),
            ),
            ("quota-1", 429, "RESOURCE_EXHAUSTED", None),
            ("quota-day-1", 429, "RESOURCE_EXHAUSTED", None),
            ("overload-1", 503, "UNAVAILABLE", None),
            ("internal-1", 500, "INTERNAL", None),
            ("region-1", 400, "FAILED_PRECONDITION", None),
        ];
        for (key, code, status, reason) in cases {
            let r = post(&fake, GEN, key, &user("hi")).await;
            assert_eq!(r.status, *code, "{key}");
            assert_eq!(r.ct(), "application/json; charset=UTF-8");
            assert!(r.text().starts_with("{\n  \"error\": {\n    \"code\": "));
            let e = &r.json()["error"];
            assert_eq!(e["code"], *code);
            assert_eq!(e["status"], *status);
            if let Some(reason) = reason {
                assert_eq!(e["details"][0]["reason"], *reason, "{key}");
            }
        }
        let q = post(&fake, GEN, "quota-1", &user("hi")).await.json();
        let details = q["error"]["details"].as_array().unwrap();
        assert_eq!(
            details[0]["violations"][0]["quotaId"],
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        );
        assert!(details.iter().any(|d| d["retryDelay"] == "2s"));
        let qd = post(&fake, GEN, "quota-day-1", &user("hi")).await.json();
        let details = qd["error"]["details"].as_array().unwrap();
        assert_eq!(
            details[0]["violations"][0]["quotaId"],
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        );
        assert!(!details.iter().any(|d| d.get("retryDelay").is_some()));
        let s = post(&fake, GEN, "suspended-1", &user("hi")).await.json();
        assert_eq!(
            s["error"]["message"],
            "Permission denied: Consumer 'api_key:suspended-1' has been suspended."
        );
        let ex = post(&fake, GEN, "expired-1", &user("hi")).await.json();
        assert_eq!(
            ex["error"]["message"],
            "API key expired. Please renew the API key."
        );
        // Stream without alt=sse: error wrapped in a one-element array.
        let w = post(&fake, ARR, "bad-2", &user("hi")).await;
        assert_eq!(w.status, 400);
        assert!(w.text().starts_with("[{\n  \"error\": {"));
        assert!(w.text().ends_with("}\n]"));
        assert_eq!(
            w.json()[0]["error"]["details"][0]["reason"],
            "API_KEY_INVALID"
        );
        // alt=sse: plain error body.
        let p = post(&fake, SSE, "overload-2", &user("hi")).await;
        assert_eq!(p.status, 503);
        assert_eq!(
            p.json()["error"]["message"],
            "The model is overloaded. Please try again later."
        );
        // Explicit behavior beats the prefix.
        fake.state.set_key("bad-but-ok", KeyBehavior::Ok);
        assert_eq!(
            post(&fake, GEN, "bad-but-ok", &user("hi")).await.status,
            200
        );
        fake.state
            .set_key("q7", KeyBehavior::Quota { retry_secs: 7 });
        let q7 = post(&fake, GEN, "q7", &user("hi")).await.json();
        assert!(
            q7["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["retryDelay"] == "7s")
        );
        // Model GETs honour behaviors too.
        let g = send(fake.addr, "GET", "/v1beta/models?key=internal-x", &[], "").await;
        assert_eq!(g.status, 500);
    }

    #[tokio::test]
    async fn no_key_is_403_and_query_key_works() {
        let fake = Fake::start().await.unwrap();
        let r = send(fake.addr, "POST", GEN, &[], &user("hi").to_string()).await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.json()["error"]["message"],
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
        );
        assert_eq!(r.json()["error"]["status"], "PERMISSION_DENIED");
        let q = send(
            fake.addr,
            "POST",
            &format!("{GEN}?key=qk"),
            &[("authorization", "Bearer tok")],
            &user("hi").to_string(),
        )
        .await;
        assert_eq!(q.status, 200);
        let reqs = fake.state.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].api_key, None);
        assert_eq!(reqs[1].api_key.as_deref(), Some("qk"));
        assert_eq!(reqs[1].authorization.as_deref(), Some("Bearer tok"));
        assert_eq!(reqs[1].query.as_deref(), Some("key=qk"));
        assert_eq!(reqs[1].path, GEN);
        assert_eq!(reqs[1].method, "POST");
        assert_eq!(reqs[1].body, Bytes::from(user("hi").to_string()));
        assert!(
            reqs[1]
                .headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer tok")
        );
        assert_eq!(fake.state.count_for_key("qk"), 1);
        post(&fake, GEN, "qk", &user("again")).await;
        send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-flash?key=qk",
            &[],
            "",
        )
        .await;
        assert_eq!(fake.state.count_for_key("qk"), 3);
        assert_eq!(fake.state.count_for_key("other"), 0);
        fake.state.clear();
        assert!(fake.state.requests().is_empty());
        assert_eq!(fake.state.count_for_key("qk"), 0);
    }

    #[tokio::test]
    async fn snake_case_fields_are_honoured() {
        let fake = Fake::start().await.unwrap();
        let body = json!({
            "system_instruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [
                {"text": "look"},
                {"inline_data": {"mime_type": "image/png", "data": PNG_1X1}}
            ]}],
            "generation_config": {"candidate_count": 2, "thinking_config": {"include_thoughts": true}}
        });
        let v = post(&fake, GEN, "k", &body).await.json();
        let c = v["candidates"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["content"]["parts"][0]["thought"], true);
        assert_eq!(text_of(&v, 0), "Echo: look (received 1 image/png part)");
        assert_eq!(text_of(&v, 1), "[1] Echo: look (received 1 image/png part)");
        assert_eq!(c[1]["index"], 1);
        let u = &v["usageMetadata"];
        assert!(u["thoughtsTokenCount"].as_u64().unwrap() > 0);
        assert_eq!(u["promptTokensDetails"][1]["modality"], "IMAGE");
        assert_eq!(
            u["totalTokenCount"].as_u64().unwrap(),
            u["promptTokenCount"].as_u64().unwrap()
                + u["candidatesTokenCount"].as_u64().unwrap()
                + u["thoughtsTokenCount"].as_u64().unwrap()
        );
        // Streaming: thought in its own first event, both candidates per chunk.
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        assert_eq!(
            ev[0]["candidates"][0]["content"]["parts"][0]["thought"],
            true
        );
        assert!(ev[0]["usageMetadata"].get("candidatesTokenCount").is_none());
        let last = ev.last().unwrap();
        assert_eq!(last["candidates"][1]["finishReason"], "STOP");
        let t1: String = ev.iter().map(|e| text_of(e, 1)).collect();
        assert_eq!(t1, "[1] Echo: look (received 1 image/png part)");
    }

    fn weather_tools() -> Value {
        json!([{"function_declarations": [
            {"name": "get_time", "description": "time", "parameters": {"type": "object", "properties": {}}},
            {"name": "get_weather", "description": "weather", "parameters": {
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING"},
                    "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "INTEGER"},
                    "extra": {"type": "BOOLEAN"}
                },
                "required": ["city", "unit", "days"]
            }}
        ]}])
    }

    #[tokio::test]
    async fn function_call_answer_and_stream_shape() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("weather in Paris?");
        body["tools"] = weather_tools();
        body["tool_config"] = json!({"function_calling_config": {"mode": "ANY", "allowed_function_names": ["get_weather"]}});
        let v = post(&fake, GEN, "k", &body).await.json();
        let part = &v["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["functionCall"]["name"], "get_weather");
        assert_eq!(
            part["functionCall"]["args"],
            json!({"city": "Paris", "unit": "celsius", "days": 1})
        );
        assert_eq!(part["thoughtSignature"], b64_std(b"sig:get_weather"));
        assert!(part["functionCall"].get("id").is_none());
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        // Stream: call whole in one event, STOP in a separate one with empty text.
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
            "get_weather"
        );
        assert!(ev[0]["candidates"][0].get("finishReason").is_none());
        assert_eq!(
            ev[1]["candidates"][0]["content"]["parts"],
            json!([{"text": ""}])
        );
        assert_eq!(ev[1]["candidates"][0]["finishReason"], "STOP");
        // No allowed list: first declared function; no signature on gemini-2.0.
        body.as_object_mut().unwrap().remove("tool_config");
        let v = post(
            &fake,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "k",
            &body,
        )
        .await
        .json();
        let part = &v["candidates"][0]["content"]["parts"][0];
        assert_eq!(
            part["functionCall"],
            json!({"name": "get_time", "args": {}})
        );
        assert!(part.get("thoughtSignature").is_none());
        // Mode NONE: plain echo.
        body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
        let v = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(text_of(&v, 0), "Echo: weather in Paris?");
        // Function response turn.
        let body = json!({
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 4}}}]}
            ],
            "tools": weather_tools()
        });
        let v = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(text_of(&v, 0), "Tool get_weather returned: {\"temp\":4}");
    }

    #[tokio::test]
    async fn json_schema_answer_parses() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("give me json");
        body["generationConfig"] = json!({
            "responseMimeType": "application/json",
            "responseJsonSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "minimum": 18},
                    "score": {"type": "number"},
                    "ok": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "kind": {"enum": ["a", "b"]},
                    "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
                    "nested": {"$ref": "#/$defs/Inner"},
                    "when": {"type": ["string", "null"], "format": "date-time"}
                },
                "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}}
            }
        });
        let v = post(&fake, GEN, "k", &body).await.json();
        let parsed: Value = serde_json::from_str(&text_of(&v, 0)).unwrap();
        assert_eq!(parsed["name"], "test");
        assert_eq!(parsed["age"], 18);
        assert_eq!(parsed["score"], 1.5);
        assert_eq!(parsed["ok"], true);
        assert_eq!(parsed["tags"], json!(["test"]));
        assert_eq!(parsed["kind"], "a");
        assert_eq!(parsed["maybe"], 1);
        assert_eq!(parsed["nested"], json!({"x": 1.5}));
        assert_eq!(parsed["when"], "2025-01-01T00:00:00Z");
        // No schema; snake_case; multi-candidate stays valid JSON; stream concatenates.
        let mut body = user("json please");
        body["generation_config"] =
            json!({"response_mime_type": "application/json", "candidate_count": 2});
        let v = post(&fake, GEN, "k", &body).await.json();
        for i in 0..2 {
            let p: Value = serde_json::from_str(&text_of(&v, i)).unwrap();
            assert_eq!(p, json!({"answer": "ok"}));
        }
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        let s: String = ev.iter().map(|e| text_of(e, 0)).collect();
        assert_eq!(
            serde_json::from_str::<Value>(&s).unwrap(),
            json!({"answer": "ok"})
        );
        // Gemini OpenAPI schema with responseSchema.
        let mut body = user("x");
        body["generationConfig"] = json!({"responseMimeType": "application/json",
            "responseSchema": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"recipe_name": {"type": "STRING"}}, "propertyOrdering": ["recipe_name"]}}});
        let v = post(&fake, GEN, "k", &body).await.json();
        let p: Value = serde_json::from_str(&text_of(&v, 0)).unwrap();
        assert_eq!(p, json!([{"recipe_name": "test"}]));
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
    async fn cut_after_really_cuts() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, SSE, "cut-1", &user("hi")).await;
        assert_eq!(r.status, 200);
        assert!(r.body_error, "expected a body error");
        let ev = sse_events(&r);
        assert_eq!(ev.len(), 2);
        assert!(
            ev.iter()
                .all(|e| e["candidates"][0].get("finishReason").is_none())
        );
        let a = post(&fake, ARR, "cut-1", &user("a b c d e f g h i j k l m n")).await;
        assert!(a.body_error);
        assert!(a.text().starts_with("[{"));
        assert!(!a.text().ends_with(']'));
        assert_eq!(a.text().matches("\n,\r\n").count(), 1);
        fake.state
            .set_key("c5", KeyBehavior::CutAfter { events: 5 });
        let r = post(&fake, SSE, "c5", &user("hi")).await;
        assert!(r.body_error);
        assert_eq!(sse_events(&r).len(), 5);
        // Non-stream: reset before headers.
        let body = user("hi").to_string();
        let e = send_raw(
            fake.addr,
            "POST",
            GEN,
            &[("x-goog-api-key", "cut-1")],
            &body,
        )
        .await;
        assert!(e.is_err());
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
    async fn directives() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, GEN, "k", &user("x [[status=503]]")).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"]["status"], "UNAVAILABLE");
        let r = post(&fake, GEN, "k", &user("[[status=429]]")).await;
        assert_eq!(r.status, 429);
        assert!(r.text().contains("RetryInfo"));
        let r = post(&fake, SSE, "k", &user("[[status=400]]")).await;
        assert_eq!(r.status, 400);
        let b = post(&fake, GEN, "k", &user("bad stuff [[block]]"))
            .await
            .json();
        assert!(b.get("candidates").is_none());
        assert_eq!(b["promptFeedback"]["blockReason"], "SAFETY");
        let ev = sse_events(&post(&fake, SSE, "k", &user("[[block]]")).await);
        assert_eq!(ev.len(), 1);
        let f = post(&fake, GEN, "k", &user("hi [[finish=MAX_TOKENS]]"))
            .await
            .json();
        assert_eq!(f["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(text_of(&f, 0), "Echo: hi");
        let i = post(&fake, GEN, "k", &user("draw [[image]]")).await.json();
        assert_eq!(
            i["candidates"][0]["content"]["parts"][1]["inlineData"]["mimeType"],
            "image/png"
        );
        let w = post(&fake, GEN, "k", &user("[[words=25]]")).await.json();
        assert_eq!(text_of(&w, 0).split_whitespace().count(), 25);
        assert_eq!(w["usageMetadata"]["candidatesTokenCount"], 25);
        let start = std::time::Instant::now();
        let r = post(&fake, SSE, "k", &user("[[events=5 gap=30]]")).await;
        assert!(start.elapsed() >= Duration::from_millis(110));
        let ev = sse_events(&r);
        assert_eq!(ev.len(), 5);
        assert_eq!(ev[4]["usageMetadata"]["candidatesTokenCount"], 5);
        let n = post(&fake, GEN, "k", &user("[[events=7]]")).await.json();
        assert_eq!(text_of(&n, 0).split_whitespace().count(), 7);
        // Unknown directive stays in the echo.
        let u = post(&fake, GEN, "k", &user("keep [[nope]]")).await.json();
        assert_eq!(text_of(&u, 0), "Echo: keep [[nope]]");
    }

    #[tokio::test]
    async fn grounding_and_code_execution() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("weather oslo");
        body["tools"] = json!([{"google_search": {}}]);
        let r = post(&fake, GEN, "k", &body).await;
        assert!(r.text().contains("\\u003cstyle\\u003e"));
        let v = r.json();
        let g = &v["candidates"][0]["groundingMetadata"];
        assert_eq!(
            g["groundingChunks"][0]["web"]["uri"],
            "https://example.com/a"
        );
        assert_eq!(g["groundingChunks"][1]["web"]["title"], "Example B");
        assert_eq!(g["webSearchQueries"][0], "weather oslo");
        assert_eq!(
            g["groundingSupports"][0]["segment"]["text"],
            "Echo: weather oslo"
        );
        assert_eq!(g["groundingSupports"][0]["segment"]["endIndex"], 18);
        assert!(
            g["searchEntryPoint"]["renderedContent"]
                .as_str()
                .unwrap()
                .starts_with("<style>")
        );
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        assert!(
            ev.last().unwrap()["candidates"][0]
                .get("groundingMetadata")
                .is_some()
        );
        let mut body = user("compute");
        body["tools"] = json!([{"codeExecution": {}}]);
        let v = post(&fake, GEN, "k", &body).await.json();
        let parts = v["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts[1]["text"], "Let me compute it.");
        assert_eq!(parts[2]["executableCode"]["language"], "PYTHON");
        assert_eq!(parts[3]["codeExecutionResult"]["outcome"], "OUTCOME_OK");
        assert_eq!(parts[4]["text"], "The answer is 4.");
    }

    #[tokio::test]
    async fn embeddings_and_count_tokens() {
        let fake = Fake::start().await.unwrap();
        const E: &str = "/v1beta/models/gemini-embedding-001:embedContent";
        const B: &str = "/v1beta/models/gemini-embedding-001:batchEmbedContents";
        let body = json!({"content": {"parts": [{"text": "hello"}]}});
        let a = post(&fake, E, "k", &body).await.json();
        let b = post(&fake, E, "k", &body).await.json();
        assert_eq!(a["embedding"]["values"].as_array().unwrap().len(), 768);
        assert_eq!(a, b);
        let small = post(
            &fake,
            E,
            "k",
            &json!({"content": {"parts": [{"text": "hello"}]}, "output_dimensionality": 8}),
        )
        .await
        .json();
        assert_eq!(small["embedding"]["values"].as_array().unwrap().len(), 8);
        let req = |m: &str, t: &str| json!({"model": m, "content": {"parts": [{"text": t}]}});
        let ok = post(
            &fake,
            B,
            "k",
            &json!({"requests": [req("models/gemini-embedding-001", "a"), req("models/gemini-embedding-001", "hello")]}),
        )
        .await
        .json();
        let embs = ok["embeddings"].as_array().unwrap();
        assert_eq!(embs.len(), 2);
        assert_eq!(embs[1], a["embedding"]);
        let mismatch = post(
            &fake,
            B,
            "k",
            &json!({"requests": [req("gemini-embedding-001", "a")]}),
        )
        .await;
        assert_eq!(mismatch.status, 400);
        let many: Vec<Value> = (0..101)
            .map(|_| req("models/gemini-embedding-001", "a"))
            .collect();
        let too_many = post(&fake, B, "k", &json!({"requests": many})).await;
        assert_eq!(too_many.status, 400);
        // countTokens agrees with generate's promptTokenCount.
        let body = user("count these words please, thank you very much");
        let ct = post(
            &fake,
            "/v1beta/models/gemini-2.5-flash:countTokens",
            "k",
            &body,
        )
        .await
        .json();
        let g = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(ct["totalTokens"], g["usageMetadata"]["promptTokenCount"]);
        let ct2 = post(
            &fake,
            "/v1beta/models/gemini-2.5-flash:countTokens",
            "k",
            &json!({"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": body["contents"]}}),
        )
        .await
        .json();
        assert_eq!(ct2["totalTokens"], ct["totalTokens"]);
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

    #[tokio::test]
    async fn dropping_the_fake_stops_it() {
        let fake = Fake::start().await.unwrap();
        let addr = fake.addr;
        assert_eq!(fake.base_url(), format!("http://{addr}/v1beta"));
        drop(fake);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn serve_on_own_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = FakeState::new();
        tokio::spawn(serve(listener, state.clone()));
        let r = send(
            addr,
            "GET",
            "/v1beta/models/gemini-2.5-flash?key=abc",
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(state.count_for_key("abc"), 1);
    }
    #[tokio::test]
    async fn openai_compat_layer() {
        let fake = Fake::start().await.unwrap();
        let chat = |body: Value| body.to_string();
        let hello = json!({"model": "models/gemini-2.5-flash", "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]});
        let bearer = [
            ("authorization", "Bearer k1"),
            ("content-type", "application/json"),
        ];
        let r = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(hello.clone()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gemini-2.5-flash");
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: Hi there");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["completion_tokens"], 3);
        let rec = fake.state.requests().pop().unwrap();
        assert_eq!(
            rec.api_key.as_deref(),
            Some("k1"),
            "the bearer is the key here"
        );
        assert_eq!(fake.state.count_for_key("k1"), 1);
        // Errors: Google's envelope in a one-element array; per-key behaviors apply.
        let none = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &[],
            &chat(hello.clone()),
        )
        .await;
        assert_eq!(none.status, 403);
        assert_eq!(none.json()[0]["error"]["status"], "PERMISSION_DENIED");
        let goog_only = send(
            fake.addr,
            "GET",
            "/v1beta/models?key=k",
            &[("authorization", "Bearer zz")],
            "",
        )
        .await;
        assert_eq!(goog_only.status, 200, "native routes ignore bearer tokens");
        let bad = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &[("authorization", "Bearer bad-1")],
            &chat(hello.clone()),
        )
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(
            bad.json()[0]["error"]["details"][0]["reason"],
            "API_KEY_INVALID"
        );
        let mut unknown = hello.clone();
        unknown["model"] = json!("gemini-9-ultra");
        let nf = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(unknown),
        )
        .await;
        assert_eq!(nf.status, 404);
        let mut forced = hello.clone();
        forced["messages"][1]["content"] = json!("[[status=503]]");
        assert_eq!(
            send(
                fake.addr,
                "POST",
                "/v1beta/openai/chat/completions",
                &bearer,
                &chat(forced)
            )
            .await
            .status,
            503
        );
        // Stream: deltas, finish_reason on the last, usage when asked, [DONE].
        let mut st = hello.clone();
        st["stream"] = json!(true);
        st["stream_options"] = json!({"include_usage": true});
        st["messages"][1]["content"] = json!("[[events=3]] x");
        let r = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(st.clone()),
        )
        .await;
        assert_eq!(r.ct(), "text/event-stream");
        let sse = r.text();
        let events: Vec<&str> = sse.split_terminator("\n\n").collect();
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events[4], "data: [DONE]");
        let chunks: Vec<Value> = events[..4]
            .iter()
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "lorem ipsum dolor");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert!(chunks[0]["choices"][0].get("finish_reason").is_none());
        assert_eq!(chunks[3]["choices"], json!([]));
        assert_eq!(chunks[3]["usage"]["completion_tokens"], 3);
        let cut = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &[("authorization", "Bearer cut-1")],
            &chat(st),
        )
        .await;
        assert!(cut.body_error, "a cut key cuts the stream");
        assert!(!cut.text().contains("[DONE]"));
        // Tool calls.
        let mut tools = hello.clone();
        tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
        let v = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(tools.clone()),
        )
        .await
        .json();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string());
        tools["tool_choice"] = json!("none");
        let v = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(tools),
        )
        .await
        .json();
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: Hi there");
        // Models and embeddings (float and base64 agree).
        let m = send(fake.addr, "GET", "/v1beta/openai/models", &bearer, "")
            .await
            .json();
        assert!(
            m["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == "models/gemini-2.5-flash")
        );
        let one = send(
            fake.addr,
            "GET",
            "/v1beta/openai/models/gemini-2.5-pro",
            &bearer,
            "",
        )
        .await
        .json();
        assert_eq!(one["id"], "models/gemini-2.5-pro");
        assert_eq!(
            send(fake.addr, "POST", "/v1beta/openai/models", &bearer, "")
                .await
                .status,
            405
        );
        let e = |fmt: &str| {
            json!({"model": "gemini-embedding-001", "input": ["a", "b"], "dimensions": 4, "encoding_format": fmt}).to_string()
        };
        let f = send(
            fake.addr,
            "POST",
            "/v1beta/openai/embeddings",
            &bearer,
            &e("float"),
        )
        .await
        .json();
        let b = send(
            fake.addr,
            "POST",
            "/v1beta/openai/embeddings",
            &bearer,
            &e("base64"),
        )
        .await
        .json();
        let floats: Vec<f32> = f["data"][1]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let raw = b64_decode(b["data"][1]["embedding"].as_str().unwrap()).unwrap();
        let decoded: Vec<f32> = raw
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(floats.len(), 4);
        assert_eq!(floats, decoded);
        assert_eq!(f["usage"]["prompt_tokens"], 2);
    }

    #[tokio::test]
    async fn gzip_when_accepted() {
        let fake = Fake::start().await.unwrap();
        let gz = [
            ("x-goog-api-key", "k"),
            ("accept-encoding", "gzip, deflate"),
        ];
        let plain = send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-pro",
            &[("x-goog-api-key", "k")],
            "",
        )
        .await;
        let zipped = send(fake.addr, "GET", "/v1beta/models/gemini-2.5-pro", &gz, "").await;
        assert!(plain.headers.get("content-encoding").is_none());
        assert_eq!(zipped.headers["content-encoding"], "gzip");
        assert_eq!(
            crate::gemini::gzip::decode(&zipped.body, 1 << 20).unwrap(),
            plain.body
        );
        let err = send(fake.addr, "GET", "/v1beta/models/nope-model", &gz, "").await;
        assert_eq!(err.status, 404);
        let e: Value =
            serde_json::from_slice(&crate::gemini::gzip::decode(&err.body, 1 << 20).unwrap())
                .unwrap();
        assert_eq!(e["error"]["status"], "NOT_FOUND");
        let no = send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-pro",
            &[("x-goog-api-key", "k"), ("accept-encoding", "gzip;q=0, br")],
            "",
        )
        .await;
        assert!(no.headers.get("content-encoding").is_none());
        let control = send(
            fake.addr,
            "GET",
            "/__fake/count/k",
            &[("accept-encoding", "gzip")],
            "",
        )
        .await;
        assert!(control.headers.get("content-encoding").is_none());
        // A streamed answer: one gzip piece per event, the trailer with the last.
        let body = json!({"contents": [{"parts": [{"text": "[[events=3]] x"}]}]}).to_string();
        let s = send(
            fake.addr,
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &gz,
            &body,
        )
        .await;
        let text =
            String::from_utf8(crate::gemini::gzip::decode(&s.body, 1 << 20).unwrap()).unwrap();
        assert_eq!(text.matches("data: ").count(), 3);
        assert!(text.ends_with("\r\n\r\n"));
    }
}
