//! The typed Gemini wire model: the one representation of Gemini's
//! `generateContent` request and answer that every translator reads and
//! writes (OpenAI Chat Completions today; Responses and Anthropic Messages
//! next). It depends on nothing else in the crate.
//!
//! Field names and meanings follow Google's API reference:
//! <https://ai.google.dev/api/generate-content> (request, `GenerateContentResponse`,
//! `Candidate`, `UsageMetadata`, `GroundingMetadata`, `LogprobsResult`),
//! <https://ai.google.dev/api/caching#Content> (`Content`, `Part`, `Blob`,
//! `FunctionCall`, `FunctionResponse`, `FileData`, `ExecutableCode`,
//! `CodeExecutionResult`, `Tool`, `ToolConfig`) and
//! <https://ai.google.dev/api/generate-content#v1beta.GenerationConfig>.
//! The project's summary of both wire formats is `docs/wire-formats.md`.
//!
//! Three rules make the model safe to put in front of an API that keeps
//! growing:
//!
//! * **Unknown members are data.** Every struct has an `extra` catch-all
//!   ([`Extra`]): members it does not name are kept verbatim (borrowed raw
//!   JSON, in input order) and serialized back after the named ones. A part
//!   kind we do not model is such a member of [`Part`].
//! * **Odd types are absent, not errors.** Deserialization is lenient: a
//!   named member whose JSON type is not the modelled one (a number where a
//!   string belongs, an array where an object belongs) reads as absent
//!   (`None`, empty, or the default), and an array element that is not an
//!   object reads as an empty struct. Only malformed JSON fails. This is the
//!   behaviour of the old `serde_json::Value` walks, kept in one place.
//! * **Enums are open.** [`FinishReason`] and [`BlockReason`] keep values
//!   they do not know as `Unknown(text)`.
//!
//! Strings borrow from the input when they have no escapes (`Cow<'a, str>`)
//! and unknown members are borrowed slices (`&RawValue`), so reading an
//! answer copies little. Deserialize from a borrowed buffer
//! (`serde_json::from_slice` / `from_str`); `from_reader` and `from_value`
//! cannot lend the raw slices and fail when an unknown member is present.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Number, Value};

// ---------------------------------------------------------------------------
// The catch-all

/// Members of a JSON object that the model does not name, kept verbatim in
/// the order they came (raw JSON: borrowed from the input when read, owned
/// when built), and written back after the named members.
#[derive(Clone, Debug, Default)]
pub struct Extra<'a>(pub Vec<(Cow<'a, str>, Cow<'a, RawValue>)>);

impl<'a> Extra<'a> {
    /// Whether no unknown member was kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw JSON of the last member named `key`, if any.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// Keep `value` (serialized now) under `key`.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: impl Into<Cow<'a, str>>, value: &T) {
        if let Ok(raw) = serde_json::value::to_raw_value(value) {
            self.0.push((key.into(), Cow::Owned(raw)));
        }
    }
}

impl PartialEq for Extra<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.get() == v2.get())
    }
}

impl Serialize for Extra<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------
// Lenient reading

/// Reading a member leniently: a JSON value of another type than the
/// modelled one gives the type's "absent" value instead of an error (only
/// malformed JSON fails). Implemented for every member type of the model.
pub trait Loose<'de>: Sized {
    /// Read `Self` from `d`, absent on a type mismatch.
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// A [`DeserializeSeed`] reading `T` through [`Loose`].
struct LooseSeed<T>(PhantomData<T>);

impl<'de, T: Loose<'de>> DeserializeSeed<'de> for LooseSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::loose(d)
    }
}

/// Read one member value of a map leniently.
fn loose_value<'de, T: Loose<'de>, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value_seed(LooseSeed(PhantomData))
}

/// Any JSON value, reduced to what the scalar readers need.
enum Scalar<'de> {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    /// `null`, an array or an object (drained).
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
        drain_seq(seq).map(|()| Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
        drain_map(map).map(|()| Scalar::Other)
    }
}

/// Consume (and so validate) the rest of an array.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Consume (and so validate) the rest of an object.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

impl<'de: 'a, 'a> Loose<'de> for Option<Cow<'a, str>> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Str(s) => Some(s),
            _ => None,
        })
    }
}

impl<'de> Loose<'de> for Option<bool> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Bool(b) => Some(b),
            _ => None,
        })
    }
}

/// Non-negative integers only (as `serde_json::Value::as_u64`).
impl<'de> Loose<'de> for Option<u64> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match scalar(d)? {
            Scalar::U64(n) => Some(n),
            _ => None,
        })
    }
}

/// Integers in `i64` range (as `serde_json::Value::as_i64`).
impl<'de> Loose<'de> for Option<i64> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match scalar(d)? {
            Scalar::U64(n) => i64::try_from(n).ok(),
            Scalar::I64(n) => Some(n),
            _ => None,
        })
    }
}

/// Any number (as `serde_json::Value::as_f64`).
impl<'de> Loose<'de> for Option<f64> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match scalar(d)? {
            Scalar::U64(n) => Some(n as f64),
            Scalar::I64(n) => Some(n as f64),
            Scalar::F64(n) => Some(n),
            _ => None,
        })
    }
}

/// Any number, exactly as written (integers stay integers).
impl<'de> Loose<'de> for Option<Number> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match scalar(d)? {
            Scalar::U64(n) => Some(n.into()),
            Scalar::I64(n) => Some(n.into()),
            Scalar::F64(n) => Number::from_f64(n),
            _ => None,
        })
    }
}

/// Free-form JSON (a function's `args`, a schema); `null` is absent.
impl<'de> Loose<'de> for Option<Value> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Some(Value::deserialize(d)?).filter(|v| !v.is_null()))
    }
}

/// Free-form JSON kept raw; `null` is absent.
impl<'de: 'a, 'a> Loose<'de> for Option<Cow<'a, RawValue>> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok((raw.get() != "null").then_some(Cow::Borrowed(raw)))
    }
}

/// An array; anything else is empty. Elements are read leniently.
impl<'de, T: Loose<'de>> Loose<'de> for Vec<T> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Vec<T>>::loose(d)?.unwrap_or_default())
    }
}

/// An array (`Some`, elements read leniently); anything else is `None`.
impl<'de, T: Loose<'de>> Loose<'de> for Option<Vec<T>> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Loose<'de>> Visitor<'de> for V<T> {
            type Value = Option<Vec<T>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(v) = seq.next_element_seed(LooseSeed(PhantomData))? {
                    out.push(v);
                }
                Ok(Some(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| None)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An object key, borrowed unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match scalar(d)? {
            Scalar::Str(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("expected a string key")),
        }
    }
}

/// A struct of the model: read from the members of a JSON object.
pub trait WireObject<'de>: Sized + Default {
    /// Read the struct from an object's members (unknown ones go to `extra`).
    fn read_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Reads a [`WireObject`] from an object; `None` (drained) for anything else.
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: WireObject<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::read_map(map).map(Some)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        drain_seq(seq).map(|()| None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
}

/// Read a [`WireObject`] from `d`: `None` when it is not an object.
pub fn read_object<'de, T: WireObject<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(ObjectVisitor(PhantomData))
}

/// Read `T` leniently from JSON bytes (see [`Loose`]): a top-level value of
/// another type gives `T`'s absent value; only malformed JSON (or trailing
/// bytes) is an error.
pub fn loose_from_slice<'de, T: Loose<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = T::loose(&mut de)?;
    de.end()?;
    Ok(v)
}

/// [`loose_from_slice`] over a `str`.
pub fn loose_from_str<'de, T: Loose<'de>>(s: &'de str) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(s);
    let v = T::loose(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Whether a member is left out when serializing.
pub trait Absent {
    /// `true` for `None` and empty lists.
    fn absent(&self) -> bool;
}

impl<T> Absent for Option<T> {
    fn absent(&self) -> bool {
        self.is_none()
    }
}

impl<T> Absent for Vec<T> {
    fn absent(&self) -> bool {
        self.is_empty()
    }
}

/// Declares a struct of the model: its members (JSON name → field), an
/// `extra` catch-all, `Serialize` (absent members left out, `extra` last),
/// a strict-on-shape `Deserialize` (must be an object) and lenient
/// [`Loose`] reading.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$a:lifetime> {
            $( $(#[$fmeta:meta])* $key:literal => $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize)]
        pub struct $name<$a> {
            $(
                $(#[$fmeta])*
                #[serde(rename = $key, skip_serializing_if = "Absent::absent")]
                pub $field: $ty,
            )*
            /// Members this model does not name, kept verbatim.
            #[serde(flatten)]
            pub extra: Extra<$a>,
        }

        impl<'de: $a, $a> WireObject<'de> for $name<$a> {
            fn read_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut out = Self::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    match &*k {
                        $( $key => out.$field = loose_value(&mut map)?, )*
                        _ => {
                            let raw = map.next_value::<&'de RawValue>()?;
                            out.extra.0.push((k, Cow::Borrowed(raw)));
                        }
                    }
                }
                Ok(out)
            }
        }

        impl<'de: $a, $a> Deserialize<'de> for $name<$a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                read_object(d)?.ok_or_else(|| de::Error::custom("expected a JSON object"))
            }
        }

        /// Not an object: the empty struct.
        impl<'de: $a, $a> Loose<'de> for $name<$a> {
            fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(read_object(d)?.unwrap_or_default())
            }
        }

        /// Not an object: `None`.
        impl<'de: $a, $a> Loose<'de> for Option<$name<$a>> {
            fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                read_object(d)
            }
        }
    };
}

/// Declares an open string enum: known values as variants, any other text
/// as `Other`, read leniently (a non-string is absent) and written as the
/// string.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident<$a:lifetime> {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name<$a> {
            $( $(#[$vmeta])* $variant, )*
            /// A value this model does not know, kept as sent.
            Unknown(Cow<$a, str>),
        }

        impl<$a> $name<$a> {
            /// The value from its wire text.
            pub fn from_text(s: Cow<$a, str>) -> Self {
                match &*s {
                    $( $text => $name::$variant, )*
                    _ => $name::Unknown(s),
                }
            }

            /// The wire text.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(s) => s,
                }
            }
        }

        impl Serialize for $name<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de: $a, $a> Deserialize<'de> for $name<$a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match scalar(d)? {
                    Scalar::Str(s) => Ok($name::from_text(s)),
                    _ => Err(de::Error::custom("expected a string")),
                }
            }
        }

        impl<'de: $a, $a> Loose<'de> for Option<$name<$a>> {
            fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Option::<Cow<$a, str>>::loose(d)?.map($name::from_text))
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Content

wire_struct! {
    /// A turn of the conversation (`Content`): its parts and who produced
    /// it (`user` or `model`; absent in `systemInstruction`).
    /// <https://ai.google.dev/api/caching#Content>
    pub struct Content<'a> {
        /// The ordered parts.
        "parts" => parts: Vec<Part<'a>>,
        /// `user` or `model`.
        "role" => role: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// One piece of a turn (`Part`). Google's `Part` is a union: exactly one
    /// of the data members is set (see [`Part::kind`]); `thought` and
    /// `thoughtSignature` qualify it. A part kind this model does not know
    /// stays in `extra` and reads as [`PartKind::Unknown`].
    /// Members are in JSON name order.
    /// <https://ai.google.dev/api/caching#Part>
    pub struct Part<'a> {
        /// The result of running `executableCode`.
        "codeExecutionResult" => code_execution_result: Option<CodeExecutionResult<'a>>,
        /// Code the model wrote for the code execution tool.
        "executableCode" => executable_code: Option<ExecutableCode<'a>>,
        /// Data referenced by URI.
        "fileData" => file_data: Option<FileData<'a>>,
        /// A call the model asks the client to make.
        "functionCall" => function_call: Option<FunctionCall<'a>>,
        /// The client's result of a `functionCall`.
        "functionResponse" => function_response: Option<FunctionResponse<'a>>,
        /// Inline bytes (images, audio, documents), base64.
        "inlineData" => inline_data: Option<Blob<'a>>,
        /// Text.
        "text" => text: Option<Cow<'a, str>>,
        /// The part is a thought (summary), not answer text.
        "thought" => thought: Option<bool>,
        /// Opaque signature of the model's reasoning, to be sent back with
        /// the part in the next request.
        "thoughtSignature" => thought_signature: Option<Cow<'a, str>>,
    }
}

/// What a [`Part`] holds, in the order the members are checked (a
/// well-formed part has exactly one).
#[derive(Clone, Copy, Debug)]
pub enum PartKind<'p, 'a> {
    /// `functionCall`.
    FunctionCall(&'p FunctionCall<'a>),
    /// `text` with `thought: true`.
    Thought(&'p str),
    /// `text`.
    Text(&'p str),
    /// `executableCode`.
    ExecutableCode(&'p ExecutableCode<'a>),
    /// `codeExecutionResult`.
    CodeExecutionResult(&'p CodeExecutionResult<'a>),
    /// `inlineData`.
    InlineData(&'p Blob<'a>),
    /// `fileData`.
    FileData(&'p FileData<'a>),
    /// `functionResponse`.
    FunctionResponse(&'p FunctionResponse<'a>),
    /// Nothing this model names (a new part kind, kept in `extra`, or a
    /// thought without text).
    Unknown,
}

impl<'a> Part<'a> {
    /// A text part.
    pub fn text(t: impl Into<Cow<'a, str>>) -> Self {
        Part {
            text: Some(t.into()),
            ..Part::default()
        }
    }

    /// What the part holds.
    pub fn kind(&self) -> PartKind<'_, 'a> {
        if let Some(fc) = &self.function_call {
            return PartKind::FunctionCall(fc);
        }
        if self.thought == Some(true) {
            return self
                .text
                .as_deref()
                .map_or(PartKind::Unknown, PartKind::Thought);
        }
        if let Some(t) = &self.text {
            return PartKind::Text(t);
        }
        if let Some(c) = &self.executable_code {
            return PartKind::ExecutableCode(c);
        }
        if let Some(r) = &self.code_execution_result {
            return PartKind::CodeExecutionResult(r);
        }
        if let Some(b) = &self.inline_data {
            return PartKind::InlineData(b);
        }
        if let Some(f) = &self.file_data {
            return PartKind::FileData(f);
        }
        if let Some(f) = &self.function_response {
            return PartKind::FunctionResponse(f);
        }
        PartKind::Unknown
    }

    /// The non-empty `thoughtSignature`.
    pub fn signature(&self) -> Option<&str> {
        self.thought_signature.as_deref().filter(|s| !s.is_empty())
    }
}

wire_struct! {
    /// Inline bytes (`Blob`). <https://ai.google.dev/api/caching#Blob>
    pub struct Blob<'a> {
        /// Base64 data.
        "data" => data: Option<Cow<'a, str>>,
        /// IANA MIME type.
        "mimeType" => mime_type: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// Data referenced by URI (`FileData`). <https://ai.google.dev/api/caching#FileData>
    pub struct FileData<'a> {
        /// The URI (a Files API URI, or an http(s) URL).
        "fileUri" => file_uri: Option<Cow<'a, str>>,
        /// IANA MIME type.
        "mimeType" => mime_type: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// A function call predicted by the model (`FunctionCall`).
    /// <https://ai.google.dev/api/caching#FunctionCall>
    pub struct FunctionCall<'a> {
        /// The arguments, a JSON object.
        "args" => args: Option<Value>,
        /// Call id (some models set it; echoed in the `functionResponse`).
        "id" => id: Option<Cow<'a, str>>,
        /// The function's name.
        "name" => name: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// The result of a function call (`FunctionResponse`).
    /// <https://ai.google.dev/api/caching#FunctionResponse>
    pub struct FunctionResponse<'a> {
        /// The id of the call answered.
        "id" => id: Option<Cow<'a, str>>,
        /// The function's name.
        "name" => name: Option<Cow<'a, str>>,
        /// The result, a JSON object.
        "response" => response: Option<Value>,
    }
}

wire_struct! {
    /// Code written by the model for the code execution tool (`ExecutableCode`).
    /// <https://ai.google.dev/api/caching#ExecutableCode>
    pub struct ExecutableCode<'a> {
        /// The code.
        "code" => code: Option<Cow<'a, str>>,
        /// `PYTHON` (or `LANGUAGE_UNSPECIFIED`).
        "language" => language: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// What running `executableCode` gave (`CodeExecutionResult`).
    /// <https://ai.google.dev/api/caching#CodeExecutionResult>
    pub struct CodeExecutionResult<'a> {
        /// `OUTCOME_OK`, `OUTCOME_FAILED`, `OUTCOME_DEADLINE_EXCEEDED`, ….
        "outcome" => outcome: Option<Cow<'a, str>>,
        /// stdout on success, else stderr or a description.
        "output" => output: Option<Cow<'a, str>>,
    }
}

// ---------------------------------------------------------------------------
// Request

wire_struct! {
    /// The body of `models.generateContent` / `streamGenerateContent`.
    /// Members are in JSON name order.
    /// <https://ai.google.dev/api/generate-content#request-body>
    pub struct GenerateContentRequest<'a> {
        /// `cachedContents/{id}` to use as context.
        "cachedContent" => cached_content: Option<Cow<'a, str>>,
        /// The conversation so far.
        "contents" => contents: Vec<Content<'a>>,
        /// Sampling and output options.
        "generationConfig" => generation_config: Option<GenerationConfig<'a>>,
        /// Safety thresholds per harm category (free-form: passed as given).
        "safetySettings" => safety_settings: Option<Value>,
        /// The system prompt.
        "systemInstruction" => system_instruction: Option<Content<'a>>,
        /// How the model may use the tools.
        "toolConfig" => tool_config: Option<ToolConfig<'a>>,
        /// Tools the model may use.
        "tools" => tools: Vec<Tool<'a>>,
    }
}

wire_struct! {
    /// A tool (`Tool`): function declarations or one of Google's built-in
    /// tools. Members are in JSON name order.
    /// <https://ai.google.dev/api/caching#Tool>
    pub struct Tool<'a> {
        /// The code execution tool (`{}`).
        "codeExecution" => code_execution: Option<Value>,
        /// Functions the model may call.
        "functionDeclarations" => function_declarations: Vec<FunctionDeclaration<'a>>,
        /// Google Search grounding (`{}`).
        "googleSearch" => google_search: Option<Value>,
        /// URL context retrieval (`{}`).
        "urlContext" => url_context: Option<Value>,
    }
}

wire_struct! {
    /// A function the model may call (`FunctionDeclaration`).
    /// <https://ai.google.dev/api/caching#FunctionDeclaration>
    pub struct FunctionDeclaration<'a> {
        /// What the function does.
        "description" => description: Option<Cow<'a, str>>,
        /// The function's name.
        "name" => name: Option<Cow<'a, str>>,
        /// Its parameters, an OpenAPI schema object.
        "parameters" => parameters: Option<Value>,
        /// Its parameters, a JSON Schema.
        "parametersJsonSchema" => parameters_json_schema: Option<Value>,
    }
}

wire_struct! {
    /// How the model may use the tools (`ToolConfig`).
    /// <https://ai.google.dev/api/caching#ToolConfig>
    pub struct ToolConfig<'a> {
        /// Function calling mode and allowed names.
        "functionCallingConfig" => function_calling_config: Option<FunctionCallingConfig<'a>>,
    }
}

wire_struct! {
    /// `FunctionCallingConfig`. <https://ai.google.dev/api/caching#FunctionCallingConfig>
    pub struct FunctionCallingConfig<'a> {
        /// Only these functions may be called (mode `ANY`).
        "allowedFunctionNames" => allowed_function_names: Option<Vec<Cow<'a, str>>>,
        /// `AUTO`, `ANY`, `NONE` or `VALIDATED`.
        "mode" => mode: Option<Cow<'a, str>>,
    }
}

/// A string element of a list: non-strings read as `""`.
impl<'de: 'a, 'a> Loose<'de> for Cow<'a, str> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Cow<'a, str>>::loose(d)?.unwrap_or_default())
    }
}

wire_struct! {
    /// Sampling and output options (`GenerationConfig`). Numbers the client
    /// sent are kept exactly as written. Members are in JSON name order.
    /// <https://ai.google.dev/api/generate-content#v1beta.GenerationConfig>
    pub struct GenerationConfig<'a> {
        /// Number of candidates to generate.
        "candidateCount" => candidate_count: Option<i64>,
        /// Frequency penalty.
        "frequencyPenalty" => frequency_penalty: Option<Number>,
        /// Number of top logprobs per token.
        "logprobs" => logprobs: Option<i64>,
        /// Output token limit.
        "maxOutputTokens" => max_output_tokens: Option<i64>,
        /// Presence penalty.
        "presencePenalty" => presence_penalty: Option<Number>,
        /// The answer's JSON Schema (with `responseMimeType` JSON).
        "responseJsonSchema" => response_json_schema: Option<Value>,
        /// Return logprobs.
        "responseLogprobs" => response_logprobs: Option<bool>,
        /// `text/plain`, `application/json`, ….
        "responseMimeType" => response_mime_type: Option<Cow<'a, str>>,
        /// `TEXT`, `IMAGE`, `AUDIO`.
        "responseModalities" => response_modalities: Option<Vec<Cow<'a, str>>>,
        /// The answer's schema (OpenAPI subset).
        "responseSchema" => response_schema: Option<Value>,
        /// Sampling seed.
        "seed" => seed: Option<i64>,
        /// Stop sequences.
        "stopSequences" => stop_sequences: Option<Vec<Cow<'a, str>>>,
        /// Temperature.
        "temperature" => temperature: Option<Number>,
        /// Thinking budget, level and thought summaries.
        "thinkingConfig" => thinking_config: Option<ThinkingConfig<'a>>,
        /// Top-k.
        "topK" => top_k: Option<i64>,
        /// Top-p.
        "topP" => top_p: Option<Number>,
    }
}

wire_struct! {
    /// Thinking options (`ThinkingConfig`); client-supplied members of other
    /// names or types are kept in `extra` and passed on as given.
    /// <https://ai.google.dev/api/generate-content#ThinkingConfig>
    pub struct ThinkingConfig<'a> {
        /// Return thought summaries.
        "includeThoughts" => include_thoughts: Option<bool>,
        /// Thinking token budget (`-1` dynamic, `0` off).
        "thinkingBudget" => thinking_budget: Option<i64>,
        /// `low`, `high`, … (Gemini 3).
        "thinkingLevel" => thinking_level: Option<Cow<'a, str>>,
    }
}

// ---------------------------------------------------------------------------
// Response

wire_struct! {
    /// A `generateContent` answer, or one event of `streamGenerateContent`
    /// (`GenerateContentResponse`).
    /// <https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse>
    pub struct GenerateContentResponse<'a> {
        /// The candidate answers (none when the prompt was blocked).
        "candidates" => candidates: Vec<Candidate<'a>>,
        /// Why the prompt was blocked, if it was.
        "promptFeedback" => prompt_feedback: Option<PromptFeedback<'a>>,
        /// Token counts.
        "usageMetadata" => usage_metadata: Option<UsageMetadata<'a>>,
        /// The model version that answered.
        "modelVersion" => model_version: Option<Cow<'a, str>>,
        /// The answer's id.
        "responseId" => response_id: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// One candidate answer (`Candidate`).
    /// <https://ai.google.dev/api/generate-content#candidate>
    pub struct Candidate<'a> {
        /// The generated content.
        "content" => content: Option<Content<'a>>,
        /// Why generation stopped (absent while streaming).
        "finishReason" => finish_reason: Option<FinishReason<'a>>,
        /// Details of the finish reason.
        "finishMessage" => finish_message: Option<Cow<'a, str>>,
        /// The candidate's index among the answer's candidates.
        "index" => index: Option<u64>,
        /// Sources of a grounded answer.
        "groundingMetadata" => grounding_metadata: Option<GroundingMetadata<'a>>,
        /// Token log probabilities (when `responseLogprobs` was asked).
        "logprobsResult" => logprobs_result: Option<LogprobsResult<'a>>,
        /// Average log probability of the candidate's tokens.
        "avgLogprobs" => avg_logprobs: Option<f64>,
    }
}

impl<'a> Candidate<'a> {
    /// `content.parts`, empty when missing.
    pub fn parts(&self) -> &[Part<'a>] {
        self.content.as_ref().map_or(&[], |c| &c.parts)
    }
}

wire_enum! {
    /// Why a candidate stopped (`FinishReason`); unknown values are kept.
    /// <https://ai.google.dev/api/generate-content#FinishReason>
    pub enum FinishReason<'a> {
        /// Not set.
        Unspecified = "FINISH_REASON_UNSPECIFIED",
        /// Natural stop or a stop sequence.
        Stop = "STOP",
        /// The token limit was reached.
        MaxTokens = "MAX_TOKENS",
        /// Flagged for safety.
        Safety = "SAFETY",
        /// Flagged for recitation.
        Recitation = "RECITATION",
        /// Unsupported language.
        Language = "LANGUAGE",
        /// Another reason.
        Other = "OTHER",
        /// Forbidden terms.
        Blocklist = "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent = "PROHIBITED_CONTENT",
        /// Sensitive personally identifiable information.
        Spii = "SPII",
        /// An invalid function call.
        MalformedFunctionCall = "MALFORMED_FUNCTION_CALL",
        /// A generated image was flagged for safety.
        ImageSafety = "IMAGE_SAFETY",
        /// A generated image had prohibited content.
        ImageProhibitedContent = "IMAGE_PROHIBITED_CONTENT",
        /// A generated image was flagged for recitation.
        ImageRecitation = "IMAGE_RECITATION",
        /// A generated image was flagged for another reason.
        ImageOther = "IMAGE_OTHER",
        /// A tool call the model made was not expected.
        UnexpectedToolCall = "UNEXPECTED_TOOL_CALL",
        /// Too many tool calls.
        TooManyToolCalls = "TOO_MANY_TOOL_CALLS",
    }
}

wire_enum! {
    /// Why a prompt was blocked (`BlockReason`); unknown values are kept.
    /// <https://ai.google.dev/api/generate-content#BlockReason>
    pub enum BlockReason<'a> {
        /// Not set.
        Unspecified = "BLOCK_REASON_UNSPECIFIED",
        /// Safety.
        Safety = "SAFETY",
        /// Another reason.
        Other = "OTHER",
        /// Forbidden terms.
        Blocklist = "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent = "PROHIBITED_CONTENT",
        /// Unsafe generated image content.
        ImageSafety = "IMAGE_SAFETY",
    }
}

wire_struct! {
    /// Feedback on the prompt (`PromptFeedback`).
    /// <https://ai.google.dev/api/generate-content#PromptFeedback>
    pub struct PromptFeedback<'a> {
        /// Set when the prompt was blocked.
        "blockReason" => block_reason: Option<BlockReason<'a>>,
    }
}

wire_struct! {
    /// Token counts (`UsageMetadata`).
    /// <https://ai.google.dev/api/generate-content#UsageMetadata>
    pub struct UsageMetadata<'a> {
        /// Prompt tokens (including cached content).
        "promptTokenCount" => prompt_token_count: Option<u64>,
        /// Tokens of the cached content.
        "cachedContentTokenCount" => cached_content_token_count: Option<u64>,
        /// Tokens of all candidates.
        "candidatesTokenCount" => candidates_token_count: Option<u64>,
        /// Tokens of tool-use prompts.
        "toolUsePromptTokenCount" => tool_use_prompt_token_count: Option<u64>,
        /// Thinking tokens.
        "thoughtsTokenCount" => thoughts_token_count: Option<u64>,
        /// Everything.
        "totalTokenCount" => total_token_count: Option<u64>,
    }
}

wire_struct! {
    /// Sources of a grounded answer (`GroundingMetadata`).
    /// <https://ai.google.dev/api/generate-content#GroundingMetadata>
    pub struct GroundingMetadata<'a> {
        /// The sources.
        "groundingChunks" => grounding_chunks: Vec<GroundingChunk<'a>>,
        /// Which text each source supports.
        "groundingSupports" => grounding_supports: Vec<GroundingSupport<'a>>,
    }
}

wire_struct! {
    /// One source (`GroundingChunk`); non-web sources stay in `extra`.
    /// <https://ai.google.dev/api/generate-content#GroundingChunk>
    pub struct GroundingChunk<'a> {
        /// A web page.
        "web" => web: Option<WebSource<'a>>,
    }
}

wire_struct! {
    /// A web source (`GroundingChunk.Web`).
    /// <https://ai.google.dev/api/generate-content#Web>
    pub struct WebSource<'a> {
        /// Its title.
        "title" => title: Option<Cow<'a, str>>,
        /// Its URI.
        "uri" => uri: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// Text supported by sources (`GroundingSupport`).
    /// <https://ai.google.dev/api/generate-content#GroundingSupport>
    pub struct GroundingSupport<'a> {
        /// Indices into `groundingChunks` (non-integers read as `None`).
        "groundingChunkIndices" => grounding_chunk_indices: Vec<Option<u64>>,
        /// The supported text.
        "segment" => segment: Option<Segment<'a>>,
    }
}

wire_struct! {
    /// A span of the answer (`Segment`): UTF-8 byte offsets into a part.
    /// <https://ai.google.dev/api/generate-content#Segment>
    pub struct Segment<'a> {
        /// The part the offsets refer to.
        "partIndex" => part_index: Option<u64>,
        /// Start byte (inclusive).
        "startIndex" => start_index: Option<u64>,
        /// End byte (exclusive).
        "endIndex" => end_index: Option<u64>,
        /// The text of the span.
        "text" => text: Option<Cow<'a, str>>,
    }
}

wire_struct! {
    /// Token log probabilities (`LogprobsResult`).
    /// <https://ai.google.dev/api/generate-content#LogprobsResult>
    pub struct LogprobsResult<'a> {
        /// The chosen token at each step (`None`: not an array).
        "chosenCandidates" => chosen_candidates: Option<Vec<LogprobsCandidate<'a>>>,
        /// The most likely tokens at each step.
        "topCandidates" => top_candidates: Vec<TopCandidates<'a>>,
    }
}

wire_struct! {
    /// The most likely tokens of one step (`TopCandidates`).
    /// <https://ai.google.dev/api/generate-content#TopCandidates>
    pub struct TopCandidates<'a> {
        /// Sorted by log probability, descending.
        "candidates" => candidates: Vec<LogprobsCandidate<'a>>,
    }
}

wire_struct! {
    /// One token and its log probability (`LogprobsResult.Candidate`).
    /// <https://ai.google.dev/api/generate-content#Candidate_1>
    pub struct LogprobsCandidate<'a> {
        /// The token.
        "token" => token: Option<Cow<'a, str>>,
        /// Its log probability.
        "logProbability" => log_probability: Option<f64>,
    }
}

wire_struct! {
    /// Google's error object (`{"error": Status}` bodies and in-stream
    /// errors). <https://ai.google.dev/api/rest/v1beta/Status>
    pub struct Status<'a> {
        /// HTTP-style code.
        "code" => code: Option<i64>,
        /// Explanation.
        "message" => message: Option<Cow<'a, str>>,
        /// `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ….
        "status" => status: Option<Cow<'a, str>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> GenerateContentResponse<'_> {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn unknown_part_kind_is_kept_and_written_back() {
        let s = r#"{"videoMetadata":{"startOffset":"1s"},"thoughtSignature":"c2ln","partMetadata":[1, 2]}"#;
        let p: Part = serde_json::from_str(s).unwrap();
        assert!(matches!(p.kind(), PartKind::Unknown));
        assert_eq!(p.signature(), Some("c2ln"));
        assert_eq!(
            p.extra.get("videoMetadata").map(RawValue::get),
            Some(r#"{"startOffset":"1s"}"#)
        );
        // Named members first (in name order), then the unknown ones as sent.
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"thoughtSignature":"c2ln","videoMetadata":{"startOffset":"1s"},"partMetadata":[1, 2]}"#
        );
    }

    #[test]
    fn unknown_members_of_response_candidate_and_usage_are_kept() {
        let r = parse(
            r#"{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP",
                "safetyRatings":[{"category":"HARM_CATEGORY_HATE_SPEECH","probability":"NEGLIGIBLE"}],"index":0}],
                "usageMetadata":{"promptTokenCount":3,"totalTokenCount":5,"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}]},
                "createTime":"2025-01-01T00:00:00Z","responseId":"r"}"#,
        );
        let c = &r.candidates[0];
        assert_eq!(c.finish_reason, Some(FinishReason::Stop));
        assert!(c.extra.get("safetyRatings").is_some());
        let u = r.usage_metadata.as_ref().unwrap();
        assert_eq!(
            (u.prompt_token_count, u.total_token_count),
            (Some(3), Some(5))
        );
        assert_eq!(
            u.extra.get("promptTokensDetails").map(RawValue::get),
            Some(r#"[{"modality":"TEXT","tokenCount":3}]"#)
        );
        assert_eq!(
            r.extra.get("createTime").map(RawValue::get),
            Some(r#""2025-01-01T00:00:00Z""#)
        );
        assert_eq!(r.response_id.as_deref(), Some("r"));
        // Borrowed: no escapes, no copies.
        assert!(matches!(r.response_id, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let r = parse(
            r#"{"candidates":[{"finishReason":"SOMETHING_NEW"}],"promptFeedback":{"blockReason":"NEW_REASON"}}"#,
        );
        let reason = r.candidates[0].finish_reason.as_ref().unwrap();
        assert_eq!(
            reason,
            &FinishReason::Unknown(Cow::Borrowed("SOMETHING_NEW"))
        );
        assert_eq!(reason.as_str(), "SOMETHING_NEW");
        let block = r.prompt_feedback.unwrap().block_reason.unwrap();
        assert_eq!(block.as_str(), "NEW_REASON");
        assert_eq!(serde_json::to_string(&block).unwrap(), r#""NEW_REASON""#);
    }

    #[test]
    fn odd_types_read_as_absent() {
        let r = parse(
            r#"{"candidates":[null, 1, "x", [], {"index": -1, "content": {"parts": {"text": "x"}}},
                {"index": 1e30, "finishReason": 7, "content": {"parts": [null, {"text": 5, "thought": "yes"},
                 {"functionCall": [1]}, {"inlineData": {"data": 5}}]}}],
                "usageMetadata": [1], "responseId": 5, "promptFeedback": {"blockReason": {"x": 1}}}"#,
        );
        assert_eq!(r.candidates.len(), 6);
        assert!(r.candidates[..4].iter().all(|c| *c == Candidate::default()));
        assert_eq!(r.candidates[4].index, None);
        assert!(r.candidates[4].parts().is_empty());
        let c = &r.candidates[5];
        assert_eq!((c.index, &c.finish_reason), (None, &None));
        assert_eq!(c.parts().len(), 4);
        assert!(
            c.parts()[..3]
                .iter()
                .all(|p| matches!(p.kind(), PartKind::Unknown))
        );
        assert_eq!(c.parts()[3].inline_data.as_ref().unwrap().data, None);
        assert!(r.usage_metadata.is_none());
        assert!(r.response_id.is_none());
        assert!(r.prompt_feedback.unwrap().block_reason.is_none());
        // Malformed JSON and a non-object top level are errors.
        assert!(serde_json::from_str::<GenerateContentResponse>("{\"candidates\": [").is_err());
        assert!(serde_json::from_str::<GenerateContentResponse>("[]").is_err());
    }

    #[test]
    fn request_serializes_named_members_in_order_and_skips_absent() {
        let mut req = GenerateContentRequest {
            contents: vec![Content {
                parts: vec![Part::text("hi")],
                role: Some("user".into()),
                ..Content::default()
            }],
            generation_config: Some(GenerationConfig {
                temperature: Some(0.into()),
                thinking_config: Some(ThinkingConfig {
                    include_thoughts: Some(true),
                    ..ThinkingConfig::default()
                }),
                ..GenerationConfig::default()
            }),
            ..GenerateContentRequest::default()
        };
        req.extra.insert("labels", &serde_json::json!({"a": "b"}));
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"contents":[{"parts":[{"text":"hi"}],"role":"user"}],"generationConfig":{"temperature":0,"thinkingConfig":{"includeThoughts":true}},"labels":{"a":"b"}}"#
        );
        // And back.
        let s = serde_json::to_string(&req).unwrap();
        let back: GenerateContentRequest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, req);
    }
}
