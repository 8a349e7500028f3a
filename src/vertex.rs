//! Vertex AI express mode: Google's models on Vertex AI with an API key
//! (`VERTEX_API_KEYS`, sent to `VERTEX_EXPRESS_BASE_URL`). This module owns
//! the `/vertex-express/…` routes' own checks and the model list; the calls
//! themselves run on the native pass-through ([`crate::gemini::native`] with
//! version [`crate::gemini::VERTEX`]) and the OpenAI chat handler
//! ([`crate::handlers::chat_on`] on [`Lane::Vertex`]), with the Vertex pool
//! (`App::vertex`) and the same retry loop as every other call.
//!
//! Express mode serves only `generateContent`, `streamGenerateContent` and
//! `countTokens` on `publishers/google/models/*` (no model list, files or
//! embeddings), so the native route takes those three actions and the model
//! list is the gateway's own ([`MODELS`]).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::answer::LogInfo;
use crate::app::{App, Lane};
use crate::auth::Keys;
use crate::body::{self, Body};
use crate::error::GatewayError;

/// The answer of every `/vertex-express` route without `VERTEX_API_KEYS`.
const NOT_CONFIGURED: &str = "Vertex AI Express is not configured on this gateway: set VERTEX_API_KEYS (Vertex AI express mode API keys) to use the /vertex-express routes.";

/// The actions express mode serves on a model.
const ACTIONS: &[&str] = &["generateContent", "streamGenerateContent", "countTokens"];

/// The models `/vertex-express/v1/models` lists: express mode has no list
/// call of its own, so these are the Gemini models it serves (any other
/// model name is still passed on as asked).
pub const MODELS: &[&str] = &[
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
];

/// 503 `not_configured` without `VERTEX_API_KEYS`.
fn configured(app: &App) -> Result<(), GatewayError> {
    if app.vertex.is_empty() {
        return Err(GatewayError::NotConfigured(NOT_CONFIGURED));
    }
    Ok(())
}

/// `POST /vertex-express/v1beta/models/{model}:{action}`: `rest` is the path
/// after `/vertex-express/v1beta`, `keys` what the caller's credential
/// allows (the native rules): a token's calls run on the Vertex pool, a
/// caller's own keys (`CLIENT_KEYS_ENABLED`) on themselves. Anything but
/// the three actions express mode serves is a 404 in Google's format.
pub async fn native(
    app: Arc<App>,
    req: Request<Incoming>,
    rest: &str,
    keys: Keys,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let action = rest
        .strip_prefix("/models/")
        .and_then(|m| m.rsplit_once(':'))
        .filter(|(model, _)| !model.is_empty() && !model.contains('/'))
        .map(|(_, action)| action);
    if !action.is_some_and(|a| ACTIONS.contains(&a)) {
        return Err(GatewayError::NotFound(
            "Vertex AI Express serves POST /vertex-express/v1beta/models/{model}:generateContent, :streamGenerateContent and :countTokens.",
        ));
    }
    configured(&app)?;
    let keys = match keys {
        // The lite edition's backup pool holds Gemini API keys, not Vertex's.
        Keys::Server | Keys::Backup => Keys::Server,
        own @ Keys::Client(_) => own,
    };
    crate::gemini::native(app, req, crate::gemini::VERTEX, rest, keys, log).await
}

/// `POST /vertex-express/v1/chat/completions`: OpenAI chat translated as on
/// `/v1/chat/completions`, sent to Vertex Express on the Vertex pool.
pub async fn chat(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    configured(&app)?;
    crate::handlers::chat_on(app, req, log, Lane::Vertex).await
}

/// `GET /vertex-express/v1/models`: [`MODELS`] in OpenAI's list format,
/// with `MODEL_ALIASES` listed and `FILTERED_MODELS` hidden as on `/v1/models`.
pub fn models(app: &App) -> Result<Response<Body>, GatewayError> {
    configured(app)?;
    let cfg = app.cfg();
    let named: Vec<Value> = MODELS
        .iter()
        .map(|m| json!({"name": format!("models/{m}")}))
        .collect();
    let mut list = crate::openai::models::translate_list(&named, &cfg.translate);
    crate::openai::models::apply_rules(&mut list, &cfg.model_aliases, &cfg.filtered_models);
    Ok(body::json(StatusCode::OK, &list))
}
