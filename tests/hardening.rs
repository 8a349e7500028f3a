//! Hardening: bad input, hostile clients, upstream faults and load.
//! The gateway keeps serving, answers every request exactly once, leaks no
//! secret and no resource.
//!
//! * bad input — limits (413, 431, nesting, message and part counts), malformed
//!   bodies, hostile model names and paths, raw HTTP/1 edge cases (HTTP/1.0,
//!   pipelining, Transfer-Encoding tricks), slow clients, the connection limit;
//! * faults — an "evil upstream" (raw TCP) that resets, sends garbage, never
//!   answers or never ends, plus the fake's Hang/CutAfter/Slow keys; keys dying
//!   under 64 concurrent clients with exact accounting; shutdown; a client
//!   that disconnects or stops reading cancels the upstream call;
//! * leaks — sockets, tasks and resident memory stable over 12,000 requests
//!   (`LEAK_REQUESTS=100000 cargo test --test hardening -- --ignored --nocapture`
//!   for the long run);
//! * secrets — the real binary at `LOG_LEVEL=debug` with canary keys and
//!   tokens: no log line, body or header ever holds one in full.
//!
//! After every hostile case the gateway must still answer `/health`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Pool keys and the client token: distinctive, so a leak is easy to spot.
const KEYS: [&str; 3] = [
    "hard-KEYCANARY-0001-aaaa",
    "hard-KEYCANARY-0002-bbbb",
    "hard-KEYCANARY-0003-cccc",
];
const TOK: &str = "sk-hard-TOKCANARY-5150-zz";

/// Tests that measure the whole process (memory, sockets) run alone; all
/// others share the gate.
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap()
}

/// A gateway with the canary keys and token, `extra` on top.
async fn boot(extra: &[(&str, &str)]) -> Gw {
    let keys = list(&KEYS);
    let toks = list(&[TOK]);
    let mut vars: Vec<(&str, &str)> = vec![("API_KEYS", &keys), ("ALLOWED_TOKENS", &toks)];
    vars.extend_from_slice(extra);
    start(&vars).await
}

/// No canary (key or token) in a body or any header value.
fn assert_clean(what: &str, headers: &http::HeaderMap, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains("CANARY"),
        "{what}: a secret in the body: {text}"
    );
    // Nothing that names the software behind the gateway.
    assert!(
        !headers.contains_key("server") && !headers.contains_key("via"),
        "{what}: {headers:?}"
    );
    for (k, v) in headers {
        assert!(
            !String::from_utf8_lossy(v.as_bytes()).contains("CANARY"),
            "{what}: a secret in header {k}"
        );
    }
}

/// Send with the canary token; every answer is checked for secrets.
async fn call(
    gw: &Gw,
    method: Method,
    path: &str,
    hdrs: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let auth = format!("Bearer {TOK}");
    let mut h: Vec<(&str, &str)> = vec![("authorization", &auth)];
    h.extend_from_slice(hdrs);
    // Bounded: a gateway that hangs fails the test instead of stalling it.
    let a = tokio::time::timeout(
        Duration::from_secs(20),
        send(method, &gw.url(path), &h, body),
    )
    .await
    .unwrap_or_else(|_| panic!("{path}: no answer within 20 s"));
    assert_clean(path, &a.headers, &a.body);
    a
}

async fn chat(gw: &Gw, body: &Value) -> Answer {
    call(
        gw,
        Method::POST,
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn ask(text: &str) -> Value {
    json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": text}]})
}

fn ask_stream(text: &str) -> Value {
    json!({"model": "gemini-2.5-flash", "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// An OpenAI error object with a message.
fn assert_openai_error(a: &Answer, status: u16) {
    assert_eq!(a.status.as_u16(), status, "{}", a.text());
    let v = a.json();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
}

/// Google's error envelope with the status code.
fn assert_google_error(a: &Answer, status: u16) {
    assert_eq!(a.status.as_u16(), status, "{}", a.text());
    let v = a.json();
    assert_eq!(v["error"]["code"], status, "{v}");
    assert!(v["error"]["status"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

/// The gateway still answers `/health`.
async fn alive(gw: &Gw) {
    let r = send(Method::GET, &gw.url("/health"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "ok");
}

// ---------------------------------------------------------------------------
// Raw TCP helpers
// ---------------------------------------------------------------------------

/// Write `data`, then read until the peer closes or `wait` passes.
async fn raw(addr: SocketAddr, data: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(data).await.unwrap();
    read_until_closed(&mut s, wait).await.0
}

/// Read until EOF (true) or `wait` passes (false).
async fn read_until_closed(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 16384];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// Status codes of every response in a raw byte stream, in order.
fn statuses(b: &[u8]) -> Vec<u16> {
    let t = String::from_utf8_lossy(b);
    let mut out = Vec::new();
    let mut rest = t.as_ref();
    while let Some(i) = rest.find("HTTP/1.") {
        let line = &rest[i..];
        if let Some(code) = line.get(9..12).and_then(|c| c.parse().ok()) {
            out.push(code);
        }
        rest = &rest[i + 8..];
    }
    out
}

/// The body of the first response in a raw byte stream (after the head).
fn first_body(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(b);
    t.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn head(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOK}\r\n{extra}\r\n")
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn body_and_head_limits_answer_in_the_route_format() {
    let _g = GATE.read().await;
    let gw = boot(&[
        ("MAX_BODY_BYTES", "4096"),
        ("MAX_HEADER_BYTES", "8192"),
        ("MAX_HEADERS", "50"),
    ])
    .await;
    let big = format!(
        r#"{{"model":"gemini-2.5-flash","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );

    let r = chat(&gw, &serde_json::from_str(&big).unwrap()).await;
    assert_openai_error(&r, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    let r = call(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        &[("x-goog-api-key", TOK)],
        big.clone(),
    )
    .await;
    assert_google_error(&r, 413);

    // A Content-Length far over the limit is refused without reading the body.
    let t = Instant::now();
    let out = raw(
        gw.addr,
        format!(
            "{}{}",
            head(
                "POST",
                "/v1/chat/completions",
                "Content-Length: 1000000000000\r\n"
            ),
            "{"
        )
        .as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        statuses(&out).first(),
        Some(&413),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(t.elapsed() < Duration::from_secs(2));

    // Too many headers / too large a head: 431 in the route's format ...
    let many: String = (0..60).map(|i| format!("X-H{i}: v\r\n")).collect();
    let out = raw(
        gw.addr,
        head("GET", "/v1/models", &format!("{many}Connection: close\r\n")).as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        statuses(&out),
        vec![431],
        "{}",
        String::from_utf8_lossy(&out)
    );
    let v: Value = serde_json::from_str(&first_body(&out)).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_HEADERS"),
        "{v}"
    );
    let fat = format!("X-Fat: {}\r\nConnection: close\r\n", "a".repeat(10_000));
    let out = raw(
        gw.addr,
        head("POST", "/v1beta/models/m:generateContent", &fat).as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        statuses(&out),
        vec![431],
        "{}",
        String::from_utf8_lossy(&out)
    );
    let v: Value = serde_json::from_str(&first_body(&out)).unwrap();
    assert_eq!(
        v["error"]["code"], 431,
        "Google's format on a native route: {v}"
    );
    // ... and far past the limit hyper refuses it before reading further.
    let fat = format!("X-Fat: {}\r\n", "a".repeat(40_000));
    let out = raw(
        gw.addr,
        head("GET", "/v1/models", &fat).as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        statuses(&out),
        vec![431],
        "{}",
        String::from_utf8_lossy(&out)
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let out = raw(
        gw.addr,
        head("GET", "/v1/models", &many).as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        statuses(&out),
        vec![431],
        "{}",
        String::from_utf8_lossy(&out)
    );

    assert!(gw.state().requests().is_empty(), "nothing reached upstream");
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn nesting_message_and_part_counts_are_bounded() {
    let _g = GATE.read().await;
    let gw = boot(&[]).await;
    // 100,000 nested arrays: refused by the parser, no stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = call(
        &gw,
        Method::POST,
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        deep,
    )
    .await;
    assert_openai_error(&r, 400);
    // Deep but parseable JSON inside a message: refused by the translation.
    let mut v = json!("x");
    for _ in 0..120 {
        v = json!({"a": v});
    }
    let r = chat(&gw, &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "extra": v}]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": v}}})).await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::OK,
        "{}",
        r.text()
    );
    let msgs: Vec<Value> = (0..10_001)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let r = chat(&gw, &json!({"model": "gemini-2.5-flash", "messages": msgs})).await;
    assert_openai_error(&r, 400);
    assert!(r.text().contains("too many messages"), "{}", r.text());
    let parts: Vec<Value> = (0..1001)
        .map(|_| json!({"type": "text", "text": "x"}))
        .collect();
    let r = chat(
        &gw,
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": parts}]}),
    )
    .await;
    assert_openai_error(&r, 400);
    assert!(r.text().contains("too many content parts"), "{}", r.text());
    assert!(
        gw.state().requests().is_empty(),
        "nothing refused reached upstream"
    );
    alive(&gw).await;
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_bodies_get_400_never_500() {
    let _g = GATE.read().await;
    let gw = boot(&[]).await;
    let m = r#""model":"gemini-2.5-flash""#;
    let u = r#""messages":[{"role":"user","content":"hi"}]"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("truncated", b"{\"model\":".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("string", b"\"hi\"".to_vec()),
        ("number", b"12".to_vec()),
        ("invalid utf-8", b"{\"model\":\"\xff\xfe\",\"messages\":[]}".to_vec()),
        ("invalid utf-8 text", [&b"{\"model\":\"gemini-2.5-flash\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}"[..]].concat()),
        ("trailing garbage", format!("{{{m},{u}}} xyz").into_bytes()),
        ("number out of range", format!("{{{m},{u},\"max_tokens\":1e400}}").into_bytes()),
        ("model not a string", format!("{{\"model\":5,{u}}}").into_bytes()),
        ("no model", format!("{{{u}}}").into_bytes()),
        ("messages a string", format!("{{{m},\"messages\":\"x\"}}").into_bytes()),
        ("messages empty", format!("{{{m},\"messages\":[]}}").into_bytes()),
        ("message a number", format!("{{{m},\"messages\":[5]}}").into_bytes()),
        ("role a number", format!("{{{m},\"messages\":[{{\"role\":5,\"content\":\"x\"}}]}}").into_bytes()),
        ("unknown role", format!("{{{m},\"messages\":[{{\"role\":\"wizard\",\"content\":\"x\"}}]}}").into_bytes()),
        ("content a number", format!("{{{m},\"messages\":[{{\"role\":\"user\",\"content\":5}}]}}").into_bytes()),
        ("part not an object", format!("{{{m},\"messages\":[{{\"role\":\"user\",\"content\":[7]}}]}}").into_bytes()),
        ("data url not base64", format!("{{{m},\"messages\":[{{\"role\":\"user\",\"content\":[{{\"type\":\"image_url\",\"image_url\":{{\"url\":\"data:image/png;base64,@@not base64@@\"}}}}]}}]}}").into_bytes()),
        ("data url without comma", format!("{{{m},\"messages\":[{{\"role\":\"user\",\"content\":[{{\"type\":\"image_url\",\"image_url\":{{\"url\":\"data:image/png;base64\"}}}}]}}]}}").into_bytes()),
        ("image_url a number", format!("{{{m},\"messages\":[{{\"role\":\"user\",\"content\":[{{\"type\":\"image_url\",\"image_url\":9}}]}}]}}").into_bytes()),
        ("temperature a string", format!("{{{m},{u},\"temperature\":\"hot\"}}").into_bytes()),
        ("max_tokens a string", format!("{{{m},{u},\"max_tokens\":\"many\"}}").into_bytes()),
        ("stream a string", format!("{{{m},{u},\"stream\":\"yes\"}}").into_bytes()),
        ("tools a string", format!("{{{m},{u},\"tools\":\"x\"}}").into_bytes()),
        ("tool without function", format!("{{{m},{u},\"tools\":[{{\"type\":\"function\"}}]}}").into_bytes()),
        ("tool call args not JSON", format!("{{{m},\"messages\":[{{\"role\":\"assistant\",\"tool_calls\":[{{\"id\":\"1\",\"type\":\"function\",\"function\":{{\"name\":\"f\",\"arguments\":\"{{nope\"}}}}]}}]}}").into_bytes()),
    ];
    let mut outcomes = Vec::new();
    for (name, body) in &cases {
        let r = call(
            &gw,
            Method::POST,
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
        outcomes.push((*name, r.status.as_u16()));
        assert!(
            r.status.is_client_error(),
            "{name}: {} {}",
            r.status,
            r.text()
        );
        assert_openai_error(&r, r.status.as_u16());
    }
    assert!(outcomes.iter().all(|(_, s)| *s == 400), "{outcomes:?}");
    // Odd but well-typed values are the model's business: passed on, answered.
    for extra in [
        r#""temperature":1e308"#,
        r#""max_tokens":18446744073709551616"#,
        r#""n":1,"top_p":-0.0"#,
        r#""stop":[],"user":"x","metadata":{"a":[null,true]}"#,
    ] {
        let body = format!("{{{m},{u},{extra}}}");
        let r = call(
            &gw,
            Method::POST,
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "{extra}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.json().is_object());
    }
    // Embeddings and native routes with broken bodies.
    let r = call(
        &gw,
        Method::POST,
        "/v1/embeddings",
        &[("content-type", "application/json")],
        "{\"input\":",
    )
    .await;
    assert_openai_error(&r, 400);
    let r = call(
        &gw,
        Method::POST,
        "/v1/embeddings",
        &[("content-type", "application/json")],
        r#"{"model":"gemini-embedding-001","input":[[[1]]]}"#,
    )
    .await;
    assert_openai_error(&r, 400);
    let r = call(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        &[("x-goog-api-key", TOK)],
        &b"\xff\xfe{"[..],
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.text());
    assert_google_error(&r, r.status.as_u16());
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn model_names_and_paths_never_reach_another_upstream_path() {
    let _g = GATE.read().await;
    let gw = boot(&[]).await;
    for model in [
        "a/b",
        "../../v1beta/files",
        "..",
        "x?alt=sse",
        "x#frag",
        "a%2Fb",
        "%2e%2e",
        "a b",
        "a\nb",
        "a\\b",
        "x:streamGenerateContent",
        "models/../x",
        "https://evil.example/",
        "",
    ] {
        let r = chat(
            &gw,
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_openai_error(&r, 400);
        let r = call(
            &gw,
            Method::POST,
            "/v1/embeddings",
            &[],
            serde_json::to_vec(&json!({"model": model, "input": "x"})).unwrap(),
        )
        .await;
        assert_openai_error(&r, 400);
    }
    assert!(
        gw.state().requests().is_empty(),
        "no bad model reached upstream"
    );

    // Native paths: traversal, escapes and smuggled queries are refused as sent.
    for path in [
        "/v1beta/models/../../etc/passwd",
        "/v1beta/models/..%2F..%2Ffiles",
        "/v1beta/models/%2e%2e/files",
        "/v1beta/models/a%3Fb:generateContent",
        "/v1beta/models/a%23b:generateContent",
        "/v1beta/models/a%00b:generateContent",
        "/gemini/v1beta/models/x/../../y:generateContent",
        "/v1beta/models/gemini-2.5-flash:generateContent/..",
    ] {
        let out = raw(
            gw.addr,
            head("POST", path, "Content-Length: 2\r\nConnection: close\r\n")
                .replace("\r\n\r\n", "\r\n\r\n{}")
                .as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(
            statuses(&out),
            vec![400],
            "{path}: {}",
            String::from_utf8_lossy(&out)
        );
        let v: Value = serde_json::from_str(&first_body(&out)).unwrap();
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{path}: {v}");
    }
    // `/openai/v1` must be followed by a path of its own.
    let r = call(
        &gw,
        Method::GET,
        "/openai/v1@evil.example/models",
        &[],
        Bytes::new(),
    )
    .await;
    assert_openai_error(&r, 404);
    // A space (or a control byte) in the request target is refused by the HTTP parser.
    for target in [
        "/v1beta/models/a b:generateContent",
        "/v1beta/models/a\x01b:generateContent",
    ] {
        let out = raw(
            gw.addr,
            head("POST", target, "Content-Length: 0\r\nConnection: close\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(
            statuses(&out),
            vec![400],
            "{target:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    assert!(
        gw.state().requests().is_empty(),
        "no bad path reached upstream: {:?}",
        gw.state()
            .requests()
            .iter()
            .map(|r| &r.path)
            .collect::<Vec<_>>()
    );
    // A raw `#` starts a fragment, which the HTTP parser drops: what goes
    // upstream is the parsed path, nothing from after the `#`.
    let out = raw(
        gw.addr,
        head(
            "POST",
            "/v1beta/models/x#/../../files:generateContent",
            "Content-Length: 0\r\nConnection: close\r\n",
        )
        .as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(
        statuses(&out).first().is_some_and(|s| *s < 500),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let seen: Vec<String> = gw
        .state()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(seen, vec!["/v1beta/models/x".to_string()]);
    gw.state().clear();

    // An absolute-form target names another host: the request still goes to
    // BASE_URL's host (the fake), never to the named one.
    let body = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    let req = format!(
        "POST http://169.254.169.254/v1beta/models/gemini-2.5-flash:generateContent?key={TOK}&%6Bey={TOK}&alt=json HTTP/1.1\r\nHost: 169.254.169.254\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let out = raw(gw.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        statuses(&out),
        vec![200],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(!String::from_utf8_lossy(&out).contains("CANARY"));
    let seen = gw.state().requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        seen[0].query.as_deref(),
        Some("alt=json"),
        "the credential (even escaped) is removed from the query"
    );
    assert!(
        KEYS.contains(&seen[0].api_key.as_deref().unwrap()),
        "a pool key went upstream"
    );
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn raw_http_edge_cases() {
    let _g = GATE.read().await;
    let gw = boot(&[]).await;
    let chat_body = serde_json::to_string(&ask("hi")).unwrap();

    // HTTP/1.0: answered, then closed.
    let out = raw(
        gw.addr,
        b"GET /health HTTP/1.0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        out.starts_with(b"HTTP/1.0 200") || out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let out = raw(gw.addr, format!("POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer {TOK}\r\nContent-Length: {}\r\n\r\n{chat_body}", chat_body.len()).as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        statuses(&out),
        vec![200],
        "{}",
        String::from_utf8_lossy(&out)
    );
    // HTTP/1.0 has no chunked encoding: refused.
    let out = raw(
        gw.addr,
        b"POST /v1/chat/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        statuses(&out),
        vec![400],
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Pipelining: three requests in one write, three answers in order.
    let pipelined = format!(
        "GET /health HTTP/1.1\r\nHost: gw\r\n\r\n{}{}GET /nope HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        head(
            "POST",
            "/v1/chat/completions",
            &format!("Content-Length: {}\r\n", chat_body.len())
        ),
        chat_body,
    );
    let out = raw(gw.addr, pipelined.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        statuses(&out),
        vec![200, 200, 404],
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Transfer-Encoding tricks: refused, or read per RFC 9112 (chunked wins);
    // either way exactly the requests the client framed reach the fake.
    gw.state().clear();
    let cl_te = format!(
        "{}5\r\nhello\r\n0\r\n\r\n",
        head(
            "POST",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        )
    );
    let out = raw(gw.addr, cl_te.as_bytes(), Duration::from_secs(3)).await;
    let st = statuses(&out);
    assert_eq!(st.len(), 1, "{}", String::from_utf8_lossy(&out));
    let seen = gw.state().requests();
    assert!(seen.len() <= 1);
    if let Some(r) = seen.first() {
        assert_eq!(
            &r.body[..],
            b"hello",
            "the chunked body, not the Content-Length one"
        );
    }
    // A smuggled second request after a chunked body is just the next
    // pipelined request on this connection, answered by the gateway itself.
    gw.state().clear();
    let smuggle = format!(
        "{}0\r\n\r\nGET /v1beta/models/smuggled HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        head(
            "POST",
            "/v1/chat/completions",
            "Content-Length: 60\r\nTransfer-Encoding: chunked\r\n"
        )
    );
    let out = raw(gw.addr, smuggle.as_bytes(), Duration::from_secs(3)).await;
    // Both framings at once: hyper reads it chunked and closes after the answer.
    assert_eq!(
        statuses(&out),
        vec![400],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        gw.state()
            .requests()
            .iter()
            .all(|r| !r.path.contains("smuggled"))
    );
    for (name, bad) in [
        (
            "te not chunked last",
            "Transfer-Encoding: chunked, identity\r\n",
        ),
        ("te unknown", "Transfer-Encoding: xchunked\r\n"),
        (
            "two content lengths",
            "Content-Length: 2\r\nContent-Length: 3\r\n",
        ),
        ("content length sign", "Content-Length: +2\r\n"),
        ("content length list", "Content-Length: 2, 3\r\n"),
        ("obs-fold", "X-A: a\r\n b\r\n"),
        ("space before colon", "Content-Length : 2\r\n"),
    ] {
        let out = raw(
            gw.addr,
            format!(
                "{}{{}}",
                head(
                    "POST",
                    "/v1/chat/completions",
                    &format!("{bad}Connection: close\r\n")
                )
            )
            .as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(
            statuses(&out),
            vec![400],
            "{name}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    // Garbage instead of HTTP; invalid bytes in the target; a bad chunk size.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"GET /\xff\xfe HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let out = raw(gw.addr, junk, Duration::from_secs(3)).await;
        let st = statuses(&out);
        assert!(st.is_empty() || st.iter().all(|s| (400..=505).contains(s)), "{}", String::from_utf8_lossy(&out));
    }
    // Invalid UTF-8 in a header value: not a valid token, 401.
    let out = raw(gw.addr, b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n", Duration::from_secs(3)).await;
    assert_eq!(
        statuses(&out),
        vec![401],
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Duplicate credentials: the first one counts, consistently.
    let dup = format!(
        "GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer wrong\r\nAuthorization: Bearer {TOK}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        statuses(&raw(gw.addr, dup.as_bytes(), Duration::from_secs(3)).await),
        vec![401]
    );
    let dup = format!(
        "GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOK}\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        statuses(&raw(gw.addr, dup.as_bytes(), Duration::from_secs(3)).await),
        vec![200]
    );
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn remote_images_are_bounded_and_never_private_by_default() {
    let _g = GATE.read().await;
    // A tiny image server on loopback: counts its connections.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            h.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = read_request(&mut s).await;
                let png = [0x89u8; 5000];
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n",
                    png.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&png).await;
            });
        }
    });
    let with_image = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": format!("http://{addr}/cat.png")}}
    ]}]});

    // Loopback is private: refused without a connection.
    let gw = boot(&[]).await;
    let r = chat(&gw, &with_image).await;
    assert_openai_error(&r, 400);
    assert!(r.text().contains("private address"), "{}", r.text());
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    for url in [
        "file:///etc/passwd",
        "http://[::1]:1/x",
        "http://0.0.0.0:1/x",
        "http://169.254.169.254/latest",
    ] {
        let r = chat(&gw, &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})).await;
        assert_openai_error(&r, 400);
    }
    assert!(gw.state().requests().is_empty());
    gw.shutdown().await;

    // Allowed, but larger than MAX_FETCH_BYTES: 400.
    let gw = boot(&[("ALLOW_PRIVATE_FETCH", "true"), ("MAX_FETCH_BYTES", "1000")]).await;
    let r = chat(&gw, &with_image).await;
    assert_openai_error(&r, 400);
    assert!(r.text().contains("MAX_FETCH_BYTES"), "{}", r.text());
    assert!(gw.state().requests().is_empty());
    gw.shutdown().await;

    // Within the limit: inlined for Gemini.
    let gw = boot(&[
        ("ALLOW_PRIVATE_FETCH", "true"),
        ("MAX_FETCH_BYTES", "10000"),
    ])
    .await;
    assert_eq!(chat(&gw, &with_image).await.status, StatusCode::OK);
    let sent: Value = serde_json::from_slice(&gw.state().requests()[0].body).unwrap();
    assert!(sent.to_string().contains("inlineData"), "{sent}");
    alive(&gw).await;
    gw.shutdown().await;
    server.abort();
}

// ---------------------------------------------------------------------------
// Slow and greedy clients
// ---------------------------------------------------------------------------

#[tokio::test]
async fn slow_clients_are_cut_off_after_client_timeout() {
    let _g = GATE.read().await;
    let gw = boot(&[("CLIENT_TIMEOUT", "1")]).await;
    let limit = Duration::from_millis(2500);

    // Connects and sends nothing; half an HTTP/2 preface; a head dribbled a
    // byte at a time: all closed soon after CLIENT_TIMEOUT.
    for first in [&b""[..], b"PRI * HTTP/2.0\r\n", b"G"] {
        let t = Instant::now();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(first).await.unwrap();
        let (_, closed) = read_until_closed(&mut s, limit).await;
        assert!(
            closed,
            "{:?}: still open after {:?}",
            String::from_utf8_lossy(first),
            t.elapsed()
        );
    }
    let t = Instant::now();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let dribble =
        b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for b in dribble {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        if t.elapsed() > limit {
            break;
        }
    }
    if !closed {
        closed = read_until_closed(&mut s, Duration::from_millis(500))
            .await
            .1;
    }
    assert!(closed, "a dribbled head is cut off");

    // A body that does not arrive in time: 408 in the route's format.
    let t = Instant::now();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head("POST", "/v1/chat/completions", "Content-Length: 100\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(b"{\"model\":").await.unwrap();
    let (out, _) = read_until_closed(&mut s, limit).await;
    assert_eq!(
        statuses(&out),
        vec![408],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(first_body(&out).contains("did not arrive in time"));
    assert!(t.elapsed() < limit);
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        head(
            "POST",
            "/v1beta/models/m:generateContent",
            &format!("x-goog-api-key: {TOK}\r\nContent-Length: 100\r\n"),
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (out, _) = read_until_closed(&mut s, limit).await;
    assert_eq!(
        statuses(&out),
        vec![408],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(first_body(&out).contains("DEADLINE_EXCEEDED"));

    // An idle keep-alive connection is closed too.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let (out, closed) = read_until_closed(&mut s, limit).await;
    assert_eq!(statuses(&out), vec![200]);
    assert!(closed, "idle keep-alive connection closed");
    assert!(gw.state().requests().is_empty());
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_and_established_ones_work() {
    let _g = GATE.read().await;
    let gw = boot(&[("MAX_CONNECTIONS", "2"), ("CLIENT_TIMEOUT", "5")]).await;
    let get = b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n";
    async fn one(s: &mut TcpStream, req: &[u8], wait: Duration) -> Option<u16> {
        s.write_all(req).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(wait, s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        statuses(&buf[..n]).first().copied()
    }
    // Two busy connections: each in the middle of sending a request body.
    let body = br#"{"model":"x"}"#;
    let post = head(
        "POST",
        "/v1/chat/completions",
        &format!("Content-Length: {}\r\n", body.len()),
    );
    let mut a = TcpStream::connect(gw.addr).await.unwrap();
    let mut b = TcpStream::connect(gw.addr).await.unwrap();
    for s in [&mut a, &mut b] {
        s.write_all(post.as_bytes()).await.unwrap();
        s.write_all(&body[..9]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third waits (the kernel accepted it, the gateway does not serve it
    // yet): no connection is idle, none is given up.
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(
        one(&mut c, get, Duration::from_millis(800)).await,
        None,
        "third connection served past MAX_CONNECTIONS"
    );
    // Established connections keep working.
    assert_eq!(
        one(&mut a, &body[9..], Duration::from_secs(2)).await,
        Some(400)
    );
    // `a` is idle now: it makes room for the waiting one, while
    // `b`, still busy, is left alone.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(statuses(&buf[..n]), vec![200]);
    let (_, closed) = read_until_closed(&mut a, Duration::from_secs(1)).await;
    assert!(closed, "the idle connection made room");
    assert_eq!(
        one(&mut b, &body[9..], Duration::from_secs(2)).await,
        Some(400)
    );
    assert_eq!(one(&mut b, get, Duration::from_secs(2)).await, Some(200));
    drop((b, c));
    alive(&gw).await;
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// An evil upstream
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Evil {
    /// Read the request, then reset the connection: no headers.
    ResetBeforeHeaders,
    /// 200 headers with a Content-Length, part of the body, reset.
    ResetAfterHeaders,
    /// An SSE stream: two events, then reset.
    ResetMidStream,
    /// Bytes that are not HTTP.
    Garbage,
    /// Accept, read, never answer (until the gateway gives up).
    Silent,
    /// Headers, then nothing.
    StallAfterHeaders,
    /// Headers, then an event every 20 ms, forever (until the gateway hangs up).
    Endless,
    /// Headers, then 64 KiB chunks as fast as the gateway takes them.
    Firehose,
}

/// A raw TCP upstream that misbehaves on purpose, counting connections.
struct EvilUpstream {
    addr: SocketAddr,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    /// Connections the gateway still holds open.
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EvilUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const EVENT: &[u8] = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tick \"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n";

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

impl EvilUpstream {
    async fn start(mode: Evil) -> EvilUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (acc, op) = (accepted.clone(), open.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                op.fetch_add(1, Ordering::SeqCst);
                let op = op.clone();
                tokio::spawn(async move {
                    evil_conn(s, mode).await;
                    op.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        EvilUpstream {
            addr,
            accepted,
            open,
            task,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }
}

/// Read one request (head and Content-Length body).
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
    }
}

/// Wait until the gateway closes its side.
async fn until_eof(s: &mut TcpStream) {
    let mut tmp = [0u8; 1024];
    while let Ok(n) = s.read(&mut tmp).await {
        if n == 0 {
            return;
        }
    }
}

fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn evil_conn(mut s: TcpStream, mode: Evil) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    let sse = req.contains("alt=sse");
    let stream_head =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    let json_head =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let head: &[u8] = if sse { stream_head } else { json_head };
    match mode {
        Evil::ResetBeforeHeaders => reset(s),
        Evil::ResetAfterHeaders => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"candidates\":[").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(s);
        }
        Evil::ResetMidStream => {
            let _ = s.write_all(head).await;
            let _ = s.write_all(&chunk(EVENT)).await;
            let _ = s.write_all(&chunk(EVENT)).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            reset(s);
        }
        Evil::Garbage => {
            let _ = s
                .write_all(b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Evil::Silent => until_eof(&mut s).await,
        Evil::StallAfterHeaders => {
            let _ = s.write_all(head).await;
            until_eof(&mut s).await;
        }
        Evil::Endless => {
            if s.write_all(head).await.is_err() {
                return;
            }
            let piece = if sse { chunk(EVENT) } else { chunk(b" ") };
            if !sse {
                let _ = s.write_all(&chunk(b"{\"candidates\":[")).await;
            }
            loop {
                if s.write_all(&piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Evil::Firehose => {
            if s.write_all(head).await.is_err() {
                return;
            }
            let big = chunk(&EVENT.repeat(65536 / EVENT.len()));
            while s.write_all(&big).await.is_ok() {}
        }
    }
}

/// A gateway in front of an evil upstream (one attempt, short timeouts).
async fn boot_evil(mode: Evil, extra: &[(&str, &str)]) -> (Gw, EvilUpstream) {
    let evil = EvilUpstream::start(mode).await;
    let base = evil.base_url();
    let mut vars: Vec<(&str, &str)> = vec![
        ("BASE_URL", &base),
        ("MAX_RETRIES", "0"),
        ("TIME_OUT", "1"),
        ("STREAM_IDLE_TIMEOUT", "1"),
    ];
    vars.extend_from_slice(extra);
    (boot(&vars).await, evil)
}

async fn native_call(gw: &Gw, stream: bool) -> Answer {
    let path = if stream {
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    } else {
        "/v1beta/models/gemini-2.5-flash:generateContent"
    };
    call(
        gw,
        Method::POST,
        path,
        &[
            ("x-goog-api-key", TOK),
            ("content-type", "application/json"),
        ],
        r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
    )
    .await
}

#[tokio::test]
async fn upstream_faults_become_one_explicit_error() {
    let _g = GATE.read().await;
    for mode in [Evil::ResetBeforeHeaders, Evil::Garbage] {
        let (gw, evil) = boot_evil(mode, &[]).await;
        let r = chat(&gw, &ask("hi")).await;
        assert_openai_error(&r, 502);
        assert_eq!(
            r.json()["error"]["code"],
            "upstream_unreachable",
            "{mode:?}"
        );
        assert_eq!(
            evil.accepted.load(Ordering::SeqCst),
            1,
            "MAX_RETRIES=0: one attempt"
        );
        let r = chat(&gw, &ask_stream("hi")).await;
        assert_openai_error(&r, 502);
        let r = native_call(&gw, false).await;
        assert_google_error(&r, 502);
        alive(&gw).await;
        gw.shutdown().await;
    }

    // Headers, then the connection breaks.
    let (gw, _evil) = boot_evil(Evil::ResetAfterHeaders, &[]).await;
    let r = chat(&gw, &ask("hi")).await;
    assert_openai_error(&r, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_error");
    alive(&gw).await;
    gw.shutdown().await;

    // Mid-stream: the events so far, then one error event, then [DONE].
    let (gw, _evil) = boot_evil(Evil::ResetMidStream, &[]).await;
    let r = chat(&gw, &ask_stream("hi")).await;
    assert_eq!(r.status, StatusCode::OK);
    let ev = sse_events(&r.text());
    assert_eq!(
        ev.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        r.text()
    );
    let errors: Vec<Value> = ev
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.text());
    assert_eq!(errors[0]["error"]["code"], "upstream_error");
    assert_eq!(ev.iter().filter(|e| e.contains("tick")).count(), 2);
    let r = native_call(&gw, true).await;
    let ev = sse_events(&r.text());
    assert_eq!(
        ev.iter().filter(|e| e.contains("tick")).count(),
        2,
        "{}",
        r.text()
    );
    let last: Value = serde_json::from_str(ev.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], 502, "{last}");
    alive(&gw).await;
    gw.shutdown().await;

    // Accepts and never answers: 504 after TIME_OUT.
    let (gw, _evil) = boot_evil(Evil::Silent, &[]).await;
    let t = Instant::now();
    let r = chat(&gw, &ask("hi")).await;
    assert_openai_error(&r, 504);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let r = native_call(&gw, false).await;
    assert_google_error(&r, 504);
    alive(&gw).await;
    gw.shutdown().await;

    // Headers, then silence: a plain answer gives up after TIME_OUT, a stream
    // after STREAM_IDLE_TIMEOUT with an error event.
    let (gw, _evil) = boot_evil(Evil::StallAfterHeaders, &[]).await;
    let t = Instant::now();
    let r = chat(&gw, &ask("hi")).await;
    assert_openai_error(&r, 504);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Nothing reached the client yet, so a stream silent before its first
    // event is retried and, with no key left, answered with an HTTP 504.
    let r = chat(&gw, &ask_stream("hi")).await;
    assert_openai_error(&r, 504);
    assert!(r.text().contains("STREAM_IDLE_TIMEOUT"), "{}", r.text());
    // The same on the native route: retried, then an HTTP 504 in Google's format.
    let r = native_call(&gw, true).await;
    assert_google_error(&r, 504);
    assert!(r.text().contains("STREAM_IDLE_TIMEOUT"), "{}", r.text());
    // A native plain answer that stalls is read within TIME_OUT, then
    // answered 504 in Google's format.
    let t = Instant::now();
    let r = native_call(&gw, false).await;
    assert_google_error(&r, 504);
    assert!(r.text().contains("TIME_OUT"), "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3));
    alive(&gw).await;
    gw.shutdown().await;

    // Never ends: a plain answer is bounded by TIME_OUT.
    let (gw, _evil) = boot_evil(Evil::Endless, &[]).await;
    let t = Instant::now();
    let r = chat(&gw, &ask("hi")).await;
    assert_openai_error(&r, 504);
    assert!(t.elapsed() < Duration::from_secs(3));
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn fake_hang_cut_and_slow_keys() {
    let _g = GATE.read().await;
    let gw = boot(&[
        ("API_KEYS", r#"["hang-KEYCANARY-01"]"#),
        ("TIME_OUT", "1"),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    let t = Instant::now();
    assert_openai_error(&chat(&gw, &ask("hi")).await, 504);
    assert!(t.elapsed() < Duration::from_secs(3));
    alive(&gw).await;
    gw.shutdown().await;

    // A hanging key among good ones: retried elsewhere, answered 200.
    let gw = boot(&[
        ("API_KEYS", r#"["hang-KEYCANARY-01","good-KEYCANARY-02"]"#),
        ("TIME_OUT", "1"),
        ("MAX_RETRIES", "1"),
    ])
    .await;
    for _ in 0..4 {
        assert_eq!(chat(&gw, &ask("hi")).await.status, StatusCode::OK);
    }
    gw.shutdown().await;

    let gw = boot(&[
        ("API_KEYS", r#"["cut-KEYCANARY-01"]"#),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    let r = chat(&gw, &ask_stream("[[events=5 gap=10]] hi")).await;
    let ev = sse_events(&r.text());
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        ev.iter().filter(|e| e.contains("\"error\"")).count(),
        1,
        "{}",
        r.text()
    );
    assert_openai_error(&chat(&gw, &ask("hi")).await, 502);
    alive(&gw).await;
    gw.shutdown().await;

    // Slower than TIME_OUT: 504; within it: answered.
    let gw = boot(&[
        ("API_KEYS", r#"["slow-KEYCANARY-01"]"#),
        ("TIME_OUT", "0.5"),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    assert_eq!(chat(&gw, &ask("hi")).await.status, StatusCode::OK);
    gw.state()
        .set_key("slow-KEYCANARY-01", KeyBehavior::Slow { ms: 1500 });
    assert_openai_error(&chat(&gw, &ask("hi")).await, 504);
    alive(&gw).await;
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Cancellation and slow readers
// ---------------------------------------------------------------------------

/// Wait until `cond` holds, up to `limit`; returns how long it took.
async fn within(limit: Duration, cond: impl Fn() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_call() {
    let _g = GATE.read().await;
    // Waiting for headers (TIME_OUT is long): the client leaves, the gateway hangs up.
    let (gw, evil) = boot_evil(Evil::Silent, &[("TIME_OUT", "30")]).await;
    let body = serde_json::to_string(&ask("hi")).unwrap();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        format!(
            "{}{body}",
            head(
                "POST",
                "/v1/chat/completions",
                &format!("Content-Length: {}\r\n", body.len())
            )
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert!(
        within(Duration::from_secs(2), || evil.open.load(Ordering::SeqCst)
            == 1)
        .await
        .is_some()
    );
    drop(s);
    let took = within(Duration::from_secs(2), || {
        evil.open.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(took.is_some(), "the upstream call outlived its client");
    // Same on a native route.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        head(
            "POST",
            "/v1beta/models/m:generateContent",
            &format!("x-goog-api-key: {TOK}\r\nContent-Length: 2\r\n"),
        )
        .replace("\r\n\r\n", "\r\n\r\n{}")
        .as_bytes(),
    )
    .await
    .unwrap();
    assert!(
        within(Duration::from_secs(2), || evil.open.load(Ordering::SeqCst)
            == 1)
        .await
        .is_some()
    );
    drop(s);
    assert!(
        within(Duration::from_secs(2), || evil.open.load(Ordering::SeqCst)
            == 0)
        .await
        .is_some()
    );
    gw.shutdown().await;

    // Mid-stream: the client reads a little and leaves; the endless upstream
    // stream is dropped, on the OpenAI and on the native route.
    let (gw, evil) = boot_evil(Evil::Endless, &[("STREAM_IDLE_TIMEOUT", "30")]).await;
    let body = serde_json::to_string(&ask_stream("hi")).unwrap();
    for req in [
        format!(
            "{}{body}",
            head(
                "POST",
                "/v1/chat/completions",
                &format!("Content-Length: {}\r\n", body.len())
            )
        ),
        head(
            "POST",
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            &format!("x-goog-api-key: {TOK}\r\nContent-Length: 2\r\n"),
        )
        .replace("\r\n\r\n", "\r\n\r\n{}"),
    ] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("tick") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(evil.open.load(Ordering::SeqCst), 1);
        drop(s);
        let took = within(Duration::from_secs(3), || {
            evil.open.load(Ordering::SeqCst) == 0
        })
        .await;
        assert!(took.is_some(), "the upstream stream outlived its client");
        println!(
            "upstream stream dropped {:?} after the client left",
            took.unwrap()
        );
    }
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    let _g = GATE.read().await;
    let (gw, evil) = boot_evil(
        Evil::Firehose,
        &[("CLIENT_TIMEOUT", "1"), ("STREAM_IDLE_TIMEOUT", "30")],
    )
    .await;
    for path in [
        "/v1beta/models/m:streamGenerateContent?alt=sse",
        "/v1beta/models/m:generateContent",
    ] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            head(
                "POST",
                path,
                &format!("x-goog-api-key: {TOK}\r\nContent-Length: 2\r\n"),
            )
            .replace("\r\n\r\n", "\r\n\r\n{}")
            .as_bytes(),
        )
        .await
        .unwrap();
        // Never read: buffers fill, the gateway's writes stall, it hangs up
        // after CLIENT_TIMEOUT and drops the upstream stream.
        assert!(
            within(Duration::from_secs(2), || evil.open.load(Ordering::SeqCst)
                == 1)
            .await
            .is_some()
        );
        let took = within(Duration::from_secs(8), || {
            evil.open.load(Ordering::SeqCst) == 0
        })
        .await;
        assert!(
            took.is_some(),
            "{path}: a client that never reads holds the upstream forever"
        );
        drop(s);
    }
    alive(&gw).await;
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Load: keys dying, shutdown, leaks
// ---------------------------------------------------------------------------

/// Read a streamed chat answer: Ok(text) when it completed, Err(message) for
/// an explicit error event. Panics on anything else (a silent cut, two ends).
fn judge_stream(body: &str) -> Result<String, String> {
    let ev = sse_events(body);
    assert_eq!(
        ev.last().map(String::as_str),
        Some("[DONE]"),
        "no [DONE]: {body}"
    );
    assert_eq!(ev.iter().filter(|e| *e == "[DONE]").count(), 1, "{body}");
    let mut text = String::new();
    let mut finishes = 0;
    for e in &ev[..ev.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        if let Some(err) = v.get("error") {
            return Err(err["message"].as_str().unwrap().to_string());
        }
        for c in v["choices"].as_array().unwrap() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            finishes += usize::from(!c["finish_reason"].is_null());
        }
    }
    assert_eq!(finishes, 1, "{body}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_dying_under_64_clients_every_request_answered_once() {
    let _g = GATE.read().await;
    let keys = [
        "k1-KEYCANARY-aaaa",
        "k2-KEYCANARY-bbbb",
        "k3-KEYCANARY-cccc",
        "k4-KEYCANARY-dddd",
        "k5-KEYCANARY-eeee",
        "k6-KEYCANARY-ffff",
    ];
    let keys_json = list(&keys);
    let gw = Arc::new(
        boot(&[
            ("API_KEYS", &keys_json),
            ("MAX_RETRIES", "5"),
            ("MAX_FAILURES", "1000"),
        ])
        .await,
    );
    const CLIENTS: usize = 64;
    const EACH: usize = 30;
    let sent = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (gw, sent, done, results) = (gw.clone(), sent.clone(), done.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let stream = (c + i) % 3 == 0;
                let body = if stream {
                    ask_stream("[[events=3 gap=1]] hi")
                } else {
                    ask("hi")
                };
                sent.fetch_add(1, Ordering::SeqCst);
                let r = chat(&gw, &body).await;
                let verdict = match (r.status.as_u16(), stream) {
                    (200, true) => match judge_stream(&r.text()) {
                        Ok(_) => "stream ok".to_string(),
                        Err(m) => format!("stream error: {m}"),
                    },
                    (200, false) => {
                        let v = r.json();
                        assert_eq!(v["choices"].as_array().unwrap().len(), 1, "{v}");
                        assert!(v["choices"][0]["message"]["content"].is_string());
                        "ok".to_string()
                    }
                    (s, _) => {
                        assert_openai_error(&r, s);
                        format!("error {s}")
                    }
                };
                *results.lock().unwrap().entry(verdict).or_default() += 1;
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Keys die while the load runs: two invalid, one suspended, one overloaded, one cut.
    let st = gw.state().clone();
    let total = CLIENTS * EACH;
    within(Duration::from_secs(30), || {
        done.load(Ordering::SeqCst) >= total / 4
    })
    .await;
    st.set_key(keys[0], KeyBehavior::Invalid);
    st.set_key(keys[1], KeyBehavior::Suspended);
    within(Duration::from_secs(30), || {
        done.load(Ordering::SeqCst) >= total / 2
    })
    .await;
    st.set_key(keys[2], KeyBehavior::Overloaded);
    st.set_key(keys[3], KeyBehavior::CutAfter { events: 1 });
    st.set_key(keys[4], KeyBehavior::Expired);
    for t in tasks {
        t.await.expect("no client task panicked");
    }
    let results = results.lock().unwrap().clone();
    println!("keys dying under load: {results:?}");
    let answered: usize = results.values().sum();
    assert_eq!(sent.load(Ordering::SeqCst), total);
    assert_eq!(answered, total, "requests in = answers out");
    // Plain calls are retried on a live key; only streams cut after their
    // first byte may end in an (explicit) error event.
    let plain_ok = results.get("ok").copied().unwrap_or(0);
    let stream_ok = results.get("stream ok").copied().unwrap_or(0);
    let stream_err: usize = results
        .iter()
        .filter(|(k, _)| k.starts_with("stream error"))
        .map(|(_, v)| v)
        .sum();
    let plain_total = (0..CLIENTS)
        .flat_map(|c| (0..EACH).map(move |i| (c + i) % 3 != 0))
        .filter(|p| *p)
        .count();
    assert_eq!(plain_ok, plain_total, "{results:?}");
    assert_eq!(stream_ok + stream_err, total - plain_total, "{results:?}");
    // The gateway counted every one of them once.
    let snap = gw.app.stats.snapshot();
    assert_eq!(
        snap["total_requests"], total as u64,
        "{}",
        snap["by_status"]
    );
    let counts = gw.app.pool.counts();
    assert_eq!(counts.disabled, 3, "{counts:?}");
    let gw = Arc::try_unwrap(gw).ok().unwrap();
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_finish_and_refuses_new() {
    let _g = GATE.read().await;
    let gw = boot(&[
        ("API_KEYS", r#"["slow-KEYCANARY-01"]"#),
        ("SHUTDOWN_GRACE", "5"),
    ])
    .await;
    gw.state()
        .set_key("slow-KEYCANARY-01", KeyBehavior::Slow { ms: 600 });
    let addr = gw.addr;
    let url = gw.url("/v1/chat/completions");
    let inflight: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let body = if i % 2 == 0 {
                    ask("hi")
                } else {
                    ask_stream("[[events=4 gap=100]] hi")
                };
                send(
                    Method::POST,
                    &url,
                    &[("authorization", &format!("Bearer {TOK}"))],
                    serde_json::to_vec(&body).unwrap(),
                )
                .await
            })
        })
        .collect();
    // An idle keep-alive connection, opened before shutdown.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert_eq!(statuses(&buf[..n]), vec![200]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let app = gw.app.clone();
    let stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(app.shutting_down.load(Ordering::SeqCst));
    // New connections are refused.
    match TcpStream::connect(addr).await {
        Err(_) => {}
        Ok(mut s) => {
            let _ = s
                .write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
                .await;
            let (out, _) = read_until_closed(&mut s, Duration::from_secs(2)).await;
            let st = statuses(&out);
            assert!(
                st.is_empty() || st == vec![503],
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    // The idle connection is closed, or answers 503.
    let _ = idle
        .write_all(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await;
    let (out, _) = read_until_closed(&mut idle, Duration::from_secs(2)).await;
    let st = statuses(&out);
    assert!(
        st.is_empty() || st == vec![503],
        "{}",
        String::from_utf8_lossy(&out)
    );
    // In-flight requests complete normally.
    for (i, t) in inflight.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        if i % 2 == 1 {
            assert_eq!(
                judge_stream(&r.text()).unwrap().split_whitespace().count(),
                4
            );
        }
    }
    stopping.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn shutdown_grace_bounds_a_request_that_never_ends() {
    let _g = GATE.read().await;
    let gw = boot(&[
        ("API_KEYS", r#"["hang-KEYCANARY-01"]"#),
        ("TIME_OUT", "30"),
        ("SHUTDOWN_GRACE", "0.5"),
    ])
    .await;
    let url = gw.url("/v1/chat/completions");
    let pending = tokio::spawn(async move {
        send(
            Method::POST,
            &url,
            &[("authorization", &format!("Bearer {TOK}"))],
            serde_json::to_vec(&ask("hi")).unwrap(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    gw.shutdown().await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
    pending.abort();
}

/// Sockets of this process that talk to (or listen on) one of `ports`.
fn sockets_on(ports: &[u16]) -> usize {
    let mut inodes: HashMap<u64, ()> = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port =
                |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap_or(""), 16).unwrap_or(0);
            if ports.contains(&port(f[1])) || ports.contains(&port(f[2])) {
                inodes.insert(f[9].parse().unwrap_or(0), ());
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .filter(|i| inodes.contains_key(i))
                .count()
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// `n` requests from `conc` clients, a mix of plain, streamed, native,
/// erroring and abandoned-mid-stream calls.
async fn mixed_load(gw: &Arc<Gw>, n: usize, conc: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(conc)
        .build_http::<Full<Bytes>>();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (gw, next, client) = (gw.clone(), next.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let (path, body, native) = match i % 6 {
                    0 | 1 => ("/v1/chat/completions", ask("hi"), false),
                    2 => ("/v1/chat/completions", ask_stream("[[events=3]] hi"), false),
                    3 => (
                        "/v1beta/models/gemini-2.5-flash:generateContent",
                        json!({"contents": [{"parts": [{"text": "hi"}]}]}),
                        true,
                    ),
                    4 => ("/v1/chat/completions", ask("[[status=400]]"), false),
                    _ => (
                        "/v1/chat/completions",
                        ask_stream("[[events=50 gap=2]] hi"),
                        false,
                    ),
                };
                let mut req =
                    http::Request::post(gw.url(path)).header("content-type", "application/json");
                req = if native {
                    req.header("x-goog-api-key", TOK)
                } else {
                    req.header("authorization", format!("Bearer {TOK}"))
                };
                let req = req
                    .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
                    .unwrap();
                let res = client.request(req).await.expect("answered");
                let status = res.status();
                let mut body = res.into_body();
                if i % 6 == 5 {
                    // Abandon the stream after its first chunk.
                    let _ = body.frame().await;
                    drop(body);
                    continue;
                }
                let bytes = body.collect().await.expect("whole body").to_bytes();
                let expect = if i % 6 == 4 { 400 } else { 200 };
                assert_eq!(
                    status.as_u16(),
                    expect,
                    "{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Resources of the process (gateway, fake and clients all live in it).
#[derive(Debug)]
struct Usage {
    fds: usize,
    sockets: usize,
    tasks: usize,
    rss_kib: u64,
}

async fn usage(gw: &Gw, ports: &[u16]) -> Usage {
    // The fake keeps the last 10,000 requests for assertions: not the gateway's memory.
    gw.state().clear();
    // Let closed connections finish closing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Usage {
        fds: open_fds(),
        sockets: sockets_on(ports),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        rss_kib: rss_kib(),
    }
}

/// Warm up (connection pools, allocator), then run `n` requests in two
/// halves: past the first half nothing may keep growing. A leak per request
/// (a task, a socket, a buffer per abandoned stream) would grow by hundreds;
/// pools may still settle by a few connections.
async fn leak_check(n: usize) {
    let _g = GATE.write().await;
    let gw = Arc::new(boot(&[]).await);
    let ports = [gw.addr.port(), gw.fake.addr.port()];
    let conc = 32;
    let warm = 2_000;
    mixed_load(&gw, warm, conc).await;
    let w = usage(&gw, &ports).await;
    let t = Instant::now();
    mixed_load(&gw, n / 2, conc).await;
    let a = usage(&gw, &ports).await;
    mixed_load(&gw, n - n / 2, conc).await;
    let b = usage(&gw, &ports).await;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "leak check: {n} requests in {secs:.1}s ({:.0}/s), after warm-up / half / all: fds {} / {} / {}; sockets {} / {} / {}; tasks {} / {} / {}; RSS {} / {} / {} MiB",
        n as f64 / secs,
        w.fds,
        a.fds,
        b.fds,
        w.sockets,
        a.sockets,
        b.sockets,
        w.tasks,
        a.tasks,
        b.tasks,
        w.rss_kib / 1024,
        a.rss_kib / 1024,
        b.rss_kib / 1024,
    );
    let slack = conc;
    assert!(
        b.sockets <= a.sockets + slack && b.sockets <= w.sockets + 2 * slack,
        "sockets grew: {w:?} {a:?} {b:?}"
    );
    assert!(
        b.fds <= a.fds + slack && b.fds <= w.fds + 2 * slack,
        "fds grew: {w:?} {a:?} {b:?}"
    );
    assert!(
        b.tasks <= a.tasks + slack && b.tasks <= w.tasks + 2 * slack,
        "tasks grew: {w:?} {a:?} {b:?}"
    );
    assert!(
        b.rss_kib <= a.rss_kib + 24 * 1024,
        "RSS grew: {w:?} {a:?} {b:?}"
    );
    let snap = gw.app.stats.snapshot();
    assert_eq!(
        snap["total_requests"],
        (n + warm) as u64,
        "every request counted once"
    );
    let gw = Arc::try_unwrap(gw).ok().unwrap();
    alive(&gw).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_socket_task_or_memory_leak_over_12k_requests() {
    leak_check(12_000).await;
}

/// The long run: `LEAK_REQUESTS=100000 cargo test --test hardening -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn no_leak_over_100k_requests() {
    let n = std::env::var("LEAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    leak_check(n).await;
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// The real binary at `LOG_LEVEL=debug`, with canary keys and tokens, through
/// good calls, bad keys, upstream errors that echo the key, streams, every
/// admin route and a shutdown: no full key or token in any log line, body
/// or header; the client's credential never reaches upstream; the client
/// never sees a pool key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak_from_the_binary() {
    let _g = GATE.read().await;
    let fake = fake_gemini::Fake::start().await.unwrap();
    let pool = [
        "suspended-POOLCANARY-111111",
        "bad-POOLCANARY-222222",
        "AIzaPOOLCANARY333333333333333333333333",
        "good-POOLCANARY-444444",
        "quota-POOLCANARY-555555",
    ];
    let token = "sk-CLIENTCANARY-666666";
    let admin = "adm-ADMINCANARY-777777";
    let backup = "backup-BACKUPCANARY-888888";
    let secrets = [&pool[..], &[token, admin, backup]].concat();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gemini-balance"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENV_FILE", "/nonexistent/.env")
        .env("API_KEYS", list(&pool))
        .env("ALLOWED_TOKENS", list(&[token]))
        .env("AUTH_TOKEN", admin)
        .env("BACKUP_API_KEYS", list(&[backup]))
        .env("BASE_URL", fake.base_url())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_LEVEL", "debug")
        .env("VERIFY_ON_START", "true")
        .env("CHECK_INTERVAL_HOURS", "0")
        .env("KEEPALIVE_MINUTES", "0")
        .env("MAX_BODY_BYTES", "2048")
        .env("SHUTDOWN_GRACE", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // Killed (by its id) if the test fails before the orderly shutdown below.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    let guard = KillOnDrop(child.id());
    let mut stdout = child.stdout.take().unwrap();
    let (log, reader) = common::blocking::collect_joinable(child.stderr.take().unwrap());
    // The listening line names the port.
    let addr = {
        let t = Instant::now();
        loop {
            let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
            if let Some(a) = text
                .split("listening on http://")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                break a.to_string();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no listening line: {text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let base = format!("http://{addr}");
    let bearer = format!("Bearer {token}");
    let admin_bearer = format!("Bearer {admin}");
    let json_ct = ("content-type", "application/json");
    let chat_body = serde_json::to_vec(&ask("hi")).unwrap();
    let native_body = br#"{"contents":[{"parts":[{"text":"hi"}]}]}"#.to_vec();
    type Req<'a> = (Method, String, Vec<(&'a str, String)>, Vec<u8>);
    let requests: Vec<Req> = vec![
        (Method::GET, "/health".into(), vec![], vec![]),
        (Method::GET, "/".into(), vec![], vec![]),
        (
            Method::POST,
            "/verify?format=json".into(),
            vec![("authorization", admin_bearer.clone())],
            vec![],
        ),
        (
            Method::POST,
            "/verify".into(),
            vec![("authorization", admin_bearer.clone())],
            vec![],
        ),
        (
            Method::POST,
            "/status/verify".into(),
            vec![("authorization", admin_bearer.clone())],
            vec![],
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![
                ("authorization", bearer.clone()),
                (json_ct.0, json_ct.1.into()),
            ],
            chat_body.clone(),
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![
                ("authorization", bearer.clone()),
                (json_ct.0, json_ct.1.into()),
            ],
            serde_json::to_vec(&ask_stream("[[events=3]] hi")).unwrap(),
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![("authorization", bearer.clone())],
            serde_json::to_vec(&ask("[[status=500]]")).unwrap(),
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![("authorization", bearer.clone())],
            serde_json::to_vec(&ask("[[status=400]]")).unwrap(),
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![("authorization", "Bearer sk-wrong-token".into())],
            chat_body.clone(),
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![("authorization", bearer.clone())],
            b"{not json".to_vec(),
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            vec![("authorization", bearer.clone())],
            vec![b'x'; 4096],
        ),
        (
            Method::GET,
            "/v1/models".into(),
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (
            Method::GET,
            "/v1/models/gemini-2.5-flash".into(),
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (
            Method::POST,
            "/v1/embeddings".into(),
            vec![("authorization", bearer.clone())],
            br#"{"model":"gemini-embedding-001","input":["a"]}"#.to_vec(),
        ),
        (
            Method::POST,
            format!("/v1beta/models/gemini-2.5-flash:generateContent?key={token}"),
            vec![(json_ct.0, json_ct.1.into())],
            native_body.clone(),
        ),
        (
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse".into(),
            vec![("x-goog-api-key", token.into())],
            native_body.clone(),
        ),
        (
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent".into(),
            vec![("authorization", bearer.clone())],
            native_body.clone(),
        ),
        (
            Method::GET,
            "/v1beta/models".into(),
            vec![("x-goog-api-key", token.into())],
            vec![],
        ),
        (
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent".into(),
            vec![("x-goog-api-key", "wrong-credential-value".into())],
            native_body.clone(),
        ),
        (
            Method::POST,
            "/openai/v1/chat/completions".into(),
            vec![
                ("authorization", bearer.clone()),
                (json_ct.0, json_ct.1.into()),
            ],
            chat_body.clone(),
        ),
        (
            Method::GET,
            "/status".into(),
            vec![("authorization", admin_bearer.clone())],
            vec![],
        ),
        (
            Method::GET,
            "/metrics".into(),
            vec![("authorization", admin_bearer.clone())],
            vec![],
        ),
        (
            Method::GET,
            "/status".into(),
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (Method::GET, "/dashboard".into(), vec![], vec![]),
        (
            Method::GET,
            "/nope".into(),
            vec![("authorization", bearer.clone())],
            vec![],
        ),
    ];
    let mut statuses_seen = Vec::new();
    for round in 0..2 {
        for (method, path, hdrs, body) in &requests {
            let h: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = send(method.clone(), &format!("{base}{path}"), &h, body.clone()).await;
            let text = a.text();
            for s in &secrets {
                assert!(
                    !text.contains(s),
                    "round {round}: {method} {path}: body holds a secret: {text}"
                );
                for (k, v) in &a.headers {
                    assert!(
                        !String::from_utf8_lossy(v.as_bytes()).contains(s),
                        "{path}: header {k} holds a secret"
                    );
                }
            }
            statuses_seen.push((path.clone(), a.status.as_u16()));
        }
    }
    // The calls did reach upstream, so the checks above meant something.
    assert!(
        statuses_seen
            .iter()
            .any(|(p, s)| p == "/v1/chat/completions" && *s == 200),
        "{statuses_seen:?}"
    );
    assert!(
        statuses_seen.iter().any(|(p, s)| p
            .starts_with("/v1beta/models/gemini-2.5-flash:generateContent?key")
            && *s == 200),
        "{statuses_seen:?}"
    );
    let recorded = fake.state.requests();
    assert!(recorded.len() > 20);
    // The fake saw pool keys only, in the header, and never the client's credential.
    for r in &recorded {
        let everything = format!(
            "{} {:?} {:?} {}",
            r.path,
            r.query,
            r.headers,
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            !everything.contains(token) && !everything.contains(admin),
            "a client credential went upstream: {everything}"
        );
        assert!(
            !r.query.as_deref().unwrap_or("").contains("key="),
            "a key in the upstream URL: {:?}",
            r.query
        );
        if let Some(k) = &r.api_key {
            assert!(pool.contains(&k.as_str()), "upstream got a non-pool key");
        }
    }
    // The echoing key was really used (and its echo really scrubbed).
    assert!(fake.state.count_for_key(pool[0]) >= 1);

    // Shut down with SIGTERM: in-flight finish, then exit 0.
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    std::mem::forget(guard);
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
    let log =
        String::from_utf8_lossy(&log.lock().unwrap()).to_string() + &String::from_utf8_lossy(&out);
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert!(log.contains("disabled"), "a key was disabled (and logged)");
    assert!(log.contains("shutting down"), "{log}");
    for s in &secrets {
        for line in log.lines() {
            assert!(!line.contains(s), "a log line holds a secret: {line}");
        }
    }
    println!(
        "secret check: {} log lines, {} responses, {} upstream requests, no secret",
        log.lines().count(),
        statuses_seen.len(),
        recorded.len()
    );
}
