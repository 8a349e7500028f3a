//! Stream smoothing (issue 17, `STREAM_SMOOTHING`): the fake streams a few
//! large text events far apart (`[[words=N per=M gap=MS]]`); with smoothing
//! on, every route that reads a Gemini stream (native SSE, OpenAI chat,
//! Anthropic Messages) gets the same text as many small events at a steady
//! pace, never delayed more than `STREAM_SMOOTHING_MAX_DELAY`; off (the
//! default), the events pass as they come.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fake_gemini::KeyBehavior;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const ADMIN: &str = "sk-admin-token-0123456789";

/// Three events of 40 words (≈ 240 characters each), 600 ms apart.
const SLOW_BIG_EVENTS: &str = "[[words=120 per=40 gap=600]]";

/// One stream's SSE events (the `data:` payloads; comments left out), each
/// with when it arrived, counted from when the request was sent.
struct Timed {
    events: Vec<(Duration, String)>,
}

impl Timed {
    /// The events that are JSON, parsed.
    fn json(&self) -> Vec<(Duration, Value)> {
        self.events
            .iter()
            .filter_map(|(t, e)| serde_json::from_str(e).ok().map(|v| (*t, v)))
            .collect()
    }

    /// The longest wait between two events in a row.
    fn longest_gap(&self) -> Duration {
        self.events
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .unwrap_or_default()
    }
}

/// Where the first event of `buf` ends, after its blank line.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// POST `body` to `path` and read the streamed answer as it arrives.
async fn timed(gw: &Gw, path: &str, headers: &[(&str, &str)], body: &Value) -> Timed {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(Method::POST).uri(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let sent = Instant::now();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let (mut buf, mut events) = (Vec::new(), Vec::new());
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let at = sent.elapsed();
        buf.extend_from_slice(&data);
        while let Some(end) = event_end(&buf) {
            let event: Vec<u8> = buf.drain(..end).collect();
            let event = String::from_utf8(event).unwrap();
            // Anthropic's events name themselves on an `event:` line first.
            let data = event.lines().find_map(|l| l.strip_prefix("data:"));
            if let Some(data) = data {
                events.push((at, data.trim().to_string()));
            }
        }
    }
    Timed { events }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A native `streamGenerateContent?alt=sse` call saying `text`.
async fn native(gw: &Gw, text: &str) -> Timed {
    let body = json!({"contents": [{"role": "user", "parts": [{"text": text}]}]});
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    timed(gw, path, &[("x-goog-api-key", TOKEN)], &body).await
}

/// The text of a native stream's events, joined.
fn native_text(t: &Timed) -> String {
    t.json()
        .iter()
        .flat_map(|(_, e)| e["candidates"][0]["content"]["parts"].as_array().cloned())
        .flatten()
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect()
}

/// An OpenAI chat stream saying `text`; its content deltas and finish reasons.
async fn openai(gw: &Gw, text: &str) -> (Timed, Vec<String>, Vec<String>) {
    let mut body = chat_request(text, true);
    body["stream_options"] = json!({"include_usage": true});
    let auth = bearer();
    let t = timed(
        gw,
        "/v1/chat/completions",
        &[("authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(t.events.last().unwrap().1, "[DONE]");
    let chunks = t.json();
    let deltas = chunks
        .iter()
        .filter_map(|(_, c)| c["choices"][0]["delta"]["content"].as_str())
        .map(str::to_string)
        .collect();
    let finishes = chunks
        .iter()
        .filter_map(|(_, c)| c["choices"][0]["finish_reason"].as_str())
        .map(str::to_string)
        .collect();
    (t, deltas, finishes)
}

/// An Anthropic Messages stream saying `text`; its text deltas.
async fn anthropic(gw: &Gw, text: &str) -> Vec<String> {
    let body = json!({"model": "gemini-2.5-flash", "max_tokens": 1024, "stream": true,
        "messages": [{"role": "user", "content": text}]});
    let headers = [("x-api-key", TOKEN), ("anthropic-version", "2023-06-01")];
    let t = timed(gw, "/v1/messages", &headers, &body).await;
    t.json()
        .iter()
        .filter(|(_, e)| e["type"] == "content_block_delta")
        .filter_map(|(_, e)| e["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

/// Off by default: three events 600 ms apart. On (bound 0.5 s): the same
/// text as dozens of events with no wait near 600 ms, the finish reason and
/// usage once at the end, and the end later by at most the bound.
#[tokio::test]
async fn large_events_are_re_cut_and_paced_within_the_bound_on_every_route() {
    let plain = start(&[]).await;
    let smooth = start(&[
        ("STREAM_SMOOTHING", "true"),
        ("STREAM_SMOOTHING_MAX_DELAY", "0.5"),
    ])
    .await;
    let before = native(&plain, SLOW_BIG_EVENTS).await;
    assert_eq!(before.events.len(), 3, "{:?}", before.events);
    assert!(before.longest_gap() >= Duration::from_millis(550));
    let after = native(&smooth, SLOW_BIG_EVENTS).await;
    let text = native_text(&before);
    assert!(text.len() > 600, "{text}");
    assert_eq!(native_text(&after), text);
    // The first event comes with the headers (nothing to spread it over);
    // each later one is cut into 31 pieces 16 ms apart (0.5 s / 16 ms).
    assert!(after.events.len() >= 40, "{} events", after.events.len());
    assert!(
        after.longest_gap() < Duration::from_millis(350),
        "{:?}",
        after.longest_gap()
    );
    let evs = after.json();
    let (last, rest) = evs.split_last().unwrap();
    assert_eq!(last.1["candidates"][0]["finishReason"], "STOP");
    assert!(last.1["usageMetadata"]["candidatesTokenCount"].as_u64() == Some(120));
    // Usage stays on the last piece of each upstream event, once.
    assert!(
        rest.iter()
            .all(|(_, e)| e["candidates"][0].get("finishReason").is_none()
                && e["responseId"] == last.1["responseId"])
    );
    let usages = evs.iter().filter(|(_, e)| e.get("usageMetadata").is_some());
    assert_eq!(usages.count(), 3);
    // The last upstream event (its first piece follows the second event
    // with usage) was spread, but over no more than the bound.
    let ends: Vec<usize> = (0..evs.len())
        .filter(|&i| evs[i].1.get("usageMetadata").is_some())
        .collect();
    let spread = evs[ends[2]].0 - evs[ends[1] + 1].0;
    assert!(
        spread >= Duration::from_millis(250),
        "spread over {spread:?}"
    );
    assert!(
        spread < Duration::from_millis(750),
        "spread over {spread:?}"
    );

    // OpenAI chat: the same text in many content deltas, one finish reason.
    let (t, plain_deltas, _) = openai(&plain, SLOW_BIG_EVENTS).await;
    assert!(t.longest_gap() >= Duration::from_millis(550));
    let plain_usage = t.json().last().unwrap().1["usage"].clone();
    let (t, deltas, finishes) = openai(&smooth, SLOW_BIG_EVENTS).await;
    assert_eq!(deltas.concat(), plain_deltas.concat());
    assert_eq!(deltas.concat(), text);
    assert!(deltas.len() >= 40, "{} deltas", deltas.len());
    assert_eq!(finishes, ["stop"]);
    assert!(
        t.longest_gap() < Duration::from_millis(350),
        "{:?}",
        t.longest_gap()
    );
    let usage = t.json().last().unwrap().1["usage"].clone();
    assert_eq!(usage, plain_usage);
    assert!(usage["completion_tokens"].as_u64() >= Some(120), "{usage}");

    // Anthropic Messages reads the same smoothed stream.
    let plain_blocks = anthropic(&plain, SLOW_BIG_EVENTS).await;
    let blocks = anthropic(&smooth, SLOW_BIG_EVENTS).await;
    assert_eq!(blocks.concat(), plain_blocks.concat());
    assert!(
        blocks.len() >= 40 && plain_blocks.len() <= 3,
        "{} / {}",
        blocks.len(),
        plain_blocks.len()
    );
    plain.shutdown().await;
    smooth.shutdown().await;
}

/// An event that arrives after a long silence is spread over the bound;
/// when the next one comes 50 ms later, every piece still held goes out at
/// once (in one frame), so the lag never grows past the bound.
#[tokio::test]
async fn held_pieces_go_out_at_once_when_more_arrives() {
    let prompt = "[[words=80 per=40 first=800 gap=50]]";
    let plain = start(&[]).await;
    let smooth = start(&[("STREAM_SMOOTHING", "true")]).await;
    let before = native(&plain, prompt).await;
    assert_eq!(before.events.len(), 2);
    let after = native(&smooth, prompt).await;
    assert_eq!(native_text(&after), native_text(&before));
    assert!(after.events.len() > 20, "{} events", after.events.len());
    // Many events arrived in one frame: the catch-up.
    let mut together = 1;
    let mut run = 1;
    for w in after.events.windows(2) {
        run = if w[1].0 == w[0].0 { run + 1 } else { 1 };
        together = together.max(run);
    }
    assert!(together >= 10, "at most {together} events arrived together");
    // Without it the first event's 0.8 s spread would come on top.
    let lag = after.events.last().unwrap().0 - after.events[0].0;
    assert!(
        lag < Duration::from_millis(400),
        "the stream took {lag:?} after its first piece"
    );
    plain.shutdown().await;
    smooth.shutdown().await;
}

/// A stream cut after content (a thought event and two of the three text
/// events): every piece held is delivered, then the route's error (an
/// error chunk and `[DONE]` on OpenAI chat).
#[tokio::test]
async fn a_stream_cut_while_pieces_are_held_delivers_them_then_the_error() {
    let gw = start(&[
        ("STREAM_SMOOTHING", "true"),
        ("STREAM_SMOOTHING_MAX_DELAY", "0.5"),
    ])
    .await;
    for key in ["key-a-0000000001", "key-b-0000000002", "key-c-0000000003"] {
        gw.state().set_key(key, KeyBehavior::CutAfter { events: 3 });
    }
    let plain = start(&[]).await;
    let whole = native_text(&native(&plain, SLOW_BIG_EVENTS).await);
    let (t, deltas, _) = openai(&gw, SLOW_BIG_EVENTS).await;
    let got = deltas.concat();
    assert!(
        got.len() > 450 && whole.starts_with(&got) && got.len() < whole.len(),
        "{} of {}: {got:?} {:?}",
        got.len(),
        whole.len(),
        t.events
    );
    assert!(deltas.len() >= 20, "{} deltas", deltas.len());
    let error = t.json().into_iter().find(|(_, c)| c.get("error").is_some());
    assert!(error.is_some(), "{:?}", t.events);
    gw.shutdown().await;
    plain.shutdown().await;
}

/// `STREAM_SMOOTHING` changes live through `PATCH /admin/config`.
#[tokio::test]
async fn smoothing_turns_on_and_off_live() {
    let tokens = format!("[\"{TOKEN}\"]");
    let gw = start(&[("AUTH_TOKEN", ADMIN), ("ALLOWED_TOKENS", tokens.as_str())]).await;
    assert_eq!(native(&gw, SLOW_BIG_EVENTS).await.events.len(), 3);
    let patch = |body: Value| {
        let gw = &gw;
        async move {
            let auth = format!("Bearer {ADMIN}");
            let r = send(
                Method::PATCH,
                &gw.url("/admin/config"),
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body.to_string(),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    };
    patch(json!({"STREAM_SMOOTHING": true, "STREAM_SMOOTHING_MAX_DELAY": 0.5})).await;
    assert!(native(&gw, SLOW_BIG_EVENTS).await.events.len() >= 40);
    patch(json!({"STREAM_SMOOTHING": false})).await;
    assert_eq!(native(&gw, SLOW_BIG_EVENTS).await.events.len(), 3);
    gw.shutdown().await;
}

/// Out of range is refused at start with the setting named.
#[test]
fn the_bound_is_at_most_ten_seconds() {
    let mut map = std::collections::HashMap::new();
    map.insert("API_KEYS".to_string(), "[\"k-0000000001\"]".to_string());
    map.insert("ALLOWED_TOKENS".to_string(), format!("[\"{TOKEN}\"]"));
    map.insert("STREAM_SMOOTHING_MAX_DELAY".to_string(), "11".to_string());
    let err = gemini_balance::config::Config::from_map(&map).unwrap_err();
    assert!(
        err.to_string().contains("STREAM_SMOOTHING_MAX_DELAY"),
        "{err}"
    );
    map.insert("STREAM_SMOOTHING_MAX_DELAY".to_string(), "2.5".to_string());
    map.insert("STREAM_SMOOTHING".to_string(), "true".to_string());
    let cfg = gemini_balance::config::Config::from_map(&map).unwrap();
    assert_eq!(cfg.smoothing(), Some(Duration::from_millis(2500)));
}
