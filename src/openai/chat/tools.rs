//! OpenAI `tools` / legacy `functions` and `tool_choice` / legacy
//! `function_call` → Gemini `tools` and `toolConfig`.
//!
//! Owns [`collect_tools`] (function declarations with cleaned schemas and
//! the built-in Google Search, code execution and URL context tools),
//! [`function_tool`] and [`tool_config`] (`allowed_tools` included).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{TranslateError, clip, err, non_empty_str, opt};
use crate::gemini::types::{FunctionCallingConfig, FunctionDeclaration, ToolConfig};
use crate::openai::schema::clean_schema;

/// Most tools accepted in one request.
const MAX_TOOLS: usize = 1_000;

/// What the request's `tools` / `functions` asked for.
pub(super) struct Tools<'a> {
    /// Function declarations.
    pub(super) decls: Vec<FunctionDeclaration<'a>>,
    /// Built-in Google Search.
    pub(super) search: bool,
    /// Built-in code execution.
    pub(super) code: bool,
    /// Built-in URL context.
    pub(super) url: bool,
}

/// Read `tools` (and legacy `functions`).
pub(super) fn collect_tools(obj: &Map<String, Value>) -> Result<Tools<'_>, TranslateError> {
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
fn function_tool<'a>(
    f: &'a Map<String, Value>,
    at: &str,
    t: &mut Tools<'a>,
) -> Result<(), TranslateError> {
    let name = non_empty_str(f.get("name"))
        .ok_or_else(|| err(format!("{at}.name"), "`name` must be a non-empty string"))?;
    if name == "googleSearch" || name == "google_search" {
        t.search = true;
        return Ok(());
    }
    let mut decl = FunctionDeclaration {
        name: Some(name.into()),
        ..FunctionDeclaration::default()
    };
    match opt(f, "description") {
        None => {}
        Some(Value::String(d)) => {
            decl.description = Some(d.as_str().into());
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
                decl.parameters = Some(cleaned);
            }
        }
        Some(_) => {
            return Err(err(
                format!("{at}.parameters"),
                "`parameters` must be an object",
            ));
        }
    }
    t.decls.push(decl);
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
pub(super) fn tool_config<'a>(
    obj: &'a Map<String, Value>,
    decls: &mut Vec<FunctionDeclaration<'_>>,
) -> Result<Option<ToolConfig<'a>>, TranslateError> {
    let (choice, param) = match opt(obj, "tool_choice") {
        Some(c) => (c, "tool_choice"),
        None => match opt(obj, "function_call") {
            Some(c) => (c, "function_call"),
            None => return Ok(None),
        },
    };
    let mode = |m: &'static str| -> Result<Option<ToolConfig<'a>>, TranslateError> {
        Ok(Some(calling(m, None)))
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
                        Ok(Some(calling("ANY", Some(names))))
                    } else {
                        decls.retain(|d| d.name.as_deref().is_some_and(|n| names.contains(&n)));
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
                    Ok(Some(calling("ANY", Some(vec![name]))))
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

/// A `toolConfig` with this function calling mode (and allowed names).
fn calling<'a>(mode: &'static str, names: Option<Vec<&'a str>>) -> ToolConfig<'a> {
    ToolConfig {
        function_calling_config: Some(FunctionCallingConfig {
            allowed_function_names: names.map(|n| n.into_iter().map(Cow::Borrowed).collect()),
            mode: Some(mode.into()),
            ..FunctionCallingConfig::default()
        }),
        ..ToolConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::openai::Options;
    use crate::openai::chat::tests::{body_with, plain, req};

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
}
