//! Keep-alive for non-streamed answers behind proxies (`NONSTREAM_KEEPALIVE`):
//! an answer not ready within `HEARTBEAT_SECONDS` commits a 200 with a JSON
//! content type and sends a space every `HEARTBEAT_SECONDS` (JSON allows
//! leading whitespace) until the body follows; a failure after that is the
//! route's JSON error object, with status 200 (the trade-off README states).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{HeaderValue, Response, header};

use crate::answer::LogInfo;
use crate::app::App;
use crate::body::Body;
use crate::error::{Api, GatewayError};

/// The heartbeat before a JSON body: one space.
const SPACE: &[u8] = b" ";

/// An answer being made (owned, so the answer's body can take it over): the response
/// and the masked key that served it.
pub type Making =
    Pin<Box<dyn Future<Output = Result<(Response<Body>, String), GatewayError>> + Send>>;

/// `fut`, or `ShuttingDown` once shutdown asks open answers to end
/// (`App::drain`): used on answers whose 200 already went out, so that
/// they end with the route's error rather than a cut.
pub fn until_drained<T, F>(
    app: &App,
    fut: F,
) -> impl Future<Output = Result<T, GatewayError>> + use<T, F>
where
    F: Future<Output = Result<T, GatewayError>>,
{
    let mut drain = app.drain.subscribe();
    async move {
        tokio::select! {
            out = fut => out,
            () = crate::longcall::drained(&mut drain) => Err(GatewayError::ShuttingDown),
        }
    }
}

/// The answer of `making`, or — when it takes longer than `every` — a 200
/// whose body is spaces every `every`, then the answer's body (an error
/// rendered in `api`'s format).
pub async fn respond(
    app: &App,
    mut making: Making,
    every: Duration,
    api: Api,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    if let Some(done) = crate::longcall::within(&mut making, every).await {
        let (res, key) = done?;
        log.key = key;
        return Ok(res);
    }
    let making = Box::pin(until_drained(app, making));
    let body = crate::body::beating(making, every, SPACE, move |done| match done {
        Ok((res, _)) => res.into_body(),
        Err(e) => e.render(api).into_body(),
    });
    let mut res = Response::new(body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
