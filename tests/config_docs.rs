//! `.env.example` documents exactly the variables the code reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use std::collections::BTreeSet;

fn documented() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty())
        .collect()
}

/// The configuration module's source (src/config/*.rs), tests included.
fn config_source() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Every `"NAME"` string literal passed to the config reader in src/config/,
/// plus the one `std::env::var("ENV_FILE")`.
fn read_by_code() -> BTreeSet<String> {
    let src: String = config_source().split_whitespace().collect();
    let mut out = BTreeSet::new();
    for call in [
        ".list(\"",
        ".bool(\"",
        ".number(\"",
        ".seconds(\"",
        ".string(\"",
        ".opt_string(\"",
        ".raw(\"",
        ".json(\"",
        "env::var(\"",
    ] {
        for (i, _) in src.match_indices(call) {
            let rest = &src[i + call.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_string());
            }
        }
    }
    out
}

#[test]
fn env_example_and_code_agree() {
    let doc = documented();
    let code = read_by_code();
    let listed: BTreeSet<String> = gemini_balance::config::VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let unread: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "read but not in .env.example: {undocumented:?}"
    );
    assert!(
        unread.is_empty(),
        "in .env.example but never read: {unread:?}"
    );
    assert_eq!(listed, code, "config::VARIABLES is out of date");
}

/// Each setting's group in `config::table::SETTINGS` is the `.env.example`
/// section it is documented in (`# --- Server ---…`, the title up to " (").
#[test]
fn env_example_sections_are_the_settings_groups() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let mut section = String::new();
    let mut seen = 0;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("# --- ") {
            let title = title.trim_end_matches(['-', ' ']);
            section = title.split(" (").next().unwrap().to_string();
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let row = gemini_balance::config::table::find(name.trim())
            .unwrap_or_else(|| panic!("{name} is not in the settings table"));
        assert_eq!(row.group, section, "{name}");
        seen += 1;
    }
    assert_eq!(seen, gemini_balance::config::table::SETTINGS.len());
}
