//! Bootstrap Token actions: validate, remove, (re-)escrow. `profiles` prompts for the admin's name and
//! password, so they are typed on a pseudo-terminal.

use super::{ActionError, ActionOutcome, Credentials, require_os};
use crate::mac::{Mac, MacError, OsVersion};
use crate::parse::{profiles, quote};
use crate::tools::{Answer, Output, Reply, Tool, ToolError};

fn bootstrap_answers<'a>(admin: &'a Credentials) -> [Answer<'a>; 2] {
    [
        Answer {
            prompt: "Enter the admin user name:",
            reply: Reply::Text(&admin.user),
        },
        Answer {
            prompt: "Enter the password for user",
            reply: Reply::Secret(&admin.password),
        },
    ]
}

/// `profiles validate -type bootstraptoken`: asks the server for the token back. The password is typed at
/// the prompt on a pty.
pub fn validate_bootstrap_token(
    mac: &Mac,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    require_os(mac, OsVersion::BOOTSTRAP_TOKEN)?;
    let out = run_validate(mac, admin).map_err(MacError::from)?;
    match profiles::parse_validate(&out.stdout) {
        Ok(profiles::ValidateOutcome::Validated) => Ok(ActionOutcome::BootstrapTokenValidated),
        Ok(profiles::ValidateOutcome::BadCredentials) => Err(ActionError::WrongAdminPassword {
            admin: admin.user.clone(),
        }),
        Ok(profiles::ValidateOutcome::NotVerified { code }) => {
            Err(ActionError::BootstrapTokenNotValidated {
                reason: format!("the server could not return it (err = {code}); re-escrow it"),
            })
        }
        Err(e) => Err(ActionError::BootstrapTokenNotValidated {
            reason: e.to_string(),
        }),
    }
}

/// The argv of `profiles validate` for `admin` (its password is typed at the prompt, never passed).
pub(crate) fn validate_args(admin: &Credentials) -> [&str; 5] {
    [
        "validate",
        "-type",
        "bootstraptoken",
        "-user",
        admin.user.as_str(),
    ]
}

/// Runs `profiles validate -type bootstraptoken -user ADMIN` on a pty, typing the password at its prompt.
pub(crate) fn run_validate(mac: &Mac, admin: &Credentials) -> Result<Output, ToolError> {
    let answers = [Answer {
        prompt: "password",
        reply: Reply::Secret(&admin.password),
    }];
    mac.tools
        .run_in_pty(Tool::Profiles, &validate_args(admin), &answers)
}

/// `profiles remove -type bootstraptoken`, verified by `status` no longer saying escrowed.
pub fn remove_bootstrap_token(
    mac: &Mac,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    require_os(mac, OsVersion::BOOTSTRAP_TOKEN)?;
    let out = mac
        .tools
        .run_in_pty(
            Tool::Profiles,
            &["remove", "-type", "bootstraptoken"],
            &bootstrap_answers(admin),
        )
        .map_err(MacError::from)?;
    if mac.bootstrap_token_status()?.escrowed {
        if profiles::install_hints(&out.stdout).bad_credentials {
            return Err(ActionError::WrongAdminPassword {
                admin: admin.user.clone(),
            });
        }
        return Err(ActionError::NotVerified {
            action: "profiles remove",
            detail: quote(out.stdout.trim()),
        });
    }
    Ok(ActionOutcome::BootstrapTokenRemoved)
}

/// `profiles install -type bootstraptoken` with a token-holding admin's credentials, then a fresh status.
pub fn escrow_bootstrap_token(
    mac: &Mac,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    require_os(mac, OsVersion::BOOTSTRAP_TOKEN)?;
    if !mac.bootstrap_token_status()?.supported {
        return Err(ActionError::BootstrapTokenNotSupported);
    }
    install_bootstrap_token(mac, admin)?;
    Ok(ActionOutcome::BootstrapTokenEscrowed)
}

/// Runs the install and checks the result; shared with self-service escrow.
pub(crate) fn install_bootstrap_token(mac: &Mac, admin: &Credentials) -> Result<(), ActionError> {
    let out = mac
        .tools
        .run_in_pty(
            Tool::Profiles,
            &["install", "-type", "bootstraptoken"],
            &bootstrap_answers(admin),
        )
        .map_err(MacError::from)?;
    if !mac.bootstrap_token_status()?.escrowed {
        if profiles::install_hints(&out.stdout).bad_credentials {
            if mac
                .secure_token_status(&admin.user)
                .is_ok_and(|s| !s.enabled)
            {
                return Err(ActionError::AdminLacksToken {
                    admin: admin.user.clone(),
                });
            }
            return Err(ActionError::WrongAdminPassword {
                admin: admin.user.clone(),
            });
        }
        return Err(ActionError::NotVerified {
            action: "profiles install",
            detail: quote(out.stdout.trim()),
        });
    }
    Ok(())
}
