//! Gemini SSE events → Anthropic's stream: `message_start`, then for each
//! content block `content_block_start`, `content_block_delta`s (`text_delta`,
//! `thinking_delta`, `signature_delta`, `input_json_delta`) and
//! `content_block_stop`, then `message_delta` (`stop_reason`, `usage`) and
//! `message_stop`; `ping` while Gemini is silent and `error` on a failure
//! after the first byte. Every event is written as an `event:` line and a
//! `data:` line (the `anthropic` SDK drops events without `event:`).
//!
//! Owns [`StreamTranslator`]; the blocks themselves come from
//! [`super::answer::Blocks`], as in a whole answer. Pure: events in, bytes out.

use serde_json::{Value, json};

use super::answer::{Blocks, Sink};
use super::{error_kind, stop_reason, token_counts, usage_json};
use crate::gemini::types::{BlockReason, FinishReason, GenerateContentResponse};

/// What the handler does after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    Continue,
    /// The stream is over (an error event was written, or a stop sequence
    /// matched and the closing events were): read no further.
    Ended,
}

/// Write one SSE event: `event: {name}` and `data: {json}`.
pub fn write_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// A [`Sink`] writing block events.
struct Events<'o>(&'o mut Vec<u8>);

impl Sink for Events<'_> {
    fn start(&mut self, index: usize, block: Value) {
        let data = json!({"type": "content_block_start", "index": index, "content_block": block});
        write_event(self.0, "content_block_start", &data);
    }

    fn delta(&mut self, index: usize, delta: Value) {
        let data = json!({"type": "content_block_delta", "index": index, "delta": delta});
        write_event(self.0, "content_block_delta", &data);
    }

    fn stop(&mut self, index: usize) {
        let data = json!({"type": "content_block_stop", "index": index});
        write_event(self.0, "content_block_stop", &data);
    }
}

/// Gemini's stream → Anthropic's events, one Gemini event at a time.
pub struct StreamTranslator {
    /// The message id.
    id: String,
    /// The model as the client named it.
    model: String,
    /// `message_start` was written.
    started: bool,
    /// The stream is over.
    ended: bool,
    /// The content blocks.
    blocks: Blocks,
    /// Gemini's finish reason, once seen.
    finish: Option<FinishReason<'static>>,
    /// The prompt was blocked.
    blocked: Option<BlockReason<'static>>,
    /// The last token counts `(input, cache_read, output)`.
    usage: (u64, u64, u64),
}

impl StreamTranslator {
    /// Match `stops` (the request's `stop_sequences`) in the text: at the
    /// first match the text is cut, the message ends with `stop_reason:
    /// "stop_sequence"` and [`Self::on_event`] answers [`Step::Ended`].
    pub fn with_stops(mut self, stops: &[String]) -> Self {
        self.blocks = Blocks::new(&self.id).with_stops(stops);
        self
    }

    /// A translator for message `id`, answering as `model`.
    pub fn new(id: &str, model: &str) -> Self {
        StreamTranslator {
            id: id.to_string(),
            model: model.to_string(),
            started: false,
            ended: false,
            blocks: Blocks::new(id),
            finish: None,
            blocked: None,
            usage: (0, 0, 0),
        }
    }

    /// Write `message_start` if it has not been written.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = usage_json(self.usage);
        usage["output_tokens"] = json!(1.max(self.usage.2));
        let data = json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
        }});
        write_event(out, "message_start", &data);
    }

    /// Translate one Gemini event (the JSON of a `data:` line).
    pub fn on_event(&mut self, event: &str, out: &mut Vec<u8>) -> Step {
        if self.ended {
            return Step::Ended;
        }
        let resp: GenerateContentResponse = match serde_json::from_str(event) {
            Ok(r) => r,
            Err(_) => return self.odd_event(event, out),
        };
        if let Some(e) = resp.extra.get("error") {
            let v: Value = serde_json::from_str(e.get()).unwrap_or(Value::Null);
            return self.upstream_error(&v, out);
        }
        if let Some(u) = resp.usage_metadata.as_ref() {
            self.usage = token_counts(Some(u));
        }
        self.start(out);
        if let Some(c) = resp.candidates.first() {
            let mut sink = Events(out);
            for p in c.parts() {
                self.blocks.part(p, &mut sink);
            }
            if let Some(f) = &c.finish_reason {
                self.finish = Some(owned_finish(f));
            }
        }
        if let Some(b) = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
        {
            self.blocked = Some(BlockReason::from_text(b.as_str().to_string().into()));
        }
        if self.blocks.stopped().is_some() {
            self.finish(out);
            return Step::Ended;
        }
        Step::Continue
    }

    /// An event that is not a Gemini answer: an array of them (the non-SSE
    /// framing) or an error; anything else is skipped.
    fn odd_event(&mut self, event: &str, out: &mut Vec<u8>) -> Step {
        let v: Value = serde_json::from_str(event).unwrap_or(Value::Null);
        if let Some(e) = v
            .get("error")
            .or_else(|| v.get(0).and_then(|x| x.get("error")))
        {
            return self.upstream_error(e, out);
        }
        if let Value::Array(items) = v {
            for item in items.iter().take(1024) {
                if self.on_event(&item.to_string(), out) == Step::Ended {
                    return Step::Ended;
                }
            }
        }
        Step::Continue
    }

    /// Gemini's in-stream error object → an `error` event.
    fn upstream_error(&mut self, e: &Value, out: &mut Vec<u8>) -> Step {
        let code = e.get("code").and_then(Value::as_u64).unwrap_or(500);
        let (_, kind) = error_kind(u16::try_from(code).unwrap_or(500));
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("Gemini's stream failed.");
        self.fail(&crate::openai::error::scrub(message), kind, out);
        Step::Ended
    }

    /// End the stream with an `error` event (`kind` is Anthropic's error
    /// type, e.g. `api_error`, `overloaded_error`), after stopping the open
    /// block.
    pub fn fail(&mut self, message: &str, kind: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        // Every block started is stopped, so the sequence stays well formed.
        self.blocks.close(&mut Events(out));
        let data = json!({"type": "error", "error": {"type": kind, "message": message}});
        write_event(out, "error", &data);
    }

    /// A `ping` event (sent while Gemini is silent).
    pub fn ping(&mut self, out: &mut Vec<u8>) {
        if !self.ended {
            write_event(out, "ping", &json!({"type": "ping"}));
        }
    }

    /// The upstream body ended (or a stop sequence matched): close the open
    /// block, then `message_delta` and `message_stop`; a stream that ended without Gemini's finish
    /// reason (cut short) ends with an `error` event instead.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.blocks.close(&mut Events(out));
        let stopped = self.blocks.stopped().map(str::to_string);
        if self.finish.is_none() && self.blocked.is_none() && stopped.is_none() {
            self.fail(
                "Gemini's stream ended before its answer was complete.",
                "api_error",
                out,
            );
            return;
        }
        self.ended = true;
        let reason = match stopped {
            Some(_) => "stop_sequence",
            None => stop_reason(
                self.finish.as_ref(),
                self.blocked.as_ref(),
                self.blocks.calls > 0,
            ),
        };
        let mut usage = usage_json(self.usage);
        if let Some(u) = usage.as_object_mut() {
            // Anthropic's message_delta counts are cumulative.
            u.remove("cache_creation_input_tokens");
        }
        let data = json!({"type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stopped}, "usage": usage});
        write_event(out, "message_delta", &data);
        write_event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

/// A finish reason that outlives the event it came in.
fn owned_finish(f: &FinishReason) -> FinishReason<'static> {
    FinishReason::from_text(f.as_str().to_string().into())
}
