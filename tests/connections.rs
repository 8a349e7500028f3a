//! Connection lifetimes, driven with a real HTTP/2 client
//! (the `h2` crate, h2c with prior knowledge) and raw HTTP/1 sockets:
//!
//! * idle HTTP/2 connections are closed with a GOAWAY after `CLIENT_TIMEOUT`;
//! * at `MAX_CONNECTIONS`, the longest-idle keep-alive connection (HTTP/1 or
//!   HTTP/2) makes room, so a new connection is served within a second;
//! * a client that opens a zero flow-control window and never reads loses its
//!   connection after `CLIENT_TIMEOUT`, the upstream call behind it is
//!   dropped and its slot is freed;
//! * a slow upstream is not mistaken for a stalled client, and a large answer
//!   read at normal speed arrives whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type H2Conn = JoinHandle<Result<(), h2::Error>>;

/// An h2c connection (prior knowledge); `window` is the client's initial
/// stream window (None: the default).
async fn h2c(addr: SocketAddr, window: Option<u32>) -> (h2::client::SendRequest<Bytes>, H2Conn) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut b = h2::client::Builder::new();
    if let Some(w) = window {
        b.initial_window_size(w);
    }
    let (send, conn) = b.handshake(tcp).await.expect("h2 handshake");
    (send, tokio::spawn(conn))
}

/// Send one request on an h2 connection; the response head.
async fn h2_send(
    send: &h2::client::SendRequest<Bytes>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<http::Response<h2::RecvStream>, h2::Error> {
    let mut send = send.clone().ready().await?;
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://gw{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (res, mut tx) = send.send_request(req.body(()).unwrap(), body.is_empty())?;
    if !body.is_empty() {
        tx.send_data(Bytes::copy_from_slice(body), true)?;
    }
    res.await
}

/// Read a whole h2 body, giving the window back as data arrives.
async fn h2_body(res: http::Response<h2::RecvStream>) -> Result<Vec<u8>, h2::Error> {
    let mut body = res.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        out.extend_from_slice(&chunk);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(out)
}

/// `GET /health` over h2: the status.
async fn h2_health(send: &h2::client::SendRequest<Bytes>) -> StatusCode {
    let res = h2_send(send, "GET", "/health", &[], b"").await.unwrap();
    let status = res.status();
    h2_body(res).await.unwrap();
    status
}

/// `GET /health` over an HTTP/1 keep-alive socket: the status, if an answer
/// arrives within `wait`.
async fn h1_health(s: &mut TcpStream, wait: Duration) -> Option<u16> {
    s.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.get(9..12)?.parse().ok()
}

/// True once the peer closes `s` (EOF or error) within `wait`.
async fn h1_closed(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// How the client side of an h2 connection ended within `wait`, if it did.
async fn h2_ended(conn: &mut H2Conn, wait: Duration) -> Option<Result<(), String>> {
    match tokio::time::timeout(wait, conn).await {
        Ok(r) => Some(r.unwrap().map_err(|e| e.to_string())),
        Err(_) => None,
    }
}

#[tokio::test]
async fn idle_http2_connections_are_closed_after_client_timeout() {
    let gw = start(&[("CLIENT_TIMEOUT", "1"), ("MAX_CONNECTIONS", "4")]).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        let (send, conn) = h2c(gw.addr, None).await;
        assert_eq!(h2_health(&send).await, StatusCode::OK);
        conns.push((send, conn));
    }
    let t = Instant::now();
    for (i, (_send, conn)) in conns.iter_mut().enumerate() {
        let ended = h2_ended(conn, Duration::from_secs(4)).await;
        assert!(
            ended.is_some(),
            "idle h2 connection {i} still open after {:?}",
            t.elapsed()
        );
        // A GOAWAY, not a dropped socket: the client sees a clean end.
        assert_eq!(ended, Some(Ok(())), "connection {i}");
    }
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    // The slots are free again: a new connection is served at once.
    let (send, _conn) = h2c(gw.addr, None).await;
    let ok = tokio::time::timeout(Duration::from_secs(1), h2_health(&send)).await;
    assert_eq!(ok.ok(), Some(StatusCode::OK));
    // An idle HTTP/1 keep-alive connection is closed the same way.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(h1_health(&mut s, Duration::from_secs(2)).await, Some(200));
    assert!(h1_closed(&mut s, Duration::from_secs(3)).await);
    gw.shutdown().await;
}

#[tokio::test]
async fn at_the_limit_the_longest_idle_connection_makes_room() {
    // A long CLIENT_TIMEOUT: only reclaiming can make room in time.
    let gw = start(&[("CLIENT_TIMEOUT", "30"), ("MAX_CONNECTIONS", "4")]).await;
    let wait = Duration::from_secs(2);
    // Oldest first: HTTP/1, HTTP/2, HTTP/1, HTTP/2.
    let mut h1_old = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(h1_health(&mut h1_old, wait).await, Some(200));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (h2_old, mut h2_old_conn) = h2c(gw.addr, None).await;
    assert_eq!(h2_health(&h2_old).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut h1_young = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(h1_health(&mut h1_young, wait).await, Some(200));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (h2_young, _h2_young_conn) = h2c(gw.addr, None).await;
    assert_eq!(h2_health(&h2_young).await, StatusCode::OK);

    // A fifth connection is answered within a second; the oldest (HTTP/1) made room.
    let t = Instant::now();
    let mut fifth = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(
        h1_health(&mut fifth, Duration::from_secs(1)).await,
        Some(200),
        "a new connection waits while idle ones hold every slot"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(h1_closed(&mut h1_old, Duration::from_secs(1)).await);

    // A sixth (HTTP/2) too; now the oldest is the first HTTP/2 connection, closed by GOAWAY.
    let t = Instant::now();
    let (sixth, _sixth_conn) = h2c(gw.addr, None).await;
    let ok = tokio::time::timeout(Duration::from_secs(1), h2_health(&sixth)).await;
    assert_eq!(ok.ok(), Some(StatusCode::OK), "after {:?}", t.elapsed());
    assert_eq!(
        h2_ended(&mut h2_old_conn, Duration::from_secs(1)).await,
        Some(Ok(()))
    );

    // The younger ones were left alone and keep working.
    assert_eq!(h1_health(&mut h1_young, wait).await, Some(200));
    assert_eq!(h2_health(&h2_young).await, StatusCode::OK);
    assert_eq!(h1_health(&mut fifth, wait).await, Some(200));
    gw.shutdown().await;
}

/// A raw upstream that answers every call with an endless SSE stream (an
/// event every 20 ms) and counts the connections the gateway holds open.
struct Endless {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endless {
    async fn start() -> Endless {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let op = open.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                op.fetch_add(1, Ordering::SeqCst);
                let op = op.clone();
                tokio::spawn(async move {
                    endless(s).await;
                    op.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Endless { addr, open, task }
    }
}

async fn endless(mut s: TcpStream) {
    // Read the request head and body (whatever arrives first is enough).
    let mut buf = [0u8; 16384];
    if s.read(&mut buf).await.unwrap_or(0) == 0 {
        return;
    }
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let event = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tick \"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n";
    let mut piece = format!("{:x}\r\n", event.len()).into_bytes();
    piece.extend_from_slice(event);
    piece.extend_from_slice(b"\r\n");
    loop {
        if s.write_all(&piece).await.is_err() {
            return;
        }
        // Notice a closed gateway side even when nothing is written back.
        tokio::select! {
            r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Wait until `cond` holds, up to `limit`.
async fn within(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

const NATIVE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

fn native_headers() -> [(&'static str, &'static str); 2] {
    [
        ("x-goog-api-key", TOKEN),
        ("content-type", "application/json"),
    ]
}

#[tokio::test]
async fn a_zero_window_http2_client_is_cut_off_and_frees_its_slot() {
    let up = Endless::start().await;
    let base = format!("http://{}/v1beta", up.addr);
    let gw = start(&[
        ("BASE_URL", &base),
        ("CLIENT_TIMEOUT", "1"),
        ("MAX_CONNECTIONS", "1"),
        ("MAX_RETRIES", "0"),
        ("TIME_OUT", "60"),
        ("STREAM_IDLE_TIMEOUT", "60"),
    ])
    .await;
    let (send, mut conn) = h2c(gw.addr, Some(0)).await;
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    let res = h2_send(&send, "POST", NATIVE, &native_headers(), body)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        within(Duration::from_secs(2), || up.open.load(Ordering::SeqCst)
            == 1)
        .await
    );
    let t = Instant::now();
    // The client never opens its window: the gateway gives up on it, and on
    // the upstream stream behind it.
    assert!(
        within(Duration::from_secs(5), || up.open.load(Ordering::SeqCst)
            == 0)
        .await,
        "a zero-window client holds the upstream stream forever"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    let mut body = res.into_body();
    let read = tokio::time::timeout(Duration::from_secs(2), body.data()).await;
    assert!(
        matches!(read, Ok(Some(Err(_))) | Ok(None)),
        "the stream was neither reset nor closed"
    );
    assert!(h2_ended(&mut conn, Duration::from_secs(2)).await.is_some());
    // The only slot is free again.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(h1_health(&mut s, Duration::from_secs(1)).await, Some(200));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_zero_window_client_of_a_whole_answer_frees_its_slot() {
    let gw = start(&[("CLIENT_TIMEOUT", "1"), ("MAX_CONNECTIONS", "1")]).await;
    let (send, mut conn) = h2c(gw.addr, Some(0)).await;
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"[[words=20000]] hi"}]}]}"#;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let res = h2_send(&send, "POST", path, &native_headers(), body)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ended = h2_ended(&mut conn, Duration::from_secs(4)).await;
    assert!(
        ended.is_some(),
        "a zero-window client holds its slot forever"
    );
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(h1_health(&mut s, Duration::from_secs(1)).await, Some(200));
    gw.shutdown().await;
}

#[tokio::test]
async fn slow_upstreams_and_large_answers_are_not_cut() {
    let gw = start(&[("CLIENT_TIMEOUT", "1"), ("MAX_CONNECTIONS", "4")]).await;
    // Events 1.5 s apart (longer than CLIENT_TIMEOUT): the client reads
    // everything, the gateway waits on the upstream, nothing is cut.
    let (send, _conn) = h2c(gw.addr, None).await;
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"[[events=3 gap=1500]] hi"}]}]}"#;
    let res = h2_send(&send, "POST", NATIVE, &native_headers(), body)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(h2_body(res).await.unwrap()).unwrap();
    assert_eq!(sse_events(&text).len(), 3, "{text}");
    // A large whole answer, read at normal speed, arrives whole (in pieces).
    let big = br#"{"contents":[{"role":"user","parts":[{"text":"[[words=200000]] hi"}]}]}"#;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let res = h2_send(&send, "POST", path, &native_headers(), big)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let whole = h2_body(res).await.unwrap();
    assert!(whole.len() > 800_000, "{}", whole.len());
    let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    let words = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count();
    assert!(words >= 200_000, "{words}");
    // The slow stream over HTTP/1 too.
    let a = send_native(&gw, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(sse_events(&a.text()).len(), 3, "{}", a.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_slow_but_steady_http2_reader_is_not_cut() {
    let gw = start(&[("CLIENT_TIMEOUT", "1"), ("MAX_CONNECTIONS", "4")]).await;
    // A 16 KiB window, given back 150 ms after each piece: about 100 KiB/s.
    let (send, _conn) = h2c(gw.addr, Some(16 * 1024)).await;
    let big = br#"{"contents":[{"role":"user","parts":[{"text":"[[words=30000]] hi"}]}]}"#;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let res = h2_send(&send, "POST", path, &native_headers(), big)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t = Instant::now();
    let mut body = res.into_body();
    let mut whole = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("cut after {:?}: {e}", t.elapsed()));
        whole.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    assert!(t.elapsed() > Duration::from_secs(1), "{:?}", t.elapsed());
    let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());
    gw.shutdown().await;
}

async fn send_native(gw: &Gw, body: &[u8]) -> Answer {
    let h = native_headers();
    send(http::Method::POST, &gw.url(NATIVE), &h, body.to_vec()).await
}
