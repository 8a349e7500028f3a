//! What a model name may be: the one rule every route applies before a model
//! name goes into an upstream path or is recorded anywhere (traffic counters,
//! a key's per-model cooldowns, the log), and the label under which a name is
//! recorded.
//!
//! Google's model ids (`gemini-2.5-flash`, `gemini-2.0-flash-001`,
//! `text-embedding-004`, tuned models' `my-model-abc123`) are short and use
//! letters, digits, `-`, `.` and `_`; `@` is kept for versioned ids
//! (`name@001`). Anything else — a 10 MB name, a newline, a `/` — is refused
//! with a 400 by the route, and if it ever reaches a recorder anyway it is
//! recorded as [`OTHER`].
//!
//! It also owns `MODEL_ALIASES`: which Gemini model a client's model name
//! (a Claude or OpenAI name) stands for ([`resolve_alias`]).

use std::borrow::Cow;

/// Longest model name accepted (Google's ids are far shorter).
pub const MAX_LEN: usize = 200;

/// The name under which an invalid model name (or the overflow of a full
/// per-model map) is recorded.
pub const OTHER: &str = "other";

/// The bytes a model id may hold: `A–Z a–z 0–9 - . _ @` (a table: one load
/// per byte).
const ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@');
        i += 1;
    }
    t
};

/// Whether `name` is a model id Gemini could have: 1 to [`MAX_LEN`] bytes of
/// `A–Z a–z 0–9 - . _ @`, and no `..` (so it is also safe in an upstream path).
pub fn valid(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_LEN {
        return false;
    }
    // One pass over the bytes (this runs several times per request; a
    // `contains("..")` would build a substring searcher each time).
    let mut prev = 0u8;
    name.bytes().all(|b| {
        let ok = ALLOWED[usize::from(b)] && !(b == b'.' && prev == b'.');
        prev = b;
        ok
    })
}

/// The name to record for `name`: itself when [`valid`], `""` for no model,
/// else [`OTHER`].
pub fn label(name: &str) -> &str {
    if name.is_empty() || valid(name) {
        name
    } else {
        OTHER
    }
}

/// The message of the 400 an invalid model name gets.
pub fn invalid_message(name: &str) -> String {
    let shown: String = name
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let more = if name.chars().count() > 40 { "…" } else { "" };
    format!(
        "Invalid model name `{shown}{more}`: a model id is 1 to {MAX_LEN} characters from A-Z a-z 0-9 - . _ @."
    )
}

/// The built-in `MODEL_ALIASES` defaults, consulted after the configured
/// ones: Claude's Opus and Sonnet models → the current Gemini Pro, Haiku →
/// the current Flash.
pub const DEFAULT_ALIASES: &[(&str, &str)] = &[
    ("claude-*opus*", "gemini-2.5-pro"),
    ("claude-*sonnet*", "gemini-2.5-pro"),
    ("claude-*haiku*", "gemini-2.5-flash"),
];

/// The literal start of every [`DEFAULT_ALIASES`] pattern (a unit test checks it).
const DEFAULT_PREFIX: &str = "claude-";

/// Most `MODEL_ALIASES` entries accepted.
pub const MAX_ALIASES: usize = 1_000;

/// The Gemini model a client's model name stands for (`MODEL_ALIASES`):
/// an exact entry of `aliases` first, then the `*` pattern of `aliases`
/// with the most literal characters that matches, then the same two steps
/// over [`DEFAULT_ALIASES`]; a name nothing matches is itself (Gemini
/// names pass unchanged). Matching ignores ASCII case.
pub fn resolve_alias<'a>(aliases: &'a [(String, String)], name: &'a str) -> Cow<'a, str> {
    // Every built-in pattern starts with `claude-`: with nothing configured
    // any other name is itself, without matching (every request asks).
    let claude = name
        .get(..DEFAULT_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(DEFAULT_PREFIX));
    if aliases.is_empty() && !claude {
        return Cow::Borrowed(name);
    }
    let configured = aliases.iter().map(|(p, t)| (p.as_str(), t.as_str()));
    if let Some(t) = best_match(configured, name) {
        return Cow::Borrowed(t);
    }
    match best_match(DEFAULT_ALIASES.iter().copied(), name) {
        Some(t) => Cow::Borrowed(t),
        None => Cow::Borrowed(name),
    }
}

/// Most `FILTERED_MODELS` entries accepted.
pub const MAX_FILTERED: usize = 1_000;

/// Whether `name` (a bare model id, no `models/`) is hidden and refused by
/// `FILTERED_MODELS`: one of `patterns` (exact names or `*` patterns, ASCII
/// case ignored, a `models/` prefix on a pattern ignored) matches it.
pub fn filtered(patterns: &[String], name: &str) -> bool {
    let name = name.strip_prefix("models/").unwrap_or(name);
    patterns.iter().any(|p| {
        let p = p.strip_prefix("models/").unwrap_or(p);
        glob(p, name)
    })
}

/// The target of the best entry matching `name` (see [`resolve_alias`]).
fn best_match<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str)>,
    name: &str,
) -> Option<&'a str> {
    let mut best: Option<(usize, &'a str)> = None;
    for (pattern, target) in entries {
        if !pattern.contains('*') {
            if pattern.eq_ignore_ascii_case(name) {
                return Some(target);
            }
            continue;
        }
        let literal = pattern.len() - pattern.matches('*').count();
        if best.is_none_or(|(n, _)| literal > n) && glob(pattern, name) {
            best = Some((literal, target));
        }
    }
    best.map(|(_, t)| t)
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (ASCII case ignored). Linear in the pattern's pieces.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let n = name.to_ascii_lowercase();
    let pieces: Vec<&str> = p.split('*').collect();
    let (first, rest) = match pieces.split_first() {
        Some(x) => x,
        None => return n.is_empty(),
    };
    let Some(mut left) = n.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for piece in middle {
        match left.find(piece) {
            Some(i) => left = &left[i + piece.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_path_of_aliases_is_exact() {
        assert!(
            DEFAULT_ALIASES
                .iter()
                .all(|(p, _)| p.starts_with(DEFAULT_PREFIX))
        );
        // With nothing configured, every name resolves as a full match would.
        for name in [
            "gemini-2.5-flash",
            "gpt-4o",
            "Claude-3-Opus",
            "claude-haiku-4",
            "claude",
            "x",
        ] {
            let slow = best_match(DEFAULT_ALIASES.iter().copied(), name).unwrap_or(name);
            assert_eq!(resolve_alias(&[], name), slow, "{name}");
        }
    }

    #[test]
    fn what_a_model_name_may_be() {
        let max = "m".repeat(MAX_LEN);
        for ok in [
            "gemini-2.5-flash",
            "gemini-2.0-flash-001",
            "gemini-2.5-flash-preview-05-20",
            "gemini-embedding-exp-03-07",
            "text-embedding-004",
            "learnlm-2.0-flash-experimental",
            "gemma-3-27b-it",
            "my_tuned-model.v2",
            "name@001",
            "other",
            max.as_str(),
        ] {
            assert!(valid(ok), "{ok:?}");
            assert_eq!(label(ok), ok);
        }
        let long = "m".repeat(MAX_LEN + 1);
        for bad in [
            long.as_str(),
            "a/b",
            "models/x",
            "..",
            "a..b",
            "a b",
            "x\n2026-01-01 ERROR forged",
            "x\u{1b}[2J",
            "x\u{9b}",
            "x\t",
            "a%2Fb",
            "a?b",
            "a#b",
            "x:generateContent",
            "é",
            "a\\b",
        ] {
            assert!(!valid(bad), "{bad:?}");
            assert_eq!(label(bad), OTHER, "{bad:?}");
        }
        assert!(!valid(""));
        assert_eq!(label(""), "");
    }

    #[test]
    fn every_ascii_byte_is_judged_by_the_rule() {
        for b in 0u8..128 {
            let rule = b.is_ascii_alphanumeric() || b"-_.@".contains(&b);
            assert_eq!(valid(&char::from(b).to_string()), rule, "byte {b}");
        }
    }

    #[test]
    fn the_message_shows_a_safe_prefix() {
        let m = invalid_message(&"x\n".repeat(1000));
        assert!(m.len() < 200 && !m.contains('\n'), "{m}");
        assert!(m.contains("…") && m.contains("200"), "{m}");
        assert!(!invalid_message("a/b").contains("…"));
    }

    #[test]
    fn aliases_resolve_exact_then_most_specific_pattern_then_defaults() {
        let configured = vec![
            ("claude-*".to_string(), "gemini-2.5-flash-lite".to_string()),
            (
                "claude-*-sonnet-*".to_string(),
                "gemini-3-pro-preview".to_string(),
            ),
            ("gpt-4o".to_string(), "gemini-2.5-flash".to_string()),
        ];
        let r = |n: &str| resolve_alias(&configured, n).into_owned();
        assert_eq!(r("gpt-4o"), "gemini-2.5-flash");
        assert_eq!(r("GPT-4O"), "gemini-2.5-flash");
        assert_eq!(r("claude-3-sonnet-2024"), "gemini-3-pro-preview");
        assert_eq!(r("claude-opus-4-1"), "gemini-2.5-flash-lite");
        assert_eq!(r("gemini-2.5-pro"), "gemini-2.5-pro");
        let none: Vec<(String, String)> = Vec::new();
        let d = |n: &str| resolve_alias(&none, n).into_owned();
        assert_eq!(d("claude-opus-4-1-20250805"), "gemini-2.5-pro");
        assert_eq!(d("claude-sonnet-4-5"), "gemini-2.5-pro");
        assert_eq!(d("claude-3-5-haiku-latest"), "gemini-2.5-flash");
        assert_eq!(d("claude-haiku-4-5-20251001"), "gemini-2.5-flash");
        assert_eq!(d("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(d("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn filtered_names() {
        let f = vec![
            "gemini-2.0-*".to_string(),
            "models/gemini-2.5-pro".to_string(),
        ];
        assert!(filtered(&f, "gemini-2.0-flash"));
        assert!(filtered(&f, "models/GEMINI-2.5-PRO"));
        assert!(!filtered(&f, "gemini-2.5-pro-preview"));
        assert!(!filtered(&f, "gemini-2.5-flash"));
        assert!(!filtered(&[], "gemini-2.5-flash"));
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("a*", "abc"));
        assert!(glob("*c", "abc"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(glob("*", ""));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("abc", "ABC"));
        assert!(!glob("abc", "abcd"));
    }
}
