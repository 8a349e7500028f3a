//! `/admin/logs`: the error log of failed upstream attempts (see
//! [`crate::store::errlog`]). `GET /admin/logs` lists it newest first, paged
//! and filtered; `GET /admin/logs/{id}` shows one entry in full (with the
//! request body, when `ERROR_LOG_RECORD_BODY` kept it); `DELETE /admin/logs`
//! deletes every entry, or those the same filters select. Keys appear only
//! masked and by id. Bad query values are 400s naming the parameter.

use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::openai::TranslateError;
use crate::request::query_param;
use crate::store::errlog::{Filter, PAGE_MAX, valid_id};

/// Entries a page holds unless `limit` says otherwise.
const PAGE_DEFAULT: usize = 50;

fn bad(param: &str, message: String) -> GatewayError {
    GatewayError::Invalid(TranslateError::new(param, message))
}

/// A text parameter: at most `max` characters, not empty.
fn text(query: &str, name: &'static str, max: usize) -> Result<Option<String>, GatewayError> {
    match query_param(query, name) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > max => Err(bad(
            name,
            format!("`{name}` must be 1 to {max} characters."),
        )),
        Some(v) => Ok(Some(v)),
    }
}

/// A time parameter in unix seconds (a fraction allowed) → unix ms.
fn time(query: &str, name: &'static str) -> Result<Option<u64>, GatewayError> {
    let Some(v) = query_param(query, name) else {
        return Ok(None);
    };
    match v.trim().parse::<f64>() {
        Ok(s) if (0.0..=1e11).contains(&s) => Ok(Some((s * 1000.0) as u64)),
        _ => Err(bad(
            name,
            format!(
                "`{name}` must be a time in unix seconds, got {:?}.",
                trunc(&v)
            ),
        )),
    }
}

fn trunc(s: &str) -> &str {
    crate::store::errlog::truncate(s, 40)
}

/// The filters of a listing or a deletion.
fn filter(query: &str) -> Result<Filter, GatewayError> {
    let status = match query_param(query, "status") {
        None => None,
        Some(v) => match v.parse::<u16>() {
            Ok(s) if (100..=599).contains(&s) => Some(s),
            _ => {
                return Err(bad(
                    "status",
                    format!(
                        "`status` must be an HTTP status (100-599), got {:?}.",
                        trunc(&v)
                    ),
                ));
            }
        },
    };
    let f = Filter {
        status,
        key: text(query, "key", 100)?,
        model: text(query, "model", 200)?,
        route: text(query, "route", 50)?,
        since_ms: time(query, "since")?,
        until_ms: time(query, "until")?,
    };
    if let (Some(s), Some(u)) = (f.since_ms, f.until_ms)
        && s > u
    {
        return Err(bad("since", "`since` is after `until`.".into()));
    }
    Ok(f)
}

/// `GET /admin/logs` (a page) and `DELETE /admin/logs` (answers `{"deleted": n}`).
pub async fn logs<B>(app: &App, req: &Request<B>) -> Result<Response<Body>, GatewayError> {
    let query = req.uri().query().unwrap_or("");
    let f = filter(query)?;
    if req.method() == Method::DELETE {
        let n = app
            .store
            .delete_errors(&f)
            .await
            .map_err(GatewayError::StoreUnavailable)?;
        crate::info!("error log: {n} entr(y/ies) deleted by admin");
        return Ok(body::json(StatusCode::OK, &json!({ "deleted": n })));
    }
    let limit = match query_param(query, "limit") {
        None => PAGE_DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
            _ => {
                return Err(bad(
                    "limit",
                    format!("`limit` must be 1 to {PAGE_MAX}, got {:?}.", trunc(&v)),
                ));
            }
        },
    };
    let cursor = match query_param(query, "cursor") {
        Some(c) if !valid_id(&c) => {
            return Err(bad(
                "cursor",
                "`cursor` is not a cursor this API gave (`next_cursor`).".into(),
            ));
        }
        c => c,
    };
    let page = app
        .store
        .error_page(&f, cursor.as_deref(), limit)
        .await
        .map_err(GatewayError::StoreUnavailable)?;
    let entries: Vec<_> = page.entries.iter().map(|e| e.to_json(false)).collect();
    Ok(body::json(
        StatusCode::OK,
        &json!({ "entries": entries, "next_cursor": page.next_cursor }),
    ))
}

/// `GET /admin/logs/{id}`: one entry in full; 404 for an unknown id.
pub async fn entry(app: &App, id: &str) -> Result<Response<Body>, GatewayError> {
    const NONE: &str = "No error log entry has this id.";
    if !valid_id(id) {
        return Err(GatewayError::NotFound(NONE));
    }
    match app.store.error_entry(id).await {
        Ok(Some(e)) => Ok(body::json(StatusCode::OK, &e.to_json(true))),
        Ok(None) => Err(GatewayError::NotFound(NONE)),
        Err(e) => Err(GatewayError::StoreUnavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parsed_and_bad_values_name_their_parameter() {
        let f = filter("status=429&key=abc&model=m&route=chat&since=10&until=20.5").unwrap();
        assert_eq!(f.status, Some(429));
        assert_eq!((f.since_ms, f.until_ms), (Some(10_000), Some(20_500)));
        assert_eq!(f.key.as_deref(), Some("abc"));
        for (q, param) in [
            ("status=abc", "status"),
            ("status=99", "status"),
            ("since=yesterday", "since"),
            ("until=-1", "until"),
            ("since=5&until=4", "since"),
            ("model=", "model"),
        ] {
            match filter(q) {
                Err(GatewayError::Invalid(e)) => assert_eq!(e.param.as_deref(), Some(param), "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
