//! One typed candidate → one OpenAI `choice` (content, `reasoning_content`,
//! tool calls with their ids and thought signatures, annotations, logprobs,
//! finish reason), and the single empty choice of an answer without
//! candidates (a blocked prompt's refusal).

use std::borrow::Cow;

use super::grounding::{TextSpan, build_annotations};
use super::output::{
    Choice, ExtraContent, Function, GoogleExtra, Logprobs, Message, TokenLogprob, ToolCall,
};
use super::{
    Options, Piece, classify, finish_reason, late_signature, render, render_sources, tool_call_id,
    write_arguments,
};
use crate::gemini::types::{BlockReason, Candidate, LogprobsCandidate, LogprobsResult};

/// Append `t` to `acc`, borrowing while `acc` is still empty.
fn push<'a>(acc: &mut Cow<'a, str>, t: &'a str) {
    if t.is_empty() {
    } else if acc.is_empty() {
        *acc = Cow::Borrowed(t);
    } else {
        acc.to_mut().push_str(t);
    }
}

/// One candidate (at position `pos` of the answer) as an OpenAI `choice`;
/// with `one_call` (`parallel_tool_calls: false`) only its first function
/// call is kept.
pub(super) fn translate_candidate<'a>(
    cand: &'a Candidate<'a>,
    pos: u64,
    response_id: &str,
    opts: &Options,
    one_call: bool,
) -> Choice<'a> {
    let index = cand.index.unwrap_or(pos);
    let parts = cand.parts();

    let mut content: Cow<'a, str> = Cow::Borrowed("");
    let mut reasoning: Cow<'a, str> = Cow::Borrowed("");
    let mut tool_calls = Vec::new();
    // Where the text parts land, for grounding annotations only.
    let grounded = cand.grounding_metadata.is_some();
    let mut spans = Vec::new();
    let mut concat_len = 0;

    for (i, part) in parts.iter().enumerate() {
        match classify(part) {
            Piece::Text(t) => {
                if t.is_empty() {
                    continue;
                }
                if grounded {
                    spans.push(TextSpan {
                        part_index: i,
                        concat_start: concat_len,
                        content_start: content.len(),
                        len: t.len(),
                    });
                    concat_len += t.len();
                }
                push(&mut content, t);
            }
            Piece::Thought(t) => {
                if opts.show_thinking {
                    push(&mut reasoning, t);
                }
            }
            Piece::Call(_) if one_call && !tool_calls.is_empty() => {}
            Piece::Call(call) => {
                let position = tool_calls.len() as u64;
                let sig = call.signature.or_else(|| {
                    (position == 0)
                        .then(|| late_signature(parts.get(i + 1..).unwrap_or(&[])))
                        .flatten()
                });
                let mut args = Vec::new();
                write_arguments(call.args, &mut args);
                tool_calls.push(ToolCall {
                    extra_content: sig.map(|s| ExtraContent {
                        google: GoogleExtra {
                            thought_signature: s,
                        },
                    }),
                    function: Function {
                        arguments: String::from_utf8(args).unwrap_or_default(),
                        name: call.name,
                    },
                    id: tool_call_id(response_id, index, position, call.name, sig),
                    kind: "function",
                });
            }
            Piece::Rendered(r) => render(&r, content.to_mut()),
            Piece::Skip => {}
        }
    }

    let mut annotations = Vec::new();
    if let Some(gm) = &cand.grounding_metadata {
        annotations = build_annotations(gm, &content, &spans);
        if opts.show_search_link {
            render_sources(gm, content.to_mut());
        }
    }

    let had_calls = !tool_calls.is_empty();
    let reason = finish_reason(cand.finish_reason.as_ref().map(|r| r.as_str()), had_calls);
    Choice {
        finish_reason: reason,
        index,
        logprobs: cand.logprobs_result.as_deref().and_then(translate_logprobs),
        message: Message {
            annotations,
            content: (!(content.is_empty() && had_calls)).then_some(content),
            reasoning_content: (opts.show_thinking && !reasoning.is_empty()).then_some(reasoning),
            refusal: None,
            role: "assistant",
            tool_calls,
        },
    }
}

/// The single choice of an answer without candidates.
pub(super) fn empty_choice<'a>(block: Option<&BlockReason>) -> Choice<'a> {
    let (refusal, reason) = match block {
        Some(b) => (Some(blocked_refusal(b)), "content_filter"),
        None => (None, "stop"),
    };
    Choice {
        finish_reason: Some(reason),
        index: 0,
        logprobs: None,
        message: Message {
            annotations: Vec::new(),
            content: Some(Cow::Borrowed("")),
            reasoning_content: None,
            refusal,
            role: "assistant",
            tool_calls: Vec::new(),
        },
    }
}

/// The refusal text for a prompt Gemini blocked (`promptFeedback.blockReason`).
pub(crate) fn blocked_refusal(block: &BlockReason) -> String {
    format!("Prompt blocked by Gemini: {}", block.as_str())
}

/// Gemini `logprobsResult` → OpenAI choice `logprobs` (best effort); `None`
/// without `chosenCandidates`.
fn translate_logprobs<'a>(lp: &'a LogprobsResult<'a>) -> Option<Logprobs<'a>> {
    let chosen = lp.chosen_candidates.as_ref()?;
    let content = chosen
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let alts = lp
                .top_candidates
                .get(i)
                .map_or(&[][..], |t| &t.candidates)
                .iter()
                .map(token_logprob)
                .collect();
            TokenLogprob {
                top_logprobs: Some(alts),
                ..token_logprob(c)
            }
        })
        .collect();
    Some(Logprobs { content })
}

/// One token's `{bytes, logprob, token}`.
fn token_logprob<'a>(c: &'a LogprobsCandidate<'a>) -> TokenLogprob<'a> {
    let token = c.token.as_deref().unwrap_or("");
    TokenLogprob {
        bytes: token.as_bytes(),
        logprob: c.log_probability.unwrap_or(0.0),
        token,
        top_logprobs: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::openai::response::tests::{BLOCKED, CALL, quiet, run};
    #[test]
    fn several_parts_thoughts_and_order() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"text": "Think A. ", "thought": true},
            {"text": "Hello"},
            {"text": ""},
            {"text": "Think B.", "thought": true},
            {"text": ", world"},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}, "thought": true},
            {"unknownPart": {}}
        ]}, "finishReason": "STOP"}], "responseId": "r"}"#;
        let shown = run(body, &Options::default());
        let msg = &shown["choices"][0]["message"];
        assert_eq!(msg["content"], "Hello, world");
        assert_eq!(msg["reasoning_content"], "Think A. Think B.");
        let hidden = run(body, &quiet());
        let msg = &hidden["choices"][0]["message"];
        assert_eq!(msg["content"], "Hello, world");
        assert!(msg.get("reasoning_content").is_none());
        assert!(msg.get("tool_calls").is_none());
    }

    #[test]
    fn tool_call_with_signature() {
        let out = run(CALL, &Options::default());
        let sig = "CtQOAVSoXO74...";
        let id = tool_call_id("48SHaPHp", 0, 0, "get_weather", Some(sig));
        assert!(id.starts_with("call_") && id.ends_with("_ts_CtQOAVSoXO74..."));
        assert_eq!(id.len(), 5 + 16 + 4 + sig.len());
        assert_eq!(
            out["choices"][0],
            json!({
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "reasoning_content": "**Planning**\n\nI need the weather tool.",
                    "tool_calls": [{
                        "id": id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
                        "extra_content": {"google": {"thought_signature": sig}}
                    }],
                    "refusal": null
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            })
        );
        assert_eq!(out["usage"]["completion_tokens"], 174);
        assert_eq!(
            out["usage"]["completion_tokens_details"]["reasoning_tokens"],
            168
        );
    }

    #[test]
    fn tool_calls_without_signature_and_ids() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_time"}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen", "n": [1, 2]}}}
        ]}, "finishReason": "STOP"}], "responseId": "rid"}"#;
        let out = run(body, &Options::default());
        let msg = &out["choices"][0]["message"];
        assert_eq!(msg["content"], "Checking.");
        let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
        assert_eq!(calls.len(), 3);
        let args: Vec<_> = calls
            .iter()
            .map(|c| c["function"]["arguments"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            args,
            [
                "{\"city\":\"Oslo\"}",
                "{}",
                "{\"city\":\"Bergen\",\"n\":[1,2]}"
            ]
        );
        for (k, c) in calls.iter().enumerate() {
            let name = c["function"]["name"].as_str().unwrap_or("");
            assert_eq!(c["id"], tool_call_id("rid", 0, k as u64, name, None));
            assert!(c.get("extra_content").is_none());
            let id = c["id"].as_str().unwrap_or("");
            assert_eq!(id.len(), 21);
            assert!(
                id[5..]
                    .chars()
                    .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
            );
        }
        // Same call at another position, candidate or response → other id.
        assert_ne!(calls[0]["id"], calls[2]["id"]);
        let again = run(body, &Options::default());
        assert_eq!(again, out, "deterministic");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn signature_on_later_part_goes_to_first_call() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a", "args": {}}},
            {"functionCall": {"name": "b", "args": {}}},
            {"text": "", "thoughtSignature": "SIG=="}
        ]}, "finishReason": "STOP"}], "responseId": "x"}"#;
        let out = run(body, &Options::default());
        let calls = &out["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], tool_call_id("x", 0, 0, "a", Some("SIG==")));
        assert_eq!(
            calls[0]["extra_content"]["google"]["thought_signature"],
            "SIG=="
        );
        assert_eq!(calls[1]["id"], tool_call_id("x", 0, 1, "b", None));
        // A call with its own signature wins; the trailing one is ignored.
        let body = r#"{"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a"}},
            {"functionCall": {"name": "b"}, "thoughtSignature": "OWN"},
            {"text": "", "thoughtSignature": "LATE"}
        ]}}], "responseId": "x"}"#;
        let out = run(body, &Options::default());
        let calls = &out["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], tool_call_id("x", 0, 0, "a", None));
        assert_eq!(calls[1]["id"], tool_call_id("x", 0, 1, "b", Some("OWN")));
        assert_eq!(out["choices"][0]["finish_reason"], Value::Null);
    }

    #[test]
    fn blocked_prompt() {
        let out = run(BLOCKED, &Options::default());
        let id = out["id"].as_str().unwrap_or("").to_owned();
        assert!(id.starts_with("chatcmpl-"));
        assert_eq!(
            out,
            json!({
                "id": id,
                "object": "chat.completion",
                "created": 1760000000,
                "model": "gemini-2.5-flash",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "", "refusal": "Prompt blocked by Gemini: SAFETY"},
                    "logprobs": null,
                    "finish_reason": "content_filter"
                }],
                "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9,
                          "prompt_tokens_details": {"cached_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": 0}},
                "system_fingerprint": null
            })
        );
        // No candidates and no block reason: one empty "stop" choice.
        let out = run(r#"{"candidates": []}"#, &Options::default());
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["choices"][0]["message"]["refusal"], Value::Null);
    }

    #[test]
    fn logprobs_best_effort() {
        let body = r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP",
            "avgLogprobs": -0.1,
            "logprobsResult": {
              "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "Hé", "logProbability": -2.5}]}],
              "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]
            }}], "responseId": "lp"}"#;
        let out = run(body, &Options::default());
        assert_eq!(
            out["choices"][0]["logprobs"],
            json!({"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                    {"token": "Hé", "logprob": -2.5, "bytes": [72, 195, 169]}
                ]}], "refusal": null})
        );
        let logprobs = |s: &str| -> Value {
            let lp: LogprobsResult = serde_json::from_str(s).unwrap();
            let mut out = Vec::new();
            match translate_logprobs(&lp) {
                Some(l) => l.write(&mut out),
                None => out.extend_from_slice(b"null"),
            }
            serde_json::from_slice(&out).unwrap()
        };
        assert_eq!(logprobs(r#"{"topCandidates": []}"#), Value::Null);
        assert_eq!(
            logprobs(r#"{"chosenCandidates": [{}]}"#),
            json!({"content": [{"token": "", "logprob": 0.0, "bytes": [], "top_logprobs": []}], "refusal": null})
        );
    }
}
