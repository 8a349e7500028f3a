//! Responses input items → Chat Completions messages: `message` items (easy
//! and strict forms; `input_text`, `input_image`, `input_file`,
//! `output_text`, `refusal` parts; `system`/`developer` roles become system
//! text), `function_call` (with the thought signature a preceding
//! `reasoning` item carried in `encrypted_content`) and
//! `function_call_output`. Item types with no Gemini meaning (replayed
//! `web_search_call`s, …) are skipped and logged once. Pure.

use serde_json::{Map, Value, json};

use super::request::log_once;
use crate::openai::TranslateError;

/// Prefix of the `encrypted_content` the gateway writes: a Gemini thought
/// signature follows it.
pub const SIGNATURE_PREFIX: &str = "gmn1.";

/// Shorthand for [`TranslateError::new`].
fn err(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// Append the chat messages for `items` to `messages`, recording for each
/// the index of the item it came from in `origin`.
pub fn to_messages(
    items: &[Value],
    messages: &mut Vec<Value>,
    origin: &mut Vec<Option<usize>>,
) -> Result<(), TranslateError> {
    // The signature of the last reasoning item, for the next function call.
    let mut signature: Option<&str> = None;
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let Value::Object(o) = item else {
            return Err(err(at, "each input item must be an object"));
        };
        let ty = match o.get("type") {
            None | Some(Value::Null) if o.contains_key("role") => "message",
            Some(Value::String(t)) => t.as_str(),
            _ => return Err(err(format!("{at}.type"), "item `type` must be a string")),
        };
        match ty {
            "message" => {
                let m = message(o, &at)?;
                if m.get("role").and_then(Value::as_str) == Some("user") {
                    signature = None;
                }
                messages.push(m);
                origin.push(Some(i));
            }
            "function_call" => {
                messages.push(function_call(o, &at, signature.take())?);
                origin.push(Some(i));
            }
            "function_call_output" => {
                messages.push(function_output(o, &at)?);
                origin.push(Some(i));
            }
            "reasoning" => {
                signature = o
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix(SIGNATURE_PREFIX))
                    .filter(|s| !s.is_empty());
            }
            "item_reference" => {
                return Err(err(
                    format!("{at}.id"),
                    "no stored item has this id (item references need a stored response)",
                ));
            }
            other => log_once("input item type", other),
        }
    }
    Ok(())
}

/// A `message` item as a chat message.
fn message(o: &Map<String, Value>, at: &str) -> Result<Value, TranslateError> {
    let role = match o.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant" | "system" | "developer")) => r,
        _ => {
            return Err(err(
                format!("{at}.role"),
                "`role` must be one of user, assistant, system, developer",
            ));
        }
    };
    let content = match o.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if let Some(part) = content_part(p, &format!("{at}.content[{j}]"))? {
                    out.push(part);
                }
            }
            Value::Array(out)
        }
        _ => {
            return Err(err(
                format!("{at}.content"),
                "`content` must be a string or an array of content parts",
            ));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// One content part as a chat content part; `None` for parts that carry
/// nothing for Gemini.
fn content_part(p: &Value, at: &str) -> Result<Option<Value>, TranslateError> {
    let Value::Object(o) = p else {
        return Err(err(at, "each content part must be an object"));
    };
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    let text_of = |k: &str| match o.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(err(format!("{at}.{k}"), format!("`{k}` must be a string"))),
    };
    Ok(Some(match ty {
        "input_text" | "output_text" | "text" | "summary_text" | "reasoning_text" => {
            json!({"type": "text", "text": text_of("text")?})
        }
        "refusal" => json!({"type": "text", "text": text_of("refusal")?}),
        "input_image" => {
            let url = match o.get("image_url") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(u)) => match u.get("url") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(err(format!("{at}.image_url"), "`image_url` must be a URL")),
                },
                _ if o.get("file_id").is_some_and(|v| !v.is_null()) => {
                    return Err(err(
                        format!("{at}.file_id"),
                        "`file_id` is not supported; send the image as `image_url` (a data URL or https URL)",
                    ));
                }
                _ => return Err(err(format!("{at}.image_url"), "`image_url` must be a URL")),
            };
            json!({"type": "image_url", "image_url": {"url": url}})
        }
        "input_file" => {
            if let Some(Value::String(d)) = o.get("file_data") {
                let mut f = Map::new();
                f.insert("file_data".into(), Value::String(d.clone()));
                if let Some(n) = o.get("filename").filter(|v| v.is_string()) {
                    f.insert("filename".into(), n.clone());
                }
                json!({"type": "file", "file": Value::Object(f)})
            } else if let Some(Value::String(u)) = o.get("file_url") {
                json!({"type": "image_url", "image_url": {"url": u}})
            } else {
                return Err(err(
                    at,
                    "`input_file` needs `file_data` (a data URL) or `file_url`; `file_id` is not supported",
                ));
            }
        }
        "" => {
            return Err(err(
                format!("{at}.type"),
                "content part `type` must be a string",
            ));
        }
        other => {
            log_once("content part type", other);
            return Ok(None);
        }
    }))
}

/// A `function_call` item as an assistant message with one tool call.
fn function_call(
    o: &Map<String, Value>,
    at: &str,
    signature: Option<&str>,
) -> Result<Value, TranslateError> {
    let call_id = call_id(o, at)?;
    let name = match o.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(err(
                format!("{at}.name"),
                "`name` must be a non-empty string",
            ));
        }
    };
    let arguments = match o.get("arguments") {
        None | Some(Value::Null) => Value::String("{}".into()),
        Some(v @ Value::String(_)) => v.clone(),
        Some(_) => {
            return Err(err(
                format!("{at}.arguments"),
                "`arguments` must be a JSON object encoded as a string",
            ));
        }
    };
    let mut call = json!({"id": call_id, "type": "function",
        "function": {"name": name, "arguments": arguments}});
    if let (Some(sig), Value::Object(c)) = (signature, &mut call) {
        c.insert(
            "extra_content".into(),
            json!({"google": {"thought_signature": sig}}),
        );
    }
    Ok(json!({"role": "assistant", "content": null, "tool_calls": [call]}))
}

/// A `function_call_output` item as a tool message.
fn function_output(o: &Map<String, Value>, at: &str) -> Result<Value, TranslateError> {
    let call_id = call_id(o, at)?;
    let content = match o.get("output") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                if let Some(Value::String(t)) = p.get("text") {
                    text.push_str(t);
                }
            }
            Value::String(text)
        }
        None | Some(Value::Null) => Value::String(String::new()),
        Some(_) => {
            return Err(err(
                format!("{at}.output"),
                "`output` must be a string or an array of content parts",
            ));
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": call_id, "content": content}))
}

/// An item's non-empty `call_id`.
fn call_id(o: &Map<String, Value>, at: &str) -> Result<String, TranslateError> {
    match o.get("call_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(err(
            format!("{at}.call_id"),
            "`call_id` must be a non-empty string",
        )),
    }
}
