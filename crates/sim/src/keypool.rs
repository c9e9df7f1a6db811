//! A small pool of device keys shared by many virtual Macs, cached on disk and reused across runs.
//!
//! Generating an RSA-2048 key costs tens of milliseconds; issuing a certificate for an existing key costs
//! one CA signature. A load run of thousands of Macs therefore shares `size` keys: every Mac still gets its
//! own UDID and its own certificate (distinct serial and subject), only the key pair repeats. The server
//! binds identities by certificate, so sharing keys changes nothing it checks.
//!
//! Guarantees: keys are stored one per file as unencrypted PKCS#8 PEM, created with mode 0600 inside a
//! directory created with mode 0700 (they are throwaway test keys, but still private keys); a file is
//! written to a temporary name and renamed, so a concurrent run or a crash never leaves a half-written key;
//! a file that does not hold a key of the expected kind is an error naming the file (delete it to
//! regenerate), never silently replaced. Key bytes never reach `Debug` or errors.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::pkey::{Id, PKey, Private};
use openssl::x509::X509;
use pki::ca::CertificateAuthority;

use crate::client::{ClientError, KeyKind};

/// How many keys a pool holds unless told otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// `size` keys of one kind, loaded from (or generated into) a directory.
pub struct KeyPool {
    keys: Vec<PKey<Private>>,
    kind: KeyKind,
    dir: PathBuf,
    generated: usize,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("kind", &self.kind)
            .field("size", &self.keys.len())
            .field("dir", &self.dir)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

/// `$XDG_CACHE_HOME/escrowd/keypool`, else `$HOME/.cache/escrowd/keypool`; `None` without either.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("escrowd").join("keypool"))
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rsa2048 => "rsa2048",
        KeyKind::EcP256 => "p256",
    }
}

fn generate(kind: KeyKind) -> Result<PKey<Private>, ClientError> {
    match kind {
        KeyKind::Rsa2048 => openssl::rsa::Rsa::generate(2048).and_then(PKey::from_rsa),
        KeyKind::EcP256 => {
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .and_then(|g| openssl::ec::EcKey::generate(&g))
                .and_then(PKey::from_ec_key)
        }
    }
    .map_err(|e| ClientError::Key(e.to_string()))
}

fn matches_kind(key: &PKey<Private>, kind: KeyKind) -> bool {
    match kind {
        KeyKind::Rsa2048 => key.id() == Id::RSA && key.bits() == 2048,
        KeyKind::EcP256 => key.id() == Id::EC && key.bits() == 256,
    }
}

fn load(path: &Path, kind: KeyKind) -> Result<PKey<Private>, ClientError> {
    let bad = |why: String| ClientError::Key(format!("key pool file {}: {why}", path.display()));
    let pem = fs::read(path).map_err(|e| bad(e.to_string()))?;
    let key = PKey::private_key_from_pem(&pem)
        .map_err(|_| bad("not a PEM private key (delete it to regenerate)".into()))?;
    if !matches_kind(&key, kind) {
        return Err(bad(format!(
            "not a {} key (delete it to regenerate)",
            kind_name(kind)
        )));
    }
    // Tighten a copied-in file rather than keep a private key readable by others.
    let mode = fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(key)
}

/// Write `key` to `path` atomically (temporary file, mode 0600 from creation, then rename).
fn store(path: &Path, key: &PKey<Private>) -> Result<(), ClientError> {
    let bad = |why: String| ClientError::Key(format!("key pool file {}: {why}", path.display()));
    let pem = key
        .private_key_to_pem_pkcs8()
        .map_err(|e| bad(e.to_string()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| bad(e.to_string()))?;
    f.write_all(&pem)
        .and_then(|()| f.sync_all())
        .map_err(|e| bad(e.to_string()))?;
    fs::rename(&tmp, path).map_err(|e| bad(e.to_string()))
}

impl KeyPool {
    /// Open the pool of `size` keys of `kind` in `dir`, generating (on all cores) and saving the keys that
    /// are missing. `size` 0 is an error.
    pub fn open(dir: &Path, size: usize, kind: KeyKind) -> Result<KeyPool, ClientError> {
        if size == 0 {
            return Err(ClientError::Key(
                "the key pool size must be at least 1".into(),
            ));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                ClientError::Key(format!(
                    "creating the key pool directory {}: {e}",
                    dir.display()
                ))
            })?;
        let paths: Vec<PathBuf> = (0..size)
            .map(|i| dir.join(format!("{}-{i:04}.pem", kind_name(kind))))
            .collect();
        let mut keys: Vec<Option<PKey<Private>>> = Vec::with_capacity(size);
        for p in &paths {
            keys.push(if p.exists() {
                Some(load(p, kind)?)
            } else {
                None
            });
        }
        let missing: Vec<usize> = (0..size).filter(|&i| keys[i].is_none()).collect();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let made: Vec<Result<(usize, PKey<Private>), ClientError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let mine: Vec<usize> =
                        missing.iter().copied().skip(w).step_by(workers).collect();
                    let paths = &paths;
                    s.spawn(move || {
                        mine.into_iter()
                            .map(|i| {
                                let key = generate(kind)?;
                                store(&paths[i], &key)?;
                                Ok((i, key))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(ClientError::Key("key generation thread failed".into()))]
                    })
                })
                .collect()
        });
        for m in made {
            let (i, key) = m?;
            keys[i] = Some(key);
        }
        Ok(KeyPool {
            keys: keys.into_iter().flatten().collect(),
            kind,
            dir: dir.to_path_buf(),
            generated: missing.len(),
        })
    }

    /// The key for the `i`-th Mac (keys are handed out round-robin).
    pub fn key(&self, i: usize) -> &PKey<Private> {
        &self.keys[i % self.keys.len()]
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many keys this `open` had to generate (0 when every key came from the cache).
    pub fn generated(&self) -> usize {
        self.generated
    }

    /// A device identity certificate for `udid` from `ca` on the `i`-th pool key: a fresh certificate (its
    /// own serial) on a shared key.
    pub fn issue_identity(
        &self,
        ca: &CertificateAuthority,
        udid: &str,
        i: usize,
    ) -> Result<(X509, PKey<Private>), ClientError> {
        let key = self.key(i).clone();
        let public = key
            .public_key_to_der()
            .and_then(|der| PKey::public_key_from_der(&der))
            .map_err(|e| ClientError::Key(e.to_string()))?;
        let cert = ca.issue_device_certificate(udid, &public, 365)?;
        Ok((cert, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_across_opens_with_distinct_certificates_and_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let pool_dir = dir.path().join("pool");
        let first = KeyPool::open(&pool_dir, 3, KeyKind::EcP256).unwrap();
        assert_eq!((first.len(), first.generated()), (3, 3));
        let second = KeyPool::open(&pool_dir, 3, KeyKind::EcP256).unwrap();
        assert_eq!(
            second.generated(),
            0,
            "the second run reuses the cached keys"
        );
        for i in 0..3 {
            assert_eq!(
                first.key(i).private_key_to_pkcs8().unwrap(),
                second.key(i).private_key_to_pkcs8().unwrap()
            );
        }
        // A bigger pool keeps the old keys and adds one.
        let bigger = KeyPool::open(&pool_dir, 4, KeyKind::EcP256).unwrap();
        assert_eq!(bigger.generated(), 1);
        let mode = fs::metadata(&pool_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for entry in fs::read_dir(&pool_dir).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{:?}", entry.path());
        }
        // Many Macs on a few keys: distinct certificates (serials) and UDIDs, keys reused round-robin.
        let ca = CertificateAuthority::generate("pool test CA").unwrap();
        let mut serials = std::collections::BTreeSet::new();
        let mut subjects = std::collections::BTreeSet::new();
        for i in 0..8 {
            let udid = format!("POOL-{i}");
            let (cert, key) = second.issue_identity(&ca, &udid, i).unwrap();
            assert!(cert.public_key().unwrap().public_eq(&key));
            assert!(key.public_eq(second.key(i % 3)));
            serials.insert(cert.serial_number().to_bn().unwrap().to_vec());
            subjects.insert(cert.subject_name().to_der().unwrap());
        }
        assert_eq!((serials.len(), subjects.len()), (8, 8));
    }

    #[test]
    fn refuses_a_file_of_the_wrong_kind_and_size_zero() {
        let dir = tempfile::tempdir().unwrap();
        KeyPool::open(dir.path(), 1, KeyKind::EcP256).unwrap();
        fs::rename(
            dir.path().join("p256-0000.pem"),
            dir.path().join("rsa2048-0000.pem"),
        )
        .unwrap();
        let err = KeyPool::open(dir.path(), 1, KeyKind::Rsa2048).unwrap_err();
        assert!(err.to_string().contains("rsa2048-0000.pem"), "{err}");
        assert!(KeyPool::open(dir.path(), 0, KeyKind::EcP256).is_err());
    }
}
