//! Tests of the SSE parser and the stream translator.

use super::*;
use crate::openai::response::usage;
use serde_json::{Value, json};

// ---- SSE parser -------------------------------------------------------

fn parse_all(chunks: &[&[u8]], max: usize) -> (Vec<String>, Option<String>) {
    let mut p = SseParser::new(max);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = p.push(c, &mut out) {
            panic!("unexpected {e}");
        }
    }
    let last = p.finish();
    (out, last)
}

fn bytewise(input: &[u8], max: usize) -> (Vec<String>, Option<String>) {
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    parse_all(&chunks, max)
}

#[test]
fn sse_framings() {
    let want = vec!["{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()];
    let cases: &[(&str, &[u8])] = &[
        ("crlf", b"data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\n"),
        ("lf", b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n"),
        ("cr", b"data: {\"a\":1}\r\rdata: {\"b\":2}\r\r"),
        ("mixed", b"data: {\"a\":1}\r\n\ndata: {\"b\":2}\n\r\n"),
        ("mixed cr", b"data: {\"a\":1}\r\n\rdata: {\"b\":2}\r\n\n"),
        ("no space", b"data:{\"a\":1}\n\ndata:{\"b\":2}\n\n"),
        (
            "other fields and comments",
            b": keepalive\n\nevent: message\nid: 7\ndata: {\"a\":1}\nretry: 10\n\n\n\n\ndata: {\"b\":2}\n\n",
        ),
        ("leading blank lines", b"\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\n"),
    ];
    for (name, input) in cases {
        assert_eq!(parse_all(&[input], 1 << 20), (want.clone(), None), "{name}");
        assert_eq!(
            bytewise(input, 1 << 20),
            (want.clone(), None),
            "{name} bytewise"
        );
        // Every two-way split too.
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(
                parse_all(&[a, b], 1 << 20),
                (want.clone(), None),
                "{name} @{cut}"
            );
        }
    }
}

#[test]
fn sse_multiline_and_finish() {
    let (ev, last) = parse_all(&[b"data: {\"a\":\ndata:  1}\n\ndata: tail"], 1 << 10);
    assert_eq!(ev, ["{\"a\":\n 1}"]);
    assert_eq!(last.as_deref(), Some("tail"));
    let (ev, last) = parse_all(&[b"data: x\r\n"], 1 << 10);
    assert!(ev.is_empty());
    assert_eq!(last.as_deref(), Some("x"));
    let (ev, last) = parse_all(&[b"data\n\ndata:\n\n"], 1 << 10);
    assert_eq!(ev, ["", ""]);
    assert_eq!(last, None);
    let (ev, last) = parse_all(&[b"event: only\n\n: c\n"], 1 << 10);
    assert!(ev.is_empty() && last.is_none());
    // A CR at the end of one push and LF at the start of the next is one line end.
    let (ev, _) = parse_all(
        &[b"data: a\r", b"\n", b"\r", b"\ndata: b\r", b"\r"],
        1 << 10,
    );
    assert_eq!(ev, ["a", "b"]);
    // Invalid UTF-8 is replaced, not fatal.
    let (ev, _) = parse_all(&[b"data: \xff\xfeok\n\n"], 1 << 10);
    assert_eq!(ev, ["\u{fffd}\u{fffd}ok"]);
}

#[test]
fn sse_bare_json() {
    let body = b"data: {\"a\":1}\r\n\r\n{\n  \"error\": {\n    \"code\": 499,\n    \"status\": \"CANCELLED\"\n  }\n}\n";
    let (ev, last) = bytewise(body, 1 << 10);
    assert_eq!(ev, ["{\"a\":1}"]);
    assert_eq!(
        last.as_deref(),
        Some("{\n  \"error\": {\n    \"code\": 499,\n    \"status\": \"CANCELLED\"\n  }\n}")
    );
    let (ev, last) = parse_all(&[b"[{\"a\":1}\n,\r\n{\"b\":2}\n]"], 1 << 10);
    assert!(ev.is_empty());
    assert_eq!(last.as_deref(), Some("[{\"a\":1}\n,\n{\"b\":2}\n]"));
    // Junk lines that do not look like JSON are ignored.
    let (ev, last) = parse_all(&[b"hello\nworld\n\n"], 1 << 10);
    assert!(ev.is_empty() && last.is_none());
}

#[test]
fn sse_oversize() {
    // Exactly at the limit is fine.
    let (ev, _) = parse_all(&[b"data: 1234\n\n"], 10);
    assert_eq!(ev, ["1234"]);
    for split in [false, true] {
        let mut p = SseParser::new(10);
        let mut out = Vec::new();
        let input: &[u8] = b"data: 1\n\ndata: 12345\n\n";
        let r = if split {
            input.chunks(1).try_for_each(|c| p.push(c, &mut out))
        } else {
            p.push(input, &mut out)
        };
        assert_eq!(r, Err(SseError::EventTooLarge { limit: 10 }));
        assert_eq!(out, ["1"]);
        assert!(p.push(b"\n\n", &mut out).is_err(), "stays failed");
        assert_eq!(p.finish(), None);
    }
    // Many small lines without a blank line are bounded too.
    let mut p = SseParser::new(100);
    let mut out = Vec::new();
    let mut res = Ok(());
    for _ in 0..100 {
        res = p.push(b"data: x\n", &mut out);
        if res.is_err() {
            break;
        }
    }
    assert!(res.is_err());
    assert_eq!(
        SseError::EventTooLarge { limit: 100 }.to_string(),
        "upstream stream event larger than 100 bytes"
    );
}

// ---- translator -------------------------------------------------------

const EXAMPLE: &[&[u8]] = &[
    b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"totalTokenCount\": 5},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
    b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo there\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": 3,\"totalTokenCount\": 8},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
    b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"!\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": 4,\"totalTokenCount\": 9,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 5}],\"candidatesTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 4}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r-1\"}\r\n\r\n",
];

const HEAD: &str = r#"{"id":"chatcmpl-r-1","object":"chat.completion.chunk","created":1727346171,"model":"gemini-2.5-flash","system_fingerprint":null,"choices":["#;

fn quiet() -> Options {
    Options {
        show_thinking: false,
        show_search_link: false,
        ..Options::default()
    }
}

fn new(include_usage: bool, opts: &Options) -> StreamTranslator {
    StreamTranslator::new("gemini-2.5-flash", 1727346171, include_usage, opts)
}

/// Feed whole events (JSON objects) and finish; returns the parsed chunks.
fn run(events: &[&str], include_usage: bool, opts: &Options) -> Vec<Value> {
    let mut t = new(include_usage, opts);
    let mut out = Vec::new();
    for e in events {
        if t.on_event(e, &mut out) == Step::Ended {
            break;
        }
    }
    t.finish(&mut out);
    chunks(&out)
}

/// Split SSE output into JSON values (`[DONE]` → the string "[DONE]"),
/// checking the framing on the way.
fn chunks(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    assert!(!text.contains('\r'));
    text.split_terminator("\n\n")
        .map(|ev| {
            let data = ev
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad event {ev:?}"));
            assert!(!data.contains('\n'), "one line per event");
            if data == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
            }
        })
        .collect()
}

/// `(choice index, delta, finish_reason)` of every choice chunk.
fn deltas(chunks: &[Value]) -> Vec<(u64, Value, Value)> {
    chunks
        .iter()
        .filter_map(|c| c["choices"].as_array())
        .flatten()
        .map(|c| {
            (
                c["index"].as_u64().unwrap_or(u64::MAX),
                c["delta"].clone(),
                c["finish_reason"].clone(),
            )
        })
        .collect()
}

fn role() -> Value {
    serde_json::json!({"role": "assistant", "content": ""})
}

fn content(s: &str) -> Value {
    serde_json::json!({ "content": s })
}

fn empty() -> Value {
    serde_json::json!({})
}

#[test]
fn reference_example_exact_bytes() {
    let mut p = SseParser::new(1 << 20);
    let mut t = new(true, &Options::default());
    let mut payloads = Vec::new();
    let mut out = Vec::new();
    for b in EXAMPLE.concat().chunks(1) {
        if let Err(e) = p.push(b, &mut payloads) {
            panic!("{e}");
        }
        for ev in payloads.drain(..) {
            assert_eq!(t.on_event(&ev, &mut out), Step::Continue);
        }
    }
    assert_eq!(p.finish(), None);
    assert!(t.started());
    t.finish(&mut out);
    let meta: crate::gemini::types::UsageMetadata = serde_json::from_str(
        r#"{"promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9}"#,
    )
    .unwrap();
    let usage = usage(Some(&meta));
    let mut want = String::new();
    for (delta, fin) in [
        (r#"{"role":"assistant","content":""}"#, "null"),
        (r#"{"content":"Hel"}"#, "null"),
        (r#"{"content":"lo there"}"#, "null"),
        (r#"{"content":"!"}"#, "null"),
        ("{}", "\"stop\""),
    ] {
        want.push_str(&format!(
            "data: {HEAD}{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{fin}}}]}}\n\n"
        ));
    }
    want.push_str(&format!(
        "data: {HEAD}],\"usage\":{usage}}}\n\ndata: [DONE]\n\n"
    ));
    assert_eq!(String::from_utf8_lossy(&out), want);
    assert!(want.contains(r#""usage":{"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":9}"#));
    // Nothing after the end.
    let mut more = Vec::new();
    assert_eq!(t.on_event("{}", &mut more), Step::Ended);
    t.finish(&mut more);
    t.fail("x", "y", &mut more);
    assert!(more.is_empty());
}

#[test]
fn several_parts_thoughts_code_image() {
    let ev = r#"{"candidates": [{"content": {"parts": [
        {"text": "Thinking...", "thought": true},
        {"text": "Let me compute it."},
        {"text": ""},
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
        {"codeExecutionResult": {"outcome": "OUTCOME_FAILED", "output": "boom"}},
        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"text": "Done."}
    ], "role": "model"}, "finishReason": "STOP", "index": 0}], "responseId": "p"}"#;
    let got = deltas(&run(&[ev], false, &Options::default()));
    let n = Value::Null;
    assert_eq!(
        got,
        vec![
            (0, role(), n.clone()),
            (
                0,
                serde_json::json!({"reasoning_content": "Thinking..."}),
                n.clone()
            ),
            (0, content("Let me compute it."), n.clone()),
            (0, content("\n```python\nprint(1)\n```\n"), n.clone()),
            (
                0,
                content("\n```output\nExecution failed:\nboom\n```\n"),
                n.clone()
            ),
            (
                0,
                content("![image](data:image/png;base64,iVBO)"),
                n.clone()
            ),
            (0, content("Done."), n.clone()),
            (0, empty(), Value::from("stop")),
        ]
    );
    let got = deltas(&run(&[ev], false, &quiet()));
    assert_eq!(got.len(), 7, "thought dropped");
    assert_eq!(got[1].1, content("Let me compute it."));
}

#[test]
fn tool_call_then_stop_in_later_event() {
    let events = [
        r#"{"candidates": [{"content": {"parts": [{"text": "plan", "thought": true}]}, "index": 0}], "responseId": "fc"}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "CiIBVKhc7+/="}], "role": "model"}, "index": 0}], "responseId": "fc"}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_time"}}]}, "index": 0}], "responseId": "fc"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 38, "candidatesTokenCount": 6, "totalTokenCount": 212, "thoughtsTokenCount": 168}, "responseId": "fc"}"#,
    ];
    let all = run(&events, true, &quiet());
    let got = deltas(&all);
    let sig_id = tool_call_id("fc", 0, 0, "get_weather", Some("CiIBVKhc7+/="));
    assert!(sig_id.ends_with("_ts_CiIBVKhc7+/="));
    assert_eq!(
        got,
        vec![
            (0, role(), Value::Null),
            (
                0,
                serde_json::json!({"tool_calls": [{"index": 0, "id": sig_id, "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}),
                Value::Null
            ),
            (
                0,
                serde_json::json!({"tool_calls": [{"index": 1, "id": tool_call_id("fc", 0, 1, "get_time", None), "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"}}]}),
                Value::Null
            ),
            (0, empty(), Value::from("tool_calls")),
        ]
    );
    let usage_chunk = &all[all.len() - 2];
    assert_eq!(usage_chunk["choices"], serde_json::json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 174);
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 38);
    assert_eq!(all[all.len() - 1], "[DONE]");
    for c in &all[..all.len() - 1] {
        assert_eq!(c["id"], "chatcmpl-fc");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], 1727346171);
        assert_eq!(c["model"], "gemini-2.5-flash");
        assert_eq!(c["system_fingerprint"], Value::Null);
    }
}

#[test]
fn signature_on_later_part() {
    // Same event: attached to the first call.
    let same = r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}, {"text": "", "thoughtSignature": "SIG"}]}, "finishReason": "STOP"}], "responseId": "s"}"#;
    let got = deltas(&run(&[same], false, &Options::default()));
    assert_eq!(
        got[1].1["tool_calls"][0]["id"],
        tool_call_id("s", 0, 0, "f", Some("SIG"))
    );
    // Later event: lost for that id (documented).
    let events = [
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}], "responseId": "s"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "SIG"}]}, "finishReason": "STOP"}], "responseId": "s"}"#,
    ];
    let got = deltas(&run(&events, false, &Options::default()));
    assert_eq!(
        got[1].1["tool_calls"][0]["id"],
        tool_call_id("s", 0, 0, "f", None)
    );
    assert_eq!(
        got.last().map(|d| d.2.clone()),
        Some(Value::from("tool_calls"))
    );
}

#[test]
fn two_candidates_interleaved() {
    let events = [
        r#"{"candidates": [{"content": {"parts": [{"text": "A1"}]}, "index": 0}, {"content": {"parts": [{"text": "B1"}]}, "index": 1}], "responseId": "n2"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": "B2"}]}, "index": 1}], "responseId": "n2"}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "g"}}]}, "finishReason": "STOP", "index": 1}, {"content": {"parts": [{"text": "A2"}]}, "finishReason": "MAX_TOKENS", "index": 0}], "responseId": "n2"}"#,
    ];
    let got = deltas(&run(&events, false, &Options::default()));
    let n = Value::Null;
    assert_eq!(
        got,
        vec![
            (0, role(), n.clone()),
            (0, content("A1"), n.clone()),
            (1, role(), n.clone()),
            (1, content("B1"), n.clone()),
            (1, content("B2"), n.clone()),
            (
                1,
                serde_json::json!({"tool_calls": [{"index": 0, "id": tool_call_id("n2", 1, 0, "g", None), "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
                n.clone()
            ),
            (1, empty(), Value::from("tool_calls")),
            (0, content("A2"), n.clone()),
            (0, empty(), Value::from("length")),
        ]
    );
}

#[test]
fn grounding_sources_before_finish() {
    let events = [
        r#"{"candidates": [{"content": {"parts": [{"text": "Oslo is about 4 °C."}]}, "index": 0, "groundingMetadata": {}}], "responseId": "g"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": " Cold."}]}, "finishReason": "STOP", "index": 0,
            "groundingMetadata": {"groundingChunks": [{"web": {"uri": "https://a.test", "title": "met.no"}}, {"web": {"uri": "https://a.test", "title": "dup"}}, {"web": {"uri": "https://b.test"}}],
            "groundingSupports": [{"segment": {"endIndex": 5}, "groundingChunkIndices": [0]}]}}], "responseId": "g"}"#,
    ];
    let got = deltas(&run(&events, false, &Options::default()));
    assert_eq!(got.len(), 5);
    assert_eq!(got[2].1, content(" Cold."));
    assert_eq!(
        got[3].1,
        content("\n\nSources:\n1. [met.no](https://a.test)\n2. [https://b.test](https://b.test)")
    );
    assert_eq!(got[4], (0, empty(), Value::from("stop")));
    let got = deltas(&run(&events, false, &quiet()));
    assert_eq!(got.len(), 4, "no sources when show_search_link is off");
    // Grounding on an unfinished, truncated stream still comes before the stop.
    let got = deltas(&run(
        &events[1..]
            .iter()
            .map(|e| e.replace("\"finishReason\": \"STOP\",", ""))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        false,
        &Options::default(),
    ));
    assert_eq!(got.len(), 4);
    assert!(
        got[2].1["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("\n\nSources:")
    );
    assert_eq!(got[3].2, "stop");
}

#[test]
fn finish_reasons_in_stream() {
    for (reason, want) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ] {
        let ev = format!(
            r#"{{"candidates": [{{"finishReason": "{reason}", "citationMetadata": {{}}}}]}}"#
        );
        let got = deltas(&run(&[&ev], false, &Options::default()));
        assert_eq!(
            got,
            vec![(0, role(), Value::Null), (0, empty(), Value::from(want))],
            "{reason}"
        );
    }
}

#[test]
fn blocked_prompt() {
    let ev = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH"}]}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}"#;
    let all = run(&[ev], true, &Options::default());
    assert_eq!(
        deltas(&all),
        vec![
            (0, role(), Value::Null),
            (
                0,
                json!({"refusal": "Prompt blocked by Gemini: SAFETY"}),
                Value::Null
            ),
            (0, empty(), Value::from("content_filter"))
        ]
    );
    assert_eq!(all.len(), 5);
    assert_eq!(all[3]["usage"]["prompt_tokens"], 9);
    assert_eq!(all[4], "[DONE]");
    let id = all[0]["id"].as_str().unwrap_or("");
    assert!(id.starts_with("chatcmpl-") && id.len() == 25, "{id}");
    assert!(all.iter().take(4).all(|c| c["id"] == id));
}

#[test]
fn error_payloads() {
    let first = r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}}], "responseId": "e"}"#;
    let cases = [
        (
            r#"{"error": {"code": 499, "message": "The operation was cancelled.", "status": "CANCELLED"}}"#,
            "The operation was cancelled.",
            "cancelled",
        ),
        (
            r#"[{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]"#,
            "The model is overloaded.",
            "unavailable",
        ),
        (r#"{"error": {}}"#, "upstream error", "upstream_error"),
        (
            r#"{"error": "boom key=AIzaSecret"}"#,
            "boom key=***",
            "upstream_error",
        ),
        (
            "not json",
            "upstream sent a stream event that is not JSON",
            "upstream_error",
        ),
        (
            "{\"candidates\": [",
            "upstream sent a stream event that is not JSON",
            "upstream_error",
        ),
        (
            "42",
            "upstream sent a stream event that is not a JSON object",
            "upstream_error",
        ),
    ];
    for (payload, message, code) in cases {
        let mut t = new(true, &Options::default());
        let mut out = Vec::new();
        assert_eq!(t.on_event(first, &mut out), Step::Continue);
        assert_eq!(t.on_event("", &mut out), Step::Continue);
        assert_eq!(t.on_event(" \n", &mut out), Step::Continue);
        assert_eq!(t.on_event(payload, &mut out), Step::Ended, "{payload}");
        assert!(t.started());
        let mark = out.len();
        assert_eq!(t.on_event(first, &mut out), Step::Ended);
        t.finish(&mut out);
        t.fail("again", "x", &mut out);
        assert_eq!(out.len(), mark, "nothing after the error");
        let all = chunks(&out);
        assert_eq!(all.len(), 4);
        assert_eq!(
            all[2],
            serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}}),
            "{payload}"
        );
        assert_eq!(all[3], "[DONE]");
    }
    // An error as the very first event: nothing started.
    let mut t = new(false, &Options::default());
    let mut out = Vec::new();
    assert_eq!(
        t.on_event(r#"{"error": {"message": "m"}}"#, &mut out),
        Step::Ended
    );
    assert!(!t.started());
    assert_eq!(chunks(&out).len(), 2);
}

#[test]
fn fail_after_output() {
    let mut t = new(true, &Options::default());
    let mut out = Vec::new();
    assert!(!t.started());
    t.on_event(
        r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}"#,
        &mut out,
    );
    assert!(t.started());
    t.fail("idle timeout", "timeout", &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.ends_with(
        "data: {\"error\":{\"code\":\"timeout\",\"message\":\"idle timeout\",\"param\":null,\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n"
    ), "{text}");
}

#[test]
fn truncated_stream_finish() {
    let text_only = [
        r#"{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "usageMetadata": {"promptTokenCount": 5, "cachedContentTokenCount": 2, "totalTokenCount": 5}, "responseId": "t"}"#,
    ];
    let all = run(&text_only, true, &Options::default());
    assert_eq!(
        deltas(&all),
        vec![
            (0, role(), Value::Null),
            (0, content("Hel"), Value::Null),
            (0, empty(), Value::from("stop"))
        ]
    );
    assert_eq!(all[3]["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(all[3]["usage"]["total_tokens"], 5);
    let with_call =
        [r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]}}]}"#];
    let all = run(&with_call, false, &Options::default());
    assert_eq!(all.len(), 4, "no usage chunk without include_usage");
    assert_eq!(deltas(&all)[2].2, "tool_calls");
    // Tool ids without responseId use "".
    assert_eq!(
        deltas(&all)[1].1["tool_calls"][0]["id"],
        tool_call_id("", 0, 0, "f", None)
    );
}

#[test]
fn empty_stream_finish() {
    for include_usage in [false, true] {
        let all = run(&[], include_usage, &Options::default());
        assert_eq!(
            deltas(&all),
            vec![(0, role(), Value::Null), (0, empty(), Value::from("stop"))]
        );
        assert_eq!(all.len(), if include_usage { 4 } else { 3 });
        if include_usage {
            assert_eq!(all[2]["usage"]["total_tokens"], 0);
        }
        let id = all[0]["id"].as_str().unwrap_or("");
        assert!(id.starts_with("chatcmpl-") && id.len() == 25);
    }
    // Usage-only events, no candidates: same shape.
    let all = run(
        &[r#"{"usageMetadata": {"promptTokenCount": 3}}"#],
        true,
        &Options::default(),
    );
    assert_eq!(all[2]["usage"]["prompt_tokens"], 3);
}

#[test]
fn deterministic_fallback_id_and_array_events() {
    let ev = r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}"#;
    let a = run(&[ev], false, &Options::default());
    let b = run(&[ev], false, &Options::default());
    assert_eq!(a, b);
    let arr = format!("[{ev}, 1, {ev}]");
    let got = deltas(&run(&[&arr], false, &Options::default()));
    assert_eq!(got.len(), 4, "role, x, x, stop");
    assert_eq!(run(&["[DONE]"], false, &Options::default()).len(), 3);
}

#[test]
fn content_after_finish_is_ignored() {
    let events = [
        r#"{"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}"#,
    ];
    let got = deltas(&run(&events, false, &Options::default()));
    assert_eq!(got.len(), 3);
}

#[test]
fn choice_count_is_bounded() {
    let cands: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"index": {i}, "content": {{"parts": [{{"text": "t"}}]}}}}"#))
        .collect();
    let ev = format!(r#"{{"candidates": [{}]}}"#, cands.join(","));
    let got = deltas(&run(&[&ev], false, &Options::default()));
    assert_eq!(
        got.len(),
        MAX_CHOICES * 3,
        "role, text, stop per kept choice"
    );
    assert!(got.iter().all(|d| d.0 < MAX_CHOICES as u64));
}

#[test]
fn no_panic_on_odd_input() {
    let odd = [
        "null",
        "1",
        "\"s\"",
        "[]",
        "[null]",
        "{}",
        "[{\"error\": null}]",
        r#"{"candidates": null, "usageMetadata": 5}"#,
        r#"{"candidates": [null, 1, [], {"index": -1}, {"index": 18446744073709551615}]}"#,
        r#"{"candidates": [{"content": {"parts": [null, 1, {"text": 5}, {"functionCall": 1}, {"functionCall": {"name": [], "args": "x"}}, {"thought": true}, {"executableCode": null}, {"inlineData": {}}]}, "finishReason": ["STOP"]}]}"#,
        r#"{"candidates": [{"groundingMetadata": {"groundingChunks": {"web": 1}}, "finishReason": "STOP"}]}"#,
        r#"{"promptFeedback": {"blockReason": 1}}"#,
        r#"{"responseId": {"x": 1}, "candidates": [{}]}"#,
        "\u{0}\u{feff}",
    ];
    for opts in [Options::default(), quiet()] {
        for s in odd {
            let mut t = new(true, &opts);
            let mut out = Vec::new();
            let _ = t.on_event(s, &mut out);
            let _ = t.on_event(s, &mut out);
            t.finish(&mut out);
            let _ = chunks(&out);
        }
    }
    // Pseudo-random bytes through the parser and the translator.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"data: {}[]\"\r\n:,0123candidates\\\xff\xc3";
    for round in 0..300 {
        let mut bytes = Vec::new();
        for _ in 0..(round % 97) * 3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let mut p = SseParser::new(64);
        let mut t = new(round % 2 == 0, &Options::default());
        let mut events = Vec::new();
        let mut out = Vec::new();
        for c in bytes.chunks(1 + round % 5) {
            if p.push(c, &mut events).is_err() {
                break;
            }
        }
        events.extend(p.finish());
        for e in &events {
            if t.on_event(e, &mut out) == Step::Ended {
                break;
            }
        }
        t.finish(&mut out);
        let _ = chunks(&out);
    }
}

/// Plain text/thought events (the shape the old typed fast path took) with
/// members the wire model does not name: escapes survive, unknown members
/// and a part with only a signature change nothing, content after the
/// finish is dropped, and every chunk is valid JSON.
#[test]
fn text_events_with_unknown_members() {
    let events = [
        r#"{"candidates":[{"content":{"parts":[{"text":"**Plan**","thought":true}],"role":"model"},"index":0}],"responseId":"r1","modelVersion":"gemini-2.5-flash"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"Hello \"x\" \u00e9\n"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1,"totalTokenCount":5,"promptTokensDetails":[{"modality":"TEXT","tokenCount":4}]},"responseId":"r1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":""},{"thoughtSignature":"c2ln"},{"text":" world"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":3,"thoughtsTokenCount":2,"totalTokenCount":9}}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"late"}]},"index":0}]}"#,
    ];
    for show_thinking in [true, false] {
        let opts = Options {
            show_thinking,
            ..Options::default()
        };
        for include_usage in [true, false] {
            let got = run(&events, include_usage, &opts);
            let mut want = vec![(0, role(), Value::Null)];
            if show_thinking {
                want.push((0, json!({"reasoning_content": "**Plan**"}), Value::Null));
            }
            want.push((0, content("Hello \"x\" é\n"), Value::Null));
            want.push((0, content(" world"), Value::Null));
            want.push((0, empty(), json!("stop")));
            assert_eq!(deltas(&got), want);
            assert_eq!(got[0]["id"], "chatcmpl-r1");
            if include_usage {
                let u = &got[got.len() - 2]["usage"];
                assert_eq!(
                    (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()),
                    (Some(4), Some(5))
                );
            }
            assert_eq!(got.last(), Some(&Value::from("[DONE]")));
        }
    }
}

/// An unknown `finishReason` ends the choice with `stop`; an unknown part
/// kind is skipped; a candidate member the model does not name is ignored.
#[test]
fn unknown_finish_reason_and_part_kind() {
    let got = run(
        &[
            r#"{"candidates":[{"content":{"parts":[{"text":"a"},{"futurePart":{"x":1}},{"text":"b"}]},"finishReason":"SOMETHING_NEW","futureMember":[1],"index":0}],"responseId":"u"}"#,
        ],
        false,
        &Options::default(),
    );
    assert_eq!(
        deltas(&got),
        vec![
            (0, role(), Value::Null),
            (0, content("a"), Value::Null),
            (0, content("b"), Value::Null),
            (0, empty(), json!("stop")),
        ]
    );
}
