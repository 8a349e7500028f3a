//! The key status page at `/dashboard`: one self-contained HTML page
//! (inline CSS and JS, no external origin) that reads `/status` with the admin token.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// The page, embedded in the binary.
const PAGE: &str = "<!doctype html><title>gemini-balance</title><p>Dashboard coming soon.</p>";

/// `GET /dashboard`.
pub fn page() -> Response<Body> {
    let mut res = Response::new(body::full(PAGE));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res
}
