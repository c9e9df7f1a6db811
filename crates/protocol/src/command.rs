//! The command channel (`PUT` to the server URL): device reports in, commands out.
//!
//! Guarantees: [`parse_report`] and [`Command::from_raw_plist`] guard their input before parsing (see
//! [`crate::guard`]); a report always has a known [`Status`] and, unless `Idle`, a `CommandUUID`; a
//! [`Command`] always has a non-empty UUID and `RequestType`, and its XML always carries exactly those.
//! `Debug` of reports and commands lists keys only, never values (commands may carry PINs, reports
//! recovery-key blobs).

use std::fmt;

use plist::{Dictionary, Value};
use serde::{Deserialize, Serialize};

use crate::checkin::Identity;
use crate::decode::{self, decode, decode_items, kind};
use crate::error::{ProtocolError, echo};
use crate::guard::{DEFAULT_MAX_BODY, DEFAULT_MAX_DEPTH, check_xml_plist};

pub use crate::results::{
    BootstrapTokenAuth, DeviceInformation, ManagementStatus, SecureBoot, SecurityInfo, UserList,
    UserListEntry,
};

/// Keys the status views need from DeviceInformation.
pub const INVENTORY_DEVICE_QUERIES: &[&str] = &[
    "IsAppleSilicon",
    "OSVersion",
    "BuildVersion",
    "ModelName",
    "Model",
    "ProductName",
    "SerialNumber",
    "DeviceName",
    "EACSPreflight",
    "MDMOptions",
    "AwaitingConfiguration",
    "IsSupervised",
];

/// The `Status` of a device report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to report; the device is polling for the next command.
    Idle,
    /// The command ran.
    Acknowledged,
    /// The command failed; see the report's error chain.
    Error,
    /// The device could not understand the command.
    CommandFormatError,
    /// The device cannot run the command now; resend later.
    NotNow,
}

impl Status {
    /// The wire string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Idle => "Idle",
            Status::Acknowledged => "Acknowledged",
            Status::Error => "Error",
            Status::CommandFormatError => "CommandFormatError",
            Status::NotNow => "NotNow",
        }
    }

    /// Parses the wire string (exact, case-sensitive).
    pub fn parse(s: &str) -> Result<Status, ProtocolError> {
        Ok(match s {
            "Idle" => Status::Idle,
            "Acknowledged" => Status::Acknowledged,
            "Error" => Status::Error,
            "CommandFormatError" => Status::CommandFormatError,
            "NotNow" => Status::NotNow,
            other => return Err(ProtocolError::UnknownStatus(echo(other))),
        })
    }
}

/// One entry of a report's `ErrorChain`; the first is the top-level error. Codes are diagnostic only.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ErrorChainItem {
    #[serde(rename = "ErrorCode", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(
        rename = "ErrorDomain",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_domain: Option<String>,
    #[serde(
        rename = "LocalizedDescription",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub localized_description: Option<String>,
    #[serde(
        rename = "USEnglishDescription",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub us_english_description: Option<String>,
}

/// A device's report on the command channel (PUT /mdm/connect).
#[derive(Clone)]
pub struct CommandReport {
    pub identity: Identity,
    pub status: Status,
    pub command_uuid: Option<String>,
    pub error_chain: Vec<ErrorChainItem>,
    /// The whole report as received (result keys at top level: SecurityInfo, Users, QueryResponses, …).
    pub raw: plist::Dictionary,
}

impl fmt::Debug for CommandReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandReport")
            .field("identity", &self.identity)
            .field("status", &self.status)
            .field("command_uuid", &self.command_uuid)
            .field("error_chain", &self.error_chain)
            .field("raw_keys", &self.raw.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Guards (as parse_checkin) then parses. Status missing/unknown -> error. CommandUUID required unless Idle.
pub fn parse_report(body: &[u8]) -> Result<CommandReport, ProtocolError> {
    let value = decode::guarded_dict(body)?;
    let identity: Identity = decode(&value, "report")?;
    let Value::Dictionary(raw) = value else {
        return Err(ProtocolError::Malformed("top level must be a dict".into()));
    };
    let status = match raw.get("Status") {
        Some(Value::String(s)) => Status::parse(s)?,
        Some(other) => {
            return Err(malformed(format!(
                "report: Status must be a string, found {}",
                kind(other)
            )));
        }
        None => return Err(malformed("report: missing Status")),
    };
    let command_uuid = match raw.get("CommandUUID") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) | None => None,
        Some(other) => {
            return Err(malformed(format!(
                "report: CommandUUID must be a string, found {}",
                kind(other)
            )));
        }
    };
    if command_uuid.is_none() && status != Status::Idle {
        return Err(malformed(format!(
            "report: CommandUUID is required with Status {}",
            status.as_str()
        )));
    }
    let error_chain = match raw.get("ErrorChain") {
        Some(chain) => decode_items(chain, "ErrorChain")?,
        None => Vec::new(),
    };
    Ok(CommandReport {
        identity,
        status,
        command_uuid,
        error_chain,
        raw,
    })
}

/// A command to send: `{CommandUUID, Command: {RequestType, …}}`.
#[derive(Clone, PartialEq)]
pub struct Command {
    pub uuid: String,
    /// Authoritative: [`Command::to_xml`] writes it into the Command dict.
    pub request_type: String,
    /// The Command dict incl. RequestType.
    pub body: plist::Dictionary,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("uuid", &self.uuid)
            .field("request_type", &self.request_type)
            .field("body_keys", &self.body.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The full `MDMOptions` settings item. The Mac resets every key a Settings command leaves out to `false`, so
/// there is no "unset": each command carries all three keys (callers work out the effective set first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MdmOptions {
    /// macOS 10.15 only (deprecated in 11 for the `com.apple.mdm.bootstraptoken` server capability).
    pub bootstrap_token_allowed: bool,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: bool,
    pub activation_lock_allowed_while_supervised: bool,
}

/// `EraseDevice`'s `ObliterationBehavior` (macOS 12+), written as Apple's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObliterationBehavior {
    Default,
    DoNotObliterate,
    ObliterateWithWarning,
    Always,
}

impl ObliterationBehavior {
    /// The wire string.
    pub fn as_str(&self) -> &'static str {
        match self {
            ObliterationBehavior::Default => "Default",
            ObliterationBehavior::DoNotObliterate => "DoNotObliterate",
            ObliterationBehavior::ObliterateWithWarning => "ObliterateWithWarning",
            ObliterationBehavior::Always => "Always",
        }
    }
}

impl Command {
    /// Build from a full raw plist (as an admin would enqueue): must be a dict with CommandUUID (string) and
    /// Command (dict with RequestType string). Guards depth/size first.
    ///
    /// Other top-level keys are refused rather than silently dropped.
    pub fn from_raw_plist(bytes: &[u8]) -> Result<Command, ProtocolError> {
        check_xml_plist(bytes, DEFAULT_MAX_DEPTH, DEFAULT_MAX_BODY)?;
        let value = Value::from_reader_xml(bytes).map_err(|e| malformed(e.to_string()))?;
        let Value::Dictionary(mut top) = value else {
            return Err(malformed(format!(
                "a command must be a dict, found {}",
                kind(&value)
            )));
        };
        let uuid = match top.remove("CommandUUID") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) => return Err(malformed("CommandUUID is empty")),
            Some(other) => {
                return Err(malformed(format!(
                    "CommandUUID must be a string, found {}",
                    kind(&other)
                )));
            }
            None => return Err(malformed("missing CommandUUID")),
        };
        let body = match top.remove("Command") {
            Some(Value::Dictionary(d)) => d,
            Some(other) => {
                return Err(malformed(format!(
                    "Command must be a dict, found {}",
                    kind(&other)
                )));
            }
            None => return Err(malformed("missing Command")),
        };
        if !top.is_empty() {
            return Err(malformed(
                "only CommandUUID and Command are allowed at the top level",
            ));
        }
        let request_type = match body.get("RequestType") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => return Err(malformed("RequestType is empty")),
            Some(other) => {
                return Err(malformed(format!(
                    "RequestType must be a string, found {}",
                    kind(other)
                )));
            }
            None => return Err(malformed("missing RequestType in Command")),
        };
        Ok(Command {
            uuid,
            request_type,
            body,
        })
    }

    /// The wire plist `{CommandUUID, Command}`; `RequestType` in the Command dict is set from `request_type`.
    pub fn to_xml(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut body = self.body.clone();
        body.insert(
            "RequestType".into(),
            Value::String(self.request_type.clone()),
        );
        let mut top = Dictionary::new();
        top.insert("CommandUUID".into(), Value::String(self.uuid.clone()));
        top.insert("Command".into(), Value::Dictionary(body));
        decode::to_xml(&Value::Dictionary(top))
    }

    /// `SecurityInfo`: FileVault, SIP, bootstrap-token and secure-boot state.
    pub fn security_info(uuid: String) -> Command {
        Command::new(uuid, "SecurityInfo")
    }

    /// `UserList`: local users, including `HasSecureToken` (macOS 11+).
    pub fn user_list(uuid: String) -> Command {
        Command::new(uuid, "UserList")
    }

    /// `DeviceInformation` for the given query keys (see [`INVENTORY_DEVICE_QUERIES`]).
    pub fn device_information(uuid: String, queries: &[&str]) -> Command {
        let queries = queries
            .iter()
            .map(|q| Value::String((*q).to_owned()))
            .collect();
        Command::new(uuid, "DeviceInformation").with("Queries", Value::Array(queries))
    }

    /// `Settings` with one item: `[{Item: "MDMOptions", MDMOptions: {…}}]`, always all three keys.
    pub fn settings_mdm_options(uuid: String, options: &MdmOptions) -> Command {
        let mut mdm_options = Dictionary::new();
        for (key, value) in [
            ("BootstrapTokenAllowed", options.bootstrap_token_allowed),
            (
                "PromptUserToAllowBootstrapTokenForAuthentication",
                options.prompt_user_to_allow_bootstrap_token_for_authentication,
            ),
            (
                "ActivationLockAllowedWhileSupervised",
                options.activation_lock_allowed_while_supervised,
            ),
        ] {
            mdm_options.insert(key.into(), Value::Boolean(value));
        }
        let mut item = Dictionary::new();
        item.insert("Item".into(), Value::String("MDMOptions".into()));
        item.insert("MDMOptions".into(), Value::Dictionary(mdm_options));
        Command::new(uuid, "Settings").with("Settings", Value::Array(vec![Value::Dictionary(item)]))
    }

    /// `DeviceConfigured`: lets an ADE device waiting in Setup Assistant continue.
    pub fn device_configured(uuid: String) -> Command {
        Command::new(uuid, "DeviceConfigured")
    }

    /// `RestartDevice`; `RebuildKernelCache` makes an Apple-silicon Mac fetch the bootstrap token first.
    pub fn restart_device(
        uuid: String,
        rebuild_kernel_cache: Option<bool>,
        notify_user: Option<bool>,
    ) -> Command {
        let mut command = Command::new(uuid, "RestartDevice");
        if let Some(v) = rebuild_kernel_cache {
            command = command.with("RebuildKernelCache", Value::Boolean(v));
        }
        if let Some(v) = notify_user {
            command = command.with("NotifyUser", Value::Boolean(v));
        }
        command
    }

    /// `EraseDevice`, with the optional Find My `PIN` and `ObliterationBehavior`.
    pub fn erase_device(
        uuid: String,
        pin: Option<&str>,
        obliteration_behavior: Option<ObliterationBehavior>,
    ) -> Command {
        let mut command = Command::new(uuid, "EraseDevice");
        if let Some(pin) = pin {
            command = command.with("PIN", Value::String(pin.to_owned()));
        }
        if let Some(behavior) = obliteration_behavior {
            command = command.with(
                "ObliterationBehavior",
                Value::String(behavior.as_str().to_owned()),
            );
        }
        command
    }

    fn new(uuid: String, request_type: &str) -> Command {
        let mut body = Dictionary::new();
        body.insert("RequestType".into(), Value::String(request_type.to_owned()));
        Command {
            uuid,
            request_type: request_type.to_owned(),
            body,
        }
    }

    /// A command of `request_type` carrying `body`'s keys (builders in other modules of this crate).
    pub(crate) fn with_body(uuid: String, request_type: &str, body: Dictionary) -> Command {
        let mut command = Command::new(uuid, request_type);
        for (k, v) in body {
            command.body.insert(k, v);
        }
        command
    }

    fn with(mut self, key: &str, value: Value) -> Command {
        self.body.insert(key.to_owned(), value);
        self
    }
}

/// What a redacted value reads as.
pub const REDACTED: &str = "[redacted]";

/// Whether a Command key names a secret (case-insensitive): `PIN`, anything with password, passcode,
/// passphrase, secret or token in it (`NewPassword`, `passwordHash`, `UnlockToken`, `RegistrationSecret`),
/// and bypass codes.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "pin"
        || [
            "password",
            "passcode",
            "passphrase",
            "secret",
            "token",
            "bypasscode",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// A secret-looking key holding a value that can carry a secret: a flag or a number under such a key
/// (`BootstrapTokenAllowed`, `PasscodeMinLength`) says something *about* a secret and is not one.
fn is_secret_entry(key: &str, value: &Value) -> bool {
    is_secret_key(key)
        && !matches!(
            value,
            Value::Boolean(_) | Value::Integer(_) | Value::Real(_) | Value::Date(_)
        )
}

/// Whether `value` holds a secret-looking key at any depth, also inside data that is itself an XML plist (an
/// unsigned configuration profile, for instance). Signed or binary data is not looked into.
fn holds_secret(value: &Value, depth: usize) -> bool {
    if depth > DEFAULT_MAX_DEPTH {
        return false;
    }
    match value {
        Value::Dictionary(d) => d
            .iter()
            .any(|(k, v)| is_secret_entry(k, v) || holds_secret(v, depth + 1)),
        Value::Array(items) => items.iter().any(|v| holds_secret(v, depth + 1)),
        Value::Data(bytes) => {
            check_xml_plist(bytes, DEFAULT_MAX_DEPTH, DEFAULT_MAX_BODY).is_ok()
                && Value::from_reader_xml(&bytes[..]).is_ok_and(|v| holds_secret(&v, depth + 1))
        }
        _ => false,
    }
}

fn redact_dict(d: &Dictionary) -> Dictionary {
    d.iter()
        .map(|(k, v)| {
            let v = if is_secret_entry(k, v) {
                Value::String(REDACTED.into())
            } else {
                redact(v)
            };
            (k.clone(), v)
        })
        .collect()
}

fn redact(value: &Value) -> Value {
    match value {
        Value::Dictionary(d) => Value::Dictionary(redact_dict(d)),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::Data(bytes) => Value::String(format!("{REDACTED} ({} bytes)", bytes.len())),
        other => other.clone(),
    }
}

impl Command {
    /// Whether the command holds a secret-looking key (see [`is_secret_key`]) at any depth, also inside an
    /// embedded XML plist (an unsigned profile's payload).
    pub fn has_secret_keys(&self) -> bool {
        self.body
            .iter()
            .any(|(k, v)| is_secret_entry(k, v) || holds_secret(v, 1))
    }

    /// A copy safe to store and show: every secret-looking key's value, and every data value (it may embed
    /// one, like a profile), replaced by a `[redacted]` string. UUID and RequestType are kept.
    pub fn redacted(&self) -> Command {
        Command {
            uuid: self.uuid.clone(),
            request_type: self.request_type.clone(),
            body: redact_dict(&self.body),
        }
    }
}

fn malformed(why: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_found_at_any_depth_and_in_embedded_plists_and_redacted() {
        let erase = Command::erase_device("E1".into(), Some("123456"), None);
        assert!(erase.has_secret_keys());
        let xml = String::from_utf8(erase.redacted().to_xml().unwrap()).unwrap();
        assert!(!xml.contains("123456") && xml.contains(REDACTED), "{xml}");
        assert!(xml.contains("EraseDevice") && xml.contains("E1"));
        assert!(!Command::erase_device("E2".into(), None, None).has_secret_keys());
        assert!(!Command::security_info("S".into()).has_secret_keys());
        let raw = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>CommandUUID</key><string>R1</string>
<key>Command</key><dict><key>RequestType</key><string>RotateFileVaultKey</string>
<key>FileVaultUnlock</key><dict><key>Password</key><string>hunter2-pw</string></dict>
<key>Items</key><array><dict><key>passwordHash</key><data>AAEC</data></dict></array></dict></dict></plist>"#;
        let cmd = Command::from_raw_plist(raw).unwrap();
        assert!(cmd.has_secret_keys());
        let red = String::from_utf8(cmd.redacted().to_xml().unwrap()).unwrap();
        assert!(
            !red.contains("hunter2-pw") && !red.contains("AAEC"),
            "{red}"
        );
        // A profile (data) holding a password is found; its bytes never survive redaction.
        let profile = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>PayloadContent</key><array><dict>
<key>Password</key><string>wifi-pw-77</string></dict></array></dict></plist>"#;
        let mut install = Command::security_info("I1".into());
        install.request_type = "InstallProfile".into();
        install
            .body
            .insert("Payload".into(), Value::Data(profile.to_vec()));
        assert!(install.has_secret_keys());
        let red = String::from_utf8(install.redacted().to_xml().unwrap()).unwrap();
        assert!(
            !red.contains("wifi-pw-77") && !red.contains("<data>"),
            "{red}"
        );
        // Garbage data is not a secret and not an error.
        install
            .body
            .insert("Payload".into(), Value::Data(b"\x00\x01not xml".to_vec()));
        assert!(!install.has_secret_keys());
        for k in [
            "PIN",
            "pin",
            "NewPasscode",
            "UnlockToken",
            "RegistrationSecret",
            "CurrentPassword",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["RequestType", "Queries", "ObliterationBehavior", "Pinned"] {
            assert!(!is_secret_key(k), "{k}");
        }
        // Flags and numbers under token-ish names are settings about a secret, not secrets.
        let mut options = Dictionary::new();
        options.insert("BootstrapTokenAllowed".into(), Value::Boolean(true));
        options.insert("PasscodeMinLength".into(), Value::Integer(6.into()));
        let mut settings = Dictionary::new();
        settings.insert("MDMOptions".into(), Value::Dictionary(options.clone()));
        let mut body = Dictionary::new();
        body.insert("RequestType".into(), "Settings".into());
        body.insert(
            "Settings".into(),
            Value::Array(vec![Value::Dictionary(settings)]),
        );
        let cmd = Command {
            uuid: "U".into(),
            request_type: "Settings".into(),
            body,
        };
        assert!(!cmd.has_secret_keys());
        assert_eq!(cmd.redacted().body, cmd.body, "nothing to redact");
        let mut unlock = cmd.clone();
        unlock
            .body
            .insert("UnlockToken".into(), Value::Data(b"x".to_vec()));
        assert!(unlock.has_secret_keys());
    }

    const IDLE_REPORT: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__mdm-signature.2.body.plist");
    const DEVICE_INFORMATION: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__DeviceInformation.1.plist");
    const ZENTRAL_SECURITY_INFO: &[u8] =
        include_bytes!("../../../testdata/captures/zentral__security_info.plist");

    fn report(keys: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>{keys}</dict></plist>")
            .into_bytes()
    }

    fn reparse(command: &Command) -> Dictionary {
        let xml = command.to_xml().unwrap();
        plist::Value::from_reader_xml(&xml[..])
            .unwrap()
            .into_dictionary()
            .unwrap()
    }

    #[test]
    fn idle_report_capture_parses_without_a_command_uuid() {
        let r = parse_report(IDLE_REPORT).unwrap();
        assert_eq!(r.status, Status::Idle);
        assert_eq!(r.command_uuid, None);
        assert_eq!(
            r.identity.device_id(),
            Some("D4D56083-BFB0-5047-8BDF-2727BACDC59B")
        );
        assert!(r.error_chain.is_empty());
        assert_eq!(r.raw.len(), 2);
    }

    #[test]
    fn acknowledged_reports_from_captures_parse() {
        let r = parse_report(DEVICE_INFORMATION).unwrap();
        assert_eq!(r.status, Status::Acknowledged);
        assert_eq!(
            r.command_uuid.as_deref(),
            Some("76eda240-5488-4989-8339-f2ae160113c4")
        );
        assert!(r.raw.contains_key("QueryResponses"));
        let r = parse_report(ZENTRAL_SECURITY_INFO).unwrap();
        assert_eq!(
            r.command_uuid.as_deref(),
            Some("9A105E87-EC35-4F65-A265-423CFB92D624")
        );
        assert_eq!(
            r.identity.udid.as_deref(),
            Some("9353BC9A-5CF9-4C9E-9AD4-8D1E41D5FE3E")
        );
    }

    #[test]
    fn error_report_carries_its_error_chain() {
        let body = report(
            "<key>Status</key><string>Error</string><key>CommandUUID</key><string>C1</string>\
             <key>UDID</key><string>U</string><key>ErrorChain</key><array><dict>\
             <key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string>\
             <key>LocalizedDescription</key><string>Nope</string>\
             <key>USEnglishDescription</key><string>Nope</string></dict></array>",
        );
        let r = parse_report(&body).unwrap();
        assert_eq!(r.status, Status::Error);
        assert_eq!(
            r.error_chain,
            vec![ErrorChainItem {
                error_code: Some(12021),
                error_domain: Some("MCMDMErrorDomain".into()),
                localized_description: Some("Nope".into()),
                us_english_description: Some("Nope".into()),
            }]
        );
    }

    #[test]
    fn report_without_status_or_with_unknown_status_is_refused() {
        let missing = report("<key>UDID</key><string>U</string>");
        assert!(matches!(
            parse_report(&missing),
            Err(ProtocolError::Malformed(_))
        ));
        let unknown = report(
            "<key>Status</key><string>Done</string><key>CommandUUID</key><string>C</string>",
        );
        match parse_report(&unknown) {
            Err(ProtocolError::UnknownStatus(s)) => assert_eq!(s, "Done"),
            other => panic!("{other:?}"),
        }
        let mistyped = report("<key>Status</key><true/>");
        assert!(matches!(
            parse_report(&mistyped),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn non_idle_report_without_command_uuid_is_refused() {
        for status in ["Acknowledged", "Error", "CommandFormatError", "NotNow"] {
            let body = report(&format!("<key>Status</key><string>{status}</string>"));
            assert!(
                matches!(parse_report(&body), Err(ProtocolError::Malformed(_))),
                "{status}"
            );
        }
        let mistyped = report(
            "<key>Status</key><string>NotNow</string><key>CommandUUID</key><integer>1</integer>",
        );
        assert!(matches!(
            parse_report(&mistyped),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_error_chain_is_refused() {
        let body = report(
            "<key>Status</key><string>Error</string><key>CommandUUID</key><string>C</string>\
             <key>ErrorChain</key><array><dict><key>ErrorCode</key><string>x</string></dict></array>",
        );
        let err = parse_report(&body).unwrap_err().to_string();
        assert!(
            err.contains("ErrorChain item 0") && err.contains("`ErrorCode`"),
            "{err}"
        );
    }

    #[test]
    fn hostile_report_bodies_get_clean_errors() {
        assert!(matches!(parse_report(b""), Err(ProtocolError::Empty)));
        assert!(matches!(
            parse_report(b"bplist00\x08"),
            Err(ProtocolError::NotXml)
        ));
        let deep = report(&format!(
            "<key>X</key>{}",
            "<dict><key>a</key>".repeat(100_000)
        ));
        assert!(matches!(
            parse_report(&deep),
            Err(ProtocolError::TooDeep { .. })
        ));
        let truncated = &IDLE_REPORT[..IDLE_REPORT.len() - 20];
        assert!(matches!(
            parse_report(truncated),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn status_strings_round_trip() {
        for status in [
            Status::Idle,
            Status::Acknowledged,
            Status::Error,
            Status::CommandFormatError,
            Status::NotNow,
        ] {
            assert_eq!(Status::parse(status.as_str()).unwrap(), status);
        }
        assert!(matches!(
            Status::parse("idle"),
            Err(ProtocolError::UnknownStatus(_))
        ));
    }

    #[test]
    fn report_debug_lists_keys_but_not_values() {
        let body = report(
            "<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>C</string>\
             <key>SecurityInfo</key><dict><key>FDE_PersonalRecoveryKeyCMS</key><data>U0VDUkVU</data></dict>",
        );
        let debug = format!("{:?}", parse_report(&body).unwrap());
        assert!(debug.contains("SecurityInfo"), "{debug}");
        assert!(
            !debug.contains("FDE_PersonalRecoveryKeyCMS") && !debug.contains("83, 69"),
            "{debug}"
        );
    }

    #[test]
    fn builders_produce_xml_with_the_right_uuid_and_request_type() {
        let commands = [
            (Command::security_info("u1".into()), "SecurityInfo"),
            (Command::user_list("u2".into()), "UserList"),
            (
                Command::device_information("u3".into(), INVENTORY_DEVICE_QUERIES),
                "DeviceInformation",
            ),
            (
                Command::settings_mdm_options("u4".into(), &MdmOptions::default()),
                "Settings",
            ),
            (Command::device_configured("u5".into()), "DeviceConfigured"),
            (
                Command::restart_device("u6".into(), None, None),
                "RestartDevice",
            ),
            (
                Command::erase_device("u7".into(), None, None),
                "EraseDevice",
            ),
        ];
        for (i, (command, request_type)) in commands.iter().enumerate() {
            let top = reparse(command);
            let uuid = format!("u{}", i + 1);
            assert_eq!(top.get("CommandUUID"), Some(&Value::String(uuid)));
            let body = top.get("Command").and_then(Value::as_dictionary).unwrap();
            assert_eq!(
                body.get("RequestType"),
                Some(&Value::String((*request_type).into()))
            );
            assert_eq!(top.len(), 2);
            assert_eq!(
                &Command::from_raw_plist(&command.to_xml().unwrap()).unwrap(),
                command
            );
        }
    }

    #[test]
    fn device_information_lists_its_queries() {
        let top = reparse(&Command::device_information(
            "u".into(),
            &["IsAppleSilicon", "OSVersion"],
        ));
        let queries = top["Command"].as_dictionary().unwrap()["Queries"]
            .as_array()
            .unwrap();
        assert_eq!(
            queries,
            &vec![
                Value::String("IsAppleSilicon".into()),
                Value::String("OSVersion".into())
            ]
        );
    }

    #[test]
    fn settings_mdm_options_always_sends_every_key() {
        let options = MdmOptions {
            bootstrap_token_allowed: true,
            prompt_user_to_allow_bootstrap_token_for_authentication: false,
            activation_lock_allowed_while_supervised: false,
        };
        let top = reparse(&Command::settings_mdm_options("u".into(), &options));
        let settings = top["Command"].as_dictionary().unwrap()["Settings"]
            .as_array()
            .unwrap();
        assert_eq!(settings.len(), 1);
        let item = settings[0].as_dictionary().unwrap();
        assert_eq!(item["Item"], Value::String("MDMOptions".into()));
        let mdm = item["MDMOptions"].as_dictionary().unwrap();
        assert_eq!(
            mdm.get("BootstrapTokenAllowed"),
            Some(&Value::Boolean(true))
        );
        assert_eq!(
            mdm.get("PromptUserToAllowBootstrapTokenForAuthentication"),
            Some(&Value::Boolean(false))
        );
        assert_eq!(
            mdm.get("ActivationLockAllowedWhileSupervised"),
            Some(&Value::Boolean(false))
        );
        assert_eq!(mdm.len(), 3);
    }

    #[test]
    fn restart_and_erase_write_their_options() {
        let top = reparse(&Command::restart_device(
            "u".into(),
            Some(true),
            Some(false),
        ));
        let body = top["Command"].as_dictionary().unwrap();
        assert_eq!(body["RebuildKernelCache"], Value::Boolean(true));
        assert_eq!(body["NotifyUser"], Value::Boolean(false));
        for (behavior, wire) in [
            (ObliterationBehavior::Default, "Default"),
            (ObliterationBehavior::DoNotObliterate, "DoNotObliterate"),
            (
                ObliterationBehavior::ObliterateWithWarning,
                "ObliterateWithWarning",
            ),
            (ObliterationBehavior::Always, "Always"),
        ] {
            let top = reparse(&Command::erase_device(
                "u".into(),
                Some("123456"),
                Some(behavior),
            ));
            let body = top["Command"].as_dictionary().unwrap();
            assert_eq!(body["PIN"], Value::String("123456".into()));
            assert_eq!(body["ObliterationBehavior"], Value::String(wire.into()));
        }
    }

    #[test]
    fn command_debug_does_not_show_the_erase_pin() {
        let debug = format!(
            "{:?}",
            Command::erase_device("u".into(), Some("918273"), None)
        );
        assert!(
            debug.contains("PIN") && !debug.contains("918273"),
            "{debug}"
        );
    }

    #[test]
    fn from_raw_plist_accepts_an_admin_command() {
        let raw = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>CommandUUID</key><string>abc</string>
  <key>Command</key><dict><key>RequestType</key><string>ProfileList</string><key>ManagedOnly</key><true/></dict>
</dict></plist>"#;
        let c = Command::from_raw_plist(raw).unwrap();
        assert_eq!(c.uuid, "abc");
        assert_eq!(c.request_type, "ProfileList");
        assert_eq!(c.body.get("ManagedOnly"), Some(&Value::Boolean(true)));
    }

    #[test]
    fn from_raw_plist_refuses_bad_shapes() {
        let wrap = |inner: &str| format!("<plist><dict>{inner}</dict></plist>").into_bytes();
        let cases: Vec<Vec<u8>> = vec![
            b"<plist><array/></plist>".to_vec(),
            wrap("<key>Command</key><dict><key>RequestType</key><string>X</string></dict>"),
            wrap(
                "<key>CommandUUID</key><integer>1</integer><key>Command</key><dict><key>RequestType</key><string>X</string></dict>",
            ),
            wrap(
                "<key>CommandUUID</key><string> </string><key>Command</key><dict><key>RequestType</key><string>X</string></dict>",
            ),
            wrap("<key>CommandUUID</key><string>u</string>"),
            wrap("<key>CommandUUID</key><string>u</string><key>Command</key><string>X</string>"),
            wrap("<key>CommandUUID</key><string>u</string><key>Command</key><dict/>"),
            wrap(
                "<key>CommandUUID</key><string>u</string><key>Command</key><dict><key>RequestType</key><true/></dict>",
            ),
            wrap(
                "<key>CommandUUID</key><string>u</string><key>Command</key><dict><key>RequestType</key><string>X</string></dict><key>Extra</key><true/>",
            ),
        ];
        for body in cases {
            assert!(
                matches!(
                    Command::from_raw_plist(&body),
                    Err(ProtocolError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn from_raw_plist_guards_depth_size_and_format() {
        let deep = format!(
            "<plist><dict><key>Command</key>{}</dict></plist>",
            "<array>".repeat(100_000)
        );
        assert!(matches!(
            Command::from_raw_plist(deep.as_bytes()),
            Err(ProtocolError::TooDeep { .. })
        ));
        assert!(matches!(
            Command::from_raw_plist(b""),
            Err(ProtocolError::Empty)
        ));
        assert!(matches!(
            Command::from_raw_plist(b"bplist00"),
            Err(ProtocolError::NotXml)
        ));
    }

    #[test]
    fn to_xml_writes_request_type_from_the_field() {
        let mut c = Command::security_info("u".into());
        c.request_type = "UserList".into();
        let top = reparse(&c);
        assert_eq!(
            top["Command"].as_dictionary().unwrap()["RequestType"],
            Value::String("UserList".into())
        );
    }
}
