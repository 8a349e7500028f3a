//! `/admin/usage`: one count per upstream attempt (a 429 as `rate_limited`),
//! tokens from Gemini's `usageMetadata` on whole and streamed answers of the
//! OpenAI and native routes, client requests, `window`/`by` and their
//! validation; usage and the error log surviving a restart in file mode; and
//! two gateways on one real Redis adding up exactly and sharing the error log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{Gw, TOKEN, get, post_json, send, sse_events, start};
use fake_gemini::KeyBehavior;
use gemini_balance::store::key_id;
use http::Method;
use serde_json::{Value, json};

const QUOTA: &str = "key-quota-000000001";
const GOOD: &str = "key-good-0000000002";

fn keys() -> String {
    format!("[\"{QUOTA}\",\"{GOOD}\"]")
}

/// [prompt, output, thought] tokens of an OpenAI `usage`.
fn openai_tokens(u: &Value) -> [u64; 3] {
    let reasoning = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0);
    [
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap() - reasoning,
        reasoning,
    ]
}

/// [prompt, output, thought] tokens of a Gemini `usageMetadata`.
fn native_tokens(m: &Value) -> [u64; 3] {
    let n = |k: &str| m[k].as_u64().unwrap_or(0);
    [
        n("promptTokenCount"),
        n("candidatesTokenCount"),
        n("thoughtsTokenCount"),
    ]
}

fn add(a: &mut [u64; 3], b: [u64; 3]) {
    for i in 0..3 {
        a[i] += b[i];
    }
}

async fn native(gw: &Gw, action: &str, body: &Value) -> common::Answer {
    send(
        Method::POST,
        &gw.url(&format!("/v1beta/models/gemini-2.5-flash:{action}")),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// The report once its totals show `requests` attempts (a stream records
/// its usage as it ends, just after the client read the last byte).
async fn report(gw: &Gw, query: &str, requests: u64) -> Value {
    for _ in 0..100 {
        let a = get(gw, &format!("/admin/usage?{query}")).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let r = a.json();
        if r["totals"]["requests"].as_u64() >= Some(requests) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("usage never reached {requests} requests");
}

#[tokio::test]
async fn usage_counts_attempts_rate_limits_tokens_and_client_requests() {
    let gw = start(&[("API_KEYS", keys().as_str())]).await;
    gw.state()
        .set_key(QUOTA, KeyBehavior::Quota { retry_secs: 60 });
    let mut want = [0u64; 3];
    let think = json!({"thinkingConfig": {"includeThoughts": true}});

    // OpenAI, whole and streamed.
    let chat = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "one two three"}]});
    let a = post_json(&gw, "/v1/chat/completions", &chat).await;
    assert_eq!(a.status, 200, "{}", a.text());
    add(&mut want, openai_tokens(&a.json()["usage"]));
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    stream["messages"][0]["content"] = json!("[[events=4]] four words streamed here");
    let a = post_json(&gw, "/v1/chat/completions", &stream).await;
    let events = sse_events(&a.text());
    let last = events
        .iter()
        .rev()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|v| v["usage"].is_object())
        .expect("a usage chunk");
    add(&mut want, openai_tokens(&last["usage"]));

    // Native, whole and streamed, with thoughts.
    let body =
        json!({"contents": [{"parts": [{"text": "native words"}]}], "generationConfig": think});
    let a = native(&gw, "generateContent", &body).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let t = native_tokens(&a.json()["usageMetadata"]);
    assert!(t[2] > 0, "the fake reports thoughts");
    add(&mut want, t);
    let body = json!({"contents": [{"parts": [{"text": "[[events=3]] a b c"}]}], "generationConfig": think});
    let a = native(&gw, "streamGenerateContent?alt=sse", &body).await;
    let events = sse_events(&a.text());
    assert!(events.len() >= 3, "{}", a.text());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    let t = native_tokens(&last["usageMetadata"]);
    assert!(t[1] > 0 && t[2] > 0);
    add(&mut want, t);
    // And a JSON-array stream (no alt=sse).
    let a = native(&gw, "streamGenerateContent", &body).await;
    let arr: Value = serde_json::from_slice(&a.body).unwrap();
    let last = arr.as_array().unwrap().last().unwrap().clone();
    add(&mut want, native_tokens(&last["usageMetadata"]));

    let (q, g) = (
        gw.state().count_for_key(QUOTA) as u64,
        gw.state().count_for_key(GOOD) as u64,
    );
    assert_eq!(q, 1, "the quota key was tried once, then cooled");
    let r = report(&gw, "window=1h&by=key", q + g).await;
    assert_eq!(r["window"], "1h");
    assert_eq!(r["bucket_seconds"], 60);
    assert_eq!(r["by"], "key");
    let tot = &r["totals"];
    assert_eq!(tot["requests"], q + g, "one per attempt: {r}");
    assert_eq!(tot["successes"], g);
    assert_eq!(tot["failures"], q);
    assert_eq!(tot["rate_limited"], q);
    assert_eq!(tot["client_requests"], 5, "five client requests");
    let got = [
        tot["prompt_tokens"].as_u64().unwrap(),
        tot["output_tokens"].as_u64().unwrap(),
        tot["thought_tokens"].as_u64().unwrap(),
    ];
    assert_eq!(got, want, "tokens from every usageMetadata: {r}");
    let series = r["series"].as_array().unwrap();
    let of = |k: &str| {
        series
            .iter()
            .find(|s| s["key"] == key_id(k))
            .unwrap_or_else(|| panic!("no series for {k}: {r}"))
            .clone()
    };
    assert_eq!(of(QUOTA)["totals"]["rate_limited"], 1);
    assert_eq!(of(GOOD)["totals"]["requests"], g);
    let b = &of(GOOD)["buckets"][0];
    assert!(b["t"].as_u64().unwrap() % 60 == 0 && b["requests"].as_u64() > Some(0));
    assert!(!r.to_string().contains(GOOD), "keys appear by id only");

    let r = report(&gw, "window=7d&by=model", q + g).await;
    assert_eq!(r["bucket_seconds"], 86_400);
    assert_eq!(r["series"][0]["model"], "gemini-2.5-flash");
    assert!(r["series"][0].get("key").is_none());
    assert_eq!(r["series"][0]["totals"]["requests"], q + g);
    let r = report(&gw, "window=24h&by=key_model", q + g).await;
    assert_eq!(r["series"].as_array().unwrap().len(), 2);
    assert_eq!(r["series"][0]["model"], "gemini-2.5-flash");
    assert!(r["series"][0]["key"].is_string());
    let r = report(&gw, "", q + g).await;
    assert_eq!(
        (r["window"].as_str(), r["by"].as_str()),
        (Some("24h"), Some("model"))
    );
    assert_eq!(
        report(&gw, "window=30d", 0).await["series"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for (q, param) in [
        ("window=2h", "window"),
        ("by=day", "by"),
        ("window=", "window"),
    ] {
        let a = get(&gw, &format!("/admin/usage?{q}")).await;
        assert_eq!(a.status, 400, "{q}");
        let e = a.json();
        assert_eq!(e["error"]["param"], param, "{q}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_request_that_finds_no_key_still_counts_as_a_client_request() {
    let gw = start(&[("API_KEYS", QUOTA)]).await;
    gw.state()
        .set_key(QUOTA, KeyBehavior::Quota { retry_secs: 60 });
    let chat = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]});
    let a = post_json(&gw, "/v1/chat/completions", &chat).await;
    assert_eq!(a.status, 429);
    let a = post_json(&gw, "/v1/chat/completions", &chat).await;
    assert_eq!(a.status, 429, "the only key cools: no attempt");
    assert_eq!(gw.state().count_for_key(QUOTA), 1);
    let r = report(&gw, "window=1h&by=key", 1).await;
    assert_eq!(r["totals"]["requests"], 1);
    assert_eq!(r["totals"]["client_requests"], 2);
    assert_eq!(r["series"].as_array().unwrap().len(), 1, "{r}");
    gw.shutdown().await;
}

#[tokio::test]
async fn usage_and_the_error_log_survive_a_restart_in_file_mode() {
    let dir = std::env::temp_dir().join(format!(
        "gb-usage-restart-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_string_lossy().to_string();
    let vars = [("API_KEYS", keys()), ("DATA_DIR", d.clone())];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = start(&vars).await;
    gw.state()
        .set_key(QUOTA, KeyBehavior::Quota { retry_secs: 60 });
    let chat = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]});
    for _ in 0..3 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat).await.status,
            200
        );
    }
    let attempts = (gw.state().count_for_key(QUOTA) + gw.state().count_for_key(GOOD)) as u64;
    let before = report(&gw, "window=24h&by=key_model", attempts).await;
    let log_before = get(&gw, "/admin/logs").await.json();
    assert_eq!(log_before["entries"].as_array().unwrap().len(), 1);
    gw.shutdown().await;

    let gw = start(&vars).await;
    let after = report(&gw, "window=24h&by=key_model", attempts).await;
    assert_eq!(after, before, "usage survives the restart");
    let log_after = get(&gw, "/admin/logs").await.json();
    assert_eq!(log_after, log_before, "the error log survives the restart");
    let id = log_after["entries"][0]["id"].as_str().unwrap();
    assert_eq!(get(&gw, &format!("/admin/logs/{id}")).await.status, 200);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Redis ----

#[tokio::test]
async fn two_gateways_on_one_redis_add_up_and_share_the_error_log() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let prefix = format!("gbusage{}:", std::process::id());
    let k = keys();
    let vars = [
        ("API_KEYS", k.as_str()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
    ];
    let a = start(&vars).await;
    let b = start(&vars).await;
    for gw in [&a, &b] {
        gw.state()
            .set_key(QUOTA, KeyBehavior::Quota { retry_secs: 60 });
        assert_eq!(get(gw, "/health").await.json()["store"], "redis");
    }
    let chat = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]});
    for i in 0..7 {
        let gw = if i % 3 == 0 { &b } else { &a };
        assert_eq!(
            post_json(gw, "/v1/chat/completions", &chat).await.status,
            200
        );
    }
    let native = json!({"contents": [{"parts": [{"text": "y"}]}]});
    let n = send(
        Method::POST,
        &b.url("/v1beta/models/gemini-2.5-flash:generateContent"),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&native).unwrap(),
    )
    .await;
    assert_eq!(n.status, 200);
    let count = |gw: &Gw, k: &str| gw.state().count_for_key(k) as u64;
    let quota = count(&a, QUOTA) + count(&b, QUOTA);
    let attempts = quota + count(&a, GOOD) + count(&b, GOOD);
    assert_eq!(quota, 2, "each gateway met the quota key once");
    // Each writes behind on its own; read through the other one.
    b.app.store.flush().await.unwrap();
    for gw in [&a, &b] {
        let r = report(gw, "window=1h&by=key", attempts).await;
        let t = &r["totals"];
        assert_eq!(t["requests"], attempts, "{r}");
        assert_eq!(t["rate_limited"], quota);
        assert_eq!(t["client_requests"], 8);
        let r = report(gw, "window=7d&by=model", attempts).await;
        assert_eq!(r["totals"]["requests"], attempts);
        assert!(r["totals"]["prompt_tokens"].as_u64() > Some(0));
    }
    a.app.store.flush().await.unwrap();
    let log = get(&b, "/admin/logs").await.json();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, quota, "{log}");
    let replicas: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| &e["id"].as_str().unwrap()[21..])
        .collect();
    assert_eq!(replicas.len(), 2, "entries from both gateways: {log}");
    let id = entries[0]["id"].as_str().unwrap();
    assert_eq!(get(&a, &format!("/admin/logs/{id}")).await.json()["id"], id);
    let del = send(
        Method::DELETE,
        &a.url("/admin/logs"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(del.json()["deleted"], quota);
    assert!(
        get(&b, "/admin/logs").await.json()["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    a.shutdown().await;
    b.shutdown().await;
    drop(redis);
}

/// A gateway started while Redis is down works in memory and reconnects when
/// Redis comes up (writing the error log must not keep pushing the reconnect
/// back), then what it recorded meanwhile is in Redis.
#[tokio::test]
async fn a_gateway_reconnects_to_a_redis_that_comes_up_later() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let prefix = format!("gblate{}:", std::process::id());
    let k = keys();
    let vars = [
        ("API_KEYS", k.as_str()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
    ];
    let gw = start(&vars).await;
    gw.state()
        .set_key(QUOTA, KeyBehavior::Quota { retry_secs: 60 });
    assert_eq!(get(&gw, "/health").await.json()["store"], "degraded");
    let chat = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]});
    for _ in 0..2 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat).await.status,
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let Some(redis) = RedisServer::start(Some(port)) else {
        return;
    };
    let t = Instant::now();
    while get(&gw, "/health").await.json()["store"] != "redis" {
        assert!(t.elapsed() < Duration::from_secs(20), "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = get(&gw, "/admin/logs").await.json();
    assert_eq!(log["entries"].as_array().unwrap().len(), 1, "{log}");
    let r = report(&gw, "window=1h", 3).await;
    assert_eq!(r["totals"]["client_requests"], 2);
    gw.shutdown().await;
    drop(redis);
}
