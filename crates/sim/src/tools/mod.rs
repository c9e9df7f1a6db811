//! Fake macOS command-line tools backed by the model: `profiles`, `sysadminctl`, `fdesetup`, `diskutil`,
//! `dscl` and `sw_vers`, answering as §1.8 of macos-tokens-and-admin-needs.md documents (stdout vs stderr, NSLog
//! prefixes, RealName, the Intel and Apple-silicon `listcryptousers` forms, exit codes including the exit-0
//! failures), so the Mac agent can be tested on Linux.
//!
//! Guarantees: pure (the NSLog timestamp and process ids come from [`NsLog`], the state from the caller);
//! passwords given on the command line or stdin are checked against the model's digests and never echoed.
//! Where §1.8 does not document an output (marked "not documented" below), the text is ours and kept short.

mod disk;
mod dscl;
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

    /// Shows `prompt` to whoever is typing before the next [`Stdin::read_line`]. A live terminal prints it
    /// at once (the agent answers a prompt only once it has seen it) and returns true; the default keeps it
    /// for the tool's output, in order, and returns false.
    fn show_prompt(&mut self, _prompt: &str) -> bool {
        false
    }
}

impl<I: Iterator<Item = String>> Stdin for I {
    fn read_line(&mut self) -> Option<String> {
        self.next()
    }
}

/// Shows `prompt` (live, or appended to `shown` for the output) and reads the answer.
fn ask(stdin: &mut dyn Stdin, shown: &mut String, prompt: &str) -> Option<String> {
    if !stdin.show_prompt(prompt) {
        shown.push_str(prompt);
    }
    stdin.read_line()
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
        "dscl" => dscl::dscl(args, mac, stdin),
        "sw_vers" => sw_vers(args, mac),
        other => ToolOutput::err(
            format!(
                "escrowd-fake-macos: unknown tool {other:?}; link this binary as profiles, sysadminctl, \
                 fdesetup, diskutil, dscl or sw_vers\n"
            ),
            127,
        ),
    };
    let changed = *mac != before;
    (out, changed)
}

/// `sw_vers [-productVersion|-buildVersion]`: the model's macOS version.
fn sw_vers(args: &[String], mac: &Mac) -> ToolOutput {
    match args.first().map(String::as_str) {
        Some("-productVersion") => ToolOutput::out(format!("{}\n", mac.os)),
        Some("-buildVersion") => ToolOutput::out(format!("{}\n", mac.os.build_version())),
        None => ToolOutput::out(format!(
            "ProductName:\t\tmacOS\nProductVersion:\t\t{}\nBuildVersion:\t\t{}\n",
            mac.os,
            mac.os.build_version()
        )),
        Some(other) => ToolOutput::usage("sw_vers", &format!("unknown option {other:?}")),
    }
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
