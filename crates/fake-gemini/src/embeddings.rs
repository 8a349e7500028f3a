//! `:countTokens`, `:embedContent` and `:batchEmbedContents`: deterministic
//! token counts and unit-length embeddings derived from the text.

use http::Response;
use serde_json::Value;

use crate::body::{Ctx, FakeBody, json_response};
use crate::encoding::{fnv1a, splitmix64};
use crate::errors::{GoogleError, err_bad};
use crate::json::Json;
use crate::request::{arr, count_prompt, field, parts_of};
use crate::schema::num_of;

// ---------------------------------------------------------------------------
// countTokens and embeddings
// ---------------------------------------------------------------------------

pub(crate) fn count_tokens(ctx: &Ctx, root: &Value) -> Result<Response<FakeBody>, GoogleError> {
    let gcr = field(root, "generateContentRequest", "generate_content_request");
    if gcr.is_some() && root.get("contents").is_some() {
        return Err(err_bad(
            "* CountTokensRequest: contents and generate_content_request cannot both be set\n",
        ));
    }
    let pc = count_prompt(gcr.unwrap_or(root));
    let total = pc.total();
    let mut j = Json::Obj(vec![]);
    if total > 0 {
        j.push("totalTokens", Json::Int(total as i64));
        j.push("promptTokensDetails", pc.details());
    }
    Ok(json_response(ctx, 200, &j))
}

pub(crate) fn embed_text(content: &Value) -> String {
    let mut s = String::new();
    for p in parts_of(content) {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        }
    }
    s
}

pub(crate) fn embedding_values(text: &str, dim: usize) -> Json {
    Json::obj([(
        "values",
        Json::Arr(
            embedding_vec(text, dim)
                .into_iter()
                .map(Json::F32)
                .collect(),
        ),
    )])
}

/// The fake's deterministic unit-length embedding of `text` (native and `/openai` alike).
pub(crate) fn embedding_vec(text: &str, dim: usize) -> Vec<f32> {
    let seed = fnv1a(text.as_bytes());
    let mut v: Vec<f64> = (0..dim)
        .map(|i| {
            let r = splitmix64(seed.wrapping_add(i as u64));
            (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v.into_iter().map(|x| x as f32).collect()
}

pub(crate) fn dimension(req: &Value) -> Result<usize, GoogleError> {
    match num_of(field(req, "outputDimensionality", "output_dimensionality")) {
        None => Ok(768),
        Some(d) if (1.0..=3072.0).contains(&d) => Ok(d as usize),
        Some(d) => Err(err_bad(format!(
            "* EmbedContentRequest.output_dimensionality: output_dimensionality must be between 1 and 3072, got {d}\n"
        ))),
    }
}

pub(crate) fn embed(ctx: &Ctx, root: &Value) -> Result<Response<FakeBody>, GoogleError> {
    let Some(content) = root.get("content").filter(|c| c.is_object()) else {
        return Err(err_bad(
            "* EmbedContentRequest.content: content is not specified\n",
        ));
    };
    let dim = dimension(root)?;
    let j = Json::obj([("embedding", embedding_values(&embed_text(content), dim))]);
    Ok(json_response(ctx, 200, &j))
}

pub(crate) fn batch_embed(
    ctx: &Ctx,
    model: &str,
    root: &Value,
) -> Result<Response<FakeBody>, GoogleError> {
    let reqs = arr(root.get("requests"));
    if reqs.is_empty() {
        return Err(err_bad(
            "* BatchEmbedContentsRequest.requests: requests is not specified\n",
        ));
    }
    if reqs.len() > 100 {
        return Err(err_bad(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
        ));
    }
    let want = format!("models/{model}");
    let mut out = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let m = r.get("model").and_then(Value::as_str).unwrap_or("");
        if m != want {
            return Err(err_bad(format!(
                "* BatchEmbedContentsRequest.requests[{i}].model: model must match the model in the URL ({want}), got \"{m}\"\n"
            )));
        }
        let Some(content) = r.get("content").filter(|c| c.is_object()) else {
            return Err(err_bad(format!(
                "* BatchEmbedContentsRequest.requests[{i}].content: content is not specified\n"
            )));
        };
        out.push(embedding_values(&embed_text(content), dimension(r)?));
    }
    Ok(json_response(
        ctx,
        200,
        &Json::obj([("embeddings", Json::Arr(out))]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn embeddings_and_count_tokens() {
        let fake = Fake::start().await.unwrap();
        const E: &str = "/v1beta/models/gemini-embedding-001:embedContent";
        const B: &str = "/v1beta/models/gemini-embedding-001:batchEmbedContents";
        let body = json!({"content": {"parts": [{"text": "hello"}]}});
        let a = post(&fake, E, "k", &body).await.json();
        let b = post(&fake, E, "k", &body).await.json();
        assert_eq!(a["embedding"]["values"].as_array().unwrap().len(), 768);
        assert_eq!(a, b);
        let small = post(
            &fake,
            E,
            "k",
            &json!({"content": {"parts": [{"text": "hello"}]}, "output_dimensionality": 8}),
        )
        .await
        .json();
        assert_eq!(small["embedding"]["values"].as_array().unwrap().len(), 8);
        let req = |m: &str, t: &str| json!({"model": m, "content": {"parts": [{"text": t}]}});
        let ok = post(
            &fake,
            B,
            "k",
            &json!({"requests": [req("models/gemini-embedding-001", "a"), req("models/gemini-embedding-001", "hello")]}),
        )
        .await
        .json();
        let embs = ok["embeddings"].as_array().unwrap();
        assert_eq!(embs.len(), 2);
        assert_eq!(embs[1], a["embedding"]);
        let mismatch = post(
            &fake,
            B,
            "k",
            &json!({"requests": [req("gemini-embedding-001", "a")]}),
        )
        .await;
        assert_eq!(mismatch.status, 400);
        let many: Vec<Value> = (0..101)
            .map(|_| req("models/gemini-embedding-001", "a"))
            .collect();
        let too_many = post(&fake, B, "k", &json!({"requests": many})).await;
        assert_eq!(too_many.status, 400);
        // countTokens agrees with generate's promptTokenCount.
        let body = user("count these words please, thank you very much");
        let ct = post(
            &fake,
            "/v1beta/models/gemini-2.5-flash:countTokens",
            "k",
            &body,
        )
        .await
        .json();
        let g = post(&fake, GEN, "k", &body).await.json();
        assert_eq!(ct["totalTokens"], g["usageMetadata"]["promptTokenCount"]);
        let ct2 = post(
            &fake,
            "/v1beta/models/gemini-2.5-flash:countTokens",
            "k",
            &json!({"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": body["contents"]}}),
        )
        .await
        .json();
        assert_eq!(ct2["totalTokens"], ct["totalTokens"]);
    }
}
