//! `escrow-agent`: the escrowd agent for macOS. See `escrow-agent --help`.

use std::process::ExitCode;
use std::time::Duration;

use agent::backoff;
use agent::client::{self, AgentClient, AgentState};
use agent::escrow;
use agent::inventory;
use agent::launchd;
use agent::mac::Mac;
use agent::prompt::{DialogPrompter, Prompter, TerminalPrompter};
use agent::tools::Tools;
use anyhow::Context;
use clap::Parser;

mod cli;

use cli::actions::{console_user, run_action};
use cli::args::{Cli, Command, PromptKind};
use cli::output::{print_cycle, print_inventory_table};
use cli::server::{tell_server, wait_or_nudged};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut tools = Tools::from_env();
    tools.timeout = Duration::from_secs(cli.timeout);
    let mac = Mac::new(tools.clone());
    match cli.command {
        Command::Inventory {
            json,
            managed_admin,
        } => {
            let inv = inventory::collect(&mac, managed_admin.as_deref());
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
            } else {
                print_inventory_table(&inv);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Action(action) => run_action(&mac, action),
        Command::Register {
            config,
            state,
            ca_cert,
            force,
            json,
        } => {
            let bytes = std::fs::read(&config).with_context(|| {
                format!(
                    "reading {}: install the agent profile (`escrowd agent-install DEVICE`) or pass --config",
                    config.display()
                )
            })?;
            let settings =
                protocol::agent_profile::parse_agent_settings(&bytes).with_context(|| {
                    format!("{} is not com.escrowd.agent settings", config.display())
                })?;
            let registered = client::register(&settings, ca_cert.as_deref(), &state, force)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"agent_id": registered.agent_id, "device_id": registered.device_id, "state": state})
                );
            } else {
                println!(
                    "Registered agent {} for device {} with {}; keys stored in {}",
                    registered.agent_id,
                    registered.device_id,
                    registered.server_url,
                    state.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            state,
            ca_cert,
            once,
            interval,
            managed_admin,
            json,
        } => {
            let st = AgentState::load(&state)?;
            let agent = AgentClient::new(&st, ca_cert.as_deref())?;
            let mut failures: u32 = 0;
            loop {
                let cycle = client::cycle(&agent, &mac, managed_admin.as_deref());
                // Backoff is for talking to the server; a failed action is the Mac's answer, not an outage.
                let reached = matches!(&cycle, Ok(r) if r.errors.is_empty());
                failures = if reached {
                    0
                } else {
                    failures.saturating_add(1)
                };
                let next = (!once).then(|| {
                    backoff::next_delay(
                        Duration::from_secs(interval),
                        failures,
                        backoff::random_unit(),
                    )
                });
                let ok = print_cycle(&cycle, json, next);
                match next {
                    None => {
                        return Ok(if ok {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        });
                    }
                    // While the server answers, wait on it: a newly queued action starts the next cycle
                    // at once (the nudge). After failures, just sleep out the backoff.
                    Some(wait) if failures == 0 => wait_or_nudged(&agent, wait),
                    Some(wait) => std::thread::sleep(wait),
                }
            }
        }
        Command::LaunchdPlist {
            state,
            interval,
            managed_admin,
            ca_cert,
            install,
        } => {
            let daemon = launchd::Daemon {
                program: std::env::current_exe()
                    .context("cannot tell where this escrow-agent binary is")?,
                state,
                interval,
                managed_admin,
                ca_cert,
            };
            let plist = daemon.plist()?;
            if install {
                let mut launchctl = Tools::with_path(launchd::SYSTEM_PATH);
                launchctl.timeout = tools.timeout;
                launchd::install(&launchctl, &plist)?;
                println!(
                    "Installed {} and loaded it (launchctl bootstrap system); logs: {}",
                    launchd::PLIST_PATH,
                    launchd::LOG_PATH
                );
            } else {
                use std::io::Write;
                std::io::stdout().write_all(&plist)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Escrow {
            console_user: user,
            prompt,
            json,
            state,
            ca_cert,
        } => {
            let user = match user {
                Some(u) => u,
                None => console_user(&mac)?,
            };
            let mut dialog_tools = tools;
            dialog_tools.timeout = Duration::from_secs(600); // a person is typing
            let mut prompter: Box<dyn Prompter> = if prompt == PromptKind::Dialog {
                Box::new(DialogPrompter {
                    tools: dialog_tools,
                    title: "Bootstrap Token".into(),
                })
            } else {
                Box::new(TerminalPrompter)
            };
            let result = escrow::self_service(&mac, &user, prompter.as_mut());
            let told = tell_server(&state, ca_cert.as_deref(), &escrow::report(&user, &result));
            if json {
                let mut value = match &result {
                    Ok(s) => serde_json::json!({ "ok": true, "result": s }),
                    Err(e) => {
                        serde_json::json!({ "ok": false, "error": e.code(), "message": e.to_string() })
                    }
                };
                value["server"] = told.json();
                println!("{value}");
            } else {
                told.print(&state);
            }
            Ok(if result.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
