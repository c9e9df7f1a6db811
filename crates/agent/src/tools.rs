//! Runs Apple's tools: found first on `PATH`, bounded in time and output, passwords only on standard input or
//! a pseudo-terminal.
//!
//! Guarantees: a secret is never put in argv (a call whose arguments contain a secret's text is refused
//! before anything runs); every whole occurrence of a secret where a tool could echo it (see [`redact`]) in
//! captured output is replaced by `[redacted]`; a
//! tool that outlives its timeout is killed with its whole process group; output beyond the cap is dropped
//! and flagged, never buffered.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use vault::Secret;

/// The tools the agent may run. Nothing else is ever executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Profiles,
    Sysadminctl,
    Fdesetup,
    Diskutil,
    Dscl,
    /// `sw_vers -productVersion`, for the "OS too old" check.
    SwVers,
    /// Native dialogs for self-service escrow.
    Osascript,
    /// `launchctl bootstrap system …` for `launchd-plist --install`.
    Launchctl,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Profiles => "profiles",
            Tool::Sysadminctl => "sysadminctl",
            Tool::Fdesetup => "fdesetup",
            Tool::Diskutil => "diskutil",
            Tool::Dscl => "dscl",
            Tool::SwVers => "sw_vers",
            Tool::Osascript => "osascript",
            Tool::Launchctl => "launchctl",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{tool}` was not found on PATH; install it or put its directory on PATH")]
    NotFound { tool: &'static str },
    #[error("could not start `{tool}`: {source}")]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("`{tool}` did not finish within {seconds} s and was stopped")]
    TimedOut { tool: &'static str, seconds: u64 },
    #[error(
        "refused to run `{tool}`: an argument contains a password (passwords go on stdin or a pty only)"
    )]
    SecretInArgv { tool: &'static str },
    #[error("pseudo-terminal for `{tool}` failed: {source}")]
    Pty {
        tool: &'static str,
        source: std::io::Error,
    },
}

/// What a tool printed. Secrets it was given are already redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// `None` when the tool was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Output went past the cap and the rest was dropped.
    pub truncated: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout then stderr, the way scripts read tools with `2>&1`.
    pub fn combined(&self) -> String {
        let mut s = self.stdout.clone();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&self.stderr);
        s
    }
}

/// One expected prompt of an interactive tool and what to type at it.
pub struct Answer<'a> {
    /// Matched case-insensitively against the tool's output since the previous answer.
    pub prompt: &'a str,
    pub reply: Reply<'a>,
}

pub enum Reply<'a> {
    Text(&'a str),
    Secret(&'a Secret<String>),
}

/// Locates and runs the tools.
#[derive(Debug, Clone)]
pub struct Tools {
    path: Option<OsString>,
    pub timeout: Duration,
    pub output_cap: usize,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_OUTPUT_CAP: usize = crate::parse::MAX_INPUT;
const POLL: Duration = Duration::from_millis(10);

impl Default for Tools {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Tools {
    /// Searches the process's own `PATH`.
    pub fn from_env() -> Self {
        Self {
            path: std::env::var_os("PATH"),
            timeout: DEFAULT_TIMEOUT,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    /// Searches the given `PATH` value instead (tests point it at fake tools).
    pub fn with_path(path: impl Into<OsString>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::from_env()
        }
    }

    pub fn resolve(&self, tool: Tool) -> Result<PathBuf, ToolError> {
        let path = self
            .path
            .as_deref()
            .ok_or(ToolError::NotFound { tool: tool.name() })?;
        std::env::split_paths(path)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(tool.name()))
            .find(|candidate| is_executable(candidate))
            .ok_or(ToolError::NotFound { tool: tool.name() })
    }

    /// Runs a tool with no input.
    pub fn run(&self, tool: Tool, args: &[&str]) -> Result<Output, ToolError> {
        self.run_with_stdin(tool, args, &[])
    }

    /// Runs a tool and writes each secret, one per line, to its standard input, then closes it.
    pub fn run_with_stdin(
        &self,
        tool: Tool,
        args: &[&str],
        secrets: &[&Secret<String>],
    ) -> Result<Output, ToolError> {
        refuse_secrets_in_argv(tool, args, secrets)?;
        let program = self.resolve(tool)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::pty::own_session(&mut command);
        let mut child = command.spawn().map_err(|source| ToolError::Spawn {
            tool: tool.name(),
            source,
        })?;

        let mut input = Vec::new();
        for secret in secrets {
            input.extend_from_slice(secret.expose().as_bytes());
            input.push(b'\n');
        }
        let input = Secret::new(input);
        if let Some(mut stdin) = child.stdin.take() {
            // A tool that exits without reading gives EPIPE; its output says what happened.
            let _ = stdin.write_all(input.expose());
        }
        drop(input);
        let cap = self.output_cap;
        let stdout = child
            .stdout
            .take()
            .map(|s| thread::spawn(move || read_capped(s, cap)));
        let stderr = child
            .stderr
            .take()
            .map(|s| thread::spawn(move || read_capped(s, cap)));
        let code = self.wait(tool, &mut child)?;
        let (out, out_cut) = join(stdout);
        let (err, err_cut) = join(stderr);
        Ok(Output {
            code,
            stdout: redact(&out, secrets),
            stderr: redact(&err, secrets),
            truncated: out_cut || err_cut,
        })
    }

    /// Runs a tool on a fresh pseudo-terminal (its controlling terminal, echo off) and answers its prompts in
    /// order. stdout and stderr arrive together in `Output::stdout`.
    pub fn run_in_pty(
        &self,
        tool: Tool,
        args: &[&str],
        answers: &[Answer<'_>],
    ) -> Result<Output, ToolError> {
        let secrets: Vec<&Secret<String>> = answers
            .iter()
            .filter_map(|a| match a.reply {
                Reply::Secret(s) => Some(s),
                Reply::Text(_) => None,
            })
            .collect();
        refuse_secrets_in_argv(tool, args, &secrets)?;
        let program = self.resolve(tool)?;
        let (code, transcript, truncated) = crate::pty::run(self, tool, &program, args, answers)?;
        Ok(Output {
            code,
            stdout: redact(&transcript, &secrets),
            stderr: String::new(),
            truncated,
        })
    }

    /// Waits for the child until the timeout, then kills its process group.
    pub(crate) fn wait(&self, tool: Tool, child: &mut Child) -> Result<Option<i32>, ToolError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status.code()),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) | Err(_) => {
                    crate::pty::kill_group(child);
                    let _ = child.wait();
                    return Err(ToolError::TimedOut {
                        tool: tool.name(),
                        seconds: self.timeout.as_secs(),
                    });
                }
            }
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn refuse_secrets_in_argv(
    tool: Tool,
    args: &[&str],
    secrets: &[&Secret<String>],
) -> Result<(), ToolError> {
    let leaks = secrets
        .iter()
        .map(|s| s.expose().as_str())
        .filter(|s| !s.is_empty())
        .any(|s| args.iter().any(|a| a.contains(s)));
    if leaks {
        Err(ToolError::SecretInArgv { tool: tool.name() })
    } else {
        Ok(())
    }
}

/// Replaces whole occurrences of each non-empty secret with `[redacted]`: where a tool could echo what it
/// was given, never an arbitrary substring (with the password `x`, "does not exist" must stay readable and
/// must not hint at the password). An occurrence is whole when it is not glued to letters or digits on either
/// side, and it stands where an echo would: alone on its line (the secret went in as one line of input), at
/// the end of its line after a prompt (text ending in `:` or `=`), or anywhere after the word "password" or
/// "passphrase" (optionally followed by "is"); quotes around it do not matter. A secret holding a line break cannot be echoed as a line and is replaced anywhere.
pub fn redact(text: &str, secrets: &[&Secret<String>]) -> String {
    let mut ordered: Vec<&str> = secrets
        .iter()
        .map(|s| s.expose().as_str())
        .filter(|s| !s.is_empty())
        .collect();
    // Longer first, so a secret containing another is redacted whole.
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in ordered {
        if !out.contains(secret) {
            continue;
        }
        out = if secret.contains(['\n', '\r']) {
            out.replace(secret, REDACTED)
        } else {
            out.split_inclusive('\n')
                .map(|line| redact_line(line, secret))
                .collect()
        };
    }
    out
}

const REDACTED: &str = "[redacted]";

fn redact_line(line: &str, secret: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = line[from..].find(secret) {
        let start = from + found;
        let end = start + secret.len();
        if is_echo(&line[..start], &line[end..]) {
            out.push_str(&line[rest..start]);
            out.push_str(REDACTED);
            rest = end;
            from = end;
        } else {
            // Next char boundary after `start`.
            from = start + line[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&line[rest..]);
    out
}

const QUOTES: [char; 4] = ['"', '\'', '`', '\u{201c}'];

/// Whether a secret between `before` and `after` (the rest of its line) stands where an echo would.
fn is_echo(before: &str, after: &str) -> bool {
    let glued_before = before
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    let glued_after = after.chars().next().is_some_and(char::is_alphanumeric);
    if glued_before || glued_after {
        return false;
    }
    let lead = before
        .trim_end()
        .trim_end_matches(|c| QUOTES.contains(&c) || c == '\u{201d}')
        .trim_end();
    // Nothing but quotes, a full stop and white space after it on its line.
    let ends_line = after
        .trim_start_matches(|c: char| QUOTES.contains(&c) || c == '\u{201d}' || c == '.')
        .trim()
        .is_empty();
    if ends_line && (lead.is_empty() || lead.ends_with([':', '='])) {
        return true;
    }
    let lower = lead.to_lowercase();
    let lower = lower
        .strip_suffix(" is")
        .map(str::trim_end)
        .unwrap_or(&lower);
    lower.ends_with("password") || lower.ends_with("passphrase")
}

/// Reads up to `cap` bytes, then keeps draining (so the tool never blocks on a full pipe) and drops the rest.
pub(crate) fn read_capped(mut source: impl Read, cap: usize) -> (String, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}

fn join(handle: Option<thread::JoinHandle<(String, bool)>>) -> (String, bool) {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
