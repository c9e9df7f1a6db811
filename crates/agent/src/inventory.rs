//! `escrow-agent inventory`: per-user Secure Token, FileVault, admin and volume-owner facts, plus the
//! Bootstrap Token status and the APFS crypto users. A source that fails is reported in `problems` and the
//! rest of the inventory is still produced, so an admin debugging a Mac sees everything that did work.

use serde::Serialize;

use crate::mac::{Mac, MacError};
use crate::parse::diskutil::CryptoUsers;
use crate::parse::profiles::BootstrapTokenStatus;

/// Local users start at UID 501 on macOS.
pub const FIRST_LOCAL_UID: i64 = 501;

#[derive(Debug, Clone, Serialize)]
pub struct UserFacts {
    pub short_name: String,
    pub uid: i64,
    pub real_name: Option<String>,
    pub admin: bool,
    /// From `sysadminctl -secureTokenStatus`; `None` when it could not be read.
    pub secure_token: Option<bool>,
    /// `;SecureToken;` in AuthenticationAuthority, an independent second signal.
    pub secure_token_tag: bool,
    pub filevault: bool,
    /// Apple silicon only; `None` on Intel, where diskutil prints no owner field.
    pub volume_owner: Option<bool>,
    pub managed_admin: bool,
    /// dscl's GeneratedUID (MDM's UserGUID), so the server merges this user with its UserList row.
    pub generated_uid: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub os_version: Option<String>,
    pub users: Vec<UserFacts>,
    pub bootstrap_token: Option<BootstrapTokenStatus>,
    pub crypto_users: Option<CryptoUsers>,
    /// One line per source that failed (never contains a secret: the inventory uses none).
    pub problems: Vec<String>,
}

fn note<T>(problems: &mut Vec<String>, what: &str, result: Result<T, MacError>) -> Option<T> {
    result
        .map_err(|e| problems.push(format!("{what}: {e}")))
        .ok()
}

/// Collects the inventory. `managed_admin` names the ADE managed admin, listed whatever its UID.
pub fn collect(mac: &Mac, managed_admin: Option<&str>) -> Inventory {
    let mut problems = Vec::new();
    let listed = note(&mut problems, "dscl user list", mac.user_list()).unwrap_or_default();
    let admins = note(&mut problems, "dscl admin group", mac.admins()).unwrap_or_default();
    let filevault = note(&mut problems, "fdesetup list", mac.filevault_users()).unwrap_or_default();
    let crypto = note(
        &mut problems,
        "diskutil apfs listcryptousers",
        mac.crypto_users(),
    );
    let bootstrap_token = note(
        &mut problems,
        "profiles status",
        mac.bootstrap_token_status(),
    );
    let owner_form = crypto
        .as_ref()
        .is_some_and(|c| c.users.iter().any(|u| u.volume_owner.is_some()));

    let mut users = Vec::new();
    for (name, uid) in listed {
        let is_managed_admin = managed_admin == Some(name.as_str());
        if uid < FIRST_LOCAL_UID && !is_managed_admin {
            continue;
        }
        let Some(record) =
            note(&mut problems, &format!("dscl read {name}"), mac.user(&name)).flatten()
        else {
            continue;
        };
        let secure_token = match mac.secure_token_status(&name) {
            Ok(status) if label_matches(&status.user_label, &record) => Some(status.enabled),
            Ok(status) => {
                problems.push(format!(
                    "sysadminctl {name}: answered for {:?}, not this user",
                    crate::parse::quote(&status.user_label)
                ));
                None
            }
            Err(e) => {
                problems.push(format!("sysadminctl {name}: {e}"));
                None
            }
        };
        let crypto_entry = record
            .generated_uid
            .as_deref()
            .and_then(|g| crypto.as_ref().and_then(|c| c.find(g)));
        users.push(UserFacts {
            admin: admins.contains(&name),
            filevault: crate::parse::fdesetup::is_filevault_user(&filevault, &name),
            volume_owner: owner_form
                .then(|| crypto_entry.and_then(|e| e.volume_owner).unwrap_or(false)),
            managed_admin: is_managed_admin,
            secure_token,
            secure_token_tag: record.secure_token_tag,
            generated_uid: record.generated_uid.clone(),
            real_name: record.real_name,
            short_name: name,
            uid,
        });
    }
    let os_version = mac.os_version().map(|v| v.to_string());
    Inventory {
        os_version,
        users,
        bootstrap_token,
        crypto_users: crypto,
        problems,
    }
}

/// sysadminctl names the user by RealName (short name when it has none).
fn label_matches(label: &str, record: &crate::parse::dscl::UserRecord) -> bool {
    label == record.short_name || record.real_name.as_deref() == Some(label)
}
