//! The one error type of this crate.
//!
//! Guarantees: messages never contain body bytes or secret values; device-supplied strings that are echoed
//! (an unknown MessageType or Status) are truncated to a short, Debug-escaped form.

/// Why a body or command could not be accepted or produced.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("body is empty")]
    Empty,
    #[error("body is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "only XML property lists are accepted on device endpoints (binary or other format refused)"
    )]
    NotXml,
    #[error("plist nesting deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// Never includes body bytes: only plist's error kind and offset, or a key name this crate knows.
    #[error("malformed plist: {0}")]
    Malformed(String),
    #[error("unknown MessageType {0:?}")]
    UnknownMessageType(String),
    #[error("missing or invalid MessageType")]
    MissingMessageType,
    #[error("unknown Status {0:?}")]
    UnknownStatus(String),
    #[error("plist encoding failed: {0}")]
    Encode(String),
}

/// Longest device-supplied string echoed in an error, in characters.
pub(crate) const MAX_ECHO_CHARS: usize = 64;

/// Shortens a device-supplied string for an error message (on a char boundary, marked with `…`).
pub(crate) fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_strings_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let shown = echo(&long);
        assert_eq!(shown.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(echo("Authenticate"), "Authenticate");
    }

    #[test]
    fn unknown_message_type_message_is_debug_escaped() {
        let e = ProtocolError::UnknownMessageType("a\"b\n".into());
        assert_eq!(e.to_string(), r#"unknown MessageType "a\"b\n""#);
    }
}
