//! S10–S12 and the inventory and `profiles` checks: account creation, identity renewal, erase.

use protocol::command::{Command, ObliterationBehavior};
use sim::mac::{AddUser, FetchReason, MacSpec, Served};

use crate::common::*;

/// S10 — Factorial's account-creation table on a current Mac (AS, macOS 14, ADE, BT escrowed). Divergences
/// from the seed, following Apple (§1.3): a standard user created in Users & Groups by a token-holding admin
/// gets a token at creation; and on macOS 11+ with an escrowed BT every local user gets one at first login
/// (GetBootstrapToken), including the non-admin rows where Factorial says "no".
#[tokio::test]
async fn s10_factorial_account_creation_table() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S10")).await;
    vm.mac.create_managed_admin("policyadmin", PW).unwrap();
    device_configured(&ts, &mut vm).await;
    // Row 1: created during zero-touch (Setup Assistant) → token.
    vm.mac
        .setup_assistant_create_user(local("ztdadmin", true))
        .unwrap();
    vm.login("ztdadmin", PW).await.unwrap();
    assert!(vm.mac.escrowed);
    // (name, how it is created, token right after creation)
    let rows: Vec<(&str, AddUser, bool)> = vec![
        ("mdmstd", local("mdmstd", false), false),
        (
            "uiadmin",
            local("uiadmin", true).authorized_by("ztdadmin", PW),
            true,
        ),
        (
            "uistd",
            local("uistd", false).authorized_by("ztdadmin", PW),
            true,
        ),
        (
            "cliadmin",
            local("cliadmin", true).authorized_by("ztdadmin", PW),
            true,
        ),
        (
            "clistd",
            local("clistd", false).authorized_by("ztdadmin", PW),
            true,
        ),
        ("clinoauth", local("clinoauth", true), false),
    ];
    for (name, add, at_creation) in rows {
        vm.mac.add_user(add).unwrap();
        assert_eq!(
            vm.mac.user(name).unwrap().secure_token,
            at_creation,
            "{name} after creation"
        );
    }
    // Row 2: the "Admin account" policy (managed admin from a hash) → token at its first login.
    assert!(!vm.mac.user("policyadmin").unwrap().secure_token);
    for name in ["policyadmin", "mdmstd", "clinoauth"] {
        let d = vm
            .login(name, PW)
            .await
            .unwrap()
            .expect("GetBootstrapToken");
        assert_eq!(d.served, Some(Served::Matched), "{name}");
        assert!(
            vm.mac.user(name).unwrap().secure_token,
            "{name} after first login"
        );
    }
}

/// S11 — identity certificate renewal keeps the BT (Fleet #41167), the way Macs renew: escrowd re-sends the
/// enrollment profile with InstallProfile (same identity keys, a one-time challenge minted for this UDID); the
/// Mac gets a new certificate over SCEP, sends Authenticate + TokenUpdate with it and no SetBootstrapToken; the
/// old certificate is refused afterwards; a later GetBootstrapToken serves the kept token.
#[tokio::test]
async fn s11_identity_renewal_keeps_the_escrowed_token() {
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S11")).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.login("ladmin", PW).await.unwrap();
    let before = server_token(&ts, "S11").await.unwrap();
    let (old_cert, old_key) = vm.identity();

    let renewal = ts
        .running()
        .state
        .mdm
        .admin_renew_identity("S11", &service::apikeys::Actor::offline("s11"))
        .await
        .unwrap();
    let polled = vm.poll().await.unwrap();
    assert!(
        polled
            .answered
            .contains(&("InstallProfile".to_string(), "Acknowledged")),
        "{polled:?}"
    );
    assert_ne!(vm.cert.to_der().unwrap(), old_cert.to_der().unwrap());
    let after = server_token(&ts, "S11").await.expect("token kept");
    assert_eq!(after.digest, before.digest);
    assert_eq!(after.escrowed_at, before.escrowed_at);
    let kinds = event_kinds(&ts, "S11").await;
    assert!(
        kinds.contains(&"enrollment.identity_renewed".into()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"identity.pending".into()), "{kinds:?}");
    let e = ts.store().enrollment("S11").await.unwrap().unwrap();
    assert_eq!(
        e.cert_fingerprint.as_deref(),
        Some(pki::identity::fingerprint_sha256(&vm.cert.to_der().unwrap()).as_str())
    );
    assert!(ts.store().identity_renewal("S11").await.unwrap().is_none());
    let result = command_result(&ts, "S11", &renewal.command_uuid).await;
    let report = protocol::command::parse_report(&result).unwrap();
    assert_eq!(report.status, protocol::command::Status::Acknowledged);

    // The old certificate no longer speaks for this Mac.
    let mut impostor =
        sim::VirtualMac::with_identity(vm.mac.clone(), old_cert, old_key, &ts.base_url()).unwrap();
    let refused = impostor
        .deliver(sim::mac::Checkin::GetBootstrapToken(FetchReason::Validate))
        .await
        .unwrap();
    assert_eq!(refused.status, 400);

    vm.mac.add_user(mobile("jdoe")).unwrap();
    let d = vm.login("jdoe", PW).await.unwrap().unwrap();
    assert_eq!(d.served, Some(Served::Matched));
    assert!(server_token(&ts, "S11").await.unwrap().verified);
}

/// S12 step 1 — erase on Apple silicon with an escrowed BT: the EACS preflight fetches the BT, the Mac
/// acknowledges, escrowd clears the token. §1.6.
#[tokio::test]
async fn s12_erase_with_an_escrowed_bt_runs_eacs_and_the_server_clears_the_token() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S12A")).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.login("ladmin", PW).await.unwrap();
    let uuid = run_command(
        &ts,
        &mut vm,
        Command::erase_device(new_uuid(), None, Some(ObliterationBehavior::Default)),
    )
    .await;
    let result = command_result(&ts, "S12A", &uuid).await;
    let report = protocol::command::parse_report(&result).unwrap();
    assert_eq!(report.status, protocol::command::Status::Acknowledged);
    assert_eq!(vm.mac.erase_count, 1);
    assert!(server_token(&ts, "S12A").await.is_none());
    assert!(
        event_kinds(&ts, "S12A")
            .await
            .contains(&"bootstrap_token.requested".into())
    );
}

/// S12 step 2 — without a BT: `Default` replies Error and erases anyway by obliteration; `DoNotObliterate`
/// replies Error and keeps the Mac. §1.6. escrowd's refusal to queue an unforced erase is not built yet.
#[tokio::test]
async fn s12_erase_without_a_bt_errors_then_obliterates_unless_told_not_to() {
    let ts = server().await;
    for (udid, behavior, erased) in [
        ("S12B", ObliterationBehavior::DoNotObliterate, false),
        ("S12C", ObliterationBehavior::Default, true),
    ] {
        let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade(udid)).await;
        vm.mac.bt_capability = false;
        vm.mac
            .setup_assistant_create_user(local("ladmin", true))
            .unwrap();
        vm.login("ladmin", PW).await.unwrap();
        let uuid = run_command(
            &ts,
            &mut vm,
            Command::erase_device(new_uuid(), None, Some(behavior)),
        )
        .await;
        let report =
            protocol::command::parse_report(&command_result(&ts, udid, &uuid).await).unwrap();
        assert_eq!(report.status, protocol::command::Status::Error, "{udid}");
        assert_eq!(vm.mac.erase_count == 1, erased, "{udid}");
    }
}

/// Inventory: SecurityInfo, UserList and DeviceInformation answers parse with escrowd's own typed readers
/// and say what the model says.
#[tokio::test]
async fn inventory_answers_come_from_the_model_and_parse_on_the_server() {
    use protocol::command::{DeviceInformation, INVENTORY_DEVICE_QUERIES, SecurityInfo, UserList};
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("INV")).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.login("ladmin", PW).await.unwrap();
    let si = run_command(&ts, &mut vm, Command::security_info(new_uuid())).await;
    let ul = run_command(&ts, &mut vm, Command::user_list(new_uuid())).await;
    let di = run_command(
        &ts,
        &mut vm,
        Command::device_information(new_uuid(), INVENTORY_DEVICE_QUERIES),
    )
    .await;
    let report = |b: Vec<u8>| protocol::command::parse_report(&b).unwrap();
    let si = SecurityInfo::from_report(&report(command_result(&ts, "INV", &si).await))
        .unwrap()
        .unwrap();
    assert!(
        si.bootstrap_token_allowed_for_authentication
            .unwrap()
            .is_allowed()
    );
    assert_eq!(si.fde_enabled, Some(true));
    let ul = UserList::from_report(&report(command_result(&ts, "INV", &ul).await))
        .unwrap()
        .unwrap();
    assert_eq!(ul.users[0].user_name.as_deref(), Some("ladmin"));
    assert_eq!(ul.users[0].has_secure_token, Some(true));
    let di = DeviceInformation::from_report(&report(command_result(&ts, "INV", &di).await))
        .unwrap()
        .unwrap();
    assert_eq!(di.is_apple_silicon, Some(true));
    assert_eq!(di.eacs_preflight.as_deref(), Some("success"));
    assert_eq!(di.awaiting_configuration, Some(false));
    assert_eq!(di.os_version.as_deref(), Some("14.0"));
}

/// The Mac half of S13 and of "`profiles status` will lie" (§1.5): install escrows with a token-holding
/// admin; after the server drops the token, status still says YES but validate fetches nothing.
#[tokio::test]
async fn profiles_install_escrows_and_validate_catches_a_token_the_server_lost() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("PROF")).await;
    let mut group = put_in_group(&ts, "PROF", false).await;
    vm.mac
        .setup_assistant_create_user(local("jdoe", true))
        .unwrap();
    vm.login("jdoe", PW).await.unwrap();
    assert!(!vm.mac.escrowed);
    set_escrow(&ts, &mut group, true).await;
    assert_eq!(vm.profiles_install("jdoe", PW).await.unwrap().status, 200);
    assert_eq!(
        vm.profiles_validate("jdoe", PW).await.unwrap().served,
        Some(Served::Matched)
    );

    let event = store::NewEvent {
        subject: "PROF".into(),
        enrollment_id: Some("PROF".into()),
        kind: store::EventKind::TokenCleared,
        outcome: store::Outcome::Success,
        detail: "admin cleared".into(),
        at: 0,
    };
    ts.store()
        .clear_bootstrap_token("PROF", &event)
        .await
        .unwrap();
    assert_eq!(vm.mac.profiles_status(), (true, true), "status lies");
    assert_eq!(
        vm.profiles_validate("jdoe", PW).await.unwrap().served,
        Some(Served::Empty)
    );
}

/// §1.4, §1.6: an MDM-authorised software update on Apple silicon fetches the BT; without one escrowed, it
/// needs a person with an owner's credentials.
#[tokio::test]
async fn software_update_on_apple_silicon_fetches_the_escrowed_token() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("SWU")).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let no_bt = vm
        .owner_authorized_action(FetchReason::SoftwareUpdate)
        .await;
    assert!(matches!(
        no_bt,
        Err(sim::client::ClientError::Mac(
            sim::mac::MacError::OwnerAuthorizationRequired
        ))
    ));
    vm.login("ladmin", PW).await.unwrap();
    let d = vm
        .owner_authorized_action(FetchReason::SoftwareUpdate)
        .await
        .unwrap()
        .expect("GetBootstrapToken");
    assert_eq!(d.served, Some(Served::Matched));
    assert!(server_token(&ts, "SWU").await.unwrap().verified);
}

/// Removing the MDM profile sends CheckOut; escrowd drops the token (ARCHITECTURE invariant) and the Mac no
/// longer believes it is escrowed.
#[tokio::test]
async fn removing_the_mdm_profile_checks_out_and_the_server_drops_the_token() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("OUT")).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.login("ladmin", PW).await.unwrap();
    assert!(server_token(&ts, "OUT").await.is_some());
    assert_eq!(vm.remove_mdm_profile().await.unwrap().status, 200);
    assert!(server_token(&ts, "OUT").await.is_none());
    assert_eq!(vm.mac.profiles_status(), (false, false));
}
