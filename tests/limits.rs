//! Limits on what a client can make the gateway keep or write:
//!
//! * model names — a name longer than 200 characters, or with a character
//!   Google never uses in a model id, is refused with a 400 in the route's
//!   format on every route before anything records it; every per-model map
//!   (traffic series, per-minute lists, recent errors, a key's cooldowns)
//!   stays capped however many distinct names arrive;
//! * log injection — newlines and terminal escapes in a model name or in an
//!   upstream error message never reach the log raw;
//! * keys in paths — `POST /status/keys/{full key}/reset` (and any path
//!   segment that is a pool key or shaped like one) is logged masked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// What `/status` may weigh after the hostile requests below.
const STATUS_BUDGET: usize = 64 * 1024;

fn auth() -> String {
    format!("Bearer {TOKEN}")
}

/// An OpenAI error object with `status`.
fn assert_openai_error(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status.as_u16(), status, "{what}: {}", short(&a.text()));
    let v = a.json();
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    assert!(
        v["error"].get("type").is_some(),
        "{what}: OpenAI format: {v}"
    );
    assert!(
        v["error"].get("status").is_none(),
        "{what}: OpenAI format: {v}"
    );
}

/// Google's error object with `status`.
fn assert_google_error(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status.as_u16(), status, "{what}: {}", short(&a.text()));
    let v = a.json();
    assert_eq!(v["error"]["code"], status, "{what}: {v}");
    assert!(
        v["error"]["status"].is_string(),
        "{what}: Google format: {v}"
    );
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
}

fn short(s: &str) -> String {
    s.chars().take(300).collect()
}

/// `/status` as the admin sees it, with its size.
async fn status(gw: &Gw) -> (usize, Value) {
    let a = get(gw, "/status").await;
    assert_eq!(a.status, StatusCode::OK, "{}", short(&a.text()));
    (a.body.len(), a.json())
}

fn chat_body(model: &str) -> Bytes {
    serde_json::to_vec(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap()
        .into()
}

async fn post(gw: &Gw, path: &str, body: Bytes) -> Answer {
    send(
        Method::POST,
        &gw.url(path),
        &[
            ("authorization", &auth()),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

async fn native(gw: &Gw, method: Method, path: &str) -> Answer {
    let body = if method == Method::POST {
        Bytes::from_static(br#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
    } else {
        Bytes::new()
    };
    send(
        method,
        &gw.url(path),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

/// 100 requests with a 10 MB model name on `/openai/v1` (the body limit is
/// 20 MB, so they are read whole), 10 MB names on the OpenAI routes, and
/// 60 KB names in native paths (within the 64 KiB head limit): every one is
/// a 400 in the route's format, none reaches upstream, and `/status` stays
/// small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_model_names_are_refused_and_never_recorded() {
    let gw = start(&[]).await;
    let huge = "m".repeat(10 * 1024 * 1024);
    let huge_chat = chat_body(&huge);

    // One of each first: a single recorded 10 MB name already breaks /status.
    let a = post(&gw, "/openai/v1/chat/completions", huge_chat.clone()).await;
    assert_openai_error(&a, 400, "/openai/v1 with a 10 MB model");
    let (size, _) = status(&gw).await;
    assert!(
        size < STATUS_BUDGET,
        "/status is {size} bytes after one 10 MB name"
    );
    let a = post(&gw, "/v1/chat/completions", huge_chat.clone()).await;
    assert_openai_error(&a, 400, "chat with a 10 MB model");
    let embed = serde_json::to_vec(&json!({"model": huge, "input": "x"})).unwrap();
    let a = post(&gw, "/v1/embeddings", embed.into()).await;
    assert_openai_error(&a, 400, "embeddings with a 10 MB model");

    let long = "m".repeat(60_000);
    for (method, path) in [
        (
            Method::POST,
            format!("/v1beta/models/{long}:generateContent"),
        ),
        (
            Method::POST,
            format!("/v1beta/models/{long}:streamGenerateContent?alt=sse"),
        ),
        (
            Method::POST,
            format!("/gemini/v1beta/models/{long}:countTokens"),
        ),
        (Method::POST, format!("/v1/models/{long}:generateContent")),
        (
            Method::POST,
            format!("/v1beta/tunedModels/{long}:generateContent"),
        ),
        (Method::GET, format!("/v1beta/models/{long}")),
    ] {
        let a = native(&gw, method.clone(), &path).await;
        assert_google_error(&a, 400, &format!("{method} {}", short(&path)));
    }
    let a = get(&gw, &format!("/v1/models/{}", "m".repeat(1000))).await;
    assert_openai_error(&a, 400, "GET /v1/models/{1000 chars}");
    // Characters no model id has, on the routes that did not check them.
    for bad in [
        "x\n2026-01-01 ERROR forged",
        "x\u{1b}[2J",
        "a/b",
        "a b",
        "é",
    ] {
        let a = post(&gw, "/openai/v1/chat/completions", chat_body(bad)).await;
        assert_openai_error(&a, 400, &format!("/openai/v1 with {bad:?}"));
        let a = get(&gw, &format!("/v1/models/{}", urlencode(bad))).await;
        assert_openai_error(&a, 400, &format!("/v1/models/{bad:?}"));
    }

    // The rest of the hundred, four at a time.
    let gw = Arc::new(gw);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let gw = gw.clone();
        let body = huge_chat.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..(99 / 4 + usize::from(w < 99 % 4)) {
                let a = post(&gw, "/openai/v1/chat/completions", body.clone()).await;
                assert_openai_error(&a, 400, "/openai/v1 with a 10 MB model");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        gw.state().requests().is_empty(),
        "no refused model name reached upstream: {:?}",
        gw.state()
            .requests()
            .iter()
            .map(|r| short(&r.path))
            .collect::<Vec<_>>()
    );
    let (size, s) = status(&gw).await;
    println!("/status after 100 x 10 MB names and 60 KB paths: {size} bytes");
    assert!(size < STATUS_BUDGET, "/status is {size} bytes");
    let by_model = s["traffic"]["by_model"].as_object().unwrap();
    assert!(by_model.keys().all(|m| m.len() <= 200), "{by_model:?}");

    // The limit is 200 characters: 200 goes upstream, 201 does not.
    let ok = "m".repeat(200);
    let a = native(
        &gw,
        Method::POST,
        &format!("/v1beta/models/{ok}:generateContent"),
    )
    .await;
    assert_google_error(&a, 404, "200 characters reach Gemini (unknown model)");
    let a = post(&gw, "/openai/v1/chat/completions", chat_body(&ok)).await;
    assert_ne!(a.status.as_u16(), 400, "{}", short(&a.text()));
    let too_long = "m".repeat(201);
    let a = native(
        &gw,
        Method::POST,
        &format!("/v1beta/models/{too_long}:generateContent"),
    )
    .await;
    assert_google_error(&a, 400, "201 characters");
    // Real ids and prefixes still work.
    let a = post(
        &gw,
        "/openai/v1/chat/completions",
        chat_body("models/gemini-2.5-flash"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", short(&a.text()));
    let a = native(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:generateContent",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", short(&a.text()));
    let a = get(&gw, "/v1/models/gemini-2.5-flash").await;
    assert_eq!(a.status, StatusCode::OK, "{}", short(&a.text()));
    match Arc::try_unwrap(gw) {
        Ok(gw) => gw.shutdown().await,
        Err(_) => panic!("gateway still shared"),
    }
}

/// Percent-encode every byte that is not unreserved.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// 200 distinct valid (195-character) model names that each put the only key
/// into a ten-minute cooldown: the key's cooling list, the traffic series,
/// the per-minute lists and the recent errors all stay at their caps, with
/// the overflow counted as `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_model_names_on_a_quota_key_stay_capped() {
    let key = "quota-cap-key-0000000001";
    let keys = format!("[\"{key}\"]");
    let gw = start(&[("API_KEYS", &keys)]).await;
    gw.state()
        .set_key(key, KeyBehavior::Quota { retry_secs: 600 });
    let pad = "x".repeat(190);
    for i in 0..200 {
        let model = format!("m{i:03}-{pad}");
        let a = if i % 4 == 3 {
            post(&gw, "/v1/chat/completions", chat_body(&model)).await
        } else {
            native(
                &gw,
                Method::POST,
                &format!("/v1beta/models/{model}:generateContent"),
            )
            .await
        };
        assert_eq!(a.status.as_u16(), 429, "{i}: {}", short(&a.text()));
    }
    assert!(
        gw.state().requests().len() >= 200,
        "the calls reached upstream"
    );
    let (size, s) = status(&gw).await;
    let cooling = s["keys"][0]["cooling"].as_array().unwrap();
    assert!(
        (1..=64).contains(&cooling.len()),
        "{} cooling entries on one key",
        cooling.len()
    );
    let traffic = &s["traffic"];
    let by_model = traffic["by_model"].as_object().unwrap();
    assert!(
        by_model.len() <= 65,
        "{} models in by_model",
        by_model.len()
    );
    assert!(
        by_model.contains_key("other"),
        "the overflow is counted as other"
    );
    let counted: u64 = by_model.values().map(|v| v.as_u64().unwrap()).sum();
    assert!(counted >= 200, "every request still counts: {counted}");
    for minute in traffic["per_minute"].as_array().unwrap() {
        let models = minute["models"].as_object().unwrap();
        assert!(models.len() <= 33, "{} models in one minute", models.len());
    }
    assert!(traffic["recent_errors"].as_array().unwrap().len() <= 50);
    // 65 names in the series, 64 in the cooling list, 33 per minute and 50
    // recent errors, each at most 200 characters: well under 128 KiB.
    println!(
        "/status after 200 distinct names on a quota key: {size} bytes, {} cooling, {} models",
        cooling.len(),
        by_model.len()
    );
    assert!(size < 128 * 1024, "/status is {size} bytes");
    let metrics = get(&gw, "/metrics").await.text();
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("gemini_balance_requests_total{"))
        .count();
    assert!(series <= 70, "{series} request series in /metrics");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// The log (the real binary, its stderr captured)
// ---------------------------------------------------------------------------

/// What the hostile upstream says to every call: a 403 (so the key is
/// disabled and the message logged) whose message forges a log line, clears
/// the screen and holds a C1 control (CSI).
const FORGED: &str = r#"{"error":{"code":403,"message":"Denied.\n2026-01-01 ERROR forged\r\u001b[2J\u009b31m\u007f","status":"PERMISSION_DENIED"}}"#;

/// An upstream answering every request with [`FORGED`].
async fn forging_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(403)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(FORGED.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
            });
        }
    });
    addr
}

/// Every log line starts with the gateway's own stamp: `SECONDS.MILLIS LEVEL `.
fn stamped(line: &str) -> bool {
    let Some((secs, rest)) = line.split_once('.') else {
        return false;
    };
    secs.len() >= 10
        && secs.bytes().all(|b| b.is_ascii_digit())
        && rest.len() > 10
        && rest.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        && ["ERROR ", "WARN  ", "INFO  ", "DEBUG "]
            .iter()
            .any(|l| rest[3..].starts_with(&format!(" {l}")))
}

/// A model name and an upstream error message that hold a newline, a
/// forged `ERROR` line, a carriage return, ESC (clear screen), a C1 CSI and
/// DEL, and pool keys in reset paths and native paths: every log line is one
/// of the gateway's own (stamped), no raw control character is written, the
/// message is there escaped, and no key appears unmasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_escapes_control_characters_and_masks_keys_in_paths() {
    let upstream = forging_upstream().await;
    // Built from pieces so that no key-shaped string sits in the source.
    let google_key = concat!("AIza", "SyLOGCANARY0123456789abcdefghij_-9z");
    assert_eq!(google_key.len(), 39);
    let plain_key = "plain-LOGCANARY-4242";
    let admin = "adm-LOGCANARY-ADMIN-77";
    let keys = serde_json::to_string(&[google_key, plain_key]).unwrap();
    let tokens = serde_json::to_string(&[TOKEN]).unwrap();
    let bin = common::blocking::Binary::start(&[
        ("API_KEYS", &keys),
        ("ALLOWED_TOKENS", &tokens),
        ("AUTH_TOKEN", admin),
        ("BASE_URL", &format!("http://{upstream}")),
    ]);
    let base = bin.base.clone();
    let user = [
        ("authorization", auth()),
        ("content-type", "application/json".into()),
    ];
    let user: Vec<(&str, &str)> = user.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let admin_auth = format!("Bearer {admin}");
    let admin_h = [("authorization", admin_auth.as_str())];

    // Both keys are rejected with the forging message (and disabled: logged).
    let a = send(
        Method::POST,
        &format!("{base}/v1/chat/completions"),
        &user,
        chat_body("gemini-2.5-flash"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    // A model name that forges a line.
    let forged_model = "x\n2026-01-01 ERROR forged\u{1b}[2J\u{9b}";
    for path in ["/openai/v1/chat/completions", "/v1/chat/completions"] {
        let a = send(
            Method::POST,
            &format!("{base}{path}"),
            &user,
            chat_body(forged_model),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.text());
    }
    // Resets by full key (plain, percent-encoded, under /hf), by index.
    let encoded_plain = plain_key.replace('-', "%2D");
    for id in [google_key, plain_key, encoded_plain.as_str(), "1"] {
        for prefix in ["", "/hf"] {
            let a = send(
                Method::POST,
                &format!("{base}{prefix}/status/keys/{id}/reset"),
                &admin_h,
                Bytes::new(),
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{id}: {}", a.text());
        }
    }
    // Keys as native path segments (forwarded, answered by the upstream).
    for path in [
        format!("/v1beta/models/{google_key}"),
        format!("/v1beta/files/{plain_key}"),
        format!("/v1beta/models/{google_key}:generateContent"),
    ] {
        let a = send(
            Method::GET,
            &format!("{base}{path}"),
            &[("x-goog-api-key", TOKEN)],
            Bytes::new(),
        )
        .await;
        assert!(a.status.as_u16() < 500 || a.status == StatusCode::SERVICE_UNAVAILABLE);
    }

    let raw = bin.stop().await;
    let log = String::from_utf8_lossy(&raw).into_owned();
    let bad: Vec<&u8> = raw
        .iter()
        .filter(|b| (**b < 0x20 && **b != b'\n') || **b == 0x7f)
        .collect();
    assert!(
        bad.is_empty(),
        "raw control bytes in the log: {bad:?}\n{log}"
    );
    assert!(
        !log.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
        "a raw C1 control in the log:\n{log}"
    );
    for line in log.lines() {
        assert!(stamped(line), "a line the gateway did not write: {line:?}");
    }
    assert!(
        log.contains(r"disabled: Denied.\n2026-01-01 ERROR forged\r\x1b[2J\u{9b}31m\x7f"),
        "the upstream message is logged, escaped:\n{log}"
    );
    for key in [google_key, plain_key, encoded_plain.as_str(), admin, TOKEN] {
        assert!(!log.contains(key), "{key} in the log:\n{log}");
    }
    let masked_google = format!("AIza…{}", &google_key[35..]);
    let masked_plain = gemini_balance::keys::mask(plain_key);
    for line in [
        format!("POST /status/keys/{masked_google}/reset 200"),
        format!("POST /hf/status/keys/{masked_google}/reset 200"),
        format!("POST /status/keys/{masked_plain}/reset 200"),
        format!("POST /hf/status/keys/{masked_plain}/reset 200"),
        "POST /status/keys/1/reset 200".to_string(),
        format!("GET /v1beta/files/{masked_plain} "),
        format!("GET /v1beta/models/{masked_google} "),
        format!("GET /v1beta/models/{masked_google}:generateContent "),
    ] {
        assert!(log.contains(&line), "no line with {line:?}:\n{log}");
    }
}
