//! Groups and their escrow settings: create, rename, switch escrow and the prompt, delete, and put a device
//! in a group. Every change is audited; switching escrow off with `Clear` deletes the members' tokens.

use store::{DeviceFilter, Group, Outcome};

use super::on_off;
use crate::apikeys::Actor;
use crate::error::admin;
use crate::status::BootstrapStatus;
use crate::{EventKind, MdmService, Scoped, ServiceError};

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
    pub async fn admin_create_group(
        &self,
        name: &str,
        escrow: bool,
        prompt: bool,
        by: &Actor,
    ) -> Result<Group, ServiceError> {
        self.scoped()
            .admin_create_group(name, escrow, prompt, by)
            .await
    }

    pub async fn admin_group(&self, id: &str) -> Result<Group, ServiceError> {
        self.scoped().admin_group(id).await
    }

    /// Rename and/or change escrow settings. Switching escrow off with `Clear` deletes the members' tokens.
    pub async fn admin_update_group(
        &self,
        id: &str,
        change: &GroupChange,
        by: &Actor,
    ) -> Result<GroupUpdate, ServiceError> {
        self.scoped().admin_update_group(id, change, by).await
    }

    pub async fn admin_delete_group(&self, id: &str, by: &Actor) -> Result<(), ServiceError> {
        self.scoped().admin_delete_group(id, by).await
    }

    /// Put a device in a group (or none).
    pub async fn admin_set_group(
        &self,
        device_id: &str,
        group_id: Option<&str>,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        self.scoped().admin_set_group(device_id, group_id, by).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait GroupAdminRoles:
    store::Groups + store::Admin + store::Events + store::Tokens + store::Commands
{
}
impl<T: ?Sized + store::Groups + store::Admin + store::Events + store::Tokens + store::Commands>
    GroupAdminRoles for T
{
}

impl<S: ?Sized + GroupAdminRoles> Scoped<'_, S> {
    pub(crate) async fn admin_create_group(
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

    /// Rename and/or change escrow settings. Switching escrow off with `Clear` deletes the members' tokens.
    pub(crate) async fn admin_update_group(
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

    pub(crate) async fn admin_delete_group(
        &self,
        id: &str,
        by: &Actor,
    ) -> Result<(), ServiceError> {
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
    pub(crate) async fn admin_set_group(
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
}

impl<S: ?Sized + store::Groups> Scoped<'_, S> {
    pub(crate) async fn admin_group(&self, id: &str) -> Result<Group, ServiceError> {
        self.store
            .group(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("group {id}")))
    }
}
