//! Secure Token and Bootstrap Token actions, each verified by a fresh status read.
//!
//! sysadminctl can print a failure and exit 0, so no action trusts an exit code. Before acting, a preflight
//! turns the common failures into precise reasons (OS too old, not APFS, no token holder, admin not an
//! admin, admin without a token, wrong password); after acting, the state is read again and the action
//! succeeds only if the Mac now says what was asked for.

use serde::Serialize;
use vault::Secret;

use crate::mac::{Mac, MacError, OsVersion};
use crate::parse::{quote, sysadminctl};
use crate::tools::Tool;

mod bootstrap;
pub use bootstrap::{escrow_bootstrap_token, remove_bootstrap_token, validate_bootstrap_token};
pub(crate) use bootstrap::{install_bootstrap_token, run_validate, validate_args};

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
    /// The password changed with a token holder's authorisation, so the user's Secure Token (and FileVault
    /// unlock) follow the new password.
    PasswordReset {
        user: String,
        secure_token: bool,
    },
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

/// `sysadminctl -secureTokenOn|Off` with both passwords on stdin, then a fresh status read: sysadminctl can
/// print a failure and exit 0, so only the re-read decides.
fn set_secure_token(
    mac: &Mac,
    target: &Credentials,
    admin: &Credentials,
    on: bool,
) -> Result<(), ActionError> {
    let (flag, action) = if on {
        ("-secureTokenOn", "sysadminctl -secureTokenOn")
    } else {
        ("-secureTokenOff", "sysadminctl -secureTokenOff")
    };
    let args = [
        flag,
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
    if mac.secure_token_status(&target.user)?.enabled != on {
        return Err(not_verified(action, &out.combined()));
    }
    Ok(())
}

fn run_grant(mac: &Mac, target: &Credentials, admin: &Credentials) -> Result<(), ActionError> {
    set_secure_token(mac, target, admin, true)
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
    set_secure_token(mac, target, admin, false)?;
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

/// Resets `target.user`'s password to `target.password` with `admin`'s credentials (an admin holding a Secure
/// Token), so the user's Secure Token and FileVault unlock stay in sync with the new password (Factorial;
/// §1.3 last row: a password changed without a token holder leaves the token out of sync). Passwords go on
/// stdin, never in argv. Refused with the reason, before anything runs, when that cannot be kept true: no
/// token holder on the Mac, the admin is not an admin, lacks a token, or typed a wrong password, the user
/// does not exist. Verified afterwards: the new password must authenticate and a token must still be there.
pub fn reset_password(
    mac: &Mac,
    target: &Credentials,
    admin: &Credentials,
) -> Result<ActionOutcome, ActionError> {
    preflight(mac)?;
    check_admin(mac, admin)?;
    if mac.user(&target.user)?.is_none() {
        return Err(ActionError::UnknownUser {
            user: target.user.clone(),
        });
    }
    let had_token = mac.secure_token_status(&target.user)?.enabled;
    let args = [
        "-resetPasswordFor",
        &target.user,
        "-newPassword",
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
    // sysadminctl prints "Operation is not permitted without secure token unlock." and exits 0: only a
    // fresh check decides.
    if !mac.authenticate(&target.user, &target.password)? {
        return Err(not_verified(
            "sysadminctl -resetPasswordFor",
            &out.combined(),
        ));
    }
    let has_token = mac.secure_token_status(&target.user)?.enabled;
    if had_token && !has_token {
        return Err(not_verified(
            "sysadminctl -resetPasswordFor (Secure Token)",
            &out.combined(),
        ));
    }
    Ok(ActionOutcome::PasswordReset {
        user: target.user.clone(),
        secure_token: has_token,
    })
}

impl ActionError {
    /// A stable machine-readable reason, for `--json` and, later, the server's action log.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::OsTooOld { .. } => "os_too_old",
            ActionError::NotApfs => "not_apfs",
            ActionError::NoTokenHolder => "no_token_holder",
            ActionError::UnknownUser { .. } => "unknown_user",
            ActionError::UserExists { .. } => "user_exists",
            ActionError::NotAdmin { .. } => "not_admin",
            ActionError::AdminLacksToken { .. } => "admin_lacks_token",
            ActionError::WrongAdminPassword { .. } => "wrong_admin_password",
            ActionError::WrongUserPassword { .. } => "wrong_user_password",
            ActionError::LastTokenHolder { .. } => "last_token_holder",
            ActionError::BootstrapTokenNotSupported => "bootstrap_token_not_supported",
            ActionError::BootstrapTokenNotValidated { .. } => "bootstrap_token_not_validated",
            ActionError::NotVerified { .. } => "not_verified",
            ActionError::Mac(MacError::NotApfs) => "not_apfs",
            ActionError::Mac(_) => "tool_failed",
        }
    }
}
