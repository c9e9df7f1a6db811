# rename-kinds.sed: turns the old event-kind constants (service::events::X, inventory::X, ...) into
# store::EventKind variants (re-exported as service::EventKind / crate::EventKind inside service).
# Usage: sed -i -E -f tools/rename-kinds.sed $(git ls-files 'crates/*.rs' | grep -v '^crates/store/') && cargo fmt --all
# Idempotent: running it on code that already uses EventKind changes nothing.

# 1. whole `use crate::events::{...};` lines (one line) become the enum import
s/^use (crate|service)::events::[^;]*;$/use \1::EventKind;/
# 2. `events` in a `use crate::{...}` list (one line, or inside a multi-line block) becomes EventKind
/^use crate::\{.*\};$/s/\bevents\b/EventKind/
/^use crate::\{$/,/^\};$/s/\bevents\b/EventKind/
# 2b. the old definitions go (their `///` lines above are left: delete them by hand, the compiler points at
#    them); also `git rm crates/service/src/events.rs` and drop `pub mod events;` from service/src/lib.rs.
/^pub const INVENTORY_REJECTED: &str = "/d
/^pub const INVENTORY_UPDATED: &str = "/d
/^pub const INVENTORY_QUEUE_FAILED: &str = "/d
/^pub const ENROLL_TOKEN_CREATED: &str = "/d
/^pub const ENROLL_TOKEN_REVOKED: &str = "/d
/^pub const ENROLL_PROFILE_SERVED: &str = "/d
/^pub const ENROLL_REFUSED: &str = "/d
/^pub const GROUP_PROFILE_SERVED: &str = "/d
/^pub const AGENT_INSTALL_QUEUED: &str = "/d
/^pub const AGENT_REGISTERED: &str = "/d
/^pub const AGENT_REGISTRATION_REFUSED: &str = "/d
/^pub const AGENT_AUTH_FAILED: &str = "/d
/^pub const AGENT_ACTION_CREATED: &str = "/d
/^pub const AGENT_ACTION_FINISHED: &str = "/d
/^pub const AGENT_ACTION_CANCELLED: &str = "/d
/^pub const AGENT_INVENTORY: &str = "/d
/^pub const AGENT_TROUBLESHOOT: &str = "/d
/^pub const AGENT_SELF_SERVICE_ESCROW: &str = "/d
/^pub const ENROLLMENT_AUTHENTICATED: &str = "/d
/^pub const ENROLLMENT_IDENTITY_RENEWED: &str = "/d
/^pub const ENROLLMENT_TOKEN_UPDATE: &str = "/d
/^pub const ENROLLMENT_COMPLETED: &str = "/d
/^pub const ENROLLMENT_USER_CHANNEL: &str = "/d
/^pub const ENROLLMENT_CHECKED_OUT: &str = "/d
/^pub const AUTH_FAILED: &str = "/d
/^pub const BOOTSTRAP_ESCROWED: &str = "/d
/^pub const BOOTSTRAP_REPLACED: &str = "/d
/^pub const BOOTSTRAP_CLEARED: &str = "/d
/^pub const BOOTSTRAP_ESCROW_REFUSED: &str = "/d
/^pub const BOOTSTRAP_REQUESTED: &str = "/d
/^pub const COMMAND_QUEUED: &str = "/d
/^pub const COMMAND_RESULT: &str = "/d
/^pub const CHECKIN_UNSUPPORTED: &str = "/d
/^pub const SCEP_ISSUED: &str = "/d
/^pub const SCEP_REFUSED: &str = "/d
/^pub const IDENTITY_PENDING: &str = "/d
/^pub const IDENTITY_PENDING_REFUSED: &str = "/d
/^pub const IDENTITY_APPROVED: &str = "/d
/^pub const DEVICE_BLOCKED: &str = "/d
/^pub const DEVICE_UNBLOCKED: &str = "/d
/^pub const DEVICE_UNENROLLED: &str = "/d
/^pub const FORWARDED_CERT_UNTRUSTED: &str = "/d
/^pub const AGENT_REPLACE_AUTHORIZED: &str = "/d
/^pub const AGENT_REPLACED: &str = "/d
/^pub const COMMAND_SEALED_PAYLOAD_UNREADABLE: &str = "/d
/^pub const ACCOUNT_CONFIGURATION_QUEUED: &str = "/d
/^pub const ACCOUNT_CONFIGURATION_FAILED: &str = "/d
/^pub const GROUP_ACCOUNTS_UPDATED: &str = "/d
/^pub const IDENTITY_RENEWAL_QUEUED: &str = "/d
/^pub const IDENTITY_RENEWAL_GRACE: &str = "/d
/^pub const APIKEY_CREATED: &str = "/d
/^pub const APIKEY_REVOKED: &str = "/d
/^pub const PUSH_TOKEN_INVALID: &str = "/d
/^pub const GROUP_CREATED: &str = "/d
/^pub const GROUP_UPDATED: &str = "/d
/^pub const GROUP_DELETED: &str = "/d
/^pub const GROUP_MEMBERSHIP: &str = "/d
/^pub const COMMAND_ENQUEUED: &str = "/d
/^pub const COMMAND_REFUSED: &str = "/d
/^pub const PUSH_SENT: &str = "/d
/^pub const TOKEN_CLEARED: &str = "/d
# 3. qualified and bare constant names (a module that used its own constants bare needs
#    `use crate::EventKind;`; the compiler names it)
s/\b(crate|service)::(inventory::)?INVENTORY_REJECTED\b/\1::EventKind::InventoryRejected/g
s/\b(inventory::)?INVENTORY_REJECTED\b/EventKind::InventoryRejected/g
s/\b(crate|service)::(inventory::)?INVENTORY_UPDATED\b/\1::EventKind::InventoryUpdated/g
s/\b(inventory::)?INVENTORY_UPDATED\b/EventKind::InventoryUpdated/g
s/\b(crate|service)::(inventory::)?INVENTORY_QUEUE_FAILED\b/\1::EventKind::InventoryQueueFailed/g
s/\b(inventory::)?INVENTORY_QUEUE_FAILED\b/EventKind::InventoryQueueFailed/g
s/\b(crate|service)::(enroll::)?ENROLL_TOKEN_CREATED\b/\1::EventKind::EnrollTokenCreated/g
s/\b(enroll::)?ENROLL_TOKEN_CREATED\b/EventKind::EnrollTokenCreated/g
s/\b(crate|service)::(enroll::)?ENROLL_TOKEN_REVOKED\b/\1::EventKind::EnrollTokenRevoked/g
s/\b(enroll::)?ENROLL_TOKEN_REVOKED\b/EventKind::EnrollTokenRevoked/g
s/\b(crate|service)::(enroll::)?ENROLL_PROFILE_SERVED\b/\1::EventKind::EnrollProfileServed/g
s/\b(enroll::)?ENROLL_PROFILE_SERVED\b/EventKind::EnrollProfileServed/g
s/\b(crate|service)::(enroll::)?ENROLL_REFUSED\b/\1::EventKind::EnrollRefused/g
s/\b(enroll::)?ENROLL_REFUSED\b/EventKind::EnrollRefused/g
s/\b(crate|service)::(enroll::)?GROUP_PROFILE_SERVED\b/\1::EventKind::GroupProfileServed/g
s/\b(enroll::)?GROUP_PROFILE_SERVED\b/EventKind::GroupProfileServed/g
s/\b(crate|service)::(agent::)?AGENT_INSTALL_QUEUED\b/\1::EventKind::AgentInstallQueued/g
s/\b(agent::)?AGENT_INSTALL_QUEUED\b/EventKind::AgentInstallQueued/g
s/\b(crate|service)::(agent::)?AGENT_REGISTERED\b/\1::EventKind::AgentRegistered/g
s/\b(agent::)?AGENT_REGISTERED\b/EventKind::AgentRegistered/g
s/\b(crate|service)::(agent::)?AGENT_REGISTRATION_REFUSED\b/\1::EventKind::AgentRegistrationRefused/g
s/\b(agent::)?AGENT_REGISTRATION_REFUSED\b/EventKind::AgentRegistrationRefused/g
s/\b(crate|service)::(agent::)?AGENT_AUTH_FAILED\b/\1::EventKind::AgentAuthFailed/g
s/\b(agent::)?AGENT_AUTH_FAILED\b/EventKind::AgentAuthFailed/g
s/\b(crate|service)::(agent::)?AGENT_ACTION_CREATED\b/\1::EventKind::AgentActionCreated/g
s/\b(agent::)?AGENT_ACTION_CREATED\b/EventKind::AgentActionCreated/g
s/\b(crate|service)::(agent::)?AGENT_ACTION_FINISHED\b/\1::EventKind::AgentActionFinished/g
s/\b(agent::)?AGENT_ACTION_FINISHED\b/EventKind::AgentActionFinished/g
s/\b(crate|service)::(agent::)?AGENT_ACTION_CANCELLED\b/\1::EventKind::AgentActionCancelled/g
s/\b(agent::)?AGENT_ACTION_CANCELLED\b/EventKind::AgentActionCancelled/g
s/\b(crate|service)::(agent::)?AGENT_INVENTORY\b/\1::EventKind::AgentInventory/g
s/\b(agent::)?AGENT_INVENTORY\b/EventKind::AgentInventory/g
s/\b(crate|service)::(agent::)?AGENT_TROUBLESHOOT\b/\1::EventKind::AgentTroubleshoot/g
s/\b(agent::)?AGENT_TROUBLESHOOT\b/EventKind::AgentTroubleshoot/g
s/\b(crate|service)::(agent::)?AGENT_SELF_SERVICE_ESCROW\b/\1::EventKind::AgentSelfServiceEscrow/g
s/\b(agent::)?AGENT_SELF_SERVICE_ESCROW\b/EventKind::AgentSelfServiceEscrow/g
s/\b(crate|service)::(events::)?ENROLLMENT_AUTHENTICATED\b/\1::EventKind::EnrollmentAuthenticated/g
s/\b(events::)?ENROLLMENT_AUTHENTICATED\b/EventKind::EnrollmentAuthenticated/g
s/\b(crate|service)::(events::)?ENROLLMENT_IDENTITY_RENEWED\b/\1::EventKind::EnrollmentIdentityRenewed/g
s/\b(events::)?ENROLLMENT_IDENTITY_RENEWED\b/EventKind::EnrollmentIdentityRenewed/g
s/\b(crate|service)::(events::)?ENROLLMENT_TOKEN_UPDATE\b/\1::EventKind::EnrollmentTokenUpdate/g
s/\b(events::)?ENROLLMENT_TOKEN_UPDATE\b/EventKind::EnrollmentTokenUpdate/g
s/\b(crate|service)::(events::)?ENROLLMENT_COMPLETED\b/\1::EventKind::EnrollmentCompleted/g
s/\b(events::)?ENROLLMENT_COMPLETED\b/EventKind::EnrollmentCompleted/g
s/\b(crate|service)::(events::)?ENROLLMENT_USER_CHANNEL\b/\1::EventKind::EnrollmentUserChannel/g
s/\b(events::)?ENROLLMENT_USER_CHANNEL\b/EventKind::EnrollmentUserChannel/g
s/\b(crate|service)::(events::)?ENROLLMENT_CHECKED_OUT\b/\1::EventKind::EnrollmentCheckedOut/g
s/\b(events::)?ENROLLMENT_CHECKED_OUT\b/EventKind::EnrollmentCheckedOut/g
s/\b(crate|service)::(events::)?AUTH_FAILED\b/\1::EventKind::AuthFailed/g
s/\b(events::)?AUTH_FAILED\b/EventKind::AuthFailed/g
s/\b(crate|service)::(events::)?BOOTSTRAP_ESCROWED\b/\1::EventKind::BootstrapEscrowed/g
s/\b(events::)?BOOTSTRAP_ESCROWED\b/EventKind::BootstrapEscrowed/g
s/\b(crate|service)::(events::)?BOOTSTRAP_REPLACED\b/\1::EventKind::BootstrapReplaced/g
s/\b(events::)?BOOTSTRAP_REPLACED\b/EventKind::BootstrapReplaced/g
s/\b(crate|service)::(events::)?BOOTSTRAP_CLEARED\b/\1::EventKind::BootstrapCleared/g
s/\b(events::)?BOOTSTRAP_CLEARED\b/EventKind::BootstrapCleared/g
s/\b(crate|service)::(events::)?BOOTSTRAP_ESCROW_REFUSED\b/\1::EventKind::BootstrapEscrowRefused/g
s/\b(events::)?BOOTSTRAP_ESCROW_REFUSED\b/EventKind::BootstrapEscrowRefused/g
s/\b(crate|service)::(events::)?BOOTSTRAP_REQUESTED\b/\1::EventKind::BootstrapRequested/g
s/\b(events::)?BOOTSTRAP_REQUESTED\b/EventKind::BootstrapRequested/g
s/\b(crate|service)::(events::)?COMMAND_QUEUED\b/\1::EventKind::CommandQueued/g
s/\b(events::)?COMMAND_QUEUED\b/EventKind::CommandQueued/g
s/\b(crate|service)::(events::)?COMMAND_RESULT\b/\1::EventKind::CommandResult/g
s/\b(events::)?COMMAND_RESULT\b/EventKind::CommandResult/g
s/\b(crate|service)::(events::)?CHECKIN_UNSUPPORTED\b/\1::EventKind::CheckinUnsupported/g
s/\b(events::)?CHECKIN_UNSUPPORTED\b/EventKind::CheckinUnsupported/g
s/\b(crate|service)::(events::)?SCEP_ISSUED\b/\1::EventKind::ScepIssued/g
s/\b(events::)?SCEP_ISSUED\b/EventKind::ScepIssued/g
s/\b(crate|service)::(events::)?SCEP_REFUSED\b/\1::EventKind::ScepRefused/g
s/\b(events::)?SCEP_REFUSED\b/EventKind::ScepRefused/g
s/\b(crate|service)::(events::)?IDENTITY_PENDING\b/\1::EventKind::IdentityPending/g
s/\b(events::)?IDENTITY_PENDING\b/EventKind::IdentityPending/g
s/\b(crate|service)::(events::)?IDENTITY_PENDING_REFUSED\b/\1::EventKind::IdentityPendingRefused/g
s/\b(events::)?IDENTITY_PENDING_REFUSED\b/EventKind::IdentityPendingRefused/g
s/\b(crate|service)::(events::)?IDENTITY_APPROVED\b/\1::EventKind::IdentityApproved/g
s/\b(events::)?IDENTITY_APPROVED\b/EventKind::IdentityApproved/g
s/\b(crate|service)::(events::)?DEVICE_BLOCKED\b/\1::EventKind::DeviceBlocked/g
s/\b(events::)?DEVICE_BLOCKED\b/EventKind::DeviceBlocked/g
s/\b(crate|service)::(events::)?DEVICE_UNBLOCKED\b/\1::EventKind::DeviceUnblocked/g
s/\b(events::)?DEVICE_UNBLOCKED\b/EventKind::DeviceUnblocked/g
s/\b(crate|service)::(events::)?DEVICE_UNENROLLED\b/\1::EventKind::DeviceUnenrolled/g
s/\b(events::)?DEVICE_UNENROLLED\b/EventKind::DeviceUnenrolled/g
s/\b(crate|service)::(events::)?FORWARDED_CERT_UNTRUSTED\b/\1::EventKind::ForwardedCertUntrusted/g
s/\b(events::)?FORWARDED_CERT_UNTRUSTED\b/EventKind::ForwardedCertUntrusted/g
s/\b(crate|service)::(events::)?AGENT_REPLACE_AUTHORIZED\b/\1::EventKind::AgentReplaceAuthorized/g
s/\b(events::)?AGENT_REPLACE_AUTHORIZED\b/EventKind::AgentReplaceAuthorized/g
s/\b(crate|service)::(events::)?AGENT_REPLACED\b/\1::EventKind::AgentReplaced/g
s/\b(events::)?AGENT_REPLACED\b/EventKind::AgentReplaced/g
s/\b(crate|service)::(events::)?COMMAND_SEALED_PAYLOAD_UNREADABLE\b/\1::EventKind::CommandSealedPayloadUnreadable/g
s/\b(events::)?COMMAND_SEALED_PAYLOAD_UNREADABLE\b/EventKind::CommandSealedPayloadUnreadable/g
s/\b(crate|service)::(events::)?ACCOUNT_CONFIGURATION_QUEUED\b/\1::EventKind::AccountConfigurationQueued/g
s/\b(events::)?ACCOUNT_CONFIGURATION_QUEUED\b/EventKind::AccountConfigurationQueued/g
s/\b(crate|service)::(events::)?ACCOUNT_CONFIGURATION_FAILED\b/\1::EventKind::AccountConfigurationFailed/g
s/\b(events::)?ACCOUNT_CONFIGURATION_FAILED\b/EventKind::AccountConfigurationFailed/g
s/\b(crate|service)::(events::)?GROUP_ACCOUNTS_UPDATED\b/\1::EventKind::GroupAccountsUpdated/g
s/\b(events::)?GROUP_ACCOUNTS_UPDATED\b/EventKind::GroupAccountsUpdated/g
s/\b(crate|service)::(events::)?IDENTITY_RENEWAL_QUEUED\b/\1::EventKind::IdentityRenewalQueued/g
s/\b(events::)?IDENTITY_RENEWAL_QUEUED\b/EventKind::IdentityRenewalQueued/g
s/\b(crate|service)::(events::)?IDENTITY_RENEWAL_GRACE\b/\1::EventKind::IdentityRenewalGrace/g
s/\b(events::)?IDENTITY_RENEWAL_GRACE\b/EventKind::IdentityRenewalGrace/g
s/\b(crate|service)::(apikeys::)?APIKEY_CREATED\b/\1::EventKind::ApikeyCreated/g
s/\b(apikeys::)?APIKEY_CREATED\b/EventKind::ApikeyCreated/g
s/\b(crate|service)::(apikeys::)?APIKEY_REVOKED\b/\1::EventKind::ApikeyRevoked/g
s/\b(apikeys::)?APIKEY_REVOKED\b/EventKind::ApikeyRevoked/g
s/\b(crate|service)::(push::)?PUSH_TOKEN_INVALID\b/\1::EventKind::PushTokenInvalid/g
s/\b(push::)?PUSH_TOKEN_INVALID\b/EventKind::PushTokenInvalid/g
s/\b(crate|service)::(admin::)?GROUP_CREATED\b/\1::EventKind::GroupCreated/g
s/\b(admin::)?GROUP_CREATED\b/EventKind::GroupCreated/g
s/\b(crate|service)::(admin::)?GROUP_UPDATED\b/\1::EventKind::GroupUpdated/g
s/\b(admin::)?GROUP_UPDATED\b/EventKind::GroupUpdated/g
s/\b(crate|service)::(admin::)?GROUP_DELETED\b/\1::EventKind::GroupDeleted/g
s/\b(admin::)?GROUP_DELETED\b/EventKind::GroupDeleted/g
s/\b(crate|service)::(admin::)?GROUP_MEMBERSHIP\b/\1::EventKind::GroupMembership/g
s/\b(admin::)?GROUP_MEMBERSHIP\b/EventKind::GroupMembership/g
s/\b(crate|service)::(admin::)?COMMAND_ENQUEUED\b/\1::EventKind::CommandEnqueued/g
s/\b(admin::)?COMMAND_ENQUEUED\b/EventKind::CommandEnqueued/g
s/\b(crate|service)::(admin::)?COMMAND_REFUSED\b/\1::EventKind::CommandRefused/g
s/\b(admin::)?COMMAND_REFUSED\b/EventKind::CommandRefused/g
s/\b(crate|service)::(admin::)?PUSH_SENT\b/\1::EventKind::PushSent/g
s/\b(admin::)?PUSH_SENT\b/EventKind::PushSent/g
s/\b(crate|service)::(admin::)?TOKEN_CLEARED\b/\1::EventKind::TokenCleared/g
s/\b(admin::)?TOKEN_CLEARED\b/EventKind::TokenCleared/g
# 3b. a NewEvent literal in tests: `kind: "<text>".into()` becomes the variant (test-only placeholder texts too)
s/\bkind: "inventory\.rejected"\.into\(\)/kind: store::EventKind::InventoryRejected/g
s/\bkind: "inventory\.updated"\.into\(\)/kind: store::EventKind::InventoryUpdated/g
s/\bkind: "inventory\.queue_failed"\.into\(\)/kind: store::EventKind::InventoryQueueFailed/g
s/\bkind: "admin\.enroll_token\.created"\.into\(\)/kind: store::EventKind::EnrollTokenCreated/g
s/\bkind: "admin\.enroll_token\.revoked"\.into\(\)/kind: store::EventKind::EnrollTokenRevoked/g
s/\bkind: "enroll\.profile_served"\.into\(\)/kind: store::EventKind::EnrollProfileServed/g
s/\bkind: "enroll\.refused"\.into\(\)/kind: store::EventKind::EnrollRefused/g
s/\bkind: "admin\.group\.profile"\.into\(\)/kind: store::EventKind::GroupProfileServed/g
s/\bkind: "agent\.install_queued"\.into\(\)/kind: store::EventKind::AgentInstallQueued/g
s/\bkind: "agent\.registered"\.into\(\)/kind: store::EventKind::AgentRegistered/g
s/\bkind: "agent\.registration_refused"\.into\(\)/kind: store::EventKind::AgentRegistrationRefused/g
s/\bkind: "agent\.auth_failed"\.into\(\)/kind: store::EventKind::AgentAuthFailed/g
s/\bkind: "agent\.action_created"\.into\(\)/kind: store::EventKind::AgentActionCreated/g
s/\bkind: "agent\.action_finished"\.into\(\)/kind: store::EventKind::AgentActionFinished/g
s/\bkind: "agent\.action_cancelled"\.into\(\)/kind: store::EventKind::AgentActionCancelled/g
s/\bkind: "agent\.inventory"\.into\(\)/kind: store::EventKind::AgentInventory/g
s/\bkind: "agent\.troubleshoot"\.into\(\)/kind: store::EventKind::AgentTroubleshoot/g
s/\bkind: "agent\.self_service_escrow"\.into\(\)/kind: store::EventKind::AgentSelfServiceEscrow/g
s/\bkind: "enrollment\.authenticated"\.into\(\)/kind: store::EventKind::EnrollmentAuthenticated/g
s/\bkind: "enrollment\.identity_renewed"\.into\(\)/kind: store::EventKind::EnrollmentIdentityRenewed/g
s/\bkind: "enrollment\.token_update"\.into\(\)/kind: store::EventKind::EnrollmentTokenUpdate/g
s/\bkind: "enrollment\.completed"\.into\(\)/kind: store::EventKind::EnrollmentCompleted/g
s/\bkind: "enrollment\.user_channel"\.into\(\)/kind: store::EventKind::EnrollmentUserChannel/g
s/\bkind: "enrollment\.checked_out"\.into\(\)/kind: store::EventKind::EnrollmentCheckedOut/g
s/\bkind: "auth\.failed"\.into\(\)/kind: store::EventKind::AuthFailed/g
s/\bkind: "bootstrap_token\.escrowed"\.into\(\)/kind: store::EventKind::BootstrapEscrowed/g
s/\bkind: "bootstrap_token\.replaced"\.into\(\)/kind: store::EventKind::BootstrapReplaced/g
s/\bkind: "bootstrap_token\.cleared"\.into\(\)/kind: store::EventKind::BootstrapCleared/g
s/\bkind: "bootstrap_token\.escrow_refused"\.into\(\)/kind: store::EventKind::BootstrapEscrowRefused/g
s/\bkind: "bootstrap_token\.requested"\.into\(\)/kind: store::EventKind::BootstrapRequested/g
s/\bkind: "command\.queued"\.into\(\)/kind: store::EventKind::CommandQueued/g
s/\bkind: "command\.result"\.into\(\)/kind: store::EventKind::CommandResult/g
s/\bkind: "checkin\.unsupported"\.into\(\)/kind: store::EventKind::CheckinUnsupported/g
s/\bkind: "scep\.issued"\.into\(\)/kind: store::EventKind::ScepIssued/g
s/\bkind: "scep\.refused"\.into\(\)/kind: store::EventKind::ScepRefused/g
s/\bkind: "identity\.pending"\.into\(\)/kind: store::EventKind::IdentityPending/g
s/\bkind: "identity\.pending_refused"\.into\(\)/kind: store::EventKind::IdentityPendingRefused/g
s/\bkind: "identity\.approved"\.into\(\)/kind: store::EventKind::IdentityApproved/g
s/\bkind: "device\.blocked"\.into\(\)/kind: store::EventKind::DeviceBlocked/g
s/\bkind: "device\.unblocked"\.into\(\)/kind: store::EventKind::DeviceUnblocked/g
s/\bkind: "device\.unenrolled"\.into\(\)/kind: store::EventKind::DeviceUnenrolled/g
s/\bkind: "edge\.forwarded_cert_untrusted"\.into\(\)/kind: store::EventKind::ForwardedCertUntrusted/g
s/\bkind: "agent\.replace_authorized"\.into\(\)/kind: store::EventKind::AgentReplaceAuthorized/g
s/\bkind: "agent\.replaced"\.into\(\)/kind: store::EventKind::AgentReplaced/g
s/\bkind: "command\.sealed_payload_unreadable"\.into\(\)/kind: store::EventKind::CommandSealedPayloadUnreadable/g
s/\bkind: "account\.configuration_queued"\.into\(\)/kind: store::EventKind::AccountConfigurationQueued/g
s/\bkind: "account\.configuration_failed"\.into\(\)/kind: store::EventKind::AccountConfigurationFailed/g
s/\bkind: "admin\.group\.accounts"\.into\(\)/kind: store::EventKind::GroupAccountsUpdated/g
s/\bkind: "identity\.renewal_queued"\.into\(\)/kind: store::EventKind::IdentityRenewalQueued/g
s/\bkind: "identity\.renewal_grace"\.into\(\)/kind: store::EventKind::IdentityRenewalGrace/g
s/\bkind: "admin\.apikey\.created"\.into\(\)/kind: store::EventKind::ApikeyCreated/g
s/\bkind: "admin\.apikey\.revoked"\.into\(\)/kind: store::EventKind::ApikeyRevoked/g
s/\bkind: "push\.token_invalid"\.into\(\)/kind: store::EventKind::PushTokenInvalid/g
s/\bkind: "admin\.group\.created"\.into\(\)/kind: store::EventKind::GroupCreated/g
s/\bkind: "admin\.group\.updated"\.into\(\)/kind: store::EventKind::GroupUpdated/g
s/\bkind: "admin\.group\.deleted"\.into\(\)/kind: store::EventKind::GroupDeleted/g
s/\bkind: "admin\.group\.membership"\.into\(\)/kind: store::EventKind::GroupMembership/g
s/\bkind: "admin\.command\.enqueued"\.into\(\)/kind: store::EventKind::CommandEnqueued/g
s/\bkind: "admin\.command\.refused"\.into\(\)/kind: store::EventKind::CommandRefused/g
s/\bkind: "admin\.push"\.into\(\)/kind: store::EventKind::PushSent/g
s/\bkind: "admin\.bootstrap_token\.cleared"\.into\(\)/kind: store::EventKind::TokenCleared/g
s/\bkind: "push_certificate\.uploaded"\.into\(\)/kind: store::EventKind::PushCertificateUploaded/g
s/\bkind: "enrollment\.awaiting_configuration"\.into\(\)/kind: store::EventKind::EnrollmentAwaitingConfiguration/g
s/^( +)kind: "(t|test)"\.into\(\),$/\1kind: store::EventKind::EnrollmentAuthenticated,/
s/^( +)kind: "test\.clear"\.into\(\),$/\1kind: store::EventKind::TokenCleared,/
# 3c. `kind: X.into()` where X was a &str constant: the enum goes in as it is
s/\bkind: (((store|crate|service)::)?EventKind::[A-Za-z]+)\.(into|to_string)\(\)/kind: \1/g
# 4. kinds that were string literals at their one call site (not in tests that pin the API text)
s/(self\.event\(.*|^ *)"enrollment\.awaiting_configuration",$/\1EventKind::EnrollmentAwaitingConfiguration,/
# 5. the event helpers take the enum (MdmService::event, refuse_user_channel, agent_event, audit)
/^    (pub(\(crate\))? )?fn event\($/,/^    }$/s/^( +)kind: kind\.to_string\(\),$/\1kind,/
s/^(    (pub(\(crate\))? )?(async )?fn (event|refuse_user_channel|agent_event|audit)\(.*)\bkind: &str\b/\1kind: EventKind/
/^    (pub(\(crate\))? )?(async )?fn (event|refuse_user_channel|agent_event)\($/,/^    \) -> /s/^        kind: &str,$/        kind: EventKind,/
