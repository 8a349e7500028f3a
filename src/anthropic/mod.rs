//! The Anthropic side of the gateway: pure translation between Anthropic's
//! Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) and
//! Gemini's `generateContent`, through the typed wire model in
//! [`crate::gemini::types`]. No I/O: the handler in `crate::messages_api`
//! reads the request, calls the pool and pumps the stream.
//!
//! * [`request`] — a Messages request → the Gemini body (and the
//!   `countTokens` body).
//! * [`answer`] — a Gemini answer → a `message` object; also the block
//!   assembler ([`answer::Blocks`]) the stream shares, so a streamed answer
//!   and a whole one are made of the same blocks.
//! * [`stream`] — Gemini SSE events → Anthropic's event sequence.
//! * [`stop`] — `stop_sequences` matched by the gateway (Gemini does not
//!   report them), in whole answers and streams alike.
//!
//! Owns the things both directions share: the thought-signature carrier
//! (Gemini's `thoughtSignature` rides in a `thinking` block's `signature`,
//! prefixed by [`SIGNATURE_PREFIX`]; [`NO_SIGNATURE`] when Gemini gave none),
//! the stop-reason and usage mappings, and Anthropic's error types by status.

pub mod answer;
mod messages;
pub mod request;
pub mod stop;
pub mod stream;

#[cfg(test)]
mod tests;

pub use answer::{AnswerCtx, Assembler, translate_answer};
pub use request::{Prepared, count_body, model_of, prepare};
pub use stream::{Step, StreamTranslator};

use serde_json::{Value, json};

use crate::gemini::types::{BlockReason, FinishReason, UsageMetadata};

/// Prefix of a `thinking` block signature that carries Gemini's
/// `thoughtSignature` (the rest, verbatim).
pub const SIGNATURE_PREFIX: &str = "gmb1.";

/// The gateway's own signature on a `thinking` block when Gemini gave none.
pub const NO_SIGNATURE: &str = "gmb0";

/// The `signature` of a `thinking` block carrying Gemini's signature `sig`
/// (or [`NO_SIGNATURE`]).
pub fn encode_signature(sig: Option<&str>) -> String {
    match sig.filter(|s| !s.is_empty()) {
        Some(s) => format!("{SIGNATURE_PREFIX}{s}"),
        None => NO_SIGNATURE.to_string(),
    }
}

/// Gemini's signature inside a `thinking` block's `signature`, if the
/// gateway made it; any other signature (Anthropic's own, or the marker)
/// is accepted and carries nothing.
pub fn decode_signature(s: &str) -> Option<&str> {
    s.strip_prefix(SIGNATURE_PREFIX).filter(|s| !s.is_empty())
}

/// Anthropic's `stop_reason` for how Gemini stopped: a prompt that was
/// blocked and the safety-type reasons are `refusal`, `MAX_TOKENS` is
/// `max_tokens`, a turn with tool calls is `tool_use`, anything else
/// `end_turn`. (`stop_sequence` is decided by the gateway's own matching,
/// [`stop`]: Gemini does not say whether a stop sequence ended its answer.)
pub fn stop_reason(
    finish: Option<&FinishReason>,
    blocked: Option<&BlockReason>,
    had_calls: bool,
) -> &'static str {
    if blocked.is_some() {
        return "refusal";
    }
    match finish {
        Some(FinishReason::MaxTokens) => "max_tokens",
        Some(
            FinishReason::Safety
            | FinishReason::Recitation
            | FinishReason::Blocklist
            | FinishReason::ProhibitedContent
            | FinishReason::Spii
            | FinishReason::ImageSafety
            | FinishReason::ImageProhibitedContent
            | FinishReason::ImageRecitation,
        ) => "refusal",
        _ if had_calls => "tool_use",
        _ => "end_turn",
    }
}

/// Token counts in Anthropic's terms: `(input, cache_read, output)`. Input
/// excludes cached tokens (Anthropic counts cache reads apart); output
/// includes thinking.
pub fn token_counts(u: Option<&UsageMetadata>) -> (u64, u64, u64) {
    let Some(u) = u else {
        return (0, 0, 0);
    };
    let cached = u.cached_content_token_count.unwrap_or(0);
    let prompt = u.prompt_token_count.unwrap_or(0) + u.tool_use_prompt_token_count.unwrap_or(0);
    let output = u.candidates_token_count.unwrap_or(0) + u.thoughts_token_count.unwrap_or(0);
    (prompt.saturating_sub(cached), cached, output)
}

/// The `usage` object for token counts from [`token_counts`].
pub fn usage_json((input, cached, output): (u64, u64, u64)) -> Value {
    json!({
        "input_tokens": input,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output,
    })
}

/// Anthropic's status and error `type` for an HTTP status: 400
/// `invalid_request_error`, 401 `authentication_error`, 403
/// `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 429
/// `rate_limit_error`, 503 → 529 `overloaded_error`, 504 `timeout_error`,
/// other 4xx `invalid_request_error`, anything else 5xx `api_error`.
pub fn error_kind(status: u16) -> (u16, &'static str) {
    match status {
        400 => (400, "invalid_request_error"),
        401 => (401, "authentication_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        504 => (504, "timeout_error"),
        402..=499 => (status, "invalid_request_error"),
        _ => (status.clamp(500, 599), "api_error"),
    }
}

/// Anthropic's error body `{"type":"error","error":{"type","message"}}`.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn signatures_round_trip_and_strangers_are_accepted() {
        let s = encode_signature(Some("c2ln"));
        assert_eq!(s, "gmb1.c2ln");
        assert_eq!(decode_signature(&s), Some("c2ln"));
        assert_eq!(encode_signature(None), NO_SIGNATURE);
        assert_eq!(decode_signature(NO_SIGNATURE), None);
        assert_eq!(decode_signature("EqQBCkYIBxgCKkB"), None);
        assert_eq!(decode_signature(""), None);
    }

    #[test]
    fn stop_reasons() {
        use FinishReason as F;
        assert_eq!(stop_reason(Some(&F::Stop), None, false), "end_turn");
        assert_eq!(stop_reason(Some(&F::Stop), None, true), "tool_use");
        assert_eq!(stop_reason(Some(&F::MaxTokens), None, true), "max_tokens");
        assert_eq!(stop_reason(Some(&F::Safety), None, false), "refusal");
        assert_eq!(
            stop_reason(None, Some(&BlockReason::Safety), false),
            "refusal"
        );
        assert_eq!(stop_reason(None, None, false), "end_turn");
    }

    #[test]
    fn usage_excludes_cache_reads_from_input() {
        let u = UsageMetadata {
            prompt_token_count: Some(1100),
            cached_content_token_count: Some(1024),
            candidates_token_count: Some(7),
            thoughts_token_count: Some(3),
            ..UsageMetadata::default()
        };
        assert_eq!(token_counts(Some(&u)), (76, 1024, 10));
        assert_eq!(token_counts(None), (0, 0, 0));
    }
}
