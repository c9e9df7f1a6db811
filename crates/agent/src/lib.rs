//! agent: the escrowd agent that runs on each Mac (`escrow-agent`).
//!
//! It does what MDM cannot: reads Secure Token, FileVault and volume-owner facts from Apple's tools, performs
//! Secure Token actions with a token holder's credentials, and walks a user through re-escrowing the
//! Bootstrap Token. Guarantees: passwords are `vault::Secret`s and reach tools only on standard input or a
//! pseudo-terminal, never in argv; every outcome is confirmed by a fresh status read, never by an exit code
//! alone; every parser refuses what it does not recognise with a typed error instead of guessing.
//! Built and tested on Linux against fake tools; written for macOS.

#![deny(unsafe_code)]

pub mod actions;
pub mod backoff;
pub mod client;
pub mod escrow;
pub mod http;
pub mod inventory;
pub mod launchd;
pub mod mac;
pub mod parse;
pub mod prompt;
mod pty;
pub mod state;
pub mod tools;
pub mod troubleshoot;
pub mod wildcards;
