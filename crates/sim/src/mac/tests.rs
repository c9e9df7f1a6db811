//! One test per rule of §1.2–§1.7 (and a few cross-checks), named as specifications.

use protocol::command::ObliterationBehavior;

use super::*;

const PW: &str = "correct horse";

fn mac(os: OsVersion, arch: Arch, enrollment: Enrollment) -> Mac {
    Mac::new(MacSpec {
        udid: format!("UDID-{os}-{arch:?}-{enrollment:?}"),
        arch,
        os,
        enrollment,
        filevault: true,
        bt_capability: true,
    })
}

fn v(major: u16, minor: u16) -> OsVersion {
    OsVersion::new(major, minor, 0)
}

fn local(name: &str, admin: bool) -> AddUser {
    AddUser::new(name, admin, UserKind::Local, Some(PW))
}

fn holder(m: &Mac, name: &str) -> bool {
    m.user(name).map(|u| u.secure_token).unwrap_or(false)
}

/// An AS ADE Mac on 14 with `ladmin` from Setup Assistant, escrowed.
fn escrowed_mac() -> Mac {
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let Some(Checkin::SetBootstrapToken(t)) = m.login("ladmin", PW).unwrap() else {
        panic!("the first token-holder login must escrow");
    };
    m.escrow_answered(&t, true);
    m
}

#[test]
fn setup_assistant_user_gets_the_first_token_and_owns_the_volume() {
    // §1.2 rule 1, §1.4
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let u = m.user("ladmin").unwrap();
    assert!(u.secure_token && u.volume_owner);
}

#[test]
fn intel_macs_have_no_volume_owners() {
    let mut m = mac(v(14, 0), Arch::Intel, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let u = m.user("ladmin").unwrap();
    assert!(u.secure_token && !u.volume_owner);
}

#[test]
fn on_11_and_later_the_first_plain_text_password_takes_the_first_token_before_any_login() {
    // §1.2 rule 2
    let mut m = mac(v(13, 0), Arch::AppleSilicon, Enrollment::Manual);
    m.add_user(local("scripted", false)).unwrap();
    assert!(holder(&m, "scripted"));
    m.add_user(local("second", false)).unwrap();
    assert!(!holder(&m, "second"), "only the first one");
}

#[test]
fn on_10_15_a_plain_text_password_alone_gives_no_token() {
    // §1.2 rule 2 is macOS 11+ only.
    let mut m = mac(v(10, 15), Arch::Intel, Enrollment::Manual);
    m.add_user(local("scripted", true)).unwrap();
    assert!(!holder(&m, "scripted"));
}

#[test]
fn dscl_passwd_counts_as_a_plain_text_password_on_11_and_later() {
    // §1.2 rule 2
    let mut m = mac(v(12, 0), Arch::Intel, Enrollment::Manual);
    m.add_user(AddUser::new("later", false, UserKind::Local, None))
        .unwrap();
    assert!(!holder(&m, "later"));
    m.set_password_plain("later", PW).unwrap();
    assert!(holder(&m, "later"));
}

#[test]
fn disabled_tags_secure_token_set_first_keeps_the_first_token_away() {
    // §1.2 rule 2
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.add_user(local("svc", true).disabling_secure_token())
        .unwrap();
    assert!(!holder(&m, "svc"));
    m.login("svc", PW).unwrap();
    assert!(!holder(&m, "svc"), "the tag also blocks the token at login");
    m.add_user(local("next", false)).unwrap();
    assert!(holder(&m, "next"), "the next plain-text user takes it");
}

#[test]
fn ade_managed_admin_is_excluded_until_its_first_graphical_login() {
    // §1.2 rule 3, §1.7
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.create_managed_admin("mgmt", PW).unwrap();
    assert!(m.awaiting_configuration);
    assert!(!holder(&m, "mgmt"));
    m.device_configured();
    let sent = m.login("mgmt", PW).unwrap();
    assert!(holder(&m, "mgmt"));
    assert!(matches!(sent, Some(Checkin::SetBootstrapToken(_))));
}

#[test]
fn on_10_14_the_first_local_login_takes_the_token_but_never_a_network_account() {
    // §1.2 rule 4
    let mut m = mac(v(10, 14), Arch::Intel, Enrollment::Manual);
    m.add_user(AddUser::new("net", false, UserKind::Network, Some(PW)))
        .unwrap();
    m.login("net", PW).unwrap();
    assert!(!holder(&m, "net"));
    m.add_user(AddUser::new("mob", false, UserKind::Mobile, Some(PW)))
        .unwrap();
    m.login("mob", PW).unwrap();
    assert!(!holder(&m, "mob"), "mobile accounts join the rule in 10.15");
    m.add_user(local("first", false)).unwrap();
    assert_eq!(m.login("first", PW).unwrap(), None, "10.14 has no BT");
    assert!(holder(&m, "first"));
}

#[test]
fn on_10_15_the_first_mobile_account_to_log_in_takes_the_token() {
    // §1.2 rule 4
    let mut m = mac(v(10, 15), Arch::Intel, Enrollment::Ade);
    m.add_user(AddUser::new("mob", false, UserKind::Mobile, Some(PW)))
        .unwrap();
    m.login("mob", PW).unwrap();
    assert!(holder(&m, "mob"));
}

#[test]
fn skipped_account_creation_leaves_no_holder_and_nothing_escrows() {
    // §1.2 rule 5
    let m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    assert!(!m.has_token_holder());
    assert!(m.bootstrap_token.is_none());
}

#[test]
fn adding_a_user_with_a_token_admins_credentials_grants_a_token_and_ownership() {
    // §1.3 rows 1–2, §1.4
    let mut m = escrowed_mac();
    m.add_user(local("std", false).authorized_by("ladmin", PW))
        .unwrap();
    let u = m.user("std").unwrap();
    assert!(u.secure_token && u.volume_owner);
}

#[test]
fn adding_a_user_without_a_token_admins_credentials_gives_no_token() {
    // §1.3 row 3
    let mut m = escrowed_mac();
    m.add_user(local("plain", true)).unwrap();
    assert!(!holder(&m, "plain"));
}

#[test]
fn a_wrong_admin_password_refuses_the_creation() {
    let mut m = escrowed_mac();
    let err = m
        .add_user(local("x", false).authorized_by("ladmin", "nope"))
        .unwrap_err();
    assert_eq!(err, MacError::BadCredentials("ladmin".into()));
    assert!(m.user("x").is_err());
}

#[test]
fn secure_token_on_with_a_token_holding_admin_grants() {
    // §1.3 row 4
    let mut m = escrowed_mac();
    m.add_user(local("std", false)).unwrap();
    m.secure_token_on("std", PW, "ladmin", PW).unwrap();
    assert!(holder(&m, "std"));
}

#[test]
fn secure_token_on_with_an_admin_lacking_a_token_fails() {
    // §1.3 row 4, S7
    let mut m = escrowed_mac();
    m.add_user(local("other", true)).unwrap();
    m.add_user(local("std", false)).unwrap();
    let err = m.secure_token_on("std", PW, "other", PW).unwrap_err();
    assert_eq!(err, MacError::AdminLacksSecureToken("other".into()));
}

#[test]
fn secure_token_on_fails_when_nobody_holds_a_token() {
    // §1.3 row 5
    let mut m = mac(v(10, 15), Arch::Intel, Enrollment::Manual);
    m.add_user(local("a", true)).unwrap();
    m.add_user(local("b", true)).unwrap();
    assert_eq!(
        m.secure_token_on("a", PW, "b", PW).unwrap_err(),
        MacError::NoTokenHolder
    );
}

#[test]
fn secure_token_off_removes_token_and_ownership() {
    let mut m = escrowed_mac();
    m.add_user(local("std", false).authorized_by("ladmin", PW))
        .unwrap();
    m.secure_token_off("std", PW, "ladmin", PW).unwrap();
    let u = m.user("std").unwrap();
    assert!(!u.secure_token && !u.volume_owner);
}

#[test]
fn on_11_and_later_any_local_user_gets_a_token_from_the_escrowed_bt_at_login() {
    // §1.3 row 6, §1.4, §1.6
    let mut m = escrowed_mac();
    m.add_user(local("std", false)).unwrap();
    let sent = m.login("std", PW).unwrap();
    let reason = FetchReason::Login("std".into());
    assert_eq!(sent, Some(Checkin::GetBootstrapToken(reason.clone())));
    assert!(!holder(&m, "std"), "not before the server answers");
    let token = m.bootstrap_token.clone().unwrap().bytes();
    assert_eq!(
        m.bootstrap_token_served(&reason, Some(&token)),
        Served::Matched
    );
    let u = m.user("std").unwrap();
    assert!(u.secure_token && u.volume_owner);
}

#[test]
fn on_10_15_only_mobile_accounts_and_the_managed_admin_fetch_the_bt() {
    // §1.3 row 7
    let mut m = mac(v(10, 15), Arch::Intel, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let Some(Checkin::SetBootstrapToken(t)) = m.login("ladmin", PW).unwrap() else {
        panic!("10.15 ADE escrows");
    };
    m.escrow_answered(&t, true);
    m.add_user(local("loc", false)).unwrap();
    assert_eq!(m.login("loc", PW).unwrap(), None);
    m.add_user(AddUser::new("mob", false, UserKind::Mobile, Some(PW)))
        .unwrap();
    assert!(matches!(
        m.login("mob", PW).unwrap(),
        Some(Checkin::GetBootstrapToken(FetchReason::Login(_)))
    ));
}

#[test]
fn an_empty_or_foreign_token_from_the_server_grants_nothing() {
    let mut m = escrowed_mac();
    m.add_user(local("std", false)).unwrap();
    let reason = FetchReason::Login("std".into());
    assert_eq!(m.bootstrap_token_served(&reason, Some(b"")), Served::Empty);
    assert_eq!(m.bootstrap_token_served(&reason, None), Served::Empty);
    assert_eq!(
        m.bootstrap_token_served(&reason, Some(b"not mine")),
        Served::Mismatch
    );
    assert!(!holder(&m, "std"));
}

#[test]
fn without_an_escrowed_bt_a_later_login_gets_no_token() {
    // S5 step 1
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.bt_capability = false;
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    assert_eq!(m.login("ladmin", PW).unwrap(), None);
    m.add_user(local("std", false)).unwrap();
    assert_eq!(m.login("std", PW).unwrap(), None);
    assert!(!holder(&m, "std"));
}

#[test]
fn set_bootstrap_token_needs_enrollment_capability_and_a_recent_enough_os() {
    // §1.5 preconditions
    let mut m = mac(v(10, 15), Arch::Intel, Enrollment::Manual);
    assert_eq!(m.can_escrow(), Err(MacError::NotEnrolled), "10.15.0 manual");
    m.os = OsVersion::new(10, 15, 4);
    assert_eq!(m.can_escrow(), Ok(()), "10.15.4 UAMDM is enough");
    m.bt_capability = false;
    assert_eq!(m.can_escrow(), Err(MacError::CapabilityNotAdvertised));
    m.os = v(10, 14);
    assert!(matches!(
        m.can_escrow(),
        Err(MacError::BootstrapTokenNotSupported(_))
    ));
}

#[test]
fn a_refused_escrow_is_not_marked_and_the_next_holder_login_tries_again() {
    // §1.5, S2
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let Some(Checkin::SetBootstrapToken(t)) = m.login("ladmin", PW).unwrap() else {
        panic!("escrow expected");
    };
    m.escrow_answered(&t, false);
    assert!(!m.escrowed);
    let Some(Checkin::SetBootstrapToken(again)) = m.login("ladmin", PW).unwrap() else {
        panic!("escrow expected again");
    };
    assert_eq!(again, t, "the same local token");
    m.escrow_answered(&again, true);
    assert!(m.escrowed);
    assert_eq!(m.login("ladmin", PW).unwrap(), None, "escrowed: no resend");
}

#[test]
fn profiles_install_needs_an_admin_holding_a_token() {
    // §1.5 trigger b
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    m.add_user(local("other", true)).unwrap();
    assert_eq!(
        m.profiles_install("other", PW).unwrap_err(),
        MacError::AdminLacksSecureToken("other".into())
    );
    assert!(matches!(
        m.profiles_install("ladmin", PW).unwrap(),
        Checkin::SetBootstrapToken(_)
    ));
}

#[test]
fn profiles_status_believes_the_last_200_while_validate_really_fetches() {
    // §1.5 "status will lie"
    let mut m = escrowed_mac();
    m.clear_answered(true); // the server dropped it behind the Mac's back
    assert_eq!(m.profiles_status(), (true, true));
    assert_eq!(
        m.profiles_validate("ladmin", PW).unwrap(),
        Checkin::GetBootstrapToken(FetchReason::Validate)
    );
    assert_eq!(
        m.profiles_validate("ladmin", "bad").unwrap_err(),
        MacError::BadCredentials("ladmin".into())
    );
}

#[test]
fn profiles_remove_deletes_locally_and_asks_the_server_to_clear() {
    // §1.5
    let mut m = escrowed_mac();
    assert_eq!(m.profiles_remove().unwrap(), Checkin::ClearBootstrapToken);
    assert!(m.bootstrap_token.is_none() && !m.escrowed);
}

#[test]
fn software_update_on_apple_silicon_needs_an_escrowed_bt_allowed_for_authentication() {
    // §1.4, §1.6
    let m = escrowed_mac();
    assert_eq!(
        m.owner_authorized_action(FetchReason::SoftwareUpdate)
            .unwrap(),
        Some(Checkin::GetBootstrapToken(FetchReason::SoftwareUpdate))
    );
    let mut disallowed = m.clone();
    disallowed.bt_auth = BtAuth::Disallowed;
    assert_eq!(
        disallowed
            .owner_authorized_action(FetchReason::KextApproval)
            .unwrap_err(),
        MacError::OwnerAuthorizationRequired
    );
    let intel = mac(v(14, 0), Arch::Intel, Enrollment::Ade);
    assert_eq!(
        intel
            .owner_authorized_action(FetchReason::SoftwareUpdate)
            .unwrap(),
        None,
        "Intel has no owner gate"
    );
}

#[test]
fn bt_authentication_is_allowed_automatically_only_for_ade_on_apple_silicon() {
    // §1.1
    assert_eq!(
        mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade).bt_auth,
        BtAuth::Allowed
    );
    assert_eq!(
        mac(v(14, 0), Arch::AppleSilicon, Enrollment::Manual).bt_auth,
        BtAuth::Disallowed
    );
    assert_eq!(
        mac(v(14, 0), Arch::Intel, Enrollment::Ade).bt_auth,
        BtAuth::NotSupported
    );
}

#[test]
fn erase_with_an_escrowed_bt_runs_eacs_and_is_acknowledged() {
    // §1.6
    let mut m = escrowed_mac();
    assert_eq!(
        m.erase_preflight(),
        Some(Checkin::GetBootstrapToken(FetchReason::EraseDevice))
    );
    assert_eq!(m.finish_erase(true, None), EraseOutcome::Acknowledged);
    assert!(m.users.is_empty() && m.bootstrap_token.is_none());
}

#[test]
fn erase_without_a_bt_errors_then_obliterates_by_default_or_stops_with_do_not_obliterate() {
    // §1.6, [A4]
    let mut m = mac(v(14, 0), Arch::AppleSilicon, Enrollment::Ade);
    m.setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    assert_eq!(m.erase_preflight(), None);
    let mut keep = m.clone();
    assert_eq!(
        keep.finish_erase(false, Some(ObliterationBehavior::DoNotObliterate)),
        EraseOutcome::ErrorNotErased
    );
    assert_eq!(keep.erase_count, 0);
    assert_eq!(
        m.finish_erase(false, Some(ObliterationBehavior::Default)),
        EraseOutcome::ErrorThenObliterated
    );
    assert_eq!(m.erase_count, 1);
}

#[test]
fn crypto_users_list_holders_the_recovery_user_and_the_bt_key() {
    // §1.1, §1.8
    let m = escrowed_mac();
    let kinds: Vec<_> = m.crypto_users().iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            CryptoUserKind::LocalOpenDirectoryUser,
            CryptoUserKind::PersonalRecoveryUser,
            CryptoUserKind::BootstrapTokenExternalKey
        ]
    );
    assert!(m.crypto_users().iter().all(|c| c.volume_owner));
    assert_eq!(m.crypto_users()[1].uuid, PERSONAL_RECOVERY_USER_GUID);
}

#[test]
fn macs_older_than_10_13_have_no_secure_tokens() {
    // S9
    let mut m = mac(v(10, 12), Arch::Intel, Enrollment::Manual);
    m.setup_assistant_create_user(local("old", true)).unwrap();
    assert!(!m.has_token_holder());
    m.add_user(local("b", true)).unwrap();
    assert!(matches!(
        m.secure_token_on("b", PW, "old", PW),
        Err(MacError::SecureTokenNotApplicable(_))
    ));
}

#[test]
fn hashing_a_token_holders_password_puts_the_token_out_of_sync() {
    // §1.3 last row
    let mut m = escrowed_mac();
    m.set_password_hash("ladmin", "rotated").unwrap();
    let u = m.user("ladmin").unwrap();
    assert!(u.secure_token && u.token_out_of_sync);
}

#[test]
fn debug_output_never_shows_the_bootstrap_token_bytes() {
    let m = escrowed_mac();
    let hex = m.bootstrap_token.clone().unwrap().hex;
    assert!(!format!("{m:?}").contains(&hex));
}

#[test]
fn os_versions_parse_compare_and_round_trip() {
    assert_eq!(OsVersion::parse("10.15.4"), Some(OsVersion::new(10, 15, 4)));
    assert_eq!(OsVersion::parse("26"), Some(OsVersion::new(26, 0, 0)));
    for bad in ["", "x", "1.2.3.4", "14.-1", "99999999"] {
        assert_eq!(OsVersion::parse(bad), None, "{bad}");
    }
    assert!(OsVersion::new(10, 15, 4) < OsVersion::new(11, 0, 0));
    assert_eq!(OsVersion::new(14, 0, 0).to_string(), "14.0");
}

#[test]
fn state_round_trips_through_json() {
    let m = escrowed_mac();
    let json = serde_json::to_string(&m).unwrap();
    let back: Mac = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn eacs_preflight_succeeds_only_with_an_escrowed_allowed_token_on_apple_silicon() {
    let mut m = Mac::new(MacSpec::apple_silicon_ade("EACS"));
    assert_eq!(m.eacs_preflight(), "no bootstrap token exists on this Mac");
    m.device_configured();
    m.setup_assistant_create_user(AddUser::new("a", true, UserKind::Local, Some("p")))
        .unwrap();
    let Some(Checkin::SetBootstrapToken(t)) = m.login("a", "p").unwrap() else {
        panic!("escrow expected");
    };
    assert_eq!(
        m.eacs_preflight(),
        "bootstrap token is not escrowed to the MDM server"
    );
    m.escrow_answered(&t, true);
    assert_eq!(m.eacs_preflight(), "success");
    m.bt_auth = BtAuth::Disallowed;
    assert_eq!(
        m.eacs_preflight(),
        "bootstrap token is not allowed for authentication"
    );
    let intel = Mac::new(MacSpec {
        arch: Arch::Intel,
        ..MacSpec::apple_silicon_ade("EACS-I")
    });
    assert_eq!(intel.eacs_preflight(), "not supported");
}

#[test]
fn account_configuration_needs_setup_assistant_and_makes_a_tokenless_hash_admin() {
    let hash = protocol::accounts::PasswordHash {
        entropy: {
            let mut e = vec![0u8; 128];
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(
                b"pw",
                b"salt-salt-salt-salt-salt-salt-32",
                1000,
                &mut e,
            );
            e
        },
        salt: b"salt-salt-salt-salt-salt-salt-32".to_vec(),
        iterations: 1000,
    };
    let config = protocol::accounts::AccountConfiguration {
        admin: Some(protocol::accounts::AutoSetupAdmin {
            short_name: "mgmt".into(),
            full_name: "M".into(),
            password_hash: hash,
            hidden: true,
        }),
        skip_primary_setup_account_creation: true,
        ..Default::default()
    };
    let mut m = Mac::new(MacSpec::apple_silicon_ade("AC"));
    m.account_configuration(&config).unwrap();
    let mgmt = m.user("mgmt").unwrap();
    assert!(mgmt.admin && !mgmt.secure_token && mgmt.password_digest.is_none());
    assert!(m.password_matches("mgmt", "pw") && !m.password_matches("mgmt", "nope"));
    m.finish_setup_assistant(Some(AddUser::new("jdoe", true, UserKind::Local, Some("p"))))
        .unwrap();
    assert!(m.user("jdoe").is_err(), "primary account skipped");
    assert!(!m.has_token_holder());
    // Too late: Setup Assistant is over.
    assert_eq!(
        m.account_configuration(&config),
        Err(MacError::NotAwaitingConfiguration)
    );
    // §1.2 rule 3: the first graphical login gives the hash admin the first token.
    m.login("mgmt", "pw").unwrap();
    assert!(m.user("mgmt").unwrap().secure_token);
}
