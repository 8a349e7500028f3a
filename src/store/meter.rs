//! What the request path hands the store about each upstream attempt: its
//! usage counters (one [`Change::Usage`] per attempt: a request, its outcome
//! class, and the tokens of Gemini's `usageMetadata`) and, for a failed
//! attempt, an [`ErrorEntry`] for the error log.
//!
//! [`Recorder`] is what `crate::upstream` holds; a failed attempt is
//! recorded at once ([`Recorder::failed`]); a successful one gets a
//! [`Meter`] that travels with the answer, reads `usageMetadata` from the
//! bytes passing through ([`Meter::whole`], [`Meter::chunk`]: the last one
//! seen wins, as Gemini's streamed counts are cumulative) and records when it
//! is dropped, so a stream counts its tokens when it ends. A handler that
//! parses the answer anyway tells the meter its counts ([`Meter::tell`]), so
//! the answer is not read twice. Nothing here waits: recording is
//! [`StoreHandle::record`].

use std::sync::LazyLock;
use std::time::Instant;

use memchr::memmem;
use serde::Deserialize;

use super::StoreHandle;
use super::errlog::{ErrorEntry, MESSAGE_MAX, now_ms, truncate};
use super::model::{Change, Counts, Usage};
use crate::keys::Outcome;

/// The field a Gemini answer reports its tokens in.
const NEEDLE: &[u8] = b"\"usageMetadata\"";
/// Most bytes held back while a `usageMetadata` object is split across chunks.
const CARRY_MAX: usize = 16 * 1024;

/// Finds [`NEEDLE`]; forwards, as that search is vectorized (memchr's
/// reverse search is scalar).
static FORWARD: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(NEEDLE));

/// Where the last [`NEEDLE`] in `buf` starts. (The name cannot overlap
/// itself in JSON: after a string comes `:`, `,`, `}` or `]`.)
fn last_name(buf: &[u8]) -> Option<usize> {
    FORWARD.find_iter(buf).last()
}

/// Records attempts for the upstream client (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    store: StoreHandle,
    /// `ERROR_LOG_RECORD_BODY`, shared by the clones; changes live.
    record_body: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// One attempt, as the upstream client knows it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The route-table label of the client's request (`""`: not recorded).
    pub route: &'static str,
    /// The model called.
    pub model: &'a str,
    /// The key used (to mask it in a recorded request body; never kept).
    pub key: &'a str,
    /// Its stable id (`key_id`, kept by the pool so the request path never
    /// hashes a key).
    pub id: &'a str,
    /// The key, masked.
    pub masked: &'a str,
    /// Which attempt of the client's request (1 = the first).
    pub number: u32,
    /// The first attempt of a client request (counts a client request).
    pub first: bool,
    /// When it was sent.
    pub started: Instant,
}

/// How an attempt failed.
#[derive(Debug)]
pub struct Failed<'a> {
    /// The HTTP status (502 / 504 when there was no answer).
    pub status: u16,
    /// Google's error body (keys already masked), or a description when
    /// there was no answer.
    pub body: &'a [u8],
    /// What it meant for the key.
    pub outcome: &'a Outcome,
    /// The request body, capped and masked (`ERROR_LOG_RECORD_BODY`).
    pub request_body: Option<String>,
}

impl Recorder {
    /// A recorder writing to `store`; `record_body`: `ERROR_LOG_RECORD_BODY`.
    pub fn new(store: StoreHandle, record_body: bool) -> Recorder {
        let record_body = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(record_body));
        Recorder { store, record_body }
    }

    /// Whether failed attempts keep the request body.
    pub fn record_body(&self) -> bool {
        self.record_body.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Change `ERROR_LOG_RECORD_BODY` while running.
    pub fn set_record_body(&self, on: bool) {
        self.record_body
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// A failed attempt: its usage counters and its error log entry.
    pub fn failed(&self, a: &Attempt<'_>, f: Failed<'_>) {
        if a.route.is_empty() {
            return;
        }
        let id = a.id.to_string();
        self.store.record(usage(
            id.clone(),
            a.model,
            counts(a.first, f.status, f.outcome),
        ));
        self.store.record_error(entry(a, id, f));
    }

    /// An attempt's outbound proxy failed to connect (`message` names it
    /// masked): an error log entry with no key (a proxy failure is never the
    /// key's), status 502, Google status `PROXY_FAILED`; no usage counted.
    pub fn proxy_failed(&self, a: &Attempt<'_>, message: &str) {
        if a.route.is_empty() {
            return;
        }
        self.store.record_error(ErrorEntry {
            id: String::new(),
            time_ms: now_ms(),
            route: a.route.to_string(),
            model: a.model.to_string(),
            key_id: String::new(),
            key: String::new(),
            status: 502,
            google_status: "PROXY_FAILED".to_string(),
            message: truncate(message, MESSAGE_MAX).to_string(),
            attempt: a.number,
            latency_ms: a.started.elapsed().as_millis() as u64,
            body: None,
        });
    }

    /// A client request that found no key to try (it counts a client request).
    pub fn no_key(&self, route: &'static str, model: &str) {
        if route.is_empty() {
            return;
        }
        let c = Counts {
            client_requests: 1,
            ..Counts::default()
        };
        self.store.record(usage(String::new(), model, c));
    }

    /// The meter of a successful attempt (see [`Meter`]).
    pub fn meter(&self, a: &Attempt<'_>) -> Meter {
        if a.route.is_empty() {
            return Meter::off();
        }
        Meter {
            inner: Some(Box::new(Inner {
                store: self.store.clone(),
                key_id: a.id.to_string(),
                model: a.model.to_string(),
                route: a.route,
                number: a.number,
                first: a.first,
                started: a.started,
                tokens: Tokens::default(),
                whole: None,
                carry: Vec::new(),
                pending: None,
                follow: Vec::new(),
                failed: None,
                on_prompt: None,
            })),
        }
    }
}

fn usage(key_id: String, model: &str, counts: Counts) -> Change {
    Change::Usage(Usage {
        key_id,
        model: model.to_string(),
        at_ms: now_ms(),
        counts,
    })
}

/// The counters of one attempt with this outcome.
fn counts(first: bool, status: u16, outcome: &Outcome) -> Counts {
    let mut c = Counts {
        requests: 1,
        client_requests: u64::from(first),
        ..Counts::default()
    };
    let slot = match outcome {
        _ if status == 429 => &mut c.rate_limited,
        Outcome::Success => &mut c.successes,
        Outcome::KeyInvalid(_) => &mut c.key_invalid,
        Outcome::Quota { .. } => &mut c.rate_limited,
        Outcome::Transient(_) => &mut c.transient,
        Outcome::Region(_) => &mut c.region,
        Outcome::Client => &mut c.client,
    };
    *slot = 1;
    c
}

/// Google's `error.status` and `error.message` from an error body (also
/// wrapped in a one-element array, as streams send it); else the body as text.
fn google_error(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Many([Envelope; 1]),
        One(Envelope),
    }
    match serde_json::from_slice::<Either>(body) {
        Ok(Either::One(e) | Either::Many([e])) => (
            e.error.status.unwrap_or_default(),
            e.error.message.unwrap_or_default(),
        ),
        Err(_) => (String::new(), String::from_utf8_lossy(body).into_owned()),
    }
}

fn entry(a: &Attempt<'_>, key_id: String, f: Failed<'_>) -> ErrorEntry {
    let (google_status, message) = google_error(f.body);
    ErrorEntry {
        id: String::new(),
        time_ms: now_ms(),
        route: a.route.to_string(),
        model: a.model.to_string(),
        key_id,
        key: a.masked.to_string(),
        status: f.status,
        google_status: truncate(&google_status, 100).to_string(),
        message: truncate(message.trim(), MESSAGE_MAX).to_string(),
        attempt: a.number,
        latency_ms: a.started.elapsed().as_millis() as u64,
        body: f.request_body,
    }
}

/// Token counts of a `usageMetadata`.
#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Tokens {
    #[serde(rename = "promptTokenCount", default)]
    prompt: u64,
    #[serde(rename = "candidatesTokenCount", default)]
    output: u64,
    #[serde(rename = "thoughtsTokenCount", default)]
    thoughts: u64,
}

/// Reading `bytes` (what follows `"usageMetadata"`): the counts, `Err(())`
/// when the object is cut off, `Ok(None)` when it is not one.
fn read_tokens(bytes: &[u8]) -> Result<Option<Tokens>, ()> {
    let rest = bytes.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else {
        return if rest.is_empty() { Err(()) } else { Ok(None) };
    };
    let mut it = serde_json::Deserializer::from_slice(rest).into_iter::<Tokens>();
    match it.next() {
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(e)) if e.is_eof() => Err(()),
        None => Err(()),
        Some(Err(_)) => Ok(None),
    }
}

/// The usage of one successful attempt, recorded when dropped (see the
/// module doc). A meter that is off records nothing.
pub struct Meter {
    /// On the heap: a meter rides in every call's future (a silent stream
    /// holds one for minutes), where a pointer costs less than its fields.
    inner: Option<Box<Inner>>,
}

struct Inner {
    store: StoreHandle,
    key_id: String,
    model: String,
    route: &'static str,
    number: u32,
    first: bool,
    started: Instant,
    tokens: Tokens,
    /// A whole answer, read when the meter is dropped unless a handler told
    /// the meter its counts first ([`Meter::tell`]).
    whole: Option<bytes::Bytes>,
    /// The start of a `usageMetadata` the next chunk completes.
    carry: Vec<u8>,
    /// What follows the last `usageMetadata` name a streamed chunk held, read
    /// only when the meter is dropped (Gemini repeats the cumulative counts in
    /// every event: only the last one counts, so only it is parsed).
    pending: Option<bytes::Bytes>,
    /// The chunks after `pending` (up to `CARRY_MAX`): where an object cut
    /// off at the end of `pending`'s chunk goes on.
    follow: Vec<u8>,
    /// The answer failed after all (status, outcome class counters).
    failed: Option<Counts>,
    /// Told the answer's prompt tokens when dropped (the pool's quota count).
    on_prompt: Option<PromptHook>,
}

/// Told a successful answer's `promptTokenCount` (see [`Meter::on_prompt`]).
pub type PromptHook = Box<dyn FnOnce(u64) + Send + Sync>;

impl Meter {
    /// A meter that records nothing.
    pub fn off() -> Meter {
        Meter { inner: None }
    }

    /// Call `hook` with the answer's prompt tokens when the meter is dropped
    /// (a successful answer that reported them; a meter that is off never calls it).
    pub fn on_prompt(&mut self, hook: PromptHook) {
        if let Some(m) = &mut self.inner {
            m.on_prompt = Some(hook);
        }
    }

    /// A whole answer: the tokens of its last `usageMetadata`, read when the
    /// meter is dropped (the answer is kept by reference, not copied) unless
    /// [`Meter::tell`] says them first.
    pub fn whole(&mut self, body: &bytes::Bytes) {
        if let Some(m) = &mut self.inner {
            m.whole = Some(body.clone());
        }
    }

    /// The token counts of the whole answer given to [`Meter::whole`], as a
    /// handler that parsed it read them from its top-level `usageMetadata`
    /// (`promptTokenCount`, `candidatesTokenCount`, `thoughtsTokenCount`; 0
    /// for a missing one): the meter need not read the answer again.
    pub fn tell(&mut self, prompt: u64, output: u64, thoughts: u64) {
        if let Some(m) = &mut self.inner {
            m.whole = None;
            m.tokens = Tokens {
                prompt,
                output,
                thoughts,
            };
        }
    }

    /// The next chunk of a streamed answer (as upstream sent it). The last
    /// `usageMetadata` is kept (a reference to the chunk, no copy) and read
    /// when the meter is dropped.
    pub fn chunk(&mut self, data: &bytes::Bytes) {
        let Some(m) = &mut self.inner else { return };
        if !m.carry.is_empty() {
            // What may be a field name cut by the chunk before.
            let mut buf = std::mem::take(&mut m.carry);
            buf.extend_from_slice(data);
            if buf.len() > CARRY_MAX {
                return;
            }
            if FORWARD.find(&buf).is_some() {
                // It was: read the object now, whole (or carry it on).
                m.pending = None;
                m.follow.clear();
                m.scan(&buf);
                return;
            }
            m.follow_on(data);
            m.carry_cut_name(&buf);
            return;
        }
        if let Some(at) = last_name(data) {
            m.pending = Some(data.slice(at + NEEDLE.len()..));
            m.follow.clear();
            m.carry_cut_name(data);
            return;
        }
        m.follow_on(data);
        m.carry_cut_name(data);
    }

    /// The answer failed before it reached the client (a stream that broke
    /// or opened with an error): count the attempt as that failure and log it.
    pub fn failed(&mut self, masked: &str, f: Failed<'_>) {
        let Some(m) = &mut self.inner else { return };
        m.failed = Some(counts(m.first, f.status, f.outcome));
        let a = Attempt {
            route: m.route,
            model: &m.model,
            key: "",
            id: "",
            masked,
            number: m.number,
            first: m.first,
            started: m.started,
        };
        let e = entry(&a, m.key_id.clone(), f);
        m.store.record_error(e);
    }
}

impl Inner {
    /// Take the last `usageMetadata` in `buf`; keep a cut-off one (or a cut
    /// off field name) for the next chunk.
    fn scan(&mut self, buf: &[u8]) {
        if let Some(at) = last_name(buf) {
            match read_tokens(&buf[at + NEEDLE.len()..]) {
                Ok(Some(t)) => self.tokens = t,
                Ok(None) => {}
                Err(()) => {
                    self.carry = buf[at..].to_vec();
                    return;
                }
            }
        }
        self.carry_cut_name(buf);
    }

    /// Keep `data` after the kept object (see `follow`).
    fn follow_on(&mut self, data: &[u8]) {
        if self.pending.is_some() && self.follow.len() < CARRY_MAX {
            let room = CARRY_MAX - self.follow.len();
            self.follow.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    /// Keep the start of a `usageMetadata` name that `buf` ends with.
    fn carry_cut_name(&mut self, buf: &[u8]) {
        // Such a start is `"` and no other quote: it begins at the last `"`
        // of the tail, or nowhere (one search, not a comparison per length).
        let tail = &buf[buf.len().saturating_sub(NEEDLE.len() - 1)..];
        if let Some(q) = memchr::memrchr(b'"', tail)
            && NEEDLE.starts_with(&tail[q..])
        {
            self.carry = tail[q..].to_vec();
        }
    }

    /// Read the kept whole answer's or the kept last `usageMetadata` of a
    /// stream, if any.
    fn settle(&mut self) {
        if let Some(body) = self.whole.take() {
            // The last `usageMetadata` that is one (the name may also be a
            // string value somewhere).
            for at in FORWARD.find_iter(&body) {
                if let Ok(Some(t)) = read_tokens(&body[at + NEEDLE.len()..]) {
                    self.tokens = t;
                }
            }
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let read = if self.follow.is_empty() {
            read_tokens(&p)
        } else {
            let mut all = p.to_vec();
            all.extend_from_slice(&self.follow);
            read_tokens(&all)
        };
        if let Ok(Some(t)) = read {
            self.tokens = t;
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let Some(mut m) = self.inner.take() else {
            return;
        };
        m.settle();
        if let Some(hook) = m.on_prompt.take()
            && m.failed.is_none()
            && m.tokens.prompt > 0
        {
            hook(m.tokens.prompt);
        }
        let mut c = m.failed.unwrap_or(Counts {
            requests: 1,
            successes: 1,
            client_requests: u64::from(m.first),
            ..Counts::default()
        });
        c.prompt_tokens = m.tokens.prompt;
        c.output_tokens = m.tokens.output;
        c.thought_tokens = m.tokens.thoughts;
        m.store.record(Change::Usage(Usage {
            key_id: m.key_id,
            model: m.model,
            at_ms: now_ms(),
            counts: c,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(store: &StoreHandle) -> Meter {
        Recorder::new(store.clone(), false).meter(&Attempt {
            route: "chat",
            model: "m",
            key: "k",
            id: "0123456789ab",
            masked: "k…",
            number: 1,
            first: true,
            started: Instant::now(),
        })
    }

    /// The tokens the meter would record if dropped now.
    fn tokens(m: &mut Meter) -> Tokens {
        if let Some(i) = m.inner.as_mut() {
            i.settle();
        }
        m.inner.as_ref().map(|i| i.tokens).unwrap_or_default()
    }

    fn bytes(b: &[u8]) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(b)
    }

    #[test]
    fn reads_the_last_usage_metadata_however_the_stream_is_cut() {
        let store = StoreHandle::memory();
        let stream = "data: {\"candidates\": [], \"usageMetadata\": {\"promptTokenCount\": 3, \"promptTokensDetails\": [{\"tokenCount\": 3}]}}\r\n\r\n\
data: {\"candidates\": [], \"usageMetadata\": {\"promptTokenCount\": 7, \"candidatesTokenCount\": 11, \"thoughtsTokenCount\": 5}}\r\n\r\n";
        let want = Tokens {
            prompt: 7,
            output: 11,
            thoughts: 5,
        };
        let b = stream.as_bytes();
        for cut in 0..b.len() {
            let mut m = meter(&store);
            m.chunk(&bytes(&b[..cut]));
            m.chunk(&bytes(&b[cut..]));
            assert_eq!(tokens(&mut m), want, "cut at {cut}");
        }
        // In three pieces: the last object (or its name) cut twice.
        for cut in (0..b.len()).step_by(3) {
            for cut2 in (cut..b.len()).step_by(5) {
                let mut m = meter(&store);
                m.chunk(&bytes(&b[..cut]));
                m.chunk(&bytes(&b[cut..cut2]));
                m.chunk(&bytes(&b[cut2..]));
                assert_eq!(tokens(&mut m), want, "cut at {cut} and {cut2}");
            }
        }
        let mut m = meter(&store);
        m.whole(&bytes(b));
        assert_eq!(tokens(&mut m), want);
        let mut m = meter(&store);
        m.whole(&bytes(b"{\"usageMetadata\": 5, \"x\": \"usageMetadata\"}"));
        assert_eq!(tokens(&mut m), Tokens::default());
        // The name as a string value after the object does not hide it.
        let mut m = meter(&store);
        let odd = "{\"usageMetadata\": {\"promptTokenCount\": 7, \"candidatesTokenCount\": 11, \"thoughtsTokenCount\": 5}, \"x\": \"usageMetadata\"}";
        m.whole(&bytes(odd.as_bytes()));
        assert_eq!(tokens(&mut m), want);
        // Told the counts, the meter does not read the answer.
        let mut m = meter(&store);
        m.whole(&bytes(b));
        m.tell(1, 2, 3);
        let told = Tokens {
            prompt: 1,
            output: 2,
            thoughts: 3,
        };
        assert_eq!(tokens(&mut m), told);
    }

    #[test]
    fn google_errors_are_read_from_either_envelope() {
        let one =
            br#"{"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            google_error(one),
            ("RESOURCE_EXHAUSTED".into(), "Quota".into())
        );
        let many = br#"[{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}]"#;
        assert_eq!(google_error(many), ("INTERNAL".into(), "boom".into()));
        assert_eq!(google_error(b"plain"), (String::new(), "plain".into()));
    }
}
