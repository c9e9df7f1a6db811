//! `Secret<T>`: a value that must never be printed, logged or serialized by accident.
//!
//! Guarantees: `Debug` and `Display` print `[REDACTED]`; the value is zeroized when dropped; there is no
//! `Serialize` impl. Code that really must put a secret on the wire (the GetBootstrapToken reply) opts in
//! explicitly with `#[serde(with = "vault::secret::bytes")]` or `vault::secret::bytes_opt`.

use std::fmt;
use zeroize::Zeroize;

/// A secret value: redacted in `Debug`/`Display`, zeroized on drop.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrow the secret. Every call site is a place where the secret is used on purpose.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Secret(self.0.clone())
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Secret<Vec<u8>> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison of two byte secrets (length is not hidden).
    pub fn ct_eq(&self, other: &Secret<Vec<u8>>) -> bool {
        let (a, b) = (&self.0, &other.0);
        if a.len() != b.len() {
            return false;
        }
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl From<Vec<u8>> for Secret<Vec<u8>> {
    fn from(v: Vec<u8>) -> Self {
        Secret(v)
    }
}

impl From<String> for Secret<String> {
    fn from(v: String) -> Self {
        Secret(v)
    }
}

/// Explicit serde support for `Secret<Vec<u8>>` as a plist `<data>` / serde bytes value.
pub mod bytes {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(secret: &Secret<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret<Vec<u8>>, D::Error> {
        let buf = serde_bytes::ByteBuf::deserialize(d)?;
        Ok(Secret::new(buf.into_vec()))
    }
}

/// Explicit serde support for `Option<Secret<Vec<u8>>>`; pair with `#[serde(default)]`.
pub mod bytes_opt {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        secret: &Option<Secret<Vec<u8>>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match secret {
            Some(v) => s.serialize_bytes(v.expose()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Secret<Vec<u8>>>, D::Error> {
        let buf = Option::<serde_bytes::ByteBuf>::deserialize(d)?;
        Ok(buf.map(|b| Secret::new(b.into_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new(b"hunter2-token".to_vec());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn ct_eq_compares_contents() {
        let a = Secret::new(vec![1, 2, 3]);
        assert!(a.ct_eq(&Secret::new(vec![1, 2, 3])));
        assert!(!a.ct_eq(&Secret::new(vec![1, 2, 4])));
        assert!(!a.ct_eq(&Secret::new(vec![1, 2])));
    }
}
