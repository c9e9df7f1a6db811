//! A device that signs its requests like a Mac with `SignMessage` set.

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pki::ca::CertificateAuthority;
use pki::sign::{SignOptions, mdm_signature};

use crate::messages;

pub const CHECKIN: &str = "application/x-apple-aspen-mdm-checkin";
pub const CONNECT: &str = "application/x-apple-aspen-mdm";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy): for HTML and plain-text answers.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct TestDevice {
    pub udid: String,
    pub cert: X509,
    pub key: PKey<Private>,
    pub sign: SignOptions,
    pub base_url: String,
    client: reqwest::Client,
}

pub fn new_key(kind: KeyKind) -> anyhow::Result<PKey<Private>> {
    Ok(match kind {
        KeyKind::Rsa2048 => PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?,
        KeyKind::EcP256 => {
            let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
        }
    })
}

/// A fresh key and an identity certificate for it from `ca`.
pub fn issue_identity(
    ca: &CertificateAuthority,
    udid: &str,
    kind: KeyKind,
) -> anyhow::Result<(X509, PKey<Private>)> {
    let key = new_key(kind)?;
    let public = PKey::public_key_from_der(&key.public_key_to_der()?)?;
    let cert = ca.issue_device_certificate(udid, &public, 365)?;
    Ok((cert, key))
}

impl TestDevice {
    pub fn new(
        udid: &str,
        ca: &CertificateAuthority,
        kind: KeyKind,
        base_url: String,
    ) -> anyhow::Result<TestDevice> {
        let (cert, key) = issue_identity(ca, udid, kind)?;
        Ok(Self::with_identity(udid, cert, key, base_url))
    }

    pub fn with_identity(
        udid: &str,
        cert: X509,
        key: PKey<Private>,
        base_url: String,
    ) -> TestDevice {
        TestDevice {
            udid: udid.to_string(),
            cert,
            key,
            sign: SignOptions::default(),
            base_url,
            client: crate::http::client(),
        }
    }

    /// The same Mac (identity, signing) talking to another server: a second instance on the same database.
    pub fn talking_to(&self, base_url: String) -> TestDevice {
        TestDevice {
            sign: self.sign,
            ..Self::with_identity(&self.udid, self.cert.clone(), self.key.clone(), base_url)
        }
    }

    /// Replace the identity with a new certificate straight from the CA. Not how a Mac renews (escrowd re-sends
    /// the enrollment profile: see `MdmService::admin_renew_identity`): for an enrolled UDID this is an unproven,
    /// *pending* identity.
    pub fn renew_identity(&mut self, ca: &CertificateAuthority) -> anyhow::Result<()> {
        let (cert, key) = issue_identity(ca, &self.udid, KeyKind::Rsa2048)?;
        self.cert = cert;
        self.key = key;
        Ok(())
    }

    pub fn signature(&self, body: &[u8]) -> anyhow::Result<String> {
        Ok(mdm_signature(body, &self.cert, &self.key, self.sign)?)
    }

    /// PUT `body` to `path` with the given content type and optional Mdm-Signature header value.
    pub async fn put_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut req = self
            .client
            .put(format!("{}{}", self.base_url, path))
            .header("content-type", content_type);
        if let Some(sig) = signature {
            req = req.header("Mdm-Signature", sig);
        }
        crate::http::send(req.body(body)).await
    }

    /// A signed check-in.
    pub async fn checkin(&self, body: Vec<u8>) -> anyhow::Result<Reply> {
        let sig = self.signature(&body)?;
        self.put_raw("/mdm/checkin", CHECKIN, body, Some(&sig))
            .await
    }

    /// A signed command-channel report.
    pub async fn connect(&self, body: Vec<u8>) -> anyhow::Result<Reply> {
        let sig = self.signature(&body)?;
        self.put_raw("/mdm/connect", CONNECT, body, Some(&sig))
            .await
    }

    pub async fn authenticate(&self) -> anyhow::Result<Reply> {
        self.checkin(messages::authenticate(&self.udid)).await
    }

    pub async fn token_update(&self) -> anyhow::Result<Reply> {
        self.checkin(messages::token_update(&self.udid, Some(false)))
            .await
    }

    /// Authenticate + TokenUpdate, asserting both succeed, then poll and acknowledge (with empty results) the
    /// inventory the server queues on enrollment, so a test starts from an empty queue. Returns the request
    /// types answered. Use [`Self::enroll_keeping_queue`] to see the enrollment commands.
    pub async fn enroll(&self) -> anyhow::Result<Vec<String>> {
        self.enroll_keeping_queue().await?;
        self.drain().await
    }

    /// Authenticate + TokenUpdate, asserting both succeed; whatever the server queued stays queued.
    pub async fn enroll_keeping_queue(&self) -> anyhow::Result<()> {
        let a = self.authenticate().await?;
        anyhow::ensure!(a.status == 200, "Authenticate answered {}", a.status);
        let t = self.token_update().await?;
        anyhow::ensure!(t.status == 200, "TokenUpdate answered {}", t.status);
        Ok(())
    }

    /// Poll with Idle and acknowledge every queued command with an empty result; returns their request types
    /// in the order they came (at most 100).
    pub async fn drain(&self) -> anyhow::Result<Vec<String>> {
        let mut seen = Vec::new();
        let mut reply = self.idle().await?;
        while !reply.body.is_empty() {
            anyhow::ensure!(reply.status == 200, "connect answered {}", reply.status);
            anyhow::ensure!(seen.len() < 100, "the command queue never empties");
            let v: plist::Value = plist::from_bytes(&reply.body)?;
            let top = v
                .as_dictionary()
                .ok_or_else(|| anyhow::anyhow!("command is not a dict"))?;
            let uuid = top
                .get("CommandUUID")
                .and_then(plist::Value::as_string)
                .ok_or_else(|| anyhow::anyhow!("command without CommandUUID"))?
                .to_string();
            let request_type = top
                .get("Command")
                .and_then(plist::Value::as_dictionary)
                .and_then(|c| c.get("RequestType"))
                .and_then(plist::Value::as_string)
                .unwrap_or_default()
                .to_string();
            seen.push(request_type);
            reply = self
                .connect(messages::report(
                    &self.udid,
                    "Acknowledged",
                    Some(&uuid),
                    plist::Dictionary::new(),
                ))
                .await?;
        }
        Ok(seen)
    }

    pub async fn set_bootstrap_token(&self, token: Option<&[u8]>) -> anyhow::Result<Reply> {
        self.checkin(messages::set_bootstrap_token(&self.udid, token, None))
            .await
    }

    /// GetBootstrapToken; on a 200 also returns the token bytes (empty when none is held).
    pub async fn get_bootstrap_token(&self) -> anyhow::Result<(Reply, Option<Vec<u8>>)> {
        let reply = self
            .checkin(messages::get_bootstrap_token(&self.udid, None))
            .await?;
        let token = if reply.status == 200 {
            Some(messages::bootstrap_token_of(&reply.body)?)
        } else {
            None
        };
        Ok((reply, token))
    }

    pub async fn checkout(&self) -> anyhow::Result<Reply> {
        self.checkin(messages::checkout(&self.udid)).await
    }

    pub async fn idle(&self) -> anyhow::Result<Reply> {
        self.connect(messages::report(
            &self.udid,
            "Idle",
            None,
            plist::Dictionary::new(),
        ))
        .await
    }
}
