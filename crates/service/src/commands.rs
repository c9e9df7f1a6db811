//! Queueing commands for the command channel (`/mdm/connect` serves them: `crate::checkin::command_channel`).
//!
//! Commands that carry a secret (issue 11: an EraseDevice PIN, a password, the agent's registration secret —
//! marked `carries_secret` or holding a secret-looking key, see `Command::has_secret_keys`) are sealed here:
//! the store keeps a redacted plist plus the payload sealed with associated data (owner `command:<uuid>`, field
//! `command_payload`, key id), opened only to answer the Mac on /mdm/connect; the store deletes the sealed
//! payload once the last Acknowledged/Error arrives (NotNow keeps it for the resend). History and the API only
//! ever see the redacted plist.

use protocol::command::Command;
use store::{NewCommand, Outcome, SealedSecret};
use vault::Secret;

use crate::secrets::SecretRef;
use crate::{EventKind, MdmService, Scoped, ServiceError};

impl MdmService {
    /// Queue a typed or raw command for one or more enrollments; returns the command UUID. A command holding a
    /// secret-looking key ([`Command::has_secret_keys`]) is sealed.
    pub async fn enqueue(
        &self,
        enrollment_ids: &[String],
        command: &Command,
    ) -> Result<String, ServiceError> {
        self.scoped().enqueue(enrollment_ids, command).await
    }

    /// Queue a command given as a store [`NewCommand`] (its payload a full command plist); when
    /// `carries_secret` is set, or the plist holds a secret-looking key, it is sealed and the store keeps only
    /// a redacted copy. Returns the command UUID.
    pub async fn enqueue_new(
        &self,
        enrollment_ids: &[String],
        new: NewCommand,
    ) -> Result<String, ServiceError> {
        self.scoped().enqueue_new(enrollment_ids, new).await
    }

    /// Queue a raw command plist as an admin wrote it.
    pub async fn enqueue_raw(
        &self,
        enrollment_ids: &[String],
        plist: &[u8],
    ) -> Result<String, ServiceError> {
        self.scoped().enqueue_raw(enrollment_ids, plist).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait CommandRoles: store::Commands + store::Events {}
impl<T: ?Sized + store::Commands + store::Events> CommandRoles for T {}

impl<S: ?Sized + CommandRoles> Scoped<'_, S> {
    /// Queue a typed or raw command for one or more enrollments; returns the command UUID. A command holding a
    /// secret-looking key ([`Command::has_secret_keys`]) is sealed.
    pub(crate) async fn enqueue(
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
    pub(crate) async fn enqueue_new(
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
        let note = if carries_secret {
            " (carries a secret: sealed at rest)"
        } else {
            ""
        };
        let events = self.queued_events(enrollment_ids, command, note);
        // The command and its `command.queued` events are one write: queued and recorded, or neither.
        self.store
            .enqueue_recorded(enrollment_ids, &new, sealed.as_ref(), now, &events)
            .await?;
        Ok(command.uuid.clone())
    }

    /// A SetBootstrapToken's follow-ups for one device in one write: `user_list` (a UserList and the time its
    /// refresh must not have been claimed since), queued only if it claims the device's refresh interval, then
    /// `commands`, each with its `command.queued` event. True when the UserList was queued. None of them may
    /// hold a secret (they are queued in the clear).
    pub(crate) async fn enqueue_follow_ups(
        &self,
        device_id: &str,
        user_list: Option<(&Command, store::Millis)>,
        commands: &[Command],
    ) -> Result<bool, ServiceError> {
        let mut all = user_list.map(|(c, _)| c).into_iter().chain(commands);
        if all.any(Command::has_secret_keys) {
            return Err(ServiceError::Invalid(
                "a follow-up command holds a secret-looking key: queue it with enqueue, which seals it"
                    .into(),
            ));
        }
        let now = self.now();
        let ids = [device_id.to_string()];
        let recorded = |command: &Command| -> Result<_, ServiceError> {
            let (new, _) = self.prepare_command(command, false, now)?;
            Ok((new, self.queued_events(&ids, command, "")))
        };
        let claim = match user_list {
            Some((command, not_since)) => {
                let (command_row, events) = recorded(command)?;
                Some(store::UserListClaim {
                    command: command_row,
                    events,
                    not_since,
                })
            }
            None => None,
        };
        let each = commands
            .iter()
            .map(recorded)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .store
            .enqueue_follow_ups(device_id, claim.as_ref(), &each, now)
            .await?)
    }

    /// One `command.queued` event per enrollment for `command` (`note` ends its detail).
    fn queued_events(
        &self,
        enrollment_ids: &[String],
        command: &Command,
        note: &str,
    ) -> Vec<store::NewEvent> {
        enrollment_ids
            .iter()
            .map(|id| {
                self.event(
                    id,
                    Some(id),
                    EventKind::CommandQueued,
                    Outcome::Success,
                    format!("{} {}{note}", command.request_type, command.uuid),
                )
            })
            .collect()
    }

    /// Queue a raw command plist as an admin wrote it.
    pub(crate) async fn enqueue_raw(
        &self,
        enrollment_ids: &[String],
        plist: &[u8],
    ) -> Result<String, ServiceError> {
        let command = Command::from_raw_plist(plist)?;
        self.enqueue(enrollment_ids, &command).await
    }

    /// Push when something was queued (in the background: a slow push provider must not hold up the
    /// device's check-in); record a failure as an event.
    pub(crate) async fn after_queueing(
        &self,
        device_id: &str,
        why: &str,
        result: Result<usize, ServiceError>,
    ) {
        match result {
            Ok(0) => {}
            Ok(_) => {
                self.background
                    .push_in_background(vec![device_id.to_string()]);
            }
            Err(err) => self.not_queued(device_id, "inventory", why, &err).await,
        }
    }

    /// Log and record (as an `inventory.queue_failed` event) that `what` (inventory, UserList) could not be
    /// queued after `why`. Never fails the caller.
    pub(crate) async fn not_queued(
        &self,
        device_id: &str,
        what: &str,
        why: &str,
        err: &ServiceError,
    ) {
        tracing::warn!(udid = %device_id, error = %err, "could not queue {what} after {why}");
        let event = self.event(
            device_id,
            Some(device_id),
            EventKind::InventoryQueueFailed,
            Outcome::Failure,
            format!("{what} after {why} not queued: {err}"),
        );
        if let Err(e) = self.store.record_event(&event).await {
            tracing::error!(error = %e, "could not record inventory failure event");
        }
    }
}

impl<S: ?Sized> Scoped<'_, S> {
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
        let plain = Secret::new(command.to_xml()?);
        let sealed = self.secrets.seal(
            &SecretRef::command_payload(&command.uuid),
            plain.expose(),
            now,
        )?;
        let new = NewCommand {
            uuid: command.uuid.clone(),
            request_type: command.request_type.clone(),
            payload: command.redacted().to_xml()?,
            carries_secret: true,
        };
        Ok((new, Some(sealed)))
    }
}

/// A fresh command UUID: a UUIDv7 (RFC 9562: a millisecond timestamp, then 74 random bits), so the command
/// indexes keyed by it (`commands`' primary key, the queue's by command) grow at their end: the commands
/// queued in one batch dirty one page of each instead of one page per command, and an escrow storm's
/// follow-ups (two commands per Mac) wrote a random page of each index per command with v4. Apple treats a
/// CommandUUID as an opaque string.
pub fn new_command_uuid() -> String {
    uuid::Uuid::now_v7().to_string().to_uppercase()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn command_uuids_are_uppercase_uuidv7_that_sort_in_the_order_they_were_made() {
        let uuids: Vec<String> = (0..1_000).map(|_| new_command_uuid()).collect();
        for u in &uuids {
            let parsed = uuid::Uuid::parse_str(u).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{u}");
            assert_eq!(*u, u.to_uppercase());
        }
        // The indexes keyed by them grow at their end only if later ones sort after earlier ones.
        assert!(uuids.windows(2).all(|w| w[0] < w[1]), "not in order");
    }

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
        let opened = crate::checkin::command_channel::CommandChannel::new(
            &*svc.store,
            &svc.secrets,
            &*svc.clock,
        )
        .open_command_payload("AC-1")
        .await
        .unwrap();
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
