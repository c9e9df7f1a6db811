//! Decoding and verifying the CMS SignedData carried in an `Mdm-Signature` header.
//!
//! Guarantees: a header is accepted only if it is base64 (whitespace tolerated) of a DER or BER SignedData with
//! exactly one SignerInfo whose signature (and messageDigest, when signed attributes are present) verifies over
//! the exact body bytes with the embedded signer certificate. No chain check happens here; `identity` does that.
//! Oversized, truncated or malformed headers give an [`IdentityError`], never a panic.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use openssl::error::ErrorStack;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use crate::error::{IdentityError, openssl_reason};

/// Largest `Mdm-Signature` header accepted. Real ones are ~1.6 KiB (one certificate); this leaves room for
/// intermediates while bounding parsing work.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 64 * 1024;

/// Standard alphabet; padding optional, since some proxies and clients strip it.
const TOLERANT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A signature that verified over the body: its signer and every certificate it carried.
pub(crate) struct VerifiedSignature {
    pub signer: X509,
    /// All embedded certificates (signer included); offered as untrusted intermediates for the chain check.
    pub embedded: Stack<X509>,
}

/// Base64-decodes the header after dropping ASCII whitespace (headers may be folded or wrapped).
pub(crate) fn decode_header(header: &[u8]) -> Result<Vec<u8>, IdentityError> {
    if header.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(IdentityError::SignatureFormat(format!(
            "header is {} bytes, over the {MAX_SIGNATURE_HEADER_BYTES}-byte limit",
            header.len()
        )));
    }
    // A Mac's header has no whitespace: decoded as it is, not copied byte by byte first (that copy was 2% of
    // an Idle poll's CPU).
    let compact: std::borrow::Cow<'_, [u8]> = if header.iter().any(u8::is_ascii_whitespace) {
        header
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>()
            .into()
    } else {
        header.into()
    };
    if compact.is_empty() {
        return Err(IdentityError::SignatureFormat("header is empty".into()));
    }
    TOLERANT_BASE64
        .decode(&compact)
        .map_err(|_| IdentityError::SignatureEncoding)
}

/// Maps a failure to find the signers to the most precise error.
fn signer_error(err: &ErrorStack) -> IdentityError {
    let reason = openssl_reason(err);
    if reason.contains("no signatures") || reason.contains("no signers") {
        IdentityError::SignerCount(0)
    } else if reason.contains("signer certificate not found") {
        IdentityError::SignatureFormat("the signer's certificate is not embedded".into())
    } else {
        IdentityError::SignatureFormat(reason)
    }
}

fn internal(err: ErrorStack) -> IdentityError {
    IdentityError::Crypto(openssl_reason(&err))
}

/// Verifies the detached signature in `header` over exactly `body`; returns the signer certificate.
pub(crate) fn verify_detached(
    header: &[u8],
    body: &[u8],
) -> Result<VerifiedSignature, IdentityError> {
    verify_decoded(&decode_header(header)?, body)
}

/// [`verify_detached`] over an already decoded header.
pub(crate) fn verify_decoded(der: &[u8], body: &[u8]) -> Result<VerifiedSignature, IdentityError> {
    // d2i_PKCS7 accepts BER (indefinite lengths), which is what real Macs send.
    let pkcs7 =
        Pkcs7::from_der(der).map_err(|e| IdentityError::SignatureFormat(openssl_reason(&e)))?;
    let signed = pkcs7
        .signed()
        .ok_or_else(|| IdentityError::SignatureFormat("content type is not signedData".into()))?;

    let mut embedded = Stack::new().map_err(internal)?;
    if let Some(certs) = signed.certificates() {
        for cert in certs {
            embedded.push(cert.to_owned()).map_err(internal)?;
        }
    }

    // Signers are looked up only among the embedded certificates.
    let no_extra_certs: Stack<X509> = Stack::new().map_err(internal)?;
    let signers = pkcs7
        .signers(&no_extra_certs, Pkcs7Flags::empty())
        .map_err(|e| signer_error(&e))?;
    if signers.len() != 1 {
        return Err(IdentityError::SignerCount(signers.len()));
    }
    let signer = signers
        .get(0)
        .map(|c| c.to_owned())
        .ok_or(IdentityError::SignerCount(0))?;

    if !crate::cms_fast::digest_algorithms_supported(der) {
        return Err(IdentityError::SignatureFormat(
            "a digest algorithm other than SHA-1, SHA-256, SHA-384 or SHA-512".into(),
        ));
    }
    // NOVERIFY: the chain is checked separately against the device CAs, so the store here stays empty.
    // BINARY: the body is hashed byte for byte, no MIME canonicalisation.
    let empty_store = X509StoreBuilder::new().map_err(internal)?.build();
    pkcs7
        .verify(
            &no_extra_certs,
            &empty_store,
            Some(body),
            None,
            Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
        )
        .map_err(|e| {
            tracing::debug!(reason = %openssl_reason(&e), "Mdm-Signature did not verify");
            IdentityError::BadSignature
        })?;

    Ok(VerifiedSignature { signer, embedded })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_over_the_size_limit_is_refused_before_decoding() {
        let header = vec![b'A'; MAX_SIGNATURE_HEADER_BYTES + 1];
        let err = decode_header(&header).unwrap_err();
        assert!(matches!(err, IdentityError::SignatureFormat(m) if m.contains("limit")));
    }

    #[test]
    fn whitespace_and_missing_padding_are_tolerated() {
        assert_eq!(decode_header(b" aGVs\r\n bG8\t").unwrap(), b"hello");
    }

    #[test]
    fn whitespace_only_header_is_empty() {
        assert!(
            matches!(decode_header(b" \r\n"), Err(IdentityError::SignatureFormat(m)) if m.contains("empty"))
        );
    }

    #[test]
    fn non_base64_characters_are_an_encoding_error() {
        assert!(matches!(
            decode_header(b"not*base64!"),
            Err(IdentityError::SignatureEncoding)
        ));
    }
}
