//! Near misses: a variable name one or two edits away from a known one
//! (`API_KEY`, `api_keys`, `TIMEOUT`) is named in a warning, and in the error
//! when the variable it resembles is missing.

use std::collections::HashMap;

use super::VARIABLES;

/// Levenshtein distance between two names (bytes).
pub(super) fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known variable an unknown name most likely means: the same name in
/// another case (`api_keys`), or within one edit (known names of up to 5
/// characters, so `HOME` is not `HOST`) or two edits (`API_KEY`, `TIMEOUT`).
pub fn near_miss(name: &str) -> Option<&'static str> {
    if name.len() > 64 || VARIABLES.contains(&name) {
        return None;
    }
    let up = name.to_ascii_uppercase();
    VARIABLES
        .iter()
        .map(|k| (distance(&up, k), *k))
        .filter(|(d, k)| *d <= if k.len() <= 5 { 1 } else { 2 })
        .min()
        .map(|(_, k)| k)
}

/// Unknown names in `map` that look like known ones, sorted: (name, known).
pub(super) fn near_misses(map: &HashMap<String, String>) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = map
        .keys()
        .filter_map(|n| near_miss(n).map(|k| (n.clone(), k)))
        .collect();
    out.sort();
    out
}

/// " (API_KEY is set: did you mean API_KEYS?)" for the near misses of `var`,
/// and for `API_KEYS` also other unknown names holding `API_KEY`
/// (`GEMINI_API_KEY`); empty when there is none.
pub(super) fn hint(map: &HashMap<String, String>, var: &str) -> String {
    let mut names: Vec<&str> = map
        .keys()
        .filter(|n| n.len() <= 64 && !VARIABLES.contains(&n.as_str()))
        .filter(|n| match near_miss(n) {
            Some(k) => k == var,
            None => var == "API_KEYS" && n.to_ascii_uppercase().contains("API_KEY"),
        })
        .map(String::as_str)
        .collect();
    names.sort();
    names.truncate(3);
    if names.is_empty() {
        return String::new();
    }
    format!(" ({} is set: did you mean {var}?)", names.join(", "))
}
