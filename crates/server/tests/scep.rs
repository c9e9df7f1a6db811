//! SCEP end to end: a device gets its identity certificate from escrowd at /scep and that certificate is
//! accepted at /mdm/checkin; wrong challenges, replays and malformed messages are refused clearly. Includes an
//! interoperability test with Debian's `scepclient` (micromdm/scep), skipped with a notice if it is missing.

use std::io::Write;
use std::process::Command;

use pki::scep::client::{csr_der, pki_request, read_cert_rep, self_signed_signer};
use pki::scep::{FailInfo, MessageType, PkiStatus};
use store::EventFilter;
use testkit::scep::{get_ca_cert, scep_http};
use testkit::{TestDevice, TestServer};

const CHALLENGE: &str = "enroll-me-please";

async fn server() -> TestServer {
    TestServer::start_with(|o| o.scep_challenge = Some(vault::Secret::new(CHALLENGE.into())))
        .await
        .unwrap()
}

/// The latest reason of each counted SCEP refusal (refusals are counted per source and hour, not stored one
/// by one).
async fn refusals(server: &TestServer) -> Vec<String> {
    server
        .auth_failures("scep.refused")
        .await
        .into_iter()
        .map(|c| c.detail)
        .collect()
}

#[tokio::test]
async fn a_device_enrolled_over_scep_is_accepted_at_checkin() {
    let server = server().await;
    let device =
        TestDevice::enroll_via_scep("UDID-SCEP-1", &server.base_url(), Some(CHALLENGE), 2048)
            .await
            .unwrap()
            .expect("issued");
    assert_eq!(device.authenticate().await.unwrap().status, 200);
    assert_eq!(device.token_update().await.unwrap().status, 200);
    let issued = server
        .store()
        .events(&EventFilter {
            kind: Some("scep.issued".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(issued.len(), 1);
    assert!(!issued[0].detail.contains(CHALLENGE));
    server.stop().await;
}

#[tokio::test]
async fn ca_cert_and_caps_are_served() {
    let server = server().await;
    let ca = get_ca_cert(&server.base_url()).await.unwrap();
    assert_eq!(
        ca.to_der().unwrap(),
        server.device_ca().unwrap().certificate().to_der().unwrap()
    );
    let caps = scep_http(&server.base_url(), "operation=GetCACaps", None)
        .await
        .unwrap();
    let caps = String::from_utf8(caps.body).unwrap();
    for cap in ["POSTPKIOperation", "SHA-256", "AES", "Renewal"] {
        assert!(caps.lines().any(|l| l == cap), "{caps}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_challenge_gets_a_failure_with_bad_request() {
    let server = server().await;
    for (n, (challenge, reason)) in [
        (
            Some("guess"),
            "wrong, expired or already used challenge password",
        ),
        (None, "no challenge password"),
    ]
    .into_iter()
    .enumerate()
    {
        let rep = TestDevice::enroll_via_scep("UDID-X", &server.base_url(), challenge, 2048)
            .await
            .unwrap()
            .err()
            .expect("refused");
        assert_eq!(rep.status, PkiStatus::Failure);
        assert_eq!(rep.fail_info, Some(FailInfo::BadRequest));
        // Counted, with the latest reason (never the challenge given).
        let refusals = refusals(&server).await;
        assert!(refusals.iter().any(|d| d.contains(reason)), "{refusals:?}");
        assert!(refusals.iter().all(|d| !d.contains("guess")));
        assert_eq!(
            server.auth_failure_total("scep.refused").await,
            n as i64 + 1
        );
    }
    assert!(
        server
            .store()
            .events(&EventFilter {
                kind: Some("scep.refused".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty(),
        "no event row per refusal"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_configured_challenge_every_pkcs_req_is_refused() {
    let server = TestServer::start().await.unwrap();
    let rep = TestDevice::enroll_via_scep("UDID-X", &server.base_url(), Some("anything"), 2048)
        .await
        .unwrap()
        .err()
        .expect("refused");
    assert_eq!(rep.fail_info, Some(FailInfo::BadRequest));
    assert!(
        refusals(&server)
            .await
            .iter()
            .any(|d| d.contains("wrong, expired or already used challenge password"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_replayed_request_is_refused_and_get_works_like_post() {
    let server = server().await;
    let base = server.base_url();
    let ca = get_ca_cert(&base).await.unwrap();
    let key = testkit::device::new_key(testkit::device::KeyKind::Rsa2048).unwrap();
    let signer = self_signed_signer(&key, "replayer").unwrap();
    let csr = csr_der(&key, "replayer", Some(CHALLENGE)).unwrap();
    let req = pki_request(MessageType::PkcsReq, &csr, &signer, &key, &ca).unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &req.message);
    let query = format!("operation=PKIOperation&message={}", percent_encode(&b64));
    let first = scep_http(&base, &query, None).await.unwrap();
    assert_eq!(first.status, 200);
    let first = read_cert_rep(&first.body, &ca, &signer, &key).unwrap();
    assert_eq!(first.status, PkiStatus::Success);
    let again = scep_http(&base, "operation=PKIOperation", Some(req.message.clone()))
        .await
        .unwrap();
    let again = read_cert_rep(&again.body, &ca, &signer, &key).unwrap();
    assert_eq!(again.status, PkiStatus::Failure);
    assert_eq!(again.fail_info, Some(FailInfo::BadRequest));
    assert!(
        refusals(&server)
            .await
            .iter()
            .any(|d| d.contains("replayed"))
    );
    server.stop().await;
}

#[tokio::test]
async fn renewal_signed_by_an_enrolled_identity_needs_no_challenge_but_a_stranger_does() {
    let server = server().await;
    let base = server.base_url();
    let ca = get_ca_cert(&base).await.unwrap();
    let device = TestDevice::enroll_via_scep("UDID-RENEW", &base, Some(CHALLENGE), 2048)
        .await
        .unwrap()
        .expect("issued");
    let new_key = testkit::device::new_key(testkit::device::KeyKind::Rsa2048).unwrap();
    let csr = csr_der(&new_key, "UDID-RENEW", None).unwrap();
    // Not yet bound to an enrollment: a renewal without a challenge is refused.
    let req = pki_request(
        MessageType::RenewalReq,
        &csr,
        &device.cert,
        &device.key,
        &ca,
    )
    .unwrap();
    let reply = scep_http(&base, "operation=PKIOperation", Some(req.message))
        .await
        .unwrap();
    let rep = read_cert_rep(&reply.body, &ca, &device.cert, &device.key).unwrap();
    assert_eq!(rep.status, PkiStatus::Failure);
    // Once the device has authenticated with it, the same renewal is issued.
    assert_eq!(device.authenticate().await.unwrap().status, 200);
    let req = pki_request(
        MessageType::RenewalReq,
        &csr,
        &device.cert,
        &device.key,
        &ca,
    )
    .unwrap();
    let reply = scep_http(&base, "operation=PKIOperation", Some(req.message))
        .await
        .unwrap();
    let rep = read_cert_rep(&reply.body, &ca, &device.cert, &device.key).unwrap();
    assert_eq!(rep.status, PkiStatus::Success);
    let renewed = rep.certificate.unwrap();
    assert!(renewed.public_key().unwrap().public_eq(&new_key));
    // And the device can re-Authenticate with its renewed identity.
    let renewed_device = TestDevice::with_identity("UDID-RENEW", renewed, new_key, base.clone());
    assert_eq!(renewed_device.authenticate().await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn malformed_unknown_and_oversized_requests_get_4xx_with_a_reason() {
    let server = server().await;
    let base = server.base_url();
    for (query, body, status, says) in [
        (
            "operation=PKIOperation",
            Some(b"not pkcs7".to_vec()),
            400,
            "malformed",
        ),
        ("operation=PKIOperation", Some(Vec::new()), 400, "malformed"),
        ("operation=PKIOperation&message=%%%", None, 400, ""),
        (
            "operation=PKIOperation&message=bm90IHBrY3M3",
            None,
            400,
            "malformed",
        ),
        ("operation=PKIOperation", None, 400, "message parameter"),
        ("operation=GetNextCACert", None, 400, "unknown operation"),
        ("", None, 400, "missing operation"),
        (
            "operation=PKIOperation",
            Some(vec![0x30; pki::scep::MAX_MESSAGE_BYTES + 1]),
            413,
            "",
        ),
    ] {
        let reply = scep_http(&base, query, body).await.unwrap();
        assert_eq!(reply.status, status, "{query}");
        let text = String::from_utf8_lossy(&reply.body).to_lowercase();
        assert!(text.contains(says), "{query}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn scepclient_from_debian_enrolls_and_its_certificate_is_accepted_at_checkin() {
    let available = Command::new("scepclient").arg("-version").output().is_ok();
    if !available {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: scepclient interop (install Debian's `scep` package: apt-get install -y scep)"
        );
        return;
    }
    let server = server().await;
    for bits in ["2048", "4096"] {
        let work = tempfile::tempdir().unwrap();
        let key_path = work.path().join("client.key");
        let cert_path = work.path().join("client.pem");
        let out = tokio::process::Command::new("scepclient")
            .arg("-server-url")
            .arg(format!("{}/scep", server.base_url()))
            .arg("-challenge")
            .arg(CHALLENGE)
            .arg("-cn")
            .arg(format!("UDID-SCEPCLIENT-{bits}"))
            .arg("-keySize")
            .arg(bits)
            .arg("-private-key")
            .arg(&key_path)
            .arg("-certificate")
            .arg(&cert_path)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "scepclient failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cert = openssl::x509::X509::from_pem(&std::fs::read(&cert_path).unwrap()).unwrap();
        let key =
            openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&key_path).unwrap()).unwrap();
        assert_eq!(key.bits().to_string(), bits);
        let device = TestDevice::with_identity(
            &format!("UDID-SCEPCLIENT-{bits}"),
            cert,
            key,
            server.base_url(),
        );
        assert_eq!(device.authenticate().await.unwrap().status, 200);
    }
    // The same client with a wrong challenge is refused (scepclient exits non-zero).
    let work = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("scepclient")
        .arg("-server-url")
        .arg(format!("{}/scep", server.base_url()))
        .arg("-challenge")
        .arg("wrong")
        .arg("-private-key")
        .arg(work.path().join("k.key"))
        .arg("-certificate")
        .arg(work.path().join("c.pem"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(!work.path().join("c.pem").exists());
    server.stop().await;
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
