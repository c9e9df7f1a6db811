//! The Mac agent's server side (issue 6): installing the agent's settings through MDM, registration with a
//! one-time secret, signed-request verification, and remote actions whose credentials are HPKE-sealed to the
//! agent the moment they arrive.
//!
//! Guarantees: registration secrets are stored as SHA-256 only, single use, bound to one device, revoked by a
//! newer install for the device, and expiring a set time (default 24 h) after the Mac acknowledged the
//! InstallProfile carrying them; that InstallProfile is sealed at rest like every command carrying a secret; a
//! Mac that already has a registered agent is re-registered only when the request is signed by that agent's
//! key or the install was queued with an admin's `--replace` (audited), otherwise refused with nothing
//! changed; every agent request after registration must carry a valid Ed25519 signature over method, path, timestamp,
//! nonce and SHA-256(body), a timestamp within ±5 minutes and an unseen nonce, else it is refused with an
//! `agent.auth_failed` count (per source and hour, `crate::edge`) and changes nothing; action credentials exist in the clear only inside
//! `Secret`s while being expanded and sealed, and are never stored, logged or returned.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::sha::sha256;
use protocol::action_kind::{ActionKind, Needed};
use protocol::agent_profile::{
    ActionResultRequest, AgentActionWire, AgentActionsResponse, AgentInventoryRequest,
    AgentSettings, CommandRunWire, EscrowReportRequest, MAX_COMMAND_OUTPUT,
    MAX_TROUBLESHOOT_COMMANDS, RegisterRequest, RegisterResponse, action_seal_info, agent_profile,
    clean_output, cut, signing_message,
};
use protocol::command::Command;
use protocol::wildcards::{self, EnrollmentData};
use store::{
    ActionEnd, ActionStatus, AgentAction, AgentRegistration, AgentSecret, DeviceUser, FactSource,
    Millis, Outcome,
};
use vault::Secret;

use crate::apikeys::Actor;
use crate::{EventKind, MdmService, ServiceError};

/// How long a registration secret stays usable once its InstallProfile is on the Mac, unless the server is
/// told otherwise (`--agent-secret-ttl`).
pub const DEFAULT_REGISTRATION_SECRET_TTL_MS: Millis = 24 * 3600 * 1000;
/// How far an agent's clock may be off.
pub const MAX_CLOCK_SKEW_MS: Millis = 5 * 60 * 1000;
/// How long an action waits for its agent before it expires (and its credentials are deleted).
pub const ACTION_TTL_MS: Millis = 24 * 3600 * 1000;
/// Largest output an agent may store for one action.
pub const MAX_ACTION_OUTPUT: usize = 64 * 1024;
/// The longest an agent's poll may wait for an action.
pub const MAX_POLL_WAIT: Duration =
    Duration::from_secs(protocol::agent_profile::MAX_POLL_WAIT_SECS);

/// What `admin_install_agent` queued.
#[derive(Debug, Clone)]
pub struct AgentInstall {
    pub command_uuid: String,
    /// How long the secret stays usable once the Mac acknowledged the InstallProfile.
    pub secret_ttl_ms: Millis,
    /// Earlier unused secrets of the Mac this install revoked.
    pub revoked_secrets: u64,
    /// The registration with this secret may replace the Mac's current agent.
    pub replace: bool,
}

/// A new action as the admin asks for it. Passwords only in `Secret`s.
#[derive(Debug)]
pub struct NewAgentAction {
    /// As the admin typed it; parsed as an [`ActionKind`] after the scope check (an unknown kind is Invalid).
    pub kind: String,
    /// The user the action is for (new user for create_user, the target for transfer).
    pub user: Option<String>,
    /// The token-holding admin (the holder for transfer).
    pub admin: Option<String>,
    pub full_name: Option<String>,
    pub make_admin: bool,
    pub user_password: Option<Secret<String>>,
    pub admin_password: Option<Secret<String>>,
}

/// One parsed, not yet verified, signed agent request.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    pub agent_id: &'a str,
    /// Unix seconds.
    pub timestamp: &'a str,
    pub nonce: &'a str,
    /// Base64 Ed25519 signature.
    pub signature: &'a str,
    pub method: &'a str,
    /// Path and query as sent.
    pub path: &'a str,
    pub body: &'a [u8],
}

fn secret_hash(secret: &str) -> String {
    hex::encode(sha256(secret.as_bytes()))
}

fn random_token(bytes: usize) -> Result<String, ServiceError> {
    let mut buf = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut buf)
        .map_err(|e| ServiceError::Internal(format!("random: {e}")))?;
    Ok(hex::encode(buf))
}

fn check_name(what: &str, v: &str) -> Result<(), ServiceError> {
    if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control()) {
        return Err(ServiceError::Invalid(format!(
            "{what} must be 1-255 characters without control characters"
        )));
    }
    Ok(())
}

impl MdmService {
    fn agent_event(
        &self,
        device: &str,
        kind: EventKind,
        outcome: Outcome,
        detail: String,
    ) -> store::NewEvent {
        let known = !device.is_empty() && device != "unknown";
        self.event(device, known.then_some(device), kind, outcome, detail)
    }

    /// Create a one-time registration secret for `device_id`, revoke its earlier unused ones, and queue an
    /// `InstallProfile` carrying the `com.escrowd.agent` payload (ServerURL, RegistrationSecret, DeviceID),
    /// sealed at rest. `replace` (admin scope) lets the registration with this secret replace the Mac's current
    /// agent; it is recorded with an `agent.replace_authorized` event.
    pub async fn admin_install_agent(
        &self,
        device_id: &str,
        server_url: &str,
        replace: bool,
        by: &Actor,
    ) -> Result<AgentInstall, ServiceError> {
        if replace {
            by.require(store::ApiScope::Admin)?;
        }
        if !(server_url.starts_with("https://") || server_url.starts_with("http://")) {
            return Err(ServiceError::Invalid(
                "the agent's server URL must start with https:// (or http:// for tests)".into(),
            ));
        }
        let enrollment = self
            .store
            .enrollment(device_id)
            .await?
            .filter(|e| e.channel == store::Channel::Device)
            .ok_or_else(|| ServiceError::NotFound(format!("device {device_id}")))?;
        let now = self.now();
        let secret = Secret::new(random_token(32)?);
        let command_uuid = uuid::Uuid::new_v4().to_string().to_uppercase();
        let record = AgentSecret {
            secret_hash: secret_hash(secret.expose()),
            device_id: enrollment.id.clone(),
            command_uuid: Some(command_uuid.clone()),
            created_at: now,
            ttl_ms: self.agent_secret_ttl,
            delivered_at: None,
            expires_at: None,
            used_at: None,
            revoked_at: None,
            replace_authorized_by: replace.then(|| by.label()),
        };
        let settings = AgentSettings {
            server_url: server_url.to_string(),
            device_id: enrollment.id.clone(),
            registration_secret: secret,
        };
        let profile = Secret::new(agent_profile(
            &settings,
            &uuid::Uuid::new_v4().to_string().to_uppercase(),
            &uuid::Uuid::new_v4().to_string().to_uppercase(),
        )?);
        drop(settings);
        let command = Command::install_profile(command_uuid.clone(), profile.expose().clone());
        let (new, sealed) = self.prepare_command(&command, true, now)?;
        drop(command);
        let sealed = sealed.ok_or_else(|| {
            ServiceError::Internal("the agent's InstallProfile was not sealed".into())
        })?;
        let ttl = human_ms(self.agent_secret_ttl);
        let mut events = vec![
            self.agent_event(
                &enrollment.id,
                EventKind::AgentInstallQueued,
                Outcome::Success,
                format!(
                    "{}: agent settings profile {command_uuid} queued; its registration secret works for {ttl} \
                     once the Mac installs it; earlier unused secrets of this Mac are revoked",
                    by.label()
                ),
            ),
            self.event(
                &enrollment.id,
                Some(&enrollment.id),
                EventKind::CommandQueued,
                Outcome::Success,
                format!("InstallProfile {command_uuid} (carries a secret: sealed at rest)"),
            ),
        ];
        if replace {
            let current = self
                .store
                .agent_for_device(&enrollment.id)
                .await?
                .map(|a| format!("agent {}", a.agent_id))
                .unwrap_or_else(|| "no agent is registered now".into());
            events.push(self.agent_event(
                &enrollment.id,
                EventKind::AgentReplaceAuthorized,
                Outcome::Success,
                format!(
                    "{}: agent-install --replace: the registration with install {command_uuid}'s secret may \
                     replace the Mac's current agent ({current})",
                    by.label()
                ),
            ));
        }
        let revoked_secrets = self
            .store
            .create_agent_secret(&record, &new, &sealed, &events)
            .await?;
        Ok(AgentInstall {
            command_uuid,
            secret_ttl_ms: record.ttl_ms,
            revoked_secrets,
            replace,
        })
    }

    /// `POST /agent/v1/register`: claim the one-time secret for the device and store the agent's keys. When the
    /// Mac already has a registered agent, `proof` (the request signed by that agent's key) or an install
    /// queued with `--replace` is needed; otherwise the registration is refused (409) and nothing changes.
    pub async fn agent_register(
        &self,
        body: &[u8],
        proof: Option<&SignedRequest<'_>>,
        source: &crate::edge::Source,
    ) -> Result<RegisterResponse, ServiceError> {
        let req: RegisterRequest = serde_json::from_slice(body)
            .map_err(|e| ServiceError::Malformed(format!("registration body: {e}")))?;
        check_name("device_id", &req.device_id)?;
        let signing_key = B64
            .decode(&req.signing_key)
            .ok()
            .filter(|k| agentwire::check_signing_public_key(k).is_ok())
            .ok_or_else(|| {
                ServiceError::Malformed("signing_key must be a base64 Ed25519 public key".into())
            })?;
        let hpke_key = B64
            .decode(&req.hpke_key)
            .ok()
            .filter(|k| agentwire::check_hpke_public_key(k).is_ok())
            .ok_or_else(|| {
                ServiceError::Malformed("hpke_key must be a base64 X25519 public key".into())
            })?;
        let proven = match proof {
            Some(p) => {
                let agent = self.agent_verify(p, source).await?;
                if agent.device_id != req.device_id {
                    let event = self.agent_event(
                        &agent.device_id,
                        EventKind::AgentRegistrationRefused,
                        Outcome::Refused,
                        format!(
                            "agent {} signed a registration for another device",
                            agent.agent_id
                        ),
                    );
                    self.store.record_event(&event).await?;
                    return Err(ServiceError::Unauthorized(
                        "registration refused: the signing agent belongs to another device".into(),
                    ));
                }
                Some(agent)
            }
            None => None,
        };
        let now = self.now();
        let hash = secret_hash(&req.registration_secret);
        let known = self.store.enrollment(&req.device_id).await?.is_some();
        let secret = self.store.agent_secret(&hash).await?;
        let why_not = match &secret {
            _ if !known => Some("unknown device"),
            None => Some("unknown secret"),
            Some(s) if s.device_id != req.device_id => Some("secret of another device"),
            Some(s) => s.unusable_at(now),
        };
        let refuse_secret = |why: &str| {
            let subject = if known {
                req.device_id.as_str()
            } else {
                "unknown"
            };
            self.agent_event(
                subject,
                EventKind::AgentRegistrationRefused,
                Outcome::Refused,
                format!("registration secret refused: {why}"),
            )
        };
        let (Some(secret), None) = (secret, why_not) else {
            let event = refuse_secret(why_not.unwrap_or("unknown secret"));
            self.store.record_event(&event).await?;
            return Err(secret_refused());
        };
        let current = self.store.agent_for_device(&req.device_id).await?;
        let reg = AgentRegistration {
            agent_id: uuid::Uuid::new_v4().to_string(),
            device_id: req.device_id.clone(),
            signing_key,
            hpke_key,
            registered_at: now,
            last_seen_at: now,
        };
        let event = match (&current, &proven, &secret.replace_authorized_by) {
            (None, _, _) => self.agent_event(
                &req.device_id,
                EventKind::AgentRegistered,
                Outcome::Success,
                format!("agent {} registered", reg.agent_id),
            ),
            (Some(cur), Some(p), _) if p.agent_id == cur.agent_id => self.agent_event(
                &req.device_id,
                EventKind::AgentReplaced,
                Outcome::Success,
                format!(
                    "agent {} registered, replacing agent {} (the request was signed by that agent's key)",
                    reg.agent_id, cur.agent_id
                ),
            ),
            (Some(cur), _, Some(by)) => self.agent_event(
                &req.device_id,
                EventKind::AgentReplaced,
                Outcome::Success,
                format!(
                    "agent {} registered, replacing agent {} (allowed by {by}'s agent-install --replace)",
                    reg.agent_id, cur.agent_id
                ),
            ),
            (Some(cur), _, None) => {
                let event = self.agent_event(
                    &req.device_id,
                    EventKind::AgentRegistrationRefused,
                    Outcome::Refused,
                    format!(
                        "this Mac already has agent {}; the registration was not signed by it and the install \
                         was not queued with --replace",
                        cur.agent_id
                    ),
                );
                self.store.record_event(&event).await?;
                return Err(ServiceError::Conflict(format!(
                    "registration refused: this Mac already has a registered agent ({}). Re-register from that \
                     agent (`escrow-agent register --force` signs the request with its current key), or have an \
                     admin queue a new install with `escrowd agent-install {} --replace`",
                    cur.agent_id, req.device_id
                )));
            }
        };
        let replaces = current.as_ref().map(|c| c.agent_id.as_str());
        if self
            .store
            .register_agent(&hash, &reg, replaces, &event)
            .await?
        {
            return Ok(RegisterResponse {
                agent_id: reg.agent_id,
            });
        }
        // The secret was claimed or the agent changed meanwhile.
        let event = refuse_secret("used or the Mac's agent changed meanwhile");
        self.store.record_event(&event).await?;
        Err(secret_refused())
    }

    /// Verify a signed agent request; on failure count `agent.auth_failed` for `source` (per hour, never a
    /// row per request: `crate::edge`) and refuse.
    pub async fn agent_verify(
        &self,
        req: &SignedRequest<'_>,
        source: &crate::edge::Source,
    ) -> Result<AgentRegistration, ServiceError> {
        match self.agent_verify_inner(req).await {
            Ok(reg) => Ok(reg),
            Err((subject, err)) => {
                // The path without its query: the query is the caller's and may be anything.
                let path = req.path.split('?').next().unwrap_or_default();
                let detail = format!("{subject}: {} {path}: {err}", req.method);
                self.note_refusal(EventKind::AgentAuthFailed, source, &detail);
                Err(err)
            }
        }
    }

    async fn agent_verify_inner(
        &self,
        req: &SignedRequest<'_>,
    ) -> Result<AgentRegistration, (String, ServiceError)> {
        let unknown = |e: ServiceError| ("unknown".to_string(), e);
        let unauth = |m: &str| ServiceError::Unauthorized(m.to_string());
        let Some(reg) = self
            .store
            .agent(req.agent_id)
            .await
            .map_err(|e| unknown(e.into()))?
        else {
            return Err(unknown(unauth("unknown agent: register it again")));
        };
        let device = reg.device_id.clone();
        let fail = |m: &str| (device.clone(), unauth(m));
        let ts: i64 = req
            .timestamp
            .parse()
            .map_err(|_| fail("timestamp must be unix seconds"))?;
        let now = self.now();
        if (ts.saturating_mul(1000) - now).abs() > MAX_CLOCK_SKEW_MS {
            return Err(fail(
                "stale timestamp: more than 5 minutes off the server's clock",
            ));
        }
        if req.nonce.len() < 16
            || req.nonce.len() > 128
            || !req.nonce.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(fail("nonce must be 16-128 letters or digits"));
        }
        let sig = B64
            .decode(req.signature)
            .map_err(|_| fail("signature is not base64"))?;
        let message = signing_message(
            req.method,
            req.path,
            ts,
            req.nonce,
            &hex::encode(sha256(req.body)),
        );
        if !agentwire::verify_signature(&reg.signing_key, &message, &sig) {
            return Err(fail("bad signature"));
        }
        let fresh = self
            .store
            .claim_agent_nonce(&reg.agent_id, req.nonce, now, now - 2 * MAX_CLOCK_SKEW_MS)
            .await
            .map_err(|e| (device.clone(), e.into()))?;
        if !fresh {
            return Err(fail("replayed nonce"));
        }
        self.store
            .touch_agent(&reg.agent_id, now)
            .await
            .map_err(|e| (device.clone(), e.into()))?;
        Ok(reg)
    }

    /// `GET /agent/v1/actions[?wait=N]`: the device's open actions (queued ones become delivered). With a
    /// wait (capped at [`MAX_POLL_WAIT`]) and nothing to do, the answer is held until an action is queued for
    /// the device (the nudge) or the wait ends, so an agent hears of new work at once without polling often.
    pub async fn agent_poll(
        &self,
        agent: &AgentRegistration,
        wait: Duration,
    ) -> Result<AgentActionsResponse, ServiceError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_POLL_WAIT);
        let nudge = self.agent_nudges.subscribe(&agent.device_id);
        let actions = loop {
            // Armed before the store is read, so an action queued in between still wakes this poll.
            let notified = nudge.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = self
                .store
                .deliver_agent_actions(&agent.device_id, self.now())
                .await;
            match found {
                Ok(a) if a.is_empty() && tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
                other => break other,
            }
        };
        drop(nudge);
        let actions = actions?;
        let actions = actions
            .into_iter()
            .map(|a| AgentActionWire {
                params: serde_json::from_str(&a.params).unwrap_or(serde_json::Value::Null),
                sealed: a.sealed.as_deref().map(|s| B64.encode(s)),
                id: a.id,
                kind: a.kind,
            })
            .collect();
        Ok(AgentActionsResponse { actions })
    }

    /// `POST /agent/v1/actions/{id}/result`.
    pub async fn agent_action_result(
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
    pub async fn agent_escrow_report(
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
    pub async fn agent_inventory(
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

    /// Create an action: expand wildcards, seal the credentials to the device agent's HPKE key at once.
    pub async fn admin_create_action(
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
        Ok(action)
    }

    pub async fn admin_actions(
        &self,
        device_id: &str,
        limit: u32,
    ) -> Result<Vec<AgentAction>, ServiceError> {
        self.store.expire_agent_actions(self.now()).await?;
        Ok(self.store.agent_actions(device_id, limit).await?)
    }

    pub async fn admin_action(
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

    pub async fn admin_cancel_action(
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

    /// The device's registered agent, if any.
    pub async fn admin_agent(
        &self,
        device_id: &str,
    ) -> Result<Option<AgentRegistration>, ServiceError> {
        Ok(self.store.agent_for_device(device_id).await?)
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

fn secret_refused() -> ServiceError {
    ServiceError::Unauthorized(
        "registration refused: the secret is unknown, already used, revoked by a newer install, expired or for \
         another device; queue a new agent install for this device"
            .into(),
    )
}

/// `86400000` as `24 h`, `90000` as `90 s`.
fn human_ms(ms: Millis) -> String {
    let s = ms / 1000;
    if s % 3600 == 0 {
        format!("{} h", s / 3600)
    } else if s % 60 == 0 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
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

/// Wakes agents whose poll is waiting for work. In-process only: with several escrowd processes behind a
/// balancer, an agent waiting on another process hears of the action at its next poll instead.
#[derive(Default)]
pub(crate) struct AgentNudges {
    waiting: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// One waiting poll; dropping it (also when the agent hangs up mid-wait) forgets the device once nobody
/// else waits on it.
struct NudgeSubscription<'a> {
    nudges: &'a AgentNudges,
    device_id: String,
    notify: Arc<tokio::sync::Notify>,
}

impl Drop for NudgeSubscription<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .nudges
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: nobody else is waiting.
        if waiting
            .get(&self.device_id)
            .is_some_and(|n| Arc::strong_count(n) == 2)
        {
            waiting.remove(&self.device_id);
        }
    }
}

impl AgentNudges {
    fn subscribe(&self, device_id: &str) -> NudgeSubscription<'_> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let notify = waiting.entry(device_id.to_string()).or_default().clone();
        NudgeSubscription {
            nudges: self,
            device_id: device_id.to_string(),
            notify,
        }
    }

    #[cfg(test)]
    fn waiting_devices(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn wake(&self, device_id: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waiting.get(device_id) {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod nudge_tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_waiter_and_the_device_is_forgotten_after_the_last() {
        let nudges = AgentNudges::default();
        let first = nudges.subscribe("MAC");
        let second = nudges.subscribe("MAC");
        let other = nudges.subscribe("OTHER");
        {
            let (a, b, c) = (
                first.notify.notified(),
                second.notify.notified(),
                other.notify.notified(),
            );
            tokio::pin!(a, b, c);
            for n in [a.as_mut(), b.as_mut(), c.as_mut()] {
                n.enable();
            }
            nudges.wake("MAC");
            a.await;
            b.await;
            // OTHER was not woken.
            assert!(
                tokio::time::timeout(Duration::from_millis(20), c)
                    .await
                    .is_err()
            );
        }
        drop(first);
        assert_eq!(nudges.waiting_devices(), 2, "MAC still has a waiter");
        drop((second, other));
        assert_eq!(nudges.waiting_devices(), 0);
        // Waking a device nobody waits on is a no-op.
        nudges.wake("MAC");
    }
}
