//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`
//! (docs/wire-formats.md §C.3, §C.4, §C.6).
//!
//! Owns the non-streaming answer translation, the usage and finish-reason
//! mappings, the deterministic tool-call ids, and the rendering of Gemini
//! parts that have no OpenAI field (code execution, generated images, search
//! sources) into text. The answer is read once into the typed wire model
//! ([`crate::gemini::types`]) and written once from it; the streaming
//! translator in [`super::stream`] reuses the `pub(crate)` helpers here so
//! both render identically.
//!
//! Tool call ids are `call_` + 16 lowercase hex digits of an FNV-1a 64 hash
//! over (responseId or `""`, candidate index, call position within the
//! candidate, function name), see [`tool_call_id`]. When the call carries a
//! Gemini `thoughtSignature` the id becomes `call_<16hex>_ts_<signature>` so
//! the request side can hand the signature back to Gemini; the non-stream
//! answer also carries it as `extra_content.google.thought_signature`.
//! A signature sitting on a later non-call part of the candidate (e.g. an
//! empty text part) is attached to the candidate's first call when no call
//! carries its own.
//!
//! This file holds the entry points ([`translate_response_bytes`] on the raw
//! answer, [`translate_response`] for callers holding a `Value`); the pieces
//! sit beside it:
//!
//! * `candidate` — one candidate → one `choice` (message, tool calls,
//!   logprobs), and the empty choice of an answer without candidates.
//! * `parts` — the classification of Gemini parts and the markdown for
//!   those without an OpenAI field (shared with the stream translator).
//! * `grounding` — search sources and `url_citation` annotations.
//! * `mapping` — usage, finish reasons and the deterministic tool-call ids.
//! * `output` — the `chat.completion` structs the answer is written from.

use serde_json::Value;

use super::Options;
use crate::gemini::lenient::loose_from_str;
use crate::gemini::types::{GenerateContentResponse, UsageMetadata};

mod candidate;
mod grounding;
mod mapping;
mod output;
mod parts;

pub(crate) use candidate::blocked_refusal;
use candidate::{empty_choice, translate_candidate};
pub(crate) use grounding::render_sources;
pub(crate) use mapping::{Fnv, Usage, hash_bytes};
pub use mapping::{finish_reason, tool_call_id, usage};
pub(crate) use output::UsageOut;
pub(crate) use parts::{Piece, classify, late_signature, render, write_arguments};

/// Context for translating one answer.
#[derive(Clone, Copy, Debug)]
pub struct ResponseCtx<'a> {
    /// The model name echoed to the client (what it asked for).
    pub model: &'a str,
    /// `created`, unix seconds.
    pub created: u64,
    /// Translation settings.
    pub opts: &'a Options,
}

/// Gemini answer bytes → serialized OpenAI `chat.completion` bytes
/// (docs/wire-formats.md §C.3, §C.4, §C.6).
///
/// `None` when `gemini` is not valid JSON. Never fails otherwise: missing
/// or odd fields degrade to empty content (see [`crate::gemini::types`] on
/// lenient reading). A response without candidates yields one empty choice
/// (`content_filter` plus a `refusal` when `promptFeedback.blockReason`
/// says the prompt was blocked, else `stop`). Without a `responseId` the
/// id is `chatcmpl-` + an FNV-1a hash of the answer bytes.
pub fn translate_response_bytes(gemini: &[u8], ctx: &ResponseCtx) -> Option<Vec<u8>> {
    translate_response_calls(gemini, ctx, false).map(|t| t.body)
}

/// A translated answer, with the token counts of its `usageMetadata` (for
/// the store's meter: the answer need not be read twice).
pub struct Translated {
    /// The `chat.completion` bytes.
    pub body: Vec<u8>,
    /// `promptTokenCount` (0 when missing).
    pub prompt_tokens: u64,
    /// `candidatesTokenCount` (0 when missing).
    pub output_tokens: u64,
    /// `thoughtsTokenCount` (0 when missing).
    pub thought_tokens: u64,
}

/// [`translate_response_bytes`], with the answer's token counts; with
/// `one_call` (the request's `parallel_tool_calls: false`, which Gemini
/// cannot be told) each choice keeps only the first function call of its
/// turn.
pub fn translate_response_calls(
    gemini: &[u8],
    ctx: &ResponseCtx,
    one_call: bool,
) -> Option<Translated> {
    // One UTF-8 check over the whole answer is cheaper than one per string.
    let text = std::str::from_utf8(gemini).ok()?;
    let answer: GenerateContentResponse = loose_from_str(text).ok()?;
    let response_id = answer.response_id.as_deref().filter(|s| !s.is_empty());
    let id = match response_id {
        Some(r) => format!("chatcmpl-{r}"),
        None => format!("chatcmpl-{:016x}", hash_bytes(gemini)),
    };

    let mut choices = Vec::with_capacity(answer.candidates.len().max(1));
    for (pos, cand) in answer.candidates.iter().enumerate() {
        choices.push(translate_candidate(
            cand,
            pos as u64,
            response_id.unwrap_or(""),
            ctx.opts,
            one_call,
        ));
    }
    if choices.is_empty() {
        let block = answer
            .prompt_feedback
            .as_ref()
            .and_then(|p| p.block_reason.as_ref());
        choices.push(empty_choice(block));
    }

    let meta = answer.usage_metadata.as_ref();
    let out = output::Completion {
        choices,
        created: ctx.created,
        id,
        model: ctx.model,
        object: "chat.completion",
        usage: Usage::from_meta(meta).into(),
    };
    let mut buf = Vec::with_capacity(gemini.len() / 2 + 512);
    out.write(&mut buf);
    let count = |f: fn(&UsageMetadata) -> Option<u64>| meta.and_then(f).unwrap_or(0);
    Some(Translated {
        body: buf,
        prompt_tokens: count(|m| m.prompt_token_count),
        output_tokens: count(|m| m.candidates_token_count),
        thought_tokens: count(|m| m.thoughts_token_count),
    })
}

/// [`translate_response_bytes`] for a caller holding the answer as a
/// `Value` (tests, fuzzing): the same translation, as a `Value`.
pub fn translate_response(gemini: &Value, ctx: &ResponseCtx) -> Value {
    let bytes = serde_json::to_vec(gemini).unwrap_or_default();
    translate_response_bytes(&bytes, ctx)
        .and_then(|out| serde_json::from_slice(&out).ok())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("bad test JSON: {e}"))
    }

    pub(super) fn run(body: &str, opts: &Options) -> Value {
        let ctx = ResponseCtx {
            model: "gemini-2.5-flash",
            created: 1760000000,
            opts,
        };
        let out = translate_response_bytes(body.as_bytes(), &ctx)
            .unwrap_or_else(|| panic!("not JSON: {body}"));
        parse(std::str::from_utf8(&out).unwrap())
    }

    pub(super) fn quiet() -> Options {
        Options {
            show_thinking: false,
            show_search_link: false,
            ..Options::default()
        }
    }

    pub(super) const PLAIN: &str = r#"{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "text": "Oslo is about 4 °C right now."
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 31,
    "candidatesTokenCount": 11,
    "totalTokenCount": 90,
    "thoughtsTokenCount": 48
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "q1x9aPzXJ4mUmtkP2bW0sQM"
}"#;

    pub(super) const CALL: &str = r#"{"candidates": [{"content": {"parts": [
    {"text": "**Planning**\n\nI need the weather tool.", "thought": true},
    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
     "thoughtSignature": "CtQOAVSoXO74..."}
  ], "role": "model"}, "finishReason": "STOP", "index": 0}],
 "usageMetadata": {"promptTokenCount": 38, "candidatesTokenCount": 6, "totalTokenCount": 212, "thoughtsTokenCount": 168},
 "modelVersion": "gemini-2.5-flash", "responseId": "48SHaPHp"}"#;

    pub(super) const CODE: &str = r#"{"candidates": [{"content": {"parts": [
    {"text": "Let me compute it."},
    {"executableCode": {"language": "PYTHON", "code": "print(sum([2, 3, 5, 7, 11]))\n"}},
    {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "28\n"}},
    {"text": "The sum is 28."}
  ], "role": "model"}, "finishReason": "STOP", "index": 0}],
 "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 96, "totalTokenCount": 363,
                   "toolUsePromptTokenCount": 160, "thoughtsTokenCount": 86},
 "modelVersion": "gemini-2.5-flash"}"#;

    pub(super) const BLOCKED: &str = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
  {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH"}]},
 "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
 "modelVersion": "gemini-2.5-flash"}"#;

    pub(super) const GROUNDED: &str = r#"{"candidates": [{"content": {"parts": [
        {"text": "Planning the search.", "thought": true},
        {"text": "Oslo is about 4 °C right now. "},
        {"text": "Bergen is wet."}
      ]}, "finishReason": "STOP", "index": 0,
      "groundingMetadata": {
        "searchEntryPoint": {"renderedContent": "<style>...</style>"},
        "groundingChunks": [
          {"web": {"uri": "https://example.test/met", "title": "met.no"}},
          {"web": {"uri": "https://example.test/yr", "title": "yr.no"}},
          {"web": {"uri": "https://example.test/met", "title": "met.no again"}},
          {"retrievedContext": {"uri": "gs://x"}},
          {"web": {"uri": "https://example.test/untitled"}}
        ],
        "groundingSupports": [
          {"segment": {"endIndex": 30, "text": "Oslo is about 4 °C right now."},
           "groundingChunkIndices": [0, 3], "confidenceScores": [0.9, 0.1]},
          {"segment": {"startIndex": 31, "endIndex": 45, "text": "Bergen is wet."},
           "groundingChunkIndices": [1, 4]},
          {"segment": {"partIndex": 2, "endIndex": 6, "text": "Bergen"},
           "groundingChunkIndices": [2]},
          {"segment": {"startIndex": 500, "endIndex": 600}, "groundingChunkIndices": [0]},
          {"segment": {"startIndex": 16, "endIndex": 17}, "groundingChunkIndices": [0]},
          {"segment": {"startIndex": 1, "endIndex": 2, "text": "no such text"}, "groundingChunkIndices": [0]},
          {"segment": {"endIndex": 4}, "groundingChunkIndices": [9, "x", -1, 0]}
        ],
        "webSearchQueries": ["weather Oslo now"]
      }}], "responseId": "g"}"#;

    #[test]
    fn plain_text_exact() {
        let out = run(PLAIN, &Options::default());
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-q1x9aPzXJ4mUmtkP2bW0sQM",
                "object": "chat.completion",
                "created": 1760000000,
                "model": "gemini-2.5-flash",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Oslo is about 4 °C right now.", "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {
                    "prompt_tokens": 31, "completion_tokens": 59, "total_tokens": 90,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 48}
                },
                "system_fingerprint": null
            })
        );
    }

    #[test]
    fn two_candidates_and_indices() {
        let body = r#"{"candidates": [
            {"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
            {"content": {"parts": [{"text": "B"}, {"functionCall": {"name": "f"}}]}, "finishReason": "STOP", "index": 1}
        ], "responseId": "two"}"#;
        let out = run(body, &Options::default());
        assert_eq!(out["choices"][0]["index"], 0);
        assert_eq!(out["choices"][0]["message"]["content"], "A");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["choices"][1]["index"], 1);
        assert_eq!(out["choices"][1]["message"]["content"], "B");
        assert_eq!(out["choices"][1]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][1]["message"]["tool_calls"][0]["id"],
            tool_call_id("two", 1, 0, "f", None)
        );
    }

    #[test]
    fn no_panic_on_odd_json() {
        let odd = [
            "null",
            "1",
            "\"s\"",
            "[]",
            "[1, {}]",
            "{}",
            r#"{"candidates": null}"#,
            r#"{"candidates": {"a": 1}}"#,
            r#"{"candidates": [null, 1, "x", [], {}]}"#,
            r#"{"candidates": [{"content": null, "index": -1}]}"#,
            r#"{"candidates": [{"content": {"parts": {"text": "x"}}, "index": 1e30}]}"#,
            r#"{"candidates": [{"content": {"parts": [null, 1, {"text": 5}, {"functionCall": null}, {"functionCall": {"name": 5, "args": [1]}}, {"thought": "yes", "text": "t"}, {"executableCode": 1}, {"codeExecutionResult": []}, {"inlineData": {"data": 5}}]}, "finishReason": 7}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "é"}]}, "groundingMetadata": {"groundingChunks": [1, {"web": 1}, {"web": {"uri": 2}}], "groundingSupports": [1, {"segment": 1}, {"segment": {"startIndex": 1, "endIndex": 2}, "groundingChunkIndices": [0, 1, 2, 18446744073709551615]}, {"segment": {"startIndex": 18446744073709551615, "endIndex": 18446744073709551615, "partIndex": 18446744073709551615}}]}}]}"#,
            r#"{"candidates": [{"groundingMetadata": {"groundingChunks": [{"web": {"uri": "u"}}], "groundingSupports": [{"segment": {"text": ""}, "groundingChunkIndices": [0]}]}}]}"#,
            r#"{"candidates": [{"logprobsResult": {"chosenCandidates": [1, null, {"token": 1}], "topCandidates": 3}}]}"#,
            r#"{"promptFeedback": {"blockReason": {"x": 1}}}"#,
            r#"{"promptFeedback": {"blockReason": null}, "usageMetadata": [1]}"#,
            r#"{"responseId": 5, "usageMetadata": {"totalTokenCount": 1.5}}"#,
        ];
        for s in odd {
            for opts in [Options::default(), quiet()] {
                let out = run(s, &opts);
                assert!(
                    out["choices"].as_array().is_some_and(|c| !c.is_empty()),
                    "{s}"
                );
                assert!(out["usage"].is_object());
            }
        }
        let _ = usage(None);
        let _ = finish_reason(Some(""), true);
    }
}
