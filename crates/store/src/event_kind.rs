//! Every audit event kind escrowd writes, in one enum. The store owns the event schema, so the enum lives here
//! (below `service`, which writes the events, and `server`/`cli`, which read them).
//!
//! Guarantees: [`EventKind::as_str`] is exactly the text stored in `events.kind` and shown by the API (pinned,
//! with uniqueness, by a test below), so renaming a variant never changes the database or the API; parsing is
//! its exact inverse. A stored event keeps its kind as text ([`crate::Event::kind`]), so rows written with a
//! kind this build does not know (an older or newer escrowd, a test) are still listed; filters take text too.
//!
//! Event details are built from metadata only (sizes, key ids, reasons); never from a token or a body.
//! Refusals of unauthenticated requests (`AuthFailed`, `ScepRefused`, `EnrollRefused`, `AgentAuthFailed`,
//! `ForwardedCertUntrusted`) are counted per source and hour under their kind (`service::edge`), not written
//! as one event per request.

use std::fmt;
use std::str::FromStr;

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// What happened, as an audit event records it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The stored and displayed text, e.g. `"bootstrap_token.escrowed"`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $text,)*
                }
            }

            /// The kind whose [`as_str`](Self::as_str) is exactly `s`.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    // ---- formerly service::inventory
    /// Event kind when an inventory result could not be stored.
    InventoryRejected => "inventory.rejected",
    InventoryUpdated => "inventory.updated",
    /// Event kind when queueing automatic inventory failed for a device.
    InventoryQueueFailed => "inventory.queue_failed",
    // ---- formerly service::enroll
    EnrollTokenCreated => "admin.enroll_token.created",
    EnrollTokenRevoked => "admin.enroll_token.revoked",
    EnrollProfileServed => "enroll.profile_served",
    EnrollRefused => "enroll.refused",
    GroupProfileServed => "admin.group.profile",
    // ---- formerly service::agent
    AgentInstallQueued => "agent.install_queued",
    AgentRegistered => "agent.registered",
    AgentRegistrationRefused => "agent.registration_refused",
    AgentAuthFailed => "agent.auth_failed",
    AgentActionCreated => "agent.action_created",
    AgentActionFinished => "agent.action_finished",
    AgentActionCancelled => "agent.action_cancelled",
    AgentInventory => "agent.inventory",
    /// One per command a `troubleshoot` action ran: the command line, its exit code and its (cleaned) output.
    AgentTroubleshoot => "agent.troubleshoot",
    /// How a user's `escrow-agent escrow` (self-service Bootstrap Token escrow) ended.
    AgentSelfServiceEscrow => "agent.self_service_escrow",
    // ---- formerly service::events
    EnrollmentAuthenticated => "enrollment.authenticated",
    EnrollmentIdentityRenewed => "enrollment.identity_renewed",
    EnrollmentTokenUpdate => "enrollment.token_update",
    EnrollmentCompleted => "enrollment.completed",
    EnrollmentUserChannel => "enrollment.user_channel",
    EnrollmentCheckedOut => "enrollment.checked_out",
    AuthFailed => "auth.failed",
    BootstrapEscrowed => "bootstrap_token.escrowed",
    BootstrapReplaced => "bootstrap_token.replaced",
    BootstrapCleared => "bootstrap_token.cleared",
    BootstrapEscrowRefused => "bootstrap_token.escrow_refused",
    BootstrapRequested => "bootstrap_token.requested",
    CommandQueued => "command.queued",
    CommandResult => "command.result",
    CheckinUnsupported => "checkin.unsupported",
    ScepIssued => "scep.issued",
    ScepRefused => "scep.refused",
    /// A certificate claims an enrolled UDID without proof: recorded as a pending identity.
    IdentityPending => "identity.pending",
    /// The bound certificate checked in again; pending identities of that Mac are refused from then on.
    IdentityPendingRefused => "identity.pending_refused",
    /// An admin approved a pending identity: it is now the Mac's, the old token discarded.
    IdentityApproved => "identity.approved",
    DeviceBlocked => "device.blocked",
    DeviceUnblocked => "device.unblocked",
    DeviceUnenrolled => "device.unenrolled",
    /// A forwarded client certificate header from a peer that is not a `--trusted-proxy` (ignored).
    ForwardedCertUntrusted => "edge.forwarded_cert_untrusted",
    /// An admin's `agent-install --replace`: a registration with that install's secret may replace the Mac's
    /// current agent.
    AgentReplaceAuthorized => "agent.replace_authorized",
    /// A registration replaced the Mac's registered agent (proved by that agent's signature, or allowed by
    /// `--replace`).
    AgentReplaced => "agent.replaced",
    /// A queued command carrying a secret whose sealed payload could not be opened: not sent, finished as Error.
    CommandSealedPayloadUnreadable => "command.sealed_payload_unreadable",
    AccountConfigurationQueued => "account.configuration_queued",
    AccountConfigurationFailed => "account.configuration_failed",
    GroupAccountsUpdated => "admin.group.accounts",
    /// A renewal profile (the enrollment profile with a one-time challenge minted for the Mac) was queued.
    IdentityRenewalQueued => "identity.renewal_queued",
    /// A still-bound identity past its notAfter (within the grace period) checked in and was answered only with
    /// its renewal profile.
    IdentityRenewalGrace => "identity.renewal_grace",
    // ---- formerly service::apikeys
    /// Event kinds of admin actions.
    ApikeyCreated => "admin.apikey.created",
    ApikeyRevoked => "admin.apikey.revoked",
    // ---- service::console_admins (issue 15)
    ConsoleAdminCreated => "console.admin.created",
    ConsoleAdminDisabled => "console.admin.disabled",
    ConsoleAdminPasswordSet => "console.admin.password_set",
    /// A console sign-in (a new session).
    ConsoleSignIn => "console.signin",
    /// A refused console sign-in: unknown name, wrong password or disabled admin (never the password).
    ConsoleSignInFailed => "console.signin_failed",
    /// Too many failed sign-ins for an admin name or from an address: further attempts refused for a while.
    ConsoleLockout => "console.lockout",
    ConsoleSignOut => "console.signout",
    // ---- formerly service::push
    /// Event kind of such a mark.
    PushTokenInvalid => "push.token_invalid",
    // ---- formerly service::admin
    GroupCreated => "admin.group.created",
    GroupUpdated => "admin.group.updated",
    GroupDeleted => "admin.group.deleted",
    GroupMembership => "admin.group.membership",
    CommandEnqueued => "admin.command.enqueued",
    CommandRefused => "admin.command.refused",
    PushSent => "admin.push",
    TokenCleared => "admin.bootstrap_token.cleared",
    // ---- formerly service::push_cert
    PushCertificateUploaded => "push_certificate.uploaded",
    // ---- formerly service::enrollment
    EnrollmentAwaitingConfiguration => "enrollment.awaiting_configuration",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of [`EventKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?}")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::parse(s).ok_or_else(|| UnknownEventKind(s.to_string()))
    }
}

impl AsRef<str> for EventKind {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// A stored kind (text) compares equal to the variant it spells.
impl PartialEq<EventKind> for String {
    fn eq(&self, other: &EventKind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<EventKind> for str {
    fn eq(&self, other: &EventKind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<EventKind> for &str {
    fn eq(&self, other: &EventKind) -> bool {
        *self == other.as_str()
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventKind::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(UnknownEventKind(s.into_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer};

    /// The texts in the database and the API: written out here so a renamed variant cannot change them.
    const PINNED: &[(EventKind, &str)] = &[
        (EventKind::InventoryRejected, "inventory.rejected"),
        (EventKind::InventoryUpdated, "inventory.updated"),
        (EventKind::InventoryQueueFailed, "inventory.queue_failed"),
        (EventKind::EnrollTokenCreated, "admin.enroll_token.created"),
        (EventKind::EnrollTokenRevoked, "admin.enroll_token.revoked"),
        (EventKind::EnrollProfileServed, "enroll.profile_served"),
        (EventKind::EnrollRefused, "enroll.refused"),
        (EventKind::GroupProfileServed, "admin.group.profile"),
        (EventKind::AgentInstallQueued, "agent.install_queued"),
        (EventKind::AgentRegistered, "agent.registered"),
        (
            EventKind::AgentRegistrationRefused,
            "agent.registration_refused",
        ),
        (EventKind::AgentAuthFailed, "agent.auth_failed"),
        (EventKind::AgentActionCreated, "agent.action_created"),
        (EventKind::AgentActionFinished, "agent.action_finished"),
        (EventKind::AgentActionCancelled, "agent.action_cancelled"),
        (EventKind::AgentInventory, "agent.inventory"),
        (EventKind::AgentTroubleshoot, "agent.troubleshoot"),
        (
            EventKind::AgentSelfServiceEscrow,
            "agent.self_service_escrow",
        ),
        (
            EventKind::EnrollmentAuthenticated,
            "enrollment.authenticated",
        ),
        (
            EventKind::EnrollmentIdentityRenewed,
            "enrollment.identity_renewed",
        ),
        (EventKind::EnrollmentTokenUpdate, "enrollment.token_update"),
        (EventKind::EnrollmentCompleted, "enrollment.completed"),
        (EventKind::EnrollmentUserChannel, "enrollment.user_channel"),
        (EventKind::EnrollmentCheckedOut, "enrollment.checked_out"),
        (EventKind::AuthFailed, "auth.failed"),
        (EventKind::BootstrapEscrowed, "bootstrap_token.escrowed"),
        (EventKind::BootstrapReplaced, "bootstrap_token.replaced"),
        (EventKind::BootstrapCleared, "bootstrap_token.cleared"),
        (
            EventKind::BootstrapEscrowRefused,
            "bootstrap_token.escrow_refused",
        ),
        (EventKind::BootstrapRequested, "bootstrap_token.requested"),
        (EventKind::CommandQueued, "command.queued"),
        (EventKind::CommandResult, "command.result"),
        (EventKind::CheckinUnsupported, "checkin.unsupported"),
        (EventKind::ScepIssued, "scep.issued"),
        (EventKind::ScepRefused, "scep.refused"),
        (EventKind::IdentityPending, "identity.pending"),
        (
            EventKind::IdentityPendingRefused,
            "identity.pending_refused",
        ),
        (EventKind::IdentityApproved, "identity.approved"),
        (EventKind::DeviceBlocked, "device.blocked"),
        (EventKind::DeviceUnblocked, "device.unblocked"),
        (EventKind::DeviceUnenrolled, "device.unenrolled"),
        (
            EventKind::ForwardedCertUntrusted,
            "edge.forwarded_cert_untrusted",
        ),
        (
            EventKind::AgentReplaceAuthorized,
            "agent.replace_authorized",
        ),
        (EventKind::AgentReplaced, "agent.replaced"),
        (
            EventKind::CommandSealedPayloadUnreadable,
            "command.sealed_payload_unreadable",
        ),
        (
            EventKind::AccountConfigurationQueued,
            "account.configuration_queued",
        ),
        (
            EventKind::AccountConfigurationFailed,
            "account.configuration_failed",
        ),
        (EventKind::GroupAccountsUpdated, "admin.group.accounts"),
        (EventKind::IdentityRenewalQueued, "identity.renewal_queued"),
        (EventKind::IdentityRenewalGrace, "identity.renewal_grace"),
        (EventKind::ApikeyCreated, "admin.apikey.created"),
        (EventKind::ApikeyRevoked, "admin.apikey.revoked"),
        (EventKind::ConsoleAdminCreated, "console.admin.created"),
        (EventKind::ConsoleAdminDisabled, "console.admin.disabled"),
        (
            EventKind::ConsoleAdminPasswordSet,
            "console.admin.password_set",
        ),
        (EventKind::ConsoleSignIn, "console.signin"),
        (EventKind::ConsoleSignInFailed, "console.signin_failed"),
        (EventKind::ConsoleLockout, "console.lockout"),
        (EventKind::ConsoleSignOut, "console.signout"),
        (EventKind::PushTokenInvalid, "push.token_invalid"),
        (EventKind::GroupCreated, "admin.group.created"),
        (EventKind::GroupUpdated, "admin.group.updated"),
        (EventKind::GroupDeleted, "admin.group.deleted"),
        (EventKind::GroupMembership, "admin.group.membership"),
        (EventKind::CommandEnqueued, "admin.command.enqueued"),
        (EventKind::CommandRefused, "admin.command.refused"),
        (EventKind::PushSent, "admin.push"),
        (EventKind::TokenCleared, "admin.bootstrap_token.cleared"),
        (
            EventKind::PushCertificateUploaded,
            "push_certificate.uploaded",
        ),
        (
            EventKind::EnrollmentAwaitingConfiguration,
            "enrollment.awaiting_configuration",
        ),
    ];

    #[test]
    fn every_kind_keeps_its_stored_text_and_texts_are_unique() {
        assert_eq!(
            PINNED.len(),
            EventKind::ALL.len(),
            "every variant is pinned"
        );
        let mut seen = std::collections::HashSet::new();
        for (kind, text) in PINNED {
            assert_eq!(kind.as_str(), *text);
            assert_eq!(kind.to_string(), *text);
            assert!(seen.insert(*text), "{text} is used twice");
            assert_eq!(text.parse::<EventKind>(), Ok(*kind));
            let stored: String = (*text).to_owned();
            assert!(stored == *kind);
        }
        assert_eq!(seen.len(), EventKind::ALL.len());
    }

    #[test]
    fn unknown_text_is_not_a_kind() {
        for bad in [
            "",
            "bootstrap_token",
            "Bootstrap_Token.Escrowed",
            "bootstrap_token.escrowed ",
        ] {
            assert_eq!(EventKind::parse(bad), None, "{bad:?}");
            assert!(bad.parse::<EventKind>().is_err());
        }
    }

    #[test]
    fn serde_uses_the_text() {
        let de: StrDeserializer<'_, DeError> = "scep.refused".into_deserializer();
        assert_eq!(EventKind::deserialize(de).unwrap(), EventKind::ScepRefused);
        let de: StrDeserializer<'_, DeError> = "nope".into_deserializer();
        assert!(EventKind::deserialize(de).is_err());
    }

    #[tokio::test]
    async fn a_stored_event_of_an_unknown_kind_is_still_listed_and_filterable() {
        use crate::{EventFilter, Events, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.sqlite"))
            .await
            .unwrap();
        store
            .record_event(&crate::conformance::event("D", "auth.failed"))
            .await
            .unwrap();
        // Written by another escrowd version.
        sqlx::query(
            "INSERT INTO events (subject, enrollment_id, kind, outcome, detail, at) \
             VALUES ('D', NULL, 'future.kind', 'success', 'd', 3000)",
        )
        .execute(&*store.pool)
        .await
        .unwrap();
        let all = store.events(&EventFilter::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kind, "future.kind");
        assert_eq!(all[0].known_kind(), None);
        assert!(all[1].kind == EventKind::AuthFailed);
        assert_eq!(all[1].known_kind(), Some(EventKind::AuthFailed));
        let future = EventFilter {
            kind: Some("future.kind".into()),
            ..Default::default()
        };
        assert_eq!(store.events(&future).await.unwrap().len(), 1);
    }
}
