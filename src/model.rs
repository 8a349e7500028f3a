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

/// Longest model name accepted (Google's ids are far shorter).
pub const MAX_LEN: usize = 200;

/// The name under which an invalid model name (or the overflow of a full
/// per-model map) is recorded.
pub const OTHER: &str = "other";

/// Whether `name` is a model id Gemini could have: 1 to [`MAX_LEN`] bytes of
/// `A–Z a–z 0–9 - . _ @`, and no `..` (so it is also safe in an upstream path).
pub fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
        && !name.contains("..")
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_message_shows_a_safe_prefix() {
        let m = invalid_message(&"x\n".repeat(1000));
        assert!(m.len() < 200 && !m.contains('\n'), "{m}");
        assert!(m.contains("…") && m.contains("200"), "{m}");
        assert!(!invalid_message("a/b").contains("…"));
    }
}
