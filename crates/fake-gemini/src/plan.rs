//! What to answer a `generateContent` call with: the output parts (text,
//! thoughts, a function call, code execution, an image), candidates, finish
//! reason and grounding, from the request, its tools and its directives; and
//! Gemini's checks on function-call turns.

use serde_json::Value;

use crate::directives::{MAX_WORDS, lorem, parse_directives};
use crate::encoding::b64_std;
use crate::errors::{GoogleError, err_bad, err_for_status, err_invalid_json};
use crate::json::Json;
use crate::request::{arr, compact_value, field, parts_of, tok, words};
use crate::schema::{gen_from_schema, num_of};

// ---------------------------------------------------------------------------
// generateContent / streamGenerateContent
// ---------------------------------------------------------------------------

/// A 1x1 PNG.
pub(crate) const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
pub(crate) const THOUGHT_TEXT: &str = "**Thinking**\n\nConsidering the question.";
pub(crate) const RENDERED_CONTENT: &str = "<style>\n.container {\n  align-items: center;\n  display: flex;\n}\n</style>\n<div class=\"container\">\n  <a class=\"chip\" href=\"https://example.com/search\">fake search</a>\n</div>\n";

/// One output part.
#[derive(Clone)]
pub(crate) enum OutPart {
    Thought(String),
    Text(String),
    Call {
        name: String,
        args: Json,
        sig: Option<String>,
    },
    Image,
    Code,
    CodeResult,
}

impl OutPart {
    pub(crate) fn json(&self) -> Json {
        match self {
            OutPart::Thought(t) => {
                Json::obj([("text", Json::s(t.clone())), ("thought", Json::Bool(true))])
            }
            OutPart::Text(t) => Json::obj([("text", Json::s(t.clone()))]),
            OutPart::Call { name, args, sig } => {
                let mut j = Json::obj([(
                    "functionCall",
                    Json::obj([("name", Json::s(name.clone())), ("args", args.clone())]),
                )]);
                if let Some(s) = sig {
                    j.push("thoughtSignature", Json::s(s.clone()));
                }
                j
            }
            OutPart::Image => Json::obj([(
                "inlineData",
                Json::obj([
                    ("mimeType", Json::s("image/png")),
                    ("data", Json::s(PNG_1X1)),
                ]),
            )]),
            OutPart::Code => Json::obj([(
                "executableCode",
                Json::obj([
                    ("language", Json::s("PYTHON")),
                    ("code", Json::s("print(2 + 2)\n")),
                ]),
            )]),
            OutPart::CodeResult => Json::obj([(
                "codeExecutionResult",
                Json::obj([
                    ("outcome", Json::s("OUTCOME_OK")),
                    ("output", Json::s("4\n")),
                ]),
            )]),
        }
    }

    /// (candidate tokens, thought tokens)
    pub(crate) fn tokens(&self) -> (u64, u64) {
        match self {
            OutPart::Thought(t) => (0, tok(t)),
            OutPart::Text(t) => (words(t), 0),
            OutPart::Call { args, .. } => (1 + args.compact().len() as u64 / 4, 0),
            OutPart::Image => (1290, 0),
            OutPart::Code => (5, 0),
            OutPart::CodeResult => (2, 0),
        }
    }
}

pub(crate) struct Plan {
    pub(crate) parts: Vec<OutPart>,
    /// Whether candidates i >= 1 prefix their first text with "[i] ".
    pub(crate) prefix: bool,
    pub(crate) n_cand: usize,
    pub(crate) finish: String,
    pub(crate) grounding_query: Option<String>,
    pub(crate) blocked: bool,
    pub(crate) words_per_event: usize,
    pub(crate) gap_ms: u64,
    pub(crate) has_call: bool,
    /// Silence before the first event (non-stream: before the headers), unscaled.
    pub(crate) first_ms: u64,
    /// Answer with a candidate holding no content.
    pub(crate) empty: bool,
}

pub(crate) struct StreamMode {
    pub(crate) sse: bool,
    pub(crate) cut: Option<usize>,
}

pub(crate) fn user_text(parts: &[Value]) -> String {
    let mut s = String::new();
    for p in parts {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        }
    }
    s
}

pub(crate) fn pick_function(req: &Value, model: &str, only: Option<&str>) -> Option<OutPart> {
    let tcfg = field(req, "toolConfig", "tool_config")
        .and_then(|t| field(t, "functionCallingConfig", "function_calling_config"));
    let mode = tcfg
        .and_then(|c| c.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    if mode.eq_ignore_ascii_case("NONE") {
        return None;
    }
    let allowed: Vec<&str> =
        arr(tcfg.and_then(|c| field(c, "allowedFunctionNames", "allowed_function_names")))
            .iter()
            .filter_map(Value::as_str)
            .collect();
    let decl = arr(req.get("tools"))
        .iter()
        .flat_map(|t| arr(field(t, "functionDeclarations", "function_declarations")))
        .find(|d| {
            d.get("name").and_then(Value::as_str).is_some_and(|n| {
                (allowed.is_empty() || allowed.contains(&n)) && only.is_none_or(|o| o == n)
            })
        })?;
    let name = decl
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let schema = decl
        .get("parameters")
        .filter(|v| !v.is_null())
        .or_else(|| field(decl, "parametersJsonSchema", "parameters_json_schema"));
    let args = match schema {
        Some(s) => match gen_from_schema(s) {
            j @ Json::Obj(_) => j,
            _ => Json::Obj(vec![]),
        },
        None => Json::Obj(vec![]),
    };
    let sig = (model.starts_with("gemini-3") || model.starts_with("gemini-2.5"))
        .then(|| b64_std(format!("sig:{name}").as_bytes()));
    Some(OutPart::Call { name, args, sig })
}

/// `calls=N`: N − 1 more allowed declared functions (other than `first`),
/// called in the same turn (Gemini signs only the first call of a turn).
fn more_functions(req: &Value, first: &str, n: usize) -> Vec<OutPart> {
    let names: Vec<String> = arr(req.get("tools"))
        .iter()
        .flat_map(|t| arr(field(t, "functionDeclarations", "function_declarations")))
        .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    names
        .iter()
        .filter(|name| *name != first)
        .take(n.saturating_sub(1))
        .filter_map(|name| pick_function(req, "", Some(name)))
        .map(|p| match p {
            OutPart::Call { name, args, .. } => OutPart::Call {
                name,
                args,
                sig: None,
            },
            other => other,
        })
        .collect()
}

pub(crate) fn has_tool(req: &Value, names: &[(&str, &str)]) -> bool {
    arr(req.get("tools"))
        .iter()
        .any(|t| names.iter().any(|(c, s)| field(t, c, s).is_some()))
}

/// Gemini's checks on tool turns: a turn of `functionResponse` parts answers
/// exactly the calls of the model turn before it, and Gemini 3 wants the
/// `thoughtSignature` of the first call of each model turn since the last
/// user text back.
pub(crate) fn check_function_turns(contents: &[Value], model: &str) -> Result<(), GoogleError> {
    let is_call = |p: &&Value| field(p, "functionCall", "function_call").is_some();
    let is_resp = |p: &&Value| field(p, "functionResponse", "function_response").is_some();
    let mut calls_before = 0;
    for c in contents {
        let parts = parts_of(c);
        let responses = parts.iter().filter(is_resp).count();
        if responses > 0 && responses != calls_before {
            return Err(err_bad(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
            ));
        }
        calls_before = parts.iter().filter(is_call).count();
    }
    if !model.starts_with("gemini-3") {
        return Ok(());
    }
    let current = contents
        .iter()
        .rposition(|c| {
            c.get("role").and_then(Value::as_str) != Some("model")
                && parts_of(c).iter().any(|p| p.get("text").is_some())
        })
        .unwrap_or(0);
    for (i, c) in contents.iter().enumerate().skip(current) {
        if let Some(first) = parts_of(c).iter().find(is_call)
            && field(first, "thoughtSignature", "thought_signature").is_none()
        {
            let name = field(first, "functionCall", "function_call")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(err_bad(format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                i + 1
            )));
        }
    }
    Ok(())
}

pub(crate) fn plan_generate(
    req: &Value,
    model: &str,
    stream: Option<&StreamMode>,
) -> Result<Plan, GoogleError> {
    let contents = checked_contents(req)?;
    check_function_turns(contents, model)?;
    let last = contents.last().map(parts_of).unwrap_or(&[]);
    let (d, clean) = parse_directives(&user_text(last));
    if let Some(code) = d.status.filter(|c| *c != 200) {
        return Err(err_for_status(code, model));
    }
    let gcfg = field(req, "generationConfig", "generation_config");
    let gfield = |c: &str, s: &str| gcfg.and_then(|g| field(g, c, s));
    let n_cand = num_of(gfield("candidateCount", "candidate_count"))
        .unwrap_or(1.0)
        .clamp(1.0, 8.0) as usize;
    let include_thoughts = gfield("thinkingConfig", "thinking_config")
        .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let json_mode = gfield("responseMimeType", "response_mime_type")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    let want_image = d.image
        || arr(gfield("responseModalities", "response_modalities"))
            .iter()
            .any(|m| m.as_str().is_some_and(|m| m.eq_ignore_ascii_case("IMAGE")));
    let mut plan = Plan {
        parts: Vec::new(),
        prefix: true,
        n_cand,
        finish: d.finish.clone().unwrap_or_else(|| "STOP".to_string()),
        grounding_query: None,
        blocked: d.block,
        words_per_event: d.per.unwrap_or(if d.events.is_some() { 1 } else { 4 }),
        gap_ms: d.gap_ms,
        has_call: false,
        first_ms: d.first_ms,
        empty: d.empty,
    };
    if plan.blocked {
        return Ok(plan);
    }
    let fn_responses: Vec<String> = last
        .iter()
        .filter_map(|p| field(p, "functionResponse", "function_response"))
        .map(|f| {
            let name = f.get("name").and_then(Value::as_str).unwrap_or("");
            let resp = f
                .get("response")
                .map(compact_value)
                .unwrap_or_else(|| "{}".into());
            format!("Tool {name} returned: {resp}")
        })
        .collect();
    if let Some(n) = d.events.or(d.words) {
        if include_thoughts {
            plan.parts.push(OutPart::Thought(THOUGHT_TEXT.to_string()));
        }
        plan.parts.push(OutPart::Text(lorem(n)));
    } else if !fn_responses.is_empty() {
        plan.parts.push(OutPart::Text(fn_responses.join("\n")));
    } else if let Some(call) = (!d.nocall)
        .then(|| pick_function(req, model, d.call.as_deref()))
        .flatten()
    {
        plan.has_call = true;
        let first = match &call {
            OutPart::Call { name, .. } => name.clone(),
            _ => String::new(),
        };
        plan.parts.push(call);
        if let Some(n) = d.calls {
            plan.parts.extend(more_functions(req, &first, n));
        }
    } else if json_mode {
        plan.prefix = false;
        let schema = [
            ("responseJsonSchema", "response_json_schema"),
            ("_responseJsonSchema", "_response_json_schema"),
            ("responseSchema", "response_schema"),
        ]
        .iter()
        .find_map(|(c, s)| gfield(c, s));
        let j = match schema {
            Some(s) => gen_from_schema(s),
            None => Json::obj([("answer", Json::s("ok"))]),
        };
        plan.parts.push(OutPart::Text(j.pretty()));
    } else {
        echo_answer(req, last, clean.trim(), include_thoughts, &mut plan);
    }
    if want_image {
        plan.parts.push(OutPart::Image);
    }
    // `per=N` chooses the events itself (it must give more than the cut).
    if let Some(n) = stream.and_then(|s| s.cut).filter(|_| d.per.is_none()) {
        pad_for_cut(&mut plan, n);
    }
    Ok(plan)
}

/// Google's checks on `contents`: present, a list of objects each with parts.
fn checked_contents(req: &Value) -> Result<&[Value], GoogleError> {
    let contents = match req.get("contents") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => {
            return Err(err_invalid_json(&format!(
                "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), {}",
                compact_value(other)
            )));
        }
    };
    if contents.is_empty() {
        return Err(err_bad(
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    }
    for (i, c) in contents.iter().enumerate() {
        if !c.is_object() {
            return Err(err_invalid_json(&format!(
                "Invalid value at 'contents[{i}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), {}",
                compact_value(c)
            )));
        }
        if parts_of(c).is_empty() {
            return Err(err_bad(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )));
        }
    }
    Ok(contents)
}

/// The default answer: an echo of the last user text (naming any inline
/// parts received), with a thought, grounding and code execution when the
/// request asks for them.
fn echo_answer(req: &Value, last: &[Value], clean: &str, include_thoughts: bool, plan: &mut Plan) {
    let mut text = if clean.is_empty() {
        "Hello from the fake Gemini.".to_string()
    } else {
        format!("Echo: {clean}")
    };
    let mimes: Vec<&str> = last
        .iter()
        .filter_map(|p| field(p, "inlineData", "inline_data"))
        .map(|d| {
            field(d, "mimeType", "mime_type")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
        })
        .collect();
    if !mimes.is_empty() {
        if clean.is_empty() {
            text = "Echo:".to_string();
        }
        let mut uniq: Vec<&str> = Vec::new();
        for m in &mimes {
            if !uniq.contains(m) {
                uniq.push(m);
            }
        }
        text.push_str(&format!(
            " (received {} {} part{})",
            mimes.len(),
            uniq.join(", "),
            if mimes.len() == 1 { "" } else { "s" }
        ));
    }
    if include_thoughts {
        plan.parts.push(OutPart::Thought(THOUGHT_TEXT.to_string()));
    }
    plan.parts.push(OutPart::Text(text));
    if has_tool(
        req,
        &[
            ("googleSearch", "google_search"),
            ("googleSearchRetrieval", "google_search_retrieval"),
        ],
    ) {
        plan.grounding_query = Some(if clean.is_empty() {
            "fake search".to_string()
        } else {
            clean.to_string()
        });
    }
    if has_tool(req, &[("codeExecution", "code_execution")]) {
        plan.parts
            .push(OutPart::Text("Let me compute it.".to_string()));
        plan.parts.push(OutPart::Code);
        plan.parts.push(OutPart::CodeResult);
        plan.parts
            .push(OutPart::Text("The answer is 4.".to_string()));
    }
}

// A cut stream must have more events than the cut point: one word per event
// and enough words in the last text part.
fn pad_for_cut(plan: &mut Plan, n: usize) {
    plan.words_per_event = 1;
    if let Some(OutPart::Text(t)) = plan
        .parts
        .iter_mut()
        .rev()
        .find(|p| matches!(p, OutPart::Text(_)))
    {
        let have = words(t) as usize;
        let need = n.min(MAX_WORDS) + 1;
        if have < need {
            if !t.is_empty() {
                t.push(' ');
            }
            t.push_str(&lorem(need - have));
        }
    }
}

/// Parts for candidate `i` (prefixing the first text with "[i] ").
pub(crate) fn prefixed(parts: &[OutPart], i: usize, prefix: bool) -> Vec<OutPart> {
    let mut v = parts.to_vec();
    if i > 0
        && prefix
        && let Some(OutPart::Text(t)) = v.iter_mut().find(|p| matches!(p, OutPart::Text(_)))
    {
        *t = format!("[{i}] {t}");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn snake_case_fields_are_honoured() {
        let fake = Fake::start().await.unwrap();
        let body = json!({
            "system_instruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [
                {"text": "look"},
                {"inline_data": {"mime_type": "image/png", "data": PNG_1X1}}
            ]}],
            "generation_config": {"candidate_count": 2, "thinking_config": {"include_thoughts": true}}
        });
        let v = post(&fake, GEN, "k", &body).await.json();
        let c = v["candidates"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["content"]["parts"][0]["thought"], true);
        assert_eq!(text_of(&v, 0), "Echo: look (received 1 image/png part)");
        assert_eq!(text_of(&v, 1), "[1] Echo: look (received 1 image/png part)");
        assert_eq!(c[1]["index"], 1);
        let u = &v["usageMetadata"];
        assert!(u["thoughtsTokenCount"].as_u64().unwrap() > 0);
        assert_eq!(u["promptTokensDetails"][1]["modality"], "IMAGE");
        assert_eq!(
            u["totalTokenCount"].as_u64().unwrap(),
            u["promptTokenCount"].as_u64().unwrap()
                + u["candidatesTokenCount"].as_u64().unwrap()
                + u["thoughtsTokenCount"].as_u64().unwrap()
        );
        // Streaming: thought in its own first event, both candidates per chunk.
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        assert_eq!(
            ev[0]["candidates"][0]["content"]["parts"][0]["thought"],
            true
        );
        assert!(ev[0]["usageMetadata"].get("candidatesTokenCount").is_none());
        let last = ev.last().unwrap();
        assert_eq!(last["candidates"][1]["finishReason"], "STOP");
        let t1: String = ev.iter().map(|e| text_of(e, 1)).collect();
        assert_eq!(t1, "[1] Echo: look (received 1 image/png part)");
    }

    fn weather_tools() -> Value {
        json!([{"function_declarations": [
            {"name": "get_time", "description": "time", "parameters": {"type": "object", "properties": {}}},
            {"name": "get_weather", "description": "weather", "parameters": {
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING"},
                    "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "INTEGER"},
                    "extra": {"type": "BOOLEAN"}
                },
                "required": ["city", "unit", "days"]
            }}
        ]}])
    }

    #[tokio::test]
    async fn function_call_answer_and_stream_shape() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("weather in Paris?");
        body["tools"] = weather_tools();
        body["tool_config"] = json!({"function_calling_config": {"mode": "ANY", "allowed_function_names": ["get_weather"]}});
        let v = post(&fake, GEN, "k", &body).await.json();
        let part = &v["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["functionCall"]["name"], "get_weather");
        assert_eq!(
            part["functionCall"]["args"],
            json!({"city": "Paris", "unit": "celsius", "days": 1})
        );
        assert_eq!(part["thoughtSignature"], b64_std(b"sig:get_weather"));
        assert!(part["functionCall"].get("id").is_none());
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        // Stream: call whole in one event, STOP in a separate one with empty text.
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
            "get_weather"
        );
        assert!(ev[0]["candidates"][0].get("finishReason").is_none());
        assert_eq!(
            ev[1]["candidates"][0]["content"]["parts"],
            json!([{"text": ""}])
        );
        assert_eq!(ev[1]["candidates"][0]["finishReason"], "STOP");
        // No allowed list: first declared function; no signature on gemini-2.0.
        body.as_object_mut().unwrap().remove("tool_config");
        let v = post(
            &fake,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "k",
            &body,
        )
        .await
        .json();
        let part = &v["candidates"][0]["content"]["parts"][0];
        assert_eq!(
            part["functionCall"],
            json!({"name": "get_time", "args": {}})
        );
        assert!(part.get("thoughtSignature").is_none());
        // Mode NONE: plain echo.
        body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
        let v = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(text_of(&v, 0), "Echo: weather in Paris?");
        // Function response turn.
        let body = json!({
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 4}}}]}
            ],
            "tools": weather_tools()
        });
        let v = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(text_of(&v, 0), "Tool get_weather returned: {\"temp\":4}");
    }

    #[tokio::test]
    async fn call_and_nocall_directives() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("weather? [[call=get_weather]]");
        body["tools"] = weather_tools();
        let v = post(&fake, GEN, "k", &body).await.json();
        let part = &v["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["functionCall"]["name"], "get_weather");
        body["contents"][0]["parts"][0]["text"] = json!("weather? [[call=nothing_such]]");
        let v = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(text_of(&v, 0), "Echo: weather?");
        body["contents"][0]["parts"][0]["text"] = json!("just talk [[nocall]]");
        let v = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(text_of(&v, 0), "Echo: just talk");
        // Parallel calls: every declared function, the first one signed.
        body["contents"][0]["parts"][0]["text"] = json!("both [[calls=2]]");
        let v = post(&fake, GEN, "k", &body).await.json();
        let parts = v["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{v}");
        assert!(parts[0]["thoughtSignature"].is_string());
        assert!(parts[1]["thoughtSignature"].is_null());
        assert_ne!(
            parts[0]["functionCall"]["name"],
            parts[1]["functionCall"]["name"]
        );
    }

    #[tokio::test]
    async fn grounding_and_code_execution() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("weather oslo");
        body["tools"] = json!([{"google_search": {}}]);
        let r = post(&fake, GEN, "k", &body).await;
        assert!(r.text().contains("\\u003cstyle\\u003e"));
        let v = r.json();
        let g = &v["candidates"][0]["groundingMetadata"];
        assert_eq!(
            g["groundingChunks"][0]["web"]["uri"],
            "https://example.com/a"
        );
        assert_eq!(g["groundingChunks"][1]["web"]["title"], "Example B");
        assert_eq!(g["webSearchQueries"][0], "weather oslo");
        assert_eq!(
            g["groundingSupports"][0]["segment"]["text"],
            "Echo: weather oslo"
        );
        assert_eq!(g["groundingSupports"][0]["segment"]["endIndex"], 18);
        assert!(
            g["searchEntryPoint"]["renderedContent"]
                .as_str()
                .unwrap()
                .starts_with("<style>")
        );
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        assert!(
            ev.last().unwrap()["candidates"][0]
                .get("groundingMetadata")
                .is_some()
        );
        let mut body = user("compute");
        body["tools"] = json!([{"codeExecution": {}}]);
        let v = post(&fake, GEN, "k", &body).await.json();
        let parts = v["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts[1]["text"], "Let me compute it.");
        assert_eq!(parts[2]["executableCode"]["language"], "PYTHON");
        assert_eq!(parts[3]["codeExecutionResult"]["outcome"], "OUTCOME_OK");
        assert_eq!(parts[4]["text"], "The answer is 4.");
    }
}
