//! `/admin/logs`: every failed upstream attempt is in the error log with the
//! right fields and only masked keys; filters, paging, detail, delete,
//! request bodies (off by default, masked when on), the `ERROR_LOG_MAX`
//! bound, and the admin token. (Restart and Redis sharing: tests/admin_usage.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Gw, TOKEN, get, post_json, send, start};
use fake_gemini::KeyBehavior;
use gemini_balance::keys::mask;
use gemini_balance::store::key_id;
use http::Method;
use serde_json::{Value, json};

const QUOTA: &str = "key-quota-000000001";
const SUSPENDED: &str = "key-susp-0000000002";
const BROKEN: &str = "key-broken-00000003";
const GOOD: &str = "key-good-0000000004";

fn chat(text: &str) -> Value {
    json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": text}]})
}

async fn delete(gw: &Gw, path: &str) -> common::Answer {
    let auth = format!("Bearer {TOKEN}");
    send(
        Method::DELETE,
        &gw.url(path),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await
}

/// The whole log (every page), newest first.
async fn entries(gw: &Gw, query: &str) -> Vec<Value> {
    let a = get(gw, &format!("/admin/logs?limit=500&{query}")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()["entries"].as_array().unwrap().clone()
}

/// Wait until the log holds at least `n` entries.
async fn wait_for(gw: &Gw, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let e = entries(gw, "").await;
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("the error log never reached {n} entries");
}

async fn gateway(extra: &[(&str, &str)]) -> Gw {
    let keys = format!("[\"{QUOTA}\",\"{SUSPENDED}\",\"{BROKEN}\",\"{GOOD}\"]");
    let mut vars = vec![("API_KEYS", keys.as_str())];
    vars.extend_from_slice(extra);
    let gw = start(&vars).await;
    let s = gw.state();
    s.set_key(QUOTA, KeyBehavior::Quota { retry_secs: 60 });
    s.set_key(SUSPENDED, KeyBehavior::Suspended);
    s.set_key(BROKEN, KeyBehavior::Internal);
    gw
}

#[tokio::test]
async fn failed_attempts_are_logged_with_their_fields_and_masked_keys() {
    let gw = gateway(&[]).await;
    for i in 0..4 {
        let a = post_json(&gw, "/v1/chat/completions", &chat(&format!("hi {i}"))).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    // 429, 403 and 500 were each met at least once on the way to the good key.
    let log = wait_for(&gw, 3).await;
    let text = get(&gw, "/admin/logs?limit=500").await.text();
    for k in [QUOTA, SUSPENDED, BROKEN, GOOD] {
        assert!(!text.contains(k), "a full key in the log: {text}");
    }
    let tried = |k: &str| gw.state().count_for_key(k);
    assert_eq!(
        log.len(),
        tried(QUOTA) + tried(SUSPENDED) + tried(BROKEN),
        "one entry per failed attempt: {log:#?}"
    );
    let by_status = |s: u64| log.iter().find(|e| e["status"] == s).cloned();
    let q = by_status(429).expect("a 429 entry");
    assert_eq!(q["route"], "chat");
    assert_eq!(q["model"], "gemini-2.5-flash");
    assert_eq!(q["key_id"], key_id(QUOTA));
    assert_eq!(q["key"], mask(QUOTA));
    assert_eq!(q["google_status"], "RESOURCE_EXHAUSTED");
    assert!(!q["message"].as_str().unwrap().is_empty());
    assert!(q["attempt"].as_u64().unwrap() >= 1);
    assert!(q["latency_ms"].is_u64() && q["time"].as_f64().unwrap() > 1.6e9);
    assert!(q.get("body").is_none(), "bodies only in the detail view");
    let s = by_status(403).expect("a 403 entry");
    assert_eq!(s["google_status"], "PERMISSION_DENIED");
    assert_eq!(s["key"], mask(SUSPENDED));
    let b = by_status(500).expect("a 500 entry");
    assert_eq!(b["google_status"], "INTERNAL");
    // Newest first, ids unique and sorted.
    let ids: Vec<&str> = log.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted);
    gw.shutdown().await;
}

#[tokio::test]
async fn filters_paging_detail_and_delete() {
    let gw = gateway(&[]).await;
    for i in 0..4 {
        post_json(&gw, "/v1/chat/completions", &chat(&format!("hi {i}"))).await;
    }
    // One more failure, on another route and model.
    let a = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.0-flash:generateContent"),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        r#"{"contents":[{"parts":[{"text":"[[status=400]] no"}]}]}"#,
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text());
    let all = wait_for(&gw, 4).await;
    let n = all.len();
    let count = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|e| f(e)).count();

    let only = entries(&gw, "status=429").await;
    assert!(!only.is_empty() && only.iter().all(|e| e["status"] == 429));
    let by_id = entries(&gw, &format!("key={}", key_id(BROKEN))).await;
    assert_eq!(by_id.len(), count(&|e| e["key"] == mask(BROKEN)));
    let by_mask = entries(&gw, &format!("key={}", mask(BROKEN))).await;
    assert_eq!(
        by_mask, by_id,
        "a key filter takes the id or the masked key"
    );
    let native = entries(&gw, "route=native&model=gemini-2.0-flash").await;
    assert!(native.iter().all(|e| e["route"] == "native"), "{native:#?}");
    assert_eq!(native.iter().filter(|e| e["status"] == 400).count(), 1);
    let chats = entries(&gw, "route=chat").await;
    assert_eq!(chats.len() + native.len(), n);
    assert!(entries(&gw, "model=nope").await.is_empty());
    let t = all[0]["time"].as_f64().unwrap();
    assert_eq!(entries(&gw, &format!("since={}", t + 10.0)).await.len(), 0);
    assert_eq!(entries(&gw, &format!("until={}", t + 10.0)).await.len(), n);

    // Pages of 2 cover the listing exactly, in order.
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/admin/logs?limit=2&cursor={c}"),
            None => "/admin/logs?limit=2".into(),
        };
        let page = get(&gw, &q).await.json();
        let e = page["entries"].as_array().unwrap();
        assert!(e.len() <= 2);
        seen.extend(e.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, all);

    // The detail view: the whole entry, no body recorded by default.
    let id = all[0]["id"].as_str().unwrap();
    let d = get(&gw, &format!("/admin/logs/{id}")).await;
    assert_eq!(d.status, 200);
    let d = d.json();
    assert_eq!(d["id"], id);
    assert_eq!(d["body"], Value::Null);
    let missing = get(&gw, "/admin/logs/1000000000000-000000-abcdef").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["type"], "invalid_request_error");
    assert_eq!(get(&gw, "/admin/logs/..%2F..%2Fx").await.status, 404);

    // Bad values: 400 naming the parameter.
    for (q, param) in [
        ("status=abc", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=xyz", "cursor"),
        ("since=soon", "since"),
    ] {
        let a = get(&gw, &format!("/admin/logs?{q}")).await;
        assert_eq!(a.status, 400, "{q}");
        assert_eq!(a.json()["error"]["param"], param, "{q}");
    }
    assert_eq!(delete(&gw, "/admin/logs?status=x").await.status, 400);

    // Delete by filter, then everything.
    let d = delete(&gw, "/admin/logs?status=500").await;
    assert_eq!(d.status, 200);
    let fives = count(&|e| e["status"] == 500) as u64;
    assert_eq!(d.json()["deleted"], fives);
    let rest = entries(&gw, "").await;
    assert_eq!(rest.len(), n - fives as usize);
    assert!(rest.iter().all(|e| e["status"] != 500));
    let d = delete(&gw, "/admin/logs").await;
    assert_eq!(d.json()["deleted"], rest.len() as u64);
    assert!(entries(&gw, "").await.is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn only_the_admin_token_reads_the_log() {
    let tokens = format!("[\"{TOKEN}\",\"sk-client-0000000002\"]");
    let gw = start(&[("ALLOWED_TOKENS", tokens.as_str())]).await;
    let client = [("authorization", "Bearer sk-client-0000000002")];
    for (m, path) in [
        (Method::GET, "/admin/logs"),
        (Method::DELETE, "/admin/logs"),
        (Method::GET, "/admin/logs/1000000000000-000000-abcdef"),
        (Method::GET, "/admin/usage"),
    ] {
        let a = send(m.clone(), &gw.url(path), &client, Bytes::new()).await;
        assert_eq!(a.status, 403, "{m} {path}");
        let a = send(m.clone(), &gw.url(path), &[], Bytes::new()).await;
        assert_eq!(a.status, 401, "{m} {path}");
    }
    let a = send(Method::POST, &gw.url("/admin/logs"), &[], Bytes::new()).await;
    assert_eq!(a.status, 405);
    gw.shutdown().await;
}

#[tokio::test]
async fn request_bodies_are_kept_only_when_asked_and_masked() {
    let gw = gateway(&[("ERROR_LOG_RECORD_BODY", "true"), ("MAX_RETRIES", "0")]).await;
    let google = format!("AIza{}", "Q".repeat(35));
    let text =
        format!("mine {google} and the pool's {BROKEN} see https://x.test/i.png?key=secret-99");
    // Retry until the broken key served the attempt (round robin).
    let mut entry = None;
    for _ in 0..8 {
        post_json(&gw, "/v1/chat/completions", &chat(&text)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let e = entries(&gw, "status=500").await;
        if let Some(e) = e.first() {
            entry = Some(e.clone());
            break;
        }
    }
    let entry = entry.expect("the broken key was tried");
    let d = get(
        &gw,
        &format!("/admin/logs/{}", entry["id"].as_str().unwrap()),
    )
    .await;
    let body = d.json()["body"]
        .as_str()
        .expect("the body is kept")
        .to_string();
    assert!(body.contains("mine"), "{body}");
    assert!(!body.contains(&google) && !body.contains(BROKEN), "{body}");
    assert!(!body.contains("secret-99"), "{body}");
    assert!(body.contains(&mask(BROKEN)), "{body}");
    assert!(
        !d.text().contains(&google),
        "the detail answer holds no full key"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_log_keeps_at_most_error_log_max_entries_newest_first() {
    let gw = start(&[("ERROR_LOG_MAX", "3")]).await;
    for i in 0..6 {
        let body = json!({"contents": [{"parts": [{"text": "[[status=400]] x"}]}]});
        let a = send(
            Method::POST,
            &gw.url(&format!("/v1beta/models/m-{i}:generateContent")),
            &[
                ("x-goog-api-key", TOKEN),
                ("content-type", "application/json"),
            ],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert!(a.status.is_client_error(), "{}", a.text());
        // Each entry its own write, so every one passes through the bound.
        gw.app.store.flush().await.unwrap();
    }
    let log = entries(&gw, "").await;
    let models: Vec<&str> = log.iter().map(|e| e["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["m-5", "m-4", "m-3"], "the oldest are dropped");
    gw.shutdown().await;
}
