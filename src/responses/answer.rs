//! The Responses `response` object: ids (`resp_…`, `msg_…`, `fc_…`,
//! `rs_…`), the object with its echoed settings ([`response_object`]),
//! usage from Gemini's `usageMetadata` ([`usage`]), the status a Gemini
//! finish reason means ([`Ending`]), and the client's view of stored output
//! items ([`visible`]: `encrypted_content` only when it was asked for).
//! Pure.

use serde_json::{Map, Value, json};

use super::request::Settings;
use crate::gemini::types::{FinishReason, UsageMetadata};

/// A new random id with this prefix (`resp`, …): 24 hex digits.
pub fn new_id(prefix: &str) -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 12];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    let mut s = String::with_capacity(prefix.len() + 25);
    s.push_str(prefix);
    s.push('_');
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// How a response ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Ending {
    /// `completed`.
    #[default]
    Completed,
    /// `incomplete` with this `incomplete_details.reason`.
    Incomplete(&'static str),
    /// `failed` with this `error` code and message.
    Failed(String, String),
}

impl Ending {
    /// The ending a Gemini finish reason (or a blocked prompt) means.
    pub fn of(finish: Option<&FinishReason<'_>>, blocked: bool) -> Ending {
        use FinishReason as F;
        if blocked {
            return Ending::Incomplete("content_filter");
        }
        match finish {
            Some(F::MaxTokens) => Ending::Incomplete("max_output_tokens"),
            Some(
                F::Safety
                | F::Recitation
                | F::Blocklist
                | F::ProhibitedContent
                | F::Spii
                | F::ImageSafety
                | F::ImageProhibitedContent
                | F::ImageRecitation
                | F::ImageOther,
            ) => Ending::Incomplete("content_filter"),
            _ => Ending::Completed,
        }
    }

    /// The response `status`.
    pub fn status(&self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Incomplete(_) => "incomplete",
            Ending::Failed(..) => "failed",
        }
    }
}

/// Responses `usage` from Gemini's token counts (zeros when absent: some
/// clients drop a completion without usage).
pub fn usage(u: Option<&UsageMetadata<'_>>) -> Value {
    let n = |v: Option<u64>| v.unwrap_or(0);
    let (input, cached, output, reasoning, total) = match u {
        None => (0, 0, 0, 0, None),
        Some(u) => (
            n(u.prompt_token_count) + n(u.tool_use_prompt_token_count),
            n(u.cached_content_token_count),
            n(u.candidates_token_count) + n(u.thoughts_token_count),
            n(u.thoughts_token_count),
            u.total_token_count,
        ),
    };
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total.unwrap_or(input + output),
    })
}

/// An output item as the client sees it: a reasoning item's
/// `encrypted_content` only when the request's `include` asked for it.
pub fn visible(item: &Value, encrypted: bool) -> Value {
    let mut v = item.clone();
    if !encrypted && let Value::Object(o) = &mut v {
        o.remove("encrypted_content");
    }
    v
}

/// The concatenated text of the `output_text` parts of message items.
pub fn output_text(output: &[Value]) -> String {
    let mut s = String::new();
    for item in output {
        if item.get("type").and_then(Value::as_str) != Some("message") {
            continue;
        }
        for p in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                s.push_str(t);
            }
        }
    }
    s
}

/// What one response is made of, for [`response_object`].
pub struct Parts<'a> {
    /// `resp_…`.
    pub id: &'a str,
    /// Unix seconds.
    pub created: u64,
    /// The request's settings.
    pub settings: &'a Settings,
    /// The output items (stored form).
    pub output: &'a [Value],
    /// `None` while in progress.
    pub ending: Option<&'a Ending>,
    /// `usage` (`null` while in progress).
    pub usage: Option<&'a Value>,
}

/// The `response` object (in progress when `ending` is `None`).
pub fn response_object(p: &Parts<'_>) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::from(p.id));
    o.insert("object".into(), Value::from("response"));
    o.insert("created_at".into(), Value::from(p.created));
    let (status, error, incomplete) = match p.ending {
        None => ("in_progress", Value::Null, Value::Null),
        Some(Ending::Completed) => ("completed", Value::Null, Value::Null),
        Some(Ending::Incomplete(r)) => ("incomplete", Value::Null, json!({"reason": r})),
        Some(Ending::Failed(code, message)) => (
            "failed",
            json!({"code": code, "message": message}),
            Value::Null,
        ),
    };
    o.insert("status".into(), Value::from(status));
    if p.ending.is_some() {
        o.insert("completed_at".into(), Value::from(crate::clock::unix_now()));
    }
    o.insert("error".into(), error);
    o.insert("incomplete_details".into(), incomplete);
    o.insert("model".into(), Value::from(p.settings.model.as_str()));
    let output: Vec<Value> = p
        .output
        .iter()
        .map(|i| visible(i, p.settings.encrypted))
        .collect();
    o.insert("output_text".into(), Value::from(output_text(&output)));
    o.insert("output".into(), Value::Array(output));
    o.insert("usage".into(), p.usage.cloned().unwrap_or(Value::Null));
    for (k, v) in &p.settings.echo {
        o.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_thoughts_as_output_and_reasoning() {
        let text = r#"{"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
            "cachedContentTokenCount": 4, "totalTokenCount": 22}"#;
        let u: UsageMetadata = serde_json::from_str(text).unwrap();
        let v = usage(Some(&u));
        assert_eq!(v["input_tokens"], 10);
        assert_eq!(v["output_tokens"], 12);
        assert_eq!(v["output_tokens_details"]["reasoning_tokens"], 7);
        assert_eq!(v["input_tokens_details"]["cached_tokens"], 4);
        assert_eq!(v["total_tokens"], 22);
        assert_eq!(usage(None)["total_tokens"], 0);
    }

    #[test]
    fn endings() {
        assert_eq!(
            Ending::of(Some(&FinishReason::MaxTokens), false),
            Ending::Incomplete("max_output_tokens")
        );
        assert_eq!(
            Ending::of(Some(&FinishReason::Stop), false),
            Ending::Completed
        );
        assert_eq!(Ending::of(None, true), Ending::Incomplete("content_filter"));
        assert!(new_id("resp").starts_with("resp_"));
        assert_eq!(new_id("resp").len(), 29);
    }
}

#[cfg(test)]
mod fuzz_seeds {
    use serde_json::Value;

    use crate::openai::Options;
    use crate::responses::{Assembler, input_items, translate};

    /// The fuzz target's seeds (fuzz/corpus/responses) stay meaningful: the
    /// request is accepted, the answer and the stream assemble.
    #[test]
    fn the_fuzz_seeds_are_accepted() {
        let req: Value =
            serde_json::from_str(include_str!("../../fuzz/corpus/responses/request.json"))
                .unwrap_or_default();
        let items = input_items(req.as_object().unwrap()).unwrap();
        let tr = translate(&req, &items, &Options::default()).unwrap();
        let call = crate::openai::chat::prepare_request(&tr.chat, &Options::default()).unwrap();
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "be brief");
        assert_eq!(body["systemInstruction"]["parts"][1]["text"], "dev note");
        assert!(tr.settings.stream && !tr.settings.store);
        let mut asm = Assembler::new(tr.settings.clone(), 0, false);
        let mut sink = Vec::new();
        assert!(!asm.feed(
            include_str!("../../fuzz/corpus/responses/answer.json"),
            &mut sink
        ));
        let whole = asm.finish(&mut sink);
        assert_eq!(whole["status"], "incomplete");
        let mut asm = Assembler::new(tr.settings, 0, true);
        let mut out = Vec::new();
        let ended = include_str!("../../fuzz/corpus/responses/stream.txt")
            .split("\n\n")
            .any(|e| asm.feed(e.trim(), &mut out));
        assert!(ended, "the error event ends the stream");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("event: response.output_text.delta"), "{text}");
        assert!(text.contains("event: response.failed") || text.contains("event: error"));
    }
}
