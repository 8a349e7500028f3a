//! OpenAI error objects, and upstream (Gemini) errors mapped to them.
//!
//! Owns the OpenAI error envelope (`{"error":{"message","type","param","code"}}`),
//! the status → `(type, code)` table used for the gateway's own errors, the
//! Gemini → OpenAI error mapping (docs/wire-formats.md §C.9), and [`scrub`],
//! which removes API keys from any message before it reaches a client.

use serde_json::{Value, json};

/// An OpenAI error object `{"error":{"message","type","param","code"}}`
/// (all four keys present; `param`/`code` are `null` when `None`).
pub fn error_body(message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> Value {
    json!({
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code,
        }
    })
}

/// A Gemini (or any upstream) error mapped to what an OpenAI client expects.
#[derive(Clone, Debug, PartialEq)]
pub struct MappedError {
    /// HTTP status to answer the client with.
    pub status: u16,
    /// The OpenAI error body (see [`error_body`]).
    pub body: Value,
    /// Seconds the client should wait before retrying (`retry-after`), from
    /// Google's `RetryInfo.retryDelay`, rounded up.
    pub retry_after: Option<u64>,
    /// Value for `x-should-retry`: `Some(false)` when retrying cannot help
    /// (a per-day quota is exhausted); `None` leaves the client's default.
    pub should_retry: Option<bool>,
}

/// (type, code) used by the gateway for its own errors of a given status.
///
/// 400 `invalid_request_error`/null, 401 `invalid_request_error`/`invalid_api_key`,
/// 403 `permission_error`/null, 404 `invalid_request_error`/`not_found` (the
/// caller uses `model_not_found` when it is about a model), 405
/// `invalid_request_error`/`method_not_allowed`, 413
/// `invalid_request_error`/`request_too_large`, 429
/// `rate_limit_exceeded`/`rate_limit_exceeded`, 5xx `server_error`/null; any
/// other 4xx is `invalid_request_error`/null and anything else `server_error`/null.
pub fn kind_for_status(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        400 => ("invalid_request_error", None),
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("invalid_request_error", Some("not_found")),
        405 => ("invalid_request_error", Some("method_not_allowed")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
        402..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    }
}

/// Map an upstream error response (status + raw body bytes) per docs/wire-formats.md §C.9.
///
/// The body may be `{"error":{..}}`, `[{"error":{..}}]`, other JSON, non-JSON
/// or empty. The message is Google's `error.message` passed through
/// [`scrub`]; without one it is `"upstream returned HTTP <status>"`.
///
/// * 400 with `ErrorInfo.reason == "API_KEY_INVALID"`, and 401 → 401
///   `invalid_request_error`/`invalid_api_key`.
/// * other 400 → 400 `invalid_request_error`, `param` from
///   `BadRequest.fieldViolations[0].field`.
/// * 403 → 403 `permission_error`; 404 → 404 `model_not_found`.
/// * 429 → 429 `rate_limit_exceeded`, or `insufficient_quota` with
///   `should_retry: Some(false)` when a violated `quotaId` contains `PerDay`.
/// * 499 → 500, 504 → 504 `server_error`/`timeout`, other 5xx → same status
///   `server_error`; a status outside 400..=599 becomes 502 `server_error`.
/// * `retry_after` from `RetryInfo.retryDelay` (`"26s"`, `"1.5s"` → 2).
pub fn from_gemini(status: u16, body: &[u8]) -> MappedError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(error_object);

    let raw_message = err.and_then(|e| match e {
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => e.get("message").and_then(Value::as_str),
        _ => None,
    });
    let message = match raw_message {
        Some(m) if !m.trim().is_empty() => scrub(m),
        _ => format!("upstream returned HTTP {status}"),
    };

    let details = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    let mut key_invalid = false;
    let mut field: Option<&str> = None;
    let mut per_day = false;
    let mut retry_after = None;
    for d in details {
        let ty = d.get("@type").and_then(Value::as_str).unwrap_or("");
        if ty.ends_with("google.rpc.ErrorInfo") {
            if d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID") {
                key_invalid = true;
            }
        } else if ty.ends_with("google.rpc.BadRequest") {
            if field.is_none() {
                field = d
                    .get("fieldViolations")
                    .and_then(|v| v.get(0))
                    .and_then(|v| v.get("field"))
                    .and_then(Value::as_str)
                    .filter(|f| !f.is_empty());
            }
        } else if ty.ends_with("google.rpc.QuotaFailure") {
            let violations = d.get("violations").and_then(Value::as_array);
            per_day |= violations.is_some_and(|vs| {
                vs.iter().any(|v| {
                    v.get("quotaId")
                        .and_then(Value::as_str)
                        .is_some_and(|q| q.contains("PerDay"))
                })
            });
        } else if ty.ends_with("google.rpc.RetryInfo") && retry_after.is_none() {
            retry_after = d.get("retryDelay").and_then(parse_delay);
        }
    }

    let (out_status, kind, code, param) = match status {
        400 if key_invalid => (401, "invalid_request_error", Some("invalid_api_key"), None),
        400 => (400, "invalid_request_error", None, field),
        401 => (401, "invalid_request_error", Some("invalid_api_key"), None),
        403 => (403, "permission_error", None, None),
        404 => (404, "invalid_request_error", Some("model_not_found"), None),
        429 if per_day => (429, "insufficient_quota", Some("insufficient_quota"), None),
        429 => (
            429,
            "rate_limit_exceeded",
            Some("rate_limit_exceeded"),
            None,
        ),
        499 => (500, "server_error", None, None),
        504 => (504, "server_error", Some("timeout"), None),
        s if (400..=599).contains(&s) => {
            let (kind, code) = kind_for_status(status);
            (status, kind, code, None)
        }
        _ => (502, "server_error", None, None),
    };

    MappedError {
        status: out_status,
        body: error_body(&message, kind, code, param),
        retry_after,
        should_retry: per_day.then_some(false),
    }
}

/// The Google error inside `{"error": X}` or `[{"error": X}, ..]`.
fn error_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(m) => m.get("error"),
        Value::Array(a) => a.iter().find_map(|e| e.get("error")),
        _ => None,
    }
}

/// A protobuf Duration (`"26s"`, `"1.5s"`, or `{"seconds","nanos"}`) in
/// whole seconds, rounded up; `None` for zero, negative or unreadable values.
fn parse_delay(v: &Value) -> Option<u64> {
    let secs = match v {
        Value::String(s) => {
            let s = s.trim();
            s.strip_suffix('s')
                .unwrap_or(s)
                .trim()
                .parse::<f64>()
                .ok()?
        }
        Value::Number(n) => n.as_f64()?,
        Value::Object(m) => {
            let whole = m.get("seconds").and_then(|s| match s {
                Value::String(s) => s.parse::<f64>().ok(),
                other => other.as_f64(),
            });
            let nanos = m.get("nanos").and_then(Value::as_f64).unwrap_or(0.0);
            whole.unwrap_or(0.0) + nanos / 1e9
        }
        _ => return None,
    };
    // Bound before the float → int cast; a day is far beyond any useful hint.
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return None;
    }
    Some(secs.ceil() as u64)
}

/// Remove API keys from a message before it reaches a client.
///
/// `AIza` + 35 chars of `[0-9A-Za-z_-]` (a Google API key) becomes `AIza…`
/// followed by its last 4 chars; `key=<value>` (value up to `&`, whitespace
/// or a quote) becomes `key=***` (a quoted value `key="v"` becomes `key="***"`).
pub fn scrub(message: &str) -> String {
    if !message.contains("AIza") && !message.contains("key=") {
        return message.to_owned();
    }
    let b = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    // Start of the not yet copied run; every splice point is an ASCII byte
    // (or the end), so all slices below fall on char boundaries.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"key=") {
            out.push_str(message.get(copied..i).unwrap_or(""));
            out.push_str("key=");
            let mut j = i + 4;
            match b.get(j) {
                // A quoted value: scrub up to the closing quote, keep both quotes.
                Some(&q @ (b'"' | b'\'')) => {
                    out.push(char::from(q));
                    j += 1;
                    while j < b.len() && b[j] != q {
                        j += 1;
                    }
                }
                _ => {
                    while j < b.len()
                        && !matches!(b[j], b'&' | b'"' | b'\'')
                        && !b[j].is_ascii_whitespace()
                    {
                        j += 1;
                    }
                }
            }
            out.push_str("***");
            // Non-ASCII bytes belong to the value; the scan ends on an ASCII
            // delimiter or at the end, so `j` is a char boundary.
            i = j;
            copied = j;
        } else if b[i..].starts_with(b"AIza")
            && b.len() >= i + 39
            && b[i + 4..i + 39]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        {
            out.push_str(message.get(copied..i).unwrap_or(""));
            out.push_str("AIza…");
            out.push_str(message.get(i + 35..i + 39).unwrap_or(""));
            i += 39;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(message.get(copied..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Built from two literals so that no key-shaped string sits in the source.
    const KEY: &str = concat!("AIza", "SyA1234567890abcdefghijklmnopqrs_-9");

    #[test]
    fn error_body_has_all_four_keys() {
        let b = error_body("bad", "invalid_request_error", None, None);
        assert_eq!(
            b.to_string(),
            r#"{"error":{"code":null,"message":"bad","param":null,"type":"invalid_request_error"}}"#
        );
        let b = error_body("m", "t", Some("c"), Some("p"));
        assert_eq!(b["error"]["code"], "c");
        assert_eq!(b["error"]["param"], "p");
    }

    #[test]
    fn kind_for_status_table() {
        let cases: &[(u16, &str, Option<&str>)] = &[
            (400, "invalid_request_error", None),
            (401, "invalid_request_error", Some("invalid_api_key")),
            (403, "permission_error", None),
            (404, "invalid_request_error", Some("not_found")),
            (405, "invalid_request_error", Some("method_not_allowed")),
            (413, "invalid_request_error", Some("request_too_large")),
            (429, "rate_limit_exceeded", Some("rate_limit_exceeded")),
            (422, "invalid_request_error", None),
            (500, "server_error", None),
            (502, "server_error", None),
            (503, "server_error", None),
            (504, "server_error", None),
            (200, "server_error", None),
        ];
        for &(s, kind, code) in cases {
            assert_eq!(kind_for_status(s), (kind, code), "status {s}");
        }
    }

    const KEY_INVALID: &str = r#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
  "details": [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
     "metadata": {"service": "generativelanguage.googleapis.com"}},
    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
     "message": "API key not valid. Please pass a valid API key."}]}}"#;

    const BAD_FIELD: &str = r#"{"error": {"code": 400,
  "message": "Invalid JSON payload received. Unknown name \"tempature\" at 'generation_config': Cannot find field.",
  "status": "INVALID_ARGUMENT",
  "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
    "fieldViolations": [{"field": "generation_config",
      "description": "Invalid JSON payload received."}]}]}}"#;

    const QUOTA_MINUTE: &str = r#"{"error": {"code": 429,
  "message": "You exceeded your current quota, please check your plan and billing details.",
  "status": "RESOURCE_EXHAUSTED",
  "details": [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
      {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
       "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
       "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "10"}]},
    {"@type": "type.googleapis.com/google.rpc.Help", "links": [
      {"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}]}}"#;

    const QUOTA_DAY: &str = r#"[{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
  "details": [
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"},
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
      {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}]"#;

    struct Case {
        name: &'static str,
        status: u16,
        body: &'static str,
        out: u16,
        kind: &'static str,
        code: Option<&'static str>,
        param: Option<&'static str>,
        message: &'static str,
        retry_after: Option<u64>,
        should_retry: Option<bool>,
    }

    #[test]
    fn from_gemini_table() {
        let cases = [
            Case {
                name: "api key invalid",
                status: 400,
                body: KEY_INVALID,
                out: 401,
                kind: "invalid_request_error",
                code: Some("invalid_api_key"),
                param: None,
                message: "API key not valid. Please pass a valid API key.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "bad field",
                status: 400,
                body: BAD_FIELD,
                out: 400,
                kind: "invalid_request_error",
                code: None,
                param: Some("generation_config"),
                message: "Invalid JSON payload received. Unknown name \"tempature\" at 'generation_config': Cannot find field.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "plain 400",
                status: 400,
                body: r#"{"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}"#,
                out: 400,
                kind: "invalid_request_error",
                code: None,
                param: None,
                message: "Request contains an invalid argument.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "401",
                status: 401,
                body: r#"{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}"#,
                out: 401,
                kind: "invalid_request_error",
                code: Some("invalid_api_key"),
                param: None,
                message: "Request had invalid authentication credentials.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "403",
                status: 403,
                body: r#"{"error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}}"#,
                out: 403,
                kind: "permission_error",
                code: None,
                param: None,
                message: "Method doesn't allow unregistered callers.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "404",
                status: 404,
                body: r#"{"error": {"code": 404, "message": "models/gemini-9-ultra is not found for API version v1beta", "status": "NOT_FOUND"}}"#,
                out: 404,
                kind: "invalid_request_error",
                code: Some("model_not_found"),
                param: None,
                message: "models/gemini-9-ultra is not found for API version v1beta",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "429 per minute",
                status: 429,
                body: QUOTA_MINUTE,
                out: 429,
                kind: "rate_limit_exceeded",
                code: Some("rate_limit_exceeded"),
                param: None,
                message: "You exceeded your current quota, please check your plan and billing details.",
                retry_after: Some(26),
                should_retry: None,
            },
            Case {
                name: "429 per day, array wrapped, fractional delay",
                status: 429,
                body: QUOTA_DAY,
                out: 429,
                kind: "insufficient_quota",
                code: Some("insufficient_quota"),
                param: None,
                message: "Quota exceeded",
                retry_after: Some(2),
                should_retry: Some(false),
            },
            Case {
                name: "499",
                status: 499,
                body: r#"{"error": {"code": 499, "message": "The operation was cancelled.", "status": "CANCELLED"}}"#,
                out: 500,
                kind: "server_error",
                code: None,
                param: None,
                message: "The operation was cancelled.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "500",
                status: 500,
                body: r#"{"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}"#,
                out: 500,
                kind: "server_error",
                code: None,
                param: None,
                message: "Internal error encountered.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "503",
                status: 503,
                body: r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#,
                out: 503,
                kind: "server_error",
                code: None,
                param: None,
                message: "The model is overloaded. Please try again later.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "504",
                status: 504,
                body: r#"{"error": {"code": 504, "message": "Deadline expired before operation could complete.", "status": "DEADLINE_EXCEEDED"}}"#,
                out: 504,
                kind: "server_error",
                code: Some("timeout"),
                param: None,
                message: "Deadline expired before operation could complete.",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "non JSON",
                status: 502,
                body: "<html>Bad Gateway</html>",
                out: 502,
                kind: "server_error",
                code: None,
                param: None,
                message: "upstream returned HTTP 502",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "empty 503",
                status: 503,
                body: "",
                out: 503,
                kind: "server_error",
                code: None,
                param: None,
                message: "upstream returned HTTP 503",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "error is a string",
                status: 400,
                body: r#"{"error": "bad thing"}"#,
                out: 400,
                kind: "invalid_request_error",
                code: None,
                param: None,
                message: "bad thing",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "other 4xx",
                status: 413,
                body: r#"{"error": {"message": "too big"}}"#,
                out: 413,
                kind: "invalid_request_error",
                code: Some("request_too_large"),
                param: None,
                message: "too big",
                retry_after: None,
                should_retry: None,
            },
            Case {
                name: "non-error status",
                status: 200,
                body: r#"{"error": {"message": "odd"}}"#,
                out: 502,
                kind: "server_error",
                code: None,
                param: None,
                message: "odd",
                retry_after: None,
                should_retry: None,
            },
        ];
        for c in cases {
            let m = from_gemini(c.status, c.body.as_bytes());
            assert_eq!(m.status, c.out, "{}", c.name);
            assert_eq!(
                m.body,
                error_body(c.message, c.kind, c.code, c.param),
                "{}",
                c.name
            );
            assert_eq!(m.retry_after, c.retry_after, "{}", c.name);
            assert_eq!(m.should_retry, c.should_retry, "{}", c.name);
        }
    }

    #[test]
    fn from_gemini_scrubs_keys() {
        let body = format!(
            r#"{{"error": {{"code": 400, "message": "bad key {KEY} in https://x/?key={KEY}&alt=sse", "status": "INVALID_ARGUMENT"}}}}"#
        );
        let m = from_gemini(400, body.as_bytes());
        let msg = m.body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(msg, "bad key AIza…s_-9 in https://x/?key=***&alt=sse");
    }

    #[test]
    fn retry_delay_forms() {
        let cases = [
            (r#""26s""#, Some(26)),
            (r#""1.5s""#, Some(2)),
            (r#""0.2s""#, Some(1)),
            (r#""0s""#, None),
            (r#""-3s""#, None),
            (r#""soon""#, None),
            (r#""1e300s""#, None),
            (r#"{"seconds": "3", "nanos": 500000000}"#, Some(4)),
            ("7", Some(7)),
            ("null", None),
        ];
        for (raw, want) in cases {
            let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
            assert_eq!(parse_delay(&v), want, "{raw}");
        }
    }

    #[test]
    fn scrub_table() {
        let cases = [
            ("no secrets here", "no secrets here".to_owned()),
            (KEY, "AIza…s_-9".to_owned()),
            (
                "key=abc&x=1 key=\"q\" key='r' key=end",
                "key=***&x=1 key=\"***\" key='***' key=***".to_owned(),
            ),
            ("api_key=sécret ok", "api_key=*** ok".to_owned()),
            ("AIzaShort", "AIzaShort".to_owned()),
            ("AIza", "AIza".to_owned()),
            ("key=", "key=***".to_owned()),
            ("key=\"unterminated", "key=\"***".to_owned()),
            (&*format!("é{KEY}é"), "éAIza…s_-9é".to_owned()),
            (&*format!("{KEY}MORE"), "AIza…s_-9MORE".to_owned()),
            ("ünïcode AIza ✓", "ünïcode AIza ✓".to_owned()),
        ];
        for (input, want) in cases {
            assert_eq!(scrub(input), want, "{input}");
        }
    }

    #[test]
    fn no_panic_on_odd_input() {
        let bodies: &[&[u8]] = &[
            b"",
            b"null",
            b"[]",
            b"[1,2]",
            b"{}",
            b"{\"error\":null}",
            b"{\"error\":[]}",
            b"{\"error\":{\"message\":5,\"details\":{}}}",
            b"{\"error\":{\"details\":[null,1,{\"@type\":5},{\"@type\":\"google.rpc.RetryInfo\",\"retryDelay\":[]}]}}",
            b"{\"error\":{\"details\":[{\"@type\":\"google.rpc.QuotaFailure\",\"violations\":[1,{\"quotaId\":2}]},{\"@type\":\"google.rpc.BadRequest\",\"fieldViolations\":\"x\"}]}}",
            b"\xff\xfe\x00garbage",
            b"{\"error\":{\"message\":\"key=\xc3\xa9\"}}",
        ];
        for status in [0u16, 200, 400, 401, 404, 429, 499, 500, 504, 999, u16::MAX] {
            for body in bodies {
                let m = from_gemini(status, body);
                assert!(m.body["error"]["message"].is_string());
            }
        }
        for s in [
            "",
            "key",
            "key=",
            "AIza",
            "AIza\u{1F600}",
            "kéy=é&",
            "\u{0}key=\u{0}",
        ] {
            let _ = scrub(s);
        }
    }
}
