//! The reading and writing rules behind the Gemini wire model
//! ([`crate::gemini::types`]): the verbatim catch-all for unknown members
//! ([`Extra`]), lenient reading ([`Loose`]: a value of another JSON type
//! than the modelled one reads as absent, only malformed JSON fails), and
//! the `wire_struct!` / `wire_enum!` macros that declare the model's
//! structs and open enums with those rules. Depends on nothing of ours.

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

    /// [`Loose::loose`] into `slot`, replacing it. Structs and lists read in
    /// place, so a large struct is not copied on its way into its parent.
    fn loose_into<D: Deserializer<'de>>(d: D, slot: &mut Self) -> Result<(), D::Error> {
        *slot = Self::loose(d)?;
        Ok(())
    }
}

/// A [`DeserializeSeed`] reading into `slot` through [`Loose::loose_into`].
struct IntoSeed<'s, T>(&'s mut T);

impl<'de, T: Loose<'de>> DeserializeSeed<'de> for IntoSeed<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        T::loose_into(d, self.0)
    }
}

/// Read one member value of a map leniently into `slot` (used by
/// `wire_struct!`).
pub fn loose_value_into<'de, T: Loose<'de>, A: MapAccess<'de>>(
    map: &mut A,
    slot: &mut T,
) -> Result<(), A::Error> {
    map.next_value_seed(IntoSeed(slot))
}

/// A [`DeserializeSeed`] reading `T` through [`Loose`].
struct LooseSeed<T>(PhantomData<T>);

impl<'de, T: Loose<'de>> DeserializeSeed<'de> for LooseSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::loose(d)
    }
}

/// Read one member value of a map leniently (used by `wire_struct!`).
pub fn loose_value<'de, T: Loose<'de>, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value_seed(LooseSeed(PhantomData))
}

/// Any JSON value, reduced to what the scalar readers need.
pub enum Scalar<'de> {
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    /// A number with a fraction or exponent.
    F64(f64),
    /// A string.
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

/// Read any JSON value as a [`Scalar`].
pub fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
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
impl<'de, T: Loose<'de> + Default> Loose<'de> for Vec<T> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = Vec::new();
        Self::loose_into(d, &mut v)?;
        Ok(v)
    }

    fn loose_into<D: Deserializer<'de>>(d: D, slot: &mut Self) -> Result<(), D::Error> {
        slot.clear();
        d.deserialize_any(ListInto(slot)).map(|_| ())
    }
}

/// A [`DeserializeSeed`] appending the element it reads to a list (read
/// in place into a fresh default; only called when there is an element).
struct PushSeed<'s, T>(&'s mut Vec<T>);

impl<'de, T: Loose<'de> + Default> DeserializeSeed<'de> for PushSeed<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let i = self.0.len();
        self.0.push(T::default());
        T::loose_into(d, &mut self.0[i])
    }
}

/// Reads an array's elements in place into a list; `false` (list left
/// empty, value drained) for anything else.
struct ListInto<'s, T>(&'s mut Vec<T>);

impl<'de, T: Loose<'de> + Default> Visitor<'de> for ListInto<'_, T> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(PushSeed(&mut *self.0))?.is_some() {}
        Ok(true)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        drain_map(map).map(|()| false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// An array (`Some`, elements read leniently); anything else is `None`.
impl<'de, T: Loose<'de> + Default> Loose<'de> for Option<Vec<T>> {
    fn loose<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = None;
        Self::loose_into(d, &mut v)?;
        Ok(v)
    }

    fn loose_into<D: Deserializer<'de>>(d: D, slot: &mut Self) -> Result<(), D::Error> {
        let list = slot.insert(Vec::new());
        if !d.deserialize_any(ListInto(list))? {
            *slot = None;
        }
        Ok(())
    }
}

/// An object key, borrowed unless it had escapes (used by `wire_struct!`).
pub struct Key<'de>(pub Cow<'de, str>);

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
    /// Read an object's members into the struct (unknown ones go to `extra`).
    fn read_into<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error>;

    /// The struct from an object's members.
    fn read_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut v = Self::default();
        v.read_into(map)?;
        Ok(v)
    }
}

/// Reads an object's members in place into a struct; `false` (struct
/// untouched, value drained) for anything else.
struct ObjectInto<'s, T>(&'s mut T);

impl<'de, T: WireObject<'de>> Visitor<'de> for ObjectInto<'_, T> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.read_into(map).map(|()| true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        drain_seq(seq).map(|()| false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Read a [`WireObject`] from `d` into `slot` (callers pass a fresh
/// default); `false` when `d` is not an object (`slot` untouched).
pub fn read_object_into<'de, T: WireObject<'de>, D: Deserializer<'de>>(
    d: D,
    slot: &mut T,
) -> Result<bool, D::Error> {
    d.deserialize_any(ObjectInto(slot))
}

/// Read a [`WireObject`] from `d`: `None` when it is not an object.
pub fn read_object<'de, T: WireObject<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let mut v = T::default();
    Ok(d.deserialize_any(ObjectInto(&mut v))?.then_some(v))
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
        #[derive(Clone, Debug, Default, PartialEq, ::serde::Serialize)]
        pub struct $name<$a> {
            $(
                $(#[$fmeta])*
                #[serde(rename = $key, skip_serializing_if = "crate::gemini::lenient::Absent::absent")]
                pub $field: $ty,
            )*
            /// Members this model does not name, kept verbatim.
            #[serde(flatten)]
            pub extra: $crate::gemini::lenient::Extra<$a>,
        }

        impl $name<'_> {
            /// Whether every member is absent (it would serialize as `{}`).
            pub fn is_empty(&self) -> bool {
                $( $crate::gemini::lenient::Absent::absent(&self.$field) && )* self.extra.is_empty()
            }
        }

        impl<'de: $a, $a> $crate::gemini::lenient::WireObject<'de> for $name<$a> {
            fn read_into<A: ::serde::de::MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
                while let Some($crate::gemini::lenient::Key(k)) = map.next_key::<$crate::gemini::lenient::Key<'de>>()? {
                    match &*k {
                        $( $key => $crate::gemini::lenient::loose_value_into(&mut map, &mut self.$field)?, )*
                        _ => {
                            let raw = map.next_value::<&'de ::serde_json::value::RawValue>()?;
                            self.extra.0.push((k, ::std::borrow::Cow::Borrowed(raw)));
                        }
                    }
                }
                Ok(())
            }
        }

        impl<'de: $a, $a> ::serde::Deserialize<'de> for $name<$a> {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::gemini::lenient::read_object(d)?
                    .ok_or_else(|| ::serde::de::Error::custom("expected a JSON object"))
            }
        }

        /// Not an object: the empty struct.
        impl<'de: $a, $a> $crate::gemini::lenient::Loose<'de> for $name<$a> {
            fn loose<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($crate::gemini::lenient::read_object(d)?.unwrap_or_default())
            }

            fn loose_into<D: ::serde::Deserializer<'de>>(d: D, slot: &mut Self) -> Result<(), D::Error> {
                *slot = Self::default();
                $crate::gemini::lenient::read_object_into(d, slot).map(|_| ())
            }
        }

        /// Not an object: `None`.
        impl<'de: $a, $a> $crate::gemini::lenient::Loose<'de> for Option<$name<$a>> {
            fn loose<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::gemini::lenient::read_object(d)
            }

            fn loose_into<D: ::serde::Deserializer<'de>>(d: D, slot: &mut Self) -> Result<(), D::Error> {
                let v = slot.insert(Default::default());
                if !$crate::gemini::lenient::read_object_into(d, v)? {
                    *slot = None;
                }
                Ok(())
            }
        }

        /// Not an object: `None`.
        impl<'de: $a, $a> $crate::gemini::lenient::Loose<'de> for Option<Box<$name<$a>>> {
            fn loose<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($crate::gemini::lenient::read_object(d)?.map(Box::new))
            }

            fn loose_into<D: ::serde::Deserializer<'de>>(d: D, slot: &mut Self) -> Result<(), D::Error> {
                let v = slot.insert(Box::default());
                if !$crate::gemini::lenient::read_object_into(d, &mut **v)? {
                    *slot = None;
                }
                Ok(())
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
            Unknown(::std::borrow::Cow<$a, str>),
        }

        impl<$a> $name<$a> {
            /// The value from its wire text.
            pub fn from_text(s: ::std::borrow::Cow<$a, str>) -> Self {
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

        impl ::serde::Serialize for $name<'_> {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de: $a, $a> ::serde::Deserialize<'de> for $name<$a> {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match $crate::gemini::lenient::scalar(d)? {
                    $crate::gemini::lenient::Scalar::Str(s) => Ok($name::from_text(s)),
                    _ => Err(::serde::de::Error::custom("expected a string")),
                }
            }
        }

        impl<'de: $a, $a> $crate::gemini::lenient::Loose<'de> for Option<$name<$a>> {
            fn loose<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(<Option<::std::borrow::Cow<$a, str>> as $crate::gemini::lenient::Loose>::loose(d)?
                    .map($name::from_text))
            }
        }
    };
}

pub(crate) use {wire_enum, wire_struct};
