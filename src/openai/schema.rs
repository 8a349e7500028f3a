//! JSON Schema → Gemini `Schema` cleaning.
//!
//! Owns [`clean_schema`], which turns the JSON Schema that OpenAI clients,
//! MCP servers and Pydantic models send (for tool `parameters`) into the
//! OpenAPI 3.0 subset that Gemini's `functionDeclarations[].parameters` and
//! `responseSchema` accept, keeping as much meaning as that subset can hold:
//! local `$ref`s are inlined, `anyOf [X, null]` becomes `X` + `nullable`,
//! `type: [.., "null"]` becomes `nullable`, `const` becomes a one-value
//! `enum`, and keys Gemini rejects (`additionalProperties`, `$schema`, …) are
//! dropped. Hostile input is bounded: nesting is cut at depth 64, `$ref`
//! expansion at depth 16 and the total output at a fixed node budget, so the
//! function never overflows the stack or explodes in size.

use serde_json::{Map, Value};

/// Deepest schema nesting that is followed; deeper sub-schemas are replaced.
const MAX_DEPTH: usize = 64;
/// Deepest chain of `$ref` expansions; deeper references are replaced.
const MAX_REF_DEPTH: usize = 16;
/// Most schema nodes produced for one call (bounds `$ref` blow-up).
const NODE_BUDGET: usize = 10_000;
/// Deepest literal (`default`, object `enum` values) that is copied.
const MAX_LITERAL_DEPTH: usize = 16;

/// Clean a JSON Schema into what Gemini's `parameters` / `responseSchema`
/// (OpenAPI 3.0 subset) accepts, without destroying its meaning.
///
/// Never panics; any JSON value is accepted (non-object input yields `{}`).
pub fn clean_schema(schema: &Value) -> Value {
    let mut cx = Ctx {
        root: schema,
        ref_depth: 0,
        budget: NODE_BUDGET,
    };
    Value::Object(clean_node(schema, &mut cx, 0))
}

/// State shared across one [`clean_schema`] call.
struct Ctx<'a> {
    /// The document `$ref`s are resolved against.
    root: &'a Value,
    /// `$ref` expansions on the current path.
    ref_depth: usize,
    /// Nodes that may still be produced.
    budget: usize,
}

/// The replacement for anything cut off by a limit.
fn opaque_object() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), Value::from("object"));
    m
}

/// True when `s` (a JSON Schema type name) is `null`, in any case.
fn is_null_type(s: &str) -> bool {
    s.eq_ignore_ascii_case("null")
}

/// True for a branch like `{"type": "null"}` or `{"type": ["null"]}`.
fn is_null_schema(v: &Value) -> bool {
    match v.get("type") {
        Some(Value::String(t)) => is_null_type(t),
        Some(Value::Array(ts)) => {
            !ts.is_empty() && ts.iter().all(|t| t.as_str().is_some_and(is_null_type))
        }
        _ => false,
    }
}

/// True when `v` nests no deeper than `max` levels.
pub(crate) fn depth_within(v: &Value, max: usize) -> bool {
    match v {
        Value::Array(a) => max > 0 && a.iter().all(|x| depth_within(x, max - 1)),
        Value::Object(o) => max > 0 && o.values().all(|x| depth_within(x, max - 1)),
        _ => true,
    }
}

/// A non-negative integer given as an integer or an integral float.
fn as_count(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 {
        Some(f as u64)
    } else {
        None
    }
}

/// Merge a cleaned schema `m` into `out`: `properties` are united,
/// `required` lists are joined, anything else is overwritten.
fn merge(out: &mut Map<String, Value>, m: Map<String, Value>) {
    for (k, v) in m {
        match (k.as_str(), v) {
            ("properties", Value::Object(props)) => {
                match out.get_mut("properties") {
                    Some(Value::Object(existing)) => existing.extend(props),
                    _ => {
                        out.insert(k, Value::Object(props));
                    }
                };
            }
            ("required", Value::Array(req)) => match out.get_mut("required") {
                Some(Value::Array(existing)) => {
                    for r in req {
                        if !existing.contains(&r) {
                            existing.push(r);
                        }
                    }
                }
                _ => {
                    out.insert(k, Value::Array(req));
                }
            },
            (_, v) => {
                out.insert(k, v);
            }
        }
    }
}

/// Stringify one `enum`/`const` value; `None` for values that are dropped.
fn enum_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => {
            if depth_within(v, MAX_LITERAL_DEPTH) {
                Some(v.to_string())
            } else {
                None
            }
        }
    }
}

/// Resolve a local `$ref` (`#`, `#/$defs/X`, `#/definitions/X`, any local
/// JSON pointer) against the root document.
fn resolve<'a>(r: &str, root: &'a Value) -> Option<&'a Value> {
    let ptr = r.strip_prefix('#')?;
    if !ptr.is_empty() && !ptr.starts_with('/') {
        return None;
    }
    root.pointer(ptr)
}

/// Keys that belong to one schema type; Gemini refuses them elsewhere
/// (e.g. "properties: only allowed for OBJECT type").
fn type_keys(ty: &str) -> &'static [&'static str] {
    const OBJECT: &[&str] = &["properties", "required", "propertyOrdering"];
    const ARRAY: &[&str] = &["items", "minItems", "maxItems"];
    const STRING: &[&str] = &["minLength", "maxLength", "pattern"];
    const NUMBER: &[&str] = &["minimum", "maximum"];
    match ty.to_ascii_lowercase().as_str() {
        "object" => OBJECT,
        "array" => ARRAY,
        "string" => STRING,
        "number" | "integer" => NUMBER,
        _ => &[],
    }
}

/// Every key that belongs to some type.
const TYPED_KEYS: [&str; 11] = [
    "properties",
    "required",
    "propertyOrdering",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
];

/// Gemini wants `items` on every array; what items of unknown type become.
fn any_items() -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::from("string"));
    Value::Object(m)
}

/// Put type-specific keys where Gemini accepts them:
/// * a union made from a `type` list gets each key moved into its branch
///   (`properties` into the object branch, `items` into the array branch…);
/// * a node without `type` but with `properties` (or `items`) is an object
///   (or an array);
/// * keys of another type are dropped (`properties` on a string);
/// * an array without `items` gets string items (Gemini: "items: missing field").
fn fit_types(out: &mut Map<String, Value>, type_union: bool) {
    if type_union && !out.contains_key("type") {
        let moved: Map<String, Value> = TYPED_KEYS
            .iter()
            .filter_map(|k| out.remove(*k).map(|v| ((*k).to_string(), v)))
            .collect();
        if let Some(Value::Array(variants)) = out.get_mut("anyOf") {
            for v in variants.iter_mut() {
                let Value::Object(branch) = v else { continue };
                let ty = branch
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                for k in type_keys(&ty) {
                    if let Some(x) = moved.get(*k) {
                        branch.insert((*k).to_string(), x.clone());
                    }
                }
                if ty.eq_ignore_ascii_case("array") && !branch.contains_key("items") {
                    branch.insert("items".into(), any_items());
                }
                tidy(branch);
            }
        }
        return;
    }
    if !out.contains_key("type") && !out.contains_key("anyOf") {
        if out.contains_key("properties") {
            out.insert("type".into(), Value::from("object"));
        } else if out.contains_key("items") {
            out.insert("type".into(), Value::from("array"));
        }
    }
    let Some(ty) = out.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    let keep = type_keys(&ty);
    out.retain(|k, _| !TYPED_KEYS.contains(&k.as_str()) || keep.contains(&k.as_str()));
    if ty.eq_ignore_ascii_case("array") && !out.contains_key("items") {
        out.insert("items".into(), any_items());
    }
}

/// Clean one (sub-)schema into a Gemini schema object.
fn clean_node(node: &Value, cx: &mut Ctx<'_>, depth: usize) -> Map<String, Value> {
    let Some(obj) = node.as_object() else {
        return Map::new();
    };
    if depth > MAX_DEPTH || cx.budget == 0 {
        return opaque_object();
    }
    cx.budget -= 1;

    let mut out = Map::new();
    let mut nullable = false;

    // 1. Inlined sources ($ref, allOf, anyOf/oneOf), overridden by the node's own keys below.
    inline_sources(obj, cx, depth, &mut out, &mut nullable);

    // 2. The node's own keys.
    let mut own = Map::new();
    let type_union = own_type(obj.get("type"), &mut own, &mut nullable);
    own_keys(obj, cx, depth, &mut own, &mut nullable);
    merge(&mut out, own);

    // 3. enum / const: Gemini only takes string enums.
    string_enum(obj, &mut out, &mut nullable);

    // 4. format, checked against the final type.
    keep_format(obj, &mut out);

    // 5. Keys where Gemini allows them: per type, with every array given
    // its `items`.
    fit_types(&mut out, type_union);

    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }

    tidy(&mut out);
    out
}

/// Step 1 of [`clean_node`]: what `$ref`, `allOf` and `anyOf`/`oneOf`
/// contribute (a null alternative makes the node nullable).
fn inline_sources(
    obj: &Map<String, Value>,
    cx: &mut Ctx<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
    nullable: &mut bool,
) {
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let root = cx.root;
        if let Some(target) = resolve(r, root) {
            if cx.ref_depth >= MAX_REF_DEPTH {
                merge(out, opaque_object());
            } else {
                cx.ref_depth += 1;
                let m = clean_node(target, cx, depth + 1);
                cx.ref_depth -= 1;
                merge(out, m);
            }
        }
    }
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for sub in all {
            let m = clean_node(sub, cx, depth + 1);
            merge(out, m);
        }
    }
    let alts = obj
        .get("anyOf")
        .and_then(Value::as_array)
        .or_else(|| obj.get("oneOf").and_then(Value::as_array));
    if let Some(alts) = alts {
        let mut variants = Vec::new();
        for a in alts {
            if is_null_schema(a) {
                *nullable = true;
            } else {
                variants.push(clean_node(a, cx, depth + 1));
            }
        }
        if variants.len() == 1 {
            if let Some(only) = variants.pop() {
                merge(out, only);
            }
        } else if !variants.is_empty() {
            out.insert(
                "anyOf".into(),
                Value::Array(variants.into_iter().map(Value::Object).collect()),
            );
        }
    }
}

/// The node's `type` (a string or a list; `null` makes it nullable, several
/// types become an `anyOf`). Returns whether it was a union.
fn own_type(ty: Option<&Value>, own: &mut Map<String, Value>, nullable: &mut bool) -> bool {
    let mut type_union = false;
    match ty {
        Some(Value::String(t)) => {
            if is_null_type(t) {
                *nullable = true;
            } else {
                own.insert("type".into(), Value::String(t.clone()));
            }
        }
        Some(Value::Array(ts)) => {
            let mut kept: Vec<&str> = Vec::new();
            for t in ts.iter().filter_map(Value::as_str) {
                if is_null_type(t) {
                    *nullable = true;
                } else if !kept.contains(&t) {
                    kept.push(t);
                }
            }
            match kept.as_slice() {
                [] => {}
                [one] => {
                    own.insert("type".into(), Value::from(*one));
                }
                many => {
                    type_union = true;
                    let variants = many
                        .iter()
                        .map(|t| {
                            let mut m = Map::new();
                            m.insert("type".into(), Value::from(*t));
                            Value::Object(m)
                        })
                        .collect();
                    own.insert("anyOf".into(), Value::Array(variants));
                }
            }
        }
        _ => {}
    }
    type_union
}

/// The node's other keys Gemini understands, cleaned (sub-schemas recursively).
fn own_keys(
    obj: &Map<String, Value>,
    cx: &mut Ctx<'_>,
    depth: usize,
    own: &mut Map<String, Value>,
    nullable: &mut bool,
) {
    for (k, v) in obj {
        match k.as_str() {
            "title" | "description" | "pattern" => {
                if let Value::String(s) = v {
                    own.insert(k.clone(), Value::String(s.clone()));
                }
            }
            "nullable" if v.as_bool() == Some(true) => {
                *nullable = true;
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" => {
                if let Some(n) = as_count(v) {
                    own.insert(k.clone(), Value::from(n));
                }
            }
            "minimum" | "maximum" if v.is_number() => {
                own.insert(k.clone(), v.clone());
            }
            "items" => match v {
                Value::Object(_) => {
                    own.insert(k.clone(), Value::Object(clean_node(v, cx, depth + 1)));
                }
                Value::Array(tuple) => {
                    let mut variants: Vec<Value> = tuple
                        .iter()
                        .filter(|s| s.is_object())
                        .map(|s| Value::Object(clean_node(s, cx, depth + 1)))
                        .collect();
                    let items = match variants.len() {
                        0 => None,
                        1 => variants.pop(),
                        _ => {
                            let mut m = Map::new();
                            m.insert("anyOf".into(), Value::Array(variants));
                            Some(Value::Object(m))
                        }
                    };
                    if let Some(items) = items {
                        own.insert(k.clone(), items);
                    }
                }
                _ => {}
            },
            "properties" => {
                if let Value::Object(props) = v {
                    let mut cleaned = Map::new();
                    for (name, sub) in props {
                        cleaned.insert(name.clone(), Value::Object(clean_node(sub, cx, depth + 1)));
                    }
                    own.insert(k.clone(), Value::Object(cleaned));
                }
            }
            "required" => {
                if let Value::Array(req) = v {
                    let names: Vec<Value> = req.iter().filter(|r| r.is_string()).cloned().collect();
                    own.insert(k.clone(), Value::Array(names));
                }
            }
            "propertyOrdering" => {
                if let Value::Array(order) = v {
                    let names: Vec<Value> =
                        order.iter().filter(|r| r.is_string()).cloned().collect();
                    own.insert(k.clone(), Value::Array(names));
                }
            }
            "default" if depth_within(v, MAX_LITERAL_DEPTH) => {
                own.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

/// `enum` / `const` as Gemini takes them: strings only, typed `string`
/// (a null value makes the node nullable).
fn string_enum(obj: &Map<String, Value>, out: &mut Map<String, Value>, nullable: &mut bool) {
    let enum_src: Option<Vec<&Value>> = match obj.get("enum") {
        Some(Value::Array(vals)) => Some(vals.iter().collect()),
        _ => obj.get("const").map(|c| vec![c]),
    };
    if let Some(vals) = enum_src {
        let mut strings: Vec<Value> = Vec::with_capacity(vals.len());
        for v in vals {
            if v.is_null() {
                *nullable = true;
            } else if let Some(s) = enum_string(v) {
                strings.push(Value::String(s));
            }
        }
        if !strings.is_empty() {
            out.insert("enum".into(), Value::Array(strings));
            let is_string = out
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("string"));
            if !is_string {
                out.insert("type".into(), Value::from("string"));
            }
        }
    }
}

/// `format`, kept only where Gemini accepts it for the node's final type.
fn keep_format(obj: &Map<String, Value>, out: &mut Map<String, Value>) {
    if let Some(fmt) = obj.get("format").and_then(Value::as_str) {
        let ty = out.get("type").and_then(Value::as_str).unwrap_or("");
        let keep = if ty.eq_ignore_ascii_case("string") {
            matches!(fmt, "enum" | "date-time")
        } else if ty.eq_ignore_ascii_case("integer") || ty.eq_ignore_ascii_case("number") {
            matches!(fmt, "int32" | "int64" | "float" | "double")
        } else {
            false
        };
        if keep {
            out.insert("format".into(), Value::from(fmt));
        }
    }
}

/// No empty `properties`; `required`/`propertyOrdering` only name existing
/// properties.
fn tidy(out: &mut Map<String, Value>) {
    if out
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        out.remove("properties");
    }
    for key in ["required", "propertyOrdering"] {
        let Some(Value::Array(names)) = out.get_mut(key) else {
            continue;
        };
        let mut list = std::mem::take(names);
        if let Some(Value::Object(props)) = out.get("properties") {
            list.retain(|n| n.as_str().is_some_and(|n| props.contains_key(n)));
        } else {
            list.clear();
        }
        if list.is_empty() {
            out.remove(key);
        } else {
            out.insert(key.into(), Value::Array(list));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "basic object keeps type/properties/required",
                json!({"type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}),
                json!({"type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}),
            ),
            (
                "drops $schema, $id, additionalProperties, strict, examples, unknown",
                json!({"$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "type": "object",
                       "additionalProperties": false, "strict": true, "examples": [{}], "x-foo": 1,
                       "properties": {"a": {"type": "integer", "exclusiveMinimum": 0}}}),
                json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
            ),
            (
                "type array with null -> nullable",
                json!({"type": ["string", "null"]}),
                json!({"type": "string", "nullable": true}),
            ),
            (
                "type array with several types -> anyOf",
                json!({"type": ["string", "integer"]}),
                json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            ),
            (
                "type null alone -> nullable",
                json!({"type": "null"}),
                json!({"nullable": true}),
            ),
            (
                "string format kept only for enum/date-time",
                json!({"type": "object", "properties": {
                    "a": {"type": "string", "format": "date-time"},
                    "b": {"type": "string", "format": "email"},
                    "c": {"type": "string", "format": "uri"},
                    "d": {"type": "integer", "format": "int64"},
                    "e": {"type": "number", "format": "double"},
                    "f": {"type": "number", "format": "decimal"},
                    "g": {"format": "int32"}}}),
                json!({"type": "object", "properties": {
                    "a": {"type": "string", "format": "date-time"},
                    "b": {"type": "string"},
                    "c": {"type": "string"},
                    "d": {"type": "integer", "format": "int64"},
                    "e": {"type": "number", "format": "double"},
                    "f": {"type": "number"},
                    "g": {}}}),
            ),
            (
                "keeps numeric and length constraints, pattern, title, default",
                json!({"type": "array", "title": "T", "minItems": 1, "maxItems": 3.0,
                       "items": {"type": "string", "minLength": 2, "maxLength": 9, "pattern": "^a", "default": "aa"}}),
                json!({"type": "array", "title": "T", "minItems": 1, "maxItems": 3,
                       "items": {"type": "string", "minLength": 2, "maxLength": 9, "pattern": "^a", "default": "aa"}}),
            ),
            (
                "minimum/maximum kept, bad values dropped",
                json!({"type": "number", "minimum": -1.5, "maximum": 10, "minLength": -1, "maxLength": "x"}),
                json!({"type": "number", "minimum": -1.5, "maximum": 10}),
            ),
            (
                "enum stringified and forced to string type",
                json!({"type": "integer", "enum": [1, 2, true, "x"]}),
                json!({"type": "string", "enum": ["1", "2", "true", "x"]}),
            ),
            (
                "enum with null -> nullable",
                json!({"type": "string", "enum": ["a", null]}),
                json!({"type": "string", "enum": ["a"], "nullable": true}),
            ),
            (
                "const -> enum",
                json!({"const": "fixed", "description": "d"}),
                json!({"type": "string", "enum": ["fixed"], "description": "d"}),
            ),
            (
                "anyOf X and null -> X nullable",
                json!({"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "title": "Name"}),
                json!({"type": "string", "nullable": true, "default": null, "title": "Name"}),
            ),
            (
                "anyOf with several branches stays anyOf",
                json!({"anyOf": [{"type": "string"}, {"type": "integer", "additionalProperties": 1}, {"type": "null"}]}),
                json!({"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": true}),
            ),
            (
                "oneOf treated as anyOf",
                json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
                json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
            ),
            (
                "allOf single element merged, own keys win",
                json!({"allOf": [{"type": "string", "description": "inner"}], "description": "outer"}),
                json!({"type": "string", "description": "outer"}),
            ),
            (
                "allOf several objects merged",
                json!({"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}]}),
                json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
            ),
            (
                "$ref to $defs inlined, $defs dropped",
                json!({"type": "object", "properties": {"pet": {"$ref": "#/$defs/Pet"}}, "required": ["pet"],
                       "$defs": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}),
                json!({"type": "object", "properties": {"pet": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}, "required": ["pet"]}),
            ),
            (
                "$ref to definitions inlined, sibling description wins",
                json!({"type": "object", "properties": {"c": {"$ref": "#/definitions/Color", "description": "pick"}},
                       "definitions": {"Color": {"type": "string", "enum": ["red", "blue"], "description": "color"}}}),
                json!({"type": "object", "properties": {"c": {"type": "string", "enum": ["red", "blue"], "description": "pick"}}}),
            ),
            (
                "pydantic optional ref",
                json!({"type": "object", "properties": {"p": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}], "default": null}},
                       "$defs": {"P": {"type": "object", "properties": {"x": {"type": "integer"}}}}}),
                json!({"type": "object", "properties": {"p": {"type": "object", "properties": {"x": {"type": "integer"}}, "nullable": true, "default": null}}}),
            ),
            (
                "unresolvable / remote $ref dropped",
                json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}, "b": {"$ref": "#/$defs/Missing", "type": "string"}}}),
                json!({"type": "object", "properties": {"a": {}, "b": {"type": "string"}}}),
            ),
            (
                "required filtered to existing properties",
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost", 3]}),
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
            ),
            (
                "empty properties -> bare object, required dropped",
                json!({"type": "object", "properties": {}, "required": ["x"], "additionalProperties": false}),
                json!({"type": "object"}),
            ),
            (
                "propertyOrdering kept and filtered",
                json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "propertyOrdering": ["b", "a", "z"]}),
                json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "propertyOrdering": ["b", "a"]}),
            ),
            (
                "nullable kept",
                json!({"type": "string", "nullable": true}),
                json!({"type": "string", "nullable": true}),
            ),
            (
                "tuple items",
                json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
                json!({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}),
            ),
            (
                "boolean sub-schema becomes empty schema",
                json!({"type": "object", "properties": {"any": true}}),
                json!({"type": "object", "properties": {"any": {}}}),
            ),
            ("non-object input", json!(42), json!({})),
            (
                "arrays always get items (MCP: items missing field)",
                json!({"type": "object", "properties": {
                    "tags": {"type": "array"},
                    "grid": {"type": "array", "items": {"type": "array"}},
                    "maybe": {"type": ["array", "null"]}}}),
                json!({"type": "object", "properties": {
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "grid": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                    "maybe": {"type": "array", "items": {"type": "string"}, "nullable": true}}}),
            ),
            (
                "type union: keys move into their branch",
                json!({"type": ["object", "array", "string", "null"], "description": "any value",
                       "properties": {"a": {"type": "string"}}, "required": ["a", "zz"],
                       "maxItems": 3, "minLength": 1, "minimum": 0}),
                json!({"description": "any value", "nullable": true, "anyOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"type": "array", "maxItems": 3, "items": {"type": "string"}},
                    {"type": "string", "minLength": 1}]}),
            ),
            (
                "keys of another type are dropped (properties only for OBJECT)",
                json!({"type": "object", "properties": {
                    "s": {"type": "string", "properties": {"x": {"type": "string"}}, "required": ["x"], "items": {"type": "string"}, "minimum": 1},
                    "n": {"type": "integer", "minLength": 2, "maximum": 9}}}),
                json!({"type": "object", "properties": {
                    "s": {"type": "string"},
                    "n": {"type": "integer", "maximum": 9}}}),
            ),
            (
                "typeless nodes with properties / items get their type",
                json!({"properties": {"q": {"type": "string"}, "list": {"items": {"type": "integer"}}}, "required": ["q"]}),
                json!({"type": "object", "properties": {"q": {"type": "string"},
                       "list": {"type": "array", "items": {"type": "integer"}}}, "required": ["q"]}),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(clean_schema(&input), want, "case: {name}");
        }
    }

    #[test]
    fn recursive_ref_is_cut() {
        let s = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
            "value": {"type": "string"}, "next": {"$ref": "#/$defs/Node"}}}}});
        let out = clean_schema(&s);
        // Walk down `next` until the cut-off replacement.
        let mut cur = &out;
        let mut levels = 0;
        while let Some(next) = cur.pointer("/properties/next") {
            cur = next;
            levels += 1;
        }
        assert_eq!(levels, MAX_REF_DEPTH);
        assert_eq!(cur, &json!({"type": "object"}));
    }

    #[test]
    fn self_ref_to_root_is_cut() {
        let s = json!({"type": "object", "properties": {"me": {"$ref": "#"}}});
        let out = clean_schema(&s);
        assert_eq!(out["type"], "object");
    }

    #[test]
    fn ref_blowup_is_bounded() {
        // Each level references the next one ten times: 10^16 nodes if expanded naively.
        let mut defs = Map::new();
        for i in 0..20 {
            let mut props = Map::new();
            for j in 0..10 {
                props.insert(
                    format!("p{j}"),
                    json!({"$ref": format!("#/$defs/D{}", i + 1)}),
                );
            }
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": props}),
            );
        }
        let s = json!({"$ref": "#/$defs/D0", "$defs": defs});
        let out = clean_schema(&s);
        fn count(v: &Value) -> usize {
            match v {
                Value::Object(o) => 1 + o.values().map(count).sum::<usize>(),
                Value::Array(a) => a.iter().map(count).sum(),
                _ => 0,
            }
        }
        assert!(count(&out) < 5 * NODE_BUDGET);
    }

    #[test]
    fn deep_nesting_is_cut() {
        let mut s = json!({"type": "string"});
        for _ in 0..200 {
            s = json!({"type": "object", "properties": {"a": s}});
        }
        let out = clean_schema(&s);
        let mut cur = &out;
        let mut levels = 0;
        while let Some(next) = cur.pointer("/properties/a") {
            cur = next;
            levels += 1;
        }
        assert!(levels <= MAX_DEPTH + 1);
        assert_eq!(cur, &json!({"type": "object"}));
    }

    #[test]
    fn hostile_literals_are_not_copied() {
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        let s = json!({"type": "string", "default": deep.clone(), "enum": ["a", deep]});
        assert_eq!(clean_schema(&s), json!({"type": "string", "enum": ["a"]}));
    }
}
