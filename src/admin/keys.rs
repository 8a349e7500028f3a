//! The key admin API (admin token only, see `crate::router`): list the
//! pool's keys (`GET /admin/keys`), add keys at runtime, optionally verified
//! first (`POST /admin/keys`), remove them (`DELETE /admin/keys/{id}`,
//! `POST /admin/keys/delete`) and export them in full
//! (`GET /admin/keys/export`, the one place full keys are shown).
//!
//! Every change goes through the pool, which records it in the store, so it
//! lasts across restarts (file, Redis) and reaches the other replicas.
//! Errors are OpenAI-format 400/404; every list is bounded
//! ([`MAX_KEYS_PER_CALL`]) and scanning pasted text is one linear pass.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::keys::{Added, KeyInfo, mask};
use crate::openai::TranslateError;
use crate::store::KeySource;

/// Most keys one call adds or deletes (and most keys taken from pasted text).
pub const MAX_KEYS_PER_CALL: usize = 10_000;
/// Longest entry of `keys` taken as a key.
const MAX_KEY_LEN: usize = 256;
/// A Gemini key: `AIza` and this many characters of `[A-Za-z0-9_-]`.
const GEMINI_KEY_TAIL: usize = 35;

fn invalid(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Invalid(TranslateError::new(param, message))
}

/// `GET /admin/keys` and `POST /admin/keys`.
pub async fn keys(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    if req.method() == Method::POST {
        return add(app, req).await;
    }
    list(&app, req.uri().query().unwrap_or(""))
}

/// Most keys on one page of `GET /admin/keys`.
pub const MAX_PAGE: usize = 10_000;

/// `GET /admin/keys`: the keys in service, masked, with their state. Paged
/// with `?limit=N` (1..=10000) and `&cursor=C` (the `next_cursor` of the
/// page before; absent: from the start): a page costs its own keys, not the
/// pool's. Without `limit`, every key (`next_cursor` is then null). The
/// Vertex AI Express pool (`VERTEX_API_KEYS`, read-only here) is in its own
/// `vertex_express` section when configured.
pub fn list(app: &App, query: &str) -> Result<Response<Body>, GatewayError> {
    let num = |name: &str, max: usize| -> Result<Option<usize>, GatewayError> {
        match crate::request::query_param(query, name) {
            None => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(invalid(
                    name,
                    format!("`{name}` must be a whole number from 0 to {max}."),
                )),
            },
        }
    };
    let limit = match num("limit", MAX_PAGE)? {
        Some(0) => return Err(invalid("limit", "`limit` must be at least 1.")),
        Some(n) => n,
        None => usize::MAX,
    };
    let cursor = num("cursor", usize::MAX)?.unwrap_or(0);
    let (page, next) = app.pool.list_page(cursor, limit);
    let keys: Vec<Value> = page.into_iter().map(entry).collect();
    let mut v = json!({"total": app.pool.len(), "keys": keys, "next_cursor": next});
    if !app.vertex.is_empty() {
        let vertex: Vec<Value> = app.vertex.list().into_iter().map(entry).collect();
        v["vertex_express"] = json!({"total": vertex.len(), "keys": vertex});
    }
    Ok(body::json(StatusCode::OK, &v))
}

/// One key of `GET /admin/keys`. `usage_today` holds the pool's own counts
/// for the UTC day (upstream attempts on the key, 2xx answers, other
/// answers, 429s).
fn entry(k: KeyInfo) -> Value {
    let cooling: Map<String, Value> = k
        .cooling
        .into_iter()
        .map(|(model, secs)| (model, secs.into()))
        .collect();
    json!({
        "id": k.id,
        "masked": k.masked,
        "source": source_name(k.source),
        "state": k.state,
        "reason": k.reason,
        "cooling": cooling,
        "usage_today": {
            "requests": k.today.requests,
            "successes": k.today.successes,
            "failures": k.today.failures,
            "rate_limited": k.today.rate_limited,
        },
        "last_used": k.last_used,
        "last_error": k.last_error,
        "quota": crate::keys::quota_json(&k.quota),
        "tier": k.tier,
        "free_tier": k.free_tier,
    })
}

fn source_name(s: KeySource) -> &'static str {
    match s {
        KeySource::Env => "env",
        KeySource::Added => "added",
    }
}

/// Read an admin request's JSON object body (within `MAX_BODY_BYTES`).
async fn json_object(
    app: &App,
    req: Request<Incoming>,
) -> Result<Map<String, Value>, GatewayError> {
    let bytes = crate::request::read_nonempty_body(app, req).await?;
    match crate::request::parse_json(&bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(invalid("body", "Expected a JSON object.")),
    }
}

/// What one `POST /admin/keys` asks for: candidate keys (in order, deduplicated
/// later) and how many entries were not keys.
#[derive(Debug, Default, PartialEq)]
pub struct Candidates {
    /// The keys, as given (trimmed).
    pub keys: Vec<String>,
    /// Entries that are not a key (empty, whitespace inside, not a string, too long).
    pub rejected: usize,
}

/// Every Gemini key (`AIza` + 35 of `[A-Za-z0-9_-]`) in `text`, in order,
/// at most `max + 1` (so the caller can tell "too many"). One linear pass.
pub fn extract(text: &str, max: usize) -> Vec<String> {
    let b = text.as_bytes();
    let is_key_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = memchr::memmem::find(&b[i..], b"AIza") {
        let start = i + at;
        let end = start + 4 + GEMINI_KEY_TAIL;
        if end <= b.len() && b[start + 4..end].iter().all(|c| is_key_byte(*c)) {
            out.push(text[start..end].to_string());
            if out.len() > max {
                break;
            }
            i = end;
        } else {
            i = start + 1;
        }
    }
    out
}

/// The candidates in a `POST /admin/keys` body (`keys` and/or `text`).
pub fn candidates(body: &Map<String, Value>) -> Result<Candidates, GatewayError> {
    let mut c = Candidates::default();
    let keys = body.get("keys");
    let text = body.get("text");
    if keys.is_none() && text.is_none() {
        return Err(invalid(
            "keys",
            "Send {\"keys\":[\"…\"]} or {\"text\":\"…\"} (any text: every Gemini key in it is taken).",
        ));
    }
    if let Some(v) = keys {
        let Value::Array(list) = v else {
            return Err(invalid("keys", "`keys` must be an array of strings."));
        };
        if list.len() > MAX_KEYS_PER_CALL {
            return Err(too_many("keys", list.len()));
        }
        for item in list {
            match item.as_str().map(str::trim) {
                Some(k)
                    if !k.is_empty()
                        && k.len() <= MAX_KEY_LEN
                        && k.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    c.keys.push(k.to_string())
                }
                _ => c.rejected += 1,
            }
        }
    }
    if let Some(v) = text {
        let Some(t) = v.as_str() else {
            return Err(invalid("text", "`text` must be a string."));
        };
        c.keys.extend(extract(t, MAX_KEYS_PER_CALL));
    }
    if c.keys.len() > MAX_KEYS_PER_CALL {
        return Err(too_many("keys", c.keys.len()));
    }
    Ok(c)
}

fn too_many(param: &str, sent: usize) -> GatewayError {
    let sent = if sent > MAX_KEYS_PER_CALL {
        format!("more than {MAX_KEYS_PER_CALL}")
    } else {
        sent.to_string()
    };
    invalid(
        param,
        format!(
            "Too many keys: one call takes at most {MAX_KEYS_PER_CALL}; {sent} were sent. Split the list."
        ),
    )
}

/// `POST /admin/keys`: add keys (`{"keys":[…]}` or `{"text":"…"}`), with
/// `"verify":true` each new key is checked first (a free `models.get`) and
/// only the good ones are added. Answers `{"added","duplicates","rejected","ids"}`.
async fn add(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let body = json_object(&app, req).await?;
    let verify = match body.get("verify") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("verify", "`verify` must be true or false.")),
    };
    let Candidates { keys, mut rejected } = candidates(&body)?;
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0;
    let mut fresh = Vec::new();
    for k in keys {
        let known = app.pool.position(&k).is_some_and(|i| app.pool.is_live(i));
        if known || !seen.insert(k.clone()) {
            duplicates += 1;
        } else {
            fresh.push(k);
        }
    }
    if verify {
        let max = app.cfg().verify_max_keys;
        if fresh.len() > max {
            return Err(invalid(
                "verify",
                format!(
                    "Too many new keys to verify in one call: at most {max} (VERIFY_MAX_KEYS); {} were sent.",
                    fresh.len()
                ),
            ));
        }
        let (good, bad) = verify_all(&app, fresh).await;
        rejected += bad;
        fresh = good;
    }
    let (mut added, mut ids) = (0, Vec::new());
    for k in &fresh {
        match app.pool.add(k, KeySource::Added) {
            a if a.is_added() => {
                added += 1;
                ids.push(crate::store::key_id(k));
            }
            Added::Full => {
                return Err(invalid(
                    "keys",
                    format!(
                        "The pool is full ({} keys at most); {added} added before it filled.",
                        crate::keys::MAX_KEYS
                    ),
                ));
            }
            _ => duplicates += 1,
        }
    }
    crate::info!("admin: {added} key(s) added, {duplicates} duplicate(s), {rejected} rejected");
    Ok(body::json(
        StatusCode::OK,
        &json!({"added": added, "duplicates": duplicates, "rejected": rejected, "ids": ids}),
    ))
}

/// Verify `keys` ([`crate::scheduler::VERIFY_PARALLEL`] at a time): (good, number bad).
async fn verify_all(app: &Arc<App>, keys: Vec<String>) -> (Vec<String>, usize) {
    let permits = Arc::new(tokio::sync::Semaphore::new(
        crate::scheduler::VERIFY_PARALLEL,
    ));
    let mut tasks = Vec::with_capacity(keys.len());
    for key in keys {
        let (app, permits) = (app.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r = crate::scheduler::verify_key(&app, &key).await;
            if let Err(why) = &r {
                crate::info!("admin: key {} not added: {why}", mask(&key));
            }
            (key, r.is_ok())
        }));
    }
    let (mut good, mut bad) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok((key, true)) => good.push(key),
            _ => bad += 1,
        }
    }
    (good, bad)
}

/// `DELETE /admin/keys/{id}`: remove one key (by its id) from service.
pub fn delete_one(app: &App, id: &str) -> Result<Response<Body>, GatewayError> {
    let i = app
        .pool
        .position_of_id(id)
        .filter(|i| app.pool.is_live(*i))
        .ok_or(GatewayError::NotFound("No key with this id in the pool."))?;
    app.pool.remove(i);
    Ok(body::json(
        StatusCode::OK,
        &json!({"deleted": 1, "ids": [id]}),
    ))
}

/// `PATCH /admin/keys/{id}` with `{"tier": "free" | "paid" | null}`: the
/// key's tier (free: the built-in free-tier limits apply; paid: never
/// capped at them; null: as learned from 429s / `KEY_TIER`), kept in the
/// store like the key's other state. Answers the key's entry.
pub async fn patch_one(
    app: &App,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, GatewayError> {
    let i = app
        .pool
        .position_of_id(id)
        .filter(|i| app.pool.is_live(*i))
        .ok_or(GatewayError::NotFound("No key with this id in the pool."))?;
    let body = json_object(app, req).await?;
    if let Some(k) = body.keys().find(|k| *k != "tier") {
        return Err(invalid(
            k,
            format!("Unknown field `{k}`: only `tier` can be changed."),
        ));
    }
    let tier = match body.get("tier") {
        Some(Value::String(t)) if t == "free" => Some(true),
        Some(Value::String(t)) if t == "paid" => Some(false),
        Some(Value::Null) => None,
        _ => {
            return Err(invalid(
                "tier",
                "`tier` must be \"free\", \"paid\" or null (back to KEY_TIER).",
            ));
        }
    };
    app.pool.set_tier(i, tier);
    let info = app
        .pool
        .list_page(i, 1)
        .0
        .into_iter()
        .next()
        .ok_or(GatewayError::NotFound("No key with this id in the pool."))?;
    Ok(body::json(StatusCode::OK, &entry(info)))
}

/// `POST /admin/keys/delete`: remove keys by id (`{"ids":[…]}`) or every
/// disabled key (`{"state":"disabled"}`). Answers `{"deleted","not_found"}`.
pub async fn delete_many(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let body = json_object(&app, req).await?;
    let indices: Vec<Option<usize>> = match (body.get("ids"), body.get("state")) {
        (Some(Value::Array(ids)), None) => {
            if ids.len() > MAX_KEYS_PER_CALL {
                return Err(too_many("ids", ids.len()));
            }
            ids.iter()
                .map(|v| {
                    v.as_str()
                        .and_then(|id| app.pool.position_of_id(id))
                        .filter(|i| app.pool.is_live(*i))
                })
                .collect()
        }
        (None, Some(Value::String(s))) if s == "disabled" => app
            .pool
            .list()
            .into_iter()
            .filter(|k| k.state == "disabled")
            .map(|k| app.pool.position_of_id(&k.id))
            .collect(),
        (None, Some(_)) => {
            return Err(invalid(
                "state",
                "`state` must be \"disabled\" (the only state whose keys are deleted in bulk).",
            ));
        }
        _ => {
            return Err(invalid(
                "ids",
                "Send {\"ids\":[\"…\"]} (key ids from GET /admin/keys) or {\"state\":\"disabled\"}.",
            ));
        }
    };
    let (mut deleted, mut not_found) = (0, 0);
    for i in indices {
        match i {
            Some(i) if app.pool.remove(i) => deleted += 1,
            _ => not_found += 1,
        }
    }
    crate::info!("admin: {deleted} key(s) deleted, {not_found} not found");
    Ok(body::json(
        StatusCode::OK,
        &json!({"deleted": deleted, "not_found": not_found}),
    ))
}

/// `GET /admin/keys/export?state=active|disabled|all`: the full keys, one
/// per line, `text/plain`, `Cache-Control: no-store` (`active`: every key in
/// service that is not disabled, cooling and resting ones included). The
/// export is logged, keys masked.
pub fn export(app: &App, query: &str) -> Result<Response<Body>, GatewayError> {
    let state = crate::request::query_param(query, "state").unwrap_or_else(|| "all".into());
    let keys = match state.as_str() {
        "all" => app.pool.export(|_| true),
        "active" => app.pool.export(|disabled| !disabled),
        "disabled" => app.pool.export(|disabled| disabled),
        _ => {
            return Err(invalid("state", "`state` must be active, disabled or all."));
        }
    };
    let shown: Vec<String> = keys.iter().take(10).map(|k| mask(k)).collect();
    crate::warn!(
        "admin: {} key(s) exported in full (state={state}): {}{}",
        keys.len(),
        shown.join(", "),
        if keys.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    );
    let mut text = keys.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let mut res = Response::new(body::full(text));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> String {
        format!("AIza{}", c.to_string().repeat(GEMINI_KEY_TAIL))
    }

    #[test]
    fn extracts_every_gemini_key_from_text() {
        let (a, b) = (key('a'), key('B'));
        let text = format!(
            "first: {a}\nsecond=\"{b}\", again {a}; AIzaTooShort AIza{}",
            "x".repeat(34)
        );
        assert_eq!(extract(&text, 10), [a.clone(), b, a]);
        assert_eq!(extract("", 10), Vec::<String>::new());
        // Bounded: at most max + 1 come back.
        let many = key('z').repeat(50);
        assert_eq!(extract(&many, 5).len(), 6);
    }

    #[test]
    fn candidates_count_rejected_entries() {
        let body =
            json!({"keys": ["  k-one-0001  ", "", "with space", 7, "x".repeat(300), "k-two-0002"]});
        let c = candidates(body.as_object().unwrap()).unwrap();
        assert_eq!(c.keys, ["k-one-0001", "k-two-0002"]);
        assert_eq!(c.rejected, 4);
        assert!(candidates(json!({}).as_object().unwrap()).is_err());
        assert!(candidates(json!({"keys": "k"}).as_object().unwrap()).is_err());
        let big: Vec<String> = (0..MAX_KEYS_PER_CALL + 1)
            .map(|i| format!("k{i}"))
            .collect();
        let e = candidates(json!({"keys": big}).as_object().unwrap()).unwrap_err();
        assert!(e.to_string().contains("at most 10000"), "{e}");
    }
}
