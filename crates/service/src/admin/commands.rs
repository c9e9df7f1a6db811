//! Typed and raw commands an admin queues, the EraseDevice guard (no usable Bootstrap Token, no erase
//! unless forced), pushes and command history. Every queued command is audited.

use protocol::command::{Command, ObliterationBehavior};
use store::QueuedCommand;

use crate::apikeys::Actor;
use crate::error::admin;
use crate::push::PushResult;
use crate::{EventKind, MdmService, Scoped, ServiceError, commands::new_command_uuid};

/// Typed commands an admin may queue.
#[derive(Debug, Clone)]
pub enum TypedCommand {
    SecurityInfo,
    UserList,
    DeviceInformation,
    /// Settings/MDMOptions: keys left `None` are filled from each Mac's effective set (the Mac resets keys a
    /// Settings command leaves out).
    MdmOptions(crate::accounts::MdmOptionsChange),
    DeviceConfigured,
    EraseDevice {
        pin: Option<String>,
        obliteration: Option<ObliterationBehavior>,
    },
}

impl MdmService {
    /// Queue a typed command. EraseDevice is refused (409-style Conflict with the reason) when a Mac has no
    /// usable Bootstrap Token, unless `force`.
    pub async fn admin_enqueue(
        &self,
        ids: &[String],
        cmd: &TypedCommand,
        force: bool,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        self.scoped().admin_enqueue(ids, cmd, force, by).await
    }

    /// Queue a raw command plist. A raw EraseDevice gets the same refusal as the typed one (a Mac without a
    /// usable Bootstrap Token), unless `force`.
    pub async fn admin_enqueue_raw(
        &self,
        ids: &[String],
        plist: &[u8],
        force: bool,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        self.scoped().admin_enqueue_raw(ids, plist, force, by).await
    }

    pub async fn admin_push(
        &self,
        ids: &[String],
        by: &Actor,
    ) -> Result<Vec<PushResult>, ServiceError> {
        self.scoped().admin_push(ids, by).await
    }

    pub async fn admin_command_history(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<QueuedCommand>, ServiceError> {
        self.scoped().admin_command_history(id, limit).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait AdminCommandRoles:
    store::Commands + store::Enrollments + store::Admin + store::Events + store::Push + store::Groups
{
}
impl<
    T: ?Sized
        + store::Commands
        + store::Enrollments
        + store::Admin
        + store::Events
        + store::Push
        + store::Groups,
> AdminCommandRoles for T
{
}

impl<S: ?Sized + AdminCommandRoles> Scoped<'_, S> {
    /// Queue a typed command. EraseDevice is refused (409-style Conflict with the reason) when a Mac has no
    /// usable Bootstrap Token, unless `force`.
    pub(crate) async fn admin_enqueue(
        &self,
        ids: &[String],
        cmd: &TypedCommand,
        force: bool,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        let uuid = new_command_uuid();
        let command = match cmd {
            TypedCommand::SecurityInfo => Command::security_info(uuid),
            TypedCommand::UserList => Command::user_list(uuid),
            TypedCommand::DeviceInformation => {
                Command::device_information(uuid, protocol::command::INVENTORY_DEVICE_QUERIES)
            }
            TypedCommand::MdmOptions(change) => {
                self.check_targets(ids).await?;
                let options = self.common_mdm_options(ids, change).await?;
                Command::settings_mdm_options(uuid, &options)
            }
            TypedCommand::DeviceConfigured => Command::device_configured(uuid),
            TypedCommand::EraseDevice { pin, obliteration } => {
                Command::erase_device(uuid, pin.as_deref(), *obliteration)
            }
        };
        self.check_targets(ids).await?;
        self.guard_erase(ids, &command, force, by).await?;
        self.enqueue_audited(ids, &command, by).await
    }

    /// The one full MDMOptions set for `ids`: `change` over each Mac's effective set. Macs whose sets differ on
    /// a key the admin left out are refused (Invalid) rather than one of them being reset.
    async fn common_mdm_options(
        &self,
        ids: &[String],
        change: &crate::accounts::MdmOptionsChange,
    ) -> Result<protocol::command::MdmOptions, ServiceError> {
        let mut common: Option<protocol::command::MdmOptions> = None;
        for id in ids {
            let device = self.admin_device(id).await?.enrollment;
            let options = change.over(self.effective_mdm_options(&device).await?);
            match common {
                None => common = Some(options),
                Some(c) if c == options => {}
                Some(_) => {
                    return Err(ServiceError::Invalid(
                        "these Macs' groups differ in the MDMOptions left out (BootstrapTokenAllowed follows \
                         the group's escrow switch, PromptUserToAllowBootstrapTokenForAuthentication its prompt \
                         setting), and Settings resets every key it leaves out: give every key explicitly, or \
                         send the command per group"
                            .into(),
                    ));
                }
            }
        }
        common.ok_or_else(|| ServiceError::Invalid("no devices given".into()))
    }

    /// Queue a raw command plist. A raw EraseDevice gets the same refusal as the typed one (a Mac without a
    /// usable Bootstrap Token), unless `force`.
    pub(crate) async fn admin_enqueue_raw(
        &self,
        ids: &[String],
        plist: &[u8],
        force: bool,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        let command =
            Command::from_raw_plist(plist).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.check_targets(ids).await?;
        self.guard_erase(ids, &command, force, by).await?;
        self.enqueue_audited(ids, &command, by).await
    }

    /// Refuse (Conflict, audited) an EraseDevice for any Mac that has no usable Bootstrap Token, unless
    /// `force`. Every way of queueing a command goes through here.
    async fn guard_erase(
        &self,
        ids: &[String],
        command: &Command,
        force: bool,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        if command.request_type != "EraseDevice" || force {
            return Ok(());
        }
        for id in ids {
            if let Some(reason) = self.erase_blocker(id).await? {
                self.audit(
                    id,
                    EventKind::CommandRefused,
                    format!("{}: EraseDevice refused: {reason}", by.label()),
                )
                .await?;
                return Err(ServiceError::Conflict(format!(
                    "EraseDevice refused for {id}: {reason}. Send it with force=true to erase anyway."
                )));
            }
        }
        Ok(())
    }

    async fn check_targets(&self, ids: &[String]) -> Result<(), ServiceError> {
        if ids.is_empty() || ids.len() > 1000 {
            return Err(ServiceError::Invalid(
                "name 1 to 1000 enrollment ids".into(),
            ));
        }
        for id in ids {
            if self.store.enrollment(id).await?.is_none() {
                return Err(ServiceError::NotFound(format!("enrollment {id}")));
            }
        }
        Ok(())
    }

    /// Why erasing this Mac would leave it stuck, or None when it has a usable token.
    async fn erase_blocker(&self, id: &str) -> Result<Option<String>, ServiceError> {
        let Some(d) = self.store.device_record(id).await? else {
            return Ok(None); // a user channel: the device decides
        };
        if d.token.is_none() {
            return Ok(Some(
                "no Bootstrap Token is escrowed, so after the erase the Mac may need a local admin's \
                 credentials to set up (and on Apple silicon, Erase All Content and Settings may be refused)"
                    .into(),
            ));
        }
        let dev = d.inventory.as_ref().and_then(|i| i.device.as_ref());
        let sec = d.inventory.as_ref().and_then(|i| i.security.as_ref());
        if dev.and_then(|f| f.is_apple_silicon) == Some(true)
            && let Some(auth) = sec.and_then(|s| s.bt_allowed_for_authentication.as_deref())
            && auth != "allowed"
        {
            return Ok(Some(format!(
                "BootstrapTokenAllowedForAuthentication is {auth:?}: the Secure Enclave will not accept the \
                 escrowed token"
            )));
        }
        Ok(None)
    }

    pub(crate) async fn admin_push(
        &self,
        ids: &[String],
        by: &Actor,
    ) -> Result<Vec<PushResult>, ServiceError> {
        if ids.is_empty() || ids.len() > 1000 {
            return Err(ServiceError::Invalid(
                "name 1 to 1000 enrollment ids".into(),
            ));
        }
        let results = self.push(ids).await?;
        for r in &results {
            let outcome = match &r.error {
                None => "sent".to_string(),
                Some(e) => format!("failed: {e}"),
            };
            self.audit(
                &r.enrollment_id,
                EventKind::PushSent,
                format!("{} push {outcome}", by.label()),
            )
            .await?;
        }
        Ok(results)
    }

    pub(crate) async fn admin_command_history(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<QueuedCommand>, ServiceError> {
        if self.store.enrollment(id).await?.is_none() {
            return Err(ServiceError::NotFound(format!("enrollment {id}")));
        }
        Ok(self.store.command_history(id, limit).await?)
    }
}

impl<S: ?Sized + store::Commands + store::Events> Scoped<'_, S> {
    pub(crate) async fn enqueue_audited(
        &self,
        ids: &[String],
        command: &Command,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        let uuid = match self.enqueue(ids, command).await {
            Err(ServiceError::Store(e)) => return Err(admin(e)),
            other => other?,
        };
        for id in ids {
            self.audit(
                id,
                EventKind::CommandEnqueued,
                format!("{} queued {} {uuid}", by.label(), command.request_type),
            )
            .await?;
        }
        Ok(uuid)
    }
}
