//! An Anthropic Messages request → the Gemini `generateContent` body.
//!
//! Owns [`prepare`] (the body as bytes, what the handler sends), [`count_body`]
//! (the `countTokens` body for `/v1/messages/count_tokens`), [`model_of`] and
//! the top-level members: `system`, `tools` / `tool_choice`, `max_tokens`
//! (clamped to the model's output limit), sampling, `stop_sequences`
//! (checked and handed back in [`Prepared::stops`], not sent to Gemini),
//! `thinking` / `output_config` → `thinkingConfig`, `output_config.format`.
//! The messages themselves are converted in `messages` beside it.
//! Members with no Gemini meaning (`metadata`, `cache_control`,
//! `context_management`, `service_tier`, …) are accepted and ignored;
//! members it does not know are accepted and named in
//! [`Prepared::unknown`] so the handler can log them.
//!
//! Pure: JSON in, bytes out, never panics.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::gemini::types::{
    Content, FunctionCallingConfig, FunctionDeclaration, GenerateContentRequest, GenerationConfig,
    Part, ThinkingConfig, Tool, ToolConfig,
};
use crate::openai::TranslateError;
use crate::openai::schema::{clean_schema, depth_within};

use super::messages;

/// Most messages accepted in one request.
pub const MAX_MESSAGES: usize = 10_000;
/// Most content blocks accepted in one message (and tools in one request).
pub const MAX_BLOCKS: usize = 1_000;
/// Most stop sequences accepted.
const MAX_STOP: usize = 64;
/// Deepest client JSON copied verbatim into the body (response schemas).
const MAX_COPY_DEPTH: usize = 64;
/// Most unknown member names reported for one request.
const MAX_UNKNOWN: usize = 16;
/// Safety categories set to `OFF` by default (as on the chat route).
const SAFETY_CATEGORIES: [&str; 5] = [
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
];

/// Top-level members the gateway knows: honoured, or accepted and ignored.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "metadata",
    "service_tier",
    "container",
    "context_management",
    "cache_control",
    "inference_geo",
    "mcp_servers",
    "betas",
];

/// A translated Messages request ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// `stream: true` was requested.
    pub stream: bool,
    /// The stop sequences (`stop_sequences`, empty ones left out): not sent
    /// to Gemini but matched by the gateway ([`super::stop::StopMatcher`]).
    pub stops: Vec<String>,
    /// The Gemini body, as JSON bytes.
    pub body: Vec<u8>,
    /// Top-level member names the gateway does not know (at most a few),
    /// accepted and ignored.
    pub unknown: Vec<String>,
    /// A `web_search` tool was dropped because the model cannot combine
    /// Google Search with function tools (see [`combines_search_and_functions`]).
    pub search_dropped: bool,
}

/// Shorthand for [`TranslateError::new`].
pub(crate) fn err(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// A member that is present and not `null`.
pub(crate) fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The request's `model` (a non-empty string, `models/` removed).
pub fn model_of(req: &Value) -> Result<&str, TranslateError> {
    match req.get("model") {
        Some(Value::String(s)) if !crate::openai::bare_model(s).is_empty() => {
            Ok(crate::openai::bare_model(s))
        }
        _ => Err(err("model", "`model` must be a non-empty string")),
    }
}

/// Translate a Messages request for the Gemini `model` (already resolved
/// through `MODEL_ALIASES`) into the `generateContent` body. `safety` is
/// the configured `SAFETY_SETTINGS` (`None`: every category `OFF`).
pub fn prepare(
    req: &Value,
    model: &str,
    safety: Option<&Value>,
) -> Result<Prepared, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| err("body", "the request body must be a JSON object"))?;
    let stream = match opt(obj, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err("stream", "`stream` must be a boolean")),
    };
    let off = safety_off();
    let mut body = translate(obj, model, true)?;
    body.extra.insert("safetySettings", safety.unwrap_or(&off));
    let bytes =
        serde_json::to_vec(&body).map_err(|_| err("body", "the request cannot be serialized"))?;
    Ok(Prepared {
        stream,
        stops: super::stop::sequences(req),
        body: bytes,
        unknown: unknown_members(obj),
        search_dropped: search_dropped(obj, model),
    })
}

/// Whether `model` accepts Google Search beside function declarations:
/// Gemini 1.x and 2.x refuse the pair; later and unknown models are sent
/// both (the same rule as the Responses route).
pub fn combines_search_and_functions(model: &str) -> bool {
    !(model.starts_with("gemini-1") || model.starts_with("gemini-2"))
}

/// Whether the request's `web_search` tool is dropped on `model`: it sits
/// beside function tools and the model cannot combine them.
fn search_dropped(obj: &Map<String, Value>, model: &str) -> bool {
    let Some(Value::Array(list)) = opt(obj, "tools") else {
        return false;
    };
    let is_search = |t: &Value| {
        t.get("type")
            .and_then(Value::as_str)
            .is_some_and(|k| k.starts_with("web_search"))
    };
    list.iter().any(is_search)
        && list.iter().any(|t| !is_search(t))
        && !combines_search_and_functions(model)
}

/// The `countTokens` body for a `count_tokens` request:
/// `{"generateContentRequest": {"model": "models/…", contents, systemInstruction, tools…}}`.
pub fn count_body(req: &Value, model: &str) -> Result<Vec<u8>, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| err("body", "the request body must be a JSON object"))?;
    let body = translate(obj, model, false)?;
    let inner =
        serde_json::to_vec(&body).map_err(|_| err("body", "the request cannot be serialized"))?;
    let name = serde_json::to_string(&format!("models/{model}"))
        .map_err(|_| err("model", "the model cannot be serialized"))?;
    let mut out = Vec::with_capacity(inner.len() + name.len() + 40);
    out.extend_from_slice(b"{\"generateContentRequest\":{\"model\":");
    out.extend_from_slice(name.as_bytes());
    // `inner` is an object with at least `contents`: splice its members in.
    out.push(b',');
    out.extend_from_slice(inner.get(1..).unwrap_or(b"}"));
    out.push(b'}');
    Ok(out)
}

/// The names of top-level members the gateway does not know.
fn unknown_members(obj: &Map<String, Value>) -> Vec<String> {
    obj.keys()
        .filter(|k| !KNOWN.contains(&k.as_str()))
        .take(MAX_UNKNOWN)
        .map(|k| k.chars().take(64).collect())
        .collect()
}

/// The default `safetySettings`: every category `OFF`.
fn safety_off() -> Value {
    Value::Array(
        SAFETY_CATEGORIES
            .iter()
            .map(|c| serde_json::json!({"category": c, "threshold": "OFF"}))
            .collect(),
    )
}

/// The typed Gemini body; `generation` says whether the generation config
/// belongs in it (not for `countTokens`).
fn translate<'a>(
    obj: &'a Map<String, Value>,
    model: &str,
    generation: bool,
) -> Result<GenerateContentRequest<'a>, TranslateError> {
    model_of_obj(obj)?;
    let Some(Value::Array(list)) = obj.get("messages") else {
        return Err(err("messages", "`messages` must be a non-empty array"));
    };
    if list.is_empty() {
        return Err(err("messages", "`messages` must be a non-empty array"));
    }
    if list.len() > MAX_MESSAGES {
        return Err(err(
            "messages",
            format!("too many messages (at most {MAX_MESSAGES})"),
        ));
    }
    let mut system = system_parts(opt(obj, "system"))?;
    let conv = messages::convert(list, model)?;
    system.extend(conv.system);
    let mut body = GenerateContentRequest::default();
    if conv.contents.is_empty() {
        return Err(err(
            "messages",
            "no user or assistant message has any content",
        ));
    }
    body.contents = conv.contents;
    if !system.is_empty() {
        body.system_instruction = Some(Content {
            parts: system,
            ..Content::default()
        });
    }
    let (tools, tool_config) = tools(obj, model)?;
    body.tools = tools;
    body.tool_config = tool_config;
    if generation {
        let gc = generation_config(obj, model)?;
        body.generation_config = (!gc.is_empty()).then(|| Box::new(gc));
    }
    Ok(body)
}

/// Check `model` (the handler has read it already; the count route too).
fn model_of_obj(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    match obj.get("model") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        _ => Err(err("model", "`model` must be a non-empty string")),
    }
}

/// `system`: a string or text blocks (`cache_control` ignored); Claude
/// Code's attribution line (`x-anthropic-billing-header: …`) is left out.
fn system_parts(v: Option<&Value>) -> Result<Vec<Part<'_>>, TranslateError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::text(s.as_str())]),
        Some(Value::Array(blocks)) => {
            if blocks.len() > MAX_BLOCKS {
                return Err(err(
                    "system",
                    format!("too many blocks (at most {MAX_BLOCKS})"),
                ));
            }
            let mut parts = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                let text = b
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|_| b.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                    .ok_or_else(|| {
                        err(format!("system[{i}]"), "system blocks must be text blocks")
                    })?;
                if !text.is_empty() && !text.starts_with("x-anthropic-billing-header:") {
                    parts.push(Part::text(text));
                }
            }
            Ok(parts)
        }
        Some(_) => Err(err(
            "system",
            "`system` must be a string or an array of text blocks",
        )),
    }
}

/// `tools` and `tool_choice` → Gemini `tools` and `toolConfig`.
fn tools<'a>(
    obj: &'a Map<String, Value>,
    model: &str,
) -> Result<(Vec<Tool<'a>>, Option<ToolConfig<'a>>), TranslateError> {
    let list = match opt(obj, "tools") {
        None => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(err("tools", "`tools` must be an array")),
    };
    if list.len() > MAX_BLOCKS {
        return Err(err(
            "tools",
            format!("too many tools (at most {MAX_BLOCKS})"),
        ));
    }
    let mut decls = Vec::new();
    let mut search = false;
    for (k, t) in list.iter().enumerate() {
        let at = format!("tools[{k}]");
        let t = t
            .as_object()
            .ok_or_else(|| err(at.as_str(), "each tool must be an object"))?;
        let kind = t.get("type").and_then(Value::as_str);
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(format!("{at}.name"), "`name` must be a non-empty string"))?;
        if kind.is_some_and(|k| k.starts_with("web_search")) {
            search = true;
            continue;
        }
        let schema = opt(t, "input_schema");
        if schema.is_none() && !matches!(kind, None | Some("custom")) {
            return Err(err(
                format!("{at}.type"),
                format!(
                    "tool type `{}` is not supported on Gemini (only custom tools with `input_schema` and web search)",
                    kind.unwrap_or("").chars().take(64).collect::<String>()
                ),
            ));
        }
        let mut decl = FunctionDeclaration {
            name: Some(name.into()),
            ..FunctionDeclaration::default()
        };
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            decl.description = Some(d.into());
        }
        match schema {
            None => {}
            Some(s @ Value::Object(_)) => {
                let cleaned = clean_schema(s);
                if cleaned.get("properties").is_some() {
                    decl.parameters = Some(cleaned);
                }
            }
            Some(_) => {
                return Err(err(
                    format!("{at}.input_schema"),
                    "`input_schema` must be an object",
                ));
            }
        }
        decls.push(decl);
    }
    let config = tool_choice(obj, &decls)?;
    let mut out = Vec::new();
    let has_decls = !decls.is_empty();
    if has_decls {
        out.push(Tool {
            function_declarations: decls,
            ..Tool::default()
        });
    }
    // Gemini 2.x refuses Google Search beside function declarations: the
    // search tool is dropped there (the handler logs it once per model).
    if search && (!has_decls || combines_search_and_functions(model)) {
        out.push(Tool {
            google_search: Some(Value::Object(Map::new())),
            ..Tool::default()
        });
    }
    Ok((out, config.filter(|_| has_decls)))
}

/// `tool_choice`: `auto`, `any`, `tool` (by name) or `none`.
fn tool_choice<'a>(
    obj: &'a Map<String, Value>,
    decls: &[FunctionDeclaration<'a>],
) -> Result<Option<ToolConfig<'a>>, TranslateError> {
    let Some(choice) = opt(obj, "tool_choice") else {
        return Ok(None);
    };
    let kind = choice
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| err("tool_choice.type", "`tool_choice.type` must be a string"))?;
    let (mode, names) = match kind {
        "auto" => ("AUTO", None),
        "any" => ("ANY", None),
        "none" => ("NONE", None),
        "tool" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| err("tool_choice.name", "`tool_choice.name` must be a string"))?;
            if !decls.iter().any(|d| d.name.as_deref() == Some(name)) {
                return Err(err(
                    "tool_choice.name",
                    "`tool_choice.name` names no tool in `tools`",
                ));
            }
            ("ANY", Some(vec![Cow::Borrowed(name)]))
        }
        _ => {
            return Err(err(
                "tool_choice.type",
                "`tool_choice.type` must be one of auto, any, tool, none",
            ));
        }
    };
    Ok(Some(ToolConfig {
        function_calling_config: Some(FunctionCallingConfig {
            mode: Some(mode.into()),
            allowed_function_names: names,
            ..FunctionCallingConfig::default()
        }),
        ..ToolConfig::default()
    }))
}

/// The largest `maxOutputTokens` a model takes.
pub fn output_limit(model: &str) -> i64 {
    if model.starts_with("gemini-1") || model.starts_with("gemini-2.0") {
        8_192
    } else {
        65_536
    }
}

/// A number member, if present.
fn number(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<serde_json::Number>, TranslateError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.clone())),
        Some(_) => Err(err(key, format!("`{key}` must be a number"))),
    }
}

/// A non-negative integer member, if present.
fn integer(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, TranslateError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(v) => match v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        }) {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(err(key, format!("`{key}` must be a non-negative integer"))),
        },
    }
}

/// `max_tokens`, sampling, `stop_sequences`, thinking and the JSON output
/// format → `generationConfig`.
fn generation_config<'a>(
    obj: &'a Map<String, Value>,
    model: &str,
) -> Result<GenerationConfig<'a>, TranslateError> {
    let mut gc = GenerationConfig {
        max_output_tokens: integer(obj, "max_tokens")?.map(|n| n.clamp(1, output_limit(model))),
        temperature: number(obj, "temperature")?,
        top_p: number(obj, "top_p")?,
        top_k: integer(obj, "top_k")?,
        ..GenerationConfig::default()
    };
    match opt(obj, "stop_sequences") {
        None => {}
        // Checked only: the gateway matches them itself (`super::stop`),
        // since Gemini does not say whether one ended its answer.
        Some(Value::Array(list)) if list.len() <= MAX_STOP && list.iter().all(Value::is_string) => {
        }
        Some(Value::Array(list)) if list.len() <= MAX_STOP => {
            return Err(err(
                "stop_sequences",
                "`stop_sequences` must be an array of strings",
            ));
        }
        Some(_) => {
            return Err(err(
                "stop_sequences",
                format!("`stop_sequences` must be an array of at most {MAX_STOP} strings"),
            ));
        }
    }
    let output = match opt(obj, "output_config") {
        None => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => return Err(err("output_config", "`output_config` must be an object")),
    };
    if let Some(format) = output.and_then(|o| opt(o, "format")) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                gc.response_mime_type = Some("application/json".into());
                if let Some(schema) = format.get("schema") {
                    if !depth_within(schema, MAX_COPY_DEPTH) {
                        return Err(err(
                            "output_config.format.schema",
                            "value is nested too deeply",
                        ));
                    }
                    gc.response_json_schema = Some(schema.clone());
                }
            }
            _ => {
                return Err(err(
                    "output_config.format.type",
                    "`output_config.format.type` must be `json_schema`",
                ));
            }
        }
    }
    let effort = output.and_then(|o| o.get("effort")).and_then(Value::as_str);
    let tc = thinking(obj, model, effort)?;
    if !tc.is_empty() {
        gc.thinking_config = Some(tc);
    }
    Ok(gc)
}

/// Whether a model takes a thinking config (Gemini 2.5 and later).
fn model_thinks(model: &str) -> bool {
    const OLDER: [&str; 4] = ["gemini-1", "gemini-2.0", "gemma", "learnlm"];
    !OLDER.iter().any(|p| model.starts_with(p))
        && !model.contains("-image")
        && !model.contains("-tts")
}

/// Thinking budget for an `output_config.effort`.
fn effort_budget(effort: &str) -> i64 {
    match effort {
        "none" => 0,
        "minimal" | "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        "xhigh" | "max" => 32768,
        _ => -1,
    }
}

/// `thinking` (`enabled` with `budget_tokens`, `adaptive`, `disabled`) and
/// `output_config.effort` → `thinkingConfig`: thoughts are returned
/// (`includeThoughts`) when thinking is on and not `display: "omitted"`;
/// the budget is the client's (within the model's maximum), the effort's,
/// or dynamic (`-1`). Gemini 3 takes the effort as `thinkingLevel`.
fn thinking<'a>(
    obj: &Map<String, Value>,
    model: &str,
    effort: Option<&str>,
) -> Result<ThinkingConfig<'a>, TranslateError> {
    let mut tc = ThinkingConfig::default();
    if !model_thinks(model) {
        return Ok(tc);
    }
    let gemini3 = model.starts_with("gemini-3");
    let max = if model.contains("flash") {
        24_576
    } else {
        32_768
    };
    let from_effort = |tc: &mut ThinkingConfig<'a>, e: &str| {
        if gemini3 {
            let level = if matches!(e, "minimal" | "low") {
                "low"
            } else {
                "high"
            };
            tc.thinking_level = Some(Cow::Borrowed(level));
        } else {
            tc.thinking_budget = Some(effort_budget(e).min(max));
        }
    };
    let Some(t) = opt(obj, "thinking") else {
        if let Some(e) = effort {
            from_effort(&mut tc, e);
        }
        return Ok(tc);
    };
    let kind = t
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| err("thinking.type", "`thinking.type` must be a string"))?;
    match kind {
        "enabled" => {
            let t = t
                .as_object()
                .ok_or_else(|| err("thinking", "`thinking` must be an object"))?;
            let budget = integer(t, "budget_tokens")
                .map_err(|_| {
                    err(
                        "thinking.budget_tokens",
                        "`budget_tokens` must be a non-negative integer",
                    )
                })?
                .ok_or_else(|| err("thinking.budget_tokens", "`budget_tokens` is required"))?;
            tc.thinking_budget = Some(budget.min(max));
        }
        "adaptive" => match effort {
            Some(e) => from_effort(&mut tc, e),
            None if gemini3 => {}
            None => tc.thinking_budget = Some(-1),
        },
        "disabled" => {
            // 2.5 Pro cannot switch thinking off: it keeps its default.
            if !model.contains("pro") {
                tc.thinking_budget = Some(0);
            }
            return Ok(tc);
        }
        _ => {
            return Err(err(
                "thinking.type",
                "`thinking.type` must be one of enabled, adaptive, disabled",
            ));
        }
    }
    let omitted = t.get("display").and_then(Value::as_str) == Some("omitted");
    if !omitted && tc.thinking_budget != Some(0) {
        tc.include_thoughts = Some(true);
    }
    Ok(tc)
}
