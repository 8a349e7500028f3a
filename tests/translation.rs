//! OpenAI ↔ Gemini translation, end to end: OpenAI requests go through the
//! real gateway to the fake Gemini, and each test checks both the exact
//! Gemini body that reached the fake and the OpenAI answer, plain and
//! streamed (docs/wire-formats.md Part C: multimodal input, remote images, tools, structured
//! output, sampling, thinking, search, code execution, URL context, safety,
//! extensions, finish reasons and usage, every part kept).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHAT: &str = "/v1/chat/completions";
/// The fake's 1x1 PNG (also what the local image server serves).
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
/// The thought summary the fake sends when asked for thoughts.
const THOUGHT: &str = "**Thinking**\n\nConsidering the question.";
const SOURCES: &str =
    "\n\nSources:\n1. [Example A](https://example.com/a)\n2. [Example B](https://example.com/b)";

// ---------------------------------------------------------------------------
// Helpers

/// The last generate call that reached the fake: (path, query, body).
fn upstream(gw: &Gw) -> (String, String, Value) {
    let reqs = gw.state().requests();
    let r = reqs
        .iter()
        .rev()
        .find(|r| r.path.contains(":generateContent") || r.path.contains(":streamGenerateContent"))
        .expect("a generate call reached the fake");
    (
        r.path.clone(),
        r.query.clone().unwrap_or_default(),
        serde_json::from_slice(&r.body).expect("the gateway sent JSON"),
    )
}

/// Generate calls that reached the fake so far.
fn generate_calls(gw: &Gw) -> usize {
    gw.state()
        .requests()
        .iter()
        .filter(|r| r.path.contains("enerateContent"))
        .count()
}

/// POST a chat request that must succeed; the answer and the Gemini body.
async fn chat(gw: &Gw, body: &Value) -> (Value, Value) {
    let r = post_json(gw, CHAT, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (path, _, sent) = upstream(gw);
    assert!(path.ends_with(":generateContent"), "{path}");
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    check_usage(&v["usage"]);
    (v, sent)
}

/// A chat request that must fail with `status`; the OpenAI error object.
async fn chat_error(gw: &Gw, body: &Value, status: StatusCode) -> Value {
    let r = post_json(gw, CHAT, body).await;
    assert_eq!(r.status, status, "{}", r.text());
    let e = r.json()["error"].clone();
    assert!(e["message"].is_string(), "{e}");
    assert!(e["type"].is_string(), "{e}");
    e
}

/// `usage` is complete and adds up.
fn check_usage(u: &Value) {
    let n = |p: &str| {
        u.pointer(p)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("usage{p} missing: {u}"))
    };
    assert!(n("/prompt_tokens") > 0, "{u}");
    assert_eq!(
        n("/total_tokens"),
        n("/prompt_tokens") + n("/completion_tokens"),
        "{u}"
    );
    n("/prompt_tokens_details/cached_tokens");
    assert!(n("/completion_tokens_details/reasoning_tokens") <= n("/completion_tokens"));
}

/// One choice of a reassembled stream.
#[derive(Debug, Default)]
struct Choice {
    role: bool,
    content: String,
    reasoning: String,
    refusal: String,
    /// (id, name, arguments) in `index` order.
    calls: Vec<(String, String, String)>,
    finish: Option<String>,
    /// The content deltas, in order.
    pieces: Vec<String>,
}

/// A streamed answer, reassembled the way OpenAI clients do.
#[derive(Debug)]
struct Streamed {
    chunks: Vec<Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
}

fn reassemble(body: &str) -> Streamed {
    let events = sse_events(body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "ends with [DONE]: {body}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("chunk is JSON: {e}")))
        .collect();
    assert!(!chunks.is_empty());
    let mut choices: BTreeMap<u64, Choice> = BTreeMap::new();
    let mut usage = None;
    for c in &chunks {
        assert!(c.get("error").is_none(), "error event: {c}");
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], chunks[0]["id"], "one id for every chunk");
        assert_eq!(c["created"], chunks[0]["created"]);
        assert_eq!(c["model"], chunks[0]["model"]);
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            assert!(usage.is_none(), "one usage chunk");
            assert_eq!(c["choices"], json!([]), "the usage chunk has no choices");
            check_usage(u);
            usage = Some(u.clone());
            continue;
        }
        assert!(usage.is_none(), "usage comes last: {c}");
        for ch in c["choices"].as_array().expect("choices") {
            let idx = ch["index"].as_u64().expect("choice index");
            let slot = choices.entry(idx).or_default();
            assert!(slot.finish.is_none(), "nothing after the finish: {c}");
            let d = &ch["delta"];
            if d["role"] == "assistant" {
                assert!(!slot.role, "role once");
                slot.role = true;
            }
            assert!(slot.role, "role first: {c}");
            if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
                slot.content.push_str(t);
                slot.pieces.push(t.to_string());
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                slot.reasoning.push_str(t);
            }
            if let Some(t) = d["refusal"].as_str() {
                slot.refusal.push_str(t);
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().expect("tool call index") as usize;
                if let Some(id) = tc["id"].as_str() {
                    assert_eq!(i, slot.calls.len(), "a new call takes the next index");
                    assert_eq!(tc["type"], "function");
                    let name = tc["function"]["name"].as_str().expect("name").to_string();
                    slot.calls.push((id.to_string(), name, String::new()));
                }
                let call = slot.calls.get_mut(i).expect("arguments for a known call");
                call.2
                    .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                slot.finish = Some(f.to_string());
            }
        }
    }
    for (i, ch) in &choices {
        assert!(ch.finish.is_some(), "choice {i} finished");
    }
    Streamed {
        chunks,
        choices,
        usage,
    }
}

/// POST a streamed chat request that must succeed.
async fn chat_stream(gw: &Gw, body: &Value) -> (Streamed, Value) {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let r = post_json(gw, CHAT, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let (path, query, sent) = upstream(gw);
    assert!(path.ends_with(":streamGenerateContent"), "{path}");
    assert_eq!(query, "alt=sse");
    (reassemble(&r.text()), sent)
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn req(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [user(text)]})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

fn default_safety() -> Value {
    json!([
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "OFF"},
        {"category": "HARM_CATEGORY_CIVIC_INTEGRITY", "threshold": "OFF"},
    ])
}

/// The fake's thought signature for a function (Gemini 2.5 and 3 models).
fn sig(name: &str) -> String {
    B64.encode(format!("sig:{name}"))
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "strict": true,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                "days": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                "when": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
            },
            "required": ["city"],
            "additionalProperties": false
        }
    }})
}

/// What Gemini gets for [`weather_tool`].
fn weather_decl() -> Value {
    json!({
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"], "nullable": true},
                "days": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                "when": {"type": "string", "format": "date-time", "nullable": true}
            },
            "required": ["city"]
        }
    })
}

/// An MCP server's tool schema (draft-07, `$defs`, `additionalProperties`).
fn mcp_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "search_docs",
        "description": "Search the docs",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "filters": {"$ref": "#/$defs/Filters"},
                "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 50},
                "labels": {"type": "array", "description": "free-form"},
                "payload": {"type": ["object", "string", "null"], "properties": {"k": {"type": "string"}}, "required": ["k"]}
            },
            "required": ["query"],
            "additionalProperties": false,
            "$defs": {"Filters": {
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                "additionalProperties": {"type": "string"}
            }}
        }
    }})
}

fn mcp_decl() -> Value {
    json!({
        "name": "search_docs",
        "description": "Search the docs",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "filters": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
                "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 50},
                "labels": {"type": "array", "description": "free-form", "items": {"type": "string"}},
                "payload": {"nullable": true, "anyOf": [
                    {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]},
                    {"type": "string"}
                ]}
            },
            "required": ["query"]
        }
    })
}

// ---------------------------------------------------------------------------
// A tiny local image server for remote `image_url`s.

/// Serves `/img.png` (image/png), `/photo` (image/webp, no extension),
/// `/r/N` (N redirects, then `/img.png`), `/big` (5000 bytes), `/to-file`
/// (a redirect to a `file:` URL) and 404.
async fn image_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
                    "/img.png" => (
                        "200 OK",
                        "Content-Type: image/png\r\n".into(),
                        B64.decode(PNG_1X1).unwrap(),
                    ),
                    "/photo" => (
                        "200 OK",
                        "Content-Type: image/webp; charset=binary\r\n".into(),
                        b"RIFF\x10\0\0\0WEBPVP8 fake".to_vec(),
                    ),
                    "/big" => (
                        "200 OK",
                        "Content-Type: image/png\r\n".into(),
                        vec![7u8; 5000],
                    ),
                    "/to-file" => (
                        "302 Found",
                        "Location: file:///etc/passwd\r\n".into(),
                        Vec::new(),
                    ),
                    p if p.starts_with("/r/") => {
                        let n: u32 = p[3..].parse().unwrap_or(0);
                        let next = if n <= 1 {
                            "/img.png".to_string()
                        } else {
                            format!("/r/{}", n - 1)
                        };
                        ("302 Found", format!("Location: {next}\r\n"), Vec::new())
                    }
                    _ => ("404 Not Found", String::new(), b"nope".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn image_msg(url: &str) -> Value {
    json!({"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]})
}

// ---------------------------------------------------------------------------
// Multimodal input

#[tokio::test]
async fn multimodal_parts_become_inline_data() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    let body = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_1X1}"), "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;name=cat.jpg;base64,/9j/4AAQ"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "SUQzBAAAAAA=", "format": "mp3"}},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    ]}]});
    let want = json!([{"role": "user", "parts": [
        {"text": "What is in these?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG_1X1}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRiQAAABXQVZF"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "SUQzBAAAAAA="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQK"}}
    ]}]);
    let echo = "Echo: What is in these? (received 5 image/png, image/jpeg, audio/wav, audio/mp3, application/pdf parts)";

    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(sent["contents"], want);
    assert_eq!(v["choices"][0]["message"]["content"], echo);
    let details = &v["usage"];
    assert!(
        details["prompt_tokens"].as_u64().unwrap() > 5 * 258,
        "media counted: {details}"
    );

    let (s, sent) = chat_stream(&gw, &body).await;
    assert_eq!(sent["contents"], want);
    assert_eq!(s.choices[&0].content, echo);
    assert_eq!(s.choices[&0].finish.as_deref(), Some("stop"));
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_data_urls_are_400_naming_the_message() {
    let gw = start(&[]).await;
    let bad = |part: Value| {
        json!({"model": "gemini-2.5-flash", "messages": [
            {"role": "system", "content": "Be brief."},
            user("first"),
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, part]}
        ]})
    };
    let cases = [
        (
            json!({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}),
            "messages[3].content[1].image_url",
        ),
        (
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}),
            "messages[3].content[1].image_url",
        ),
        (
            json!({"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}),
            "messages[3].content[1].image_url",
        ),
        (
            json!({"type": "file", "file": {"file_data": "data:application/pdf;base64"}}),
            "messages[3].content[1].file",
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}),
            "messages[3].content[1].input_audio",
        ),
    ];
    for (part, param) in cases {
        let e = chat_error(&gw, &bad(part.clone()), StatusCode::BAD_REQUEST).await;
        assert_eq!(e["param"], param, "{part}");
        assert_eq!(e["type"], "invalid_request_error");
        if param.ends_with("image_url") || param.ends_with("file") {
            assert!(
                e["message"].as_str().unwrap().contains("message 3"),
                "the message names the index: {e}"
            );
        }
    }
    assert_eq!(generate_calls(&gw), 0, "nothing reached Gemini");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Remote images

#[tokio::test]
async fn remote_images_from_private_addresses_are_refused_by_default() {
    let img = image_server().await;
    let gw = start(&[]).await;
    for host in [
        format!("127.0.0.1:{}", img.port()),
        format!("localhost:{}", img.port()),
    ] {
        let body = json!({"model": "gemini-2.5-flash", "messages": [
            user("hello"),
            image_msg(&format!("http://{host}/img.png"))
        ]});
        let e = chat_error(&gw, &body, StatusCode::BAD_REQUEST).await;
        assert_eq!(e["param"], "messages[1].content[1].image_url");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("message 1"), "{m}");
        assert!(
            m.contains("private") && m.contains("ALLOW_PRIVATE_FETCH"),
            "{m}"
        );
    }
    assert_eq!(generate_calls(&gw), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn remote_images_are_inlined_with_the_response_mime_type() {
    let img = image_server().await;
    let gw = start(&[
        ("ALLOW_PRIVATE_FETCH", "true"),
        ("MAX_FETCH_BYTES", "2000"),
        ("SHOW_THINKING_PROCESS", "false"),
    ])
    .await;
    let base = format!("http://127.0.0.1:{}", img.port());

    // MIME type from the response, not from the (missing) extension.
    let body =
        json!({"model": "gemini-2.5-flash", "messages": [image_msg(&format!("{base}/photo"))]});
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/webp", "data": B64.encode(b"RIFF\x10\0\0\0WEBPVP8 fake")}})
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Echo: What is this? (received 1 image/webp part)"
    );

    // Up to three redirects are followed, also in a streamed request.
    let body =
        json!({"model": "gemini-2.5-flash", "messages": [image_msg(&format!("{base}/r/3"))]});
    let (s, sent) = chat_stream(&gw, &body).await;
    assert_eq!(
        sent["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": PNG_1X1}})
    );
    assert_eq!(
        s.choices[&0].content,
        "Echo: What is this? (received 1 image/png part)"
    );

    // Limits: redirects, size, HTTP errors; each names the message.
    let before = generate_calls(&gw);
    for (path, why) in [
        ("/r/4", "too many redirects"),
        ("/big", "MAX_FETCH_BYTES"),
        ("/missing.png", "HTTP 404"),
        ("/to-file", "only http and https"),
    ] {
        let body = json!({"model": "gemini-2.5-flash", "messages": [
            {"role": "system", "content": "sys"},
            image_msg(&format!("{base}{path}"))
        ]});
        let e = chat_error(&gw, &body, StatusCode::BAD_REQUEST).await;
        assert_eq!(e["param"], "messages[1].content[1].image_url", "{path}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("message 1") && m.contains(why), "{path}: {m}");
    }
    assert_eq!(
        generate_calls(&gw),
        before,
        "failed fetches never reach Gemini"
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Tools

#[tokio::test]
async fn tools_and_tool_choice_map_to_declarations_and_config() {
    let gw = start(&[]).await;
    let tools = json!([weather_tool(), mcp_tool(),
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}, "additionalProperties": false}}}]);
    let decls = json!([weather_decl(), mcp_decl(), {"name": "ping"}]);
    // (tool_choice, toolConfig sent, function called or null for text)
    let cases = [
        (Value::Null, Value::Null, json!("get_weather")),
        (
            json!("auto"),
            json!({"functionCallingConfig": {"mode": "AUTO"}}),
            json!("get_weather"),
        ),
        (
            json!("none"),
            json!({"functionCallingConfig": {"mode": "NONE"}}),
            Value::Null,
        ),
        (
            json!("required"),
            json!({"functionCallingConfig": {"mode": "ANY"}}),
            json!("get_weather"),
        ),
        (
            json!({"type": "function", "function": {"name": "search_docs"}}),
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["search_docs"]}}),
            json!("search_docs"),
        ),
    ];
    for (choice, config, called) in cases {
        let mut body = with(
            req("gemini-2.5-flash", "weather in Paris?"),
            json!({"tools": tools}),
        );
        if !choice.is_null() {
            body["tool_choice"] = choice.clone();
        }
        let (v, sent) = chat(&gw, &body).await;
        assert_eq!(
            sent["tools"],
            json!([{"functionDeclarations": decls}]),
            "{choice}"
        );
        assert_eq!(
            sent.get("toolConfig").cloned().unwrap_or(Value::Null),
            config,
            "{choice}"
        );
        let c = &v["choices"][0];
        match called.as_str() {
            Some(name) => {
                assert_eq!(c["finish_reason"], "tool_calls", "{choice}");
                assert_eq!(c["message"]["content"], Value::Null);
                assert_eq!(c["message"]["tool_calls"][0]["function"]["name"], name);
            }
            None => {
                assert_eq!(c["finish_reason"], "stop");
                assert_eq!(c["message"]["content"], "Echo: weather in Paris?");
                assert!(c["message"].get("tool_calls").is_none());
            }
        }
    }
    // The arguments follow the cleaned schema: only the required fields.
    let body = with(
        req("gemini-2.5-flash", "docs"),
        json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "search_docs"}}}),
    );
    let (v, _) = chat(&gw, &body).await;
    let args: Value = serde_json::from_str(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"query": "test"}));
    gw.shutdown().await;
}

#[tokio::test]
async fn tool_call_round_trip_keeps_the_thought_signature() {
    let gw = start(&[]).await;
    let first = with(
        req("gemini-2.5-flash", "What is the weather in Paris?"),
        json!({"tools": [weather_tool()]}),
    );
    let (v, _) = chat(&gw, &first).await;
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert_eq!(c["message"]["content"], Value::Null);
    let call = c["message"]["tool_calls"][0].clone();
    assert_eq!(c["message"]["tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    let id = call["id"].as_str().unwrap();
    let (head, carried) = id.split_once("_ts_").expect("signature carried in the id");
    assert!(head.starts_with("call_") && head.len() == 21, "{id}");
    assert_eq!(carried, sig("get_weather"));
    assert_eq!(
        call["extra_content"]["google"]["thought_signature"],
        sig("get_weather")
    );

    // The client sends the call back with the tool's result.
    let second = json!({"model": "gemini-2.5-flash", "tools": [weather_tool()], "messages": [
        user("What is the weather in Paris?"),
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "get_weather", "arguments": call["function"]["arguments"]}}
        ]},
        {"role": "tool", "tool_call_id": id, "content": "{\"tempC\": 4, \"sky\": \"clear\"}"}
    ]});
    let (v, sent) = chat(&gw, &second).await;
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]},
            {"role": "model", "parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": sig("get_weather")}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"tempC": 4, "sky": "clear"}}}
            ]}
        ])
    );
    let c = &v["choices"][0];
    assert_eq!(
        c["message"]["content"],
        r#"Tool get_weather returned: {"sky":"clear","tempC":4}"#
    );
    assert_eq!(c["finish_reason"], "stop");
    gw.shutdown().await;
}

#[tokio::test]
async fn gemini_3_wants_its_signatures_back() {
    let gw = start(&[]).await;
    let model = "gemini-3-pro-preview";
    // The fake, like Gemini 3, refuses a replayed call without its signature.
    let native = json!({"contents": [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 1}}}]}
    ]});
    let r = send(
        Method::POST,
        &gw.url(&format!("/v1beta/models/{model}:generateContent")),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&native).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("thought_signature"), "{}", r.text());

    // Through the gateway, streamed: the id carries the signature ...
    let first = with(req(model, "weather?"), json!({"tools": [weather_tool()]}));
    let (s, _) = chat_stream(&gw, &first).await;
    let ch = &s.choices[&0];
    assert_eq!(ch.finish.as_deref(), Some("tool_calls"));
    let (id, name, args) = ch.calls[0].clone();
    assert!(id.ends_with(&format!("_ts_{}", sig("get_weather"))), "{id}");
    let replay = |id: &str, extra: Value| {
        let mut call =
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}});
        if let (Value::Object(c), Value::Object(e)) = (&mut call, extra) {
            c.extend(e);
        }
        json!({"model": model, "tools": [weather_tool()], "messages": [
            user("weather?"),
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": id, "content": "sunny"}
        ]})
    };
    // ... and comes back to Gemini from the id,
    let (v, sent) = chat(&gw, &replay(&id, json!({}))).await;
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        sig("get_weather")
    );
    assert_eq!(
        sent["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}})
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        r#"Tool get_weather returned: {"result":"sunny"}"#
    );
    // from `extra_content` when the client kept only that,
    let (_, sent) = chat(
        &gw,
        &replay(
            "call_client_made",
            json!({"extra_content": {"google": {"thought_signature": "c2lnOmV4dHJh"}}}),
        ),
    )
    .await;
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        "c2lnOmV4dHJh"
    );
    // and as Gemini's documented sentinel when it was lost.
    let (_, sent) = chat(&gw, &replay("call_lost", json!({}))).await;
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn consecutive_tool_results_merge_into_one_turn() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    let history = |results: Vec<Value>| {
        let mut messages = vec![
            json!({"role": "system", "content": "Use tools."}),
            user("Weather and time in Oslo?"),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]}),
        ];
        messages.extend(results);
        json!({"model": "gemini-2.5-flash", "messages": messages})
    };
    let body = history(vec![
        json!({"role": "tool", "tool_call_id": "call_a", "content": "{\"tempC\":4}"}),
        json!({"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "10:42"}]}),
    ]);
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Use tools."}]})
    );
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Oslo?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"tempC": 4}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "10:42"}}}
            ]}
        ])
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Tool get_weather returned: {\"tempC\":4}\nTool get_time returned: {\"result\":\"10:42\"}"
    );
    // One result for two calls: Gemini (and the fake) refuse it, and the
    // client gets Gemini's 400.
    let body = history(vec![
        json!({"role": "tool", "tool_call_id": "call_a", "content": "4"}),
    ]);
    let e = chat_error(&gw, &body, StatusCode::BAD_REQUEST).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("function response parts"),
        "{e}"
    );
    // An unknown tool_call_id is the client's mistake, named.
    let body = history(vec![
        json!({"role": "tool", "tool_call_id": "call_zzz", "content": "4"}),
    ]);
    let e = chat_error(&gw, &body, StatusCode::BAD_REQUEST).await;
    assert_eq!(e["param"], "messages[3].tool_call_id");
    gw.shutdown().await;
}

#[tokio::test]
async fn streamed_tool_calls_are_proper_deltas() {
    let gw = start(&[]).await;
    let body = with(
        req("gemini-2.5-flash", "weather?"),
        json!({"tools": [weather_tool(), mcp_tool()], "tool_choice": "required", "stream_options": {"include_usage": true}}),
    );
    let (s, sent) = chat_stream(&gw, &body).await;
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    let ch = &s.choices[&0];
    assert_eq!(ch.finish.as_deref(), Some("tool_calls"));
    assert_eq!(ch.calls.len(), 1);
    let (id, name, args) = &ch.calls[0];
    assert!(id.starts_with("call_"), "{id}");
    assert_eq!(name, "get_weather");
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert_eq!(ch.content, "");
    // The call delta itself: index, id, type, name, arguments.
    let delta = s
        .chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .expect("a tool call delta");
    assert_eq!(
        delta,
        &json!([{"index": 0, "id": id, "type": "function", "function": {"name": "get_weather", "arguments": args}}])
    );
    assert!(s.usage.is_some(), "usage chunk when asked");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Structured output

#[tokio::test]
async fn structured_output_modes() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    // json_object
    let body = with(
        req("gemini-2.5-flash", "json please"),
        json!({"response_format": {"type": "json_object"}}),
    );
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let parsed: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, json!({"answer": "ok"}));

    // json_schema, the way the OpenAI SDK sends a Pydantic model.
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Weather",
        "type": "object",
        "properties": {
            "city": {"title": "City", "type": "string"},
            "temp_c": {"title": "Temp C", "type": "number"},
            "days": {"type": "array", "items": {"$ref": "#/$defs/Day"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}
        },
        "required": ["city", "temp_c", "days", "note"],
        "additionalProperties": false,
        "$defs": {"Day": {"type": "object", "properties": {"name": {"type": "string"}, "rain": {"type": "boolean"}},
                          "required": ["name", "rain"], "additionalProperties": false}}
    });
    let mut want = schema.clone();
    want.as_object_mut().unwrap().remove("$schema");
    let body = with(
        req("gemini-2.5-flash", "weather as json"),
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "Weather", "strict": true, "schema": schema}}}),
    );
    let check = |text: &str| {
        let p: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("JSON: {text}"));
        assert!(p["city"].is_string(), "{p}");
        assert!(p["temp_c"].is_number(), "{p}");
        assert!(p["days"][0]["name"].is_string(), "{p}");
        assert!(p["days"][0]["rain"].is_boolean(), "{p}");
        assert!(p["note"].is_string() || p["note"].is_null(), "{p}");
    };
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema": want})
    );
    check(v["choices"][0]["message"]["content"].as_str().unwrap());
    let (s, sent) = chat_stream(&gw, &body).await;
    assert_eq!(sent["generationConfig"]["responseJsonSchema"], want);
    check(&s.choices[&0].content);

    // text is the default: nothing sent.
    let body = with(
        req("gemini-2.5-flash", "plain"),
        json!({"response_format": {"type": "text"}}),
    );
    let (_, sent) = chat(&gw, &body).await;
    assert!(sent.get("generationConfig").is_none(), "{sent}");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Sampling

#[tokio::test]
async fn sampling_parameters_map_and_nothing_is_invented() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    // Nothing the client did not send.
    let (_, sent) = chat(&gw, &req("gemini-2.5-flash", "hi")).await;
    assert_eq!(
        sent.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["contents", "safetySettings"],
        "{sent}"
    );
    // Everything the client sent.
    let body = with(
        req("gemini-2.5-flash", "sample"),
        json!({"temperature": 0.2, "top_p": 0.8, "top_k": 40, "stop": ["END", "STOP"], "n": 2,
               "presence_penalty": 0.5, "frequency_penalty": -0.25, "seed": 7,
               "max_completion_tokens": 100, "max_tokens": 5, "logprobs": true, "top_logprobs": 3,
               "user": "u-1", "parallel_tool_calls": true, "store": false}),
    );
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"temperature": 0.2, "topP": 0.8, "topK": 40, "stopSequences": ["END", "STOP"],
               "candidateCount": 2, "presencePenalty": 0.5, "frequencyPenalty": -0.25, "seed": 7,
               "maxOutputTokens": 100, "responseLogprobs": true, "logprobs": 3})
    );
    // n → two choices, plain and streamed.
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"]["content"], "Echo: sample");
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[1]["message"]["content"], "[1] Echo: sample");
    let (s, _) = chat_stream(&gw, &body).await;
    assert_eq!(s.choices.len(), 2);
    assert_eq!(s.choices[&0].content, "Echo: sample");
    assert_eq!(s.choices[&1].content, "[1] Echo: sample");
    assert!(
        s.choices
            .values()
            .all(|c| c.finish.as_deref() == Some("stop"))
    );
    // max_tokens alone, and stop as a string.
    let body = with(
        req("gemini-2.5-flash", "x"),
        json!({"max_tokens": 64, "stop": "END"}),
    );
    let (_, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"maxOutputTokens": 64, "stopSequences": ["END"]})
    );
    // A wrong type is the client's mistake, named.
    let e = chat_error(
        &gw,
        &with(req("gemini-2.5-flash", "x"), json!({"temperature": "hot"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["param"], "temperature");
    gw.shutdown().await;
}

#[tokio::test]
async fn logprobs_come_back_where_gemini_gives_them() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    let body = with(
        req("gemini-2.5-flash", "hi"),
        json!({"logprobs": true, "top_logprobs": 2}),
    );
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"responseLogprobs": true, "logprobs": 2})
    );
    let token = |t: &str, lp: f64| json!({"token": t, "logprob": lp, "bytes": t.bytes().collect::<Vec<u8>>()});
    let with_top = |t: &str, lp: f64| {
        let mut e = token(t, lp);
        e["top_logprobs"] = json!([token(t, lp), token("alt1", lp - 1.0)]);
        e
    };
    assert_eq!(
        v["choices"][0]["logprobs"],
        json!({"content": [with_top("Echo:", -0.125), with_top("hi", -0.25)], "refusal": null})
    );
    // Not asked: none.
    let (v, _) = chat(&gw, &req("gemini-2.5-flash", "hi")).await;
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Thinking

#[tokio::test]
async fn thinking_shows_as_reasoning_content() {
    let gw = start(&[]).await;
    let body = req("gemini-2.5-flash", "think");
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"thinkingConfig": {"includeThoughts": true}})
    );
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Echo: think");
    assert_eq!(m["reasoning_content"], THOUGHT);
    let u = &v["usage"];
    let reasoning = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    assert!(reasoning > 0, "{u}");
    assert!(u["completion_tokens"].as_u64().unwrap() > reasoning, "{u}");

    let (s, _) = chat_stream(
        &gw,
        &with(
            body.clone(),
            json!({"stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    let ch = &s.choices[&0];
    assert_eq!(ch.reasoning, THOUGHT);
    assert_eq!(ch.content, "Echo: think");
    let u = s.usage.unwrap();
    assert_eq!(
        u["completion_tokens_details"]["reasoning_tokens"],
        reasoning
    );
    // Reasoning never arrives as content.
    assert!(s.chunks.iter().all(|c| {
        c["choices"][0]["delta"]["content"]
            .as_str()
            .is_none_or(|t| !t.contains("Considering"))
    }));

    // reasoning_effort → thinkingBudget.
    for (effort, budget) in [
        ("minimal", 1024),
        ("low", 1024),
        ("medium", 8192),
        ("high", 24576),
    ] {
        let (_, sent) = chat(
            &gw,
            &with(body.clone(), json!({"reasoning_effort": effort})),
        )
        .await;
        assert_eq!(
            sent["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": budget, "includeThoughts": true}),
            "{effort}"
        );
    }
    // Model suffixes: the base model is called, the client's name echoed.
    let (v, sent) = chat(&gw, &req("gemini-2.5-flash-thinking", "deep")).await;
    let (path, _, _) = upstream(&gw);
    assert_eq!(path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": -1, "includeThoughts": true})
    );
    assert_eq!(v["model"], "gemini-2.5-flash-thinking");
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], THOUGHT);
    let (v, sent) = chat(&gw, &req("gemini-2.5-flash-non-thinking", "fast")).await;
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0})
    );
    assert_eq!(v["model"], "gemini-2.5-flash-non-thinking");
    assert!(
        v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none()
    );
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
    // Models that do not think get no thinking config.
    let (_, sent) = chat(&gw, &req("gemini-2.0-flash", "old")).await;
    assert!(sent.get("generationConfig").is_none(), "{sent}");
    // extra_body.google.thinking_config wins.
    let (_, sent) = chat(
        &gw,
        &with(
            body.clone(),
            json!({"reasoning_effort": "high", "extra_body": {"google": {"thinking_config": {"thinking_budget": 800, "include_thoughts": false}}}}),
        ),
    )
    .await;
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 800, "includeThoughts": false})
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn thinking_budget_map_and_hidden_thoughts() {
    let gw = start(&[
        ("THINKING_BUDGET_MAP", r#"{"gemini-2.5-pro": 2048}"#),
        ("SHOW_THINKING_PROCESS", "false"),
    ])
    .await;
    let (v, sent) = chat(&gw, &req("gemini-2.5-pro", "x")).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"thinkingConfig": {"thinkingBudget": 2048}})
    );
    assert!(
        v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none()
    );
    let (_, sent) = chat(&gw, &req("gemini-2.5-pro-thinking", "x")).await;
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    // Not shown: thoughts are dropped, never mixed into content.
    let (v, _) = chat(&gw, &req("gemini-2.5-pro-thinking", "x")).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: x");
    assert!(
        v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none()
    );
    let (s, _) = chat_stream(&gw, &req("gemini-2.5-pro-thinking", "x")).await;
    assert_eq!(s.choices[&0].content, "Echo: x");
    assert_eq!(s.choices[&0].reasoning, "");
    let (_, sent) = chat(&gw, &req("gemini-2.5-flash", "x")).await;
    assert!(sent.get("generationConfig").is_none(), "{sent}");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Search

#[tokio::test]
async fn search_suffix_adds_google_search_and_links() {
    let gw = start(&[
        ("SEARCH_MODELS", r#"["gemini-2.5-flash"]"#),
        ("SHOW_THINKING_PROCESS", "false"),
    ])
    .await;
    let ids: Vec<String> = get(&gw, "/v1/models").await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.contains(&"gemini-2.5-flash-search".to_string()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"gemini-2.5-pro-search".to_string()),
        "{ids:?}"
    );

    let body = req("gemini-2.5-flash-search", "weather in Oslo");
    let (v, sent) = chat(&gw, &body).await;
    let (path, _, _) = upstream(&gw);
    assert_eq!(path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent["tools"], json!([{"googleSearch": {}}]));
    assert_eq!(v["model"], "gemini-2.5-flash-search");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], format!("Echo: weather in Oslo{SOURCES}"));
    assert_eq!(
        m["annotations"][0],
        json!({"type": "url_citation", "url_citation": {"start_index": 0, "end_index": 21, "title": "Example A", "url": "https://example.com/a"}})
    );
    assert!(!m["content"].as_str().unwrap().contains("<style>"));

    let (s, _) = chat_stream(&gw, &body).await;
    let ch = &s.choices[&0];
    assert_eq!(ch.content, format!("Echo: weather in Oslo{SOURCES}"));
    assert_eq!(
        ch.pieces.last().unwrap(),
        SOURCES,
        "sources are the last delta"
    );

    // A client tool named googleSearch / google_search is the built-in tool.
    for name in ["googleSearch", "google_search"] {
        let body = with(
            req("gemini-2.5-flash", "news"),
            json!({"tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]}),
        );
        let (v, sent) = chat(&gw, &body).await;
        assert_eq!(sent["tools"], json!([{"googleSearch": {}}]), "{name}");
        assert!(sent.get("toolConfig").is_none());
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("Echo: news{SOURCES}")
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn search_links_can_be_hidden() {
    let gw = start(&[
        ("SHOW_SEARCH_LINK", "false"),
        ("SHOW_THINKING_PROCESS", "false"),
    ])
    .await;
    let body = req("gemini-2.5-flash-search", "weather");
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(sent["tools"], json!([{"googleSearch": {}}]));
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: weather");
    let (s, _) = chat_stream(&gw, &body).await;
    assert_eq!(s.choices[&0].content, "Echo: weather");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Code execution, URL context

/// The content the fake's code-execution answer becomes.
fn code_content(echo: &str) -> String {
    format!(
        "{echo}Let me compute it.\n```python\nprint(2 + 2)\n\n```\n\n```output\n4\n\n```\nThe answer is 4."
    )
}

#[tokio::test]
async fn code_execution_renders_code_and_output_in_order() {
    let gw = start(&[("TOOLS_CODE_EXECUTION_ENABLED", "true")]).await;
    let body = req("gemini-2.5-flash", "compute 2+2");
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(sent["tools"], json!([{"codeExecution": {}}]));
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], code_content("Echo: compute 2+2"));
    assert_eq!(m["reasoning_content"], THOUGHT);
    let (s, _) = chat_stream(&gw, &body).await;
    assert_eq!(s.choices[&0].content, code_content("Echo: compute 2+2"));
    assert_eq!(s.choices[&0].reasoning, THOUGHT);
    assert!(
        s.choices[&0]
            .pieces
            .contains(&"\n```python\nprint(2 + 2)\n\n```\n".to_string()),
        "the code block is one delta: {:?}",
        s.choices[&0].pieces
    );
    // Not when the client sent its own functions.
    let (_, sent) = chat(&gw, &with(body.clone(), json!({"tools": [weather_tool()]}))).await;
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [weather_decl()]}])
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn url_context_for_listed_models() {
    let gw = start(&[
        ("URL_CONTEXT_ENABLED", "true"),
        ("URL_CONTEXT_MODELS", r#"["gemini-2.5-pro"]"#),
    ])
    .await;
    let (_, sent) = chat(&gw, &req("gemini-2.5-pro", "read https://example.com")).await;
    assert_eq!(sent["tools"], json!([{"urlContext": {}}]));
    let (_, sent) = chat(&gw, &req("gemini-2.5-flash", "read https://example.com")).await;
    assert!(sent.get("tools").is_none(), "{sent}");
    gw.shutdown().await;
    // Off by default.
    let gw = start(&[("URL_CONTEXT_MODELS", r#"["gemini-2.5-pro"]"#)]).await;
    let (_, sent) = chat(&gw, &req("gemini-2.5-pro", "read")).await;
    assert!(sent.get("tools").is_none(), "{sent}");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Safety and extensions

#[tokio::test]
async fn safety_settings_default_configured_and_per_request() {
    let gw = start(&[]).await;
    let (_, sent) = chat(&gw, &req("gemini-2.5-flash", "x")).await;
    assert_eq!(sent["safetySettings"], default_safety());
    gw.shutdown().await;

    let configured =
        json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]);
    let gw = start(&[("SAFETY_SETTINGS", &configured.to_string())]).await;
    let (_, sent) = chat(&gw, &req("gemini-2.5-flash", "x")).await;
    assert_eq!(sent["safetySettings"], configured);
    let own = json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]);
    // extra_body as raw JSON, and as the OpenAI SDK sends it (merged into the body).
    for ext in [
        json!({"extra_body": {"google": {"safety_settings": own}}}),
        json!({"google": {"safety_settings": own}}),
    ] {
        let (_, sent) = chat(&gw, &with(req("gemini-2.5-flash", "x"), ext.clone())).await;
        assert_eq!(sent["safetySettings"], own, "{ext}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn cached_content_and_cached_tokens() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    let body = with(
        req("gemini-2.5-flash", "from cache"),
        json!({"extra_body": {"google": {"cached_content": "cachedContents/abc123"}},
               "stream_options": {"include_usage": true}}),
    );
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(sent["cachedContent"], "cachedContents/abc123");
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1024);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 1024);
    let (s, _) = chat_stream(&gw, &body).await;
    assert_eq!(
        s.usage.unwrap()["prompt_tokens_details"]["cached_tokens"],
        1024
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn image_output_comes_back_as_markdown() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    let want = format!("Echo: draw a dot![image](data:image/png;base64,{PNG_1X1})");
    let (v, _) = chat(&gw, &req("gemini-2.5-flash", "draw a dot [[image]]")).await;
    assert_eq!(v["choices"][0]["message"]["content"], want);
    let (s, _) = chat_stream(&gw, &req("gemini-2.5-flash", "draw a dot [[image]]")).await;
    assert_eq!(s.choices[&0].content, want);
    // modalities → responseModalities, and the image comes back.
    let body = with(
        req("gemini-2.5-flash-image", "draw a dot"),
        json!({"modalities": ["text", "image"]}),
    );
    let (v, sent) = chat(&gw, &body).await;
    assert_eq!(
        sent["generationConfig"],
        json!({"responseModalities": ["TEXT", "IMAGE"]})
    );
    assert_eq!(v["choices"][0]["message"]["content"], want);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Finish reasons, blocked prompts, usage, every part kept

#[tokio::test]
async fn finish_reasons_map_plain_and_streamed() {
    let gw = start(&[]).await;
    for (gemini, openai) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ] {
        let body = req("gemini-2.5-flash", &format!("go [[finish={gemini}]]"));
        let (v, _) = chat(&gw, &body).await;
        assert_eq!(v["choices"][0]["finish_reason"], openai, "{gemini}");
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: go");
        let (s, _) = chat_stream(&gw, &body).await;
        assert_eq!(s.choices[&0].finish.as_deref(), Some(openai), "{gemini}");
        assert_eq!(s.choices[&0].content, "Echo: go");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn blocked_prompts_are_a_clear_content_filter_answer() {
    let gw = start(&[]).await;
    let body = with(
        req("gemini-2.5-flash", "something bad [[block]]"),
        json!({"stream_options": {"include_usage": true}}),
    );
    let (v, _) = chat(&gw, &body).await;
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "content_filter");
    assert_eq!(c["message"]["content"], "");
    assert_eq!(c["message"]["refusal"], "Prompt blocked by Gemini: SAFETY");
    assert_eq!(v["usage"]["completion_tokens"], 0);

    let (s, _) = chat_stream(&gw, &body).await;
    let ch = &s.choices[&0];
    assert_eq!(ch.finish.as_deref(), Some("content_filter"));
    assert_eq!(ch.refusal, "Prompt blocked by Gemini: SAFETY");
    assert_eq!(ch.content, "");
    assert!(s.usage.unwrap()["prompt_tokens"].as_u64().unwrap() > 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn usage_in_streams_only_when_asked() {
    let gw = start(&[]).await;
    let body = req("gemini-2.5-flash", "count me");
    let (s, _) = chat_stream(&gw, &body).await;
    assert!(s.usage.is_none());
    assert!(
        s.chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );
    let (s, _) = chat_stream(
        &gw,
        &with(
            body.clone(),
            json!({"stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    let u = s.usage.expect("usage chunk");
    let (v, _) = chat(&gw, &body).await;
    assert_eq!(u["prompt_tokens"], v["usage"]["prompt_tokens"]);
    assert_eq!(
        u["completion_tokens_details"]["reasoning_tokens"],
        v["usage"]["completion_tokens_details"]["reasoning_tokens"]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn every_part_is_kept_in_order() {
    let gw = start(&[("TOOLS_CODE_EXECUTION_ENABLED", "true")]).await;
    // Thought, text, text, code, result, text, image: seven parts in one answer.
    let body = req("gemini-2.5-flash", "all of it [[image]]");
    let want = format!(
        "{}![image](data:image/png;base64,{PNG_1X1})",
        code_content("Echo: all of it")
    );
    let (v, _) = chat(&gw, &body).await;
    assert_eq!(v["choices"][0]["message"]["content"], want);
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], THOUGHT);
    let (s, _) = chat_stream(&gw, &body).await;
    assert_eq!(s.choices[&0].content, want);
    assert_eq!(s.choices[&0].reasoning, THOUGHT);
    gw.shutdown().await;
}
