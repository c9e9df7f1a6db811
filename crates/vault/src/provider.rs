//! Where the key-encryption keys (KEKs) live: the [`KeyProvider`] trait, and [`KeyFile`], its implementation
//! over the JSON key file (a PKCS#11 token would be another).
//!
//! Guarantees: a provider only ever wraps and unwraps 32-byte DEKs; KEK bytes never leave it (the key file
//! provider keeps them in a zeroizing [`Keyring`]). A [`KeyFile`] notices a rotation done by another process
//! (`escrowd keys rotate` while the server runs): asking for the active key re-reads the file if its stamp
//! changed (one stat per call), and unwrapping under a key id it lacks re-reads the file once and retries.

use crate::aead::{self, NONCE_LEN};
use crate::error::VaultError;
use crate::keyring::{KEY_LEN, Keyring};
use std::fmt;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use zeroize::Zeroizing;

/// A DEK encrypted under a KEK: the nonce and the ciphertext with its tag.
pub struct WrappedKey {
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: Vec<u8>,
}

/// Keys by id, and the one new seals use. Every method may fail (a key file that became unreadable, a token
/// that is gone); none returns or logs key bytes.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The key new seals wrap under.
    fn active_key_id(&self) -> Result<String, VaultError>;
    /// Every key id this provider can unwrap under.
    fn key_ids(&self) -> Result<Vec<String>, VaultError>;
    /// Encrypt `dek` under key `key_id`, authenticating `aad`.
    fn wrap(&self, key_id: &str, aad: &[u8], dek: &[u8; KEY_LEN])
    -> Result<WrappedKey, VaultError>;
    /// Decrypt a DEK wrapped under `key_id`: `UnknownKey` if the provider lacks the key, `OpenFailed` if the
    /// wrap does not authenticate for `aad`.
    fn unwrap(
        &self,
        key_id: &str,
        aad: &[u8],
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError>;
    /// Re-read the keys now (no-op where nothing can change).
    fn reload(&self) -> Result<(), VaultError>;
}

/// What identifies one version of the key file on disk: a rotation (rename) changes the inode, an edit the length
/// or mtime, a chmod the ctime, so each of them is noticed by the next `seal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    /// (device, inode, ctime seconds, ctime nanoseconds) on unix.
    unix: (u64, u64, i64, i64),
}

impl FileStamp {
    fn of(meta: &Metadata) -> FileStamp {
        #[cfg(unix)]
        let unix = {
            use std::os::unix::fs::MetadataExt as _;
            (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
        };
        #[cfg(not(unix))]
        let unix = (0, 0, 0, 0);
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            unix,
        }
    }
}

struct Loaded {
    keyring: Arc<Keyring>,
    stamp: Option<FileStamp>,
}

/// KEKs from the key file (or, without a path, from memory: tests and benches). Send + Sync.
pub struct KeyFile {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("keyring", &*self.current())
            .finish()
    }
}

impl KeyFile {
    /// The key file at `path`, created with one fresh key when it does not exist (see [`Keyring::load_or_create`]).
    pub fn open_or_create(path: &Path) -> Result<KeyFile, VaultError> {
        let (keyring, meta) = Keyring::load_or_create_with_metadata(path)?;
        Ok(KeyFile {
            path: Some(path.to_owned()),
            loaded: RwLock::new(Loaded {
                keyring: Arc::new(keyring),
                stamp: Some(FileStamp::of(&meta)),
            }),
        })
    }

    /// In-memory keys: no file, no reload.
    pub fn in_memory(keyring: Keyring) -> KeyFile {
        KeyFile {
            path: None,
            loaded: RwLock::new(Loaded {
                keyring: Arc::new(keyring),
                stamp: None,
            }),
        }
    }

    /// The keys as last loaded, without looking at the file.
    pub(crate) fn current(&self) -> Arc<Keyring> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&loaded.keyring)
    }

    /// The keyring, reloaded first if the key file changed (see `FileStamp`) since the last load.
    fn refreshed(&self) -> Result<Arc<Keyring>, VaultError> {
        let Some(path) = &self.path else {
            return Ok(self.current());
        };
        let meta = std::fs::metadata(path)
            .map_err(|e| VaultError::key_file(path, format!("cannot be checked: {e}")))?;
        let unchanged = {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            loaded.stamp == Some(FileStamp::of(&meta))
        };
        if !unchanged {
            self.reload()?;
        }
        Ok(self.current())
    }

    /// A keyring holding `key_id`, reloading the key file once if the current one does not.
    fn holding(&self, key_id: &str) -> Result<Arc<Keyring>, VaultError> {
        let ring = self.current();
        if ring.key(key_id).is_some() || self.path.is_none() {
            return Ok(ring);
        }
        self.reload()?;
        Ok(self.current())
    }
}

impl KeyProvider for KeyFile {
    fn active_key_id(&self) -> Result<String, VaultError> {
        Ok(self.refreshed()?.active_key_id().to_owned())
    }

    fn key_ids(&self) -> Result<Vec<String>, VaultError> {
        Ok(self.refreshed()?.key_ids())
    }

    fn wrap(
        &self,
        key_id: &str,
        aad: &[u8],
        dek: &[u8; KEY_LEN],
    ) -> Result<WrappedKey, VaultError> {
        let ring = self.holding(key_id)?;
        let kek = ring
            .key(key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let nonce = aead::random_nonce()?;
        let wrapped = aead::encrypt(kek, &nonce, aad, dek, "cannot wrap the data key")?;
        Ok(WrappedKey { nonce, wrapped })
    }

    fn unwrap(
        &self,
        key_id: &str,
        aad: &[u8],
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
        let ring = self.holding(key_id)?;
        let kek = ring
            .key(key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let raw = Zeroizing::new(aead::decrypt(kek, nonce, aad, wrapped)?);
        if raw.len() != KEY_LEN {
            return Err(VaultError::OpenFailed);
        }
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        dek.copy_from_slice(&raw);
        Ok(dek)
    }

    fn reload(&self) -> Result<(), VaultError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let (keyring, meta) = Keyring::load_with_metadata(path)?;
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tracing::info!(key_file = %path.display(), active = %keyring.active_key_id(), "key file reloaded");
        *loaded = Loaded {
            keyring: Arc::new(keyring),
            stamp: Some(FileStamp::of(&meta)),
        };
        Ok(())
    }
}
