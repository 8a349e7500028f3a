//! The key pool against real Gemini error bodies from the fake: disabling,
//! cooldowns, client errors, cut streams, no usable key, even spread,
//! scheduled re-verification (interval and `CHECK_CRON`), the daily quota
//! reset, keep-alive, /status and /metrics.
//!
//! Tests of the pool alone run on tokio's paused clock (`start_paused`): the
//! pool's time moves only when the test says, so cooldowns and rests cannot
//! run out behind a slow machine's back. Tests through the gateway keep real
//! time (real sockets, real timeouts).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn chat(text: &str) -> Value {
    json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn invalid_key_is_used_once_then_never_again() {
    let gw = start(&[(
        "API_KEYS",
        r#"["bad-key-00000001","good-key-0000001","good-key-0000002"]"#,
    )])
    .await;
    for _ in 0..12 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(
        gw.state().count_for_key("bad-key-00000001"),
        1,
        "an invalid key is tried once"
    );
    assert_eq!(
        gw.state().count_for_key("good-key-0000001") + gw.state().count_for_key("good-key-0000002"),
        12
    );
    let st = get(&gw, "/status").await.json();
    let bad = st["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "disabled")
        .unwrap();
    assert!(
        bad["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("API key not valid")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn quota_key_cools_down_and_comes_back() {
    let gw = start(&[("API_KEYS", r#"["quota-key-000001","good-key-0000001"]"#)]).await;
    gw.state()
        .set_key("quota-key-000001", KeyBehavior::Quota { retry_secs: 1 });
    for _ in 0..6 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat("hi"))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        gw.state().count_for_key("quota-key-000001"),
        1,
        "cooling: not used again"
    );
    // Another model is not affected by this model's cooldown.
    let other = json!({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "x"}]});
    for _ in 0..2 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &other).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        gw.state().count_for_key("quota-key-000001"),
        2,
        "per-model cooldown"
    );
    gw.state().set_key("quota-key-000001", KeyBehavior::Ok);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..4 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat("hi"))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert!(
        gw.state().count_for_key("quota-key-000001") >= 3,
        "back after its delay"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn client_errors_blame_no_key() {
    let gw = start(&[]).await;
    for _ in 0..5 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("[[status=400]]")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        gw.state().requests().len(),
        5,
        "a client 400 is not retried"
    );
    let st = get(&gw, "/status").await.json();
    assert!(
        st["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["state"] == "active"),
        "{st}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn region_errors_carry_a_hint_and_blame_no_key() {
    let gw = start(&[("API_KEYS", r#"["region-key-00001","region-key-00002"]"#)]).await;
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("region")
    );
    assert_eq!(gw.state().requests().len(), 1);
    assert_eq!(gw.app.pool.counts().active, 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn cut_stream_ends_with_an_error_and_no_duplicate_text() {
    let gw = start(&[("API_KEYS", r#"["cut-key-00000001"]"#)]).await;
    gw.state()
        .set_key("cut-key-00000001", KeyBehavior::CutAfter { events: 2 });
    let mut body = chat("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda");
    body["stream"] = json!(true);
    let r = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = sse_events(&r.text());
    assert_eq!(
        gw.state().requests().len(),
        1,
        "never retried after the first byte"
    );
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let err = chunks
        .iter()
        .find(|c| c.get("error").is_some())
        .expect("an error event ends the stream");
    assert!(err["error"]["message"].as_str().unwrap().contains("broke"));
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
        })
        .collect();
    assert!(!text.is_empty());
    assert!(
        "Echo: alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".starts_with(&text),
        "prefix only: {text:?}"
    );
    assert!(
        chunks.iter().all(|c| c["choices"]
            .get(0)
            .map(|c| c["finish_reason"].is_null())
            .unwrap_or(true)),
        "no normal finish"
    );

    // Native SSE: Google's error object ends the stream.
    let r = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        r#"{"contents":[{"parts":[{"text":"one two three four five six seven eight nine ten"}]}]}"#,
    )
    .await;
    let events = sse_events(&r.text());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], 502);
    assert_eq!(last["error"]["status"], "INTERNAL");
    gw.shutdown().await;
}

#[tokio::test]
async fn no_usable_key_answers_at_once() {
    let gw = start(&[("API_KEYS", r#"["quota-key-000001","quota-key-000002"]"#)]).await;
    gw.state()
        .set_key("quota-key-000001", KeyBehavior::Quota { retry_secs: 30 });
    gw.state()
        .set_key("quota-key-000002", KeyBehavior::Quota { retry_secs: 20 });
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let before = gw.state().requests().len();
    let t = Instant::now();
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert!(t.elapsed() < Duration::from_millis(200));
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((18..=20).contains(&ra), "retry-after {ra}");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 cooling")
    );
    assert_eq!(
        gw.state().requests().len(),
        before,
        "no request on a cooling key"
    );
    gw.shutdown().await;

    let gw = start(&[("API_KEYS", r#"["bad-key-00000001","expired-key-00001"]"#)]).await;
    let _ = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    let t = Instant::now();
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert!(t.elapsed() < Duration::from_millis(200));
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 disabled")
    );
    assert_eq!(
        gw.state().requests().len(),
        2,
        "each dead key was tried once, then never"
    );
    let native = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:generateContent"),
        &[("x-goog-api-key", TOKEN)],
        r#"{"contents":[{"parts":[{"text":"x"}]}]}"#,
    )
    .await;
    assert_eq!(native.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(native.json()["error"]["status"], "UNAVAILABLE");
    gw.shutdown().await;
}

#[tokio::test]
async fn max_retries_zero_means_one_attempt() {
    let gw = start(&[
        ("API_KEYS", r#"["overload-key-0001","overload-key-0002"]"#),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(gw.state().requests().len(), 1);
    gw.shutdown().await;
    let gw = start(&[
        (
            "API_KEYS",
            r#"["overload-key-0001","overload-key-0002","overload-key-0003","good-key-000004"]"#,
        ),
        ("MAX_RETRIES", "3"),
    ])
    .await;
    let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        gw.state().requests().len(),
        4,
        "each retry on a different key"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_is_even_under_64_concurrent_clients() {
    let keys: Vec<String> = (0..4).map(|i| format!("spread-key-{i:06}")).collect();
    let gw = start(&[("API_KEYS", &serde_json::to_string(&keys).unwrap())]).await;
    let url = gw.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for c in 0..64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let r = send(
                    Method::POST,
                    &url,
                    &[
                        ("authorization", &format!("Bearer {TOKEN}")),
                        ("content-type", "application/json"),
                    ],
                    serde_json::to_vec(&chat(&format!("c{c} r{i}"))).unwrap(),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts: Vec<usize> = keys.iter().map(|k| gw.state().count_for_key(k)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 320);
    assert!(counts.iter().all(|c| (79..=81).contains(c)), "{counts:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn scheduler_reverifies_and_revives_keys() {
    let gw = start(&[
        ("API_KEYS", r#"["flaky-key-000001","good-key-0000001"]"#),
        ("CHECK_INTERVAL_HOURS", "0.0003"),
    ])
    .await;
    let _jobs = gemini_balance::scheduler::start(gw.app.clone())
        .await
        .expect("scheduler");
    gw.state().set_key("flaky-key-000001", KeyBehavior::Invalid);
    for _ in 0..3 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat("hi"))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(gw.app.pool.counts().disabled, 1);
    gw.state().set_key("flaky-key-000001", KeyBehavior::Ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.app.pool.counts().disabled == 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.app.pool.counts().disabled,
        0,
        "re-verification (models.get) brought the key back"
    );
    let verify_calls: Vec<_> = gw
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1beta/models/"))
        .collect();
    assert!(!verify_calls.is_empty());
    assert!(
        verify_calls
            .iter()
            .all(|r| r.api_key.as_deref() == Some("flaky-key-000001")),
        "only the failing key is re-verified"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn keepalive_pings_a_local_url() {
    let target = fake_gemini::Fake::start().await.unwrap();
    let url = format!("http://{}/health-ping", target.addr);
    let gw = start(&[("KEEPALIVE_URL", &url), ("KEEPALIVE_MINUTES", "0.01")]).await;
    let _jobs = gemini_balance::scheduler::start(gw.app.clone())
        .await
        .expect("scheduler");
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.state.requests().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reqs = target.state.requests();
    assert!(!reqs.is_empty(), "keep-alive reached the URL");
    assert_eq!(reqs[0].path, "/health-ping");
    assert!(
        reqs[0].api_key.is_none(),
        "no key sent to the keep-alive URL"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn check_cron_reverifies_on_its_schedule_without_piling_up() {
    // Every second by CHECK_CRON (CHECK_INTERVAL_HOURS stays at its 1 h
    // default, so only the cron schedule can bring the key back in time).
    let gw = start(&[
        ("API_KEYS", r#"["flaky-key-000001","good-key-0000001"]"#),
        ("CHECK_CRON", "*/1 * * * * *"),
    ])
    .await;
    let _jobs = gemini_balance::scheduler::start(gw.app.clone())
        .await
        .expect("scheduler");
    gw.state().set_key("flaky-key-000001", KeyBehavior::Invalid);
    for _ in 0..3 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat("hi"))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(gw.app.pool.counts().disabled, 1);
    // The key is good again, but its check takes 2.5 s: the runs due in
    // between must not start a second check of the same key.
    gw.state()
        .set_key("flaky-key-000001", KeyBehavior::Slow { ms: 2500 });
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.app.pool.counts().disabled == 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.app.pool.counts().disabled,
        0,
        "the cron schedule re-verified (models.get) and brought the key back"
    );
    // Let a few more runs come by: the pool is healthy, nothing is checked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let verify_calls: Vec<_> = gw
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1beta/models/"))
        .collect();
    assert_eq!(
        verify_calls.len(),
        1,
        "one check, not one per second while it was slow"
    );
    assert_eq!(
        verify_calls[0].api_key.as_deref(),
        Some("flaky-key-000001"),
        "only the failing key is re-verified"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_per_day_quota_cools_until_the_daily_reset() {
    let gw = start(&[(
        "API_KEYS",
        r#"["day-key-00000001","minute-key-00001","good-key-0000001"]"#,
    )])
    .await;
    gw.state()
        .set_key("day-key-00000001", KeyBehavior::QuotaDay);
    gw.state()
        .set_key("minute-key-00001", KeyBehavior::Quota { retry_secs: 600 });
    for _ in 0..6 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(gw.app.pool.counts().cooling, 2);
    let st = get(&gw, "/status").await.json();
    let day = st["keys"][0]["cooling"][0]["seconds_left"]
        .as_u64()
        .unwrap();
    let midnight =
        gemini_balance::keys::until_pacific_midnight(std::time::SystemTime::now()).as_secs();
    // (Within seconds, unless midnight passed in between: then a day apart.)
    let off = day.abs_diff(midnight);
    assert!(
        off <= 5 || off >= 86_400 - 5,
        "a per-day quota cools until midnight Pacific: {day} s, not {midnight} s"
    );
    gw.state().set_key("day-key-00000001", KeyBehavior::Ok);
    gw.state().set_key("minute-key-00001", KeyBehavior::Ok);
    // What the midnight job does: only the per-day cooldown ends.
    assert_eq!(gw.app.pool.reset_daily_quotas(), 1);
    assert_eq!(gw.app.pool.counts().cooling, 1);
    for _ in 0..4 {
        let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(gw.state().count_for_key("day-key-00000001"), 1 + 2);
    assert_eq!(
        gw.state().count_for_key("minute-key-00001"),
        1,
        "the per-minute cooldown stays"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn status_and_metrics_show_state_but_never_a_full_key() {
    let keys =
        r#"["AIzaSFAKEgood0000000000000000000000001","AIzaSFAKEbad00000000000000000000000002"]"#;
    let gw = start(&[("API_KEYS", keys), ("METRICS_PUBLIC", "false")]).await;
    gw.state().set_key(
        "AIzaSFAKEbad00000000000000000000000002",
        KeyBehavior::Invalid,
    );
    for _ in 0..4 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat("hi"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let st = get(&gw, "/status").await;
    assert_eq!(st.status, StatusCode::OK);
    let v = st.json();
    let ks = v["keys"].as_array().unwrap();
    assert_eq!(ks.len(), 2);
    assert_eq!(ks[0]["key"], "AIza…0001");
    assert_eq!(ks[0]["state"], "active");
    assert_eq!(ks[0]["successes"], 4);
    assert_eq!(ks[1]["state"], "disabled");
    assert_eq!(v["traffic"]["by_model"]["gemini-2.5-flash"], 4);
    let m = get(&gw, "/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let mt = m.text();
    assert!(mt.contains("gemini_balance_requests_total{route=\"chat\",model=\"gemini-2.5-flash\",status=\"200\"} 4"), "{mt}");
    assert!(mt.contains("gemini_balance_keys{state=\"disabled\"} 1"));
    assert!(mt.contains("gemini_balance_upstream_latency_seconds_count"));
    let anon = send(Method::GET, &gw.url("/metrics"), &[], Bytes::new()).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let anon = send(Method::GET, &gw.url("/status"), &[], Bytes::new()).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    for body in [st.text(), mt, get(&gw, "/health").await.text()] {
        assert!(!body.contains("AIzaSFAKEgood0000000000000000000000001"));
        assert!(!body.contains("AIzaSFAKEbad00000000000000000000000002"));
    }
    // Admin actions: reset the disabled key by its masked form.
    let reset = send(
        Method::POST,
        &gw.url("/status/keys/AIza%E2%80%A60002/reset"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text());
    assert_eq!(gw.app.pool.counts().disabled, 0);
    let verify = send(
        Method::POST,
        &gw.url("/status/verify"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(verify.json()["bad"], 1);
    assert_eq!(gw.app.pool.counts().disabled, 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_is_retried_on_another_key() {
    let gw = start(&[("API_KEYS", r#"["cut-key-00000001","good-key-0000001"]"#)]).await;
    gw.state()
        .set_key("cut-key-00000001", KeyBehavior::CutAfter { events: 0 });
    let mut body = chat("one two three four five six");
    body["stream"] = json!(true);
    let r = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let events = sse_events(&r.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks.iter().all(|c| c.get("error").is_none()),
        "no error reached the client"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str())
        })
        .collect();
    assert_eq!(
        text, "Echo: one two three four five six",
        "the whole answer, once"
    );
    assert_eq!(gw.state().count_for_key("cut-key-00000001"), 1);
    assert_eq!(gw.state().count_for_key("good-key-0000001"), 1);
    gw.shutdown().await;

    // With no retries left the client gets an HTTP error, not a 200 stream.
    let gw = start(&[
        ("API_KEYS", r#"["cut-key-00000001","good-key-0000001"]"#),
        ("MAX_RETRIES", "0"),
    ])
    .await;
    gw.state()
        .set_key("cut-key-00000001", KeyBehavior::CutAfter { events: 0 });
    let r = post_json(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_error");
    assert_eq!(gw.state().requests().len(), 1);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Even spread with dead keys at every position
// ---------------------------------------------------------------------------

use gemini_balance::keys::{KeyPool, Outcome, Pick, Selection};

/// What a key of a test pool is: usable, or dead in one of the three ways.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Good,
    /// Invalid → disabled.
    Bad,
    /// 429 → cooling for the model.
    Quota,
    /// 5xx `MAX_FAILURES` times → resting.
    Down,
}

/// Every distinct order of {good, good, bad, quota, down}: each dead kind at
/// every position, next to each other and between the good keys.
fn arrangements() -> Vec<Vec<Role>> {
    fn permute(rest: &mut Vec<Role>, cur: &mut Vec<Role>, out: &mut Vec<Vec<Role>>) {
        if rest.is_empty() {
            if !out.contains(cur) {
                out.push(cur.clone());
            }
            return;
        }
        for i in 0..rest.len() {
            let r = rest.remove(i);
            cur.push(r);
            permute(rest, cur, out);
            cur.pop();
            rest.insert(i, r);
        }
    }
    let mut out = Vec::new();
    let mut all = vec![Role::Good, Role::Bad, Role::Quota, Role::Down, Role::Good];
    permute(&mut all, &mut Vec::new(), &mut out);
    assert_eq!(out.len(), 60);
    out
}

/// A pool in `selection` whose dead keys have been reported dead.
fn dead_pool(roles: &[Role], selection: Selection) -> KeyPool {
    let keys = (0..roles.len())
        .map(|i| format!("spread-key-{i:06}"))
        .collect();
    let pool = KeyPool::new(keys, selection, 3);
    for (i, role) in roles.iter().enumerate() {
        match role {
            Role::Good => {}
            Role::Bad => pool.report(i, "m", &Outcome::KeyInvalid("API key not valid".into())),
            Role::Quota => pool.report(
                i,
                "m",
                &Outcome::Quota {
                    cooldown: Duration::from_secs(600),
                    daily: false,
                    message: "quota".into(),
                },
            ),
            Role::Down => {
                for _ in 0..3 {
                    pool.report(i, "m", &Outcome::Transient("503".into()));
                }
            }
        }
    }
    pool
}

/// `picks` picks; the number each key got.
fn spread(pool: &KeyPool, picks: usize) -> Vec<usize> {
    let mut counts = vec![0; pool.len()];
    for _ in 0..picks {
        match pool.pick("m", &[]) {
            Pick::Key(i) => counts[i] += 1,
            other => panic!("{other:?}"),
        }
    }
    counts
}

fn good_counts(roles: &[Role], counts: &[usize]) -> Vec<usize> {
    roles
        .iter()
        .zip(counts)
        .filter(|(r, _)| **r == Role::Good)
        .map(|(_, c)| *c)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn round_robin_and_least_used_are_even_with_dead_keys_anywhere() {
    for selection in [Selection::RoundRobin, Selection::LeastUsed] {
        for roles in arrangements() {
            let pool = dead_pool(&roles, selection);
            let counts = spread(&pool, 3000);
            let good = good_counts(&roles, &counts);
            assert_eq!(
                good.iter().sum::<usize>(),
                3000,
                "{selection:?} {roles:?} {counts:?}"
            );
            assert!(
                good[0].abs_diff(good[1]) <= 1,
                "{selection:?} {roles:?}: {counts:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn random_is_uniform_among_usable_keys_with_dead_keys_anywhere() {
    for roles in arrangements() {
        let pool = dead_pool(&roles, Selection::Random);
        let counts = spread(&pool, 3000);
        let good = good_counts(&roles, &counts);
        assert_eq!(good.iter().sum::<usize>(), 3000, "{roles:?} {counts:?}");
        // 50 % ± 6 % (over 3,000 picks that is more than 6 standard deviations).
        for c in good {
            assert!((1320..=1680).contains(&c), "{roles:?}: {counts:?}");
        }
    }
    // Five usable keys of five: each about a fifth.
    let pool = dead_pool(&[Role::Good; 5], Selection::Random);
    let counts = spread(&pool, 5000);
    assert!(
        counts.iter().all(|c| (850..=1150).contains(c)),
        "{counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_spreads_a_dead_window_key_over_the_usable_ones() {
    // The window's key is the first one (one 10 s window from the pool's
    // start: the paused clock does not move during the test).
    for roles in arrangements() {
        let pool = dead_pool(&roles, Selection::TimeWindow);
        let counts = spread(&pool, 600);
        let good = good_counts(&roles, &counts);
        if roles[0] == Role::Good {
            assert_eq!(counts[0], 600, "{roles:?}: one key per window {counts:?}");
        } else {
            assert!(
                good[0].abs_diff(good[1]) <= 1,
                "{roles:?}: the dead window key's turns are spread: {counts:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn round_robin_retries_skip_to_the_key_after_the_one_tried() {
    // good, bad, good, good: a request that tried key 0 takes key 2 and the
    // next request starts after it, so no key is served twice in a row.
    let pool = dead_pool(
        &[Role::Good, Role::Bad, Role::Good, Role::Good],
        Selection::RoundRobin,
    );
    assert_eq!(pool.pick("m", &[]), Pick::Key(0));
    assert_eq!(pool.pick("m", &[0]), Pick::Key(2));
    assert_eq!(pool.pick("m", &[]), Pick::Key(3));
    assert_eq!(pool.pick("m", &[]), Pick::Key(0));
    assert_eq!(pool.pick("m", &[]), Pick::Key(2));
}

#[tokio::test]
async fn gateway_round_robin_is_even_with_dead_keys_anywhere() {
    // good, bad (invalid), quota (429), down (503), good, rotated so that every
    // dead key sits at every position; 600 requests each.
    let names = [
        "good-key-0000001",
        "bad-key-00000001",
        "quota-key-000001",
        "overload-key-0001",
        "good-key-0000002",
    ];
    for r in 0..names.len() {
        let mut keys = names.to_vec();
        keys.rotate_left(r);
        let gw = start(&[
            ("API_KEYS", &serde_json::to_string(&keys).unwrap()),
            ("MAX_FAILURES", "1"),
        ])
        .await;
        gw.state()
            .set_key("quota-key-000001", KeyBehavior::Quota { retry_secs: 600 });
        let began = Instant::now();
        for _ in 0..600 {
            let r = post_json(&gw, "/v1/chat/completions", &chat("hi")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        }
        let a = gw.state().count_for_key("good-key-0000001");
        let b = gw.state().count_for_key("good-key-0000002");
        assert_eq!(a + b, 600, "{keys:?}");
        assert!(a.abs_diff(b) <= 1, "{keys:?}: {a} vs {b}");
        for dead in &names[1..3] {
            assert_eq!(gw.state().count_for_key(dead), 1, "{dead} tried once");
        }
        // The down key rests 5 s (then 10 s, …) and is tried again after each rest.
        let down = gw.state().count_for_key(names[3]);
        let most = 1 + began.elapsed().as_secs() as usize / 5;
        assert!(
            (1..=most).contains(&down),
            "{} tried {down} times",
            names[3]
        );
        gw.shutdown().await;
    }
}
