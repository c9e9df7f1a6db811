//! The vocabulary of the model: hardware, versions, enrollment, users, crypto users.

use std::fmt;

use serde::{Deserialize, Serialize};

/// §1.1 `arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Intel,
    AppleSilicon,
}

/// §1.1 enrollment: none, manual (user-approved), or Automated Device Enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrollment {
    None,
    Manual,
    Ade,
}

/// §1.1 per-user kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    Local,
    Mobile,
    Network,
    /// ADE `AutoSetupAdminAccounts`: created from a password hash.
    ManagedAdmin,
}

/// `BootstrapTokenAllowedForAuthentication` (Apple silicon only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BtAuth {
    Allowed,
    Disallowed,
    NotSupported,
}

impl BtAuth {
    pub fn wire(&self) -> protocol::results::BootstrapTokenAuth {
        use protocol::results::BootstrapTokenAuth as W;
        match self {
            BtAuth::Allowed => W::Allowed,
            BtAuth::Disallowed => W::Disallowed,
            BtAuth::NotSupported => W::NotSupported,
        }
    }
}

/// A macOS version such as 10.15.4 or 14.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OsVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl OsVersion {
    pub const fn new(major: u16, minor: u16, patch: u16) -> OsVersion {
        OsVersion {
            major,
            minor,
            patch,
        }
    }

    /// "10.15.4", "14", "26.1"; at most three numeric parts.
    pub fn parse(s: &str) -> Option<OsVersion> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(OsVersion::new(major, minor, patch))
    }

    /// APFS Secure Tokens exist from 10.13 (S9: older Macs are NA).
    pub fn has_secure_token(&self) -> bool {
        *self >= OsVersion::new(10, 13, 0)
    }

    /// The Bootstrap Token exists from 10.15.
    pub fn supports_bootstrap_token(&self) -> bool {
        *self >= OsVersion::new(10, 15, 0)
    }

    /// macOS 11 (Big Sur) or later.
    pub fn is_11_or_later(&self) -> bool {
        self.major >= 11
    }

    /// A plausible build number (for Authenticate and DeviceInformation).
    pub fn build_version(&self) -> String {
        let train = if self.major >= 11 {
            // 11 → 20, 14 → 23, 15 → 24, 26 → 25.
            if self.major >= 26 { 25 } else { self.major + 9 }
        } else {
            self.minor + 4
        };
        let letter = (b'A' + (self.patch.min(25) as u8)) as char;
        format!("{train}{letter}{}", 100 + self.minor * 10)
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

impl TryFrom<String> for OsVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        OsVersion::parse(&s).ok_or_else(|| format!("not a macOS version: {s:?}"))
    }
}

impl From<OsVersion> for String {
    fn from(v: OsVersion) -> String {
        v.to_string()
    }
}

/// What a new Mac looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct MacSpec {
    pub udid: String,
    pub arch: Arch,
    pub os: OsVersion,
    pub enrollment: Enrollment,
    pub filevault: bool,
    pub bt_capability: bool,
}

impl MacSpec {
    /// An Apple-silicon ADE Mac on macOS 14 with FileVault on, enrolled in a server that advertises the
    /// Bootstrap Token capability (S1's Mac).
    pub fn apple_silicon_ade(udid: &str) -> MacSpec {
        MacSpec {
            udid: udid.into(),
            arch: Arch::AppleSilicon,
            os: OsVersion::new(14, 0, 0),
            enrollment: Enrollment::Ade,
            filevault: true,
            bt_capability: true,
        }
    }
}

/// Opaque Bootstrap Token bytes (hex in JSON) and the UUID of its crypto user. `Debug` hides the bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimToken {
    pub hex: String,
    pub uuid: String,
}

impl SimToken {
    pub fn new(bytes: Vec<u8>, uuid: String) -> SimToken {
        SimToken {
            hex: hex::encode(bytes),
            uuid,
        }
    }

    /// The token bytes; a malformed state file yields an empty token (which never matches).
    pub fn bytes(&self) -> Vec<u8> {
        hex::decode(&self.hex).unwrap_or_default()
    }
}

impl fmt::Debug for SimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SimToken({} bytes, uuid {}, redacted)",
            self.hex.len() / 2,
            self.uuid
        )
    }
}

/// §1.1 per user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub short_name: String,
    pub real_name: String,
    pub guid: String,
    pub uid: i64,
    pub admin: bool,
    pub kind: UserKind,
    pub secure_token: bool,
    /// Apple silicon volume owner (§1.4).
    pub volume_owner: bool,
    /// `;DisabledTags;SecureToken` appended to `AuthenticationAuthority` (§1.2 rule 2).
    pub secure_token_disabled_tag: bool,
    /// Salted digest; `None` = the account has no usable password.
    pub password_digest: Option<String>,
    /// The password was ever set in plain text on this Mac (not only as a hash).
    pub plain_text_password_set: bool,
    pub has_logged_in: bool,
    pub logged_in: bool,
    /// The password was replaced by a hash while holding a token: the token is out of sync (§1.3).
    pub token_out_of_sync: bool,
    /// The `SALTED-SHA512-PBKDF2` hash the account was created from (AccountConfiguration), when it has no
    /// plain-text password yet.
    #[serde(default)]
    pub shadow_hash: Option<ShadowHash>,
}

/// A `SALTED-SHA512-PBKDF2` ShadowHashData entry (hex in JSON). `Debug` hides the entropy and salt.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowHash {
    pub entropy_hex: String,
    pub salt_hex: String,
    pub iterations: u32,
}

impl fmt::Debug for ShadowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShadowHash({} iterations, redacted)", self.iterations)
    }
}

impl ShadowHash {
    pub fn from_wire(h: &protocol::accounts::PasswordHash) -> ShadowHash {
        ShadowHash {
            entropy_hex: hex::encode(&h.entropy),
            salt_hex: hex::encode(&h.salt),
            iterations: h.iterations,
        }
    }

    /// Whether `password` derives this hash (PBKDF2-HMAC-SHA512, as macOS checks a login).
    pub fn matches(&self, password: &str) -> bool {
        let (Ok(entropy), Ok(salt)) = (hex::decode(&self.entropy_hex), hex::decode(&self.salt_hex))
        else {
            return false;
        };
        if entropy.is_empty() || self.iterations == 0 {
            return false;
        }
        let mut derived = vec![0u8; entropy.len()];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(
            password.as_bytes(),
            &salt,
            self.iterations,
            &mut derived,
        );
        derived == entropy
    }
}

/// What AccountConfiguration told Setup Assistant about the primary account (kept until setup finishes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSetup {
    pub skip_primary_account: bool,
    pub primary_account_regular_user: bool,
    pub managed_local_user: Option<String>,
}

/// Creating a user: `sysadminctl -addUser`, `dscl`, Users & Groups, Setup Assistant, ADE, a mobile account.
#[derive(Debug, Clone, PartialEq)]
pub struct AddUser {
    pub short_name: String,
    pub real_name: String,
    pub admin: bool,
    pub kind: UserKind,
    /// Set in plain text (`-password`, `dscl . -passwd`, a login); `None` = no password yet.
    pub password: Option<String>,
    /// `(admin, password)` of a token-holding admin authorising the creation (`-adminUser/-adminPassword`,
    /// or an admin creating the user in System Settings › Users & Groups).
    pub authorized_by: Option<(String, String)>,
    /// Append `;DisabledTags;SecureToken` before any password is set.
    pub disable_secure_token: bool,
}

impl AddUser {
    pub fn new(short_name: &str, admin: bool, kind: UserKind, password: Option<&str>) -> AddUser {
        AddUser {
            short_name: short_name.into(),
            real_name: real_name_for(short_name),
            admin,
            kind,
            password: password.map(str::to_owned),
            authorized_by: None,
            disable_secure_token: false,
        }
    }

    pub fn authorized_by(mut self, admin: &str, password: &str) -> AddUser {
        self.authorized_by = Some((admin.into(), password.into()));
        self
    }

    pub fn disabling_secure_token(mut self) -> AddUser {
        self.disable_secure_token = true;
        self
    }
}

/// "jdoe" → "Jdoe"; callers wanting a real RealName set it on [`AddUser`].
pub fn real_name_for(short_name: &str) -> String {
    let mut c = short_name.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// APFS crypto-user types as `diskutil apfs listcryptousers` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoUserKind {
    LocalOpenDirectoryUser,
    PersonalRecoveryUser,
    BootstrapTokenExternalKey,
}

impl CryptoUserKind {
    pub fn diskutil_name(&self) -> &'static str {
        match self {
            CryptoUserKind::LocalOpenDirectoryUser => "Local Open Directory User",
            CryptoUserKind::PersonalRecoveryUser => "Personal Recovery User",
            CryptoUserKind::BootstrapTokenExternalKey => "MDM Bootstrap Token External Key",
        }
    }
}

/// One entry of the crypto-user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoUser {
    pub uuid: String,
    pub kind: CryptoUserKind,
    pub volume_owner: bool,
}
