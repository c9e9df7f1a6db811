//! Key file I/O: the only code that touches the key file on disk.
//!
//! Guarantees: a key file that group or others may access, that is not a regular file, or that is larger than
//! `MAX_KEY_FILE_LEN` is refused before it is parsed; writes never leave a half-written key file (0600 temp file,
//! fsync, rename, fsync of the directory); writers serialize on an exclusive lock on `<key file>.lock`.

use super::MAX_KEY_FILE_LEN;
use crate::error::VaultError;
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Open, check and read the key file: regular file, owner-only permissions, size limit.
pub(super) fn read_private(path: &Path) -> Result<(Zeroizing<Vec<u8>>, Metadata), VaultError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => VaultError::key_file(path, "does not exist"),
        _ => VaultError::key_file(path, format!("cannot be opened: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| VaultError::key_file(path, format!("cannot be checked: {e}")))?;
    if !meta.is_file() {
        return Err(VaultError::key_file(path, "is not a regular file"));
    }
    check_permissions(path, &meta)?;
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(VaultError::key_file(
            path,
            format!(
                "is {} bytes; a key file is at most {MAX_KEY_FILE_LEN} bytes",
                meta.len()
            ),
        ));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| VaultError::key_file(path, format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(VaultError::key_file(
            path,
            "grew past the size limit while being read",
        ));
    }
    Ok((bytes, meta))
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &Metadata) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::key_file(
            path,
            format!(
                "is accessible by group or others (mode {mode:04o}); run `chmod 600 {}` so only its owner can read it",
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &Metadata) -> Result<(), VaultError> {
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent_dir(path: &Path) -> Result<&Path, VaultError> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(VaultError::key_file(path, "is not a file path")),
    }
}

pub(super) fn create_parent_dir(path: &Path) -> Result<(), VaultError> {
    let dir = parent_dir(path)?;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        VaultError::key_file(
            path,
            format!("cannot create directory {}: {e}", dir.display()),
        )
    })
}

fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Exclusive lock serializing writers of the key file; released when the returned file is dropped.
pub(super) fn lock_key_file(path: &Path) -> Result<File, VaultError> {
    let lock_path = with_suffix(path, ".lock");
    let file = private_file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            VaultError::key_file(
                path,
                format!("cannot open lock file {}: {e}", lock_path.display()),
            )
        })?;
    file.lock().map_err(|e| {
        VaultError::key_file(path, format!("cannot lock {}: {e}", lock_path.display()))
    })?;
    Ok(file)
}

/// Replace `path` with `contents`: 0600 temp file in the same directory, fsync, rename, fsync the directory.
pub(super) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), VaultError> {
    let dir = parent_dir(path)?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce)
        .map_err(|e| VaultError::Crypto(format!("random source failed: {e}")))?;
    let tmp = with_suffix(
        path,
        &format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(nonce)
        ),
    );
    let write = || -> io::Result<()> {
        let mut file = private_file_options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        VaultError::key_file(path, format!("cannot be written: {e}"))
    })
}
