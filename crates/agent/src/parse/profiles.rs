//! `profiles … -type bootstraptoken`: `status`, `validate` and the lines `install` prints.

use serde::Serialize;

use super::{ParseError, guard, unrecognized};

const TOOL: &str = "profiles";
const SUPPORTED: &str = "Bootstrap Token supported on server: ";
const ESCROWED: &str = "Bootstrap Token escrowed to server: ";
/// EscrowBootStrap tests for this whole output; Apple's trigger for it is unknown.
const NOT_SUPPORTED_SENTENCE: &str =
    "Bootstrap Token functionality is not supported on the server.";

/// What the Mac believes. `escrowed` is the device's own flag: it stays YES even if the server lost the
/// token, which only `validate` detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BootstrapTokenStatus {
    pub supported: bool,
    pub escrowed: bool,
}

fn yes_no(line: &str, value: &str) -> Result<bool, ParseError> {
    match value.trim() {
        "YES" => Ok(true),
        "NO" => Ok(false),
        _ => Err(unrecognized(TOOL, line)),
    }
}

/// Parses `profiles status -type bootstraptoken` (the `profiles: ` prefix is optional).
pub fn parse_status(text: &str) -> Result<BootstrapTokenStatus, ParseError> {
    let text = guard(TOOL, text)?;
    if text.trim() == NOT_SUPPORTED_SENTENCE {
        return Ok(BootstrapTokenStatus {
            supported: false,
            escrowed: false,
        });
    }
    let (mut supported, mut escrowed) = (None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let body = line.strip_prefix("profiles: ").unwrap_or(line);
        if let Some(v) = body.strip_prefix(SUPPORTED) {
            set_once(&mut supported, yes_no(line, v)?, line)?;
        } else if let Some(v) = body.strip_prefix(ESCROWED) {
            set_once(&mut escrowed, yes_no(line, v)?, line)?;
        } else {
            return Err(unrecognized(TOOL, line));
        }
    }
    match (supported, escrowed) {
        (Some(false), None) => Ok(BootstrapTokenStatus {
            supported: false,
            escrowed: false,
        }),
        (Some(supported), Some(escrowed)) => Ok(BootstrapTokenStatus {
            supported,
            escrowed,
        }),
        (Some(true), None) => Err(ParseError::Truncated {
            tool: TOOL,
            what: "the 'escrowed to server' line is missing",
        }),
        (None, _) => Err(ParseError::Truncated {
            tool: TOOL,
            what: "the 'supported on server' line is missing",
        }),
    }
}

fn set_once(slot: &mut Option<bool>, value: bool, line: &str) -> Result<(), ParseError> {
    match slot {
        Some(previous) if *previous != value => Err(unrecognized(TOOL, line)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// The answer of `profiles validate -type bootstraptoken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum ValidateOutcome {
    /// `profiles: Bootstrap Token validated.`
    Validated,
    /// `Unable to authenticate user information.`
    BadCredentials,
    /// `Unable to verify token (err = -69594).`: the server could not give the token back (meaning inferred).
    NotVerified { code: i64 },
}

pub fn parse_validate(text: &str) -> Result<ValidateOutcome, ParseError> {
    let text = guard(TOOL, text)?;
    for line in text.lines().map(str::trim) {
        // On a pty the password prompt may share the line: `Enter the password for user 'u':profiles: …`.
        let body = line.rsplit_once("':").map_or(line, |(_, rest)| rest.trim());
        let body = body.strip_prefix("profiles: ").unwrap_or(body);
        if body == "Bootstrap Token validated." {
            return Ok(ValidateOutcome::Validated);
        }
        if body.starts_with("Unable to authenticate user information") {
            return Ok(ValidateOutcome::BadCredentials);
        }
        if let Some(rest) = body.strip_prefix("Unable to verify token (err = ") {
            let code = rest.strip_suffix(").").or_else(|| rest.strip_suffix(')'));
            let code = code
                .and_then(|c| c.trim().parse().ok())
                .ok_or_else(|| unrecognized(TOOL, line))?;
            return Ok(ValidateOutcome::NotVerified { code });
        }
    }
    Err(unrecognized(
        TOOL,
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(""),
    ))
}

/// Hints from `profiles install|remove -type bootstraptoken`; the outcome is decided by a fresh status read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallHints {
    pub escrowed_successfully: bool,
    pub bad_credentials: bool,
}

pub fn install_hints(text: &str) -> InstallHints {
    InstallHints {
        escrowed_successfully: text.contains("Bootstrap Token escrowed successfully"),
        bad_credentials: text.contains("Unable to authenticate user information"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_supported_not_escrowed() {
        let s = parse_status(
            "profiles: Bootstrap Token supported on server: YES\nprofiles: Bootstrap Token escrowed to server: NO\n",
        )
        .unwrap();
        assert_eq!(
            s,
            BootstrapTokenStatus {
                supported: true,
                escrowed: false
            }
        );
    }

    #[test]
    fn documented_escrowed_yes() {
        let s = parse_status(
            "profiles: Bootstrap Token supported on server: YES\nprofiles: Bootstrap Token escrowed to server: YES\n",
        )
        .unwrap();
        assert!(s.supported && s.escrowed);
    }

    #[test]
    fn documented_not_supported_single_line_and_sentence() {
        let one = parse_status("profiles: Bootstrap Token supported on server: NO\n").unwrap();
        assert_eq!(
            one,
            BootstrapTokenStatus {
                supported: false,
                escrowed: false
            }
        );
        let sentence =
            parse_status("Bootstrap Token functionality is not supported on the server.\n")
                .unwrap();
        assert!(!sentence.supported);
    }

    #[test]
    fn forum_paraphrases_are_not_accepted() {
        assert!(parse_status("profiles: Bootstrap Token is supported on server: YES\nprofiles: Bootstrap Token escrowed on server: YES").is_err());
    }

    #[test]
    fn truncated_status_is_an_error_not_a_guess() {
        let err = parse_status("profiles: Bootstrap Token supported on server: YES\n").unwrap_err();
        assert!(matches!(err, ParseError::Truncated { .. }));
        assert!(parse_status("profiles: Bootstrap Token supported on server: Y").is_err());
        assert!(matches!(
            parse_status("profiles: Bootstrap Token escrowed to server: YES"),
            Err(ParseError::Truncated { .. })
        ));
    }

    #[test]
    fn extra_lines_contradictions_garbage_and_huge_input_are_errors() {
        let base = "profiles: Bootstrap Token supported on server: YES\nprofiles: Bootstrap Token escrowed to server: NO\n";
        assert!(parse_status(&format!("{base}profiles: something else\n")).is_err());
        assert!(
            parse_status(&format!(
                "{base}profiles: Bootstrap Token escrowed to server: YES\n"
            ))
            .is_err()
        );
        assert!(parse_status("\u{0}\u{ffff}").is_err());
        assert!(matches!(
            parse_status(&base.repeat(20_000)),
            Err(ParseError::Oversized { .. })
        ));
    }

    #[test]
    fn documented_validate_answers() {
        assert_eq!(
            parse_validate("profiles: Bootstrap Token validated.\n").unwrap(),
            ValidateOutcome::Validated
        );
        assert_eq!(
            parse_validate("Unable to authenticate user information.\n").unwrap(),
            ValidateOutcome::BadCredentials
        );
        assert_eq!(
            parse_validate("Unable to verify token (err = -69594).\n").unwrap(),
            ValidateOutcome::NotVerified { code: -69594 }
        );
    }

    #[test]
    fn validate_answers_after_a_password_prompt_on_the_same_line() {
        // A pty transcript when the tool prints no newline after the (unechoed) password.
        for (text, want) in [
            (
                "Enter the password for user 'ladmin':profiles: Bootstrap Token validated.\r\n",
                ValidateOutcome::Validated,
            ),
            (
                "Enter the password for user 'ladmin':Unable to authenticate user information.\n",
                ValidateOutcome::BadCredentials,
            ),
            (
                "Enter the password for user 'a':\r\nUnable to verify token (err = -69594).\r\n",
                ValidateOutcome::NotVerified { code: -69594 },
            ),
        ] {
            assert_eq!(parse_validate(text).unwrap(), want, "{text:?}");
        }
        assert!(parse_validate("Enter the password for user 'ladmin':").is_err());
        assert!(parse_validate("Enter the password for user 'x':validated").is_err());
    }

    #[test]
    fn validate_garbage_and_cut_error_codes_are_errors() {
        assert!(parse_validate("Unable to verify token (err = -69").is_err());
        assert!(parse_validate("Unable to verify token (err = abc).").is_err());
        assert!(parse_validate("validated").is_err());
        assert!(parse_validate("").is_err());
    }

    #[test]
    fn install_hints_read_success_and_bad_credentials() {
        assert!(
            install_hints("profiles: Bootstrap Token escrowed successfully\n")
                .escrowed_successfully
        );
        assert!(install_hints("Unable to authenticate user information.").bad_credentials);
        assert_eq!(install_hints("anything"), InstallHints::default());
    }
}
