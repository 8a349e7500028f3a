//! Scheduled jobs (tokio-cron-scheduler): re-verification of disabled and
//! failing keys (on the `CHECK_CRON` schedule, else every
//! `CHECK_INTERVAL_HOURS`), the daily quota reset at midnight US Pacific (a
//! cron job: per-day quota cooldowns end when Google resets the quotas), and a
//! keep-alive ping every `KEEPALIVE_MINUTES` so a free Hugging Face Space does
//! not fall asleep.
//!
//! Verification uses `models.get` on `TEST_MODEL`, which costs no generation
//! quota. Every job logs one line with keys masked and cannot crash the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request};
use serde_json::{Value, json};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::app::App;
use crate::keys::{Outcome, classify, until_pacific_midnight};
use crate::upstream::{Auth, Call};

/// Most keys verified at the same time (`/verify`, `/status/verify`, the
/// scheduled re-verification): a pool of thousands does not open thousands of
/// upstream calls at once.
pub const VERIFY_PARALLEL: usize = 8;

/// When the daily quota reset job runs: 07:00 and 08:00 UTC, which are
/// midnight US Pacific in daylight (PDT) and standard (PST) time; the job acts
/// only at the one that is midnight today ([`daily_reset_due`]). UTC because
/// the scheduler's time zones are fixed offsets taken once, blind to DST.
pub const DAILY_RESET_CRON: &str = "0 0 7,8 * * *";

/// Whether `now` lies in the first hour of a US Pacific day, i.e. whether a
/// [`DAILY_RESET_CRON`] run at this time is the one at Pacific midnight.
pub fn daily_reset_due(now: SystemTime) -> bool {
    until_pacific_midnight(now) > Duration::from_secs(23 * 3600)
}

/// Check one key with a models.get call. `Err` carries Google's reason.
pub async fn verify_key(app: &App, key: &str) -> Result<(), String> {
    let call = Call {
        method: Method::GET,
        path: app
            .upstream
            .path(&format!("/models/{}", app.cfg().test_model)),
        body: Bytes::new(),
        model: "",
        auth: Auth::GoogHeader,
        headers: Vec::new(),
        route: "",
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
            let outcome = classify(status, &body, None, app.cfg().cooldown);
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
        Err(
            crate::upstream::AttemptError::Network(m)
            | crate::upstream::AttemptError::ProxiesDown(m),
        ) => Err(m),
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
        app.pool.live_indices()
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

/// Fetch the keep-alive URL once (through the proxies in turn with
/// `PROXIES`, see [`crate::proxy::send_any`]); logs the status.
pub async fn keepalive_once(app: &App, url: &str) {
    let Ok(uri) = url.parse::<http::Uri>() else {
        crate::warn!("keep-alive: KEEPALIVE_URL is not a valid URL");
        return;
    };
    let ping = || {
        let mut req = Request::new(crate::body::empty());
        *req.uri_mut() = uri.clone();
        req.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("gemini-balance-keepalive"),
        );
        req
    };
    let sent = crate::proxy::send_any(app.upstream.proxies(), ping);
    match tokio::time::timeout(Duration::from_secs(30), sent).await {
        Ok(Ok(res)) => {
            let status = res.status().as_u16();
            crate::upstream::drain(res).await;
            crate::info!("keep-alive ping: HTTP {}", status);
        }
        Ok(Err(_)) => crate::warn!("keep-alive ping failed: connection error"),
        Err(_) => crate::warn!("keep-alive ping failed: timed out"),
    }
}

/// Re-verify the disabled and failing keys (the scheduled job's body).
async fn reverify(app: &Arc<App>) {
    if app.pool.needing_verification().is_empty() {
        crate::debug!("re-verification: every key is healthy");
        return;
    }
    verify_all(app, true).await;
}

/// Marks a re-verification run as finished when dropped (also on a panic).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The re-verification job: on the `CHECK_CRON` schedule when set, else every
/// `CHECK_INTERVAL_HOURS`; none when both are off. A run that is still going
/// when the next one is due makes that one skip, so runs never pile up.
fn reverify_job(app: &Arc<App>) -> Option<Result<Job, JobSchedulerError>> {
    let running = Arc::new(AtomicBool::new(false));
    let a = app.clone();
    let run = move |_id, _s| {
        let a = a.clone();
        let running = running.clone();
        Box::pin(async move {
            if running.swap(true, Ordering::AcqRel) {
                crate::debug!("re-verification: the previous run is still going");
                return;
            }
            let _done = Running(running);
            reverify(&a).await;
        }) as Pin<Box<dyn Future<Output = ()> + Send>>
    };
    if let Some(expr) = &app.cfg().check_cron {
        Some(Job::new_async(expr.as_str(), run))
    } else {
        app.cfg()
            .check_interval
            .map(|every| Job::new_repeated_async(every, run))
    }
}

/// The daily quota reset: at [`DAILY_RESET_CRON`], when it is midnight
/// Pacific, clear every per-day quota cooldown. (A per-day cooldown is set to
/// end at the next Pacific midnight anyway; this also ends the ones a
/// monotonic clock would hold too long: after a host's suspend, or across a
/// DST switch.)
fn daily_reset_job(app: &Arc<App>) -> Result<Job, JobSchedulerError> {
    let a = app.clone();
    Job::new_async(DAILY_RESET_CRON, move |_id, _s| {
        let a = a.clone();
        Box::pin(async move {
            if daily_reset_due(SystemTime::now()) {
                a.pool.reset_daily_quotas();
            }
        })
    })
}

/// Add a job to the scheduler, logging (not failing) when it cannot be.
async fn add(sched: &JobScheduler, what: &str, job: Result<Job, JobSchedulerError>) {
    match job {
        Ok(j) => {
            if let Err(e) = sched.add(j).await {
                crate::error!("{what} job not added: {e}");
            }
        }
        Err(e) => crate::error!("{what} job not created: {e}"),
    }
}

/// Start the scheduled jobs. The returned scheduler must be kept alive.
pub async fn start(app: Arc<App>) -> Option<JobScheduler> {
    if app.cfg().verify_on_start && !app.pool.is_empty() {
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
    if let Some(job) = reverify_job(&app) {
        add(&sched, "re-verification", job).await;
    }
    add(&sched, "daily quota reset", daily_reset_job(&app)).await;
    let keepalive = {
        let cfg = app.cfg();
        (cfg.keepalive_interval, cfg.keepalive_url.clone())
    };
    if let (Some(every), Some(url)) = keepalive {
        let a = app.clone();
        let job = Job::new_repeated_async(every, move |_id, _s| {
            let a = a.clone();
            let url = url.clone();
            Box::pin(async move { keepalive_once(&a, &url).await })
        });
        add(&sched, "keep-alive", job).await;
    }
    if let Err(e) = sched.start().await {
        crate::error!("scheduler could not start: {e}");
        return None;
    }
    Some(sched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::days_from_civil;
    use std::time::UNIX_EPOCH;

    /// `y-m-d hh:mm` UTC as a `SystemTime`.
    fn utc(y: i64, m: u32, d: u32, hour: u64, min: u64) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_secs(days_from_civil(y, m, d) as u64 * 86400 + hour * 3600 + min * 60)
    }

    #[test]
    fn the_daily_reset_acts_at_pacific_midnight_only() {
        // (UTC time of a cron run, whether it is Pacific midnight then.)
        // In 2026 DST starts Sunday 8 March, ends Sunday 1 November.
        let table = [
            // Summer (PDT, UTC-7): 07:00 UTC is midnight.
            (utc(2026, 7, 1, 7, 0), true),
            (utc(2026, 7, 1, 8, 0), false),
            // Winter (PST, UTC-8): 08:00 UTC is midnight.
            (utc(2026, 1, 15, 7, 0), false),
            (utc(2026, 1, 15, 8, 0), true),
            // DST starts at 02:00 on 8 March: that day's midnight is still PST.
            (utc(2026, 3, 8, 7, 0), false),
            (utc(2026, 3, 8, 8, 0), true),
            (utc(2026, 3, 9, 7, 0), true),
            (utc(2026, 3, 9, 8, 0), false),
            // DST ends at 02:00 on 1 November: that day's midnight is still PDT.
            (utc(2026, 11, 1, 7, 0), true),
            (utc(2026, 11, 1, 8, 0), false),
            (utc(2026, 11, 2, 7, 0), false),
            (utc(2026, 11, 2, 8, 0), true),
            // A run the scheduler started late still counts within the hour.
            (utc(2026, 7, 1, 7, 59), true),
            (utc(2026, 1, 15, 8, 30), true),
            // Not midnight at all.
            (utc(2026, 7, 1, 6, 59), false),
            (utc(2026, 7, 1, 19, 0), false),
        ];
        for (when, due) in table {
            assert_eq!(daily_reset_due(when), due, "{when:?}");
        }
        // Exactly one of the two runs acts on every day of a year.
        for day in 0..366 {
            let d = days_from_civil(2026, 1, 1) as u64 + day;
            let run = |h: u64| UNIX_EPOCH + Duration::from_secs(d * 86400 + h * 3600);
            assert!(
                daily_reset_due(run(7)) ^ daily_reset_due(run(8)),
                "day {day}"
            );
        }
    }

    #[test]
    fn the_daily_reset_is_scheduled_at_07_and_08_utc() {
        let mut job = Job::new(DAILY_RESET_CRON, |_, _| {}).unwrap();
        let next = job.job_data().unwrap().next_tick;
        assert!([7 * 3600, 8 * 3600].contains(&(next % 86400)), "{next}");
    }
}
