//! `AccountConfiguration` (ADE, while the Mac awaits configuration): the auto-setup admin created from a
//! `SALTED-SHA512-PBKDF2` password hash, the managed local user, and the Setup Assistant primary-account
//! options (`shared/docs/apple-mdm-protocol.md` §6).
//!
//! Guarantees: pure (the PBKDF2 derivation happens in `service`; this module only writes and reads the
//! plists); the hash's entropy and salt never appear in `Debug` output; a `passwordHash` that is not a small
//! plist of the expected shape is an error, never a panic.

use std::fmt;

use plist::{Dictionary, Value};

use crate::command::Command;
use crate::error::ProtocolError;

/// The dictionary key Apple's ShadowHashData uses for this scheme.
pub const PBKDF2_SCHEME: &str = "SALTED-SHA512-PBKDF2";
/// A `passwordHash` plist larger than this is refused unread (a real one is ~200 bytes).
pub const MAX_PASSWORD_HASH_PLIST: usize = 4096;

/// `{"SALTED-SHA512-PBKDF2": {entropy, salt, iterations}}`: the derived key (`entropy`, 128 bytes for
/// SHA-512 PBKDF2 as macOS stores it), its salt (32 bytes) and the iteration count.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub entropy: Vec<u8>,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PasswordHash({PBKDF2_SCHEME}, {} iterations, redacted)",
            self.iterations
        )
    }
}

impl PasswordHash {
    /// The binary plist that goes into `passwordHash` (data).
    pub fn to_plist(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut inner = Dictionary::new();
        inner.insert("entropy".into(), Value::Data(self.entropy.clone()));
        inner.insert("salt".into(), Value::Data(self.salt.clone()));
        inner.insert(
            "iterations".into(),
            Value::Integer(i64::from(self.iterations).into()),
        );
        let mut top = Dictionary::new();
        top.insert(PBKDF2_SCHEME.into(), Value::Dictionary(inner));
        let mut out = Vec::new();
        Value::Dictionary(top)
            .to_writer_binary(&mut out)
            .map_err(|e| ProtocolError::Encode(e.to_string()))?;
        Ok(out)
    }

    /// Read a `passwordHash` plist (binary or XML), as a Mac does.
    pub fn from_plist(bytes: &[u8]) -> Result<PasswordHash, ProtocolError> {
        let bad = |why: &str| ProtocolError::Malformed(format!("passwordHash: {why}"));
        if bytes.len() > MAX_PASSWORD_HASH_PLIST {
            return Err(bad("too large"));
        }
        let value = Value::from_reader(std::io::Cursor::new(bytes))
            .map_err(|_| bad("not a property list"))?;
        let inner = value
            .as_dictionary()
            .and_then(|d| d.get(PBKDF2_SCHEME))
            .and_then(Value::as_dictionary)
            .ok_or_else(|| bad("no SALTED-SHA512-PBKDF2 dictionary"))?;
        let data = |k: &str| match inner.get(k) {
            Some(Value::Data(d)) if !d.is_empty() => Ok(d.clone()),
            _ => Err(bad(&format!("{k} must be non-empty data"))),
        };
        let iterations = inner
            .get("iterations")
            .and_then(Value::as_unsigned_integer)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("iterations must be a positive integer"))?;
        Ok(PasswordHash {
            entropy: data("entropy")?,
            salt: data("salt")?,
            iterations,
        })
    }
}

/// One `AutoSetupAdminAccounts` item (Apple uses the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSetupAdmin {
    pub short_name: String,
    pub full_name: String,
    pub password_hash: PasswordHash,
    pub hidden: bool,
}

/// An `AccountConfiguration` command's keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountConfiguration {
    pub admin: Option<AutoSetupAdmin>,
    pub skip_primary_setup_account_creation: bool,
    pub set_primary_setup_account_as_regular_user: bool,
    pub dont_auto_populate_primary_account_info: bool,
    pub lock_primary_account_info: bool,
    pub primary_account_full_name: Option<String>,
    pub primary_account_user_name: Option<String>,
    pub managed_local_user_short_name: Option<String>,
}

impl AccountConfiguration {
    /// The command. `SkipPrimarySetupAccountCreation` and `SetPrimarySetupAccountAsRegularUser` are written
    /// only with an admin (Apple: each requires `AutoSetupAdminAccounts`).
    pub fn command(&self, uuid: String) -> Result<Command, ProtocolError> {
        let mut body = Dictionary::new();
        if let Some(a) = &self.admin {
            let mut item = Dictionary::new();
            item.insert("shortName".into(), Value::String(a.short_name.clone()));
            item.insert("fullName".into(), Value::String(a.full_name.clone()));
            item.insert(
                "passwordHash".into(),
                Value::Data(a.password_hash.to_plist()?),
            );
            item.insert("hidden".into(), Value::Boolean(a.hidden));
            body.insert(
                "AutoSetupAdminAccounts".into(),
                Value::Array(vec![Value::Dictionary(item)]),
            );
            body.insert(
                "SkipPrimarySetupAccountCreation".into(),
                Value::Boolean(self.skip_primary_setup_account_creation),
            );
            body.insert(
                "SetPrimarySetupAccountAsRegularUser".into(),
                Value::Boolean(self.set_primary_setup_account_as_regular_user),
            );
        }
        body.insert(
            "DontAutoPopulatePrimaryAccountInfo".into(),
            Value::Boolean(self.dont_auto_populate_primary_account_info),
        );
        body.insert(
            "LockPrimaryAccountInfo".into(),
            Value::Boolean(self.lock_primary_account_info),
        );
        for (key, value) in [
            ("PrimaryAccountFullName", &self.primary_account_full_name),
            ("PrimaryAccountUserName", &self.primary_account_user_name),
            (
                "ManagedLocalUserShortName",
                &self.managed_local_user_short_name,
            ),
        ] {
            if let Some(v) = value {
                body.insert(key.into(), Value::String(v.clone()));
            }
        }
        Ok(Command::with_body(uuid, "AccountConfiguration", body))
    }

    /// Read a received command body (what a Mac does); unknown keys are ignored as Macs do.
    pub fn from_body(body: &Dictionary) -> Result<AccountConfiguration, ProtocolError> {
        let flag = |k: &str| body.get(k).and_then(Value::as_boolean).unwrap_or(false);
        let text = |k: &str| body.get(k).and_then(Value::as_string).map(str::to_owned);
        let admin = match body.get("AutoSetupAdminAccounts") {
            None => None,
            Some(Value::Array(items)) => match items.first().and_then(Value::as_dictionary) {
                None => None,
                Some(item) => {
                    let short_name = item
                        .get("shortName")
                        .and_then(Value::as_string)
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            ProtocolError::Malformed(
                                "AutoSetupAdminAccounts: shortName is required".into(),
                            )
                        })?;
                    let hash = match item.get("passwordHash") {
                        Some(Value::Data(d)) => PasswordHash::from_plist(d)?,
                        _ => {
                            return Err(ProtocolError::Malformed(
                                "AutoSetupAdminAccounts: passwordHash must be data".into(),
                            ));
                        }
                    };
                    Some(AutoSetupAdmin {
                        short_name: short_name.to_owned(),
                        full_name: item
                            .get("fullName")
                            .and_then(Value::as_string)
                            .unwrap_or(short_name)
                            .to_owned(),
                        password_hash: hash,
                        hidden: item
                            .get("hidden")
                            .and_then(Value::as_boolean)
                            .unwrap_or(false),
                    })
                }
            },
            Some(_) => {
                return Err(ProtocolError::Malformed(
                    "AutoSetupAdminAccounts must be an array".into(),
                ));
            }
        };
        Ok(AccountConfiguration {
            admin,
            skip_primary_setup_account_creation: flag("SkipPrimarySetupAccountCreation"),
            set_primary_setup_account_as_regular_user: flag("SetPrimarySetupAccountAsRegularUser"),
            dont_auto_populate_primary_account_info: flag("DontAutoPopulatePrimaryAccountInfo"),
            lock_primary_account_info: flag("LockPrimaryAccountInfo"),
            primary_account_full_name: text("PrimaryAccountFullName"),
            primary_account_user_name: text("PrimaryAccountUserName"),
            managed_local_user_short_name: text("ManagedLocalUserShortName"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> PasswordHash {
        PasswordHash {
            entropy: vec![7; 128],
            salt: vec![9; 32],
            iterations: 40_000,
        }
    }

    #[test]
    fn password_hash_is_a_binary_plist_of_apples_shape_and_reads_back() {
        let bytes = hash().to_plist().unwrap();
        assert!(bytes.starts_with(b"bplist00"));
        let v = Value::from_reader(std::io::Cursor::new(&bytes)).unwrap();
        let inner = v.as_dictionary().unwrap()[PBKDF2_SCHEME]
            .as_dictionary()
            .unwrap();
        assert_eq!(inner["iterations"].as_unsigned_integer(), Some(40_000));
        assert_eq!(inner["salt"].as_data().unwrap().len(), 32);
        assert_eq!(PasswordHash::from_plist(&bytes).unwrap(), hash());
        let debug = format!("{:?}", hash());
        assert!(
            !debug.contains("7, 7") && !debug.contains("9, 9"),
            "{debug}"
        );
    }

    #[test]
    fn bad_password_hashes_are_errors() {
        for bad in [
            b"".to_vec(),
            b"bplist00junk".to_vec(),
            vec![0u8; MAX_PASSWORD_HASH_PLIST + 1],
            b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict/></plist>".to_vec(),
        ] {
            assert!(PasswordHash::from_plist(&bad).is_err());
        }
    }

    #[test]
    fn account_configuration_writes_apples_keys_and_reads_back() {
        let cfg = AccountConfiguration {
            admin: Some(AutoSetupAdmin {
                short_name: "mgmt".into(),
                full_name: "Management".into(),
                password_hash: hash(),
                hidden: true,
            }),
            skip_primary_setup_account_creation: false,
            set_primary_setup_account_as_regular_user: true,
            dont_auto_populate_primary_account_info: false,
            lock_primary_account_info: true,
            primary_account_full_name: Some("Jane Doe".into()),
            primary_account_user_name: Some("jdoe".into()),
            managed_local_user_short_name: Some("mgmt".into()),
        };
        let command = cfg.command("u".into()).unwrap();
        assert_eq!(command.request_type, "AccountConfiguration");
        let xml = command.to_xml().unwrap();
        let parsed = Command::from_raw_plist(&xml).unwrap();
        let body = &parsed.body;
        for key in [
            "AutoSetupAdminAccounts",
            "SkipPrimarySetupAccountCreation",
            "SetPrimarySetupAccountAsRegularUser",
            "DontAutoPopulatePrimaryAccountInfo",
            "LockPrimaryAccountInfo",
            "PrimaryAccountFullName",
            "PrimaryAccountUserName",
            "ManagedLocalUserShortName",
        ] {
            assert!(body.contains_key(key), "{key}");
        }
        let item = body["AutoSetupAdminAccounts"].as_array().unwrap()[0]
            .as_dictionary()
            .unwrap();
        assert!(item["passwordHash"].as_data().is_some());
        assert_eq!(AccountConfiguration::from_body(body).unwrap(), cfg);
    }
}
