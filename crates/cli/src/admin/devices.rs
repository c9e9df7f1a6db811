//! `escrowd devices | device UDID | users | commands | device clear-token`.

use apitypes::{
    Command, Commands, Device, DeviceDetail, DevicePage, Diagnosis, Fact, Finding, TokenCleared,
    User, Users,
};
use clap::Args;
use comfy_table::Table;
use serde_json::json;

use super::typed::{self, Cell, Typed};
use super::{DeviceArgs, enc, when, when_or_dash};
use crate::bulk;
use crate::client::ServerArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  escrowd devices --status not_escrowed\n  escrowd devices --apple-silicon true --os-version 14 --json\n  escrowd devices --all --json > fleet.json      # every device, paged for you\n  ESCROWD_API_KEY=… escrowd devices --server https://mdm-admin.internal:8444 --ca-cert /var/lib/escrowd/tls.pem"
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
    /// Group id or name.
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

pub async fn devices(a: DevicesArgs) -> anyhow::Result<()> {
    let mut q = Vec::new();
    let group = match &a.group {
        Some(g) => Some(super::groups::group_id(&a.server, g).await?),
        None => None,
    };
    for (k, v) in [
        ("status", &a.status),
        ("os_version", &a.os_version),
        ("group", &group),
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
    if a.all {
        return all_devices(&a.server, &q).await;
    }
    q.push(format!("limit={}", a.limit));
    let page: Typed<DevicePage> =
        typed::get(&a.server, &format!("/api/v1/devices?{}", q.join("&"))).await?;
    typed::print(&a.server, &page.raw, &page.value.devices, DEVICE_COLUMNS);
    if !a.server.json
        && let Some(next) = &page.value.next
    {
        eprintln!("more: --after {next} (or --all for every device)");
    }
    Ok(())
}

/// `escrowd devices --all`: printed page by page as the pages arrive, so memory stays at one page whatever
/// the fleet's size. `--json` writes the same document one page would (`{"devices":[…],"next":null}`) as a
/// stream; a table is printed per page of [`bulk::API_MAX`] devices.
async fn all_devices(server: &ServerArgs, query: &[String]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let progress = bulk::spinner(server.json, "{spinner} listing devices: {pos}");
    let mut first = true;
    let mut any = false;
    let listed = bulk::each_device_page(server, query, &progress, |page| {
        let devices = &page.value.devices;
        let mut out = std::io::stdout().lock();
        if server.json {
            let sent = page.raw["devices"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for d in sent {
                write!(out, "{}{d}", if first { "{\"devices\":[" } else { "," })?;
                first = false;
            }
        } else if !devices.is_empty() || !any {
            progress.suspend(|| writeln!(out, "{}", typed::rows(devices, DEVICE_COLUMNS)))?;
        }
        any = true;
        Ok(())
    })
    .await;
    progress.finish_and_clear();
    listed?;
    if server.json {
        let open = if first { "{\"devices\":[" } else { "" };
        println!("{open}],\"next\":null}}");
    }
    Ok(())
}

const DEVICE_COLUMNS: &[typed::Column<'static, Device>] = &[
    ("id", |d: &Device| d.id.cell()),
    ("serial", |d| d.serial_number.cell()),
    ("os", |d| d.os_version.cell()),
    ("bootstrap token", |d| d.bootstrap_token.label.cell()),
    ("why", |d| d.bootstrap_token.reason.cell()),
    ("escrowed at", |d| {
        when_or_dash(d.bootstrap_token.escrowed_at)
    }),
    ("verified", |d| d.bootstrap_token.verified.cell()),
    ("apple silicon", |d| d.apple_silicon.cell()),
    ("no ST users", |d| d.users_without_secure_token.cell()),
    // Tables show times in people's terms; --json keeps the API's Unix ms.
    ("identity expires", |d| {
        when_or_dash(d.identity.certificate_expires_at)
    }),
];

pub(crate) async fn clear_token(a: DeviceArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/devices/{}/bootstrap-token", enc(&a.id));
    let answer: Typed<TokenCleared> = typed::call(&a.server, "DELETE", &path, None).await?;
    if a.server.json {
        println!("{}", answer.raw);
    } else if answer.value.cleared {
        println!("cleared the escrowed Bootstrap Token of {}", a.id);
    } else {
        println!("{} had no escrowed Bootstrap Token; nothing changed", a.id);
    }
    Ok(())
}

/// `escrowd commands UDID`: the device's command history with each command's status.
pub async fn commands(a: CommandsArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/devices/{}/commands?limit={}", enc(&a.id), a.limit);
    let answer: Typed<Commands> = typed::get(&a.server, &path).await?;
    typed::print(
        &a.server,
        &answer.raw,
        &answer.value.commands,
        &[
            ("uuid", |c: &Command| c.uuid.cell()),
            ("request type", |c| c.request_type.cell()),
            ("status", |c| c.status.cell()),
            ("queued at", |c| when(c.created_at)),
            ("updated at", |c| when(c.updated_at)),
        ],
    );
    Ok(())
}

pub async fn device(a: DeviceArgs) -> anyhow::Result<()> {
    let detail: Typed<DeviceDetail> =
        typed::get(&a.server, &format!("/api/v1/devices/{}", enc(&a.id))).await?;
    let diagnosis: Typed<Diagnosis> = typed::get(
        &a.server,
        &format!("/api/v1/devices/{}/diagnosis", enc(&a.id)),
    )
    .await?;
    if a.server.json {
        println!(
            "{}",
            json!({"device": detail.raw, "findings": diagnosis.raw["findings"]})
        );
        return Ok(());
    }
    let v = &detail.value;
    let d = &v.device;
    let token = &d.bootstrap_token;
    let mut t = Table::new();
    t.set_header(["field", "value"]);
    for (k, value) in [
        ("id", d.id.cell()),
        ("serial", d.serial_number.cell()),
        ("model", d.model_name.cell()),
        ("os", d.os_version.cell()),
        ("enrollment", d.enrollment_type.cell()),
        ("supervised", d.supervised.cell()),
        (
            "group",
            d.group.as_ref().and_then(|g| g.name.clone()).cell(),
        ),
        ("bootstrap token", token.label.cell()),
        ("why", token.reason.cell()),
        ("escrowed at", when_or_dash(token.escrowed_at)),
        ("verified", token.verified.cell()),
        ("last requested", when_or_dash(token.last_requested_at)),
        ("apple silicon", d.apple_silicon.cell()),
        (
            "allowed for authentication",
            d.bootstrap_token_allowed_for_authentication.cell(),
        ),
        (
            "required for updates",
            d.bootstrap_token_required_for_software_update.cell(),
        ),
        (
            "required for kexts",
            d.bootstrap_token_required_for_kernel_extension_approval
                .cell(),
        ),
        ("EACS preflight", d.eacs_preflight.cell()),
        ("FileVault", d.filevault_enabled.cell()),
    ] {
        t.add_row([k.to_string(), value]);
    }
    t.add_row([
        "identity expires".to_string(),
        when_or_dash(d.identity.certificate_expires_at),
    ]);
    t.add_row([
        "identity renewal".to_string(),
        match &v.identity_renewal {
            Some(r) => format!(
                "queued {} (command {})",
                when_or_dash(Some(r.queued_at)),
                r.command_uuid
            ),
            None => "none outstanding".to_string(),
        },
    ]);
    println!("{t}");
    // Findings with their evidence, one line per piece, like --json has them.
    println!(
        "{}",
        typed::rows(
            &diagnosis.value.findings,
            &[
                ("severity", |f: &Finding| f.severity.cell()),
                ("finding", |f| f.summary.cell()),
                ("evidence", |f| f.evidence.join("\n")),
                ("fix", |f| f.fix.cell()),
            ],
        )
    );
    Ok(())
}

/// A user fact for the table: `true`, plus `(conflict: mdm said false at T)` when a source disagrees.
fn fact_cell(f: &Option<Fact>) -> String {
    let Some(f) = f else {
        return "-".into();
    };
    let mut out = f.value.cell();
    if let Some(c) = &f.conflict {
        out.push_str(&format!(
            " (conflict: {} said {} at {})",
            c.source,
            c.value,
            when(c.at)
        ));
    }
    out
}

pub async fn users(a: DeviceArgs) -> anyhow::Result<()> {
    let answer: Typed<Users> =
        typed::get(&a.server, &format!("/api/v1/devices/{}/users", enc(&a.id))).await?;
    if a.server.json {
        println!("{}", answer.raw);
        return Ok(());
    }
    // One row per user; each fact with the source of its newest word and any conflict.
    println!(
        "{}",
        typed::rows(
            &answer.value.users,
            &[
                ("user", |u: &User| u.short_name.cell()),
                ("name", |u| u.full_name.cell()),
                ("secure token", |u| fact_cell(&u.has_secure_token)),
                ("source", |u| u
                    .has_secure_token
                    .as_ref()
                    .map(|f| f.source)
                    .cell()),
                ("seen at", |u| u
                    .has_secure_token
                    .as_ref()
                    .map(|f| f.at)
                    .map_or_else(|| "-".into(), when)),
                ("admin", |u| fact_cell(&u.is_admin)),
                ("logged in", |u| fact_cell(&u.is_logged_in)),
                ("mobile", |u| fact_cell(&u.mobile_account)),
                ("volume owner", |u| fact_cell(&u.volume_owner)),
                ("managed admin", |u| fact_cell(&u.managed_admin)),
            ],
        )
    );
    Ok(())
}
