//! The check-in protocol entry point and device credential verification.
//!
//! Order of work for every device request: guard + parse the body (malformed input is refused before any
//! crypto), verify the device's credential against the configured device CAs, then dispatch. Failures change
//! nothing in the store except an `auth.failed` event on a known enrollment.

use std::sync::Arc;

use pki::{CertInfo, DeviceIdentityVerifier};
use protocol::CheckinMessage;
use protocol::checkin::Identity;
use store::Outcome;

use crate::{MdmService, ServiceError, events};

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
    ) -> Result<CheckinReply, ServiceError> {
        let message = protocol::checkin::parse_checkin(body)?;
        let cert = match identity.verify(credential, body) {
            Ok(cert) => cert,
            Err(err) => {
                self.note_auth_failure(message.identity(), message.message_type(), &err)
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
            self.note_auth_failure(&claimed, message_type, err).await;
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
            CheckinMessage::TokenUpdate(m) => self
                .token_update(cert, m)
                .await
                .map(|()| CheckinReply::Empty),
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
            events::CHECKIN_UNSUPPORTED,
            Outcome::Refused,
            format!("{what}: {reason}"),
        );
        self.store.record_event(&event).await?;
        Err(ServiceError::Refused(format!("{what}: {reason}")))
    }

    /// An authentication failure becomes an event only when the claimed device is one we know, so that
    /// unauthenticated traffic cannot fill the event table with made-up UDIDs; it is always logged.
    pub(crate) async fn note_auth_failure(
        &self,
        identity: &Identity,
        message_type: &str,
        err: &ServiceError,
    ) {
        let claimed = identity.device_id().unwrap_or("unknown");
        tracing::warn!(udid = %claimed, message_type, reason = %err, "device authentication failed");
        let Some(device_id) = identity.device_id() else {
            return;
        };
        match self.store.enrollment(device_id).await {
            Ok(Some(_)) => {
                let event = self.event(
                    device_id,
                    Some(device_id),
                    events::AUTH_FAILED,
                    Outcome::Failure,
                    format!("{message_type}: {err}"),
                );
                if let Err(e) = self.store.record_event(&event).await {
                    tracing::error!(error = %e, "could not record auth failure event");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not look up enrollment for auth failure event")
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
