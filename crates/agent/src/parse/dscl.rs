//! `dscl .` reads: the user list with UIDs, one user's record, a group's members, and `-authonly` failures.
//!
//! `dscl . -read` prints `Key: v1 v2` for values without spaces and `Key:` followed by indented lines, one
//! value each, when a value has spaces (`RealName:\n Joshua D. Miller`). Missing keys print
//! `No such key: K`; a missing record prints `… DS Error: -14136 (eDSRecordNotFound)`.

use std::collections::BTreeMap;

use super::{MAX_INPUT, ParseError, guard, quote, unrecognized};

const TOOL: &str = "dscl";

/// `dscl . -list /Users UniqueID`: `(short name, UID)` pairs. UIDs may be negative (`nobody  -2`).
pub fn parse_user_list(text: &str) -> Result<Vec<(String, i64)>, ParseError> {
    let text = guard(TOOL, text)?;
    tool_error(text)?;
    let mut users = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(uid), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(unrecognized(TOOL, line));
        };
        let uid = uid.parse().map_err(|_| unrecognized(TOOL, line))?;
        users.push((name.to_string(), uid));
    }
    Ok(users)
}

/// Attribute name -> values of one directory record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsRecord {
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl DsRecord {
    pub fn first(&self, key: &str) -> Option<&str> {
        self.attrs
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn values(&self, key: &str) -> &[String] {
        self.attrs.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn tool_error(text: &str) -> Result<(), ParseError> {
    match text.lines().find(|l| l.contains("DS Error:")) {
        Some(line) => Err(ParseError::ToolError {
            tool: TOOL,
            message: quote(line.trim()),
        }),
        None => Ok(()),
    }
}

/// Parses `dscl . -read <path> [keys…]`.
pub fn parse_record(text: &str) -> Result<DsRecord, ParseError> {
    let text = guard(TOOL, text)?;
    tool_error(text)?;
    let mut record = DsRecord::default();
    let mut open_key: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("No such key: ") {
            continue;
        }
        if line.starts_with(' ') {
            let key = open_key.as_ref().ok_or_else(|| unrecognized(TOOL, line))?;
            record
                .attrs
                .entry(key.clone())
                .or_default()
                .push(line.trim().to_string());
            continue;
        }
        let (key, rest) = line
            .split_once(':')
            .ok_or_else(|| unrecognized(TOOL, line))?;
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(unrecognized(TOOL, line));
        }
        let values: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
        open_key = values.is_empty().then(|| key.to_string());
        record
            .attrs
            .entry(key.to_string())
            .or_default()
            .extend(values);
    }
    if let Some(key) = open_key
        && record.values(&key).is_empty()
    {
        return Err(ParseError::Truncated {
            tool: TOOL,
            what: "an attribute has no value",
        });
    }
    Ok(record)
}

/// The user facts the agent reads from one `dscl . -read /Users/<name>` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub short_name: String,
    pub uid: i64,
    pub real_name: Option<String>,
    pub generated_uid: Option<String>,
    /// `;SecureToken;` appears in AuthenticationAuthority (a second, independent token signal).
    pub secure_token_tag: bool,
    /// `;DisabledTags;SecureToken` opts the user out of the automatic first token.
    pub secure_token_opted_out: bool,
}

pub const USER_KEYS: [&str; 4] = [
    "UniqueID",
    "RealName",
    "GeneratedUID",
    "AuthenticationAuthority",
];

pub fn parse_user(short_name: &str, text: &str) -> Result<UserRecord, ParseError> {
    let record = parse_record(text)?;
    let uid = record.first("UniqueID").ok_or(ParseError::Truncated {
        tool: TOOL,
        what: "UniqueID missing",
    })?;
    let uid = uid.parse().map_err(|_| unrecognized(TOOL, uid))?;
    let authority = record.values("AuthenticationAuthority");
    Ok(UserRecord {
        short_name: short_name.to_string(),
        uid,
        real_name: (!record.values("RealName").is_empty())
            .then(|| record.values("RealName").join(" ")),
        generated_uid: record.first("GeneratedUID").map(str::to_string),
        secure_token_tag: authority.iter().any(|a| a == ";SecureToken;"),
        secure_token_opted_out: authority
            .iter()
            .any(|a| a.starts_with(";DisabledTags;") && a.contains("SecureToken")),
    })
}

/// `dscl . -read /Groups/admin GroupMembership`: the member short names (none when the key is absent).
pub fn parse_group_membership(text: &str) -> Result<Vec<String>, ParseError> {
    if text.len() > MAX_INPUT {
        return Err(ParseError::Oversized {
            tool: TOOL,
            len: text.len(),
            limit: MAX_INPUT,
        });
    }
    if text.trim().is_empty() || text.trim_start().starts_with("No such key: ") {
        return Ok(Vec::new());
    }
    Ok(parse_record(text)?.values("GroupMembership").to_vec())
}

#[cfg(test)]
mod tests;
