//! `fdesetup list`: one `shortname,GUID` line per FileVault-enabled user.

use super::{MAX_INPUT, ParseError, unrecognized};

const TOOL: &str = "fdesetup";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVaultUser {
    pub short_name: String,
    pub guid: String,
}

/// True for the 8-4-4-4-12 GUID layout. Letters beyond hex are allowed because redacted captures
/// (`FB756838-XXXX-…`) use them; the layout is what tells a GUID from garbage.
pub(crate) fn looks_like_guid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_alphanumeric(),
        })
}

/// Parses `fdesetup list`. Empty output means no FileVault user (FileVault off), which is not an error.
pub fn parse_list(text: &str) -> Result<Vec<FileVaultUser>, ParseError> {
    if text.len() > MAX_INPUT {
        return Err(ParseError::Oversized {
            tool: TOOL,
            len: text.len(),
            limit: MAX_INPUT,
        });
    }
    let mut users = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, guid) = line
            .rsplit_once(',')
            .ok_or_else(|| unrecognized(TOOL, line))?;
        if name.is_empty() || !looks_like_guid(guid) {
            return Err(unrecognized(TOOL, line));
        }
        users.push(FileVaultUser {
            short_name: name.to_string(),
            guid: guid.to_string(),
        });
    }
    Ok(users)
}

/// Exact membership: the EscrowBootStrap script's substring test let `ann` pass for `joann`.
pub fn is_filevault_user(users: &[FileVaultUser], short_name: &str) -> bool {
    users.iter().any(|u| u.short_name == short_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_line_parses() {
        let users = parse_list("fvuser,85F41F44-22B3-6CB7-85A1-BCC2EA2B887A\n").unwrap();
        assert_eq!(
            users,
            vec![FileVaultUser {
                short_name: "fvuser".into(),
                guid: "85F41F44-22B3-6CB7-85A1-BCC2EA2B887A".into()
            }]
        );
    }

    #[test]
    fn several_users_blank_lines_and_crlf_parse() {
        let text = "\nalice,85F41F44-22B3-6CB7-85A1-BCC2EA2B887A\r\n\nbob,15F41F44-22B3-6CB7-85A1-BCC2EA2B887B\n";
        let users = parse_list(text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].short_name, "bob");
    }

    #[test]
    fn no_output_means_no_filevault_users() {
        assert_eq!(parse_list("").unwrap(), vec![]);
    }

    #[test]
    fn membership_is_exact_not_a_substring_test() {
        let users = parse_list("joann,85F41F44-22B3-6CB7-85A1-BCC2EA2B887A").unwrap();
        assert!(is_filevault_user(&users, "joann"));
        assert!(!is_filevault_user(&users, "ann"));
        assert!(!is_filevault_user(&users, "Joann"));
        assert!(!is_filevault_user(&users, ""));
    }

    #[test]
    fn truncated_garbage_and_huge_input_are_typed_errors() {
        assert!(parse_list("fvuser,85F41F44-22B3-6CB7").is_err());
        assert!(parse_list("fvuser").is_err());
        assert!(parse_list(",85F41F44-22B3-6CB7-85A1-BCC2EA2B887A").is_err());
        assert!(parse_list("Error: FileVault is Off.").is_err());
        assert!(parse_list("\u{0}\u{0}").is_err());
        let huge = "a,85F41F44-22B3-6CB7-85A1-BCC2EA2B887A\n".repeat(30_000);
        assert!(matches!(
            parse_list(&huge),
            Err(ParseError::Oversized { .. })
        ));
    }

    #[test]
    fn unicode_short_names_survive() {
        let users = parse_list("zoë,85F41F44-22B3-6CB7-85A1-BCC2EA2B887A").unwrap();
        assert_eq!(users[0].short_name, "zoë");
        assert!(!looks_like_guid("85F41F44-22B3-6CB7-85A1-BCC2EA2B887é"));
    }
}
