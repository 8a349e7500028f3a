//! A pool key that the upstream echoes inside a successful answer never
//! reaches the client: native and OpenAI routes, streamed and not, plain and
//! gzip, also when the key arrives split across two upstream frames. The
//! fake's `echo…` keys write the request's own key into the answer's text
//! (`echo-split…` cuts it across two frames 50 ms apart).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use gemini_balance::gemini::gzip;
use gemini_balance::keys::mask;
use http::{Method, StatusCode};
use serde_json::json;

const SPLIT: &str = "echo-split-key-0000000001";
const WHOLE: &str = "echo-key-00000000000002";

/// A Google-shaped key, built from pieces so that none sits in the source.
fn google_key(tail: &str) -> String {
    format!("{}{}{tail}", "AIza", "SyA1234567890abcdefghijklmnopqr")
}

fn native_body(text: &str) -> Bytes {
    Bytes::from(json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}).to_string())
}

/// The key never appears, its masked form does.
fn assert_redacted(body: &[u8], key: &str, what: &str) {
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains(key), "{what}: the key leaked: {text}");
    assert!(text.contains(&mask(key)), "{what}: no masked key: {text}");
}

async fn gateway(key: &str) -> Gw {
    start(&[("API_KEYS", &format!("[\"{key}\"]")), ("MAX_RETRIES", "0")]).await
}

#[tokio::test]
async fn native_streams_never_carry_the_pool_key() {
    for key in [SPLIT, WHOLE] {
        let gw = gateway(key).await;
        for path in [
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        ] {
            let a = send(
                Method::POST,
                &gw.url(path),
                &[("x-goog-api-key", TOKEN)],
                native_body("[[events=3]] hi"),
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            assert_redacted(&a.body, key, path);
        }
        // gzip asked for: an SSE stream goes out plain while heartbeats are on
        // (the default), a JSON-array stream gzip-encoded; neither holds the key.
        let a = send(
            Method::POST,
            &gw.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
            &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
            native_body("[[events=3]] hi"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.headers.get("content-encoding").is_none());
        assert_redacted(&a.body, key, "plain SSE stream");
        assert!(String::from_utf8_lossy(&a.body).contains("lorem"));
        let a = send(
            Method::POST,
            &gw.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
            native_body("[[events=3]] hi"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["content-encoding"], "gzip");
        let plain = gzip::decode(&a.body, 1 << 20).expect("valid gzip");
        assert_redacted(&plain, key, "gzip stream");
        assert!(String::from_utf8_lossy(&plain).contains("lorem"));
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn native_plain_answers_never_carry_the_pool_key() {
    for key in [SPLIT, WHOLE] {
        let gw = gateway(key).await;
        let path = "/v1beta/models/gemini-2.5-flash:generateContent";
        let a = send(
            Method::POST,
            &gw.url(path),
            &[("x-goog-api-key", TOKEN)],
            native_body("hi"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_redacted(&a.body, key, "native");
        assert_eq!(
            a.json()["candidates"][0]["content"]["parts"][0]["text"],
            format!("{} Echo: hi", mask(key)),
            "still valid JSON, with the masked key in place"
        );
        let a = send(
            Method::POST,
            &gw.url(path),
            &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
            native_body("hi"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        let plain = if a.headers.get("content-encoding").is_some() {
            gzip::decode(&a.body, 1 << 20).expect("valid gzip")
        } else {
            a.body.to_vec()
        };
        assert_redacted(&plain, key, "native gzip");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn openai_answers_never_carry_the_pool_key() {
    for key in [SPLIT, WHOLE] {
        let gw = gateway(key).await;
        let ask = |stream: bool| {
            json!({"model": "gemini-2.5-flash", "stream": stream,
                   "messages": [{"role": "user", "content": "hi"}]})
        };
        let a = post_json(&gw, "/v1/chat/completions", &ask(false)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_redacted(&a.body, key, "chat");
        let a = post_json(&gw, "/v1/chat/completions", &ask(true)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_redacted(&a.body, key, "chat stream");
        // Gemini's own OpenAI-compatible layer, passed through.
        let a = post_json(&gw, "/openai/v1/chat/completions", &ask(false)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_redacted(&a.body, key, "openai compat");
        let a = post_json(&gw, "/openai/v1/chat/completions", &ask(true)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_redacted(&a.body, key, "openai compat stream");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn google_shaped_keys_are_masked_too() {
    // A Google-shaped pool key, echoed split across two frames.
    let key = google_key("zz01");
    let gw = gateway(&key).await;
    gw.state()
        .set_key(&key, KeyBehavior::EchoKey { split: true });
    let a = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        &[("x-goog-api-key", TOKEN)],
        native_body("hi"),
    )
    .await;
    assert_redacted(&a.body, &key, "google key");
    gw.shutdown().await;

    // Any other Google-shaped key in an answer (here: echoed from the prompt).
    let gw = start(&[]).await;
    let other = google_key("yy02");
    let a = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:generateContent"),
        &[("x-goog-api-key", TOKEN)],
        native_body(&format!("my key is {other}")),
    )
    .await;
    assert_redacted(&a.body, &other, "another google key");
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "stream": true,
                "messages": [{"role": "user", "content": format!("my key is {other}")}]}),
    )
    .await;
    assert_redacted(&a.body, &other, "another google key, OpenAI stream");
    gw.shutdown().await;
}
