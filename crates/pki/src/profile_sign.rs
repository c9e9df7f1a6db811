//! Signing configuration profiles (`.mobileconfig`): a CMS SignedData (DER) holding the profile plist, with the
//! signer certificate included, as macOS expects for a signed profile.
//!
//! Guarantees: the signing key never appears in Debug output; [`verify_signed_profile`] accepts a profile only
//! if its signature verifies with the embedded signer and that signer is the expected certificate (or chains
//! to it); oversized or malformed input is an [`IdentityError`], never a panic.

use std::fmt;

use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::store::X509StoreBuilder;
use vault::Secret;

use crate::IdentityError;
use crate::ca::{common_name_only, new_builder};
use crate::error::{crypto, openssl_reason};
use crate::identity::debug_key_holder;

/// Largest signed profile [`verify_signed_profile`] reads.
pub const MAX_SIGNED_PROFILE_BYTES: usize = 1 << 20;
/// Lifetime of a generated profile-signing certificate.
const SIGNER_VALIDITY_DAYS: u32 = 5 * 365;

/// A certificate and key that sign profiles.
pub struct ProfileSigner {
    cert: X509,
    key: PKey<Private>,
}

impl fmt::Debug for ProfileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_key_holder(f, "ProfileSigner", &self.cert)
    }
}

impl ProfileSigner {
    /// A self-signed RSA-2048 signing certificate (keyUsage digitalSignature, not a CA), valid five years.
    pub fn generate(common_name: &str) -> Result<Self, IdentityError> {
        let err = || crypto("generating the profile-signing certificate");
        let key = PKey::from_rsa(Rsa::generate(2048).map_err(err())?).map_err(err())?;
        let name = common_name_only(common_name)?;
        let mut builder = new_builder(&name, &key, SIGNER_VALIDITY_DAYS)?;
        builder.set_issuer_name(&name).map_err(err())?;
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(None, None))
            .map_err(err())?;
        for ext in [
            BasicConstraints::new().critical().build(),
            KeyUsage::new().critical().digital_signature().build(),
            Ok(ski),
        ] {
            builder
                .append_extension(ext.map_err(err())?)
                .map_err(err())?;
        }
        builder.sign(&key, MessageDigest::sha256()).map_err(err())?;
        Ok(ProfileSigner {
            cert: builder.build(),
            key,
        })
    }

    /// Load an uploaded (or previously generated) certificate and unencrypted key; they must match.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, IdentityError> {
        let (cert, key) = crate::ca::cert_and_key_from_pem(cert_pem, key_pem, "profile-signing")?;
        Ok(ProfileSigner { cert, key })
    }

    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    pub fn cert_pem(&self) -> Result<Vec<u8>, IdentityError> {
        self.cert
            .to_pem()
            .map_err(crypto("encoding the profile-signing certificate"))
    }

    pub fn key_pem(&self) -> Result<Secret<Vec<u8>>, IdentityError> {
        self.key
            .private_key_to_pem_pkcs8()
            .map(Secret::new)
            .map_err(crypto("encoding the profile-signing key"))
    }

    /// CMS SignedData (DER) over `profile`, content attached, signer certificate included.
    pub fn sign(&self, profile: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let err = || crypto("signing the profile");
        let extra = Stack::new().map_err(err())?;
        let p7 = Pkcs7::sign(&self.cert, &self.key, &extra, profile, Pkcs7Flags::BINARY)
            .map_err(err())?;
        p7.to_der().map_err(err())
    }
}

/// Verify a signed profile and return its content. The signature must verify with the embedded signer, and
/// the signer must be `trusted` itself or chain to it.
pub fn verify_signed_profile(signed: &[u8], trusted: &X509) -> Result<Vec<u8>, IdentityError> {
    if signed.len() > MAX_SIGNED_PROFILE_BYTES {
        return Err(IdentityError::ProfileSignature(format!(
            "signed profile is larger than {MAX_SIGNED_PROFILE_BYTES} bytes"
        )));
    }
    let p7 = Pkcs7::from_der(signed).map_err(|e| {
        IdentityError::ProfileSignature(format!("not a DER CMS SignedData: {}", openssl_reason(&e)))
    })?;
    let err = || crypto("verifying the profile signature");
    let mut store = X509StoreBuilder::new().map_err(err())?;
    store.add_cert(trusted.clone()).map_err(err())?;
    let store = store.build();
    let certs = Stack::new().map_err(err())?;
    let mut out = Vec::new();
    p7.verify(&certs, &store, None, Some(&mut out), Pkcs7Flags::BINARY)
        .map_err(|e| {
            IdentityError::ProfileSignature(format!(
                "profile signature does not verify: {}",
                openssl_reason(&e)
            ))
        })?;
    Ok(out)
}

/// The content of a signed profile whose signature verifies with its embedded signer, without deciding whether
/// that signer is trusted (as a Mac does for a profile its MDM server sends with InstallProfile: the MDM
/// channel itself is the authority). Never use it where the signer's identity matters.
pub fn signed_profile_content(signed: &[u8]) -> Result<Vec<u8>, IdentityError> {
    if signed.len() > MAX_SIGNED_PROFILE_BYTES {
        return Err(IdentityError::ProfileSignature(format!(
            "signed profile is larger than {MAX_SIGNED_PROFILE_BYTES} bytes"
        )));
    }
    let p7 = Pkcs7::from_der(signed).map_err(|e| {
        IdentityError::ProfileSignature(format!("not a DER CMS SignedData: {}", openssl_reason(&e)))
    })?;
    let err = || crypto("verifying the profile signature");
    let store = X509StoreBuilder::new().map_err(err())?.build();
    let certs = Stack::new().map_err(err())?;
    let mut out = Vec::new();
    p7.verify(
        &certs,
        &store,
        None,
        Some(&mut out),
        Pkcs7Flags::BINARY | Pkcs7Flags::NOVERIFY,
    )
    .map_err(|e| {
        IdentityError::ProfileSignature(format!(
            "profile signature does not verify: {}",
            openssl_reason(&e)
        ))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_of_a_signed_profile_needs_a_valid_signature_but_no_anchor() {
        let signer = ProfileSigner::generate("escrowd profile signing").unwrap();
        let body = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict/></plist>";
        let signed = signer.sign(body).unwrap();
        assert_eq!(signed_profile_content(&signed).unwrap(), body);
        assert!(signed_profile_content(b"not cms").is_err());
        let mut tampered = signed.clone();
        let at = tampered.windows(6).position(|w| w == b"<dict/").unwrap();
        tampered[at + 1] = b'D';
        assert!(signed_profile_content(&tampered).is_err());
    }

    #[test]
    fn a_signed_profile_verifies_and_returns_its_content() {
        let signer = ProfileSigner::generate("escrowd profile signing").unwrap();
        let body = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict/></plist>";
        let signed = signer.sign(body).unwrap();
        assert_eq!(
            verify_signed_profile(&signed, signer.certificate()).unwrap(),
            body
        );

        let other = ProfileSigner::generate("someone else").unwrap();
        assert!(verify_signed_profile(&signed, other.certificate()).is_err());
        let mut tampered = signed.clone();
        let at = tampered.windows(5).position(|w| w == b"<dict").unwrap();
        tampered[at + 1] = b'D';
        assert!(verify_signed_profile(&tampered, signer.certificate()).is_err());
        assert!(verify_signed_profile(b"garbage", signer.certificate()).is_err());
        assert!(
            verify_signed_profile(
                &vec![0u8; MAX_SIGNED_PROFILE_BYTES + 1],
                signer.certificate()
            )
            .is_err()
        );
    }

    #[test]
    fn the_openssl_binary_accepts_the_signature() {
        let Ok(out) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            eprintln!("SKIPPED: no openssl binary");
            return;
        };
        assert!(out.status.success());
        let signer = ProfileSigner::generate("escrowd profile signing").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let body = b"<plist version=\"1.0\"><dict><key>A</key><string>b</string></dict></plist>";
        std::fs::write(
            dir.path().join("p.mobileconfig"),
            signer.sign(body).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("signer.pem"), signer.cert_pem().unwrap()).unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                "p.mobileconfig",
                "-CAfile",
                "signer.pem",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, body);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let signer = ProfileSigner::generate("escrowd profile signing").unwrap();
        let key = signer.key_pem().unwrap();
        let shown = format!("{signer:?}");
        assert!(shown.contains("REDACTED"));
        assert!(
            !shown.contains(
                std::str::from_utf8(key.expose())
                    .unwrap()
                    .lines()
                    .nth(1)
                    .unwrap()
            )
        );
    }
}
