//! Files, cached contents and batches on the native routes, pinned to the
//! key that created them (see `crate::affinity`): `files/…`,
//! `cachedContents/…` and `batches/…` paths, creates that yield such a name
//! (recorded from the answer), generate bodies naming one (`fileData.fileUri`,
//! `cachedContent`, a batch's `inputConfig.fileName`), and the merged lists
//! (paged in [`super::pages`]).
//!
//! With `FILES_USER_ISOLATION` a client token sees and uses only what it
//! created (anything else is a 404, as if it did not exist); the admin token
//! sees everything. A resource whose key is disabled or removed gets a clear
//! 503 naming the masked key, never a 403 from another key.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use hyper::body::Incoming;
use serde_json::Value;

pub use super::owners::{
    Caller, call_on, not_found, owner_index, pin_body, pin_names, record, referenced, refusal,
};
use crate::affinity::resource_name;
use crate::answer::{ANSWER_LIMIT, LogInfo, upstream_failed};
use crate::app::App;
use crate::auth::Keys;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::upstream::{Answer, Auth, Call, response_headers};

/// Whether a native call is one [`resource`] handles: a path under
/// `/files`, `/cachedContents` or `/batches`, or a batch create.
pub fn is_resource(rest: &str) -> bool {
    ["/files", "/cachedContents", "/batches"].iter().any(|p| {
        rest.strip_prefix(p)
            .is_some_and(|after| after.is_empty() || after.starts_with(['/', ':']))
    }) || rest.ends_with(":batchGenerateContent")
        || rest.ends_with(":asyncBatchEmbedContent")
}

/// The list member of a list answer for a path (`/files` → `files`).
fn list_member(rest: &str) -> Option<&'static str> {
    match rest {
        "/files" => Some("files"),
        "/cachedContents" => Some("cachedContents"),
        "/batches" => Some("operations"),
        _ => None,
    }
}

/// A files / caches / batches call (see the module doc).
pub async fn resource(
    app: Arc<App>,
    req: Request<Incoming>,
    version: &'static str,
    rest: &str,
    keys: Keys,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let Keys::Server = keys else {
        // The caller's own keys (or the backup pool): plain pass-through.
        return super::pass(app, req, version, rest, keys, log).await;
    };
    let caller = Caller::of(&app, &req);
    let method = req.method().clone();
    let mut call = super::prepare(&app, req, version, rest, log).await?;
    call.headers.retain(|(k, _)| k != header::ACCEPT_ENCODING);
    let named = resource_name(rest);
    let mut index = None;
    if let Some(name) = &named {
        super::owners::learn(&app, std::slice::from_ref(name)).await;
        match app.affinity.owner(name) {
            Some(o) if !caller.sees(&o) => return Err(not_found(name)),
            Some(o) => index = Some(owner_index(&app, name, &o)?),
            None if caller.filter().is_some() => return Err(not_found(name)),
            None => {}
        }
    } else if method == Method::GET
        && let Some(member) = list_member(rest)
    {
        return super::pages::list(&app, &caller, &call.path, &call.headers, member, log).await;
    }
    if index.is_none() {
        index = pin_body(&app, &caller, &call.body).await?;
    }
    let up = Call {
        method: call.method.clone(),
        path: call.path.clone(),
        body: call.body.clone(),
        model: &call.model,
        auth: Auth::GoogHeader,
        headers: call.headers.clone(),
        route: log.route,
    };
    let answer = call_on(&app, &app.pool, &up, index)
        .await
        .map_err(|f| upstream_failed(&app, f, &call.model, false))?;
    let key = answer.key;
    log.key = app.pool.masked(key).to_string();
    let (parts, bytes) = read_answer(&app, answer).await?;
    if parts.status.is_success() && remember(&app, &caller, key, &method, named.as_deref(), &bytes)
    {
        super::owners::written(&app).await;
    }
    let mut res = Response::new(body::full(bytes));
    *res.status_mut() = parts.status;
    *res.headers_mut() = response_headers(parts.headers);
    res.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(res)
}

/// Read a whole (small) answer within `TIME_OUT`, the key masked.
pub(super) async fn read_answer(
    app: &App,
    answer: Answer,
) -> Result<(http::response::Parts, Bytes), GatewayError> {
    let (parts, incoming) = answer.response.into_parts();
    let read = tokio::time::timeout(
        app.upstream.timeout(),
        body::read_limited(incoming, ANSWER_LIMIT),
    );
    match read.await {
        Ok(Ok(b)) => Ok((parts, crate::upstream::redact(b, app.pool.key(answer.key)))),
        Err(_) => Err(GatewayError::AnswerTimeout),
        Ok(Err(_)) => Err(GatewayError::BadAnswer(
            "Could not read Gemini's answer.".into(),
        )),
    }
}

/// After a successful call: record what a create made, forget what a delete
/// removed, move a cache's expiry on an update. Whether a record changed.
fn remember(
    app: &App,
    caller: &Caller,
    key: usize,
    method: &Method,
    named: Option<&str>,
    answer: &[u8],
) -> bool {
    if *method == Method::DELETE {
        if let Some(n) = named {
            app.affinity.remove(n);
            app.store.record(crate::store::Change::Affinity {
                name: n.to_string(),
                owner: None,
            });
        }
        return named.is_some();
    }
    if *method != Method::POST && *method != Method::PATCH {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return false;
    };
    let made = v
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| v.pointer("/file/name").and_then(Value::as_str))
        .and_then(resource_name);
    let Some(made) = made else { return false };
    // The creating token stays the owner when a cache is updated.
    let token = match app.affinity.owner(&made) {
        Some(o) if *method == Method::PATCH => o.token,
        _ => caller.tag().to_string(),
    };
    record(app, &made, key, token, expiry(&v));
    true
}

/// Google's expiry of a resource answer: `expireTime` (a cache),
/// `expirationTime` (a file), else none (a file's 48 h, or a batch's).
fn expiry(v: &Value) -> Option<u64> {
    let t = v
        .get("expireTime")
        .or_else(|| v.get("expirationTime"))
        .or_else(|| v.pointer("/file/expirationTime"))
        .and_then(Value::as_str)?;
    rfc3339_ms(t)
}

/// Unix ms of an RFC 3339 UTC timestamp (`2026-08-24T09:14:03.48Z`).
pub(super) fn rfc3339_ms(t: &str) -> Option<u64> {
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let mut hms = time.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let mi: i64 = hms.next()?.parse().ok()?;
    let s: f64 = hms.next().unwrap_or("0").parse().ok()?;
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60;
    u64::try_from(secs)
        .ok()
        .map(|s0| s0 * 1000 + (s * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_in_a_generate_body() {
        let v = json!({"cachedContent": "cachedContents/c1", "contents": [{"parts": [
            {"file_data": {"file_uri": "https://generativelanguage.googleapis.com/v1beta/files/f1"}},
            {"fileData": {"fileUri": "https://www.youtube.com/watch?v=x"}},
            {"text": "files/not-a-ref"}
        ]}]});
        assert_eq!(referenced(&v), vec!["cachedContents/c1", "files/f1"]);
    }

    #[test]
    fn resource_paths() {
        assert!(is_resource("/files"));
        assert!(is_resource("/files/abc"));
        assert!(is_resource("/cachedContents/x"));
        assert!(is_resource("/batches/b:cancel"));
        assert!(is_resource("/models/m:batchGenerateContent"));
        assert!(!is_resource("/models/m:generateContent"));
        assert!(!is_resource("/filesx"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms("1970-01-02T00:00:01Z"), Some(86_401_000));
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(rfc3339_ms("garbage"), None);
    }
}
