//! Users, events, commands and findings: what the device and fleet routes list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Millis, str_enum};

str_enum!(
    /// Who said a fact: MDM (UserList) or the agent.
    FactSource { Mdm = "mdm", Agent = "agent" }
);

str_enum!(
    /// How an event ended.
    Outcome { Success = "success", Failure = "failure", Refused = "refused" }
);

str_enum!(
    /// Where a queued command stands.
    CommandStatus {
        Pending = "pending",
        NotNow = "notnow",
        Acknowledged = "acknowledged",
        Error = "error",
        CommandFormatError = "command_format_error",
    }
);

str_enum!(
    /// How bad a finding is.
    Severity { Info = "info", Warning = "warning", Critical = "critical" }
);

/// Another source said otherwise, earlier (or at the same time); the newest word wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Conflict {
    pub value: bool,
    pub source: FactSource,
    pub at: Millis,
}

/// One fact about a user, with the source that said it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fact {
    pub value: bool,
    pub source: FactSource,
    pub at: Millis,
    pub conflict: Option<Conflict>,
}

/// One local user of a device, every source merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub user_key: String,
    pub guid: Option<String>,
    pub short_name: Option<String>,
    pub full_name: Option<String>,
    pub uid: Option<i64>,
    pub has_secure_token: Option<Fact>,
    pub mobile_account: Option<Fact>,
    pub is_logged_in: Option<Fact>,
    pub is_admin: Option<Fact>,
    pub filevault_enabled: Option<Fact>,
    pub volume_owner: Option<Fact>,
    pub managed_admin: Option<Fact>,
}

/// `GET /api/v1/devices/{id}/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Users {
    pub users: Vec<User>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub subject: String,
    pub enrollment_id: Option<String>,
    pub kind: String,
    pub outcome: Outcome,
    pub detail: String,
    /// Milliseconds since the Unix epoch.
    pub at: Millis,
}

/// A page of events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as before_id for the next page; null on the last page.
    pub next_before_id: Option<i64>,
}

/// One queued or finished MDM command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Command {
    pub enrollment_id: String,
    pub uuid: String,
    pub request_type: String,
    pub status: CommandStatus,
    /// The device's report plist (XML).
    pub result: Option<String>,
    /// The command holds a secret (PIN, password, registration secret): sealed at rest, shown redacted.
    pub carries_secret: bool,
    /// The command plist (XML) as stored; secret values read [redacted].
    pub payload: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// `GET /api/v1/devices/{id}/commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Commands {
    pub commands: Vec<Command>,
}

/// One diagnosis finding with its evidence and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: String,
}

/// `GET /api/v1/devices/{id}/diagnosis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diagnosis {
    pub device: String,
    pub findings: Vec<Finding>,
}

/// One device's push: the apns-id on success, else what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushResult {
    pub enrollment_id: String,
    /// The apns-id, on success.
    pub push_id: Option<String>,
    pub error: Option<String>,
}

/// The answer to a command enqueue (typed or raw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Enqueued {
    pub command_uuid: String,
    /// Null when push was off.
    pub push: Option<Vec<PushResult>>,
}

/// The answer to `POST /api/v1/push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushResults {
    pub results: Vec<PushResult>,
}

/// Devices by Bootstrap Token status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCounts {
    pub escrowed: u64,
    pub not_escrowed: u64,
    pub not_supported: u64,
    pub escrowed_unverified: u64,
}

/// `GET /api/v1/reports/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub devices: u64,
    pub bootstrap_token: TokenCounts,
    pub apple_silicon: u64,
    pub apple_silicon_cannot_authorize: u64,
    pub devices_with_users_without_secure_token: u64,
    pub users_without_secure_token: u64,
    pub devices_without_inventory: u64,
}

str_enum!(
    /// What an EraseDevice does on a Mac with Apple silicon or a T2 when Erase All Content and Settings
    /// is not available.
    ObliterationBehavior {
        Default = "Default",
        DoNotObliterate = "DoNotObliterate",
        ObliterateWithWarning = "ObliterateWithWarning",
        Always = "Always",
    }
);

/// One typed command, by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum CommandSpec {
    SecurityInfo,
    UserList,
    DeviceInformation,
    DeviceConfigured,
    /// Always sends all three keys (the Mac resets keys left out): a key not given comes from each Mac's
    /// effective set (its group's settings, Activation Lock false).
    Settings {
        bootstrap_token_allowed: Option<bool>,
        prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
        activation_lock_allowed_while_supervised: Option<bool>,
    },
    EraseDevice {
        pin: Option<String>,
        /// Read as text: another value gets an answer naming the four.
        #[schema(value_type = Option<ObliterationBehavior>)]
        obliteration_behavior: Option<String>,
    },
}

/// The schema of [`CommandSpec`] (named `CommandSpec`): the derived one with each variant that has fields
/// closed, as serde's `deny_unknown_fields` makes it (utoipa does not carry that attribute into enum
/// variants). serde lets a unit variant (`{"type": "UserList"}`) carry other fields, so those stay open.
pub struct ClosedCommandSpec;

impl utoipa::PartialSchema for ClosedCommandSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut v = serde_json::to_value(CommandSpec::schema()).expect("a schema serializes");
        let variants = v["oneOf"]
            .as_array_mut()
            .expect("CommandSpec is one of its variants");
        for variant in variants {
            let fields = variant["properties"].as_object().map_or(0, |p| p.len());
            if fields > 1 {
                variant["additionalProperties"] = serde_json::Value::Bool(false);
            }
        }
        serde_json::from_value(v).expect("a closed schema is a schema")
    }
}

impl ToSchema for ClosedCommandSpec {
    fn name() -> std::borrow::Cow<'static, str> {
        CommandSpec::name()
    }

    fn schemas(
        out: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        CommandSpec::schemas(out);
    }
}

/// The body of `POST /api/v1/commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueCommand {
    /// 1 to 1000 enrollment ids.
    pub devices: Vec<String>,
    #[schema(value_type = ClosedCommandSpec)]
    pub command: CommandSpec,
    /// Erase even without a usable Bootstrap Token.
    #[serde(default)]
    pub force: bool,
    /// Push after queueing (default true).
    pub push: Option<bool>,
}

/// The body of `POST /api/v1/push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushDevices {
    pub devices: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_command_schema_closes_the_variants_the_parser_closes() {
        use utoipa::PartialSchema;
        for c in [
            json!({"type": "Settings", "x": 1}),
            json!({"type": "EraseDevice", "pin": null, "x": 1}),
        ] {
            assert!(
                serde_json::from_value::<CommandSpec>(c.clone()).is_err(),
                "{c}"
            );
        }
        // A unit variant ignores other fields (serde's internally tagged unit variants do).
        let unit: CommandSpec =
            serde_json::from_value(json!({"type": "SecurityInfo", "x": 1})).unwrap();
        assert_eq!(unit, CommandSpec::SecurityInfo);
        let s = serde_json::to_value(ClosedCommandSpec::schema()).unwrap();
        let variants = s["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), 6);
        for v in variants {
            let tag = v["properties"]["type"]["enum"][0].as_str().unwrap();
            let closed = v["additionalProperties"] == json!(false);
            assert_eq!(
                closed,
                matches!(tag, "Settings" | "EraseDevice"),
                "{tag}: {v}"
            );
        }
        assert_eq!(ClosedCommandSpec::name(), "CommandSpec");
        let mut deps = Vec::new();
        EnqueueCommand::schemas(&mut deps);
        assert!(deps.iter().any(|(n, _)| n == "ObliterationBehavior"));
    }
}
