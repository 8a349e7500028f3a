//! The typed fast path for non-streamed answers, and the typed pieces the
//! stream translator's fast path shares.
//!
//! The common answer shape is deserialized into borrowed typed structs and
//! serialized straight to bytes, without building `Value` trees; answers it
//! does not model go to the `Value` path (see
//! [`super::translate_response_bytes`]).

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::openai::typed::{JsonStr, Obj};

use super::{ResponseCtx, Usage, finish_reason, tool_call_id, write_arguments};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(borrow)]
    candidates: Option<Vec<Obj<Candidate<'a>>>>,
    #[serde(borrow)]
    response_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    prompt_feedback: Option<Obj<Feedback<'a>>>,
    usage_metadata: Option<Obj<Meta>>,
}

/// A candidate (of an answer, or of a stream event).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate<'a> {
    #[serde(borrow)]
    pub(crate) content: Option<Obj<Content<'a>>>,
    #[serde(borrow)]
    pub(crate) finish_reason: Option<JsonStr<'a>>,
    pub(crate) index: Option<u64>,
    // Not modelled: their presence sends the answer to the `Value` path.
    pub(crate) grounding_metadata: Option<IgnoredAny>,
    logprobs_result: Option<IgnoredAny>,
}

impl<'a> Candidate<'a> {
    /// `content.parts`, empty when missing.
    pub(crate) fn parts(&self) -> &[Obj<FastPart<'a>>] {
        self.content
            .as_ref()
            .and_then(|Obj(c)| c.parts.as_deref())
            .unwrap_or(&[])
    }
}

/// A candidate's `content`.
#[derive(Deserialize)]
pub(crate) struct Content<'a> {
    #[serde(borrow)]
    pub(crate) parts: Option<Vec<Obj<FastPart<'a>>>>,
}

/// A part the fast paths model; any other member fails the parse.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FastPart<'a> {
    #[serde(borrow)]
    pub(crate) text: Option<JsonStr<'a>>,
    pub(crate) thought: Option<bool>,
    #[serde(borrow)]
    thought_signature: Option<JsonStr<'a>>,
    #[serde(borrow)]
    pub(crate) function_call: Option<Obj<FnCall<'a>>>,
}

/// A `functionCall` part's call.
#[derive(Deserialize)]
pub(crate) struct FnCall<'a> {
    #[serde(borrow)]
    name: Option<JsonStr<'a>>,
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Feedback<'a> {
    #[serde(borrow)]
    block_reason: Option<JsonStr<'a>>,
}

/// `usageMetadata`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    prompt_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    total_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

impl Meta {
    /// [`Usage::from_meta`] over typed counts.
    pub(crate) fn usage(&self) -> Usage {
        let n = |v: Option<u64>| v.unwrap_or(0);
        let prompt = n(self.prompt_token_count).saturating_add(n(self.tool_use_prompt_token_count));
        let reasoning = n(self.thoughts_token_count);
        let completion = n(self.candidates_token_count).saturating_add(reasoning);
        Usage {
            prompt,
            completion,
            total: self
                .total_token_count
                .unwrap_or_else(|| prompt.saturating_add(completion)),
            cached: n(self.cached_content_token_count),
            reasoning,
        }
    }
}

// Output, fields in the (sorted) order `Value` serializes them.

#[derive(Serialize)]
struct Out<'a> {
    choices: Vec<Choice<'a>>,
    created: u64,
    id: String,
    model: &'a str,
    object: &'static str,
    system_fingerprint: (),
    usage: OutUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    finish_reason: Option<&'static str>,
    index: u64,
    logprobs: (),
    message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<Cow<'a, str>>,
    refusal: Option<String>,
    role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<Extra<'a>>,
    function: Function<'a>,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Extra<'a> {
    google: Google<'a>,
}

#[derive(Serialize)]
struct Google<'a> {
    thought_signature: Cow<'a, str>,
}

#[derive(Serialize)]
struct Function<'a> {
    arguments: String,
    name: Cow<'a, str>,
}

#[derive(Serialize)]
struct OutUsage {
    completion_tokens: u64,
    completion_tokens_details: Reasoning,
    prompt_tokens: u64,
    prompt_tokens_details: Cached,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Reasoning {
    reasoning_tokens: u64,
}

#[derive(Serialize)]
struct Cached {
    cached_tokens: u64,
}

/// Whether the text may have a lone `\uD800`–`\uDFFF` escape: `Value`
/// parsing rejects those, while ignored fields here are not checked.
/// (An escaped backslash before `u` can only cause a needless fallback.)
pub(crate) fn has_lone_surrogate(text: &str) -> bool {
    // Most answers have no `\u` escape at all: one vectorized search.
    if !text.contains("\\u") {
        return false;
    }
    let s = text.as_bytes();
    let escape = |i: usize| -> Option<u32> {
        let w = s.get(i..i + 6)?;
        if w[0] != b'\\' || w[1] != b'u' {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(&w[2..]).ok()?, 16).ok()
    };
    let mut i = 0;
    while let Some(at) = text.get(i..).and_then(|rest| rest.find('\\')) {
        i += at;
        match escape(i) {
            Some(0xD800..=0xDBFF) => match escape(i + 6) {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => return true,
            },
            Some(0xDC00..=0xDFFF) => return true,
            _ => i += 1,
        }
    }
    false
}

fn push<'a>(acc: &mut Cow<'a, str>, t: Cow<'a, str>) {
    if t.is_empty() {
    } else if acc.is_empty() {
        *acc = t;
    } else {
        acc.to_mut().push_str(&t);
    }
}

fn sig<'b, 'a>(p: &'b FastPart<'a>) -> Option<&'b Cow<'a, str>> {
    p.thought_signature
        .as_ref()
        .map(|s| &s.0)
        .filter(|s| !s.is_empty())
}

/// [`super::late_signature`] over typed parts.
fn late_signature<'b, 'a>(rest: &'b [Obj<FastPart<'a>>]) -> Option<&'b Cow<'a, str>> {
    let mut found = None;
    for Obj(p) in rest {
        match sig(p) {
            Some(_) if p.function_call.is_some() => return None,
            Some(s) if found.is_none() => found = Some(s),
            _ => {}
        }
    }
    found
}

/// The fast translation, `None` when the answer needs the `Value` path.
pub(super) fn translate(gemini: &[u8], ctx: &ResponseCtx) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(gemini).ok()?;
    if has_lone_surrogate(text) {
        return None;
    }
    let Obj(answer) = serde_json::from_str::<Obj<Answer>>(text).ok()?;
    let response_id = answer.response_id.map(|s| s.0).filter(|s| !s.is_empty())?;
    let mut candidates = answer.candidates.unwrap_or_default();
    if candidates
        .iter()
        .any(|Obj(c)| c.grounding_metadata.is_some() || c.logprobs_result.is_some())
    {
        return None;
    }

    let mut choices = Vec::with_capacity(candidates.len().max(1));
    for (pos, Obj(cand)) in candidates.iter_mut().enumerate() {
        choices.push(candidate_choice(cand, pos as u64, &response_id, ctx));
    }
    if choices.is_empty() {
        let block = answer.prompt_feedback.and_then(|Obj(p)| p.block_reason);
        choices.push(empty_choice(block));
    }

    let u = match answer.usage_metadata {
        Some(Obj(m)) => m.usage(),
        None => Usage::default(),
    };

    let out = Out {
        choices,
        created: ctx.created,
        id: format!("chatcmpl-{response_id}"),
        model: ctx.model,
        object: "chat.completion",
        system_fingerprint: (),
        usage: out_usage(u),
    };
    let mut buf = Vec::with_capacity(gemini.len() / 2 + 512);
    serde_json::to_writer(&mut buf, &out).ok()?;
    Some(buf)
}

/// One candidate (at position `pos` of the answer) as an OpenAI `choice`;
/// takes the candidate's parts.
fn candidate_choice<'a>(
    cand: &mut Candidate<'a>,
    pos: u64,
    response_id: &str,
    ctx: &ResponseCtx,
) -> Choice<'a> {
    let index = cand.index.unwrap_or(pos);
    let mut parts = cand
        .content
        .take()
        .and_then(|Obj(c)| c.parts)
        .unwrap_or_default();
    let mut content: Cow<str> = Cow::Borrowed("");
    let mut reasoning: Cow<str> = Cow::Borrowed("");
    let mut tool_calls = Vec::new();
    for i in 0..parts.len() {
        let Obj(part) = &parts[i];
        if let Some(Obj(fc)) = &part.function_call {
            let position = tool_calls.len() as u64;
            let signature = sig(part).or_else(|| {
                (position == 0)
                    .then(|| late_signature(&parts[i + 1..]))
                    .flatten()
            });
            tool_calls.push(tool_call(fc, response_id, index, position, signature));
            continue;
        }
        let thought = part.thought == Some(true);
        let Some(JsonStr(t)) = parts[i].0.text.take() else {
            continue;
        };
        if !thought {
            push(&mut content, t);
        } else if ctx.opts.show_thinking {
            push(&mut reasoning, t);
        }
    }
    let had_calls = !tool_calls.is_empty();
    let reason = finish_reason(cand.finish_reason.as_ref().map(|s| &*s.0), had_calls);
    Choice {
        finish_reason: reason,
        index,
        logprobs: (),
        message: Message {
            content: (!(content.is_empty() && had_calls)).then_some(content),
            reasoning_content: (ctx.opts.show_thinking && !reasoning.is_empty())
                .then_some(reasoning),
            refusal: None,
            role: "assistant",
            tool_calls,
        },
    }
}

/// The `tool_calls[]` entry for call number `position` of candidate `index`.
fn tool_call<'a>(
    fc: &FnCall<'a>,
    response_id: &str,
    index: u64,
    position: u64,
    signature: Option<&Cow<'a, str>>,
) -> ToolCall<'a> {
    let name = fc.name.as_ref().map_or(Cow::Borrowed(""), |n| n.0.clone());
    let mut args = Vec::new();
    write_arguments(fc.args.as_ref(), &mut args);
    ToolCall {
        id: tool_call_id(response_id, index, position, &name, signature.map(|s| &**s)),
        extra_content: signature.map(|s| Extra {
            google: Google {
                thought_signature: s.clone(),
            },
        }),
        function: Function {
            arguments: String::from_utf8_lossy(&args).into_owned(),
            name,
        },
        kind: "function",
    }
}

/// The single choice of an answer without candidates: a refusal when the
/// prompt was blocked.
fn empty_choice<'a>(block: Option<JsonStr<'_>>) -> Choice<'a> {
    let (refusal, reason) = match block {
        Some(JsonStr(b)) => (
            Some(format!("Prompt blocked by Gemini: {b}")),
            "content_filter",
        ),
        None => (None, "stop"),
    };
    Choice {
        finish_reason: Some(reason),
        index: 0,
        logprobs: (),
        message: Message {
            content: Some(Cow::Borrowed("")),
            reasoning_content: None,
            refusal,
            role: "assistant",
            tool_calls: Vec::new(),
        },
    }
}

/// The answer's `usage` object.
fn out_usage(u: Usage) -> OutUsage {
    OutUsage {
        completion_tokens: u.completion,
        completion_tokens_details: Reasoning {
            reasoning_tokens: u.reasoning,
        },
        prompt_tokens: u.prompt,
        prompt_tokens_details: Cached {
            cached_tokens: u.cached,
        },
        total_tokens: u.total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Options;
    use crate::openai::response::tests::{BLOCKED, CALL, CODE, GROUNDED, PLAIN, quiet, run};
    use crate::openai::response::{fast, translate_response, translate_response_bytes};
    /// Fast path output for `body`, or `None` when it fell back.
    fn fast_out(body: &str, opts: &Options) -> Option<Value> {
        let ctx = ResponseCtx {
            model: "gemini-2.5-flash",
            created: 1760000000,
            opts,
        };
        fast::translate(body.as_bytes(), &ctx).map(|b| {
            serde_json::from_slice(&b).unwrap_or_else(|e| panic!("fast output not JSON: {e}"))
        })
    }

    /// `translate_response_bytes` output equals the `Value` path's.
    fn check_bytes(body: &str, opts: &Options) {
        let ctx = ResponseCtx {
            model: "gemini-2.5-flash",
            created: 1760000000,
            opts,
        };
        let got = translate_response_bytes(body.as_bytes(), &ctx);
        let want = serde_json::from_str::<Value>(body)
            .ok()
            .map(|v| serde_json::to_vec(&translate_response(&v, &ctx)).unwrap_or_default());
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy),
            want.as_deref().map(String::from_utf8_lossy),
            "{body}"
        );
    }

    #[test]
    fn fast_path_matches_value_path() {
        let blocked = BLOCKED.replacen('{', r#"{"responseId": "b", "#, 1);
        let cases = [
            PLAIN,
            CALL,
            &blocked,
            r#"{"candidates": [{"content": {"parts": [{"text": "Hello! I'm doing well, thanks for asking. How can I help you today?"}], "role": "model"}, "finishReason": "STOP", "index": 0, "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}], "citationMetadata": {"citationSources": [{"startIndex": 1}]}, "avgLogprobs": -0.2}], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 16, "totalTokenCount": 23, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}]}, "modelVersion": "gemini-2.5-flash", "responseId": "abc123", "createTime": "2025-01-01T00:00:00Z"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "line1\nline \"2\" \u00e9 \ud83d\ude00 "}, {"text": ""}, {"text": "part3"}]}, "finishReason": "STOP"}], "responseId": "esc"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "Thinking about it…", "thought": true}, {"text": "more \"thought\"\n", "thought": true}, {"text": "Answer."}, {"text": "tail", "thought": false}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 31, "candidatesTokenCount": 11, "thoughtsTokenCount": 48, "totalTokenCount": 90}, "responseId": "th"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "only thought", "thought": true}, {"thought": true}]}, "finishReason": "STOP"}], "responseId": "th2"}"#,
            r#"{"candidates": [{"content": {"parts": [
                {"functionCall": {"name": "get_weather", "args": {"zeta": 1, "city": "Oslo", "nested": {"b": [1, 2.5, "x"], "a": null}}}, "thoughtSignature": "c2lnMQ=="},
                {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Oslo"}, "id": "x"}},
                {"functionCall": {"name": "noargs"}},
                {"functionCall": {"name": "nullargs", "args": null}, "thoughtSignature": ""}
              ], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 96, "toolUsePromptTokenCount": 160, "thoughtsTokenCount": 86, "cachedContentTokenCount": 3}, "responseId": "tools"}"#,
            r#"{"candidates": [{"content": {"parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "f", "args": {}}},
                {"text": "", "thoughtSignature": "bGF0ZQ=="}
              ]}, "finishReason": "STOP"}], "responseId": "late"}"#,
            r#"{"candidates": [{"content": {"parts": [
                {"functionCall": {"name": "f", "args": {}}},
                {"text": "", "thoughtSignature": "bGF0ZQ=="},
                {"functionCall": {"name": "g", "args": {}}, "thoughtSignature": "b3du"}
              ]}, "finishReason": "STOP"}], "responseId": "late2"}"#,
            r#"{"candidates": [
                {"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
                {"content": {"parts": [{"text": "B"}, {"functionCall": {"name": "f"}}]}, "finishReason": "STOP", "index": 1}
              ], "responseId": "two", "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 7, "totalTokenCount": 107}}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "cut off mid"}]}, "finishReason": "MAX_TOKENS", "index": 0}], "responseId": "mt", "usageMetadata": {"promptTokenCount": 5}}"#,
            r#"{"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]}], "responseId": "s"}"#,
            r#"{"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}], "responseId": "r"}"#,
            r#"{"candidates": [{"content": {"parts": []}}], "responseId": "nofinish"}"#,
            r#"{"candidates": [], "responseId": "empty"}"#,
            r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "responseId": "blk"}"#,
            r#"{"promptFeedback": {"blockReason": null}, "responseId": "blk2"}"#,
            r#"{"candidates": null, "responseId": "n", "usageMetadata": null}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}, "index": 18446744073709551615, "groundingMetadata": null, "logprobsResult": null}], "responseId": "big", "usageMetadata": {"promptTokenCount": 18446744073709551615, "toolUsePromptTokenCount": 5}}"#,
        ];
        for body in cases {
            for opts in [Options::default(), quiet()] {
                assert!(fast_out(body, &opts).is_some(), "fell back: {body}");
                let want = run(body, &opts);
                assert_eq!(fast_out(body, &opts), Some(want), "{body}");
                check_bytes(body, &opts);
            }
        }
    }

    #[test]
    fn fast_path_falls_back() {
        let cases = [
            GROUNDED,
            CODE,
            BLOCKED,
            r#"{"responseId": "o", "x": "\udc00"}"#,
            r#"{"responseId": "o", "x": "\ud800\u0041"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP", "logprobsResult": {"chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]}}], "responseId": "lp"}"#,
            r#"{"candidates": [{"content": {"parts": [{"executableCode": {"language": "PYTHON", "code": "print(1)"}}, {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}]}}], "responseId": "c"}"#,
            r#"{"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}], "responseId": "i"}"#,
            r#"{"candidates": [{"content": {"parts": [{"fileData": {"fileUri": "x"}}]}}], "responseId": "f"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}], "responseId": ""}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}], "responseId": 5}"#,
            r#"{"candidates": [{"content": {"parts": [null, {"text": 5}]}}], "responseId": "o"}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": ["f", {}]}]}}], "responseId": "o"}"#,
            r#"[[{"content": {"parts": [{"text": "x"}]}}], "id"]"#,
            r#"{"candidates": [["x"]], "responseId": "o"}"#,
            r#"{"candidates": [{"index": -1}], "responseId": "o"}"#,
            r#"{"candidates": [{"index": 1.0}], "responseId": "o"}"#,
            r#"{"candidates": [], "responseId": "o", "usageMetadata": {"totalTokenCount": 1.5}}"#,
            r#"{"promptFeedback": {"blockReason": {"x": 1}}, "responseId": "o"}"#,
            r#"{"responseId": "o", "responseId": "p"}"#,
            r#"{"responseId": "o", "x": "\ud800"}"#,
            r#"{"responseId": "o" "#,
            "not json",
        ];
        for body in cases {
            for opts in [Options::default(), quiet()] {
                assert!(fast_out(body, &opts).is_none(), "took fast path: {body}");
                check_bytes(body, &opts);
            }
        }
        // Invalid UTF-8 is rejected as it was.
        let ctx = ResponseCtx {
            model: "m",
            created: 1,
            opts: &Options::default(),
        };
        assert!(
            translate_response_bytes(b"{\"responseId\": \"o\", \"x\": \"\xff\"}", &ctx).is_none()
        );
    }
}
