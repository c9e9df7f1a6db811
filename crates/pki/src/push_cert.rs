//! The APNs push certificate as X.509 and PKCS#12: reading a Keychain Access `.p12` export, checking a
//! certificate and key as a push identity, describing it, and the one bundle (certificate PEM then key PEM)
//! it is sealed as.
//!
//! Guarantees: a push identity is accepted only if the key is an unencrypted PEM private key that matches the
//! certificate, the certificate is in date and its subject UID is an MDM topic (`com.apple.mgmt.…`); every
//! refusal is a [`PushCertError`] whose message says what to do and never quotes the key or the password.

use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use vault::Secret;

/// Every MDM push topic starts with this.
pub const MDM_TOPIC_PREFIX: &str = "com.apple.mgmt.";
/// Uploads and status views warn when the certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Largest PKCS#12 (.p12) upload accepted; a push identity export is a few KiB.
pub const MAX_PKCS12_BYTES: usize = 64 * 1024;

/// Why a push identity was refused; the message is for the admin and holds nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PushCertError(pub String);

fn invalid(m: &str) -> PushCertError {
    PushCertError(m.to_string())
}

/// What an admin needs to know about the push certificate; nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCertificateInfo {
    /// The APNs topic (the certificate subject's UID).
    pub topic: String,
    pub subject: String,
    pub serial_hex: String,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub fingerprint: String,
    /// Expiry, milliseconds since the Unix epoch.
    pub not_after: i64,
}

impl PushCertificateInfo {
    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400_000)
    }

    /// A warning to show, if the certificate expires soon or has expired.
    pub fn expiry_warning(&self, now: i64) -> Option<String> {
        let days = self.days_left(now);
        if self.not_after <= now {
            Some(
                "the push certificate has expired: Macs can no longer be woken; renew it at \
https://identity.apple.com with the same Apple ID and upload the renewed certificate"
                    .to_string(),
            )
        } else if days < EXPIRY_WARNING_DAYS {
            Some(format!(
                "the push certificate expires in {days} day(s): renew it at https://identity.apple.com with \
the same Apple ID (a new certificate changes the topic and every Mac would have to re-enroll)"
            ))
        } else {
            None
        }
    }
}

/// Load OpenSSL's legacy provider once (beside the default one), so `.p12` files exported by older Keychain
/// Access versions (RC2/3DES) can be read. Returns whether it is available.
fn legacy_pkcs12_support() -> bool {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| {
        match openssl::provider::Provider::try_load(None, "legacy", true) {
            Ok(provider) => {
                // Stays loaded for the life of the process.
                std::mem::forget(provider);
                true
            }
            Err(_) => false,
        }
    })
}

/// Read a push identity from a PKCS#12 (.p12) file as Keychain Access exports it: (certificate PEM, PKCS#8
/// key PEM). Refuses (without echoing anything secret) oversized or unreadable files, a wrong password and
/// files without both a certificate and a key. Check the result with [`check_push_identity`].
pub fn identity_from_pkcs12(
    der: &[u8],
    password: &Secret<String>,
) -> Result<(Vec<u8>, Secret<Vec<u8>>), PushCertError> {
    if der.is_empty() || der.len() > MAX_PKCS12_BYTES {
        return Err(PushCertError(format!(
            "a PKCS#12 push identity must be 1 to {MAX_PKCS12_BYTES} bytes"
        )));
    }
    if password.expose().contains('\0') {
        return Err(invalid(
            "the PKCS#12 password must not contain a NUL character",
        ));
    }
    let p12 = openssl::pkcs12::Pkcs12::from_der(der)
        .map_err(|_| invalid("the upload is not a PKCS#12 (.p12) file"))?;
    let parsed = match p12.parse2(password.expose()) {
        Ok(p) => p,
        Err(_) if legacy_pkcs12_support() => p12.parse2(password.expose()).map_err(|_| {
            invalid("cannot open the PKCS#12 file: wrong password, or an unsupported encryption")
        })?,
        Err(_) => {
            return Err(invalid(
                "cannot open the PKCS#12 file: wrong password, or a legacy encryption this OpenSSL cannot \
read (re-export it, or upload PEM files with --cert/--key)",
            ));
        }
    };
    let (Some(cert), Some(key)) = (parsed.cert, parsed.pkey) else {
        return Err(invalid(
            "the PKCS#12 file must hold the push certificate and its private key",
        ));
    };
    let cert_pem = cert
        .to_pem()
        .map_err(|_| invalid("the PKCS#12 certificate cannot be re-encoded"))?;
    let key_pem = Secret::new(
        key.private_key_to_pem_pkcs8()
            .map_err(|_| invalid("the PKCS#12 private key cannot be re-encoded"))?,
    );
    Ok((cert_pem, key_pem))
}

/// Check a certificate (PEM) and private key (PEM) as a push identity at `now` (Unix milliseconds); describe
/// the certificate.
pub fn check_push_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    now: i64,
) -> Result<PushCertificateInfo, PushCertError> {
    let cert = X509::from_pem(cert_pem)
        .map_err(|_| invalid("the push certificate is not a PEM certificate"))?;
    let key: PKey<Private> =
        crate::ca::unencrypted_private_key_from_pem(key_pem).map_err(|_| {
            invalid("the push certificate's private key is not an unencrypted PEM private key")
        })?;
    let public = cert
        .public_key()
        .map_err(|_| invalid("the push certificate has no readable public key"))?;
    if !public.public_eq(&key) {
        return Err(invalid(
            "the private key does not belong to the push certificate (upload the key you made the CSR with)",
        ));
    }
    let topic = cert
        .subject_name()
        .entries_by_nid(Nid::USERID)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .ok_or_else(|| {
            invalid("the certificate's subject has no UID, so it is not an APNs push certificate")
        })?;
    if !topic.starts_with(MDM_TOPIC_PREFIX) || topic.len() > 255 {
        return Err(PushCertError(format!(
            "the certificate's topic {topic:?} is not an MDM push topic ({MDM_TOPIC_PREFIX}…); \
get an MDM push certificate from https://identity.apple.com"
        )));
    }
    let der = cert
        .to_der()
        .map_err(|_| invalid("the push certificate cannot be re-encoded"))?;
    let unreadable = |e| PushCertError(format!("the push certificate: {e}"));
    let described = crate::identity::cert_info(&cert, &der).map_err(unreadable)?;
    let details = crate::identity::cert_details(&cert).map_err(unreadable)?;
    let info = PushCertificateInfo {
        topic,
        subject: details.subject,
        serial_hex: details.serial_hex,
        fingerprint: described.fingerprint,
        not_after: described.not_after_unix.saturating_mul(1000),
    };
    if info.not_after <= now {
        return Err(invalid(
            "the push certificate has expired; renew it at https://identity.apple.com and upload the new one",
        ));
    }
    Ok(info)
}

/// The one secret a push identity is sealed as: certificate PEM, a newline, key PEM.
pub fn bundle(cert_pem: &[u8], key_pem: &Secret<Vec<u8>>) -> Secret<Vec<u8>> {
    let mut bundle = Vec::with_capacity(cert_pem.len() + key_pem.expose().len() + 1);
    bundle.extend_from_slice(cert_pem);
    bundle.push(b'\n');
    bundle.extend_from_slice(key_pem.expose());
    Secret::new(bundle)
}

/// Split a [`bundle`] back into (certificate PEM, PKCS#8 key PEM); the error names the part that is unreadable.
pub fn unbundle(bundle: &[u8]) -> Result<(Vec<u8>, Secret<Vec<u8>>), PushCertError> {
    let cert = X509::from_pem(bundle).map_err(|_| invalid("unreadable certificate"))?;
    let key = crate::ca::unencrypted_private_key_from_pem(bundle)
        .map_err(|_| invalid("unreadable key"))?;
    let cert_pem = cert
        .to_pem()
        .map_err(|_| invalid("unreadable certificate"))?;
    let key_pem = Secret::new(
        key.private_key_to_pem_pkcs8()
            .map_err(|_| invalid("unreadable key"))?,
    );
    Ok((cert_pem, key_pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warnings() {
        let info = PushCertificateInfo {
            topic: "com.apple.mgmt.External.x".into(),
            subject: String::new(),
            serial_hex: "07".into(),
            fingerprint: String::new(),
            not_after: 100 * 86_400_000,
        };
        assert!(info.expiry_warning(0).is_none());
        assert!(
            info.expiry_warning(80 * 86_400_000)
                .unwrap()
                .contains("expires in 20 day")
        );
        assert!(
            info.expiry_warning(100 * 86_400_000)
                .unwrap()
                .contains("has expired")
        );
    }

    #[test]
    fn a_bundle_splits_back_into_certificate_and_key() {
        let ca = crate::ca::CertificateAuthority::generate("bundle test").unwrap();
        let cert = ca.cert_pem().unwrap();
        let key = ca.key_pem().unwrap();
        let (cert_back, key_back) = unbundle(bundle(&cert, &key).expose()).unwrap();
        assert_eq!(
            X509::from_pem(&cert_back).unwrap().to_der().unwrap(),
            X509::from_pem(&cert).unwrap().to_der().unwrap()
        );
        assert!(
            PKey::private_key_from_pem(key_back.expose())
                .unwrap()
                .public_eq(&PKey::private_key_from_pem(key.expose()).unwrap())
        );
        assert_eq!(
            unbundle(b"garbage").unwrap_err().0,
            "unreadable certificate"
        );
    }
}
