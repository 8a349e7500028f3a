//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`
//! (docs/wire-formats.md §C.3, §C.4, §C.6).
//!
//! Owns the non-streaming answer translation, the usage and finish-reason
//! mappings, the deterministic tool-call ids, and the rendering of Gemini
//! parts that have no OpenAI field (code execution, generated images, search
//! sources) into text. The streaming translator in [`super::stream`] reuses
//! the `pub(crate)` helpers here so both paths render identically.
//!
//! Tool call ids are `call_` + 16 lowercase hex digits of an FNV-1a 64 hash
//! over (responseId or `""`, candidate index, call position within the
//! candidate, function name), see [`tool_call_id`]. When the call carries a
//! Gemini `thoughtSignature` the id becomes `call_<16hex>_ts_<signature>` so
//! the request side can hand the signature back to Gemini; the non-stream
//! answer also carries it as `extra_content.google.thought_signature`.
//! A signature sitting on a later non-call part of the candidate (e.g. an
//! empty text part) is attached to the candidate's first call when no call
//! carries its own.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::Options;

/// Context for translating one answer.
#[derive(Clone, Copy, Debug)]
pub struct ResponseCtx<'a> {
    /// The model name echoed to the client (what it asked for).
    pub model: &'a str,
    /// `created`, unix seconds.
    pub created: u64,
    /// Translation settings.
    pub opts: &'a Options,
}

/// Gemini `GenerateContentResponse` → `chat.completion` (docs/wire-formats.md §C.3, §C.4, §C.6).
///
/// Never fails: missing or odd fields degrade to empty content. A response
/// without candidates yields one empty choice (`content_filter` plus a
/// `refusal` when `promptFeedback.blockReason` says the prompt was blocked,
/// else `stop`).
pub fn translate_response(gemini: &Value, ctx: &ResponseCtx) -> Value {
    let response_id = gemini
        .get("responseId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let id = match response_id {
        Some(r) => format!("chatcmpl-{r}"),
        None => format!("chatcmpl-{:016x}", hash_value(gemini)),
    };

    let candidates = as_slice(gemini.get("candidates"));
    let mut choices = Vec::with_capacity(candidates.len().max(1));
    for (pos, cand) in candidates.iter().enumerate() {
        choices.push(translate_candidate(
            cand,
            pos as u64,
            response_id.unwrap_or(""),
            ctx.opts,
        ));
    }
    if choices.is_empty() {
        let block = gemini
            .get("promptFeedback")
            .and_then(|p| p.get("blockReason"))
            .filter(|r| !r.is_null());
        choices.push(empty_choice(block));
    }

    let mut out = Map::new();
    out.insert("id".into(), Value::String(id));
    out.insert("object".into(), Value::from("chat.completion"));
    out.insert("created".into(), Value::from(ctx.created));
    out.insert("model".into(), Value::from(ctx.model));
    out.insert("choices".into(), Value::Array(choices));
    out.insert("usage".into(), usage(gemini.get("usageMetadata")));
    out.insert("system_fingerprint".into(), Value::Null);
    Value::Object(out)
}

/// OpenAI `usage` from `usageMetadata` (docs/wire-formats.md §C.4); all zeros when absent.
///
/// `prompt_tokens` = prompt + tool-use prompt, `completion_tokens` =
/// candidates + thoughts, `total_tokens` = `totalTokenCount` (or the sum),
/// plus `prompt_tokens_details.cached_tokens` and
/// `completion_tokens_details.reasoning_tokens`.
pub fn usage(meta: Option<&Value>) -> Value {
    Usage::from_meta(meta).to_value()
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

// ---------------------------------------------------------------------------
// Shared helpers (also used by `stream`).

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

fn hash_value(v: &Value) -> u64 {
    let mut h = Fnv::new();
    // Writing into the hasher cannot fail.
    let _ = serde_json::to_writer(&mut h, v);
    h.0
}

/// `v` as an array slice; empty when absent or not an array.
pub(crate) fn as_slice(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The parts of a candidate (`content.parts`), empty when missing.
pub(crate) fn candidate_parts(cand: &Value) -> &[Value] {
    as_slice(cand.get("content").and_then(|c| c.get("parts")))
}

/// Token counts of a `usageMetadata`, already in OpenAI terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    prompt: u64,
    completion: u64,
    total: u64,
    cached: u64,
    reasoning: u64,
}

impl Usage {
    pub(crate) fn from_meta(meta: Option<&Value>) -> Self {
        let n = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let prompt = n("promptTokenCount").saturating_add(n("toolUsePromptTokenCount"));
        let reasoning = n("thoughtsTokenCount");
        let completion = n("candidatesTokenCount").saturating_add(reasoning);
        let total = meta
            .and_then(|m| m.get("totalTokenCount"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| prompt.saturating_add(completion));
        Usage {
            prompt,
            completion,
            total,
            cached: n("cachedContentTokenCount"),
            reasoning,
        }
    }

    pub(crate) fn to_value(self) -> Value {
        let mut cached = Map::new();
        cached.insert("cached_tokens".into(), Value::from(self.cached));
        let mut reasoning = Map::new();
        reasoning.insert("reasoning_tokens".into(), Value::from(self.reasoning));
        let mut m = Map::new();
        m.insert("prompt_tokens".into(), Value::from(self.prompt));
        m.insert("completion_tokens".into(), Value::from(self.completion));
        m.insert("total_tokens".into(), Value::from(self.total));
        m.insert("prompt_tokens_details".into(), Value::Object(cached));
        m.insert("completion_tokens_details".into(), Value::Object(reasoning));
        Value::Object(m)
    }
}

/// What one Gemini part contributes to the OpenAI answer.
pub(crate) enum Part<'a> {
    /// Visible text (may be empty).
    Text(&'a str),
    /// Thought summary text (`"thought": true`).
    Thought(&'a str),
    /// A `functionCall`.
    Call(Call<'a>),
    /// Output with no OpenAI field, rendered into content by [`render`].
    Rendered(Rendered<'a>),
    /// Nothing to show (unknown part, thought non-text, malformed).
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

/// The non-empty `thoughtSignature` of a part.
pub(crate) fn signature(part: &Value) -> Option<&str> {
    part.get("thoughtSignature")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Classify one Gemini part.
pub(crate) fn classify(part: &Value) -> Part<'_> {
    if let Some(fc) = part.get("functionCall").filter(|f| f.is_object()) {
        return Part::Call(Call {
            name: fc.get("name").and_then(Value::as_str).unwrap_or(""),
            args: fc.get("args").filter(|a| !a.is_null()),
            signature: signature(part),
        });
    }
    let text = part.get("text").and_then(Value::as_str);
    if part.get("thought").and_then(Value::as_bool) == Some(true) {
        return text.map_or(Part::Skip, Part::Thought);
    }
    if let Some(t) = text {
        return Part::Text(t);
    }
    if let Some(ec) = part.get("executableCode") {
        let language = ec.get("language").and_then(Value::as_str);
        let language = match language {
            None | Some("" | "LANGUAGE_UNSPECIFIED") => "python",
            Some(l) => l,
        };
        return Part::Rendered(Rendered::Code {
            language,
            code: ec.get("code").and_then(Value::as_str).unwrap_or(""),
        });
    }
    if let Some(res) = part.get("codeExecutionResult") {
        let outcome = res.get("outcome").and_then(Value::as_str);
        return Part::Rendered(Rendered::Result {
            failed: matches!(
                outcome,
                Some("OUTCOME_FAILED" | "OUTCOME_DEADLINE_EXCEEDED")
            ),
            output: res.get("output").and_then(Value::as_str).unwrap_or(""),
        });
    }
    if let Some(img) = part.get("inlineData")
        && let Some(data) = img.get("data").and_then(Value::as_str)
    {
        let mime = img.get("mimeType").and_then(Value::as_str);
        return Part::Rendered(Rendered::Image {
            mime: mime.filter(|m| !m.is_empty()).unwrap_or("image/png"),
            data,
        });
    }
    Part::Skip
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
pub(crate) fn late_signature(rest: &[Value]) -> Option<&str> {
    let mut found = None;
    for p in rest {
        let is_call = p.get("functionCall").is_some_and(Value::is_object);
        match signature(p) {
            Some(_) if is_call => return None,
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

/// Append `\n\nSources:\n1. [title](uri)\n2. ...` for the web chunks of a
/// `groundingMetadata` (deduplicated by uri). Returns whether anything was written.
pub(crate) fn render_sources(grounding: &Value, out: &mut String) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    for chunk in as_slice(grounding.get("groundingChunks")) {
        let Some((uri, title)) = web_chunk(chunk) else {
            continue;
        };
        if !seen.insert(uri) {
            continue;
        }
        out.push_str(if seen.len() == 1 {
            "\n\nSources:\n"
        } else {
            "\n"
        });
        let _ = write!(out, "{}. [{title}]({uri})", seen.len());
    }
    !seen.is_empty()
}

/// `(uri, title)` of a `groundingChunks[]` entry with a `web` source; the
/// title falls back to the uri.
fn web_chunk(chunk: &Value) -> Option<(&str, &str)> {
    let web = chunk.get("web")?;
    let uri = web
        .get("uri")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())?;
    let title = web
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(uri);
    Some((uri, title))
}

// ---------------------------------------------------------------------------
// Non-stream translation.

/// Where one visible text part landed in `content`.
struct TextSpan {
    /// Index of the part in `content.parts`.
    part_index: usize,
    /// Byte offset in the concatenation of the visible text parts.
    concat_start: usize,
    /// Byte offset in `content`.
    content_start: usize,
    /// Byte length.
    len: usize,
}

fn translate_candidate(cand: &Value, pos: u64, response_id: &str, opts: &Options) -> Value {
    let index = cand.get("index").and_then(Value::as_u64).unwrap_or(pos);
    let parts = candidate_parts(cand);

    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut spans = Vec::new();
    let mut concat_len = 0;
    let mut args = Vec::new();

    for (i, part) in parts.iter().enumerate() {
        match classify(part) {
            Part::Text(t) => {
                if t.is_empty() {
                    continue;
                }
                spans.push(TextSpan {
                    part_index: i,
                    concat_start: concat_len,
                    content_start: content.len(),
                    len: t.len(),
                });
                concat_len += t.len();
                content.push_str(t);
            }
            Part::Thought(t) => {
                if opts.show_thinking {
                    reasoning.push_str(t);
                }
            }
            Part::Call(call) => {
                let position = tool_calls.len() as u64;
                let sig = call.signature.or_else(|| {
                    (position == 0)
                        .then(|| late_signature(parts.get(i + 1..).unwrap_or(&[])))
                        .flatten()
                });
                args.clear();
                write_arguments(call.args, &mut args);
                let arguments = String::from_utf8_lossy(&args).into_owned();
                tool_calls.push(tool_call_value(
                    tool_call_id(response_id, index, position, call.name, sig),
                    call.name,
                    arguments,
                    sig,
                ));
            }
            Part::Rendered(r) => render(&r, &mut content),
            Part::Skip => {}
        }
    }

    let mut annotations = Vec::new();
    if let Some(gm) = cand.get("groundingMetadata") {
        annotations = build_annotations(gm, &content, &spans);
        if opts.show_search_link {
            render_sources(gm, &mut content);
        }
    }

    let had_calls = !tool_calls.is_empty();
    let mut msg = Map::new();
    msg.insert("role".into(), Value::from("assistant"));
    let content = if content.is_empty() && had_calls {
        Value::Null
    } else {
        Value::String(content)
    };
    msg.insert("content".into(), content);
    if opts.show_thinking && !reasoning.is_empty() {
        msg.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if had_calls {
        msg.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !annotations.is_empty() {
        msg.insert("annotations".into(), Value::Array(annotations));
    }
    msg.insert("refusal".into(), Value::Null);

    let reason = finish_reason(cand.get("finishReason").and_then(Value::as_str), had_calls);
    let logprobs = cand
        .get("logprobsResult")
        .map_or(Value::Null, translate_logprobs);
    choice(index, msg, logprobs, reason)
}

fn choice(index: u64, msg: Map<String, Value>, logprobs: Value, reason: Option<&str>) -> Value {
    let mut c = Map::new();
    c.insert("index".into(), Value::from(index));
    c.insert("message".into(), Value::Object(msg));
    c.insert("logprobs".into(), logprobs);
    c.insert(
        "finish_reason".into(),
        reason.map_or(Value::Null, Value::from),
    );
    Value::Object(c)
}

/// The single choice of an answer without candidates.
fn empty_choice(block: Option<&Value>) -> Value {
    let mut msg = Map::new();
    msg.insert("role".into(), Value::from("assistant"));
    msg.insert("content".into(), Value::from(""));
    let (refusal, reason) = match block {
        Some(b) => (Value::String(blocked_refusal(b)), "content_filter"),
        None => (Value::Null, "stop"),
    };
    msg.insert("refusal".into(), refusal);
    choice(0, msg, Value::Null, Some(reason))
}

/// The refusal text for a prompt Gemini blocked (`promptFeedback.blockReason`).
pub(crate) fn blocked_refusal(block: &Value) -> String {
    let why = match block {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("Prompt blocked by Gemini: {why}")
}

fn tool_call_value(id: String, name: &str, arguments: String, sig: Option<&str>) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), Value::from(name));
    function.insert("arguments".into(), Value::String(arguments));
    let mut call = Map::new();
    call.insert("id".into(), Value::String(id));
    call.insert("type".into(), Value::from("function"));
    call.insert("function".into(), Value::Object(function));
    if let Some(sig) = sig {
        let mut google = Map::new();
        google.insert("thought_signature".into(), Value::from(sig));
        let mut extra = Map::new();
        extra.insert("google".into(), Value::Object(google));
        call.insert("extra_content".into(), Value::Object(extra));
    }
    Value::Object(call)
}

/// `url_citation` annotations from `groundingSupports`, with Gemini's UTF-8
/// byte offsets converted to char offsets into `content`. Supports whose
/// segment cannot be located are skipped.
fn build_annotations(gm: &Value, content: &str, spans: &[TextSpan]) -> Vec<Value> {
    let chunks = as_slice(gm.get("groundingChunks"));
    let supports = as_slice(gm.get("groundingSupports"));
    let mut out = Vec::new();
    if chunks.is_empty() {
        return out;
    }
    let mut chars = CharOffsets {
        text: content,
        byte: 0,
        chars: 0,
    };
    for s in supports {
        let Some(seg) = s.get("segment") else {
            continue;
        };
        let Some((b0, b1)) = segment_range(seg, content, spans) else {
            continue;
        };
        let Some(c0) = chars.offset(b0) else {
            continue;
        };
        let Some(c1) = content.get(b0..b1).map(|s| c0 + s.chars().count()) else {
            continue;
        };
        for ci in as_slice(s.get("groundingChunkIndices")) {
            let Some(chunk) = ci
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| chunks.get(i))
            else {
                continue;
            };
            let Some((url, title)) = web_chunk(chunk) else {
                continue;
            };
            let mut cite = Map::new();
            cite.insert("start_index".into(), Value::from(c0));
            cite.insert("end_index".into(), Value::from(c1));
            cite.insert("title".into(), Value::from(title));
            cite.insert("url".into(), Value::from(url));
            let mut a = Map::new();
            a.insert("type".into(), Value::from("url_citation"));
            a.insert("url_citation".into(), Value::Object(cite));
            out.push(Value::Object(a));
        }
    }
    out
}

/// Byte → char offsets in a text, counting on from the previous answer
/// (supports usually come in text order), so many lookups stay linear.
struct CharOffsets<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
}

impl CharOffsets<'_> {
    /// Chars before byte `b`; `None` if `b` is not a char boundary.
    fn offset(&mut self, b: usize) -> Option<usize> {
        if b < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        let n = self.text.get(self.byte..b)?.chars().count();
        self.byte = b;
        self.chars += n;
        Some(self.chars)
    }
}

/// The byte range of `content` a grounding segment refers to.
///
/// Offsets are tried relative to the part named by `partIndex`, then
/// relative to the concatenated visible text; a candidate range must be in
/// bounds, on char boundaries, and equal `segment.text` when that is given.
/// As a last resort `segment.text` is searched for in `content`.
fn segment_range(seg: &Value, content: &str, spans: &[TextSpan]) -> Option<(usize, usize)> {
    let text = seg.get("text").and_then(Value::as_str);
    let offset = |k: &str, default: Option<u64>| {
        seg.get(k)
            .map_or(default, Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    };
    let fits = |r: (usize, usize)| {
        content
            .get(r.0..r.1)
            .is_some_and(|s| text.is_none_or(|t| t == s))
    };
    if let (Some(start), Some(end)) = (offset("startIndex", Some(0)), offset("endIndex", None))
        && start < end
    {
        let by_part = seg
            .get("partIndex")
            .and_then(Value::as_u64)
            .and_then(|pi| spans.iter().find(|s| s.part_index as u64 == pi))
            .filter(|s| end <= s.len)
            .map(|s| (s.content_start + start, s.content_start + end));
        if let Some(r) = by_part.filter(|&r| fits(r)) {
            return Some(r);
        }
        let by_concat = map_concat(spans, start, false).zip(map_concat(spans, end, true));
        if let Some(r) = by_concat.filter(|&r| r.0 < r.1 && fits(r)) {
            return Some(r);
        }
    }
    let t = text.filter(|t| !t.is_empty())?;
    let a = content.find(t)?;
    Some((a, a + t.len()))
}

/// A byte offset in the concatenated visible text → byte offset in `content`.
/// Ends map into the span they close, starts into the span they open.
fn map_concat(spans: &[TextSpan], off: usize, is_end: bool) -> Option<usize> {
    spans.iter().find_map(|s| {
        let hit = if is_end {
            off > s.concat_start && off <= s.concat_start + s.len
        } else {
            off >= s.concat_start && off < s.concat_start + s.len
        };
        hit.then(|| s.content_start + (off - s.concat_start))
    })
}

/// Gemini `logprobsResult` → OpenAI choice `logprobs` (best effort).
fn translate_logprobs(lp: &Value) -> Value {
    let Some(chosen) = lp.get("chosenCandidates").and_then(Value::as_array) else {
        return Value::Null;
    };
    let top = as_slice(lp.get("topCandidates"));
    let content = chosen
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut entry = token_logprob(c);
            let alts = top
                .get(i)
                .map(|t| as_slice(t.get("candidates")))
                .unwrap_or(&[])
                .iter()
                .map(|a| Value::Object(token_logprob(a)))
                .collect();
            entry.insert("top_logprobs".into(), Value::Array(alts));
            Value::Object(entry)
        })
        .collect();
    let mut m = Map::new();
    m.insert("content".into(), Value::Array(content));
    m.insert("refusal".into(), Value::Null);
    Value::Object(m)
}

fn token_logprob(c: &Value) -> Map<String, Value> {
    let token = c.get("token").and_then(Value::as_str).unwrap_or("");
    let logprob = c
        .get("logProbability")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mut m = Map::new();
    m.insert("token".into(), Value::from(token));
    m.insert("logprob".into(), Value::from(logprob));
    m.insert(
        "bytes".into(),
        Value::Array(token.bytes().map(Value::from).collect()),
    );
    m
}

// ---------------------------------------------------------------------------
// Fast path: the common answer shape, deserialized into borrowed typed structs
// and serialized straight to bytes, without building `Value` trees.

/// Gemini answer bytes → serialized OpenAI `chat.completion` bytes.
///
/// `None` when `gemini` is not valid JSON. The output equals
/// `serde_json::to_vec(&translate_response(&parsed, ctx))`; answers the fast
/// path does not model (grounding, logprobs, code execution, images, unknown
/// part kinds, odd types, no `responseId`) go through [`translate_response`].
pub fn translate_response_bytes(gemini: &[u8], ctx: &ResponseCtx) -> Option<Vec<u8>> {
    if let Some(out) = fast::translate(gemini, ctx) {
        return Some(out);
    }
    let v: Value = serde_json::from_slice(gemini).ok()?;
    Some(serde_json::to_vec(&translate_response(&v, ctx)).unwrap_or_default())
}

/// The typed fast path for non-streamed answers, and the typed pieces the
/// stream translator's fast path shares.
pub(crate) mod fast {
    use std::borrow::Cow;

    use serde::de::IgnoredAny;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::openai::typed::{Obj, S};

    use super::{ResponseCtx, Usage, finish_reason, tool_call_id, write_arguments};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        #[serde(borrow)]
        candidates: Option<Vec<Obj<Candidate<'a>>>>,
        #[serde(borrow)]
        response_id: Option<S<'a>>,
        #[serde(borrow)]
        prompt_feedback: Option<Obj<Feedback<'a>>>,
        usage_metadata: Option<Obj<Meta>>,
    }

    /// A candidate (of an answer, or of a stream event).
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct Candidate<'a> {
        #[serde(borrow)]
        pub(crate) content: Option<Obj<Content<'a>>>,
        #[serde(borrow)]
        pub(crate) finish_reason: Option<S<'a>>,
        pub(crate) index: Option<u64>,
        // Not modelled: their presence sends the answer to the `Value` path.
        pub(crate) grounding_metadata: Option<IgnoredAny>,
        logprobs_result: Option<IgnoredAny>,
    }

    impl<'a> Candidate<'a> {
        /// `content.parts`, empty when missing.
        pub(crate) fn parts(&self) -> &[Obj<FastPart<'a>>] {
            self.content
                .as_ref()
                .and_then(|Obj(c)| c.parts.as_deref())
                .unwrap_or(&[])
        }
    }

    /// A candidate's `content`.
    #[derive(Deserialize)]
    pub(crate) struct Content<'a> {
        #[serde(borrow)]
        pub(crate) parts: Option<Vec<Obj<FastPart<'a>>>>,
    }

    /// A part the fast paths model; any other member fails the parse.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(crate) struct FastPart<'a> {
        #[serde(borrow)]
        pub(crate) text: Option<S<'a>>,
        pub(crate) thought: Option<bool>,
        #[serde(borrow)]
        thought_signature: Option<S<'a>>,
        #[serde(borrow)]
        pub(crate) function_call: Option<Obj<FnCall<'a>>>,
    }

    /// A `functionCall` part's call.
    #[derive(Deserialize)]
    pub(crate) struct FnCall<'a> {
        #[serde(borrow)]
        name: Option<S<'a>>,
        args: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Feedback<'a> {
        #[serde(borrow)]
        block_reason: Option<S<'a>>,
    }

    /// `usageMetadata`.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct Meta {
        prompt_token_count: Option<u64>,
        tool_use_prompt_token_count: Option<u64>,
        thoughts_token_count: Option<u64>,
        candidates_token_count: Option<u64>,
        total_token_count: Option<u64>,
        cached_content_token_count: Option<u64>,
    }

    impl Meta {
        /// [`Usage::from_meta`] over typed counts.
        pub(crate) fn usage(&self) -> Usage {
            let n = |v: Option<u64>| v.unwrap_or(0);
            let prompt =
                n(self.prompt_token_count).saturating_add(n(self.tool_use_prompt_token_count));
            let reasoning = n(self.thoughts_token_count);
            let completion = n(self.candidates_token_count).saturating_add(reasoning);
            Usage {
                prompt,
                completion,
                total: self
                    .total_token_count
                    .unwrap_or_else(|| prompt.saturating_add(completion)),
                cached: n(self.cached_content_token_count),
                reasoning,
            }
        }
    }

    // Output, fields in the (sorted) order `Value` serializes them.

    #[derive(Serialize)]
    struct Out<'a> {
        choices: Vec<Choice<'a>>,
        created: u64,
        id: String,
        model: &'a str,
        object: &'static str,
        system_fingerprint: (),
        usage: OutUsage,
    }

    #[derive(Serialize)]
    struct Choice<'a> {
        finish_reason: Option<&'static str>,
        index: u64,
        logprobs: (),
        message: Message<'a>,
    }

    #[derive(Serialize)]
    struct Message<'a> {
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<Cow<'a, str>>,
        refusal: Option<String>,
        role: &'static str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall<'a>>,
    }

    #[derive(Serialize)]
    struct ToolCall<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        extra_content: Option<Extra<'a>>,
        function: Function<'a>,
        id: String,
        #[serde(rename = "type")]
        kind: &'static str,
    }

    #[derive(Serialize)]
    struct Extra<'a> {
        google: Google<'a>,
    }

    #[derive(Serialize)]
    struct Google<'a> {
        thought_signature: Cow<'a, str>,
    }

    #[derive(Serialize)]
    struct Function<'a> {
        arguments: String,
        name: Cow<'a, str>,
    }

    #[derive(Serialize)]
    struct OutUsage {
        completion_tokens: u64,
        completion_tokens_details: Reasoning,
        prompt_tokens: u64,
        prompt_tokens_details: Cached,
        total_tokens: u64,
    }

    #[derive(Serialize)]
    struct Reasoning {
        reasoning_tokens: u64,
    }

    #[derive(Serialize)]
    struct Cached {
        cached_tokens: u64,
    }

    /// Whether the text may have a lone `\uD800`–`\uDFFF` escape: `Value`
    /// parsing rejects those, while ignored fields here are not checked.
    /// (An escaped backslash before `u` can only cause a needless fallback.)
    pub(crate) fn has_lone_surrogate(text: &str) -> bool {
        // Most answers have no `\u` escape at all: one vectorized search.
        if !text.contains("\\u") {
            return false;
        }
        let s = text.as_bytes();
        let escape = |i: usize| -> Option<u32> {
            let w = s.get(i..i + 6)?;
            if w[0] != b'\\' || w[1] != b'u' {
                return None;
            }
            u32::from_str_radix(std::str::from_utf8(&w[2..]).ok()?, 16).ok()
        };
        let mut i = 0;
        while let Some(at) = text.get(i..).and_then(|rest| rest.find('\\')) {
            i += at;
            match escape(i) {
                Some(0xD800..=0xDBFF) => match escape(i + 6) {
                    Some(0xDC00..=0xDFFF) => i += 12,
                    _ => return true,
                },
                Some(0xDC00..=0xDFFF) => return true,
                _ => i += 1,
            }
        }
        false
    }

    fn push<'a>(acc: &mut Cow<'a, str>, t: Cow<'a, str>) {
        if t.is_empty() {
        } else if acc.is_empty() {
            *acc = t;
        } else {
            acc.to_mut().push_str(&t);
        }
    }

    fn sig<'b, 'a>(p: &'b FastPart<'a>) -> Option<&'b Cow<'a, str>> {
        p.thought_signature
            .as_ref()
            .map(|s| &s.0)
            .filter(|s| !s.is_empty())
    }

    /// [`super::late_signature`] over typed parts.
    fn late_signature<'b, 'a>(rest: &'b [Obj<FastPart<'a>>]) -> Option<&'b Cow<'a, str>> {
        let mut found = None;
        for Obj(p) in rest {
            match sig(p) {
                Some(_) if p.function_call.is_some() => return None,
                Some(s) if found.is_none() => found = Some(s),
                _ => {}
            }
        }
        found
    }

    /// The fast translation, `None` when the answer needs the `Value` path.
    pub(super) fn translate(gemini: &[u8], ctx: &ResponseCtx) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(gemini).ok()?;
        if has_lone_surrogate(text) {
            return None;
        }
        let Obj(answer) = serde_json::from_str::<Obj<Answer>>(text).ok()?;
        let response_id = answer.response_id.map(|s| s.0).filter(|s| !s.is_empty())?;
        let mut candidates = answer.candidates.unwrap_or_default();
        if candidates
            .iter()
            .any(|Obj(c)| c.grounding_metadata.is_some() || c.logprobs_result.is_some())
        {
            return None;
        }

        let mut choices = Vec::with_capacity(candidates.len().max(1));
        for (pos, Obj(cand)) in candidates.iter_mut().enumerate() {
            let index = cand.index.unwrap_or(pos as u64);
            let mut parts = cand
                .content
                .take()
                .and_then(|Obj(c)| c.parts)
                .unwrap_or_default();
            let mut content: Cow<str> = Cow::Borrowed("");
            let mut reasoning: Cow<str> = Cow::Borrowed("");
            let mut tool_calls = Vec::new();
            for i in 0..parts.len() {
                let Obj(part) = &parts[i];
                if let Some(Obj(fc)) = &part.function_call {
                    let position = tool_calls.len() as u64;
                    let name = fc.name.as_ref().map_or(Cow::Borrowed(""), |n| n.0.clone());
                    let signature = sig(part).or_else(|| {
                        (position == 0)
                            .then(|| late_signature(&parts[i + 1..]))
                            .flatten()
                    });
                    let mut args = Vec::new();
                    write_arguments(fc.args.as_ref(), &mut args);
                    tool_calls.push(ToolCall {
                        id: tool_call_id(
                            &response_id,
                            index,
                            position,
                            &name,
                            signature.map(|s| &**s),
                        ),
                        extra_content: signature.map(|s| Extra {
                            google: Google {
                                thought_signature: s.clone(),
                            },
                        }),
                        function: Function {
                            arguments: String::from_utf8_lossy(&args).into_owned(),
                            name,
                        },
                        kind: "function",
                    });
                    continue;
                }
                let thought = part.thought == Some(true);
                let Some(S(t)) = parts[i].0.text.take() else {
                    continue;
                };
                if !thought {
                    push(&mut content, t);
                } else if ctx.opts.show_thinking {
                    push(&mut reasoning, t);
                }
            }
            let had_calls = !tool_calls.is_empty();
            let reason = finish_reason(cand.finish_reason.as_ref().map(|s| &*s.0), had_calls);
            choices.push(Choice {
                finish_reason: reason,
                index,
                logprobs: (),
                message: Message {
                    content: (!(content.is_empty() && had_calls)).then_some(content),
                    reasoning_content: (ctx.opts.show_thinking && !reasoning.is_empty())
                        .then_some(reasoning),
                    refusal: None,
                    role: "assistant",
                    tool_calls,
                },
            });
        }
        if choices.is_empty() {
            let block = answer.prompt_feedback.and_then(|Obj(p)| p.block_reason);
            let (refusal, reason) = match block {
                Some(S(b)) => (
                    Some(format!("Prompt blocked by Gemini: {b}")),
                    "content_filter",
                ),
                None => (None, "stop"),
            };
            choices.push(Choice {
                finish_reason: Some(reason),
                index: 0,
                logprobs: (),
                message: Message {
                    content: Some(Cow::Borrowed("")),
                    reasoning_content: None,
                    refusal,
                    role: "assistant",
                    tool_calls: Vec::new(),
                },
            });
        }

        let u = match answer.usage_metadata {
            Some(Obj(m)) => m.usage(),
            None => Usage::default(),
        };

        let out = Out {
            choices,
            created: ctx.created,
            id: format!("chatcmpl-{response_id}"),
            model: ctx.model,
            object: "chat.completion",
            system_fingerprint: (),
            usage: OutUsage {
                completion_tokens: u.completion,
                completion_tokens_details: Reasoning {
                    reasoning_tokens: u.reasoning,
                },
                prompt_tokens: u.prompt,
                prompt_tokens_details: Cached {
                    cached_tokens: u.cached,
                },
                total_tokens: u.total,
            },
        };
        let mut buf = Vec::with_capacity(gemini.len() / 2 + 512);
        serde_json::to_writer(&mut buf, &out).ok()?;
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("bad test JSON: {e}"))
    }

    fn run(body: &str, opts: &Options) -> Value {
        let ctx = ResponseCtx {
            model: "gemini-2.5-flash",
            created: 1760000000,
            opts,
        };
        translate_response(&parse(body), &ctx)
    }

    fn quiet() -> Options {
        Options {
            show_thinking: false,
            show_search_link: false,
            ..Options::default()
        }
    }

    const PLAIN: &str = r#"{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "text": "Oslo is about 4 °C right now."
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 31,
    "candidatesTokenCount": 11,
    "totalTokenCount": 90,
    "thoughtsTokenCount": 48
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "q1x9aPzXJ4mUmtkP2bW0sQM"
}"#;

    const CALL: &str = r#"{"candidates": [{"content": {"parts": [
    {"text": "**Planning**\n\nI need the weather tool.", "thought": true},
    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
     "thoughtSignature": "CtQOAVSoXO74..."}
  ], "role": "model"}, "finishReason": "STOP", "index": 0}],
 "usageMetadata": {"promptTokenCount": 38, "candidatesTokenCount": 6, "totalTokenCount": 212, "thoughtsTokenCount": 168},
 "modelVersion": "gemini-2.5-flash", "responseId": "48SHaPHp"}"#;

    const CODE: &str = r#"{"candidates": [{"content": {"parts": [
    {"text": "Let me compute it."},
    {"executableCode": {"language": "PYTHON", "code": "print(sum([2, 3, 5, 7, 11]))\n"}},
    {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "28\n"}},
    {"text": "The sum is 28."}
  ], "role": "model"}, "finishReason": "STOP", "index": 0}],
 "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 96, "totalTokenCount": 363,
                   "toolUsePromptTokenCount": 160, "thoughtsTokenCount": 86},
 "modelVersion": "gemini-2.5-flash"}"#;

    const BLOCKED: &str = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
  {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH"}]},
 "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
 "modelVersion": "gemini-2.5-flash"}"#;

    #[test]
    fn plain_text_exact() {
        let out = run(PLAIN, &Options::default());
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-q1x9aPzXJ4mUmtkP2bW0sQM",
                "object": "chat.completion",
                "created": 1760000000,
                "model": "gemini-2.5-flash",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Oslo is about 4 °C right now.", "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {
                    "prompt_tokens": 31, "completion_tokens": 59, "total_tokens": 90,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 48}
                },
                "system_fingerprint": null
            })
        );
    }

    #[test]
    fn several_parts_thoughts_and_order() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"text": "Think A. ", "thought": true},
            {"text": "Hello"},
            {"text": ""},
            {"text": "Think B.", "thought": true},
            {"text": ", world"},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}, "thought": true},
            {"unknownPart": {}}
        ]}, "finishReason": "STOP"}], "responseId": "r"}"#;
        let shown = run(body, &Options::default());
        let msg = &shown["choices"][0]["message"];
        assert_eq!(msg["content"], "Hello, world");
        assert_eq!(msg["reasoning_content"], "Think A. Think B.");
        let hidden = run(body, &quiet());
        let msg = &hidden["choices"][0]["message"];
        assert_eq!(msg["content"], "Hello, world");
        assert!(msg.get("reasoning_content").is_none());
        assert!(msg.get("tool_calls").is_none());
    }

    #[test]
    fn tool_call_with_signature() {
        let out = run(CALL, &Options::default());
        let sig = "CtQOAVSoXO74...";
        let id = tool_call_id("48SHaPHp", 0, 0, "get_weather", Some(sig));
        assert!(id.starts_with("call_") && id.ends_with("_ts_CtQOAVSoXO74..."));
        assert_eq!(id.len(), 5 + 16 + 4 + sig.len());
        assert_eq!(
            out["choices"][0],
            json!({
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "reasoning_content": "**Planning**\n\nI need the weather tool.",
                    "tool_calls": [{
                        "id": id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
                        "extra_content": {"google": {"thought_signature": sig}}
                    }],
                    "refusal": null
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            })
        );
        assert_eq!(out["usage"]["completion_tokens"], 174);
        assert_eq!(
            out["usage"]["completion_tokens_details"]["reasoning_tokens"],
            168
        );
    }

    #[test]
    fn tool_calls_without_signature_and_ids() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_time"}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen", "n": [1, 2]}}}
        ]}, "finishReason": "STOP"}], "responseId": "rid"}"#;
        let out = run(body, &Options::default());
        let msg = &out["choices"][0]["message"];
        assert_eq!(msg["content"], "Checking.");
        let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
        assert_eq!(calls.len(), 3);
        let args: Vec<_> = calls
            .iter()
            .map(|c| c["function"]["arguments"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            args,
            [
                "{\"city\":\"Oslo\"}",
                "{}",
                "{\"city\":\"Bergen\",\"n\":[1,2]}"
            ]
        );
        for (k, c) in calls.iter().enumerate() {
            let name = c["function"]["name"].as_str().unwrap_or("");
            assert_eq!(c["id"], tool_call_id("rid", 0, k as u64, name, None));
            assert!(c.get("extra_content").is_none());
            let id = c["id"].as_str().unwrap_or("");
            assert_eq!(id.len(), 21);
            assert!(
                id[5..]
                    .chars()
                    .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
            );
        }
        // Same call at another position, candidate or response → other id.
        assert_ne!(calls[0]["id"], calls[2]["id"]);
        let again = run(body, &Options::default());
        assert_eq!(again, out, "deterministic");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    }

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
    fn signature_on_later_part_goes_to_first_call() {
        let body = r#"{"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a", "args": {}}},
            {"functionCall": {"name": "b", "args": {}}},
            {"text": "", "thoughtSignature": "SIG=="}
        ]}, "finishReason": "STOP"}], "responseId": "x"}"#;
        let out = run(body, &Options::default());
        let calls = &out["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], tool_call_id("x", 0, 0, "a", Some("SIG==")));
        assert_eq!(
            calls[0]["extra_content"]["google"]["thought_signature"],
            "SIG=="
        );
        assert_eq!(calls[1]["id"], tool_call_id("x", 0, 1, "b", None));
        // A call with its own signature wins; the trailing one is ignored.
        let body = r#"{"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a"}},
            {"functionCall": {"name": "b"}, "thoughtSignature": "OWN"},
            {"text": "", "thoughtSignature": "LATE"}
        ]}}], "responseId": "x"}"#;
        let out = run(body, &Options::default());
        let calls = &out["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], tool_call_id("x", 0, 0, "a", None));
        assert_eq!(calls[1]["id"], tool_call_id("x", 0, 1, "b", Some("OWN")));
        assert_eq!(out["choices"][0]["finish_reason"], Value::Null);
    }

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
            if let Part::Rendered(r) = classify(&part) {
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

    const GROUNDED: &str = r#"{"candidates": [{"content": {"parts": [
        {"text": "Planning the search.", "thought": true},
        {"text": "Oslo is about 4 °C right now. "},
        {"text": "Bergen is wet."}
      ]}, "finishReason": "STOP", "index": 0,
      "groundingMetadata": {
        "searchEntryPoint": {"renderedContent": "<style>...</style>"},
        "groundingChunks": [
          {"web": {"uri": "https://example.test/met", "title": "met.no"}},
          {"web": {"uri": "https://example.test/yr", "title": "yr.no"}},
          {"web": {"uri": "https://example.test/met", "title": "met.no again"}},
          {"retrievedContext": {"uri": "gs://x"}},
          {"web": {"uri": "https://example.test/untitled"}}
        ],
        "groundingSupports": [
          {"segment": {"endIndex": 30, "text": "Oslo is about 4 °C right now."},
           "groundingChunkIndices": [0, 3], "confidenceScores": [0.9, 0.1]},
          {"segment": {"startIndex": 31, "endIndex": 45, "text": "Bergen is wet."},
           "groundingChunkIndices": [1, 4]},
          {"segment": {"partIndex": 2, "endIndex": 6, "text": "Bergen"},
           "groundingChunkIndices": [2]},
          {"segment": {"startIndex": 500, "endIndex": 600}, "groundingChunkIndices": [0]},
          {"segment": {"startIndex": 16, "endIndex": 17}, "groundingChunkIndices": [0]},
          {"segment": {"startIndex": 1, "endIndex": 2, "text": "no such text"}, "groundingChunkIndices": [0]},
          {"segment": {"endIndex": 4}, "groundingChunkIndices": [9, "x", -1, 0]}
        ],
        "webSearchQueries": ["weather Oslo now"]
      }}], "responseId": "g"}"#;

    #[test]
    fn grounding_sources_and_annotations() {
        let out = run(GROUNDED, &Options::default());
        let msg = &out["choices"][0]["message"];
        let answer = "Oslo is about 4 °C right now. Bergen is wet.";
        assert_eq!(
            msg["content"],
            format!(
                "{answer}\n\nSources:\n1. [met.no](https://example.test/met)\n2. [yr.no](https://example.test/yr)\n3. [https://example.test/untitled](https://example.test/untitled)"
            )
        );
        let cite = |s: usize, e: usize, title: &str, url: &str| json!({"type": "url_citation", "url_citation": {"start_index": s, "end_index": e, "title": title, "url": url}});
        assert_eq!(
            msg["annotations"],
            json!([
                cite(0, 29, "met.no", "https://example.test/met"),
                // Byte 31 is char 30: the `°` before it is two bytes.
                cite(30, 44, "yr.no", "https://example.test/yr"),
                cite(
                    30,
                    44,
                    "https://example.test/untitled",
                    "https://example.test/untitled"
                ),
                cite(30, 36, "met.no again", "https://example.test/met"),
                cite(0, 4, "met.no", "https://example.test/met"),
            ])
        );
        let chars: Vec<char> = answer.chars().collect();
        let cited: String = chars[30..44].iter().collect();
        assert_eq!(cited, "Bergen is wet.");

        // show_search_link off: annotations stay, no sources text.
        let out = run(GROUNDED, &quiet());
        assert_eq!(out["choices"][0]["message"]["content"], answer);
        assert!(out["choices"][0]["message"]["annotations"].is_array());
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
    fn blocked_prompt() {
        let out = run(BLOCKED, &Options::default());
        let id = out["id"].as_str().unwrap_or("").to_owned();
        assert!(id.starts_with("chatcmpl-"));
        assert_eq!(
            out,
            json!({
                "id": id,
                "object": "chat.completion",
                "created": 1760000000,
                "model": "gemini-2.5-flash",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "", "refusal": "Prompt blocked by Gemini: SAFETY"},
                    "logprobs": null,
                    "finish_reason": "content_filter"
                }],
                "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9,
                          "prompt_tokens_details": {"cached_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": 0}},
                "system_fingerprint": null
            })
        );
        // No candidates and no block reason: one empty "stop" choice.
        let out = run(r#"{"candidates": []}"#, &Options::default());
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["choices"][0]["message"]["refusal"], Value::Null);
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
            let v = parse(meta);
            let got = usage(if v.is_null() { None } else { Some(&v) });
            assert_eq!(got, want, "{meta}");
        }
        assert_eq!(usage(Some(&json!("junk"))), z(0, 0, 0, 0, 0));
    }

    #[test]
    fn two_candidates_and_indices() {
        let body = r#"{"candidates": [
            {"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
            {"content": {"parts": [{"text": "B"}, {"functionCall": {"name": "f"}}]}, "finishReason": "STOP", "index": 1}
        ], "responseId": "two"}"#;
        let out = run(body, &Options::default());
        assert_eq!(out["choices"][0]["index"], 0);
        assert_eq!(out["choices"][0]["message"]["content"], "A");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["choices"][1]["index"], 1);
        assert_eq!(out["choices"][1]["message"]["content"], "B");
        assert_eq!(out["choices"][1]["finish_reason"], "tool_calls");
        assert_eq!(
            out["choices"][1]["message"]["tool_calls"][0]["id"],
            tool_call_id("two", 1, 0, "f", None)
        );
    }

    #[test]
    fn logprobs_best_effort() {
        let body = r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP",
            "avgLogprobs": -0.1,
            "logprobsResult": {
              "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "Hé", "logProbability": -2.5}]}],
              "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]
            }}], "responseId": "lp"}"#;
        let out = run(body, &Options::default());
        assert_eq!(
            out["choices"][0]["logprobs"],
            json!({"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                    {"token": "Hé", "logprob": -2.5, "bytes": [72, 195, 169]}
                ]}], "refusal": null})
        );
        assert_eq!(
            translate_logprobs(&json!({"topCandidates": []})),
            Value::Null
        );
        assert_eq!(
            translate_logprobs(&json!({"chosenCandidates": [{}]})),
            json!({"content": [{"token": "", "logprob": 0.0, "bytes": [], "top_logprobs": []}], "refusal": null})
        );
    }

    #[test]
    fn no_panic_on_odd_json() {
        let odd = [
            "null",
            "1",
            "\"s\"",
            "[]",
            "[1, {}]",
            "{}",
            r#"{"candidates": null}"#,
            r#"{"candidates": {"a": 1}}"#,
            r#"{"candidates": [null, 1, "x", [], {}]}"#,
            r#"{"candidates": [{"content": null, "index": -1}]}"#,
            r#"{"candidates": [{"content": {"parts": {"text": "x"}}, "index": 1e30}]}"#,
            r#"{"candidates": [{"content": {"parts": [null, 1, {"text": 5}, {"functionCall": null}, {"functionCall": {"name": 5, "args": [1]}}, {"thought": "yes", "text": "t"}, {"executableCode": 1}, {"codeExecutionResult": []}, {"inlineData": {"data": 5}}]}, "finishReason": 7}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "é"}]}, "groundingMetadata": {"groundingChunks": [1, {"web": 1}, {"web": {"uri": 2}}], "groundingSupports": [1, {"segment": 1}, {"segment": {"startIndex": 1, "endIndex": 2}, "groundingChunkIndices": [0, 1, 2, 18446744073709551615]}, {"segment": {"startIndex": 18446744073709551615, "endIndex": 18446744073709551615, "partIndex": 18446744073709551615}}]}}]}"#,
            r#"{"candidates": [{"groundingMetadata": {"groundingChunks": [{"web": {"uri": "u"}}], "groundingSupports": [{"segment": {"text": ""}, "groundingChunkIndices": [0]}]}}]}"#,
            r#"{"candidates": [{"logprobsResult": {"chosenCandidates": [1, null, {"token": 1}], "topCandidates": 3}}]}"#,
            r#"{"promptFeedback": {"blockReason": {"x": 1}}}"#,
            r#"{"promptFeedback": {"blockReason": null}, "usageMetadata": [1]}"#,
            r#"{"responseId": 5, "usageMetadata": {"totalTokenCount": 1.5}}"#,
        ];
        for s in odd {
            for opts in [Options::default(), quiet()] {
                let out = run(s, &opts);
                assert!(
                    out["choices"].as_array().is_some_and(|c| !c.is_empty()),
                    "{s}"
                );
                assert!(out["usage"].is_object());
            }
        }
        let _ = usage(Some(&json!([])));
        let _ = finish_reason(Some(""), true);
    }

    /// Fast path output for `body`, or `None` when it fell back.
    fn fast_out(body: &str, opts: &Options) -> Option<Value> {
        let ctx = ResponseCtx {
            model: "gemini-2.5-flash",
            created: 1760000000,
            opts,
        };
        fast::translate(body.as_bytes(), &ctx).map(|b| {
            serde_json::from_slice(&b).unwrap_or_else(|e| panic!("fast output not JSON: {e}"))
        })
    }

    /// `translate_response_bytes` output equals the `Value` path's.
    fn check_bytes(body: &str, opts: &Options) {
        let ctx = ResponseCtx {
            model: "gemini-2.5-flash",
            created: 1760000000,
            opts,
        };
        let got = translate_response_bytes(body.as_bytes(), &ctx);
        let want = serde_json::from_str::<Value>(body)
            .ok()
            .map(|v| serde_json::to_vec(&translate_response(&v, &ctx)).unwrap_or_default());
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy),
            want.as_deref().map(String::from_utf8_lossy),
            "{body}"
        );
    }

    #[test]
    fn fast_path_matches_value_path() {
        let blocked = BLOCKED.replacen('{', r#"{"responseId": "b", "#, 1);
        let cases = [
            PLAIN,
            CALL,
            &blocked,
            r#"{"candidates": [{"content": {"parts": [{"text": "Hello! I'm doing well, thanks for asking. How can I help you today?"}], "role": "model"}, "finishReason": "STOP", "index": 0, "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}], "citationMetadata": {"citationSources": [{"startIndex": 1}]}, "avgLogprobs": -0.2}], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 16, "totalTokenCount": 23, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}]}, "modelVersion": "gemini-2.5-flash", "responseId": "abc123", "createTime": "2025-01-01T00:00:00Z"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "line1\nline \"2\" \u00e9 \ud83d\ude00 "}, {"text": ""}, {"text": "part3"}]}, "finishReason": "STOP"}], "responseId": "esc"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "Thinking about it…", "thought": true}, {"text": "more \"thought\"\n", "thought": true}, {"text": "Answer."}, {"text": "tail", "thought": false}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 31, "candidatesTokenCount": 11, "thoughtsTokenCount": 48, "totalTokenCount": 90}, "responseId": "th"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "only thought", "thought": true}, {"thought": true}]}, "finishReason": "STOP"}], "responseId": "th2"}"#,
            r#"{"candidates": [{"content": {"parts": [
                {"functionCall": {"name": "get_weather", "args": {"zeta": 1, "city": "Oslo", "nested": {"b": [1, 2.5, "x"], "a": null}}}, "thoughtSignature": "c2lnMQ=="},
                {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Oslo"}, "id": "x"}},
                {"functionCall": {"name": "noargs"}},
                {"functionCall": {"name": "nullargs", "args": null}, "thoughtSignature": ""}
              ], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 96, "toolUsePromptTokenCount": 160, "thoughtsTokenCount": 86, "cachedContentTokenCount": 3}, "responseId": "tools"}"#,
            r#"{"candidates": [{"content": {"parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "f", "args": {}}},
                {"text": "", "thoughtSignature": "bGF0ZQ=="}
              ]}, "finishReason": "STOP"}], "responseId": "late"}"#,
            r#"{"candidates": [{"content": {"parts": [
                {"functionCall": {"name": "f", "args": {}}},
                {"text": "", "thoughtSignature": "bGF0ZQ=="},
                {"functionCall": {"name": "g", "args": {}}, "thoughtSignature": "b3du"}
              ]}, "finishReason": "STOP"}], "responseId": "late2"}"#,
            r#"{"candidates": [
                {"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP"},
                {"content": {"parts": [{"text": "B"}, {"functionCall": {"name": "f"}}]}, "finishReason": "STOP", "index": 1}
              ], "responseId": "two", "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 7, "totalTokenCount": 107}}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "cut off mid"}]}, "finishReason": "MAX_TOKENS", "index": 0}], "responseId": "mt", "usageMetadata": {"promptTokenCount": 5}}"#,
            r#"{"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]}], "responseId": "s"}"#,
            r#"{"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}], "responseId": "r"}"#,
            r#"{"candidates": [{"content": {"parts": []}}], "responseId": "nofinish"}"#,
            r#"{"candidates": [], "responseId": "empty"}"#,
            r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "responseId": "blk"}"#,
            r#"{"promptFeedback": {"blockReason": null}, "responseId": "blk2"}"#,
            r#"{"candidates": null, "responseId": "n", "usageMetadata": null}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}, "index": 18446744073709551615, "groundingMetadata": null, "logprobsResult": null}], "responseId": "big", "usageMetadata": {"promptTokenCount": 18446744073709551615, "toolUsePromptTokenCount": 5}}"#,
        ];
        for body in cases {
            for opts in [Options::default(), quiet()] {
                assert!(fast_out(body, &opts).is_some(), "fell back: {body}");
                let want = run(body, &opts);
                assert_eq!(fast_out(body, &opts), Some(want), "{body}");
                check_bytes(body, &opts);
            }
        }
    }

    #[test]
    fn fast_path_falls_back() {
        let cases = [
            GROUNDED,
            CODE,
            BLOCKED,
            r#"{"responseId": "o", "x": "\udc00"}"#,
            r#"{"responseId": "o", "x": "\ud800\u0041"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP", "logprobsResult": {"chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]}}], "responseId": "lp"}"#,
            r#"{"candidates": [{"content": {"parts": [{"executableCode": {"language": "PYTHON", "code": "print(1)"}}, {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}]}}], "responseId": "c"}"#,
            r#"{"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}], "responseId": "i"}"#,
            r#"{"candidates": [{"content": {"parts": [{"fileData": {"fileUri": "x"}}]}}], "responseId": "f"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}], "responseId": ""}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}], "responseId": 5}"#,
            r#"{"candidates": [{"content": {"parts": [null, {"text": 5}]}}], "responseId": "o"}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": ["f", {}]}]}}], "responseId": "o"}"#,
            r#"[[{"content": {"parts": [{"text": "x"}]}}], "id"]"#,
            r#"{"candidates": [["x"]], "responseId": "o"}"#,
            r#"{"candidates": [{"index": -1}], "responseId": "o"}"#,
            r#"{"candidates": [{"index": 1.0}], "responseId": "o"}"#,
            r#"{"candidates": [], "responseId": "o", "usageMetadata": {"totalTokenCount": 1.5}}"#,
            r#"{"promptFeedback": {"blockReason": {"x": 1}}, "responseId": "o"}"#,
            r#"{"responseId": "o", "responseId": "p"}"#,
            r#"{"responseId": "o", "x": "\ud800"}"#,
            r#"{"responseId": "o" "#,
            "not json",
        ];
        for body in cases {
            for opts in [Options::default(), quiet()] {
                assert!(fast_out(body, &opts).is_none(), "took fast path: {body}");
                check_bytes(body, &opts);
            }
        }
        // Invalid UTF-8 is rejected as it was.
        let ctx = ResponseCtx {
            model: "m",
            created: 1,
            opts: &Options::default(),
        };
        assert!(
            translate_response_bytes(b"{\"responseId\": \"o\", \"x\": \"\xff\"}", &ctx).is_none()
        );
    }
}
