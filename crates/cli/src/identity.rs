//! `escrowd device <action> UDID`: who may speak for a Mac — its identities, approving a re-enrolled Mac's new
//! identity, blocking, unblocking and unenrolling it (issue 11). Thin clients of the admin API.

use anyhow::bail;
use apitypes::{
    ApproveIdentity, BlockDevice, Blocked, Identities, IdentityApproved, PendingIdentity,
    Unblocked, Unenrolled,
};
use clap::Subcommand;
use comfy_table::Table;
use serde_json::Value;

use crate::admin::typed::{self, Cell, Typed};
use crate::admin::{enc, when, when_or_dash};
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
            let path = format!("/api/v1/devices/{}/identities", enc(&id));
            let v: Typed<Identities> = typed::get(&server, &path).await?;
            if server.json {
                println!("{}", v.raw);
                return Ok(());
            }
            let bound = &v.value.bound;
            let mut t = Table::new();
            t.set_header(["field", "value"]);
            for (k, value) in [
                ("bound certificate", bound.fingerprint.cell()),
                ("expires at", when_or_dash(bound.certificate_expires_at)),
                ("blocked at", when_or_dash(bound.blocked_at)),
            ] {
                t.add_row([k.to_string(), value]);
            }
            println!("{t}");
            if !v.value.pending.is_empty() {
                eprintln!(
                    "pending identities claim this Mac; approve one only if the Mac was re-enrolled: \
                     escrowd device approve-identity {id}"
                );
            }
            typed::print(
                &server,
                &v.raw,
                &v.value.pending,
                &[
                    ("pending fingerprint", |p: &PendingIdentity| {
                        p.fingerprint.cell()
                    }),
                    ("active", |p| p.active.cell()),
                    ("first seen", |p| when(p.first_seen_at)),
                    ("last seen", |p| when(p.last_seen_at)),
                    ("own token", |p| p.has_bootstrap_token.cell()),
                ],
            );
        }
        DeviceCommand::ApproveIdentity {
            server,
            id,
            fingerprint,
        } => {
            let body = serde_json::to_value(ApproveIdentity { fingerprint })?;
            let path = format!("/api/v1/devices/{}/approve-identity", enc(&id));
            let v: Typed<IdentityApproved> =
                typed::call(&server, "POST", &path, Some(body)).await?;
            done(
                &server,
                &v.raw,
                &format!(
                    "{id}: identity {} approved; the previous token was discarded",
                    v.value.fingerprint
                ),
            );
        }
        DeviceCommand::Block {
            server,
            id,
            clear_token,
        } => {
            let path = format!("/api/v1/devices/{}/block", enc(&id));
            let body = serde_json::to_value(BlockDevice { clear_token })?;
            let v: Typed<Blocked> = typed::call(&server, "POST", &path, Some(body)).await?;
            let token = if v.value.token_cleared {
                "token deleted"
            } else {
                "token kept sealed"
            };
            done(
                &server,
                &v.raw,
                &format!("{id}: blocked ({token}); undo with `escrowd device unblock {id}`"),
            );
        }
        DeviceCommand::Unblock { server, id } => {
            let path = format!("/api/v1/devices/{}/unblock", enc(&id));
            let v: Typed<Unblocked> = typed::call(&server, "POST", &path, None).await?;
            done(&server, &v.raw, &format!("{id}: unblocked"));
        }
        DeviceCommand::Unenroll { server, id, yes } => {
            if !yes {
                bail!(
                    "unenrolling {id} deletes its escrowed Bootstrap Token and ends its enrollment; \
                     run again with --yes to confirm"
                );
            }
            let path = format!("/api/v1/devices/{}/unenroll", enc(&id));
            let v: Typed<Unenrolled> = typed::call(&server, "POST", &path, None).await?;
            done(
                &server,
                &v.raw,
                &format!("{id}: unenrolled; its next Authenticate is a new enrollment"),
            );
        }
    }
    Ok(())
}

fn done(server: &ServerArgs, v: &Value, text: &str) {
    if server.json {
        println!("{v}");
    } else {
        println!("{text}");
    }
}
