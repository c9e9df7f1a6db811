//! The store's vocabulary: enrollments, events, sealed secrets, groups and queued commands. Guarantees:
//! `SealedSecret`'s Debug shows the blob's length, never its bytes; every enum round-trips through the exact
//! string stored in the database, and an unknown stored string is an error, not a panic.

use crate::{EventKind, Result, StoreError};

/// Unix time in milliseconds.
pub type Millis = i64;

/// Field name under which a Bootstrap Token is sealed in the generic secret table.
pub const BOOTSTRAP_TOKEN_FIELD: &str = "bootstrap_token";

/// Which MDM channel an enrollment is: the device itself or one user on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Device,
    User,
}

/// One enrollment (device or user channel), stored and replaced as a whole row.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    /// Device channel: the UDID (or EnrollmentID); user channel: `"<UDID>:<UserID>"`.
    pub id: String,
    /// The device enrollment's id (== `id` on the device channel).
    pub device_id: String,
    pub channel: Channel,
    pub user_id: Option<String>,
    pub user_short_name: Option<String>,
    pub user_long_name: Option<String>,
    pub group_id: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub device_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub product_name: Option<String>,
    pub topic: Option<String>,
    pub push_token: Option<Vec<u8>>,
    pub push_magic: Option<String>,
    pub awaiting_configuration: Option<bool>,
    /// Hex SHA-256 of the identity certificate bound to this device enrollment (None on the user channel).
    pub cert_fingerprint: Option<String>,
    /// False after CheckOut.
    pub enabled: bool,
    /// How many TokenUpdates so far (0 = enrollment not complete).
    pub token_update_count: i64,
    pub enrolled_at: Millis,
    pub updated_at: Millis,
    pub last_seen_at: Millis,
    /// A pending identity: the UDID this unproven certificate claims (its own row; see [`pending_identity_id`]).
    pub pending_for: Option<String>,
    /// Device row only, read-only here (written by the pending-identity store methods): a pending identity
    /// claims this Mac.
    pub has_pending: bool,
    /// Read-only here (written by `block_device` / `unblock_device`): when an admin blocked this Mac.
    pub blocked_at: Option<Millis>,
    /// notAfter of the bound identity certificate (Unix ms), when known.
    pub cert_not_after: Option<Millis>,
}

/// Row id of the pending identity with certificate `fingerprint` claiming `device_id` (`/` never occurs in a
/// validated UDID, so it cannot collide with a device or user-channel id).
pub fn pending_identity_id(device_id: &str, fingerprint: &str) -> String {
    format!(
        "{device_id}/pending/{}",
        fingerprint.get(..16).unwrap_or(fingerprint)
    )
}

impl Enrollment {
    /// A device-channel enrollment `id` first seen at `now`, with nothing known about the device yet.
    pub fn new_device(id: &str, now: Millis) -> Enrollment {
        Enrollment {
            id: id.to_string(),
            device_id: id.to_string(),
            channel: Channel::Device,
            user_id: None,
            user_short_name: None,
            user_long_name: None,
            group_id: None,
            serial_number: None,
            model: None,
            model_name: None,
            device_name: None,
            os_version: None,
            build_version: None,
            product_name: None,
            topic: None,
            push_token: None,
            push_magic: None,
            awaiting_configuration: None,
            cert_fingerprint: None,
            enabled: true,
            token_update_count: 0,
            enrolled_at: now,
            updated_at: now,
            last_seen_at: now,
            pending_for: None,
            has_pending: false,
            blocked_at: None,
            cert_not_after: None,
        }
    }

    /// True for a pending (unproven) identity's row.
    pub fn is_pending(&self) -> bool {
        self.pending_for.is_some()
    }

    /// The UDID this enrollment speaks for: the claimed one for a pending identity, else `device_id`.
    pub fn claimed_device_id(&self) -> &str {
        self.pending_for.as_deref().unwrap_or(&self.device_id)
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Refused,
}

/// An audit event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Device id (UDID) or `"unknown"`.
    pub subject: String,
    pub enrollment_id: Option<String>,
    /// Stored as [`EventKind::as_str`], e.g. `"bootstrap_token.escrowed"`.
    pub kind: EventKind,
    pub outcome: Outcome,
    pub detail: String,
    pub at: Millis,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub subject: String,
    pub enrollment_id: Option<String>,
    /// The stored text, kept as text so that a kind this build does not know is still listed; compares equal
    /// to an [`EventKind`] (`e.kind == EventKind::AuthFailed`), [`Event::known_kind`] parses it.
    pub kind: String,
    pub outcome: Outcome,
    pub detail: String,
    pub at: Millis,
}

impl Event {
    /// The kind as an [`EventKind`], or None for a kind this build does not know.
    pub fn known_kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.kind)
    }
}

/// Which events to list. Events come back newest first (id descending).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub subject: Option<String>,
    /// The stored text ([`EventKind::as_str`]); any text is accepted (an unknown one matches nothing).
    pub kind: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<Millis>,
    /// Paging: only ids below this.
    pub before_id: Option<i64>,
    /// 0 means 100; at most 1000.
    pub limit: u32,
}

/// An opaque sealed value, keyed by (owner, field); `key_id` names the key that sealed it.
#[derive(Clone, PartialEq)]
pub struct SealedSecret {
    pub owner: String,
    pub field: String,
    pub key_id: String,
    pub blob: Vec<u8>,
    pub updated_at: Millis,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("owner", &self.owner)
            .field("field", &self.field)
            .field("key_id", &self.key_id)
            .field("blob", &format_args!("<{} bytes>", self.blob.len()))
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// An escrowed Bootstrap Token: metadata plus its sealed secret, always written together.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapTokenRecord {
    pub enrollment_id: String,
    /// owner = `enrollment_id`, field = [`BOOTSTRAP_TOKEN_FIELD`].
    pub sealed: SealedSecret,
    pub size: i64,
    /// Short hex digest computed by the caller, to recognise a re-escrowed identical token.
    pub digest: String,
    pub escrowed_at: Millis,
    pub verified: bool,
    pub last_requested_at: Option<Millis>,
}

/// A named set of enrollments sharing escrow policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    /// Unique.
    pub name: String,
    pub bootstrap_escrow_enabled: bool,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Where a queued command stands. Pending and NotNow are active; the rest are finished (history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    Pending,
    NotNow,
    Acknowledged,
    Error,
    CommandFormatError,
}

/// Field under which a command's payload is sealed when it carries a secret; the owner is
/// [`command_payload_owner`]`(uuid)`.
pub const COMMAND_PAYLOAD_FIELD: &str = "command_payload";

/// The sealed-secret owner of command `uuid`'s sealed payload (`command:<uuid>`).
pub fn command_payload_owner(uuid: &str) -> String {
    format!("command:{uuid}")
}

/// A UserList to queue only if it claims the device's UserList refresh
/// ([`Commands::enqueue_follow_ups`]): when the refresh was last claimed before `not_since`, or never.
///
/// [`Commands::enqueue_follow_ups`]: crate::roles::Commands::enqueue_follow_ups
#[derive(Debug, Clone, PartialEq)]
pub struct UserListClaim {
    pub command: NewCommand,
    pub events: Vec<NewEvent>,
    pub not_since: Millis,
}

/// A command to queue. Debug shows the payload's length only (it may hold a secret).
#[derive(Clone, PartialEq)]
pub struct NewCommand {
    pub uuid: String,
    pub request_type: String,
    /// The full XML plist; for a command that carries a secret, the redacted plist once the service sealed it.
    pub payload: Vec<u8>,
    /// The command holds a secret (an EraseDevice PIN, a password, the agent's registration secret): the
    /// service seals the real payload and the store keeps only a redacted one ([`Commands::enqueue_sealed`]);
    /// [`Commands::enqueue`] refuses such a command.
    ///
    /// [`Commands::enqueue_sealed`]: crate::roles::Commands::enqueue_sealed
    /// [`Commands::enqueue`]: crate::roles::Commands::enqueue
    pub carries_secret: bool,
}

impl std::fmt::Debug for NewCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCommand")
            .field("uuid", &self.uuid)
            .field("request_type", &self.request_type)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("carries_secret", &self.carries_secret)
            .finish()
    }
}

/// The active command queue's size across every enrollment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Entries not yet answered.
    pub pending: u64,
    /// Entries a Mac answered NotNow (they will be sent again).
    pub not_now: u64,
}

/// A command as queued for one enrollment, active or finished.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedCommand {
    pub enrollment_id: String,
    pub uuid: String,
    pub request_type: String,
    /// The plist as stored: redacted when `carries_secret` (the real one is sealed until the command ends).
    pub payload: Vec<u8>,
    pub carries_secret: bool,
    pub status: CommandStatus,
    /// The device's report plist, for finished commands.
    pub result: Option<Vec<u8>>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What `record_command_result` did with a device report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    Recorded,
    /// Already finished: nothing changed.
    Duplicate,
    UnknownCommand,
}

/// Maps an enum to and from the exact string stored in the database.
macro_rules! stored_as {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The string stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// Parse a stored string; anything else means the row was not written by this store.
            pub(crate) fn from_stored(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(StoreError::Database(concat!("unexpected ", $what, " value in database").into())),
                }
            }
        }
    };
}

stored_as!(Channel, "channel", { Device => "device", User => "user" });
stored_as!(Outcome, "outcome", { Success => "success", Failure => "failure", Refused => "refused" });
stored_as!(CommandStatus, "command status", {
    Pending => "pending",
    NotNow => "notnow",
    Acknowledged => "acknowledged",
    Error => "error",
    CommandFormatError => "command_format_error",
});

impl CommandStatus {
    /// Finished commands leave the active queue for history.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            CommandStatus::Acknowledged | CommandStatus::Error | CommandStatus::CommandFormatError
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_debug_shows_blob_length_not_bytes() {
        let s = SealedSecret {
            owner: "UDID-1".into(),
            field: BOOTSTRAP_TOKEN_FIELD.into(),
            key_id: "k1".into(),
            blob: b"SECRETBYTES".to_vec(),
            updated_at: 1,
        };
        let text = format!("{s:?}");
        assert!(text.contains("<11 bytes>"), "{text}");
        assert!(!text.contains("SECRETBYTES"), "{text}");
        assert!(!text.contains("83, 69, 67"), "{text}"); // 'S','E','C' as a byte list
        let rec = BootstrapTokenRecord {
            enrollment_id: "UDID-1".into(),
            sealed: s,
            size: 11,
            digest: "ab".into(),
            escrowed_at: 1,
            verified: false,
            last_requested_at: None,
        };
        assert!(!format!("{rec:?}").contains("SECRETBYTES"));
    }

    #[test]
    fn every_enum_round_trips_through_its_stored_string() {
        for c in [Channel::Device, Channel::User] {
            assert_eq!(Channel::from_stored(c.as_str()).unwrap(), c);
        }
        for o in [Outcome::Success, Outcome::Failure, Outcome::Refused] {
            assert_eq!(Outcome::from_stored(o.as_str()).unwrap(), o);
        }
        for s in [
            CommandStatus::Pending,
            CommandStatus::NotNow,
            CommandStatus::Acknowledged,
            CommandStatus::Error,
            CommandStatus::CommandFormatError,
        ] {
            assert_eq!(CommandStatus::from_stored(s.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn unknown_stored_strings_are_errors_not_panics() {
        assert!(matches!(
            Channel::from_stored("Device"),
            Err(StoreError::Database(_))
        ));
        assert!(matches!(
            Outcome::from_stored(""),
            Err(StoreError::Database(_))
        ));
        assert!(matches!(
            CommandStatus::from_stored("NotNow"),
            Err(StoreError::Database(_))
        ));
    }

    #[test]
    fn only_acknowledged_error_and_format_error_are_finished() {
        assert!(!CommandStatus::Pending.is_finished());
        assert!(!CommandStatus::NotNow.is_finished());
        assert!(CommandStatus::Acknowledged.is_finished());
        assert!(CommandStatus::Error.is_finished());
        assert!(CommandStatus::CommandFormatError.is_finished());
    }
}

/// APNs refused an enrollment's push token (BadDeviceToken, Unregistered, DeviceTokenNotForTopic): pushes skip
/// the enrollment until its next TokenUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushInvalid {
    pub at: Millis,
    /// APNs' reason, e.g. `Unregistered`.
    pub reason: String,
}
