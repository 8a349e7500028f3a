//! Splitting Gemini's `alt=sse` byte stream into event payloads
//! ([`SseParser`]), whatever the chunking and line endings, with a
//! per-event size bound.

use std::fmt;

/// Incremental SSE parser for Gemini's `alt=sse` stream.
///
/// Accepts bytes in any split (even one byte at a time). Lines end with
/// `\r\n`, `\n` or a lone `\r` (mixed freely); a blank line ends an event.
/// The `data:` lines of one event (with or without the space after the
/// colon) are joined by `\n`; comments and other fields are ignored. As a
/// leniency, bare JSON lines (an event whose first non-field line starts
/// with `{` or `[`, as google-genai also accepts for error bodies) are passed
/// on as a payload when the event has no `data:` line.
///
/// Bounded: when the raw lines of one event exceed `max_event` bytes,
/// [`push`](Self::push) returns an error (and keeps doing so).
#[derive(Debug)]
pub struct SseParser {
    max_event: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    bare: Vec<u8>,
    event_bytes: usize,
    after_cr: bool,
    failed: bool,
}

/// An SSE stream the parser refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseError {
    /// One event was larger than the configured limit (bytes).
    EventTooLarge {
        /// The limit given to [`SseParser::new`].
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "upstream stream event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

impl SseParser {
    /// A parser refusing events whose lines exceed `max_event` bytes in total.
    pub fn new(max_event: usize) -> Self {
        SseParser {
            max_event,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            bare: Vec::new(),
            event_bytes: 0,
            after_cr: false,
            failed: false,
        }
    }

    /// Feed bytes; complete event payloads (the data text) are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.error());
        }
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    rest = tail;
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(p) => {
                    let (line, term) = rest.split_at(p);
                    self.take(line)?;
                    self.after_cr = term.first() == Some(&b'\r');
                    rest = term.get(1..).unwrap_or(&[]);
                    self.end_line(out);
                }
                None => {
                    self.take(rest)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// End of body: a final event without trailing blank line is returned.
    pub fn finish(&mut self) -> Option<String> {
        if self.failed {
            return None;
        }
        if !self.line.is_empty() {
            self.field_line();
        }
        self.after_cr = false;
        self.event_bytes = 0;
        self.dispatch()
    }

    fn error(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event,
        }
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        self.event_bytes = self.event_bytes.saturating_add(bytes.len());
        if self.event_bytes > self.max_event {
            self.failed = true;
            self.line = Vec::new();
            self.data = Vec::new();
            self.bare = Vec::new();
            return Err(self.error());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        if self.line.is_empty() {
            self.event_bytes = 0;
            if let Some(p) = self.dispatch() {
                out.push(p);
            }
        } else {
            self.field_line();
        }
    }

    /// Interpret the (non-empty) current line, then clear it.
    fn field_line(&mut self) {
        let line = self.line.as_slice();
        let value = if let Some(v) = line.strip_prefix(b"data:") {
            Some(v.strip_prefix(b" ").unwrap_or(v))
        } else if line == b"data" {
            Some(&[][..])
        } else {
            None
        };
        if let Some(v) = value {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(v);
            self.has_data = true;
        } else if !self.bare.is_empty() || matches!(line.first(), Some(b'{' | b'[')) {
            if !self.bare.is_empty() {
                self.bare.push(b'\n');
            }
            self.bare.extend_from_slice(line);
        }
        self.line.clear();
    }

    /// The payload of the event just ended, if it had one; resets the event.
    fn dispatch(&mut self) -> Option<String> {
        let bytes = if self.has_data {
            self.bare.clear();
            std::mem::take(&mut self.data)
        } else if !self.bare.is_empty() {
            std::mem::take(&mut self.bare)
        } else {
            return None;
        };
        self.has_data = false;
        Some(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }
}
