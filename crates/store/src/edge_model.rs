//! Unauthenticated traffic at the server edge (issue 11): refusals are counted per kind, source and time
//! bucket instead of stored one row per request, so junk requests cost bounded storage. Guarantees: a stored
//! detail is at most [`MAX_AUTH_FAILURE_DETAIL`] bytes, cut on a character boundary.

use crate::model::Millis;

/// Most bytes of detail kept with a count.
pub const MAX_AUTH_FAILURE_DETAIL: usize = 512;

/// Refusals of one kind from one source within one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailureCount {
    /// The event kind the refusal would have been (`auth.failed`, `scep.refused`, …).
    pub kind: String,
    /// Who sent them: an IPv4 address, an IPv6 /64, or `unknown`.
    pub source: String,
    /// Start of the time bucket (unix ms).
    pub bucket: Millis,
    pub count: i64,
    pub first_at: Millis,
    pub last_at: Millis,
    /// The latest refusal's reason (metadata only, never a secret), capped.
    pub detail: String,
}

/// Which counts to list: newest bucket first.
#[derive(Debug, Clone, Default)]
pub struct AuthFailureFilter {
    pub kind: Option<String>,
    pub source: Option<String>,
    /// Only buckets that start at or after this.
    pub since: Option<Millis>,
    /// 0 means 100; at most 1000.
    pub limit: u32,
}

/// `text` cut to at most `max` bytes without splitting a character.
pub fn cap_text(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::cap_text;

    #[test]
    fn cap_text_never_splits_a_character() {
        assert_eq!(cap_text("short", 512), "short");
        assert_eq!(cap_text("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle backs off to before it.
        assert_eq!(cap_text("aé", 2), "a");
        assert_eq!(cap_text("€€", 4), "€");
        let long = "ü".repeat(1000);
        let cut = cap_text(&long, 511);
        assert_eq!(cut.len(), 510);
        assert!(cut.chars().all(|c| c == 'ü'));
    }
}
