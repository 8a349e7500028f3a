//! Anthropic `messages` → Gemini `contents` (and the system parts of
//! mid-conversation `role: "system"` messages, in order).
//!
//! Owns [`convert`] and every content block: `text`, `image` and `document`
//! (base64, URL, plain text, nested content), `tool_use` → `functionCall`,
//! `tool_result` → `functionResponse` (its name found from the `tool_use`
//! it answers; text as `{"result": …}`, `{"error": …}` with `is_error`;
//! images and documents as parts beside it), `thinking` /
//! `redacted_thinking` (not sent back as text; a gateway-made signature is
//! put back on the next part of its turn). Consecutive turns of the same
//! role are merged; on Gemini 3 the first call of a model turn without a
//! signature gets the skip-signature sentinel.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::decode_signature;
use super::request::{MAX_BLOCKS, err, opt};
use crate::gemini::types::{Blob, Content, FileData, FunctionCall, FunctionResponse, Part};
use crate::openai::TranslateError;

/// Signature sentinel Gemini 3 accepts when the real one was lost.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Converted messages.
pub(super) struct Converted<'a> {
    /// Parts of `role: "system"` messages, in order.
    pub(super) system: Vec<Part<'a>>,
    /// Gemini `contents`.
    pub(super) contents: Vec<Content<'a>>,
}

/// What one message's blocks become.
#[derive(Default)]
struct Turn<'a> {
    /// `functionResponse` parts (first in a user turn, as Gemini wants).
    responses: Vec<Part<'a>>,
    /// Every other part.
    parts: Vec<Part<'a>>,
    /// A gateway-made signature waiting for the next part of the turn.
    pending: Option<&'a str>,
}

impl<'a> Turn<'a> {
    /// Add a part, giving it the pending signature.
    fn push(&mut self, mut part: Part<'a>) {
        if let Some(sig) = self.pending.take() {
            part.thought_signature = Some(Cow::Borrowed(sig));
        }
        self.parts.push(part);
    }

    /// The turn's parts; a signature still pending goes on its last part.
    fn finish(mut self) -> Vec<Part<'a>> {
        if let Some(sig) = self.pending.take()
            && let Some(last) = self.parts.last_mut()
            && last.thought_signature.is_none()
        {
            last.thought_signature = Some(Cow::Borrowed(sig));
        }
        self.responses.append(&mut self.parts);
        self.responses
    }
}

/// Convert every message, in order.
pub(super) fn convert<'a>(
    messages: &'a [Value],
    model: &str,
) -> Result<Converted<'a>, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Part<'a>>)> = Vec::new();
    let mut names: HashMap<&'a str, &'a str> = HashMap::new();
    for (i, msg) in messages.iter().enumerate() {
        let m = msg
            .as_object()
            .ok_or_else(|| err(format!("messages[{i}]"), "each message must be an object"))?;
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => "user",
            Some("assistant") => "model",
            Some("system") => "system",
            _ => {
                return Err(err(
                    format!("messages[{i}].role"),
                    "`role` must be user, assistant or system",
                ));
            }
        };
        let parts = message_parts(m, i, role, &mut names)?;
        if role == "system" {
            system.extend(parts);
            continue;
        }
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, existing)) if *r == role => existing.extend(parts),
            _ => turns.push((role, parts)),
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
                first.thought_signature = Some(Cow::Borrowed(SKIP_SIGNATURE));
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

/// The parts of one message (`content` a string or blocks).
fn message_parts<'a>(
    m: &'a Map<String, Value>,
    i: usize,
    role: &str,
    names: &mut HashMap<&'a str, &'a str>,
) -> Result<Vec<Part<'a>>, TranslateError> {
    let blocks = match opt(m, "content") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![Part::text(s.as_str())]),
        Some(Value::Array(b)) => b,
        Some(_) => {
            return Err(err(
                format!("messages[{i}].content"),
                "`content` must be a string or an array of content blocks",
            ));
        }
    };
    if blocks.len() > MAX_BLOCKS {
        return Err(err(
            format!("messages[{i}].content"),
            format!("too many content blocks (at most {MAX_BLOCKS})"),
        ));
    }
    let mut turn = Turn::default();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        block(b, &at, role, names, &mut turn)?;
    }
    Ok(turn.finish())
}

/// One content block into the turn.
fn block<'a>(
    b: &'a Value,
    at: &str,
    role: &str,
    names: &mut HashMap<&'a str, &'a str>,
    turn: &mut Turn<'a>,
) -> Result<(), TranslateError> {
    let b = b
        .as_object()
        .ok_or_else(|| err(at, "each content block must be an object"))?;
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    if role == "system" && kind != "text" {
        return Err(err(
            format!("{at}.type"),
            "system messages take text blocks only",
        ));
    }
    if (kind == "tool_use" && role != "model") || (kind == "tool_result" && role != "user") {
        return Err(err(
            format!("{at}.type"),
            "`tool_use` blocks belong in assistant messages, `tool_result` blocks in user messages",
        ));
    }
    match kind {
        "text" => {
            let t = b
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| err(format!("{at}.text"), "`text` must be a string"))?;
            if !t.is_empty() {
                turn.push(Part::text(t));
            }
        }
        "image" | "document" => {
            for p in source_parts(b, at, kind)? {
                turn.push(p);
            }
        }
        "tool_use" => {
            let name = b
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err(format!("{at}.name"), "`name` must be a non-empty string"))?;
            if let Some(id) = b.get("id").and_then(Value::as_str)
                && names.len() < MAX_BLOCKS * 16
            {
                names.insert(id, name);
            }
            let args = match opt(b, "input") {
                Some(v @ Value::Object(_)) => v.clone(),
                None => Value::Object(Map::new()),
                Some(_) => return Err(err(format!("{at}.input"), "`input` must be an object")),
            };
            turn.push(Part {
                function_call: Some(Box::new(FunctionCall {
                    args: Some(args),
                    name: Some(name.into()),
                    ..FunctionCall::default()
                })),
                ..Part::default()
            });
        }
        "tool_result" => tool_result(b, at, names, turn)?,
        "thinking" => {
            if let Some(sig) = b.get("signature").and_then(Value::as_str) {
                turn.pending = decode_signature(sig).or(turn.pending);
            }
        }
        "redacted_thinking" => {
            if let Some(data) = b.get("data").and_then(Value::as_str) {
                turn.pending = decode_signature(data).or(turn.pending);
            }
        }
        // Anthropic's own server tools ran on Anthropic's side: nothing to
        // replay to Gemini.
        "server_tool_use"
        | "web_search_tool_result"
        | "web_fetch_tool_result"
        | "code_execution_tool_result"
        | "bash_code_execution_tool_result"
        | "text_editor_code_execution_tool_result"
        | "mcp_tool_use"
        | "mcp_tool_result"
        | "container_upload" => {}
        other => {
            return Err(err(
                format!("{at}.type"),
                format!(
                    "unsupported content block type `{}`",
                    other.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// A `tool_result` block: a `functionResponse` named after the `tool_use`
/// it answers, and its images or documents as parts beside it.
fn tool_result<'a>(
    b: &'a Map<String, Value>,
    at: &str,
    names: &HashMap<&'a str, &'a str>,
    turn: &mut Turn<'a>,
) -> Result<(), TranslateError> {
    let id = b
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            err(
                format!("{at}.tool_use_id"),
                "`tool_use_id` must be a string",
            )
        })?;
    let Some(name) = names.get(id) else {
        return Err(err(
            format!("{at}.tool_use_id"),
            "`tool_use_id` answers no `tool_use` block of an earlier assistant message",
        ));
    };
    let mut text = String::new();
    match opt(b, "content") {
        None => {}
        Some(Value::String(s)) => text.push_str(s),
        Some(Value::Array(items)) => {
            if items.len() > MAX_BLOCKS {
                return Err(err(
                    format!("{at}.content"),
                    format!("too many content blocks (at most {MAX_BLOCKS})"),
                ));
            }
            for (k, item) in items.iter().enumerate() {
                let at = format!("{at}.content[{k}]");
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(item.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    Some(kind @ ("image" | "document")) => {
                        let obj = item
                            .as_object()
                            .ok_or_else(|| err(at.as_str(), "each block must be an object"))?;
                        turn.parts.extend(source_parts(obj, &at, kind)?);
                    }
                    Some("search_result") => {}
                    _ => {
                        return Err(err(
                            format!("{at}.type"),
                            "tool_result content blocks must be text, image or document",
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(err(
                format!("{at}.content"),
                "`content` must be a string or an array of content blocks",
            ));
        }
    }
    let is_error = b.get("is_error").and_then(Value::as_bool) == Some(true);
    let key = if is_error { "error" } else { "result" };
    let response = Value::Object(Map::from_iter([(key.to_string(), Value::String(text))]));
    turn.responses.push(Part {
        function_response: Some(Box::new(FunctionResponse {
            name: Some(Cow::Borrowed(name)),
            response: Some(response),
            ..FunctionResponse::default()
        })),
        ..Part::default()
    });
    Ok(())
}

/// The parts of an `image` or `document` block from its `source`: base64
/// data inline, a URL as `fileData`, plain text (documents) as text, nested
/// `content` blocks (documents) each in turn.
fn source_parts<'a>(
    b: &'a Map<String, Value>,
    at: &str,
    kind: &str,
) -> Result<Vec<Part<'a>>, TranslateError> {
    let src = match b.get("source") {
        Some(Value::Object(s)) => s,
        _ => return Err(err(format!("{at}.source"), "`source` must be an object")),
    };
    let default_mime = if kind == "image" {
        "image/jpeg"
    } else {
        "application/pdf"
    };
    let mime = src
        .get("media_type")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    let at = format!("{at}.source");
    match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let data = src
                .get("data")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| err(format!("{at}.data"), "`data` must be non-empty base64"))?;
            Ok(vec![Part {
                inline_data: Some(Box::new(Blob {
                    data: Some(data.into()),
                    mime_type: Some(mime.unwrap_or(default_mime).into()),
                    ..Blob::default()
                })),
                ..Part::default()
            }])
        }
        Some("url") => {
            let url = src
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| {
                    let l = u.get(..8).unwrap_or(u).to_ascii_lowercase();
                    l.starts_with("http://") || l.starts_with("https://")
                })
                .ok_or_else(|| err(format!("{at}.url"), "`url` must be an http(s) URL"))?;
            let mime = mime.or_else(|| mime_from_url(url)).unwrap_or(default_mime);
            Ok(vec![Part {
                file_data: Some(Box::new(FileData {
                    file_uri: Some(url.into()),
                    mime_type: Some(mime.into()),
                    ..FileData::default()
                })),
                ..Part::default()
            }])
        }
        Some("text") if kind == "document" => {
            let data = src.get("data").and_then(Value::as_str).unwrap_or("");
            Ok(if data.is_empty() {
                Vec::new()
            } else {
                vec![Part::text(data)]
            })
        }
        Some("content") if kind == "document" => {
            let Some(Value::Array(items)) = src.get("content") else {
                return Err(err(format!("{at}.content"), "`content` must be an array"));
            };
            let mut parts = Vec::new();
            for (k, item) in items.iter().take(MAX_BLOCKS).enumerate() {
                let at = format!("{at}.content[{k}]");
                match (item.get("type").and_then(Value::as_str), item.as_object()) {
                    (Some("text"), _) => {
                        let t = item.get("text").and_then(Value::as_str).unwrap_or("");
                        if !t.is_empty() {
                            parts.push(Part::text(t));
                        }
                    }
                    (Some("image"), Some(o)) => parts.extend(source_parts(o, &at, "image")?),
                    _ => return Err(err(at, "document content blocks must be text or image")),
                }
            }
            Ok(parts)
        }
        Some("file") => Err(err(
            format!("{at}.type"),
            "file sources (Anthropic's Files API) cannot be used on Gemini; send the data as base64",
        )),
        _ => Err(err(
            format!("{at}.type"),
            "`source.type` must be base64, url (or text, content for documents)",
        )),
    }
}

/// A media type from a URL's file extension.
fn mime_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let (_, ext) = path.rsplit('/').next().unwrap_or(path).rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        _ => return None,
    })
}
