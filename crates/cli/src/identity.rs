//! `escrowd device <action> UDID`: who may speak for a Mac — its identities, approving a re-enrolled Mac's new
//! identity, blocking, unblocking and unenrolling it (issue 11). Thin clients of the admin API.

use anyhow::bail;
use clap::Subcommand;
use comfy_table::Table;
use serde_json::{Value, json};

use crate::admin::{enc, print};
use crate::client::ServerArgs;

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Renew the Mac's identity certificate now: queue its enrollment profile again (InstallProfile) with a
    /// one-time SCEP challenge minted for this UDID (valid 14 days), and push. The Mac keeps its escrowed
    /// Bootstrap Token. escrowd also does this by itself before identities expire (serve
    /// --identity-renewal-days). Audited.
    #[command(after_help = "Example:\n  escrowd device renew-identity 0000FE00-1234ABCD")]
    RenewIdentity(crate::admin::DeviceArgs),
    /// Delete the device's escrowed Bootstrap Token (needs an admin key; audited). The Mac escrows a new one
    /// at a token holder's next login, or with `sudo profiles install -type bootstraptoken`.
    ClearToken(crate::admin::DeviceArgs),
    /// The Mac's bound identity certificate (fingerprint, expiry, block) and any pending identities: other
    /// certificates that claimed its UDID without proof (a re-enrolled Mac, or an impostor).
    Identities {
        #[command(flatten)]
        server: ServerArgs,
        /// Device id (UDID).
        id: String,
    },
    /// Make a pending identity the Mac's own. Do this only when the Mac was really erased or re-enrolled: the
    /// old Bootstrap Token is discarded (never released); the token the new identity escrowed itself is kept.
    #[command(
        name = "approve-identity",
        after_help = "Examples:\n  escrowd device identities UDID                 # look first\n  escrowd device approve-identity UDID          # when exactly one identity is pending\n  escrowd device approve-identity UDID --fingerprint 3f2a9c1e"
    )]
    ApproveIdentity {
        #[command(flatten)]
        server: ServerArgs,
        /// Device id (UDID).
        id: String,
        /// Which pending identity: its certificate fingerprint or a prefix of at least 8 hex digits.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Refuse the Mac's certificates at check-in and SCEP renewal until `unblock` (audited). The escrowed token
    /// stays sealed unless --clear-token.
    Block {
        #[command(flatten)]
        server: ServerArgs,
        /// Device id (UDID).
        id: String,
        /// Also delete the escrowed Bootstrap Token.
        #[arg(long)]
        clear_token: bool,
    },
    /// Lift a block (audited).
    Unblock {
        #[command(flatten)]
        server: ServerArgs,
        /// Device id (UDID).
        id: String,
    },
    /// End the Mac's enrollment on the server, as a CheckOut would: its token is deleted and its certificate no
    /// longer accepted; its next Authenticate is a new enrollment. Needs --yes.
    Unenroll {
        #[command(flatten)]
        server: ServerArgs,
        /// Device id (UDID).
        id: String,
        /// Confirm: the escrowed Bootstrap Token is deleted.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::ClearToken(a) => return crate::admin::clear_token(a).await,
        DeviceCommand::RenewIdentity(a) => return crate::renewal::renew(a).await,
        DeviceCommand::Identities { server, id } => {
            let v = server
                .ok(
                    "GET",
                    &format!("/api/v1/devices/{}/identities", enc(&id)),
                    None,
                )
                .await?
                .json()?;
            if server.json {
                println!("{v}");
                return Ok(());
            }
            let mut t = Table::new();
            t.set_header(["field", "value"]);
            for (k, p) in [
                ("bound certificate", "/bound/fingerprint"),
                ("expires at (ms)", "/bound/certificate_expires_at"),
                ("blocked at (ms)", "/bound/blocked_at"),
            ] {
                t.add_row([k.to_string(), show(v.pointer(p))]);
            }
            println!("{t}");
            if v["pending"].as_array().is_some_and(|p| !p.is_empty()) {
                eprintln!(
                    "pending identities claim this Mac; approve one only if the Mac was re-enrolled: \
                     escrowd device approve-identity {id}"
                );
            }
            print(
                &server,
                &v,
                "/pending",
                &[
                    ("pending fingerprint", "/fingerprint"),
                    ("active", "/active"),
                    ("first seen", "/first_seen_at"),
                    ("last seen", "/last_seen_at"),
                    ("own token", "/has_bootstrap_token"),
                ],
            );
        }
        DeviceCommand::ApproveIdentity {
            server,
            id,
            fingerprint,
        } => {
            let body = match fingerprint {
                Some(fp) => json!({ "fingerprint": fp }),
                None => json!({}),
            };
            let v = server
                .ok(
                    "POST",
                    &format!("/api/v1/devices/{}/approve-identity", enc(&id)),
                    Some(body),
                )
                .await?
                .json()?;
            done(
                &server,
                &v,
                &format!(
                    "{id}: identity {} approved; the previous token was discarded",
                    show(v.get("fingerprint"))
                ),
            );
        }
        DeviceCommand::Block {
            server,
            id,
            clear_token,
        } => {
            let v = server
                .ok(
                    "POST",
                    &format!("/api/v1/devices/{}/block", enc(&id)),
                    Some(json!({ "clear_token": clear_token })),
                )
                .await?
                .json()?;
            let token = if v["token_cleared"] == true {
                "token deleted"
            } else {
                "token kept sealed"
            };
            done(
                &server,
                &v,
                &format!("{id}: blocked ({token}); undo with `escrowd device unblock {id}`"),
            );
        }
        DeviceCommand::Unblock { server, id } => {
            let v = server
                .ok(
                    "POST",
                    &format!("/api/v1/devices/{}/unblock", enc(&id)),
                    None,
                )
                .await?
                .json()?;
            done(&server, &v, &format!("{id}: unblocked"));
        }
        DeviceCommand::Unenroll { server, id, yes } => {
            if !yes {
                bail!(
                    "unenrolling {id} deletes its escrowed Bootstrap Token and ends its enrollment; \
                     run again with --yes to confirm"
                );
            }
            let v = server
                .ok(
                    "POST",
                    &format!("/api/v1/devices/{}/unenroll", enc(&id)),
                    None,
                )
                .await?
                .json()?;
            done(
                &server,
                &v,
                &format!("{id}: unenrolled; its next Authenticate is a new enrollment"),
            );
        }
    }
    Ok(())
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn done(server: &ServerArgs, v: &Value, text: &str) {
    if server.json {
        println!("{v}");
    } else {
        println!("{text}");
    }
}
