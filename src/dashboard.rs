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

/// The page.
const PAGE: &str = include_str!("dashboard.html");
/// Its script (the module the page loads; it imports the others).
const JS: &str = include_str!("dashboard.js");

const JS_TYPE: &str = "text/javascript; charset=utf-8";

/// Every asset of the page: path (without the `/hf` mount), content type and
/// text. The route table lists the same paths (a unit test checks it).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("dashboard.css"),
    ),
    ("/dashboard.js", JS_TYPE, JS),
    (
        "/dashboard-i18n.js",
        JS_TYPE,
        include_str!("dashboard/i18n.js"),
    ),
    ("/dashboard-ui.js", JS_TYPE, include_str!("dashboard/ui.js")),
    (
        "/dashboard-keys.js",
        JS_TYPE,
        include_str!("dashboard/keys.js"),
    ),
    (
        "/dashboard-settings.js",
        JS_TYPE,
        include_str!("dashboard/settings.js"),
    ),
    (
        "/dashboard-logs.js",
        JS_TYPE,
        include_str!("dashboard/logs.js"),
    ),
    (
        "/dashboard-usage.js",
        JS_TYPE,
        include_str!("dashboard/usage.js"),
    ),
];

/// The Content-Security-Policy sent with the page and its assets: only the
/// gateway's own scripts, styles and API; no inline code, frames or forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /dashboard`; `GET /dashboard/` (by the path without the `/hf`
/// mount) redirects to it with a relative `Location`, so the page's relative
/// URLs resolve next to it under either mount.
pub fn page(path: &str) -> Response<Body> {
    if path.ends_with('/') {
        let mut res = respond("", "text/plain; charset=utf-8", "no-store");
        *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
        res.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("../dashboard"));
        return res;
    }
    respond(PAGE, "text/html; charset=utf-8", "no-store")
}

/// `GET` of one of [`ASSETS`] (by the path without the `/hf` mount); 404 for
/// any other path.
pub fn asset(path: &str) -> Response<Body> {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, kind, text)) => respond(text, kind, "no-cache"),
        None => body::text(StatusCode::NOT_FOUND, "Not found.\n"),
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

    fn scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
        ASSETS
            .iter()
            .filter(|(p, _, _)| p.ends_with(".js"))
            .map(|(p, _, text)| (*p, *text))
    }

    #[test]
    fn page_links_only_its_own_assets() {
        assert!(PAGE.contains("href=\"dashboard.css\""));
        assert!(PAGE.contains("src=\"dashboard.js\""));
        // No inline script or style: the CSP would block them.
        assert!(!PAGE.contains("<style"));
        assert!(!PAGE.contains("style=\""));
        assert_eq!(PAGE.matches("<script").count(), 1);
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
        for (path, text) in scripts() {
            for (i, _) in text.match_indices(" from './") {
                let rest = &text[i + " from './".len()..];
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
            let res = asset(path);
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()[header::CONTENT_TYPE], *kind);
            assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
        assert_eq!(asset("/dashboard.html").status(), StatusCode::NOT_FOUND);
        assert_eq!(asset("/dashboard-nope.js").status(), StatusCode::NOT_FOUND);
        let res = page("/dashboard");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let res = page("/dashboard/");
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "../dashboard");
    }
}
