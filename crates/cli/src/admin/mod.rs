//! `escrowd devices | device | users | commands | events | groups | command | push | report`: the admin API from the
//! command line. Tables by default, `--json` for scripts; errors carry the server's message and what to do.

use anyhow::bail;
use clap::{Args, Subcommand};
use comfy_table::Table;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::bulk::{self, Targets};
use crate::client::ServerArgs;

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(rows: &[Value], cols: &[(&str, &str)]) -> Table {
    let mut t = Table::new();
    t.set_header(cols.iter().map(|(h, _)| *h));
    for r in rows {
        t.add_row(
            cols.iter()
                .map(|(_, ptr)| text(r.pointer(ptr).unwrap_or(&Value::Null))),
        );
    }
    t
}

pub(crate) fn print(server: &ServerArgs, v: &Value, rows: &str, cols: &[(&str, &str)]) {
    if server.json {
        println!("{v}");
    } else {
        let empty = Vec::new();
        let list = v.pointer(rows).and_then(Value::as_array).unwrap_or(&empty);
        println!("{}", table(list, cols));
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd devices --status not_escrowed\n  escrowd devices --apple-silicon true --os-version 14 --json\n  escrowd devices --all --json > fleet.json      # every device, paged for you\n  ESCROWD_API_KEY=… escrowd devices --server https://mdm.example.com --ca-cert /var/lib/escrowd/tls.pem"
)]
pub struct DevicesArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// not_supported, not_escrowed or escrowed.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    apple_silicon: Option<bool>,
    /// OS version prefix: 14 or 14.5.
    #[arg(long)]
    os_version: Option<String>,
    /// Group id.
    #[arg(long)]
    group: Option<String>,
    /// Only devices with a user lacking a Secure Token.
    #[arg(long)]
    users_without_secure_token: bool,
    /// Continue after this device id (the previous page's `next`).
    #[arg(long, conflicts_with = "all")]
    after: Option<String>,
    /// Devices per page (1-1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Every matching device: pages through the whole list (with a count on stderr) instead of one page.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    id: String,
}

/// `escrowd device UDID` (detail and diagnosis) or `escrowd device <action> UDID`.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  escrowd device UDID                          # detail + diagnosis\n  escrowd device identities UDID               # bound and pending identities\n  escrowd device approve-identity UDID        # a re-enrolled Mac's new identity\n  escrowd device block UDID [--clear-token]\n  escrowd device unenroll UDID --yes\n  escrowd device renew-identity UDID           # re-send its enrollment profile: a new identity, token kept\n  escrowd device clear-token UDID              # delete its escrowed Bootstrap Token (admin key; audited)"
)]
pub struct DeviceCmdArgs {
    #[command(subcommand)]
    pub action: Option<crate::identity::DeviceCommand>,
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    #[arg(required = true)]
    id: Option<String>,
}

impl DeviceCmdArgs {
    /// The detail form (`escrowd device UDID`), when no action was named.
    pub fn detail(self) -> Option<DeviceArgs> {
        let server = self.server;
        self.id.map(|id| DeviceArgs { server, id })
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd commands UDID               # newest first: request type, status, times\n  \
escrowd commands UDID --limit 500 --json   # with each result plist"
)]
pub struct CommandsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    id: String,
    /// How many (1-1000), newest first.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
}

impl DeviceArgs {
    pub(crate) fn parts(&self) -> (&ServerArgs, &str) {
        (&self.server, &self.id)
    }
}

/// A Unix-ms time as `2026-12-03 08:04 UTC (in 12 days)` relative to now; anything else as [`text`].
pub(crate) fn when_or_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_i64) {
        Some(ms) => when(ms),
        None => text(v.unwrap_or(&Value::Null)),
    }
}

fn when(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let days = (ms - now) / 86_400_000;
    let rel = match days {
        0 if ms >= now => "today".to_string(),
        0 => "today, past".to_string(),
        d if d > 0 => format!("in {d} days"),
        d => format!("{} days ago", -d),
    };
    let date = chrono_like(ms);
    format!("{date} ({rel})")
}

/// `YYYY-MM-DD` of a Unix-ms time (UTC), without a date library.
fn chrono_like(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

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
        group: Option<String>,
    },
    /// Delete a group.
    Delete {
        #[command(flatten)]
        server: ServerArgs,
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
        after_help = "Examples:\n  escrowd groups accounts GROUP_ID                                   # show\n  \
escrowd groups accounts GROUP_ID --admin mgmt --full-name 'IT Admin' --hidden\n  \
escrowd groups accounts GROUP_ID --admin mgmt --primary skip           # warns: no token holder (S4)\n  \
escrowd groups accounts GROUP_ID --remove"
    )]
    Accounts {
        #[command(flatten)]
        server: ServerArgs,
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

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd command SecurityInfo UDID1 UDID2\n  escrowd command UserList --from-file macs.txt          # one UDID per line\n  \
cut -d, -f1 report.csv | escrowd command SecurityInfo --from-file -\n  escrowd command DeviceInformation --group GROUP_ID --batch-size 200\n  \
escrowd command EraseDevice UDID1 --obliteration DoNotObliterate --force\n  \
escrowd command Settings UDID1 --bootstrap-token-allowed true     # MDMOptions; unset keys from the group\n\nMany devices are sent in batches (one command UUID per batch) with a progress bar on stderr. If a batch is \
refused (an unknown id, a 409), the devices of earlier batches stay queued and the error says how many."
)]
pub struct CommandArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// SecurityInfo, UserList, DeviceInformation, DeviceConfigured, Settings or EraseDevice.
    request_type: String,
    #[command(flatten)]
    targets: Targets,
    /// EraseDevice: Default, DoNotObliterate, ObliterateWithWarning or Always.
    #[arg(long)]
    obliteration: Option<String>,
    /// EraseDevice even when the Mac has no usable Bootstrap Token.
    #[arg(long)]
    force: bool,
    /// Settings (MDMOptions): BootstrapTokenAllowed (macOS 10.15). Every key is always sent (the Mac resets
    /// keys left out); keys not given come from the Mac's group (escrow switch, prompt setting; Activation
    /// Lock false).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    bootstrap_token_allowed: Option<bool>,
    /// Settings (MDMOptions): PromptUserToAllowBootstrapTokenForAuthentication.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    /// Settings (MDMOptions): ActivationLockAllowedWhileSupervised.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    activation_lock_allowed_while_supervised: Option<bool>,
    /// Queue without pushing.
    #[arg(long)]
    no_push: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd push UDID1 UDID2\n  escrowd push --group GROUP_ID\n  escrowd push --from-file macs.txt --json"
)]
pub struct PushArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    targets: Targets,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Reports: summary, without-bootstrap-token, cannot-authorize, users-without-secure-token, no-volume-owner (CSV).\n\
Examples:\n  escrowd report without-bootstrap-token > missing.csv\n  escrowd report users-without-secure-token --output users.csv   # rows written shown on stderr"
)]
pub struct ReportArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(default_value = "summary")]
    name: String,
    /// Write the CSV to FILE (streamed; FILE appears only once the whole report arrived) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
}

pub async fn devices(a: DevicesArgs) -> anyhow::Result<()> {
    let mut q = Vec::new();
    for (k, v) in [
        ("status", &a.status),
        ("os_version", &a.os_version),
        ("group", &a.group),
        ("after", &a.after),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    if let Some(b) = a.apple_silicon {
        q.push(format!("apple_silicon={b}"));
    }
    if a.users_without_secure_token {
        q.push("users_without_secure_token=true".into());
    }
    let v = if a.all {
        let progress = bulk::spinner(a.server.json, "{spinner} listing devices: {pos}");
        let all = bulk::all_devices(&a.server, &q, &progress).await;
        progress.finish_and_clear();
        json!({"devices": all?, "next": null})
    } else {
        q.push(format!("limit={}", a.limit));
        a.server
            .ok("GET", &format!("/api/v1/devices?{}", q.join("&")), None)
            .await?
            .json()?
    };
    let mut v = v;
    if !a.server.json
        && let Some(list) = v["devices"].as_array_mut()
    {
        // Tables show the identity expiry as a date; --json keeps the API's Unix ms.
        for d in list {
            let shown = when_or_text(d.pointer("/identity/certificate_expires_at"));
            d["identity"]["certificate_expires_at_date"] = Value::String(shown);
        }
    }
    print(
        &a.server,
        &v,
        "/devices",
        &[
            ("id", "/id"),
            ("serial", "/serial_number"),
            ("os", "/os_version"),
            ("bootstrap token", "/bootstrap_token/label"),
            ("why", "/bootstrap_token/reason"),
            ("escrowed at", "/bootstrap_token/escrowed_at"),
            ("verified", "/bootstrap_token/verified"),
            ("apple silicon", "/apple_silicon"),
            ("no ST users", "/users_without_secure_token"),
            ("identity expires", "/identity/certificate_expires_at_date"),
        ],
    );
    if !a.server.json
        && let Some(next) = v["next"].as_str()
    {
        eprintln!("more: --after {next} (or --all for every device)");
    }
    Ok(())
}

pub(crate) async fn clear_token(a: DeviceArgs) -> anyhow::Result<()> {
    let v = a
        .server
        .ok(
            "DELETE",
            &format!("/api/v1/devices/{}/bootstrap-token", enc(&a.id)),
            None,
        )
        .await?
        .json()?;
    if a.server.json {
        println!("{v}");
    } else if v["cleared"] == json!(true) {
        println!("cleared the escrowed Bootstrap Token of {}", a.id);
    } else {
        println!("{} had no escrowed Bootstrap Token; nothing changed", a.id);
    }
    Ok(())
}

/// `escrowd commands UDID`: the device's command history with each command's status.
pub async fn commands(a: CommandsArgs) -> anyhow::Result<()> {
    let v = a
        .server
        .ok(
            "GET",
            &format!("/api/v1/devices/{}/commands?limit={}", enc(&a.id), a.limit),
            None,
        )
        .await?
        .json()?;
    print(
        &a.server,
        &v,
        "/commands",
        &[
            ("uuid", "/uuid"),
            ("request type", "/request_type"),
            ("status", "/status"),
            ("queued at", "/created_at"),
            ("updated at", "/updated_at"),
        ],
    );
    Ok(())
}

pub async fn device(a: DeviceArgs) -> anyhow::Result<()> {
    let v = a
        .server
        .ok("GET", &format!("/api/v1/devices/{}", enc(&a.id)), None)
        .await?
        .json()?;
    let d = a
        .server
        .ok(
            "GET",
            &format!("/api/v1/devices/{}/diagnosis", enc(&a.id)),
            None,
        )
        .await?
        .json()?;
    if a.server.json {
        println!("{}", json!({"device": v, "findings": d["findings"]}));
        return Ok(());
    }
    let mut t = Table::new();
    t.set_header(["field", "value"]);
    for (k, p) in [
        ("id", "/id"),
        ("serial", "/serial_number"),
        ("model", "/model_name"),
        ("os", "/os_version"),
        ("enrollment", "/enrollment_type"),
        ("supervised", "/supervised"),
        ("group", "/group/name"),
        ("bootstrap token", "/bootstrap_token/label"),
        ("why", "/bootstrap_token/reason"),
        ("escrowed at", "/bootstrap_token/escrowed_at"),
        ("verified", "/bootstrap_token/verified"),
        ("last requested", "/bootstrap_token/last_requested_at"),
        ("apple silicon", "/apple_silicon"),
        (
            "allowed for authentication",
            "/bootstrap_token_allowed_for_authentication",
        ),
        (
            "required for updates",
            "/bootstrap_token_required_for_software_update",
        ),
        (
            "required for kexts",
            "/bootstrap_token_required_for_kernel_extension_approval",
        ),
        ("EACS preflight", "/eacs_preflight"),
        ("FileVault", "/filevault_enabled"),
    ] {
        t.add_row([k.to_string(), text(v.pointer(p).unwrap_or(&Value::Null))]);
    }
    t.add_row([
        "identity expires".to_string(),
        when_or_text(v.pointer("/identity/certificate_expires_at")),
    ]);
    t.add_row([
        "identity renewal".to_string(),
        match v.pointer("/identity_renewal/queued_at") {
            Some(q) => format!(
                "queued {} (command {})",
                when_or_text(Some(q)),
                text(&v["identity_renewal"]["command_uuid"])
            ),
            None => "none outstanding".to_string(),
        },
    ]);
    println!("{t}");
    // Findings with their evidence, one line per piece, like --json has them.
    let mut findings: Vec<Value> = d["findings"].as_array().cloned().unwrap_or_default();
    for f in &mut findings {
        let evidence = f["evidence"]
            .as_array()
            .map(|e| e.iter().map(text).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        f["evidence_text"] = json!(evidence);
    }
    println!(
        "{}",
        table(
            &findings,
            &[
                ("severity", "/severity"),
                ("finding", "/summary"),
                ("evidence", "/evidence_text"),
                ("fix", "/fix"),
            ],
        )
    );
    Ok(())
}

/// A user fact for the table: `true`, plus `(conflict: mdm said false at T)` when a source disagrees.
fn fact_cell(f: &Value) -> String {
    if f.is_null() {
        return "-".into();
    }
    let mut out = text(&f["value"]);
    if !f["conflict"].is_null() {
        out.push_str(&format!(
            " (conflict: {} said {} at {})",
            text(&f["conflict"]["source"]),
            text(&f["conflict"]["value"]),
            text(&f["conflict"]["at"])
        ));
    }
    out
}

pub async fn users(a: DeviceArgs) -> anyhow::Result<()> {
    let v = a
        .server
        .ok(
            "GET",
            &format!("/api/v1/devices/{}/users", enc(&a.id)),
            None,
        )
        .await?
        .json()?;
    if a.server.json {
        println!("{v}");
        return Ok(());
    }
    // One row per user; each fact with the source of its newest word and any conflict.
    let mut rows: Vec<Value> = v["users"].as_array().cloned().unwrap_or_default();
    for u in &mut rows {
        for f in [
            "has_secure_token",
            "is_admin",
            "is_logged_in",
            "mobile_account",
            "volume_owner",
            "managed_admin",
        ] {
            u[format!("{f}_cell")] = json!(fact_cell(&u[f]));
        }
    }
    println!(
        "{}",
        table(
            &rows,
            &[
                ("user", "/short_name"),
                ("name", "/full_name"),
                ("secure token", "/has_secure_token_cell"),
                ("source", "/has_secure_token/source"),
                ("seen at", "/has_secure_token/at"),
                ("admin", "/is_admin_cell"),
                ("logged in", "/is_logged_in_cell"),
                ("mobile", "/mobile_account_cell"),
                ("volume owner", "/volume_owner_cell"),
                ("managed admin", "/managed_admin_cell"),
            ],
        )
    );
    Ok(())
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
    let v = a
        .server
        .ok("GET", &format!("{path}?{}", query.join("&")), None)
        .await?
        .json()?;
    print(
        &a.server,
        &v,
        "/events",
        &[
            ("id", "/id"),
            ("at", "/at"),
            ("subject", "/subject"),
            ("kind", "/kind"),
            ("outcome", "/outcome"),
            ("detail", "/detail"),
        ],
    );
    Ok(())
}

pub async fn groups(cmd: GroupsCommand) -> anyhow::Result<()> {
    let cols = [
        ("id", "/id"),
        ("name", "/name"),
        ("escrow", "/bootstrap_escrow_enabled"),
        (
            "prompt user",
            "/prompt_user_to_allow_bootstrap_token_for_authentication",
        ),
    ];
    match cmd {
        GroupsCommand::List(s) => {
            let v = s.server.ok("GET", "/api/v1/groups", None).await?.json()?;
            print(&s.server, &v, "/groups", &cols);
        }
        GroupsCommand::Create {
            server,
            name,
            escrow,
        } => {
            let v = server
                .ok(
                    "POST",
                    "/api/v1/groups",
                    Some(json!({"name": name, "bootstrap_escrow_enabled": escrow})),
                )
                .await?
                .json()?;
            print(&server, &json!({"groups": [v]}), "/groups", &cols);
        }
        GroupsCommand::Escrow {
            server,
            id,
            enabled,
            clear_tokens,
        } => {
            let body = json!({"bootstrap_escrow_enabled": enabled, "on_escrow_disabled": if clear_tokens { "clear" } else { "keep" }});
            let v = server
                .ok("PATCH", &format!("/api/v1/groups/{}", enc(&id)), Some(body))
                .await?
                .json()?;
            if server.json {
                println!("{v}")
            } else {
                println!(
                    "escrow {} for {:?}; tokens cleared: {}",
                    if enabled { "on" } else { "off" },
                    text(&v["name"]),
                    v["tokens_cleared"]
                )
            }
        }
        GroupsCommand::Assign {
            server,
            device,
            group,
        } => {
            server
                .ok(
                    "PUT",
                    &format!("/api/v1/devices/{}/group", enc(&device)),
                    Some(json!({"group_id": group})),
                )
                .await?;
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
            let path = format!("/api/v1/groups/{}/accounts", enc(&id));
            let v = if remove {
                server.ok("DELETE", &path, None).await?.json()?
            } else if let Some(admin) = admin {
                let body = json!({
                    "admin_short_name": admin, "admin_full_name": full_name, "admin_hidden": hidden,
                    "primary_account": primary, "primary_account_full_name": primary_full_name,
                    "primary_account_user_name": primary_user_name,
                    "dont_auto_populate_primary_account_info": dont_auto_populate,
                    "lock_primary_account_info": lock_primary,
                });
                server.ok("PUT", &path, Some(body)).await?.json()?
            } else {
                server.ok("GET", &path, None).await?.json()?
            };
            for w in v["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", text(w));
            }
            if server.json {
                println!("{v}");
            } else if v["settings"].is_null() {
                println!("group {id}: no managed admin (Macs get DeviceConfigured only)");
            } else {
                let s = &v["settings"];
                println!(
                    "{}",
                    table(
                        std::slice::from_ref(s),
                        &[
                            ("admin", "/admin_short_name"),
                            ("full name", "/admin_full_name"),
                            ("hidden", "/admin_hidden"),
                            ("primary account", "/primary_account"),
                            ("prefill user", "/primary_account_user_name"),
                            ("lock primary", "/lock_primary_account_info"),
                        ],
                    )
                );
            }
        }
        GroupsCommand::Delete { server, id } => {
            server
                .ok("DELETE", &format!("/api/v1/groups/{}", enc(&id)), None)
                .await?;
            println!("deleted group {id}");
        }
    }
    Ok(())
}

/// Push results: every row when there are few, else the failures only (up to 50); then the counts.
fn print_push(results: &[Value]) {
    let failed: Vec<Value> = results
        .iter()
        .filter(|r| !r["error"].is_null())
        .cloned()
        .collect();
    let (rows, shown) = if results.len() <= 50 {
        (results.to_vec(), results.len())
    } else {
        let shown = failed.len().min(50);
        (failed[..shown].to_vec(), shown)
    };
    if !rows.is_empty() {
        println!(
            "{}",
            table(
                &rows,
                &[
                    ("enrollment", "/enrollment_id"),
                    ("push id", "/push_id"),
                    ("error", "/error"),
                ],
            )
        );
    }
    if results.len() > 50 && failed.len() > shown {
        println!(
            "({} more failures; --json lists every result)",
            failed.len() - shown
        );
    }
    println!(
        "pushed to {} of {} devices; {} failed",
        results.len() - failed.len(),
        results.len(),
        failed.len()
    );
}

pub async fn command(a: CommandArgs) -> anyhow::Result<()> {
    let mut command = json!({"type": a.request_type});
    let settings = [
        ("bootstrap_token_allowed", a.bootstrap_token_allowed),
        (
            "prompt_user_to_allow_bootstrap_token_for_authentication",
            a.prompt_user_to_allow_bootstrap_token_for_authentication,
        ),
        (
            "activation_lock_allowed_while_supervised",
            a.activation_lock_allowed_while_supervised,
        ),
    ];
    if a.request_type != "Settings" && settings.iter().any(|(_, v)| v.is_some()) {
        bail!(
            "--bootstrap-token-allowed, --prompt-user-to-allow-bootstrap-token-for-authentication and \
             --activation-lock-allowed-while-supervised belong to the Settings command"
        );
    }
    match a.request_type.as_str() {
        "EraseDevice" => {
            if let Some(o) = &a.obliteration {
                command["obliteration_behavior"] = json!(o);
            }
        }
        "Settings" => {
            for (key, value) in settings {
                if let Some(v) = value {
                    command[key] = json!(v);
                }
            }
        }
        "SecurityInfo" | "UserList" | "DeviceInformation" | "DeviceConfigured" => {}
        other => bail!(
            "unknown command {other:?}: use SecurityInfo, UserList, DeviceInformation, DeviceConfigured, Settings or EraseDevice (or the API's /commands/raw for anything else)"
        ),
    }
    let ids = a.targets.resolve(&a.server).await?;
    let (server, command) = (&a.server, &command);
    let answers = bulk::in_batches(
        server,
        &ids,
        a.targets.batch_size,
        ("queueing", "queued"),
        |batch| async move {
            let body =
                json!({"devices": batch, "command": command, "force": a.force, "push": !a.no_push});
            server
                .ok("POST", "/api/v1/commands", Some(body))
                .await?
                .json()
        },
    )
    .await?;
    let uuids: Vec<Value> = answers.iter().map(|v| v["command_uuid"].clone()).collect();
    let pushes: Option<Vec<Value>> = (!a.no_push).then(|| {
        answers
            .iter()
            .flat_map(|v| v["push"].as_array().cloned().unwrap_or_default())
            .collect()
    });
    let done = ids.len();
    if a.server.json {
        println!(
            "{}",
            json!({"request_type": a.request_type, "queued": done, "batches": uuids.len(), "command_uuids": uuids, "push": pushes})
        );
    } else {
        // Command UUIDs: all of a few batches, the first five of many (--json has every one).
        let mut list: Vec<String> = uuids.iter().take(5).map(text).collect();
        if uuids.len() > 5 {
            list.push(format!("… {} more (--json lists them)", uuids.len() - 5));
        }
        println!(
            "queued {} for {done} device{} in {} batch{}: {}",
            a.request_type,
            if done == 1 { "" } else { "s" },
            uuids.len(),
            if uuids.len() == 1 { "" } else { "es" },
            list.join(", ")
        );
        if let Some(p) = &pushes {
            print_push(p);
        }
    }
    Ok(())
}

pub async fn push(a: PushArgs) -> anyhow::Result<()> {
    let ids = a.targets.resolve(&a.server).await?;
    let server = &a.server;
    let answers = bulk::in_batches(
        server,
        &ids,
        a.targets.batch_size,
        ("pushing", "pushed"),
        |batch| async move {
            server
                .ok("POST", "/api/v1/push", Some(json!({"devices": batch})))
                .await?
                .json()
        },
    )
    .await?;
    let results: Vec<Value> = answers
        .iter()
        .flat_map(|v| v["results"].as_array().cloned().unwrap_or_default())
        .collect();
    if a.server.json {
        println!(
            "{}",
            json!({"devices": ids.len(), "batches": answers.len(), "results": results})
        );
    } else {
        print_push(&results);
    }
    Ok(())
}

pub async fn report(a: ReportArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    if a.name == "summary" {
        if a.output.is_some() {
            bail!(
                "--output is for the CSV reports; for the summary use `escrowd report summary --json > FILE`"
            );
        }
        let v = a
            .server
            .ok("GET", "/api/v1/reports/summary", None)
            .await?
            .json()?;
        if a.server.json {
            println!("{v}");
        } else {
            let mut t = Table::new();
            t.set_header(["measure", "count"]);
            for (k, p) in [
                ("devices", "/devices"),
                ("escrowed (Configured)", "/bootstrap_token/escrowed"),
                (
                    "not escrowed (Not configured)",
                    "/bootstrap_token/not_escrowed",
                ),
                ("not supported (NA)", "/bootstrap_token/not_supported"),
                (
                    "escrowed, never verified",
                    "/bootstrap_token/escrowed_unverified",
                ),
                ("Apple silicon", "/apple_silicon"),
                (
                    "Apple silicon, token cannot authorize",
                    "/apple_silicon_cannot_authorize",
                ),
                (
                    "devices with users lacking a Secure Token",
                    "/devices_with_users_without_secure_token",
                ),
                (
                    "users lacking a Secure Token",
                    "/users_without_secure_token",
                ),
                ("devices without inventory", "/devices_without_inventory"),
            ] {
                t.add_row([k.to_string(), text(v.pointer(p).unwrap_or(&Value::Null))]);
            }
            println!("{t}");
        }
        return Ok(());
    }
    let path = format!("/api/v1/reports/{}", enc(&a.name));
    let Some(output) = &a.output else {
        let mut out = std::io::stdout().lock();
        return a
            .server
            .stream(&path, |chunk| Ok(out.write_all(chunk)?))
            .await;
    };
    // Written next to FILE and renamed at the end, so FILE is never a half report.
    let partial = output.with_extension("part");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?,
    );
    let progress = bulk::spinner(a.server.json, "{spinner} {pos} rows written");
    let mut lines: u64 = 0;
    let streamed = a
        .server
        .stream(&path, |chunk| {
            file.write_all(chunk)?;
            let n = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            lines += n;
            // The first line is the header.
            progress.set_position(lines.saturating_sub(1));
            Ok(())
        })
        .await
        .and_then(|()| Ok(file.flush()?));
    progress.finish_and_clear();
    if let Err(e) = streamed {
        drop(file);
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("{} was not written", output.display())));
    }
    drop(file);
    std::fs::rename(&partial, output)
        .with_context(|| format!("cannot move {} to {}", partial.display(), output.display()))?;
    let rows = lines.saturating_sub(1);
    if a.server.json {
        println!(
            "{}",
            json!({"report": a.name, "rows": rows, "output": output.display().to_string()})
        );
    } else {
        println!("wrote {rows} rows to {}", output.display());
    }
    Ok(())
}
