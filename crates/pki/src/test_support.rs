//! Test fixtures: CAs, keys and device certificates generated with openssl (never checked in).

use std::sync::OnceLock;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::x509::X509;

use crate::ca::CertificateAuthority;

/// The device CA most tests trust (generated once per test binary: RSA keygen is the slow part).
pub(crate) fn device_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("test device CA").unwrap())
}

/// A CA nobody configured.
pub(crate) fn foreign_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("foreign CA").unwrap())
}

pub(crate) fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

pub(crate) fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

pub(crate) fn public_of(key: &PKey<Private>) -> PKey<Public> {
    PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap()
}

/// A device certificate for `key` issued by `ca`, valid for a year.
pub(crate) fn device_cert(ca: &CertificateAuthority, cn: &str, key: &PKey<Private>) -> X509 {
    ca.issue_device_certificate(cn, &public_of(key), 365)
        .unwrap()
}

/// An RSA device identity issued by [`device_ca`].
pub(crate) fn rsa_device(cn: &str) -> (X509, PKey<Private>) {
    let key = rsa_key();
    (device_cert(device_ca(), cn, &key), key)
}

/// An ECDSA P-256 device identity issued by [`device_ca`].
pub(crate) fn ec_device(cn: &str) -> (X509, PKey<Private>) {
    let key = ec_key();
    (device_cert(device_ca(), cn, &key), key)
}
