//! `escrowd-fake-macos`: answers as `profiles`, `sysadminctl`, `fdesetup`, `diskutil` or `dscl` would on a
//! simulated Mac, backed by the JSON state file named by `ESCROWD_SIM_MAC`.
//!
//! Symlink it under the tool's name (`ln -s escrowd-fake-macos profiles`) or name the tool as the first
//! argument (`escrowd-fake-macos profiles status -type bootstraptoken`). Create a state file with
//! `escrowd-fake-macos init PATH [--intel] [--os 14.0] [--manual]`. `ESCROWD_SIM_NOW` fixes the NSLog
//! timestamp (`2024-07-25 08:53:24.446`) for byte-for-byte tests.
//!
//! Prompts (`profiles install`, `dscl -authonly`) are printed and flushed before the answer is read, so a
//! program typing on a pseudo-terminal sees each prompt as on a Mac. When `ESCROWD_SIM_ARGV_LOG` names a file,
//! every invocation appends its argv there as one JSON array per line: tests check that no password ever
//! reached a command line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use sim::mac::{Arch, Enrollment, Mac, MacSpec, OsVersion};
use sim::tools::{self, NsLog};

const TOOLS: [&str; 6] = [
    "profiles",
    "sysadminctl",
    "fdesetup",
    "diskutil",
    "dscl",
    "sw_vers",
];

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let invoked = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    args.remove(0);
    let tool = if TOOLS.contains(&invoked.as_str()) {
        invoked
    } else if args.first().map(String::as_str) == Some("init") {
        std::process::exit(init(&args[1..]));
    } else if let Some(first) = args.first().filter(|a| TOOLS.contains(&a.as_str())) {
        let t = first.clone();
        args.remove(0);
        t
    } else {
        eprintln!(
            "usage: escrowd-fake-macos <{}> ARGS…   (or symlink this binary under one of those names)\n       \
             escrowd-fake-macos init PATH [--intel] [--os 14.0] [--manual]\n\
             The simulated Mac's state is the JSON file named by ESCROWD_SIM_MAC.",
            TOOLS.join("|")
        );
        std::process::exit(64);
    };
    log_argv(&tool, &args);
    std::process::exit(run_tool(&tool, &args));
}

/// Appends `[tool, args…]` to `ESCROWD_SIM_ARGV_LOG` (if set) as one JSON line.
fn log_argv(tool: &str, args: &[String]) {
    let Some(path) = std::env::var_os("ESCROWD_SIM_ARGV_LOG") else {
        return;
    };
    let line = serde_json::json!(
        std::iter::once(tool)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("escrowd-fake-macos: cannot append to ESCROWD_SIM_ARGV_LOG: {e}");
    }
}

/// Standard input that shows prompts at once (see the module docs).
struct LiveStdin<I> {
    lines: I,
    /// The pending prompt asks for a password: like readpassphrase(3) with echo off, a newline is printed
    /// once it is answered (the typed Enter is not echoed).
    password_prompt: bool,
}

impl<I: Iterator<Item = String>> tools::Stdin for LiveStdin<I> {
    fn read_line(&mut self) -> Option<String> {
        let line = self.lines.next();
        if std::mem::take(&mut self.password_prompt) {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
        line
    }

    fn show_prompt(&mut self, prompt: &str) -> bool {
        self.password_prompt = prompt.to_ascii_lowercase().contains("password");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(prompt.as_bytes());
        let _ = out.flush();
        true
    }
}

fn state_path() -> Result<PathBuf, String> {
    std::env::var_os("ESCROWD_SIM_MAC")
        .map(PathBuf::from)
        .ok_or_else(|| {
            "ESCROWD_SIM_MAC must name the simulated Mac's JSON state file (create one with \
             `escrowd-fake-macos init PATH`)"
                .to_string()
        })
}

fn run_tool(tool: &str, args: &[String]) -> i32 {
    let path = match state_path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("escrowd-fake-macos: {e}");
            return 78;
        }
    };
    let mut mac: Mac = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "escrowd-fake-macos: cannot read the state file {}: {e}",
                path.display()
            );
            return 78;
        }
    };
    let stdin = std::io::stdin();
    let mut input = LiveStdin {
        lines: stdin.lock().lines().map_while(Result::ok),
        password_prompt: false,
    };
    let (out, changed) = tools::run(tool, args, &mut mac, &nslog(), &mut input);
    if changed && let Err(e) = save(&path, &mac) {
        eprintln!("escrowd-fake-macos: cannot write the state file: {e}");
        return 74;
    }
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    out.code
}

fn nslog() -> NsLog {
    let timestamp = std::env::var("ESCROWD_SIM_NOW").unwrap_or_else(|_| {
        let format = time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
        );
        time::OffsetDateTime::now_utc()
            .format(&format)
            .unwrap_or_default()
    });
    let pid = std::process::id();
    NsLog {
        timestamp,
        pid,
        thread: u64::from(pid) * 23 + 1,
    }
}

fn save(path: &Path, mac: &Mac) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(mac).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, path)
}

fn init(args: &[String]) -> i32 {
    let Some(path) = args.first() else {
        eprintln!("usage: escrowd-fake-macos init PATH [--intel] [--os 14.0] [--manual]");
        return 64;
    };
    let mut spec = MacSpec::apple_silicon_ade("FAKE-MAC-0001");
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--intel" => spec.arch = Arch::Intel,
            "--manual" => spec.enrollment = Enrollment::Manual,
            "--os" => match it.next().and_then(|v| OsVersion::parse(v)) {
                Some(v) => spec.os = v,
                None => {
                    eprintln!("--os needs a macOS version such as 14.0 or 10.15.7");
                    return 64;
                }
            },
            other => {
                eprintln!("unknown option {other:?}; known: --intel, --os VERSION, --manual");
                return 64;
            }
        }
    }
    let mut mac = Mac::new(spec);
    mac.device_configured();
    match save(Path::new(path), &mac) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write {path}: {e}");
            74
        }
    }
}
