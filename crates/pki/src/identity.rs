//! Device identity verification: `Mdm-Signature` headers and device certificates.
//!
//! Guarantees: [`DeviceIdentityVerifier`] returns a [`CertInfo`] only for a certificate that chains to a
//! configured device CA now, and (for `Mdm-Signature`) only if that certificate is the single signer of a CMS
//! signature over the exact body bytes. Chain verdicts are cached by SHA-256 fingerprint (bounded, positive
//! verdicts only, never past notAfter). Hostile input yields an [`IdentityError`], never a panic.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::nid::Nid;
use openssl::stack::{Stack, StackRef};
use openssl::x509::{X509, X509NameRef, X509Ref};

use crate::chain::{TrustAnchors, Verdict, VerdictCache};
use crate::error::{IdentityError, openssl_reason};
use crate::{cms, cms_fast};

/// How many chain verdicts the verifier remembers, least recently used first out: about 80 bytes each (20 MB
/// when full), so a fleet of this many Macs is chain-checked once per certificate.
pub const CHAIN_CACHE_CAPACITY: usize = 250_000;

/// How many signers' parsed public keys the verifier keeps beside its verdicts, least recently used first out:
/// about 1.6 KB each for RSA-2048 (13 MB when full). A signer whose key is not kept costs a key read from its
/// certificate's bytes (about 10 µs), never a chain check.
pub const SIGNER_KEY_CAPACITY: usize = 8_192;

/// A device certificate that has passed verification: what the hot path needs (the verifier's cache keeps only
/// the notAfter); [`CertInfo::details`] reads the rest from the DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Lowercase hex SHA-256 of the DER certificate.
    pub fingerprint: String,
    pub der: Vec<u8>,
    pub not_after_unix: i64,
}

impl CertInfo {
    fn of(fingerprint: &[u8; 32], der: &[u8], not_after_unix: i64) -> Self {
        CertInfo {
            fingerprint: hex::encode(fingerprint),
            der: der.to_vec(),
            not_after_unix,
        }
    }

    /// Subject, issuer and serial number, read from [`CertInfo::der`].
    pub fn details(&self) -> Result<CertDetails, IdentityError> {
        let cert = parse_der(&self.der)?;
        cert_details(&cert)
    }
}

/// How a certificate names itself and its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDetails {
    /// One-line, RFC 4514 style (most specific first); may be "" (SCEP certificates often have empty subjects).
    pub subject: String,
    pub issuer: String,
    /// Lowercase hex of the serial number.
    pub serial_hex: String,
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// Lowercase hex SHA-256 of `der`: the identity escrowd binds enrollments to.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    hex::encode(sha256(der))
}

/// `Debug` for a certificate with its private key (a CA, a signer): subject and fingerprint, never the key.
pub(crate) fn debug_key_holder(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    cert: &openssl::x509::X509Ref,
) -> std::fmt::Result {
    let fingerprint = cert
        .to_der()
        .map(|der| fingerprint_sha256(&der))
        .unwrap_or_default();
    f.debug_struct(name)
        .field("subject", &one_line_name(cert.subject_name()))
        .field("fingerprint", &fingerprint)
        .field("key", &"[REDACTED]")
        .finish()
}

/// Verifies device identity certificates against the configured device CA(s).
///
/// Thread-safe and cheap to share in an `Arc`. Each certificate's chain is checked once and the verdict cached
/// (at most [`CHAIN_CACHE_CAPACITY`] entries, and [`SIGNER_KEY_CAPACITY`] signers' keys); a cached certificate
/// is still refused once past its notAfter.
pub struct DeviceIdentityVerifier {
    anchors: TrustAnchors,
    cache: VerdictCache,
    chain_checks: AtomicU64,
    fast_verifies: AtomicU64,
}

impl fmt::Debug for DeviceIdentityVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentityVerifier")
            .field("trusted_cas", &self.anchors.len())
            .field("cached_verdicts_and_keys", &self.cache.len())
            .field("chain_checks", &self.chain_checks_performed())
            .field("fast_verifies", &self.fast_verifies_performed())
            .finish()
    }
}

impl DeviceIdentityVerifier {
    /// A verifier trusting exactly `trusted_cas`; refuses an empty list (nothing could ever verify).
    pub fn new(trusted_cas: Vec<X509>) -> Result<Self, IdentityError> {
        Self::with_capacities(trusted_cas, CHAIN_CACHE_CAPACITY, SIGNER_KEY_CAPACITY)
    }

    fn with_capacities(
        trusted_cas: Vec<X509>,
        verdicts: usize,
        keys: usize,
    ) -> Result<Self, IdentityError> {
        Ok(DeviceIdentityVerifier {
            anchors: TrustAnchors::new(trusted_cas)?,
            cache: VerdictCache::new(verdicts, keys),
            chain_checks: AtomicU64::new(0),
            fast_verifies: AtomicU64::new(0),
        })
    }

    /// Parse every certificate in a PEM bundle (file contents); a bundle with none is an error.
    pub fn load_pem_bundle(pem: &[u8]) -> Result<Vec<X509>, IdentityError> {
        let certs = X509::stack_from_pem(pem)
            .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
        if certs.is_empty() {
            return Err(IdentityError::CertificateFormat(
                "no PEM certificate found in the bundle".into(),
            ));
        }
        Ok(certs)
    }

    /// Verifies an `Mdm-Signature` header (base64 DER/BER detached CMS SignedData, signer certificate embedded)
    /// over the exact `body` bytes, requires exactly one signer, then chain-checks the signer (cached).
    pub fn verify_mdm_signature(
        &self,
        header: &[u8],
        body: &[u8],
    ) -> Result<CertInfo, IdentityError> {
        let decoded = cms::decode_header(header)?;
        if let Some(info) = self.verify_cached_signer(&decoded, body) {
            return Ok(info);
        }
        let verified = cms::verify_decoded(&decoded, body)?;
        let der = verified
            .signer
            .to_der()
            .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
        self.verify_chain(&der, Some(&verified.signer), &verified.embedded)
    }

    /// The fast path: a signature in the shape Macs send (`cms_fast`) whose signer's chain verdict is cached,
    /// verified with the signer's public key (kept beside the verdict, or read from the certificate's bytes and
    /// then kept). None for anything else (another shape, no cached verdict, a key this path does not take, a
    /// signature that does not verify): the caller then takes the full OpenSSL path, which decides and words
    /// the error.
    fn verify_cached_signer(&self, decoded: &[u8], body: &[u8]) -> Option<CertInfo> {
        let signature = cms_fast::parse(decoded)?;
        let digest = sha256(signature.signer_der);
        let Verdict {
            not_after_unix,
            key,
        } = self.cache.get(&digest, now_unix())?;
        let (key, kept) = match key {
            Some(key) => (key, true),
            None => (signature.signer_key()?, false),
        };
        if !signature.verify_with(&key, body) {
            return None;
        }
        if !kept {
            self.cache.keep_key(digest, key);
        }
        self.fast_verifies.fetch_add(1, Ordering::Relaxed);
        Some(CertInfo::of(&digest, signature.signer_der, not_after_unix))
    }

    /// Chain-checks a DER certificate from the TLS handshake or a trusted proxy header (cached).
    pub fn verify_certificate_der(&self, der: &[u8]) -> Result<CertInfo, IdentityError> {
        let no_intermediates: Stack<X509> =
            Stack::new().map_err(|e| IdentityError::Crypto(openssl_reason(&e)))?;
        self.verify_chain(der, None, &no_intermediates)
    }

    /// Like [`DeviceIdentityVerifier::verify_mdm_signature`], but a certificate past its notAfter (or before its
    /// notBefore) still passes: every other check (signature over the exact body, chain to a configured device
    /// CA, EKU) is the same. Never cached. Only for escrowd's identity-renewal grace, where the caller bounds how
    /// far past notAfter it accepts and what such a certificate may do.
    pub fn verify_mdm_signature_ignoring_expiry(
        &self,
        header: &[u8],
        body: &[u8],
    ) -> Result<CertInfo, IdentityError> {
        let verified = cms::verify_detached(header, body)?;
        let der = verified
            .signer
            .to_der()
            .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
        self.verify_chain_ignoring_time(&der, &verified.signer, &verified.embedded)
    }

    /// [`DeviceIdentityVerifier::verify_certificate_der`] without the validity-period check (see
    /// [`DeviceIdentityVerifier::verify_mdm_signature_ignoring_expiry`]).
    pub fn verify_certificate_der_ignoring_expiry(
        &self,
        der: &[u8],
    ) -> Result<CertInfo, IdentityError> {
        let no_intermediates: Stack<X509> =
            Stack::new().map_err(|e| IdentityError::Crypto(openssl_reason(&e)))?;
        let cert = parse_der(der)?;
        self.verify_chain_ignoring_time(der, &cert, &no_intermediates)
    }

    fn verify_chain_ignoring_time(
        &self,
        der: &[u8],
        cert: &X509Ref,
        intermediates: &StackRef<X509>,
    ) -> Result<CertInfo, IdentityError> {
        require_der(cert, der)?;
        let info = cert_info(cert, der)?;
        self.chain_checks.fetch_add(1, Ordering::Relaxed);
        self.anchors.check_ignoring_time(cert, intermediates)?;
        if !allows_client_auth(cert) {
            return Err(IdentityError::Untrusted(
                "its ExtendedKeyUsage excludes clientAuth, so it is not a device identity".into(),
            ));
        }
        Ok(info)
    }

    /// Number of chain verifications actually performed (not cache hits).
    pub fn chain_checks_performed(&self) -> u64 {
        self.chain_checks.load(Ordering::Relaxed)
    }

    /// Number of `Mdm-Signature`s verified on the fast path (`cms_fast`, cached signer and key), not by OpenSSL's
    /// full CMS path.
    pub fn fast_verifies_performed(&self) -> u64 {
        self.fast_verifies.load(Ordering::Relaxed)
    }

    /// Cache lookup first (no parsing on a hit); otherwise parse, chain-check and remember.
    fn verify_chain(
        &self,
        der: &[u8],
        parsed: Option<&X509Ref>,
        intermediates: &StackRef<X509>,
    ) -> Result<CertInfo, IdentityError> {
        let digest = sha256(der);
        if let Some(hit) = self.cache.get(&digest, now_unix()) {
            return Ok(CertInfo::of(&digest, der, hit.not_after_unix));
        }
        let owned;
        let cert = match parsed {
            Some(cert) => cert,
            None => {
                owned = parse_der(der)?;
                &owned
            }
        };
        require_der(cert, der)?;
        let info = CertInfo::of(&digest, der, asn1_time_to_unix(cert.not_after())?);
        self.chain_checks.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = self.anchors.check(cert, intermediates) {
            tracing::debug!(fingerprint = %info.fingerprint, error = %err, "device certificate refused");
            return Err(err);
        }
        if !allows_client_auth(cert) {
            return Err(IdentityError::Untrusted(
                "its ExtendedKeyUsage excludes clientAuth, so it is not a device identity".into(),
            ));
        }
        self.cache.insert(digest, info.not_after_unix);
        Ok(info)
    }
}

/// True unless the certificate carries an ExtendedKeyUsage extension that allows neither clientAuth nor
/// anyExtendedKeyUsage (no extension at all means any use, RFC 5280 §4.2.1.12). The openssl crate has no safe
/// reader for EKU, so this asks libcrypto's own decoded flags.
pub(crate) fn allows_client_auth(cert: &X509Ref) -> bool {
    use foreign_types::ForeignTypeRef;
    let ptr = cert.as_ptr();
    // SAFETY: `ptr` is valid for the borrow of `cert`; both functions only read the certificate (libcrypto
    // caches the decoded extensions inside it under its own lock) and return plain flags.
    let flags = unsafe { openssl_sys::X509_get_extension_flags(ptr) };
    if flags & openssl_sys::EXFLAG_XKUSAGE == 0 {
        return true;
    }
    // SAFETY: as above.
    let xku = unsafe { openssl_sys::X509_get_extended_key_usage(ptr) };
    xku & (openssl_sys::XKU_SSL_CLIENT | openssl_sys::XKU_ANYEKU) != 0
}

/// Verify only the CMS signature (no chain) and return the signer certificate. For diagnostics and for tests of
/// captures whose CA we don't have; never use it to authenticate a device.
pub fn verify_signature_only(header: &[u8], body: &[u8]) -> Result<CertInfo, IdentityError> {
    let verified = cms::verify_detached(header, body)?;
    let der = verified
        .signer
        .to_der()
        .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
    cert_info(&verified.signer, &der)
}

/// `der` is `cert` exactly as DER writes it: nothing after it, no other encoding of the same certificate. A
/// device's identity is the SHA-256 of these bytes, and OpenSSL reads a certificate whose outer length is
/// written long-form, or with bytes after it, as the same certificate with a valid signature (the signature
/// covers only the `tbsCertificate` inside): without this, one certificate could be any number of identities
/// (found by fuzzing the forwarded-certificate header). Checked once per certificate, before its chain verdict
/// is cached.
pub(crate) fn require_der(cert: &X509Ref, der: &[u8]) -> Result<(), IdentityError> {
    let canonical = cert
        .to_der()
        .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
    if canonical != der {
        return Err(IdentityError::CertificateFormat(
            "the certificate is not exactly one DER encoding (bytes follow it, or it is encoded another way)"
                .into(),
        ));
    }
    Ok(())
}

fn parse_der(der: &[u8]) -> Result<X509, IdentityError> {
    if der.is_empty() {
        return Err(IdentityError::CertificateFormat(
            "certificate is empty".into(),
        ));
    }
    X509::from_der(der).map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))
}

/// Identifies `cert` (whose encoding is `der`).
pub fn cert_info(cert: &X509Ref, der: &[u8]) -> Result<CertInfo, IdentityError> {
    Ok(CertInfo::of(
        &sha256(der),
        der,
        asn1_time_to_unix(cert.not_after())?,
    ))
}

/// How `cert` names itself and its issuer, and its serial number.
pub fn cert_details(cert: &X509Ref) -> Result<CertDetails, IdentityError> {
    let serial_hex = cert
        .serial_number()
        .to_bn()
        .and_then(|bn| bn.to_hex_str().map(|s| s.to_ascii_lowercase()))
        .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
    Ok(CertDetails {
        subject: one_line_name(cert.subject_name()),
        issuer: one_line_name(cert.issuer_name()),
        serial_hex,
    })
}

/// Seconds since the Unix epoch of an ASN.1 time.
pub(crate) fn asn1_time_to_unix(time: &Asn1TimeRef) -> Result<i64, IdentityError> {
    let format = |e| IdentityError::CertificateFormat(openssl_reason(&e));
    let epoch = Asn1Time::from_unix(0).map_err(format)?;
    let diff = epoch.diff(time).map_err(format)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

pub(crate) fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// RFC 4514 style: attributes most specific first, `TYPE=value` joined by commas, specials and control
/// characters escaped, so the result is always one line.
pub(crate) fn one_line_name(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = name
        .entries()
        .map(|entry| {
            let nid = entry.object().nid();
            let key = match nid {
                Nid::UNDEF => entry.object().to_string(),
                _ => nid
                    .short_name()
                    .map(str::to_string)
                    .unwrap_or_else(|_| entry.object().to_string()),
            };
            let value = match entry.data().to_string() {
                Ok(s) => escape_rfc4514(&s),
                Err(_) => format!("#{}", hex::encode(entry.data().as_slice())),
            };
            format!("{key}={value}")
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

fn escape_rfc4514(value: &str) -> String {
    let count = value.chars().count();
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == count => out.push_str("\\ "),
            // Control characters (NUL, newlines) are hex-escaped so the name stays on one line.
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{SignOptions, SignatureDigest, mdm_signature, sign_detached};
    use crate::test_support::{device_ca, device_cert, ec_device, foreign_ca, rsa_device, rsa_key};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::X509NameBuilder;

    const CAPTURE_2_SIG: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__mdm-signature.2.b64");
    const CAPTURE_2_BODY: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__mdm-signature.2.body.plist");
    const CAPTURE_1_SIG: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__mdm-signature.1.b64");

    const BODY: &[u8] =
        b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>MessageType</key>\
        <string>SetBootstrapToken</string></dict></plist>\n";

    fn verifier() -> DeviceIdentityVerifier {
        DeviceIdentityVerifier::new(vec![device_ca().certificate().clone()]).unwrap()
    }

    #[test]
    fn a_digest_algorithm_outside_the_sha_family_is_refused_before_openssl_verifies() {
        let (cert, key) = rsa_device("digest algorithms");
        let opts = SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: false,
        };
        let der = STANDARD.decode(sign(&cert, &key, opts)).unwrap();
        let sha256 = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
        let at = der.windows(9).position(|w| w == sha256).unwrap();
        // The first SHA-256 OID is the one in digestAlgorithms: make it SHA-224 (which OpenSSL knows), then
        // an arc no digest has (which OpenSSL cannot set up: its PKCS7_verify then leaked ~300 bytes).
        for last in [0x04, 0x7f] {
            let mut changed = der.clone();
            changed[at + 8] = last;
            let header = STANDARD.encode(&changed);
            let v = verifier();
            for result in [
                v.verify_mdm_signature(header.as_bytes(), BODY),
                verify_signature_only(header.as_bytes(), BODY),
            ] {
                match result {
                    Err(IdentityError::SignatureFormat(why)) => {
                        assert!(why.contains("digest algorithm"), "{why}")
                    }
                    other => panic!("expected SignatureFormat, got {other:?}"),
                }
            }
        }
        assert!(
            verifier()
                .verify_mdm_signature(STANDARD.encode(&der).as_bytes(), BODY)
                .is_ok()
        );
    }

    #[test]
    fn one_certificate_is_one_identity_whatever_else_its_bytes_could_say() {
        let (cert, _) = rsa_device("one identity");
        let der = cert.to_der().unwrap();
        let v = verifier();
        assert!(v.verify_certificate_der(&der).is_ok());
        // The outer SEQUENCE's length written with one more octet (0x82 LL LL -> 0x83 00 LL LL): OpenSSL reads
        // the same certificate, the signature (over the tbsCertificate inside) still verifies.
        assert_eq!(
            der[1], 0x82,
            "a device certificate is 256 to 65535 bytes long"
        );
        let mut long_form = vec![0x30, 0x83, 0x00];
        long_form.extend_from_slice(&der[2..]);
        assert_eq!(X509::from_der(&long_form).unwrap().to_der().unwrap(), der);
        // Bytes after it.
        let mut trailing = der.clone();
        trailing.extend_from_slice(b"\x05\x00");
        for variant in [long_form, trailing] {
            for result in [
                v.verify_certificate_der(&variant),
                v.verify_certificate_der_ignoring_expiry(&variant),
            ] {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("not exactly one DER encoding"), "{err}");
            }
        }
        // The genuine bytes still pass, from the cache and after it.
        assert!(v.verify_certificate_der(&der).is_ok());
        assert!(v.verify_certificate_der_ignoring_expiry(&der).is_ok());
    }

    fn flipped(body: &[u8], index: usize) -> Vec<u8> {
        let mut out = body.to_vec();
        out[index] ^= 0x01;
        out
    }

    fn sign(cert: &X509, key: &PKey<Private>, opts: SignOptions) -> String {
        mdm_signature(BODY, cert, key, opts).unwrap()
    }

    // --- the real Apple capture -------------------------------------------------------------------------

    #[test]
    fn real_capture_is_ber_indefinite_length() {
        let compact: Vec<u8> = CAPTURE_2_SIG
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = STANDARD.decode(compact).unwrap();
        assert_eq!(
            &der[..2],
            &[0x30, 0x80],
            "outer SEQUENCE uses an indefinite length"
        );
    }

    #[test]
    fn real_capture_verifies_over_its_exact_body_with_signature_only() {
        let info = verify_signature_only(CAPTURE_2_SIG, CAPTURE_2_BODY).unwrap();
        assert_eq!(
            info.details().unwrap().subject,
            "",
            "SCEP-issued device certificates have empty subjects"
        );
        assert_eq!(info.fingerprint, fingerprint_sha256(&info.der));
        assert!(X509::from_der(&info.der).is_ok());
    }

    #[test]
    fn real_capture_is_refused_by_a_verifier_trusting_an_unrelated_ca() {
        let err = verifier()
            .verify_mdm_signature(CAPTURE_2_SIG, CAPTURE_2_BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::Untrusted(_)), "{err}");
    }

    #[test]
    fn real_capture_with_one_body_byte_flipped_is_a_bad_signature() {
        for index in [0, CAPTURE_2_BODY.len() / 2, CAPTURE_2_BODY.len() - 1] {
            let err =
                verify_signature_only(CAPTURE_2_SIG, &flipped(CAPTURE_2_BODY, index)).unwrap_err();
            assert!(
                matches!(err, IdentityError::BadSignature),
                "byte {index}: {err}"
            );
        }
    }

    #[test]
    fn real_capture_over_a_body_with_an_extra_trailing_newline_is_a_bad_signature() {
        let mut body = CAPTURE_2_BODY.to_vec();
        body.push(b'\n');
        assert!(matches!(
            verify_signature_only(CAPTURE_2_SIG, &body),
            Err(IdentityError::BadSignature)
        ));
    }

    #[test]
    fn capture_1_parses_but_verifies_over_no_body_we_have() {
        for body in [CAPTURE_2_BODY, b"".as_slice(), BODY] {
            let err = verify_signature_only(CAPTURE_1_SIG, body).unwrap_err();
            assert!(matches!(err, IdentityError::BadSignature), "{err}");
        }
    }

    #[test]
    fn real_capture_truncated_anywhere_is_a_format_error() {
        let compact: Vec<u8> = CAPTURE_2_SIG
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = STANDARD.decode(compact).unwrap();
        for len in 0..der.len() {
            let header = STANDARD.encode(&der[..len]);
            let err = verify_signature_only(header.as_bytes(), CAPTURE_2_BODY).unwrap_err();
            assert!(
                matches!(err, IdentityError::SignatureFormat(_)),
                "truncated to {len}: {err}"
            );
        }
    }

    // --- sign -> verify round trips ---------------------------------------------------------------------

    fn assert_round_trip(cert: &X509, key: &PKey<Private>, opts: SignOptions) {
        let v = verifier();
        let header = sign(cert, key, opts);
        let info = v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
        assert_eq!(info.der, cert.to_der().unwrap());
        assert_eq!(info.fingerprint, fingerprint_sha256(&info.der));

        for index in [0, BODY.len() - 1] {
            let err = v
                .verify_mdm_signature(header.as_bytes(), &flipped(BODY, index))
                .unwrap_err();
            assert!(
                matches!(err, IdentityError::BadSignature),
                "{opts:?}: {err}"
            );
        }
        let err = v
            .verify_mdm_signature(header.as_bytes(), &BODY[..BODY.len() - 1])
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::BadSignature),
            "{opts:?}: {err}"
        );
    }

    #[test]
    fn rsa_sha256_with_signed_attributes_round_trips_and_tampering_is_refused() {
        let (cert, key) = rsa_device("rsa-attrs");
        assert_round_trip(&cert, &key, SignOptions::default());
    }

    #[test]
    fn rsa_sha256_without_signed_attributes_round_trips_and_tampering_is_refused() {
        let (cert, key) = rsa_device("rsa-noattrs");
        let opts = SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: false,
        };
        assert_round_trip(&cert, &key, opts);
    }

    #[test]
    fn rsa_sha1_without_signed_attributes_like_a_real_mac_round_trips_and_tampering_is_refused() {
        let (cert, key) = rsa_device("rsa-sha1");
        let opts = SignOptions {
            digest: SignatureDigest::Sha1,
            signed_attributes: false,
        };
        assert_round_trip(&cert, &key, opts);
    }

    #[test]
    fn ecdsa_p256_sha256_round_trips_and_tampering_is_refused() {
        let (cert, key) = ec_device("ecdsa");
        assert_round_trip(&cert, &key, SignOptions::default());
        let opts = SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: false,
        };
        assert_round_trip(&cert, &key, opts);
    }

    #[test]
    fn header_wrapped_with_whitespace_and_newlines_still_verifies() {
        let (cert, key) = rsa_device("wrapped");
        let header = sign(&cert, &key, SignOptions::default());
        let mut wrapped = String::from("  ");
        for chunk in header.as_bytes().chunks(64) {
            wrapped.push_str(std::str::from_utf8(chunk).unwrap());
            wrapped.push_str("\r\n\t");
        }
        assert!(
            verifier()
                .verify_mdm_signature(wrapped.as_bytes(), BODY)
                .is_ok()
        );
    }

    #[test]
    fn signature_over_another_body_is_refused() {
        let (cert, key) = rsa_device("replay");
        let header =
            mdm_signature(b"<plist>Idle</plist>", &cert, &key, SignOptions::default()).unwrap();
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::BadSignature), "{err}");
    }

    // --- chain ------------------------------------------------------------------------------------------

    #[test]
    fn signer_certificate_from_a_foreign_ca_is_untrusted() {
        let key = rsa_key();
        let cert = device_cert(foreign_ca(), "intruder", &key);
        let header = sign(&cert, &key, SignOptions::default());
        assert!(
            verify_signature_only(header.as_bytes(), BODY).is_ok(),
            "the signature itself is fine"
        );
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::Untrusted(_)), "{err}");
    }

    #[test]
    fn self_signed_signer_claiming_the_ca_name_is_untrusted() {
        let impostor_ca = crate::ca::CertificateAuthority::generate("test device CA").unwrap();
        let key = rsa_key();
        let cert = device_cert(&impostor_ca, "impostor", &key);
        let header = sign(&cert, &key, SignOptions::default());
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::Untrusted(_)), "{err}");
    }

    #[test]
    fn expired_device_certificate_is_untrusted_and_says_it_expired() {
        let key = rsa_key();
        let now = now_unix();
        let cert = device_ca()
            .issue_with_validity(
                "expired",
                &crate::test_support::public_of(&key),
                now - 20 * 86_400,
                now - 86_400,
            )
            .unwrap();
        let header = sign(&cert, &key, SignOptions::default());
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        match err {
            IdentityError::Untrusted(reason) => assert!(reason.contains("expired"), "{reason}"),
            other => panic!("expected Untrusted, got {other}"),
        }
    }

    #[test]
    fn ignoring_expiry_accepts_an_expired_certificate_and_nothing_else_more() {
        let key = rsa_key();
        let now = now_unix();
        let cert = device_ca()
            .issue_with_validity(
                "expired",
                &crate::test_support::public_of(&key),
                now - 20 * 86_400,
                now - 86_400,
            )
            .unwrap();
        let v = verifier();
        let header = sign(&cert, &key, SignOptions::default());
        let info = v
            .verify_mdm_signature_ignoring_expiry(header.as_bytes(), BODY)
            .unwrap();
        assert!(info.not_after_unix < now);
        assert!(v.verify_mdm_signature(header.as_bytes(), BODY).is_err());
        // Still refused: a wrong body, a foreign CA.
        assert!(matches!(
            v.verify_mdm_signature_ignoring_expiry(header.as_bytes(), &flipped(BODY, 3)),
            Err(IdentityError::BadSignature)
        ));
        let foreign = foreign_ca()
            .issue_with_validity(
                "foreign",
                &crate::test_support::public_of(&key),
                now - 20 * 86_400,
                now - 86_400,
            )
            .unwrap();
        let header = sign(&foreign, &key, SignOptions::default());
        assert!(matches!(
            v.verify_mdm_signature_ignoring_expiry(header.as_bytes(), BODY),
            Err(IdentityError::Untrusted(_))
        ));
        assert!(
            v.verify_certificate_der_ignoring_expiry(&foreign.to_der().unwrap())
                .is_err()
        );
        assert!(
            v.verify_certificate_der_ignoring_expiry(&cert.to_der().unwrap())
                .is_ok()
        );
        // The lenient path never fills the cache the strict path reads.
        assert!(v.verify_certificate_der(&cert.to_der().unwrap()).is_err());
    }

    /// A certificate from the device CA whose ExtendedKeyUsage is `eku` (None: no EKU extension).
    fn device_cert_with_eku(
        eku: Option<openssl::x509::extension::ExtendedKeyUsage>,
    ) -> (X509, PKey<Private>) {
        let key = rsa_key();
        let name = crate::ca::common_name_only("eku test").unwrap();
        let mut b = crate::ca::new_builder(&name, &key, 30).unwrap();
        b.set_issuer_name(device_ca().certificate().subject_name())
            .unwrap();
        if let Some(eku) = eku {
            b.append_extension(eku.build().unwrap()).unwrap();
        }
        b.sign(device_ca().key(), openssl::hash::MessageDigest::sha256())
            .unwrap();
        (b.build(), key)
    }

    #[test]
    fn a_certificate_whose_eku_excludes_client_auth_is_not_a_device_identity() {
        use openssl::x509::extension::ExtendedKeyUsage;
        let (server_only, key) = device_cert_with_eku(Some({
            let mut e = ExtendedKeyUsage::new();
            e.server_auth().email_protection();
            e
        }));
        let header = sign(&server_only, &key, SignOptions::default());
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        match err {
            IdentityError::Untrusted(reason) => assert!(reason.contains("clientAuth"), "{reason}"),
            other => panic!("expected Untrusted, got {other}"),
        }
        let der = server_only.to_der().unwrap();
        assert!(verifier().verify_certificate_der(&der).is_err());
        // clientAuth, anyExtendedKeyUsage, or no EKU at all: a device identity.
        for eku in [
            Some({
                let mut e = ExtendedKeyUsage::new();
                e.server_auth().client_auth();
                e
            }),
            Some({
                let mut e = ExtendedKeyUsage::new();
                e.other("anyExtendedKeyUsage");
                e
            }),
            None,
        ] {
            let (cert, key) = device_cert_with_eku(eku);
            let header = sign(&cert, &key, SignOptions::default());
            verifier()
                .verify_mdm_signature(header.as_bytes(), BODY)
                .unwrap();
        }
    }

    #[test]
    fn device_certificate_not_yet_valid_is_untrusted() {
        let key = rsa_key();
        let now = now_unix();
        let cert = device_ca()
            .issue_with_validity(
                "future",
                &crate::test_support::public_of(&key),
                now + 86_400,
                now + 2 * 86_400,
            )
            .unwrap();
        let err = verifier()
            .verify_certificate_der(&cert.to_der().unwrap())
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::Untrusted(ref r) if r.contains("not yet valid")),
            "{err}"
        );
    }

    #[test]
    fn certificate_under_a_configured_intermediate_ca_is_trusted_without_the_root() {
        let root = crate::ca::CertificateAuthority::generate("root").unwrap();
        let issuing = root.issue_subordinate("issuing");
        let key = rsa_key();
        let cert = device_cert(&issuing, "leaf", &key);
        let der = cert.to_der().unwrap();

        let trusts_issuing =
            DeviceIdentityVerifier::new(vec![issuing.certificate().clone()]).unwrap();
        assert!(trusts_issuing.verify_certificate_der(&der).is_ok());

        let trusts_root_only =
            DeviceIdentityVerifier::new(vec![root.certificate().clone()]).unwrap();
        let err = trusts_root_only.verify_certificate_der(&der).unwrap_err();
        assert!(
            matches!(err, IdentityError::Untrusted(_)),
            "without the intermediate: {err}"
        );
    }

    // --- signer count -----------------------------------------------------------------------------------

    #[test]
    fn signature_with_two_signers_is_refused() {
        let (a_cert, a_key) = rsa_device("signer-a");
        let (b_cert, b_key) = ec_device("signer-b");
        let der = sign_detached(
            BODY,
            &[(&a_cert, &a_key), (&b_cert, &b_key)],
            SignOptions::default(),
        )
        .unwrap();
        let header = STANDARD.encode(der);
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::SignerCount(2)), "{err}");
    }

    #[test]
    fn signed_data_without_signers_is_refused() {
        let der = sign_detached(BODY, &[], SignOptions::default()).unwrap();
        let header = STANDARD.encode(der);
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::SignerCount(0)), "{err}");
    }

    // --- hostile headers --------------------------------------------------------------------------------

    #[test]
    fn garbage_base64_is_an_encoding_error() {
        let err = verifier()
            .verify_mdm_signature(b"%%% not base64 @@@", BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::SignatureEncoding), "{err}");
    }

    #[test]
    fn valid_base64_of_garbage_is_a_format_error() {
        let header = STANDARD.encode(b"this is not a CMS structure at all");
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::SignatureFormat(_)), "{err}");
    }

    #[test]
    fn truncated_signature_is_a_format_error() {
        let (cert, key) = rsa_device("truncated");
        let der = STANDARD
            .decode(sign(&cert, &key, SignOptions::default()))
            .unwrap();
        for len in [1, 2, 10, der.len() / 2, der.len() - 1] {
            let header = STANDARD.encode(&der[..len]);
            let err = verifier()
                .verify_mdm_signature(header.as_bytes(), BODY)
                .unwrap_err();
            assert!(
                matches!(err, IdentityError::SignatureFormat(_)),
                "truncated to {len}: {err}"
            );
        }
    }

    #[test]
    fn empty_header_is_a_format_error() {
        let err = verifier().verify_mdm_signature(b"", BODY).unwrap_err();
        assert!(matches!(err, IdentityError::SignatureFormat(_)), "{err}");
    }

    #[test]
    fn one_mebibyte_header_is_refused_cleanly() {
        let header = STANDARD.encode(vec![0x30u8; 768 * 1024]);
        assert!(header.len() >= 1024 * 1024);
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::SignatureFormat(ref m) if m.contains("limit")),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_instead_of_signed_data_is_a_format_error() {
        let (cert, _) = rsa_device("not-cms");
        let header = STANDARD.encode(cert.to_der().unwrap());
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), BODY)
            .unwrap_err();
        assert!(matches!(err, IdentityError::SignatureFormat(_)), "{err}");
    }

    #[test]
    fn errors_never_echo_the_header_or_body() {
        let header = STANDARD.encode(b"SECRET-ISH-PAYLOAD-0123456789");
        let err = verifier()
            .verify_mdm_signature(header.as_bytes(), b"BODY-CONTENT")
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(&header) && !text.contains("BODY-CONTENT"),
            "{text}"
        );
    }

    // --- certificates and the cache ---------------------------------------------------------------------

    #[test]
    fn same_certificate_is_chain_checked_once_and_a_different_one_again() {
        let v = verifier();
        let (cert, key) = rsa_device("cached");
        let header = sign(&cert, &key, SignOptions::default());
        for _ in 0..3 {
            v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
        }
        assert_eq!(v.chain_checks_performed(), 1);
        v.verify_certificate_der(&cert.to_der().unwrap()).unwrap();
        assert_eq!(
            v.chain_checks_performed(),
            1,
            "TLS and Mdm-Signature share the cache"
        );

        let (other, _) = ec_device("other");
        v.verify_certificate_der(&other.to_der().unwrap()).unwrap();
        assert_eq!(v.chain_checks_performed(), 2);
    }

    #[test]
    fn signers_past_the_kept_keys_still_take_the_fast_path_and_are_chain_checked_once() {
        let v =
            DeviceIdentityVerifier::with_capacities(vec![device_ca().certificate().clone()], 10, 1)
                .unwrap();
        let devices = [rsa_device("fleet-a"), rsa_device("fleet-b")];
        let headers: Vec<String> = devices
            .iter()
            .map(|(cert, key)| {
                let mac_like = SignOptions {
                    digest: SignatureDigest::Sha1,
                    signed_attributes: false,
                };
                sign(cert, key, mac_like)
            })
            .collect();
        for header in &headers {
            v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
        }
        for round in 1..=3 {
            for (header, (cert, _)) in headers.iter().zip(&devices) {
                let info = v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
                assert_eq!(info.der, cert.to_der().unwrap());
                assert_eq!(info.fingerprint, fingerprint_sha256(&info.der));
            }
            assert_eq!(v.fast_verifies_performed(), 2 * round);
        }
        assert_eq!(v.chain_checks_performed(), 2, "one key kept, two verdicts");
        let err = v
            .verify_mdm_signature(headers[0].as_bytes(), &flipped(BODY, 3))
            .unwrap_err();
        assert!(matches!(err, IdentityError::BadSignature), "{err}");
    }

    #[test]
    fn a_cache_hit_still_requires_a_valid_signature() {
        let v = verifier();
        let (cert, key) = rsa_device("cached-but-tampered");
        let header = sign(&cert, &key, SignOptions::default());
        v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
        let err = v
            .verify_mdm_signature(header.as_bytes(), &flipped(BODY, 3))
            .unwrap_err();
        assert!(matches!(err, IdentityError::BadSignature), "{err}");
    }

    #[test]
    fn refused_certificates_are_checked_again_each_time() {
        let v = verifier();
        let key = rsa_key();
        let der = device_cert(foreign_ca(), "foreign", &key).to_der().unwrap();
        for _ in 0..2 {
            assert!(matches!(
                v.verify_certificate_der(&der),
                Err(IdentityError::Untrusted(_))
            ));
        }
        assert_eq!(v.chain_checks_performed(), 2);
    }

    #[test]
    fn cert_info_describes_the_certificate() {
        let key = rsa_key();
        let cert = device_cert(device_ca(), "UDID-1234", &key);
        let der = cert.to_der().unwrap();
        let info = verifier().verify_certificate_der(&der).unwrap();
        let details = info.details().unwrap();
        assert_eq!(details.subject, "CN=UDID-1234");
        assert_eq!(details.issuer, "CN=test device CA");
        assert_eq!(info.fingerprint.len(), 64);
        assert_eq!(info.fingerprint, info.fingerprint.to_ascii_lowercase());
        let serial = cert
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_ascii_lowercase();
        assert_eq!(details.serial_hex, serial);
        let expected = now_unix() + 365 * 86_400;
        assert!(
            (expected - 3_600..=expected + 3_600).contains(&info.not_after_unix),
            "{}",
            info.not_after_unix
        );
    }

    #[test]
    fn malformed_certificate_der_is_a_format_error() {
        let (cert, _) = rsa_device("malformed");
        let der = cert.to_der().unwrap();
        for bad in [
            &b""[..],
            b"\x30\x03\x02\x01",
            &der[..der.len() - 1],
            b"garbage",
        ] {
            let err = verifier().verify_certificate_der(bad).unwrap_err();
            assert!(matches!(err, IdentityError::CertificateFormat(_)), "{err}");
        }
    }

    #[test]
    fn empty_ca_list_is_refused() {
        assert!(matches!(
            DeviceIdentityVerifier::new(Vec::new()),
            Err(IdentityError::Untrusted(_))
        ));
    }

    #[test]
    fn pem_bundle_yields_every_certificate() {
        let mut bundle = device_ca().cert_pem().unwrap();
        bundle.extend(b"\n# comment between certificates\n");
        bundle.extend(foreign_ca().cert_pem().unwrap());
        let certs = DeviceIdentityVerifier::load_pem_bundle(&bundle).unwrap();
        assert_eq!(certs.len(), 2);
    }

    #[test]
    fn pem_bundle_without_certificates_or_with_a_corrupt_one_is_refused() {
        let corrupt = b"-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n";
        for bad in [&b""[..], b"just text", corrupt] {
            let err = DeviceIdentityVerifier::load_pem_bundle(bad).unwrap_err();
            assert!(matches!(err, IdentityError::CertificateFormat(_)), "{err}");
        }
    }

    #[test]
    fn verifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DeviceIdentityVerifier>();
    }

    // --- names ------------------------------------------------------------------------------------------

    #[test]
    fn names_are_one_line_most_specific_first_with_specials_escaped() {
        let mut b = X509NameBuilder::new().unwrap();
        b.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Acme, Inc.")
            .unwrap();
        b.append_entry_by_nid(Nid::COMMONNAME, "#dev+1\nline2 ")
            .unwrap();
        let name = b.build();
        assert_eq!(
            one_line_name(&name),
            "CN=\\#dev\\+1\\0aline2\\ ,O=Acme\\, Inc."
        );
    }
}
