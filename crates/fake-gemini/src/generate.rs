//! Rendering a [`Plan`](crate::plan::Plan) as Gemini does: the whole
//! `generateContent` answer, or `streamGenerateContent` events (SSE, or a JSON
//! array) with cumulative usage, grounding and logprobs.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::header::HeaderValue;
use serde_json::Value;

use crate::FakeState;
use crate::body::{Ctx, FakeBody, JSON_CT, json_response, with_headers};
use crate::encoding::{b64_url, splitmix64};
use crate::errors::GoogleError;
use crate::json::{Json, write_compact, write_pretty};
use crate::plan::{OutPart, RENDERED_CONTENT, StreamMode, plan_generate, prefixed};
use crate::request::{PromptCount, count_prompt, field};
use crate::schema::num_of;

pub(crate) fn grounding_json(parts: &[OutPart], query: &str) -> Json {
    let (idx, text) = parts
        .iter()
        .enumerate()
        .find_map(|(i, p)| match p {
            OutPart::Text(t) => Some((i, t.as_str())),
            _ => None,
        })
        .unwrap_or((0, ""));
    let mut segment = Json::Obj(vec![]);
    if idx > 0 {
        segment.push("partIndex", Json::Int(idx as i64));
    }
    segment.push("endIndex", Json::Int(text.len() as i64));
    segment.push("text", Json::s(text.to_string()));
    let web = |uri: &'static str, title: &'static str| {
        Json::obj([(
            "web",
            Json::obj([("uri", Json::s(uri)), ("title", Json::s(title))]),
        )])
    };
    Json::obj([
        (
            "searchEntryPoint",
            Json::obj([("renderedContent", Json::s(RENDERED_CONTENT))]),
        ),
        (
            "groundingChunks",
            Json::Arr(vec![
                web("https://example.com/a", "Example A"),
                web("https://example.com/b", "Example B"),
            ]),
        ),
        (
            "groundingSupports",
            Json::Arr(vec![Json::obj([
                ("segment", segment),
                (
                    "groundingChunkIndices",
                    Json::Arr(vec![Json::Int(0), Json::Int(1)]),
                ),
                (
                    "confidenceScores",
                    Json::Arr(vec![Json::F64(0.9), Json::F64(0.8)]),
                ),
            ])]),
        ),
        ("retrievalMetadata", Json::Obj(vec![])),
        (
            "webSearchQueries",
            Json::Arr(vec![Json::s(query.to_string())]),
        ),
    ])
}

/// `Some(top candidates)` when the request set `responseLogprobs`.
pub(crate) fn logprobs_wanted(req: &Value) -> Option<usize> {
    let g = field(req, "generationConfig", "generation_config")?;
    let on = field(g, "responseLogprobs", "response_logprobs").and_then(Value::as_bool);
    on.filter(|b| *b)?;
    Some(num_of(g.get("logprobs")).unwrap_or(0.0).clamp(0.0, 20.0) as usize)
}

/// Gemini's `logprobsResult` for the words of the visible text: each chosen
/// word, and `n` top candidates per position (the chosen one first).
pub(crate) fn logprobs_json(parts: &[OutPart], n: usize) -> Json {
    let mut chosen = Vec::new();
    let mut top = Vec::new();
    let words = parts.iter().filter_map(|p| match p {
        OutPart::Text(t) => Some(t.split_whitespace()),
        _ => None,
    });
    for (i, w) in words.flatten().enumerate() {
        let lp = -0.125 * (i as f64 + 1.0);
        let entry = |t: String, lp: f64| {
            Json::obj([("token", Json::s(t)), ("logProbability", Json::F64(lp))])
        };
        chosen.push(entry(w.to_string(), lp));
        let alts = (0..n)
            .map(|k| match k {
                0 => entry(w.to_string(), lp),
                _ => entry(format!("alt{k}"), lp - k as f64),
            })
            .collect();
        top.push(Json::obj([("candidates", Json::Arr(alts))]));
    }
    Json::obj([
        ("topCandidates", Json::Arr(top)),
        ("chosenCandidates", Json::Arr(chosen)),
    ])
}

pub(crate) fn usage_json(pc: &PromptCount, cand: u64, thoughts: u64) -> Json {
    let prompt = pc.total() + pc.cached;
    let mut u = Json::obj([("promptTokenCount", Json::Int(prompt as i64))]);
    if pc.cached > 0 {
        u.push("cachedContentTokenCount", Json::Int(pc.cached as i64));
    }
    if cand > 0 {
        u.push("candidatesTokenCount", Json::Int(cand as i64));
    }
    u.push(
        "totalTokenCount",
        Json::Int((prompt + cand + thoughts) as i64),
    );
    if prompt > 0 {
        u.push("promptTokensDetails", pc.details());
    }
    if thoughts > 0 {
        u.push("thoughtsTokenCount", Json::Int(thoughts as i64));
    }
    u
}

pub(crate) fn candidate_json(
    index: usize,
    parts: &[OutPart],
    finish: Option<&str>,
    grounding: Option<Json>,
) -> Json {
    let mut c = Json::obj([(
        "content",
        Json::obj([
            (
                "parts",
                Json::Arr(parts.iter().map(OutPart::json).collect()),
            ),
            ("role", Json::s("model")),
        ]),
    )]);
    if let Some(f) = finish {
        c.push("finishReason", Json::s(f.to_string()));
    }
    if let Some(g) = grounding {
        c.push("groundingMetadata", g);
    }
    c.push("index", Json::Int(index as i64));
    c
}

pub(crate) fn response_json(candidates: Vec<Json>, usage: Json, model: &str, id: &str) -> Json {
    let mut r = Json::Obj(vec![]);
    if !candidates.is_empty() {
        r.push("candidates", Json::Arr(candidates));
    }
    r.push("usageMetadata", usage);
    r.push("modelVersion", Json::s(model.to_string()));
    r.push("responseId", Json::s(id.to_string()));
    r
}

pub(crate) fn blocked_json(pc: &PromptCount, model: &str, id: &str) -> Json {
    let rating = |c: &'static str, p: &'static str| {
        Json::obj([("category", Json::s(c)), ("probability", Json::s(p))])
    };
    Json::obj([
        (
            "promptFeedback",
            Json::obj([
                ("blockReason", Json::s("SAFETY")),
                (
                    "safetyRatings",
                    Json::Arr(vec![
                        rating("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
                        rating("HARM_CATEGORY_HATE_SPEECH", "HIGH"),
                        rating("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
                        rating("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
                    ]),
                ),
            ]),
        ),
        ("usageMetadata", usage_json(pc, 0, 0)),
        ("modelVersion", Json::s(model.to_string())),
        ("responseId", Json::s(id.to_string())),
    ])
}

/// Split `text` into pieces of `n` words (whitespace kept; concatenation == text).
pub(crate) fn split_words(text: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    let mut prev_ws = true;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws {
            if count == n {
                out.push(text[start..i].to_string());
                start = i;
                count = 0;
            }
            count += 1;
        }
        prev_ws = ws;
    }
    out.push(text[start..].to_string());
    out
}

/// Stream events (lists of parts) for one candidate.
pub(crate) fn events_for(parts: &[OutPart], wpe: usize, has_call: bool) -> Vec<Vec<OutPart>> {
    let mut ev = Vec::new();
    for p in parts {
        match p {
            OutPart::Text(t) => {
                for seg in split_words(t, wpe) {
                    ev.push(vec![OutPart::Text(seg)]);
                }
            }
            other => ev.push(vec![other.clone()]),
        }
    }
    if has_call || ev.is_empty() {
        // The STOP arrives in a separate event with an empty text part.
        ev.push(vec![OutPart::Text(String::new())]);
    }
    ev
}

pub(crate) fn response_id(n: u64) -> String {
    let mut bytes = [0u8; 17];
    let a = splitmix64(n ^ 0x5eed_0000_0000_0001);
    let b = splitmix64(a);
    let c = splitmix64(b);
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..16].copy_from_slice(&b.to_le_bytes());
    bytes[16] = c as u8;
    b64_url(&bytes)
}

/// Answer a `generateContent` (`stream: None`) or `streamGenerateContent`
/// call: plan the answer from the request, then send it whole or as events.
pub(crate) async fn generate(
    state: &FakeState,
    ctx: &Ctx,
    model: &str,
    req: &Value,
    stream: Option<StreamMode>,
) -> Result<Response<FakeBody>, GoogleError> {
    let mut plan = plan_generate(req, model, stream.as_ref())?;
    plan.empty |= ctx.empty;
    let pc = count_prompt(req);
    let id = response_id(state.next_id());
    let first = state.scaled(plan.first_ms);
    let Some(mode) = stream else {
        tokio::time::sleep(first).await;
        if plan.gap_ms > 0 && plan.words_per_event == 1 {
            let n = plan.parts.iter().map(|p| p.tokens().0).sum::<u64>();
            let total = plan.gap_ms.saturating_mul(n.saturating_sub(1)).min(600_000);
            tokio::time::sleep(Duration::from_millis(total)).await;
        }
        let answer = if plan.empty {
            empty_json(&pc, model, &id)
        } else {
            whole_answer(&plan, req, &pc, model, &id)
        };
        return Ok(json_response(ctx, 200, &answer));
    };
    let chunks = if plan.empty {
        vec![empty_json(&pc, model, &id)]
    } else {
        stream_chunks(&plan, &pc, model, &id)
    };
    let mut res = send_stream(ctx, &mode, &chunks, plan.gap_ms);
    res.body_mut().first = first;
    Ok(res)
}

/// An answer whose one candidate holds no content (Gemini's empty 200).
fn empty_json(pc: &PromptCount, model: &str, id: &str) -> Json {
    let cand = Json::obj([
        ("content", Json::obj([("role", Json::s("model"))])),
        ("finishReason", Json::s("STOP")),
        ("index", Json::Int(0)),
    ]);
    response_json(vec![cand], usage_json(pc, 0, 0), model, id)
}

/// The whole (non-streamed) answer to a plan.
fn whole_answer(
    plan: &crate::plan::Plan,
    req: &Value,
    pc: &PromptCount,
    model: &str,
    id: &str,
) -> Json {
    if plan.blocked {
        return blocked_json(pc, model, id);
    }
    let mut cands = Vec::with_capacity(plan.n_cand);
    let (mut ct, mut tt) = (0, 0);
    for i in 0..plan.n_cand {
        let parts = prefixed(&plan.parts, i, plan.prefix);
        for p in &parts {
            let (c, t) = p.tokens();
            ct += c;
            tt += t;
        }
        let g = plan
            .grounding_query
            .as_deref()
            .map(|q| grounding_json(&parts, q));
        let mut cand = candidate_json(i, &parts, Some(&plan.finish), g);
        if let Some(n) = logprobs_wanted(req) {
            cand.push("logprobsResult", logprobs_json(&parts, n));
        }
        cands.push(cand);
    }
    response_json(cands, usage_json(pc, ct, tt), model, id)
}

/// The response objects a streamed answer to a plan is made of, in order.
fn stream_chunks(plan: &crate::plan::Plan, pc: &PromptCount, model: &str, id: &str) -> Vec<Json> {
    if plan.blocked {
        return vec![blocked_json(pc, model, id)];
    }
    let mut chunks: Vec<Json> = Vec::new();
    let base = events_for(&plan.parts, plan.words_per_event, plan.has_call);
    let per_cand: Vec<(Vec<Vec<OutPart>>, Option<Json>)> = (0..plan.n_cand)
        .map(|i| {
            let mut ev = base.clone();
            if i > 0
                && plan.prefix
                && let Some(OutPart::Text(t)) = ev
                    .iter_mut()
                    .flat_map(|e| e.iter_mut())
                    .find(|p| matches!(p, OutPart::Text(_)))
            {
                *t = format!("[{i}] {t}");
            }
            let g = plan
                .grounding_query
                .as_deref()
                .map(|q| grounding_json(&prefixed(&plan.parts, i, plan.prefix), q));
            (ev, g)
        })
        .collect();
    let total = base.len();
    let (mut ct, mut tt) = (0, 0);
    for k in 0..total {
        let mut cands = Vec::with_capacity(plan.n_cand);
        for (i, (ev, g)) in per_cand.iter().enumerate() {
            let Some(parts) = ev.get(k) else { continue };
            for p in parts {
                let (c, t) = p.tokens();
                ct += c;
                tt += t;
            }
            let last = k + 1 == ev.len();
            cands.push(candidate_json(
                i,
                parts,
                last.then_some(plan.finish.as_str()),
                if last { g.clone() } else { None },
            ));
        }
        chunks.push(response_json(cands, usage_json(pc, ct, tt), model, id));
    }
    chunks
}

/// Send stream chunks as SSE (`alt=sse`) or as Google's JSON array, one
/// frame per chunk `gap_ms` apart, cut short when the key is set to cut.
fn send_stream(ctx: &Ctx, mode: &StreamMode, chunks: &[Json], gap_ms: u64) -> Response<FakeBody> {
    let cut = mode.cut.map(|n| n.min(chunks.len().saturating_sub(1)));
    let send = cut.unwrap_or(chunks.len());
    let gap = Duration::from_millis(gap_ms);
    let mut frames: Vec<Bytes> = Vec::with_capacity(send);
    if mode.sse {
        for c in &chunks[..send] {
            let mut s = String::with_capacity(512);
            s.push_str("data: ");
            write_compact(c, &mut s);
            s.push_str("\r\n\r\n");
            frames.push(Bytes::from(s));
        }
        let body = FakeBody::stream(frames, gap, cut.is_some());
        let mut r = with_headers(200, "text/event-stream", body);
        r.headers_mut().insert(
            http::header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
        r
    } else {
        for (k, c) in chunks[..send].iter().enumerate() {
            let mut s = String::with_capacity(1024);
            s.push_str(if k == 0 { "[" } else { "\n,\r\n" });
            if ctx.pretty {
                write_pretty(c, &mut s, 0);
            } else {
                write_compact(c, &mut s);
            }
            if cut.is_none() && k + 1 == send {
                s.push_str("\n]");
            }
            frames.push(Bytes::from(s));
        }
        if frames.is_empty() && cut.is_none() {
            frames.push(Bytes::from_static(b"[]"));
        }
        with_headers(200, JSON_CT, FakeBody::stream(frames, gap, cut.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn generate_plain_text_shape() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, GEN, "k", &user("hello world")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.ct(), "application/json; charset=UTF-8");
        let t = r.text();
        assert!(
            t.starts_with(
                "{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"parts\": [\n          {\n            \"text\": \"Echo: hello world\"\n          }\n        ],\n        \"role\": \"model\"\n      },\n      \"finishReason\": \"STOP\",\n      \"index\": 0\n    }\n  ],\n  \"usageMetadata\": {\n    \"promptTokenCount\": "
            ),
            "{t}"
        );
        assert!(t.ends_with("}\n"));
        let v = r.json();
        let u = &v["usageMetadata"];
        assert_eq!(u["candidatesTokenCount"], 3);
        assert_eq!(
            u["totalTokenCount"].as_u64().unwrap(),
            u["promptTokenCount"].as_u64().unwrap() + 3
        );
        assert_eq!(v["modelVersion"], "gemini-2.5-flash");
        assert!(v["responseId"].as_str().unwrap().len() > 10);
        // Empty user text.
        let e = post(&fake, GEN, "k", &user("   ")).await.json();
        assert_eq!(text_of(&e, 0), "Hello from the fake Gemini.");
        // models/ prefix in the URL model segment is not doubled; v1 works too.
        let v1 = post(
            &fake,
            "/v1/models/fake-model:generateContent",
            "k",
            &user("x"),
        )
        .await;
        assert_eq!(v1.json()["modelVersion"], "fake-model");
    }

    #[tokio::test]
    async fn sse_framing_and_cumulative_usage() {
        let fake = Fake::start().await.unwrap();
        let r = post(
            &fake,
            SSE,
            "k",
            &user("one two three four five six seven eight nine ten"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.ct(), "text/event-stream");
        let raw = r.text();
        assert!(raw.starts_with("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Echo: one two three \"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": "), "{raw}");
        assert!(!raw.contains("[DONE]"));
        let ev = sse_events(&r);
        assert_eq!(ev.len(), 3);
        let mut prev = 0;
        for (i, e) in ev.iter().enumerate() {
            let last = i + 1 == ev.len();
            assert_eq!(e["candidates"][0].get("finishReason").is_some(), last);
            let c = e["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap();
            assert!(c > prev);
            prev = c;
            assert_eq!(e["responseId"], ev[0]["responseId"]);
            assert_eq!(e["modelVersion"], "gemini-2.5-flash");
        }
        assert_eq!(prev, 11);
        let all: String = ev.iter().map(|e| text_of(e, 0)).collect();
        assert_eq!(
            all,
            "Echo: one two three four five six seven eight nine ten"
        );
    }

    #[tokio::test]
    async fn json_array_stream_framing() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, ARR, "k", &user("a b c d e f g h i j")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.ct(), "application/json; charset=UTF-8");
        let t = r.text();
        assert!(t.starts_with("[{\n  \"candidates\": [\n"), "{t}");
        assert!(t.contains("}\n,\r\n{\n  \"candidates\""));
        assert!(t.ends_with("}\n]"));
        let v: Value = serde_json::from_str(&t).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert!(arr[2]["candidates"][0]["finishReason"] == "STOP");
        assert!(arr[0]["candidates"][0].get("finishReason").is_none());
    }

    #[tokio::test]
    async fn cut_after_really_cuts() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, SSE, "cut-1", &user("hi")).await;
        assert_eq!(r.status, 200);
        assert!(r.body_error, "expected a body error");
        let ev = sse_events(&r);
        assert_eq!(ev.len(), 2);
        assert!(
            ev.iter()
                .all(|e| e["candidates"][0].get("finishReason").is_none())
        );
        let a = post(&fake, ARR, "cut-1", &user("a b c d e f g h i j k l m n")).await;
        assert!(a.body_error);
        assert!(a.text().starts_with("[{"));
        assert!(!a.text().ends_with(']'));
        assert_eq!(a.text().matches("\n,\r\n").count(), 1);
        fake.state
            .set_key("c5", KeyBehavior::CutAfter { events: 5 });
        let r = post(&fake, SSE, "c5", &user("hi")).await;
        assert!(r.body_error);
        assert_eq!(sse_events(&r).len(), 5);
        // Non-stream: reset before headers.
        let body = user("hi").to_string();
        let e = send_raw(
            fake.addr,
            "POST",
            GEN,
            &[("x-goog-api-key", "cut-1")],
            &body,
        )
        .await;
        assert!(e.is_err());
    }
}
