//! The parsers that read what devices, proxies and admins send, as fuzz targets.
//!
//! Each target takes arbitrary bytes, as an attacker could send them, and checks what must hold for every
//! input: no panic (a panic fails the fuzzer and the tests), and the property written next to it (an error
//! never quotes a `<data>` payload of the input, so a token in a malformed body cannot reach a log; a forwarded
//! certificate that parses is one well-formed X.509 certificate; ...). Hangs and runaway memory show under
//! cargo-fuzz's timeout and RSS limit.
//!
//! Two runners share the targets:
//! - `fuzz/` at the repository root (its own workspace, nightly only): `cargo +nightly fuzz run <target>`,
//!   coverage-guided by libFuzzer. See `fuzz/README.md`.
//! - this crate's tests (stable, part of `cargo test --workspace`): every target over [`mutate::Mutator`]'s
//!   mutations of real inputs (plists captured from Macs, and messages, signatures, profiles and SCEP
//!   requests as escrowd and its simulator build them), seeded, so a failure replays.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use pki::DeviceIdentityVerifier;
use pki::ca::CertificateAuthority;
use pki::sign::{SignOptions, SignatureDigest};
use protocol::checkin::{CheckinMessage, parse_checkin};
use protocol::command::{Command, parse_report};
use protocol::profile::EnrollmentProfile;
use protocol::results::{DeviceInformation, SecurityInfo, UserList};

pub mod mutate;

/// One fuzz target: its name (the file in `fuzz/fuzz_targets/`) and what it runs on one input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the tests run them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "checkin",
        run: checkin,
    },
    Target {
        name: "command_report",
        run: command_report,
    },
    Target {
        name: "raw_command",
        run: raw_command,
    },
    Target {
        name: "enrollment_profile",
        run: enrollment_profile,
    },
    Target {
        name: "agent_settings",
        run: agent_settings,
    },
    Target {
        name: "mdm_signature",
        run: mdm_signature,
    },
    Target {
        name: "forwarded_cert",
        run: forwarded_cert,
    },
    Target {
        name: "scep_request",
        run: scep_request,
    },
    Target {
        name: "signed_profile",
        run: signed_profile,
    },
];

/// A check-in body (`PUT /mdm/checkin`), as the server reads it before anything else.
pub fn checkin(data: &[u8]) {
    match parse_checkin(data) {
        Ok(m) => {
            let _ = m.message_type();
            let _ = m.identity().device_id();
            if let CheckinMessage::SetBootstrapToken(s) = &m {
                let _ = s.token_to_store();
            }
        }
        Err(e) => assert_quotes_no_data(&e.to_string(), data),
    }
}

/// A command report (`PUT /mdm/connect`) and the typed results escrowd reads from one.
pub fn command_report(data: &[u8]) {
    match parse_report(data) {
        Ok(r) => {
            for e in [
                SecurityInfo::from_report(&r).err(),
                UserList::from_report(&r).err(),
                DeviceInformation::from_report(&r).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert_quotes_no_data(&e.to_string(), data);
            }
        }
        Err(e) => assert_quotes_no_data(&e.to_string(), data),
    }
}

/// A raw command plist as an admin uploads it (`escrowd command send --plist`, the admin API).
pub fn raw_command(data: &[u8]) {
    match Command::from_raw_plist(data) {
        Ok(c) => {
            // What escrowd accepts it can write back and read again as the same command.
            let xml = c.to_xml().expect("an accepted command writes back");
            let again = Command::from_raw_plist(&xml).expect("a written command reads back");
            assert_eq!(again.uuid, c.uuid);
            assert_eq!(again.request_type, c.request_type);
            let _ = c.has_secret_keys();
            let _ = c.redacted();
        }
        Err(e) => assert_quotes_no_data(&e.to_string(), data),
    }
}

/// An enrollment profile as the simulator and `escrowd enroll` read one.
pub fn enrollment_profile(data: &[u8]) {
    if let Err(e) = EnrollmentProfile::parse(data) {
        assert_quotes_no_data(&e.to_string(), data);
    }
}

/// The agent's managed preferences (or a profile holding them), as the Mac agent reads them at start.
pub fn agent_settings(data: &[u8]) {
    if let Err(e) = protocol::agent_profile::parse_agent_settings(data) {
        assert_quotes_no_data(&e.to_string(), data);
    }
}

/// The device CA, the verifier that trusts it and a device identity it issued, made once per process.
pub struct Fixture {
    pub ca: CertificateAuthority,
    pub verifier: DeviceIdentityVerifier,
    pub device_cert: openssl::x509::X509,
    pub device_key: PKey<openssl::pkey::Private>,
}

/// The process's [`Fixture`] (an RSA-2048 CA and device key: about a tenth of a second, once).
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ca = CertificateAuthority::generate("escrowd fuzzing CA").expect("CA");
    let verifier = DeviceIdentityVerifier::new(vec![ca.certificate().clone()]).expect("verifier");
    let device_key = PKey::from_rsa(Rsa::generate(2048).expect("device key")).expect("device key");
    let public = PKey::public_key_from_der(&device_key.public_key_to_der().expect("public key"))
        .expect("public key");
    let device_cert = ca
        .issue_device_certificate("fuzzing device", &public, 30)
        .expect("device certificate");
    Fixture {
        ca,
        verifier,
        device_cert,
        device_key,
    }
});

/// How an `Mdm-Signature` input is laid out: the body's length (two bytes, big-endian), the body, then the
/// signature. The first byte's low bit picks whether the signature is raw DER (encoded to the header's
/// base64 here, so mutations reach the CMS reader) or the header's text itself (the base64 decoder).
pub fn mdm_signature_input(body: &[u8], header: &[u8], der: bool) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(3 + body.len() + header.len());
    out.push(u8::from(!der));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body[..usize::from(len)]);
    out.extend_from_slice(header);
    out
}

/// The body and the `Mdm-Signature` header of an input laid out as [`mdm_signature_input`] writes it; None
/// when it is shorter than its first three bytes.
pub fn split_mdm_signature_input(data: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let (&mode, rest) = data.split_first()?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let (body, signature) = rest.split_at(usize::from(u16::from_be_bytes(*len)).min(rest.len()));
    let header = if mode & 1 == 0 {
        STANDARD.encode(signature).into_bytes()
    } else {
        signature.to_vec()
    };
    Some((body, header))
}

/// A signed check-in as the server verifies it: `Mdm-Signature` (detached CMS, signer certificate embedded)
/// over the body, then the signer's chain to the device CA (see [`mdm_signature_input`] for the layout).
pub fn mdm_signature(data: &[u8]) {
    let Some((body, header)) = split_mdm_signature_input(data) else {
        return;
    };
    match FIXTURE.verifier.verify_mdm_signature(&header, body) {
        // Only a certificate the CA issued can pass the chain check, and only this fixture's key signs here.
        Ok(info) => assert_eq!(
            info.der,
            FIXTURE.device_cert.to_der().expect("DER"),
            "a signature verified for a certificate the device CA never issued"
        ),
        Err(e) => assert_bounded(&e.to_string()),
    }
}

/// A client certificate forwarded by a TLS-terminating proxy (`--forwarded-cert-header`).
pub fn forwarded_cert(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    match pki::forwarded::parse_forwarded_cert(value) {
        // Its guarantee: the DER of exactly one well-formed certificate.
        Ok(der) => {
            let cert = openssl::x509::X509::from_der(&der).expect("well-formed certificate");
            assert_eq!(cert.to_der().expect("DER"), der, "exactly one certificate");
        }
        Err(e) => assert_bounded(&e.to_string()),
    }
}

/// A SCEP PKIOperation message (`POST /scep?operation=PKIOperation`) as the server decodes it.
pub fn scep_request(data: &[u8]) {
    if let Err(e) = pki::scep::decode_request(data) {
        assert_bounded(&e.to_string());
    }
}

/// A signed profile checked against the device CA (as the simulator checks the enrollment profile it got).
pub fn signed_profile(data: &[u8]) {
    if let Err(e) = pki::profile_sign::verify_signed_profile(data, FIXTURE.ca.certificate()) {
        assert_bounded(&e.to_string());
    }
}

/// The longest error message a target accepts: errors name what is wrong, they do not quote the input.
pub const MAX_ERROR_CHARS: usize = 2048;

/// `error` (an error's message) is at most [`MAX_ERROR_CHARS`] long.
fn assert_bounded(error: &str) {
    assert!(
        error.len() <= MAX_ERROR_CHARS,
        "an error of {} bytes",
        error.len()
    );
}

/// The `<data>` payloads of at least this many characters that an error must never quote: longer than any
/// echo of an input string (`protocol::error::echo` keeps 64 characters), as long as a Bootstrap Token's.
pub const MIN_QUOTED_DATA_CHARS: usize = 80;

/// `error` (an error's message) neither runs on nor quotes a `<data>` payload of `input` (a token in a
/// malformed body must not reach a log line).
pub fn assert_quotes_no_data(error: &str, input: &[u8]) {
    assert_bounded(error);
    for payload in data_payloads(input) {
        assert!(
            !error.contains(payload),
            "the error quotes a <data> payload of the input: {error}"
        );
    }
}

/// The text of every `<data>…</data>` element of `input` with at least [`MIN_QUOTED_DATA_CHARS`] characters
/// once trimmed.
pub fn data_payloads(input: &[u8]) -> Vec<&str> {
    const OPEN: &[u8] = b"<data>";
    const CLOSE: &[u8] = b"</data>";
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(start) = find(rest, OPEN) {
        rest = &rest[start + OPEN.len()..];
        let Some(end) = find(rest, CLOSE) else { break };
        if let Ok(text) = std::str::from_utf8(&rest[..end]) {
            let text = text.trim();
            if text.len() >= MIN_QUOTED_DATA_CHARS {
                out.push(text);
            }
        }
        rest = &rest[end + CLOSE.len()..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An `Mdm-Signature` over `body` by the fixture's device, as a Mac makes it (SHA-1 or SHA-256, no signed
/// attributes), in [`mdm_signature_input`]'s layout with the signature as DER.
pub fn signed_by_fixture(body: &[u8], digest: SignatureDigest) -> Vec<u8> {
    let f = &*FIXTURE;
    let header = pki::sign::mdm_signature(
        body,
        &f.device_cert,
        &f.device_key,
        SignOptions {
            digest,
            signed_attributes: false,
        },
    )
    .expect("signing");
    let der = STANDARD.decode(header).expect("base64");
    mdm_signature_input(body, &der, true)
}
