//! Google's error envelope (`{"error": {"code", "message", "status",
//! "details"}}`, docs/wire-formats.md §A.6) and the errors the fake sends: per key
//! behavior, per `[[status=NNN]]`, bad requests, unknown models and routes.

use http::Method;

use crate::json::Json;

// ---------------------------------------------------------------------------
// Errors (docs/wire-formats.md §A.6)
// ---------------------------------------------------------------------------

/// A Google error: HTTP status plus the `{"error": {...}}` body.
pub(crate) struct GoogleError {
    pub(crate) code: u16,
    pub(crate) body: Json,
}

pub(crate) const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";
pub(crate) const LOCALIZED: &str = "type.googleapis.com/google.rpc.LocalizedMessage";
pub(crate) const SERVICE: &str = "generativelanguage.googleapis.com";

pub(crate) fn google_error(
    code: u16,
    status: &'static str,
    message: impl Into<String>,
    details: Vec<Json>,
) -> GoogleError {
    let mut e = Json::obj([
        ("code", Json::Int(code as i64)),
        ("message", Json::s(message.into())),
        ("status", Json::s(status)),
    ]);
    if !details.is_empty() {
        e.push("details", Json::Arr(details));
    }
    GoogleError {
        code,
        body: Json::obj([("error", e)]),
    }
}

pub(crate) fn error_info(reason: &'static str, extra_meta: Option<(&'static str, String)>) -> Json {
    let mut meta = Json::obj([("service", Json::s(SERVICE))]);
    if let Some((k, v)) = extra_meta {
        meta.push(k, Json::s(v));
    }
    Json::obj([
        ("@type", Json::s(ERROR_INFO)),
        ("reason", Json::s(reason)),
        ("domain", Json::s("googleapis.com")),
        ("metadata", meta),
    ])
}

pub(crate) fn localized(msg: &str) -> Json {
    Json::obj([
        ("@type", Json::s(LOCALIZED)),
        ("locale", Json::s("en-US")),
        ("message", Json::s(msg.to_string())),
    ])
}

pub(crate) fn err_no_key() -> GoogleError {
    google_error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        vec![],
    )
}

pub(crate) fn err_invalid_key() -> GoogleError {
    let m = "API key not valid. Please pass a valid API key.";
    google_error(
        400,
        "INVALID_ARGUMENT",
        m,
        vec![error_info("API_KEY_INVALID", None), localized(m)],
    )
}

pub(crate) fn err_expired() -> GoogleError {
    let m = "API key expired. Please renew the API key.";
    google_error(
        400,
        "INVALID_ARGUMENT",
        m,
        vec![error_info("API_KEY_EXPIRED", None), localized(m)],
    )
}

pub(crate) fn err_suspended(key: &str) -> GoogleError {
    let m = format!("Permission denied: Consumer 'api_key:{key}' has been suspended.");
    google_error(
        403,
        "PERMISSION_DENIED",
        m.clone(),
        vec![
            error_info(
                "CONSUMER_SUSPENDED",
                Some(("consumer", "projects/123456789012".to_string())),
            ),
            localized(&m),
        ],
    )
}

pub(crate) fn err_quota(model: &str, retry_secs: Option<u64>) -> GoogleError {
    match retry_secs {
        Some(_) => quota_error(model, MINUTE_QUOTA, "10", retry_secs),
        None => quota_error(model, DAY_QUOTA, "250", None),
    }
}

const MINUTE_QUOTA: &str = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier";
const DAY_QUOTA: &str = "GenerateRequestsPerDayPerProjectPerModel-FreeTier";

/// The 429 for a call over a limit the fake enforces (see `quota`).
pub(crate) fn err_quota_violation(model: &str, v: &crate::quota::Violation) -> GoogleError {
    use crate::quota::Violation;
    match v {
        Violation::Minute { limit, retry_secs } => {
            quota_error(model, MINUTE_QUOTA, &limit.to_string(), Some(*retry_secs))
        }
        Violation::Day { limit } => quota_error(model, DAY_QUOTA, &limit.to_string(), None),
    }
}

/// Google's 429 naming `quota_id` with `limit` for `model`; `RetryInfo`
/// when `retry_secs` is given.
fn quota_error(
    model: &str,
    quota_id: &'static str,
    limit: &str,
    retry_secs: Option<u64>,
) -> GoogleError {
    let metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
    let mut msg = format!(
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}"
    );
    if let Some(s) = retry_secs {
        msg.push_str(&format!("\nPlease retry in {s}s."));
    }
    let mut details = vec![
        Json::obj([
            (
                "@type",
                Json::s("type.googleapis.com/google.rpc.QuotaFailure"),
            ),
            (
                "violations",
                Json::Arr(vec![Json::obj([
                    ("quotaMetric", Json::s(metric)),
                    ("quotaId", Json::s(quota_id)),
                    (
                        "quotaDimensions",
                        Json::obj([
                            ("location", Json::s("global")),
                            ("model", Json::s(model.to_string())),
                        ]),
                    ),
                    ("quotaValue", Json::s(limit.to_string())),
                ])]),
            ),
        ]),
        Json::obj([
            ("@type", Json::s("type.googleapis.com/google.rpc.Help")),
            (
                "links",
                Json::Arr(vec![Json::obj([
                    ("description", Json::s("Learn more about Gemini API quotas")),
                    (
                        "url",
                        Json::s("https://ai.google.dev/gemini-api/docs/rate-limits"),
                    ),
                ])]),
            ),
        ]),
    ];
    if let Some(s) = retry_secs {
        details.push(Json::obj([
            ("@type", Json::s("type.googleapis.com/google.rpc.RetryInfo")),
            ("retryDelay", Json::s(format!("{s}s"))),
        ]));
    }
    google_error(429, "RESOURCE_EXHAUSTED", msg, details)
}

pub(crate) fn err_overloaded() -> GoogleError {
    google_error(
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
        vec![],
    )
}

pub(crate) fn err_internal() -> GoogleError {
    google_error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        vec![],
    )
}

pub(crate) fn err_region() -> GoogleError {
    google_error(
        400,
        "FAILED_PRECONDITION",
        "User location is not supported for the API use.",
        vec![],
    )
}

pub(crate) fn err_model_not_found(model: &str, version: &str, method: &str) -> GoogleError {
    google_error(
        404,
        "NOT_FOUND",
        format!(
            "models/{model} is not found for API version {version}, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
        ),
        vec![],
    )
}

pub(crate) fn err_invalid_json(detail: &str) -> GoogleError {
    let m = format!("Invalid JSON payload received. {detail}");
    google_error(
        400,
        "INVALID_ARGUMENT",
        m.clone(),
        vec![Json::obj([
            (
                "@type",
                Json::s("type.googleapis.com/google.rpc.BadRequest"),
            ),
            (
                "fieldViolations",
                Json::Arr(vec![Json::obj([("description", Json::s(m))])]),
            ),
        ])],
    )
}

pub(crate) fn err_bad(message: impl Into<String>) -> GoogleError {
    google_error(400, "INVALID_ARGUMENT", message, vec![])
}

pub(crate) fn err_route_not_found() -> GoogleError {
    google_error(404, "NOT_FOUND", "Method not found.", vec![])
}

pub(crate) fn err_method(method: &Method, path: &str) -> GoogleError {
    google_error(
        405,
        "UNIMPLEMENTED",
        format!("Method not allowed: {method} {path}"),
        vec![],
    )
}

/// The error body Google sends for `[[status=NNN]]`.
pub(crate) fn err_for_status(code: u16, model: &str) -> GoogleError {
    match code {
        400 => err_bad("Request contains an invalid argument."),
        401 => google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            vec![],
        ),
        403 => google_error(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            vec![],
        ),
        404 => err_model_not_found(model, "v1beta", "generateContent"),
        408 => google_error(408, "DEADLINE_EXCEEDED", "Request timed out.", vec![]),
        429 => err_quota(model, Some(2)),
        499 => google_error(499, "CANCELLED", "The operation was cancelled.", vec![]),
        500 => err_internal(),
        502 => google_error(502, "UNAVAILABLE", "Bad Gateway", vec![]),
        503 => err_overloaded(),
        504 => google_error(
            504,
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
            vec![],
        ),
        c => google_error(c, "UNKNOWN", format!("Simulated error {c}."), vec![]),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[tokio::test]
    async fn key_behaviors_return_google_errors() {
        let fake = Fake::start().await.unwrap();
        let cases: &[(&str, u16, &str, Option<&str>)] = &[
            ("bad-1", 400, "INVALID_ARGUMENT", Some("API_KEY_INVALID")),
            (
                "expired-1",
                400,
                "INVALID_ARGUMENT",
                Some("API_KEY_EXPIRED"),
            ),
            (
                "suspended-1",
                403,
                "PERMISSION_DENIED",
                Some("CONSUMER_SUSPENDED"),
            ),
            ("quota-1", 429, "RESOURCE_EXHAUSTED", None),
            ("quota-day-1", 429, "RESOURCE_EXHAUSTED", None),
            ("overload-1", 503, "UNAVAILABLE", None),
            ("internal-1", 500, "INTERNAL", None),
            ("region-1", 400, "FAILED_PRECONDITION", None),
        ];
        for (key, code, status, reason) in cases {
            let r = post(&fake, GEN, key, &user("hi")).await;
            assert_eq!(r.status, *code, "{key}");
            assert_eq!(r.ct(), "application/json; charset=UTF-8");
            assert!(r.text().starts_with("{\n  \"error\": {\n    \"code\": "));
            let e = &r.json()["error"];
            assert_eq!(e["code"], *code);
            assert_eq!(e["status"], *status);
            if let Some(reason) = reason {
                assert_eq!(e["details"][0]["reason"], *reason, "{key}");
            }
        }
        let q = post(&fake, GEN, "quota-1", &user("hi")).await.json();
        let details = q["error"]["details"].as_array().unwrap();
        assert_eq!(
            details[0]["violations"][0]["quotaId"],
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        );
        assert!(details.iter().any(|d| d["retryDelay"] == "2s"));
        let qd = post(&fake, GEN, "quota-day-1", &user("hi")).await.json();
        let details = qd["error"]["details"].as_array().unwrap();
        assert_eq!(
            details[0]["violations"][0]["quotaId"],
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        );
        assert!(!details.iter().any(|d| d.get("retryDelay").is_some()));
        let s = post(&fake, GEN, "suspended-1", &user("hi")).await.json();
        assert_eq!(
            s["error"]["message"],
            "Permission denied: Consumer 'api_key:suspended-1' has been suspended."
        );
        let ex = post(&fake, GEN, "expired-1", &user("hi")).await.json();
        assert_eq!(
            ex["error"]["message"],
            "API key expired. Please renew the API key."
        );
        // Stream without alt=sse: error wrapped in a one-element array.
        let w = post(&fake, ARR, "bad-2", &user("hi")).await;
        assert_eq!(w.status, 400);
        assert!(w.text().starts_with("[{\n  \"error\": {"));
        assert!(w.text().ends_with("}\n]"));
        assert_eq!(
            w.json()[0]["error"]["details"][0]["reason"],
            "API_KEY_INVALID"
        );
        // alt=sse: plain error body.
        let p = post(&fake, SSE, "overload-2", &user("hi")).await;
        assert_eq!(p.status, 503);
        assert_eq!(
            p.json()["error"]["message"],
            "The model is overloaded. Please try again later."
        );
        // Explicit behavior beats the prefix.
        fake.state.set_key("bad-but-ok", KeyBehavior::Ok);
        assert_eq!(
            post(&fake, GEN, "bad-but-ok", &user("hi")).await.status,
            200
        );
        fake.state
            .set_key("q7", KeyBehavior::Quota { retry_secs: 7 });
        let q7 = post(&fake, GEN, "q7", &user("hi")).await.json();
        assert!(
            q7["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["retryDelay"] == "7s")
        );
        // Model GETs honour behaviors too.
        let g = send(fake.addr, "GET", "/v1beta/models?key=internal-x", &[], "").await;
        assert_eq!(g.status, 500);
    }

    #[tokio::test]
    async fn no_key_is_403_and_query_key_works() {
        let fake = Fake::start().await.unwrap();
        let r = send(fake.addr, "POST", GEN, &[], &user("hi").to_string()).await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.json()["error"]["message"],
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
        );
        assert_eq!(r.json()["error"]["status"], "PERMISSION_DENIED");
        let q = send(
            fake.addr,
            "POST",
            &format!("{GEN}?key=qk"),
            &[("authorization", "Bearer tok")],
            &user("hi").to_string(),
        )
        .await;
        assert_eq!(q.status, 200);
        let reqs = fake.state.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].api_key, None);
        assert_eq!(reqs[1].api_key.as_deref(), Some("qk"));
        assert_eq!(reqs[1].authorization.as_deref(), Some("Bearer tok"));
        assert_eq!(reqs[1].query.as_deref(), Some("key=qk"));
        assert_eq!(reqs[1].path, GEN);
        assert_eq!(reqs[1].method, "POST");
        assert_eq!(reqs[1].body, Bytes::from(user("hi").to_string()));
        assert!(
            reqs[1]
                .headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer tok")
        );
        assert_eq!(fake.state.count_for_key("qk"), 1);
        post(&fake, GEN, "qk", &user("again")).await;
        send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-flash?key=qk",
            &[],
            "",
        )
        .await;
        assert_eq!(fake.state.count_for_key("qk"), 3);
        assert_eq!(fake.state.count_for_key("other"), 0);
        fake.state.clear();
        assert!(fake.state.requests().is_empty());
        assert_eq!(fake.state.count_for_key("qk"), 0);
    }
}
