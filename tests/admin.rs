//! Who is an admin: the admin token is
//! `AUTH_TOKEN`, or when unset the first entry of `ALLOWED_TOKENS` only. Every
//! admin route refuses other client tokens (403) and missing or unknown ones
//! (401); `/verify` takes at most `VERIFY_MAX_KEYS` keys and verifies with
//! bounded concurrency; `/status/keys/reset` is a 404, not a panic; only the
//! admin token may `DELETE` shared resources through the native routes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use http::{Method, StatusCode};
use serde_json::Value;

/// The first entry of `ALLOWED_TOKENS`: the admin while `AUTH_TOKEN` is unset.
const FIRST: &str = "sk-first-admin-0000001";
/// The second entry: a client token, never an admin.
const SECOND: &str = "sk-second-client-000002";
/// `AUTH_TOKEN`, when set.
const AUTH: &str = "adm-auth-token-00000003";

fn tokens() -> String {
    serde_json::to_string(&[FIRST, SECOND]).unwrap()
}

/// Every admin route (method, path), at `/` and under `/hf`.
fn admin_routes() -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for prefix in ["", "/hf"] {
        for (m, p) in [
            (Method::GET, "/status"),
            (Method::GET, "/metrics"),
            (Method::POST, "/status/verify"),
            (Method::POST, "/status/keys/0/reset"),
            (Method::POST, "/verify?format=json"),
            (Method::POST, "/verify"),
        ] {
            out.push((m, format!("{prefix}{p}")));
        }
    }
    out
}

async fn call(gw: &Gw, method: Method, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    send(method, &gw.url(path), &headers, Bytes::new()).await
}

/// OpenAI's error object with this status.
fn assert_openai_error(what: &str, a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    let v = a.json();
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    assert!(v["error"]["type"].is_string(), "{what}: {v}");
}

/// Google's error envelope with this status.
fn assert_google_error(what: &str, a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    let v = a.json();
    assert_eq!(v["error"]["code"], status.as_u16(), "{what}: {v}");
    assert!(v["error"]["status"].is_string(), "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
}

#[tokio::test]
async fn only_the_first_allowed_token_is_admin_when_auth_token_is_unset() {
    let toks = tokens();
    let gw = start(&[("ALLOWED_TOKENS", &toks)]).await;
    for (method, path) in admin_routes() {
        let what = format!("{method} {path}");
        let none = call(&gw, method.clone(), &path, None).await;
        assert_openai_error(
            &format!("{what} (no token)"),
            &none,
            StatusCode::UNAUTHORIZED,
        );
        let unknown = call(&gw, method.clone(), &path, Some("sk-unknown-0000009")).await;
        assert_openai_error(
            &format!("{what} (unknown token)"),
            &unknown,
            StatusCode::UNAUTHORIZED,
        );
        let client = call(&gw, method.clone(), &path, Some(SECOND)).await;
        assert_openai_error(&format!("{what} (client)"), &client, StatusCode::FORBIDDEN);
        assert!(
            client.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not the admin token"),
            "{what}: {}",
            client.text()
        );
        let admin = call(&gw, method.clone(), &path, Some(FIRST)).await;
        assert_eq!(
            admin.status,
            StatusCode::OK,
            "{what} (admin): {}",
            admin.text()
        );
    }
    // The second token is still a client token everywhere else.
    let chat = send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {SECOND}")),
            ("content-type", "application/json"),
        ],
        r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn auth_token_alone_is_admin_when_set() {
    let toks = tokens();
    let gw = start(&[("ALLOWED_TOKENS", &toks), ("AUTH_TOKEN", AUTH)]).await;
    for (method, path) in admin_routes() {
        let what = format!("{method} {path}");
        let none = call(&gw, method.clone(), &path, None).await;
        assert_openai_error(
            &format!("{what} (no token)"),
            &none,
            StatusCode::UNAUTHORIZED,
        );
        for client in [FIRST, SECOND] {
            let r = call(&gw, method.clone(), &path, Some(client)).await;
            assert_openai_error(&format!("{what} ({client})"), &r, StatusCode::FORBIDDEN);
        }
        let admin = call(&gw, method.clone(), &path, Some(AUTH)).await;
        assert_eq!(
            admin.status,
            StatusCode::OK,
            "{what} (AUTH_TOKEN): {}",
            admin.text()
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn public_metrics_need_no_token() {
    let toks = tokens();
    let gw = start(&[("ALLOWED_TOKENS", &toks), ("METRICS_PUBLIC", "true")]).await;
    for token in [None, Some(SECOND), Some(FIRST)] {
        let r = call(&gw, Method::GET, "/metrics", token).await;
        assert_eq!(r.status, StatusCode::OK, "{token:?}: {}", r.text());
    }
    // /status stays admin-only.
    let r = call(&gw, Method::GET, "/status", Some(SECOND)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    gw.shutdown().await;
}

fn key_list(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:08}")).collect()
}

async fn verify_keys(gw: &Gw, keys: &[String]) -> Answer {
    send(
        Method::POST,
        &gw.url("/verify?format=json"),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("x-goog-api-key", &serde_json::to_string(keys).unwrap()),
        ],
        Bytes::new(),
    )
    .await
}

#[tokio::test]
async fn verify_takes_at_most_verify_max_keys_keys() {
    let gw = start(&[]).await;
    let r = verify_keys(&gw, &key_list(51, "many-key")).await;
    assert_openai_error("51 keys", &r, StatusCode::BAD_REQUEST);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("VERIFY_MAX_KEYS") && msg.contains("50"),
        "{msg}"
    );
    assert!(
        gw.state().requests().is_empty(),
        "no upstream call before the limit is checked"
    );

    // 50 keys that each take 100 ms: all checked, at most 8 at a time.
    let keys = key_list(50, "slow-key");
    for k in &keys {
        gw.state().set_key(k, KeyBehavior::Slow { ms: 100 });
    }
    let r = verify_keys(&gw, &keys).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["total"], 50);
    assert_eq!(r.json()["good"], 50);
    assert_eq!(gw.state().requests().len(), 50);
    let peak = gw.state().peak_in_flight();
    assert!((2..=8).contains(&peak), "in flight at once: {peak}");
    gw.shutdown().await;

    // The limit is a setting.
    let gw = start(&[("VERIFY_MAX_KEYS", "5")]).await;
    let r = verify_keys(&gw, &key_list(6, "many-key")).await;
    assert_openai_error("6 keys", &r, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("VERIFY_MAX_KEYS"));
    let r = verify_keys(&gw, &key_list(5, "many-key")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["total"], 5);
    gw.shutdown().await;
}

#[tokio::test]
async fn verifying_a_large_pool_runs_at_most_8_at_a_time() {
    let keys = key_list(40, "slow-pool-key");
    let gw = start(&[("API_KEYS", &serde_json::to_string(&keys).unwrap())]).await;
    for k in &keys {
        gw.state().set_key(k, KeyBehavior::Slow { ms: 100 });
    }
    // The admin's re-verification of the whole pool (scheduler::verify_all).
    let r = call(&gw, Method::POST, "/status/verify", Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["good"], 40);
    let peak = gw.state().peak_in_flight();
    assert!((2..=8).contains(&peak), "/status/verify in flight: {peak}");
    // `/verify` with no keys checks the pool, bounded the same way.
    gw.state().clear();
    let r = call(&gw, Method::POST, "/verify?format=json", Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["total"], 40);
    let peak = gw.state().peak_in_flight();
    assert!((2..=8).contains(&peak), "/verify (pool) in flight: {peak}");
    gw.shutdown().await;
}

#[tokio::test]
async fn reset_without_a_key_is_a_404_not_a_panic() {
    let gw = start(&[]).await;
    for path in [
        "/status/keys/reset",
        "/hf/status/keys/reset",
        "/status/keys//reset",
        "/status/keys/x/reset",
        "/status/keys/99/reset",
    ] {
        for token in [Some(TOKEN), None] {
            let r = call(&gw, Method::POST, path, token).await;
            if token.is_none() && r.status == StatusCode::UNAUTHORIZED {
                // A route that names a key asks for the admin first.
                assert_openai_error(path, &r, StatusCode::UNAUTHORIZED);
                continue;
            }
            assert_openai_error(&format!("{path} {token:?}"), &r, StatusCode::NOT_FOUND);
        }
    }
    assert_eq!(gw.app.pool.counts().active, 3);
    gw.shutdown().await;
}

/// Every native path that deletes a resource held by the pool's keys.
const DELETES: &[&str] = &[
    "/v1beta/files/abc",
    "/v1beta/cachedContents/abc",
    "/v1beta/tunedModels/abc",
    "/v1beta/corpora/abc",
    "/v1beta/batches/abc",
    "/v1beta/operations/abc",
    "/gemini/v1beta/files/abc",
    "/gemini/v1/files/abc",
    "/hf/v1beta/files/abc",
];

fn deletes_seen(gw: &Gw) -> Vec<String> {
    gw.state()
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn only_the_admin_token_deletes_shared_native_resources() {
    let toks = tokens();
    let gw = start(&[("ALLOWED_TOKENS", &toks)]).await;
    for path in DELETES {
        let forms: [(String, Vec<(&str, String)>); 3] = [
            (
                path.to_string(),
                vec![("x-goog-api-key", SECOND.to_string())],
            ),
            (format!("{path}?key={SECOND}"), vec![]),
            (
                path.to_string(),
                vec![("authorization", format!("Bearer {SECOND}"))],
            ),
        ];
        for (url, headers) in forms {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = send(Method::DELETE, &gw.url(&url), &h, Bytes::new()).await;
            assert_google_error(&format!("DELETE {url} (client)"), &r, StatusCode::FORBIDDEN);
            let v: Value = r.json();
            assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("admin token"),
                "{v}"
            );
        }
    }
    assert!(deletes_seen(&gw).is_empty(), "{:?}", deletes_seen(&gw));
    // Reading is still every token holder's.
    let list = send(
        Method::GET,
        &gw.url("/v1beta/files"),
        &[("x-goog-api-key", SECOND)],
        Bytes::new(),
    )
    .await;
    assert_ne!(list.status, StatusCode::FORBIDDEN, "{}", list.text());
    // The admin token is forwarded, with a pool key.
    for path in DELETES {
        gw.state().clear();
        let r = send(
            Method::DELETE,
            &gw.url(path),
            &[("x-goog-api-key", FIRST)],
            Bytes::new(),
        )
        .await;
        assert_ne!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text());
        let seen = gw.state().requests();
        assert_eq!(seen.len(), 1, "{path}");
        assert_eq!(seen[0].method, "DELETE");
        assert!(seen[0].path.ends_with("/abc"), "{path}: {}", seen[0].path);
        assert!(
            seen[0].api_key.as_deref().unwrap().starts_with("key-"),
            "a pool key"
        );
    }
    // Gemini's OpenAI-compatible layer: the same rule, OpenAI's error format.
    gw.state().clear();
    let r = call(&gw, Method::DELETE, "/openai/v1/files/abc", Some(SECOND)).await;
    assert_openai_error("DELETE /openai/v1/files/abc", &r, StatusCode::FORBIDDEN);
    assert!(deletes_seen(&gw).is_empty());
    let r = call(&gw, Method::DELETE, "/openai/v1/files/abc", Some(FIRST)).await;
    assert_ne!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(deletes_seen(&gw).len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn auth_token_deletes_and_a_clients_own_key_is_its_own_business() {
    let toks = tokens();
    let gw = start(&[
        ("ALLOWED_TOKENS", &toks),
        ("AUTH_TOKEN", AUTH),
        ("CLIENT_KEYS_ENABLED", "true"),
        ("BACKUP_API_KEYS", r#"["backup-key-0000001"]"#),
        ("TRUSTED_API_KEYS", r#"["trusted-key-000001"]"#),
    ])
    .await;
    // With AUTH_TOKEN set, the first allowed token is a client token; the
    // trusted key uses the shared backup pool: neither may delete.
    for cred in [FIRST, SECOND, "trusted-key-000001"] {
        let r = send(
            Method::DELETE,
            &gw.url("/v1beta/files/abc"),
            &[("x-goog-api-key", cred)],
            Bytes::new(),
        )
        .await;
        assert_google_error(cred, &r, StatusCode::FORBIDDEN);
    }
    assert!(deletes_seen(&gw).is_empty());
    let r = send(
        Method::DELETE,
        &gw.url("/v1beta/files/abc"),
        &[("x-goog-api-key", AUTH)],
        Bytes::new(),
    )
    .await;
    assert_ne!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let seen = gw.state().requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].api_key.as_deref().unwrap().starts_with("key-"));
    // The caller's own Gemini key: forwarded with that key.
    gw.state().clear();
    let r = send(
        Method::DELETE,
        &gw.url("/v1beta/files/abc"),
        &[("x-goog-api-key", "own-key-000000001")],
        Bytes::new(),
    )
    .await;
    assert_ne!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let seen = gw.state().requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].api_key.as_deref(), Some("own-key-000000001"));
    gw.shutdown().await;
}

/// `/health` names the store: `memory` by default, `file` with `DATA_DIR`
/// (created 0700 when missing); what was recorded before a clean shutdown is
/// in the state file afterwards.
#[tokio::test]
async fn health_reports_the_store_mode_and_shutdown_flushes_it() {
    use std::os::unix::fs::PermissionsExt;
    let gw = start(&[]).await;
    let h = get(&gw, "/health").await.json();
    assert_eq!(h["store"], "memory", "{h}");
    gw.shutdown().await;

    let dir = std::env::temp_dir().join(format!("gb-health-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_string_lossy().to_string();
    let gw = start(&[("DATA_DIR", &d)]).await;
    let h = get(&gw, "/health").await.json();
    assert_eq!(h["store"], "file", "{h}");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "DATA_DIR mode {mode:o}");
    gw.app.store.record(gemini_balance::store::Change::Setting {
        name: "MAX_RETRIES".into(),
        value: Some("7".into()),
        at_ms: 1,
    });
    gw.shutdown().await;
    let (h, snap) =
        gemini_balance::store::open_mode(gemini_balance::store::Mode::File(dir.clone()), None)
            .await
            .unwrap();
    assert_eq!(
        snap.settings
            .get("MAX_RETRIES")
            .and_then(|l| l.value.clone()),
        Some("7".to_string()),
        "the setting recorded before shutdown was written"
    );
    h.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
