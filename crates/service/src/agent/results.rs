//! What agents report: action results (troubleshoot transcripts cleaned and capped again here), self-service
//! escrow outcomes and user inventory. All of it arrives on already-verified signed requests.

use std::collections::HashMap;

use protocol::action_kind::ActionKind;
use protocol::agent_profile::{
    ActionResultRequest, AgentInventoryRequest, CommandRunWire, EscrowReportRequest,
    MAX_COMMAND_OUTPUT, MAX_TROUBLESHOOT_COMMANDS, clean_output, cut,
};
use store::{ActionEnd, ActionStatus, AgentRegistration, DeviceUser, FactSource, Outcome};

use super::AgentResultRoles;
use super::{MAX_ACTION_OUTPUT, check_name};
use crate::{EventKind, MdmService, Scoped, ServiceError};

impl MdmService {
    /// `POST /agent/v1/actions/{id}/result`.
    pub async fn agent_action_result(
        &self,
        agent: &AgentRegistration,
        id: &str,
        body: &[u8],
    ) -> Result<ActionStatus, ServiceError> {
        self.scoped().agent_action_result(agent, id, body).await
    }

    /// `POST /agent/v1/reports/escrow`: how a user's self-service escrow on the agent's Mac ended, stored as
    /// an `agent.self_service_escrow` event.
    pub async fn agent_escrow_report(
        &self,
        agent: &AgentRegistration,
        body: &[u8],
    ) -> Result<(), ServiceError> {
        self.scoped().agent_escrow_report(agent, body).await
    }

    /// `POST /agent/v1/inventory`: the agent's view of the local users replaces its rows in the Users table.
    pub async fn agent_inventory(
        &self,
        agent: &AgentRegistration,
        body: &[u8],
    ) -> Result<usize, ServiceError> {
        self.scoped().agent_inventory(agent, body).await
    }
}

impl<S: ?Sized + AgentResultRoles> Scoped<'_, S> {
    /// `POST /agent/v1/actions/{id}/result`.
    pub(crate) async fn agent_action_result(
        &self,
        agent: &AgentRegistration,
        id: &str,
        body: &[u8],
    ) -> Result<ActionStatus, ServiceError> {
        let req: ActionResultRequest = serde_json::from_slice(body)
            .map_err(|e| ServiceError::Malformed(format!("result body: {e}")))?;
        let reason = req
            .reason
            .as_deref()
            .map(|r| clean_output(r, 1024).0.replace('\n', " "));
        let commands = self.troubleshoot_commands(agent, id, &req.commands).await?;
        let output = match (&req.output, commands.is_empty()) {
            (Some(o), _) => Some(clean_output(o, MAX_ACTION_OUTPUT).0),
            (None, false) => Some(cut(&transcript(&commands), MAX_ACTION_OUTPUT).to_string()),
            (None, true) => None,
        };
        let status = if req.succeeded {
            ActionStatus::Succeeded
        } else {
            ActionStatus::Failed
        };
        let mut events = vec![self.agent_event(
            &agent.device_id,
            EventKind::AgentActionFinished,
            if req.succeeded {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            match &reason {
                Some(r) => format!("action {id} {}: {r}", status.as_str()),
                None => format!("action {id} {}", status.as_str()),
            },
        )];
        events.extend(commands.iter().map(|c| {
            self.agent_event(
                &agent.device_id,
                EventKind::AgentTroubleshoot,
                if c.exit_code == Some(0) {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
                format!("action {id}: {}", command_text(c)),
            )
        }));
        match self
            .store
            .finish_agent_action(
                &agent.device_id,
                id,
                status,
                reason.as_deref(),
                output.as_deref(),
                self.now(),
                &events,
            )
            .await?
        {
            ActionEnd::Ended => {
                if status == ActionStatus::Succeeded
                    && let Some(a) = self.store.agent_action(id).await?
                    && ActionKind::parse(&a.kind).is_none_or(changes_users)
                {
                    self.refresh_user_list(&agent.device_id, "a successful agent action")
                        .await;
                }
                Ok(status)
            }
            ActionEnd::NotFound => Err(ServiceError::NotFound(format!(
                "action {id} on this device"
            ))),
            ActionEnd::AlreadyEnded(s) => Err(ServiceError::Conflict(format!(
                "action {id} already ended ({})",
                s.as_str()
            ))),
        }
    }

    /// The commands of a troubleshoot result, cleaned and capped again here (the agent is not trusted to have
    /// done it). Commands on any other kind of action, or too many, are refused.
    async fn troubleshoot_commands(
        &self,
        agent: &AgentRegistration,
        id: &str,
        commands: &[CommandRunWire],
    ) -> Result<Vec<CommandRunWire>, ServiceError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if commands.len() > MAX_TROUBLESHOOT_COMMANDS {
            return Err(ServiceError::Malformed(format!(
                "at most {MAX_TROUBLESHOOT_COMMANDS} commands per result"
            )));
        }
        let kind = self
            .store
            .agent_action(id)
            .await?
            .filter(|a| a.device_id == agent.device_id)
            .map(|a| a.kind);
        match kind.as_deref() {
            Some(k) if *k == ActionKind::Troubleshoot => {}
            Some(other) => {
                return Err(ServiceError::Malformed(format!(
                    "commands belong to troubleshoot results, not {other}"
                )));
            }
            // Unknown or another device's: finish_agent_action answers NotFound.
            None => return Ok(Vec::new()),
        }
        Ok(commands
            .iter()
            .map(|c| {
                let (command, _) = clean_output(&c.command.replace(['\n', '\t'], " "), 256);
                let (output, cut_here) = clean_output(&c.output, MAX_COMMAND_OUTPUT);
                CommandRunWire {
                    command,
                    exit_code: c.exit_code,
                    output,
                    truncated: c.truncated || cut_here,
                }
            })
            .collect())
    }

    /// `POST /agent/v1/reports/escrow`: how a user's self-service escrow on the agent's Mac ended, stored as
    /// an `agent.self_service_escrow` event.
    pub(crate) async fn agent_escrow_report(
        &self,
        agent: &AgentRegistration,
        body: &[u8],
    ) -> Result<(), ServiceError> {
        let req: EscrowReportRequest = serde_json::from_slice(body)
            .map_err(|e| ServiceError::Malformed(format!("escrow report body: {e}")))?;
        check_name("user", &req.user).map_err(|e| ServiceError::Malformed(e.to_string()))?;
        if req.code.is_empty()
            || req.code.len() > 64
            || !req
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ServiceError::Malformed(
                "code must be 1-64 characters of a-z, 0-9 and _".into(),
            ));
        }
        let message = req
            .message
            .as_deref()
            .map(|m| clean_output(m, 1024).0.replace('\n', " "));
        let detail = format!(
            "self-service escrow by {} {}: {}{}",
            req.user,
            if req.succeeded { "succeeded" } else { "failed" },
            req.code,
            message.map(|m| format!(": {m}")).unwrap_or_default()
        );
        let event = self.agent_event(
            &agent.device_id,
            EventKind::AgentSelfServiceEscrow,
            if req.succeeded {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            detail,
        );
        self.store.record_event(&event).await?;
        Ok(())
    }

    /// `POST /agent/v1/inventory`: the agent's view of the local users replaces its rows in the Users table.
    pub(crate) async fn agent_inventory(
        &self,
        agent: &AgentRegistration,
        body: &[u8],
    ) -> Result<usize, ServiceError> {
        let req: AgentInventoryRequest = serde_json::from_slice(body)
            .map_err(|e| ServiceError::Malformed(format!("inventory body: {e}")))?;
        if req.users.len() > 1000 {
            return Err(ServiceError::Malformed("at most 1000 users".into()));
        }
        let now = self.now();
        // MDM's key for each short name: an older agent (no GeneratedUID) still lands on MDM's row of the user.
        let mdm_keys: HashMap<String, String> = self
            .store
            .device_users(&agent.device_id)
            .await?
            .into_iter()
            .filter(|r| r.source == FactSource::Mdm)
            .filter_map(|r| r.short_name.map(|n| (n, r.user_key)))
            .collect();
        let mut users = Vec::with_capacity(req.users.len());
        for u in &req.users {
            check_name("short_name", &u.short_name)
                .map_err(|e| ServiceError::Malformed(e.to_string()))?;
            let guid = u
                .generated_uid
                .as_deref()
                .map(|g| {
                    crate::inventory::normalize_guid(g).ok_or_else(|| {
                        ServiceError::Malformed(format!(
                            "generated_uid of {:?} must be a GUID like 85F41F44-22B3-6CB7-85A1-BCC2EA2B887A",
                            u.short_name
                        ))
                    })
                })
                .transpose()?;
            let user_key = guid
                .clone()
                .or_else(|| mdm_keys.get(&u.short_name).cloned())
                .unwrap_or_else(|| u.short_name.clone());
            users.push(DeviceUser {
                device_id: agent.device_id.clone(),
                source: FactSource::Agent,
                user_key,
                short_name: Some(u.short_name.clone()),
                full_name: u.real_name.clone(),
                uid: Some(u.uid),
                guid,
                has_secure_token: u.secure_token,
                mobile_account: None,
                is_logged_in: None,
                is_admin: Some(u.admin),
                filevault_enabled: Some(u.filevault),
                volume_owner: u.volume_owner,
                managed_admin: u.managed_admin,
                observed_at: now,
            });
        }
        self.store
            .replace_device_users(&agent.device_id, FactSource::Agent, &users)
            .await
            .map_err(|e| match e {
                store::StoreError::Conflict(m) => ServiceError::Malformed(m),
                other => other.into(),
            })?;
        let event = self.agent_event(
            &agent.device_id,
            EventKind::AgentInventory,
            Outcome::Success,
            format!("agent reported {} users", users.len()),
        );
        self.store.record_event(&event).await?;
        Ok(users.len())
    }
}

/// Whether a succeeded action of this kind may have changed the Mac's users or tokens (so UserList is asked
/// again); the read-only ones did not.
/// Whether a successful action of this kind may have changed the Mac's users (worth a UserList re-ask).
fn changes_users(kind: ActionKind) -> bool {
    !matches!(
        kind,
        ActionKind::Troubleshoot | ActionKind::ValidateBootstrapToken
    )
}

/// One command as its event reads: `` `cmd` exit N`` then its output.
fn command_text(c: &CommandRunWire) -> String {
    let code = match c.exit_code {
        Some(n) => format!("exit {n}"),
        None => "no exit code (not started, timed out or killed)".into(),
    };
    let cut = if c.truncated {
        " (output truncated)"
    } else {
        ""
    };
    format!("`{}` {code}{cut}\n{}", c.command, c.output)
}

/// A troubleshoot action's output: every command with its exit and output, in order.
fn transcript(commands: &[CommandRunWire]) -> String {
    commands
        .iter()
        .map(|c| format!("$ {}\n", command_text(c)))
        .collect::<Vec<_>>()
        .join("\n")
}
