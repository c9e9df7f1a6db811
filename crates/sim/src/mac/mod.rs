//! The model of one Mac: hardware, macOS version, enrollment, users and their Secure Tokens, the Bootstrap
//! Token, and the FileVault crypto users, following `shared/docs/macos-tokens-and-admin-needs.md` §1.
//!
//! Guarantees: pure (no I/O, no clock, no randomness: the Bootstrap Token bytes derive from the UDID and a
//! generation counter); every rule is cited next to the code that applies it (`§1.x rule n`); passwords are
//! kept only as salted digests, and the Bootstrap Token bytes never appear in `Debug` output. Serialisable to
//! JSON so the fake macOS tools can share one state file with a running simulation.

mod events;
mod types;
mod users;

#[cfg(test)]
mod tests;

pub use events::{Checkin, EraseOutcome, FetchReason, Served};
pub use types::{
    AccountSetup, AddUser, Arch, BtAuth, CryptoUser, CryptoUserKind, Enrollment, MacSpec,
    OsVersion, ShadowHash, SimToken, User, UserKind,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Fixed GUID of the Personal Recovery User crypto user (§1.1).
pub const PERSONAL_RECOVERY_USER_GUID: &str = "EBC6C064-0000-11AA-AA11-00306543ECAC";

/// Why an action on the Mac failed, in the words a Mac admin would recognise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("no user named '{0}' exists on this Mac")]
    NoSuchUser(String),
    #[error("a user named '{0}' already exists")]
    UserExists(String),
    #[error("wrong password for user '{0}'")]
    BadCredentials(String),
    #[error("'{0}' is not an administrator")]
    NotAnAdmin(String),
    #[error("admin '{0}' lacks a Secure Token, so it cannot grant one")]
    AdminLacksSecureToken(String),
    #[error("no token holder exists (No existing unlock record)")]
    NoTokenHolder,
    #[error("Secure Token does not apply: macOS {0} predates APFS Secure Tokens (10.13)")]
    SecureTokenNotApplicable(OsVersion),
    #[error("the Bootstrap Token needs macOS 10.15 or later (this Mac runs {0})")]
    BootstrapTokenNotSupported(OsVersion),
    #[error(
        "the Mac is not enrolled in MDM (or its enrollment cannot escrow on this macOS version)"
    )]
    NotEnrolled,
    #[error("the MDM server does not advertise com.apple.mdm.bootstraptoken")]
    CapabilityNotAdvertised,
    #[error("network accounts never get a Secure Token; log in with a mobile account")]
    NetworkAccount(String),
    #[error(
        "AccountConfiguration needs an ADE Mac that is awaiting configuration (Setup Assistant)"
    )]
    NotAwaitingConfiguration,
    #[error(
        "this action needs volume-owner authorisation: no escrowed Bootstrap Token usable for authentication"
    )]
    OwnerAuthorizationRequired,
}

/// One simulated Mac. Fields are public so tests and tools can set up odd states directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mac {
    pub udid: String,
    pub serial_number: String,
    pub device_name: String,
    pub model: String,
    pub arch: Arch,
    pub os: OsVersion,
    pub enrollment: Enrollment,
    pub supervised: bool,
    pub filevault: bool,
    /// The server advertises `com.apple.mdm.bootstraptoken` (or, on 10.15, sent MDMOptions
    /// `BootstrapTokenAllowed`).
    pub bt_capability: bool,
    /// Apple silicon: `BootstrapTokenAllowedForAuthentication`.
    pub bt_auth: BtAuth,
    /// ADE: sitting in Setup Assistant until `DeviceConfigured` (§1.7).
    pub awaiting_configuration: bool,
    pub users: Vec<User>,
    /// The Bootstrap Token that exists on this Mac, if any (§1.1).
    pub bootstrap_token: Option<SimToken>,
    /// "Escrowed" as the device believes it: set once the server answered 200 (§1.5).
    pub escrowed: bool,
    /// The copy the server holds as far as this Mac's simulation knows (offline tools use it; §1.1).
    pub server_copy: Option<SimToken>,
    /// A FileVault Personal Recovery Key exists.
    pub personal_recovery_key: bool,
    /// `MDMOptions` as last set by the server (Settings command), kept verbatim for DeviceInformation.
    #[serde(default)]
    pub mdm_options: Vec<(String, bool)>,
    /// AccountConfiguration's primary-account options, until Setup Assistant finishes.
    #[serde(default)]
    pub account_setup: Option<AccountSetup>,
    /// Bumped each time a new Bootstrap Token is generated, so each differs.
    pub bt_generation: u32,
    /// How many times this Mac was erased.
    pub erase_count: u32,
    next_uid: i64,
}

impl Mac {
    /// A fresh Mac as it leaves Setup Assistant's enrollment step (no users yet).
    pub fn new(spec: MacSpec) -> Mac {
        let bt_auth = match (spec.arch, spec.enrollment) {
            (Arch::Intel, _) => BtAuth::NotSupported,
            // §1.1: allowed automatically for ADE; manual enrollment needs the user to allow it in recoveryOS.
            (Arch::AppleSilicon, Enrollment::Ade) => BtAuth::Allowed,
            (Arch::AppleSilicon, _) => BtAuth::Disallowed,
        };
        let model = match spec.arch {
            Arch::Intel => "MacBookPro16,1",
            Arch::AppleSilicon => "Mac14,2",
        };
        Mac {
            serial_number: serial_for(&spec.udid),
            device_name: format!("Virtual Mac {}", short_id(&spec.udid)),
            model: model.into(),
            udid: spec.udid,
            arch: spec.arch,
            os: spec.os,
            enrollment: spec.enrollment,
            supervised: spec.enrollment == Enrollment::Ade,
            filevault: spec.filevault,
            bt_capability: spec.bt_capability,
            bt_auth,
            awaiting_configuration: spec.enrollment == Enrollment::Ade,
            users: Vec::new(),
            bootstrap_token: None,
            escrowed: false,
            server_copy: None,
            personal_recovery_key: spec.filevault,
            mdm_options: Vec::new(),
            account_setup: None,
            bt_generation: 0,
            erase_count: 0,
            next_uid: 501,
        }
    }

    pub fn user(&self, short_name: &str) -> Result<&User, MacError> {
        self.users
            .iter()
            .find(|u| u.short_name == short_name)
            .ok_or_else(|| MacError::NoSuchUser(short_name.into()))
    }

    pub(crate) fn user_mut(&mut self, short_name: &str) -> Result<&mut User, MacError> {
        self.users
            .iter_mut()
            .find(|u| u.short_name == short_name)
            .ok_or_else(|| MacError::NoSuchUser(short_name.into()))
    }

    /// Whether `password` is `short_name`'s current password (its plain-text digest, or for an account created
    /// from a hash, that hash).
    pub fn password_matches(&self, short_name: &str, password: &str) -> bool {
        self.user(short_name)
            .is_ok_and(|u| user_password_matches(u, password))
    }

    /// Whether any user holds a Secure Token.
    pub fn has_token_holder(&self) -> bool {
        self.users.iter().any(|u| u.secure_token)
    }

    /// Short names of users holding a Secure Token.
    pub fn token_holders(&self) -> Vec<&str> {
        self.users
            .iter()
            .filter(|u| u.secure_token)
            .map(|u| u.short_name.as_str())
            .collect()
    }

    /// Users FileVault lets unlock the disk: every token holder while FileVault is on (`fdesetup list`).
    pub fn filevault_users(&self) -> Vec<&User> {
        if !self.filevault {
            return Vec::new();
        }
        self.users.iter().filter(|u| u.secure_token).collect()
    }

    /// The APFS crypto users of the Data volume (§1.1, §1.8): one Local Open Directory User per token holder,
    /// the Personal Recovery User once a PRK exists, the MDM Bootstrap Token External Key once a BT exists.
    pub fn crypto_users(&self) -> Vec<CryptoUser> {
        let apple_silicon = self.arch == Arch::AppleSilicon;
        let mut out: Vec<CryptoUser> = self
            .users
            .iter()
            .filter(|u| u.secure_token)
            .map(|u| CryptoUser {
                uuid: u.guid.clone(),
                kind: CryptoUserKind::LocalOpenDirectoryUser,
                volume_owner: apple_silicon && u.volume_owner,
            })
            .collect();
        if self.personal_recovery_key {
            out.push(CryptoUser {
                uuid: PERSONAL_RECOVERY_USER_GUID.into(),
                kind: CryptoUserKind::PersonalRecoveryUser,
                volume_owner: apple_silicon,
            });
        }
        if let Some(bt) = &self.bootstrap_token {
            // §1.4: the BT itself is an owner-type crypto user.
            out.push(CryptoUser {
                uuid: bt.uuid.clone(),
                kind: CryptoUserKind::BootstrapTokenExternalKey,
                volume_owner: apple_silicon,
            });
        }
        out
    }

    /// Whether the Mac may send SetBootstrapToken at all (§1.5 preconditions, less the user's token).
    pub fn can_escrow(&self) -> Result<(), MacError> {
        if !self.os.supports_bootstrap_token() {
            return Err(MacError::BootstrapTokenNotSupported(self.os));
        }
        // §1.5: 10.15 needs ADE assignment; 10.15.4+ accepts a user-approved (manual) enrollment.
        let enrolled = match self.enrollment {
            Enrollment::None => false,
            Enrollment::Ade => true,
            Enrollment::Manual => self.os >= OsVersion::new(10, 15, 4),
        };
        if !enrolled {
            return Err(MacError::NotEnrolled);
        }
        if !self.bt_capability {
            return Err(MacError::CapabilityNotAdvertised);
        }
        Ok(())
    }

    /// `EACSPreflight` as DeviceInformation reports it (§1.6, §1.4): `success` only on Apple silicon (macOS 12+,
    /// where Erase All Content and Settings exists) with an escrowed Bootstrap Token the Mac may use for
    /// authentication; `not supported` on Intel and older systems; otherwise the reason the preflight fails.
    /// Apple documents the value as `success` | `not supported` | `unknown failure` | a reason; the reason
    /// strings below name the precondition that is missing (the exact wording of Apple's is unverified).
    pub fn eacs_preflight(&self) -> &'static str {
        if self.arch == Arch::Intel || self.os < OsVersion::new(12, 0, 0) {
            return "not supported";
        }
        if self.bootstrap_token.is_none() {
            return "no bootstrap token exists on this Mac";
        }
        if !self.escrowed {
            return "bootstrap token is not escrowed to the MDM server";
        }
        match self.bt_auth {
            BtAuth::Allowed => "success",
            BtAuth::Disallowed => "bootstrap token is not allowed for authentication",
            BtAuth::NotSupported => "unknown failure",
        }
    }

    pub(crate) fn next_uid(&mut self) -> i64 {
        let uid = self.next_uid;
        self.next_uid += 1;
        uid
    }

    /// A new Bootstrap Token: deterministic bytes derived from the UDID and generation.
    pub(crate) fn generate_bootstrap_token(&mut self) -> SimToken {
        self.bt_generation += 1;
        let mut bytes = Vec::with_capacity(128);
        for block in 0u8..4 {
            let mut h = Sha256::new();
            h.update(self.udid.as_bytes());
            h.update(self.bt_generation.to_be_bytes());
            h.update([block]);
            bytes.extend_from_slice(&h.finalize());
        }
        let uuid = guid_from(&format!("bt:{}:{}", self.udid, self.bt_generation));
        SimToken::new(bytes, uuid)
    }
}

/// A stable uppercase GUID derived from `seed`.
pub fn guid_from(seed: &str) -> String {
    let d = Sha256::digest(seed.as_bytes());
    let h = hex::encode_upper(&d[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn short_id(udid: &str) -> String {
    udid.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect()
}

fn serial_for(udid: &str) -> String {
    let d = Sha256::digest(udid.as_bytes());
    format!("C02{}", &hex::encode_upper(&d[..5])[..9])
}

/// A user's password check: the plain-text digest, or else the hash the account was created from.
pub(crate) fn user_password_matches(u: &User, password: &str) -> bool {
    match (&u.password_digest, &u.shadow_hash) {
        (Some(d), _) => *d == password_digest(&u.guid, password),
        (None, Some(h)) => h.matches(password),
        (None, None) => false,
    }
}

/// Salted digest of a password; the model never keeps the password itself.
pub(crate) fn password_digest(guid: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(guid.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}
