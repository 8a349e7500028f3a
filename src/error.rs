//! The gateway's error answers, in the format of the API that was called:
//! OpenAI's error object on the OpenAI routes, Google's
//! `{"error":{"code","message","status"}}` on native ones.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::body::{self, Body};
use crate::keys::Counts;
use crate::openai::error::{error_body, kind_for_status};

/// Which error format a route answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Google's `{"error":{"code","message","status"}}`.
    Google,
}

/// An error response in the format of `api`.
pub fn error(api: Api, status: StatusCode, message: &str) -> Response<Body> {
    match api {
        Api::OpenAi => oai_error(status, message, None, None),
        Api::Google => body::json(status, &google_error(status, message)),
    }
}

/// An OpenAI error response (`code` defaults to the status's usual code).
pub fn oai_error(
    status: StatusCode,
    message: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Response<Body> {
    let (kind, default_code) = kind_for_status(status.as_u16());
    body::json(
        status,
        &error_body(message, kind, code.or(default_code), param),
    )
}

/// Google's error envelope for the gateway's own errors.
pub fn google_error(status: StatusCode, message: &str) -> serde_json::Value {
    let s = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        408 | 504 => "DEADLINE_EXCEEDED",
        413 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status.as_u16(), "message": message, "status": s}})
}

/// "No usable key" text with the pool's counts.
pub fn no_key_message(c: &Counts, wait: Option<Duration>) -> String {
    let total = c.active + c.cooling + c.resting + c.disabled;
    let mut m = format!(
        "No usable Gemini key: {total} keys ({} active, {} cooling, {} resting, {} disabled).",
        c.active, c.cooling, c.resting, c.disabled
    );
    if let Some(d) = wait {
        m.push_str(&format!(" Retry in {} s.", secs_ceil(d)));
    }
    m
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Set `Retry-After` (seconds, at least 1) and `retry-after-ms`.
pub fn set_retry_after(res: &mut Response<Body>, d: Duration) {
    let secs = secs_ceil(d).max(1);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res.headers_mut().insert(
        HeaderName::from_static("retry-after-ms"),
        HeaderValue::from(d.as_millis().max(1) as u64),
    );
}
