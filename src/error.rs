//! The gateway's one error type, [`GatewayError`], and its rendering in the
//! format of the API that was called: OpenAI's error object on the OpenAI
//! routes, Google's `{"error":{"code","message","status"}}` on native ones.
//!
//! Handlers return `Result<_, GatewayError>` and use `?`; the route table
//! (`crate::router`) renders an error once, in the route's [`Api`] format.
//! A new client API adds a variant to [`Api`] and one renderer beside
//! [`GatewayError::into_openai`] and [`GatewayError::into_google`].
//!
//! Google's own error answers ([`GatewayError::Upstream`]) are passed through
//! byte for byte on the native routes (keys scrubbed) and mapped to OpenAI's
//! error object on the OpenAI routes (docs/wire-formats.md §C.9); only the
//! gateway's own conditions are rendered from the texts below.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use serde_json::json;

use crate::body::{self, Body};
use crate::keys::{Counts, Outcome};
use crate::openai::TranslateError;
use crate::openai::error::{error_body, from_gemini, kind_for_status, scrub};
use crate::upstream::Failure;

/// Which error format a route answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI's `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Google's `{"error":{"code","message","status"}}`.
    Google,
    /// Anthropic's `{"type":"error","error":{"type","message"}}` with its
    /// status codes (see [`GatewayError::into_anthropic`]).
    Anthropic,
}

/// Everything that can go wrong in a request, before it is rendered (see
/// [`GatewayError::render`]). The `Display` text is the message clients see.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    // ---- who is calling ----
    /// 401: no bearer token, or one that is not in `ALLOWED_TOKENS` (OpenAI
    /// format adds `WWW-Authenticate: Bearer`).
    #[error(
        "Missing or invalid token: send `Authorization: Bearer <token>` with one of ALLOWED_TOKENS."
    )]
    Unauthorized,
    /// 401 on a native route: no credential at all.
    #[error(
        "Missing credential: pass one of ALLOWED_TOKENS as `x-goog-api-key`, `?key=` or `Authorization: Bearer`."
    )]
    MissingCredential,
    /// 403 on a native route: a credential that is not a token (and not
    /// usable as the caller's own keys).
    #[error("The credential is not one of ALLOWED_TOKENS.")]
    UnknownCredential,
    /// 403: a valid client token on an admin-only route or action.
    #[error(
        "This token is not the admin token: admin routes take AUTH_TOKEN, or the first of ALLOWED_TOKENS when AUTH_TOKEN is unset."
    )]
    NotAdmin,
    /// 403: a `DELETE` with the shared keys by someone who is not the admin.
    #[error(
        "Only the admin token may delete shared resources (files, cached contents, tuned models, …) held by the gateway's keys: AUTH_TOKEN, or the first of ALLOWED_TOKENS when AUTH_TOKEN is unset."
    )]
    SharedDelete,

    // ---- the request ----
    /// 405 with `Allow`: the route takes other methods.
    #[error("Method not allowed; use {0}.")]
    MethodNotAllowed(&'static str),
    /// 404: no route has this path (the path is cut to 200 characters).
    #[error("Unknown route {method} {path}.")]
    UnknownRoute {
        /// The request's method.
        method: Method,
        /// The path, without the `/hf` mount.
        path: String,
    },
    /// 404 for something else that does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// 404 `model_not_found`: the model list has no such model.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// 408: the body did not arrive within `CLIENT_TIMEOUT`.
    #[error("The request body did not arrive in time.")]
    BodyTimeout,
    /// 413: the body is larger than `MAX_BODY_BYTES` (the limit).
    #[error("Request body is larger than MAX_BODY_BYTES ({0} bytes).")]
    BodyTooLarge(usize),
    /// 400: the body could not be read.
    #[error("Could not read the request body: {0}")]
    BodyRead(String),
    /// 400: an empty body where a JSON object is expected.
    #[error("The request body is empty; expected a JSON object.")]
    EmptyBody,
    /// 400: the body is not JSON.
    #[error("The request body is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// 400: the translation refused the request, naming the field.
    #[error("{}", .0.message)]
    Invalid(TranslateError),
    /// 400 `invalid_model`: a model name that is not a model id (see [`crate::model`]).
    #[error("{}", crate::model::invalid_message(.0))]
    InvalidModel(String),
    /// 400: a native path with characters that may not be forwarded.
    #[error("Invalid characters in the request path.")]
    InvalidPath,
    /// 400: `/verify` was sent more keys than `VERIFY_MAX_KEYS`.
    #[error(
        "Too many keys: one /verify call checks at most {max} (VERIFY_MAX_KEYS); {sent} were sent."
    )]
    TooManyKeys {
        /// `VERIFY_MAX_KEYS`.
        max: usize,
        /// How many were sent.
        sent: usize,
    },
    /// 431: the request head is over `MAX_HEADERS` / `MAX_HEADER_BYTES`.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 503: shutdown has begun.
    #[error("The gateway is shutting down.")]
    ShuttingDown,
    /// 503 `not_configured`: a route whose settings are not set (the
    /// message names them, e.g. `VERTEX_API_KEYS`).
    #[error("{0}")]
    NotConfigured(&'static str),
    /// 500: a handler panicked.
    #[error("Internal error in the gateway.")]
    Internal,
    /// 503 `store_unavailable`: the store (Redis) cannot be read now.
    #[error("The state store cannot be read now ({0}); try again shortly.")]
    StoreUnavailable(String),

    // ---- upstream ----
    /// Google's own error answer for the client (passed through on native routes).
    #[error("{}", .0.message())]
    Upstream(Box<UpstreamError>),
    /// 503 `no_working_key`: Google rejected every pool key tried.
    #[error(
        "Every Gemini key tried was rejected by Google ({0}). The gateway's keys need attention."
    )]
    KeysRejected(String),
    /// 400 `unsupported_region`: Google refuses calls from this server's region.
    #[error(
        "{0} Hint: Google refuses calls from this server's region; run the gateway (or its upstream) from a supported region."
    )]
    Region(String),
    /// 503 `proxies_down`: every outbound proxy (`PROXIES`) rests.
    #[error("{0}")]
    ProxiesDown(String),
    /// 502 `upstream_unreachable`: no connection to Gemini on any attempt.
    #[error("Could not reach Gemini: {0}")]
    Unreachable(String),
    /// 504 `timeout`: no response head within `TIME_OUT` (or before the
    /// request's `REQUEST_TIMEOUT`).
    #[error("Gemini did not answer within TIME_OUT (or before the request's REQUEST_TIMEOUT).")]
    Timeout,
    /// 504 `timeout`: a whole answer did not arrive within `TIME_OUT` (or
    /// before the request's `REQUEST_TIMEOUT`).
    #[error(
        "Gemini's answer did not complete within TIME_OUT (or before the request's REQUEST_TIMEOUT)."
    )]
    AnswerTimeout,
    /// 502 `upstream_error`: Gemini's answer could not be read or used.
    #[error("{0}")]
    BadAnswer(Cow<'static, str>),
    /// 429 `rate_limit_exceeded` with `Retry-After`: every key cools down;
    /// the first is back after the duration.
    #[error("{}", no_key_message(.1, Some(*.0)))]
    Cooling(Duration, Counts),
    /// 429 `rate_limit_exceeded` with `Retry-After`: no key has quota
    /// headroom for the model; the message names the limit and the wait.
    #[error("{1}")]
    Quota(Duration, String),
    /// 503 `no_available_key`: every key is disabled or resting.
    #[error("{}", no_key_message(.0, None))]
    NoKey(Counts),
    /// A stream that failed before its first event on every key tried.
    #[error("{message}")]
    StreamFailed {
        /// Status to answer.
        status: StatusCode,
        /// OpenAI `code`.
        code: &'static str,
        /// What happened.
        message: &'static str,
    },
}

/// Google's error answer to a call (status, headers, body as received),
/// with the gateway's hint when `BASE_URL` may be at fault.
#[derive(Debug)]
pub struct UpstreamError {
    /// Google's status.
    pub status: StatusCode,
    /// Google's headers.
    pub headers: HeaderMap,
    /// Google's body (bounded).
    pub body: Bytes,
    /// Appended to the message (`BASE_URL` names no API version), if any.
    pub hint: Option<&'static str>,
}

impl UpstreamError {
    /// The message: Google's `error.message` (keys scrubbed), and the hint.
    pub fn message(&self) -> String {
        upstream_message(self.status.as_u16(), &self.body, self.hint)
    }

    /// OpenAI's view: the mapped error object, `Retry-After` and
    /// `x-should-retry` from Google's details.
    fn into_openai(self) -> Response<Body> {
        let mut mapped = from_gemini(self.status.as_u16(), &self.body);
        if let Some(h) = self.hint {
            let m = format!(
                "{} {h}",
                mapped.body["error"]["message"].as_str().unwrap_or("")
            );
            mapped.body["error"]["message"] = m.into();
        }
        let status = StatusCode::from_u16(mapped.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut res = body::json(status, &mapped.body);
        if let Some(s) = mapped.retry_after {
            set_retry_after(&mut res, Duration::from_secs(s));
        }
        if let Some(r) = mapped.should_retry {
            res.headers_mut().insert(
                HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static(if r { "true" } else { "false" }),
            );
        }
        res
    }

    /// Google's view: the answer as it came (keys scrubbed, hop-by-hop
    /// headers dropped); with a hint, a 404 in Google's envelope instead.
    fn into_google(self) -> Response<Body> {
        if self.hint.is_some() {
            let status = StatusCode::NOT_FOUND;
            return body::json(status, &google_error(status, &self.message()));
        }
        let scrubbed = scrub(&String::from_utf8_lossy(&self.body));
        let mut res = Response::new(body::full(scrubbed));
        *res.status_mut() = self.status;
        *res.headers_mut() = crate::upstream::response_headers(self.headers);
        res.headers_mut().remove(header::CONTENT_LENGTH);
        res.headers_mut().remove(header::CONTENT_ENCODING);
        res
    }
}

impl GatewayError {
    /// A failed upstream call as an error. A rejected *pool* key is the
    /// gateway's problem (503); a rejected key the caller brought
    /// (`own_keys`) is the caller's, so Google's answer is passed on. `hint`
    /// is added to a Google answer (see [`UpstreamError::hint`]).
    pub fn from_failure(f: Failure, own_keys: bool, hint: Option<&'static str>) -> GatewayError {
        match f {
            Failure::Upstream {
                status,
                headers,
                body,
                outcome,
                ..
            } => match outcome {
                Outcome::KeyInvalid(m) if !own_keys => GatewayError::KeysRejected(m),
                Outcome::Region(m) => GatewayError::Region(m),
                _ => GatewayError::Upstream(Box::new(UpstreamError {
                    status,
                    headers,
                    body,
                    hint,
                })),
            },
            Failure::Network(m) => GatewayError::Unreachable(m),
            Failure::Timeout => GatewayError::Timeout,
            Failure::Cooling(d, c) => GatewayError::Cooling(d, c),
            Failure::Unavailable(c) => GatewayError::NoKey(c),
            Failure::Quota(d, m) => GatewayError::Quota(d, m),
            Failure::ProxiesDown(m) => GatewayError::ProxiesDown(m),
        }
    }

    /// The HTTP status of the answer. For [`GatewayError::Upstream`] it is
    /// Google's (the OpenAI rendering maps it, see `from_gemini`).
    pub fn status(&self) -> StatusCode {
        use GatewayError as E;
        match self {
            E::Unauthorized | E::MissingCredential => StatusCode::UNAUTHORIZED,
            E::UnknownCredential | E::NotAdmin | E::SharedDelete => StatusCode::FORBIDDEN,
            E::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            E::UnknownRoute { .. } | E::NotFound(_) | E::ModelNotFound(_) => StatusCode::NOT_FOUND,
            E::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            E::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            E::BodyRead(_)
            | E::EmptyBody
            | E::InvalidJson(_)
            | E::Invalid(_)
            | E::InvalidModel(_)
            | E::InvalidPath
            | E::TooManyKeys { .. }
            | E::Region(_) => StatusCode::BAD_REQUEST,
            E::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            E::ShuttingDown
            | E::KeysRejected(_)
            | E::NoKey(_)
            | E::StoreUnavailable(_)
            | E::ProxiesDown(_)
            | E::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            E::Upstream(u) if u.hint.is_some() => StatusCode::NOT_FOUND,
            E::Upstream(u) => u.status,
            E::Unreachable(_) | E::BadAnswer(_) => StatusCode::BAD_GATEWAY,
            E::Timeout | E::AnswerTimeout => StatusCode::GATEWAY_TIMEOUT,
            E::Cooling(..) | E::Quota(..) => StatusCode::TOO_MANY_REQUESTS,
            E::StreamFailed { status, .. } => *status,
        }
    }

    /// OpenAI's `code`, where it is not the status's usual one.
    fn code(&self) -> Option<&'static str> {
        use GatewayError as E;
        Some(match self {
            E::InvalidModel(_) => "invalid_model",
            E::ModelNotFound(_) => "model_not_found",
            E::KeysRejected(_) => "no_working_key",
            E::Region(_) => "unsupported_region",
            E::Unreachable(_) => "upstream_unreachable",
            E::Timeout | E::AnswerTimeout => "timeout",
            E::BadAnswer(_) => "upstream_error",
            E::Cooling(..) | E::Quota(..) => "rate_limit_exceeded",
            E::NoKey(_) => "no_available_key",
            E::StoreUnavailable(_) => "store_unavailable",
            E::ProxiesDown(_) => "proxies_down",
            E::NotConfigured(_) => "not_configured",
            E::StreamFailed { code, .. } => code,
            _ => return None,
        })
    }

    /// OpenAI's `param`: the request field at fault.
    fn param(&self) -> Option<&str> {
        match self {
            GatewayError::EmptyBody | GatewayError::InvalidJson(_) => Some("body"),
            GatewayError::Invalid(e) => e.param.as_deref(),
            GatewayError::InvalidModel(_) | GatewayError::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    /// The answer in `api`'s format.
    pub fn render(self, api: Api) -> Response<Body> {
        match api {
            Api::OpenAi => self.into_openai(),
            Api::Google => self.into_google(),
            Api::Anthropic => self.into_anthropic(),
        }
    }

    /// Anthropic's error envelope `{"type":"error","error":{"type","message"}}`
    /// with Anthropic's status codes: 400 `invalid_request_error`, 401
    /// `authentication_error`, 403 `permission_error`, 404 `not_found_error`,
    /// 413 `request_too_large`, 429 `rate_limit_error` (with `retry-after`),
    /// 500 `api_error`, 503 → 529 `overloaded_error`, 504 `timeout_error`.
    /// Google's own answers are mapped the same way from their status.
    pub fn into_anthropic(self) -> Response<Body> {
        if let GatewayError::Upstream(u) = self {
            let mapped = from_gemini(u.status.as_u16(), &u.body);
            let mut message = mapped.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if let Some(h) = u.hint {
                message = format!("{message} {h}");
            }
            let (status, kind) = anthropic_kind(mapped.status);
            let mut res = body::json(status, &crate::anthropic::error_body(kind, &message));
            if let Some(s) = mapped.retry_after {
                set_retry_after(&mut res, Duration::from_secs(s));
            }
            if let Some(r) = mapped.should_retry {
                res.headers_mut().insert(
                    HeaderName::from_static("x-should-retry"),
                    HeaderValue::from_static(if r { "true" } else { "false" }),
                );
            }
            return res;
        }
        let message = match &self {
            // Anthropic's messages name the field first (`messages.0.content: …`).
            GatewayError::Invalid(TranslateError {
                message,
                param: Some(param),
            }) if !message.starts_with(param.as_str()) => format!("{param}: {message}"),
            GatewayError::Unauthorized => {
                "Missing or invalid API key: send `x-api-key: <token>` (or `Authorization: Bearer <token>`) with one of ALLOWED_TOKENS.".to_string()
            }
            _ => self.to_string(),
        };
        let (status, kind) = anthropic_kind(self.status().as_u16());
        let mut res = body::json(status, &crate::anthropic::error_body(kind, &message));
        self.add_headers(&mut res);
        res
    }

    /// OpenAI's error object, with `WWW-Authenticate`, `Allow` and
    /// `Retry-After` where they belong.
    pub fn into_openai(self) -> Response<Body> {
        if let GatewayError::Upstream(u) = self {
            return u.into_openai();
        }
        let status = self.status();
        let (kind, default_code) = kind_for_status(status.as_u16());
        let body = error_body(
            &self.to_string(),
            kind,
            self.code().or(default_code),
            self.param(),
        );
        let mut res = body::json(status, &body);
        if let GatewayError::Unauthorized = self {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        self.add_headers(&mut res);
        res
    }

    /// Google's error envelope; Google's own answers pass through as they came.
    pub fn into_google(self) -> Response<Body> {
        if let GatewayError::Upstream(u) = self {
            return u.into_google();
        }
        let status = self.status();
        let mut res = body::json(status, &google_error(status, &self.to_string()));
        self.add_headers(&mut res);
        res
    }

    /// The headers every format carries: `Allow` on a 405, `Retry-After` on
    /// a cooling pool.
    fn add_headers(&self, res: &mut Response<Body>) {
        match self {
            GatewayError::MethodNotAllowed(allow) => {
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            GatewayError::Cooling(d, _) | GatewayError::Quota(d, _) => set_retry_after(res, *d),
            _ => {}
        }
    }
}

/// The message of Google's error answer (`error.message`, keys scrubbed, or
/// "upstream returned HTTP …"), with `hint` appended.
pub fn upstream_message(status: u16, body: &[u8], hint: Option<&str>) -> String {
    let mapped = from_gemini(status, body);
    let message = mapped.body["error"]["message"].as_str().unwrap_or("");
    match hint {
        Some(h) => format!("{message} {h}"),
        None => message.to_string(),
    }
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

/// Anthropic's status and error `type` for an HTTP status (see
/// [`crate::anthropic::error_kind`]).
fn anthropic_kind(status: u16) -> (StatusCode, &'static str) {
    let (code, kind) = crate::anthropic::error_kind(status);
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        kind,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(res: Response<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let (p, b) = res.into_parts();
        let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        (p.status, p.headers, bytes)
    }

    fn json(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice(b).unwrap_or_default()
    }

    fn counts() -> Counts {
        Counts {
            active: 0,
            cooling: 2,
            resting: 1,
            disabled: 0,
        }
    }

    #[tokio::test]
    async fn one_error_two_formats() {
        let cases = [
            (GatewayError::Unauthorized, 401),
            (GatewayError::NotAdmin, 403),
            (GatewayError::MethodNotAllowed("POST"), 405),
            (GatewayError::BodyTooLarge(10), 413),
            (GatewayError::InvalidModel("a/b".into()), 400),
            (GatewayError::Region("No.".into()), 400),
            (GatewayError::KeysRejected("bad".into()), 503),
            (GatewayError::Unreachable("refused".into()), 502),
            (GatewayError::Timeout, 504),
            (GatewayError::NoKey(counts()), 503),
        ];
        for (e, status) in cases {
            let message = e.to_string();
            let openai = parts(GatewayError::render(clone_of(&e), Api::OpenAi)).await;
            let google = parts(e.render(Api::Google)).await;
            assert_eq!(openai.0.as_u16(), status, "{message}");
            assert_eq!(google.0.as_u16(), status, "{message}");
            assert_eq!(json(&openai.2)["error"]["message"], message.as_str());
            assert_eq!(json(&google.2)["error"]["message"], message.as_str());
            assert_eq!(json(&google.2)["error"]["code"], status);
            assert!(json(&openai.2)["error"]["type"].is_string());
        }
    }

    /// The cases above, built again (the error type holds bodies and is not `Clone`).
    fn clone_of(e: &GatewayError) -> GatewayError {
        use GatewayError as E;
        match e {
            E::Unauthorized => E::Unauthorized,
            E::NotAdmin => E::NotAdmin,
            E::MethodNotAllowed(a) => E::MethodNotAllowed(a),
            E::BodyTooLarge(n) => E::BodyTooLarge(*n),
            E::InvalidModel(m) => E::InvalidModel(m.clone()),
            E::Region(m) => E::Region(m.clone()),
            E::KeysRejected(m) => E::KeysRejected(m.clone()),
            E::Unreachable(m) => E::Unreachable(m.clone()),
            E::Timeout => E::Timeout,
            E::NoKey(c) => E::NoKey(*c),
            _ => E::Internal,
        }
    }

    #[tokio::test]
    async fn headers_follow_the_error() {
        let (_, h, b) = parts(GatewayError::Unauthorized.into_openai()).await;
        assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(json(&b)["error"]["code"], "invalid_api_key");
        let (_, h, _) = parts(GatewayError::Unauthorized.into_google()).await;
        assert!(h.get(header::WWW_AUTHENTICATE).is_none());
        for api in [Api::OpenAi, Api::Google] {
            let (_, h, _) = parts(GatewayError::MethodNotAllowed("GET, HEAD").render(api)).await;
            assert_eq!(h[header::ALLOW], "GET, HEAD");
            let cooling = GatewayError::Cooling(Duration::from_millis(1500), counts());
            let (status, h, b) = parts(cooling.render(api)).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(h[header::RETRY_AFTER], "2");
            assert_eq!(h["retry-after-ms"], "1500");
            let m = json(&b)["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(m.contains("Retry in 2 s."), "{m}");
        }
        let (_, _, b) =
            parts(GatewayError::Cooling(Duration::from_secs(3), counts()).into_openai()).await;
        assert_eq!(json(&b)["error"]["code"], "rate_limit_exceeded");
    }

    fn google_answer(status: u16, body: &str, hint: Option<&'static str>) -> GatewayError {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-goog-api-key", HeaderValue::from_static("secret"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        GatewayError::from_failure(
            Failure::Upstream {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                headers,
                body: Bytes::from(body.to_string()),
                outcome: Outcome::Client,
                key: String::new(),
            },
            false,
            hint,
        )
    }

    #[tokio::test]
    async fn google_answers_pass_through_natively_and_map_for_openai() {
        let body = r#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"26s"}]}}"#;
        let (status, h, b) = parts(google_answer(429, body, None).into_google()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(&b[..], body.as_bytes(), "byte for byte");
        assert!(h.get("x-goog-api-key").is_none());
        assert!(h.get(header::CONTENT_LENGTH).is_none());
        let (status, h, b) = parts(google_answer(429, body, None).into_openai()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h[header::RETRY_AFTER], "26");
        assert_eq!(json(&b)["error"]["message"], "Quota exceeded.");
        assert_eq!(json(&b)["error"]["code"], "rate_limit_exceeded");

        // With the BASE_URL hint, both formats say it.
        let hint = Some("(check BASE_URL.)");
        let body = r#"{"error":{"code":404,"message":"Not found.","status":"NOT_FOUND"}}"#;
        for api in [Api::OpenAi, Api::Google] {
            let (status, _, b) = parts(google_answer(404, body, hint).render(api)).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(json(&b)["error"]["message"], "Not found. (check BASE_URL.)");
        }
    }

    #[tokio::test]
    async fn anthropic_format_and_status_codes() {
        let cases = [
            (GatewayError::Unauthorized, 401, "authentication_error"),
            (GatewayError::NotAdmin, 403, "permission_error"),
            (
                GatewayError::ModelNotFound("m".into()),
                404,
                "not_found_error",
            ),
            (GatewayError::BodyTooLarge(10), 413, "request_too_large"),
            (GatewayError::EmptyBody, 400, "invalid_request_error"),
            (GatewayError::NoKey(counts()), 529, "overloaded_error"),
            (GatewayError::Internal, 500, "api_error"),
            (GatewayError::Timeout, 504, "timeout_error"),
        ];
        for (e, status, kind) in cases {
            let (s, _, b) = parts(e.render(Api::Anthropic)).await;
            assert_eq!(s.as_u16(), status, "{kind}");
            let v = json(&b);
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind);
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        let cooling = GatewayError::Cooling(Duration::from_millis(1500), counts());
        let (s, h, b) = parts(cooling.into_anthropic()).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h[header::RETRY_AFTER], "2");
        assert_eq!(json(&b)["error"]["type"], "rate_limit_error");
        let body = r#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"26s"}]}}"#;
        let (s, h, b) = parts(google_answer(429, body, None).into_anthropic()).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h[header::RETRY_AFTER], "26");
        assert_eq!(json(&b)["error"]["message"], "Quota exceeded.");
        let body = r#"{"error":{"code":503,"message":"Overloaded.","status":"UNAVAILABLE"}}"#;
        let (s, _, b) = parts(google_answer(503, body, None).into_anthropic()).await;
        assert_eq!(s.as_u16(), 529);
        assert_eq!(json(&b)["error"]["type"], "overloaded_error");
    }

    #[test]
    fn rejected_keys_are_the_callers_when_they_brought_them() {
        let rejected = || Failure::Upstream {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
            outcome: Outcome::KeyInvalid("API key not valid".into()),
            key: String::new(),
        };
        let pool = GatewayError::from_failure(rejected(), false, None);
        assert_eq!(pool.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            pool.to_string()
                .contains("The gateway's keys need attention")
        );
        let own = GatewayError::from_failure(rejected(), true, None);
        assert!(matches!(own, GatewayError::Upstream(_)));
        assert_eq!(own.status(), StatusCode::BAD_REQUEST);
    }
}
