//! Path → handler: the `/hf` prefix, telling OpenAI calls from native Gemini
//! calls, authentication, and the gateway's own small routes (`/`, `/health`,
//! `/status`, `/metrics`).
//!
//! Every route is mounted at `/` and again under `/hf`. Errors answered here
//! use the format of the API that was called: OpenAI's error object on the
//! OpenAI routes, Google's `{"error":{"code","message","status"}}` on native ones.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::answer::{LogInfo, with_log};
use crate::app::App;
use crate::auth::{Role, openai_authorized, role};
use crate::body::{self, Body};
use crate::error::{Api, GatewayError};
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
    crate::auth::admin_only(app, req)
        .err()
        .map(|e| e.into_openai())
}

/// A handler's result as the answer, in `api`'s format, with its log details.
fn done(
    result: Result<Response<Body>, GatewayError>,
    api: Api,
    mut log: LogInfo,
    label: &'static str,
) -> Response<Body> {
    let mut res = result.unwrap_or_else(|e| e.render(api));
    log.route = label;
    res.extensions_mut().insert(log);
    res
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
    GatewayError::Unauthorized.render(api)
}

fn method_not_allowed(api: Api, allow: &'static str) -> Response<Body> {
    GatewayError::MethodNotAllowed(allow).render(api)
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
        let mut log = LogInfo::default();
        let result = match crate::auth::native_keys(&app, &req) {
            Ok(keys) => crate::gemini::native(app, req, version, rest, keys, &mut log).await,
            Err(e) => Err(e),
        };
        return done(result, Api::Google, log, "native");
    }
    if let Some(rest) = path.strip_prefix("/openai/v1") {
        // Deleting through Gemini's OpenAI layer deletes what the pool's keys
        // hold: the admin's alone (as on the native routes).
        if method == Method::DELETE
            && role(&app, bearer(&req)) != Role::Admin
            && openai_authorized(&app, &req)
        {
            return with_log(GatewayError::NotAdmin.into_openai(), "openai_compat", "", "");
        }
        if !openai_authorized(&app, &req) {
            return unauthorized(Api::OpenAi);
        }
        let rest = rest.to_string();
        let mut log = LogInfo::default();
        let result = crate::gemini::openai_compat(app, req, &rest, &mut log).await;
        return done(result, Api::OpenAi, log, "openai_compat");
    }

    match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" | "/chat" | "/v1/chat" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            let mut log = LogInfo::default();
            let result = crate::handlers::chat(app, req, &mut log).await;
            done(result, Api::OpenAi, log, "chat")
        }
        "/v1/embeddings" | "/embeddings" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            let mut log = LogInfo::default();
            let result = crate::handlers::embeddings(app, req, &mut log).await;
            done(result, Api::OpenAi, log, "embeddings")
        }
        "/v1/models" | "/models" => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            let mut log = LogInfo::default();
            let result = crate::handlers::models(app, None, &mut log).await;
            done(result, Api::OpenAi, log, "models")
        }
        p if p.starts_with("/v1/models/") => {
            if !is_get {
                return method_not_allowed(Api::OpenAi, "GET");
            }
            if !openai_authorized(&app, &req) {
                return unauthorized(Api::OpenAi);
            }
            let id = percent_decode(&p["/v1/models/".len()..]);
            let mut log = LogInfo::default();
            let result = crate::handlers::models(app, Some(id), &mut log).await;
            done(result, Api::OpenAi, log, "models")
        }
        "/verify" => {
            if method != Method::POST {
                return method_not_allowed(Api::OpenAi, "POST");
            }
            if let Some(refused) = admin_only(&app, &req) {
                return refused;
            }
            let result = crate::admin::verify(app, req).await;
            done(result, Api::OpenAi, LogInfo::default(), "verify")
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
                .unwrap_or_else(|e| e.into_openai())
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
        _ => GatewayError::UnknownRoute {
            method,
            path: truncate(&path, 200).to_string(),
        }
        .into_openai(),
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
