//! Any bytes as an OpenAI chat (and embeddings) request body: parsing and
//! translation never panic, an accepted request always names a model that is
//! safe to put in an upstream path, and the body bytes sent upstream
//! (`prepare_request`) equal the `Value` view (`translate_request`).
#![no_main]

use gemini_balance::handlers::valid_model;
use gemini_balance::request::parse_json;
use gemini_balance::openai::{Options, chat, embeddings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = [
        Options::default(),
        Options {
            show_thinking: false,
            code_execution: true,
            url_context: true,
            url_context_models: vec!["gemini-2.5-flash".into()],
            search_models: vec!["gemini-2.5-flash".into()],
            thinking_models: vec!["gemini-2.5-pro".into()],
            thinking_budget_map: vec![("gemini-2.5-pro".into(), 1024)],
            ..Options::default()
        },
    ];
    let Ok(v) = parse_json(data) else {
        return;
    };
    for o in &opts {
        match (chat::prepare_request(&v, o), chat::translate_request(&v, o)) {
            (Ok(p), Ok(c)) => {
                let body: serde_json::Value =
                    serde_json::from_slice(&p.body).expect("the body is JSON");
                assert_eq!(body, c.body);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("prepare_request and translate_request disagree"),
        }
        if let Ok(call) = chat::translate_request(&v, o) {
            // The body always serialises, and the handler's model check is
            // what stands between the name and the upstream path.
            assert!(serde_json::to_vec(&call.body).is_ok());
            if valid_model(&call.model) {
                assert!(!call.model.contains(['/', '?', '#', '%']));
                assert!(!call.model.contains(".."));
            }
        }
    }
    if let Ok(call) = embeddings::translate_request(&v) {
        for b in &call.batches {
            assert!(serde_json::to_vec(b).is_ok());
        }
    }
});
