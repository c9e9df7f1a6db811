//! The agent channel's formats (issue 6): the configuration profile that installs the agent's settings
//! (`com.escrowd.agent`: ServerURL, RegistrationSecret, DeviceID), its managed-preferences reader, the JSON
//! bodies of `/agent/v1/…`, and the exact text an agent signs.
//!
//! Guarantees: the registration secret and action credentials are `vault::Secret`s and never appear in Debug
//! output; the managed-preferences reader runs the plist guard first and refuses missing or non-string keys.

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};
use vault::Secret;

use crate::ProtocolError;
use crate::command::Command;
use crate::decode;
use crate::guard::{DEFAULT_MAX_BODY, DEFAULT_MAX_DEPTH, check_xml_plist};

/// The custom payload type (and managed-preferences domain) of the agent's settings.
/// The longest an agent's poll may wait for an action (`GET /agent/v1/actions?wait=N`): under the idle
/// timeouts of common proxies and load balancers (60 s).
pub const MAX_POLL_WAIT_SECS: u64 = 50;

pub const AGENT_PAYLOAD_TYPE: &str = "com.escrowd.agent";

/// What the agent needs to register, as delivered in the profile's payload.
pub struct AgentSettings {
    pub server_url: String,
    pub device_id: String,
    pub registration_secret: Secret<String>,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("server_url", &self.server_url)
            .field("device_id", &self.device_id)
            .field("registration_secret", &"[REDACTED]")
            .finish()
    }
}

/// The `.mobileconfig` (unsigned XML) holding one `com.escrowd.agent` payload.
pub fn agent_profile(
    settings: &AgentSettings,
    profile_uuid: &str,
    payload_uuid: &str,
) -> Result<Vec<u8>, ProtocolError> {
    let mut payload = Dictionary::new();
    payload.insert(
        "PayloadType".into(),
        Value::String(AGENT_PAYLOAD_TYPE.into()),
    );
    payload.insert("PayloadVersion".into(), Value::Integer(1.into()));
    payload.insert(
        "PayloadIdentifier".into(),
        Value::String(format!("{AGENT_PAYLOAD_TYPE}.settings")),
    );
    payload.insert("PayloadUUID".into(), Value::String(payload_uuid.into()));
    payload.insert(
        "PayloadDisplayName".into(),
        Value::String("escrowd agent".into()),
    );
    payload.insert(
        "ServerURL".into(),
        Value::String(settings.server_url.clone()),
    );
    payload.insert("DeviceID".into(), Value::String(settings.device_id.clone()));
    payload.insert(
        "RegistrationSecret".into(),
        Value::String(settings.registration_secret.expose().clone()),
    );
    let mut top = Dictionary::new();
    top.insert("PayloadType".into(), Value::String("Configuration".into()));
    top.insert("PayloadVersion".into(), Value::Integer(1.into()));
    top.insert(
        "PayloadIdentifier".into(),
        Value::String(format!("{AGENT_PAYLOAD_TYPE}.profile")),
    );
    top.insert("PayloadUUID".into(), Value::String(profile_uuid.into()));
    top.insert(
        "PayloadDisplayName".into(),
        Value::String("escrowd agent settings".into()),
    );
    top.insert("PayloadScope".into(), Value::String("System".into()));
    top.insert(
        "PayloadContent".into(),
        Value::Array(vec![Value::Dictionary(payload)]),
    );
    decode::to_xml(&Value::Dictionary(top))
}

/// Read the agent's settings from a managed-preferences plist (`/Library/Managed Preferences/
/// com.escrowd.agent.plist`: the payload's keys at the top level) or from a profile holding the payload.
pub fn parse_agent_settings(bytes: &[u8]) -> Result<AgentSettings, ProtocolError> {
    check_xml_plist(bytes, DEFAULT_MAX_DEPTH, DEFAULT_MAX_BODY)?;
    let value =
        Value::from_reader_xml(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let Value::Dictionary(top) = value else {
        return Err(ProtocolError::Malformed(
            "agent settings must be a dict".into(),
        ));
    };
    let dict = match top.get("PayloadContent") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_dictionary)
            .find(|d| d.get("PayloadType").and_then(Value::as_string) == Some(AGENT_PAYLOAD_TYPE))
            .ok_or_else(|| ProtocolError::Malformed(format!("no {AGENT_PAYLOAD_TYPE} payload")))?,
        _ => &top,
    };
    let field = |key: &str| -> Result<String, ProtocolError> {
        match dict.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 2048 => Ok(s.clone()),
            Some(Value::String(_)) => Err(ProtocolError::Malformed(format!(
                "{key} is empty or too long"
            ))),
            Some(_) => Err(ProtocolError::Malformed(format!("{key} must be a string"))),
            None => Err(ProtocolError::Malformed(format!("missing {key}"))),
        }
    };
    Ok(AgentSettings {
        server_url: field("ServerURL")?,
        device_id: field("DeviceID")?,
        registration_secret: Secret::new(field("RegistrationSecret")?),
    })
}

impl Command {
    /// `InstallProfile` with the profile bytes as `Payload` data.
    pub fn install_profile(uuid: String, profile: Vec<u8>) -> Command {
        let mut body = Dictionary::new();
        body.insert("RequestType".into(), Value::String("InstallProfile".into()));
        body.insert("Payload".into(), Value::Data(profile));
        Command {
            uuid,
            request_type: "InstallProfile".into(),
            body,
        }
    }
}

/// Request headers of a signed agent request.
pub const HEADER_AGENT: &str = "x-escrowd-agent";
pub const HEADER_TIMESTAMP: &str = "x-escrowd-timestamp";
pub const HEADER_NONCE: &str = "x-escrowd-nonce";
pub const HEADER_SIGNATURE: &str = "x-escrowd-signature";

/// The exact bytes an agent signs: version tag, method, path (with query), unix-seconds timestamp, nonce and
/// the hex SHA-256 of the body, one per line.
pub fn signing_message(
    method: &str,
    path: &str,
    timestamp: i64,
    nonce: &str,
    body_sha256_hex: &str,
) -> Vec<u8> {
    format!("escrowd-agent-v1\n{method}\n{path}\n{timestamp}\n{nonce}\n{body_sha256_hex}")
        .into_bytes()
}

/// `POST /agent/v1/register`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub device_id: String,
    pub registration_secret: String,
    /// Base64 Ed25519 public key.
    pub signing_key: String,
    /// Base64 X25519 public key.
    pub hpke_key: String,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("device_id", &self.device_id)
            .field("registration_secret", &"[REDACTED]")
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub agent_id: String,
}

/// One action as the agent receives it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentActionWire {
    pub id: String,
    /// An [`ActionKind`](crate::action_kind::ActionKind)'s text, kept as text: an agent answers a kind it does not know as unsupported.
    pub kind: String,
    pub params: serde_json::Value,
    /// Base64 HPKE blob of the credentials JSON (`enc || ciphertext`), info = [`action_seal_info`], aad = id.
    pub sealed: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AgentActionsResponse {
    pub actions: Vec<AgentActionWire>,
}

/// `POST /agent/v1/actions/{id}/result`. `output` is free text for every kind; a `troubleshoot` result also
/// carries one entry per command it ran in `commands` (absent, or empty, for every other kind).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionResultRequest {
    pub succeeded: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandRunWire>,
}

/// One read-only troubleshooting command the agent ran (the SOTI list: `profiles status -type
/// bootstraptoken`, `fdesetup list`, `sysadminctl -secureTokenStatus USER`, `diskutil apfs listcryptousers
/// /`, `profiles validate -type bootstraptoken -user ADMIN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRunWire {
    /// The command line as run (passwords never appear in it: they go on stdin or a pty).
    pub command: String,
    /// `None` when the tool could not be started, timed out or was killed by a signal.
    pub exit_code: Option<i32>,
    /// stdout then stderr, passwords redacted, cleaned with [`clean_output`] and capped.
    pub output: String,
    /// The tool printed more than was kept.
    #[serde(default)]
    pub truncated: bool,
}

/// Most commands one troubleshoot result may carry.
pub const MAX_TROUBLESHOOT_COMMANDS: usize = 64;
/// Most output kept per troubleshooting command (bytes).
pub const MAX_COMMAND_OUTPUT: usize = 4 * 1024;

/// `POST /agent/v1/reports/escrow`: how `escrow-agent escrow` (self-service Bootstrap Token escrow) ended.
/// Never carries the password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowReportRequest {
    pub succeeded: bool,
    /// The console user who was asked for the password.
    pub user: String,
    /// `already_escrowed` / `escrowed_and_validated` on success, else a stable failure code such as
    /// `not_filevault_user`, `too_many_tries`, `wrong_admin_password`.
    pub code: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// The longest prefix of `s` that fits in `max` bytes without splitting a character.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Makes a tool's output safe to store and show in a terminal: `\r\n` becomes `\n`, every other control
/// character (ESC, NUL, lone `\r`, …) and every bidirectional override becomes U+FFFD, then the text is cut
/// to `max` bytes. Returns the text and whether it was cut.
pub fn clean_output(text: &str, max: usize) -> (String, bool) {
    let cleaned: String = text
        .replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => '\u{fffd}',
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                '\u{fffd}'
            }
            c => c,
        })
        .collect();
    let kept = cut(&cleaned, max);
    let was_cut = kept.len() < cleaned.len();
    (kept.to_string(), was_cut)
}

/// One local user in `POST /agent/v1/inventory` (the `users` of `escrow-agent inventory --json`; other
/// fields are ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentUserWire {
    pub short_name: String,
    pub uid: i64,
    #[serde(default)]
    pub real_name: Option<String>,
    pub admin: bool,
    #[serde(default)]
    pub secure_token: Option<bool>,
    pub filevault: bool,
    #[serde(default)]
    pub volume_owner: Option<bool>,
    /// The ADE managed admin named by `escrow-agent run --managed-admin NAME`; absent from older agents.
    #[serde(default)]
    pub managed_admin: Option<bool>,
    /// dscl's GeneratedUID, which is MDM's UserGUID: the key that makes the agent's row and MDM's row of one
    /// user one user. Absent from older agents (the server then matches on the short name).
    #[serde(default)]
    pub generated_uid: Option<String>,
}

/// `POST /agent/v1/inventory` (other top-level fields of the agent's inventory are ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentInventoryRequest {
    pub users: Vec<AgentUserWire>,
}

/// HPKE `info` binding a sealed credential blob to its action.
pub fn action_seal_info(action_id: &str) -> Vec<u8> {
    format!("escrowd-agent-action-v1:{action_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AgentSettings {
        AgentSettings {
            server_url: "https://mdm.example/".into(),
            device_id: "UDID-1".into(),
            registration_secret: Secret::new("s3cr3t-reg".into()),
        }
    }

    #[test]
    fn profile_round_trips_and_install_profile_carries_it() {
        let profile = agent_profile(&settings(), "P-UUID", "PL-UUID").unwrap();
        let back = parse_agent_settings(&profile).unwrap();
        assert_eq!(back.server_url, "https://mdm.example/");
        assert_eq!(back.device_id, "UDID-1");
        assert_eq!(back.registration_secret.expose(), "s3cr3t-reg");
        assert!(!format!("{back:?}").contains("s3cr3t"));
        let cmd = Command::install_profile("C1".into(), profile.clone());
        let xml = String::from_utf8(cmd.to_xml().unwrap()).unwrap();
        assert!(xml.contains("<string>InstallProfile</string>"));
        assert!(!format!("{cmd:?}").contains("s3cr3t"));
        let again = Command::from_raw_plist(xml.as_bytes()).unwrap();
        assert_eq!(
            again.body.get("Payload").and_then(Value::as_data),
            Some(&profile[..])
        );
    }

    #[test]
    fn managed_preferences_form_parses_and_hostile_input_is_refused() {
        let flat = br#"<?xml version="1.0"?><plist version="1.0"><dict>
<key>ServerURL</key><string>https://x</string><key>DeviceID</key><string>D</string>
<key>RegistrationSecret</key><string>abc</string></dict></plist>"#;
        assert_eq!(parse_agent_settings(flat).unwrap().device_id, "D");
        for bad in [
            &b"garbage"[..],
            br#"<plist version="1.0"><array/></plist>"#,
            br#"<plist version="1.0"><dict><key>ServerURL</key><string>x</string></dict></plist>"#,
            br#"<plist version="1.0"><dict><key>ServerURL</key><integer>1</integer><key>DeviceID</key><string>D</string><key>RegistrationSecret</key><string>a</string></dict></plist>"#,
        ] {
            assert!(parse_agent_settings(bad).is_err());
        }
        let deep = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(500),
            "</array>".repeat(500)
        );
        assert!(parse_agent_settings(deep.as_bytes()).is_err());
    }

    #[test]
    fn clean_output_keeps_text_and_neutralises_control_and_bidi_characters() {
        let (t, cut_) = clean_output("ok\r\nline\ttab\u{1b}[31mred\0nul\rcr\u{202e}rtl", 1000);
        assert_eq!(
            t,
            "ok\nline\ttab\u{fffd}[31mred\u{fffd}nul\u{fffd}cr\u{fffd}rtl"
        );
        assert!(!cut_);
        let (t, cut_) = clean_output(&"é".repeat(100), 51);
        assert_eq!(t, "é".repeat(25));
        assert!(cut_);
        assert_eq!(cut("abc", 0), "");
        assert_eq!(cut("abc", 9), "abc");
    }

    #[test]
    fn action_results_without_commands_parse_as_before_and_unknown_fields_are_refused() {
        let old: ActionResultRequest =
            serde_json::from_str(r#"{"succeeded":true,"output":"x"}"#).unwrap();
        assert!(old.commands.is_empty());
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"succeeded":true,"reason":null,"output":"x"}"#
        );
        let t: ActionResultRequest = serde_json::from_str(
            r#"{"succeeded":false,"commands":[{"command":"fdesetup list","exit_code":null,"output":""}]}"#,
        )
        .unwrap();
        assert_eq!(t.commands[0].exit_code, None);
        assert!(!t.commands[0].truncated);
        for bad in [
            r#"{"succeeded":true,"commands":[{"command":"x","exit_code":0,"output":"","evil":1}]}"#,
            r#"{"succeeded":true,"commands":"x"}"#,
            r#"{"succeeded":true,"extra":1}"#,
        ] {
            assert!(
                serde_json::from_str::<ActionResultRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn signing_message_names_every_part() {
        let m = signing_message("POST", "/agent/v1/inventory", 42, "n", "ab");
        assert_eq!(m, b"escrowd-agent-v1\nPOST\n/agent/v1/inventory\n42\nn\nab");
    }
}
