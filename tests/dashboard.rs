//! The `/dashboard` console: the page and every asset of it served with a
//! strict Content-Security-Policy, loading nothing from another origin,
//! carrying no key or token, and the data it shows (`/status`) has every key
//! masked. Its flows are driven in a browser by tests/browser/console.test.mjs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use bytes::Bytes;
use common::{Gw, TOKEN, send, start};
use fake_gemini::KeyBehavior;
use gemini_balance::dashboard::ASSETS;
use http::{Method, StatusCode};
use serde_json::json;

/// Shaped like real Google keys (`AIza` + 35), which is what the gateway
/// scrubs from Google's messages (a suspended key's error names the key).
const KEYS: [&str; 3] = [
    "AIzaSDASHBOARDsecretKEYgood00000000001",
    "AIzaSDASHBOARDsecretKEYbad000000000002",
    "AIzaSDASHBOARDsecretKEYsuspended000003",
];

async fn gateway() -> Gw {
    let keys = serde_json::to_string(&KEYS).unwrap();
    let gw = start(&[("API_KEYS", &keys)]).await;
    gw.state().set_key(KEYS[1], KeyBehavior::Invalid);
    gw.state().set_key(KEYS[2], KeyBehavior::Suspended);
    gw
}

async fn get_plain(gw: &Gw, path: &str) -> common::Answer {
    send(Method::GET, &gw.url(path), &[], Bytes::new()).await
}

/// Every `scheme://` in `text`, except the SVG namespace (an identifier
/// that `createElementNS` needs, never fetched).
fn absolute_urls(text: &str) -> Vec<String> {
    let text = text.replace("http://www.w3.org/2000/svg", "");
    text.match_indices("://")
        .map(|(i, _)| {
            let start = text[..i]
                .rfind(|c: char| !c.is_ascii_alphanumeric())
                .map_or(0, |p| p + 1);
            text[start..(i + 40).min(text.len())].to_string()
        })
        .collect()
}

fn assert_no_secrets(what: &str, text: &str) {
    for k in KEYS {
        assert!(!text.contains(k), "{what} contains a full key");
        // Nor any long piece of one.
        assert!(
            !text.contains(&k[4..24]),
            "{what} contains part of a key: {text}"
        );
        assert!(
            !text.contains(&k[24..]),
            "{what} contains the end of a key: {text}"
        );
    }
    assert!(!text.contains(TOKEN), "{what} contains the token");
}

#[tokio::test]
async fn page_and_assets_are_served_with_a_strict_csp() {
    let gw = gateway().await;
    for prefix in ["", "/hf"] {
        // The page needs no token: it carries no data.
        let page = get_plain(&gw, &format!("{prefix}/dashboard")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let assets = ASSETS
            .iter()
            .map(|(p, kind, _)| (*p, &kind[..kind.find(';').unwrap()]));
        for (path, kind) in [("/dashboard", "text/html")].into_iter().chain(assets) {
            let a = get_plain(&gw, &format!("{prefix}{path}")).await;
            assert_eq!(a.status, StatusCode::OK, "{prefix}{path}");
            assert!(
                a.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(kind),
                "{path}"
            );
            let csp = a.headers["content-security-policy"].to_str().unwrap();
            for directive in [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "connect-src 'self'",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            ] {
                assert!(csp.contains(directive), "{path}: {csp}");
            }
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(!csp.contains('*'), "{csp}");
            assert_eq!(a.headers["x-content-type-options"], "nosniff");
            assert_eq!(a.headers["referrer-policy"], "no-referrer");
        }
    }
    // `/dashboard/` sends the browser to the page next to it (relative, so
    // under /hf too), where the page's relative URLs resolve.
    for prefix in ["", "/hf"] {
        let slash = get_plain(&gw, &format!("{prefix}/dashboard/")).await;
        assert_eq!(slash.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(slash.headers["location"], "../dashboard");
    }
    let post = send(Method::POST, &gw.url("/dashboard"), &[], Bytes::new()).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let other = get_plain(&gw, "/dashboard.html").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    gw.shutdown().await;
}

#[tokio::test]
async fn page_loads_nothing_from_another_origin() {
    let gw = gateway().await;
    let html = get_plain(&gw, "/dashboard").await.text();
    let mut assets = vec![("/dashboard".to_string(), html.clone())];
    let mut js = String::new();
    for (path, _, _) in ASSETS {
        let text = get_plain(&gw, path).await.text();
        if path.ends_with(".js") {
            js.push_str(&text);
        }
        assets.push((path.to_string(), text));
    }
    for (what, text) in &assets {
        assert_eq!(absolute_urls(text), Vec::<String>::new(), "{what}");
        // No protocol-relative URLs either.
        for needle in ["\"//", "'//", "(//", "=//"] {
            assert!(!text.contains(needle), "{what} contains {needle}");
        }
        assert!(!text.contains("@import"), "{what}");
    }
    // Every src/href in the page is relative (or the empty data: icon).
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let v = &html[i + attr.len()..];
            let v = &v[..v.find('"').unwrap()];
            assert!(
                v == "data:," || (!v.contains(':') && !v.starts_with('/')),
                "{attr}{v}"
            );
        }
    }
    // No inline script or style (the CSP forbids them) and one script.
    assert!(!html.contains("<style"));
    assert!(!html.contains(" style="));
    for (i, _) in html.match_indices(" on") {
        let rest = &html[i + 3..];
        let name_len = rest.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(0);
        assert!(
            !rest[name_len..].starts_with('='),
            "inline event handler: {}",
            &html[i..i + 20]
        );
    }
    assert_eq!(html.matches("<script").count(), 1);
    // The scripts call the gateway by relative paths only, so the page works
    // under /hf too, and keep the token out of URLs, cookies and localStorage
    // (which holds the language choice and nothing else).
    for api in [
        "'admin/keys'",
        "'admin/config'",
        "'admin/logs'",
        "'admin/usage'",
        "'status/keys/'",
    ] {
        assert!(js.contains(api), "{api}");
    }
    assert!(!js.contains("'/status"));
    assert!(!js.contains("'/admin"));
    assert!(js.contains("sessionStorage"));
    assert!(js.contains("'Bearer '"));
    for (i, _) in js.match_indices("localStorage") {
        let call = &js[i..(i + 40).min(js.len())];
        assert!(
            call.starts_with("localStorage.getItem(LANG_KEY)")
                || call.starts_with("localStorage.setItem(LANG_KEY,"),
            "localStorage used for something else: {call}"
        );
    }
    for bad in ["document.cookie", "token=", "innerHTML", "eval("] {
        assert!(!js.contains(bad), "script uses {bad}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn page_and_status_carry_no_full_key_or_token() {
    let gw = gateway().await;
    // Traffic that disables the bad and suspended keys and records errors.
    for model in ["gemini-2.5-flash", "gemini-2.5-flash", "gemini-9-unknown"] {
        let _ = common::post_json(
            &gw,
            "/v1/chat/completions",
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    }
    for path in ["/dashboard"].into_iter().chain(ASSETS.iter().map(|a| a.0)) {
        assert_no_secrets(path, &get_plain(&gw, path).await.text());
        // The same with a token: the page never echoes it.
        assert_no_secrets(path, &common::get(&gw, path).await.text());
    }
    let status = common::get(&gw, "/status").await;
    assert_eq!(status.status, StatusCode::OK);
    let text = status.text();
    assert_no_secrets("/status", &text);
    let v = status.json();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0]["key"], "AIza…0001");
    let states: Vec<&str> = keys.iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "disabled", "disabled"]);
    assert!(!v["traffic"]["recent_errors"].as_array().unwrap().is_empty());
    assert_eq!(v["traffic"]["per_minute"].as_array().unwrap().len(), 60);
    // Without the token, /status tells nothing.
    let anon = get_plain(&gw, "/status").await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert_no_secrets("/status (no token)", &anon.text());
    gw.shutdown().await;
}

/// The console's "verify selected": `POST /status/keys/{id}/verify` checks one
/// key now and applies the result (a refused key is disabled, a good one
/// comes back), answers with the mask only, and takes the admin token.
#[tokio::test]
async fn one_key_is_verified_on_demand() {
    let gw = gateway().await;
    let bad = "AIza%E2%80%A60002"; // "AIza…0002", percent-encoded
    let v = send(
        Method::POST,
        &gw.url(&format!("/status/keys/{bad}/verify")),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text());
    assert_no_secrets("verify", &v.text());
    assert_eq!(v.json()["key"], "AIza…0002");
    assert_eq!(v.json()["status"], "BAD");
    let state = |v: &serde_json::Value| v["keys"][1]["state"].as_str().unwrap().to_string();
    assert_eq!(state(&common::get(&gw, "/status").await.json()), "disabled");
    // Google takes the key again: verified, it is back in service.
    gw.state().set_key(KEYS[1], KeyBehavior::Ok);
    let again = send(
        Method::POST,
        &gw.url("/status/keys/1/verify"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(again.json()["status"], "GOOD");
    assert_eq!(state(&common::get(&gw, "/status").await.json()), "active");
    let unknown = send(
        Method::POST,
        &gw.url("/status/keys/no-such-key/verify"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let anon = send(
        Method::POST,
        &gw.url("/status/keys/1/verify"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}
