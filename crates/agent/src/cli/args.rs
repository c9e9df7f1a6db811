//! The agent binary's command line: the clap definitions of its commands, their options and help text.

use std::path::PathBuf;

use agent::client;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "escrow-agent",
    version,
    about = "The escrowd agent: Secure Token inventory and actions, and self-service Bootstrap Token escrow.",
    long_about = "The escrowd agent runs on each Mac and does what MDM cannot: it reads Secure Token, FileVault \
and volume-owner facts, grants and removes Secure Tokens with a token holder's credentials, and walks a user \
through re-escrowing the Bootstrap Token.\n\nIt runs whichever profiles, sysadminctl, fdesetup, diskutil, dscl and \
sw_vers come first on PATH, so you can debug it against fake tools. Passwords are read from the terminal (no \
echo) or, when stdin is not a terminal, one per line from stdin; they are passed to Apple's tools on stdin or a \
pseudo-terminal, never on a command line.",
    after_help = "Examples:\n  sudo escrow-agent inventory\n  sudo escrow-agent inventory --json --managed-admin ladmin\n  \
sudo escrow-agent action grant-secure-token --user alice --admin ladmin\n  \
printf '%s\\n%s\\n' \"$ALICE_PW\" \"$ADMIN_PW\" | sudo escrow-agent action grant-secure-token --user alice --admin ladmin --json\n  \
escrow-agent escrow"
)]
pub(crate) struct Cli {
    /// Seconds any one Apple tool may run before it is stopped.
    #[arg(long, global = true, default_value_t = 60, value_name = "SECONDS")]
    pub(crate) timeout: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Register this Mac's agent with the server: make its signing and HPKE keys, store them 0600, and
    /// present the one-time registration secret from the com.escrowd.agent settings.
    #[command(after_help = "Examples:\n  sudo escrow-agent register\n  \
sudo escrow-agent register --config ./com.escrowd.agent.plist --state ./state.json --ca-cert tls.pem\n\n\
The settings arrive with the agent profile (`escrowd agent-install DEVICE`); its secret works once. Keys are never printed.")]
    Register {
        /// The managed-preferences plist (or a profile) holding ServerURL, DeviceID and RegistrationSecret.
        #[arg(long, value_name = "FILE", default_value_os_t = client::default_config_path())]
        config: PathBuf,
        /// Where to keep the agent's id and keys (created 0600).
        #[arg(long, value_name = "FILE", default_value_os_t = client::default_state_path())]
        state: PathBuf,
        /// Trust this PEM certificate / CA for an https server (e.g. the server's DATA_DIR/tls.pem).
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// Replace an existing registration (needs a fresh registration secret). The request is signed with
        /// the key in the existing --state file, which proves to the server that the current agent asks; without
        /// that key the server refuses unless the install was queued with `escrowd agent-install --replace`.
        #[arg(long)]
        force: bool,
        /// Print {"agent_id":…,"device_id":…} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Poll the server for actions, perform each and report its result, then report inventory; repeat.
    /// After a failed cycle (server unreachable, a report refused) it waits longer each time — doubling, up
    /// to 15 minutes, ±20% random — and returns to --interval after the next good cycle. Between good
    /// cycles it keeps a poll open on the server (up to 50 s at a time), so an action queued for this Mac
    /// starts at once instead of after the interval.
    #[command(
        after_help = "Examples:\n  sudo escrow-agent run --once\n  sudo escrow-agent run --interval 300 --ca-cert /etc/escrowd/tls.pem\n\n\
To keep it running on a Mac, install it as a LaunchDaemon: sudo escrow-agent launchd-plist --install"
    )]
    Run {
        /// Where `register` stored the agent's id and keys.
        #[arg(long, value_name = "FILE", default_value_os_t = client::default_state_path())]
        state: PathBuf,
        /// Trust this PEM certificate / CA for an https server.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// One cycle, then exit (exit 1 if an action failed or a report could not be sent).
        #[arg(long)]
        once: bool,
        /// Seconds between cycles.
        #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=86400))]
        interval: u64,
        /// The ADE managed admin's short name, reported even if its UID is below 501.
        #[arg(long, value_name = "NAME")]
        managed_admin: Option<String>,
        /// Print each cycle as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Show per-user admin, Secure Token, FileVault and volume-owner facts, and the Bootstrap Token status.
    #[command(
        after_help = "Examples:\n  sudo escrow-agent inventory\n  sudo escrow-agent inventory --json | jq '.users[] | select(.secure_token == false)'"
    )]
    Inventory {
        /// Print JSON (what the agent would report) instead of a table.
        #[arg(long)]
        json: bool,
        /// The ADE managed admin's short name, listed even if its UID is below 501.
        #[arg(long, value_name = "NAME")]
        managed_admin: Option<String>,
    },
    /// Perform a Secure Token or Bootstrap Token action on this Mac and verify it with a fresh status read.
    #[command(subcommand)]
    Action(Action),
    /// Self-service: store this user's Bootstrap Token on the server (checks, asks the password, verifies).
    #[command(
        after_help = "Examples:\n  escrow-agent escrow\n  escrow-agent escrow --prompt terminal   # over SSH, no dialogs"
    )]
    Escrow {
        /// The user to escrow as; default: the user logged in at the console.
        #[arg(long, value_name = "NAME")]
        console_user: Option<String>,
        /// How to ask: native dialogs via osascript (default on macOS) or the terminal (default elsewhere).
        #[arg(long, value_enum, default_value_t = PromptKind::default())]
        prompt: PromptKind,
        /// Print the result as JSON: {"ok":true,"result":…,"server":…} or {"ok":false,"error":"<reason>",…}.
        #[arg(long)]
        json: bool,
        /// The agent's registration (written by `register`); when present, the server is told how it went.
        #[arg(long, value_name = "FILE", default_value_os_t = client::default_state_path())]
        state: PathBuf,
        /// Trust this PEM certificate / CA for an https server.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
    /// Print (or --install) the LaunchDaemon that keeps `escrow-agent run` going:
    /// /Library/LaunchDaemons/com.escrowd.agent.plist, logging to /var/log/escrowd-agent.log.
    #[command(
        after_help = "Examples:\n  escrow-agent launchd-plist > com.escrowd.agent.plist\n  \
sudo escrow-agent launchd-plist --ca-cert /etc/escrowd/tls.pem --managed-admin ladmin --install\n\n\
--install writes the plist 0644 and runs `launchctl bootstrap system` (macOS only, as root); running it again \
replaces the loaded daemon. The daemon runs this binary, at its current absolute path."
    )]
    LaunchdPlist {
        /// Where `register` stored the agent's id and keys.
        #[arg(long, value_name = "FILE", default_value_os_t = client::default_state_path())]
        state: PathBuf,
        /// Seconds between cycles.
        #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=86400))]
        interval: u64,
        /// The ADE managed admin's short name, reported even if its UID is below 501.
        #[arg(long, value_name = "NAME")]
        managed_admin: Option<String>,
        /// Trust this PEM certificate / CA for an https server.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
        /// Write it to /Library/LaunchDaemons and load it with launchctl (macOS, root).
        #[arg(long)]
        install: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PromptKind {
    Dialog,
    Terminal,
}

impl Default for PromptKind {
    fn default() -> Self {
        if cfg!(target_os = "macos") {
            PromptKind::Dialog
        } else {
            PromptKind::Terminal
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum Action {
    /// Grant USER a Secure Token. Reads USER's password, then ADMIN's.
    #[command(
        after_help = "Example:\n  sudo escrow-agent action grant-secure-token --user alice --admin ladmin"
    )]
    GrantSecureToken {
        /// The short name of the user the action is for.
        #[arg(long)]
        user: String,
        /// An administrator who holds a Secure Token (its password is read after the user's).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Create USER with a Secure Token (optionally an admin). Reads USER's new password, then ADMIN's.
    #[command(
        after_help = "Example:\n  sudo escrow-agent action create-user --user bob --full-name 'Bob Li' --make-admin --admin ladmin"
    )]
    CreateUser {
        /// The short name of the user the action is for.
        #[arg(long)]
        user: String,
        /// The new user's full name (RealName).
        #[arg(long, value_name = "NAME")]
        full_name: String,
        /// Make the new user an administrator.
        #[arg(long)]
        make_admin: bool,
        /// An administrator who holds a Secure Token (its password is read after the user's).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Turn USER's Secure Token off (refused for the last holder). Reads USER's password, then ADMIN's.
    SecureTokenOff {
        /// The short name of the user the action is for.
        #[arg(long)]
        user: String,
        /// An administrator who holds a Secure Token (its password is read after the user's).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Factorial transfer: promote FROM if needed, grant TO, verify, demote. Reads FROM's password, then TO's.
    TransferSecureToken {
        /// The current Secure Token holder (promoted to admin for the grant if it is not one).
        #[arg(long)]
        from: String,
        /// The user who gets the token.
        #[arg(long)]
        to: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Reset USER's password with a token-holding ADMIN's credentials, so USER's Secure Token and FileVault
    /// stay in sync (`sysadminctl -resetPasswordFor`, passwords on stdin). Reads USER's NEW password, then
    /// ADMIN's. Refused with the reason when the admin holds no Secure Token (the token would go out of sync).
    #[command(
        after_help = "Example:\n  sudo escrow-agent action reset-password --user alice --admin ladmin"
    )]
    ResetPassword {
        /// The short name of the user whose password changes.
        #[arg(long)]
        user: String,
        /// An administrator who holds a Secure Token (its password is read after the new one).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Check the server can give the Bootstrap Token back (`profiles validate`). Reads ADMIN's password.
    ValidateBootstrapToken {
        /// An administrator who holds a Secure Token (its password is read after the user's).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Remove the Bootstrap Token from this Mac and the server. Reads ADMIN's password.
    RemoveBootstrapToken {
        /// An administrator who holds a Secure Token (its password is read after the user's).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
    /// Escrow (again) the Bootstrap Token with a token-holding admin. Reads ADMIN's password.
    EscrowBootstrapToken {
        /// An administrator who holds a Secure Token (its password is read after the user's).
        #[arg(long)]
        admin: String,
        /// Print the result as JSON: {"ok":true,"result":…} or {"ok":false,"error":"<reason>","message":…}.
        #[arg(long)]
        json: bool,
    },
}
