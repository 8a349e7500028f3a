//! Who may use a pinned resource and on which key: the caller's ownership
//! view ([`Caller`], `FILES_USER_ISOLATION`), the key a call naming
//! `files/…`, `cachedContents/…` or `batches/…` must go on (a generate body,
//! the OpenAI chat route's Gemini body, a path), the clear errors for a
//! resource of another token (404) or of a disabled or removed key (503), and
//! recording what a key created (see `crate::affinity`). Used by the native
//! routes ([`super::files`], [`super::upload`]) and the OpenAI chat route.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use serde_json::Value;

use crate::affinity::{FILE_TTL_MS, Owner, resource_name, token_tag};
use crate::app::App;
use crate::auth::{Role, role_in};
use crate::error::{GatewayError, UpstreamError, google_error};
use crate::keys::KeyPool;
use crate::upstream::{Answer, Call, Failure};

/// Who is calling, as far as ownership goes.
pub struct Caller {
    /// The credential (None without one); hashed only when needed.
    cred: Option<String>,
    /// [`token_tag`] of the credential (empty without one), made on first use.
    tag: std::sync::OnceLock<String>,
    /// Whether the credential is the admin token (sees everything), worked
    /// out on first use (only a call naming a resource asks).
    admin: std::sync::OnceLock<bool>,
    /// The settings the caller came under (for [`Caller::admin`]).
    cfg: std::sync::Arc<crate::config::Config>,
    /// `FILES_USER_ISOLATION`.
    pub isolated: bool,
}

impl Caller {
    /// The caller of `req`.
    pub fn of<B>(app: &App, req: &Request<B>) -> Caller {
        let cred = crate::request::credential(req)
            .filter(|c| !c.is_empty())
            .map(Cow::into_owned);
        let cfg = app.cfg_full();
        Caller {
            admin: std::sync::OnceLock::new(),
            isolated: cfg.files_user_isolation,
            cfg,
            cred,
            tag: std::sync::OnceLock::new(),
        }
    }

    /// Whether the caller holds the admin token (sees everything).
    pub fn admin(&self) -> bool {
        *self
            .admin
            .get_or_init(|| role_in(&self.cfg, self.cred.as_deref()) == Role::Admin)
    }

    /// [`token_tag`] of the caller's credential (empty without one).
    pub fn tag(&self) -> &str {
        self.tag
            .get_or_init(|| self.cred.as_deref().map(token_tag).unwrap_or_default())
    }

    /// Whether the caller may see and use what `o` describes.
    pub fn sees(&self, o: &Owner) -> bool {
        !self.isolated || self.admin() || o.token == self.tag()
    }

    /// Whose resources a list shows: `None` for everyone's.
    pub fn filter(&self) -> Option<&str> {
        (self.isolated && !self.admin()).then(|| self.tag())
    }
}

/// A Google-format error the gateway answers itself.
pub fn refusal(status: StatusCode, message: &str) -> GatewayError {
    let body = google_error(status, message).to_string();
    GatewayError::Upstream(Box::new(UpstreamError {
        status,
        headers: HeaderMap::new(),
        body: Bytes::from(body),
        hint: None,
    }))
}

/// 404 for a resource the caller may not see (it looks absent).
pub fn not_found(name: &str) -> GatewayError {
    refusal(
        StatusCode::NOT_FOUND,
        &format!("{name} was not found (or it belongs to another token)."),
    )
}

/// The pool index of `owner`'s key if it can serve now; a clear error when it
/// is disabled or removed.
pub fn owner_index(app: &App, name: &str, owner: &Owner) -> Result<usize, GatewayError> {
    let pool = &app.pool;
    let Some(i) = pool
        .position_of_id(&owner.key_id)
        .filter(|i| pool.is_live(*i))
    else {
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{name} belongs to a Gemini key that was removed from the pool (id {}); it cannot be reached with another key.",
                owner.key_id
            ),
        ));
    };
    if pool.is_disabled(i) {
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{name} belongs to the Gemini key {} (id {}), which is disabled; it cannot be reached with another key until that key is enabled again.",
                pool.masked(i),
                owner.key_id
            ),
        ));
    }
    Ok(i)
}

/// The names a request body refers to: `fileUri`/`file_uri` anywhere,
/// `cachedContent`/`cached_content`, `fileName`/`file_name` (a batch input).
pub fn referenced(body: &Value) -> Vec<String> {
    fn walk(v: &Value, depth: usize, out: &mut Vec<String>) {
        if depth > 64 || out.len() > 1000 {
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if let (
                        "fileUri" | "file_uri" | "cachedContent" | "cached_content" | "fileName"
                        | "file_name" | "file_id" | "fileId",
                        Value::String(s),
                    ) = (k.as_str(), x)
                        && let Some(n) = resource_name(s)
                        && !out.contains(&n)
                    {
                        out.push(n);
                    }
                    walk(x, depth + 1, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, depth + 1, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(body, 0, &mut out);
    out
}

/// The key a call naming `names` must use (`None`: any key): the one key
/// owning them all. A name the caller may not see is a 404; names owned by
/// different keys are a 400.
pub fn pin_names(
    app: &App,
    caller: &Caller,
    names: &[String],
) -> Result<Option<usize>, GatewayError> {
    let mut pinned: Option<(usize, &str)> = None;
    for name in names {
        let Some(owner) = app.affinity.owner(name) else {
            continue;
        };
        if !caller.sees(&owner) {
            return Err(not_found(name));
        }
        let i = owner_index(app, name, &owner)?;
        match pinned {
            Some((j, other)) if j != i => {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{other} and {name} belong to different Gemini keys (projects); one request can only use resources of one key."
                    ),
                ));
            }
            _ => pinned = Some((i, name)),
        }
    }
    Ok(pinned.map(|(i, _)| i))
}

/// The key a call with the Gemini `body` must use, if it names a known
/// resource (see [`learn`]).
pub async fn pin_body(
    app: &App,
    caller: &Caller,
    body: &[u8],
) -> Result<Option<usize>, GatewayError> {
    if body.is_empty() || !names_resource(body) {
        return Ok(None);
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let names = referenced(&v);
    learn(app, &names).await;
    pin_names(app, caller, &names)
}

/// Most names one request looks up in the shared store.
const LEARN_MAX: usize = 8;

/// Look up in the shared store (Redis mode) the owners of `names` this
/// replica does not know yet: another replica may have just created them
/// (its records are written through at creation, see [`written`], and also
/// reach this replica as events).
pub async fn learn(app: &App, names: &[String]) {
    if !app.store.is_shared() {
        return;
    }
    let unknown = names.iter().filter(|n| app.affinity.owner(n).is_none());
    for name in unknown.take(LEARN_MAX) {
        if let Some(o) = app.store.affinity(name).await {
            app.affinity.apply(name, Some(o));
        }
    }
}

/// After recording a resource: in Redis mode write it through now, so that
/// another replica the client calls next finds it (else written behind).
pub async fn written(app: &App) {
    if app.store.is_shared()
        && let Err(e) = app.store.flush().await
    {
        crate::debug!("store: writing a resource owner through failed: {e}");
    }
}

/// Whether `body` may name a file or a cache (searchers built once).
fn names_resource(body: &[u8]) -> bool {
    static FILES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"files/"));
    static CACHES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"cachedContents/"));
    FILES.find(body).is_some() || CACHES.find(body).is_some()
}

/// Run `call` on key `index` only (its retries stay on it), or over the pool.
pub async fn call_on(
    app: &App,
    pool: &KeyPool,
    call: &Call<'_>,
    index: Option<usize>,
) -> Result<Answer, Failure> {
    match index {
        None => app.upstream.call(pool, call).await,
        Some(i) => {
            let mut others: Vec<usize> = pool
                .live_indices()
                .into_iter()
                .filter(|j| *j != i)
                .collect();
            app.upstream
                .call_with(pool, call, &mut others, app.upstream.attempts())
                .await
        }
    }
}

/// Record `name` as made by `token` on pool key `key`, until `expires_ms`.
pub fn record(app: &App, name: &str, key: usize, token: String, expires_ms: Option<u64>) {
    let Some(key_id) = app.pool.id(key) else {
        return;
    };
    let now = crate::clock::unix_ms();
    let owner = Owner {
        key_id: key_id.to_string(),
        token,
        expires_ms: expires_ms.unwrap_or(now + FILE_TTL_MS).max(now + 60_000),
    };
    app.affinity.insert(name, owner.clone());
    app.store.record(crate::store::Change::Affinity {
        name: name.to_string(),
        owner: Some(owner),
    });
}
