//! Fake macOS command-line tools backed by the model: `profiles`, `sysadminctl`, `fdesetup`, `diskutil`
//! and `dscl`, answering as §1.8 of macos-tokens-and-admin-needs.md documents (stdout vs stderr, NSLog
//! prefixes, RealName, the Intel and Apple-silicon `listcryptousers` forms, exit codes including the exit-0
//! failures), so the Mac agent can be tested on Linux.
//!
//! Guarantees: pure (the NSLog timestamp and process ids come from [`NsLog`], the state from the caller);
//! passwords given on the command line or stdin are checked against the model's digests and never echoed.
//! Where §1.8 does not document an output (marked "not documented" below), the text is ours and kept short.

mod disk;
mod profiles;
mod sysadminctl;

use crate::mac::Mac;

/// What a tool printed and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl ToolOutput {
    fn out(s: impl Into<String>) -> ToolOutput {
        ToolOutput {
            stdout: s.into(),
            ..ToolOutput::default()
        }
    }

    fn err(s: impl Into<String>, code: i32) -> ToolOutput {
        ToolOutput {
            stderr: s.into(),
            code,
            ..ToolOutput::default()
        }
    }

    fn usage(tool: &str, what: &str) -> ToolOutput {
        ToolOutput::err(format!("{tool}: {what}\n"), 64)
    }
}

/// The NSLog prefix parts: `2024-07-25 08:53:24.446 sysadminctl[35601:822344] `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsLog {
    /// `YYYY-MM-DD HH:MM:SS.mmm`.
    pub timestamp: String,
    pub pid: u32,
    pub thread: u64,
}

impl NsLog {
    fn line(&self, process: &str, message: &str) -> String {
        format!(
            "{} {process}[{}:{}] {message}\n",
            self.timestamp, self.pid, self.thread
        )
    }
}

/// Input a tool can read (answers to `profiles install`'s prompts).
pub trait Stdin {
    fn read_line(&mut self) -> Option<String>;
}

impl<I: Iterator<Item = String>> Stdin for I {
    fn read_line(&mut self) -> Option<String> {
        self.next()
    }
}

/// Run `tool` with `args` against `mac`. Returns the output and whether the state changed.
pub fn run(
    tool: &str,
    args: &[String],
    mac: &mut Mac,
    log: &NsLog,
    stdin: &mut dyn Stdin,
) -> (ToolOutput, bool) {
    let before = mac.clone();
    let out = match tool {
        "profiles" => profiles::run(args, mac, stdin),
        "sysadminctl" => sysadminctl::run(args, mac, log, stdin),
        "fdesetup" => disk::fdesetup(args, mac),
        "diskutil" => disk::diskutil(args, mac),
        "dscl" => disk::dscl(args, mac),
        other => ToolOutput::err(
            format!(
                "escrowd-fake-macos: unknown tool {other:?}; link this binary as profiles, sysadminctl, \
                 fdesetup, diskutil or dscl\n"
            ),
            127,
        ),
    };
    let changed = *mac != before;
    (out, changed)
}

/// The value after `flag` (`-user U`), or of `flag=V` (`-user=U`).
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&prefix) {
            return Some(v.to_string());
        }
    }
    None
}

fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

#[cfg(test)]
mod tests;
