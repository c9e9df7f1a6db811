//! Refused unauthenticated requests, counted.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Millis;

/// Refusals of one kind from one source in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthFailureCount {
    pub kind: String,
    /// IPv4 address, IPv6 /64, unknown or other.
    pub source: String,
    /// Start of the hour counted (unix ms).
    pub hour: Millis,
    pub count: i64,
    pub first_at: Millis,
    pub last_at: Millis,
    /// The latest refusal's reason, at most 512 bytes.
    pub detail: String,
}

/// `GET /api/v1/auth-failures`, newest hour first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthFailures {
    pub auth_failures: Vec<AuthFailureCount>,
}
