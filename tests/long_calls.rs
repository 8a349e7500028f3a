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
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
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
    let a = post_json(
        &gw,
        "/openai/v1/chat/completions",
        &chat_request("hi", false),
    )
    .await;
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
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", true)).await;
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
        &chat_request("[[events=5 gap=250]]", true),
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
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
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
    let a = post_json(
        &gw,
        "/openai/v1/chat/completions",
        &chat_request("hi", true),
    )
    .await;
    about(t.elapsed(), 1000);
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text());
    gw.shutdown().await;
}

/// The error log's entries (newest first), once it holds `n`.
async fn error_log(gw: &Gw, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let a = get(gw, "/admin/logs?limit=500").await;
        assert_eq!(a.status, 200, "{}", a.text());
        let e = a.json()["entries"].as_array().unwrap().clone();
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("the error log never reached {n} entries");
}

const EMPTY_AND_GOOD: &str = r#"["empty-key-00000001","good-key-000000002"]"#;

/// A 200 with no content is a failure: retried on another key (invisibly),
/// logged as `empty_answer`, on OpenAI and native routes, streamed or not.
#[tokio::test]
async fn an_empty_answer_is_retried_on_another_key() {
    let gw = start(&[("API_KEYS", EMPTY_AND_GOOD)]).await;
    for _ in 0..2 {
        let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let text = a.json()["choices"][0]["message"]["content"].clone();
        assert!(text.as_str().is_some_and(|t| !t.is_empty()), "{}", a.text());
        let a = native(&gw, "generateContent", "hi").await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(a.json()["candidates"][0]["content"]["parts"][0]["text"].is_string());
        let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", true)).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(a.text().contains("\"content\":\"Echo"), "{}", a.text());
    }
    let calls = gw.state().requests().len();
    assert!(calls > 6, "some answers were retried: {calls}");
    let log = error_log(&gw, calls - 6).await;
    assert!(
        log.iter().all(
            |e| e["message"].as_str().unwrap().starts_with("empty_answer")
                && e["key"].as_str().unwrap().starts_with("empt")
        ),
        "{log:?}"
    );
    gw.shutdown().await;
}

/// With no key left to retry, an empty answer is an explicit 502 in the
/// route's format, never an empty 200; a blocked prompt is an answer.
#[tokio::test]
async fn an_empty_answer_with_no_retry_left_is_a_502() {
    let gw = start(&[("API_KEYS", r#"["empty-key-00000001"]"#)]).await;
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "empty_answer", "{}", a.text());
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", true)).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "empty_answer", "{}", a.text());
    let a = native(&gw, "generateContent", "hi").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], 502, "{}", a.text());
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no content")
    );
    gw.shutdown().await;
    // Every key answering empty (`[[empty]]`): retried, then 502; a
    // blocked prompt is Google's answer and goes back as it is.
    let gw = start(&[]).await;
    let a = native(&gw, "generateContent", "[[empty]]").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(gw.state().requests().len(), 3, "retried on every key");
    gw.state().clear();
    let a = native(&gw, "generateContent", "[[block]]").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[finish=SAFETY]]", false),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(gw.state().requests().len(), 2, "answers are not retried");
    gw.shutdown().await;
}

/// The routes that read a whole `generateContent` answer or open a stream
/// beside chat and native: (name, path, body, what a good answer holds).
fn other_routes() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    let msg = |stream: bool| {
        json!({"model": "gemini-2.5-flash", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]})
    };
    let resp = |stream: bool| json!({"model": "gemini-2.5-flash", "input": "hi", "stream": stream});
    vec![
        ("messages", "/v1/messages", msg(false), "Echo: hi"),
        ("messages stream", "/v1/messages", msg(true), "Echo: hi"),
        ("responses", "/v1/responses", resp(false), "Echo: hi"),
        ("responses stream", "/v1/responses", resp(true), "Echo: hi"),
        (
            "images",
            "/v1/images/generations",
            json!({"prompt": "a fox"}),
            "b64_json",
        ),
        (
            "speech",
            "/v1/audio/speech",
            json!({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "pcm"}),
            "",
        ),
    ]
}

/// The keys of the generate calls the fake saw, in order.
fn generate_keys(gw: &Gw) -> Vec<String> {
    gw.state()
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("enerateContent"))
        .map(|r| r.api_key.unwrap_or_default())
        .collect()
}

/// On the Messages, Responses, images and speech routes too, an empty 200
/// (whole or streamed) is retried on another key, invisibly: the client
/// gets the good answer after the fake saw the empty one.
#[tokio::test]
async fn an_empty_answer_is_retried_on_every_route() {
    let gw = start(&[("API_KEYS", EMPTY_AND_GOOD)]).await;
    for (name, path, body, good) in other_routes() {
        let mut retried = false;
        for _ in 0..4 {
            gw.state().clear();
            let a = post_json(&gw, path, &body).await;
            assert_eq!(a.status, 200, "{name}: {}", a.text());
            assert!(a.text().contains(good), "{name}: {}", a.text());
            assert!(!a.text().contains("\"error\":{"), "{name}: {}", a.text());
            if name == "speech" {
                assert!(!a.body.is_empty(), "{name}: no audio");
            }
            let keys = generate_keys(&gw);
            match keys.len() {
                1 => assert!(keys[0].starts_with("good"), "{name}: {keys:?}"),
                2 => {
                    assert!(keys[0].starts_with("empty") && keys[1].starts_with("good"));
                    retried = true;
                }
                _ => panic!("{name}: {keys:?}"),
            }
        }
        assert!(retried, "{name}: the empty key was never tried first");
    }
    let log = error_log(&gw, 1).await;
    assert!(
        log.iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("empty_answer")),
        "{log:?}"
    );
    gw.shutdown().await;
}

/// With one key answering empty, every route answers an explicit 502 in
/// its own format (Anthropic's `api_error` envelope on Messages, OpenAI's
/// error object with code `empty_answer` elsewhere), logged as `empty_answer`.
#[tokio::test]
async fn an_empty_answer_with_no_retry_left_is_a_502_on_every_route() {
    let gw = start(&[("API_KEYS", r#"["empty-key-00000001"]"#)]).await;
    let routes = other_routes();
    for (name, path, body, _) in &routes {
        let a = post_json(&gw, path, body).await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{name}: {}", a.text());
        let v = a.json();
        if path.contains("messages") {
            assert_eq!(v["type"], "error", "{name}: {v}");
            assert_eq!(v["error"]["type"], "api_error", "{name}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("no content")
            );
        } else {
            assert_eq!(v["error"]["code"], "empty_answer", "{name}: {v}");
            assert_eq!(v["error"]["type"], "server_error", "{name}: {v}");
        }
    }
    let log = error_log(&gw, routes.len()).await;
    let empty = log
        .iter()
        .filter(|e| e["message"].as_str().unwrap().starts_with("empty_answer"))
        .count();
    assert!(empty >= routes.len(), "{log:?}");
    gw.shutdown().await;
}

/// A chat stream whose 200 already went out (heartbeats while silent)
/// and that then ends with no content event: retried on another key
/// invisibly; with no key left, an error chunk `empty_answer` and `[DONE]`.
#[tokio::test]
async fn an_empty_stream_after_heartbeats_is_retried_or_an_error_event() {
    let gw = start(&[("API_KEYS", EMPTY_AND_GOOD), ("HEARTBEAT_SECONDS", "0.1")]).await;
    let mut retried = false;
    for _ in 0..4 {
        gw.state().clear();
        let a = post_json(
            &gw,
            "/v1/chat/completions",
            &chat_request("hi [[first=300]]", true),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
        let text = a.text();
        assert!(text.starts_with(KEEP_ALIVE), "{text}");
        assert!(
            text.contains("Echo") && !text.contains("\"error\""),
            "{text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        retried |= generate_keys(&gw).len() == 2;
    }
    assert!(retried, "the empty key was never tried first");
    gw.shutdown().await;
    let gw = start(&[
        ("API_KEYS", r#"["empty-key-00000001"]"#),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("hi [[first=300]]", true),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let text = a.text();
    assert!(text.starts_with(KEEP_ALIVE), "{text}");
    let events = sse_events(&text);
    assert_eq!(events.len(), 2, "{text}");
    let err: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(err["error"]["code"], "empty_answer", "{text}");
    assert_eq!(events[1], "[DONE]");
    gw.shutdown().await;
}

/// `/openai/v1` streams that fail before their first byte are retried on
/// another key like the other routes (before: a 200 with a broken body).
#[tokio::test]
async fn openai_v1_streams_failing_before_their_first_byte_are_retried() {
    let keys = r#"["silentcut-00000001","good-key-000000002"]"#;
    let gw = start(&[("API_KEYS", keys)]).await;
    gw.state().set_time_scale(0.1);
    for _ in 0..2 {
        let a = post_json(
            &gw,
            "/openai/v1/chat/completions",
            &chat_request("hi", true),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(a.text().ends_with("data: [DONE]\n\n"), "{}", a.text());
    }
    assert!(gw.state().requests().len() > 2, "retried");
    gw.shutdown().await;
    // With no key left: an explicit error, not a 200 with an empty body.
    let gw = start(&[("API_KEYS", r#"["silentcut-00000001"]"#)]).await;
    gw.state().set_time_scale(0.1);
    let a = post_json(
        &gw,
        "/openai/v1/chat/completions",
        &chat_request("hi", true),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "upstream_error", "{}", a.text());
    gw.shutdown().await;
}

const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// A thinking model silent for 30 s (scaled to 300 ms): the 200 goes out
/// after HEARTBEAT_SECONDS, `: keep-alive` comments flow, then the answer
/// completes; silence between content events gets heartbeats too.
#[tokio::test]
async fn a_silent_thinking_stream_gets_heartbeats_and_completes() {
    let gw = start(&[("HEARTBEAT_SECONDS", "0.1")]).await;
    gw.state().set_time_scale(0.01);
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[first=30000]] hi", true),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let text = a.text();
    assert!(text.starts_with(KEEP_ALIVE), "{text}");
    assert!(text.matches(KEEP_ALIVE).count() >= 2, "{text}");
    assert!(text.contains("Echo: hi") || text.contains("Echo"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    // Between content events.
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[events=3 gap=350]]", true),
    )
    .await;
    let text = a.text();
    let first = text.find("data: {").unwrap();
    assert!(text[first..].matches(KEEP_ALIVE).count() >= 4, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // Off: no heartbeat.
    let gw2 = start(&[("HEARTBEAT_SECONDS", "0")]).await;
    gw2.state().set_time_scale(0.01);
    let a = post_json(
        &gw2,
        "/v1/chat/completions",
        &chat_request("[[first=30000]] hi", true),
    )
    .await;
    assert!(!a.text().contains(KEEP_ALIVE), "{}", a.text());
    gw.shutdown().await;
    gw2.shutdown().await;
}

/// A stream that fails after the heartbeats began but before any content
/// is retried on another key, invisibly to the client.
#[tokio::test]
async fn a_failure_after_heartbeats_before_content_is_retried_invisibly() {
    let keys = r#"["silentcut-00000001","good-key-000000002"]"#;
    let gw = start(&[("API_KEYS", keys), ("HEARTBEAT_SECONDS", "0.1")]).await;
    gw.state().set_time_scale(0.3);
    let mut beats = 0;
    for _ in 0..2 {
        let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", true)).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let text = a.text();
        beats += text.matches(KEEP_ALIVE).count();
        assert!(text.contains("Echo: hi"), "{text}");
        assert!(
            text.ends_with("data: [DONE]\n\n") && !text.contains("\"error\""),
            "{text}"
        );
    }
    assert!(beats >= 2, "the silent key's wait got heartbeats");
    assert!(gw.state().requests().len() > 2, "retried");
    gw.shutdown().await;
}

/// With no key left, a failure after the 200 went out ends the stream with
/// an OpenAI error chunk and `[DONE]`; so does one after content.
#[tokio::test]
async fn a_failure_after_the_headers_ends_with_an_error_chunk_and_done() {
    let gw = start(&[
        ("API_KEYS", r#"["silentcut-00000001"]"#),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    gw.state().set_time_scale(0.3);
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", true)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let text = a.text();
    assert!(text.starts_with(KEEP_ALIVE), "{text}");
    let events = sse_events(&text);
    assert_eq!(events.len(), 2, "{text}");
    let err: Value = serde_json::from_str(&events[0]).unwrap();
    assert!(err["error"]["message"].is_string(), "{text}");
    assert_eq!(events[1], "[DONE]");
    gw.shutdown().await;
    let gw = start(&[
        ("API_KEYS", r#"["cut-key-000000001"]"#),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[events=5]]", true),
    )
    .await;
    let events = sse_events(&a.text());
    assert!(events.len() >= 3, "{}", a.text());
    assert!(
        events[events.len() - 2].contains("\"error\""),
        "{}",
        a.text()
    );
    assert_eq!(events[events.len() - 1], "[DONE]");
    gw.shutdown().await;
}

/// Native SSE streams get empty lines (which every google-genai SDK skips)
/// and `/openai/v1` streams `: keep-alive`, only between events.
#[tokio::test]
async fn native_and_openai_v1_streams_get_heartbeats_between_events() {
    let gw = start(&[("HEARTBEAT_SECONDS", "0.1")]).await;
    let a = native(&gw, "streamGenerateContent?alt=sse", "[[events=3 gap=350]]").await;
    let text = a.text();
    assert!(text.matches("\r\n\r\n\n").count() >= 2, "{text:?}");
    assert_eq!(sse_events(&text).len(), 3, "{text:?}");
    for e in sse_events(&text) {
        serde_json::from_str::<Value>(e.trim()).unwrap();
    }
    let a = post_json(
        &gw,
        "/openai/v1/chat/completions",
        &chat_request("[[events=3 gap=350]]", true),
    )
    .await;
    let text = a.text();
    assert!(
        text.matches("\n\n: keep-alive\n\n").count() >= 2,
        "{text:?}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text:?}");
    gw.shutdown().await;
}

/// Native SSE: no first byte within HEARTBEAT_SECONDS commits the 200 and
/// empty lines flow; a failure then is retried on another key invisibly,
/// and with no key left the stream ends with Google's error object.
#[tokio::test]
async fn a_silent_native_stream_commits_and_beats_and_retries_invisibly() {
    let gw = start(&[("HEARTBEAT_SECONDS", "0.1")]).await;
    gw.state().set_time_scale(0.01);
    let a = native(&gw, "streamGenerateContent?alt=sse", "[[first=30000]] hi").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let text = a.text();
    assert!(text.starts_with("\n\n"), "{text:?}");
    let events = sse_events(&text);
    assert!(
        !events.is_empty() && !text.contains("\"error\""),
        "{text:?}"
    );
    let v: Value = serde_json::from_str(events[0].trim()).unwrap();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());
    gw.shutdown().await;

    let keys = r#"["silentcut-00000001","good-key-000000002"]"#;
    let gw = start(&[("API_KEYS", keys), ("HEARTBEAT_SECONDS", "0.1")]).await;
    gw.state().set_time_scale(0.3);
    for _ in 0..2 {
        let a = native(&gw, "streamGenerateContent?alt=sse", "hi").await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(!a.text().contains("\"error\""), "{:?}", a.text());
        assert!(!sse_events(&a.text()).is_empty(), "{:?}", a.text());
    }
    assert!(gw.state().requests().len() > 2, "retried");
    gw.shutdown().await;

    let gw = start(&[
        ("API_KEYS", r#"["silentcut-00000001"]"#),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    gw.state().set_time_scale(0.3);
    let a = native(&gw, "streamGenerateContent?alt=sse", "hi").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let events = sse_events(&a.text());
    assert_eq!(events.len(), 1, "{:?}", a.text());
    let v: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(v["error"]["code"], 502, "{v}");
    gw.shutdown().await;
}

/// SIGTERM on the real binary with streams open: `/health` answers 503
/// `"draining"`, new requests 503 with `Retry-After`, and each open stream
/// ends with its route's error event (`[DONE]` on OpenAI) before
/// `SHUTDOWN_GRACE` runs out; then the process exits.
#[tokio::test]
async fn sigterm_drains_open_streams_with_error_events() {
    let fake = fake_gemini::Fake::start().await.unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gemini-balance"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENV_FILE", "/nonexistent/.env")
        .env("API_KEYS", r#"["key-a-0000000001"]"#)
        .env("ALLOWED_TOKENS", format!("[\"{TOKEN}\"]"))
        .env("BASE_URL", fake.base_url())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("CHECK_INTERVAL_HOURS", "0")
        .env("KEEPALIVE_MINUTES", "0")
        .env("SHUTDOWN_GRACE", "4")
        .env("HEARTBEAT_SECONDS", "0.2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    let _guard = KillOnDrop(child.id());
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(t.elapsed() < Duration::from_secs(10), "never up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while send(Method::GET, &format!("{base}/health"), &[], "")
        .await
        .status
        != 200
    {
        assert!(t.elapsed() < Duration::from_secs(10), "never up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let auth = format!("Bearer {TOKEN}");
    let long = "[[events=60 gap=200]]";
    let (b1, b2, a1) = (base.clone(), base.clone(), auth.clone());
    let openai = tokio::spawn(async move {
        let body = serde_json::to_vec(&chat_request(long, true)).unwrap();
        let h = [
            ("authorization", a1.as_str()),
            ("content-type", "application/json"),
        ];
        send(Method::POST, &format!("{b1}/v1/chat/completions"), &h, body).await
    });
    let native = tokio::spawn(async move {
        let url = format!("{b2}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
        send(
            Method::POST,
            &url,
            &[("x-goog-api-key", TOKEN)],
            native_body(long),
        )
        .await
    });
    // A stream still silent (committed, heartbeats) when shutdown comes.
    let (b3, a3) = (base.clone(), auth.clone());
    let silent = tokio::spawn(async move {
        let body = serde_json::to_vec(&chat_request("[[first=20000]] hi", true)).unwrap();
        let h = [
            ("authorization", a3.as_str()),
            ("content-type", "application/json"),
        ];
        send(Method::POST, &format!("{b3}/v1/chat/completions"), &h, body).await
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let term = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let h = send(Method::GET, &format!("{base}/health"), &[], "").await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE, "{}", h.text());
    assert_eq!(h.json()["status"], "draining");
    let body = serde_json::to_vec(&chat_request("hi", false)).unwrap();
    let a = send(
        Method::POST,
        &format!("{base}/v1/chat/completions"),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert!(a.headers.contains_key("retry-after"));
    let (o, n, q) = (
        openai.await.unwrap(),
        native.await.unwrap(),
        silent.await.unwrap(),
    );
    let ended = term.elapsed();
    assert!(
        ended < Duration::from_secs(4),
        "before SHUTDOWN_GRACE: {ended:?}"
    );
    let events = sse_events(&o.text());
    assert!(events.len() > 2, "{}", o.text());
    assert_eq!(events[events.len() - 1], "[DONE]", "{}", o.text());
    assert!(
        events[events.len() - 2].contains("\"error\""),
        "{}",
        o.text()
    );
    assert!(q.text().starts_with(": keep-alive"), "{}", q.text());
    let events = sse_events(&q.text());
    assert_eq!(events.len(), 2, "{}", q.text());
    assert!(events[0].contains("shutting down"), "{}", q.text());
    assert_eq!(events[1], "[DONE]");
    let events = sse_events(&n.text());
    let last: Value = serde_json::from_str(events[events.len() - 1].trim()).unwrap();
    assert_eq!(last["error"]["code"], 503, "{}", n.text());
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(6), "the process exits");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A native JSON-array stream's text, function calls, last finish reason,
/// usage and number of elements.
fn array_stream_summary(body: &str) -> (String, Vec<Value>, Value, Value, usize) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    let events = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"));
    let (mut text, mut calls) = (String::new(), Vec::new());
    for e in events {
        for p in e["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            text.push_str(p["text"].as_str().unwrap_or(""));
            if !p["functionCall"].is_null() {
                calls.push(p["functionCall"].clone());
            }
        }
    }
    let last = events.last().unwrap();
    (
        text,
        calls,
        last["candidates"][0]["finishReason"].clone(),
        last["usageMetadata"].clone(),
        events.len(),
    )
}

/// Fake streaming on a native `:streamGenerateContent` without `alt=sse`:
/// served by one `generateContent` call and sent as Google's JSON array
/// whose text, function calls, finish reason and usage equal a real
/// stream's; while the whole answer is awaited, heartbeats (newlines, JSON
/// whitespace) go before the array.
#[tokio::test]
async fn fake_streaming_serves_native_json_array_streams() {
    let real = start(&[]).await;
    let fake = start(&[
        ("FAKE_STREAM_ENABLED", "true"),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    let tools = json!([{"functionDeclarations": [{"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}]);
    let words = json!({"contents": [{"role": "user", "parts": [{"text": "[[words=40]] hi"}]}]});
    let called = json!({"contents": [{"role": "user", "parts": [{"text": "weather in Paris?"}]}],
        "tools": tools});
    for body in [words, called] {
        let r = send(
            Method::POST,
            &real.url(path),
            &[("x-goog-api-key", TOKEN)],
            body.to_string(),
        )
        .await;
        fake.state().clear();
        let f = send(
            Method::POST,
            &fake.url(path),
            &[("x-goog-api-key", TOKEN)],
            body.to_string(),
        )
        .await;
        assert_eq!(f.status, 200, "{}", f.text());
        let ct = f.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(ct.starts_with("application/json"), "{ct}");
        let (rs, fs) = (
            array_stream_summary(&r.text()),
            array_stream_summary(&f.text()),
        );
        assert_eq!(
            (&rs.0, &rs.1, &rs.2, &rs.3),
            (&fs.0, &fs.1, &fs.2, &fs.3),
            "real {} fake {}",
            r.text(),
            f.text()
        );
        assert!(!fs.3.is_null(), "usage: {}", f.text());
        assert!(fs.4 >= 2, "{}", f.text());
        let paths: Vec<String> = fake
            .state()
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect();
        assert!(
            paths.len() == 1 && paths[0].ends_with(":generateContent"),
            "{paths:?}"
        );
    }
    // A whole answer that takes a while: newlines first, then the array.
    fake.state().set_time_scale(0.03);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "[[first=30000]] hi"}]}]});
    let f = send(
        Method::POST,
        &fake.url(path),
        &[("x-goog-api-key", TOKEN)],
        body.to_string(),
    )
    .await;
    assert_eq!(f.status, 200, "{}", f.text());
    assert!(f.text().starts_with("\n\n"), "{:?}", f.text());
    assert_eq!(array_stream_summary(&f.text()).0, "Echo: hi");
    real.shutdown().await;
    fake.shutdown().await;
}

/// The parts of an OpenAI stream a client keeps: text, tool calls, finish
/// reason, usage.
fn openai_stream_summary(body: &str) -> (String, Vec<(String, String)>, String, Value) {
    let (mut text, mut calls, mut finish, mut usage) =
        (String::new(), Vec::new(), String::new(), Value::Null);
    for e in sse_events(body) {
        if e == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&e).unwrap();
        if !v["usage"].is_null() {
            usage = v["usage"].clone();
        }
        let Some(c) = v["choices"].get(0) else {
            continue;
        };
        text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
        for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let f = &t["function"];
            if let Some(name) = f["name"].as_str() {
                calls.push((name.to_string(), String::new()));
            }
            if let (Some(a), Some(last)) = (f["arguments"].as_str(), calls.last_mut()) {
                last.1.push_str(a);
            }
        }
        if let Some(f) = c["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (text, calls, finish, usage)
}

/// Fake streaming (`FAKE_STREAM_MODELS`): a `stream:true` request is served
/// by a non-streamed call and sent as stream events whose text, tool calls,
/// finish reason and usage equal those of a real stream.
#[tokio::test]
async fn fake_streaming_matches_a_real_stream() {
    let real = start(&[]).await;
    let fake = start(&[("FAKE_STREAM_MODELS", r#"["gemini-2.5-flash"]"#)]).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let plain = json!({"model": "gemini-2.5-flash", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "[[words=40]] tell me"}]});
    let mut with_tools = plain.clone();
    with_tools["tools"] = tools;
    with_tools["messages"][0]["content"] = json!("weather in Paris?");
    for (i, body) in [plain, with_tools].into_iter().enumerate() {
        let r = post_json(&real, "/v1/chat/completions", &body).await;
        let f = post_json(&fake, "/v1/chat/completions", &body).await;
        assert_eq!(f.status, 200, "{}", f.text());
        let (rs, fs) = (
            openai_stream_summary(&r.text()),
            openai_stream_summary(&f.text()),
        );
        assert_eq!(rs, fs, "real {} fake {}", r.text(), f.text());
        if i == 0 {
            assert!(fs.0.split_whitespace().count() >= 40, "{}", f.text());
        } else {
            assert_eq!(fs.1.len(), 1, "a tool call: {}", f.text());
        }
        assert!(!fs.3.is_null(), "usage: {}", f.text());
        assert!(sse_events(&f.text()).len() > 3, "{}", f.text());
    }
    let faked: Vec<_> = fake
        .state()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        faked.iter().all(|p| p.ends_with(":generateContent")),
        "{faked:?}"
    );
    // Native SSE: the same text, function calls, finish reason and usage.
    let body =
        json!({"contents": [{"role": "user", "parts": [{"text": "[[words=40]] hi"}]}]}).to_string();
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    let summary = |text: &str| {
        let events: Vec<Value> = sse_events(text)
            .iter()
            .map(|e| serde_json::from_str(e.trim()).unwrap())
            .collect();
        let text: String = events
            .iter()
            .flat_map(|e| {
                e["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect();
        let last = events.last().unwrap().clone();
        (
            text,
            last["candidates"][0]["finishReason"].clone(),
            last["usageMetadata"].clone(),
            events.len(),
        )
    };
    let r = send(
        Method::POST,
        &real.url(path),
        &[("x-goog-api-key", TOKEN)],
        body.clone(),
    )
    .await;
    let f = send(
        Method::POST,
        &fake.url(path),
        &[("x-goog-api-key", TOKEN)],
        body,
    )
    .await;
    let (rs, fs) = (summary(&r.text()), summary(&f.text()));
    assert_eq!(
        (&rs.0, &rs.1, &rs.2),
        (&fs.0, &fs.1, &fs.2),
        "real {} fake {}",
        r.text(),
        f.text()
    );
    assert!(fs.3 > 3, "{}", f.text());
    assert!(
        fake.state()
            .requests()
            .last()
            .unwrap()
            .path
            .ends_with(":generateContent")
    );
    real.shutdown().await;
    fake.shutdown().await;
}

/// Fake streaming waits with heartbeats while the whole answer is made.
#[tokio::test]
async fn fake_streaming_sends_heartbeats_while_waiting() {
    let gw = start(&[
        ("FAKE_STREAM_ENABLED", "true"),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    gw.state().set_time_scale(0.01);
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[first=40000]] hi", true),
    )
    .await;
    let text = a.text();
    assert!(text.matches(KEEP_ALIVE).count() >= 2, "{text}");
    assert!(
        text.contains("Echo: hi") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    let a = native(&gw, "streamGenerateContent?alt=sse", "[[first=40000]] hi").await;
    assert!(a.text().starts_with("\n\n"), "{:?}", a.text());
    assert!(!sse_events(&a.text()).is_empty(), "{:?}", a.text());
    gw.shutdown().await;
}

/// `NONSTREAM_KEEPALIVE`: a slow non-streamed answer commits a 200 and
/// sends spaces before its JSON (which parses); a failure after that is the
/// route's error object with status 200; off by default.
#[tokio::test]
async fn nonstream_keepalive_sends_spaces_before_the_json() {
    let gw = start(&[
        ("NONSTREAM_KEEPALIVE", "true"),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    gw.state().set_time_scale(0.01);
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[first=40000]] hi", false),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.text().starts_with("  "), "{:?}", a.text());
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "Echo: hi",
        "{}",
        a.text()
    );
    let a = native(&gw, "generateContent", "[[first=40000]] hi").await;
    assert!(a.text().starts_with("  "), "{:?}", a.text());
    assert!(a.json()["candidates"][0]["content"]["parts"][0]["text"].is_string());
    // Quick answers are not touched.
    let a = native(&gw, "generateContent", "hi").await;
    assert!(a.text().starts_with('{'), "{:?}", a.text());
    gw.shutdown().await;

    let gw = start(&[
        ("API_KEYS", r#"["silentcut-00000001"]"#),
        ("NONSTREAM_KEEPALIVE", "true"),
        ("HEARTBEAT_SECONDS", "0.1"),
    ])
    .await;
    gw.state().set_time_scale(0.4);
    let a = post_json(&gw, "/v1/chat/completions", &chat_request("hi", false)).await;
    assert_eq!(a.status, 200, "committed before the failure");
    assert!(a.text().starts_with("  "), "{:?}", a.text());
    assert!(a.json()["error"]["message"].is_string(), "{}", a.text());
    let a = native(&gw, "generateContent", "hi").await;
    assert_eq!(a.status, 200);
    assert!(a.json()["error"]["code"].is_number(), "{}", a.text());
    gw.shutdown().await;

    let gw = start(&[("HEARTBEAT_SECONDS", "0.1")]).await;
    gw.state().set_time_scale(0.01);
    let a = post_json(
        &gw,
        "/v1/chat/completions",
        &chat_request("[[first=40000]] hi", false),
    )
    .await;
    assert!(a.text().starts_with('{'), "off by default: {:?}", a.text());
    gw.shutdown().await;
}
