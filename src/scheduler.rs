//! Scheduled jobs (tokio-cron-scheduler): re-verification of disabled and
//! failing keys every `CHECK_INTERVAL_HOURS`, and a keep-alive ping every
//! `KEEPALIVE_MINUTES` so a free Hugging Face Space does not fall asleep.
//!
//! Verification uses `models.get` on `TEST_MODEL`, which costs no generation
//! quota. Every job logs one line with keys masked and cannot crash the server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::keys::{Outcome, classify};
use crate::router::App;
use crate::upstream::{Auth, Call};

/// Most keys verified at the same time (`/verify`, `/status/verify`, the
/// scheduled re-verification): a pool of thousands does not open thousands of
/// upstream calls at once.
pub const VERIFY_PARALLEL: usize = 8;

/// Check one key with a models.get call. `Err` carries Google's reason.
pub async fn verify_key(app: &App, key: &str) -> Result<(), String> {
    let call = Call {
        method: Method::GET,
        path: app
            .upstream
            .path(&format!("/models/{}", app.cfg.test_model)),
        body: Bytes::new(),
        model: "",
        auth: Auth::GoogHeader,
        headers: Vec::new(),
    };
    match app.upstream.send(&call, key).await {
        Ok(res) if res.status().is_success() => {
            // A body that stalls must not hold the check forever.
            let _ = tokio::time::timeout(app.upstream.timeout(), crate::upstream::drain(res)).await;
            Ok(())
        }
        Ok(res) => {
            let status = res.status().as_u16();
            let body = tokio::time::timeout(
                app.upstream.timeout(),
                crate::upstream::read_answer(res, 1 << 20),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(|(_, b)| b)
            .unwrap_or_default();
            // Google may echo the key (`Consumer 'api_key:…'`): never pass it on.
            let body = crate::upstream::redact(body, key);
            let outcome = classify(status, &body, None, app.cfg.cooldown);
            let msg = crate::openai::error::from_gemini(status, &body).body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            Err(match outcome {
                // A quota on models.get still proves the key itself is valid.
                Outcome::Quota { .. } => format!("HTTP 429 (quota exhausted): {msg}"),
                _ => format!("HTTP {status}: {msg}"),
            })
        }
        Err(crate::upstream::AttemptError::Timeout) => Err("timed out".into()),
        Err(crate::upstream::AttemptError::Network(m)) => Err(m),
    }
}

/// Apply a verification result to pool key `index`: a pass brings it back,
/// an invalid key is (kept) disabled, a quota or network failure changes nothing.
pub fn apply_verification(app: &App, index: usize, result: &Result<(), String>) {
    match result {
        Ok(()) => app.pool.reset(index),
        Err(reason)
            if reason.starts_with("HTTP 400")
                || reason.starts_with("HTTP 401")
                || reason.starts_with("HTTP 403") =>
        {
            app.pool
                .report(index, "", &Outcome::KeyInvalid(reason.clone()))
        }
        Err(_) => {}
    }
}

/// Verify pool keys in parallel ([`VERIFY_PARALLEL`] at a time): all of
/// them, or (`only_failing`) the disabled and failing ones. Returns a JSON
/// report with masked keys.
pub async fn verify_all(app: &Arc<App>, only_failing: bool) -> Value {
    let indices: Vec<usize> = if only_failing {
        app.pool.needing_verification()
    } else {
        (0..app.pool.len()).collect()
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(VERIFY_PARALLEL));
    let mut tasks = Vec::with_capacity(indices.len());
    for i in indices {
        let app = app.clone();
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let key = app.pool.key(i).to_string();
            let r = verify_key(&app, &key).await;
            apply_verification(&app, i, &r);
            (i, r)
        }));
    }
    let mut results = Vec::new();
    let (mut good, mut bad) = (0, 0);
    for t in tasks {
        if let Ok((i, r)) = t.await {
            match r {
                Ok(()) => {
                    good += 1;
                    results.push(json!({"key": app.pool.masked(i), "status": "GOOD"}));
                }
                Err(reason) => {
                    bad += 1;
                    results.push(
                        json!({"key": app.pool.masked(i), "status": "BAD", "reason": reason}),
                    );
                }
            }
        }
    }
    crate::info!("verification: {} good, {} bad", good, bad);
    json!({"good": good, "bad": bad, "results": results})
}

/// Fetch the keep-alive URL once; logs the status.
pub async fn keepalive_once(app: &App, url: &str) {
    let Ok(uri) = url.parse::<http::Uri>() else {
        crate::warn!("keep-alive: KEEPALIVE_URL is not a valid URL");
        return;
    };
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = uri;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("gemini-balance-keepalive"),
    );
    match tokio::time::timeout(Duration::from_secs(30), app.upstream.client().request(req)).await {
        Ok(Ok(res)) => {
            let status = res.status().as_u16();
            crate::upstream::drain(res).await;
            crate::info!("keep-alive ping: HTTP {}", status);
        }
        Ok(Err(_)) => crate::warn!("keep-alive ping failed: connection error"),
        Err(_) => crate::warn!("keep-alive ping failed: timed out"),
    }
}

/// Start the scheduled jobs. The returned scheduler must be kept alive.
pub async fn start(app: Arc<App>) -> Option<JobScheduler> {
    if app.cfg.verify_on_start && !app.pool.is_empty() {
        let a = app.clone();
        tokio::spawn(async move {
            verify_all(&a, false).await;
        });
    }
    let sched = match JobScheduler::new().await {
        Ok(s) => s,
        Err(e) => {
            crate::error!("scheduler could not start: {e}");
            return None;
        }
    };
    if let Some(every) = app.cfg.check_interval {
        let a = app.clone();
        let job = Job::new_repeated_async(every, move |_id, _s| {
            let a = a.clone();
            Box::pin(async move {
                if a.pool.needing_verification().is_empty() {
                    crate::debug!("re-verification: every key is healthy");
                    return;
                }
                verify_all(&a, true).await;
            })
        });
        match job {
            Ok(j) => {
                if let Err(e) = sched.add(j).await {
                    crate::error!("re-verification job not added: {e}");
                }
            }
            Err(e) => crate::error!("re-verification job not created: {e}"),
        }
    }
    if let (Some(every), Some(url)) = (app.cfg.keepalive_interval, app.cfg.keepalive_url.clone()) {
        let a = app.clone();
        let job = Job::new_repeated_async(every, move |_id, _s| {
            let a = a.clone();
            let url = url.clone();
            Box::pin(async move { keepalive_once(&a, &url).await })
        });
        match job {
            Ok(j) => {
                if let Err(e) = sched.add(j).await {
                    crate::error!("keep-alive job not added: {e}");
                }
            }
            Err(e) => crate::error!("keep-alive job not created: {e}"),
        }
    }
    if let Err(e) = sched.start().await {
        crate::error!("scheduler could not start: {e}");
        return None;
    }
    Some(sched)
}
