//! `/admin/config`: the settings at run time (admin token only, see
//! `crate::router`). `GET` lists every setting of [`SETTINGS`] with its value
//! (secrets masked), source (`default|env|stored`), group, description and
//! whether it applies live; `PATCH` sets runtime overrides, `DELETE
//! /admin/config/{NAME}` reverts one to the environment or the default.
//!
//! A change goes through [`App::apply_settings`]: every name must be a live
//! setting and the whole new set of variables must pass the start-up parser,
//! else a 400 in OpenAI's format says why and nothing changes. Once applied
//! it is recorded in the store (`Change::Setting`), which keeps it and passes
//! it to the other replicas.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::app::App;
use crate::body::{self, Body};
use crate::config::{Config, Refusal, SETTINGS};
use crate::error::GatewayError;
use crate::openai::TranslateError;
use crate::request::{parse_json, read_nonempty_body};
use crate::store::Change;

/// `{"settings":[{"name","value","source","live","group","description","secret"}]}`.
fn listing(cfg: &Config) -> Vec<Value> {
    SETTINGS
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "value": (s.value)(cfg),
                "source": s.source(cfg),
                "live": s.live(),
                "group": s.group,
                "description": s.description,
                "secret": s.secret,
            })
        })
        .collect()
}

/// `GET /admin/config`: every setting (secrets masked).
pub fn get(app: &App) -> Response<Body> {
    body::json(
        StatusCode::OK,
        &json!({"settings": listing(&app.cfg_full())}),
    )
}

/// A 400 about `param`, in the route's (OpenAI) format.
fn refused(param: &str, message: String) -> GatewayError {
    GatewayError::Invalid(TranslateError::new(param, message))
}

impl From<Refusal> for GatewayError {
    fn from(r: Refusal) -> GatewayError {
        refused(r.name(), r.message())
    }
}

/// A PATCH value in the environment's syntax: a string as it is, a number
/// or boolean as written, an array or object as JSON text (lists take JSON
/// arrays); `null` reverts the setting.
fn env_value(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other @ (Value::Array(_) | Value::Object(_)) => Some(other.to_string()),
    }
}

/// Apply `changes`, record them in the store, and log which names changed
/// (never the values: some are secrets).
fn apply(
    app: &App,
    changes: &[(String, Option<String>)],
) -> Result<Vec<&'static str>, GatewayError> {
    let names = app.apply_settings(changes)?;
    let at_ms = crate::keys::unix_now() * 1000;
    for (name, value) in changes {
        app.store.record(Change::Setting {
            name: name.clone(),
            value: value.clone(),
            at_ms,
        });
    }
    crate::info!("settings changed by admin: {}", names.join(", "));
    Ok(names)
}

/// `PATCH /admin/config` with `{"NAME": value, …}` (JSON values or the env syntax, `null` reverts):
/// answers `{"updated":[names],"settings":[…]}` with the settings now in use.
pub async fn patch(app: &App, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let bytes: Bytes = read_nonempty_body(app, req).await?;
    let Value::Object(map) = parse_json(&bytes)? else {
        return Err(refused(
            "body",
            "expected a JSON object of settings, e.g. {\"MAX_RETRIES\": 5}".into(),
        ));
    };
    if map.is_empty() {
        return Err(refused("body", "no settings given".into()));
    }
    let changes: Vec<(String, Option<String>)> =
        map.into_iter().map(|(n, v)| (n, env_value(v))).collect();
    let names = apply(app, &changes)?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"updated": names, "settings": listing(&app.cfg_full())}),
    ))
}

/// `DELETE /admin/config/{NAME}`: back to the environment's value or the
/// default; answers `{"reverted":NAME,"settings":[…]}`.
pub fn delete(app: &App, name: &str) -> Result<Response<Body>, GatewayError> {
    let names = apply(app, &[(name.to_string(), None)])?;
    Ok(body::json(
        StatusCode::OK,
        &json!({"reverted": names.first(), "settings": listing(&app.cfg_full())}),
    ))
}
