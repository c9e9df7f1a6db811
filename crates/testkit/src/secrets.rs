//! The one "no secret here" check of the tests: a secret counts as found in a log, an event, an API answer, a
//! file or a database dump when it appears raw, in standard base64 (at any alignment inside a longer encoded
//! blob) or in lowercase or uppercase hex.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Where `secret` shows up in `haystack` (`"raw"`, `"base64"` or `"hex"`), if anywhere.
pub fn leak(haystack: &[u8], secret: &[u8]) -> Option<&'static str> {
    let contains =
        |needle: &[u8]| !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle);
    if contains(secret) {
        return Some("raw");
    }
    // Base64 of a secret at any of the three alignments (inside a longer encoded blob, e.g. a profile in a
    // command's <data>): encode it behind 0-2 filler bytes and keep only the characters it alone decides.
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(secret);
        let enc = B64.encode(&padded);
        let skip = (offset * 4).div_ceil(3);
        let keep = enc.len().saturating_sub(4);
        if keep > skip + 8 && contains(&enc.as_bytes()[skip..keep]) {
            return Some("base64");
        }
    }
    // Hex only for secrets of 4 bytes or more: the hex of a shorter one is too likely to occur by chance.
    let hex = hex::encode(secret);
    if secret.len() >= 4 && contains(hex.as_bytes()) || contains(hex.to_uppercase().as_bytes()) {
        return Some("hex");
    }
    None
}

/// Panics naming each of `secrets` that shows up in `haystack` (raw, base64 or hex) and in which form; the
/// message shows the haystack, never which bytes the secret is.
#[track_caller]
pub fn assert_no_secret(haystack: impl AsRef<[u8]>, secrets: &[&[u8]]) {
    let haystack = haystack.as_ref();
    let found: Vec<String> = secrets
        .iter()
        .enumerate()
        .filter_map(|(i, s)| leak(haystack, s).map(|form| format!("secret #{i} ({form})")))
        .collect();
    assert!(
        found.is_empty(),
        "{} in:\n{}",
        found.join(", "),
        String::from_utf8_lossy(haystack)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"TOKSECRET-victim-4f9a1c2e7b5d8a3f6e0c9b2d";

    #[test]
    fn finds_a_secret_raw_in_base64_at_every_alignment_and_in_hex() {
        assert_eq!(
            leak(b"xx TOKSECRET-victim-4f9a1c2e7b5d8a3f6e0c9b2d xx", TOKEN),
            Some("raw")
        );
        for prefix in 0..3 {
            let mut wrapped = b"xyz"[..prefix].to_vec();
            wrapped.extend_from_slice(TOKEN);
            wrapped.extend_from_slice(b"tail");
            assert_eq!(
                leak(B64.encode(&wrapped).as_bytes(), TOKEN),
                Some("base64"),
                "alignment {prefix}"
            );
        }
        assert_eq!(leak(hex::encode(TOKEN).as_bytes(), TOKEN), Some("hex"));
        assert_eq!(
            leak(hex::encode_upper(TOKEN).as_bytes(), TOKEN),
            Some("hex")
        );
        assert_eq!(leak(b"nothing to see", TOKEN), None);
        assert_eq!(leak(b"anything", b""), None, "an empty secret is nowhere");
    }

    #[test]
    fn assert_no_secret_passes_clean_text_and_panics_on_a_leak() {
        assert_no_secret("all clear", &[TOKEN, b"pw-123"]);
        let leaked = std::panic::catch_unwind(|| {
            assert_no_secret(
                format!("x {}", B64.encode(b"pw-1234567890")),
                &[b"pw-1234567890"],
            )
        });
        assert!(leaked.is_err());
    }
}
