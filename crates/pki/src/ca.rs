//! escrowd's built-in development device CA, and self-signed TLS certificates for `escrowd serve`.
//!
//! Guarantees: the CA's private key never appears in `Debug` output or errors, and leaves this type only as a
//! [`Secret`] (PKCS#8 PEM). Issued device certificates carry a random 128-bit serial, CA:false, EKU clientAuth
//! and the key usages a device identity needs; the CA certificate is CA:true with keyCertSign + cRLSign (+ digitalSignature and keyEncipherment, as the SCEP CA).

use std::fmt;
use std::net::IpAddr;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Name, X509NameRef};
use vault::Secret;

use crate::error::{IdentityError, crypto, openssl_reason};
use crate::identity::{debug_key_holder, now_unix};

/// Lifetime of a generated CA.
const CA_VALIDITY_DAYS: u32 = 3650;
/// notBefore is set this far in the past so devices with slightly slow clocks accept new certificates.
const BACKDATE_SECS: i64 = 5 * 60;
/// X.509 upper bound for a commonName (RFC 5280 ub-common-name).
const MAX_COMMON_NAME_CHARS: usize = 64;

/// A certificate authority that can issue device identity certificates (what SCEP will do later).
pub struct CertificateAuthority {
    cert: X509,
    key: PKey<Private>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_key_holder(f, "CertificateAuthority", &self.cert)
    }
}

impl CertificateAuthority {
    /// New RSA-2048 self-signed CA valid for 10 years: basicConstraints CA:true, keyUsage keyCertSign + cRLSign
    /// + digitalSignature + keyEncipherment (it is also the SCEP CA).
    pub fn generate(common_name: &str) -> Result<Self, IdentityError> {
        let rsa = Rsa::generate(2048).map_err(crypto("generating CA key"))?;
        let key = PKey::from_rsa(rsa).map_err(crypto("generating CA key"))?;
        let name = common_name_only(common_name)?;
        let mut builder = new_builder(&name, &key, CA_VALIDITY_DAYS)?;
        builder
            .set_issuer_name(&name)
            .map_err(crypto("building CA certificate"))?;
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(None, None))
            .map_err(crypto("building CA certificate"))?;
        let extensions = [
            BasicConstraints::new().critical().ca().build(),
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                // SCEP: clients encrypt requests to the CA certificate and verify replies it signs.
                .digital_signature()
                .key_encipherment()
                .build(),
            Ok(ski),
        ];
        for ext in extensions {
            let ext = ext.map_err(crypto("building CA certificate"))?;
            builder
                .append_extension(ext)
                .map_err(crypto("building CA certificate"))?;
        }
        builder
            .sign(&key, MessageDigest::sha256())
            .map_err(crypto("signing CA certificate"))?;
        Ok(CertificateAuthority {
            cert: builder.build(),
            key,
        })
    }

    /// Loads a CA from its certificate and (unencrypted) private key, refusing a key that does not match.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, IdentityError> {
        let (cert, key) = cert_and_key_from_pem(cert_pem, key_pem, "CA")?;
        Ok(CertificateAuthority { cert, key })
    }

    /// The CA's private key, for SCEP (decrypting requests, signing replies) inside this crate only.
    pub(crate) fn key(&self) -> &PKeyRef<Private> {
        &self.key
    }

    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    pub fn cert_pem(&self) -> Result<Vec<u8>, IdentityError> {
        self.cert
            .to_pem()
            .map_err(crypto("encoding CA certificate"))
    }

    /// The private key as PKCS#8 PEM, wrapped so it cannot be printed by accident.
    pub fn key_pem(&self) -> Result<Secret<Vec<u8>>, IdentityError> {
        self.key
            .private_key_to_pem_pkcs8()
            .map(Secret::new)
            .map_err(crypto("encoding CA key"))
    }

    /// Issues a device identity certificate for `public_key`: random 128-bit serial, subject CN=`common_name`,
    /// EKU clientAuth, keyUsage digitalSignature (+keyEncipherment for RSA), valid `days` days from now.
    pub fn issue_device_certificate(
        &self,
        common_name: &str,
        public_key: &PKeyRef<Public>,
        days: u32,
    ) -> Result<X509, IdentityError> {
        if days == 0 {
            return Err(IdentityError::Crypto(
                "validity must be at least one day".into(),
            ));
        }
        let now = now_unix();
        let not_after = now.saturating_add(i64::from(days).saturating_mul(86_400));
        self.issue_with_validity(common_name, public_key, now - BACKDATE_SECS, not_after)
    }

    /// Issues a device certificate valid from `not_before` to `not_after` (Unix seconds); tests and the
    /// simulator use it to make expired (or soon expiring) certificates.
    pub fn issue_with_validity(
        &self,
        common_name: &str,
        public_key: &PKeyRef<Public>,
        not_before: i64,
        not_after: i64,
    ) -> Result<X509, IdentityError> {
        let err = || crypto("issuing device certificate");
        let name = common_name_only(common_name)?;
        let mut builder = X509Builder::new().map_err(err())?;
        builder.set_version(2).map_err(err())?;
        let serial = random_serial()?;
        builder.set_serial_number(&serial).map_err(err())?;
        builder.set_subject_name(&name).map_err(err())?;
        builder
            .set_issuer_name(self.cert.subject_name())
            .map_err(err())?;
        builder.set_pubkey(public_key).map_err(err())?;
        let not_before = Asn1Time::from_unix(not_before).map_err(err())?;
        let not_after = Asn1Time::from_unix(not_after).map_err(err())?;
        builder.set_not_before(&not_before).map_err(err())?;
        builder.set_not_after(&not_after).map_err(err())?;

        let mut usage = KeyUsage::new();
        usage.critical().digital_signature();
        if public_key.id() == Id::RSA {
            usage.key_encipherment();
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .map_err(err())?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .map_err(err())?;
        let extensions = [
            BasicConstraints::new().critical().build(),
            usage.build(),
            ExtendedKeyUsage::new().client_auth().build(),
            Ok(ski),
            Ok(aki),
        ];
        for ext in extensions {
            builder
                .append_extension(ext.map_err(err())?)
                .map_err(err())?;
        }
        builder
            .sign(&self.key, MessageDigest::sha256())
            .map_err(err())?;
        Ok(builder.build())
    }
}

#[cfg(test)]
impl CertificateAuthority {
    /// A subordinate (intermediate) CA signed by this one, for chain tests.
    pub(crate) fn issue_subordinate(&self, common_name: &str) -> CertificateAuthority {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let name = common_name_only(common_name).unwrap();
        let mut builder = new_builder(&name, &key, 365).unwrap();
        builder.set_issuer_name(self.cert.subject_name()).unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .unwrap();
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .unwrap();
        builder
            .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        builder.append_extension(ski).unwrap();
        builder.append_extension(aki).unwrap();
        builder.sign(&self.key, MessageDigest::sha256()).unwrap();
        CertificateAuthority {
            cert: builder.build(),
            key,
        }
    }
}

/// A self-signed TLS server certificate (P-256) with a SAN for each DNS name or IP address in `names`
/// (e.g. `["localhost", "127.0.0.1"]`); returns (certificate PEM, PKCS#8 key PEM).
pub fn self_signed_tls_certificate(
    names: &[&str],
    days: u32,
) -> Result<(Vec<u8>, Secret<Vec<u8>>), IdentityError> {
    let err = || crypto("building TLS certificate");
    let first = names
        .first()
        .ok_or_else(|| IdentityError::Crypto("a TLS certificate needs at least one name".into()))?;
    if days == 0 {
        return Err(IdentityError::Crypto(
            "validity must be at least one day".into(),
        ));
    }
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(err())?;
    let ec = EcKey::generate(&group).map_err(err())?;
    let key = PKey::from_ec_key(ec).map_err(err())?;

    let cn: String = first.chars().take(MAX_COMMON_NAME_CHARS).collect();
    let name = common_name_only(&cn)?;
    let mut builder = new_builder(&name, &key, days)?;
    builder.set_issuer_name(&name).map_err(err())?;

    let mut san = SubjectAlternativeName::new();
    for name in names {
        if name.parse::<IpAddr>().is_ok() {
            san.ip(name);
        } else if is_dns_name(name) {
            san.dns(name);
        } else {
            return Err(IdentityError::Crypto(format!(
                "{name:?} is neither a DNS name nor an IP address"
            )));
        }
    }
    let san = san
        .build(&builder.x509v3_context(None, None))
        .map_err(err())?;
    let ski = SubjectKeyIdentifier::new()
        .build(&builder.x509v3_context(None, None))
        .map_err(err())?;
    let extensions = [
        BasicConstraints::new().critical().build(),
        KeyUsage::new().critical().digital_signature().build(),
        ExtendedKeyUsage::new().server_auth().build(),
        Ok(san),
        Ok(ski),
    ];
    for ext in extensions {
        builder
            .append_extension(ext.map_err(err())?)
            .map_err(err())?;
    }
    builder.sign(&key, MessageDigest::sha256()).map_err(err())?;
    let cert_pem = builder.build().to_pem().map_err(err())?;
    let key_pem = key
        .private_key_to_pem_pkcs8()
        .map(Secret::new)
        .map_err(crypto("encoding TLS key"))?;
    Ok((cert_pem, key_pem))
}

/// Letters, digits, '-', '.', and a leading "*." wildcard; 1-253 characters.
fn is_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && name.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A name holding just `CN=common_name`; refuses empty or over-long names.
pub(crate) fn common_name_only(common_name: &str) -> Result<X509Name, IdentityError> {
    let chars = common_name.chars().count();
    if chars == 0 || chars > MAX_COMMON_NAME_CHARS {
        return Err(IdentityError::Crypto(format!(
            "common name must be 1-{MAX_COMMON_NAME_CHARS} characters, got {chars}"
        )));
    }
    let err = || crypto("building subject name");
    let mut name = X509Name::builder().map_err(err())?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(err())?;
    Ok(name.build())
}

/// A v3 builder with subject, key, random serial and validity set (issuer and extensions are the caller's).
pub(crate) fn new_builder(
    subject: &X509NameRef,
    key: &PKeyRef<Private>,
    days: u32,
) -> Result<X509Builder, IdentityError> {
    let err = || crypto("building certificate");
    let now = now_unix();
    let not_after = now.saturating_add(i64::from(days).saturating_mul(86_400));
    let mut builder = X509Builder::new().map_err(err())?;
    builder.set_version(2).map_err(err())?;
    let serial = random_serial()?;
    builder.set_serial_number(&serial).map_err(err())?;
    builder.set_subject_name(subject).map_err(err())?;
    builder.set_pubkey(key).map_err(err())?;
    let not_before = Asn1Time::from_unix(now - BACKDATE_SECS).map_err(err())?;
    let not_after = Asn1Time::from_unix(not_after).map_err(err())?;
    builder.set_not_before(&not_before).map_err(err())?;
    builder.set_not_after(&not_after).map_err(err())?;
    Ok(builder)
}

/// A random positive serial of up to 128 bits (never zero).
fn random_serial() -> Result<Asn1Integer, IdentityError> {
    let err = || crypto("generating serial number");
    let mut bn = BigNum::new().map_err(err())?;
    bn.rand(128, MsbOption::MAYBE_ZERO, false).map_err(err())?;
    if bn.num_bits() == 0 {
        bn = BigNum::from_u32(1).map_err(err())?;
    }
    bn.to_asn1_integer().map_err(err())
}

/// An unencrypted PEM private key. An encrypted one is refused: the explicit callback supplies no passphrase,
/// where openssl's default would prompt on the server's terminal and block.
pub fn unencrypted_private_key_from_pem(
    key_pem: &[u8],
) -> Result<PKey<Private>, openssl::error::ErrorStack> {
    PKey::private_key_from_pem_callback(key_pem, |_buf| Ok(0))
}

/// A certificate and its unencrypted private key from PEM, refusing a key that does not match; `what` names
/// the pair in errors ("CA", "profile-signing").
pub fn cert_and_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<(X509, PKey<Private>), IdentityError> {
    let cert = X509::from_pem(cert_pem)
        .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
    let key = unencrypted_private_key_from_pem(key_pem).map_err(|e| {
        IdentityError::Crypto(format!(
            "{what} private key is not an unencrypted PEM private key: {}",
            openssl_reason(&e)
        ))
    })?;
    let public = cert
        .public_key()
        .map_err(|e| IdentityError::CertificateFormat(openssl_reason(&e)))?;
    if !public.public_eq(&key) {
        return Err(IdentityError::Crypto(format!(
            "{what} private key does not match its certificate"
        )));
    }
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceIdentityVerifier;
    use crate::test_support::{device_ca, ec_key, public_of, rsa_key};
    use openssl::x509::X509VerifyResult;

    fn san_strings(cert: &X509) -> (Vec<String>, Vec<Vec<u8>>) {
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in cert.subject_alt_names().unwrap() {
            if let Some(d) = name.dnsname() {
                dns.push(d.to_string());
            }
            if let Some(ip) = name.ipaddress() {
                ips.push(ip.to_vec());
            }
        }
        (dns, ips)
    }

    #[test]
    fn generated_ca_round_trips_through_pem() {
        let ca = CertificateAuthority::generate("round trip CA").unwrap();
        let key_pem = ca.key_pem().unwrap();
        assert!(
            key_pem.expose().starts_with(b"-----BEGIN PRIVATE KEY-----"),
            "PKCS#8"
        );
        let loaded =
            CertificateAuthority::from_pem(&ca.cert_pem().unwrap(), key_pem.expose()).unwrap();
        assert_eq!(
            loaded.certificate().to_der().unwrap(),
            ca.certificate().to_der().unwrap()
        );

        // The reloaded CA signs certificates the original's certificate accepts.
        let verifier = DeviceIdentityVerifier::new(vec![ca.certificate().clone()]).unwrap();
        let cert = loaded
            .issue_device_certificate("reloaded", &public_of(&rsa_key()), 30)
            .unwrap();
        assert!(
            verifier
                .verify_certificate_der(&cert.to_der().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn generated_ca_is_self_signed_and_issues_for_itself() {
        let ca = device_ca();
        assert_eq!(
            ca.certificate().issued(ca.certificate()),
            X509VerifyResult::OK
        );
        assert!(
            ca.certificate()
                .verify(&ca.certificate().public_key().unwrap())
                .unwrap()
        );
        let text = String::from_utf8(ca.certificate().to_text().unwrap()).unwrap();
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    }

    #[test]
    fn issued_rsa_and_ecdsa_certificates_verify_and_carry_device_extensions() {
        let ca = device_ca();
        let verifier = DeviceIdentityVerifier::new(vec![ca.certificate().clone()]).unwrap();
        for (key, encipherment) in [(rsa_key(), true), (ec_key(), false)] {
            let cert = ca
                .issue_device_certificate("UDID-ABC", &public_of(&key), 365)
                .unwrap();
            let info = verifier
                .verify_certificate_der(&cert.to_der().unwrap())
                .unwrap();
            assert_eq!(info.details().unwrap().subject, "CN=UDID-ABC");
            let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
            assert!(text.contains("CA:FALSE"), "{text}");
            assert!(text.contains("TLS Web Client Authentication"), "{text}");
            assert!(text.contains("Digital Signature"), "{text}");
            assert_eq!(text.contains("Key Encipherment"), encipherment, "{text}");
            assert!(cert.serial_number().to_bn().unwrap().num_bits() <= 128);
        }
    }

    #[test]
    fn issued_serials_are_random() {
        let ca = device_ca();
        let key = public_of(&ec_key());
        let a = ca.issue_device_certificate("a", &key, 1).unwrap();
        let b = ca.issue_device_certificate("a", &key, 1).unwrap();
        let (a, b) = (
            a.serial_number().to_bn().unwrap(),
            b.serial_number().to_bn().unwrap(),
        );
        assert_ne!(a, b);
        assert!(
            a.num_bits() > 64 && b.num_bits() > 64,
            "at least 64 random bits in practice"
        );
    }

    #[test]
    fn zero_days_or_bad_common_names_are_refused() {
        let ca = device_ca();
        let key = public_of(&ec_key());
        assert!(ca.issue_device_certificate("x", &key, 0).is_err());
        assert!(ca.issue_device_certificate("", &key, 1).is_err());
        assert!(
            ca.issue_device_certificate(&"x".repeat(65), &key, 1)
                .is_err()
        );
        assert!(CertificateAuthority::generate("").is_err());
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let ca = device_ca();
        let debug = format!("{ca:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
        let key_pem = ca.key_pem().unwrap();
        let body_line = String::from_utf8(key_pem.expose().clone()).unwrap();
        let first_base64_line = body_line.lines().nth(1).unwrap();
        assert!(!debug.contains(first_base64_line));
        assert!(!format!("{key_pem:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn from_pem_refuses_a_key_that_does_not_match_the_certificate() {
        let other = CertificateAuthority::generate("other").unwrap();
        let err = CertificateAuthority::from_pem(
            &device_ca().cert_pem().unwrap(),
            other.key_pem().unwrap().expose(),
        )
        .unwrap_err();
        assert!(
            matches!(err, IdentityError::Crypto(ref m) if m.contains("does not match")),
            "{err}"
        );
        assert!(!err.to_string().contains("PRIVATE KEY"));
    }

    #[test]
    fn from_pem_refuses_malformed_input_and_encrypted_keys_without_prompting() {
        let ca = device_ca();
        let cert_pem = ca.cert_pem().unwrap();
        let key_pem = ca.key_pem().unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(b"not pem", key_pem.expose()),
            Err(IdentityError::CertificateFormat(_))
        ));
        assert!(matches!(
            CertificateAuthority::from_pem(&cert_pem, b"not pem"),
            Err(IdentityError::Crypto(_))
        ));
        let key = PKey::private_key_from_pem(key_pem.expose()).unwrap();
        let encrypted = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"hunter2")
            .unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(&cert_pem, &encrypted),
            Err(IdentityError::Crypto(_))
        ));
    }

    #[test]
    fn self_signed_tls_certificate_carries_the_requested_sans() {
        let (cert_pem, key_pem) =
            self_signed_tls_certificate(&["localhost", "127.0.0.1", "::1"], 30).unwrap();
        let cert = X509::from_pem(&cert_pem).unwrap();
        let (dns, ips) = san_strings(&cert);
        assert_eq!(dns, vec!["localhost".to_string()]);
        assert_eq!(
            ips,
            vec![
                vec![127, 0, 0, 1],
                std::net::Ipv6Addr::LOCALHOST.octets().to_vec()
            ]
        );
        let key = PKey::private_key_from_pem(key_pem.expose()).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert!(cert.verify(&key).unwrap(), "self-signed");
        let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
        assert!(
            text.contains("TLS Web Server Authentication") && text.contains("CA:FALSE"),
            "{text}"
        );
    }

    #[test]
    fn self_signed_tls_certificate_refuses_no_names_or_invalid_names() {
        assert!(self_signed_tls_certificate(&[], 30).is_err());
        assert!(self_signed_tls_certificate(&["bad name"], 30).is_err());
        assert!(self_signed_tls_certificate(&["a..b"], 30).is_err());
        assert!(self_signed_tls_certificate(&["localhost"], 0).is_err());
        assert!(self_signed_tls_certificate(&["*.example.test"], 1).is_ok());
    }
}
