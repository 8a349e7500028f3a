//! Fetching remote images named by `image_url` (`http(s)://…`) so they can be
//! inlined as `inlineData` for Gemini, without letting a small request
//! amplify into a large download:
//! - one inline budget per request ([`INLINE_BUDGET`], Gemini's 20 MB for
//!   inline data), counting the decoded bytes of every inline part — the
//!   client's own `data:` URLs, `input_audio` and `file_data` too; bytes are
//!   counted as they stream in and every download stops once it is crossed;
//! - all images of a request fetched at once (at most [`MAX_IMAGES`]) under
//!   one deadline for all of them together (`FETCH_TIMEOUT`);
//! - only the media types Gemini takes inline (images, audio, video, PDF);
//! - per image a size cap (`MAX_FETCH_BYTES`), at most 3 redirects, only
//!   http/https, and addresses in private, loopback and link-local ranges
//!   refused unless `ALLOW_PRIVATE_FETCH` (checked on the gateway's own name
//!   resolution, also when the fetch goes through a proxy);
//! - with `PROXIES`, through the proxies in turn ([`crate::proxy::send_any`]),
//!   never around them.
//!
//! Every refusal is the client's problem (its URL, its data), so it is a 400
//! that names the message, and a URL only by its host (a query may hold a token).
//!
//! This is the I/O half of image handling; the pure half (data URLs →
//! `inlineData`) is in [`crate::openai::chat`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use http::{Request, StatusCode, Uri, header};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::app::App;
use crate::openai::TranslateError;
use crate::proxy::Proxies;

/// Most redirects followed for one image.
const MAX_REDIRECTS: usize = 3;
/// Most remote images fetched for one request (all at the same time).
pub const MAX_IMAGES: usize = 16;
/// Most decoded bytes of inline data in one request: Gemini takes up to
/// 20 MB inline ("use the Files API when the total request size is larger
/// than 20 MB"), so more would only be refused upstream after the download.
pub const INLINE_BUDGET: usize = 20 * 1024 * 1024;

/// The media types Gemini accepts as inline data (its image, audio, video and
/// document lists, plus the registered names servers send for MP3 and MOV).
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/heic",
    "image/heif",
    "audio/wav",
    "audio/mp3",
    "audio/mpeg",
    "audio/aiff",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
    "video/mp4",
    "video/mpeg",
    "video/mov",
    "video/quicktime",
    "video/avi",
    "video/x-flv",
    "video/mpg",
    "video/webm",
    "video/wmv",
    "video/3gpp",
    "application/pdf",
];

/// Whether an address is private, loopback, link-local or otherwise not public.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// What one fetch needs (owned, so that every fetch runs as its own task).
#[derive(Clone)]
struct Fetcher {
    /// `PROXIES` (a shared handle), or `None`: straight.
    proxies: Option<Proxies>,
    allow_private: bool,
    max_bytes: usize,
    /// Inline bytes of the whole request so far (shared by its fetches).
    used: Arc<AtomicUsize>,
}

/// Why a fetch failed: over the request's budget, or anything else (text).
enum FetchError {
    OverBudget,
    Other(String),
}

impl From<String> for FetchError {
    fn from(s: String) -> FetchError {
        FetchError::Other(s)
    }
}

impl From<&str> for FetchError {
    fn from(s: &str) -> FetchError {
        FetchError::Other(s.to_string())
    }
}

/// The 400 for a request whose inline data is over [`INLINE_BUDGET`].
fn over_budget(param: String) -> TranslateError {
    TranslateError::new(
        param,
        format!(
            "the inline data of this request (images, audio, files) is over {INLINE_BUDGET} bytes (20 MiB), the most Gemini takes inline; send fewer or smaller images"
        ),
    )
}

/// Decoded size of base64 text (padding and a `data:…,` head excluded).
fn decoded_len(data: &str) -> usize {
    let body = data.rsplit_once(',').map_or(data, |(_, d)| d);
    body.trim_end_matches('=').len() * 3 / 4
}

/// Decoded bytes a content part carries inline (data URLs, audio, files).
fn inline_len(part: &Value) -> usize {
    let data = match part.get("type").and_then(Value::as_str) {
        Some("image_url") => match part.get("image_url") {
            Some(Value::Object(o)) => o.get("url"),
            other => other,
        }
        .and_then(Value::as_str)
        .filter(|u| u.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:"))),
        Some("input_audio") => part.pointer("/input_audio/data").and_then(Value::as_str),
        Some("file") => part.pointer("/file/file_data").and_then(Value::as_str),
        _ => None,
    };
    data.map_or(0, decoded_len)
}

/// The `http(s)` URL of an `image_url` part, if it has one.
fn remote_url(part: &Value) -> Option<&str> {
    if part.get("type").and_then(Value::as_str) != Some("image_url") {
        return None;
    }
    let url = match part.get("image_url") {
        Some(Value::Object(o)) => o.get("url"),
        other => other,
    }?
    .as_str()?;
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    // A Gemini file URI is passed as `fileData` on its key, never fetched.
    let file = crate::openai::chat::gemini_file_uri(url).is_some();
    (!file && (lower.starts_with("http://") || lower.starts_with("https://"))).then_some(url)
}

/// Replace every `http(s)` `image_url` in the messages with a `data:` URL,
/// within the request's inline budget and `FETCH_TIMEOUT` (see the module
/// doc). Errors name the message index.
pub async fn inline_remote_images(app: &App, mut req: Value) -> Result<Value, TranslateError> {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return Ok(req);
    };
    let mut inline = 0usize;
    let mut remote: Vec<(usize, usize, String)> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let Some(parts) = msg.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, part) in parts.iter().enumerate() {
            inline = inline.saturating_add(inline_len(part));
            let Some(url) = remote_url(part) else {
                continue;
            };
            if remote.len() == MAX_IMAGES {
                return Err(TranslateError::new(
                    format!("messages[{i}].content[{j}].image_url"),
                    format!("too many remote images (at most {MAX_IMAGES})"),
                ));
            }
            remote.push((i, j, url.to_string()));
        }
    }
    if inline > INLINE_BUDGET {
        return Err(over_budget("messages".into()));
    }
    if remote.is_empty() {
        return Ok(req);
    }
    let fetched = fetch_all(app, &remote, inline).await?;
    let Some(messages) = req.get_mut("messages").and_then(Value::as_array_mut) else {
        return Ok(req);
    };
    for ((i, j, _), data_url) in remote.iter().zip(fetched) {
        let part = &mut messages[*i]["content"][*j];
        match part.get_mut("image_url") {
            Some(Value::Object(o)) => {
                o.insert("url".into(), Value::String(data_url));
            }
            Some(slot) => *slot = Value::String(data_url),
            None => {}
        }
    }
    Ok(req)
}

/// Fetch every `(message, part, url)` at once under `FETCH_TIMEOUT`, with
/// `inline` bytes of the budget already taken; the `data:` URLs in order.
/// The first failure ends them all (the other downloads are dropped).
async fn fetch_all(
    app: &App,
    remote: &[(usize, usize, String)],
    inline: usize,
) -> Result<Vec<String>, TranslateError> {
    let fetcher = Fetcher {
        proxies: app.upstream.proxies().cloned(),
        allow_private: app.cfg().allow_private_fetch,
        max_bytes: app.cfg().max_fetch_bytes,
        used: Arc::new(AtomicUsize::new(inline)),
    };
    let mut set = tokio::task::JoinSet::new();
    for (n, (_, _, url)) in remote.iter().enumerate() {
        let (f, url) = (fetcher.clone(), url.clone());
        set.spawn(async move { (n, f.fetch(&url).await) });
    }
    let param = |n: usize| {
        let (i, j, _) = &remote[n];
        format!("messages[{i}].content[{j}].image_url")
    };
    let mut out: Vec<Option<String>> = vec![None; remote.len()];
    let all = async {
        while let Some(done) = set.join_next().await {
            match done {
                Ok((n, Ok(data_url))) => out[n] = Some(data_url),
                Ok((n, Err(FetchError::OverBudget))) => return Err(over_budget(param(n))),
                Ok((n, Err(FetchError::Other(e)))) => {
                    let i = remote[n].0;
                    return Err(TranslateError::new(
                        param(n),
                        format!("could not fetch the image of message {i}: {e}"),
                    ));
                }
                Err(_) => {
                    return Err(TranslateError::new(
                        "messages",
                        "could not fetch the remote images",
                    ));
                }
            }
        }
        Ok(())
    };
    let limit = app.cfg().fetch_timeout;
    match tokio::time::timeout(limit, all).await {
        Ok(Ok(())) => Ok(out.into_iter().map(Option::unwrap_or_default).collect()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(TranslateError::new(
            "messages",
            format!(
                "the remote images of this request did not all arrive within FETCH_TIMEOUT ({} s)",
                limit.as_secs_f64()
            ),
        )),
    }
}

/// The media type of a `Content-Type` value (no parameters, lower case).
fn media_type(value: Option<&http::HeaderValue>) -> String {
    let v = value.and_then(|v| v.to_str().ok()).unwrap_or("");
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// At most 100 printable ASCII characters of something a server sent.
fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}

impl Fetcher {
    /// Fetch one image and return it as a `data:` URL.
    async fn fetch(&self, url: &str) -> Result<String, FetchError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let lower = url.get(..8).unwrap_or(&url).to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err("only http and https URLs are fetched".into());
            }
            let uri: Uri = url.parse().map_err(|_| "not a valid URL")?;
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => return Err("only http and https URLs are fetched".into()),
            }
            let host = uri.host().ok_or("the URL has no host")?;
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            if !self.allow_private {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let addrs: Vec<_> = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|_| "the host could not be resolved")?
                    .collect();
                if addrs.is_empty() || addrs.iter().any(|a| is_private(a.ip())) {
                    return Err("the host resolves to a private address (set ALLOW_PRIVATE_FETCH=true to allow)".into());
                }
            }
            let get = || {
                let mut req = Request::new(crate::body::empty());
                *req.uri_mut() = uri.clone();
                req.headers_mut().insert(
                    header::USER_AGENT,
                    http::HeaderValue::from_static("gemini-balance"),
                );
                req
            };
            let res = crate::proxy::send_any(self.proxies.as_ref(), get)
                .await
                .map_err(|_| "the request failed")?;
            let status = res.status();
            if status.is_redirection() {
                let loc = res
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or("redirect without Location")?;
                url = resolve(&uri, loc);
                continue;
            }
            if status != StatusCode::OK {
                return Err(format!("HTTP {}", status.as_u16()).into());
            }
            let mime = media_type(res.headers().get(header::CONTENT_TYPE));
            if !INLINE_TYPES.contains(&mime.as_str()) {
                let shown = if mime.is_empty() {
                    "none".into()
                } else {
                    clip(&mime)
                };
                return Err(format!(
                    "{host} answered with content type `{shown}`; Gemini takes only images (PNG, JPEG, WebP, HEIC, HEIF), audio, video and PDF inline"
                )
                .into());
            }
            let length = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let bytes = self.read(res.into_body(), length).await?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            return Ok(format!("data:{mime};base64,{b64}"));
        }
        Err("too many redirects".into())
    }

    /// Read a body within `MAX_FETCH_BYTES` and the request's inline budget,
    /// counting bytes as they arrive (never more than either is buffered).
    async fn read(
        &self,
        mut body: hyper::body::Incoming,
        length: Option<u64>,
    ) -> Result<Vec<u8>, FetchError> {
        let too_large = || {
            FetchError::Other(format!(
                "larger than MAX_FETCH_BYTES ({} bytes)",
                self.max_bytes
            ))
        };
        let left = INLINE_BUDGET.saturating_sub(self.used.load(Ordering::Relaxed));
        if let Some(n) = length {
            if n > self.max_bytes as u64 {
                return Err(too_large());
            }
            if n > left as u64 {
                return Err(FetchError::OverBudget);
            }
        }
        let mut buf = Vec::with_capacity(length.map_or(0, |n| n as usize));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| "the download failed")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > self.max_bytes {
                return Err(too_large());
            }
            let total = self.used.fetch_add(data.len(), Ordering::Relaxed) + data.len();
            if total > INLINE_BUDGET {
                return Err(FetchError::OverBudget);
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf)
    }
}

/// Resolve a `Location` header against the URL it came from.
fn resolve(base: &Uri, loc: &str) -> String {
    // Absolute (any scheme, e.g. `HTTPS:` or `file:`): as is; the scheme
    // check on the next round refuses anything but http(s).
    let scheme_len = loc
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    if scheme_len > 0
        && loc.as_bytes()[0].is_ascii_alphabetic()
        && loc.as_bytes().get(scheme_len) == Some(&b':')
    {
        return loc.to_string();
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    if loc.starts_with("//") {
        format!("{scheme}:{loc}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!("{scheme}://{authority}{dir}{loc}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "142.250.1.1", "2001:4860::8888"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn counts_inline_parts_and_finds_remote_ones() {
        use serde_json::json;
        let img = |u: &str| json!({"type": "image_url", "image_url": {"url": u}});
        assert_eq!(inline_len(&img("data:image/png;base64,AAAABBBB")), 6);
        assert_eq!(inline_len(&img("DATA:image/png;base64,AAAABB==")), 4);
        assert_eq!(inline_len(&img("https://x.example/a.png")), 0);
        assert_eq!(
            inline_len(
                &json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})
            ),
            3
        );
        assert_eq!(
            inline_len(
                &json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAAAAAA"}})
            ),
            6
        );
        assert_eq!(inline_len(&json!({"type": "text", "text": "AAAA"})), 0);
        assert_eq!(
            remote_url(&img("HTTPS://x.example/a")),
            Some("HTTPS://x.example/a")
        );
        assert_eq!(
            remote_url(&json!({"type": "image_url", "image_url": "http://x/"})),
            Some("http://x/")
        );
        assert_eq!(remote_url(&img("data:image/png;base64,AA")), None);
        let ct = |v: &'static str| media_type(Some(&http::HeaderValue::from_static(v)));
        assert_eq!(ct("Image/PNG; charset=binary"), "image/png");
        assert!(INLINE_TYPES.contains(&ct("application/pdf").as_str()));
        assert!(!INLINE_TYPES.contains(&ct("text/html").as_str()));
        assert_eq!(media_type(None), "");
        assert_eq!(clip("a\x1b[2Jb c"), "a[2Jbc");
    }

    #[test]
    fn resolves_redirects() {
        let base: Uri = "https://a.example/img/x.png".parse().unwrap();
        assert_eq!(resolve(&base, "/y.png"), "https://a.example/y.png");
        assert_eq!(resolve(&base, "z.png"), "https://a.example/img/z.png");
        assert_eq!(resolve(&base, "//b.example/q"), "https://b.example/q");
        assert_eq!(resolve(&base, "http://c.example/"), "http://c.example/");
        assert_eq!(resolve(&base, "HTTPS://d.example/"), "HTTPS://d.example/");
        assert_eq!(resolve(&base, "file:///etc/passwd"), "file:///etc/passwd");
        assert_eq!(resolve(&base, "a:b/c.png"), "a:b/c.png");
        assert_eq!(
            resolve(&base, "./c:d.png"),
            "https://a.example/img/./c:d.png"
        );
    }
}
