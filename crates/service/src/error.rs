//! Service errors. Each says what went wrong in words an operator can act on; none carries a secret.

use protocol::ProtocolError;

/// The class of a failure, which the HTTP edge maps to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body is not a message we accept (malformed, too deep, wrong types, unknown MessageType).
    BadRequest,
    /// The device's identity is missing, invalid, or not bound to the enrollment it claims. Never a 401.
    Unauthenticated,
    /// Well-formed and authenticated, but policy says no (user channel Set/Get, escrow disabled, checked out).
    Refused,
    /// The body is larger than we accept.
    TooLarge,
    /// Our fault: database or key problems. The device will retry.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A request body we cannot read (outside the plist protocol, e.g. a SCEP message).
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("device identity rejected: {0}")]
    Identity(#[from] pki::IdentityError),
    #[error("device not authenticated: {0}")]
    Unauthenticated(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("vault: {0}")]
    Vault(#[from] vault::VaultError),
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Protocol(ProtocolError::TooLarge { .. }) => ErrorKind::TooLarge,
            ServiceError::Protocol(_) | ServiceError::Malformed(_) => ErrorKind::BadRequest,
            ServiceError::Identity(_) | ServiceError::Unauthenticated(_) => {
                ErrorKind::Unauthenticated
            }
            ServiceError::Refused(_) => ErrorKind::Refused,
            ServiceError::Store(_) | ServiceError::Vault(_) | ServiceError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }
}
