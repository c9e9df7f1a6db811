//! The client side of `Mdm-Signature`: how a Mac signs its check-in and command-response bodies.
//!
//! Guarantees: [`mdm_signature`] produces a detached CMS SignedData over exactly `body` (binary, no MIME
//! canonicalisation), one signer, the signer certificate embedded, with the requested digest and with or without
//! signed attributes, for RSA and ECDSA keys. This file holds most of the crate's `unsafe` code (the other is `identity::allows_client_auth`): openssl's safe
//! wrapper cannot choose the signer digest, so `PKCS7_sign_add_signer` is called directly.

use std::ffi::c_int;
use std::ptr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509Ref;

use crate::error::{IdentityError, crypto};

/// Digest a signer uses. Real Macs send SHA-1; SHA-256 is what we use by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureDigest {
    Sha1,
    Sha256,
}

/// How to sign: digest and whether to include CMS signed attributes (real Macs send none).
#[derive(Debug, Clone, Copy)]
pub struct SignOptions {
    pub digest: SignatureDigest,
    pub signed_attributes: bool,
}

impl Default for SignOptions {
    /// SHA-256 with signed attributes.
    fn default() -> Self {
        SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: true,
        }
    }
}

/// Detached CMS SignedData over `body` with the signer certificate embedded, as the base64 (no newlines)
/// value of an `Mdm-Signature` header. `key` must be the private key of `cert`.
pub fn mdm_signature(
    body: &[u8],
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    opts: SignOptions,
) -> Result<String, IdentityError> {
    let der = sign_detached(body, &[(cert, key)], opts)?;
    Ok(STANDARD.encode(der))
}

/// Declarations openssl-sys 0.9 does not export; both are public libcrypto API since OpenSSL 1.0.0.
mod ffi {
    use openssl_sys::{BIO, EVP_MD, EVP_PKEY, PKCS7, PKCS7_SIGNER_INFO, X509};
    use std::ffi::c_int;

    unsafe extern "C" {
        pub fn PKCS7_sign_add_signer(
            p7: *mut PKCS7,
            signcert: *mut X509,
            pkey: *mut EVP_PKEY,
            md: *const EVP_MD,
            flags: c_int,
        ) -> *mut PKCS7_SIGNER_INFO;
        pub fn PKCS7_final(p7: *mut PKCS7, data: *mut BIO, flags: c_int) -> c_int;
    }
}

/// Frees a memory BIO on every exit path.
struct MemBio(*mut openssl_sys::BIO);

impl Drop for MemBio {
    fn drop(&mut self) {
        // SAFETY: self.0 came from a successful BIO_new_mem_buf and is freed exactly once, here.
        unsafe {
            openssl_sys::BIO_free_all(self.0);
        }
    }
}

/// DER detached SignedData over `body`, one SignerInfo per `(cert, key)` pair (several only in tests, to build
/// hostile input; an empty list gives a SignedData with no signers).
pub(crate) fn sign_detached(
    body: &[u8],
    signers: &[(&X509Ref, &PKeyRef<Private>)],
    opts: SignOptions,
) -> Result<Vec<u8>, IdentityError> {
    let md = match opts.digest {
        SignatureDigest::Sha1 => MessageDigest::sha1(),
        SignatureDigest::Sha256 => MessageDigest::sha256(),
    };
    let mut flags =
        Pkcs7Flags::BINARY | Pkcs7Flags::DETACHED | Pkcs7Flags::PARTIAL | Pkcs7Flags::NOSMIMECAP;
    if !opts.signed_attributes {
        flags |= Pkcs7Flags::NOATTR;
    }
    let flags: c_int = flags.bits();
    let body_len = c_int::try_from(body.len())
        .map_err(|_| IdentityError::Crypto("body is too large to sign".into()))?;

    // SAFETY: PKCS7_sign with null signer, key, certs and data plus PKCS7_PARTIAL returns a new, empty
    // SignedData (or null on error), which we immediately hand to `Pkcs7` so it is freed exactly once.
    let p7 = unsafe {
        let raw = openssl_sys::PKCS7_sign(
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            flags,
        );
        if raw.is_null() {
            return Err(crypto("creating SignedData")(ErrorStack::get()));
        }
        Pkcs7::from_ptr(raw)
    };

    for (cert, key) in signers {
        // SAFETY: all pointers are live for the call (borrowed from `p7`, `cert`, `key`, and the static digest
        // table). PKCS7_sign_add_signer takes its own references to the certificate and key, and the returned
        // SignerInfo is owned by `p7`, so nothing here is freed twice or used after free.
        let info = unsafe {
            ffi::PKCS7_sign_add_signer(p7.as_ptr(), cert.as_ptr(), key.as_ptr(), md.as_ptr(), flags)
        };
        if info.is_null() {
            return Err(crypto("adding signer")(ErrorStack::get()));
        }
    }

    // SAFETY: BIO_new_mem_buf makes a read-only BIO over `body` without copying; `body` outlives the BIO,
    // which `MemBio` frees at the end of this function, after PKCS7_final has finished reading it.
    let bio = unsafe {
        let raw = openssl_sys::BIO_new_mem_buf(body.as_ptr().cast(), body_len);
        if raw.is_null() {
            return Err(crypto("reading body")(ErrorStack::get()));
        }
        MemBio(raw)
    };
    // SAFETY: `p7` and `bio` are valid; PKCS7_final reads the body, computes digests and signatures and,
    // because of PKCS7_DETACHED, leaves the content out. It does not take ownership of the BIO.
    let finished = unsafe { ffi::PKCS7_final(p7.as_ptr(), bio.0, flags) };
    if finished != 1 {
        return Err(crypto("signing")(ErrorStack::get()));
    }
    drop(bio);

    p7.to_der().map_err(crypto("encoding SignedData"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::verify_signature_only;
    use crate::test_support::{ec_device, rsa_device};

    const BODY: &[u8] =
        b"<plist version=\"1.0\"><dict><key>Status</key><string>Idle</string></dict></plist>";
    /// DER of the OBJECT IDENTIFIERs we look for in the encoded SignedData.
    const OID_SHA1: &[u8] = &[0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
    const OID_SHA256: &[u8] = &[
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    const OID_MESSAGE_DIGEST: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04,
    ];

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn signed(opts: SignOptions) -> Vec<u8> {
        let (cert, key) = rsa_device("sign-test");
        let header = mdm_signature(BODY, &cert, &key, opts).unwrap();
        STANDARD.decode(header).unwrap()
    }

    #[test]
    fn default_options_are_sha256_with_signed_attributes() {
        let opts = SignOptions::default();
        assert_eq!(opts.digest, SignatureDigest::Sha256);
        assert!(opts.signed_attributes);
    }

    #[test]
    fn sha1_option_signs_with_sha1_only() {
        let der = signed(SignOptions {
            digest: SignatureDigest::Sha1,
            signed_attributes: false,
        });
        assert!(contains(&der, OID_SHA1));
        assert!(!contains(&der, OID_SHA256));
    }

    #[test]
    fn sha256_option_signs_with_sha256_only() {
        let der = signed(SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: false,
        });
        assert!(contains(&der, OID_SHA256));
        assert!(!contains(&der, OID_SHA1));
    }

    #[test]
    fn signed_attributes_are_present_only_when_asked_for() {
        let with = signed(SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: true,
        });
        let without = signed(SignOptions {
            digest: SignatureDigest::Sha256,
            signed_attributes: false,
        });
        assert!(contains(&with, OID_MESSAGE_DIGEST));
        assert!(!contains(&without, OID_MESSAGE_DIGEST));
    }

    #[test]
    fn signature_is_detached_and_embeds_the_signer_certificate() {
        let (cert, key) = ec_device("detached");
        let header = mdm_signature(BODY, &cert, &key, SignOptions::default()).unwrap();
        let der = STANDARD.decode(&header).unwrap();
        assert!(
            !contains(&der, BODY),
            "the body must not be inside the signature"
        );
        assert!(contains(&der, &cert.to_der().unwrap()));
        assert!(!header.contains('\n'));
        let info = verify_signature_only(header.as_bytes(), BODY).unwrap();
        assert_eq!(info.der, cert.to_der().unwrap());
    }

    #[test]
    fn signing_with_a_key_that_does_not_match_the_certificate_fails() {
        let (cert, _) = rsa_device("mismatch-a");
        let (_, other_key) = rsa_device("mismatch-b");
        let err = mdm_signature(BODY, &cert, &other_key, SignOptions::default()).unwrap_err();
        assert!(matches!(err, IdentityError::Crypto(_)), "{err}");
    }

    #[test]
    fn empty_body_can_be_signed_and_verified() {
        let (cert, key) = rsa_device("empty-body");
        let header = mdm_signature(b"", &cert, &key, SignOptions::default()).unwrap();
        assert!(verify_signature_only(header.as_bytes(), b"").is_ok());
        assert!(verify_signature_only(header.as_bytes(), b"x").is_err());
    }
}
