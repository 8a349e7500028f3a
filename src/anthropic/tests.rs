//! Unit tests of the pure Anthropic translation: thinking and tool
//! mappings, signatures across stream events, and odd input never panics.

use serde_json::{Value, json};

use super::answer::{AnswerCtx, translate_answer};
use super::request::{count_body, prepare};
use super::stream::{Step, StreamTranslator};

fn body(req: Value, model: &str) -> Value {
    let p = prepare(&req, model, None).unwrap_or_else(|e| panic!("{e:?}"));
    serde_json::from_slice(&p.body).unwrap_or_default()
}

fn with(extra: Value) -> Value {
    let mut r = json!({"model": "claude-x", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    r
}

fn thinking_config(extra: Value, model: &str) -> Value {
    body(with(extra), model)["generationConfig"]["thinkingConfig"].clone()
}

#[test]
fn thinking_modes_map_to_gemini_thinking() {
    let f = "gemini-2.5-flash";
    let p = "gemini-2.5-pro";
    assert_eq!(
        thinking_config(
            json!({"thinking": {"type": "enabled", "budget_tokens": 50000}}),
            f
        ),
        json!({"includeThoughts": true, "thinkingBudget": 24576}),
        "within the model's maximum"
    );
    assert_eq!(
        thinking_config(json!({"thinking": {"type": "adaptive"}}), p),
        json!({"includeThoughts": true, "thinkingBudget": -1}),
        "adaptive is dynamic"
    );
    assert_eq!(
        thinking_config(
            json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}),
            p
        ),
        json!({"includeThoughts": true, "thinkingBudget": 24576})
    );
    assert_eq!(
        thinking_config(
            json!({"thinking": {"type": "adaptive", "display": "omitted"}}),
            p
        ),
        json!({"thinkingBudget": -1})
    );
    assert_eq!(
        thinking_config(json!({"thinking": {"type": "disabled"}}), f),
        json!({"thinkingBudget": 0})
    );
    // 2.5 Pro cannot switch thinking off; older models take no thinking config.
    assert_eq!(
        thinking_config(json!({"thinking": {"type": "disabled"}}), p),
        Value::Null
    );
    assert_eq!(
        thinking_config(
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
            "gemini-2.0-flash"
        ),
        Value::Null
    );
    assert_eq!(
        thinking_config(json!({"output_config": {"effort": "low"}}), f),
        json!({"thinkingBudget": 1024})
    );
    let e = prepare(&with(json!({"thinking": {"type": "enabled"}})), f, None);
    assert_eq!(
        e.err().and_then(|e| e.param).as_deref(),
        Some("thinking.budget_tokens")
    );
    let e = prepare(&with(json!({"thinking": {"type": "maybe"}})), f, None);
    assert_eq!(
        e.err().and_then(|e| e.param).as_deref(),
        Some("thinking.type")
    );
}

#[test]
fn tools_choice_and_search() {
    let tools = json!([
        {"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
        {"type": "web_search_20250305", "name": "web_search"}
    ]);
    let b = body(
        with(json!({"tools": tools, "tool_choice": {"type": "any"}})),
        "gemini-2.5-flash",
    );
    assert_eq!(
        b["tools"].as_array().map(Vec::len),
        Some(1),
        "search dropped beside functions on 2.x"
    );
    assert_eq!(b["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    let b = body(with(json!({"tools": tools})), "gemini-3-pro-preview");
    assert_eq!(b["tools"][1], json!({"googleSearch": {}}));
    let only_search = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let b = body(
        with(json!({"tools": only_search, "tool_choice": {"type": "auto"}})),
        "gemini-2.5-flash",
    );
    assert_eq!(b["tools"], json!([{"googleSearch": {}}]));
    assert!(b.get("toolConfig").is_none());
    let b = body(
        with(json!({"tools": tools, "tool_choice": {"type": "none"}})),
        "gemini-2.5-flash",
    );
    assert_eq!(b["toolConfig"]["functionCallingConfig"]["mode"], "NONE");
    let bad = with(json!({"tools": [{"type": "computer_20250124", "name": "computer"}]}));
    let e = prepare(&bad, "gemini-2.5-flash", None)
        .err()
        .and_then(|e| e.param);
    assert_eq!(e.as_deref(), Some("tools[0].type"));
    let misplaced = with(json!({"messages": [{"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}));
    let e = prepare(&misplaced, "gemini-2.5-flash", None)
        .err()
        .and_then(|e| e.param);
    assert_eq!(e.as_deref(), Some("messages[0].content[0].type"));
    let bad = with(json!({"tools": tools, "tool_choice": {"type": "tool", "name": "g"}}));
    let e = prepare(&bad, "gemini-2.5-flash", None)
        .err()
        .and_then(|e| e.param);
    assert_eq!(e.as_deref(), Some("tool_choice.name"));
}

#[test]
fn count_body_wraps_the_request_with_the_model() {
    let b = count_body(&with(json!({"system": "s"})), "gemini-2.5-pro").unwrap_or_default();
    let v: Value = serde_json::from_slice(&b).unwrap_or_default();
    assert_eq!(
        v["generateContentRequest"]["model"],
        "models/gemini-2.5-pro"
    );
    assert_eq!(
        v["generateContentRequest"]["contents"][0]["parts"][0]["text"],
        "hi"
    );
    assert!(
        v["generateContentRequest"]
            .get("generationConfig")
            .is_none()
    );
}

/// Run Gemini events through the stream translator; the `(event, data)` pairs.
fn stream(events: &[Value]) -> Vec<(String, Value)> {
    let mut tr = StreamTranslator::new("msg_1", "claude-x");
    let mut out = Vec::new();
    for e in events {
        if tr.on_event(&e.to_string(), &mut out) == Step::Ended {
            break;
        }
    }
    tr.finish(&mut out);
    String::from_utf8(out)
        .unwrap_or_default()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once("\ndata: ").unwrap_or(("", ""));
            (
                name.trim_start_matches("event: ").to_string(),
                serde_json::from_str(data).unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[test]
fn a_signature_arriving_with_a_later_call_closes_the_thinking_block() {
    let evs = stream(&[
        json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}]}}], "usageMetadata": {"promptTokenCount": 9}}),
        json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "U0lH"}]}}]}),
        json!({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 2}}),
    ]);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(evs[0].1["message"]["usage"]["input_tokens"], 9);
    assert_eq!(
        evs[3].1["delta"],
        json!({"type": "signature_delta", "signature": "gmb1.U0lH"})
    );
    assert_eq!(evs[5].1["content_block"]["name"], "f");
    assert_eq!(evs[6].1["delta"]["partial_json"], r#"{"a":1}"#);
    assert_eq!(evs[8].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(evs[8].1["usage"]["output_tokens"], 6);
}

#[test]
fn stream_errors_and_cut_streams_end_with_an_error_event() {
    let evs = stream(&[
        json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}),
        json!({"error": {"code": 503, "message": "The model is overloaded."}}),
    ]);
    let last = evs.last().map(|(n, d)| (n.clone(), d.clone()));
    assert_eq!(
        last,
        Some((
            "error".to_string(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "The model is overloaded."}})
        ))
    );
    // No finish reason: the answer was cut short.
    let evs = stream(&[json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]})]);
    assert_eq!(evs.last().map(|(n, _)| n.as_str()), Some("error"));
    // A blocked prompt is a refusal.
    let evs = stream(&[json!({"promptFeedback": {"blockReason": "SAFETY"}})]);
    let delta = evs
        .iter()
        .find(|(n, _)| n == "message_delta")
        .map(|(_, d)| d.clone());
    assert_eq!(
        delta.map(|d| d["delta"]["stop_reason"].clone()),
        Some(json!("refusal"))
    );
}

#[test]
fn whole_answer_blocks() {
    let g = json!({"candidates": [{"content": {"parts": [
        {"text": "thinking", "thought": true},
        {"text": "Hello "}, {"text": "world", "thoughtSignature": "dGV4dA=="},
        {"functionCall": {"id": "call-1", "name": "f", "args": {}}, "thoughtSignature": "U0lH"},
        {"executableCode": {"language": "PYTHON", "code": "1+1"}}
    ]}, "finishReason": "MAX_TOKENS"}], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}});
    let ctx = AnswerCtx {
        id: "msg_1",
        model: "claude-x",
    };
    let out = translate_answer(g.to_string().as_bytes(), &ctx).unwrap_or_default();
    let v: Value = serde_json::from_slice(&out).unwrap_or_default();
    let c = &v["content"];
    assert_eq!(
        c[0],
        json!({"type": "thinking", "thinking": "thinking", "signature": "gmb0"})
    );
    assert_eq!(c[1], json!({"type": "text", "text": "Hello world"}));
    assert_eq!(
        c[2],
        json!({"type": "thinking", "thinking": "", "signature": "gmb1.U0lH"})
    );
    assert_eq!(
        c[3],
        json!({"type": "tool_use", "id": "call-1", "name": "f", "input": {}})
    );
    assert_eq!(c[4]["type"], "text");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert!(translate_answer(b"not json", &ctx).is_none());
}

#[test]
fn odd_input_never_panics() {
    let odd = [
        json!(null),
        json!([]),
        json!("x"),
        json!({"model": 5}),
        json!({"model": "m", "messages": {}}),
        json!({"model": "m", "messages": [null, 1, "x", [], {"role": 5}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [null, {"type": 5}, {"type": "image"}, {"type": "image", "source": 5}, {"type": "tool_result"}, {"type": "tool_use", "input": 5, "name": "x"}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [null, {"name": ""}, {"name": "a", "input_schema": 5}], "tool_choice": 5, "thinking": 5, "output_config": {"format": 5}, "stop_sequences": [1], "max_tokens": 1e300, "temperature": "hot", "system": [5]}),
    ];
    for req in odd {
        let _ = prepare(&req, "gemini-2.5-flash", None);
        let _ = count_body(&req, "gemini-3-pro-preview");
    }
    let ctx = AnswerCtx {
        id: "m",
        model: "m",
    };
    for ans in [
        "{}",
        "[]",
        "{\"candidates\": 5}",
        "{\"candidates\": [{\"content\": {\"parts\": [5, {\"functionCall\": 5}]}}]}",
        "\u{0}",
    ] {
        let _ = translate_answer(ans.as_bytes(), &ctx);
        let mut tr = StreamTranslator::new("m", "m");
        let mut out = Vec::new();
        let _ = tr.on_event(ans, &mut out);
        tr.ping(&mut out);
        tr.finish(&mut out);
        tr.fail("x", "api_error", &mut out);
    }
}

#[test]
fn the_fuzz_seeds_are_accepted() {
    let req: Value = serde_json::from_str(include_str!("../../fuzz/corpus/anthropic/request.json"))
        .unwrap_or_default();
    let b = body(req, "gemini-3-pro-preview");
    assert_eq!(b["contents"][1]["parts"][0]["thoughtSignature"], "U0lH");
    assert_eq!(b["systemInstruction"]["parts"][1]["text"], "mid");
    let events: Vec<Value> = include_str!("../../fuzz/corpus/anthropic/stream.txt")
        .split("\n\n")
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let evs = stream(&events);
    assert_eq!(
        evs.last().map(|(_, d)| d["error"]["type"].clone()),
        Some(json!("rate_limit_error"))
    );
}

#[test]
fn web_search_beside_functions_is_dropped_only_where_gemini_refuses_the_pair() {
    let tools = json!([
        {"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
        {"type": "web_search_20250305", "name": "web_search"}
    ]);
    let req = with(json!({"tools": tools}));
    for (model, dropped) in [
        ("gemini-2.5-flash", true),
        ("gemini-2.0-flash", true),
        ("gemini-1.5-pro", true),
        ("gemini-3-pro-preview", false),
        ("gemini-exp-1206", false),
    ] {
        let p = prepare(&req, model, None).unwrap();
        assert_eq!(p.search_dropped, dropped, "{model}");
        let b: Value = serde_json::from_slice(&p.body).unwrap();
        let has_search = b["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.get("googleSearch").is_some());
        assert_eq!(has_search, !dropped, "{model}");
    }
    let only = with(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
    assert!(
        !prepare(&only, "gemini-2.5-flash", None)
            .unwrap()
            .search_dropped
    );
}
