//! What the gateway reads from a request: its body (within `MAX_BODY_BYTES`
//! and `CLIENT_TIMEOUT`), JSON, query parameters and credentials.

use std::borrow::Cow;

use bytes::Bytes;
use http::{Request, header};
use hyper::body::Incoming;
use serde_json::Value;

use crate::app::App;
use crate::body::{self, ReadError};
use crate::error::GatewayError;

/// Read a request body as raw bytes (never re-serialised; it may be empty),
/// bounded by `MAX_BODY_BYTES` and `CLIENT_TIMEOUT`.
pub async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, GatewayError> {
    let (limit, timeout) = {
        let cfg = app.cfg();
        (cfg.max_body_bytes, cfg.client_timeout)
    };
    let read = tokio::time::timeout(timeout, body::read_limited(req.into_body(), limit));
    match read.await {
        Ok(Ok(b)) => Ok(b),
        Err(_) => Err(GatewayError::BodyTimeout),
        Ok(Err(ReadError::TooLarge)) => Err(GatewayError::BodyTooLarge(limit)),
        Ok(Err(ReadError::Io(e))) => Err(GatewayError::BodyRead(e)),
    }
}

/// Read a request body that must hold a JSON document: as [`read_body`],
/// and empty is an error too.
pub async fn read_nonempty_body(app: &App, req: Request<Incoming>) -> Result<Bytes, GatewayError> {
    let bytes = read_body(app, req).await?;
    if bytes.is_empty() {
        return Err(GatewayError::EmptyBody);
    }
    Ok(bytes)
}

/// Parse JSON with a nesting limit (serde_json's own limit is 128; deeper
/// input is refused before parsing so it can never exhaust the stack).
pub fn parse_json(bytes: &[u8]) -> Result<Value, GatewayError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// The bearer token of a request, if any.
pub fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A native-style credential: `x-goog-api-key` header or `?key=`.
pub fn native_credential<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    if let Some(v) = req
        .headers()
        .get(crate::upstream::GOOG_API_KEY)
        .and_then(|v| v.to_str().ok())
    {
        return Some(Cow::Borrowed(v.trim()));
    }
    query_param(req.uri().query().unwrap_or(""), "key").map(Cow::Owned)
}

/// The credential a call comes with: the native one
/// ([`native_credential`]), else the bearer token.
pub fn credential<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    native_credential(req).or_else(|| bearer(req).map(Cow::Borrowed))
}

/// The first value of `name` in a query string (percent-decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decode `%XX` escapes and `+` (lossy on invalid UTF-8).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(
            query_param("a=1&key=ab%2Bc&x", "key").as_deref(),
            Some("ab+c")
        );
        assert_eq!(query_param("alt=sse", "key"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
