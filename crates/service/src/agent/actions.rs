//! Remote actions as admins create, list and cancel them: credentials are HPKE-sealed to the device agent's
//! key the moment they arrive, exist in the clear only inside `Secret`s, and are never stored, logged or returned.

use std::collections::BTreeMap;

use protocol::action_kind::{ActionKind, Needed};
use protocol::agent_profile::action_seal_info;
use protocol::wildcards::{self, EnrollmentData};
use store::{ActionEnd, ActionStatus, AgentAction, Outcome, Signal};
use vault::Secret;

use super::AgentActionRoles;
use super::{ACTION_TTL_MS, NewAgentAction, check_name};
use crate::apikeys::Actor;
use crate::{EventKind, MdmService, Scoped, ServiceError};

impl MdmService {
    /// Create an action: expand wildcards, seal the credentials to the device agent's HPKE key at once.
    pub async fn admin_create_action(
        &self,
        device_id: &str,
        new: NewAgentAction,
        by: &Actor,
    ) -> Result<AgentAction, ServiceError> {
        self.scoped().admin_create_action(device_id, new, by).await
    }

    pub async fn admin_actions(
        &self,
        device_id: &str,
        limit: u32,
    ) -> Result<Vec<AgentAction>, ServiceError> {
        self.scoped().admin_actions(device_id, limit).await
    }

    pub async fn admin_action(
        &self,
        device_id: &str,
        id: &str,
    ) -> Result<AgentAction, ServiceError> {
        self.scoped().admin_action(device_id, id).await
    }

    pub async fn admin_cancel_action(
        &self,
        device_id: &str,
        id: &str,
        by: &Actor,
    ) -> Result<AgentAction, ServiceError> {
        self.scoped().admin_cancel_action(device_id, id, by).await
    }
}

impl<S: ?Sized + AgentActionRoles> Scoped<'_, S> {
    /// Create an action: expand wildcards, seal the credentials to the device agent's HPKE key at once.
    pub(crate) async fn admin_create_action(
        &self,
        device_id: &str,
        new: NewAgentAction,
        by: &Actor,
    ) -> Result<AgentAction, ServiceError> {
        by.require(store::ApiScope::Operate)?;
        let kind: ActionKind =
            new.kind
                .parse()
                .map_err(|e: protocol::action_kind::UnknownActionKind| {
                    ServiceError::Invalid(e.to_string())
                })?;
        let enrollment = self
            .store
            .enrollment(device_id)
            .await?
            .filter(|e| e.channel == store::Channel::Device)
            .ok_or_else(|| ServiceError::NotFound(format!("device {device_id}")))?;
        let agent = self.store.agent_for_device(device_id).await?.ok_or_else(|| {
            ServiceError::Conflict(format!(
                "device {device_id} has no registered agent; install it first (POST /api/v1/devices/{device_id}/agent)"
            ))
        })?;
        let logged_in = self
            .store
            .device_users(device_id)
            .await?
            .into_iter()
            .find(|u| u.is_logged_in == Some(true))
            .and_then(|u| u.short_name);
        let data = EnrollmentData {
            serial: enrollment.serial_number.clone(),
            device_name: enrollment.device_name.clone(),
            username: logged_in,
        };
        let expand = |what: &str, v: &Option<String>| -> Result<Option<String>, ServiceError> {
            v.as_deref()
                .map(|t| {
                    let out = wildcards::expand(t, &data)
                        .map_err(|e| ServiceError::Invalid(format!("{what}: {e}")))?;
                    check_name(what, &out)?;
                    Ok(out)
                })
                .transpose()
        };
        let (need_user, need_admin) = kind.needs();
        if need_admin == Needed::Optional && new.admin.is_some() != new.admin_password.is_some() {
            return Err(ServiceError::Invalid(format!(
                "{} takes admin and admin_password together (to run profiles validate) or neither",
                kind
            )));
        }
        let need_user = need_user == Needed::Yes;
        let need_admin = need_admin == Needed::Yes
            || (need_admin == Needed::Optional && new.admin_password.is_some());
        let user = expand("user", &new.user)?;
        let admin = expand("admin", &new.admin)?;
        let full_name = expand("full_name", &new.full_name)?;
        let mut creds: BTreeMap<&str, Secret<String>> = BTreeMap::new();
        let expand_secret = |what: &str, s: &Secret<String>| {
            wildcards::expand_secret(s, &data)
                .map_err(|e| ServiceError::Invalid(format!("{what}: {e}")))
        };
        if need_user {
            if user.is_none() {
                return Err(ServiceError::Invalid(format!("{kind} needs user")));
            }
            let pw = new
                .user_password
                .as_ref()
                .ok_or_else(|| ServiceError::Invalid(format!("{kind} needs user_password")))?;
            creds.insert("user_password", expand_secret("user_password", pw)?);
        }
        if need_admin {
            if admin.is_none() {
                return Err(ServiceError::Invalid(format!("{kind} needs admin")));
            }
            let pw = new
                .admin_password
                .as_ref()
                .ok_or_else(|| ServiceError::Invalid(format!("{kind} needs admin_password")))?;
            creds.insert("admin_password", expand_secret("admin_password", pw)?);
        }
        if kind == ActionKind::CreateUser && full_name.is_none() {
            return Err(ServiceError::Invalid("create_user needs full_name".into()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = if creds.is_empty() {
            None
        } else {
            let mut json = serde_json::Map::new();
            for (k, v) in &creds {
                json.insert((*k).into(), serde_json::Value::String(v.expose().clone()));
            }
            let plain = Secret::new(
                serde_json::to_vec(&json).map_err(|e| ServiceError::Internal(e.to_string()))?,
            );
            drop(json);
            Some(agentwire::hpke_seal(
                &agent.hpke_key,
                &action_seal_info(&id),
                id.as_bytes(),
                plain.expose(),
            )?)
        };
        let mut params = serde_json::Map::new();
        for (k, v) in [
            ("user", &user),
            ("admin", &admin),
            ("full_name", &full_name),
        ] {
            if let Some(v) = v {
                params.insert(k.into(), serde_json::Value::String(v.clone()));
            }
        }
        if kind == ActionKind::CreateUser {
            params.insert("make_admin".into(), serde_json::Value::Bool(new.make_admin));
        }
        let now = self.now();
        let action = AgentAction {
            id: id.clone(),
            device_id: device_id.to_string(),
            kind: kind.as_str().to_string(),
            params: serde_json::Value::Object(params).to_string(),
            sealed,
            status: ActionStatus::Queued,
            reason: None,
            output: None,
            created_by: by.label(),
            created_at: now,
            updated_at: now,
            expires_at: now + ACTION_TTL_MS,
        };
        let event = self.agent_event(
            device_id,
            EventKind::AgentActionCreated,
            Outcome::Success,
            format!("{}: action {id} {kind} queued", by.label()),
        );
        self.store
            .create_agent_action(&action, &event)
            .await
            .map_err(crate::error::admin)?;
        self.agent_nudges.wake(device_id);
        self.signal_instances(Signal::AgentActions {
            device_id: device_id.to_string(),
        })
        .await;
        Ok(action)
    }

    pub(crate) async fn admin_actions(
        &self,
        device_id: &str,
        limit: u32,
    ) -> Result<Vec<AgentAction>, ServiceError> {
        self.store.expire_agent_actions(self.now()).await?;
        Ok(self.store.agent_actions(device_id, limit).await?)
    }

    pub(crate) async fn admin_action(
        &self,
        device_id: &str,
        id: &str,
    ) -> Result<AgentAction, ServiceError> {
        self.store.expire_agent_actions(self.now()).await?;
        self.store
            .agent_action(id)
            .await?
            .filter(|a| a.device_id == device_id)
            .ok_or_else(|| ServiceError::NotFound(format!("action {id} on device {device_id}")))
    }

    pub(crate) async fn admin_cancel_action(
        &self,
        device_id: &str,
        id: &str,
        by: &Actor,
    ) -> Result<AgentAction, ServiceError> {
        by.require(store::ApiScope::Operate)?;
        let event = self.agent_event(
            device_id,
            EventKind::AgentActionCancelled,
            Outcome::Success,
            format!("{}: action {id} cancelled", by.label()),
        );
        match self
            .store
            .finish_agent_action(
                device_id,
                id,
                ActionStatus::Cancelled,
                Some("cancelled by an admin"),
                None,
                self.now(),
                std::slice::from_ref(&event),
            )
            .await?
        {
            ActionEnd::Ended => self.admin_action(device_id, id).await,
            ActionEnd::NotFound => Err(ServiceError::NotFound(format!(
                "action {id} on device {device_id}"
            ))),
            ActionEnd::AlreadyEnded(s) => Err(ServiceError::Conflict(format!(
                "action {id} already ended ({}); nothing to cancel",
                s.as_str()
            ))),
        }
    }
}
