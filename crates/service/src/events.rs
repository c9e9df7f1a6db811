//! Event kinds written by the service. One place, so the API and reports can rely on the names.
//!
//! Event details are built from metadata only (sizes, key ids, reasons); never from a token or a body.
//! [`new_event`] (and `MdmService::event`) is the one builder of a [`NewEvent`] stamped with the clock.

use store::{NewEvent, Outcome};

use crate::{Clock, MdmService};

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

// ---- edge hardening (issue 11): counted per source and hour (`service::edge`), never one row per request.
// Device check-in auth failures (`AUTH_FAILED`), SCEP refusals (`SCEP_REFUSED`), /enroll refusals
// (`enroll::ENROLL_REFUSED`) and agent signature failures (`agent::AGENT_AUTH_FAILED`) are counted under their
// own kinds; this one is only ever counted.

/// A forwarded client certificate header from a peer that is not a `--trusted-proxy` (ignored).
pub const FORWARDED_CERT_UNTRUSTED: &str = "edge.forwarded_cert_untrusted";
// ---- agent registration and secrets inside commands (issue 11)

/// An admin's `agent-install --replace`: a registration with that install's secret may replace the Mac's
/// current agent.
pub const AGENT_REPLACE_AUTHORIZED: &str = "agent.replace_authorized";
/// A registration replaced the Mac's registered agent (proved by that agent's signature, or allowed by
/// `--replace`).
pub const AGENT_REPLACED: &str = "agent.replaced";
/// A queued command carrying a secret whose sealed payload could not be opened: not sent, finished as Error.
pub const COMMAND_SEALED_PAYLOAD_UNREADABLE: &str = "command.sealed_payload_unreadable";

// Accounts at zero-touch setup (issue 12): AccountConfiguration, the group's managed admin, reset_password.
pub const ACCOUNT_CONFIGURATION_QUEUED: &str = "account.configuration_queued";
pub const ACCOUNT_CONFIGURATION_FAILED: &str = "account.configuration_failed";
pub const GROUP_ACCOUNTS_UPDATED: &str = "admin.group.accounts";

// Identity renewal (issue 11, renewal profiles).
/// A renewal profile (the enrollment profile with a one-time challenge minted for the Mac) was queued.
pub const IDENTITY_RENEWAL_QUEUED: &str = "identity.renewal_queued";
/// A still-bound identity past its notAfter (within the grace period) checked in and was answered only with
/// its renewal profile.
pub const IDENTITY_RENEWAL_GRACE: &str = "identity.renewal_grace";

/// An event about `subject` (and the enrollment it concerns), stamped now.
pub(crate) fn new_event(
    clock: &dyn Clock,
    subject: &str,
    enrollment_id: Option<&str>,
    kind: &str,
    outcome: Outcome,
    detail: impl Into<String>,
) -> NewEvent {
    NewEvent {
        subject: subject.to_string(),
        enrollment_id: enrollment_id.map(str::to_string),
        kind: kind.to_string(),
        outcome,
        detail: detail.into(),
        at: clock.now_millis(),
    }
}

impl MdmService {
    /// [`new_event`] with the service's clock.
    pub(crate) fn event(
        &self,
        subject: &str,
        enrollment_id: Option<&str>,
        kind: &str,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> NewEvent {
        new_event(&*self.clock, subject, enrollment_id, kind, outcome, detail)
    }
}
