//! What verifying one Mac-like `Mdm-Signature` (detached CMS, RSA-2048, SHA-1, no signed attributes) costs:
//! OpenSSL's full path (parse + PKCS7_verify, as every request paid before), the verifier on a warm
//! chain-verdict cache (the `cms_fast` path with the signer's key kept in the cache, which every check-in after
//! a device's first takes), and a bare RSA-2048 verify with OpenSSL's EVP interface for comparison.
//!
//! Run: `cargo bench -p pki --bench mdm_signature`.

use criterion::{Criterion, criterion_group, criterion_main};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};
use pki::DeviceIdentityVerifier;
use pki::ca::CertificateAuthority;
use pki::sign::{SignOptions, SignatureDigest, mdm_signature};

const BODY: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
    <key>MessageType</key><string>GetBootstrapToken</string><key>UDID</key>\
    <string>0000FE00-5A1B2C3D4E5F6A7B</string></dict></plist>\n";

fn verify(c: &mut Criterion) {
    let ca = CertificateAuthority::generate("bench device CA").expect("CA");
    let key = PKey::from_rsa(Rsa::generate(2048).expect("key")).expect("key");
    let public = PKey::public_key_from_der(&key.public_key_to_der().expect("der")).expect("public");
    let cert = ca
        .issue_device_certificate("UDID-BENCH", &public, 365)
        .expect("cert");
    let opts = SignOptions {
        digest: SignatureDigest::Sha1,
        signed_attributes: false,
    };
    let header = mdm_signature(BODY, &cert, &key, opts).expect("sign");
    let verifier = DeviceIdentityVerifier::new(vec![ca.certificate().clone()]).expect("verifier");
    verifier
        .verify_mdm_signature(header.as_bytes(), BODY)
        .expect("verifies");

    let mut group = c.benchmark_group("mdm_signature");
    group.bench_function("openssl_full_path", |b| {
        b.iter(|| pki::identity::verify_signature_only(header.as_bytes(), BODY).expect("ok"))
    });
    group.bench_function("verifier_warm_cache", |b| {
        b.iter(|| {
            verifier
                .verify_mdm_signature(header.as_bytes(), BODY)
                .expect("ok")
        })
    });
    let mut signer = Signer::new(MessageDigest::sha1(), &key).expect("signer");
    signer.update(BODY).expect("update");
    let raw = signer.sign_to_vec().expect("sign");
    group.bench_function("openssl_rsa2048_sha1_verify_only", |b| {
        b.iter(|| {
            let mut v = Verifier::new(MessageDigest::sha1(), &public).expect("verifier");
            v.update(BODY).expect("update");
            assert!(v.verify(&raw).expect("verify"));
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
