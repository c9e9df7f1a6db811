//! Event kinds written by the service. One place, so the API and reports can rely on the names.
//!
//! Event details are built from metadata only (sizes, key ids, reasons); never from a token or a body.

pub const ENROLLMENT_AUTHENTICATED: &str = "enrollment.authenticated";
pub const ENROLLMENT_IDENTITY_RENEWED: &str = "enrollment.identity_renewed";
pub const ENROLLMENT_TOKEN_UPDATE: &str = "enrollment.token_update";
pub const ENROLLMENT_COMPLETED: &str = "enrollment.completed";
pub const ENROLLMENT_USER_CHANNEL: &str = "enrollment.user_channel";
pub const ENROLLMENT_CHECKED_OUT: &str = "enrollment.checked_out";
pub const AUTH_FAILED: &str = "auth.failed";
pub const BOOTSTRAP_ESCROWED: &str = "bootstrap_token.escrowed";
pub const BOOTSTRAP_REPLACED: &str = "bootstrap_token.replaced";
pub const BOOTSTRAP_CLEARED: &str = "bootstrap_token.cleared";
pub const BOOTSTRAP_ESCROW_REFUSED: &str = "bootstrap_token.escrow_refused";
pub const BOOTSTRAP_REQUESTED: &str = "bootstrap_token.requested";
pub const COMMAND_QUEUED: &str = "command.queued";
pub const COMMAND_RESULT: &str = "command.result";
pub const CHECKIN_UNSUPPORTED: &str = "checkin.unsupported";
pub const SCEP_ISSUED: &str = "scep.issued";
pub const SCEP_REFUSED: &str = "scep.refused";

// Identity continuity (issue 11).
/// A certificate claims an enrolled UDID without proof: recorded as a pending identity.
pub const IDENTITY_PENDING: &str = "identity.pending";
/// The bound certificate checked in again; pending identities of that Mac are refused from then on.
pub const IDENTITY_PENDING_REFUSED: &str = "identity.pending_refused";
/// An admin approved a pending identity: it is now the Mac's, the old token discarded.
pub const IDENTITY_APPROVED: &str = "identity.approved";
pub const DEVICE_BLOCKED: &str = "device.blocked";
pub const DEVICE_UNBLOCKED: &str = "device.unblocked";
pub const DEVICE_UNENROLLED: &str = "device.unenrolled";

// Identity renewal (issue 11, renewal profiles).
/// A renewal profile (the enrollment profile with a one-time challenge minted for the Mac) was queued.
pub const IDENTITY_RENEWAL_QUEUED: &str = "identity.renewal_queued";
/// A still-bound identity past its notAfter (within the grace period) checked in and was answered only with
/// its renewal profile.
pub const IDENTITY_RENEWAL_GRACE: &str = "identity.renewal_grace";
