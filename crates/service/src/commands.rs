//! The command ("connect") protocol: status reports in, queued commands out.
//!
//! Follows Apple's queue rules: a command stays queued until Acknowledged/Error/CommandFormatError arrives
//! with its UUID; duplicates are idempotent; after a NotNow the same session is not offered NotNow commands
//! again, while an Idle makes them eligible. An acknowledged EraseDevice clears the escrowed Bootstrap Token
//! (the Mac it belonged to no longer exists).

use pki::CertInfo;
use protocol::command::{Command, Status};
use store::{CommandStatus, NewCommand, Outcome, ReportOutcome};

use crate::checkin::{DeviceCredential, IdentityCheck};
use crate::{MdmService, ServiceError, events};

/// What to answer a connect request with (always a 200).
#[derive(Debug)]
pub enum ConnectReply {
    /// Nothing queued: a zero-byte body ends the session.
    Idle,
    /// The next command's full plist.
    Command(Vec<u8>),
}

impl MdmService {
    /// Handle one command-channel request body (`PUT /mdm/connect`).
    pub async fn connect(
        &self,
        identity: &IdentityCheck,
        credential: DeviceCredential<'_>,
        body: &[u8],
    ) -> Result<ConnectReply, ServiceError> {
        let report = protocol::command::parse_report(body)?;
        let cert = match identity.verify(credential, body) {
            Ok(cert) => cert,
            Err(err) => {
                // A still-bound identity shortly past notAfter may fetch its renewal profile, nothing else.
                // Any failure on that path ends in the original refusal.
                match self
                    .grace_connect(identity, credential, body, &report)
                    .await
                {
                    Ok(Some(reply)) => return Ok(reply),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "renewal grace could not be granted"),
                }
                self.note_auth_failure(&report.identity, "command report", &err)
                    .await;
                return Err(err);
            }
        };
        match self.handle_report(&cert, &report, body).await {
            Err(err) if err.kind() == crate::ErrorKind::Unauthenticated => {
                self.note_auth_failure(&report.identity, "command report", &err)
                    .await;
                Err(err)
            }
            other => other,
        }
    }

    async fn handle_report(
        &self,
        cert: &CertInfo,
        report: &protocol::command::CommandReport,
        body: &[u8],
    ) -> Result<ConnectReply, ServiceError> {
        let device = self.bound_device(cert, &report.identity).await?;
        if device.cert_not_after.is_none() && !device.is_pending() {
            // Bound before escrowd recorded expiry: without it the renewal schedule would never see this Mac.
            self.store
                .backfill_cert_not_after(
                    &device.id,
                    &cert.fingerprint,
                    cert.not_after_unix.saturating_mul(1000),
                )
                .await?;
        }
        let enrollment = self.channel_enrollment(&device, &report.identity).await?;
        let now = self.now();
        self.store.touch_last_seen(&enrollment.id, now).await?;

        if report.status != Status::Idle
            && let Some(uuid) = report.command_uuid.as_deref()
        {
            let status = match report.status {
                Status::Acknowledged => CommandStatus::Acknowledged,
                Status::Error => CommandStatus::Error,
                Status::CommandFormatError => CommandStatus::CommandFormatError,
                Status::NotNow | Status::Idle => CommandStatus::NotNow,
            };
            let queued = self.store.command(&enrollment.id, uuid).await?;
            match self
                .store
                .record_command_result(&enrollment.id, uuid, status, body, now)
                .await?
            {
                ReportOutcome::Recorded => {
                    let request_type = queued.map(|q| q.request_type).unwrap_or_default();
                    self.after_result(&enrollment.id, &device.id, uuid, &request_type, report)
                        .await?;
                }
                ReportOutcome::Duplicate => {
                    tracing::debug!(enrollment = %enrollment.id, uuid, "duplicate command report ignored");
                }
                ReportOutcome::UnknownCommand => {
                    tracing::warn!(enrollment = %enrollment.id, uuid, "report for a command that was never queued");
                }
            }
        }

        let skip_notnow = report.status == Status::NotNow;
        match self.store.next_command(&enrollment.id, skip_notnow).await? {
            Some(cmd) => Ok(ConnectReply::Command(cmd.payload)),
            None => Ok(ConnectReply::Idle),
        }
    }

    async fn after_result(
        &self,
        enrollment_id: &str,
        device_id: &str,
        uuid: &str,
        request_type: &str,
        report: &protocol::command::CommandReport,
    ) -> Result<(), ServiceError> {
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
                let event = self.event(
                    device_id,
                    Some(enrollment_id),
                    events::COMMAND_RESULT,
                    Outcome::Failure,
                    format!(
                        "{request_type} {uuid}: {}: {reason}",
                        report.status.as_str()
                    ),
                );
                self.store.record_event(&event).await?;
                if request_type == "InstallProfile" {
                    self.renewal_refused(device_id, uuid).await?;
                }
            }
            Status::Acknowledged if request_type == "EraseDevice" => {
                let event = self.event(
                    device_id,
                    Some(device_id),
                    events::BOOTSTRAP_CLEARED,
                    Outcome::Success,
                    format!("EraseDevice {uuid} acknowledged: the erased Mac's token is removed"),
                );
                self.store.clear_bootstrap_token(device_id, &event).await?;
            }
            Status::Acknowledged => {
                self.store_inventory(enrollment_id, device_id, request_type, report)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Queue a typed or raw command for one or more enrollments; returns the command UUID.
    pub async fn enqueue(
        &self,
        enrollment_ids: &[String],
        command: &Command,
    ) -> Result<String, ServiceError> {
        let payload = command.to_xml()?;
        let new = NewCommand {
            uuid: command.uuid.clone(),
            request_type: command.request_type.clone(),
            payload,
        };
        self.store.enqueue(enrollment_ids, &new, self.now()).await?;
        for id in enrollment_ids {
            let event = self.event(
                id,
                Some(id),
                events::COMMAND_QUEUED,
                Outcome::Success,
                format!("{} {}", command.request_type, command.uuid),
            );
            self.store.record_event(&event).await?;
        }
        Ok(command.uuid.clone())
    }

    /// Queue a raw command plist as an admin wrote it.
    pub async fn enqueue_raw(
        &self,
        enrollment_ids: &[String],
        plist: &[u8],
    ) -> Result<String, ServiceError> {
        let command = Command::from_raw_plist(plist)?;
        self.enqueue(enrollment_ids, &command).await
    }
}

/// A fresh command UUID.
pub fn new_command_uuid() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}
