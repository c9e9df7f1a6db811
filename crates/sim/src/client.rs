//! The Mac's MDM client: enrolls against an escrowd URL with an identity certificate from the server's
//! development CA, signs every body with `Mdm-Signature` the way Macs do (detached CMS, SHA-1 without signed
//! attributes by default), sends the check-ins the model asks for and answers the command channel from the
//! model's state. Like a Mac, it renews its identity only when its server re-sends the enrollment profile with
//! InstallProfile (`client::profile`): it never takes a certificate straight from a CA.
//!
//! Guarantees: every server answer is fed back into the model (a SetBootstrapToken counts as escrowed only
//! after a 200; a GetBootstrapToken reply is checked against the Mac's own token); nothing a server sends can
//! make the client panic or loop forever (one poll handles at most [`MAX_COMMANDS_PER_POLL`] commands);
//! token bytes never reach `Debug`, errors or counters. Plain `http://` only (run `escrowd serve --http`, or put
//! the simulator behind the same TLS-terminating proxy as real Macs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pki::ca::CertificateAuthority;
use pki::sign::{SignOptions, SignatureDigest, mdm_signature};
use protocol::ProtocolError;

use crate::mac::{Checkin, Mac, MacError, Served};
use crate::reports;

pub mod commands;
pub mod profile;

pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";
pub const CONNECT_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm";
/// A poll stops after this many commands even if the server keeps sending more.
pub const MAX_COMMANDS_PER_POLL: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not reach the server: {0}")]
    Http(String),
    #[error("signing failed: {0}")]
    Identity(#[from] pki::IdentityError),
    #[error("could not build or read a plist: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the Mac refused: {0}")]
    Mac(#[from] MacError),
    #[error("{what} answered HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("server URL must start with http:// (got {0:?}); run `escrowd serve --http`")]
    Url(String),
    #[error("key generation failed: {0}")]
    Key(String),
    #[error("SCEP refused the certificate request: {0}")]
    Scep(String),
}

/// Counters a fleet run sums up. No secrets: message types, statuses and durations only.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    pub by_message: BTreeMap<&'static str, u64>,
    /// Per-request latency in microseconds.
    pub latencies_us: Vec<u64>,
}

/// What delivering one model check-in gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub status: u16,
    /// For GetBootstrapToken: what the Mac made of the answer.
    pub served: Option<Served>,
}

/// The HTTP client of a virtual Mac: `reqwest`, plain HTTP/1.1 (see the module docs), no proxies, no
/// redirects. reqwest is built with rustls but no crypto provider of its own, so it is handed a ring config
/// (the workspace's one provider) with no trusted roots: it never makes a TLS connection.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Http(e.to_string()))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| ClientError::Http(e.to_string()))
}

/// A virtual Mac with its model, identity and HTTP client.
pub struct VirtualMac {
    pub mac: Mac,
    pub cert: X509,
    key: PKey<Private>,
    pub sign: SignOptions,
    base_url: String,
    http: reqwest::Client,
    pub stats: Stats,
    /// What the person at Setup Assistant does once the server sends DeviceConfigured (§1.7). `None`: the
    /// test drives Setup Assistant itself; `Some(plan)`: DeviceConfigured finishes Setup Assistant per plan
    /// and whatever AccountConfiguration said.
    pub setup_plan: Option<SetupPlan>,
    /// The installed enrollment profile's identity keys (None for a Mac given its certificate directly: it
    /// adopts the first enrollment profile its server sends).
    pub(crate) installed: Option<profile::InstalledEnrollment>,
}

/// The Setup Assistant run of an ADE Mac after DeviceConfigured.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupPlan {
    /// The primary account the person would create (AccountConfiguration may skip it or make it standard).
    pub primary: Option<crate::mac::AddUser>,
}

impl std::fmt::Debug for VirtualMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualMac")
            .field("mac", &self.mac)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The device key type. Macs get RSA 2048 from SCEP; P-256 is much cheaper to generate for load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    #[default]
    Rsa2048,
    EcP256,
}

/// A fresh RSA 2048 key and a device identity certificate for `udid` from `ca` (what SCEP will do later).
pub fn issue_identity(
    ca: &CertificateAuthority,
    udid: &str,
) -> Result<(X509, PKey<Private>), ClientError> {
    issue_identity_with(ca, udid, KeyKind::Rsa2048)
}

/// A fresh key of `kind` and a device identity certificate for `udid` from `ca`.
pub fn issue_identity_with(
    ca: &CertificateAuthority,
    udid: &str,
    kind: KeyKind,
) -> Result<(X509, PKey<Private>), ClientError> {
    let key = match kind {
        KeyKind::Rsa2048 => openssl::rsa::Rsa::generate(2048).and_then(PKey::from_rsa),
        KeyKind::EcP256 => {
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .and_then(|g| openssl::ec::EcKey::generate(&g))
                .and_then(PKey::from_ec_key)
        }
    }
    .map_err(|e| ClientError::Key(e.to_string()))?;
    let public = key
        .public_key_to_der()
        .and_then(|der| PKey::public_key_from_der(&der))
        .map_err(|e| ClientError::Key(e.to_string()))?;
    let cert = ca.issue_device_certificate(udid, &public, 365)?;
    Ok((cert, key))
}

impl VirtualMac {
    /// A Mac that will talk to `base_url` (e.g. `http://127.0.0.1:8080`) with a certificate from `ca`.
    pub fn new(mac: Mac, ca: &CertificateAuthority, base_url: &str) -> Result<Self, ClientError> {
        let (cert, key) = issue_identity(ca, &mac.udid)?;
        Self::with_identity(mac, cert, key, base_url)
    }

    pub fn with_identity(
        mac: Mac,
        cert: X509,
        key: PKey<Private>,
        base_url: &str,
    ) -> Result<Self, ClientError> {
        if !base_url.starts_with("http://") {
            return Err(ClientError::Url(base_url.into()));
        }
        Ok(VirtualMac {
            mac,
            cert,
            key,
            // Real Macs: SHA-1, no signed attributes (shared/captures/README.md).
            sign: SignOptions {
                digest: SignatureDigest::Sha1,
                signed_attributes: false,
            },
            base_url: base_url.trim_end_matches('/').to_string(),
            http: http_client()?,
            stats: Stats::default(),
            setup_plan: None,
            installed: None,
        })
    }

    async fn put(
        &mut self,
        path: &str,
        content_type: &str,
        what: &'static str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let signature = mdm_signature(&body, &self.cert, &self.key, self.sign)?;
        let req = self
            .http
            .put(format!("{}{}", self.base_url, path))
            .header("content-type", content_type)
            .header("Mdm-Signature", signature)
            .body(body);
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_vec();
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.requests += 1;
        self.stats.latencies_us.push(micros);
        *self.stats.by_message.entry(what).or_default() += 1;
        Ok((status, body))
    }

    /// A signed check-in; returns (status, body).
    pub async fn checkin(
        &mut self,
        what: &'static str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        self.put("/mdm/checkin", CHECKIN_CONTENT_TYPE, what, body)
            .await
    }

    /// A signed command-channel report; returns (status, body).
    pub async fn connect(&mut self, body: Vec<u8>) -> Result<(u16, Vec<u8>), ClientError> {
        self.put("/mdm/connect", CONNECT_CONTENT_TYPE, "Report", body)
            .await
    }

    /// Authenticate then TokenUpdate; both must answer 200.
    pub async fn enroll(&mut self) -> Result<(), ClientError> {
        let (status, _) = self
            .checkin("Authenticate", reports::authenticate(&self.mac)?)
            .await?;
        if status != 200 {
            return Err(ClientError::Status {
                what: "Authenticate",
                status,
            });
        }
        let (status, _) = self
            .checkin("TokenUpdate", reports::token_update(&self.mac)?)
            .await?;
        if status != 200 {
            return Err(ClientError::Status {
                what: "TokenUpdate",
                status,
            });
        }
        Ok(())
    }

    /// Use another identity (e.g. an old certificate) for the next requests.
    pub fn set_identity(&mut self, cert: X509, key: PKey<Private>) {
        self.cert = cert;
        self.key = key;
    }

    /// The identity the Mac uses now (certificate and key), e.g. to keep the old one across a renewal.
    pub fn identity(&self) -> (X509, PKey<Private>) {
        (self.cert.clone(), self.key.clone())
    }

    /// Deliver a check-in the model asked for and feed the answer back into the model.
    pub async fn deliver(&mut self, checkin: Checkin) -> Result<Delivery, ClientError> {
        match checkin {
            Checkin::SetBootstrapToken(token) => {
                let body = reports::set_bootstrap_token(&self.mac, Some(&token))?;
                let (status, _) = self.checkin("SetBootstrapToken", body).await?;
                self.mac.escrow_answered(&token, status == 200);
                Ok(Delivery {
                    status,
                    served: None,
                })
            }
            Checkin::ClearBootstrapToken => {
                let body = reports::set_bootstrap_token(&self.mac, None)?;
                let (status, _) = self.checkin("SetBootstrapToken", body).await?;
                self.mac.clear_answered(status == 200);
                Ok(Delivery {
                    status,
                    served: None,
                })
            }
            Checkin::GetBootstrapToken(reason) => {
                let body = reports::get_bootstrap_token(&self.mac)?;
                let (status, reply) = self.checkin("GetBootstrapToken", body).await?;
                let token = if status == 200 {
                    // A reply we cannot read counts as "nothing served".
                    reports::bootstrap_token_of(&reply).ok()
                } else {
                    None
                };
                let served = self.mac.bootstrap_token_served(&reason, token.as_deref());
                Ok(Delivery {
                    status,
                    served: Some(served),
                })
            }
            Checkin::CheckOut => {
                let (status, _) = self
                    .checkin("CheckOut", reports::checkout(&self.mac)?)
                    .await?;
                Ok(Delivery {
                    status,
                    served: None,
                })
            }
        }
    }

    async fn deliver_opt(&mut self, c: Option<Checkin>) -> Result<Option<Delivery>, ClientError> {
        match c {
            Some(c) => self.deliver(c).await.map(Some),
            None => Ok(None),
        }
    }

    /// Graphical login (see [`Mac::login`]), delivering whatever check-in it triggers.
    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<Option<Delivery>, ClientError> {
        let c = self.mac.login(user, password)?;
        self.deliver_opt(c).await
    }

    /// `profiles install -type bootstraptoken -user A -password P`.
    pub async fn profiles_install(
        &mut self,
        admin: &str,
        password: &str,
    ) -> Result<Delivery, ClientError> {
        let c = self.mac.profiles_install(admin, password)?;
        self.deliver(c).await
    }

    /// `profiles validate -type bootstraptoken -user U -password P`.
    pub async fn profiles_validate(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<Delivery, ClientError> {
        let c = self.mac.profiles_validate(user, password)?;
        self.deliver(c).await
    }

    /// `profiles remove -type bootstraptoken`.
    pub async fn profiles_remove(&mut self) -> Result<Delivery, ClientError> {
        let c = self.mac.profiles_remove()?;
        self.deliver(c).await
    }

    /// An MDM-authorised software update, kext approval or kernel-cache rebuild (§1.4, §1.6): `Ok(None)` on
    /// Intel (no owner gate); on Apple silicon the BT fetch and what came of it.
    pub async fn owner_authorized_action(
        &mut self,
        reason: crate::mac::FetchReason,
    ) -> Result<Option<Delivery>, ClientError> {
        let c = self.mac.owner_authorized_action(reason)?;
        self.deliver_opt(c).await
    }

    /// The MDM profile is removed: CheckOut.
    pub async fn remove_mdm_profile(&mut self) -> Result<Delivery, ClientError> {
        let c = self.mac.remove_mdm_profile();
        self.deliver(c).await
    }
}
