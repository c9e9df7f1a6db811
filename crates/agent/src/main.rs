//! `escrow-agent`: the escrowd agent for macOS. See `escrow-agent --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agent::actions::{self, ActionError, ActionOutcome, Credentials};
use agent::backoff;
use agent::client::{self, AgentClient, AgentState};
use agent::escrow;
use agent::inventory::{self, Inventory};
use agent::launchd;
use agent::mac::Mac;
use agent::prompt::{self, DialogPrompter, Prompter, TerminalPrompter};
use agent::tools::Tools;
use anyhow::Context;
use clap::{Parser, Subcommand};
use protocol::agent_profile::MAX_POLL_WAIT_SECS;

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
struct Cli {
    /// Seconds any one Apple tool may run before it is stopped.
    #[arg(long, global = true, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum PromptKind {
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
enum Action {
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

fn credentials(user: &str, role: &str) -> anyhow::Result<Credentials> {
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

fn run_action(mac: &Mac, action: Action) -> anyhow::Result<ExitCode> {
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

fn describe(outcome: &ActionOutcome) -> String {
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

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn print_inventory_table(inv: &Inventory) {
    let mut table = comfy_table::Table::new();
    table.set_header([
        "User",
        "UID",
        "Name",
        "Admin",
        "Secure Token",
        "FileVault",
        "Volume owner",
    ]);
    for u in &inv.users {
        let name = if u.managed_admin {
            format!("{} (managed admin)", u.short_name)
        } else {
            u.short_name.clone()
        };
        table.add_row([
            name,
            u.uid.to_string(),
            u.real_name.clone().unwrap_or_default(),
            yes_no(Some(u.admin)).into(),
            yes_no(u.secure_token).into(),
            yes_no(Some(u.filevault)).into(),
            yes_no(u.volume_owner).into(),
        ]);
    }
    println!("{table}");
    if let Some(os) = &inv.os_version {
        println!("macOS {os}");
    }
    match inv.bootstrap_token {
        Some(bt) => println!(
            "Bootstrap Token: supported on server {}, escrowed {}",
            yes_no(Some(bt.supported)),
            yes_no(Some(bt.escrowed))
        ),
        None => println!("Bootstrap Token: unknown"),
    }
    if let Some(c) = &inv.crypto_users {
        println!(
            "APFS crypto users on {}: {} ({} Secure Token holder(s); Bootstrap Token key {})",
            c.disk,
            c.users.len(),
            c.token_holder_count(),
            if c.has_bootstrap_token_key() {
                "present"
            } else {
                "absent"
            }
        );
    }
    for p in &inv.problems {
        eprintln!("warning: {p}");
    }
}

/// The user who owns `/dev/console`, mapped to a short name with dscl.
fn console_user(mac: &Mac) -> anyhow::Result<String> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut tools = Tools::from_env();
    tools.timeout = Duration::from_secs(cli.timeout);
    let mac = Mac::new(tools.clone());
    match cli.command {
        Command::Inventory {
            json,
            managed_admin,
        } => {
            let inv = inventory::collect(&mac, managed_admin.as_deref());
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
            } else {
                print_inventory_table(&inv);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Action(action) => run_action(&mac, action),
        Command::Register {
            config,
            state,
            ca_cert,
            force,
            json,
        } => {
            let bytes = std::fs::read(&config).with_context(|| {
                format!(
                    "reading {}: install the agent profile (`escrowd agent-install DEVICE`) or pass --config",
                    config.display()
                )
            })?;
            let settings =
                protocol::agent_profile::parse_agent_settings(&bytes).with_context(|| {
                    format!("{} is not com.escrowd.agent settings", config.display())
                })?;
            let registered = client::register(&settings, ca_cert.as_deref(), &state, force)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"agent_id": registered.agent_id, "device_id": registered.device_id, "state": state})
                );
            } else {
                println!(
                    "Registered agent {} for device {} with {}; keys stored in {}",
                    registered.agent_id,
                    registered.device_id,
                    registered.server_url,
                    state.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            state,
            ca_cert,
            once,
            interval,
            managed_admin,
            json,
        } => {
            let st = AgentState::load(&state)?;
            let agent = AgentClient::new(&st, ca_cert.as_deref())?;
            let mut failures: u32 = 0;
            loop {
                let cycle = client::cycle(&agent, &mac, managed_admin.as_deref());
                // Backoff is for talking to the server; a failed action is the Mac's answer, not an outage.
                let reached = matches!(&cycle, Ok(r) if r.errors.is_empty());
                failures = if reached {
                    0
                } else {
                    failures.saturating_add(1)
                };
                let next = (!once).then(|| {
                    backoff::next_delay(
                        Duration::from_secs(interval),
                        failures,
                        backoff::random_unit(),
                    )
                });
                let ok = print_cycle(&cycle, json, next);
                match next {
                    None => {
                        return Ok(if ok {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        });
                    }
                    // While the server answers, wait on it: a newly queued action starts the next cycle
                    // at once (the nudge). After failures, just sleep out the backoff.
                    Some(wait) if failures == 0 => wait_or_nudged(&agent, wait),
                    Some(wait) => std::thread::sleep(wait),
                }
            }
        }
        Command::LaunchdPlist {
            state,
            interval,
            managed_admin,
            ca_cert,
            install,
        } => {
            let daemon = launchd::Daemon {
                program: std::env::current_exe()
                    .context("cannot tell where this escrow-agent binary is")?,
                state,
                interval,
                managed_admin,
                ca_cert,
            };
            let plist = daemon.plist()?;
            if install {
                let mut launchctl = Tools::with_path(launchd::SYSTEM_PATH);
                launchctl.timeout = tools.timeout;
                launchd::install(&launchctl, &plist)?;
                println!(
                    "Installed {} and loaded it (launchctl bootstrap system); logs: {}",
                    launchd::PLIST_PATH,
                    launchd::LOG_PATH
                );
            } else {
                use std::io::Write;
                std::io::stdout().write_all(&plist)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Escrow {
            console_user: user,
            prompt,
            json,
            state,
            ca_cert,
        } => {
            let user = match user {
                Some(u) => u,
                None => console_user(&mac)?,
            };
            let mut dialog_tools = tools;
            dialog_tools.timeout = Duration::from_secs(600); // a person is typing
            let mut prompter: Box<dyn Prompter> = if prompt == PromptKind::Dialog {
                Box::new(DialogPrompter {
                    tools: dialog_tools,
                    title: "Bootstrap Token".into(),
                })
            } else {
                Box::new(TerminalPrompter)
            };
            let result = escrow::self_service(&mac, &user, prompter.as_mut());
            let told = tell_server(&state, ca_cert.as_deref(), &escrow::report(&user, &result));
            if json {
                let mut value = match &result {
                    Ok(s) => serde_json::json!({ "ok": true, "result": s }),
                    Err(e) => {
                        serde_json::json!({ "ok": false, "error": e.code(), "message": e.to_string() })
                    }
                };
                value["server"] = told.json();
                println!("{value}");
            } else {
                told.print(&state);
            }
            Ok(if result.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Sleeps `wait`, long-polling the server meanwhile so that an action queued for this Mac ends the wait at
/// once. Falls back to plain sleep when the server answers a wait early (a server without long polls) or
/// cannot be reached (the next cycle reports that).
fn wait_or_nudged(agent: &AgentClient, wait: Duration) {
    let end = Instant::now() + wait;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(2) {
            std::thread::sleep(left);
            return;
        }
        let asked = left.min(Duration::from_secs(MAX_POLL_WAIT_SECS));
        let started = Instant::now();
        match agent.wait_for_actions(asked) {
            Ok(true) => return,
            Ok(false) if started.elapsed() + Duration::from_secs(1) >= asked => continue,
            Ok(false) | Err(_) => {
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                return;
            }
        }
    }
}

/// Prints one run cycle and when the next comes; true when every action succeeded and every report was
/// delivered.
fn print_cycle(
    cycle: &Result<client::CycleReport, client::ClientError>,
    json: bool,
    next: Option<Duration>,
) -> bool {
    let next_secs = next.map(|d| d.as_secs());
    let report = match cycle {
        Ok(r) => r,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "actions": [], "inventory_users": null, "errors": [e.to_string()], "next_poll_secs": next_secs})
                );
            } else {
                eprintln!("error: {e}");
                if let Some(n) = next_secs {
                    println!("next poll in {n}s (backing off after failures)");
                }
            }
            return false;
        }
    };
    let ok = report.errors.is_empty() && report.actions.iter().all(|(_, _, r)| r.succeeded);
    if json {
        let actions: Vec<_> = report
            .actions
            .iter()
            .map(|(id, kind, r)| serde_json::json!({"id": id, "kind": kind, "succeeded": r.succeeded, "reason": r.reason}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"ok": ok, "actions": actions, "inventory_users": report.inventory_users, "errors": report.errors, "next_poll_secs": next_secs})
        );
    } else {
        for (id, kind, r) in &report.actions {
            match &r.reason {
                None => println!("action {id} {kind}: succeeded"),
                Some(reason) => println!("action {id} {kind}: failed: {reason}"),
            }
        }
        if let Some(n) = report.inventory_users {
            println!("inventory: {n} user(s) reported");
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        match next_secs {
            Some(n) if !report.errors.is_empty() => {
                println!("next poll in {n}s (backing off after failures)")
            }
            Some(n) => println!("next poll in {n}s"),
            None => {}
        }
    }
    ok
}

/// How telling the server about a self-service escrow went.
enum Told {
    Reported,
    NotRegistered,
    Failed(String),
}

/// Reports the escrow's end to the server when this Mac's agent is registered (never fails the escrow).
fn tell_server(
    state: &std::path::Path,
    ca_cert: Option<&std::path::Path>,
    report: &protocol::agent_profile::EscrowReportRequest,
) -> Told {
    if !state.exists() {
        return Told::NotRegistered;
    }
    let sent = AgentState::load(state)
        .and_then(|st| AgentClient::new(&st, ca_cert))
        .and_then(|agent| agent.post_escrow_report(report));
    match sent {
        Ok(()) => Told::Reported,
        Err(e) => Told::Failed(e.to_string()),
    }
}

impl Told {
    fn json(&self) -> serde_json::Value {
        match self {
            Told::Reported => serde_json::json!({"reported": true}),
            Told::NotRegistered => {
                serde_json::json!({"reported": false, "reason": "not_registered"})
            }
            Told::Failed(e) => {
                serde_json::json!({"reported": false, "reason": "failed", "message": e})
            }
        }
    }

    fn print(&self, state: &std::path::Path) {
        match self {
            Told::Reported => println!("The server was told how it went."),
            Told::NotRegistered => eprintln!(
                "note: this Mac's agent is not registered (no {}), so the server was not told; \
                 register it with `escrow-agent register` or pass --state",
                state.display()
            ),
            Told::Failed(e) => eprintln!("warning: could not tell the server how it went: {e}"),
        }
    }
}
