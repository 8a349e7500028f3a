//! OpenAI Chat Completions request → Gemini `generateContent` request.
//!
//! Owns the public entry points [`translate_request`] (the `Value` path)
//! and [`translate_request_fast`] (plain-text conversations straight from
//! the bytes), the calls they produce ([`GeminiCall`], [`PreparedCall`]),
//! the request's top-level switches (`model` and its suffixes `-search`,
//! `-thinking`, `-non-thinking`; `stream`; the `extra_body.google`
//! extension), the assembly of the body members that do not depend on the
//! messages (tools, safety settings, generation config, cached content) and
//! the small helpers the sections share. The sections live beside it:
//!
//! * `messages` — messages → `systemInstruction` and `contents`.
//! * `tools` — `tools` / `functions` and `tool_choice` → `tools`, `toolConfig`.
//! * `generation` — sampling, `response_format`, `modalities` → `generationConfig`.
//! * `thinking` — reasoning effort, suffixes and budgets → `thinkingConfig`.
//! * `fast` — the byte-level fast path behind [`translate_request_fast`].
//!
//! Pure: JSON in, JSON out, never panics.

use serde_json::{Map, Value, json};

use super::schema::depth_within;
use super::{Options, TranslateError, bare_model};

mod fast;
mod generation;
mod messages;
mod thinking;
mod tools;

#[cfg(test)]
mod tests;

use generation::{modalities, response_format, sampling};
use messages::convert_messages;
use thinking::thinking_config;
use tools::{collect_tools, tool_config};

/// Most messages accepted in one request.
const MAX_MESSAGES: usize = 10_000;
/// Deepest client JSON copied verbatim into the Gemini body.
const MAX_COPY_DEPTH: usize = 64;
/// Safety categories set to `OFF` by default.
const SAFETY_CATEGORIES: [&str; 5] = [
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
];

/// The Gemini call that one OpenAI chat request becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct GeminiCall {
    /// Gemini model id to call, no `models/` prefix, derived suffixes (`-search`, `-thinking`, `-non-thinking`) removed.
    pub model: String,
    /// Model name echoed back to the client (what it sent, minus `models/`).
    pub client_model: String,
    /// `stream: true` was requested.
    pub stream: bool,
    /// `stream_options.include_usage` was true.
    pub include_usage: bool,
    /// The Gemini `generateContent` request body.
    pub body: Value,
}

/// Translate an OpenAI `/v1/chat/completions` request body into the Gemini
/// `generateContent` call it stands for.
///
/// Client mistakes come back as a [`TranslateError`] naming the OpenAI
/// field (`messages[2].content`, `temperature`, …). Never panics.
pub fn translate_request(req: &Value, opts: &Options) -> Result<GeminiCall, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| err("body", "the request body must be a JSON object"))?;
    let head = head(obj)?;
    let model = head.suffix.base;

    // Messages.
    let Some(Value::Array(messages)) = obj.get("messages") else {
        return Err(err("messages", "`messages` must be a non-empty array"));
    };
    if messages.is_empty() {
        return Err(err("messages", "`messages` must be a non-empty array"));
    }
    if messages.len() > MAX_MESSAGES {
        return Err(err(
            "messages",
            format!("too many messages (at most {MAX_MESSAGES})"),
        ));
    }
    let conv = convert_messages(messages, model)?;

    let mut body = Map::new();
    if conv.contents.is_empty() {
        if conv.system.is_empty() {
            return Err(err("messages", "no message has any content"));
        }
        // Only a system prompt: send it as the user turn Gemini requires.
        body.insert(
            "contents".into(),
            Value::Array(vec![object([
                ("role", Value::from("user")),
                ("parts", Value::Array(conv.system)),
            ])]),
        );
    } else {
        if !conv.system.is_empty() {
            body.insert(
                "systemInstruction".into(),
                object([("parts", Value::Array(conv.system))]),
            );
        }
        body.insert("contents".into(), Value::Array(conv.contents));
    }

    let m = members(obj, opts, &head)?;
    if !m.tools.is_empty() {
        body.insert("tools".into(), Value::Array(m.tools));
    }
    if let Some(tc) = m.tool_config {
        body.insert("toolConfig".into(), tc);
    }
    body.insert("safetySettings".into(), m.safety.into_value());
    if !m.gc.is_empty() {
        body.insert("generationConfig".into(), Value::Object(m.gc));
    }
    if let Some(c) = m.cached {
        body.insert("cachedContent".into(), c);
    }

    Ok(GeminiCall {
        model: model.to_string(),
        client_model: head.client_model.to_string(),
        stream: head.stream,
        include_usage: head.include_usage,
        body: Value::Object(body),
    })
}

/// The request's top-level switches, validated in the order errors are
/// reported.
struct Head<'a> {
    /// The model as the client named it, minus `models/`.
    client_model: &'a str,
    /// Its suffixes; `suffix.base` is the model to call.
    suffix: Suffixes<'a>,
    /// `stream`.
    stream: bool,
    /// `stream_options.include_usage`.
    include_usage: bool,
    /// `extra_body.google` / `google`.
    google: Google<'a>,
}

/// Validate `model`, `stream`, `stream_options` and the Gemini extension.
fn head(obj: &Map<String, Value>) -> Result<Head<'_>, TranslateError> {
    let client_model = match obj.get("model") {
        Some(Value::String(s)) if !bare_model(s).is_empty() => bare_model(s),
        _ => return Err(err("model", "`model` must be a non-empty string")),
    };
    let stream = match opt(obj, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err("stream", "`stream` must be a boolean")),
    };
    let include_usage = match opt(obj, "stream_options") {
        None => false,
        Some(Value::Object(so)) => match opt(so, "include_usage") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(err(
                    "stream_options.include_usage",
                    "`stream_options.include_usage` must be a boolean",
                ));
            }
        },
        Some(_) => return Err(err("stream_options", "`stream_options` must be an object")),
    };
    Ok(Head {
        client_model,
        suffix: split_suffixes(client_model),
        stream,
        include_usage,
        google: google_extension(obj)?,
    })
}

/// `safetySettings`: the client's, the configured ones, or every category
/// `OFF`.
enum Safety<'a> {
    /// Sent by the client (already bounded).
    Client(Value),
    /// `SAFETY_SETTINGS`.
    Configured(&'a Value),
    /// Every category `OFF`.
    Off,
}

impl Safety<'_> {
    /// As a JSON value.
    fn into_value(self) -> Value {
        match self {
            Safety::Client(v) => v,
            Safety::Configured(v) => v.clone(),
            Safety::Off => Value::Array(
                SAFETY_CATEGORIES
                    .iter()
                    .map(|c| json!({"category": c, "threshold": "OFF"}))
                    .collect(),
            ),
        }
    }
}

/// The body members that do not depend on the messages.
struct Members<'a> {
    /// `tools` (absent when empty).
    tools: Vec<Value>,
    /// `toolConfig`, only with function declarations.
    tool_config: Option<Value>,
    /// `safetySettings`.
    safety: Safety<'a>,
    /// `generationConfig` (absent when empty).
    gc: Map<String, Value>,
    /// `cachedContent`.
    cached: Option<Value>,
}

/// Tools, tool choice, safety settings, generation config and cached
/// content, from everything in the request but its messages.
fn members<'a>(
    obj: &'a Map<String, Value>,
    opts: &'a Options,
    head: &Head<'a>,
) -> Result<Members<'a>, TranslateError> {
    let model = head.suffix.base;
    let google = &head.google;

    // Tools and tool_choice.
    let mut tools = collect_tools(obj)?;
    tools.search |= head.suffix.search || opt(obj, "web_search_options").is_some();
    let tool_config = tool_config(obj, &mut tools.decls)?;
    let has_decls = !tools.decls.is_empty();
    let mut tool_list = Vec::new();
    if has_decls {
        tool_list.push(object([(
            "functionDeclarations",
            Value::Array(tools.decls),
        )]));
    }
    if tools.search {
        tool_list.push(json!({"googleSearch": {}}));
    }
    if tools.code || (opts.code_execution && !has_decls) {
        tool_list.push(json!({"codeExecution": {}}));
    }
    if tools.url
        || (opts.url_context
            && opts
                .url_context_models
                .iter()
                .any(|m| m == model || m == head.client_model))
    {
        tool_list.push(json!({"urlContext": {}}));
    }

    // Safety settings.
    let safety = match google_field(google, "safety_settings", "safetySettings").or_else(|| {
        opt(obj, "safety_settings")
            .map(|v| (v, "safety_settings".to_string()))
            .or_else(|| opt(obj, "safetySettings").map(|v| (v, "safetySettings".to_string())))
    }) {
        Some((v @ Value::Array(_), param)) => Safety::Client(copy_bounded(v, &param)?),
        Some((_, param)) => return Err(err(param, "safety settings must be an array")),
        None => match &opts.safety_settings {
            Some(s) => Safety::Configured(s),
            None => Safety::Off,
        },
    };

    // Generation config.
    let mut gc = sampling(obj)?;
    response_format(obj, &mut gc)?;
    modalities(obj, &mut gc)?;
    let thinking = thinking_config(obj, opts, &head.suffix, google)?;
    if !thinking.is_empty() {
        gc.insert("thinkingConfig".into(), Value::Object(thinking));
    }

    let cached = match google_field(google, "cached_content", "cachedContent") {
        None => None,
        Some((Value::String(s), _)) => Some(Value::String(s.clone())),
        Some((_, param)) => return Err(err(param, "cached content must be a string")),
    };

    Ok(Members {
        tools: tool_list,
        tool_config: tool_config.filter(|_| has_decls),
        safety,
        gc,
        cached,
    })
}

/// A JSON object from owned members; unlike `json!`, which re-serializes
/// interpolated values, this moves them.
fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(
        members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// Shorthand for [`TranslateError::new`].
fn err(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// A field that is present and not `null`.
fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `Some(s)` for a non-empty string.
fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// At most 64 characters of client text, for error messages.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Copy client JSON into the body, refusing absurdly deep values.
fn copy_bounded(v: &Value, param: &str) -> Result<Value, TranslateError> {
    if depth_within(v, MAX_COPY_DEPTH) {
        Ok(v.clone())
    } else {
        Err(err(param, "value is nested too deeply"))
    }
}

// ---------------------------------------------------------------------------
// Model suffixes

/// A client model name split into the Gemini model and derived options.
struct Suffixes<'a> {
    /// The model to call.
    base: &'a str,
    /// `-search` was present.
    search: bool,
    /// `Some(true)` for `-thinking`, `Some(false)` for `-non-thinking`.
    thinking: Option<bool>,
}

/// Strip `-search`, `-thinking` and `-non-thinking` in any order and
/// combination; the outermost thinking suffix wins.
fn split_suffixes(name: &str) -> Suffixes<'_> {
    let mut s = Suffixes {
        base: name,
        search: false,
        thinking: None,
    };
    loop {
        let strip = |suffix: &str| s.base.strip_suffix(suffix).filter(|b| !b.is_empty());
        if let Some(b) = strip("-non-thinking") {
            s.thinking.get_or_insert(false);
            s.base = b;
        } else if let Some(b) = strip("-thinking") {
            s.thinking.get_or_insert(true);
            s.base = b;
        } else if let Some(b) = strip("-search") {
            s.search = true;
            s.base = b;
        } else {
            return s;
        }
    }
}

// ---------------------------------------------------------------------------
// extra_body.google

/// The Gemini extension object: `extra_body.google`, else top-level
/// `google`, with the param prefix used in errors.
struct Google<'a> {
    /// The object, if the client sent one.
    map: Option<&'a Map<String, Value>>,
    /// `extra_body.google` or `google`.
    prefix: &'static str,
}

/// Find the Gemini extension object.
fn google_extension(obj: &Map<String, Value>) -> Result<Google<'_>, TranslateError> {
    let nested = match opt(obj, "extra_body") {
        None => None,
        Some(Value::Object(eb)) => opt(eb, "google"),
        Some(_) => return Err(err("extra_body", "`extra_body` must be an object")),
    };
    let (v, prefix) = match nested {
        Some(v) => (Some(v), "extra_body.google"),
        None => (opt(obj, "google"), "google"),
    };
    match v {
        None => Ok(Google { map: None, prefix }),
        Some(Value::Object(m)) => Ok(Google {
            map: Some(m),
            prefix,
        }),
        Some(_) => Err(err(prefix, format!("`{prefix}` must be an object"))),
    }
}

/// A field of the extension object under its snake or camel name, with the
/// param to name in errors.
fn google_field<'a>(g: &Google<'a>, snake: &str, camel: &str) -> Option<(&'a Value, String)> {
    let m = g.map?;
    opt(m, snake)
        .map(|v| (v, format!("{}.{snake}", g.prefix)))
        .or_else(|| opt(m, camel).map(|v| (v, format!("{}.{camel}", g.prefix))))
}

// ---------------------------------------------------------------------------
// Fast path

/// A translated chat request ready to send: the Gemini body serialized.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedCall {
    /// Gemini model id to call (see [`GeminiCall::model`]).
    pub model: String,
    /// Model name echoed back to the client.
    pub client_model: String,
    /// `stream: true` was requested.
    pub stream: bool,
    /// `stream_options.include_usage` was true.
    pub include_usage: bool,
    /// The Gemini `generateContent` request body, as JSON bytes.
    pub body: Vec<u8>,
}

impl From<GeminiCall> for PreparedCall {
    fn from(c: GeminiCall) -> Self {
        PreparedCall {
            body: serde_json::to_vec(&c.body).unwrap_or_default(),
            model: c.model,
            client_model: c.client_model,
            stream: c.stream,
            include_usage: c.include_usage,
        }
    }
}

/// Translate a request straight from its bytes when it is a plain-text
/// conversation (system, developer, user and assistant messages whose
/// `content` is a string, or `null` for the assistant): the messages are
/// read as borrowed strings and written into the body without building
/// `serde_json::Value` trees for them; every other member goes through the
/// same code as [`translate_request`].
///
/// `None` means "use [`translate_request`]": other message shapes, and every
/// request that is invalid (so the error comes from one place). When it
/// answers, the answer equals `translate_request` on the parsed bytes with
/// the body serialized by `serde_json::to_vec` (tests hold it to that).
pub fn translate_request_fast(raw: &[u8], opts: &Options) -> Option<PreparedCall> {
    fast::translate(raw, opts)
}
