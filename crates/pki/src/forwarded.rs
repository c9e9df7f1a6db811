//! Client certificates forwarded by a TLS-terminating proxy (used only when the admin configures such a header).
//!
//! Guarantees: [`parse_forwarded_cert`] returns the DER of exactly one well-formed X.509 certificate, or an
//! error. It accepts RFC 9440 `Client-Cert` (`:BASE64-DER:`), URL-escaped PEM (nginx `$ssl_client_escaped_cert`,
//! as NanoMDM expects), plain PEM, and bare base64 DER; values over [`MAX_FORWARDED_CERT_BYTES`] are refused
//! before decoding. Parsing proves nothing about trust: the caller must still chain-check the result.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use openssl::x509::X509;
use percent_encoding::percent_decode_str;

use crate::error::{IdentityError, openssl_reason};

/// Largest header value accepted (a device certificate is 1-2 KiB; PEM and URL escaping roughly double it).
pub const MAX_FORWARDED_CERT_BYTES: usize = 16 * 1024;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// Standard alphabet; padding optional (some proxies strip it).
const TOLERANT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn malformed(msg: &str) -> IdentityError {
    IdentityError::ForwardedHeader(msg.to_string())
}

/// Accepts NanoMDM's URL-escaped PEM (e.g. nginx `$ssl_client_escaped_cert`) and RFC 9440 `Client-Cert`
/// (`:BASE64-DER:` as a structured-field byte sequence). Returns DER. Size-capped (refuses > 16 KiB).
pub fn parse_forwarded_cert(value: &str) -> Result<Vec<u8>, IdentityError> {
    if value.len() > MAX_FORWARDED_CERT_BYTES {
        return Err(IdentityError::ForwardedHeader(format!(
            "value is {} bytes, over the {MAX_FORWARDED_CERT_BYTES}-byte limit",
            value.len()
        )));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(malformed("value is empty"));
    }

    let der = if let Some(inner) = value.strip_prefix(':') {
        // RFC 9440 / RFC 8941 byte sequence: the whole value is `:base64:`.
        let inner = inner
            .strip_suffix(':')
            .ok_or_else(|| malformed("byte sequence does not end with ':'"))?;
        decode_base64(inner)?
    } else {
        let decoded = percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| malformed("URL-escaped value is not UTF-8"))?;
        match decoded.find(PEM_BEGIN) {
            Some(start) => pem_body(&decoded[start + PEM_BEGIN.len()..])?,
            None => decode_base64(&decoded)?,
        }
    };

    if der.is_empty() {
        return Err(malformed("certificate is empty"));
    }
    let cert =
        X509::from_der(&der).map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
    // OpenSSL reads the first certificate and ignores what follows, and reads other encodings of it too; the
    // identity is the SHA-256 of these bytes, so each variant would be another device to escrowd.
    crate::identity::require_der(&cert, &der)?;
    Ok(der)
}

/// DER inside the first PEM block; whitespace (including nginx's tab-indented `$ssl_client_cert`) is ignored.
fn pem_body(after_begin: &str) -> Result<Vec<u8>, IdentityError> {
    let end = after_begin
        .find(PEM_END)
        .ok_or_else(|| malformed("PEM certificate has no END line"))?;
    decode_base64(&after_begin[..end])
}

fn decode_base64(text: &str) -> Result<Vec<u8>, IdentityError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(malformed("certificate is empty"));
    }
    TOLERANT_BASE64
        .decode(&compact)
        .map_err(|_| malformed("certificate is not valid base64"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use base64::engine::general_purpose::STANDARD;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

    fn device_der() -> Vec<u8> {
        test_support::rsa_device("forwarded-device")
            .0
            .to_der()
            .unwrap()
    }

    fn pem_of(der: &[u8]) -> String {
        X509::from_der(der)
            .unwrap()
            .to_pem()
            .map(|p| String::from_utf8(p).unwrap())
            .unwrap()
    }

    /// What nginx `$ssl_client_escaped_cert` produces: everything but unreserved characters escaped.
    fn nginx_escape(pem: &str) -> String {
        utf8_percent_encode(pem, NON_ALPHANUMERIC)
            .to_string()
            .replace("%2D", "-")
    }

    #[test]
    fn url_escaped_pem_as_nginx_sends_it_yields_the_der() {
        let der = device_der();
        let escaped = nginx_escape(&pem_of(&der));
        assert!(
            escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0AMII"),
            "{escaped:.40}"
        );
        assert_eq!(parse_forwarded_cert(&escaped).unwrap(), der);
    }

    #[test]
    fn bytes_after_the_certificate_are_refused_in_every_form() {
        let der = device_der();
        let mut longer = der.clone();
        longer.extend_from_slice(&der[der.len() - 20..]);
        let pem = format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", STANDARD.encode(&longer));
        for value in [
            format!(":{}:", STANDARD.encode(&longer)),
            STANDARD.encode(&longer),
            nginx_escape(&pem),
            pem,
        ] {
            let err = parse_forwarded_cert(&value).unwrap_err().to_string();
            assert!(err.contains("bytes follow it"), "{err}");
        }
        // The certificate alone still passes.
        let alone = format!(":{}:", STANDARD.encode(&der));
        assert_eq!(parse_forwarded_cert(&alone).unwrap(), der);
    }

    #[test]
    fn rfc9440_byte_sequence_yields_the_der() {
        let der = device_der();
        let value = format!(":{}:", STANDARD.encode(&der));
        assert_eq!(parse_forwarded_cert(&value).unwrap(), der);
    }

    #[test]
    fn plain_pem_with_tab_indented_lines_yields_the_der() {
        let der = device_der();
        let indented = pem_of(&der).replace('\n', "\n\t");
        assert_eq!(parse_forwarded_cert(&indented).unwrap(), der);
    }

    #[test]
    fn bare_base64_der_yields_the_der() {
        let der = device_der();
        assert_eq!(parse_forwarded_cert(&STANDARD.encode(&der)).unwrap(), der);
    }

    #[test]
    fn empty_and_blank_values_are_refused() {
        for v in ["", "   ", "::", ":", "%20"] {
            assert!(
                matches!(
                    parse_forwarded_cert(v),
                    Err(IdentityError::ForwardedHeader(_))
                ),
                "{v:?}"
            );
        }
    }

    #[test]
    fn oversized_value_is_refused() {
        let der = device_der();
        let mut value = format!(":{}:", STANDARD.encode(&der));
        value.push_str(&" ".repeat(MAX_FORWARDED_CERT_BYTES));
        let err = parse_forwarded_cert(&value).unwrap_err();
        assert!(matches!(err, IdentityError::ForwardedHeader(m) if m.contains("limit")));
    }

    #[test]
    fn unterminated_byte_sequence_is_refused() {
        let value = format!(":{}", STANDARD.encode(device_der()));
        assert!(matches!(
            parse_forwarded_cert(&value),
            Err(IdentityError::ForwardedHeader(_))
        ));
    }

    #[test]
    fn pem_without_end_line_is_refused() {
        let pem = pem_of(&device_der());
        let cut = &pem[..pem.len() / 2];
        assert!(
            matches!(parse_forwarded_cert(cut), Err(IdentityError::ForwardedHeader(m)) if m.contains("END"))
        );
    }

    #[test]
    fn non_base64_value_is_refused() {
        for v in [":not base64!:", "garbage!", "%FF%FE"] {
            assert!(
                matches!(
                    parse_forwarded_cert(v),
                    Err(IdentityError::ForwardedHeader(_))
                ),
                "{v:?}"
            );
        }
    }

    #[test]
    fn base64_of_something_that_is_not_a_certificate_is_refused() {
        let value = format!(":{}:", STANDARD.encode(b"definitely not DER"));
        assert!(matches!(
            parse_forwarded_cert(&value),
            Err(IdentityError::CertificateFormat(_))
        ));
    }

    #[test]
    fn truncated_der_is_refused() {
        let der = device_der();
        let value = format!(":{}:", STANDARD.encode(&der[..der.len() - 10]));
        assert!(matches!(
            parse_forwarded_cert(&value),
            Err(IdentityError::CertificateFormat(_))
        ));
    }
}
