//! Long calls: the deadline of one client request over all its upstream
//! attempts (`REQUEST_TIMEOUT`) and its budget of retries after a timed-out
//! generation (`TIMEOUT_RETRIES`).
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
}
