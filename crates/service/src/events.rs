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

// Accounts at zero-touch setup (issue 12): AccountConfiguration, the group's managed admin, reset_password.
pub const ACCOUNT_CONFIGURATION_QUEUED: &str = "account.configuration_queued";
pub const ACCOUNT_CONFIGURATION_FAILED: &str = "account.configuration_failed";
pub const GROUP_ACCOUNTS_UPDATED: &str = "admin.group.accounts";
