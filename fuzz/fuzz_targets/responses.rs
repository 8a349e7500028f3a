//! Any bytes as an OpenAI Responses request body (with and without earlier
//! stored items), and as a Gemini answer or stream events for the Responses
//! assembler: nothing panics, an accepted request becomes a chat request the
//! chat translator handles without panicking and whose Gemini body is JSON,
//! the whole response is a JSON object, and the stream writes only
//! `event:` + `data:` pairs whose data is JSON with increasing
//! `sequence_number`s.
#![no_main]

use gemini_balance::openai::Options;
use gemini_balance::openai::chat::prepare_request;
use gemini_balance::request::parse_json;
use gemini_balance::responses::{Assembler, head, input_items, translate};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let opts = Options::default();
    if let Ok(v) = parse_json(data) {
        let items = v
            .as_object()
            .and_then(|o| input_items(o).ok())
            .unwrap_or_default();
        // As a first turn, and replayed as a previous response's items.
        for earlier in [&items[..0], &items[..]] {
            let mut all = earlier.to_vec();
            all.extend(items.iter().cloned());
            if let Ok(tr) = translate(&v, &all, &opts)
                && let Ok(call) = prepare_request(&tr.chat, &opts)
            {
                serde_json::from_slice::<Value>(&call.body).expect("the Gemini body is JSON");
            }
        }
    }
    let settings = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| head(o).ok()))
        .unwrap_or_default();
    let text = String::from_utf8_lossy(data);
    // A whole answer.
    let mut whole = Assembler::new(settings.clone(), 0, false);
    let mut sink = Vec::new();
    let response = if whole.feed(&text, &mut sink) {
        whole.snapshot(None)
    } else {
        whole.finish(&mut sink)
    };
    assert!(response.is_object(), "the response is an object");
    // A stream, split at blank lines.
    let mut asm = Assembler::new(settings, 0, true);
    let mut out = Vec::new();
    for event in text.split("\n\n") {
        if asm.feed(event, &mut out) {
            break;
        }
    }
    if !asm.is_done() {
        let _ = asm.finish(&mut out);
    }
    let written = String::from_utf8(out).expect("the stream is UTF-8");
    let mut last: Option<u64> = None;
    for event in written.split("\n\n").filter(|e| !e.is_empty()) {
        let (name, json) = event
            .split_once("\ndata: ")
            .expect("event: and data: lines");
        assert!(name.starts_with("event: "));
        let v: Value = serde_json::from_str(json).expect("data is JSON");
        let seq = v["sequence_number"].as_u64().expect("a sequence_number");
        assert!(last.is_none_or(|l| seq > l), "sequence numbers increase");
        last = Some(seq);
    }
});
