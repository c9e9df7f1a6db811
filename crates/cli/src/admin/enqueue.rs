//! `escrowd command | push | report`.

use anyhow::bail;
use clap::Args;
use comfy_table::Table;
use serde_json::json;

use apitypes::{
    CommandSpec, EnqueueCommand, Enqueued, PushDevices, PushResult, PushResults, Summary,
};

use super::enc;
use super::typed::{self, Cell, Typed};
use crate::bulk::{self, Targets};
use crate::client::ServerArgs;

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

/// Push results: every row when there are few, else the failures only (up to 50); then the counts.
fn print_push(results: &[PushResult]) {
    let failed: Vec<&PushResult> = results.iter().filter(|r| r.error.is_some()).collect();
    let (rows, shown): (Vec<&PushResult>, usize) = if results.len() <= 50 {
        (results.iter().collect(), results.len())
    } else {
        let shown = failed.len().min(50);
        (failed[..shown].to_vec(), shown)
    };
    if !rows.is_empty() {
        println!(
            "{}",
            typed::rows(
                &rows,
                &[
                    ("enrollment", |r: &&PushResult| r.enrollment_id.cell()),
                    ("push id", |r| r.push_id.cell()),
                    ("error", |r| r.error.cell()),
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
    let settings = [
        a.bootstrap_token_allowed,
        a.prompt_user_to_allow_bootstrap_token_for_authentication,
        a.activation_lock_allowed_while_supervised,
    ];
    if a.request_type != "Settings" && settings.iter().any(Option::is_some) {
        bail!(
            "--bootstrap-token-allowed, --prompt-user-to-allow-bootstrap-token-for-authentication and \
             --activation-lock-allowed-while-supervised belong to the Settings command"
        );
    }
    let command = match a.request_type.as_str() {
        "EraseDevice" => CommandSpec::EraseDevice {
            pin: None,
            obliteration_behavior: a.obliteration.clone(),
        },
        "Settings" => CommandSpec::Settings {
            bootstrap_token_allowed: a.bootstrap_token_allowed,
            prompt_user_to_allow_bootstrap_token_for_authentication: a
                .prompt_user_to_allow_bootstrap_token_for_authentication,
            activation_lock_allowed_while_supervised: a.activation_lock_allowed_while_supervised,
        },
        "SecurityInfo" => CommandSpec::SecurityInfo,
        "UserList" => CommandSpec::UserList,
        "DeviceInformation" => CommandSpec::DeviceInformation,
        "DeviceConfigured" => CommandSpec::DeviceConfigured,
        other => bail!(
            "unknown command {other:?}: use SecurityInfo, UserList, DeviceInformation, DeviceConfigured, Settings or EraseDevice (or the API's /commands/raw for anything else)"
        ),
    };
    let ids = a.targets.resolve(&a.server).await?;
    let (server, command) = (&a.server, &command);
    let answers = bulk::in_batches(
        server,
        &ids,
        a.targets.batch_size,
        ("queueing", "queued"),
        |batch| async move {
            let body = EnqueueCommand {
                devices: batch,
                command: command.clone(),
                force: a.force,
                push: Some(!a.no_push),
            };
            server
                .ok(
                    "POST",
                    "/api/v1/commands",
                    Some(serde_json::to_value(body)?),
                )
                .await?
                .json()
        },
    )
    .await?;
    let answers = answers
        .into_iter()
        .map(|v| Ok(typed::read::<Enqueued>(v)?.value))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let uuids: Vec<String> = answers.iter().map(|v| v.command_uuid.clone()).collect();
    let pushes: Option<Vec<PushResult>> = (!a.no_push).then(|| {
        answers
            .iter()
            .flat_map(|v| v.push.clone().unwrap_or_default())
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
        let mut list: Vec<String> = uuids.iter().take(5).cloned().collect();
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
                .ok(
                    "POST",
                    "/api/v1/push",
                    Some(serde_json::to_value(PushDevices { devices: batch })?),
                )
                .await?
                .json()
        },
    )
    .await?;
    let batches = answers.len();
    let mut results: Vec<PushResult> = Vec::new();
    for v in answers {
        results.extend(typed::read::<PushResults>(v)?.value.results);
    }
    if a.server.json {
        println!(
            "{}",
            json!({"devices": ids.len(), "batches": batches, "results": results})
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
        let v: Typed<Summary> = typed::get(&a.server, "/api/v1/reports/summary").await?;
        if a.server.json {
            println!("{}", v.raw);
        } else {
            let (r, tok) = (&v.value, &v.value.bootstrap_token);
            let mut t = Table::new();
            t.set_header(["measure", "count"]);
            for (k, n) in [
                ("devices", r.devices),
                ("escrowed (Configured)", tok.escrowed),
                ("not escrowed (Not configured)", tok.not_escrowed),
                ("not supported (NA)", tok.not_supported),
                ("escrowed, never verified", tok.escrowed_unverified),
                ("Apple silicon", r.apple_silicon),
                (
                    "Apple silicon, token cannot authorize",
                    r.apple_silicon_cannot_authorize,
                ),
                (
                    "devices with users lacking a Secure Token",
                    r.devices_with_users_without_secure_token,
                ),
                ("users lacking a Secure Token", r.users_without_secure_token),
                ("devices without inventory", r.devices_without_inventory),
            ] {
                t.add_row([k.to_string(), n.cell()]);
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
