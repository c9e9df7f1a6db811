//! `escrowd sim`: help, errors that say what to do, and a small fleet against a real server.

use std::process::Command;

use testkit::TestServer;

fn escrowd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_escrowd"))
}

#[test]
fn sim_help_documents_every_flag_with_examples() {
    let out = escrowd().args(["sim", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--server",
        "--count",
        "--concurrency",
        "--mix",
        "--data-dir",
        "--ca-cert",
        "--ca-key",
        "--json",
    ] {
        assert!(help.contains(flag), "missing {flag} in:\n{help}");
    }
    assert!(help.contains("Examples"));
}

#[test]
fn sim_with_an_unknown_scenario_lists_the_valid_ones() {
    let out = escrowd().args(["sim", "--mix", "s42"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("choose from s1"), "{err}");
}

#[test]
fn sim_without_a_device_ca_says_where_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = escrowd()
        .args(["sim", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--ca-cert") && err.contains("escrowd serve"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_runs_a_fleet_against_a_server_and_prints_json_totals() {
    let ts = TestServer::start().await.unwrap();
    let data_dir = ts.opts.data_dir.clone();
    let server = ts.base_url();
    let out = tokio::task::spawn_blocking(move || {
        escrowd()
            .args([
                "sim",
                "--count",
                "7",
                "--concurrency",
                "3",
                "--json",
                "--server",
                &server,
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["macs"], 7);
    assert_eq!(v["enrolled"], 7);
    assert_eq!(v["escrowed"], 4, "one each of s1, s4, s5, s7");
    assert_eq!(v["failed_macs"], 0);
    assert!(v["requests"].as_u64().unwrap() > 7 * 3);
    assert_eq!(ts.store().count_enrollments().await.unwrap(), 7);
}
