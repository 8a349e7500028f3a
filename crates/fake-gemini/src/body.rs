//! The fake's answers on the wire: [`FakeBody`] (a queue of chunks, spaced
//! in time, optionally ending in a cut connection), [`Abort`] (reset before any
//! headers), and the headers and JSON framing every answer shares.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};

use crate::errors::GoogleError;
use crate::json::Json;

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
pub(crate) struct Abort;

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake: connection reset on purpose")
    }
}

impl std::error::Error for Abort {}

/// Response body: a queue of chunks, optionally spaced in time, optionally
/// ending in an error (which makes hyper cut the connection).
pub(crate) struct FakeBody {
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) gap: Duration,
    /// Silence after the headers, before the first chunk (or the cut).
    pub(crate) first: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    started: bool,
    pub(crate) fail_at_end: bool,
    full: bool,
}

impl FakeBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        let mut chunks = VecDeque::with_capacity(1);
        chunks.push_back(b.into());
        FakeBody {
            chunks,
            gap: Duration::ZERO,
            first: Duration::ZERO,
            sleep: None,
            started: false,
            fail_at_end: false,
            full: true,
        }
    }

    pub(crate) fn stream(chunks: Vec<Bytes>, gap: Duration, cut: bool) -> Self {
        FakeBody {
            chunks: chunks.into(),
            gap,
            first: Duration::ZERO,
            sleep: None,
            started: false,
            fail_at_end: cut,
            full: false,
        }
    }
}

/// `res` with `key` written at the start of its first text (`"text": "`,
/// or `"content": "` on the OpenAI-compatible layer); with `split`, that
/// chunk is cut in two frames in the middle of the key.
pub(crate) fn echo_key(mut res: Response<FakeBody>, key: &str, split: bool) -> Response<FakeBody> {
    const MARKS: [&[u8]; 2] = [b"\"text\": \"", b"\"content\": \""];
    let body = res.body_mut();
    let found = body.chunks.iter().enumerate().find_map(|(i, c)| {
        MARKS.iter().find_map(|m| {
            c.windows(m.len())
                .position(|w| w == *m)
                .map(|p| (i, p + m.len()))
        })
    });
    let Some((i, at)) = found else {
        return res;
    };
    let old = &body.chunks[i];
    let mut new = Vec::with_capacity(old.len() + key.len() + 1);
    new.extend_from_slice(&old[..at]);
    new.extend_from_slice(key.as_bytes());
    new.push(b' ');
    new.extend_from_slice(&old[at..]);
    let new = Bytes::from(new);
    if split {
        let cut = at + key.len() / 2;
        body.chunks[i] = new.slice(cut..);
        body.chunks.insert(i, new.slice(..cut));
        body.gap = body.gap.max(Duration::from_millis(50));
    } else {
        body.chunks[i] = new;
    }
    res
}

/// `res` with its body re-cut into 8-byte pieces sent `ms` apart.
pub(crate) fn trickle(mut res: Response<FakeBody>, ms: u64) -> Response<FakeBody> {
    let body = res.body_mut();
    let pieces: VecDeque<Bytes> = body
        .chunks
        .drain(..)
        .flat_map(|c| {
            (0..c.len())
                .step_by(8)
                .map(move |i| c.slice(i..(i + 8).min(c.len())))
                .collect::<Vec<_>>()
        })
        .collect();
    body.chunks = pieces;
    body.gap = Duration::from_millis(ms);
    res
}

/// `res` with its headers sent at once and `silence` before its first chunk
/// (a thinking model); with `cut`, the connection is cut after the silence
/// instead of sending anything.
pub(crate) fn silence(
    mut res: Response<FakeBody>,
    silence: Duration,
    cut: bool,
) -> Response<FakeBody> {
    let body = res.body_mut();
    body.first = silence;
    if cut {
        body.chunks.clear();
        body.fail_at_end = true;
        body.full = false;
    }
    res
}

/// Delay before cutting a connection, so the client reads what was sent.
pub(crate) const CUT_DELAY: Duration = Duration::from_millis(30);

impl Body for FakeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.chunks.is_empty() && !this.fail_at_end {
            return Poll::Ready(None);
        }
        let cutting = this.chunks.is_empty();
        let wait = if !this.first.is_zero() {
            this.first
        } else if cutting {
            CUT_DELAY
        } else if this.started {
            this.gap
        } else {
            Duration::ZERO
        };
        if !wait.is_zero() {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
            if !this.first.is_zero() {
                // The silence before the first chunk is over.
                this.first = Duration::ZERO;
                return Pin::new(this).poll_frame(cx);
            }
        }
        if cutting {
            this.fail_at_end = false;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fake: stream cut on purpose",
            ))));
        }
        this.started = true;
        Poll::Ready(this.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && !self.fail_at_end
    }

    fn size_hint(&self) -> SizeHint {
        if self.full {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// How the current call formats its output.
pub(crate) struct Ctx {
    pub(crate) version: &'static str,
    /// `:streamGenerateContent` without `alt=sse`: errors are array-wrapped.
    pub(crate) array_stream: bool,
    /// `prettyPrint=false` turns pretty-printing off.
    pub(crate) pretty: bool,
    /// Generate calls answer 200 with a candidate holding no content (the key is `Empty`).
    pub(crate) empty: bool,
}

pub(crate) const JSON_CT: &str = "application/json; charset=UTF-8";

pub(crate) fn with_headers(status: u16, ct: &'static str, body: FakeBody) -> Response<FakeBody> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        http::header::VARY,
        HeaderValue::from_static("Origin, X-Origin, Referer"),
    );
    h.insert(
        http::header::SERVER,
        HeaderValue::from_static("scaffolding on HTTPServer2"),
    );
    h.insert(
        HeaderName::from_static("x-xss-protection"),
        HeaderValue::from_static("0"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub(crate) fn json_response(ctx: &Ctx, status: u16, j: &Json) -> Response<FakeBody> {
    let mut s = if ctx.pretty { j.pretty() } else { j.compact() };
    s.push('\n');
    with_headers(status, JSON_CT, FakeBody::full(s))
}

pub(crate) fn error_response(ctx: &Ctx, e: GoogleError) -> Response<FakeBody> {
    if ctx.array_stream {
        let mut s = String::from("[");
        s.push_str(&if ctx.pretty {
            e.body.pretty()
        } else {
            e.body.compact()
        });
        s.push_str("\n]");
        with_headers(e.code, JSON_CT, FakeBody::full(s))
    } else {
        json_response(ctx, e.code, &e.body)
    }
}

pub(crate) fn plain_json(status: u16, s: String) -> Response<FakeBody> {
    with_headers(status, JSON_CT, FakeBody::full(s))
}
