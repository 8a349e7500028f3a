//! Gemini streaming answers (`streamGenerateContent?alt=sse`) → OpenAI
//! `chat.completion.chunk` SSE bytes (docs/wire-formats.md §C.5, §B.2).
//!
//! Owns two pieces, both pure and incremental:
//!
//! * [`SseParser`] (`sse`) — splits the upstream byte stream into event
//!   payloads, whatever the chunking and line endings, with a per-event
//!   size bound.
//! * [`StreamTranslator`] — reads each Gemini event into the typed wire
//!   model ([`crate::gemini::types::GenerateContentResponse`]) and writes
//!   OpenAI chunks straight into a caller-provided `Vec<u8>` (`writer`:
//!   compact JSON, `data: ...\n\n` framing), then the finish/usage/`[DONE]`
//!   tail or an in-stream error event.
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

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::Options;
use super::error::{error_body, scrub};
use super::response::{
    Fnv, Piece, Usage, UsageOut, blocked_refusal, classify, finish_reason, late_signature, render,
    render_sources, tool_call_id,
};
use crate::gemini::lenient::{Loose, WireObject, loose_from_str};
use crate::gemini::types::{Candidate, GenerateContentResponse, Status};

mod sse;
mod writer;

#[cfg(test)]
mod tests;

pub use sse::{SseError, SseParser};
use writer::{Delta, Writer};

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
struct ChoiceState {
    index: u64,
    role_sent: bool,
    saw_call: bool,
    next_tool: u64,
    finished: bool,
    /// Sources text (grounding) to send right before the finish chunk.
    sources: Option<String>,
}

/// What one event payload was: a `GenerateContentResponse` object (read
/// in place into the caller's slot), or (a leniency) an array of them;
/// anything else is not an event.
enum Payload<'a> {
    One,
    Many(Vec<Option<GenerateContentResponse<'a>>>),
    NotObject,
}

/// An array element of a [`Payload::Many`]: `None` unless an object.
struct Element<'a>(Option<GenerateContentResponse<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Element<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<GenerateContentResponse>::loose(d).map(Element)
    }
}

/// Reads one payload, an object straight into `.0`.
struct PayloadInto<'s, 'a>(&'s mut GenerateContentResponse<'a>);

impl<'de: 'a, 'a> Visitor<'de> for PayloadInto<'_, 'a> {
    type Value = Payload<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload<'a>, A::Error> {
        self.0.read_into(map).map(|()| Payload::One)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload<'a>, A::Error> {
        let mut items = Vec::new();
        while let Some(Element(e)) = seq.next_element()? {
            items.push(e);
        }
        Ok(Payload::Many(items))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Payload<'a>, E> {
        Ok(Payload::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Payload<'a>, E> {
        Ok(Payload::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Payload<'a>, E> {
        Ok(Payload::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Payload<'a>, E> {
        Ok(Payload::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Payload<'a>, E> {
        Ok(Payload::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Payload<'a>, E> {
        Ok(Payload::NotObject)
    }
}

/// Parse `payload` (the one event in `slot`, or the array / not-an-object
/// answer); `None` when it is not JSON.
fn read_payload<'a>(
    payload: &'a str,
    slot: &mut GenerateContentResponse<'a>,
) -> Option<Payload<'a>> {
    let mut de = serde_json::Deserializer::from_str(payload);
    let p = serde::Deserializer::deserialize_any(&mut de, PayloadInto(slot)).ok()?;
    de.end().ok()?;
    Some(p)
}

/// An in-stream error (`{"error": …}`): its message and status, if the
/// event has one.
fn event_error(ev: &GenerateContentResponse) -> Option<(String, String)> {
    let raw = ev.extra.get("error").filter(|r| r.get() != "null")?;
    let (message, status) = match loose_from_str::<Option<Cow<str>>>(raw.get()) {
        Ok(Some(s)) => (Some(s.into_owned()), None),
        _ => {
            let st: Option<Status> = loose_from_str(raw.get()).ok().flatten();
            let st = st.unwrap_or_default();
            (
                st.message.map(Cow::into_owned),
                st.status.map(Cow::into_owned),
            )
        }
    };
    let message = message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "upstream error".to_owned());
    let code = status
        .filter(|s| !s.is_empty())
        .map_or_else(|| "upstream_error".to_owned(), |s| s.to_ascii_lowercase());
    Some((message, code))
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
    choices: Vec<ChoiceState>,
    usage: Option<Usage>,
    scratch: String,
    done: bool,
    /// `parallel_tool_calls: false`: only a choice's first call is sent.
    one_call: bool,
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
            one_call: false,
        }
    }

    /// With `on` (the request's `parallel_tool_calls: false`, which Gemini
    /// cannot be told), each choice keeps only its first function call;
    /// later calls of the turn are dropped.
    pub fn first_call_only(mut self, on: bool) -> Self {
        self.one_call = on;
        self
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
        let mut ev = GenerateContentResponse::default();
        let events = match read_payload(trimmed, &mut ev) {
            None => {
                let message = "upstream sent a stream event that is not JSON";
                self.fail(message, "upstream_error", out);
                return Step::Ended;
            }
            Some(Payload::NotObject) => {
                let message = "upstream sent a stream event that is not a JSON object";
                self.fail(message, "upstream_error", out);
                return Step::Ended;
            }
            Some(Payload::One) => {
                if let Some((message, code)) = event_error(&ev) {
                    self.fail(&message, &code, out);
                    return Step::Ended;
                }
                self.event(&ev, trimmed, out);
                return Step::Continue;
            }
            Some(Payload::Many(items)) => items,
        };
        if let Some((message, code)) = events.iter().flatten().find_map(event_error) {
            self.fail(&message, &code, out);
            return Step::Ended;
        }
        for ev in events.iter().flatten() {
            self.event(ev, trimmed, out);
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
            UsageOut::from(self.usage.unwrap_or_default()).write(out);
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
        self.choices.push(ChoiceState {
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

    /// One Gemini `GenerateContentResponse` event.
    fn event(&mut self, ev: &GenerateContentResponse, payload: &str, out: &mut Vec<u8>) {
        if self.w.header.is_empty() {
            self.open(ev.response_id.as_deref(), payload);
        }
        if let Some(u) = &ev.usage_metadata {
            self.usage = Some(Usage::from_meta(Some(u)));
        }
        if ev.candidates.is_empty() {
            let block = ev
                .prompt_feedback
                .as_ref()
                .and_then(|p| p.block_reason.as_ref());
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
        for (pos, cand) in ev.candidates.iter().enumerate() {
            self.candidate(cand, pos as u64, out);
        }
    }

    /// One candidate of an event: its parts as deltas, then its finish.
    fn candidate(&mut self, cand: &Candidate, pos: u64, out: &mut Vec<u8>) {
        let index = cand.index.unwrap_or(pos);
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
            one_call,
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
        let parts = cand.parts();
        for (i, part) in parts.iter().enumerate() {
            match classify(part) {
                Piece::Text(t) if !t.is_empty() => w.delta(out, index, Delta::Content(t), None),
                Piece::Thought(t) if *show_thinking && !t.is_empty() => {
                    w.delta(out, index, Delta::Reasoning(t), None)
                }
                Piece::Call(_) if *one_call && ch.next_tool > 0 => {}
                Piece::Call(call) => {
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
                Piece::Rendered(r) => {
                    scratch.clear();
                    render(&r, scratch);
                    w.delta(out, index, Delta::Content(scratch), None);
                }
                _ => {}
            }
        }
        if *show_search_link && let Some(gm) = &cand.grounding_metadata {
            let mut s = String::new();
            if render_sources(gm, &mut s) {
                ch.sources = Some(s);
            }
        }
        if let Some(reason) = &cand.finish_reason {
            let mapped = finish_reason(Some(reason.as_str()), ch.saw_call);
            w.finish_choice(out, ch, mapped);
        }
    }
}
