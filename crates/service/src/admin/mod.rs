//! What admins do through the API and the CLI: device views, merged user facts, events, groups and their
//! escrow settings, typed and raw commands, pushes, clearing a token. Guarantees: every change writes an
//! audited event naming the acting API key; nothing here returns a Bootstrap Token (views carry metadata
//! only); unknown ids are NotFound and bad values Invalid, both before anything changes.
//!
//! This module owns the device and event views, clearing a token and the audit helper; groups, commands and
//! the merging of user facts live in the submodules.

mod commands;
mod groups;
mod users;

pub use commands::TypedCommand;
pub use groups::{GroupChange, GroupUpdate, OnEscrowDisabled};
pub use users::{Conflict, Fact, MergedUser, merge_users};

use store::{DeviceFilter, DeviceRecord, Event, EventFilter, Outcome};

use crate::apikeys::Actor;
use crate::{EventKind, MdmService, Scoped, ServiceError};

impl MdmService {
    pub async fn admin_devices(&self, f: &DeviceFilter) -> Result<Vec<DeviceRecord>, ServiceError> {
        self.scoped().admin_devices(f).await
    }

    pub async fn admin_device(&self, id: &str) -> Result<DeviceRecord, ServiceError> {
        self.scoped().admin_device(id).await
    }

    /// The device's users, one row per user, each fact with its source and time.
    pub async fn admin_device_users(&self, id: &str) -> Result<Vec<MergedUser>, ServiceError> {
        self.scoped().admin_device_users(id).await
    }

    /// The device's events, newest first (the filter's subject is set to the device).
    pub async fn admin_device_events(
        &self,
        id: &str,
        f: EventFilter,
    ) -> Result<Vec<Event>, ServiceError> {
        self.scoped().admin_device_events(id, f).await
    }

    /// Events across the fleet, newest first, as the filter says.
    pub async fn admin_events(&self, f: EventFilter) -> Result<Vec<Event>, ServiceError> {
        self.scoped().admin_events(f).await
    }

    /// Delete the device's escrowed token (audited). Returns whether one was deleted.
    pub async fn admin_clear_token(&self, id: &str, by: &Actor) -> Result<bool, ServiceError> {
        self.scoped().admin_clear_token(id, by).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait AdminRoles:
    store::Admin + store::Events + store::Groups + store::Tokens + store::Inventory
{
}
impl<T: ?Sized + store::Admin + store::Events + store::Groups + store::Tokens + store::Inventory>
    AdminRoles for T
{
}

impl<S: ?Sized + AdminRoles> Scoped<'_, S> {
    pub(crate) async fn admin_devices(
        &self,
        f: &DeviceFilter,
    ) -> Result<Vec<DeviceRecord>, ServiceError> {
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

    /// The device's users, one row per user, each fact with its source and time.
    pub(crate) async fn admin_device_users(
        &self,
        id: &str,
    ) -> Result<Vec<MergedUser>, ServiceError> {
        self.admin_device(id).await?;
        Ok(merge_users(self.store.device_users(id).await?))
    }

    /// The device's events, newest first (the filter's subject is set to the device).
    pub(crate) async fn admin_device_events(
        &self,
        id: &str,
        mut f: EventFilter,
    ) -> Result<Vec<Event>, ServiceError> {
        self.admin_device(id).await?;
        f.subject = Some(id.to_string());
        Ok(self.store.events(&f).await?)
    }

    /// Events across the fleet, newest first, as the filter says.
    pub(crate) async fn admin_events(&self, f: EventFilter) -> Result<Vec<Event>, ServiceError> {
        Ok(self.store.events(&f).await?)
    }

    /// Delete the device's escrowed token (audited). Returns whether one was deleted.
    pub(crate) async fn admin_clear_token(
        &self,
        id: &str,
        by: &Actor,
    ) -> Result<bool, ServiceError> {
        self.admin_device(id).await?;
        self.clear_token(id, by, "cleared by an admin").await
    }
}

impl<S: ?Sized + store::Admin> Scoped<'_, S> {
    pub(crate) async fn admin_device(&self, id: &str) -> Result<DeviceRecord, ServiceError> {
        self.store
            .device_record(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("device {id}")))
    }
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

impl<S: ?Sized + store::Events> Scoped<'_, S> {
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

impl<S: ?Sized + store::Tokens> Scoped<'_, S> {
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
}
