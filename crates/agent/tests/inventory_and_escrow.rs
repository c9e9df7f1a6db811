//! End-to-end: `escrow-agent inventory`, the Bootstrap Token actions and self-service `escrow`, run as the
//! real binary against fake macOS tools.

mod support;

use support::typical_mac;

#[test]
fn inventory_json_reports_admin_token_filevault_and_volume_owner_per_local_user() {
    let mut mac = typical_mac();
    mac.add_user("ladmin_ade", 480, "Managed Admin", "m4naged", false, true);
    let run = mac.agent(
        &["inventory", "--json", "--managed-admin", "ladmin_ade"],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let inv = run.json();
    let users = inv["users"].as_array().unwrap();
    let names: Vec<&str> = users
        .iter()
        .map(|u| u["short_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alice", "ladmin", "ladmin_ade"],
        "system users stay out, the managed admin is in"
    );
    let ladmin = &users[1];
    assert_eq!(ladmin["admin"], true);
    assert_eq!(ladmin["secure_token"], true);
    assert_eq!(ladmin["secure_token_tag"], true);
    assert_eq!(ladmin["filevault"], true);
    assert_eq!(ladmin["volume_owner"], true);
    let alice = &users[0];
    assert_eq!(alice["real_name"], "Alice B. Zoë");
    assert_eq!(
        (alice["admin"].clone(), alice["secure_token"].clone()),
        (false.into(), false.into())
    );
    assert_eq!(alice["volume_owner"], false);
    assert_eq!(users[2]["managed_admin"], true);
    assert_eq!(
        inv["bootstrap_token"],
        serde_json::json!({"supported": true, "escrowed": false})
    );
    assert_eq!(inv["os_version"], "14.6");
    assert_eq!(inv["problems"], serde_json::json!([]));
}

#[test]
fn inventory_on_intel_has_no_volume_owner_facts() {
    let mut mac = typical_mac();
    mac.set("arch", "intel");
    let inv = mac.agent(&["inventory", "--json"], &[]).json();
    assert!(
        inv["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["volume_owner"].is_null())
    );
}

#[test]
fn inventory_prints_a_table_by_default_and_reports_failed_sources() {
    let mut mac = typical_mac();
    mac.unset("apfs");
    let run = mac.agent(&["inventory"], &[]);
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout.contains("Secure Token") && run.stdout.contains("Alice B. Zoë"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("not APFS"), "{}", run.stderr);
}

#[test]
fn bootstrap_token_escrow_validate_and_remove_actions_are_verified() {
    let mut mac = typical_mac();
    fn act(name: &str) -> [&str; 5] {
        ["action", name, "--admin", "ladmin", "--json"]
    }
    let run = mac.agent(&act("escrow-bootstrap-token"), &["Adm1n-pw!"]);
    assert_eq!(
        run.json()["result"]["outcome"],
        "bootstrap_token_escrowed",
        "{}{}",
        run.stdout,
        run.stderr
    );
    let run = mac.agent(&act("validate-bootstrap-token"), &["Adm1n-pw!"]);
    assert_eq!(run.json()["result"]["outcome"], "bootstrap_token_validated");
    mac.unset("bt_on_server"); // the server lost it; `status` still says YES
    let run = mac.agent(&act("validate-bootstrap-token"), &["Adm1n-pw!"]);
    assert_eq!(run.json()["error"], "bootstrap_token_not_validated");
    let run = mac.agent(&act("remove-bootstrap-token"), &["Adm1n-pw!"]);
    assert_eq!(run.json()["result"]["outcome"], "bootstrap_token_removed");
    let argv = mac.argv_log();
    assert!(argv.contains("profiles install -type bootstraptoken\n"));
    assert!(argv.contains("profiles validate -type bootstraptoken -user ladmin\n"));
}

#[test]
fn bootstrap_token_escrow_with_a_wrong_password_or_old_os_fails_with_the_reason() {
    let mut mac = typical_mac();
    let args = [
        "action",
        "escrow-bootstrap-token",
        "--admin",
        "ladmin",
        "--json",
    ];
    assert_eq!(
        mac.agent(&args, &["Bad-Pw-123"]).json()["error"],
        "wrong_admin_password"
    );
    mac.set("os_version", "10.14.6");
    assert_eq!(
        mac.agent(&args, &["Adm1n-pw!"]).json()["error"],
        "os_too_old"
    );
}

const ESCROW: [&str; 4] = ["escrow", "--console-user", "ladmin", "--json"];

#[test]
fn self_service_escrow_asks_once_installs_rechecks_and_validates() {
    let mut mac = typical_mac();
    let run = mac.agent(&ESCROW, &["Adm1n-pw!"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["result"], "escrowed_and_validated");
    assert!(
        run.stderr
            .contains("not stored on your organisation's server"),
        "welcome screen: {}",
        run.stderr
    );
    assert!(run.stderr.contains("stored on the server and verified"));
    let argv = mac.argv_log();
    let order: Vec<&str> = argv
        .lines()
        .filter(|l| {
            l.starts_with("fdesetup") || l.starts_with("profiles") || l.contains("-authonly")
        })
        .collect();
    assert_eq!(
        order,
        [
            "fdesetup list",
            "profiles status -type bootstraptoken",
            "dscl . -authonly ladmin",
            "profiles install -type bootstraptoken",
            "profiles status -type bootstraptoken",
            "profiles validate -type bootstraptoken -user ladmin",
        ]
    );
}

#[test]
fn self_service_escrow_gives_three_tries_then_fails() {
    let mut mac = typical_mac();
    let run = mac.agent(&ESCROW, &["Guess-1", "Guess-2", "Guess-3", "Adm1n-pw!"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "too_many_tries");
    assert_eq!(mac.argv_log().matches("-authonly").count(), 3);
    assert!(!mac.argv_log().contains("profiles install"));
}

#[test]
fn self_service_escrow_accepts_a_correct_password_on_the_third_try() {
    let mut mac = typical_mac();
    let run = mac.agent(&ESCROW, &["Guess-1", "Guess-2", "Adm1n-pw!"]);
    assert_eq!(
        run.json()["result"],
        "escrowed_and_validated",
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Password incorrect"));
}

#[test]
fn self_service_escrow_requires_an_exact_filevault_user_not_a_substring() {
    let mut mac = typical_mac();
    mac.add_user("admin", 505, "Admin", "Adm-pw-505", false, true); // "admin" is a substring of "ladmin"
    let run = mac.agent(
        &["escrow", "--console-user", "admin", "--json"],
        &["Adm-pw-505"],
    );
    assert_eq!(run.json()["error"], "not_filevault_user");
    assert!(run.stderr.contains("not a FileVault user"));
}

#[test]
fn self_service_escrow_ends_early_when_already_escrowed_or_unsupported() {
    let mut mac = typical_mac();
    mac.set("bt_escrowed", "YES");
    assert_eq!(mac.agent(&ESCROW, &[]).json()["result"], "already_escrowed");
    mac.set("bt_supported", "NO");
    assert_eq!(mac.agent(&ESCROW, &[]).json()["error"], "not_supported");
}

#[test]
fn self_service_escrow_for_a_standard_filevault_user_fails_as_not_admin_before_asking() {
    let mut mac = typical_mac();
    mac.add_user("fv", 503, "FV User", "Fv-pw-503", true, false);
    let run = mac.agent(
        &["escrow", "--console-user", "fv", "--json"],
        &["Fv-pw-503"],
    );
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "not_admin");
    assert!(!mac.argv_log().contains("-authonly"));
}

#[test]
fn self_service_escrow_cancelled_at_the_prompt_fails_cleanly() {
    let mut mac = typical_mac();
    let run = mac.agent(&ESCROW, &[]);
    assert_eq!(run.json()["error"], "cancelled");
    assert!(run.stderr.contains("cancelled"));
}

#[test]
fn self_service_escrow_ended_after_a_wrong_password_is_a_wrong_password() {
    let mut mac = typical_mac();
    let run = mac.agent(&ESCROW, &["Guess-1"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "wrong_password", "{}", run.stderr);
    assert!(run.stderr.contains("wrong password"), "{}", run.stderr);
    assert!(!run.stderr.contains("cancelled"), "{}", run.stderr);
    assert!(!mac.argv_log().contains("profiles install"));
}

#[test]
fn self_service_escrow_refuses_when_nobody_is_at_the_console() {
    let mut mac = typical_mac();
    let run = mac.agent(&["escrow", "--console-user", "root", "--json"], &[]);
    assert_eq!(run.json()["error"], "no_console_user");
}

#[test]
fn launchd_plist_prints_a_daemon_running_this_binary_with_absolute_paths() {
    let mut mac = typical_mac();
    let run = mac.agent(
        &[
            "launchd-plist",
            "--state",
            "rel/state.json",
            "--interval",
            "120",
            "--managed-admin",
            "ladmin",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: plist::Value = plist::from_bytes(run.stdout.as_bytes()).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(d["Label"].as_string(), Some("com.escrowd.agent"));
    let args: Vec<&str> = d["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap())
        .collect();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_escrow-agent")).unwrap();
    assert_eq!(std::fs::canonicalize(args[0]).unwrap(), exe);
    assert_eq!(args[1..3], ["run", "--state"]);
    assert!(args[3].starts_with('/') && args[3].ends_with("rel/state.json"));
    assert_eq!(
        args[4..],
        ["--interval", "120", "--managed-admin", "ladmin"]
    );
    for key in ["RunAtLoad", "KeepAlive"] {
        assert_eq!(d[key].as_boolean(), Some(true), "{key}");
    }
    for key in ["StandardOutPath", "StandardErrorPath"] {
        assert!(
            d[key].as_string().unwrap().starts_with("/var/log/"),
            "{key}"
        );
    }
    assert!(d.contains_key("ProcessType"));
    // Bad interval: clap says why.
    let run = mac.agent(&["launchd-plist", "--interval", "1"], &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--interval"), "{}", run.stderr);
}

#[test]
fn launchd_plist_install_off_macos_or_without_root_says_why() {
    if cfg!(target_os = "macos") {
        return;
    }
    let mut mac = typical_mac();
    let run = mac.agent(&["launchd-plist", "--install"], &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("only on macOS"), "{}", run.stderr);
    assert!(!std::path::Path::new("/Library/LaunchDaemons/com.escrowd.agent.plist").exists());
}

#[test]
fn self_service_escrow_on_an_unregistered_mac_says_the_server_was_not_told() {
    let mut mac = typical_mac();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("state.json");
    let mut args = ESCROW.to_vec();
    args.extend(["--state", missing.to_str().unwrap()]);
    let run = mac.agent(&args, &["Adm1n-pw!"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["result"], "escrowed_and_validated");
    assert_eq!(v["server"]["reason"], "not_registered");
}
