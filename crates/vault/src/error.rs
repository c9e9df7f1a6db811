//! Errors of the vault crate.
//!
//! Guarantees: no variant ever carries key bytes, DEKs or plaintext; messages name only paths, key ids and what
//! went wrong, so they are safe to log and to show an admin.

/// Everything that can go wrong while loading keys or sealing and opening secrets.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file is missing, unreadable, badly formed or too open (permissions).
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    /// The blob names a key id that the key file does not hold (retired, or a file from another server).
    #[error("sealed value was sealed with key {0:?}, which is not in the key file")]
    UnknownKey(String),
    /// The blob is not in the vault format (truncated, garbage, unknown version).
    #[error("sealed value is malformed")]
    Malformed,
    /// Authentication failed: the blob belongs to another owner or field, another key, or was altered.
    #[error("sealed value does not open: wrong owner, field or key, or tampered")]
    OpenFailed,
    /// The operating system's random source or the cipher failed.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// Retiring the active key would make every new seal fail.
    #[error("key {0:?} cannot be retired: it is the active key")]
    RetireActive(String),
}

impl VaultError {
    /// A `KeyFile` error for `path`.
    pub(crate) fn key_file(path: &std::path::Path, reason: impl Into<String>) -> Self {
        VaultError::KeyFile {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_error_names_the_path_and_the_reason() {
        let e = VaultError::key_file(
            std::path::Path::new("/etc/escrowd/keys.json"),
            "run `chmod 600`",
        );
        assert_eq!(
            e.to_string(),
            "key file /etc/escrowd/keys.json: run `chmod 600`"
        );
    }

    #[test]
    fn unknown_key_error_quotes_the_key_id() {
        let e = VaultError::UnknownKey("k7".into());
        assert_eq!(
            e.to_string(),
            "sealed value was sealed with key \"k7\", which is not in the key file"
        );
    }
}
