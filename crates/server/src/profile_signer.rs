//! The profile-signing certificate: generated once, key and certificate sealed by `vault` in the store (like
//! the device CA), so every server sharing a database signs with one identity and `escrowd keys rotate`
//! re-wraps it. `profile-signing.pem` (public) is written to the data directory for admins who want to check
//! a profile's signature (`openssl cms -verify -inform DER -in x.mobileconfig -CAfile profile-signing.pem`).
//!
//! Decision: generated, not uploaded. A self-signed signer shows as "unverified" in System Settings until the
//! admin trusts it; uploading a publicly trusted signing certificate is future work.

use std::fs;

use anyhow::Context;
use pki::profile_sign::ProfileSigner;
use store::Store;
use vault::Vault;

use crate::datadir::DataDir;
use crate::device_ca::{open_sealed_pair, seal};

pub const SIGNER_KEY_FIELD: &str = "profile_signing_key";
pub const SIGNER_CERT_FIELD: &str = "profile_signing_cert";
pub const SIGNER_CERT_FILE: &str = "profile-signing.pem";

/// Load the sealed profile signer, or generate and seal one on first start.
pub async fn load_or_create(
    dir: &DataDir,
    store: &dyn Store,
    vault: &Vault,
) -> anyhow::Result<ProfileSigner> {
    let signer = match open_sealed_pair(store, vault, SIGNER_KEY_FIELD, SIGNER_CERT_FIELD).await? {
        Some((key, cert)) => ProfileSigner::from_pem(cert.expose(), key.expose())
            .context("loading the sealed profile-signing certificate")?,
        None => {
            let signer = ProfileSigner::generate("escrowd profile signing")?;
            seal(store, vault, SIGNER_KEY_FIELD, signer.key_pem()?.expose()).await?;
            seal(store, vault, SIGNER_CERT_FIELD, &signer.cert_pem()?).await?;
            tracing::info!("generated a profile-signing certificate (key sealed in the database)");
            signer
        }
    };
    let path = dir.profile_signing_cert();
    if !path.exists() {
        fs::write(&path, signer.cert_pem()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(signer)
}
