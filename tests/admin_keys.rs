//! The key admin API: `GET/POST /admin/keys`, `DELETE /admin/keys/{id}`,
//! `POST /admin/keys/delete`, `GET /admin/keys/export` — each route, its
//! validation errors, who may call it, that an added key serves the next
//! request and a removed one is never picked again, and that no answer or log
//! line except the export holds a full key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fake_gemini::{Fake, KeyBehavior};
use gemini_balance::keys::mask;
use gemini_balance::store::key_id;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// A Gemini-shaped key, built at run time (no key-shaped literal in the source).
fn gkey(tag: &str) -> String {
    assert!(tag.len() <= 35);
    format!("AIza{}{tag}", "0".repeat(35 - tag.len()))
}

const CLIENT: &str = "sk-client-token-000002";

fn auth() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}

async fn admin(gw: &Gw, method: Method, path: &str, body: Option<Value>) -> Answer {
    let (h, v) = auth();
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    send(
        method,
        &gw.url(path),
        &[(h, &v), ("content-type", "application/json")],
        body,
    )
    .await
}

async fn chat(gw: &Gw, model: &str) -> Answer {
    post_json(
        gw,
        "/v1/chat/completions",
        &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

fn listed(a: &Answer) -> Vec<Value> {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()["keys"].as_array().unwrap().clone()
}

fn by_id<'a>(keys: &'a [Value], key: &str) -> Option<&'a Value> {
    keys.iter().find(|k| k["id"] == key_id(key))
}

/// An OpenAI-format error with this status whose message contains `needle`.
fn assert_error(a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    let msg = a.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
}

#[tokio::test]
async fn list_shows_each_key_masked_with_state_reason_and_usage() {
    let (good, bad) = (gkey("good1"), gkey("bad1"));
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&bad, KeyBehavior::Invalid);
    let gw = start_with_fake(fake, &[("API_KEYS", &json!([bad, good]).to_string())]).await;
    assert_eq!(chat(&gw, "gemini-2.5-flash").await.status, StatusCode::OK);
    let a = admin(&gw, Method::GET, "/admin/keys", None).await;
    assert!(
        !a.text().contains(&good) && !a.text().contains(&bad),
        "{}",
        a.text()
    );
    let keys = listed(&a);
    assert_eq!(a.json()["total"], 2);
    let b = by_id(&keys, &bad).unwrap();
    assert_eq!(b["masked"], mask(&bad));
    assert_eq!(b["source"], "env");
    assert_eq!(b["state"], "disabled");
    assert!(
        b["reason"].as_str().unwrap().contains("API key not valid"),
        "{b}"
    );
    assert_eq!(b["usage_today"]["requests"], 1);
    assert_eq!(b["usage_today"]["failures"], 1);
    let g = by_id(&keys, &good).unwrap();
    assert_eq!(g["state"], "active");
    assert_eq!(g["usage_today"]["successes"], 1);
    assert!(g["last_used"].as_u64().is_some());
    assert_eq!(g["cooling"], json!({}));
    // HEAD works like GET; other methods get 405 with Allow.
    let (h, v) = auth();
    let head = send(
        Method::HEAD,
        &gw.url("/admin/keys"),
        &[(h, &v)],
        Bytes::new(),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    let put = send(
        Method::PUT,
        &gw.url("/admin/keys"),
        &[(h, &v)],
        Bytes::new(),
    )
    .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers["allow"], "GET, HEAD, POST");
    gw.shutdown().await;
}

#[tokio::test]
async fn cooling_shows_per_model_seconds_left() {
    let key = gkey("quota1");
    let fake = Fake::start().await.unwrap();
    fake.state
        .set_key(&key, KeyBehavior::Quota { retry_secs: 90 });
    let gw = start_with_fake(
        fake,
        &[
            ("API_KEYS", &json!([key]).to_string()),
            ("MAX_RETRIES", "0"),
        ],
    )
    .await;
    assert_eq!(
        chat(&gw, "gemini-2.5-flash").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let keys = listed(&admin(&gw, Method::GET, "/admin/keys", None).await);
    let k = by_id(&keys, &key).unwrap();
    assert_eq!(k["state"], "cooling");
    let left = k["cooling"]["gemini-2.5-flash"].as_u64().unwrap();
    assert!((85..=90).contains(&left), "{k}");
    assert_eq!(k["usage_today"]["rate_limited"], 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_added_key_serves_the_next_request() {
    let (dead, fresh) = (gkey("dead1"), gkey("fresh1"));
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&dead, KeyBehavior::Invalid);
    let gw = start_with_fake(fake, &[("API_KEYS", &json!([dead]).to_string())]).await;
    assert_eq!(
        chat(&gw, "gemini-2.5-flash").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let a = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"keys": [fresh]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.json(),
        json!({"added": 1, "duplicates": 0, "rejected": 0, "ids": [key_id(&fresh)]})
    );
    assert_eq!(chat(&gw, "gemini-2.5-flash").await.status, StatusCode::OK);
    assert_eq!(
        gw.state().count_for_key(&fresh),
        1,
        "the fake saw the added key"
    );
    let keys = listed(&admin(&gw, Method::GET, "/admin/keys", None).await);
    assert_eq!(by_id(&keys, &fresh).unwrap()["source"], "added");
    // /status keeps working and shows it.
    let status = get(&gw, "/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.json()["key_counts"]["total"], 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn pasted_text_duplicates_and_rejected_entries_are_counted() {
    let (a, b, c) = (gkey("pa"), gkey("pb"), gkey("pc"));
    let gw = start(&[("API_KEYS", &json!([a]).to_string())]).await;
    let text = format!("keys:\n{a} (already in)\n{b}, {c}\nand {b} again; not a key: AIzaShort");
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"text": text, "keys": ["", "has space", "  ", 42]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            j["added"].clone(),
            j["duplicates"].clone(),
            j["rejected"].clone()
        ),
        (json!(2), json!(2), json!(4))
    );
    assert_eq!(gw.app.pool.len(), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn verify_adds_only_the_keys_that_pass() {
    let (good, bad) = (gkey("vgood"), gkey("vbad"));
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&bad, KeyBehavior::Invalid);
    let gw = start_with_fake(fake, &[]).await;
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"keys": [good, bad], "verify": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (j["added"].clone(), j["rejected"].clone()),
        (json!(1), json!(1))
    );
    assert!(gw.app.pool.position(&good).is_some());
    assert!(gw.app.pool.position(&bad).is_none());
    assert!(
        gw.state().count_for_key(&bad) >= 1,
        "the bad key was checked upstream"
    );
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"keys": [good], "verify": "yes"})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "verify");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_removed_key_is_no_longer_picked() {
    let (a, b) = (gkey("rma"), gkey("rmb"));
    let gw = start(&[("API_KEYS", &json!([a, b]).to_string())]).await;
    let r = admin(
        &gw,
        Method::DELETE,
        &format!("/admin/keys/{}", key_id(&a)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["deleted"], 1);
    for _ in 0..6 {
        assert_eq!(chat(&gw, "gemini-2.5-flash").await.status, StatusCode::OK);
    }
    assert_eq!(
        gw.state().count_for_key(&a),
        0,
        "never picked after removal"
    );
    assert_eq!(gw.state().count_for_key(&b), 6);
    let keys = listed(&admin(&gw, Method::GET, "/admin/keys", None).await);
    assert!(by_id(&keys, &a).is_none());
    // Again, or an unknown id: 404 in OpenAI's format.
    let r = admin(
        &gw,
        Method::DELETE,
        &format!("/admin/keys/{}", key_id(&a)),
        None,
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "No key with this id");
    let r = admin(&gw, Method::DELETE, "/admin/keys/nothing-here", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "No key");
    let r = admin(
        &gw,
        Method::GET,
        &format!("/admin/keys/{}", key_id(&b)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // Added back: it serves again.
    let r = admin(&gw, Method::POST, "/admin/keys", Some(json!({"keys": [a]}))).await;
    assert_eq!(r.json()["added"], 1);
    assert_eq!(gw.app.pool.len(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn bulk_delete_by_ids_or_disabled_state() {
    let (a, b, c, bad) = (gkey("ba"), gkey("bb"), gkey("bc"), gkey("bbad"));
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&bad, KeyBehavior::Invalid);
    let gw = start_with_fake(fake, &[("API_KEYS", &json!([bad, a, b, c]).to_string())]).await;
    assert_eq!(chat(&gw, "gemini-2.5-flash").await.status, StatusCode::OK);
    assert_eq!(gw.app.pool.counts().disabled, 1);
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys/delete",
        Some(json!({"state": "disabled"})),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"deleted": 1, "not_found": 0}),
        "{}",
        r.text()
    );
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys/delete",
        Some(json!({"ids": [key_id(&a), key_id(&b), "000000000000", 5]})),
    )
    .await;
    assert_eq!(r.json(), json!({"deleted": 2, "not_found": 2}));
    let keys = listed(&admin(&gw, Method::GET, "/admin/keys", None).await);
    assert_eq!(keys.len(), 1);
    assert!(by_id(&keys, &c).is_some());
    for (body, needle) in [
        (json!({"state": "active"}), "disabled"),
        (json!({}), "ids"),
        (json!({"ids": "x"}), "ids"),
        (json!({"ids": vec!["x"; 10_001]}), "at most 10000"),
        (json!([1]), "JSON object"),
    ] {
        let r = admin(&gw, Method::POST, "/admin/keys/delete", Some(body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, needle);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn export_gives_the_full_keys_as_uncached_text() {
    let (good, bad) = (gkey("exg"), gkey("exb"));
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&bad, KeyBehavior::Invalid);
    let gw = start_with_fake(fake, &[("API_KEYS", &json!([bad, good]).to_string())]).await;
    assert_eq!(chat(&gw, "gemini-2.5-flash").await.status, StatusCode::OK);
    for (q, want) in [
        ("", vec![bad.clone(), good.clone()]),
        ("?state=all", vec![bad.clone(), good.clone()]),
        ("?state=active", vec![good.clone()]),
        ("?state=disabled", vec![bad.clone()]),
    ] {
        let r = admin(&gw, Method::GET, &format!("/admin/keys/export{q}"), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["cache-control"], "no-store");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            want.iter().map(String::as_str).collect::<Vec<_>>(),
            "{q}"
        );
    }
    let r = admin(&gw, Method::GET, "/admin/keys/export?state=cooling", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "active, disabled or all");
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_are_openai_400s_and_work_stays_bounded() {
    let gw = start(&[]).await;
    let (h, v) = auth();
    let url = gw.url("/admin/keys");
    let headers = [(h, v.as_str()), ("content-type", "application/json")];
    let raw = |body: &'static str| {
        send(
            Method::POST,
            &url,
            &headers,
            Bytes::from_static(body.as_bytes()),
        )
    };
    assert_error(&raw("").await, StatusCode::BAD_REQUEST, "empty");
    assert_error(
        &raw("{not json").await,
        StatusCode::BAD_REQUEST,
        "not valid JSON",
    );
    assert_error(&raw("[]").await, StatusCode::BAD_REQUEST, "JSON object");
    assert_error(&raw("{}").await, StatusCode::BAD_REQUEST, "\"keys\"");
    assert_error(
        &raw(r#"{"keys":"k"}"#).await,
        StatusCode::BAD_REQUEST,
        "array",
    );
    assert_error(
        &raw(r#"{"text":5}"#).await,
        StatusCode::BAD_REQUEST,
        "string",
    );
    let many: Vec<String> = (0..10_001).map(|i| format!("k-{i}")).collect();
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"keys": many})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "at most 10000");
    // A megabyte of pasted text: one bounded pass, a clear error past the cap.
    let flood: String = (0..20_000)
        .map(|i| gkey(&format!("f{i:05}")) + " ")
        .collect();
    assert!(flood.len() > 700_000);
    let t = Instant::now();
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"text": flood})),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "at most 10000");
    let noise = "AIza-not-quite ".repeat(70_000);
    let r = admin(
        &gw,
        Method::POST,
        "/admin/keys",
        Some(json!({"text": noise})),
    )
    .await;
    assert_eq!(r.json()["added"], 0, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(gw.app.pool.len(), 3, "nothing was added");
    // Bodies are limited like every other route's.
    let small = start(&[("MAX_BODY_BYTES", "1024")]).await;
    let big = json!({"text": "x".repeat(4096)});
    let r = admin(&small, Method::POST, "/admin/keys", Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    small.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn only_the_admin_token_may_call_the_key_routes() {
    let gw = start(&[("ALLOWED_TOKENS", &json!([TOKEN, CLIENT]).to_string())]).await;
    let id = key_id("key-a-0000000001");
    let routes = [
        (Method::GET, "/admin/keys".to_string()),
        (Method::POST, "/admin/keys".to_string()),
        (Method::GET, "/admin/keys/export".to_string()),
        (Method::POST, "/admin/keys/delete".to_string()),
        (Method::DELETE, format!("/admin/keys/{id}")),
    ];
    let body = || Bytes::from(json!({"ids": [id], "keys": ["k-new-000001"]}).to_string());
    for (m, path) in &routes {
        let none = send(m.clone(), &gw.url(path), &[], body()).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{m} {path}");
        assert_eq!(none.headers["www-authenticate"], "Bearer");
        let client = format!("Bearer {CLIENT}");
        let other = send(
            m.clone(),
            &gw.url(path),
            &[("authorization", &client)],
            body(),
        )
        .await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{m} {path}");
        assert!(
            other.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin token")
        );
        let stranger = send(
            m.clone(),
            &gw.url(&format!("/hf{path}")),
            &[("authorization", "Bearer sk-nope-000000")],
            body(),
        )
        .await;
        assert_eq!(stranger.status, StatusCode::UNAUTHORIZED, "{m} /hf{path}");
    }
    assert_eq!(gw.app.pool.len(), 3, "nothing changed");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// No full key in any answer or log line but the export (the real binary)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_or_log_line_but_the_export_holds_a_full_key() {
    let keys: Vec<String> = ["env1", "env2", "add1", "add2", "add3", "vbad", "ebad"]
        .iter()
        .map(|t| gkey(t))
        .collect();
    let [env1, env2, add1, add2, add3, vbad, envbad] =
        <[String; 7]>::try_from(keys.clone()).unwrap();
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&vbad, KeyBehavior::Invalid);
    fake.state.set_key(&envbad, KeyBehavior::Suspended);
    let bin = common::blocking::Binary::start(&[
        ("API_KEYS", &json!([envbad, env1, env2]).to_string()),
        ("ALLOWED_TOKENS", &json!([TOKEN]).to_string()),
        ("BASE_URL", &fake.base_url()),
    ]);
    let url = |p: &str| format!("{}{p}", bin.base);
    let a = [("authorization", format!("Bearer {TOKEN}"))];
    let hdr: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut answers = Vec::new();
    let call = |m: Method, p: &str, b: Value| {
        let (m, u, hdr) = (m, url(p), hdr.clone());
        async move { send(m, &u, &hdr, Bytes::from(b.to_string())).await }
    };
    answers.push(
        call(
            Method::POST,
            "/v1/chat/completions",
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    );
    answers.push(call(Method::POST, "/admin/keys", json!({"keys": [add1, env1]})).await);
    answers.push(
        call(
            Method::POST,
            "/admin/keys",
            json!({"text": format!("x {add2} y {vbad}"), "verify": true}),
        )
        .await,
    );
    answers.push(
        call(
            Method::POST,
            "/admin/keys",
            json!({"text": format!("{add3}")}),
        )
        .await,
    );
    answers.push(call(Method::GET, "/admin/keys", json!(null)).await);
    answers.push(call(Method::GET, "/status", json!(null)).await);
    answers.push(
        call(
            Method::DELETE,
            &format!("/admin/keys/{}", key_id(&add1)),
            json!(null),
        )
        .await,
    );
    answers.push(
        call(
            Method::POST,
            "/admin/keys/delete",
            json!({"state": "disabled"}),
        )
        .await,
    );
    answers.push(
        call(
            Method::POST,
            "/admin/keys/delete",
            json!({"ids": [key_id(&add3)]}),
        )
        .await,
    );
    for a in &answers {
        assert!(a.status.is_success(), "{} {}", a.status, a.text());
        for k in &keys {
            assert!(
                !a.text().contains(k.as_str()),
                "an answer holds a full key: {}",
                a.text()
            );
        }
    }
    assert_eq!(answers[2].json()["added"], 1, "{}", answers[2].text());
    let export = call(Method::GET, "/admin/keys/export?state=all", json!(null)).await;
    let text = export.text();
    let exported: Vec<&str> = text.lines().collect();
    assert_eq!(
        exported,
        [env1.as_str(), env2.as_str(), add2.as_str()],
        "{text}"
    );
    // The log: every key at most masked; the export is logged, masked.
    std::thread::sleep(Duration::from_millis(200)); // the logger flushes every 50 ms
    let log = bin.text();
    for k in &keys {
        assert!(
            !log.contains(k.as_str()),
            "a log line holds a full key:\n{log}"
        );
    }
    assert!(log.contains("exported in full"), "{log}");
    assert!(log.contains(&mask(&env1)), "{log}");
    assert!(log.contains(&format!("key {} added", mask(&add1))), "{log}");
    assert!(
        log.contains(&format!("key {} disabled", mask(&envbad))),
        "{log}"
    );
}
