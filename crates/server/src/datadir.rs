//! The data directory `escrowd serve` runs on by default: everything a first start needs, created once.
//!
//! Layout (all created on first start, secrets with mode 0600, the directory 0700):
//! `escrowd.db` (SQLite, unless --database is given), `vault.key` (key-encryption keys),
//! `device-ca.pem` (the development device CA's certificate; its key is sealed in the database, see
//! `device_ca.rs`; a `device-ca.key` from older versions is migrated there once), `tls.pem` / `tls.key`
//! (self-signed HTTPS).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use pki::ca::CertificateAuthority;

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// Create the directory (mode 0700) if missing.
    pub fn ensure(&self) -> anyhow::Result<()> {
        if !self.root.exists() {
            fs::create_dir_all(&self.root)
                .with_context(|| format!("creating data directory {}", self.root.display()))?;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        format!("sqlite:{}", self.root.join("escrowd.db").display())
    }

    pub fn vault_key(&self) -> PathBuf {
        self.root.join("vault.key")
    }

    /// The public profile-signing certificate, for admins who check a profile's signature.
    pub fn profile_signing_cert(&self) -> PathBuf {
        self.root.join(crate::profile_signer::SIGNER_CERT_FILE)
    }

    pub fn device_ca_cert(&self) -> PathBuf {
        self.root.join("device-ca.pem")
    }

    pub fn device_ca_key(&self) -> PathBuf {
        self.root.join("device-ca.key")
    }

    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("tls.pem")
    }

    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls.key")
    }

    /// Load (or generate) the device CA from plain files. Only for migrating older data directories and for
    /// tests: `escrowd serve` keeps the key sealed in the store (`device_ca::load_or_create`).
    pub fn device_ca(&self) -> anyhow::Result<CertificateAuthority> {
        let (cert, key) = (self.device_ca_cert(), self.device_ca_key());
        if cert.exists() && key.exists() {
            let ca = CertificateAuthority::from_pem(&read(&cert)?, &read(&key)?)
                .with_context(|| format!("loading device CA from {}", cert.display()))?;
            return Ok(ca);
        }
        let ca = CertificateAuthority::generate("escrowd development device CA")?;
        write_private(&key, ca.key_pem()?.expose())?;
        write_public(&cert, &ca.cert_pem()?)?;
        tracing::info!(path = %cert.display(), "generated a development device CA");
        Ok(ca)
    }

    /// Load the HTTPS certificate and key, generating a self-signed pair on first start.
    pub fn tls_material(&self) -> anyhow::Result<(Vec<u8>, vault::Secret<Vec<u8>>)> {
        let (cert, key) = (self.tls_cert(), self.tls_key());
        if cert.exists() && key.exists() {
            return Ok((read(&cert)?, vault::Secret::new(read(&key)?)));
        }
        let (cert_pem, key_pem) =
            pki::ca::self_signed_tls_certificate(&["localhost", "127.0.0.1", "::1"], 825)?;
        write_private(&key, key_pem.expose())?;
        write_public(&cert, &cert_pem)?;
        tracing::info!(path = %cert.display(), "generated a self-signed TLS certificate for localhost");
        Ok((cert_pem, key_pem))
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Write a secret file: created with mode 0600, never world-readable even for an instant.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

fn write_public(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
