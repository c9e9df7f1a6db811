//! Authenticate: binding a certificate to a UDID, part of the identity layer (see `super`).
//!
//! Guarantees: a certificate is bound to at most one device enrollment; a repeat Authenticate with a new
//! certificate re-binds only when proven (identity renewal) and keeps the Bootstrap Token, marked not
//! re-verified; a certificate escrowd issued over SCEP binds to the UDID of its first Authenticate and never
//! speaks for another device, and puts the device in the group its enrollment token (or group challenge)
//! named; any other certificate claiming an enrolled UDID becomes a pending identity.

use pki::CertInfo;
use protocol::checkin::Authenticate;
use store::{Enrollment, Outcome};

use super::{DeviceIdentity, IdentityRoles, short_fp};
use crate::{EventKind, ServiceError};

impl<S: ?Sized + IdentityRoles> DeviceIdentity<'_, S> {
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
            let event = crate::events::new_event(
                self.clock,
                &device_id,
                Some(&device_id),
                EventKind::EnrollmentIdentityRenewed,
                Outcome::Success,
                detail,
            );
            self.store.upsert_enrollment(&e, &event).await?;
        } else if same_cert {
            let event = crate::events::new_event(
                self.clock,
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
            let event = crate::events::new_event(
                self.clock,
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
        let event = crate::events::new_event(
            self.clock,
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
