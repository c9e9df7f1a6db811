//! `escrowd admin`: console admin accounts made offline in the data directory's database.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use service::console_admins::{self, SignInError};

fn escrowd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn sign_in(dir: &std::path::Path, name: &str, password: &str) -> Result<(), SignInError> {
    let url = server::datadir::DataDir::new(dir).database_url();
    let store = store::connect(&url).await.unwrap();
    let r = console_admins::sign_in(store.as_ref(), 1_000_000, name, password, None).await;
    store.close().await;
    r.map(|_| ())
}

#[test]
fn admin_help_teaches_roles_password_stdin_and_examples() {
    let out = escrowd(&["admin", "create", "--help"], "");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--role",
        "--password-stdin",
        "read",
        "operate",
        "admin",
        "12 characters",
        "Examples",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let out = escrowd(&["admin", "--help"], "");
    let help = text(&out.stdout);
    for sub in ["create", "list", "disable", "passwd"] {
        assert!(help.contains(sub), "{sub} missing from:\n{help}");
    }
}

#[tokio::test]
async fn admin_create_list_passwd_disable_offline() {
    let dir = tempfile::tempdir().unwrap();
    let dd = dir.path().display().to_string();
    let first = "first password of ada";
    let second = "second password of ada";

    let short = escrowd(
        &[
            "admin",
            "create",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            &dd,
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(
        text(&short.stderr).contains("at least 12 characters"),
        "{}",
        text(&short.stderr)
    );
    let bad_name = escrowd(
        &[
            "admin",
            "create",
            "a b",
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            &dd,
        ],
        &format!("{first}\n"),
    );
    assert!(!bad_name.status.success());
    assert!(
        text(&bad_name.stderr).contains("admin name"),
        "{}",
        text(&bad_name.stderr)
    );
    let bad_role = escrowd(
        &[
            "admin",
            "create",
            "ada",
            "--role",
            "root",
            "--password-stdin",
            "--data-dir",
            &dd,
        ],
        &format!("{first}\n"),
    );
    assert!(!bad_role.status.success());

    let created = escrowd(
        &[
            "admin",
            "create",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            &dd,
        ],
        &format!("{first}\n"),
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains("Created console admin ada with role admin"));
    let again = escrowd(
        &[
            "admin",
            "create",
            "ada",
            "--role",
            "read",
            "--password-stdin",
            "--data-dir",
            &dd,
        ],
        &format!("{first}\n"),
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );

    let list = escrowd(&["admin", "list", "--json", "--data-dir", &dd], "");
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed[0]["name"], "ada");
    assert_eq!(listed[0]["role"], "admin");
    assert!(listed[0]["disabled_at"].is_null());
    let table = text(&escrowd(&["admin", "list", "--data-dir", &dd], "").stdout);
    assert!(
        table.contains("ada") && !table.contains("argon2"),
        "{table}"
    );
    testkit::assert_no_secret(format!("{listed}{table}"), &[first.as_bytes()]);
    assert!(sign_in(dir.path(), "ada", first).await.is_ok());

    let passwd = escrowd(
        &[
            "admin",
            "passwd",
            "ada",
            "--password-stdin",
            "--data-dir",
            &dd,
        ],
        &format!("{second}\n"),
    );
    assert!(passwd.status.success(), "{}", text(&passwd.stderr));
    assert!(matches!(
        sign_in(dir.path(), "ada", first).await,
        Err(SignInError::Refused)
    ));
    assert!(sign_in(dir.path(), "ada", second).await.is_ok());

    let disable = escrowd(&["admin", "disable", "ada", "--data-dir", &dd], "");
    assert!(disable.status.success(), "{}", text(&disable.stderr));
    assert!(matches!(
        sign_in(dir.path(), "ada", second).await,
        Err(SignInError::Refused)
    ));
    let twice = escrowd(&["admin", "disable", "ada", "--data-dir", &dd], "");
    assert!(!twice.status.success());
    let listed: serde_json::Value = serde_json::from_slice(
        &escrowd(&["admin", "list", "--json", "--data-dir", &dd], "").stdout,
    )
    .unwrap();
    assert!(listed[0]["disabled_at"].is_i64());
}
