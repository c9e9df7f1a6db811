//! sim: virtual Macs for escrowd.
//!
//! * [`mac`]: macOS's Secure Token and Bootstrap Token rules as a pure state machine, each rule cited from
//!   `shared/docs/macos-tokens-and-admin-needs.md` §1.
//!
//! `sim` is a client of escrowd: it uses `protocol` and `pki` only, never the server's insides.

pub mod client;
pub mod fleet;
pub mod keypool;
pub mod mac;
pub mod reports;
pub mod tools;

pub use client::VirtualMac;
