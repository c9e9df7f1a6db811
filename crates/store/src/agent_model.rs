//! The Mac agent's records (issue 6): registrations, one-time registration secrets and remote actions.
//! Guarantees: sealed action credentials show only their length in Debug; the action status round-trips
//! through the exact string stored, and an unknown stored string is an error.

use crate::{Millis, Result, StoreError};

/// A registered agent: one per device (a new registration replaces the old one).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRegistration {
    pub agent_id: String,
    pub device_id: String,
    /// Ed25519 public key (32 bytes) that signs the agent's requests.
    pub signing_key: Vec<u8>,
    /// X25519 public key (32 bytes) that action credentials are HPKE-sealed to.
    pub hpke_key: Vec<u8>,
    pub registered_at: Millis,
    pub last_seen_at: Millis,
}

/// A one-time registration secret, stored as a hash only.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSecret {
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    pub device_id: String,
    /// The InstallProfile command carrying it (None only for secrets made before issue 11).
    pub command_uuid: Option<String>,
    pub created_at: Millis,
    /// How long it stays usable once delivered.
    pub ttl_ms: Millis,
    /// When the Mac acknowledged the InstallProfile carrying it; None until then.
    pub delivered_at: Option<Millis>,
    /// `delivered_at + ttl_ms`; None until delivered (the expiry clock has not started).
    pub expires_at: Option<Millis>,
    pub used_at: Option<Millis>,
    /// A newer install for the device, or an InstallProfile that failed, revoked it.
    pub revoked_at: Option<Millis>,
    /// The admin (actor label) who allowed a registration with this secret to replace the Mac's current agent.
    pub replace_authorized_by: Option<String>,
}

impl AgentSecret {
    /// Why it cannot register at `now`, or None when it can.
    pub fn unusable_at(&self, now: Millis) -> Option<&'static str> {
        if self.used_at.is_some() {
            Some("already used")
        } else if self.revoked_at.is_some() {
            Some("revoked by a newer agent install or a failed InstallProfile")
        } else if self.expires_at.is_some_and(|e| e <= now) {
            Some("expired")
        } else {
            None
        }
    }
}

/// Where an agent action is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionStatus {
    Queued,
    Delivered,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Queued => "queued",
            ActionStatus::Delivered => "delivered",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
            ActionStatus::Cancelled => "cancelled",
            ActionStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ActionStatus::Queued,
            "delivered" => ActionStatus::Delivered,
            "succeeded" => ActionStatus::Succeeded,
            "failed" => ActionStatus::Failed,
            "cancelled" => ActionStatus::Cancelled,
            "expired" => ActionStatus::Expired,
            _ => return None,
        })
    }

    pub(crate) fn from_stored(s: &str) -> Result<Self> {
        Self::parse(s).ok_or_else(|| {
            StoreError::Database("unexpected agent action status in database".into())
        })
    }

    /// Queued or delivered: the action can still run, be cancelled or expire.
    pub fn is_open(self) -> bool {
        matches!(self, ActionStatus::Queued | ActionStatus::Delivered)
    }
}

/// A remote action for a device's agent.
#[derive(Clone, PartialEq)]
pub struct AgentAction {
    pub id: String,
    pub device_id: String,
    /// E.g. `grant_secure_token`.
    pub kind: String,
    /// Non-secret parameters as a JSON object (user names, flags).
    pub params: String,
    /// HPKE-sealed credentials (opaque here); None when there are none or once the action ended.
    pub sealed: Option<Vec<u8>>,
    pub status: ActionStatus,
    pub reason: Option<String>,
    pub output: Option<String>,
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub expires_at: Millis,
}

impl std::fmt::Debug for AgentAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAction")
            .field("id", &self.id)
            .field("device_id", &self.device_id)
            .field("kind", &self.kind)
            .field("params", &self.params)
            .field("sealed_len", &self.sealed.as_ref().map(Vec::len))
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("output", &self.output)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How an attempt to end an action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    /// The action was open and now has the new status (credentials deleted).
    Ended,
    /// It had already ended (its current status); nothing changed.
    AlreadyEnded(ActionStatus),
    /// No such action on that device.
    NotFound,
}
