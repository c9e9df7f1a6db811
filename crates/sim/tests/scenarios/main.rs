//! The acceptance stories of `shared/docs/scenarios.md`, each a virtual Mac against a real escrowd over the
//! wire protocol. Rules are cited from `macos-tokens-and-admin-needs.md` §1. Where the server half is not
//! built yet (status/diagnosis views, guard rails, agent grants), the test checks the Mac half and says so.

mod accounts;
#[path = "../common/mod.rs"]
mod common;
mod hostile;
mod lifecycle;

use common::*;
use service::status::DeviceStatus;
use sim::mac::{
    AddUser, Arch, Enrollment, FetchReason, MacError, MacSpec, OsVersion, Served, UserKind,
};

fn spec(udid: &str, os: OsVersion, arch: Arch) -> MacSpec {
    MacSpec {
        udid: udid.into(),
        arch,
        os,
        enrollment: Enrollment::Ade,
        filevault: true,
        bt_capability: true,
    }
}

/// S1 — the first admin login escrows, then a mobile account gets a Secure Token from the escrowed BT
/// (SOTI, FileWave). §1.2 rule 1, §1.5 trigger a, §1.3 row 6, §1.4.
#[tokio::test]
async fn s1_first_admin_login_escrows_and_a_later_mobile_account_gets_a_token() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S1")).await;
    put_in_group(&ts, "S1", true).await;
    device_configured(&ts, &mut vm).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let u = vm.mac.user("ladmin").unwrap();
    assert!(u.secure_token && u.volume_owner);
    assert!(
        server_token(&ts, "S1").await.is_none(),
        "Not configured yet"
    );

    let d = vm
        .login("ladmin", PW)
        .await
        .unwrap()
        .expect("SetBootstrapToken");
    assert_eq!(d.status, 200);
    assert!(server_token(&ts, "S1").await.is_some(), "Configured");
    assert_eq!(vm.mac.profiles_status(), (true, true));

    vm.mac.add_user(mobile("jdoe")).unwrap();
    let d = vm
        .login("jdoe", PW)
        .await
        .unwrap()
        .expect("GetBootstrapToken");
    assert_eq!(d.served, Some(Served::Matched));
    let jdoe = vm.mac.user("jdoe").unwrap();
    assert!(jdoe.secure_token && jdoe.volume_owner);
    let fv: Vec<_> = vm
        .mac
        .filevault_users()
        .iter()
        .map(|u| u.short_name.clone())
        .collect();
    assert!(fv.contains(&"jdoe".to_string()));
    let rec = server_token(&ts, "S1").await.unwrap();
    assert!(rec.last_requested_at.is_some() && rec.verified);
    let kinds = event_kinds(&ts, "S1").await;
    assert!(
        kinds.contains(&"bootstrap_token.escrowed".into()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"bootstrap_token.requested".into()),
        "{kinds:?}"
    );
}

/// S2 — an admin created before escrow was enabled escrows at the next admin login (SOTI). §1.5.
#[tokio::test]
async fn s2_refused_escrow_is_not_marked_and_the_next_admin_login_escrows_once_enabled() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S2")).await;
    let mut group = put_in_group(&ts, "S2", false).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let d = vm
        .login("ladmin", PW)
        .await
        .unwrap()
        .expect("SetBootstrapToken");
    assert_eq!(d.status, 400);
    assert!(!vm.mac.escrowed, "the Mac does not mark a refused escrow");
    assert!(server_token(&ts, "S2").await.is_none());
    assert!(
        event_kinds(&ts, "S2")
            .await
            .contains(&"bootstrap_token.escrow_refused".into())
    );

    set_escrow(&ts, &mut group, true).await;
    vm.mac.logout("ladmin").unwrap();
    let d = vm
        .login("ladmin", PW)
        .await
        .unwrap()
        .expect("SetBootstrapToken again");
    assert_eq!(d.status, 200);
    assert!(vm.mac.escrowed);
    assert!(server_token(&ts, "S2").await.is_some());
}

/// S3 — turning escrow off keeps the tokens already granted; a new mobile account gets none (SOTI). §1.3.
#[tokio::test]
async fn s3_turning_escrow_off_keeps_granted_tokens_and_new_accounts_get_none() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S3")).await;
    let mut group = put_in_group(&ts, "S3", true).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.login("ladmin", PW).await.unwrap();
    vm.mac.add_user(mobile("jdoe")).unwrap();
    vm.login("jdoe", PW).await.unwrap();
    assert!(vm.mac.user("jdoe").unwrap().secure_token);

    set_escrow(&ts, &mut group, false).await;
    assert!(
        vm.mac.user("jdoe").unwrap().secure_token,
        "nothing on the Mac changes"
    );
    vm.mac.add_user(mobile("asmith")).unwrap();
    let d = vm
        .login("asmith", PW)
        .await
        .unwrap()
        .expect("GetBootstrapToken");
    assert_eq!((d.status, d.served), (200, Some(Served::Empty)));
    assert!(!vm.mac.user("asmith").unwrap().secure_token);
    assert!(
        vm.mac
            .filevault_users()
            .iter()
            .all(|u| u.short_name != "asmith")
    );

    // SOTI's meanings: the kept token makes it Configured, and the group's switch is the reason beside it,
    // never NA (NA is for Macs that do not support a Bootstrap Token).
    let d = ts.store().device_record("S3").await.unwrap().unwrap();
    assert_eq!(d.status(), service::status::BootstrapStatus::Escrowed);
    assert_eq!(
        d.status_reason().as_deref(),
        Some("escrow is off for group Lab S3")
    );
    // The Mac removes its own token (`profiles remove -type bootstraptoken`): honoured although escrow is
    // off, and the Mac is then Not configured, still with the reason.
    let d = vm.profiles_remove().await.unwrap();
    assert_eq!(d.status, 200);
    assert!(
        server_token(&ts, "S3").await.is_none(),
        "the kept token is gone"
    );
    let d = ts.store().device_record("S3").await.unwrap().unwrap();
    assert_eq!(d.status(), service::status::BootstrapStatus::NotEscrowed);
    assert_eq!(
        d.status_reason().as_deref(),
        Some("escrow is off for group Lab S3")
    );
}

/// S4 — a managed admin auto-created during enrollment suppresses escrow until its first GUI login
/// (FileWave). §1.2 rules 3 and 5, §1.7. The server's diagnosis text is not built yet.
#[tokio::test]
async fn s4_managed_admin_from_a_hash_escrows_only_at_its_first_graphical_login() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S4")).await;
    vm.mac.create_managed_admin("mgmt", PW).unwrap();
    device_configured(&ts, &mut vm).await;
    assert!(!vm.mac.has_token_holder());
    assert!(server_token(&ts, "S4").await.is_none(), "nothing escrowed");

    let d = vm
        .login("mgmt", PW)
        .await
        .unwrap()
        .expect("SetBootstrapToken");
    assert_eq!(d.status, 200);
    assert!(vm.mac.user("mgmt").unwrap().secure_token);
    assert!(server_token(&ts, "S4").await.is_some());
}

/// S5 — a mobile account on 10.15: no token without an escrowed BT, silently granted with one (FileWave
/// example 1). §1.3 row 7.
#[tokio::test]
async fn s5_mobile_account_on_10_15_gets_a_token_only_once_the_bt_is_escrowed() {
    let ts = server().await;
    let mut vm = enrolled(&ts, spec("S5", OsVersion::new(10, 15, 7), Arch::Intel)).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.mac.add_user(mobile("first")).unwrap();
    assert_eq!(
        vm.login("first", PW).await.unwrap(),
        None,
        "bypass: no token"
    );
    assert!(!vm.mac.user("first").unwrap().secure_token);
    assert!(
        vm.mac
            .filevault_users()
            .iter()
            .all(|u| u.short_name != "first")
    );

    assert_eq!(vm.login("ladmin", PW).await.unwrap().unwrap().status, 200);
    vm.mac.add_user(mobile("second")).unwrap();
    let d = vm
        .login("second", PW)
        .await
        .unwrap()
        .expect("GetBootstrapToken");
    assert_eq!(d.served, Some(Served::Matched));
    assert!(
        vm.mac
            .filevault_users()
            .iter()
            .any(|u| u.short_name == "second")
    );
}

/// S6 — a Mobility profile auto-creates mobile accounts: 10.15 with a BT gets a token; 10.14 has no BT and
/// never escrows (FileWave example 2). §1.3 row 7, §1.5. Nothing from the 10.14 Mac reaches the server.
#[tokio::test]
async fn s6_mobile_accounts_get_tokens_on_10_15_but_not_on_10_14() {
    let ts = server().await;
    let mut new = enrolled(&ts, spec("S6-1015", OsVersion::new(10, 15, 7), Arch::Intel)).await;
    new.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    new.login("ladmin", PW).await.unwrap();
    new.mac.add_user(mobile("net1")).unwrap();
    let d = new.login("net1", PW).await.unwrap().unwrap();
    assert_eq!(d.served, Some(Served::Matched));

    let mut old = enrolled(&ts, spec("S6-1014", OsVersion::new(10, 14, 6), Arch::Intel)).await;
    old.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    assert_eq!(
        old.login("ladmin", PW).await.unwrap(),
        None,
        "no BT on 10.14"
    );
    old.mac.add_user(mobile("net1")).unwrap();
    assert_eq!(old.login("net1", PW).await.unwrap(), None);
    assert!(!old.mac.user("net1").unwrap().secure_token);
    assert_eq!(old.mac.profiles_status(), (false, false));
    assert!(server_token(&ts, "S6-1014").await.is_none());
}

/// S7 — a standard user who logs in first claims the first token (Hexnode). §1.2 rule 2, §1.3 row 4. The
/// Mac half only: escrowd's diagnosis naming `kiosk` is not built yet.
#[tokio::test]
async fn s7_standard_user_logging_in_first_claims_the_first_token() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S7")).await;
    vm.mac.create_managed_admin("ladmin", PW).unwrap();
    device_configured(&ts, &mut vm).await;
    vm.mac
        .add_user(AddUser::new("kiosk", false, UserKind::Local, None))
        .unwrap();
    vm.mac.set_password_plain("kiosk", PW).unwrap();
    vm.login("kiosk", PW).await.unwrap();
    assert_eq!(vm.mac.token_holders(), ["kiosk"]);
    assert!(!vm.mac.user("ladmin").unwrap().secure_token);
    assert_eq!(
        vm.mac
            .secure_token_on("ladmin", PW, "ladmin", PW)
            .unwrap_err(),
        MacError::AdminLacksSecureToken("ladmin".into())
    );
    vm.mac.secure_token_on("ladmin", PW, "kiosk", PW).unwrap();
    assert!(vm.mac.user("ladmin").unwrap().secure_token);
}

/// S8 — chain of trust broken: nobody holds a token and no BT is escrowed, so every grant fails (Hexnode).
/// §1.2 rule 5, §1.3 row 5. The diagnosis view is not built yet; the server holds no token to serve.
#[tokio::test]
async fn s8_with_no_token_holder_and_no_bt_every_grant_fails() {
    let ts = server().await;
    let mut vm = enrolled(&ts, MacSpec::apple_silicon_ade("S8")).await;
    vm.mac.create_managed_admin("mgmt", PW).unwrap();
    device_configured(&ts, &mut vm).await;
    vm.mac
        .add_user(local("user", false).disabling_secure_token())
        .unwrap();
    assert!(!vm.mac.has_token_holder());
    assert_eq!(
        vm.mac.secure_token_on("user", PW, "mgmt", PW).unwrap_err(),
        MacError::NoTokenHolder
    );
    let d = vm
        .deliver(sim::mac::Checkin::GetBootstrapToken(FetchReason::Validate))
        .await
        .unwrap();
    assert_eq!((d.status, d.served), (200, Some(Served::Empty)));
}

/// S9 — macOS 10.12 (HFS+): Secure Tokens do not apply; enrollment still works. The server's NA status and
/// refusal of grant actions are not built yet.
#[tokio::test]
async fn s9_macos_10_12_has_no_secure_tokens_and_never_escrows() {
    let ts = server().await;
    let mut vm = enrolled(&ts, spec("S9", OsVersion::new(10, 12, 6), Arch::Intel)).await;
    vm.mac
        .setup_assistant_create_user(local("old", true))
        .unwrap();
    vm.mac.add_user(local("other", true)).unwrap();
    assert_eq!(vm.login("old", PW).await.unwrap(), None);
    assert!(matches!(
        vm.mac.secure_token_on("other", PW, "old", PW),
        Err(MacError::SecureTokenNotApplicable(_))
    ));
    assert!(server_token(&ts, "S9").await.is_none());
}
