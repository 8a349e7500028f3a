//! The accept loop: connection limits, slow-client timeouts, CORS, the
//! per-request panic guard, one log line per request, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::answer::{LogInfo, loggable};
use crate::app::App;
use crate::body::{self, Body};
use crate::error::{Api, GatewayError};
use crate::router;

mod conn;
mod proto;

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting,
/// let in-flight requests finish within `SHUTDOWN_GRACE`, and return.
///
/// At most `MAX_CONNECTIONS` connections are served at once. A connection past
/// the limit makes the longest-idle one close; while every connection has a
/// request in flight it waits for a slot.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    crate::replica::start(&app);
    let limit = Arc::new(Semaphore::new(app.cfg().max_connections));
    let conns = conn::Conns::new();
    let (stop, _) = watch::channel(());
    let builder = Arc::new(proto::Builders::new(&app));
    tokio::pin!(shutdown);
    let grace = app.cfg().shutdown_grace;
    // Draining: from the signal until the open streams are done (or the
    // time left for them runs out), new connections are still accepted, so
    // `/health` says "draining" and new requests get 503 + Retry-After.
    let mut drain_until: Option<Instant> = None;
    let mut signalled = Instant::now();
    let far = Instant::now() + Duration::from_secs(86_400 * 365);

    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    crate::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown, if drain_until.is_none() => {
                app.shutting_down.store(true, Ordering::SeqCst);
                signalled = Instant::now();
                drain_until = Some(signalled + stream_time(grace));
                crate::info!("draining: new requests get 503; open streams may finish");
                continue;
            }
            _ = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => break,
            _ = tokio::time::sleep(Duration::from_millis(50)), if drain_until.is_some() => {
                if !conns.busy() {
                    break;
                }
                continue;
            }
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = make_room(&limit, &conns) => match p { Some(p) => p, None => break },
                _ = &mut shutdown, if drain_until.is_none() => break,
            },
        };
        let _ = stream.set_nodelay(true);
        let reg = conns.open();
        let (app, builder, stop) = (app.clone(), builder.clone(), stop.subscribe());
        tokio::spawn(connection(app, builder, stream, reg, stop, permit));
    }

    app.shutting_down.store(true, Ordering::SeqCst);
    // Streams still open end now with their route's error event.
    app.drain.send_replace(true);
    drop(listener);
    // What is left of SHUTDOWN_GRACE (the whole of it without a signal:
    // the accept loop ended otherwise).
    let left = drain_until.map_or(grace, |_| grace.saturating_sub(signalled.elapsed()));
    crate::info!("shutting down: waiting up to {left:?} for in-flight requests");
    let _ = stop.send(());
    tokio::select! {
        _ = stop.closed() => crate::info!("all connections closed"),
        _ = tokio::time::sleep(left) => crate::warn!("grace period over; closing remaining connections"),
    }
    crate::log::flush();
}

/// Of `SHUTDOWN_GRACE`, the time open streams may go on before they are
/// ended with an error event: all but the last 2 s (half, for a shorter grace).
fn stream_time(grace: Duration) -> Duration {
    grace.saturating_sub(Duration::from_secs(2).min(grace / 2))
}

/// At the connection limit: ask idle connections to close, the longest idle
/// first, until a slot frees up (None if the semaphore is closed).
async fn make_room(limit: &Arc<Semaphore>, conns: &conn::Conns) -> Option<OwnedSemaphorePermit> {
    loop {
        conns.reclaim();
        if let Ok(p) =
            tokio::time::timeout(conn::RECLAIM_RETRY, limit.clone().acquire_owned()).await
        {
            return p.ok();
        }
    }
}

/// Serve one connection until it ends. It is closed gracefully (HTTP/2
/// GOAWAY, or no further HTTP/1 request) once idle for `CLIENT_TIMEOUT`, when
/// reclaimed to make room, or at shutdown; dropped when it never sends a
/// request, when a client stops taking an answer for `CLIENT_TIMEOUT`, or when
/// it stays open with nothing in flight for [`conn::DRAIN`] after a close.
/// Its slot under `MAX_CONNECTIONS` (`permit`) is held until then.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn holds its arguments twice"
)]
fn connection(
    app: Arc<App>,
    builder: Arc<proto::Builders>,
    stream: TcpStream,
    reg: conn::Registration,
    mut stop: watch::Receiver<()>,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send {
    // A plain function around one `async move` block: the task holds each
    // argument once (an `async fn` keeps its arguments and their moved
    // copies), and the first bytes' wait is on the heap, so an open
    // connection's task does not keep that wait's room.
    async move {
        let timeout = app.cfg().client_timeout;
        let version = Box::pin(first_bytes(&stream, timeout, &reg, &mut stop)).await;
        let Some(Ok(version)) = version else { return };
        let io = TokioIo::new(proto::StallGuard::new(stream, timeout));
        let state = reg.conn.clone();
        let svc = service_fn(move |req| {
            let busy = conn::Busy::start(&state);
            // On the heap: hyper keeps a service future's space for as long as
            // the answer streams (HTTP/2: in the stream's task; HTTP/1: per
            // connection), so that space is a pointer, not the whole request.
            let res = Box::pin(handle(app.clone(), req));
            async move {
                let res = res.await?;
                Ok::<_, Infallible>(res.map(|b| conn::Tracked::new(b, busy)))
            }
        });
        let mut conn = builder.serve(version, io, svc);
        let state = &reg.conn;
        let mut closing: Option<Instant> = None;
        let mut next_step = Instant::now();
        let mut wake = Instant::now() + timeout;
        loop {
            let close = tokio::select! {
                _ = conn.as_mut() => break,
                _ = tokio::time::sleep_until(wake) => {
                    match state.check(Instant::now(), timeout, closing, &mut next_step) {
                        conn::Verdict::Sleep(at) => { wake = at; false }
                        conn::Verdict::Close => true,
                        conn::Verdict::Drop(why) => {
                            crate::debug!("closing a client connection: {why}");
                            break;
                        }
                    }
                }
                _ = state.reclaimed(), if closing.is_none() => true,
                _ = stop.changed(), if closing.is_none() => true,
            };
            if close && closing.is_none() {
                state.set_closing();
                conn.as_mut().shut();
                let now = Instant::now();
                closing = Some(now);
                wake = now + conn::DRAIN;
            }
        }
        drop(permit);
    }
}

/// The HTTP version `stream` opens with; `None` when the client sends
/// nothing (or half an HTTP/2 preface) within CLIENT_TIMEOUT, or the
/// connection's slot is reclaimed or the gateway stops first.
async fn first_bytes(
    stream: &TcpStream,
    timeout: Duration,
    reg: &conn::Registration,
    stop: &mut watch::Receiver<()>,
) -> Option<std::io::Result<proto::Version>> {
    tokio::select! {
        v = proto::sniff(stream) => Some(v),
        _ = tokio::time::sleep(timeout) => None,
        _ = reg.conn.reclaimed() => None,
        _ = stop.changed() => None,
    }
}

/// Which error format a raw path answers in (for errors raised before routing).
fn api_for(path: &str) -> Api {
    let p = router::strip_mount(path);
    if p.starts_with("/v1beta")
        || p.starts_with("/gemini/")
        || (p.starts_with("/v1/models/") && p.contains(':'))
    {
        Api::Google
    } else {
        Api::OpenAi
    }
}

/// One request: preflight, shutdown check, routing under a panic guard,
/// CORS headers, logging and counters.
async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    // The path only: a query may carry `?key=`, which is never logged.
    let path = req.uri().path().to_string();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let api = api_for(&path);

    let mut res = if let Some(problem) = head_too_large(&app, &req) {
        GatewayError::HeadersTooLarge(problem).render(api)
    } else if method == Method::OPTIONS {
        preflight(&req)
    } else if app.shutting_down.load(Ordering::Relaxed) {
        draining(&path, api)
    } else {
        match (CatchUnwind {
            inner: Box::pin(router::route(app.clone(), req)),
        })
        .await
        {
            Ok(res) => res,
            Err(()) => {
                let logged = loggable(&app, &path);
                crate::error!("a request handler panicked: {} {}", method, logged);
                GatewayError::Internal.render(api)
            }
        }
    };

    add_cors(&app, origin.as_ref(), &mut res);
    let info = res.extensions_mut().remove::<LogInfo>().unwrap_or_default();
    let status = res.status().as_u16();
    app.stats.record(
        if info.route.is_empty() {
            "other"
        } else {
            info.route
        },
        &info.model,
        status,
    );
    // Milliseconds with one decimal, in integers (float formatting is slow).
    let tenths = u64::try_from(start.elapsed().as_micros() / 100).unwrap_or(u64::MAX);
    // A key in the path (`/status/keys/{key}/reset`) or given as the model is logged masked.
    crate::log::request(
        method.as_str(),
        &loggable(&app, &path),
        status,
        tenths,
        &loggable(&app, &info.model),
        &info.key,
    );
    Ok(res)
}

/// The answer while draining: `/health` says `"status":"draining"` (503,
/// so a load balancer moves away); any other request gets 503 in its
/// route's format with `Retry-After`.
fn draining(path: &str, api: Api) -> Response<Body> {
    let mut res = if router::strip_mount(path) == "/health" {
        body::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining"}),
        )
    } else {
        GatewayError::ShuttingDown.render(api)
    };
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// Why a request head is over `MAX_HEADERS` / `MAX_HEADER_BYTES`, if it is.
fn head_too_large<B>(app: &App, req: &Request<B>) -> Option<String> {
    let (max_headers, max_header_bytes) = {
        let cfg = app.cfg();
        (cfg.max_headers, cfg.max_header_bytes)
    };
    let h = req.headers();
    if h.len() > max_headers {
        return Some(format!(
            "Too many request headers ({}; at most MAX_HEADERS = {}).",
            h.len(),
            max_headers
        ));
    }
    let size = req.method().as_str().len()
        + req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + h.iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    (size > max_header_bytes).then(|| {
        format!(
            "The request head is too large ({size} bytes; at most MAX_HEADER_BYTES = {max_header_bytes})."
        )
    })
}

/// Answer a CORS preflight: 204 with the allowed methods and the requested headers.
fn preflight<B>(req: &Request<B>) -> Response<Body> {
    let mut res = Response::new(body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD"),
    );
    let requested = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type, x-goog-api-key"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    res
}

/// Add `Access-Control-Allow-Origin` per `CORS_ORIGINS`.
fn add_cors(app: &App, origin: Option<&HeaderValue>, res: &mut Response<Body>) {
    let origins = &app.cfg().cors_origins;
    let h = res.headers_mut();
    if origins.iter().any(|o| o == "*") {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else if let Some(o) = origin
        && origins.iter().any(|a| a.as_bytes() == o.as_bytes())
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Runs a future, turning a panic inside it into `Err(())`.
struct CatchUnwind<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// How many finished handshakes the kernel queues for `accept` (capped by
/// `net.core.somaxconn`, 4096 by default since Linux 5.4). Tokio and std ask
/// for 128: a burst of new connections — many clients at once, or all of
/// them coming back after a restart — then overflows the queue, and the
/// kernel drops the extra handshakes (the clients wait a second and try
/// again) or resets them.
pub const BACKLOG: u32 = 4096;

/// Listen on `addr` (a socket address, or `host:port` with the host a name or
/// an address) with [`BACKLOG`]: the first of its resolved addresses that
/// binds. Address reuse is on, as in `tokio::net::TcpListener::bind`, so a
/// restart can bind at once.
pub async fn listen(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let bound = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(a)?;
            s.listen(BACKLOG)
        });
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "the host resolves to no address",
        )
    }))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    crate::info!("signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While nobody accepts, each connection completes its handshake only if
    /// the accept queue has room (Linux drops the handshake otherwise, and the
    /// client's connect waits a second for its retry): with tokio's backlog of
    /// 128 the 130th connect would time out here.
    #[tokio::test]
    async fn the_listener_queues_a_burst_of_connections() {
        let listener = listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(BACKLOG as usize);
        // Well over 128, within the kernel's cap and the test's open files.
        let n = cap.min(600);
        assert!(n > 128, "net.core.somaxconn is {cap}: too low to tell");
        let mut open = Vec::with_capacity(n);
        for i in 0..n {
            let c = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr))
                .await
                .unwrap_or_else(|_| panic!("connection {i} waited: the accept queue is full"))
                .unwrap();
            open.push(c);
        }
        assert_eq!(open.len(), n);
        // And they are served once accepted.
        let (_first, _) = listener.accept().await.unwrap();
    }

    #[tokio::test]
    async fn a_host_name_is_resolved() {
        let l = listen("localhost:0").await.unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }

    #[tokio::test]
    async fn a_panic_inside_a_request_is_caught() {
        let boom = CatchUnwind {
            inner: Box::pin(async {
                tokio::task::yield_now().await;
                if std::hint::black_box(true) {
                    panic!("handler bug");
                }
                1
            }),
        };
        assert_eq!(boom.await, Err(()));
        let fine = CatchUnwind {
            inner: Box::pin(async { 7 }),
        };
        assert_eq!(fine.await, Ok(7));
    }

    #[test]
    fn errors_before_routing_use_the_routes_format() {
        assert_eq!(api_for("/v1beta/models/m:generateContent"), Api::Google);
        assert_eq!(api_for("/hf/gemini/v1/models"), Api::Google);
        assert_eq!(api_for("/v1/models/m:countTokens"), Api::Google);
        assert_eq!(api_for("/v1/chat/completions"), Api::OpenAi);
    }
}
