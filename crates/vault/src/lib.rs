//! vault: keys and envelopes.
//!
//! `Secret<T>` keeps secrets out of logs and Debug output. Sealing (AEAD envelope encryption bound to an
//! owner and a field) lives in `seal`; the key-encryption keys behind the [`KeyProvider`] trait in `provider`,
//! with the key file (`keyring`, rotation) as its implementation. This crate depends on no other escrowd crate.

mod aead;
pub mod error;
pub mod keyring;
pub mod provider;
pub mod seal;
pub mod secret;

pub use error::VaultError;
pub use keyring::Keyring;
pub use provider::{KeyFile, KeyProvider, WrappedKey};
pub use seal::{SealContext, Sealed, Vault};
pub use secret::Secret;
