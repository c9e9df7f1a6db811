//! End-to-end: the agent against tools that print garbage, too much, too little, or hang. It must report a
//! clean reason and never panic or guess.

mod support;

use support::typical_mac;

#[test]
fn garbage_from_every_tool_becomes_problems_in_the_inventory_not_a_crash() {
    let mut mac = typical_mac();
    for tool in ["sysadminctl", "fdesetup", "diskutil", "profiles"] {
        mac.set(
            &format!("override_{tool}"),
            "\u{1b}[31m\u{0}garbage ☃ \u{fffd}\n",
        );
    }
    let run = mac.agent(&["inventory", "--json"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let inv = run.json();
    let problems = inv["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("fdesetup list"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("diskutil"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("profiles status"))
    );
    assert!(
        inv["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["secure_token"].is_null())
    );
    assert!(
        !run.stdout.contains('\u{1b}'),
        "control characters are not echoed back"
    );
}

#[test]
fn huge_tool_output_is_capped_and_refused() {
    let mut mac = typical_mac();
    let huge = "Cryptographic users for disk3s5 (1 found)\n".to_string() + &"|\n".repeat(700_000);
    mac.set("override_diskutil", &huge);
    let inv = mac.agent(&["inventory", "--json"], &[]).json();
    let problems = inv["problems"].to_string();
    assert!(problems.contains("diskutil"), "{problems}");
    assert!(inv["crypto_users"].is_null());
}

#[test]
fn truncated_profiles_status_is_reported_not_guessed() {
    let mut mac = typical_mac();
    mac.set(
        "override_profiles",
        "profiles: Bootstrap Token supported on server: YES\n",
    );
    let inv = mac.agent(&["inventory", "--json"], &[]).json();
    assert!(inv["bootstrap_token"].is_null());
    assert!(inv["problems"].to_string().contains("cut short"));
}

#[test]
fn a_status_line_for_another_user_is_not_attributed_to_this_one() {
    let mut mac = typical_mac();
    mac.set(
        "override_sysadminctl",
        "2024-07-25 08:53:24.446 sysadminctl[1:2] Secure token is ENABLED for user Mallory\n",
    );
    let inv = mac.agent(&["inventory", "--json"], &[]).json();
    assert!(
        inv["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["secure_token"].is_null())
    );
    assert!(inv["problems"].to_string().contains("not this user"));
}

#[test]
fn a_hanging_tool_is_stopped_at_the_timeout_and_named() {
    let mut mac = typical_mac();
    mac.set("hang_profiles", "");
    let inv = mac
        .agent(&["--timeout", "1", "inventory", "--json"], &[])
        .json();
    assert!(
        inv["problems"]
            .to_string()
            .contains("`profiles` did not finish within 1 s"),
        "{}",
        inv["problems"]
    );
    assert_eq!(
        inv["users"].as_array().unwrap().len(),
        2,
        "the rest of the inventory still works"
    );
}

#[test]
fn a_grant_whose_status_read_is_garbage_fails_with_a_typed_tool_error() {
    let mut mac = typical_mac();
    mac.set("override_sysadminctl", "Segmentation fault\n");
    let run = mac.agent(
        &[
            "action",
            "grant-secure-token",
            "--user",
            "alice",
            "--admin",
            "ladmin",
            "--json",
        ],
        &["al1ce pw%", "Adm1n-pw!"],
    );
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "tool_failed");
    assert!(
        run.json()["message"]
            .as_str()
            .unwrap()
            .contains("sysadminctl output not recognised")
    );
}

#[test]
fn help_teaches_with_examples() {
    let mut mac = typical_mac();
    let run = mac.agent(&["--help"], &[]);
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout.contains("Examples:")
            && run
                .stdout
                .contains("escrow-agent action grant-secure-token")
    );
    let run = mac.agent(&["action", "grant-secure-token", "--help"], &[]);
    assert!(run.stdout.contains("Reads USER's password, then ADMIN's"));
}
