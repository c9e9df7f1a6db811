use super::*;
use crate::identity::DeviceIdentityVerifier;
use crate::sign::{SignOptions, SignatureDigest, mdm_signature};
use crate::test_support::{device_ca, ec_device, rsa_device};
use crate::{IdentityError, cms};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

const CAPTURE_2_SIG: &[u8] =
    include_bytes!("../../../../testdata/captures/nanomdm__mdm-signature.2.b64");
const CAPTURE_2_BODY: &[u8] =
    include_bytes!("../../../../testdata/captures/nanomdm__mdm-signature.2.body.plist");
const CAPTURE_1_SIG: &[u8] =
    include_bytes!("../../../../testdata/captures/nanomdm__mdm-signature.1.b64");

const BODY: &[u8] = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>MessageType</key>\
    <string>GetBootstrapToken</string></dict></plist>\n";

const MAC_LIKE: SignOptions = SignOptions {
    digest: SignatureDigest::Sha1,
    signed_attributes: false,
};

fn verifier() -> DeviceIdentityVerifier {
    DeviceIdentityVerifier::new(vec![device_ca().certificate().clone()]).unwrap()
}

fn flipped(body: &[u8], index: usize) -> Vec<u8> {
    let mut out = body.to_vec();
    out[index] ^= 0x01;
    out
}

#[test]
fn lengths_past_the_end_and_deep_nesting_are_refused_without_panicking() {
    assert!(read(&[0x30, 0x05, 0x01], 0).is_none());
    assert!(read(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0).is_none());
    assert!(
        read(&[0x30, 0x80, 0x02, 0x01], 0).is_none(),
        "no end-of-contents"
    );
    assert!(
        read(&[0x04, 0x80, 0x00, 0x00], 0).is_none(),
        "indefinite primitive"
    );
    let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 64)
        .flatten()
        .chain(std::iter::repeat_n(0u8, 128))
        .collect();
    assert!(read(&deep, 0).is_none());
    assert!(parse(&[]).is_none());
}

#[test]
fn indefinite_lengths_are_read_to_their_end_of_contents() {
    let buf = [0x30, 0x80, 0x02, 0x01, 0x07, 0x00, 0x00, 0x05, 0x00];
    let (tlv, rest) = read(&buf, 0).unwrap();
    assert_eq!(tlv.content, &[0x02, 0x01, 0x07]);
    assert_eq!(tlv.raw.len(), 7);
    assert_eq!(rest, &[0x05, 0x00]);
}

#[test]
fn the_real_mac_capture_takes_the_fast_path_over_its_exact_body_only() {
    let der = cms::decode_header(CAPTURE_2_SIG).unwrap();
    let sig = parse(&der).expect("a real Mac's BER signature has the fast shape");
    assert!(sig.verify(CAPTURE_2_BODY));
    let slow = crate::identity::verify_signature_only(CAPTURE_2_SIG, CAPTURE_2_BODY).unwrap();
    assert_eq!(
        sig.signer_der,
        slow.der.as_slice(),
        "same signer bytes as OpenSSL's"
    );
    for index in [0, CAPTURE_2_BODY.len() / 2, CAPTURE_2_BODY.len() - 1] {
        assert!(!sig.verify(&flipped(CAPTURE_2_BODY, index)), "byte {index}");
    }
    let mut longer = CAPTURE_2_BODY.to_vec();
    longer.push(b'\n');
    assert!(!sig.verify(&longer));
    assert!(!sig.verify(&CAPTURE_2_BODY[..CAPTURE_2_BODY.len() - 1]));

    let other = cms::decode_header(CAPTURE_1_SIG).unwrap();
    if let Some(sig) = parse(&other) {
        for body in [CAPTURE_2_BODY, b"".as_slice(), BODY] {
            assert!(!sig.verify(body));
        }
    }
}

#[test]
fn truncated_or_corrupted_signatures_never_panic_and_never_verify() {
    let der = cms::decode_header(CAPTURE_2_SIG).unwrap();
    for len in 0..der.len() {
        if let Some(sig) = parse(&der[..len]) {
            assert!(!sig.verify(CAPTURE_2_BODY), "truncated to {len}");
        }
    }
    assert_flips_agree_with_openssl(&der, CAPTURE_2_BODY);
    let (cert, key) = rsa_device("flips");
    let header = mdm_signature(BODY, &cert, &key, MAC_LIKE).unwrap();
    assert_flips_agree_with_openssl(&cms::decode_header(header.as_bytes()).unwrap(), BODY);
}

/// Flips bits everywhere in `der`: whatever the fast path still accepts, OpenSSL's full path accepts too with
/// the same signer, or the signer's bytes changed (so the chain-verdict cache, keyed by them, cannot hit).
fn assert_flips_agree_with_openssl(der: &[u8], body: &[u8]) {
    let original = parse(der).unwrap().signer_der;
    for (index, flip) in (0..der.len()).flat_map(|i| [(i, 0x01u8), (i, 0x55), (i, 0x80)]) {
        let mut bad = der.to_vec();
        bad[index] ^= flip;
        if let Some(sig) = parse(&bad)
            && sig.verify(body)
        {
            // Accepted here: either the signer's bytes changed (a flip in its certificate outside the key), so
            // the chain-verdict cache keyed by them cannot hit, or OpenSSL's full path accepts it too, with the
            // same signer.
            if sig.signer_der != original {
                continue;
            }
            use base64::Engine as _;
            let header = base64::engine::general_purpose::STANDARD.encode(&bad);
            let slow = crate::identity::verify_signature_only(header.as_bytes(), body)
                .unwrap_or_else(|e| panic!("byte {index}: fast path accepts, OpenSSL says {e}"));
            assert_eq!(slow.der, sig.signer_der, "byte {index}");
        }
    }
}

/// Verifies `header` twice (the first fills the cache), then tampered bodies; how many took the fast path.
fn fast_verifies(header: &str) -> u64 {
    let v = verifier();
    v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
    assert_eq!(
        v.fast_verifies_performed(),
        0,
        "a cold cache takes the full path"
    );
    v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
    let fast = v.fast_verifies_performed();
    for bad in [
        flipped(BODY, 0),
        flipped(BODY, BODY.len() - 1),
        BODY[1..].to_vec(),
    ] {
        let err = v.verify_mdm_signature(header.as_bytes(), &bad).unwrap_err();
        assert!(matches!(err, IdentityError::BadSignature), "{err}");
    }
    assert_eq!(
        v.fast_verifies_performed(),
        fast,
        "a failed fast verify is never counted"
    );
    assert_eq!(v.chain_checks_performed(), 1);
    fast
}

#[test]
fn mac_like_rsa_sha1_without_attributes_takes_the_fast_path_once_cached() {
    let (cert, key) = rsa_device("fast-sha1");
    assert_eq!(
        fast_verifies(&mdm_signature(BODY, &cert, &key, MAC_LIKE).unwrap()),
        1
    );
}

#[test]
fn rsa_sha256_and_ecdsa_without_attributes_take_the_fast_path() {
    let opts = SignOptions {
        digest: SignatureDigest::Sha256,
        signed_attributes: false,
    };
    let (cert, key) = rsa_device("fast-sha256");
    assert_eq!(
        fast_verifies(&mdm_signature(BODY, &cert, &key, opts).unwrap()),
        1
    );
    let (cert, key) = ec_device("fast-ecdsa");
    assert_eq!(
        fast_verifies(&mdm_signature(BODY, &cert, &key, opts).unwrap()),
        1
    );
}

#[test]
fn signed_attributes_take_the_full_path() {
    let (cert, key) = rsa_device("slow-attrs");
    let header = mdm_signature(BODY, &cert, &key, SignOptions::default()).unwrap();
    assert_eq!(fast_verifies(&header), 0);
}

#[test]
fn a_cached_certificate_with_another_devices_signature_is_refused() {
    // The header names device A's cached certificate, but its signature bytes are device B's.
    let v = verifier();
    let (cert_a, key_a) = rsa_device("fast-a");
    let (cert_b, key_b) = rsa_device("fast-b");
    let header_a = mdm_signature(BODY, &cert_a, &key_a, MAC_LIKE).unwrap();
    let header_b = mdm_signature(BODY, &cert_b, &key_b, MAC_LIKE).unwrap();
    v.verify_mdm_signature(header_a.as_bytes(), BODY).unwrap();
    let der_a = cms::decode_header(header_a.as_bytes()).unwrap();
    let der_b = cms::decode_header(header_b.as_bytes()).unwrap();
    let sig_a = parse(&der_a).unwrap().signature;
    let sig_b = parse(&der_b).unwrap().signature;
    assert_eq!(sig_a.len(), sig_b.len());
    let at = der_a.windows(sig_a.len()).position(|w| w == sig_a).unwrap();
    let mut forged = der_a.clone();
    forged[at..at + sig_b.len()].copy_from_slice(sig_b);
    use base64::Engine as _;
    let forged = base64::engine::general_purpose::STANDARD.encode(forged);
    let err = v.verify_mdm_signature(forged.as_bytes(), BODY).unwrap_err();
    assert!(matches!(err, IdentityError::BadSignature), "{err}");
    assert_eq!(v.fast_verifies_performed(), 0);
}

#[test]
fn rsa_keys_under_2048_bits_take_the_full_path() {
    let key = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let cert = crate::test_support::device_cert(device_ca(), "small-key", &key);
    let header = mdm_signature(BODY, &cert, &key, MAC_LIKE).unwrap();
    let der = cms::decode_header(header.as_bytes()).unwrap();
    assert!(parse(&der).unwrap().signer_key().is_none());
    assert!(!parse(&der).unwrap().verify(BODY), "never verified here");
    let v = verifier();
    v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
    v.verify_mdm_signature(header.as_bytes(), BODY).unwrap();
    assert_eq!(v.fast_verifies_performed(), 0);
}

#[test]
fn sha1_and_sha256_verify_and_a_flipped_byte_or_another_key_never_does() {
    for digest in [SignatureDigest::Sha1, SignatureDigest::Sha256] {
        let opts = SignOptions {
            digest,
            signed_attributes: false,
        };
        let (cert, key) = rsa_device("every-digest");
        let header = mdm_signature(BODY, &cert, &key, opts).unwrap();
        let der = cms::decode_header(header.as_bytes()).unwrap();
        let sig = parse(&der).expect("fast shape");
        assert!(sig.verify(BODY));
        assert!(!sig.verify(&flipped(BODY, 10)));
        let (other, other_key) = rsa_device("every-digest-other");
        let other_header = mdm_signature(BODY, &other, &other_key, opts).unwrap();
        let other_der = cms::decode_header(other_header.as_bytes()).unwrap();
        let other_signer = parse(&other_der).unwrap().signer_key().unwrap();
        assert!(!sig.verify_with(&other_signer, BODY));
    }
}

#[test]
fn the_digest_infos_are_what_openssl_signs_and_nothing_else() {
    use openssl::hash::MessageDigest;
    let (_, key) = rsa_device("digest-info");
    let rsa = key.rsa().unwrap();
    for (digest, md) in [
        (Digest::Sha1, MessageDigest::sha1()),
        (Digest::Sha256, MessageDigest::sha256()),
        (Digest::Sha384, MessageDigest::sha384()),
        (Digest::Sha512, MessageDigest::sha512()),
    ] {
        let mut signer = openssl::sign::Signer::new(md, &key).unwrap();
        let signature = signer.sign_oneshot_to_vec(BODY).unwrap();
        let mut decrypted = vec![0; rsa.size() as usize];
        let len = rsa
            .public_decrypt(&signature, &mut decrypted, openssl::rsa::Padding::PKCS1)
            .unwrap();
        assert!(
            digest.is_digest_info_of(&decrypted[..len], BODY),
            "{:?}",
            md.type_()
        );
        // Another body, or the DigestInfo cut short or grown by a byte, is not it.
        assert!(!digest.is_digest_info_of(&decrypted[..len], b"another body"));
        assert!(!digest.is_digest_info_of(&decrypted[..len - 1], BODY));
        assert!(!digest.is_digest_info_of(&decrypted[1..len], BODY));
        let mut longer = decrypted[..len].to_vec();
        longer.push(0);
        assert!(!digest.is_digest_info_of(&longer, BODY));
    }
}

#[test]
fn rsa_public_keys_are_read_only_from_plain_der_with_positive_minimal_integers() {
    let (_, key) = rsa_device("rsa-public-key");
    let rsa = key.rsa().unwrap();
    let der = rsa.public_key_to_der_pkcs1().unwrap();
    let read = rsa_public_key(&der).expect("a well-formed RSAPublicKey");
    assert_eq!(read.n(), rsa.n());
    assert_eq!(read.e(), rsa.e());

    // Rebuild with chosen integer encodings: SEQUENCE { INTEGER n, INTEGER e }.
    let n = rsa.n().to_vec();
    let encode = |n_content: &[u8], e_content: &[u8], trailing: &[u8]| {
        let mut ints = Vec::new();
        for content in [n_content, e_content] {
            ints.push(INTEGER);
            match content.len() {
                l if l < 0x80 => ints.push(l as u8),
                l => ints.extend_from_slice(&[0x82, (l >> 8) as u8, l as u8]),
            }
            ints.extend_from_slice(content);
        }
        let mut out = vec![SEQUENCE, 0x82, (ints.len() >> 8) as u8, ints.len() as u8];
        out.extend_from_slice(&ints);
        out.extend_from_slice(trailing);
        out
    };
    let with_zero = [&[0u8][..], &n].concat();
    assert!(rsa_public_key(&encode(&with_zero, &[1, 0, 1], &[])).is_some());
    assert!(
        rsa_public_key(&encode(&n, &[1, 0, 1], &[])).is_none(),
        "negative modulus"
    );
    let padded = [&[0u8, 0][..], &n].concat();
    assert!(
        rsa_public_key(&encode(&padded, &[1, 0, 1], &[])).is_none(),
        "needless zero"
    );
    assert!(
        rsa_public_key(&encode(&with_zero, &[0], &[])).is_none(),
        "zero exponent"
    );
    assert!(
        rsa_public_key(&encode(&with_zero, &[], &[])).is_none(),
        "empty exponent"
    );
    assert!(
        rsa_public_key(&encode(&with_zero, &[1, 0, 1], &[0])).is_none(),
        "trailing byte"
    );
    assert!(
        rsa_public_key(&encode(&[0, 0x80, 1], &[1, 0, 1], &[])).is_none(),
        "17 bits"
    );
    for cut in [0, 1, 4, der.len() / 2, der.len() - 1] {
        assert!(rsa_public_key(&der[..cut]).is_none(), "truncated at {cut}");
    }
}
