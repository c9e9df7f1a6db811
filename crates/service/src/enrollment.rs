//! Device identity binding and the enrollment lifecycle: Authenticate, TokenUpdate, CheckOut.
//!
//! Guarantees: a certificate is bound to at most one device enrollment; every message after Authenticate must
//! come with the certificate bound to the UDID it claims; a repeat Authenticate with a new certificate re-binds
//! (identity renewal) and keeps the Bootstrap Token, marked not re-verified; a certificate escrowd issued over
//! SCEP binds to the UDID of its first Authenticate and never speaks for another device, and puts the device in
//! the group its enrollment token (or group challenge) named.

use pki::CertInfo;
use protocol::checkin::{Authenticate, CheckOut, Identity, TokenUpdate};
use store::{Channel, Enrollment, NewEvent, Outcome};

use crate::{MdmService, ServiceError, events};

/// Short, log-safe form of a certificate fingerprint.
pub(crate) fn short_fp(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

impl MdmService {
    pub(crate) fn event(
        &self,
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
            at: self.now(),
        }
    }

    /// The enabled device enrollment bound to `cert`, checked against the UDID the message claims.
    pub(crate) async fn bound_device(
        &self,
        cert: &CertInfo,
        identity: &Identity,
    ) -> Result<Enrollment, ServiceError> {
        let claimed = identity.device_id().ok_or_else(|| {
            ServiceError::Unauthenticated("message carries no UDID or EnrollmentID".into())
        })?;
        let Some(enrollment) = self
            .store
            .enrollment_by_fingerprint(&cert.fingerprint)
            .await?
        else {
            return Err(ServiceError::Unauthenticated(format!(
                "certificate {} is not bound to any enrollment (the device must Authenticate first)",
                short_fp(&cert.fingerprint)
            )));
        };
        if enrollment.id != claimed {
            return Err(ServiceError::Unauthenticated(format!(
                "certificate {} is bound to enrollment {}, but the message claims {}",
                short_fp(&cert.fingerprint),
                enrollment.id,
                claimed
            )));
        }
        if !enrollment.enabled {
            return Err(ServiceError::Refused(format!(
                "enrollment {} has checked out; the device must enroll again",
                enrollment.id
            )));
        }
        Ok(enrollment)
    }

    /// The enrollment a message is about: the device enrollment, or its user channel.
    pub(crate) async fn channel_enrollment(
        &self,
        device: &Enrollment,
        identity: &Identity,
    ) -> Result<Enrollment, ServiceError> {
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

    pub(crate) async fn authenticate(
        &self,
        cert: &CertInfo,
        msg: Authenticate,
    ) -> Result<(), ServiceError> {
        if msg.identity.is_user_channel() {
            return Err(ServiceError::Refused(
                "Authenticate is a device-channel message".into(),
            ));
        }
        let device_id = msg
            .identity
            .device_id()
            .ok_or_else(|| {
                ServiceError::Unauthenticated("Authenticate carries no UDID or EnrollmentID".into())
            })?
            .to_string();
        if let Some(holder) = self
            .store
            .enrollment_by_fingerprint(&cert.fingerprint)
            .await?
            && holder.id != device_id
        {
            return Err(ServiceError::Unauthenticated(format!(
                "certificate {} is already bound to enrollment {}; refusing to bind it to {}",
                short_fp(&cert.fingerprint),
                holder.id,
                device_id
            )));
        }
        // A SCEP-issued certificate speaks for one device only: the UDID of its first Authenticate.
        let issued = match self
            .store
            .bind_issued_certificate(&cert.fingerprint, &device_id)
            .await
        {
            Ok(issued) => issued,
            Err(store::StoreError::Conflict(reason)) => {
                return Err(ServiceError::Unauthenticated(format!(
                    "{reason}; refusing to bind it to {device_id}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        let existing = self.store.enrollment(&device_id).await?;
        let renewed = existing
            .as_ref()
            .is_some_and(|e| e.cert_fingerprint.as_deref() != Some(cert.fingerprint.as_str()));
        let mut e = existing
            .clone()
            .unwrap_or_else(|| Enrollment::new_device(&device_id, now));
        e.serial_number = msg.serial_number.or(e.serial_number);
        e.os_version = msg.os_version.or(e.os_version);
        e.build_version = msg.build_version.or(e.build_version);
        e.product_name = msg.product_name.or(e.product_name);
        e.model = msg.model.or(e.model);
        e.model_name = msg.model_name.or(e.model_name);
        e.device_name = msg.device_name.or(e.device_name);
        e.topic = msg.topic.or(e.topic);
        e.cert_fingerprint = Some(cert.fingerprint.clone());
        if let Some(group) = issued.and_then(|i| i.group_id)
            && (existing.is_none() || renewed)
        {
            // A new certificate from a token or a group's challenge: the device lands in that group (a repeat
            // Authenticate with the same certificate keeps whatever group an admin chose since).
            e.group_id = Some(group);
        }
        e.enabled = true;
        e.token_update_count = 0;
        e.updated_at = now;
        e.last_seen_at = now;
        let (kind, detail) = if renewed {
            (
                events::ENROLLMENT_IDENTITY_RENEWED,
                format!(
                    "new identity certificate {} bound; the previous certificate is no longer accepted",
                    short_fp(&cert.fingerprint)
                ),
            )
        } else {
            (
                events::ENROLLMENT_AUTHENTICATED,
                format!("identity certificate {} bound", short_fp(&cert.fingerprint)),
            )
        };
        let event = self.event(&device_id, Some(&device_id), kind, Outcome::Success, detail);
        self.store.upsert_enrollment(&e, &event).await?;
        if existing.is_some() {
            // Kept across re-Authenticate (Fleet #41167), but no longer known to be the one the Mac holds.
            self.store
                .set_bootstrap_token_verified(&device_id, false)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn token_update(
        &self,
        cert: &CertInfo,
        msg: TokenUpdate,
    ) -> Result<(), ServiceError> {
        let device = self.bound_device(cert, &msg.identity).await?;
        let now = self.now();
        if let Some(user_id) = user_channel_id(&msg.identity) {
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
            let event = self.event(
                &device.id,
                Some(&id),
                events::ENROLLMENT_USER_CHANNEL,
                Outcome::Success,
                detail,
            );
            self.store.upsert_enrollment(&e, &event).await?;
            // A new TokenUpdate lifts an APNs refusal of the previous token (see `push`).
            self.store.clear_push_invalid(&id).await?;
            return Ok(());
        }
        let mut e = device;
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
                events::ENROLLMENT_COMPLETED,
                "first TokenUpdate: the device can now be pushed".to_string(),
            )
        } else {
            (
                events::ENROLLMENT_TOKEN_UPDATE,
                "push token updated".to_string(),
            )
        };
        let event = self.event(&e.id, Some(&e.id), kind, Outcome::Success, detail);
        self.store.upsert_enrollment(&e, &event).await?;
        self.store.clear_push_invalid(&e.id).await?;
        if first {
            self.queue_enrollment_inventory(&e).await;
        }
        Ok(())
    }

    pub(crate) async fn check_out(
        &self,
        cert: &CertInfo,
        msg: CheckOut,
    ) -> Result<(), ServiceError> {
        if msg.identity.is_user_channel() {
            return Err(ServiceError::Refused(
                "CheckOut is a device-channel message".into(),
            ));
        }
        let device = self.bound_device(cert, &msg.identity).await?;
        let now = self.now();
        let event = self.event(
            &device.id,
            Some(&device.id),
            events::ENROLLMENT_CHECKED_OUT,
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
        device: &Enrollment,
        value: Option<bool>,
    ) -> Result<(), ServiceError> {
        let Some(value) = value else { return Ok(()) };
        if device.awaiting_configuration == Some(value) {
            return Ok(());
        }
        let mut e = device.clone();
        e.awaiting_configuration = Some(value);
        e.updated_at = self.now();
        let event = self.event(
            &e.id,
            Some(&e.id),
            "enrollment.awaiting_configuration",
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
