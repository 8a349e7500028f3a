//! `GET /admin/proxies`: the outbound proxies (`PROXIES`), each masked, with
//! its state (ok, or resting until when and why), the keys whose proxy it
//! is, its calls and failures; each key's proxy. `?check=true` (or
//! `POST /admin/proxies/check`) first checks every proxy now: a TCP
//! connection, its handshake and a tunnel to the upstream's host.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::openai::TranslateError;
use crate::request::query_param;

/// How long one proxy check may take.
const CHECK_WAIT: Duration = Duration::from_secs(15);

/// `GET /admin/proxies[?check=true]`, `POST /admin/proxies/check`.
pub async fn proxies<B>(app: &App, req: &Request<B>) -> Result<Response<Body>, GatewayError> {
    let query = req.uri().query().unwrap_or("");
    let check = match query_param(query, "check").as_deref() {
        None | Some("false") => req.method() == Method::POST,
        Some("true") => true,
        Some(_) => {
            let m = "`check` must be true or false.".to_string();
            return Err(GatewayError::Invalid(TranslateError::new("check", m)));
        }
    };
    let Some(proxies) = app.upstream.proxies() else {
        let v = json!({"per_key": app.cfg().proxies_per_key, "proxies": [], "keys": []});
        return Ok(body::json(StatusCode::OK, &v));
    };
    let checked = if check {
        let target: http::Uri = app
            .upstream
            .origin()
            .parse()
            .map_err(|_| GatewayError::BodyRead("BASE_URL has no valid origin".into()))?;
        let tcp = crate::proxy::tcp_connector();
        Some(proxies.check(&tcp, &target, CHECK_WAIT).await)
    } else {
        None
    };
    let keys: Vec<(String, String)> = app
        .pool
        .live_indices()
        .into_iter()
        .filter_map(|i| Some((app.pool.id(i)?.to_string(), app.pool.masked(i).to_string())))
        .collect();
    let mut v = proxies.view(&keys);
    if let (Some(c), Value::Object(m)) = (checked, &mut v) {
        m.insert("check".into(), Value::Array(c));
    }
    Ok(body::json(StatusCode::OK, &v))
}
