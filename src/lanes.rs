//! The upstream clients (TLS, pooling, HTTP versions, through a proxy or
//! not) and their lanes: Gemini calls spread over several pooled clients
//! so that no HTTP/2 connection carries more than
//! `UPSTREAM_STREAMS_PER_CONNECTION` calls at once.
//!
//! hyper-util's pooled client keeps one HTTP/2 connection per host, and once
//! the server's `SETTINGS_MAX_CONCURRENT_STREAMS` is reached it queues further
//! requests on that connection instead of opening another (RFC 9113 §9.1 asks
//! clients not to open more than one connection per host). Google's front
//! ends negotiate HTTP/2 and allow a bounded number of streams per connection,
//! so with one connection the 101st concurrent call (say, a thinking model
//! silent for minutes) would wait for an earlier one to end. A [`Lane`] is one
//! client with its own pool, hence its own connection; a call takes a seat in
//! the first lane with room, a new lane when every lane is full, and keeps it
//! until its answer's body is done or dropped ([`UpBody`]).
//!
//! Over HTTP/1.1 every call has its own connection anyway; lanes then only
//! split the idle pool, and a lightly loaded gateway uses lane 0 alone.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Most lanes one [`Lanes`] opens; past it, calls share the least busy lane
/// (its server then queues them).
const MAX_LANES: usize = 4096;

/// The pooled HTTP/1.1 + HTTP/2 client with webpki roots compiled in, over a
/// direct connection or one outbound proxy ([`crate::proxy::Connector`]).
/// Its request body is the gateway's boxed [`crate::body::Body`], as the
/// side client's ([`crate::proxy::SideClient`]): one client type, so hyper's
/// client code is in the binary once (87 KB less than a `Full` body's own copy).
pub type HttpClient = Client<crate::proxy::Tls, crate::body::Body>;

/// A client for Gemini calls through `proxy` (TLS to Google inside its
/// tunnel), or direct when `None`, speaking `proto` (`UPSTREAM_PROTOCOL`):
/// TCP_NODELAY and keep-alive, connection pooling, TLS via rustls with the
/// webpki roots (no CA files needed), plain `http://` allowed for a local
/// upstream. HTTP/2 connections are pinged every 30 s while calls are open
/// on them, so a connection that died under a silent stream is noticed.
pub fn build_client_with(proxy: Option<&crate::proxy::ProxySpec>, proto: Protocol) -> HttpClient {
    let connector = crate::proxy::Connector::new(crate::proxy::tcp_connector(), proxy);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http();
    let https = match proto {
        Protocol::Http1 => https.enable_http1().wrap_connector(connector),
        Protocol::Auto | Protocol::Http2 => https.enable_all_versions().wrap_connector(connector),
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(512)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(proto == Protocol::Http2)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .build(crate::proxy::Tls(https))
}

/// Which HTTP versions Gemini calls use (`UPSTREAM_PROTOCOL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2 when TLS negotiates it (ALPN; Google does), else HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only (one connection per call in flight).
    Http1,
    /// HTTP/2 only: over TLS, or over plain `http://` with prior knowledge
    /// (h2c), for a local relay that speaks it.
    Http2,
}

impl Protocol {
    /// Parse `auto`, `http1` or `http2` (any case).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Protocol::Auto),
            "http1" | "http/1.1" => Some(Protocol::Http1),
            "http2" | "h2" => Some(Protocol::Http2),
            _ => None,
        }
    }

    /// The setting's value as shown in `/admin/config`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// One pooled client (its own connections) and the calls in flight on it.
pub struct Lane {
    client: HttpClient,
    in_flight: AtomicUsize,
}

impl Lane {
    /// Take a seat if fewer than `cap` calls are in flight here.
    fn try_seat(self: &Arc<Lane>, cap: usize) -> Option<Seat> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()
            .map(|_| Seat(self.clone()))
    }
}

/// A call's place in a lane, given back when dropped.
pub struct Seat(Arc<Lane>);

impl Seat {
    /// The lane's client, to send the call on.
    pub fn client(&self) -> &HttpClient {
        &self.0.client
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The lanes of one upstream route (direct, or one outbound proxy).
pub struct Lanes {
    lanes: ArcSwap<Vec<Arc<Lane>>>,
    /// Most calls in flight per lane (`UPSTREAM_STREAMS_PER_CONNECTION`).
    cap: usize,
    /// The lane the last seat was found in: the search starts there, so a
    /// seat costs the same with one lane or thousands.
    hint: AtomicUsize,
    make: Box<dyn Fn() -> HttpClient + Send + Sync>,
}

impl Lanes {
    /// Lanes of clients made by `make`, at most `cap` calls in flight each.
    pub fn new(cap: usize, make: impl Fn() -> HttpClient + Send + Sync + 'static) -> Lanes {
        let first = Arc::new(Lane {
            client: make(),
            in_flight: AtomicUsize::new(0),
        });
        Lanes {
            lanes: ArcSwap::from_pointee(vec![first]),
            cap: cap.max(1),
            hint: AtomicUsize::new(0),
            make: Box::new(make),
        }
    }

    /// A seat for one call: in the lane of the last seat if it has room, else
    /// the next lane with room, else a new lane (or, at [`MAX_LANES`], the
    /// least busy one).
    pub fn seat(&self) -> Seat {
        let lanes = self.lanes.load();
        let n = lanes.len();
        let start = self.hint.load(Ordering::Relaxed) % n;
        for i in 0..n {
            let at = (start + i) % n;
            if let Some(seat) = lanes[at].try_seat(self.cap) {
                if at != start {
                    self.hint.store(at, Ordering::Relaxed);
                }
                return seat;
            }
        }
        drop(lanes);
        self.grow()
    }

    /// Every lane full: open a new one (racing callers may each add one).
    fn grow(&self) -> Seat {
        let lanes = self.lanes.load();
        if lanes.len() >= MAX_LANES {
            let least = lanes
                .iter()
                .min_by_key(|l| l.in_flight.load(Ordering::Relaxed))
                .unwrap_or(&lanes[0]);
            least.in_flight.fetch_add(1, Ordering::AcqRel);
            return Seat(least.clone());
        }
        let lane = Arc::new(Lane {
            client: (self.make)(),
            in_flight: AtomicUsize::new(1),
        });
        let seat = Seat(lane.clone());
        self.lanes.rcu(|old| {
            let mut next = Vec::with_capacity(old.len() + 1);
            next.extend(old.iter().cloned());
            next.push(lane.clone());
            next
        });
        self.hint
            .store(self.lanes.load().len() - 1, Ordering::Relaxed);
        seat
    }

    /// How many lanes are open (lane 0 always is).
    pub fn count(&self) -> usize {
        self.lanes.load().len()
    }

    /// Calls in flight over every lane.
    pub fn in_flight(&self) -> usize {
        let lanes = self.lanes.load();
        lanes
            .iter()
            .map(|l| l.in_flight.load(Ordering::Relaxed))
            .sum()
    }
}

/// An upstream answer's body: hyper's, holding its call's [`Seat`] until the
/// body ends or is dropped.
pub struct UpBody {
    inner: Incoming,
    seat: Option<Seat>,
    /// Re-cuts and paces a Gemini stream's text (`STREAM_SMOOTHING`).
    smooth: Option<Box<crate::smooth::Smoother>>,
}

impl UpBody {
    /// `inner`, holding `seat` (none for calls outside the lanes).
    pub fn new(inner: Incoming, seat: Option<Seat>) -> UpBody {
        UpBody {
            inner,
            seat,
            smooth: None,
        }
    }

    /// This body read through a [`crate::smooth::Smoother`] adding at most
    /// `bound` to any text, if `bound` is given.
    pub fn smoothed(mut self, bound: Option<std::time::Duration>) -> UpBody {
        self.smooth = bound.map(|b| Box::new(crate::smooth::Smoother::new(b)));
        self
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.smooth {
            Some(s) => s.poll(Pin::new(&mut this.inner), cx),
            None => Pin::new(&mut this.inner).poll_frame(cx),
        };
        if let Poll::Ready(None | Some(Err(_))) = polled {
            self.seat = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.smooth.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.smooth {
            Some(_) => SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lanes(cap: usize) -> Lanes {
        Lanes::new(cap, || build_client_with(None, Protocol::Auto))
    }

    #[test]
    fn a_full_lane_opens_the_next_and_a_freed_seat_is_reused() {
        let l = lanes(2);
        let a = l.seat();
        let b = l.seat();
        assert_eq!(l.count(), 1);
        let c = l.seat();
        assert_eq!((l.count(), l.in_flight()), (2, 3));
        drop(a);
        drop(b);
        // The hint is on lane 1 (one seat taken): it fills first, then lane 0.
        let d = l.seat();
        let e = l.seat();
        assert_eq!((l.count(), l.in_flight()), (2, 3));
        drop((c, d, e));
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn thousands_of_calls_open_one_lane_per_cap() {
        let l = lanes(100);
        let seats: Vec<Seat> = (0..10_000).map(|_| l.seat()).collect();
        assert_eq!((l.count(), l.in_flight()), (100, 10_000));
        drop(seats);
        assert_eq!(l.in_flight(), 0);
        let again: Vec<Seat> = (0..10_000).map(|_| l.seat()).collect();
        assert_eq!(l.count(), 100, "freed lanes are reused, none added");
        drop(again);
    }

    #[test]
    fn protocol_names_parse() {
        assert_eq!(Protocol::parse(" HTTP2 "), Some(Protocol::Http2));
        assert_eq!(Protocol::parse("http1"), Some(Protocol::Http1));
        assert_eq!(Protocol::parse("auto"), Some(Protocol::Auto));
        assert_eq!(Protocol::parse("spdy"), None);
        for p in [Protocol::Auto, Protocol::Http1, Protocol::Http2] {
            assert_eq!(Protocol::parse(p.name()), Some(p));
        }
    }
}
