//! A Gemini answer → Anthropic's `message` object, and the block assembler
//! both the whole answer and the stream are built with.
//!
//! Owns [`Blocks`], which turns Gemini parts, in order, into Anthropic
//! content blocks through a [`Sink`] (`start` / `delta` / `stop`, the shape
//! of Anthropic's stream events): thought parts → one `thinking` block,
//! text → `text` blocks, a `functionCall` → a `tool_use` block with its
//! arguments as one `input_json_delta`, code execution → text. Gemini's
//! `thoughtSignature` rides in the `signature` of a `thinking` block: the
//! open thinking block takes the signature of the part that follows it (or
//! the gateway's marker when there is none), and a signed call with no
//! thinking before it gets an empty thinking block of its own, so the next
//! request can give the signature back to the same call. [`translate_answer`]
//! runs a whole answer through [`Blocks`] into a [`Collect`] sink.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::stop::StopMatcher;
use super::{encode_signature, stop_reason, token_counts, usage_json};
use crate::gemini::types::{BlockReason, FinishReason, GenerateContentResponse, Part, PartKind};

/// Where [`Blocks`] puts what it makes: the stream writes events, a whole
/// answer collects the blocks.
pub trait Sink {
    /// A block opens at `index` (its empty form, e.g. `{"type":"text","text":""}`).
    fn start(&mut self, index: usize, block: Value);
    /// More of the block at `index` (`text_delta`, `thinking_delta`,
    /// `signature_delta`, `input_json_delta`).
    fn delta(&mut self, index: usize, delta: Value);
    /// The block at `index` is complete.
    fn stop(&mut self, index: usize);
}

/// The block being written.
enum Open {
    /// None.
    Nothing,
    /// A text block.
    Text(usize),
    /// A thinking block, and a signature already seen for it.
    Thinking(usize, Option<String>),
}

/// Gemini parts → Anthropic content blocks (see the module doc).
pub struct Blocks {
    /// The next block's index.
    next: usize,
    /// The block being written.
    open: Open,
    /// `tool_use` blocks made.
    pub calls: usize,
    /// Seed of generated `tool_use` ids.
    seed: String,
    /// The request's stop sequences, matched in the visible text.
    stops: Option<StopMatcher>,
    /// The stop sequence that ended the answer; later parts are dropped.
    stopped: Option<String>,
}

impl Blocks {
    /// A new assembler; `seed` (the message id) makes generated tool ids unique.
    pub fn new(seed: &str) -> Self {
        Blocks {
            next: 0,
            open: Open::Nothing,
            calls: 0,
            seed: seed.chars().take(64).collect(),
            stops: None,
            stopped: None,
        }
    }

    /// Match `stops` (the request's `stop_sequences`) in the text blocks:
    /// the text is cut at the first match and every part after it dropped.
    pub fn with_stops(mut self, stops: &[String]) -> Self {
        self.stops = StopMatcher::new(stops);
        self
    }

    /// The stop sequence that ended the answer, once one was matched.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Blocks opened so far.
    pub fn count(&self) -> usize {
        self.next
    }

    fn start(&mut self, sink: &mut dyn Sink, block: Value) -> usize {
        let i = self.next;
        self.next += 1;
        sink.start(i, block);
        i
    }

    /// Close the open thinking block with Gemini's signature `sig` (else one
    /// seen before, else the marker); close an open text block.
    fn close_with(&mut self, sig: Option<&str>, sink: &mut dyn Sink) {
        // Text held back for a stop sequence is text: a block after it
        // (or the end) shows it does not start one.
        if let Some(held) = self.stops.as_mut().map(StopMatcher::flush) {
            self.write_text(&held, sink);
        }
        match std::mem::replace(&mut self.open, Open::Nothing) {
            Open::Nothing => {}
            Open::Text(i) => sink.stop(i),
            Open::Thinking(i, seen) => {
                let signature = encode_signature(sig.or(seen.as_deref()));
                sink.delta(
                    i,
                    json!({"type": "signature_delta", "signature": signature}),
                );
                sink.stop(i);
            }
        }
    }

    /// Close whatever block is open (at the end of the answer).
    pub fn close(&mut self, sink: &mut dyn Sink) {
        self.close_with(None, sink);
    }

    /// Add visible text, matching the stop sequences in it.
    fn text(&mut self, t: &str, sig: Option<&str>, sink: &mut dyn Sink) {
        if let Open::Thinking(..) = self.open {
            self.close_with(sig, sink);
        }
        let Some(stops) = self.stops.as_mut() else {
            self.write_text(t, sink);
            return;
        };
        let (out, hit) = stops.push(t);
        self.write_text(&out, sink);
        if hit.is_some() {
            self.stops = None;
            self.stopped = hit;
        }
    }

    /// Add text that is not matched against the stop sequences (code
    /// execution), after any text held back for them.
    fn raw_text(&mut self, t: &str, sig: Option<&str>, sink: &mut dyn Sink) {
        if let Open::Thinking(..) = self.open {
            self.close_with(sig, sink);
        }
        if let Some(held) = self.stops.as_mut().map(StopMatcher::flush) {
            self.write_text(&held, sink);
        }
        self.write_text(t, sink);
    }

    /// Add text to the open text block, opening one if none is.
    fn write_text(&mut self, t: &str, sink: &mut dyn Sink) {
        if t.is_empty() {
            return;
        }
        let i = match self.open {
            Open::Text(i) => i,
            _ => {
                let i = self.start(sink, json!({"type": "text", "text": ""}));
                self.open = Open::Text(i);
                i
            }
        };
        sink.delta(i, json!({"type": "text_delta", "text": t}));
    }

    /// One Gemini part.
    pub fn part(&mut self, p: &Part, sink: &mut dyn Sink) {
        if self.stopped.is_some() {
            return;
        }
        let sig = p.signature();
        match p.kind() {
            PartKind::Thought(t) => {
                let i = match &mut self.open {
                    Open::Thinking(i, seen) => {
                        if let Some(s) = sig {
                            *seen = Some(s.to_string());
                        }
                        *i
                    }
                    _ => {
                        self.close(sink);
                        let block = json!({"type": "thinking", "thinking": "", "signature": ""});
                        let i = self.start(sink, block);
                        self.open = Open::Thinking(i, sig.map(str::to_string));
                        i
                    }
                };
                if !t.is_empty() {
                    sink.delta(i, json!({"type": "thinking_delta", "thinking": t}));
                }
            }
            PartKind::Text(t) => self.text(t, sig, sink),
            PartKind::FunctionCall(fc) => {
                let signed = match self.open {
                    Open::Thinking(..) => {
                        self.close_with(sig, sink);
                        true
                    }
                    Open::Text(_) | Open::Nothing => {
                        self.close(sink);
                        false
                    }
                };
                if let (Some(s), false) = (sig, signed) {
                    // A signed call with no thinking before it: an empty
                    // thinking block carries the signature.
                    let block = json!({"type": "thinking", "thinking": "", "signature": ""});
                    let i = self.start(sink, block);
                    self.open = Open::Thinking(i, Some(s.to_string()));
                    self.close(sink);
                }
                let name = fc.name.as_deref().unwrap_or("");
                let id = match fc.id.as_deref() {
                    Some(id) if valid_id(id) => id.to_string(),
                    _ => self.tool_id(name),
                };
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let i = self.start(sink, block);
                let args = match &fc.args {
                    Some(v @ Value::Object(_)) => v.to_string(),
                    _ => "{}".to_string(),
                };
                sink.delta(i, json!({"type": "input_json_delta", "partial_json": args}));
                sink.stop(i);
                self.calls += 1;
            }
            PartKind::ExecutableCode(c) => {
                let lang = c
                    .language
                    .as_deref()
                    .unwrap_or("python")
                    .to_ascii_lowercase();
                let code = c.code.as_deref().unwrap_or("");
                self.raw_text(&format!("\n```{lang}\n{code}\n```\n"), sig, sink);
            }
            PartKind::CodeExecutionResult(r) => {
                let out = r.output.as_deref().unwrap_or("");
                self.raw_text(&format!("\n```\n{out}\n```\n"), sig, sink);
            }
            _ => {
                if let (Some(s), Open::Thinking(_, seen)) = (sig, &mut self.open) {
                    *seen = Some(s.to_string());
                }
            }
        }
    }

    /// A `tool_use` id for the next call: `toolu_` and a hash of the message
    /// id, the call's position and name.
    fn tool_id(&self, name: &str) -> String {
        let key = format!("{}\u{0}{}\u{0}{name}", self.seed, self.calls);
        let h = crate::openai::response::hash_bytes(key.as_bytes());
        format!("toolu_gb{h:016x}{:02}", self.calls % 100)
    }
}

/// Whether a Gemini call id can be a `tool_use` id (`[A-Za-z0-9_-]+`).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A [`Sink`] that builds the content blocks of a whole message.
#[derive(Default)]
pub struct Collect {
    /// The blocks, in order.
    pub content: Vec<Value>,
    /// The `input_json_delta`s of `tool_use` blocks, by index.
    json: HashMap<usize, String>,
}

impl Sink for Collect {
    fn start(&mut self, _index: usize, block: Value) {
        self.content.push(block);
    }

    fn delta(&mut self, index: usize, delta: Value) {
        let Some(block) = self.content.get_mut(index) else {
            return;
        };
        let append = |block: &mut Value, key: &str, s: &str| {
            let old = block[key].as_str().unwrap_or("").to_string();
            block[key] = Value::String(old + s);
        };
        match delta["type"].as_str() {
            Some("text_delta") => append(block, "text", delta["text"].as_str().unwrap_or("")),
            Some("thinking_delta") => {
                append(block, "thinking", delta["thinking"].as_str().unwrap_or(""));
            }
            Some("signature_delta") => block["signature"] = delta["signature"].clone(),
            Some("input_json_delta") => self
                .json
                .entry(index)
                .or_default()
                .push_str(delta["partial_json"].as_str().unwrap_or("")),
            _ => {}
        }
    }

    fn stop(&mut self, index: usize) {
        if let Some(j) = self.json.remove(&index)
            && let Some(block) = self.content.get_mut(index)
        {
            block["input"] = serde_json::from_str(&j).unwrap_or_else(|_| json!({}));
        }
    }
}

/// What a translated answer needs besides Gemini's bytes.
pub struct AnswerCtx<'a> {
    /// The message id (`msg_…`).
    pub id: &'a str,
    /// The model as the client named it.
    pub model: &'a str,
}

/// A whole message assembled from Gemini answers, fed in order: one whole
/// answer, or the events of a stream read to its end or to a stop sequence
/// (so Gemini generates nothing past the stop).
pub struct Assembler {
    /// The message id.
    id: String,
    /// The model as the client named it.
    model: String,
    /// The content blocks.
    blocks: Blocks,
    /// What the blocks are collected in.
    sink: Collect,
    /// Gemini's finish reason, once seen.
    finish: Option<FinishReason<'static>>,
    /// The prompt was blocked.
    blocked: Option<BlockReason<'static>>,
    /// The last usage Gemini reported (its counts are cumulative).
    usage: (u64, u64, u64),
}

impl Assembler {
    /// An empty message; `stops` are the request's stop sequences.
    pub fn new(ctx: &AnswerCtx, stops: &[String]) -> Self {
        Assembler {
            id: ctx.id.to_string(),
            model: ctx.model.to_string(),
            blocks: Blocks::new(ctx.id).with_stops(stops),
            sink: Collect::default(),
            finish: None,
            blocked: None,
            usage: (0, 0, 0),
        }
    }

    /// One Gemini answer (or stream event); whether the message is over
    /// because a stop sequence matched (read no further).
    pub fn feed(&mut self, resp: &GenerateContentResponse) -> bool {
        if let Some(u) = resp.usage_metadata.as_ref() {
            self.usage = token_counts(Some(u));
        }
        if let Some(c) = resp.candidates.first() {
            for p in c.parts() {
                self.blocks.part(p, &mut self.sink);
            }
            if let Some(f) = &c.finish_reason {
                self.finish = Some(FinishReason::from_text(f.as_str().to_string().into()));
            }
        }
        if let Some(b) = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
        {
            self.blocked = Some(BlockReason::from_text(b.as_str().to_string().into()));
        }
        self.blocks.stopped().is_some()
    }

    /// One event of a Gemini stream (the JSON of a `data:` line): whether
    /// the message is over (a stop sequence matched); `Err` with Gemini's
    /// message (keys masked) when the event is an error. Events that are
    /// not answers are skipped.
    pub fn on_event(&mut self, event: &str) -> Result<bool, String> {
        match serde_json::from_str::<GenerateContentResponse>(event) {
            Ok(r) => match r.extra.get("error") {
                None => Ok(self.feed(&r)),
                Some(e) => {
                    let v: Value = serde_json::from_str(e.get()).unwrap_or(Value::Null);
                    let m = v.get("message").and_then(Value::as_str);
                    Err(crate::openai::error::scrub(
                        m.unwrap_or("Gemini's stream failed."),
                    ))
                }
            },
            Err(_) => Ok(false),
        }
    }

    /// Whether the answer is complete: Gemini said how it ended (a finish
    /// reason, a blocked prompt) or a stop sequence matched.
    pub fn complete(&self) -> bool {
        self.finish.is_some() || self.blocked.is_some() || self.blocks.stopped().is_some()
    }

    /// The `message` object (JSON bytes).
    pub fn message(mut self) -> Option<Vec<u8>> {
        self.blocks.close(&mut self.sink);
        let stopped = self.blocks.stopped().map(str::to_string);
        let reason = match stopped {
            Some(_) => "stop_sequence",
            None => stop_reason(
                self.finish.as_ref(),
                self.blocked.as_ref(),
                self.blocks.calls > 0,
            ),
        };
        let message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.sink.content,
            "stop_reason": reason,
            "stop_sequence": stopped,
            "usage": usage_json(self.usage),
        });
        serde_json::to_vec(&message).ok()
    }
}

/// A whole Gemini answer as Anthropic's `message` object (JSON bytes);
/// `None` when the bytes are not a Gemini answer.
pub fn translate_answer(gemini: &[u8], ctx: &AnswerCtx) -> Option<Vec<u8>> {
    let resp: GenerateContentResponse = serde_json::from_slice(gemini).ok()?;
    let mut whole = Assembler::new(ctx, &[]);
    whole.feed(&resp);
    whole.message()
}
