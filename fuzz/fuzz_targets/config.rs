//! Any text as a set of `NAME=value` lines: configuration parsing never
//! panics, and an error about a secret variable never echoes its value.
#![no_main]

use std::collections::HashMap;

use gemini_balance::config::{Config, VARIABLES, parse_list};
use libfuzzer_sys::fuzz_target;

const SECRETS: &[&str] = &[
    "API_KEYS",
    "ALLOWED_TOKENS",
    "AUTH_TOKEN",
    "BACKUP_API_KEYS",
    "TRUSTED_API_KEYS",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_list(&text);
    let mut map = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            map.insert(k.trim().to_string(), v.to_string());
        }
    }
    match Config::from_map(&map) {
        Ok(cfg) => {
            let shown = format!("{cfg:?}");
            for name in SECRETS {
                for item in
                    parse_list(map.get(*name).map_or("", |v| v.as_str())).unwrap_or_default()
                {
                    // Masked items keep at most 8 of their characters.
                    // Not a leak: the same text in another variable's (shown) value,
                    // or in a variable name (`seen` names them).
                    let elsewhere = map.iter().any(|(k, v)| k != name && v.contains(&item))
                        || VARIABLES.iter().any(|v| v.contains(item.as_str()));
                    if item.chars().count() > 12 && !elsewhere {
                        assert!(!shown.contains(&item), "{name} shown in full");
                    }
                }
            }
        }
        Err(e) => {
            if SECRETS.contains(&e.var) {
                let value = map.get(e.var).map_or("", |v| v.trim());
                if value.len() > 8 {
                    assert!(!e.to_string().contains(value), "{} echoed", e.var);
                }
            }
        }
    }
});
