//! Enrolling the way a Mac does after the user opens an enrollment link: fetch `/enroll?token=…`, check the
//! profile's signature, read its SCEP and MDM payloads, get an identity over SCEP (RFC 8894, via
//! `pki::scep::client`) with the profile's challenge, and from then on talk to the profile's ServerURL. The
//! profile's ServerCapabilities decide whether the Mac may escrow (no `com.apple.mdm.bootstraptoken` ⇒ the Mac
//! never sends SetBootstrapToken, as macOS does).
//!
//! Renewal, the only way a Mac's identity is renewed: the server sends the whole enrollment profile again with
//! InstallProfile. The Mac accepts it as an update only if its PayloadIdentifier, Topic, ServerURL, CheckInURL,
//! AccessRights and per-user-connections capability equal the installed profile's (macOS refuses an update that
//! changes them), then gets a new identity over SCEP (PKCSReq with the new profile's challenge) and sends
//! Authenticate and TokenUpdate with it.

use openssl::pkey::PKey;
use openssl::pkey::Private;
use openssl::x509::X509;
use pki::scep::MessageType;
use pki::scep::client::{csr_der, pki_request, read_cert_rep, self_signed_signer};
use protocol::profile::{
    CAP_BOOTSTRAP_TOKEN, CAP_PER_USER_CONNECTIONS, EnrollmentProfile, MdmSettings, ScepSettings,
};

use super::{ClientError, VirtualMac};
use crate::mac::Mac;

/// Largest body read from `/enroll` or `/scep`.
const MAX_BODY: usize = 1 << 20;

async fn fetch(
    method: reqwest::Method,
    url: &str,
    body: Vec<u8>,
    what: &'static str,
) -> Result<Vec<u8>, ClientError> {
    let mut req = super::http_client()?.request(method, url);
    if !body.is_empty() {
        req = req.body(body);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ClientError::Http("length limit exceeded".into()));
        }
        body.extend_from_slice(&chunk);
    }
    if status != 200 {
        return Err(ClientError::Status { what, status });
    }
    Ok(body)
}

fn key_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Key(e.to_string())
}

/// What the Mac remembers of its installed enrollment profile: the keys an update must not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledEnrollment {
    pub identifier: String,
    pub topic: String,
    pub server_url: String,
    pub checkin_url: Option<String>,
    pub access_rights: u64,
    pub per_user_connections: bool,
}

impl InstalledEnrollment {
    pub fn of(profile: &EnrollmentProfile) -> Self {
        InstalledEnrollment {
            identifier: profile.identifier.clone(),
            topic: profile.mdm.topic.clone(),
            server_url: profile.mdm.server_url.clone(),
            checkin_url: profile.mdm.checkin_url.clone(),
            access_rights: profile.mdm.access_rights,
            per_user_connections: profile.mdm.has_capability(CAP_PER_USER_CONNECTIONS),
        }
    }
}

/// Why the Mac refused an InstallProfile (code and text as in its ErrorChain).
pub(crate) type InstallRefusal = (i64, &'static str);

/// The server part of an MDM ServerURL (`…/mdm/connect` or `…/mdm` stripped).
fn server_of(mdm: &MdmSettings) -> String {
    mdm.server_url
        .strip_suffix("/mdm/connect")
        .or_else(|| mdm.server_url.strip_suffix("/mdm"))
        .unwrap_or(&mdm.server_url)
        .to_string()
}

/// A new key and a certificate for it over SCEP with the profile's challenge (PKCSReq), as macOS does when it
/// installs a SCEP payload.
async fn scep_identity(
    udid: &str,
    scep_settings: &ScepSettings,
) -> Result<(X509, PKey<Private>), ClientError> {
    let scep = &scep_settings.url;
    let ca_der = fetch(
        reqwest::Method::GET,
        &format!("{scep}?operation=GetCACert"),
        Vec::new(),
        "SCEP GetCACert",
    )
    .await?;
    let ca = X509::from_der(&ca_der).map_err(key_error)?;
    let bits = u32::try_from(scep_settings.key_size.clamp(1024, 4096)).unwrap_or(2048);
    let key = tokio::task::spawn_blocking(move || {
        openssl::rsa::Rsa::generate(bits).and_then(PKey::from_rsa)
    })
    .await
    .map_err(key_error)?
    .map_err(key_error)?;
    let self_signed = self_signed_signer(&key, udid)?;
    let challenge = scep_settings
        .challenge
        .as_ref()
        .map(|c| c.expose().as_str());
    let csr = csr_der(&key, udid, challenge)?;
    let req = pki_request(MessageType::PkcsReq, &csr, &self_signed, &key, &ca)?;
    let reply = fetch(
        reqwest::Method::POST,
        &format!("{scep}?operation=PKIOperation"),
        req.message,
        "SCEP PKIOperation",
    )
    .await?;
    let rep = read_cert_rep(&reply, &ca, &self_signed, &key).map_err(key_error)?;
    let Some(cert) = rep.certificate else {
        return Err(ClientError::Scep(
            rep.fail_info
                .map_or("no certificate".to_string(), |f| f.to_string()),
        ));
    };
    Ok((cert, key))
}

impl VirtualMac {
    /// InstallProfile: an enrollment profile with the installed one's identity keys renews the Mac's identity
    /// (SCEP with its challenge, then Authenticate + TokenUpdate with the new certificate); one that changes
    /// them is refused as macOS refuses it; any other profile is simply installed. On a failed renewal the Mac
    /// keeps its old identity.
    pub(crate) async fn install_profile_payload(
        &mut self,
        signed: &[u8],
    ) -> Result<Result<(), InstallRefusal>, ClientError> {
        let Ok(xml) = pki::profile_sign::signed_profile_content(signed) else {
            return Ok(Err((4001, "The profile's signature is invalid")));
        };
        let Ok(profile) = EnrollmentProfile::parse(&xml) else {
            // Not an enrollment profile: installed, nothing the model tracks.
            return Ok(Ok(()));
        };
        let offered = InstalledEnrollment::of(&profile);
        if let Some(installed) = &self.installed
            && *installed != offered
        {
            return Ok(Err((
                4001,
                "The new MDM payload does not match the old payload (identifier, Topic, ServerURL,                  CheckInURL, AccessRights or per-user setting changed)",
            )));
        }
        let (cert, key) = match scep_identity(&self.mac.udid, &profile.scep).await {
            Ok(identity) => identity,
            Err(_) => {
                return Ok(Err((
                    22013,
                    "The SCEP server refused the certificate request",
                )));
            }
        };
        let old_cert = std::mem::replace(&mut self.cert, cert);
        let old_key = std::mem::replace(&mut self.key, key);
        if self.enroll().await.is_err() {
            self.cert = old_cert;
            self.key = old_key;
            return Ok(Err((12_000, "The MDM server refused the new identity")));
        }
        self.mac.bt_capability = profile.mdm.has_capability(CAP_BOOTSTRAP_TOKEN);
        self.installed = Some(offered);
        Ok(Ok(()))
    }

    /// Install the enrollment profile behind `base_url/enroll?token=…` (signed by `signer`) and get an identity
    /// over SCEP. The returned Mac still has to `enroll()` (Authenticate, TokenUpdate), as after a real install.
    pub async fn from_enrollment_link(
        mut mac: Mac,
        base_url: &str,
        token: &str,
        signer: &X509,
    ) -> Result<(VirtualMac, EnrollmentProfile), ClientError> {
        if !base_url.starts_with("http://") {
            return Err(ClientError::Url(base_url.into()));
        }
        let base = base_url.trim_end_matches('/');
        let query: String = url_encode(token);
        let signed = fetch(
            reqwest::Method::GET,
            &format!("{base}/enroll?token={query}"),
            Vec::new(),
            "enroll",
        )
        .await?;
        let xml = pki::profile_sign::verify_signed_profile(&signed, signer)?;
        let profile = EnrollmentProfile::parse(&xml)?;
        let server = server_of(&profile.mdm);
        mac.bt_capability = profile.mdm.has_capability(CAP_BOOTSTRAP_TOKEN);
        let (cert, key) = scep_identity(&mac.udid, &profile.scep).await?;
        let mut vm = VirtualMac::with_identity(mac, cert, key, &server)?;
        vm.installed = Some(InstalledEnrollment::of(&profile));
        Ok((vm, profile))
    }
}

/// Percent-encode everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
