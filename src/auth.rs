//! Who may call, and with which keys: client tokens (`ALLOWED_TOKENS`), the
//! admin token (`AUTH_TOKEN`, or the first of `ALLOWED_TOKENS`), and the
//! native routes' credential rules (a token → the server's pool; with
//! `CLIENT_KEYS_ENABLED`, the caller's own keys; trusted single keys → the
//! backup pool). The route table (`crate::router`) applies these before any
//! handler runs.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use http::{Method, Request};

use crate::app::App;
use crate::error::GatewayError;
use crate::keys::{KeyPool, token_matches};
use crate::request::bearer;

/// Whether the OpenAI-style bearer token is allowed (or the gateway is open).
pub fn openai_authorized<B>(app: &App, req: &Request<B>) -> bool {
    let cfg = app.cfg();
    if cfg.allowed_tokens.is_empty() && (cfg.allow_anonymous || cfg.demo) {
        return true;
    }
    bearer(req).is_some_and(|t| token_matches(&cfg.allowed_tokens, t))
}

/// Whether the client token, sent as `x-api-key` (Anthropic's header) or as
/// the bearer token, is allowed (or the gateway is open).
pub fn api_key_authorized<B>(app: &App, req: &Request<B>) -> bool {
    if openai_authorized(app, req) {
        return true;
    }
    let cfg = app.cfg();
    req.headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| token_matches(&cfg.allowed_tokens, t.trim()))
}

/// Who a credential is, as far as the admin routes are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The admin token (or the gateway is open and has no admin token).
    Admin,
    /// One of `ALLOWED_TOKENS` that is not the admin token.
    Client,
    /// No credential, or one the gateway does not know.
    Unknown,
}

/// The role of `credential`. The admin token is `AUTH_TOKEN`, or, when that
/// is unset, the first entry of `ALLOWED_TOKENS` only (as in gemini-balance);
/// a gateway run open (`ALLOW_ANONYMOUS` or demo, no tokens) has no admin
/// token, and everyone is admin.
pub fn role(app: &App, credential: Option<&str>) -> Role {
    role_in(&app.cfg(), credential)
}

/// [`role`] under the settings `cfg`.
pub fn role_in(cfg: &crate::config::Config, credential: Option<&str>) -> Role {
    let admins = cfg.admin_tokens();
    if admins.is_empty() && (cfg.allow_anonymous || cfg.demo) {
        return Role::Admin;
    }
    match credential {
        Some(c) if token_matches(&admins, c) => Role::Admin,
        Some(c) if token_matches(&cfg.allowed_tokens, c) => Role::Client,
        _ => Role::Unknown,
    }
}

/// `Ok` for the admin token as the bearer token (for `/status`, `/verify`
/// and `/metrics`); else 401 without a known token, 403 for a client token
/// that is not the admin token.
pub fn admin_only<B>(app: &App, req: &Request<B>) -> Result<(), GatewayError> {
    match role(app, bearer(req)) {
        Role::Admin => Ok(()),
        Role::Client => Err(GatewayError::NotAdmin),
        Role::Unknown => Err(GatewayError::Unauthorized),
    }
}

/// How many calls each caller's own key list has made (by a hash of the
/// list; forgotten wholesale past [`TURNS_CAP`] lists, so it cannot grow).
static CLIENT_TURNS: std::sync::Mutex<Option<HashMap<u64, usize>>> = std::sync::Mutex::new(None);
const TURNS_CAP: usize = 10_000;

/// The next turn for the caller's key list `cred` (0, 1, 2, … per list).
fn client_turn(cred: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cred.hash(&mut h);
    let id = h.finish();
    let mut guard = CLIENT_TURNS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() >= TURNS_CAP && !map.contains_key(&id) {
        map.clear();
    }
    let n = map.entry(id).or_insert(0);
    let turn = *n;
    *n = n.wrapping_add(1);
    turn
}

/// Which keys a native call uses, decided from the caller's credential.
pub enum Keys {
    /// The server's pool (the caller presented an allowed token).
    Server,
    /// The backup pool (lite rules: a trusted single client key).
    Backup,
    /// The caller's own keys (`CLIENT_KEYS_ENABLED`).
    Client(KeyPool),
}

/// Decide who may make a native call and with which keys (see
/// [`caller_keys`]). A `DELETE` with the shared keys (the pool or the backup
/// pool) deletes what every caller's files, caches and tuned models share, so
/// it takes the admin token (`AUTH_TOKEN`, or the first of `ALLOWED_TOKENS`):
/// anyone else gets 403. A `DELETE` with the caller's own keys
/// (`CLIENT_KEYS_ENABLED`) is theirs.
pub fn native_keys<B>(app: &App, req: &Request<B>) -> Result<Keys, GatewayError> {
    if req.method() != Method::DELETE {
        return caller_keys(app, req);
    }
    let cred = crate::request::credential(req);
    // With FILES_USER_ISOLATION a token deletes its own files, caches and
    // batches (the handler answers 404 for anything else it names).
    if app.cfg().files_user_isolation
        && let Some(name) = crate::affinity::resource_name(req.uri().path())
        && let Some(owner) = app.affinity.owner(&name)
        && cred
            .as_deref()
            .is_some_and(|c| owner.token == crate::affinity::token_tag(c))
    {
        return caller_keys(app, req);
    }
    if role(app, cred.as_deref().filter(|c| !c.is_empty())) == Role::Admin {
        return Ok(Keys::Server);
    }
    match caller_keys(app, req)? {
        own @ Keys::Client(_) => Ok(own),
        Keys::Server | Keys::Backup => Err(GatewayError::SharedDelete),
    }
}

/// Who may call and with which keys: token → server pool; else client keys
/// when enabled; else 401/403.
fn caller_keys<B>(app: &App, req: &Request<B>) -> Result<Keys, GatewayError> {
    let cred = crate::request::credential(req);
    let cfg = app.cfg();
    let open = cfg.allowed_tokens.is_empty() && (cfg.allow_anonymous || cfg.demo);
    let Some(cred) = cred.filter(|c| !c.is_empty()) else {
        return if open {
            Ok(Keys::Server)
        } else {
            Err(GatewayError::MissingCredential)
        };
    };
    if token_matches(&cfg.allowed_tokens, &cred) {
        return Ok(Keys::Server);
    }
    if cfg.client_keys_enabled {
        let mut keys = crate::config::parse_list(&cred).unwrap_or_default();
        // The lite edition's rule: a single key that is trusted may use the backup pool.
        if keys.len() == 1
            && !app.backup.is_empty()
            && token_matches(&cfg.trusted_api_keys, &keys[0])
        {
            return Ok(Keys::Backup);
        }
        if !keys.is_empty() {
            // Each call with the same list starts one key further on, so a
            // caller's calls spread over its keys (the pool is built per call).
            let turn = client_turn(&cred) % keys.len();
            keys.rotate_left(turn);
            return Ok(Keys::Client(KeyPool::new(
                keys,
                crate::keys::Selection::RoundRobin,
                u32::MAX,
            )));
        }
    }
    if open {
        return Ok(Keys::Server);
    }
    Err(GatewayError::UnknownCredential)
}
