//! Test harness: a fake Gemini upstream and the real gateway server, both
//! in-process on loopback ports, plus a small HTTP client.
#![allow(dead_code)]

pub mod blocking;
pub mod redis;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use fake_gemini::{Fake, FakeState};
use gemini_balance::app::App;
use gemini_balance::config::Config;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The token every test gateway accepts.
pub const TOKEN: &str = "sk-test-token-0123456789";

/// A running gateway in front of a running fake.
pub struct Gw {
    pub fake: Fake,
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// Start a fake and a gateway. `vars` override the defaults
/// (`API_KEYS` = three good keys, `ALLOWED_TOKENS` = [TOKEN]).
pub async fn start(vars: &[(&str, &str)]) -> Gw {
    let fake = Fake::start().await.expect("fake starts");
    start_with_fake(fake, vars).await
}

/// Start a gateway in front of an existing fake.
pub async fn start_with_fake(fake: Fake, vars: &[(&str, &str)]) -> Gw {
    gemini_balance::log::set_level(gemini_balance::log::Level::Warn);
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert(
        "API_KEYS".into(),
        r#"["key-a-0000000001","key-b-0000000002","key-c-0000000003"]"#.into(),
    );
    map.insert("ALLOWED_TOKENS".into(), format!("[\"{TOKEN}\"]"));
    map.insert("BASE_URL".into(), fake.base_url());
    map.insert("CHECK_INTERVAL_HOURS".into(), "0".into());
    map.insert("KEEPALIVE_MINUTES".into(), "0".into());
    map.insert("LOG_LEVEL".into(), "warn".into());
    for (k, v) in vars {
        map.insert(k.to_string(), v.to_string());
    }
    let cfg = Config::from_map(&map).expect("config");
    // With DATA_DIR or REDIS_URL among `vars` the gateway runs on that store.
    let app = Arc::new(App::open(cfg).await.expect("store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(gemini_balance::server::serve(
        app.clone(),
        listener,
        async {
            let _ = rx.await;
        },
    ));
    Gw {
        fake,
        addr,
        app,
        stop: Some(tx),
        done: Some(done),
    }
}

impl Gw {
    /// The fake's shared state.
    pub fn state(&self) -> &Arc<FakeState> {
        &self.fake.state
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stop the server and wait for it.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
        // As the binary does: write what the store holds pending, release it.
        let _ = self.app.store.shutdown().await;
    }
}

/// A whole answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send a request and read the whole answer.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let res = client().request(req).await.expect("request sent");
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// An OpenAI chat request body: one user message `text` to
/// gemini-2.5-flash, streamed or not.
pub fn chat_request(text: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": "gemini-2.5-flash",
        "stream": stream,
        "messages": [{"role": "user", "content": text}]
    })
}

/// POST JSON with the test token.
pub async fn post_json(gw: &Gw, path: &str, body: &Value) -> Answer {
    send(
        Method::POST,
        &gw.url(path),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// GET with the test token.
pub async fn get(gw: &Gw, path: &str) -> Answer {
    send(
        Method::GET,
        &gw.url(path),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .flat_map(|e| e.split("\r\n\r\n"))
        .filter_map(|e| {
            let e = e.trim_matches(|c| c == '\r' || c == '\n');
            e.strip_prefix("data: ")
                .or_else(|| e.strip_prefix("data:"))
                .map(|s| s.to_string())
        })
        .collect()
}
