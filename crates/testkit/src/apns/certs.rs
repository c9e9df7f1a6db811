//! The push side of the stand-in's tests: a CA in place of Apple's push certificate issuer, the certificates it
//! issues, and the TokenUpdates and device tokens that give each test Mac a push token of its own.

use anyhow::Context;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Name};
use pki::ca::CertificateAuthority;

/// A CA standing in for Apple's push certificate issuer, and the push certificates it issues.
pub struct PushCa {
    ca: CertificateAuthority,
}

impl PushCa {
    pub fn generate() -> anyhow::Result<PushCa> {
        Ok(PushCa {
            ca: CertificateAuthority::generate("Test Application Integration CA")?,
        })
    }

    /// The CA certificate (PEM), for [`super::ApnsStandIn::start`].
    pub fn cert_pem(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.ca.cert_pem()?)
    }

    /// An RSA-2048 MDM push certificate with subject UID `topic` (as Apple issues them: EKU clientAuth),
    /// valid from `from_days` to `to_days` relative to now; returns (certificate PEM, PKCS#8 key PEM).
    pub fn issue(
        &self,
        topic: &str,
        from_days: i64,
        to_days: i64,
    ) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let ca_key = PKey::private_key_from_pem(self.ca.key_pem()?.expose())?;
        let mut name = X509Name::builder()?;
        name.append_entry_by_nid(Nid::USERID, topic)?;
        // Apple's CN is `APSP:<uuid>` (the topic's last part); a CN is at most 64 characters.
        let cn: String = format!("APSP:{}", topic.rsplit('.').next().unwrap_or(topic))
            .chars()
            .take(64)
            .collect();
        name.append_entry_by_nid(Nid::COMMONNAME, &cn)?;
        let name = name.build();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(self.ca.certificate().subject_name())?;
        b.set_pubkey(&key)?;
        let not_before = Asn1Time::from_unix(now + from_days * 86_400)?;
        b.set_not_before(&not_before)?;
        let not_after = Asn1Time::from_unix(now + to_days * 86_400)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
    }
}

/// A TokenUpdate with its own 32-byte push token and PushMagic (so pushes can be told apart).
pub fn token_update(udid: &str, topic: &str, token: &[u8], push_magic: &str) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("MessageType".into(), "TokenUpdate".into());
    d.insert("UDID".into(), udid.into());
    d.insert("Topic".into(), topic.into());
    d.insert("PushMagic".into(), push_magic.into());
    d.insert("Token".into(), plist::Value::Data(token.to_vec()));
    crate::messages::to_xml(d)
}

/// A 32-byte device token derived from `n`, and its lowercase hex.
pub fn device_token(n: u32) -> (Vec<u8>, String) {
    let mut t = [0u8; 32];
    t[..4].copy_from_slice(&n.to_be_bytes());
    t[4..]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i as u8).wrapping_mul(37) ^ 0x5a);
    let hex = t.iter().map(|b| format!("{b:02x}")).collect();
    (t.to_vec(), hex)
}

/// Read a push certificate (PEM) back, e.g. to check what a test uploaded.
pub fn certificate_uid(cert_pem: &[u8]) -> anyhow::Result<String> {
    let cert = X509::from_pem(cert_pem)?;
    cert.subject_name()
        .entries_by_nid(Nid::USERID)
        .next()
        .context("no UID")?
        .data()
        .to_string()
        .map(|s| s.to_string())
        .context("UID not text")
}
