//! Field mappings shared by the answer and stream translators: OpenAI
//! `usage` from Gemini `usageMetadata` (docs/wire-formats.md §C.4), `finish_reason`
//! from `finishReason` (§C.3), and the deterministic tool-call ids with the FNV-1a
//! hasher behind them (also used for answer ids without a `responseId`).

use std::fmt::Write as _;

use serde_json::Value;

use super::output::UsageOut;
use crate::gemini::types::UsageMetadata;

/// OpenAI `usage` from `usageMetadata` (docs/wire-formats.md §C.4); all zeros when absent.
///
/// `prompt_tokens` = prompt + tool-use prompt, `completion_tokens` =
/// candidates + thoughts, `total_tokens` = `totalTokenCount` (or the sum),
/// plus `prompt_tokens_details.cached_tokens` and
/// `completion_tokens_details.reasoning_tokens`.
pub fn usage(meta: Option<&UsageMetadata>) -> Value {
    let mut out = Vec::new();
    UsageOut::from(Usage::from_meta(meta)).write(&mut out);
    serde_json::from_slice(&out).unwrap_or_default()
}

/// The OpenAI finish_reason for a Gemini finishReason (docs/wire-formats.md §C.3), given
/// whether the candidate had function calls.
///
/// `None` (not finished) → `None`; `STOP` → `tool_calls` when there were
/// calls, else `stop`; `MAX_TOKENS` → `length`; the safety/recitation family
/// and `LANGUAGE` → `content_filter`; anything else → `stop`.
pub fn finish_reason(reason: Option<&str>, had_calls: bool) -> Option<&'static str> {
    Some(match reason? {
        "STOP" if had_calls => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "LANGUAGE" => "content_filter",
        _ => "stop",
    })
}

/// The deterministic OpenAI tool call id for a Gemini `functionCall`:
/// `call_` + 16 hex digits of FNV-1a 64 over `response_id`, a 0 byte, the
/// candidate index and the call's position (both little-endian u64) and the
/// function name; with `_ts_<signature>` appended when a non-empty thought
/// signature is known.
pub fn tool_call_id(
    response_id: &str,
    candidate: u64,
    position: u64,
    name: &str,
    signature: Option<&str>,
) -> String {
    let mut h = Fnv::new();
    h.write(response_id.as_bytes());
    h.write(&[0]);
    h.write(&candidate.to_le_bytes());
    h.write(&position.to_le_bytes());
    h.write(name.as_bytes());
    let signature = signature.filter(|s| !s.is_empty());
    let mut id = String::with_capacity(21 + signature.map_or(0, |s| s.len() + 4));
    let _ = write!(id, "call_{:016x}", h.0);
    if let Some(sig) = signature {
        id.push_str("_ts_");
        id.push_str(sig);
    }
    id
}

/// FNV-1a 64-bit hasher; also an `io::Write` so JSON can be hashed while it
/// is serialized, without a buffer.
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Fnv::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// FNV-1a 64 of some bytes (answer ids without a `responseId`).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(bytes);
    h.0
}

/// Token counts of a `usageMetadata`, already in OpenAI terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(super) prompt: u64,
    pub(super) completion: u64,
    pub(super) total: u64,
    pub(super) cached: u64,
    pub(super) reasoning: u64,
}

impl Usage {
    /// The OpenAI counts of a `usageMetadata` (all zero when absent).
    pub(crate) fn from_meta(meta: Option<&UsageMetadata>) -> Self {
        let Some(m) = meta else {
            return Usage::default();
        };
        let n = |v: Option<u64>| v.unwrap_or(0);
        let prompt = n(m.prompt_token_count).saturating_add(n(m.tool_use_prompt_token_count));
        let reasoning = n(m.thoughts_token_count);
        let completion = n(m.candidates_token_count).saturating_add(reasoning);
        Usage {
            prompt,
            completion,
            total: m
                .total_token_count
                .unwrap_or_else(|| prompt.saturating_add(completion)),
            cached: n(m.cached_content_token_count),
            reasoning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::gemini::lenient::loose_from_str;
    use crate::openai::Options;
    use crate::openai::response::tests::run;
    #[test]
    fn tool_call_id_inputs_all_matter() {
        let base = tool_call_id("r", 0, 0, "f", None);
        assert_ne!(base, tool_call_id("r2", 0, 0, "f", None));
        assert_ne!(base, tool_call_id("r", 1, 0, "f", None));
        assert_ne!(base, tool_call_id("r", 0, 1, "f", None));
        assert_ne!(base, tool_call_id("r", 0, 0, "g", None));
        assert_eq!(base, tool_call_id("r", 0, 0, "f", Some("")));
        // FNV-1a reference value for the empty input is the offset basis.
        let mut h = Fnv::new();
        h.write(b"");
        assert_eq!(h.0, 0xcbf29ce484222325);
        h.write(b"a");
        assert_eq!(h.0, 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn every_finish_reason() {
        let cases: &[(Option<&str>, bool, Option<&str>)] = &[
            (None, false, None),
            (None, true, None),
            (Some("STOP"), false, Some("stop")),
            (Some("STOP"), true, Some("tool_calls")),
            (Some("MAX_TOKENS"), false, Some("length")),
            (Some("MAX_TOKENS"), true, Some("length")),
            (Some("SAFETY"), false, Some("content_filter")),
            (Some("RECITATION"), false, Some("content_filter")),
            (Some("BLOCKLIST"), false, Some("content_filter")),
            (Some("PROHIBITED_CONTENT"), false, Some("content_filter")),
            (Some("SPII"), false, Some("content_filter")),
            (Some("IMAGE_SAFETY"), false, Some("content_filter")),
            (
                Some("IMAGE_PROHIBITED_CONTENT"),
                false,
                Some("content_filter"),
            ),
            (Some("IMAGE_RECITATION"), false, Some("content_filter")),
            (Some("LANGUAGE"), false, Some("content_filter")),
            (Some("MALFORMED_FUNCTION_CALL"), false, Some("stop")),
            (Some("UNEXPECTED_TOOL_CALL"), false, Some("stop")),
            (Some("TOO_MANY_TOOL_CALLS"), false, Some("stop")),
            (Some("OTHER"), false, Some("stop")),
            (Some("NO_IMAGE"), false, Some("stop")),
            (Some("IMAGE_OTHER"), false, Some("stop")),
            (Some("FINISH_REASON_UNSPECIFIED"), false, Some("stop")),
            (Some("SOMETHING_NEW"), false, Some("stop")),
        ];
        for &(reason, calls, want) in cases {
            assert_eq!(finish_reason(reason, calls), want, "{reason:?} {calls}");
        }
        // And through a whole response: a SAFETY candidate without content.
        let out = run(
            r#"{"candidates": [{"finishReason": "SAFETY", "index": 0}], "responseId": "s"}"#,
            &Options::default(),
        );
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["choices"][0]["message"]["content"], "");
        let out = run(
            r#"{"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}]}"#,
            &Options::default(),
        );
        assert_eq!(out["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn usage_table() {
        let z = |p: u64, c: u64, t: u64, cached: u64, r: u64| {
            json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": t,
                   "prompt_tokens_details": {"cached_tokens": cached},
                   "completion_tokens_details": {"reasoning_tokens": r}})
        };
        let cases = [
            ("null", z(0, 0, 0, 0, 0)),
            ("{}", z(0, 0, 0, 0, 0)),
            (
                r#"{"promptTokenCount": 5, "totalTokenCount": 5}"#,
                z(5, 0, 5, 0, 0),
            ),
            (
                r#"{"promptTokenCount": 5, "candidatesTokenCount": 4}"#,
                z(5, 4, 9, 0, 0),
            ),
            (
                r#"{"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 7, "totalTokenCount": 107}"#,
                z(100, 7, 107, 60, 0),
            ),
            (
                r#"{"promptTokenCount": 31, "candidatesTokenCount": 11, "thoughtsTokenCount": 48, "totalTokenCount": 90}"#,
                z(31, 59, 90, 0, 48),
            ),
            (
                r#"{"promptTokenCount": 21, "candidatesTokenCount": 96, "toolUsePromptTokenCount": 160, "thoughtsTokenCount": 86, "cachedContentTokenCount": 3}"#,
                z(181, 182, 363, 3, 86),
            ),
            (
                r#"{"promptTokenCount": -1, "candidatesTokenCount": "7"}"#,
                z(0, 0, 0, 0, 0),
            ),
            (
                r#"{"promptTokenCount": 18446744073709551615, "toolUsePromptTokenCount": 5}"#,
                z(u64::MAX, 0, u64::MAX, 0, 0),
            ),
        ];
        for (meta, want) in cases {
            let v: Option<UsageMetadata> = loose_from_str(meta).unwrap();
            let got = usage(v.as_ref());
            assert_eq!(got, want, "{meta}");
        }
        let junk: Option<UsageMetadata> = loose_from_str("\"junk\"").unwrap();
        assert_eq!(usage(junk.as_ref()), z(0, 0, 0, 0, 0));
    }
}
