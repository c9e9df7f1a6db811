//! Enrolling the way a Mac does after the user opens an enrollment link: fetch `/enroll?token=…`, check the
//! profile's signature, read its SCEP and MDM payloads, get an identity over SCEP (RFC 8894, via
//! `pki::scep::client`) with the profile's challenge, and from then on talk to the profile's ServerURL. The
//! profile's ServerCapabilities decide whether the Mac may escrow (no `com.apple.mdm.bootstraptoken` ⇒ the Mac
//! never sends SetBootstrapToken, as macOS does).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openssl::pkey::PKey;
use openssl::x509::X509;
use pki::scep::MessageType;
use pki::scep::client::{csr_der, pki_request, read_cert_rep, self_signed_signer};
use protocol::profile::{CAP_BOOTSTRAP_TOKEN, EnrollmentProfile};

use super::{ClientError, VirtualMac};
use crate::mac::Mac;

/// Largest body read from `/enroll` or `/scep`.
const MAX_BODY: usize = 1 << 20;

async fn fetch(
    method: http::Method,
    url: &str,
    body: Vec<u8>,
    what: &'static str,
) -> Result<Vec<u8>, ClientError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes()
        .to_vec();
    if status != 200 {
        return Err(ClientError::Status { what, status });
    }
    Ok(body)
}

fn key_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Key(e.to_string())
}

impl VirtualMac {
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
            http::Method::GET,
            &format!("{base}/enroll?token={query}"),
            Vec::new(),
            "enroll",
        )
        .await?;
        let xml = pki::profile_sign::verify_signed_profile(&signed, signer)?;
        let profile = EnrollmentProfile::parse(&xml)?;
        let server = profile
            .mdm
            .server_url
            .strip_suffix("/mdm/connect")
            .or_else(|| profile.mdm.server_url.strip_suffix("/mdm"))
            .unwrap_or(&profile.mdm.server_url)
            .to_string();
        mac.bt_capability = profile.mdm.has_capability(CAP_BOOTSTRAP_TOKEN);

        let scep = &profile.scep.url;
        let ca_der = fetch(
            http::Method::GET,
            &format!("{scep}?operation=GetCACert"),
            Vec::new(),
            "SCEP GetCACert",
        )
        .await?;
        let ca = X509::from_der(&ca_der).map_err(key_error)?;
        let bits = u32::try_from(profile.scep.key_size.clamp(1024, 4096)).unwrap_or(2048);
        let key = tokio::task::spawn_blocking(move || {
            openssl::rsa::Rsa::generate(bits).and_then(PKey::from_rsa)
        })
        .await
        .map_err(key_error)?
        .map_err(key_error)?;
        let self_signed = self_signed_signer(&key, &mac.udid)?;
        let challenge = profile.scep.challenge.as_ref().map(|c| c.expose().as_str());
        let csr = csr_der(&key, &mac.udid, challenge)?;
        let req = pki_request(MessageType::PkcsReq, &csr, &self_signed, &key, &ca)?;
        let reply = fetch(
            http::Method::POST,
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
        let vm = VirtualMac::with_identity(mac, cert, key, &server)?;
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
