//! Agent registration: installing the agent's settings with a one-time secret (stored as SHA-256 only, single
//! use, bound to one device, revoked by a newer install, expiring after the acknowledged InstallProfile) and
//! claiming it; a Mac with a registered agent is re-registered only with that agent's signature or `--replace`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::sha::sha256;
use protocol::agent_profile::{AgentSettings, RegisterRequest, RegisterResponse, agent_profile};
use protocol::command::Command;
use store::{AgentRegistration, AgentSecret, Millis, Outcome};
use vault::Secret;

use super::AgentRegistrationRoles;
use super::{AgentInstall, SignedRequest, check_name};
use crate::apikeys::Actor;
use crate::{EventKind, MdmService, Scoped, ServiceError};

impl MdmService {
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
        self.scoped()
            .admin_install_agent(device_id, server_url, replace, by)
            .await
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
        self.scoped().agent_register(body, proof, source).await
    }

    /// The device's registered agent, if any.
    pub async fn admin_agent(
        &self,
        device_id: &str,
    ) -> Result<Option<AgentRegistration>, ServiceError> {
        self.scoped().admin_agent(device_id).await
    }
}

impl<S: ?Sized + AgentRegistrationRoles> Scoped<'_, S> {
    /// Create a one-time registration secret for `device_id`, revoke its earlier unused ones, and queue an
    /// `InstallProfile` carrying the `com.escrowd.agent` payload (ServerURL, RegistrationSecret, DeviceID),
    /// sealed at rest. `replace` (admin scope) lets the registration with this secret replace the Mac's current
    /// agent; it is recorded with an `agent.replace_authorized` event.
    pub(crate) async fn admin_install_agent(
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
        let command_uuid = crate::commands::new_command_uuid();
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
    pub(crate) async fn agent_register(
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

    /// The device's registered agent, if any.
    pub(crate) async fn admin_agent(
        &self,
        device_id: &str,
    ) -> Result<Option<AgentRegistration>, ServiceError> {
        Ok(self.store.agent_for_device(device_id).await?)
    }
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

fn secret_hash(secret: &str) -> String {
    hex::encode(sha256(secret.as_bytes()))
}

fn random_token(bytes: usize) -> Result<String, ServiceError> {
    let mut buf = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut buf)
        .map_err(|e| ServiceError::Internal(format!("random: {e}")))?;
    Ok(hex::encode(buf))
}
