//! `[[k=v ...]]` directives in the last user text, which drive the answer:
//! `status`, `events`/`gap`, `first`, `words`, `per`, `block`, `empty`, `finish`,
//! `image`, `call`, `calls`, `nocall`; and the
//! lorem-ipsum words of generated texts.

// ---------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------

#[derive(Default)]
pub(crate) struct Directives {
    pub(crate) status: Option<u16>,
    pub(crate) events: Option<usize>,
    pub(crate) gap_ms: u64,
    pub(crate) words: Option<usize>,
    /// `per=N`: N words in each stream event (else one with `events`, four without).
    pub(crate) per: Option<usize>,
    pub(crate) block: bool,
    pub(crate) finish: Option<String>,
    pub(crate) image: bool,
    /// Call this declared function (instead of the first allowed one).
    pub(crate) call: Option<String>,
    /// `calls=N`: call the first N allowed declared functions in one turn
    /// (parallel calls; only the first carries a thought signature).
    pub(crate) calls: Option<usize>,
    /// Answer with text even when functions are declared.
    pub(crate) nocall: bool,
    /// `first=MS`: silence before the first event (non-stream: before the headers).
    pub(crate) first_ms: u64,
    /// `empty`: a 200 whose candidate holds no content.
    pub(crate) empty: bool,
}

pub(crate) const MAX_WORDS: usize = 200_000;

/// Parse `[[k=v ...]]` directives; recognised ones are removed from the text.
pub(crate) fn parse_directives(text: &str) -> (Directives, String) {
    let mut d = Directives::default();
    if !text.contains("[[") {
        return (d, text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("]]") else {
            break;
        };
        let inner = &after[..end];
        if apply_directive(&mut d, inner) {
            out.push_str(&rest[..start]);
        } else {
            out.push_str(&rest[..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    (d, out)
}

pub(crate) fn apply_directive(d: &mut Directives, inner: &str) -> bool {
    let toks: Vec<&str> = inner.split_whitespace().collect();
    if toks.is_empty() {
        return false;
    }
    let mut next = Directives {
        gap_ms: d.gap_ms,
        ..Directives::default()
    };
    for t in &toks {
        let (k, v) = t.split_once('=').unwrap_or((t, ""));
        match k {
            "status" => match v.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => next.status = Some(c),
                _ => return false,
            },
            "events" => match v.parse::<usize>() {
                Ok(n) => next.events = Some(n.min(MAX_WORDS)),
                _ => return false,
            },
            "gap" => match v.parse::<u64>() {
                Ok(n) => next.gap_ms = n.min(600_000),
                _ => return false,
            },
            "words" => match v.parse::<usize>() {
                Ok(n) => next.words = Some(n.min(MAX_WORDS)),
                _ => return false,
            },
            "per" => match v.parse::<usize>() {
                Ok(n) if n >= 1 => next.per = Some(n.min(MAX_WORDS)),
                _ => return false,
            },
            "block" if v.is_empty() => next.block = true,
            "empty" if v.is_empty() => next.empty = true,
            "first" => match v.parse::<u64>() {
                Ok(n) => next.first_ms = n.min(3_600_000),
                _ => return false,
            },
            "image" if v.is_empty() => next.image = true,
            "nocall" if v.is_empty() => next.nocall = true,
            "calls" => match v.parse::<usize>() {
                Ok(n) if (1..=16).contains(&n) => next.calls = Some(n),
                _ => return false,
            },
            "call"
                if !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                next.call = Some(v.to_string())
            }
            "finish"
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                next.finish = Some(v.to_ascii_uppercase())
            }
            _ => return false,
        }
    }
    d.status = next.status.or(d.status);
    d.events = next.events.or(d.events);
    d.gap_ms = next.gap_ms;
    d.words = next.words.or(d.words);
    d.per = next.per.or(d.per);
    d.block |= next.block;
    d.empty |= next.empty;
    d.first_ms = d.first_ms.max(next.first_ms);
    d.image |= next.image;
    d.nocall |= next.nocall;
    d.call = next.call.or(d.call.take());
    d.calls = next.calls.or(d.calls);
    d.finish = next.finish.or(d.finish.take());
    true
}

pub(crate) const LOREM: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

pub(crate) fn lorem(n: usize) -> String {
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(LOREM[i % LOREM.len()]);
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[tokio::test]
    async fn directives() {
        let fake = Fake::start().await.unwrap();
        let r = post(&fake, GEN, "k", &user("x [[status=503]]")).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error"]["status"], "UNAVAILABLE");
        let r = post(&fake, GEN, "k", &user("[[status=429]]")).await;
        assert_eq!(r.status, 429);
        assert!(r.text().contains("RetryInfo"));
        let r = post(&fake, SSE, "k", &user("[[status=400]]")).await;
        assert_eq!(r.status, 400);
        let b = post(&fake, GEN, "k", &user("bad stuff [[block]]"))
            .await
            .json();
        assert!(b.get("candidates").is_none());
        assert_eq!(b["promptFeedback"]["blockReason"], "SAFETY");
        let ev = sse_events(&post(&fake, SSE, "k", &user("[[block]]")).await);
        assert_eq!(ev.len(), 1);
        let f = post(&fake, GEN, "k", &user("hi [[finish=MAX_TOKENS]]"))
            .await
            .json();
        assert_eq!(f["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(text_of(&f, 0), "Echo: hi");
        let i = post(&fake, GEN, "k", &user("draw [[image]]")).await.json();
        assert_eq!(
            i["candidates"][0]["content"]["parts"][1]["inlineData"]["mimeType"],
            "image/png"
        );
        let w = post(&fake, GEN, "k", &user("[[words=25]]")).await.json();
        assert_eq!(text_of(&w, 0).split_whitespace().count(), 25);
        assert_eq!(w["usageMetadata"]["candidatesTokenCount"], 25);
        let start = std::time::Instant::now();
        let r = post(&fake, SSE, "k", &user("[[events=5 gap=30]]")).await;
        assert!(start.elapsed() >= Duration::from_millis(110));
        let ev = sse_events(&r);
        assert_eq!(ev.len(), 5);
        assert_eq!(ev[4]["usageMetadata"]["candidatesTokenCount"], 5);
        let r = post(&fake, SSE, "k", &user("[[words=10 per=4]]")).await;
        let words: Vec<usize> = sse_events(&r)
            .iter()
            .map(|e| text_of(e, 0).split_whitespace().count())
            .collect();
        assert_eq!(words, [4, 4, 2]);
        let n = post(&fake, GEN, "k", &user("[[events=7]]")).await.json();
        assert_eq!(text_of(&n, 0).split_whitespace().count(), 7);
        // Unknown directive stays in the echo.
        let u = post(&fake, GEN, "k", &user("keep [[nope]]")).await.json();
        assert_eq!(text_of(&u, 0), "Echo: keep [[nope]]");
    }
}
