//! Path → handler: the route table ([`ROUTES`]) and its one dispatcher
//! ([`route`]), which checks the method and the caller's credential before
//! any handler runs, so a new route cannot forget its check.
//!
//! Every entry authenticates unless it is marked public, and only the paths
//! in [`UNAUTHENTICATED_ROUTES`] and [`UNAUTHENTICATED_PATTERNS`] are (plus
//! `/metrics` with `METRICS_PUBLIC`);
//! a unit test walks the table to hold that. Every route is mounted at `/` and
//! again under `/hf`. Errors use the format of the API that was called:
//! OpenAI's error object on the OpenAI and admin routes, Google's
//! `{"error":{"code","message","status"}}` on native ones.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::answer::LogInfo;
use crate::app::App;
use crate::auth::{Keys, Role, openai_authorized, role};
use crate::body::{self, Body};
use crate::error::{Api, GatewayError};
use crate::request::{bearer, native_credential, percent_decode};

/// How a route's path is matched: a few string comparisons, no regex and no
/// allocation. Each match yields the part of the path the handler gets.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// One of these paths exactly (the handler gets the path).
    Exact(&'static [&'static str]),
    /// Any path starting with this (the handler gets what follows).
    Prefix(&'static str),
    /// This path, or this path followed by `/…` (the handler gets what follows).
    Under(&'static str),
    /// `{before}{id}{after}` with a non-empty id (the handler gets the id).
    Around(&'static str, &'static str),
    /// `/v1/models…` when the call is plainly native: a `:action` suffix, or
    /// a Google credential (`x-goog-api-key`, `?key=`) and no bearer token;
    /// otherwise `/v1/models` is OpenAI's (the handler gets what follows `/v1`).
    NativeModels,
    /// `{base}{sub}`, `{base}{sub}/…` or `{base}{sub}:…` (the handler gets
    /// what follows `base`).
    UnderKeep(&'static str, &'static str),
}

impl Pattern {
    /// The part of `path` the handler gets, if `path` matches.
    fn matches<'p, B>(&self, path: &'p str, req: &Request<B>) -> Option<&'p str> {
        match *self {
            Pattern::Exact(paths) => paths.contains(&path).then_some(path),
            Pattern::Prefix(p) => path.strip_prefix(p),
            Pattern::Under(p) => path
                .strip_prefix(p)
                .filter(|rest| rest.is_empty() || rest.starts_with('/')),
            Pattern::Around(before, after) => path
                .strip_prefix(before)?
                .strip_suffix(after)
                .filter(|id| !id.is_empty()),
            Pattern::NativeModels => {
                let rest = path.strip_prefix("/v1")?;
                let native = rest.starts_with("/models")
                    && (rest.contains(':')
                        || (native_credential(req).is_some() && bearer(req).is_none()));
                native.then_some(rest)
            }
            Pattern::UnderKeep(base, sub) => {
                let rest = path.strip_prefix(base)?;
                let tail = rest.strip_prefix(sub)?;
                (tail.is_empty() || tail.starts_with('/') || tail.starts_with(':')).then_some(rest)
            }
        }
    }
}

/// Which methods a route takes (anything else is a 405 with `Allow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Methods {
    /// `GET` and `HEAD`.
    Get,
    /// `POST`.
    Post,
    /// Any method (the pass-through routes forward it).
    Any,
    /// The methods listed, as the `Allow` header says them (`"GET, HEAD,
    /// POST"`; `GET` implies `HEAD` only when listed).
    Of(&'static str),
}

impl Methods {
    fn allows(self, m: &Method) -> bool {
        match self {
            Methods::Get => m == Method::GET || m == Method::HEAD,
            Methods::Post => m == Method::POST,
            Methods::Any => true,
            Methods::Of(list) => list.split(", ").any(|x| x == m.as_str()),
        }
    }

    /// The `Allow` header's value.
    fn allow(self) -> &'static str {
        match self {
            Methods::Get => "GET, HEAD",
            Methods::Post => "POST",
            Methods::Any => "GET, HEAD, POST, PUT, PATCH, DELETE",
            Methods::Of(list) => list,
        }
    }
}

/// Who may call a route; checked by [`admit`] before the handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: only the paths in [`UNAUTHENTICATED_ROUTES`] and [`UNAUTHENTICATED_PATTERNS`].
    Public,
    /// One of `ALLOWED_TOKENS` as the bearer token (or the gateway is open):
    /// 401 with `WWW-Authenticate: Bearer` otherwise. The default.
    Client,
    /// As [`Access::Client`]; a `DELETE` (which deletes what the pool's keys
    /// hold) takes the admin token (403 for other tokens).
    ClientAdminDelete,
    /// The admin token (`AUTH_TOKEN`, or the first of `ALLOWED_TOKENS`): 401
    /// without a known token, 403 for another client token.
    Admin,
    /// [`Access::Admin`], or anyone with `METRICS_PUBLIC`.
    Metrics,
    /// The native credential rules ([`crate::auth::native_keys`]), which also
    /// pick the keys the call runs on.
    Native,
    /// As [`Access::Client`], and the token may come as `x-api-key` too
    /// (Anthropic's header).
    ApiKey,
    /// As [`Access::Native`], except a Files API upload chunk
    /// (`?upload_id=`): its unguessable session id is its credential.
    Upload,
}

/// What runs a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// `GET /`.
    Root,
    /// `GET /health`.
    Health,
    /// A native Gemini call for this API version.
    Native(&'static str),
    /// The Files API upload protocol for this API version.
    Upload(&'static str),
    /// Gemini's own OpenAI-compatible endpoint.
    OpenAiCompat,
    /// OpenAI chat completions.
    Chat,
    /// OpenAI Responses: create.
    Responses,
    /// OpenAI Responses: `GET` / `DELETE /v1/responses/{id}`.
    ResponseById,
    /// OpenAI embeddings.
    Embeddings,
    /// Anthropic messages.
    Messages,
    /// Anthropic token counting.
    CountTokens,
    /// OpenAI image generation.
    Images,
    /// OpenAI text to speech.
    Speech,
    /// `GET /images/{id}.png`: a generated image kept for a `url` answer.
    ImageFile,
    /// OpenAI model list.
    Models,
    /// One OpenAI model.
    Model,
    /// `POST /verify`.
    Verify,
    /// `GET /status`.
    Status,
    /// `POST /status/verify`.
    StatusVerify,
    /// `POST /status/keys/{id}/reset`.
    ResetKey,
    /// `POST /status/keys/{id}/verify`.
    VerifyKey,
    /// The console page (`/dashboard`; `/dashboard/` redirects to it).
    Dashboard,
    /// The console's stylesheet and scripts (`dashboard::ASSETS`).
    DashboardAsset,
    /// `GET /metrics`.
    Metrics,
    /// `GET` and `PATCH /admin/config`.
    AdminConfig,
    /// `DELETE /admin/config/{NAME}`.
    AdminConfigDelete,
    /// `GET /admin/keys` (list) and `POST /admin/keys` (add).
    AdminKeys,
    /// `GET /admin/keys/export`.
    AdminKeysExport,
    /// `POST /admin/keys/delete`.
    AdminKeysDelete,
    /// `DELETE /admin/keys/{id}`, `PATCH /admin/keys/{id}` (the key's tier).
    AdminKeyDelete,
    /// `GET` and `DELETE /admin/logs`.
    Logs,
    /// `GET /admin/logs/{id}`.
    LogEntry,
    /// `GET /admin/usage`.
    Usage,
    /// `GET /admin/proxies`, `POST /admin/proxies/check`.
    Proxies,
    /// Vertex AI Express, native: `/vertex-express/v1beta/models/{m}:{action}`.
    Vertex,
    /// Vertex AI Express, OpenAI chat: `/vertex-express/v1/chat/completions`.
    VertexChat,
    /// Vertex AI Express, OpenAI model list: `/vertex-express/v1/models`.
    VertexModels,
}

/// One entry of the route table.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// Which paths.
    pub pattern: Pattern,
    /// Which methods.
    pub methods: Methods,
    /// Who may call.
    pub access: Access,
    /// The route's label in the log line and the metrics.
    pub label: &'static str,
    /// The format of its errors.
    pub format: Api,
    /// What runs it.
    pub handler: Handler,
}

/// An authenticated OpenAI-format route (the default); see the modifiers.
const fn at(pattern: Pattern, methods: Methods, label: &'static str, handler: Handler) -> Route {
    Route {
        pattern,
        methods,
        access: Access::Client,
        label,
        format: Api::OpenAi,
        handler,
    }
}

impl Route {
    /// Needs no credential (the path must be in [`UNAUTHENTICATED_ROUTES`]
    /// or match [`UNAUTHENTICATED_PATTERNS`]).
    const fn public(mut self) -> Route {
        self.access = Access::Public;
        self
    }

    /// Takes the admin token.
    const fn admin(mut self) -> Route {
        self.access = Access::Admin;
        self
    }

    /// Uses the native credential rules and answers in Google's format.
    const fn native(mut self) -> Route {
        self.access = Access::Native;
        self.format = Api::Google;
        self
    }

    /// Answers in Anthropic's format and takes the token as `x-api-key` too.
    const fn anthropic(mut self) -> Route {
        self.access = Access::ApiKey;
        self.format = Api::Anthropic;
        self
    }

    /// Changes `access` to `a`.
    const fn access(mut self, a: Access) -> Route {
        self.access = a;
        self
    }
}

/// The path patterns that need no credential besides [`UNAUTHENTICATED_ROUTES`]:
/// `(before, after)` around an id that is itself the credential (the
/// generated images kept for `url` answers, 128 random bits).
pub const UNAUTHENTICATED_PATTERNS: &[(&str, &str)] = &[("/images/", ".png")];

/// Whether `path` needs no credential (see [`UNAUTHENTICATED_ROUTES`] and
/// [`UNAUTHENTICATED_PATTERNS`]).
pub fn unauthenticated(path: &str) -> bool {
    UNAUTHENTICATED_ROUTES.contains(&path)
        || UNAUTHENTICATED_PATTERNS.iter().any(|(before, after)| {
            path.strip_prefix(before)
                .and_then(|rest| rest.strip_suffix(after))
                .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        })
}

/// The paths that need no credential (as TensorZero's
/// `UNAUTHENTICATED_ROUTES`): every other route authenticates. `/metrics`
/// joins them when `METRICS_PUBLIC` is set.
pub const UNAUTHENTICATED_ROUTES: &[&str] = &[
    "/",
    "/health",
    "/healthz",
    "/dashboard",
    "/dashboard/",
    "/dashboard.css",
    "/dashboard.js",
    "/dashboard-i18n.js",
    "/dashboard-ui.js",
    "/dashboard-keys.js",
    "/dashboard-settings.js",
    "/dashboard-logs.js",
    "/dashboard-usage.js",
];

use Handler as H;
use Methods::{Any, Get, Of, Post};
use Pattern::{Around, Exact, NativeModels, Prefix, Under, UnderKeep};

/// The route table, first match wins (paths without the `/hf` mount).
pub static ROUTES: &[Route] = &[
    at(Exact(&["/"]), Get, "root", H::Root).public(),
    at(Exact(&["/health", "/healthz"]), Get, "health", H::Health).public(),
    // Native Gemini: /gemini/v1beta/..., /v1beta/..., /gemini/v1/..., and
    // /v1/models... when the credential or the `:action` says native.
    at(Under("/gemini/v1beta"), Any, "native", H::Native("v1beta")).native(),
    at(Under("/v1beta"), Any, "native", H::Native("v1beta")).native(),
    at(Under("/gemini/v1"), Any, "native", H::Native("v1")).native(),
    at(NativeModels, Any, "native", H::Native("v1")).native(),
    // Files, cached contents and batches on v1 (google-genai's default).
    at(UnderKeep("/v1", "/files"), Any, "native", H::Native("v1")).native(),
    at(
        UnderKeep("/v1", "/cachedContents"),
        Any,
        "native",
        H::Native("v1"),
    )
    .native(),
    at(UnderKeep("/v1", "/batches"), Any, "native", H::Native("v1")).native(),
    // The Files API upload protocol.
    at(
        Exact(&["/upload/v1beta/files", "/gemini/upload/v1beta/files"]),
        Post,
        "upload",
        H::Upload("v1beta"),
    )
    .native()
    .access(Access::Upload),
    at(
        Exact(&["/upload/v1/files", "/gemini/upload/v1/files"]),
        Post,
        "upload",
        H::Upload("v1"),
    )
    .native()
    .access(Access::Upload),
    at(Prefix("/openai/v1"), Any, "openai_compat", H::OpenAiCompat)
        .access(Access::ClientAdminDelete),
    // OpenAI.
    at(
        Exact(&[
            "/v1/chat/completions",
            "/chat/completions",
            "/chat",
            "/v1/chat",
        ]),
        Post,
        "chat",
        H::Chat,
    ),
    at(
        Exact(&["/v1/responses", "/responses"]),
        Post,
        "responses",
        H::Responses,
    ),
    at(
        Prefix("/v1/responses/"),
        Of("GET, HEAD, DELETE"),
        "responses",
        H::ResponseById,
    ),
    at(
        Exact(&["/v1/embeddings", "/embeddings"]),
        Post,
        "embeddings",
        H::Embeddings,
    ),
    at(Exact(&["/v1/models", "/models"]), Get, "models", H::Models),
    // Media: image generation, speech, and the images kept for `url` answers
    // (public: the 128-bit id in the path is the credential).
    at(
        Exact(&["/v1/images/generations", "/images/generations"]),
        Post,
        "images",
        H::Images,
    ),
    at(
        Exact(&["/v1/audio/speech", "/audio/speech"]),
        Post,
        "speech",
        H::Speech,
    ),
    at(Around("/images/", ".png"), Get, "images", H::ImageFile).public(),
    // Anthropic Messages (`?beta=true` is in the query, not the path).
    at(
        Exact(&["/v1/messages", "/anthropic/v1/messages"]),
        Post,
        "messages",
        H::Messages,
    )
    .anthropic(),
    at(
        Exact(&[
            "/v1/messages/count_tokens",
            "/anthropic/v1/messages/count_tokens",
        ]),
        Post,
        "messages",
        H::CountTokens,
    )
    .anthropic(),
    at(Prefix("/v1/models/"), Get, "models", H::Model),
    at(Prefix("/models/"), Get, "models", H::Model),
    // Admin.
    at(Exact(&["/verify"]), Post, "verify", H::Verify).admin(),
    at(Exact(&["/status"]), Get, "status", H::Status).admin(),
    at(Exact(&["/status/verify"]), Post, "status", H::StatusVerify).admin(),
    at(
        Around("/status/keys/", "/reset"),
        Post,
        "status",
        H::ResetKey,
    )
    .admin(),
    at(
        Exact(&["/admin/config"]),
        Of("GET, HEAD, PATCH"),
        "admin_config",
        H::AdminConfig,
    )
    .admin(),
    at(
        Around("/admin/config/", ""),
        Of("DELETE"),
        "admin_config",
        H::AdminConfigDelete,
    )
    .admin(),
    // The key admin API.
    at(
        Exact(&["/admin/keys"]),
        Of("GET, HEAD, POST"),
        "admin_keys",
        H::AdminKeys,
    )
    .admin(),
    at(
        Exact(&["/admin/keys/export"]),
        Get,
        "admin_keys",
        H::AdminKeysExport,
    )
    .admin(),
    at(
        Exact(&["/admin/keys/delete"]),
        Post,
        "admin_keys",
        H::AdminKeysDelete,
    )
    .admin(),
    at(
        Prefix("/admin/keys/"),
        Of("DELETE, PATCH"),
        "admin_keys",
        H::AdminKeyDelete,
    )
    .admin(),
    // The error log and usage.
    at(
        Exact(&["/admin/logs"]),
        Of("GET, HEAD, DELETE"),
        "admin_logs",
        H::Logs,
    )
    .admin(),
    at(Prefix("/admin/logs/"), Get, "admin_logs", H::LogEntry).admin(),
    at(Exact(&["/admin/usage"]), Get, "admin_usage", H::Usage).admin(),
    at(
        Exact(&["/admin/proxies", "/admin/proxies/check"]),
        Of("GET, HEAD, POST"),
        "admin_proxies",
        H::Proxies,
    )
    .admin(),
    at(
        Around("/status/keys/", "/verify"),
        Post,
        "status",
        H::VerifyKey,
    )
    .admin(),
    at(Exact(&["/metrics"]), Get, "metrics", H::Metrics).access(Access::Metrics),
    // Vertex AI Express (`crate::vertex`): native calls take the native
    // credential rules, the OpenAI routes a client token.
    at(Under("/vertex-express/v1beta"), Post, "vertex", H::Vertex).native(),
    at(
        Exact(&["/vertex-express/v1/chat/completions"]),
        Post,
        "vertex",
        H::VertexChat,
    ),
    at(
        Exact(&["/vertex-express/v1/models"]),
        Get,
        "vertex",
        H::VertexModels,
    ),
    // The admin console (its data comes from /admin/…, which take the admin
    // token); the assets are `dashboard::ASSETS`.
    at(
        Exact(&["/dashboard", "/dashboard/"]),
        Get,
        "dashboard",
        H::Dashboard,
    )
    .public(),
    at(
        Exact(&[
            "/dashboard.css",
            "/dashboard.js",
            "/dashboard-i18n.js",
            "/dashboard-ui.js",
            "/dashboard-keys.js",
            "/dashboard-settings.js",
            "/dashboard-logs.js",
            "/dashboard-usage.js",
        ]),
        Get,
        "dashboard",
        H::DashboardAsset,
    )
    .public(),
];

/// The path without the `/hf` mount prefix.
pub fn strip_mount(path: &str) -> &str {
    match path.strip_prefix("/hf") {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// The first route matching `path`, and the part of the path its handler gets.
pub fn find<'p, B>(path: &'p str, req: &Request<B>) -> Option<(&'static Route, &'p str)> {
    ROUTES
        .iter()
        .find_map(|r| r.pattern.matches(path, req).map(|rest| (r, rest)))
}

/// What [`admit`] found out about the caller.
pub enum Grant {
    /// The caller may call the route.
    Allowed,
    /// A native call, and the keys it runs on.
    Keys(Keys),
}

/// Check the method (405 with `Allow`) and the caller's credential for
/// `route` (see [`Access`]). Runs before every handler.
pub fn admit<B>(app: &App, route: &Route, req: &Request<B>) -> Result<Grant, GatewayError> {
    if !route.methods.allows(req.method()) {
        return Err(GatewayError::MethodNotAllowed(route.methods.allow()));
    }
    match route.access {
        Access::Public => {}
        Access::Metrics if app.cfg().metrics_public => {}
        Access::Admin | Access::Metrics => crate::auth::admin_only(app, req)?,
        Access::Client | Access::ClientAdminDelete => {
            if !openai_authorized(app, req) {
                return Err(GatewayError::Unauthorized);
            }
            if route.access == Access::ClientAdminDelete
                && req.method() == Method::DELETE
                && role(app, bearer(req)) != Role::Admin
            {
                return Err(GatewayError::NotAdmin);
            }
        }
        Access::Native => return crate::auth::native_keys(app, req).map(Grant::Keys),
        Access::ApiKey => {
            if !crate::auth::api_key_authorized(app, req) {
                return Err(GatewayError::Unauthorized);
            }
        }
        Access::Upload => {
            let q = req.uri().query().unwrap_or("");
            if crate::request::query_param(q, "upload_id").is_none() {
                return crate::auth::native_keys(app, req).map(Grant::Keys);
            }
        }
    }
    Ok(Grant::Allowed)
}

/// Route one request (CORS, logging and the panic guard are the server's):
/// find its route, [`admit`] it, run the handler, render an error in the
/// route's format, and attach the log details. A plain function: the future
/// it returns is [`run`]'s alone (an `async fn` here would hold the request
/// and its grant a second time, as its own arguments, for the whole request).
pub fn route(
    app: Arc<App>,
    req: Request<Incoming>,
) -> impl Future<Output = Response<Body>> + Send + use<> {
    use futures_util::future::Either;
    let path = strip_mount(req.uri().path()).to_string();
    let Some((route, rest)) = find(&path, &req) else {
        let e = GatewayError::UnknownRoute {
            method: req.method().clone(),
            path: truncate(&path, 200).to_string(),
        };
        return Either::Left(std::future::ready(e.into_openai()));
    };
    let rest = span(&path, rest);
    match admit(&app, route, &req) {
        Ok(grant) => {
            // Every upstream wait of the request is bounded by one deadline.
            let budget = {
                let cfg = app.cfg();
                crate::longcall::Budget::new(cfg.request_timeout, cfg.timeout_retries)
            };
            let running = run(app, req, route, path, rest, grant);
            Either::Right(crate::longcall::scope(budget, running))
        }
        Err(e) => {
            let mut res = e.render(route.format);
            res.extensions_mut().insert(LogInfo {
                route: route.label,
                ..LogInfo::default()
            });
            Either::Left(std::future::ready(res))
        }
    }
}

/// Where `part`, a slice of `whole`, lies in it (every [`Pattern`] matches
/// to a part of the path).
fn span(whole: &str, part: &str) -> std::ops::Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    debug_assert!(start + part.len() <= whole.len());
    start..start + part.len()
}

/// Await a handler's future on the heap. [`run`]'s own state then holds one
/// pointer per arm instead of the largest handler's state machine, so the
/// per-request future the server boxes stays small and each request builds and
/// moves only its own handler's state (measured: the union of every handler
/// made that move ~15,000 instructions of memcpy per native request).
macro_rules! heap {
    ($f:expr) => {
        Box::pin($f).await
    };
}

/// Run an admitted request's handler (`rest`: the part of `path` its
/// pattern matched), render its error in the route's format and attach the
/// log details.
async fn run(
    app: Arc<App>,
    req: Request<Incoming>,
    route: &'static Route,
    path: String,
    rest: std::ops::Range<usize>,
    grant: Grant,
) -> Response<Body> {
    use crate::{admin, gemini, handlers, models_api};
    let rest = &path[rest];
    let mut info = LogInfo {
        route: route.label,
        ..LogInfo::default()
    };
    let log = &mut info;
    let result: Result<Response<Body>, GatewayError> = 'handled: {
        Ok(match route.handler {
            H::Root => body::text(StatusCode::OK, "gemini-balance is running\n"),
            H::Health => admin::health(&app),
            H::Native(version) => {
                // Only a native route's access check yields keys.
                let Grant::Keys(keys) = grant else {
                    break 'handled Err(GatewayError::Internal);
                };
                break 'handled heap!(gemini::native(app, req, version, rest, keys, log));
            }
            H::Upload(version) => {
                let keys = match grant {
                    Grant::Keys(k) => Some(k),
                    Grant::Allowed => None,
                };
                break 'handled heap!(gemini::upload::upload(app, req, version, keys, log));
            }
            H::OpenAiCompat => break 'handled heap!(gemini::openai_compat(app, req, rest, log)),
            H::Chat => break 'handled heap!(handlers::chat(app, req, log)),
            H::Responses => break 'handled heap!(crate::responses_api::create(app, req, log)),
            H::ResponseById => {
                let id = percent_decode(rest);
                heap!(crate::responses_api::by_id(
                    &app,
                    req.method(),
                    crate::request::bearer(&req),
                    &id
                ))
            }
            H::Embeddings => break 'handled heap!(models_api::embeddings(app, req, log)),
            H::Messages => break 'handled heap!(crate::messages_api::messages(app, req, log)),
            H::CountTokens => {
                break 'handled heap!(crate::messages_api::count_tokens(app, req, log));
            }
            H::Images => break 'handled heap!(crate::media_api::generations(app, req, log)),
            H::Speech => break 'handled heap!(crate::media_api::speech(app, req, log)),
            H::ImageFile => break 'handled crate::media_api::image(&app, rest),
            H::Models => break 'handled heap!(models_api::models(app, None, log)),
            H::Model => {
                break 'handled heap!(models_api::models(app, Some(percent_decode(rest)), log));
            }
            H::Verify => break 'handled heap!(admin::verify(app, req)),
            H::Status => admin::status(&app),
            H::StatusVerify => heap!(admin::status_verify(&app)),
            H::ResetKey => break 'handled admin::reset_key(&app, &percent_decode(rest)),
            H::VerifyKey => break 'handled heap!(admin::verify_one(&app, &percent_decode(rest))),
            H::Dashboard => crate::dashboard::page(rest, crate::dashboard::accepts_gzip(&req)),
            H::DashboardAsset => {
                crate::dashboard::asset(rest, crate::dashboard::accepts_gzip(&req))
            }
            H::Metrics => admin::metrics(&app),
            H::AdminConfig if req.method() == Method::PATCH => {
                break 'handled heap!(admin::config::patch(&app, req));
            }
            H::AdminConfig => admin::config::get(&app),
            H::AdminConfigDelete => {
                break 'handled admin::config::delete(&app, &percent_decode(rest));
            }
            H::AdminKeys => break 'handled heap!(admin::keys::keys(app, req)),
            H::AdminKeysExport => {
                break 'handled admin::keys::export(&app, req.uri().query().unwrap_or(""));
            }
            H::AdminKeysDelete => break 'handled heap!(admin::keys::delete_many(app, req)),
            H::AdminKeyDelete if req.method() == Method::PATCH => {
                let id = percent_decode(rest);
                break 'handled heap!(admin::keys::patch_one(&app, req, &id));
            }
            H::AdminKeyDelete => {
                break 'handled admin::keys::delete_one(&app, &percent_decode(rest));
            }
            H::Logs => break 'handled heap!(admin::logs::logs(&app, &req)),
            H::LogEntry => break 'handled heap!(admin::logs::entry(&app, &percent_decode(rest))),
            H::Usage => break 'handled heap!(admin::usage::usage(&app, &req)),
            H::Proxies => break 'handled heap!(admin::proxies::proxies(&app, &req)),
            H::Vertex => {
                let Grant::Keys(keys) = grant else {
                    break 'handled Err(GatewayError::Internal);
                };
                break 'handled heap!(crate::vertex::native(app, req, rest, keys, log));
            }
            H::VertexChat => break 'handled heap!(crate::vertex::chat(app, req, log)),
            H::VertexModels => break 'handled crate::vertex::models(&app),
        })
    };
    let mut res = result.unwrap_or_else(|e| e.render(route.format));
    res.extensions_mut().insert(info);
    res
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn strips_the_hf_mount() {
        assert_eq!(strip_mount("/hf/v1/models"), "/v1/models");
        assert_eq!(strip_mount("/hf"), "/");
        assert_eq!(strip_mount("/hfx"), "/hfx");
        assert_eq!(strip_mount("/v1/models"), "/v1/models");
    }

    fn app(extra: &[(&str, &str)]) -> App {
        let mut vars: std::collections::HashMap<String, String> = [
            ("API_KEYS", "pool-key-00000001"),
            (
                "ALLOWED_TOKENS",
                "[\"sk-admin-000001\",\"sk-client-00002\"]",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        App::new(Config::from_map(&vars).expect("config"))
    }

    /// Every path an entry's pattern stands for, as concrete examples.
    fn examples(p: Pattern) -> Vec<String> {
        match p {
            Exact(paths) => paths.iter().map(|p| p.to_string()).collect(),
            Prefix(p) => vec![format!("{p}/x")],
            Under(p) => vec![p.to_string(), format!("{p}/models")],
            Around(a, b) => vec![format!("{a}0{b}")],
            NativeModels => vec!["/v1/models/gemini-2.5-flash:generateContent".into()],
            UnderKeep(a, b) => vec![format!("{a}{b}"), format!("{a}{b}/x")],
        }
    }

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    fn method_for(m: Methods) -> Method {
        match m {
            Methods::Get => Method::GET,
            Methods::Post | Methods::Any => Method::POST,
            Methods::Of(list) => list
                .split(", ")
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(Method::GET),
        }
    }

    #[test]
    fn every_route_but_the_public_ones_refuses_a_request_without_a_token() {
        let app = app(&[]);
        let mut public_seen = Vec::new();
        for route in ROUTES {
            for path in examples(route.pattern) {
                let what = format!("{:?} {path}", route.handler);
                let req = request(method_for(route.methods), &path, &[]);
                let (found, _) = find(&path, &req).expect("the table finds its own example");
                assert!(std::ptr::eq(found, route), "{what}: another entry matched");
                let public = unauthenticated(&path);
                match admit(&app, route, &req) {
                    Ok(_) => {
                        assert!(public, "{what}: admitted without a token");
                        if UNAUTHENTICATED_ROUTES.contains(&path.as_str()) {
                            public_seen.push(path.clone());
                        }
                    }
                    Err(e) => {
                        assert!(!public, "{what}: a public route refused: {e}");
                        assert_eq!(e.status(), StatusCode::UNAUTHORIZED, "{what}");
                    }
                }
                // A token the gateway does not know is refused as well.
                let strangers = [
                    ("authorization", "Bearer sk-stranger-0009"),
                    ("x-goog-api-key", "sk-stranger-0009"),
                ];
                let req = request(method_for(route.methods), &path, &strangers);
                if !public {
                    let e = admit(&app, route, &req)
                        .err()
                        .unwrap_or(GatewayError::Internal);
                    assert!(
                        matches!(e.status().as_u16(), 401 | 403),
                        "{what}: an unknown token gets {}",
                        e.status()
                    );
                }
            }
        }
        public_seen.sort();
        let mut listed = UNAUTHENTICATED_ROUTES.to_vec();
        listed.sort();
        assert_eq!(
            public_seen, listed,
            "every listed public route is in the table"
        );
    }

    #[test]
    fn the_console_assets_are_routed_publicly() {
        let routed: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.handler == Handler::DashboardAsset)
            .flat_map(|r| match r.pattern {
                Pattern::Exact(paths) => paths.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let served: Vec<&str> = crate::dashboard::ASSETS.iter().map(|a| a.0).collect();
        assert_eq!(routed, served);
        for path in served.iter().chain(&["/dashboard", "/dashboard/"]) {
            assert!(UNAUTHENTICATED_ROUTES.contains(path), "{path}");
        }
    }

    #[test]
    fn metrics_is_public_only_when_configured() {
        let metrics = ROUTES
            .iter()
            .find(|r| r.handler == H::Metrics)
            .expect("metrics route");
        let req = request(Method::GET, "/metrics", &[]);
        let closed = admit(&app(&[]), metrics, &req).err().map(|e| e.status());
        assert_eq!(closed, Some(StatusCode::UNAUTHORIZED));
        let open = app(&[("METRICS_PUBLIC", "true")]);
        assert!(admit(&open, metrics, &req).is_ok());
    }

    #[test]
    fn admin_routes_refuse_client_tokens_and_delete_takes_the_admin() {
        let app = app(&[]);
        let client = [("authorization", "Bearer sk-client-00002")];
        let admin = [("authorization", "Bearer sk-admin-000001")];
        for route in ROUTES.iter().filter(|r| r.access == Access::Admin) {
            for path in examples(route.pattern) {
                let req = request(method_for(route.methods), &path, &client);
                let e = admit(&app, route, &req).err().map(|e| e.status());
                assert_eq!(e, Some(StatusCode::FORBIDDEN), "{path}");
                let req = request(method_for(route.methods), &path, &admin);
                assert!(admit(&app, route, &req).is_ok(), "{path}");
            }
        }
        let compat = find("/openai/v1/files/f", &request(Method::DELETE, "/", &[]))
            .map(|(r, _)| r)
            .expect("compat route");
        let req = request(Method::DELETE, "/openai/v1/files/f", &client);
        let e = admit(&app, compat, &req).err().map(|e| e.status());
        assert_eq!(e, Some(StatusCode::FORBIDDEN));
        let req = request(Method::GET, "/openai/v1/models", &client);
        assert!(admit(&app, compat, &req).is_ok());
    }

    #[test]
    fn native_handlers_sit_behind_the_native_check() {
        for route in ROUTES {
            let native = matches!(route.handler, H::Native(_) | H::Vertex);
            // The upload routes: the native check, or a session id.
            let upload = matches!(route.handler, H::Upload(_));
            assert_eq!(native, route.access == Access::Native, "{route:?}");
            assert_eq!(upload, route.access == Access::Upload, "{route:?}");
            assert_eq!(native || upload, route.format == Api::Google, "{route:?}");
        }
    }

    #[test]
    fn methods_are_checked_first_with_allow() {
        let app = app(&[]);
        let req = request(Method::GET, "/v1/chat/completions", &[]);
        let (route, _) = find("/v1/chat/completions", &req).expect("chat");
        match admit(&app, route, &req) {
            Err(GatewayError::MethodNotAllowed(allow)) => assert_eq!(allow, "POST"),
            other => panic!("expected 405, got {:?}", other.err()),
        }
    }

    #[test]
    fn v1_models_is_native_only_when_the_call_says_so() {
        let label = |path: &str, headers: &[(&str, &str)]| {
            let req = request(Method::GET, path, headers);
            find(path, &req).map(|(r, rest)| (r.handler, rest.to_string()))
        };
        assert_eq!(
            label("/v1/models", &[]),
            Some((H::Models, "/v1/models".into()))
        );
        assert_eq!(
            label("/v1/models", &[("x-goog-api-key", "k")]),
            Some((H::Native("v1"), "/models".into()))
        );
        assert_eq!(
            label(
                "/v1/models",
                &[("x-goog-api-key", "k"), ("authorization", "Bearer t")]
            ),
            Some((H::Models, "/v1/models".into()))
        );
        assert_eq!(
            label("/v1/models/m:countTokens", &[]),
            Some((H::Native("v1"), "/models/m:countTokens".into()))
        );
        assert_eq!(label("/v1/models/m", &[]), Some((H::Model, "m".into())));
        assert_eq!(label("/models/m", &[]), Some((H::Model, "m".into())));
        assert_eq!(
            label("/vertex-express/v1beta/models/m:generateContent", &[]),
            Some((H::Vertex, "/models/m:generateContent".into()))
        );
        assert_eq!(
            label("/vertex-express/v1/chat/completions", &[]),
            Some((H::VertexChat, "/vertex-express/v1/chat/completions".into()))
        );
        assert_eq!(label("/v1betax", &[]), None);
        assert_eq!(
            label("/gemini/v1beta/models", &[]),
            Some((H::Native("v1beta"), "/models".into()))
        );
        assert_eq!(
            label("/status/keys/3/reset", &[]),
            Some((H::ResetKey, "3".into()))
        );
        assert_eq!(label("/status/keys//reset", &[]), None);
        assert_eq!(
            label("/status/keys/3f9a0c12ab45/verify", &[]),
            Some((H::VerifyKey, "3f9a0c12ab45".into()))
        );
    }
}
