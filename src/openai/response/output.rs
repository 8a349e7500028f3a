//! The `chat.completion` answer as serializable structs: the only writer of
//! non-streamed OpenAI answers. Members are declared in name order, so the
//! JSON has sorted keys (as OpenAI's own answers are usually compared).

use std::borrow::Cow;

use serde::Serialize;

use super::Usage;

/// A whole `chat.completion` object.
#[derive(Serialize)]
pub(super) struct Completion<'a> {
    pub(super) choices: Vec<Choice<'a>>,
    pub(super) created: u64,
    pub(super) id: String,
    pub(super) model: &'a str,
    pub(super) object: &'static str,
    pub(super) system_fingerprint: (),
    pub(super) usage: UsageOut,
}

/// One `choices[]` entry.
#[derive(Serialize)]
pub(super) struct Choice<'a> {
    pub(super) finish_reason: Option<&'static str>,
    pub(super) index: u64,
    pub(super) logprobs: Option<Logprobs<'a>>,
    pub(super) message: Message<'a>,
}

/// The assistant message of a choice.
#[derive(Serialize)]
pub(super) struct Message<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) annotations: Vec<Annotation<'a>>,
    /// `null` only when the message has tool calls and no text.
    pub(super) content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_content: Option<Cow<'a, str>>,
    pub(super) refusal: Option<String>,
    pub(super) role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<ToolCall<'a>>,
}

/// A `tool_calls[]` entry.
#[derive(Serialize)]
pub(super) struct ToolCall<'a> {
    /// The thought signature under `extra_content.google`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) extra_content: Option<ExtraContent<'a>>,
    pub(super) function: Function<'a>,
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
}

/// `extra_content` of a tool call.
#[derive(Serialize)]
pub(super) struct ExtraContent<'a> {
    pub(super) google: GoogleExtra<'a>,
}

/// `extra_content.google`.
#[derive(Serialize)]
pub(super) struct GoogleExtra<'a> {
    pub(super) thought_signature: &'a str,
}

/// The called function.
#[derive(Serialize)]
pub(super) struct Function<'a> {
    pub(super) arguments: String,
    pub(super) name: &'a str,
}

/// A `url_citation` annotation.
#[derive(Serialize)]
pub(super) struct Annotation<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) url_citation: UrlCitation<'a>,
}

/// Where a cited source supports the content (char offsets).
#[derive(Serialize)]
pub(super) struct UrlCitation<'a> {
    pub(super) end_index: usize,
    pub(super) start_index: usize,
    pub(super) title: &'a str,
    pub(super) url: &'a str,
}

/// A choice's `logprobs`.
#[derive(Serialize)]
pub(super) struct Logprobs<'a> {
    pub(super) content: Vec<TokenLogprob<'a>>,
    pub(super) refusal: (),
}

/// One token's `{bytes, logprob, token}` (with `top_logprobs` at the top level).
#[derive(Serialize)]
pub(super) struct TokenLogprob<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) logprob: f64,
    pub(super) token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_logprobs: Option<Vec<TokenLogprob<'a>>>,
}

/// OpenAI `usage`.
#[derive(Serialize)]
pub(crate) struct UsageOut {
    completion_tokens: u64,
    completion_tokens_details: ReasoningTokens,
    prompt_tokens: u64,
    prompt_tokens_details: CachedTokens,
    total_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
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
