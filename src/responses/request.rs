//! OpenAI Responses request → the Chat Completions request it means, which
//! the chat translator ([`crate::openai::chat`]) then turns into the typed
//! Gemini body: messages and parts, tools and the schema cleaner, thinking,
//! `response_format` and sampling are all the chat route's, so both APIs
//! send Gemini the same thing for the same intent.
//!
//! Owns [`translate`] (pure: JSON in, JSON out, never panics), the
//! [`Settings`] a response echoes, the checks on fields that cannot be
//! honoured (`background:true`, `prompt`, `conversation` → 400 naming them),
//! the list of fields accepted and ignored, and [`remap_param`], which turns
//! an error of the chat translator back into the Responses field at fault.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::openai::{Options, TranslateError, bare_model};

/// Most input items accepted in one request (after `previous_response_id`).
pub const MAX_ITEMS: usize = 10_000;
/// Most tools accepted (after flattening namespaces).
const MAX_TOOLS: usize = 512;
/// Most distinct unknown field / item / tool names logged.
const MAX_LOGGED: usize = 64;

/// Fields of a Responses request that are read or knowingly ignored.
const KNOWN: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tool_calls",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "store",
    "previous_response_id",
    "conversation",
    "metadata",
    "stream",
    "stream_options",
    "include",
    "truncation",
    "background",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt",
    "user",
    "client_metadata",
    "context_management",
    "moderation",
];

/// What a response echoes from its request, and the switches that shape
/// the answer.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The model as the client named it (minus `models/`).
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// `store` (default true).
    pub store: bool,
    /// `include` has `reasoning.encrypted_content`.
    pub encrypted: bool,
    /// `reasoning.summary` asked for thought summaries.
    pub summary: bool,
    /// `previous_response_id`, as sent.
    pub previous: Option<String>,
    /// `parallel_tool_calls: false`: Gemini cannot be told, so the output
    /// keeps only the first function call of the turn.
    pub one_call: bool,
    /// Echoed members of the response object (`instructions`, `tools`,
    /// `tool_choice`, `temperature`, …; `null` when unset).
    pub echo: Map<String, Value>,
}

/// A translated request: the chat request to run and what to echo.
#[derive(Clone, Debug)]
pub struct Translated {
    /// The Chat Completions request the Responses request stands for.
    pub chat: Value,
    /// For each chat message, the `input` index it came from (`None`:
    /// `instructions`), so chat errors can name the Responses field.
    pub origin: Vec<Option<usize>>,
    /// The echoed settings and switches.
    pub settings: Settings,
}

/// Shorthand for [`TranslateError::new`].
fn err(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// A field that is present and not `null`.
fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Log a name once per process (bounded): unknown request fields, item
/// types and tool types that are accepted and ignored.
pub fn log_once(kind: &str, name: &str) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let set = seen.get_or_insert_with(HashSet::new);
    let key = format!("{kind}:{}", name.chars().take(64).collect::<String>());
    if set.len() < MAX_LOGGED && set.insert(key.clone()) {
        crate::info!("responses: {key} is accepted and ignored");
    }
}

/// Check the top level: fields that would change the answer and cannot be
/// honoured get a 400 naming them; unknown fields are logged once.
pub fn check_fields(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if opt(obj, "background").and_then(Value::as_bool) == Some(true) {
        return Err(err(
            "background",
            "`background: true` is not supported by this gateway; send the request without it",
        ));
    }
    if opt(obj, "prompt").is_some() {
        return Err(err(
            "prompt",
            "stored prompt templates (`prompt`) are not supported by this gateway",
        ));
    }
    if opt(obj, "conversation").is_some() {
        return Err(err(
            "conversation",
            "the Conversations API (`conversation`) is not supported; use `previous_response_id`",
        ));
    }
    for k in obj.keys() {
        if !KNOWN.contains(&k.as_str()) {
            log_once("field", k);
        }
    }
    Ok(())
}

/// Read `model`, `stream`, `store` and `previous_response_id` (what the
/// handler needs before the items are resolved).
pub fn head(obj: &Map<String, Value>) -> Result<Settings, TranslateError> {
    let model = match obj.get("model") {
        Some(Value::String(s)) if !bare_model(s).is_empty() => bare_model(s).to_string(),
        _ => return Err(err("model", "`model` must be a non-empty string")),
    };
    let flag = |k: &str, default: bool| match opt(obj, k) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(k, format!("`{k}` must be a boolean"))),
    };
    let previous = match opt(obj, "previous_response_id") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(err(
                "previous_response_id",
                "`previous_response_id` must be a non-empty string",
            ));
        }
    };
    let encrypted = match opt(obj, "include") {
        None => false,
        Some(Value::Array(a)) => a
            .iter()
            .any(|v| v.as_str() == Some("reasoning.encrypted_content")),
        Some(_) => return Err(err("include", "`include` must be an array of strings")),
    };
    Ok(Settings {
        model,
        stream: flag("stream", false)?,
        store: flag("store", true)?,
        encrypted,
        previous,
        one_call: !flag("parallel_tool_calls", true)?,
        ..Settings::default()
    })
}

/// The request's `input` as a list of items (a string is one user message).
pub fn input_items(obj: &Map<String, Value>) -> Result<Vec<Value>, TranslateError> {
    match opt(obj, "input") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(a)) if a.len() <= MAX_ITEMS => Ok(a.clone()),
        Some(Value::Array(_)) => Err(err(
            "input",
            format!("too many input items (at most {MAX_ITEMS})"),
        )),
        Some(_) => Err(err(
            "input",
            "`input` must be a string or an array of items",
        )),
    }
}

/// Translate a Responses request whose `input` items are `items` (earlier
/// turns of `previous_response_id` first, `item_reference`s resolved) into
/// the chat request it means.
pub fn translate(
    req: &Value,
    items: &[Value],
    opts: &Options,
) -> Result<Translated, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| err("body", "the request body must be a JSON object"))?;
    check_fields(obj)?;
    let mut settings = head(obj)?;
    if items.len() > MAX_ITEMS {
        return Err(err(
            "input",
            format!("too many input items (at most {MAX_ITEMS})"),
        ));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(settings.model.clone()));
    let mut messages = Vec::new();
    let mut origin = Vec::new();
    match opt(obj, "instructions") {
        None => {}
        Some(Value::String(s)) if !s.is_empty() => {
            messages.push(json!({"role": "system", "content": s}));
            origin.push(None);
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(err("instructions", "`instructions` must be a string")),
    }
    super::items::to_messages(items, &mut messages, &mut origin)?;
    if messages.is_empty() {
        return Err(err("input", "`input` must contain at least one message"));
    }
    chat.insert("messages".into(), Value::Array(messages));
    tools(obj, &settings.model, &mut chat)?;
    generation(obj, &mut chat)?;
    settings.summary = reasoning(obj, &settings.model, opts, &mut chat)?;
    settings.echo = echo(obj);
    Ok(Translated {
        chat: Value::Object(chat),
        origin,
        settings,
    })
}

/// `tools` (function tools flat, `namespace` tools flattened, `web_search`
/// → Google Search, dropped beside function tools on models before Gemini
/// 3) and `tool_choice`.
fn tools(
    obj: &Map<String, Value>,
    model: &str,
    chat: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let mut out: Vec<Value> = Vec::new();
    let mut search = false;
    match opt(obj, "tools") {
        None => {}
        Some(Value::Array(list)) => {
            for (k, t) in list.iter().enumerate() {
                collect_tool(t, &format!("tools[{k}]"), &mut out, &mut search, 0)?;
                if out.len() > MAX_TOOLS {
                    return Err(err(
                        "tools",
                        format!("too many tools (at most {MAX_TOOLS})"),
                    ));
                }
            }
        }
        Some(_) => return Err(err("tools", "`tools` must be an array")),
    }
    let has_functions = !out.is_empty();
    if search {
        if has_functions && !combines_search_and_functions(model) {
            log_once("web_search beside function tools (dropped) on model", model);
        } else {
            out.push(json!({"type": "web_search"}));
        }
    }
    if !out.is_empty() {
        chat.insert("tools".into(), Value::Array(out));
    }
    if let Some(choice) = opt(obj, "tool_choice") {
        let mapped = match choice {
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("allowed_tools") => json!({"type": "allowed_tools", "allowed_tools": {
                    "mode": o.get("mode").cloned().unwrap_or(Value::Null),
                    "tools": o.get("tools").cloned().unwrap_or(Value::Null)}}),
                Some("function") | None => choice.clone(),
                // A hosted tool (web_search, …): the model decides.
                Some(_) => Value::String("auto".into()),
            },
            other => other.clone(),
        };
        if has_functions || !matches!(mapped, Value::String(_)) {
            chat.insert("tool_choice".into(), mapped);
        }
    }
    Ok(())
}

/// Whether Gemini takes Google Search and function declarations in one
/// request (Gemini 3 does; 2.x and older refuse the pair).
fn combines_search_and_functions(model: &str) -> bool {
    !(model.starts_with("gemini-1") || model.starts_with("gemini-2"))
}

/// One entry of `tools` into chat tools (`namespace` entries recursed once).
fn collect_tool(
    t: &Value,
    at: &str,
    out: &mut Vec<Value>,
    search: &mut bool,
    depth: usize,
) -> Result<(), TranslateError> {
    let Value::Object(o) = t else {
        return Err(err(at, "each tool must be an object"));
    };
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "function" => {
            let mut f = o.clone();
            f.remove("strict");
            f.remove("type");
            out.push(json!({"type": "function", "function": Value::Object(f)}));
        }
        "namespace" if depth == 0 => match o.get("tools") {
            Some(Value::Array(inner)) => {
                for (k, t) in inner.iter().enumerate() {
                    collect_tool(t, &format!("{at}.tools[{k}]"), out, search, 1)?;
                }
            }
            _ => return Err(err(format!("{at}.tools"), "`tools` must be an array")),
        },
        "web_search"
        | "web_search_preview"
        | "web_search_2025_08_26"
        | "web_search_preview_2025_03_11" => *search = true,
        "" => return Err(err(format!("{at}.type"), "tool `type` must be a string")),
        other => log_once("tool type", other),
    }
    Ok(())
}

/// `text.format`, `max_output_tokens`, `temperature`, `top_p`.
fn generation(
    obj: &Map<String, Value>,
    chat: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_output_tokens", "max_completion_tokens"),
    ] {
        if let Some(v) = opt(obj, from) {
            chat.insert(to.into(), v.clone());
        }
    }
    let format = match opt(obj, "text") {
        None => None,
        Some(Value::Object(t)) => opt(t, "format"),
        Some(_) => return Err(err("text", "`text` must be an object")),
    };
    let Some(format) = format else {
        return Ok(());
    };
    let Value::Object(f) = format else {
        return Err(err("text.format", "`text.format` must be an object"));
    };
    match f.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut js = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = opt(f, k) {
                    js.insert(k.into(), v.clone());
                }
            }
            js.entry("name").or_insert_with(|| Value::from("response"));
            chat.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": Value::Object(js)}),
            );
        }
        _ => {
            return Err(err(
                "text.format.type",
                "`text.format.type` must be text, json_object or json_schema",
            ));
        }
    }
    Ok(())
}

/// `reasoning.effort` → `reasoning_effort`; `reasoning.summary` → thought
/// summaries (`includeThoughts` where the model thinks). Whether summaries
/// were asked for.
fn reasoning(
    obj: &Map<String, Value>,
    model: &str,
    opts: &Options,
    chat: &mut Map<String, Value>,
) -> Result<bool, TranslateError> {
    let r = match opt(obj, "reasoning") {
        None => return Ok(false),
        Some(Value::Object(r)) => r,
        Some(_) => return Err(err("reasoning", "`reasoning` must be an object")),
    };
    if let Some(e) = opt(r, "effort") {
        chat.insert("reasoning_effort".into(), e.clone());
    }
    let summary = match opt(r, "summary").or_else(|| opt(r, "generate_summary")) {
        None => false,
        Some(Value::String(s)) => s != "none",
        Some(_) => {
            return Err(err(
                "reasoning.summary",
                "`reasoning.summary` must be a string",
            ));
        }
    };
    let effort_none = opt(r, "effort").and_then(Value::as_str) == Some("none");
    if summary && !effort_none && crate::openai::chat::model_thinks(model, opts) {
        chat.insert(
            "extra_body".into(),
            json!({"google": {"thinking_config": {"include_thoughts": true}}}),
        );
    }
    Ok(summary)
}

/// The request settings a response object echoes (`null` when unset).
fn echo(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut e = Map::new();
    let get = |k: &str| obj.get(k).cloned().unwrap_or(Value::Null);
    for k in [
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "previous_response_id",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "temperature",
        "top_p",
        "top_logprobs",
        "user",
    ] {
        e.insert(k.into(), get(k));
    }
    e.insert(
        "tools".into(),
        obj.get("tools").cloned().unwrap_or(json!([])),
    );
    e.insert(
        "tool_choice".into(),
        opt(obj, "tool_choice").cloned().unwrap_or(json!("auto")),
    );
    e.insert(
        "parallel_tool_calls".into(),
        opt(obj, "parallel_tool_calls")
            .cloned()
            .unwrap_or(json!(true)),
    );
    e.insert(
        "reasoning".into(),
        opt(obj, "reasoning")
            .cloned()
            .unwrap_or(json!({"effort": null, "summary": null})),
    );
    e.insert(
        "text".into(),
        opt(obj, "text")
            .cloned()
            .unwrap_or(json!({"format": {"type": "text"}})),
    );
    e.insert(
        "truncation".into(),
        opt(obj, "truncation").cloned().unwrap_or(json!("disabled")),
    );
    e.insert(
        "store".into(),
        opt(obj, "store").cloned().unwrap_or(json!(true)),
    );
    e.insert("background".into(), json!(false));
    e.insert(
        "metadata".into(),
        opt(obj, "metadata").cloned().unwrap_or(json!({})),
    );
    e
}

/// Name the Responses field behind an error of the chat translator:
/// `messages[i]…` → `input[k]…` (or `instructions`), and the renamed
/// members (`response_format` → `text.format`, `max_completion_tokens` →
/// `max_output_tokens`, `reasoning_effort` → `reasoning.effort`).
pub fn remap_param(mut e: TranslateError, origin: &[Option<usize>]) -> TranslateError {
    let Some(p) = e.param.take() else {
        return e;
    };
    let mapped = if let Some(rest) = p.strip_prefix("messages[") {
        let (idx, tail) = rest.split_once(']').unwrap_or((rest, ""));
        match idx
            .parse::<usize>()
            .ok()
            .and_then(|i| origin.get(i).copied())
        {
            Some(Some(k)) => format!("input[{k}]{tail}"),
            Some(None) => "instructions".to_string(),
            None => "input".to_string(),
        }
    } else if let Some(rest) = p.strip_prefix("response_format") {
        format!("text.format{rest}")
    } else if p == "max_completion_tokens" {
        "max_output_tokens".into()
    } else if p == "reasoning_effort" {
        "reasoning.effort".into()
    } else {
        p
    };
    e.message = e
        .message
        .replace("`reasoning_effort`", "`reasoning.effort`")
        .replace("`max_completion_tokens`", "`max_output_tokens`");
    e.param = Some(mapped);
    e
}
