//! Long calls: the deadline of one client request over all its upstream
//! attempts (`REQUEST_TIMEOUT`), its budget of retries after a timed-out
//! generation (`TIMEOUT_RETRIES`), and what counts as an empty answer
//! ([`is_empty_answer`]: a 200 that is a failure, retried on another key),
//! the stream events a whole answer is sent as when a stream is faked
//! ([`answer_events`], `FAKE_STREAM_ENABLED`),
//! and heartbeats while a stream is silent ([`within`], then
//! [`crate::body::beating`]: one timer per stream, reset, and a static
//! heartbeat, never an allocation).
//!
//! The router runs each request inside [`scope`] with a fresh [`Budget`]; the
//! upstream path reads it where it waits ([`clamp`], [`expired`],
//! [`timed_out`]) without any signature carrying it, so every route — and a
//! handler added later — gets the same deadline. A task spawned to carry on
//! the request re-enters the scope with [`current`]. Outside a scope
//! (scheduler calls, unit tests) nothing is bounded beyond each wait's own
//! timeout.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// One request's deadline and timed-out generations so far.
#[derive(Clone, Debug)]
pub struct Budget {
    /// When the request must have its whole answer (or first stream content).
    pub deadline: Instant,
    /// Timed-out generations still allowed a retry.
    retries: Cell<u32>,
}

impl Budget {
    /// A budget starting now: `timeout` (`REQUEST_TIMEOUT`) and `retries`
    /// (`TIMEOUT_RETRIES`).
    pub fn new(timeout: Duration, retries: u32) -> Budget {
        Budget {
            deadline: Instant::now() + timeout,
            retries: Cell::new(retries),
        }
    }
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Run `fut` with `budget` as the request's budget. (Plain functions, not
/// `async fn`s: an `async fn` would hold `fut` twice in its state, as its
/// argument and as the future it awaits, doubling every request's future.)
pub fn scope<F: Future>(budget: Budget, fut: F) -> impl Future<Output = F::Output> {
    BUDGET.scope(budget, fut)
}

/// `fut` running under `budget` (if any), wherever it is polled: the
/// current request's budget carried into a future a task may take over.
pub fn scoped<F: Future>(budget: Option<Budget>, fut: F) -> impl Future<Output = F::Output> {
    use futures_util::future::Either;
    match budget {
        Some(b) => Either::Left(BUDGET.scope(b, fut)),
        None => Either::Right(fut),
    }
}

/// The current request's budget (to carry it into a spawned task), if any.
pub fn current() -> Option<Budget> {
    BUDGET.try_with(Budget::clone).ok()
}

/// The time left before the request's deadline (`None`: no deadline).
pub fn remaining() -> Option<Duration> {
    BUDGET
        .try_with(|b| b.deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// `wait`, shortened to what is left before the deadline.
pub fn clamp(wait: Duration) -> Duration {
    remaining().map_or(wait, |r| r.min(wait))
}

/// Whether the deadline has passed.
pub fn expired() -> bool {
    remaining().is_some_and(|r| r.is_zero())
}

/// Count a timed-out generation; whether it may still be retried (within
/// `TIMEOUT_RETRIES`, before the deadline).
pub fn timed_out() -> bool {
    let retry = BUDGET
        .try_with(|b| {
            let left = b.retries.get();
            b.retries.set(left.saturating_sub(1));
            left > 0
        })
        .unwrap_or(true);
    retry && !expired()
}

/// `: keep-alive`, the heartbeat on OpenAI routes (an SSE comment).
pub const OPENAI_HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// An empty line, the heartbeat on native SSE streams (every google-genai
/// SDK skips it; the Python SDK fails on comment lines).
pub const NATIVE_HEARTBEAT: &[u8] = b"\n";

/// Run `fut` for at most `wait`: its output, or `None` (it is still
/// pending and may be polled on, e.g. by [`crate::body::beating`]).
pub async fn within<F: Future + Unpin>(fut: &mut F, wait: Duration) -> Option<F::Output> {
    tokio::time::timeout(wait, fut).await.ok()
}

/// Resolves once `drain` (`App::drain`) is `true`: shutdown asks open
/// streams to end (never, if the sender is gone).
pub async fn drained(drain: &mut tokio::sync::watch::Receiver<bool>) {
    if drain.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Text pieces of a faked stream end at the first whitespace after this many bytes.
const PIECE: usize = 24;

/// The events (Gemini JSON, one per event) that send the whole
/// `generateContent` answer `whole` as a stream: each text part cut into
/// pieces of a few words, each other part (tool calls, images, thoughts
/// with a signature…) as an event of its own, then one last event with
/// every candidate's finish reason and metadata, the usage and the prompt
/// feedback. `None` when `whole` is not a JSON object.
pub fn answer_events(whole: &[u8]) -> Option<Vec<String>> {
    use serde_json::{Map, Value};
    let Value::Object(mut top) = serde_json::from_slice::<Value>(whole).ok()? else {
        return None;
    };
    let candidates = match top.remove("candidates") {
        Some(Value::Array(c)) => c,
        _ => return Some(vec![Value::Object(top).to_string()]),
    };
    // Every event names the model and the response, as Google's do.
    let mut head = Map::new();
    for k in ["modelVersion", "responseId"] {
        if let Some(v) = top.get(k) {
            head.insert(k.to_string(), v.clone());
        }
    }
    let event = |index: &Value, part: Value| {
        let mut e = head.clone();
        let content = serde_json::json!({"parts": [part], "role": "model"});
        let cand = serde_json::json!({"content": content, "index": index});
        e.insert("candidates".into(), Value::Array(vec![cand]));
        Value::Object(e).to_string()
    };
    let mut events = Vec::new();
    let mut last = Vec::with_capacity(candidates.len());
    for (i, mut cand) in candidates.into_iter().enumerate() {
        let index = cand.get("index").cloned().unwrap_or_else(|| Value::from(i));
        let parts = cand
            .get_mut("content")
            .and_then(|c| c.get_mut("parts"))
            .map(Value::take);
        for part in parts
            .and_then(|p| match p {
                Value::Array(a) => Some(a),
                _ => None,
            })
            .unwrap_or_default()
        {
            let plain = part.as_object().is_some_and(|o| o.len() == 1);
            match part.get("text").and_then(Value::as_str) {
                Some(text) if plain => {
                    for piece in pieces(text) {
                        events.push(event(&index, serde_json::json!({"text": piece})));
                    }
                }
                _ => events.push(event(&index, part)),
            }
        }
        if let Some(o) = cand.as_object_mut() {
            o.remove("content");
            o.insert("index".into(), index);
        }
        last.push(cand);
    }
    let mut end = top;
    end.insert("candidates".into(), Value::Array(last));
    events.push(Value::Object(end).to_string());
    Some(events)
}

/// `text` cut into pieces that end at the first whitespace after [`PIECE`] bytes.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() && i + c.len_utf8() - start >= PIECE {
            out.push(&text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() || out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

/// The error log's class (message prefix) of an empty answer.
pub const EMPTY_ANSWER: &str = "empty_answer";

/// Whether `json` — one Gemini `generateContent` answer, or one stream
/// event — is an empty answer: no error, no blocked prompt, and no
/// candidate holding a part, whose finish reason (if any) is `STOP`. A
/// candidate stopped for SAFETY, RECITATION, MAX_TOKENS… or a blocked
/// prompt is an answer; so is anything that does not parse as one.
pub fn is_empty_answer(json: &[u8]) -> bool {
    if holds_a_part(json) {
        return false;
    }
    parse_empty(json)
}

/// Whether `json` has a `"parts"` member holding an object: a key, since
/// inside a JSON string both quotes would be escaped (`\"parts\"`), and in
/// a Gemini answer only a candidate's content has one (or a function call's
/// arguments, which make a part too). The quick answer for every ordinary
/// answer; without one, [`parse_empty`] decides.
fn holds_a_part(json: &[u8]) -> bool {
    static PARTS: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"parts\""));
    PARTS.find_iter(json).any(|at| {
        let rest = json[at + 7..].trim_ascii_start();
        rest.strip_prefix(b":")
            .map(<[u8]>::trim_ascii_start)
            .and_then(|r| r.strip_prefix(b"["))
            .map(<[u8]>::trim_ascii_start)
            .is_some_and(|r| r.starts_with(b"{"))
    })
}

/// [`is_empty_answer`] by reading the answer's structure.
fn parse_empty(json: &[u8]) -> bool {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<IgnoredAny>,
        #[serde(default, rename = "promptFeedback")]
        feedback: Option<Feedback>,
        #[serde(default)]
        candidates: Option<Vec<Candidate>>,
    }
    #[derive(serde::Deserialize)]
    struct Feedback {
        #[serde(default, rename = "blockReason")]
        block: Option<IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Candidate {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default, rename = "finishReason")]
        finish: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Content {
        #[serde(default)]
        parts: Option<Vec<IgnoredAny>>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(json) else {
        return false;
    };
    if p.error.is_some() || p.feedback.is_some_and(|f| f.block.is_some()) {
        return false;
    }
    p.candidates.unwrap_or_default().iter().all(|c| {
        let parts = c.content.as_ref().and_then(|c| c.parts.as_ref());
        parts.is_none_or(Vec::is_empty)
            && matches!(
                c.finish.as_deref(),
                None | Some("STOP" | "FINISH_REASON_UNSPECIFIED")
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_clamps_waits_and_timeouts_are_counted() {
        assert_eq!(clamp(Duration::from_secs(5)), Duration::from_secs(5));
        assert!(!expired() && timed_out(), "no scope: nothing bounded");
        scope(Budget::new(Duration::from_secs(10), 1), async {
            assert_eq!(clamp(Duration::from_secs(300)), Duration::from_secs(10));
            assert_eq!(clamp(Duration::from_secs(2)), Duration::from_secs(2));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(clamp(Duration::from_secs(300)), Duration::from_secs(6));
            assert!(timed_out(), "one retry allowed");
            assert!(!timed_out(), "only one");
            let b = current().unwrap();
            tokio::time::sleep(Duration::from_secs(7)).await;
            assert!(expired());
            assert_eq!(b.deadline, current().unwrap().deadline);
        })
        .await;
    }

    #[test]
    fn empty_answers_are_told_from_answers() {
        for empty in [
            r#"{"usageMetadata": {"promptTokenCount": 3}}"#,
            r#"{"candidates": []}"#,
            r#"{"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}]}"#,
            r#"{"candidates": [{"content": {"parts": []}}]}"#,
        ] {
            assert!(is_empty_answer(empty.as_bytes()), "{empty}");
        }
        for answer in [
            r#"{"candidates": [{"content": {"parts": [{"text": ""}]}}]}"#,
            r#"{"candidates": [{"finishReason": "SAFETY"}]}"#,
            r#"{"candidates": [{"finishReason": "RECITATION"}]}"#,
            r#"{"promptFeedback": {"blockReason": "SAFETY"}}"#,
            r#"{"error": {"code": 500}}"#,
            "not json",
        ] {
            assert!(!is_empty_answer(answer.as_bytes()), "{answer}");
        }
    }

    #[test]
    fn the_quick_check_agrees_with_the_parse() {
        for (json, empty) in [
            (
                r#"{"candidates": [{"content": {"parts" : [ {"text": "x"}]}}]}"#,
                false,
            ),
            (r#"{"candidates":[{"content":{"parts":[{}]}}]}"#, false),
            (
                r#"{"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]}"#,
                true,
            ),
            // The words inside a string are no key.
            (
                r#"{"candidates": [{"content": {"role": "model \"parts\": [{"}}]}"#,
                true,
            ),
            (
                r#"{"candidates": [], "modelVersion": "\"parts\":[{\"text\":1}]"}"#,
                true,
            ),
            (
                r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"parts": [{"a": 1}]}}}]}}]}"#,
                false,
            ),
        ] {
            assert_eq!(is_empty_answer(json.as_bytes()), empty, "{json}");
            assert_eq!(parse_empty(json.as_bytes()), empty, "{json}");
            if empty {
                assert!(!holds_a_part(json.as_bytes()), "{json}");
            }
        }
    }

    #[test]
    fn a_whole_answer_becomes_stream_events() {
        let whole = br#"{"candidates": [{"content": {"parts": [{"text": "one two three four five six seven eight nine ten"}, {"functionCall": {"name": "f", "args": {}}}], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"totalTokenCount": 9}, "modelVersion": "m", "responseId": "r"}"#;
        let events = answer_events(whole).unwrap();
        assert!(events.len() >= 4, "{events:?}");
        let v: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let text: String = v
            .iter()
            .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
            .collect();
        assert_eq!(text, "one two three four five six seven eight nine ten");
        assert!(
            v.iter()
                .all(|e| e["modelVersion"] == "m" && e["responseId"] == "r")
        );
        let call = &v[v.len() - 2]["candidates"][0]["content"]["parts"][0];
        assert_eq!(call["functionCall"]["name"], "f");
        let end = &v[v.len() - 1];
        assert_eq!(end["candidates"][0]["finishReason"], "STOP");
        assert!(end["candidates"][0].get("content").is_none());
        assert_eq!(end["usageMetadata"]["totalTokenCount"], 9);
        assert_eq!(pieces("é"), ["é"]);
        assert_eq!(pieces(""), [""]);
    }
}
