//! Fetching remote images named by `image_url` (`http(s)://…`) so they can be
//! inlined as `inlineData` for Gemini: a timeout, a size cap
//! (`MAX_FETCH_BYTES`), at most 3 redirects, only http/https, and addresses in
//! private, loopback and link-local ranges refused unless `ALLOW_PRIVATE_FETCH`.
//!
//! This is the I/O half of image handling; the pure half (data URLs →
//! `inlineData`) is in [`crate::openai::chat`].

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::Full;
use serde_json::Value;

use crate::app::App;
use crate::openai::TranslateError;

/// Most redirects followed for one image.
const MAX_REDIRECTS: usize = 3;
/// Most remote images fetched for one request.
const MAX_IMAGES: usize = 16;
/// Time allowed for one image, redirects included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

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

/// Replace every `http(s)` `image_url` in the messages with a `data:` URL.
/// Errors name the message index.
pub async fn inline_remote_images(app: &App, mut req: Value) -> Result<Value, TranslateError> {
    let Some(messages) = req.get_mut("messages").and_then(Value::as_array_mut) else {
        return Ok(req);
    };
    let mut fetched = 0;
    for (i, msg) in messages.iter_mut().enumerate() {
        let Some(parts) = msg.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for (j, part) in parts.iter_mut().enumerate() {
            if part.get("type").and_then(Value::as_str) != Some("image_url") {
                continue;
            }
            let slot = match part.get_mut("image_url") {
                Some(Value::Object(o)) => o.get_mut("url"),
                Some(v @ Value::String(_)) => Some(v),
                _ => None,
            };
            let Some(slot) = slot else { continue };
            let Some(url) = slot.as_str() else { continue };
            let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                continue;
            }
            fetched += 1;
            if fetched > MAX_IMAGES {
                return Err(TranslateError::new(
                    format!("messages[{i}].content[{j}].image_url"),
                    format!("too many remote images (at most {MAX_IMAGES})"),
                ));
            }
            let url = url.to_string();
            let data_url = tokio::time::timeout(FETCH_TIMEOUT, fetch(app, &url))
                .await
                .unwrap_or_else(|_| Err("timed out".to_string()))
                .map_err(|e| {
                    TranslateError::new(
                        format!("messages[{i}].content[{j}].image_url"),
                        format!("could not fetch the image of message {i}: {e}"),
                    )
                })?;
            *slot = Value::String(data_url);
        }
    }
    Ok(req)
}

/// Fetch one image and return it as a `data:` URL.
async fn fetch(app: &App, url: &str) -> Result<String, String> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let lower = url.get(..8).unwrap_or(&url).to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err("only http and https URLs are fetched".into());
        }
        let uri: Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
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
        if !app.cfg.allow_private_fetch {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<_> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| "the host could not be resolved".to_string())?
                .collect();
            if addrs.is_empty() || addrs.iter().any(|a| is_private(a.ip())) {
                return Err("the host resolves to a private address (set ALLOW_PRIVATE_FETCH=true to allow)".into());
            }
        }
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri.clone();
        req.headers_mut().insert(
            header::USER_AGENT,
            http::HeaderValue::from_static("gemini-balance"),
        );
        let res = app
            .upstream
            .client()
            .request(req)
            .await
            .map_err(|_| "the request failed".to_string())?;
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
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let mime = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|s| !s.is_empty() && s.contains('/'))
            .unwrap_or_else(|| "image/jpeg".to_string());
        let bytes = crate::body::read_limited(res.into_body(), app.cfg.max_fetch_bytes)
            .await
            .map_err(|e| match e {
                crate::body::ReadError::TooLarge => format!(
                    "larger than MAX_FETCH_BYTES ({} bytes)",
                    app.cfg.max_fetch_bytes
                ),
                crate::body::ReadError::Io(_) => "the download failed".to_string(),
            })?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        return Ok(format!("data:{mime};base64,{b64}"));
    }
    Err("too many redirects".into())
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
