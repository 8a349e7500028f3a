//! Long calls that finish (issue 17): realistic timeouts (`TIME_OUT`
//! 300 s, one `REQUEST_TIMEOUT` deadline over every attempt on every route,
//! `TIMEOUT_RETRIES` for timed-out generations), with the fake's silent,
//! trickling and hanging keys on a scaled clock so each test takes seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn chat(text: &str, stream: bool) -> Value {
    json!({
        "model": "gemini-2.5-flash",
        "stream": stream,
        "messages": [{"role": "user", "content": text}]
    })
}

fn native_body(text: &str) -> String {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}).to_string()
}

async fn native(gw: &Gw, action: &str, text: &str) -> Answer {
    send(
        Method::POST,
        &gw.url(&format!("/v1beta/models/gemini-2.5-flash:{action}")),
        &[("x-goog-api-key", TOKEN)],
        native_body(text),
    )
    .await
}

/// Assert `took` is about `want` (the deadline), not the longer wait it replaced.
fn about(took: Duration, want_ms: u64) {
    assert!(
        took >= Duration::from_millis(want_ms - 100)
            && took < Duration::from_millis(want_ms + 1200),
        "expected about {want_ms} ms, took {took:?}"
    );
}

#[tokio::test]
async fn time_out_defaults_to_300_seconds_and_request_timeout_to_600() {
    let gw = start(&[]).await;
    let cfg = gw.app.cfg();
    assert_eq!(cfg.time_out, Duration::from_secs(300));
    assert_eq!(cfg.request_timeout, Duration::from_secs(600));
    assert_eq!(cfg.timeout_retries, 1);
    drop(cfg);
    gw.shutdown().await;
}

/// Trickling non-streamed answers (headers at once, then 8 bytes per
/// 300 ms) are cut at `REQUEST_TIMEOUT` on every route, long before
/// `TIME_OUT`.
#[tokio::test]
async fn request_timeout_bounds_a_trickling_answer_on_every_route() {
    let gw = start(&[
        ("API_KEYS", r#"["trickle-key-00000001"]"#),
        ("TIME_OUT", "20"),
        ("REQUEST_TIMEOUT", "1"),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    // OpenAI chat, not streamed.
    let t = Instant::now();
    let a = post_json(&gw, "/v1/chat/completions", &chat("hi", false)).await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("REQUEST_TIMEOUT")
    );
    // Native, not streamed.
    let t = Instant::now();
    let a = native(&gw, "generateContent", "hi").await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    assert_eq!(a.json()["error"]["status"], "DEADLINE_EXCEEDED");
    // Gemini's own OpenAI layer, not streamed: the body is cut at the deadline.
    let t = Instant::now();
    let a = post_json(&gw, "/openai/v1/chat/completions", &chat("hi", false)).await;
    about(t.elapsed(), 1000);
    assert!(
        serde_json::from_slice::<Value>(&a.body).is_err(),
        "cut, not complete: {}",
        a.text()
    );
    gw.shutdown().await;
}

/// Streams that stay silent before their first event are bounded by
/// `REQUEST_TIMEOUT` (not `STREAM_IDLE_TIMEOUT` per attempt) on every route.
#[tokio::test]
async fn request_timeout_bounds_a_silent_stream_before_its_first_event() {
    let gw = start(&[
        (
            "API_KEYS",
            r#"["silent-a-0000000001","silent-b-0000000002"]"#,
        ),
        ("STREAM_IDLE_TIMEOUT", "20"),
        ("REQUEST_TIMEOUT", "1"),
    ])
    .await;
    gw.state().set_time_scale(1.0);
    for k in ["silent-a-0000000001", "silent-b-0000000002"] {
        gw.state()
            .set_key(k, fake_gemini::KeyBehavior::Silent { ms: 10_000 });
    }
    let t = Instant::now();
    let a = post_json(&gw, "/v1/chat/completions", &chat("hi", true)).await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    let t = Instant::now();
    let a = native(&gw, "streamGenerateContent?alt=sse", "hi").await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    gw.shutdown().await;
}

/// Once a stream produces content it is governed by `STREAM_IDLE_TIMEOUT`
/// only: a stream longer than `REQUEST_TIMEOUT` is never cut for it.
#[tokio::test]
async fn a_stream_producing_content_outlives_request_timeout() {
    let gw = start(&[("REQUEST_TIMEOUT", "0.5"), ("STREAM_IDLE_TIMEOUT", "5")]).await;
    let t = Instant::now();
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat("[[events=5 gap=250]]", true),
    )
    .await;
    assert!(
        t.elapsed() > Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let text = a.text();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    let a = native(&gw, "streamGenerateContent?alt=sse", "[[events=5 gap=250]]").await;
    let events = sse_events(&a.text());
    assert_eq!(events.len(), 5, "{}", a.text());
    assert!(!a.text().contains("\"error\""), "{}", a.text());
    gw.shutdown().await;
}

/// A generation that timed out may have spent Google's quota: it is retried
/// `TIMEOUT_RETRIES` times (default 1), not `MAX_RETRIES`.
#[tokio::test]
async fn a_timed_out_generation_is_retried_timeout_retries_times() {
    let keys =
        r#"["hang-a-0000000001","hang-b-0000000002","hang-c-0000000003","hang-d-0000000004"]"#;
    let gw = start(&[
        ("API_KEYS", keys),
        ("TIME_OUT", "0.4"),
        ("MAX_RETRIES", "3"),
    ])
    .await;
    let t = Instant::now();
    let a = post_json(&gw, "/v1/chat/completions", &chat("hi", false)).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    about(t.elapsed(), 800);
    let tried = gw.state().requests().len();
    assert_eq!(tried, 2, "one attempt and one retry");
    gw.state().clear();
    // Silent streams are timed-out generations too.
    let gw2 = start(&[
        (
            "API_KEYS",
            r#"["silent-a-0000000001","silent-b-0000000002","silent-c-0000000003"]"#,
        ),
        ("STREAM_IDLE_TIMEOUT", "0.4"),
        ("TIMEOUT_RETRIES", "0"),
    ])
    .await;
    gw2.state().set_time_scale(1.0);
    let a = native(&gw2, "streamGenerateContent?alt=sse", "hi").await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    assert_eq!(
        gw2.state().requests().len(),
        1,
        "TIMEOUT_RETRIES=0: no retry"
    );
    gw.shutdown().await;
    gw2.shutdown().await;
}

/// `REQUEST_TIMEOUT` holds over retries: hanging keys with a long
/// `TIME_OUT` are not waited for one after another.
#[tokio::test]
async fn request_timeout_holds_over_retries() {
    let keys = r#"["hang-a-0000000001","hang-b-0000000002"]"#;
    let gw = start(&[
        ("API_KEYS", keys),
        ("TIME_OUT", "30"),
        ("REQUEST_TIMEOUT", "1"),
        ("TIMEOUT_RETRIES", "5"),
    ])
    .await;
    let t = Instant::now();
    let a = native(&gw, "generateContent", "hi").await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    let t = Instant::now();
    let a = post_json(&gw, "/openai/v1/chat/completions", &chat("hi", true)).await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    gw.shutdown().await;
}
