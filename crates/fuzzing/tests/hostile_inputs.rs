//! The stable runner: every fuzz target over seeded mutations of real inputs. The seeds are what escrowd meets
//! in the field (plists captured from Macs in `testdata/captures`, and messages, signatures, profiles and SCEP
//! requests as escrowd's tests and simulator build them); each seed must be accepted, so the mutants start
//! deep in the parser and not at its first check.
//!
//! `FUZZ_MUTANTS` (default 3000) sets the mutants per target, `FUZZ_SEED` the mutator's seed (default 1; a
//! failure prints the seed and the mutant's number, and the same values replay it). For coverage-guided
//! fuzzing, see `fuzz/README.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fuzzing::mutate::Mutator;
use fuzzing::{FIXTURE, TARGETS};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use pki::scep::MessageType;
use pki::sign::SignatureDigest;
use plist::{Dictionary, Value};
use protocol::agent_profile::AgentSettings;
use protocol::command::Command;
use protocol::profile::{MdmPayload, Profile, ScepPayload};
use testkit::messages;
use vault::Secret;

const UDID: &str = "0000FE00-5B1C9A2B7D6E3F41";

fn captures(names: &[&str]) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures");
    names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect()
}

fn checkin_seeds() -> Vec<Vec<u8>> {
    let mut seeds = captures(&[
        "nanomdm__Authenticate.1.plist",
        "nanomdm__Authenticate.2.plist",
        "nanomdm__TokenUpdate.1.plist",
        "nanomdm__TokenUpdate.2.plist",
        "commandment__TokenUpdate.10.12.2-user.plist",
    ]);
    seeds.extend([
        messages::authenticate(UDID),
        messages::token_update(UDID, Some(true)),
        messages::user_token_update(UDID, "A1B2C3D4-0000-4000-8000-000000000001", "alice"),
        messages::set_bootstrap_token(UDID, Some(&[0x5a; 120]), Some(false)),
        messages::set_bootstrap_token(UDID, None, None),
        messages::get_bootstrap_token(UDID, Some(true)),
        messages::checkout(UDID),
    ]);
    seeds
}

fn report_seeds() -> Vec<Vec<u8>> {
    let mut seeds = captures(&[
        "commandment__SecurityInfo.macOS-10.13.1.plist",
        "nanocmd__secinfo.plist",
        "zentral__security_info.plist",
        "zentral__security_info_ios.plist",
        "nanomdm__DeviceInformation.1.plist",
        // The body a real Mac signed: an Idle report.
        "nanomdm__mdm-signature.2.body.plist",
    ]);
    let mut user = Dictionary::new();
    user.insert(
        "UserGUID".into(),
        "A1B2C3D4-0000-4000-8000-000000000001".into(),
    );
    user.insert("UserShortName".into(), "alice".into());
    user.insert("UserLongName".into(), "Alice".into());
    user.insert("HasSecureToken".into(), true.into());
    user.insert("IsLoggedIn".into(), false.into());
    let mut users = Dictionary::new();
    users.insert("Users".into(), Value::Array(vec![Value::Dictionary(user)]));
    let mut chain = Dictionary::new();
    let mut error = Dictionary::new();
    error.insert("ErrorCode".into(), Value::Integer(12_021.into()));
    error.insert("ErrorDomain".into(), "MCMDMErrorDomain".into());
    error.insert("LocalizedDescription".into(), "Unknown command".into());
    chain.insert(
        "ErrorChain".into(),
        Value::Array(vec![Value::Dictionary(error)]),
    );
    seeds.extend([
        messages::report(UDID, "Acknowledged", Some("UL-1"), users),
        messages::report(UDID, "Error", Some("C-2"), chain),
        messages::report(UDID, "Idle", None, Dictionary::new()),
        messages::report(UDID, "NotNow", Some("C-3"), Dictionary::new()),
    ]);
    seeds
}

fn raw_command_seeds() -> Vec<Vec<u8>> {
    [
        Command::security_info("7A4F0E3C-0000-4000-8000-000000000001".into()),
        Command::user_list("7A4F0E3C-0000-4000-8000-000000000002".into()),
        Command::device_information(
            "7A4F0E3C-0000-4000-8000-000000000003".into(),
            &["OSVersion", "SerialNumber"],
        ),
        Command::device_configured("7A4F0E3C-0000-4000-8000-000000000004".into()),
    ]
    .iter()
    .map(|c| c.to_xml().unwrap())
    .collect()
}

fn profile_seeds() -> Vec<Vec<u8>> {
    let scep = ScepPayload {
        identifier: "com.example.fuzz.scep".into(),
        uuid: "9D1E2F30-0000-4000-8000-000000000001".into(),
        url: "https://mdm.example.com/scep".into(),
        challenge: Secret::new("challenge-for-the-fuzzer".into()),
        name: "escrowd".into(),
        subject: vec![("CN".into(), "escrowd device".into())],
        key_size: 2048,
    };
    let mdm = MdmPayload {
        identifier: "com.example.fuzz.mdm".into(),
        uuid: "9D1E2F30-0000-4000-8000-000000000002".into(),
        server_url: "https://mdm.example.com/mdm/connect".into(),
        checkin_url: "https://mdm.example.com/mdm/checkin".into(),
        topic: "com.apple.mgmt.External.fuzz".into(),
        identity_certificate_uuid: "9D1E2F30-0000-4000-8000-000000000001".into(),
        bootstrap_token: true,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        access_rights: 8191,
    };
    let profile = Profile {
        identifier: "com.example.fuzz".into(),
        uuid: "9D1E2F30-0000-4000-8000-000000000003".into(),
        display_name: "fuzz enrollment".into(),
        organization: "escrowd".into(),
        description: "Enrolls this Mac".into(),
        payloads: vec![scep.into_payload(), mdm.into_payload()],
    };
    vec![profile.to_xml().unwrap()]
}

fn agent_settings_seeds() -> Vec<Vec<u8>> {
    let settings = AgentSettings {
        server_url: "https://mdm.example.com".into(),
        device_id: UDID.into(),
        registration_secret: Secret::new("registration-secret-for-the-fuzzer".into()),
    };
    let profile = protocol::agent_profile::agent_profile(
        &settings,
        "9D1E2F30-0000-4000-8000-000000000004",
        "9D1E2F30-0000-4000-8000-000000000005",
    )
    .unwrap();
    // The managed-preferences form: the payload's keys at the top level.
    let mut prefs = Dictionary::new();
    prefs.insert("ServerURL".into(), settings.server_url.clone().into());
    prefs.insert("DeviceID".into(), settings.device_id.clone().into());
    prefs.insert(
        "RegistrationSecret".into(),
        settings.registration_secret.expose().clone().into(),
    );
    vec![profile, messages::to_xml(prefs)]
}

fn mdm_signature_seeds() -> Vec<Vec<u8>> {
    let get = messages::get_bootstrap_token(UDID, None);
    let set = messages::set_bootstrap_token(UDID, Some(&[0x5a; 64]), None);
    let captured = captures(&[
        "nanomdm__mdm-signature.2.b64",
        "nanomdm__mdm-signature.2.body.plist",
    ]);
    vec![
        fuzzing::signed_by_fixture(&get, SignatureDigest::Sha1),
        fuzzing::signed_by_fixture(&set, SignatureDigest::Sha256),
        // A real Mac's header (its CA is not ours: it parses and verifies, then fails the chain), as text.
        fuzzing::mdm_signature_input(&captured[1], captured[0].trim_ascii(), false),
    ]
}

fn forwarded_cert_seeds() -> Vec<Vec<u8>> {
    let cert = &FIXTURE.device_cert;
    let pem = String::from_utf8(cert.to_pem().unwrap()).unwrap();
    let der = cert.to_der().unwrap();
    let escaped: String = pem
        .bytes()
        .map(|b| match b {
            b'\n' => "%0A".to_string(),
            b' ' => "%20".to_string(),
            b'+' => "%2B".to_string(),
            b'/' => "%2F".to_string(),
            b'=' => "%3D".to_string(),
            other => (other as char).to_string(),
        })
        .collect();
    [
        pem.clone(),
        escaped,
        format!(":{}:", STANDARD.encode(&der)),
        STANDARD.encode(&der),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn scep_seeds() -> Vec<Vec<u8>> {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let csr = pki::scep::client::csr_der(&key, "fuzz device", Some("one-time-challenge")).unwrap();
    let signer = pki::scep::client::self_signed_signer(&key, "fuzz device").unwrap();
    let ca = FIXTURE.ca.certificate();
    let request = pki::scep::client::pki_request(MessageType::PkcsReq, &csr, &signer, &key, ca);
    vec![request.unwrap().message]
}

fn signed_profile_seeds() -> Vec<Vec<u8>> {
    let ca = &FIXTURE.ca;
    let signer = pki::profile_sign::ProfileSigner::from_pem(
        &ca.cert_pem().unwrap(),
        ca.key_pem().unwrap().expose(),
    )
    .unwrap();
    profile_seeds()
        .iter()
        .map(|p| signer.sign(p).unwrap())
        .collect()
}

/// Whether an input is accepted (its parse succeeds).
type Accepted = fn(&[u8]) -> bool;

/// Each target's seeds, and whether a seed is accepted.
fn seeds_of(target: &str) -> (Vec<Vec<u8>>, Accepted) {
    match target {
        "checkin" => (checkin_seeds(), |d| {
            protocol::checkin::parse_checkin(d).is_ok()
        }),
        "command_report" => (report_seeds(), |d| {
            protocol::command::parse_report(d).is_ok()
        }),
        "raw_command" => (raw_command_seeds(), |d| Command::from_raw_plist(d).is_ok()),
        "enrollment_profile" => (profile_seeds(), |d| {
            protocol::profile::EnrollmentProfile::parse(d).is_ok()
        }),
        "agent_settings" => (agent_settings_seeds(), |d| {
            protocol::agent_profile::parse_agent_settings(d).is_ok()
        }),
        "mdm_signature" => (mdm_signature_seeds(), |d| {
            // The fixture's own signatures verify through the chain; the captured one verifies without it.
            let Some((body, header)) = fuzzing::split_mdm_signature_input(d) else {
                return false;
            };
            FIXTURE.verifier.verify_mdm_signature(&header, body).is_ok()
                || pki::identity::verify_signature_only(&header, body).is_ok()
        }),
        "forwarded_cert" => (forwarded_cert_seeds(), |d| {
            std::str::from_utf8(d).is_ok_and(|s| pki::forwarded::parse_forwarded_cert(s).is_ok())
        }),
        "scep_request" => (scep_seeds(), |d| pki::scep::decode_request(d).is_ok()),
        "signed_profile" => (signed_profile_seeds(), |d| {
            pki::profile_sign::verify_signed_profile(d, FIXTURE.ca.certificate()).is_ok()
        }),
        other => panic!("no seeds for fuzz target {other}: add them here"),
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_target_has_seeds_that_are_accepted() {
    for t in TARGETS {
        let (seeds, accepted) = seeds_of(t.name);
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        for (i, s) in seeds.iter().enumerate() {
            assert!(accepted(s), "{}: seed {i} is refused", t.name);
            (t.run)(s);
        }
    }
}

/// The targets whose seeds are signed with the process's own keys.
const SIGNED: &[&str] = &["mdm_signature", "scep_request", "signed_profile"];

#[test]
fn every_target_survives_mutations_of_its_seeds() {
    let mutants = env_number("FUZZ_MUTANTS", 3000);
    let seed = env_number("FUZZ_SEED", 1);
    for t in TARGETS {
        let (seeds, accepted) = seeds_of(t.name);
        let mut m = Mutator::new(seed);
        let mut still_accepted = 0;
        for n in 0..mutants {
            let input = m.mutant(&seeds);
            let ran = catch_unwind(AssertUnwindSafe(|| (t.run)(&input)));
            if let Err(panic) = ran {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "fuzz target {} failed on mutant {n} (FUZZ_SEED={seed}): {why}\ninput (base64): {}",
                    t.name,
                    STANDARD.encode(&input)
                );
            }
            if accepted(&input) {
                still_accepted += 1;
            }
        }
        // Not every mutant may be refused at the door: some must still parse, or the mutations never reach
        // the code after the first check. Not asked of the signed inputs: a mutant of a signature made with
        // this process's fresh key stays valid only when the mutation lands where the signature does not
        // reach, which 3,000 mutants may or may not do.
        assert!(
            mutants < 100 || SIGNED.contains(&t.name) || still_accepted > 0,
            "{}: no mutant of {mutants} was accepted",
            t.name
        );
    }
}

#[test]
fn a_signature_by_a_key_the_ca_never_certified_is_refused_whatever_the_body() {
    // The property the mdm_signature target asserts, shown to fail where it should: a self-signed certificate
    // with the same subject verifies its CMS signature but never passes the chain check.
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let rogue = pki::scep::client::self_signed_signer(&key, "fuzzing device").unwrap();
    let body = messages::get_bootstrap_token(UDID, None);
    let header = pki::sign::mdm_signature(
        &body,
        &rogue,
        &key,
        pki::sign::SignOptions {
            digest: SignatureDigest::Sha1,
            signed_attributes: false,
        },
    )
    .unwrap();
    assert!(pki::identity::verify_signature_only(header.as_bytes(), &body).is_ok());
    assert!(
        FIXTURE
            .verifier
            .verify_mdm_signature(header.as_bytes(), &body)
            .is_err()
    );
    let der = STANDARD.decode(&header).unwrap();
    fuzzing::mdm_signature(&fuzzing::mdm_signature_input(&body, &der, true));
}

/// Not a check: writes every target's seeds to `$FUZZ_CORPUS_OUT/<target>/` as the starting corpus of
/// `cargo fuzz run` (`fuzz/README.md`). Run with `--ignored`.
#[test]
#[ignore = "writes the seed corpus for cargo-fuzz when asked"]
fn write_the_seed_corpus() {
    let out =
        PathBuf::from(std::env::var("FUZZ_CORPUS_OUT").expect("FUZZ_CORPUS_OUT: where to write"));
    for t in TARGETS {
        let dir = out.join(t.name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds_of(t.name).0.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
