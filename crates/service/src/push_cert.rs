//! The APNs push certificate: the MDM push certificate an admin gets from Apple's Push Certificates Portal,
//! whose subject UID is the push topic every enrolled Mac's `com.apple.mdm` payload names.
//!
//! Guarantees: certificate and private key are sealed together in one secret (owner [`PUSH_OWNER`], field
//! [`PUSH_FIELD`]), so a reader never sees a new key with an old certificate; an upload is refused (and
//! nothing changes) unless the key matches the certificate, the certificate is in date and its UID is an MDM
//! topic (`com.apple.mgmt.…`); the key never reaches events, errors or `Debug`.

use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use store::{NewEvent, Outcome, SealedSecret};
use vault::{SealContext, Secret};

use crate::{EventKind, MdmService, ServiceError};

/// Owner and field of the sealed push identity (certificate PEM followed by key PEM).
pub const PUSH_OWNER: &str = "escrowd";
pub const PUSH_FIELD: &str = "apns_identity";
/// Every MDM push topic starts with this.
pub const MDM_TOPIC_PREFIX: &str = "com.apple.mgmt.";
/// Uploads and status views warn when the certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

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
    pub not_after: store::Millis,
}

impl PushCertificateInfo {
    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self, now: store::Millis) -> i64 {
        (self.not_after - now).div_euclid(86_400_000)
    }

    /// A warning to show, if the certificate expires soon or has expired.
    pub fn expiry_warning(&self, now: store::Millis) -> Option<String> {
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

/// The push certificate with its key, for the APNs client. The key is a [`Secret`]; `Debug` shows only the info.
pub struct PushIdentity {
    pub info: PushCertificateInfo,
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret<Vec<u8>>,
}

impl std::fmt::Debug for PushIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushIdentity")
            .field("info", &self.info)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Largest PKCS#12 (.p12) upload accepted; a push identity export is a few KiB.
pub const MAX_PKCS12_BYTES: usize = 64 * 1024;

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
) -> Result<(Vec<u8>, Secret<Vec<u8>>), ServiceError> {
    let invalid = |m: &str| ServiceError::Invalid(m.to_string());
    if der.is_empty() || der.len() > MAX_PKCS12_BYTES {
        return Err(ServiceError::Invalid(format!(
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

/// Check a certificate (PEM) and private key (PEM) as a push identity at `now`; describe the certificate.
pub fn check_push_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    now: store::Millis,
) -> Result<PushCertificateInfo, ServiceError> {
    let invalid = |m: &str| ServiceError::Invalid(m.to_string());
    let cert = X509::from_pem(cert_pem)
        .map_err(|_| invalid("the push certificate is not a PEM certificate"))?;
    let key: PKey<Private> = pki::ca::unencrypted_private_key_from_pem(key_pem).map_err(|_| {
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
        return Err(ServiceError::Invalid(format!(
            "the certificate's topic {topic:?} is not an MDM push topic ({MDM_TOPIC_PREFIX}…); \
get an MDM push certificate from https://identity.apple.com"
        )));
    }
    let der = cert
        .to_der()
        .map_err(|_| invalid("the push certificate cannot be re-encoded"))?;
    let described = pki::identity::cert_info(&cert, &der)
        .map_err(|e| ServiceError::Invalid(format!("the push certificate: {e}")))?;
    let info = PushCertificateInfo {
        topic,
        subject: described.subject,
        serial_hex: described.serial_hex,
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

impl MdmService {
    /// Replace the push certificate after checking it (see [`check_push_identity`]); records
    /// `push_certificate.uploaded` by `actor`. Nothing changes on error.
    pub async fn put_push_certificate(
        &self,
        cert_pem: &[u8],
        key_pem: &Secret<Vec<u8>>,
        actor: &str,
    ) -> Result<PushCertificateInfo, ServiceError> {
        let now = self.now();
        let info = check_push_identity(cert_pem, key_pem.expose(), now)?;
        let previous = self.push_certificate().await.ok().flatten();
        let mut bundle = Vec::with_capacity(cert_pem.len() + key_pem.expose().len() + 1);
        bundle.extend_from_slice(cert_pem);
        bundle.push(b'\n');
        bundle.extend_from_slice(key_pem.expose());
        let bundle = Secret::new(bundle);
        let sealed = self.vault.seal(
            SealContext {
                owner: PUSH_OWNER,
                field: PUSH_FIELD,
            },
            bundle.expose(),
        )?;
        self.store
            .put_sealed_secret(&SealedSecret {
                owner: PUSH_OWNER.into(),
                field: PUSH_FIELD.into(),
                key_id: sealed.key_id,
                blob: sealed.blob,
                updated_at: now,
            })
            .await?;
        let mut detail = format!(
            "by {actor}: topic {}, serial {}, expires {} (in {} days)",
            info.topic,
            info.serial_hex,
            info.not_after,
            info.days_left(now)
        );
        if let Some(prev) = previous.filter(|p| p.topic != info.topic) {
            detail.push_str(&format!(
                "; the topic changed from {}: Macs enrolled with the old topic cannot be woken until they re-enroll",
                prev.topic
            ));
        }
        self.store
            .record_event(&NewEvent {
                subject: "server".into(),
                enrollment_id: None,
                kind: EventKind::PushCertificateUploaded,
                outcome: Outcome::Success,
                detail,
                at: now,
            })
            .await?;
        Ok(info)
    }

    /// [`MdmService::put_push_certificate`] from a PKCS#12 file (see [`identity_from_pkcs12`]).
    pub async fn put_push_certificate_pkcs12(
        &self,
        der: &[u8],
        password: &Secret<String>,
        actor: &str,
    ) -> Result<PushCertificateInfo, ServiceError> {
        let (cert_pem, key_pem) = identity_from_pkcs12(der, password)?;
        self.put_push_certificate(&cert_pem, &key_pem, actor).await
    }

    /// The push certificate with its key, if one was uploaded.
    pub async fn push_identity(&self) -> Result<Option<PushIdentity>, ServiceError> {
        let Some(sealed) = self.store.sealed_secret(PUSH_OWNER, PUSH_FIELD).await? else {
            return Ok(None);
        };
        let bundle = self.vault.open(
            SealContext {
                owner: PUSH_OWNER,
                field: PUSH_FIELD,
            },
            &sealed.blob,
        )?;
        let internal =
            |m: &str| ServiceError::Internal(format!("the stored push certificate: {m}"));
        let cert =
            X509::from_pem(bundle.expose()).map_err(|_| internal("unreadable certificate"))?;
        let key = pki::ca::unencrypted_private_key_from_pem(bundle.expose())
            .map_err(|_| internal("unreadable key"))?;
        let cert_pem = cert
            .to_pem()
            .map_err(|_| internal("unreadable certificate"))?;
        let key_pem = Secret::new(
            key.private_key_to_pem_pkcs8()
                .map_err(|_| internal("unreadable key"))?,
        );
        // Described as of the epoch so an expired stored certificate is still shown (with its warning).
        let info = check_push_identity(&cert_pem, key_pem.expose(), 0)?;
        Ok(Some(PushIdentity {
            info,
            cert_pem,
            key_pem,
        }))
    }

    /// What the uploaded push certificate says (topic, expiry), if there is one.
    pub async fn push_certificate(&self) -> Result<Option<PushCertificateInfo>, ServiceError> {
        Ok(self.push_identity().await?.map(|p| p.info))
    }

    /// The APNs topic enrollment profiles must name, if a push certificate was uploaded.
    pub async fn push_topic(&self) -> Result<Option<String>, ServiceError> {
        Ok(self.push_certificate().await?.map(|p| p.topic))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::x509::X509Name;

    use super::*;
    use crate::ErrorKind;

    /// A self-signed certificate whose subject UID is `uid`, valid from `from_days` to `to_days` (relative).
    fn push_cert(uid: Option<&str>, from_days: i64, to_days: i64) -> (Vec<u8>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        if let Some(uid) = uid {
            name.append_entry_by_nid(Nid::USERID, uid).unwrap();
        }
        name.append_entry_by_nid(Nid::COMMONNAME, "APSP:test")
            .unwrap();
        let name = name.build();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now + from_days * 86_400).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + to_days * 86_400).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (
            b.build().to_pem().unwrap(),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
    }

    async fn service() -> (tempfile::TempDir, MdmService) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = store::connect(&url).await.unwrap();
        let vault = Arc::new(vault::Vault::from_keyring(vault::Keyring::ephemeral()));
        (dir, MdmService::new(store, vault))
    }

    const TOPIC: &str = "com.apple.mgmt.External.2b1e4b8a-5f6c-4a8e-9d3b-7c1f0e2d3a4b";

    #[tokio::test]
    async fn upload_seals_the_identity_and_reads_the_topic_from_the_uid() {
        let (_dir, svc) = service().await;
        assert_eq!(svc.push_topic().await.unwrap(), None);
        let (cert, key) = push_cert(Some(TOPIC), -1, 365);
        let info = svc
            .put_push_certificate(&cert, &Secret::new(key.clone()), "test")
            .await
            .unwrap();
        assert_eq!(info.topic, TOPIC);
        assert!(info.expiry_warning(svc.now()).is_none());
        assert_eq!(svc.push_topic().await.unwrap().as_deref(), Some(TOPIC));
        let identity = svc.push_identity().await.unwrap().unwrap();
        assert_eq!(identity.info, info);
        let reread = PKey::private_key_from_pem(identity.key_pem.expose()).unwrap();
        assert!(reread.public_eq(&PKey::private_key_from_pem(&key).unwrap()));
        // The key is sealed, not stored in the clear, and never shown by Debug.
        let sealed = svc
            .store
            .sealed_secret(PUSH_OWNER, PUSH_FIELD)
            .await
            .unwrap()
            .unwrap();
        let marker = &key[40..80];
        assert!(!sealed.blob.windows(marker.len()).any(|w| w == marker));
        assert!(!format!("{identity:?}").contains("PRIVATE"));
        let events = svc
            .store
            .events(&store::EventFilter::default())
            .await
            .unwrap();
        assert!(events.iter().any(|e| e.kind == "push_certificate.uploaded"
            && e.detail.contains(TOPIC)
            && !e.detail.contains("PRIVATE")));
    }

    #[tokio::test]
    async fn bad_uploads_are_refused_and_change_nothing() {
        let (_dir, svc) = service().await;
        let (good_cert, good_key) = push_cert(Some(TOPIC), -1, 365);
        svc.put_push_certificate(&good_cert, &Secret::new(good_key.clone()), "test")
            .await
            .unwrap();
        let (other_cert, _) = push_cert(Some(TOPIC), -1, 365);
        let (no_uid, no_uid_key) = push_cert(None, -1, 365);
        let (not_mdm, not_mdm_key) = push_cert(Some("com.example.app"), -1, 365);
        let (expired, expired_key) = push_cert(Some(TOPIC), -400, -1);
        let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            (
                "garbage certificate",
                b"not a pem".to_vec(),
                good_key.clone(),
            ),
            (
                "garbage key",
                good_cert.clone(),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
            ),
            ("mismatched key", other_cert, good_key.clone()),
            (
                // Refused, never a passphrase prompt on the server's terminal.
                "encrypted key",
                good_cert.clone(),
                PKey::private_key_from_pem(&good_key)
                    .unwrap()
                    .private_key_to_pem_pkcs8_passphrase(
                        openssl::symm::Cipher::aes_256_cbc(),
                        b"passphrase",
                    )
                    .unwrap(),
            ),
            ("no uid", no_uid, no_uid_key),
            ("not an mdm topic", not_mdm, not_mdm_key),
            ("expired", expired, expired_key),
            (
                "truncated certificate",
                good_cert[..good_cert.len() / 2].to_vec(),
                good_key.clone(),
            ),
        ];
        for (what, cert, key) in cases {
            let err = svc
                .put_push_certificate(&cert, &Secret::new(key), "test")
                .await
                .expect_err(what);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{what}: {err}");
            assert!(!err.to_string().contains("PRIVATE"), "{what}: {err}");
        }
        let kept = svc.push_identity().await.unwrap().unwrap();
        assert_eq!(
            kept.cert_pem,
            X509::from_pem(&good_cert).unwrap().to_pem().unwrap()
        );
    }

    #[tokio::test]
    async fn pkcs12_uploads_are_read_and_bad_ones_refused() {
        let (_dir, svc) = service().await;
        let (cert, key) = push_cert(Some(TOPIC), -1, 365);
        let x509 = X509::from_pem(&cert).unwrap();
        let pkey = PKey::private_key_from_pem(&key).unwrap();
        let p12 = openssl::pkcs12::Pkcs12::builder()
            .name("push")
            .pkey(&pkey)
            .cert(&x509)
            .build2("hunter2")
            .unwrap()
            .to_der()
            .unwrap();
        let wrong = svc
            .put_push_certificate_pkcs12(&p12, &Secret::new("nope".into()), "test")
            .await
            .unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::Invalid);
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
        for (what, der, pw) in [
            ("garbage", b"not a p12".to_vec(), "hunter2"),
            ("empty", Vec::new(), "hunter2"),
            ("oversized", vec![0x30; MAX_PKCS12_BYTES + 1], "hunter2"),
            ("truncated", p12[..p12.len() / 2].to_vec(), "hunter2"),
            ("nul in password", p12.clone(), "hun\0ter2"),
        ] {
            let err = svc
                .put_push_certificate_pkcs12(&der, &Secret::new(pw.into()), "test")
                .await
                .expect_err(what);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{what}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{what}: {err}");
        }
        assert_eq!(svc.push_topic().await.unwrap(), None);
        let info = svc
            .put_push_certificate_pkcs12(&p12, &Secret::new("hunter2".into()), "test")
            .await
            .unwrap();
        assert_eq!(info.topic, TOPIC);
        let stored = svc.push_identity().await.unwrap().unwrap();
        assert!(
            PKey::private_key_from_pem(stored.key_pem.expose())
                .unwrap()
                .public_eq(&pkey)
        );
    }

    #[test]
    fn expiry_warnings() {
        let info = PushCertificateInfo {
            topic: TOPIC.into(),
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
}
