//! Gemini's own OpenAI-compatible layer (docs/wire-formats.md §A.7) under
//! `{version}/openai/`: chat completions (plain and streamed), models and
//! embeddings, keyed by a bearer token, errors in Google's envelope.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response};
use serde_json::Value;

use crate::body::{Abort, FakeBody, JSON_CT, echo_key, silence, trickle, with_headers};
use crate::directives::{lorem, parse_directives};
use crate::embeddings::embedding_vec;
use crate::encoding::{b64_std, pct_decode};
use crate::errors::{
    GoogleError, err_bad, err_expired, err_for_status, err_internal, err_invalid_json,
    err_invalid_key, err_method, err_model_not_found, err_no_key, err_overloaded, err_quota,
    err_region, err_route_not_found, err_suspended, google_error,
};
use crate::generate::{response_id, split_words};
use crate::json::Json;
use crate::models::{CATALOGUE, model_known};
use crate::request::{arr, tok, words};
use crate::schema::{gen_from_schema, num_of};
use crate::server::BODY_LIMIT;
use crate::{FakeState, KeyBehavior};

// ---------------------------------------------------------------------------
// Gemini's OpenAI-compatible endpoint (docs/wire-formats.md §A.7): `{prefix}/openai/...`
// ---------------------------------------------------------------------------

/// An error of the OpenAI-compatible layer: Google's envelope wrapped in a
/// one-element array (docs/wire-formats.md §A.7), not OpenAI's error shape.
pub(crate) fn oa_error(e: GoogleError) -> Response<FakeBody> {
    let mut s = String::from("[");
    s.push_str(&e.body.pretty());
    s.push_str("\n]");
    with_headers(e.code, JSON_CT, FakeBody::full(s))
}

pub(crate) fn oa_json(j: &Json) -> Response<FakeBody> {
    with_headers(200, "application/json", FakeBody::full(j.compact()))
}

pub(crate) fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `POST chat/completions` (plain and `stream: true`), `GET models`,
/// `GET models/{id}`, `POST embeddings`; the key is the bearer token and
/// gets the same per-key behaviors as on the native routes.
pub(crate) async fn openai_compat(
    state: &FakeState,
    method: &Method,
    rest: &str,
    key: Option<String>,
    body: Result<Bytes, Box<dyn std::error::Error + Send + Sync>>,
) -> Result<Response<FakeBody>, Abort> {
    enum R {
        Chat,
        Models,
        Model(String),
        Embeddings,
    }
    let route = match rest {
        "chat/completions" => R::Chat,
        "models" => R::Models,
        "embeddings" => R::Embeddings,
        r => match r.strip_prefix("models/") {
            Some(id) if !id.is_empty() => {
                let id = pct_decode(id, false);
                R::Model(id.strip_prefix("models/").unwrap_or(&id).to_string())
            }
            _ => return Ok(oa_error(err_route_not_found())),
        },
    };
    let want_post = matches!(route, R::Chat | R::Embeddings);
    if (want_post && method != Method::POST) || (!want_post && method != Method::GET) {
        return Ok(oa_error(err_method(method, rest)));
    }
    let Some(key) = key else {
        return Ok(oa_error(err_no_key()));
    };
    let Ok(body) = body else {
        return Ok(oa_error(google_error(
            413,
            "INVALID_ARGUMENT",
            format!("Request payload size exceeds the limit: {BODY_LIMIT} bytes."),
            vec![],
        )));
    };
    let root = if want_post {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(oa_error(err_invalid_json(
                    "Request body is not a JSON object.",
                )));
            }
        }
    } else {
        Value::Null
    };
    let model = root
        .get("model")
        .and_then(Value::as_str)
        .map(|m| m.strip_prefix("models/").unwrap_or(m).to_string());
    let stream =
        matches!(route, R::Chat) && root.get("stream").and_then(Value::as_bool) == Some(true);
    let quota_model = match (&route, &model) {
        (R::Model(m), _) | (_, Some(m)) => m.clone(),
        _ => "gemini-2.5-flash".to_string(),
    };
    let mut cut = None;
    let mut reshape = None;
    match state.behavior(&key) {
        KeyBehavior::Ok => {}
        b @ (KeyBehavior::EchoKey { .. } | KeyBehavior::Trickle { .. }) => reshape = Some(b),
        KeyBehavior::Silent { ms } if !stream => tokio::time::sleep(state.scaled(ms)).await,
        KeyBehavior::SilentCut { ms } if !stream => {
            tokio::time::sleep(state.scaled(ms)).await;
            return Err(Abort);
        }
        b @ (KeyBehavior::Silent { .. } | KeyBehavior::SilentCut { .. }) => reshape = Some(b),
        // Empty answers are a native-route behavior; here the key answers normally.
        KeyBehavior::Empty => {}
        KeyBehavior::Invalid => return Ok(oa_error(err_invalid_key())),
        KeyBehavior::Expired => return Ok(oa_error(err_expired())),
        KeyBehavior::Suspended => return Ok(oa_error(err_suspended(&key))),
        KeyBehavior::Quota { retry_secs } => {
            return Ok(oa_error(err_quota(&quota_model, Some(retry_secs))));
        }
        KeyBehavior::QuotaDay => return Ok(oa_error(err_quota(&quota_model, None))),
        KeyBehavior::Overloaded => return Ok(oa_error(err_overloaded())),
        KeyBehavior::Internal => return Ok(oa_error(err_internal())),
        KeyBehavior::Region => return Ok(oa_error(err_region())),
        KeyBehavior::Slow { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        KeyBehavior::CutAfter { events } => {
            if !stream {
                return Err(Abort);
            }
            cut = Some(events);
        }
        KeyBehavior::Hang => std::future::pending::<()>().await,
    }
    let res = match route {
        R::Models => Ok(oa_json(&Json::obj([
            ("object", Json::s("list")),
            (
                "data",
                Json::Arr(CATALOGUE.iter().map(|c| oa_model(c.id)).collect()),
            ),
        ]))),
        R::Model(m) if model_known(&m) => Ok(oa_json(&oa_model(&m))),
        R::Model(m) => Err(err_model_not_found(&m, "v1beta", "get")),
        R::Chat => match oa_chat(state, &root, model.as_deref(), stream, cut).await {
            Ok(r) => match reshape {
                Some(KeyBehavior::EchoKey { split }) => Ok(echo_key(r, &key, split)),
                Some(KeyBehavior::Trickle { ms }) => Ok(trickle(r, ms)),
                Some(KeyBehavior::Silent { ms }) => Ok(silence(r, state.scaled(ms), false)),
                Some(KeyBehavior::SilentCut { ms }) => Ok(silence(r, state.scaled(ms), true)),
                _ => Ok(r),
            },
            e => e,
        },
        R::Embeddings => oa_embeddings(&root, model.as_deref()),
    };
    Ok(res.unwrap_or_else(oa_error))
}

pub(crate) fn oa_model(id: &str) -> Json {
    Json::obj([
        ("id", Json::s(format!("models/{id}"))),
        ("object", Json::s("model")),
        ("owned_by", Json::s("google")),
    ])
}

/// The text of an OpenAI message `content` (a string or text parts).
pub(crate) fn oa_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

pub(crate) fn oa_usage(prompt: u64, completion: u64) -> Json {
    Json::obj([
        ("completion_tokens", Json::Int(completion as i64)),
        ("prompt_tokens", Json::Int(prompt as i64)),
        ("total_tokens", Json::Int((prompt + completion) as i64)),
    ])
}

/// A tool call for the first function the request offers (or the one
/// `tool_choice` names), with arguments generated from its schema.
pub(crate) fn oa_tool_call(req: &Value, n: u64) -> Option<Json> {
    let choice = req.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let named = choice
        .and_then(|c| c.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    let f = arr(req.get("tools"))
        .iter()
        .filter_map(|t| t.get("function"))
        .find(|f| named.is_none_or(|n| f.get("name").and_then(Value::as_str) == Some(n)))?;
    let name = f.get("name").and_then(Value::as_str)?.to_string();
    let args = match f.get("parameters").map(gen_from_schema) {
        Some(j @ Json::Obj(_)) => j,
        _ => Json::Obj(vec![]),
    };
    Some(Json::obj([
        (
            "function",
            Json::obj([
                ("arguments", Json::s(args.compact())),
                ("name", Json::s(name)),
            ]),
        ),
        ("id", Json::s(format!("function-call-{n}"))),
        ("type", Json::s("function")),
    ]))
}

/// Gemini's OpenAI-compatible `chat/completions`, whole or streamed.
pub(crate) async fn oa_chat(
    state: &FakeState,
    req: &Value,
    model: Option<&str>,
    stream: bool,
    cut: Option<usize>,
) -> Result<Response<FakeBody>, GoogleError> {
    let Some(model) = model else {
        return Err(err_bad("model is required"));
    };
    let messages = arr(req.get("messages"));
    if messages.is_empty() {
        return Err(err_bad("messages must not be empty"));
    }
    if !model_known(model) {
        return Err(err_model_not_found(model, "v1beta", "generateContent"));
    }
    let prompt: u64 = messages
        .iter()
        .map(|m| tok(&oa_text(m.get("content"))))
        .sum::<u64>()
        .max(1);
    let last = &messages[messages.len() - 1];
    let role = last.get("role").and_then(Value::as_str).unwrap_or("");
    let (d, clean) = parse_directives(&oa_text(last.get("content")));
    if let Some(code) = d.status.filter(|c| *c != 200) {
        return Err(err_for_status(code, model));
    }
    let n = state.next_id();
    let id = response_id(n);
    let created = unix_secs();
    let call = if role == "tool" {
        None
    } else {
        oa_tool_call(req, n)
    };
    let text = if let Some(w) = d.events.or(d.words) {
        lorem(w)
    } else if role == "tool" {
        format!("Tool returned: {}", clean.trim())
    } else if clean.trim().is_empty() {
        "Hello from the fake Gemini.".to_string()
    } else {
        format!("Echo: {}", clean.trim())
    };
    let completion = if call.is_some() { 5 } else { words(&text) };
    let head = |object: &'static str, choices: Vec<Json>| {
        Json::obj([
            ("choices", Json::Arr(choices)),
            ("created", Json::Int(created)),
            ("id", Json::s(id.clone())),
            ("model", Json::s(model.to_string())),
            ("object", Json::s(object)),
        ])
    };
    let first = state.scaled(d.first_ms);
    if !stream {
        tokio::time::sleep(first).await;
        let (message, finish) = oa_message(call, text);
        let mut j = head(
            "chat.completion",
            vec![Json::obj([
                ("finish_reason", Json::s(finish)),
                ("index", Json::Int(0)),
                ("message", message),
            ])],
        );
        j.push("usage", oa_usage(prompt, completion));
        return Ok(oa_json(&j));
    }
    // Stream: one delta per piece of text; the last carries finish_reason
    // ("stop" even after a tool call, as Gemini's layer does), then usage
    // when asked for, then [DONE].
    let deltas = oa_deltas(call.as_ref(), &text, d.events.is_some());
    let total = deltas.len();
    let mut events: Vec<Bytes> = Vec::with_capacity(total + 2);
    for (k, delta) in deltas.into_iter().enumerate() {
        let mut choice = Json::obj([("delta", delta)]);
        if k + 1 == total {
            choice.push("finish_reason", Json::s("stop"));
        }
        choice.push("index", Json::Int(0));
        let j = head("chat.completion.chunk", vec![choice]);
        events.push(Bytes::from(format!("data: {}\n\n", j.compact())));
    }
    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if include_usage {
        let mut j = head("chat.completion.chunk", vec![]);
        j.push("usage", oa_usage(prompt, completion));
        events.push(Bytes::from(format!("data: {}\n\n", j.compact())));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    if let Some(c) = cut {
        events.truncate(c.min(total.saturating_sub(1)));
    }
    let mut body = FakeBody::stream(events, Duration::from_millis(d.gap_ms), cut.is_some());
    body.first = first;
    Ok(with_headers(200, "text/event-stream", body))
}

/// The assistant message of a whole answer and its finish reason.
fn oa_message(call: Option<Json>, text: String) -> (Json, &'static str) {
    match call {
        Some(c) => (
            Json::obj([
                ("role", Json::s("assistant")),
                ("tool_calls", Json::Arr(vec![c])),
            ]),
            "tool_calls",
        ),
        None => (
            Json::obj([("content", Json::s(text)), ("role", Json::s("assistant"))]),
            "stop",
        ),
    }
}

/// The deltas of a streamed answer: the tool call in one, or the text in
/// pieces (one word each with `[[events=N]]`, else four).
fn oa_deltas(call: Option<&Json>, text: &str, one_word: bool) -> Vec<Json> {
    match call {
        Some(c) => {
            let mut tc = c.clone();
            if let Json::Obj(m) = &mut tc {
                m.insert(0, (Cow::Borrowed("index"), Json::Int(0)));
            }
            vec![Json::obj([
                ("role", Json::s("assistant")),
                ("tool_calls", Json::Arr(vec![tc])),
            ])]
        }
        None => split_words(text, if one_word { 1 } else { 4 })
            .into_iter()
            .map(|seg| Json::obj([("content", Json::s(seg)), ("role", Json::s("assistant"))]))
            .collect(),
    }
}

pub(crate) fn oa_embeddings(
    req: &Value,
    model: Option<&str>,
) -> Result<Response<FakeBody>, GoogleError> {
    let Some(model) = model else {
        return Err(err_bad("model is required"));
    };
    if !model_known(model) {
        return Err(err_model_not_found(model, "v1beta", "embedContent"));
    }
    let inputs: Vec<&str> = match req.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return Err(err_bad(
                "input must be a string or a non-empty array of strings",
            ));
        }
    };
    let dim = match num_of(req.get("dimensions")) {
        None => 768,
        Some(d) if (1.0..=3072.0).contains(&d) => d as usize,
        Some(d) => {
            return Err(err_bad(format!(
                "dimensions must be between 1 and 3072, got {d}"
            )));
        }
    };
    let base64 = match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(err_bad(format!("unsupported encoding_format {other:?}"))),
    };
    let mut data = Vec::with_capacity(inputs.len());
    let mut prompt = 0;
    for (i, text) in inputs.iter().enumerate() {
        prompt += tok(text);
        let v = embedding_vec(text, dim);
        let embedding = if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            Json::s(b64_std(&bytes))
        } else {
            Json::Arr(v.into_iter().map(Json::F32).collect())
        };
        data.push(Json::obj([
            ("embedding", embedding),
            ("index", Json::Int(i as i64)),
            ("object", Json::s("embedding")),
        ]));
    }
    Ok(oa_json(&Json::obj([
        ("data", Json::Arr(data)),
        ("model", Json::s(model.to_string())),
        ("object", Json::s("list")),
        (
            "usage",
            Json::obj([
                ("prompt_tokens", Json::Int(prompt as i64)),
                ("total_tokens", Json::Int(prompt as i64)),
            ]),
        ),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64_decode;
    use crate::testutil::*;

    #[tokio::test]
    async fn openai_compat_layer() {
        let fake = Fake::start().await.unwrap();
        let chat = |body: Value| body.to_string();
        let hello = json!({"model": "models/gemini-2.5-flash", "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]});
        let bearer = [
            ("authorization", "Bearer k1"),
            ("content-type", "application/json"),
        ];
        let r = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(hello.clone()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gemini-2.5-flash");
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: Hi there");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["completion_tokens"], 3);
        let rec = fake.state.requests().pop().unwrap();
        assert_eq!(
            rec.api_key.as_deref(),
            Some("k1"),
            "the bearer is the key here"
        );
        assert_eq!(fake.state.count_for_key("k1"), 1);
        // Errors: Google's envelope in a one-element array; per-key behaviors apply.
        let none = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &[],
            &chat(hello.clone()),
        )
        .await;
        assert_eq!(none.status, 403);
        assert_eq!(none.json()[0]["error"]["status"], "PERMISSION_DENIED");
        let goog_only = send(
            fake.addr,
            "GET",
            "/v1beta/models?key=k",
            &[("authorization", "Bearer zz")],
            "",
        )
        .await;
        assert_eq!(goog_only.status, 200, "native routes ignore bearer tokens");
        let bad = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &[("authorization", "Bearer bad-1")],
            &chat(hello.clone()),
        )
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(
            bad.json()[0]["error"]["details"][0]["reason"],
            "API_KEY_INVALID"
        );
        let mut unknown = hello.clone();
        unknown["model"] = json!("gemini-9-ultra");
        let nf = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(unknown),
        )
        .await;
        assert_eq!(nf.status, 404);
        let mut forced = hello.clone();
        forced["messages"][1]["content"] = json!("[[status=503]]");
        assert_eq!(
            send(
                fake.addr,
                "POST",
                "/v1beta/openai/chat/completions",
                &bearer,
                &chat(forced)
            )
            .await
            .status,
            503
        );
        // Stream: deltas, finish_reason on the last, usage when asked, [DONE].
        let mut st = hello.clone();
        st["stream"] = json!(true);
        st["stream_options"] = json!({"include_usage": true});
        st["messages"][1]["content"] = json!("[[events=3]] x");
        let r = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(st.clone()),
        )
        .await;
        assert_eq!(r.ct(), "text/event-stream");
        let sse = r.text();
        let events: Vec<&str> = sse.split_terminator("\n\n").collect();
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events[4], "data: [DONE]");
        let chunks: Vec<Value> = events[..4]
            .iter()
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "lorem ipsum dolor");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert!(chunks[0]["choices"][0].get("finish_reason").is_none());
        assert_eq!(chunks[3]["choices"], json!([]));
        assert_eq!(chunks[3]["usage"]["completion_tokens"], 3);
        let cut = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &[("authorization", "Bearer cut-1")],
            &chat(st),
        )
        .await;
        assert!(cut.body_error, "a cut key cuts the stream");
        assert!(!cut.text().contains("[DONE]"));
        // Tool calls.
        let mut tools = hello.clone();
        tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
        let v = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(tools.clone()),
        )
        .await
        .json();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string());
        tools["tool_choice"] = json!("none");
        let v = send(
            fake.addr,
            "POST",
            "/v1beta/openai/chat/completions",
            &bearer,
            &chat(tools),
        )
        .await
        .json();
        assert_eq!(v["choices"][0]["message"]["content"], "Echo: Hi there");
        // Models and embeddings (float and base64 agree).
        let m = send(fake.addr, "GET", "/v1beta/openai/models", &bearer, "")
            .await
            .json();
        assert!(
            m["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == "models/gemini-2.5-flash")
        );
        let one = send(
            fake.addr,
            "GET",
            "/v1beta/openai/models/gemini-2.5-pro",
            &bearer,
            "",
        )
        .await
        .json();
        assert_eq!(one["id"], "models/gemini-2.5-pro");
        assert_eq!(
            send(fake.addr, "POST", "/v1beta/openai/models", &bearer, "")
                .await
                .status,
            405
        );
        let e = |fmt: &str| {
            json!({"model": "gemini-embedding-001", "input": ["a", "b"], "dimensions": 4, "encoding_format": fmt}).to_string()
        };
        let f = send(
            fake.addr,
            "POST",
            "/v1beta/openai/embeddings",
            &bearer,
            &e("float"),
        )
        .await
        .json();
        let b = send(
            fake.addr,
            "POST",
            "/v1beta/openai/embeddings",
            &bearer,
            &e("base64"),
        )
        .await
        .json();
        let floats: Vec<f32> = f["data"][1]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let raw = b64_decode(b["data"][1]["embedding"].as_str().unwrap()).unwrap();
        let decoded: Vec<f32> = raw
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(floats.len(), 4);
        assert_eq!(floats, decoded);
        assert_eq!(f["usage"]["prompt_tokens"], 2);
    }
}
