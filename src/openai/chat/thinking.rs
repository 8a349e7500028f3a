//! Thinking: `reasoning_effort`, the `-thinking` / `-non-thinking`
//! suffixes, `THINKING_BUDGET_MAP`, `SHOW_THINKING_PROCESS` and the client's
//! own `thinking_config` → Gemini `generationConfig.thinkingConfig`.
//!
//! Owns [`thinking_config`], the effort → budget table and [`model_thinks`]
//! (which models accept a thinking config at all).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{
    Google, Options, Suffixes, TranslateError, bare_model, copy_bounded, err, google_field, opt,
};
use crate::gemini::types::ThinkingConfig;

/// Thinking budget for a `reasoning_effort` value.
fn effort_budget(effort: &str) -> Option<i64> {
    Some(match effort {
        "none" => 0,
        "minimal" | "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        "xhigh" | "max" => 32768,
        _ => return None,
    })
}

/// Whether a model thinks (Gemini 2.5 and later, `*thinking*` models, and
/// anything named in `THINKING_MODELS` or `THINKING_BUDGET_MAP`). Older,
/// image, speech, embedding and Gemma models do not.
pub(crate) fn model_thinks(base: &str, opts: &Options) -> bool {
    if opts.thinking_models.iter().any(|m| bare_model(m) == base)
        || opts.thinking_budget_map.iter().any(|(m, _)| m == base)
    {
        return true;
    }
    let b: Cow<str> = if base.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(base.to_ascii_lowercase())
    } else {
        Cow::Borrowed(base)
    };
    // Model names are short: a plain window scan beats building a
    // substring searcher for each needle.
    let has = |needle: &str| {
        b.as_bytes()
            .windows(needle.len())
            .any(|w| w[0] == needle.as_bytes()[0] && w == needle.as_bytes())
    };
    if has("thinking") {
        return true;
    }
    const OLDER: [&str; 9] = [
        "gemini-1",
        "gemini-2.0",
        "gemini-pro",
        "gemma",
        "learnlm",
        "imagen",
        "veo",
        "aqa",
        "text-",
    ];
    const NOT_THINKING: [&str; 5] = ["-image", "-tts", "embedding", "-live", "native-audio"];
    !OLDER.iter().any(|p| b.starts_with(p)) && !NOT_THINKING.iter().any(|p| has(p))
}

/// Build `generationConfig.thinkingConfig` from the model suffix,
/// `reasoning_effort`, the budget map, `show_thinking` and the client's own
/// `thinking_config` (which wins).
pub(super) fn thinking_config<'a>(
    obj: &Map<String, Value>,
    opts: &Options,
    suffix: &Suffixes<'_>,
    google: &Google<'a>,
) -> Result<ThinkingConfig<'a>, TranslateError> {
    let effort = match opt(obj, "reasoning_effort") {
        None => None,
        Some(Value::String(e)) => Some(effort_budget(e).ok_or_else(|| {
            err(
                "reasoning_effort",
                "`reasoning_effort` must be one of none, minimal, low, medium, high, xhigh",
            )
        })?),
        Some(_) => {
            return Err(err(
                "reasoning_effort",
                "`reasoning_effort` must be a string",
            ));
        }
    };
    let mapped = opts
        .thinking_budget_map
        .iter()
        .find(|(m, _)| m == suffix.base)
        .map(|(_, b)| *b);
    let budget = match suffix.thinking {
        Some(false) => Some(0),
        Some(true) => Some(mapped.unwrap_or(-1)),
        None => effort.or(mapped),
    };
    let mut tc = ThinkingConfig {
        thinking_budget: budget,
        ..ThinkingConfig::default()
    };
    // Thought summaries are asked for by default only from models that
    // think: Gemini refuses a thinking config on the others.
    if suffix.thinking == Some(true)
        || (opts.show_thinking
            && budget != Some(0)
            && (budget.is_some() || model_thinks(suffix.base, opts)))
    {
        tc.include_thoughts = Some(true);
    }

    if let Some((v, param)) = google_field(google, "thinking_config", "thinkingConfig") {
        let Value::Object(client) = v else {
            return Err(err(param, "thinking config must be an object"));
        };
        merge_client(&mut tc, client, &param)?;
    }
    Ok(tc)
}

/// The client's own `thinking_config` over ours: its members win, under
/// their Gemini names (snake or camel case accepted); a value of another
/// type than Gemini's, or a member we do not name, is passed on as given
/// (in `extra`). A level without a budget drops our budget (and the other
/// way round), and a client budget of 0 drops our `includeThoughts`.
fn merge_client<'a>(
    tc: &mut ThinkingConfig<'a>,
    client: &'a Map<String, Value>,
    param: &str,
) -> Result<(), TranslateError> {
    let mut set_budget = false;
    let mut set_level = false;
    let mut set_include = false;
    for (k, v) in client {
        let key = match k.as_str() {
            "thinking_budget" | "thinkingBudget" => {
                set_budget = true;
                "thinkingBudget"
            }
            "include_thoughts" | "includeThoughts" => {
                set_include = true;
                "includeThoughts"
            }
            "thinking_level" | "thinkingLevel" => {
                set_level = true;
                "thinkingLevel"
            }
            other => other,
        };
        let v = copy_bounded(v, &format!("{param}.{k}"))?;
        remove(tc, key);
        match (key, &v) {
            ("thinkingBudget", Value::Number(n)) if n.as_i64().is_some() => {
                tc.thinking_budget = n.as_i64();
            }
            ("includeThoughts", Value::Bool(b)) => tc.include_thoughts = Some(*b),
            ("thinkingLevel", Value::String(_)) => {
                if let Some(Value::String(l)) = client.get(k) {
                    tc.thinking_level = Some(l.as_str().into());
                }
            }
            _ => tc.extra.insert(key.to_owned(), &v),
        }
    }
    if set_level && !set_budget {
        remove(tc, "thinkingBudget");
    }
    if set_budget && !set_level {
        remove(tc, "thinkingLevel");
    }
    if !set_include && tc.thinking_budget == Some(0) {
        remove(tc, "includeThoughts");
    }
    Ok(())
}

/// Drop member `key` (named or kept in `extra`).
fn remove(tc: &mut ThinkingConfig, key: &str) {
    match key {
        "thinkingBudget" => tc.thinking_budget = None,
        "includeThoughts" => tc.include_thoughts = None,
        "thinkingLevel" => tc.thinking_level = None,
        _ => {}
    }
    tc.extra.0.retain(|(k, _)| k != key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::openai::chat::tests::{body_with, plain, req};

    #[test]
    fn thinking_table() {
        let p = plain();
        let show = Options::default();
        let mapped = Options {
            show_thinking: false,
            thinking_budget_map: vec![("gemini-2.5-flash".into(), 2048)],
            ..Options::default()
        };
        // (fields, options, expected thinkingConfig; null = absent)
        let cases: Vec<(Value, &Options, Value)> = vec![
            (
                json!({"reasoning_effort": "none"}),
                &p,
                json!({"thinkingBudget": 0}),
            ),
            (
                json!({"reasoning_effort": "minimal"}),
                &p,
                json!({"thinkingBudget": 1024}),
            ),
            (
                json!({"reasoning_effort": "low"}),
                &p,
                json!({"thinkingBudget": 1024}),
            ),
            (
                json!({"reasoning_effort": "medium"}),
                &p,
                json!({"thinkingBudget": 8192}),
            ),
            (
                json!({"reasoning_effort": "high"}),
                &p,
                json!({"thinkingBudget": 24576}),
            ),
            (
                json!({"reasoning_effort": "xhigh"}),
                &p,
                json!({"thinkingBudget": 32768}),
            ),
            (
                json!({"reasoning_effort": "max"}),
                &p,
                json!({"thinkingBudget": 32768}),
            ),
            (json!({}), &mapped, json!({"thinkingBudget": 2048})),
            (
                json!({"reasoning_effort": "low"}),
                &mapped,
                json!({"thinkingBudget": 1024}),
            ),
            (json!({}), &show, json!({"includeThoughts": true})),
            (
                json!({"model": "gemini-3-pro-preview"}),
                &show,
                json!({"includeThoughts": true}),
            ),
            (json!({"model": "gemini-2.0-flash"}), &show, Value::Null),
            (
                json!({"model": "gemini-2.5-flash-image"}),
                &show,
                Value::Null,
            ),
            (json!({"model": "gemma-3-27b-it"}), &show, Value::Null),
            (
                json!({"model": "gemini-2.0-flash", "reasoning_effort": "low"}),
                &show,
                json!({"thinkingBudget": 1024, "includeThoughts": true}),
            ),
            (
                json!({"model": "gemini-2.0-flash-thinking-exp"}),
                &show,
                json!({"includeThoughts": true}),
            ),
            (
                json!({"reasoning_effort": "high"}),
                &show,
                json!({"thinkingBudget": 24576, "includeThoughts": true}),
            ),
            (
                json!({"reasoning_effort": "none"}),
                &show,
                json!({"thinkingBudget": 0}),
            ),
            (
                json!({"model": "gemini-2.5-flash-non-thinking", "reasoning_effort": "high"}),
                &show,
                json!({"thinkingBudget": 0}),
            ),
            (
                json!({"extra_body": {"google": {"thinking_config": {"thinking_budget": 800, "include_thoughts": true}}}}),
                &p,
                json!({"thinkingBudget": 800, "includeThoughts": true}),
            ),
            (
                json!({"reasoning_effort": "high", "google": {"thinkingConfig": {"thinkingLevel": "low"}}}),
                &show,
                json!({"thinkingLevel": "low", "includeThoughts": true}),
            ),
            (
                json!({"extra_body": {"google": {"thinking_config": {"thinking_level": "high", "include_thoughts": false}}}}),
                &mapped,
                json!({"thinkingLevel": "high", "includeThoughts": false}),
            ),
            (
                json!({"extra_body": {"google": {"thinking_config": {"thinking_budget": 0}}}}),
                &show,
                json!({"thinkingBudget": 0}),
            ),
        ];
        for (fields, opts, want) in cases {
            let shown = fields.to_string();
            let b = body_with(req(fields), opts);
            assert_eq!(
                b.pointer("/generationConfig/thinkingConfig")
                    .cloned()
                    .unwrap_or(Value::Null),
                want,
                "fields: {shown}"
            );
        }
    }
}
