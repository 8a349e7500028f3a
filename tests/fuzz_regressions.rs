//! Regression tests for inputs that crashed (or could crash) the gateway,
//! found by fuzzing and review, and property tests for the parts
//! the translation properties in `tests/properties.rs` do not cover: the
//! configuration parser, key-outcome classification, secret scrubbing and
//! the path/query guards. The cargo-fuzz targets live in `fuzz/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use std::collections::HashMap;
use std::time::Duration;

use gemini_balance::config::{Config, VARIABLES, parse_list};
use gemini_balance::handlers::valid_model;
use gemini_balance::keys::{Outcome, classify, mask};
use gemini_balance::openai::error::scrub;
use gemini_balance::request::{percent_decode, query_param};
use gemini_balance::upstream::redact;
use proptest::prelude::*;

const SECRETS: &[&str] = &[
    "API_KEYS",
    "ALLOWED_TOKENS",
    "AUTH_TOKEN",
    "BACKUP_API_KEYS",
    "TRUSTED_API_KEYS",
];

fn cfg(pairs: &[(&str, &str)]) -> Result<Config, gemini_balance::config::ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_map(&map)
}

#[test]
fn huge_intervals_are_refused_not_a_panic() {
    // `Duration::from_secs_f64(1e300 * 3600)` used to panic at start-up.
    for (var, v) in [
        ("CHECK_INTERVAL_HOURS", "1e300"),
        ("CHECK_INTERVAL_HOURS", "1e16"),
        ("KEEPALIVE_MINUTES", "1e300"),
        ("KEEPALIVE_MINUTES", "inf"),
        ("TIME_OUT", "1e30"),
        ("COOLDOWN_SECONDS", "NaN"),
    ] {
        let e = cfg(&[("ALLOWED_TOKENS", "sk"), (var, v)]).unwrap_err();
        assert_eq!(e.var, var);
    }
    assert!(
        cfg(&[
            ("API_KEYS", "k1"),
            ("ALLOWED_TOKENS", "sk"),
            ("CHECK_INTERVAL_HOURS", "1000")
        ])
        .is_ok()
    );
}

#[test]
fn limits_outside_their_range_are_refused() {
    // `Semaphore::new(usize::MAX)` used to panic when the server started.
    for (var, v) in [
        ("MAX_CONNECTIONS", "18446744073709551615"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_HEADER_BYTES", "10"),
        ("MAX_HEADER_BYTES", "99999999999"),
        ("MAX_HEADERS", "0"),
        ("CLIENT_TIMEOUT", "0"),
    ] {
        let e = cfg(&[("ALLOWED_TOKENS", "sk"), (var, v)]).unwrap_err();
        assert_eq!(e.var, var, "{v}");
    }
    let c = cfg(&[("API_KEYS", "k1"), ("ALLOWED_TOKENS", "sk")]).unwrap();
    assert_eq!((c.max_header_bytes, c.max_headers), (65536, 100));
}

#[test]
fn a_hostile_retry_after_does_not_panic() {
    // `Duration::from_secs_f64(1e30)` panicked; `Instant::now() + 1e18 s` overflowed.
    for ra in [
        "1e30",
        "1e18",
        "18446744073709551616",
        "-1",
        "NaN",
        "inf",
        "9e9",
    ] {
        match classify(429, b"", Some(ra), Duration::from_secs(60)) {
            Outcome::Quota { cooldown, .. } => {
                assert!(cooldown <= Duration::from_secs(1_000_000_000), "{ra}")
            }
            other => panic!("{ra}: {other:?}"),
        }
    }
    let pool = gemini_balance::keys::KeyPool::new(
        vec!["k-0000000001".into()],
        gemini_balance::keys::Selection::RoundRobin,
        3,
    );
    let o = classify(429, b"", Some("999999999"), Duration::from_secs(60));
    pool.report(0, "m", &o);
    assert!(matches!(
        pool.pick("m", &[]),
        gemini_balance::keys::Pick::Cooling(_)
    ));
}

#[test]
fn config_debug_masks_secrets() {
    let c = cfg(&[
        (
            "API_KEYS",
            r#"["AIzaSyA1234567890abcdefghijklmnopqrstu","other-key-123456789"]"#,
        ),
        ("ALLOWED_TOKENS", "sk-abcdefgh12345678"),
        ("AUTH_TOKEN", "admin-token-987654321"),
    ])
    .unwrap();
    let shown = format!("{c:?}");
    for s in [
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "other-key-123456789",
        "sk-abcdefgh12345678",
        "admin-token-987654321",
    ] {
        assert!(!shown.contains(s), "{shown}");
    }
    assert!(shown.contains("AIza…rstu"));
}

#[test]
fn redact_replaces_every_copy_of_the_key() {
    let body = bytes::Bytes::from_static(
        b"{\"message\":\"Consumer 'api_key:plain-key-123456' has been suspended; plain-key-123456\"}",
    );
    let out = redact(body, "plain-key-123456");
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(!text.contains("plain-key-123456"), "{text}");
    assert!(text.contains("plai…3456"));
    let same = bytes::Bytes::from_static(b"nothing here");
    assert_eq!(redact(same.clone(), "plain-key-123456"), same);
}

/// fuzz/artifacts/sse_parser/crash-153656e7…: with a 16-byte limit an event
/// came out as 30+ bytes — not a leak past the limit but invalid UTF-8 made
/// lossy (each bad byte is a 3-byte U+FFFD). The bound is on raw bytes.
#[test]
fn sse_limit_counts_raw_bytes() {
    use gemini_balance::openai::stream::SseParser;
    let input: &[u8] =
        b"\x05{\r\n-: \n\r{5\n{\r\n\xd3\xf5\xff\xff\x84\xf2\xf9\x08\x00\r: {\r\n\x10";
    for step in [1, 3, input.len()] {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        let mut failed = false;
        for c in input.chunks(step) {
            failed |= p.push(c, &mut out).is_err();
        }
        if !failed {
            out.extend(p.finish());
        }
        for e in &out {
            assert!(e.chars().count() <= 32, "{e:?}");
        }
    }
    // Over the limit in raw bytes: refused, and refused again.
    let mut p = SseParser::new(16);
    assert!(p.push(&[b'x'; 17], &mut Vec::new()).is_err());
    assert!(p.push(b"\n\n", &mut Vec::new()).is_err());
    assert_eq!(p.finish(), None);
}

/// Every saved fuzz input (the seeds and the inputs that once crashed a
/// target) runs through the same code as its target, without a panic.
#[test]
fn saved_fuzz_inputs_replay() {
    use gemini_balance::openai::{Options, chat, response, stream};
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        for target in [
            "chat_request",
            "gemini_response",
            "stream_translator",
            "sse_parser",
            "config",
        ] {
            let Ok(files) = std::fs::read_dir(format!("{root}/{dir}/{target}")) else {
                continue;
            };
            for f in files {
                let data = std::fs::read(f.unwrap().path()).unwrap();
                n += 1;
                let opts = Options::default();
                match target {
                    "chat_request" => {
                        if let Ok(v) = gemini_balance::request::parse_json(&data) {
                            let _ = chat::translate_request(&v, &opts);
                        }
                    }
                    "gemini_response" => {
                        let _ = classify(500, &data, None, Duration::from_secs(1));
                        if let Ok(v) = serde_json::from_slice(&data) {
                            let ctx = response::ResponseCtx {
                                model: "m",
                                created: 1,
                                opts: &opts,
                            };
                            let _ = response::translate_response(&v, &ctx);
                        }
                    }
                    "stream_translator" | "sse_parser" => {
                        let mut p = stream::SseParser::new(64 * 1024);
                        let mut tr = stream::StreamTranslator::new("m", 1, true, &opts);
                        let (mut events, mut out) = (Vec::new(), Vec::new());
                        let _ = p.push(&data, &mut events);
                        events.extend(p.finish());
                        for e in &events {
                            let _ = tr.on_event(e, &mut out);
                        }
                        tr.finish(&mut out);
                        assert!(
                            String::from_utf8(out)
                                .unwrap()
                                .ends_with("data: [DONE]\n\n")
                        );
                    }
                    _ => {
                        let text = String::from_utf8_lossy(&data);
                        let map: HashMap<String, String> = text
                            .lines()
                            .filter_map(|l| l.split_once('='))
                            .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                            .collect();
                        let _ = Config::from_map(&map);
                    }
                }
            }
        }
    }
    assert!(n >= 15, "the seeds are in fuzz/corpus ({n} found)");
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[0-9eE+.-]{0,12}",
        r#"\[("[a-zA-Z0-9-]{0,20}",?){0,4}\]"#,
        "(true|false|yes|0|1|on|nope|inf|NaN|-1|1e300)",
        "https?://[a-z.:0-9/]{0,30}",
    ]
}

fn var_name() -> impl Strategy<Value = String> {
    prop::sample::select(gemini_balance::config::VARIABLES.to_vec()).prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any set of variables: a configuration or an error naming a known
    /// variable, never a panic; a secret's value is never echoed.
    #[test]
    fn config_from_any_variables(vars in prop::collection::vec((var_name(), any_text()), 0..12)) {
        let map: HashMap<String, String> = vars.into_iter().collect();
        match Config::from_map(&map) {
            Ok(c) => {
                prop_assert!(c.max_connections >= 1);
                prop_assert!(!c.time_out.is_zero());
                let shown = format!("{c:?}");
                for name in SECRETS {
                    for item in parse_list(map.get(*name).map_or("", |v| v.as_str())).unwrap_or_default() {
                        // Not a leak: the same text in another variable's (shown) value,
                        // or in a variable name (`seen` names them).
                        let elsewhere = map.iter().any(|(k, v)| k != name && v.contains(&item))
                            || VARIABLES.iter().any(|v| v.contains(item.as_str()));
                        if item.chars().count() > 12 && !elsewhere {
                            prop_assert!(!shown.contains(&item));
                        }
                    }
                }
            }
            Err(e) => {
                prop_assert!(gemini_balance::config::VARIABLES.contains(&e.var));
                if SECRETS.contains(&e.var) {
                    let v = map.get(e.var).map_or("", |v| v.trim());
                    if v.len() > 8 {
                        prop_assert!(!e.to_string().contains(v));
                    }
                }
            }
        }
    }

    /// Lists: no empty items, no duplicates, never a panic.
    #[test]
    fn lists_parse_from_anything(raw in any_text()) {
        if let Ok(items) = parse_list(&raw) {
            for (i, it) in items.iter().enumerate() {
                prop_assert!(!it.is_empty());
                prop_assert!(!items[..i].contains(it));
            }
        }
    }

    /// Classification of any answer never panics, and a 429's cooldown is bounded.
    #[test]
    fn classify_anything(status in 0u16..1000, body in prop::collection::vec(any::<u8>(), 0..200), ra in proptest::option::of(any_text())) {
        let o = classify(status, &body, ra.as_deref(), Duration::from_secs(60));
        if let Outcome::Quota { cooldown, daily: false, .. } = o {
            prop_assert!(cooldown <= Duration::from_secs(1_000_000_000));
        }
    }

    /// A Google key anywhere in a message never survives scrubbing.
    #[test]
    fn scrub_hides_google_keys(pre in ".{0,20}", key in "[A-Za-z0-9_-]{35}", post in ".{0,20}") {
        let k = format!("AIza{key}");
        let out = scrub(&format!("{pre}{k}{post}"));
        prop_assert!(!out.contains(&k));
        let out = scrub(&format!("{pre}?key={key}&x={post}"));
        let leaked = format!("key={key}");
        prop_assert!(!out.contains(&leaked));
    }

    /// Redaction removes every copy of any key of six characters or more.
    #[test]
    fn redact_hides_any_key(pre in "[ .,;:!'\"{}]{0,20}", key in "[A-Za-z0-9_-]{6,40}", post in "[ .,;:!'\"{}]{0,20}") {
        let body = format!("{pre}{key}{post}{key}");
        let out = redact(bytes::Bytes::from(body), &key);
        let text = String::from_utf8_lossy(&out).to_string();
        prop_assert!(!text.contains(&key));
        prop_assert_eq!(text.matches(&mask(&key)).count(), 2);
    }

    /// An accepted model name can never change the upstream path.
    #[test]
    fn valid_models_are_path_safe(m in ".{0,40}") {
        if valid_model(&m) {
            prop_assert!(!m.contains(['/', '?', '#', '%', '\\', ':', ' ']));
            prop_assert!(!m.contains(".."));
            prop_assert!(!m.is_empty() && m.len() <= 200);
        }
    }

    /// Percent-decoding and query lookup take any input.
    #[test]
    fn query_parsing_takes_anything(q in ".{0,60}") {
        let _ = percent_decode(&q);
        let _ = query_param(&q, "key");
    }
}
