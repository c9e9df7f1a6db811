//! The attacker's view of escrowd's one promise: a Mac's Bootstrap Token goes to that Mac alone (issue 11).
//!
//! Every test starts from a victim Mac V that enrolled and escrowed token T, then tries one way to obtain or
//! destroy T, and ends with the same check: the attempt got nothing of V's, and V still checks in, is still
//! bound to its own certificate, and is still served T. Attacks that need the server edge (forwarded
//! certificate headers, junk floods) live beside the edge's own tests; see the issue's closing note for the
//! full count.

mod common;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pki::scep::client::{csr_der, pki_request, read_cert_rep};
use pki::scep::{MessageType, PkiStatus};
use serde_json::json;
use store::ApiScope;
use testkit::device::{CHECKIN, KeyKind, issue_identity, new_key};
use testkit::enroll::http_get;
use testkit::scep::{get_ca_cert, scep_http};
use testkit::{TestDevice, TestServer, messages};

const T: &[u8] = b"\x01\x02victim-bootstrap-token-0123456789abcdef\xfe\xff";
const OTHER: &[u8] = b"attacker-own-token-bytes";
const V: &str = "00008103-001A2B3C4D5E001E";
const CHALLENGE: &str = "static-challenge-for-the-adversarial-suite";

async fn server() -> TestServer {
    TestServer::start_with(|o| o.scep_challenge = Some(vault::Secret::new(CHALLENGE.into())))
        .await
        .unwrap()
}

fn fp(cert: &X509) -> String {
    pki::identity::fingerprint_sha256(&cert.to_der().unwrap())
}

/// V enrolled (Authenticate + TokenUpdate) with a certificate from the device CA, and escrowed T.
async fn victim(ts: &TestServer) -> TestDevice {
    let v = ts.new_device(V).unwrap();
    v.enroll().await.unwrap();
    assert_eq!(v.set_bootstrap_token(Some(T)).await.unwrap().status, 200);
    v
}

/// The token a device is served (None: not a 200).
async fn served(d: &TestDevice) -> Option<Vec<u8>> {
    let (reply, token) = d.get_bootstrap_token().await.unwrap();
    (reply.status == 200).then(|| token.unwrap_or_default())
}

/// The end of every attack: V is still bound to its own certificate, enrolled, and served T.
async fn assert_victim_intact(ts: &TestServer, v: &TestDevice) {
    let e = ts.store().enrollment(V).await.unwrap().expect("V enrolled");
    assert!(e.enabled, "V still enrolled");
    assert_eq!(e.cert_fingerprint.as_deref(), Some(fp(&v.cert).as_str()));
    assert_eq!(
        v.token_update().await.unwrap().status,
        200,
        "V still checks in"
    );
    assert_eq!(served(v).await.as_deref(), Some(T), "V is still served T");
}

/// A device claiming V's UDID with `cert`.
fn claimant(ts: &TestServer, cert: X509, key: PKey<Private>) -> TestDevice {
    TestDevice::with_identity(V, cert, key, ts.base_url())
}

/// Authenticate as V with an unproven certificate: answered 200, recorded as pending, never served T.
async fn assert_pending_and_starved(ts: &TestServer, attacker: &TestDevice) {
    assert_eq!(attacker.authenticate().await.unwrap().status, 200);
    assert_eq!(attacker.token_update().await.unwrap().status, 200);
    let pending = ts.store().pending_identities(V).await.unwrap();
    assert!(
        pending.iter().any(
            |p| p.enabled && p.cert_fingerprint.as_deref() == Some(fp(&attacker.cert).as_str())
        ),
        "the claimant is recorded as a pending identity"
    );
    let got = served(attacker).await;
    assert_ne!(got.as_deref(), Some(T), "a pending identity never gets T");
    assert_eq!(
        got.as_deref(),
        Some(&[][..]),
        "it has no token of its own yet"
    );
}

async fn scep_device(ts: &TestServer, udid: &str, challenge: &str) -> TestDevice {
    TestDevice::enroll_via_scep(udid, &ts.base_url(), Some(challenge), 2048)
        .await
        .unwrap()
        .unwrap_or_else(|rep| panic!("SCEP refused: {:?}", rep.fail_info))
}

/// A RenewalReq for a new key signed by `signer`; Ok(new device for `claim`) when issued.
async fn renewal(ts: &TestServer, signer: &TestDevice, claim: &str) -> Result<TestDevice, ()> {
    let base = ts.base_url();
    let ca = get_ca_cert(&base).await.unwrap();
    let key = new_key(KeyKind::Rsa2048).unwrap();
    let csr = csr_der(&key, claim, None).unwrap();
    let req = pki_request(
        MessageType::RenewalReq,
        &csr,
        &signer.cert,
        &signer.key,
        &ca,
    )
    .unwrap();
    let reply = scep_http(&base, "operation=PKIOperation", Some(req.message))
        .await
        .unwrap();
    let rep = read_cert_rep(&reply.body, &ca, &signer.cert, &signer.key).unwrap();
    match rep.status {
        PkiStatus::Success => Ok(TestDevice::with_identity(
            claim,
            rep.certificate.unwrap(),
            key,
            base,
        )),
        _ => Err(()),
    }
}

// --- 1-5: a second certificate from every source claims V ---------------------------------------------------

#[tokio::test]
async fn a01_second_device_ca_certificate_is_only_a_pending_identity() {
    let ts = server().await;
    let v = victim(&ts).await;
    let (cert, key) = issue_identity(&ts.device_ca().unwrap(), V, KeyKind::Rsa2048).unwrap();
    let attacker = claimant(&ts, cert, key);
    assert_pending_and_starved(&ts, &attacker).await;
    assert_victim_intact(&ts, &v).await;
    // The Mac's bound identity checked in again: the pending one is refused from now on, even to re-Authenticate.
    assert_eq!(attacker.get_bootstrap_token().await.unwrap().0.status, 400);
    assert_eq!(attacker.authenticate().await.unwrap().status, 400);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a02_static_scep_challenge_certificate_is_only_a_pending_identity() {
    let ts = server().await;
    let v = victim(&ts).await;
    let attacker = scep_device(&ts, V, CHALLENGE).await;
    assert_pending_and_starved(&ts, &attacker).await;
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a03_enrollment_link_certificate_is_only_a_pending_identity() {
    let ts = server().await;
    ts.install_push_certificate().await.unwrap();
    let v = victim(&ts).await;
    let api = common::api(&ts, ApiScope::Admin).await;
    let (status, g) = api
        .send("POST", "/api/v1/groups", json!({"name": "Lab"}))
        .await;
    assert_eq!(status, 201, "{g}");
    let (status, t) = api
        .send(
            "POST",
            "/api/v1/enrollment-tokens",
            json!({"group": "Lab", "max_uses": 5}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap();
    let signed = http_get(&ts.base_url(), &format!("/enroll?token={token}"))
        .await
        .unwrap()
        .body;
    let (attacker, _) = TestDevice::enroll_via_profile(V, &signed, &ts.profile_signer_cert())
        .await
        .unwrap()
        .unwrap_or_else(|rep| panic!("SCEP refused: {:?}", rep.fail_info));
    assert_pending_and_starved(&ts, &attacker).await;
    assert_victim_intact(&ts, &v).await;
    // The link's group did not move V either.
    assert_eq!(
        ts.store().enrollment(V).await.unwrap().unwrap().group_id,
        None
    );
    ts.stop().await;
}

#[tokio::test]
async fn a04_external_device_ca_certificate_is_only_a_pending_identity() {
    let dir = tempfile::tempdir().unwrap();
    let external = pki::ca::CertificateAuthority::generate("External Device CA").unwrap();
    let ca_path = dir.path().join("external-ca.pem");
    std::fs::write(&ca_path, external.cert_pem().unwrap()).unwrap();
    let ts = TestServer::start_with(|o| o.device_cas.push(ca_path.clone()))
        .await
        .unwrap();
    let v = victim(&ts).await;
    let (cert, key) = issue_identity(&external, V, KeyKind::EcP256).unwrap();
    let attacker = claimant(&ts, cert, key);
    assert_pending_and_starved(&ts, &attacker).await;
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a05_renewal_signed_by_another_enrolled_mac_speaks_only_for_that_mac() {
    let ts = server().await;
    let v = victim(&ts).await;
    let m = common::enrolled(&ts, "UDID-ACCOMPLICE").await;
    // Renewal is issued (M is enrolled), but the new certificate inherits M's UDID at issuance...
    let renewed = renewal(&ts, &m, V)
        .await
        .expect("M may renew its own identity");
    // ...so it cannot Authenticate as V, nor fetch V's token.
    assert_eq!(renewed.authenticate().await.unwrap().status, 400);
    assert_eq!(served(&renewed).await, None);
    assert!(ts.store().pending_identities(V).await.unwrap().is_empty());
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

// --- 6-11: what a pending identity may and may not do -------------------------------------------------------

async fn pending_attacker(ts: &TestServer) -> TestDevice {
    let (cert, key) = issue_identity(&ts.device_ca().unwrap(), V, KeyKind::Rsa2048).unwrap();
    let attacker = claimant(ts, cert, key);
    assert_eq!(attacker.authenticate().await.unwrap().status, 200);
    attacker
}

#[tokio::test]
async fn a06_pending_identity_clearing_clears_only_its_own_token() {
    let ts = server().await;
    let v = victim(&ts).await;
    let attacker = pending_attacker(&ts).await;
    assert_eq!(
        attacker.set_bootstrap_token(None).await.unwrap().status,
        200
    );
    assert!(ts.store().bootstrap_token(V).await.unwrap().is_some());
    // The bound identity refuses the pending one at its next check-in, so check the token before that.
    assert_eq!(
        ts.store().bootstrap_token(V).await.unwrap().unwrap().size,
        T.len() as i64
    );
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a07_pending_identity_escrowing_replaces_only_its_own_token() {
    let ts = server().await;
    let v = victim(&ts).await;
    let attacker = pending_attacker(&ts).await;
    assert_eq!(
        attacker
            .set_bootstrap_token(Some(OTHER))
            .await
            .unwrap()
            .status,
        200
    );
    // A re-enrolled Mac's own new token is useful: the pending identity gets its own back, never T.
    assert_eq!(served(&attacker).await.as_deref(), Some(OTHER));
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a08_pending_identity_checkout_ends_only_itself() {
    let ts = server().await;
    let v = victim(&ts).await;
    let attacker = pending_attacker(&ts).await;
    assert_eq!(attacker.checkout().await.unwrap().status, 200);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a09_pending_identity_gets_none_of_the_macs_commands() {
    let ts = server().await;
    let v = victim(&ts).await;
    let api = common::api(&ts, ApiScope::Admin).await;
    let (status, body) = api
        .send(
            "POST",
            "/api/v1/commands",
            json!({"devices": [V], "command": {"type": "SecurityInfo"}, "push": false}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let uuid = body["command_uuid"].as_str().unwrap().to_string();
    let attacker = pending_attacker(&ts).await;
    let idle = attacker.idle().await.unwrap();
    assert_eq!(idle.status, 200);
    assert!(
        idle.body.is_empty(),
        "a pending identity's own queue is empty"
    );
    // V still gets its command (after whatever enrollment and escrow queued before it).
    let got = v.drain().await.unwrap();
    assert!(got.iter().any(|t| t == "SecurityInfo"), "{got:?}");
    let cmd = ts
        .store()
        .command(V, &uuid)
        .await
        .unwrap()
        .expect("the admin's command");
    assert_eq!(
        cmd.status,
        store::CommandStatus::Acknowledged,
        "V answered it"
    );
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a10_pending_identity_has_no_user_channel() {
    let ts = server().await;
    let v = victim(&ts).await;
    let attacker = pending_attacker(&ts).await;
    let reply = attacker
        .checkin(messages::user_token_update(V, "USER-GUID-1", "alice"))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(
        ts.store()
            .enrollment(&format!("{V}:USER-GUID-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a11_renewal_signed_by_a_pending_identity_needs_a_challenge() {
    let ts = server().await;
    let v = victim(&ts).await;
    let attacker = pending_attacker(&ts).await;
    assert!(
        renewal(&ts, &attacker, V).await.is_err(),
        "only the Mac's bound certificate may renew without a challenge"
    );
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

// --- 12-13: approval and the admin's block --------------------------------------------------------------------

#[tokio::test]
async fn a12_approval_promotes_the_pending_identity_and_discards_the_old_token() {
    let ts = server().await;
    let v = victim(&ts).await;
    let newcomer = pending_attacker(&ts).await;
    assert_eq!(
        newcomer
            .set_bootstrap_token(Some(OTHER))
            .await
            .unwrap()
            .status,
        200
    );
    let api = common::api(&ts, ApiScope::Admin).await;
    let operator = common::api(&ts, ApiScope::Operate).await;
    let (status, _) = operator
        .call(
            "POST",
            &format!("/api/v1/devices/{V}/approve-identity"),
            None,
        )
        .await;
    assert_eq!(status, 403, "approval needs the admin scope");
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/devices/{V}/approve-identity"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fingerprint"], fp(&newcomer.cert));
    // The approved identity is the Mac's now: it is served its own token, never T.
    assert_eq!(served(&newcomer).await.as_deref(), Some(OTHER));
    // The old certificate is no longer V's.
    assert_eq!(v.get_bootstrap_token().await.unwrap().0.status, 400);
    let kinds: Vec<String> = ts
        .store()
        .events(&store::EventFilter {
            subject: Some(V.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.iter().any(|k| k == "identity.pending"));
    assert!(kinds.iter().any(|k| k == "identity.approved"));
    ts.stop().await;
}

#[tokio::test]
async fn a13_a_blocked_mac_is_refused_at_checkin_and_renewal_until_unblocked() {
    let ts = server().await;
    let v = victim(&ts).await;
    let api = common::api(&ts, ApiScope::Admin).await;
    let (status, body) = api
        .call("POST", &format!("/api/v1/devices/{V}/block"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_cleared"], false);
    assert_eq!(served(&v).await, None, "blocked: no token");
    assert_eq!(v.authenticate().await.unwrap().status, 400);
    assert!(renewal(&ts, &v, V).await.is_err(), "blocked: no renewal");
    let (cert, key) = issue_identity(&ts.device_ca().unwrap(), V, KeyKind::Rsa2048).unwrap();
    assert_eq!(
        claimant(&ts, cert, key)
            .authenticate()
            .await
            .unwrap()
            .status,
        400
    );
    assert!(
        ts.store().bootstrap_token(V).await.unwrap().is_some(),
        "kept sealed"
    );
    let (status, _) = api
        .call("POST", &format!("/api/v1/devices/{V}/unblock"), None)
        .await;
    assert_eq!(status, 200);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

// --- 14-20: signatures, certificates, channels, UDIDs -------------------------------------------------------

#[tokio::test]
async fn a14_signature_forged_over_another_body_is_refused() {
    let ts = server().await;
    let v = victim(&ts).await;
    // A captured signature of V's (over its TokenUpdate) replayed on a GetBootstrapToken body.
    let sig = v.signature(&messages::token_update(V, None)).unwrap();
    let reply = v
        .put_raw(
            "/mdm/checkin",
            CHECKIN,
            messages::get_bootstrap_token(V, None),
            Some(&sig),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(!reply.body.windows(T.len()).any(|w| w == T));
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a15_oversized_and_garbage_signatures_are_refused_cleanly() {
    let ts = server().await;
    let v = victim(&ts).await;
    let body = messages::get_bootstrap_token(V, None);
    for sig in [
        "A".repeat(64 * 1024),
        "!!!not-base64!!!".to_string(),
        String::new(),
        base64_of(&[0x30, 0x80, 0x06, 0x09]),
    ] {
        let reply = v
            .put_raw("/mdm/checkin", CHECKIN, body.clone(), Some(&sig))
            .await
            .unwrap();
        assert!(
            reply.status == 400 || reply.status == 413 || reply.status == 431,
            "status {}",
            reply.status
        );
        assert!(!reply.body.windows(T.len()).any(|w| w == T));
    }
    let unsigned = v
        .put_raw("/mdm/checkin", CHECKIN, body, None)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 400);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a16_self_signed_and_foreign_ca_certificates_are_refused() {
    let ts = server().await;
    let v = victim(&ts).await;
    let foreign = pki::ca::CertificateAuthority::generate("escrowd development device CA").unwrap();
    let (cert, key) = issue_identity(&foreign, V, KeyKind::Rsa2048).unwrap();
    let impostor = claimant(&ts, cert, key);
    assert_eq!(impostor.authenticate().await.unwrap().status, 400);
    assert_eq!(served(&impostor).await, None);
    let key = new_key(KeyKind::Rsa2048).unwrap();
    let selfsigned = pki::scep::client::self_signed_signer(&key, V).unwrap();
    let impostor = claimant(&ts, selfsigned, key);
    assert_eq!(impostor.authenticate().await.unwrap().status, 400);
    assert!(ts.store().pending_identities(V).await.unwrap().is_empty());
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a17_another_macs_certificate_cannot_speak_for_v() {
    let ts = server().await;
    let v = victim(&ts).await;
    let m = common::enrolled(&ts, "UDID-OTHER-MAC").await;
    let as_v = claimant(&ts, m.cert.clone(), m.key.clone());
    assert_eq!(as_v.authenticate().await.unwrap().status, 400);
    assert_eq!(served(&as_v).await, None);
    assert_eq!(as_v.set_bootstrap_token(None).await.unwrap().status, 400);
    assert_eq!(as_v.checkout().await.unwrap().status, 400);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a18_user_channel_cannot_fetch_or_clear_the_device_token() {
    let ts = server().await;
    let v = victim(&ts).await;
    assert_eq!(
        v.checkin(messages::user_token_update(V, "USER-1", "alice"))
            .await
            .unwrap()
            .status,
        200
    );
    let mut get = plist::Dictionary::new();
    get.insert("MessageType".into(), "GetBootstrapToken".into());
    get.insert("UDID".into(), V.into());
    get.insert("UserID".into(), "USER-1".into());
    let reply = v.checkin(messages::to_xml(get)).await.unwrap();
    assert_ne!(reply.status, 200);
    assert!(!reply.body.windows(T.len()).any(|w| w == T));
    let mut clear = plist::Dictionary::new();
    clear.insert("MessageType".into(), "SetBootstrapToken".into());
    clear.insert("UDID".into(), V.into());
    clear.insert("UserID".into(), "USER-1".into());
    assert_ne!(
        v.checkin(messages::to_xml(clear)).await.unwrap().status,
        200
    );
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn a19_udid_tricks_are_refused_and_change_nothing() {
    let ts = server().await;
    let v = victim(&ts).await;
    let ca = ts.device_ca().unwrap();
    let before = ts.store().count_enrollments().await.unwrap();
    for udid in [
        format!("{V}:USER-1"),
        format!("{V}/pending/0123456789abcdef"),
        format!("{V} "),
        format!("{V}\u{0}"),
        "A".repeat(65),
        String::new(),
        format!("\u{202e}{V}"),
    ] {
        let (cert, key) = issue_identity(&ca, "trick", KeyKind::EcP256).unwrap();
        let d = TestDevice::with_identity(&udid, cert, key, ts.base_url());
        let reply = d.authenticate().await.unwrap();
        assert_eq!(reply.status, 400, "UDID {udid:?}");
    }
    assert_eq!(ts.store().count_enrollments().await.unwrap(), before);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

/// A certificate for V signed by the server's device CA with chosen validity and EKU (what `issue_identity`
/// never makes), built with openssl directly from the CA's key.
fn crafted(ts: &TestServer, not_before: i64, not_after: i64, server_auth_only: bool) -> TestDevice {
    use openssl::asn1::Asn1Time;
    use openssl::x509::X509Builder;
    use openssl::x509::extension::ExtendedKeyUsage;
    let ca = ts.device_ca().unwrap();
    let ca_key = PKey::private_key_from_pem(ca.key_pem().unwrap().expose()).unwrap();
    let key = new_key(KeyKind::Rsa2048).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", V).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(0x5eed)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca.certificate().subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(not_after).unwrap())
        .unwrap();
    let mut eku = ExtendedKeyUsage::new();
    if server_auth_only {
        eku.server_auth();
    } else {
        eku.client_auth();
    }
    b.append_extension(eku.build().unwrap()).unwrap();
    b.sign(&ca_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    claimant(ts, b.build(), key)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a20_eku_without_client_auth_and_expired_certificates_are_refused() {
    let ts = server().await;
    let v = victim(&ts).await;
    let now = now_unix();
    let server_only = crafted(&ts, now - 3600, now + 86_400, true);
    let expired = crafted(&ts, now - 10 * 86_400, now - 86_400, false);
    let not_yet = crafted(&ts, now + 86_400, now + 10 * 86_400, false);
    for d in [&server_only, &expired, &not_yet] {
        assert_eq!(d.authenticate().await.unwrap().status, 400);
        assert_eq!(served(d).await, None);
    }
    assert!(ts.store().pending_identities(V).await.unwrap().is_empty());
    // The control: the same construction with clientAuth and a current validity is a (pending) identity.
    let control = crafted(&ts, now - 3600, now + 86_400, false);
    assert_pending_and_starved(&ts, &control).await;
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

// --- 21-22: ended enrollments and races ---------------------------------------------------------------------

#[tokio::test]
async fn a21_after_checkout_a_new_certificate_enrolls_fresh_and_finds_no_token() {
    let ts = server().await;
    let v = victim(&ts).await;
    assert_eq!(v.checkout().await.unwrap().status, 200);
    let (cert, key) = issue_identity(&ts.device_ca().unwrap(), V, KeyKind::Rsa2048).unwrap();
    let next = claimant(&ts, cert, key);
    assert_eq!(next.authenticate().await.unwrap().status, 200);
    assert!(
        ts.store().pending_identities(V).await.unwrap().is_empty(),
        "not a takeover"
    );
    assert_eq!(
        served(&next).await.as_deref(),
        Some(&[][..]),
        "T was deleted at CheckOut"
    );
    // The old certificate is refused: its enrollment ended.
    assert_eq!(served(&v).await, None);
    ts.stop().await;
}

#[tokio::test]
async fn a22_concurrent_claims_while_v_checks_in_never_yield_t() {
    let ts = server().await;
    let v = victim(&ts).await;
    let ca = ts.device_ca().unwrap();
    let mut attackers = Vec::new();
    for _ in 0..6 {
        let (cert, key) = issue_identity(&ca, V, KeyKind::EcP256).unwrap();
        attackers.push(claimant(&ts, cert, key));
    }
    let attacks = attackers.iter().map(|a| async move {
        let _ = a.authenticate().await;
        served(a).await
    });
    let victim_side = async {
        for _ in 0..3 {
            let _ = v.token_update().await;
        }
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(attacks), victim_side);
    for got in results {
        assert_ne!(got.as_deref(), Some(T));
    }
    assert_victim_intact(&ts, &v).await;
    // V checks in last (the joined check-ins above may have finished before some claims landed): every pending
    // claimant is refused from now on, whichever way its claim raced V's check-ins.
    assert_eq!(v.token_update().await.unwrap().status, 200);
    for a in &attackers {
        assert_eq!(served(a).await, None);
    }
    ts.stop().await;
}

#[tokio::test]
async fn a23_unenrolled_by_an_admin_the_old_certificate_gets_nothing() {
    let ts = server().await;
    let v = victim(&ts).await;
    let api = common::api(&ts, ApiScope::Admin).await;
    let (status, body) = api
        .call("POST", &format!("/api/v1/devices/{V}/unenroll"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_deleted"], true);
    assert_eq!(served(&v).await, None);
    assert!(ts.store().bootstrap_token(V).await.unwrap().is_none());
    ts.stop().await;
}

#[tokio::test]
async fn a24_link_certificate_first_bound_to_another_mac_cannot_claim_v() {
    let ts = server().await;
    let v = victim(&ts).await;
    let m = scep_device(&ts, "UDID-LINKED", CHALLENGE).await;
    assert_eq!(m.authenticate().await.unwrap().status, 200);
    let as_v = claimant(&ts, m.cert.clone(), m.key.clone());
    assert_eq!(as_v.authenticate().await.unwrap().status, 400);
    assert_eq!(served(&as_v).await, None);
    assert_victim_intact(&ts, &v).await;
    ts.stop().await;
}

#[tokio::test]
async fn proven_renewal_by_renewal_req_keeps_the_token_and_retires_the_old_certificate() {
    let ts = server().await;
    let v = victim(&ts).await;
    let renewed = renewal(&ts, &v, V)
        .await
        .expect("the bound certificate may renew");
    renewed.enroll().await.unwrap(); // Authenticate + TokenUpdate, no SetBootstrapToken (Fleet #41167)
    assert!(ts.store().pending_identities(V).await.unwrap().is_empty());
    let rec = ts.store().bootstrap_token(V).await.unwrap().unwrap();
    assert!(
        !rec.verified,
        "kept, but not re-verified after the new identity's Authenticate"
    );
    assert_eq!(served(&renewed).await.as_deref(), Some(T));
    assert_eq!(
        served(&v).await,
        None,
        "the previous certificate is retired"
    );
    assert!(
        ts.store()
            .bootstrap_token(V)
            .await
            .unwrap()
            .unwrap()
            .verified
    );
    let e = ts.store().enrollment(V).await.unwrap().unwrap();
    assert_eq!(
        e.cert_fingerprint.as_deref(),
        Some(fp(&renewed.cert).as_str())
    );
    ts.stop().await;
}
