//! The enrollment lifecycle handler: TokenUpdate and CheckOut (Authenticate, which binds a certificate, is the
//! identity layer's: `super::identity`).
//!
//! Guarantees: only a [`BoundDevice`] reaches it; a user channel is `<device id>:<user id>` and exists only
//! after its own TokenUpdate; a pending identity's CheckOut ends that identity alone, never the Mac's
//! enrollment; the first device TokenUpdate completes enrollment (the dispatcher then queues its inventory).

use protocol::checkin::{Identity, TokenUpdate};
use store::{Channel, Enrollment, Outcome};

use super::identity::BoundDevice;
use crate::{Clock, EventKind, ServiceError};

/// What a TokenUpdate changed, for the dispatcher's follow-ups.
pub(crate) enum TokenUpdated {
    /// A user channel's token: a user logged in (maybe a new one).
    UserChannel,
    /// The device channel's token; `completed` is the enrollment when this TokenUpdate completed it (not for
    /// a pending identity).
    Device { completed: Option<Box<Enrollment>> },
}

/// TokenUpdate/CheckOut bookkeeping of a bound device (and its user channels).
///
/// Store roles: Enrollments (`enrollment`, `upsert_enrollment`, `checkout`, `clear_push_invalid`), Events.
pub(crate) struct EnrollmentLifecycle<'a, S: ?Sized = dyn store::Store> {
    store: &'a S,
    clock: &'a dyn Clock,
}

/// The store roles [`EnrollmentLifecycle`] takes.
pub(crate) trait LifecycleRoles: store::Enrollments + store::Push + store::Events {}
impl<T: ?Sized + store::Enrollments + store::Push + store::Events> LifecycleRoles for T {}

impl<'a, S: ?Sized + LifecycleRoles> EnrollmentLifecycle<'a, S> {
    pub(crate) fn new(store: &'a S, clock: &'a dyn Clock) -> Self {
        EnrollmentLifecycle { store, clock }
    }

    fn now(&self) -> store::Millis {
        self.clock.now_millis()
    }

    /// The enrollment a message is about: the device enrollment, or its user channel.
    pub(crate) async fn channel_enrollment(
        &self,
        device: &BoundDevice,
        identity: &Identity,
    ) -> Result<Enrollment, ServiceError> {
        let device = device.enrollment();
        let Some(user_id) = user_channel_id(identity) else {
            return Ok(device.clone());
        };
        let id = user_enrollment_id(&device.id, user_id);
        match self.store.enrollment(&id).await? {
            Some(e) if e.enabled => Ok(e),
            _ => Err(ServiceError::Refused(format!(
                "user channel {id} is not enrolled (the device must send its user TokenUpdate first)"
            ))),
        }
    }

    /// TokenUpdate: the device channel's push token (the first one completes enrollment), or a user channel's
    /// (created on its first TokenUpdate; a pending identity has none).
    pub(crate) async fn token_update(
        &self,
        bound: &BoundDevice,
        msg: TokenUpdate,
    ) -> Result<TokenUpdated, ServiceError> {
        let device = bound.enrollment();
        let now = self.now();
        if let Some(user_id) = user_channel_id(&msg.identity) {
            if device.is_pending() {
                return Err(ServiceError::Refused(
                    "a pending identity has no user channel until an administrator approves it"
                        .into(),
                ));
            }
            protocol::checkin::validate_device_id(user_id).map_err(|reason| {
                ServiceError::Malformed(format!("TokenUpdate: UserID {reason}"))
            })?;
            let id = user_enrollment_id(&device.id, user_id);
            let existing = self.store.enrollment(&id).await?;
            let mut e = existing.clone().unwrap_or_else(|| Enrollment {
                channel: Channel::User,
                device_id: device.id.clone(),
                user_id: Some(user_id.to_string()),
                group_id: device.group_id.clone(),
                ..Enrollment::new_device(&id, now)
            });
            e.user_short_name = msg.identity.user_short_name.clone().or(e.user_short_name);
            e.user_long_name = msg.identity.user_long_name.clone().or(e.user_long_name);
            e.topic = msg.topic.or(e.topic);
            e.push_token = msg.token.or(e.push_token);
            e.push_magic = msg.push_magic.or(e.push_magic);
            e.enabled = true;
            e.token_update_count += 1;
            e.updated_at = now;
            e.last_seen_at = now;
            let detail = format!(
                "user channel for {} ({})",
                e.user_short_name.as_deref().unwrap_or("unknown user"),
                user_id
            );
            let event = crate::events::new_event(
                self.clock,
                &device.id,
                Some(&id),
                EventKind::EnrollmentUserChannel,
                Outcome::Success,
                detail,
            );
            self.store.upsert_enrollment(&e, &event).await?;
            // A new TokenUpdate lifts an APNs refusal of the previous token (see `push`).
            self.store.clear_push_invalid(&id).await?;
            return Ok(TokenUpdated::UserChannel);
        }
        let mut e = device.clone();
        let first = e.token_update_count == 0;
        e.topic = msg.topic.or(e.topic);
        e.push_token = msg.token.or(e.push_token);
        e.push_magic = msg.push_magic.or(e.push_magic);
        if let Some(awaiting) = msg.awaiting_configuration {
            e.awaiting_configuration = Some(awaiting);
        }
        e.token_update_count += 1;
        e.updated_at = now;
        e.last_seen_at = now;
        let (kind, detail) = if first {
            (
                EventKind::EnrollmentCompleted,
                "first TokenUpdate: the device can now be pushed".to_string(),
            )
        } else {
            (
                EventKind::EnrollmentTokenUpdate,
                "push token updated".to_string(),
            )
        };
        let event = crate::events::new_event(
            self.clock,
            &e.id,
            Some(&e.id),
            kind,
            Outcome::Success,
            detail,
        );
        self.store.upsert_enrollment(&e, &event).await?;
        self.store.clear_push_invalid(&e.id).await?;
        Ok(TokenUpdated::Device {
            completed: (first && !e.is_pending()).then(|| Box::new(e)),
        })
    }

    /// CheckOut: the device removed its MDM profile (device channel only: the dispatcher refuses a user
    /// channel's before binding).
    pub(crate) async fn check_out(&self, bound: &BoundDevice) -> Result<(), ServiceError> {
        let device = bound.enrollment();
        let now = self.now();
        if device.is_pending() {
            // Ends the pending identity alone (its own token and queue), never the Mac's enrollment.
            let event = crate::events::new_event(
                self.clock,
                device.claimed_device_id(),
                Some(&device.id),
                EventKind::EnrollmentCheckedOut,
                Outcome::Success,
                "a pending identity removed its MDM profile (CheckOut); the Mac's enrollment is untouched",
            );
            self.store.checkout(&device.id, now, &event).await?;
            return Ok(());
        }
        let event = crate::events::new_event(
            self.clock,
            &device.id,
            Some(&device.id),
            EventKind::EnrollmentCheckedOut,
            Outcome::Success,
            "device removed its MDM profile (CheckOut); escrowed Bootstrap Token deleted",
        );
        let had_token = self.store.checkout(&device.id, now, &event).await?;
        tracing::info!(udid = %device.id, had_token, "device checked out");
        Ok(())
    }

    /// Record `awaiting_configuration` only when the device sent the key (MicroMDM overwrote it with false).
    pub(crate) async fn note_awaiting_configuration(
        &self,
        device: &BoundDevice,
        value: Option<bool>,
    ) -> Result<(), ServiceError> {
        let device = device.enrollment();
        let Some(value) = value else { return Ok(()) };
        if device.awaiting_configuration == Some(value) {
            return Ok(());
        }
        let mut e = device.clone();
        e.awaiting_configuration = Some(value);
        e.updated_at = self.now();
        let event = crate::events::new_event(
            self.clock,
            &e.id,
            Some(&e.id),
            EventKind::EnrollmentAwaitingConfiguration,
            Outcome::Success,
            format!("AwaitingConfiguration is now {value}"),
        );
        self.store.upsert_enrollment(&e, &event).await?;
        Ok(())
    }
}

fn user_channel_id(identity: &Identity) -> Option<&str> {
    identity
        .user_id
        .as_deref()
        .or(identity.enrollment_user_id.as_deref())
}

/// Id of a user-channel enrollment: `<device id>:<user id>` (NanoMDM's convention).
pub fn user_enrollment_id(device_id: &str, user_id: &str) -> String {
    format!("{device_id}:{user_id}")
}
