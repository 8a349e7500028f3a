//! OpenAI `/v1/embeddings` ↔ Gemini `batchEmbedContents`.
//!
//! Owns [`EmbedCall`], [`translate_request`] (validate the OpenAI request
//! and split it into `batchEmbedContents` bodies of at most 100 requests)
//! and [`translate_response`] (join the Gemini answers into one OpenAI
//! embedding list, float or base64, re-normalized when `dimensions`
//! truncated the vectors). Pure: JSON in, JSON out, never panics.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::{TranslateError, bare_model};

/// Most inputs in one request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;
/// Most requests in one `batchEmbedContents` call.
const BATCH_SIZE: usize = 100;

/// The Gemini calls that one `/v1/embeddings` request becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedCall {
    /// Gemini model id (no `models/` prefix).
    pub model: String,
    /// Model name echoed to the client.
    pub client_model: String,
    /// `batchEmbedContents` bodies, at most 100 requests each, in input order.
    pub batches: Vec<Value>,
    /// `encoding_format: "base64"` was requested.
    pub base64: bool,
    /// Number of inputs.
    pub count: usize,
    /// Estimated prompt tokens (Gemini reports none): sum over inputs of ceil(chars/4).
    pub prompt_tokens: u64,
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
fn err(param: &str, message: impl Into<String>) -> TranslateError {
    TranslateError::new(param, message)
}

/// An error about Gemini's answer (no client field to blame).
fn upstream(message: impl Into<String>) -> TranslateError {
    TranslateError {
        message: message.into(),
        param: None,
    }
}

/// A field that is present and not `null`.
fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Translate an OpenAI `/v1/embeddings` request into `batchEmbedContents`
/// bodies. Client mistakes come back as a [`TranslateError`] naming the
/// field. Never panics.
pub fn translate_request(req: &Value) -> Result<EmbedCall, TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| err("body", "the request body must be a JSON object"))?;
    let model = match obj.get("model") {
        Some(Value::String(s)) if !bare_model(s).is_empty() => bare_model(s),
        _ => return Err(err("model", "`model` must be a non-empty string")),
    };

    let token_arrays = || {
        err(
            "input",
            "token arrays are not supported: Gemini embeds text, so send `input` as a string \
             or an array of strings (LangChain's OpenAIEmbeddings: set \
             `check_embedding_ctx_length=False`)",
        )
    };
    let inputs: Vec<&str> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(err("input", "`input` must not be an empty array"));
            }
            if items.len() > MAX_INPUTS {
                return Err(err(
                    "input",
                    format!("`input` may hold at most {MAX_INPUTS} items"),
                ));
            }
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => list.push(s.as_str()),
                    Value::Number(_) | Value::Array(_) => return Err(token_arrays()),
                    _ => {
                        return Err(err("input", "`input` items must be strings"));
                    }
                }
            }
            list
        }
        _ => {
            return Err(err(
                "input",
                "`input` must be a string or an array of strings",
            ));
        }
    };
    if inputs.iter().any(|s| s.is_empty()) {
        return Err(err("input", "`input` must not contain empty strings"));
    }

    let base64 = match opt(obj, "encoding_format") {
        None => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(err(
                "encoding_format",
                "`encoding_format` must be float or base64",
            ));
        }
    };
    let dimensions = match opt(obj, "dimensions") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < 9.0e15)
                        .map(|f| f as u64)
                })
                .filter(|d| *d >= 1)
                .ok_or_else(|| err("dimensions", "`dimensions` must be a positive integer"))?,
        ),
    };
    let task_type = match opt(obj, "task_type") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(err("task_type", "`task_type` must be a string")),
    };

    let model_path = format!("models/{model}");
    let batches = inputs
        .chunks(BATCH_SIZE)
        .map(|chunk| {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|text| {
                    let mut r = Map::new();
                    r.insert("model".into(), Value::from(model_path.as_str()));
                    r.insert("content".into(), json!({"parts": [{"text": text}]}));
                    if let Some(d) = dimensions {
                        r.insert("outputDimensionality".into(), Value::from(d));
                    }
                    if let Some(t) = task_type {
                        r.insert("taskType".into(), Value::from(t));
                    }
                    Value::Object(r)
                })
                .collect();
            object([("requests", Value::Array(requests))])
        })
        .collect();
    let prompt_tokens = inputs
        .iter()
        .map(|s| s.chars().count().div_ceil(4) as u64)
        .sum();

    Ok(EmbedCall {
        model: model.to_string(),
        client_model: model.to_string(),
        batches,
        base64,
        count: inputs.len(),
        prompt_tokens,
    })
}

/// `responses` are the Gemini `batchEmbedContents` answers, one per batch, in order.
///
/// Builds the OpenAI embedding list. A malformed answer (missing
/// `embeddings`, wrong count, non-numeric values) is a [`TranslateError`]
/// without `param`, which the handler reports as a 502. Never panics.
pub fn translate_response(responses: &[Value], call: &EmbedCall) -> Result<Value, TranslateError> {
    if responses.len() != call.batches.len() {
        return Err(upstream(format!(
            "expected {} embedding batch responses from Gemini, got {}",
            call.batches.len(),
            responses.len()
        )));
    }
    let dimensions = call
        .batches
        .first()
        .and_then(|b| b.pointer("/requests/0/outputDimensionality"))
        .and_then(Value::as_u64)
        .and_then(|d| usize::try_from(d).ok());

    let mut data = Vec::with_capacity(call.count);
    for (b, (resp, batch)) in responses.iter().zip(&call.batches).enumerate() {
        let expected = batch
            .get("requests")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let Some(Value::Array(embeddings)) = resp.get("embeddings") else {
            return Err(upstream(format!(
                "Gemini embedding response {b} has no `embeddings` array"
            )));
        };
        if embeddings.len() != expected {
            return Err(upstream(format!(
                "Gemini returned {} embeddings for {expected} inputs",
                embeddings.len()
            )));
        }
        for e in embeddings {
            let index = data.len();
            let Some(Value::Array(values)) = e.get("values") else {
                return Err(upstream(format!("embedding {index} has no `values` array")));
            };
            let embedding = vector(values, dimensions, call.base64)
                .ok_or_else(|| upstream(format!("embedding {index} has non-numeric values")))?;
            data.push(object([
                ("object", Value::from("embedding")),
                ("index", Value::from(index)),
                ("embedding", embedding),
            ]));
        }
    }
    if data.len() != call.count {
        return Err(upstream(format!(
            "Gemini returned {} embeddings for {} inputs",
            data.len(),
            call.count
        )));
    }
    Ok(object([
        ("object", Value::from("list")),
        ("data", Value::Array(data)),
        ("model", Value::from(call.client_model.as_str())),
        (
            "usage",
            json!({"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}),
        ),
    ]))
}

/// One embedding in OpenAI form; `None` if a value is not a number.
///
/// With `dimensions`, longer vectors are cut to that size and the result is
/// scaled to unit length (unless it already is); otherwise values are
/// returned exactly as Gemini sent them.
fn vector(values: &[Value], dimensions: Option<usize>, base64: bool) -> Option<Value> {
    let mut floats: Vec<f64> = values.iter().map(Value::as_f64).collect::<Option<_>>()?;
    let mut changed = false;
    if let Some(d) = dimensions {
        if floats.len() > d {
            floats.truncate(d);
            changed = true;
        }
        let norm = floats.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm.is_finite() && norm > 0.0 && (norm - 1.0).abs() > 1e-6 {
            for x in &mut floats {
                *x /= norm;
            }
            changed = true;
        }
    }
    if base64 {
        let mut bytes = Vec::with_capacity(floats.len() * 4);
        for x in &floats {
            bytes.extend_from_slice(&(*x as f32).to_le_bytes());
        }
        return Some(Value::String(STANDARD.encode(bytes)));
    }
    if changed {
        Some(Value::Array(floats.into_iter().map(Value::from).collect()))
    } else {
        Some(Value::Array(values.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::testing::{deep_array, dismantle};

    fn call(r: Value) -> EmbedCall {
        match translate_request(&r) {
            Ok(c) => c,
            Err(e) => panic!("unexpected error {e:?} for {r}"),
        }
    }

    fn decode(s: &Value) -> Vec<f32> {
        let bytes = STANDARD
            .decode(s.as_str().unwrap_or_default())
            .unwrap_or_default();
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn request_table() {
        // (request, model, client_model, batches, base64, count, prompt_tokens)
        let cases: Vec<(Value, &str, &str, Value, bool, usize, u64)> = vec![
            (
                json!({"model": "gemini-embedding-001", "input": "hello world"}),
                "gemini-embedding-001",
                "gemini-embedding-001",
                json!([{"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello world"}]}}]}]),
                false,
                1,
                3,
            ),
            (
                json!({"model": "models/text-embedding-004", "input": ["a", "bcdef"], "encoding_format": "base64",
                       "dimensions": 768, "task_type": "RETRIEVAL_QUERY", "user": "u"}),
                "text-embedding-004",
                "text-embedding-004",
                json!([{"requests": [
                    {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 768, "taskType": "RETRIEVAL_QUERY"},
                    {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bcdef"}]}, "outputDimensionality": 768, "taskType": "RETRIEVAL_QUERY"}
                ]}]),
                true,
                2,
                3,
            ),
            (
                json!({"model": "m", "input": "éééé", "encoding_format": "float", "dimensions": 8.0, "task_type": null}),
                "m",
                "m",
                json!([{"requests": [{"model": "models/m", "content": {"parts": [{"text": "éééé"}]}, "outputDimensionality": 8}]}]),
                false,
                1,
                1,
            ),
        ];
        for (r, model, client_model, batches, base64, count, tokens) in cases {
            let shown = r.to_string();
            let c = call(r);
            assert_eq!(c.model, model, "{shown}");
            assert_eq!(c.client_model, client_model, "{shown}");
            assert_eq!(Value::Array(c.batches), batches, "{shown}");
            assert_eq!(c.base64, base64, "{shown}");
            assert_eq!(c.count, count, "{shown}");
            assert_eq!(c.prompt_tokens, tokens, "{shown}");
        }
    }

    #[test]
    fn batches_split_at_100_in_order() {
        let inputs: Vec<String> = (0..250).map(|i| format!("t{i}")).collect();
        let c = call(json!({"model": "m", "input": inputs}));
        assert_eq!(c.count, 250);
        let sizes: Vec<usize> = c
            .batches
            .iter()
            .map(|b| b["requests"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert_eq!(
            c.batches[1]["requests"][0]["content"]["parts"][0]["text"],
            "t100"
        );
        assert_eq!(
            c.batches[2]["requests"][49]["content"]["parts"][0]["text"],
            "t249"
        );
        let max: Vec<&str> = vec!["x"; MAX_INPUTS];
        assert_eq!(call(json!({"model": "m", "input": max})).batches.len(), 21);
    }

    #[test]
    fn request_errors() {
        let too_many: Vec<&str> = vec!["x"; MAX_INPUTS + 1];
        let cases: Vec<(Value, &str)> = vec![
            (json!(null), "body"),
            (json!([]), "body"),
            (json!({"input": "x"}), "model"),
            (json!({"model": 1, "input": "x"}), "model"),
            (json!({"model": "models/", "input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": null}), "input"),
            (json!({"model": "m", "input": ""}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": ["a", ""]}), "input"),
            (json!({"model": "m", "input": [1, 2, 3]}), "input"),
            (json!({"model": "m", "input": [[1, 2], [3]]}), "input"),
            (json!({"model": "m", "input": 5}), "input"),
            (json!({"model": "m", "input": [{"text": "a"}]}), "input"),
            (json!({"model": "m", "input": too_many}), "input"),
            (
                json!({"model": "m", "input": "x", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "x", "encoding_format": 1}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": -3}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": 1.5}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": "8"}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "task_type": 3}),
                "task_type",
            ),
        ];
        for (r, want) in cases {
            let shown = r.to_string();
            let e = translate_request(&r).expect_err(&shown);
            assert_eq!(e.param.as_deref(), Some(want), "{shown}");
        }
        let e =
            translate_request(&json!({"model": "m", "input": [[1]]})).expect_err("token arrays");
        assert!(e.message.contains("token arrays are not supported"));
    }

    #[test]
    fn response_float() {
        let c = call(json!({"model": "models/gemini-embedding-001", "input": ["ab", "cdefg"]}));
        let out = translate_response(
            &[json!({"embeddings": [{"values": [0.5, -0.25, 0]}, {"values": [1, 2]}]})],
            &c,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"object": "list", "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 0]},
                {"object": "embedding", "index": 1, "embedding": [1, 2]}
            ], "model": "gemini-embedding-001", "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        );
    }

    #[test]
    fn response_base64() {
        let c = call(json!({"model": "m", "input": "x", "encoding_format": "base64"}));
        let out = translate_response(
            &[json!({"embeddings": [{"values": [0.5, -1.0, 0.125]}]})],
            &c,
        )
        .unwrap();
        let emb = &out["data"][0]["embedding"];
        assert_eq!(emb, &json!("AAAAPwAAgL8AAAA+"));
        assert_eq!(decode(emb), vec![0.5f32, -1.0, 0.125]);
    }

    #[test]
    fn response_dimensions_renormalize() {
        let c = call(json!({"model": "m", "input": ["x", "y", "z"], "dimensions": 2}));
        let out = translate_response(
            &[json!({"embeddings": [
                {"values": [3.0, 4.0]},
                {"values": [0.6, 0.8]},
                {"values": [3.0, 4.0, 100.0]}
            ]})],
            &c,
        )
        .unwrap();
        assert_eq!(out["data"][0]["embedding"], json!([0.6, 0.8]));
        // Already unit length: untouched.
        assert_eq!(out["data"][1]["embedding"], json!([0.6, 0.8]));
        // Longer than asked: cut, then normalized.
        assert_eq!(out["data"][2]["embedding"], json!([0.6, 0.8]));
        // Zero vector stays zero.
        let c =
            call(json!({"model": "m", "input": "x", "dimensions": 2, "encoding_format": "base64"}));
        let out = translate_response(&[json!({"embeddings": [{"values": [0, 0]}]})], &c).unwrap();
        assert_eq!(decode(&out["data"][0]["embedding"]), vec![0.0f32, 0.0]);
    }

    #[test]
    fn response_multiple_batches() {
        let inputs: Vec<String> = (0..150).map(|i| i.to_string()).collect();
        let c = call(json!({"model": "m", "input": inputs}));
        let batch = |n: usize, start: usize| json!({"embeddings": (0..n).map(|i| json!({"values": [(start + i) as f64]})).collect::<Vec<_>>()});
        let out = translate_response(&[batch(100, 0), batch(50, 100)], &c).unwrap();
        let data = out["data"].as_array().unwrap();
        assert_eq!(data.len(), 150);
        for (i, d) in data.iter().enumerate() {
            assert_eq!(d["index"], i);
            assert_eq!(d["embedding"], json!([i as f64]));
        }
    }

    #[test]
    fn response_errors() {
        let c = call(json!({"model": "m", "input": ["a", "b"]}));
        let cases: Vec<Vec<Value>> = vec![
            vec![],
            vec![json!({}), json!({})],
            vec![json!({})],
            vec![json!({"embeddings": {}})],
            vec![json!(null)],
            vec![json!({"embeddings": [{"values": [1]}]})],
            vec![json!({"embeddings": [{"values": [1]}, {"values": [1]}, {"values": [1]}]})],
            vec![json!({"embeddings": [{"values": [1]}, {}]})],
            vec![json!({"embeddings": [{"values": [1]}, {"values": ["1"]}]})],
            vec![json!({"error": {"code": 500}})],
        ];
        for responses in cases {
            let shown = Value::Array(responses.clone()).to_string();
            let e = translate_response(&responses, &c).expect_err(&shown);
            assert_eq!(e.param, None, "{shown}");
        }
    }

    fn deep_object(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            let mut m = Map::new();
            m.insert("embeddings".into(), v);
            v = Value::Object(m);
        }
        v
    }

    #[test]
    fn fuzz_never_panics() {
        let odd: Vec<Value> = vec![
            Value::Null,
            json!(true),
            json!(0),
            json!(-1),
            json!(1.5),
            json!(1e308),
            json!(u64::MAX),
            json!(""),
            json!("x"),
            json!([]),
            json!([null]),
            json!([[1]]),
            json!([1e308, 1e308]),
            json!({}),
            json!({"values": null}),
            json!({"values": [1e308, -1e308]}),
        ];
        let mut makers: Vec<Box<dyn Fn() -> Value>> = Vec::new();
        for v in odd {
            makers.push(Box::new(move || v.clone()));
        }
        makers.push(Box::new(|| deep_array(10_000)));
        makers.push(Box::new(|| deep_object(10_000)));

        let base = json!({"model": "m", "input": ["a", "b"], "dimensions": 2, "encoding_format": "base64", "task_type": "X"});
        let fields = [
            "model",
            "input",
            "dimensions",
            "encoding_format",
            "task_type",
        ];
        let calls = [
            call(json!({"model": "m", "input": ["a", "b"]})),
            call(json!({"model": "m", "input": "a", "dimensions": 1, "encoding_format": "base64"})),
        ];
        let mut runs = 0usize;
        for make in &makers {
            let v = make();
            let _ = translate_request(&v);
            for c in &calls {
                let _ = translate_response(std::slice::from_ref(&v), c);
            }
            dismantle(v);
            for f in fields {
                let mut r = base.clone();
                r[f] = make();
                let _ = translate_request(&r);
                dismantle(r);
                runs += 1;
            }
            let mut r = base.clone();
            r["input"][0] = make();
            let _ = translate_request(&r);
            dismantle(r);
            for c in &calls {
                for p in [
                    "/embeddings",
                    "/embeddings/0",
                    "/embeddings/0/values",
                    "/embeddings/0/values/0",
                ] {
                    let mut resp =
                        json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]});
                    if let Some(slot) = resp.pointer_mut(p) {
                        *slot = make();
                    }
                    let _ = translate_response(std::slice::from_ref(&resp), c);
                    dismantle(resp);
                    runs += 1;
                }
            }
        }
        assert!(runs > 100);
    }
}
