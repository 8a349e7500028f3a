//! Reading Gemini requests: fields in camelCase or snake_case, parts, and
//! the deterministic token counts of prompts.

use serde_json::Value;

use crate::json::Json;

// ---------------------------------------------------------------------------
// Request field helpers (camelCase and snake_case)
// ---------------------------------------------------------------------------

pub(crate) fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel)
        .filter(|x| !x.is_null())
        .or_else(|| v.get(snake).filter(|x| !x.is_null()))
}

pub(crate) fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn parts_of(content: &Value) -> &[Value] {
    arr(content.get("parts"))
}

pub(crate) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Deterministic token estimate of a text: max(words, ceil(chars / 4)).
pub(crate) fn tok(s: &str) -> u64 {
    if s.is_empty() {
        return 0;
    }
    let chars = s.chars().count() as u64;
    words(s).max(chars.div_ceil(4))
}

pub(crate) fn compact_value(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Prompt token counts: text plus media by modality.
#[derive(Default)]
pub(crate) struct PromptCount {
    pub(crate) text: u64,
    pub(crate) media: Vec<(&'static str, u64)>,
    /// Tokens of the `cachedContent` named by the request (part of the prompt).
    pub(crate) cached: u64,
}

impl PromptCount {
    pub(crate) fn total(&self) -> u64 {
        self.text + self.media.iter().map(|m| m.1).sum::<u64>()
    }

    pub(crate) fn add_media(&mut self, mime: &str) {
        let modality = if mime.starts_with("image/") {
            "IMAGE"
        } else if mime.starts_with("audio/") {
            "AUDIO"
        } else if mime.starts_with("video/") {
            "VIDEO"
        } else {
            "DOCUMENT"
        };
        match self.media.iter_mut().find(|m| m.0 == modality) {
            Some(m) => m.1 += 258,
            None => self.media.push((modality, 258)),
        }
    }

    pub(crate) fn details(&self) -> Json {
        let mut v = Vec::new();
        if self.text > 0 {
            v.push(Json::obj([
                ("modality", Json::s("TEXT")),
                ("tokenCount", Json::Int(self.text as i64)),
            ]));
        }
        for (m, n) in &self.media {
            v.push(Json::obj([
                ("modality", Json::s(*m)),
                ("tokenCount", Json::Int(*n as i64)),
            ]));
        }
        Json::Arr(v)
    }
}

pub(crate) fn count_parts(pc: &mut PromptCount, parts: &[Value]) {
    for p in parts {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            pc.text += tok(t);
        }
        for (c, s) in [("inlineData", "inline_data"), ("fileData", "file_data")] {
            if let Some(d) = field(p, c, s) {
                let mime = field(d, "mimeType", "mime_type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                pc.add_media(mime);
            }
        }
        for (c, s) in [
            ("functionCall", "function_call"),
            ("functionResponse", "function_response"),
        ] {
            if let Some(f) = field(p, c, s) {
                pc.text += 1 + tok(&compact_value(f));
            }
        }
    }
}

/// Deterministic prompt count of a GenerateContentRequest-like object.
pub(crate) fn count_prompt(req: &Value) -> PromptCount {
    let mut pc = PromptCount::default();
    for c in arr(req.get("contents")) {
        count_parts(&mut pc, parts_of(c));
    }
    if let Some(si) = field(req, "systemInstruction", "system_instruction") {
        count_parts(&mut pc, parts_of(si));
    }
    for t in arr(req.get("tools")) {
        if let Some(d) = field(t, "functionDeclarations", "function_declarations") {
            pc.text += tok(&compact_value(d));
        }
    }
    if field(req, "cachedContent", "cached_content").is_some() {
        pc.cached = 1024;
    }
    pc
}
