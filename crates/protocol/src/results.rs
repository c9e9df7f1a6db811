//! Typed results of the inventory commands, read from a [`CommandReport`]'s top-level keys.
//!
//! Guarantees: every field is optional (older OS versions omit keys; `None` means "not reported", never
//! `false`); `from_report` returns `Ok(None)` when the result key is absent and a clean
//! [`ProtocolError::Malformed`] naming the bad key when a value has the wrong type. Secret-ish blobs such
//! as `FDE_PersonalRecoveryKeyCMS` are not copied into the typed structs.

use plist::Value;
use serde::{Deserialize, Serialize};

use crate::command::CommandReport;
use crate::decode::{decode, decode_items};
use crate::error::ProtocolError;

/// `SecurityInfo.BootstrapTokenAllowedForAuthentication`: a three-value string on the wire, not a bool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub enum BootstrapTokenAuth {
    /// `allowed`: the Secure Enclave accepts the escrowed token for volume-owner operations.
    Allowed,
    /// `disallowed`: a user must allow it in recoveryOS.
    Disallowed,
    /// `not supported`: Intel Macs, VMs.
    NotSupported,
    /// Any other string, kept verbatim.
    Other(String),
}

impl BootstrapTokenAuth {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            BootstrapTokenAuth::Allowed => "allowed",
            BootstrapTokenAuth::Disallowed => "disallowed",
            BootstrapTokenAuth::NotSupported => "not supported",
            BootstrapTokenAuth::Other(s) => s,
        }
    }

    /// Only `allowed` counts as allowed.
    pub fn is_allowed(&self) -> bool {
        *self == BootstrapTokenAuth::Allowed
    }
}

impl From<String> for BootstrapTokenAuth {
    fn from(s: String) -> Self {
        match s.as_str() {
            "allowed" => BootstrapTokenAuth::Allowed,
            "disallowed" => BootstrapTokenAuth::Disallowed,
            "not supported" => BootstrapTokenAuth::NotSupported,
            _ => BootstrapTokenAuth::Other(s),
        }
    }
}

impl From<BootstrapTokenAuth> for String {
    fn from(auth: BootstrapTokenAuth) -> String {
        match auth {
            BootstrapTokenAuth::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

/// `SecurityInfo.ManagementStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ManagementStatus {
    #[serde(
        rename = "EnrolledViaDEP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enrolled_via_dep: Option<bool>,
    #[serde(
        rename = "UserApprovedEnrollment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_approved_enrollment: Option<bool>,
    #[serde(
        rename = "IsUserEnrollment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_user_enrollment: Option<bool>,
    #[serde(
        rename = "IsActivationLockManageable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_activation_lock_manageable: Option<bool>,
}

/// `SecurityInfo.SecureBoot` (`off`|`medium`|`full`|`not supported`; `allowed`|`disallowed`|`not supported`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecureBoot {
    #[serde(
        rename = "SecureBootLevel",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub secure_boot_level: Option<String>,
    #[serde(
        rename = "ExternalBootLevel",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_boot_level: Option<String>,
}

/// The `SecurityInfo` dict of a `SecurityInfo` command result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SecurityInfo {
    #[serde(
        rename = "FDE_Enabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fde_enabled: Option<bool>,
    #[serde(
        rename = "FDE_HasPersonalRecoveryKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fde_has_personal_recovery_key: Option<bool>,
    #[serde(
        rename = "FDE_HasInstitutionalRecoveryKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fde_has_institutional_recovery_key: Option<bool>,
    #[serde(
        rename = "SystemIntegrityProtectionEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub system_integrity_protection_enabled: Option<bool>,
    #[serde(
        rename = "BootstrapTokenAllowedForAuthentication",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bootstrap_token_allowed_for_authentication: Option<BootstrapTokenAuth>,
    #[serde(
        rename = "BootstrapTokenRequiredForSoftwareUpdate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bootstrap_token_required_for_software_update: Option<bool>,
    #[serde(
        rename = "BootstrapTokenRequiredForKernelExtensionApproval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bootstrap_token_required_for_kernel_extension_approval: Option<bool>,
    #[serde(
        rename = "IsRecoveryLockEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_recovery_lock_enabled: Option<bool>,
    #[serde(
        rename = "AuthenticatedRootVolumeEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub authenticated_root_volume_enabled: Option<bool>,
    #[serde(
        rename = "ManagementStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub management_status: Option<ManagementStatus>,
    #[serde(
        rename = "SecureBoot",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub secure_boot: Option<SecureBoot>,
}

impl SecurityInfo {
    /// Reads the report's `SecurityInfo` key; `Ok(None)` when absent.
    pub fn from_report(r: &CommandReport) -> Result<Option<Self>, ProtocolError> {
        r.raw
            .get("SecurityInfo")
            .map(|v| decode(v, "SecurityInfo"))
            .transpose()
    }
}

/// One item of a `UserList` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserListEntry {
    #[serde(rename = "UserName", default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(rename = "FullName", default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(rename = "UID", default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    #[serde(rename = "UserGUID", default, skip_serializing_if = "Option::is_none")]
    pub user_guid: Option<String>,
    #[serde(
        rename = "IsLoggedIn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_logged_in: Option<bool>,
    #[serde(
        rename = "MobileAccount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mobile_account: Option<bool>,
    /// macOS 11+.
    #[serde(
        rename = "HasSecureToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub has_secure_token: Option<bool>,
}

/// The `Users` array of a `UserList` result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserList {
    pub users: Vec<UserListEntry>,
}

impl UserList {
    /// Reads the report's `Users` key; `Ok(None)` when absent.
    pub fn from_report(r: &CommandReport) -> Result<Option<Self>, ProtocolError> {
        r.raw
            .get("Users")
            .map(|v| decode_items(v, "Users").map(|users| UserList { users }))
            .transpose()
    }
}

/// The `QueryResponses` dict of a `DeviceInformation` result.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DeviceInformation {
    #[serde(
        rename = "IsAppleSilicon",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_apple_silicon: Option<bool>,
    #[serde(rename = "OSVersion", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(
        rename = "BuildVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub build_version: Option<String>,
    #[serde(rename = "ModelName", default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(rename = "Model", default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(
        rename = "ProductName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub product_name: Option<String>,
    #[serde(
        rename = "SerialNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub serial_number: Option<String>,
    #[serde(
        rename = "DeviceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_name: Option<String>,
    /// `success` | `not supported` | `unknown failure` | a reason (macOS 13.3+).
    #[serde(
        rename = "EACSPreflight",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub eacs_preflight: Option<String>,
    #[serde(
        rename = "AwaitingConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub awaiting_configuration: Option<bool>,
    #[serde(
        rename = "IsSupervised",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_supervised: Option<bool>,
    #[serde(
        rename = "MDMOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mdm_options: Option<plist::Dictionary>,
    /// The whole `QueryResponses` dict, including keys not typed above.
    #[serde(skip)]
    pub raw: plist::Dictionary,
}

impl DeviceInformation {
    /// Reads the report's `QueryResponses` key; `Ok(None)` when absent.
    pub fn from_report(r: &CommandReport) -> Result<Option<Self>, ProtocolError> {
        let Some(value) = r.raw.get("QueryResponses") else {
            return Ok(None);
        };
        let mut info: DeviceInformation = decode(value, "QueryResponses")?;
        if let Value::Dictionary(dict) = value {
            info.raw = dict.clone();
        }
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_report;

    const ZENTRAL: &[u8] =
        include_bytes!("../../../testdata/captures/zentral__security_info.plist");
    const ZENTRAL_IOS: &[u8] =
        include_bytes!("../../../testdata/captures/zentral__security_info_ios.plist");
    const NANOCMD: &[u8] = include_bytes!("../../../testdata/captures/nanocmd__secinfo.plist");
    const COMMANDMENT_OLD: &[u8] =
        include_bytes!("../../../testdata/captures/commandment__SecurityInfo.macOS-10.13.1.plist");
    const DEVICE_INFORMATION: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__DeviceInformation.1.plist");
    const IDLE: &[u8] =
        include_bytes!("../../../testdata/captures/nanomdm__mdm-signature.2.body.plist");

    fn security_info(body: &[u8]) -> SecurityInfo {
        SecurityInfo::from_report(&parse_report(body).unwrap())
            .unwrap()
            .unwrap()
    }

    fn acknowledged(result: &str) -> CommandReport {
        let body = format!(
            "<plist><dict><key>Status</key><string>Acknowledged</string>\
             <key>CommandUUID</key><string>C</string><key>UDID</key><string>U</string>{result}</dict></plist>"
        );
        parse_report(body.as_bytes()).unwrap()
    }

    #[test]
    fn zentral_security_info_reports_bootstrap_token_disallowed() {
        let s = security_info(ZENTRAL);
        assert_eq!(
            s.bootstrap_token_allowed_for_authentication,
            Some(BootstrapTokenAuth::Disallowed)
        );
        assert!(
            !s.bootstrap_token_allowed_for_authentication
                .unwrap()
                .is_allowed()
        );
        assert_eq!(s.bootstrap_token_required_for_software_update, Some(true));
        assert_eq!(
            s.bootstrap_token_required_for_kernel_extension_approval,
            Some(true)
        );
        assert_eq!(s.fde_enabled, Some(true));
        assert_eq!(s.fde_has_personal_recovery_key, Some(true));
        assert_eq!(s.fde_has_institutional_recovery_key, Some(false));
        assert_eq!(s.is_recovery_lock_enabled, Some(false));
        assert_eq!(s.authenticated_root_volume_enabled, Some(true));
        assert_eq!(s.system_integrity_protection_enabled, Some(true));
        assert_eq!(
            s.management_status,
            Some(ManagementStatus {
                enrolled_via_dep: Some(false),
                user_approved_enrollment: Some(true),
                is_user_enrollment: Some(false),
                is_activation_lock_manageable: Some(true),
            })
        );
        assert_eq!(
            s.secure_boot,
            Some(SecureBoot {
                secure_boot_level: Some("full".into()),
                external_boot_level: Some("allowed".into()),
            })
        );
    }

    #[test]
    fn nanocmd_security_info_reports_bootstrap_token_not_supported() {
        let s = security_info(NANOCMD);
        assert_eq!(
            s.bootstrap_token_allowed_for_authentication,
            Some(BootstrapTokenAuth::NotSupported)
        );
        assert_eq!(
            s.secure_boot.unwrap().secure_boot_level.as_deref(),
            Some("off")
        );
        assert_eq!(s.fde_has_personal_recovery_key, None);
    }

    #[test]
    fn old_macos_security_info_has_no_bootstrap_keys() {
        let s = security_info(COMMANDMENT_OLD);
        assert_eq!(s.fde_enabled, Some(false));
        assert_eq!(s.bootstrap_token_allowed_for_authentication, None);
        assert_eq!(s.bootstrap_token_required_for_software_update, None);
        assert_eq!(s.management_status, None);
    }

    #[test]
    fn ios_security_info_parses_with_mostly_empty_fields() {
        let s = security_info(ZENTRAL_IOS);
        assert_eq!(s.management_status.unwrap().is_user_enrollment, Some(false));
        assert_eq!(s.fde_enabled, None);
    }

    #[test]
    fn bootstrap_token_auth_keeps_unknown_strings() {
        let r = acknowledged(
            "<key>SecurityInfo</key><dict><key>BootstrapTokenAllowedForAuthentication</key>\
             <string>maybe</string></dict>",
        );
        let s = SecurityInfo::from_report(&r).unwrap().unwrap();
        let auth = s.bootstrap_token_allowed_for_authentication.unwrap();
        assert_eq!(auth, BootstrapTokenAuth::Other("maybe".into()));
        assert_eq!(auth.as_str(), "maybe");
        assert_eq!(
            String::from(BootstrapTokenAuth::NotSupported),
            "not supported"
        );
        assert!(BootstrapTokenAuth::from("allowed".to_owned()).is_allowed());
    }

    #[test]
    fn security_info_with_a_boolean_bootstrap_auth_is_malformed() {
        let r = acknowledged(
            "<key>SecurityInfo</key><dict><key>BootstrapTokenAllowedForAuthentication</key><true/></dict>",
        );
        let err = SecurityInfo::from_report(&r).unwrap_err().to_string();
        assert!(
            err.contains("`BootstrapTokenAllowedForAuthentication`"),
            "{err}"
        );
    }

    #[test]
    fn security_info_does_not_keep_the_personal_recovery_key_blob() {
        let r = acknowledged(
            "<key>SecurityInfo</key><dict><key>FDE_Enabled</key><true/>\
             <key>FDE_PersonalRecoveryKeyCMS</key><data>U0VDUkVU</data></dict>",
        );
        let s = SecurityInfo::from_report(&r).unwrap().unwrap();
        assert_eq!(s.fde_enabled, Some(true));
        assert!(!format!("{s:?}").contains("83, 69, 67"));
    }

    #[test]
    fn results_are_none_when_their_key_is_absent() {
        let r = parse_report(IDLE).unwrap();
        assert_eq!(SecurityInfo::from_report(&r).unwrap(), None);
        assert_eq!(UserList::from_report(&r).unwrap(), None);
        assert_eq!(DeviceInformation::from_report(&r).unwrap(), None);
    }

    #[test]
    fn device_information_capture_keeps_untyped_keys_in_raw() {
        let info = DeviceInformation::from_report(&parse_report(DEVICE_INFORMATION).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(info.os_version, None);
        assert_eq!(
            info.raw.get("HostName"),
            Some(&Value::String("fruit.example.com".into()))
        );
        assert_eq!(info.raw.len(), 2);
    }

    #[test]
    fn device_information_reads_inventory_keys() {
        let r = acknowledged(
            "<key>QueryResponses</key><dict><key>IsAppleSilicon</key><true/>\
             <key>OSVersion</key><string>15.1</string><key>BuildVersion</key><string>24B83</string>\
             <key>ModelName</key><string>MacBook Air</string><key>Model</key><string>Mac15,12</string>\
             <key>ProductName</key><string>Mac15,12</string><key>SerialNumber</key><string>SN1</string>\
             <key>DeviceName</key><string>Air</string><key>EACSPreflight</key><string>success</string>\
             <key>AwaitingConfiguration</key><false/><key>IsSupervised</key><true/>\
             <key>MDMOptions</key><dict><key>PromptUserToAllowBootstrapTokenForAuthentication</key><true/></dict>\
             </dict>",
        );
        let info = DeviceInformation::from_report(&r).unwrap().unwrap();
        assert_eq!(info.is_apple_silicon, Some(true));
        assert_eq!(info.os_version.as_deref(), Some("15.1"));
        assert_eq!(info.build_version.as_deref(), Some("24B83"));
        assert_eq!(info.model_name.as_deref(), Some("MacBook Air"));
        assert_eq!(info.model.as_deref(), Some("Mac15,12"));
        assert_eq!(info.product_name.as_deref(), Some("Mac15,12"));
        assert_eq!(info.serial_number.as_deref(), Some("SN1"));
        assert_eq!(info.device_name.as_deref(), Some("Air"));
        assert_eq!(info.eacs_preflight.as_deref(), Some("success"));
        assert_eq!(info.awaiting_configuration, Some(false));
        assert_eq!(info.is_supervised, Some(true));
        let options = info.mdm_options.unwrap();
        assert_eq!(
            options.get("PromptUserToAllowBootstrapTokenForAuthentication"),
            Some(&Value::Boolean(true))
        );
        assert_eq!(info.raw.len(), 12);
    }

    #[test]
    fn user_list_reads_secure_token_state() {
        let r = acknowledged(
            "<key>Users</key><array>\
             <dict><key>UserName</key><string>alice</string><key>FullName</key><string>Alice</string>\
             <key>UID</key><integer>501</integer><key>UserGUID</key><string>G1</string>\
             <key>IsLoggedIn</key><true/><key>MobileAccount</key><false/><key>HasSecureToken</key><true/></dict>\
             <dict><key>UserName</key><string>bob</string><key>UID</key><integer>502</integer></dict>\
             </array>",
        );
        let list = UserList::from_report(&r).unwrap().unwrap();
        assert_eq!(list.users.len(), 2);
        assert_eq!(
            list.users[0],
            UserListEntry {
                user_name: Some("alice".into()),
                full_name: Some("Alice".into()),
                uid: Some(501),
                user_guid: Some("G1".into()),
                is_logged_in: Some(true),
                mobile_account: Some(false),
                has_secure_token: Some(true),
            }
        );
        assert_eq!(list.users[1].has_secure_token, None);
    }

    #[test]
    fn user_list_with_a_bad_item_names_it() {
        let r = acknowledged(
            "<key>Users</key><array><dict/><dict><key>UID</key><string>x</string></dict></array>",
        );
        let err = UserList::from_report(&r).unwrap_err().to_string();
        assert!(
            err.contains("Users item 1") && err.contains("`UID`"),
            "{err}"
        );
        let r = acknowledged("<key>Users</key><dict/>");
        assert!(matches!(
            UserList::from_report(&r),
            Err(ProtocolError::Malformed(_))
        ));
    }
}
