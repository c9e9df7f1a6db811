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

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::error::VaultError;
use crate::keyring::{KEY_LEN, Keyring, MAX_KEY_ID_LEN, is_valid_key_id, random_key};
use crate::provider::{KeyFile, KeyProvider, WrappedKey};
use crate::secret::Secret;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

const MAGIC: &[u8; 2] = b"EV";
const FORMAT_VERSION: u8 = 1;
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
        // Key ids are parsed from a blob or checked by `Vault::active` (at most MAX_KEY_ID_LEN bytes).
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

fn unwrap_dek(
    keys: &dyn KeyProvider,
    ctx: SealContext<'_>,
    blob: &Blob<'_>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    keys.unwrap(
        blob.key_id,
        &wrap_aad(ctx, blob.key_id),
        blob.wrap_nonce,
        blob.wrapped_dek,
    )
}

fn open_data(
    dek: &[u8; KEY_LEN],
    ctx: SealContext<'_>,
    blob: &Blob<'_>,
) -> Result<Secret<Vec<u8>>, VaultError> {
    aead::decrypt(dek, blob.data_nonce, &data_aad(ctx), blob.ciphertext).map(Secret::new)
}

/// Seals and opens secrets with the KEKs of a [`KeyProvider`]. Send + Sync; share it in an Arc. Built from a key
/// file it notices a rotation done by another process (see [`KeyFile`]).
pub struct Vault {
    keys: Arc<dyn KeyProvider>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("keys", &self.keys).finish()
    }
}

impl Vault {
    /// A vault over any key provider.
    pub fn new(keys: Arc<dyn KeyProvider>) -> Vault {
        Vault { keys }
    }

    /// A vault over the key file at `path` (created with one fresh key when it does not exist).
    pub fn open_or_create(path: &Path) -> Result<Vault, VaultError> {
        Ok(Vault::new(Arc::new(KeyFile::open_or_create(path)?)))
    }

    /// A vault over in-memory keys: no file, no reload.
    pub fn from_keyring(keyring: Keyring) -> Vault {
        Vault::new(Arc::new(KeyFile::in_memory(keyring)))
    }

    /// The key new seals use (re-read from the key file first if it changed).
    pub fn active_key_id(&self) -> Result<String, VaultError> {
        self.keys.active_key_id()
    }

    /// Every key id the vault can open (re-read from the key file first if it changed).
    pub fn key_ids(&self) -> Result<Vec<String>, VaultError> {
        self.keys.key_ids()
    }

    pub fn seal(&self, ctx: SealContext<'_>, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let key_id = self.active()?;
        let dek = random_key()?;
        let data_nonce = aead::random_nonce()?;
        let ciphertext = aead::encrypt(
            &dek,
            &data_nonce,
            &data_aad(ctx),
            plaintext,
            "cannot encrypt (plaintext too long?)",
        )?;
        let wrap = self.wrap(&key_id, ctx, &dek)?;
        let blob = Blob::encode(
            &key_id,
            &wrap.nonce,
            &wrap.wrapped,
            &data_nonce,
            &ciphertext,
        );
        Ok(Sealed { key_id, blob })
    }

    pub fn open(&self, ctx: SealContext<'_>, blob: &[u8]) -> Result<Secret<Vec<u8>>, VaultError> {
        let blob = Blob::parse(blob)?;
        let dek = unwrap_dek(&*self.keys, ctx, &blob)?;
        open_data(&dek, ctx, &blob)
    }

    /// Re-wrap the DEK under the active key. Ok(None) if the blob is already under the active key.
    /// Verifies the blob opens (for ctx) before re-wrapping, so a rotation never launders a corrupt value.
    pub fn rewrap(&self, ctx: SealContext<'_>, blob: &[u8]) -> Result<Option<Sealed>, VaultError> {
        let blob = Blob::parse(blob)?;
        let active_id = self.active()?;
        let dek = unwrap_dek(&*self.keys, ctx, &blob)?;
        drop(open_data(&dek, ctx, &blob)?);
        if blob.key_id == active_id {
            return Ok(None);
        }
        let wrap = self.wrap(&active_id, ctx, &dek)?;
        let blob = Blob::encode(
            &active_id,
            &wrap.nonce,
            &wrap.wrapped,
            blob.data_nonce,
            blob.ciphertext,
        );
        Ok(Some(Sealed {
            key_id: active_id,
            blob,
        }))
    }

    /// Key id a blob is wrapped under (parses the header only).
    pub fn key_id_of(blob: &[u8]) -> Result<String, VaultError> {
        Blob::parse(blob).map(|b| b.key_id.to_owned())
    }

    /// The provider's active key id, refused unless it fits a blob header.
    fn active(&self) -> Result<String, VaultError> {
        let key_id = self.keys.active_key_id()?;
        if !is_valid_key_id(&key_id) {
            return Err(VaultError::Crypto(format!(
                "the key provider named an invalid key id {key_id:?}"
            )));
        }
        Ok(key_id)
    }

    /// Wrap `dek` for `ctx` under `key_id`, refusing a wrap that would not fit the blob format.
    fn wrap(
        &self,
        key_id: &str,
        ctx: SealContext<'_>,
        dek: &[u8; KEY_LEN],
    ) -> Result<WrappedKey, VaultError> {
        let wrap = self.keys.wrap(key_id, &wrap_aad(ctx, key_id), dek)?;
        if wrap.wrapped.len() != WRAPPED_DEK_LEN {
            return Err(VaultError::Crypto(format!(
                "the key provider wrapped a data key into {} bytes, not {WRAPPED_DEK_LEN}",
                wrap.wrapped.len()
            )));
        }
        Ok(wrap)
    }

    /// Re-read the keys now (no-op for in-memory keys).
    pub fn reload(&self) -> Result<(), VaultError> {
        self.keys.reload()
    }
}

#[cfg(test)]
mod tests;
