//! Traffic counters behind `/health`, `/status` and `/metrics`: requests by
//! route, model and status, an upstream latency histogram, retries, a ring
//! of recent errors and per-minute counts for the last hour. Everything has
//! a fixed size: model names are recorded by their [`crate::model::label`]
//! (an invalid name counts as `other`), and every per-model map is capped,
//! its overflow counted as `other`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::keys::{KeyPool, unix_now};

/// Upper bounds (seconds) of the upstream latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// How many recent errors are kept.
const RECENT_ERRORS: usize = 50;
/// Distinct (route, model, status) series kept before new ones fold into "other".
const MAX_SERIES: usize = 2000;
/// Distinct models counted before new ones fold into "other".
const MAX_MODELS: usize = 64;
/// Distinct models counted per minute before new ones fold into "other".
const MINUTE_MODELS: usize = 32;
/// Longest error message kept, in characters.
const MESSAGE_CHARS: usize = 300;
/// Minutes of per-minute history.
const MINUTES: usize = 60;

/// One counter: (route, status, count).
type Series = (&'static str, u16, u64);

/// One minute of traffic: counts by status class (1xx..5xx) and by model.
#[derive(Clone, Debug, Default)]
struct Minute {
    minute: u64,
    classes: [u64; 5],
    models: Vec<(String, u64)>,
}

/// The gateway's counters.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// model → [(route, status, count)]: keyed by model so that counting an
    /// existing series allocates nothing.
    series: Mutex<HashMap<String, Vec<Series>>>,
    /// Number of (route, model, status) series, bounded by `MAX_SERIES`.
    series_count: AtomicU64,
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    retries: AtomicU64,
    recent: Mutex<VecDeque<Value>>,
    minutes: Mutex<Vec<Minute>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            series: Mutex::new(HashMap::new()),
            series_count: AtomicU64::new(0),
            latency: Default::default(),
            latency_sum_us: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
            minutes: Mutex::new(vec![Minute::default(); MINUTES]),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stats {
    /// Seconds since start.
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Count one finished request. The gateway's own routes (status page,
    /// health, metrics, dashboard, root, the admin API) count in the totals but not in the
    /// per-minute chart, so watching the dashboard does not inflate it.
    pub fn record(&self, route: &'static str, model: &str, status: u16) {
        let model = crate::model::label(model);
        {
            let mut s = lock(&self.series);
            let full = self.series_count.load(Ordering::Relaxed) >= MAX_SERIES as u64
                || s.len() >= MAX_MODELS;
            let model = if full && !s.contains_key(model) {
                crate::model::OTHER
            } else {
                model
            };
            // One lookup on the hot path (a known model and series).
            match s.get_mut(model) {
                Some(list) => match list
                    .iter_mut()
                    .find(|(r, st, _)| *r == route && *st == status)
                {
                    Some((_, _, n)) => *n += 1,
                    None => {
                        list.push((route, status, 1));
                        self.series_count.fetch_add(1, Ordering::Relaxed);
                    }
                },
                None => {
                    s.insert(model.to_string(), vec![(route, status, 1)]);
                    self.series_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // The gateway's own pages and admin routes are not traffic.
        if matches!(
            route,
            "status" | "health" | "metrics" | "dashboard" | "root"
        ) || route.starts_with("admin")
        {
            return;
        }
        let now = unix_now() / 60;
        let mut mins = lock(&self.minutes);
        let slot = &mut mins[(now % MINUTES as u64) as usize];
        if slot.minute != now {
            *slot = Minute {
                minute: now,
                ..Minute::default()
            };
        }
        let class = ((status / 100).clamp(1, 5) - 1) as usize;
        slot.classes[class] += 1;
        if !model.is_empty() {
            let model = if slot.models.len() >= MINUTE_MODELS
                && !slot.models.iter().any(|(m, _)| m == model)
            {
                crate::model::OTHER
            } else {
                model
            };
            if let Some((_, c)) = slot.models.iter_mut().find(|(m, _)| m == model) {
                *c += 1;
            } else {
                slot.models.push((model.to_string(), 1));
            }
        }
    }

    /// Record the time to upstream response headers.
    pub fn upstream_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Count retries (attempts beyond the first).
    pub fn retried(&self, n: u32) {
        if n > 0 {
            self.retries.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Remember an error (message already scrubbed, key already masked).
    pub fn error(&self, model: &str, key: &str, status: u16, message: &str) {
        let mut r = lock(&self.recent);
        if r.len() == RECENT_ERRORS {
            r.pop_front();
        }
        let model = crate::model::label(model);
        let key: String = key.chars().take(40).collect();
        let message: String = message.chars().take(MESSAGE_CHARS).collect();
        r.push_back(json!({"time": unix_now(), "model": model, "key": key, "status": status, "message": message}));
    }

    /// The `/status` traffic section: totals per model and status, recent errors, per-minute counts.
    pub fn snapshot(&self) -> Value {
        let series = lock(&self.series);
        let mut by_model: HashMap<&str, u64> = HashMap::new();
        let mut by_status: HashMap<u16, u64> = HashMap::new();
        let mut total = 0;
        for (model, status, n) in series
            .iter()
            .flat_map(|(m, l)| l.iter().map(move |(_, st, n)| (m, st, n)))
        {
            if !model.is_empty() {
                *by_model.entry(model).or_default() += n;
            }
            *by_status.entry(*status).or_default() += n;
            total += n;
        }
        let now = unix_now() / 60;
        let mins = lock(&self.minutes);
        let per_minute: Vec<Value> = (0..MINUTES as u64)
            .rev()
            .map(|ago| {
                let m = now.saturating_sub(ago);
                let slot = &mins[(m % MINUTES as u64) as usize];
                if slot.minute == m {
                    json!({"minute": m * 60, "classes": {"2xx": slot.classes[1], "3xx": slot.classes[2], "4xx": slot.classes[3], "5xx": slot.classes[4]},
                           "models": slot.models.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()})
                } else {
                    json!({"minute": m * 60, "classes": {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}, "models": {}})
                }
            })
            .collect();
        json!({
            "total_requests": total,
            "by_model": by_model,
            "by_status": by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "retries": self.retries.load(Ordering::Relaxed),
            "recent_errors": lock(&self.recent).iter().rev().cloned().collect::<Vec<_>>(),
            "per_minute": per_minute,
        })
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self, pool: &KeyPool) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP gemini_balance_requests_total Requests answered, by route, model and status.\n# TYPE gemini_balance_requests_total counter\n");
        for (model, list) in lock(&self.series).iter() {
            for (route, status, n) in list {
                let _ = writeln!(
                    out,
                    "gemini_balance_requests_total{{route=\"{}\",model=\"{}\",status=\"{}\"}} {}",
                    route,
                    escape(model),
                    status,
                    n
                );
            }
        }
        out.push_str("# HELP gemini_balance_upstream_latency_seconds Time to upstream response headers.\n# TYPE gemini_balance_upstream_latency_seconds histogram\n");
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "gemini_balance_upstream_latency_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        cum += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "gemini_balance_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            out,
            "gemini_balance_upstream_latency_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "gemini_balance_upstream_latency_seconds_count {cum}");
        let _ = writeln!(
            out,
            "# HELP gemini_balance_retries_total Upstream attempts beyond the first.\n# TYPE gemini_balance_retries_total counter\ngemini_balance_retries_total {}",
            self.retries.load(Ordering::Relaxed)
        );
        let c = pool.counts();
        out.push_str(
            "# HELP gemini_balance_keys Keys by state.\n# TYPE gemini_balance_keys gauge\n",
        );
        for (state, n) in [
            ("active", c.active),
            ("cooling", c.cooling),
            ("resting", c.resting),
            ("disabled", c.disabled),
        ] {
            let _ = writeln!(out, "gemini_balance_keys{{state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP gemini_balance_quota_remaining Calls left per model and window, summed over the keys with a known limit.\n# TYPE gemini_balance_quota_remaining gauge\n");
        for (model, window, left) in pool.quota_remaining() {
            let _ = writeln!(
                out,
                "gemini_balance_quota_remaining{{model=\"{}\",window=\"{window}\"}} {left}",
                escape(&model)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gemini_balance_uptime_seconds Seconds since start.\n# TYPE gemini_balance_uptime_seconds gauge\ngemini_balance_uptime_seconds {}",
            self.uptime()
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_model_maps_are_capped() {
        let s = Stats::default();
        let huge = "m".repeat(1 << 20);
        for i in 0..500 {
            s.record("native", &format!("model-{i}"), 429);
        }
        for _ in 0..500 {
            s.record("chat", &huge, 400);
            s.error(&huge, &huge, 429, &huge);
        }
        let snap = s.snapshot();
        let by_model = snap["by_model"].as_object().unwrap();
        assert_eq!(by_model.len(), MAX_MODELS + 1, "64 models and other");
        assert_eq!(by_model["other"], 1000 - MAX_MODELS as u64);
        assert!(by_model.keys().all(|m| m.len() <= crate::model::MAX_LEN));
        let total: u64 = by_model.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(total, 1000, "nothing is lost, only folded");
        let minute = &snap["per_minute"][MINUTES - 1]["models"];
        assert_eq!(minute.as_object().unwrap().len(), MINUTE_MODELS + 1);
        assert_eq!(minute["other"], 1000 - MINUTE_MODELS as u64);
        let recent = snap["recent_errors"].as_array().unwrap();
        assert_eq!(recent.len(), RECENT_ERRORS);
        assert_eq!(recent[0]["model"], "other");
        assert!(recent[0]["key"].as_str().unwrap().chars().count() <= 40);
        assert!(
            snap.to_string().len() < 64 * 1024,
            "{}",
            snap.to_string().len()
        );
        let pool = KeyPool::new(vec!["k".into()], crate::keys::Selection::RoundRobin, 3);
        let lines = s
            .prometheus(&pool)
            .lines()
            .filter(|l| l.starts_with("gemini_balance_requests_total{"))
            .count();
        assert!(lines <= MAX_MODELS + 2, "{lines}");
    }

    #[test]
    fn counts_and_exposes() {
        let s = Stats::default();
        s.record("chat", "gemini-2.5-flash", 200);
        s.record("chat", "gemini-2.5-flash", 200);
        s.record("chat", "gemini-2.5-flash", 429);
        s.upstream_latency(Duration::from_millis(3));
        s.retried(2);
        s.error("gemini-2.5-flash", "AIza…x1Y2", 429, "quota");
        let snap = s.snapshot();
        assert_eq!(snap["total_requests"], 3);
        assert_eq!(snap["by_model"]["gemini-2.5-flash"], 3);
        assert_eq!(snap["by_status"]["429"], 1);
        assert_eq!(snap["recent_errors"][0]["status"], 429);
        let last = &snap["per_minute"][MINUTES - 1];
        assert_eq!(last["classes"]["2xx"], 2);
        let pool = KeyPool::new(vec!["k".into()], crate::keys::Selection::RoundRobin, 3);
        let p = s.prometheus(&pool);
        assert!(p.contains("gemini_balance_requests_total{route=\"chat\",model=\"gemini-2.5-flash\",status=\"200\"} 2"));
        assert!(p.contains("gemini_balance_retries_total 2"));
        assert!(p.contains("gemini_balance_keys{state=\"active\"} 1"));
    }
}
