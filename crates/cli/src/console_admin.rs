//! `escrowd admin`: console admin accounts, made and managed directly in the database (offline, no server
//! needed), like `escrowd apikey`, so the first console admin can exist before anyone can sign in.

use std::io::BufRead;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::Table;
use service::apikeys::Actor;
use service::console_admins;
use store::ApiScope;
use vault::Secret;

use crate::apikey::{DbArgs, now_millis, parse_scope};

const CREATE_ABOUT: &str = "Make a console admin who signs in to the web console with a name and password.\n\n\
The password is asked twice on the terminal (not echoed), or read as one line from standard input with \
--password-stdin (for automation). It needs at least 12 characters and must not be the name; only its \
Argon2id hash is stored.\n\n\
Roles: read (look at devices, users, events, groups, reports), operate (also actions on Macs: refresh \
inventory, Grant Secure Token, create a user, troubleshoot), admin (also group settings, clearing a token, \
enrollment tokens).\n\n\
Examples:\n  escrowd admin create ada --role admin --data-dir /var/lib/escrowd\n  \
printf '%s\\n' \"$PASSWORD\" | escrowd admin create ops --role operate --password-stdin \
--database postgres://escrowd@db/escrowd\n\n\
Then open the console and sign in. After 5 failed sign-ins within 15 minutes for a name (or from an \
address), sign-ins are refused for 15 minutes.";

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Make a console admin (password asked twice without echo, or --password-stdin). Audited.
    #[command(long_about = CREATE_ABOUT)]
    Create {
        /// The admin's name: letters, digits, '.', '_', '-', '@' (1-64, starting with a letter or digit).
        name: String,
        /// read, operate or admin.
        #[arg(long, value_parser = parse_scope)]
        role: ApiScope,
        /// Read the password as one line from standard input instead of asking twice on the terminal.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the console admins with role, created/updated times and whether disabled (never passwords).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable a console admin: their sessions end at once and they cannot sign in again. Audited.
    Disable {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a console admin's password (asked twice, or --password-stdin); their sessions end. Audited.
    Passwd {
        name: String,
        /// Read the password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// The new password: one stdin line, or asked twice on the terminal (must match).
fn new_password(name: &str, from_stdin: bool) -> anyhow::Result<Secret<String>> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = Secret::new(line.trim_end_matches(['\r', '\n']).to_string());
        line.clear();
        anyhow::ensure!(
            !password.expose().is_empty(),
            "no password on standard input"
        );
        return Ok(password);
    }
    let first = prompt::read_password(&format!("New password for {name}:"), true)?
        .context("no password given")?;
    console_admins::check_password(name, first.expose())?;
    let again = prompt::read_password("Again:", true)?.context("no password given")?;
    anyhow::ensure!(
        first.expose() == again.expose(),
        "the two passwords differ; nothing changed"
    );
    Ok(first)
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Create {
            name,
            role,
            password_stdin,
            db,
        } => {
            console_admins::check_name(&name)?;
            let password = new_password(&name, password_stdin)?;
            let store = db.store().await?;
            let by = Actor::offline("escrowd admin create");
            let result = console_admins::create_admin(
                store.as_ref(),
                now_millis(),
                &name,
                role,
                password.expose(),
                &by,
            )
            .await;
            store.close().await;
            let admin = result?;
            if db.json {
                println!(
                    "{}",
                    serde_json::json!({"name": admin.name, "role": role.as_str()})
                );
            } else {
                println!(
                    "Created console admin {} with role {}.",
                    admin.name,
                    role.as_str()
                );
            }
        }
        AdminCommand::Passwd {
            name,
            password_stdin,
            db,
        } => {
            let password = new_password(&name, password_stdin)?;
            let store = db.store().await?;
            let by = Actor::offline("escrowd admin passwd");
            let result = console_admins::set_password(
                store.as_ref(),
                now_millis(),
                &name,
                password.expose(),
                &by,
            )
            .await;
            store.close().await;
            result.map_err(|e| anyhow::anyhow!("{e} (see `escrowd admin list`)"))?;
            if db.json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "password_set": true})
                );
            } else {
                println!("Set the password of {name}; their console sessions ended.");
            }
        }
        AdminCommand::Disable { name, db } => {
            let store = db.store().await?;
            let by = Actor::offline("escrowd admin disable");
            let result = console_admins::disable(store.as_ref(), now_millis(), &name, &by).await;
            store.close().await;
            result.map_err(|e| anyhow::anyhow!("{e} (see `escrowd admin list`)"))?;
            if db.json {
                println!("{}", serde_json::json!({"name": name, "disabled": true}));
            } else {
                println!("Disabled {name}; their console sessions ended.");
            }
        }
        AdminCommand::List { db } => {
            let store = db.store().await?;
            let admins = store.list_console_admins().await;
            store.close().await;
            let admins = admins?;
            if db.json {
                let list: Vec<_> = admins
                    .iter()
                    .map(|a| serde_json::json!({"name": a.name, "role": a.role.as_str(), "created_at": a.created_at, "updated_at": a.updated_at, "disabled_at": a.disabled_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                let mut t = Table::new();
                t.set_header(["name", "role", "created (ms)", "updated (ms)", "disabled"]);
                for a in &admins {
                    t.add_row([
                        a.name.clone(),
                        a.role.as_str().to_string(),
                        a.created_at.to_string(),
                        a.updated_at.to_string(),
                        a.disabled_at.map_or_else(|| "-".into(), |d| d.to_string()),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    Ok(())
}
