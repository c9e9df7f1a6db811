//! `escrowd groups …` and `escrowd events`.

use apitypes::{
    AccountSettings, Event, EventPage, Group, GroupAccounts, GroupChange, GroupSet, GroupUpdated,
    Groups, NewAccountSettings, NewGroup, OnEscrowDisabled, SetGroup,
};
use clap::{Args, Subcommand};
use serde_json::json;

use super::typed::{self, Cell, Column, Typed};
use super::{enc, when};
use crate::client::ServerArgs;
use anyhow::anyhow;

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List groups.
    List(ServerOnly),
    /// Create a group: `escrowd groups create Lab --escrow false`.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        escrow: bool,
    },
    /// Switch escrow on or off; `--clear-tokens` deletes escrowed tokens when switching off (audited).
    Escrow {
        #[command(flatten)]
        server: ServerArgs,
        /// Group id or name.
        id: String,
        #[arg(action = clap::ArgAction::Set)]
        enabled: bool,
        #[arg(long)]
        clear_tokens: bool,
    },
    /// Put a device in a group (leave GROUP out to remove it from its group).
    Assign {
        #[command(flatten)]
        server: ServerArgs,
        device: String,
        /// Group id or name.
        group: Option<String>,
    },
    /// Delete a group.
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        /// Group id or name.
        id: String,
    },
    /// Show or set the group's managed local admin for zero-touch (ADE) setup.
    #[command(
        long_about = "Show or set the group's managed local admin for zero-touch (ADE) setup. An ADE Mac of the \
group that enrolls while Setup Assistant waits (AwaitingConfiguration) gets AccountConfiguration: the admin is \
created from a SALTED-SHA512-PBKDF2 hash of a password escrowd generates per Mac and seals (never printed), and is \
the ManagedLocalUserShortName; then DeviceConfigured. macOS gives an admin created from a hash no Secure Token until \
its first graphical login, so --primary standard or skip leaves the Mac without a token holder and nothing escrows \
(scenario S4): escrowd warns.",
        after_help = "Examples:\n  escrowd groups accounts GROUP                                   # show\n  \
escrowd groups accounts GROUP --admin mgmt --full-name 'IT Admin' --hidden\n  \
escrowd groups accounts GROUP --admin mgmt --primary skip           # warns: no token holder (S4)\n  \
escrowd groups accounts GROUP --remove"
    )]
    Accounts {
        #[command(flatten)]
        server: ServerArgs,
        /// Group id or name.
        id: String,
        /// Short name of the managed admin (AutoSetupAdminAccounts, ManagedLocalUserShortName).
        #[arg(long, value_name = "SHORT_NAME", conflicts_with = "remove")]
        admin: Option<String>,
        /// The admin's full name (default: its short name).
        #[arg(long, requires = "admin")]
        full_name: Option<String>,
        /// Hide the admin from the login window and Users & Groups.
        #[arg(long, requires = "admin")]
        hidden: bool,
        /// Setup Assistant's primary account: admin (default), standard or skip.
        #[arg(long, value_name = "KIND", requires = "admin")]
        primary: Option<String>,
        /// Prefill the primary account's full name.
        #[arg(long, requires = "admin")]
        primary_full_name: Option<String>,
        /// Prefill the primary account's short name.
        #[arg(long, requires = "admin")]
        primary_user_name: Option<String>,
        /// DontAutoPopulatePrimaryAccountInfo.
        #[arg(long, requires = "admin")]
        dont_auto_populate: bool,
        /// LockPrimaryAccountInfo.
        #[arg(long, requires = "admin")]
        lock_primary: bool,
        /// Remove the setting (Macs already set up keep their admin).
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServerOnly {
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd events                       # the whole fleet, newest first\n  \
escrowd events UDID                  # one Mac\n  escrowd events --kind bootstrap_token.escrowed --outcome success --limit 50\n  \
escrowd events --subject server --json"
)]
pub struct EventsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID); without it, events of the whole fleet.
    id: Option<String>,
    /// Only events about this subject (a UDID, `server` or `unknown`); fleet view only.
    #[arg(long, conflicts_with = "id")]
    subject: Option<String>,
    /// Only this event type, e.g. bootstrap_token.escrowed.
    #[arg(long)]
    kind: Option<String>,
    /// success, failure or refused.
    #[arg(long, value_parser = ["success", "failure", "refused"])]
    outcome: Option<String>,
    /// How many (1-1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
}

pub async fn events(a: EventsArgs) -> anyhow::Result<()> {
    let mut query = vec![format!("limit={}", a.limit)];
    for (name, value) in [
        ("subject", &a.subject),
        ("kind", &a.kind),
        ("outcome", &a.outcome),
    ] {
        if let Some(v) = value {
            query.push(format!("{name}={}", enc(v)));
        }
    }
    let path = match &a.id {
        Some(id) => format!("/api/v1/devices/{}/events", enc(id)),
        None => "/api/v1/events".to_string(),
    };
    let page: Typed<EventPage> =
        typed::get(&a.server, &format!("{path}?{}", query.join("&"))).await?;
    typed::print(
        &a.server,
        &page.raw,
        &page.value.events,
        &[
            ("id", |e: &Event| e.id.cell()),
            ("at", |e| when(e.at)),
            ("subject", |e| e.subject.cell()),
            ("kind", |e| e.kind.cell()),
            ("outcome", |e| e.outcome.cell()),
            ("detail", |e| e.detail.cell()),
        ],
    );
    Ok(())
}

/// A group's id from its id or its name, resolved the way `profile --group` and `enroll-token create --group`
/// are on the server: an id that matches wins, else the name.
pub(crate) async fn group_id(server: &ServerArgs, id_or_name: &str) -> anyhow::Result<String> {
    let list: Typed<Groups> = typed::get(server, "/api/v1/groups").await?;
    find_group(&list.value.groups, id_or_name)
        .map(|g| g.id.clone())
        .ok_or_else(|| {
            anyhow!("no group has the id or name {id_or_name:?} (see `escrowd groups list`)")
        })
}

fn find_group<'a>(groups: &'a [Group], id_or_name: &str) -> Option<&'a Group> {
    groups
        .iter()
        .find(|g| g.id == id_or_name)
        .or_else(|| groups.iter().find(|g| g.name == id_or_name))
}

/// The columns of a group table.
const GROUP_COLUMNS: &[Column<'static, Group>] = &[
    ("id", |g| g.id.cell()),
    ("name", |g| g.name.cell()),
    ("escrow", |g| g.bootstrap_escrow_enabled.cell()),
    ("prompt user", |g| {
        g.prompt_user_to_allow_bootstrap_token_for_authentication
            .cell()
    }),
];

pub async fn groups(cmd: GroupsCommand) -> anyhow::Result<()> {
    match cmd {
        GroupsCommand::List(s) => {
            let list: Typed<Groups> = typed::get(&s.server, "/api/v1/groups").await?;
            typed::print(&s.server, &list.raw, &list.value.groups, GROUP_COLUMNS);
        }
        GroupsCommand::Create {
            server,
            name,
            escrow,
        } => {
            let body = NewGroup {
                name,
                bootstrap_escrow_enabled: escrow,
                prompt_user_to_allow_bootstrap_token_for_authentication: false,
            };
            let g: Typed<Group> = typed::call(
                &server,
                "POST",
                "/api/v1/groups",
                Some(serde_json::to_value(body)?),
            )
            .await?;
            typed::print(
                &server,
                &json!({"groups": [g.raw]}),
                std::slice::from_ref(&g.value),
                GROUP_COLUMNS,
            );
        }
        GroupsCommand::Escrow {
            server,
            id,
            enabled,
            clear_tokens,
        } => {
            let on_escrow_disabled = if clear_tokens {
                OnEscrowDisabled::Clear
            } else {
                OnEscrowDisabled::Keep
            };
            let body = GroupChange {
                bootstrap_escrow_enabled: Some(enabled),
                on_escrow_disabled: Some(on_escrow_disabled.as_str().to_string()),
                ..GroupChange::default()
            };
            let path = format!("/api/v1/groups/{}", enc(&group_id(&server, &id).await?));
            let u: Typed<GroupUpdated> =
                typed::call(&server, "PATCH", &path, Some(serde_json::to_value(body)?)).await?;
            if server.json {
                println!("{}", u.raw)
            } else {
                println!(
                    "escrow {} for {:?}; tokens cleared: {}",
                    if enabled { "on" } else { "off" },
                    u.value.group.name,
                    u.value.tokens_cleared
                )
            }
        }
        GroupsCommand::Assign {
            server,
            device,
            group,
        } => {
            let path = format!("/api/v1/devices/{}/group", enc(&device));
            let group_id = match &group {
                Some(g) => Some(group_id(&server, g).await?),
                None => None,
            };
            let body = SetGroup { group_id };
            let _: Typed<GroupSet> =
                typed::call(&server, "PUT", &path, Some(serde_json::to_value(body)?)).await?;
            println!("{device} → {}", group.as_deref().unwrap_or("no group"));
        }
        GroupsCommand::Accounts {
            server,
            id,
            admin,
            full_name,
            hidden,
            primary,
            primary_full_name,
            primary_user_name,
            dont_auto_populate,
            lock_primary,
            remove,
        } => {
            let path = format!(
                "/api/v1/groups/{}/accounts",
                enc(&group_id(&server, &id).await?)
            );
            let v: Typed<GroupAccounts> = if remove {
                typed::call(&server, "DELETE", &path, None).await?
            } else if let Some(admin) = admin {
                let body = NewAccountSettings {
                    admin_short_name: admin,
                    admin_full_name: full_name,
                    admin_hidden: hidden,
                    primary_account: primary,
                    dont_auto_populate_primary_account_info: dont_auto_populate,
                    lock_primary_account_info: lock_primary,
                    primary_account_full_name: primary_full_name,
                    primary_account_user_name: primary_user_name,
                };
                typed::call(&server, "PUT", &path, Some(serde_json::to_value(body)?)).await?
            } else {
                typed::get(&server, &path).await?
            };
            for w in &v.value.warnings {
                eprintln!("warning: {w}");
            }
            if server.json {
                println!("{}", v.raw);
            } else if let Some(s) = &v.value.settings {
                println!(
                    "{}",
                    typed::rows(
                        std::slice::from_ref(s),
                        &[
                            ("admin", |s: &AccountSettings| s.admin_short_name.cell()),
                            ("full name", |s| s.admin_full_name.cell()),
                            ("hidden", |s| s.admin_hidden.cell()),
                            ("primary account", |s| s.primary_account.cell()),
                            ("prefill user", |s| s.primary_account_user_name.cell()),
                            ("lock primary", |s| s.lock_primary_account_info.cell()),
                        ],
                    )
                );
            } else {
                println!("group {id}: no managed admin (Macs get DeviceConfigured only)");
            }
        }
        GroupsCommand::Delete { server, id } => {
            server
                .ok(
                    "DELETE",
                    &format!("/api/v1/groups/{}", enc(&group_id(&server, &id).await?)),
                    None,
                )
                .await?;
            println!("deleted group {id}");
        }
    }
    Ok(())
}
