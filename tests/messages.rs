//! The Anthropic Messages API (`/v1/messages`, `/v1/messages/count_tokens`)
//! against the fake Gemini: plain and streamed answers, the stream's event
//! sequence, tools with a round trip, thinking signatures across turns,
//! images, token counting, errors in Anthropic's format, `x-api-key`,
//! model aliases, and a property test that every request the translator
//! accepts is a Gemini body the fake accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// POST a Messages body with the token as `x-api-key`, as the SDK does.
async fn post_msg(gw: &Gw, path: &str, body: &Value) -> Answer {
    send(
        Method::POST,
        &gw.url(path),
        &[
            ("x-api-key", TOKEN),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "claude-code-20250219,interleaved-thinking-2025-05-14",
            ),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn simple(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": text}]})
}

/// The Gemini request bodies the fake received, for generate calls.
fn gemini_bodies(gw: &Gw) -> Vec<(String, Value)> {
    gw.state()
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.contains(":generateContent") || r.path.contains(":streamGenerateContent")
        })
        .map(|r| (r.path.clone(), serde_json::from_slice(&r.body).unwrap()))
        .collect()
}

/// `(event name, data)` of every event of an Anthropic stream; the `event:`
/// line must be there and agree with the data's `type`.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = None;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                }
            }
            let (name, data) = (name.expect("event: line"), data.expect("data: line"));
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

/// Check the sequence: `message_start` first, `message_stop` last (or an
/// `error`), every block started once with increasing indices, stopped
/// once, deltas only inside an open block; returns the blocks rebuilt.
fn well_formed(evs: &[(String, Value)]) -> Vec<Value> {
    assert_eq!(evs[0].0, "message_start", "{evs:?}");
    let last = evs.last().unwrap().0.as_str();
    assert!(last == "message_stop" || last == "error", "{evs:?}");
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Option<u64> = None;
    let mut deltas = 0;
    for (name, d) in evs {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "blocks do not interleave");
                assert_eq!(d["index"], blocks.len() as u64, "indices increase by one");
                open = d["index"].as_u64();
                blocks.push(d["content_block"].clone());
            }
            "content_block_delta" => {
                assert_eq!(d["index"].as_u64(), open, "delta inside its block");
                let b = blocks.last_mut().unwrap();
                let delta = &d["delta"];
                let add = |b: &mut Value, k: &str, s: &Value| {
                    let t = b[k].as_str().unwrap_or("").to_string() + s.as_str().unwrap();
                    b[k] = t.into();
                };
                match delta["type"].as_str().unwrap() {
                    "text_delta" => add(b, "text", &delta["text"]),
                    "thinking_delta" => add(b, "thinking", &delta["thinking"]),
                    "signature_delta" => b["signature"] = delta["signature"].clone(),
                    "input_json_delta" => add(b, "partial", &delta["partial_json"]),
                    other => panic!("delta type {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(d["index"].as_u64(), open, "stop of the open block");
                open = None;
            }
            "message_delta" => {
                assert!(open.is_none());
                deltas += 1;
                assert!(d["delta"]["stop_reason"].is_string());
                assert!(d["usage"]["output_tokens"].is_u64());
            }
            "message_start" => assert!(d["message"]["usage"]["input_tokens"].is_u64()),
            "ping" | "message_stop" | "error" => {}
            other => panic!("unknown event {other}"),
        }
    }
    assert!(open.is_none(), "every block stopped");
    if last == "message_stop" {
        assert_eq!(deltas, 1, "one message_delta");
    }
    blocks
}

#[tokio::test]
async fn plain_message_with_alias_and_ignored_members() {
    let gw = start(&[]).await;
    let body = json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 64000,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
                   {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
        "metadata": {"user_id": "u"},
        "context_management": {"edits": []},
        "service_tier": "auto",
        "a_member_from_next_month": {"x": [1, 2]},
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
    });
    let r = post_msg(&gw, "/v1/messages?beta=true", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Echo: hi"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let (path, g) = gemini_bodies(&gw).pop().unwrap();
    // With stop sequences, a whole answer is read from Gemini's stream.
    assert!(
        path.ends_with("/models/gemini-2.5-pro:streamGenerateContent"),
        "{path}"
    );
    assert_eq!(
        g["systemInstruction"]["parts"],
        json!([{"text": "Be brief."}])
    );
    let gc = &g["generationConfig"];
    assert_eq!(gc["maxOutputTokens"], 64000);
    assert_eq!(
        (
            gc["temperature"].clone(),
            gc["topP"].clone(),
            gc["topK"].clone()
        ),
        (json!(0.5), json!(0.9), json!(40))
    );
    // Matched by the gateway, not sent (Gemini would not say it stopped on one).
    assert!(gc["stopSequences"].is_null(), "{gc}");
    assert_eq!(g["safetySettings"][0]["threshold"], "OFF");
    // Haiku → Flash; max_tokens clamped to the model's output limit.
    let r = post_msg(
        &gw,
        "/anthropic/v1/messages",
        &simple("claude-3-5-haiku-latest", "a"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let (path, _) = gemini_bodies(&gw).pop().unwrap();
    assert!(path.contains("/models/gemini-2.5-flash:"), "{path}");
    let mut b = simple("gemini-2.0-flash", "a");
    b["max_tokens"] = json!(64000);
    let r = post_msg(&gw, "/hf/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    assert_eq!(g["generationConfig"]["maxOutputTokens"], 8192);
    gw.shutdown().await;
}

#[tokio::test]
async fn configured_aliases_win_over_the_defaults() {
    let gw = start(&[(
        "MODEL_ALIASES",
        r#"{"claude-*":"gemini-2.5-flash-lite","gpt-5":"gemini-2.5-pro"}"#,
    )])
    .await;
    let r = post_msg(&gw, "/v1/messages", &simple("claude-opus-4-1", "a")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (path, _) = gemini_bodies(&gw).pop().unwrap();
    assert!(path.contains("/models/gemini-2.5-flash-lite:"), "{path}");
    assert_eq!(r.json()["model"], "claude-opus-4-1");
    gw.shutdown().await;
}

#[tokio::test]
async fn auth_takes_x_api_key_or_bearer_and_errors_are_anthropic_shaped() {
    let gw = start(&[]).await;
    let body = serde_json::to_vec(&simple("gemini-2.5-flash", "hi")).unwrap();
    let url = gw.url("/v1/messages");
    for headers in [
        vec![],
        vec![("x-api-key", "sk-wrong")],
        vec![("authorization", "Bearer sk-wrong")],
    ] {
        let r = send(Method::POST, &url, &headers, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let v = r.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("x-api-key")
        );
    }
    let bearer = format!("Bearer {TOKEN}");
    let r = send(
        Method::POST,
        &url,
        &[("authorization", &bearer)],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(Method::POST, &url, &[("x-api-key", TOKEN)], body).await;
    assert_eq!(r.status, StatusCode::OK);
    // x-api-key is not a credential of the OpenAI routes.
    let chat = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]});
    let r = send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[("x-api-key", TOKEN)],
        serde_json::to_vec(&chat).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Claude Code's first request.
    let r = send(Method::HEAD, &gw.url("/"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    // Bad input: 400 invalid_request_error naming the field.
    let bad = json!({"model": "gemini-2.5-flash", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]});
    let r = post_msg(&gw, "/v1/messages", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("content"));
    let r = send(Method::GET, &url, &[("x-api-key", TOKEN)], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json()["type"], "error");
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_are_anthropic_classes() {
    let gw = start(&[("MAX_RETRIES", "0")]).await;
    let r = post_msg(
        &gw,
        "/v1/messages",
        &simple("gemini-2.5-flash", "x [[status=404]]"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = post_msg(
        &gw,
        "/v1/messages",
        &simple("gemini-2.5-flash", "x [[status=503]]"),
    )
    .await;
    assert_eq!(r.status.as_u16(), 529, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    let r = post_msg(
        &gw,
        "/v1/messages",
        &simple("gemini-2.5-flash", "x [[status=429]]"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.headers.get("retry-after").is_some());
    // A streamed request fails the same way before its first byte.
    let mut b = simple("gemini-2.5-flash", "x [[status=429]]");
    b["stream"] = json!(true);
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failing_key_is_retried_on_another_and_bodies_are_limited() {
    let gw = start(&[
        (
            "API_KEYS",
            r#"["overload-key-000001","key-good-0000000002"]"#,
        ),
        ("MAX_BODY_BYTES", "4096"),
    ])
    .await;
    for stream in [false, true] {
        let mut b = simple("gemini-2.5-flash", "hi");
        b["stream"] = json!(stream);
        let r = post_msg(&gw, "/v1/messages", &b).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let keys: Vec<String> = gw
        .state()
        .requests()
        .iter()
        .filter_map(|r| r.api_key.clone())
        .collect();
    assert!(keys.iter().any(|k| k.starts_with("overload")), "{keys:?}");
    let big = simple("gemini-2.5-flash", &"x".repeat(5000));
    let r = post_msg(&gw, "/v1/messages", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    gw.shutdown().await;
}

#[tokio::test]
async fn stream_is_a_well_formed_event_sequence() {
    let gw = start(&[]).await;
    let mut b = simple("gemini-2.5-flash", "hello there friend");
    b["stream"] = json!(true);
    b["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    let r = post_msg(&gw, "/v1/messages?beta=true", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let evs = events(&r.text());
    let blocks = well_formed(&evs);
    assert_eq!(blocks[0]["type"], "thinking");
    assert!(blocks[0]["thinking"].as_str().unwrap().contains("Thinking"));
    assert!(!blocks[0]["signature"].as_str().unwrap().is_empty());
    assert_eq!(blocks[1]["type"], "text");
    assert_eq!(blocks[1]["text"], "Echo: hello there friend");
    let delta = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "end_turn");
    assert!(delta.1["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let (path, g) = gemini_bodies(&gw).pop().unwrap();
    assert!(path.contains(":streamGenerateContent"));
    assert_eq!(
        g["generationConfig"]["thinkingConfig"],
        json!({"includeThoughts": true, "thinkingBudget": 2048})
    );
    // The same answer whole has the same blocks.
    b["stream"] = json!(false);
    let whole = post_msg(&gw, "/v1/messages", &b).await.json();
    assert_eq!(whole["content"][1]["text"], blocks[1]["text"]);
    assert_eq!(whole["content"][0]["thinking"], blocks[0]["thinking"]);
    assert_eq!(whole["content"][0]["signature"], blocks[0]["signature"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn stream_sends_pings_while_gemini_is_silent() {
    let gw = start(&[("STREAM_IDLE_TIMEOUT", "2")]).await;
    let mut b = simple("gemini-2.5-flash", "[[events=3 gap=1300]]");
    b["stream"] = json!(true);
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::OK);
    let evs = events(&r.text());
    well_formed(&evs);
    assert!(evs.iter().any(|(n, _)| n == "ping"), "{evs:?}");
    assert_eq!(evs.last().unwrap().0, "message_stop");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_ends_with_an_error_event() {
    let gw = start(&[("API_KEYS", r#"["cut-key-0000000001"]"#)]).await;
    let mut b = simple("gemini-2.5-flash", "[[words=30]]");
    b["stream"] = json!(true);
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::OK);
    let evs = events(&r.text());
    well_formed(&evs);
    let (name, data) = evs.last().unwrap();
    assert_eq!(name, "error", "{evs:?}");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(evs.iter().all(|(n, _)| n != "message_stop"));
    gw.shutdown().await;
}

/// `(text of the text blocks, stop_reason, stop_sequence)` of a whole message.
fn outcome(v: &Value) -> (String, Value, Value) {
    let text = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    (text, v["stop_reason"].clone(), v["stop_sequence"].clone())
}

/// The same for a stream (checked well formed, ending in `message_stop`).
fn streamed_outcome(body: &str) -> (String, Value, Value) {
    let evs = events(body);
    let blocks = well_formed(&evs);
    assert_eq!(evs.last().unwrap().0, "message_stop", "{evs:?}");
    let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let v = json!({"content": blocks, "stop_reason": delta["delta"]["stop_reason"],
        "stop_sequence": delta["delta"]["stop_sequence"]});
    outcome(&v)
}

#[tokio::test]
async fn stop_sequences_are_matched_by_the_gateway_across_deltas() {
    let gw = start(&[]).await;
    // The fake streams 4 words an event: "Echo: alpha beta gamma " and
    // "delta epsilon zeta", so "gamma delta" straddles two deltas.
    let mut b = simple("gemini-2.5-flash", "alpha beta gamma delta epsilon zeta");
    b["stop_sequences"] = json!(["nowhere", "gamma delta", "zeta"]);
    b["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    // Text in thinking blocks is not matched ("Considering the question.").
    b["stop_sequences"]
        .as_array_mut()
        .unwrap()
        .push(json!("Considering"));
    let want = (
        "Echo: alpha beta ".to_string(),
        json!("stop_sequence"),
        json!("gamma delta"),
    );
    let whole = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text());
    let v = whole.json();
    assert_eq!(outcome(&v), want, "{v}");
    assert_eq!(v["content"][0]["type"], "thinking");
    assert!(
        v["content"][0]["thinking"]
            .as_str()
            .unwrap()
            .contains("Considering")
    );
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let (path, g) = gemini_bodies(&gw).pop().unwrap();
    assert!(path.contains(":streamGenerateContent"), "{path}");
    assert!(g["generationConfig"]["stopSequences"].is_null());
    b["stream"] = json!(true);
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(streamed_outcome(&r.text()), want);
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    assert!(g["generationConfig"]["stopSequences"].is_null());
    // No match: every word, held-back text flushed, `end_turn`.
    b["stop_sequences"] = json!(["zeta!", "nowhere"]);
    let all = (
        "Echo: alpha beta gamma delta epsilon zeta".to_string(),
        json!("end_turn"),
        Value::Null,
    );
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(streamed_outcome(&r.text()), all);
    b["stream"] = json!(false);
    let v = post_msg(&gw, "/v1/messages", &b).await.json();
    assert_eq!(outcome(&v), all, "{v}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stop_sequence_ends_the_upstream_stream() {
    let gw = start(&[]).await;
    // 40 words, one every 60 ms: read to the end, 2.4 s.
    let mut b = simple("gemini-2.5-flash", "[[events=40 gap=60]]");
    b["stop_sequences"] = json!(["sit amet"]);
    for stream in [false, true] {
        b["stream"] = json!(stream);
        let t = std::time::Instant::now();
        let r = post_msg(&gw, "/v1/messages", &b).await;
        let text = r.text();
        assert!(
            t.elapsed() < std::time::Duration::from_millis(1500),
            "{stream}: {:?}",
            t.elapsed()
        );
        let got = if stream {
            streamed_outcome(&text)
        } else {
            outcome(&r.json())
        };
        assert_eq!(
            got,
            (
                "lorem ipsum dolor ".to_string(),
                json!("stop_sequence"),
                json!("sit amet")
            ),
            "{text}"
        );
    }
    gw.shutdown().await;
}

/// The tools Claude Code sends look like this: JSON Schema keywords Gemini's
/// `parameters` refuses.
fn claude_code_tools() -> Value {
    json!([{
        "name": "Read",
        "description": "Read a file",
        "cache_control": {"type": "ephemeral"},
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "file_path": {"type": "string", "format": "uri", "pattern": "^/"},
                "limit": {"type": "integer", "exclusiveMinimum": 0},
                "mode": {"const": "text"},
                "tags": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}},
                "either": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "required": ["file_path"]
        }
    }])
}

#[tokio::test]
async fn tool_round_trip_with_signature_and_cleaned_schema() {
    let gw = start(&[]).await;
    let mut b = simple("gemini-2.5-flash", "read /etc/hosts");
    b["tools"] = claude_code_tools();
    b["tool_choice"] = json!({"type": "tool", "name": "Read"});
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stop_reason"], "tool_use");
    let content = v["content"].as_array().unwrap().clone();
    assert_eq!(content[0]["type"], "thinking", "{v}");
    let sig = content[0]["signature"].as_str().unwrap().to_string();
    assert!(sig.starts_with("gmb1."), "{sig}");
    let call = &content[1];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "Read");
    assert!(call["input"]["file_path"].is_string(), "{call}");
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    let params = g["tools"][0]["functionDeclarations"][0]["parameters"].to_string();
    for gone in [
        "$schema",
        "propertyNames",
        "exclusiveMinimum",
        "const",
        "additionalProperties",
        "\"uri\"",
    ] {
        assert!(!params.contains(gone), "{gone} in {params}");
    }
    assert_eq!(
        g["toolConfig"]["functionCallingConfig"],
        json!({"allowedFunctionNames": ["Read"], "mode": "ANY"})
    );
    // The client runs the tool and sends everything back.
    let id = call["id"].as_str().unwrap();
    let next = json!({
        "model": "gemini-2.5-flash", "max_tokens": 1024, "tools": claude_code_tools(),
        "messages": [
            {"role": "user", "content": "read /etc/hosts"},
            {"role": "assistant", "content": content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": "127.0.0.1 localhost"}]},
            ]},
        ]
    });
    let r = post_msg(&gw, "/v1/messages", &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(
        v["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Tool Read returned"),
        "{v}"
    );
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    let model_turn = &g["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(
        model_turn["parts"][0]["thoughtSignature"].as_str(),
        sig.strip_prefix("gmb1.")
    );
    assert!(model_turn["parts"][0]["functionCall"]["name"] == "Read");
    let resp = &g["contents"][2]["parts"][0]["functionResponse"];
    assert_eq!(resp["name"], "Read");
    assert_eq!(resp["response"], json!({"result": "127.0.0.1 localhost"}));
    // An error result, and a result for a tool_use that never was.
    let mut bad = next.clone();
    bad["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_unknown");
    let r = post_msg(&gw, "/v1/messages", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("tool_use_id"));
    let mut err = next;
    err["messages"][2]["content"][0]["is_error"] = json!(true);
    let r = post_msg(&gw, "/v1/messages", &err).await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    assert_eq!(
        g["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"error": "127.0.0.1 localhost"})
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn streamed_tool_use_has_input_json_and_signature() {
    let gw = start(&[]).await;
    let mut b = simple("gemini-2.5-flash", "read it");
    b["tools"] = claude_code_tools();
    b["stream"] = json!(true);
    let r = post_msg(&gw, "/v1/messages", &b).await;
    assert_eq!(r.status, StatusCode::OK);
    let evs = events(&r.text());
    let blocks = well_formed(&evs);
    assert_eq!(blocks[0]["type"], "thinking");
    assert!(
        blocks[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("gmb1.")
    );
    assert_eq!(blocks[1]["type"], "tool_use");
    let input: Value = serde_json::from_str(blocks[1]["partial"].as_str().unwrap()).unwrap();
    assert!(input["file_path"].is_string());
    let delta = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    gw.shutdown().await;
}

#[tokio::test]
async fn thinking_signatures_across_turns_on_gemini_3() {
    let gw = start(&[]).await;
    let call = |sig: Option<&str>| {
        let mut content = Vec::new();
        if let Some(s) = sig {
            content.push(json!({"type": "thinking", "thinking": "hm", "signature": s}));
        }
        content.push(json!({"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}));
        json!({
            "model": "gemini-3-pro-preview", "max_tokens": 2048, "tools": claude_code_tools(),
            "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"},
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
            ]
        })
    };
    // The gateway's own signature goes back to Gemini; a foreign one, or
    // none, becomes Gemini 3's skip sentinel (and is accepted).
    for (sig, expect) in [
        (Some("gmb1.c2lnOlJlYWQ="), "c2lnOlJlYWQ="),
        (
            Some("EqQBCkYIBxgCKkB-anthropic"),
            "skip_thought_signature_validator",
        ),
        (Some("gmb0"), "skip_thought_signature_validator"),
        (None, "skip_thought_signature_validator"),
    ] {
        let r = post_msg(&gw, "/v1/messages", &call(sig)).await;
        assert_eq!(r.status, StatusCode::OK, "{sig:?}: {}", r.text());
        let (path, g) = gemini_bodies(&gw).pop().unwrap();
        assert!(path.contains("gemini-3-pro-preview"));
        assert_eq!(
            g["contents"][1]["parts"][0]["thoughtSignature"], expect,
            "{sig:?}"
        );
        let tc = &g["generationConfig"]["thinkingConfig"];
        assert_eq!(
            *tc,
            json!({"includeThoughts": true, "thinkingLevel": "low"})
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn images_documents_and_system_mid_conversation() {
    let gw = start(&[]).await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let body = json!({
        "model": "gemini-2.5-flash", "max_tokens": 100, "system": "First rule.",
        "messages": [
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": [{"type": "text", "text": "Second rule.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}},
                {"type": "text", "text": "what is this"}
            ]}
        ]
    });
    let r = post_msg(&gw, "/v1/messages", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.json()["content"][0]["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("image/png") && text.contains("application/pdf"),
        "{text}"
    );
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    assert_eq!(
        g["systemInstruction"]["parts"],
        json!([{"text": "First rule."}, {"text": "Second rule."}])
    );
    let roles: Vec<&str> = g["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user"]);
    gw.shutdown().await;
}

/// A local server answering every request with a 1x1 PNG.
async fn png_server() -> std::net::SocketAddr {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let png = png.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    png.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&png).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn url_sources_are_fetched_like_the_chat_routes_images() {
    let addr = png_server().await;
    let url = format!("http://{addr}/cat.png");
    let body = |url: &str| {
        json!({"model": "gemini-2.5-flash", "max_tokens": 100, "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": url}},
                {"type": "text", "text": "what is this"}
            ]}
        ]})
    };
    // Private addresses are refused unless ALLOW_PRIVATE_FETCH, naming the block.
    let gw = start(&[]).await;
    let r = post_msg(&gw, "/v1/messages", &body(&url)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.starts_with("messages[0].content[0].source.url: "), "{m}");
    gw.shutdown().await;
    let gw = start(&[("ALLOW_PRIVATE_FETCH", "true")]).await;
    let r = post_msg(&gw, "/v1/messages", &body(&url)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.json()["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("image/png")
    );
    let (_, g) = gemini_bodies(&gw).pop().unwrap();
    let inline = &g["contents"][0]["parts"][0]["inlineData"];
    assert_eq!(inline["mimeType"], "image/png");
    assert!(inline["data"].as_str().unwrap().starts_with("iVBOR"));
    gw.shutdown().await;
}

#[tokio::test]
async fn count_tokens_answers_input_tokens() {
    let gw = start(&[]).await;
    let body = json!({"model": "claude-sonnet-4-5", "system": "Be brief.", "tools": claude_code_tools(),
        "messages": [{"role": "user", "content": "count these words please"}]});
    let r = post_msg(&gw, "/v1/messages/count_tokens?beta=true", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert!(v["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1);
    let rec = gw.state().requests().pop().unwrap();
    assert!(
        rec.path.ends_with("/models/gemini-2.5-pro:countTokens"),
        "{}",
        rec.path
    );
    let g: Value = serde_json::from_slice(&rec.body).unwrap();
    assert_eq!(
        g["generateContentRequest"]["model"],
        "models/gemini-2.5-pro"
    );
    let r = post_msg(&gw, "/v1/messages/count_tokens", &json!({"model": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    gw.shutdown().await;
}

mod property {
    use super::*;
    use gemini_balance::anthropic::request::prepare;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn text() -> impl Strategy<Value = Value> {
        prop_oneof![Just(json!("")), "[a-z ]{1,12}".prop_map(Value::from)]
    }

    fn block(role: &'static str) -> impl Strategy<Value = Value> {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
        prop_oneof![
            text().prop_map(
                |t| json!({"type": "text", "text": t, "cache_control": {"type": "ephemeral"}})
            ),
            Just(
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}})
            ),
            Just(
                json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}})
            ),
            Just(if role == "assistant" {
                json!({"type": "thinking", "thinking": "t", "signature": "gmb1.c2ln"})
            } else {
                json!({"type": "text", "text": "u"})
            }),
            Just(json!({"type": "redacted_thinking", "data": "opaque"})),
        ]
    }

    fn message() -> impl Strategy<Value = Value> {
        let bad = prop_oneof![
            Just(json!({"role": "tool", "content": "x"})),
            Just(json!({"role": "user", "content": [5]})),
            Just(json!({"role": "user", "content": [{"type": "mystery"}]})),
        ];
        let good =
            prop_oneof![Just("user"), Just("assistant"), Just("system")].prop_flat_map(|role| {
                prop_oneof![
                    text().prop_map(move |t| json!({"role": role, "content": t})),
                    prop::collection::vec(block(role), 0..4)
                        .prop_map(move |b| json!({"role": role, "content": b})),
                ]
            });
        prop_oneof![40 => good, 1 => bad]
    }

    fn request() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(message(), 0..6),
            prop_oneof![8 => Just(json!(null)), 8 => Just(json!("sys")), 8 => Just(json!([{"type": "text", "text": "s"}])), 1 => Just(json!(3))],
            prop_oneof![8 => Just(json!(null)), 8 => Just(claude_code_tools()), 4 => Just(json!([{"name": "web_search", "type": "web_search_20250305"}])), 1 => Just(json!([{"type": "bash_20250124", "name": "bash"}]))],
            prop_oneof![8 => Just(json!(null)), 2 => Just(json!({"type": "auto"})), 2 => Just(json!({"type": "any"})), 2 => Just(json!({"type": "none"})), 1 => Just(json!({"type": "sometimes"}))],
            prop_oneof![8 => Just(json!(null)), 4 => Just(json!({"type": "enabled", "budget_tokens": 1024})), 4 => Just(json!({"type": "adaptive"})), 4 => Just(json!({"type": "disabled"})), 1 => Just(json!({"type": "enabled"}))],
            prop_oneof![8 => Just(json!(null)), 4 => Just(json!({"effort": "high"})), 4 => Just(json!({"format": {"type": "json_schema", "schema": {"type": "object"}}}))],
            prop_oneof![8 => Just(json!(null)), 4 => Just(json!(0)), 4 => Just(json!(64000)), 1 => Just(json!(-1)), 1 => Just(json!("x"))],
            prop_oneof![Just("gemini-2.5-flash"), Just("gemini-2.5-pro"), Just("gemini-3-pro-preview"), Just("gemini-2.0-flash")],
        )
            .prop_map(|(messages, system, tools, choice, thinking, output, max, model)| {
                let mut r = json!({"model": model, "messages": messages});
                for (k, v) in [("system", system), ("tools", tools), ("tool_choice", choice), ("thinking", thinking), ("output_config", output), ("max_tokens", max)] {
                    if !v.is_null() {
                        r[k] = v;
                    }
                }
                r
            })
    }

    fn gemini_part() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[a-z ]{0,6}".prop_map(|t| json!({"text": t, "thought": true})),
            "[a-z ]{0,6}".prop_map(|t| json!({"text": t})),
            Just(json!({"text": "", "thoughtSignature": "VFNJRw=="})),
            Just(
                json!({"functionCall": {"name": "f", "args": {"a": [1]}}, "thoughtSignature": "U0lH"})
            ),
            Just(json!({"functionCall": {"name": "g"}})),
            Just(json!({"executableCode": {"language": "PYTHON", "code": "1"}})),
            Just(json!({"inlineData": {"mimeType": "image/png", "data": "AA=="}})),
            Just(json!({"somethingNew": {}})),
        ]
    }

    fn gemini_events() -> impl Strategy<Value = (Vec<Vec<Value>>, Option<&'static str>)> {
        (
            prop::collection::vec(prop::collection::vec(gemini_part(), 0..4), 1..6),
            prop_oneof![
                Just(Some("STOP")),
                Just(Some("MAX_TOKENS")),
                Just(Some("SAFETY")),
                Just(None)
            ],
        )
    }

    proptest! {
        /// Any Gemini stream gives a well-formed event sequence (every
        /// `*_start` has its `*_stop`, indices increase), and the blocks it
        /// builds are those of the same answer read whole.
        #[test]
        fn streams_are_well_formed_and_agree_with_whole_answers((events, finish) in gemini_events()) {
            use gemini_balance::anthropic::{AnswerCtx, Step, StreamTranslator, translate_answer};
            let mut tr = StreamTranslator::new("msg_p", "claude-x");
            let mut out = Vec::new();
            let n = events.len();
            for (i, parts) in events.iter().enumerate() {
                let mut c = json!({"content": {"parts": parts, "role": "model"}});
                if i + 1 == n && let Some(f) = finish {
                    c["finishReason"] = json!(f);
                }
                let ev = json!({"candidates": [c], "usageMetadata": {"promptTokenCount": 3}});
                prop_assert_eq!(tr.on_event(&ev.to_string(), &mut out), Step::Continue);
            }
            tr.finish(&mut out);
            let evs = super::events(&String::from_utf8(out).unwrap());
            let mut blocks = well_formed(&evs);
            for b in &mut blocks {
                if let Some(p) = b.as_object_mut().and_then(|o| o.remove("partial")) {
                    b["input"] = serde_json::from_str(p.as_str().unwrap()).unwrap();
                }
            }
            let all: Vec<Value> = events.concat();
            let mut c = json!({"content": {"parts": all, "role": "model"}});
            if let Some(f) = finish {
                c["finishReason"] = json!(f);
            }
            let whole = json!({"candidates": [c]}).to_string();
            let ctx = AnswerCtx { id: "msg_p", model: "claude-x" };
            let v: Value = serde_json::from_slice(&translate_answer(whole.as_bytes(), &ctx).unwrap()).unwrap();
            prop_assert_eq!(&Value::Array(blocks), &v["content"]);
            if finish.is_none() {
                prop_assert_eq!(evs.last().map(|(n, _)| n.as_str()), Some("error"));
            } else {
                let delta = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
                prop_assert_eq!(&delta.1["delta"]["stop_reason"], &v["stop_reason"]);
            }
        }
    }

    /// Every request the translator accepts is a body the fake (which makes
    /// Gemini's checks on contents, parts and function turns) accepts; the
    /// others are refused with a message naming a field.
    #[tokio::test]
    async fn accepted_requests_are_bodies_the_fake_accepts() {
        let fake = fake_gemini::Fake::start().await.unwrap();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>();
        let mut runner = TestRunner::deterministic();
        let strategy = request();
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..300 {
            let req = strategy.new_tree(&mut runner).unwrap().current();
            let model = req["model"].as_str().unwrap().to_string();
            match prepare(&req, &model, None) {
                Err(e) => {
                    refused += 1;
                    assert!(e.param.is_some() && !e.message.is_empty(), "{req}");
                }
                Ok(p) => {
                    accepted += 1;
                    let url = format!("{}/models/{model}:generateContent", fake.base_url());
                    let http_req = http::Request::post(url)
                        .header("x-goog-api-key", "key-ok-0001")
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(Bytes::from(p.body)))
                        .unwrap();
                    let res = client.request(http_req).await.unwrap();
                    let status = res.status();
                    let body = http_body_util::BodyExt::collect(res.into_body())
                        .await
                        .unwrap()
                        .to_bytes();
                    assert_eq!(
                        status,
                        StatusCode::OK,
                        "{req}\n→ {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        }
        assert!(
            accepted > 30 && refused > 30,
            "{accepted} accepted, {refused} refused"
        );
    }
}
