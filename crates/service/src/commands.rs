//! The command ("connect") protocol: status reports in, queued commands out.
//!
//! Follows Apple's queue rules: a command stays queued until Acknowledged/Error/CommandFormatError arrives
//! with its UUID; duplicates are idempotent; after a NotNow the same session is not offered NotNow commands
//! again, while an Idle makes them eligible. An acknowledged EraseDevice clears the escrowed Bootstrap Token
//! (the Mac it belonged to no longer exists).
//!
//! Commands that carry a secret (issue 11: an EraseDevice PIN, a password, the agent's registration secret —
//! marked `carries_secret` or holding a secret-looking key, see `Command::has_secret_keys`) are sealed here,
//! the one place that seals and opens them: the store keeps a redacted plist plus the payload sealed with
//! associated data (owner `command:<uuid>`, field `command_payload`, key id), opened only to answer the Mac on
//! /mdm/connect; the store deletes the sealed payload once the last Acknowledged/Error arrives (NotNow keeps
//! it for the resend). History and the API only ever see the redacted plist.

use pki::CertInfo;
use protocol::command::{Command, Status};
use store::{
    COMMAND_PAYLOAD_FIELD, CommandStatus, NewCommand, Outcome, ReportOutcome, SealedSecret,
    command_payload_owner,
};
use vault::{SealContext, Secret};

use crate::checkin::{DeviceCredential, IdentityCheck};
use crate::{EventKind, MdmService, ServiceError};

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
        source: &crate::edge::Source,
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
                self.note_auth_failure(&report.identity, "command report", &err, source)
                    .await;
                return Err(err);
            }
        };
        match self.handle_report(&cert, &report, body).await {
            Err(err) if err.kind() == crate::ErrorKind::Unauthenticated => {
                self.note_auth_failure(&report.identity, "command report", &err, source)
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
        // A sealed payload that cannot be opened finishes its entry as an Error, so it never blocks the queue.
        for _ in 0..16 {
            let Some(cmd) = self.store.next_command(&enrollment.id, skip_notnow).await? else {
                return Ok(ConnectReply::Idle);
            };
            if !cmd.carries_secret {
                return Ok(ConnectReply::Command(cmd.payload));
            }
            match self.open_command_payload(&cmd.uuid).await {
                Ok(payload) => return Ok(ConnectReply::Command(payload.expose().clone())),
                Err(reason) => {
                    self.drop_unreadable_command(&enrollment.id, &device.id, &cmd, &reason)
                        .await?
                }
            }
        }
        Ok(ConnectReply::Idle)
    }

    /// The real payload of a command that carries a secret.
    async fn open_command_payload(&self, uuid: &str) -> Result<Secret<Vec<u8>>, String> {
        let owner = command_payload_owner(uuid);
        let sealed = self
            .store
            .sealed_secret(&owner, COMMAND_PAYLOAD_FIELD)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "its sealed payload is missing".to_string())?;
        let ctx = SealContext {
            owner: &owner,
            field: COMMAND_PAYLOAD_FIELD,
        };
        self.vault
            .open(ctx, &sealed.blob)
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
        let event = self.event(
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
                    EventKind::CommandResult,
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
                    EventKind::EnrollmentCheckedOut,
                    Outcome::Success,
                    format!(
                        "EraseDevice {uuid} acknowledged: the enrollment ends and the erased Mac's token is \
                         removed; its next Authenticate is a new enrollment"
                    ),
                );
                self.store.checkout(device_id, self.now(), &event).await?;
            }
            Status::Acknowledged => {
                self.store_inventory(enrollment_id, device_id, request_type, report)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Queue a typed or raw command for one or more enrollments; returns the command UUID. A command holding a
    /// secret-looking key ([`Command::has_secret_keys`]) is sealed.
    pub async fn enqueue(
        &self,
        enrollment_ids: &[String],
        command: &Command,
    ) -> Result<String, ServiceError> {
        self.enqueue_marked(enrollment_ids, command, command.has_secret_keys())
            .await
    }

    /// Queue a command given as a store [`NewCommand`] (its payload a full command plist); when
    /// `carries_secret` is set, or the plist holds a secret-looking key, it is sealed and the store keeps only
    /// a redacted copy. Returns the command UUID.
    pub async fn enqueue_new(
        &self,
        enrollment_ids: &[String],
        new: NewCommand,
    ) -> Result<String, ServiceError> {
        let payload = Secret::new(new.payload);
        let command = Command::from_raw_plist(payload.expose())?;
        if command.uuid != new.uuid || command.request_type != new.request_type {
            return Err(ServiceError::Invalid(
                "the command's uuid and request type must match its plist".into(),
            ));
        }
        let carries = new.carries_secret || command.has_secret_keys();
        self.enqueue_marked(enrollment_ids, &command, carries).await
    }

    async fn enqueue_marked(
        &self,
        enrollment_ids: &[String],
        command: &Command,
        carries_secret: bool,
    ) -> Result<String, ServiceError> {
        let now = self.now();
        let (new, sealed) = self.prepare_command(command, carries_secret, now)?;
        match &sealed {
            Some(sealed) => {
                self.store
                    .enqueue_sealed(enrollment_ids, &new, sealed, now)
                    .await?
            }
            None => self.store.enqueue(enrollment_ids, &new, now).await?,
        }
        let note = if carries_secret {
            " (carries a secret: sealed at rest)"
        } else {
            ""
        };
        for id in enrollment_ids {
            let event = self.event(
                id,
                Some(id),
                EventKind::CommandQueued,
                Outcome::Success,
                format!("{} {}{note}", command.request_type, command.uuid),
            );
            self.store.record_event(&event).await?;
        }
        Ok(command.uuid.clone())
    }

    /// The store's view of `command`: as is, or (carrying a secret) its redacted plist plus the real one
    /// sealed to (`command:<uuid>`, `command_payload`).
    pub(crate) fn prepare_command(
        &self,
        command: &Command,
        carries_secret: bool,
        now: store::Millis,
    ) -> Result<(NewCommand, Option<SealedSecret>), ServiceError> {
        if !carries_secret {
            let new = NewCommand {
                uuid: command.uuid.clone(),
                request_type: command.request_type.clone(),
                payload: command.to_xml()?,
                carries_secret: false,
            };
            return Ok((new, None));
        }
        let owner = command_payload_owner(&command.uuid);
        let plain = Secret::new(command.to_xml()?);
        let ctx = SealContext {
            owner: &owner,
            field: COMMAND_PAYLOAD_FIELD,
        };
        let sealed = self.vault.seal(ctx, plain.expose())?;
        let new = NewCommand {
            uuid: command.uuid.clone(),
            request_type: command.request_type.clone(),
            payload: command.redacted().to_xml()?,
            carries_secret: true,
        };
        let sealed = SealedSecret {
            owner,
            field: COMMAND_PAYLOAD_FIELD.to_string(),
            key_id: sealed.key_id,
            blob: sealed.blob,
            updated_at: now,
        };
        Ok((new, Some(sealed)))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn service() -> (tempfile::TempDir, MdmService) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = store::connect(&url).await.unwrap();
        let vault = Arc::new(vault::Vault::from_keyring(vault::Keyring::ephemeral()));
        let e = store::Enrollment::new_device("MAC-1", 1);
        let ev = store::NewEvent {
            subject: "MAC-1".into(),
            enrollment_id: Some("MAC-1".into()),
            kind: store::EventKind::EnrollmentAuthenticated,
            outcome: Outcome::Success,
            detail: String::new(),
            at: 1,
        };
        store.upsert_enrollment(&e, &ev).await.unwrap();
        (dir, MdmService::new(store, vault))
    }

    /// A command whose secret hides where no key names it: only the caller knows, and says so.
    fn account_configuration(uuid: &str) -> Command {
        let mut cmd = Command::security_info(uuid.into());
        cmd.request_type = "AccountConfiguration".into();
        cmd.body.insert(
            "AutoSetupAdminAccounts".into(),
            plist::Value::Array(vec![plist::Value::Dictionary(
                [
                    ("shortName", plist::Value::String("ladmin".into())),
                    ("hashBlob", plist::Value::Data(b"SALTED-HASH-9f3".to_vec())),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            )]),
        );
        cmd
    }

    #[tokio::test]
    async fn enqueue_new_seals_a_command_marked_carries_secret_and_opens_it_only_for_the_mac() {
        let (_dir, svc) = service().await;
        let cmd = account_configuration("AC-1");
        assert!(
            !cmd.has_secret_keys(),
            "the test needs a secret no key names"
        );
        let new = NewCommand {
            uuid: "AC-1".into(),
            request_type: "AccountConfiguration".into(),
            payload: cmd.to_xml().unwrap(),
            carries_secret: true,
        };
        assert!(
            !format!("{new:?}").contains("SALTED"),
            "Debug shows the payload"
        );
        let ids = vec!["MAC-1".to_string()];
        assert_eq!(svc.enqueue_new(&ids, new.clone()).await.unwrap(), "AC-1");
        let stored = svc.store.command("MAC-1", "AC-1").await.unwrap().unwrap();
        assert!(stored.carries_secret);
        let shown = String::from_utf8(stored.payload).unwrap();
        assert!(
            !shown.contains("U0FMVEVE") && shown.contains("[redacted]"),
            "{shown}"
        );
        let opened = svc.open_command_payload("AC-1").await.unwrap();
        assert_eq!(opened.expose(), &cmd.to_xml().unwrap());
        // A plist that does not match the uuid or request type it is queued under: refused, nothing stored.
        let mismatched = NewCommand {
            uuid: "AC-2".into(),
            ..new.clone()
        };
        assert!(matches!(
            svc.enqueue_new(&ids, mismatched).await,
            Err(ServiceError::Invalid(_))
        ));
        assert_eq!(svc.store.command("MAC-1", "AC-2").await.unwrap(), None);
        // Garbage is a 4xx-class error, not a panic, and stores nothing.
        let garbage = NewCommand {
            uuid: "AC-3".into(),
            payload: b"\x00not a plist".to_vec(),
            ..new
        };
        assert!(svc.enqueue_new(&ids, garbage).await.is_err());
        assert_eq!(svc.store.command("MAC-1", "AC-3").await.unwrap(), None);
    }
}
