//! Output JSON that keeps insertion order ([`J`]), written in Google's two
//! styles: pretty (2-space indent, `"key": value`) and one-line compact
//! (`{"a": 1,"b": [1,2]}`), with `<`/`>` escaped as `\u003c`/`\u003e`.

use std::borrow::Cow;

use serde_json::Value;

// ---------------------------------------------------------------------------
// Ordered JSON with Google's two output styles
// ---------------------------------------------------------------------------

/// Output JSON value; objects keep insertion order (serde_json's map is sorted).
#[derive(Clone, Debug)]
pub(crate) enum J {
    Null,
    Bool(bool),
    Int(i64),
    F64(f64),
    F32(f32),
    Str(Cow<'static, str>),
    Arr(Vec<J>),
    Obj(Vec<(Cow<'static, str>, J)>),
}

impl J {
    pub(crate) fn s(v: impl Into<Cow<'static, str>>) -> J {
        J::Str(v.into())
    }

    pub(crate) fn obj<const N: usize>(items: [(&'static str, J); N]) -> J {
        J::Obj(
            items
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        )
    }

    pub(crate) fn push(&mut self, k: &'static str, v: J) {
        if let J::Obj(m) = self {
            m.push((Cow::Borrowed(k), v));
        }
    }

    pub(crate) fn from_value(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    J::Int(i)
                } else {
                    J::F64(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => J::s(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(m) => J::Obj(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), J::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Pretty style: 2-space indent, `"key": value`, one member per line.
    pub(crate) fn pretty(&self) -> String {
        let mut out = String::with_capacity(256);
        write_pretty(self, &mut out, 0);
        out
    }

    /// Google's one-line style: `{"a": 1,"b": [1,2]}`.
    pub(crate) fn compact(&self) -> String {
        let mut out = String::with_capacity(256);
        write_compact(self, &mut out);
        out
    }
}

pub(crate) fn write_indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push_str("  ");
    }
}

pub(crate) fn write_scalar(j: &J, out: &mut String) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(i) => out.push_str(&i.to_string()),
        J::F64(f) => write_f64(*f, out),
        J::F32(f) => {
            if f.is_finite() {
                out.push_str(&f.to_string())
            } else {
                out.push('0')
            }
        }
        J::Str(s) => write_str(s, out),
        J::Arr(_) | J::Obj(_) => {}
    }
}

pub(crate) fn write_f64(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push('0');
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        out.push_str(&(f as i64).to_string());
    } else {
        out.push_str(&f.to_string());
    }
}

pub(crate) fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(crate) fn write_pretty(j: &J, out: &mut String, ind: usize) {
    match j {
        J::Arr(v) if v.is_empty() => out.push_str("[]"),
        J::Obj(m) if m.is_empty() => out.push_str("{}"),
        J::Arr(v) => {
            out.push_str("[\n");
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                write_indent(out, ind + 1);
                write_pretty(x, out, ind + 1);
            }
            out.push('\n');
            write_indent(out, ind);
            out.push(']');
        }
        J::Obj(m) => {
            out.push_str("{\n");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                write_indent(out, ind + 1);
                write_str(k, out);
                out.push_str(": ");
                write_pretty(v, out, ind + 1);
            }
            out.push('\n');
            write_indent(out, ind);
            out.push('}');
        }
        s => write_scalar(s, out),
    }
}

pub(crate) fn write_compact(j: &J, out: &mut String) {
    match j {
        J::Arr(v) => {
            out.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(x, out);
            }
            out.push(']');
        }
        J::Obj(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push_str(": ");
                write_compact(v, out);
            }
            out.push('}');
        }
        s => write_scalar(s, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{b64_decode, b64_std, pct_decode};
    use crate::generate::split_words;

    #[test]
    fn writers_follow_google_style() {
        let j = J::obj([
            ("a", J::Int(1)),
            ("b", J::Arr(vec![J::Int(1), J::F64(0.5)])),
            ("c", J::obj([("d", J::s("<x>\"\n"))])),
            ("e", J::Obj(vec![])),
            ("f", J::Arr(vec![])),
        ]);
        assert_eq!(
            j.compact(),
            r#"{"a": 1,"b": [1,0.5],"c": {"d": "\u003cx\u003e\"\n"},"e": {},"f": []}"#
        );
        assert_eq!(
            j.pretty(),
            "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    0.5\n  ],\n  \"c\": {\n    \"d\": \"\\u003cx\\u003e\\\"\\n\"\n  },\n  \"e\": {},\n  \"f\": []\n}"
        );
        assert_eq!(b64_std(b"sig:f"), "c2lnOmY=");
        assert_eq!(b64_decode("c2lnOmY=").unwrap(), b"sig:f");
        assert_eq!(split_words("a b  c d e", 2), vec!["a b  ", "c d ", "e"]);
        assert_eq!(split_words("", 4), vec![String::new()]);
        assert_eq!(pct_decode("a%3Ab+c%zz", true), "a:b c%zz");
    }
}
