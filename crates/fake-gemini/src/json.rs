//! Output JSON that keeps insertion order ([`Json`]), written in Google's two
//! styles: pretty (2-space indent, `"key": value`) and one-line compact
//! (`{"a": 1,"b": [1,2]}`), with `<`/`>` escaped as `\u003c`/`\u003e`.

use std::borrow::Cow;

use serde_json::Value;

// ---------------------------------------------------------------------------
// Ordered JSON with Google's two output styles
// ---------------------------------------------------------------------------

/// Output JSON value; objects keep insertion order (serde_json's map is sorted).
#[derive(Clone, Debug)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    F64(f64),
    F32(f32),
    Str(Cow<'static, str>),
    Arr(Vec<Json>),
    Obj(Vec<(Cow<'static, str>, Json)>),
}

impl Json {
    pub(crate) fn s(v: impl Into<Cow<'static, str>>) -> Json {
        Json::Str(v.into())
    }

    pub(crate) fn obj<const N: usize>(items: [(&'static str, Json); N]) -> Json {
        Json::Obj(
            items
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        )
    }

    pub(crate) fn push(&mut self, k: &'static str, v: Json) {
        if let Json::Obj(m) = self {
            m.push((Cow::Borrowed(k), v));
        }
    }

    pub(crate) fn from_value(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Json::Int(i)
                } else {
                    Json::F64(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => Json::s(s.clone()),
            Value::Array(a) => Json::Arr(a.iter().map(Json::from_value).collect()),
            Value::Object(m) => Json::Obj(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Json::from_value(v)))
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

pub(crate) fn write_scalar(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::F64(f) => write_f64(*f, out),
        Json::F32(f) => {
            if f.is_finite() {
                out.push_str(&f.to_string())
            } else {
                out.push('0')
            }
        }
        Json::Str(s) => write_str(s, out),
        Json::Arr(_) | Json::Obj(_) => {}
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

pub(crate) fn write_pretty(j: &Json, out: &mut String, ind: usize) {
    match j {
        Json::Arr(v) if v.is_empty() => out.push_str("[]"),
        Json::Obj(m) if m.is_empty() => out.push_str("{}"),
        Json::Arr(v) => {
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
        Json::Obj(m) => {
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

pub(crate) fn write_compact(j: &Json, out: &mut String) {
    match j {
        Json::Arr(v) => {
            out.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(x, out);
            }
            out.push(']');
        }
        Json::Obj(m) => {
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
        let j = Json::obj([
            ("a", Json::Int(1)),
            ("b", Json::Arr(vec![Json::Int(1), Json::F64(0.5)])),
            ("c", Json::obj([("d", Json::s("<x>\"\n"))])),
            ("e", Json::Obj(vec![])),
            ("f", Json::Arr(vec![])),
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
