//! service: the MDM brain, free of HTTP.
//!
//! The server hands this crate a verified device certificate and the exact request body; this crate parses the
//! message, checks that the certificate is bound to the enrollment the message claims, applies group policy and
//! the Bootstrap Token lifecycle, and returns what to answer. It never sees a socket and never picks an HTTP
//! status: `ServiceError::kind()` says what class of failure happened and `server` maps it.

pub mod admin;
pub mod agent;
pub mod apikeys;
pub mod checkin;
pub mod clock;
pub mod commands;
pub mod diagnosis;
pub mod enroll;
pub mod error;
pub mod events;
pub mod identity;
pub mod inventory;
pub mod keys;
pub mod push;
pub mod push_cert;
pub mod renewal;
pub mod reports;
pub mod scep;

mod bootstrap;
mod enrollment;

use std::sync::Arc;

pub use checkin::CheckinReply;
pub use clock::{Clock, SystemClock};
pub use commands::ConnectReply;
pub use error::{ErrorKind, ServiceError};

/// Everything the MDM endpoints need, shared by every request.
#[derive(Clone)]
pub struct MdmService {
    store: Arc<dyn store::Store>,
    vault: Arc<vault::Vault>,
    clock: Arc<dyn Clock>,
    /// Swappable at run time: uploading a push certificate installs a new provider without a restart.
    pusher: Arc<std::sync::RwLock<Option<Arc<dyn push::Pusher>>>>,
    scep: Option<Arc<scep::ScepConfig>>,
    profile_signer: Option<Arc<pki::profile_sign::ProfileSigner>>,
    /// Agents long-polling for actions, woken when one is queued for their device.
    agent_nudges: Arc<agent::AgentNudges>,
    /// Identity renewal (issue 11); None = renewal profiles cannot be queued.
    renewal: Option<Arc<renewal::RenewalSettings>>,
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
            store,
            vault,
            clock,
            pusher: Arc::default(),
            scep: None,
            profile_signer: None,
            agent_nudges: Arc::default(),
            renewal: None,
        }
    }

    pub fn store(&self) -> &Arc<dyn store::Store> {
        &self.store
    }

    pub fn vault(&self) -> &Arc<vault::Vault> {
        &self.vault
    }

    fn now(&self) -> store::Millis {
        self.clock.now_millis()
    }
}
