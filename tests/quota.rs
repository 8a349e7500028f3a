//! Quota-aware key scheduling (issue 15) against the fake enforcing
//! per key × model limits (keys named `rpm5-…`, `rpd3-…`): exact goodput,
//! 429s answered by the gateway itself with an exact `Retry-After`, limits
//! learned from Google's 429 body, paid keys never capped, `QUOTA_AWARE=false`,
//! the day's limit on a moved clock, and what `/admin/keys` and `/metrics` show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use serde_json::{Value, json};

const MODEL: &str = "gemini-2.5-flash";

fn chat(text: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": text}]})
}

fn native() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
}

/// Three keys the fake holds to 5 requests a minute each.
const RPM5_KEYS: &str = r#"["rpm5-key-a-0000001","rpm5-key-b-0000002","rpm5-key-c-0000003"]"#;

fn retry_after(r: &Answer) -> u64 {
    r.headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {}", r.text()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Send 30 chat requests; check exactly 15 succeed and every refusal is a
/// 429 whose `Retry-After` is the time left until the first slot opens
/// (the first success plus a minute) within a second. Returns the refusals.
async fn thirty(gw: &Gw, concurrent: bool) -> Vec<Answer> {
    let t0 = Instant::now();
    let answers: Vec<(Answer, Instant)> = if concurrent {
        let url = gw.url("/v1/chat/completions");
        let futs = (0..30).map(|i| {
            let url = url.clone();
            async move {
                let body = serde_json::to_vec(&chat(&format!("q{i}"))).unwrap();
                let auth = format!("Bearer {TOKEN}");
                let headers = [
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ];
                let r = send(http::Method::POST, &url, &headers, body).await;
                (r, Instant::now())
            }
        });
        futures_join_all(futs).await
    } else {
        let mut v = Vec::new();
        for i in 0..30 {
            let r = post_json(gw, "/v1/chat/completions", &chat(&format!("q{i}"))).await;
            v.push((r, Instant::now()));
        }
        v
    };
    let ok = answers
        .iter()
        .filter(|(r, _)| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 15, "exactly the capacity succeeds");
    let mut refused = Vec::new();
    for (r, at) in answers {
        if r.status == StatusCode::OK {
            continue;
        }
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
        // The first slot opens a minute after the first call was counted,
        // which happened between t0 and this answer.
        let left_max = 60.0 - t0.elapsed().as_secs_f64() + at.elapsed().as_secs_f64();
        let left_min = 60.0 - t0.elapsed().as_secs_f64();
        let ra = retry_after(&r) as f64;
        assert!(
            ra >= left_min - 1.0 && ra <= left_max + 1.0,
            "Retry-After {ra} not within 1 s of {left_min:.1}..{left_max:.1}: {}",
            r.text()
        );
        refused.push(r);
    }
    refused
}

/// `join_all` without a new dependency: spawn each and await in order.
async fn futures_join_all<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn three_keys_at_5_rpm_serve_exactly_15_of_30_and_learn_each_limit_once() {
    let gw = start(&[("API_KEYS", RPM5_KEYS)]).await;
    let refused = thirty(&gw, false).await;
    assert!(
        gw.state().quota_refusals() <= 3,
        "one over-limit call per key to learn its limit, saw {}",
        gw.state().quota_refusals()
    );
    // After learning, the gateway answers itself and names the limit.
    let last = refused.last().unwrap().json();
    let msg = last["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("all 3 keys are at their 5 requests/minute limit for gemini-2.5-flash; the next slot opens in "),
        "{msg}"
    );
    assert_eq!(last["error"]["code"], "rate_limit_exceeded");
    // Even round robin: 5 served calls per key.
    for k in [
        "rpm5-key-a-0000001",
        "rpm5-key-b-0000002",
        "rpm5-key-c-0000003",
    ] {
        let n = gw.state().count_for_key(k);
        assert!((5..=6).contains(&n), "{k}: {n} calls");
    }
    // The native route answers in Google's format.
    let r = post_json(
        &gw,
        &format!("/v1beta/models/{MODEL}:generateContent"),
        &native(),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(retry_after(&r) >= 1);
    assert!(gw.state().quota_refusals() <= 3);
}

#[tokio::test]
async fn with_model_limits_no_call_is_wasted_even_all_at_once() {
    let gw = start(&[
        ("API_KEYS", RPM5_KEYS),
        ("MODEL_LIMITS", r#"{"gemini-*":{"rpm":5}}"#),
    ])
    .await;
    let refused = thirty(&gw, true).await;
    assert_eq!(refused.len(), 15);
    assert_eq!(
        gw.state().quota_refusals(),
        0,
        "no over-limit call reached Google"
    );
    let msg = refused[0].json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("at their 5 requests/minute limit"), "{msg}");
}

#[tokio::test]
async fn a_paid_key_is_never_throttled_before_a_429_and_quota_aware_false_is_todays_behaviour() {
    // No tier, no limits: 12 calls on one key all go through.
    let gw = start(&[("API_KEYS", r#"["paid-key-000000001"]"#)]).await;
    for _ in 0..12 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    // KEY_TIER=free caps the same key at the built-in free tier (10 rpm for
    // gemini-2.5-flash) without a single 429 from Google.
    let gw = start(&[
        ("API_KEYS", r#"["paid-key-000000001"]"#),
        ("KEY_TIER", "free"),
    ])
    .await;
    let mut ok = 0;
    for _ in 0..12 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        ok += usize::from(r.status == StatusCode::OK);
    }
    assert_eq!(ok, 10);
    assert_eq!(gw.state().count_for_key("paid-key-000000001"), 10);
    // QUOTA_AWARE=false with MODEL_LIMITS: limits are not applied, every
    // call goes to Google, each over-limit one is refused there.
    let gw = start(&[
        ("API_KEYS", r#"["rpm5-key-a-0000001"]"#),
        ("MODEL_LIMITS", r#"{"gemini-*":{"rpm":5}}"#),
        ("QUOTA_AWARE", "false"),
        ("COOLDOWN_SECONDS", "0"),
    ])
    .await;
    for _ in 0..5 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        gw.state().quota_refusals(),
        1,
        "the 6th call was sent to Google"
    );
}

#[tokio::test]
async fn a_day_limit_holds_until_pacific_midnight_on_a_moved_clock() {
    let gw = start(&[
        ("API_KEYS", r#"["rpd3-key-a-0000001"]"#),
        ("MODEL_LIMITS", r#"{"gemini-2.5-flash":{"rpd":3}}"#),
    ])
    .await;
    for _ in 0..3 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r);
    let midnight = gemini_balance::keys::until_pacific_midnight(std::time::SystemTime::now());
    assert!(
        wait.abs_diff(midnight.as_secs()) <= 1,
        "Retry-After {wait} vs {midnight:?} to Pacific midnight"
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("the only key is at its 3 requests/day limit"),
        "{msg}"
    );
    assert_eq!(gw.state().quota_refusals(), 0);
    // Midnight Pacific passes (both clocks): the key serves again.
    gw.app
        .pool
        .advance_quota_clock(Duration::from_secs(wait + 1));
    gw.state().advance_clock(Duration::from_secs(wait + 1));
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn a_429_despite_headroom_teaches_the_key_googles_value() {
    // MODEL_LIMITS says 10, the fake (Google) holds the key to 2.
    let gw = start(&[
        ("API_KEYS", r#"["rpm2-key-a-0000001"]"#),
        ("MODEL_LIMITS", r#"{"gemini-*":{"rpm":10}}"#),
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat("hi"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(gw.state().quota_refusals(), 1);
    // Learned: the next ones are refused by the gateway, naming Google's 2.
    for _ in 0..3 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("at its 2 requests/minute limit"), "{msg}");
    }
    assert_eq!(gw.state().quota_refusals(), 1);
}

#[tokio::test]
async fn admin_keys_and_metrics_show_used_and_limit_per_model() {
    let gw = start(&[
        ("API_KEYS", r#"["rpm5-key-a-0000001","rpm5-key-b-0000002"]"#),
        ("MODEL_LIMITS", r#"{"gemini-2.5-flash":{"rpm":5,"rpd":20}}"#),
    ])
    .await;
    for _ in 0..3 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = get(&gw, "/admin/keys").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let keys = r.json()["keys"].as_array().unwrap().clone();
    let used: Vec<u64> = keys
        .iter()
        .map(|k| {
            let q = &k["quota"][MODEL];
            assert_eq!(q["minute"]["limit"], 5, "{k}");
            assert_eq!(q["day"]["limit"], 20, "{k}");
            let resets = q["minute"]["resets_in"].as_u64().unwrap();
            assert!((58..=60).contains(&resets), "{k}");
            assert!(q["day"]["resets_in"].as_u64().unwrap() > 0);
            assert_eq!(q["minute"]["used"], q["day"]["used"]);
            q["minute"]["used"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(used.iter().sum::<u64>(), 3);
    assert!(used.contains(&2) && used.contains(&1), "{used:?}");
    let status = get(&gw, "/status").await.json();
    let used: u64 = status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["quota"][MODEL]["minute"]["limit"], 5, "{k}");
            k["quota"][MODEL]["minute"]["used"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(used, 3, "/status shows it too");
    let m = get(&gw, "/metrics").await.text();
    assert!(
        m.contains(
            "gemini_balance_quota_remaining{model=\"gemini-2.5-flash\",window=\"minute\"} 7"
        ),
        "{m}"
    );
    assert!(
        m.contains("gemini_balance_quota_remaining{model=\"gemini-2.5-flash\",window=\"day\"} 37"),
        "{m}"
    );
    assert!(!m.contains("rpm5-key"), "no key in the metrics");
}

/// Chat on `url` as the test token, from a spawned task.
fn spawn_chat(url: String, tag: &'static str) -> tokio::task::JoinHandle<(Answer, Instant)> {
    tokio::spawn(async move {
        let body = serde_json::to_vec(&chat(tag)).unwrap();
        let auth = format!("Bearer {TOKEN}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let r = send(http::Method::POST, &url, &headers, body).await;
        (r, Instant::now())
    })
}

#[tokio::test]
async fn queue_timeout_serves_waiting_requests_in_order_and_never_holds_one_too_long() {
    let gw = start(&[
        ("API_KEYS", r#"["rpm1-key-a-0000001"]"#),
        ("MODEL_LIMITS", r#"{"gemini-*":{"rpm":1}}"#),
        ("QUEUE_TIMEOUT", "3"),
        ("QUEUE_MAX", "2"),
    ])
    .await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(
        post_json(&gw, "/v1/chat/completions", &chat("first"))
            .await
            .status,
        StatusCode::OK
    );
    // The next slot is a minute away, far past QUEUE_TIMEOUT: 429 at once.
    let t = Instant::now();
    let r = post_json(&gw, "/v1/chat/completions", &chat("late")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "no pointless wait"
    );
    // 58 s later (both clocks) the slot is 2 s away: requests wait for it.
    gw.app.pool.advance_quota_clock(Duration::from_secs(58));
    gw.state().advance_clock(Duration::from_secs(58));
    let t = Instant::now();
    let a = spawn_chat(url.clone(), "A");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = spawn_chat(url.clone(), "B");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The line is full (QUEUE_MAX = 2): a third is answered at once.
    let c = post_json(&gw, "/v1/chat/completions", &chat("C")).await;
    assert_eq!(c.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(t.elapsed() < Duration::from_millis(800));
    let (a, a_at) = a.await.unwrap();
    let (b, b_at) = b.await.unwrap();
    // A got the slot when it opened (about 2 s), in arrival order.
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let waited = a_at.duration_since(t);
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
    // B's next slot is a minute after A's call: past its deadline, so it is
    // answered as soon as that is known, never after its 3 s.
    assert_eq!(b.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(b_at.duration_since(t) < Duration::from_millis(3300));
    assert!(retry_after(&b) >= 58, "{:?}", b.headers);
    assert_eq!(gw.state().quota_refusals(), 0);
}

#[tokio::test]
async fn input_tokens_per_minute_are_counted_from_an_estimate() {
    let gw = start(&[
        ("API_KEYS", r#"["paid-key-000000001"]"#),
        ("MODEL_LIMITS", r#"{"gemini-*":{"tpm":1000}}"#),
    ])
    .await;
    // About 400 tokens each (1,600 characters).
    let long = "word ".repeat(320);
    for _ in 0..2 {
        let r = post_json(&gw, "/v1/chat/completions", &chat(&long)).await;
        let sent = gw
            .state()
            .requests()
            .last()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned());
        assert_eq!(r.status, StatusCode::OK, "{} {sent:?}", r.text());
    }
    let r = post_json(&gw, "/v1/chat/completions", &chat(&long)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("at its 1000 input tokens/minute limit"),
        "{msg}"
    );
    assert!((58..=60).contains(&retry_after(&r)), "{:?}", r.headers);
    // A short one still fits.
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let keys = get(&gw, "/admin/keys").await.json();
    let tokens = &keys["keys"][0]["quota"][MODEL]["tokens"];
    assert_eq!(tokens["limit"], 1000);
    let used = tokens["used"].as_u64().unwrap();
    assert!((800..=1000).contains(&used), "{tokens}");
    assert_eq!(gw.state().count_for_key("paid-key-000000001"), 3);
}

#[tokio::test]
async fn the_token_estimate_is_corrected_from_the_answers_usage_metadata() {
    let gw = start(&[
        ("API_KEYS", r#"["paid-key-000000001"]"#),
        ("MODEL_LIMITS", r#"{"gemini-*":{"tpm":1000}}"#),
    ])
    .await;
    // 300 one-letter words: estimated at 150 tokens (a quarter of 600
    // bytes), counted 300 by the fake (a token per word).
    let text = "a ".repeat(300);
    let mut ok = 0;
    for _ in 0..8 {
        let r = post_json(&gw, "/v1/chat/completions", &chat(&text)).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["usage"]["prompt_tokens"], 300, "{}", r.text());
            ok += 1;
        } else {
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
        }
    }
    // On the estimate alone six would pass (6 x 150 = 900); corrected, the
    // key holds 900 after three and a fourth (150 more) is over 1000.
    assert_eq!(ok, 3);
    let keys = get(&gw, "/admin/keys").await.json();
    assert_eq!(keys["keys"][0]["quota"][MODEL]["tokens"]["used"], 900);
}

#[tokio::test]
async fn quota_settings_change_live_through_admin_config() {
    let gw = start(&[("API_KEYS", r#"["plain-key-0000001"]"#)]).await;
    let patch = |body: Value| {
        let url = gw.url("/admin/config");
        async move {
            let auth = format!("Bearer {TOKEN}");
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            send(http::Method::PATCH, &url, &headers, body.to_string()).await
        }
    };
    let r = patch(json!({"MODEL_LIMITS": r#"{"gemini-*":{"rpm":1}}"#})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let chat_status = || async {
        post_json(&gw, "/v1/chat/completions", &chat("hi"))
            .await
            .status
    };
    assert_eq!(chat_status().await, StatusCode::OK);
    assert_eq!(chat_status().await, StatusCode::TOO_MANY_REQUESTS);
    let r = patch(json!({"QUOTA_AWARE": "false"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(chat_status().await, StatusCode::OK);
    let r = patch(json!({"MODEL_LIMITS": "[1]"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("MODEL_LIMITS"), "{}", r.text());
}

#[tokio::test]
async fn the_console_shows_what_is_left_today_per_key_and_per_model() {
    let gw = start(&[]).await;
    let asset = |path: &'static str| {
        let url = gw.url(path);
        async move {
            let r = send(http::Method::GET, &url, &[], bytes::Bytes::new()).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
            r.text()
        }
    };
    let keys = asset("/dashboard-keys.js").await;
    assert!(
        keys.contains("const q = k.quota || {};"),
        "reads /admin/keys' quota"
    );
    assert!(keys.contains("t('keys.leftToday'") && keys.contains("t('keys.leftTotal'"));
    let i18n = asset("/dashboard-i18n.js").await;
    assert_eq!(
        i18n.matches("'keys.leftToday':").count(),
        2,
        "English and Chinese"
    );
    assert_eq!(i18n.matches("'keys.leftTotal':").count(), 2);
    let page = asset("/dashboard").await;
    assert!(page.contains("id=\"quota-left\""));
}

/// `PATCH /admin/keys/{id}` as the admin.
async fn patch_key(gw: &Gw, id: &str, body: Value) -> Answer {
    let url = gw.url(&format!("/admin/keys/{id}"));
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    send(http::Method::PATCH, &url, &headers, body.to_string()).await
}

#[tokio::test]
async fn a_keys_tier_is_set_through_the_admin_api_and_a_paid_key_is_never_capped() {
    let key = "paid-key-000000001";
    let id = gemini_balance::store::key_id(key);
    let gw = start(&[
        ("API_KEYS", r#"["paid-key-000000001"]"#),
        ("KEY_TIER", "free"),
    ])
    .await;
    let r = patch_key(&gw, &id, json!({"tier": "paid"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (&r.json()["tier"], &r.json()["free_tier"]),
        (&json!("paid"), &json!(false))
    );
    // KEY_TIER=free would cap it at 10 a minute; paid, it is not.
    for _ in 0..12 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    // Back to KEY_TIER (free): the 12 calls of this minute are over its 10.
    let r = patch_key(&gw, &id, json!({"tier": null})).await;
    assert_eq!(r.json()["free_tier"], true, "{}", r.text());
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    // Errors in the route's (OpenAI) format.
    let r = patch_key(&gw, &id, json!({"tier": "gold"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["param"], "tier", "{}", r.text());
    let r = patch_key(&gw, &id, json!({"state": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = patch_key(&gw, "nope", json!({"tier": "free"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn learned_limits_and_tiers_survive_a_restart_in_data_dir_mode() {
    let dir = std::env::temp_dir().join(format!(
        "gb-quota-restart-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let d = dir.to_string_lossy().into_owned();
    let keys = r#"["rpm2-key-a-0000001","paid-key-000000002"]"#;
    let vars = [
        ("API_KEYS", keys),
        ("DATA_DIR", d.as_str()),
        ("COOLDOWN_SECONDS", "0"),
    ];
    let gw = start(&vars).await;
    let learner = gemini_balance::store::key_id("rpm2-key-a-0000001");
    let paid = gemini_balance::store::key_id("paid-key-000000002");
    // Only the rpm2 key serves: the other is set to free tier with 0 left.
    assert_eq!(
        patch_key(&gw, &paid, json!({"tier": "free"})).await.status,
        StatusCode::OK
    );
    gw.state()
        .set_key("paid-key-000000002", fake_gemini::KeyBehavior::Internal);
    for _ in 0..4 {
        post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    }
    assert!(
        gw.state().quota_refusals() >= 1,
        "the fake's 429 taught the limit"
    );
    gw.shutdown().await;

    // Restarted on the same DATA_DIR: the limit is known before any call.
    let gw = start(&vars).await;
    let keys = get(&gw, "/admin/keys").await.json();
    let find = |id: &str| {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .unwrap()
            .clone()
    };
    let k = find(&learner);
    assert_eq!(k["quota"][MODEL]["minute"]["limit"], 2, "{k}");
    assert_eq!(
        k["free_tier"], true,
        "learned from the FreeTier quota id: {k}"
    );
    assert_eq!(find(&paid)["tier"], "free");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admin_keys_pages_with_limit_and_cursor() {
    let keys: Vec<String> = (0..25).map(|i| format!("page-key-{i:010}")).collect();
    let list = serde_json::to_string(&keys).unwrap();
    let gw = start(&[("API_KEYS", list.as_str())]).await;
    let mut seen = Vec::new();
    let mut cursor: Option<u64> = None;
    let mut pages = 0;
    loop {
        let path = match cursor {
            Some(c) => format!("/admin/keys?limit=10&cursor={c}"),
            None => "/admin/keys?limit=10".to_string(),
        };
        let r = get(&gw, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let page = r.json();
        assert_eq!(page["total"], 25);
        let ks = page["keys"].as_array().unwrap();
        assert!(ks.len() <= 10);
        seen.extend(ks.iter().map(|k| k["id"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = keys
        .iter()
        .map(|k| gemini_balance::store::key_id(k))
        .collect();
    assert_eq!(seen, want, "every key once, in order");
    // Without limit: all of them; a bad limit is a 400.
    assert_eq!(
        get(&gw, "/admin/keys").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
    let r = get(&gw, "/admin/keys?limit=0").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = get(&gw, "/admin/keys?limit=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}
