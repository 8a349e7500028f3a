//! The admin console at `/dashboard` (also `/hf/dashboard`; `/dashboard/`
//! redirects there): one HTML page, its stylesheet and its script modules
//! ([`ASSETS`]: `/dashboard.css`, `/dashboard.js` and the `/dashboard-*.js`
//! modules it imports), all embedded in the binary and served from the
//! gateway's own origin, so the page works offline and under a strict
//! Content-Security-Policy that allows nothing else.
//!
//! The page itself carries no data and needs no token: its script asks for the
//! admin token once (kept in `sessionStorage`), then drives the admin API
//! (`admin/keys`, `admin/config`, `admin/logs`, `admin/usage`, `status/…`)
//! with it as a Bearer header. Every URL it uses is relative, so the same
//! page works at `/dashboard` and `/hf/dashboard`. The language choice is the
//! only thing it keeps in `localStorage`.

use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// One of the console's files as `build.rs` left it, gzip-compressed.
macro_rules! gz {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".gz"))
    };
}

/// The page (gzip).
const PAGE: &[u8] = gz!("dashboard.html");

const JS_TYPE: &str = "text/javascript; charset=utf-8";

/// Every asset of the page: path (without the `/hf` mount), content type and
/// gzip-compressed text. The route table lists the same paths (a unit test
/// checks it).
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        gz!("dashboard.css"),
    ),
    ("/dashboard.js", JS_TYPE, gz!("dashboard.js")),
    ("/dashboard-i18n.js", JS_TYPE, gz!("dashboard-i18n.js")),
    ("/dashboard-ui.js", JS_TYPE, gz!("dashboard-ui.js")),
    ("/dashboard-keys.js", JS_TYPE, gz!("dashboard-keys.js")),
    (
        "/dashboard-settings.js",
        JS_TYPE,
        gz!("dashboard-settings.js"),
    ),
    ("/dashboard-logs.js", JS_TYPE, gz!("dashboard-logs.js")),
    ("/dashboard-usage.js", JS_TYPE, gz!("dashboard-usage.js")),
];

/// The Content-Security-Policy sent with the page and its assets: only the
/// gateway's own scripts, styles and API; no inline code, frames or forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /dashboard`; `GET /dashboard/` (by the path without the `/hf`
/// mount) redirects to it with a relative `Location`, so the page's relative
/// URLs resolve next to it under either mount.
pub fn page(path: &str, gzip: bool) -> Response<Body> {
    if path.ends_with('/') {
        let mut res = respond(&[], false, "text/plain; charset=utf-8", "no-store");
        *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
        res.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("../dashboard"));
        return res;
    }
    respond(PAGE, gzip, "text/html; charset=utf-8", "no-store")
}

/// `GET` of one of [`ASSETS`] (by the path without the `/hf` mount); 404 for
/// any other path. `gzip`: the client accepts a gzip-encoded answer.
pub fn asset(path: &str, gzip: bool) -> Response<Body> {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, kind, gz)) => respond(gz, gzip, kind, "no-cache"),
        None => body::text(StatusCode::NOT_FOUND, "Not found.\n"),
    }
}

/// Whether `req` accepts a gzip-encoded answer (`Accept-Encoding: gzip`,
/// not refused with `q=0`).
pub fn accepts_gzip<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut it = item.split(';').map(str::trim);
            let coding = it.next().unwrap_or("");
            let refused = it.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// The text of a gzip-compressed file (for a client that takes no gzip).
fn inflate(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    // Embedded by build.rs: it inflates (a failure would leave a short body).
    let _ = flate2::read::GzDecoder::new(gz).read_to_end(&mut out);
    out
}

fn respond(
    gz: &'static [u8],
    gzip: bool,
    kind: &'static str,
    cache: &'static str,
) -> Response<Body> {
    let content = if gz.is_empty() {
        body::full(bytes::Bytes::new())
    } else if gzip {
        body::full(bytes::Bytes::from_static(gz))
    } else {
        body::full(inflate(gz))
    };
    let mut res = Response::new(content);
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    if !gz.is_empty() {
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(gz: &[u8]) -> String {
        String::from_utf8(inflate(gz)).unwrap()
    }

    fn scripts() -> impl Iterator<Item = (&'static str, String)> {
        ASSETS
            .iter()
            .filter(|(p, _, _)| p.ends_with(".js"))
            .map(|(p, _, gz)| (*p, text(gz)))
    }

    #[test]
    fn page_links_only_its_own_assets() {
        let page = text(PAGE);
        assert!(page.contains("href=\"dashboard.css\""));
        assert!(page.contains("src=\"dashboard.js\""));
        // No inline script or style: the CSP would block them.
        assert!(!page.contains("<style"));
        assert!(!page.contains("style=\""));
        assert_eq!(page.matches("<script").count(), 1);
        // Relative API paths, so `/hf/dashboard` reads `/hf/admin/keys`.
        let all: String = scripts().map(|(_, t)| t).collect();
        for api in [
            "'admin/keys'",
            "'admin/config'",
            "'admin/logs'",
            "'admin/usage'",
        ] {
            assert!(all.contains(api), "{api}");
        }
        for (path, text) in scripts() {
            for absolute in ["'/admin", "'/status", "'/health", "'/dashboard"] {
                assert!(!text.contains(absolute), "{path}: {absolute}");
            }
        }
    }

    #[test]
    fn every_imported_module_is_served() {
        for (path, script) in scripts() {
            for (i, _) in script.match_indices(" from './") {
                let rest = &script[i + " from './".len()..];
                let name = &rest[..rest.find('\'').unwrap()];
                let served = format!("/{name}");
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == served),
                    "{path} imports {name}, which is not served"
                );
            }
        }
    }

    #[test]
    fn assets_by_path() {
        for (path, kind, _) in ASSETS {
            let res = asset(path, true);
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
            assert_eq!(res.headers()[header::CONTENT_TYPE], *kind);
            assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
        assert_eq!(
            asset("/dashboard.html", true).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            asset("/dashboard-nope.js", true).status(),
            StatusCode::NOT_FOUND
        );
        let res = page("/dashboard", true);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let res = page("/dashboard/", true);
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "../dashboard");
    }

    #[test]
    fn gzip_only_to_clients_that_accept_it() {
        let req = |v: &str| {
            http::Request::builder()
                .header(header::ACCEPT_ENCODING, v)
                .body(())
                .unwrap()
        };
        assert!(accepts_gzip(&req("gzip, deflate, br")));
        assert!(accepts_gzip(&req("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&req("*")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
        assert!(!accepts_gzip(&http::Request::new(())));
        // Without gzip the page is the file's text, unencoded.
        let res = page("/dashboard", false);
        assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(res.headers()[header::VARY], "Accept-Encoding");
        assert!(
            text(PAGE).starts_with("<!doctype html") || text(PAGE).starts_with("<!DOCTYPE html")
        );
        assert_eq!(
            text(PAGE).into_bytes(),
            std::fs::read("src/dashboard.html").unwrap()
        );
    }
}
