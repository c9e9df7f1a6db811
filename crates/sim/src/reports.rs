//! What a Mac puts on the wire, derived from the model: check-in bodies and command results shaped like the
//! real captures in `shared/captures/` (SecurityInfo like zentral's, DeviceInformation's `QueryResponses`,
//! UserList's `Users`).
//!
//! Guarantees: bodies are XML plists; a SetBootstrapToken body is the only one carrying token bytes, and it is
//! built straight from the model's token without passing through `Debug` or logs.

use plist::{Dictionary, Value};
use protocol::checkin::{
    Authenticate, CheckOut, CheckinMessage, GetBootstrapToken, Identity, SetBootstrapToken,
    TokenUpdate,
};
use protocol::command::{ErrorChainItem, Status};
use protocol::{ProtocolError, guard};
use vault::Secret;

use crate::mac::{Arch, Enrollment, Mac, SimToken};

/// The push topic the simulated Macs report (any `com.apple.mgmt.*` string works for escrowd).
pub const TOPIC: &str = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";

fn identity(mac: &Mac) -> Identity {
    Identity {
        udid: Some(mac.udid.clone()),
        ..Identity::default()
    }
}

fn awaiting(mac: &Mac) -> Option<bool> {
    // §1.7: both check-ins carry it on ADE Macs.
    (mac.enrollment == Enrollment::Ade).then_some(mac.awaiting_configuration)
}

pub fn authenticate(mac: &Mac) -> Result<Vec<u8>, ProtocolError> {
    CheckinMessage::Authenticate(Authenticate {
        identity: identity(mac),
        topic: Some(TOPIC.into()),
        serial_number: Some(mac.serial_number.clone()),
        os_version: Some(mac.os.to_string()),
        build_version: Some(mac.os.build_version()),
        product_name: Some(mac.model.clone()),
        model: Some(mac.model.clone()),
        model_name: Some(model_name(mac).into()),
        device_name: Some(mac.device_name.clone()),
        extra: Dictionary::new(),
    })
    .to_xml()
}

pub fn token_update(mac: &Mac) -> Result<Vec<u8>, ProtocolError> {
    let mut push_token = mac.udid.as_bytes().to_vec();
    push_token.truncate(32);
    CheckinMessage::TokenUpdate(TokenUpdate {
        identity: identity(mac),
        topic: Some(TOPIC.into()),
        token: Some(push_token),
        push_magic: Some(crate::mac::guid_from(&format!("magic:{}", mac.udid))),
        awaiting_configuration: awaiting(mac),
        ..TokenUpdate::default()
    })
    .to_xml()
}

/// `token: None` = an empty SetBootstrapToken (clear).
pub fn set_bootstrap_token(mac: &Mac, token: Option<&SimToken>) -> Result<Vec<u8>, ProtocolError> {
    CheckinMessage::SetBootstrapToken(SetBootstrapToken {
        identity: identity(mac),
        bootstrap_token: Some(Secret::new(token.map(SimToken::bytes).unwrap_or_default())),
        awaiting_configuration: awaiting(mac),
    })
    .to_xml()
}

pub fn get_bootstrap_token(mac: &Mac) -> Result<Vec<u8>, ProtocolError> {
    CheckinMessage::GetBootstrapToken(GetBootstrapToken {
        identity: identity(mac),
        awaiting_configuration: awaiting(mac),
    })
    .to_xml()
}

pub fn checkout(mac: &Mac) -> Result<Vec<u8>, ProtocolError> {
    CheckinMessage::CheckOut(CheckOut {
        identity: identity(mac),
        topic: Some(TOPIC.into()),
    })
    .to_xml()
}

/// The `BootstrapToken` data of a GetBootstrapToken reply (empty when the server holds none). Guarded like
/// every other parser: hostile replies are an error, never a panic.
pub fn bootstrap_token_of(reply: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    guard::check_xml_plist(reply, guard::DEFAULT_MAX_DEPTH, guard::DEFAULT_MAX_BODY)?;
    let value =
        Value::from_reader_xml(reply).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let dict = value
        .as_dictionary()
        .ok_or_else(|| ProtocolError::Malformed("reply is not a dict".into()))?;
    match dict.get("BootstrapToken") {
        Some(Value::Data(d)) => Ok(d.clone()),
        None => Ok(Vec::new()),
        Some(_) => Err(ProtocolError::Malformed(
            "BootstrapToken is not <data>".into(),
        )),
    }
}

/// A command-channel report: `{UDID, Status, CommandUUID?, ErrorChain?, …result keys}`.
pub fn report(
    mac: &Mac,
    status: Status,
    command_uuid: Option<&str>,
    result: Dictionary,
    error: Option<(i64, &str)>,
) -> Result<Vec<u8>, ProtocolError> {
    let mut d = Dictionary::new();
    d.insert("UDID".into(), mac.udid.clone().into());
    d.insert("Status".into(), status.as_str().into());
    if let Some(u) = command_uuid {
        d.insert("CommandUUID".into(), u.into());
    }
    if let Some((code, text)) = error {
        let item = ErrorChainItem {
            error_code: Some(code),
            error_domain: Some("MCMDMErrorDomain".into()),
            localized_description: Some(text.into()),
            us_english_description: Some(text.into()),
        };
        let v = plist::to_value(&vec![item]).map_err(|e| ProtocolError::Encode(e.to_string()))?;
        d.insert("ErrorChain".into(), v);
    }
    for (k, v) in result {
        d.insert(k, v);
    }
    let mut out = Vec::new();
    Value::Dictionary(d)
        .to_writer_xml(&mut out)
        .map_err(|e| ProtocolError::Encode(e.to_string()))?;
    Ok(out)
}

fn model_name(mac: &Mac) -> &'static str {
    match mac.arch {
        Arch::Intel => "MacBook Pro",
        Arch::AppleSilicon => "MacBook Air",
    }
}

/// `{SecurityInfo: {…}}` (keys as in the zentral and nanocmd captures; no bootstrap keys before 10.15, as
/// in the 10.13.1 capture).
pub fn security_info(mac: &Mac) -> Dictionary {
    let mut s = Dictionary::new();
    s.insert("FDE_Enabled".into(), mac.filevault.into());
    s.insert(
        "FDE_HasPersonalRecoveryKey".into(),
        mac.personal_recovery_key.into(),
    );
    s.insert("FDE_HasInstitutionalRecoveryKey".into(), false.into());
    s.insert("SystemIntegrityProtectionEnabled".into(), true.into());
    if mac.os.supports_bootstrap_token() {
        let apple_silicon = mac.arch == Arch::AppleSilicon;
        if mac.os.is_11_or_later() {
            s.insert(
                "BootstrapTokenAllowedForAuthentication".into(),
                mac.bt_auth.wire().as_str().into(),
            );
            s.insert("AuthenticatedRootVolumeEnabled".into(), true.into());
            s.insert("IsRecoveryLockEnabled".into(), false.into());
        }
        s.insert(
            "BootstrapTokenRequiredForSoftwareUpdate".into(),
            apple_silicon.into(),
        );
        s.insert(
            "BootstrapTokenRequiredForKernelExtensionApproval".into(),
            apple_silicon.into(),
        );
        let mut ms = Dictionary::new();
        ms.insert(
            "EnrolledViaDEP".into(),
            (mac.enrollment == Enrollment::Ade).into(),
        );
        ms.insert("IsActivationLockManageable".into(), mac.supervised.into());
        ms.insert("IsUserEnrollment".into(), false.into());
        ms.insert(
            "UserApprovedEnrollment".into(),
            (mac.enrollment != Enrollment::None).into(),
        );
        s.insert("ManagementStatus".into(), Value::Dictionary(ms));
        let mut sb = Dictionary::new();
        let (level, external) = match mac.arch {
            Arch::AppleSilicon => ("full", "disallowed"),
            Arch::Intel => ("off", "not supported"),
        };
        sb.insert("SecureBootLevel".into(), level.into());
        sb.insert("ExternalBootLevel".into(), external.into());
        s.insert("SecureBoot".into(), Value::Dictionary(sb));
    }
    let mut d = Dictionary::new();
    d.insert("SecurityInfo".into(), Value::Dictionary(s));
    d
}

/// `{Users: [...]}`; `HasSecureToken` only from macOS 11 (as Apple documents).
pub fn user_list(mac: &Mac) -> Dictionary {
    let users = mac
        .users
        .iter()
        .map(|u| {
            let mut e = Dictionary::new();
            e.insert("UserName".into(), u.short_name.clone().into());
            e.insert("FullName".into(), u.real_name.clone().into());
            e.insert("UID".into(), Value::Integer(u.uid.into()));
            e.insert("UserGUID".into(), u.guid.clone().into());
            e.insert("IsLoggedIn".into(), u.logged_in.into());
            e.insert(
                "MobileAccount".into(),
                (u.kind == crate::mac::UserKind::Mobile).into(),
            );
            if mac.os.is_11_or_later() {
                e.insert("HasSecureToken".into(), u.secure_token.into());
            }
            Value::Dictionary(e)
        })
        .collect();
    let mut d = Dictionary::new();
    d.insert("Users".into(), Value::Array(users));
    d
}

/// `{QueryResponses: {…}}` for the asked `queries` (every key this model knows when none are given).
pub fn device_information(mac: &Mac, queries: &[String]) -> Dictionary {
    let mut all = Dictionary::new();
    all.insert("UDID".into(), mac.udid.clone().into());
    all.insert(
        "IsAppleSilicon".into(),
        (mac.arch == Arch::AppleSilicon).into(),
    );
    all.insert("OSVersion".into(), mac.os.to_string().into());
    all.insert("BuildVersion".into(), mac.os.build_version().into());
    all.insert("ModelName".into(), model_name(mac).into());
    all.insert("Model".into(), mac.model.clone().into());
    all.insert("ProductName".into(), mac.model.clone().into());
    all.insert("SerialNumber".into(), mac.serial_number.clone().into());
    all.insert("DeviceName".into(), mac.device_name.clone().into());
    all.insert("IsSupervised".into(), mac.supervised.into());
    all.insert(
        "AwaitingConfiguration".into(),
        mac.awaiting_configuration.into(),
    );
    if mac.os >= crate::mac::OsVersion::new(13, 3, 0) {
        all.insert("EACSPreflight".into(), mac.eacs_preflight().into());
    }
    let mut options = Dictionary::new();
    for (k, v) in &mac.mdm_options {
        options.insert(k.clone(), (*v).into());
    }
    all.insert("MDMOptions".into(), Value::Dictionary(options));
    let answers = if queries.is_empty() {
        all
    } else {
        queries
            .iter()
            .filter_map(|q| all.get(q).map(|v| (q.clone(), v.clone())))
            .collect()
    };
    let mut d = Dictionary::new();
    d.insert("QueryResponses".into(), Value::Dictionary(answers));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::MacSpec;

    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\">";

    #[test]
    fn bootstrap_token_reply_reads_data_and_treats_absent_as_empty() {
        let reply = protocol::checkin::get_bootstrap_token_response(Some(&Secret::new(vec![1, 2])))
            .unwrap();
        assert_eq!(bootstrap_token_of(&reply).unwrap(), [1, 2]);
        let empty = protocol::checkin::get_bootstrap_token_response(None).unwrap();
        assert!(bootstrap_token_of(&empty).unwrap().is_empty());
        let absent = format!("{HEAD}<dict/></plist>");
        assert!(bootstrap_token_of(absent.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn hostile_bootstrap_token_replies_are_errors_not_panics() {
        let deep = format!(
            "{HEAD}{}{}</plist>",
            "<array>".repeat(10_000),
            "</array>".repeat(10_000)
        );
        let huge = vec![b'a'; protocol::guard::DEFAULT_MAX_BODY + 1];
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"not a plist".to_vec(),
            format!("{HEAD}<dict><key>BootstrapToken</key><data>AAEC").into_bytes(),
            format!("{HEAD}<dict><key>BootstrapToken</key><string>x</string></dict></plist>")
                .into_bytes(),
            format!("{HEAD}<array/></plist>").into_bytes(),
            deep.into_bytes(),
            huge,
            b"bplist00\x00\x01".to_vec(),
        ];
        for case in cases {
            assert!(
                bootstrap_token_of(&case).is_err(),
                "{:?}",
                &case[..case.len().min(40)]
            );
        }
    }

    #[test]
    fn check_ins_parse_with_escrowds_own_parser() {
        let mut mac = Mac::new(MacSpec::apple_silicon_ade("WIRE"));
        for body in [
            authenticate(&mac).unwrap(),
            token_update(&mac).unwrap(),
            get_bootstrap_token(&mac).unwrap(),
            checkout(&mac).unwrap(),
        ] {
            let msg = protocol::checkin::parse_checkin(&body).unwrap();
            assert_eq!(msg.identity().udid.as_deref(), Some("WIRE"));
        }
        let token = mac.generate_bootstrap_token();
        let body = set_bootstrap_token(&mac, Some(&token)).unwrap();
        let protocol::CheckinMessage::SetBootstrapToken(m) =
            protocol::checkin::parse_checkin(&body).unwrap()
        else {
            panic!("SetBootstrapToken expected");
        };
        assert_eq!(m.token_to_store().unwrap().expose(), &token.bytes());
        assert_eq!(m.awaiting_configuration, Some(true));
        let clear = set_bootstrap_token(&mac, None).unwrap();
        let protocol::CheckinMessage::SetBootstrapToken(m) =
            protocol::checkin::parse_checkin(&clear).unwrap()
        else {
            panic!("SetBootstrapToken expected");
        };
        assert!(m.token_to_store().is_none());
    }

    #[test]
    fn user_list_reports_has_secure_token_only_from_macos_11() {
        let mut old = Mac::new(MacSpec {
            os: crate::mac::OsVersion::new(10, 15, 7),
            ..MacSpec::apple_silicon_ade("OLD")
        });
        old.setup_assistant_create_user(crate::mac::AddUser::new(
            "a",
            true,
            crate::mac::UserKind::Local,
            Some("p"),
        ))
        .unwrap();
        let Some(Value::Array(users)) = user_list(&old).remove("Users") else {
            panic!("Users array expected");
        };
        let first = users[0].as_dictionary().unwrap();
        assert!(first.get("HasSecureToken").is_none());
        assert_eq!(first.get("UserName").and_then(Value::as_string), Some("a"));
    }
}
