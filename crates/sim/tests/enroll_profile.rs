//! Virtual Macs enroll the real way: enrollment link → signed profile → SCEP with the profile's one-time
//! challenge → Authenticate/TokenUpdate with the issued identity, landing in the token's group. The profile's
//! ServerCapabilities decide whether the Mac escrows (macos-tokens-and-admin-needs.md §1.2: no
//! `com.apple.mdm.bootstraptoken` capability ⇒ no SetBootstrapToken).

mod common;

use common::*;
use service::apikeys::Actor;
use service::enroll::NewEnrollmentToken;
use sim::VirtualMac;
use sim::mac::{Mac, MacSpec};

async fn token_for(ts: &testkit::TestServer, group: &str, escrow: bool) -> (String, String) {
    let mdm = &ts.running().state.mdm;
    let g = mdm
        .admin_create_group(group, escrow, false, &Actor::offline("test"))
        .await
        .unwrap();
    let (_, token) = mdm
        .create_enrollment_token(
            &NewEnrollmentToken {
                group: group.into(),
                name: format!("{group} link"),
                max_uses: Some(1),
                expires_in_ms: Some(3_600_000),
            },
            &Actor::offline("test"),
        )
        .await
        .unwrap();
    (g.id, token.expose().clone())
}

async fn enroll_by_link(ts: &testkit::TestServer, udid: &str, token: &str) -> VirtualMac {
    let mut spec = MacSpec::apple_silicon_ade(udid);
    spec.bt_capability = false; // only the profile can grant it
    let (mut vm, profile) = VirtualMac::from_enrollment_link(
        Mac::new(spec),
        &ts.base_url(),
        token,
        &ts.profile_signer_cert(),
    )
    .await
    .expect("profile installed and SCEP identity issued");
    assert_eq!(profile.mdm.topic, testkit::enroll::TEST_TOPIC);
    vm.enroll()
        .await
        .expect("Authenticate + TokenUpdate with the SCEP identity");
    vm
}

#[tokio::test]
async fn a_mac_enrolled_by_link_into_an_escrowing_group_escrows_at_first_admin_login() {
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let (group_id, token) = token_for(&ts, "Escrow", true).await;
    let mut vm = enroll_by_link(&ts, "LINK-1", &token).await;
    assert!(
        vm.mac.bt_capability,
        "the profile advertised com.apple.mdm.bootstraptoken"
    );
    let e = ts.store().enrollment("LINK-1").await.unwrap().unwrap();
    assert_eq!(e.group_id.as_deref(), Some(group_id.as_str()));
    // The identity came from SCEP, not from the dev CA handed over directly.
    let fp = pki::identity::fingerprint_sha256(&vm.cert.to_der().unwrap());
    let issued = ts.store().issued_certificate(&fp).await.unwrap().unwrap();
    assert_eq!(issued.device_id.as_deref(), Some("LINK-1"));

    device_configured(&ts, &mut vm).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    vm.login("ladmin", PW).await.unwrap();
    assert!(vm.mac.escrowed);
    assert!(server_token(&ts, "LINK-1").await.is_some());

    // The link was for one Mac: a second one is refused before SCEP.
    let second = VirtualMac::from_enrollment_link(
        Mac::new(MacSpec::apple_silicon_ade("LINK-2")),
        &ts.base_url(),
        &token,
        &ts.profile_signer_cert(),
    )
    .await;
    assert!(matches!(
        second,
        Err(sim::client::ClientError::Status {
            what: "enroll",
            status: 403
        })
    ));
    ts.stop().await;
}

#[tokio::test]
async fn a_mac_enrolled_into_a_non_escrowing_group_never_sends_its_token() {
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let (_, token) = token_for(&ts, "NoEscrow", false).await;
    let mut vm = enroll_by_link(&ts, "LINK-3", &token).await;
    assert!(!vm.mac.bt_capability);
    device_configured(&ts, &mut vm).await;
    vm.mac
        .setup_assistant_create_user(local("ladmin", true))
        .unwrap();
    let sent = vm.login("ladmin", PW).await.unwrap();
    assert!(
        sent.is_none(),
        "no SetBootstrapToken without the capability"
    );
    assert!(!vm.mac.escrowed);
    assert!(server_token(&ts, "LINK-3").await.is_none());
    ts.stop().await;
}

#[tokio::test]
async fn a_fleet_enrolls_by_link_and_lands_in_the_tokens_group() {
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let mdm = &ts.running().state.mdm;
    let g = mdm
        .admin_create_group("Fleet", true, false, &Actor::offline("test"))
        .await
        .unwrap();
    let (_, token) = mdm
        .create_enrollment_token(
            &NewEnrollmentToken {
                group: "Fleet".into(),
                name: "fleet".into(),
                max_uses: Some(7),
                expires_in_ms: None,
            },
            &Actor::offline("test"),
        )
        .await
        .unwrap();
    let config = sim::fleet::FleetConfig {
        server: ts.base_url(),
        count: 7,
        concurrency: 4,
        mix: sim::fleet::parse_mix("all").unwrap(),
        udid_prefix: "LINKFLEET".into(),
        enroll_link: Some(sim::fleet::EnrollLink {
            token: token.expose().clone(),
            signer: ts.profile_signer_cert(),
        }),
        key_kind: sim::client::KeyKind::Rsa2048,
        key_pool: None,
    };
    let run = sim::fleet::run(config, ts.device_ca().unwrap(), std::sync::Arc::new(|_| {})).await;
    let failures: Vec<_> = run
        .outcomes
        .iter()
        .filter_map(|o| o.failure.clone())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    for o in &run.outcomes {
        let e = ts.store().enrollment(&o.udid).await.unwrap().unwrap();
        assert_eq!(e.group_id.as_deref(), Some(g.id.as_str()), "{}", o.udid);
        let fp = e.cert_fingerprint.unwrap();
        assert!(
            ts.store().issued_certificate(&fp).await.unwrap().is_some(),
            "SCEP-issued"
        );
    }
    // Every Mac used one use of the token.
    let t = ts.store().list_enrollment_tokens().await.unwrap().remove(0);
    assert_eq!(t.uses, 7);
    ts.stop().await;
}

/// `escrowd sim` into a group with escrow off: the server does as configured (no capability, nothing
/// escrowed), so no Mac is reported as failed; the expectation follows the group.
#[tokio::test]
async fn a_fleet_in_an_escrow_off_group_is_not_reported_as_failed() {
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let mdm = &ts.running().state.mdm;
    mdm.admin_create_group("NoEscrow", false, false, &Actor::offline("test"))
        .await
        .unwrap();
    let (_, token) = mdm
        .create_enrollment_token(
            &NewEnrollmentToken {
                group: "NoEscrow".into(),
                name: "fleet".into(),
                max_uses: Some(7),
                expires_in_ms: None,
            },
            &Actor::offline("test"),
        )
        .await
        .unwrap();
    let config = sim::fleet::FleetConfig {
        server: ts.base_url(),
        count: 7,
        concurrency: 4,
        mix: sim::fleet::parse_mix("all").unwrap(),
        udid_prefix: "OFFFLEET".into(),
        enroll_link: Some(sim::fleet::EnrollLink {
            token: token.expose().clone(),
            signer: ts.profile_signer_cert(),
        }),
        key_kind: sim::client::KeyKind::EcP256,
        key_pool: None,
    };
    let run = sim::fleet::run(config, ts.device_ca().unwrap(), std::sync::Arc::new(|_| {})).await;
    let failures: Vec<_> = run
        .outcomes
        .iter()
        .filter_map(|o| o.failure.clone())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let summary = sim::fleet::summarize(&run.outcomes, std::time::Duration::from_secs(1));
    assert_eq!((summary.enrolled, summary.escrowed), (7, 0));
    for o in &run.outcomes {
        assert!(!o.escrow_expected, "{}", o.udid);
        assert!(server_token(&ts, &o.udid).await.is_none(), "{}", o.udid);
    }
    ts.stop().await;
}

/// A Mac enrolled by link renews only with a profile whose identity keys equal the installed one's: escrowd's
/// renewal profile is accepted (new SCEP identity, token kept); after the push topic changed, macOS (and the
/// virtual Mac) refuses the update and keeps its identity.
#[tokio::test]
async fn a_mac_enrolled_by_link_accepts_its_renewal_profile_and_refuses_one_that_changes_the_topic()
{
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let (_, token) = token_for(&ts, "Renew", true).await;
    let mut vm = enroll_by_link(&ts, "LINK-REN", &token).await;
    vm.poll().await.unwrap();
    let mdm = &ts.running().state.mdm;
    let before = vm.cert.to_der().unwrap();
    mdm.admin_renew_identity("LINK-REN", &Actor::offline("test"))
        .await
        .unwrap();
    let polled = vm.poll().await.unwrap();
    assert!(
        polled
            .answered
            .contains(&("InstallProfile".to_string(), "Acknowledged")),
        "{polled:?}"
    );
    let renewed = vm.cert.to_der().unwrap();
    assert_ne!(renewed, before);
    let kinds = event_kinds(&ts, "LINK-REN").await;
    assert!(
        kinds.contains(&"enrollment.identity_renewed".into()),
        "{kinds:?}"
    );

    // A new push certificate with another topic: the renewal profile now changes Topic.
    let (cert, key) =
        testkit::enroll::test_push_certificate("com.apple.mgmt.External.other").unwrap();
    mdm.put_push_certificate(&cert, &vault::Secret::new(key), "test")
        .await
        .unwrap();
    mdm.admin_renew_identity("LINK-REN", &Actor::offline("test"))
        .await
        .unwrap();
    let polled = vm.poll().await.unwrap();
    assert!(
        polled
            .answered
            .contains(&("InstallProfile".to_string(), "Error")),
        "{polled:?}"
    );
    assert_eq!(vm.cert.to_der().unwrap(), renewed, "identity kept");
    // The refused renewal is no longer outstanding: it can be queued again.
    assert!(
        ts.store()
            .identity_renewal("LINK-REN")
            .await
            .unwrap()
            .is_none()
    );
}
