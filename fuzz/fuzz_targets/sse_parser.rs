//! Any bytes, split anywhere: the SSE parser never panics, gives the same
//! events however the bytes are split, and refuses (never grows past) an
//! event larger than its limit.
#![no_main]

use gemini_balance::openai::stream::SseParser;
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], step: usize, limit: usize) -> (Vec<String>, bool) {
    let mut p = SseParser::new(limit);
    let mut out = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        if p.push(chunk, &mut out).is_err() {
            return (out, true);
        }
    }
    out.extend(p.finish());
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |b| *b as usize % 17 + 1);
    let whole = run(data, data.len().max(1), 1 << 20);
    let split = run(data, step, 1 << 20);
    let bytes = run(data, 1, 1 << 20);
    assert_eq!(whole, split);
    assert_eq!(whole, bytes);
    let (events, failed) = run(data, step, 16);
    if !failed {
        // At most `limit` raw bytes per event: one char each (invalid UTF-8
        // becomes U+FFFD, three bytes), plus one `\n` per joined line.
        for e in events {
            assert!(
                e.chars().count() <= 2 * 16,
                "an event over the limit got through"
            );
        }
    }
});
