//! End-to-end: the Bootstrap Token lifecycle over real HTTP against a real server and SQLite database, driven by
//! a device client that signs like a Mac. Each test reads as the rule it guards (ARCHITECTURE.md invariants).

use testkit::device::{CHECKIN, KeyKind};
use testkit::{TestServer, messages};

const TOKEN: &[u8] = b"\x01\x02bootstrap-token-bytes-0123456789abcdef\xfe\xff";

async fn enrolled(ts: &TestServer, udid: &str) -> testkit::TestDevice {
    let d = ts.new_device(udid).unwrap();
    d.enroll().await.unwrap();
    d
}

async fn event_kinds(ts: &TestServer, udid: &str) -> Vec<(String, store::Outcome, String)> {
    let events = ts
        .store()
        .events(&store::EventFilter {
            subject: Some(udid.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    events
        .into_iter()
        .map(|e| (e.kind, e.outcome, e.detail))
        .collect()
}

#[tokio::test]
async fn escrow_then_get_round_trips_the_exact_bytes() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-ROUNDTRIP").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let (reply, token) = mac.get_bootstrap_token().await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(token.unwrap(), TOKEN);
    let rec = ts
        .store()
        .bootstrap_token("UDID-ROUNDTRIP")
        .await
        .unwrap()
        .unwrap();
    assert!(rec.verified, "a successful Get marks the token verified");
    assert!(rec.last_requested_at.is_some());
    assert_eq!(rec.size, TOKEN.len() as i64);
}

#[tokio::test]
async fn every_served_get_is_audited_before_its_200_even_when_concurrent() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-AUDIT").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    // Gets in flight together share group-commit batches; each 200 must come after its own event is
    // committed (read back over other connections than the writer's).
    let body = messages::get_bootstrap_token("UDID-AUDIT", None);
    let sig = mac.signature(&body).unwrap();
    let replies = futures_util::future::join_all(
        (0..8).map(|_| mac.put_raw("/mdm/checkin", CHECKIN, body.clone(), Some(&sig))),
    )
    .await;
    for reply in replies {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(messages::bootstrap_token_of(&reply.body).unwrap(), TOKEN);
    }
    let served = event_kinds(&ts, "UDID-AUDIT")
        .await
        .into_iter()
        .filter(|(kind, outcome, _)| {
            kind == "bootstrap_token.requested" && *outcome == store::Outcome::Success
        })
        .count();
    assert_eq!(served, 8, "one durable event per released token");
}

#[tokio::test]
async fn get_before_escrow_answers_empty_data_not_an_error() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-EMPTY").await;
    let (reply, token) = mac.get_bootstrap_token().await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(token.unwrap(), Vec::<u8>::new());
    let body = String::from_utf8(reply.body).unwrap();
    assert!(
        body.contains("<key>BootstrapToken</key>"),
        "key present with empty data: {body}"
    );
    let kinds = event_kinds(&ts, "UDID-EMPTY").await;
    assert!(
        kinds
            .iter()
            .any(|(k, o, _)| k == "bootstrap_token.requested" && *o == store::Outcome::Failure)
    );
}

#[tokio::test]
async fn get_bootstrap_token_from_another_devices_certificate_is_refused() {
    let ts = TestServer::start().await.unwrap();
    let a = enrolled(&ts, "UDID-A").await;
    let b = enrolled(&ts, "UDID-B").await;
    assert_eq!(
        b.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    // Device A signs a request that claims to be B.
    let reply = a
        .checkin(messages::get_bootstrap_token("UDID-B", None))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(!reply.body.windows(TOKEN.len()).any(|w| w == TOKEN));
    // And cannot overwrite B's token either.
    let reply = a
        .checkin(messages::set_bootstrap_token("UDID-B", Some(b"evil"), None))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(b.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
    // Counted (per source and hour) with the claimed Mac in the detail, not stored one event each.
    let failures = ts.auth_failures("auth.failed").await;
    assert_eq!(
        failures.iter().map(|c| c.count).sum::<i64>(),
        2,
        "{failures:?}"
    );
    assert!(failures[0].detail.starts_with("UDID-B: "), "{failures:?}");
    assert!(
        !event_kinds(&ts, "UDID-B")
            .await
            .iter()
            .any(|(k, _, _)| k == "auth.failed")
    );
}

#[tokio::test]
async fn unsigned_forged_foreign_and_mismatched_requests_get_400_and_change_nothing() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-SIG").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let evil = messages::set_bootstrap_token("UDID-SIG", Some(b"replaced"), None);

    // Unsigned.
    let r = mac
        .put_raw("/mdm/checkin", CHECKIN, evil.clone(), None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // Signature over a different body (mismatched body).
    let sig_for_other = mac
        .signature(&messages::get_bootstrap_token("UDID-SIG", None))
        .unwrap();
    let r = mac
        .put_raw("/mdm/checkin", CHECKIN, evil.clone(), Some(&sig_for_other))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // Forged: garbage and truncated signatures.
    let good = mac.signature(&evil).unwrap();
    for bad in ["bm90IGEgc2lnbmF0dXJl", "%%%", &good[..good.len() / 2]] {
        let r = mac
            .put_raw("/mdm/checkin", CHECKIN, evil.clone(), Some(bad))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "signature {bad:.20}");
    }
    // A certificate from a CA the server does not trust, claiming this UDID.
    let foreign_ca = pki::ca::CertificateAuthority::generate("someone else's CA").unwrap();
    let foreign =
        testkit::TestDevice::new("UDID-SIG", &foreign_ca, KeyKind::Rsa2048, ts.base_url()).unwrap();
    assert_eq!(foreign.checkin(evil.clone()).await.unwrap().status, 400);
    assert_eq!(foreign.authenticate().await.unwrap().status, 400);

    assert_eq!(
        mac.get_bootstrap_token().await.unwrap().1.unwrap(),
        TOKEN,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_device_never_gets_401() {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-NO401").unwrap();
    // Not enrolled yet, unsigned, bad signature: all 400.
    for sig in [None, Some("AAAA")] {
        let r = mac
            .put_raw(
                "/mdm/checkin",
                CHECKIN,
                messages::get_bootstrap_token("UDID-NO401", None),
                sig,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 400);
    }
    let r = mac
        .checkin(messages::get_bootstrap_token("UDID-NO401", None))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "signed but never authenticated");
    let r = mac.idle().await.unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn malformed_truncated_and_hostile_bodies_get_4xx_and_change_nothing() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-HOSTILE").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let before = event_kinds(&ts, "UDID-HOSTILE").await.len();

    let full = messages::set_bootstrap_token("UDID-HOSTILE", Some(b"other"), None);
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"garbage \x00\xff not a plist".to_vec(),
        full[..full.len() / 2].to_vec(),
        b"bplist00\x00\x01".to_vec(),
        br#"<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>LaunchMissiles</string><key>UDID</key><string>UDID-HOSTILE</string></dict></plist>"#.to_vec(),
        br#"<?xml version="1.0"?><plist version="1.0"><dict><key>UDID</key><string>UDID-HOSTILE</string></dict></plist>"#.to_vec(),
        br#"<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>SetBootstrapToken</string><key>UDID</key><string>UDID-HOSTILE</string><key>BootstrapToken</key><string>not data</string></dict></plist>"#.to_vec(),
        br#"<?xml version="1.0"?><plist version="1.0"><array><string>x</string></array></plist>"#.to_vec(),
    ];
    let mut deep = b"<?xml version=\"1.0\"?><plist version=\"1.0\">".to_vec();
    deep.extend(std::iter::repeat_n(&b"<array>"[..], 100_000).flatten());
    deep.extend(std::iter::repeat_n(&b"</array>"[..], 100_000).flatten());
    deep.extend(b"</plist>");
    bodies.push(deep);
    for body in bodies {
        let len = body.len();
        let r = mac.checkin(body).await.unwrap();
        assert!(
            (400..500).contains(&r.status),
            "body of {len} bytes answered {}",
            r.status
        );
    }
    // The server is still alive and the token untouched.
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
    let after = event_kinds(&ts, "UDID-HOSTILE").await;
    // Only the Get we just made added an event.
    assert_eq!(after.len(), before + 1, "{after:?}");
}

#[tokio::test]
async fn a_64_mib_body_is_refused_with_413() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-BIG").await;
    let mut body = messages::set_bootstrap_token("UDID-BIG", Some(TOKEN), None);
    body.resize(64 * 1024 * 1024, b' ');
    let r = mac
        .put_raw("/mdm/checkin", CHECKIN, body, Some("AAAA"))
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert!(
        ts.store()
            .bootstrap_token("UDID-BIG")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_restart_keeps_tokens() {
    let mut ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-RESTART").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    ts.restart().await.unwrap();
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
}

#[tokio::test]
async fn checkout_clears_the_token() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CHECKOUT").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    assert_eq!(mac.checkout().await.unwrap().status, 200);
    assert!(
        ts.store()
            .bootstrap_token("UDID-CHECKOUT")
            .await
            .unwrap()
            .is_none()
    );
    // A checked-out enrollment must enroll again before it is served.
    assert_eq!(mac.get_bootstrap_token().await.unwrap().0.status, 400);
    mac.enroll().await.unwrap();
    assert_eq!(
        mac.get_bootstrap_token().await.unwrap().1.unwrap(),
        Vec::<u8>::new()
    );
}

#[tokio::test]
async fn identity_renewal_keeps_the_token_rebinds_and_refuses_the_old_certificate() {
    let ts = TestServer::start().await.unwrap();
    ts.install_push_certificate().await.unwrap();
    let mac = enrolled(&ts, "UDID-RENEW").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
    mac.drain().await.unwrap();
    let old = testkit::TestDevice::with_identity(
        "UDID-RENEW",
        mac.cert.clone(),
        mac.key.clone(),
        ts.base_url(),
    );

    // Renewal the way Macs do it: the enrollment profile again, with a challenge minted for this UDID.
    let renewal = ts
        .running()
        .state
        .mdm
        .admin_renew_identity("UDID-RENEW", &service::apikeys::Actor::offline("test"))
        .await
        .unwrap();
    let reply = mac.idle().await.unwrap();
    let cmd: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let cmd = cmd.as_dictionary().unwrap();
    assert_eq!(
        cmd["CommandUUID"].as_string(),
        Some(renewal.command_uuid.as_str())
    );
    let payload = cmd["Command"].as_dictionary().unwrap()["Payload"]
        .as_data()
        .unwrap()
        .to_vec();
    let (mac, _) =
        testkit::TestDevice::enroll_via_profile("UDID-RENEW", &payload, &ts.profile_signer_cert())
            .await
            .unwrap()
            .unwrap();
    mac.enroll().await.unwrap(); // Authenticate + TokenUpdate, no SetBootstrapToken (Fleet #41167)
    let rec = ts
        .store()
        .bootstrap_token("UDID-RENEW")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !rec.verified,
        "kept but not re-verified after a repeat Authenticate"
    );

    assert_eq!(
        old.get_bootstrap_token().await.unwrap().0.status,
        400,
        "old certificate refused"
    );
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
    assert!(
        ts.store()
            .bootstrap_token("UDID-RENEW")
            .await
            .unwrap()
            .unwrap()
            .verified
    );
    let kinds = event_kinds(&ts, "UDID-RENEW").await;
    assert!(
        kinds
            .iter()
            .any(|(k, _, _)| k == "enrollment.identity_renewed")
    );
}

#[tokio::test]
async fn set_with_the_token_absent_or_empty_clears_it() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CLEAR").await;
    for clear in [None, Some(&b""[..])] {
        assert_eq!(
            mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
            200
        );
        assert!(
            ts.store()
                .bootstrap_token("UDID-CLEAR")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(mac.set_bootstrap_token(clear).await.unwrap().status, 200);
        assert!(
            ts.store()
                .bootstrap_token("UDID-CLEAR")
                .await
                .unwrap()
                .is_none(),
            "{clear:?}"
        );
    }
}

#[tokio::test]
async fn a_second_escrow_replaces_the_first() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-REPLACE").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(b"first"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        mac.set_bootstrap_token(Some(b"second"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        mac.get_bootstrap_token().await.unwrap().1.unwrap(),
        b"second"
    );
    let kinds = event_kinds(&ts, "UDID-REPLACE").await;
    assert!(
        kinds
            .iter()
            .any(|(k, _, d)| k == "bootstrap_token.replaced" && d.contains("new token"))
    );
}

#[tokio::test]
async fn user_channel_set_and_get_are_refused() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-USER").await;
    let user_id = "A1B2C3D4-0000-1111-2222-333344445555";
    assert_eq!(
        mac.checkin(messages::user_token_update("UDID-USER", user_id, "jdoe"))
            .await
            .unwrap()
            .status,
        200
    );
    for kind in ["SetBootstrapToken", "GetBootstrapToken"] {
        let body = format!(
            r#"<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>{kind}</string><key>UDID</key><string>UDID-USER</string><key>UserID</key><string>{user_id}</string><key>BootstrapToken</key><data>AAEC</data></dict></plist>"#
        );
        assert_eq!(
            mac.checkin(body.into_bytes()).await.unwrap().status,
            400,
            "{kind}"
        );
    }
    assert!(
        ts.store()
            .bootstrap_token("UDID-USER")
            .await
            .unwrap()
            .is_none()
    );
    let user = ts
        .store()
        .enrollment(&format!("UDID-USER:{user_id}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.user_short_name.as_deref(), Some("jdoe"));
}

#[tokio::test]
async fn escrow_disabled_for_the_group_refuses_set_and_answers_get_empty() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-GROUP").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let mut group = store::Group {
        id: "g-lab".into(),
        name: "Lab".into(),
        bootstrap_escrow_enabled: false,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 0,
        updated_at: 0,
    };
    ts.store().create_group(&group).await.unwrap();
    ts.store()
        .set_enrollment_group("UDID-GROUP", Some("g-lab"))
        .await
        .unwrap();

    assert_eq!(
        mac.set_bootstrap_token(Some(b"new")).await.unwrap().status,
        400
    );
    let (reply, token) = mac.get_bootstrap_token().await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(token.unwrap(), Vec::<u8>::new());
    let kinds = event_kinds(&ts, "UDID-GROUP").await;
    assert!(
        kinds
            .iter()
            .any(|(k, o, d)| k == "bootstrap_token.escrow_refused"
                && *o == store::Outcome::Refused
                && d.contains("Lab"))
    );

    // Turning escrow back on: the token escrowed before is still there (S2/S3).
    group.bootstrap_escrow_enabled = true;
    ts.store().update_group(&group).await.unwrap();
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
}

#[tokio::test]
async fn a_mac_clears_its_own_token_in_an_escrow_off_group() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-OFF-CLEAR").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let group = store::Group {
        id: "g-off".into(),
        name: "Lab".into(),
        bootstrap_escrow_enabled: false,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 0,
        updated_at: 0,
    };
    ts.store().create_group(&group).await.unwrap();
    ts.store()
        .set_enrollment_group("UDID-OFF-CLEAR", Some("g-off"))
        .await
        .unwrap();
    // `profiles remove -type bootstraptoken`: an empty SetBootstrapToken. Honoured although escrow is off.
    assert_eq!(
        mac.set_bootstrap_token(Some(b"")).await.unwrap().status,
        200
    );
    assert!(
        ts.store()
            .bootstrap_token("UDID-OFF-CLEAR")
            .await
            .unwrap()
            .is_none(),
        "the kept token is gone"
    );
    let kinds = event_kinds(&ts, "UDID-OFF-CLEAR").await;
    assert!(
        kinds
            .iter()
            .any(|(k, o, _)| k == "bootstrap_token.cleared" && *o == store::Outcome::Success),
        "{kinds:?}"
    );
    assert!(
        !kinds
            .iter()
            .any(|(k, _, _)| k == "bootstrap_token.escrow_refused"),
        "{kinds:?}"
    );
    // A new token is still refused there.
    assert_eq!(
        mac.set_bootstrap_token(Some(b"new")).await.unwrap().status,
        400
    );
}

#[tokio::test]
async fn awaiting_configuration_is_recorded_only_when_present_and_never_refuses() {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-AWAIT").unwrap();
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    assert_eq!(
        mac.checkin(messages::token_update("UDID-AWAIT", Some(true)))
            .await
            .unwrap()
            .status,
        200
    );
    let e = ts.store().enrollment("UDID-AWAIT").await.unwrap().unwrap();
    assert_eq!(e.awaiting_configuration, Some(true));
    // Set without the key: flag untouched (MicroMDM reset it to false).
    assert_eq!(
        mac.checkin(messages::set_bootstrap_token(
            "UDID-AWAIT",
            Some(TOKEN),
            None
        ))
        .await
        .unwrap()
        .status,
        200
    );
    assert_eq!(
        ts.store()
            .enrollment("UDID-AWAIT")
            .await
            .unwrap()
            .unwrap()
            .awaiting_configuration,
        Some(true)
    );
    // Get with AwaitingConfiguration=true is served, and false is recorded when sent.
    let r = mac
        .checkin(messages::get_bootstrap_token("UDID-AWAIT", Some(true)))
        .await
        .unwrap();
    assert_eq!(messages::bootstrap_token_of(&r.body).unwrap(), TOKEN);
    let r = mac
        .checkin(messages::get_bootstrap_token("UDID-AWAIT", Some(false)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        ts.store()
            .enrollment("UDID-AWAIT")
            .await
            .unwrap()
            .unwrap()
            .awaiting_configuration,
        Some(false)
    );
}

#[tokio::test]
async fn the_token_appears_nowhere_on_disk_or_in_events_in_the_clear() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-DISK").await;
    let token: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    assert_eq!(
        mac.set_bootstrap_token(Some(&token)).await.unwrap().status,
        200
    );
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), token);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &token);
    let mut files = 0;
    for entry in std::fs::read_dir(ts.dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        files += 1;
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_slice()),
            "raw token in {}",
            path.display()
        );
        assert!(
            !bytes.windows(b64.len()).any(|w| w == b64.as_bytes()),
            "base64 token in {}",
            path.display()
        );
    }
    assert!(
        files >= 3,
        "database, key file and certificates were scanned"
    );
    for (_, _, detail) in event_kinds(&ts, "UDID-DISK").await {
        assert!(!detail.contains(&b64));
    }
}

#[tokio::test]
async fn put_mdm_dispatches_on_content_type() {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-DISPATCH").unwrap();
    let body = messages::authenticate("UDID-DISPATCH");
    let sig = mac.signature(&body).unwrap();
    assert_eq!(
        mac.put_raw("/mdm", CHECKIN, body, Some(&sig))
            .await
            .unwrap()
            .status,
        200
    );
    let body = messages::report("UDID-DISPATCH", "Idle", None, plist::Dictionary::new());
    let sig = mac.signature(&body).unwrap();
    let r = mac
        .put_raw("/mdm", "application/x-apple-aspen-mdm", body, Some(&sig))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "nothing queued: zero-byte body");
}

#[tokio::test]
async fn every_signature_form_a_mac_uses_is_accepted() {
    use pki::sign::{SignOptions, SignatureDigest};
    let ts = TestServer::start().await.unwrap();
    let ca = ts.device_ca().unwrap();
    let forms = [
        (KeyKind::Rsa2048, SignatureDigest::Sha1, false),
        (KeyKind::Rsa2048, SignatureDigest::Sha256, false),
        (KeyKind::Rsa2048, SignatureDigest::Sha256, true),
        (KeyKind::EcP256, SignatureDigest::Sha256, true),
        (KeyKind::EcP256, SignatureDigest::Sha256, false),
    ];
    for (i, (kind, digest, attrs)) in forms.into_iter().enumerate() {
        let udid = format!("UDID-FORM-{i}");
        let mut mac = testkit::TestDevice::new(&udid, &ca, kind, ts.base_url()).unwrap();
        mac.sign = SignOptions {
            digest,
            signed_attributes: attrs,
        };
        mac.enroll().await.unwrap();
        assert_eq!(
            mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
            200,
            "{kind:?} {digest:?} {attrs}"
        );
        assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN);
    }
}
