//! Envelope sealing: each secret is encrypted under its own random DEK, and the DEK is wrapped under a KEK.
//!
//! Guarantees: a blob opens only for the owner and field it was sealed for, only under the key id its header
//! names, and only if not one bit of it changed; anything else is `OpenFailed`, `UnknownKey` or `Malformed`, never
//! a panic. Rotation re-wraps the DEK only, after checking that the whole blob opens. DEKs are zeroized after use.
//!
//! Blob format, version 1 (all lengths fixed except the key id and the ciphertext):
//!
//! ```text
//! "EV" | 0x01 | key id length n (1 byte, 1..=64) | key id (n bytes ASCII [A-Za-z0-9._-])
//!      | wrap nonce (12) | wrapped DEK (32 + 16 tag) | data nonce (12) | ciphertext + tag (>= 16)
//! ```
//!
//! Associated data is an unambiguous length-prefixed encoding (u64 big-endian length before each string):
//! - wrap (KEK over DEK): `"EV" 0x01 "W" | owner | field | key id`, so relabelling the key id or moving the blob
//!   to another owner or field makes the DEK unwrap fail, and with it the whole blob;
//! - data (DEK over plaintext): `"EV" 0x01 "D" | owner | field`. The key id is deliberately not in it: it is
//!   already authenticated by the wrap, and leaving it out is what lets rotation re-wrap the DEK without
//!   re-encrypting the data.

use crate::error::VaultError;
use crate::keyring::{KEY_LEN, Keyring, MAX_KEY_ID_LEN, is_valid_key_id, random_key};
use crate::secret::Secret;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead as _, KeyInit as _, Nonce, Payload};
use std::fmt;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use zeroize::Zeroizing;

const MAGIC: &[u8; 2] = b"EV";
const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_DEK_LEN: usize = KEY_LEN + TAG_LEN;

/// Where a secret lives: the AEAD associated data binds the ciphertext to it.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub owner: &'a str,
    pub field: &'a str,
}

/// A sealed value: the key id it is wrapped under and the self-describing blob (the blob also contains the key id).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// A blob split into its parts; every length already checked.
struct Blob<'a> {
    key_id: &'a str,
    wrap_nonce: &'a [u8],
    wrapped_dek: &'a [u8],
    data_nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Blob<'a> {
    fn parse(blob: &'a [u8]) -> Result<Blob<'a>, VaultError> {
        let mut rest = blob;
        let mut take = |n: usize| -> Result<&'a [u8], VaultError> {
            let (head, tail) = rest.split_at_checked(n).ok_or(VaultError::Malformed)?;
            rest = tail;
            Ok(head)
        };
        if take(MAGIC.len())? != MAGIC || take(1)? != [FORMAT_VERSION] {
            return Err(VaultError::Malformed);
        }
        let id_len = usize::from(take(1)?[0]);
        let key_id = std::str::from_utf8(take(id_len)?).map_err(|_| VaultError::Malformed)?;
        if !is_valid_key_id(key_id) {
            return Err(VaultError::Malformed);
        }
        let wrap_nonce = take(NONCE_LEN)?;
        let wrapped_dek = take(WRAPPED_DEK_LEN)?;
        let data_nonce = take(NONCE_LEN)?;
        let ciphertext = rest;
        if ciphertext.len() < TAG_LEN {
            return Err(VaultError::Malformed);
        }
        Ok(Blob {
            key_id,
            wrap_nonce,
            wrapped_dek,
            data_nonce,
            ciphertext,
        })
    }

    fn encode(
        key_id: &str,
        wrap_nonce: &[u8],
        wrapped_dek: &[u8],
        data_nonce: &[u8],
        ciphertext: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            4 + key_id.len() + 2 * NONCE_LEN + wrapped_dek.len() + ciphertext.len(),
        );
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        // Key ids come from a Keyring, which only holds valid ids (at most MAX_KEY_ID_LEN bytes).
        out.push(key_id.len().min(MAX_KEY_ID_LEN) as u8);
        out.extend_from_slice(key_id.as_bytes());
        out.extend_from_slice(wrap_nonce);
        out.extend_from_slice(wrapped_dek);
        out.extend_from_slice(data_nonce);
        out.extend_from_slice(ciphertext);
        out
    }
}

/// Associated data: `"EV" version purpose` then each part as u64 big-endian length + bytes.
fn associated_data(purpose: u8, parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + parts.iter().map(|p| 8 + p.len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(purpose);
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn wrap_aad(ctx: SealContext<'_>, key_id: &str) -> Vec<u8> {
    associated_data(b'W', &[ctx.owner, ctx.field, key_id])
}

fn data_aad(ctx: SealContext<'_>) -> Vec<u8> {
    associated_data(b'D', &[ctx.owner, ctx.field])
}

fn cipher(key: &[u8; KEY_LEN]) -> Result<Aes256Gcm, VaultError> {
    Aes256Gcm::new_from_slice(key)
        .map_err(|e| VaultError::Crypto(format!("cannot key AES-256-GCM: {e}")))
}

fn random_nonce() -> Result<[u8; NONCE_LEN], VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| VaultError::Crypto(format!("random source failed: {e}")))?;
    Ok(nonce)
}

fn nonce(bytes: &[u8]) -> Result<Nonce<Aes256Gcm>, VaultError> {
    Nonce::<Aes256Gcm>::try_from(bytes).map_err(|_| VaultError::Malformed)
}

/// Wrap `dek` under `kek` for `ctx`; returns the wrap nonce and the wrapped DEK.
fn wrap_dek(
    kek: &[u8; KEY_LEN],
    key_id: &str,
    ctx: SealContext<'_>,
    dek: &[u8; KEY_LEN],
) -> Result<([u8; NONCE_LEN], Vec<u8>), VaultError> {
    let wrap_nonce = random_nonce()?;
    let aad = wrap_aad(ctx, key_id);
    let wrapped = cipher(kek)?
        .encrypt(
            &nonce(&wrap_nonce)?,
            Payload {
                msg: dek,
                aad: &aad,
            },
        )
        .map_err(|_| VaultError::Crypto("cannot wrap the data key".into()))?;
    Ok((wrap_nonce, wrapped))
}

fn unwrap_dek(
    kek: &[u8; KEY_LEN],
    ctx: SealContext<'_>,
    blob: &Blob<'_>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let aad = wrap_aad(ctx, blob.key_id);
    let raw = Zeroizing::new(
        cipher(kek)?
            .decrypt(
                &nonce(blob.wrap_nonce)?,
                Payload {
                    msg: blob.wrapped_dek,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::OpenFailed)?,
    );
    let mut dek = Zeroizing::new([0u8; KEY_LEN]);
    if raw.len() != KEY_LEN {
        return Err(VaultError::OpenFailed);
    }
    dek.copy_from_slice(&raw);
    Ok(dek)
}

fn open_data(
    dek: &[u8; KEY_LEN],
    ctx: SealContext<'_>,
    blob: &Blob<'_>,
) -> Result<Secret<Vec<u8>>, VaultError> {
    let aad = data_aad(ctx);
    cipher(dek)?
        .decrypt(
            &nonce(blob.data_nonce)?,
            Payload {
                msg: blob.ciphertext,
                aad: &aad,
            },
        )
        .map(Secret::new)
        .map_err(|_| VaultError::OpenFailed)
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

/// Seals and opens secrets. Send + Sync; share it in an Arc. When built from a key file it notices a rotation done
/// by another process (`escrowd keys rotate` while the server runs): `open` of a blob under an unknown key id reloads
/// the file once and retries; `seal` reloads if the file's mtime/len changed since last load (one stat per call is fine).
pub struct Vault {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_file", &self.path)
            .field("keyring", &*self.current())
            .finish()
    }
}

impl Vault {
    pub fn open_or_create(path: &Path) -> Result<Vault, VaultError> {
        let (keyring, meta) = Keyring::load_or_create_with_metadata(path)?;
        Ok(Vault {
            path: Some(path.to_owned()),
            loaded: RwLock::new(Loaded {
                keyring: Arc::new(keyring),
                stamp: Some(FileStamp::of(&meta)),
            }),
        })
    }

    /// A vault over in-memory keys: no file, no reload.
    pub fn from_keyring(keyring: Keyring) -> Vault {
        Vault {
            path: None,
            loaded: RwLock::new(Loaded {
                keyring: Arc::new(keyring),
                stamp: None,
            }),
        }
    }

    /// The key new seals use (re-read from the key file first if it changed; a failed re-read keeps the old keys).
    pub fn active_key_id(&self) -> String {
        let ring = self.refreshed().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "key file changed but could not be reloaded");
            self.current()
        });
        ring.active_key_id().to_owned()
    }

    /// Every key id the vault can open (re-read from the key file first if it changed).
    pub fn key_ids(&self) -> Result<Vec<String>, VaultError> {
        Ok(self.refreshed()?.key_ids())
    }

    pub fn seal(&self, ctx: SealContext<'_>, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let ring = self.refreshed()?;
        let key_id = ring.active_key_id();
        let kek = ring
            .key(key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let dek = random_key()?;
        let data_nonce = random_nonce()?;
        let aad = data_aad(ctx);
        let ciphertext = cipher(&dek)?
            .encrypt(
                &nonce(&data_nonce)?,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Crypto("cannot encrypt (plaintext too long?)".into()))?;
        let (wrap_nonce, wrapped) = wrap_dek(kek, key_id, ctx, &dek)?;
        Ok(Sealed {
            key_id: key_id.to_owned(),
            blob: Blob::encode(key_id, &wrap_nonce, &wrapped, &data_nonce, &ciphertext),
        })
    }

    pub fn open(&self, ctx: SealContext<'_>, blob: &[u8]) -> Result<Secret<Vec<u8>>, VaultError> {
        let blob = Blob::parse(blob)?;
        let ring = self.holding(blob.key_id)?;
        let kek = ring
            .key(blob.key_id)
            .ok_or_else(|| VaultError::UnknownKey(blob.key_id.to_owned()))?;
        let dek = unwrap_dek(kek, ctx, &blob)?;
        open_data(&dek, ctx, &blob)
    }

    /// Re-wrap the DEK under the active key. Ok(None) if the blob is already under the active key.
    /// Verifies the blob opens (for ctx) before re-wrapping, so a rotation never launders a corrupt value.
    pub fn rewrap(&self, ctx: SealContext<'_>, blob: &[u8]) -> Result<Option<Sealed>, VaultError> {
        let blob = Blob::parse(blob)?;
        self.refreshed()?;
        let ring = self.holding(blob.key_id)?;
        let kek = ring
            .key(blob.key_id)
            .ok_or_else(|| VaultError::UnknownKey(blob.key_id.to_owned()))?;
        let dek = unwrap_dek(kek, ctx, &blob)?;
        drop(open_data(&dek, ctx, &blob)?);
        let active_id = ring.active_key_id();
        if blob.key_id == active_id {
            return Ok(None);
        }
        let active = ring
            .key(active_id)
            .ok_or_else(|| VaultError::UnknownKey(active_id.to_owned()))?;
        let (wrap_nonce, wrapped) = wrap_dek(active, active_id, ctx, &dek)?;
        Ok(Some(Sealed {
            key_id: active_id.to_owned(),
            blob: Blob::encode(
                active_id,
                &wrap_nonce,
                &wrapped,
                blob.data_nonce,
                blob.ciphertext,
            ),
        }))
    }

    /// Key id a blob is wrapped under (parses the header only).
    pub fn key_id_of(blob: &[u8]) -> Result<String, VaultError> {
        Blob::parse(blob).map(|b| b.key_id.to_owned())
    }

    /// Re-read the key file now (no-op for from_keyring).
    pub fn reload(&self) -> Result<(), VaultError> {
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

    fn current(&self) -> Arc<Keyring> {
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

#[cfg(test)]
mod tests;
