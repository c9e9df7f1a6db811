//! The `troubleshoot` action: the read-only commands of SOTI's "Troubleshooting Bootstrap Tokens on Device
//! Using Script Commands" — `profiles status -type bootstraptoken`, `fdesetup list`, `sysadminctl
//! -secureTokenStatus USER` for each local user, `diskutil apfs listcryptousers /` and, only when the action
//! carries an admin's credentials, `profiles validate -type bootstraptoken -user ADMIN` — each reported with
//! its exit code and output so the server can keep one device-log event per command.
//!
//! Guarantees: nothing here changes the Mac; the admin's password is typed at `profiles`' prompt on a pty,
//! never put in argv, and redacted from every output; outputs are cleaned of control characters, capped per
//! command at [`MAX_COMMAND_OUTPUT`] and in total at [`BUDGET`], so the report always fits the server's limit.

use protocol::agent_profile::{
    CommandRunWire, MAX_COMMAND_OUTPUT, MAX_TROUBLESHOOT_COMMANDS, clean_output,
};
use vault::Secret;

use crate::actions::{Credentials, run_validate, validate_args};
use crate::inventory::FIRST_LOCAL_UID;
use crate::mac::Mac;
use crate::parse::{dscl, profiles};
use crate::tools::{Output, Tool, ToolError, redact};

/// Total output bytes one report carries; later commands say their output was dropped.
pub const BUDGET: usize = 96 * 1024;

/// The fixed commands besides one `sysadminctl` per user.
const FIXED_COMMANDS: usize = 5;

/// Collects the reports of the commands, in the order they ran.
struct Recorder<'a> {
    secrets: Vec<&'a Secret<String>>,
    left: usize,
    commands: Vec<CommandRunWire>,
}

impl Recorder<'_> {
    fn record(&mut self, tool: Tool, args: &[&str], result: &Result<Output, ToolError>) {
        let command = command_line(tool, args);
        let (exit_code, text, tool_cut) = match result {
            Ok(out) => (out.code, out.combined(), out.truncated),
            Err(e) => (None, e.to_string(), false),
        };
        let text = redact(&text, &self.secrets);
        let (output, cut_here) = if self.left == 0 && !text.is_empty() {
            (
                format!("(output dropped: this report's {BUDGET}-byte budget is used up)"),
                true,
            )
        } else {
            clean_output(&text, MAX_COMMAND_OUTPUT.min(self.left))
        };
        self.left = self.left.saturating_sub(output.len());
        self.commands.push(CommandRunWire {
            command,
            exit_code,
            output,
            truncated: tool_cut || cut_here,
        });
    }

    fn run(&mut self, mac: &Mac, tool: Tool, args: &[&str]) -> Result<Output, ToolError> {
        let result = mac.tools.run(tool, args);
        self.record(tool, args, &result);
        result
    }
}

/// Runs the commands and reports each one. `admin` adds `profiles validate`.
pub fn run(mac: &Mac, admin: Option<&Credentials>) -> Vec<CommandRunWire> {
    let mut rec = Recorder {
        secrets: admin.map(|a| &a.password).into_iter().collect(),
        left: BUDGET,
        commands: Vec::new(),
    };
    let _ = rec.run(mac, Tool::Profiles, &["status", "-type", "bootstraptoken"]);
    let _ = rec.run(mac, Tool::Fdesetup, &["list"]);
    for user in local_users(mac, &mut rec, admin.map(|a| a.user.as_str())) {
        let _ = rec.run(mac, Tool::Sysadminctl, &["-secureTokenStatus", &user]);
    }
    let _ = rec.run(mac, Tool::Diskutil, &["apfs", "listcryptousers", "/"]);
    if let Some(admin) = admin {
        let result = run_validate(mac, admin);
        rec.record(Tool::Profiles, &validate_args(admin), &result);
    }
    rec.commands
}

/// The local users (UID 501 and up) plus the admin if named, at most as many as the report has room for.
/// The `dscl` listing is reported only when it fails: then it explains why no user was checked.
fn local_users(mac: &Mac, rec: &mut Recorder<'_>, admin: Option<&str>) -> Vec<String> {
    let args = [".", "-list", "/Users", "UniqueID"];
    let listed = mac
        .tools
        .run(Tool::Dscl, &args)
        .map_err(Err)
        .and_then(|out| match dscl::parse_user_list(&out.stdout) {
            Ok(users) if out.success() && !out.truncated => Ok(users),
            Ok(_) => Err(Ok(out)),
            Err(e) => Err(Ok(Output {
                stderr: format!("{}\n(escrow-agent: {e})", out.stderr),
                ..out
            })),
        });
    let mut users: Vec<String> = match listed {
        Ok(users) => users
            .into_iter()
            .filter(|(_, uid)| *uid >= FIRST_LOCAL_UID)
            .map(|(name, _)| name)
            .collect(),
        Err(failed) => {
            rec.record(Tool::Dscl, &args, &failed);
            Vec::new()
        }
    };
    if let Some(admin) = admin.filter(|a| !users.iter().any(|u| u == a)) {
        users.push(admin.to_string());
    }
    users.truncate(MAX_TROUBLESHOOT_COMMANDS - FIXED_COMMANDS - 1);
    users
}

/// Why a troubleshoot result is a failure: each command that did not exit 0, and a validate that did not get
/// the token back. Empty when everything ran cleanly.
pub fn problems(commands: &[CommandRunWire]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in commands {
        match c.exit_code {
            Some(0) => {}
            Some(n) => problems.push(format!("`{}` exited {n}", c.command)),
            None => problems.push(format!("`{}` did not run to completion", c.command)),
        }
        if c.exit_code == Some(0)
            && c.command.starts_with("profiles validate")
            && !matches!(
                profiles::parse_validate(&c.output),
                Ok(profiles::ValidateOutcome::Validated)
            )
        {
            problems.push(format!(
                "`{}` did not get the Bootstrap Token back",
                c.command
            ));
        }
    }
    problems
}

/// The command as a person would type it; arguments with spaces or quotes are single-quoted.
fn command_line(tool: Tool, args: &[&str]) -> String {
    let mut line = tool.name().to_string();
    for arg in args {
        line.push(' ');
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_alphanumeric() || "-_./:@%+=,".contains(c));
        if plain {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        assert_eq!(
            command_line(Tool::Profiles, &["status", "-type", "bootstraptoken"]),
            "profiles status -type bootstraptoken"
        );
        assert_eq!(
            command_line(Tool::Sysadminctl, &["-secureTokenStatus", "o'brien x"]),
            r"sysadminctl -secureTokenStatus 'o'\''brien x'"
        );
        assert_eq!(command_line(Tool::Dscl, &[""]), "dscl ''");
    }

    #[test]
    fn problems_name_failed_commands_and_an_unvalidated_token() {
        let ok = |command: &str, output: &str| CommandRunWire {
            command: command.into(),
            exit_code: Some(0),
            output: output.into(),
            truncated: false,
        };
        assert!(problems(&[ok("fdesetup list", "")]).is_empty());
        let mut failed = ok("fdesetup list", "");
        failed.exit_code = Some(1);
        let mut gone = ok("diskutil apfs listcryptousers /", "");
        gone.exit_code = None;
        let p = problems(&[
            failed,
            gone,
            ok(
                "profiles validate -type bootstraptoken -user a",
                "Unable to verify token (err = -69594).",
            ),
            ok(
                "profiles validate -type bootstraptoken -user b",
                "profiles: Bootstrap Token validated.",
            ),
        ]);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("exited 1") && p[1].contains("did not run"));
        assert!(p[2].contains("-user a"));
    }
}
