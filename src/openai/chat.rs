//! OpenAI Chat Completions request → Gemini `generateContent` request.
//!
//! Owns [`translate_request`] and [`GeminiCall`]: validation of the client's
//! request (errors name the offending OpenAI field), message conversion
//! (system prompt, user/assistant turns, tool calls with thought signatures,
//! tool results), sampling parameters, structured output, tools and
//! `tool_choice`, model-name suffixes (`-search`, `-thinking`,
//! `-non-thinking`), thinking configuration, safety settings and the
//! `extra_body.google` extension. Pure: JSON in, JSON out, never panics.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::schema::{clean_schema, depth_within};
use super::{Options, TranslateError, bare_model};

/// Most messages accepted in one request.
const MAX_MESSAGES: usize = 10_000;
/// Most content parts (or tool calls) accepted in one message.
const MAX_PARTS: usize = 1_000;
/// Most tools accepted in one request.
const MAX_TOOLS: usize = 1_000;
/// Deepest client JSON copied verbatim into the Gemini body.
const MAX_COPY_DEPTH: usize = 64;
/// Signature sentinel Gemini 3 accepts when the real one was lost.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";
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
// Messages

/// Converted messages.
struct Converted {
    /// `systemInstruction` parts.
    system: Vec<Value>,
    /// Gemini `contents`.
    contents: Vec<Value>,
}

/// Append parts to the conversation, merging with the previous content when
/// the role is the same and skipping empty turns.
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, existing)) if *r == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}

/// Convert every message, in order.
fn convert_messages(messages: &[Value], model: &str) -> Result<Converted, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut call_names: HashMap<&str, &str> = HashMap::new();

    for (i, msg) in messages.iter().enumerate() {
        let m = msg
            .as_object()
            .ok_or_else(|| err(format!("messages[{i}]"), "each message must be an object"))?;
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                content_parts(m.get("content"), i, false, true, &mut system)?;
            }
            "user" => {
                let mut parts = Vec::new();
                content_parts(m.get("content"), i, false, false, &mut parts)?;
                push_turn(&mut turns, "user", parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                content_parts(m.get("content"), i, true, false, &mut parts)?;
                if parts.is_empty()
                    && let Some(Value::String(r)) = m.get("refusal")
                    && !r.is_empty()
                {
                    parts.push(json!({"text": r}));
                }
                assistant_calls(m, i, &mut call_names, &mut parts)?;
                push_turn(&mut turns, "model", parts);
            }
            "tool" | "function" => {
                let name = if role == "tool" {
                    let by_id = m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .and_then(|id| call_names.get(id).copied());
                    by_id
                        .or_else(|| non_empty_str(m.get("name")))
                        .ok_or_else(|| {
                            err(
                                format!("messages[{i}].tool_call_id"),
                                "`tool_call_id` does not match any earlier assistant tool call",
                            )
                        })?
                } else {
                    non_empty_str(m.get("name")).ok_or_else(|| {
                        err(
                            format!("messages[{i}].name"),
                            "function messages need a `name`",
                        )
                    })?
                };
                let text = tool_text(m.get("content"), i)?;
                let part = object([(
                    "functionResponse",
                    object([
                        ("name", Value::from(name)),
                        ("response", tool_response(&text)),
                    ]),
                )]);
                push_turn(&mut turns, "user", vec![part]);
            }
            _ => {
                return Err(err(
                    format!("messages[{i}].role"),
                    "`role` must be one of system, developer, user, assistant, tool, function",
                ));
            }
        }
    }

    let gemini3 = model.starts_with("gemini-3");
    let contents = turns
        .into_iter()
        .map(|(role, mut parts)| {
            if gemini3
                && role == "model"
                && let Some(Value::Object(first)) =
                    parts.iter_mut().find(|p| p.get("functionCall").is_some())
                && !first.contains_key("thoughtSignature")
            {
                first.insert("thoughtSignature".into(), Value::from(SKIP_SIGNATURE));
            }
            object([("role", Value::from(role)), ("parts", Value::Array(parts))])
        })
        .collect();
    Ok(Converted { system, contents })
}

/// `Some(s)` for a non-empty string.
fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Convert a message `content` into Gemini parts appended to `out`.
fn content_parts(
    content: Option<&Value>,
    i: usize,
    null_ok: bool,
    text_only: bool,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    match content {
        None | Some(Value::Null) if null_ok => Ok(()),
        Some(Value::String(s)) => {
            if !s.is_empty() {
                out.push(json!({"text": s}));
            }
            Ok(())
        }
        Some(Value::Array(parts)) => {
            if parts.len() > MAX_PARTS {
                return Err(err(
                    format!("messages[{i}].content"),
                    format!("too many content parts (at most {MAX_PARTS})"),
                ));
            }
            for (j, p) in parts.iter().enumerate() {
                if let Some(part) = convert_part(p, i, j, text_only)? {
                    out.push(part);
                }
            }
            Ok(())
        }
        _ => Err(err(
            format!("messages[{i}].content"),
            if null_ok {
                "`content` must be a string, an array of content parts or null"
            } else {
                "`content` must be a string or an array of content parts"
            },
        )),
    }
}

/// Convert one OpenAI content part; `None` for parts that carry nothing.
fn convert_part(
    p: &Value,
    i: usize,
    j: usize,
    text_only: bool,
) -> Result<Option<Value>, TranslateError> {
    let at = || format!("messages[{i}].content[{j}]");
    let obj = p
        .as_object()
        .ok_or_else(|| err(at(), "each content part must be an object"))?;
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None if obj.contains_key("text") => "text",
        _ => return Err(err(at(), "content part `type` must be a string")),
    };
    if text_only && !matches!(ty, "text" | "refusal") {
        return Err(err(at(), "only text parts are allowed in this message"));
    }
    match ty {
        "text" | "refusal" => match obj.get(ty) {
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(json!({"text": s}))),
            _ => Err(err(
                format!("{}.{ty}", at()),
                format!("`{ty}` must be a string"),
            )),
        },
        "image_url" => {
            let param = format!("{}.image_url", at());
            let url = match obj.get("image_url") {
                Some(Value::String(s)) => s.as_str(),
                Some(Value::Object(o)) => match o.get("url") {
                    Some(Value::String(s)) => s.as_str(),
                    _ => return Err(err(param, "`image_url.url` must be a string")),
                },
                _ => return Err(err(param, "`image_url` must be an object with a `url`")),
            };
            url_part(url, i, &param).map(Some)
        }
        "input_audio" => {
            let param = format!("{}.input_audio", at());
            let Some(Value::Object(a)) = obj.get("input_audio") else {
                return Err(err(param, "`input_audio` must be an object"));
            };
            let data = a
                .get("data")
                .and_then(Value::as_str)
                .filter(|d| is_base64(d))
                .ok_or_else(|| err(param.as_str(), "`input_audio.data` must be base64"))?;
            let format = a
                .get("format")
                .and_then(Value::as_str)
                .filter(|f| {
                    !f.is_empty()
                        && f.len() <= 32
                        && f.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
                })
                .ok_or_else(|| {
                    err(
                        param.as_str(),
                        "`input_audio.format` must be a format name like wav or mp3",
                    )
                })?;
            let mime = format!("audio/{}", format.to_ascii_lowercase());
            Ok(Some(inline(&mime, data)))
        }
        "file" => {
            let param = format!("{}.file", at());
            let Some(Value::Object(f)) = obj.get("file") else {
                return Err(err(param, "`file` must be an object"));
            };
            match f.get("file_data") {
                Some(Value::String(d)) => {
                    if let Some((mime, data)) = parse_data_url(d) {
                        return Ok(Some(inline(mime, data)));
                    }
                    let guessed = f
                        .get("filename")
                        .and_then(Value::as_str)
                        .and_then(mime_from_path);
                    match guessed {
                        Some(mime) if is_base64(d) => Ok(Some(inline(mime, d))),
                        _ => Err(err(
                            param,
                            format!("invalid data URL in `file.file_data` of message {i}"),
                        )),
                    }
                }
                _ if f.contains_key("file_id") => Err(err(
                    param,
                    "`file_id` is not supported; send the file inline as `file_data`",
                )),
                _ => Err(err(param, "`file.file_data` must be a data URL")),
            }
        }
        other => Err(err(
            at(),
            format!("unsupported content part type `{}`", clip(other)),
        )),
    }
}

/// An `inlineData` part.
fn inline(mime: &str, data: &str) -> Value {
    json!({"inlineData": {"mimeType": mime, "data": data}})
}

/// A URL (data or http(s)) as a Gemini part; errors name message `i`.
fn url_part(url: &str, i: usize, param: &str) -> Result<Value, TranslateError> {
    if starts_with_ci(url, "data:") {
        return match parse_data_url(url) {
            Some((mime, data)) => Ok(inline(mime, data)),
            None => Err(err(
                param,
                format!(
                    "invalid data URL in the image of message {i} (expected data:<mime>;base64,<data>)"
                ),
            )),
        };
    }
    if starts_with_ci(url, "http://") || starts_with_ci(url, "https://") {
        let mime = mime_from_path(url).unwrap_or("image/jpeg");
        return Ok(json!({"fileData": {"fileUri": url, "mimeType": mime}}));
    }
    Err(err(
        param,
        format!("invalid image URL in message {i} (expected a data: or http(s) URL)"),
    ))
}

/// ASCII case-insensitive prefix test that never slices inside a character.
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Split `data:<mime>[;params];base64,<data>`; `None` unless well formed with
/// base64 data.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    if !starts_with_ci(url, "data:") {
        return None;
    }
    let (header, data) = url.get(5..)?.split_once(',')?;
    let marker = header.len().checked_sub(7)?;
    if !header.get(marker..)?.eq_ignore_ascii_case(";base64") {
        return None;
    }
    let mime = header.split(';').next().unwrap_or("");
    if !mime.contains('/') || !is_base64(data) {
        return None;
    }
    Some((mime, data))
}

/// Cheap check for (standard or URL-safe) base64 text.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// Guess a MIME type from the extension of a URL or file name.
fn mime_from_path(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let file = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = file.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        _ => return None,
    })
}

/// Convert an assistant message's `tool_calls` / `function_call` into
/// `functionCall` parts, remembering id → name for later tool messages.
fn assistant_calls<'a>(
    m: &'a Map<String, Value>,
    i: usize,
    call_names: &mut HashMap<&'a str, &'a str>,
    parts: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    match opt(m, "tool_calls") {
        None => {}
        Some(Value::Array(calls)) => {
            if calls.len() > MAX_PARTS {
                return Err(err(
                    format!("messages[{i}].tool_calls"),
                    format!("too many tool calls (at most {MAX_PARTS})"),
                ));
            }
            for (k, call) in calls.iter().enumerate() {
                let at = format!("messages[{i}].tool_calls[{k}]");
                let c = call
                    .as_object()
                    .ok_or_else(|| err(at.as_str(), "each tool call must be an object"))?;
                if let Some(t) = opt(c, "type")
                    && t.as_str() != Some("function")
                {
                    return Err(err(
                        format!("{at}.type"),
                        "only `function` tool calls are supported",
                    ));
                }
                let Some(Value::Object(f)) = c.get("function") else {
                    return Err(err(
                        format!("{at}.function"),
                        "`function` must be an object",
                    ));
                };
                let (name, args) = function_call(f, &format!("{at}.function"))?;
                let id = c.get("id").and_then(Value::as_str);
                if let Some(id) = id {
                    call_names.insert(id, name);
                }
                let signature = id
                    .and_then(|id| id.split_once("_ts_"))
                    .map(|(_, sig)| sig)
                    .filter(|sig| !sig.is_empty())
                    .or_else(|| {
                        c.get("extra_content")
                            .and_then(|e| e.get("google"))
                            .and_then(|g| g.get("thought_signature"))
                            .and_then(Value::as_str)
                            .filter(|sig| !sig.is_empty())
                    });
                let mut part = Map::new();
                part.insert(
                    "functionCall".into(),
                    object([("name", Value::from(name)), ("args", args)]),
                );
                if let Some(sig) = signature {
                    part.insert("thoughtSignature".into(), Value::from(sig));
                }
                parts.push(Value::Object(part));
            }
        }
        Some(_) => {
            return Err(err(
                format!("messages[{i}].tool_calls"),
                "`tool_calls` must be an array",
            ));
        }
    }
    match opt(m, "function_call") {
        None => {}
        Some(Value::Object(f)) => {
            let (name, args) = function_call(f, &format!("messages[{i}].function_call"))?;
            parts.push(object([(
                "functionCall",
                object([("name", Value::from(name)), ("args", args)]),
            )]));
        }
        Some(_) => {
            return Err(err(
                format!("messages[{i}].function_call"),
                "`function_call` must be an object",
            ));
        }
    }
    Ok(())
}

/// The name and parsed arguments of a `function` object (`at` is its param
/// path, e.g. `messages[1].tool_calls[0].function`).
fn function_call<'a>(
    f: &'a Map<String, Value>,
    at: &str,
) -> Result<(&'a str, Value), TranslateError> {
    let name = non_empty_str(f.get("name"))
        .ok_or_else(|| err(format!("{at}.name"), "`name` must be a non-empty string"))?;
    let param = || format!("{at}.arguments");
    let args = match f.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(err(
                    param(),
                    "`arguments` must be a JSON object encoded as a string",
                ));
            }
        },
        Some(v @ Value::Object(_)) => copy_bounded(v, &param())?,
        Some(_) => {
            return Err(err(
                param(),
                "`arguments` must be a JSON object encoded as a string",
            ));
        }
    };
    Ok((name, args))
}

/// The text of a tool message: a string or text parts joined.
fn tool_text(content: Option<&Value>, i: usize) -> Result<Cow<'_, str>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Cow::Borrowed("")),
        Some(Value::String(s)) => Ok(Cow::Borrowed(s)),
        Some(Value::Array(parts)) => {
            if parts.len() > MAX_PARTS {
                return Err(err(
                    format!("messages[{i}].content"),
                    format!("too many content parts (at most {MAX_PARTS})"),
                ));
            }
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("text") {
                    Some(Value::String(s)) => text.push_str(s),
                    _ => {
                        return Err(err(
                            format!("messages[{i}].content[{j}]"),
                            "tool message parts must be text parts",
                        ));
                    }
                }
            }
            Ok(Cow::Owned(text))
        }
        Some(_) => Err(err(
            format!("messages[{i}].content"),
            "`content` must be a string or an array of text parts",
        )),
    }
}

/// A tool result as a Gemini `functionResponse.response` object.
fn tool_response(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => object([("result", v)]),
        Err(_) => json!({"result": text}),
    }
}

// ---------------------------------------------------------------------------
// Sampling, response format, modalities

/// A number field copied as sent.
fn number_field(obj: &Map<String, Value>, key: &str) -> Result<Option<Value>, TranslateError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => Ok(Some(v.clone())),
        Some(_) => Err(err(key, format!("`{key}` must be a number"))),
    }
}

/// An integer field (integral floats accepted) that must be `>= min`.
fn int_field(obj: &Map<String, Value>, key: &str, min: i64) -> Result<Option<i64>, TranslateError> {
    let Some(v) = opt(obj, key) else {
        return Ok(None);
    };
    v.as_i64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .filter(|n| *n >= min)
        .map(Some)
        .ok_or_else(|| {
            err(
                key,
                if min > i64::MIN {
                    format!("`{key}` must be an integer >= {min}")
                } else {
                    format!("`{key}` must be an integer")
                },
            )
        })
}

/// Sampling parameters → `generationConfig` entries.
fn sampling(obj: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    let mut gc = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = number_field(obj, from)? {
            gc.insert(to.into(), v);
        }
    }
    if let Some(k) = int_field(obj, "top_k", 0)? {
        gc.insert("topK".into(), k.into());
    }
    if let Some(n) = int_field(obj, "n", 1)? {
        gc.insert("candidateCount".into(), n.into());
    }
    let max_completion = int_field(obj, "max_completion_tokens", 1)?;
    let max_tokens = int_field(obj, "max_tokens", 1)?;
    if let Some(m) = max_completion.or(max_tokens) {
        gc.insert("maxOutputTokens".into(), m.into());
    }
    if let Some(seed) = int_field(obj, "seed", i64::MIN)? {
        gc.insert("seed".into(), seed.into());
    }
    match opt(obj, "stop") {
        None => {}
        Some(Value::String(s)) => {
            gc.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            gc.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        Some(_) => {
            return Err(err(
                "stop",
                "`stop` must be a string or an array of strings",
            ));
        }
    }
    match opt(obj, "logprobs") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            gc.insert("responseLogprobs".into(), Value::Bool(true));
        }
        Some(_) => return Err(err("logprobs", "`logprobs` must be a boolean")),
    }
    if let Some(n) = int_field(obj, "top_logprobs", 0)? {
        gc.insert("logprobs".into(), n.into());
    }
    Ok(gc)
}

/// `response_format` → `responseMimeType` / `responseJsonSchema`.
fn response_format(
    obj: &Map<String, Value>,
    gc: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let Some(rf) = opt(obj, "response_format") else {
        return Ok(());
    };
    let Value::Object(rf) = rf else {
        return Err(err(
            "response_format",
            "`response_format` must be an object",
        ));
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            gc.insert("responseMimeType".into(), Value::from("application/json"));
        }
        Some("json_schema") => {
            gc.insert("responseMimeType".into(), Value::from("application/json"));
            let schema = match opt(rf, "json_schema") {
                None => None,
                Some(Value::Object(js)) => opt(js, "schema"),
                Some(_) => {
                    return Err(err(
                        "response_format.json_schema",
                        "`json_schema` must be an object",
                    ));
                }
            };
            match schema {
                None => {}
                Some(s @ Value::Object(_)) => {
                    let mut s = copy_bounded(s, "response_format.json_schema.schema")?;
                    if let Value::Object(m) = &mut s {
                        m.remove("$schema");
                    }
                    gc.insert("responseJsonSchema".into(), s);
                }
                Some(_) => {
                    return Err(err(
                        "response_format.json_schema.schema",
                        "`schema` must be an object",
                    ));
                }
            }
        }
        _ => {
            return Err(err(
                "response_format.type",
                "`response_format.type` must be text, json_object or json_schema",
            ));
        }
    }
    Ok(())
}

/// `modalities` with image or audio → `responseModalities`.
fn modalities(obj: &Map<String, Value>, gc: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let Some(v) = opt(obj, "modalities") else {
        return Ok(());
    };
    let list = match v {
        Value::Array(a) if a.len() <= 8 => {
            a.iter().map(Value::as_str).collect::<Option<Vec<&str>>>()
        }
        _ => None,
    }
    .ok_or_else(|| err("modalities", "`modalities` must be an array of strings"))?;
    if list
        .iter()
        .any(|m| m.eq_ignore_ascii_case("image") || m.eq_ignore_ascii_case("audio"))
    {
        let upper = list
            .iter()
            .map(|m| Value::from(m.to_ascii_uppercase()))
            .collect();
        gc.insert("responseModalities".into(), Value::Array(upper));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Thinking

/// Thinking budget for a `reasoning_effort` value.
fn effort_budget(effort: &str) -> Option<i64> {
    Some(match effort {
        "none" => 0,
        "minimal" | "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        "xhigh" | "max" => 32768,
        _ => return None,
    })
}

/// Whether a model thinks (Gemini 2.5 and later, `*thinking*` models, and
/// anything named in `THINKING_MODELS` or `THINKING_BUDGET_MAP`). Older,
/// image, speech, embedding and Gemma models do not.
fn model_thinks(base: &str, opts: &Options) -> bool {
    if opts.thinking_models.iter().any(|m| bare_model(m) == base)
        || opts.thinking_budget_map.iter().any(|(m, _)| m == base)
    {
        return true;
    }
    let b: Cow<str> = if base.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(base.to_ascii_lowercase())
    } else {
        Cow::Borrowed(base)
    };
    // Model names are short: a plain window scan beats building a
    // substring searcher for each needle.
    let has = |needle: &str| {
        b.as_bytes()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    if has("thinking") {
        return true;
    }
    const OLDER: [&str; 9] = [
        "gemini-1",
        "gemini-2.0",
        "gemini-pro",
        "gemma",
        "learnlm",
        "imagen",
        "veo",
        "aqa",
        "text-",
    ];
    const NOT_THINKING: [&str; 5] = ["-image", "-tts", "embedding", "-live", "native-audio"];
    !OLDER.iter().any(|p| b.starts_with(p)) && !NOT_THINKING.iter().any(|p| has(p))
}

/// Build `generationConfig.thinkingConfig` from the model suffix,
/// `reasoning_effort`, the budget map, `show_thinking` and the client's own
/// `thinking_config` (which wins).
fn thinking_config(
    obj: &Map<String, Value>,
    opts: &Options,
    suffix: &Suffixes<'_>,
    google: &Google<'_>,
) -> Result<Map<String, Value>, TranslateError> {
    let effort = match opt(obj, "reasoning_effort") {
        None => None,
        Some(Value::String(e)) => Some(effort_budget(e).ok_or_else(|| {
            err(
                "reasoning_effort",
                "`reasoning_effort` must be one of none, minimal, low, medium, high, xhigh",
            )
        })?),
        Some(_) => {
            return Err(err(
                "reasoning_effort",
                "`reasoning_effort` must be a string",
            ));
        }
    };
    let mapped = opts
        .thinking_budget_map
        .iter()
        .find(|(m, _)| m == suffix.base)
        .map(|(_, b)| *b);
    let budget = match suffix.thinking {
        Some(false) => Some(0),
        Some(true) => Some(mapped.unwrap_or(-1)),
        None => effort.or(mapped),
    };
    let mut tc = Map::new();
    if let Some(b) = budget {
        tc.insert("thinkingBudget".into(), b.into());
    }
    // Thought summaries are asked for by default only from models that
    // think: Gemini refuses a thinking config on the others.
    if suffix.thinking == Some(true)
        || (opts.show_thinking
            && budget != Some(0)
            && (budget.is_some() || model_thinks(suffix.base, opts)))
    {
        tc.insert("includeThoughts".into(), Value::Bool(true));
    }

    if let Some((v, param)) = google_field(google, "thinking_config", "thinkingConfig") {
        let Value::Object(client) = v else {
            return Err(err(param, "thinking config must be an object"));
        };
        let mut set_budget = false;
        let mut set_level = false;
        let mut set_include = false;
        for (k, v) in client {
            let key = match k.as_str() {
                "thinking_budget" | "thinkingBudget" => {
                    set_budget = true;
                    "thinkingBudget"
                }
                "include_thoughts" | "includeThoughts" => {
                    set_include = true;
                    "includeThoughts"
                }
                "thinking_level" | "thinkingLevel" => {
                    set_level = true;
                    "thinkingLevel"
                }
                other => other,
            };
            tc.insert(key.into(), copy_bounded(v, &format!("{param}.{k}"))?);
        }
        if set_level && !set_budget {
            tc.remove("thinkingBudget");
        }
        if set_budget && !set_level {
            tc.remove("thinkingLevel");
        }
        if !set_include && tc.get("thinkingBudget").and_then(Value::as_i64) == Some(0) {
            tc.remove("includeThoughts");
        }
    }
    Ok(tc)
}

// ---------------------------------------------------------------------------
// Tools

/// What the request's `tools` / `functions` asked for.
struct Tools {
    /// Function declarations.
    decls: Vec<Value>,
    /// Built-in Google Search.
    search: bool,
    /// Built-in code execution.
    code: bool,
    /// Built-in URL context.
    url: bool,
}

/// Read `tools` (and legacy `functions`).
fn collect_tools(obj: &Map<String, Value>) -> Result<Tools, TranslateError> {
    let mut t = Tools {
        decls: Vec::new(),
        search: false,
        code: false,
        url: false,
    };
    match opt(obj, "tools") {
        None => {}
        Some(Value::Array(tools)) => {
            if tools.len() > MAX_TOOLS {
                return Err(err(
                    "tools",
                    format!("too many tools (at most {MAX_TOOLS})"),
                ));
            }
            for (k, entry) in tools.iter().enumerate() {
                let at = format!("tools[{k}]");
                let e = entry
                    .as_object()
                    .ok_or_else(|| err(at.as_str(), "each tool must be an object"))?;
                match e.get("type") {
                    Some(Value::String(ty)) => match ty.as_str() {
                        "function" => {
                            let f = match e.get("function") {
                                Some(Value::Object(f)) => f,
                                None if e.contains_key("name") => e,
                                _ => {
                                    return Err(err(
                                        format!("{at}.function"),
                                        "`function` must be an object",
                                    ));
                                }
                            };
                            function_tool(f, &format!("{at}.function"), &mut t)?;
                        }
                        "web_search" | "web_search_preview" | "google_search" | "googleSearch" => {
                            t.search = true;
                        }
                        "code_execution" | "codeExecution" => t.code = true,
                        "url_context" | "urlContext" => t.url = true,
                        other => {
                            return Err(err(
                                format!("{at}.type"),
                                format!("unsupported tool type `{}`", clip(other)),
                            ));
                        }
                    },
                    None => {
                        let mut known = false;
                        if e.contains_key("googleSearch") || e.contains_key("google_search") {
                            t.search = true;
                            known = true;
                        }
                        if e.contains_key("codeExecution") || e.contains_key("code_execution") {
                            t.code = true;
                            known = true;
                        }
                        if e.contains_key("urlContext") || e.contains_key("url_context") {
                            t.url = true;
                            known = true;
                        }
                        if !known {
                            return Err(err(format!("{at}.type"), "tool `type` is required"));
                        }
                    }
                    Some(_) => {
                        return Err(err(format!("{at}.type"), "tool `type` must be a string"));
                    }
                }
            }
        }
        Some(_) => return Err(err("tools", "`tools` must be an array")),
    }
    match opt(obj, "functions") {
        None => {}
        Some(Value::Array(fs)) if fs.len() <= MAX_TOOLS => {
            for (k, f) in fs.iter().enumerate() {
                let at = format!("functions[{k}]");
                let Value::Object(f) = f else {
                    return Err(err(at, "each function must be an object"));
                };
                function_tool(f, &at, &mut t)?;
            }
        }
        Some(_) => return Err(err("functions", "`functions` must be an array")),
    }
    Ok(t)
}

/// One client function: a declaration, or Google Search when so named.
fn function_tool(f: &Map<String, Value>, at: &str, t: &mut Tools) -> Result<(), TranslateError> {
    let name = non_empty_str(f.get("name"))
        .ok_or_else(|| err(format!("{at}.name"), "`name` must be a non-empty string"))?;
    if name == "googleSearch" || name == "google_search" {
        t.search = true;
        return Ok(());
    }
    let mut decl = Map::new();
    decl.insert("name".into(), Value::from(name));
    match opt(f, "description") {
        None => {}
        Some(Value::String(d)) => {
            decl.insert("description".into(), Value::String(d.clone()));
        }
        Some(_) => {
            return Err(err(
                format!("{at}.description"),
                "`description` must be a string",
            ));
        }
    }
    match opt(f, "parameters") {
        None => {}
        Some(p @ Value::Object(_)) => {
            let cleaned = clean_schema(p);
            if cleaned.get("properties").is_some() {
                decl.insert("parameters".into(), cleaned);
            }
        }
        Some(_) => {
            return Err(err(
                format!("{at}.parameters"),
                "`parameters` must be an object",
            ));
        }
    }
    t.decls.push(Value::Object(decl));
    Ok(())
}

/// The function name inside `{"type":"function","function":{"name":X}}`
/// (or the flat `{"name":X}`).
fn choice_name(v: &Value) -> Option<&str> {
    non_empty_str(v.get("function").and_then(|f| f.get("name")))
        .or_else(|| non_empty_str(v.get("name")))
}

/// `tool_choice` (or legacy `function_call`) → `toolConfig`. For
/// `allowed_tools` in `auto` mode the declarations are narrowed instead,
/// since Gemini only takes `allowedFunctionNames` with `ANY`.
fn tool_config(
    obj: &Map<String, Value>,
    decls: &mut Vec<Value>,
) -> Result<Option<Value>, TranslateError> {
    let (choice, param) = match opt(obj, "tool_choice") {
        Some(c) => (c, "tool_choice"),
        None => match opt(obj, "function_call") {
            Some(c) => (c, "function_call"),
            None => return Ok(None),
        },
    };
    let mode = |m: &str| -> Result<Option<Value>, TranslateError> {
        Ok(Some(json!({"functionCallingConfig": {"mode": m}})))
    };
    match choice {
        Value::String(s) => match s.as_str() {
            "none" => mode("NONE"),
            "auto" => mode("AUTO"),
            "required" if param == "tool_choice" => mode("ANY"),
            _ => Err(err(param, format!("unsupported `{param}` value"))),
        },
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str);
            match ty {
                Some("allowed_tools") => {
                    let at = format!("{param}.allowed_tools");
                    let Some(Value::Object(allowed)) = o.get("allowed_tools") else {
                        return Err(err(at, "`allowed_tools` must be an object"));
                    };
                    let required = match opt(allowed, "mode") {
                        None => false,
                        Some(Value::String(m)) if m == "auto" => false,
                        Some(Value::String(m)) if m == "required" => true,
                        Some(_) => {
                            return Err(err(
                                format!("{at}.mode"),
                                "`mode` must be auto or required",
                            ));
                        }
                    };
                    let Some(Value::Array(tools)) = allowed.get("tools") else {
                        return Err(err(format!("{at}.tools"), "`tools` must be an array"));
                    };
                    let mut names = Vec::with_capacity(tools.len());
                    for (k, t) in tools.iter().enumerate() {
                        let name = choice_name(t).ok_or_else(|| {
                            err(
                                format!("{at}.tools[{k}]"),
                                "each allowed tool needs a function name",
                            )
                        })?;
                        names.push(name);
                    }
                    if required {
                        Ok(Some(
                            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}),
                        ))
                    } else {
                        decls.retain(|d| {
                            d.get("name")
                                .and_then(Value::as_str)
                                .is_some_and(|n| names.contains(&n))
                        });
                        if decls.is_empty() {
                            return Err(err(
                                format!("{at}.tools"),
                                "no declared function is among the allowed tools",
                            ));
                        }
                        mode("AUTO")
                    }
                }
                Some("function") | None => {
                    let name = choice_name(choice).ok_or_else(|| {
                        err(
                            format!("{param}.function.name"),
                            "a function name is required",
                        )
                    })?;
                    Ok(Some(
                        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}),
                    ))
                }
                Some(_) => Err(err(
                    format!("{param}.type"),
                    format!("unsupported `{param}` type"),
                )),
            }
        }
        _ => Err(err(
            param,
            format!("`{param}` must be a string or an object"),
        )),
    }
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

mod fast {

    use std::fmt;
    use std::sync::OnceLock;

    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};
    use serde_json::{Map, Value};

    use super::{MAX_MESSAGES, Options, PreparedCall, Safety, head, members};
    use crate::openai::typed::{Obj, S};

    /// A message the fast path understands; any other member sends the
    /// request to the `Value` path.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Msg<'a> {
        #[serde(borrow)]
        role: Option<S<'a>>,
        #[serde(borrow)]
        content: Option<S<'a>>,
        /// Ignored, as on the `Value` path, but parsed (and so validated)
        /// the same way.
        #[serde(rename = "name")]
        _name: Option<Value>,
    }

    /// The request: typed messages, every other member as a `Value`.
    struct Top<'a> {
        messages: Option<Vec<Obj<Msg<'a>>>>,
        rest: Map<String, Value>,
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Top<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Top<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                    let mut top = Top {
                        messages: None,
                        rest: Map::new(),
                    };
                    while let Some(S(key)) = map.next_key::<S<'de>>()? {
                        if key == "messages" {
                            if top.messages.is_some() {
                                return Err(de::Error::custom("duplicate `messages`"));
                            }
                            top.messages = Some(map.next_value()?);
                        } else {
                            let v: Value = map.next_value()?;
                            top.rest.insert(key.into_owned(), v);
                        }
                    }
                    Ok(top)
                }
            }
            d.deserialize_map(V)
        }
    }

    /// `[{"category":…,"threshold":"OFF"},…]` as the `Value` path writes it.
    fn safety_off() -> &'static [u8] {
        static OFF: OnceLock<Vec<u8>> = OnceLock::new();
        OFF.get_or_init(|| serde_json::to_vec(&Safety::Off.into_value()).unwrap_or_default())
    }

    /// `{"parts":[{"text":…},…]` (without the closing brace).
    fn write_parts(out: &mut Vec<u8>, texts: &[&str]) {
        out.extend_from_slice(b"{\"parts\":[");
        for (i, t) in texts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"text\":");
            write_json(out, t);
            out.push(b'}');
        }
        out.push(b']');
    }

    /// Serialize into `out` (writing to a `Vec` cannot fail).
    fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
        let _ = serde_json::to_writer(&mut *out, v);
    }

    /// Write `"key":`, with a comma before every member but the first.
    fn key(out: &mut Vec<u8>, k: &str) {
        if out.len() > 1 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    }

    pub(super) fn translate(raw: &[u8], opts: &Options) -> Option<PreparedCall> {
        let top: Top = serde_json::from_slice(raw).ok()?;
        let messages = top.messages?;
        if messages.is_empty() || messages.len() > MAX_MESSAGES {
            return None;
        }
        let obj = &top.rest;
        let head = head(obj).ok()?;

        let mut system: Vec<&str> = Vec::new();
        let mut turns: Vec<(&'static str, Vec<&str>)> = Vec::new();
        for Obj(m) in &messages {
            let content = m.content.as_ref().map(|S(c)| &**c);
            let (role, text) = match &*m.role.as_ref()?.0 {
                "system" | "developer" => {
                    let t = content?;
                    if !t.is_empty() {
                        system.push(t);
                    }
                    continue;
                }
                "user" => ("user", content?),
                "assistant" => ("model", content.unwrap_or("")),
                _ => return None,
            };
            if text.is_empty() {
                continue;
            }
            match turns.last_mut() {
                Some((r, texts)) if *r == role => texts.push(text),
                _ => turns.push((role, vec![text])),
            }
        }
        if turns.is_empty() && system.is_empty() {
            return None;
        }
        let m = members(obj, opts, &head).ok()?;

        // Members in the (sorted) order `Value` serializes them.
        let mut out = Vec::with_capacity(raw.len() + 512);
        out.push(b'{');
        if let Some(c) = &m.cached {
            key(&mut out, "cachedContent");
            write_json(&mut out, c);
        }
        key(&mut out, "contents");
        out.push(b'[');
        if turns.is_empty() {
            // Only a system prompt: it becomes the user turn.
            write_parts(&mut out, &system);
            out.extend_from_slice(b",\"role\":\"user\"}");
        }
        for (i, (role, texts)) in turns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_parts(&mut out, texts);
            out.extend_from_slice(b",\"role\":\"");
            out.extend_from_slice(role.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.push(b']');
        if !m.gc.is_empty() {
            key(&mut out, "generationConfig");
            write_json(&mut out, &m.gc);
        }
        key(&mut out, "safetySettings");
        match &m.safety {
            Safety::Client(v) => write_json(&mut out, v),
            Safety::Configured(v) => write_json(&mut out, *v),
            Safety::Off => out.extend_from_slice(safety_off()),
        }
        if !turns.is_empty() && !system.is_empty() {
            key(&mut out, "systemInstruction");
            write_parts(&mut out, &system);
            out.push(b'}');
        }
        if let Some(tc) = &m.tool_config {
            key(&mut out, "toolConfig");
            write_json(&mut out, tc);
        }
        if !m.tools.is_empty() {
            key(&mut out, "tools");
            write_json(&mut out, &m.tools);
        }
        out.push(b'}');

        Some(PreparedCall {
            model: head.suffix.base.to_string(),
            client_model: head.client_model.to_string(),
            stream: head.stream,
            include_usage: head.include_usage,
            body: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::testing::{deep_array, dismantle};

    /// Options with nothing switched on (no `includeThoughts`).
    fn plain() -> Options {
        Options {
            show_thinking: false,
            ..Options::default()
        }
    }

    /// A minimal valid request with `extra` fields merged in.
    fn req(extra: Value) -> Value {
        let mut base =
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base
    }

    /// Translate with `opts`, panicking (in tests only) on error.
    fn body_with(r: Value, opts: &Options) -> Value {
        match translate_request(&r, opts) {
            Ok(c) => c.body,
            Err(e) => panic!("unexpected error {e:?} for {r}"),
        }
    }

    /// Translate with [`plain`] options.
    fn body(r: Value) -> Value {
        body_with(r, &plain())
    }

    /// The error param for a request expected to fail.
    fn param_of(r: Value) -> String {
        match translate_request(&r, &plain()) {
            Ok(c) => panic!("expected an error, got {}", c.body),
            Err(e) => e.param.unwrap_or_default(),
        }
    }

    fn default_safety() -> Value {
        json!([
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"},
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "OFF"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "OFF"},
            {"category": "HARM_CATEGORY_CIVIC_INTEGRITY", "threshold": "OFF"}
        ])
    }

    #[test]
    fn minimal_request_whole_body() {
        let p = plain();
        let call = translate_request(&req(json!({})), &p).unwrap();
        assert_eq!(call.model, "gemini-2.5-flash");
        assert_eq!(call.client_model, "gemini-2.5-flash");
        assert!(!call.stream);
        assert!(!call.include_usage);
        assert_eq!(
            call.body,
            json!({
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "safetySettings": default_safety()
            })
        );
    }

    #[test]
    fn reference_example_b1() {
        let r = json!({"model": "gemini-2.5-flash",
         "messages": [
           {"role": "system", "content": "Answer in one sentence."},
           {"role": "user", "content": [
             {"type": "text", "text": "What animal is this, and how is the weather in Oslo?"},
             {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"}}]},
           {"role": "assistant", "content": null, "tool_calls": [
             {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
           {"role": "tool", "tool_call_id": "call_1", "content": "{\"tempC\":4}"}],
         "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": false}, "strict": true}}],
         "tool_choice": "auto", "temperature": 0.7, "top_p": 0.95, "n": 1, "stop": ["\n\n\n"],
         "max_completion_tokens": 1024, "seed": 7, "response_format": {"type": "text"}, "stream": false});
        assert_eq!(
            body(r),
            json!({
              "systemInstruction": {"parts": [{"text": "Answer in one sentence."}]},
              "contents": [
                {"role": "user", "parts": [
                  {"text": "What animal is this, and how is the weather in Oslo?"},
                  {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
                ]},
                {"role": "model", "parts": [
                  {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
                ]},
                {"role": "user", "parts": [
                  {"functionResponse": {"name": "get_weather", "response": {"tempC": 4}}}
                ]}
              ],
              "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
              "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
              "generationConfig": {
                "temperature": 0.7, "topP": 0.95, "candidateCount": 1,
                "maxOutputTokens": 1024, "stopSequences": ["\n\n\n"], "seed": 7
              },
              "safetySettings": default_safety()
            })
        );
    }

    #[test]
    fn validation_errors() {
        let msgs = |m: Value| json!({"model": "gemini-2.5-flash", "messages": m});
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "body"),
            (json!("x"), "body"),
            (json!(null), "body"),
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                json!({"model": 3, "messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                json!({"model": "", "messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                json!({"model": "models/", "messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (json!({"model": "m"}), "messages"),
            (msgs(json!([])), "messages"),
            (msgs(json!({})), "messages"),
            (msgs(json!("hi")), "messages"),
            (msgs(json!([1])), "messages[0]"),
            (msgs(json!([{"content": "x"}])), "messages[0].role"),
            (
                msgs(json!([{"role": "bot", "content": "x"}])),
                "messages[0].role",
            ),
            (
                msgs(json!([{"role": "user", "content": "x"}, {"role": 5}])),
                "messages[1].role",
            ),
            (
                msgs(json!([{"role": "user", "content": 5}])),
                "messages[0].content",
            ),
            (
                msgs(json!([{"role": "user", "content": null}])),
                "messages[0].content",
            ),
            (msgs(json!([{"role": "user"}])), "messages[0].content"),
            (
                msgs(json!([{"role": "system", "content": null}])),
                "messages[0].content",
            ),
            (
                msgs(json!([{"role": "assistant", "content": {"a": 1}}])),
                "messages[0].content",
            ),
            (
                msgs(json!([{"role": "user", "content": [5]}])),
                "messages[0].content[0]",
            ),
            (
                msgs(json!([{"role": "user", "content": [{"type": "video", "video": {}}]}])),
                "messages[0].content[0]",
            ),
            (
                msgs(json!([{"role": "user", "content": [{"type": 1}]}])),
                "messages[0].content[0]",
            ),
            (
                msgs(json!([{"role": "user", "content": [{"type": "text", "text": 1}]}])),
                "messages[0].content[0].text",
            ),
            (
                msgs(
                    json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]),
                ),
                "messages[0].content[0]",
            ),
            (
                msgs(json!([{"role": "tool", "tool_call_id": "nope", "content": "x"}])),
                "messages[0].tool_call_id",
            ),
            (
                msgs(json!([{"role": "tool", "content": "x"}])),
                "messages[0].tool_call_id",
            ),
            (
                msgs(json!([{"role": "tool", "tool_call_id": "c", "name": "f", "content": 5}])),
                "messages[0].content",
            ),
            (
                msgs(
                    json!([{"role": "tool", "tool_call_id": "c", "name": "f", "content": [{"type": "image_url"}]}]),
                ),
                "messages[0].content[0]",
            ),
            (
                msgs(json!([{"role": "function", "content": "x"}])),
                "messages[0].name",
            ),
            (
                msgs(json!([{"role": "assistant", "tool_calls": {}}])),
                "messages[0].tool_calls",
            ),
            (
                msgs(json!([{"role": "assistant", "tool_calls": [1]}])),
                "messages[0].tool_calls[0]",
            ),
            (
                msgs(
                    json!([{"role": "assistant", "tool_calls": [{"type": "custom", "custom": {}}]}]),
                ),
                "messages[0].tool_calls[0].type",
            ),
            (
                msgs(json!([{"role": "assistant", "tool_calls": [{"id": "a"}]}])),
                "messages[0].tool_calls[0].function",
            ),
            (
                msgs(
                    json!([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]),
                ),
                "messages[0].tool_calls[0].function.name",
            ),
            (
                msgs(
                    json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]),
                ),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                msgs(
                    json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}]),
                ),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                msgs(
                    json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}]),
                ),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                msgs(
                    json!([{"role": "assistant", "function_call": {"name": "f", "arguments": "7"}}]),
                ),
                "messages[0].function_call.arguments",
            ),
            (
                msgs(json!([{"role": "assistant", "function_call": "f"}])),
                "messages[0].function_call",
            ),
            (
                msgs(json!([{"role": "assistant", "content": ""}])),
                "messages",
            ),
            (req(json!({"temperature": "hot"})), "temperature"),
            (req(json!({"top_p": true})), "top_p"),
            (req(json!({"top_k": 1.5})), "top_k"),
            (req(json!({"n": 0})), "n"),
            (req(json!({"n": "2"})), "n"),
            (req(json!({"max_tokens": -5})), "max_tokens"),
            (
                req(json!({"max_completion_tokens": "9"})),
                "max_completion_tokens",
            ),
            (req(json!({"presence_penalty": []})), "presence_penalty"),
            (req(json!({"frequency_penalty": {}})), "frequency_penalty"),
            (req(json!({"seed": 1.5})), "seed"),
            (req(json!({"stop": 5})), "stop"),
            (req(json!({"stop": ["a", 1]})), "stop"),
            (req(json!({"logprobs": 1})), "logprobs"),
            (req(json!({"top_logprobs": -1})), "top_logprobs"),
            (req(json!({"stream": "yes"})), "stream"),
            (req(json!({"stream_options": 1})), "stream_options"),
            (
                req(json!({"stream_options": {"include_usage": "y"}})),
                "stream_options.include_usage",
            ),
            (req(json!({"response_format": "json"})), "response_format"),
            (
                req(json!({"response_format": {"type": "yaml"}})),
                "response_format.type",
            ),
            (
                req(json!({"response_format": {"type": "json_schema", "json_schema": 1}})),
                "response_format.json_schema",
            ),
            (
                req(
                    json!({"response_format": {"type": "json_schema", "json_schema": {"schema": true}}}),
                ),
                "response_format.json_schema.schema",
            ),
            (req(json!({"tools": {}})), "tools"),
            (req(json!({"tools": [1]})), "tools[0]"),
            (req(json!({"tools": [{}]})), "tools[0].type"),
            (
                req(json!({"tools": [{"type": "retrieval"}]})),
                "tools[0].type",
            ),
            (
                req(json!({"tools": [{"type": "function"}]})),
                "tools[0].function",
            ),
            (
                req(json!({"tools": [{"type": "function", "function": {}}]})),
                "tools[0].function.name",
            ),
            (
                req(
                    json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}),
                ),
                "tools[0].function.parameters",
            ),
            (
                req(
                    json!({"tools": [{"type": "function", "function": {"name": "f", "description": 1}}]}),
                ),
                "tools[0].function.description",
            ),
            (req(json!({"functions": 1})), "functions"),
            (req(json!({"tool_choice": "sometimes"})), "tool_choice"),
            (req(json!({"tool_choice": 5})), "tool_choice"),
            (
                req(json!({"tool_choice": {"type": "function", "function": {}}})),
                "tool_choice.function.name",
            ),
            (
                req(json!({"tool_choice": {"type": "mystery"}})),
                "tool_choice.type",
            ),
            (
                req(json!({"tool_choice": {"type": "allowed_tools"}})),
                "tool_choice.allowed_tools",
            ),
            (
                req(
                    json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "x", "tools": []}}}),
                ),
                "tool_choice.allowed_tools.mode",
            ),
            (
                req(
                    json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto"}}}),
                ),
                "tool_choice.allowed_tools.tools",
            ),
            (
                req(
                    json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"tools": [{}]}}}),
                ),
                "tool_choice.allowed_tools.tools[0]",
            ),
            (
                req(json!({"reasoning_effort": "extreme"})),
                "reasoning_effort",
            ),
            (req(json!({"reasoning_effort": 3})), "reasoning_effort"),
            (req(json!({"modalities": "image"})), "modalities"),
            (req(json!({"modalities": [1]})), "modalities"),
            (req(json!({"extra_body": 1})), "extra_body"),
            (
                req(json!({"extra_body": {"google": []}})),
                "extra_body.google",
            ),
            (req(json!({"google": "x"})), "google"),
            (
                req(json!({"extra_body": {"google": {"thinking_config": 1}}})),
                "extra_body.google.thinking_config",
            ),
            (
                req(json!({"google": {"thinkingConfig": []}})),
                "google.thinkingConfig",
            ),
            (
                req(json!({"extra_body": {"google": {"cached_content": 1}}})),
                "extra_body.google.cached_content",
            ),
            (
                req(json!({"extra_body": {"google": {"safety_settings": {}}}})),
                "extra_body.google.safety_settings",
            ),
            (req(json!({"safety_settings": "off"})), "safety_settings"),
        ];
        for (r, want) in cases {
            let shown = r.to_string();
            assert_eq!(param_of(r), want, "request: {shown}");
        }
    }

    #[test]
    fn limits_are_errors() {
        let many: Vec<Value> = (0..MAX_MESSAGES + 1)
            .map(|_| json!({"role": "user", "content": "x"}))
            .collect();
        assert_eq!(
            param_of(json!({"model": "m", "messages": many})),
            "messages"
        );
        let parts: Vec<Value> = (0..MAX_PARTS + 1)
            .map(|_| json!({"type": "text", "text": "x"}))
            .collect();
        assert_eq!(
            param_of(json!({"model": "m", "messages": [{"role": "user", "content": parts}]})),
            "messages[0].content"
        );
        let ok_parts: Vec<Value> = (0..MAX_PARTS)
            .map(|_| json!({"type": "text", "text": "x"}))
            .collect();
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": ok_parts}]}));
        assert_eq!(
            b["contents"][0]["parts"].as_array().map(Vec::len),
            Some(MAX_PARTS)
        );
    }

    #[test]
    fn messages_table() {
        // (name, messages, expected systemInstruction (null = absent), expected contents)
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            (
                "system and developer anywhere, in order, one part each",
                json!([
                    {"role": "system", "content": "A"},
                    {"role": "user", "content": "u1"},
                    {"role": "developer", "content": [{"type": "text", "text": "B"}, {"type": "text", "text": "C"}]},
                    {"role": "user", "content": "u2"}
                ]),
                json!({"parts": [{"text": "A"}, {"text": "B"}, {"text": "C"}]}),
                json!([{"role": "user", "parts": [{"text": "u1"}, {"text": "u2"}]}]),
            ),
            (
                "only a system prompt becomes the user turn",
                json!([{"role": "system", "content": "S"}]),
                Value::Null,
                json!([{"role": "user", "parts": [{"text": "S"}]}]),
            ),
            (
                "roles map and consecutive same roles merge",
                json!([
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b", "name": "bob"},
                    {"role": "assistant", "content": "c"},
                    {"role": "assistant", "content": [{"type": "text", "text": "d"}, {"type": "refusal", "refusal": "no"}]},
                    {"role": "user", "content": "e"}
                ]),
                Value::Null,
                json!([
                    {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                    {"role": "model", "parts": [{"text": "c"}, {"text": "d"}, {"text": "no"}]},
                    {"role": "user", "parts": [{"text": "e"}]}
                ]),
            ),
            (
                "empty assistant skipped; neighbours merge",
                json!([
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": null},
                    {"role": "assistant", "content": ""},
                    {"role": "assistant", "content": []},
                    {"role": "user", "content": "b"}
                ]),
                Value::Null,
                json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]),
            ),
            (
                "assistant message-level refusal becomes text",
                json!([
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": null, "refusal": "I can't"}
                ]),
                Value::Null,
                json!([
                    {"role": "user", "parts": [{"text": "a"}]},
                    {"role": "model", "parts": [{"text": "I can't"}]}
                ]),
            ),
            (
                "tool calls after text; tool results merged with following user",
                json!([
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_a", "content": "{\"tempC\":4}"},
                    {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "10:"}, {"type": "text", "text": "42"}]},
                    {"role": "user", "content": "thanks"}
                ]),
                Value::Null,
                json!([
                    {"role": "user", "parts": [{"text": "weather?"}]},
                    {"role": "model", "parts": [
                        {"text": "Checking."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                        {"functionCall": {"name": "get_time", "args": {}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"tempC": 4}}},
                        {"functionResponse": {"name": "get_time", "response": {"result": "10:42"}}},
                        {"text": "thanks"}
                    ]}
                ]),
            ),
            (
                "tool response wrapping: number, array, plain text, empty; name fallback",
                json!([
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": null}}]},
                    {"role": "tool", "tool_call_id": "x", "content": "42"},
                    {"role": "tool", "tool_call_id": "x", "content": "[1,2]"},
                    {"role": "tool", "tool_call_id": "x", "content": "plain words"},
                    {"role": "tool", "tool_call_id": "unknown", "name": "g", "content": null}
                ]),
                Value::Null,
                json!([
                    {"role": "user", "parts": [{"text": "go"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "f", "response": {"result": 42}}},
                        {"functionResponse": {"name": "f", "response": {"result": [1, 2]}}},
                        {"functionResponse": {"name": "f", "response": {"result": "plain words"}}},
                        {"functionResponse": {"name": "g", "response": {"result": ""}}}
                    ]}
                ]),
            ),
            (
                "legacy function_call and function role",
                json!([
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"role": "function", "name": "f", "content": "{\"ok\":true}"}
                ]),
                Value::Null,
                json!([
                    {"role": "user", "parts": [{"text": "go"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": true}}}]}
                ]),
            ),
            (
                "arguments sent as an object are accepted",
                json!([
                    {"role": "user", "content": "go"},
                    {"role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": {"k": "v"}}}]}
                ]),
                Value::Null,
                json!([
                    {"role": "user", "parts": [{"text": "go"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"k": "v"}}}]}
                ]),
            ),
        ];
        for (name, messages, want_sys, want_contents) in cases {
            let b = body(json!({"model": "gemini-2.5-flash", "messages": messages}));
            assert_eq!(
                b.get("systemInstruction").cloned().unwrap_or(Value::Null),
                want_sys,
                "case: {name}"
            );
            assert_eq!(b["contents"], want_contents, "case: {name}");
        }
    }

    #[test]
    fn parts_table() {
        // (name, one user content part, expected Gemini part)
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "text",
                json!({"type": "text", "text": "hi"}),
                json!({"text": "hi"}),
            ),
            ("untyped text", json!({"text": "hi"}), json!({"text": "hi"})),
            (
                "refusal",
                json!({"type": "refusal", "refusal": "no"}),
                json!({"text": "no"}),
            ),
            (
                "data URL image, detail dropped",
                json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}),
                json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}),
            ),
            (
                "data URL with params and upper-case scheme",
                json!({"type": "image_url", "image_url": {"url": "DATA:image/webp;name=a.webp;BASE64,UklGRg"}}),
                json!({"inlineData": {"mimeType": "image/webp", "data": "UklGRg"}}),
            ),
            (
                "image_url as a plain string",
                json!({"type": "image_url", "image_url": "data:image/jpeg;base64,/9j/4A=="}),
                json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}}),
            ),
            (
                "http URL with known extension",
                json!({"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?x=1#f"}}),
                json!({"fileData": {"fileUri": "https://example.com/cat.PNG?x=1#f", "mimeType": "image/png"}}),
            ),
            (
                "http URL without extension defaults to jpeg",
                json!({"type": "image_url", "image_url": {"url": "http://example.com/img"}}),
                json!({"fileData": {"fileUri": "http://example.com/img", "mimeType": "image/jpeg"}}),
            ),
            (
                "input_audio wav",
                json!({"type": "input_audio", "input_audio": {"data": "UklGRiQ=", "format": "wav"}}),
                json!({"inlineData": {"mimeType": "audio/wav", "data": "UklGRiQ="}}),
            ),
            (
                "input_audio mp3",
                json!({"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}}),
                json!({"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}}),
            ),
            (
                "input_audio other format",
                json!({"type": "input_audio", "input_audio": {"data": "T2dnUw", "format": "ogg"}}),
                json!({"inlineData": {"mimeType": "audio/ogg", "data": "T2dnUw"}}),
            ),
            (
                "file data URL",
                json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}),
                json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}),
            ),
            (
                "file raw base64 with a known filename",
                json!({"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}}),
                json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}),
            ),
        ];
        for (name, part, want) in cases {
            let b = body(json!({"model": "m", "messages": [{"role": "user", "content": [part]}]}));
            assert_eq!(b["contents"][0]["parts"], json!([want]), "case: {name}");
        }
    }

    #[test]
    fn bad_parts_table() {
        let p = plain();
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"type": "image_url", "image_url": {"url": "data:image/png,plain"}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "data:;base64,AAAA"}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==="}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "dätä:x"}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url", "image_url": {}}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "image_url"}),
                "messages[0].content[0].image_url",
            ),
            (
                json!({"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}),
                "messages[0].content[0].input_audio",
            ),
            (
                json!({"type": "input_audio", "input_audio": {"data": "AAAA"}}),
                "messages[0].content[0].input_audio",
            ),
            (
                json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "../x"}}),
                "messages[0].content[0].input_audio",
            ),
            (
                json!({"type": "input_audio"}),
                "messages[0].content[0].input_audio",
            ),
            (
                json!({"type": "file", "file": {"file_id": "file-abc"}}),
                "messages[0].content[0].file",
            ),
            (
                json!({"type": "file", "file": {"file_data": "AAAA"}}),
                "messages[0].content[0].file",
            ),
            (
                json!({"type": "file", "file": {}}),
                "messages[0].content[0].file",
            ),
            (json!({"type": "file"}), "messages[0].content[0].file"),
            (
                json!({"type": "refusal", "refusal": 1}),
                "messages[0].content[0].refusal",
            ),
            (json!({"type": "audio_url"}), "messages[0].content[0]"),
        ];
        for (part, want) in cases {
            let shown = part.to_string();
            let r = json!({"model": "m", "messages": [{"role": "user", "content": [part]}]});
            assert_eq!(param_of(r), want, "part: {shown}");
        }
        // The message names the problem.
        let r = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,xx"}}]}]});
        let e = translate_request(&r, &p).unwrap_err();
        assert!(e.message.contains("invalid data URL"), "{}", e.message);
    }

    #[test]
    fn thought_signatures_table() {
        // (model, tool calls of one assistant turn, expected parts)
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "gemini-2.5-flash",
                json!([{"id": "call_0123456789abcdef_ts_c2lnX3Rz", "function": {"name": "f", "arguments": "{}"}}]),
                json!([{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnX3Rz"}]),
            ),
            (
                "gemini-2.5-flash",
                json!([{"id": "call_0123456789abcdef_ts_a_ts_b", "function": {"name": "f", "arguments": "{}"}}]),
                json!([{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "a_ts_b"}]),
            ),
            (
                "gemini-2.5-flash",
                json!([{"id": "call_1", "function": {"name": "f", "arguments": "{}"},
                        "extra_content": {"google": {"thought_signature": "ZXh0cmE="}}}]),
                json!([{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "ZXh0cmE="}]),
            ),
            (
                "gemini-2.5-flash",
                json!([{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]),
                json!([{"functionCall": {"name": "f", "args": {}}}]),
            ),
            (
                "gemini-3-pro-preview",
                json!([
                    {"id": "call_1", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "call_2", "function": {"name": "g", "arguments": "{}"}}
                ]),
                json!([
                    {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "skip_thought_signature_validator"},
                    {"functionCall": {"name": "g", "args": {}}}
                ]),
            ),
            (
                "gemini-3-pro-preview",
                json!([{"id": "call_0123456789abcdef_ts_cmVhbA==", "function": {"name": "f", "arguments": "{}"}}]),
                json!([{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "cmVhbA=="}]),
            ),
        ];
        for (model, calls, want) in cases {
            let r = json!({"model": model, "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "tool_calls": calls}]});
            assert_eq!(body(r)["contents"][1]["parts"], want, "model {model}");
        }
        // The sentinel goes on the first functionCall of each model turn, after any text.
        let r = json!({"model": "gemini-3-flash", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "thinking", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "assistant", "tool_calls": [{"id": "b", "function": {"name": "f"}}]}]});
        let b = body(r);
        assert_eq!(b["contents"][1]["parts"][0], json!({"text": "thinking"}));
        assert_eq!(
            b["contents"][1]["parts"][1]["thoughtSignature"],
            SKIP_SIGNATURE
        );
        assert_eq!(
            b["contents"][3]["parts"][0]["thoughtSignature"],
            SKIP_SIGNATURE
        );
    }

    #[test]
    fn generation_config_table() {
        // (request fields, expected generationConfig; null = absent)
        let cases: Vec<(Value, Value)> = vec![
            (json!({}), Value::Null),
            (json!({"temperature": 0}), json!({"temperature": 0})),
            (json!({"temperature": null, "top_p": null}), Value::Null),
            (json!({"top_p": 0.5}), json!({"topP": 0.5})),
            (json!({"top_k": 40}), json!({"topK": 40})),
            (json!({"n": 1}), json!({"candidateCount": 1})),
            (json!({"n": 3}), json!({"candidateCount": 3})),
            (json!({"stop": "END"}), json!({"stopSequences": ["END"]})),
            (
                json!({"stop": ["a", "b"]}),
                json!({"stopSequences": ["a", "b"]}),
            ),
            (json!({"stop": []}), Value::Null),
            (json!({"max_tokens": 100}), json!({"maxOutputTokens": 100})),
            (
                json!({"max_completion_tokens": 200, "max_tokens": 100}),
                json!({"maxOutputTokens": 200}),
            ),
            (json!({"max_tokens": 64.0}), json!({"maxOutputTokens": 64})),
            (
                json!({"presence_penalty": 0.5, "frequency_penalty": -0.5}),
                json!({"presencePenalty": 0.5, "frequencyPenalty": -0.5}),
            ),
            (json!({"seed": -7}), json!({"seed": -7})),
            (
                json!({"logprobs": true, "top_logprobs": 3}),
                json!({"responseLogprobs": true, "logprobs": 3}),
            ),
            (json!({"logprobs": false}), Value::Null),
            (json!({"response_format": {"type": "text"}}), Value::Null),
            (
                json!({"response_format": {"type": "json_object"}}),
                json!({"responseMimeType": "application/json"}),
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema":
                    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                     "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "string"}}, "additionalProperties": false}}}}),
                json!({"responseMimeType": "application/json", "responseJsonSchema":
                    {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "string"}}, "additionalProperties": false}}),
            ),
            (json!({"modalities": ["text"]}), Value::Null),
            (
                json!({"modalities": ["text", "image"]}),
                json!({"responseModalities": ["TEXT", "IMAGE"]}),
            ),
            (
                json!({"modalities": ["text", "audio"]}),
                json!({"responseModalities": ["TEXT", "AUDIO"]}),
            ),
            (
                json!({"user": "u", "metadata": {"a": 1}, "store": true, "service_tier": "auto", "logit_bias": {"1": 2},
                       "prediction": {}, "parallel_tool_calls": false, "verbosity": "low"}),
                Value::Null,
            ),
        ];
        for (fields, want) in cases {
            let shown = fields.to_string();
            let b = body(req(fields));
            assert_eq!(
                b.get("generationConfig").cloned().unwrap_or(Value::Null),
                want,
                "fields: {shown}"
            );
        }
    }

    #[test]
    fn stream_flags() {
        let p = plain();
        let c = translate_request(
            &req(json!({"stream": true, "stream_options": {"include_usage": true}})),
            &p,
        )
        .unwrap();
        assert!(c.stream && c.include_usage);
        let c =
            translate_request(&req(json!({"stream": true, "stream_options": null})), &p).unwrap();
        assert!(c.stream && !c.include_usage);
    }

    #[test]
    fn tools_table() {
        let p = plain();
        // (request fields, options, expected tools, expected toolConfig; null = absent)
        let weather = json!({"type": "function", "function": {"name": "get_weather", "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}}}});
        let weather_decl = json!({"name": "get_weather", "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "nullable": true}}}});
        let ping = json!({"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}});
        let code_on = Options {
            show_thinking: false,
            code_execution: true,
            ..Options::default()
        };
        let url_on = Options {
            show_thinking: false,
            url_context: true,
            url_context_models: vec!["gemini-2.5-flash".into()],
            ..Options::default()
        };
        let cases: Vec<(&str, Value, &Options, Value, Value)> = vec![
            (
                "functions become one declaration tool; empty params omitted",
                json!({"tools": [weather.clone(), ping.clone(), {"type": "function", "function": {"name": "noargs"}}]}),
                &p,
                json!([{"functionDeclarations": [weather_decl.clone(), {"name": "ping"}, {"name": "noargs"}]}]),
                Value::Null,
            ),
            (
                "googleSearch named function and web_search entries become googleSearch",
                json!({"tools": [{"type": "function", "function": {"name": "googleSearch"}}, {"type": "web_search"}]}),
                &p,
                json!([{"googleSearch": {}}]),
                Value::Null,
            ),
            (
                "google_search function plus declarations",
                json!({"tools": [weather.clone(), {"type": "function", "function": {"name": "google_search", "parameters": {}}}]}),
                &p,
                json!([{"functionDeclarations": [weather_decl.clone()]}, {"googleSearch": {}}]),
                Value::Null,
            ),
            (
                "native googleSearch entry",
                json!({"tools": [{"googleSearch": {}}]}),
                &p,
                json!([{"googleSearch": {}}]),
                Value::Null,
            ),
            (
                "web_search_options",
                json!({"web_search_options": {}}),
                &p,
                json!([{"googleSearch": {}}]),
                Value::Null,
            ),
            (
                "legacy functions",
                json!({"functions": [{"name": "ping"}], "function_call": {"name": "ping"}}),
                &p,
                json!([{"functionDeclarations": [{"name": "ping"}]}]),
                json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["ping"]}}),
            ),
            (
                "code execution option",
                json!({}),
                &code_on,
                json!([{"codeExecution": {}}]),
                Value::Null,
            ),
            (
                "code execution skipped when functions are declared",
                json!({"tools": [ping.clone()]}),
                &code_on,
                json!([{"functionDeclarations": [{"name": "ping"}]}]),
                Value::Null,
            ),
            (
                "url context for listed model",
                json!({}),
                &url_on,
                json!([{"urlContext": {}}]),
                Value::Null,
            ),
            (
                "tool_choice none",
                json!({"tools": [ping.clone()], "tool_choice": "none"}),
                &p,
                json!([{"functionDeclarations": [{"name": "ping"}]}]),
                json!({"functionCallingConfig": {"mode": "NONE"}}),
            ),
            (
                "tool_choice required",
                json!({"tools": [ping.clone()], "tool_choice": "required"}),
                &p,
                json!([{"functionDeclarations": [{"name": "ping"}]}]),
                json!({"functionCallingConfig": {"mode": "ANY"}}),
            ),
            (
                "tool_choice named function",
                json!({"tools": [ping.clone(), weather.clone()], "tool_choice": {"type": "function", "function": {"name": "ping"}}}),
                &p,
                json!([{"functionDeclarations": [{"name": "ping"}, weather_decl.clone()]}]),
                json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["ping"]}}),
            ),
            (
                "allowed_tools required",
                json!({"tools": [ping.clone(), weather.clone()], "tool_choice": {"type": "allowed_tools", "allowed_tools":
                    {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}}),
                &p,
                json!([{"functionDeclarations": [{"name": "ping"}, weather_decl.clone()]}]),
                json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
            ),
            (
                "allowed_tools auto narrows the declarations",
                json!({"tools": [ping.clone(), weather.clone()], "tool_choice": {"type": "allowed_tools", "allowed_tools":
                    {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}}),
                &p,
                json!([{"functionDeclarations": [weather_decl.clone()]}]),
                json!({"functionCallingConfig": {"mode": "AUTO"}}),
            ),
            (
                "tool_choice without declarations is dropped",
                json!({"tool_choice": "auto"}),
                &p,
                Value::Null,
                Value::Null,
            ),
        ];
        for (name, fields, opts, want_tools, want_cfg) in cases {
            let b = body_with(req(fields), opts);
            assert_eq!(
                b.get("tools").cloned().unwrap_or(Value::Null),
                want_tools,
                "case: {name}"
            );
            assert_eq!(
                b.get("toolConfig").cloned().unwrap_or(Value::Null),
                want_cfg,
                "case: {name}"
            );
        }
    }

    #[test]
    fn model_suffixes_table() {
        let p = plain();
        let budget_map = Options {
            show_thinking: false,
            thinking_budget_map: vec![("gemini-2.5-pro".into(), 4096)],
            ..Options::default()
        };
        // (client model, options, model, client_model, has search tool, thinkingConfig)
        let cases: Vec<(&str, &Options, &str, &str, bool, Value)> = vec![
            (
                "models/gemini-2.5-flash",
                &p,
                "gemini-2.5-flash",
                "gemini-2.5-flash",
                false,
                Value::Null,
            ),
            (
                "gemini-2.5-flash-search",
                &p,
                "gemini-2.5-flash",
                "gemini-2.5-flash-search",
                true,
                Value::Null,
            ),
            (
                "gemini-2.5-flash-thinking",
                &p,
                "gemini-2.5-flash",
                "gemini-2.5-flash-thinking",
                false,
                json!({"thinkingBudget": -1, "includeThoughts": true}),
            ),
            (
                "gemini-2.5-pro-thinking",
                &budget_map,
                "gemini-2.5-pro",
                "gemini-2.5-pro-thinking",
                false,
                json!({"thinkingBudget": 4096, "includeThoughts": true}),
            ),
            (
                "gemini-2.5-flash-non-thinking",
                &p,
                "gemini-2.5-flash",
                "gemini-2.5-flash-non-thinking",
                false,
                json!({"thinkingBudget": 0}),
            ),
            (
                "models/gemini-2.5-flash-search-thinking",
                &p,
                "gemini-2.5-flash",
                "gemini-2.5-flash-search-thinking",
                true,
                json!({"thinkingBudget": -1, "includeThoughts": true}),
            ),
            (
                "gemini-2.5-flash-non-thinking-search",
                &p,
                "gemini-2.5-flash",
                "gemini-2.5-flash-non-thinking-search",
                true,
                json!({"thinkingBudget": 0}),
            ),
            (
                "gemini-2.5-pro",
                &budget_map,
                "gemini-2.5-pro",
                "gemini-2.5-pro",
                false,
                json!({"thinkingBudget": 4096}),
            ),
            ("-search", &p, "-search", "-search", false, Value::Null),
        ];
        for (m, opts, model, client_model, search, thinking) in cases {
            let call = translate_request(&req(json!({"model": m})), opts).unwrap();
            assert_eq!(call.model, model, "{m}");
            assert_eq!(call.client_model, client_model, "{m}");
            let has_search = call.body["tools"]
                .as_array()
                .is_some_and(|t| t.contains(&json!({"googleSearch": {}})));
            assert_eq!(has_search, search, "{m}");
            assert_eq!(
                call.body
                    .pointer("/generationConfig/thinkingConfig")
                    .cloned()
                    .unwrap_or(Value::Null),
                thinking,
                "{m}"
            );
        }
    }

    #[test]
    fn thinking_table() {
        let p = plain();
        let show = Options::default();
        let mapped = Options {
            show_thinking: false,
            thinking_budget_map: vec![("gemini-2.5-flash".into(), 2048)],
            ..Options::default()
        };
        // (fields, options, expected thinkingConfig; null = absent)
        let cases: Vec<(Value, &Options, Value)> = vec![
            (
                json!({"reasoning_effort": "none"}),
                &p,
                json!({"thinkingBudget": 0}),
            ),
            (
                json!({"reasoning_effort": "minimal"}),
                &p,
                json!({"thinkingBudget": 1024}),
            ),
            (
                json!({"reasoning_effort": "low"}),
                &p,
                json!({"thinkingBudget": 1024}),
            ),
            (
                json!({"reasoning_effort": "medium"}),
                &p,
                json!({"thinkingBudget": 8192}),
            ),
            (
                json!({"reasoning_effort": "high"}),
                &p,
                json!({"thinkingBudget": 24576}),
            ),
            (
                json!({"reasoning_effort": "xhigh"}),
                &p,
                json!({"thinkingBudget": 32768}),
            ),
            (
                json!({"reasoning_effort": "max"}),
                &p,
                json!({"thinkingBudget": 32768}),
            ),
            (json!({}), &mapped, json!({"thinkingBudget": 2048})),
            (
                json!({"reasoning_effort": "low"}),
                &mapped,
                json!({"thinkingBudget": 1024}),
            ),
            (json!({}), &show, json!({"includeThoughts": true})),
            (
                json!({"model": "gemini-3-pro-preview"}),
                &show,
                json!({"includeThoughts": true}),
            ),
            (json!({"model": "gemini-2.0-flash"}), &show, Value::Null),
            (
                json!({"model": "gemini-2.5-flash-image"}),
                &show,
                Value::Null,
            ),
            (json!({"model": "gemma-3-27b-it"}), &show, Value::Null),
            (
                json!({"model": "gemini-2.0-flash", "reasoning_effort": "low"}),
                &show,
                json!({"thinkingBudget": 1024, "includeThoughts": true}),
            ),
            (
                json!({"model": "gemini-2.0-flash-thinking-exp"}),
                &show,
                json!({"includeThoughts": true}),
            ),
            (
                json!({"reasoning_effort": "high"}),
                &show,
                json!({"thinkingBudget": 24576, "includeThoughts": true}),
            ),
            (
                json!({"reasoning_effort": "none"}),
                &show,
                json!({"thinkingBudget": 0}),
            ),
            (
                json!({"model": "gemini-2.5-flash-non-thinking", "reasoning_effort": "high"}),
                &show,
                json!({"thinkingBudget": 0}),
            ),
            (
                json!({"extra_body": {"google": {"thinking_config": {"thinking_budget": 800, "include_thoughts": true}}}}),
                &p,
                json!({"thinkingBudget": 800, "includeThoughts": true}),
            ),
            (
                json!({"reasoning_effort": "high", "google": {"thinkingConfig": {"thinkingLevel": "low"}}}),
                &show,
                json!({"thinkingLevel": "low", "includeThoughts": true}),
            ),
            (
                json!({"extra_body": {"google": {"thinking_config": {"thinking_level": "high", "include_thoughts": false}}}}),
                &mapped,
                json!({"thinkingLevel": "high", "includeThoughts": false}),
            ),
            (
                json!({"extra_body": {"google": {"thinking_config": {"thinking_budget": 0}}}}),
                &show,
                json!({"thinkingBudget": 0}),
            ),
        ];
        for (fields, opts, want) in cases {
            let shown = fields.to_string();
            let b = body_with(req(fields), opts);
            assert_eq!(
                b.pointer("/generationConfig/thinkingConfig")
                    .cloned()
                    .unwrap_or(Value::Null),
                want,
                "fields: {shown}"
            );
        }
    }

    #[test]
    fn safety_and_extensions_table() {
        let p = plain();
        let custom =
            json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]);
        let configured = Options {
            show_thinking: false,
            safety_settings: Some(custom.clone()),
            ..Options::default()
        };
        let client = json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]);
        let client_camel =
            json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_LOW_AND_ABOVE"}]);
        // (fields, options, expected safetySettings)
        let cases: Vec<(Value, &Options, Value)> = vec![
            (json!({}), &p, default_safety()),
            (json!({}), &configured, custom.clone()),
            (
                json!({"extra_body": {"google": {"safety_settings": client.clone()}}}),
                &configured,
                client.clone(),
            ),
            (
                json!({"google": {"safetySettings": client_camel.clone()}}),
                &configured,
                client_camel.clone(),
            ),
            (
                json!({"safety_settings": client.clone()}),
                &p,
                client.clone(),
            ),
            (
                json!({"safety_settings": client.clone(), "extra_body": {"google": {"safety_settings": client_camel.clone()}}}),
                &p,
                client_camel.clone(),
            ),
        ];
        for (fields, opts, want) in cases {
            let shown = fields.to_string();
            assert_eq!(
                body_with(req(fields), opts)["safetySettings"],
                want,
                "fields: {shown}"
            );
        }
        let b = body(req(
            json!({"extra_body": {"google": {"cached_content": "cachedContents/xyz"}}}),
        ));
        assert_eq!(b["cachedContent"], "cachedContents/xyz");
        let b = body(req(
            json!({"google": {"cachedContent": "cachedContents/abc"}}),
        ));
        assert_eq!(b["cachedContent"], "cachedContents/abc");
    }

    /// `depth` nested `{"a": …}` objects, built without recursion.
    fn deep_object(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            let mut m = Map::new();
            m.insert("properties".into(), json!({}));
            m.insert("a".into(), v);
            v = Value::Object(m);
        }
        v
    }

    /// `depth` nested `properties` schemas.
    fn deep_schema(depth: usize) -> Value {
        let mut v = json!({"type": "string"});
        for _ in 0..depth {
            let mut props = Map::new();
            props.insert("x".into(), v);
            let mut m = Map::new();
            m.insert("type".into(), json!("object"));
            m.insert("properties".into(), Value::Object(props));
            v = Value::Object(m);
        }
        v
    }

    #[test]
    fn fuzz_never_panics() {
        let odd: Vec<Value> = vec![
            Value::Null,
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(1.5),
            json!(1e308),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(""),
            json!("x"),
            json!("data:"),
            json!("data:image/png;base64,"),
            json!("https://"),
            json!("é"),
            json!("_ts_"),
            json!("{}"),
            json!([]),
            json!([null]),
            json!([[[]]]),
            json!({}),
            json!({"type": null}),
            json!({"type": "function"}),
            json!({"type": "text", "text": null}),
            json!({"role": "assistant", "tool_calls": [{}]}),
            json!([{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#"}}}]),
        ];
        // Values are produced by constructors so that deep ones are never
        // cloned or serialized recursively by the test itself.
        let mut makers: Vec<Box<dyn Fn() -> Value>> = Vec::new();
        for v in odd {
            makers.push(Box::new(move || v.clone()));
        }
        makers.push(Box::new(|| deep_array(10_000)));
        makers.push(Box::new(|| deep_object(10_000)));
        makers.push(Box::new(|| deep_schema(10_000)));

        let opts_all = Options {
            show_thinking: true,
            code_execution: true,
            url_context: true,
            url_context_models: vec!["gemini-3-pro".into()],
            thinking_budget_map: vec![("gemini-3-pro".into(), 10)],
            ..Options::default()
        };
        let top_fields = [
            "model",
            "messages",
            "temperature",
            "top_p",
            "top_k",
            "n",
            "stop",
            "max_tokens",
            "max_completion_tokens",
            "presence_penalty",
            "frequency_penalty",
            "seed",
            "logprobs",
            "top_logprobs",
            "response_format",
            "stream",
            "stream_options",
            "tools",
            "tool_choice",
            "functions",
            "function_call",
            "reasoning_effort",
            "modalities",
            "extra_body",
            "google",
            "safety_settings",
            "safetySettings",
            "web_search_options",
            "user",
        ];
        let msg_fields = [
            "role",
            "content",
            "tool_calls",
            "tool_call_id",
            "name",
            "function_call",
            "refusal",
        ];
        let base = json!({"model": "gemini-3-pro-search-thinking", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": "a", "tool_calls": [{"id": "call_1_ts_x", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1_ts_x", "content": "r"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {}}}}}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
            "extra_body": {"google": {"thinking_config": {}, "safety_settings": []}},
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"tools": []}}});
        let pointers = [
            "/messages/0",
            "/messages/0/content/0",
            "/messages/0/content/0/text",
            "/messages/1/tool_calls/0",
            "/messages/1/tool_calls/0/function",
            "/messages/1/tool_calls/0/function/arguments",
            "/messages/1/tool_calls/0/id",
            "/tools/0",
            "/tools/0/function",
            "/tools/0/function/parameters",
            "/tools/0/function/parameters/properties/a",
            "/response_format/json_schema",
            "/response_format/json_schema/schema",
            "/extra_body/google",
            "/extra_body/google/thinking_config",
            "/extra_body/google/safety_settings",
            "/tool_choice/allowed_tools",
            "/tool_choice/allowed_tools/tools",
        ];
        let plain_opts = plain();
        let mut runs = 0usize;
        let mut run = |r: Value| {
            for o in [&plain_opts, &opts_all] {
                let _ = translate_request(&r, o);
            }
            dismantle(r);
            runs += 1;
        };
        for make in &makers {
            run(make());
            let mut m = Map::new();
            m.insert("model".into(), json!("m"));
            m.insert("messages".into(), Value::Array(vec![make()]));
            run(Value::Object(m));
            for f in top_fields {
                let mut r = base.clone();
                r[f] = make();
                run(r);
            }
            for i in 0..3 {
                for f in msg_fields {
                    let mut r = base.clone();
                    r["messages"][i][f] = make();
                    run(r);
                }
            }
            for p in pointers {
                let mut r = base.clone();
                if let Some(slot) = r.pointer_mut(p) {
                    *slot = make();
                }
                run(r);
            }
        }
        assert!(runs > 1000);
    }

    /// The `Value` path's answer with the body serialized, as the fast path
    /// must give it.
    fn value_path(raw: &str, opts: &Options) -> PreparedCall {
        let v: Value = serde_json::from_str(raw).expect("json");
        translate_request(&v, opts)
            .map(PreparedCall::from)
            .expect("valid")
    }

    #[test]
    fn fast_path_matches_value_path() {
        let configured = Options {
            safety_settings: Some(
                json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]),
            ),
            show_thinking: false,
            code_execution: true,
            url_context: true,
            url_context_models: vec!["gemini-2.5-flash".into()],
            thinking_budget_map: vec![("gemini-2.5-flash".into(), 512)],
            ..Options::default()
        };
        let cases = [
            r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Hello"}]}"#,
            r#"{"messages":[{"content":"Hi \"there\" \u00e9\n","role":"user"}],"model":"models/gemini-2.5-pro","stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"model":"gemini-2.5-flash-search-thinking","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":""},{"role":"user","content":"a"},{"role":"user","content":"b","name":"bob"},{"role":"assistant","content":null},{"role":"assistant","content":"c"},{"role":"user","content":""}],"temperature":0.5,"top_p":1,"max_tokens":64,"stop":["x"],"seed":7,"n":1,"reasoning_effort":"low","user":"u"}"#,
            r#"{"model":"gemini-3-pro-preview","messages":[{"role":"system","content":"only a system prompt"}]}"#,
            r#"{"model":"gemini-2.0-flash","messages":[{"role":"user","content":"q"}],"response_format":{"type":"json_object"},"safety_settings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_LOW_AND_ABOVE"}],"extra_body":{"google":{"cached_content":"cachedContents/abc","thinking_config":{"thinking_budget":0}}}}"#,
            r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required"}"#,
        ];
        for opts in [Options::default(), configured] {
            for raw in cases {
                let fast = translate_request_fast(raw.as_bytes(), &opts)
                    .unwrap_or_else(|| panic!("fell back: {raw}"));
                let want = value_path(raw, &opts);
                assert_eq!(
                    String::from_utf8_lossy(&fast.body),
                    String::from_utf8_lossy(&want.body),
                    "{raw}"
                );
                assert_eq!(fast, want, "{raw}");
            }
        }
    }

    #[test]
    fn fast_path_falls_back() {
        let cases = [
            // Shapes it does not model.
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[]}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":"","refusal":"no"}]}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"42","tool_call_id":"c"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}"#,
            // Invalid requests: their errors come from the `Value` path.
            r#"{"messages":[{"role":"user","content":"a"}]}"#,
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","messages":null}"#,
            r#"{"model":"m","messages":[{"role":"user","content":null}]}"#,
            r#"{"model":"m","messages":[{"role":"user"}]}"#,
            r#"{"model":"m","messages":[{"content":"a"}]}"#,
            r#"{"model":"m","messages":[{"role":"robot","content":"a"}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":null}]}"#,
            r#"{"model":"m","messages":[["user","a"]]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"temperature":"hot"}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a","name":"\udc00"}]}"#,
            r#"[1]"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a"}]} x"#,
        ];
        for raw in cases {
            assert!(
                translate_request_fast(raw.as_bytes(), &Options::default()).is_none(),
                "took the fast path: {raw}"
            );
        }
    }
}
