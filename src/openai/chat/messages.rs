//! OpenAI `messages` → Gemini `systemInstruction` and `contents`.
//!
//! Owns [`convert_messages`] and everything a message can carry: content
//! parts (text, images by data or http(s) URL, audio, files), data URLs and
//! MIME guessing, assistant tool calls (with their thought signatures) and
//! tool results as `functionResponse` parts. Consecutive turns of the same
//! role are merged; on Gemini 3 the first call of a model turn gets the
//! skip-signature sentinel when it has no signature of its own.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{TranslateError, clip, copy_bounded, err, non_empty_str, opt};
use crate::gemini::types::{Blob, Content, FileData, FunctionCall, FunctionResponse, Part};

/// Most content parts (or tool calls) accepted in one message.
pub(super) const MAX_PARTS: usize = 1_000;
/// Signature sentinel Gemini 3 accepts when the real one was lost.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Converted messages (borrowing the request's strings).
pub(super) struct Converted<'a> {
    /// `systemInstruction` parts.
    pub(super) system: Vec<Part<'a>>,
    /// Gemini `contents`.
    pub(super) contents: Vec<Content<'a>>,
}

/// A turn being assembled: its role and parts.
type Turn<'a> = (&'static str, Vec<Part<'a>>);

/// Append parts to the conversation, merging with the previous content when
/// the role is the same and skipping empty turns.
fn push_turn<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, parts: Vec<Part<'a>>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, existing)) if *r == role => existing.extend(parts),
        _ => turns.push((role, parts)),
    }
}

/// Convert every message, in order.
pub(super) fn convert_messages<'a>(
    messages: &'a [Value],
    model: &str,
) -> Result<Converted<'a>, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::new();
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
                    parts.push(Part::text(r.as_str()));
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
                let part = Part {
                    function_response: Some(Box::new(FunctionResponse {
                        name: Some(name.into()),
                        response: Some(tool_response(&text)),
                        ..FunctionResponse::default()
                    })),
                    ..Part::default()
                };
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
                && let Some(first) = parts.iter_mut().find(|p| p.function_call.is_some())
                && first.thought_signature.is_none()
            {
                first.thought_signature = Some(SKIP_SIGNATURE.into());
            }
            Content {
                parts,
                role: Some(role.into()),
                ..Content::default()
            }
        })
        .collect();
    Ok(Converted { system, contents })
}

/// Convert a message `content` into Gemini parts appended to `out`.
fn content_parts<'a>(
    content: Option<&'a Value>,
    i: usize,
    null_ok: bool,
    text_only: bool,
    out: &mut Vec<Part<'a>>,
) -> Result<(), TranslateError> {
    match content {
        None | Some(Value::Null) if null_ok => Ok(()),
        Some(Value::String(s)) => {
            if !s.is_empty() {
                out.push(Part::text(s.as_str()));
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
) -> Result<Option<Part<'_>>, TranslateError> {
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
            Some(Value::String(s)) => Ok(Some(Part::text(s.as_str()))),
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
            Ok(Some(inline(mime, data)))
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
                _ if f.contains_key("file_id") => {
                    let id = f.get("file_id").and_then(Value::as_str).unwrap_or("");
                    let mime = f
                        .get("filename")
                        .and_then(Value::as_str)
                        .and_then(mime_from_path);
                    match gemini_file_uri(id) {
                        Some(uri) => Ok(Some(file_part(uri, mime))),
                        None => Err(err(
                            param,
                            "`file.file_id` must name a Gemini file (`files/…` or its URI, as the Files API returns them); or send the file inline as `file_data`",
                        )),
                    }
                }
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
fn inline<'a>(mime: impl Into<Cow<'a, str>>, data: &'a str) -> Part<'a> {
    Part {
        inline_data: Some(Box::new(Blob {
            data: Some(data.into()),
            mime_type: Some(mime.into()),
            ..Blob::default()
        })),
        ..Part::default()
    }
}

/// Where Google's Files API keeps files: a file URI is this, a version and
/// `files/{id}`.
const FILES_ORIGIN: &str = "https://generativelanguage.googleapis.com/";

/// The file URI a reference to a Gemini file stands for: `files/{id}` (a
/// file's name, as on the v1beta Files API), or a file URI
/// (`https://generativelanguage.googleapis.com/v1beta/files/{id}`) as it is.
/// `None` for anything else. Such a file is passed as `fileData` (never
/// downloaded) and the call goes on the key that owns it.
pub fn gemini_file_uri(reference: &str) -> Option<Cow<'_, str>> {
    let valid = |id: &str| {
        !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(id) = reference.strip_prefix("files/") {
        return valid(id).then(|| format!("{FILES_ORIGIN}v1beta/files/{id}").into());
    }
    let rest = reference.get(FILES_ORIGIN.len()..)?;
    if !starts_with_ci(reference, FILES_ORIGIN) {
        return None;
    }
    let (version, id) = rest.split_once("/files/")?;
    let known = matches!(version, "v1" | "v1beta" | "v1alpha");
    (known && valid(id)).then_some(Cow::Borrowed(reference))
}

/// A `fileData` part for a Gemini file (its own MIME type unless given).
fn file_part<'a>(uri: Cow<'a, str>, mime: Option<&'static str>) -> Part<'a> {
    Part {
        file_data: Some(Box::new(FileData {
            file_uri: Some(uri),
            mime_type: mime.map(Cow::Borrowed),
            ..FileData::default()
        })),
        ..Part::default()
    }
}

/// A URL (data or http(s)) as a Gemini part; errors name message `i`.
fn url_part<'a>(url: &'a str, i: usize, param: &str) -> Result<Part<'a>, TranslateError> {
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
    if let Some(uri) = gemini_file_uri(url) {
        return Ok(file_part(uri, mime_from_path(url)));
    }
    if starts_with_ci(url, "http://") || starts_with_ci(url, "https://") {
        let mime = mime_from_path(url).unwrap_or("image/jpeg");
        return Ok(Part {
            file_data: Some(Box::new(FileData {
                file_uri: Some(url.into()),
                mime_type: Some(mime.into()),
                ..FileData::default()
            })),
            ..Part::default()
        });
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
    parts: &mut Vec<Part<'a>>,
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
                parts.push(Part {
                    function_call: Some(Box::new(call_of(name, args))),
                    thought_signature: signature.map(Cow::Borrowed),
                    ..Part::default()
                });
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
            parts.push(Part {
                function_call: Some(Box::new(call_of(name, args))),
                ..Part::default()
            });
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

/// A `functionCall` from its name and arguments.
fn call_of(name: &str, args: Value) -> FunctionCall<'_> {
    FunctionCall {
        args: Some(args),
        name: Some(name.into()),
        ..FunctionCall::default()
    }
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
        Ok(v) => Value::Object(Map::from_iter([("result".to_owned(), v)])),
        Err(_) => Value::Object(Map::from_iter([("result".to_owned(), Value::from(text))])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::openai::chat::tests::{body, param_of, plain};
    use crate::openai::chat::translate_request;

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
                "a Gemini file URI as image_url: fileData, never fetched",
                json!({"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc-1"}}),
                json!({"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-1"}}),
            ),
            (
                "a Gemini file's name as file_id",
                json!({"type": "file", "file": {"file_id": "files/abc-1", "filename": "a.pdf"}}),
                json!({"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-1", "mimeType": "application/pdf"}}),
            ),
            (
                "a Gemini file URI as file_id",
                json!({"type": "file", "file": {"file_id": "https://generativelanguage.googleapis.com/v1/files/z9"}}),
                json!({"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1/files/z9"}}),
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
                json!({"type": "file", "file": {"file_id": "files/a b"}}),
                "messages[0].content[0].file",
            ),
            (
                json!({"type": "file", "file": {"file_id": 7}}),
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
}
