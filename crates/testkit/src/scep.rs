//! Enrolling a test device over SCEP, as a Mac does after installing an enrollment profile.

use openssl::x509::X509;
use pki::scep::MessageType;
use pki::scep::client::{CertRep, csr_der, pki_request, read_cert_rep, self_signed_signer};

use crate::device::{KeyKind, Reply, TestDevice, new_key};

/// `GET` or `POST` one SCEP operation; `body` makes it a POST.
pub async fn scep_http(
    base_url: &str,
    query: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Reply> {
    let client = crate::http::client();
    let uri = format!("{base_url}/scep?{query}");
    let req = match body {
        Some(body) => client.post(uri).body(body),
        None => client.get(uri),
    };
    crate::http::send(req).await
}

/// The CA certificate from `GetCACert`.
pub async fn get_ca_cert(base_url: &str) -> anyhow::Result<X509> {
    let reply = scep_http(base_url, "operation=GetCACert", None).await?;
    anyhow::ensure!(reply.status == 200, "GetCACert answered {}", reply.status);
    Ok(X509::from_der(&reply.body)?)
}

impl TestDevice {
    /// Enroll over SCEP (PKCSReq with `challenge`, RSA key of `bits`) and return a device holding the issued
    /// identity, or the CertRep if the server refused.
    pub async fn enroll_via_scep(
        udid: &str,
        base_url: &str,
        challenge: Option<&str>,
        bits: u32,
    ) -> anyhow::Result<Result<TestDevice, CertRep>> {
        let ca = get_ca_cert(base_url).await?;
        let key = match bits {
            2048 => new_key(KeyKind::Rsa2048)?,
            bits => openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(bits)?)?,
        };
        let signer = self_signed_signer(&key, udid)?;
        let csr = csr_der(&key, udid, challenge)?;
        let req = pki_request(MessageType::PkcsReq, &csr, &signer, &key, &ca)?;
        let reply = scep_http(base_url, "operation=PKIOperation", Some(req.message)).await?;
        anyhow::ensure!(
            reply.status == 200,
            "PKIOperation answered {}",
            reply.status
        );
        let rep = read_cert_rep(&reply.body, &ca, &signer, &key)?;
        Ok(match rep.certificate {
            Some(cert) => Ok(TestDevice::with_identity(
                udid,
                cert,
                key,
                base_url.to_string(),
            )),
            None => Err(rep),
        })
    }
}
