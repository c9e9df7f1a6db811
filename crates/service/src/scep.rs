//! SCEP enrollment policy: who gets a device identity certificate from escrowd's device CA.
//!
//! Guarantees: a PKCSReq is issued only with the configured challenge password (compared in constant time;
//! without one configured, every PKCSReq is refused); a RenewalReq is issued without a challenge only when it
//! is signed by a currently valid certificate from a trusted device CA that is bound to an enabled enrollment;
//! a senderNonce is accepted once per [`NONCE_WINDOW_MS`] (replays get a CertRep FAILURE), at most
//! [`MAX_NONCES`] remembered; every issue writes an event, every refusal is counted per source and hour
//! (`crate::edge`: anyone can send one, so none costs a row of its own). Challenge values never appear in
//! events, errors or logs.

use std::sync::Arc;

use pki::DeviceIdentityVerifier;
use pki::ca::CertificateAuthority;
use pki::scep::{self, FailInfo, MessageType, ScepError, ScepRequest};
use store::Outcome;
use vault::Secret;

use crate::EventKind;
use crate::checkin::short_fp;
use crate::edge::Source;
use crate::{MdmService, Scoped, ServiceError};

/// How long a senderNonce is remembered for replay detection.
pub const NONCE_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// Most senderNonces remembered; beyond it the oldest are forgotten (a replay of one of those still needs a
/// challenge that was consumed, or yields a certificate for a key only the original requester holds).
pub const MAX_NONCES: u32 = 100_000;
/// Default lifetime of an issued device identity certificate.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Common name used when a request carries none.
const FALLBACK_CN: &str = "escrowd device";

/// What the SCEP endpoint needs: the CA that issues, who may renew, and the challenge.
pub struct ScepConfig {
    pub ca: Arc<CertificateAuthority>,
    /// Trusted device CAs, for RenewalReq signers.
    pub verifier: Arc<DeviceIdentityVerifier>,
    /// The static challenge password (`escrowd serve --scep-challenge`); None = PKCSReq is refused.
    pub static_challenge: Option<Secret<Vec<u8>>>,
    pub validity_days: u32,
}

impl MdmService {
    /// Install the SCEP configuration (without it, SCEP operations answer "not configured").
    pub fn with_scep(mut self, config: ScepConfig) -> Self {
        self.scep = Some(Arc::new(config));
        self
    }

    /// GetCACert: the CA certificate (DER).
    pub fn scep_ca_cert(&self) -> Result<Vec<u8>, ServiceError> {
        let config = self.scoped().scep_config()?;
        config
            .ca
            .certificate()
            .to_der()
            .map_err(|e| ServiceError::Internal(format!("encoding the CA certificate: {e}")))
    }

    /// GetCACaps.
    pub fn scep_ca_caps(&self) -> &'static str {
        scep::CA_CAPS
    }

    /// PKIOperation: a CertRep (DER) for any readable request, SUCCESS or FAILURE; `BadRequest` for a message
    /// that cannot be read or whose signature does not verify.
    pub async fn scep_pki_operation(
        &self,
        message: &[u8],
        source: &Source,
    ) -> Result<Vec<u8>, ServiceError> {
        self.scoped().scep_pki_operation(message, source).await
    }
}

impl<'a, S: ?Sized> Scoped<'a, S> {
    fn scep_config(&self) -> Result<&'a ScepConfig, ServiceError> {
        self.scep
            .as_deref()
            .ok_or_else(|| ServiceError::Refused("SCEP is not configured on this server".into()))
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait ScepRoles:
    store::Scep + store::Enrollments + store::Events + store::Groups
{
}
impl<T: ?Sized + store::Scep + store::Enrollments + store::Events + store::Groups> ScepRoles for T {}

impl<S: ?Sized + ScepRoles> Scoped<'_, S> {
    /// PKIOperation: a CertRep (DER) for any readable request, SUCCESS or FAILURE; `BadRequest` for a message
    /// that cannot be read or whose signature does not verify.
    pub(crate) async fn scep_pki_operation(
        &self,
        message: &[u8],
        source: &Source,
    ) -> Result<Vec<u8>, ServiceError> {
        let config = self.scep_config()?;
        let req = match scep::decode_request(message) {
            Ok(req) => req,
            Err(ScepError::Malformed(reason)) => {
                self.note_refusal(EventKind::ScepRefused, source, &reason);
                return Err(ServiceError::Malformed(format!("SCEP: {reason}")));
            }
            Err(e) => return Err(ServiceError::Internal(e.to_string())),
        };
        match self.scep_decide(config, &req).await {
            Ok(reply) => Ok(reply),
            Err(ScepError::Refused { fail_info, reason }) => {
                let detail = format!("transaction {}: {fail_info}: {reason}", req.transaction_id);
                self.note_refusal(EventKind::ScepRefused, source, &detail);
                scep::cert_rep_failure(&config.ca, &req, fail_info)
                    .map_err(|e| ServiceError::Internal(e.to_string()))
            }
            Err(e) => Err(ServiceError::Internal(e.to_string())),
        }
    }

    async fn scep_decide(
        &self,
        config: &ScepConfig,
        req: &ScepRequest,
    ) -> Result<Vec<u8>, ScepError> {
        let now = self.now();
        let fresh = self
            .store
            .claim_scep_nonce(
                &hex::encode(&req.sender_nonce),
                &req.transaction_id,
                now,
                now.saturating_sub(NONCE_WINDOW_MS),
                MAX_NONCES,
            )
            .await
            .map_err(|e| ScepError::Malformed(format!("store: {e}")))?;
        if !fresh {
            return Err(refused(
                FailInfo::BadRequest,
                "replayed request (this senderNonce was already used)",
            ));
        }
        let Some(message_type) = req.message_type else {
            return Err(refused(
                FailInfo::BadRequest,
                "only PKCSReq and RenewalReq are served",
            ));
        };
        let csr = req.csr(&config.ca)?;
        let mut granted = Grant::default();
        let signer = match message_type {
            MessageType::RenewalReq => self.renewal_signer(config, req).await?,
            _ => None,
        };
        let how = match signer {
            // The new certificate inherits the signer's Mac at issuance: it can Authenticate only as that UDID.
            Some((fp, device_id)) => {
                granted.device_id = Some(device_id);
                granted.proof = Some(store::IssuedProof::RenewalReq);
                format!("renewal signed by {}", short_fp(&fp))
            }
            None => match &csr.challenge {
                Some(given) => match self.challenge_grant(config, given).await {
                    Ok(Some(grant)) => {
                        granted = grant;
                        granted.how.clone()
                    }
                    Ok(None) => {
                        return Err(refused(
                            FailInfo::BadRequest,
                            "wrong, expired or already used challenge password",
                        ));
                    }
                    Err(e) => {
                        return Err(ScepError::Malformed(format!("checking the challenge: {e}")));
                    }
                },
                None => {
                    return Err(refused(
                        FailInfo::BadRequest,
                        "the request carries no challenge password",
                    ));
                }
            },
        };
        let cn: String = csr
            .common_name
            .as_deref()
            .filter(|cn| !cn.is_empty())
            .unwrap_or(FALLBACK_CN)
            .chars()
            .take(64)
            .collect();
        let issued =
            config
                .ca
                .issue_device_certificate(&cn, &csr.public_key, config.validity_days)?;
        let der = issued
            .to_der()
            .map_err(|e| ScepError::Malformed(format!("encoding certificate: {e}")))?;
        let fp = pki::identity::fingerprint_sha256(&der);
        let detail = format!(
            "issued {} to CN={cn} ({}-bit RSA, {how}), transaction {}",
            short_fp(&fp),
            csr.key_bits,
            req.transaction_id
        );
        self.store
            .record_issued_certificate(&store::IssuedCertificate {
                fingerprint: fp.clone(),
                device_id: granted.device_id,
                group_id: granted.group_id,
                token_id: granted.token_id,
                issued_at: now,
                proof: granted.proof,
            })
            .await
            .map_err(|e| ScepError::Malformed(format!("store: {e}")))?;
        let event = self.event(&cn, None, EventKind::ScepIssued, Outcome::Success, detail);
        self.store
            .record_event(&event)
            .await
            .map_err(|e| ScepError::Malformed(format!("store: {e}")))?;
        tracing::info!(fingerprint = %short_fp(&fp), transaction = %req.transaction_id, "SCEP certificate issued");
        scep::cert_rep_success(&config.ca, req, &issued)
    }

    /// Which challenge `given` is: a one-time challenge from `/enroll` (consumed now), the server-wide static
    /// challenge, or a group's static challenge. None if it is none of them.
    async fn challenge_grant(
        &self,
        config: &ScepConfig,
        given: &Secret<Vec<u8>>,
    ) -> Result<Option<Grant>, ServiceError> {
        let hash = crate::enroll::secret_hash(given.expose());
        if let Some(c) = self.store.consume_scep_challenge(&hash, self.now()).await? {
            return Ok(Some(Grant {
                how: match &c.device_id {
                    Some(udid) => format!("renewal challenge minted for {udid}"),
                    None => "one-time challenge".into(),
                },
                proof: c
                    .device_id
                    .is_some()
                    .then_some(store::IssuedProof::RenewalProfile),
                device_id: c.device_id,
                group_id: c.group_id,
                token_id: c.token_id,
            }));
        }
        if config
            .static_challenge
            .as_ref()
            .is_some_and(|expected| given.ct_eq(expected))
        {
            return Ok(Some(Grant {
                how: "challenge password".into(),
                ..Grant::default()
            }));
        }
        Ok(self
            .group_with_static_challenge(given)
            .await?
            .map(|group_id| Grant {
                how: format!("static challenge of group {group_id}"),
                group_id: Some(group_id),
                ..Grant::default()
            }))
    }

    /// A RenewalReq signer that may renew: trusted, valid, the bound certificate of an enabled device
    /// enrollment (not a pending identity). Returns its fingerprint and UDID; None for any other signer (the
    /// request then needs a challenge like a PKCSReq). A blocked Mac's signer is refused outright.
    async fn renewal_signer(
        &self,
        config: &ScepConfig,
        req: &ScepRequest,
    ) -> Result<Option<(String, String)>, ScepError> {
        let Ok(der) = req.signer.to_der() else {
            return Ok(None);
        };
        let Ok(info) = config.verifier.verify_certificate_der(&der) else {
            return Ok(None);
        };
        match self
            .store
            .enrollment_by_fingerprint(&info.fingerprint)
            .await
        {
            Ok(Some(e)) if e.blocked_at.is_some() => Err(refused(
                FailInfo::BadRequest,
                "this Mac is blocked by an administrator",
            )),
            Ok(Some(e)) if e.enabled && !e.is_pending() && e.channel == store::Channel::Device => {
                Ok(Some((info.fingerprint, e.id)))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(ScepError::Malformed(format!("store: {e}"))),
        }
    }
}

/// What a challenge entitles the issued certificate to.
#[derive(Debug, Default)]
struct Grant {
    how: String,
    group_id: Option<String>,
    token_id: Option<String>,
    /// Bound at issuance to this UDID (renewal), with how it was proven.
    device_id: Option<String>,
    proof: Option<store::IssuedProof>,
}

fn refused(fail_info: FailInfo, reason: &str) -> ScepError {
    ScepError::Refused {
        fail_info,
        reason: reason.to_string(),
    }
}
