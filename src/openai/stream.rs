//! Gemini streaming answers (`streamGenerateContent?alt=sse`) → OpenAI
//! `chat.completion.chunk` SSE bytes (docs/wire-formats.md §C.5, §B.2).
//!
//! Owns two pieces, both pure and incremental:
//!
//! * [`SseParser`] — splits the upstream byte stream into event payloads,
//!   whatever the chunking and line endings, with a per-event size bound.
//! * [`StreamTranslator`] — turns each Gemini event into OpenAI chunks
//!   written straight into a caller-provided `Vec<u8>` (compact JSON,
//!   `data: ...\n\n` framing), then the finish/usage/`[DONE]` tail or an
//!   in-stream error event.
//!
//! Every part of every candidate is kept, in order; rendering of code
//! execution, images and search sources is shared with [`super::response`].
//!
//! Thought signatures: a `functionCall` part's own `thoughtSignature` (or one
//! on a later non-call part of the same event, for the choice's first call)
//! is put into the tool call id (`call_<16hex>_ts_<sig>`). A signature that
//! only arrives in a *later* event is lost for that id, because the call has
//! already been sent to the client; Gemini normally puts it on the call part.
//! Grounding citations are only rendered as the sources text in streams (no
//! `annotations`), and `logprobs` are always `null`.

use std::fmt;
use std::io::Write as _;

use serde_json::Value;

use super::Options;
use super::error::{error_body, scrub};
use super::response::{
    Fnv, Part, Usage, as_slice, blocked_refusal, candidate_parts, classify, finish_reason,
    late_signature, render, render_sources, tool_call_id, write_arguments,
};

// ---------------------------------------------------------------------------
// SSE parsing.

/// Incremental SSE parser for Gemini's `alt=sse` stream.
///
/// Accepts bytes in any split (even one byte at a time). Lines end with
/// `\r\n`, `\n` or a lone `\r` (mixed freely); a blank line ends an event.
/// The `data:` lines of one event (with or without the space after the
/// colon) are joined by `\n`; comments and other fields are ignored. As a
/// leniency, bare JSON lines (an event whose first non-field line starts
/// with `{` or `[`, as google-genai also accepts for error bodies) are passed
/// on as a payload when the event has no `data:` line.
///
/// Bounded: when the raw lines of one event exceed `max_event` bytes,
/// [`push`](Self::push) returns an error (and keeps doing so).
#[derive(Debug)]
pub struct SseParser {
    max_event: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    bare: Vec<u8>,
    event_bytes: usize,
    after_cr: bool,
    failed: bool,
}

/// An SSE stream the parser refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseError {
    /// One event was larger than the configured limit (bytes).
    EventTooLarge {
        /// The limit given to [`SseParser::new`].
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "upstream stream event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

impl SseParser {
    /// A parser refusing events whose lines exceed `max_event` bytes in total.
    pub fn new(max_event: usize) -> Self {
        SseParser {
            max_event,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            bare: Vec::new(),
            event_bytes: 0,
            after_cr: false,
            failed: false,
        }
    }

    /// Feed bytes; complete event payloads (the data text) are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.error());
        }
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    rest = tail;
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(p) => {
                    let (line, term) = rest.split_at(p);
                    self.take(line)?;
                    self.after_cr = term.first() == Some(&b'\r');
                    rest = term.get(1..).unwrap_or(&[]);
                    self.end_line(out);
                }
                None => {
                    self.take(rest)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// End of body: a final event without trailing blank line is returned.
    pub fn finish(&mut self) -> Option<String> {
        if self.failed {
            return None;
        }
        if !self.line.is_empty() {
            self.field_line();
        }
        self.after_cr = false;
        self.event_bytes = 0;
        self.dispatch()
    }

    fn error(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event,
        }
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        self.event_bytes = self.event_bytes.saturating_add(bytes.len());
        if self.event_bytes > self.max_event {
            self.failed = true;
            self.line = Vec::new();
            self.data = Vec::new();
            self.bare = Vec::new();
            return Err(self.error());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        if self.line.is_empty() {
            self.event_bytes = 0;
            if let Some(p) = self.dispatch() {
                out.push(p);
            }
        } else {
            self.field_line();
        }
    }

    /// Interpret the (non-empty) current line, then clear it.
    fn field_line(&mut self) {
        let line = self.line.as_slice();
        let value = if let Some(v) = line.strip_prefix(b"data:") {
            Some(v.strip_prefix(b" ").unwrap_or(v))
        } else if line == b"data" {
            Some(&[][..])
        } else {
            None
        };
        if let Some(v) = value {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(v);
            self.has_data = true;
        } else if !self.bare.is_empty() || matches!(line.first(), Some(b'{' | b'[')) {
            if !self.bare.is_empty() {
                self.bare.push(b'\n');
            }
            self.bare.extend_from_slice(line);
        }
        self.line.clear();
    }

    /// The payload of the event just ended, if it had one; resets the event.
    fn dispatch(&mut self) -> Option<String> {
        let bytes = if self.has_data {
            self.bare.clear();
            std::mem::take(&mut self.data)
        } else if !self.bare.is_empty() {
            std::mem::take(&mut self.bare)
        } else {
            return None;
        };
        self.has_data = false;
        Some(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }
}

// ---------------------------------------------------------------------------
// Translation.

/// Candidates with more distinct indices than this are ignored (bounds the
/// per-stream state; Gemini's `candidateCount` is at most 8).
const MAX_CHOICES: usize = 64;

/// What the caller should do after [`StreamTranslator::on_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading upstream events.
    Continue,
    /// The stream is over (an error event and `[DONE]` were written); stop
    /// reading and close the response.
    Ended,
}

/// Per-choice state.
#[derive(Debug)]
struct Choice {
    index: u64,
    role_sent: bool,
    saw_call: bool,
    next_tool: u64,
    finished: bool,
    /// Sources text (grounding) to send right before the finish chunk.
    sources: Option<String>,
}

/// Writes chunks; `header` is everything of a chunk up to `"choices":[`.
#[derive(Debug)]
struct Writer {
    header: Vec<u8>,
    started: bool,
    args: Vec<u8>,
}

enum Delta<'a> {
    Role,
    Content(&'a str),
    Reasoning(&'a str),
    Refusal(&'a str),
    Empty,
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

impl Writer {
    fn set_header(&mut self, id: &str, created: u64, model: &str) {
        let h = &mut self.header;
        h.clear();
        h.extend_from_slice(b"{\"id\":");
        json_str(h, id);
        let _ = write!(
            h,
            ",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":"
        );
        json_str(h, model);
        h.extend_from_slice(b",\"system_fingerprint\":null,\"choices\":[");
    }

    fn open(&self, out: &mut Vec<u8>, index: u64) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.header);
        out.extend_from_slice(b"{\"index\":");
        crate::log::push_int(out, index, 1);
        out.extend_from_slice(b",\"delta\":");
    }

    fn close(&mut self, out: &mut Vec<u8>, finish: Option<&str>) {
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(r) => json_str(out, r),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
        self.started = true;
    }

    fn delta(&mut self, out: &mut Vec<u8>, index: u64, delta: Delta, finish: Option<&str>) {
        self.open(out, index);
        let (key, text) = match delta {
            Delta::Role => {
                out.extend_from_slice(br#"{"role":"assistant","content":""}"#);
                return self.close(out, finish);
            }
            Delta::Empty => {
                out.extend_from_slice(b"{}");
                return self.close(out, finish);
            }
            Delta::Content(t) => ("content", t),
            Delta::Reasoning(t) => ("reasoning_content", t),
            Delta::Refusal(t) => ("refusal", t),
        };
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        json_str(out, text);
        out.push(b'}');
        self.close(out, finish);
    }

    fn tool_call(
        &mut self,
        out: &mut Vec<u8>,
        index: u64,
        tool_index: u64,
        id: &str,
        name: &str,
        args: Option<&Value>,
    ) {
        self.open(out, index);
        let _ = write!(out, "{{\"tool_calls\":[{{\"index\":{tool_index},\"id\":");
        json_str(out, id);
        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        json_str(out, name);
        out.extend_from_slice(b",\"arguments\":");
        self.args.clear();
        write_arguments(args, &mut self.args);
        json_str(out, std::str::from_utf8(&self.args).unwrap_or("{}"));
        out.extend_from_slice(b"}}]}");
        self.close(out, None);
    }

    fn finish_choice(&mut self, out: &mut Vec<u8>, ch: &mut Choice, reason: Option<&str>) {
        if !ch.role_sent {
            self.delta(out, ch.index, Delta::Role, None);
            ch.role_sent = true;
        }
        if let Some(s) = ch.sources.take() {
            self.delta(out, ch.index, Delta::Content(&s), None);
        }
        self.delta(out, ch.index, Delta::Empty, reason);
        ch.finished = true;
    }
}

/// Gemini stream events → `chat.completion.chunk` SSE bytes (docs/wire-formats.md §C.5, §B.2).
///
/// Feed each event payload to [`on_event`](Self::on_event); at the end of
/// the upstream body call [`finish`](Self::finish), or
/// [`fail`](Self::fail) when the stream broke. Once `finish`/`fail` ran (or
/// `on_event` returned [`Step::Ended`]) nothing more is ever written.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: u64,
    include_usage: bool,
    show_thinking: bool,
    show_search_link: bool,
    /// Gemini `responseId` of the first event (`""` if none): tool call ids.
    response_id: String,
    w: Writer,
    choices: Vec<Choice>,
    usage: Option<Usage>,
    scratch: String,
    done: bool,
    /// Plain text/thought events take the typed path (see [`Self::fast_event`]).
    fast: bool,
}

impl StreamTranslator {
    /// A translator for one answer: `model` is echoed in every chunk,
    /// `created` is unix seconds, `include_usage` is the client's
    /// `stream_options.include_usage`.
    pub fn new(model: &str, created: u64, include_usage: bool, opts: &Options) -> Self {
        StreamTranslator {
            model: model.to_owned(),
            created,
            include_usage,
            show_thinking: opts.show_thinking,
            show_search_link: opts.show_search_link,
            response_id: String::new(),
            w: Writer {
                header: Vec::new(),
                started: false,
                args: Vec::new(),
            },
            choices: Vec::new(),
            usage: None,
            scratch: String::new(),
            done: false,
            fast: true,
        }
    }

    /// Turn the typed fast path off (tests compare both paths' output).
    #[doc(hidden)]
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast = on;
    }

    /// One Gemini event payload (the JSON after `data: `). Appends
    /// `data: {...}\n\n` chunks to `out`.
    ///
    /// Empty payloads are ignored. A payload that is not a JSON object (or
    /// array of objects), or has a top-level `error` (object, or array with
    /// such an element) → emits the error event (see [`fail`](Self::fail);
    /// code = Gemini's `status` lower-cased, else `upstream_error`) and
    /// returns [`Step::Ended`].
    pub fn on_event(&mut self, payload: &str, out: &mut Vec<u8>) -> Step {
        if self.done {
            return Step::Ended;
        }
        let trimmed = payload.trim();
        if trimmed.is_empty() || trimmed == "[DONE]" {
            return Step::Continue;
        }
        if self.fast && self.fast_event(trimmed, out) {
            return Step::Continue;
        }
        let v: Value = match serde_json::from_str(trimmed) {
            Ok(v) => v,
            Err(_) => {
                self.fail(
                    "upstream sent a stream event that is not JSON",
                    "upstream_error",
                    out,
                );
                return Step::Ended;
            }
        };
        if let Some(err) = top_error(&v) {
            let message = match err {
                Value::String(s) => Some(s.as_str()),
                _ => err.get("message").and_then(Value::as_str),
            }
            .filter(|m| !m.is_empty())
            .unwrap_or("upstream error");
            let code = err
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| "upstream_error".to_owned(), str::to_ascii_lowercase);
            self.fail(message, &code, out);
            return Step::Ended;
        }
        match &v {
            Value::Object(_) => self.event(&v, trimmed, out),
            Value::Array(items) => {
                for item in items.iter().filter(|i| i.is_object()) {
                    self.event(item, trimmed, out);
                }
            }
            _ => {
                self.fail(
                    "upstream sent a stream event that is not a JSON object",
                    "upstream_error",
                    out,
                );
                return Step::Ended;
            }
        }
        Step::Continue
    }

    /// Normal end of the upstream body: a finish chunk for every choice that
    /// did not get one (`stop`, or `tool_calls` when it had calls; a choice 0
    /// is made up if no candidate was ever seen), the usage chunk if
    /// `include_usage` (`choices: []` and `usage`), then `data: [DONE]\n\n`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.w.header.is_empty() {
            let mut h = Fnv::new();
            h.write(self.model.as_bytes());
            h.write(&self.created.to_le_bytes());
            let id = format!("chatcmpl-{:016x}", h.0);
            self.w.set_header(&id, self.created, &self.model);
        }
        if self.choices.is_empty() {
            let _ = self.slot(0);
        }
        for ch in self.choices.iter_mut().filter(|c| !c.finished) {
            let reason = finish_reason(Some("STOP"), ch.saw_call);
            self.w.finish_choice(out, ch, reason);
        }
        if self.include_usage {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&self.w.header);
            out.extend_from_slice(b"],\"usage\":");
            let usage = self.usage.unwrap_or_default().to_value();
            let _ = serde_json::to_writer(&mut *out, &usage);
            out.extend_from_slice(b"}\n\n");
            self.w.started = true;
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// The stream broke after output started (upstream error, cut
    /// connection, idle timeout): emit
    /// `data: {"error":{"message","type":"server_error","param":null,"code":<code>}}\n\n`
    /// (message passed through [`scrub`]) then `data: [DONE]\n\n`. Never
    /// emits anything afterwards. Does not count as a chunk for
    /// [`started`](Self::started).
    pub fn fail(&mut self, message: &str, code: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        let body = error_body(&scrub(message), "server_error", Some(code), None);
        out.extend_from_slice(b"data: ");
        let _ = serde_json::to_writer(&mut *out, &body);
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    }

    /// Whether any chunk has been emitted yet. When this is still `false`
    /// after an [`on_event`](Self::on_event) returned [`Step::Ended`], the
    /// caller may discard the output and answer with an HTTP error instead.
    pub fn started(&self) -> bool {
        self.w.started
    }

    /// The state of choice `index`, created on first sight; `None` once
    /// [`MAX_CHOICES`] distinct choices exist (a sane upstream sends at most 8).
    fn slot(&mut self, index: u64) -> Option<usize> {
        if let Some(i) = self.choices.iter().position(|c| c.index == index) {
            return Some(i);
        }
        if self.choices.len() >= MAX_CHOICES {
            return None;
        }
        self.choices.push(Choice {
            index,
            role_sent: false,
            saw_call: false,
            next_tool: 0,
            finished: false,
            sources: None,
        });
        Some(self.choices.len() - 1)
    }

    /// Set the chunk header from the first event: its `responseId`, else a
    /// hash of the event.
    fn open(&mut self, response_id: Option<&str>, payload: &str) {
        let id = match response_id.filter(|s| !s.is_empty()) {
            Some(r) => {
                self.response_id = r.to_owned();
                format!("chatcmpl-{r}")
            }
            None => {
                let mut h = Fnv::new();
                h.write(payload.as_bytes());
                format!("chatcmpl-{:016x}", h.0)
            }
        };
        self.w.set_header(&id, self.created, &self.model);
    }

    /// [`Self::event`] for the common event: an object whose candidates carry
    /// only text and thought parts (no calls, no grounding), read into
    /// borrowed typed structs instead of a `Value` tree. Writes exactly what
    /// `event` would; `false` (having written nothing) for anything else.
    fn fast_event(&mut self, payload: &str, out: &mut Vec<u8>) -> bool {
        use super::response::fast::{Candidate, Meta, has_lone_surrogate};
        use super::typed::{JsonStr, Obj};
        use serde::Deserialize;
        use serde::de::IgnoredAny;

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Event<'a> {
            #[serde(borrow)]
            candidates: Option<Vec<Obj<Candidate<'a>>>>,
            #[serde(borrow)]
            response_id: Option<JsonStr<'a>>,
            usage_metadata: Option<Obj<Meta>>,
            error: Option<IgnoredAny>,
        }
        // Ignored members are not validated: what `Value` would refuse goes there.
        if has_lone_surrogate(payload) {
            return false;
        }
        let Ok(Obj(ev)) = serde_json::from_str::<Obj<Event>>(payload) else {
            return false;
        };
        let cands = match &ev.candidates {
            Some(c) if !c.is_empty() && ev.error.is_none() => c,
            _ => return false,
        };
        let modelled = cands.iter().all(|Obj(c)| {
            c.grounding_metadata.is_none()
                && c.parts().iter().all(|Obj(p)| p.function_call.is_none())
        });
        if !modelled {
            return false;
        }

        if self.w.header.is_empty() {
            self.open(ev.response_id.as_ref().map(|JsonStr(r)| &**r), payload);
        }
        if let Some(Obj(m)) = &ev.usage_metadata {
            self.usage = Some(m.usage());
        }
        for (pos, Obj(cand)) in cands.iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u64);
            let Some(slot) = self.slot(index) else {
                continue;
            };
            let StreamTranslator {
                w,
                choices,
                show_thinking,
                ..
            } = self;
            let ch = &mut choices[slot];
            if ch.finished {
                continue;
            }
            if !ch.role_sent {
                w.delta(out, index, Delta::Role, None);
                ch.role_sent = true;
            }
            for Obj(part) in cand.parts() {
                let Some(JsonStr(t)) = &part.text else {
                    continue;
                };
                if t.is_empty() {
                    continue;
                }
                if part.thought != Some(true) {
                    w.delta(out, index, Delta::Content(t), None);
                } else if *show_thinking {
                    w.delta(out, index, Delta::Reasoning(t), None);
                }
            }
            if let Some(JsonStr(reason)) = &cand.finish_reason {
                let mapped = finish_reason(Some(reason), ch.saw_call);
                w.finish_choice(out, ch, mapped);
            }
        }
        true
    }

    /// One Gemini `GenerateContentResponse` object.
    fn event(&mut self, v: &Value, payload: &str, out: &mut Vec<u8>) {
        if self.w.header.is_empty() {
            self.open(v.get("responseId").and_then(Value::as_str), payload);
        }
        if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
            self.usage = Some(Usage::from_meta(Some(u)));
        }
        let candidates = as_slice(v.get("candidates"));
        if candidates.is_empty() {
            let block = v
                .get("promptFeedback")
                .and_then(|p| p.get("blockReason"))
                .filter(|r| !r.is_null());
            if let Some(block) = block {
                let Some(slot) = self.slot(0) else {
                    return;
                };
                let ch = &mut self.choices[slot];
                if !ch.finished {
                    if !ch.role_sent {
                        self.w.delta(out, ch.index, Delta::Role, None);
                        ch.role_sent = true;
                    }
                    let why = blocked_refusal(block);
                    self.w.delta(out, ch.index, Delta::Refusal(&why), None);
                    self.w.finish_choice(out, ch, Some("content_filter"));
                }
            }
            return;
        }
        for (pos, cand) in candidates.iter().enumerate() {
            self.candidate(cand, pos as u64, out);
        }
    }

    fn candidate(&mut self, cand: &Value, pos: u64, out: &mut Vec<u8>) {
        let index = cand.get("index").and_then(Value::as_u64).unwrap_or(pos);
        let Some(slot) = self.slot(index) else {
            return;
        };
        let StreamTranslator {
            w,
            choices,
            scratch,
            response_id,
            show_thinking,
            show_search_link,
            ..
        } = self;
        let ch = &mut choices[slot];
        if ch.finished {
            return;
        }
        if !ch.role_sent {
            w.delta(out, index, Delta::Role, None);
            ch.role_sent = true;
        }
        let parts = candidate_parts(cand);
        for (i, part) in parts.iter().enumerate() {
            match classify(part) {
                Part::Text(t) if !t.is_empty() => w.delta(out, index, Delta::Content(t), None),
                Part::Thought(t) if *show_thinking && !t.is_empty() => {
                    w.delta(out, index, Delta::Reasoning(t), None)
                }
                Part::Call(call) => {
                    let position = ch.next_tool;
                    let sig = call.signature.or_else(|| {
                        (position == 0)
                            .then(|| late_signature(parts.get(i + 1..).unwrap_or(&[])))
                            .flatten()
                    });
                    let id = tool_call_id(response_id, index, position, call.name, sig);
                    w.tool_call(out, index, position, &id, call.name, call.args);
                    ch.next_tool += 1;
                    ch.saw_call = true;
                }
                Part::Rendered(r) => {
                    scratch.clear();
                    render(&r, scratch);
                    w.delta(out, index, Delta::Content(scratch), None);
                }
                _ => {}
            }
        }
        if *show_search_link && let Some(gm) = cand.get("groundingMetadata") {
            let mut s = String::new();
            if render_sources(gm, &mut s) {
                ch.sources = Some(s);
            }
        }
        if let Some(reason) = cand.get("finishReason").and_then(Value::as_str) {
            let mapped = finish_reason(Some(reason), ch.saw_call);
            w.finish_choice(out, ch, mapped);
        }
    }
}

/// The `error` member of an event (`{"error":..}` or `[{"error":..}, ..]`).
fn top_error(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(m) => m.get("error").filter(|e| !e.is_null()),
        Value::Array(a) => a
            .iter()
            .find_map(|e| e.get("error").filter(|e| !e.is_null())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::response::usage;
    use serde_json::json;

    // ---- SSE parser -------------------------------------------------------

    fn parse_all(chunks: &[&[u8]], max: usize) -> (Vec<String>, Option<String>) {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = p.push(c, &mut out) {
                panic!("unexpected {e}");
            }
        }
        let last = p.finish();
        (out, last)
    }

    fn bytewise(input: &[u8], max: usize) -> (Vec<String>, Option<String>) {
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        parse_all(&chunks, max)
    }

    #[test]
    fn sse_framings() {
        let want = vec!["{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()];
        let cases: &[(&str, &[u8])] = &[
            ("crlf", b"data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\n"),
            ("lf", b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"),
            ("cr", b"data: {\"a\":1}\r\rdata: {\"b\":2}\r\r"),
            ("mixed", b"data: {\"a\":1}\r\n\ndata: {\"b\":2}\n\r\n"),
            ("mixed cr", b"data: {\"a\":1}\r\n\rdata: {\"b\":2}\r\n\n"),
            ("no space", b"data:{\"a\":1}\n\ndata:{\"b\":2}\n\n"),
            (
                "other fields and comments",
                b": keepalive\n\nevent: message\nid: 7\ndata: {\"a\":1}\nretry: 10\n\n\n\n\ndata: {\"b\":2}\n\n",
            ),
            ("leading blank lines", b"\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\n"),
        ];
        for (name, input) in cases {
            assert_eq!(parse_all(&[input], 1 << 20), (want.clone(), None), "{name}");
            assert_eq!(
                bytewise(input, 1 << 20),
                (want.clone(), None),
                "{name} bytewise"
            );
            // Every two-way split too.
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                assert_eq!(
                    parse_all(&[a, b], 1 << 20),
                    (want.clone(), None),
                    "{name} @{cut}"
                );
            }
        }
    }

    #[test]
    fn sse_multiline_and_finish() {
        let (ev, last) = parse_all(&[b"data: {\"a\":\ndata:  1}\n\ndata: tail"], 1 << 10);
        assert_eq!(ev, ["{\"a\":\n 1}"]);
        assert_eq!(last.as_deref(), Some("tail"));
        let (ev, last) = parse_all(&[b"data: x\r\n"], 1 << 10);
        assert!(ev.is_empty());
        assert_eq!(last.as_deref(), Some("x"));
        let (ev, last) = parse_all(&[b"data\n\ndata:\n\n"], 1 << 10);
        assert_eq!(ev, ["", ""]);
        assert_eq!(last, None);
        let (ev, last) = parse_all(&[b"event: only\n\n: c\n"], 1 << 10);
        assert!(ev.is_empty() && last.is_none());
        // A CR at the end of one push and LF at the start of the next is one line end.
        let (ev, _) = parse_all(
            &[b"data: a\r", b"\n", b"\r", b"\ndata: b\r", b"\r"],
            1 << 10,
        );
        assert_eq!(ev, ["a", "b"]);
        // Invalid UTF-8 is replaced, not fatal.
        let (ev, _) = parse_all(&[b"data: \xff\xfeok\n\n"], 1 << 10);
        assert_eq!(ev, ["\u{fffd}\u{fffd}ok"]);
    }

    #[test]
    fn sse_bare_json() {
        let body = b"data: {\"a\":1}\r\n\r\n{\n  \"error\": {\n    \"code\": 499,\n    \"status\": \"CANCELLED\"\n  }\n}\n";
        let (ev, last) = bytewise(body, 1 << 10);
        assert_eq!(ev, ["{\"a\":1}"]);
        assert_eq!(
            last.as_deref(),
            Some("{\n  \"error\": {\n    \"code\": 499,\n    \"status\": \"CANCELLED\"\n  }\n}")
        );
        let (ev, last) = parse_all(&[b"[{\"a\":1}\n,\r\n{\"b\":2}\n]"], 1 << 10);
        assert!(ev.is_empty());
        assert_eq!(last.as_deref(), Some("[{\"a\":1}\n,\n{\"b\":2}\n]"));
        // Junk lines that do not look like JSON are ignored.
        let (ev, last) = parse_all(&[b"hello\nworld\n\n"], 1 << 10);
        assert!(ev.is_empty() && last.is_none());
    }

    #[test]
    fn sse_oversize() {
        // Exactly at the limit is fine.
        let (ev, _) = parse_all(&[b"data: 1234\n\n"], 10);
        assert_eq!(ev, ["1234"]);
        for split in [false, true] {
            let mut p = SseParser::new(10);
            let mut out = Vec::new();
            let input: &[u8] = b"data: 1\n\ndata: 12345\n\n";
            let r = if split {
                input.chunks(1).try_for_each(|c| p.push(c, &mut out))
            } else {
                p.push(input, &mut out)
            };
            assert_eq!(r, Err(SseError::EventTooLarge { limit: 10 }));
            assert_eq!(out, ["1"]);
            assert!(p.push(b"\n\n", &mut out).is_err(), "stays failed");
            assert_eq!(p.finish(), None);
        }
        // Many small lines without a blank line are bounded too.
        let mut p = SseParser::new(100);
        let mut out = Vec::new();
        let mut res = Ok(());
        for _ in 0..100 {
            res = p.push(b"data: x\n", &mut out);
            if res.is_err() {
                break;
            }
        }
        assert!(res.is_err());
        assert_eq!(
            SseError::EventTooLarge { limit: 100 }.to_string(),
            "upstream stream event larger than 100 bytes"
        );
    }

    // ---- translator -------------------------------------------------------

    const EXAMPLE: &[&[u8]] = &[
        b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"totalTokenCount\": 5},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
        b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo there\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": 3,\"totalTokenCount\": 8},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
        b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"!\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": 4,\"totalTokenCount\": 9,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 5}],\"candidatesTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 4}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
    ];

    const HEAD: &str = r#"{"id":"chatcmpl-r-1","object":"chat.completion.chunk","created":1727346171,"model":"gemini-2.5-flash","system_fingerprint":null,"choices":["#;

    fn quiet() -> Options {
        Options {
            show_thinking: false,
            show_search_link: false,
            ..Options::default()
        }
    }

    fn new(include_usage: bool, opts: &Options) -> StreamTranslator {
        StreamTranslator::new("gemini-2.5-flash", 1727346171, include_usage, opts)
    }

    /// Feed whole events (JSON objects) and finish; returns the parsed chunks.
    fn run(events: &[&str], include_usage: bool, opts: &Options) -> Vec<Value> {
        let mut t = new(include_usage, opts);
        let mut out = Vec::new();
        for e in events {
            if t.on_event(e, &mut out) == Step::Ended {
                break;
            }
        }
        t.finish(&mut out);
        chunks(&out)
    }

    /// Split SSE output into JSON values (`[DONE]` → the string "[DONE]"),
    /// checking the framing on the way.
    fn chunks(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
        assert!(!text.contains('\r'));
        text.split_terminator("\n\n")
            .map(|ev| {
                let data = ev
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("bad event {ev:?}"));
                assert!(!data.contains('\n'), "one line per event");
                if data == "[DONE]" {
                    Value::from("[DONE]")
                } else {
                    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
                }
            })
            .collect()
    }

    /// `(choice index, delta, finish_reason)` of every choice chunk.
    fn deltas(chunks: &[Value]) -> Vec<(u64, Value, Value)> {
        chunks
            .iter()
            .filter_map(|c| c["choices"].as_array())
            .flatten()
            .map(|c| {
                (
                    c["index"].as_u64().unwrap_or(u64::MAX),
                    c["delta"].clone(),
                    c["finish_reason"].clone(),
                )
            })
            .collect()
    }

    fn role() -> Value {
        serde_json::json!({"role": "assistant", "content": ""})
    }

    fn content(s: &str) -> Value {
        serde_json::json!({ "content": s })
    }

    fn empty() -> Value {
        serde_json::json!({})
    }

    #[test]
    fn reference_example_exact_bytes() {
        let mut p = SseParser::new(1 << 20);
        let mut t = new(true, &Options::default());
        let mut payloads = Vec::new();
        let mut out = Vec::new();
        for b in EXAMPLE.concat().chunks(1) {
            if let Err(e) = p.push(b, &mut payloads) {
                panic!("{e}");
            }
            for ev in payloads.drain(..) {
                assert_eq!(t.on_event(&ev, &mut out), Step::Continue);
            }
        }
        assert_eq!(p.finish(), None);
        assert!(t.started());
        t.finish(&mut out);
        let usage = usage(Some(
            &serde_json::json!({"promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9}),
        ));
        let mut want = String::new();
        for (delta, fin) in [
            (r#"{"role":"assistant","content":""}"#, "null"),
            (r#"{"content":"Hel"}"#, "null"),
            (r#"{"content":"lo there"}"#, "null"),
            (r#"{"content":"!"}"#, "null"),
            ("{}", "\"stop\""),
        ] {
            want.push_str(&format!(
                "data: {HEAD}{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{fin}}}]}}\n\n"
            ));
        }
        want.push_str(&format!(
            "data: {HEAD}],\"usage\":{usage}}}\n\ndata: [DONE]\n\n"
        ));
        assert_eq!(String::from_utf8_lossy(&out), want);
        assert!(want.contains(r#""usage":{"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":9}"#));
        // Nothing after the end.
        let mut more = Vec::new();
        assert_eq!(t.on_event("{}", &mut more), Step::Ended);
        t.finish(&mut more);
        t.fail("x", "y", &mut more);
        assert!(more.is_empty());
    }

    #[test]
    fn several_parts_thoughts_code_image() {
        let ev = r#"{"candidates": [{"content": {"parts": [
            {"text": "Thinking...", "thought": true},
            {"text": "Let me compute it."},
            {"text": ""},
            {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_FAILED", "output": "boom"}},
            {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
            {"text": "Done."}
        ], "role": "model"}, "finishReason": "STOP", "index": 0}], "responseId": "p"}"#;
        let got = deltas(&run(&[ev], false, &Options::default()));
        let n = Value::Null;
        assert_eq!(
            got,
            vec![
                (0, role(), n.clone()),
                (
                    0,
                    serde_json::json!({"reasoning_content": "Thinking..."}),
                    n.clone()
                ),
                (0, content("Let me compute it."), n.clone()),
                (0, content("\n```python\nprint(1)\n```\n"), n.clone()),
                (
                    0,
                    content("\n```output\nExecution failed:\nboom\n```\n"),
                    n.clone()
                ),
                (
                    0,
                    content("![image](data:image/png;base64,iVBO)"),
                    n.clone()
                ),
                (0, content("Done."), n.clone()),
                (0, empty(), Value::from("stop")),
            ]
        );
        let got = deltas(&run(&[ev], false, &quiet()));
        assert_eq!(got.len(), 7, "thought dropped");
        assert_eq!(got[1].1, content("Let me compute it."));
    }

    #[test]
    fn tool_call_then_stop_in_later_event() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"text": "plan", "thought": true}]}, "index": 0}], "responseId": "fc"}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "CiIBVKhc7+/="}], "role": "model"}, "index": 0}], "responseId": "fc"}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_time"}}]}, "index": 0}], "responseId": "fc"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 38, "candidatesTokenCount": 6, "totalTokenCount": 212, "thoughtsTokenCount": 168}, "responseId": "fc"}"#,
        ];
        let all = run(&events, true, &quiet());
        let got = deltas(&all);
        let sig_id = tool_call_id("fc", 0, 0, "get_weather", Some("CiIBVKhc7+/="));
        assert!(sig_id.ends_with("_ts_CiIBVKhc7+/="));
        assert_eq!(
            got,
            vec![
                (0, role(), Value::Null),
                (
                    0,
                    serde_json::json!({"tool_calls": [{"index": 0, "id": sig_id, "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}),
                    Value::Null
                ),
                (
                    0,
                    serde_json::json!({"tool_calls": [{"index": 1, "id": tool_call_id("fc", 0, 1, "get_time", None), "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"}}]}),
                    Value::Null
                ),
                (0, empty(), Value::from("tool_calls")),
            ]
        );
        let usage_chunk = &all[all.len() - 2];
        assert_eq!(usage_chunk["choices"], serde_json::json!([]));
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 174);
        assert_eq!(usage_chunk["usage"]["prompt_tokens"], 38);
        assert_eq!(all[all.len() - 1], "[DONE]");
        for c in &all[..all.len() - 1] {
            assert_eq!(c["id"], "chatcmpl-fc");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["created"], 1727346171);
            assert_eq!(c["model"], "gemini-2.5-flash");
            assert_eq!(c["system_fingerprint"], Value::Null);
        }
    }

    #[test]
    fn signature_on_later_part() {
        // Same event: attached to the first call.
        let same = r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}, {"text": "", "thoughtSignature": "SIG"}]}, "finishReason": "STOP"}], "responseId": "s"}"#;
        let got = deltas(&run(&[same], false, &Options::default()));
        assert_eq!(
            got[1].1["tool_calls"][0]["id"],
            tool_call_id("s", 0, 0, "f", Some("SIG"))
        );
        // Later event: lost for that id (documented).
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}], "responseId": "s"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "SIG"}]}, "finishReason": "STOP"}], "responseId": "s"}"#,
        ];
        let got = deltas(&run(&events, false, &Options::default()));
        assert_eq!(
            got[1].1["tool_calls"][0]["id"],
            tool_call_id("s", 0, 0, "f", None)
        );
        assert_eq!(
            got.last().map(|d| d.2.clone()),
            Some(Value::from("tool_calls"))
        );
    }

    #[test]
    fn two_candidates_interleaved() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"text": "A1"}]}, "index": 0}, {"content": {"parts": [{"text": "B1"}]}, "index": 1}], "responseId": "n2"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "B2"}]}, "index": 1}], "responseId": "n2"}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "g"}}]}, "finishReason": "STOP", "index": 1}, {"content": {"parts": [{"text": "A2"}]}, "finishReason": "MAX_TOKENS", "index": 0}], "responseId": "n2"}"#,
        ];
        let got = deltas(&run(&events, false, &Options::default()));
        let n = Value::Null;
        assert_eq!(
            got,
            vec![
                (0, role(), n.clone()),
                (0, content("A1"), n.clone()),
                (1, role(), n.clone()),
                (1, content("B1"), n.clone()),
                (1, content("B2"), n.clone()),
                (
                    1,
                    serde_json::json!({"tool_calls": [{"index": 0, "id": tool_call_id("n2", 1, 0, "g", None), "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
                    n.clone()
                ),
                (1, empty(), Value::from("tool_calls")),
                (0, content("A2"), n.clone()),
                (0, empty(), Value::from("length")),
            ]
        );
    }

    #[test]
    fn grounding_sources_before_finish() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"text": "Oslo is about 4 °C."}]}, "index": 0, "groundingMetadata": {}}], "responseId": "g"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": " Cold."}]}, "finishReason": "STOP", "index": 0,
                "groundingMetadata": {"groundingChunks": [{"web": {"uri": "https://a.test", "title": "met.no"}}, {"web": {"uri": "https://a.test", "title": "dup"}}, {"web": {"uri": "https://b.test"}}],
                "groundingSupports": [{"segment": {"endIndex": 5}, "groundingChunkIndices": [0]}]}}], "responseId": "g"}"#,
        ];
        let got = deltas(&run(&events, false, &Options::default()));
        assert_eq!(got.len(), 5);
        assert_eq!(got[2].1, content(" Cold."));
        assert_eq!(
            got[3].1,
            content(
                "\n\nSources:\n1. [met.no](https://a.test)\n2. [https://b.test](https://b.test)"
            )
        );
        assert_eq!(got[4], (0, empty(), Value::from("stop")));
        let got = deltas(&run(&events, false, &quiet()));
        assert_eq!(got.len(), 4, "no sources when show_search_link is off");
        // Grounding on an unfinished, truncated stream still comes before the stop.
        let got = deltas(&run(
            &events[1..]
                .iter()
                .map(|e| e.replace("\"finishReason\": \"STOP\",", ""))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            false,
            &Options::default(),
        ));
        assert_eq!(got.len(), 4);
        assert!(
            got[2].1["content"]
                .as_str()
                .unwrap_or("")
                .starts_with("\n\nSources:")
        );
        assert_eq!(got[3].2, "stop");
    }

    #[test]
    fn finish_reasons_in_stream() {
        for (reason, want) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("OTHER", "stop"),
        ] {
            let ev = format!(
                r#"{{"candidates": [{{"finishReason": "{reason}", "citationMetadata": {{}}}}]}}"#
            );
            let got = deltas(&run(&[&ev], false, &Options::default()));
            assert_eq!(
                got,
                vec![(0, role(), Value::Null), (0, empty(), Value::from(want))],
                "{reason}"
            );
        }
    }

    #[test]
    fn blocked_prompt() {
        let ev = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH"}]}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}"#;
        let all = run(&[ev], true, &Options::default());
        assert_eq!(
            deltas(&all),
            vec![
                (0, role(), Value::Null),
                (
                    0,
                    json!({"refusal": "Prompt blocked by Gemini: SAFETY"}),
                    Value::Null
                ),
                (0, empty(), Value::from("content_filter"))
            ]
        );
        assert_eq!(all.len(), 5);
        assert_eq!(all[3]["usage"]["prompt_tokens"], 9);
        assert_eq!(all[4], "[DONE]");
        let id = all[0]["id"].as_str().unwrap_or("");
        assert!(id.starts_with("chatcmpl-") && id.len() == 25, "{id}");
        assert!(all.iter().take(4).all(|c| c["id"] == id));
    }

    #[test]
    fn error_payloads() {
        let first =
            r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}}], "responseId": "e"}"#;
        let cases = [
            (
                r#"{"error": {"code": 499, "message": "The operation was cancelled.", "status": "CANCELLED"}}"#,
                "The operation was cancelled.",
                "cancelled",
            ),
            (
                r#"[{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]"#,
                "The model is overloaded.",
                "unavailable",
            ),
            (r#"{"error": {}}"#, "upstream error", "upstream_error"),
            (
                r#"{"error": "boom key=AIzaSecret"}"#,
                "boom key=***",
                "upstream_error",
            ),
            (
                "not json",
                "upstream sent a stream event that is not JSON",
                "upstream_error",
            ),
            (
                "{\"candidates\": [",
                "upstream sent a stream event that is not JSON",
                "upstream_error",
            ),
            (
                "42",
                "upstream sent a stream event that is not a JSON object",
                "upstream_error",
            ),
        ];
        for (payload, message, code) in cases {
            let mut t = new(true, &Options::default());
            let mut out = Vec::new();
            assert_eq!(t.on_event(first, &mut out), Step::Continue);
            assert_eq!(t.on_event("", &mut out), Step::Continue);
            assert_eq!(t.on_event(" \n", &mut out), Step::Continue);
            assert_eq!(t.on_event(payload, &mut out), Step::Ended, "{payload}");
            assert!(t.started());
            let mark = out.len();
            assert_eq!(t.on_event(first, &mut out), Step::Ended);
            t.finish(&mut out);
            t.fail("again", "x", &mut out);
            assert_eq!(out.len(), mark, "nothing after the error");
            let all = chunks(&out);
            assert_eq!(all.len(), 4);
            assert_eq!(
                all[2],
                serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}}),
                "{payload}"
            );
            assert_eq!(all[3], "[DONE]");
        }
        // An error as the very first event: nothing started.
        let mut t = new(false, &Options::default());
        let mut out = Vec::new();
        assert_eq!(
            t.on_event(r#"{"error": {"message": "m"}}"#, &mut out),
            Step::Ended
        );
        assert!(!t.started());
        assert_eq!(chunks(&out).len(), 2);
    }

    #[test]
    fn fail_after_output() {
        let mut t = new(true, &Options::default());
        let mut out = Vec::new();
        assert!(!t.started());
        t.on_event(
            r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}"#,
            &mut out,
        );
        assert!(t.started());
        t.fail("idle timeout", "timeout", &mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.ends_with(
            "data: {\"error\":{\"code\":\"timeout\",\"message\":\"idle timeout\",\"param\":null,\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n"
        ), "{text}");
    }

    #[test]
    fn truncated_stream_finish() {
        let text_only = [
            r#"{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "usageMetadata": {"promptTokenCount": 5, "cachedContentTokenCount": 2, "totalTokenCount": 5}, "responseId": "t"}"#,
        ];
        let all = run(&text_only, true, &Options::default());
        assert_eq!(
            deltas(&all),
            vec![
                (0, role(), Value::Null),
                (0, content("Hel"), Value::Null),
                (0, empty(), Value::from("stop"))
            ]
        );
        assert_eq!(all[3]["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        assert_eq!(all[3]["usage"]["total_tokens"], 5);
        let with_call =
            [r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]}}]}"#];
        let all = run(&with_call, false, &Options::default());
        assert_eq!(all.len(), 4, "no usage chunk without include_usage");
        assert_eq!(deltas(&all)[2].2, "tool_calls");
        // Tool ids without responseId use "".
        assert_eq!(
            deltas(&all)[1].1["tool_calls"][0]["id"],
            tool_call_id("", 0, 0, "f", None)
        );
    }

    #[test]
    fn empty_stream_finish() {
        for include_usage in [false, true] {
            let all = run(&[], include_usage, &Options::default());
            assert_eq!(
                deltas(&all),
                vec![(0, role(), Value::Null), (0, empty(), Value::from("stop"))]
            );
            assert_eq!(all.len(), if include_usage { 4 } else { 3 });
            if include_usage {
                assert_eq!(all[2]["usage"]["total_tokens"], 0);
            }
            let id = all[0]["id"].as_str().unwrap_or("");
            assert!(id.starts_with("chatcmpl-") && id.len() == 25);
        }
        // Usage-only events, no candidates: same shape.
        let all = run(
            &[r#"{"usageMetadata": {"promptTokenCount": 3}}"#],
            true,
            &Options::default(),
        );
        assert_eq!(all[2]["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn deterministic_fallback_id_and_array_events() {
        let ev = r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}"#;
        let a = run(&[ev], false, &Options::default());
        let b = run(&[ev], false, &Options::default());
        assert_eq!(a, b);
        let arr = format!("[{ev}, 1, {ev}]");
        let got = deltas(&run(&[&arr], false, &Options::default()));
        assert_eq!(got.len(), 4, "role, x, x, stop");
        assert_eq!(run(&["[DONE]"], false, &Options::default()).len(), 3);
    }

    #[test]
    fn content_after_finish_is_ignored() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}"#,
        ];
        let got = deltas(&run(&events, false, &Options::default()));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn choice_count_is_bounded() {
        let cands: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"index": {i}, "content": {{"parts": [{{"text": "t"}}]}}}}"#))
            .collect();
        let ev = format!(r#"{{"candidates": [{}]}}"#, cands.join(","));
        let got = deltas(&run(&[&ev], false, &Options::default()));
        assert_eq!(
            got.len(),
            MAX_CHOICES * 3,
            "role, text, stop per kept choice"
        );
        assert!(got.iter().all(|d| d.0 < MAX_CHOICES as u64));
    }

    #[test]
    fn no_panic_on_odd_input() {
        let odd = [
            "null",
            "1",
            "\"s\"",
            "[]",
            "[null]",
            "{}",
            "[{\"error\": null}]",
            r#"{"candidates": null, "usageMetadata": 5}"#,
            r#"{"candidates": [null, 1, [], {"index": -1}, {"index": 18446744073709551615}]}"#,
            r#"{"candidates": [{"content": {"parts": [null, 1, {"text": 5}, {"functionCall": 1}, {"functionCall": {"name": [], "args": "x"}}, {"thought": true}, {"executableCode": null}, {"inlineData": {}}]}, "finishReason": ["STOP"]}]}"#,
            r#"{"candidates": [{"groundingMetadata": {"groundingChunks": {"web": 1}}, "finishReason": "STOP"}]}"#,
            r#"{"promptFeedback": {"blockReason": 1}}"#,
            r#"{"responseId": {"x": 1}, "candidates": [{}]}"#,
            "\u{0}\u{feff}",
        ];
        for opts in [Options::default(), quiet()] {
            for s in odd {
                let mut t = new(true, &opts);
                let mut out = Vec::new();
                let _ = t.on_event(s, &mut out);
                let _ = t.on_event(s, &mut out);
                t.finish(&mut out);
                let _ = chunks(&out);
            }
        }
        // Pseudo-random bytes through the parser and the translator.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"data: {}[]\"\r\n:,0123candidates\\\xff\xc3";
        for round in 0..300 {
            let mut bytes = Vec::new();
            for _ in 0..(round % 97) * 3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let mut p = SseParser::new(64);
            let mut t = new(round % 2 == 0, &Options::default());
            let mut events = Vec::new();
            let mut out = Vec::new();
            for c in bytes.chunks(1 + round % 5) {
                if p.push(c, &mut events).is_err() {
                    break;
                }
            }
            events.extend(p.finish());
            for e in &events {
                if t.on_event(e, &mut out) == Step::Ended {
                    break;
                }
            }
            t.finish(&mut out);
            let _ = chunks(&out);
        }
    }

    #[test]
    fn fast_path_writes_what_the_value_path_writes() {
        let events = [
            r#"{"candidates":[{"content":{"parts":[{"text":"**Plan**","thought":true}],"role":"model"},"index":0}],"responseId":"r1","modelVersion":"gemini-2.5-flash"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"Hello \"x\" \u00e9\n"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1,"totalTokenCount":5,"promptTokensDetails":[{"modality":"TEXT","tokenCount":4}]},"responseId":"r1"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":""},{"thoughtSignature":"c2ln"},{"text":" world"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":3,"thoughtsTokenCount":2,"totalTokenCount":9}}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"late"}]},"index":0}]}"#,
        ];
        for show_thinking in [true, false] {
            let opts = Options {
                show_thinking,
                ..Options::default()
            };
            for usage in [true, false] {
                let run = |fast: bool| {
                    let mut tr = StreamTranslator::new("m", 7, usage, &opts);
                    tr.set_fast_path(fast);
                    let mut out = Vec::new();
                    for e in events {
                        assert_eq!(tr.on_event(e, &mut out), Step::Continue);
                    }
                    tr.finish(&mut out);
                    String::from_utf8(out).unwrap()
                };
                let fast = run(true);
                assert_eq!(fast, run(false));
                assert!(fast.contains("Hello \\\"x\\\" é\\n"), "{fast}");
            }
        }
    }
}
