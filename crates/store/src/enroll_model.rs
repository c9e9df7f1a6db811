//! Enrollment tokens, one-time SCEP challenges and issued-certificate records.

use crate::Millis;

/// An enrollment token: metadata plus the hex SHA-256 of the token (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub id: String,
    pub name: String,
    pub token_hash: String,
    pub group_id: String,
    /// None = unlimited.
    pub max_uses: Option<i64>,
    pub uses: i64,
    /// None = never expires.
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Why a token could not be redeemed (nothing was consumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
    UsedUp,
}

/// A one-time SCEP challenge minted by one `/enroll` (hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepChallenge {
    pub challenge_hash: String,
    pub token_id: Option<String>,
    pub group_id: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
    /// Minted for this one UDID (identity renewal): its certificate is bound to it at issuance.
    pub device_id: Option<String>,
}

/// A certificate SCEP issued: the group it enrolls into and, once it has Authenticated, its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub fingerprint: String,
    pub device_id: Option<String>,
    pub group_id: Option<String>,
    pub token_id: Option<String>,
    pub issued_at: Millis,
    /// Set when `device_id` was bound at issuance with proof that it is that Mac (see [`IssuedProof`]).
    pub proof: Option<IssuedProof>,
}

/// How a certificate was proven to be its Mac's at issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedProof {
    /// A SCEP RenewalReq signed by the Mac's bound certificate.
    RenewalReq,
    /// A one-time challenge escrowd minted for that UDID in a renewal profile.
    RenewalProfile,
}

impl IssuedProof {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedProof::RenewalReq => "renewal_req",
            IssuedProof::RenewalProfile => "renewal_profile",
        }
    }

    pub fn from_stored(s: &str) -> crate::Result<Self> {
        match s {
            "renewal_req" => Ok(IssuedProof::RenewalReq),
            "renewal_profile" => Ok(IssuedProof::RenewalProfile),
            other => Err(crate::StoreError::Database(format!(
                "unknown issued-certificate proof {other:?}"
            ))),
        }
    }
}

/// An identity renewal escrowd queued for a Mac (issue 11): a renewal profile (InstallProfile of the
/// enrollment profile) whose one-time SCEP challenge was minted for the Mac's UDID. Outstanding until the
/// proven renewal clears it, or until its challenge expires (then it may be queued again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRenewal {
    pub device_id: String,
    /// The InstallProfile command carrying the renewal profile.
    pub command_uuid: String,
    pub queued_at: Millis,
    /// When the profile's one-time challenge expires (the renewal is no longer outstanding after that).
    pub challenge_expires_at: Millis,
    /// notAfter (Unix ms) of the certificate being renewed, when known.
    pub renews_not_after: Option<Millis>,
}
