//! Typed check-in messages (`PUT` to the check-in URL), keyed by `MessageType`.
//!
//! Guarantees: [`parse_checkin`] guards the body before parsing (see [`crate::guard`]); every key is
//! optional unless Apple requires it, and absent keys stay `None` (an absent `AwaitingConfiguration` is
//! not `false`); the bootstrap token and unlock token are `vault::Secret`s, so `Debug` never shows them.
//! `Serialize` writes them on purpose: it exists to produce the check-in wire plist (simulated devices),
//! not for logs or APIs.
//!
//! Decode device input with [`parse_checkin`] only: `plist::from_bytes::<CheckinMessage>` skips the guard,
//! and the message structs cannot be decoded by plist on their own (their `flatten`ed identity makes
//! plist expect `Option`s written as `{Some: v}`); the tagged enum buffers the map first, which works.

use plist::Value;
use serde::{Deserialize, Serialize};
use vault::Secret;

use crate::decode::{self, decode_keeping};
use crate::error::{ProtocolError, echo};

mod wire;

/// Identity keys shared by all check-ins (device channel: UDID; user enrollment: EnrollmentID; macOS user
/// channel adds UserID/UserShortName/UserLongName; user-enrollment user channel: EnrollmentUserID).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Identity {
    #[serde(
        rename = "UDID",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub udid: Option<String>,
    #[serde(
        rename = "EnrollmentID",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub enrollment_id: Option<String>,
    #[serde(
        rename = "EnrollmentUserID",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub enrollment_user_id: Option<String>,
    #[serde(
        rename = "UserID",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub user_id: Option<String>,
    #[serde(
        rename = "UserShortName",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub user_short_name: Option<String>,
    #[serde(
        rename = "UserLongName",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub user_long_name: Option<String>,
}

impl Identity {
    /// The device identifier: UDID, else EnrollmentID.
    pub fn device_id(&self) -> Option<&str> {
        self.udid.as_deref().or(self.enrollment_id.as_deref())
    }

    /// True when this message is on a user channel (UserID or EnrollmentUserID present).
    pub fn is_user_channel(&self) -> bool {
        self.user_id.is_some() || self.enrollment_user_id.is_some()
    }
}

/// First check-in of an enrollment. Unknown keys (e.g. `Challenge`, `IMEI`) are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Authenticate {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "Topic",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub topic: Option<String>,
    #[serde(
        rename = "SerialNumber",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub serial_number: Option<String>,
    #[serde(
        rename = "OSVersion",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "BuildVersion",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub build_version: Option<String>,
    #[serde(
        rename = "ProductName",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub product_name: Option<String>,
    #[serde(
        rename = "Model",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub model: Option<String>,
    #[serde(
        rename = "ModelName",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub model_name: Option<String>,
    #[serde(
        rename = "DeviceName",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub device_name: Option<String>,
    /// Keys not named above (never `MessageType`). Values keep their plist type, except `<date>`, which
    /// arrives as its ISO-8601 string (serde buffers the message before decoding it).
    #[serde(flatten)]
    pub extra: plist::Dictionary,
}

/// Push token and push magic for a channel; may repeat at any time and always overwrites.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TokenUpdate {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "Topic",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub topic: Option<String>,
    /// APNs device token (raw bytes; hex-encode for the APNs URL).
    #[serde(
        rename = "Token",
        default,
        deserialize_with = "wire::data",
        serialize_with = "wire::some_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<Vec<u8>>,
    #[serde(
        rename = "PushMagic",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub push_magic: Option<String>,
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub awaiting_configuration: Option<bool>,
    #[serde(
        rename = "NotOnConsole",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub not_on_console: Option<bool>,
    /// iOS only; clears a passcode, so it is a secret.
    #[serde(
        rename = "UnlockToken",
        default,
        deserialize_with = "wire::secret_data",
        serialize_with = "vault::secret::bytes_opt::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub unlock_token: Option<Secret<Vec<u8>>>,
}

/// The device left management (best effort, never retried).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct CheckOut {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "Topic",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub topic: Option<String>,
}

/// The device escrows (or, with no or an empty token, clears) its bootstrap token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SetBootstrapToken {
    #[serde(flatten)]
    pub identity: Identity,
    /// Absent or empty means "clear the escrowed token"; see [`SetBootstrapToken::token_to_store`].
    #[serde(
        rename = "BootstrapToken",
        default,
        deserialize_with = "wire::secret_data",
        serialize_with = "vault::secret::bytes_opt::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub bootstrap_token: Option<Secret<Vec<u8>>>,
    /// `None` when the key is absent (not defaulted to `false`).
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub awaiting_configuration: Option<bool>,
}

impl SetBootstrapToken {
    /// The token to escrow, or `None` when the device asks to clear it (key absent or zero-length).
    pub fn token_to_store(&self) -> Option<&Secret<Vec<u8>>> {
        self.bootstrap_token.as_ref().filter(|t| !t.is_empty())
    }
}

/// The device asks for its escrowed bootstrap token.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GetBootstrapToken {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub awaiting_configuration: Option<bool>,
}

/// User-channel authentication (first call without, second with `DigestResponse`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct UserAuthenticate {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "DigestResponse",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub digest_response: Option<String>,
}

/// Declarative-management transport (`Data` is JSON, base64 on the wire).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DeclarativeManagement {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "Endpoint",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub endpoint: Option<String>,
    #[serde(
        rename = "Data",
        default,
        deserialize_with = "wire::data",
        serialize_with = "wire::some_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Vec<u8>>,
}

/// The device asks for a service token (`com.apple.maid`, `com.apple.watch.pairing`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GetToken {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(
        rename = "TokenServiceType",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub token_service_type: Option<String>,
    #[serde(
        rename = "TokenParameters",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::some"
    )]
    pub token_parameters: Option<plist::Dictionary>,
}

/// A check-in message; the variant name is the wire `MessageType`. Debug never reveals tokens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "MessageType")]
pub enum CheckinMessage {
    Authenticate(Authenticate),
    TokenUpdate(TokenUpdate),
    CheckOut(CheckOut),
    SetBootstrapToken(SetBootstrapToken),
    GetBootstrapToken(GetBootstrapToken),
    UserAuthenticate(UserAuthenticate),
    DeclarativeManagement(DeclarativeManagement),
    GetToken(GetToken),
}

impl CheckinMessage {
    /// The identity keys of the message, whatever its type.
    pub fn identity(&self) -> &Identity {
        match self {
            Self::Authenticate(m) => &m.identity,
            Self::TokenUpdate(m) => &m.identity,
            Self::CheckOut(m) => &m.identity,
            Self::SetBootstrapToken(m) => &m.identity,
            Self::GetBootstrapToken(m) => &m.identity,
            Self::UserAuthenticate(m) => &m.identity,
            Self::DeclarativeManagement(m) => &m.identity,
            Self::GetToken(m) => &m.identity,
        }
    }

    /// The wire `MessageType` ("Authenticate", ...).
    pub fn message_type(&self) -> &'static str {
        match self {
            Self::Authenticate(_) => "Authenticate",
            Self::TokenUpdate(_) => "TokenUpdate",
            Self::CheckOut(_) => "CheckOut",
            Self::SetBootstrapToken(_) => "SetBootstrapToken",
            Self::GetBootstrapToken(_) => "GetBootstrapToken",
            Self::UserAuthenticate(_) => "UserAuthenticate",
            Self::DeclarativeManagement(_) => "DeclarativeManagement",
            Self::GetToken(_) => "GetToken",
        }
    }

    /// The message as a device would send it (XML plist, tokens included): for simulated devices and tests.
    pub fn to_xml(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        plist::to_writer_xml(&mut out, self).map_err(|e| ProtocolError::Encode(e.to_string()))?;
        Ok(out)
    }
}

/// Runs guard::check_xml_plist(body, DEFAULT_MAX_DEPTH, DEFAULT_MAX_BODY) first, then parses.
/// Unknown MessageType -> UnknownMessageType; missing -> MissingMessageType; wrong value types -> Malformed.
/// The longest UDID, EnrollmentID or UserID escrowd accepts. Apple's are 25 (Apple silicon UDIDs), 36 (UUIDs)
/// or 40 (older hex UDIDs) characters; EnrollmentIDs are shorter.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// Checks an identifier a device names itself by (UDID, EnrollmentID, UserID) before it becomes a key:
/// printable ASCII, 1 to [`MAX_DEVICE_ID_LEN`] characters, no `:` or `/` (escrowd builds user-channel and
/// pending-identity ids with them). The error says what is wrong without echoing the value.
pub fn validate_device_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > MAX_DEVICE_ID_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_DEVICE_ID_LEN} are accepted",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "contains {:?}; only printable ASCII without spaces is accepted",
            c.escape_default().to_string()
        ));
    }
    if id.contains([':', '/']) {
        return Err("contains ':' or '/', which no Apple identifier has".into());
    }
    Ok(())
}

pub fn parse_checkin(body: &[u8]) -> Result<CheckinMessage, ProtocolError> {
    let value = decode::guarded_dict(body)?;
    let message_type = match value.as_dictionary().and_then(|d| d.get("MessageType")) {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(ProtocolError::MissingMessageType),
    };
    if !MESSAGE_TYPES.contains(&message_type) {
        return Err(ProtocolError::UnknownMessageType(echo(message_type)));
    }
    // Decoded through the tagged enum: serde buffers the map first, which is what makes `flatten` and
    // `Option` fields work with plist (its map deserializer expects `Option`s written as `{Some: v}`).
    decode_keeping(&value, message_type, &["MessageType"])
}

/// Every `MessageType` [`parse_checkin`] understands.
pub const MESSAGE_TYPES: &[&str] = &[
    "Authenticate",
    "TokenUpdate",
    "CheckOut",
    "SetBootstrapToken",
    "GetBootstrapToken",
    "UserAuthenticate",
    "DeclarativeManagement",
    "GetToken",
];

/// Reply body for GetBootstrapToken: XML plist `<dict><key>BootstrapToken</key><data>…</data></dict>`;
/// with None it must still write the key with empty data (`<data></data>`).
///
/// Written by hand (the plist writer turns empty data into `<data>` + newline + `</data>`). The returned
/// bytes contain the token (base64): treat them as secret and do not log them.
pub fn get_bootstrap_token_response(
    token: Option<&Secret<Vec<u8>>>,
) -> Result<Vec<u8>, ProtocolError> {
    use base64::Engine as _;
    const HEAD: &str = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" ",
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
        "<plist version=\"1.0\">\n<dict>\n\t<key>BootstrapToken</key>\n\t<data>",
    );
    const TAIL: &str = "</data>\n</dict>\n</plist>\n";
    let token = token.map_or(&[][..], |t| t.expose().as_slice());
    let encoded_len = base64::encoded_len(token.len(), true)
        .ok_or_else(|| ProtocolError::Encode("bootstrap token too large to encode".into()))?;
    let mut out = Vec::with_capacity(HEAD.len() + encoded_len + TAIL.len());
    out.extend_from_slice(HEAD.as_bytes());
    let start = out.len();
    out.resize(start + encoded_len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(token, &mut out[start..])
        .map_err(|e| ProtocolError::Encode(e.to_string()))?;
    out.truncate(start + written);
    out.extend_from_slice(TAIL.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHENTICATE_1: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__Authenticate.1.plist");
    const AUTHENTICATE_2: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__Authenticate.2.plist");
    const TOKEN_UPDATE_1: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__TokenUpdate.1.plist");
    const TOKEN_UPDATE_2: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__TokenUpdate.2.plist");
    const TOKEN_UPDATE_USER: &[u8] =
        include_bytes!("../../../testdata/captures/commandment__TokenUpdate.10.12.2-user.plist");

    const HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">"#;

    fn checkin(keys: &str) -> Vec<u8> {
        format!("{HEADER}<dict>{keys}</dict></plist>").into_bytes()
    }

    const SECRET_TOKEN: &[u8] = b"BOOTSTRAP-TOKEN-SECRET-BYTES";

    fn set_bootstrap_token(token: Option<&[u8]>) -> CheckinMessage {
        CheckinMessage::SetBootstrapToken(SetBootstrapToken {
            identity: Identity {
                udid: Some("UDID-1".into()),
                ..Identity::default()
            },
            bootstrap_token: token.map(|t| Secret::new(t.to_vec())),
            awaiting_configuration: Some(true),
        })
    }

    #[test]
    fn authenticate_capture_from_ipad_parses() {
        let CheckinMessage::Authenticate(m) = parse_checkin(AUTHENTICATE_1).unwrap() else {
            panic!("not Authenticate")
        };
        assert_eq!(
            m.identity.device_id(),
            Some("663b07bb783e9ade1dae4fbb92ea12afc0ce5b69")
        );
        assert_eq!(m.serial_number.as_deref(), Some("F5JM992LF193"));
        assert_eq!(m.os_version.as_deref(), Some("9.3.5"));
        assert_eq!(m.build_version.as_deref(), Some("13G36"));
        assert_eq!(m.product_name.as_deref(), Some("iPad2,5"));
        assert_eq!(
            m.topic.as_deref(),
            Some("com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9")
        );
        assert_eq!(m.device_name, None);
        assert!(m.extra.is_empty(), "{:?}", m.extra);
    }

    #[test]
    fn authenticate_capture_from_mac_keeps_the_challenge_data_in_extra() {
        let msg = parse_checkin(AUTHENTICATE_2).unwrap();
        assert_eq!(msg.message_type(), "Authenticate");
        let CheckinMessage::Authenticate(m) = msg else {
            panic!("not Authenticate")
        };
        assert_eq!(
            m.identity.udid.as_deref(),
            Some("66ADE930-5FDF-5EC4-8429-15640684C489")
        );
        assert_eq!(m.device_name.as_deref(), Some("Fruit"));
        assert_eq!(m.model.as_deref(), Some("iMac14,2"));
        assert_eq!(m.model_name.as_deref(), Some("iMac"));
        assert_eq!(m.serial_number.as_deref(), Some("C02MT66KFLHH"));
        assert_eq!(m.extra.len(), 1, "{:?}", m.extra);
        assert_eq!(
            m.extra.get("Challenge"),
            Some(&Value::Data(b"apple".to_vec()))
        );
    }

    #[test]
    fn token_update_capture_from_mac_has_push_magic_and_token() {
        let CheckinMessage::TokenUpdate(m) = parse_checkin(TOKEN_UPDATE_2).unwrap() else {
            panic!("not TokenUpdate")
        };
        assert_eq!(
            m.push_magic.as_deref(),
            Some("888CEB39-BFFA-40F6-89FA-B60752EB63C2")
        );
        assert_eq!(m.token.as_ref().map(Vec::len), Some(32));
        assert_eq!(m.token.as_ref().map(|t| t[0]), Some(0x1b));
        assert_eq!(m.awaiting_configuration, Some(false));
        assert_eq!(m.not_on_console, None);
        assert!(m.unlock_token.is_none());
        assert!(!m.identity.is_user_channel());
    }

    #[test]
    fn token_update_capture_from_ipad_keeps_the_unlock_token_secret() {
        let msg = parse_checkin(TOKEN_UPDATE_1).unwrap();
        let CheckinMessage::TokenUpdate(m) = &msg else {
            panic!("not TokenUpdate")
        };
        let unlock = m.unlock_token.as_ref().unwrap();
        assert!(unlock.expose().starts_with(b"DATA"));
        assert_eq!(
            m.push_magic.as_deref(),
            Some("CEFDF0BD-E342-4A27-8742-E930EA116B0A")
        );
        let debug = format!("{msg:?}");
        assert!(
            debug.contains("[REDACTED]") && !debug.contains("DATA\\0"),
            "{debug}"
        );
        assert!(
            !debug.contains("68, 65, 84, 65"),
            "unlock token bytes leaked: {debug}"
        );
    }

    #[test]
    fn user_channel_token_update_capture_has_user_identity() {
        let msg = parse_checkin(TOKEN_UPDATE_USER).unwrap();
        let id = msg.identity();
        assert!(id.is_user_channel());
        assert_eq!(id.user_short_name.as_deref(), Some("cjoe"));
        assert_eq!(id.user_long_name.as_deref(), Some("Commando Joe"));
        assert_eq!(
            id.user_id.as_deref(),
            Some("A522C2FB-D0BA-487E-BBC6-BE0DB2DC7883")
        );
        assert_eq!(id.device_id(), Some("E3568F17-92ED-450A-8904-C3BF4CB7E9A5"));
        let CheckinMessage::TokenUpdate(m) = msg else {
            panic!("not TokenUpdate")
        };
        assert_eq!(m.not_on_console, Some(false));
        assert_eq!(m.awaiting_configuration, None);
    }

    #[test]
    fn authenticate_extra_keeps_unknown_keys_of_every_type() {
        let body = checkin(
            "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>u</string>\
             <key>IMEI</key><string>35 1234</string><key>Count</key><integer>-3</integer>\
             <key>Ratio</key><real>1.5</real><key>Nested</key><dict><key>x</key><data>AAE=</data></dict>\
             <key>When</key><date>2020-01-01T00:00:00Z</date>",
        );
        let CheckinMessage::Authenticate(m) = parse_checkin(&body).unwrap() else {
            panic!("not Authenticate")
        };
        assert_eq!(m.extra.get("IMEI"), Some(&Value::String("35 1234".into())));
        assert_eq!(m.extra.get("Count"), Some(&Value::Integer((-3).into())));
        assert_eq!(m.extra.get("Ratio"), Some(&Value::Real(1.5)));
        let nested = m
            .extra
            .get("Nested")
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(nested.get("x"), Some(&Value::Data(vec![0, 1])));
        // Dates pass through serde's buffering as their XML text.
        assert_eq!(
            m.extra.get("When"),
            Some(&Value::String("2020-01-01T00:00:00Z".into()))
        );
        assert!(!m.extra.contains_key("MessageType") && !m.extra.contains_key("UDID"));
    }

    #[test]
    fn device_id_falls_back_to_enrollment_id() {
        let id = Identity {
            enrollment_id: Some("E1".into()),
            enrollment_user_id: Some("U1".into()),
            ..Identity::default()
        };
        assert_eq!(id.device_id(), Some("E1"));
        assert!(id.is_user_channel());
        assert_eq!(Identity::default().device_id(), None);
        assert!(!Identity::default().is_user_channel());
    }

    #[test]
    fn set_bootstrap_token_with_a_token_round_trips() {
        let body = set_bootstrap_token(Some(SECRET_TOKEN)).to_xml().unwrap();
        let CheckinMessage::SetBootstrapToken(m) = parse_checkin(&body).unwrap() else {
            panic!("not SetBootstrapToken")
        };
        assert_eq!(
            m.token_to_store().map(|t| t.expose().as_slice()),
            Some(SECRET_TOKEN)
        );
        assert_eq!(m.awaiting_configuration, Some(true));
        assert_eq!(m.identity.udid.as_deref(), Some("UDID-1"));
    }

    #[test]
    fn set_bootstrap_token_with_empty_data_means_clear() {
        let body = checkin(
            "<key>MessageType</key><string>SetBootstrapToken</string>\
             <key>UDID</key><string>U</string><key>BootstrapToken</key><data></data>",
        );
        let CheckinMessage::SetBootstrapToken(m) = parse_checkin(&body).unwrap() else {
            panic!("not SetBootstrapToken")
        };
        assert_eq!(m.bootstrap_token.as_ref().map(|t| t.len()), Some(0));
        assert!(m.token_to_store().is_none());
        let reencoded = set_bootstrap_token(Some(b"")).to_xml().unwrap();
        let CheckinMessage::SetBootstrapToken(m) = parse_checkin(&reencoded).unwrap() else {
            panic!("not SetBootstrapToken")
        };
        assert!(m.bootstrap_token.is_some() && m.token_to_store().is_none());
    }

    #[test]
    fn set_bootstrap_token_without_the_key_means_clear_and_awaiting_configuration_stays_none() {
        let body = checkin(
            "<key>MessageType</key><string>SetBootstrapToken</string><key>UDID</key><string>U</string>",
        );
        let CheckinMessage::SetBootstrapToken(m) = parse_checkin(&body).unwrap() else {
            panic!("not SetBootstrapToken")
        };
        assert!(m.bootstrap_token.is_none() && m.token_to_store().is_none());
        assert_eq!(m.awaiting_configuration, None);
        let reencoded = set_bootstrap_token(None).to_xml().unwrap();
        assert!(
            !String::from_utf8(reencoded)
                .unwrap()
                .contains("BootstrapToken</key>")
        );
    }

    #[test]
    fn set_bootstrap_token_debug_does_not_contain_the_token() {
        let msg = set_bootstrap_token(Some(SECRET_TOKEN));
        let debug = format!("{msg:?}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
        assert!(!debug.contains("BOOTSTRAP-TOKEN-SECRET"), "{debug}");
        let bytes_as_list = format!("{:?}", SECRET_TOKEN);
        assert!(!debug.contains(&bytes_as_list[1..20]), "{debug}");
    }

    #[test]
    fn get_bootstrap_token_with_and_without_awaiting_configuration() {
        for (keys, expected) in [
            ("<key>AwaitingConfiguration</key><true/>", Some(true)),
            ("<key>AwaitingConfiguration</key><false/>", Some(false)),
            ("", None),
        ] {
            let body = checkin(&format!(
                "<key>MessageType</key><string>GetBootstrapToken</string>{keys}"
            ));
            let CheckinMessage::GetBootstrapToken(m) = parse_checkin(&body).unwrap() else {
                panic!("not GetBootstrapToken")
            };
            assert_eq!(m.awaiting_configuration, expected);
        }
    }

    #[test]
    fn get_bootstrap_token_response_carries_the_token() {
        for bytes in [
            SECRET_TOKEN.to_vec(),
            (0..=255u8).cycle().take(1001).collect(),
        ] {
            let token = Secret::new(bytes.clone());
            let body = get_bootstrap_token_response(Some(&token)).unwrap();
            let dict = plist::Value::from_reader_xml(&body[..])
                .unwrap()
                .into_dictionary()
                .unwrap();
            assert_eq!(dict.len(), 1);
            assert_eq!(dict.get("BootstrapToken"), Some(&Value::Data(bytes)));
        }
    }

    #[test]
    fn get_bootstrap_token_response_without_a_token_has_empty_data() {
        let body = get_bootstrap_token_response(None).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("<key>BootstrapToken</key>\n\t<data></data>"),
            "{text}"
        );
        let dict = plist::Value::from_reader_xml(&body[..])
            .unwrap()
            .into_dictionary()
            .unwrap();
        assert_eq!(dict.get("BootstrapToken"), Some(&Value::Data(Vec::new())));
    }

    #[test]
    fn every_message_type_round_trips_through_to_xml() {
        let identity = Identity {
            udid: Some("U".into()),
            ..Identity::default()
        };
        let mut params = plist::Dictionary::new();
        params.insert("PhoneUDID".into(), Value::String("P".into()));
        let messages = [
            CheckinMessage::Authenticate(Authenticate {
                identity: identity.clone(),
                serial_number: Some("S".into()),
                ..Authenticate::default()
            }),
            CheckinMessage::TokenUpdate(TokenUpdate {
                identity: identity.clone(),
                token: Some(vec![1, 2, 3]),
                push_magic: Some("M".into()),
                ..TokenUpdate::default()
            }),
            CheckinMessage::CheckOut(CheckOut {
                identity: identity.clone(),
                topic: Some("T".into()),
            }),
            set_bootstrap_token(Some(b"t")),
            CheckinMessage::GetBootstrapToken(GetBootstrapToken {
                identity: identity.clone(),
                awaiting_configuration: Some(false),
            }),
            CheckinMessage::UserAuthenticate(UserAuthenticate {
                identity: identity.clone(),
                digest_response: Some("D".into()),
            }),
            CheckinMessage::DeclarativeManagement(DeclarativeManagement {
                identity: identity.clone(),
                endpoint: Some("status".into()),
                data: Some(b"{}".to_vec()),
            }),
            CheckinMessage::GetToken(GetToken {
                identity,
                token_service_type: Some("com.apple.maid".into()),
                token_parameters: Some(params),
            }),
        ];
        for msg in messages {
            let body = msg.to_xml().unwrap();
            let back = parse_checkin(&body).unwrap();
            assert_eq!(back.message_type(), msg.message_type());
            assert_eq!(format!("{back:?}"), format!("{msg:?}"));
        }
    }

    #[test]
    fn unknown_message_type_is_named_in_the_error() {
        let body = checkin("<key>MessageType</key><string>ReturnToService</string>");
        match parse_checkin(&body) {
            Err(ProtocolError::UnknownMessageType(t)) => assert_eq!(t, "ReturnToService"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_unknown_message_type_is_truncated_in_the_error() {
        let body = checkin(&format!(
            "<key>MessageType</key><string>{}</string>",
            "X".repeat(10_000)
        ));
        let err = parse_checkin(&body).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn missing_or_non_string_message_type_is_refused() {
        for keys in [
            "<key>UDID</key><string>U</string>",
            "<key>MessageType</key><integer>1</integer>",
        ] {
            assert!(matches!(
                parse_checkin(&checkin(keys)),
                Err(ProtocolError::MissingMessageType)
            ));
        }
    }

    #[test]
    fn bootstrap_token_sent_as_a_string_is_malformed_without_echoing_it() {
        let body = checkin(
            "<key>MessageType</key><string>SetBootstrapToken</string>\
             <key>BootstrapToken</key><string>sekrit-token-text</string>",
        );
        match parse_checkin(&body) {
            Err(ProtocolError::Malformed(m)) => {
                assert!(
                    m.contains("`BootstrapToken`") && m.contains("string"),
                    "{m}"
                );
                assert!(!m.contains("sekrit"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn udid_sent_as_an_integer_is_malformed() {
        let body = checkin(
            "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><integer>5</integer>",
        );
        match parse_checkin(&body) {
            Err(ProtocolError::Malformed(m)) => {
                assert!(m.contains("`UDID`") && m.contains("integer"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn awaiting_configuration_sent_as_a_string_is_malformed() {
        let body = checkin(
            "<key>MessageType</key><string>GetBootstrapToken</string>\
             <key>AwaitingConfiguration</key><string>true</string>",
        );
        assert!(matches!(
            parse_checkin(&body),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn hostile_bodies_get_clean_errors() {
        let mut binary = Vec::new();
        plist::Value::Dictionary(plist::Dictionary::new())
            .to_writer_binary(&mut binary)
            .unwrap();
        let truncated = &TOKEN_UPDATE_2[..TOKEN_UPDATE_2.len() / 2];
        let deep = checkin(&format!("<key>X</key>{}", "<array>".repeat(100_000)));
        let oversized = vec![b' '; crate::guard::DEFAULT_MAX_BODY + 1];
        assert!(matches!(parse_checkin(b""), Err(ProtocolError::Empty)));
        assert!(matches!(parse_checkin(&binary), Err(ProtocolError::NotXml)));
        assert!(matches!(
            parse_checkin(b"\x13\x37garbage\xff"),
            Err(ProtocolError::NotXml)
        ));
        assert!(matches!(
            parse_checkin(truncated),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_checkin(&deep),
            Err(ProtocolError::TooDeep { .. })
        ));
        assert!(matches!(
            parse_checkin(&oversized),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_checkin(b"<plist><array/></plist>"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_checkin(b"<plist><dict><key>a</key></dict></plist>"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_checkin(b"<plist><dict><bogus/></dict></plist>"),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn truncating_a_capture_anywhere_never_panics() {
        for body in [AUTHENTICATE_2, TOKEN_UPDATE_1, TOKEN_UPDATE_USER] {
            for cut in 0..body.len() {
                let _ = parse_checkin(&body[..cut]);
            }
        }
    }

    #[test]
    fn malformed_data_message_does_not_echo_body_bytes() {
        let body = checkin(
            "<key>MessageType</key><string>SetBootstrapToken</string>\
             <key>BootstrapToken</key><data>not base64 SECRETISH!!</data>",
        );
        let err = parse_checkin(&body).unwrap_err().to_string();
        assert!(!err.contains("SECRETISH"), "{err}");
    }
}

#[cfg(test)]
mod device_id_tests {
    use super::validate_device_id;

    #[test]
    fn real_identifiers_pass() {
        for id in [
            "00008103-001A2B3C4D5E001E",
            "564D1A2B-3C4D-5E6F-7A8B-9C0D1E2F3A4B",
            "0123456789abcdef0123456789abcdef01234567",
            "UDID-RENEW",
        ] {
            assert_eq!(validate_device_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn hostile_identifiers_are_refused() {
        let long = "A".repeat(65);
        for id in [
            "",
            long.as_str(),
            "UDID:user",
            "UDID/pending/x",
            "has space",
            "tab\tin",
            "new\nline",
            "nul\0",
            "caf\u{e9}",
            "\u{202e}evil",
        ] {
            assert!(validate_device_id(id).is_err(), "{id:?} passed");
        }
        assert_eq!(validate_device_id(&"A".repeat(64)), Ok(()));
    }
}
