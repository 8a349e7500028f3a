//! The core gateway against the fake Gemini: auth, both mounts, models, chat
//! (plain and streamed), embeddings, CORS, error answers, key spread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn chat_body(text: &str) -> Value {
    json!({"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})
}

#[tokio::test]
async fn auth_none_wrong_right() {
    let gw = start(&[]).await;
    let body = serde_json::to_vec(&chat_body("hi")).unwrap();
    let none = send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        body.clone(),
    )
    .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"]["code"], "invalid_api_key");
    assert!(none.json()["error"]["message"].is_string());
    let wrong = send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[
            ("authorization", "Bearer sk-wrong"),
            ("content-type", "application/json"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.text().contains("sk-wrong"));
    let right = post_json(&gw, "/v1/chat/completions", &chat_body("hi")).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text());
    assert_eq!(
        gw.state().requests().len(),
        1,
        "only the authorized call reached upstream"
    );
    // /health and / need no token.
    let h = send(Method::GET, &gw.url("/health"), &[], Bytes::new()).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["keys"]["total"], 3);
    assert!(!h.text().contains("key-a-0000000001"));
    for m in [Method::GET, Method::HEAD] {
        let r = send(m, &gw.url("/"), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    gw.shutdown().await;
}

/// Every authenticated OpenAI-format route answers a missing token the same
/// way, Gemini's own OpenAI endpoint (`/openai/v1`) included: 401, OpenAI's
/// error object, `WWW-Authenticate: Bearer`, and nothing sent upstream.
#[tokio::test]
async fn every_openai_route_asks_for_a_bearer_token() {
    let gw = start(&[]).await;
    for (method, path) in [
        (Method::POST, "/v1/chat/completions"),
        (Method::POST, "/v1/embeddings"),
        (Method::GET, "/v1/models"),
        (Method::GET, "/openai/v1/models"),
        (Method::POST, "/openai/v1/chat/completions"),
        (Method::POST, "/hf/openai/v1/chat/completions"),
    ] {
        let r = send(method, &gw.url(path), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.text());
        assert_eq!(r.headers["www-authenticate"], "Bearer", "{path}");
        assert_eq!(r.json()["error"]["code"], "invalid_api_key", "{path}");
    }
    assert!(gw.state().requests().is_empty(), "nothing went upstream");
    gw.shutdown().await;
}

#[tokio::test]
async fn chat_plain_at_both_mounts() {
    let gw = start(&[]).await;
    for prefix in ["", "/hf"] {
        let r = post_json(
            &gw,
            &format!("{prefix}/v1/chat/completions"),
            &chat_body("Hello there"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gemini-2.5-flash");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: Hello there");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
        assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    }
    // What reached upstream: the mapped Gemini request, key in the header, not the URL.
    let reqs = gw.state().requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert!(last.query.as_deref().unwrap_or("").find("key=").is_none());
    assert!(last.api_key.as_deref().unwrap().starts_with("key-"));
    let sent: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["contents"][0]["role"], "user");
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "Hello there");
    gw.shutdown().await;
}

#[tokio::test]
async fn sampling_fields_map_to_generation_config() {
    let gw = start(&[]).await;
    let body = json!({"model": "models/gemini-2.5-flash", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "stop": "END", "n": 2});
    let r = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json()["choices"].as_array().unwrap().len(),
        2,
        "n=2 gives two choices"
    );
    assert_eq!(
        r.json()["model"],
        "gemini-2.5-flash",
        "models/ prefix accepted"
    );
    let sent: Value = serde_json::from_slice(&gw.state().requests().last().unwrap().body).unwrap();
    let g = &sent["generationConfig"];
    assert_eq!(g["temperature"], 0.3);
    assert_eq!(g["topP"], 0.9);
    assert_eq!(g["maxOutputTokens"], 50);
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(g["candidateCount"], 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn chat_streamed() {
    let gw = start(&[]).await;
    let mut body = chat_body("one two three four five six seven");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post_json(&gw, "/hf/v1/chat/completions", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let events = sse_events(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.len() >= 4, "several chunks: {chunks:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
        })
        .collect();
    assert_eq!(text, "Echo: one two three four five six seven");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter(|c| !c["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
    }
    let last = gw.state().requests().pop().unwrap();
    assert_eq!(
        last.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(last.query.as_deref(), Some("alt=sse"));
    gw.shutdown().await;
}

#[tokio::test]
async fn models_list_walks_every_page() {
    let gw = start(&[("SEARCH_MODELS", r#"["gemini-2.5-flash"]"#)]).await;
    for prefix in ["", "/hf"] {
        let r = get(&gw, &format!("{prefix}/v1/models")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&"gemini-2.5-flash"));
        assert!(
            ids.contains(&"gemini-embedding-001"),
            "models from the last page too: {ids:?}"
        );
        assert!(ids.contains(&"gemini-2.5-flash-search"));
        assert!(ids.iter().all(|i| !i.starts_with("models/")));
        assert_eq!(v["data"][0]["object"], "model");
        assert_eq!(v["data"][0]["owned_by"], "google");
    }
    let one = get(&gw, "/v1/models/gemini-2.5-pro").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["id"], "gemini-2.5-pro");
    let missing = get(&gw, "/v1/models/nope-model").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
    gw.shutdown().await;
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let gw = start(&[]).await;
    let r = post_json(
        &gw,
        "/v1/embeddings",
        &json!({"model": "gemini-embedding-001", "input": ["alpha", "beta"], "dimensions": 8}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let sent: Value = serde_json::from_slice(&gw.state().requests().last().unwrap().body).unwrap();
    assert_eq!(sent["requests"][0]["outputDimensionality"], 8);
    assert_eq!(sent["requests"][0]["model"], "models/gemini-embedding-001");
    let b = post_json(&gw, "/v1/embeddings", &json!({"model": "gemini-embedding-001", "input": "alpha", "dimensions": 8, "encoding_format": "base64"})).await;
    let s = b.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    assert_eq!(raw.len(), 8 * 4, "8 little-endian f32 values");
    gw.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let gw = start(&[]).await;
    let r = send(
        Method::OPTIONS,
        &gw.url("/hf/v1/chat/completions"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type, x-custom",
            ),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert!(
        r.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        r.headers["access-control-allow-headers"],
        "authorization, content-type, x-custom"
    );
    let g = get(&gw, "/v1/models").await;
    assert_eq!(g.headers["access-control-allow-origin"], "*");
    gw.shutdown().await;

    let gw = start(&[("CORS_ORIGINS", r#"["https://ok.example"]"#)]).await;
    let ok = send(
        Method::GET,
        &gw.url("/health"),
        &[("origin", "https://ok.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "https://ok.example"
    );
    let no = send(
        Method::GET,
        &gw.url("/health"),
        &[("origin", "https://evil.example")],
        Bytes::new(),
    )
    .await;
    assert!(no.headers.get("access-control-allow-origin").is_none());
    gw.shutdown().await;
}

#[tokio::test]
async fn error_answers_are_openai_objects() {
    let gw = start(&[("MAX_BODY_BYTES", "1000")]).await;
    let nf = get(&gw, "/v1/nothing-here").await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert!(nf.json()["error"]["message"].is_string());
    assert!(nf.json()["error"].get("type").is_some());
    let m = get(&gw, "/v1/chat/completions").await;
    assert_eq!(m.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(m.headers["allow"], "POST");
    let big = post_json(&gw, "/v1/chat/completions", &chat_body(&"x".repeat(2000))).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(big.json()["error"]["type"], "invalid_request_error");
    let bad = send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "{not json",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let missing = post_json(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash"}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"]["param"], "messages");
    let wrong_type = post_json(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": "hi"}),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.json()["error"]["param"], "messages");
    assert!(
        gw.state().requests().is_empty(),
        "nothing invalid reached upstream"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_keep_their_status_and_message() {
    let gw = start(&[]).await;
    // The fake answers `[[status=404]]` with Google's NOT_FOUND body.
    let r = post_json(&gw, "/v1/chat/completions", &chat_body("[[status=404]]")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]["message"].as_str().unwrap().len() > 5);
    let r = post_json(&gw, "/v1/chat/completions", &json!({"model": "gemini-9-ultra-unknown-zz", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = post_json(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "a/../b", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    gw.shutdown().await;
}

#[tokio::test]
async fn round_robin_spreads_over_three_keys() {
    let gw = start(&[]).await;
    for i in 0..30 {
        let r = post_json(&gw, "/v1/chat/completions", &chat_body(&format!("n{i}"))).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    for k in ["key-a-0000000001", "key-b-0000000002", "key-c-0000000003"] {
        assert_eq!(gw.state().count_for_key(k), 10, "{k}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn one_failure_is_retried_on_the_next_key() {
    let gw = start(&[
        ("API_KEYS", r#"["overload-key-0001","good-key-000002"]"#),
        ("KEY_SELECTION", "round_robin"),
    ])
    .await;
    for _ in 0..4 {
        let r = post_json(&gw, "/v1/chat/completions", &chat_body("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(gw.state().count_for_key("good-key-000002"), 4);
    gw.shutdown().await;
}

/// `GET /models/{id}` answers like `/v1/models/{id}` (as `/models` answers
/// like `/v1/models`), on both mounts, and still needs the token.
#[tokio::test]
async fn one_model_without_the_v1_prefix() {
    let gw = start(&[]).await;
    for prefix in ["", "/hf"] {
        let one = get(&gw, &format!("{prefix}/models/gemini-2.5-pro")).await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.text());
        assert_eq!(one.json()["id"], "gemini-2.5-pro");
        assert_eq!(one.json()["object"], "model");
    }
    let missing = get(&gw, "/models/nope-model").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
    let anonymous = send(
        Method::GET,
        &gw.url("/models/gemini-2.5-pro"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}

/// Token arrays (what LangChain's `OpenAIEmbeddings` sends by default) stay
/// a 400, and the message says how to send text instead.
#[tokio::test]
async fn token_array_embeddings_say_how_to_send_strings() {
    let gw = start(&[]).await;
    for input in [json!([[1, 2, 3]]), json!([1, 2, 3])] {
        let r = post_json(
            &gw,
            "/v1/embeddings",
            &json!({"model": "gemini-embedding-001", "input": input}),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["param"], "input");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("token arrays are not supported"),
            "{message}"
        );
        assert!(message.contains("array of strings"), "{message}");
        assert!(
            message.contains("check_embedding_ctx_length=False"),
            "{message}"
        );
    }
    assert!(gw.state().requests().is_empty(), "nothing went upstream");
    gw.shutdown().await;
}

/// Two function tools; `[[calls=2]]` makes the fake call both in one turn.
fn two_tools_chat(stream: bool, parallel: Option<bool>) -> Value {
    let f = |name: &str| {
        json!({"type": "function", "function": {"name": name,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
    };
    let mut b = chat_body("both please [[calls=2]]");
    b["tools"] = json!([f("first_tool"), f("second_tool")]);
    b["stream"] = json!(stream);
    if let Some(p) = parallel {
        b["parallel_tool_calls"] = json!(p);
    }
    b
}

/// The tool calls of a chat answer, whole or streamed: `(index, name)`.
fn chat_calls(r: &Answer, stream: bool) -> (Vec<(u64, String)>, Value) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    if !stream {
        let v = r.json();
        let calls = v["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u64, c["function"]["name"].as_str().unwrap().into()))
            .collect();
        return (calls, v["choices"][0]["finish_reason"].clone());
    }
    let events = sse_events(&r.text());
    let mut calls = Vec::new();
    let mut finish = Value::Null;
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let c: Value = serde_json::from_str(e).unwrap();
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(name) = tc["function"]["name"].as_str() {
                calls.push((tc["index"].as_u64().unwrap(), name.to_string()));
            }
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    (calls, finish)
}

#[tokio::test]
async fn parallel_tool_calls_false_keeps_the_first_call() {
    let gw = start(&[]).await;
    for stream in [false, true] {
        for parallel in [None, Some(true)] {
            let r = post_json(
                &gw,
                "/v1/chat/completions",
                &two_tools_chat(stream, parallel),
            )
            .await;
            let (calls, finish) = chat_calls(&r, stream);
            assert_eq!(calls.len(), 2, "{stream} {parallel:?}: {calls:?}");
            assert_eq!(finish, "tool_calls");
        }
        let r = post_json(
            &gw,
            "/v1/chat/completions",
            &two_tools_chat(stream, Some(false)),
        )
        .await;
        let (calls, finish) = chat_calls(&r, stream);
        assert_eq!(calls, vec![(0, "first_tool".to_string())], "{stream}");
        assert_eq!(finish, "tool_calls");
    }
    let mut bad = two_tools_chat(false, None);
    bad["parallel_tool_calls"] = json!("no");
    let r = post_json(&gw, "/v1/chat/completions", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["param"], "parallel_tool_calls");
    gw.shutdown().await;
}
