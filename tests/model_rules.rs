//! Model rules (issue 16): `MODEL_ALIASES` on every route (the fake sees the
//! Gemini name, the answer shows the client's), aliases listed in
//! `/v1/models`; `FILTERED_MODELS` hidden from every model list and refused
//! with 404 in the route's format; `CUSTOM_HEADERS` on every upstream call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const ALIASES: (&str, &str) = (
    "MODEL_ALIASES",
    r#"{"gpt-4o":"gemini-2.5-flash","my-embed":"gemini-embedding-001","team-*":"gemini-2.5-pro"}"#,
);

/// The path of the fake's last recorded request whose path contains `part`.
fn last_path(gw: &Gw, part: &str) -> String {
    gw.state()
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.contains(part))
        .map(|r| r.path)
        .unwrap_or_else(|| panic!("no upstream request with {part}"))
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// A native call with the token in `x-goog-api-key`.
async fn native(gw: &Gw, method: Method, path: &str, body: &Value) -> Answer {
    let bytes = if method == Method::GET {
        Bytes::new()
    } else {
        Bytes::from(serde_json::to_vec(body).unwrap())
    };
    send(
        method,
        &gw.url(path),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        bytes,
    )
    .await
}

async fn post_msg(gw: &Gw, body: &Value) -> Answer {
    send(
        Method::POST,
        &gw.url("/v1/messages"),
        &[
            ("x-api-key", TOKEN),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

#[tokio::test]
async fn aliases_on_the_chat_route_whole_and_streamed() {
    let gw = start(&[ALIASES]).await;
    let r = post_json(&gw, "/v1/chat/completions", &chat("gpt-4o")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(last_path(&gw, ":generateContent").contains("/models/gemini-2.5-flash:"));
    assert_eq!(r.json()["model"], "gpt-4o");
    // A `*` pattern, streamed.
    let mut b = chat("team-large");
    b["stream"] = json!(true);
    let r = post_json(&gw, "/v1/chat/completions", &b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(last_path(&gw, ":streamGenerateContent").contains("/models/gemini-2.5-pro:"));
    let first: Value = serde_json::from_str(&sse_events(&r.text())[0]).unwrap();
    assert_eq!(first["model"], "team-large");
    gw.shutdown().await;
}

#[tokio::test]
async fn aliases_on_the_embeddings_route() {
    let gw = start(&[ALIASES]).await;
    let r = post_json(
        &gw,
        "/v1/embeddings",
        &json!({"model": "my-embed", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        last_path(&gw, ":batchEmbedContents").contains("/models/gemini-embedding-001:"),
        "{}",
        last_path(&gw, ":batchEmbedContents")
    );
    let sent = gw.state().requests().pop().unwrap();
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["requests"][0]["model"], "models/gemini-embedding-001");
    assert_eq!(r.json()["model"], "my-embed");
    gw.shutdown().await;
}

#[tokio::test]
async fn aliases_on_the_native_routes() {
    let gw = start(&[ALIASES]).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    for (path, part) in [
        ("/v1beta/models/gpt-4o:generateContent", ":generateContent"),
        (
            "/gemini/v1beta/models/team-x:streamGenerateContent?alt=sse",
            ":streamGenerateContent",
        ),
        ("/v1beta/models/gpt-4o:countTokens", ":countTokens"),
    ] {
        let r = native(&gw, Method::POST, path, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let seen = last_path(&gw, part);
        let want = if path.contains("team-x") {
            "/models/gemini-2.5-pro:"
        } else {
            "/models/gemini-2.5-flash:"
        };
        assert!(seen.contains(want), "{path} → {seen}");
    }
    let r = native(&gw, Method::GET, "/v1beta/models/gpt-4o", &Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(last_path(&gw, "/models/").ends_with("/models/gemini-2.5-flash"));
    gw.shutdown().await;
}

#[tokio::test]
async fn aliases_on_the_responses_and_messages_routes() {
    let gw = start(&[ALIASES]).await;
    let r = post_json(
        &gw,
        "/v1/responses",
        &json!({"model": "gpt-4o", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(last_path(&gw, ":generateContent").contains("/models/gemini-2.5-flash:"));
    assert_eq!(r.json()["model"], "gpt-4o");
    let r = post_msg(
        &gw,
        &json!({"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(last_path(&gw, ":generateContent").contains("/models/gemini-2.5-flash:"));
    assert_eq!(r.json()["model"], "gpt-4o");
    gw.shutdown().await;
}

#[tokio::test]
async fn aliases_on_gemini_s_own_openai_layer() {
    let gw = start(&[ALIASES]).await;
    let r = post_json(&gw, "/openai/v1/chat/completions", &chat("gpt-4o")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let sent = gw.state().requests().pop().unwrap();
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "gemini-2.5-flash");
    gw.shutdown().await;
}

#[tokio::test]
async fn exact_aliases_are_listed_in_v1_models() {
    let gw = start(&[ALIASES]).await;
    let r = get(&gw, "/v1/models").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"gpt-4o"), "{ids:?}");
    assert!(ids.contains(&"my-embed"), "{ids:?}");
    assert!(ids.contains(&"gemini-2.5-flash"), "{ids:?}");
    assert!(!ids.iter().any(|i| i.contains('*')), "{ids:?}");
    let r = get(&gw, "/v1/models/gpt-4o").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], "gpt-4o");
    gw.shutdown().await;
}
