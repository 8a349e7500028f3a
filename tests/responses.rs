//! The OpenAI Responses API (`/v1/responses`) against the fake Gemini:
//! whole and streamed answers (the event sequence well-formed), a function
//! tool round trip with thought signatures, json_schema, reasoning
//! summaries, stored responses (`previous_response_id`, `item_reference`,
//! GET/DELETE, another token's 404), accepted unknown fields, and the 400s
//! for what cannot be honoured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const OTHER: &str = "sk-other-token-9876543210";

fn two_tokens() -> String {
    format!("[\"{TOKEN}\",\"{OTHER}\"]")
}

async fn post_as(gw: &Gw, token: &str, path: &str, body: &Value) -> Answer {
    send(
        Method::POST,
        &gw.url(path),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// The body of the last generate call the fake saw.
fn last_body(gw: &Gw) -> Value {
    let reqs = gw.state().requests();
    let r = reqs
        .iter()
        .rev()
        .find(|r| r.path.contains(":"))
        .expect("a generate call");
    serde_json::from_slice(&r.body).unwrap()
}

/// The `(event, data)` pairs of a Responses stream.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|x| panic!("{x}: {d}"));
                }
            }
            (name, data)
        })
        .collect()
}

/// Check a Responses event sequence is well-formed; the terminal event.
pub fn check_sequence(evs: &[(String, Value)]) -> Value {
    assert!(evs.len() >= 3, "{evs:?}");
    assert_eq!(evs[0].0, "response.created");
    assert_eq!(evs[1].0, "response.in_progress");
    let mut open_items: Vec<u64> = Vec::new();
    let mut open_parts: Vec<(String, u64)> = Vec::new();
    let mut next_index = 0;
    for (i, (name, data)) in evs.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "event line and type agree");
        assert_eq!(data["sequence_number"], i as u64, "{name}");
        match name.as_str() {
            "response.output_item.added" => {
                let idx = data["output_index"].as_u64().unwrap();
                assert_eq!(idx, next_index, "output indexes increase by one");
                next_index += 1;
                open_items.push(idx);
                assert!(data["item"]["id"].is_string());
            }
            "response.output_item.done" => {
                let idx = data["output_index"].as_u64().unwrap();
                assert_eq!(open_items.pop(), Some(idx), "done closes the open item");
            }
            "response.content_part.added" | "response.reasoning_summary_part.added" => {
                open_parts.push((
                    data["item_id"].as_str().unwrap().into(),
                    data["output_index"].as_u64().unwrap(),
                ));
            }
            "response.content_part.done" | "response.reasoning_summary_part.done" => {
                let p = open_parts.pop().expect("a part was open");
                assert_eq!(p.0, data["item_id"].as_str().unwrap());
            }
            "response.output_text.delta" => {
                assert_eq!(data["logprobs"], json!([]));
                assert!(open_parts.last().is_some());
            }
            _ => {}
        }
    }
    assert!(
        open_items.is_empty() && open_parts.is_empty(),
        "everything closed"
    );
    let (last, data) = evs.last().unwrap();
    assert!(
        [
            "response.completed",
            "response.incomplete",
            "response.failed"
        ]
        .contains(&last.as_str()),
        "{last}"
    );
    data["response"].clone()
}

#[tokio::test]
async fn plain_answer_is_a_response_object() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "instructions": "Be brief.", "input": "hello there",
            "metadata": {"k": "v"}, "temperature": 0.5}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert_eq!(v["metadata"], json!({"k": "v"}));
    let msg = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "message")
        .unwrap();
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(msg["content"][0]["type"], "output_text");
    assert_eq!(msg["content"][0]["annotations"], json!([]));
    assert!(!v["output_text"].as_str().unwrap().is_empty());
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["output_tokens_details"]["reasoning_tokens"].is_u64());
    // The Gemini body: instructions as the system instruction, sampling passed on.
    let sent = last_body(&gw);
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["generationConfig"]["temperature"], 0.5);
    // Also under /hf.
    let hf = post_json(
        &gw,
        "/hf/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "x"}),
    )
    .await;
    assert_eq!(hf.status, StatusCode::OK, "{}", hf.text());
}

#[tokio::test]
async fn max_tokens_is_incomplete() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "hi [[finish=MAX_TOKENS]]", "max_output_tokens": 5}),
    )
    .await;
    let v = r.json();
    assert_eq!(v["status"], "incomplete", "{v}");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(last_body(&gw)["generationConfig"]["maxOutputTokens"], 5);
}

#[tokio::test]
async fn stream_event_sequence_is_well_formed() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "go [[events=4]]", "stream": true,
            "reasoning": {"summary": "auto"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let evs = events(&r.text());
    let done = check_sequence(&evs);
    assert_eq!(evs.last().unwrap().0, "response.completed");
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    for n in [
        "response.reasoning_summary_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert!(deltas >= 2, "streamed as it arrives: {deltas}");
    assert_eq!(done["output"][0]["type"], "reasoning");
    assert_eq!(done["output"][1]["type"], "message");
}

#[tokio::test]
async fn function_tool_round_trip_with_signatures() {
    let gw = start(&[]).await;
    let tools = json!([{"type": "function", "name": "get_weather", "strict": true,
        "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}}]);
    let first = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-3-pro-preview", "input": "Weather in Oslo?", "tools": tools,
            "tool_choice": "required", "store": false, "include": ["reasoning.encrypted_content"]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let v = first.json();
    let out = v["output"].as_array().unwrap().clone();
    let call = out.iter().find(|i| i["type"] == "function_call").unwrap();
    assert_eq!(call["name"], "get_weather");
    assert!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).is_ok());
    let rs = out.iter().find(|i| i["type"] == "reasoning").unwrap();
    assert!(
        rs["encrypted_content"]
            .as_str()
            .unwrap()
            .starts_with("gmn1.")
    );
    // The tool's result, with the whole history sent back (store: false).
    let mut input = vec![json!({"role": "user", "content": "Weather in Oslo?"})];
    input.extend(out.iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "{\"tempC\":4}"}));
    let second = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-3-pro-preview", "input": input, "tools": tools, "store": false}),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert!(
        second.json()["output_text"]
            .as_str()
            .unwrap()
            .contains("tempC")
    );
    // The signature went back on the replayed call (the fake refuses Gemini 3 calls without it).
    let sent = last_body(&gw);
    let model_turn = sent["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "model")
        .unwrap();
    assert_eq!(
        model_turn["parts"][0]["thoughtSignature"],
        rs["encrypted_content"]
            .as_str()
            .unwrap()
            .trim_start_matches("gmn1.")
    );
}

#[tokio::test]
async fn streamed_function_call_events() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "call it", "stream": true, "store": false,
            "tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "ping",
                "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}]},
                {"type": "web_search"}],
            "tool_choice": {"type": "function", "name": "ping"}}),
    )
    .await;
    let evs = events(&r.text());
    let done = check_sequence(&evs);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"response.function_call_arguments.delta"));
    let fin = evs
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(fin.1["name"], "ping");
    assert!(
        done["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["type"] == "function_call")
    );
    // The namespace was flattened; web_search was dropped beside functions on 2.5.
    let sent = last_body(&gw);
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{tools:?}");
    assert_eq!(tools[0]["functionDeclarations"][0]["name"], "ping");
}

#[tokio::test]
async fn web_search_alone_is_google_search() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "news", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let sent = last_body(&gw);
    assert!(sent["tools"][0]["googleSearch"].is_object(), "{sent}");
}

#[tokio::test]
async fn json_schema_format() {
    let gw = start(&[]).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": false});
    let r = post_json(&gw, "/v1/responses", &json!({"model": "gemini-2.5-flash", "input": "a person",
        "text": {"format": {"type": "json_schema", "name": "Person", "schema": schema, "strict": true}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let parsed: Value = serde_json::from_str(r.json()["output_text"].as_str().unwrap()).unwrap();
    assert!(
        parsed["name"].is_string() && parsed["age"].is_i64(),
        "{parsed}"
    );
    let sent = last_body(&gw);
    assert_eq!(
        sent["generationConfig"]["responseMimeType"],
        "application/json"
    );
}

#[tokio::test]
async fn reasoning_summary_and_effort() {
    let gw = start(&[("SHOW_THINKING_PROCESS", "false")]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "think",
        "reasoning": {"effort": "low", "summary": "auto"}}),
    )
    .await;
    let v = r.json();
    let rs = &v["output"][0];
    assert_eq!(rs["type"], "reasoning", "{v}");
    assert_eq!(rs["summary"][0]["type"], "summary_text");
    assert!(!rs["summary"][0]["text"].as_str().unwrap().is_empty());
    let tc = &last_body(&gw)["generationConfig"]["thinkingConfig"];
    assert_eq!(tc["thinkingBudget"], 1024);
    assert_eq!(tc["includeThoughts"], true);
    // Without a summary asked for, no thought text comes back.
    let plain = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "x"}),
    )
    .await;
    assert!(
        plain.json()["output"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["type"] != "reasoning")
    );
}

#[tokio::test]
async fn previous_response_id_and_stored_items() {
    let gw = start(&[("ALLOWED_TOKENS", &two_tokens())]).await;
    let first = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "my name is Ada"}),
    )
    .await;
    let v1 = first.json();
    let id = v1["id"].as_str().unwrap().to_string();
    let second = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash",
        "previous_response_id": id, "input": "what is my name?"}),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.json()["previous_response_id"], id.as_str());
    let sent = last_body(&gw);
    let contents = sent["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{contents:?}");
    assert_eq!(contents[0]["parts"][0]["text"], "my name is Ada");
    assert_eq!(contents[1]["role"], "model");
    // item_reference resolves from the stored output.
    let msg_id = v1["output"][0]["id"].as_str().unwrap();
    let third = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": [
        {"role": "user", "content": "my name is Ada"}, {"type": "item_reference", "id": msg_id},
        {"role": "user", "content": "again?"}]}),
    )
    .await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text());
    assert_eq!(last_body(&gw)["contents"][1]["role"], "model");
    // GET, another token's 404, DELETE.
    let got = get(&gw, &format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["id"], id.as_str());
    let auth = format!("Bearer {OTHER}");
    let theirs = send(
        Method::GET,
        &gw.url(&format!("/v1/responses/{id}")),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.json()["error"]["type"], "invalid_request_error");
    let cont = post_as(
        &gw,
        OTHER,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash",
        "previous_response_id": id, "input": "hi"}),
    )
    .await;
    assert_eq!(cont.status, StatusCode::NOT_FOUND);
    assert_eq!(cont.json()["error"]["param"], "previous_response_id");
    let other_ref = post_as(
        &gw,
        OTHER,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash",
        "input": [{"type": "item_reference", "id": msg_id}]}),
    )
    .await;
    assert_eq!(other_ref.status, StatusCode::BAD_REQUEST);
    let del = send(
        Method::DELETE,
        &gw.url(&format!("/v1/responses/{id}")),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(del.json()["deleted"], true);
    assert_eq!(
        get(&gw, &format!("/v1/responses/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn store_false_is_not_kept_and_unknown_is_404() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "x", "store": false}),
    )
    .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&gw, &format!("/v1/responses/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let cont = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash",
        "previous_response_id": "resp_nope", "input": "hi"}),
    )
    .await;
    assert_eq!(cont.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn streamed_response_is_stored() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "x", "stream": true}),
    )
    .await;
    let evs = events(&r.text());
    let done = check_sequence(&evs);
    let id = done["id"].as_str().unwrap();
    let got = get(&gw, &format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["output"], done["output"]);
}

#[tokio::test]
async fn unknown_and_ignored_fields_are_accepted() {
    let gw = start(&[]).await;
    let r = post_json(&gw, "/v1/responses", &json!({"model": "gemini-2.5-flash",
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be terse."}]},
                  {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k", "client_metadata": {"a": 1},
        "safety_identifier": "s", "user": "u", "service_tier": "auto", "truncation": "auto",
        "parallel_tool_calls": false, "some_future_field": {"x": 1}, "background": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let sent = last_body(&gw);
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be terse.");
}

#[tokio::test]
async fn unhonourable_fields_are_400s_naming_them() {
    let gw = start(&[]).await;
    for (field, value) in [
        ("background", json!(true)),
        ("prompt", json!({"id": "pmpt_1"})),
    ] {
        let mut body = json!({"model": "gemini-2.5-flash", "input": "x"});
        body[field] = value;
        let r = post_json(&gw, "/v1/responses", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(r.json()["error"]["param"], field);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    // A bad part names the Responses field, not the chat one.
    let r = post_json(&gw, "/v1/responses", &json!({"model": "gemini-2.5-flash",
        "input": [{"role": "user", "content": "hi"}, {"role": "user", "content": [{"type": "input_image", "image_url": "notaurl"}]}]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        r.json()["error"]["param"]
            .as_str()
            .unwrap()
            .starts_with("input[1]"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn upstream_errors_are_openai_errors() {
    let gw = start(&[("MAX_RETRIES", "0")]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "x [[status=400]]"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"]["message"].is_string());
}

// ---------------------------------------------------------------------------
// Properties

use proptest::prelude::*;

/// One input item of a well-typed request.
fn item() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z ]{0,12}".prop_map(|t| json!({"role": "user", "content": t})),
        "[a-z ]{1,12}".prop_map(|t| json!({"type": "message", "role": "developer",
            "content": [{"type": "input_text", "text": t}]})),
        "[a-z ]{1,12}".prop_map(|t| json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": t, "annotations": []}]})),
        Just(
            json!({"role": "user", "content": [{"type": "input_image", "detail": "auto",
            "image_url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}]})
        ),
        Just(
            json!({"role": "user", "content": [{"type": "input_file", "filename": "a.pdf",
            "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}]})
        ),
        "[a-z0-9]{0,8}".prop_map(|s| json!({"type": "reasoning", "id": "rs_x", "summary": [],
            "encrypted_content": format!("gmn1.{s}")})),
        Just(json!({"type": "web_search_call", "id": "ws_1", "status": "completed"})),
    ]
}

/// A call and its output, or nothing.
fn call_pair(n: usize) -> Vec<Value> {
    let id = format!("call_{n}");
    vec![
        json!({"type": "function_call", "call_id": id, "name": "ping", "arguments": "{\"n\":1}"}),
        json!({"type": "function_call_output", "call_id": id, "output": "pong"}),
    ]
}

fn request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview", "gemini-2.0-flash"]),
        prop::collection::vec(item(), 0..5),
        any::<bool>(),
        prop::sample::select(vec![0usize, 1, 2, 3]),
        prop::sample::select(vec![0usize, 1, 2, 3]),
        prop::sample::select(vec![0usize, 1, 2, 3]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(model, mut items, calls, tools, choice, format, stream, extra)| {
            if calls {
                items.extend(call_pair(items.len()));
            }
            items.push(json!({"role": "user", "content": "go"}));
            let ping = json!({"type": "function", "name": "ping", "strict": false,
                "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
                    "additionalProperties": false}});
            let mut req = json!({"model": model, "input": items, "stream": stream});
            req["tools"] = match tools {
                0 => json!([ping]),
                1 => json!([{"type": "namespace", "name": "n", "tools": [ping]}, {"type": "web_search"}]),
                2 => json!([ping, {"type": "local_shell"}]),
                _ => json!([{"type": "web_search_preview"}]),
            };
            if tools != 3 {
                req["tool_choice"] = [json!("auto"), json!("none"), json!("required"),
                    json!({"type": "function", "name": "ping"})][choice].clone();
            }
            match format {
                1 => req["text"] = json!({"format": {"type": "json_object"}}),
                2 => req["text"] = json!({"format": {"type": "json_schema", "name": "x", "strict": true,
                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                        "additionalProperties": false}}}),
                3 => req["reasoning"] = json!({"effort": "medium", "summary": "detailed"}),
                _ => {}
            }
            if extra {
                req["some_new_field"] = json!({"x": [1, 2]});
                req["include"] = json!(["reasoning.encrypted_content"]);
            }
            req
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every request the gateway accepts becomes a Gemini body the fake
    /// accepts (its checks: contents, function turns, signatures), and a
    /// stream's events are well-formed.
    #[test]
    fn accepted_requests_reach_gemini_well_formed(req in request()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let gw = start(&[]).await;
            let r = post_json(&gw, "/v1/responses", &req).await;
            assert_eq!(r.status, StatusCode::OK, "{req}\n{}", r.text());
            if req["stream"] == true {
                let done = check_sequence(&events(&r.text()));
                assert_ne!(done["status"], "failed", "{done}");
            } else {
                assert!(r.json()["id"].as_str().unwrap().starts_with("resp_"));
            }
            gw.shutdown().await;
        });
    }

    /// The pure translation never panics, whatever JSON comes in.
    #[test]
    fn translation_never_panics(v in arbitrary_json()) {
        let opts = gemini_balance::openai::Options::default();
        let items = v.get("input").and_then(Value::as_array).cloned().unwrap_or_default();
        let _ = gemini_balance::responses::translate(&v, &items, &opts);
    }
}

/// JSON shaped like a Responses request, with random members.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "user",
            "assistant",
            "developer",
            "function_call",
            "message",
            "function",
            "namespace",
            "web_search",
            "json_schema",
            "input_text",
            "input_image",
            "reasoning",
            "gemini-2.5-flash",
            "gmn1.x",
            "data:image/png;base64,AAAA"
        ])
        .prop_map(Value::from),
    ];
    let keys = prop::sample::select(vec![
        "model",
        "input",
        "type",
        "role",
        "content",
        "text",
        "tools",
        "tool_choice",
        "name",
        "parameters",
        "call_id",
        "arguments",
        "output",
        "format",
        "schema",
        "reasoning",
        "effort",
        "summary",
        "image_url",
        "file_data",
        "instructions",
        "encrypted_content",
    ]);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// Two function tools; `[[calls=2]]` makes the fake call both in one turn.
fn two_tools_response(stream: bool, parallel: Option<bool>) -> Value {
    let f = |name: &str| {
        json!({"type": "function", "name": name,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}})
    };
    let mut b = json!({"model": "gemini-2.5-flash", "input": "both please [[calls=2]]",
        "tools": [f("first_tool"), f("second_tool")], "stream": stream, "store": false});
    if let Some(p) = parallel {
        b["parallel_tool_calls"] = json!(p);
    }
    b
}

/// The finished response of a whole or streamed answer.
fn final_response(r: &Answer, stream: bool) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    if stream {
        check_sequence(&events(&r.text()))
    } else {
        r.json()
    }
}

fn call_names(resp: &Value) -> Vec<String> {
    resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call")
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn parallel_tool_calls_false_keeps_the_first_call() {
    let gw = start(&[]).await;
    for stream in [false, true] {
        for parallel in [None, Some(true)] {
            let r = post_json(&gw, "/v1/responses", &two_tools_response(stream, parallel)).await;
            let resp = final_response(&r, stream);
            assert_eq!(call_names(&resp).len(), 2, "{stream} {parallel:?}: {resp}");
        }
        let r = post_json(
            &gw,
            "/v1/responses",
            &two_tools_response(stream, Some(false)),
        )
        .await;
        let resp = final_response(&r, stream);
        assert_eq!(call_names(&resp), ["first_tool"], "{stream}: {resp}");
        assert_eq!(resp["parallel_tool_calls"], false);
        assert_eq!(resp["status"], "completed");
        if stream {
            let evs = events(&r.text());
            let args_done = evs
                .iter()
                .filter(|(n, _)| n == "response.function_call_arguments.done")
                .count();
            assert_eq!(args_done, 1);
        }
    }
    // The one call answered: Gemini (the fake) accepts the turn.
    let first = post_json(
        &gw,
        "/v1/responses",
        &two_tools_response(false, Some(false)),
    )
    .await;
    let out = first.json()["output"].as_array().unwrap().clone();
    let call = out.iter().find(|i| i["type"] == "function_call").unwrap();
    let mut input = vec![json!({"role": "user", "content": "both please"})];
    input.extend(out.iter().cloned());
    input.push(
        json!({"type": "function_call_output", "call_id": call["call_id"], "output": "done"}),
    );
    let mut next = two_tools_response(false, Some(false));
    next["input"] = json!(input);
    let r = post_json(&gw, "/v1/responses", &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.json()["output_text"]
            .as_str()
            .unwrap()
            .contains("first_tool returned")
    );
    let mut bad = two_tools_response(false, None);
    bad["parallel_tool_calls"] = json!("no");
    let r = post_json(&gw, "/v1/responses", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["param"], "parallel_tool_calls");
}
