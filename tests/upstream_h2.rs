//! Gemini calls over HTTP/2 (`UPSTREAM_PROTOCOL`), and no call waiting behind
//! others when a connection's stream limit is reached
//! (`UPSTREAM_STREAMS_PER_CONNECTION`): the fake speaks h2c and bounds its
//! streams per connection as Google's front ends do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_gemini::Fake;
use http::{Method, StatusCode};
use serde_json::json;

fn versions(gw: &Gw) -> Vec<String> {
    gw.state()
        .requests()
        .into_iter()
        .map(|r| r.version)
        .collect()
}

#[tokio::test]
async fn upstream_protocol_http2_speaks_h2c_and_auto_keeps_http1_on_plain_http() {
    let gw = start(&[("UPSTREAM_PROTOCOL", "http2")]).await;
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let s = post_json(&gw, "/v1/chat/completions", &chat_request("hi", true)).await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.text().contains("data: [DONE]"), "{}", s.text());
    let n = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        &[("x-goog-api-key", TOKEN)],
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string(),
    )
    .await;
    assert_eq!(n.status, StatusCode::OK);
    assert!(n.text().contains("\"candidates\""), "{}", n.text());
    let seen = versions(&gw);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|v| v == "HTTP/2.0"), "{seen:?}");
    // Three calls, one after the other: one connection, and every seat given back.
    assert_eq!(gw.state().connections(), 1);
    assert_eq!(gw.app.upstream.lanes_in_use(), (0, 1));
    assert_eq!(gw.app.cfg().upstream_protocol.name(), "http2");
    gw.shutdown().await;

    let gw = start(&[]).await;
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(versions(&gw), ["HTTP/1.1"]);
    assert_eq!(gw.app.cfg().upstream_streams, 100);
    gw.shutdown().await;
}

/// Open `n` silent streams at once; return when `want` calls reached the
/// fake (true) or when `within` passed first (false), and the streams' answers.
async fn open_silent(gw: &Gw, n: usize, want: usize, within: Duration) -> (bool, Vec<String>) {
    let url = gw.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for i in 0..n {
        let body = chat_request(&format!("[[first=4000]] stream {i}"), true).to_string();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {TOKEN}");
            let a = send(Method::POST, &url, &[("authorization", &auth)], body).await;
            assert_eq!(a.status, StatusCode::OK);
            a.text()
        }));
    }
    let started = Instant::now();
    let reached = loop {
        if gw.state().requests().len() >= want {
            break true;
        }
        if started.elapsed() > within {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut bodies = Vec::new();
    for t in tasks {
        bodies.push(t.await.unwrap());
    }
    (reached, bodies)
}

#[tokio::test]
async fn streams_past_a_connections_stream_limit_open_another_connection() {
    // The fake allows 2 streams per connection; each call stays silent 4 s.
    let fake = Fake::start().await.unwrap();
    fake.state.set_h2_max_streams(2);
    let gw = start_with_fake(
        fake,
        &[
            ("UPSTREAM_PROTOCOL", "http2"),
            ("UPSTREAM_STREAMS_PER_CONNECTION", "2"),
        ],
    )
    .await;
    // All 6 reach the fake within 3 s, long before the first one's silence ends.
    let (reached, bodies) = open_silent(&gw, 6, 6, Duration::from_secs(3)).await;
    assert!(
        reached,
        "only {} of 6 calls reached the fake",
        gw.state().requests().len()
    );
    assert!(
        gw.state().connections() >= 3,
        "{} connections",
        gw.state().connections()
    );
    for b in &bodies {
        assert!(
            b.contains("data: [DONE]") && b.contains("\"content\""),
            "{b}"
        );
    }
    assert_eq!(
        gw.app.upstream.lanes_in_use().0,
        0,
        "every seat is given back"
    );
    gw.shutdown().await;

    // The control: one connection for up to 100 calls, against a server that
    // allows 2: the other 4 calls wait behind the first two (the check above
    // would fail without the lanes).
    let fake = Fake::start().await.unwrap();
    fake.state.set_h2_max_streams(2);
    let gw = start_with_fake(fake, &[("UPSTREAM_PROTOCOL", "http2")]).await;
    let (reached, bodies) = open_silent(&gw, 6, 3, Duration::from_secs(3)).await;
    assert!(
        !reached,
        "without room for more streams the fake saw a third call in time"
    );
    assert_eq!(bodies.len(), 6);
    gw.shutdown().await;
}
