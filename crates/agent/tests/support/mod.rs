//! A fake Mac: a state directory read and written by the shell-script fake tools in `tests/fake-tools/`,
//! and a runner for the real `escrow-agent` binary with PATH pointed at those fakes.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod model_mac;
pub mod server;

pub struct FakeMac {
    pub state: tempfile::TempDir,
    bin: tempfile::TempDir,
    /// Every password the fake Mac knows; none may ever show up in argv or agent output.
    pub passwords: Vec<String>,
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl FakeMac {
    /// An Apple silicon Mac on macOS 14.6 with APFS, BT supported and not escrowed, no users.
    pub fn new() -> Self {
        let state = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let fakes = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-tools");
        for entry in std::fs::read_dir(&fakes).unwrap() {
            let entry = entry.unwrap();
            let to = bin.path().join(entry.file_name());
            std::fs::copy(entry.path(), &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // These copies know their Mac without FAKE_MAC in the environment, so the library's `Tools` can run
        // them in-process (see `tools()`).
        let common = bin.path().join("_fake_common.sh");
        let text = std::fs::read_to_string(&common).unwrap();
        std::fs::write(
            &common,
            format!(": \"${{FAKE_MAC:={}}}\"\n{text}", state.path().display()),
        )
        .unwrap();
        let mac = FakeMac {
            state,
            bin,
            passwords: Vec::new(),
        };
        mac.set("os_version", "14.6");
        mac.set("apfs", "");
        mac.set("arch", "apple_silicon");
        mac.set("bt_supported", "YES");
        mac.set("bt_escrowed", "NO");
        mac.set("admins", "");
        std::fs::create_dir_all(mac.state.path().join("users")).unwrap();
        mac
    }

    /// The agent library's tool runner, pointed at this Mac's fake tools.
    pub fn tools(&self) -> agent::tools::Tools {
        agent::tools::Tools::with_path(format!("{}:/usr/bin:/bin", self.bin.path().display()))
    }

    pub fn set(&self, file: &str, value: &str) {
        std::fs::write(self.state.path().join(file), value).unwrap();
    }

    pub fn unset(&self, file: &str) {
        let _ = std::fs::remove_file(self.state.path().join(file));
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.state.path().join(rel)
    }

    pub fn add_user(
        &mut self,
        name: &str,
        uid: u32,
        real_name: &str,
        password: &str,
        token: bool,
        admin: bool,
    ) {
        let d = self.state.path().join("users").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("uid"), uid.to_string()).unwrap();
        std::fs::write(d.join("realname"), real_name).unwrap();
        std::fs::write(d.join("password"), password).unwrap();
        std::fs::write(
            d.join("guid"),
            format!("{uid:08X}-0000-4000-8000-{uid:012X}"),
        )
        .unwrap();
        if token {
            std::fs::write(d.join("token"), "").unwrap();
        }
        if admin {
            let mut admins = std::fs::read_to_string(self.path("admins")).unwrap();
            admins.push_str(&format!("{name}\n"));
            self.set("admins", &admins);
        }
        self.passwords.push(password.to_string());
    }

    pub fn has_token(&self, user: &str) -> bool {
        self.path(&format!("users/{user}/token")).exists()
    }

    pub fn admins(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("admins"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn argv_log(&self) -> String {
        std::fs::read_to_string(self.path("argv.log")).unwrap_or_default()
    }

    /// Runs the real binary with PATH = fakes + system dirs, feeding `stdin_lines` one per line.
    pub fn agent(&mut self, args: &[&str], stdin_lines: &[&str]) -> Run {
        for line in stdin_lines {
            if !line.is_empty() {
                self.passwords.push(line.to_string());
            }
        }
        let path = format!("{}:/usr/bin:/bin", self.bin.path().display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_escrow-agent"))
            .args(args)
            .env("PATH", path)
            .env("FAKE_MAC", self.state.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = String::new();
        for line in stdin_lines {
            input.push_str(line);
            input.push('\n');
        }
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.assert_no_password_leaked(&run);
        run
    }

    /// No password the Mac knows, or that was typed, is in any fake tool's argv or in the agent's output.
    pub fn assert_no_password_leaked(&self, run: &Run) {
        let argv = self.argv_log();
        for pw in &self.passwords {
            assert!(
                !argv.contains(pw.as_str()),
                "password {pw:?} reached argv:\n{argv}"
            );
            assert!(
                !run.stdout.contains(pw.as_str()),
                "password {pw:?} in stdout:\n{}",
                run.stdout
            );
            assert!(
                !run.stderr.contains(pw.as_str()),
                "password {pw:?} in stderr:\n{}",
                run.stderr
            );
        }
    }
}

/// A typical Mac: `ladmin` (admin, token holder), `alice` (standard, no token).
pub fn typical_mac() -> FakeMac {
    let mut mac = FakeMac::new();
    mac.add_user("ladmin", 501, "Local Admin", "Adm1n-pw!", true, true);
    mac.add_user("alice", 502, "Alice B. Zoë", "al1ce pw%", false, false);
    mac
}
