//! Serde helpers for the check-in wire format.
//!
//! Writing: plist writes `Some(v)` inside a map (and `flatten` makes every check-in struct a map) as
//! `{Some: v}`; `some`/`some_bytes` write `v` itself (`skip_serializing_if` keeps `None` away from them).
//! Reading: `<data>` fields accept only `<data>`; serde_bytes would also take a `<string>`'s UTF-8 bytes,
//! which would escrow a string as if it were a token.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use vault::Secret;

pub fn some<T: Serialize, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => s.serialize_none(),
    }
}

pub fn some_bytes<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_bytes(v),
        None => s.serialize_none(),
    }
}

pub fn data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    d.deserialize_byte_buf(DataOnly).map(Some)
}

pub fn secret_data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<Vec<u8>>>, D::Error> {
    d.deserialize_byte_buf(DataOnly)
        .map(|v| Some(Secret::new(v)))
}

struct DataOnly;

impl<'de> Visitor<'de> for DataOnly {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("plist <data>")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}
