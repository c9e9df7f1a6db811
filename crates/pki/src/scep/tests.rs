use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;

use super::client::{csr_der, pki_request, read_cert_rep, self_signed_signer};
use super::*;
use crate::DeviceIdentityVerifier;
use crate::ca::CertificateAuthority;
use crate::test_support::{device_ca, ec_key};

fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

fn pkcs_req(
    ca: &CertificateAuthority,
    key: &PKey<Private>,
    challenge: Option<&str>,
) -> client::ClientRequest {
    let signer = self_signed_signer(key, "scep-signer").unwrap();
    let csr = csr_der(key, "mac-001", challenge).unwrap();
    pki_request(MessageType::PkcsReq, &csr, &signer, key, ca.certificate()).unwrap()
}

#[test]
fn pkcs_req_round_trips_for_rsa_2048_and_4096_and_the_issued_certificate_chains_to_the_ca() {
    let ca = device_ca();
    let verifier = DeviceIdentityVerifier::new(vec![ca.certificate().clone()]).unwrap();
    for bits in [2048, 4096] {
        let key = rsa(bits);
        let sent = pkcs_req(ca, &key, Some("s3cret"));
        let req = decode_request(&sent.message).unwrap();
        assert_eq!(req.message_type, Some(MessageType::PkcsReq));
        assert_eq!(req.transaction_id, sent.transaction_id);
        assert_eq!(req.sender_nonce, sent.sender_nonce);
        let csr = req.csr(ca).unwrap();
        assert_eq!(csr.key_bits, bits);
        assert_eq!(csr.common_name.as_deref(), Some("mac-001"));
        assert_eq!(csr.challenge.as_ref().unwrap().expose(), b"s3cret");
        let issued = ca
            .issue_device_certificate("mac-001", &csr.public_key, 30)
            .unwrap();
        let reply = cert_rep_success(ca, &req, &issued).unwrap();
        let signer = self_signed_signer(&key, "scep-signer").unwrap();
        // The reply is encrypted to the request's signer certificate; any certificate with the same key works.
        let rep = read_cert_rep(&reply, ca.certificate(), &req.signer, &key).unwrap();
        assert_eq!(rep.status, PkiStatus::Success);
        assert_eq!(rep.transaction_id, sent.transaction_id);
        assert_eq!(rep.recipient_nonce.as_deref(), Some(&sent.sender_nonce[..]));
        let cert = rep.certificate.unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert!(
            verifier
                .verify_certificate_der(&cert.to_der().unwrap())
                .is_ok()
        );
        assert!(signer.public_key().unwrap().public_eq(&key));
    }
}

#[test]
fn renewal_req_is_signed_by_the_current_identity() {
    let ca = device_ca();
    let old_key = rsa(2048);
    let current = ca
        .issue_device_certificate("mac-001", &crate::test_support::public_of(&old_key), 30)
        .unwrap();
    let new_key = rsa(2048);
    let csr = csr_der(&new_key, "mac-001", None).unwrap();
    let sent = pki_request(
        MessageType::RenewalReq,
        &csr,
        &current,
        &old_key,
        ca.certificate(),
    )
    .unwrap();
    let req = decode_request(&sent.message).unwrap();
    assert_eq!(req.message_type, Some(MessageType::RenewalReq));
    assert_eq!(req.signer.to_der().unwrap(), current.to_der().unwrap());
    let csr = req.csr(ca).unwrap();
    assert!(csr.challenge.is_none());
    assert!(csr.public_key.public_eq(&new_key));
}

#[test]
fn failure_reply_carries_fail_info_and_echoes_the_nonce() {
    let ca = device_ca();
    let key = rsa(2048);
    let sent = pkcs_req(ca, &key, Some("wrong"));
    let req = decode_request(&sent.message).unwrap();
    let reply = cert_rep_failure(ca, &req, FailInfo::BadRequest).unwrap();
    let rep = read_cert_rep(&reply, ca.certificate(), &req.signer, &key).unwrap();
    assert_eq!(rep.status, PkiStatus::Failure);
    assert_eq!(rep.fail_info, Some(FailInfo::BadRequest));
    assert_eq!(rep.recipient_nonce.as_deref(), Some(&sent.sender_nonce[..]));
    assert!(rep.certificate.is_none());
}

#[test]
fn a_reply_from_another_ca_is_not_accepted_by_the_client() {
    let ca = device_ca();
    let other = CertificateAuthority::generate("other").unwrap();
    let key = rsa(2048);
    let sent = pkcs_req(ca, &key, None);
    let req = decode_request(&sent.message).unwrap();
    let reply = cert_rep_failure(&other, &req, FailInfo::BadRequest).unwrap();
    assert!(read_cert_rep(&reply, ca.certificate(), &req.signer, &key).is_err());
}

#[test]
fn a_request_encrypted_to_another_ca_is_refused_with_bad_message_check() {
    let ca = device_ca();
    let other = CertificateAuthority::generate("other").unwrap();
    let key = rsa(2048);
    let sent = pkcs_req(&other, &key, None);
    let req = decode_request(&sent.message).unwrap();
    match req.csr(ca) {
        Err(ScepError::Refused { fail_info, .. }) => {
            assert_eq!(fail_info, FailInfo::BadMessageCheck)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn small_rsa_and_ec_keys_are_refused_with_bad_alg() {
    let ca = device_ca();
    for key in [rsa(1024), ec_key()] {
        let signer_key = rsa(2048);
        let signer = self_signed_signer(&signer_key, "signer").unwrap();
        let csr = csr_der(&key, "mac", None).unwrap();
        let sent = pki_request(
            MessageType::PkcsReq,
            &csr,
            &signer,
            &signer_key,
            ca.certificate(),
        )
        .unwrap();
        match decode_request(&sent.message).unwrap().csr(ca) {
            Err(ScepError::Refused { fail_info, .. }) => assert_eq!(fail_info, FailInfo::BadAlg),
            other => panic!("expected badAlg, got {other:?}"),
        }
    }
}

#[test]
fn malformed_truncated_tampered_and_oversized_messages_are_malformed() {
    let ca = device_ca();
    let sent = pkcs_req(ca, &rsa(2048), Some("x"));
    for garbage in [&b""[..], b"not pkcs7", &[0x30, 0x80, 0, 0], &[0x30; 64]] {
        assert!(matches!(
            decode_request(garbage),
            Err(ScepError::Malformed(_))
        ));
    }
    for cut in (0..sent.message.len()).step_by(97) {
        assert!(
            matches!(
                decode_request(&sent.message[..cut]),
                Err(ScepError::Malformed(_))
            ),
            "truncated at {cut}"
        );
    }
    // Flip a byte inside the encrypted content: the messageDigest no longer matches.
    let mut tampered = sent.message.clone();
    let middle = tampered.len() / 3;
    tampered[middle] ^= 0x01;
    assert!(decode_request(&tampered).is_err());
    let huge = vec![0x30u8; MAX_MESSAGE_BYTES + 1];
    match decode_request(&huge) {
        Err(ScepError::Malformed(m)) => assert!(m.contains("at most"), "{m}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn debug_output_hides_the_challenge() {
    let ca = device_ca();
    let sent = pkcs_req(ca, &rsa(2048), Some("hunter2-challenge"));
    let req = decode_request(&sent.message).unwrap();
    let csr = req.csr(ca).unwrap();
    let shown = format!("{req:?} {csr:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("REDACTED"), "{shown}");
}
