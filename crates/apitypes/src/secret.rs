//! A secret in a request body (a password, a private key): read from JSON, never written back out.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// A secret string a request carries (an action's passwords, a push certificate's key). Its text is zeroed
/// on drop, its `Debug` is redacted, and it refuses to serialize: a body holding one can be read by the
/// server but never echoed, logged as JSON or sent on by mistake (a client that must send one writes it with
/// its own care, as `escrowd action create` does).
#[derive(Clone, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(text: String) -> Self {
        SecretString(text)
    }

    /// Borrow the text. Every call site is a place where the secret is used on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The text, moved out without a copy (for a longer-lived secret holder such as `vault::Secret`).
    pub fn into_inner(mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

impl From<String> for SecretString {
    fn from(text: String) -> Self {
        SecretString(text)
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

/// Always an error: a secret's text is never serialized.
impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("a secret is never serialized"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_reads_from_json_but_never_shows_or_serializes() {
        let s: SecretString = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        let err = serde_json::to_string(&s).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(s.into_inner(), "hunter2");
        let absent: Option<SecretString> = serde_json::from_str("null").unwrap();
        assert!(absent.is_none());
    }
}
