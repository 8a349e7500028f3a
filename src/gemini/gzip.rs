//! Just enough gzip (RFC 1952) for a pass-through gateway, without a crate:
//! a streaming *encoder* that writes stored (uncompressed) deflate blocks —
//! a valid gzip stream that every client decodes, used by the fake upstream —
//! and a bounded *decoder* (full inflate, RFC 1951) so the gateway can read
//! an upstream error body or model list that Google sent gzip-encoded.

use http::{HeaderMap, header};

/// CRC-32 (IEEE 802.3, reflected, as gzip uses) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continue a CRC-32 over `data` (start with 0).
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for b in data {
        c = CRC_TABLE[((c ^ *b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// The fixed 10-byte gzip member header (deflate, no name, unknown OS).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A streaming gzip encoder using stored deflate blocks: each [`chunk`]
/// becomes bytes that can be sent at once, so a streamed answer stays
/// streamed; [`finish`] writes the final block and the trailer.
///
/// [`chunk`]: GzipEncoder::chunk
/// [`finish`]: GzipEncoder::finish
#[derive(Debug, Default)]
pub struct GzipEncoder {
    crc: u32,
    size: u32,
    started: bool,
}

impl GzipEncoder {
    /// A fresh encoder.
    pub fn new() -> GzipEncoder {
        GzipEncoder::default()
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.extend_from_slice(&HEADER);
        }
    }

    /// Encode one piece of the body (non-final stored blocks).
    pub fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 16 + 5 * (data.len() / 65535 + 1));
        self.header(&mut out);
        for block in data.chunks(65535) {
            let len = block.len() as u16;
            out.push(0); // BFINAL = 0, BTYPE = 00 (stored)
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        self.crc = crc32(self.crc, data);
        self.size = self.size.wrapping_add(data.len() as u32);
        out
    }

    /// The end of the stream: an empty final stored block, CRC-32 and size.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(23);
        self.header(&mut out);
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out
    }
}

/// gzip-encode a whole body in one go.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut e = GzipEncoder::new();
    let mut out = e.chunk(data);
    out.extend(e.finish());
    out
}

/// Whether an `Accept-Encoding` value accepts gzip (`gzip` or `x-gzip`, q > 0).
pub fn accepts_gzip(value: &str) -> bool {
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

/// If `headers` say the body is gzip-encoded, decode it (at most `limit`
/// bytes out) and drop `Content-Encoding`/`Content-Length`, so what is left
/// describes the decoded body. Anything else is returned unchanged.
pub fn decode_answer(headers: &mut HeaderMap, body: bytes::Bytes, limit: usize) -> bytes::Bytes {
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim().eq_ignore_ascii_case("gzip") || v.trim().eq_ignore_ascii_case("x-gzip")
        });
    if !gz {
        return body;
    }
    match decode(&body, limit) {
        Ok(plain) => {
            headers.remove(header::CONTENT_ENCODING);
            headers.remove(header::CONTENT_LENGTH);
            bytes::Bytes::from(plain)
        }
        Err(_) => body,
    }
}

/// Why a gzip body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gzip: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

type R<T> = Result<T, DecodeError>;

/// Decode a whole gzip body (one or more members), producing at most `limit` bytes.
pub fn decode(data: &[u8], limit: usize) -> R<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let start = out.len();
        pos = member_header(data, pos)?;
        let mut inf = Inflate {
            bits: Bits {
                data,
                pos,
                buf: 0,
                cnt: 0,
            },
            out: &mut out,
            limit,
        };
        inf.run()?;
        pos = inf.bits.pos; // the deflate stream ends byte-aligned for the trailer
        let trailer = data
            .get(pos..pos + 8)
            .ok_or(DecodeError("truncated trailer"))?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != crc32(0, &out[start..]) {
            return Err(DecodeError("CRC mismatch"));
        }
        if size != (out.len() - start) as u32 {
            return Err(DecodeError("size mismatch"));
        }
        pos += 8;
        if pos >= data.len() || data[pos..].iter().all(|b| *b == 0) {
            return Ok(out);
        }
    }
}

/// Parse a member header at `pos`; returns where the deflate data starts.
fn member_header(d: &[u8], mut pos: usize) -> R<usize> {
    let h = d
        .get(pos..pos + 10)
        .ok_or(DecodeError("truncated header"))?;
    if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
        return Err(DecodeError("not a gzip stream"));
    }
    let flags = h[3];
    pos += 10;
    if flags & 4 != 0 {
        let x = d.get(pos..pos + 2).ok_or(DecodeError("truncated header"))?;
        pos += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let n = d
                .get(pos..)
                .and_then(|r| r.iter().position(|b| *b == 0))
                .ok_or(DecodeError("truncated header"))?;
            pos += n + 1;
        }
    }
    if flags & 2 != 0 {
        pos += 2;
    }
    if pos > d.len() {
        return Err(DecodeError("truncated header"));
    }
    Ok(pos)
}

/// LSB-first bit reader.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    cnt: u32,
}

impl Bits<'_> {
    fn need(&mut self, n: u32) -> R<u32> {
        while self.cnt < n {
            let b = *self
                .data
                .get(self.pos)
                .ok_or(DecodeError("truncated deflate data"))?;
            self.pos += 1;
            self.buf |= (b as u32) << self.cnt;
            self.cnt += 8;
        }
        let v = self.buf & ((1u32 << n) - 1);
        self.buf >>= n;
        self.cnt -= n;
        Ok(v)
    }

    fn align(&mut self) {
        self.buf = 0;
        self.cnt = 0;
    }
}

/// A canonical Huffman code: symbol counts per length and symbols in order.
struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> R<Huffman> {
        let mut count = [0u16; 16];
        for l in lengths {
            count[*l as usize] += 1;
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (s, l) in lengths.iter().enumerate() {
            if *l != 0 {
                symbol[offs[*l as usize] as usize] = s as u16;
                offs[*l as usize] += 1;
            }
        }
        // Over-subscribed codes are invalid; incomplete ones are allowed
        // (a single distance code is legal).
        let mut left: i32 = 1;
        for c in count.iter().skip(1) {
            left <<= 1;
            left -= *c as i32;
            if left < 0 {
                return Err(DecodeError("over-subscribed Huffman code"));
            }
        }
        Ok(Huffman { count, symbol })
    }

    fn decode(&self, bits: &mut Bits<'_>) -> R<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.need(1)? as i32;
            let count = self.count[len] as i32;
            if code - first < count {
                return Ok(self.symbol[(index + code - first) as usize]);
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err(DecodeError("invalid Huffman code"))
    }
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

struct Inflate<'a, 'o> {
    bits: Bits<'a>,
    out: &'o mut Vec<u8>,
    limit: usize,
}

impl Inflate<'_, '_> {
    fn run(&mut self) -> R<()> {
        loop {
            let last = self.bits.need(1)?;
            match self.bits.need(2)? {
                0 => self.stored()?,
                1 => {
                    let mut l = [0u8; 288];
                    l[..144].fill(8);
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    l[280..].fill(8);
                    let lit = Huffman::new(&l)?;
                    let dist = Huffman::new(&[5u8; 30])?;
                    self.codes(&lit, &dist)?;
                }
                2 => {
                    let (lit, dist) = self.dynamic()?;
                    self.codes(&lit, &dist)?;
                }
                _ => return Err(DecodeError("invalid block type")),
            }
            if last == 1 {
                self.bits.align();
                return Ok(());
            }
        }
    }

    fn push(&mut self, b: u8) -> R<()> {
        if self.out.len() >= self.limit {
            return Err(DecodeError("decoded body too large"));
        }
        self.out.push(b);
        Ok(())
    }

    fn stored(&mut self) -> R<()> {
        self.bits.align();
        let d = self.bits.data;
        let p = self.bits.pos;
        let h = d
            .get(p..p + 4)
            .ok_or(DecodeError("truncated stored block"))?;
        let len = u16::from_le_bytes([h[0], h[1]]);
        let nlen = u16::from_le_bytes([h[2], h[3]]);
        if len != !nlen {
            return Err(DecodeError("stored block length mismatch"));
        }
        let body = d
            .get(p + 4..p + 4 + len as usize)
            .ok_or(DecodeError("truncated stored block"))?;
        if self.out.len() + body.len() > self.limit {
            return Err(DecodeError("decoded body too large"));
        }
        self.out.extend_from_slice(body);
        self.bits.pos = p + 4 + len as usize;
        Ok(())
    }

    fn dynamic(&mut self) -> R<(Huffman, Huffman)> {
        let nlen = self.bits.need(5)? as usize + 257;
        let ndist = self.bits.need(5)? as usize + 1;
        let ncode = self.bits.need(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return Err(DecodeError("bad code counts"));
        }
        let mut cl = [0u8; 19];
        for i in CL_ORDER.iter().take(ncode) {
            cl[*i] = self.bits.need(3)? as u8;
        }
        let clh = Huffman::new(&cl)?;
        let mut lengths = vec![0u8; nlen + ndist];
        let mut i = 0;
        while i < nlen + ndist {
            let sym = clh.decode(&mut self.bits)?;
            let (val, rep) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    let prev = *i
                        .checked_sub(1)
                        .and_then(|j| lengths.get(j))
                        .ok_or(DecodeError("repeat with no previous length"))?;
                    (prev, 3 + self.bits.need(2)? as usize)
                }
                17 => (0, 3 + self.bits.need(3)? as usize),
                _ => (0, 11 + self.bits.need(7)? as usize),
            };
            if i + rep > nlen + ndist {
                return Err(DecodeError("too many code lengths"));
            }
            lengths[i..i + rep].fill(val);
            i += rep;
        }
        if lengths[256] == 0 {
            return Err(DecodeError("no end-of-block code"));
        }
        Ok((
            Huffman::new(&lengths[..nlen])?,
            Huffman::new(&lengths[nlen..])?,
        ))
    }

    fn codes(&mut self, lit: &Huffman, dist: &Huffman) -> R<()> {
        loop {
            let sym = lit.decode(&mut self.bits)? as usize;
            match sym {
                0..=255 => self.push(sym as u8)?,
                256 => return Ok(()),
                _ => {
                    let s = sym - 257;
                    if s >= 29 {
                        return Err(DecodeError("invalid length symbol"));
                    }
                    let len = LEN_BASE[s] as usize + self.bits.need(LEN_EXTRA[s] as u32)? as usize;
                    let ds = dist.decode(&mut self.bits)? as usize;
                    if ds >= 30 {
                        return Err(DecodeError("invalid distance symbol"));
                    }
                    let d =
                        DIST_BASE[ds] as usize + self.bits.need(DIST_EXTRA[ds] as u32)? as usize;
                    if d > self.out.len() {
                        return Err(DecodeError("distance too far back"));
                    }
                    for _ in 0..len {
                        let b = self.out[self.out.len() - d];
                        self.push(b)?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"12345"), b"6789"), 0xCBF4_3926);
    }

    #[test]
    fn stored_streams_round_trip() {
        let text = b"{\"hello\": \"gzip\"}\n".repeat(5000); // > 64 KiB: several blocks
        let gz = encode(&text);
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(decode(&gz, usize::MAX).unwrap(), text);
        let mut e = GzipEncoder::new();
        let mut streamed = e.chunk(b"data: one\r\n\r\n");
        streamed.extend(e.chunk(b""));
        streamed.extend(e.chunk(b"data: two\r\n\r\n"));
        streamed.extend(e.finish());
        assert_eq!(
            decode(&streamed, 1000).unwrap(),
            b"data: one\r\n\r\ndata: two\r\n\r\n"
        );
        assert_eq!(decode(&encode(b""), 10).unwrap(), b"");
    }

    #[test]
    fn decodes_real_compressed_gzip() {
        let text: String = (0..200)
            .map(|i| {
                format!(
                    "model {i}: gemini-{}.{}-flash says {}\n",
                    i % 7,
                    i % 5,
                    "hello ".repeat(i % 4)
                )
            })
            .collect();
        assert_eq!(REAL_GZIP[10] & 0b110, 0b100, "fixture uses dynamic Huffman");
        assert_eq!(decode(&REAL_GZIP, 100_000).unwrap(), text.as_bytes());
        // Two members concatenated decode to both texts.
        let mut two = REAL_GZIP.to_vec();
        two.extend_from_slice(&encode(b"!"));
        let mut want = text.as_bytes().to_vec();
        want.push(b'!');
        assert_eq!(decode(&two, 100_000).unwrap(), want);
        assert_eq!(FIXED_GZIP[10] & 0b110, 0b010, "fixture uses fixed Huffman");
        assert_eq!(decode(&FIXED_GZIP, 100).unwrap(), b"aaaaaaaaaabcabcabc");
    }

    #[test]
    fn garbage_and_bombs_are_errors_not_panics() {
        assert!(decode(b"", 10).is_err());
        assert!(decode(b"not gzip at all", 10).is_err());
        let gz = encode(b"some text that is long enough");
        for cut in 0..gz.len() {
            assert!(decode(&gz[..cut], 100).is_err(), "cut at {cut}");
        }
        let mut bad_crc = gz.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert_eq!(decode(&bad_crc, 100), Err(DecodeError("CRC mismatch")));
        assert_eq!(decode(&gz, 5), Err(DecodeError("decoded body too large")));
        let mut flipped = REAL_GZIP.to_vec();
        for i in 10..flipped.len() - 8 {
            flipped[i] ^= 0x5a;
            let _ = decode(&flipped, 100_000); // must not panic
            flipped[i] ^= 0x5a;
        }
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
    fn answers_are_decoded_only_when_marked() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h.insert(header::CONTENT_LENGTH, "99".parse().unwrap());
        let out = decode_answer(&mut h, bytes::Bytes::from(encode(b"{}")), 100);
        assert_eq!(&out[..], b"{}");
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        assert!(h.get(header::CONTENT_LENGTH).is_none());
        let mut plain = HeaderMap::new();
        let out = decode_answer(&mut plain, bytes::Bytes::from_static(b"\x1f\x8b"), 100);
        assert_eq!(&out[..], b"\x1f\x8b");
    }

    /// gzip -9 of the text in `decodes_real_compressed_gzip` (dynamic Huffman blocks).
    const REAL_GZIP: [u8; 950] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x9d, 0x98, 0x4b, 0x6e, 0x5b,
        0x41, 0x0c, 0x04, 0xf7, 0x39, 0x85, 0x2e, 0x60, 0x61, 0x7a, 0xfe, 0x93, 0xdb, 0x18, 0x88,
        0x12, 0x1b, 0x90, 0xe2, 0x85, 0x57, 0xb9, 0x7d, 0x80, 0x00, 0x24, 0xa8, 0x97, 0xe1, 0x23,
        0xe9, 0xb5, 0x8a, 0x06, 0x4d, 0x63, 0xda, 0xad, 0x7a, 0x7c, 0xfc, 0xb8, 0xdd, 0x2f, 0xe9,
        0xfb, 0xe5, 0xd7, 0xed, 0xf1, 0xfe, 0xfb, 0xfd, 0x25, 0x5d, 0xd3, 0xcb, 0xcf, 0xfb, 0xeb,
        0xe7, 0xdb, 0xe5, 0xf3, 0xf5, 0xcf, 0xe7, 0xe5, 0xdb, 0xe3, 0xdf, 0xe7, 0xe0, 0xcf, 0x71,
        0x85, 0xfc, 0xfc, 0xed, 0x76, 0xbf, 0x7f, 0x10, 0x95, 0x99, 0xca, 0xd7, 0xfc, 0x3f, 0xf5,
        0xc4, 0x16, 0x66, 0xcb, 0xb5, 0x68, 0xec, 0xd3, 0x44, 0xe5, 0x89, 0x7a, 0xad, 0x9b, 0x1d,
        0x1b, 0x7f, 0xde, 0x9e, 0x7f, 0x87, 0xa7, 0x9f, 0xd2, 0x99, 0xea, 0xbb, 0xdf, 0xe4, 0x89,
        0x1d, 0xe2, 0x2a, 0xd9, 0xb5, 0xe3, 0x14, 0x77, 0x2a, 0x9b, 0x1d, 0x97, 0xb8, 0x50, 0x55,
        0x77, 0x44, 0x12, 0xc7, 0x49, 0xc6, 0x92, 0x80, 0xb8, 0x0b, 0x5c, 0x5b, 0x22, 0x8b, 0x53,
        0xe5, 0xdd, 0x9f, 0xbb, 0x88, 0x2b, 0x15, 0x7d, 0xcf, 0x2a, 0x0e, 0x54, 0xad, 0x3d, 0x9b,
        0xb8, 0x4d, 0xf2, 0xed, 0xd9, 0xc5, 0xb9, 0xb0, 0xdb, 0x73, 0x88, 0x43, 0x65, 0x7d, 0xcf,
        0x29, 0x4e, 0x54, 0xac, 0x3d, 0x97, 0x38, 0x4e, 0x75, 0xed, 0x99, 0x93, 0x38, 0xd7, 0xee,
        0xf9, 0x64, 0x88, 0x43, 0x9d, 0xbc, 0x9f, 0x2c, 0x4e, 0x64, 0x3d, 0xa0, 0x5c, 0xc4, 0x71,
        0x7c, 0x2f, 0x28, 0x57, 0x71, 0xae, 0xdd, 0x13, 0xca, 0x4d, 0x1c, 0x4a, 0x7f, 0x43, 0xb9,
        0x8b, 0x13, 0x59, 0x8f, 0x28, 0x0f, 0x71, 0x1c, 0xdf, 0x2b, 0xca, 0x53, 0x9c, 0x6b, 0xf7,
        0x8c, 0xf2, 0x12, 0x87, 0xd2, 0xdf, 0x51, 0x49, 0xe2, 0x44, 0xd6, 0x3b, 0x2a, 0x10, 0xc7,
        0xf1, 0xbd, 0xa3, 0x92, 0xc5, 0xb9, 0x76, 0xef, 0xa8, 0x14, 0x71, 0x28, 0xfd, 0x1d, 0x95,
        0x2a, 0x4e, 0x64, 0xbd, 0xa3, 0xd2, 0xb4, 0xac, 0xd6, 0xf7, 0xec, 0x5a, 0x7c, 0x13, 0x30,
        0xce, 0x93, 0x9b, 0xb0, 0xe9, 0x09, 0x6d, 0x82, 0x97, 0x96, 0xd7, 0x7a, 0xc2, 0x27, 0x2d,
        0xc2, 0x09, 0xc0, 0x79, 0x7a, 0x13, 0x96, 0x3d, 0xc1, 0x4d, 0x70, 0xd1, 0x32, 0x5b, 0xdf,
        0xb3, 0x6a, 0x31, 0x4e, 0x40, 0x3b, 0x0f, 0x70, 0xc2, 0xba, 0x27, 0xba, 0x09, 0x1e, 0x5a,
        0x68, 0xeb, 0x7b, 0x4e, 0x2d, 0xc6, 0x09, 0x58, 0xe7, 0x01, 0x4e, 0xff, 0x59, 0x93, 0x27,
        0xba, 0x09, 0x86, 0x16, 0xda, 0xea, 0x9e, 0x2d, 0x6b, 0x31, 0x4e, 0x40, 0x39, 0x0f, 0x70,
        0xc2, 0xaa, 0x27, 0xba, 0x09, 0x6e, 0x5a, 0x68, 0xeb, 0x7b, 0x76, 0x2d, 0xc6, 0x09, 0x18,
        0xe7, 0x01, 0x4e, 0xd8, 0xf4, 0x44, 0x37, 0xc1, 0x4b, 0x0b, 0x6d, 0x75, 0xcf, 0x9e, 0xb4,
        0x18, 0x27, 0x00, 0xe7, 0x01, 0x4e, 0x58, 0xf6, 0x44, 0x37, 0xc1, 0x45, 0x0b, 0x6d, 0x7d,
        0xcf, 0xaa, 0xc5, 0x38, 0x01, 0xed, 0x3c, 0xc0, 0x09, 0xeb, 0x9e, 0xe8, 0x26, 0x78, 0x68,
        0xa1, 0xad, 0xef, 0x39, 0xb5, 0x18, 0x27, 0x60, 0x9d, 0x07, 0x38, 0xf5, 0xc9, 0xe4, 0x89,
        0x6e, 0x82, 0x8d, 0xce, 0xbd, 0x1b, 0x51, 0x0b, 0x38, 0x01, 0x46, 0xeb, 0x26, 0xac, 0x7a,
        0xa2, 0x9b, 0x60, 0xa3, 0x77, 0xef, 0x46, 0xd4, 0x12, 0x4e, 0x80, 0xd1, 0xbc, 0x09, 0x9b,
        0x9e, 0xe8, 0x26, 0xd8, 0xe8, 0xde, 0xbb, 0x36, 0xaf, 0xf6, 0x70, 0x02, 0x8c, 0xee, 0x4d,
        0x58, 0xf6, 0x44, 0x37, 0xc1, 0x46, 0xf7, 0xde, 0x8d, 0xa8, 0x3d, 0x9c, 0x00, 0xa3, 0x7b,
        0x13, 0xd6, 0x3d, 0xd1, 0x4d, 0xb0, 0xd1, 0xbd, 0x77, 0x23, 0x6a, 0x0f, 0x27, 0xc0, 0xe8,
        0xde, 0xf4, 0x2d, 0x2a, 0x79, 0xa2, 0x9b, 0x60, 0xa3, 0x7b, 0xef, 0x46, 0xd4, 0x1e, 0x4e,
        0x80, 0xd1, 0xbd, 0x09, 0xab, 0x9e, 0xe8, 0x26, 0xd8, 0xe8, 0xde, 0xbb, 0x11, 0xb5, 0x87,
        0x13, 0x60, 0x74, 0x6f, 0xc2, 0xa6, 0x27, 0xba, 0x09, 0x36, 0xba, 0xf7, 0xee, 0x2b, 0x55,
        0x52, 0x8b, 0x38, 0x13, 0x46, 0xfb, 0x66, 0x2e, 0x7b, 0xd2, 0x9b, 0x69, 0xa3, 0x7f, 0x6f,
        0x67, 0xd4, 0x32, 0xce, 0x84, 0xd1, 0xc0, 0x99, 0xeb, 0x9e, 0x04, 0x67, 0x7a, 0x78, 0xec,
        0xc9, 0x61, 0x46, 0x2d, 0xe4, 0x4c, 0x18, 0x2d, 0x9c, 0x25, 0x42, 0xf2, 0xa4, 0x38, 0xd3,
        0xf0, 0x58, 0x94, 0xc3, 0x8c, 0x5a, 0xca, 0x99, 0x30, 0x9a, 0x38, 0x73, 0xd5, 0x93, 0xe4,
        0x4c, 0x37, 0x8f, 0x4c, 0x39, 0xcc, 0xa8, 0xc5, 0x9c, 0x09, 0xa3, 0x8d, 0x33, 0x37, 0x3d,
        0x69, 0xce, 0xf4, 0xf2, 0x08, 0x95, 0x83, 0xcb, 0x51, 0xcb, 0x39, 0x13, 0x46, 0x23, 0x67,
        0x2e, 0x7b, 0x12, 0x9d, 0xe9, 0xe2, 0x91, 0x2a, 0x87, 0x19, 0xb5, 0xa0, 0x33, 0x61, 0xb4,
        0x72, 0xe6, 0xba, 0x27, 0xd5, 0x99, 0x1e, 0x1e, 0xb1, 0x72, 0x98, 0x51, 0x4b, 0x3a, 0x13,
        0x46, 0x33, 0x67, 0x99, 0x96, 0x3c, 0xc9, 0xce, 0x34, 0x3c, 0x72, 0xe5, 0x30, 0xa3, 0x16,
        0x75, 0x26, 0x8c, 0x76, 0xce, 0x5c, 0xf5, 0xa4, 0x3b, 0xd3, 0xcd, 0x23, 0x58, 0x0e, 0x33,
        0x6a, 0x59, 0x67, 0xc2, 0x68, 0xe8, 0xcc, 0x4d, 0x4f, 0xba, 0x33, 0xbd, 0x3c, 0x92, 0xe5,
        0xe0, 0x37, 0x4d, 0x2f, 0x5e, 0x7d, 0x66, 0x1c, 0x35, 0xe2, 0xc6, 0x51, 0xe3, 0x76, 0x1c,
        0xd5, 0xf2, 0xe3, 0xa8, 0x3e, 0x43, 0x8e, 0x1a, 0x71, 0xe4, 0xa8, 0x71, 0x4b, 0x8e, 0x6a,
        0x79, 0x72, 0x54, 0xa7, 0x29, 0x6f, 0x21, 0x55, 0xde, 0xbe, 0xe0, 0xca, 0x9b, 0x29, 0xcb,
        0x9b, 0xd3, 0x96, 0xb7, 0x98, 0x2e, 0xff, 0x82, 0x2f, 0x6f, 0xa6, 0x30, 0x6f, 0x4e, 0x63,
        0xde, 0x42, 0xca, 0xbc, 0xc5, 0x9d, 0x39, 0xba, 0x25, 0xcd, 0xd1, 0x7d, 0xd6, 0x1c, 0x3d,
        0xa2, 0xcd, 0xd1, 0xe3, 0xde, 0x1c, 0xdd, 0x12, 0xe7, 0xe8, 0x3e, 0x73, 0x8e, 0x1e, 0x51,
        0xe7, 0xe8, 0x71, 0x77, 0x8e, 0x6e, 0xc9, 0x73, 0x74, 0x9f, 0x3d, 0xc7, 0x88, 0xe8, 0x73,
        0x8c, 0xb8, 0x3f, 0xc7, 0xb0, 0x04, 0x3a, 0x86, 0xcf, 0xa0, 0x63, 0x44, 0x14, 0x3a, 0x46,
        0xdc, 0xa1, 0x63, 0x58, 0x12, 0x1d, 0xc3, 0x67, 0xd1, 0x31, 0x22, 0x1a, 0x1d, 0x23, 0xee,
        0xd1, 0x31, 0x2d, 0x91, 0x8e, 0xe9, 0x33, 0xe9, 0x98, 0x11, 0x95, 0x8e, 0x19, 0x77, 0xe9,
        0x98, 0x96, 0x4c, 0xc7, 0xf4, 0xd9, 0x74, 0xcc, 0x88, 0x4e, 0xc7, 0x8c, 0xfb, 0x74, 0x4c,
        0x4b, 0xa8, 0x63, 0xfa, 0x8c, 0x3a, 0x56, 0x44, 0xa9, 0x63, 0xc5, 0x9d, 0x3a, 0x96, 0x25,
        0xd5, 0xb1, 0x7c, 0x56, 0x1d, 0x2b, 0xa2, 0xd5, 0xb1, 0xe2, 0x5e, 0x1d, 0xcb, 0x12, 0xeb,
        0x58, 0x3e, 0xb3, 0x8e, 0x15, 0x51, 0xeb, 0x58, 0x11, 0xb7, 0xfe, 0x17, 0xa9, 0x14, 0xd1,
        0xd9, 0x2a, 0x21, 0x00, 0x00,
    ];
    /// gzip -1 of `aaaaaaaaaabcabcabc` (a fixed-Huffman block).
    const FIXED_GZIP: [u8; 28] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x03, 0x4b, 0x4c, 0x84, 0x81, 0xa4,
        0xe4, 0x44, 0x30, 0x02, 0x00, 0x4f, 0x98, 0x36, 0x89, 0x12, 0x00, 0x00, 0x00,
    ];
}
