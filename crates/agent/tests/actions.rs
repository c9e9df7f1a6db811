//! End-to-end: the real `escrow-agent` binary performing Secure Token actions against fake macOS tools.

mod support;

use support::{FakeMac, typical_mac};

const GRANT: [&str; 7] = [
    "action",
    "grant-secure-token",
    "--user",
    "alice",
    "--admin",
    "ladmin",
    "--json",
];

#[test]
fn grant_secure_token_succeeds_and_a_fresh_read_confirms_it() {
    let mut mac = typical_mac();
    let run = mac.agent(&GRANT, &["al1ce pw%", "Adm1n-pw!"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["result"]["outcome"], "secure_token_granted");
    assert!(mac.has_token("alice"));
    let argv = mac.argv_log();
    assert!(argv.contains(
        "sysadminctl -secureTokenOn alice -password - -adminUser ladmin -adminPassword -"
    ));
    assert!(
        argv.lines()
            .filter(|l| l.starts_with("sysadminctl -secureTokenStatus alice"))
            .count()
            >= 2
    );
}

#[test]
fn grant_with_a_wrong_admin_password_fails_as_wrong_admin_password() {
    let mut mac = typical_mac();
    let run = mac.agent(&GRANT, &["al1ce pw%", "not-the-admin-pw"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "wrong_admin_password");
    assert!(!mac.has_token("alice"));
    assert!(
        !mac.argv_log().contains("-secureTokenOn"),
        "must stop before acting"
    );
}

#[test]
fn grant_by_an_admin_without_a_token_fails_as_admin_lacks_token() {
    let mut mac = typical_mac();
    mac.add_user("helpdesk", 503, "Help Desk", "h3lp", false, true);
    let run = mac.agent(
        &[
            "action",
            "grant-secure-token",
            "--user",
            "alice",
            "--admin",
            "helpdesk",
            "--json",
        ],
        &["al1ce pw%", "h3lp"],
    );
    assert_eq!(run.json()["error"], "admin_lacks_token", "{}", run.stdout);
    assert!(!mac.has_token("alice"));
}

#[test]
fn grant_when_nobody_holds_a_token_fails_as_no_token_holder() {
    let mut mac = FakeMac::new();
    mac.add_user("ladmin", 501, "Local Admin", "Adm1n-pw!", false, true);
    mac.add_user("alice", 502, "Alice", "al1ce pw%", false, false);
    let run = mac.agent(&GRANT, &["al1ce pw%", "Adm1n-pw!"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "no_token_holder");
}

#[test]
fn grant_on_an_os_too_old_or_a_non_apfs_volume_fails_with_that_reason() {
    let mut mac = typical_mac();
    mac.set("os_version", "10.12.6");
    assert_eq!(
        mac.agent(&GRANT, &["al1ce pw%", "Adm1n-pw!"]).json()["error"],
        "os_too_old"
    );
    mac.set("os_version", "10.13.6");
    mac.unset("apfs");
    assert_eq!(
        mac.agent(&GRANT, &["al1ce pw%", "Adm1n-pw!"]).json()["error"],
        "not_apfs"
    );
}

#[test]
fn a_grant_that_sysadminctl_reports_done_but_did_not_do_is_not_verified() {
    let mut mac = typical_mac();
    mac.set("lie", "");
    let run = mac.agent(&GRANT, &["al1ce pw%", "Adm1n-pw!"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["error"], "not_verified");
}

#[test]
fn a_wrong_target_password_fails_as_wrong_user_password() {
    let mut mac = typical_mac();
    let run = mac.agent(&GRANT, &["Wr0ng-guess", "Adm1n-pw!"]);
    assert_eq!(run.json()["error"], "wrong_user_password");
}

#[test]
fn granting_to_someone_who_already_holds_a_token_reports_that_without_acting() {
    let mut mac = typical_mac();
    mac.add_user("bob", 503, "Bob", "b0b", true, false);
    let run = mac.agent(
        &[
            "action",
            "grant-secure-token",
            "--user",
            "bob",
            "--admin",
            "ladmin",
            "--json",
        ],
        &["b0b", "Adm1n-pw!"],
    );
    assert_eq!(run.json()["result"]["outcome"], "already_had_secure_token");
    assert!(!mac.argv_log().contains("-secureTokenOn"));
}

#[test]
fn create_user_makes_an_admin_with_a_verified_secure_token() {
    let mut mac = typical_mac();
    let run = mac.agent(
        &[
            "action",
            "create-user",
            "--user",
            "carol",
            "--full-name",
            "Carol D",
            "--make-admin",
            "--admin",
            "ladmin",
            "--json",
        ],
        &["c4rol pw", "Adm1n-pw!"],
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.json()["result"],
        serde_json::json!({"outcome": "user_created", "user": "carol", "admin": true})
    );
    assert!(mac.has_token("carol"));
    assert!(mac.admins().contains(&"carol".to_string()));
    let again = mac.agent(
        &[
            "action",
            "create-user",
            "--user",
            "carol",
            "--full-name",
            "Carol D",
            "--admin",
            "ladmin",
            "--json",
        ],
        &["c4rol pw", "Adm1n-pw!"],
    );
    assert_eq!(again.json()["error"], "user_exists");
}

#[test]
fn secure_token_off_works_but_is_refused_for_the_last_holder() {
    let mut mac = typical_mac();
    mac.add_user("bob", 503, "Bob", "b0b", true, false);
    let off = [
        "action",
        "secure-token-off",
        "--user",
        "bob",
        "--admin",
        "ladmin",
        "--json",
    ];
    let run = mac.agent(&off, &["b0b", "Adm1n-pw!"]);
    assert_eq!(
        run.json()["result"]["outcome"],
        "secure_token_removed",
        "{}",
        run.stdout
    );
    assert!(!mac.has_token("bob"));
    let last = mac.agent(
        &[
            "action",
            "secure-token-off",
            "--user",
            "ladmin",
            "--admin",
            "ladmin",
            "--json",
        ],
        &["Adm1n-pw!", "Adm1n-pw!"],
    );
    assert_eq!(last.json()["error"], "last_token_holder");
    assert!(mac.has_token("ladmin"));
}

#[test]
fn transfer_promotes_a_standard_token_holder_grants_verifies_and_demotes() {
    let mut mac = FakeMac::new();
    mac.add_user("first", 501, "First User", "f1rst", true, false);
    mac.add_user("second", 502, "Second User", "s3cond", false, false);
    let run = mac.agent(
        &[
            "action",
            "transfer-secure-token",
            "--from",
            "first",
            "--to",
            "second",
            "--json",
        ],
        &["f1rst", "s3cond"],
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["result"]["promoted_temporarily"], true);
    assert!(mac.has_token("second"));
    assert!(
        !mac.admins().contains(&"first".to_string()),
        "must be demoted again"
    );
    let argv = mac.argv_log();
    assert!(argv.contains("dscl . -append /Groups/admin GroupMembership first"));
    assert!(argv.contains("dscl . -delete /Groups/admin GroupMembership first"));
}

#[test]
fn a_failed_transfer_still_demotes_the_temporarily_promoted_holder() {
    let mut mac = FakeMac::new();
    mac.add_user("first", 501, "First User", "f1rst", true, false);
    mac.add_user("second", 502, "Second User", "s3cond", false, false);
    mac.set("lie", "");
    let run = mac.agent(
        &[
            "action",
            "transfer-secure-token",
            "--from",
            "first",
            "--to",
            "second",
            "--json",
        ],
        &["f1rst", "s3cond"],
    );
    assert_eq!(run.json()["error"], "not_verified");
    assert!(!mac.admins().contains(&"first".to_string()));
}

#[test]
fn missing_passwords_on_stdin_fail_with_advice_not_a_panic() {
    let mut mac = typical_mac();
    let run = mac.agent(&GRANT, &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no password given"), "{}", run.stderr);
}
