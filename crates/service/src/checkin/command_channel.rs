//! The command-channel handler (`/mdm/connect`): status reports in, queued commands out.
//!
//! Follows Apple's queue rules: a command stays queued until Acknowledged/Error/CommandFormatError arrives
//! with its UUID; duplicates are idempotent; after a NotNow the same session is not offered NotNow commands
//! again, while an Idle makes them eligible. An acknowledged EraseDevice ends the enrollment and clears the
//! escrowed Bootstrap Token (the Mac it belonged to no longer exists).
//!
//! Commands that carry a secret are queued sealed (`crate::commands`); this handler is the one place that opens
//! them, only to answer the Mac. One it cannot open is finished as an Error so it never blocks the queue.

use protocol::command::{CommandReport, Status};
use store::{CommandStatus, Enrollment, Outcome, ReportOutcome};
use vault::Secret;

use super::ConnectReply;
use super::enrollment::{EnrollmentLifecycle, LifecycleRoles};
use super::identity::BoundDevice;
use crate::secrets::{SecretRef, Secrets};
use crate::{Clock, EventKind, ServiceError};

/// What a recorded report asks of the rest of the service (the dispatcher runs it before serving the next
/// command, so whatever it queues can be served in this session).
pub(crate) enum ReportEffect {
    /// Nothing more to do.
    None,
    /// An acknowledged command: store what it reported (inventory).
    Acknowledged { request_type: String },
    /// An InstallProfile answered with an error: a renewal profile, maybe, refused by the Mac.
    ProfileRefused { uuid: String },
}

/// Report recording and command serving for a bound device.
///
/// Store roles: Commands (`command`, `record_command_result`, `next_command`), Secrets (`sealed_secret`, for
/// sealed command payloads), Enrollments (`backfill_cert_not_after`, `note_last_seen`, `checkout`, user
/// channel lookups), Events.
pub(crate) struct CommandChannel<'a, S: ?Sized = dyn store::Store> {
    store: &'a S,
    secrets: &'a Secrets,
    clock: &'a dyn Clock,
}

/// The store roles [`CommandChannel`] takes.
pub(crate) trait ChannelRoles: store::Commands + store::Renewals + LifecycleRoles {}
impl<T: ?Sized + store::Commands + store::Renewals + LifecycleRoles> ChannelRoles for T {}

impl<'a, S: ?Sized + ChannelRoles> CommandChannel<'a, S> {
    pub(crate) fn new(store: &'a S, secrets: &'a Secrets, clock: &'a dyn Clock) -> Self {
        CommandChannel {
            store,
            secrets,
            clock,
        }
    }

    fn now(&self) -> store::Millis {
        self.clock.now_millis()
    }

    /// The enrollment the report is about (the device, or one of its user channels), marked seen.
    pub(crate) async fn open_session(
        &self,
        device: &BoundDevice,
        report: &CommandReport,
    ) -> Result<Enrollment, ServiceError> {
        let cert = device.cert();
        if device.enrollment().cert_not_after.is_none() && !device.is_pending() {
            // Bound before escrowd recorded expiry: without it the renewal schedule would never see this Mac.
            self.store
                .backfill_cert_not_after(
                    device.id(),
                    &cert.fingerprint,
                    cert.not_after_unix.saturating_mul(1000),
                )
                .await?;
        }
        let enrollment = EnrollmentLifecycle::new(self.store, self.clock)
            .channel_enrollment(device, &report.identity)
            .await?;
        self.store
            .note_last_seen(&enrollment.id, self.now())
            .await?;
        Ok(enrollment)
    }

    /// Record the report's status for its command (Idle reports none).
    pub(crate) async fn record_report(
        &self,
        device: &BoundDevice,
        enrollment: &Enrollment,
        report: &CommandReport,
        body: &[u8],
    ) -> Result<ReportEffect, ServiceError> {
        if report.status == Status::Idle {
            return Ok(ReportEffect::None);
        }
        let Some(uuid) = report.command_uuid.as_deref() else {
            return Ok(ReportEffect::None);
        };
        let status = match report.status {
            Status::Acknowledged => CommandStatus::Acknowledged,
            Status::Error => CommandStatus::Error,
            Status::CommandFormatError => CommandStatus::CommandFormatError,
            Status::NotNow | Status::Idle => CommandStatus::NotNow,
        };
        let queued = self.store.command(&enrollment.id, uuid).await?;
        match self
            .store
            .record_command_result(&enrollment.id, uuid, status, body, self.now())
            .await?
        {
            ReportOutcome::Recorded => {
                let request_type = queued.map(|q| q.request_type).unwrap_or_default();
                self.after_result(&enrollment.id, device.id(), uuid, request_type, report)
                    .await
            }
            ReportOutcome::Duplicate => {
                tracing::debug!(enrollment = %enrollment.id, uuid, "duplicate command report ignored");
                Ok(ReportEffect::None)
            }
            ReportOutcome::UnknownCommand => {
                tracing::warn!(enrollment = %enrollment.id, uuid, "report for a command that was never queued");
                Ok(ReportEffect::None)
            }
        }
    }

    /// The next queued command for `enrollment` (after a NotNow, none that was NotNow'd in this session).
    pub(crate) async fn next_command(
        &self,
        device: &BoundDevice,
        enrollment: &Enrollment,
        skip_notnow: bool,
    ) -> Result<ConnectReply, ServiceError> {
        // A sealed payload that cannot be opened finishes its entry as an Error, so it never blocks the queue.
        for _ in 0..16 {
            // Claimed (PostgreSQL): another instance answering a concurrent poll of this Mac gets another entry.
            let Some(cmd) = self
                .store
                .claim_next_command(&enrollment.id, skip_notnow)
                .await?
            else {
                return Ok(ConnectReply::Idle);
            };
            if !cmd.carries_secret {
                return Ok(ConnectReply::Command(cmd.payload));
            }
            match self.open_command_payload(&cmd.uuid).await {
                Ok(payload) => return Ok(ConnectReply::Command(payload.expose().clone())),
                Err(reason) => {
                    self.drop_unreadable_command(&enrollment.id, device.id(), &cmd, &reason)
                        .await?
                }
            }
        }
        Ok(ConnectReply::Idle)
    }

    /// The real payload of a command that carries a secret.
    pub(crate) async fn open_command_payload(&self, uuid: &str) -> Result<Secret<Vec<u8>>, String> {
        let r = SecretRef::command_payload(uuid);
        let sealed = self
            .secrets
            .get(&r)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "its sealed payload is missing".to_string())?;
        self.secrets
            .open_blob(&r, &sealed.blob)
            .map_err(|e| format!("its sealed payload could not be opened: {e}"))
    }

    async fn drop_unreadable_command(
        &self,
        enrollment_id: &str,
        device_id: &str,
        cmd: &store::QueuedCommand,
        reason: &str,
    ) -> Result<(), ServiceError> {
        tracing::error!(enrollment = %enrollment_id, uuid = %cmd.uuid, reason, "queued command dropped");
        let mut result = Vec::new();
        plist::Value::Dictionary(
            [
                ("CommandUUID", cmd.uuid.as_str()),
                ("Status", "Error"),
                (
                    "escrowd",
                    "not sent: the sealed payload could not be opened",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), plist::Value::String(v.to_string())))
            .collect(),
        )
        .to_writer_xml(&mut result)
        .map_err(|e| ServiceError::Internal(format!("writing a result plist: {e}")))?;
        self.store
            .record_command_result(
                enrollment_id,
                &cmd.uuid,
                CommandStatus::Error,
                &result,
                self.now(),
            )
            .await?;
        let event = crate::events::new_event(
            self.clock,
            device_id,
            Some(enrollment_id),
            EventKind::CommandSealedPayloadUnreadable,
            Outcome::Failure,
            format!(
                "{} {} not sent and finished as Error: {reason}",
                cmd.request_type, cmd.uuid
            ),
        );
        self.store.record_event(&event).await?;
        Ok(())
    }

    async fn after_result(
        &self,
        enrollment_id: &str,
        device_id: &str,
        uuid: &str,
        request_type: String,
        report: &CommandReport,
    ) -> Result<ReportEffect, ServiceError> {
        match report.status {
            Status::Error | Status::CommandFormatError => {
                let reason = report
                    .error_chain
                    .first()
                    .and_then(|e| {
                        e.us_english_description
                            .clone()
                            .or_else(|| e.localized_description.clone())
                    })
                    .unwrap_or_else(|| "no ErrorChain".to_string());
                let event = crate::events::new_event(
                    self.clock,
                    device_id,
                    Some(enrollment_id),
                    EventKind::CommandResult,
                    Outcome::Failure,
                    format!(
                        "{request_type} {uuid}: {}: {reason}",
                        report.status.as_str()
                    ),
                );
                self.store.record_event(&event).await?;
                if request_type == "InstallProfile" {
                    return Ok(ReportEffect::ProfileRefused {
                        uuid: uuid.to_string(),
                    });
                }
            }
            Status::Acknowledged if request_type == "EraseDevice" => {
                let event = crate::events::new_event(
                    self.clock,
                    device_id,
                    Some(device_id),
                    EventKind::EnrollmentCheckedOut,
                    Outcome::Success,
                    format!(
                        "EraseDevice {uuid} acknowledged: the enrollment ends and the erased Mac's token is \
                         removed; its next Authenticate is a new enrollment"
                    ),
                );
                self.store.checkout(device_id, self.now(), &event).await?;
            }
            Status::Acknowledged => return Ok(ReportEffect::Acknowledged { request_type }),
            _ => {}
        }
        Ok(ReportEffect::None)
    }
}
