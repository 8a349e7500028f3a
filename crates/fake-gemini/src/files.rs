//! The Files API and cached contents, owned by the creating key as at
//! Google: the upload protocol (`/upload/{v}/files`: resumable `start` →
//! `X-Goog-Upload-URL`, then `upload` / `upload, finalize` chunks that need
//! no key; or one multipart call), `files` get/list/delete, `cachedContents`
//! create/get/list/patch/delete, and the check of a generate body's
//! `fileData.fileUri` and `cachedContent`: anything of another key is a 403
//! `PERMISSION_DENIED`, as Google answers. Batches likewise
//! (`models/{m}:batchGenerateContent` creates one, its input file must be the
//! key's; `batches` list, `batches/{id}` get/delete, `:cancel`). File bytes
//! are counted, not kept.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method};
use serde_json::{Value, json};

use crate::FakeState;
use crate::body::{Ctx, FakeBody, error_response, plain_json};
use crate::errors::{GoogleError, err_no_key, err_route_not_found, google_error};

/// Most files, caches and open uploads kept (the fake is long-lived in benches).
const MAX: usize = 10_000;

/// One uploaded file.
#[derive(Clone)]
pub(crate) struct FileRec {
    owner: String,
    display: String,
    mime: String,
    size: u64,
    created: u64,
}

/// One cached content.
#[derive(Clone)]
pub(crate) struct CacheRec {
    owner: String,
    model: String,
    display: String,
    created: u64,
    expire: u64,
}

/// One batch job.
#[derive(Clone)]
pub(crate) struct BatchRec {
    owner: String,
    model: String,
    display: String,
    state: &'static str,
    created: u64,
}

/// An upload between `start` and `finalize`.
pub(crate) struct Pending {
    owner: String,
    display: String,
    mime: String,
    received: u64,
}

/// The Files API's state.
#[derive(Default)]
pub(crate) struct Files {
    files: HashMap<String, FileRec>,
    caches: HashMap<String, CacheRec>,
    batches: HashMap<String, BatchRec>,
    uploads: HashMap<String, Pending>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC of unix seconds.
fn ts(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn file_json(host: &str, version: &str, id: &str, f: &FileRec) -> Value {
    let _ = host;
    json!({
        "name": format!("files/{id}"),
        "displayName": f.display,
        "mimeType": f.mime,
        "sizeBytes": f.size.to_string(),
        "createTime": ts(f.created),
        "updateTime": ts(f.created),
        "expirationTime": ts(f.created + 48 * 3600),
        "sha256Hash": "ZmFrZQ==",
        "uri": format!("https://generativelanguage.googleapis.com/{version}/files/{id}"),
        "state": "ACTIVE",
        "source": "UPLOADED"
    })
}

fn cache_json(id: &str, c: &CacheRec) -> Value {
    json!({
        "name": format!("cachedContents/{id}"),
        "displayName": c.display,
        "model": c.model,
        "createTime": ts(c.created),
        "updateTime": ts(c.created),
        "expireTime": ts(c.expire),
        "usageMetadata": {"totalTokenCount": 1024}
    })
}

fn denied_file(id: &str) -> GoogleError {
    google_error(
        403,
        "PERMISSION_DENIED",
        format!("You do not have permission to access the File {id} or it may not exist."),
        vec![],
    )
}

fn denied_cache() -> GoogleError {
    google_error(
        403,
        "PERMISSION_DENIED",
        "CachedContent not found (or permission denied)",
        vec![],
    )
}

/// A resource that never existed (or was deleted): 404. (Google answers a
/// 403 for these too; the fake keeps the 403 for another key's resources.)
fn missing(kind: &str, id: &str) -> GoogleError {
    google_error(404, "NOT_FOUND", format!("{kind} {id} not found."), vec![])
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The id of a `files/x` reference or file URI.
fn file_id(reference: &str) -> Option<&str> {
    let at = reference.rfind("files/")?;
    let id = reference[at + 6..].split([':', '/', '?']).next()?;
    (!id.is_empty()).then_some(id)
}

/// What a request to the Files API or caches paths, if it is one, answers.
/// `None`: not such a path (the caller routes it on).
pub(crate) fn route(
    state: &FakeState,
    method: &Method,
    path: &str,
    qp: &[(String, String)],
    headers: &http::HeaderMap,
    key: Option<&str>,
    body: &[u8],
) -> Option<http::Response<FakeBody>> {
    let ctx = Ctx {
        version: "v1beta",
        array_stream: false,
        pretty: true,
        empty: false,
    };
    let err = |e| Some(error_response(&ctx, e));
    let mut st = state.files.lock().unwrap_or_else(|e| e.into_inner());
    for version in ["v1beta", "v1"] {
        if path == format!("/upload/{version}/files") {
            return Some(upload(
                state, &mut st, &ctx, method, version, qp, headers, key, body,
            ));
        }
    }
    let (version, rest) = if let Some(r) = path.strip_prefix("/v1beta/") {
        ("v1beta", r)
    } else {
        ("v1", path.strip_prefix("/v1/")?)
    };
    if let Some(res) = batches(state, &mut st, &ctx, method, rest, key, body, qp) {
        return Some(res);
    }
    if !(rest == "files"
        || rest.starts_with("files/")
        || rest == "cachedContents"
        || rest.starts_with("cachedContents/"))
    {
        return None;
    }
    let Some(key) = key else {
        return err(err_no_key());
    };
    if rest == "files" {
        if *method != Method::GET {
            return err(err_route_not_found());
        }
        let mut list: Vec<(&String, &FileRec)> =
            st.files.iter().filter(|(_, f)| f.owner == key).collect();
        list.sort_by_key(|(id, f)| (f.created, (*id).clone()));
        let files: Vec<Value> = list
            .into_iter()
            .map(|(id, f)| file_json("", version, id, f))
            .collect();
        return Some(page(ctx_err(&ctx), "files", files, qp));
    }
    if let Some(id) = rest.strip_prefix("files/") {
        let id = id.split(':').next().unwrap_or("");
        let Some(f) = st.files.get(id).cloned() else {
            return err(missing("File", id));
        };
        if f.owner != key {
            return err(denied_file(id));
        }
        return match *method {
            Method::GET => Some(plain_json(200, pretty(&file_json("", version, id, &f)))),
            Method::DELETE => {
                st.files.remove(id);
                Some(plain_json(200, "{}\n".into()))
            }
            _ => err(err_route_not_found()),
        };
    }
    caches(state, &mut st, &ctx, method, rest, key, body, qp)
}

/// A copy of `ctx` for [`page`]'s errors.
fn ctx_err(ctx: &Ctx) -> Ctx {
    Ctx {
        version: ctx.version,
        array_stream: false,
        pretty: true,
        empty: false,
    }
}

/// One page of a list, as Google pages them: `pageSize` (default 10, at
/// most 100), and a `nextPageToken` (`p{offset}`) while more remain; a
/// token that is not one of ours is a 400.
fn page(
    ctx: Ctx,
    member: &str,
    all: Vec<Value>,
    qp: &[(String, String)],
) -> http::Response<FakeBody> {
    let q = |n: &str| qp.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let size = q("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(10, |n| n.min(100));
    let start = match q("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match t.strip_prefix('p').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => {
                return error_response(
                    &ctx,
                    google_error(400, "INVALID_ARGUMENT", "Invalid page token.", vec![]),
                );
            }
        },
    };
    let end = (start + size).min(all.len());
    let items: Vec<Value> = all
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut v = serde_json::Map::new();
    if !items.is_empty() {
        v.insert(member.into(), Value::Array(items));
    }
    if end < all.len() {
        v.insert("nextPageToken".into(), json!(format!("p{end}")));
    }
    plain_json(200, pretty(&Value::Object(v)))
}

/// `POST /upload/{version}/files`: a resumable start or chunk, or a multipart upload.
#[allow(clippy::too_many_arguments)]
fn upload(
    state: &FakeState,
    st: &mut Files,
    ctx: &Ctx,
    method: &Method,
    version: &str,
    qp: &[(String, String)],
    headers: &http::HeaderMap,
    key: Option<&str>,
    body: &[u8],
) -> http::Response<FakeBody> {
    let q = |n: &str| qp.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if *method != Method::POST {
        return error_response(ctx, err_route_not_found());
    }
    if let Some(id) = q("upload_id") {
        return chunk(st, ctx, version, id, h("x-goog-upload-command"), body);
    }
    let Some(key) = key else {
        return error_response(ctx, err_no_key());
    };
    let meta: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let display = meta
        .pointer("/file/display_name")
        .or_else(|| meta.pointer("/file/displayName"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if h("x-goog-upload-protocol").eq_ignore_ascii_case("resumable") {
        if st.uploads.len() >= MAX {
            st.uploads.clear();
        }
        let id = format!("up{}", state.next_id());
        st.uploads.insert(
            id.clone(),
            Pending {
                owner: key.to_string(),
                display,
                mime: h("x-goog-upload-header-content-type").to_string(),
                received: 0,
            },
        );
        let host = h("host");
        let url = format!(
            "http://{host}/upload/{version}/files?upload_id={id}&upload_protocol=resumable"
        );
        let mut res = plain_json(200, String::new());
        let hs = res.headers_mut();
        hs.insert("x-goog-upload-status", HeaderValue::from_static("active"));
        hs.insert(
            "x-goog-upload-chunk-granularity",
            HeaderValue::from_static("8388608"),
        );
        if let Ok(v) = HeaderValue::from_str(&url) {
            hs.insert("x-goog-upload-url", v);
        }
        return res;
    }
    // Multipart: one call with the metadata and the bytes.
    let text = String::from_utf8_lossy(body);
    let display = text
        .split("\"display_name\"")
        .nth(1)
        .or_else(|| text.split("\"displayName\"").nth(1))
        .and_then(|r| r.split('"').nth(1))
        .unwrap_or("")
        .to_string();
    let rec = FileRec {
        owner: key.to_string(),
        display,
        mime: "application/octet-stream".into(),
        size: body.len() as u64,
        created: now_secs(),
    };
    new_file(state, st, version, rec)
}

fn new_file(
    state: &FakeState,
    st: &mut Files,
    version: &str,
    rec: FileRec,
) -> http::Response<FakeBody> {
    if st.files.len() >= MAX {
        st.files.clear();
    }
    let id = format!("f{}x{}", state.next_id(), rec.size % 997);
    let v = json!({ "file": file_json("", version, &id, &rec) });
    st.files.insert(id, rec);
    let mut res = plain_json(200, pretty(&v));
    res.headers_mut()
        .insert("x-goog-upload-status", HeaderValue::from_static("final"));
    res
}

/// A chunk of a resumable upload (no key needed: the upload id is the credential).
fn chunk(
    st: &mut Files,
    ctx: &Ctx,
    version: &str,
    id: &str,
    command: &str,
    body: &[u8],
) -> http::Response<FakeBody> {
    let Some(p) = st.uploads.get_mut(id) else {
        return error_response(
            ctx,
            google_error(404, "NOT_FOUND", "Upload session not found.", vec![]),
        );
    };
    p.received += body.len() as u64;
    if !command.contains("finalize") {
        let mut res = plain_json(200, String::new());
        res.headers_mut()
            .insert("x-goog-upload-status", HeaderValue::from_static("active"));
        return res;
    }
    let Some(p) = st.uploads.remove(id) else {
        return error_response(ctx, err_route_not_found());
    };
    let rec = FileRec {
        owner: p.owner,
        display: p.display,
        mime: if p.mime.is_empty() {
            "application/octet-stream".into()
        } else {
            p.mime
        },
        size: p.received,
        created: now_secs(),
    };
    // `new_file` needs the id counter: ids here come from the size and a hash.
    let n = st.files.len() as u64 + 1;
    if st.files.len() >= MAX {
        st.files.clear();
    }
    let fid = format!("r{n}x{}", id.trim_start_matches("up"));
    let v = json!({ "file": file_json("", version, &fid, &rec) });
    st.files.insert(fid, rec);
    let mut res = plain_json(200, pretty(&v));
    res.headers_mut()
        .insert("x-goog-upload-status", HeaderValue::from_static("final"));
    res
}

#[allow(clippy::too_many_arguments)]
fn caches(
    state: &FakeState,
    st: &mut Files,
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    key: &str,
    body: &[u8],
    qp: &[(String, String)],
) -> Option<http::Response<FakeBody>> {
    let err = |e| Some(error_response(ctx, e));
    if rest == "cachedContents" {
        if *method == Method::POST {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Err(e) = check_files(st, key, &v) {
                return err(e);
            }
            let ttl = v
                .get("ttl")
                .and_then(Value::as_str)
                .and_then(|t| t.trim_end_matches('s').parse::<f64>().ok())
                .unwrap_or(3600.0) as u64;
            let now = now_secs();
            let rec = CacheRec {
                owner: key.to_string(),
                model: v
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                display: v
                    .get("displayName")
                    .or_else(|| v.get("display_name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                created: now,
                expire: now + ttl,
            };
            if st.caches.len() >= MAX {
                st.caches.clear();
            }
            let id = format!("c{}", state.next_id());
            let out = cache_json(&id, &rec);
            st.caches.insert(id, rec);
            return Some(plain_json(200, pretty(&out)));
        }
        let mut mine: Vec<(&String, &CacheRec)> =
            st.caches.iter().filter(|(_, c)| c.owner == key).collect();
        mine.sort_by_key(|(id, c)| (c.created, (*id).clone()));
        let list: Vec<Value> = mine.into_iter().map(|(id, c)| cache_json(id, c)).collect();
        return Some(page(ctx_err(ctx), "cachedContents", list, qp));
    }
    let id = rest.strip_prefix("cachedContents/")?;
    let Some(c) = st.caches.get_mut(id) else {
        return err(missing("CachedContent", id));
    };
    if c.owner != key {
        return err(denied_cache());
    }
    match *method {
        Method::GET => Some(plain_json(200, pretty(&cache_json(id, c)))),
        Method::PATCH => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Some(ttl) = v
                .get("ttl")
                .and_then(Value::as_str)
                .and_then(|t| t.trim_end_matches('s').parse::<f64>().ok())
            {
                c.expire = now_secs() + ttl as u64;
            }
            Some(plain_json(200, pretty(&cache_json(id, c))))
        }
        Method::DELETE => {
            st.caches.remove(id);
            Some(plain_json(200, "{}\n".into()))
        }
        _ => err(err_route_not_found()),
    }
}

fn batch_json(id: &str, b: &BatchRec) -> Value {
    json!({
        "name": format!("batches/{id}"),
        "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "name": format!("batches/{id}"),
            "model": b.model,
            "displayName": b.display,
            "state": b.state,
            "createTime": ts(b.created),
            "updateTime": ts(b.created),
        },
        "done": b.state != "BATCH_STATE_PENDING",
    })
}

/// `models/{m}:batchGenerateContent`, `batches`, `batches/{id}` and
/// `batches/{id}:cancel`; `None` for other paths.
#[allow(clippy::too_many_arguments)]
fn batches(
    state: &FakeState,
    st: &mut Files,
    ctx: &Ctx,
    method: &Method,
    rest: &str,
    key: Option<&str>,
    body: &[u8],
    qp: &[(String, String)],
) -> Option<http::Response<FakeBody>> {
    let create = rest
        .strip_prefix("models/")
        .and_then(|m| m.strip_suffix(":batchGenerateContent"));
    if create.is_none() && rest != "batches" && !rest.starts_with("batches/") {
        return None;
    }
    let err = |e| Some(error_response(ctx, e));
    let Some(key) = key else {
        return err(err_no_key());
    };
    if let Some(model) = create {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let batch = v.get("batch").unwrap_or(&v);
        if let Err(e) = check_files(st, key, batch) {
            return err(e);
        }
        let input = batch
            .pointer("/inputConfig/fileName")
            .or_else(|| batch.pointer("/input_config/file_name"))
            .and_then(Value::as_str);
        if let Some(f) = input.and_then(file_id)
            && st.files.get(f).is_none_or(|r| r.owner != key)
        {
            return err(denied_file(f));
        }
        if st.batches.len() >= MAX {
            st.batches.clear();
        }
        let rec = BatchRec {
            owner: key.to_string(),
            model: format!("models/{model}"),
            display: batch
                .get("displayName")
                .or_else(|| batch.get("display_name"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            state: "BATCH_STATE_PENDING",
            created: now_secs(),
        };
        let id = format!("b{}", state.next_id());
        let out = batch_json(&id, &rec);
        st.batches.insert(id, rec);
        return Some(plain_json(200, pretty(&out)));
    }
    if rest == "batches" {
        let mut list: Vec<(&String, &BatchRec)> =
            st.batches.iter().filter(|(_, b)| b.owner == key).collect();
        list.sort_by_key(|(id, b)| (b.created, (*id).clone()));
        let ops: Vec<Value> = list.into_iter().map(|(id, b)| batch_json(id, b)).collect();
        return Some(page(ctx_err(ctx), "operations", ops, qp));
    }
    let tail = rest.strip_prefix("batches/").unwrap_or("");
    let (id, action) = tail.split_once(':').unwrap_or((tail, ""));
    let Some(b) = st.batches.get_mut(id) else {
        return err(missing("Batch", id));
    };
    if b.owner != key {
        return err(google_error(
            403,
            "PERMISSION_DENIED",
            format!("You do not have permission to access the Batch {id} or it may not exist."),
            vec![],
        ));
    }
    match (method.clone(), action) {
        (Method::GET, "") => Some(plain_json(200, pretty(&batch_json(id, b)))),
        (Method::POST, "cancel") => {
            b.state = "BATCH_STATE_CANCELLED";
            Some(plain_json(200, "{}\n".into()))
        }
        (Method::DELETE, "") => {
            st.batches.remove(id);
            Some(plain_json(200, "{}\n".into()))
        }
        _ => err(err_route_not_found()),
    }
}

/// Every `fileUri` in `v` must name a file of `key`.
fn check_files(st: &Files, key: &str, v: &Value) -> Result<(), GoogleError> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if let ("fileUri" | "file_uri", Value::String(s)) = (k.as_str(), x) {
                        out.push(s);
                    }
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut uris = Vec::new();
    walk(v, &mut uris);
    for uri in uris {
        if !uri.contains("generativelanguage.googleapis.com") {
            continue;
        }
        let Some(id) = file_id(uri) else { continue };
        if st.files.get(id).is_none_or(|f| f.owner != key) {
            return Err(denied_file(id));
        }
    }
    Ok(())
}

/// A generate body's files and cache must be `key`'s (else Google's 403).
pub(crate) fn check_generate(state: &FakeState, key: &str, body: &[u8]) -> Result<(), GoogleError> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let st = state.files.lock().unwrap_or_else(|e| e.into_inner());
    check_files(&st, key, &v)?;
    let cache = v
        .get("cachedContent")
        .or_else(|| v.get("cached_content"))
        .and_then(Value::as_str);
    if let Some(c) = cache {
        let id = c.trim_start_matches("cachedContents/");
        // A cache the fake never saw is taken as made elsewhere (the
        // translation tests name such caches and expect cached tokens); one
        // it knows must be the calling key's, as Google requires.
        if st.caches.get(id).is_some_and(|c| c.owner != key) {
            return Err(denied_cache());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_ids() {
        assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(ts(86_401), "1970-01-02T00:00:01.000000Z");
        assert_eq!(file_id("https://x/v1beta/files/abc"), Some("abc"));
        assert_eq!(file_id("files/abc:download"), Some("abc"));
    }
}
