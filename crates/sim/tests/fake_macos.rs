//! The `escrowd-fake-macos` binary: argv[0] dispatch, the state file, streams and exit codes (§1.8).

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_escrowd-fake-macos");

fn tool(dir: &Path, name: &str, state: &Path, args: &[&str], stdin: &str) -> Output {
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let mut child = Command::new(&link)
        .args(args)
        .env("ESCROWD_SIM_MAC", state)
        .env("ESCROWD_SIM_NOW", "2017-10-07 17:51:56.505")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn a_fresh_mac_driven_through_the_symlinked_tools_behaves_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("mac.json");
    let init = Command::new(BIN)
        .arg("init")
        .arg(&state)
        .args(["--os", "14.0"])
        .status()
        .unwrap();
    assert!(init.success());

    // §1.2 rule 2: the first plain-text password on macOS 11+ takes the first token.
    let add = tool(
        dir.path(),
        "sysadminctl",
        &state,
        &["-addUser", "createdviacli", "-password", "-", "-admin"],
        "pw\n",
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    let status = tool(
        dir.path(),
        "sysadminctl",
        &state,
        &["-secureTokenStatus", "createdviacli"],
        "",
    );
    assert_eq!(text(&status.stdout), "");
    let pid = status.stderr.split(|b| *b == b'[').nth(1).unwrap();
    let pid = text(pid).split(']').next().unwrap();
    assert_eq!(
        text(&status.stderr),
        format!(
            "2017-10-07 17:51:56.505 sysadminctl[{pid}] Secure token is ENABLED for user createdviacli\n"
        )
    );

    let st = tool(
        dir.path(),
        "profiles",
        &state,
        &["status", "-type", "bootstraptoken"],
        "",
    );
    assert_eq!(
        text(&st.stdout),
        "profiles: Bootstrap Token supported on server: YES\nprofiles: Bootstrap Token escrowed to server: NO\n"
    );
    let install = tool(
        dir.path(),
        "profiles",
        &state,
        &["install", "-type", "bootstraptoken"],
        "createdviacli\npw\n",
    );
    assert_eq!(install.status.code(), Some(0), "{}", text(&install.stderr));
    let st = tool(
        dir.path(),
        "profiles",
        &state,
        &["status", "-type", "bootstraptoken"],
        "",
    );
    assert!(text(&st.stdout).ends_with("escrowed to server: YES\n"));
    let v = tool(
        dir.path(),
        "profiles",
        &state,
        &[
            "validate",
            "-type",
            "bootstraptoken",
            "-user",
            "createdviacli",
            "-password",
            "pw",
        ],
        "",
    );
    assert_eq!(text(&v.stdout), "profiles: Bootstrap Token validated.\n");

    let crypto = tool(
        dir.path(),
        "diskutil",
        &state,
        &["apfs", "listcryptousers", "/"],
        "",
    );
    assert!(text(&crypto.stdout).starts_with("Cryptographic users for disk3s5 (3 found)\n"));
    assert!(
        text(&crypto.stdout)
            .contains("    Type: MDM Bootstrap Token External Key\n    Volume Owner: Yes\n")
    );
    let fv = tool(dir.path(), "fdesetup", &state, &["list"], "");
    assert!(text(&fv.stdout).starts_with("createdviacli,"));
}

#[test]
fn the_tool_name_can_also_be_the_first_argument() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("mac.json");
    assert!(
        Command::new(BIN)
            .arg("init")
            .arg(&state)
            .arg("--intel")
            .status()
            .unwrap()
            .success()
    );
    let out = Command::new(BIN)
        .args(["diskutil", "apfs", "listcryptousers", "/"])
        .env("ESCROWD_SIM_MAC", &state)
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "Cryptographic users for disk1s5 (1 found)\n|\n+-- EBC6C064-0000-11AA-AA11-00306543ECAC\n    Type: Personal Recovery User\n"
    );
}

#[test]
fn a_missing_or_corrupt_state_file_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Command::new(BIN)
        .args(["profiles", "status", "-type", "bootstraptoken"])
        .env_remove("ESCROWD_SIM_MAC")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(78));
    assert!(text(&missing.stderr).contains("escrowd-fake-macos init"));
    let corrupt = dir.path().join("bad.json");
    std::fs::write(&corrupt, b"{ not json").unwrap();
    let out = Command::new(BIN)
        .args(["fdesetup", "list"])
        .env("ESCROWD_SIM_MAC", &corrupt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("cannot read the state file"));
}

#[test]
fn argv_log_records_every_invocation_and_prompts_come_before_the_answer_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("mac.json");
    assert!(
        Command::new(BIN)
            .arg("init")
            .arg(&state)
            .status()
            .unwrap()
            .success()
    );
    let log = dir.path().join("argv.log");
    let link = dir.path().join("dscl");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    // The answer is written only after the prompt has been read back: a tool that printed its prompt at
    // exit would deadlock here, so a timeout-free success proves the prompt came first.
    let mut child = Command::new(&link)
        .args([".", "-authonly", "nobody-here"])
        .env("ESCROWD_SIM_MAC", &state)
        .env("ESCROWD_SIM_ARGV_LOG", &log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut prompt = [0u8; 9];
    use std::io::{Read, Write};
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut prompt)
        .unwrap();
    assert_eq!(&prompt, b"Password:");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"typed-secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "an unknown user authenticated");
    let sw = tool(dir.path(), "sw_vers", &state, &["-productVersion"], "");
    assert!(sw.status.success());
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!(["dscl", ".", "-authonly", "nobody-here"])
    );
    // sw_vers ran without ESCROWD_SIM_ARGV_LOG, so it is not in the log.
    assert_eq!(lines.len(), 1, "{logged}");
    assert!(!logged.contains("typed-secret"));
}
