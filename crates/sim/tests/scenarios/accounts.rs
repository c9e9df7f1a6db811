//! Zero-touch accounts (issue 12): AccountConfiguration from a group's managed-admin setting, DeviceConfigured
//! for every Mac that awaits configuration, and macOS's rule that an admin created from a hash holds no Secure
//! Token until its first graphical login (§1.2 rule 3, §1.7, scenario S4). MDMOptions always go as a full set.

use protocol::command::Command;
use service::accounts::GroupAccountsInput;
use service::apikeys::Actor;
use sim::VirtualMac;
use sim::client::SetupPlan;
use sim::mac::{Arch, Enrollment, Mac, MacSpec, OsVersion, UserKind};
use sim::reports;
use store::PrimaryAccount;
use testkit::TestServer;

use super::common::*;

/// Authenticate, put the Mac in `group` (as an enrollment token would), then the TokenUpdate that completes
/// enrollment with AwaitingConfiguration true; Setup Assistant will create `primary` after DeviceConfigured.
async fn enroll_into(
    ts: &TestServer,
    spec: MacSpec,
    group: Option<&str>,
    primary: Option<sim::mac::AddUser>,
) -> VirtualMac {
    let ca = ts.device_ca().unwrap();
    let mut vm = VirtualMac::new(Mac::new(spec), &ca, &ts.base_url()).unwrap();
    vm.setup_plan = Some(SetupPlan { primary });
    let body = reports::authenticate(&vm.mac).unwrap();
    assert_eq!(vm.checkin("Authenticate", body).await.unwrap().0, 200);
    if let Some(g) = group {
        ts.store()
            .set_enrollment_group(&vm.mac.udid, Some(g))
            .await
            .unwrap();
    }
    let body = reports::token_update(&vm.mac).unwrap();
    assert_eq!(vm.checkin("TokenUpdate", body).await.unwrap().0, 200);
    vm
}

async fn group_with_admin(
    ts: &TestServer,
    name: &str,
    primary: PrimaryAccount,
) -> (String, Vec<String>) {
    let mdm = &ts.running().state.mdm;
    let by = Actor::offline("test");
    let g = mdm
        .admin_create_group(name, true, false, &by)
        .await
        .unwrap();
    let input = GroupAccountsInput {
        admin_short_name: "mgmt".into(),
        admin_full_name: Some("Management".into()),
        admin_hidden: true,
        primary_account: primary,
        dont_auto_populate_primary_account_info: false,
        lock_primary_account_info: false,
        primary_account_full_name: None,
        primary_account_user_name: None,
    };
    let set = mdm
        .admin_set_group_accounts(&g.id, Some(&input), &by)
        .await
        .unwrap();
    (g.id, set.warnings)
}

async fn request_types(ts: &TestServer, udid: &str) -> Vec<String> {
    let mut h = ts.store().command_history(udid, 100).await.unwrap();
    h.reverse();
    h.into_iter().map(|c| c.request_type).collect()
}

/// S4 through the server: the group skips the primary account and escrowd creates `mgmt` from a hash. After
/// setup nobody holds a token and nothing escrows (escrowd warned); `mgmt`'s first graphical login with the
/// password escrowd generated gives it the first token and escrows.
#[tokio::test]
async fn a_zero_touch_admin_from_a_hash_gets_the_first_token_only_at_its_first_graphical_login() {
    let ts = server().await;
    let (group, warnings) = group_with_admin(&ts, "Skip", PrimaryAccount::Skip).await;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no Secure Token holder")),
        "{warnings:?}"
    );
    let mut vm = enroll_into(
        &ts,
        MacSpec::apple_silicon_ade("ACC-S4"),
        Some(&group),
        Some(local("ladmin", true)),
    )
    .await;
    vm.poll().await.unwrap();
    let types = request_types(&ts, "ACC-S4").await;
    let ac = types
        .iter()
        .position(|t| t == "AccountConfiguration")
        .expect("AccountConfiguration");
    let dc = types
        .iter()
        .position(|t| t == "DeviceConfigured")
        .expect("DeviceConfigured");
    assert!(ac < dc, "{types:?}");
    assert!(!vm.mac.awaiting_configuration, "Setup Assistant went on");
    let mgmt = vm.mac.user("mgmt").unwrap().clone();
    assert_eq!(mgmt.kind, UserKind::ManagedAdmin);
    assert!(mgmt.admin && !mgmt.secure_token && mgmt.shadow_hash.is_some());
    assert!(vm.mac.user("ladmin").is_err(), "primary account skipped");
    assert!(!vm.mac.has_token_holder());
    assert!(
        server_token(&ts, "ACC-S4").await.is_none(),
        "nothing escrowed"
    );

    // The password escrowd generated, sealed, opens the hash-created account (PBKDF2 checked by the model).
    let password = ts
        .running()
        .state
        .mdm
        .managed_admin_password("ACC-S4")
        .await
        .unwrap()
        .expect("sealed password");
    assert!(vm.login("mgmt", "wrong").await.is_err());
    let d = vm
        .login("mgmt", password.expose())
        .await
        .unwrap()
        .expect("SetBootstrapToken");
    assert_eq!(d.status, 200);
    assert!(vm.mac.user("mgmt").unwrap().secure_token);
    assert!(server_token(&ts, "ACC-S4").await.is_some());
    // The password never shows in events.
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    for e in &events {
        testkit::assert_no_secret(&e.detail, &[password.expose().as_bytes()]);
    }
}

/// A standard primary account beside the hash admin: no token holder after setup (S4), and escrowd warned;
/// the first graphical login (here the standard user's) then takes the first token (§1.2 rule 2, as in S7).
#[tokio::test]
async fn a_standard_primary_account_beside_the_hash_admin_leaves_no_token_holder() {
    let ts = server().await;
    let (group, warnings) = group_with_admin(&ts, "Std", PrimaryAccount::Standard).await;
    assert_eq!(warnings.len(), 1);
    let mut vm = enroll_into(
        &ts,
        MacSpec::apple_silicon_ade("ACC-STD"),
        Some(&group),
        Some(local("jdoe", true)),
    )
    .await;
    vm.poll().await.unwrap();
    let jdoe = vm.mac.user("jdoe").unwrap();
    assert!(!jdoe.admin, "made standard by AccountConfiguration");
    assert!(!vm.mac.has_token_holder());
    assert!(
        server_token(&ts, "ACC-STD").await.is_none(),
        "nothing escrowed after setup"
    );
    vm.login("jdoe", PW)
        .await
        .unwrap()
        .expect("SetBootstrapToken");
    assert_eq!(vm.mac.token_holders(), ["jdoe"]);
    assert!(server_token(&ts, "ACC-STD").await.is_some());
}

/// An administrator primary account takes the first token in Setup Assistant (§1.2 rule 1): no warning, and
/// its first login escrows; the managed admin exists without a token.
#[tokio::test]
async fn an_admin_primary_account_takes_the_first_token_and_escrows() {
    let ts = server().await;
    let (group, warnings) = group_with_admin(&ts, "Admin", PrimaryAccount::Admin).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut vm = enroll_into(
        &ts,
        MacSpec::apple_silicon_ade("ACC-ADM"),
        Some(&group),
        Some(local("ladmin", true)),
    )
    .await;
    vm.poll().await.unwrap();
    assert!(vm.mac.user("ladmin").unwrap().secure_token);
    assert!(!vm.mac.user("mgmt").unwrap().secure_token);
    let d = vm
        .login("ladmin", PW)
        .await
        .unwrap()
        .expect("SetBootstrapToken");
    assert_eq!(d.status, 200);
    assert!(server_token(&ts, "ACC-ADM").await.is_some());
}

/// Every Mac that reports AwaitingConfiguration true gets DeviceConfigured: without a group, in a group
/// without a managed admin, and when the AccountConfiguration fails on the Mac (a user of that name exists).
#[tokio::test]
async fn every_mac_awaiting_configuration_gets_device_configured() {
    let ts = server().await;
    let by = Actor::offline("test");
    let plain = ts
        .running()
        .state
        .mdm
        .admin_create_group("Plain", true, false, &by)
        .await
        .unwrap();
    let (with_admin, _) = group_with_admin(&ts, "Clash", PrimaryAccount::Admin).await;
    for (udid, group) in [
        ("AWAIT-NOGROUP", None),
        ("AWAIT-PLAIN", Some(plain.id.as_str())),
        ("AWAIT-CLASH", Some(with_admin.as_str())),
    ] {
        let ca = ts.device_ca().unwrap();
        let mut vm = VirtualMac::new(
            Mac::new(MacSpec::apple_silicon_ade(udid)),
            &ca,
            &ts.base_url(),
        )
        .unwrap();
        if udid == "AWAIT-CLASH" {
            // Something else already made `mgmt`: AccountConfiguration fails on the Mac.
            vm.mac.create_managed_admin("mgmt", PW).unwrap();
        }
        let body = reports::authenticate(&vm.mac).unwrap();
        vm.checkin("Authenticate", body).await.unwrap();
        if let Some(g) = group {
            ts.store()
                .set_enrollment_group(udid, Some(g))
                .await
                .unwrap();
        }
        let body = reports::token_update(&vm.mac).unwrap();
        vm.checkin("TokenUpdate", body).await.unwrap();
        vm.poll().await.unwrap();
        assert!(
            !vm.mac.awaiting_configuration,
            "{udid}: Setup Assistant still waits"
        );
        let history = ts.store().command_history(udid, 100).await.unwrap();
        let status = |t: &str| {
            history
                .iter()
                .find(|c| c.request_type == t)
                .map(|c| c.status)
        };
        assert_eq!(
            status("DeviceConfigured"),
            Some(store::CommandStatus::Acknowledged),
            "{udid}"
        );
        let expected_ac = match udid {
            "AWAIT-CLASH" => Some(store::CommandStatus::Error),
            _ => None,
        };
        assert_eq!(status("AccountConfiguration"), expected_ac, "{udid}");
    }
    // A Mac that is not awaiting configuration (manual enrollment) gets neither.
    let manual = MacSpec {
        enrollment: Enrollment::Manual,
        ..MacSpec::apple_silicon_ade("AWAIT-MANUAL")
    };
    let mut vm = enrolled(&ts, manual).await;
    vm.poll().await.unwrap();
    let types = request_types(&ts, "AWAIT-MANUAL").await;
    assert!(
        !types
            .iter()
            .any(|t| t == "DeviceConfigured" || t == "AccountConfiguration"),
        "{types:?}"
    );
}

/// MDMOptions go as the full effective set: a 10.15 Mac in a group that prompts the user keeps that key when
/// escrow is switched back on and the server re-sends BootstrapTokenAllowed.
#[tokio::test]
async fn escrow_switched_back_on_resends_the_full_mdm_options_to_10_15_macs() {
    let ts = server().await;
    let mdm = &ts.running().state.mdm;
    let by = Actor::offline("test");
    let g = mdm
        .admin_create_group("Cat", true, true, &by)
        .await
        .unwrap();
    let spec = MacSpec {
        udid: "CAT-1".into(),
        arch: Arch::Intel,
        os: OsVersion::new(10, 15, 7),
        enrollment: Enrollment::Ade,
        filevault: true,
        bt_capability: false,
    };
    let mut vm = enroll_into(&ts, spec, Some(&g.id), Some(local("ladmin", true))).await;
    vm.poll().await.unwrap();
    let opt = |vm: &VirtualMac, k: &str| {
        vm.mac
            .mdm_options
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
    };
    assert_eq!(opt(&vm, "BootstrapTokenAllowed"), Some(true));
    assert_eq!(
        opt(&vm, "PromptUserToAllowBootstrapTokenForAuthentication"),
        Some(true)
    );
    assert!(vm.mac.bt_capability);

    let off = service::admin::GroupChange {
        bootstrap_escrow_enabled: Some(false),
        ..Default::default()
    };
    mdm.admin_update_group(&g.id, &off, &by).await.unwrap();
    // Someone resets the Mac's options (a Settings without those keys resets them on the Mac).
    run_command(
        &ts,
        &mut vm,
        Command::settings_mdm_options(new_uuid(), &Default::default()),
    )
    .await;
    assert!(!vm.mac.bt_capability);
    let on = service::admin::GroupChange {
        bootstrap_escrow_enabled: Some(true),
        ..Default::default()
    };
    mdm.admin_update_group(&g.id, &on, &by).await.unwrap();
    vm.poll().await.unwrap();
    assert_eq!(opt(&vm, "BootstrapTokenAllowed"), Some(true), "re-sent");
    assert_eq!(
        opt(&vm, "PromptUserToAllowBootstrapTokenForAuthentication"),
        Some(true),
        "the group's prompt setting was sent along, not reset"
    );
    assert!(vm.mac.bt_capability);
    let d = vm
        .login("ladmin", PW)
        .await
        .unwrap()
        .expect("escrows again");
    assert_eq!(d.status, 200);
}
