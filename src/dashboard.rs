//! The key status page at `/dashboard`: one HTML page with its stylesheet and
//! script (`/dashboard.css`, `/dashboard.js`), all embedded in the binary and
//! served from the gateway's own origin, so the page works offline and under a
//! strict Content-Security-Policy that allows nothing else.
//!
//! The page itself carries no data and needs no token: its script asks for the
//! admin token once (kept in `sessionStorage`), then reads `status` with it as
//! a Bearer header and drives the admin actions `status/verify` and
//! `status/keys/{index}/reset`. Every URL it uses is relative, so the same
//! page works at `/dashboard` and `/hf/dashboard`.

use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// The page.
const PAGE: &str = include_str!("dashboard.html");
/// Its stylesheet.
const CSS: &str = include_str!("dashboard.css");
/// Its script.
const JS: &str = include_str!("dashboard.js");

/// The Content-Security-Policy sent with the page and its assets: only the
/// gateway's own scripts, styles and API; no inline code, frames or forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /dashboard`.
pub fn page() -> Response<Body> {
    respond(PAGE, "text/html; charset=utf-8", "no-store")
}

/// `GET /dashboard.css` and `GET /dashboard.js` (by the path without the
/// `/hf` mount); 404 for any other path.
pub fn asset(path: &str) -> Response<Body> {
    match path {
        "/dashboard.css" => respond(CSS, "text/css; charset=utf-8", "no-cache"),
        "/dashboard.js" => respond(JS, "text/javascript; charset=utf-8", "no-cache"),
        _ => body::text(StatusCode::NOT_FOUND, "Not found.\n"),
    }
}

fn respond(text: &'static str, kind: &'static str, cache: &'static str) -> Response<Body> {
    let mut res = Response::new(body::full(text));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
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

    #[test]
    fn page_links_only_its_own_assets() {
        assert!(PAGE.contains("href=\"dashboard.css\""));
        assert!(PAGE.contains("src=\"dashboard.js\""));
        // No inline script or style: the CSP would block them.
        assert!(!PAGE.contains("<style"));
        assert!(!PAGE.contains("style=\""));
        assert_eq!(PAGE.matches("<script").count(), 1);
        // Relative API paths, so `/hf/dashboard` reads `/hf/status`.
        assert!(JS.contains("'status'"));
        assert!(!JS.contains("'/status"));
    }

    #[test]
    fn assets_by_path() {
        assert_eq!(asset("/dashboard.js").status(), StatusCode::OK);
        assert_eq!(asset("/dashboard.css").status(), StatusCode::OK);
        assert_eq!(asset("/dashboard.html").status(), StatusCode::NOT_FOUND);
        let res = page();
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    }
}
