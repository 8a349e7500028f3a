//! How an upstream answer goes back to the client on the native routes (and
//! Gemini's own OpenAI-compatible one): a stream is forwarded as it arrives
//! under the idle timeout, a plain answer is read whole within `TIME_OUT`,
//! and either way the pool key — and anything shaped like a Google API key —
//! is masked in every byte on the way ([`crate::upstream::Redactor`]).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;

use super::gzip;
use crate::answer::ANSWER_LIMIT;
use crate::app::App;
use crate::body::{self, Body, ReadError};
use crate::error::{GatewayError, google_error};
use crate::store::meter::Meter;

/// One read of an upstream body under the idle timeout.
pub(super) type FirstRead =
    Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, tokio::time::error::Elapsed>;

/// Remove `Accept-Encoding` from the headers going upstream; whether the
/// client accepted gzip. A stream is asked for unencoded so that its bytes
/// can be redacted on the way (see [`Outgoing`]).
pub(super) fn take_accept_encoding(headers: &mut Vec<(HeaderName, HeaderValue)>) -> bool {
    let mut gzip = false;
    headers.retain(|(k, v)| {
        if k != header::ACCEPT_ENCODING {
            return true;
        }
        gzip |= v.to_str().is_ok_and(gzip::accepts_gzip);
        false
    });
    gzip
}

/// A native answer that is not streamed, read whole within `TIME_OUT` (from
/// its headers on: one that trickles in is cut there) and the request's
/// `REQUEST_TIMEOUT` and `ANSWER_LIMIT`,
/// then passed on with the pool key masked ([`redact_plain`]); the answer
/// to a `generate` call that holds no content is an `empty_answer` failure. `Err` is the
/// error for the client and why the key's call failed.
pub(super) async fn read_plain(
    app: &App,
    res: Response<crate::lanes::UpBody>,
    key: &str,
    meter: &mut Meter,
    generate: bool,
) -> Result<(http::response::Parts, Body), (GatewayError, &'static str)> {
    let (mut parts, incoming) = res.into_parts();
    let limit = ANSWER_LIMIT;
    let wait = crate::longcall::clamp(app.upstream.timeout());
    let read = tokio::time::timeout(wait, body::read_limited(incoming, limit));
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Err(_) => {
            return Err((
                GatewayError::AnswerTimeout,
                "answer did not complete within TIME_OUT",
            ));
        }
        Ok(Err(ReadError::TooLarge)) => {
            return Err((
                GatewayError::BadAnswer(
                    "Gemini's answer is larger than the gateway reads (256 MiB).".into(),
                ),
                "answer too large",
            ));
        }
        Ok(Err(ReadError::Io(_))) => {
            return Err((
                GatewayError::BadAnswer(
                    "The connection to Gemini broke in the middle of the answer.".into(),
                ),
                "answer broke off",
            ));
        }
    };
    if !parts.headers.contains_key(header::CONTENT_ENCODING) {
        meter.whole(&bytes);
    }
    if generate && plain_is_empty(&parts.headers, &bytes) {
        return Err((crate::answer::empty_failed(), crate::longcall::EMPTY_ANSWER));
    }
    let bytes = redact_plain(&mut parts.headers, bytes, key);
    Ok((parts, body::full(bytes)))
}

/// Whether a whole 200 answer is an empty one ([`crate::longcall::is_empty_answer`]),
/// looked into through gzip; an answer in another encoding is not judged.
fn plain_is_empty(headers: &HeaderMap, bytes: &Bytes) -> bool {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None | Some(b"identity") => crate::longcall::is_empty_answer(bytes),
        Some(b"gzip" | b"x-gzip") => gzip::decode(bytes, ANSWER_LIMIT)
            .is_ok_and(|plain| crate::longcall::is_empty_answer(&plain)),
        Some(_) => false,
    }
}

/// `bytes` with the pool key masked; a gzip body is looked into (and, only
/// when it held a key, sent re-encoded). Another encoding passes as it came.
fn redact_plain(headers: &mut HeaderMap, bytes: Bytes, key: &str) -> Bytes {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let out = match encoding.as_deref() {
        None | Some("identity") => crate::upstream::redact(bytes.clone(), key),
        Some("gzip" | "x-gzip") => {
            let Ok(plain) = gzip::decode(&bytes, ANSWER_LIMIT) else {
                return bytes;
            };
            let plain = Bytes::from(plain);
            let masked = crate::upstream::redact(plain.clone(), key);
            if masked == plain {
                return bytes;
            }
            Bytes::from(gzip::encode(&masked))
        }
        Some(_) => return bytes,
    };
    if out.as_ptr() != bytes.as_ptr() || out.len() != bytes.len() {
        headers.remove(header::CONTENT_LENGTH);
    }
    out
}

/// What happens to a forwarded stream's bytes on their way to the client:
/// the pool key is masked (unless upstream encoded the body anyway, which
/// cannot be looked into), then gzip-encoded if the client asked for gzip.
pub(super) struct Outgoing {
    redactor: Option<crate::upstream::Redactor>,
    gzip: Option<gzip::GzipEncoder>,
    /// A failure cuts the stream instead of ending it with an error object.
    cut: bool,
    /// The attempt's usage: reads the tokens, recorded when the stream ends.
    meter: Meter,
    /// Heartbeat interval and bytes (`HEARTBEAT_SECONDS`), if any.
    beat: Option<(Duration, &'static [u8])>,
    /// Whether the bytes sent so far end at an event boundary (a blank line).
    boundary: bool,
    /// Shutdown's signal to end the stream (`App::drain`).
    drain: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Outgoing {
    /// For a stream that `headers` (upstream's, adjusted here) describe;
    /// `gzip_out`: the client accepts gzip; `cut`: never append an error.
    pub(super) fn new(key: &str, headers: &mut HeaderMap, gzip_out: bool, cut: bool) -> Outgoing {
        let encoded = headers.contains_key(header::CONTENT_ENCODING);
        let gzip = (gzip_out && !encoded).then(|| {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.remove(header::CONTENT_LENGTH);
            gzip::GzipEncoder::new()
        });
        if !encoded {
            // Masking changes the length.
            headers.remove(header::CONTENT_LENGTH);
        }
        Outgoing {
            redactor: (!encoded).then(|| crate::upstream::Redactor::new(key)),
            cut: cut || encoded || gzip.is_some(),
            gzip,
            meter: Meter::off(),
            beat: None,
            boundary: true,
            drain: None,
        }
    }

    /// Ended with an error object (or cut) when `drain` turns `true`.
    pub(super) fn draining(mut self, drain: tokio::sync::watch::Receiver<bool>) -> Outgoing {
        self.drain = Some(drain);
        self
    }

    /// With heartbeats `beat` every `every` of silence, sent only between
    /// events and only into a plain (not encoded) stream; `every` zero: none.
    pub(super) fn beating(mut self, every: Duration, beat: &'static [u8]) -> Outgoing {
        let plain = self.gzip.is_none() && self.redactor.is_some();
        self.beat = (plain && !every.is_zero()).then_some((every, beat));
        self
    }

    /// With the attempt's meter (fed every upstream byte).
    pub(super) fn metered(mut self, meter: Meter) -> Outgoing {
        self.meter = meter;
        self
    }

    /// The bytes of `data` that can go out now (possibly none).
    fn pass(&mut self, data: Bytes) -> Bytes {
        self.meter.chunk(&data);
        let data = match &mut self.redactor {
            Some(r) => r.push(data),
            None => data,
        };
        if !data.is_empty() {
            self.boundary = data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n");
        }
        match &mut self.gzip {
            Some(g) if !data.is_empty() => Bytes::from(g.chunk(&data)),
            _ => data,
        }
    }

    /// What is left at the end of the stream (held bytes, gzip trailer).
    fn finish(&mut self) -> Bytes {
        let held = self
            .redactor
            .as_mut()
            .map(|r| r.finish())
            .unwrap_or_default();
        match &mut self.gzip {
            Some(g) => {
                let mut out = if held.is_empty() {
                    Vec::new()
                } else {
                    g.chunk(&held)
                };
                out.extend(g.finish());
                Bytes::from(out)
            }
            None => held,
        }
    }
}

/// Forward a streamed answer as it arrives, through `out` (see [`Outgoing`]);
/// if it breaks or goes silent, end it with Google's error object in the
/// stream's own framing — or, when `out.cut` (an encoded stream, or an
/// OpenAI one), cut it, so the client sees it end early rather than read
/// plain text as gzip.
///
/// `first` is the first read of `incoming` (under the idle timeout), made by
/// the caller; with a `deadline` (an answer that is not a stream) the body
/// must end by then (`REQUEST_TIMEOUT`); a data frame is queued in the body before it is returned, so
/// the response's head and first chunk leave in one write.
pub(super) fn forward_stream(
    first: FirstRead,
    mut incoming: crate::lanes::UpBody,
    idle: Duration,
    sse: bool,
    mut out: Outgoing,
    deadline: Option<tokio::time::Instant>,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, crate::body::BoxError>>(32);
    let body = Forwarded { rx }.boxed();
    let mut first = match first {
        Ok(Some(Ok(frame))) => {
            if let Ok(data) = frame.into_data() {
                let data = out.pass(data);
                if !data.is_empty() {
                    // A fresh channel always has room.
                    let _ = tx.try_send(Ok(data));
                }
            }
            None
        }
        other => Some(other),
    };
    tokio::spawn(async move {
        let mut heard = tokio::time::Instant::now();
        loop {
            let left = idle.saturating_sub(heard.elapsed());
            let wait = match deadline {
                Some(d) => left.min(d.saturating_duration_since(tokio::time::Instant::now())),
                None => left,
            };
            // Silent for HEARTBEAT_SECONDS at an event boundary: a heartbeat.
            let beat = out.beat.filter(|(every, _)| out.boundary && *every < wait);
            let next = match first.take() {
                Some(r) => r,
                None => {
                    let wait = beat.map_or(wait, |(every, _)| every);
                    let read = tokio::time::timeout(wait, incoming.frame());
                    match &mut out.drain {
                        Some(d) => tokio::select! {
                            next = read => next,
                            () = crate::longcall::drained(d) => {
                                drained(&mut out, &tx, sse).await;
                                return;
                            }
                        },
                        None => read.await,
                    }
                }
            };
            if let (Err(_), Some((_, bytes))) = (&next, beat) {
                if tx.send(Ok(Bytes::from_static(bytes))).await.is_err() {
                    return;
                }
                continue;
            }
            heard = tokio::time::Instant::now();
            let failure = match next {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let data = out.pass(data);
                        if !data.is_empty() && tx.send(Ok(data)).await.is_err() {
                            return; // client gone: dropping `incoming` cancels upstream
                        }
                    }
                    continue;
                }
                Ok(None) => {
                    let rest = out.finish();
                    if !rest.is_empty() {
                        let _ = tx.send(Ok(rest)).await;
                    }
                    return;
                }
                Ok(Some(Err(_))) => (
                    StatusCode::BAD_GATEWAY,
                    "The connection to Gemini broke in the middle of the answer.",
                ),
                Err(_) if wait < left => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gemini's answer did not complete before the request's REQUEST_TIMEOUT.",
                ),
                Err(_) => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "Gemini's stream went silent for longer than STREAM_IDLE_TIMEOUT.",
                ),
            };
            if out.cut {
                let _ = tx.send(Err(failure.1.into())).await;
                return;
            }
            let err = google_error(failure.0, failure.1);
            let mut tail = out.finish().to_vec();
            if sse {
                tail.extend_from_slice(format!("data: {err}\r\n\r\n").as_bytes());
            } else {
                tail.extend_from_slice(format!(",\r\n{err}\n]").as_bytes());
            }
            let _ = tx.send(Ok(Bytes::from(tail))).await;
            return;
        }
    });
    body
}

/// Shutdown: end the stream with Google's error object in its framing (a
/// stream that cannot take one, see [`Outgoing`]'s `cut`, is cut).
async fn drained(
    out: &mut Outgoing,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BoxError>>,
    sse: bool,
) {
    let message = "The gateway is shutting down; retry the request.";
    if out.cut {
        let _ = tx.send(Err(message.into())).await;
        return;
    }
    let err = google_error(StatusCode::SERVICE_UNAVAILABLE, message);
    let mut tail = out.finish().to_vec();
    if sse {
        tail.extend_from_slice(format!("data: {err}\r\n\r\n").as_bytes());
    } else {
        tail.extend_from_slice(format!(",\r\n{err}\n]").as_bytes());
    }
    let _ = tx.send(Ok(Bytes::from(tail))).await;
}

/// A streamed body fed by [`forward_stream`]'s task; an `Err` item makes the
/// server abort the response (the client sees the stream break).
struct Forwarded {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, crate::body::BoxError>>,
}

impl hyper::body::Body for Forwarded {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}
