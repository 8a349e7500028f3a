//! The `chat.completion` answer: its structs and the small byte writer
//! that is the only writer of non-streamed OpenAI answers (keys written as
//! literals, strings escaped by `serde_json`). Members are written in name
//! order, so the JSON has sorted keys.

use std::borrow::Cow;

use super::Usage;
use crate::log::push_int;

/// `s` as a JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `s` as a JSON string, or `null`.
fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Elements separated by commas, in brackets.
fn list<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(item, out);
    }
    out.push(b']');
}

/// A whole `chat.completion` object.
pub(super) struct Completion<'a> {
    pub(super) choices: Vec<Choice<'a>>,
    pub(super) created: u64,
    pub(super) id: String,
    pub(super) model: &'a str,
    pub(super) object: &'static str,

    pub(super) usage: UsageOut,
}

/// One `choices[]` entry.
pub(super) struct Choice<'a> {
    pub(super) finish_reason: Option<&'static str>,
    pub(super) index: u64,
    pub(super) logprobs: Option<Logprobs<'a>>,
    pub(super) message: Message<'a>,
}

/// The assistant message of a choice.
pub(super) struct Message<'a> {
    pub(super) annotations: Vec<Annotation<'a>>,
    /// `null` only when the message has tool calls and no text.
    pub(super) content: Option<Cow<'a, str>>,
    pub(super) reasoning_content: Option<Cow<'a, str>>,
    pub(super) refusal: Option<String>,
    pub(super) role: &'static str,
    pub(super) tool_calls: Vec<ToolCall<'a>>,
}

/// A `tool_calls[]` entry.
pub(super) struct ToolCall<'a> {
    /// The thought signature under `extra_content.google`, when there is one.
    pub(super) extra_content: Option<ExtraContent<'a>>,
    pub(super) function: Function<'a>,
    pub(super) id: String,
    pub(super) kind: &'static str,
}

/// `extra_content` of a tool call.
pub(super) struct ExtraContent<'a> {
    pub(super) google: GoogleExtra<'a>,
}

/// `extra_content.google`.
pub(super) struct GoogleExtra<'a> {
    pub(super) thought_signature: &'a str,
}

/// The called function.
pub(super) struct Function<'a> {
    pub(super) arguments: String,
    pub(super) name: &'a str,
}

/// A `url_citation` annotation.
pub(super) struct Annotation<'a> {
    pub(super) kind: &'static str,
    pub(super) url_citation: UrlCitation<'a>,
}

/// Where a cited source supports the content (char offsets).
pub(super) struct UrlCitation<'a> {
    pub(super) end_index: usize,
    pub(super) start_index: usize,
    pub(super) title: &'a str,
    pub(super) url: &'a str,
}

/// A choice's `logprobs`.
pub(super) struct Logprobs<'a> {
    pub(super) content: Vec<TokenLogprob<'a>>,
}

/// One token's `{bytes, logprob, token}` (with `top_logprobs` at the top level).
pub(super) struct TokenLogprob<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) logprob: f64,
    pub(super) token: &'a str,
    pub(super) top_logprobs: Option<Vec<TokenLogprob<'a>>>,
}

/// OpenAI `usage`.
pub(crate) struct UsageOut {
    completion_tokens: u64,
    completion_tokens_details: ReasoningTokens,
    prompt_tokens: u64,
    prompt_tokens_details: CachedTokens,
    total_tokens: u64,
}

struct ReasoningTokens {
    reasoning_tokens: u64,
}

struct CachedTokens {
    cached_tokens: u64,
}

impl Completion<'_> {
    /// Append the answer's JSON.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"choices\":");
        list(out, &self.choices, Choice::write);
        out.extend_from_slice(b",\"created\":");
        push_int(out, self.created, 1);
        out.extend_from_slice(b",\"id\":");
        json_str(out, &self.id);
        out.extend_from_slice(b",\"model\":");
        json_str(out, self.model);
        out.extend_from_slice(b",\"object\":");
        json_str(out, self.object);
        out.extend_from_slice(b",\"system_fingerprint\":null,\"usage\":");
        self.usage.write(out);
        out.push(b'}');
    }
}

impl Choice<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"finish_reason\":");
        opt_str(out, self.finish_reason);
        out.extend_from_slice(b",\"index\":");
        push_int(out, self.index, 1);
        out.extend_from_slice(b",\"logprobs\":");
        match &self.logprobs {
            Some(l) => l.write(out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"message\":");
        self.message.write(out);
        out.push(b'}');
    }
}

impl Message<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if !self.annotations.is_empty() {
            out.extend_from_slice(b"\"annotations\":");
            list(out, &self.annotations, Annotation::write);
            out.push(b',');
        }
        out.extend_from_slice(b"\"content\":");
        opt_str(out, self.content.as_deref());
        if let Some(r) = &self.reasoning_content {
            out.extend_from_slice(b",\"reasoning_content\":");
            json_str(out, r);
        }
        out.extend_from_slice(b",\"refusal\":");
        opt_str(out, self.refusal.as_deref());
        out.extend_from_slice(b",\"role\":");
        json_str(out, self.role);
        if !self.tool_calls.is_empty() {
            out.extend_from_slice(b",\"tool_calls\":");
            list(out, &self.tool_calls, ToolCall::write);
        }
        out.push(b'}');
    }
}

impl ToolCall<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(e) = &self.extra_content {
            out.extend_from_slice(b"\"extra_content\":{\"google\":{\"thought_signature\":");
            json_str(out, e.google.thought_signature);
            out.extend_from_slice(b"}},");
        }
        out.extend_from_slice(b"\"function\":{\"arguments\":");
        json_str(out, &self.function.arguments);
        out.extend_from_slice(b",\"name\":");
        json_str(out, self.function.name);
        out.extend_from_slice(b"},\"id\":");
        json_str(out, &self.id);
        out.extend_from_slice(b",\"type\":");
        json_str(out, self.kind);
        out.push(b'}');
    }
}

impl Annotation<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let c = &self.url_citation;
        out.extend_from_slice(b"{\"type\":");
        json_str(out, self.kind);
        out.extend_from_slice(b",\"url_citation\":{\"end_index\":");
        push_int(out, c.end_index as u64, 1);
        out.extend_from_slice(b",\"start_index\":");
        push_int(out, c.start_index as u64, 1);
        out.extend_from_slice(b",\"title\":");
        json_str(out, c.title);
        out.extend_from_slice(b",\"url\":");
        json_str(out, c.url);
        out.extend_from_slice(b"}}");
    }
}

impl Logprobs<'_> {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"content\":");
        list(out, &self.content, TokenLogprob::write);
        out.extend_from_slice(b",\"refusal\":null}");
    }
}

impl TokenLogprob<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"bytes\":");
        list(out, self.bytes, |b, out| push_int(out, u64::from(*b), 1));
        out.extend_from_slice(b",\"logprob\":");
        // Written as `serde_json` writes an `f64` (shortest round trip).
        let _ = serde_json::to_writer(&mut *out, &self.logprob);
        out.extend_from_slice(b",\"token\":");
        json_str(out, self.token);
        if let Some(top) = &self.top_logprobs {
            out.extend_from_slice(b",\"top_logprobs\":");
            list(out, top, TokenLogprob::write);
        }
        out.push(b'}');
    }
}

impl UsageOut {
    /// Append the `usage` object's JSON.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"completion_tokens\":");
        push_int(out, self.completion_tokens, 1);
        out.extend_from_slice(b",\"completion_tokens_details\":{\"reasoning_tokens\":");
        push_int(out, self.completion_tokens_details.reasoning_tokens, 1);
        out.extend_from_slice(b"},\"prompt_tokens\":");
        push_int(out, self.prompt_tokens, 1);
        out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
        push_int(out, self.prompt_tokens_details.cached_tokens, 1);
        out.extend_from_slice(b"},\"total_tokens\":");
        push_int(out, self.total_tokens, 1);
        out.push(b'}');
    }
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        UsageOut {
            completion_tokens: u.completion,
            completion_tokens_details: ReasoningTokens {
                reasoning_tokens: u.reasoning,
            },
            prompt_tokens: u.prompt,
            prompt_tokens_details: CachedTokens {
                cached_tokens: u.cached,
            },
            total_tokens: u.total,
        }
    }
}
