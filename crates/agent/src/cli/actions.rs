//! Running one Secure Token action from the command line: reading credentials, describing the outcome, and
//! finding the console user.

use std::process::ExitCode;

use agent::actions::{self, ActionError, ActionOutcome, Credentials};
use agent::mac::Mac;
use agent::prompt;
use anyhow::Context;

use super::args::Action;

pub(crate) fn credentials(user: &str, role: &str) -> anyhow::Result<Credentials> {
    let password = prompt::read_password(&format!("Password for {role} {user}:"))
        .context("could not read a password")?
        .with_context(|| {
            format!("no password given for {role} {user}: type it, or pipe one line per password")
        })?;
    Ok(Credentials {
        user: user.to_string(),
        password,
    })
}

pub(crate) fn run_action(mac: &Mac, action: Action) -> anyhow::Result<ExitCode> {
    let (json, result): (bool, Result<ActionOutcome, ActionError>) = match action {
        Action::GrantSecureToken { user, admin, json } => {
            let (u, a) = (credentials(&user, "user")?, credentials(&admin, "admin")?);
            (json, actions::grant_secure_token(mac, &u, &a))
        }
        Action::CreateUser {
            user,
            full_name,
            make_admin,
            admin,
            json,
        } => {
            let (u, a) = (
                credentials(&user, "new user")?,
                credentials(&admin, "admin")?,
            );
            (
                json,
                actions::create_user(mac, &u, &full_name, make_admin, &a),
            )
        }
        Action::SecureTokenOff { user, admin, json } => {
            let (u, a) = (credentials(&user, "user")?, credentials(&admin, "admin")?);
            (json, actions::secure_token_off(mac, &u, &a))
        }
        Action::TransferSecureToken { from, to, json } => {
            let (f, t) = (
                credentials(&from, "token holder")?,
                credentials(&to, "user")?,
            );
            (json, actions::transfer_secure_token(mac, &f, &t))
        }
        Action::ResetPassword { user, admin, json } => {
            let (u, a) = (
                credentials(&user, "new password of user")?,
                credentials(&admin, "admin")?,
            );
            (json, actions::reset_password(mac, &u, &a))
        }
        Action::ValidateBootstrapToken { admin, json } => (
            json,
            actions::validate_bootstrap_token(mac, &credentials(&admin, "admin")?),
        ),
        Action::RemoveBootstrapToken { admin, json } => (
            json,
            actions::remove_bootstrap_token(mac, &credentials(&admin, "admin")?),
        ),
        Action::EscrowBootstrapToken { admin, json } => (
            json,
            actions::escrow_bootstrap_token(mac, &credentials(&admin, "admin")?),
        ),
    };
    match result {
        Ok(outcome) => {
            if json {
                println!("{}", serde_json::json!({ "ok": true, "result": outcome }));
            } else {
                println!("OK: {}", describe(&outcome));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": e.code(), "message": e.to_string() })
                );
            } else {
                eprintln!("error ({}): {e}", e.code());
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn describe(outcome: &ActionOutcome) -> String {
    match outcome {
        ActionOutcome::SecureTokenGranted { user } => format!("{user} now holds a Secure Token"),
        ActionOutcome::AlreadyHadSecureToken { user } => {
            format!("{user} already held a Secure Token")
        }
        ActionOutcome::UserCreated { user, admin } => {
            format!(
                "created {user}{} with a Secure Token",
                if *admin { " (admin)" } else { "" }
            )
        }
        ActionOutcome::SecureTokenRemoved { user } => {
            format!("{user} no longer holds a Secure Token")
        }
        ActionOutcome::SecureTokenTransferred {
            from,
            to,
            promoted_temporarily,
        } => format!(
            "{to} now holds a Secure Token from {from}{}",
            if *promoted_temporarily {
                " (promoted to admin for the grant, then demoted)"
            } else {
                ""
            }
        ),
        ActionOutcome::BootstrapTokenValidated => "the server returned the Bootstrap Token".into(),
        ActionOutcome::BootstrapTokenRemoved => "the Bootstrap Token was removed".into(),
        ActionOutcome::BootstrapTokenEscrowed => "the Bootstrap Token is escrowed".into(),
        ActionOutcome::PasswordReset { user, secure_token } => format!(
            "{user}'s password was reset{}",
            if *secure_token {
                "; its Secure Token and FileVault unlock follow the new password"
            } else {
                " (it holds no Secure Token)"
            }
        ),
    }
}

/// The user who owns `/dev/console`, mapped to a short name with dscl.
pub(crate) fn console_user(mac: &Mac) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/dev/console")
        .context("cannot read /dev/console; pass --console-user")?
        .uid();
    let users = mac
        .user_list()
        .context("cannot list users with dscl; pass --console-user")?;
    Ok(users
        .into_iter()
        .find(|(_, u)| *u == i64::from(uid))
        .map(|(n, _)| n)
        .unwrap_or_default())
}
