//! Outbound proxies (`PROXIES`): parsing and masking the proxy URLs, the
//! connector each proxy's pooled client is built on ([`Connector`]: hyper-util's
//! own HTTP `CONNECT` [`Tunnel`] and [`SocksV5`], for `https://` proxies the
//! tunnel inside a TLS session to the proxy (rustls, the webpki roots and
//! `PROXY_CA_FILE`), TLS to Google still inside the tunnel), and the proxies' health ([`Proxies`]): which proxy a key goes
//! through (rendezvous hashing of key id × proxy, so adding a proxy moves only
//! its share of the keys; or plain rotation), the rest a proxy takes after it
//! failed to connect (60 s, doubling to 10 min), and what `/admin/proxies`
//! shows. Credentials never leave this module unmasked.
//!
//! The requests beside the API calls go the same way on their own clients
//! ([`SideClient`], bodies streamed): a Files API upload through its key's
//! proxy ([`send_for_key`]), image fetches and the keep-alive ping through
//! the proxies in turn ([`send_any`]); with `PROXIES` set nothing leaves
//! around the proxies.
//!
//! With `PROXIES` empty none of this is on the request path: the upstream
//! keeps its one direct client ([`Connector::Direct`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};

/// Most entries `PROXIES` may list.
pub const MAX_PROXIES: usize = 256;
/// The first rest of a proxy that failed to connect.
pub const REST_FIRST: Duration = Duration::from_secs(60);
/// The longest rest (each failure after a rest doubles it up to this).
pub const REST_MAX: Duration = Duration::from_secs(600);

/// How a proxy is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `http://`: an HTTP proxy, asked to `CONNECT` to Google.
    Http,
    /// `https://`: the same `CONNECT`, inside a TLS session to the proxy.
    Https,
    /// `socks5://` (also `socks5h://`: names are always resolved by the proxy).
    Socks5,
}

/// One parsed `PROXIES` entry.
#[derive(Clone)]
pub struct ProxySpec {
    /// How it is spoken to.
    pub kind: Kind,
    /// Its host (an IPv6 address in brackets).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `user:password` from the URL, percent-decoded (secrets).
    auth: Option<(String, String)>,
    /// `https://`: the TLS settings to the proxy (its name checked against
    /// the webpki roots and `PROXY_CA_FILE`, no ALPN).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ProxySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl ProxySpec {
    /// Parse one entry: `http://`, `https://` or `socks5://` (`socks5h://`),
    /// an optional `user:password@` (percent-encoded), a host and a port
    /// (default 80 for `http`, 443 for `https`, 1080 for `socks5`). The error names the entry with its
    /// credentials masked ([`mask_url`]).
    pub fn parse(url: &str) -> Result<ProxySpec, String> {
        let url = url.trim();
        let bad = |why: &str| format!("`{}`: {why}", mask_url(url));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected a URL such as http://host:port or socks5://host:port"))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Kind::Http, 80),
            "https" => (Kind::Https, 443),
            "socks5" | "socks5h" => (Kind::Socks5, 1080),
            _ => return Err(bad("the scheme must be http://, https:// or socks5://")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a proxy URL has no path, query or fragment"));
        }
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((cred, hp)) => {
                let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
                let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
                let pass =
                    percent_decode(pass).ok_or_else(|| bad("bad %-escape in the password"))?;
                if user.len() > 255 || pass.len() > 255 {
                    return Err(bad("user and password are at most 255 bytes each"));
                }
                (Some((user, pass)), hp)
            }
            None => (None, rest),
        };
        let authority: http::uri::Authority = hostport
            .parse()
            .map_err(|_| bad("expected host:port after the scheme"))?;
        if authority.host().is_empty() {
            return Err(bad("the host is missing"));
        }
        // What follows the host: nothing, or `:port`.
        let after = hostport.get(authority.host().len()..).unwrap_or("");
        let port = match after.strip_prefix(':') {
            None if after.is_empty() => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("the port must be 1-65535")),
            },
            None => return Err(bad("expected host:port after the scheme")),
        };
        let tls = match kind {
            Kind::Https => Some(proxy_tls(&[]).map_err(|e| bad(&e))?),
            _ => None,
        };
        Ok(ProxySpec {
            kind,
            host: authority.host().to_string(),
            port,
            auth,
            tls,
        })
    }

    /// Trust `ca` (`PROXY_CA_FILE`) besides the webpki roots for the TLS
    /// session to this proxy (`https://` only; others are left as they are).
    pub fn trust(&mut self, ca: &[CertificateDer<'static>]) -> Result<(), String> {
        if self.tls.is_some() {
            self.tls = Some(proxy_tls(ca)?);
        }
        Ok(())
    }

    fn scheme(&self) -> &'static str {
        match self.kind {
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Socks5 => "socks5",
        }
    }

    /// The proxy as shown everywhere: `http://user:****@host:port`, or
    /// `http://host:port` without credentials.
    pub fn masked(&self) -> String {
        let scheme = self.scheme();
        match &self.auth {
            Some((user, _)) => format!("{scheme}://{user}:****@{}:{}", self.host, self.port),
            None => format!("{scheme}://{}:{}", self.host, self.port),
        }
    }

    /// What identifies the proxy for the hashing and for duplicates: its
    /// scheme, host and port (a new password moves no key).
    fn ident(&self) -> u64 {
        fnv(format!("{}://{}:{}", self.scheme(), self.host, self.port).as_bytes())
    }

    /// The address the connection goes to (no credentials in it): `https://`
    /// for a TLS session to the proxy (its host is the name checked), else
    /// `http://` (plain TCP).
    fn address(&self) -> Uri {
        let scheme = if self.kind == Kind::Https {
            "https"
        } else {
            "http"
        };
        let uri = format!("{scheme}://{}:{}", self.host, self.port);
        uri.parse()
            .unwrap_or_else(|_| Uri::from_static("http://0.0.0.0:1"))
    }
}

/// The TLS settings to an `https://` proxy: rustls (ring), the webpki roots
/// and `ca`, no ALPN (the proxy speaks HTTP/1.1 `CONNECT`).
fn proxy_tls(ca: &[CertificateDer<'static>]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for c in ca {
        roots
            .add(c.clone())
            .map_err(|e| format!("a certificate of PROXY_CA_FILE is not usable: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS to the proxy: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Read `PROXY_CA_FILE`: the PEM certificates (at least one) that `https://`
/// proxies may also be signed by (e.g. a private CA or a self-signed proxy).
pub fn load_ca(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no PEM certificate in it"));
    }
    proxy_tls(&certs).map_err(|e| format!("{path}: {e}"))?;
    Ok(certs)
}

/// `url` with whatever sits between the scheme and the last `@` (the
/// credentials) replaced by `****`, for messages about an entry that may not
/// even parse.
pub fn mask_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let cut: String = match url[start..].rfind('@') {
        Some(at) => format!("{}****{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    };
    cut.chars().take(200).collect()
}

/// `%XX`-decode `s`; `None` on a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// FNV-1a, 64 bits: a stable hash (the same in every build and replica).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The splitmix64 finalizer: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous weight of key `key` (its hash) on proxy `proxy` (its ident).
fn weight(key: u64, proxy: u64) -> u64 {
    mix(key ^ mix(proxy))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
mod io;
pub use io::Tls;
use io::{Either, Io};

/// The TCP connector under the TLS layer of an upstream client: straight to
/// Google, or through one proxy with hyper-util's own `CONNECT` tunnel (over
/// TLS to an `https://` proxy) or SOCKS5 handshake. Every variant yields the
/// same stream type, so the direct client and the proxies' clients are one
/// client type.
#[derive(Clone)]
pub enum Connector {
    /// Straight to the upstream (no `PROXIES`).
    Direct(HttpConnector),
    /// `CONNECT host:port` through an HTTP proxy.
    Tunnel(Tunnel<HttpConnector>),
    /// `CONNECT host:port` inside a TLS session to an `https://` proxy.
    TlsTunnel(Tunnel<HttpsConnector<HttpConnector>>),
    /// Through a SOCKS5 proxy (the proxy resolves the name).
    Socks(SocksV5<HttpConnector>),
}

impl Connector {
    /// The connector for `proxy` over `tcp` (straight when `None`).
    pub fn new(tcp: HttpConnector, proxy: Option<&ProxySpec>) -> Connector {
        let Some(p) = proxy else {
            return Connector::Direct(tcp);
        };
        match (p.kind, &p.tls) {
            (Kind::Https, Some(tls)) => {
                let tls = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((**tls).clone())
                    .https_only()
                    .enable_http1()
                    .wrap_connector(tcp);
                Connector::TlsTunnel(with_auth(Tunnel::new(p.address(), tls), p))
            }
            (Kind::Http | Kind::Https, _) => {
                Connector::Tunnel(with_auth(Tunnel::new(p.address(), tcp), p))
            }
            (Kind::Socks5, _) => Connector::Socks(match &p.auth {
                None => SocksV5::new(p.address(), tcp),
                Some((user, pass)) => {
                    SocksV5::new(p.address(), tcp).with_auth(user.clone(), pass.clone())
                }
            }),
        }
    }
}

/// `tunnel` sending the `Proxy-Authorization` of `p`'s `user:password`.
fn with_auth<C>(tunnel: Tunnel<C>, p: &ProxySpec) -> Tunnel<C> {
    use base64::Engine;
    let Some((user, pass)) = &p.auth else {
        return tunnel;
    };
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    match HeaderValue::from_str(&format!("Basic {token}")) {
        Ok(v) => tunnel.with_auth(v),
        Err(_) => tunnel,
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Io;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connector::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            Connector::Tunnel(c) => c.poll_ready(cx).map_err(Into::into),
            Connector::TlsTunnel(c) => c.poll_ready(cx).map_err(Into::into),
            Connector::Socks(c) => c.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let dst = match self {
            Connector::Direct(_) => dst,
            _ => with_port(dst),
        };
        match self {
            Connector::Direct(c) => {
                let f = c.call(dst);
                Box::pin(async move { Ok(Either::Plain(f.await?)) })
            }
            Connector::Tunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { handshake(f).await.map(Either::Plain) })
            }
            Connector::TlsTunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { handshake(f).await.map(Io::from) })
            }
            Connector::Socks(c) => {
                let f = c.call(dst);
                Box::pin(async move { handshake(f).await.map(Either::Plain) })
            }
        }
    }
}

/// `dst` with its port spelled out: hyper-util's tunnel and SOCKS5 ask for
/// port 443 when the URI names none, also for `http://` (port 80).
fn with_port(dst: Uri) -> Uri {
    if dst.port().is_some() || dst.scheme() != Some(&http::uri::Scheme::HTTP) {
        return dst;
    }
    let Some(host) = dst.host() else {
        return dst;
    };
    let authority = format!("{host}:80");
    let mut parts = dst.clone().into_parts();
    match authority.parse() {
        Ok(a) => {
            parts.authority = Some(a);
            Uri::from_parts(parts).unwrap_or(dst)
        }
        Err(_) => dst,
    }
}

/// Longest a proxy may take to open its tunnel (TCP connection, handshake,
/// its answer): a proxy that accepts and then says nothing is the proxy's
/// failure, not a slow answer from Google charged to the key.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A proxy's tunnel within [`HANDSHAKE_TIMEOUT`].
async fn handshake<T, E: Into<BoxError>>(
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(format!(
            "no tunnel from the proxy within {} s",
            HANDSHAKE_TIMEOUT.as_secs()
        )
        .into()),
    }
}

/// One proxy and its health.
struct Proxy {
    spec: ProxySpec,
    shown: String,
    ident: u64,
    /// Resting until this unix ms (0: not resting).
    until_ms: AtomicU64,
    /// Failures in a row (the next rest is 60 s × 2^(streak - 1), at most 10 min).
    streak: AtomicU32,
    calls: AtomicU64,
    failures: AtomicU64,
    last_error: std::sync::Mutex<Option<(u64, String)>>,
}

/// The configured proxies (`PROXIES`) and how keys are spread over them; a
/// clone shares them (their health, their turn, their clients).
#[derive(Clone)]
pub struct Proxies {
    list: Arc<[Proxy]>,
    /// `PROXIES_PER_KEY`: each key on its own proxy (rendezvous hashing);
    /// `false`: plain rotation per attempt.
    per_key: bool,
    turn: Arc<AtomicUsize>,
    /// The requests beside the API calls: one [`SideClient`] per proxy.
    sides: Arc<[SideClient]>,
}

impl Proxies {
    /// The proxies of `specs` (already checked by the configuration).
    pub fn new(specs: &[ProxySpec], per_key: bool) -> Proxies {
        let list = specs
            .iter()
            .map(|s| Proxy {
                spec: s.clone(),
                shown: s.masked(),
                ident: s.ident(),
                until_ms: AtomicU64::new(0),
                streak: AtomicU32::new(0),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                last_error: std::sync::Mutex::new(None),
            })
            .collect();
        Proxies {
            list,
            per_key,
            turn: Arc::new(AtomicUsize::new(0)),
            sides: specs.iter().map(|s| side_client(Some(s))).collect(),
        }
    }

    /// How many proxies there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Proxy `i`'s configuration (to build its client).
    pub fn spec(&self, i: usize) -> Option<&ProxySpec> {
        self.list.get(i).map(|p| &p.spec)
    }

    /// Proxy `i` as shown (credentials masked).
    pub fn shown(&self, i: usize) -> &str {
        self.list.get(i).map_or("", |p| p.shown.as_str())
    }

    fn resting(&self, i: usize, now_ms: u64) -> bool {
        self.list[i].until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// The proxy key `key_id` goes through when none rests: the one with the
    /// highest rendezvous weight.
    pub fn home(&self, key_id: &str) -> Option<usize> {
        let k = fnv(key_id.as_bytes());
        (0..self.list.len()).max_by_key(|&i| weight(k, self.list[i].ident))
    }

    /// The proxy the next attempt of key `key_id` goes through: the highest
    /// rendezvous weight among the proxies not resting (so a key moves only
    /// while its own proxy rests), or with `PROXIES_PER_KEY=false` the next
    /// one in turn not resting. `None` when every proxy rests.
    pub fn pick(&self, key_id: &str) -> Option<usize> {
        let now = crate::clock::unix_ms();
        let n = self.list.len();
        if !self.per_key {
            return self.in_turn(now);
        }
        let k = fnv(key_id.as_bytes());
        (0..n)
            .filter(|&i| !self.resting(i, now))
            .max_by_key(|&i| weight(k, self.list[i].ident))
    }

    /// The next proxy in turn not resting (rotation).
    fn in_turn(&self, now: u64) -> Option<usize> {
        let n = self.list.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|o| (start + o) % n)
            .find(|&i| !self.resting(i, now))
    }

    /// Proxy `i` carried an attempt (whatever Google answered): counted, and
    /// its failure streak ends.
    pub fn served(&self, i: usize) {
        if let Some(p) = self.list.get(i) {
            p.calls.fetch_add(1, Ordering::Relaxed);
            p.streak.store(0, Ordering::Relaxed);
        }
    }

    /// Proxy `i` failed to connect (`why`, already free of credentials):
    /// [`Proxies::failed`], a warning when its rest begins, and the message
    /// naming the proxy masked.
    pub fn connect_failed(&self, i: usize, why: &str) -> String {
        let message = format!("proxy {} failed: {why}", self.shown(i));
        if let Some(rest) = self.failed(i, why) {
            crate::warn!("{message}; it rests {} s", rest.as_secs());
        }
        message
    }

    /// Proxy `i` failed to connect (`why`, already free of credentials): it
    /// rests 60 s, doubling with each failure in a row up to 10 min (a
    /// failure while it already rests, from an attempt begun before, changes
    /// nothing). Returns the rest when a new one began (to log it once).
    pub fn failed(&self, i: usize, why: &str) -> Option<Duration> {
        let p = self.list.get(i)?;
        p.calls.fetch_add(1, Ordering::Relaxed);
        p.failures.fetch_add(1, Ordering::Relaxed);
        let now = crate::clock::unix_ms();
        *p.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, why.to_string()));
        let until = p.until_ms.load(Ordering::Relaxed);
        if until > now {
            return None;
        }
        let streak = p.streak.fetch_add(1, Ordering::Relaxed).min(10);
        let rest = REST_FIRST.saturating_mul(1 << streak).min(REST_MAX);
        let next = now + rest.as_millis() as u64;
        p.until_ms
            .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| rest)
    }

    /// Why every proxy is unusable now, for the 503 answer.
    pub fn down_message(&self) -> String {
        let now = crate::clock::unix_ms();
        let back = self
            .list
            .iter()
            .map(|p| p.until_ms.load(Ordering::Relaxed).saturating_sub(now))
            .min()
            .unwrap_or(0);
        format!(
            "Every outbound proxy (PROXIES) failed to connect and is resting; the first is back in {} s.",
            back.div_ceil(1000)
        )
    }

    /// What `/admin/proxies` shows: each proxy (masked), its state, the
    /// keys whose home it is, its counts; and each key's home and current
    /// proxy (`keys`: pairs of key id and masked key).
    pub fn view(&self, keys: &[(String, String)]) -> Value {
        let now = crate::clock::unix_ms();
        let mut mapped = vec![0usize; self.list.len()];
        let per_key: Vec<Value> = if self.per_key {
            keys.iter()
                .map(|(id, masked)| {
                    let home = self.home(id);
                    if let Some(h) = home {
                        mapped[h] += 1;
                    }
                    json!({"id": id, "key": masked, "proxy": home.map(|h| self.shown(h)),
                           "via": self.pick_at(id, now).map(|v| self.shown(v))})
                })
                .collect()
        } else {
            Vec::new()
        };
        let proxies: Vec<Value> = self
            .list
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let until = p.until_ms.load(Ordering::Relaxed);
                let last = p
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                json!({
                    "proxy": p.shown,
                    "state": if until > now { "resting" } else { "ok" },
                    "resting_until": (until > now).then_some(until / 1000),
                    "last_error": last.as_ref().map(|(_, m)| m),
                    "last_error_at": last.as_ref().map(|(t, _)| t / 1000),
                    "keys": if self.per_key { Some(mapped[i]) } else { None },
                    "calls": p.calls.load(Ordering::Relaxed),
                    "failures": p.failures.load(Ordering::Relaxed),
                })
            })
            .collect();
        json!({"per_key": self.per_key, "proxies": proxies, "keys": per_key})
    }

    /// [`Proxies::pick`] at `now` without turning the rotation.
    fn pick_at(&self, key_id: &str, now: u64) -> Option<usize> {
        let k = fnv(key_id.as_bytes());
        (0..self.list.len())
            .filter(|&i| !self.resting(i, now))
            .max_by_key(|&i| weight(k, self.list[i].ident))
    }

    /// Check every proxy now: a TCP connection to it, its handshake
    /// (authentication included) and a tunnel to `target` (the upstream's
    /// origin), each within `wait`. One result per proxy, in order: the
    /// milliseconds it took, or why it failed. A failure rests the proxy as a
    /// failed call would; a success ends a rest.
    pub async fn check(&self, tcp: &HttpConnector, target: &Uri, wait: Duration) -> Vec<Value> {
        let checks = self.list.iter().enumerate().map(|(i, p)| {
            let mut c = Connector::new(tcp.clone(), Some(&p.spec));
            let target = target.clone();
            async move {
                let started = std::time::Instant::now();
                let res =
                    tokio::time::timeout(wait, tower_service::Service::call(&mut c, target)).await;
                let res = match res {
                    Err(_) => Err(format!("no tunnel within {} s", wait.as_secs())),
                    Ok(Err(e)) => Err(describe(&*e)),
                    Ok(Ok(_)) => Ok(started.elapsed()),
                };
                match res {
                    Ok(d) => {
                        p.streak.store(0, Ordering::Relaxed);
                        p.until_ms.store(0, Ordering::Relaxed);
                        json!({"proxy": p.shown, "ok": true, "ms": d.as_millis() as u64})
                    }
                    Err(why) => {
                        self.failed(i, &why);
                        json!({"proxy": p.shown, "ok": false, "error": why})
                    }
                }
            }
        });
        futures_util::future::join_all(checks).await
    }
}

/// A client for the requests beside the API calls (Files API uploads with
/// their bodies streamed, image fetches, the keep-alive ping): HTTP/1.1 over
/// a [`Connector`], TLS with the webpki roots.
pub type SideClient = Client<Tls, crate::body::Body>;

/// The TCP connector under every upstream client (to Google, to a proxy,
/// or beside the API calls).
pub fn tcp_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http
}

/// The [`SideClient`] through `proxy` (straight when `None`).
fn side_client(proxy: Option<&ProxySpec>) -> SideClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector::new(tcp_connector(), proxy));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(Tls(https))
}

/// The straight [`SideClient`] (without `PROXIES`), one per process.
fn direct() -> &'static SideClient {
    static CLIENT: OnceLock<SideClient> = OnceLock::new();
    CLIENT.get_or_init(|| side_client(None))
}

/// Why a request beside the API calls got no answer.
#[derive(Debug)]
pub enum SideError {
    /// Every proxy rests (the message for the 503).
    Down(String),
    /// The proxy failed to connect (it rests now): what happened, the proxy
    /// masked.
    Proxy(String),
    /// The request failed otherwise (straight, or once through the tunnel).
    Request(hyper_util::client::legacy::Error),
}

impl Proxies {
    /// One try of `req` through proxy `i`: counted; a failure to connect
    /// rests the proxy, as for an API call.
    async fn try_on(
        &self,
        i: usize,
        req: Request<crate::body::Body>,
    ) -> Result<Response<Incoming>, SideError> {
        let Some(client) = self.sides.get(i) else {
            return Err(SideError::Down(self.down_message()));
        };
        match client.request(req).await {
            Err(e) if e.is_connect() => {
                Err(SideError::Proxy(self.connect_failed(i, &describe(&e))))
            }
            other => {
                self.served(i);
                other.map_err(SideError::Request)
            }
        }
    }
}

/// Send `req` for key `key_id` (a Files API upload: its body streams, so it
/// is tried once) through the key's proxy ([`Proxies::pick`], as its API
/// calls), or straight without `PROXIES`. A proxy that fails to connect
/// rests, so the client's next try goes through the key's next proxy.
pub async fn send_for_key(
    proxies: Option<&Proxies>,
    key_id: &str,
    req: Request<crate::body::Body>,
) -> Result<Response<Incoming>, SideError> {
    let Some(p) = proxies else {
        return direct().request(req).await.map_err(SideError::Request);
    };
    match p.pick(key_id) {
        Some(i) => p.try_on(i, req).await,
        None => Err(SideError::Down(p.down_message())),
    }
}

/// Send a request of no key (an image fetch, the keep-alive ping; `make`
/// builds it anew for each try) through the proxies in turn, whatever
/// `PROXIES_PER_KEY` says: a proxy that fails to connect rests and the next
/// one is tried (at most 3 tries); straight without `PROXIES`.
pub async fn send_any(
    proxies: Option<&Proxies>,
    make: impl Fn() -> Request<crate::body::Body>,
) -> Result<Response<Incoming>, SideError> {
    let Some(p) = proxies else {
        return direct().request(make()).await.map_err(SideError::Request);
    };
    let mut failed = None;
    for _ in 0..p.len().min(3) {
        let Some(i) = p.in_turn(crate::clock::unix_ms()) else {
            break;
        };
        match p.try_on(i, make()).await {
            Err(SideError::Proxy(why)) => failed = Some(why),
            other => return other,
        }
    }
    Err(failed.map_or_else(|| SideError::Down(p.down_message()), SideError::Proxy))
}

/// An error and its sources, `: `-joined (hyper-util's messages name no
/// credentials).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(urls: &[&str]) -> Vec<ProxySpec> {
        urls.iter().map(|u| ProxySpec::parse(u).unwrap()).collect()
    }

    #[test]
    fn parses_and_masks_proxy_urls() {
        let p = ProxySpec::parse("http://bob:s%40cret@127.0.0.1:3128/").unwrap();
        assert_eq!(p.kind, Kind::Http);
        assert_eq!(p.port, 3128);
        assert_eq!(p.auth, Some(("bob".into(), "s@cret".into())));
        assert_eq!(p.masked(), "http://bob:****@127.0.0.1:3128");
        assert!(!format!("{p:?}").contains("cret"));
        let s = ProxySpec::parse("socks5h://[::1]").unwrap();
        assert_eq!(
            (s.kind, s.port, s.masked().as_str()),
            (Kind::Socks5, 1080, "socks5://[::1]:1080")
        );
        for bad in [
            "ftp://u:hunter2@h:1",
            "http://u:hunter2@h:1/path",
            "http://u:hunter2@:1",
            "http://u:hunter2@h:0",
            "u:hunter2@h:1",
            "http://u:hunter2@h:99999",
        ] {
            let e = ProxySpec::parse(bad).expect_err(bad);
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("****"), "{e}");
        }
    }

    #[test]
    fn https_proxies_parse_with_port_443_and_their_own_identity() {
        let p = ProxySpec::parse("HTTPS://bob:s%40cret@proxy.example").unwrap();
        assert_eq!((p.kind, p.port), (Kind::Https, 443));
        assert_eq!(p.masked(), "https://bob:****@proxy.example:443");
        assert!(!format!("{p:?}").contains("cret"));
        let q = ProxySpec::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(
            (q.kind, q.port, q.host.as_str()),
            (Kind::Https, 8443, "127.0.0.1")
        );
        assert_eq!(q.masked(), "https://127.0.0.1:8443");
        // TLS to the proxy: its address is an https:// URI (the proxy's name is the SNI).
        assert_eq!(q.address().to_string(), "https://127.0.0.1:8443/");
        // Not the same proxy as plain http:// on the same host and port.
        let plain = ProxySpec::parse("http://127.0.0.1:8443").unwrap();
        assert_ne!(q.ident(), plain.ident());
        let e = ProxySpec::parse("https://u:hunter2@h:1/x").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("****"), "{e}");
    }

    #[test]
    fn tunnels_name_the_port_of_an_http_url() {
        let port = |u: &str| with_port(u.parse().unwrap()).to_string();
        assert_eq!(
            port("http://img.example/a.png?x=1"),
            "http://img.example:80/a.png?x=1"
        );
        assert_eq!(port("http://[::1]/a"), "http://[::1]:80/a");
        assert_eq!(
            port("http://img.example:8080/a"),
            "http://img.example:8080/a"
        );
        assert_eq!(port("https://img.example/a"), "https://img.example/a");
    }

    #[test]
    fn a_proxy_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("gb-proxy-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = load_ca(missing.to_str().unwrap()).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let e = load_ca(empty.to_str().unwrap()).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let bad = dir.join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_ca(bad.to_str().unwrap()).is_err());
        let good = dir.join("good.pem");
        std::fs::write(&good, TEST_CA).unwrap();
        let ca = load_ca(good.to_str().unwrap()).unwrap();
        assert_eq!(ca.len(), 1);
        // Trusted by https:// proxies only.
        let mut p = ProxySpec::parse("https://127.0.0.1:8443").unwrap();
        let before = p.tls.clone().unwrap();
        p.trust(&ca).unwrap();
        assert!(!Arc::ptr_eq(&before, p.tls.as_ref().unwrap()));
        let mut h = ProxySpec::parse("http://127.0.0.1:8443").unwrap();
        h.trust(&ca).unwrap();
        assert!(h.tls.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A self-signed CA certificate (public, no key kept) for [`load_ca`].
    const TEST_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIBpjCCAUugAwIBAgIUGXaitWtNDw8PrKbKKJ0b+n2VUNkwCgYIKoZIzj0EAwIw
JzElMCMGA1UEAwwcZ2VtaW5pLWJhbGFuY2UgdGVzdCBwcm94eSBDQTAgFw0yNjEx
MjYxMDUyMTFaGA8yMTI2MTEwMjEwNTIxMVowJzElMCMGA1UEAwwcZ2VtaW5pLWJh
bGFuY2UgdGVzdCBwcm94eSBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABO9N
+HvX+StYNczLmALHAv2E1PPOGxw+n/dtVGXivP+qAIjz8t3qD38IQbg/OoofCaWX
uBF0GcTKHkOOMRfAo4GjUzBRMB0GA1UdDgQWBBRPJBoAa3tvXsnVC5jT9/S2kzp8
CzAfBgNVHSMEGDAWgBRPJBoAa3tvXsnVC5jT9/S2kzp8CzAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0kAMEYCIQD3VKPw/YEbpSozSj6YufnwCTV7/6r+58sJ
EtRkJzdSFAIhAPk7XcjmXDwF+7qRVA4+jLFbkq1n3sMMZ6DZrPOAeXes
-----END CERTIFICATE-----
";

    fn key_ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| crate::store::model::key_id(&format!("key-{i}")))
            .collect()
    }

    #[test]
    fn rendezvous_mapping_is_even_and_stable_when_a_proxy_is_added() {
        let keys = key_ids(1000);
        let three = Proxies::new(&specs(&["http://a:1", "http://b:2", "socks5://c:3"]), true);
        let four = Proxies::new(
            &specs(&["http://a:1", "http://b:2", "socks5://c:3", "http://d:4"]),
            true,
        );
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for k in &keys {
            let before = three.home(k).unwrap();
            let after = four.home(k).unwrap();
            counts[after] += 1;
            if before != after {
                assert_eq!(after, 3, "a key moved to an old proxy");
                moved += 1;
            }
            // The same every time, and `pick` agrees while none rests.
            assert_eq!(four.pick(k), Some(after));
        }
        // Even: each of 4 proxies carries about 250 of 1,000 keys.
        for c in counts {
            assert!((190..=310).contains(&c), "{counts:?}");
        }
        assert_eq!(moved, counts[3]);
        // Credentials and order do not change the mapping.
        let reordered = Proxies::new(
            &specs(&[
                "http://d:4",
                "socks5://u:p@c:3",
                "http://b:2",
                "http://x:y@a:1",
            ]),
            true,
        );
        for k in &keys {
            let a = reordered.spec(reordered.home(k).unwrap()).unwrap();
            let b = four.spec(four.home(k).unwrap()).unwrap();
            assert_eq!((&a.host, a.port), (&b.host, b.port));
        }
    }

    #[test]
    fn a_resting_proxy_moves_only_its_keys_and_rests_longer_each_time() {
        let keys = key_ids(200);
        let p = Proxies::new(&specs(&["http://a:1", "http://b:2", "http://c:3"]), true);
        assert_eq!(p.failed(0, "refused"), Some(REST_FIRST));
        assert_eq!(p.failed(0, "refused again"), None, "already resting");
        for k in &keys {
            let home = p.home(k).unwrap();
            let now = p.pick(k).unwrap();
            assert_ne!(now, 0);
            if home != 0 {
                assert_eq!(now, home);
            }
        }
        // After its rest, another failure rests it twice as long.
        p.list[0].until_ms.store(1, Ordering::Relaxed);
        assert_eq!(p.failed(0, "refused"), Some(REST_FIRST * 2));
        p.served(0);
        p.list[0].until_ms.store(1, Ordering::Relaxed);
        assert_eq!(p.failed(0, "refused"), Some(REST_FIRST));
        for i in 1..3 {
            p.failed(i, "down");
        }
        assert_eq!(p.pick(&keys[0]), None);
        assert!(p.down_message().contains("PROXIES"));
        let v = p.view(&[]);
        assert_eq!(v["proxies"][0]["state"], "resting");
        assert_eq!(v["proxies"][0]["failures"], 4);
    }

    #[test]
    fn rotation_skips_resting_proxies() {
        let p = Proxies::new(&specs(&["http://a:1", "http://b:2", "http://c:3"]), false);
        let seen: Vec<usize> = (0..6).filter_map(|_| p.pick("k")).collect();
        assert_eq!(seen, [0, 1, 2, 0, 1, 2]);
        p.failed(1, "down");
        let seen: Vec<usize> = (0..4).filter_map(|_| p.pick("k")).collect();
        assert!(!seen.contains(&1), "{seen:?}");
    }
}
