//! AES-256-GCM, the one cipher of the vault: data under a DEK, DEKs under a KEK.
//!
//! Guarantees: every failure is a `VaultError` that names no key or plaintext; nonces come from the operating
//! system's random source.

use crate::error::VaultError;
use crate::keyring::KEY_LEN;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead as _, KeyInit as _, Nonce, Payload};

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

fn cipher(key: &[u8; KEY_LEN]) -> Result<Aes256Gcm, VaultError> {
    Aes256Gcm::new_from_slice(key)
        .map_err(|e| VaultError::Crypto(format!("cannot key AES-256-GCM: {e}")))
}

pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| VaultError::Crypto(format!("random source failed: {e}")))?;
    Ok(nonce)
}

fn nonce(bytes: &[u8]) -> Result<Nonce<Aes256Gcm>, VaultError> {
    Nonce::<Aes256Gcm>::try_from(bytes).map_err(|_| VaultError::Malformed)
}

/// Encrypt `msg` under `key`; `failure` says what could not be encrypted.
pub(crate) fn encrypt(
    key: &[u8; KEY_LEN],
    nonce_bytes: &[u8],
    aad: &[u8],
    msg: &[u8],
    failure: &str,
) -> Result<Vec<u8>, VaultError> {
    cipher(key)?
        .encrypt(&nonce(nonce_bytes)?, Payload { msg, aad })
        .map_err(|_| VaultError::Crypto(failure.to_owned()))
}

/// Decrypt `msg` under `key`; any authentication failure is `OpenFailed`.
pub(crate) fn decrypt(
    key: &[u8; KEY_LEN],
    nonce_bytes: &[u8],
    aad: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, VaultError> {
    cipher(key)?
        .decrypt(&nonce(nonce_bytes)?, Payload { msg, aad })
        .map_err(|_| VaultError::OpenFailed)
}
