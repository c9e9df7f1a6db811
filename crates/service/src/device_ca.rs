//! escrowd's own signing identities: the device CA (issues Mac identities) and the profile signer (signs
//! enrollment profiles). Their keys and certificates live sealed in the store, never in plain files, so every
//! server sharing a database uses one CA and one signer and `escrowd keys rotate` re-wraps them.
//!
//! Guarantees: a CA or signer is stored only as its sealed key and sealed certificate
//! (`SecretRef::server(DeviceCaKey | DeviceCaCert | ProfileSignerKey | ProfileSignerCert)`); it is loaded only
//! when both open under the key file; a first start generates one and seals it before it is used. Files (the
//! public certificates, an old plain CA key to migrate) are the server's business.

use pki::ca::CertificateAuthority;
use pki::profile_sign::ProfileSigner;
use vault::Secret;

use crate::ServiceError;
use crate::secrets::{SecretField, SecretRef, Secrets};

const CA_KEY: SecretRef = SecretRef::server(SecretField::DeviceCaKey);
const CA_CERT: SecretRef = SecretRef::server(SecretField::DeviceCaCert);
const SIGNER_KEY: SecretRef = SecretRef::server(SecretField::ProfileSignerKey);
const SIGNER_CERT: SecretRef = SecretRef::server(SecretField::ProfileSignerCert);

/// The device CA sealed in the store; None until one was sealed.
pub async fn load_device_ca(
    secrets: &Secrets,
) -> Result<Option<CertificateAuthority>, ServiceError> {
    let Some((key, cert)) = open_pair(secrets, &CA_KEY, &CA_CERT).await? else {
        return Ok(None);
    };
    CertificateAuthority::from_pem(cert.expose(), key.expose())
        .map(Some)
        .map_err(|e| ServiceError::Internal(format!("loading the sealed device CA: {e}")))
}

/// Seal `migrated` (a CA an older version kept in plain files) or, given None, a freshly generated
/// development CA, and return it. Replaces a sealed CA, so call it only after [`load_device_ca`] found none.
pub async fn create_device_ca(
    secrets: &Secrets,
    migrated: Option<CertificateAuthority>,
) -> Result<CertificateAuthority, ServiceError> {
    let ca = match migrated {
        Some(ca) => ca,
        None => {
            let ca = CertificateAuthority::generate("escrowd development device CA")
                .map_err(internal("generating the device CA"))?;
            tracing::info!("generated a development device CA (key sealed in the database)");
            ca
        }
    };
    let key = ca.key_pem().map_err(internal("encoding the device CA"))?;
    let cert = ca.cert_pem().map_err(internal("encoding the device CA"))?;
    secrets.put(&CA_KEY, key.expose()).await?;
    secrets.put(&CA_CERT, &cert).await?;
    Ok(ca)
}

/// The sealed profile signer, or a new one generated and sealed on first start.
pub async fn load_or_create_profile_signer(
    secrets: &Secrets,
) -> Result<ProfileSigner, ServiceError> {
    if let Some((key, cert)) = open_pair(secrets, &SIGNER_KEY, &SIGNER_CERT).await? {
        return ProfileSigner::from_pem(cert.expose(), key.expose()).map_err(|e| {
            ServiceError::Internal(format!(
                "loading the sealed profile-signing certificate: {e}"
            ))
        });
    }
    let signer = ProfileSigner::generate("escrowd profile signing")
        .map_err(internal("generating the profile signer"))?;
    let key = signer
        .key_pem()
        .map_err(internal("encoding the profile signer"))?;
    let cert = signer
        .cert_pem()
        .map_err(internal("encoding the profile signer"))?;
    secrets.put(&SIGNER_KEY, key.expose()).await?;
    secrets.put(&SIGNER_CERT, &cert).await?;
    tracing::info!("generated a profile-signing certificate (key sealed in the database)");
    Ok(signer)
}

/// Open a sealed key and certificate; None unless both are stored.
async fn open_pair(
    secrets: &Secrets,
    key: &SecretRef,
    cert: &SecretRef,
) -> Result<Option<(Secret<Vec<u8>>, Secret<Vec<u8>>)>, ServiceError> {
    let (Some(sealed_key), Some(sealed_cert)) = (secrets.get(key).await?, secrets.get(cert).await?)
    else {
        return Ok(None);
    };
    let open = |r: &SecretRef, blob: &[u8]| {
        secrets.open_blob(r, blob).map_err(|e| {
            ServiceError::Internal(format!(
                "opening the sealed {} (is this the right key file?): {e}",
                r.field.as_str()
            ))
        })
    };
    Ok(Some((
        open(key, &sealed_key.blob)?,
        open(cert, &sealed_cert.blob)?,
    )))
}

fn internal(what: &'static str) -> impl Fn(pki::IdentityError) -> ServiceError {
    move |e| ServiceError::Internal(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn secrets() -> (tempfile::TempDir, Secrets) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = store::connect(&url).await.unwrap();
        let vault = Arc::new(vault::Vault::from_keyring(vault::Keyring::ephemeral()));
        (
            dir,
            Secrets::new(store, vault, Arc::new(crate::SystemClock)),
        )
    }

    #[tokio::test]
    async fn a_created_ca_comes_back_sealed_and_a_signer_is_made_once() {
        let (_dir, secrets) = secrets().await;
        assert!(load_device_ca(&secrets).await.unwrap().is_none());
        let ca = create_device_ca(&secrets, None).await.unwrap();
        let back = load_device_ca(&secrets).await.unwrap().unwrap();
        assert_eq!(back.cert_pem().unwrap(), ca.cert_pem().unwrap());
        let key = secrets.get(&CA_KEY).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&key.blob).contains("PRIVATE KEY"));

        let signer = load_or_create_profile_signer(&secrets).await.unwrap();
        let again = load_or_create_profile_signer(&secrets).await.unwrap();
        assert_eq!(signer.cert_pem().unwrap(), again.cert_pem().unwrap());
    }

    #[tokio::test]
    async fn a_ca_sealed_under_another_key_file_is_refused_with_a_hint() {
        let (_dir, secrets) = secrets().await;
        create_device_ca(&secrets, None).await.unwrap();
        let other = Secrets::new(
            secrets.store().clone(),
            Arc::new(vault::Vault::from_keyring(vault::Keyring::ephemeral())),
            Arc::new(crate::SystemClock),
        );
        let err = load_device_ca(&other).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("opening the sealed device_ca_key (is this the right key file?)"),
            "{err}"
        );
    }
}
