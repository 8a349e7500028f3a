//! Masking secrets in what the gateway sends back: the pool key of the call
//! and anything shaped like a Google API key, in bodies ([`redact`]), in
//! streams chunk by chunk ([`Redactor`]) and in headers ([`redact_headers`]).

use bytes::Bytes;
use http::{HeaderMap, HeaderName};

/// `body` with every secret masked: the exact `key` (as [`crate::keys::mask`]
/// shows it) and anything shaped like a Google API key (`AIza` + 35 chars →
/// `AIza…` + its last 4). The one-shot form of [`Redactor`].
pub fn redact(body: Bytes, key: &str) -> Bytes {
    let r = Redactor::new(key);
    if !r.hit(&body) {
        return body;
    }
    let (out, _) = r.scan(&body, true);
    Bytes::from(out)
}

/// Length of a Google API key: `AIza` + 35 chars of `[0-9A-Za-z_-]`.
const GOOGLE_KEY_LEN: usize = 39;
/// How every Google API key starts.
const GOOGLE_KEY_PREFIX: &[u8] = b"AIza";

/// Finds `AIza` (shared, built once).
static GOOGLE_KEY_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(GOOGLE_KEY_PREFIX));

fn key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Masks secrets in the bytes the gateway sends back, chunk by chunk: the
/// exact pool key of the call and anything shaped like a Google API key. A
/// secret split across two chunks is still caught: when a chunk *ends* in
/// what could be the start of one, those bytes (at most `len(key) - 1`, or
/// 38) are held back until the next chunk or [`Redactor::finish`]; any other
/// chunk — an SSE event ends in a blank line — goes out whole and at once,
/// unchanged and uncopied unless it holds a secret ([`Redactor::push_from`]
/// copies a pump's event once, into a block successive chunks share).
pub struct Redactor {
    /// The exact key (empty when shorter than 6 bytes: too short to search for).
    key: Vec<u8>,
    finder: Option<memchr::memmem::Finder<'static>>,
    held: Vec<u8>,
    /// Where the chunks of [`Redactor::push_from`] are made: one block that
    /// successive chunks share.
    stage: bytes::BytesMut,
}

/// How much room [`Redactor::push_from`] takes at a time (some 16 events).
const STAGE: usize = 4096;

impl Redactor {
    /// A redactor for the call made with `key`.
    pub fn new(key: &str) -> Redactor {
        let usable = key.len() >= 6;
        Redactor {
            key: if usable {
                key.as_bytes().to_vec()
            } else {
                Vec::new()
            },
            finder: usable.then(|| memchr::memmem::Finder::new(key.as_bytes()).into_owned()),
            held: Vec::new(),
            stage: bytes::BytesMut::new(),
        }
    }

    /// [`Redactor::push`] of the bytes in `out`, which is left empty with its
    /// room kept for the next event. They are copied into a block that
    /// successive chunks share, taken anew only when full (and reused in
    /// place once the chunks in it have gone out): an allocation per several
    /// events, not one per event (freed by the connection's task, often on
    /// another thread, each was glibc's slow path).
    pub fn push_from(&mut self, out: &mut Vec<u8>) -> Bytes {
        if self.stage.capacity() < out.len() {
            self.stage.reserve(out.len().max(STAGE));
        }
        self.stage.extend_from_slice(out);
        out.clear();
        let chunk = self.stage.split().freeze();
        self.push(chunk)
    }

    /// What of `chunk` can go out now (possibly empty, possibly with bytes
    /// held back from the chunk before).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.held.is_empty() && !self.hit(&chunk) && self.hold_from(&chunk).is_none() {
            return chunk;
        }
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(&chunk);
        let (out, held) = self.scan(&data, false);
        self.held = held;
        Bytes::from(out)
    }

    /// The bytes still held back (never a whole secret), at the end of the body.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }

    /// Whether `data` may hold a whole secret (the exact key, or `AIza`).
    fn hit(&self, data: &[u8]) -> bool {
        self.finder.as_ref().is_some_and(|f| f.find(data).is_some())
            || GOOGLE_KEY_FINDER.find(data).is_some()
    }

    /// The first byte a secret could start at (the exact key or `AIza`).
    fn first_byte(&self) -> u8 {
        self.key.first().copied().unwrap_or(GOOGLE_KEY_PREFIX[0])
    }

    /// Whether `rest` (which runs to the end of the data) could be the start
    /// of a secret that the next chunk completes.
    fn partial(&self, rest: &[u8]) -> bool {
        if !self.key.is_empty() && rest.len() < self.key.len() && self.key.starts_with(rest) {
            return true;
        }
        if rest.len() >= GOOGLE_KEY_LEN {
            return false;
        }
        if rest.len() <= GOOGLE_KEY_PREFIX.len() {
            return GOOGLE_KEY_PREFIX.starts_with(rest);
        }
        rest.starts_with(GOOGLE_KEY_PREFIX)
            && rest[GOOGLE_KEY_PREFIX.len()..].iter().all(|b| key_char(*b))
    }

    /// Where a possible secret starts in the tail of `data`, if one does.
    fn hold_from(&self, data: &[u8]) -> Option<usize> {
        let window = self.key.len().max(GOOGLE_KEY_LEN).saturating_sub(1);
        let start = data.len().saturating_sub(window);
        memchr::memchr2_iter(self.first_byte(), GOOGLE_KEY_PREFIX[0], &data[start..])
            .map(|off| start + off)
            .find(|&p| self.partial(&data[p..]))
    }

    /// Mask every secret in `data`; unless `last`, also split off a tail
    /// that could be the start of one. Returns (bytes to send, bytes held).
    fn scan(&self, data: &[u8], last: bool) -> (Vec<u8>, Vec<u8>) {
        let mut out = Vec::with_capacity(data.len());
        let (mut copied, mut i) = (0, 0);
        let k = &self.key;
        // The masked key, made on the first match.
        let mut masked: Option<String> = None;
        while let Some(off) = memchr::memchr2(self.first_byte(), GOOGLE_KEY_PREFIX[0], &data[i..]) {
            let p = i + off;
            let rest = &data[p..];
            if !k.is_empty() && rest.starts_with(k) {
                out.extend_from_slice(&data[copied..p]);
                let m =
                    masked.get_or_insert_with(|| crate::keys::mask(&String::from_utf8_lossy(k)));
                out.extend_from_slice(m.as_bytes());
                i = p + k.len();
                copied = i;
            } else if rest.len() >= GOOGLE_KEY_LEN
                && rest.starts_with(GOOGLE_KEY_PREFIX)
                && rest[GOOGLE_KEY_PREFIX.len()..GOOGLE_KEY_LEN]
                    .iter()
                    .all(|b| key_char(*b))
            {
                out.extend_from_slice(&data[copied..p]);
                out.extend_from_slice("AIza…".as_bytes());
                out.extend_from_slice(&rest[GOOGLE_KEY_LEN - 4..GOOGLE_KEY_LEN]);
                i = p + GOOGLE_KEY_LEN;
                copied = i;
            } else if !last && self.partial(rest) {
                out.extend_from_slice(&data[copied..p]);
                return (out, rest.to_vec());
            } else {
                i = p + 1;
            }
        }
        out.extend_from_slice(&data[copied..]);
        (out, Vec::new())
    }
}

/// Drop every header whose value contains `key` or a Google API key.
pub fn redact_headers(headers: &mut HeaderMap, key: &str) {
    let k = key.as_bytes();
    let k = if k.len() >= 6 { k } else { &[][..] };
    let first = k.first().copied().unwrap_or(GOOGLE_KEY_PREFIX[0]);
    // Only where the key's or `AIza`'s first byte occurs (one memchr pass).
    let leaks = |v: &[u8]| {
        memchr::memchr2_iter(first, GOOGLE_KEY_PREFIX[0], v).any(|p| {
            let rest = &v[p..];
            (!k.is_empty() && rest.starts_with(k))
                || (rest.len() >= GOOGLE_KEY_LEN
                    && rest.starts_with(GOOGLE_KEY_PREFIX)
                    && rest[GOOGLE_KEY_PREFIX.len()..GOOGLE_KEY_LEN]
                        .iter()
                        .all(|b| key_char(*b)))
        })
    };
    if !headers.values().any(|v| leaks(v.as_bytes())) {
        return;
    }
    let leaking: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| leaks(v.as_bytes()))
        .map(|(n, _)| n.clone())
        .collect();
    for n in leaking {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Built from pieces so that no key-shaped string sits in the source.
    fn google_key() -> String {
        format!("{}{}", "AIza", "SyA1234567890abcdefghijklmnopqrs_-9")
    }

    /// Feed `data` to a redactor cut at every position in `cuts`.
    fn streamed(key: &str, data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut r = Redactor::new(key);
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            let c = c.clamp(at, data.len());
            out.extend_from_slice(&r.push(Bytes::copy_from_slice(&data[at..c])));
            at = c;
        }
        out.extend_from_slice(&r.finish());
        out
    }

    #[test]
    fn redacts_the_key_and_google_keys_however_the_bytes_are_cut() {
        let pool_key = "pool-key-secret-0001";
        let g = google_key();
        let text =
            format!("data: {{\"text\": \"a {pool_key} b {g} c AIzaShort A AI pool-key\"}}\r\n\r\n");
        let whole = redact(Bytes::from(text.clone()), pool_key);
        let whole = String::from_utf8(whole.to_vec()).unwrap();
        assert!(!whole.contains(pool_key) && !whole.contains(&g), "{whole}");
        assert!(whole.contains(&crate::keys::mask(pool_key)), "{whole}");
        assert!(whole.contains("AIza…s_-9"), "{whole}");
        assert!(whole.contains("AIzaShort A AI pool-key"), "{whole}");
        let b = text.as_bytes();
        for i in 0..b.len() {
            for j in [i, i + 1, i + 7, i + 20] {
                let out = streamed(pool_key, b, &[i, j]);
                assert_eq!(String::from_utf8(out).unwrap(), whole, "cut at {i},{j}");
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..b.len()).collect();
        assert_eq!(
            String::from_utf8(streamed(pool_key, b, &cuts)).unwrap(),
            whole
        );
    }

    #[test]
    fn holds_back_only_a_possible_key_start() {
        let mut r = Redactor::new("pool-key-secret-0001");
        let event = Bytes::from_static(b"data: {\"text\": \"hi\"}\r\n\r\n");
        let out = r.push(event.clone());
        assert_eq!(out, event);
        assert_eq!(out.as_ptr(), event.as_ptr(), "passed on without a copy");
        assert_eq!(&r.push(Bytes::from_static(b"x pool-k"))[..], b"x ");
        assert_eq!(&r.push(Bytes::from_static(b"ettle"))[..], b"pool-kettle");
        assert_eq!(&r.push(Bytes::from_static(b"y AI"))[..], b"y ");
        assert_eq!(&r.finish()[..], b"AI");
        // A short key is not searched for (it would mask ordinary text).
        let r = Redactor::new("abc");
        assert!(r.key.is_empty());
        assert_eq!(&redact(Bytes::from_static(b"abc"), "abc")[..], b"abc");
    }

    #[test]
    fn chunks_taken_from_a_buffer_share_one_block_and_are_still_redacted() {
        let mut r = Redactor::new("pool-key-secret-0001");
        let mut out = Vec::with_capacity(64);
        let mut chunks = Vec::new();
        for i in 0..40 {
            out.extend_from_slice(format!("data: {{\"n\": {i}}}\r\n\r\n").as_bytes());
            chunks.push(r.push_from(&mut out));
            assert!(out.is_empty() && out.capacity() >= 64, "the buffer is kept");
        }
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(&c[..], format!("data: {{\"n\": {i}}}\r\n\r\n").as_bytes());
        }
        // Successive chunks lie side by side in one block (no allocation each).
        let next = chunks[1].as_ptr() as usize;
        assert_eq!(chunks[0].as_ptr() as usize + chunks[0].len(), next);
        out.extend_from_slice(b"x pool-k");
        assert_eq!(&r.push_from(&mut out)[..], b"x ");
        out.extend_from_slice(b"ey-secret-0001 y");
        let masked = r.push_from(&mut out);
        assert_eq!(
            masked,
            format!("{} y", crate::keys::mask("pool-key-secret-0001"))
        );
    }

    #[test]
    fn drops_headers_that_carry_a_key() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("pool-key-secret-0001"));
        h.insert("x-b", HeaderValue::from_str(&google_key()).unwrap());
        h.insert("x-c", HeaderValue::from_static("fine"));
        redact_headers(&mut h, "pool-key-secret-0001");
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-c"));
    }
}
