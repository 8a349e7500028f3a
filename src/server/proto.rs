//! The transport of one client connection: which HTTP version it speaks,
//! found by peeking at its first bytes, hyper's HTTP/1 or HTTP/2 connection
//! for it, and the stall guard under both.
//!
//! hyper-util's auto builder reads the first 24 bytes itself and hands them
//! back to hyper's HTTP/1 reader in front of the socket. That short first read
//! makes hyper grow its 8 KiB read buffer to 16 KiB, kept for the life of every
//! HTTP/1 connection (measured with DHAT: one 16,384-byte block per open
//! connection). Peeking (`MSG_PEEK`) leaves the bytes in the socket, so hyper's
//! first read takes the whole request head into 8 KiB.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::app::App;

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP version a connection opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.x (anything that is not the HTTP/2 preface).
    H1,
    /// HTTP/2 with prior knowledge (h2c).
    H2,
}

/// Peek at `stream`'s first bytes: the HTTP/2 preface, or anything else
/// (HTTP/1, or a connection closed before a byte, which hyper then ends).
/// Nothing is consumed.
pub async fn sniff(stream: &TcpStream) -> io::Result<Version> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != PREFACE[..n] {
            return Ok(Version::H1);
        }
        if n == PREFACE.len() {
            return Ok(Version::H2);
        }
        // Part of the preface so far: the rest is on its way (the caller
        // bounds the wait with CLIENT_TIMEOUT).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The socket as hyper sees it.
pub type Io = TokioIo<StallGuard>;

/// hyper's HTTP/1 and HTTP/2 settings every connection is served with.
pub struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// Heads up to `MAX_HEADER_BYTES` / `MAX_HEADERS` are read by hyper and
/// checked by the server (431 in the route's format); hyper's own hard limit,
/// this many times larger, answers a bare 431 without reading further.
pub const HEAD_SLACK: usize = 2;

impl Builders {
    /// The settings of `app`'s configuration.
    pub fn new(app: &App) -> Builders {
        let cfg = app.cfg();
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(cfg.client_timeout)
            .max_buf_size((cfg.max_header_bytes * HEAD_SLACK).max(8192))
            .max_headers(cfg.max_headers * HEAD_SLACK)
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(
                u32::try_from(cfg.max_header_bytes * HEAD_SLACK).unwrap_or(u32::MAX),
            )
            .max_concurrent_streams(256);
        Builders { h1, h2 }
    }

    /// Serve `io` as `version` with `svc`.
    pub fn serve<S, B>(&self, version: Version, io: Io, svc: S) -> Pin<Box<dyn Served>>
    where
        S: HttpService<Incoming, ResBody = B> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match version {
            Version::H1 => Box::pin(self.h1.serve_connection(io, svc).with_upgrades()),
            Version::H2 => Box::pin(self.h2.serve_connection(io, svc)),
        }
    }
}

/// A connection being served, HTTP/1 or HTTP/2.
pub trait Served: Future<Output = Result<(), hyper::Error>> + Send {
    /// Finish what is in flight, take nothing new (HTTP/2: GOAWAY).
    fn shut(self: Pin<&mut Self>);
}

impl<S, B> Served for http1::UpgradeableConnection<Io, S>
where
    S: HttpService<Incoming, ResBody = B> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<S, B> Served for http2::Connection<Io, S, TokioExecutor>
where
    S: HttpService<Incoming, ResBody = B> + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The client socket, failing writes that make no progress for
/// `CLIENT_TIMEOUT`: a client that stops reading its answer (a slow-read
/// attack, or one that vanished without a FIN) loses its connection, which
/// drops the response body and so cancels the upstream call behind it.
pub struct StallGuard {
    io: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallGuard {
    /// `io`, its writes failing after `limit` without progress.
    pub fn new(io: TcpStream, limit: Duration) -> StallGuard {
        StallGuard {
            io,
            limit,
            stalled: None,
        }
    }

    /// After a `Pending` write: `Ready(Err)` once the stall is over the limit.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, p: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match p {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx),
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(p, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(p, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(p, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        (client, l.accept().await.unwrap().0)
    }

    #[tokio::test]
    async fn http1_is_found_and_its_bytes_stay_in_the_socket() {
        let (mut c, mut s) = pair().await;
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(sniff(&s).await.unwrap(), Version::H1);
        let mut head = [0u8; 16];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_preface_in_two_parts_is_http2() {
        let (mut c, s) = pair().await;
        c.write_all(&PREFACE[..10]).await.unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            c.write_all(&PREFACE[10..]).await.unwrap();
            c
        });
        assert_eq!(sniff(&s).await.unwrap(), Version::H2);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_connection_closed_before_a_byte_goes_to_http1() {
        let (c, s) = pair().await;
        drop(c);
        assert_eq!(sniff(&s).await.unwrap(), Version::H1);
    }
}
