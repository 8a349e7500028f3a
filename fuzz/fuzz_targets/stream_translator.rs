//! Any bytes as a Gemini SSE stream, cut anywhere: the parser and the stream
//! translator never panic, the client's stream always ends exactly once
//! with `data: [DONE]`, and translating is deterministic (a second
//! translator fed the same events writes the same bytes).
#![no_main]

use gemini_balance::openai::{Options, stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len().min(2));
    let usage = head.first().is_some_and(|b| b & 1 == 1);
    let step = head.get(1).map_or(7, |b| *b as usize % 64 + 1);
    let opts = Options::default();
    let mut parser = stream::SseParser::new(64 * 1024);
    let mut tr = stream::StreamTranslator::new("gemini-2.5-flash", 1, usage, &opts);
    let mut again = stream::StreamTranslator::new("gemini-2.5-flash", 1, usage, &opts);
    let mut again_out = Vec::new();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut ended = false;
    for chunk in body.chunks(step) {
        if parser.push(chunk, &mut events).is_err() {
            tr.fail("too large", "upstream_error", &mut out);
            ended = true;
            break;
        }
        for ev in events.drain(..) {
            let _ = again.on_event(&ev, &mut again_out);
            if let stream::Step::Ended = tr.on_event(&ev, &mut out) {
                ended = true;
            }
            assert_eq!(out, again_out, "not deterministic on {ev:?}");
        }
        if ended {
            break;
        }
    }
    if !ended {
        if let Some(last) = parser.finish() {
            let _ = tr.on_event(&last, &mut out);
        }
        tr.finish(&mut out);
    }
    // Calling the end twice must not emit a second ending.
    let len = out.len();
    tr.finish(&mut out);
    tr.fail("again", "upstream_error", &mut out);
    assert_eq!(out.len(), len);
    let text = String::from_utf8(out).expect("the translated stream is UTF-8");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(text.matches("data: [DONE]").count(), 1);
    for line in text.split("\n\n").filter(|l| !l.is_empty()) {
        let payload = line
            .strip_prefix("data: ")
            .expect("every event is a data line");
        if payload != "[DONE]" {
            serde_json::from_str::<serde_json::Value>(payload).expect("every chunk is JSON");
        }
    }
});
