//! A device as the list and the detail show it, and the small answers of the device routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Millis, str_enum};

str_enum!(
    /// How the Mac enrolled, from SecurityInfo (unknown until the first SecurityInfo answer).
    EnrollmentType {
        UserEnrollment = "user_enrollment",
        AutomatedDeviceEnrollment = "automated_device_enrollment",
        UserApproved = "user_approved",
        Device = "device",
        Unknown = "unknown",
    }
);

str_enum!(
    /// Where a Mac's Bootstrap Token stands.
    TokenStatus {
        NotSupported = "not_supported",
        NotEscrowed = "not_escrowed",
        Escrowed = "escrowed",
    }
);

str_enum!(
    /// The label an admin console shows for [`TokenStatus`].
    TokenLabel {
        Na = "NA",
        NotConfigured = "Not configured",
        Configured = "Configured",
    }
);

/// The device's group, when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceGroup {
    pub id: String,
    pub name: Option<String>,
    pub bootstrap_escrow_enabled: Option<bool>,
}

/// Metadata only: the token itself is never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BootstrapTokenView {
    pub status: TokenStatus,
    pub label: TokenLabel,
    /// Why, shown beside the label: "escrow is off for group Lab", or what makes a Mac NA.
    pub reason: Option<String>,
    pub escrowed_at: Option<Millis>,
    pub verified: Option<bool>,
    pub last_requested_at: Option<Millis>,
}

/// The bound identity certificate's notAfter, an admin's block, and whether a second identity claims this
/// Mac (see /api/v1/devices/{id}/identities).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceIdentity {
    pub certificate_expires_at: Option<Millis>,
    pub blocked_at: Option<Millis>,
    pub pending_identity: bool,
}

/// When each inventory query last answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryAt {
    pub device_information: Option<Millis>,
    pub security_info: Option<Millis>,
}

/// One device as the list shows it. Identity and OS fields come from the newest DeviceInformation answer,
/// else from what the Mac said at check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: String,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub enrolled: bool,
    /// Milliseconds since the Unix epoch.
    pub enrolled_at: Millis,
    /// Milliseconds since the Unix epoch.
    pub last_seen_at: Millis,
    pub enrollment_type: EnrollmentType,
    pub supervised: Option<bool>,
    pub group: Option<DeviceGroup>,
    pub bootstrap_token: BootstrapTokenView,
    pub apple_silicon: Option<bool>,
    pub bootstrap_token_allowed_for_authentication: Option<String>,
    pub bootstrap_token_required_for_software_update: Option<bool>,
    pub bootstrap_token_required_for_kernel_extension_approval: Option<bool>,
    pub eacs_preflight: Option<String>,
    pub filevault_enabled: Option<bool>,
    pub users: u64,
    pub users_without_secure_token: u64,
    pub identity: DeviceIdentity,
    pub inventory_at: InventoryAt,
}

/// APNs refused the push token: pushes are skipped until the next TokenUpdate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenRefused {
    pub at: Millis,
    pub reason: String,
}

/// The device's push registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushState {
    pub has_token: bool,
    pub topic: Option<String>,
    pub token_refused: Option<TokenRefused>,
}

/// A renewal profile queued for a Mac.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Renewal {
    /// The InstallProfile carrying the renewal profile.
    pub command_uuid: String,
    pub queued_at: Millis,
    /// The profile's one-time SCEP challenge (minted for this Mac) is usable until then.
    pub challenge_expires_at: Millis,
    pub renews_certificate_expiring_at: Option<Millis>,
}

/// One device in full: the list's fields, its push registration and any outstanding identity renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub push: PushState,
    /// The renewal profile outstanding for this Mac (queued, its challenge unexpired), if any.
    pub identity_renewal: Option<Renewal>,
}

/// A page of devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    pub devices: Vec<Device>,
    /// Pass as after for the next page; null on the last page.
    pub next: Option<String>,
}

/// `PUT /api/v1/devices/{id}/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGroup {
    /// A group id, or null for no group.
    pub group_id: Option<String>,
}

/// The answer to `PUT /api/v1/devices/{id}/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupSet {
    pub device: String,
    pub group_id: Option<String>,
}

/// The answer to `DELETE /api/v1/devices/{id}/bootstrap-token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCleared {
    pub device: String,
    pub cleared: bool,
}

/// The answer to `POST /api/v1/devices/{id}/renew-identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RenewalQueued {
    pub device: String,
    pub renewal: Renewal,
}

/// The Mac's bound identity certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BoundIdentity {
    pub fingerprint: Option<String>,
    pub certificate_expires_at: Option<Millis>,
    pub blocked_at: Option<Millis>,
}

/// A certificate that claimed the Mac's UDID without proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingIdentity {
    /// Hex SHA-256 of the pending certificate.
    pub fingerprint: String,
    pub first_seen_at: Millis,
    pub last_seen_at: Millis,
    /// False once refused: the Mac's bound identity checked in after it.
    pub active: bool,
    pub has_push_token: bool,
    /// A token the pending identity escrowed itself (never the Mac's).
    pub has_bootstrap_token: bool,
    pub certificate_expires_at: Option<Millis>,
}

/// `GET /api/v1/devices/{id}/identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Identities {
    pub device: String,
    pub bound: BoundIdentity,
    pub pending: Vec<PendingIdentity>,
}

/// The answer to `POST /api/v1/devices/{id}/approve-identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityApproved {
    pub device: String,
    pub fingerprint: String,
}

/// The answer to `POST /api/v1/devices/{id}/block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Blocked {
    pub device: String,
    pub blocked: bool,
    pub token_cleared: bool,
}

/// The answer to `POST /api/v1/devices/{id}/unblock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Unblocked {
    pub device: String,
    pub blocked: bool,
}

/// The answer to `POST /api/v1/devices/{id}/unenroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Unenrolled {
    pub device: String,
    pub token_deleted: bool,
}

/// The body of `POST /api/v1/devices/{id}/approve-identity` (an empty body counts as `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveIdentity {
    /// The pending identity's fingerprint, full or a prefix of at least 8 hex digits; optional when exactly
    /// one is active.
    pub fingerprint: Option<String>,
}

/// The body of `POST /api/v1/devices/{id}/block` (an empty body counts as `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockDevice {
    /// Delete the escrowed Bootstrap Token too (default false: it stays sealed).
    #[serde(default)]
    pub clear_token: bool,
}
