//! vault: secrets at rest and in memory.
//!
//! `Secret<T>` keeps secrets out of logs and Debug output. Sealing (AEAD envelope encryption bound to an
//! owner and a field) lives in `seal`; key files and rotation in `keyring`.

pub mod secret;

pub use secret::Secret;
