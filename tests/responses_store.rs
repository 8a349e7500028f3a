//! Stored Responses API responses live in the store (issue 19): after a
//! restart on the same `DATA_DIR`, and on another replica sharing Redis, a
//! response can be continued with `previous_response_id`, read with `GET`,
//! its output items referenced with `item_reference`; still only by the
//! token that made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::redis::RedisServer;
use common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const OTHER: &str = "sk-other-token-0123456789";

fn tokens() -> String {
    format!("[\"{TOKEN}\",\"{OTHER}\"]")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let d = std::env::temp_dir().join(format!("gb-resp-{name}-{}-{ms}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The last generate body the fake received.
fn last_body(gw: &Gw) -> Value {
    let r = gw
        .state()
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.contains(":generateContent"))
        .unwrap();
    serde_json::from_slice(&r.body).unwrap()
}

async fn first_response(gw: &Gw) -> (String, String) {
    let r = post_json(
        gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": "my name is Ada"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_string(),
        v["output"][0]["id"].as_str().unwrap().to_string(),
    )
}

/// `gw` continues response `id` (made elsewhere) and finds its item.
async fn continues(gw: &Gw, id: &str, item: &str) {
    let r = post_json(
        gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "previous_response_id": id, "input": "my name?"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let contents = last_body(gw)["contents"].as_array().unwrap().clone();
    assert_eq!(contents.len(), 3, "{contents:?}");
    assert_eq!(contents[0]["parts"][0]["text"], "my name is Ada");
    assert_eq!(contents[1]["role"], "model");
    let got = get(gw, &format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.json()["id"], id);
    let r = post_json(
        gw,
        "/v1/responses",
        &json!({"model": "gemini-2.5-flash", "input": [
            {"role": "user", "content": "my name is Ada"},
            {"type": "item_reference", "id": item},
            {"role": "user", "content": "again?"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(last_body(gw)["contents"][1]["role"], "model");
    // Another token still sees nothing.
    let theirs = send(
        Method::GET,
        &gw.url(&format!("/v1/responses/{id}")),
        &[("authorization", &format!("Bearer {OTHER}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_stored_response_survives_a_restart_on_data_dir() {
    let dir = temp_dir("restart");
    let d = dir.to_str().unwrap().to_string();
    let vars = [("DATA_DIR", d.as_str()), ("ALLOWED_TOKENS", &tokens())];
    let gw = start(&vars).await;
    let (id, item) = first_response(&gw).await;
    gw.shutdown().await;
    let gw = start(&vars).await;
    continues(&gw, &id, &item).await;
    // DELETE reaches the store too: gone after another restart.
    let auth = format!("Bearer {TOKEN}");
    let r = send(
        Method::DELETE,
        &gw.url(&format!("/v1/responses/{id}")),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    gw.shutdown().await;
    let gw = start(&vars).await;
    assert_eq!(
        get(&gw, &format!("/v1/responses/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_b_continues_a_response_made_on_replica_a() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let url = redis.url();
    let prefix = format!("resp{}:", std::process::id());
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("ALLOWED_TOKENS", &tokens()),
    ];
    let a = start(&vars).await;
    let b = start(&vars).await;
    let (id, item) = first_response(&a).await;
    // Written behind: within a few flushes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    continues(&b, &id, &item).await;
    a.shutdown().await;
    b.shutdown().await;
}
