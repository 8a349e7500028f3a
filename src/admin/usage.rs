//! `GET /admin/usage?window=1h|24h|7d|30d&by=key|model|key_model`: the usage
//! counters of the window in time buckets (minutes for `1h` and `24h`, days
//! for `7d` and `30d`) per key, model or both, with totals (see
//! [`crate::store::usage`]). Defaults: `window=24h`, `by=model`; anything else
//! is a 400 naming the parameter.

use http::{Request, Response, StatusCode};

use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::openai::TranslateError;
use crate::request::query_param;
use crate::store::usage::{By, Window};

/// `GET /admin/usage`.
pub async fn usage<B>(app: &App, req: &Request<B>) -> Result<Response<Body>, GatewayError> {
    let query = req.uri().query().unwrap_or("");
    let cut = |v: &str| crate::store::errlog::truncate(v, 40).to_string();
    let window = match query_param(query, "window") {
        None => Window::Day,
        Some(v) => Window::parse(&v).ok_or_else(|| {
            let m = format!("`window` must be 1h, 24h, 7d or 30d, got {:?}.", cut(&v));
            GatewayError::Invalid(TranslateError::new("window", m))
        })?,
    };
    let by = match query_param(query, "by") {
        None => By::Model,
        Some(v) => By::parse(&v).ok_or_else(|| {
            let m = format!("`by` must be key, model or key_model, got {:?}.", cut(&v));
            GatewayError::Invalid(TranslateError::new("by", m))
        })?,
    };
    let report = app
        .store
        .usage_report(window, by)
        .await
        .map_err(GatewayError::StoreUnavailable)?;
    Ok(body::json(StatusCode::OK, &report))
}
