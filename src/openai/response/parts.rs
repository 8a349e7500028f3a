//! Gemini parts in OpenAI terms, shared with the stream translator: which
//! field a typed [`types::Part`] feeds ([`classify`]: text, thought,
//! function call, or output rendered as markdown by [`render`], C.6), late
//! thought signatures and call arguments.

use serde_json::Value;

use crate::gemini::types::{self, PartKind};

/// What one Gemini part contributes to the OpenAI answer.
pub(crate) enum Piece<'a> {
    /// Visible text (may be empty).
    Text(&'a str),
    /// Thought summary text (`"thought": true`).
    Thought(&'a str),
    /// A `functionCall`.
    Call(Call<'a>),
    /// Output with no OpenAI field, rendered into content by [`render`].
    Rendered(Rendered<'a>),
    /// Nothing to show (unknown part kind, thought without text, a
    /// `functionResponse`, `fileData`, an image without data).
    Skip,
}

/// A `functionCall` part.
pub(crate) struct Call<'a> {
    pub(crate) name: &'a str,
    pub(crate) args: Option<&'a Value>,
    pub(crate) signature: Option<&'a str>,
}

/// Parts rendered as markdown text (docs/wire-formats.md §C.6).
pub(crate) enum Rendered<'a> {
    Code { language: &'a str, code: &'a str },
    Result { failed: bool, output: &'a str },
    Image { mime: &'a str, data: &'a str },
}

/// Classify one Gemini part.
pub(crate) fn classify<'p>(part: &'p types::Part<'_>) -> Piece<'p> {
    match part.kind() {
        PartKind::FunctionCall(fc) => Piece::Call(Call {
            name: fc.name.as_deref().unwrap_or(""),
            args: fc.args.as_ref(),
            signature: part.signature(),
        }),
        PartKind::Thought(t) => Piece::Thought(t),
        PartKind::Text(t) => Piece::Text(t),
        PartKind::ExecutableCode(ec) => Piece::Rendered(Rendered::Code {
            language: match ec.language.as_deref() {
                None | Some("" | "LANGUAGE_UNSPECIFIED") => "python",
                Some(l) => l,
            },
            code: ec.code.as_deref().unwrap_or(""),
        }),
        PartKind::CodeExecutionResult(res) => Piece::Rendered(Rendered::Result {
            failed: matches!(
                res.outcome.as_deref(),
                Some("OUTCOME_FAILED" | "OUTCOME_DEADLINE_EXCEEDED")
            ),
            output: res.output.as_deref().unwrap_or(""),
        }),
        PartKind::InlineData(img) => match img.data.as_deref() {
            Some(data) => Piece::Rendered(Rendered::Image {
                mime: img
                    .mime_type
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .unwrap_or("image/png"),
                data,
            }),
            None => Piece::Skip,
        },
        PartKind::FileData(_) | PartKind::FunctionResponse(_) | PartKind::Unknown => Piece::Skip,
    }
}

/// Append the markdown for a part that has no OpenAI field (docs/wire-formats.md §C.6).
pub(crate) fn render(r: &Rendered, out: &mut String) {
    match *r {
        Rendered::Code { language, code } => {
            out.push_str("\n```");
            out.extend(language.chars().map(|c| c.to_ascii_lowercase()));
            out.push('\n');
            out.push_str(code);
            out.push_str("\n```\n");
        }
        Rendered::Result { failed, output } => {
            out.push_str("\n```output\n");
            if failed {
                out.push_str("Execution failed:\n");
            }
            out.push_str(output);
            out.push_str("\n```\n");
        }
        Rendered::Image { mime, data } => {
            out.push_str("![image](data:");
            out.push_str(mime);
            out.push_str(";base64,");
            out.push_str(data);
            out.push(')');
        }
    }
}

/// The signature to give the first call of a candidate when it has none:
/// the first signature on a later non-call part, unless a later call carries
/// its own signature.
pub(crate) fn late_signature<'p>(rest: &'p [types::Part<'_>]) -> Option<&'p str> {
    let mut found = None;
    for p in rest {
        match p.signature() {
            Some(_) if p.function_call.is_some() => return None,
            Some(s) if found.is_none() => found = Some(s),
            _ => {}
        }
    }
    found
}

/// Compact JSON of a call's `args`, `{}` when absent.
pub(crate) fn write_arguments(args: Option<&Value>, out: &mut Vec<u8>) {
    match args {
        // Serializing a `Value` into a `Vec` cannot fail.
        Some(a) => {
            let _ = serde_json::to_writer(&mut *out, a);
        }
        None => out.extend_from_slice(b"{}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::openai::Options;
    use crate::openai::response::tests::{CODE, PLAIN, quiet, run};
    #[test]
    fn code_execution() {
        let out = run(CODE, &Options::default());
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "Let me compute it.\n```python\nprint(sum([2, 3, 5, 7, 11]))\n\n```\n\n```output\n28\n\n```\nThe sum is 28."
        );
        // No responseId: deterministic hash id.
        let id = out["id"].as_str().unwrap_or("");
        assert!(id.starts_with("chatcmpl-") && id.len() == 9 + 16, "{id}");
        assert_eq!(run(CODE, &Options::default())["id"], id);
        assert_ne!(
            run(PLAIN.replace("responseId", "x").as_str(), &quiet())["id"],
            id
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 181, "completion_tokens": 182, "total_tokens": 363,
                   "prompt_tokens_details": {"cached_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 86}})
        );
    }

    #[test]
    fn rendering_table() {
        let cases = [
            (
                json!({"executableCode": {"language": "PYTHON", "code": "x=1"}}),
                "\n```python\nx=1\n```\n",
            ),
            (
                json!({"executableCode": {"code": "x=1"}}),
                "\n```python\nx=1\n```\n",
            ),
            (
                json!({"executableCode": {"language": "LANGUAGE_UNSPECIFIED"}}),
                "\n```python\n\n```\n",
            ),
            (
                json!({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}),
                "\n```output\n1\n```\n",
            ),
            (
                json!({"codeExecutionResult": {"outcome": "OUTCOME_OK"}}),
                "\n```output\n\n```\n",
            ),
            (
                json!({"codeExecutionResult": {"outcome": "OUTCOME_FAILED", "output": "Traceback"}}),
                "\n```output\nExecution failed:\nTraceback\n```\n",
            ),
            (
                json!({"codeExecutionResult": {"outcome": "OUTCOME_DEADLINE_EXCEEDED"}}),
                "\n```output\nExecution failed:\n\n```\n",
            ),
            (
                json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AA="}}),
                "![image](data:image/jpeg;base64,/9j/4AA=)",
            ),
            (
                json!({"inlineData": {"data": "iVBO"}}),
                "![image](data:image/png;base64,iVBO)",
            ),
            (json!({"inlineData": {"mimeType": "image/png"}}), ""),
            (json!({"fileData": {"fileUri": "x"}}), ""),
        ];
        for (part, want) in cases {
            let mut s = String::new();
            let text = part.to_string();
            let typed: types::Part = serde_json::from_str(&text).unwrap();
            if let Piece::Rendered(r) = classify(&typed) {
                render(&r, &mut s);
            }
            assert_eq!(s, want, "{part}");
        }
    }

    #[test]
    fn image_output() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"text": "Here you go: "},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
        ]}, "finishReason": "STOP", "index": 0}], "responseId": "img"}"#;
        let out = run(body, &Options::default());
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "Here you go: ![image](data:image/png;base64,iVBORw0KGgo=)"
        );
    }
}
