//! Anthropic's `stop_sequences`, emulated: Gemini answers `finishReason:
//! STOP` both for a natural end and for a stop sequence (and strips the
//! sequence), so the gateway does not send them to Gemini; it matches them
//! in the visible text itself, cuts the text at the first match and ends
//! the message with `stop_reason: "stop_sequence"` and the sequence matched.
//!
//! Owns [`StopMatcher`]: text arrives in pieces (stream deltas); a sequence
//! may straddle two pieces, so the matcher holds back at most (longest
//! sequence − 1) characters of the text it has seen and gives them out when
//! the next piece shows they do not start a match (or when the text ends).
//! Pure.

/// Finds the first stop sequence in text that arrives in pieces.
#[derive(Debug)]
pub struct StopMatcher {
    /// The sequences (none empty).
    seqs: Vec<String>,
    /// Characters held back: the longest sequence's length − 1.
    hold: usize,
    /// Text seen and not given out yet (at most `hold` characters).
    held: String,
}

impl StopMatcher {
    /// A matcher for `seqs` (empty strings ignored); `None` when there is
    /// nothing to match.
    pub fn new<S: AsRef<str>>(seqs: &[S]) -> Option<Self> {
        let seqs: Vec<String> = seqs
            .iter()
            .map(|s| s.as_ref().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let longest = seqs.iter().map(|s| s.chars().count()).max()?;
        Some(StopMatcher {
            seqs,
            hold: longest - 1,
            held: String::new(),
        })
    }

    /// The next piece of text: the text that can be given out now, and the
    /// sequence matched, if one was (the text given out is then everything
    /// before it, and the rest of the answer is to be dropped).
    pub fn push(&mut self, piece: &str) -> (String, Option<String>) {
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(piece);
        // The sequence that completes first (the earliest end; at the same
        // end, the longer one), as generation would have stopped there.
        let found = self
            .seqs
            .iter()
            .filter_map(|s| buf.find(s.as_str()).map(|at| (at + s.len(), at, s)))
            .min_by_key(|&(end, at, _)| (end, at));
        if let Some((_, at, s)) = found {
            let s = s.clone();
            buf.truncate(at);
            return (buf, Some(s));
        }
        let keep_from = buf
            .char_indices()
            .rev()
            .nth(self.hold.saturating_sub(1))
            .map_or(0, |(i, _)| i);
        let keep_from = if self.hold == 0 { buf.len() } else { keep_from };
        self.held = buf.split_off(keep_from);
        (buf, None)
    }

    /// The text held back, given out at the end of the text (or before a
    /// non-text part, which a sequence cannot straddle).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The stop sequences of a Messages request (its `stop_sequences`, which
/// the request translator has checked).
pub fn sequences(req: &serde_json::Value) -> Vec<String> {
    req.get("stop_sequences")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `pieces`; (all text given out, the match).
    fn run(seqs: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let mut m = StopMatcher::new(seqs).unwrap();
        let mut out = String::new();
        for p in pieces {
            let (t, hit) = m.push(p);
            out.push_str(&t);
            if hit.is_some() {
                return (out, hit);
            }
        }
        out.push_str(&m.flush());
        (out, None)
    }

    #[test]
    fn a_sequence_within_one_piece_cuts_the_text() {
        assert_eq!(
            run(&["END"], &["one two END three"]),
            ("one two ".into(), Some("END".into()))
        );
    }

    #[test]
    fn a_sequence_split_across_pieces_is_found() {
        assert_eq!(
            run(&["STOP"], &["abc ST", "OP def"]),
            ("abc ".into(), Some("STOP".into()))
        );
        assert_eq!(
            run(&["xyz"], &["a x", "y", "z b"]),
            ("a ".into(), Some("xyz".into()))
        );
    }

    #[test]
    fn at_most_longest_minus_one_chars_are_held() {
        let mut m = StopMatcher::new(&["abcd", "é"]).unwrap();
        assert_eq!(m.push("hello wörld").0, "hello wö");
        assert_eq!(m.flush(), "rld");
        let mut one = StopMatcher::new(&["x"]).unwrap();
        assert_eq!(one.push("abc"), ("abc".into(), None));
        assert_eq!(one.flush(), "");
    }

    #[test]
    fn no_match_gives_all_text_back() {
        assert_eq!(
            run(&["never", "nope"], &["a ne", "ver", "mind no", "pe"]).1,
            Some("never".into())
        );
        assert_eq!(
            run(&["zzz"], &["a ne", "ver", "mind"]),
            ("a nevermind".into(), None)
        );
    }

    #[test]
    fn the_sequence_completed_first_wins_and_empties_are_ignored() {
        assert_eq!(
            run(&["abc", "b"], &["xabc"]),
            ("xa".into(), Some("b".into()))
        );
        assert_eq!(
            run(&["bc", "abc"], &["xabc"]),
            ("x".into(), Some("abc".into()))
        );
        assert!(StopMatcher::new(&[""]).is_none());
        assert!(StopMatcher::new::<&str>(&[]).is_none());
    }
}
