//! The one shared, pooled upstream client and the retry loop over keys.
//!
//! [`Upstream::call`] sends a request on a key from the pool; on an answer
//! that is the key's fault or a transient failure it reports the outcome to
//! the pool and tries again on a different usable key, up to `MAX_RETRIES`
//! extra attempts (a timed-out one only `TIMEOUT_RETRIES` times, and none
//! past the request's `REQUEST_TIMEOUT`, see [`crate::longcall`]). It
//! returns as soon as response *headers* with a 2xx status
//! arrive: the body then streams to the client, and nothing is retried after
//! that (so a stream is never duplicated).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;

use crate::keys::{Counts, KeyPool, Outcome, Pick, classify};

use crate::lanes::{Lanes, Protocol, UpBody, build_client_with};
use crate::store::meter::{Attempt, Failed, Meter, Recorder};

mod redact;
pub use redact::{Redactor, redact, redact_headers};

/// Largest upstream *error* body read for classification.
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// The header Gemini takes its API key in (a constant: a header name given
/// as text is parsed at every use).
pub const GOOG_API_KEY: http::HeaderName = http::HeaderName::from_static("x-goog-api-key");

/// How the key is presented upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `x-goog-api-key: <key>` (the native API; never `?key=` in the URL).
    GoogHeader,
    /// `Authorization: Bearer <key>` (Gemini's own OpenAI-compatible endpoint).
    Bearer,
}

/// One logical upstream call, retried over keys.
#[derive(Clone, Debug)]
pub struct Call<'a> {
    /// HTTP method.
    pub method: Method,
    /// Path and query on the upstream host, e.g. `/v1beta/models/m:generateContent`,
    /// or a whole `http(s)://` URL (the Vertex Express base's calls).
    pub path: String,
    /// Request body (cheaply cloned per attempt).
    pub body: Bytes,
    /// Model the call is for (per-model cooldowns); `""` when none.
    pub model: &'a str,
    /// How the key is sent.
    pub auth: Auth,
    /// Extra request headers (content type, accept-encoding, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The route-table label of the client's request, for the usage counters
    /// and the error log; `""` for the gateway's own calls (verification,
    /// keep-alive), which are not recorded.
    pub route: &'static str,
}

/// A successful answer: headers are in, the body is still streaming.
pub struct Answer {
    /// The upstream response.
    pub response: Response<UpBody>,
    /// Index of the key that served it.
    pub key: usize,
    /// How many attempts were made (1 = no retry).
    pub attempts: u32,
    /// Records this attempt's usage when dropped: feed it the answer's
    /// bytes ([`Meter::whole`], [`Meter::chunk`]) for its tokens.
    pub meter: Meter,
}

/// Why a call produced no successful answer.
#[derive(Debug)]
pub enum Failure {
    /// An upstream error answer for the client (its own fault, a region
    /// problem, or the last error after retries ran out).
    Upstream {
        /// Upstream status.
        status: StatusCode,
        /// Upstream headers.
        headers: HeaderMap,
        /// Upstream error body (bounded).
        body: Bytes,
        /// What it meant.
        outcome: Outcome,
        /// The masked key of the last attempt (for error logs and `/status`).
        key: String,
    },
    /// No answer at all: connection failure on every attempt.
    Network(String),
    /// No response headers within `TIME_OUT` on the last attempt.
    Timeout,
    /// No usable key: some cool down; the first is back after this long.
    Cooling(Duration, Counts),
    /// No usable key: all are disabled or resting.
    Unavailable(Counts),
    /// No key has quota headroom for the model: the earliest slot opens
    /// after this long; the message names the limit.
    Quota(Duration, String),
    /// Every outbound proxy (`PROXIES`) rests after failing to connect (the
    /// message says when the first is back); never sent around them.
    ProxiesDown(String),
}

/// `a` followed by `b`, in one allocation.
pub fn join(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    s
}

/// The upstream: base URL, its connection lanes and the retry policy (which
/// changes live, see [`Upstream::set_policy`]).
pub struct Upstream {
    /// Gemini calls go over these (see [`crate::lanes`]).
    lanes: Lanes,
    /// `UPSTREAM_PROTOCOL` and `UPSTREAM_STREAMS_PER_CONNECTION`.
    protocol: (Protocol, usize),
    origin: String,
    /// `origin` parsed once, so each attempt parses only its path.
    origin_parts: Option<(http::uri::Scheme, http::uri::Authority)>,
    prefix: String,
    prefix_v1: String,
    /// `TIME_OUT` in nanoseconds.
    timeout: AtomicU64,
    /// `COOLDOWN_SECONDS` in nanoseconds.
    cooldown: AtomicU64,
    /// `MAX_RETRIES`.
    max_retries: AtomicU32,
    /// `STREAM_SMOOTHING_MAX_DELAY` in nanoseconds when `STREAM_SMOOTHING`
    /// is on, else 0.
    smoothing: AtomicU64,
    recorder: Option<Recorder>,
    /// `CUSTOM_HEADERS`, added to every attempt (changes live).
    custom: arc_swap::ArcSwap<Vec<(HeaderName, HeaderValue)>>,
    /// `PROXIES` and one pooled client per proxy; `None`: direct.
    via: Option<Via>,
}

/// The outbound proxies and their lanes (index for index).
struct Via {
    proxies: crate::proxy::Proxies,
    /// Each proxy's lanes for Gemini calls (index for index).
    lanes: Vec<Lanes>,
    specs: Vec<crate::proxy::ProxySpec>,
}

/// Lanes of clients through `proxy` (or direct) speaking `protocol`.
fn lanes_for(proxy: Option<&crate::proxy::ProxySpec>, (proto, cap): (Protocol, usize)) -> Lanes {
    let proxy = proxy.cloned();
    Lanes::new(cap, move || build_client_with(proxy.as_ref(), proto))
}

/// The calls one lane carries: `per_connection`, or all of them in one lane
/// when no call can go over HTTP/2 (`http1`, or `auto` to a plain `http://`
/// base, which has no TLS to negotiate it): HTTP/1.1 opens a connection per
/// call anyway, and one lane keeps one idle pool.
fn lane_cap(proto: Protocol, per_connection: usize, origin: &str) -> usize {
    let plain = origin.starts_with("http://");
    match proto {
        Protocol::Http1 => usize::MAX,
        Protocol::Auto if plain => usize::MAX,
        _ => per_connection,
    }
}

/// The default of `UPSTREAM_STREAMS_PER_CONNECTION`: the streams Google's
/// front ends allow on one HTTP/2 connection.
pub const STREAMS_PER_CONNECTION: usize = 100;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Upstream {
    /// An upstream for `base_url` (e.g. `https://generativelanguage.googleapis.com/v1beta`).
    pub fn new(
        base_url: &str,
        timeout: Duration,
        cooldown: Duration,
        max_retries: u32,
    ) -> Upstream {
        let base = base_url.trim_end_matches('/');
        let (origin, prefix) = match base.find("://").map(|i| i + 3) {
            Some(s) => match base[s..].find('/') {
                Some(p) => (base[..s + p].to_string(), base[s + p..].to_string()),
                None => (base.to_string(), String::new()),
            },
            None => (base.to_string(), String::new()),
        };
        let prefix_v1 = match prefix.rsplit_once('/') {
            Some((head, last)) if last.starts_with("v1") => format!("{head}/v1"),
            _ => prefix.clone(),
        };
        let origin_parts = origin.parse::<Uri>().ok().and_then(|u| {
            let p = u.into_parts();
            Some((p.scheme?, p.authority?))
        });
        let protocol = (
            Protocol::Auto,
            lane_cap(Protocol::Auto, STREAMS_PER_CONNECTION, &origin),
        );
        Upstream {
            lanes: lanes_for(None, protocol),
            protocol,
            origin,
            origin_parts,
            prefix,
            prefix_v1,
            timeout: AtomicU64::new(nanos(timeout)),
            cooldown: AtomicU64::new(nanos(cooldown)),
            max_retries: AtomicU32::new(max_retries),
            smoothing: AtomicU64::new(0),
            recorder: None,
            custom: arc_swap::ArcSwap::from_pointee(Vec::new()),
            via: None,
        }
    }

    /// Send every call through `specs` (`PROXIES`; empty: direct), each key
    /// through its own proxy unless `per_key` is false: one pooled client per
    /// proxy, built now.
    pub fn set_proxies(&mut self, specs: &[crate::proxy::ProxySpec], per_key: bool) {
        self.via = (!specs.is_empty()).then(|| Via {
            proxies: crate::proxy::Proxies::new(specs, per_key),
            lanes: specs
                .iter()
                .map(|p| lanes_for(Some(p), self.protocol))
                .collect(),
            specs: specs.to_vec(),
        });
    }

    /// Speak `proto` to Gemini with at most `per_connection` calls in flight
    /// on one connection (`UPSTREAM_PROTOCOL`, `UPSTREAM_STREAMS_PER_CONNECTION`;
    /// set before [`Upstream::set_proxies`], or call that again).
    pub fn set_protocol(&mut self, proto: Protocol, per_connection: usize) {
        self.protocol = (proto, lane_cap(proto, per_connection, &self.origin));
        self.lanes = lanes_for(None, self.protocol);
        if let Some(via) = &mut self.via {
            via.lanes = via
                .specs
                .iter()
                .map(|p| lanes_for(Some(p), self.protocol))
                .collect();
        }
    }

    /// Gemini calls in flight and the lanes they use, over every route.
    pub fn lanes_in_use(&self) -> (usize, usize) {
        let mut all = vec![&self.lanes];
        if let Some(via) = &self.via {
            all.extend(via.lanes.iter());
        }
        all.iter()
            .fold((0, 0), |(c, l), x| (c + x.in_flight(), l + x.count()))
    }

    /// The outbound proxies (`None` without `PROXIES`).
    pub fn proxies(&self) -> Option<&crate::proxy::Proxies> {
        self.via.as_ref().map(|v| &v.proxies)
    }

    /// The upstream's origin (`scheme://host:port`), for proxy checks.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Set `CUSTOM_HEADERS` (already checked by the configuration: no key,
    /// credential or hop-by-hop header); an entry that is not a valid
    /// header is skipped. The next attempt sends them.
    pub fn set_custom_headers(&self, headers: &[(String, String)]) {
        let parsed: Vec<(HeaderName, HeaderValue)> = headers
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        self.custom.store(std::sync::Arc::new(parsed));
    }

    /// Change `TIME_OUT`, `COOLDOWN_SECONDS` and `MAX_RETRIES` while running
    /// (settings changed at run time): the next attempt uses them.
    pub fn set_policy(&self, timeout: Duration, cooldown: Duration, max_retries: u32) {
        self.timeout.store(nanos(timeout), Ordering::Relaxed);
        self.cooldown.store(nanos(cooldown), Ordering::Relaxed);
        self.max_retries.store(max_retries, Ordering::Relaxed);
    }

    /// Smooth Gemini SSE streams adding at most `bound` to any text
    /// (`STREAM_SMOOTHING`, `STREAM_SMOOTHING_MAX_DELAY`; `None`: off).
    pub fn set_smoothing(&self, bound: Option<Duration>) {
        let n = bound.map_or(0, |b| nanos(b).max(1));
        self.smoothing.store(n, Ordering::Relaxed);
    }

    /// The smoothing bound for `res`, the answer to `call`: a Gemini SSE
    /// stream (`:streamGenerateContent?alt=sse`, 200, not encoded) while
    /// smoothing is on.
    fn smoothing_for<B>(&self, call: &Call<'_>, res: &Response<B>) -> Option<Duration> {
        let n = self.smoothing.load(Ordering::Relaxed);
        if n == 0 || res.status() != StatusCode::OK {
            return None;
        }
        let stream = call.path.contains(":streamGenerateContent") && call.path.contains("alt=sse");
        let plain = !res.headers().contains_key(http::header::CONTENT_ENCODING);
        (stream && plain).then(|| Duration::from_nanos(n))
    }

    fn cooldown(&self) -> Duration {
        Duration::from_nanos(self.cooldown.load(Ordering::Relaxed))
    }

    /// Record every attempt of the client's calls (usage, error log) with `r`.
    pub fn set_recorder(&mut self, r: Recorder) {
        self.recorder = Some(r);
    }

    /// The recorder set with [`Upstream::set_recorder`].
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    /// The request body as the error log keeps it (`ERROR_LOG_RECORD_BODY`):
    /// at most 64 KiB, the pool key and anything shaped like a Google key or
    /// a `key=` value masked.
    fn logged_body(&self, call: &Call<'_>, key: &str) -> Option<String> {
        if !self.recorder.as_ref().is_some_and(Recorder::record_body) {
            return None;
        }
        let max = crate::store::errlog::BODY_MAX;
        let cut = call.body.slice(..call.body.len().min(max));
        let masked = redact(cut, key);
        let text = String::from_utf8_lossy(&masked);
        let text = crate::openai::error::scrub(&text);
        Some(crate::store::errlog::truncate(&text, max).to_string())
    }

    /// Record a failed attempt (usage counters and an error log entry).
    fn record_failed(
        &self,
        a: &Attempt<'_>,
        call: &Call<'_>,
        status: u16,
        body: &[u8],
        outcome: &Outcome,
    ) {
        if let Some(r) = &self.recorder
            && !call.route.is_empty()
        {
            let request_body = self.logged_body(call, a.key);
            r.failed(
                a,
                Failed {
                    status,
                    body,
                    outcome,
                    request_body,
                },
            );
        }
    }

    /// An answer that came with a 2xx on key `index` failed before it reached
    /// the client after all (a stream that broke, stayed silent or opened
    /// with an error): its attempt counts as that failure and is logged.
    #[allow(clippy::too_many_arguments)]
    pub fn answer_failed(
        &self,
        meter: &mut Meter,
        pool: &KeyPool,
        call: &Call<'_>,
        index: usize,
        status: u16,
        outcome: &Outcome,
        message: &str,
    ) {
        let request_body = self.logged_body(call, pool.key(index));
        meter.failed(
            pool.masked(index),
            Failed {
                status,
                body: message.as_bytes(),
                outcome,
                request_body,
            },
        );
    }

    /// The path for `rest` (starting with `/`) under the `BASE_URL` version (`v1beta`).
    pub fn path(&self, rest: &str) -> String {
        join(&self.prefix, rest)
    }

    /// The path for `rest` under the upstream's `v1` (derived from `BASE_URL`).
    pub fn path_v1(&self, rest: &str) -> String {
        join(&self.prefix_v1, rest)
    }

    /// The `TIME_OUT` for response headers.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout.load(Ordering::Relaxed))
    }

    /// Send one attempt with `key`, bounded by `TIME_OUT` for the headers
    /// (through the key's proxy when `PROXIES` is set).
    pub async fn send(&self, call: &Call<'_>, key: &str) -> Result<Response<UpBody>, AttemptError> {
        self.send_via(call, key, None).await
    }

    /// [`Upstream::send`] for attempt `a` (its key id picks the proxy; a
    /// proxy failure goes to the error log). A proxy that fails to connect
    /// rests and the attempt goes on through the key's next proxy; never
    /// blamed on the key. Every proxy resting: [`AttemptError::ProxiesDown`].
    async fn send_via(
        &self,
        call: &Call<'_>,
        key: &str,
        a: Option<&Attempt<'_>>,
    ) -> Result<Response<UpBody>, AttemptError> {
        let Some(via) = &self.via else {
            return self
                .exchange(&self.lanes, call, key)
                .await
                .map_err(|(e, _)| e);
        };
        let id = match a {
            Some(a) if !a.id.is_empty() => std::borrow::Cow::Borrowed(a.id),
            _ => std::borrow::Cow::Owned(crate::store::model::key_id(key)),
        };
        loop {
            let Some(i) = via.proxies.pick(&id) else {
                return Err(AttemptError::ProxiesDown(via.proxies.down_message()));
            };
            match self.exchange(&via.lanes[i], call, key).await {
                Err((AttemptError::Network(m), true)) => {
                    let why = via.proxies.connect_failed(i, &m);
                    if let (Some(r), Some(a)) = (&self.recorder, a) {
                        r.proxy_failed(a, &why);
                    }
                }
                other => {
                    via.proxies.served(i);
                    return other.map_err(|(e, _)| e);
                }
            }
        }
    }

    /// One exchange on `client`; an error says whether it was a connect
    /// failure (through a proxy: the proxy's).
    async fn exchange(
        &self,
        lanes: &Lanes,
        call: &Call<'_>,
        key: &str,
    ) -> Result<Response<UpBody>, (AttemptError, bool)> {
        let uri = match &self.origin_parts {
            // A whole URL (Vertex Express, see `App::path_on`) goes there.
            _ if call.path.starts_with("http") => call.path.parse().ok(),
            Some((scheme, authority)) => Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query(call.path.as_str())
                .build()
                .ok(),
            None => join(&self.origin, &call.path).parse().ok(),
        };
        let uri = uri.ok_or((AttemptError::Network("invalid upstream URL".into()), false))?;
        let mut req = Request::new(crate::body::full(call.body.clone()));
        *req.method_mut() = call.method.clone();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        for (k, v) in &call.headers {
            headers.append(k.clone(), v.clone());
        }
        for (k, v) in self.custom.load().iter() {
            headers.insert(k.clone(), v.clone());
        }
        let key_value = match call.auth {
            Auth::GoogHeader => HeaderValue::from_str(key),
            Auth::Bearer => HeaderValue::from_str(&format!("Bearer {key}")),
        };
        let Ok(mut key_value) = key_value else {
            let e = AttemptError::Network("key is not a valid header value".into());
            return Err((e, false));
        };
        key_value.set_sensitive(true);
        match call.auth {
            Auth::GoogHeader => headers.insert(GOOG_API_KEY, key_value),
            Auth::Bearer => headers.insert(http::header::AUTHORIZATION, key_value),
        };
        // Never past the request's deadline (`REQUEST_TIMEOUT`).
        let wait = crate::longcall::clamp(self.timeout());
        if wait.is_zero() {
            return Err((AttemptError::Timeout, false));
        }
        let seat = lanes.seat();
        match tokio::time::timeout(wait, seat.client().request(req)).await {
            Err(_) => Err((AttemptError::Timeout, false)),
            Ok(Err(e)) => Err((AttemptError::Network(describe(&e)), e.is_connect())),
            Ok(Ok(res)) => {
                let smooth = self.smoothing_for(call, &res);
                Ok(res.map(|b| UpBody::new(b, Some(seat)).smoothed(smooth)))
            }
        }
    }

    /// Run `call` over the pool with retries (see the module doc).
    pub async fn call(&self, pool: &KeyPool, call: &Call<'_>) -> Result<Answer, Failure> {
        self.call_with(pool, call, &mut Vec::new(), self.attempts())
            .await
    }

    /// Attempts one call may make: 1 + `MAX_RETRIES`.
    pub fn attempts(&self) -> u32 {
        self.max_retries.load(Ordering::Relaxed).saturating_add(1)
    }

    /// Like [`Upstream::call`], skipping the keys in `tried` (and adding the
    /// ones it uses) and making at most `attempts` attempts. Used to go on
    /// after an answer failed before its first byte reached the client.
    pub async fn call_with(
        &self,
        pool: &KeyPool,
        call: &Call<'_>,
        tried: &mut Vec<usize>,
        attempts: u32,
    ) -> Result<Answer, Failure> {
        let mut last: Option<Failure> = None;
        // The first attempt of a client request counts the request.
        let first_call = tried.is_empty();
        // Generate calls count their estimated input tokens per minute (only
        // when quotas are counted at all: the estimate scans the body).
        let generate = call.path.contains("enerateContent") || call.path.ends_with("/completions");
        let tokens = if generate && pool.quota_policy().aware {
            crate::keys::estimate_tokens(&call.body)
        } else {
            0
        };
        for attempt in 1..=attempts {
            // No retry past the request's deadline (`REQUEST_TIMEOUT`).
            if attempt > 1 && crate::longcall::expired() {
                break;
            }
            // Only a first attempt waits in line for quota headroom.
            let pick = if last.is_none() {
                pool.pick_waiting(call.model, tried, tokens).await
            } else {
                pool.pick_tokens(call.model, tried, tokens)
            };
            let index = match pick {
                Pick::Key(i) => i,
                Pick::Cooling(d) if last.is_none() => {
                    self.no_key(call, first_call);
                    return Err(Failure::Cooling(d, pool.counts()));
                }
                Pick::Quota(q) if last.is_none() => {
                    self.no_key(call, first_call);
                    return Err(Failure::Quota(q.wait, q.message(call.model)));
                }
                Pick::Unavailable if last.is_none() => {
                    self.no_key(call, first_call);
                    return Err(Failure::Unavailable(pool.counts()));
                }
                _ => break,
            };
            tried.push(index);
            let a = attempt_of(pool, call, index, tried.len(), first_call && attempt == 1);
            match self.send_via(call, pool.key(index), Some(&a)).await {
                Ok(mut res) if res.status().is_success() => {
                    redact_headers(res.headers_mut(), pool.key(index));
                    pool.report(index, call.model, &Outcome::Success);
                    let mut meter = self
                        .recorder
                        .as_ref()
                        .map_or_else(Meter::off, |r| r.meter(&a));
                    if let Some(hook) = pool.token_hook(index, call.model, tokens) {
                        meter.on_prompt(hook);
                    }
                    return Ok(Answer {
                        response: res,
                        key: index,
                        attempts: attempt,
                        meter,
                    });
                }
                Ok(res) => {
                    let (failure, final_answer) =
                        self.refused(pool, call, &a, index, attempt, res).await;
                    if final_answer {
                        return Err(failure);
                    }
                    last = Some(failure);
                }
                Err(AttemptError::ProxiesDown(m)) => {
                    self.no_key(call, first_call && attempt == 1);
                    return Err(Failure::ProxiesDown(m));
                }
                Err(e) => {
                    let timed_out = matches!(e, AttemptError::Timeout);
                    let (msg, failure, code) = match e {
                        AttemptError::Timeout if crate::longcall::expired() => (
                            "no response headers before REQUEST_TIMEOUT".to_string(),
                            Failure::Timeout,
                            504,
                        ),
                        AttemptError::Timeout => (
                            "no response headers within TIME_OUT".to_string(),
                            Failure::Timeout,
                            504,
                        ),
                        AttemptError::Network(m) | AttemptError::ProxiesDown(m) => {
                            (m.clone(), Failure::Network(m), 502)
                        }
                    };
                    crate::debug!(
                        "upstream error on key {} (attempt {}): {}",
                        pool.masked(index),
                        attempt,
                        msg
                    );
                    let outcome = Outcome::Transient(msg);
                    pool.report(index, call.model, &outcome);
                    if let Outcome::Transient(m) = &outcome {
                        self.record_failed(&a, call, code, m.as_bytes(), &outcome);
                    }
                    last = Some(failure);
                    // A timed-out generation may have spent Google's quota:
                    // retried only `TIMEOUT_RETRIES` times.
                    if timed_out && !crate::longcall::timed_out() {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or(Failure::Unavailable(pool.counts())))
    }

    /// A non-2xx answer on key `index`: read its (bounded) body, classify it,
    /// report it to the pool (a 429 teaches the key Google's limit), record
    /// it; the failure, and whether it is final for the client (its own
    /// mistake, or a region refusal) rather than worth another key.
    async fn refused(
        &self,
        pool: &KeyPool,
        call: &Call<'_>,
        a: &Attempt<'_>,
        index: usize,
        attempt: u32,
        res: http::Response<UpBody>,
    ) -> (Failure, bool) {
        let status = res.status();
        let (mut parts, body) = res.into_parts();
        let body = tokio::time::timeout(
            crate::longcall::clamp(self.timeout()),
            crate::body::read_limited(body, ERROR_BODY_LIMIT),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
        // A gzip error body (the client accepted gzip) is read decoded.
        let body = crate::gemini::gzip::decode_answer(&mut parts.headers, body, ERROR_BODY_LIMIT);
        // An upstream that echoes the key (`Consumer 'api_key:…'`) must
        // not hand it to the client, the logs or `/status`.
        let body = redact(body, pool.key(index));
        redact_headers(&mut parts.headers, pool.key(index));
        let retry_after = parts
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let outcome = classify(status.as_u16(), &body, retry_after, self.cooldown());
        if let Outcome::Quota { .. } = outcome {
            pool.learn(index, call.model, &body);
        }
        pool.report(index, call.model, &outcome);
        self.record_failed(a, call, status.as_u16(), &body, &outcome);
        crate::debug!(
            "upstream {} on key {} (attempt {}): {:?}",
            status.as_u16(),
            pool.masked(index),
            attempt,
            outcome_label(&outcome)
        );
        let final_answer = matches!(outcome, Outcome::Client | Outcome::Region(_));
        let failure = Failure::Upstream {
            status,
            headers: parts.headers,
            body,
            outcome,
            key: pool.masked(index).to_string(),
        };
        (failure, final_answer)
    }

    /// A client request that found no key to try still counts.
    fn no_key(&self, call: &Call<'_>, first_call: bool) {
        if let Some(r) = &self.recorder
            && first_call
        {
            r.no_key(call.route, call.model);
        }
    }
}

/// Attempt number `number` of `call` on key `index`, starting now.
fn attempt_of<'a>(
    pool: &'a KeyPool,
    call: &Call<'a>,
    index: usize,
    number: usize,
    first: bool,
) -> Attempt<'a> {
    Attempt {
        route: call.route,
        model: call.model,
        key: pool.key(index),
        id: pool.id(index).unwrap_or_default(),
        masked: pool.masked(index),
        number: number as u32,
        first,
        started: Instant::now(),
    }
}

/// Why one attempt failed before any response.
#[derive(Debug)]
pub enum AttemptError {
    /// No headers within `TIME_OUT`.
    Timeout,
    /// Connection or protocol failure (message never contains the key).
    Network(String),
    /// Every outbound proxy rests (see [`Failure::ProxiesDown`]).
    ProxiesDown(String),
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::KeyInvalid(_) => "key invalid",
        Outcome::Quota { .. } => "quota",
        Outcome::Transient(_) => "transient",
        Outcome::Region(_) => "region",
        Outcome::Client => "client error",
    }
}

/// A short description of a client error (connect refused, reset, …).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut msg = String::from("upstream connection failed");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Read the rest of an upstream body into bytes (bounded), for non-streamed answers.
pub async fn read_answer(
    res: Response<UpBody>,
    limit: usize,
) -> Result<(http::response::Parts, Bytes), String> {
    let (parts, body) = res.into_parts();
    match crate::body::read_limited(body, limit).await {
        Ok(b) => Ok((parts, b)),
        Err(crate::body::ReadError::TooLarge) => Err("upstream answer too large".into()),
        Err(crate::body::ReadError::Io(e)) => Err(format!("upstream body failed: {e}")),
    }
}

/// Drop the body of a response we do not forward (lets the connection be reused).
pub async fn drain<B: hyper::body::Body>(res: Response<B>) {
    let _ = res.into_body().collect().await;
}

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

/// The upstream response headers to pass on: all but hop-by-hop ones (and
/// the others in `DROP_RESPONSE`), kept in place rather than copied.
pub fn response_headers(mut headers: HeaderMap) -> HeaderMap {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| DROP_RESPONSE.contains(&k.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    headers
}

#[cfg(test)]
mod tests {

    #[test]
    fn one_lane_where_no_call_can_use_http2() {
        let (https, plain) = (
            "https://generativelanguage.googleapis.com",
            "http://127.0.0.1:9",
        );
        assert_eq!(lane_cap(Protocol::Auto, 100, https), 100);
        assert_eq!(lane_cap(Protocol::Auto, 100, plain), usize::MAX);
        assert_eq!(lane_cap(Protocol::Http1, 100, https), usize::MAX);
        assert_eq!(lane_cap(Protocol::Http2, 7, plain), 7);
    }
    use super::*;

    #[test]
    fn splits_base_url_and_derives_v1() {
        let u = Upstream::new(
            "https://generativelanguage.googleapis.com/v1beta",
            Duration::from_secs(1),
            Duration::from_secs(1),
            3,
        );
        assert_eq!(u.origin, "https://generativelanguage.googleapis.com");
        assert_eq!(u.path("/models"), "/v1beta/models");
        assert_eq!(u.path_v1("/models"), "/v1/models");
        let u = Upstream::new(
            "http://127.0.0.1:9/x/v1beta/",
            Duration::from_secs(1),
            Duration::from_secs(1),
            0,
        );
        assert_eq!(u.path("/m"), "/x/v1beta/m");
        assert_eq!(u.path_v1("/m"), "/x/v1/m");
    }
}
