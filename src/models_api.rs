//! The OpenAI `/v1/embeddings` and `/v1/models` handlers: read and check
//! the request, translate it with [`crate::openai`], run it over the key
//! pool, and translate the answer back (model lists merged from every
//! key's view of Gemini's list, with aliases added and filtered models hidden).

use std::sync::Arc;

use bytes::Bytes;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::answer::{LogInfo, read_whole, upstream_failed};
use crate::app::App;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::handlers::{alias_in_body, json_headers, read_json, valid_model};
use crate::keys::KeyPool;
use crate::openai;
use crate::upstream::{Auth, Call, Failure};

/// `POST /v1/embeddings`.
pub async fn embeddings(
    app: Arc<App>,
    req: Request<Incoming>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let mut value = read_json(&app, req).await?;
    let client = alias_in_body(&app, &mut value)?;
    let mut call = openai::embeddings::translate_request(&value).map_err(GatewayError::Invalid)?;
    if !valid_model(&call.model) {
        return Err(GatewayError::InvalidModel(call.model));
    }
    if let Some(client) = client {
        call.client_model = client;
    }
    log.model.clone_from(&call.model);
    let path = app
        .upstream
        .path(&format!("/models/{}:batchEmbedContents", call.model));
    let mut answers = Vec::with_capacity(call.batches.len());
    for batch in &call.batches {
        let up = Call {
            method: Method::POST,
            path: path.clone(),
            body: Bytes::from(serde_json::to_vec(batch).unwrap_or_default()),
            model: &call.model,
            auth: Auth::GoogHeader,
            headers: json_headers(),
            route: log.route,
        };
        let mut answer = match app.upstream.call(&app.pool, &up).await {
            Ok(a) => a,
            Err(f) => {
                log.key.clear();
                return Err(upstream_failed(&app, f, &call.model, false));
            }
        };
        log.key = app.pool.masked(answer.key).to_string();
        let parsed = match read_whole(&app, answer.response).await {
            Ok((_, bytes)) => {
                answer.meter.whole(&bytes);
                serde_json::from_slice::<Value>(&bytes).ok()
            }
            Err(_) => None,
        };
        let Some(v) = parsed else {
            return Err(GatewayError::BadAnswer(
                "Gemini answered with invalid JSON.".into(),
            ));
        };
        answers.push(v);
    }
    match openai::embeddings::translate_response(&answers, &call) {
        Ok(v) => Ok(body::json(StatusCode::OK, &v)),
        Err(e) => Err(GatewayError::BadAnswer(
            format!("Unexpected answer from Gemini: {}", e.message).into(),
        )),
    }
}

/// Fetch every page of Gemini's model list with a pool key.
pub async fn list_all_models(app: &App, pool: &KeyPool, v1: bool) -> Result<Vec<Value>, Failure> {
    let mut models = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..50 {
        let mut rest = String::from("/models?pageSize=1000");
        if let Some(t) = &token {
            rest.push_str("&pageToken=");
            rest.push_str(&encode_query(t));
        }
        let path = if v1 {
            app.upstream.path_v1(&rest)
        } else {
            app.upstream.path(&rest)
        };
        let up = Call {
            method: Method::GET,
            path,
            body: Bytes::new(),
            model: "",
            auth: Auth::GoogHeader,
            headers: Vec::new(),
            route: "models",
        };
        let answer = app.upstream.call(pool, &up).await?;
        let page: Value = match read_whole(app, answer.response).await {
            Ok((_, b)) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(GatewayError::AnswerTimeout) => return Err(Failure::Timeout),
            Err(e) => return Err(Failure::Network(e.to_string())),
        };
        if let Some(list) = page.get("models").and_then(Value::as_array) {
            models.extend(list.iter().cloned());
        }
        token = page
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(models)
}

/// Percent-encode a query value (RFC 3986 unreserved characters kept).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /v1/models` (id = None) and `GET /v1/models/{id}`.
pub async fn models(
    app: Arc<App>,
    id: Option<String>,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    if let Some(id) = &id
        && !valid_model(openai::bare_model(id))
    {
        return Err(GatewayError::InvalidModel(id.clone()));
    }
    let models = list_all_models(&app, &app.pool, false)
        .await
        .map_err(|f| upstream_failed(&app, f, "", false))?;
    let list = {
        let cfg = app.cfg();
        let mut list = openai::models::translate_list(&models, &cfg.translate);
        openai::models::apply_rules(&mut list, &cfg.model_aliases, &cfg.filtered_models);
        list
    };
    let Some(id) = id else {
        return Ok(body::json(StatusCode::OK, &list));
    };
    let id = openai::bare_model(&id);
    let found = list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|m| m["id"] == id));
    match found {
        Some(m) => {
            log.model = id.to_string();
            Ok(body::json(StatusCode::OK, m))
        }
        None => Err(GatewayError::ModelNotFound(id.chars().take(100).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode_query("a b/c=="), "a%20b%2Fc%3D%3D");
    }
}
