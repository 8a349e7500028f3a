//! Path → handler: the `/hf` prefix, telling OpenAI calls from native Gemini
//! calls, authentication, and the gateway's own small routes (`/`, `/health`,
//! `/status`, `/metrics`).
//!
//! Every route is mounted at `/` and again under `/hf`. Errors answered here
//! use the format of the API that was called: OpenAI's error object on the
//! OpenAI routes, Google's `{"error":{"code","message","status"}}` on native ones.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::answer::with_log;
use crate::app::App;
use crate::auth::{Role, openai_authorized, role};
use crate::body::{self, Body};
use crate::error::{Api, error};
use crate::request::{bearer, native_credential, percent_decode};

/// The path without the `/hf` mount prefix.
pub fn strip_mount(path: &str) -> &str {
    match path.strip_prefix("/hf") {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// `None` for the admin; else the answer for everyone else: 401 without a
/// known token, 403 for a client token that is not the admin token.
fn admin_only<B>(app: &App, req: &Request<B>) -> Option<Response<Body>> {
    match role(app, bearer(req)) {
        Role::Admin => None,
        Role::Client => Some(not_admin(Api::OpenAi)),
        Role::Unknown => Some(unauthorized(Api::OpenAi)),
    }
}

/// 403 for a valid client token on an admin-only route or action.
pub fn not_admin(api: Api) -> Response<Body> {
    error(
        api,
        StatusCode::FORBIDDEN,
        "This token is not the admin token: admin routes take AUTH_TOKEN, or the first of ALLOWED_TOKENS when AUTH_TOKEN is unset.",
    )
}

/// The id in `/status/keys/{id}/reset` (percent-decoded), if the path is one
/// and names a key.
fn reset_target(path: &str) -> Option<String> {
    let id = path
        .strip_prefix("/status/keys/")?
        .strip_suffix("/reset")
        .filter(|id| !id.is_empty())?;
    Some(percent_decode(id))
}

fn unauthorized(api: Api) -> Response<Body> {
    let mut res = error(
        api,
        StatusCode::UNAUTHORIZED,
        "Missing or invalid token: send `Authorization: Bearer <token>` with one of ALLOWED_TOKENS.",
    );
    if api == Api::OpenAi {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

fn method_not_allowed(api: Api, allow: &'static str) -> Response<Body> {
    let mut res = error(
        api,
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method not allowed; use {allow}."),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// Route one request (CORS, logging and the panic guard are the server's).
pub async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = strip_mount(req.uri().path()).to_string();
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;

    // The gateway's own routes.
    match path.as_str() {
        "/" => {
            return if is_get {
                with_log(
                    body::text(StatusCode::OK, "gemini-balance is running\n"),
                    "root",
                    "",
                    "",
                )
            } else {
                method_not_allowed(Api::OpenAi, "GET, HEAD")
            };
        }
        "/health" | "/healthz" => {
            return if is_get {
                with_log(crate::admin::health(&app), "health", "", "")
            } else {
                method_not_allowed(Api::OpenAi, "GET, HEAD")
            };
        }
        _ => {}
    }

    // Native Gemini routes: /v1beta/..., /gemini/v1beta/..., /gemini/v1/...,
    // and /v1/models... when the credential or the `:action` says native.
    if let Some((version, rest)) = native_route(&path, &req) {
        return crate::gemini::native(app, req, version, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/openai/v1") {
        // Deleting through Gemini's OpenAI layer deletes what the pool's keys
        // hold: the admin's alone (as on the native routes).
        if method == Method::DELETE
            && role(&app, bearer(&req)) != Role::Admin
            && openai_authorized(&app, &req)
        {
            return with_log(not_admin(Api::OpenAi), "openai_compat", "", "");
        }
        let rest = rest.to_string();
        return crate::gemini::openai_compat(app, req, rest).await;
    }

    match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" | "/chat" | "/v1/chat" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            crate::handlers::chat(app, req).await
        }
        "/v1/embeddings" | "/embeddings" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            crate::handlers::embeddings(app, req).await
        }
        "/v1/models" | "/models" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            crate::handlers::models(app, None).await
        }
        p if p.starts_with("/v1/models/") => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            let id = percent_decode(&p["/v1/models/".len()..]);
            crate::handlers::models(app, Some(id)).await
        }
        "/verify" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            crate::admin::verify(app, req).await
        }
        "/status" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            with_log(crate::admin::status(&app), "status", "", "")
        }
        "/status/verify" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            crate::admin::status_verify(&app).await
        }
        p if reset_target(p).is_some() => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            crate::admin::reset_key(&app, &reset_target(p).unwrap_or_default())
        }
        "/dashboard" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            with_log(crate::dashboard::page(), "dashboard", "", "")
        }
        "/dashboard.css" | "/dashboard.js" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            with_log(crate::dashboard::asset(&path), "dashboard", "", "")
        }
        "/metrics" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !app.cfg.metrics_public
                && let Some(refused) = admin_only(&app, &req)
            {
                return refused;
            }
            with_log(crate::admin::metrics(&app), "metrics", "", "")
        }
        _ => error(
            Api::OpenAi,
            StatusCode::NOT_FOUND,
            &format!("Unknown route {} {}.", method, truncate(&path, 200)),
        ),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Which native route a path is: `(version, rest)` where `rest` starts with
/// `/models...` (or is another resource path like `/files`).
fn native_route<'a, B>(path: &'a str, req: &Request<B>) -> Option<(&'static str, &'a str)> {
    for (prefix, version) in [
        ("/gemini/v1beta", "v1beta"),
        ("/v1beta", "v1beta"),
        ("/gemini/v1", "v1"),
    ] {
        if let Some(rest) = path.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some((version, rest));
        }
    }
    // `/v1/models...` is OpenAI's unless the call is plainly native: a
    // `:action` suffix, or a Google credential and no bearer token.
    if let Some(rest) = path.strip_prefix("/v1")
        && rest.starts_with("/models")
    {
        let action = rest.contains(':');
        let native_cred = native_credential(req).is_some() && bearer(req).is_none();
        if action || native_cred {
            return Some(("v1", rest));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_hf_mount() {
        assert_eq!(strip_mount("/hf/v1/models"), "/v1/models");
        assert_eq!(strip_mount("/hf"), "/");
        assert_eq!(strip_mount("/hfx"), "/hfx");
        assert_eq!(strip_mount("/v1/models"), "/v1/models");
    }
}
