//! Small codecs: query strings and percent-decoding, base64 (page tokens,
//! thought signatures, response ids, `/openai` embeddings), the FNV-1a and
//! SplitMix64 hashes behind the deterministic answers, and the gzip framing
//! of answers for clients that send `Accept-Encoding: gzip`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::Response;
use http::header::HeaderValue;

use crate::body::FakeBody;

/// `a=1&b=x+y` → `[("a", "1"), ("b", "x y")]`, percent-decoded.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k, true), pct_decode(v, true))
        })
        .collect()
}

/// Decode `%XX` escapes (invalid ones are kept as they are), and `+` as a
/// space when `plus_space` (query strings); lossy on invalid UTF-8.
pub(crate) fn pct_decode(s: &str, plus_space: bool) -> String {
    let s: Cow<'_, str> = if plus_space && s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Standard base64 with padding.
pub(crate) fn b64_std(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// URL-safe base64 without padding (Gemini's `responseId` style).
pub(crate) fn b64_url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decode standard or URL-safe base64, padding optional.
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let s: Cow<'_, str> = if s.contains(['-', '_']) {
        Cow::Owned(s.replace('-', "+").replace('_', "/"))
    } else {
        Cow::Borrowed(s)
    };
    ANY_PADDING.decode(s.as_bytes()).ok()
}

/// 64-bit FNV-1a of `data`.
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One SplitMix64 step: a well-mixed 64-bit value from `x`.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether an `Accept-Encoding` value accepts gzip (`gzip` or `x-gzip`, q > 0).
pub(crate) fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|item| {
        let mut it = item.split(';');
        let coding = it.next().unwrap_or("").trim();
        let zero_q = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")) && !zero_q
    })
}

/// A streaming gzip encoder (flate2): each [`chunk`] is compressed and
/// sync-flushed, so its bytes can be sent at once and a client decodes
/// everything sent so far; [`finish`] writes the final block and the trailer.
///
/// [`chunk`]: GzipEncoder::chunk
/// [`finish`]: GzipEncoder::finish
pub(crate) struct GzipEncoder(GzEncoder<Vec<u8>>);

impl GzipEncoder {
    /// A fresh encoder (the gzip header goes out with the first piece).
    pub(crate) fn new() -> GzipEncoder {
        GzipEncoder(GzEncoder::new(Vec::new(), Compression::fast()))
    }

    /// Encode one piece of the body. (Writing to a `Vec` cannot fail.)
    pub(crate) fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let _ = self.0.write_all(data);
        let _ = self.0.flush();
        std::mem::take(self.0.get_mut())
    }

    /// The end of the stream: the final block, CRC-32 and size. Call once.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let _ = self.0.try_finish();
        std::mem::take(self.0.get_mut())
    }
}

/// Re-frame a response body as a gzip stream: every chunk becomes its own
/// sync-flushed piece, so a streamed answer is still streamed chunk by
/// chunk; a body that ends in a cut gets no gzip trailer.
pub(crate) fn gzip_response(mut res: Response<FakeBody>) -> Response<FakeBody> {
    let body = res.body_mut();
    let mut enc = GzipEncoder::new();
    let n = body.chunks.len();
    let mut out = VecDeque::with_capacity(n.max(1));
    for c in body.chunks.drain(..) {
        out.push_back(Bytes::from(enc.chunk(&c)));
    }
    if !body.fail_at_end {
        let end = enc.finish();
        match out.back_mut() {
            Some(last) => {
                let mut b = Vec::from(std::mem::take(last));
                b.extend(end);
                *last = Bytes::from(b);
            }
            None => out.push_back(Bytes::from(end)),
        }
    }
    body.chunks = out;
    res.headers_mut().insert(
        http::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[tokio::test]
    async fn gzip_when_accepted() {
        let fake = Fake::start().await.unwrap();
        let gz = [
            ("x-goog-api-key", "k"),
            ("accept-encoding", "gzip, deflate"),
        ];
        let plain = send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-pro",
            &[("x-goog-api-key", "k")],
            "",
        )
        .await;
        let zipped = send(fake.addr, "GET", "/v1beta/models/gemini-2.5-pro", &gz, "").await;
        assert!(plain.headers.get("content-encoding").is_none());
        assert_eq!(zipped.headers["content-encoding"], "gzip");
        assert_eq!(gunzip(&zipped.body), plain.body);
        let err = send(fake.addr, "GET", "/v1beta/models/nope-model", &gz, "").await;
        assert_eq!(err.status, 404);
        let e: Value = serde_json::from_slice(&gunzip(&err.body)).unwrap();
        assert_eq!(e["error"]["status"], "NOT_FOUND");
        let no = send(
            fake.addr,
            "GET",
            "/v1beta/models/gemini-2.5-pro",
            &[("x-goog-api-key", "k"), ("accept-encoding", "gzip;q=0, br")],
            "",
        )
        .await;
        assert!(no.headers.get("content-encoding").is_none());
        let control = send(
            fake.addr,
            "GET",
            "/__fake/count/k",
            &[("accept-encoding", "gzip")],
            "",
        )
        .await;
        assert!(control.headers.get("content-encoding").is_none());
        // A streamed answer: one gzip piece per event, the trailer with the last.
        let body = json!({"contents": [{"parts": [{"text": "[[events=3]] x"}]}]}).to_string();
        let s = send(
            fake.addr,
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &gz,
            &body,
        )
        .await;
        let text = String::from_utf8(gunzip(&s.body)).unwrap();
        assert_eq!(text.matches("data: ").count(), 3);
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn accept_encoding_values() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("gzip, deflate, br, zstd"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("deflate, br"));
    }

    #[test]
    fn gzip_pieces_stream_and_round_trip() {
        let text = b"{\"hello\": \"gzip\"}\n".repeat(5000); // > 64 KiB
        let mut e = GzipEncoder::new();
        let mut whole = e.chunk(&text);
        whole.extend(e.finish());
        assert_eq!(&whole[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(gunzip(&whole), text);
        // Each piece decodes at once: a client sees every event when it arrives.
        let events: [&[u8]; 3] = [b"data: one\r\n\r\n", b"", b"data: two\r\n\r\n"];
        let mut e = GzipEncoder::new();
        let mut sent = Vec::new();
        let mut want = Vec::new();
        for ev in events {
            sent.extend(e.chunk(ev));
            want.extend_from_slice(ev);
            assert_eq!(gunzip_so_far(&sent), want);
        }
        sent.extend(e.finish());
        assert_eq!(gunzip(&sent), b"data: one\r\n\r\ndata: two\r\n\r\n");
        assert_eq!(gunzip(&GzipEncoder::new().finish()), b"");
    }

    #[test]
    fn query_and_base64_helpers() {
        assert_eq!(
            parse_query("a=1&&b=x+y%2B&c"),
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y+".into()),
                ("c".into(), String::new())
            ]
        );
        assert_eq!(pct_decode("models%2Fx+y", false), "models/x+y");
        assert_eq!(pct_decode("%4", true), "%4");
        assert_eq!(b64_decode("c2lnOmY"), Some(b"sig:f".to_vec()));
        assert_eq!(b64_decode("-_8"), b64_decode("+/8="));
        assert_eq!(b64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64_decode("!!"), None);
    }
}
