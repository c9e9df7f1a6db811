//! `escrow-agent escrow`: self-service Bootstrap Token escrow (the EscrowBootStrap script, done right).
//!
//! Differences from the script (tokens doc §4): FileVault membership is an exact match, not a substring;
//! the password is typed at `profiles`' prompt on a pty, never on a command line; every ending shows a
//! screen with its reason (the script ended silently when the re-check failed); success is confirmed with
//! `profiles validate`, which fetches the token back from the server.

use protocol::agent_profile::EscrowReportRequest;
use vault::Secret;

use crate::actions::{self, ActionError, Credentials};
use crate::mac::{Mac, MacError};
use crate::parse::fdesetup::is_filevault_user;
use crate::prompt::{Prompter, Screen};

pub const PASSWORD_TRIES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscrowSuccess {
    /// The Mac already says escrowed; nothing was asked.
    AlreadyEscrowed,
    /// Escrowed now and fetched back by `profiles validate`.
    EscrowedAndValidated,
}

#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    #[error("nobody is logged in at the console; run this from the user's session")]
    NoConsoleUser,
    #[error(
        "your account ({user}) is not a FileVault user, so it cannot create a Bootstrap Token; please contact support"
    )]
    NotFileVaultUser { user: String },
    #[error(
        "your account ({user}) is not an administrator; `profiles` escrows only with an admin's password, so please contact support"
    )]
    NotAdmin { user: String },
    #[error(
        "this Mac's MDM server does not support Bootstrap Token escrow; please contact support"
    )]
    NotSupported,
    #[error("cancelled; your Bootstrap Token was not escrowed")]
    Cancelled,
    /// A wrong password, then no further try (the dialog closed or input ended).
    #[error("wrong password; your Bootstrap Token was not escrowed")]
    WrongPassword,
    #[error(
        "the password was wrong {PASSWORD_TRIES} times; please check your password and try again later"
    )]
    TooManyTries,
    #[error("the Bootstrap Token was escrowed but the server could not give it back: {reason}")]
    NotValidated { reason: String },
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    Mac(#[from] MacError),
}

impl EscrowSuccess {
    pub fn code(self) -> &'static str {
        match self {
            EscrowSuccess::AlreadyEscrowed => "already_escrowed",
            EscrowSuccess::EscrowedAndValidated => "escrowed_and_validated",
        }
    }
}

impl EscrowError {
    /// The stable reason code shown by `--json` and reported to the server.
    pub fn code(&self) -> &'static str {
        match self {
            EscrowError::NoConsoleUser => "no_console_user",
            EscrowError::NotFileVaultUser { .. } => "not_filevault_user",
            EscrowError::NotAdmin { .. } => "not_admin",
            EscrowError::NotSupported => "not_supported",
            EscrowError::Cancelled => "cancelled",
            EscrowError::WrongPassword => "wrong_password",
            EscrowError::TooManyTries => "too_many_tries",
            EscrowError::NotValidated { .. } => "not_validated",
            EscrowError::Action(a) => a.code(),
            EscrowError::Mac(_) => "tool_failed",
        }
    }
}

/// What the server is told about one run (`POST /agent/v1/reports/escrow`): user, ok or the failure code and
/// message. The password is never part of it (messages come from checks and already-redacted tool output).
pub fn report(user: &str, result: &Result<EscrowSuccess, EscrowError>) -> EscrowReportRequest {
    let user = if user.is_empty() {
        "(no console user)".to_string()
    } else {
        user.to_string()
    };
    match result {
        Ok(s) => EscrowReportRequest {
            succeeded: true,
            user,
            code: s.code().into(),
            message: None,
        },
        Err(e) => EscrowReportRequest {
            succeeded: false,
            user,
            code: e.code().into(),
            message: Some(e.to_string()),
        },
    }
}

pub const WELCOME: &str = "Your Bootstrap Token is not stored on your organisation's server yet. It lets IT \
install updates and grant access on this Mac without asking for your password. Please enter your Mac password \
to store it.";

/// Runs the flow for `console_user`, showing a success or failure screen with the reason at the end.
pub fn self_service(
    mac: &Mac,
    console_user: &str,
    prompter: &mut dyn Prompter,
) -> Result<EscrowSuccess, EscrowError> {
    let result = run(mac, console_user, prompter);
    match &result {
        Ok(EscrowSuccess::AlreadyEscrowed) => prompter.show(
            Screen::Success,
            "Your Bootstrap Token is already stored on the server. Nothing to do.",
        ),
        Ok(EscrowSuccess::EscrowedAndValidated) => prompter.show(
            Screen::Success,
            "Your Bootstrap Token has been stored on the server and verified.",
        ),
        Err(e) => prompter.show(Screen::Failure, &e.to_string()),
    }
    result
}

fn run(
    mac: &Mac,
    console_user: &str,
    prompter: &mut dyn Prompter,
) -> Result<EscrowSuccess, EscrowError> {
    if console_user.is_empty() || console_user == "root" || console_user == "loginwindow" {
        return Err(EscrowError::NoConsoleUser);
    }
    if !is_filevault_user(&mac.filevault_users()?, console_user) {
        return Err(EscrowError::NotFileVaultUser {
            user: console_user.to_string(),
        });
    }
    if !mac.admins()?.iter().any(|a| a == console_user) {
        return Err(EscrowError::NotAdmin {
            user: console_user.to_string(),
        });
    }
    let status = mac.bootstrap_token_status()?;
    if !status.supported {
        return Err(EscrowError::NotSupported);
    }
    if status.escrowed {
        return Ok(EscrowSuccess::AlreadyEscrowed);
    }
    prompter.show(Screen::Welcome, WELCOME);
    let password = ask_checked_password(mac, console_user, prompter)?;
    let me = Credentials {
        user: console_user.to_string(),
        password,
    };
    actions::install_bootstrap_token(mac, &me)?;
    match actions::validate_bootstrap_token(mac, &me) {
        Ok(_) => Ok(EscrowSuccess::EscrowedAndValidated),
        Err(e) => Err(EscrowError::NotValidated {
            reason: e.to_string(),
        }),
    }
}

/// Up to [`PASSWORD_TRIES`] prompts, each checked with `dscl . -authonly`.
fn ask_checked_password(
    mac: &Mac,
    user: &str,
    prompter: &mut dyn Prompter,
) -> Result<Secret<String>, EscrowError> {
    let mut message = format!("Password for {user}:");
    for attempt in 0..PASSWORD_TRIES {
        // Ending after a wrong password is that wrong password, not a plain cancel.
        let ended = if attempt == 0 {
            EscrowError::Cancelled
        } else {
            EscrowError::WrongPassword
        };
        let password = prompter.ask_password(&message).ok_or(ended)?;
        if mac.authenticate(user, &password)? {
            return Ok(password);
        }
        message = format!("Password incorrect, please try again. Password for {user}:");
    }
    Err(EscrowError::TooManyTries)
}
