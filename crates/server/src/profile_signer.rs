//! The profile-signing certificate's file. The signer itself is generated once and sealed in the store
//! (`service::device_ca::load_or_create_profile_signer`), so every server sharing a database signs with one
//! identity and `escrowd keys rotate` re-wraps it. `profile-signing.pem` (public) is written to the data
//! directory for admins who want to check a profile's signature
//! (`openssl cms -verify -inform DER -in x.mobileconfig -CAfile profile-signing.pem`).
//!
//! Decision: generated, not uploaded. A self-signed signer shows as "unverified" in System Settings until the
//! admin trusts it; uploading a publicly trusted signing certificate is future work.

use std::fs;

use anyhow::Context;
use pki::profile_sign::ProfileSigner;
use service::secrets::Secrets;

use crate::datadir::DataDir;

pub const SIGNER_CERT_FILE: &str = "profile-signing.pem";

/// Load the sealed profile signer, or generate and seal one on first start; write its public certificate.
pub async fn load_or_create(dir: &DataDir, secrets: &Secrets) -> anyhow::Result<ProfileSigner> {
    let signer = service::device_ca::load_or_create_profile_signer(secrets).await?;
    let path = dir.profile_signing_cert();
    if !path.exists() {
        fs::write(&path, signer.cert_pem()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(signer)
}
