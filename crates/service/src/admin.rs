//! What admins do through the API and the CLI: device views, merged user facts, events, groups and their
//! escrow settings, typed and raw commands, pushes, clearing a token. Guarantees: every change writes an
//! audited event naming the acting API key; nothing here returns a Bootstrap Token (views carry metadata
//! only); unknown ids are NotFound and bad values Invalid, both before anything changes.

use protocol::command::{Command, ObliterationBehavior};
use store::{
    BootstrapStatus, DeviceFilter, DeviceRecord, DeviceUser, Event, EventFilter, FactSource, Group,
    Millis, Outcome, QueuedCommand,
};

use crate::apikeys::Actor;
use crate::error::admin;
use crate::push::PushResult;
use crate::{MdmService, ServiceError, commands::new_command_uuid};

pub const GROUP_CREATED: &str = "admin.group.created";
pub const GROUP_UPDATED: &str = "admin.group.updated";
pub const GROUP_DELETED: &str = "admin.group.deleted";
pub const GROUP_MEMBERSHIP: &str = "admin.group.membership";
pub const COMMAND_ENQUEUED: &str = "admin.command.enqueued";
pub const COMMAND_REFUSED: &str = "admin.command.refused";
pub const PUSH_SENT: &str = "admin.push";
pub const TOKEN_CLEARED: &str = "admin.bootstrap_token.cleared";

/// One fact about a user with where it came from and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub source: FactSource,
    pub at: Millis,
}

/// One local user of a device, merging every source (latest observation wins per fact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedUser {
    pub user_key: String,
    pub short_name: Option<String>,
    pub full_name: Option<String>,
    pub uid: Option<i64>,
    pub has_secure_token: Option<Fact<bool>>,
    pub mobile_account: Option<Fact<bool>>,
    pub is_logged_in: Option<Fact<bool>>,
    pub is_admin: Option<Fact<bool>>,
    pub filevault_enabled: Option<Fact<bool>>,
    pub volume_owner: Option<Fact<bool>>,
    /// The agent's word that this is the ADE managed admin (the management account).
    pub managed_admin: Option<Fact<bool>>,
}

/// What happens to escrowed tokens when a group's escrow is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnEscrowDisabled {
    /// Keep them (default): turning escrow back on needs no new token-holder login.
    #[default]
    Keep,
    /// Delete every escrowed token of the group's members (audited per device).
    Clear,
}

/// A change to a group; None leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub name: Option<String>,
    pub bootstrap_escrow_enabled: Option<bool>,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    pub on_escrow_disabled: OnEscrowDisabled,
}

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

/// Result of an admin group change: the group and how many escrowed tokens were cleared.
#[derive(Debug, Clone)]
pub struct GroupUpdate {
    pub group: Group,
    pub tokens_cleared: u64,
}

fn check_name(name: &str) -> Result<String, ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "a group name must be 1-200 printable characters".into(),
        ));
    }
    Ok(name.to_string())
}

impl MdmService {
    pub async fn admin_devices(&self, f: &DeviceFilter) -> Result<Vec<DeviceRecord>, ServiceError> {
        if let Some(os) = &f.os_version
            && store::os_version_num(os).is_none()
        {
            return Err(ServiceError::Invalid(format!(
                "os_version {os:?} is not a version like 14 or 14.5"
            )));
        }
        if let Some(g) = &f.group_id
            && self.store.group(g).await?.is_none()
        {
            return Err(ServiceError::NotFound(format!("group {g}")));
        }
        Ok(self.store.list_devices(f).await?)
    }

    pub async fn admin_device(&self, id: &str) -> Result<DeviceRecord, ServiceError> {
        self.store
            .device_record(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("device {id}")))
    }

    /// The device's users, one row per user, each fact with its source and time.
    pub async fn admin_device_users(&self, id: &str) -> Result<Vec<MergedUser>, ServiceError> {
        self.admin_device(id).await?;
        Ok(merge_users(self.store.device_users(id).await?))
    }

    /// The device's events, newest first (the filter's subject is set to the device).
    pub async fn admin_device_events(
        &self,
        id: &str,
        mut f: EventFilter,
    ) -> Result<Vec<Event>, ServiceError> {
        self.admin_device(id).await?;
        f.subject = Some(id.to_string());
        Ok(self.store.events(&f).await?)
    }

    /// Events across the fleet, newest first, as the filter says.
    pub async fn admin_events(&self, f: EventFilter) -> Result<Vec<Event>, ServiceError> {
        Ok(self.store.events(&f).await?)
    }

    pub async fn admin_create_group(
        &self,
        name: &str,
        escrow: bool,
        prompt: bool,
        by: &Actor,
    ) -> Result<Group, ServiceError> {
        let now = self.now();
        let g = Group {
            id: uuid::Uuid::new_v4().to_string(),
            name: check_name(name)?,
            bootstrap_escrow_enabled: escrow,
            prompt_user_to_allow_bootstrap_token_for_authentication: prompt,
            created_at: now,
            updated_at: now,
        };
        self.store.create_group(&g).await.map_err(admin)?;
        self.audit(
            &format!("group:{}", g.id),
            GROUP_CREATED,
            format!(
                "{} created group {:?} (escrow {})",
                by.label(),
                g.name,
                on_off(escrow)
            ),
        )
        .await?;
        Ok(g)
    }

    pub async fn admin_group(&self, id: &str) -> Result<Group, ServiceError> {
        self.store
            .group(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("group {id}")))
    }

    /// Rename and/or change escrow settings. Switching escrow off with `Clear` deletes the members' tokens.
    pub async fn admin_update_group(
        &self,
        id: &str,
        change: &GroupChange,
        by: &Actor,
    ) -> Result<GroupUpdate, ServiceError> {
        let old = self.admin_group(id).await?;
        let mut g = old.clone();
        if let Some(name) = &change.name {
            g.name = check_name(name)?;
        }
        if let Some(v) = change.bootstrap_escrow_enabled {
            g.bootstrap_escrow_enabled = v;
        }
        if let Some(v) = change.prompt_user_to_allow_bootstrap_token_for_authentication {
            g.prompt_user_to_allow_bootstrap_token_for_authentication = v;
        }
        g.updated_at = self.now();
        self.store.update_group(&g).await.map_err(admin)?;
        let disabled = old.bootstrap_escrow_enabled && !g.bootstrap_escrow_enabled;
        let policy = match (disabled, change.on_escrow_disabled) {
            (true, OnEscrowDisabled::Clear) => "; escrowed tokens cleared",
            (true, OnEscrowDisabled::Keep) => "; escrowed tokens kept",
            _ => "",
        };
        self.audit(
            &format!("group:{id}"),
            GROUP_UPDATED,
            format!(
                "{} updated group {:?}: escrow {}, prompt user {}{policy}",
                by.label(),
                g.name,
                on_off(g.bootstrap_escrow_enabled),
                on_off(g.prompt_user_to_allow_bootstrap_token_for_authentication)
            ),
        )
        .await?;
        if !old.bootstrap_escrow_enabled && g.bootstrap_escrow_enabled {
            self.resend_catalina_mdm_options(id, by).await?;
        }
        let mut tokens_cleared = 0;
        if disabled && change.on_escrow_disabled == OnEscrowDisabled::Clear {
            let mut f = DeviceFilter {
                group_id: Some(id.to_string()),
                status: Some(BootstrapStatus::Escrowed),
                include_checked_out: true,
                limit: 500,
                ..Default::default()
            };
            loop {
                let page = self.store.list_devices(&f).await?;
                for d in &page {
                    let reason = format!("escrow switched off for group {:?}", g.name);
                    if self.clear_token(&d.enrollment.id, by, &reason).await? {
                        tokens_cleared += 1;
                    }
                }
                match page.last() {
                    Some(last) => f.after_id = Some(last.enrollment.id.clone()),
                    None => break,
                }
            }
        }
        Ok(GroupUpdate {
            group: g,
            tokens_cleared,
        })
    }

    pub async fn admin_delete_group(&self, id: &str, by: &Actor) -> Result<(), ServiceError> {
        let g = self.admin_group(id).await?;
        let event = self.event(
            &format!("group:{id}"),
            None,
            GROUP_DELETED,
            Outcome::Success,
            format!(
                "{} deleted group {:?}; its members have no group now",
                by.label(),
                g.name
            ),
        );
        self.store.delete_group(id, &event).await.map_err(admin)
    }

    /// Put a device in a group (or none).
    pub async fn admin_set_group(
        &self,
        device_id: &str,
        group_id: Option<&str>,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        self.admin_device(device_id).await?;
        if let Some(g) = group_id {
            self.admin_group(g).await?;
        }
        self.store
            .set_enrollment_group(device_id, group_id)
            .await
            .map_err(admin)?;
        self.audit(
            device_id,
            GROUP_MEMBERSHIP,
            format!(
                "{} set group of {device_id} to {}",
                by.label(),
                group_id.unwrap_or("none")
            ),
        )
        .await
    }

    /// Queue a typed command. EraseDevice is refused (409-style Conflict with the reason) when a Mac has no
    /// usable Bootstrap Token, unless `force`.
    pub async fn admin_enqueue(
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
        if matches!(cmd, TypedCommand::EraseDevice { .. }) && !force {
            for id in ids {
                if let Some(reason) = self.erase_blocker(id).await? {
                    self.audit(
                        id,
                        COMMAND_REFUSED,
                        format!("{}: EraseDevice refused: {reason}", by.label()),
                    )
                    .await?;
                    return Err(ServiceError::Conflict(format!(
                        "EraseDevice refused for {id}: {reason}. Send it with force=true to erase anyway."
                    )));
                }
            }
        }
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

    /// Queue a raw command plist.
    pub async fn admin_enqueue_raw(
        &self,
        ids: &[String],
        plist: &[u8],
        by: &Actor,
    ) -> Result<String, ServiceError> {
        let command =
            Command::from_raw_plist(plist).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.check_targets(ids).await?;
        self.enqueue_audited(ids, &command, by).await
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
                COMMAND_ENQUEUED,
                format!("{} queued {} {uuid}", by.label(), command.request_type),
            )
            .await?;
        }
        Ok(uuid)
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

    pub async fn admin_push(
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
                PUSH_SENT,
                format!("{} push {outcome}", by.label()),
            )
            .await?;
        }
        Ok(results)
    }

    pub async fn admin_command_history(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<QueuedCommand>, ServiceError> {
        if self.store.enrollment(id).await?.is_none() {
            return Err(ServiceError::NotFound(format!("enrollment {id}")));
        }
        Ok(self.store.command_history(id, limit).await?)
    }

    /// Delete the device's escrowed token (audited). Returns whether one was deleted.
    pub async fn admin_clear_token(&self, id: &str, by: &Actor) -> Result<bool, ServiceError> {
        self.admin_device(id).await?;
        self.clear_token(id, by, "cleared by an admin").await
    }

    async fn clear_token(&self, id: &str, by: &Actor, why: &str) -> Result<bool, ServiceError> {
        let event = self.event(
            id,
            Some(id),
            TOKEN_CLEARED,
            Outcome::Success,
            format!("{}: Bootstrap Token {why}", by.label()),
        );
        Ok(self.store.clear_bootstrap_token(id, &event).await?)
    }

    async fn audit(&self, subject: &str, kind: &str, detail: String) -> Result<(), ServiceError> {
        let enrollment = (!subject.contains(':')).then_some(subject);
        let event = self.event(subject, enrollment, kind, Outcome::Success, detail);
        Ok(self.store.record_event(&event).await?)
    }
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

/// Merge rows (sorted by user key) into one row per user; a later observation of a fact wins.
pub fn merge_users(rows: Vec<DeviceUser>) -> Vec<MergedUser> {
    let mut out: Vec<MergedUser> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|u| u.user_key != r.user_key) {
            out.push(MergedUser {
                user_key: r.user_key.clone(),
                ..Default::default()
            });
        }
        let Some(u) = out.last_mut() else { continue };
        u.short_name = u.short_name.take().or(r.short_name);
        u.full_name = u.full_name.take().or(r.full_name);
        u.uid = u.uid.or(r.uid);
        let fact = |v: Option<bool>| {
            v.map(|value| Fact {
                value,
                source: r.source,
                at: r.observed_at,
            })
        };
        for (slot, v) in [
            (&mut u.has_secure_token, r.has_secure_token),
            (&mut u.mobile_account, r.mobile_account),
            (&mut u.is_logged_in, r.is_logged_in),
            (&mut u.is_admin, r.is_admin),
            (&mut u.filevault_enabled, r.filevault_enabled),
            (&mut u.volume_owner, r.volume_owner),
            (&mut u.managed_admin, r.managed_admin),
        ] {
            if let Some(new) = fact(v)
                && slot.as_ref().is_none_or(|old| old.at <= new.at)
            {
                *slot = Some(new);
            }
        }
    }
    out
}
