//! Gemini answers → Responses output items and, when streaming, the typed
//! event sequence (`response.created`, `response.in_progress`,
//! `response.output_item.added`, `response.content_part.added`,
//! `response.output_text.delta` (with `"logprobs":[]`) / `.done`,
//! `response.content_part.done`, `response.reasoning_summary_part.added`,
//! `response.reasoning_summary_text.delta` / `.done`,
//! `response.reasoning_summary_part.done`,
//! `response.function_call_arguments.delta` / `.done`,
//! `response.output_item.done`, and the terminal `response.completed`,
//! `response.incomplete` or `error` + `response.failed`), every event with
//! its `sequence_number`, written as `event:` + `data:` lines.
//!
//! One [`Assembler`] serves both the whole answer (fed once, events not
//! written) and the stream (fed each Gemini event as it arrives), so the
//! output items are the same either way. Thought summaries become a
//! `reasoning` item when `reasoning.summary` was asked for; a function
//! call's thought signature is kept in the reasoning item before it, as
//! `encrypted_content` (`gmn1.` + signature), shown to the client only with
//! `include: ["reasoning.encrypted_content"]`. Pure.

use serde_json::{Map, Value, json};

use super::answer::{Ending, Parts, new_id, response_object, usage, visible};
use super::items::SIGNATURE_PREFIX;
use super::request::Settings;
use crate::gemini::types::{GenerateContentResponse, PartKind};

/// The item being written.
enum Open {
    /// None.
    Nothing,
    /// A reasoning item: its output index, id and summary text so far.
    Reasoning(usize, String, String),
    /// A message item: its output index, id and text so far.
    Message(usize, String, String),
}

/// Builds one response from Gemini answers (see the module doc).
pub struct Assembler {
    /// Whether events are written.
    emit: bool,
    /// The next `sequence_number`.
    seq: u64,
    /// `resp_…`.
    id: String,
    /// Unix seconds.
    created: u64,
    /// The request's settings.
    settings: Settings,
    /// Closed output items (stored form).
    output: Vec<Value>,
    /// The item being written.
    open: Open,
    /// The last `usageMetadata`, as Responses usage.
    usage: Option<Value>,
    /// What the last finish reason means.
    finish: Ending,
    /// The prompt was blocked.
    blocked: bool,
    /// `response.created` was written.
    started: bool,
    /// A terminal event was written.
    done: bool,
    /// Item counter for ids.
    items: usize,
    /// `function_call` items made.
    calls: usize,
}

impl Assembler {
    /// A new response; `emit` writes the event sequence.
    pub fn new(settings: Settings, created: u64, emit: bool) -> Assembler {
        Assembler {
            emit,
            seq: 0,
            id: new_id("resp"),
            created,
            settings,
            output: Vec::new(),
            open: Open::Nothing,
            usage: None,
            finish: Ending::Completed,
            blocked: false,
            started: false,
            done: false,
            items: 0,
            calls: 0,
        }
    }

    /// The response id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The closed output items (stored form, with `encrypted_content`).
    pub fn output(&self) -> &[Value] {
        &self.output
    }

    /// Write one event (when emitting).
    fn event(&mut self, out: &mut Vec<u8>, ty: &str, fields: Value) {
        if !self.emit {
            return;
        }
        let mut m = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("type".into(), Value::from(ty));
        m.insert("sequence_number".into(), Value::from(self.seq));
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let _ = serde_json::to_writer(&mut *out, &Value::Object(m));
        out.extend_from_slice(b"\n\n");
    }

    /// The response object now.
    pub fn snapshot(&self, ending: Option<&Ending>) -> Value {
        response_object(&Parts {
            id: &self.id,
            created: self.created,
            settings: &self.settings,
            output: &self.output,
            ending,
            usage: if ending.is_some() {
                Some(self.usage.as_ref().unwrap_or(&Value::Null))
            } else {
                None
            },
        })
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let snap = self.snapshot(None);
        self.event(out, "response.created", json!({"response": snap}));
        self.event(out, "response.in_progress", json!({"response": snap}));
    }

    /// A new item id with this prefix.
    fn item_id(&mut self, prefix: &str) -> String {
        self.items += 1;
        format!("{prefix}_{}{:02}", &self.id[5..], self.items)
    }

    /// Feed one Gemini answer (a whole answer, or one stream event's JSON).
    /// Whether it ended the response (an error event).
    pub fn feed(&mut self, data: &str, out: &mut Vec<u8>) -> bool {
        let parsed: Result<GenerateContentResponse, _> = serde_json::from_str(data);
        let error_message = || {
            serde_json::from_str::<Value>(data).ok().and_then(|v| {
                v.get("error")
                    .or_else(|| v.get(0).and_then(|e| e.get("error")))
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        };
        let Ok(r) = parsed else {
            let message =
                error_message().unwrap_or_else(|| "Gemini sent an event that is not JSON.".into());
            self.fail(&crate::openai::error::scrub(&message), "server_error", out);
            return true;
        };
        // An error event mid-stream (`{"error": {…}}`) reads as an answer
        // with no candidates: it fails the response, never passes silently.
        if r.candidates.is_empty()
            && r.usage_metadata.is_none()
            && let Some(message) = error_message()
        {
            self.fail(&crate::openai::error::scrub(&message), "server_error", out);
            return true;
        }
        self.start(out);
        if r.usage_metadata.is_some() {
            self.usage = Some(usage(r.usage_metadata.as_ref()));
        }
        if r.prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some())
        {
            self.blocked = true;
        }
        let Some(c) = r.candidates.first() else {
            return false;
        };
        for part in c.parts() {
            let sig = part.signature();
            match part.kind() {
                PartKind::Thought(t) if self.settings.summary && !t.is_empty() => {
                    self.reasoning_delta(t, out);
                }
                PartKind::Text(t) => self.text_delta(t, out),
                // `parallel_tool_calls: false`: the turn's first call only.
                PartKind::FunctionCall(_) if self.settings.one_call && self.calls > 0 => {}
                PartKind::FunctionCall(fc) => {
                    self.calls += 1;
                    let name = fc.name.as_deref().unwrap_or("");
                    let args = fc
                        .args
                        .as_ref()
                        .map_or_else(|| "{}".to_string(), Value::to_string);
                    self.function_call(name, &args, sig, out);
                }
                PartKind::ExecutableCode(code) => {
                    let src = code.code.as_deref().unwrap_or("");
                    self.text_delta(&format!("\n```python\n{src}\n```\n"), out);
                }
                PartKind::CodeExecutionResult(res) => {
                    let o = res.output.as_deref().unwrap_or("");
                    self.text_delta(&format!("\n```output\n{o}\n```\n"), out);
                }
                _ => {}
            }
        }
        if let Some(f) = &c.finish_reason {
            self.finish = Ending::of(Some(f), false);
        }
        false
    }

    /// Close the open item (a reasoning item gets `signature`).
    fn close(&mut self, signature: Option<&str>, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.open, Open::Nothing) {
            Open::Nothing => {}
            Open::Reasoning(idx, id, text) => {
                let part = json!({"type": "summary_text", "text": text});
                let at = json!({"item_id": id, "output_index": idx, "summary_index": 0});
                self.event(
                    out,
                    "response.reasoning_summary_text.done",
                    merge(&at, json!({"text": text})),
                );
                self.event(
                    out,
                    "response.reasoning_summary_part.done",
                    merge(&at, json!({"part": part})),
                );
                let mut item = json!({"id": id, "type": "reasoning", "summary": [part]});
                if let Some(s) = signature {
                    item["encrypted_content"] = Value::from(format!("{SIGNATURE_PREFIX}{s}"));
                }
                self.item_done(idx, item, out);
            }
            Open::Message(idx, id, text) => {
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                let at = json!({"item_id": id, "output_index": idx, "content_index": 0});
                self.event(
                    out,
                    "response.output_text.done",
                    merge(&at, json!({"text": text, "logprobs": []})),
                );
                self.event(
                    out,
                    "response.content_part.done",
                    merge(&at, json!({"part": part})),
                );
                let status = match self.ending() {
                    Ending::Incomplete(_) => "incomplete",
                    _ => "completed",
                };
                let item = json!({"id": id, "type": "message", "status": status,
                    "role": "assistant", "content": [part]});
                self.item_done(idx, item, out);
            }
        }
    }

    /// `response.output_item.done` and the item kept.
    fn item_done(&mut self, idx: usize, item: Value, out: &mut Vec<u8>) {
        let shown = visible(&item, self.settings.encrypted);
        self.event(
            out,
            "response.output_item.done",
            json!({"output_index": idx, "item": shown}),
        );
        self.output.push(item);
    }

    /// Thought summary text.
    fn reasoning_delta(&mut self, t: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Open::Reasoning(..)) {
            self.close(None, out);
            let (idx, id) = (self.output.len(), self.item_id("rs"));
            let item = json!({"id": id, "type": "reasoning", "summary": []});
            self.event(
                out,
                "response.output_item.added",
                json!({"output_index": idx, "item": item}),
            );
            self.event(out, "response.reasoning_summary_part.added", json!({"item_id": id,
                "output_index": idx, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
            self.open = Open::Reasoning(idx, id, String::new());
        }
        if let Open::Reasoning(idx, id, text) = &mut self.open {
            text.push_str(t);
            let ev = json!({"item_id": id, "output_index": *idx, "summary_index": 0, "delta": t});
            self.event(out, "response.reasoning_summary_text.delta", ev);
        }
    }

    /// Answer text.
    fn text_delta(&mut self, t: &str, out: &mut Vec<u8>) {
        if t.is_empty() {
            return;
        }
        if !matches!(self.open, Open::Message(..)) {
            self.close(None, out);
            let (idx, id) = (self.output.len(), self.item_id("msg"));
            let item = json!({"id": id, "type": "message", "status": "in_progress",
                "role": "assistant", "content": []});
            self.event(
                out,
                "response.output_item.added",
                json!({"output_index": idx, "item": item}),
            );
            self.event(out, "response.content_part.added", json!({"item_id": id, "output_index": idx,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}));
            self.open = Open::Message(idx, id, String::new());
        }
        if let Open::Message(idx, id, text) = &mut self.open {
            text.push_str(t);
            let ev = json!({"item_id": id, "output_index": *idx, "content_index": 0,
                "delta": t, "logprobs": []});
            self.event(out, "response.output_text.delta", ev);
        }
    }

    /// A whole function call: its thought signature goes to the reasoning
    /// item before it (the open one, or a new one without summary).
    fn function_call(&mut self, name: &str, args: &str, sig: Option<&str>, out: &mut Vec<u8>) {
        if matches!(self.open, Open::Reasoning(..)) {
            self.close(sig, out);
        } else {
            self.close(None, out);
            if let Some(s) = sig {
                let (idx, id) = (self.output.len(), self.item_id("rs"));
                let added = json!({"id": id, "type": "reasoning", "summary": []});
                self.event(
                    out,
                    "response.output_item.added",
                    json!({"output_index": idx, "item": added}),
                );
                let item = json!({"id": id, "type": "reasoning", "summary": [],
                    "encrypted_content": format!("{SIGNATURE_PREFIX}{s}")});
                self.item_done(idx, item, out);
            }
        }
        let (idx, id) = (self.output.len(), self.item_id("fc"));
        let call_id = format!("call_{}", &id[3..]);
        let added = json!({"id": id, "type": "function_call", "status": "in_progress",
            "call_id": call_id, "name": name, "arguments": ""});
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": idx, "item": added}),
        );
        let at = json!({"item_id": id, "output_index": idx});
        self.event(
            out,
            "response.function_call_arguments.delta",
            merge(&at, json!({"delta": args})),
        );
        self.event(
            out,
            "response.function_call_arguments.done",
            merge(&at, json!({"arguments": args, "name": name})),
        );
        let item = json!({"id": id, "type": "function_call", "status": "completed",
            "call_id": call_id, "name": name, "arguments": args});
        self.item_done(idx, item, out);
    }

    /// The end of Gemini's answer: close the open item and write the
    /// terminal event. The final response object.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Value {
        if self.done {
            return self.snapshot(Some(&Ending::Completed));
        }
        self.start(out);
        self.close(None, out);
        self.done = true;
        let ending = self.ending();
        if self.usage.is_none() {
            self.usage = Some(usage(None));
        }
        let snap = self.snapshot(Some(&ending));
        let ty = match ending {
            Ending::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        self.event(out, ty, json!({"response": snap}));
        snap
    }

    /// A failure: an `error` event and `response.failed`.
    pub fn fail(&mut self, message: &str, code: &str, out: &mut Vec<u8>) -> Value {
        self.start(out);
        self.close(None, out);
        self.done = true;
        let ending = Ending::Failed(code.to_string(), message.to_string());
        self.event(
            out,
            "error",
            json!({"code": code, "message": message, "param": null}),
        );
        let snap = self.snapshot(Some(&ending));
        self.event(out, "response.failed", json!({"response": snap}));
        snap
    }

    /// How the answer ended so far.
    fn ending(&self) -> Ending {
        if self.blocked {
            Ending::Incomplete("content_filter")
        } else {
            self.finish.clone()
        }
    }

    /// Whether a terminal event was written.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// `a`'s members with `b`'s added.
fn merge(a: &Value, b: Value) -> Value {
    let mut m = a.as_object().cloned().unwrap_or_default();
    if let Value::Object(b) = b {
        m.extend(b);
    }
    Value::Object(m)
}
