//! Property tests of the pure translation: whatever JSON (or bytes) comes in,
//! from a client or from Gemini, translation never panics and its output
//! keeps its invariants; streamed and plain answers agree part for part.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use gemini_balance::openai::{Options, chat, embeddings, error, models, response, schema, stream};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys that steer the translators into their interesting branches.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "input_audio",
    "data",
    "format",
    "file",
    "file_data",
    "filename",
    "tool_calls",
    "tool_call_id",
    "id",
    "function",
    "name",
    "arguments",
    "tools",
    "tool_choice",
    "parameters",
    "properties",
    "items",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "required",
    "enum",
    "const",
    "nullable",
    "additionalProperties",
    "stream",
    "stream_options",
    "include_usage",
    "n",
    "stop",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "seed",
    "logprobs",
    "top_logprobs",
    "response_format",
    "json_schema",
    "schema",
    "reasoning_effort",
    "extra_body",
    "google",
    "thinking_config",
    "safety_settings",
    "cached_content",
    "modalities",
    "functions",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "thoughtSignature",
    "thought",
    "finishReason",
    "index",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
    "groundingMetadata",
    "groundingChunks",
    "groundingSupports",
    "segment",
    "startIndex",
    "endIndex",
    "partIndex",
    "groundingChunkIndices",
    "web",
    "uri",
    "title",
    "promptFeedback",
    "blockReason",
    "inlineData",
    "mimeType",
    "executableCode",
    "language",
    "code",
    "codeExecutionResult",
    "outcome",
    "output",
    "responseId",
    "logprobsResult",
    "chosenCandidates",
    "topCandidates",
    "token",
    "logProbability",
    "error",
    "status",
    "message",
    "details",
    "input",
    "dimensions",
    "encoding_format",
    "embeddings",
    "values",
    "embedding",
    "name",
];

/// Strings that mean something to the translators.
const STRINGS: &[&str] = &[
    "",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "model",
    "text",
    "image_url",
    "input_audio",
    "file",
    "object",
    "string",
    "integer",
    "array",
    "null",
    "auto",
    "none",
    "required",
    "json_object",
    "json_schema",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "high",
    "low",
    "gemini-2.5-flash",
    "gemini-2.5-flash-search",
    "gemini-3-pro-preview-thinking",
    "gemini-2.0-flash-non-thinking",
    "models/x",
    "data:image/png;base64,iVBORw0K",
    "data:image/png;base64,",
    "data:,",
    "data:;base64,@@",
    "http://127.0.0.1/x.png",
    "#",
    "#/$defs/A",
    "#/properties",
    "call_0123456789abcdef_ts_c2ln",
    "wav",
    "mp3",
    "{}",
    "{\"a\":1}",
    "[1,2]",
    "\u{1F600}é",
    "[DONE]",
    "RESOURCE_EXHAUSTED",
    "base64",
    "float",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-3i64..300).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_$]{0,8}",
    ]
}

/// Arbitrary JSON, biased towards the field names both APIs use.
fn arb_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Translation settings, all flags varied.
fn arb_options() -> impl Strategy<Value = Options> {
    // SAFETY_SETTINGS is a JSON array (the config refuses anything else).
    let safety = prop::option::of(prop::collection::vec(arb_json(), 0..3).prop_map(Value::Array));
    (any::<[bool; 4]>(), safety).prop_map(|(f, safety)| Options {
        show_thinking: f[0],
        thinking_budget_map: vec![("gemini-2.5-flash".into(), 512)],
        search_models: vec!["gemini-2.5-flash".into()],
        show_search_link: f[1],
        code_execution: f[2],
        url_context: f[3],
        url_context_models: vec!["gemini-2.5-flash".into()],
        safety_settings: safety,
        thinking_models: vec!["gemini-2.5-flash".into()],
    })
}

// ---------------------------------------------------------------------------
// OpenAI-shaped requests

fn content_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,10}".prop_map(|t| json!({"type": "text", "text": t})),
        prop::sample::select(STRINGS)
            .prop_map(|u| json!({"type": "image_url", "image_url": {"url": u}})),
        Just(json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}})),
        (
            prop::sample::select(&["wav", "mp3", "", "x/y"][..]),
            prop::sample::select(STRINGS)
        )
            .prop_map(
                |(f, d)| json!({"type": "input_audio", "input_audio": {"data": d, "format": f}})
            ),
        prop::sample::select(STRINGS)
            .prop_map(|d| json!({"type": "file", "file": {"file_data": d, "filename": "a.pdf"}})),
        arb_json(),
    ]
}

fn tool_call() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["call_a", "call_b", "call_x_ts_c2ln", ""][..]),
        prop::sample::select(&["get_weather", "f", ""][..]),
        prop::sample::select(&["{}", "", "{\"city\":\"Oslo\"}", "[1]", "nope"][..]),
    )
        .prop_map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
        })
}

fn message() -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        ".{0,10}".prop_map(Value::String),
        prop::collection::vec(content_part(), 0..4).prop_map(Value::Array),
        Just(Value::Null),
        arb_json(),
    ];
    (
        prop::sample::select(
            &[
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
                "function",
                "x",
            ][..],
        ),
        content,
        prop::option::of(prop::collection::vec(tool_call(), 0..3)),
        prop::option::of(prop::sample::select(
            &["call_a", "call_b", "call_x_ts_c2ln", "zz"][..],
        )),
    )
        .prop_map(|(role, content, calls, id)| {
            let mut m = json!({"role": role, "content": content});
            if let Some(c) = calls {
                m["tool_calls"] = Value::Array(c);
            }
            if let Some(id) = id {
                m["tool_call_id"] = Value::from(id);
            }
            m
        })
}

fn tool() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop::sample::select(&["get_weather", "googleSearch", "google_search", ""][..]),
            arb_json()
        )
            .prop_map(
                |(n, p)| json!({"type": "function", "function": {"name": n, "parameters": p}})
            ),
        Just(json!({"type": "code_execution"})),
        Just(json!({"googleSearch": {}})),
        arb_json(),
    ]
}

/// Requests shaped like OpenAI's, with arbitrary values in every field.
fn arb_request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(STRINGS),
        prop::collection::vec(message(), 0..6),
        prop::option::of(prop::collection::vec(tool(), 0..4)),
        prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        "tool_choice",
                        "temperature",
                        "top_p",
                        "top_k",
                        "n",
                        "stop",
                        "seed",
                        "max_tokens",
                        "max_completion_tokens",
                        "logprobs",
                        "top_logprobs",
                        "response_format",
                        "reasoning_effort",
                        "extra_body",
                        "google",
                        "stream",
                        "stream_options",
                        "modalities",
                        "presence_penalty",
                        "web_search_options",
                    ][..],
                ),
                arb_json(),
            ),
            0..5,
        ),
    )
        .prop_map(|(model, messages, tools, extra)| {
            let mut r = json!({"model": model, "messages": messages});
            if let Some(t) = tools {
                r["tools"] = Value::Array(t);
            }
            for (k, v) in extra {
                r[k] = v;
            }
            r
        })
}

fn check_request(req: &Value, opts: &Options) {
    check_prepared(req, opts);
    match chat::translate_request(req, opts) {
        Ok(call) => {
            assert!(!call.model.is_empty());
            let contents = call.body["contents"].as_array().expect("contents");
            assert!(!contents.is_empty(), "{req}");
            for c in contents {
                let parts = c["parts"].as_array().expect("parts");
                assert!(!parts.is_empty(), "no empty turn: {req}");
                assert!(matches!(c["role"].as_str(), Some("user" | "model")));
            }
            assert!(call.body["safetySettings"].is_array());
            // The body serializes (it is what goes on the wire) and reparses.
            let bytes = serde_json::to_vec(&call.body).expect("serializable");
            let back: Value = serde_json::from_slice(&bytes).expect("reparses");
            assert_eq!(
                back["contents"].as_array().map(Vec::len),
                Some(contents.len())
            );
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(e.param.as_deref().is_some_and(|p| !p.is_empty()), "{e:?}");
        }
    }
}

/// The body bytes the gateway sends ([`chat::prepare_request`]) are valid
/// JSON equal to the `Value` view ([`chat::translate_request`]), with the
/// same switches, and both fail alike; returns whether it translated.
/// (This replaced the check that the old byte-level fast path matched the
/// `Value` path: there is one translation now, serialized once.)
fn check_prepared(req: &Value, opts: &Options) -> bool {
    let prepared = chat::prepare_request(req, opts);
    let view = chat::translate_request(req, opts);
    match (prepared, view) {
        (Ok(p), Ok(v)) => {
            let body: Value = serde_json::from_slice(&p.body).expect("the body is JSON");
            assert_eq!(body, v.body, "{req}");
            assert_eq!(
                (p.model, p.client_model, p.stream, p.include_usage),
                (v.model, v.client_model, v.stream, v.include_usage)
            );
            true
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "{req}");
            false
        }
        (a, b) => panic!("prepare and translate disagree on {req}: {a:?} / {b:?}"),
    }
}

/// Plain-text conversations (the fast path's shape) with arbitrary extra
/// members.
fn plain_request() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        ".{0,12}".prop_map(Value::String),
        Just(Value::String(String::new())),
        Just(Value::String(
            "quote \" slash \\ nl \n tab \t nul \u{0} é 😀 \u{2028}".into()
        )),
        Just(Value::Null),
    ];
    let msg = (
        prop::sample::select(&["system", "developer", "user", "assistant"][..]),
        text,
        prop::option::of(arb_json()),
    )
        .prop_map(|(role, content, name)| {
            let mut m = json!({"role": role, "content": content});
            if let Some(n) = name {
                m["name"] = n;
            }
            m
        });
    (
        prop::sample::select(&["gemini-2.5-flash", "gemini-2.5-pro-search", "models/gemini-3-pro-preview-thinking", "gemini-2.0-flash-non-thinking", "gemini-2.5-flash-search-thinking"][..]),
        prop::collection::vec(msg, 1..6),
        prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        "temperature",
                        "top_p",
                        "n",
                        "stop",
                        "seed",
                        "max_tokens",
                        "max_completion_tokens",
                        "reasoning_effort",
                        "extra_body",
                        "stream",
                        "stream_options",
                        "presence_penalty",
                        "frequency_penalty",
                        "safety_settings",
                        "user",
                        "tools",
                        "tool_choice",
                        "response_format",
                    ][..],
                ),
                prop_oneof![
                    arb_json(),
                    Just(json!(0.7)),
                    Just(json!(256)),
                    Just(json!(true)),
                    Just(json!("high")),
                    Just(json!({"include_usage": true})),
                    Just(json!({"google": {"thinking_config": {"thinking_budget": 128}, "cached_content": "cachedContents/x"}})),
                    Just(json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}])),
                ],
            ),
            0..4,
        ),
    )
        .prop_map(|(model, messages, extra)| {
            let mut r = json!({"model": model, "messages": messages});
            for (k, v) in extra {
                r[k] = v;
            }
            r
        })
}

// ---------------------------------------------------------------------------
// Gemini-shaped answers

fn gemini_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => ".{0,8}".prop_map(|t| json!({"text": t})),
        1 => ".{0,8}".prop_map(|t| json!({"text": t, "thought": true})),
        1 => (prop::sample::select(&["f", "get_weather", ""][..]), arb_json(), prop::option::of("[a-z]{1,6}"))
            .prop_map(|(n, a, s)| {
                let mut p = json!({"functionCall": {"name": n, "args": a}});
                if let Some(s) = s { p["thoughtSignature"] = Value::from(s); }
                p
            }),
        1 => ".{0,8}".prop_map(|c| json!({"executableCode": {"language": "PYTHON", "code": c}})),
        1 => prop::sample::select(&["OUTCOME_OK", "OUTCOME_FAILED", "X"][..])
            .prop_map(|o| json!({"codeExecutionResult": {"outcome": o, "output": "4\n"}})),
        1 => Just(json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}})),
        1 => "[a-z]{1,6}".prop_map(|s| json!({"text": "", "thoughtSignature": s})),
        1 => arb_json(),
    ]
}

fn grounding() -> impl Strategy<Value = Value> {
    (0usize..3, prop::collection::vec((0u64..40, 0u64..40, 0u64..3), 0..3)).prop_map(|(n, sup)| {
        let chunks: Vec<Value> = (0..n)
            .map(|i| json!({"web": {"uri": format!("https://e.com/{i}"), "title": format!("T{i}")}}))
            .collect();
        let supports: Vec<Value> = sup
            .into_iter()
            .map(|(s, e, c)| json!({"segment": {"startIndex": s, "endIndex": e}, "groundingChunkIndices": [c]}))
            .collect();
        json!({"groundingChunks": chunks, "groundingSupports": supports})
    })
}

/// A well-formed `GenerateContentResponse` with distinct candidate indices.
fn arb_answer() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (
                prop::collection::vec(gemini_part(), 0..6),
                prop::option::of(prop::sample::select(
                    &[
                        "STOP",
                        "MAX_TOKENS",
                        "SAFETY",
                        "OTHER",
                        "MALFORMED_FUNCTION_CALL",
                    ][..],
                )),
                prop::option::of(grounding()),
            ),
            0..3,
        ),
        prop::option::of((0u64..50, 0u64..50, 0u64..50)),
        prop::option::of("[a-zA-Z0-9_-]{1,12}"),
        any::<bool>(),
    )
        .prop_map(|(cands, usage, rid, blocked)| {
            let mut v = json!({});
            let list: Vec<Value> = cands
                .into_iter()
                .map(|(parts, finish, g)| {
                    let mut c = json!({"content": {"role": "model", "parts": parts}});
                    if let Some(f) = finish {
                        c["finishReason"] = Value::from(f);
                    }
                    if let Some(g) = g {
                        c["groundingMetadata"] = g;
                    }
                    c
                })
                .collect();
            if !list.is_empty() {
                v["candidates"] = Value::Array(list);
            } else if blocked {
                v["promptFeedback"] = json!({"blockReason": "SAFETY"});
            }
            if let Some((p, c, t)) = usage {
                v["usageMetadata"] = json!({"promptTokenCount": p, "candidatesTokenCount": c,
                    "thoughtsTokenCount": t, "totalTokenCount": p + c + t});
            }
            if let Some(r) = rid {
                v["responseId"] = Value::from(r);
            }
            v
        })
}

fn check_answer(out: &Value) {
    assert_eq!(out["object"], "chat.completion");
    let choices = out["choices"].as_array().expect("choices");
    assert!(!choices.is_empty());
    for c in choices {
        assert!(c["message"]["content"].is_string() || c["message"]["content"].is_null());
        assert!(c["finish_reason"].is_string() || c["finish_reason"].is_null());
    }
    for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert!(out["usage"][k].is_u64(), "{k}");
    }
}

/// Stream `events` through the SSE parser (in the given byte chunks) and the
/// translator; check the framing and return the chunks (without `[DONE]`).
fn run_stream(bytes: &[u8], cuts: &[usize], include_usage: bool, opts: &Options) -> Vec<Value> {
    let mut parser = stream::SseParser::new(1 << 20);
    let mut tr = stream::StreamTranslator::new("m", 1, include_usage, opts);
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut ended = false;
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for p in points {
        if p < start {
            continue;
        }
        if parser.push(&bytes[start..p], &mut events).is_err() {
            tr.fail("too large", "upstream_error", &mut out);
            ended = true;
            break;
        }
        start = p;
        for e in events.drain(..) {
            if tr.on_event(&e, &mut out) == stream::Step::Ended {
                ended = true;
            }
        }
    }
    if !ended {
        if let Some(last) = parser.finish() {
            let _ = tr.on_event(&last, &mut out);
        }
        tr.finish(&mut out);
    }
    // Framing: `data: <json>\n\n` events, `[DONE]` last.
    let text = String::from_utf8(out).expect("UTF-8 output");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let mut chunks = Vec::new();
    for ev in text.split_terminator("\n\n") {
        let data = ev.strip_prefix("data: ").expect("data: framing");
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).expect("each chunk is JSON");
        assert!(v.get("error").is_some() || v["object"] == "chat.completion.chunk");
        chunks.push(v);
    }
    assert!(!chunks.is_empty());
    chunks
}

/// The translator's whole output for these event payloads.
fn translate_events(events: &[String], include_usage: bool, opts: &Options) -> String {
    let mut tr = stream::StreamTranslator::new("m", 1, include_usage, opts);
    let mut out = Vec::new();
    for e in events {
        if tr.on_event(e, &mut out) == stream::Step::Ended {
            return String::from_utf8(out).expect("UTF-8");
        }
    }
    tr.finish(&mut out);
    String::from_utf8(out).expect("UTF-8")
}

/// `answer` with a member the wire model does not name added to the
/// answer, its usage, every candidate, content and part (objects only).
fn with_unknown_members(answer: &Value) -> Value {
    fn add(v: &mut Value) {
        if let Value::Object(m) = v {
            m.insert(
                "futureMember".into(),
                json!({"kind": [1, "x", null], "on": true}),
            );
        }
    }
    let mut a = answer.clone();
    add(&mut a);
    add(&mut a["usageMetadata"]);
    if let Some(cands) = a.get_mut("candidates").and_then(Value::as_array_mut) {
        for c in cands {
            add(c);
            if let Some(content) = c.get_mut("content") {
                add(content);
                if let Some(parts) = content.get_mut("parts").and_then(Value::as_array_mut) {
                    parts.iter_mut().for_each(add);
                }
            }
        }
    }
    a
}

/// The SSE bytes Gemini would send for these answers.
fn sse(answers: &[Value], crlf: bool) -> Vec<u8> {
    let mut b = Vec::new();
    for a in answers {
        b.extend_from_slice(b"data: ");
        b.extend_from_slice(a.to_string().as_bytes());
        b.extend_from_slice(if crlf { b"\r\n\r\n" } else { b"\n\n" });
    }
    b
}

/// (content, reasoning, [(name, arguments)], finish) of one choice in chunks.
fn stream_choice(chunks: &[Value], index: u64) -> (String, String, Vec<(String, String)>, Value) {
    let (mut content, mut reasoning, mut calls, mut finish) =
        (String::new(), String::new(), Vec::new(), Value::Null);
    for c in chunks {
        for ch in c["choices"].as_array().into_iter().flatten() {
            if ch["index"] != index {
                continue;
            }
            let d = &ch["delta"];
            content.push_str(d["content"].as_str().unwrap_or(""));
            reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                calls.push((
                    tc["function"]["name"].as_str().unwrap_or("").to_string(),
                    tc["function"]["arguments"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ));
            }
            if !ch["finish_reason"].is_null() {
                finish = ch["finish_reason"].clone();
            }
        }
    }
    (content, reasoning, calls, finish)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn chat_requests_from_any_json(v in arb_json(), opts in arb_options()) {
        check_request(&v, &opts);
        check_request(&json!({"model": "gemini-2.5-flash", "messages": [v]}), &opts);
    }

    #[test]
    fn openai_shaped_requests(r in arb_request(), opts in arb_options()) {
        check_request(&r, &opts);
    }

    #[test]
    fn prepared_bodies_agree(r in plain_request(), any in arb_request(), opts in arb_options()) {
        let took = check_prepared(&r, &opts);
        check_prepared(&any, &opts);
        // A plain conversation with some text always translates.
        let has_text = r["messages"].as_array().is_some_and(|ms| ms.iter().any(|m| {
            m["content"].as_str().is_some_and(|c| !c.is_empty())
        }));
        let plain = r["messages"].as_array().is_some_and(|ms| ms.iter().all(|m| {
            m["content"].is_string() || (m["role"] == "assistant" && m["content"].is_null())
        }));
        if plain && has_text && r["model"].as_str().is_some_and(|m| !m.is_empty()) {
            prop_assert!(took || chat::translate_request(&r, &opts).is_err());
        }
    }

    #[test]
    fn schemas_clean_to_objects(v in arb_json()) {
        let s = schema::clean_schema(&v);
        prop_assert!(s.is_object());
        let again = schema::clean_schema(&s);
        prop_assert!(again.is_object());
    }

    #[test]
    fn answers_from_any_json(v in arb_json(), opts in arb_options()) {
        let ctx = response::ResponseCtx { model: "m", created: 1, opts: &opts };
        check_answer(&response::translate_response(&v, &ctx));
        check_answer(&response::translate_response(&json!({"candidates": [v]}), &ctx));
    }

    #[test]
    fn streams_from_any_json(events in prop::collection::vec(arb_json(), 0..4), cuts in prop::collection::vec(any::<usize>(), 0..6), usage in any::<bool>(), opts in arb_options()) {
        run_stream(&sse(&events, true), &cuts, usage, &opts);
    }

    #[test]
    fn sse_parser_takes_any_bytes_in_any_split(bytes in prop::collection::vec(any::<u8>(), 0..300), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let whole = {
            let mut p = stream::SseParser::new(1 << 20);
            let mut out = Vec::new();
            p.push(&bytes, &mut out).unwrap();
            out.extend(p.finish());
            out
        };
        let mut p = stream::SseParser::new(1 << 20);
        let mut out = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        points.push(bytes.len());
        let mut start = 0;
        for q in points {
            p.push(&bytes[start..q], &mut out).unwrap();
            start = q;
        }
        out.extend(p.finish());
        prop_assert_eq!(whole, out);
        // A tiny limit errors instead of growing.
        let mut small = stream::SseParser::new(8);
        let _ = small.push(&bytes, &mut Vec::new());
    }

    /// Streamed and plain translations of the same answer agree: same text,
    /// same reasoning, same calls, same finish, for every choice.
    #[test]
    fn stream_and_plain_agree(answer in arb_answer(), cuts in prop::collection::vec(any::<usize>(), 0..6), crlf in any::<bool>(), opts in arb_options()) {
        // Both paths read Gemini's bytes (so floats parse the same way).
        let answer: Value = serde_json::from_str(&answer.to_string()).unwrap();
        let ctx = response::ResponseCtx { model: "m", created: 1, opts: &opts };
        let plain = response::translate_response(&answer, &ctx);
        check_answer(&plain);
        let chunks = run_stream(&sse(std::slice::from_ref(&answer), crlf), &cuts, true, &opts);
        let usage = chunks.last().unwrap();
        prop_assert_eq!(&usage["usage"], &plain["usage"]);
        for c in plain["choices"].as_array().unwrap() {
            let index = c["index"].as_u64().unwrap();
            let (content, reasoning, calls, finish) = stream_choice(&chunks, index);
            let m = &c["message"];
            prop_assert_eq!(content.as_str(), m["content"].as_str().unwrap_or(""));
            prop_assert_eq!(reasoning.as_str(), m["reasoning_content"].as_str().unwrap_or(""));
            let plain_calls: Vec<(String, String)> = m["tool_calls"].as_array().into_iter().flatten()
                .map(|t| (t["function"]["name"].as_str().unwrap().to_string(), t["function"]["arguments"].as_str().unwrap().to_string()))
                .collect();
            prop_assert_eq!(calls, plain_calls);
            // A stream always finishes; an unfinished plain candidate is `null`.
            if !c["finish_reason"].is_null() {
                prop_assert_eq!(&finish, &c["finish_reason"]);
            }
            prop_assert!(!finish.is_null());
        }
    }

    /// Members the wire model does not name (on the event, its candidates,
    /// their content and parts, the usage) are carried as data and change
    /// nothing in the stream: the output is byte-identical without them.
    /// (This replaced the check that the typed fast path matched the old
    /// `Value` path: there is one path now.)
    #[test]
    fn unknown_members_leave_streams_unchanged(answers in prop::collection::vec(arb_answer(), 1..5), junk in prop::collection::vec(arb_json(), 0..2), usage in any::<bool>(), opts in arb_options()) {
        let mut events: Vec<Value> = answers;
        for e in &mut events {
            e["responseId"] = json!("rid");
        }
        let future: Vec<Value> = events.iter().map(with_unknown_members).collect();
        let mut plain: Vec<String> = events.iter().map(Value::to_string).collect();
        let mut extended: Vec<String> = future.iter().map(Value::to_string).collect();
        plain.extend(junk.iter().map(Value::to_string));
        extended.extend(junk.iter().map(Value::to_string));
        prop_assert_eq!(
            translate_events(&plain, usage, &opts),
            translate_events(&extended, usage, &opts)
        );
    }

    /// The same for whole answers.
    #[test]
    fn unknown_members_leave_answers_unchanged(answer in arb_answer(), opts in arb_options()) {
        let mut answer = answer;
        answer["responseId"] = json!("rid");
        let ctx = response::ResponseCtx { model: "m", created: 1, opts: &opts };
        let plain = response::translate_response_bytes(answer.to_string().as_bytes(), &ctx);
        let extended = response::translate_response_bytes(with_unknown_members(&answer).to_string().as_bytes(), &ctx);
        prop_assert!(plain.is_some());
        prop_assert_eq!(plain, extended);
    }

    /// A thought signature put into a tool call id comes back to Gemini when
    /// the client replays the call.
    #[test]
    fn signatures_survive_the_round_trip(sig in "[A-Za-z0-9+/]{1,60}={0,2}", pos in 0u64..4, model in prop::sample::select(&["gemini-2.5-flash", "gemini-3-pro-preview"][..])) {
        let id = response::tool_call_id("rid", 0, pos, "f", Some(&sig));
        let req = json!({"model": model, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "ok"}
        ]});
        let call = chat::translate_request(&req, &Options::default()).unwrap();
        let c = &call.body["contents"];
        prop_assert_eq!(&c[1]["parts"][0]["thoughtSignature"], &Value::from(sig.as_str()));
        prop_assert_eq!(&c[2]["parts"][0]["functionResponse"]["name"], "f");
    }

    #[test]
    fn embeddings_never_panic(req in arb_json(), answers in prop::collection::vec(arb_json(), 0..3)) {
        let _ = embeddings::translate_request(&req);
        let shaped = json!({"model": "gemini-embedding-001", "input": req, "dimensions": 4});
        if let Ok(call) = embeddings::translate_request(&shaped) {
            for b in &call.batches {
                prop_assert!(b["requests"].as_array().is_some_and(|r| !r.is_empty() && r.len() <= 100));
            }
            let _ = embeddings::translate_response(&answers, &call);
        }
        let call = embeddings::translate_request(&json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64"})).unwrap();
        let _ = embeddings::translate_response(&answers, &call);
    }

    #[test]
    fn models_and_errors_never_panic(v in arb_json(), list in prop::collection::vec(arb_json(), 0..4), status in 0u16..700, opts in arb_options()) {
        let out = models::translate_list(&list, &opts);
        prop_assert!(out["data"].is_array());
        let _ = models::translate_one(&v);
        let m = error::from_gemini(status, v.to_string().as_bytes());
        prop_assert!(m.body["error"]["message"].is_string());
        let _ = error::from_gemini(status, &[0xff, b'{']);
    }
}
