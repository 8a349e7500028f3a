//! Vertex AI Express (`VERTEX_API_KEYS`, `/vertex-express/…`) against the
//! fake's Vertex paths: native calls byte-faithful on a Vertex key, OpenAI
//! chat translated and sent there, the Vertex pool's own states and retries,
//! the answer when it is not configured, tokens required, keys masked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use fake_gemini::{KeyBehavior, Recorded};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The Vertex pool's keys in these tests (not Gemini-key shaped).
const VX: [&str; 3] = [
    "vx-key-0000000001",
    "vx-key-0000000002",
    "vx-key-0000000003",
];
/// The main pool's keys (tests/common's default `API_KEYS`).
const MAIN: [&str; 3] = ["key-a-0000000001", "key-b-0000000002", "key-c-0000000003"];
const VERTEX_PATH: &str = "/v1beta1/publishers/google/models/gemini-2.5-flash";
const BODY: &[u8] = br#"{"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}], "generationConfig": {"temperature": 0}}"#;

/// A gateway with the Vertex pool pointed at the fake's Vertex paths.
async fn vertex_gw() -> Gw {
    let fake = fake_gemini::Fake::start().await.unwrap();
    let base = format!("http://{}/v1beta1/publishers/google", fake.addr);
    let keys = serde_json::to_string(&VX).unwrap();
    start_with_fake(
        fake,
        &[
            ("VERTEX_API_KEYS", keys.as_str()),
            ("VERTEX_EXPRESS_BASE_URL", base.as_str()),
        ],
    )
    .await
}

/// A native call through the gateway with the token as `x-goog-api-key`.
async fn goog(gw: &Gw, path: &str, body: &[u8]) -> Answer {
    send(
        Method::POST,
        &gw.url(path),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        body.to_vec(),
    )
    .await
}

/// The same call straight to the fake with a Vertex key (the reference).
async fn direct(gw: &Gw, path: &str, body: &[u8]) -> Answer {
    send(
        Method::POST,
        &format!("http://{}{}", gw.fake.addr, path),
        &[
            ("x-goog-api-key", VX[0]),
            ("content-type", "application/json"),
        ],
        body.to_vec(),
    )
    .await
}

/// `text` with every `"responseId": "…"` value blanked (the fake numbers
/// its answers, so two calls differ there and nowhere else).
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"responseId\"") {
        let after = &rest[i + "\"responseId\"".len()..];
        let open = after.find('"').unwrap();
        let close = after[open + 1..].find('"').unwrap();
        out.push_str(&rest[..i]);
        out.push_str("\"responseId\":\"_\"");
        rest = &after[open + 1 + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The requests the fake got on its Vertex paths.
fn vertex_requests(gw: &Gw) -> Vec<Recorded> {
    gw.state()
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1beta1/publishers/google/"))
        .collect()
}

#[tokio::test]
async fn native_generate_and_streams_reach_vertex_on_a_vertex_key_byte_for_byte() {
    let gw = vertex_gw().await;
    let cases = [
        (":generateContent", ""),
        (":streamGenerateContent", "?alt=sse"),
        (":streamGenerateContent", ""),
        (":countTokens", ""),
    ];
    for (action, query) in cases {
        for mount in ["", "/hf"] {
            gw.state().clear();
            let via = goog(
                &gw,
                &format!("{mount}/vertex-express/v1beta/models/gemini-2.5-flash{action}{query}"),
                BODY,
            )
            .await;
            assert_eq!(
                via.status,
                StatusCode::OK,
                "{action}{query}: {}",
                via.text()
            );
            let seen = vertex_requests(&gw);
            assert_eq!(seen.len(), 1, "{action}: one call on the Vertex path");
            let r = &seen[0];
            assert_eq!(r.path, format!("{VERTEX_PATH}{action}"));
            assert_eq!(
                r.query.as_deref().unwrap_or(""),
                query.trim_start_matches('?')
            );
            let key = r.api_key.as_deref().unwrap();
            assert!(VX.contains(&key), "a Vertex key, not {key}");
            assert!(r.query.as_deref().unwrap_or("").find("key=").is_none());
            assert_eq!(&r.body[..], BODY, "the body went to Vertex byte for byte");
            assert_eq!(gw.state().requests().len(), 1, "nothing else went upstream");
            let want = direct(&gw, &format!("{VERTEX_PATH}{action}{query}"), BODY).await;
            assert_eq!(want.status, StatusCode::OK);
            assert_eq!(
                without_ids(&via.text()),
                without_ids(&want.text()),
                "{action}{query}: the answer came back as Vertex sent it"
            );
            assert_eq!(
                via.headers.get("content-type"),
                want.headers.get("content-type")
            );
        }
    }
    // Vertex's own rule reaches the client as Vertex said it: a content
    // without a role is its 400, passed through (and no key is blamed).
    let no_role = br#"{"contents": [{"parts": [{"text": "hi"}]}]}"#;
    let r = goog(
        &gw,
        "/vertex-express/v1beta/models/gemini-2.5-flash:generateContent",
        no_role,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    assert!(r.text().contains("valid role"), "{}", r.text());
    let status = get(&gw, "/status").await.json();
    for k in status["vertex_express"]["keys"].as_array().unwrap() {
        assert_eq!(k["state"], "active", "{k}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn openai_chat_through_vertex_whole_and_streamed() {
    let gw = vertex_gw().await;
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "again [[words=3]]"}
    ]);
    let whole = post_json(
        &gw,
        "/vertex-express/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": messages}),
    )
    .await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text());
    let v = whole.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.5-flash");
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let seen = vertex_requests(&gw);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, format!("{VERTEX_PATH}:generateContent"));
    assert!(VX.contains(&seen[0].api_key.as_deref().unwrap()));
    // Every content carries a role (Vertex refuses one without).
    let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert!(sent["systemInstruction"].is_object());
    for c in sent["contents"].as_array().unwrap() {
        assert!(c["role"] == "user" || c["role"] == "model", "{c}");
    }

    gw.state().clear();
    let stream = post_json(
        &gw,
        "/vertex-express/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "stream": true, "messages": messages}),
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK, "{}", stream.text());
    let events = sse_events(&stream.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunk: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(chunk["object"], "chat.completion.chunk");
    let seen = vertex_requests(&gw);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, format!("{VERTEX_PATH}:streamGenerateContent"));
    assert_eq!(seen[0].query.as_deref(), Some("alt=sse"));
    assert!(VX.contains(&seen[0].api_key.as_deref().unwrap()));
    assert_eq!(gw.state().requests().len(), 1, "no main-pool call");

    // The model list is the gateway's own (express mode has none).
    let models = get(&gw, "/vertex-express/v1/models").await;
    assert_eq!(models.status, StatusCode::OK, "{}", models.text());
    let ids: Vec<String> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"gemini-2.5-flash".to_string()), "{ids:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_refused_vertex_key_cools_or_is_disabled_in_the_vertex_pool_only() {
    let gw = vertex_gw().await;
    gw.state()
        .set_key(VX[0], KeyBehavior::Quota { retry_secs: 30 });
    gw.state().set_key(VX[1], KeyBehavior::Suspended);
    for path in [
        "/vertex-express/v1beta/models/gemini-2.5-flash:generateContent",
        "/vertex-express/v1beta/models/gemini-2.5-flash:generateContent",
    ] {
        let r = goog(&gw, path, BODY).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let r = post_json(
        &gw,
        "/vertex-express/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let requests = gw.state().requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.path.starts_with("/v1beta1/publishers/google/"),
            "{}",
            r.path
        );
        let key = r.api_key.as_deref().unwrap();
        assert!(VX.contains(&key), "only Vertex keys go to Vertex: {key}");
    }
    assert!(
        requests.iter().any(|r| r.api_key.as_deref() == Some(VX[0]))
            && requests.iter().any(|r| r.api_key.as_deref() == Some(VX[1])),
        "the refused keys were tried, then the retry moved on"
    );
    assert_eq!(
        requests.last().unwrap().api_key.as_deref(),
        Some(VX[2]),
        "the last call was served by the good Vertex key"
    );

    let status = get(&gw, "/status").await;
    let v = status.json();
    let state_of = |keys: &Value, masked: &str| -> String {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == masked)
            .map(|k| k["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{masked} not in {keys}"))
    };
    let vk = &v["vertex_express"]["keys"];
    let masked = |k: &str| gemini_balance::keys::mask(k);
    assert_eq!(state_of(vk, &masked(VX[0])), "cooling");
    assert_eq!(state_of(vk, &masked(VX[1])), "disabled");
    assert_eq!(state_of(vk, &masked(VX[2])), "active");
    assert_eq!(v["vertex_express"]["key_counts"]["disabled"], 1);
    assert_eq!(v["vertex_express"]["key_counts"]["cooling"], 1);
    // The main pool did not hear of it.
    for k in v["keys"].as_array().unwrap() {
        assert_eq!(k["state"], "active", "{k}");
    }
    assert_eq!(v["key_counts"]["total"], 3);
    // Keys masked everywhere: the suspended key's own message named it.
    let text = status.text();
    for k in VX.iter().chain(MAIN.iter()) {
        assert!(!text.contains(k), "{k} in /status: {text}");
    }
    let admin = get(&gw, "/admin/keys").await;
    assert_eq!(admin.status, StatusCode::OK);
    let a = admin.json();
    assert_eq!(a["total"], 3, "the main pool's keys");
    assert_eq!(a["vertex_express"]["total"], 3);
    for k in VX.iter().chain(MAIN.iter()) {
        assert!(!admin.text().contains(k), "{k} in /admin/keys");
    }
    // A main-pool call still runs on the main pool, at the Developer API.
    gw.state().clear();
    let main = post_json(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(main.status, StatusCode::OK, "{}", main.text());
    let r = gw.state().requests().pop().unwrap();
    assert!(r.path.starts_with("/v1beta/models/"), "{}", r.path);
    assert!(MAIN.contains(&r.api_key.as_deref().unwrap()));
    gw.shutdown().await;
}

#[tokio::test]
async fn without_vertex_keys_the_routes_say_it_is_not_configured() {
    let gw = start(&[]).await;
    let native = goog(
        &gw,
        "/vertex-express/v1beta/models/gemini-2.5-flash:generateContent",
        BODY,
    )
    .await;
    assert_eq!(native.status, StatusCode::SERVICE_UNAVAILABLE);
    let e = &native.json()["error"];
    assert_eq!(e["code"], 503);
    assert_eq!(e["status"], "UNAVAILABLE");
    assert!(
        e["message"].as_str().unwrap().contains("VERTEX_API_KEYS"),
        "{e}"
    );
    let chat = post_json(
        &gw,
        "/vertex-express/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(chat.status, StatusCode::SERVICE_UNAVAILABLE);
    let e = &chat.json()["error"];
    assert_eq!(e["code"], "not_configured");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Vertex AI Express is not configured")
    );
    let models = get(&gw, "/vertex-express/v1/models").await;
    assert_eq!(models.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(models.json()["error"]["code"], "not_configured");
    assert!(gw.state().requests().is_empty(), "nothing went upstream");
    gw.shutdown().await;
}

#[tokio::test]
async fn vertex_routes_take_a_client_token_and_only_the_express_actions() {
    let gw = vertex_gw().await;
    let path = "/vertex-express/v1beta/models/gemini-2.5-flash:generateContent";
    let json_only = [("content-type", "application/json")];
    let none = send(Method::POST, &gw.url(path), &json_only, BODY.to_vec()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"]["status"], "UNAUTHENTICATED");
    let stranger = send(
        Method::POST,
        &gw.url(path),
        &[("x-goog-api-key", "sk-stranger-0001"), json_only[0]],
        BODY.to_vec(),
    )
    .await;
    assert!(
        matches!(stranger.status.as_u16(), 401 | 403),
        "{}",
        stranger.status
    );
    let chat = send(
        Method::POST,
        &gw.url("/vertex-express/v1/chat/completions"),
        &json_only,
        serde_json::to_vec(
            &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(chat.status, StatusCode::UNAUTHORIZED);
    assert_eq!(chat.json()["error"]["code"], "invalid_api_key");
    let models = send(
        Method::GET,
        &gw.url("/vertex-express/v1/models"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(models.status, StatusCode::UNAUTHORIZED);
    // The token as a bearer works on the native route too.
    let bearer = send(
        Method::POST,
        &gw.url(path),
        &[("authorization", &format!("Bearer {TOKEN}")), json_only[0]],
        BODY.to_vec(),
    )
    .await;
    assert_eq!(bearer.status, StatusCode::OK, "{}", bearer.text());
    // What express mode does not serve is a 404 in Google's format.
    for other in [
        "/vertex-express/v1beta/models/gemini-embedding-001:embedContent",
        "/vertex-express/v1beta/files",
        "/vertex-express/v1beta/models/a/b:generateContent",
    ] {
        let r = goog(&gw, other, BODY).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}: {}", r.text());
        assert_eq!(r.json()["error"]["status"], "NOT_FOUND", "{other}");
    }
    assert_eq!(
        gw.state().requests().len(),
        1,
        "only the bearer call went upstream"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_vertex_stream_that_breaks_before_its_first_event_moves_to_the_next_vertex_key() {
    let gw = vertex_gw().await;
    for k in [VX[0], VX[1]] {
        gw.state().set_key(k, KeyBehavior::CutAfter { events: 0 });
    }
    for (path, body) in [
        (
            "/vertex-express/v1/chat/completions",
            json!({"model": "gemini-2.5-flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/vertex-express/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            serde_json::from_slice(BODY).unwrap(),
        ),
    ] {
        gw.state().clear();
        let r = post_json(&gw, path, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert!(!sse_events(&r.text()).is_empty(), "{path}");
        let requests = gw.state().requests();
        assert!(
            requests
                .iter()
                .all(|q| VX.contains(&q.api_key.as_deref().unwrap()))
        );
        assert_eq!(
            requests.last().unwrap().api_key.as_deref(),
            Some(VX[2]),
            "{path}"
        );
    }
    let v = get(&gw, "/status").await.json();
    let failures: u64 = v["vertex_express"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["failures"].as_u64().unwrap())
        .sum();
    assert!(
        failures >= 2,
        "the broken streams counted against Vertex keys: {v}"
    );
    for k in v["keys"].as_array().unwrap() {
        assert_eq!(k["failures"], 0, "the main pool is untouched: {k}");
    }
    gw.shutdown().await;
}
