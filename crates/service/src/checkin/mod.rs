//! The device endpoints as layers, NanoMDM-style:
//!
//! ```text
//! request (server::mdm: body + credential)
//!   → identity layer (identity::DeviceIdentity: verify the credential, identity continuity) → BoundDevice
//!   → dispatch (dispatch::Dispatch: decode the check-in message type / command report, route)
//!   → focused handlers (enrollment::EnrollmentLifecycle, bootstrap::BootstrapEscrow,
//!     command_channel::CommandChannel), each holding only the store, vault and clock it uses
//!   → follow-ups the dispatcher asks of the rest of the service (inventory, UserList, renewal)
//! ```
//!
//! Order of work for every device request: guard + parse the body (malformed input is refused before any
//! crypto), verify the device's credential against the configured device CAs, then dispatch. Failures change
//! nothing in the store; one that claims a known enrollment is counted as `auth.failed` per source and hour
//! (`crate::edge`), never stored one row per request. Handlers are reached only with a [`BoundDevice`], which
//! only the identity layer makes.

pub(crate) mod bootstrap;
pub(crate) mod command_channel;
mod dispatch;
pub(crate) mod enrollment;
pub(crate) mod identity;

use std::sync::Arc;

use pki::DeviceIdentityVerifier;

use crate::edge::Source;
use crate::{MdmService, ServiceError};

pub use identity::BoundDevice;
pub(crate) use identity::short_fp;

/// How the device proved who it is, as collected by the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub enum DeviceCredential<'a> {
    /// The raw `Mdm-Signature` header (base64 CMS SignedData, detached, over the exact body).
    MdmSignature(&'a [u8]),
    /// DER certificate the device presented in the TLS handshake.
    TlsCertificate(&'a [u8]),
    /// DER certificate forwarded by a TLS-terminating proxy the admin configured as trusted.
    ForwardedCertificate(&'a [u8]),
    /// Nothing: refused.
    None,
}

/// What to answer a check-in with (always a 200).
#[derive(Debug)]
pub enum CheckinReply {
    /// 200 with an empty body.
    Empty,
    /// 200 with an XML plist body (GetBootstrapToken, UserAuthenticate). May contain a secret: never log it.
    Plist(Vec<u8>),
}

/// What to answer a connect request with (always a 200).
#[derive(Debug)]
pub enum ConnectReply {
    /// Nothing queued: a zero-byte body ends the session.
    Idle,
    /// The next command's full plist.
    Command(Vec<u8>),
}

impl MdmService {
    /// The verifier of device credentials (the device CAs), configured once: every check-in and command report
    /// is verified with it. Without one, every device request is refused as unauthenticated.
    pub fn with_device_identity(mut self, verifier: Arc<DeviceIdentityVerifier>) -> Self {
        self.device_verifier = Some(verifier);
        self
    }

    /// Handle one check-in request body (`PUT /mdm/checkin`).
    pub async fn checkin(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        source: &Source,
    ) -> Result<CheckinReply, ServiceError> {
        dispatch::Dispatch::new(self)
            .checkin(credential, body, source)
            .await
    }

    /// Handle one command-channel request body (`PUT /mdm/connect`).
    pub async fn connect(
        &self,
        credential: DeviceCredential<'_>,
        body: &[u8],
        source: &Source,
    ) -> Result<ConnectReply, ServiceError> {
        dispatch::Dispatch::new(self)
            .connect(credential, body, source)
            .await
    }
}

pub(crate) fn plist_xml(value: &plist::Value) -> Result<Vec<u8>, ServiceError> {
    let mut out = Vec::new();
    value
        .to_writer_xml(&mut out)
        .map_err(|e| ServiceError::Internal(format!("encoding reply plist: {e}")))?;
    Ok(out)
}
