//! The signature/identity layer: the one door from a device request to the device-channel handlers.
//!
//! It owns the device-identity verifier (configured once, with [`MdmService::with_device_identity`]), verifies
//! the credential the server collected (`Mdm-Signature` over the exact body, or a client certificate), and
//! applies the identity-continuity rules (ARCHITECTURE.md, "Invariants"):
//!
//! - [`DeviceIdentity::authenticate`] (`bind`): who may bind a certificate to a UDID — the same certificate
//!   again, a fresh enrollment, a proven renewal, or a *pending* identity beside the bound one;
//! - [`DeviceIdentity::bound_device`]: every later message must come with the certificate bound to the UDID it
//!   claims; blocked devices and ended enrollments are refused; a pending identity is its own enrollment;
//! - [`DeviceIdentity::grace_device`]: a still-bound certificate shortly past notAfter, for its renewal only.
//!
//! What it yields is a [`BoundDevice`], whose constructor is private to this module: holding one is the proof
//! the handlers (`super::enrollment`, `super::bootstrap`, `super::command_channel`) require.
//!
//! [`MdmService::with_device_identity`]: crate::MdmService::with_device_identity

mod bind;

use pki::{CertInfo, DeviceIdentityVerifier};
use protocol::checkin::Identity;
use protocol::command::CommandReport;
use store::{Enrollment, Outcome};

use super::DeviceCredential;
use crate::{Clock, EventKind, ServiceError};

/// Short, log-safe form of a certificate fingerprint.
pub(crate) fn short_fp(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

/// A device enrollment proven by the certificate bound to it: the Mac's own enrollment, or a pending identity's
/// row (`is_pending()`), which has its own token and queue, never the Mac's. Only `DeviceIdentity` makes one.
#[derive(Debug, Clone)]
pub struct BoundDevice {
    enrollment: Enrollment,
    cert: CertInfo,
    /// Whether the enrollment's command queue held any entry when it was bound (true when not known).
    queued: bool,
}

impl BoundDevice {
    /// The enrollment id (for a pending identity, its own row's id).
    pub fn id(&self) -> &str {
        &self.enrollment.id
    }

    /// The UDID the device speaks for (for a pending identity, the Mac it claims).
    pub fn claimed_device_id(&self) -> &str {
        self.enrollment.claimed_device_id()
    }

    pub fn enrollment(&self) -> &Enrollment {
        &self.enrollment
    }

    /// The verified certificate the request came with.
    pub fn cert(&self) -> &CertInfo {
        &self.cert
    }

    pub fn is_pending(&self) -> bool {
        self.enrollment.is_pending()
    }

    /// False only when the enrollment's queue was read empty as the device was bound: an Idle poll of its own
    /// channel then has nothing to fetch (a command queued since is pushed, and the next poll gets it).
    pub(crate) fn queue_may_hold_commands(&self) -> bool {
        self.queued
    }
}

/// The identity layer for one request.
///
/// Store roles: Enrollments (lookups, binding, pending identities), Tokens (`set_bootstrap_token_verified`),
/// Events. SCEP issuance records (`bind_issued_certificate`) and identity renewals (`clear_identity_renewal`)
/// are read and cleared here too.
pub(crate) struct DeviceIdentity<'a, S: ?Sized = dyn store::Store> {
    verifier: Option<&'a DeviceIdentityVerifier>,
    store: &'a S,
    clock: &'a dyn Clock,
}

/// The store roles [`DeviceIdentity`] takes.
pub(crate) trait IdentityRoles:
    store::Enrollments + store::Tokens + store::Scep + store::Renewals + store::Events
{
}
impl<T: ?Sized + store::Enrollments + store::Tokens + store::Scep + store::Renewals + store::Events>
    IdentityRoles for T
{
}

/// The UDID or EnrollmentID a message claims; Unauthenticated when it carries neither.
fn claimed_device(identity: &Identity) -> Result<&str, ServiceError> {
    identity.device_id().ok_or_else(|| {
        ServiceError::Unauthenticated("message carries no UDID or EnrollmentID".into())
    })
}

impl<'a, S: ?Sized + IdentityRoles> DeviceIdentity<'a, S> {
    pub(crate) fn new(
        verifier: Option<&'a DeviceIdentityVerifier>,
        store: &'a S,
        clock: &'a dyn Clock,
    ) -> Self {
        DeviceIdentity {
            verifier,
            store,
            clock,
        }
    }

    fn now(&self) -> store::Millis {
        self.clock.now_millis()
    }

    fn verifier(&self) -> Result<&'a DeviceIdentityVerifier, ServiceError> {
        self.verifier.ok_or_else(|| {
            ServiceError::Unauthenticated("no device identity verifier is configured".into())
        })
    }

    /// Verify the device's credential against the configured device CAs.
    pub(crate) fn verify(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
    ) -> Result<CertInfo, ServiceError> {
        match credential {
            DeviceCredential::MdmSignature(header) => {
                Ok(self.verifier()?.verify_mdm_signature(header, body)?)
            }
            DeviceCredential::TlsCertificate(der) | DeviceCredential::ForwardedCertificate(der) => {
                Ok(self.verifier()?.verify_certificate_der(der)?)
            }
            DeviceCredential::None => Err(ServiceError::Unauthenticated(
                "no device identity: send Mdm-Signature (SignMessage) or a TLS client certificate"
                    .into(),
            )),
        }
    }

    /// [`DeviceIdentity::verify`] without the validity-period check. Only for the renewal grace
    /// ([`DeviceIdentity::grace_device`]), which bounds how far past notAfter it accepts.
    fn verify_ignoring_expiry(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
    ) -> Result<CertInfo, ServiceError> {
        match credential {
            DeviceCredential::MdmSignature(header) => Ok(self
                .verifier()?
                .verify_mdm_signature_ignoring_expiry(header, body)?),
            DeviceCredential::TlsCertificate(der) | DeviceCredential::ForwardedCertificate(der) => {
                Ok(self
                    .verifier()?
                    .verify_certificate_der_ignoring_expiry(der)?)
            }
            DeviceCredential::None => {
                Err(ServiceError::Unauthenticated("no device identity".into()))
            }
        }
    }

    /// The enabled enrollment bound to `cert`, checked against the UDID the message claims: the Mac's device
    /// enrollment, or a pending identity's own row (`is_pending()`), which claims that UDID without proof and
    /// has its own token and queue, never the Mac's.
    ///
    /// When the Mac's bound certificate checks in while a pending identity claims it, the pending identity is
    /// refused from then on (an impostor, or a stale copy).
    pub(crate) async fn bound_device(
        &self,
        cert: &CertInfo,
        identity: &Identity,
    ) -> Result<BoundDevice, ServiceError> {
        let claimed = claimed_device(identity)?;
        let found = self
            .store
            .enrollment_by_fingerprint_with_queue(&cert.fingerprint)
            .await?;
        self.bind(cert, claimed, found).await
    }

    /// [`DeviceIdentity::bound_device`] and that enrollment's escrowed Bootstrap Token, read with it (one
    /// statement on SQLite): a GetBootstrapToken's reads. The token is only the bound device's: none when
    /// binding fails.
    pub(crate) async fn bound_device_with_token(
        &self,
        cert: &CertInfo,
        identity: &Identity,
    ) -> Result<(BoundDevice, Option<store::BootstrapTokenRecord>), ServiceError> {
        let claimed = claimed_device(identity)?;
        let (found, token) = match self
            .store
            .enrollment_by_fingerprint_with_token(&cert.fingerprint)
            .await?
        {
            Some((enrollment, queued, token)) => (Some((enrollment, queued)), token),
            None => (None, None),
        };
        let device = self.bind(cert, claimed, found).await?;
        Ok((device, token))
    }

    /// The checks of [`DeviceIdentity::bound_device`] on the enrollment `found` for `cert` (with its queue flag).
    async fn bind(
        &self,
        cert: &CertInfo,
        claimed: &str,
        found: Option<(store::Enrollment, bool)>,
    ) -> Result<BoundDevice, ServiceError> {
        let Some((enrollment, queued)) = found else {
            return Err(ServiceError::Unauthenticated(format!(
                "certificate {} is not bound to any enrollment (the device must Authenticate first)",
                short_fp(&cert.fingerprint)
            )));
        };
        if enrollment.claimed_device_id() != claimed {
            return Err(ServiceError::Unauthenticated(format!(
                "certificate {} is bound to enrollment {}, but the message claims {}",
                short_fp(&cert.fingerprint),
                enrollment.claimed_device_id(),
                claimed
            )));
        }
        if enrollment.is_pending() {
            if !enrollment.enabled {
                return Err(ServiceError::Refused(format!(
                    "identity {} was refused for {claimed}: the Mac's bound identity checked in after it; \
                     an administrator must approve a re-enrolled Mac",
                    short_fp(&cert.fingerprint)
                )));
            }
            self.refuse_if_blocked(claimed).await?;
            return Ok(BoundDevice {
                enrollment,
                cert: cert.clone(),
                queued,
            });
        }
        if enrollment.blocked_at.is_some() {
            return Err(ServiceError::Refused(format!(
                "{claimed} is blocked by an administrator"
            )));
        }
        if !enrollment.enabled {
            return Err(ServiceError::Refused(format!(
                "enrollment {} has checked out; the device must enroll again",
                enrollment.id
            )));
        }
        if enrollment.has_pending {
            let event = crate::events::new_event(
                self.clock,
                claimed,
                Some(claimed),
                EventKind::IdentityPendingRefused,
                Outcome::Success,
                "the Mac's bound identity checked in again: every pending identity claiming it is refused",
            );
            let refused = self
                .store
                .refuse_pending_identities(claimed, self.now(), &event)
                .await?;
            tracing::warn!(udid = %claimed, refused, "bound identity checked in; pending identities refused");
        }
        Ok(BoundDevice {
            enrollment,
            cert: cert.clone(),
            queued,
        })
    }

    async fn refuse_if_blocked(&self, device_id: &str) -> Result<(), ServiceError> {
        match self.store.enrollment(device_id).await? {
            Some(e) if e.blocked_at.is_some() => Err(ServiceError::Refused(format!(
                "{device_id} is blocked by an administrator"
            ))),
            _ => Ok(()),
        }
    }

    /// The grace window of identity renewal: the Mac whose *bound* certificate (enabled, unblocked, not a
    /// pending identity, device channel) is past its notAfter by at most `grace_ms`, when the report claims
    /// that Mac. None = refuse as usual.
    pub(crate) async fn grace_device(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        report: &CommandReport,
        grace_ms: store::Millis,
    ) -> Result<Option<BoundDevice>, ServiceError> {
        if grace_ms <= 0 || report.identity.is_user_channel() {
            return Ok(None);
        }
        let Ok(cert) = self.verify_ignoring_expiry(credential, body) else {
            return Ok(None);
        };
        let now = self.now();
        let not_after = cert.not_after_unix.saturating_mul(1000);
        if not_after >= now || now - not_after > grace_ms {
            return Ok(None);
        }
        let Some(claimed) = report.identity.device_id() else {
            return Ok(None);
        };
        let enrollment = self
            .store
            .enrollment_by_fingerprint(&cert.fingerprint)
            .await?
            .filter(|e| {
                e.id == claimed
                    && !e.is_pending()
                    && e.enabled
                    && e.blocked_at.is_none()
                    && e.channel == store::Channel::Device
                    && e.cert_fingerprint.as_deref() == Some(cert.fingerprint.as_str())
            });
        Ok(enrollment.map(|enrollment| BoundDevice {
            enrollment,
            cert,
            queued: true,
        }))
    }
}
