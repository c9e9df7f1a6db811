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

/// The SQLite database's file name in the data directory.
pub const DATABASE_FILE: &str = "escrowd.db";

/// Files only escrowd may read: made 0600 at every start. Not `vault.key`: it is always written 0600, and
/// one that others could read may have leaked, so the vault refuses it with advice (`chmod 600`, then
/// rotate) instead of escrowd quietly hiding the exposure.
const PRIVATE_FILES: &[&str] = &[
    "escrowd.db",
    "escrowd.db-wal",
    "escrowd.db-shm",
    "escrowd.db-journal",
    "vault.key.lock",
    "device-ca.key",
    "tls.key",
];

/// Every file escrowd itself creates in its data directory (the key file's temporary copies included).
fn is_own_file(name: &str) -> bool {
    PRIVATE_FILES.contains(&name)
        || matches!(
            name,
            "vault.key" | "device-ca.pem" | "tls.pem" | crate::profile_signer::SIGNER_CERT_FILE
        )
        || name.starts_with("vault.key.tmp-")
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// Create the directory (mode 0700) if missing, and lock down an existing one: a directory that holds
    /// nothing but escrowd's own files is made 0700; one that holds anything else is never chmod-ed, and if
    /// other users can get into it, escrowd refuses to start and says how to fix it. Then escrowd's private
    /// files are made 0600 ([`DataDir::secure_files`]).
    pub fn ensure(&self) -> anyhow::Result<()> {
        if !self.root.exists() {
            fs::create_dir_all(&self.root)
                .with_context(|| format!("creating data directory {}", self.root.display()))?;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))?;
            return Ok(());
        }
        let meta = fs::metadata(&self.root)
            .with_context(|| format!("reading data directory {}", self.root.display()))?;
        if !meta.is_dir() {
            anyhow::bail!(
                "data directory {} is not a directory; choose another with --data-dir",
                self.root.display()
            );
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match self.foreign_entry()? {
                None => {
                    fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
                        .with_context(|| {
                            format!(
                                "making data directory {} private (chmod 700)",
                                self.root.display()
                            )
                        })?;
                    tracing::info!(path = %self.root.display(), old_mode = %format!("{mode:o}"), "made the data directory private (0700)");
                }
                Some(name) => anyhow::bail!(
                    "data directory {dir} is open to other users (mode {mode:o}) and holds {name:?}, which escrowd \
                     did not create, so escrowd leaves its permissions alone and will not start: make it private \
                     with `chmod 700 {dir}`, or give escrowd a directory of its own with --data-dir",
                    dir = self.root.display(),
                ),
            }
        }
        self.secure_files()
    }

    /// The first entry of the directory that is not one of escrowd's own files, if any.
    fn foreign_entry(&self) -> anyhow::Result<Option<String>> {
        let entries = fs::read_dir(&self.root)
            .with_context(|| format!("listing data directory {}", self.root.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type()?.is_file();
            if !(is_file && is_own_file(&name)) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Make escrowd's private files (database with its WAL and SHM, key file, CA and TLS keys) mode 0600
    /// wherever they exist. Symbolic links are left alone. Safe to call again (after the database opened).
    pub fn secure_files(&self) -> anyhow::Result<()> {
        for name in PRIVATE_FILES {
            let path = self.root.join(name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private (chmod 600)", path.display()))?;
                tracing::info!(path = %path.display(), "made a private file 0600");
            }
        }
        Ok(())
    }

    /// Create the SQLite database file empty with mode 0600 if it is missing, so SQLite (and its WAL and SHM
    /// files, which take the database's mode) never create it readable by others.
    pub fn precreate_database(&self) -> anyhow::Result<()> {
        let path = self.root.join(DATABASE_FILE);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    pub fn database_url(&self) -> String {
        format!("sqlite:{}", self.root.join(DATABASE_FILE).display())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_data_directory_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        dir.ensure().unwrap();
        assert_eq!(mode(&dir.root), 0o700);
        dir.precreate_database().unwrap();
        assert_eq!(mode(&dir.root.join(DATABASE_FILE)), 0o600);
    }

    #[test]
    fn an_open_directory_of_only_escrowd_files_is_made_private_with_its_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        fs::create_dir(&dir.root).unwrap();
        for name in [
            "escrowd.db",
            "escrowd.db-wal",
            "escrowd.db-shm",
            "vault.key",
            "tls.key",
            "tls.pem",
        ] {
            fs::write(dir.root.join(name), b"x").unwrap();
            chmod(&dir.root.join(name), 0o644);
        }
        chmod(&dir.root, 0o755);
        dir.ensure().unwrap();
        assert_eq!(mode(&dir.root), 0o700);
        for name in ["escrowd.db", "escrowd.db-wal", "escrowd.db-shm", "tls.key"] {
            assert_eq!(mode(&dir.root.join(name)), 0o600, "{name}");
        }
        // The public certificate is not a secret and keeps its mode; an exposed key file is left for the
        // vault to refuse (it may have leaked: the admin must see that).
        assert_eq!(mode(&dir.root.join("tls.pem")), 0o644);
        assert_eq!(mode(&dir.root.join("vault.key")), 0o644);
    }

    #[test]
    fn an_open_directory_holding_other_files_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("shared"));
        fs::create_dir(&dir.root).unwrap();
        fs::write(dir.root.join("notes.txt"), b"someone else's").unwrap();
        chmod(&dir.root.join("notes.txt"), 0o644);
        fs::write(dir.root.join("vault.key"), b"x").unwrap();
        chmod(&dir.root.join("vault.key"), 0o644);
        for open in [0o755, 0o750, 0o701] {
            chmod(&dir.root, open);
            let err = format!("{:#}", dir.ensure().unwrap_err());
            assert!(
                err.contains(&format!("chmod 700 {}", dir.root.display())),
                "{err}"
            );
            assert!(err.contains("notes.txt"), "{err}");
            assert_eq!(mode(&dir.root), open, "never chmod-ed");
        }
        assert_eq!(mode(&dir.root.join("notes.txt")), 0o644);
        assert_eq!(
            mode(&dir.root.join("vault.key")),
            0o644,
            "refused before touching anything"
        );
        // A subdirectory is not one of escrowd's files either.
        fs::remove_file(dir.root.join("notes.txt")).unwrap();
        fs::create_dir(dir.root.join("backups")).unwrap();
        chmod(&dir.root, 0o755);
        assert!(format!("{:#}", dir.ensure().unwrap_err()).contains("backups"));
    }

    #[test]
    fn a_private_directory_holding_other_files_is_used_and_only_escrowds_files_change() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("mine"));
        fs::create_dir(&dir.root).unwrap();
        fs::write(dir.root.join("notes.txt"), b"mine").unwrap();
        chmod(&dir.root.join("notes.txt"), 0o644);
        fs::write(dir.root.join("escrowd.db"), b"").unwrap();
        chmod(&dir.root.join("escrowd.db"), 0o644);
        chmod(&dir.root, 0o700);
        dir.ensure().unwrap();
        assert_eq!(mode(&dir.root), 0o700);
        assert_eq!(mode(&dir.root.join("escrowd.db")), 0o600);
        assert_eq!(mode(&dir.root.join("notes.txt")), 0o644);
    }

    #[test]
    fn a_data_directory_that_is_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        fs::write(&path, b"x").unwrap();
        let err = format!("{:#}", DataDir::new(&path).ensure().unwrap_err());
        assert!(err.contains("not a directory"), "{err}");
    }
}
