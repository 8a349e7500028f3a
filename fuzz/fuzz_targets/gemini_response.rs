//! Any bytes as a Gemini answer (plain response, error body, model list):
//! translation, error mapping and key-outcome classification never panic,
//! and what goes to the client is a well-formed object.
#![no_main]

use std::time::Duration;

use gemini_balance::keys::classify;
use gemini_balance::openai::{Options, error, models, response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = match data.first() {
        Some(b) => [200u16, 400, 401, 403, 404, 429, 499, 500, 503, 504, 302, 0][*b as usize % 12],
        None => 500,
    };
    let retry_after = std::str::from_utf8(data.get(1..9).unwrap_or(b"")).ok();
    let _ = classify(status, data, retry_after, Duration::from_secs(60));
    let mapped = error::from_gemini(status, data);
    assert!(mapped.body["error"]["message"].is_string());
    assert!((400..=599).contains(&mapped.status));
    let _ = error::scrub(&String::from_utf8_lossy(data));

    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let opts = Options::default();
    let ctx = response::ResponseCtx {
        model: "gemini-2.5-flash",
        created: 1,
        opts: &opts,
    };
    let out = response::translate_response(&v, &ctx);
    assert!(out["choices"].is_array());
    let list = match v.get("models").and_then(|m| m.as_array()) {
        Some(m) => m.clone(),
        None => vec![v.clone()],
    };
    let _ = models::translate_list(&list, &opts);
});
