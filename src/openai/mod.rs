//! The OpenAI side of the gateway: pure translation between OpenAI's Chat
//! Completions / Embeddings / Models formats and Gemini's native API.
//!
//! Everything in this module is a pure function (JSON in, JSON out, no I/O),
//! so it can be unit tested and fuzzed in isolation. The handlers in
//! `crate::router` do the I/O and call into here.
//!
//! * [`chat`] — OpenAI chat request → Gemini `generateContent` body.
//! * [`response`] — Gemini answer → `chat.completion`.
//! * [`stream`] — Gemini SSE events → `chat.completion.chunk` SSE bytes.
//! * [`embeddings`] — `/v1/embeddings` ↔ `batchEmbedContents`.
//! * [`models`] — Gemini model list → OpenAI model list.
//! * [`error`] — OpenAI error objects, and Gemini errors mapped to them.

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod models;
pub mod response;
pub mod schema;
pub mod stream;

use serde_json::Value;

/// Settings that shape translation, derived once from the `Config`.
#[derive(Clone, Debug)]
pub struct Options {
    /// `SHOW_THINKING_PROCESS`: ask Gemini for thought summaries
    /// (`includeThoughts`) and return them as `reasoning_content`.
    pub show_thinking: bool,
    /// `THINKING_BUDGET_MAP`: model id → thinking budget (tokens).
    pub thinking_budget_map: Vec<(String, i64)>,
    /// `SEARCH_MODELS`: models offered with a `-search` variant.
    pub search_models: Vec<String>,
    /// `SHOW_SEARCH_LINK`: append grounding sources as markdown links.
    pub show_search_link: bool,
    /// `TOOLS_CODE_EXECUTION_ENABLED`: add the `codeExecution` tool.
    pub code_execution: bool,
    /// `URL_CONTEXT_ENABLED`: add the `urlContext` tool for `url_context_models`.
    pub url_context: bool,
    /// `URL_CONTEXT_MODELS`: models that get `urlContext` when enabled.
    pub url_context_models: Vec<String>,
    /// `SAFETY_SETTINGS`: a JSON array of `{category, threshold}`; `None`
    /// means the default (every category `OFF`).
    pub safety_settings: Option<Value>,
    /// `THINKING_MODELS`: models offered with `-thinking`/`-non-thinking` variants.
    pub thinking_models: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            show_thinking: true,
            thinking_budget_map: Vec::new(),
            search_models: Vec::new(),
            show_search_link: true,
            code_execution: false,
            url_context: false,
            url_context_models: Vec::new(),
            safety_settings: None,
            thinking_models: Vec::new(),
        }
    }
}

/// A client error found while translating a request: answered with 400 and
/// an OpenAI error object naming `param`.
#[derive(Clone, Debug, PartialEq)]
pub struct TranslateError {
    /// Human readable explanation, e.g. "messages[2].content: expected a string or an array".
    pub message: String,
    /// The offending field, OpenAI style (`messages`, `messages[2].content`, `model`).
    pub param: Option<String>,
}

impl TranslateError {
    /// A new error about `param`.
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError {
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

/// Strip an optional `models/` prefix from a model name sent by a client.
pub fn bare_model(name: &str) -> &str {
    name.strip_prefix("models/").unwrap_or(name)
}

/// Helpers shared by the translation modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::{Value, json};

    /// Drop a deeply nested value without recursion.
    pub fn dismantle(v: Value) {
        let mut stack = vec![v];
        while let Some(mut v) = stack.pop() {
            match &mut v {
                Value::Array(a) => stack.append(a),
                Value::Object(o) => stack.extend(std::mem::take(o).into_iter().map(|(_, x)| x)),
                _ => {}
            }
        }
    }

    /// `depth` nested arrays, built without recursion.
    pub fn deep_array(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }
}
