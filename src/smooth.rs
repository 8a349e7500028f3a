//! Stream smoothing (`STREAM_SMOOTHING`, off by default): a Gemini SSE
//! stream whose text arrives in large events is re-cut into small events
//! sent at a steady pace, as gemini-balance's stream optimizer does — with
//! a bound on the delay it adds (`STREAM_SMOOTHING_MAX_DELAY`).
//!
//! It works on the upstream body ([`Smoother::poll`], inside
//! [`crate::lanes::UpBody`]), so every route that reads a Gemini stream —
//! native SSE, OpenAI chat, Responses, Anthropic Messages — sees the same
//! small events and needs nothing of its own.
//!
//! The pace. An event whose one candidate holds one plain text part (see
//! [`text_of`]) is cut into pieces of at least [`PIECE_CHARS`] characters,
//! spread evenly over a window: the time the event took to arrive after the
//! one before it (a steady upstream's next event comes about as late; the
//! bound for the first event), at most the bound, with at least [`TICK`]
//! between pieces. The first piece
//! goes out at once. When more bytes arrive from upstream before the last
//! piece is out, every piece still held goes out at once: smoothing never
//! holds text back longer than the bound, and the lag never grows. When
//! the stream ends, its last event is still paced out before the end; when
//! it breaks, the held pieces go out at once, then the error.
//!
//! What a piece is. Every piece but the last is the event's candidate with
//! only its text (and `thought`, index, role `model`), plus the response's
//! `modelVersion` and `responseId`; the last is the whole event with its text cut to the last
//! piece — finish reason, safety ratings, usage and everything else stay
//! there, once. Any other event (tool calls, images, thought signatures,
//! several candidates or parts, errors, comments) passes unchanged, and a
//! stream with an event larger than [`HOLD_LIMIT`] passes through as it is
//! from there on. Trailers (Gemini sends none) are dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, Incoming};
use serde_json::Value;
use tokio::time::{Instant, Sleep};

/// A piece holds at least this many characters (gemini-balance's chunk size).
pub const PIECE_CHARS: usize = 5;

/// Pieces of one event go out at least this far apart (60 per second).
pub const TICK: Duration = Duration::from_millis(16);

/// An incomplete event is held up to this size; past it the stream passes
/// through unsmoothed (a large image, not text).
pub const HOLD_LIMIT: usize = 256 * 1024;

/// How the upstream side of a smoothed stream stands.
enum End {
    /// Still open.
    Open,
    /// Ended (delivered once the held pieces are paced out).
    Ended,
    /// Broke; the error is delivered once the held pieces are out.
    Broke(hyper::Error),
    /// Ended and delivered.
    Done,
}

/// One smoothed stream's state: the bytes of an incomplete event, the
/// pieces still to send and their pace.
pub struct Smoother {
    /// `STREAM_SMOOTHING_MAX_DELAY`.
    bound: Duration,
    /// Bytes of an event not complete yet.
    held: BytesMut,
    /// How much of `held` has been searched for an event's end without
    /// finding one, so a large event arriving in many reads is scanned once.
    scanned: usize,
    /// Pieces not sent yet, each a whole SSE event.
    queue: VecDeque<Bytes>,
    /// Time between pieces of the event being sent.
    every: Duration,
    /// When the next piece is due: the event's arrival plus a multiple of
    /// `every`, so a late wake-up does not push the later pieces back.
    timer: Pin<Box<Sleep>>,
    /// When the previous event arrived (none yet: the first is spread over the bound).
    last: Option<Instant>,
    /// Passing through: an event was larger than [`HOLD_LIMIT`].
    through: bool,
    end: End,
}

impl Smoother {
    /// A smoother for a stream whose headers just arrived, adding at most
    /// `bound` to any text.
    pub fn new(bound: Duration) -> Smoother {
        let now = Instant::now();
        Smoother {
            bound,
            held: BytesMut::new(),
            scanned: 0,
            queue: VecDeque::new(),
            every: TICK,
            timer: Box::pin(tokio::time::sleep_until(now)),
            last: None,
            through: false,
            end: End::Open,
        }
    }

    /// The next frame of the smoothed stream read from `inner`: what
    /// upstream sent (re-cut), a piece that is due, or the end.
    pub fn poll(
        &mut self,
        mut inner: Pin<&mut Incoming>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            if let End::Open = self.end {
                match inner.as_mut().poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            let out = self.arrived(data);
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                        }
                        continue;
                    }
                    Poll::Ready(None) => self.end = End::Ended,
                    Poll::Ready(Some(Err(e))) => self.end = End::Broke(e),
                    Poll::Pending => {}
                }
            }
            let paced = matches!(self.end, End::Open | End::Ended) && !self.queue.is_empty();
            if !paced && !matches!(self.end, End::Open) {
                // Upstream is done (a clean end once its pieces are paced
                // out): whatever is held goes out now, then the end.
                let mut out = self.flush();
                out.extend_from_slice(&self.held.split());
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                }
                return Poll::Ready(match std::mem::replace(&mut self.end, End::Done) {
                    End::Broke(e) => Some(Err(e)),
                    _ => None,
                });
            }
            if !paced {
                return Poll::Pending;
            }
            ready!(self.timer.as_mut().poll(cx));
            let piece = self.queue.pop_front().unwrap_or_default();
            if !self.queue.is_empty() {
                let next = self.timer.deadline() + self.every;
                self.timer.as_mut().reset(next);
            }
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
    }

    /// Every piece still held, to go out now.
    fn flush(&mut self) -> BytesMut {
        let mut out = BytesMut::new();
        for piece in self.queue.drain(..) {
            out.extend_from_slice(&piece);
        }
        out
    }

    /// Take `data` from upstream: what goes out now (the held pieces, whole
    /// events, the first piece of the last event re-cut).
    fn arrived(&mut self, data: Bytes) -> Bytes {
        let mut out = self.flush();
        if self.through {
            out.extend_from_slice(&data);
            return out.freeze();
        }
        self.held.extend_from_slice(&data);
        while let Some(end) = event_end(&self.held, self.scanned) {
            self.scanned = 0;
            let event = self.held.split_to(end).freeze();
            out.extend_from_slice(&self.flush());
            let now = Instant::now();
            let since = self
                .last
                .map_or(self.bound, |l| now.saturating_duration_since(l));
            let window = since.min(self.bound);
            self.last = Some(now);
            match recut(&event, window) {
                Some((pieces, every)) => {
                    let mut pieces = pieces.into_iter();
                    out.extend_from_slice(&pieces.next().unwrap_or_default());
                    self.queue.extend(pieces);
                    self.every = every;
                    self.timer.as_mut().reset(now + every);
                }
                None => out.extend_from_slice(&event),
            }
        }
        self.scanned = self.held.len();
        if self.held.len() > HOLD_LIMIT {
            out.extend_from_slice(&self.held.split());
            self.through = true;
        }
        out.freeze()
    }
}

/// Where the first complete event of `buf` ends (after its blank line:
/// `\n\n`, or `\r\n\r\n` as Google frames them), looking at line ends
/// from `from` on (a line end only looks back, so one already searched
/// stays no end).
fn event_end(buf: &[u8], mut from: usize) -> Option<usize> {
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\n') {
        let i = from + i;
        match &buf[..i] {
            [.., b'\n'] | [.., b'\n', b'\r'] => return Some(i + 1),
            _ => from = i + 1,
        }
    }
    None
}

/// The pieces `event` (one SSE event, its blank line included) is sent as
/// within `window`, and the time between them; `None` when it is sent as
/// it is (not re-cut text, or too short or too soon to be worth cutting).
fn recut(event: &[u8], window: Duration) -> Option<(Vec<Bytes>, Duration)> {
    let text = std::str::from_utf8(event).ok()?;
    let json = text.strip_prefix("data:")?;
    let body = json.trim();
    if body.contains('\n') {
        return None; // several data lines: not Google's framing
    }
    let tail = &json[json.trim_end().len()..];
    let by_time = (window.as_nanos() / TICK.as_nanos()) as usize;
    if by_time < 2 {
        return None;
    }
    let ev: Value = serde_json::from_str(body).ok()?;
    let chars = text_of(&ev)?.chars().count();
    let n = by_time.min(chars / PIECE_CHARS);
    if n < 2 {
        return None;
    }
    let pieces = pieces(ev, n)?
        .into_iter()
        .map(|json| Bytes::from(format!("data: {json}{tail}")))
        .collect();
    let every = window / n as u32;
    Some((pieces, every))
}

/// The text of an event that can be re-cut: one candidate whose content is
/// one part holding only `text` (and `thought`).
fn text_of(ev: &Value) -> Option<&str> {
    let [cand] = ev.get("candidates")?.as_array()?.as_slice() else {
        return None;
    };
    let [part] = cand.get("content")?.get("parts")?.as_array()?.as_slice() else {
        return None;
    };
    let part = part.as_object()?;
    let plain = part.keys().all(|k| k == "text" || k == "thought");
    part.get("text")?.as_str().filter(|_| plain)
}

/// `ev` (see [`text_of`]) as `n` events whose texts, in order, make its
/// text: cut at character boundaries into nearly equal pieces.
fn pieces(mut ev: Value, n: usize) -> Option<Vec<String>> {
    let text = text_of(&ev)?.to_owned();
    let chars = text.chars().count();
    let mut bounds: Vec<usize> = Vec::with_capacity(n + 1);
    for (c, (i, _)) in text.char_indices().enumerate() {
        if c == bounds.len() * chars / n {
            bounds.push(i);
        }
    }
    bounds.push(text.len());
    // What every piece but the last repeats of the event.
    let cand = ev.pointer("/candidates/0")?;
    let thought = match cand.pointer("/content/parts/0/thought") {
        Some(t) => format!(",\"thought\":{t}"),
        None => String::new(),
    };
    let mut tail = match cand.get("index") {
        Some(i) => format!(",\"index\":{i}}}]"),
        None => "}]".to_string(),
    };
    for k in ["modelVersion", "responseId"] {
        if let Some(v) = ev.get(k) {
            tail.push_str(&format!(",\"{k}\":{v}"));
        }
    }
    let mut out = Vec::with_capacity(n);
    for w in bounds.windows(2) {
        let piece = Value::from(&text[w[0]..w[1]]);
        if w[1] < text.len() {
            out.push(format!(
                "{{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":{piece}{thought}}}],\"role\":\"model\"}}{tail}}}"
            ));
        } else {
            *ev.pointer_mut("/candidates/0/content/parts/0/text")? = piece;
            out.push(ev.to_string());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> String {
        let ev = serde_json::json!({
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 40, "totalTokenCount": 43},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"
        });
        format!("data: {ev}\r\n\r\n")
    }

    fn texts(pieces: &[Bytes]) -> Vec<Value> {
        pieces
            .iter()
            .map(|p| {
                let s = std::str::from_utf8(p).unwrap();
                assert!(s.starts_with("data: ") && s.ends_with("\r\n\r\n"), "{s:?}");
                serde_json::from_str(s[6..].trim()).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_large_text_event_is_cut_into_pieces_whose_text_is_the_whole() {
        let text = "天气很好。".repeat(20) + "The weather is fine — 🌤 done.";
        let (pieces, every) = recut(event(&text).as_bytes(), Duration::from_millis(400)).unwrap();
        let evs = texts(&pieces);
        // 400 ms / 16 ms = 25 pieces at most; 130 characters / 5 = 26.
        assert_eq!(evs.len(), 25);
        assert_eq!(every, Duration::from_millis(16));
        let joined: String = evs
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(joined, text);
        // Finish reason and usage once, on the last piece; ids on every one.
        for (i, e) in evs.iter().enumerate() {
            let last = i + 1 == evs.len();
            assert_eq!(e["candidates"][0].get("finishReason").is_some(), last);
            assert_eq!(e.get("usageMetadata").is_some(), last);
            assert_eq!(e["responseId"], "r1");
            assert_eq!(e["candidates"][0]["content"]["role"], "model");
            assert_eq!(e["candidates"][0]["index"], 0);
        }
    }

    #[test]
    fn the_pieces_fill_the_window_and_never_shrink_below_five_characters() {
        let text = "x".repeat(40);
        let (pieces, every) = recut(event(&text).as_bytes(), Duration::from_secs(1)).unwrap();
        assert_eq!(pieces.len(), 8);
        assert_eq!(every, Duration::from_millis(125));
    }

    #[test]
    fn short_soon_or_other_events_pass_unchanged() {
        let long = "word ".repeat(40);
        // Too soon after the one before: nothing to spread it over.
        assert!(recut(event(&long).as_bytes(), Duration::from_millis(20)).is_none());
        // Too short to cut.
        assert!(recut(event("Hi there").as_bytes(), Duration::from_secs(1)).is_none());
        let call = r#"data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]}}]}"#;
        assert!(recut(format!("{call}\r\n\r\n").as_bytes(), Duration::from_secs(1)).is_none());
        let signed = serde_json::json!({"candidates": [{"content": {"parts": [
            {"text": long, "thoughtSignature": "c2ln"}]}}]});
        let signed = format!("data: {signed}\n\n");
        assert!(recut(signed.as_bytes(), Duration::from_secs(1)).is_none());
        let two = serde_json::json!({"candidates": [{"content": {"parts": [
            {"text": long}, {"text": long}]}}]});
        assert!(
            recut(
                format!("data: {two}\n\n").as_bytes(),
                Duration::from_secs(1)
            )
            .is_none()
        );
        assert!(recut(b": comment\n\n", Duration::from_secs(1)).is_none());
        assert!(
            recut(
                b"data: {\"error\":{\"code\":500}}\n\n",
                Duration::from_secs(1)
            )
            .is_none()
        );
    }

    #[test]
    fn thoughts_are_cut_too_and_keep_their_flag() {
        let ev = serde_json::json!({"candidates": [{"content": {"parts": [
            {"text": "thinking ".repeat(10), "thought": true}]}}]});
        let (pieces, _) =
            recut(format!("data: {ev}\n\n").as_bytes(), Duration::from_secs(1)).unwrap();
        assert!(
            pieces
                .iter()
                .all(|p| p.ends_with(b"\n\n") && !p.ends_with(b"\r\n\r\n"))
        );
        let parsed: Vec<Value> = pieces
            .iter()
            .map(|p| serde_json::from_slice(&p[6..]).unwrap())
            .collect();
        assert!(parsed.len() > 2);
        for e in parsed {
            assert_eq!(e["candidates"][0]["content"]["parts"][0]["thought"], true);
        }
    }

    #[test]
    fn events_end_at_a_blank_line_in_either_framing() {
        assert_eq!(event_end(b"data: 1\r\n\r\ndata: 2", 0), Some(11));
        assert_eq!(event_end(b"data: 1\n\ndata: 2", 0), Some(9));
        assert_eq!(event_end(b"data: 1\r\n", 0), None);
        assert_eq!(event_end(b"data: 1\n", 0), None);
        assert_eq!(event_end(b"", 0), None);
        // Searching on from where an earlier search stopped still sees a
        // blank line whose first half was searched already.
        assert_eq!(event_end(b"data: 1\r\n\r\n", 10), Some(11));
        assert_eq!(event_end(b"data: 1\n\n", 8), Some(9));
    }

    #[tokio::test]
    async fn an_event_arriving_a_byte_at_a_time_goes_out_whole_once_complete() {
        let mut s = Smoother::new(Duration::from_secs(1));
        let two = format!("{}{}", event("Hi"), event("there"));
        let mut out = Vec::new();
        for (i, b) in two.bytes().enumerate() {
            let got = s.arrived(Bytes::from(vec![b]));
            if !got.is_empty() {
                out.push((i + 1, got));
            }
        }
        let first = event("Hi").len();
        assert_eq!(out.len(), 2, "one write per event: {out:?}");
        assert_eq!(out[0], (first, Bytes::from(event("Hi"))));
        assert_eq!(out[1], (two.len(), Bytes::from(event("there"))));
        assert!(s.held.is_empty() && s.scanned == 0);
    }
}
