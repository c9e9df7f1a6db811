//! vault: secrets at rest and in memory.
//!
//! `Secret<T>` keeps secrets out of logs and Debug output. Sealing (AEAD envelope encryption bound to an
//! owner and a field) lives in `seal`; key files and rotation in `keyring`. This crate depends on no other
//! escrowd crate.

pub mod agent_crypto;
pub mod error;
pub mod keyring;
pub mod prompt;
pub mod seal;
pub mod secret;

pub use error::VaultError;
pub use keyring::Keyring;
pub use seal::{SealContext, Sealed, Vault};
pub use secret::Secret;
