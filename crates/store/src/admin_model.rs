//! The admin side's vocabulary: API keys, the latest device inventory, per-user facts and the device list
//! filter. Guarantees: an API key is only ever held here as its hash; every enum round-trips through the exact
//! string stored in the database.

use crate::model::{Enrollment, Millis};
use crate::{Result, StoreError};

/// What an API key may do. Ordered: `Admin` includes `Operate`, which includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiScope {
    /// Look at devices, users, events, groups, reports.
    Read,
    /// Read, plus send commands and pushes.
    Operate,
    /// Everything: groups, escrow settings, clearing tokens, API keys.
    Admin,
}

impl ApiScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::Operate => "operate",
            ApiScope::Admin => "admin",
        }
    }

    /// Parse `read`, `operate` or `admin` (as typed by an admin or stored in the database).
    pub fn parse(s: &str) -> Option<ApiScope> {
        match s {
            "read" => Some(ApiScope::Read),
            "operate" => Some(ApiScope::Operate),
            "admin" => Some(ApiScope::Admin),
            _ => None,
        }
    }

    pub(crate) fn from_stored(s: &str) -> Result<Self> {
        Self::parse(s).ok_or_else(|| {
            StoreError::Database("unexpected api key scope value in database".into())
        })
    }

    /// Whether a key with this scope may do what `needed` requires.
    pub fn allows(self, needed: ApiScope) -> bool {
        self >= needed
    }
}

/// A stored API key: metadata plus the hex SHA-256 of the key (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scope: ApiScope,
    pub key_hash: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// The DeviceInformation part of a device's inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    pub os_version: Option<String>,
    /// `major * 10000 + minor * 100 + patch` (10.15.7 = 101507, 14.5 = 140500), for filters and policy.
    pub os_version_num: Option<i64>,
    pub build_version: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub is_apple_silicon: Option<bool>,
    pub is_supervised: Option<bool>,
    pub eacs_preflight: Option<String>,
    /// When the DeviceInformation result arrived.
    pub at: Millis,
}

/// The SecurityInfo part of a device's inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityFacts {
    pub filevault_enabled: Option<bool>,
    /// `allowed`, `disallowed`, `not supported` (Apple's string).
    pub bt_allowed_for_authentication: Option<String>,
    pub bt_required_for_software_update: Option<bool>,
    pub bt_required_for_kext_approval: Option<bool>,
    pub enrolled_via_dep: Option<bool>,
    pub user_approved_enrollment: Option<bool>,
    pub is_user_enrollment: Option<bool>,
    /// When the SecurityInfo result arrived.
    pub at: Millis,
}

/// A device the automatic inventory schedule should ask again (see `Store::inventory_due`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryDue {
    pub device_id: String,
    /// When inventory was last asked of it; None = never.
    pub requested_at: Option<Millis>,
    /// Which of the asked-for request types are still queued for it (not to be queued again).
    pub pending: Vec<String>,
}

/// A device's latest inventory; either part is None until its command result has arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInventory {
    pub device_id: String,
    pub device: Option<DeviceFacts>,
    pub security: Option<SecurityFacts>,
}

/// Where a fact about a user came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactSource {
    /// The MDM `UserList` command.
    Mdm,
    /// The escrowd agent on the Mac.
    Agent,
}

impl FactSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FactSource::Mdm => "mdm",
            FactSource::Agent => "agent",
        }
    }

    pub(crate) fn from_stored(s: &str) -> Result<Self> {
        match s {
            "mdm" => Ok(FactSource::Mdm),
            "agent" => Ok(FactSource::Agent),
            _ => Err(StoreError::Database(
                "unexpected fact source value in database".into(),
            )),
        }
    }
}

/// What one source said about one local user of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUser {
    pub device_id: String,
    pub source: FactSource,
    /// Stable key within the device: the user's GUID, else the short name.
    pub user_key: String,
    pub short_name: Option<String>,
    pub full_name: Option<String>,
    pub uid: Option<i64>,
    pub guid: Option<String>,
    pub has_secure_token: Option<bool>,
    pub mobile_account: Option<bool>,
    pub is_logged_in: Option<bool>,
    pub is_admin: Option<bool>,
    pub filevault_enabled: Option<bool>,
    pub volume_owner: Option<bool>,
    /// The agent's word that this is the ADE managed admin (`escrow-agent run --managed-admin NAME`); None
    /// when the source does not say (MDM's UserList, older agents).
    pub managed_admin: Option<bool>,
    pub observed_at: Millis,
}

/// Which devices to list (device channel only). All filters are ANDed; paging is by device id.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Some(true): a Bootstrap Token is stored; Some(false): none is. The Bootstrap Token status is
    /// `service::status`'s rule; it narrows a filter with this and `can_escrow`.
    pub has_token: Option<bool>,
    /// Some(false): the inventory says the Mac cannot escrow a Bootstrap Token at all (macOS older than 10.15,
    /// a User Enrollment, or 10.15 not enrolled through ADE); Some(true): it can, or nothing says otherwise.
    /// The SQL twin of `service::status::unsupported_reason`, checked against it by a `service` test.
    pub can_escrow: Option<bool>,
    pub apple_silicon: Option<bool>,
    /// OS version prefix, e.g. `14` or `14.5` (matches `14.5`, `14.5.1`; not `14.50`).
    pub os_version: Option<String>,
    pub group_id: Option<String>,
    pub escrowed_before: Option<Millis>,
    pub escrowed_after: Option<Millis>,
    /// Some(true): at least one user reported without a Secure Token.
    pub users_without_secure_token: Option<bool>,
    /// Some(v): a Bootstrap Token is stored and its `verified` flag is `v` (Some(false): escrowed but never
    /// verified by a successful Get).
    pub verified: Option<bool>,
    /// Some(true): an Apple silicon Mac whose SecurityInfo says its Bootstrap Token is not allowed for
    /// authentication (it cannot authorize updates); Some(false): every other Mac. The SQL twin of
    /// `service::reports`' `cannot_authorize`.
    pub cannot_authorize: Option<bool>,
    /// Only Macs whose bound identity certificate expires before this time (Unix ms).
    pub identity_expires_before: Option<Millis>,
    /// Case-insensitive substring of the UDID, serial number, device name, or a user's short or full name
    /// (the enrollment's user or any user the Mac reported).
    pub search: Option<String>,
    /// Also list checked-out devices.
    pub include_checked_out: bool,
    /// Newest ids first; `after_id` then means "ids before this one".
    pub descending: bool,
    /// Paging: only ids after this one (bytewise order).
    pub after_id: Option<String>,
    /// 0 means 100; at most 1000.
    pub limit: u32,
}

/// Counts over the enrolled fleet (enabled device-channel enrollments), in one query: the fleet summary's
/// numbers, by the same rules as the device list's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub devices: u64,
    /// A token is stored (Configured).
    pub escrowed: u64,
    /// No token and the Mac cannot escrow one (NA).
    pub not_supported: u64,
    pub escrowed_unverified: u64,
    pub apple_silicon: u64,
    /// Apple silicon, and the token is not allowed for authentication ([`DeviceFilter::cannot_authorize`]).
    pub cannot_authorize: u64,
    pub devices_with_users_without_secure_token: u64,
    pub users_without_secure_token: u64,
    pub devices_without_inventory: u64,
    /// The bound identity certificate expires before the time asked about.
    pub identities_expiring: u64,
}

/// The Bootstrap Token metadata an admin may see (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub size: i64,
    pub escrowed_at: Millis,
    pub verified: bool,
    pub last_requested_at: Option<Millis>,
}

/// One device as the list and detail views need it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    pub enrollment: Enrollment,
    pub group_name: Option<String>,
    pub group_escrow_enabled: Option<bool>,
    pub token: Option<TokenInfo>,
    pub inventory: Option<DeviceInventory>,
    /// Users (MDM source) reported with HasSecureToken = false.
    pub users_without_secure_token: u64,
    pub user_count: u64,
}

/// `"14.5.1"` → 140501; `"10.15"` → 101500. None for anything that is not 1–3 dot-separated numbers.
pub fn os_version_num(version: &str) -> Option<i64> {
    let mut parts = version.trim().split('.');
    let mut num = 0i64;
    for weight in [10_000i64, 100, 1] {
        match parts.next() {
            Some(p) => {
                let n: i64 = p.parse().ok().filter(|n| (0..100).contains(n))?;
                num += n * weight;
            }
            None => break,
        }
    }
    if parts.next().is_some() || num == 0 {
        return None;
    }
    Some(num)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_versions_become_comparable_numbers() {
        assert_eq!(os_version_num("10.15.7"), Some(101_507));
        assert_eq!(os_version_num("14.5"), Some(140_500));
        assert_eq!(os_version_num("26"), Some(260_000));
        for bad in ["", "x", "14..1", "14.5.1.2", "-1", "14.100", "0"] {
            assert_eq!(os_version_num(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_are_ordered_and_round_trip() {
        assert!(ApiScope::Admin.allows(ApiScope::Operate));
        assert!(ApiScope::Operate.allows(ApiScope::Read));
        assert!(!ApiScope::Read.allows(ApiScope::Operate));
        assert!(!ApiScope::Operate.allows(ApiScope::Admin));
        for s in [ApiScope::Read, ApiScope::Operate, ApiScope::Admin] {
            assert_eq!(ApiScope::from_stored(s.as_str()).unwrap(), s);
        }
        assert!(ApiScope::from_stored("root").is_err());
        assert!(FactSource::from_stored("ldap").is_err());
    }
}

/// What Setup Assistant does about its primary (first) account on a group's ADE Macs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryAccount {
    /// An administrator (Setup Assistant's default).
    Admin,
    /// `SetPrimarySetupAccountAsRegularUser`.
    Standard,
    /// `SkipPrimarySetupAccountCreation`.
    Skip,
}

impl PrimaryAccount {
    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryAccount::Admin => "admin",
            PrimaryAccount::Standard => "standard",
            PrimaryAccount::Skip => "skip",
        }
    }

    /// Parse `admin`, `standard` or `skip` (as typed by an admin or stored in the database).
    pub fn parse(s: &str) -> Option<PrimaryAccount> {
        match s {
            "admin" => Some(PrimaryAccount::Admin),
            "standard" => Some(PrimaryAccount::Standard),
            "skip" => Some(PrimaryAccount::Skip),
            _ => None,
        }
    }
}

/// A group's managed local admin for zero-touch setup (AccountConfiguration). Holds no password: each Mac's
/// is generated when its AccountConfiguration is queued and sealed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAccountSettings {
    pub group_id: String,
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
