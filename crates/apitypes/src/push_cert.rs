//! The APNs push certificate.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Millis;

/// `GET|PUT /api/v1/push-certificate`: what the certificate says (never its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushCertificate {
    /// The APNs topic (the subject's UID).
    pub topic: String,
    pub subject: String,
    pub serial: String,
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    pub not_after: Millis,
    pub days_left: i64,
    /// Expiring or expired.
    pub warning: Option<String>,
}
