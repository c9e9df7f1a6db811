//! Message dispatch: the one place that decodes what a device sent (the check-in message type, or a command
//! report), passes it through the identity layer, routes it to its handler, and runs the follow-ups the
//! handlers ask for (inventory, UserList, SecurityInfo, renewal bookkeeping) on the rest of the service.

use pki::CertInfo;
use protocol::CheckinMessage;
use protocol::checkin::Identity;
use protocol::command::{CommandReport, Status};
use store::Outcome;

use super::bootstrap::{BootstrapEscrow, SetOutcome};
use super::command_channel::{CommandChannel, ReportEffect};
use super::enrollment::{EnrollmentLifecycle, TokenUpdated};
use super::identity::{BoundDevice, DeviceIdentity};
use super::{CheckinReply, ConnectReply, DeviceCredential, plist_xml};
use crate::edge::Source;
use crate::{ErrorKind, EventKind, MdmService, ServiceError, telemetry};

/// Routes one device request. Holds the service for the layers' parts (store, vault, clock, verifier) and for
/// the follow-ups that queue commands.
pub(super) struct Dispatch<'a> {
    svc: &'a MdmService,
}

impl<'a> Dispatch<'a> {
    pub(super) fn new(svc: &'a MdmService) -> Self {
        Dispatch { svc }
    }

    fn identity(&self) -> DeviceIdentity<'a> {
        DeviceIdentity::new(
            self.svc.device_verifier.as_deref(),
            &*self.svc.store,
            &*self.svc.clock,
        )
    }

    fn enrollment(&self) -> EnrollmentLifecycle<'a> {
        EnrollmentLifecycle::new(&*self.svc.store, &*self.svc.clock)
    }

    fn bootstrap(&self) -> BootstrapEscrow<'a> {
        BootstrapEscrow::new(&*self.svc.store, &self.svc.secrets, &*self.svc.clock)
    }

    fn command_channel(&self) -> CommandChannel<'a> {
        CommandChannel::new(&*self.svc.store, &self.svc.secrets, &*self.svc.clock)
    }

    /// `PUT /mdm/checkin`: parse, verify, route; counted by message type and outcome (`crate::telemetry`).
    pub(super) async fn checkin(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        source: &Source,
    ) -> Result<CheckinReply, ServiceError> {
        let started = std::time::Instant::now();
        let (label, result) = match protocol::checkin::parse_checkin(body) {
            Ok(message) => (
                message.message_type(),
                self.checkin_message(credential, body, message, source)
                    .await,
            ),
            Err(e) => (telemetry::UNPARSED, Err(e.into())),
        };
        telemetry::record_device_message(label, &result, started.elapsed());
        result
    }

    async fn checkin_message(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        message: CheckinMessage,
        source: &Source,
    ) -> Result<CheckinReply, ServiceError> {
        let identity = self.identity();
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
        let result = self.route(&identity, &cert, message).await;
        if let Err(err) = &result
            && err.kind() == ErrorKind::Unauthenticated
        {
            self.note_auth_failure(&claimed, message_type, err, source)
                .await;
        }
        result
    }

    async fn route(
        &self,
        identity: &DeviceIdentity<'_>,
        cert: &CertInfo,
        message: CheckinMessage,
    ) -> Result<CheckinReply, ServiceError> {
        match message {
            CheckinMessage::Authenticate(m) => identity
                .authenticate(cert, m)
                .await
                .map(|()| CheckinReply::Empty),
            CheckinMessage::TokenUpdate(m) => {
                let device = identity.bound_device(cert, &m.identity).await?;
                match self.enrollment().token_update(&device, m).await? {
                    // A user-channel TokenUpdate: a user logged in (maybe a new one), so ask UserList again.
                    TokenUpdated::UserChannel => {
                        self.svc
                            .refresh_user_list(
                                device.claimed_device_id(),
                                "a user-channel TokenUpdate",
                            )
                            .await
                    }
                    TokenUpdated::Device {
                        completed: Some(enrollment),
                    } => self.svc.queue_enrollment_inventory(&enrollment).await,
                    TokenUpdated::Device { completed: None } => {}
                }
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::CheckOut(m) => {
                if m.identity.is_user_channel() {
                    return Err(ServiceError::Refused(
                        "CheckOut is a device-channel message".into(),
                    ));
                }
                let device = identity.bound_device(cert, &m.identity).await?;
                self.enrollment()
                    .check_out(&device)
                    .await
                    .map(|()| CheckinReply::Empty)
            }
            CheckinMessage::SetBootstrapToken(m) => {
                let device = identity.bound_device(cert, &m.identity).await?;
                // Not for a pending identity: its Mac is not the enrollment's until it is confirmed.
                let follow_ups = !device.is_pending();
                let (svc, id) = (self.svc, device.id());
                self.bootstrap()
                    .set(&device, m, |outcome| async move {
                        if follow_ups {
                            svc.after_set_bootstrap_token(id, outcome == SetOutcome::Escrowed)
                                .await;
                        }
                    })
                    .await?;
                Ok(CheckinReply::Empty)
            }
            CheckinMessage::GetBootstrapToken(m) => {
                let (device, token) = identity.bound_device_with_token(cert, &m.identity).await?;
                self.bootstrap().get(&device, m, token).await
            }
            CheckinMessage::UserAuthenticate(m) => {
                identity.bound_device(cert, &m.identity).await?;
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
                let device = identity.bound_device(cert, &m.identity).await?;
                self.unsupported(
                    &device,
                    "DeclarativeManagement",
                    "declarative management is not enabled on this server",
                )
                .await
            }
            CheckinMessage::GetToken(m) => {
                let device = identity.bound_device(cert, &m.identity).await?;
                self.unsupported(
                    &device,
                    "GetToken",
                    "this server offers no token service (com.apple.mdm.token)",
                )
                .await
            }
        }
    }

    async fn unsupported(
        &self,
        device: &BoundDevice,
        what: &str,
        reason: &str,
    ) -> Result<CheckinReply, ServiceError> {
        let event = self.svc.event(
            device.id(),
            Some(device.id()),
            EventKind::CheckinUnsupported,
            Outcome::Refused,
            format!("{what}: {reason}"),
        );
        self.svc.store.record_event(&event).await?;
        Err(ServiceError::Refused(format!("{what}: {reason}")))
    }

    /// `PUT /mdm/connect`: parse, verify (or grant the renewal grace), record the report, serve the next command.
    pub(super) async fn connect(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        source: &Source,
    ) -> Result<ConnectReply, ServiceError> {
        let started = std::time::Instant::now();
        let (label, result) = match protocol::command::parse_report(body) {
            Ok(report) => (
                report.status.as_str(),
                self.connect_report(credential, body, &report, source).await,
            ),
            Err(e) => (telemetry::UNPARSED, Err(e.into())),
        };
        telemetry::record_device_message(label, &result, started.elapsed());
        result
    }

    async fn connect_report(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        report: &CommandReport,
        source: &Source,
    ) -> Result<ConnectReply, ServiceError> {
        let identity = self.identity();
        let cert = match identity.verify(credential, body) {
            Ok(cert) => cert,
            Err(err) => {
                // A still-bound identity shortly past notAfter may fetch its renewal profile, nothing else.
                // Any failure on that path ends in the original refusal.
                match self.grace(&identity, credential, body, report).await {
                    Ok(Some(reply)) => return Ok(reply),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "renewal grace could not be granted"),
                }
                self.note_auth_failure(&report.identity, "command report", &err, source)
                    .await;
                return Err(err);
            }
        };
        match self.report(&identity, &cert, report, body).await {
            Err(err) if err.kind() == ErrorKind::Unauthenticated => {
                self.note_auth_failure(&report.identity, "command report", &err, source)
                    .await;
                Err(err)
            }
            other => other,
        }
    }

    async fn report(
        &self,
        identity: &DeviceIdentity<'_>,
        cert: &CertInfo,
        report: &CommandReport,
        body: &[u8],
    ) -> Result<ConnectReply, ServiceError> {
        let device = identity.bound_device(cert, &report.identity).await?;
        let channel = self.command_channel();
        let enrollment = channel.open_session(&device, report).await?;
        match channel
            .record_report(&device, &enrollment, report, body)
            .await?
        {
            ReportEffect::None => {}
            ReportEffect::Acknowledged { request_type } => {
                self.svc
                    .store_inventory(&enrollment.id, device.id(), &request_type, report)
                    .await?
            }
            ReportEffect::ProfileRefused { uuid } => {
                self.svc.renewal_refused(device.id(), &uuid).await?
            }
        }
        // An Idle poll on the device channel of a Mac whose queue was read empty as it was bound: nothing to
        // fetch, and one read saved (a report of any other status may have queued follow-ups just now).
        if report.status == Status::Idle
            && enrollment.id == device.id()
            && !device.queue_may_hold_commands()
        {
            return Ok(ConnectReply::Idle);
        }
        channel
            .next_command(&device, &enrollment, report.status == Status::NotNow)
            .await
    }

    /// The renewal grace: Some(answer) only for a bound identity within the grace period past its notAfter.
    async fn grace(
        &self,
        identity: &DeviceIdentity<'_>,
        credential: DeviceCredential<'_>,
        body: &[u8],
        report: &CommandReport,
    ) -> Result<Option<ConnectReply>, ServiceError> {
        let Some(settings) = self.svc.renewal.as_deref() else {
            return Ok(None);
        };
        let Some(device) = identity
            .grace_device(credential, body, report, settings.grace_ms)
            .await?
        else {
            return Ok(None);
        };
        self.svc
            .grace_connect(&device, report, body)
            .await
            .map(Some)
    }

    /// An authentication failure is counted (per source and hour, `crate::edge`) only when the claimed device
    /// is one we know, so that made-up UDIDs cost nothing; it is always logged (at most once per source and
    /// kind between flushes above debug level).
    async fn note_auth_failure(
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
        match self.svc.store.enrollment(device_id).await {
            Ok(Some(_)) => self.svc.note_refusal(
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
