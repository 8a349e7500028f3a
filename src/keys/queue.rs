//! Waiting for quota headroom (`QUEUE_TIMEOUT`, `QUEUE_MAX`): when no key
//! has headroom for a model and the earliest slot opens within
//! `QUEUE_TIMEOUT`, a request waits for it in a bounded first-in first-out
//! line per model instead of getting a 429 at once.
//!
//! The line is a fair lock (tokio's mutex hands it over in arrival order):
//! the request at its head picks again each time a slot may have opened
//! (at least every 250 ms), the others wait behind it. A request never
//! waits past its deadline (arrival + `QUEUE_TIMEOUT`), and is answered at
//! once when the next slot opens after its deadline or when `QUEUE_MAX`
//! requests already wait. While anyone waits for a model, new requests for
//! it queue behind them rather than overtake them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::lock;
use super::pool::{KeyPool, Pick};

/// Most models with a line at once (past it, requests are answered at once).
const MAX_LINES: usize = 64;
/// Longest sleep of the request at the head before it picks again.
const POLL: Duration = Duration::from_millis(250);

/// One model's line.
#[derive(Debug, Default)]
struct Line {
    /// Requests in the line (the head included).
    waiting: AtomicUsize,
    /// Held by the head of the line; handed over in arrival order.
    head: tokio::sync::Mutex<()>,
}

/// The lines of a pool, and `QUEUE_TIMEOUT` / `QUEUE_MAX`.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// `QUEUE_TIMEOUT` in ms (0 = never wait).
    timeout_ms: AtomicU64,
    /// `QUEUE_MAX`.
    max: AtomicUsize,
    lines: Mutex<HashMap<String, Arc<Line>>>,
}

impl Queue {
    /// The line for `model`: made when needed, `None` when there are too many.
    fn line(&self, model: &str, make: bool) -> Option<Arc<Line>> {
        let mut lines = lock(&self.lines);
        if let Some(l) = lines.get(model) {
            return Some(l.clone());
        }
        if !make {
            return None;
        }
        if lines.len() >= MAX_LINES {
            lines.retain(|_, l| Arc::strong_count(l) > 1);
            if lines.len() >= MAX_LINES {
                return None;
            }
        }
        let l = Arc::new(Line::default());
        lines.insert(model.to_string(), l.clone());
        Some(l)
    }
}

/// Counts a request in a line while it lives.
struct InLine<'a>(&'a Line);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl KeyPool {
    /// Set `QUEUE_TIMEOUT` (zero: never wait) and `QUEUE_MAX`.
    pub fn set_queue(&self, timeout: Duration, max: usize) {
        let q = self.queue();
        q.timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
        q.max.store(max, Ordering::Relaxed);
    }

    /// Like [`KeyPool::pick`], but when no key has quota headroom and a
    /// slot opens within `QUEUE_TIMEOUT`, wait for it in the model's line
    /// (see the module doc). Any other answer of `pick` returns at once.
    pub async fn pick_waiting(&self, model: &str, tried: &[usize], tokens: u32) -> Pick {
        let q = self.queue();
        let timeout = Duration::from_millis(q.timeout_ms.load(Ordering::Relaxed));
        if timeout.is_zero() {
            return self.pick_tokens(model, tried, tokens);
        }
        let label = crate::model::label(model);
        let queued = q
            .line(label, false)
            .is_some_and(|l| l.waiting.load(Ordering::Acquire) > 0);
        if !queued {
            match self.pick_tokens(model, tried, tokens) {
                Pick::Quota(w) if w.wait <= timeout => {}
                other => return other,
            }
        }
        let Some(line) = q.line(label, true) else {
            return self.pick_tokens(model, tried, tokens);
        };
        if line.waiting.fetch_add(1, Ordering::AcqRel) >= q.max.load(Ordering::Relaxed) {
            line.waiting.fetch_sub(1, Ordering::AcqRel);
            return self.pick_tokens(model, tried, tokens);
        }
        let _in_line = InLine(&line);
        let deadline = Instant::now() + timeout;
        let Ok(_head) = tokio::time::timeout_at(deadline, line.head.lock()).await else {
            return self.pick_tokens(model, tried, tokens);
        };
        loop {
            match self.pick_tokens(model, tried, tokens) {
                Pick::Quota(w) => {
                    let now = Instant::now();
                    if now + w.wait > deadline {
                        // The next slot opens too late: answer now.
                        return Pick::Quota(w);
                    }
                    tokio::time::sleep(w.wait.min(POLL).max(Duration::from_millis(1))).await;
                }
                other => return other,
            }
        }
    }
}
