//! Gemini model list → OpenAI model list (docs/wire-formats.md §C.8, §B.4).
//!
//! Owns the shape of `GET /v1/models` and `GET /v1/models/{id}` answers,
//! including the virtual `-search`, `-thinking` and `-non-thinking` variants
//! the gateway offers for configured models.

use serde_json::{Map, Value};

use super::{Options, bare_model};

/// `created` of every model: Gemini has no timestamp, so a constant.
const CREATED: u64 = 1_700_000_000;

/// Gemini `Model` objects (all pages already collected) → OpenAI list
/// `{"object":"list","data":[{id, object:"model", created, owned_by:"google"}]}`.
///
/// Ids drop the `models/` prefix. A model whose bare id is in
/// `opts.search_models` is followed by `<id>-search`; one in
/// `opts.thinking_models` by `<id>-thinking` and `<id>-non-thinking`.
/// Entries that are not objects, or have no string `name`, are skipped.
pub fn translate_list(models: &[Value], opts: &Options) -> Value {
    let listed = |list: &[String], id: &str| list.iter().any(|m| bare_model(m) == id);
    let mut data = Vec::with_capacity(models.len());
    for m in models {
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            continue;
        };
        let id = bare_model(name);
        data.push(model_object(id.to_owned()));
        if listed(&opts.search_models, id) {
            data.push(model_object(format!("{id}-search")));
        }
        if listed(&opts.thinking_models, id) {
            data.push(model_object(format!("{id}-thinking")));
            data.push(model_object(format!("{id}-non-thinking")));
        }
    }
    let mut out = Map::new();
    out.insert("object".into(), Value::from("list"));
    out.insert("data".into(), Value::Array(data));
    Value::Object(out)
}

/// The model rules on an OpenAI list made by [`translate_list`]: entries
/// matching a `FILTERED_MODELS` pattern (`filtered`) are removed, and each
/// exact `MODEL_ALIASES` name (`*` patterns cannot be listed) whose target
/// is not filtered is added as one more entry, unless the list has it.
pub fn apply_rules(list: &mut Value, aliases: &[(String, String)], filtered: &[String]) {
    let Some(data) = list.get_mut("data").and_then(Value::as_array_mut) else {
        return;
    };
    let id_of = |m: &Value| m.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
    if !filtered.is_empty() {
        data.retain(|m| !crate::model::filtered(filtered, &id_of(m)));
    }
    for (name, target) in aliases {
        if name.contains('*')
            || crate::model::filtered(filtered, name)
            || crate::model::filtered(filtered, target)
            || data.iter().any(|m| id_of(m).eq_ignore_ascii_case(name))
        {
            continue;
        }
        data.push(model_object(name.clone()));
    }
}

/// One Gemini `Model` → one OpenAI model object (`id` is `""` when the
/// model has no string `name`).
pub fn translate_one(model: &Value) -> Value {
    let name = model.get("name").and_then(Value::as_str).unwrap_or("");
    model_object(bare_model(name).to_owned())
}

fn model_object(id: String) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id));
    m.insert("object".into(), Value::from("model"));
    m.insert("created".into(), Value::from(CREATED));
    m.insert("owned_by".into(), Value::from("google"));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(list: &Value) -> Vec<&str> {
        list["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
            .unwrap_or_default()
    }

    fn models() -> Vec<Value> {
        let page: Value = serde_json::from_str(
            r#"{"models": [
  {"name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
   "supportedGenerationMethods": ["generateContent", "countTokens"], "thinking": true},
  {"name": "models/gemini-embedding-001", "version": "001",
   "supportedGenerationMethods": ["embedContent", "countTokens"]},
  "not an object", 7, null, {"displayName": "no name"}, {"name": 5},
  {"name": "gemini-2.0-flash"}
 ],
 "nextPageToken": "x"}"#,
        )
        .unwrap_or(Value::Null);
        page["models"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn list_without_variants() {
        let out = translate_list(&models(), &Options::default());
        assert_eq!(out["object"], "list");
        assert_eq!(
            ids(&out),
            [
                "gemini-2.5-flash",
                "gemini-embedding-001",
                "gemini-2.0-flash"
            ]
        );
        assert_eq!(
            out["data"][0],
            json!({"id": "gemini-2.5-flash", "object": "model", "created": 1700000000, "owned_by": "google"})
        );
    }

    #[test]
    fn list_with_variants() {
        let opts = Options {
            search_models: vec!["gemini-2.5-flash".into(), "gemini-2.0-flash".into()],
            thinking_models: vec!["models/gemini-2.5-flash".into(), "absent".into()],
            ..Options::default()
        };
        let out = translate_list(&models(), &opts);
        assert_eq!(
            ids(&out),
            [
                "gemini-2.5-flash",
                "gemini-2.5-flash-search",
                "gemini-2.5-flash-thinking",
                "gemini-2.5-flash-non-thinking",
                "gemini-embedding-001",
                "gemini-2.0-flash",
                "gemini-2.0-flash-search",
            ]
        );
        for m in out["data"].as_array().into_iter().flatten() {
            assert_eq!(m["object"], "model");
            assert_eq!(m["owned_by"], "google");
            assert_eq!(m["created"], 1700000000);
        }
    }

    #[test]
    fn empty_list() {
        assert_eq!(
            translate_list(&[], &Options::default()),
            json!({"object": "list", "data": []})
        );
    }

    #[test]
    fn one_model() {
        let cases = [
            (json!({"name": "models/gemini-2.5-pro"}), "gemini-2.5-pro"),
            (json!({"name": "gemini-2.5-pro"}), "gemini-2.5-pro"),
            (json!({"name": "tunedModels/abc"}), "tunedModels/abc"),
            (json!({}), ""),
            (json!(null), ""),
            (json!([1]), ""),
            (json!({"name": {"x": 1}}), ""),
        ];
        for (input, id) in cases {
            let out = translate_one(&input);
            assert_eq!(
                out,
                json!({"id": id, "object": "model", "created": 1700000000, "owned_by": "google"}),
                "{input}"
            );
        }
    }
}
