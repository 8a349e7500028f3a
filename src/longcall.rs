//! Long calls: the deadline of one client request over all its upstream
//! attempts (`REQUEST_TIMEOUT`), its budget of retries after a timed-out
//! generation (`TIMEOUT_RETRIES`), and what counts as an empty answer
//! ([`is_empty_answer`]: a 200 that is a failure, retried on another key),
//! and heartbeats while a stream is silent ([`within`], [`beating`]: one
//! timer per stream, reset, and a static heartbeat, never an allocation).
//!
//! The router runs each request inside [`scope`] with a fresh [`Budget`]; the
//! upstream path reads it where it waits ([`clamp`], [`expired`],
//! [`timed_out`]) without any signature carrying it, so every route — and a
//! handler added later — gets the same deadline. A task spawned to carry on
//! the request re-enters the scope with [`current`]. Outside a scope
//! (scheduler calls, unit tests) nothing is bounded beyond each wait's own
//! timeout.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// One request's deadline and timed-out generations so far.
#[derive(Clone, Debug)]
pub struct Budget {
    /// When the request must have its whole answer (or first stream content).
    pub deadline: Instant,
    /// Timed-out generations still allowed a retry.
    retries: Cell<u32>,
}

impl Budget {
    /// A budget starting now: `timeout` (`REQUEST_TIMEOUT`) and `retries`
    /// (`TIMEOUT_RETRIES`).
    pub fn new(timeout: Duration, retries: u32) -> Budget {
        Budget {
            deadline: Instant::now() + timeout,
            retries: Cell::new(retries),
        }
    }
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Run `fut` with `budget` as the request's budget.
pub async fn scope<F: Future>(budget: Budget, fut: F) -> F::Output {
    BUDGET.scope(budget, fut).await
}

/// `fut` running under `budget` (if any), wherever it is polled: the
/// current request's budget carried into a future a task may take over.
pub async fn scoped<F: Future>(budget: Option<Budget>, fut: F) -> F::Output {
    match budget {
        Some(b) => BUDGET.scope(b, fut).await,
        None => fut.await,
    }
}

/// The current request's budget (to carry it into a spawned task), if any.
pub fn current() -> Option<Budget> {
    BUDGET.try_with(Budget::clone).ok()
}

/// The time left before the request's deadline (`None`: no deadline).
pub fn remaining() -> Option<Duration> {
    BUDGET
        .try_with(|b| b.deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// `wait`, shortened to what is left before the deadline.
pub fn clamp(wait: Duration) -> Duration {
    remaining().map_or(wait, |r| r.min(wait))
}

/// Whether the deadline has passed.
pub fn expired() -> bool {
    remaining().is_some_and(|r| r.is_zero())
}

/// Count a timed-out generation; whether it may still be retried (within
/// `TIMEOUT_RETRIES`, before the deadline).
pub fn timed_out() -> bool {
    let retry = BUDGET
        .try_with(|b| {
            let left = b.retries.get();
            b.retries.set(left.saturating_sub(1));
            left > 0
        })
        .unwrap_or(true);
    retry && !expired()
}

/// `: keep-alive`, the heartbeat on OpenAI routes (an SSE comment).
pub const OPENAI_HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// An empty line, the heartbeat on native SSE streams (every google-genai
/// SDK skips it; the Python SDK fails on comment lines).
pub const NATIVE_HEARTBEAT: &[u8] = b"\n";

/// Run `fut` for at most `wait`: its output, or `None` (it is still
/// pending and may be polled on, e.g. by [`beating`]).
pub async fn within<F: Future + Unpin>(fut: &mut F, wait: Duration) -> Option<F::Output> {
    tokio::time::timeout(wait, fut).await.ok()
}

/// Drive `fut` to its end while sending `beat` into `tx` at once and then
/// every `every`; `None` when the client went away (the channel closed).
pub async fn beating<F: Future + Unpin>(
    fut: &mut F,
    every: Duration,
    tx: &tokio::sync::mpsc::Sender<bytes::Bytes>,
    beat: &'static [u8],
) -> Option<F::Output> {
    let tick = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(tick);
    loop {
        tokio::select! {
            out = &mut *fut => return Some(out),
            () = &mut tick => {
                if tx.send(bytes::Bytes::from_static(beat)).await.is_err() {
                    return None;
                }
                tick.as_mut().reset(Instant::now() + every);
            }
        }
    }
}

/// Resolves once `drain` (`App::drain`) is `true`: shutdown asks open
/// streams to end (never, if the sender is gone).
pub async fn drained(drain: &mut tokio::sync::watch::Receiver<bool>) {
    if drain.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The error log's class (message prefix) of an empty answer.
pub const EMPTY_ANSWER: &str = "empty_answer";

/// Whether `json` — one Gemini `generateContent` answer, or one stream
/// event — is an empty answer: no error, no blocked prompt, and no
/// candidate holding a part, whose finish reason (if any) is `STOP`. A
/// candidate stopped for SAFETY, RECITATION, MAX_TOKENS… or a blocked
/// prompt is an answer; so is anything that does not parse as one.
pub fn is_empty_answer(json: &[u8]) -> bool {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<IgnoredAny>,
        #[serde(default, rename = "promptFeedback")]
        feedback: Option<Feedback>,
        #[serde(default)]
        candidates: Option<Vec<Candidate>>,
    }
    #[derive(serde::Deserialize)]
    struct Feedback {
        #[serde(default, rename = "blockReason")]
        block: Option<IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Candidate {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default, rename = "finishReason")]
        finish: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Content {
        #[serde(default)]
        parts: Option<Vec<IgnoredAny>>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(json) else {
        return false;
    };
    if p.error.is_some() || p.feedback.is_some_and(|f| f.block.is_some()) {
        return false;
    }
    p.candidates.unwrap_or_default().iter().all(|c| {
        let parts = c.content.as_ref().and_then(|c| c.parts.as_ref());
        parts.is_none_or(Vec::is_empty)
            && matches!(
                c.finish.as_deref(),
                None | Some("STOP" | "FINISH_REASON_UNSPECIFIED")
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_clamps_waits_and_timeouts_are_counted() {
        assert_eq!(clamp(Duration::from_secs(5)), Duration::from_secs(5));
        assert!(!expired() && timed_out(), "no scope: nothing bounded");
        scope(Budget::new(Duration::from_secs(10), 1), async {
            assert_eq!(clamp(Duration::from_secs(300)), Duration::from_secs(10));
            assert_eq!(clamp(Duration::from_secs(2)), Duration::from_secs(2));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(clamp(Duration::from_secs(300)), Duration::from_secs(6));
            assert!(timed_out(), "one retry allowed");
            assert!(!timed_out(), "only one");
            let b = current().unwrap();
            tokio::time::sleep(Duration::from_secs(7)).await;
            assert!(expired());
            assert_eq!(b.deadline, current().unwrap().deadline);
        })
        .await;
    }

    #[test]
    fn empty_answers_are_told_from_answers() {
        for empty in [
            r#"{"usageMetadata": {"promptTokenCount": 3}}"#,
            r#"{"candidates": []}"#,
            r#"{"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}]}"#,
            r#"{"candidates": [{"content": {"parts": []}}]}"#,
        ] {
            assert!(is_empty_answer(empty.as_bytes()), "{empty}");
        }
        for answer in [
            r#"{"candidates": [{"content": {"parts": [{"text": ""}]}}]}"#,
            r#"{"candidates": [{"finishReason": "SAFETY"}]}"#,
            r#"{"candidates": [{"finishReason": "RECITATION"}]}"#,
            r#"{"promptFeedback": {"blockReason": "SAFETY"}}"#,
            r#"{"error": {"code": 500}}"#,
            "not json",
        ] {
            assert!(!is_empty_answer(answer.as_bytes()), "{answer}");
        }
    }
}
