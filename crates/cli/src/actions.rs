//! `escrowd action create|list|show|cancel` and `escrowd agent install`: the agent's actions over the admin
//! API. Passwords never come from argv: they are read from ESCROWD_USER_PASSWORD / ESCROWD_ADMIN_PASSWORD or,
//! with --passwords-from-stdin, one per line from stdin (user's first, then admin's).

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vault::Secret;

use crate::admin::{enc, print};
use crate::client::ServerArgs;

#[derive(Subcommand, Debug)]
pub enum ActionCommand {
    /// Queue an action for a Mac's agent. Passwords: ESCROWD_USER_PASSWORD / ESCROWD_ADMIN_PASSWORD or
    /// --passwords-from-stdin; never on the command line.
    #[command(after_help = "Examples:\n  \
ESCROWD_USER_PASSWORD=… ESCROWD_ADMIN_PASSWORD=… escrowd action create UDID grant_secure_token --user alice --admin ladmin\n  \
printf '%s\\n%s\\n' \"$NEW_PW\" \"$ADMIN_PW\" | escrowd action create UDID create_user --user bob --full-name 'Bob Li' --make-admin --admin ladmin --passwords-from-stdin\n  \
escrowd action create UDID troubleshoot\n\nKinds: grant_secure_token, create_user, secure_token_off, transfer_secure_token (--admin is the token holder), \
validate_bootstrap_token, remove_bootstrap_token, reescrow_bootstrap_token, troubleshoot. %serial%, %device_name% and %username% expand on the server.")]
    Create {
        #[command(flatten)]
        server: ServerArgs,
        /// Device id (UDID).
        id: String,
        /// What to do (see below).
        kind: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        admin: Option<String>,
        #[arg(long, value_name = "NAME")]
        full_name: Option<String>,
        /// create_user: make the new user an administrator.
        #[arg(long)]
        make_admin: bool,
        /// Read the user's password, then the admin's, one per line from stdin.
        #[arg(long)]
        passwords_from_stdin: bool,
    },
    /// A Mac's actions, newest first.
    #[command(after_help = "Example:\n  escrowd action list UDID --json")]
    List {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// One action with its reason and output.
    #[command(after_help = "Example:\n  escrowd action show UDID ACTION_ID")]
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        action: String,
    },
    /// Cancel a queued or delivered action (its sealed credentials are deleted).
    #[command(after_help = "Example:\n  escrowd action cancel UDID ACTION_ID")]
    Cancel {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        action: String,
    },
}

/// `escrowd agent install`: queue the agent's settings profile (one-time registration secret) for a Mac.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  escrowd agent-install UDID --agent-server-url https://mdm.example.com"
)]
pub struct AgentInstallArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    id: String,
    /// The URL the agent will call (default: --server).
    #[arg(long)]
    agent_server_url: Option<String>,
}

fn needs(kind: &str) -> (bool, bool) {
    match kind {
        "grant_secure_token" | "create_user" | "secure_token_off" | "transfer_secure_token" => {
            (true, true)
        }
        "validate_bootstrap_token" | "remove_bootstrap_token" | "reescrow_bootstrap_token" => {
            (false, true)
        }
        _ => (false, false),
    }
}

/// A password if the action needs one.
type Password = Option<Secret<String>>;

fn passwords(kind: &str, from_stdin: bool) -> anyhow::Result<(Password, Password)> {
    let (need_user, need_admin) = needs(kind);
    let mut lines: Vec<Secret<String>> = Vec::new();
    if from_stdin {
        for line in std::io::stdin().lock().lines().take(2) {
            lines.push(Secret::new(line.context("reading passwords from stdin")?));
        }
    }
    let mut lines = lines.into_iter();
    let mut take = |need: bool, var: &str, what: &str| -> anyhow::Result<Option<Secret<String>>> {
        if !need {
            return Ok(None);
        }
        if from_stdin {
            return match lines.next() {
                Some(l) => Ok(Some(l)),
                None => bail!("stdin ended before the {what} password; give one line per password"),
            };
        }
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
            _ => bail!(
                "{kind} needs the {what} password: set {var} or pipe it with --passwords-from-stdin"
            ),
        }
    };
    let user = take(need_user, "ESCROWD_USER_PASSWORD", "user's")?;
    let admin = take(need_admin, "ESCROWD_ADMIN_PASSWORD", "admin's")?;
    Ok((user, admin))
}

const COLS: [(&str, &str); 5] = [
    ("id", "/id"),
    ("kind", "/kind"),
    ("status", "/status"),
    ("reason", "/reason"),
    ("updated", "/updated_at"),
];

pub async fn run(cmd: ActionCommand) -> anyhow::Result<()> {
    match cmd {
        ActionCommand::Create {
            server,
            id,
            kind,
            user,
            admin,
            full_name,
            make_admin,
            passwords_from_stdin,
        } => {
            let (user_pw, admin_pw) = passwords(&kind, passwords_from_stdin)?;
            let mut body = json!({"kind": kind, "user": user, "admin": admin, "full_name": full_name, "make_admin": make_admin});
            if let Some(p) = &user_pw {
                body["user_password"] = Value::String(p.expose().clone());
            }
            if let Some(p) = &admin_pw {
                body["admin_password"] = Value::String(p.expose().clone());
            }
            let v = server
                .ok(
                    "POST",
                    &format!("/api/v1/devices/{}/actions", enc(&id)),
                    Some(body),
                )
                .await?
                .json()?;
            print(&server, &json!({"a": [v.clone()]}), "/a", &COLS);
        }
        ActionCommand::List { server, id } => {
            let v = server
                .ok(
                    "GET",
                    &format!("/api/v1/devices/{}/actions", enc(&id)),
                    None,
                )
                .await?
                .json()?;
            print(&server, &v, "/actions", &COLS);
        }
        ActionCommand::Show { server, id, action } => {
            let v = server
                .ok(
                    "GET",
                    &format!("/api/v1/devices/{}/actions/{}", enc(&id), enc(&action)),
                    None,
                )
                .await?
                .json()?;
            if server.json {
                println!("{v}");
            } else {
                print(&server, &json!({"a": [v.clone()]}), "/a", &COLS);
                if let Some(out) = v.get("output").and_then(Value::as_str) {
                    println!("output:\n{out}");
                }
            }
        }
        ActionCommand::Cancel { server, id, action } => {
            let v = server
                .ok(
                    "POST",
                    &format!(
                        "/api/v1/devices/{}/actions/{}/cancel",
                        enc(&id),
                        enc(&action)
                    ),
                    Some(json!({})),
                )
                .await?
                .json()?;
            print(&server, &json!({"a": [v]}), "/a", &COLS);
        }
    }
    Ok(())
}

pub async fn install(a: AgentInstallArgs) -> anyhow::Result<()> {
    let url = a
        .agent_server_url
        .clone()
        .unwrap_or_else(|| a.server.server.clone());
    let v = a
        .server
        .ok(
            "POST",
            &format!("/api/v1/devices/{}/agent", enc(&a.id)),
            Some(json!({"server_url": url})),
        )
        .await?
        .json()?;
    print(
        &a.server,
        &json!({"a": [v]}),
        "/a",
        &[
            ("command", "/command_uuid"),
            ("secret expires", "/secret_expires_at"),
        ],
    );
    Ok(())
}
