//! Tests of the whole chat translation: complete bodies, validation
//! errors, limits, model suffixes, safety settings and extensions, and the
//! no-panic sweep. The tables for each section sit beside its code; the
//! helpers here are shared with them.

use super::messages::MAX_PARTS;
use super::*;
use crate::openai::testing::{deep_array, dismantle};
use serde_json::json;

/// Options with nothing switched on (no `includeThoughts`).
pub(super) fn plain() -> Options {
    Options {
        show_thinking: false,
        ..Options::default()
    }
}

/// A minimal valid request with `extra` fields merged in.
pub(super) fn req(extra: Value) -> Value {
    let mut base =
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// Translate with `opts`, panicking (in tests only) on error.
pub(super) fn body_with(r: Value, opts: &Options) -> Value {
    match translate_request(&r, opts) {
        Ok(c) => c.body,
        Err(e) => panic!("unexpected error {e:?} for {r}"),
    }
}

/// Translate with [`plain`] options.
pub(super) fn body(r: Value) -> Value {
    body_with(r, &plain())
}

/// The error param for a request expected to fail.
pub(super) fn param_of(r: Value) -> String {
    match translate_request(&r, &plain()) {
        Ok(c) => panic!("expected an error, got {}", c.body),
        Err(e) => e.param.unwrap_or_default(),
    }
}

pub(super) fn default_safety() -> Value {
    json!([
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_CIVIC_INTEGRITY", "threshold": "OFF"}
    ])
}

#[test]
fn minimal_request_whole_body() {
    let p = plain();
    let call = translate_request(&req(json!({})), &p).unwrap();
    assert_eq!(call.model, "gemini-2.5-flash");
    assert_eq!(call.client_model, "gemini-2.5-flash");
    assert!(!call.stream);
    assert!(!call.include_usage);
    assert_eq!(
        call.body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "safetySettings": default_safety()
        })
    );
}

#[test]
fn reference_example_b1() {
    let r = json!({"model": "gemini-2.5-flash",
     "messages": [
       {"role": "system", "content": "Answer in one sentence."},
       {"role": "user", "content": [
         {"type": "text", "text": "What animal is this, and how is the weather in Oslo?"},
         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"}}]},
       {"role": "assistant", "content": null, "tool_calls": [
         {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
       {"role": "tool", "tool_call_id": "call_1", "content": "{\"tempC\":4}"}],
     "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                      "additionalProperties": false}, "strict": true}}],
     "tool_choice": "auto", "temperature": 0.7, "top_p": 0.95, "n": 1, "stop": ["\n\n\n"],
     "max_completion_tokens": 1024, "seed": 7, "response_format": {"type": "text"}, "stream": false});
    assert_eq!(
        body(r),
        json!({
          "systemInstruction": {"parts": [{"text": "Answer in one sentence."}]},
          "contents": [
            {"role": "user", "parts": [
              {"text": "What animal is this, and how is the weather in Oslo?"},
              {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
            ]},
            {"role": "model", "parts": [
              {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
            ]},
            {"role": "user", "parts": [
              {"functionResponse": {"name": "get_weather", "response": {"tempC": 4}}}
            ]}
          ],
          "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
          "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
          "generationConfig": {
            "temperature": 0.7, "topP": 0.95, "candidateCount": 1,
            "maxOutputTokens": 1024, "stopSequences": ["\n\n\n"], "seed": 7
          },
          "safetySettings": default_safety()
        })
    );
}

#[test]
fn validation_errors() {
    let msgs = |m: Value| json!({"model": "gemini-2.5-flash", "messages": m});
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "body"),
        (json!("x"), "body"),
        (json!(null), "body"),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": 3, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "", "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "models/", "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (json!({"model": "m"}), "messages"),
        (msgs(json!([])), "messages"),
        (msgs(json!({})), "messages"),
        (msgs(json!("hi")), "messages"),
        (msgs(json!([1])), "messages[0]"),
        (msgs(json!([{"content": "x"}])), "messages[0].role"),
        (
            msgs(json!([{"role": "bot", "content": "x"}])),
            "messages[0].role",
        ),
        (
            msgs(json!([{"role": "user", "content": "x"}, {"role": 5}])),
            "messages[1].role",
        ),
        (
            msgs(json!([{"role": "user", "content": 5}])),
            "messages[0].content",
        ),
        (
            msgs(json!([{"role": "user", "content": null}])),
            "messages[0].content",
        ),
        (msgs(json!([{"role": "user"}])), "messages[0].content"),
        (
            msgs(json!([{"role": "system", "content": null}])),
            "messages[0].content",
        ),
        (
            msgs(json!([{"role": "assistant", "content": {"a": 1}}])),
            "messages[0].content",
        ),
        (
            msgs(json!([{"role": "user", "content": [5]}])),
            "messages[0].content[0]",
        ),
        (
            msgs(json!([{"role": "user", "content": [{"type": "video", "video": {}}]}])),
            "messages[0].content[0]",
        ),
        (
            msgs(json!([{"role": "user", "content": [{"type": 1}]}])),
            "messages[0].content[0]",
        ),
        (
            msgs(json!([{"role": "user", "content": [{"type": "text", "text": 1}]}])),
            "messages[0].content[0].text",
        ),
        (
            msgs(
                json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]),
            ),
            "messages[0].content[0]",
        ),
        (
            msgs(json!([{"role": "tool", "tool_call_id": "nope", "content": "x"}])),
            "messages[0].tool_call_id",
        ),
        (
            msgs(json!([{"role": "tool", "content": "x"}])),
            "messages[0].tool_call_id",
        ),
        (
            msgs(json!([{"role": "tool", "tool_call_id": "c", "name": "f", "content": 5}])),
            "messages[0].content",
        ),
        (
            msgs(
                json!([{"role": "tool", "tool_call_id": "c", "name": "f", "content": [{"type": "image_url"}]}]),
            ),
            "messages[0].content[0]",
        ),
        (
            msgs(json!([{"role": "function", "content": "x"}])),
            "messages[0].name",
        ),
        (
            msgs(json!([{"role": "assistant", "tool_calls": {}}])),
            "messages[0].tool_calls",
        ),
        (
            msgs(json!([{"role": "assistant", "tool_calls": [1]}])),
            "messages[0].tool_calls[0]",
        ),
        (
            msgs(json!([{"role": "assistant", "tool_calls": [{"type": "custom", "custom": {}}]}])),
            "messages[0].tool_calls[0].type",
        ),
        (
            msgs(json!([{"role": "assistant", "tool_calls": [{"id": "a"}]}])),
            "messages[0].tool_calls[0].function",
        ),
        (
            msgs(json!([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}])),
            "messages[0].tool_calls[0].function.name",
        ),
        (
            msgs(
                json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]),
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            msgs(
                json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}]),
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            msgs(
                json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}]),
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            msgs(json!([{"role": "assistant", "function_call": {"name": "f", "arguments": "7"}}])),
            "messages[0].function_call.arguments",
        ),
        (
            msgs(json!([{"role": "assistant", "function_call": "f"}])),
            "messages[0].function_call",
        ),
        (
            msgs(json!([{"role": "assistant", "content": ""}])),
            "messages",
        ),
        (req(json!({"temperature": "hot"})), "temperature"),
        (req(json!({"top_p": true})), "top_p"),
        (req(json!({"top_k": 1.5})), "top_k"),
        (req(json!({"n": 0})), "n"),
        (req(json!({"n": "2"})), "n"),
        (req(json!({"max_tokens": -5})), "max_tokens"),
        (
            req(json!({"max_completion_tokens": "9"})),
            "max_completion_tokens",
        ),
        (req(json!({"presence_penalty": []})), "presence_penalty"),
        (req(json!({"frequency_penalty": {}})), "frequency_penalty"),
        (req(json!({"seed": 1.5})), "seed"),
        (req(json!({"stop": 5})), "stop"),
        (req(json!({"stop": ["a", 1]})), "stop"),
        (req(json!({"logprobs": 1})), "logprobs"),
        (req(json!({"top_logprobs": -1})), "top_logprobs"),
        (req(json!({"stream": "yes"})), "stream"),
        (req(json!({"stream_options": 1})), "stream_options"),
        (
            req(json!({"stream_options": {"include_usage": "y"}})),
            "stream_options.include_usage",
        ),
        (req(json!({"response_format": "json"})), "response_format"),
        (
            req(json!({"response_format": {"type": "yaml"}})),
            "response_format.type",
        ),
        (
            req(json!({"response_format": {"type": "json_schema", "json_schema": 1}})),
            "response_format.json_schema",
        ),
        (
            req(
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": true}}}),
            ),
            "response_format.json_schema.schema",
        ),
        (req(json!({"tools": {}})), "tools"),
        (req(json!({"tools": [1]})), "tools[0]"),
        (req(json!({"tools": [{}]})), "tools[0].type"),
        (
            req(json!({"tools": [{"type": "retrieval"}]})),
            "tools[0].type",
        ),
        (
            req(json!({"tools": [{"type": "function"}]})),
            "tools[0].function",
        ),
        (
            req(json!({"tools": [{"type": "function", "function": {}}]})),
            "tools[0].function.name",
        ),
        (
            req(
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}),
            ),
            "tools[0].function.parameters",
        ),
        (
            req(
                json!({"tools": [{"type": "function", "function": {"name": "f", "description": 1}}]}),
            ),
            "tools[0].function.description",
        ),
        (req(json!({"functions": 1})), "functions"),
        (req(json!({"tool_choice": "sometimes"})), "tool_choice"),
        (req(json!({"tool_choice": 5})), "tool_choice"),
        (
            req(json!({"tool_choice": {"type": "function", "function": {}}})),
            "tool_choice.function.name",
        ),
        (
            req(json!({"tool_choice": {"type": "mystery"}})),
            "tool_choice.type",
        ),
        (
            req(json!({"tool_choice": {"type": "allowed_tools"}})),
            "tool_choice.allowed_tools",
        ),
        (
            req(
                json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "x", "tools": []}}}),
            ),
            "tool_choice.allowed_tools.mode",
        ),
        (
            req(
                json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto"}}}),
            ),
            "tool_choice.allowed_tools.tools",
        ),
        (
            req(
                json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"tools": [{}]}}}),
            ),
            "tool_choice.allowed_tools.tools[0]",
        ),
        (
            req(json!({"reasoning_effort": "extreme"})),
            "reasoning_effort",
        ),
        (req(json!({"reasoning_effort": 3})), "reasoning_effort"),
        (req(json!({"modalities": "image"})), "modalities"),
        (req(json!({"modalities": [1]})), "modalities"),
        (req(json!({"extra_body": 1})), "extra_body"),
        (
            req(json!({"extra_body": {"google": []}})),
            "extra_body.google",
        ),
        (req(json!({"google": "x"})), "google"),
        (
            req(json!({"extra_body": {"google": {"thinking_config": 1}}})),
            "extra_body.google.thinking_config",
        ),
        (
            req(json!({"google": {"thinkingConfig": []}})),
            "google.thinkingConfig",
        ),
        (
            req(json!({"extra_body": {"google": {"cached_content": 1}}})),
            "extra_body.google.cached_content",
        ),
        (
            req(json!({"extra_body": {"google": {"safety_settings": {}}}})),
            "extra_body.google.safety_settings",
        ),
        (req(json!({"safety_settings": "off"})), "safety_settings"),
    ];
    for (r, want) in cases {
        let shown = r.to_string();
        assert_eq!(param_of(r), want, "request: {shown}");
    }
}

#[test]
fn limits_are_errors() {
    let many: Vec<Value> = (0..MAX_MESSAGES + 1)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    assert_eq!(
        param_of(json!({"model": "m", "messages": many})),
        "messages"
    );
    let parts: Vec<Value> = (0..MAX_PARTS + 1)
        .map(|_| json!({"type": "text", "text": "x"}))
        .collect();
    assert_eq!(
        param_of(json!({"model": "m", "messages": [{"role": "user", "content": parts}]})),
        "messages[0].content"
    );
    let ok_parts: Vec<Value> = (0..MAX_PARTS)
        .map(|_| json!({"type": "text", "text": "x"}))
        .collect();
    let b = body(json!({"model": "m", "messages": [{"role": "user", "content": ok_parts}]}));
    assert_eq!(
        b["contents"][0]["parts"].as_array().map(Vec::len),
        Some(MAX_PARTS)
    );
}

#[test]
fn stream_flags() {
    let p = plain();
    let c = translate_request(
        &req(json!({"stream": true, "stream_options": {"include_usage": true}})),
        &p,
    )
    .unwrap();
    assert!(c.stream && c.include_usage);
    let c = translate_request(&req(json!({"stream": true, "stream_options": null})), &p).unwrap();
    assert!(c.stream && !c.include_usage);
}

#[test]
fn model_suffixes_table() {
    let p = plain();
    let budget_map = Options {
        show_thinking: false,
        thinking_budget_map: vec![("gemini-2.5-pro".into(), 4096)],
        ..Options::default()
    };
    // (client model, options, model, client_model, has search tool, thinkingConfig)
    let cases: Vec<(&str, &Options, &str, &str, bool, Value)> = vec![
        (
            "models/gemini-2.5-flash",
            &p,
            "gemini-2.5-flash",
            "gemini-2.5-flash",
            false,
            Value::Null,
        ),
        (
            "gemini-2.5-flash-search",
            &p,
            "gemini-2.5-flash",
            "gemini-2.5-flash-search",
            true,
            Value::Null,
        ),
        (
            "gemini-2.5-flash-thinking",
            &p,
            "gemini-2.5-flash",
            "gemini-2.5-flash-thinking",
            false,
            json!({"thinkingBudget": -1, "includeThoughts": true}),
        ),
        (
            "gemini-2.5-pro-thinking",
            &budget_map,
            "gemini-2.5-pro",
            "gemini-2.5-pro-thinking",
            false,
            json!({"thinkingBudget": 4096, "includeThoughts": true}),
        ),
        (
            "gemini-2.5-flash-non-thinking",
            &p,
            "gemini-2.5-flash",
            "gemini-2.5-flash-non-thinking",
            false,
            json!({"thinkingBudget": 0}),
        ),
        (
            "models/gemini-2.5-flash-search-thinking",
            &p,
            "gemini-2.5-flash",
            "gemini-2.5-flash-search-thinking",
            true,
            json!({"thinkingBudget": -1, "includeThoughts": true}),
        ),
        (
            "gemini-2.5-flash-non-thinking-search",
            &p,
            "gemini-2.5-flash",
            "gemini-2.5-flash-non-thinking-search",
            true,
            json!({"thinkingBudget": 0}),
        ),
        (
            "gemini-2.5-pro",
            &budget_map,
            "gemini-2.5-pro",
            "gemini-2.5-pro",
            false,
            json!({"thinkingBudget": 4096}),
        ),
        ("-search", &p, "-search", "-search", false, Value::Null),
    ];
    for (m, opts, model, client_model, search, thinking) in cases {
        let call = translate_request(&req(json!({"model": m})), opts).unwrap();
        assert_eq!(call.model, model, "{m}");
        assert_eq!(call.client_model, client_model, "{m}");
        let has_search = call.body["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!({"googleSearch": {}})));
        assert_eq!(has_search, search, "{m}");
        assert_eq!(
            call.body
                .pointer("/generationConfig/thinkingConfig")
                .cloned()
                .unwrap_or(Value::Null),
            thinking,
            "{m}"
        );
    }
}

#[test]
fn safety_and_extensions_table() {
    let p = plain();
    let custom = json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]);
    let configured = Options {
        show_thinking: false,
        safety_settings: Some(custom.clone()),
        ..Options::default()
    };
    let client = json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]);
    let client_camel =
        json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_LOW_AND_ABOVE"}]);
    // (fields, options, expected safetySettings)
    let cases: Vec<(Value, &Options, Value)> = vec![
        (json!({}), &p, default_safety()),
        (json!({}), &configured, custom.clone()),
        (
            json!({"extra_body": {"google": {"safety_settings": client.clone()}}}),
            &configured,
            client.clone(),
        ),
        (
            json!({"google": {"safetySettings": client_camel.clone()}}),
            &configured,
            client_camel.clone(),
        ),
        (
            json!({"safety_settings": client.clone()}),
            &p,
            client.clone(),
        ),
        (
            json!({"safety_settings": client.clone(), "extra_body": {"google": {"safety_settings": client_camel.clone()}}}),
            &p,
            client_camel.clone(),
        ),
    ];
    for (fields, opts, want) in cases {
        let shown = fields.to_string();
        assert_eq!(
            body_with(req(fields), opts)["safetySettings"],
            want,
            "fields: {shown}"
        );
    }
    let b = body(req(
        json!({"extra_body": {"google": {"cached_content": "cachedContents/xyz"}}}),
    ));
    assert_eq!(b["cachedContent"], "cachedContents/xyz");
    let b = body(req(
        json!({"google": {"cachedContent": "cachedContents/abc"}}),
    ));
    assert_eq!(b["cachedContent"], "cachedContents/abc");
}

/// `depth` nested `{"a": …}` objects, built without recursion.
fn deep_object(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        let mut m = Map::new();
        m.insert("properties".into(), json!({}));
        m.insert("a".into(), v);
        v = Value::Object(m);
    }
    v
}

/// `depth` nested `properties` schemas.
fn deep_schema(depth: usize) -> Value {
    let mut v = json!({"type": "string"});
    for _ in 0..depth {
        let mut props = Map::new();
        props.insert("x".into(), v);
        let mut m = Map::new();
        m.insert("type".into(), json!("object"));
        m.insert("properties".into(), Value::Object(props));
        v = Value::Object(m);
    }
    v
}

#[test]
fn fuzz_never_panics() {
    let odd: Vec<Value> = vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(""),
        json!("x"),
        json!("data:"),
        json!("data:image/png;base64,"),
        json!("https://"),
        json!("é"),
        json!("_ts_"),
        json!("{}"),
        json!([]),
        json!([null]),
        json!([[[]]]),
        json!({}),
        json!({"type": null}),
        json!({"type": "function"}),
        json!({"type": "text", "text": null}),
        json!({"role": "assistant", "tool_calls": [{}]}),
        json!([{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#"}}}]),
    ];
    // Values are produced by constructors so that deep ones are never
    // cloned or serialized recursively by the test itself.
    let mut makers: Vec<Box<dyn Fn() -> Value>> = Vec::new();
    for v in odd {
        makers.push(Box::new(move || v.clone()));
    }
    makers.push(Box::new(|| deep_array(10_000)));
    makers.push(Box::new(|| deep_object(10_000)));
    makers.push(Box::new(|| deep_schema(10_000)));

    let opts_all = Options {
        show_thinking: true,
        code_execution: true,
        url_context: true,
        url_context_models: vec!["gemini-3-pro".into()],
        thinking_budget_map: vec![("gemini-3-pro".into(), 10)],
        ..Options::default()
    };
    let top_fields = [
        "model",
        "messages",
        "temperature",
        "top_p",
        "top_k",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "logprobs",
        "top_logprobs",
        "response_format",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "reasoning_effort",
        "modalities",
        "extra_body",
        "google",
        "safety_settings",
        "safetySettings",
        "web_search_options",
        "user",
    ];
    let msg_fields = [
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "name",
        "function_call",
        "refusal",
    ];
    let base = json!({"model": "gemini-3-pro-search-thinking", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "a", "tool_calls": [{"id": "call_1_ts_x", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1_ts_x", "content": "r"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
        "extra_body": {"google": {"thinking_config": {}, "safety_settings": []}},
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"tools": []}}});
    let pointers = [
        "/messages/0",
        "/messages/0/content/0",
        "/messages/0/content/0/text",
        "/messages/1/tool_calls/0",
        "/messages/1/tool_calls/0/function",
        "/messages/1/tool_calls/0/function/arguments",
        "/messages/1/tool_calls/0/id",
        "/tools/0",
        "/tools/0/function",
        "/tools/0/function/parameters",
        "/tools/0/function/parameters/properties/a",
        "/response_format/json_schema",
        "/response_format/json_schema/schema",
        "/extra_body/google",
        "/extra_body/google/thinking_config",
        "/extra_body/google/safety_settings",
        "/tool_choice/allowed_tools",
        "/tool_choice/allowed_tools/tools",
    ];
    let plain_opts = plain();
    let mut runs = 0usize;
    let mut run = |r: Value| {
        for o in [&plain_opts, &opts_all] {
            let _ = translate_request(&r, o);
        }
        dismantle(r);
        runs += 1;
    };
    for make in &makers {
        run(make());
        let mut m = Map::new();
        m.insert("model".into(), json!("m"));
        m.insert("messages".into(), Value::Array(vec![make()]));
        run(Value::Object(m));
        for f in top_fields {
            let mut r = base.clone();
            r[f] = make();
            run(r);
        }
        for i in 0..3 {
            for f in msg_fields {
                let mut r = base.clone();
                r["messages"][i][f] = make();
                run(r);
            }
        }
        for p in pointers {
            let mut r = base.clone();
            if let Some(slot) = r.pointer_mut(p) {
                *slot = make();
            }
            run(r);
        }
    }
    assert!(runs > 1000);
}
