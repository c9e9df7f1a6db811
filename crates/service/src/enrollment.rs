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

use crate::{EventKind, MdmService, ServiceError};

/// Short, log-safe form of a certificate fingerprint.
pub(crate) fn short_fp(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

impl MdmService {
    pub(crate) fn event(
        &self,
        subject: &str,
        enrollment_id: Option<&str>,
        kind: EventKind,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> NewEvent {
        NewEvent {
            subject: subject.to_string(),
            enrollment_id: enrollment_id.map(str::to_string),
            kind,
            outcome,
            detail: detail.into(),
            at: self.now(),
        }
    }

    /// The enabled enrollment bound to `cert`, checked against the UDID the message claims: the Mac's device
    /// enrollment, or a pending identity's own row (`is_pending()`), which claims that UDID without proof and
    /// has its own token and queue, never the Mac's.
    ///
    /// When the Mac's bound certificate checks in while a pending identity claims it, the pending identity is
    /// refused from then on (an impostor, or a stale copy).
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
        if enrollment.claimed_device_id() != claimed {
            return Err(ServiceError::Unauthenticated(format!(
                "certificate {} is bound to enrollment {}, but the message claims {}",
                short_fp(&cert.fingerprint),
                enrollment.claimed_device_id(),
                claimed
            )));
        }
        if enrollment.is_pending() {
            if !enrollment.enabled {
                return Err(ServiceError::Refused(format!(
                    "identity {} was refused for {claimed}: the Mac's bound identity checked in after it; \
                     an administrator must approve a re-enrolled Mac",
                    short_fp(&cert.fingerprint)
                )));
            }
            self.refuse_if_blocked(claimed).await?;
            return Ok(enrollment);
        }
        if enrollment.blocked_at.is_some() {
            return Err(ServiceError::Refused(format!(
                "{claimed} is blocked by an administrator"
            )));
        }
        if !enrollment.enabled {
            return Err(ServiceError::Refused(format!(
                "enrollment {} has checked out; the device must enroll again",
                enrollment.id
            )));
        }
        if enrollment.has_pending {
            let event = self.event(
                claimed,
                Some(claimed),
                EventKind::IdentityPendingRefused,
                Outcome::Success,
                "the Mac's bound identity checked in again: every pending identity claiming it is refused",
            );
            let refused = self
                .store
                .refuse_pending_identities(claimed, self.now(), &event)
                .await?;
            tracing::warn!(udid = %claimed, refused, "bound identity checked in; pending identities refused");
        }
        Ok(enrollment)
    }

    async fn refuse_if_blocked(&self, device_id: &str) -> Result<(), ServiceError> {
        match self.store.enrollment(device_id).await? {
            Some(e) if e.blocked_at.is_some() => Err(ServiceError::Refused(format!(
                "{device_id} is blocked by an administrator"
            ))),
            _ => Ok(()),
        }
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

    /// Authenticate: who may speak for a UDID (see ARCHITECTURE.md, "Invariants").
    ///
    /// - the same certificate again: a repeat, everything kept;
    /// - no enrollment, or an ended one (CheckOut, acknowledged EraseDevice, admin unenroll): a new enrollment;
    /// - a new certificate *proven* to be the Mac's (bound to this UDID at issuance: a renewal profile's
    ///   challenge minted for it, or a RenewalReq signed by the bound certificate): identity renewal, the token
    ///   kept;
    /// - any other certificate while the UDID is enrolled: a *pending* identity beside the bound one, which
    ///   keeps working; only an admin's approval makes it the Mac's.
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
        for (key, value) in [
            ("UDID", msg.identity.udid.as_deref()),
            ("EnrollmentID", msg.identity.enrollment_id.as_deref()),
        ] {
            if let Some(value) = value {
                protocol::checkin::validate_device_id(value).map_err(|reason| {
                    ServiceError::Malformed(format!("Authenticate: {key} {reason}"))
                })?;
            }
        }
        let device_id = msg
            .identity
            .device_id()
            .ok_or_else(|| {
                ServiceError::Unauthenticated("Authenticate carries no UDID or EnrollmentID".into())
            })?
            .to_string();
        let holder = self
            .store
            .enrollment_by_fingerprint(&cert.fingerprint)
            .await?;
        if let Some(holder) = &holder {
            if holder.claimed_device_id() != device_id {
                return Err(ServiceError::Unauthenticated(format!(
                    "certificate {} is already bound to enrollment {}; refusing to bind it to {}",
                    short_fp(&cert.fingerprint),
                    holder.claimed_device_id(),
                    device_id
                )));
            }
            if holder.is_pending() && !holder.enabled {
                return Err(ServiceError::Refused(format!(
                    "identity {} was refused for {device_id}: the Mac's bound identity checked in after it",
                    short_fp(&cert.fingerprint)
                )));
            }
        }
        // A SCEP-issued certificate speaks for one device only: the UDID bound at issuance (renewal) or at its
        // first Authenticate.
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
        if let Some(e) = &existing
            && e.blocked_at.is_some()
        {
            return Err(ServiceError::Refused(format!(
                "{device_id} is blocked by an administrator"
            )));
        }
        let live = existing.as_ref().filter(|e| e.enabled);
        let same_cert =
            live.is_some_and(|e| e.cert_fingerprint.as_deref() == Some(cert.fingerprint.as_str()));
        let proof = issued.as_ref().and_then(|i| i.proof);
        let cert_not_after = Some(cert.not_after_unix.saturating_mul(1000));

        if let Some(bound) = live
            && !same_cert
            && proof.is_none()
        {
            return self
                .record_pending_identity(cert, &msg, bound, issued.and_then(|i| i.group_id))
                .await;
        }

        let mut e = match live {
            Some(e) => e.clone(),
            // A new enrollment, or one whose last ended: start clean, keeping only the admin's group choice.
            None => Enrollment {
                group_id: existing.as_ref().and_then(|e| e.group_id.clone()),
                ..Enrollment::new_device(&device_id, now)
            },
        };
        apply_authenticate(&mut e, &msg);
        e.cert_fingerprint = Some(cert.fingerprint.clone());
        e.cert_not_after = cert_not_after;
        let renewed = live.is_some() && !same_cert;
        if let Some(group) = issued.as_ref().and_then(|i| i.group_id.clone())
            && live.is_none()
        {
            // A new certificate from a token or a group's challenge: the device lands in that group (a repeat
            // Authenticate or a renewal keeps whatever group an admin chose since).
            e.group_id = Some(group);
        }
        e.enabled = true;
        e.token_update_count = 0;
        e.updated_at = now;
        e.last_seen_at = now;
        if renewed {
            let how = match proof {
                Some(store::IssuedProof::RenewalReq) => {
                    "a SCEP RenewalReq signed by its bound certificate"
                }
                _ => "a renewal profile's challenge minted for this Mac",
            };
            let detail = format!(
                "new identity certificate {} bound (proven by {how}); the previous certificate is no longer \
                 accepted",
                short_fp(&cert.fingerprint)
            );
            let event = self.event(
                &device_id,
                Some(&device_id),
                EventKind::EnrollmentIdentityRenewed,
                Outcome::Success,
                detail,
            );
            self.store.upsert_enrollment(&e, &event).await?;
        } else if same_cert {
            let event = self.event(
                &device_id,
                Some(&device_id),
                EventKind::EnrollmentAuthenticated,
                Outcome::Success,
                format!(
                    "identity certificate {} authenticated again",
                    short_fp(&cert.fingerprint)
                ),
            );
            self.store.upsert_enrollment(&e, &event).await?;
        } else {
            let event = self.event(
                &device_id,
                Some(&device_id),
                EventKind::EnrollmentAuthenticated,
                Outcome::Success,
                format!("identity certificate {} bound", short_fp(&cert.fingerprint)),
            );
            self.store.enroll_fresh(&e, &event).await?;
        }
        if !same_cert {
            // A new identity (renewed or enrolled afresh): no renewal of the previous one is outstanding.
            self.store.clear_identity_renewal(&device_id).await?;
        }
        if live.is_some() {
            // Kept across re-Authenticate (Fleet #41167), but no longer known to be the one the Mac holds.
            self.store
                .set_bootstrap_token_verified(&device_id, false)
                .await?;
        }
        Ok(())
    }

    /// Another certificate claims a UDID bound to a still-enrolled one, without proof: record it as a pending
    /// identity (its own row, push token, queue and token), leave the bound one untouched, and say so.
    async fn record_pending_identity(
        &self,
        cert: &CertInfo,
        msg: &Authenticate,
        bound: &Enrollment,
        issued_group: Option<String>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let id = store::pending_identity_id(&bound.id, &cert.fingerprint);
        let existing = self.store.enrollment(&id).await?;
        let mut p = existing.unwrap_or_else(|| Enrollment {
            pending_for: Some(bound.id.clone()),
            group_id: issued_group.or_else(|| bound.group_id.clone()),
            ..Enrollment::new_device(&id, now)
        });
        apply_authenticate(&mut p, msg);
        p.cert_fingerprint = Some(cert.fingerprint.clone());
        p.cert_not_after = Some(cert.not_after_unix.saturating_mul(1000));
        p.enabled = true;
        p.token_update_count = 0;
        p.updated_at = now;
        p.last_seen_at = now;
        let detail = format!(
            "a second identity certificate {} claims this Mac without proof (bound: {}); it is pending: the \
             bound certificate keeps working and the pending one gets none of its secrets. Approve it only if \
             the Mac was re-enrolled: escrowd device approve-identity {}",
            short_fp(&cert.fingerprint),
            bound
                .cert_fingerprint
                .as_deref()
                .map(short_fp)
                .unwrap_or("none"),
            bound.id
        );
        let event = self.event(
            &bound.id,
            Some(&id),
            EventKind::IdentityPending,
            Outcome::Refused,
            detail,
        );
        self.store.put_pending_identity(&p, &event).await?;
        tracing::warn!(udid = %bound.id, fingerprint = %short_fp(&cert.fingerprint), "pending identity recorded");
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
            let event = self.event(
                &device.id,
                Some(&id),
                EventKind::EnrollmentUserChannel,
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
                EventKind::EnrollmentCompleted,
                "first TokenUpdate: the device can now be pushed".to_string(),
            )
        } else {
            (
                EventKind::EnrollmentTokenUpdate,
                "push token updated".to_string(),
            )
        };
        let event = self.event(&e.id, Some(&e.id), kind, Outcome::Success, detail);
        self.store.upsert_enrollment(&e, &event).await?;
        self.store.clear_push_invalid(&e.id).await?;
        if first && !e.is_pending() {
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
        if device.is_pending() {
            // Ends the pending identity alone (its own token and queue), never the Mac's enrollment.
            let event = self.event(
                device.claimed_device_id(),
                Some(&device.id),
                EventKind::EnrollmentCheckedOut,
                Outcome::Success,
                "a pending identity removed its MDM profile (CheckOut); the Mac's enrollment is untouched",
            );
            self.store.checkout(&device.id, now, &event).await?;
            return Ok(());
        }
        let event = self.event(
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

/// Copies what an Authenticate says about the device onto its enrollment (absent keys keep what was known).
fn apply_authenticate(e: &mut Enrollment, msg: &Authenticate) {
    e.serial_number = msg.serial_number.clone().or(e.serial_number.take());
    e.os_version = msg.os_version.clone().or(e.os_version.take());
    e.build_version = msg.build_version.clone().or(e.build_version.take());
    e.product_name = msg.product_name.clone().or(e.product_name.take());
    e.model = msg.model.clone().or(e.model.take());
    e.model_name = msg.model_name.clone().or(e.model_name.take());
    e.device_name = msg.device_name.clone().or(e.device_name.take());
    e.topic = msg.topic.clone().or(e.topic.take());
}
