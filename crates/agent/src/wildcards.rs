//! Enrollment-data wildcards, shared with the server: see `protocol::wildcards`.
pub use protocol::wildcards::*;
