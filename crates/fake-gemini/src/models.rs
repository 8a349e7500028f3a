//! The model catalogue, which model names the fake serves, and
//! `GET models` (paginated with page tokens) and `GET models/{m}`.

use http::Response;

use crate::body::{Ctx, FakeBody, error_response, json_response};
use crate::encoding::{b64_decode, b64_std};
use crate::errors::{err_bad, err_model_not_found};
use crate::json::Json;

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

pub(crate) struct ModelInfo {
    pub(crate) id: &'static str,
    pub(crate) version: &'static str,
    pub(crate) display: &'static str,
    pub(crate) description: &'static str,
    pub(crate) input: i64,
    pub(crate) output: i64,
    pub(crate) methods: &'static [&'static str],
    /// temperature, topP, topK, maxTemperature
    pub(crate) sampling: Option<(f64, f64, i64, f64)>,
    pub(crate) thinking: bool,
}

pub(crate) const GEN_METHODS: &[&str] = &[
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
];

pub(crate) const CATALOGUE: &[ModelInfo] = &[
    ModelInfo {
        id: "gemini-2.5-flash",
        version: "001",
        display: "Gemini 2.5 Flash",
        description: "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to 1 million tokens, released in June of 2025.",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.5-pro",
        version: "2.5",
        display: "Gemini 2.5 Pro",
        description: "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.5-flash-lite",
        version: "001",
        display: "Gemini 2.5 Flash-Lite",
        description: "Stable version of Gemini 2.5 Flash-Lite, released in July of 2025",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.0-flash",
        version: "2.0",
        display: "Gemini 2.0 Flash",
        description: "Gemini 2.0 Flash",
        input: 1_048_576,
        output: 8_192,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 40, 2.0)),
        thinking: false,
    },
    ModelInfo {
        id: "gemini-3-pro-preview",
        version: "3-pro-preview-11-2025",
        display: "Gemini 3 Pro Preview",
        description: "Gemini 3 Pro Preview",
        input: 1_048_576,
        output: 65_536,
        methods: GEN_METHODS,
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: true,
    },
    ModelInfo {
        id: "gemini-2.5-flash-image",
        version: "2.0",
        display: "Nano Banana",
        description: "Gemini 2.5 Flash Image",
        input: 32_768,
        output: 32_768,
        methods: &["generateContent", "countTokens", "batchGenerateContent"],
        sampling: Some((1.0, 0.95, 64, 2.0)),
        thinking: false,
    },
    ModelInfo {
        id: "gemini-embedding-001",
        version: "001",
        display: "Gemini Embedding 001",
        description: "Obtain a distributed representation of a text.",
        input: 2_048,
        output: 1,
        methods: &[
            "embedContent",
            "countTextTokens",
            "countTokens",
            "asyncBatchEmbedContent",
        ],
        sampling: None,
        thinking: false,
    },
    ModelInfo {
        id: "text-embedding-004",
        version: "004",
        display: "Text Embedding 004",
        description: "Obtain a distributed representation of a text.",
        input: 2_048,
        output: 1,
        methods: &["embedContent"],
        sampling: None,
        thinking: false,
    },
];

/// The fake's default page size (Google's real default is 50).
pub(crate) const DEFAULT_PAGE_SIZE: usize = 3;

/// A model the fake serves: the catalogue, any `fake-*` name, and `gemini-*`
/// names that are not from the future (no version, or major version 1–3, e.g.
/// `gemini-flash-latest`, `gemini-2.0-flash-001`); `gemini-9-ultra` is 404 as
/// at Google.
pub(crate) fn model_known(m: &str) -> bool {
    if CATALOGUE.iter().any(|c| c.id == m) || m.starts_with("fake-") {
        return true;
    }
    let Some(rest) = m.strip_prefix("gemini-").filter(|r| !r.is_empty()) else {
        return false;
    };
    let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
    major.is_empty() || major.parse::<u32>().is_ok_and(|v| (1..=3).contains(&v))
}

pub(crate) fn model_json(c: &ModelInfo) -> Json {
    let mut j = Json::obj([
        ("name", Json::s(format!("models/{}", c.id))),
        ("version", Json::s(c.version)),
        ("displayName", Json::s(c.display)),
        ("description", Json::s(c.description)),
        ("inputTokenLimit", Json::Int(c.input)),
        ("outputTokenLimit", Json::Int(c.output)),
        (
            "supportedGenerationMethods",
            Json::Arr(c.methods.iter().map(|m| Json::s(*m)).collect()),
        ),
    ]);
    if let Some((t, p, k, mt)) = c.sampling {
        j.push("temperature", Json::F64(t));
        j.push("topP", Json::F64(p));
        j.push("topK", Json::Int(k));
        j.push("maxTemperature", Json::F64(mt));
    }
    if c.thinking {
        j.push("thinking", Json::Bool(true));
    }
    j
}

pub(crate) fn list_models(
    ctx: &Ctx,
    page_size: Option<&str>,
    token: Option<&str>,
) -> Response<FakeBody> {
    let size = page_size
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|n| *n > 0)
        .map(|n| n.min(1000) as usize)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match decode_page_token(t) {
            Some(o) if o <= CATALOGUE.len() => o,
            _ => {
                return error_response(ctx, err_bad("Invalid page token provided."));
            }
        },
    };
    let end = (offset + size).min(CATALOGUE.len());
    let models: Vec<Json> = CATALOGUE[offset..end].iter().map(model_json).collect();
    let mut j = Json::Obj(vec![]);
    if !models.is_empty() {
        j.push("models", Json::Arr(models));
    }
    if end < CATALOGUE.len() {
        j.push(
            "nextPageToken",
            Json::s(b64_std(format!("offset:{end}").as_bytes())),
        );
    }
    json_response(ctx, 200, &j)
}

pub(crate) fn decode_page_token(t: &str) -> Option<usize> {
    let raw = b64_decode(t)?;
    let s = std::str::from_utf8(&raw).ok()?;
    s.strip_prefix("offset:")?.parse().ok()
}

pub(crate) fn get_model(ctx: &Ctx, m: &str) -> Response<FakeBody> {
    if let Some(c) = CATALOGUE.iter().find(|c| c.id == m) {
        return json_response(ctx, 200, &model_json(c));
    }
    if model_known(m) {
        let j = Json::obj([
            ("name", Json::s(format!("models/{m}"))),
            ("version", Json::s("001")),
            ("displayName", Json::s(m.to_string())),
            ("description", Json::s(format!("Fake model {m}"))),
            ("inputTokenLimit", Json::Int(1_048_576)),
            ("outputTokenLimit", Json::Int(65_536)),
            (
                "supportedGenerationMethods",
                Json::Arr(GEN_METHODS.iter().map(|m| Json::s(*m)).collect()),
            ),
            ("temperature", Json::F64(1.0)),
            ("topP", Json::F64(0.95)),
            ("topK", Json::Int(64)),
            ("maxTemperature", Json::F64(2.0)),
        ]);
        return json_response(ctx, 200, &j);
    }
    error_response(ctx, err_model_not_found(m, ctx.version, "get"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn pagination_walks_all_models() {
        let fake = Fake::start().await.unwrap();
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &token {
                Some(t) => format!("/v1beta/models?key=k&pageToken={}", t.replace('=', "%3D")),
                None => "/v1beta/models?key=k".to_string(),
            };
            let r = send(fake.addr, "GET", &path, &[], "").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.ct(), "application/json; charset=UTF-8");
            assert!(
                r.text()
                    .starts_with("{\n  \"models\": [\n    {\n      \"name\": \"models/")
            );
            let v = r.json();
            pages += 1;
            for m in v["models"].as_array().unwrap() {
                names.push(m["name"].as_str().unwrap().to_string());
                assert!(m["inputTokenLimit"].as_i64().unwrap() > 0);
                assert!(m["supportedGenerationMethods"].is_array());
            }
            match v.get("nextPageToken") {
                Some(t) => token = Some(t.as_str().unwrap().to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(names.contains(&"models/text-embedding-004".to_string()));
        let all = send(fake.addr, "GET", "/v1/models?key=k&pageSize=100", &[], "").await;
        assert_eq!(all.json()["models"].as_array().unwrap().len(), 8);
        assert!(all.json().get("nextPageToken").is_none());
        let bad = send(
            fake.addr,
            "GET",
            "/v1beta/models?key=k&pageToken=!!",
            &[],
            "",
        )
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.json()["error"]["status"], "INVALID_ARGUMENT");
        let one = send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-pro?key=k",
            &[],
            "",
        )
        .await;
        assert_eq!(one.json()["displayName"], "Gemini 2.5 Pro");
        let nf = send(fake.addr, "GET", "/v1beta/models/llama-3?key=k", &[], "").await;
        assert_eq!(nf.status, 404);
        assert_eq!(nf.json()["error"]["status"], "NOT_FOUND");
        assert!(
            nf.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("models/llama-3 is not found for API version v1beta")
        );
    }
}
