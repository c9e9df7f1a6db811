//! The device CA's files. Its lifecycle (sealed in the store, generated on first start) is
//! `service::device_ca`; this module handles what is on disk.
//!
//! Guarantees: a plain `device-ca.key` left by an older version is read once, sealed, and deleted only after the
//! sealed copy is written (and, found beside an already sealed CA, deleted only if it is that CA's key);
//! `device-ca.pem` (public) is (re)written for admins who distribute it.

use std::fs;

use anyhow::Context;
use pki::ca::CertificateAuthority;
use service::secrets::Secrets;

use crate::datadir::DataDir;

/// Load the device CA from the store; migrate a plain key file or generate a CA on first start.
pub async fn load_or_create(
    dir: &DataDir,
    secrets: &Secrets,
) -> anyhow::Result<CertificateAuthority> {
    let key_file = dir.device_ca_key();
    let cert_file = dir.device_ca_cert();
    if let Some(ca) = service::device_ca::load_device_ca(secrets).await? {
        if key_file.exists() {
            // A crash between sealing and deleting leaves the file behind; delete it only if it is this key.
            let file_key = fs::read(&key_file)?;
            if CertificateAuthority::from_pem(&ca.cert_pem()?, &file_key).is_ok() {
                fs::remove_file(&key_file)?;
            } else {
                tracing::warn!(path = %key_file.display(), "ignoring a device CA key file that does not match the sealed CA");
            }
        }
        write_cert_if_missing(dir, &ca)?;
        return Ok(ca);
    }
    let migrated = if key_file.exists() && cert_file.exists() {
        Some(dir.device_ca()?)
    } else {
        None
    };
    let was_migrated = migrated.is_some();
    let ca = service::device_ca::create_device_ca(secrets, migrated).await?;
    if was_migrated {
        fs::remove_file(&key_file)
            .with_context(|| format!("deleting {} after sealing it", key_file.display()))?;
        tracing::info!(path = %key_file.display(), "sealed the device CA key into the database and deleted the plain file");
    }
    write_cert_if_missing(dir, &ca)?;
    Ok(ca)
}

fn write_cert_if_missing(dir: &DataDir, ca: &CertificateAuthority) -> anyhow::Result<()> {
    let path = dir.device_ca_cert();
    if !path.exists() {
        fs::write(&path, ca.cert_pem()?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Load the device CA of an existing data directory from another process (the simulator, tests, admin tools).
/// Never creates anything: it fails with a hint when the server has not started there yet.
pub async fn load_existing(
    data_dir: &std::path::Path,
    database: Option<&str>,
) -> anyhow::Result<CertificateAuthority> {
    let dir = DataDir::new(data_dir);
    if !dir.vault_key().exists() {
        anyhow::bail!(
            "no key file at {} (start `escrowd serve --data-dir {}` once first)",
            dir.vault_key().display(),
            data_dir.display()
        );
    }
    let vault = std::sync::Arc::new(vault::Vault::open_or_create(&dir.vault_key())?);
    let url = database
        .map(str::to_string)
        .unwrap_or_else(|| dir.database_url());
    let store = store::connect(&url).await?;
    let secrets = Secrets::new(
        store.clone(),
        vault,
        std::sync::Arc::new(service::SystemClock),
    );
    let ca = service::device_ca::load_device_ca(&secrets).await;
    store.close().await;
    ca?.ok_or_else(|| {
        anyhow::anyhow!("the database has no device CA yet (start `escrowd serve` once first)")
    })
}
