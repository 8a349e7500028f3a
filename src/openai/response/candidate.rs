//! The `Value` path for one candidate: its parts → an OpenAI `choice`
//! (content, `reasoning_content`, tool calls with their ids and thought
//! signatures, annotations, logprobs, finish reason), and the single empty
//! choice of an answer without candidates (a blocked prompt's refusal).

use serde_json::{Map, Value};

use super::grounding::{TextSpan, build_annotations};
use super::{
    Options, Part, as_slice, candidate_parts, classify, finish_reason, late_signature, render,
    render_sources, tool_call_id, write_arguments,
};

/// One candidate (at position `pos` of the answer) as an OpenAI `choice`.
pub(super) fn translate_candidate(
    cand: &Value,
    pos: u64,
    response_id: &str,
    opts: &Options,
) -> Value {
    let index = cand.get("index").and_then(Value::as_u64).unwrap_or(pos);
    let parts = candidate_parts(cand);

    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut spans = Vec::new();
    let mut concat_len = 0;
    let mut args = Vec::new();

    for (i, part) in parts.iter().enumerate() {
        match classify(part) {
            Part::Text(t) => {
                if t.is_empty() {
                    continue;
                }
                spans.push(TextSpan {
                    part_index: i,
                    concat_start: concat_len,
                    content_start: content.len(),
                    len: t.len(),
                });
                concat_len += t.len();
                content.push_str(t);
            }
            Part::Thought(t) => {
                if opts.show_thinking {
                    reasoning.push_str(t);
                }
            }
            Part::Call(call) => {
                let position = tool_calls.len() as u64;
                let sig = call.signature.or_else(|| {
                    (position == 0)
                        .then(|| late_signature(parts.get(i + 1..).unwrap_or(&[])))
                        .flatten()
                });
                args.clear();
                write_arguments(call.args, &mut args);
                let arguments = String::from_utf8_lossy(&args).into_owned();
                tool_calls.push(tool_call_value(
                    tool_call_id(response_id, index, position, call.name, sig),
                    call.name,
                    arguments,
                    sig,
                ));
            }
            Part::Rendered(r) => render(&r, &mut content),
            Part::Skip => {}
        }
    }

    let mut annotations = Vec::new();
    if let Some(gm) = cand.get("groundingMetadata") {
        annotations = build_annotations(gm, &content, &spans);
        if opts.show_search_link {
            render_sources(gm, &mut content);
        }
    }

    let had_calls = !tool_calls.is_empty();
    let mut msg = Map::new();
    msg.insert("role".into(), Value::from("assistant"));
    let content = if content.is_empty() && had_calls {
        Value::Null
    } else {
        Value::String(content)
    };
    msg.insert("content".into(), content);
    if opts.show_thinking && !reasoning.is_empty() {
        msg.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if had_calls {
        msg.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !annotations.is_empty() {
        msg.insert("annotations".into(), Value::Array(annotations));
    }
    msg.insert("refusal".into(), Value::Null);

    let reason = finish_reason(cand.get("finishReason").and_then(Value::as_str), had_calls);
    let logprobs = cand
        .get("logprobsResult")
        .map_or(Value::Null, translate_logprobs);
    choice(index, msg, logprobs, reason)
}

/// A `choice` object from its members.
fn choice(index: u64, msg: Map<String, Value>, logprobs: Value, reason: Option<&str>) -> Value {
    let mut c = Map::new();
    c.insert("index".into(), Value::from(index));
    c.insert("message".into(), Value::Object(msg));
    c.insert("logprobs".into(), logprobs);
    c.insert(
        "finish_reason".into(),
        reason.map_or(Value::Null, Value::from),
    );
    Value::Object(c)
}

/// The single choice of an answer without candidates.
pub(super) fn empty_choice(block: Option<&Value>) -> Value {
    let mut msg = Map::new();
    msg.insert("role".into(), Value::from("assistant"));
    msg.insert("content".into(), Value::from(""));
    let (refusal, reason) = match block {
        Some(b) => (Value::String(blocked_refusal(b)), "content_filter"),
        None => (Value::Null, "stop"),
    };
    msg.insert("refusal".into(), refusal);
    choice(0, msg, Value::Null, Some(reason))
}

/// The refusal text for a prompt Gemini blocked (`promptFeedback.blockReason`).
pub(crate) fn blocked_refusal(block: &Value) -> String {
    let why = match block {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("Prompt blocked by Gemini: {why}")
}

/// An OpenAI `tool_calls[]` entry, with the thought signature under
/// `extra_content.google` when there is one.
fn tool_call_value(id: String, name: &str, arguments: String, sig: Option<&str>) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), Value::from(name));
    function.insert("arguments".into(), Value::String(arguments));
    let mut call = Map::new();
    call.insert("id".into(), Value::String(id));
    call.insert("type".into(), Value::from("function"));
    call.insert("function".into(), Value::Object(function));
    if let Some(sig) = sig {
        let mut google = Map::new();
        google.insert("thought_signature".into(), Value::from(sig));
        let mut extra = Map::new();
        extra.insert("google".into(), Value::Object(google));
        call.insert("extra_content".into(), Value::Object(extra));
    }
    Value::Object(call)
}

/// Gemini `logprobsResult` → OpenAI choice `logprobs` (best effort).
fn translate_logprobs(lp: &Value) -> Value {
    let Some(chosen) = lp.get("chosenCandidates").and_then(Value::as_array) else {
        return Value::Null;
    };
    let top = as_slice(lp.get("topCandidates"));
    let content = chosen
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut entry = token_logprob(c);
            let alts = top
                .get(i)
                .map(|t| as_slice(t.get("candidates")))
                .unwrap_or(&[])
                .iter()
                .map(|a| Value::Object(token_logprob(a)))
                .collect();
            entry.insert("top_logprobs".into(), Value::Array(alts));
            Value::Object(entry)
        })
        .collect();
    let mut m = Map::new();
    m.insert("content".into(), Value::Array(content));
    m.insert("refusal".into(), Value::Null);
    Value::Object(m)
}

/// One token's `{token, logprob, bytes}`.
fn token_logprob(c: &Value) -> Map<String, Value> {
    let token = c.get("token").and_then(Value::as_str).unwrap_or("");
    let logprob = c
        .get("logProbability")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mut m = Map::new();
    m.insert("token".into(), Value::from(token));
    m.insert("logprob".into(), Value::from(logprob));
    m.insert(
        "bytes".into(),
        Value::Array(token.bytes().map(Value::from).collect()),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(
            translate_logprobs(&json!({"topCandidates": []})),
            Value::Null
        );
        assert_eq!(
            translate_logprobs(&json!({"chosenCandidates": [{}]})),
            json!({"content": [{"token": "", "logprob": 0.0, "bytes": [], "top_logprobs": []}], "refusal": null})
        );
    }
}
