//! `diskutil apfs listcryptousers /`: the APFS crypto users of the Data volume, in both layouts.
//!
//! Intel (and 10.15) entries carry only `Type:`; Apple silicon entries add `Volume Owner: Yes|No`.
//! The Bootstrap Token shows up as an `MDM Bootstrap Token External Key` entry, a Personal Recovery Key as a
//! `Personal Recovery User` with the fixed UUID [`PERSONAL_RECOVERY_UUID`].

use serde::Serialize;

use super::fdesetup::looks_like_guid;
use super::{ParseError, guard, unrecognized};

const TOOL: &str = "diskutil";
pub const PERSONAL_RECOVERY_UUID: &str = "EBC6C064-0000-11AA-AA11-00306543ECAC";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum CryptoUserKind {
    LocalOpenDirectoryUser,
    PersonalRecoveryUser,
    BootstrapTokenExternalKey,
    LocalRecoveryUser,
    IcloudRecoveryUser,
    DiskUser,
    /// A type this parser does not know, kept verbatim (quoted and cut short).
    Other(String),
}

impl CryptoUserKind {
    fn from_type(s: &str) -> Self {
        match s {
            "Local Open Directory User" => Self::LocalOpenDirectoryUser,
            "Personal Recovery User" => Self::PersonalRecoveryUser,
            "MDM Bootstrap Token External Key" => Self::BootstrapTokenExternalKey,
            "Local Recovery User" => Self::LocalRecoveryUser,
            "iCloud Recovery User" => Self::IcloudRecoveryUser,
            "Disk User" => Self::DiskUser,
            other => Self::Other(super::quote(other)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CryptoUser {
    /// For a Local Open Directory User, the user's GeneratedUID.
    pub uuid: String,
    pub kind: CryptoUserKind,
    /// `Some` only on Apple silicon, where each entry says whether it is a volume owner.
    pub volume_owner: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CryptoUsers {
    pub disk: String,
    /// The count the header announced; may differ from `users.len()` in trimmed captures.
    pub declared: usize,
    pub users: Vec<CryptoUser>,
}

impl CryptoUsers {
    pub fn has_bootstrap_token_key(&self) -> bool {
        self.users
            .iter()
            .any(|u| u.kind == CryptoUserKind::BootstrapTokenExternalKey)
    }

    /// Whether the user with this GeneratedUID is a crypto user (that is, holds a Secure Token).
    pub fn find(&self, generated_uid: &str) -> Option<&CryptoUser> {
        self.users.iter().find(|u| {
            u.kind == CryptoUserKind::LocalOpenDirectoryUser
                && u.uuid.eq_ignore_ascii_case(generated_uid)
        })
    }

    pub fn token_holder_count(&self) -> usize {
        self.users
            .iter()
            .filter(|u| u.kind == CryptoUserKind::LocalOpenDirectoryUser)
            .count()
    }
}

/// True when diskutil refused because `/` is not on APFS (HFS+ Macs, very old macOS).
pub fn says_not_apfs(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("not an apfs") || lower.contains("is not apfs")
}

pub fn parse_listcryptousers(text: &str) -> Result<CryptoUsers, ParseError> {
    let text = guard(TOOL, text)?;
    let mut lines = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or(ParseError::Empty { tool: TOOL })?;
    let (disk, declared) = parse_header(header).ok_or_else(|| unrecognized(TOOL, header))?;

    let mut users: Vec<CryptoUser> = Vec::new();
    let mut current: Option<(String, Option<CryptoUserKind>, Option<bool>)> = None;
    let finish = |entry: (String, Option<CryptoUserKind>, Option<bool>),
                  users: &mut Vec<CryptoUser>| match entry {
        (uuid, Some(kind), volume_owner) => {
            users.push(CryptoUser {
                uuid,
                kind,
                volume_owner,
            });
            Ok(())
        }
        (_, None, _) => Err(ParseError::Truncated {
            tool: TOOL,
            what: "an entry has no Type line",
        }),
    };
    for line in lines {
        let body = line.trim_start_matches(['|', ' ']);
        if body.is_empty() {
            continue; // a bare `|` connector
        }
        if let Some(uuid) = line.strip_prefix("+-- ") {
            if let Some(entry) = current.take() {
                finish(entry, &mut users)?;
            }
            let uuid = uuid.trim();
            if !looks_like_guid(uuid) {
                return Err(unrecognized(TOOL, line));
            }
            current = Some((uuid.to_string(), None, None));
            continue;
        }
        let Some(entry) = current.as_mut() else {
            return Err(unrecognized(TOOL, line));
        };
        let (key, value) = body
            .split_once(':')
            .ok_or_else(|| unrecognized(TOOL, line))?;
        let value = value.trim();
        match key {
            "Type" => entry.1 = Some(CryptoUserKind::from_type(value)),
            "Volume Owner" => {
                entry.2 = Some(match value {
                    "Yes" => true,
                    "No" => false,
                    _ => return Err(unrecognized(TOOL, line)),
                })
            }
            _ => {} // other attributes (hints, …) are not needed
        }
    }
    if let Some(entry) = current.take() {
        finish(entry, &mut users)?;
    }
    if users.len() > declared {
        return Err(unrecognized(TOOL, header));
    }
    Ok(CryptoUsers {
        disk,
        declared,
        users,
    })
}

/// `Cryptographic users for disk1s5 (4 found)`
fn parse_header(line: &str) -> Option<(String, usize)> {
    let rest = line.trim().strip_prefix("Cryptographic users for ")?;
    let (disk, count) = rest.split_once(" (")?;
    let count = count.strip_suffix(" found)")?.parse().ok()?;
    if disk.is_empty() || disk.contains(char::is_whitespace) {
        return None;
    }
    Some((disk.to_string(), count))
}

#[cfg(test)]
mod tests;
