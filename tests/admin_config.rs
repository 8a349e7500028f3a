//! `/admin/config` against the real server: `GET` lists every setting with
//! its source and masked secrets; `PATCH` validates with exactly the start-up
//! parser, applies live (the next request sees it) or refuses with a 400 and
//! changes nothing; `DELETE /admin/config/{NAME}` reverts; only the admin
//! token may call; changes are recorded in the store and come back after a
//! restart through `config::with_overrides`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use gemini_balance::config::{Config, VARIABLES};
use gemini_balance::store::{self, Mode};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The admin token in these tests (`AUTH_TOKEN`).
const ADMIN: &str = "sk-admin-token-0123456789";
/// A client token that is not the admin.
const CLIENT: &str = "sk-client-token-000000002";

fn auth(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn call(gw: &Gw, method: Method, path: &str, token: &str, body: Option<&Value>) -> Answer {
    let (k, v) = auth(token);
    let body = body.map_or(Bytes::new(), |b| {
        Bytes::from(serde_json::to_vec(b).unwrap())
    });
    send(
        method,
        &gw.url(path),
        &[(k, v.as_str()), ("content-type", "application/json")],
        body,
    )
    .await
}

async fn settings(gw: &Gw) -> Vec<Value> {
    let r = call(gw, Method::GET, "/admin/config", ADMIN, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["settings"].as_array().unwrap().clone()
}

/// One setting's entry in a listing.
fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

async fn patch(gw: &Gw, body: Value) -> Answer {
    call(gw, Method::PATCH, "/admin/config", ADMIN, Some(&body)).await
}

/// The gateway with `AUTH_TOKEN` = [`ADMIN`] and [`CLIENT`] as a second token.
async fn gateway(extra: &[(&str, &str)]) -> Gw {
    let tokens = format!("[\"{TOKEN}\",\"{CLIENT}\"]");
    let mut vars = vec![("AUTH_TOKEN", ADMIN), ("ALLOWED_TOKENS", tokens.as_str())];
    vars.extend_from_slice(extra);
    start(&vars).await
}

fn chat() -> Value {
    json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]})
}

/// A 400 in OpenAI's format about `param`; its message.
fn refusal(r: &Answer, param: &str) -> String {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["param"], param, "{}", r.text());
    assert_eq!(e["type"], "invalid_request_error", "{}", r.text());
    e["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn get_lists_every_setting_with_its_source_and_masks_secrets() {
    let long = |p: &str| format!("{p}-{}", "0123456789".repeat(3));
    let (enc, pw) = (long("enc"), long("redispw"));
    let redis = format!("rediss://default:{pw}@db.example:6379");
    let gw = gateway(&[
        ("TIME_OUT", "30"),
        ("ENCRYPTION_KEY", &enc),
        ("REDIS_URL", &redis),
        ("TRUSTED_API_KEYS", "trusted-key-00000000001"),
    ])
    .await;
    let r = call(&gw, Method::GET, "/admin/config", ADMIN, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    for secret in [
        ADMIN,
        CLIENT,
        TOKEN,
        "key-a-0000000001",
        "key-b-0000000002",
        "trusted-key-00000000001",
        enc.as_str(),
        pw.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "a full secret in the listing: {text}"
        );
    }
    let list = r.json()["settings"].as_array().unwrap().clone();
    let names: Vec<&str> = list.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, VARIABLES, "every setting, once, in order");
    for s in &list {
        for field in ["group", "description"] {
            assert!(!s[field].as_str().unwrap().is_empty(), "{s}");
        }
        assert!(s["live"].is_boolean() && s["secret"].is_boolean(), "{s}");
    }

    let time_out = entry(&list, "TIME_OUT");
    assert_eq!(
        (&time_out["value"], &time_out["source"]),
        (&json!("30"), &json!("env"))
    );
    assert_eq!(time_out["live"], true);
    let retries = entry(&list, "MAX_RETRIES");
    assert_eq!(
        (&retries["value"], &retries["source"]),
        (&json!("3"), &json!("default"))
    );
    assert_eq!(entry(&list, "AUTH_TOKEN")["source"], "env");
    assert_eq!(entry(&list, "AUTH_TOKEN")["value"], "sk-a…6789");
    assert_eq!(entry(&list, "ALLOWED_TOKENS")["secret"], true);
    assert_eq!(
        entry(&list, "REDIS_URL")["value"],
        "rediss://default:redi…6789@db.example:6379"
    );
    for restart in ["PORT", "HOST", "REDIS_URL", "DATA_DIR", "API_KEYS"] {
        assert_eq!(entry(&list, restart)["live"], false, "{restart}");
    }
    assert!(
        entry(&list, "CHECK_CRON")["value"].is_null(),
        "unset, no default"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn patched_tokens_apply_on_the_next_request() {
    let gw = gateway(&[]).await;
    let models = |token: &'static str| {
        let gw = &gw;
        async move {
            call(gw, Method::GET, "/v1/models", token, None)
                .await
                .status
        }
    };
    const NEW: &str = "sk-new-client-token-00003";
    assert_eq!(models(CLIENT).await, StatusCode::OK);
    assert_eq!(models(NEW).await, StatusCode::UNAUTHORIZED);

    // A JSON array, as a client would send a list.
    let r = patch(&gw, json!({"ALLOWED_TOKENS": [NEW]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["updated"], json!(["ALLOWED_TOKENS"]));
    assert!(
        !r.text().contains(NEW),
        "the answer masks the new token too"
    );
    let listed = r.json()["settings"].as_array().unwrap().clone();
    assert_eq!(entry(&listed, "ALLOWED_TOKENS")["source"], "stored");
    assert_eq!(
        models(NEW).await,
        StatusCode::OK,
        "the new token works at once"
    );
    assert_eq!(
        models(CLIENT).await,
        StatusCode::UNAUTHORIZED,
        "the old one is refused"
    );

    // The admin token too: the old one is refused on the next request.
    const NEW_ADMIN: &str = "sk-new-admin-token-000004";
    let r = patch(&gw, json!({"AUTH_TOKEN": NEW_ADMIN})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&gw, Method::GET, "/admin/config", ADMIN, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&gw, Method::GET, "/admin/config", NEW_ADMIN, None).await;
    assert_eq!(r.status, StatusCode::OK);
    gw.shutdown().await;
}

/// Upstream attempts for one chat call on a pool where every key fails.
async fn attempts(gw: &Gw) -> usize {
    gw.state().clear();
    let r = post_json(gw, "/v1/chat/completions", &chat()).await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.text());
    gw.state().requests().len()
}

#[tokio::test]
async fn patched_max_retries_changes_the_upstream_attempts_and_delete_reverts_it() {
    let keys: Vec<String> = (0..8).map(|i| format!("overloaded-key-{i:04}")).collect();
    let list = serde_json::to_string(&keys).unwrap();
    let gw = gateway(&[("API_KEYS", &list), ("MAX_FAILURES", "100")]).await;
    for k in &keys {
        gw.state().set_key(k, KeyBehavior::Overloaded);
    }
    assert_eq!(attempts(&gw).await, 4, "1 + MAX_RETRIES (3)");
    // A number, or a string in the environment's syntax: both are taken.
    let r = patch(&gw, json!({"MAX_RETRIES": 1})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(attempts(&gw).await, 2);
    let r = patch(&gw, json!({"MAX_RETRIES": "0"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(attempts(&gw).await, 1);

    let r = call(
        &gw,
        Method::DELETE,
        "/admin/config/MAX_RETRIES",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["reverted"], "MAX_RETRIES");
    let listed = r.json()["settings"].as_array().unwrap().clone();
    let e = entry(&listed, "MAX_RETRIES");
    assert_eq!(
        (&e["value"], &e["source"]),
        (&json!("3"), &json!("default"))
    );
    assert_eq!(attempts(&gw).await, 4, "back to the default");
    gw.shutdown().await;
}

#[tokio::test]
async fn patched_max_failures_reaches_the_key_pool() {
    let gw = gateway(&[("MAX_RETRIES", "0")]).await;
    gw.state()
        .set_key("key-a-0000000001", KeyBehavior::Overloaded);
    let r = patch(&gw, json!({"MAX_FAILURES": 1})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Round robin starts at key a.
    let r = post_json(&gw, "/v1/chat/completions", &chat()).await;
    assert!(r.status.is_server_error(), "{}", r.text());
    let st = call(&gw, Method::GET, "/status", ADMIN, None).await.json();
    let a = &st["keys"][0];
    assert_eq!(
        a["state"], "resting",
        "one failure rests it with MAX_FAILURES=1: {st}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn patched_key_selection_reaches_the_key_pool() {
    let gw = gateway(&[]).await;
    let keys = ["key-a-0000000001", "key-b-0000000002", "key-c-0000000003"];
    let spread = || keys.map(|k| gw.state().count_for_key(k));
    for _ in 0..3 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat()).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(spread(), [1, 1, 1], "round robin");
    // time_window: one key per 10-second window takes every call.
    let r = patch(&gw, json!({"KEY_SELECTION": "time_window"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.state().clear();
    for _ in 0..3 {
        assert_eq!(
            post_json(&gw, "/v1/chat/completions", &chat()).await.status,
            StatusCode::OK
        );
    }
    let mut counts = spread();
    counts.sort();
    assert!(counts == [0, 0, 3] || counts == [0, 1, 2], "{counts:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_bad_value_is_the_parsers_error_and_nothing_is_applied() {
    let gw = gateway(&[]).await;
    let r = patch(&gw, json!({"COOLDOWN_SECONDS": 5, "MAX_RETRIES": "lots"})).await;
    let message = refusal(&r, "MAX_RETRIES");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("API_KEYS".into(), "k1".into());
    vars.insert("ALLOWED_TOKENS".into(), "sk-1".into());
    vars.insert("MAX_RETRIES".into(), "lots".into());
    let startup = Config::from_map(&vars).err().unwrap().to_string();
    assert_eq!(message, startup, "the start-up parser's one line");
    let list = settings(&gw).await;
    let cooldown = entry(&list, "COOLDOWN_SECONDS");
    assert_eq!(
        (&cooldown["value"], &cooldown["source"]),
        (&json!("60"), &json!("default")),
        "the good value in the same PATCH was not applied either"
    );

    // Cross-field checks of the parser hold too: no tokens and not open.
    let r = patch(&gw, json!({"ALLOWED_TOKENS": [], "TIME_OUT": 9})).await;
    assert!(refusal(&r, "ALLOWED_TOKENS").contains("no tokens set"));
    let r = patch(&gw, json!({"SAFETY_SETTINGS": {"not": "an array"}})).await;
    assert!(refusal(&r, "SAFETY_SETTINGS").starts_with("configuration error: SAFETY_SETTINGS"));
    // A secret's bad value is not echoed.
    let r = patch(&gw, json!({"ALLOWED_TOKENS": ["sk-has space-secret"]})).await;
    assert!(!refusal(&r, "ALLOWED_TOKENS").contains("secret"));
    assert_eq!(entry(&settings(&gw).await, "TIME_OUT")["value"], "300");

    // Bodies that are not an object of settings.
    for body in [json!([1]), json!({}), json!("MAX_RETRIES=1")] {
        let r = patch(&gw, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn restart_only_unknown_and_key_settings_are_refused() {
    let gw = gateway(&[]).await;
    for name in ["PORT", "HOST", "REDIS_URL", "DATA_DIR", "MAX_CONNECTIONS"] {
        let r = patch(&gw, json!({"TIME_OUT": 9, name: "1"})).await;
        let m = refusal(&r, name);
        assert!(
            m.starts_with(&format!("{name} cannot change while running"))
                && m.ends_with("set it in the environment and restart"),
            "{m}"
        );
    }
    let r = patch(&gw, json!({"API_KEYS": ["k9"]})).await;
    assert!(refusal(&r, "API_KEYS").contains("/admin/keys"));
    let r = patch(&gw, json!({"MAX_RETRIE": 1})).await;
    assert_eq!(
        refusal(&r, "MAX_RETRIE"),
        "MAX_RETRIE is not a setting of this gateway; did you mean MAX_RETRIES?"
    );
    let r = patch(&gw, json!({"NO_SUCH_THING": 1})).await;
    assert_eq!(
        refusal(&r, "NO_SUCH_THING"),
        "NO_SUCH_THING is not a setting of this gateway"
    );
    let r = call(&gw, Method::DELETE, "/admin/config/PORT", ADMIN, None).await;
    refusal(&r, "PORT");
    let r = call(&gw, Method::DELETE, "/admin/config/NOPE", ADMIN, None).await;
    refusal(&r, "NOPE");
    assert_eq!(
        entry(&settings(&gw).await, "TIME_OUT")["value"],
        "300",
        "nothing applied"
    );
    let r = call(&gw, Method::PUT, "/admin/config", ADMIN, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, HEAD, PATCH");
    gw.shutdown().await;
}

#[tokio::test]
async fn only_the_admin_token_may_read_or_change_settings() {
    let gw = gateway(&[]).await;
    let body = json!({"MAX_RETRIES": 0});
    for (method, path) in [
        (Method::GET, "/admin/config"),
        (Method::PATCH, "/admin/config"),
        (Method::DELETE, "/admin/config/MAX_RETRIES"),
    ] {
        for (token, status) in [
            (CLIENT, StatusCode::FORBIDDEN),
            ("sk-unknown-token-0000000", StatusCode::UNAUTHORIZED),
        ] {
            let r = call(&gw, method.clone(), path, token, Some(&body)).await;
            assert_eq!(r.status, status, "{method} {path}: {}", r.text());
            assert!(r.json()["error"]["message"].is_string());
        }
        let r = send(method.clone(), &gw.url(path), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(
        entry(&settings(&gw).await, "MAX_RETRIES")["source"],
        "default"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn values_may_be_json_or_the_environments_syntax() {
    let gw = gateway(&[]).await;
    let r = patch(
        &gw,
        json!({
            "SHOW_SEARCH_LINK": false,
            "SEARCH_MODELS": ["gemini-2.5-pro", "m2"],
            "THINKING_MODELS": "t1,t2",
            "THINKING_BUDGET_MAP": {"gemini-2.5-pro": 128},
            "FETCH_TIMEOUT": 2.5,
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut updated: Vec<String> = serde_json::from_value(r.json()["updated"].clone()).unwrap();
    updated.sort();
    assert_eq!(
        updated,
        [
            "FETCH_TIMEOUT",
            "SEARCH_MODELS",
            "SHOW_SEARCH_LINK",
            "THINKING_BUDGET_MAP",
            "THINKING_MODELS"
        ]
    );
    let list = settings(&gw).await;
    let value = |n: &str| entry(&list, n)["value"].as_str().unwrap().to_string();
    assert_eq!(value("SHOW_SEARCH_LINK"), "false");
    assert_eq!(value("SEARCH_MODELS"), r#"["gemini-2.5-pro","m2"]"#);
    assert_eq!(value("THINKING_MODELS"), r#"["t1","t2"]"#);
    assert_eq!(value("THINKING_BUDGET_MAP"), r#"{"gemini-2.5-pro":128}"#);
    assert_eq!(value("FETCH_TIMEOUT"), "2.5");
    // The translation reads them live: the model list offers -search now.
    let r = get(&gw, "/v1/models").await;
    assert!(r.text().contains("gemini-2.5-pro-search"), "{}", r.text());
    // `null` reverts, like DELETE.
    let r = patch(&gw, json!({"SEARCH_MODELS": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        entry(&settings(&gw).await, "SEARCH_MODELS")["source"],
        "default"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn changes_are_recorded_in_the_store_in_memory_mode() {
    let gw = gateway(&[]).await;
    let h = gw.app.store.clone();
    let r = patch(
        &gw,
        json!({"MAX_RETRIES": 1, "ALLOWED_TOKENS": [TOKEN, "sk-third-000000003"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    h.flush().await.unwrap();
    let kept = h.load().await.setting_overrides();
    assert_eq!(kept["MAX_RETRIES"], "1");
    assert!(kept["ALLOWED_TOKENS"].contains("sk-third-000000003"));
    let r = call(
        &gw,
        Method::DELETE,
        "/admin/config/MAX_RETRIES",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A refused change is not recorded.
    let r = patch(&gw, json!({"COOLDOWN_SECONDS": "never"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    h.flush().await.unwrap();
    let snap = h.load().await;
    assert_eq!(snap.settings["MAX_RETRIES"].value, None, "reverted");
    assert!(!snap.settings.contains_key("COOLDOWN_SECONDS"));
    gw.shutdown().await;
}

#[tokio::test]
async fn stored_settings_come_back_after_a_restart_over_the_environment() {
    let dir = std::env::temp_dir().join(format!("gb-admin-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_string_lossy().to_string();
    {
        let gw = gateway(&[("TIME_OUT", "30"), ("DATA_DIR", &d)]).await;
        let r = patch(&gw, json!({"TIME_OUT": 7, "MAX_RETRIES": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        gw.shutdown().await;
    }
    // The gateway started again on the same DATA_DIR: stored > env > default.
    let gw = gateway(&[
        ("TIME_OUT", "30"),
        ("COOLDOWN_SECONDS", "20"),
        ("DATA_DIR", &d),
    ])
    .await;
    let list = settings(&gw).await;
    let e = entry(&list, "TIME_OUT");
    assert_eq!(
        (&e["value"], &e["source"]),
        (&json!("7"), &json!("stored")),
        "stored > env"
    );
    let e = entry(&list, "MAX_RETRIES");
    assert_eq!(
        (&e["value"], &e["source"]),
        (&json!("1"), &json!("stored")),
        "stored > default"
    );
    let e = entry(&list, "COOLDOWN_SECONDS");
    assert_eq!((&e["value"], &e["source"]), (&json!("20"), &json!("env")));
    assert_eq!(gw.app.cfg().max_retries, 1, "applied, not only listed");
    gw.shutdown().await;

    // The same through the start-up function on its own.
    let (h, snap) = store::open_mode(Mode::File(dir.clone()), None)
        .await
        .unwrap();
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("API_KEYS".into(), "k1".into());
    env.insert("ALLOWED_TOKENS".into(), "sk-1".into());
    env.insert("TIME_OUT".into(), "30".into());
    env.insert("COOLDOWN_SECONDS".into(), "20".into());
    let cfg = gemini_balance::config::with_overrides(&env, &snap.setting_overrides()).unwrap();
    assert_eq!(
        cfg.time_out,
        std::time::Duration::from_secs(7),
        "stored > env"
    );
    assert_eq!(cfg.max_retries, 1, "stored > default");
    assert_eq!(cfg.cooldown, std::time::Duration::from_secs(20), "env");
    h.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn changes_from_other_replicas_apply_without_being_recorded_again() {
    use gemini_balance::store::Change;
    let gw = gateway(&[]).await;
    let h = gw.app.store.clone();
    let set = |name: &str, value: Option<&str>| Change::Setting {
        name: name.into(),
        value: value.map(str::to_string),
        at_ms: 1,
    };
    assert!(gw.app.apply_setting_change(&set("MAX_RETRIES", Some("0"))));
    assert!(
        !gw.app.apply_setting_change(&set("PORT", Some("1"))),
        "restart-only: skipped"
    );
    assert!(
        !gw.app.apply_setting_change(&set("TIME_OUT", Some("soon"))),
        "refused: skipped"
    );
    let list = settings(&gw).await;
    let e = entry(&list, "MAX_RETRIES");
    assert_eq!((&e["value"], &e["source"]), (&json!("0"), &json!("stored")));
    assert_eq!(entry(&list, "TIME_OUT")["value"], "300");
    h.flush().await.unwrap();
    assert!(h.load().await.settings.is_empty(), "not recorded again");

    // A resync makes the overrides exactly what the store holds.
    let stored = [
        ("TIME_OUT".to_string(), "5".to_string()),
        ("PORT".into(), "1".into()),
    ];
    gw.app.reload_settings(&stored.into_iter().collect());
    let list = settings(&gw).await;
    assert_eq!(entry(&list, "MAX_RETRIES")["source"], "default");
    assert_eq!(entry(&list, "TIME_OUT")["value"], "5");
    assert_eq!(entry(&list, "PORT")["source"], "default");
    gw.shutdown().await;
}
