//! The response body type every handler returns, and small helpers to build
//! responses and to read request/upstream bodies with a size limit; the
//! bodies that are more than bytes: one fed by a task ([`ChannelBody`]),
//! one that fails when its source stalls ([`idle_timeout`]), and one that
//! sends heartbeats while its answer is still being made ([`beating`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

/// Errors carried inside a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A response with a JSON body.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
}

/// A response with an already serialized JSON body.
pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut res = Response::new(full(bytes));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A response with a plain-text body.
pub fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from_static(s.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Why reading a body failed.
#[derive(Debug)]
pub enum ReadError {
    /// The body is larger than the limit.
    TooLarge,
    /// The connection failed or timed out while reading.
    Io(String),
}

/// Read a whole body, failing once it exceeds `limit` bytes.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ReadError::TooLarge)
            } else {
                Err(ReadError::Io(e.to_string()))
            }
        }
    }
}

/// `inner` as a [`Body`] that fails once `idle` passes without a frame, so an
/// upstream body that stalls cannot hold a connection (both of them) forever.
pub fn idle_timeout<B>(inner: B, idle: std::time::Duration) -> Body
where
    B: HttpBody<Data = Bytes> + Unpin + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    IdleTimeout {
        inner,
        idle,
        sleep: Box::pin(tokio::time::sleep(idle)),
        failed: false,
    }
    .boxed()
}

struct IdleTimeout<B> {
    inner: B,
    idle: std::time::Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    failed: bool,
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(r)) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(r.map_err(Into::into)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.failed = true;
                    Poll::Ready(Some(Err("upstream body went silent".into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body fed from a channel by a task (used for translated streams).
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it. Dropping the sender ends the body;
    /// the sender sees an error once the client has gone away.
    pub fn pair(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx }.boxed())
    }
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A body that sends `beat` at once and then every `every` while `opening`
/// runs, then goes on as the body `rest` makes of the opening's output: the
/// body of a stream (or keep-alive answer) whose 200 went out before its
/// opening ended. Nothing else runs while it is silent — no task, no
/// channel: the opening is polled when the connection polls the body, one
/// timer wakes it per interval, and a client that goes away drops the body
/// and so cancels the opening.
pub fn beating<F, R>(opening: F, every: Duration, beat: &'static [u8], rest: R) -> Body
where
    F: Future + Unpin + Send + 'static,
    R: FnOnce(F::Output) -> Body + Send + Sync + Unpin + 'static,
{
    Beating {
        opening: Some((
            Mutex::new(opening),
            Box::pin(tokio::time::sleep(Duration::ZERO)),
        )),
        rest: Some(rest),
        every,
        beat,
        after: None,
    }
    .boxed()
}

/// [`beating`] whose rest is a task writing into a [`ChannelBody`] of
/// `capacity` (spawned once the opening ends).
pub fn beating_into<F, T>(
    opening: F,
    every: Duration,
    beat: &'static [u8],
    capacity: usize,
    rest: impl FnOnce(F::Output, mpsc::Sender<Bytes>) -> T + Send + Sync + Unpin + 'static,
) -> Body
where
    F: Future + Unpin + Send + 'static,
    T: Future<Output = ()> + Send + 'static,
{
    beating(opening, every, beat, move |done| {
        let (tx, body) = ChannelBody::pair(capacity);
        tokio::spawn(rest(done, tx));
        body
    })
}

/// See [`beating`].
struct Beating<F, R> {
    /// The opening and its heartbeat timer, until it ends. The opening is in
    /// a `Mutex` only to make the body `Sync` (as [`Body`] asks): it is
    /// reached through `get_mut`, never locked.
    opening: Option<(Mutex<F>, Pin<Box<tokio::time::Sleep>>)>,
    rest: Option<R>,
    every: Duration,
    beat: &'static [u8],
    /// The body after the opening.
    after: Option<Body>,
}

impl<F, R> HttpBody for Beating<F, R>
where
    F: Future + Unpin,
    R: FnOnce(F::Output) -> Body + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some((opening, tick)) = this.opening.as_mut() {
            let opening = opening
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Poll::Ready(done) = Pin::new(opening).poll(cx) {
                // The timer goes with it: no wake-up after the last heartbeat.
                this.opening = None;
                this.after = this.rest.take().map(|rest| rest(done));
            } else {
                if tick.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tick.as_mut()
                    .reset(tokio::time::Instant::now() + this.every);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(this.beat)))));
            }
        }
        match this.after.as_mut() {
            Some(after) => Pin::new(after).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    async fn next(body: &mut Body) -> Option<Bytes> {
        body.frame().await.map(|f| f.unwrap().into_data().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn beats_at_once_and_every_interval_then_the_rest() {
        let opening = Box::pin(async {
            tokio::time::sleep(Duration::from_secs(7)).await;
            "answer"
        });
        let start = tokio::time::Instant::now();
        let mut body = beating(opening, Duration::from_secs(3), b": beat\n\n", |done| {
            full(format!("data: {done}\n\n"))
        });
        let mut seen = Vec::new();
        while let Some(b) = next(&mut body).await {
            seen.push((start.elapsed().as_secs(), b));
        }
        let beat = Bytes::from_static(b": beat\n\n");
        assert_eq!(
            seen,
            vec![
                (0, beat.clone()),
                (3, beat.clone()),
                (6, beat),
                (7, Bytes::from_static(b"data: answer\n\n")),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rest_may_be_a_task_feeding_a_channel() {
        let opening = Box::pin(async { 2u8 });
        let mut body = beating_into(
            opening,
            Duration::from_secs(1),
            b"\n",
            4,
            |n, tx| async move {
                for i in 0..n {
                    tx.send(Bytes::from(vec![b'a' + i])).await.unwrap();
                }
            },
        );
        assert_eq!(next(&mut body).await.unwrap(), "a");
        assert_eq!(next(&mut body).await.unwrap(), "b");
        assert!(next(&mut body).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_body_cancels_the_opening() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let opening = Box::pin(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let mut body = beating(opening, Duration::from_secs(1), b"\n", |()| empty());
        assert_eq!(next(&mut body).await.unwrap(), "\n");
        assert!(!dropped.load(Ordering::SeqCst), "the opening runs on");
        drop(body);
        assert!(
            dropped.load(Ordering::SeqCst),
            "a client gone cancels the opening"
        );
    }
}
