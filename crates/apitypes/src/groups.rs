//! Groups and API keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Millis, str_enum};

str_enum!(
    /// What an API key may do.
    Scope { Read = "read", Operate = "operate", Admin = "admin" }
);

/// A device group and its escrow settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub bootstrap_escrow_enabled: bool,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// `GET /api/v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Groups {
    pub groups: Vec<Group>,
}

/// The answer to `PATCH /api/v1/groups/{id}`: the group, and how many escrowed tokens the change cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupUpdated {
    #[serde(flatten)]
    pub group: Group,
    pub tokens_cleared: u64,
}

/// An API key (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// `GET /api/v1/apikeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeys {
    pub keys: Vec<ApiKey>,
}

/// The answer to `POST /api/v1/apikeys`: the key's metadata and the key itself, shown in this answer only.
/// Its `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub info: ApiKey,
    /// The new key; shown in this answer only.
    pub key: String,
}

impl std::fmt::Debug for ApiKeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCreated")
            .field("info", &self.info)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn a_created_key_is_never_in_debug_output() {
        let created: ApiKeyCreated = serde_json::from_value(serde_json::json!({
            "id": "k1", "name": "ci", "scope": "read", "created_at": 1, "revoked_at": null,
            "key": "escrowd_SECRETKEYVALUE"
        }))
        .unwrap();
        let shown = format!("{created:?}");
        assert!(!shown.contains("SECRETKEYVALUE"), "{shown}");
        assert!(shown.contains("k1"));
    }
}

/// The managed local admin a group gives its ADE Macs (the password is generated per Mac, never answered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountSettings {
    pub admin_short_name: String,
    pub admin_full_name: String,
    pub admin_hidden: bool,
    pub primary_account: PrimaryAccount,
    pub dont_auto_populate_primary_account_info: bool,
    pub lock_primary_account_info: bool,
    pub primary_account_full_name: Option<String>,
    pub primary_account_user_name: Option<String>,
    pub updated_at: Millis,
}

str_enum!(
    /// What the Mac's first (primary) account becomes during Setup Assistant.
    PrimaryAccount { Admin = "admin", Standard = "standard", Skip = "skip" }
);

/// `GET|PUT|DELETE /api/v1/groups/{id}/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupAccounts {
    pub settings: Option<AccountSettings>,
    pub warnings: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The body of `POST /api/v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    /// Escrow Bootstrap Tokens of the group's Macs (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub bootstrap_escrow_enabled: bool,
    /// Default false.
    #[serde(default)]
    pub prompt_user_to_allow_bootstrap_token_for_authentication: bool,
}

str_enum!(
    /// What switching a group's escrow off does to the tokens already escrowed.
    OnEscrowDisabled { Keep = "keep", Clear = "clear" }
);

/// The body of `PATCH /api/v1/groups/{id}`: what to change (omit or null: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupChange {
    pub name: Option<String>,
    pub bootstrap_escrow_enabled: Option<bool>,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    /// keep (default) or clear. Read as text: another value gets an answer naming the two.
    #[schema(value_type = Option<OnEscrowDisabled>)]
    pub on_escrow_disabled: Option<String>,
}

/// The body of `PUT /api/v1/groups/{id}/accounts`: the group's managed local admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountSettings {
    pub admin_short_name: String,
    pub admin_full_name: Option<String>,
    #[serde(default)]
    pub admin_hidden: bool,
    /// admin (default), standard or skip. Read as text: another value gets an answer naming the three.
    #[schema(value_type = Option<PrimaryAccount>)]
    pub primary_account: Option<String>,
    #[serde(default)]
    pub dont_auto_populate_primary_account_info: bool,
    #[serde(default)]
    pub lock_primary_account_info: bool,
    pub primary_account_full_name: Option<String>,
    pub primary_account_user_name: Option<String>,
}

/// The body of `POST /api/v1/apikeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// read, operate or admin. Read as text: another value gets an answer naming the three.
    #[schema(value_type = Scope)]
    pub scope: String,
}
