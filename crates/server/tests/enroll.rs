//! Enrollment end to end: enrollment tokens over the admin API, `GET /enroll` serving a signed profile, the
//! device doing SCEP with the profile's one-time challenge and landing in the token's group at Authenticate.

mod common;

use std::time::Instant;

use common::{api, event_count};
use protocol::profile::{CAP_BOOTSTRAP_TOKEN, CAP_PER_USER_CONNECTIONS};
use serde_json::{Value as Json, json};
use service::apikeys::Actor;
use store::{ApiScope, EnrollmentToken, Group};
use testkit::enroll::{TEST_TOPIC, http_get, read_signed_profile};
use testkit::{TestDevice, TestServer};

async fn ready_server() -> TestServer {
    let ts = TestServer::start().await.unwrap();
    ts.install_push_certificate().await.unwrap();
    ts
}

async fn group(ts: &TestServer, name: &str, escrow: bool, prompt: bool) -> Group {
    ts.running()
        .state
        .mdm
        .admin_create_group(name, escrow, prompt, &Actor::offline("test"))
        .await
        .unwrap()
}

/// Create a token over the API; returns (token, id, answer).
async fn token(ts: &TestServer, body: Json) -> (String, String, Json) {
    let admin = api(ts, ApiScope::Admin).await;
    let (status, v) = admin.send("POST", "/api/v1/enrollment-tokens", body).await;
    assert_eq!(status, 201, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
        v,
    )
}

async fn uses(ts: &TestServer, id: &str) -> i64 {
    ts.store().enrollment_token(id).await.unwrap().unwrap().uses
}

#[tokio::test]
async fn a_one_time_token_enrolls_one_mac_into_its_group_and_is_then_refused() {
    let ts = ready_server().await;
    let lab = group(&ts, "Lab", true, true).await;
    let (tok, id, answer) = token(&ts, json!({"group": "Lab", "max_uses": 1})).await;
    assert_eq!(
        answer["enroll_url"],
        json!(format!("{}/enroll?token={tok}", ts.base_url()))
    );

    let reply = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(uses(&ts, &id).await, 1);

    // The profile says what the issue asks for.
    let profile = read_signed_profile(&reply.body, &ts.profile_signer_cert()).unwrap();
    assert_eq!(profile.mdm.topic, TEST_TOPIC);
    assert_eq!(
        profile.mdm.server_url,
        format!("{}/mdm/connect", ts.base_url())
    );
    assert_eq!(
        profile.mdm.checkin_url.as_deref(),
        Some(format!("{}/mdm/checkin", ts.base_url()).as_str())
    );
    assert!(profile.mdm.sign_message && profile.mdm.check_out_when_removed);
    assert_eq!(profile.mdm.access_rights, 8191);
    assert!(profile.mdm.has_capability(CAP_PER_USER_CONNECTIONS));
    assert!(
        profile.mdm.has_capability(CAP_BOOTSTRAP_TOKEN),
        "the group escrows"
    );
    assert!(
        profile
            .mdm
            .prompt_user_to_allow_bootstrap_token_for_authentication
    );
    assert_eq!(profile.mdm.identity_certificate_uuid, profile.scep.uuid);
    assert_eq!(profile.scep.key_size, 2048);

    // The Mac installs it: SCEP with the one-time challenge, then Authenticate lands it in the group.
    let (mac, _) =
        TestDevice::enroll_via_profile("UDID-ENROLL-1", &reply.body, &ts.profile_signer_cert())
            .await
            .unwrap()
            .expect("SCEP issued a certificate");
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    assert_eq!(mac.token_update().await.unwrap().status, 200);
    let e = ts
        .store()
        .enrollment("UDID-ENROLL-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.group_id.as_deref(), Some(lab.id.as_str()));

    // Second use: refused, nothing consumed.
    let again = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap();
    assert_eq!(again.status, 403);
    assert!(String::from_utf8_lossy(&again.body).contains("used up"));
    assert_eq!(uses(&ts, &id).await, 1);

    // No event, log line or answer carries the token.
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .all(|e| !e.detail.contains(&tok) && !e.subject.contains(&tok))
    );
    let admin = api(&ts, ApiScope::Admin).await;
    let (_, list) = admin.get("/api/v1/enrollment-tokens").await;
    assert!(!list.to_string().contains(&tok));
    assert!(!list.to_string().contains("hash"));
    ts.stop().await;
}

#[tokio::test]
async fn the_profile_verifies_with_the_openssl_binary() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: no openssl binary");
        return;
    }
    let ts = ready_server().await;
    group(&ts, "Lab", true, false).await;
    let (tok, _, _) = token(&ts, json!({"group": "Lab"})).await;
    let reply = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.mobileconfig"), &reply.body).unwrap();
    let signer = ts.opts.data_dir.join("profile-signing.pem");
    assert!(
        signer.exists(),
        "the public signing certificate is in the data directory"
    );
    let out = std::process::Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(dir.path().join("x.mobileconfig"))
        .arg("-CAfile")
        .arg(&signer)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plist = protocol::profile::EnrollmentProfile::parse(&out.stdout).unwrap();
    assert_eq!(plist.mdm.topic, TEST_TOPIC);
    ts.stop().await;
}

#[tokio::test]
async fn no_bootstraptoken_capability_when_the_group_does_not_escrow() {
    let ts = ready_server().await;
    group(&ts, "NoEscrow", false, false).await;
    let (tok, _, _) = token(&ts, json!({"group": "NoEscrow"})).await;
    let reply = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap();
    let profile = read_signed_profile(&reply.body, &ts.profile_signer_cert()).unwrap();
    assert!(!profile.mdm.has_capability(CAP_BOOTSTRAP_TOKEN));
    assert!(profile.mdm.has_capability(CAP_PER_USER_CONNECTIONS));
    assert!(
        !profile
            .mdm
            .prompt_user_to_allow_bootstrap_token_for_authentication
    );
    ts.stop().await;
}

#[tokio::test]
async fn expired_revoked_unknown_and_malformed_tokens_are_refused_and_consume_nothing() {
    let ts = ready_server().await;
    let g = group(&ts, "Lab", true, false).await;
    // An already expired token, written straight to the store (no clock to wind forward over HTTP).
    let expired = EnrollmentToken {
        id: "expired-token".into(),
        name: "old".into(),
        token_hash: service::enroll::secret_hash(b"escrowd_enroll_expired"),
        group_id: g.id.clone(),
        max_uses: None,
        uses: 0,
        expires_at: Some(1),
        created_at: 0,
        revoked_at: None,
    };
    ts.store()
        .create_enrollment_token(
            &expired,
            &store::NewEvent {
                subject: "t".into(),
                enrollment_id: None,
                kind: store::EventKind::EnrollmentAuthenticated,
                outcome: store::Outcome::Success,
                detail: String::new(),
                at: 0,
            },
        )
        .await
        .unwrap();
    let (revoked, revoked_id, _) = token(&ts, json!({"group": g.id})).await;
    let admin = api(&ts, ApiScope::Admin).await;
    let (status, _) = admin
        .call(
            "DELETE",
            &format!("/api/v1/enrollment-tokens/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = admin
        .call(
            "DELETE",
            &format!("/api/v1/enrollment-tokens/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "already revoked");

    for (query, status, says) in [
        ("token=escrowd_enroll_expired", 403, "expired"),
        (&format!("token={revoked}") as &str, 403, "revoked"),
        ("token=escrowd_enroll_nobody", 403, "unknown"),
        ("", 400, "missing"),
        ("token=", 400, "empty"),
        ("token=a&token=b", 400, "more than once"),
        ("token=%ZZ%00", 400, ""),
        ("token=x'%20OR%201=1--", 400, "characters"),
        ("token=%3Cscript%3E", 400, "characters"),
    ] {
        let before = event_count(&ts).await;
        let counted = ts.auth_failure_total("enroll.refused").await;
        let reply = http_get(&ts.base_url(), &format!("/enroll?{query}"))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&reply.body).to_string();
        assert_eq!(reply.status, status, "{query}: {text}");
        assert!(text.contains(says), "{query}: {text}");
        assert!(!text.contains("escrowd_enroll_nobody") && !text.contains(&revoked));
        // A refused token writes no event row (anyone can send one): it is counted per source and hour; a
        // malformed query leaves nothing at all.
        assert_eq!(event_count(&ts).await, before, "{query}");
        let newly_counted = ts.auth_failure_total("enroll.refused").await - counted;
        assert_eq!(newly_counted, i64::from(status == 403), "{query}");
    }
    let long = format!("/enroll?token={}", "a".repeat(5000));
    assert_eq!(http_get(&ts.base_url(), &long).await.unwrap().status, 400);
    assert_eq!(
        ts.store()
            .enrollment_token("expired-token")
            .await
            .unwrap()
            .unwrap()
            .uses,
        0
    );
    assert_eq!(uses(&ts, &revoked_id).await, 0);

    // Bad token requests over the API.
    for body in [
        json!({"group": "nope"}),
        json!({"group": "Lab", "max_uses": 0}),
        json!({"group": "Lab", "expires_in_seconds": -5}),
        json!({"group": "Lab", "surprise": true}),
    ] {
        let (status, v) = admin
            .send("POST", "/api/v1/enrollment-tokens", body.clone())
            .await;
        assert!([400, 404, 422].contains(&status), "{body}: {status} {v}");
    }
    ts.stop().await;
}

#[tokio::test]
async fn without_a_push_certificate_enroll_says_what_to_do_and_consumes_nothing() {
    let ts = TestServer::start().await.unwrap();
    group(&ts, "Lab", true, false).await;
    let (tok, id, _) = token(&ts, json!({"group": "Lab", "max_uses": 1})).await;
    let reply = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 409);
    assert!(String::from_utf8_lossy(&reply.body).contains("escrowd push-cert upload"));
    assert_eq!(uses(&ts, &id).await, 0);
    ts.stop().await;
}

#[tokio::test]
async fn a_one_time_challenge_cannot_be_replayed_and_its_certificate_speaks_for_one_udid() {
    let ts = ready_server().await;
    group(&ts, "Lab", true, false).await;
    let (tok, _, _) = token(&ts, json!({"group": "Lab", "max_uses": 5})).await;
    let signed = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap()
        .body;
    let signer = ts.profile_signer_cert();
    let (mac, _) = TestDevice::enroll_via_profile("UDID-A", &signed, &signer)
        .await
        .unwrap()
        .expect("first SCEP succeeds");
    // The same profile (same challenge) a second time: a fresh request, but the challenge is spent.
    let Err(rep) = TestDevice::enroll_via_profile("UDID-B", &signed, &signer)
        .await
        .unwrap()
    else {
        panic!("a replayed challenge must be refused");
    };
    assert_eq!(rep.fail_info, Some(pki::scep::FailInfo::BadRequest));

    // The certificate binds to UDID-A at its first Authenticate. A second link's certificate claiming UDID-A is
    // only a pending identity of it (a link does not know which Mac opens it), and the first certificate never
    // speaks for another Mac.
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    let signed2 = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
        .await
        .unwrap()
        .body;
    let (renewed, _) = TestDevice::enroll_via_profile("UDID-A", &signed2, &signer)
        .await
        .unwrap()
        .expect("second profile, fresh challenge");
    assert_eq!(renewed.authenticate().await.unwrap().status, 200);
    let pending = ts.store().pending_identities("UDID-A").await.unwrap();
    assert_eq!(pending.len(), 1, "the second link's certificate is pending");
    let imposter = TestDevice::with_identity(
        "UDID-EVIL",
        mac.cert.clone(),
        mac.key.clone(),
        ts.base_url(),
    );
    assert_eq!(imposter.authenticate().await.unwrap().status, 400);
    assert!(ts.store().enrollment("UDID-EVIL").await.unwrap().is_none());
    let fp = pki::identity::fingerprint_sha256(&mac.cert.to_der().unwrap());
    let rec = ts.store().issued_certificate(&fp).await.unwrap().unwrap();
    assert_eq!(rec.device_id.as_deref(), Some("UDID-A"));
    ts.stop().await;
}

#[tokio::test]
async fn a_groups_static_profile_enrolls_macs_into_that_group() {
    let ts = ready_server().await;
    let staff = group(&ts, "Staff", false, false).await;
    let admin = api(&ts, ApiScope::Admin).await;
    let mut signed = Vec::new();
    for _ in 0..2 {
        let resp = testkit::http::client()
            .get(format!(
                "{}/api/v1/groups/{}/profile",
                ts.admin_url(),
                staff.id
            ))
            .header("authorization", admin.auth.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-apple-aspen-config"
        );
        signed.push(resp.bytes().await.unwrap().to_vec());
    }
    let signer = ts.profile_signer_cert();
    let first = read_signed_profile(&signed[0], &signer).unwrap();
    let second = read_signed_profile(&signed[1], &signer).unwrap();
    assert_eq!(
        first.scep.challenge.as_ref().unwrap().expose(),
        second.scep.challenge.as_ref().unwrap().expose(),
        "a group's static challenge is stable"
    );
    // Several Macs use the same static challenge.
    for udid in ["UDID-S1", "UDID-S2"] {
        let (mac, _) = TestDevice::enroll_via_profile(udid, &signed[0], &signer)
            .await
            .unwrap()
            .expect("static challenge accepted");
        assert_eq!(mac.authenticate().await.unwrap().status, 200);
        let e = ts.store().enrollment(udid).await.unwrap().unwrap();
        assert_eq!(e.group_id.as_deref(), Some(staff.id.as_str()));
    }
    let (status, _) = admin.get("/api/v1/groups/UNKNOWN/profile").await;
    assert_eq!(status, 404);
    ts.stop().await;
}

/// Not a pass/fail timing assertion: prints what serving a signed profile costs.
#[tokio::test]
async fn enroll_latency_is_measured() {
    let ts = ready_server().await;
    group(&ts, "Lab", true, false).await;
    let (tok, _, _) = token(&ts, json!({"group": "Lab"})).await;
    let n = 50;
    let start = Instant::now();
    for _ in 0..n {
        let reply = http_get(&ts.base_url(), &format!("/enroll?token={tok}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let each = start.elapsed() / n;
    eprintln!(
        "MEASURED: GET /enroll (redeem + challenge + sign) {each:?} per request over {n} sequential requests"
    );
    ts.stop().await;
}
