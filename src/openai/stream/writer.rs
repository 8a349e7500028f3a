//! The chunk writer of the stream translator: `data: {...}\n\n` events of
//! `chat.completion.chunk` objects written straight to bytes (the only
//! writer of streamed OpenAI output).

use std::io::Write as _;

use serde_json::Value;

use super::ChoiceState;
use crate::openai::response::write_arguments;

/// Writes chunks; `header` is everything of a chunk up to `"choices":[`.
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) header: Vec<u8>,
    pub(super) started: bool,
    pub(super) args: Vec<u8>,
}

/// What one chunk's `delta` carries.
pub(super) enum Delta<'a> {
    Role,
    Content(&'a str),
    Reasoning(&'a str),
    Refusal(&'a str),
    Empty,
}

/// `s` as a JSON string.
pub(super) fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

impl Writer {
    pub(super) fn set_header(&mut self, id: &str, created: u64, model: &str) {
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

    pub(super) fn open(&self, out: &mut Vec<u8>, index: u64) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.header);
        out.extend_from_slice(b"{\"index\":");
        crate::log::push_int(out, index, 1);
        out.extend_from_slice(b",\"delta\":");
    }

    pub(super) fn close(&mut self, out: &mut Vec<u8>, finish: Option<&str>) {
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(r) => json_str(out, r),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
        self.started = true;
    }

    pub(super) fn delta(
        &mut self,
        out: &mut Vec<u8>,
        index: u64,
        delta: Delta,
        finish: Option<&str>,
    ) {
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

    pub(super) fn tool_call(
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

    pub(super) fn finish_choice(
        &mut self,
        out: &mut Vec<u8>,
        ch: &mut ChoiceState,
        reason: Option<&str>,
    ) {
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
