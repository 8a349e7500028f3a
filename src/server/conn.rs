//! Connection bookkeeping for the accept loop: the live connections, how many
//! requests each has in flight and since when it has been idle, whether one of
//! its answers is stuck because the client stopped taking data (an HTTP/2
//! client with a closed flow-control window never blocks the socket, so the
//! socket-level stall guard cannot see it), and which idle connection gives
//! way when the gateway is at `MAX_CONNECTIONS`.
//!
//! Per request this costs a reference count, two counter updates and a clock
//! read; per response chunk two counter updates. No allocation.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::body::{Body, BoxError};

/// How long a connection that was asked to close (an HTTP/2 GOAWAY sent) may
/// stay open with nothing in flight: an HTTP/2 client must answer the
/// shutdown PING in that time, and data already handed to the connection
/// must be taken.
pub(super) const DRAIN: Duration = Duration::from_secs(1);

/// While a new connection waits for a slot, another idle connection is asked
/// to make room this often (the one asked first may be slow to close).
pub(super) const RECLAIM_RETRY: Duration = Duration::from_millis(250);

/// Response data goes to hyper in pieces of at most this size (one HTTP/2
/// frame), so a large answer stays "in flight", and its progress visible,
/// until the client has taken nearly all of it, instead of sitting whole in an
/// HTTP/2 send buffer. A client must so take at least about this much every
/// `CLIENT_TIMEOUT` to keep an answer going.
const SLICE: usize = 16 * 1024;

/// Marks a body that is not waiting to be taken.
const NOT_WAITING: u8 = u8::MAX;

/// The live connections (at most `MAX_CONNECTIONS`: one entry per slot held).
pub(super) struct Conns {
    base: Instant,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    live: Vec<Option<Arc<Conn>>>,
    free: Vec<usize>,
}

impl Conns {
    /// An empty registry.
    pub(super) fn new() -> Arc<Conns> {
        Arc::new(Conns {
            base: Instant::now(),
            slots: Mutex::new(Slots::default()),
        })
    }

    /// Record a new connection (idle from now) until the returned guard drops.
    pub(super) fn open(self: &Arc<Self>) -> Registration {
        let conn = Arc::new(Conn {
            base: self.base,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            used: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            epoch: AtomicU32::new(0),
            waiting: Default::default(),
            reclaim: Notify::new(),
        });
        conn.idle_since.store(conn.now_ms(), Ordering::Release);
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match s.free.pop() {
            Some(i) => {
                s.live[i] = Some(conn.clone());
                i
            }
            None => {
                s.live.push(Some(conn.clone()));
                s.live.len() - 1
            }
        };
        Registration {
            conns: self.clone(),
            index,
            conn,
        }
    }

    /// Whether any connection has a request (or its answer) in flight.
    pub(super) fn busy(&self) -> bool {
        let s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s.live
            .iter()
            .flatten()
            .any(|c| c.in_flight.load(Ordering::Acquire) > 0)
    }

    /// Ask the connection that has been idle longest (nothing in flight, not
    /// already closing) to close gracefully. False when there is none.
    pub(super) fn reclaim(&self) -> bool {
        let s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = s
            .live
            .iter()
            .flatten()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
        match victim {
            Some(c) => {
                c.closing.store(true, Ordering::Relaxed);
                c.reclaim.notify_one();
                true
            }
            None => false,
        }
    }

    /// Live connections (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        let s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s.live.iter().flatten().count()
    }
}

/// A connection's entry in [`Conns`]; dropping it removes the entry.
pub(super) struct Registration {
    conns: Arc<Conns>,
    index: usize,
    /// The connection's shared state.
    pub(super) conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut s = self
            .conns
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.live[self.index] = None;
        s.free.push(self.index);
    }
}

/// What a connection's task should do after a check.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Nothing yet; check again at this instant.
    Sleep(Instant),
    /// Idle for `CLIENT_TIMEOUT`: close gracefully (HTTP/2 GOAWAY).
    Close,
    /// Drop the connection now, for this reason.
    Drop(&'static str),
}

/// One connection's state, shared by its task, its requests and the registry.
pub(super) struct Conn {
    base: Instant,
    /// Requests whose answer has not been fully handed over (or dropped).
    in_flight: AtomicU32,
    /// When the last request ended (or the connection opened), in ms since `base`.
    idle_since: AtomicU64,
    /// Whether a request ever arrived.
    used: AtomicBool,
    /// Asked to close (reclaimed or shutting down): not a reclaim candidate.
    closing: AtomicBool,
    /// Stall epoch; advanced by the connection's task every half `CLIENT_TIMEOUT`.
    epoch: AtomicU32,
    /// Response bodies that produced data (or were just created) and have not
    /// been asked for more since, by the epoch (mod 3) they started waiting in.
    waiting: [AtomicU32; 3],
    /// Signalled by [`Conns::reclaim`].
    reclaim: Notify,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves when the registry asks this connection to make room.
    pub(super) async fn reclaimed(&self) {
        self.reclaim.notified().await
    }

    /// Mark the connection as closing (so it is not reclaimed again).
    pub(super) fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Decide what to do at `now`. `closing`: when a graceful close began.
    /// `next_step`: when the stall epoch may next advance (updated here; the
    /// epoch advances at most once per half `timeout`).
    pub(super) fn check(
        &self,
        now: Instant,
        timeout: Duration,
        closing: Option<Instant>,
        next_step: &mut Instant,
    ) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            if now >= *next_step {
                if self.stalled() {
                    return Verdict::Drop("the client stopped taking its answer");
                }
                *next_step = now + timeout / 2;
            }
            return Verdict::Sleep(*next_step);
        }
        let idle_since = self.base + Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        let (from, limit) = match closing {
            Some(c) => (c.max(idle_since), DRAIN),
            None => (idle_since, timeout),
        };
        if now < from + limit {
            Verdict::Sleep(from + limit)
        } else if closing.is_some() {
            Verdict::Drop("it did not close after GOAWAY")
        } else if !self.used.load(Ordering::Relaxed) {
            Verdict::Drop("no request arrived in time")
        } else {
            Verdict::Close
        }
    }

    /// Advance the stall epoch; true if a body has waited two whole epochs
    /// (at least `CLIENT_TIMEOUT`) to be asked for more data.
    fn stalled(&self) -> bool {
        let next = self.epoch.load(Ordering::Relaxed).wrapping_add(1);
        if self.waiting[(next % 3) as usize].load(Ordering::Acquire) > 0 {
            return true;
        }
        self.epoch.store(next, Ordering::Release);
        false
    }
}

/// A request in flight on its connection, from the head until the answer has
/// been handed over (or dropped).
pub(super) struct Busy(Arc<Conn>);

impl Busy {
    /// A request started on `conn`.
    pub(super) fn start(conn: &Arc<Conn>) -> Busy {
        conn.used.store(true, Ordering::Relaxed);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let c = &self.0;
        // Before the decrement: whoever sees the count drop sees the time.
        c.idle_since.store(c.now_ms(), Ordering::Release);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it ends or is
/// dropped, hands data over in pieces of at most `SLICE` bytes, and tells the
/// connection while data it produced has not been taken.
pub(super) struct Tracked {
    inner: Body,
    rest: Option<Bytes>,
    slot: u8,
    busy: Busy,
}

impl Tracked {
    /// Wrap the answer of the request `busy`.
    pub(super) fn new(inner: Body, busy: Busy) -> Tracked {
        let mut t = Tracked {
            inner,
            rest: None,
            slot: NOT_WAITING,
            busy,
        };
        t.offered();
        t
    }

    /// Data (or the head) is ready for the client: waiting to be taken.
    fn offered(&mut self) {
        let c = &self.busy.0;
        let slot = c.epoch.load(Ordering::Acquire) % 3;
        c.waiting[slot as usize].fetch_add(1, Ordering::AcqRel);
        self.slot = slot as u8;
    }

    /// Asked for more: no longer waiting.
    fn taken(&mut self) {
        if self.slot != NOT_WAITING {
            self.busy.0.waiting[self.slot as usize].fetch_sub(1, Ordering::AcqRel);
            self.slot = NOT_WAITING;
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.taken();
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.taken();
        let frame = match this.rest.take() {
            Some(rest) => Frame::data(rest),
            // Pending here is the upstream being slow, not the client.
            None => match ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                end => return Poll::Ready(end),
            },
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                if data.len() > SLICE {
                    this.rest = Some(data.split_off(SLICE));
                }
                Frame::data(data)
            }
            Err(frame) => frame,
        };
        this.offered();
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(rest) = &self.rest {
            let n = rest.len() as u64;
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + n);
            }
            hint.set_lower(hint.lower() + n);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use http_body_util::BodyExt;

    const T: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_large_answer_is_handed_over_in_slices_and_whole() {
        let conns = Conns::new();
        let reg = conns.open();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut b = Tracked::new(body::full(data.clone()), Busy::start(&reg.conn));
        assert_eq!(b.size_hint().exact(), Some(200_000));
        let mut got = Vec::new();
        let mut pieces = 0;
        while let Some(f) = b.frame().await {
            let d = f.unwrap().into_data().unwrap();
            assert!(d.len() <= SLICE);
            got.extend_from_slice(&d);
            pieces += 1;
        }
        assert_eq!(got, data);
        assert_eq!(pieces, 200_000usize.div_ceil(SLICE));
        assert!(b.is_end_stream());
        assert_eq!(reg.conn.in_flight.load(Ordering::SeqCst), 1);
        drop(b);
        assert_eq!(reg.conn.in_flight.load(Ordering::SeqCst), 0);
        assert!(
            reg.conn
                .waiting
                .iter()
                .all(|w| w.load(Ordering::SeqCst) == 0)
        );
    }

    #[tokio::test]
    async fn an_answer_not_taken_for_two_epochs_is_a_stall() {
        let conns = Conns::new();
        let reg = conns.open();
        let c = &reg.conn;
        let t0 = Instant::now();
        let mut step = t0;
        let mut b = Tracked::new(body::full("x"), Busy::start(c));
        // Created and not polled: waiting. One epoch passes: not yet a stall.
        assert_eq!(c.check(t0, T, None, &mut step), Verdict::Sleep(t0 + T / 2));
        let t1 = t0 + T / 2;
        assert_eq!(c.check(t1, T, None, &mut step), Verdict::Sleep(t1 + T / 2));
        // A check before the step is due changes nothing.
        assert_eq!(c.check(t1, T, None, &mut step), Verdict::Sleep(t1 + T / 2));
        // Taking data resets the wait: the body now waits in the newest epoch.
        assert!(b.frame().await.is_some());
        let t2 = t1 + T / 2;
        assert_eq!(c.check(t2, T, None, &mut step), Verdict::Sleep(t2 + T / 2));
        let t3 = t2 + T / 2;
        assert_eq!(c.check(t3, T, None, &mut step), Verdict::Sleep(t3 + T / 2));
        let t4 = t3 + T / 2;
        assert!(matches!(c.check(t4, T, None, &mut step), Verdict::Drop(_)));
        drop(b);
    }

    #[tokio::test]
    async fn a_moving_answer_does_not_hide_a_stuck_one() {
        let conns = Conns::new();
        let reg = conns.open();
        let c = &reg.conn;
        let (tx, inner) = body::ChannelBody::pair(8);
        let mut moving = Tracked::new(inner, Busy::start(c));
        let stuck = Tracked::new(body::full("x"), Busy::start(c));
        let mut now = Instant::now();
        let mut step = now;
        let mut verdicts = Vec::new();
        for _ in 0..3 {
            tx.send(Bytes::from_static(b"tick")).await.unwrap();
            assert!(moving.frame().await.is_some());
            verdicts.push(c.check(now, T, None, &mut step));
            now += T / 2;
        }
        assert!(matches!(
            verdicts[..2],
            [Verdict::Sleep(_), Verdict::Sleep(_)]
        ));
        assert!(matches!(verdicts[2], Verdict::Drop(_)), "{verdicts:?}");
        drop((stuck, moving));
        assert_eq!(c.in_flight.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_slow_body_is_not_a_stall() {
        let conns = Conns::new();
        let reg = conns.open();
        let c = &reg.conn;
        let (tx, inner) = body::ChannelBody::pair(1);
        let mut b = Tracked::new(inner, Busy::start(c));
        // Polled, and the upstream has nothing yet: not waiting on the client.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(&mut b).poll_frame(&mut cx).is_pending());
        let mut step = Instant::now();
        let mut now = step;
        for _ in 0..10 {
            assert!(matches!(
                c.check(now, T, None, &mut step),
                Verdict::Sleep(_)
            ));
            now += T / 2;
        }
        drop(tx);
    }

    #[test]
    fn idle_connections_close_and_unused_ones_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let conns = Conns::new();
            let reg = conns.open();
            let c = &reg.conn;
            let t0 = Instant::now();
            let mut step = t0;
            assert!(matches!(c.check(t0, T, None, &mut step), Verdict::Sleep(_)));
            assert!(matches!(
                c.check(t0 + T * 2, T, None, &mut step),
                Verdict::Drop(_)
            ));
            drop(Busy::start(c));
            let t = Instant::now();
            assert_eq!(c.check(t + T * 2, T, None, &mut step), Verdict::Close);
            // Closing: dropped once idle for DRAIN after the close began.
            assert_eq!(
                c.check(t + T * 2, T, Some(t + T * 2), &mut step),
                Verdict::Sleep(t + T * 2 + DRAIN)
            );
            assert!(matches!(
                c.check(t + T * 2 + DRAIN, T, Some(t + T * 2), &mut step),
                Verdict::Drop(_)
            ));
        });
    }

    #[tokio::test]
    async fn reclaim_picks_the_longest_idle_connection_with_nothing_in_flight() {
        let conns = Conns::new();
        let a = conns.open();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = conns.open();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let c = conns.open();
        let busy = Busy::start(&a.conn);
        assert_eq!(conns.len(), 3);
        assert!(conns.reclaim());
        assert!(b.conn.closing.load(Ordering::SeqCst));
        assert!(!a.conn.closing.load(Ordering::SeqCst));
        tokio::time::timeout(T, b.conn.reclaimed()).await.unwrap();
        assert!(conns.reclaim());
        assert!(c.conn.closing.load(Ordering::SeqCst));
        // Only the busy one is left: nothing to reclaim.
        assert!(!conns.reclaim());
        drop(busy);
        assert!(conns.reclaim());
        drop((a, b));
        assert_eq!(conns.len(), 1);
        // Freed entries are reused.
        let d = conns.open();
        assert_eq!(conns.len(), 2);
        assert!(d.index < 2);
    }
}
