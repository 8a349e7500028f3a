//! Any bytes as an Anthropic Messages request body, and as a Gemini answer
//! or stream event for the Anthropic translators: nothing panics, an
//! accepted request's Gemini body (and countTokens body) is JSON, and the
//! stream writes only `event:` + `data:` pairs whose data is JSON.
#![no_main]

use gemini_balance::anthropic::{
    AnswerCtx, StreamTranslator, count_body, prepare, translate_answer,
};
use gemini_balance::request::parse_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse_json(data) {
        for model in [
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "gemini-3-pro-preview",
            "gemini-2.0-flash",
        ] {
            if let Ok(p) = prepare(&v, model, None) {
                serde_json::from_slice::<serde_json::Value>(&p.body).expect("the body is JSON");
            }
            if let Ok(b) = count_body(&v, model) {
                serde_json::from_slice::<serde_json::Value>(&b).expect("the count body is JSON");
            }
        }
    }
    let ctx = AnswerCtx {
        id: "msg_f",
        model: "claude-x",
    };
    if let Some(out) = translate_answer(data, &ctx) {
        serde_json::from_slice::<serde_json::Value>(&out).expect("the message is JSON");
    }
    let text = String::from_utf8_lossy(data);
    let mut tr = StreamTranslator::new("msg_f", "claude-x");
    let mut out = Vec::new();
    for event in text.split("\n\n") {
        let _ = tr.on_event(event, &mut out);
    }
    tr.ping(&mut out);
    tr.finish(&mut out);
    let written = String::from_utf8(out).expect("the stream is UTF-8");
    for event in written.split("\n\n").filter(|e| !e.is_empty()) {
        let (name, json) = event
            .split_once("\ndata: ")
            .expect("event: and data: lines");
        assert!(name.starts_with("event: "));
        serde_json::from_str::<serde_json::Value>(json).expect("data is JSON");
    }
});
