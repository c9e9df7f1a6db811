//! The APNs push certificate: the MDM push certificate an admin gets from Apple's Push Certificates Portal,
//! whose subject UID is the push topic every enrolled Mac's `com.apple.mdm` payload names. Reading and checking
//! it as X.509/PKCS#12 is `pki::push_cert`; this module is the workflow around it.
//!
//! Guarantees: certificate and private key are sealed together in one secret
//! (`SecretRef::server(SecretField::PushIdentity)`), so a reader never sees a new key with an old certificate;
//! an upload is refused (and nothing changes) unless the key matches the certificate, the certificate is in
//! date, its UID is an MDM topic (`com.apple.mgmt.…`) and the push provider can be built from it; the key
//! never reaches events, errors or `Debug`.

use std::sync::Arc;

use store::{NewEvent, Outcome};
use vault::Secret;

use crate::push::Pusher;
use crate::secrets::{SecretField, SecretRef};
use crate::{MdmService, Scoped, ServiceError};

pub use pki::push_cert::{
    EXPIRY_WARNING_DAYS, MAX_PKCS12_BYTES, MDM_TOPIC_PREFIX, PushCertError, PushCertificateInfo,
};

/// The sealed push identity (certificate PEM followed by key PEM).
const PUSH_IDENTITY: SecretRef = SecretRef::server(SecretField::PushIdentity);

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

/// A push certificate as an admin uploads it.
pub enum PushCertificateUpload {
    /// A certificate and its unencrypted private key, both PEM.
    Pem {
        cert_pem: Vec<u8>,
        key_pem: Secret<Vec<u8>>,
    },
    /// A PKCS#12 (.p12) file as Keychain Access exports it, and its password.
    Pkcs12 {
        der: Vec<u8>,
        password: Secret<String>,
    },
}

/// Why an upload was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum PushUploadError {
    /// The identity is invalid (see [`ServiceError::kind`]) or could not be stored.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The push provider cannot be built from the identity; the message says why.
    #[error("{0}")]
    Unusable(String),
}

impl From<PushCertError> for ServiceError {
    fn from(e: PushCertError) -> Self {
        ServiceError::Invalid(e.0)
    }
}

/// Read a push identity from a PKCS#12 (.p12) file (see [`pki::push_cert::identity_from_pkcs12`]).
pub fn identity_from_pkcs12(
    der: &[u8],
    password: &Secret<String>,
) -> Result<(Vec<u8>, Secret<Vec<u8>>), ServiceError> {
    Ok(pki::push_cert::identity_from_pkcs12(der, password)?)
}

/// Check a certificate and key as a push identity at `now` (see [`pki::push_cert::check_push_identity`]).
pub fn check_push_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    now: store::Millis,
) -> Result<PushCertificateInfo, ServiceError> {
    Ok(pki::push_cert::check_push_identity(cert_pem, key_pem, now)?)
}

impl MdmService {
    /// The upload workflow: read the identity, check it (key matches, in date, MDM topic), build the push
    /// provider from it with `connect` (so nothing unusable is stored), seal and store it with its audit event,
    /// then put the new provider in use at once. Nothing changes on error.
    pub async fn upload_push_certificate<E: std::fmt::Display>(
        &self,
        upload: PushCertificateUpload,
        actor: &str,
        connect: impl FnOnce(&[u8], &Secret<Vec<u8>>) -> Result<Arc<dyn Pusher>, E>,
    ) -> Result<PushCertificateInfo, PushUploadError> {
        self.scoped()
            .upload_push_certificate(upload, actor, connect)
            .await
    }

    /// Replace the push certificate after checking it (see [`check_push_identity`]); records
    /// `push_certificate.uploaded` by `actor`. Nothing changes on error.
    pub async fn put_push_certificate(
        &self,
        cert_pem: &[u8],
        key_pem: &Secret<Vec<u8>>,
        actor: &str,
    ) -> Result<PushCertificateInfo, ServiceError> {
        self.scoped()
            .put_push_certificate(cert_pem, key_pem, actor)
            .await
    }

    /// [`MdmService::put_push_certificate`] from a PKCS#12 file (see [`identity_from_pkcs12`]).
    pub async fn put_push_certificate_pkcs12(
        &self,
        der: &[u8],
        password: &Secret<String>,
        actor: &str,
    ) -> Result<PushCertificateInfo, ServiceError> {
        self.scoped()
            .put_push_certificate_pkcs12(der, password, actor)
            .await
    }

    /// The push certificate with its key, if one was uploaded.
    pub async fn push_identity(&self) -> Result<Option<PushIdentity>, ServiceError> {
        self.scoped().push_identity().await
    }

    /// What the uploaded push certificate says (topic, expiry), if there is one.
    pub async fn push_certificate(&self) -> Result<Option<PushCertificateInfo>, ServiceError> {
        self.scoped().push_certificate().await
    }

    /// The APNs topic enrollment profiles must name, if a push certificate was uploaded.
    pub async fn push_topic(&self) -> Result<Option<String>, ServiceError> {
        self.scoped().push_topic().await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait PushCertRoles: store::Secrets + store::Events + store::Cluster {}
impl<T: ?Sized + store::Secrets + store::Events + store::Cluster> PushCertRoles for T {}

impl<S: ?Sized + PushCertRoles> Scoped<'_, S> {
    /// The upload workflow: read the identity, check it (key matches, in date, MDM topic), build the push
    /// provider from it with `connect` (so nothing unusable is stored), seal and store it with its audit event,
    /// then put the new provider in use at once. Nothing changes on error.
    pub(crate) async fn upload_push_certificate<E: std::fmt::Display>(
        &self,
        upload: PushCertificateUpload,
        actor: &str,
        connect: impl FnOnce(&[u8], &Secret<Vec<u8>>) -> Result<Arc<dyn Pusher>, E>,
    ) -> Result<PushCertificateInfo, PushUploadError> {
        let (cert_pem, key_pem) = match upload {
            PushCertificateUpload::Pem { cert_pem, key_pem } => (cert_pem, key_pem),
            PushCertificateUpload::Pkcs12 { der, password } => {
                identity_from_pkcs12(&der, &password)?
            }
        };
        check_push_identity(&cert_pem, key_pem.expose(), self.now())?;
        let pusher = connect(&cert_pem, &key_pem).map_err(|e| {
            PushUploadError::Unusable(format!("the push certificate cannot be used for APNs: {e}"))
        })?;
        let info = self
            .put_push_certificate(&cert_pem, &key_pem, actor)
            .await?;
        self.set_pusher(Some(pusher));
        tracing::info!(topic = %info.topic, "new push certificate in use");
        Ok(info)
    }

    /// Replace the push certificate after checking it (see [`check_push_identity`]); records
    /// `push_certificate.uploaded` by `actor`. Nothing changes on error.
    pub(crate) async fn put_push_certificate(
        &self,
        cert_pem: &[u8],
        key_pem: &Secret<Vec<u8>>,
        actor: &str,
    ) -> Result<PushCertificateInfo, ServiceError> {
        let now = self.now();
        let info = check_push_identity(cert_pem, key_pem.expose(), now)?;
        let previous = self.push_certificate().await.ok().flatten();
        let bundle = pki::push_cert::bundle(cert_pem, key_pem);
        let sealed = self.secrets.seal(&PUSH_IDENTITY, bundle.expose(), now)?;
        self.store.put_sealed_secret(&sealed).await?;
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
                kind: store::EventKind::PushCertificateUploaded,
                outcome: Outcome::Success,
                detail,
                at: now,
            })
            .await?;
        // Every other instance on the database rebuilds its push provider from the store.
        self.signal_instances(store::Signal::PushCertificate).await;
        Ok(info)
    }

    /// [`MdmService::put_push_certificate`] from a PKCS#12 file (see [`identity_from_pkcs12`]).
    pub(crate) async fn put_push_certificate_pkcs12(
        &self,
        der: &[u8],
        password: &Secret<String>,
        actor: &str,
    ) -> Result<PushCertificateInfo, ServiceError> {
        let (cert_pem, key_pem) = identity_from_pkcs12(der, password)?;
        self.put_push_certificate(&cert_pem, &key_pem, actor).await
    }
}

impl<S: ?Sized> Scoped<'_, S> {
    /// The APNs topic enrollment profiles must name, if a push certificate was uploaded.
    pub(crate) async fn push_topic(&self) -> Result<Option<String>, ServiceError> {
        Ok(self.push_certificate().await?.map(|p| p.topic))
    }

    /// What the uploaded push certificate says (topic, expiry), if there is one.
    pub(crate) async fn push_certificate(
        &self,
    ) -> Result<Option<PushCertificateInfo>, ServiceError> {
        Ok(self.push_identity().await?.map(|p| p.info))
    }

    /// The push certificate with its key, if one was uploaded.
    pub(crate) async fn push_identity(&self) -> Result<Option<PushIdentity>, ServiceError> {
        let Some(bundle) = self.secrets.open(&PUSH_IDENTITY).await? else {
            return Ok(None);
        };
        let (cert_pem, key_pem) = pki::push_cert::unbundle(bundle.expose())
            .map_err(|e| ServiceError::Internal(format!("the stored push certificate: {e}")))?;
        // Described as of the epoch so an expired stored certificate is still shown (with its warning).
        let info = check_push_identity(&cert_pem, key_pem.expose(), 0)?;
        Ok(Some(PushIdentity {
            info,
            cert_pem,
            key_pem,
        }))
    }
}

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509Name};

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
        assert!(info.expiry_warning(svc.scoped().now()).is_none());
        assert_eq!(svc.push_topic().await.unwrap().as_deref(), Some(TOPIC));
        let identity = svc.push_identity().await.unwrap().unwrap();
        assert_eq!(identity.info, info);
        let reread = PKey::private_key_from_pem(identity.key_pem.expose()).unwrap();
        assert!(reread.public_eq(&PKey::private_key_from_pem(&key).unwrap()));
        // The key is sealed, not stored in the clear, and never shown by Debug.
        let sealed = svc
            .store
            .sealed_secret("escrowd", "apns_identity")
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

    struct NoPush;

    #[async_trait::async_trait]
    impl Pusher for NoPush {
        async fn push(&self, _targets: &[crate::push::PushTarget]) -> Vec<crate::push::PushResult> {
            Vec::new()
        }
    }

    #[tokio::test]
    async fn the_upload_workflow_stores_nothing_the_push_provider_cannot_use() {
        let (_dir, svc) = service().await;
        let (cert, key) = push_cert(Some(TOPIC), -1, 365);
        let upload = || PushCertificateUpload::Pem {
            cert_pem: cert.clone(),
            key_pem: Secret::new(key.clone()),
        };
        let refused = svc
            .upload_push_certificate(upload(), "test", |_, _| Err("rustls says no"))
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the push certificate cannot be used for APNs: rustls says no"
        );
        assert!(svc.push_identity().await.unwrap().is_none());
        assert!(svc.pusher().is_none());
        let invalid = svc
            .upload_push_certificate(
                PushCertificateUpload::Pkcs12 {
                    der: b"not a p12".to_vec(),
                    password: Secret::new(String::new()),
                },
                "test",
                |_, _| Ok::<_, String>(Arc::new(NoPush) as Arc<dyn Pusher>),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&invalid, PushUploadError::Service(e) if e.kind() == ErrorKind::Invalid),
            "{invalid}"
        );
        let info = svc
            .upload_push_certificate(upload(), "test", |_, _| {
                Ok::<_, String>(Arc::new(NoPush) as Arc<dyn Pusher>)
            })
            .await
            .unwrap();
        assert_eq!(info.topic, TOPIC);
        assert!(svc.pusher().is_some());
        assert_eq!(svc.push_topic().await.unwrap().as_deref(), Some(TOPIC));
    }
}
