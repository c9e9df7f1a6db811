//! What admins do through the API and the CLI: device views, merged user facts, events, groups and their
//! escrow settings, typed and raw commands, pushes, clearing a token. Guarantees: every change writes an
//! audited event naming the acting API key; nothing here returns a Bootstrap Token (views carry metadata
//! only); unknown ids are NotFound and bad values Invalid, both before anything changes.

use protocol::command::{Command, ObliterationBehavior};
use store::{
    DeviceFilter, DeviceRecord, DeviceUser, Event, EventFilter, FactSource, Group, Millis, Outcome,
    QueuedCommand,
};

use crate::apikeys::Actor;
use crate::error::admin;
use crate::push::PushResult;
use crate::status::BootstrapStatus;
use crate::{EventKind, MdmService, ServiceError, commands::new_command_uuid};

/// One fact about a user with where it came from and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub source: FactSource,
    pub at: Millis,
    /// Another source said otherwise (earlier, or at the same time): shown as a conflict, not used.
    pub conflict: Option<Conflict<T>>,
}

impl<T> Fact<T> {
    pub fn new(value: T, source: FactSource, at: Millis) -> Self {
        Fact {
            value,
            source,
            at,
            conflict: None,
        }
    }
}

/// What the losing source said about a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict<T> {
    pub value: T,
    pub source: FactSource,
    pub at: Millis,
}

/// One local user of a device, merging every source: MDM's UserList row and the agent's row of the same user
/// (same UserGUID / GeneratedUID, else same short name) are one user; per fact the newest observation wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedUser {
    pub user_key: String,
    /// The user's GUID (MDM's UserGUID, the agent's GeneratedUID), when a source reported it.
    pub guid: Option<String>,
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

impl MergedUser {
    /// The short name, else the key: how findings and reports name the user.
    pub fn name(&self) -> &str {
        self.short_name.as_deref().unwrap_or(&self.user_key)
    }

    /// Every fact with a conflict, by field name.
    pub fn conflicts(&self) -> Vec<(&'static str, &Fact<bool>)> {
        [
            ("has_secure_token", &self.has_secure_token),
            ("mobile_account", &self.mobile_account),
            ("is_logged_in", &self.is_logged_in),
            ("is_admin", &self.is_admin),
            ("filevault_enabled", &self.filevault_enabled),
            ("volume_owner", &self.volume_owner),
            ("managed_admin", &self.managed_admin),
        ]
        .into_iter()
        .filter_map(|(n, f)| f.as_ref().filter(|f| f.conflict.is_some()).map(|f| (n, f)))
        .collect()
    }
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
            EventKind::GroupCreated,
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
            EventKind::GroupUpdated,
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
                include_checked_out: true,
                limit: 500,
                ..Default::default()
            };
            BootstrapStatus::Escrowed.restrict(&mut f);
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
            EventKind::GroupDeleted,
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
            EventKind::GroupMembership,
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
    pub async fn admin_enqueue_raw(
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
                EventKind::PushSent,
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
            EventKind::TokenCleared,
            Outcome::Success,
            format!("{}: Bootstrap Token {why}", by.label()),
        );
        Ok(self.store.clear_bootstrap_token(id, &event).await?)
    }

    async fn audit(
        &self,
        subject: &str,
        kind: EventKind,
        detail: String,
    ) -> Result<(), ServiceError> {
        let enrollment = (!subject.contains(':')).then_some(subject);
        let event = self.event(subject, enrollment, kind, Outcome::Success, detail);
        Ok(self.store.record_event(&event).await?)
    }
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

/// Whether `new` beats `old` for one fact: the newer observation wins; at the same time the agent's (it reads
/// the Mac's own tools). `store`'s SQL counts (`shared/devices.rs`, `lacks_secure_token!`) use the same rule.
fn newer(new: (FactSource, Millis), old: (FactSource, Millis)) -> bool {
    new.1 > old.1 || (new.1 == old.1 && new.0 == FactSource::Agent && old.0 != FactSource::Agent)
}

/// Group rows into users: rows sharing a key (MDM and agent rows of one user share its GUID key) are one user;
/// a group that carries no GUID (an older agent's row keyed by short name) joins the one other group with the
/// same short name.
fn group_rows(rows: Vec<DeviceUser>) -> Vec<Vec<DeviceUser>> {
    let mut groups: Vec<Vec<DeviceUser>> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|g| g[0].user_key == r.user_key) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    let short = |g: &Vec<DeviceUser>| g.iter().find_map(|r| r.short_name.clone());
    let mut i = 0;
    while i < groups.len() {
        let lone = groups[i].iter().all(|r| r.guid.is_none());
        let name = short(&groups[i]);
        let partners: Vec<usize> = match (&name, lone) {
            (Some(n), true) => (0..groups.len())
                .filter(|&j| j != i && short(&groups[j]).as_ref() == Some(n))
                .collect(),
            _ => Vec::new(),
        };
        if let [j] = partners[..] {
            let moved = groups.remove(i);
            let j = if j > i { j - 1 } else { j };
            groups[j].extend(moved);
            i = 0;
        } else {
            i += 1;
        }
    }
    groups
}

/// One fact of a user from its rows: the newest value wins; the newest differing value is its conflict.
fn merge_fact(
    rows: &[DeviceUser],
    get: impl Fn(&DeviceUser) -> Option<bool>,
) -> Option<Fact<bool>> {
    let mut said: Vec<(bool, FactSource, Millis)> = rows
        .iter()
        .filter_map(|r| get(r).map(|v| (v, r.source, r.observed_at)))
        .collect();
    // Winner first: newest, a tie to the agent.
    said.sort_by(|a, b| {
        if newer((a.1, a.2), (b.1, b.2)) {
            std::cmp::Ordering::Less
        } else if newer((b.1, b.2), (a.1, a.2)) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let (value, source, at) = *said.first()?;
    let conflict = said
        .iter()
        .find(|(v, _, _)| *v != value)
        .map(|&(value, source, at)| Conflict { value, source, at });
    Some(Fact {
        value,
        source,
        at,
        conflict,
    })
}

/// Merge a device's rows (every source) into one row per user, in key order.
pub fn merge_users(rows: Vec<DeviceUser>) -> Vec<MergedUser> {
    let mut out: Vec<MergedUser> = group_rows(rows)
        .into_iter()
        .map(|mut g| {
            // Newest row first, so names come from the latest report that has them.
            g.sort_by_key(|r| std::cmp::Reverse(r.observed_at));
            let keyed = g.iter().find(|r| r.guid.is_some()).unwrap_or(&g[0]);
            MergedUser {
                user_key: keyed.user_key.clone(),
                guid: g.iter().find_map(|r| r.guid.clone()),
                short_name: g.iter().find_map(|r| r.short_name.clone()),
                full_name: g.iter().find_map(|r| r.full_name.clone()),
                uid: g.iter().find_map(|r| r.uid),
                has_secure_token: merge_fact(&g, |r| r.has_secure_token),
                mobile_account: merge_fact(&g, |r| r.mobile_account),
                is_logged_in: merge_fact(&g, |r| r.is_logged_in),
                is_admin: merge_fact(&g, |r| r.is_admin),
                filevault_enabled: merge_fact(&g, |r| r.filevault_enabled),
                volume_owner: merge_fact(&g, |r| r.volume_owner),
                managed_admin: merge_fact(&g, |r| r.managed_admin),
            }
        })
        .collect();
    out.sort_by(|a, b| a.user_key.cmp(&b.user_key));
    out
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn row(
        source: FactSource,
        key: &str,
        name: &str,
        guid: Option<&str>,
        st: Option<bool>,
        at: Millis,
    ) -> DeviceUser {
        DeviceUser {
            device_id: "D".into(),
            source,
            user_key: key.into(),
            short_name: Some(name.into()),
            full_name: None,
            uid: Some(501),
            guid: guid.map(str::to_string),
            has_secure_token: st,
            mobile_account: None,
            is_logged_in: None,
            is_admin: (source == FactSource::Agent).then_some(true),
            filevault_enabled: None,
            volume_owner: None,
            managed_admin: None,
            observed_at: at,
        }
    }

    const G: &str = "85F41F44-22B3-6CB7-85A1-BCC2EA2B887A";

    #[test]
    fn one_row_per_user_with_the_newest_fact_and_the_older_one_as_a_conflict() {
        let users = merge_users(vec![
            row(FactSource::Agent, G, "ladmin", Some(G), Some(true), 200),
            row(FactSource::Mdm, G, "ladmin", Some(G), Some(false), 100),
        ]);
        assert_eq!(users.len(), 1);
        let st = users[0].has_secure_token.as_ref().unwrap();
        assert_eq!((st.value, st.source, st.at), (true, FactSource::Agent, 200));
        assert_eq!(
            st.conflict,
            Some(Conflict {
                value: false,
                source: FactSource::Mdm,
                at: 100
            })
        );
        assert_eq!(users[0].conflicts().len(), 1);
        // Agreement is no conflict; a later MDM answer wins.
        let users = merge_users(vec![
            row(FactSource::Agent, G, "ladmin", Some(G), Some(true), 200),
            row(FactSource::Mdm, G, "ladmin", Some(G), Some(true), 300),
        ]);
        let st = users[0].has_secure_token.as_ref().unwrap();
        assert_eq!((st.source, st.conflict.clone()), (FactSource::Mdm, None));
    }

    #[test]
    fn an_agent_row_without_a_guid_joins_the_user_of_the_same_short_name() {
        let users = merge_users(vec![
            row(FactSource::Agent, "kiosk", "kiosk", None, Some(true), 200),
            row(FactSource::Mdm, G, "kiosk", Some(G), Some(true), 100),
            row(FactSource::Mdm, "B", "bob", Some("B"), Some(false), 100),
        ]);
        assert_eq!(users.len(), 2, "{users:?}");
        let kiosk = users.iter().find(|u| u.name() == "kiosk").unwrap();
        assert_eq!(kiosk.user_key, G);
        assert_eq!(kiosk.guid.as_deref(), Some(G));
        assert_eq!(kiosk.is_admin.as_ref().map(|f| f.value), Some(true));
    }

    #[test]
    fn a_tie_goes_to_the_agent_and_is_still_shown_as_a_conflict() {
        let users = merge_users(vec![
            row(FactSource::Mdm, G, "a", Some(G), Some(true), 100),
            row(FactSource::Agent, G, "a", Some(G), Some(false), 100),
        ]);
        let st = users[0].has_secure_token.as_ref().unwrap();
        assert_eq!((st.value, st.source), (false, FactSource::Agent));
        assert!(st.conflict.is_some());
    }
}
