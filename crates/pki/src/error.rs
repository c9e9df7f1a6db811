//! Errors of the `pki` crate.
//!
//! Guarantees: every message says what was wrong with the input (encoding, structure, signature, chain) and
//! never contains key material, certificate bytes or request bodies.

use openssl::error::ErrorStack;

/// Why a device identity (signature, certificate or forwarded header) or a CA operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("Mdm-Signature header is not valid base64")]
    SignatureEncoding,
    #[error("Mdm-Signature is not a CMS SignedData: {0}")]
    SignatureFormat(String),
    #[error("Mdm-Signature must have exactly one signer, found {0}")]
    SignerCount(usize),
    #[error("Mdm-Signature does not verify over the request body")]
    BadSignature,
    #[error("certificate is not valid DER/PEM: {0}")]
    CertificateFormat(String),
    /// Includes openssl's verify reason, e.g. "certificate has expired".
    #[error("certificate does not chain to a trusted device CA: {0}")]
    Untrusted(String),
    #[error("forwarded certificate header is malformed: {0}")]
    ForwardedHeader(String),
    #[error("crypto error: {0}")]
    Crypto(String),
    #[error("signed profile refused: {0}")]
    ProfileSignature(String),
}

/// Longest openssl explanation we pass on; openssl's queues can be long and repetitive.
const MAX_REASON_CHARS: usize = 200;

/// A short, human-readable summary of an openssl error queue: the reason strings, de-duplicated.
///
/// openssl reasons name what failed ("header too long", "wrong tag"), never the data being processed.
pub(crate) fn openssl_reason(err: &ErrorStack) -> String {
    let mut reasons: Vec<&str> = Vec::new();
    for e in err.errors() {
        if let Some(r) = e.reason()
            && !reasons.contains(&r)
        {
            reasons.push(r);
        }
    }
    let mut text = if reasons.is_empty() {
        "unknown openssl error".to_string()
    } else {
        reasons.join("; ")
    };
    if text.chars().count() > MAX_REASON_CHARS {
        text = text.chars().take(MAX_REASON_CHARS).collect::<String>() + "…";
    }
    text
}

/// Maps an openssl failure in our own crypto operations (key generation, signing, encoding) to `Crypto`.
pub(crate) fn crypto(context: &str) -> impl FnOnce(ErrorStack) -> IdentityError + '_ {
    move |e| IdentityError::Crypto(format!("{context}: {}", openssl_reason(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_reason_names_the_failure_and_is_bounded() {
        let err = openssl::x509::X509::from_der(b"\x30\x82\xff\xff not a certificate").unwrap_err();
        let reason = openssl_reason(&err);
        assert!(!reason.is_empty());
        assert!(reason.chars().count() <= MAX_REASON_CHARS + 1);
        assert_ne!(reason, "unknown openssl error");
    }

    #[test]
    fn messages_say_what_was_wrong() {
        assert_eq!(
            IdentityError::SignerCount(2).to_string(),
            "Mdm-Signature must have exactly one signer, found 2"
        );
        assert_eq!(
            IdentityError::Untrusted("certificate has expired".into()).to_string(),
            "certificate does not chain to a trusted device CA: certificate has expired"
        );
    }
}
