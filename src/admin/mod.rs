//! The gateway's own routes: `/health`, and the admin routes `/status`,
//! `/status/verify`, `/status/keys/{id}/reset`, `/metrics` and `/verify`
//! (who may call them is the route table's business, see `crate::router`);
//! the key admin API `/admin/keys…` is in [`keys`], live settings
//! `/admin/config` in [`config`], `/admin/logs` and `/admin/usage` in
//! [`logs`] and [`usage`], `/admin/proxies` in [`proxies`].

pub mod config;
pub mod keys;
pub mod logs;
pub mod proxies;
pub mod usage;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::app::App;
use crate::body::{self, Body, ChannelBody};
use crate::error::GatewayError;
use crate::keys::mask;

/// `GET /health`: liveness, mode, version, uptime and key counts (no secrets).
pub fn health(app: &App) -> Response<Body> {
    let c = app.pool.counts();
    body::json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            // "demo": answers come from the built-in fake upstream, not Google.
            "mode": if app.cfg().demo { "demo" } else { "gateway" },
            "version": crate::VERSION,
            "uptime_seconds": app.stats.uptime(),
            "keys": {"total": app.pool.len(), "active": c.active, "cooling": c.cooling, "resting": c.resting, "disabled": c.disabled},
            // "memory" | "file" | "redis" | "degraded" (Redis or the disk unwritable now).
            "store": app.store.status().as_str(),
        }),
    )
}

/// `GET /status`: every key (masked) with its state, and the traffic counters.
pub fn status(app: &App) -> Response<Body> {
    let mut v = json!({
        "version": crate::VERSION,
        "uptime_seconds": app.stats.uptime(),
        "keys": app.pool.snapshot(),
        "key_counts": key_counts(&app.pool),
        "traffic": app.stats.snapshot(),
    });
    // The Vertex AI Express pool, in its own section (when configured).
    if !app.vertex.is_empty() {
        v["vertex_express"] = json!({
            "keys": app.vertex.snapshot(),
            "key_counts": key_counts(&app.vertex),
        });
    }
    body::json(StatusCode::OK, &v)
}

/// A pool's keys counted by state, for `/status`.
fn key_counts(pool: &crate::keys::KeyPool) -> serde_json::Value {
    let c = pool.counts();
    json!({"total": pool.len(), "active": c.active, "cooling": c.cooling, "resting": c.resting, "disabled": c.disabled})
}

/// `POST /status/verify`: re-verify every pool key now.
pub async fn status_verify(app: &Arc<App>) -> Response<Body> {
    let report = crate::scheduler::verify_all(app, false).await;
    body::json(StatusCode::OK, &report)
}

/// `POST /status/keys/{id}/reset`: bring key `id` (an index, the key, or its
/// masked form; percent-decoded) back into service.
pub fn reset_key(app: &App, id: &str) -> Result<Response<Body>, GatewayError> {
    let i = app
        .pool
        .find(id)
        .ok_or(GatewayError::NotFound("No such key."))?;
    app.pool.reset(i);
    crate::info!("key {} reset by admin", app.pool.masked(i));
    Ok(body::json(
        StatusCode::OK,
        &json!({"reset": app.pool.masked(i)}),
    ))
}

/// `POST /status/keys/{id}/verify`: check key `id` (found as for a reset)
/// now with a free `models.get` and apply the result as a scheduled check
/// does (a good key comes back, a refused one is disabled); answers
/// `{"key": masked, "status": "GOOD"|"BAD", "reason"}`. The console's
/// "verify selected" calls it once per key.
pub async fn verify_one(app: &App, id: &str) -> Result<Response<Body>, GatewayError> {
    let i = app
        .pool
        .find(id)
        .ok_or(GatewayError::NotFound("No such key."))?;
    let key = app.pool.key(i).to_string();
    let result = crate::scheduler::verify_key(app, &key).await;
    crate::scheduler::apply_verification(app, i, &result);
    let masked = app.pool.masked(i);
    let verdict = if result.is_ok() { "good" } else { "bad" };
    crate::info!("key {masked} verified by admin: {verdict}");
    Ok(body::json(
        StatusCode::OK,
        &match result {
            Ok(()) => json!({"key": masked, "status": "GOOD"}),
            Err(reason) => json!({"key": masked, "status": "BAD", "reason": reason}),
        },
    ))
}

/// `GET /metrics`: the Prometheus text format.
pub fn metrics(app: &App) -> Response<Body> {
    let mut res = Response::new(body::full(app.stats.prometheus(&app.pool)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}

/// `POST /verify`: check keys (the pool's, or at most `VERIFY_MAX_KEYS` in
/// `x-goog-api-key`) in parallel with a models.get call, at most
/// [`crate::scheduler::VERIFY_PARALLEL`] at a time, streaming one SSE line per
/// key as each finishes; `?format=json` returns one document.
pub async fn verify(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let given: Vec<String> = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::config::parse_list(v).unwrap_or_default())
        .unwrap_or_default();
    let max = app.cfg().verify_max_keys;
    if given.len() > max {
        return Err(GatewayError::TooManyKeys {
            max,
            sent: given.len(),
        });
    }
    let as_json = crate::request::query_param(req.uri().query().unwrap_or(""), "format").as_deref()
        == Some("json");
    let from_pool = given.is_empty();
    let keys: Vec<(Option<usize>, String)> = if from_pool {
        app.pool
            .live_indices()
            .into_iter()
            .map(|i| (Some(i), app.pool.key(i).to_string()))
            .collect()
    } else {
        // A pool key named in the header gets its result applied like a pool
        // check, so /health does not call active a key /verify called bad.
        let live = app.pool.live_indices();
        let in_pool = |k: &str| {
            live.iter()
                .copied()
                .find(|&i| crate::keys::subtle_eq(app.pool.key(i), k))
        };
        given.into_iter().map(|k| (in_pool(&k), k)).collect()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(keys.len().max(1));
    // In parallel, but a large pool does not open hundreds of calls at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(
        crate::scheduler::VERIFY_PARALLEL,
    ));
    for (index, key) in keys {
        let app = app.clone();
        let tx = tx.clone();
        let permits = permits.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = crate::scheduler::verify_key(&app, &key).await;
            if let Some(i) = index {
                crate::scheduler::apply_verification(&app, i, &result);
            }
            let line = match result {
                Ok(()) => json!({"key": mask(&key), "status": "GOOD"}),
                Err(reason) => json!({"key": mask(&key), "status": "BAD", "reason": reason}),
            };
            let _ = tx.send(line).await;
        });
    }
    drop(tx);
    if as_json {
        let mut results = Vec::new();
        while let Some(v) = rx.recv().await {
            results.push(v);
        }
        let good = results.iter().filter(|r| r["status"] == "GOOD").count();
        return Ok(body::json(
            StatusCode::OK,
            &json!({"total": results.len(), "good": good, "bad": results.len() - good, "results": results}),
        ));
    }
    let (btx, out) = ChannelBody::pair(16);
    tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if btx
                .send(Bytes::from(format!("data: {v}\n\n")))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = btx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let mut res = Response::new(out);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    Ok(res)
}
