//! A fake Gemini upstream: a look-alike of `generativelanguage.googleapis.com`.
//!
//! This crate owns the fake upstream used by gemini-balance's integration tests
//! (in process), the client tests (through the gateway), the gateway's `--demo`
//! mode (no real Gemini key needed; the `demo` feature) and the benchmark
//! (`gemini-balance fake --port N` or `fake-gemini --port N`, a separate process).
//!
//! It follows Gemini's wire format where it matters (see
//! the repository's `docs/wire-formats.md`, Parts A and D):
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
//! streams too) comes back `Content-Encoding: gzip`, each chunk compressed and
//! sync-flushed on its own so streams stay streamed.
//!
//! Answers are deterministic and driven by the request. Directives in the last
//! user text (removed from the echoed text):
//! - `[[status=NNN]]` answer with that HTTP status and Google's matching error body;
//! - `[[events=N gap=MS]]` stream N one-word text events MS ms apart (non-stream:
//!   one text of N words, sent after `(N-1)*MS` ms);
//! - `[[words=N]]` answer text of N words; `[[per=N]]` N words in each stream
//!   event (default: one with `events`, else four);
//! - `[[first=MS]]` silence before the first event (headers at once; non-stream:
//!   before the headers), scaled by [`FakeState::set_time_scale`];
//! - `[[empty]]` a 200 whose one candidate holds no content (finish `STOP`);
//! - `[[block]]` prompt blocked (200, `promptFeedback.blockReason = SAFETY`);
//! - `[[finish=REASON]]` that `finishReason`;
//! - `[[image]]` an extra `inlineData` part holding a 1x1 PNG;
//! - `[[call=NAME]]` call the declared function NAME (not the first one);
//!   `[[nocall]]` answer with text although functions are declared.
//!
//! Like Gemini, generate calls refuse a turn of `functionResponse` parts whose
//! count differs from the calls of the model turn before it, and on `gemini-3*`
//! a replayed `functionCall` (current turn) without its `thoughtSignature`;
//! a request naming `cachedContent` reports `cachedContentTokenCount: 1024`;
//! `responseLogprobs` adds a `logprobsResult` (non-stream answers).
//!
//! Key behaviors (see [`KeyBehavior`]) are chosen per key, explicitly or by key
//! prefix. Quotas (see [`quota`]): a key named `rpm5-…`, `rpd20-…` or
//! `rpm5-rpd20-…` (or given limits explicitly) gets Google's real 429 past
//! that many generate calls per minute / per Pacific day and model.
//! Control endpoints for out-of-process use (not recorded):
//! `POST /__fake/keys/{key}` (`{"behavior": "quota", "retry_secs": 5}`),
//! `POST /__fake/limits/{key}` (`{"rpm": 5, "rpd": 20}`),
//! `POST /__fake/clock` (`{"advance_secs": 60}`: the quota clock moves on),
//! `GET /__fake/requests`, `POST /__fake/clear`, `GET /__fake/count/{key}`.
//!
//! The Files API and cached contents (`files`): uploads (resumable and
//! multipart), get/list/delete, caches CRUD, all owned by the creating key;
//! another key gets Google's 403 `PERMISSION_DENIED`, in a generate body too.
//!
//! Vertex AI express mode (`vertex`): `/v1beta1/publishers/google/models/{m}:`
//! `generateContent`, `:streamGenerateContent`, `:countTokens` (also under
//! `/v1/publishers/google`), answered as above with the same key behaviors,
//! except that every `contents[]` entry must have a `role` (`user` or
//! `model`; else Vertex's 400 `Please use a valid role: user, model.`) and
//! other paths are a 404.
//!
//! Media (`media`): Imagen `POST models/imagen-*:predict` (`sampleCount`,
//! `aspectRatio` → `predictions[].bytesBase64Encoded` PNGs); generate calls
//! asking for `IMAGE` output check `imageConfig.aspectRatio` (and answer an
//! `inlineData` PNG part); `responseModalities: ["AUDIO"]` on a `*tts*` model
//! with a prebuilt voice answers one `inlineData` part of
//! `audio/L16;codec=pcm;rate=24000` PCM, 480 bytes per character of text.
//!
//! Layout (one module per part of the wire format):
//! - `server`: accept loop, routing, key behaviors, control endpoints;
//! - `body`: the response body (chunks, gaps, cuts) and Google's headers;
//! - `json`: ordered JSON in Google's pretty and compact styles;
//! - `errors`: Google's error envelopes (§A.6);
//! - `models`: the model catalogue, `models` list and get;
//! - `request`, `directives`, `schema`: reading requests, `[[...]]` directives,
//!   values generated from a JSON schema;
//! - `plan`, `generate`: what to answer, and the answer (whole or streamed);
//! - `embeddings`: `countTokens`, `embedContent`, `batchEmbedContents`;
//! - `openai_compat`: Gemini's own OpenAI-compatible layer (§A.7);
//! - `encoding`: query strings, base64, hashes and the gzip framing.

mod body;
mod directives;
mod embeddings;
mod encoding;
mod errors;
#[cfg(feature = "full")]
mod files;
mod generate;
mod json;
#[cfg(feature = "full")]
mod media;
mod models;
#[cfg(feature = "full")]
mod openai_compat;
mod plan;
mod quota;
mod request;
mod schema;
mod server;
#[cfg(test)]
mod testutil;
mod vertex;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::quota::Limits;
use crate::server::accept_loop;

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
    /// A thinking model: streams send their headers at once, then nothing
    /// for `ms` (scaled, see [`FakeState::set_time_scale`]) before the first
    /// event; other calls wait that long before their headers.
    Silent {
        /// Silence before the first event.
        ms: u64,
    },
    /// Like `Silent`, then the connection is cut before any event (a
    /// non-streamed call: reset before any headers).
    SilentCut {
        /// Silence before the cut.
        ms: u64,
    },
    /// Generate calls answer 200 with a candidate holding no content.
    Empty,
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
    /// The HTTP version it came over (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
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
    pub(crate) in_flight: AtomicUsize,
    pub(crate) peak_in_flight: AtomicUsize,
    /// Limits set explicitly per key (see [`quota`]).
    limits: RwLock<HashMap<String, Limits>>,
    /// Per key × model counts against the limits, and the quota clock.
    quotas: Mutex<quota::Quotas>,
    /// Calls refused for a limit the fake enforces.
    quota_refusals: AtomicU64,
    /// Uploaded files, cached contents and open uploads, owned by their key.
    #[cfg(feature = "full")]
    pub(crate) files: Mutex<files::Files>,
    /// The scale of the fake's silences, in thousandths (1000: real time).
    time_scale: AtomicU64,
    /// Connections accepted so far.
    pub(crate) connections: AtomicUsize,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of new HTTP/2 connections (0: hyper's default).
    pub(crate) h2_max_streams: std::sync::atomic::AtomicU32,
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
            limits: RwLock::new(HashMap::new()),
            quotas: Mutex::new(quota::Quotas::new()),
            quota_refusals: AtomicU64::new(0),
            #[cfg(feature = "full")]
            files: Mutex::new(files::Files::default()),
            time_scale: AtomicU64::new(1000),
            connections: AtomicUsize::new(0),
            h2_max_streams: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Allow at most `n` concurrent streams on each new HTTP/2 (h2c)
    /// connection, as Google's front ends bound them (0: hyper's default).
    pub fn set_h2_max_streams(&self, n: u32) {
        self.h2_max_streams.store(n, Ordering::SeqCst);
    }

    /// How many connections the fake has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Scale the silences (`[[first=MS]]`, `Silent`, `SilentCut`) by
    /// `scale`: 0.01 makes a 30 s silence last 300 ms, so tests of long
    /// calls take seconds.
    pub fn set_time_scale(&self, scale: f64) {
        let permille = (scale.max(0.0) * 1000.0).round() as u64;
        self.time_scale.store(permille, Ordering::Relaxed);
    }

    /// `ms` milliseconds of the fake's clock, scaled.
    pub(crate) fn scaled(&self, ms: u64) -> std::time::Duration {
        let permille = self.time_scale.load(Ordering::Relaxed);
        std::time::Duration::from_micros(ms.saturating_mul(permille))
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
    /// "echo"→EchoKey{split:false}, "trickle"→Trickle{ms:300},
    /// "silentcut"→SilentCut{ms:1000}, "silent"→Silent{ms:1000},
    /// "empty"→Empty, anything else → Ok.
    pub fn behavior(&self, key: &str) -> KeyBehavior {
        if let Some(b) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return b.clone();
        }
        default_behavior(key)
    }

    /// Set the quota limits of a key (overrides the ones its name carries).
    pub fn set_limits(&self, key: &str, limits: Limits) {
        let mut m = self.limits.write().unwrap_or_else(|e| e.into_inner());
        if m.len() < 100_000 || m.contains_key(key) {
            m.insert(key.to_string(), limits);
        }
    }

    /// The quota limits of a key: set explicitly, else from its name
    /// (`rpm5-rpd20-…`, see [`quota`]).
    pub fn limits(&self, key: &str) -> Limits {
        if let Some(l) = self
            .limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return *l;
        }
        Limits::from_key(key)
    }

    /// Move the quota clock forward by `d` (a minute or a day passes at once).
    pub fn advance_clock(&self, d: std::time::Duration) {
        lock(&self.quotas).advance(d.as_millis() as u64);
    }

    /// Forget every quota count (limits and the clock offset stay).
    pub fn reset_quotas(&self) {
        lock(&self.quotas).clear();
    }

    /// How many calls were refused for a limit the fake enforces (since the
    /// start or the last [`FakeState::clear`]).
    pub fn quota_refusals(&self) -> u64 {
        self.quota_refusals.load(Ordering::SeqCst)
    }

    /// Count a generate call of `key` on `model` against the key's limits,
    /// or the violated limit (then the call is refused and not counted).
    pub(crate) fn admit(&self, key: &str, model: &str) -> Result<(), quota::Violation> {
        let limits = self.limits(key);
        if !limits.any() {
            return Ok(());
        }
        let r = lock(&self.quotas).admit(key, model, limits);
        if r.is_err() {
            self.quota_refusals.fetch_add(1, Ordering::SeqCst);
        }
        r
    }

    /// All recorded requests so far (clone), oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Forget all recorded requests, per-key counts, the quota refusals and
    /// the in-flight peak (key behaviors, limits and quota counts stay).
    pub fn clear(&self) {
        self.quota_refusals.store(0, Ordering::SeqCst);
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

    pub(crate) fn record(&self, r: Recorded) {
        if let Some(k) = &r.api_key {
            *lock(&self.counts).entry(k.clone()).or_insert(0) += 1;
        }
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAP {
            log.pop_front();
        }
        log.push_back(r);
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

fn default_behavior(key: &str) -> KeyBehavior {
    let table: [(&str, KeyBehavior); 17] = [
        ("silentcut", KeyBehavior::SilentCut { ms: 1000 }),
        ("silent", KeyBehavior::Silent { ms: 1000 }),
        ("empty", KeyBehavior::Empty),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

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
}
