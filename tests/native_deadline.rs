//! A native (pass-through) answer that is not streamed is bounded by
//! `TIME_OUT` as a whole: headers that arrive at once followed by a body
//! that trickles in are cut at `TIME_OUT` and answered 504 in Google's
//! format, and the key is charged with a transient failure like any other
//! timeout. (The fake's `trickle…` keys send their body 8 bytes per 300 ms.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_trickling_native_answer_is_cut_at_time_out() {
    let gw = start(&[
        ("API_KEYS", r#"["trickle-key-00000001"]"#),
        ("TIME_OUT", "1"),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string();
    let t = Instant::now();
    let a = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:generateContent"),
        &[("x-goog-api-key", TOKEN)],
        body,
    )
    .await;
    let took = t.elapsed();
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    let v = a.json();
    assert_eq!(v["error"]["code"], 504, "{v}");
    assert_eq!(v["error"]["status"], "DEADLINE_EXCEEDED", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("TIME_OUT"),
        "{v}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "cut at TIME_OUT, not when the body ends: {took:?}"
    );
    // The key is charged with a transient failure, like other timeouts.
    let snap: Value = gw.app.pool.snapshot();
    let key = &snap[0];
    assert_eq!(key["failures"], 1, "{snap}");
    assert!(
        key["last_error"].as_str().unwrap().contains("TIME_OUT"),
        "{snap}"
    );
    gw.shutdown().await;
}
