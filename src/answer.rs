//! Helpers shared by every API's handlers for building an answer: the log
//! details a response carries to the server's log line ([`LogInfo`]), the
//! logged form of a path with keys masked ([`loggable`]), reading a whole
//! upstream answer within its limits ([`read_whole`]), and a failed upstream
//! call as the error to answer, recorded for `/status` ([`upstream_failed`]),
//! and an empty answer logged ([`empty_answer`]) and answered ([`empty_failed`]):
//! every route reads a whole answer through [`read_answer`], which retries
//! an empty one on another key.

use std::borrow::Cow;

use bytes::Bytes;
use http::Response;

use crate::app::App;
use crate::error::{GatewayError, upstream_message};
use crate::keys::{KeyLengths, mask};
use crate::request::percent_decode;
use crate::upstream::Failure;

/// Largest upstream answer read whole (non-streamed answers with images can be big).
pub const ANSWER_LIMIT: usize = 256 * 1024 * 1024;

/// What the request log line should say besides method, path and status:
/// the route table sets the route, handlers the model and key as they learn
/// them; the server reads it from the response's extensions.
#[derive(Clone, Debug, Default)]
pub struct LogInfo {
    /// Model the request was for.
    pub model: String,
    /// Masked key that served it.
    pub key: String,
    /// Route label for metrics.
    pub route: &'static str,
}

/// `text` (a request path, or a model name) as it may be logged: the id of
/// `/status/keys/{id}/reset` (unless an index), any `/`- or `:`-separated
/// part that is a key of the pool, the backup or the Vertex pool (also percent-encoded),
/// and any `AIza…` key inside a part are masked. Borrowed, after one pass
/// and no allocation, when nothing needs masking (every ordinary request).
pub fn loggable<'a>(app: &App, text: &'a str) -> Cow<'a, str> {
    let mut out = String::new();
    let mut changed = false;
    let mut copied = 0;
    let mut offset = 0;
    let (mut before, mut last) = ("", "");
    // One lock per pool for the whole text, not one per part and pool.
    let lengths = app
        .pool
        .key_lengths()
        .union(app.backup.key_lengths())
        .union(app.vertex.key_lengths());
    // The parts' ends, found by one vectorized search (`str::split` with a
    // set of chars decodes the text char by char).
    let ends = memchr::memchr2_iter(b'/', b':', text.as_bytes()).chain([text.len()]);
    for end in ends {
        let part = &text[offset..end];
        let reset_id = before == "status" && last == "keys";
        if let Some(masked) = masked_part(app, lengths, part, reset_id) {
            out.push_str(&text[copied..offset]);
            out.push_str(&masked);
            copied = end;
            changed = true;
        }
        offset = end + 1;
        (before, last) = (last, part);
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The masked form of one part of a logged path, if it must be masked (see [`loggable`]).
fn masked_part(app: &App, lengths: KeyLengths, part: &str, reset_id: bool) -> Option<String> {
    if part.is_empty() || (reset_id && part.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let decoded = if part.contains('%') {
        Cow::Owned(percent_decode(part))
    } else {
        Cow::Borrowed(part)
    };
    if lengths.may_be_key(&decoded) {
        for pool in [&app.pool, &app.backup, &app.vertex] {
            if let Some(i) = pool.position(&decoded) {
                return Some(pool.masked(i).to_string());
            }
        }
    }
    if reset_id {
        // A masked form or anything else: shown masked too.
        return Some(match app.pool.find(&decoded) {
            Some(i) => app.pool.masked(i).to_string(),
            None => mask(&decoded),
        });
    }
    // A Google key is `AIza` + 35 characters: nothing shorter holds one.
    if decoded.len() >= 39 && decoded.contains("AIza") {
        let scrubbed = crate::openai::error::scrub(&decoded);
        if scrubbed != decoded {
            return Some(scrubbed);
        }
    }
    None
}

/// A whole (non-streamed) upstream answer read: its bytes, the pool key
/// that served it and the attempt's meter.
pub struct Whole {
    /// The answer's body.
    pub bytes: Bytes,
    /// The pool key that served it.
    pub key: usize,
    /// Its usage, recorded when it is dropped.
    pub meter: crate::store::meter::Meter,
}

/// Whether `up` asks for a whole `generateContent` answer, whose empty form
/// ([`crate::longcall::is_empty_answer`]) is a failure (not `:predict`,
/// `:countTokens`…).
fn wants_content(up: &crate::upstream::Call<'_>) -> bool {
    up.path
        .split('?')
        .next()
        .is_some_and(|p| p.ends_with(":generateContent"))
}

/// Read the answer of a call over the pool whole ([`read_metered`]), for
/// every route: a `generateContent` answer that is empty is logged as
/// `empty_answer` ([`empty_answer`]) and retried on another key within the
/// MAX_RETRIES budget; with none left it is a 502 ([`empty_failed`]),
/// never an empty 200. `log.key` names the key last tried.
pub async fn read_answer(
    app: &App,
    up: &crate::upstream::Call<'_>,
    mut answer: crate::upstream::Answer,
    pinned: bool,
    log: &mut LogInfo,
) -> Result<Whole, GatewayError> {
    let pool = app.pool_for(&up.path);
    let mut tried = tried_first(pool, answer.key, pinned);
    let mut used = answer.attempts;
    loop {
        let bytes = read_metered(app, up, answer.response, answer.key, &mut answer.meter).await?;
        if !wants_content(up) || !crate::longcall::is_empty_answer(&bytes) {
            return Ok(Whole {
                bytes,
                key: answer.key,
                meter: answer.meter,
            });
        }
        log.key = pool.masked(answer.key).to_string();
        empty_answer(app, up, answer.key, &mut answer.meter);
        let budget = app.upstream.attempts().saturating_sub(used);
        if budget == 0 {
            return Err(empty_failed());
        }
        match app.upstream.call_with(pool, up, &mut tried, budget).await {
            Ok(a) => {
                app.stats.retried(a.attempts);
                used += a.attempts;
                log.key = pool.masked(a.key).to_string();
                answer = a;
            }
            Err(Failure::Unavailable(_)) => return Err(empty_failed()),
            Err(f) => return Err(upstream_failed(app, f, up.model, false)),
        }
    }
}

/// The keys a retry after `key`'s failed answer may not use: `key`, or every
/// key when the call is `pinned` to it (another key would get a 403 for a
/// file it does not own, and be blamed for it).
pub fn tried_first(pool: &crate::keys::KeyPool, key: usize, pinned: bool) -> Vec<usize> {
    if pinned {
        let mut all = pool.live_indices();
        all.push(key);
        all
    } else {
        vec![key]
    }
}

/// A stream that failed before its first event, tried again on another key
/// of `pool` with what is left of the call's attempts after `used`: the new
/// answer (counted as retried) or the retry's failure; `None` when no
/// attempt may be made — none left, `allowed` false (a call pinned to its
/// key), or a timed-out generation (`silent`) past `TIMEOUT_RETRIES` or the
/// request's `REQUEST_TIMEOUT`.
pub async fn retry_stream(
    app: &App,
    pool: &crate::keys::KeyPool,
    up: &crate::upstream::Call<'_>,
    tried: &mut Vec<usize>,
    used: u32,
    silent: bool,
    allowed: bool,
) -> Option<Result<crate::upstream::Answer, Failure>> {
    let mut budget = app.upstream.attempts().saturating_sub(used);
    if silent && !crate::longcall::timed_out() {
        budget = 0;
    }
    if budget == 0 || !allowed {
        return None;
    }
    let retried = Box::pin(app.upstream.call_with(pool, up, tried, budget)).await;
    if let Ok(a) = &retried {
        app.stats.retried(a.attempts);
    }
    Some(retried)
}

/// The body of a successful upstream answer served on pool key `key`, read
/// whole ([`read_whole`]) and fed to its `meter`; a body that cannot be
/// read is recorded against the attempt (`Upstream::answer_failed`) and
/// becomes the error.
pub async fn read_metered(
    app: &App,
    up: &crate::upstream::Call<'_>,
    res: Response<crate::lanes::UpBody>,
    key: usize,
    meter: &mut crate::store::meter::Meter,
) -> Result<Bytes, GatewayError> {
    match read_whole(app, res).await {
        Ok((_, bytes)) => {
            meter.whole(&bytes);
            Ok(bytes)
        }
        Err(e) => {
            let why = crate::keys::Outcome::Transient(e.to_string());
            let (status, message) = (e.status().as_u16(), e.to_string());
            let pool = app.pool_for(&up.path);
            app.upstream
                .answer_failed(meter, pool, up, key, status, &why, &message);
            Err(e)
        }
    }
}

/// Read a whole (non-streamed) upstream answer, bounded by `ANSWER_LIMIT` and
/// by `TIME_OUT` and the request's `REQUEST_TIMEOUT`: a body that stalls or never ends must not hold the request
/// (and its upstream connection) forever.
pub async fn read_whole(
    app: &App,
    res: Response<crate::lanes::UpBody>,
) -> Result<(http::response::Parts, Bytes), GatewayError> {
    let read = crate::upstream::read_answer(res, ANSWER_LIMIT);
    let wait = crate::longcall::clamp(app.upstream.timeout());
    match tokio::time::timeout(wait, read).await {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(m)) => Err(GatewayError::BadAnswer(m.into())),
        Err(_) => Err(GatewayError::AnswerTimeout),
    }
}

/// A failed upstream call as the error to answer (see
/// [`GatewayError::from_failure`]), recorded in `/status`'s recent errors.
pub fn upstream_failed(app: &App, f: Failure, model: &str, own_keys: bool) -> GatewayError {
    let hint = match &f {
        Failure::Upstream {
            status, body, key, ..
        } => {
            let hint = app.cfg().not_found_hint(status.as_u16());
            let message = upstream_message(status.as_u16(), body, hint);
            app.stats.error(model, key, status.as_u16(), &message);
            hint
        }
        Failure::Network(m) => {
            app.stats.error(model, "", 502, m);
            None
        }
        Failure::Timeout => {
            app.stats.error(model, "", 504, "timeout");
            None
        }
        Failure::ProxiesDown(m) => {
            app.stats.error(model, "", 503, m);
            None
        }
        Failure::Cooling(..) | Failure::Unavailable(_) | Failure::Quota(..) => None,
    };
    GatewayError::from_failure(f, own_keys, hint)
}

/// Log an empty answer on key `index` (error log class `empty_answer`,
/// `/status`'s recent errors). The key is not charged: it did answer.
pub fn empty_answer(
    app: &App,
    up: &crate::upstream::Call<'_>,
    index: usize,
    meter: &mut crate::store::meter::Meter,
) {
    let message = "empty_answer: Gemini answered 200 with no content";
    let why = crate::keys::Outcome::Transient(message.into());
    let pool = app.pool_for(&up.path);
    app.upstream
        .answer_failed(meter, pool, up, index, 502, &why, message);
    app.stats.error(
        up.model,
        pool.masked(index),
        502,
        crate::longcall::EMPTY_ANSWER,
    );
}

/// The answer when every key tried answered empty.
pub fn empty_failed() -> GatewayError {
    GatewayError::StreamFailed {
        status: http::StatusCode::BAD_GATEWAY,
        code: crate::longcall::EMPTY_ANSWER,
        message: "Gemini answered with no content (an empty answer) on every key tried.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn keys_in_logged_paths_are_masked() {
        // Built from pieces so that no key-shaped string sits in the source.
        let google = concat!("AIza", "SyA1234567890abcdefghijklmnopqrs_-9");
        let other = concat!("AIza", "SyB1234567890abcdefghijklmnopqrs_-8");
        let vars: std::collections::HashMap<String, String> = [
            ("API_KEYS", format!("[\"{google}\",\"plain-pool-key-42\"]")),
            ("BACKUP_API_KEYS", "backup-key-0000077".to_string()),
            ("VERTEX_API_KEYS", "vertex-key-0000066".to_string()),
            ("ALLOWED_TOKENS", "sk-x".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let app = App::new(Config::from_map(&vars).expect("config"));
        let m = |p: &str| loggable(&app, p).into_owned();
        assert!(matches!(
            loggable(&app, "/v1beta/models/gemini-2.5-flash:generateContent"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            loggable(&app, "gemini-2.5-flash"),
            Cow::Borrowed(_)
        ));
        assert_eq!(m("/status/keys/3/reset"), "/status/keys/3/reset");
        assert_eq!(
            m(&format!("/status/keys/{google}/reset")),
            "/status/keys/AIza…s_-9/reset"
        );
        assert_eq!(
            m("/hf/status/keys/plain-pool-key-42/reset"),
            "/hf/status/keys/plai…y-42/reset"
        );
        assert_eq!(
            m("/status/keys/plain%2Dpool-key-42/reset"),
            "/status/keys/plai…y-42/reset"
        );
        assert_eq!(
            m("/status/keys/not-a-key-at-all/reset"),
            "/status/keys/not-…-all/reset"
        );
        assert_eq!(
            m("/v1beta/files/backup-key-0000077"),
            "/v1beta/files/back…0077"
        );
        assert_eq!(
            m("/vertex-express/v1beta/models/vertex-key-0000066:countTokens"),
            "/vertex-express/v1beta/models/vert…0066:countTokens"
        );
        assert_eq!(
            m(&format!("/v1beta/models/{other}:generateContent")),
            "/v1beta/models/AIza…s_-8:generateContent"
        );
        assert_eq!(m(&format!("x{other}y/z")), "xAIza…s_-8y/z");
        assert_eq!(
            m("plain-pool-key-42"),
            "plai…y-42",
            "a key given as the model"
        );
        assert_eq!(m("/plain-pool-key-4"), "/plain-pool-key-4");
    }
}
