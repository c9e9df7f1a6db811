//! Device identity for escrowd: who is talking to us.
//!
//! Guarantees: an `Mdm-Signature` is accepted only if it is a CMS SignedData with exactly one signer whose
//! signature verifies over the exact request body bytes, and whose certificate chains to a configured device CA
//! (`identity`). Certificates forwarded by a trusted proxy are parsed with size caps (`forwarded`). The built-in
//! development CA never prints its key (`ca`). `sign` is the client half (how a Mac signs), for tests and the
//! simulator. `push_cert` reads and checks the APNs push certificate (X.509, PKCS#12). Hostile input yields an [`IdentityError`], never a panic.

pub mod ca;
mod chain;
mod cms;
mod cms_fast;
pub mod error;
pub mod forwarded;
pub mod identity;
pub mod profile_sign;
pub mod push_cert;
pub mod scep;
pub mod sign;

#[cfg(test)]
mod test_support;

pub use error::IdentityError;
pub use identity::{CertDetails, CertInfo, DeviceIdentityVerifier};
