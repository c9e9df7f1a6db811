//! Secure Token and Bootstrap Token actions, each verified by a fresh status read.
//!
//! sysadminctl can print a failure and exit 0, so no action trusts an exit code. Before acting, a preflight
//! turns the common failures into precise reasons (OS too old, not APFS, no token holder, admin not an
//! admin, admin without a token, wrong password); after acting, the state is read again and the action
//! succeeds only if the Mac now says what was asked for.

use serde::Serialize;
use vault::Secret;

use crate::mac::{Mac, MacError, OsVersion};
use crate::parse::{profiles, quote, sysadminctl};
use crate::tools::{Answer, Reply, Tool};

/// A user name and password given to an action.
pub struct Credentials {
    pub user: String,
    pub password: Secret<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("macOS {found} is too old: this needs macOS {needed} or later")]
    OsTooOld { found: OsVersion, needed: OsVersion },
    #[error("the startup volume is not APFS; Secure Tokens exist only on APFS")]
    NotApfs,
    #[error(
        "no user on this Mac holds a Secure Token, so none can be granted; log in once as the first user or use the Bootstrap Token"
    )]
    NoTokenHolder,
    #[error("user {user:?} does not exist on this Mac")]
    UnknownUser { user: String },
    #[error("user {user:?} already exists")]
    UserExists { user: String },
    #[error("{user:?} is not an administrator; use a token-holding admin or the transfer action")]
    NotAdmin { user: String },
    #[error("admin {admin:?} does not hold a Secure Token; use an admin who does")]
    AdminLacksToken { admin: String },
    #[error("wrong password for admin {admin:?}")]
    WrongAdminPassword { admin: String },
    #[error("wrong password for user {user:?}")]
    WrongUserPassword { user: String },
    #[error(
        "{user:?} is the only Secure Token holder; turning its token off would leave nobody able to unlock FileVault"
    )]
    LastTokenHolder { user: String },
    #[error("the server does not support Bootstrap Token escrow (profiles status says NO)")]
    BootstrapTokenNotSupported,
    #[error("the Bootstrap Token could not be verified: {reason}")]
    BootstrapTokenNotValidated { reason: String },
    #[error(
        "{action} reported no error, but a fresh status read shows it did not happen: {detail:?}"
    )]
    NotVerified {
        action: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Mac(#[from] MacError),
}

/// What a successful action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ActionOutcome {
    SecureTokenGranted {
        user: String,
    },
    AlreadyHadSecureToken {
        user: String,
    },
    UserCreated {
        user: String,
        admin: bool,
    },
    SecureTokenRemoved {
        user: String,
    },
    SecureTokenTransferred {
        from: String,
        to: String,
        promoted_temporarily: bool,
    },
    BootstrapTokenValidated,
    BootstrapTokenRemoved,
    BootstrapTokenEscrowed,
}

fn require_os(mac: &Mac, needed: OsVersion) -> Result<(), ActionError> {
    match mac.os_version() {
        Some(found) if found < needed => Err(ActionError::OsTooOld { found, needed }),
        _ => Ok(()), // unknown version: let the tool speak for itself
    }
}

/// OS, APFS and "somebody holds a token" checks shared by the Secure Token actions.
fn preflight(mac: &Mac) -> Result<(), ActionError> {
    require_os(mac, OsVersion::SECURE_TOKEN)?;
    let crypto = match mac.crypto_users() {
        Err(MacError::NotApfs) => return Err(ActionError::NotApfs),
        other => other?,
    };
    if crypto.token_holder_count() == 0 {
        return Err(ActionError::NoTokenHolder);
    }
    Ok(())
}

/// The admin must exist, be in the admin group, hold a token, and have typed the right password.
fn check_admin(mac: &Mac, admin: &Credentials) -> Result<(), ActionError> {
    if mac.user(&admin.user)?.is_none() {
        return Err(ActionError::UnknownUser {
            user: admin.user.clone(),
        });
    }
    if !mac.admins()?.contains(&admin.user) {
        return Err(ActionError::NotAdmin {
            user: admin.user.clone(),
        });
    }
    check_token_holder(mac, admin)
}

fn check_token_holder(mac: &Mac, admin: &Credentials) -> Result<(), ActionError> {
    if !mac.secure_token_status(&admin.user)?.enabled {
        return Err(ActionError::AdminLacksToken {
            admin: admin.user.clone(),
        });
    }
    if !mac.authenticate(&admin.user, &admin.password)? {
        return Err(ActionError::WrongAdminPassword {
            admin: admin.user.clone(),
        });
    }
    Ok(())
}

fn check_user_password(mac: &Mac, user: &Credentials) -> Result<(), ActionError> {
    if mac.user(&user.user)?.is_none() {
        return Err(ActionError::UnknownUser {
            user: user.user.clone(),
        });
    }
    if !mac.authenticate(&user.user, &user.password)? {
        return Err(ActionError::WrongUserPassword {
            user: user.user.clone(),
        });
    }
    Ok(())
}

/// Explains a sysadminctl run whose effect the fresh read did not show.
fn not_verified(action: &'static str, output: &str) -> ActionError {
    let hints = sysadminctl::action_hints(output);
    if hints.no_unlock_record {
        return ActionError::NoTokenHolder;
    }
    ActionError::NotVerified {
        action,
        detail: quote(output.trim()),
    }
}

/// Grants `target` a Secure Token with a token-holding admin's credentials.
pub fn grant_secure_token(
    mac: &Mac,
    target: &Credentials,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    preflight(mac)?;
    check_admin(mac, admin)?;
    check_user_password(mac, target)?;
    if mac.secure_token_status(&target.user)?.enabled {
        return Ok(ActionOutcome::AlreadyHadSecureToken {
            user: target.user.clone(),
        });
    }
    run_grant(mac, target, admin)?;
    Ok(ActionOutcome::SecureTokenGranted {
        user: target.user.clone(),
    })
}

fn run_grant(mac: &Mac, target: &Credentials, admin: &Credentials) -> Result<(), ActionError> {
    let args = [
        "-secureTokenOn",
        &target.user,
        "-password",
        "-",
        "-adminUser",
        &admin.user,
        "-adminPassword",
        "-",
    ];
    let out = mac
        .tools
        .run_with_stdin(
            Tool::Sysadminctl,
            &args,
            &[&target.password, &admin.password],
        )
        .map_err(MacError::from)?;
    if !mac.secure_token_status(&target.user)?.enabled {
        return Err(not_verified("sysadminctl -secureTokenOn", &out.combined()));
    }
    Ok(())
}

/// Creates a local user with a Secure Token (granted by the admin), optionally an administrator.
pub fn create_user(
    mac: &Mac,
    new_user: &Credentials,
    full_name: &str,
    make_admin: bool,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    preflight(mac)?;
    check_admin(mac, admin)?;
    if mac.user(&new_user.user)?.is_some() {
        return Err(ActionError::UserExists {
            user: new_user.user.clone(),
        });
    }
    let mut args = vec![
        "-addUser",
        &new_user.user,
        "-fullName",
        full_name,
        "-password",
        "-",
    ];
    if make_admin {
        args.push("-admin");
    }
    args.extend(["-adminUser", &admin.user, "-adminPassword", "-"]);
    let out = mac
        .tools
        .run_with_stdin(
            Tool::Sysadminctl,
            &args,
            &[&new_user.password, &admin.password],
        )
        .map_err(MacError::from)?;
    if mac.user(&new_user.user)?.is_none() {
        return Err(not_verified("sysadminctl -addUser", &out.combined()));
    }
    if !mac.secure_token_status(&new_user.user)?.enabled {
        return Err(not_verified(
            "sysadminctl -addUser (Secure Token)",
            &out.combined(),
        ));
    }
    if make_admin && !mac.admins()?.contains(&new_user.user) {
        return Err(not_verified("sysadminctl -addUser -admin", &out.combined()));
    }
    Ok(ActionOutcome::UserCreated {
        user: new_user.user.clone(),
        admin: make_admin,
    })
}

/// Turns a user's Secure Token off. Refuses to remove the last holder's token.
pub fn secure_token_off(
    mac: &Mac,
    target: &Credentials,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    preflight(mac)?;
    check_admin(mac, admin)?;
    check_user_password(mac, target)?;
    if !mac.secure_token_status(&target.user)?.enabled {
        return Ok(ActionOutcome::SecureTokenRemoved {
            user: target.user.clone(),
        });
    }
    if mac.crypto_users()?.token_holder_count() <= 1 {
        return Err(ActionError::LastTokenHolder {
            user: target.user.clone(),
        });
    }
    let args = [
        "-secureTokenOff",
        &target.user,
        "-password",
        "-",
        "-adminUser",
        &admin.user,
        "-adminPassword",
        "-",
    ];
    let out = mac
        .tools
        .run_with_stdin(
            Tool::Sysadminctl,
            &args,
            &[&target.password, &admin.password],
        )
        .map_err(MacError::from)?;
    if mac.secure_token_status(&target.user)?.enabled {
        return Err(not_verified("sysadminctl -secureTokenOff", &out.combined()));
    }
    Ok(ActionOutcome::SecureTokenRemoved {
        user: target.user.clone(),
    })
}

/// The Factorial transfer: promote the token holder if it is not an admin, grant, verify, demote again.
/// The demotion runs whatever the grant's outcome, and is itself verified.
pub fn transfer_secure_token(
    mac: &Mac,
    holder: &Credentials,
    target: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    preflight(mac)?;
    if mac.user(&holder.user)?.is_none() {
        return Err(ActionError::UnknownUser {
            user: holder.user.clone(),
        });
    }
    check_token_holder(mac, holder)?;
    check_user_password(mac, target)?;
    let promote = !mac.admins()?.contains(&holder.user);
    if promote {
        mac.set_admin(&holder.user, true)?;
    }
    let granted = if mac.secure_token_status(&target.user)?.enabled {
        Ok(())
    } else {
        run_grant(mac, target, holder)
    };
    if promote {
        mac.set_admin(&holder.user, false)?;
        if mac.admins()?.contains(&holder.user) {
            return Err(ActionError::NotVerified {
                action: "demote after transfer",
                detail: holder.user.clone(),
            });
        }
    }
    granted?;
    Ok(ActionOutcome::SecureTokenTransferred {
        from: holder.user.clone(),
        to: target.user.clone(),
        promoted_temporarily: promote,
    })
}

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
    let args = [
        "validate",
        "-type",
        "bootstraptoken",
        "-user",
        admin.user.as_str(),
    ];
    let answers = [Answer {
        prompt: "password",
        reply: Reply::Secret(&admin.password),
    }];
    let out = mac
        .tools
        .run_in_pty(Tool::Profiles, &args, &answers)
        .map_err(MacError::from)?;
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
