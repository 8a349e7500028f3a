//! Reading the token counts of a Gemini `usageMetadata` object
//! (`promptTokenCount`, `candidatesTokenCount`, `thoughtsTokenCount`) out of
//! the bytes that follow its name, for the meter (`super::meter`), which
//! reads one per answer and one per stream.
//!
//! A scan, not a parse: serde_json spent ≈ 3,000 instructions per answer on
//! Google's pretty-printed object at the gateway's opt-level `"s"`; the scan
//! takes a few hundred. Whatever the scan does not recognise as the plain
//! shape (escaped names, duplicate names, a count that is not a plain
//! integer, stray bytes) goes to serde_json, so the result is serde_json's
//! reading of the object; members the scan skips are only checked to be
//! balanced, not validated (`tests::reads_as_serde_json_does` holds the two
//! readings equal on well-formed JSON and on every cut of it).

use serde::Deserialize;

/// Token counts of a `usageMetadata`.
#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// `promptTokenCount`.
    #[serde(rename = "promptTokenCount", default)]
    pub prompt: u64,
    /// `candidatesTokenCount`.
    #[serde(rename = "candidatesTokenCount", default)]
    pub output: u64,
    /// `thoughtsTokenCount`.
    #[serde(rename = "thoughtsTokenCount", default)]
    pub thoughts: u64,
}

/// Reading `bytes` (what follows `"usageMetadata"`): the counts, `Err(())`
/// when the object is cut off, `Ok(None)` when it is not one.
pub(super) fn read_tokens(bytes: &[u8]) -> Result<Option<Tokens>, ()> {
    let mut s = Scan { b: bytes, i: 0 };
    match s.usage() {
        Ok(t) => Ok(Some(t)),
        Err(Stop::Cut) => Err(()),
        Err(Stop::Unsure) => read_with_serde(bytes),
    }
}

/// [`read_tokens`] by serde_json: the reading the scan falls back to.
fn read_with_serde(bytes: &[u8]) -> Result<Option<Tokens>, ()> {
    let rest = bytes.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else {
        return if rest.is_empty() { Err(()) } else { Ok(None) };
    };
    let mut it = serde_json::Deserializer::from_slice(rest).into_iter::<Tokens>();
    match it.next() {
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(e)) if e.is_eof() => Err(()),
        None => Err(()),
        Some(Err(_)) => Ok(None),
    }
}

/// Why the scan stopped short of an answer.
enum Stop {
    /// The bytes end inside the object.
    Cut,
    /// Not the plain shape: serde_json decides.
    Unsure,
}

/// A cursor over the bytes after the name.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    /// The next byte after JSON whitespace (not consumed).
    fn peek(&mut self) -> Result<u8, Stop> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(c);
            }
            self.i += 1;
        }
        Err(Stop::Cut)
    }

    /// Consume `c` (after whitespace).
    fn eat(&mut self, c: u8) -> Result<(), Stop> {
        if self.peek()? != c {
            return Err(Stop::Unsure);
        }
        self.i += 1;
        Ok(())
    }

    /// `: { "name": value, … }` with the three counts read.
    fn usage(&mut self) -> Result<Tokens, Stop> {
        self.eat(b':')?;
        self.eat(b'{')?;
        // prompt, output, thoughts; `None` until seen.
        let mut counts = [None; 3];
        if self.peek()? != b'}' {
            loop {
                self.eat(b'"')?;
                let name = self.string_rest()?;
                let field = match name {
                    b"promptTokenCount" => Some(0),
                    b"candidatesTokenCount" => Some(1),
                    b"thoughtsTokenCount" => Some(2),
                    _ if name.contains(&b'\\') => return Err(Stop::Unsure),
                    _ => None,
                };
                // serde_json refuses a repeated name as soon as it reads it.
                if field.is_some_and(|f| counts[f].is_some()) {
                    return Err(Stop::Unsure);
                }
                self.eat(b':')?;
                match field {
                    Some(f) => counts[f] = Some(self.count()?),
                    None => self.skip_value()?,
                }
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => break,
                    _ => return Err(Stop::Unsure),
                }
            }
        }
        let [prompt, output, thoughts] = counts.map(Option::unwrap_or_default);
        Ok(Tokens {
            prompt,
            output,
            thoughts,
        })
    }

    /// The rest of a string whose opening quote was consumed: its raw bytes
    /// (escapes as written), the closing quote consumed.
    fn string_rest(&mut self) -> Result<&'a [u8], Stop> {
        let start = self.i;
        loop {
            let at = memchr::memchr2(b'"', b'\\', self.b.get(self.i..).unwrap_or_default())
                .ok_or(Stop::Cut)?;
            self.i += at;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Ok(&self.b[start..self.i - 1]);
            }
            self.i += 2;
        }
    }

    /// A count: a plain non-negative integer (anything else: serde decides).
    fn count(&mut self) -> Result<u64, Stop> {
        self.peek()?;
        let digits = self.b[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let text = &self.b[self.i..self.i + digits];
        self.i += digits;
        match self.b.get(self.i) {
            None => return Err(Stop::Cut),
            Some(b'.' | b'e' | b'E') => return Err(Stop::Unsure),
            Some(_) => {}
        }
        if digits == 0 || digits > 19 || (digits > 1 && text[0] == b'0') {
            return Err(Stop::Unsure);
        }
        Ok(text.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
    }

    /// Step over one value: a string, a balanced object or array, or a bare
    /// scalar (`true`, `null`, a number).
    fn skip_value(&mut self) -> Result<(), Stop> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.string_rest()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.i += 1;
                }
                b',' | b':' if depth > 0 => self.i += 1,
                b'}' | b']' | b',' | b':' => return Err(Stop::Unsure),
                _ => {
                    let n = self.b[self.i..]
                        .iter()
                        .take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')
                        })
                        .count();
                    if n == 0 {
                        return Err(Stop::Unsure);
                    }
                    self.i += n;
                    if self.i == self.b.len() {
                        // A number may be cut or whole: serde_json's call.
                        return Err(Stop::Unsure);
                    }
                }
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One member of a generated `usageMetadata` object.
    fn member() -> impl Strategy<Value = (String, serde_json::Value)> {
        let count = prop_oneof![
            (0u64..100_000).prop_map(serde_json::Value::from),
            Just(serde_json::json!(u64::MAX)),
            Just(serde_json::json!(1.5)),
            Just(serde_json::json!(-3)),
            Just(serde_json::Value::Null),
            Just(serde_json::json!("12")),
        ];
        let other = prop_oneof![
            (0u64..1000).prop_map(serde_json::Value::from),
            Just(
                serde_json::json!([{"modality": "TEXT", "tokenCount": 5}, {"modality": "IMAGE", "tokenCount": 258}])
            ),
            Just(serde_json::json!({"a": [1, 2, {"b": "x\"}]\\"}], "c": null, "d": true})),
            Just(serde_json::json!("a \"quoted\" \\ string")),
            Just(serde_json::json!(-2.5e3)),
            Just(serde_json::json!([])),
        ];
        prop_oneof![
            (
                prop::sample::select(vec![
                    "promptTokenCount",
                    "candidatesTokenCount",
                    "thoughtsTokenCount"
                ]),
                count
            )
                .prop_map(|(n, v)| (n.to_string(), v)),
            (
                prop::sample::select(vec![
                    "totalTokenCount",
                    "promptTokensDetails",
                    "cachedContentTokenCount",
                    "x"
                ]),
                other
            )
                .prop_map(|(n, v)| (n.to_string(), v)),
        ]
    }

    /// The object as Gemini writes it (pretty, two-space indent) or compact,
    /// members in the given order (duplicates kept), after `: `.
    fn render(members: &[(String, serde_json::Value)], pretty: bool, tail: &str) -> String {
        let (sep, ind, end) = if pretty {
            (",\n", "\n    ", "\n  }")
        } else {
            (",", "", "}")
        };
        let body: Vec<String> = members
            .iter()
            .map(|(n, v)| format!("{ind}\"{n}\": {v}"))
            .collect();
        format!(": {{{}{end}{tail}", body.join(sep))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn reads_as_serde_json_does(
            members in prop::collection::vec(member(), 0..6),
            pretty in any::<bool>(),
            tail in prop::sample::select(vec!["", ",\n  \"modelVersion\": \"m\"\n}", "}\r\n\r\n"]),
        ) {
            let text = render(&members, pretty, tail);
            let b = text.as_bytes();
            for cut in 0..=b.len() {
                prop_assert_eq!(read_tokens(&b[..cut]), read_with_serde(&b[..cut]), "{:?}", &text[..cut]);
            }
        }
    }

    #[test]
    fn reads_the_plain_shapes_by_scan() {
        let pretty = b": {\n    \"promptTokenCount\": 7,\n    \"candidatesTokenCount\": 11,\n    \"promptTokensDetails\": [\n      {\n        \"modality\": \"TEXT\",\n        \"tokenCount\": 7\n      }\n    ],\n    \"thoughtsTokenCount\": 5\n  }\n}";
        let want = Tokens {
            prompt: 7,
            output: 11,
            thoughts: 5,
        };
        let mut s = Scan { b: pretty, i: 0 };
        assert!(
            matches!(s.usage(), Ok(t) if t == want),
            "no fallback for Gemini's shape"
        );
        assert_eq!(read_tokens(pretty), Ok(Some(want)));
        assert_eq!(
            read_tokens(b" : {\"promptTokenCount\":3}"),
            Ok(Some(Tokens {
                prompt: 3,
                ..Tokens::default()
            }))
        );
        assert_eq!(read_tokens(b": 5"), Ok(None));
        assert_eq!(read_tokens(b"x"), Ok(None));
        assert_eq!(read_tokens(b"  "), Err(()));
        assert_eq!(read_tokens(b": {\"promptTokenCount\": 12"), Err(()));
        // An escaped name is serde_json's to read.
        assert_eq!(
            read_tokens(b": {\"prompt\\u0054okenCount\": 4}"),
            Ok(Some(Tokens {
                prompt: 4,
                ..Tokens::default()
            }))
        );
    }
}
