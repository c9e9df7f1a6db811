//! Apple MDM wire types: check-in messages, command reports, commands and typed command results.
//!
//! Guarantees: pure (no I/O, crypto or clock); every device-facing parser runs [`guard::check_xml_plist`]
//! before handing bytes to `plist`, so hostile bodies (binary plists, deep nesting, oversized input) are
//! refused with a [`ProtocolError`] instead of overflowing the stack; tokens travel as `vault::Secret` and
//! never appear in `Debug` output or error messages.

pub mod accounts;
pub mod action_kind;
pub mod agent_profile;
pub mod checkin;
pub mod command;
mod decode;
pub mod error;
pub mod guard;
pub mod profile;
pub mod results;
pub mod wildcards;

pub use checkin::{CheckinMessage, Identity};
pub use error::ProtocolError;
