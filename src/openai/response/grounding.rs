//! Google Search grounding: the `Sources:` list appended to the content
//! ([`render_sources`], shared with the stream translator) and the
//! `url_citation` annotations built from `groundingSupports`, with Gemini's
//! byte offsets mapped to char offsets into the content.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::output::{Annotation, UrlCitation};
use crate::gemini::types::{GroundingChunk, GroundingMetadata, Segment};

/// Append `\n\nSources:\n1. [title](uri)\n2. ...` for the web chunks of a
/// `groundingMetadata` (deduplicated by uri). Returns whether anything was written.
pub(crate) fn render_sources(grounding: &GroundingMetadata, out: &mut String) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    for chunk in &grounding.grounding_chunks {
        let Some((uri, title)) = web_chunk(chunk) else {
            continue;
        };
        if !seen.insert(uri) {
            continue;
        }
        out.push_str(if seen.len() == 1 {
            "\n\nSources:\n"
        } else {
            "\n"
        });
        let _ = write!(out, "{}. [{title}]({uri})", seen.len());
    }
    !seen.is_empty()
}

/// `(uri, title)` of a `groundingChunks[]` entry with a `web` source; the
/// title falls back to the uri.
fn web_chunk<'g>(chunk: &'g GroundingChunk) -> Option<(&'g str, &'g str)> {
    let web = chunk.web.as_ref()?;
    let uri = web.uri.as_deref().filter(|u| !u.is_empty())?;
    let title = web
        .title
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or(uri);
    Some((uri, title))
}

/// Where one visible text part landed in `content`.
pub(super) struct TextSpan {
    /// Index of the part in `content.parts`.
    pub(super) part_index: usize,
    /// Byte offset in the concatenation of the visible text parts.
    pub(super) concat_start: usize,
    /// Byte offset in `content`.
    pub(super) content_start: usize,
    /// Byte length.
    pub(super) len: usize,
}

/// `url_citation` annotations from `groundingSupports`, with Gemini's UTF-8
/// byte offsets converted to char offsets into `content`. Supports whose
/// segment cannot be located are skipped.
pub(super) fn build_annotations<'g>(
    gm: &'g GroundingMetadata,
    content: &str,
    spans: &[TextSpan],
) -> Vec<Annotation<'g>> {
    let chunks = &gm.grounding_chunks;
    let supports = &gm.grounding_supports;
    let mut out = Vec::new();
    if chunks.is_empty() {
        return out;
    }
    let mut chars = CharOffsets {
        text: content,
        byte: 0,
        chars: 0,
    };
    for s in supports {
        let Some(seg) = &s.segment else {
            continue;
        };
        let Some((b0, b1)) = segment_range(seg, content, spans) else {
            continue;
        };
        let Some(c0) = chars.offset(b0) else {
            continue;
        };
        let Some(c1) = content.get(b0..b1).map(|s| c0 + s.chars().count()) else {
            continue;
        };
        for ci in &s.grounding_chunk_indices {
            let Some(chunk) = ci
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| chunks.get(i))
            else {
                continue;
            };
            let Some((url, title)) = web_chunk(chunk) else {
                continue;
            };
            out.push(Annotation {
                kind: "url_citation",
                url_citation: UrlCitation {
                    end_index: c1,
                    start_index: c0,
                    title,
                    url,
                },
            });
        }
    }
    out
}

/// Byte → char offsets in a text, counting on from the previous answer
/// (supports usually come in text order), so many lookups stay linear.
struct CharOffsets<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
}

impl CharOffsets<'_> {
    /// Chars before byte `b`; `None` if `b` is not a char boundary.
    fn offset(&mut self, b: usize) -> Option<usize> {
        if b < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        let n = self.text.get(self.byte..b)?.chars().count();
        self.byte = b;
        self.chars += n;
        Some(self.chars)
    }
}

/// The byte range of `content` a grounding segment refers to.
///
/// Offsets are tried relative to the part named by `partIndex`, then
/// relative to the concatenated visible text; a candidate range must be in
/// bounds, on char boundaries, and equal `segment.text` when that is given.
/// As a last resort `segment.text` is searched for in `content`.
fn segment_range(seg: &Segment, content: &str, spans: &[TextSpan]) -> Option<(usize, usize)> {
    let text = seg.text.as_deref();
    let offset = |v: Option<u64>| v.and_then(|v| usize::try_from(v).ok());
    let fits = |r: (usize, usize)| {
        content
            .get(r.0..r.1)
            .is_some_and(|s| text.is_none_or(|t| t == s))
    };
    if let (Some(start), Some(end)) = (offset(seg.start_index.or(Some(0))), offset(seg.end_index))
        && start < end
    {
        let by_part = seg
            .part_index
            .and_then(|pi| spans.iter().find(|s| s.part_index as u64 == pi))
            .filter(|s| end <= s.len)
            .map(|s| (s.content_start + start, s.content_start + end));
        if let Some(r) = by_part.filter(|&r| fits(r)) {
            return Some(r);
        }
        let by_concat = map_concat(spans, start, false).zip(map_concat(spans, end, true));
        if let Some(r) = by_concat.filter(|&r| r.0 < r.1 && fits(r)) {
            return Some(r);
        }
    }
    let t = text.filter(|t| !t.is_empty())?;
    let a = content.find(t)?;
    Some((a, a + t.len()))
}

/// A byte offset in the concatenated visible text → byte offset in `content`.
/// Ends map into the span they close, starts into the span they open.
fn map_concat(spans: &[TextSpan], off: usize, is_end: bool) -> Option<usize> {
    spans.iter().find_map(|s| {
        let hit = if is_end {
            off > s.concat_start && off <= s.concat_start + s.len
        } else {
            off >= s.concat_start && off < s.concat_start + s.len
        };
        hit.then(|| s.content_start + (off - s.concat_start))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::openai::Options;
    use crate::openai::response::tests::{GROUNDED, quiet, run};
    #[test]
    fn grounding_sources_and_annotations() {
        let out = run(GROUNDED, &Options::default());
        let msg = &out["choices"][0]["message"];
        let answer = "Oslo is about 4 °C right now. Bergen is wet.";
        assert_eq!(
            msg["content"],
            format!(
                "{answer}\n\nSources:\n1. [met.no](https://example.test/met)\n2. [yr.no](https://example.test/yr)\n3. [https://example.test/untitled](https://example.test/untitled)"
            )
        );
        let cite = |s: usize, e: usize, title: &str, url: &str| json!({"type": "url_citation", "url_citation": {"start_index": s, "end_index": e, "title": title, "url": url}});
        assert_eq!(
            msg["annotations"],
            json!([
                cite(0, 29, "met.no", "https://example.test/met"),
                // Byte 31 is char 30: the `°` before it is two bytes.
                cite(30, 44, "yr.no", "https://example.test/yr"),
                cite(
                    30,
                    44,
                    "https://example.test/untitled",
                    "https://example.test/untitled"
                ),
                cite(30, 36, "met.no again", "https://example.test/met"),
                cite(0, 4, "met.no", "https://example.test/met"),
            ])
        );
        let chars: Vec<char> = answer.chars().collect();
        let cited: String = chars[30..44].iter().collect();
        assert_eq!(cited, "Bergen is wet.");

        // show_search_link off: annotations stay, no sources text.
        let out = run(GROUNDED, &quiet());
        assert_eq!(out["choices"][0]["message"]["content"], answer);
        assert!(out["choices"][0]["message"]["annotations"].is_array());
    }
}
