//! OpenAI Chat Completions request → Gemini `generateContent` request.
//!
//! Owns the public entry points [`prepare_request`] (the Gemini body as
//! bytes, what the handler sends) and [`translate_request`] (the same body
//! as a `Value`, for tests and tools), the calls they produce
//! ([`PreparedCall`], [`GeminiCall`]), both from one translation that builds
//! the typed request of [`crate::gemini::types`] and serializes it once;
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
//!
//! Pure: JSON in, JSON out, never panics.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::schema::depth_within;
use super::{Options, TranslateError, bare_model};
use crate::gemini::types::{
    Content, GenerateContentRequest, GenerationConfig, SafetySetting, Tool,
};

mod generation;
mod messages;
mod thinking;
mod tools;

#[cfg(test)]
mod tests;

use generation::{modalities, response_format, sampling};
use messages::convert_messages;
pub use messages::gemini_file_uri;
pub(crate) use thinking::model_thinks;
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

/// The Gemini call that one OpenAI chat request becomes, with the body as
/// a `Value` (see [`translate_request`]).
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
    /// `parallel_tool_calls: false`: Gemini cannot be told, so the answer
    /// keeps only the first function call of the turn.
    pub one_call: bool,
    /// The Gemini `generateContent` request body, as JSON bytes.
    pub body: Vec<u8>,
}

/// Translate an OpenAI `/v1/chat/completions` request body into the Gemini
/// `generateContent` call it stands for, the body serialized once from the
/// typed request.
///
/// Client mistakes come back as a [`TranslateError`] naming the OpenAI
/// field (`messages[2].content`, `temperature`, …). Never panics.
pub fn prepare_request(req: &Value, opts: &Options) -> Result<PreparedCall, TranslateError> {
    let (head, body) = translate(req, opts)?;
    // Room for the default safety settings and a short conversation.
    let mut bytes = Vec::with_capacity(1024);
    serde_json::to_writer(&mut bytes, &body)
        .map_err(|_| err("body", "the request cannot be serialized"))?;
    Ok(PreparedCall {
        model: head.suffix.base.to_string(),
        client_model: head.client_model.to_string(),
        stream: head.stream,
        include_usage: head.include_usage,
        one_call: head.one_call,
        body: bytes,
    })
}

/// [`prepare_request`] with the body as a `Value` (tests, tools).
pub fn translate_request(req: &Value, opts: &Options) -> Result<GeminiCall, TranslateError> {
    let (head, body) = translate(req, opts)?;
    let body =
        serde_json::to_value(&body).map_err(|_| err("body", "the request cannot be serialized"))?;
    Ok(GeminiCall {
        model: head.suffix.base.to_string(),
        client_model: head.client_model.to_string(),
        stream: head.stream,
        include_usage: head.include_usage,
        body,
    })
}

/// The translation: the request's switches and the typed Gemini body.
fn translate<'a>(
    req: &'a Value,
    opts: &'a Options,
) -> Result<(Head<'a>, GenerateContentRequest<'a>), TranslateError> {
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

    let mut body = GenerateContentRequest::default();
    if conv.contents.is_empty() {
        if conv.system.is_empty() {
            return Err(err("messages", "no message has any content"));
        }
        // Only a system prompt: send it as the user turn Gemini requires.
        body.contents = vec![Content {
            parts: conv.system,
            role: Some("user".into()),
            ..Content::default()
        }];
    } else {
        if !conv.system.is_empty() {
            body.system_instruction = Some(Content {
                parts: conv.system,
                ..Content::default()
            });
        }
        body.contents = conv.contents;
    }

    let m = members(obj, opts, &head)?;
    body.tools = m.tools;
    body.tool_config = m.tool_config;
    match m.safety {
        // The default list is a constant: written from bytes serialized once.
        None => match safety_off_raw() {
            Some(raw) => body
                .extra
                .0
                .push((Cow::Borrowed("safetySettings"), Cow::Borrowed(raw))),
            None => body.safety_settings = Some(safety_off()),
        },
        Some(list) => body.safety_settings = Some(list),
    }
    body.generation_config = (!m.gc.is_empty()).then(|| Box::new(m.gc));
    body.cached_content = m.cached;
    Ok((head, body))
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
    /// `parallel_tool_calls: false`.
    one_call: bool,
    /// `extra_body.google` / `google`.
    google: Google<'a>,
}

/// Validate `model`, `stream`, `stream_options`, `parallel_tool_calls` and
/// the Gemini extension.
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
    let one_call = match opt(obj, "parallel_tool_calls") {
        None => false,
        Some(Value::Bool(b)) => !*b,
        Some(_) => {
            return Err(err(
                "parallel_tool_calls",
                "`parallel_tool_calls` must be a boolean",
            ));
        }
    };
    Ok(Head {
        client_model,
        suffix: split_suffixes(client_model),
        stream,
        include_usage,
        one_call,
        google: google_extension(obj)?,
    })
}

/// The default `safetySettings`: every category `OFF`.
fn safety_off() -> Vec<SafetySetting<'static>> {
    SAFETY_CATEGORIES
        .iter()
        .map(|c| SafetySetting {
            category: Some(Cow::Borrowed(*c)),
            threshold: Some(Cow::Borrowed("OFF")),
            ..SafetySetting::default()
        })
        .collect()
}

/// [`safety_off`] serialized, once.
fn safety_off_raw() -> Option<&'static RawValue> {
    static OFF: OnceLock<Option<Box<RawValue>>> = OnceLock::new();
    OFF.get_or_init(|| serde_json::value::to_raw_value(&safety_off()).ok())
        .as_deref()
}

/// Safety settings from client JSON (an array): each object's `category`
/// and `threshold` strings, anything else in it kept as given; an element
/// that is not an object is an error naming `param`.
fn safety_from<'a>(v: &'a Value, param: &str) -> Result<Vec<SafetySetting<'a>>, TranslateError> {
    let Value::Array(items) = v else {
        return Err(err(param, "safety settings must be an array"));
    };
    if !depth_within(v, MAX_COPY_DEPTH) {
        return Err(err(param, "value is nested too deeply"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) => Ok(safety_setting(m)),
            _ => Err(err(param, "each safety setting must be an object")),
        })
        .collect()
}

/// The configured `SAFETY_SETTINGS` (an array, checked at startup): its
/// objects as [`safety_from`] reads them; other elements are left out.
fn safety_configured(v: &Value) -> Vec<SafetySetting<'_>> {
    let items = v.as_array().map_or(&[][..], Vec::as_slice);
    items
        .iter()
        .filter_map(Value::as_object)
        .map(safety_setting)
        .collect()
}

/// One safety setting object.
fn safety_setting(m: &Map<String, Value>) -> SafetySetting<'_> {
    let mut s = SafetySetting::default();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("category", Value::String(c)) => s.category = Some(c.as_str().into()),
            ("threshold", Value::String(t)) => s.threshold = Some(t.as_str().into()),
            _ => s.extra.insert(k.as_str(), v),
        }
    }
    s
}

/// The body members that do not depend on the messages.
struct Members<'a> {
    /// `tools` (empty: absent).
    tools: Vec<Tool<'a>>,
    /// `toolConfig`, only with function declarations.
    tool_config: Option<crate::gemini::types::ToolConfig<'a>>,
    /// `safetySettings`: the client's or the configured ones; `None` for
    /// the default, every category `OFF`.
    safety: Option<Vec<SafetySetting<'a>>>,
    /// `generationConfig` (default: absent).
    gc: GenerationConfig<'a>,
    /// `cachedContent`.
    cached: Option<Cow<'a, str>>,
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
    let empty = || Some(Value::Object(Map::new()));
    let mut tool_list = Vec::new();
    if has_decls {
        tool_list.push(Tool {
            function_declarations: tools.decls,
            ..Tool::default()
        });
    }
    if tools.search {
        tool_list.push(Tool {
            google_search: empty(),
            ..Tool::default()
        });
    }
    if tools.code || (opts.code_execution && !has_decls) {
        tool_list.push(Tool {
            code_execution: empty(),
            ..Tool::default()
        });
    }
    if tools.url
        || (opts.url_context
            && opts
                .url_context_models
                .iter()
                .any(|m| m == model || m == head.client_model))
    {
        tool_list.push(Tool {
            url_context: empty(),
            ..Tool::default()
        });
    }

    // Safety settings.
    let safety = match google_field(google, "safety_settings", "safetySettings").or_else(|| {
        opt(obj, "safety_settings")
            .map(|v| (v, "safety_settings".to_string()))
            .or_else(|| opt(obj, "safetySettings").map(|v| (v, "safetySettings".to_string())))
    }) {
        Some((v, param)) => Some(safety_from(v, &param)?),
        None => opts.safety_settings.as_ref().map(safety_configured),
    };

    // Generation config.
    let mut gc = sampling(obj)?;
    response_format(obj, &mut gc)?;
    modalities(obj, &mut gc)?;
    let thinking = thinking_config(obj, opts, &head.suffix, google)?;
    if !thinking.is_empty() {
        gc.thinking_config = Some(thinking);
    }

    let cached = match google_field(google, "cached_content", "cachedContent") {
        None => None,
        Some((Value::String(s), _)) => Some(Cow::Borrowed(s.as_str())),
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
