//! Values generated from a JSON schema (`$ref`, `anyOf`, `enum`, formats,
//! bounds, `propertyOrdering`): the arguments of function calls and the
//! answers of JSON mode.

use std::borrow::Cow;

use serde_json::Value;

use crate::json::Json;
use crate::request::{arr, field};

// ---------------------------------------------------------------------------
// Schema-driven value generator (tool args and JSON mode)
// ---------------------------------------------------------------------------

pub(crate) fn num_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn resolve_ref<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let path = r.strip_prefix("#")?;
    if path.is_empty() {
        return Some(root);
    }
    root.pointer(path)
}

/// Generate a value for a schema (at most `GEN_BUDGET` nodes, depth 16).
pub(crate) fn gen_from_schema(s: &Value) -> Json {
    let mut budget = GEN_BUDGET;
    gen_value(s, s, "", 0, &mut budget)
}

pub(crate) const GEN_BUDGET: u32 = 10_000;

pub(crate) fn gen_value(s: &Value, root: &Value, name: &str, depth: u32, budget: &mut u32) -> Json {
    if depth > 16 || *budget == 0 {
        return Json::Null;
    }
    *budget -= 1;
    let Some(o) = s.as_object() else {
        return Json::s("test");
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        if let Some(t) = resolve_ref(root, r) {
            return gen_value(t, root, name, depth + 1, budget);
        }
        return Json::Obj(vec![]);
    }
    if let Some(c) = o.get("const") {
        return Json::from_value(c);
    }
    if let Some(e) = o
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return Json::from_value(e);
    }
    for k in ["anyOf", "any_of", "oneOf", "one_of", "allOf", "all_of"] {
        let branches = arr(o.get(k));
        let non_null = branches.iter().find(|b| {
            b.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| !t.eq_ignore_ascii_case("null"))
        });
        if let Some(b) = non_null.or(branches.first()) {
            return gen_value(b, root, name, depth + 1, budget);
        }
    }
    let ty = match o.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .or_else(|| ts.first().and_then(Value::as_str))
            .unwrap_or("string")
            .to_ascii_lowercase(),
        _ => {
            if o.contains_key("properties") {
                "object".into()
            } else if o.contains_key("items") {
                "array".into()
            } else {
                "string".into()
            }
        }
    };
    let min = num_of(o.get("minimum")).or(num_of(o.get("exclusiveMinimum")).map(|m| m + 1.0));
    let max = num_of(o.get("maximum")).or(num_of(o.get("exclusiveMaximum")).map(|m| m - 1.0));
    let clamp = |x: f64| {
        let x = min.map_or(x, |m| x.max(m));
        max.map_or(x, |m| x.min(m))
    };
    match ty.as_str() {
        "string" => Json::s(gen_string(o, name)),
        "integer" => Json::Int(clamp(1.0).round() as i64),
        "number" => Json::F64(clamp(1.5)),
        "boolean" => Json::Bool(true),
        "null" => Json::Null,
        "array" => {
            let min_items = num_of(field(s, "minItems", "min_items"))
                .unwrap_or(1.0)
                .max(1.0);
            let max_items = num_of(field(s, "maxItems", "max_items")).unwrap_or(10.0);
            let n = min_items.min(max_items).clamp(0.0, 10.0) as usize;
            let item_schema = o.get("items").cloned().unwrap_or(Value::Null);
            let item_name = name.strip_suffix('s').unwrap_or(name);
            Json::Arr(
                (0..n)
                    .map(|_| gen_value(&item_schema, root, item_name, depth + 1, budget))
                    .collect(),
            )
        }
        "object" => {
            let props = o.get("properties").and_then(Value::as_object);
            let required: Option<Vec<&str>> = o
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect());
            let mut names: Vec<&str> = Vec::new();
            for n in arr(field(s, "propertyOrdering", "property_ordering")) {
                if let Some(n) = n.as_str()
                    && props.is_some_and(|p| p.contains_key(n))
                    && !names.contains(&n)
                {
                    names.push(n);
                }
            }
            if let Some(p) = props {
                for k in p.keys() {
                    if !names.contains(&k.as_str()) {
                        names.push(k);
                    }
                }
            }
            let mut out = Vec::new();
            for n in names {
                if required.as_ref().is_some_and(|r| !r.contains(&n)) {
                    continue;
                }
                let sch = props.and_then(|p| p.get(n)).unwrap_or(&Value::Null);
                out.push((
                    Cow::Owned(n.to_string()),
                    gen_value(sch, root, n, depth + 1, budget),
                ));
            }
            Json::Obj(out)
        }
        _ => Json::s("test"),
    }
}

pub(crate) fn gen_string(o: &serde_json::Map<String, Value>, name: &str) -> String {
    let fmt = o.get("format").and_then(Value::as_str).unwrap_or("");
    let lname = name.to_ascii_lowercase();
    let mut s = match fmt {
        "date-time" => "2025-01-01T00:00:00Z".to_string(),
        "date" => "2025-01-01".to_string(),
        "time" => "12:00:00".to_string(),
        "email" => "test@example.com".to_string(),
        "uri" | "url" => "https://example.com".to_string(),
        "uuid" => "00000000-0000-4000-8000-000000000000".to_string(),
        _ if lname.contains("city") || lname.contains("location") => "Paris".to_string(),
        _ => "test".to_string(),
    };
    let min_len = num_of(o.get("minLength")).unwrap_or(0.0).clamp(0.0, 1000.0) as usize;
    while s.chars().count() < min_len {
        s.push('x');
    }
    if let Some(max_len) = num_of(o.get("maxLength")) {
        let max_len = max_len.max(0.0) as usize;
        s = s.chars().take(max_len).collect();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn json_schema_answer_parses() {
        let fake = Fake::start().await.unwrap();
        let mut body = user("give me json");
        body["generationConfig"] = json!({
            "responseMimeType": "application/json",
            "responseJsonSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer", "minimum": 18},
                    "score": {"type": "number"},
                    "ok": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "kind": {"enum": ["a", "b"]},
                    "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
                    "nested": {"$ref": "#/$defs/Inner"},
                    "when": {"type": ["string", "null"], "format": "date-time"}
                },
                "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}}
            }
        });
        let v = post(&fake, GEN, "k", &body).await.json();
        let parsed: Value = serde_json::from_str(&text_of(&v, 0)).unwrap();
        assert_eq!(parsed["name"], "test");
        assert_eq!(parsed["age"], 18);
        assert_eq!(parsed["score"], 1.5);
        assert_eq!(parsed["ok"], true);
        assert_eq!(parsed["tags"], json!(["test"]));
        assert_eq!(parsed["kind"], "a");
        assert_eq!(parsed["maybe"], 1);
        assert_eq!(parsed["nested"], json!({"x": 1.5}));
        assert_eq!(parsed["when"], "2025-01-01T00:00:00Z");
        // No schema; snake_case; multi-candidate stays valid JSON; stream concatenates.
        let mut body = user("json please");
        body["generation_config"] =
            json!({"response_mime_type": "application/json", "candidate_count": 2});
        let v = post(&fake, GEN, "k", &body).await.json();
        for i in 0..2 {
            let p: Value = serde_json::from_str(&text_of(&v, i)).unwrap();
            assert_eq!(p, json!({"answer": "ok"}));
        }
        let ev = sse_events(&post(&fake, SSE, "k", &body).await);
        let s: String = ev.iter().map(|e| text_of(e, 0)).collect();
        assert_eq!(
            serde_json::from_str::<Value>(&s).unwrap(),
            json!({"answer": "ok"})
        );
        // Gemini OpenAPI schema with responseSchema.
        let mut body = user("x");
        body["generationConfig"] = json!({"responseMimeType": "application/json",
            "responseSchema": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"recipe_name": {"type": "STRING"}}, "propertyOrdering": ["recipe_name"]}}});
        let v = post(&fake, GEN, "k", &body).await.json();
        let p: Value = serde_json::from_str(&text_of(&v, 0)).unwrap();
        assert_eq!(p, json!([{"recipe_name": "test"}]));
    }
}
