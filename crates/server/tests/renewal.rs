//! Identity renewal end to end over HTTP (issue 11): the renewal profile is the enrollment profile again (same
//! identity keys) with a challenge bound to the Mac's UDID; the schedule renews only expiring Macs, once; a
//! still-bound identity shortly past notAfter may fetch its renewal profile and nothing else.

mod common;

use common::{api, enrolled};
use openssl::pkey::PKey;
use plist::Value;
use protocol::profile::{EnrollmentProfile, MdmSettings};
use serde_json::json;
use service::apikeys::Actor;
use store::ApiScope;
use testkit::{TestDevice, TestServer, messages};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A server with a push certificate (profiles need its topic) and a group with an enrollment token.
async fn server() -> TestServer {
    let ts = TestServer::start().await.unwrap();
    ts.install_push_certificate().await.unwrap();
    ts
}

/// The InstallProfile's signed profile in a command plist.
fn install_profile_payload(command: &[u8]) -> Vec<u8> {
    let v: Value = plist::from_bytes(command).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    cmd["Payload"].as_data().unwrap().to_vec()
}

fn identity_keys(
    p: &EnrollmentProfile,
) -> (String, MdmSettings, String, Vec<(String, String)>, u64) {
    let mut mdm = p.mdm.clone();
    // Only the UUIDs may differ between two downloads.
    mdm.identity_certificate_uuid = String::new();
    (
        p.identifier.clone(),
        mdm,
        p.scep.url.clone(),
        p.scep.subject.clone(),
        p.scep.key_size,
    )
}

/// The enrollment profile `/enroll` serves for a token of group `group`.
async fn enroll_profile(ts: &TestServer, group: &str) -> Vec<u8> {
    let admin = api(ts, ApiScope::Admin).await;
    let (status, _) = admin
        .send("POST", "/api/v1/groups", json!({"name": group}))
        .await;
    assert!(status == 200 || status == 201, "{status}");
    let (status, t) = admin
        .send(
            "POST",
            "/api/v1/enrollment-tokens",
            json!({"group": group, "name": "renewal test"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {t}");
    let token = t["token"].as_str().unwrap().to_string();
    let reply = testkit::enroll::http_get(&ts.base_url(), &format!("/enroll?token={token}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    reply.body
}

#[tokio::test]
async fn the_renewal_profile_has_the_enrollment_profiles_identity_keys_and_a_challenge_for_that_mac()
 {
    let ts = server().await;
    let signer = ts.profile_signer_cert();
    let original_signed = enroll_profile(&ts, "Lab").await;
    let original = testkit::enroll::read_signed_profile(&original_signed, &signer).unwrap();
    let (mac, _) = TestDevice::enroll_via_profile("UDID-REN-1", &original_signed, &signer)
        .await
        .unwrap()
        .unwrap();
    mac.enroll().await.unwrap();
    let token = b"bootstrap-token-renewal".to_vec();
    assert_eq!(
        mac.set_bootstrap_token(Some(&token)).await.unwrap().status,
        200
    );
    mac.drain().await.unwrap();

    // The admin API: admin scope only, 404 for an unknown Mac.
    let read = api(&ts, ApiScope::Read).await;
    let (status, _) = read
        .call("POST", "/api/v1/devices/UDID-REN-1/renew-identity", None)
        .await;
    assert_eq!(status, 403);
    let admin = api(&ts, ApiScope::Admin).await;
    let (status, _) = admin
        .call("POST", "/api/v1/devices/NOBODY/renew-identity", None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = admin
        .call("POST", "/api/v1/devices/UDID-REN-1/renew-identity", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let uuid = body["renewal"]["command_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let valid = body["renewal"]["challenge_expires_at"].as_i64().unwrap()
        - body["renewal"]["queued_at"].as_i64().unwrap();
    assert_eq!(valid, 14 * DAY_MS);
    let (_, detail) = admin.get("/api/v1/devices/UDID-REN-1").await;
    assert_eq!(detail["identity_renewal"]["command_uuid"], uuid.as_str());
    let text = body.to_string();

    // The Mac's next command is the renewal profile.
    let reply = mac.idle().await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(common::uuid_of(&reply.body), uuid);
    let renewal_signed = install_profile_payload(&reply.body);
    let renewal = testkit::enroll::read_signed_profile(&renewal_signed, &signer).unwrap();
    assert_eq!(identity_keys(&renewal), identity_keys(&original));
    let challenge = renewal.scep.challenge.clone().unwrap();
    assert_ne!(
        Some(challenge.expose()),
        original.scep.challenge.as_ref().map(|c| c.expose())
    );
    assert!(
        !text.contains(challenge.expose().as_str()),
        "the API never shows the challenge"
    );
    let events = ts
        .store()
        .events(&store::EventFilter {
            subject: Some("UDID-REN-1".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "identity.renewal_queued" && e.detail.contains("apikey"))
    );
    assert!(
        events
            .iter()
            .all(|e| !e.detail.contains(challenge.expose().as_str()))
    );

    // Another Mac using that challenge gets a certificate bound to UDID-REN-1: it cannot speak for itself.
    let (thief, _) = TestDevice::enroll_via_profile("UDID-THIEF", &renewal_signed, &signer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thief.authenticate().await.unwrap().status, 400);
    assert!(ts.store().enrollment("UDID-THIEF").await.unwrap().is_none());
    // And the challenge was used up by it: the Mac's own SCEP with it is refused.
    assert!(
        TestDevice::enroll_via_profile("UDID-REN-1", &renewal_signed, &signer)
            .await
            .unwrap()
            .is_err()
    );

    // A second renewal; this time the Mac installs it: proven renewal, token kept, old certificate refused.
    let (status, body) = admin
        .call("POST", "/api/v1/devices/UDID-REN-1/renew-identity", None)
        .await;
    assert_eq!(status, 200);
    let uuid2 = body["renewal"]["command_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut next = mac.idle().await.unwrap();
    // The first renewal profile is still queued (the Mac never answered it): answer it, take the second.
    if common::uuid_of(&next.body) != uuid2 {
        next = mac
            .connect(messages::report(
                &mac.udid,
                "Error",
                Some(&common::uuid_of(&next.body)),
                plist::Dictionary::new(),
            ))
            .await
            .unwrap();
    }
    assert_eq!(common::uuid_of(&next.body), uuid2);
    let (renewed, _) =
        TestDevice::enroll_via_profile("UDID-REN-1", &install_profile_payload(&next.body), &signer)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(renewed.authenticate().await.unwrap().status, 200);
    assert_eq!(renewed.token_update().await.unwrap().status, 200);
    let (got, served) = renewed.get_bootstrap_token().await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(served.as_deref(), Some(token.as_slice()));
    assert_eq!(mac.get_bootstrap_token().await.unwrap().0.status, 400);
    assert!(
        ts.store()
            .identity_renewal("UDID-REN-1")
            .await
            .unwrap()
            .is_none()
    );
    let (_, detail) = admin.get("/api/v1/devices/UDID-REN-1").await;
    assert!(detail["identity_renewal"].is_null(), "{detail}");
}

/// Sets the bound certificate's recorded notAfter (as if it had been issued long ago).
async fn set_not_after(ts: &TestServer, udid: &str, not_after: i64) {
    let mut e = ts.store().enrollment(udid).await.unwrap().unwrap();
    e.cert_not_after = Some(not_after);
    let event = store::NewEvent {
        subject: udid.into(),
        enrollment_id: Some(udid.into()),
        kind: store::EventKind::EnrollmentAuthenticated,
        outcome: store::Outcome::Success,
        detail: "test".into(),
        at: 0,
    };
    ts.store().upsert_enrollment(&e, &event).await.unwrap();
}

#[tokio::test]
async fn the_schedule_renews_only_macs_expiring_within_the_window_and_each_once() {
    let ts = server().await;
    let now = now_ms();
    for (udid, days) in [
        ("SOON-1", 10),
        ("SOON-2", 29),
        ("LATER", 60),
        ("FRESH", 365),
    ] {
        enrolled(&ts, udid).await;
        if days < 365 {
            set_not_after(&ts, udid, now + days * DAY_MS).await;
        }
    }
    let mdm = &ts.running().state.mdm;
    let tick = mdm.renew_expiring_identities(100).await.unwrap();
    assert_eq!(tick.queued, ["SOON-1", "SOON-2"]);
    assert_eq!(tick.failed, 0);
    for udid in ["SOON-1", "SOON-2"] {
        let r = ts.store().identity_renewal(udid).await.unwrap().unwrap();
        let cmd = ts
            .store()
            .command(udid, &r.command_uuid)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cmd.request_type, "InstallProfile");
    }
    for udid in ["LATER", "FRESH"] {
        assert!(ts.store().identity_renewal(udid).await.unwrap().is_none());
        assert_eq!(ts.store().active_queue_len(udid).await.unwrap(), 0);
    }
    // Outstanding renewals are not queued again.
    assert!(
        mdm.renew_expiring_identities(100)
            .await
            .unwrap()
            .queued
            .is_empty()
    );
    assert_eq!(ts.store().active_queue_len("SOON-1").await.unwrap(), 1);
    // The batch bounds a pass.
    set_not_after(&ts, "LATER", now + DAY_MS).await;
    set_not_after(&ts, "FRESH", now + 2 * DAY_MS).await;
    assert_eq!(
        mdm.renew_expiring_identities(1).await.unwrap().queued,
        ["LATER"]
    );

    // Diagnosis and the device view say where each stands.
    let read = api(&ts, ApiScope::Read).await;
    let (_, d) = read.get("/api/v1/devices/SOON-1/diagnosis").await;
    let codes: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"identity_expiring_renewal_queued"),
        "{codes:?}"
    );
    let (_, d) = read.get("/api/v1/devices/FRESH/diagnosis").await;
    assert!(
        d.to_string()
            .contains("identity_expiring_renewal_not_queued"),
        "{d}"
    );
}

/// A device whose bound certificate from the server's CA expired `days_ago` days ago.
async fn expired_mac(ts: &TestServer, udid: &str, days_ago: i64) -> TestDevice {
    let ca = ts.device_ca().unwrap();
    let key = testkit::device::new_key(testkit::device::KeyKind::EcP256).unwrap();
    let public = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
    let now = now_ms() / 1000;
    let cert = ca
        .issue_with_validity(udid, &public, now - 400 * 86_400, now - days_ago * 86_400)
        .unwrap();
    let fp = pki::identity::fingerprint_sha256(&cert.to_der().unwrap());
    let e = store::Enrollment {
        cert_fingerprint: Some(fp),
        cert_not_after: Some((now - days_ago * 86_400) * 1000),
        token_update_count: 1,
        ..store::Enrollment::new_device(udid, 1)
    };
    let event = store::NewEvent {
        subject: udid.into(),
        enrollment_id: Some(udid.into()),
        kind: store::EventKind::EnrollmentAuthenticated,
        outcome: store::Outcome::Success,
        detail: "test".into(),
        at: 0,
    };
    ts.store().upsert_enrollment(&e, &event).await.unwrap();
    TestDevice::with_identity(udid, cert, key, ts.base_url())
}

#[tokio::test]
async fn an_expired_bound_identity_within_grace_gets_only_its_renewal_profile_and_then_renews() {
    let ts = server().await;
    let signer = ts.profile_signer_cert();
    let mac = expired_mac(&ts, "UDID-GRACE", 2).await;
    let token = b"token-of-an-expired-mac".to_vec();
    // Something else queued for the Mac before: never served to the expired identity.
    ts.running()
        .state
        .mdm
        .enqueue(
            &["UDID-GRACE".to_string()],
            &protocol::command::Command::security_info("SEC-1".into()),
        )
        .await
        .unwrap();

    // The check-in channel stays closed to the expired certificate.
    assert_ne!(mac.authenticate().await.unwrap().status, 200);
    assert_ne!(
        mac.set_bootstrap_token(Some(&token)).await.unwrap().status,
        200
    );
    assert_ne!(mac.get_bootstrap_token().await.unwrap().0.status, 200);

    // The command channel answers with a renewal profile, queued now, and only that (twice the same).
    let reply = mac.idle().await.unwrap();
    assert_eq!(reply.status, 200);
    let r = ts
        .store()
        .identity_renewal("UDID-GRACE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(common::uuid_of(&reply.body), r.command_uuid);
    let again = mac.idle().await.unwrap();
    assert_eq!(common::uuid_of(&again.body), r.command_uuid);
    // A report about another command changes nothing and still gets the renewal profile.
    let other = mac
        .connect(messages::report(
            &mac.udid,
            "Acknowledged",
            Some("SEC-1"),
            plist::Dictionary::new(),
        ))
        .await
        .unwrap();
    assert_eq!(common::uuid_of(&other.body), r.command_uuid);
    assert_eq!(
        ts.store()
            .command("UDID-GRACE", "SEC-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        store::CommandStatus::Pending
    );
    // A NotNow for it: nothing more this session.
    let notnow = mac
        .connect(messages::report(
            &mac.udid,
            "NotNow",
            Some(&r.command_uuid),
            plist::Dictionary::new(),
        ))
        .await
        .unwrap();
    assert_eq!(notnow.status, 200);
    assert!(notnow.body.is_empty());
    // The user channel of the expired identity is refused.
    let mut user = messages::report(&mac.udid, "Idle", None, plist::Dictionary::new());
    let mut d: plist::Dictionary = plist::from_bytes(&user).unwrap();
    d.insert("UserID".into(), "USER-1".into());
    user.clear();
    plist::to_writer_xml(&mut user, &d).unwrap();
    assert_ne!(mac.connect(user).await.unwrap().status, 200);

    // The Mac installs it: a proven renewal with a valid certificate.
    let reply = mac.idle().await.unwrap();
    let (renewed, _) = TestDevice::enroll_via_profile(
        "UDID-GRACE",
        &install_profile_payload(&reply.body),
        &signer,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(renewed.authenticate().await.unwrap().status, 200);
    assert_eq!(renewed.token_update().await.unwrap().status, 200);
    let kinds: Vec<String> = ts
        .store()
        .events(&store::EventFilter {
            subject: Some("UDID-GRACE".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"enrollment.identity_renewed".into()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"identity.renewal_grace".into()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"identity.pending".into()), "{kinds:?}");
    // The old, expired certificate is no longer bound: its grace ended with the renewal.
    assert_ne!(mac.idle().await.unwrap().status, 200);
    // The renewed Mac gets its other commands again.
    let next = renewed.idle().await.unwrap();
    assert_eq!(common::uuid_of(&next.body), "SEC-1");
}

#[tokio::test]
async fn expired_identities_outside_the_grace_are_refused_as_before() {
    let ts = server().await;
    // Past the 30-day grace.
    let old = expired_mac(&ts, "UDID-LONG-GONE", 40).await;
    assert_ne!(old.idle().await.unwrap().status, 200);
    assert!(
        ts.store()
            .identity_renewal("UDID-LONG-GONE")
            .await
            .unwrap()
            .is_none()
    );
    // An expired certificate no enrollment is bound to.
    let ca = ts.device_ca().unwrap();
    let key = testkit::device::new_key(testkit::device::KeyKind::EcP256).unwrap();
    let public = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
    let now = now_ms() / 1000;
    let cert = ca
        .issue_with_validity("UNBOUND", &public, now - 400 * 86_400, now - 86_400)
        .unwrap();
    let unbound = TestDevice::with_identity("UDID-LONG-GONE", cert, key, ts.base_url());
    assert_ne!(unbound.idle().await.unwrap().status, 200);
    // An expired certificate bound to a Mac, claiming another UDID.
    let mac = expired_mac(&ts, "UDID-GRACE-2", 1).await;
    let liar = TestDevice::with_identity(
        "UDID-OTHER",
        mac.cert.clone(),
        mac.key.clone(),
        ts.base_url(),
    );
    assert_ne!(liar.idle().await.unwrap().status, 200);
    // A blocked Mac's expired identity.
    ts.running()
        .state
        .mdm
        .admin_block_device("UDID-GRACE-2", false, &Actor::offline("test"))
        .await
        .unwrap();
    assert_ne!(mac.idle().await.unwrap().status, 200);
    assert!(
        ts.store()
            .identity_renewal("UDID-GRACE-2")
            .await
            .unwrap()
            .is_none()
    );

    // Grace off: even a day past notAfter is refused.
    let ts = TestServer::start_with(|o| o.identity_grace_days = 0)
        .await
        .unwrap();
    ts.install_push_certificate().await.unwrap();
    let mac = expired_mac(&ts, "UDID-NO-GRACE", 1).await;
    assert_ne!(mac.idle().await.unwrap().status, 200);
}

#[tokio::test]
async fn a_mac_bound_before_expiry_was_recorded_gets_it_at_its_next_command_poll() {
    let ts = server().await;
    let mac = enrolled(&ts, "UDID-PRE-0009").await;
    let mut e = ts
        .store()
        .enrollment("UDID-PRE-0009")
        .await
        .unwrap()
        .unwrap();
    let recorded = e.cert_not_after.unwrap();
    e.cert_not_after = None;
    let event = store::NewEvent {
        subject: "UDID-PRE-0009".into(),
        enrollment_id: None,
        kind: store::EventKind::EnrollmentAuthenticated,
        outcome: store::Outcome::Success,
        detail: "test".into(),
        at: 0,
    };
    ts.store().upsert_enrollment(&e, &event).await.unwrap();
    assert_eq!(mac.idle().await.unwrap().status, 200);
    let e = ts
        .store()
        .enrollment("UDID-PRE-0009")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.cert_not_after, Some(recorded));
}

#[tokio::test]
async fn a_blocked_or_checked_out_mac_is_not_renewed() {
    let ts = server().await;
    let admin = api(&ts, ApiScope::Admin).await;
    let blocked = enrolled(&ts, "UDID-BLOCKED").await;
    let (status, _) = admin
        .send("POST", "/api/v1/devices/UDID-BLOCKED/block", json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = admin
        .call("POST", "/api/v1/devices/UDID-BLOCKED/renew-identity", None)
        .await;
    assert_eq!(status, 409, "{body}");
    let gone = enrolled(&ts, "UDID-GONE").await;
    assert_eq!(gone.checkout().await.unwrap().status, 200);
    let (status, _) = admin
        .call("POST", "/api/v1/devices/UDID-GONE/renew-identity", None)
        .await;
    assert_eq!(status, 409);
    for udid in ["UDID-BLOCKED", "UDID-GONE"] {
        assert!(ts.store().identity_renewal(udid).await.unwrap().is_none());
    }
    drop(blocked);
}
