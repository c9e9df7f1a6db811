//! `escrowd device UDID` and `escrowd device renew-identity UDID`: one Mac in detail, or renew its identity
//! certificate the way Macs do (its enrollment profile again, with a one-time challenge minted for it).

use clap::{Args, Subcommand};
use comfy_table::Table;

use crate::admin::{self, DeviceArgs, enc};
use crate::client::ServerArgs;

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  escrowd device 0000FE00-1234ABCD      # details, identity expiry and diagnosis\n  escrowd device renew-identity 0000FE00-1234ABCD --json"
)]
pub struct DeviceCommand {
    #[command(subcommand)]
    action: Option<DeviceAction>,
    #[command(flatten)]
    server: ServerArgs,
    /// Device id (UDID).
    #[arg(required = true)]
    id: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DeviceAction {
    /// Renew the Mac's identity certificate now: queue its enrollment profile again (InstallProfile) with a
    /// one-time SCEP challenge minted for this UDID (valid 14 days), and push. The Mac keeps its escrowed
    /// Bootstrap Token. escrowd also does this by itself before identities expire (serve
    /// --identity-renewal-days). Audited.
    #[command(after_help = "Example:\n  escrowd device renew-identity 0000FE00-1234ABCD")]
    RenewIdentity(DeviceArgs),
}

pub async fn run(c: DeviceCommand) -> anyhow::Result<()> {
    match c.action {
        Some(DeviceAction::RenewIdentity(a)) => renew(a).await,
        None => {
            let id = c.id.unwrap_or_default();
            admin::device(DeviceArgs::new(c.server, id)).await
        }
    }
}

async fn renew(a: DeviceArgs) -> anyhow::Result<()> {
    let (server, id) = a.parts();
    let v = server
        .ok(
            "POST",
            &format!("/api/v1/devices/{}/renew-identity", enc(id)),
            None,
        )
        .await?
        .json()?;
    if server.json {
        println!("{v}");
        return Ok(());
    }
    let r = &v["renewal"];
    let mut t = Table::new();
    t.set_header(["field", "value"]);
    for (k, p) in [
        ("device", "/device"),
        ("renewal command", "/renewal/command_uuid"),
        ("queued at", "/renewal/queued_at"),
        ("challenge valid until", "/renewal/challenge_expires_at"),
        (
            "renews certificate expiring",
            "/renewal/renews_certificate_expiring_at",
        ),
    ] {
        t.add_row([k.to_string(), admin::when_or_text(v.pointer(p))]);
    }
    println!("{t}");
    if r.is_object() {
        eprintln!(
            "the Mac installs the profile at its next check-in, gets a new certificate over SCEP and keeps its token"
        );
    }
    Ok(())
}
