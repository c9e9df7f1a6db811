//! `escrow-agent launchd-plist`: the LaunchDaemon that keeps `escrow-agent run` going on a Mac, written to
//! [`PLIST_PATH`] and loaded with `launchctl bootstrap system`.
//!
//! Guarantees: the plist is built with the `plist` crate (never by string pasting, so odd paths cannot break
//! it); every path in it is absolute (launchd starts daemons in `/`); it names the tools' system `PATH`
//! explicitly, so the daemon runs Apple's tools and nothing a user put first on theirs.

use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};

use crate::tools::{Tool, Tools};

pub const LABEL: &str = "com.escrowd.agent";
pub const PLIST_PATH: &str = "/Library/LaunchDaemons/com.escrowd.agent.plist";
pub const LOG_PATH: &str = "/var/log/escrowd-agent.log";
pub const ERROR_LOG_PATH: &str = "/var/log/escrowd-agent.err.log";
/// Where Apple's tools live: profiles, fdesetup, dscl in /usr/bin; sysadminctl, diskutil in /usr/sbin.
pub const SYSTEM_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";
/// Seconds launchd waits before restarting a daemon that exited (e.g. a missing state file).
pub const THROTTLE_SECS: i64 = 60;

/// What goes into the daemon's command line.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The `escrow-agent` binary (absolute).
    pub program: PathBuf,
    pub state: PathBuf,
    pub interval: u64,
    pub managed_admin: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchdError {
    #[error("{what} {path:?} cannot be made absolute: {source}")]
    Path {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path:?} is not valid UTF-8; launchd needs a UTF-8 path")]
    NotUtf8 { what: &'static str, path: PathBuf },
    #[error("writing the plist: {0}")]
    Plist(#[from] plist::Error),
    #[error(
        "--install works only on macOS (launchd); elsewhere print the plist and install it your own way"
    )]
    NotMacOs,
    #[error("--install must run as root (sudo) to write {PLIST_PATH}")]
    NotRoot,
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("`launchctl bootstrap system {PLIST_PATH}` failed (exit {code:?}): {detail}")]
    Bootstrap { code: Option<i32>, detail: String },
    #[error(transparent)]
    Tool(#[from] crate::tools::ToolError),
}

fn absolute(what: &'static str, path: &Path) -> Result<String, LaunchdError> {
    let abs = std::path::absolute(path).map_err(|source| LaunchdError::Path {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    abs.to_str()
        .map(str::to_string)
        .ok_or_else(|| LaunchdError::NotUtf8 {
            what,
            path: abs.clone(),
        })
}

impl Daemon {
    /// The `run` command line, every path absolute.
    pub fn program_arguments(&self) -> Result<Vec<String>, LaunchdError> {
        let mut args = vec![
            absolute("the agent binary", &self.program)?,
            "run".into(),
            "--state".into(),
            absolute("--state", &self.state)?,
            "--interval".into(),
            self.interval.to_string(),
        ];
        if let Some(name) = &self.managed_admin {
            args.extend(["--managed-admin".into(), name.clone()]);
        }
        if let Some(pem) = &self.ca_cert {
            args.extend(["--ca-cert".into(), absolute("--ca-cert", pem)?]);
        }
        Ok(args)
    }

    /// The LaunchDaemon plist (XML).
    pub fn plist(&self) -> Result<Vec<u8>, LaunchdError> {
        let mut d = Dictionary::new();
        d.insert("Label".into(), Value::String(LABEL.into()));
        d.insert(
            "ProgramArguments".into(),
            Value::Array(
                self.program_arguments()?
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        );
        d.insert("RunAtLoad".into(), Value::Boolean(true));
        d.insert("KeepAlive".into(), Value::Boolean(true));
        d.insert(
            "ThrottleInterval".into(),
            Value::Integer(THROTTLE_SECS.into()),
        );
        d.insert("ProcessType".into(), Value::String("Background".into()));
        d.insert("StandardOutPath".into(), Value::String(LOG_PATH.into()));
        d.insert(
            "StandardErrorPath".into(),
            Value::String(ERROR_LOG_PATH.into()),
        );
        d.insert("WorkingDirectory".into(), Value::String("/".into()));
        let mut env = Dictionary::new();
        env.insert("PATH".into(), Value::String(SYSTEM_PATH.into()));
        d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
        let mut xml = Vec::new();
        Value::Dictionary(d).to_writer_xml(&mut xml)?;
        xml.push(b'\n');
        Ok(xml)
    }
}

/// Writes the plist to [`PLIST_PATH`] (0644, atomically) and loads it with `launchctl bootstrap system`; a
/// daemon already loaded under [`LABEL`] is booted out first, so `--install` also updates it. macOS only.
pub fn install(tools: &Tools, plist: &[u8]) -> Result<(), LaunchdError> {
    if !cfg!(target_os = "macos") {
        return Err(LaunchdError::NotMacOs);
    }
    if !rustix::process::geteuid().is_root() {
        return Err(LaunchdError::NotRoot);
    }
    write_0644(Path::new(PLIST_PATH), plist)?;
    // Not loaded yet is fine: bootout then fails and bootstrap loads it fresh.
    let _ = tools.run(Tool::Launchctl, &["bootout", &format!("system/{LABEL}")]);
    let out = tools.run(Tool::Launchctl, &["bootstrap", "system", PLIST_PATH])?;
    if !out.success() {
        return Err(LaunchdError::Bootstrap {
            code: out.code,
            detail: out.combined().trim().to_string(),
        });
    }
    Ok(())
}

fn write_0644(path: &Path, bytes: &[u8]) -> Result<(), LaunchdError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| LaunchdError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("plist.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(err)?;
    // The umask may have taken bits away; launchd refuses group- or world-writable plists.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon() -> Daemon {
        Daemon {
            program: "/usr/local/bin/escrow-agent".into(),
            state: "/var/db/escrowd-agent/state.json".into(),
            interval: 300,
            managed_admin: None,
            ca_cert: None,
        }
    }

    #[test]
    fn plist_parses_and_has_what_launchd_needs() {
        let mut d = daemon();
        d.managed_admin = Some("ladmin <&> ade".into());
        d.ca_cert = Some("/etc/escrowd/tls.pem".into());
        let xml = d.plist().unwrap();
        let v: Value = plist::from_bytes(&xml).unwrap();
        let dict = v.as_dictionary().unwrap();
        assert_eq!(dict["Label"].as_string(), Some(LABEL));
        let args: Vec<&str> = dict["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "/usr/local/bin/escrow-agent",
                "run",
                "--state",
                "/var/db/escrowd-agent/state.json",
                "--interval",
                "300",
                "--managed-admin",
                "ladmin <&> ade",
                "--ca-cert",
                "/etc/escrowd/tls.pem"
            ]
        );
        assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
        assert_eq!(dict["KeepAlive"].as_boolean(), Some(true));
        assert_eq!(dict["StandardOutPath"].as_string(), Some(LOG_PATH));
        assert_eq!(dict["StandardErrorPath"].as_string(), Some(ERROR_LOG_PATH));
        assert_eq!(dict["ProcessType"].as_string(), Some("Background"));
        assert_eq!(
            dict["EnvironmentVariables"].as_dictionary().unwrap()["PATH"].as_string(),
            Some(SYSTEM_PATH)
        );
    }

    #[test]
    fn relative_paths_become_absolute() {
        let mut d = daemon();
        d.state = "state.json".into();
        let args = d.program_arguments().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(args[3], cwd.join("state.json").to_str().unwrap());
        assert!(
            !args
                .iter()
                .any(|a| a == "--managed-admin" || a == "--ca-cert")
        );
    }

    #[test]
    fn install_is_refused_off_macos_or_without_root() {
        if cfg!(target_os = "macos") && rustix::process::geteuid().is_root() {
            return; // would really install
        }
        let err = install(&Tools::with_path(""), b"x").unwrap_err();
        assert!(
            matches!(err, LaunchdError::NotMacOs | LaunchdError::NotRoot),
            "{err}"
        );
    }
}
