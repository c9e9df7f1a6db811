//! The check-in protocol entry point and device credential verification.
//!
//! Order of work for every device request: guard + parse the body (malformed input is refused before any
//! crypto), verify the device's credential against the configured device CAs, then dispatch. Failures change
//! nothing in the store; one that claims a known enrollment is counted as `auth.failed` per source and hour
//! (`crate::edge`), never stored one row per request.

use std::sync::Arc;

use pki::{CertInfo, DeviceIdentityVerifier};
use protocol::CheckinMessage;
use protocol::checkin::Identity;
use store::Outcome;

use crate::edge::Source;
use crate::{EventKind, MdmService, ServiceError};

/// How the device proved who it is, as collected by the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub enum DeviceCredential<'a> {
    /// The raw `Mdm-Signature` header (base64 CMS SignedData, detached, over the exact body).
    MdmSignature(&'a [u8]),
    /// DER certificate the device presented in the TLS handshake.
    TlsCertificate(&'a [u8]),
    /// DER certificate forwarded by a TLS-terminating proxy the admin configured as trusted.
    ForwardedCertificate(&'a [u8]),
    /// Nothing: refused.
    None,
}

/// What to answer a check-in with (always a 200).
#[derive(Debug)]
pub enum CheckinReply {
    /// 200 with an empty body.
    Empty,
    /// 200 with an XML plist body (GetBootstrapToken, UserAuthenticate). May contain a secret: never log it.
    Plist(Vec<u8>),
}

/// Checks device credentials; owned by the service so the server only collects them.
pub struct IdentityCheck {
    verifier: Arc<DeviceIdentityVerifier>,
}

impl IdentityCheck {
    pub fn new(verifier: Arc<DeviceIdentityVerifier>) -> Self {
        IdentityCheck { verifier }
    }

    pub fn verify(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
    ) -> Result<CertInfo, ServiceError> {
        match credential {
            DeviceCredential::MdmSignature(header) => {
                Ok(self.verifier.verify_mdm_signature(header, body)?)
            }
            DeviceCredential::TlsCertificate(der) | DeviceCredential::ForwardedCertificate(der) => {
                Ok(self.verifier.verify_certificate_der(der)?)
            }
            DeviceCredential::None => Err(ServiceError::Unauthenticated(
                "no device identity: send Mdm-Signature (SignMessage) or a TLS client certificate"
                    .into(),
            )),
        }
    }

    /// [`IdentityCheck::verify`] without the validity-period check. Only for the renewal grace
    /// (`MdmService::grace_connect`), which bounds how far past notAfter it accepts and what it answers.
    pub(crate) fn verify_ignoring_expiry(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
    ) -> Result<CertInfo, ServiceError> {
        match credential {
            DeviceCredential::MdmSignature(header) => Ok(self
                .verifier
                .verify_mdm_signature_ignoring_expiry(header, body)?),
            DeviceCredential::TlsCertificate(der) | DeviceCredential::ForwardedCertificate(der) => {
                Ok(self.verifier.verify_certificate_der_ignoring_expiry(der)?)
            }
            DeviceCredential::None => {
                Err(ServiceError::Unauthenticated("no device identity".into()))
            }
        }
    }
}

impl MdmService {
    /// Handle one check-in request body (`PUT /mdm/checkin`).
    pub async fn checkin(
        &self,
        identity: &IdentityCheck,
        credential: DeviceCredential<'_>,
        body: &[u8],
        source: &Source,
    ) -> Result<CheckinReply, ServiceError> {
        let message = protocol::checkin::parse_checkin(body)?;
        let cert = match identity.verify(credential, body) {
            Ok(cert) => cert,
            Err(err) => {
                self.note_auth_failure(message.identity(), message.message_type(), &err, source)
                    .await;
                return Err(err);
            }
        };
        let message_type = message.message_type();
        let claimed = message.identity().clone();
        let result = self.dispatch(&cert, message).await;
        if let Err(err) = &result
            && err.kind() == crate::ErrorKind::Unauthenticated
        {
            self.note_auth_failure(&claimed, message_type, err, source)
                .await;
        }
        result
    }

    async fn dispatch(
        &self,
        cert: &CertInfo,
        message: CheckinMessage,
    ) -> Result<CheckinReply, ServiceError> {
        match message {
            CheckinMessage::Authenticate(m) => self
                .authenticate(cert, m)
                .await
                .map(|()| CheckinReply::Empty),
            CheckinMessage::TokenUpdate(m) => {
                // A user-channel TokenUpdate: a user logged in (maybe a new one), so ask UserList again.
                let user_login = m
                    .identity
                    .is_user_channel()
                    .then(|| m.identity.device_id().map(str::to_string))
                    .flatten();
                self.token_update(cert, m).await?;
                if let Some(device_id) = user_login {
                    self.refresh_user_list(&device_id, "a user-channel TokenUpdate")
                        .await;
                }
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::CheckOut(m) => {
                self.check_out(cert, m).await.map(|()| CheckinReply::Empty)
            }
            CheckinMessage::SetBootstrapToken(m) => self.set_bootstrap_token(cert, m).await,
            CheckinMessage::GetBootstrapToken(m) => self.get_bootstrap_token(cert, m).await,
            CheckinMessage::UserAuthenticate(m) => {
                self.bound_device(cert, &m.identity).await?;
                // We do not authenticate macOS users ourselves: an empty DigestChallenge means "no further
                // authentication", and the device proceeds to the user channel's TokenUpdate.
                let mut reply = plist::Dictionary::new();
                reply.insert(
                    "DigestChallenge".into(),
                    plist::Value::String(String::new()),
                );
                Ok(CheckinReply::Plist(plist_xml(&plist::Value::Dictionary(
                    reply,
                ))?))
            }
            CheckinMessage::DeclarativeManagement(m) => {
                let device = self.bound_device(cert, &m.identity).await?;
                self.unsupported(
                    &device.id,
                    "DeclarativeManagement",
                    "declarative management is not enabled on this server",
                )
                .await
            }
            CheckinMessage::GetToken(m) => {
                let device = self.bound_device(cert, &m.identity).await?;
                self.unsupported(
                    &device.id,
                    "GetToken",
                    "this server offers no token service (com.apple.mdm.token)",
                )
                .await
            }
        }
    }

    async fn unsupported(
        &self,
        device_id: &str,
        what: &str,
        reason: &str,
    ) -> Result<CheckinReply, ServiceError> {
        let event = self.event(
            device_id,
            Some(device_id),
            EventKind::CheckinUnsupported,
            Outcome::Refused,
            format!("{what}: {reason}"),
        );
        self.store.record_event(&event).await?;
        Err(ServiceError::Refused(format!("{what}: {reason}")))
    }

    /// An authentication failure is counted (per source and hour, `crate::edge`) only when the claimed device
    /// is one we know, so that made-up UDIDs cost nothing; it is always logged (at most once per source and
    /// kind between flushes above debug level).
    pub(crate) async fn note_auth_failure(
        &self,
        identity: &Identity,
        message_type: &str,
        err: &ServiceError,
        source: &Source,
    ) {
        let Some(device_id) = identity.device_id() else {
            tracing::debug!(message_type, reason = %err, "device authentication failed (no UDID)");
            return;
        };
        match self.store.enrollment(device_id).await {
            Ok(Some(_)) => self.note_refusal(
                EventKind::AuthFailed,
                source,
                &format!("{device_id}: {message_type}: {err}"),
            ),
            Ok(None) => {
                tracing::debug!(message_type, reason = %err, "device authentication failed (unknown UDID)")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not look up enrollment for an auth failure")
            }
        }
    }
}

pub(crate) fn plist_xml(value: &plist::Value) -> Result<Vec<u8>, ServiceError> {
    let mut out = Vec::new();
    value
        .to_writer_xml(&mut out)
        .map_err(|e| ServiceError::Internal(format!("encoding reply plist: {e}")))?;
    Ok(out)
}
