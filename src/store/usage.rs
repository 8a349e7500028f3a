//! The usage report behind `GET /admin/usage`: the stored usage buckets of a
//! window (`1h` and `24h` in minutes, `7d` and `30d` in days), grouped by
//! key, model or both, with totals. Memory and file mode read this
//! process's view; Redis mode reads Redis, so every replica's counts are in.
//!
//! `requests` counts upstream attempts; `client_requests` (in the totals)
//! counts client requests, stored with the first attempt's key and model
//! (see [`Counts::client_requests`]).

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value, json};

use super::model::{Bucket, Counts, Grain};
use super::{Backend, StoreHandle, lock};

/// The `window` of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// `1h`: the last 60 minutes.
    Hour,
    /// `24h`: the last 1,440 minutes.
    Day,
    /// `7d`: the last 7 days.
    Week,
    /// `30d`: the last 30 days.
    Month,
}

impl Window {
    /// `1h`, `24h`, `7d` or `30d`.
    pub fn parse(s: &str) -> Option<Window> {
        Some(match s {
            "1h" => Window::Hour,
            "24h" => Window::Day,
            "7d" => Window::Week,
            "30d" => Window::Month,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    /// The bucket width it is reported in.
    pub fn grain(self) -> Grain {
        match self {
            Window::Hour | Window::Day => Grain::Minute,
            Window::Week | Window::Month => Grain::Day,
        }
    }

    /// The bucket starts it covers at `now` (unix seconds), oldest first.
    pub fn starts(self, now: u64) -> Vec<u64> {
        let g = self.grain().seconds();
        let n = match self {
            Window::Hour => 60,
            Window::Day => 1440,
            Window::Week => 7,
            Window::Month => 30,
        };
        let end = now - now % g;
        (0..n).rev().map(|i| end.saturating_sub(i * g)).collect()
    }
}

/// What a report's series are (`by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// One series per key id.
    Key,
    /// One series per model.
    Model,
    /// One series per key and model.
    KeyModel,
}

impl By {
    /// `key`, `model` or `key_model`.
    pub fn parse(s: &str) -> Option<By> {
        Some(match s {
            "key" => By::Key,
            "model" => By::Model,
            "key_model" => By::KeyModel,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            By::Key => "key",
            By::Model => "model",
            By::KeyModel => "key_model",
        }
    }
}

/// The counters of a bucket or a total as the report shows them.
fn counts_json(c: &Counts, t: Option<u64>, client: bool) -> Value {
    let mut m = Map::new();
    if let Some(t) = t {
        m.insert("t".into(), t.into());
    }
    let failures = c.key_invalid + c.rate_limited + c.transient + c.region + c.client;
    m.insert("requests".into(), c.requests.into());
    m.insert("successes".into(), c.successes.into());
    m.insert("failures".into(), failures.into());
    m.insert("rate_limited".into(), c.rate_limited.into());
    m.insert("prompt_tokens".into(), c.prompt_tokens.into());
    m.insert("output_tokens".into(), c.output_tokens.into());
    m.insert("thought_tokens".into(), c.thought_tokens.into());
    if client {
        m.insert("client_requests".into(), c.client_requests.into());
    }
    Value::Object(m)
}

/// Anything besides client requests (what a bucket is listed for).
fn shown(c: &Counts) -> bool {
    let mut c = *c;
    c.client_requests = 0;
    !c.is_zero()
}

/// The report for `rows` (buckets of any grain and time; the window's are
/// picked) at `now` (unix seconds).
pub fn report(rows: &[(Bucket, Counts)], window: Window, by: By, now: u64) -> Value {
    let starts = window.starts(now);
    let (first, last) = (starts[0], starts[starts.len() - 1]);
    let grain = window.grain();
    let mut series: BTreeMap<(&str, &str), BTreeMap<u64, Counts>> = BTreeMap::new();
    let mut totals = Counts::default();
    for (b, c) in rows {
        if b.grain != grain || b.start < first || b.start > last {
            continue;
        }
        totals.add(c);
        let id = match by {
            By::Key => (b.key_id.as_str(), ""),
            By::Model => ("", b.model.as_str()),
            By::KeyModel => (b.key_id.as_str(), b.model.as_str()),
        };
        series
            .entry(id)
            .or_default()
            .entry(b.start)
            .or_default()
            .add(c);
    }
    let list: Vec<Value> = series
        .into_iter()
        .filter_map(|((key, model), buckets)| {
            let mut sum = Counts::default();
            let list: Vec<Value> = buckets
                .iter()
                .inspect(|(_, c)| sum.add(c))
                .filter(|(_, c)| shown(c))
                .map(|(t, c)| counts_json(c, Some(*t), false))
                .collect();
            if list.is_empty() {
                return None;
            }
            let mut s = Map::new();
            if by != By::Model {
                s.insert("key".into(), key.into());
            }
            if by != By::Key {
                s.insert("model".into(), model.into());
            }
            s.insert("buckets".into(), Value::Array(list));
            s.insert("totals".into(), counts_json(&sum, None, true));
            Some(Value::Object(s))
        })
        .collect();
    json!({
        "window": window.as_str(),
        "bucket_seconds": grain.seconds(),
        "by": by.as_str(),
        "series": list,
        "totals": counts_json(&totals, None, true),
    })
}

impl StoreHandle {
    /// The usage report for `window` by `by` (see the module doc). What this
    /// process recorded is written first.
    pub async fn usage_report(&self, window: Window, by: By) -> Result<Value, String> {
        let _ = self.flush().await;
        let now = crate::keys::unix_now();
        let mut b = self.shared.backend.lock().await;
        let rows: Vec<(Bucket, Counts)> = match &mut *b {
            Backend::Redis(r) => {
                let (mut con, p) = (r.connection().await?, r.prefix().to_string());
                match redis_rows(&mut con, &p, window.grain(), &window.starts(now)).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        r.failed();
                        return Err(e);
                    }
                }
            }
            _ => {
                drop(b);
                let grain = window.grain();
                let first = window.starts(now)[0];
                lock(&self.shared.mirror)
                    .usage
                    .iter()
                    .filter(|(k, _)| k.grain == grain && k.start >= first)
                    .map(|(k, c)| (k.clone(), *c))
                    .collect()
            }
        };
        Ok(report(&rows, window, by, now))
    }
}

/// The buckets of `grain` at `starts`, read from Redis in one round trip.
async fn redis_rows(
    con: &mut MultiplexedConnection,
    p: &str,
    grain: Grain,
    starts: &[u64],
) -> Result<Vec<(Bucket, Counts)>, String> {
    let mut pipe = redis::pipe();
    for s in starts {
        pipe.hgetall(format!("{p}u:{}:{s}", grain.tag()));
    }
    let hashes: Vec<Vec<(String, u64)>> = pipe.query_async(con).await.map_err(super::redis::err)?;
    let mut out: BTreeMap<Bucket, Counts> = BTreeMap::new();
    for (start, fields) in starts.iter().zip(hashes) {
        for (f, v) in fields {
            let Some((key_id, rest)) = f.split_once('|') else {
                continue;
            };
            let Some((model, counter)) = rest.rsplit_once('|') else {
                continue;
            };
            let b = Bucket {
                grain,
                start: *start,
                key_id: key_id.to_string(),
                model: model.to_string(),
            };
            out.entry(b).or_default().add_named(counter, v);
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(grain: Grain, start: u64, key: &str, model: &str, c: Counts) -> (Bucket, Counts) {
        let b = Bucket {
            grain,
            start,
            key_id: key.into(),
            model: model.into(),
        };
        (b, c)
    }

    #[test]
    fn groups_by_key_model_or_both_within_the_window() {
        let now = 1_000_000_020;
        let one = Counts {
            requests: 1,
            successes: 1,
            prompt_tokens: 5,
            client_requests: 1,
            ..Counts::default()
        };
        let limited = Counts {
            requests: 1,
            rate_limited: 1,
            ..Counts::default()
        };
        let client_only = Counts {
            client_requests: 1,
            ..Counts::default()
        };
        let m = now - now % 60;
        let rows = vec![
            row(Grain::Minute, m, "k1", "a", one),
            row(Grain::Minute, m - 60, "k1", "b", limited),
            row(Grain::Minute, m, "k2", "a", one),
            row(Grain::Minute, m, "", "a", client_only),
            row(Grain::Minute, m - 3600, "k1", "a", one), // outside 1h
            row(Grain::Hour, m - m % 3600, "k1", "a", one), // another grain
        ];
        let r = report(&rows, Window::Hour, By::Key, now);
        assert_eq!(r["bucket_seconds"], 60);
        assert_eq!(r["series"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(r["series"][0]["key"], "k1");
        assert!(r["series"][0].get("model").is_none());
        assert_eq!(r["series"][0]["buckets"][0]["t"], m - 60);
        assert_eq!(r["series"][0]["buckets"][0]["failures"], 1);
        assert_eq!(r["series"][0]["totals"]["requests"], 2);
        assert_eq!(r["totals"]["requests"], 3);
        assert_eq!(r["totals"]["rate_limited"], 1);
        assert_eq!(r["totals"]["prompt_tokens"], 10);
        assert_eq!(r["totals"]["client_requests"], 3);
        let r = report(&rows, Window::Hour, By::Model, now);
        assert_eq!(r["series"][0]["model"], "a");
        assert_eq!(r["series"][0]["totals"]["requests"], 2);
        assert_eq!(r["series"][0]["totals"]["client_requests"], 3);
        let r = report(&rows, Window::Day, By::KeyModel, now);
        assert_eq!(r["series"].as_array().unwrap().len(), 3);
        assert_eq!(r["totals"]["requests"], 4);
        assert_eq!(Window::Month.starts(now).len(), 30);
        assert_eq!(
            report(&rows, Window::Week, By::Key, now)["bucket_seconds"],
            86_400
        );
    }
}
