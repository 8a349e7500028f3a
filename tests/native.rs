//! The native side, end to end against the fake upstream: byte-faithful
//! pass-through of native Gemini calls on every prefix and API version, every way
//! to authenticate, callers' own keys and the lite edition's backup pool, Google's
//! error format, gzip answers, the derived model list, Gemini's own
//! OpenAI-compatible endpoint, the lite chat aliases and `/verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fake_gemini::{Fake, KeyBehavior, Recorded};
use gemini_balance::gemini::gzip;
use gemini_balance::keys::mask;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The default pool of `common::start`.
const POOL: [&str; 3] = ["key-a-0000000001", "key-b-0000000002", "key-c-0000000003"];
const GEN: &str = "/models/gemini-2.5-flash:generateContent";
const COUNT: &str = "/models/gemini-2.5-flash:countTokens";

fn user(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

fn body_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A native call with the token in `x-goog-api-key`.
async fn goog(gw: &Gw, method: Method, path: &str, body: &[u8]) -> Answer {
    send(
        method,
        &gw.url(path),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        body.to_vec(),
    )
    .await
}

/// The same call made straight to the fake with a pool key (the reference answer).
async fn direct(
    fake: &Fake,
    method: Method,
    path: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Answer {
    let mut h = vec![
        ("x-goog-api-key", POOL[0]),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    send(
        method,
        &format!("http://{}{}", fake.addr, path),
        &h,
        body.to_vec(),
    )
    .await
}

fn last(gw: &Gw) -> Recorded {
    gw.state().requests().pop().expect("the fake got a request")
}

/// Google's error envelope with this code and status.
fn assert_google_error(a: &Answer, code: u16, status: &str) {
    assert_eq!(a.status.as_u16(), code, "{}", a.text());
    let v = a.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

fn text_of(resp: &Value, cand: usize) -> String {
    resp["candidates"][cand]["content"]["parts"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default()
}

/// Send a request and collect the body frame by frame with arrival times;
/// the last element says whether the body ended in an error.
async fn frames(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, http::HeaderMap, Vec<(Duration, Bytes)>, bool) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(Method::POST).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let started = Instant::now();
    let res = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("request sent");
    let (parts, mut incoming) = res.into_parts();
    let mut out = Vec::new();
    let mut broke = false;
    while let Some(f) = incoming.frame().await {
        match f {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    out.push((started.elapsed(), d));
                }
            }
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    (parts.status, parts.headers, out, broke)
}

fn concat(fr: &[(Duration, Bytes)]) -> Vec<u8> {
    fr.iter().flat_map(|(_, b)| b.to_vec()).collect()
}

// ---------------------------------------------------------------------------
// Byte-faithful pass-through
// ---------------------------------------------------------------------------

#[tokio::test]
async fn request_bytes_reach_upstream_unchanged_and_only_the_key_changes() {
    let gw = start(&[]).await;
    // snake_case and camelCase mixed, unknown and future fields, odd spacing,
    // escapes and number spellings that any re-serialisation would change.
    let body: &[u8] = b"{ \"contents\" : [ {\"role\":\"user\",\"parts\":[{\"text\":\"Hello \\u00e9 <b>\"}]} ],\n \"system_instruction\": {\"parts\": [{\"text\": \"be brief\"}]},\n \"generation_config\": {\"candidate_count\": 2, \"temperature\": 1.0e0, \"futureKnob\": {\"x\": [1,2,3]}},\n \"brandNewTopLevelField\": true, \"safetySettings\": [] }\n";
    let a = send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:generateContent?key=sk-test-token-0123456789&prettyPrint=false&quotaUser=abc"),
        &[
            ("content-type", "application/json"),
            ("x-goog-api-client", "genai-py/1.0 gl-python/3.12"),
            ("cookie", "session=secret-cookie"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-custom-header", "nope"),
        ],
        body.to_vec(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let r = last(&gw);
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(&r.body[..], body, "the body went upstream byte for byte");
    assert_eq!(
        r.query.as_deref(),
        Some("prettyPrint=false&quotaUser=abc"),
        "?key= removed, every other parameter kept in order"
    );
    assert!(
        POOL.contains(&r.api_key.as_deref().unwrap()),
        "a pool key went upstream"
    );
    assert!(r.authorization.is_none());
    let header = |n: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-goog-api-key").as_deref(), r.api_key.as_deref());
    assert_eq!(
        header("x-goog-api-client").as_deref(),
        Some("genai-py/1.0 gl-python/3.12")
    );
    for dropped in ["cookie", "x-forwarded-for", "x-custom-header"] {
        assert!(header(dropped).is_none(), "{dropped} must not be forwarded");
    }
    for (k, v) in &r.headers {
        assert!(
            !v.contains(TOKEN),
            "the caller's token leaked upstream in {k}"
        );
    }
    // The fake honoured the snake_case fields (2 candidates, system instruction counted).
    let v = a.json();
    assert_eq!(v["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(text_of(&v, 0), "Echo: Hello é <b>");
    // prettyPrint=false reached the fake: Google's compact style came back untouched.
    assert!(
        a.text().starts_with("{\"candidates\": [{\"content\": "),
        "{}",
        a.text()
    );
    assert_eq!(
        a.headers
            .get("x-frame-options")
            .and_then(|v| v.to_str().ok()),
        Some("SAMEORIGIN"),
        "upstream headers come back"
    );
    assert_ne!(
        a.headers.get("server").and_then(|v| v.to_str().ok()),
        Some("scaffolding on HTTPServer2")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn deterministic_answers_are_byte_identical_to_upstream() {
    let gw = start(&[]).await;
    let count = br#"{"generate_content_request": {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "count these five words"}]}], "system_instruction": {"parts": [{"text": "sys"}]}}}"#;
    let embed = br#"{"content": {"parts": [{"text": "embed me"}]}, "output_dimensionality": 8, "task_type": "RETRIEVAL_QUERY"}"#;
    let batch = br#"{"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}, {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "output_dimensionality": 4}]}"#;
    let cases: [(Method, &str, &[u8]); 6] = [
        (Method::POST, COUNT, count),
        (
            Method::POST,
            "/models/gemini-embedding-001:embedContent",
            embed,
        ),
        (
            Method::POST,
            "/models/gemini-embedding-001:batchEmbedContents",
            batch,
        ),
        (Method::GET, "/models/gemini-2.5-pro", b""),
        (Method::GET, "/models?pageSize=4", b""),
        // An upstream error passes through as it came.
        (
            Method::POST,
            "/models/gemini-9-ultra:generateContent",
            b"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}",
        ),
    ];
    for (method, tail, body) in cases {
        for (prefix, version) in [("/v1beta", "/v1beta"), ("/gemini/v1", "/v1")] {
            let via = goog(&gw, method.clone(), &format!("{prefix}{tail}"), body).await;
            let want = direct(
                &gw.fake,
                method.clone(),
                &format!("{version}{tail}"),
                body,
                &[],
            )
            .await;
            assert_eq!(via.status, want.status, "{prefix}{tail}: {}", via.text());
            assert_eq!(via.text(), want.text(), "{prefix}{tail}");
            assert_eq!(
                via.headers.get("content-type"),
                want.headers.get("content-type"),
                "{prefix}{tail}"
            );
        }
    }
    // The snake_case fields were honoured upstream.
    let e = goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-embedding-001:embedContent",
        embed,
    )
    .await;
    assert_eq!(e.json()["embedding"]["values"].as_array().unwrap().len(), 8);
    let c = goog(&gw, Method::POST, &format!("/v1beta{COUNT}"), count)
        .await
        .json();
    assert!(c["totalTokens"].as_u64().unwrap() >= 5, "{c}");
    let nf = goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-9-ultra:generateContent",
        b"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}",
    )
    .await;
    assert_google_error(&nf, 404, "NOT_FOUND");
    gw.shutdown().await;
}

#[tokio::test]
async fn every_prefix_and_version_reaches_the_right_upstream() {
    let gw = start(&[]).await;
    let body = body_of(&user("count me"));
    for (prefix, upstream) in [
        ("/v1beta", "/v1beta"),
        ("/gemini/v1beta", "/v1beta"),
        ("/hf/v1beta", "/v1beta"),
        ("/hf/gemini/v1beta", "/v1beta"),
        ("/gemini/v1", "/v1"),
        ("/hf/gemini/v1", "/v1"),
        ("/v1", "/v1"),
        ("/hf/v1", "/v1"),
    ] {
        let a = goog(&gw, Method::POST, &format!("{prefix}{COUNT}"), &body).await;
        assert_eq!(a.status, StatusCode::OK, "{prefix}: {}", a.text());
        assert_eq!(a.json()["totalTokens"], 2, "{prefix}");
        assert_eq!(last(&gw).path, format!("{upstream}{COUNT}"), "{prefix}");
        let m = goog(
            &gw,
            Method::GET,
            &format!("{prefix}/models/gemini-2.5-flash"),
            b"",
        )
        .await;
        assert_eq!(m.json()["name"], "models/gemini-2.5-flash", "{prefix}");
        assert_eq!(
            last(&gw).path,
            format!("{upstream}/models/gemini-2.5-flash")
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_root_v1_serves_both_apis_by_credential_and_action() {
    let gw = start(&[]).await;
    // The google-genai SDK's default with base_url at the root: x-goog-api-key on /v1.
    let native = goog(&gw, Method::GET, "/v1/models?pageSize=2", b"").await;
    assert_eq!(native.status, StatusCode::OK, "{}", native.text());
    let v = native.json();
    assert_eq!(v["models"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["nextPageToken"].is_string());
    assert_eq!(last(&gw).path, "/v1/models");
    assert_eq!(last(&gw).query.as_deref(), Some("pageSize=2"));
    let one = goog(&gw, Method::GET, "/v1/models/gemini-2.5-flash", b"")
        .await
        .json();
    assert_eq!(one["name"], "models/gemini-2.5-flash");
    assert!(one["supportedGenerationMethods"].is_array());
    let by_query = send(
        Method::GET,
        &gw.url(&format!("/v1/models?key={TOKEN}")),
        &[],
        Bytes::new(),
    )
    .await;
    assert!(
        by_query.json()["models"].is_array(),
        "?key= is a native credential too"
    );
    let generated = goog(
        &gw,
        Method::POST,
        &format!("/v1{GEN}"),
        &body_of(&user("root v1")),
    )
    .await;
    assert_eq!(text_of(&generated.json(), 0), "Echo: root v1");
    assert_eq!(last(&gw).path, format!("/v1{GEN}"));
    // A bearer token on the same paths is the OpenAI API.
    let oai = get(&gw, "/v1/models").await.json();
    assert_eq!(oai["object"], "list", "{oai}");
    assert!(
        oai["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gemini-2.5-flash")
    );
    let oai_one = get(&gw, "/v1/models/gemini-2.5-flash").await.json();
    assert_eq!(oai_one["id"], "gemini-2.5-flash");
    assert_eq!(oai_one["object"], "model");
    // ...unless the path carries a native :action.
    let bearer_native = send(
        Method::POST,
        &gw.url(&format!("/v1{COUNT}")),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body_of(&user("a b")),
    )
    .await;
    assert_eq!(bearer_native.json()["totalTokens"], 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn pagination_walks_every_page_like_upstream() {
    let gw = start(&[]).await;
    let all = direct(
        &gw.fake,
        Method::GET,
        "/v1beta/models?pageSize=1000",
        b"",
        &[],
    )
    .await
    .json();
    let want: Vec<String> = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert!(want.len() > 4);
    for prefix in ["/gemini/v1beta", "/hf/v1beta", "/v1"] {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &token {
                Some(t) => format!(
                    "{prefix}/models?pageSize=2&pageToken={}",
                    t.replace('=', "%3D")
                ),
                None => format!("{prefix}/models?pageSize=2"),
            };
            let page = goog(&gw, Method::GET, &path, b"").await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text());
            let q = last(&gw).query.unwrap();
            assert!(q.starts_with("pageSize=2"), "{q}");
            let v = page.json();
            let models = v["models"].as_array().unwrap();
            assert!(models.len() <= 2);
            names.extend(
                models
                    .iter()
                    .map(|m| m["name"].as_str().unwrap().to_string()),
            );
            pages += 1;
            match v["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        assert_eq!(names, want, "{prefix}");
        assert_eq!(pages, want.len().div_ceil(2));
    }
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sse_stream_passes_through_event_by_event() {
    let gw = start(&[]).await;
    for prefix in ["/v1beta", "/gemini/v1"] {
        let (status, headers, fr, broke) = frames(
            &gw.url(&format!(
                "{prefix}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            )),
            &[
                ("x-goog-api-key", TOKEN),
                ("content-type", "application/json"),
            ],
            body_of(&user("[[events=4 gap=150]] go")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!broke);
        assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
        assert_eq!(last(&gw).query.as_deref(), Some("alt=sse"));
        let first = fr.first().unwrap().0;
        let end = fr.last().unwrap().0;
        assert!(
            end >= first + Duration::from_millis(300),
            "the first event arrived before the last was produced ({first:?} vs {end:?})"
        );
        let body = String::from_utf8(concat(&fr)).unwrap();
        // Google's framing, untouched: `data: <compact JSON>\r\n\r\n`, no [DONE].
        let events: Vec<&str> = body.split_terminator("\r\n\r\n").collect();
        assert_eq!(events.len(), 4, "{body:?}");
        assert!(body.ends_with("\r\n\r\n") && !body.contains("[DONE]"));
        let mut text = String::new();
        for (i, e) in events.iter().enumerate() {
            let json = e.strip_prefix("data: ").unwrap();
            assert!(
                json.starts_with("{\"candidates\": [{"),
                "Google's compact style: {json}"
            );
            let v: Value = serde_json::from_str(json).unwrap();
            text.push_str(&text_of(&v, 0));
            assert!(v["usageMetadata"]["promptTokenCount"].is_u64());
            assert_eq!(v["candidates"][0].get("finishReason").is_some(), i == 3);
        }
        assert_eq!(text, "lorem ipsum dolor sit");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn json_array_stream_passes_through() {
    let gw = start(&[]).await;
    let (status, headers, fr, broke) = frames(
        &gw.url("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
        &[
            ("x-goog-api-key", TOKEN),
            ("content-type", "application/json"),
        ],
        body_of(&user("[[events=3 gap=150]] x")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!broke);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        fr.len() >= 3,
        "streamed in pieces, not buffered: {} frames",
        fr.len()
    );
    assert!(fr.last().unwrap().0 >= fr[0].0 + Duration::from_millis(200));
    let body = String::from_utf8(concat(&fr)).unwrap();
    assert!(body.starts_with("[{\n"), "{body}");
    assert_eq!(body.matches("\n,\r\n").count(), 2, "{body}");
    assert!(body.ends_with("\n]"));
    let arr: Vec<Value> = serde_json::from_str(&body).unwrap();
    let text: String = arr.iter().map(|c| text_of(c, 0)).collect();
    assert_eq!(text, "lorem ipsum dolor");
    assert!(last(&gw).query.is_none(), "no alt parameter was invented");
    // An error before the stream starts comes back array-wrapped, as Google sends it.
    let err = goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-9-ultra:streamGenerateContent",
        &body_of(&user("x")),
    )
    .await;
    assert_eq!(err.status, StatusCode::NOT_FOUND);
    assert_eq!(err.json()[0]["error"]["status"], "NOT_FOUND");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let gw = start(&[("API_KEYS", r#"["cut-key-00000001"]"#)]).await;
    let a = goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        &body_of(&user("[[words=12]] x")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let events = sse_events(&a.text());
    assert_eq!(events.len(), 3, "{}", a.text());
    let tail: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(tail["error"]["code"], 502);
    assert_eq!(tail["error"]["status"], "INTERNAL");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Who may call
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_auth_way_and_the_refusals_in_googles_format() {
    let gw = start(&[]).await;
    let body = body_of(&user("auth"));
    let path = format!("/v1beta{COUNT}");
    let bearer = format!("Bearer {TOKEN}");
    for (name, url, headers) in [
        ("header", gw.url(&path), vec![("x-goog-api-key", TOKEN)]),
        ("query", gw.url(&format!("{path}?key={TOKEN}")), vec![]),
        (
            "bearer",
            gw.url(&path),
            vec![("authorization", bearer.as_str())],
        ),
    ] {
        let a = send(Method::POST, &url, &headers, body.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.text());
        let r = last(&gw);
        assert!(POOL.contains(&r.api_key.as_deref().unwrap()), "{name}");
        assert!(r.query.is_none(), "{name}: the caller's ?key= was removed");
    }
    let before = gw.state().requests().len();
    let none = send(Method::POST, &gw.url(&path), &[], body.clone()).await;
    assert_google_error(&none, 401, "UNAUTHENTICATED");
    for (k, v) in [
        ("x-goog-api-key", "AIzaSyNotOurTokenAtAll-1234"),
        ("authorization", "Bearer sk-wrong-token"),
    ] {
        let wrong = send(Method::POST, &gw.url(&path), &[(k, v)], body.clone()).await;
        assert_google_error(&wrong, 403, "PERMISSION_DENIED");
        assert!(
            !wrong.text().contains("AIzaSyNotOurTokenAtAll"),
            "never echo a credential"
        );
    }
    let wrong_q = send(
        Method::GET,
        &gw.url("/gemini/v1beta/models?key=nope-nope-nope"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_google_error(&wrong_q, 403, "PERMISSION_DENIED");
    assert_eq!(
        gw.state().requests().len(),
        before,
        "refused calls never reach upstream"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn callers_own_keys_only_when_enabled() {
    let off = start(&[]).await;
    let a = send(
        Method::POST,
        &off.url(&format!("/v1beta{GEN}")),
        &[("x-goog-api-key", "client-a-00000001")],
        body_of(&user("x")),
    )
    .await;
    assert_google_error(&a, 403, "PERMISSION_DENIED");
    assert!(off.state().requests().is_empty());
    off.shutdown().await;

    let on = start(&[("CLIENT_KEYS_ENABLED", "true")]).await;
    // A comma-separated list is balanced over, one key per call in turn.
    for _ in 0..4 {
        let a = send(
            Method::POST,
            &on.url(&format!("/v1beta{GEN}")),
            &[("x-goog-api-key", "client-a-00000001,client-b-00000002")],
            body_of(&user("mine")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(text_of(&a.json(), 0), "Echo: mine");
    }
    assert_eq!(on.state().count_for_key("client-a-00000001"), 2);
    assert_eq!(on.state().count_for_key("client-b-00000002"), 2);
    assert!(
        POOL.iter().all(|k| on.state().count_for_key(k) == 0),
        "the pool was not used"
    );
    // ?key= works the same; the token still means the server's pool.
    let q = send(
        Method::GET,
        &on.url("/v1beta/models/gemini-2.5-flash?key=client-c-00000003"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(q.status, StatusCode::OK);
    assert_eq!(last(&on).api_key.as_deref(), Some("client-c-00000003"));
    assert!(last(&on).query.is_none());
    goog(&on, Method::GET, "/v1beta/models/gemini-2.5-flash", b"").await;
    assert!(POOL.contains(&last(&on).api_key.as_deref().unwrap()));
    // The caller's own key is bad: Google's answer is the caller's to see.
    let bad = send(
        Method::POST,
        &on.url(&format!("/v1beta{GEN}")),
        &[("x-goog-api-key", "bad-client-key-001")],
        body_of(&user("x")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    let v = bad.json();
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    // ...and the server's pool is untouched by it.
    assert_eq!(on.app.pool.counts().disabled, 0);
    on.shutdown().await;
}

#[tokio::test]
async fn the_lite_backup_pool_rules() {
    let gw = start(&[
        ("CLIENT_KEYS_ENABLED", "true"),
        (
            "BACKUP_API_KEYS",
            r#"["backup-key-000001","backup-key-000002"]"#,
        ),
        ("TRUSTED_API_KEYS", r#"["trusted-client-001"]"#),
    ])
    .await;
    let call = |cred: &'static str| {
        let url = gw.url(&format!("/gemini/v1beta{GEN}"));
        async move {
            send(
                Method::POST,
                &url,
                &[("x-goog-api-key", cred)],
                body_of(&user("b")),
            )
            .await
        }
    };
    // A trusted single key uses the backup pool; its own value never goes upstream.
    for _ in 0..2 {
        assert_eq!(call("trusted-client-001").await.status, StatusCode::OK);
        let k = last(&gw).api_key.unwrap();
        assert!(k.starts_with("backup-key-"), "{k}");
    }
    assert_eq!(gw.state().count_for_key("trusted-client-001"), 0);
    assert_eq!(gw.state().count_for_key("backup-key-000001"), 1);
    assert_eq!(gw.state().count_for_key("backup-key-000002"), 1);
    // An untrusted single key is used as it is.
    assert_eq!(call("untrusted-client-01").await.status, StatusCode::OK);
    assert_eq!(last(&gw).api_key.as_deref(), Some("untrusted-client-01"));
    // Several keys are used as given, trusted or not.
    assert_eq!(
        call("trusted-client-001,other-client-0001").await.status,
        StatusCode::OK
    );
    let k = last(&gw).api_key.unwrap();
    assert!(k == "trusted-client-001" || k == "other-client-0001", "{k}");
    // The server pool was never touched.
    assert!(POOL.iter().all(|k| gw.state().count_for_key(k) == 0));
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// The gateway's own errors, in Google's format
// ---------------------------------------------------------------------------

#[tokio::test]
async fn gateway_errors_use_googles_envelope() {
    let gw = start(&[("MAX_BODY_BYTES", "2000")]).await;
    let big = body_of(&user(&"x".repeat(3000)));
    assert_google_error(
        &goog(&gw, Method::POST, &format!("/v1beta{GEN}"), &big).await,
        413,
        "INVALID_ARGUMENT",
    );
    let escape = goog(&gw, Method::GET, "/v1beta/models/a%2F..%2Fb", b"").await;
    assert_google_error(&escape, 400, "INVALID_ARGUMENT");
    // An upstream client error passes through untouched (and blames no key).
    let four = goog(
        &gw,
        Method::POST,
        &format!("/v1beta{GEN}"),
        &body_of(&user("[[status=400]]")),
    )
    .await;
    assert_google_error(&four, 400, "INVALID_ARGUMENT");
    assert_eq!(
        four.json()["error"]["message"],
        "Request contains an invalid argument."
    );
    assert_eq!(gw.app.pool.counts().active, 3);
    gw.shutdown().await;

    let dead = start(&[("API_KEYS", r#"["bad-key-00000001","expired-key-00001"]"#)]).await;
    for _ in 0..2 {
        let a = goog(
            &dead,
            Method::POST,
            &format!("/v1beta{GEN}"),
            &body_of(&user("x")),
        )
        .await;
        assert_google_error(&a, 503, "UNAVAILABLE");
        assert!(!a.text().contains("bad-key-00000001"));
    }
    dead.shutdown().await;

    let cooling = start(&[("API_KEYS", r#"["quota-key-000001"]"#)]).await;
    cooling
        .state()
        .set_key("quota-key-000001", KeyBehavior::Quota { retry_secs: 30 });
    let first = goog(
        &cooling,
        Method::POST,
        &format!("/v1beta{GEN}"),
        &body_of(&user("x")),
    )
    .await;
    assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        first.json()["error"]["status"],
        "RESOURCE_EXHAUSTED",
        "Google's 429 as it came"
    );
    let second = goog(
        &cooling,
        Method::POST,
        &format!("/v1beta{GEN}"),
        &body_of(&user("x")),
    )
    .await;
    assert_google_error(&second, 429, "RESOURCE_EXHAUSTED");
    let retry: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(
        cooling.state().count_for_key("quota-key-000001"),
        1,
        "a cooling key is not asked again"
    );
    cooling.shutdown().await;
}

#[tokio::test]
async fn a_bad_pool_key_is_retried_and_never_shown() {
    let gw = start(&[(
        "API_KEYS",
        r#"["AIzaSBadBadBadBadBadBadBadBadxxxxx0001","key-good-00000001"]"#,
    )])
    .await;
    gw.state().set_key(
        "AIzaSBadBadBadBadBadBadBadBadxxxxx0001",
        KeyBehavior::Suspended,
    );
    for _ in 0..3 {
        let a = goog(
            &gw,
            Method::POST,
            &format!("/v1beta{GEN}"),
            &body_of(&user("retry")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(text_of(&a.json(), 0), "Echo: retry");
    }
    assert_eq!(
        gw.state()
            .count_for_key("AIzaSBadBadBadBadBadBadBadBadxxxxx0001"),
        1
    );
    assert_eq!(gw.app.pool.counts().disabled, 1);
    let status = get(&gw, "/status").await.text();
    assert!(!status.contains("AIzaSBadBadBadBadBadBadBadBadxxxxx0001"));
    assert!(status.contains(&mask("AIzaSBadBadBadBadBadBadBadBadxxxxx0001")));
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// gzip
// ---------------------------------------------------------------------------

#[tokio::test]
async fn gzip_answers_reach_the_client_intact() {
    let gw = start(&[]).await;
    let count = body_of(&user("gzip me please"));
    let gz = [("accept-encoding", "gzip")];
    let want = direct(
        &gw.fake,
        Method::POST,
        &format!("/v1beta{COUNT}"),
        &count,
        &gz,
    )
    .await;
    assert_eq!(
        want.headers["content-encoding"], "gzip",
        "the fake gzips when asked"
    );
    let via = send(
        Method::POST,
        &gw.url(&format!("/v1beta{COUNT}")),
        &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
        count.clone(),
    )
    .await;
    assert_eq!(via.status, StatusCode::OK);
    assert_eq!(via.headers["content-encoding"], "gzip");
    assert_eq!(
        via.body, want.body,
        "the gzip bytes are passed through unchanged"
    );
    let plain: Value = serde_json::from_slice(&gzip::decode(&via.body, 1 << 20).unwrap()).unwrap();
    assert_eq!(plain["totalTokens"], 4, "max(3 words, 14 chars / 4)");
    assert!(
        last(&gw)
            .headers
            .iter()
            .any(|(k, v)| k == "accept-encoding" && v == "gzip")
    );

    // With heartbeats on (the default), an SSE stream goes out plain even to
    // a client that accepts gzip: a heartbeat cannot pass a gzip stream.
    let stream_path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    let gz_auth = [("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")];
    let (status, headers, fr, broke) = frames(
        &gw.url(stream_path),
        &gz_auth,
        body_of(&user("[[events=3 gap=150]] x")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!broke);
    assert!(!headers.contains_key("content-encoding"), "{headers:?}");
    let sse = String::from_utf8(concat(&fr)).unwrap();
    assert_eq!(sse_events(&sse).len(), 3, "{sse}");

    // With heartbeats off, a gzip stream is still streamed, and decodes to
    // Google's SSE events.
    let quiet = start(&[("HEARTBEAT_SECONDS", "0")]).await;
    let (status, headers, fr, broke) = frames(
        &quiet.url(stream_path),
        &gz_auth,
        body_of(&user("[[events=3 gap=150]] x")),
    )
    .await;
    quiet.shutdown().await;
    assert_eq!(status, StatusCode::OK);
    assert!(!broke);
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(fr.len() >= 3 && fr.last().unwrap().0 >= fr[0].0 + Duration::from_millis(150));
    let sse = String::from_utf8(gzip::decode(&concat(&fr), 1 << 20).unwrap()).unwrap();
    let events = sse_events(&sse);
    assert_eq!(events.len(), 3, "{sse}");

    // A gzip error is read for what it says: the bad key is retired, the call
    // succeeds on the next key, and an error for the client is readable JSON.
    let gw2 = start(&[
        ("API_KEYS", r#"["bad-key-00000001","key-good-00000001"]"#),
        ("KEY_SELECTION", "round_robin"),
    ])
    .await;
    for _ in 0..3 {
        let a = send(
            Method::POST,
            &gw2.url(&format!("/v1beta{GEN}")),
            &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
            body_of(&user("x")),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        let v: Value = serde_json::from_slice(&gzip::decode(&a.body, 1 << 20).unwrap()).unwrap();
        assert_eq!(text_of(&v, 0), "Echo: x");
    }
    assert_eq!(
        gw2.state().count_for_key("bad-key-00000001"),
        1,
        "classified as invalid and disabled"
    );
    assert_eq!(gw2.app.pool.counts().disabled, 1);
    let nf = send(
        Method::POST,
        &gw2.url("/v1beta/models/gemini-9-ultra:generateContent"),
        &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
        body_of(&user("x")),
    )
    .await;
    assert!(nf.headers.get("content-encoding").is_none());
    assert_google_error(&nf, 404, "NOT_FOUND");
    gw2.shutdown().await;

    // A broken gzip stream is cut, never patched with plain text (heartbeats
    // off: with them on, the stream goes out plain, see above).
    let gw3 = start(&[
        ("API_KEYS", r#"["cut-key-00000001"]"#),
        ("HEARTBEAT_SECONDS", "0"),
    ])
    .await;
    let (_, _, fr, broke) = frames(
        &gw3.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        &[("x-goog-api-key", TOKEN), ("accept-encoding", "gzip")],
        body_of(&user("[[words=12]] x")),
    )
    .await;
    assert!(broke, "the client sees the break");
    assert!(!String::from_utf8_lossy(&concat(&fr)).contains("\"error\""));
    gw3.shutdown().await;
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// The derived model list
// ---------------------------------------------------------------------------

#[tokio::test]
async fn derived_models_only_when_asked_for() {
    let vars = [
        ("SEARCH_MODELS", r#"["gemini-2.5-flash"]"#),
        ("THINKING_MODELS", r#"["models/gemini-2.5-pro"]"#),
    ];
    let names = |v: &Value| -> Vec<String> {
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    let plain = start(&vars).await;
    let v = goog(&plain, Method::GET, "/v1beta/models?pageSize=1000", b"")
        .await
        .json();
    assert!(
        names(&v)
            .iter()
            .all(|n| !n.ends_with("-search") && !n.ends_with("thinking"))
    );
    plain.shutdown().await;

    let mut with = vars.to_vec();
    with.push(("NATIVE_DERIVED_MODELS", "true"));
    for accept in ["identity", "gzip"] {
        let gw = start(&with).await;
        let a = send(
            Method::GET,
            &gw.url("/gemini/v1beta/models?pageSize=1000"),
            &[("x-goog-api-key", TOKEN), ("accept-encoding", accept)],
            Bytes::new(),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.headers.get("content-encoding").is_none());
        let n = names(&a.json());
        let at = |m: &str| {
            n.iter()
                .position(|x| x == m)
                .unwrap_or_else(|| panic!("{m} in {n:?}"))
        };
        assert_eq!(
            at("models/gemini-2.5-flash-search"),
            at("models/gemini-2.5-flash") + 1
        );
        assert_eq!(
            at("models/gemini-2.5-pro-thinking"),
            at("models/gemini-2.5-pro") + 1
        );
        assert_eq!(
            at("models/gemini-2.5-pro-non-thinking"),
            at("models/gemini-2.5-pro") + 2
        );
        gw.shutdown().await;
    }
    // The listed names can be called: the base model serves them, with the
    // tool or thinking budget they stand for.
    let gw = start(&with).await;
    let s = goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash-search:generateContent",
        &body_of(&user("who won")),
    )
    .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    assert!(s.json()["candidates"][0]["groundingMetadata"].is_object());
    let r = last(&gw);
    assert_eq!(r.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    let sent: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(sent["tools"], json!([{"googleSearch": {}}]));
    assert_eq!(sent["contents"], user("who won")["contents"]);
    let body =
        br#"{"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"temperature": 0.2}}"#;
    let t = goog(
        &gw,
        Method::POST,
        "/gemini/v1beta/models/gemini-2.5-pro-non-thinking:streamGenerateContent?alt=sse",
        body,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK);
    let r = last(&gw);
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    );
    let sent: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        sent["generation_config"]["thinkingConfig"]["thinkingBudget"], 0,
        "{sent}"
    );
    assert_eq!(sent["generation_config"]["temperature"], 0.2);
    // A name that is not offered goes upstream as it came.
    goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.0-flash-search:generateContent",
        &body_of(&user("x")),
    )
    .await;
    assert_eq!(
        last(&gw).path,
        "/v1beta/models/gemini-2.0-flash-search:generateContent"
    );
    gw.shutdown().await;
    // Without NATIVE_DERIVED_MODELS nothing is rewritten.
    let gw = start(&vars).await;
    let raw = body_of(&user("x"));
    goog(
        &gw,
        Method::POST,
        "/v1beta/models/gemini-2.5-flash-search:generateContent",
        &raw,
    )
    .await;
    assert_eq!(
        last(&gw).path,
        "/v1beta/models/gemini-2.5-flash-search:generateContent"
    );
    assert_eq!(&last(&gw).body[..], &raw[..]);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Gemini's own OpenAI-compatible endpoint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn openai_compat_forwards_bytes_with_a_pool_key() {
    let gw = start(&[]).await;
    let body: &[u8] = b"{\"model\": \"gemini-2.5-flash\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi compat\"}],\n  \"extra_body\": {\"google\": {\"thinking_config\": {\"thinking_budget\": 0}}}, \"temperature\": 0.70}";
    for prefix in ["/openai/v1", "/hf/openai/v1"] {
        let a = send(
            Method::POST,
            &gw.url(&format!("{prefix}/chat/completions")),
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("content-type", "application/json"),
            ],
            body.to_vec(),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let v = a.json();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: Hi compat");
        let r = last(&gw);
        assert_eq!(r.path, "/v1beta/openai/chat/completions");
        assert_eq!(&r.body[..], body, "forwarded byte for byte");
        let key = r.api_key.unwrap();
        assert!(POOL.contains(&key.as_str()));
        assert_eq!(r.authorization.unwrap(), format!("Bearer {key}"));
        assert!(r.headers.iter().all(|(_, v)| !v.contains(TOKEN)));
    }
    let models = get(&gw, "/openai/v1/models").await;
    assert_eq!(models.status, StatusCode::OK);
    let ids: Vec<String> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.iter().any(|i| i == "models/gemini-2.5-flash"),
        "{ids:?}"
    );
    assert_eq!(last(&gw).path, "/v1beta/openai/models");
    let emb = post_json(
        &gw,
        "/openai/v1/embeddings",
        &json!({"model": "gemini-embedding-001", "input": ["a", "b"], "dimensions": 8}),
    )
    .await;
    let e = emb.json();
    assert_eq!(e["data"].as_array().unwrap().len(), 2, "{e}");
    assert_eq!(e["data"][1]["embedding"].as_array().unwrap().len(), 8);
    // Without a valid token: refused before anything goes upstream.
    let before = gw.state().requests().len();
    let no = send(
        Method::GET,
        &gw.url("/openai/v1/models"),
        &[("authorization", "Bearer wrong")],
        Bytes::new(),
    )
    .await;
    assert_eq!(no.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gw.state().requests().len(), before);
    gw.shutdown().await;
}

#[tokio::test]
async fn openai_compat_streams_and_retries_like_every_route() {
    let gw = start(&[(
        "API_KEYS",
        r#"["bad-key-00000001","quota-key-000001","key-good-00000001"]"#,
    )])
    .await;
    let (status, headers, fr, broke) = frames(
        &gw.url("/openai/v1/chat/completions"),
        &[("authorization", &format!("Bearer {TOKEN}")), ("content-type", "application/json")],
        body_of(&json!({"model": "gemini-2.5-flash", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "[[events=3 gap=150]] go"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!broke);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(
        fr.last().unwrap().0 >= fr[0].0 + Duration::from_millis(200),
        "streamed as it came"
    );
    let text = String::from_utf8(concat(&fr)).unwrap();
    let events = sse_events(&text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "lorem ipsum dolor");
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The invalid key and the cooling key were each tried once, then skipped.
    for _ in 0..3 {
        let a = post_json(&gw, "/openai/v1/chat/completions", &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "again"}]})).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    assert_eq!(gw.state().count_for_key("bad-key-00000001"), 1);
    assert_eq!(gw.state().count_for_key("quota-key-000001"), 1);
    assert_eq!(gw.state().count_for_key("key-good-00000001"), 4);
    // An upstream client error comes back in OpenAI's format with its status.
    let nf = post_json(
        &gw,
        "/openai/v1/chat/completions",
        &json!({"model": "gemini-9-ultra", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND, "{}", nf.text());
    assert!(
        nf.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gemini-9-ultra")
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// The lite edition's chat aliases
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lite_chat_aliases_reach_the_openai_chat_handler() {
    let gw = start(&[]).await;
    for path in [
        "/chat/completions",
        "/chat",
        "/hf/chat/completions",
        "/hf/chat",
    ] {
        let a = post_json(&gw, path, &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "alias"}]})).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text());
        let v = a.json();
        assert_eq!(v["object"], "chat.completion", "{path}");
        assert_eq!(
            v["choices"][0]["message"]["content"], "Echo: alias",
            "{path}"
        );
        assert_eq!(
            last(&gw).path,
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
    }
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// /verify
// ---------------------------------------------------------------------------

const GOOD: &str = "AIzaSGoodGoodGoodGoodGoodGoodxxxx00001";
const INVALID: &str = "AIzaSInvalidInvalidInvalidInvxxxx00002";
const QUOTA: &str = "AIzaSQuotaQuotaQuotaQuotaQuotaxxxx0003";

async fn verify_stack() -> Gw {
    let gw = start(&[("API_KEYS", &format!(r#"["{GOOD}","{INVALID}","{QUOTA}"]"#))]).await;
    gw.state().set_key(INVALID, KeyBehavior::Invalid);
    gw.state().set_key(QUOTA, KeyBehavior::QuotaDay);
    gw
}

fn check_verdicts(results: &[Value], body: &str) {
    assert_eq!(results.len(), 3, "{body}");
    for k in [GOOD, INVALID, QUOTA] {
        assert!(!body.contains(k), "a key was shown in full");
    }
    let of = |k: &str| {
        results
            .iter()
            .find(|r| r["key"] == mask(k))
            .unwrap_or_else(|| panic!("{} missing from {body}", mask(k)))
    };
    assert_eq!(of(GOOD)["status"], "GOOD");
    assert_eq!(of(INVALID)["status"], "BAD");
    assert!(
        of(INVALID)["reason"]
            .as_str()
            .unwrap()
            .contains("API key not valid"),
        "{body}"
    );
    assert_eq!(of(QUOTA)["status"], "BAD");
    let q = of(QUOTA)["reason"].as_str().unwrap();
    assert!(q.contains("429") && q.contains("quota"), "{q}");
}

#[tokio::test]
async fn verify_streams_one_masked_verdict_per_key() {
    let gw = verify_stack().await;
    let (status, headers, fr, _) = frames(
        &gw.url("/verify"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    let body = String::from_utf8(concat(&fr)).unwrap();
    let events = sse_events(&body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let results: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    check_verdicts(&results, &body);
    // Checked with models.get only: no generation quota spent.
    let calls = gw.state().requests();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|r| r.method == "GET" && r.path == "/v1beta/models/gemini-2.5-flash-lite")
    );
    // The verdicts reached the pool: the invalid key is disabled now.
    assert_eq!(gw.app.pool.counts().disabled, 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn verify_as_json_and_for_given_keys() {
    let gw = verify_stack().await;
    let a = send(
        Method::POST,
        &gw.url("/hf/verify?format=json"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(
        (v["total"].as_u64(), v["good"].as_u64(), v["bad"].as_u64()),
        (Some(3), Some(1), Some(2))
    );
    check_verdicts(v["results"].as_array().unwrap(), &a.text());
    // Keys given in x-goog-api-key are checked instead of the pool's, and not added to it.
    gw.state().clear();
    let given = format!("{GOOD},AIzaSOutsiderOutsiderOutsiderxxxx00004");
    gw.state().set_key(
        "AIzaSOutsiderOutsiderOutsiderxxxx00004",
        KeyBehavior::Expired,
    );
    let b = send(
        Method::POST,
        &gw.url("/verify?format=json"),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("x-goog-api-key", &given),
        ],
        Bytes::new(),
    )
    .await;
    let v = b.json();
    assert_eq!(v["total"], 2, "{v}");
    let outsider = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == mask("AIzaSOutsiderOutsiderOutsiderxxxx00004"))
        .unwrap();
    assert_eq!(outsider["status"], "BAD");
    assert!(outsider["reason"].as_str().unwrap().contains("expired"));
    assert!(!b.text().contains("AIzaSOutsiderOutsiderOutsiderxxxx00004"));
    assert_eq!(gw.state().requests().len(), 2);
    assert_eq!(gw.app.pool.len(), 3);
    // A token is required.
    let no = send(Method::POST, &gw.url("/verify"), &[], Bytes::new()).await;
    assert_eq!(no.status, StatusCode::UNAUTHORIZED);
    let wrong = send(
        Method::POST,
        &gw.url("/verify"),
        &[("x-goog-api-key", TOKEN)],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "the key header is the key list, not a credential"
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------
// Streams that fail before their first byte
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stream_that_fails_before_its_first_byte_is_retried() {
    let gw = start(&[
        ("API_KEYS", r#"["key-cut-00000001","key-good-00000001"]"#),
        ("KEY_SELECTION", "round_robin"),
        ("MAX_RETRIES", "1"),
    ])
    .await;
    // Headers, then the connection is cut before any event.
    gw.state()
        .set_key("key-cut-00000001", KeyBehavior::CutAfter { events: 0 });
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    for _ in 0..2 {
        let r = send(
            Method::POST,
            &gw.url(path),
            &[("x-goog-api-key", TOKEN)],
            body_of(&user("[[events=3]] x")),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let events = sse_events(&String::from_utf8_lossy(&r.body));
        assert_eq!(events.len(), 3, "every event, once: {events:?}");
        assert!(
            events.iter().all(|e| !e.contains("\"error\"")),
            "{events:?}"
        );
    }
    assert!(gw.state().count_for_key("key-cut-00000001") >= 1);
    assert_eq!(gw.state().count_for_key("key-good-00000001"), 2);

    // With no key left to try, an HTTP error in Google's format, not a 200
    // stream holding only an error.
    let gw1 = start(&[("API_KEYS", r#"["key-cut-00000002"]"#)]).await;
    gw1.state()
        .set_key("key-cut-00000002", KeyBehavior::CutAfter { events: 0 });
    let r = send(
        Method::POST,
        &gw1.url(path),
        &[("x-goog-api-key", TOKEN)],
        body_of(&user("[[events=3]] x")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let v: Value = serde_json::from_slice(&r.body).expect("a Google error object");
    assert_eq!(v["error"]["code"], 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first byte"),
        "{v}"
    );
    // The OpenAI route says the same in OpenAI's format.
    let r = post_json(
        &gw1,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "stream": true, "messages": [{"role": "user", "content": "[[events=3]] x"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let v: Value = serde_json::from_slice(&r.body).expect("an OpenAI error object");
    assert_eq!(v["error"]["code"], "upstream_error", "{v}");
    gw1.shutdown().await;
    gw.shutdown().await;
}
