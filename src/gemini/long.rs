//! Native calls that take long: SSE streams that commit their 200 and send
//! heartbeats (empty lines) while the opening goes on, fake streaming
//! (`FAKE_STREAM_ENABLED`: a whole answer sent as SSE events), and whole
//! answers kept alive with whitespace (`NONSTREAM_KEEPALIVE`). Each runs its
//! opening as an owned future a task can take over once the 200 is out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use super::{Opening, Prepared};
use crate::answer::{LogInfo, upstream_failed};
use crate::app::App;
use crate::auth::Keys;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::keys::KeyPool;
use crate::upstream::{Auth, Call, response_headers};

/// What an owned opening reads.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A stream, up to its first byte.
    Stream,
    /// A whole answer, sent on as stream events (SSE, or `true`: Google's
    /// JSON array, the form without `alt=sse`).
    Fake(bool),
    /// A whole answer.
    Plain,
}

/// A native call run to its answer's head and body, owning what it needs
/// (so a task can take it over), under the request's deadline.
type Owned = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<((http::response::Parts, Body), String), GatewayError>,
            > + Send,
    >,
>;

/// Open `call` on the keys `keys` allow: the answer's head and body, and
/// the masked key that served it.
fn open_owned(
    app: Arc<App>,
    call: Prepared,
    keys: Keys,
    pinned: Option<usize>,
    route: &'static str,
    mode: Mode,
) -> Owned {
    let a = app;
    let path = if matches!(mode, Mode::Fake(_)) {
        whole_path(&call.path)
    } else {
        call.path
    };
    let opening = async move {
        let up = Call {
            method: call.method,
            path,
            body: call.body,
            model: &call.model,
            auth: Auth::GoogHeader,
            headers: call.headers,
            route,
        };
        let pool: &KeyPool = match &keys {
            Keys::Server => a.pool_for(&up.path),
            Keys::Backup => &a.backup,
            Keys::Client(p) => p,
        };
        let own = matches!(keys, Keys::Client(_));
        let started = Instant::now();
        // Each step on the heap: a silent stream's opening holds only the
        // state of the step it waits in.
        let answer = Box::pin(super::files::call_on(&a, pool, &up, pinned))
            .await
            .map_err(|f| upstream_failed(&a, f, up.model, own))?;
        a.stats.upstream_latency(started.elapsed());
        a.stats.retried(answer.attempts - 1);
        let mut log = LogInfo {
            route,
            ..LogInfo::default()
        };
        let opened = Opening {
            app: &a,
            pool,
            up: &up,
            own,
            pinned: pinned.is_some(),
        };
        let parts_body = match mode {
            Mode::Fake(array) => {
                let (parts, whole) = Box::pin(opened.read_plain(answer, &mut log)).await?;
                Box::pin(as_events(parts, whole, array)).await
            }
            Mode::Plain => Box::pin(opened.read_plain(answer, &mut log)).await?,
            Mode::Stream => opened.open_stream(answer, true, false, &mut log).await?,
        };
        Ok::<_, GatewayError>((parts_body, log.key))
    };
    let budget = crate::longcall::current();
    Box::pin(crate::longcall::scoped(budget, opening))
}

/// A native whole answer (`NONSTREAM_KEEPALIVE`): if it takes longer than
/// `HEARTBEAT_SECONDS`, a 200 goes out and whitespace flows until the JSON
/// body follows; a failure then is Google's error object (status 200).
pub(super) async fn plain_keepalive(
    app: Arc<App>,
    mut call: Prepared,
    keys: Keys,
    pinned: Option<usize>,
    log: &mut LogInfo,
    heartbeat: Duration,
) -> Result<Response<Body>, GatewayError> {
    // Asked unencoded: whitespace cannot go before a gzip body.
    call.headers
        .retain(|(k, _)| k != http::header::ACCEPT_ENCODING);
    let opening = open_owned(app.clone(), call, keys, pinned, log.route, Mode::Plain);
    let answer = async move {
        let ((parts, out_body), key) = opening.await?;
        let mut res = Response::new(out_body);
        *res.status_mut() = parts.status;
        *res.headers_mut() = response_headers(parts.headers);
        Ok((res, key))
    };
    let api = crate::error::Api::Google;
    crate::keepalive::respond(&app, Box::pin(answer), heartbeat, api, log).await
}

/// A native SSE stream, opened (with retries) up to its first byte, or a
/// faked one (SSE or JSON array); if that takes longer than
/// `HEARTBEAT_SECONDS`, a 200 goes out and empty lines (JSON whitespace
/// before an array) flow while the opening goes on (other keys included,
/// invisibly); a failure then ends the stream with Google's error object as
/// an event (in a one-element array for the array form).
pub(super) async fn sse_stream(
    app: Arc<App>,
    call: Prepared,
    keys: Keys,
    pinned: Option<usize>,
    log: &mut LogInfo,
    heartbeat: Duration,
) -> Result<Response<Body>, GatewayError> {
    let fake = app.cfg().fake_stream_for(&call.model);
    let array = !call.sse;
    let mode = if fake {
        Mode::Fake(array)
    } else {
        Mode::Stream
    };
    let mut opening = open_owned(app.clone(), call, keys, pinned, log.route, mode);
    let done = if heartbeat.is_zero() {
        Some(opening.as_mut().await)
    } else {
        crate::longcall::within(&mut opening, heartbeat).await
    };
    if let Some(done) = done {
        let ((parts, out_body), key) = done?;
        log.key = key;
        let mut res = Response::new(out_body);
        *res.status_mut() = parts.status;
        *res.headers_mut() = response_headers(parts.headers);
        return Ok(res);
    }
    // Silent for HEARTBEAT_SECONDS: commit the 200 and keep the line alive.
    let opening = Box::pin(crate::keepalive::until_drained(&app, opening));
    let beat = crate::longcall::NATIVE_HEARTBEAT;
    let out_body = body::beating_into(opening, heartbeat, beat, 32, move |done, tx| {
        after_opening(done, array, tx)
    });
    let mut res = Response::new(out_body);
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(if array {
            "application/json; charset=UTF-8"
        } else {
            "text/event-stream"
        }),
    );
    Ok(res)
}

/// The rest of a native stream whose opening outlasted `HEARTBEAT_SECONDS`:
/// its frames forwarded, or its failure as Google's error object (an event,
/// or a one-element array for the array form).
async fn after_opening(
    done: Result<((http::response::Parts, Body), String), GatewayError>,
    array: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    match done {
        Ok(((_, mut stream), _)) => {
            while let Some(Ok(frame)) = stream.frame().await {
                if let Ok(data) = frame.into_data()
                    && tx.send(data).await.is_err()
                {
                    return;
                }
            }
        }
        Err(e) => {
            let status = e.status();
            let res = e.into_google();
            let error = res.into_body().collect().await.map(|c| c.to_bytes());
            // One line: Google's (pretty-printed) error object, compacted.
            let error = error
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .unwrap_or_else(|| crate::error::google_error(status, "upstream error"));
            let event = if array {
                format!("[{error}]")
            } else {
                format!("data: {error}\r\n\r\n")
            };
            let _ = tx.send(Bytes::from(event)).await;
        }
    }
}

/// The `generateContent` path for a `streamGenerateContent?alt=sse` one
/// (fake streaming): the action changed, `alt=sse` dropped.
fn whole_path(path: &str) -> String {
    let (head, query) = path.split_once('?').unwrap_or((path, ""));
    let head = head.replacen(":streamGenerateContent", ":generateContent", 1);
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && *p != "alt=sse")
        .collect();
    if rest.is_empty() {
        head
    } else {
        format!("{head}?{}", rest.join("&"))
    }
}

/// A whole answer (already masked) as stream events
/// ([`crate::longcall::answer_events`]): SSE, or (`array`) Google's JSON
/// array written as a real one is (`[{…}\n,\r\n{…}\n]`).
async fn as_events(
    mut parts: http::response::Parts,
    whole: Body,
    array: bool,
) -> (http::response::Parts, Body) {
    let bytes = whole
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let events = crate::longcall::answer_events(&bytes).unwrap_or_default();
    let mut out = Vec::with_capacity(bytes.len() + events.len() * 16);
    for (i, ev) in events.iter().enumerate() {
        let (open, close): (&[u8], &[u8]) = match (array, i) {
            (false, _) => (b"data: ", b"\r\n\r\n"),
            (true, 0) => (b"[", b"\n"),
            (true, _) => (b",\r\n", b"\n"),
        };
        out.extend_from_slice(open);
        out.extend_from_slice(ev.as_bytes());
        out.extend_from_slice(close);
    }
    if array {
        out.extend_from_slice(if events.is_empty() { b"[]" } else { b"]" });
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(if array {
            "application/json; charset=UTF-8"
        } else {
            "text/event-stream"
        }),
    );
    (parts, body::full(Bytes::from(out)))
}
