//! Console admin accounts and their sessions (issue 15).

use std::fmt;

use crate::{ApiScope, Millis};

/// An admin who signs in to the console. `password_hash` is an Argon2id PHC string (never the password); the
/// role uses the API scopes (read / operate / admin).
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleAdminAccount {
    pub name: String,
    pub role: ApiScope,
    pub password_hash: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub disabled_at: Option<Millis>,
}

impl fmt::Debug for ConsoleAdminAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleAdminAccount")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// A signed-in browser: the SHA-256 (hex) of its session token, whose admin, the session's CSRF token, and
/// its times. Idle expiry is `last_seen_at` + the service's idle timeout; `expires_at` is the absolute end.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_hash: String,
    pub admin_name: String,
    pub csrf: String,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
}

impl fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("admin_name", &self.admin_name)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
