//! service: the MDM brain, free of HTTP.
//!
//! The server hands this crate a verified device certificate and the exact request body; this crate parses the
//! message, checks that the certificate is bound to the enrollment the message claims, applies group policy and
//! the Bootstrap Token lifecycle, and returns what to answer. It never sees a socket and never picks an HTTP
//! status: `ServiceError::kind()` says what class of failure happened and `server` maps it.

pub mod accounts;
pub mod admin;
pub mod agent;
pub mod apikeys;
pub mod checkin;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod console_admins;
pub mod device_ca;
pub mod device_view;
pub mod diagnosis;
pub mod edge;
pub mod enroll;
pub mod error;
mod events;
pub mod identity;
pub mod inventory;
pub mod keys;
pub mod push;
pub mod push_cert;
pub mod renewal;
pub mod reports;
pub mod scep;
pub mod secrets;
pub mod status;
pub mod telemetry;

use std::sync::Arc;

pub use checkin::{BoundDevice, CheckinReply, ConnectReply};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{ErrorKind, ServiceError};
/// Event kinds are defined once, in `store` (which owns the event schema); re-exported for handlers and `server`.
pub use store::EventKind;

/// Everything the MDM endpoints need, shared by every request.
#[derive(Clone)]
pub struct MdmService {
    store: Arc<dyn store::Store>,
    vault: Arc<vault::Vault>,
    /// Seals and opens by `SecretRef` (over the same store and vault).
    secrets: secrets::Secrets,
    clock: Arc<dyn Clock>,
    /// Swappable at run time: uploading a push certificate installs a new provider without a restart.
    pusher: Arc<std::sync::RwLock<Option<Arc<dyn push::Pusher>>>>,
    scep: Option<Arc<scep::ScepConfig>>,
    profile_signer: Option<Arc<pki::profile_sign::ProfileSigner>>,
    /// Agents long-polling for actions, woken when one is queued for their device.
    agent_nudges: Arc<agent::AgentNudges>,
    /// Refusals of unauthenticated requests, counted in memory until the next flush.
    auth_failures: Arc<edge::AuthFailureTally>,
    /// How long an agent registration secret stays usable once its InstallProfile is on the Mac.
    agent_secret_ttl: store::Millis,
    /// Identity renewal (issue 11); None = renewal profiles cannot be queued.
    renewal: Option<Arc<renewal::RenewalSettings>>,
    /// Verifies device credentials (`checkin::identity`); None = every device request is refused.
    device_verifier: Option<Arc<pki::DeviceIdentityVerifier>>,
    /// This instance's name in signals to other instances on the same database (`cluster`), random per start.
    instance: Arc<str>,
}

impl MdmService {
    pub fn new(store: Arc<dyn store::Store>, vault: Arc<vault::Vault>) -> Self {
        Self::with_clock(store, vault, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<dyn store::Store>,
        vault: Arc<vault::Vault>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        MdmService {
            secrets: secrets::Secrets::new(store.clone(), Arc::clone(&vault), Arc::clone(&clock)),
            store,
            vault,
            clock,
            pusher: Arc::default(),
            scep: None,
            profile_signer: None,
            agent_nudges: Arc::default(),
            auth_failures: Arc::default(),
            agent_secret_ttl: agent::DEFAULT_REGISTRATION_SECRET_TTL_MS,
            renewal: None,
            device_verifier: None,
            instance: uuid::Uuid::new_v4().simple().to_string().into(),
        }
    }

    /// How long an agent registration secret stays usable once the Mac acknowledged the InstallProfile
    /// carrying it (`--agent-secret-ttl`; default 24 h). At least a minute.
    pub fn with_agent_secret_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.agent_secret_ttl = i64::try_from(ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(60_000);
        self
    }

    pub fn store(&self) -> &Arc<dyn store::Store> {
        &self.store
    }

    pub fn vault(&self) -> &Arc<vault::Vault> {
        &self.vault
    }

    pub fn secrets(&self) -> &secrets::Secrets {
        &self.secrets
    }

    /// This service with its store seen as the whole [`store::Store`]; each component's methods narrow it.
    fn scoped(&self) -> Scoped<'_> {
        Scoped {
            store: &*self.store,
            secrets: &self.secrets,
            clock: &*self.clock,
            pusher: &self.pusher,
            scep: &self.scep,
            profile_signer: &self.profile_signer,
            agent_nudges: &self.agent_nudges,
            auth_failures: &self.auth_failures,
            agent_secret_ttl: self.agent_secret_ttl,
            renewal: &self.renewal,
            background: self,
            instance: &self.instance,
        }
    }
}

/// The service as one component sees it: its store narrowed to the roles `S`, plus the parts that are not the
/// store. Each component is an `impl<S: ?Sized + ItsRoles> Scoped<'_, S>` block in its own module, and the
/// `MdmService` methods hand it `&dyn Store` (which has every role): a component that calls a store method
/// outside its roles, or a method of another component whose roles it does not include, does not build.
/// The check-in handlers (`checkin::*`) are the same idea with their own structs.
pub(crate) struct Scoped<'a, S: ?Sized = dyn store::Store> {
    store: &'a S,
    secrets: &'a secrets::Secrets,
    clock: &'a dyn Clock,
    pusher: &'a std::sync::RwLock<Option<Arc<dyn push::Pusher>>>,
    scep: &'a Option<Arc<scep::ScepConfig>>,
    profile_signer: &'a Option<Arc<pki::profile_sign::ProfileSigner>>,
    agent_nudges: &'a agent::AgentNudges,
    auth_failures: &'a edge::AuthFailureTally,
    agent_secret_ttl: store::Millis,
    renewal: &'a Option<Arc<renewal::RenewalSettings>>,
    /// Pushes in the background (with the whole service, which outlives the request).
    background: &'a dyn push::BackgroundPush,
    /// This instance's name in signals to the others (`cluster`).
    instance: &'a str,
}

impl<S: ?Sized> Scoped<'_, S> {
    fn now(&self) -> store::Millis {
        self.clock.now_millis()
    }
}
