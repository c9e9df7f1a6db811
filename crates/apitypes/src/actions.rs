//! Agent actions and the agent install.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Millis, str_enum};

str_enum!(
    /// Where an agent action stands.
    ActionStatus {
        Queued = "queued",
        Delivered = "delivered",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
        Expired = "expired",
    }
);

/// One agent action. Never a credential or its ciphertext: `has_credentials` says whether sealed ones exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Action {
    pub id: String,
    pub device_id: String,
    /// The action kind (`grant_secure_token`, `create_user`, …).
    pub kind: String,
    /// user, admin, full_name, make_admin as given (never a password).
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    pub has_credentials: bool,
    pub status: ActionStatus,
    pub reason: Option<String>,
    pub output: Option<String>,
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub expires_at: Millis,
}

/// `GET /api/v1/devices/{id}/actions`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Actions {
    pub actions: Vec<Action>,
}

/// The answer to `POST /api/v1/devices/{id}/agent`: what was queued (never the registration secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentInstalled {
    pub command_uuid: String,
    /// How long the secret works once the Mac acknowledged the profile.
    pub secret_ttl_ms: Millis,
    /// Earlier unused secrets of the Mac this install revoked.
    pub revoked_secrets: u64,
    /// The registration with this secret may replace the Mac's current agent.
    pub replace: bool,
}

/// `GET /api/v1/devices/{id}/agent`: the Mac's registered agent (never its keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub agent_id: String,
    pub device_id: String,
    pub registered_at: Millis,
    pub last_seen_at: Millis,
}

/// The body of `POST /api/v1/devices/{id}/agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInstall {
    /// The https URL the agent reaches escrowd at; absent: the Macs' address (`--public-url`, else
    /// `--listen`), never the admin listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// Let the registration with this secret replace the Mac's current agent (admin scope).
    #[serde(default)]
    pub replace: bool,
}
