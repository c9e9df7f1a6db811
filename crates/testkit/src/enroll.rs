//! Enrolling the way a Mac does: fetch `/enroll?token=…`, check the profile's signature, read its SCEP and
//! MDM payloads, get an identity over SCEP with the profile's challenge. Also a test push certificate, since
//! `/enroll` needs one.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Name};
use pki::scep::client::CertRep;
use protocol::profile::EnrollmentProfile;

use crate::TestServer;
use crate::device::{Reply, TestDevice};

/// The topic every test push certificate carries.
pub const TEST_TOPIC: &str = "com.apple.mgmt.External.2b1e4b8a-5f6c-4a8e-9d3b-7c1f0e2d3a4b";

/// A self-signed stand-in for an Apple push certificate: subject UID `topic`, valid a year. (cert PEM, key PEM)
pub fn test_push_certificate(topic: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509Name::builder()?;
    name.append_entry_by_nid(Nid::USERID, topic)?;
    name.append_entry_by_nid(Nid::COMMONNAME, "APSP:escrowd-test")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = BigNum::from_u32(7)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, to) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(365)?);
    b.set_not_before(&from)?;
    b.set_not_after(&to)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

impl TestServer {
    /// Upload a test push certificate (topic [`TEST_TOPIC`]), as `escrowd push-cert upload` would.
    pub async fn install_push_certificate(&self) -> anyhow::Result<()> {
        let (cert, key) = test_push_certificate(TEST_TOPIC)?;
        self.running()
            .state
            .mdm
            .put_push_certificate(&cert, &vault::Secret::new(key), "test")
            .await?;
        Ok(())
    }

    /// The server's profile-signing certificate.
    pub fn profile_signer_cert(&self) -> X509 {
        self.running()
            .state
            .mdm
            .profile_signer()
            .expect("the server has a profile signer")
            .certificate()
            .clone()
    }
}

/// `GET {base_url}{path_and_query}` over plain HTTP.
pub async fn http_get(base_url: &str, path_and_query: &str) -> anyhow::Result<Reply> {
    crate::http::send(crate::http::client().get(format!("{base_url}{path_and_query}"))).await
}

/// Verify a signed profile against `signer` and read it.
pub fn read_signed_profile(signed: &[u8], signer: &X509) -> anyhow::Result<EnrollmentProfile> {
    let xml = pki::profile_sign::verify_signed_profile(signed, signer)?;
    Ok(EnrollmentProfile::parse(&xml)?)
}

impl TestDevice {
    /// Install a signed enrollment profile: verify it, then SCEP with its challenge (RSA of its key size).
    /// The device then talks to the profile's server. Err(CertRep) if SCEP refused.
    pub async fn enroll_via_profile(
        udid: &str,
        signed: &[u8],
        signer: &X509,
    ) -> anyhow::Result<Result<(TestDevice, EnrollmentProfile), CertRep>> {
        let profile = read_signed_profile(signed, signer)?;
        let base = profile
            .scep
            .url
            .strip_suffix("/scep")
            .ok_or_else(|| anyhow::anyhow!("SCEP URL {} does not end in /scep", profile.scep.url))?
            .to_string();
        let challenge = profile.scep.challenge.as_ref().map(|c| c.expose().clone());
        let bits = u32::try_from(profile.scep.key_size)?;
        Ok(
            match TestDevice::enroll_via_scep(udid, &base, challenge.as_deref(), bits).await? {
                Ok(device) => Ok((device, profile)),
                Err(rep) => Err(rep),
            },
        )
    }
}
