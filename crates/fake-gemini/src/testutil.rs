//! Test helpers shared by the modules' tests: a tiny HTTP/1 client and
//! readers of Google's stream framings.

use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

// What most tests use, in one import.
pub(crate) use crate::{Fake, KeyBehavior};
pub(crate) use bytes::Bytes;
pub(crate) use serde_json::{Value, json};
pub(crate) use std::net::SocketAddr;
pub(crate) use std::time::Duration;
pub(crate) use tokio::net::TcpStream;

/// An answer as the tests read it.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
    /// The body ended in an error (a cut connection).
    pub(crate) body_error: bool,
}

impl Resp {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("body is not JSON ({e}): {}", self.text());
        })
    }
    pub(crate) fn ct(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub(crate) async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Resp, hyper::Error> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "fake");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = tx.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let mut body_error = false;
    while let Some(f) = body.frame().await {
        match f {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Err(_) => {
                body_error = true;
                break;
            }
        }
    }
    Ok(Resp {
        status,
        headers,
        body: out,
        body_error,
    })
}

pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    send_raw(addr, method, path, headers, body).await.unwrap()
}

pub(crate) async fn post(fake: &Fake, path: &str, key: &str, body: &Value) -> Resp {
    send(
        fake.addr,
        "POST",
        path,
        &[
            ("x-goog-api-key", key),
            ("content-type", "application/json"),
        ],
        &body.to_string(),
    )
    .await
}

pub(crate) fn user(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

pub(crate) const GEN: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
pub(crate) const SSE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
pub(crate) const ARR: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

pub(crate) fn sse_events(r: &Resp) -> Vec<Value> {
    let t = r.text();
    assert!(
        t.ends_with("\r\n\r\n") || r.body_error,
        "bad SSE tail: {t:?}"
    );
    t.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let line = e.strip_prefix("data: ").expect("data: prefix");
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            serde_json::from_str(line).unwrap()
        })
        .collect()
}

pub(crate) fn text_of(chunk: &Value, cand: usize) -> String {
    chunk["candidates"][cand]["content"]["parts"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p.get("thought").is_none())
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// The whole of a gzip body (one or more members), decoded.
pub(crate) fn gunzip(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("a valid gzip body");
    out
}

/// What a client can decode of the first bytes of a gzip stream that has
/// not ended yet.
pub(crate) fn gunzip_so_far(gz: &[u8]) -> Vec<u8> {
    let deflate = &gz[10..]; // the fake's header has no optional fields
    let mut d = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(deflate.len() * 4 + 64);
    d.decompress_vec(deflate, &mut out, flate2::FlushDecompress::Sync)
        .expect("valid deflate data");
    out
}
