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

const FILTERED: (&str, &str) = ("FILTERED_MODELS", r#"["gemini-2.0-*","gemini-2.5-pro"]"#);

#[tokio::test]
async fn filtered_models_are_hidden_from_every_list() {
    let gw = start(&[
        FILTERED,
        (
            "MODEL_ALIASES",
            r#"{"gpt-4o":"gemini-2.5-pro","mini":"gemini-2.5-flash"}"#,
        ),
    ])
    .await;
    let v = get(&gw, "/v1/models").await.json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"gemini-2.5-flash") && ids.contains(&"mini"),
        "{ids:?}"
    );
    for hidden in ["gemini-2.0-flash", "gemini-2.5-pro", "gpt-4o"] {
        assert!(!ids.contains(&hidden), "{hidden} listed: {ids:?}");
    }
    let r = native(&gw, Method::GET, "/v1beta/models", &Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names: Vec<String> = r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.contains(&"models/gemini-2.5-flash".to_string()),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("gemini-2.0-") || n == "models/gemini-2.5-pro"),
        "{names:?}"
    );
    // Gemini's own OpenAI layer.
    let r = get(&gw, "/openai/v1/models").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        ids.iter().any(|i| i.ends_with("gemini-2.5-flash")),
        "{ids:?}"
    );
    assert!(
        !ids.iter()
            .any(|i| i.contains("gemini-2.0-") || i.ends_with("/gemini-2.5-pro")),
        "{ids:?}"
    );
    let r = get(&gw, "/openai/v1/models/gemini-2.0-flash").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    gw.shutdown().await;
}

#[tokio::test]
async fn filtered_models_are_refused_with_404_in_each_route_s_format() {
    let gw = start(&[
        FILTERED,
        ("MODEL_ALIASES", r#"{"gpt-4o":"gemini-2.5-pro"}"#),
    ])
    .await;
    // OpenAI routes: OpenAI's error object; the alias's target counts too.
    for (path, body) in [
        ("/v1/chat/completions", chat("gemini-2.0-flash")),
        ("/v1/chat/completions", chat("gpt-4o")),
        ("/v1/chat/completions", chat("models/gemini-2.5-pro")),
        (
            "/v1/embeddings",
            json!({"model": "gemini-2.0-embed", "input": "a"}),
        ),
        (
            "/v1/responses",
            json!({"model": "gemini-2.5-pro", "input": "hi"}),
        ),
        ("/openai/v1/chat/completions", chat("gemini-2.0-flash")),
    ] {
        let r = post_json(&gw, path, &body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{path} {body}: {}",
            r.text()
        );
        assert_eq!(r.json()["error"]["code"], "model_not_found", "{path}");
    }
    // Native: Google's error shape.
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    for path in [
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1beta/models/gpt-4o:streamGenerateContent?alt=sse",
        "/v1beta/models/gemini-2.5-pro",
    ] {
        let method = if path.contains(':') {
            Method::POST
        } else {
            Method::GET
        };
        let r = native(&gw, method, path, &body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], 404, "{path}");
        assert_eq!(v["error"]["status"], "NOT_FOUND", "{path}");
    }
    // Anthropic's shape.
    let r = post_msg(
        &gw,
        &json!({"model": "gemini-2.5-pro", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    // Nothing filtered reached the fake.
    assert!(
        gw.state().requests().iter().all(|r| !r.path.contains(":")),
        "a filtered call went upstream"
    );
    // What is not filtered still works.
    let r = post_json(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;
}

/// The value of header `name` on the fake's last recorded request.
fn last_header(gw: &Gw, name: &str) -> Option<String> {
    let r = gw.state().requests().pop().unwrap();
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

#[tokio::test]
async fn custom_headers_go_on_every_upstream_call_and_change_live() {
    let admin = "sk-admin-token-0123456789";
    let gw = start(&[
        ("AUTH_TOKEN", admin),
        (
            "CUSTOM_HEADERS",
            r#"{"X-Goog-User-Project":"p1","x-extra":"a b"}"#,
        ),
    ])
    .await;
    let r = post_json(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        last_header(&gw, "x-goog-user-project").as_deref(),
        Some("p1")
    );
    assert_eq!(last_header(&gw, "x-extra").as_deref(), Some("a b"));
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let r = native(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        &body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(last_header(&gw, "x-extra").as_deref(), Some("a b"));
    // The key still goes as the key header.
    assert!(
        gw.state()
            .requests()
            .pop()
            .unwrap()
            .api_key
            .unwrap()
            .starts_with("key-")
    );
    let r = post_json(
        &gw,
        "/openai/v1/chat/completions",
        &chat("gemini-2.5-flash"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(last_header(&gw, "x-extra").as_deref(), Some("a b"));
    // Changed live.
    let r = send(
        Method::PATCH,
        &gw.url("/admin/config"),
        &[
            ("authorization", &format!("Bearer {admin}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&json!({"CUSTOM_HEADERS": r#"{"x-extra":"b"}"#})).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = post_json(&gw, "/v1/chat/completions", &chat("gemini-2.5-flash")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(last_header(&gw, "x-extra").as_deref(), Some("b"));
    assert_eq!(last_header(&gw, "x-goog-user-project"), None);
    gw.shutdown().await;
}

#[test]
fn custom_headers_may_not_override_the_key_or_hop_by_hop_headers() {
    use gemini_balance::config::Config;
    for bad in [
        "x-goog-api-key",
        "X-Goog-Api-Key",
        "authorization",
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "keep-alive",
        "proxy-authorization",
    ] {
        let mut map = std::collections::HashMap::new();
        map.insert(
            "API_KEYS".to_string(),
            r#"["key-a-0000000001"]"#.to_string(),
        );
        map.insert("CUSTOM_HEADERS".to_string(), format!(r#"{{"{bad}":"v"}}"#));
        let e = Config::from_map(&map)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"))
            .to_string();
        assert!(
            e.contains("CUSTOM_HEADERS") && e.contains(&bad.to_ascii_lowercase()),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    for bad in [r#"{"x a":"v"}"#, r#"{"x":1}"#, r#"{"x":"a\nb"}"#, "[1]"] {
        let mut map = std::collections::HashMap::new();
        map.insert(
            "API_KEYS".to_string(),
            r#"["key-a-0000000001"]"#.to_string(),
        );
        map.insert("CUSTOM_HEADERS".to_string(), bad.to_string());
        assert!(Config::from_map(&map).is_err(), "{bad}");
    }
}
