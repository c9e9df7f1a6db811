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

mod actions;
mod poll;
mod registration;
mod results;
mod verify;

pub(crate) use poll::AgentNudges;
use std::time::Duration;

use store::{Millis, Outcome};
use vault::Secret;

use crate::{EventKind, Scoped, ServiceError};

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
    /// As the admin typed it; parsed as an [`ActionKind`](protocol::action_kind::ActionKind) after the scope check (an unknown kind is Invalid).
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

fn check_name(what: &str, v: &str) -> Result<(), ServiceError> {
    if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control()) {
        return Err(ServiceError::Invalid(format!(
            "{what} must be 1-255 characters without control characters"
        )));
    }
    Ok(())
}

/// The store roles of the agent's files (their `Scoped` methods). They differ, so each file has its own set:
/// verifying a signed request and polling touch only the agents' tables; registration also reads the
/// enrollment and records events; results also write inventory and queue follow-up commands; the admin's
/// actions also read inventory and signal the other instances.
pub(crate) trait AgentVerifyRoles: store::Agents {}
impl<T: ?Sized + store::Agents> AgentVerifyRoles for T {}

/// `registration.rs`.
pub(crate) trait AgentRegistrationRoles:
    store::Agents + store::Enrollments + store::Events
{
}
impl<T: ?Sized + store::Agents + store::Enrollments + store::Events> AgentRegistrationRoles for T {}

/// `results.rs`.
pub(crate) trait AgentResultRoles:
    store::Agents + store::Commands + store::Events + store::Inventory
{
}
impl<T: ?Sized + store::Agents + store::Commands + store::Events + store::Inventory>
    AgentResultRoles for T
{
}

/// `actions.rs`.
pub(crate) trait AgentActionRoles:
    store::Agents + store::Cluster + store::Enrollments + store::Events + store::Inventory
{
}
impl<
    T: ?Sized + store::Agents + store::Cluster + store::Enrollments + store::Events + store::Inventory,
> AgentActionRoles for T
{
}

impl<S: ?Sized> Scoped<'_, S> {
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
}
