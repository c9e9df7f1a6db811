//! Outputs compared byte for byte with §1.8 of macos-tokens-and-admin-needs.md.

use super::*;
use crate::mac::{AddUser, Arch, Checkin, Enrollment, MacSpec, OsVersion, UserKind};

const PW: &str = "pw";

fn log() -> NsLog {
    NsLog {
        timestamp: "2024-07-25 08:53:24.446".into(),
        pid: 35601,
        thread: 822344,
    }
}

fn sh(mac: &mut Mac, tool: &str, args: &str) -> ToolOutput {
    sh_in(mac, tool, args, &[])
}

fn sh_in(mac: &mut Mac, tool: &str, args: &str, input: &[&str]) -> ToolOutput {
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    let mut stdin = input.iter().map(|s| s.to_string());
    run(tool, &args, mac, &log(), &mut stdin).0
}

fn mac(arch: Arch) -> Mac {
    let mut m = Mac::new(MacSpec {
        arch,
        ..MacSpec::apple_silicon_ade("TOOLS")
    });
    let mut admin = AddUser::new("jmiller", true, UserKind::Local, Some(PW));
    admin.real_name = "Joshua D. Miller".into();
    m.setup_assistant_create_user(admin).unwrap();
    m
}

fn escrow(m: &mut Mac) {
    let Some(Checkin::SetBootstrapToken(t)) = m.login("jmiller", PW).unwrap() else {
        panic!("escrow expected");
    };
    m.escrow_answered(&t, true);
}

#[test]
fn profiles_status_prints_the_two_documented_lines() {
    let mut m = mac(Arch::AppleSilicon);
    let out = sh(&mut m, "profiles", "status -type bootstraptoken");
    assert_eq!(
        out.stdout,
        "profiles: Bootstrap Token supported on server: YES\nprofiles: Bootstrap Token escrowed to server: NO\n"
    );
    assert_eq!((out.stderr.as_str(), out.code), ("", 0));
    escrow(&mut m);
    let out = sh(&mut m, "profiles", "status -type bootstraptoken");
    assert!(out.stdout.ends_with("escrowed to server: YES\n"));
}

#[test]
fn profiles_status_without_server_support_prints_one_line() {
    let mut m = mac(Arch::Intel);
    m.bt_capability = false;
    let out = sh(&mut m, "profiles", "status -type bootstraptoken");
    assert_eq!(
        out.stdout,
        "profiles: Bootstrap Token supported on server: NO\n"
    );
}

#[test]
fn profiles_install_prompts_for_admin_and_password_then_escrows() {
    let mut m = mac(Arch::AppleSilicon);
    let out = sh_in(
        &mut m,
        "profiles",
        "install -type bootstraptoken",
        &["jmiller", PW],
    );
    assert_eq!(
        out.stdout,
        "Enter the admin user name:Enter the password for user 'jmiller':profiles: Bootstrap Token escrowed successfully\n"
    );
    assert!(m.escrowed && m.server_copy.is_some());
    assert!(!out.stdout.contains(PW) && !out.stderr.contains(PW));
}

#[test]
fn profiles_install_accepts_both_flag_forms_and_refuses_bad_credentials() {
    let mut m = mac(Arch::AppleSilicon);
    let bad = sh(
        &mut m,
        "profiles",
        "install -type bootstraptoken -user=jmiller -password=nope",
    );
    assert_eq!(
        (bad.stderr.as_str(), bad.code),
        ("Unable to authenticate user information.\n", 1)
    );
    let ok = sh(
        &mut m,
        "profiles",
        "install -type bootstraptoken -user jmiller -password pw",
    );
    assert_eq!(ok.code, 0, "{ok:?}");
}

#[test]
fn profiles_validate_succeeds_fails_on_credentials_and_on_a_lost_token() {
    let mut m = mac(Arch::AppleSilicon);
    escrow(&mut m);
    let args = "validate -type bootstraptoken -user jmiller -password pw";
    assert_eq!(
        sh(&mut m, "profiles", args).stdout,
        "profiles: Bootstrap Token validated.\n"
    );
    let bad = sh(
        &mut m,
        "profiles",
        "validate -type bootstraptoken -user jmiller -password x",
    );
    assert_eq!(bad.stderr, "Unable to authenticate user information.\n");
    m.server_copy = None;
    let lost = sh(&mut m, "profiles", args);
    assert_eq!(lost.stderr, "Unable to verify token (err = -69594).\n");
    // status still believes the last 200 (§1.5).
    assert!(
        sh(&mut m, "profiles", "status -type bootstraptoken")
            .stdout
            .contains("escrowed to server: YES")
    );
}

#[test]
fn secure_token_status_is_an_nslog_line_on_stderr_naming_the_real_name() {
    let mut m = mac(Arch::AppleSilicon);
    sh(&mut m, "sysadminctl", "-addUser ec2-user -password pw");
    let out = sh(&mut m, "sysadminctl", "-secureTokenStatus jmiller");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "2024-07-25 08:53:24.446 sysadminctl[35601:822344] Secure token is ENABLED for user Joshua D. Miller\n"
    );
    let off = sh(&mut m, "sysadminctl", "-secureTokenStatus ec2-user");
    assert_eq!(
        off.stderr,
        "2024-07-25 08:53:24.446 sysadminctl[35601:822344] Secure token is DISABLED for user ec2-user\n"
    );
    // Scripts read field 7 with 2>&1.
    assert_eq!(out.stderr.split_whitespace().nth(6), Some("ENABLED"));
}

#[test]
fn secure_token_on_logs_done_and_failures_still_exit_zero() {
    let mut m = mac(Arch::AppleSilicon);
    m.add_user(AddUser::new("std", false, UserKind::Local, Some(PW)))
        .unwrap();
    let bad = sh(
        &mut m,
        "sysadminctl",
        "-secureTokenOn std -password pw -adminUser jmiller -adminPassword x",
    );
    assert_eq!(bad.code, 0);
    assert!(
        bad.stderr
            .ends_with("Operation is not permitted without secure token unlock.\n")
    );
    let ok = sh_in(
        &mut m,
        "sysadminctl",
        "-secureTokenOn std -password - -adminUser jmiller -adminPassword -",
        &[PW, PW],
    );
    assert!(ok.stderr.trim_end().ends_with("Done"), "{ok:?}");
    assert!(m.user("std").unwrap().secure_token);
}

#[test]
fn reset_password_for_a_token_holder_without_unlock_prints_the_error_and_exits_zero() {
    let mut m = mac(Arch::AppleSilicon);
    let out = sh(
        &mut m,
        "sysadminctl",
        "-resetPasswordFor jmiller -newPassword new",
    );
    assert_eq!(
        out.stderr,
        "2024-07-25 08:53:24.446 sysadminctl[35601:822344] Operation is not permitted without secure token unlock.\n"
    );
    assert_eq!(out.code, 0);
    assert!(m.password_matches("jmiller", PW), "unchanged");
}

#[test]
fn reset_password_by_a_token_admin_keeps_the_token_in_sync_and_a_tokenless_admin_is_not_permitted()
{
    let mut m = mac(Arch::AppleSilicon);
    m.add_user(AddUser::new("helper", true, UserKind::Local, Some(PW)))
        .unwrap();
    m.add_user(
        AddUser::new("alice", false, UserKind::Local, Some(PW)).authorized_by("jmiller", PW),
    )
    .unwrap();
    assert!(m.user("alice").unwrap().secure_token && !m.user("helper").unwrap().secure_token);
    let refused = sh_in(
        &mut m,
        "sysadminctl",
        "-resetPasswordFor alice -newPassword - -adminUser helper -adminPassword -",
        &["new", PW],
    );
    assert!(refused.stderr.contains("not permitted"), "{refused:?}");
    assert_eq!(refused.code, 0, "macOS exits 0 anyway");
    assert!(m.password_matches("alice", PW), "unchanged");
    let done = sh_in(
        &mut m,
        "sysadminctl",
        "-resetPasswordFor alice -newPassword - -adminUser jmiller -adminPassword -",
        &["new", PW],
    );
    assert!(done.stderr.trim_end().ends_with("Done"), "{done:?}");
    let alice = m.user("alice").unwrap();
    assert!(m.password_matches("alice", "new"));
    assert!(alice.secure_token && !alice.token_out_of_sync);
}

#[test]
fn fdesetup_list_prints_shortname_comma_guid_per_filevault_user() {
    let mut m = mac(Arch::AppleSilicon);
    let guid = m.user("jmiller").unwrap().guid.clone();
    assert_eq!(
        sh(&mut m, "fdesetup", "list").stdout,
        format!("jmiller,{guid}\n")
    );
}

#[test]
fn fdesetup_list_extended_has_os_user_recovery_record_and_bootstrap_rows() {
    let mut m = mac(Arch::AppleSilicon);
    escrow(&mut m);
    let guid = m.user("jmiller").unwrap().guid.clone();
    let bt = m.bootstrap_token.clone().unwrap().uuid;
    let expected = format!(
        "ESCROW  UUID                                                    TYPE USER\n\
         {pad}{guid}{os:>37} jmiller\n\
         {pad}EBC6C064-0000-11AA-AA11-00306543ECAC{prr:>37}\n\
         {pad}{bt}{btt:>37}\n",
        pad = "        ",
        os = "OS User",
        prr = "Personal Recovery Record",
        btt = "Bootstrap Token"
    );
    assert_eq!(sh(&mut m, "fdesetup", "list -extended").stdout, expected);
}

#[test]
fn listcryptousers_on_intel_has_no_volume_owner_lines() {
    let mut m = mac(Arch::Intel);
    escrow(&mut m);
    let guid = m.user("jmiller").unwrap().guid.clone();
    let bt = m.bootstrap_token.clone().unwrap().uuid;
    let expected = format!(
        "Cryptographic users for disk1s5 (3 found)\n|\n+-- {guid}\n|   Type: Local Open Directory User\n|\n\
         +-- EBC6C064-0000-11AA-AA11-00306543ECAC\n|   Type: Personal Recovery User\n|\n\
         +-- {bt}\n    Type: MDM Bootstrap Token External Key\n"
    );
    assert_eq!(
        sh(&mut m, "diskutil", "apfs listcryptousers /").stdout,
        expected
    );
    assert_eq!(
        sh(&mut m, "diskutil", "apfs listUsers /").stdout,
        expected,
        "alias"
    );
}

#[test]
fn listcryptousers_on_apple_silicon_adds_volume_owner_lines() {
    let mut m = mac(Arch::AppleSilicon);
    let guid = m.user("jmiller").unwrap().guid.clone();
    let expected = format!(
        "Cryptographic users for disk3s5 (2 found)\n|\n+-- {guid}\n|   Type: Local Open Directory User\n\
         |   Volume Owner: Yes\n|\n+-- EBC6C064-0000-11AA-AA11-00306543ECAC\n    Type: Personal Recovery User\n\
         \x20   Volume Owner: Yes\n"
    );
    assert_eq!(
        sh(&mut m, "diskutil", "apfs listcryptousers /").stdout,
        expected
    );
}

#[test]
fn dscl_shows_secure_token_and_disabled_tags_in_authentication_authority() {
    let mut m = Mac::new(MacSpec {
        os: OsVersion::new(14, 0, 0),
        enrollment: Enrollment::Manual,
        ..MacSpec::apple_silicon_ade("DSCL")
    });
    m.add_user(AddUser::new("svc", true, UserKind::Local, None))
        .unwrap();
    sh(
        &mut m,
        "dscl",
        ". -append /Users/svc AuthenticationAuthority ;DisabledTags;SecureToken",
    );
    sh(&mut m, "dscl", ". -passwd /Users/svc pw");
    assert!(
        !m.user("svc").unwrap().secure_token,
        "tag set first (§1.2 rule 2)"
    );
    let out = sh(&mut m, "dscl", ". -read /Users/svc AuthenticationAuthority");
    assert!(
        out.stdout.ends_with(" ;DisabledTags;SecureToken\n"),
        "{out:?}"
    );
    assert_eq!(sh(&mut m, "dscl", "/Search -authonly svc pw").code, 0);
    assert_ne!(sh(&mut m, "dscl", "/Search -authonly svc nope").code, 0);
}

#[test]
fn unknown_tools_and_verbs_fail_with_usage_not_panics() {
    let mut m = mac(Arch::AppleSilicon);
    for (tool, args) in [
        ("ls", ""),
        ("profiles", ""),
        ("profiles", "status -type configuration"),
        ("sysadminctl", ""),
        ("fdesetup", "status"),
        ("diskutil", "list"),
        ("dscl", ". -delete /Users/x"),
        ("dscl", ". -read /Users/nobody"),
        ("sysadminctl", "-secureTokenOn"),
    ] {
        let out = sh(&mut m, tool, args);
        assert_ne!(out.code, 0, "{tool} {args}");
        assert!(!out.stderr.is_empty(), "{tool} {args}");
    }
}

#[test]
fn dscl_wraps_a_real_name_with_spaces_onto_the_next_line() {
    let mut m = mac(Arch::AppleSilicon);
    sh(&mut m, "sysadminctl", "-addUser jdoe -password pw");
    assert_eq!(
        sh(&mut m, "dscl", ". -read /Users/jmiller RealName").stdout,
        "RealName:\n Joshua D. Miller\n"
    );
    assert_eq!(
        sh(&mut m, "dscl", ". -read /Users/jdoe RealName").stdout,
        "RealName: jdoe\n"
    );
}

#[test]
fn dscl_answers_the_agents_reads_uid_list_records_and_admin_group() {
    let mut m = mac(Arch::AppleSilicon);
    sh_in(&mut m, "sysadminctl", "-addUser jdoe -password -", &["pw"]);
    let list = sh(&mut m, "dscl", ". -list /Users UniqueID").stdout;
    // Sorted by name, system accounts included (a reader skips UIDs below 501).
    let rows: Vec<(&str, i64)> = list
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            (f.next().unwrap(), f.next().unwrap().parse().unwrap())
        })
        .collect();
    assert!(rows.contains(&("root", 0)), "{list}");
    let jmiller = m.user("jmiller").unwrap().uid;
    assert!(
        rows.contains(&("jmiller", jmiller)) && jmiller >= 501,
        "{list}"
    );
    assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "{list}");

    let guid = m.user("jmiller").unwrap().guid.clone();
    let read = sh(
        &mut m,
        "dscl",
        ". -read /Users/jmiller UniqueID RealName GeneratedUID AuthenticationAuthority",
    );
    assert_eq!(
        read.stdout,
        format!(
            "AuthenticationAuthority: ;ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2,SRP-RFC5054-4096-SHA512-PBKDF2> ;SecureToken;\n\
             GeneratedUID: {guid}\nRealName:\n Joshua D. Miller\nUniqueID: {jmiller}\n"
        )
    );
    let unknown = sh(&mut m, "dscl", ". -read /Users/jmiller UniqueID Shoesize");
    assert_eq!(unknown.stdout, format!("UniqueID: {jmiller}\n"));
    assert_eq!(unknown.stderr, "No such key: Shoesize\n");

    let group = |m: &mut Mac| sh(m, "dscl", ". -read /Groups/admin GroupMembership").stdout;
    assert_eq!(group(&mut m), "GroupMembership: root jmiller\n");
    assert_eq!(
        sh(
            &mut m,
            "dscl",
            ". -append /Groups/admin GroupMembership jdoe"
        )
        .code,
        0
    );
    assert!(m.user("jdoe").unwrap().admin);
    assert_eq!(group(&mut m), "GroupMembership: root jmiller jdoe\n");
    assert_eq!(
        sh(
            &mut m,
            "dscl",
            ". -delete /Groups/admin GroupMembership jdoe"
        )
        .code,
        0
    );
    assert!(!m.user("jdoe").unwrap().admin);
    // Promotion never touches tokens.
    assert!(!m.user("jdoe").unwrap().secure_token);
    for bad in [
        ". -append /Groups/admin GroupMembership nosuchuser",
        ". -append /Groups/admin Shoesize jdoe",
        ". -append /Groups/admin GroupMembership",
        ". -list /Users Shoesize",
    ] {
        let out = sh(&mut m, "dscl", bad);
        assert_ne!(out.code, 0, "{bad}");
        assert!(!out.stderr.is_empty(), "{bad}");
    }
}

#[test]
fn dscl_authonly_prompts_when_the_password_is_not_an_argument() {
    let mut m = mac(Arch::AppleSilicon);
    let ok = sh_in(&mut m, "dscl", ". -authonly jmiller", &[PW]);
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "Password:"));
    let bad = sh_in(&mut m, "dscl", ". -authonly jmiller", &["nope"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("eDSAuthFailed"), "{}", bad.stderr);
    assert!(!bad.stdout.contains("nope") && !bad.stderr.contains("nope"));
    // No answer at all (stdin closed) is a failed authentication, not a panic.
    assert_ne!(sh(&mut m, "dscl", ". -authonly jmiller").code, 0);
}

#[test]
fn profiles_validate_prompts_for_the_password_it_was_not_given() {
    let mut m = mac(Arch::AppleSilicon);
    escrow(&mut m);
    let ok = sh_in(
        &mut m,
        "profiles",
        "validate -type bootstraptoken -user jmiller",
        &[PW],
    );
    assert_eq!(
        ok.stdout,
        "Enter the password for user 'jmiller':profiles: Bootstrap Token validated.\n"
    );
    let bad = sh_in(
        &mut m,
        "profiles",
        "validate -type bootstraptoken -user jmiller",
        &["wrong"],
    );
    assert_eq!(bad.stderr, "Unable to authenticate user information.\n");
}

#[test]
fn sw_vers_reports_the_models_version() {
    let mut m = mac(Arch::AppleSilicon);
    let v = m.os.to_string();
    assert_eq!(
        sh(&mut m, "sw_vers", "-productVersion").stdout,
        format!("{v}\n")
    );
    assert!(
        sh(&mut m, "sw_vers", "")
            .stdout
            .contains(&format!("ProductVersion:\t\t{v}"))
    );
    assert_eq!(sh(&mut m, "sw_vers", "-bogus").code, 64);
}
