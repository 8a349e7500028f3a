//! The Files API, cached contents and batches through the gateway, against
//! the fake (whose files and caches belong to the key that created them, and
//! answer 403 to any other key, as Google does): the upload protocol
//! (resumable through a gateway-served session URL, multipart), get, list,
//! delete, generate with `fileData` always on the owning key, another
//! token's 404, a disabled owner key's clear error, the session URL's
//! expiry, caches, and the records surviving a restart with `DATA_DIR`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::*;
use gemini_balance::keys::Outcome;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const OTHER: &str = "sk-other-token-987654321";

fn tokens() -> String {
    format!("[\"{TOKEN}\",\"{OTHER}\"]")
}

async fn goog(gw: &Gw, token: &str, method: Method, path: &str, body: impl Into<Bytes>) -> Answer {
    send(
        method,
        &gw.url(path),
        &[
            ("x-goog-api-key", token),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

/// A resumable upload of `data` under `prefix` (e.g. `""`, `/hf/gemini`):
/// the start answer's URL, and the finalized file.
async fn upload(gw: &Gw, token: &str, prefix: &str, version: &str, data: &[u8]) -> (String, Value) {
    let len = data.len().to_string();
    let start = send(
        Method::POST,
        &gw.url(&format!("{prefix}/upload/{version}/files")),
        &[
            ("x-goog-api-key", token),
            ("content-type", "application/json"),
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
            ("x-goog-upload-header-content-length", &len),
            ("x-goog-upload-header-content-type", "text/plain"),
        ],
        r#"{"file": {"display_name": "notes"}}"#,
    )
    .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text());
    let url = start.headers["x-goog-upload-url"]
        .to_str()
        .unwrap()
        .to_string();
    // Two chunks, no credential on either (as google-genai sends them).
    let half = data.len() / 2;
    let first = send(
        Method::POST,
        &url,
        &[
            ("x-goog-upload-command", "upload"),
            ("x-goog-upload-offset", "0"),
        ],
        data[..half].to_vec(),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.headers["x-goog-upload-status"], "active");
    let last = send(
        Method::POST,
        &url,
        &[
            ("x-goog-upload-command", "upload, finalize"),
            ("x-goog-upload-offset", &half.to_string()),
        ],
        data[half..].to_vec(),
    )
    .await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text());
    assert_eq!(last.headers["x-goog-upload-status"], "final");
    (url, last.json()["file"].clone())
}

fn generate_with(uri: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"contents": [{"role": "user", "parts": [
        {"fileData": {"mimeType": "text/plain", "fileUri": uri}},
        {"text": "Summarize it."}
    ]}]}))
    .unwrap()
}

#[tokio::test]
async fn resumable_upload_then_every_use_stays_on_the_owning_key() {
    let gw = start(&[("ALLOWED_TOKENS", &tokens())]).await;
    let data = vec![b'x'; 300_000];
    let (url, file) = upload(&gw, TOKEN, "/hf/gemini", "v1beta", &data).await;
    // The session URL points back at the gateway, /hf kept, and holds no key.
    assert!(
        url.starts_with(&format!(
            "http://{}/hf/gemini/upload/v1beta/files?upload_id=",
            gw.addr
        )),
        "{url}"
    );
    let id =
        gemini_balance::request::query_param(url.split_once('?').unwrap().1, "upload_id").unwrap();
    assert!(id.len() >= 32, "128 random bits: {id}");
    assert!(!url.contains("key-"), "{url}");
    assert_eq!(
        file["sizeBytes"],
        data.len().to_string(),
        "every byte reached the fake"
    );
    let name = file["name"].as_str().unwrap().to_string();
    let uri = file["uri"].as_str().unwrap().to_string();

    // get, on v1beta and v1 (google-genai's default), never a 403.
    for path in [
        format!("/v1beta/{name}"),
        format!("/v1/{name}"),
        format!("/gemini/v1/{name}"),
    ] {
        let a = goog(&gw, TOKEN, Method::GET, &path, Bytes::new()).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text());
        assert_eq!(a.json()["name"], name);
    }
    // generate with the file 20 times: round robin would hit the other keys.
    for i in 0..20 {
        let a = goog(
            &gw,
            TOKEN,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            generate_with(&uri),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "call {i}: {}", a.text());
    }
    // streamed too.
    let a = goog(
        &gw,
        TOKEN,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        generate_with(&uri),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(!a.text().contains("PERMISSION_DENIED"), "{}", a.text());

    // list shows it (merged across the keys holding the token's files).
    let list = goog(&gw, TOKEN, Method::GET, "/v1beta/files", Bytes::new()).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let names: Vec<String> = list.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec![name.clone()]);

    // The chunk calls carried no credential from the client, and every call
    // naming the file reached the fake with one and the same key.
    let keys: std::collections::BTreeSet<String> = gw
        .state()
        .requests()
        .iter()
        // (the admin token's list asks every key: not about this file)
        .filter(|r| !r.path.ends_with("/files") || r.path.starts_with("/upload/"))
        .filter(|r| r.path.contains("/files") || r.body.windows(6).any(|w| w == b"files/"))
        .filter_map(|r| r.api_key.clone())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "one key for everything about the file: {keys:?}"
    );

    // delete, then it is gone.
    let d = goog(
        &gw,
        TOKEN,
        Method::DELETE,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    let g = goog(
        &gw,
        TOKEN,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    // The record is gone: the admin token's call goes out unpinned.
    assert_eq!(g.status, StatusCode::NOT_FOUND, "{}", g.text());
    for i in gw.app.pool.live_indices() {
        assert!(
            !gw.app.pool.is_disabled(i),
            "a foreign file's 403 disabled a key"
        );
    }
}

#[tokio::test]
async fn multipart_upload_and_another_token_cannot_see_it() {
    let gw = start(&[("ALLOWED_TOKENS", &tokens())]).await;
    let body = "--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"file\": {\"display_name\": \"report\"}}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello world\r\n--b--\r\n";
    let a = send(
        Method::POST,
        &gw.url("/upload/v1/files"),
        &[
            ("x-goog-api-key", TOKEN),
            ("x-goog-upload-protocol", "multipart"),
            ("content-type", "multipart/related; boundary=b"),
        ],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let file = a.json()["file"].clone();
    let name = file["name"].as_str().unwrap();
    let uri = file["uri"].as_str().unwrap();
    let own = goog(
        &gw,
        TOKEN,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());

    // The other token: not in its list, 404 on get, use and delete.
    let other = goog(
        &gw,
        OTHER,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text());
    assert_eq!(other.json()["error"]["status"], "NOT_FOUND");
    let list = goog(&gw, OTHER, Method::GET, "/v1beta/files", Bytes::new()).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.json().get("files").is_none(), "{}", list.text());
    let used = goog(
        &gw,
        OTHER,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        generate_with(uri),
    )
    .await;
    assert_eq!(used.status, StatusCode::NOT_FOUND, "{}", used.text());
    let del = goog(
        &gw,
        OTHER,
        Method::DELETE,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_ne!(del.status, StatusCode::OK, "{}", del.text());
    // (the existing rule: shared resources take the admin token to delete)
    assert_eq!(del.status, StatusCode::FORBIDDEN, "{}", del.text());
    // The owner still has it.
    let own = goog(
        &gw,
        TOKEN,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
}

#[tokio::test]
async fn a_client_token_deletes_its_own_file() {
    // OTHER is a client token (the admin token is the first of the list).
    let gw = start(&[("ALLOWED_TOKENS", &tokens())]).await;
    let (_, file) = upload(&gw, OTHER, "", "v1", b"mine").await;
    let name = file["name"].as_str().unwrap();
    let del = goog(
        &gw,
        OTHER,
        Method::DELETE,
        &format!("/v1/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text());
    let g = goog(
        &gw,
        OTHER,
        Method::GET,
        &format!("/v1/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(g.status, StatusCode::NOT_FOUND, "{}", g.text());
}

#[tokio::test]
async fn a_disabled_owner_key_gets_a_clear_error_not_a_403() {
    let gw = start(&[]).await;
    let (_, file) = upload(&gw, TOKEN, "", "v1beta", b"some bytes here").await;
    let name = file["name"].as_str().unwrap();
    let owner = gw
        .state()
        .requests()
        .iter()
        .rev()
        .find(|r| r.path.starts_with("/upload/") && r.api_key.is_some())
        .and_then(|r| r.api_key.clone())
        .unwrap();
    let i = gw.app.pool.position(&owner).unwrap();
    gw.app
        .pool
        .report(i, "", &Outcome::KeyInvalid("API key not valid".into()));
    assert!(gw.app.pool.is_disabled(i));
    gw.state().clear();
    let a = goog(
        &gw,
        TOKEN,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert!(a.text().contains("disabled"), "{}", a.text());
    assert!(
        !a.text().contains(&owner),
        "the key is masked: {}",
        a.text()
    );
    let g = goog(
        &gw,
        TOKEN,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        generate_with(file["uri"].as_str().unwrap()),
    )
    .await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE, "{}", g.text());
    assert!(
        gw.state().requests().is_empty(),
        "nothing went to another key"
    );
}

#[tokio::test]
async fn the_session_url_needs_no_credential_but_expires() {
    let gw = start(&[("MAX_UPLOAD_BYTES", "1000")]).await;
    // Announced past MAX_UPLOAD_BYTES: 413 at the start.
    let big = send(
        Method::POST,
        &gw.url("/upload/v1beta/files"),
        &[
            ("x-goog-api-key", TOKEN),
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
            ("x-goog-upload-header-content-length", "5000"),
        ],
        "{}",
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text());
    // A start without a credential is refused.
    let anon = send(
        Method::POST,
        &gw.url("/upload/v1beta/files"),
        &[
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
        ],
        "{}",
    )
    .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{}", anon.text());
    let start = send(
        Method::POST,
        &gw.url("/upload/v1beta/files"),
        &[
            ("x-goog-api-key", TOKEN),
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
        ],
        "{}",
    )
    .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text());
    let url = start.headers["x-goog-upload-url"]
        .to_str()
        .unwrap()
        .to_string();
    // A chunk past MAX_UPLOAD_BYTES: 413.
    let over = send(
        Method::POST,
        &url,
        &[("x-goog-upload-command", "upload")],
        vec![0u8; 2000],
    )
    .await;
    assert_eq!(
        over.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        over.text()
    );
    // A guessed session id: 404.
    let guessed = url.replace("upload_id=", "upload_id=0");
    let g = send(
        Method::POST,
        &guessed,
        &[("x-goog-upload-command", "upload, finalize")],
        "x",
    )
    .await;
    assert_eq!(g.status, StatusCode::NOT_FOUND, "{}", g.text());
    // Within its expiry the URL works without a credential; after, 404.
    let id =
        gemini_balance::request::query_param(url.split_once('?').unwrap().1, "upload_id").unwrap();
    let ok = send(
        Method::POST,
        &url,
        &[("x-goog-upload-command", "upload")],
        "abc",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    gw.app.affinity.expire_session_at(&id, 1);
    let late = send(
        Method::POST,
        &url,
        &[("x-goog-upload-command", "upload, finalize")],
        "def",
    )
    .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND, "{}", late.text());
    assert!(late.text().contains("expired"), "{}", late.text());
}

#[tokio::test]
async fn caches_are_created_and_used_on_their_key() {
    let gw = start(&[("ALLOWED_TOKENS", &tokens())]).await;
    let (_, file) = upload(&gw, TOKEN, "", "v1beta", b"handbook text").await;
    let uri = file["uri"].as_str().unwrap();
    let create = json!({"model": "models/gemini-2.5-flash", "ttl": "600s", "contents": [
        {"role": "user", "parts": [{"fileData": {"fileUri": uri, "mimeType": "text/plain"}}]}
    ]});
    let c = goog(
        &gw,
        TOKEN,
        Method::POST,
        "/v1/cachedContents",
        serde_json::to_vec(&create).unwrap(),
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let cache = c.json()["name"].as_str().unwrap().to_string();
    for _ in 0..6 {
        let body = json!({"cachedContent": cache, "contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        let g = goog(
            &gw,
            TOKEN,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.text());
    }
    let got = goog(
        &gw,
        TOKEN,
        Method::GET,
        &format!("/v1beta/{cache}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let patched = goog(
        &gw,
        TOKEN,
        Method::PATCH,
        &format!("/v1beta/{cache}"),
        r#"{"ttl": "1200s"}"#,
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let list = goog(
        &gw,
        TOKEN,
        Method::GET,
        "/v1beta/cachedContents",
        Bytes::new(),
    )
    .await;
    assert_eq!(
        list.json()["cachedContents"].as_array().unwrap().len(),
        1,
        "{}",
        list.text()
    );
    let other = goog(
        &gw,
        OTHER,
        Method::GET,
        &format!("/v1beta/{cache}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text());
    let del = goog(
        &gw,
        TOKEN,
        Method::DELETE,
        &format!("/v1beta/{cache}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text());
}

#[tokio::test]
async fn affinity_survives_a_restart_with_data_dir() {
    let dir = std::env::temp_dir().join(format!("gb-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_s = dir.to_str().unwrap().to_string();
    let gw = start(&[("DATA_DIR", &dir_s)]).await;
    let (_, file) = upload(&gw, TOKEN, "", "v1beta", b"kept across restarts").await;
    let uri = file["uri"].as_str().unwrap().to_string();
    // The fake's files outlive the gateway: a new fake serves the same state.
    let state = gw.state().clone();
    gw.shutdown().await;
    let fake = fake_gemini::Fake::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), state)
        .await
        .unwrap();
    let gw = start_with_fake(fake, &[("DATA_DIR", &dir_s)]).await;
    for i in 0..6 {
        let a = goog(
            &gw,
            TOKEN,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            generate_with(&uri),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "after the restart, call {i}: {}",
            a.text()
        );
    }
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

const THIRD: &str = "sk-third-token-55555555";

async fn chat(gw: &Gw, token: &str, body: &Value) -> Answer {
    send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

#[tokio::test]
async fn openai_chat_file_references_go_on_the_files_key() {
    // OTHER and THIRD are client tokens; TOKEN is the admin.
    let toks = format!("[\"{TOKEN}\",\"{OTHER}\",\"{THIRD}\"]");
    let gw = start(&[("ALLOWED_TOKENS", &toks)]).await;
    let (_, file) = upload(&gw, OTHER, "", "v1beta", b"some notes to read").await;
    let name = file["name"].as_str().unwrap().to_string();
    let uri = file["uri"].as_str().unwrap().to_string();
    gw.state().clear();
    let parts = [
        json!({"type": "file", "file": {"file_id": name}}),
        json!({"type": "image_url", "image_url": {"url": uri}}),
        json!({"type": "file", "file": {"file_id": uri, "filename": "notes.txt"}}),
    ];
    for i in 0..21 {
        let part = &parts[i % parts.len()];
        let body = json!({"model": "gemini-2.5-flash", "stream": i % 2 == 1, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Summarize it."}, part]}]});
        let a = chat(&gw, OTHER, &body).await;
        assert_eq!(a.status, StatusCode::OK, "call {i} ({part}): {}", a.text());
        assert!(!a.text().contains("PERMISSION_DENIED"), "{}", a.text());
    }
    let calls = gw.state().requests();
    assert_eq!(calls.len(), 21, "no fetch, no retry: {calls:?}");
    let keys: std::collections::BTreeSet<_> =
        calls.iter().filter_map(|r| r.api_key.clone()).collect();
    assert_eq!(keys.len(), 1, "every call on the file's key: {keys:?}");
    for r in &calls {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let part = &body["contents"][0]["parts"][1]["fileData"];
        assert!(
            part["fileUri"].as_str().unwrap().ends_with(&name),
            "passed as fileData, never downloaded: {body}"
        );
    }

    // Another client token cannot use it: a 404 in OpenAI's format, no call.
    gw.state().clear();
    for part in &parts {
        let body = json!({"model": "gemini-2.5-flash", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Steal it."}, part]}]});
        let a = chat(&gw, THIRD, &body).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&name),
            "{}",
            a.text()
        );
    }
    assert!(gw.state().requests().is_empty());
    // The admin token may use it (on its key).
    let body = json!({"model": "gemini-2.5-flash", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Admin."}, &parts[0]]}]});
    let a = chat(&gw, TOKEN, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    // A file_id that is no Gemini file is a clear 400.
    let body = json!({"model": "gemini-2.5-flash", "messages": [
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]});
    let a = chat(&gw, OTHER, &body).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert_eq!(a.json()["error"]["param"], "messages[0].content[0].file");
}

/// The keys of the fake's calls whose path or body names `needle`.
fn keys_naming(state: &fake_gemini::FakeState, needle: &str) -> std::collections::BTreeSet<String> {
    state
        .requests()
        .iter()
        .filter(|r| {
            r.path.contains(needle) || r.body.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .filter_map(|r| r.api_key.clone())
        .collect()
}

#[tokio::test]
async fn batches_stay_on_the_key_that_created_them() {
    let toks = format!("[\"{TOKEN}\",\"{OTHER}\",\"{THIRD}\"]");
    let gw = start(&[("ALLOWED_TOKENS", &toks)]).await;
    let (_, file) = upload(
        &gw,
        OTHER,
        "",
        "v1beta",
        b"{\"key\":\"1\",\"request\":{}}\n",
    )
    .await;
    let input = file["name"].as_str().unwrap().to_string();
    let create = |body: Value| {
        let gw = &gw;
        async move {
            let a = goog(
                gw,
                OTHER,
                Method::POST,
                "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            a.json()["name"].as_str().unwrap().to_string()
        }
    };
    // One reading the uploaded file (it must go on the file's key), one inline.
    let from_file = create(json!({"batch": {"display_name": "f",
        "input_config": {"file_name": input}}}))
    .await;
    let inline = create(
        json!({"batch": {"display_name": "i", "input_config": {"requests":
        {"requests": [{"request": {"contents": [{"parts": [{"text": "hi"}]}]}}]}}}}),
    )
    .await;
    for name in [&from_file, &inline] {
        assert!(name.starts_with("batches/"), "{name}");
        for v in ["v1beta", "v1"] {
            for _ in 0..4 {
                let a = goog(
                    &gw,
                    OTHER,
                    Method::GET,
                    &format!("/{v}/{name}"),
                    Bytes::new(),
                )
                .await;
                assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.text());
                assert_eq!(a.json()["name"], name.as_str());
            }
        }
        // Another client token: as if it did not exist.
        for (m, path) in [
            (Method::GET, format!("/v1beta/{name}")),
            (Method::POST, format!("/v1beta/{name}:cancel")),
        ] {
            let a = goog(&gw, THIRD, m, &path, Bytes::new()).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text());
        }
    }
    let list = goog(&gw, OTHER, Method::GET, "/v1beta/batches", Bytes::new()).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let mut listed: Vec<String> = list.json()["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut want = vec![from_file.clone(), inline.clone()];
    want.sort();
    assert_eq!(listed, want, "merged across the keys holding them");
    let theirs = goog(&gw, THIRD, Method::GET, "/v1beta/batches", Bytes::new()).await;
    assert!(
        theirs.json().get("operations").is_none(),
        "{}",
        theirs.text()
    );
    for name in [&from_file, &inline] {
        let c = goog(
            &gw,
            OTHER,
            Method::POST,
            &format!("/v1beta/{name}:cancel"),
            Bytes::new(),
        )
        .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text());
        let g = goog(
            &gw,
            OTHER,
            Method::GET,
            &format!("/v1beta/{name}"),
            Bytes::new(),
        )
        .await;
        assert_eq!(g.json()["metadata"]["state"], "BATCH_STATE_CANCELLED");
        let d = goog(
            &gw,
            OTHER,
            Method::DELETE,
            &format!("/v1beta/{name}"),
            Bytes::new(),
        )
        .await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.text());
        let g = goog(
            &gw,
            OTHER,
            Method::GET,
            &format!("/v1beta/{name}"),
            Bytes::new(),
        )
        .await;
        assert_eq!(g.status, StatusCode::NOT_FOUND, "{}", g.text());
        let id = name.trim_start_matches("batches/");
        assert_eq!(keys_naming(gw.state(), id).len(), 1, "{name} on one key");
    }
    assert_eq!(
        keys_naming(gw.state(), &input),
        keys_naming(gw.state(), from_file.trim_start_matches("batches/")),
        "the batch reading the file is on the file's key"
    );
    assert!(
        !gw.state()
            .requests()
            .iter()
            .any(|r| r.path.contains("batches") && r.api_key.is_none()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_share_the_owners() {
    let Some(redis) = common::redis::RedisServer::start(None) else {
        return;
    };
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("gbtest-files-{}-{ns}:", std::process::id());
    let toks = format!("[\"{TOKEN}\",\"{OTHER}\",\"{THIRD}\"]");
    let url = redis.url();
    let vars = [
        ("ALLOWED_TOKENS", toks.as_str()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
    ];
    let a = start(&vars).await;
    // B talks to the same upstream (Google is one), through its own pool.
    let base = a.fake.base_url();
    let mut vb = vars.to_vec();
    vb.push(("BASE_URL", base.as_str()));
    let b = start(&vb).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Uploaded through A; used through B at once (no waiting for events).
    let (_, file) = upload(&a, OTHER, "", "v1beta", b"shared notes").await;
    let name = file["name"].as_str().unwrap().to_string();
    let uri = file["uri"].as_str().unwrap().to_string();
    let g = goog(
        &b,
        OTHER,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "B knows the file: {}", g.text());
    for i in 0..12 {
        let a2 = goog(
            &b,
            OTHER,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            generate_with(&uri),
        )
        .await;
        assert_eq!(a2.status, StatusCode::OK, "call {i}: {}", a2.text());
    }
    let body = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Read it."}, {"type": "file", "file": {"file_id": name}}]}]});
    let c = chat(&b, OTHER, &body).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let list = goog(&b, OTHER, Method::GET, "/v1beta/files", Bytes::new()).await;
    assert_eq!(
        list.json()["files"][0]["name"],
        name.as_str(),
        "{}",
        list.text()
    );
    // Isolation holds on B too.
    let t = goog(
        &b,
        THIRD,
        Method::GET,
        &format!("/v1beta/{name}"),
        Bytes::new(),
    )
    .await;
    assert_eq!(t.status, StatusCode::NOT_FOUND, "{}", t.text());

    // A cache made through B is used through A on the same key.
    let cache = goog(
        &b,
        OTHER,
        Method::POST,
        "/v1beta/cachedContents",
        serde_json::to_vec(&json!({"model": "models/gemini-2.5-flash", "contents": [
            {"role": "user", "parts": [{"fileData": {"fileUri": uri}}]}]}))
        .unwrap(),
    )
    .await;
    assert_eq!(cache.status, StatusCode::OK, "{}", cache.text());
    let cname = cache.json()["name"].as_str().unwrap().to_string();
    for _ in 0..6 {
        let body = json!({"cachedContent": cname, "contents": [{"role": "user", "parts": [{"text": "q"}]}]});
        let r = goog(
            &a,
            OTHER,
            Method::POST,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let keys = keys_naming(a.state(), &name)
        .union(&keys_naming(a.state(), &cname))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        keys.len(),
        1,
        "every call about the file and its cache on one key: {keys:?}"
    );
    assert!(
        b.state().requests().is_empty(),
        "B's own fake was never called"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A multipart upload of `text` by `token`; the file's name.
async fn upload_small(gw: &Gw, token: &str, text: &str) -> String {
    let body = format!(
        "--b\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{{\"file\": {{\"display_name\": \"d\"}}}}\r\n--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n--b--\r\n"
    );
    let a = send(
        Method::POST,
        &gw.url("/upload/v1beta/files"),
        &[
            ("x-goog-api-key", token),
            ("x-goog-upload-protocol", "multipart"),
            ("content-type", "multipart/related; boundary=b"),
        ],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()["file"]["name"].as_str().unwrap().to_string()
}

/// Every page of `path` with `pageSize=size` for `token`: the names, and
/// the pages' sizes.
async fn all_pages(
    gw: &Gw,
    token: &str,
    path: &str,
    member: &str,
    size: usize,
) -> (Vec<String>, Vec<usize>) {
    let (mut names, mut sizes) = (Vec::new(), Vec::new());
    let mut next: Option<String> = None;
    for _ in 0..50 {
        let q = match &next {
            Some(t) => format!("{path}?pageSize={size}&pageToken={t}"),
            None => format!("{path}?pageSize={size}"),
        };
        let a = goog(gw, token, Method::GET, &q, Bytes::new()).await;
        assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.text());
        let v = a.json();
        let page: Vec<String> = v[member]
            .as_array()
            .map(|x| {
                x.iter()
                    .map(|f| f["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(page.len() <= size, "{q}: {} items", page.len());
        sizes.push(page.len());
        names.extend(page);
        match v.get("nextPageToken").and_then(Value::as_str) {
            Some(t) => {
                assert!(t.len() < 600, "bounded: {t}");
                assert!(!t.contains("key-") && !t.contains("files/"), "opaque: {t}");
                next = Some(t.to_string());
            }
            None => return (names, sizes),
        }
    }
    panic!("more than 50 pages");
}

#[tokio::test]
async fn merged_lists_page_with_page_size_and_a_resumable_token() {
    let toks = format!("[\"{TOKEN}\",\"{OTHER}\",\"{THIRD}\"]");
    let gw = start(&[("ALLOWED_TOKENS", &toks)]).await;
    // Uploads rotate over the 3 keys: each key holds files of both tokens.
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..8 {
        mine.push(upload_small(&gw, OTHER, &format!("mine {i}")).await);
        theirs.push(upload_small(&gw, THIRD, &format!("theirs {i}")).await);
    }
    let holders: std::collections::BTreeSet<_> = gw
        .state()
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/upload/"))
        .filter_map(|r| r.api_key.clone())
        .collect();
    assert_eq!(holders.len(), 3, "spread over every key");
    for size in [1, 3, 5, 100] {
        let (mut names, sizes) = all_pages(&gw, OTHER, "/v1beta/files", "files", size).await;
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "no file twice (size {size})");
        let mut want = mine.clone();
        want.sort();
        assert_eq!(
            names, want,
            "every file of the token and nothing else (size {size})"
        );
        if size < 8 {
            assert!(
                sizes.iter().filter(|s| **s == size).count() >= 8 / size,
                "full pages: {sizes:?}"
            );
        }
    }
    // The admin sees everyone's, paged the same way.
    let (names, _) = all_pages(&gw, TOKEN, "/v1/files", "files", 4).await;
    assert_eq!(names.len(), 16);
    // A token that is not the gateway's is a 400, as Google answers.
    let bad = goog(
        &gw,
        OTHER,
        Method::GET,
        "/v1beta/files?pageToken=p3",
        Bytes::new(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert_eq!(bad.json()["error"]["status"], "INVALID_ARGUMENT");

    // Caches too.
    let mut caches = Vec::new();
    for _ in 0..5 {
        let c = goog(
            &gw,
            OTHER,
            Method::POST,
            "/v1beta/cachedContents",
            serde_json::to_vec(&json!({"model": "models/gemini-2.5-flash", "contents": [
                {"role": "user", "parts": [{"text": "long context"}]}]}))
            .unwrap(),
        )
        .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text());
        caches.push(c.json()["name"].as_str().unwrap().to_string());
    }
    let (mut names, sizes) =
        all_pages(&gw, OTHER, "/v1beta/cachedContents", "cachedContents", 2).await;
    names.sort();
    caches.sort();
    assert_eq!(names, caches, "pages {sizes:?}");
}
