//! Merged lists of files, cached contents and batches, page by page: the
//! keys holding the caller's resources (every key for the admin, or without
//! `FILES_USER_ISOLATION`) are read one after another, in the order of their
//! stable ids, each through its own upstream pages, and the client gets at
//! most `pageSize` items per page with a `nextPageToken` the gateway resumes
//! from.
//!
//! The token is the gateway's own, opaque to the client and stateless: which
//! key of that order (its position, never the key or its id), the upstream
//! page size, how many items of that upstream page were already handed out,
//! and the upstream's own page token, base64url-encoded and at most
//! [`TOKEN_MAX`] bytes. A token that does not decode is a 400.

use base64::Engine;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::files::{Caller, call_on, read_answer, refusal};
use crate::answer::{LogInfo, upstream_failed};
use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::request::query_param;
use crate::upstream::{Auth, Call};

/// Most keys one merged list reads.
const LIST_KEYS_MAX: usize = 32;
/// Most upstream pages read for one client page.
const CALLS_MAX: usize = 16;
/// The page size when the client names none.
pub const DEFAULT_PAGE: u32 = 100;
/// The largest page size honoured.
pub const PAGE_MAX: u32 = 1000;
/// Longest page token accepted.
pub const TOKEN_MAX: usize = 4096;
/// What every token of ours starts with.
const PREFIX: &str = "gb1.";

/// Where a merged list goes on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The position of the key in the order of holders.
    pub key: usize,
    /// The upstream page size asked (so `skip` stays meaningful).
    pub size: u32,
    /// Items of that upstream page already handed out.
    pub skip: usize,
    /// The upstream's page token for that key (empty: its first page).
    pub token: String,
}

impl Cursor {
    /// The token a client gets.
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}|{}|{}", self.key, self.size, self.skip, self.token);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        format!("{PREFIX}{b64}")
    }

    /// A client's token back; `None` when it is not one of ours.
    pub fn decode(token: &str) -> Option<Cursor> {
        if token.len() > TOKEN_MAX {
            return None;
        }
        let b64 = token.strip_prefix(PREFIX)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut it = raw.splitn(4, '|');
        let key = it.next()?.parse().ok()?;
        let size: u32 = it.next()?.parse().ok()?;
        let skip: usize = it.next()?.parse().ok()?;
        let token = it.next()?.to_string();
        let ok = key < LIST_KEYS_MAX && (1..=PAGE_MAX).contains(&size) && skip <= size as usize;
        ok.then_some(Cursor {
            key,
            size,
            skip,
            token,
        })
    }
}

/// The ids of the keys a list reads, in order (their ids sorted).
fn holders(app: &App, caller: &Caller, kind: &str) -> Vec<String> {
    let mut ids = match caller.filter() {
        Some(tag) => app.affinity.holders(kind, Some(tag)),
        None => app
            .pool
            .live_indices()
            .into_iter()
            .filter_map(|i| app.pool.id(i).map(str::to_string))
            .collect(),
    };
    ids.sort();
    ids.dedup();
    ids.truncate(LIST_KEYS_MAX);
    ids
}

/// A merged list page (see the module doc). `path` is the upstream path
/// and query the client asked (its `pageSize` and `pageToken` replaced).
pub async fn list(
    app: &App,
    caller: &Caller,
    path: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    member: &'static str,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let kind = match member {
        "files" => "files/",
        "cachedContents" => "cachedContents/",
        _ => "batches/",
    };
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let size = query_param(query, "pageSize")
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_PAGE, |n| n.min(PAGE_MAX));
    let mut cur = match query_param(query, "pageToken").filter(|t| !t.is_empty()) {
        Some(t) => Cursor::decode(&t).ok_or_else(|| {
            refusal(
                StatusCode::BAD_REQUEST,
                "Invalid pageToken: pass the nextPageToken of the previous page as it is.",
            )
        })?,
        None => Cursor {
            size,
            ..Cursor::default()
        },
    };
    let rest: Vec<&str> = query
        .split('&')
        .filter(|x| !x.is_empty() && !x.starts_with("pageToken=") && !x.starts_with("pageSize="))
        .collect();
    let ids = holders(app, caller, kind);
    let pool = &app.pool;
    let mut items: Vec<Value> = Vec::new();
    let mut calls = 0;
    while cur.key < ids.len() && items.len() < size as usize && calls < CALLS_MAX {
        let usable = pool
            .position_of_id(&ids[cur.key])
            .filter(|i| pool.is_live(*i) && !pool.is_disabled(*i));
        let Some(i) = usable else {
            cur = Cursor {
                key: cur.key + 1,
                size,
                ..Cursor::default()
            };
            continue;
        };
        calls += 1;
        let mut q = rest.clone();
        let size_q = format!("pageSize={}", cur.size);
        q.push(&size_q);
        let token_q = format!("pageToken={}", crate::models_api::encode_query(&cur.token));
        if !cur.token.is_empty() {
            q.push(&token_q);
        }
        let up = Call {
            method: Method::GET,
            path: format!("{base}?{}", q.join("&")),
            body: Bytes::new(),
            model: "",
            auth: Auth::GoogHeader,
            headers: headers.to_vec(),
            route: log.route,
        };
        let answer = call_on(app, pool, &up, Some(i))
            .await
            .map_err(|f| upstream_failed(app, f, "", false))?;
        log.key = pool.masked(i).to_string();
        let (_, bytes) = read_answer(app, answer).await?;
        let v = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
        let page = v.get(member).and_then(Value::as_array);
        let page = page.map(Vec::as_slice).unwrap_or_default();
        let mut consumed = cur.skip;
        for item in page.iter().skip(cur.skip) {
            if items.len() == size as usize {
                break;
            }
            consumed += 1;
            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
            let visible = caller.filter().is_none()
                || app.affinity.owner(name).is_some_and(|o| caller.sees(&o));
            if visible {
                items.push(item.clone());
            }
        }
        let next = v.get("nextPageToken").and_then(Value::as_str);
        cur = if consumed < page.len() {
            Cursor {
                skip: consumed,
                ..cur
            }
        } else {
            match next.filter(|t| !t.is_empty() && t.len() <= TOKEN_MAX / 2) {
                Some(t) => Cursor {
                    key: cur.key,
                    size: cur.size,
                    skip: 0,
                    token: t.to_string(),
                },
                None => Cursor {
                    key: cur.key + 1,
                    size,
                    ..Cursor::default()
                },
            }
        };
    }
    let mut page = serde_json::Map::new();
    if !items.is_empty() {
        page.insert(member.into(), Value::Array(items));
    }
    if cur.key < ids.len() {
        page.insert("nextPageToken".into(), json!(cur.encode()));
    }
    Ok(body::json(StatusCode::OK, &Value::Object(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_strangers() {
        let c = Cursor {
            key: 2,
            size: 10,
            skip: 3,
            token: "up|stream=tok/+".into(),
        };
        let t = c.encode();
        assert!(t.starts_with(PREFIX));
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{t}"
        );
        assert_eq!(Cursor::decode(&t), Some(c));
        assert_eq!(Cursor::decode("abc"), None);
        assert_eq!(Cursor::decode("gb1.!!"), None);
        let too_far = Cursor {
            key: LIST_KEYS_MAX,
            size: 1,
            ..Cursor::default()
        };
        assert_eq!(Cursor::decode(&too_far.encode()), None);
        let zero = Cursor::default();
        assert_eq!(Cursor::decode(&zero.encode()), None, "size 0");
        assert_eq!(
            Cursor::decode(&format!("{PREFIX}{}", "A".repeat(TOKEN_MAX))),
            None
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            crate::models_api::encode_query("a+b/c=="),
            "a%2Bb%2Fc%3D%3D"
        );
        assert_eq!(crate::models_api::encode_query("ok-_.~9"), "ok-_.~9");
    }
}
