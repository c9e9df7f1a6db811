//! Enrollment tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Millis;

/// An enrollment token's metadata (never the token or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentToken {
    pub id: String,
    pub name: String,
    pub group_id: String,
    /// null: unlimited.
    pub max_uses: Option<i64>,
    pub uses: i64,
    /// null: never.
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// `GET /api/v1/enrollment-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentTokens {
    pub tokens: Vec<EnrollmentToken>,
}

/// The answer to `POST /api/v1/enrollment-tokens`: the metadata, the token and its `/enroll` URL, shown in
/// this answer only. Its `Debug` never prints the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentTokenCreated {
    #[serde(flatten)]
    pub info: EnrollmentToken,
    /// Shown in this answer only.
    pub token: String,
    /// Shown in this answer only (it holds the token).
    pub enroll_url: String,
}

impl std::fmt::Debug for EnrollmentTokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentTokenCreated")
            .field("info", &self.info)
            .field("token", &"[redacted]")
            .field("enroll_url", &"[redacted]")
            .finish()
    }
}

/// The body of `POST /api/v1/enrollment-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    /// A group id or name.
    pub group: String,
    /// Default: `token for <group>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Omit (or null) for unlimited.
    #[serde(default)]
    pub max_uses: Option<i64>,
    /// Omit (or null) for never.
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_is_never_in_debug_output() {
        let created: EnrollmentTokenCreated = serde_json::from_value(serde_json::json!({
            "id": "t1", "name": "n", "group_id": "g", "max_uses": null, "uses": 0, "expires_at": null,
            "created_at": 1, "revoked_at": null, "token": "SECRETTOKEN",
            "enroll_url": "https://mdm.example/enroll?token=SECRETTOKEN"
        }))
        .unwrap();
        let shown = format!("{created:?}");
        assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        assert!(shown.contains("t1"));
    }
}
