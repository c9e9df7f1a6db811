//! `escrowd action create|list|show|cancel` and `escrowd agent install`: the agent's actions over the admin
//! API. Passwords never come from argv: they are read from ESCROWD_USER_PASSWORD / ESCROWD_ADMIN_PASSWORD or,
//! with --passwords-from-stdin, one per line from stdin (user's first, then admin's). They stay in
//! `Secret`s and are serialized straight into a zeroizing buffer that is the request body, wiped once sent.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use protocol::action_kind::{ActionKind, Needed};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use vault::Secret;
use zeroize::Zeroizing;

use apitypes::{Action, Actions, AgentInstall, AgentInstalled};

use crate::admin::typed::{self, Cell, Column, Typed};
use crate::admin::{enc, when};
use crate::client::ServerArgs;

#[derive(Subcommand, Debug)]
pub enum ActionCommand {
    /// Queue an action for a Mac's agent. Passwords: ESCROWD_USER_PASSWORD / ESCROWD_ADMIN_PASSWORD or
    /// --passwords-from-stdin; never on the command line.
    #[command(after_help = "Examples:\n  \
ESCROWD_USER_PASSWORD=… ESCROWD_ADMIN_PASSWORD=… escrowd action create UDID grant_secure_token --user alice --admin ladmin\n  \
printf '%s\\n%s\\n' \"$NEW_PW\" \"$ADMIN_PW\" | escrowd action create UDID create_user --user bob --full-name 'Bob Li' --make-admin --admin ladmin --passwords-from-stdin\n  \
ESCROWD_USER_PASSWORD=NEW… ESCROWD_ADMIN_PASSWORD=… escrowd action create UDID reset_password --user alice --admin ladmin\n  \
escrowd action create UDID troubleshoot\n  \
ESCROWD_ADMIN_PASSWORD=… escrowd action create UDID troubleshoot --admin ladmin   # also runs profiles validate\n\n\
Kinds: grant_secure_token, create_user, secure_token_off, transfer_secure_token (--admin is the token holder), \
reset_password (the user password is the NEW one; --admin must hold a Secure Token so the user's token and FileVault \
stay in sync, else the agent refuses with the reason), \
validate_bootstrap_token, remove_bootstrap_token, reescrow_bootstrap_token, troubleshoot (SOTI's read-only commands; \
each one's output lands in `escrowd events UDID --kind agent.troubleshoot`). %serial%, %device_name% and %username% expand on the server.")]
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
    after_help = "The registration secret works once, for the server's --agent-secret-ttl (default 24h) counted from \
when the Mac installs the profile. Queueing a new install revokes the Mac's earlier unused secrets.\n\n\
A Mac whose agent is already registered re-registers only when the agent signs the request with its current key \
(`escrow-agent register --force` does), or when the install was queued with --replace (admin API key; recorded \
as an agent.replace_authorized event), e.g. after the Mac was wiped or the agent's key was lost.\n\n\
Examples:\n  escrowd agent-install UDID --agent-server-url https://mdm.example.com\n  \
escrowd agent-install UDID --replace   # the agent's key is gone: let the new registration replace it"
)]
pub struct AgentInstallArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    id: String,
    /// The URL the agent will call: the Macs' address (default: the server's --public-url, else its --listen
    /// address; never --server, which is the admin listener).
    #[arg(long)]
    agent_server_url: Option<String>,
    /// Let the registration with this install's secret replace the Mac's currently registered agent without
    /// that agent's signature (needs an admin API key; audited).
    #[arg(long)]
    replace: bool,
}

/// A password if the action needs one.
type Password = Option<Secret<String>>;

/// The passwords `kind` needs; an optional admin password (troubleshoot) only when `--admin` is given.
fn passwords(
    kind: &str,
    from_stdin: bool,
    admin_given: bool,
) -> anyhow::Result<(Password, Password)> {
    // An unknown kind needs nothing here; the server refuses it and names the known ones.
    let (user, admin) = ActionKind::parse(kind).map_or((Needed::No, Needed::No), ActionKind::needs);
    let need_user = user == Needed::Yes;
    let need_admin = admin == Needed::Yes || (admin == Needed::Optional && admin_given);
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
    let user_what = match kind {
        "reset_password" | "create_user" => "user's new",
        _ => "user's",
    };
    let user = take(need_user, "ESCROWD_USER_PASSWORD", user_what)?;
    let admin = take(need_admin, "ESCROWD_ADMIN_PASSWORD", "admin's")?;
    Ok((user, admin))
}

/// `POST /api/v1/devices/{id}/actions`. Serialized only by [`create_body`], into a zeroizing buffer.
#[derive(Serialize)]
struct CreateBody<'a> {
    kind: &'a str,
    user: Option<&'a str>,
    admin: Option<&'a str>,
    full_name: Option<&'a str>,
    make_admin: bool,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    user_password: Password,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    admin_password: Password,
}

fn expose<S: Serializer>(secret: &Password, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(p) => s.serialize_str(p.expose()),
        None => s.serialize_none(),
    }
}

/// The JSON body in a zeroizing buffer reserved up front for the worst case (every character escaped as
/// `\uXXXX`), so it never reallocates and leaves no unwiped copy behind.
fn create_body(body: &CreateBody<'_>) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let text: usize = [body.kind, body.user.unwrap_or(""), body.admin.unwrap_or("")]
        .iter()
        .chain(&[body.full_name.unwrap_or("")])
        .map(|s| s.len())
        .sum::<usize>()
        + [&body.user_password, &body.admin_password]
            .into_iter()
            .flatten()
            .map(|p| p.expose().len())
            .sum::<usize>();
    let capacity = 256 + 6 * text;
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    serde_json::to_writer(&mut *buf, body).context("encoding the action")?;
    debug_assert_eq!(buf.capacity(), capacity, "the body buffer reallocated");
    Ok(buf)
}

const COLS: &[Column<'static, Action>] = &[
    ("id", |a: &Action| a.id.cell()),
    ("kind", |a| a.kind.cell()),
    ("status", |a| a.status.to_string()),
    ("reason", |a| a.reason.cell()),
    ("updated", |a| when(a.updated_at)),
];

/// One action: as sent with `--json`, else a one-row table.
fn print_one(server: &ServerArgs, a: &Typed<Action>) {
    typed::print(server, &a.raw, std::slice::from_ref(&a.value), COLS);
}

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
            let (user_password, admin_password) =
                passwords(&kind, passwords_from_stdin, admin.is_some())?;
            let body = create_body(&CreateBody {
                kind: &kind,
                user: user.as_deref(),
                admin: admin.as_deref(),
                full_name: full_name.as_deref(),
                make_admin,
                user_password,
                admin_password,
            })?;
            let raw = server
                .ok_secret(
                    "POST",
                    &format!("/api/v1/devices/{}/actions", enc(&id)),
                    body,
                )
                .await?
                .json()?;
            print_one(&server, &typed::read::<Action>(raw)?);
        }
        ActionCommand::List { server, id } => {
            let list: Typed<Actions> =
                typed::get(&server, &format!("/api/v1/devices/{}/actions", enc(&id))).await?;
            typed::print(&server, &list.raw, &list.value.actions, COLS);
        }
        ActionCommand::Show { server, id, action } => {
            let a: Typed<Action> = typed::get(
                &server,
                &format!("/api/v1/devices/{}/actions/{}", enc(&id), enc(&action)),
            )
            .await?;
            // An action's output is JSON text for most kinds: give it as JSON, not as a string inside JSON.
            let output = a.value.output.as_deref().map(|o| {
                serde_json::from_str::<Value>(o).unwrap_or_else(|_| Value::String(o.into()))
            });
            if server.json {
                let mut v = a.raw;
                if let Some(o) = output {
                    v["output"] = o;
                }
                println!("{v}");
            } else {
                print_one(&server, &a);
                match output {
                    Some(Value::String(out)) => println!("output:\n{out}"),
                    Some(o) => println!(
                        "output:\n{}",
                        serde_json::to_string_pretty(&o).unwrap_or_default()
                    ),
                    None => {}
                }
            }
        }
        ActionCommand::Cancel { server, id, action } => {
            let a: Typed<Action> = typed::call(
                &server,
                "POST",
                &format!(
                    "/api/v1/devices/{}/actions/{}/cancel",
                    enc(&id),
                    enc(&action)
                ),
                Some(json!({})),
            )
            .await?;
            print_one(&server, &a);
        }
    }
    Ok(())
}

pub async fn install(a: AgentInstallArgs) -> anyhow::Result<()> {
    let v: Typed<AgentInstalled> = typed::call(
        &a.server,
        "POST",
        &format!("/api/v1/devices/{}/agent", enc(&a.id)),
        Some(serde_json::to_value(AgentInstall {
            server_url: a.agent_server_url.clone(),
            replace: a.replace,
        })?),
    )
    .await?;
    typed::print(
        &a.server,
        &v.raw,
        std::slice::from_ref(&v.value),
        &[
            ("command", |i: &AgentInstalled| i.command_uuid.cell()),
            ("secret ttl ms (from install)", |i| i.secret_ttl_ms.cell()),
            ("revoked secrets", |i| i.revoked_secrets.cell()),
            ("replace", |i| i.replace.cell()),
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'a>(user_pw: Option<&str>, admin_pw: Option<&str>) -> CreateBody<'a> {
        CreateBody {
            kind: "grant_secure_token",
            user: Some("alice"),
            admin: Some("ladmin"),
            full_name: None,
            make_admin: false,
            user_password: user_pw.map(|p| Secret::new(p.into())),
            admin_password: admin_pw.map(|p| Secret::new(p.into())),
        }
    }

    #[test]
    fn the_body_carries_the_passwords_as_json_strings_and_omits_absent_ones() {
        let hostile = "\"},\"kind\":\"x\u{0}\u{1b}\\ \u{202e}é";
        let buf = create_body(&body(Some(hostile), Some("adm"))).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["user_password"], hostile);
        assert_eq!(v["admin_password"], "adm");
        assert_eq!(v["kind"], "grant_secure_token");
        assert_eq!(v["full_name"], Value::Null);
        let none = create_body(&body(None, None)).unwrap();
        let v: Value = serde_json::from_slice(&none).unwrap();
        assert!(v.get("user_password").is_none() && v.get("admin_password").is_none());
    }

    #[test]
    fn the_buffer_is_reserved_for_the_worst_case_and_never_reallocates() {
        // Every character of a control-character password becomes a six-byte \u escape.
        let worst = "\u{1}".repeat(300);
        let b = body(Some(&worst), Some(&worst));
        let buf = create_body(&b).unwrap();
        assert!(buf.len() > 3600, "{}", buf.len());
        // create_body's debug assertion checked the capacity did not change.
    }

    #[test]
    fn troubleshoot_asks_for_the_admin_password_only_with_an_admin() {
        // Nothing needed: neither the environment nor stdin is read.
        assert!(matches!(
            passwords("troubleshoot", false, false),
            Ok((None, None))
        ));
        assert!(matches!(
            passwords("no_such_kind", false, true),
            Ok((None, None))
        ));
        // With --admin the admin's password is needed (and ESCROWD_ADMIN_PASSWORD is unset in tests).
        if std::env::var_os("ESCROWD_ADMIN_PASSWORD").is_none() {
            let err = passwords("troubleshoot", false, true).unwrap_err();
            assert!(err.to_string().contains("ESCROWD_ADMIN_PASSWORD"), "{err}");
        }
    }
}
