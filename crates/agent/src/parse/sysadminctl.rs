//! `sysadminctl`: the `-secureTokenStatus` line and the hints its other subcommands print.
//!
//! `sysadminctl` logs through NSLog, so its answer arrives on **stderr** behind a timestamp prefix
//! (`2024-07-25 08:53:24.446 sysadminctl[35601:822344] `), names the user by **RealName**, and the tool can
//! exit 0 after printing a failure. Callers pass stdout and stderr together.

use super::{ParseError, guard, unrecognized};

const TOOL: &str = "sysadminctl";
const STATUS_MARK: &str = "Secure token is ";

/// One `-secureTokenStatus` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureTokenStatus {
    pub enabled: bool,
    /// The name sysadminctl printed: the user's RealName (or short name when it has none).
    pub user_label: String,
}

/// Parses `sysadminctl -secureTokenStatus <user>` output (stdout and stderr together).
///
/// Lines without the status phrase (other NSLog noise) are skipped; two status lines that disagree are an
/// error rather than a guess.
pub fn parse_secure_token_status(text: &str) -> Result<SecureTokenStatus, ParseError> {
    let text = guard(TOOL, text)?;
    let mut found: Option<SecureTokenStatus> = None;
    for line in text.lines() {
        let Some(at) = line.find(STATUS_MARK) else {
            continue;
        };
        let rest = &line[at + STATUS_MARK.len()..];
        let (word, user) = rest
            .split_once(" for user ")
            .ok_or_else(|| unrecognized(TOOL, line))?;
        let enabled = match word {
            "ENABLED" => true,
            "DISABLED" => false,
            _ => return Err(unrecognized(TOOL, line)),
        };
        let user_label = user.trim_end().to_string();
        if user_label.is_empty() {
            return Err(ParseError::Truncated {
                tool: TOOL,
                what: "user name missing after 'for user'",
            });
        }
        let status = SecureTokenStatus {
            enabled,
            user_label,
        };
        match &found {
            Some(previous) if *previous != status => return Err(unrecognized(TOOL, line)),
            _ => found = Some(status),
        }
    }
    match found {
        Some(status) => Ok(status),
        None => Err(unrecognized(
            TOOL,
            text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""),
        )),
    }
}

/// What a `-secureTokenOn`/`-secureTokenOff`/`-addUser` run printed that explains a failure. These are hints
/// only: the outcome is always decided by a fresh status read, because sysadminctl can exit 0 on failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionHints {
    /// A line ending in `Done` (success marker of `-secureTokenOn`/`-secureTokenOff`).
    pub done: bool,
    /// `Operation is not permitted without secure token unlock.`
    pub needs_token_unlock: bool,
    /// `No existing unlock record` (no token holder on the volume; seen on EC2 Macs).
    pub no_unlock_record: bool,
}

pub fn action_hints(text: &str) -> ActionHints {
    let text = if text.len() > super::MAX_INPUT {
        &text[..0]
    } else {
        text
    };
    ActionHints {
        done: text.lines().any(|l| l.trim_end().ends_with("Done")),
        needs_token_unlock: text.contains("Operation is not permitted without secure token unlock"),
        no_unlock_record: text.contains("No existing unlock record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_enabled_line_with_a_realname_containing_spaces_and_dots() {
        let s = parse_secure_token_status(
            "2024-07-25 08:53:24.446 sysadminctl[35601:822344] Secure token is ENABLED for user Joshua D. Miller\n",
        )
        .unwrap();
        assert!(s.enabled);
        assert_eq!(s.user_label, "Joshua D. Miller");
    }

    #[test]
    fn documented_enabled_and_disabled_lines_for_short_names() {
        let on = parse_secure_token_status(
            "2017-10-07 17:51:56.505 sysadminctl[674:9389] Secure token is ENABLED for user createdviacli",
        )
        .unwrap();
        assert_eq!(
            on,
            SecureTokenStatus {
                enabled: true,
                user_label: "createdviacli".into()
            }
        );
        let off = parse_secure_token_status(
            "2021-01-14 18:17:47.414 sysadminctl[96836:904874] Secure token is DISABLED for user ec2-user\n",
        )
        .unwrap();
        assert_eq!(
            off,
            SecureTokenStatus {
                enabled: false,
                user_label: "ec2-user".into()
            }
        );
    }

    #[test]
    fn status_without_nslog_prefix_and_with_noise_lines_is_accepted() {
        let text = "objc[1]: Class X is implemented in both\nSecure token is DISABLED for user Zoë Ærøskøbing 山田\n";
        let s = parse_secure_token_status(text).unwrap();
        assert!(!s.enabled);
        assert_eq!(s.user_label, "Zoë Ærøskøbing 山田");
    }

    #[test]
    fn unknown_state_word_is_an_error_not_a_guess() {
        let err = parse_secure_token_status("Secure token is MAYBE for user x").unwrap_err();
        assert!(matches!(err, ParseError::Unrecognized { .. }));
        assert!(parse_secure_token_status("Secure token is enabled for user x").is_err());
    }

    #[test]
    fn truncated_lines_are_errors() {
        assert!(
            parse_secure_token_status(
                "2024-07-25 08:53:24.446 sysadminctl[1:2] Secure token is ENAB"
            )
            .is_err()
        );
        assert!(matches!(
            parse_secure_token_status("Secure token is ENABLED for user "),
            Err(ParseError::Truncated { .. }) | Err(ParseError::Unrecognized { .. })
        ));
        assert!(matches!(
            parse_secure_token_status(""),
            Err(ParseError::Empty { .. })
        ));
    }

    #[test]
    fn two_status_lines_that_disagree_are_refused() {
        let text = "Secure token is ENABLED for user a\nSecure token is DISABLED for user a\n";
        assert!(parse_secure_token_status(text).is_err());
        let same = "Secure token is ENABLED for user a\nSecure token is ENABLED for user a\n";
        assert!(parse_secure_token_status(same).unwrap().enabled);
    }

    #[test]
    fn garbage_and_huge_input_give_typed_errors() {
        assert!(matches!(
            parse_secure_token_status("\u{0}\u{1}\u{7f}garbage\r\n"),
            Err(ParseError::Unrecognized { .. })
        ));
        let huge = "Secure token is ENABLED for user a\n".repeat(40_000);
        assert!(matches!(
            parse_secure_token_status(&huge),
            Err(ParseError::Oversized { .. })
        ));
        let long_line = format!("Secure token is ENABLED for user {}", "x".repeat(100_000));
        assert_eq!(
            parse_secure_token_status(&long_line)
                .unwrap()
                .user_label
                .len(),
            100_000
        );
    }

    #[test]
    fn failure_text_printed_with_exit_zero_is_visible_as_a_hint() {
        let h = action_hints(
            "2024-01-01 00:00:00.000 sysadminctl[1:2] Operation is not permitted without secure token unlock.\n",
        );
        assert!(h.needs_token_unlock && !h.done);
        let h = action_hints("2024-01-01 00:00:00.000 sysadminctl[1:2] - Done\n");
        assert!(h.done);
        assert!(action_hints("Error: No existing unlock record").no_unlock_record);
    }
}
