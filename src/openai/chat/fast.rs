//! The byte-level fast path behind [`super::translate_request_fast`].
//!
//! A plain-text conversation (system, developer, user and assistant
//! messages whose `content` is a string, or `null` for the assistant) is
//! read with borrowed strings and its body written straight to bytes; every
//! other member goes through the same code as the `Value` path
//! ([`super::head`], [`super::members`]). Anything else answers `None`.

use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{MAX_MESSAGES, Options, PreparedCall, Safety, head, members};
use crate::openai::typed::{JsonStr, Obj};

/// A message the fast path understands; any other member sends the
/// request to the `Value` path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Msg<'a> {
    #[serde(borrow)]
    role: Option<JsonStr<'a>>,
    #[serde(borrow)]
    content: Option<JsonStr<'a>>,
    /// Ignored, as on the `Value` path, but parsed (and so validated)
    /// the same way.
    #[serde(rename = "name")]
    _name: Option<Value>,
}

/// The request: typed messages, every other member as a `Value`.
struct Top<'a> {
    messages: Option<Vec<Obj<Msg<'a>>>>,
    rest: Map<String, Value>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Top<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut top = Top {
                    messages: None,
                    rest: Map::new(),
                };
                while let Some(JsonStr(key)) = map.next_key::<JsonStr<'de>>()? {
                    if key == "messages" {
                        if top.messages.is_some() {
                            return Err(de::Error::custom("duplicate `messages`"));
                        }
                        top.messages = Some(map.next_value()?);
                    } else {
                        let v: Value = map.next_value()?;
                        top.rest.insert(key.into_owned(), v);
                    }
                }
                Ok(top)
            }
        }
        d.deserialize_map(V)
    }
}

/// `[{"category":…,"threshold":"OFF"},…]` as the `Value` path writes it.
fn safety_off() -> &'static [u8] {
    static OFF: OnceLock<Vec<u8>> = OnceLock::new();
    OFF.get_or_init(|| serde_json::to_vec(&Safety::Off.into_value()).unwrap_or_default())
}

/// `{"parts":[{"text":…},…]` (without the closing brace).
fn write_parts(out: &mut Vec<u8>, texts: &[&str]) {
    out.extend_from_slice(b"{\"parts\":[");
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"text\":");
        write_json(out, t);
        out.push(b'}');
    }
    out.push(b']');
}

/// Serialize into `out` (writing to a `Vec` cannot fail).
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Write `"key":`, with a comma before every member but the first.
fn key(out: &mut Vec<u8>, k: &str) {
    if out.len() > 1 {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

pub(super) fn translate(raw: &[u8], opts: &Options) -> Option<PreparedCall> {
    let top: Top = serde_json::from_slice(raw).ok()?;
    let messages = top.messages?;
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return None;
    }
    let obj = &top.rest;
    let head = head(obj).ok()?;

    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<&str>)> = Vec::new();
    for Obj(m) in &messages {
        let content = m.content.as_ref().map(|JsonStr(c)| &**c);
        let (role, text) = match &*m.role.as_ref()?.0 {
            "system" | "developer" => {
                let t = content?;
                if !t.is_empty() {
                    system.push(t);
                }
                continue;
            }
            "user" => ("user", content?),
            "assistant" => ("model", content.unwrap_or("")),
            _ => return None,
        };
        if text.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, texts)) if *r == role => texts.push(text),
            _ => turns.push((role, vec![text])),
        }
    }
    if turns.is_empty() && system.is_empty() {
        return None;
    }
    let m = members(obj, opts, &head).ok()?;

    // Members in the (sorted) order `Value` serializes them.
    let mut out = Vec::with_capacity(raw.len() + 512);
    out.push(b'{');
    if let Some(c) = &m.cached {
        key(&mut out, "cachedContent");
        write_json(&mut out, c);
    }
    key(&mut out, "contents");
    out.push(b'[');
    if turns.is_empty() {
        // Only a system prompt: it becomes the user turn.
        write_parts(&mut out, &system);
        out.extend_from_slice(b",\"role\":\"user\"}");
    }
    for (i, (role, texts)) in turns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_parts(&mut out, texts);
        out.extend_from_slice(b",\"role\":\"");
        out.extend_from_slice(role.as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.push(b']');
    if !m.gc.is_empty() {
        key(&mut out, "generationConfig");
        write_json(&mut out, &m.gc);
    }
    key(&mut out, "safetySettings");
    match &m.safety {
        Safety::Client(v) => write_json(&mut out, v),
        Safety::Configured(v) => write_json(&mut out, *v),
        Safety::Off => out.extend_from_slice(safety_off()),
    }
    if !turns.is_empty() && !system.is_empty() {
        key(&mut out, "systemInstruction");
        write_parts(&mut out, &system);
        out.push(b'}');
    }
    if let Some(tc) = &m.tool_config {
        key(&mut out, "toolConfig");
        write_json(&mut out, tc);
    }
    if !m.tools.is_empty() {
        key(&mut out, "tools");
        write_json(&mut out, &m.tools);
    }
    out.push(b'}');

    Some(PreparedCall {
        model: head.suffix.base.to_string(),
        client_model: head.client_model.to_string(),
        stream: head.stream,
        include_usage: head.include_usage,
        body: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::openai::chat::{PreparedCall, translate_request, translate_request_fast};

    /// The `Value` path's answer with the body serialized, as the fast path
    /// must give it.
    fn value_path(raw: &str, opts: &Options) -> PreparedCall {
        let v: Value = serde_json::from_str(raw).expect("json");
        translate_request(&v, opts)
            .map(PreparedCall::from)
            .expect("valid")
    }

    #[test]
    fn fast_path_matches_value_path() {
        let configured = Options {
            safety_settings: Some(
                json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]),
            ),
            show_thinking: false,
            code_execution: true,
            url_context: true,
            url_context_models: vec!["gemini-2.5-flash".into()],
            thinking_budget_map: vec![("gemini-2.5-flash".into(), 512)],
            ..Options::default()
        };
        let cases = [
            r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Hello"}]}"#,
            r#"{"messages":[{"content":"Hi \"there\" \u00e9\n","role":"user"}],"model":"models/gemini-2.5-pro","stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"model":"gemini-2.5-flash-search-thinking","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":""},{"role":"user","content":"a"},{"role":"user","content":"b","name":"bob"},{"role":"assistant","content":null},{"role":"assistant","content":"c"},{"role":"user","content":""}],"temperature":0.5,"top_p":1,"max_tokens":64,"stop":["x"],"seed":7,"n":1,"reasoning_effort":"low","user":"u"}"#,
            r#"{"model":"gemini-3-pro-preview","messages":[{"role":"system","content":"only a system prompt"}]}"#,
            r#"{"model":"gemini-2.0-flash","messages":[{"role":"user","content":"q"}],"response_format":{"type":"json_object"},"safety_settings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_LOW_AND_ABOVE"}],"extra_body":{"google":{"cached_content":"cachedContents/abc","thinking_config":{"thinking_budget":0}}}}"#,
            r#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required"}"#,
        ];
        for opts in [Options::default(), configured] {
            for raw in cases {
                let fast = translate_request_fast(raw.as_bytes(), &opts)
                    .unwrap_or_else(|| panic!("fell back: {raw}"));
                let want = value_path(raw, &opts);
                assert_eq!(
                    String::from_utf8_lossy(&fast.body),
                    String::from_utf8_lossy(&want.body),
                    "{raw}"
                );
                assert_eq!(fast, want, "{raw}");
            }
        }
    }

    #[test]
    fn fast_path_falls_back() {
        let cases = [
            // Shapes it does not model.
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[]}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":"","refusal":"no"}]}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"42","tool_call_id":"c"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}"#,
            // Invalid requests: their errors come from the `Value` path.
            r#"{"messages":[{"role":"user","content":"a"}]}"#,
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","messages":null}"#,
            r#"{"model":"m","messages":[{"role":"user","content":null}]}"#,
            r#"{"model":"m","messages":[{"role":"user"}]}"#,
            r#"{"model":"m","messages":[{"content":"a"}]}"#,
            r#"{"model":"m","messages":[{"role":"robot","content":"a"}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":null}]}"#,
            r#"{"model":"m","messages":[["user","a"]]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"temperature":"hot"}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a","name":"\udc00"}]}"#,
            r#"[1]"#,
            r#"{"model":"m","messages":[{"role":"user","content":"a"}]} x"#,
        ];
        for raw in cases {
            assert!(
                translate_request_fast(raw.as_bytes(), &Options::default()).is_none(),
                "took the fast path: {raw}"
            );
        }
    }
}
