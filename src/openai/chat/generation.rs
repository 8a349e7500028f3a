//! Sampling parameters, `response_format` and `modalities` → Gemini
//! `generationConfig` entries.
//!
//! Owns [`sampling`], [`response_format`] and [`modalities`], and the
//! number / integer field readers they validate with.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use super::{TranslateError, copy_bounded, err, opt};
use crate::gemini::types::GenerationConfig;

/// A number field copied as sent.
fn number_field(obj: &Map<String, Value>, key: &str) -> Result<Option<Number>, TranslateError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.clone())),
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
pub(super) fn sampling(obj: &Map<String, Value>) -> Result<GenerationConfig<'_>, TranslateError> {
    let mut gc = GenerationConfig {
        temperature: number_field(obj, "temperature")?,
        top_p: number_field(obj, "top_p")?,
        presence_penalty: number_field(obj, "presence_penalty")?,
        frequency_penalty: number_field(obj, "frequency_penalty")?,
        top_k: int_field(obj, "top_k", 0)?,
        candidate_count: int_field(obj, "n", 1)?,
        ..GenerationConfig::default()
    };
    let max_completion = int_field(obj, "max_completion_tokens", 1)?;
    let max_tokens = int_field(obj, "max_tokens", 1)?;
    gc.max_output_tokens = max_completion.or(max_tokens);
    gc.seed = int_field(obj, "seed", i64::MIN)?;
    match opt(obj, "stop") {
        None => {}
        Some(Value::String(s)) => {
            gc.stop_sequences = Some(vec![Cow::Borrowed(s.as_str())]);
        }
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            let all = a.iter().filter_map(Value::as_str).map(Cow::Borrowed);
            gc.stop_sequences = Some(all.collect());
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
            gc.response_logprobs = Some(true);
        }
        Some(_) => return Err(err("logprobs", "`logprobs` must be a boolean")),
    }
    gc.logprobs = int_field(obj, "top_logprobs", 0)?;
    Ok(gc)
}

/// `response_format` → `responseMimeType` / `responseJsonSchema`.
pub(super) fn response_format(
    obj: &Map<String, Value>,
    gc: &mut GenerationConfig,
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
            gc.response_mime_type = Some("application/json".into());
        }
        Some("json_schema") => {
            gc.response_mime_type = Some("application/json".into());
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
                    gc.response_json_schema = Some(s);
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
pub(super) fn modalities(
    obj: &Map<String, Value>,
    gc: &mut GenerationConfig,
) -> Result<(), TranslateError> {
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
            .map(|m| Cow::Owned(m.to_ascii_uppercase()))
            .collect();
        gc.response_modalities = Some(upper);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::openai::chat::tests::{body, req};

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
}
