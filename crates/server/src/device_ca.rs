//! The device CA's private key lives sealed by `vault` in the store, never in a plain file.
//!
//! Guarantees: on start the CA is loaded from the store (key and certificate sealed under owner
//! [`CA_OWNER`], so `escrowd keys rotate` re-wraps them and every server sharing a database uses one CA); a
//! plain `device-ca.key` left by an older version is read once, sealed, and deleted only after the sealed copy
//! is written; a fresh data directory gets a generated CA, sealed the same way. `device-ca.pem` (public) is
//! (re)written for admins who distribute it.

use std::fs;

use anyhow::Context;
use pki::ca::CertificateAuthority;
use store::{SealedSecret, Store};
use vault::{SealContext, Secret, Vault};

use crate::datadir::DataDir;

/// Owner of escrowd's own sealed secrets in the generic table.
pub const CA_OWNER: &str = "escrowd";
pub const CA_KEY_FIELD: &str = "device_ca_key";
pub const CA_CERT_FIELD: &str = "device_ca_cert";

/// Load the device CA from the store; migrate a plain key file or generate a CA on first start.
pub async fn load_or_create(
    dir: &DataDir,
    store: &dyn Store,
    vault: &Vault,
) -> anyhow::Result<CertificateAuthority> {
    let key_file = dir.device_ca_key();
    let cert_file = dir.device_ca_cert();
    if let Some(ca) = load_sealed(store, vault).await? {
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
    let (ca, migrated) = if key_file.exists() && cert_file.exists() {
        (dir.device_ca()?, true)
    } else {
        let ca = CertificateAuthority::generate("escrowd development device CA")?;
        tracing::info!("generated a development device CA (key sealed in the database)");
        (ca, false)
    };
    seal(store, vault, CA_KEY_FIELD, ca.key_pem()?.expose()).await?;
    seal(store, vault, CA_CERT_FIELD, &ca.cert_pem()?).await?;
    if migrated {
        fs::remove_file(&key_file)
            .with_context(|| format!("deleting {} after sealing it", key_file.display()))?;
        tracing::info!(path = %key_file.display(), "sealed the device CA key into the database and deleted the plain file");
    }
    write_cert_if_missing(dir, &ca)?;
    Ok(ca)
}

async fn load_sealed(
    store: &dyn Store,
    vault: &Vault,
) -> anyhow::Result<Option<CertificateAuthority>> {
    let Some((key, cert)) = open_sealed_pair(store, vault, CA_KEY_FIELD, CA_CERT_FIELD).await?
    else {
        return Ok(None);
    };
    Ok(Some(
        CertificateAuthority::from_pem(cert.expose(), key.expose())
            .context("loading the sealed device CA")?,
    ))
}

/// Open a key and certificate sealed under [`CA_OWNER`]; None unless both are stored.
pub(crate) async fn open_sealed_pair(
    store: &dyn Store,
    vault: &Vault,
    key_field: &str,
    cert_field: &str,
) -> anyhow::Result<Option<(Secret<Vec<u8>>, Secret<Vec<u8>>)>> {
    let (Some(key), Some(cert)) = (
        store.sealed_secret(CA_OWNER, key_field).await?,
        store.sealed_secret(CA_OWNER, cert_field).await?,
    ) else {
        return Ok(None);
    };
    let open = |s: &SealedSecret| {
        vault
            .open(
                SealContext {
                    owner: &s.owner,
                    field: &s.field,
                },
                &s.blob,
            )
            .with_context(|| {
                format!(
                    "opening the sealed {} (is this the right key file?)",
                    s.field
                )
            })
    };
    Ok(Some((open(&key)?, open(&cert)?)))
}

/// Seal `plaintext` under ([`CA_OWNER`], `field`), replacing what was there.
pub(crate) async fn seal(
    store: &dyn Store,
    vault: &Vault,
    field: &str,
    plaintext: &[u8],
) -> anyhow::Result<()> {
    let sealed = vault.seal(
        SealContext {
            owner: CA_OWNER,
            field,
        },
        plaintext,
    )?;
    store
        .put_sealed_secret(&SealedSecret {
            owner: CA_OWNER.into(),
            field: field.into(),
            key_id: sealed.key_id,
            blob: sealed.blob,
            updated_at: service::Clock::now_millis(&service::SystemClock),
        })
        .await?;
    Ok(())
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
    let vault = Vault::open_or_create(&dir.vault_key())?;
    let url = database
        .map(str::to_string)
        .unwrap_or_else(|| dir.database_url());
    let store = store::connect(&url).await?;
    let ca = load_sealed(store.as_ref(), &vault).await?;
    store.close().await;
    ca.ok_or_else(|| {
        anyhow::anyhow!("the database has no device CA yet (start `escrowd serve` once first)")
    })
}
