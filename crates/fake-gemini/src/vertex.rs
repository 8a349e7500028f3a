//! Vertex AI express mode's paths on the fake:
//! `/v1beta1/publishers/google/models/{m}:{action}` (and `/v1/publishers/…`),
//! answered like the Developer API's `models/{m}:{action}` except where
//! Vertex differs in ways a gateway must respect:
//! - only `generateContent`, `streamGenerateContent` and `countTokens`
//!   (express mode has no model list, files or embeddings here): anything
//!   else is Google's 404;
//! - every `contents[]` entry needs a `role` of `user` or `model` (the
//!   Developer API lets it be omitted): otherwise a 400 `INVALID_ARGUMENT`
//!   `Please use a valid role: user, model.`.

use serde_json::Value;

use crate::errors::{GoogleError, google_error};
use crate::server::{Call, Route};

/// The versions express mode serves, each under `/publishers/google`.
const PREFIXES: &[(&str, &str)] = &[
    ("v1beta1", "/v1beta1/publishers/google"),
    ("v1", "/v1/publishers/google"),
];

/// `(version, rest)` for a Vertex express path (`rest` starts with `/models/`).
pub(crate) fn strip(path: &str) -> Option<(&'static str, &str)> {
    PREFIXES.iter().find_map(|(version, prefix)| {
        path.strip_prefix(prefix)
            .filter(|r| r.starts_with('/'))
            .map(|r| (*version, r))
    })
}

/// Whether express mode serves `route` at all.
pub(crate) fn serves(route: &Route) -> bool {
    matches!(
        route,
        Route::Call(_, Call::Generate | Call::Stream | Call::CountTokens)
    )
}

/// Vertex's check of a generate or count body: a role on every content.
pub(crate) fn check_roles(body: &[u8]) -> Result<(), GoogleError> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Ok(()); // the ordinary parser answers a bad body
    };
    let contents = v.get("contents").and_then(Value::as_array);
    let bad = contents.is_some_and(|list| {
        list.iter().any(|c| {
            !matches!(
                c.get("role").and_then(Value::as_str),
                Some("user" | "model")
            )
        })
    });
    if bad {
        return Err(google_error(
            400,
            "INVALID_ARGUMENT",
            "Please use a valid role: user, model.",
            vec![],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_both_versions_and_nothing_else() {
        assert_eq!(
            strip("/v1beta1/publishers/google/models/m:generateContent"),
            Some(("v1beta1", "/models/m:generateContent"))
        );
        assert_eq!(
            strip("/v1/publishers/google/models/m:countTokens"),
            Some(("v1", "/models/m:countTokens"))
        );
        assert_eq!(strip("/v1beta/models/m:generateContent"), None);
        assert_eq!(strip("/v1beta1/publishers/googlex/models/m"), None);
    }

    #[test]
    fn every_content_needs_a_role() {
        let ok =
            br#"{"contents":[{"role":"user","parts":[{"text":"a"}]},{"role":"model","parts":[]}]}"#;
        assert!(check_roles(ok).is_ok());
        for bad in [
            &br#"{"contents":[{"parts":[{"text":"a"}]}]}"#[..],
            br#"{"contents":[{"role":"system","parts":[{"text":"a"}]}]}"#,
            br#"{"contents":[{"role":"user","parts":[]},{"role":"function","parts":[]}]}"#,
        ] {
            let e = check_roles(bad).err().map(|e| e.code);
            assert_eq!(e, Some(400));
        }
    }
}
