//! The key pool on the store: two gateways on one real `redis-server` share
//! key state within a second (a disabled key, a 429 cooldown, a key added or
//! removed through one's admin API, a setting patched on one), and a restart in file mode (`DATA_DIR`)
//! and Redis mode keeps keys added/removed, running cooldowns and disabled
//! keys; `API_KEYS` does not bring a removed key back, and a key new in it is
//! added; and Redis dying under a 64-client load costs no request, and what
//! the gateway kept meanwhile is written when Redis is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::redis::RedisServer;
use common::*;
use fake_gemini::{Fake, KeyBehavior};
use gemini_balance::store::key_id;
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// A Gemini-shaped key, built at run time (no key-shaped literal in the source).
fn gkey(tag: &str) -> String {
    format!("AIza{}{tag}", "0".repeat(35 - tag.len()))
}

fn unique(name: &str) -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gbtest-{name}-{}-{ns}:", std::process::id())
}

async fn chat(gw: &Gw) -> Answer {
    post_json(
        gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

async fn admin(gw: &Gw, method: Method, path: &str, body: Value) -> Answer {
    let token = format!("Bearer {TOKEN}");
    send(
        method,
        &gw.url(path),
        &[
            ("authorization", &token),
            ("content-type", "application/json"),
        ],
        Bytes::from(body.to_string()),
    )
    .await
}

/// `GET /admin/keys` as id → entry.
async fn keys_of(gw: &Gw) -> Vec<Value> {
    let a = get(gw, "/admin/keys").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()["keys"].as_array().unwrap().clone()
}

fn entry<'a>(keys: &'a [Value], key: &str) -> Option<&'a Value> {
    keys.iter().find(|k| k["id"] == key_id(key))
}

/// Wait (at most `within`) until `cond` holds on `gw`'s key list; the time it took.
async fn until(gw: &Gw, within: Duration, what: &str, cond: impl Fn(&[Value]) -> bool) -> Duration {
    let t = Instant::now();
    loop {
        if cond(&keys_of(gw).await) {
            return t.elapsed();
        }
        assert!(t.elapsed() < within, "{what}: not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two gateways on one Redis with `vars`, B calling A's fake (so one upstream
/// enforces the keys' limits for both), each knowing of the other.
async fn sharing_one_fake(vars: &[(&str, &str)]) -> (Gw, Gw) {
    let a = start(vars).await;
    let base = a.fake.base_url();
    let mut vars_b = vars.to_vec();
    vars_b.push(("BASE_URL", base.as_str()));
    let b = start(&vars_b).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    (a, b)
}

/// Two gateways on one Redis (same prefix), each before its own fake.
async fn pair(
    redis: &RedisServer,
    prefix: &str,
    keys: &[&String],
    setup: impl Fn(&Fake),
) -> (Gw, Gw) {
    let api_keys = json!(keys).to_string();
    let url = redis.url();
    let vars = [
        ("API_KEYS", api_keys.as_str()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix),
        ("MAX_RETRIES", "3"),
    ];
    let fa = Fake::start().await.unwrap();
    setup(&fa);
    let a = start_with_fake(fa, &vars).await;
    let fb = Fake::start().await.unwrap();
    setup(&fb);
    let b = start_with_fake(fb, &vars).await;
    // Both subscribers are connected before anything happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_disabled_through_one_is_skipped_by_the_other_within_a_second() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (bad, good) = (gkey("dbad"), gkey("dgood"));
    let bad2 = bad.clone();
    let (a, b) = pair(&redis, &unique("disable"), &[&bad, &good], move |_| {}).await;
    // Only A's upstream says the key is invalid; B's would still take it.
    a.state().set_key(&bad2, KeyBehavior::Suspended);
    assert_eq!(chat(&a).await.status, StatusCode::OK);
    assert_eq!(a.app.pool.counts().disabled, 1);
    let took = until(&b, Duration::from_secs(1), "disabled on B", |k| {
        entry(k, &bad).is_some_and(|e| e["state"] == "disabled")
    })
    .await;
    assert!(took < Duration::from_secs(1));
    for _ in 0..6 {
        assert_eq!(chat(&b).await.status, StatusCode::OK);
    }
    assert_eq!(
        b.state().count_for_key(&bad),
        0,
        "B never sent a call on the disabled key"
    );
    // A reset on B re-enables it on A.
    let r = admin(
        &b,
        Method::POST,
        &format!("/status/keys/{}/reset", key_id(&bad)),
        json!(null),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    until(&a, Duration::from_secs(1), "enabled again on A", |k| {
        entry(k, &bad).is_some_and(|e| e["state"] == "active")
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_cooldown_learned_by_one_is_honoured_by_the_other() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (hot, cold) = (gkey("chot"), gkey("ccold"));
    let (a, b) = pair(&redis, &unique("cool"), &[&hot, &cold], |_| {}).await;
    a.state()
        .set_key(&hot, KeyBehavior::Quota { retry_secs: 120 });
    assert_eq!(chat(&a).await.status, StatusCode::OK);
    until(&b, Duration::from_secs(1), "cooling on B", |k| {
        entry(k, &hot).is_some_and(|e| {
            e["state"] == "cooling"
                && e["cooling"]["gemini-2.5-flash"]
                    .as_u64()
                    .is_some_and(|s| s > 100)
        })
    })
    .await;
    for _ in 0..6 {
        assert_eq!(chat(&b).await.status, StatusCode::OK);
    }
    assert_eq!(b.state().count_for_key(&hot), 0, "B honours the cooldown");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_added_and_removed_through_one_reach_the_other() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (k1, k2, added) = (gkey("ak1"), gkey("ak2"), gkey("aadd"));
    let (a, b) = pair(&redis, &unique("addrm"), &[&k1, &k2], |_| {}).await;
    // B's own keys are all exhausted for the next minutes.
    for k in [&k1, &k2] {
        b.state().set_key(k, KeyBehavior::Quota { retry_secs: 300 });
    }
    assert_eq!(chat(&b).await.status, StatusCode::TOO_MANY_REQUESTS);
    let r = admin(&a, Method::POST, "/admin/keys", json!({"keys": [added]})).await;
    assert_eq!(r.json()["added"], 1, "{}", r.text());
    until(&b, Duration::from_secs(1), "added on B", |k| {
        entry(k, &added).is_some()
    })
    .await;
    assert_eq!(
        chat(&b).await.status,
        StatusCode::OK,
        "the added key serves B's next request"
    );
    assert_eq!(b.state().count_for_key(&added), 1);
    // Removed through A: gone on B.
    let r = admin(
        &a,
        Method::DELETE,
        &format!("/admin/keys/{}", key_id(&added)),
        json!(null),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    until(&b, Duration::from_secs(1), "removed on B", |k| {
        entry(k, &added).is_none()
    })
    .await;
    assert_eq!(chat(&b).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        b.state().count_for_key(&added),
        1,
        "not picked after removal"
    );
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Restarts: file mode and Redis mode
// ---------------------------------------------------------------------------

/// Change every kind of key state on a first gateway, restart, and check it
/// all on a second one started with `API_KEYS` + one new key.
async fn survives_a_restart(store_vars: &[(&str, &str)]) {
    let (e1, e2, e3, added, new_env) = (
        gkey("re1"),
        gkey("re2"),
        gkey("re3"),
        gkey("radd"),
        gkey("rnew"),
    );
    // Round robin starts with e2 (disabled), then e3 (cooling), then e1.
    let env = json!([e2, e3, e1]).to_string();
    let mut vars = vec![("API_KEYS", env.as_str()), ("MAX_RETRIES", "3")];
    vars.extend_from_slice(store_vars);
    let fake = Fake::start().await.unwrap();
    fake.state.set_key(&e2, KeyBehavior::Expired);
    fake.state
        .set_key(&e3, KeyBehavior::Quota { retry_secs: 600 });
    let gw = start_with_fake(fake, &vars).await;
    // e1 serves after e2 (disabled) and e3 (cooling) fail once each.
    assert_eq!(chat(&gw).await.status, StatusCode::OK);
    assert_eq!(gw.app.pool.counts().disabled, 1);
    assert_eq!(gw.app.pool.counts().cooling, 1);
    let r = admin(&gw, Method::POST, "/admin/keys", json!({"keys": [added]})).await;
    assert_eq!(r.json()["added"], 1);
    let r = admin(
        &gw,
        Method::DELETE,
        &format!("/admin/keys/{}", key_id(&e1)),
        json!(null),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;

    // Restart with the same API_KEYS plus a new key.
    let env2 = json!([e2, e3, e1, new_env]).to_string();
    let mut vars2 = vec![("API_KEYS", env2.as_str())];
    vars2.extend_from_slice(store_vars);
    for round in 0..2 {
        let gw = start(&vars2).await;
        let keys = keys_of(&gw).await;
        assert!(
            entry(&keys, &e1).is_none(),
            "round {round}: a removed key stays out"
        );
        let d = entry(&keys, &e2).unwrap();
        assert_eq!(d["state"], "disabled", "round {round}");
        assert!(d["reason"].as_str().unwrap().contains("expired"), "{d}");
        let c = entry(&keys, &e3).unwrap();
        let left = c["cooling"]["gemini-2.5-flash"].as_u64().unwrap_or(0);
        assert!(c["state"] == "cooling" && left > 500, "round {round}: {c}");
        assert_eq!(entry(&keys, &added).unwrap()["source"], "added");
        assert_eq!(
            entry(&keys, &new_env).unwrap()["source"],
            "env",
            "round {round}"
        );
        assert_eq!(keys.len(), 4, "round {round}: {keys:?}");
        // The restored state is honoured: only the added and the new key serve.
        for _ in 0..4 {
            assert_eq!(chat(&gw).await.status, StatusCode::OK);
        }
        for k in [&e1, &e2, &e3] {
            assert_eq!(gw.state().count_for_key(k), 0, "round {round}");
        }
        gw.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_mode_keeps_keys_and_their_state_across_a_restart() {
    let dir = std::env::temp_dir().join(unique("file").trim_end_matches(':'));
    let d = dir.to_string_lossy().into_owned();
    survives_a_restart(&[("DATA_DIR", &d)]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_keeps_keys_and_their_state_across_a_restart() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (url, prefix) = (redis.url(), unique("restart"));
    survives_a_restart(&[("REDIS_URL", &url), ("REDIS_PREFIX", &prefix)]).await;
}

/// Redis stopped under a 64-client load: every request is answered, `/health`
/// says `degraded`; Redis back: the gateway reconnects by itself and writes
/// what it kept while Redis was down (usage counters added exactly, a 429
/// cooldown learned meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_under_load_costs_no_request_and_state_merges_when_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    // Redis keeps its data on disk, so what reached it before it died is there
    // when it comes back and the counts can be checked exactly.
    let dir = std::env::temp_dir().join(format!("gb-redis-fault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let Some(redis) = RedisServer::start_with(None, Some(&dir)) else {
        return;
    };
    let (port, url, prefix) = (redis.port, redis.url(), unique("fault"));
    let keys: Vec<String> = ["fa", "fb", "fc"].iter().map(|t| gkey(t)).collect();
    let list = serde_json::to_string(&keys).unwrap();
    let gw = Arc::new(
        start(&[
            ("API_KEYS", &list),
            ("REDIS_URL", &url),
            ("REDIS_PREFIX", &prefix),
        ])
        .await,
    );
    assert_eq!(get(&gw, "/health").await.json()["store"], "redis");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = chat(&gw).await;
                    let n = if r.status == StatusCode::OK {
                        &ok
                    } else {
                        &failed
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(redis); // killed under load
    let t = Instant::now();
    while get(&gw, "/health").await.json()["store"] != "degraded" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "never reported degraded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Learned while Redis is down: a 429 cooldown on the third key.
    gw.state()
        .set_key(&keys[2], KeyBehavior::Quota { retry_secs: 600 });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed, 0,
        "no request failed because Redis died ({ok} answered)"
    );
    assert!(ok > 64, "the load ran: {ok}");

    // Redis back on the same port, with what it had written to disk.
    let _redis = RedisServer::start_with(Some(port), Some(&dir)).unwrap();
    let t = Instant::now();
    while get(&gw, "/health").await.json()["store"] != "redis" {
        assert!(t.elapsed() < Duration::from_secs(40), "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.app.store.flush().await.unwrap();
    let mode = gemini_balance::store::Mode::Redis {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let (h, snap) = gemini_balance::store::open_mode(mode, None).await.unwrap();
    let day = |f: fn(&gemini_balance::store::Counts) -> u64| -> u64 {
        snap.usage
            .iter()
            .filter(|(b, _)| b.grain == gemini_balance::store::Grain::Day)
            .map(|(_, c)| f(c))
            .sum()
    };
    assert_eq!(
        day(|c| c.successes),
        ok,
        "every answered request counted once"
    );
    assert_eq!(
        day(|c| c.requests),
        ok + day(|c| c.rate_limited),
        "attempts = answers + 429s"
    );
    assert!(day(|c| c.rate_limited) >= 1, "the 429 was counted");
    let st = snap
        .states
        .get(&key_id(&keys[2]))
        .expect("the cooled key's state was written");
    assert!(
        st.cooldowns
            .values()
            .any(|&until| until > now_ms() + 500_000),
        "the cooldown learned while Redis was down: {st:?}"
    );
    drop(h);
    match Arc::try_unwrap(gw) {
        Ok(gw) => gw.shutdown().await,
        Err(_) => panic!("a client still holds the gateway"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A setting patched through one gateway's `/admin/config` applies on the
/// other (on its next request) within a second, and a revert too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_patched_on_one_applies_on_the_other() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (k1, k2) = (gkey("s1"), gkey("s2"));
    let (a, b) = pair(&redis, &unique("settings"), &[&k1, &k2], |_| {}).await;
    let value_on = |gw: &Gw| gw.app.cfg().max_retries;
    assert_eq!(value_on(&b), 3);
    let r = admin(
        &a,
        Method::PATCH,
        "/admin/config",
        json!({"MAX_RETRIES": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = Instant::now();
    while value_on(&b) != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "B never got MAX_RETRIES=1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B now tries at most 2 keys for a request (1 retry): with both keys failing, 2 attempts.
    for k in [&k1, &k2] {
        b.state().set_key(k, KeyBehavior::Internal);
    }
    let before = b.state().requests().len();
    assert_ne!(chat(&b).await.status, StatusCode::OK);
    assert_eq!(
        b.state().requests().len() - before,
        2,
        "B retried once, as patched on A"
    );
    let list = get(&b, "/admin/config").await.json();
    let e = list["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "MAX_RETRIES")
        .unwrap()
        .clone();
    assert_eq!((&e["value"], &e["source"]), (&json!("1"), &json!("stored")));
    // Reverted on A: back to B's environment value.
    let r = admin(&a, Method::DELETE, "/admin/config/MAX_RETRIES", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = Instant::now();
    while value_on(&b) != 3 {
        assert!(t.elapsed() < Duration::from_secs(1), "B never reverted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Issue 15: two replicas on one Redis share their quota counts. Three keys
/// the (one, shared) fake holds to 5 requests a minute, `MODEL_LIMITS`
/// saying so, 30 requests spread over both gateways: together they send at
/// most 15 successful calls plus, per key, at most one over-limit call per
/// replica, and every other request is answered 429 with a `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_quota_counts_and_overshoot_by_at_most_one_call_each() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let keys = r#"["rpm5-key-a-0000001","rpm5-key-b-0000002","rpm5-key-c-0000003"]"#;
    let (url, prefix) = (redis.url(), unique("quota"));
    let vars = [
        ("API_KEYS", keys),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("MODEL_LIMITS", r#"{"gemini-*":{"rpm":5}}"#),
    ];
    let (a, b) = sharing_one_fake(&vars).await;
    let (mut ok, mut refused) = (0, 0);
    for round in 0..15 {
        let (ra, rb) = tokio::join!(chat(&a), chat(&b));
        for r in [ra, rb] {
            if r.status == StatusCode::OK {
                ok += 1;
                continue;
            }
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
            let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&ra), "round {round}: {ra}");
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Per key: its 5 calls, and at most one over the limit per replica
    // (both took the key's last slot before seeing each other's call).
    for k in [
        "rpm5-key-a-0000001",
        "rpm5-key-b-0000002",
        "rpm5-key-c-0000003",
    ] {
        let n = a.state().count_for_key(k);
        assert!(n <= 5 + 2, "{k}: {n} calls reached Google");
    }
    let over = a.state().quota_refusals();
    let calls = a.state().requests().len() as u64;
    assert!(
        over <= 6 && calls - over <= 15,
        "{calls} calls, {over} refused"
    );
    assert!(
        (12..=15).contains(&ok),
        "the keys' capacity was used: {ok} served"
    );
    assert_eq!(ok + refused, 30);
    // Each replica counts the other's calls too (within a second): both
    // show every served call in the keys' minute.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for gw in [&a, &b] {
        let used: u64 = keys_of(gw)
            .await
            .iter()
            .map(|k| {
                k["quota"]["gemini-2.5-flash"]["minute"]["used"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(used, ok, "both replicas' calls counted");
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Issue 15: a limit replica A learned from Google's 429 is used by replica
/// B's picks. One key the (shared) fake holds to 3 requests a minute, no
/// `MODEL_LIMITS`: A's fourth call gets the 429 and learns "3 a minute"; B
/// (its cooldown cleared, so only the limit can stop it) then answers 429
/// itself, with a `Retry-After` and the limit named, without calling Google.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_learned_from_a_429_by_one_replica_is_used_by_the_other() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    const KEY: &str = "rpm3-key-learn-0000001";
    const MODEL: &str = "gemini-2.5-pro";
    let keys = json!([KEY]).to_string();
    let (url, prefix) = (redis.url(), unique("learn"));
    let vars = [
        ("API_KEYS", keys.as_str()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
    ];
    let (a, b) = sharing_one_fake(&vars).await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let chat = |gw| post_json(gw, "/v1/chat/completions", &body);
    // B knows no limit yet: nothing is known of the key.
    let limit = |keys: &[Value]| {
        entry(keys, KEY).and_then(|e| e["quota"][MODEL]["minute"]["limit"].as_u64())
    };
    let first = Instant::now();
    for _ in 0..3 {
        let r = chat(&a).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(limit(&keys_of(&b).await), None, "no limit before the 429");
    let r = chat(&a).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(a.state().quota_refusals(), 1, "Google's 429 taught A");
    // B learns the limit (and A's three calls) within a second.
    until(
        &b,
        Duration::from_secs(2),
        "the limit and the calls on B",
        |k| {
            limit(k) == Some(3)
                && entry(k, KEY).is_some_and(|e| e["quota"][MODEL]["minute"]["used"] == 3)
        },
    )
    .await;
    // Clear the key's cooldown on B: only the learned limit can hold it now.
    let id = key_id(KEY);
    let r = admin(
        &b,
        Method::POST,
        &format!("/status/keys/{id}/reset"),
        json!({}),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text());
    until(&b, Duration::from_secs(1), "not cooling on B", |k| {
        entry(k, KEY).is_some_and(|e| e["state"] == "active")
    })
    .await;
    let calls = a.state().count_for_key(KEY);
    let r = chat(&b).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    // The first call leaves Google's minute 60 s after it was made; B knows
    // A's calls by the second (so up to a second more).
    let exact = 60.0 - first.elapsed().as_secs_f64();
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        retry as f64 >= exact.floor() && retry as f64 <= exact.ceil() + 1.0,
        "Retry-After {retry}, the slot opens in {exact:.2} s"
    );
    assert!(
        r.text().contains("3 requests/minute"),
        "the limit named: {}",
        r.text()
    );
    assert_eq!(
        a.state().count_for_key(KEY),
        calls,
        "B did not call Google for a call it knew would be refused"
    );
    a.shutdown().await;
    b.shutdown().await;
}
