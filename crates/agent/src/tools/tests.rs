use super::*;
use std::os::unix::fs::PermissionsExt;

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn tools_in(dir: &Path) -> Tools {
    let path = std::env::join_paths([
        dir.to_path_buf(),
        PathBuf::from("/bin"),
        PathBuf::from("/usr/bin"),
    ])
    .unwrap();
    Tools::with_path(path)
}

#[test]
fn the_first_executable_on_path_wins_and_non_executables_are_skipped() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("dscl"), "not executable").unwrap();
    script(b.path(), "dscl", "echo from-b");
    let tools = Tools::with_path(std::env::join_paths([a.path(), b.path()]).unwrap());
    assert_eq!(tools.resolve(Tool::Dscl).unwrap(), b.path().join("dscl"));
    assert!(matches!(
        tools.resolve(Tool::Profiles),
        Err(ToolError::NotFound { tool: "profiles" })
    ));
}

#[test]
fn run_captures_stdout_stderr_and_exit_code_separately() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "sysadminctl", "echo out; echo err >&2; exit 3");
    let out = tools_in(dir.path())
        .run(Tool::Sysadminctl, &["-secureTokenStatus", "x"])
        .unwrap();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );
    assert_eq!(out.combined(), "out\nerr\n");
}

#[test]
fn passwords_go_on_stdin_in_order_and_are_redacted_from_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("argv.log");
    script(
        dir.path(),
        "sysadminctl",
        &format!(
            "echo \"$@\" >> {}; read -r a; read -r b; echo \"Password: $a\"; echo \"$b\"",
            log.display()
        ),
    );
    let (p1, p2) = (
        Secret::new("hunter2 x".to_string()),
        Secret::new("s3cr3t!".to_string()),
    );
    let out = tools_in(dir.path())
        .run_with_stdin(
            Tool::Sysadminctl,
            &["-secureTokenOn", "bob", "-password", "-"],
            &[&p1, &p2],
        )
        .unwrap();
    assert_eq!(out.stdout, "Password: [redacted]\n[redacted]\n");
    let argv = std::fs::read_to_string(log).unwrap();
    assert_eq!(argv, "-secureTokenOn bob -password -\n");
}

#[test]
fn a_password_in_argv_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    script(dir.path(), "dscl", &format!("touch {}", marker.display()));
    let pw = Secret::new("pa55".to_string());
    let err = tools_in(dir.path())
        .run_with_stdin(Tool::Dscl, &[".", "-authonly", "u", "pa55"], &[&pw])
        .unwrap_err();
    assert!(matches!(err, ToolError::SecretInArgv { .. }));
    assert!(!marker.exists());
}

#[test]
fn a_tool_that_hangs_is_killed_with_its_children_and_reported_as_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "diskutil", "sleep 30 & sleep 30");
    let mut tools = tools_in(dir.path());
    tools.timeout = Duration::from_millis(300);
    let err = tools.run(Tool::Diskutil, &[]).unwrap_err();
    assert!(matches!(
        err,
        ToolError::TimedOut {
            tool: "diskutil",
            ..
        }
    ));
}

#[test]
fn output_past_the_cap_is_dropped_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "fdesetup",
        "i=0; while [ $i -lt 3000 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done",
    );
    let mut tools = tools_in(dir.path());
    tools.output_cap = 1000;
    let out = tools.run(Tool::Fdesetup, &["list"]).unwrap();
    assert!(out.truncated);
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.code, Some(0));
}

#[test]
fn pty_answers_prompts_in_order_on_a_real_terminal_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    script(
        dir.path(),
        "profiles",
        &format!(
            "[ -t 0 ] && echo on-a-tty\nprintf 'Enter the admin user name: '\nread -r name\nprintf \"Enter the password for user '%s': \" \"$name\"\nread -r pw\necho \"$name:$pw\" > {}\necho 'profiles: Bootstrap Token escrowed successfully'",
            seen.display()
        ),
    );
    let pw = Secret::new("correct horse".to_string());
    let answers = [
        Answer {
            prompt: "Enter the admin user name:",
            reply: Reply::Text("alice"),
        },
        Answer {
            prompt: "Enter the password for user",
            reply: Reply::Secret(&pw),
        },
    ];
    let out = tools_in(dir.path())
        .run_in_pty(
            Tool::Profiles,
            &["install", "-type", "bootstraptoken"],
            &answers,
        )
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(seen).unwrap(),
        "alice:correct horse\n"
    );
    assert!(out.stdout.contains("on-a-tty"), "{:?}", out.stdout);
    assert!(out.stdout.contains("escrowed successfully"));
    assert!(!out.stdout.contains("correct horse"));
    assert_eq!(out.code, Some(0));
}

#[test]
fn a_pty_tool_that_never_prompts_times_out_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "profiles", "read -r x; sleep 30");
    let mut tools = tools_in(dir.path());
    tools.timeout = Duration::from_millis(300);
    let pw = Secret::new("x".to_string());
    let answers = [Answer {
        prompt: "never printed",
        reply: Reply::Secret(&pw),
    }];
    let err = tools
        .run_in_pty(Tool::Profiles, &["install"], &answers)
        .unwrap_err();
    assert!(matches!(err, ToolError::TimedOut { .. }));
}

#[test]
fn redact_replaces_echoes_of_a_secret_and_ignores_empty_secrets() {
    let s = Secret::new("ab".to_string());
    let empty = Secret::new(String::new());
    assert_eq!(
        redact("ab\nPassword: ab\r\npassword is 'ab'.\nx=ab", &[&s, &empty]),
        "[redacted]\nPassword: [redacted]\r\npassword is '[redacted]'.\nx=[redacted]"
    );
}

#[test]
fn a_short_password_is_not_redacted_inside_words() {
    let x = Secret::new("x".to_string());
    let text = "sysadminctl: user does not exist\nexit 1: xattr failed";
    assert_eq!(redact(text, &[&x]), text, "no garbling, no hint");
    // Echoed as typed, it still goes.
    assert_eq!(redact("Password:x\n", &[&x]), "Password:[redacted]\n");
    assert_eq!(redact("x\n", &[&x]), "[redacted]\n");
}

#[test]
fn a_common_word_password_leaves_messages_that_use_the_word_alone() {
    for word in ["password", "exist", "error", "admin"] {
        let pw = Secret::new(word.to_string());
        for text in [
            "Enter password for alice:",
            "the user does not exist",
            "an error occurred: error 5",
            "alice is not an admin user",
        ] {
            assert_eq!(redact(text, &[&pw]), text, "{word:?} in {text:?}");
        }
        // …but an echo of it is redacted.
        assert_eq!(
            redact(&format!("Password: {word}\n"), &[&pw]),
            "Password: [redacted]\n",
            "{word:?}"
        );
        assert_eq!(redact(&format!("{word}\n"), &[&pw]), "[redacted]\n");
    }
}

#[test]
fn a_leaked_password_in_a_tool_message_is_still_redacted() {
    let pw = Secret::new("Adm1n-pw!".to_string());
    assert_eq!(
        redact("profiles: password is Adm1n-pw! and more", &[&pw]),
        "profiles: password is [redacted] and more"
    );
    // A secret containing another is redacted whole.
    let short = Secret::new("pw".to_string());
    let long = Secret::new("pw pw".to_string());
    assert_eq!(
        redact("Password: pw pw\n", &[&short, &long]),
        "Password: [redacted]\n"
    );
}
