//! A Mac backed by the sim crate's model of macOS's token rules: its state is a `sim::mac::Mac` saved as
//! JSON, and `profiles`, `sysadminctl`, `fdesetup`, `diskutil`, `dscl` and `sw_vers` on the agent's PATH are
//! links to the `escrowd-fake-macos` binary, which answers from (and updates) that state exactly as the
//! documented tools do. Unlike the shell fakes in `tests/fake-tools`, who may hold or grant a token is
//! decided by the model (§1.2–1.4 of macos-tokens-and-admin-needs.md), not by the test.

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sim::mac::Mac;

use super::Run;

const TOOLS: [&str; 6] = [
    "profiles",
    "sysadminctl",
    "fdesetup",
    "diskutil",
    "dscl",
    "sw_vers",
];

pub struct ModelMac {
    dir: tempfile::TempDir,
    /// Every password this Mac knows or was typed to it; none may reach a tool's argv or the agent's output.
    pub passwords: Vec<String>,
}

impl ModelMac {
    /// Saves `mac` as the state the fake tools read; `passwords` are the ones its users have.
    pub fn new(mac: &Mac, passwords: &[&str]) -> ModelMac {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in TOOLS {
            symlink(fake_macos_binary(), bin.join(tool)).unwrap();
        }
        let model = ModelMac {
            dir,
            passwords: passwords.iter().map(|p| p.to_string()).collect(),
        };
        model.save(mac);
        model
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("mac.json")
    }

    fn argv_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("argv.log")).unwrap_or_default()
    }

    pub fn save(&self, mac: &Mac) {
        std::fs::write(self.state(), serde_json::to_vec(mac).unwrap()).unwrap();
    }

    /// The Mac as the tools left it.
    pub fn load(&self) -> Mac {
        serde_json::from_slice(&std::fs::read(self.state()).unwrap()).unwrap()
    }

    pub fn has_token(&self, user: &str) -> bool {
        self.load().user(user).unwrap().secure_token
    }

    /// Every tool invocation so far, one `[tool, args…]` JSON array per line.
    pub fn invocations(&self) -> Vec<Vec<String>> {
        self.argv_log()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs the real `escrow-agent` with the fake tools first on PATH; then checks no password leaked.
    pub fn agent(&self, args: &[&str]) -> Run {
        self.agent_with_stdin(args, &[])
    }

    /// Starts the real `escrow-agent` in the background (stdout piped, stdin closed); the caller kills it.
    pub fn spawn_agent(&self, args: &[&str]) -> std::process::Child {
        let path = format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display());
        Command::new(env!("CARGO_BIN_EXE_escrow-agent"))
            .args(args)
            .env("PATH", path)
            .env("ESCROWD_SIM_MAC", self.state())
            .env("ESCROWD_SIM_ARGV_LOG", self.dir.path().join("argv.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// As [`ModelMac::agent`], typing `lines` on the agent's stdin (its terminal prompts read them).
    pub fn agent_with_stdin(&self, args: &[&str], lines: &[&str]) -> Run {
        let path = format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display());
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let out = tokio::task::block_in_place(|| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_escrow-agent"))
                .args(args)
                .env("PATH", path)
                .env("ESCROWD_SIM_MAC", self.state())
                .env("ESCROWD_SIM_ARGV_LOG", self.dir.path().join("argv.log"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        });
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let argv = self.argv_log();
        for pw in &self.passwords {
            for (what, text) in [
                ("a tool's argv", argv.as_str()),
                ("stdout", &run.stdout),
                ("stderr", &run.stderr),
            ] {
                assert!(
                    !text.contains(pw.as_str()),
                    "password {pw:?} in {what}:\n{text}"
                );
            }
        }
        run
    }
}

/// The sim crate's `escrowd-fake-macos`, built next to this test binary. Cargo gives a test the path of its
/// own package's binaries only, so this asks cargo to build the sim one (a no-op when it is up to date) into
/// the same target directory and profile.
pub fn fake_macos_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test binary>
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = profile_dir.file_name().unwrap().to_str().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "sim",
                "--bin",
                "escrowd-fake-macos",
            ])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile != "debug" {
            build.args(["--profile", profile]); // target/debug holds the dev and test profiles
        }
        let status = build
            .status()
            .expect("cannot run cargo to build escrowd-fake-macos");
        assert!(status.success(), "building escrowd-fake-macos failed");
        let bin = profile_dir.join("escrowd-fake-macos");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}
