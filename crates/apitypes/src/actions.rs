//! Agent actions and the agent install.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Millis, SecretString, str_enum};

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

/// The schema of an action kind: one of `protocol::action_kind::ActionKind::NAMES` (named `ActionKind`).
/// The body keeps the kind as text, so an unknown kind gets the service's answer listing the known ones.
pub struct ActionKindName;

impl utoipa::PartialSchema for ActionKindName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let object = utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(
                protocol::action_kind::ActionKind::NAMES.iter().copied(),
            ))
            .description(Some("An agent action kind."))
            .build();
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object))
    }
}

impl ToSchema for ActionKindName {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ActionKind")
    }
}

/// The body of `POST /api/v1/devices/{id}/actions`. `%serial%`, `%device_name%` and `%username%` expand in
/// the texts. The passwords are sealed to the agent at once and never returned; this type never serializes
/// them and its `Debug` is redacted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAction {
    #[schema(value_type = ActionKindName)]
    pub kind: String,
    pub user: Option<String>,
    pub admin: Option<String>,
    pub full_name: Option<String>,
    #[serde(default)]
    pub make_admin: bool,
    /// Sealed to the agent at once; never returned. For reset_password, the NEW password.
    #[schema(value_type = Option<String>)]
    pub user_password: Option<SecretString>,
    /// Sealed to the agent at once; never returned.
    #[schema(value_type = Option<String>)]
    pub admin_password: Option<SecretString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_action_keeps_its_passwords_out_of_debug_and_json() {
        let a: NewAction = serde_json::from_value(serde_json::json!({
            "kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
            "user_password": "USERSECRET", "admin_password": "ADMINSECRET"
        }))
        .unwrap();
        assert_eq!(a.user_password.as_ref().unwrap().expose(), "USERSECRET");
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("SECRET") && shown.contains("alice"),
            "{shown}"
        );
        assert!(serde_json::to_string(&a).is_err());
        // Without passwords it serializes (a client may build it).
        let plain: NewAction =
            serde_json::from_value(serde_json::json!({"kind": "troubleshoot"})).unwrap();
        let v = serde_json::to_value(&plain).unwrap();
        assert_eq!(v["kind"], "troubleshoot");
        assert_eq!(v["make_admin"], false);
    }

    #[test]
    fn the_kind_schema_lists_every_protocol_kind() {
        use utoipa::PartialSchema;
        let s = serde_json::to_value(ActionKindName::schema()).unwrap();
        assert_eq!(
            s["enum"],
            serde_json::json!(protocol::action_kind::ActionKind::NAMES)
        );
        let mut deps = Vec::new();
        NewAction::schemas(&mut deps);
        assert!(deps.iter().any(|(name, _)| name == "ActionKind"));
    }
}
