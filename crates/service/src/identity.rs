//! Admin decisions about a Mac's identity (issue 11): approve a pending identity, block and unblock a Mac,
//! unenroll it.
//!
//! Guarantees: approving a pending identity never releases the Mac's old token: it is discarded, and the only
//! token the promoted identity keeps is the one it escrowed itself (opened under the pending row's owner and
//! resealed under the Mac's, so a ciphertext never moves between owners). Every decision is audited with the
//! admin's label. A blocked Mac's certificates are refused at check-in (`bound_device`, `authenticate`) and at
//! SCEP renewal until it is unblocked.

use store::{BootstrapTokenRecord, Enrollment, Outcome};

use crate::apikeys::Actor;
use crate::checkin::short_fp;
use crate::{EventKind, MdmService, Scoped, ServiceError};

/// A pending identity as the admin views show it (never its token).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingIdentity {
    pub id: String,
    pub fingerprint: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    /// False once refused (the Mac's bound identity checked in after it).
    pub active: bool,
    pub has_push_token: bool,
    pub has_bootstrap_token: bool,
    pub cert_not_after: Option<i64>,
}

impl MdmService {
    /// The pending identities claiming device `id` (404 for an unknown device).
    pub async fn admin_pending_identities(
        &self,
        id: &str,
    ) -> Result<Vec<PendingIdentity>, ServiceError> {
        self.scoped().admin_pending_identities(id).await
    }

    /// Make a pending identity the Mac's identity. `fingerprint` (or a unique prefix of at least 8 hex digits)
    /// picks one; it may be omitted when exactly one active pending identity exists. The Mac's old token is
    /// discarded, never released; the pending identity's own token (if it escrowed one) becomes the Mac's.
    pub async fn admin_approve_identity(
        &self,
        id: &str,
        fingerprint: Option<&str>,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        self.scoped()
            .admin_approve_identity(id, fingerprint, by)
            .await
    }

    /// Block a Mac: its certificates are refused at check-in and SCEP renewal until unblocked. With
    /// `clear_token` its escrowed token is deleted; otherwise it stays sealed. Returns whether a token was
    /// deleted.
    pub async fn admin_block_device(
        &self,
        id: &str,
        clear_token: bool,
        by: &Actor,
    ) -> Result<bool, ServiceError> {
        self.scoped().admin_block_device(id, clear_token, by).await
    }

    pub async fn admin_unblock_device(&self, id: &str, by: &Actor) -> Result<(), ServiceError> {
        self.scoped().admin_unblock_device(id, by).await
    }

    /// End a Mac's enrollment server-side (as a CheckOut would): its token is deleted, its queue emptied,
    /// its certificate no longer accepted; the next Authenticate for the UDID is a new enrollment.
    pub async fn admin_unenroll(&self, id: &str, by: &Actor) -> Result<bool, ServiceError> {
        self.scoped().admin_unenroll(id, by).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait IdentityAdminRoles:
    store::Enrollments + store::Tokens + store::Admin
{
}
impl<T: ?Sized + store::Enrollments + store::Tokens + store::Admin> IdentityAdminRoles for T {}

impl<S: ?Sized + IdentityAdminRoles> Scoped<'_, S> {
    /// The pending identities claiming device `id` (404 for an unknown device).
    pub(crate) async fn admin_pending_identities(
        &self,
        id: &str,
    ) -> Result<Vec<PendingIdentity>, ServiceError> {
        self.admin_device(id).await?;
        let mut out = Vec::new();
        for p in self.store.pending_identities(id).await? {
            let has_bootstrap_token = self.store.bootstrap_token(&p.id).await?.is_some();
            out.push(PendingIdentity {
                fingerprint: p.cert_fingerprint.clone().unwrap_or_default(),
                first_seen_at: p.enrolled_at,
                last_seen_at: p.last_seen_at,
                active: p.enabled,
                has_push_token: p.push_token.is_some(),
                has_bootstrap_token,
                cert_not_after: p.cert_not_after,
                id: p.id,
            });
        }
        Ok(out)
    }

    /// Make a pending identity the Mac's identity. `fingerprint` (or a unique prefix of at least 8 hex digits)
    /// picks one; it may be omitted when exactly one active pending identity exists. The Mac's old token is
    /// discarded, never released; the pending identity's own token (if it escrowed one) becomes the Mac's.
    pub(crate) async fn admin_approve_identity(
        &self,
        id: &str,
        fingerprint: Option<&str>,
        by: &Actor,
    ) -> Result<String, ServiceError> {
        let record = self.admin_device(id).await?;
        let candidates: Vec<Enrollment> = self
            .store
            .pending_identities(id)
            .await?
            .into_iter()
            .filter(|p| p.enabled)
            .filter(|p| match fingerprint {
                Some(fp) => p.cert_fingerprint.as_deref().is_some_and(|have| {
                    fp.len() >= 8 && have.starts_with(&fp.to_ascii_lowercase())
                }),
                None => true,
            })
            .collect();
        let pending = match candidates.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ServiceError::NotFound(match fingerprint {
                    Some(_) => format!(
                        "no active pending identity of {id} has that fingerprint (see `escrowd device {id}`)"
                    ),
                    None => format!("{id} has no active pending identity to approve"),
                }));
            }
            _ => {
                return Err(ServiceError::Conflict(format!(
                    "{id} has {} active pending identities: name one with --fingerprint",
                    candidates.len()
                )));
            }
        };
        let now = self.now();
        let mut device = record.enrollment;
        let new_fp = pending.cert_fingerprint.clone().unwrap_or_default();
        let old_fp = device.cert_fingerprint.clone();
        device.cert_fingerprint = pending.cert_fingerprint.clone();
        device.cert_not_after = pending.cert_not_after;
        device.push_token = pending.push_token.clone();
        device.push_magic = pending.push_magic.clone();
        device.topic = pending.topic.clone().or(device.topic);
        device.token_update_count = pending.token_update_count;
        device.enabled = true;
        device.updated_at = now;
        device.last_seen_at = device.last_seen_at.max(pending.last_seen_at);
        let token = match self.store.bootstrap_token(&pending.id).await? {
            Some(rec) => {
                let opened = self.secrets.open_token(&pending.id, &rec.sealed.blob)?;
                Some(BootstrapTokenRecord {
                    enrollment_id: device.id.clone(),
                    sealed: self.secrets.seal_token(&device.id, opened.expose(), now)?,
                    size: rec.size,
                    digest: rec.digest,
                    escrowed_at: rec.escrowed_at,
                    verified: false,
                    last_requested_at: rec.last_requested_at,
                })
            }
            None => None,
        };
        let detail = format!(
            "{}: identity {} approved as this Mac's (was {}); the previous Bootstrap Token was discarded{}",
            by.label(),
            short_fp(&new_fp),
            old_fp.as_deref().map(short_fp).unwrap_or("none"),
            if token.is_some() {
                "; the token this identity escrowed is kept"
            } else {
                ""
            }
        );
        let event = self.event(
            id,
            Some(id),
            EventKind::IdentityApproved,
            Outcome::Success,
            detail,
        );
        self.store
            .promote_pending_identity(&device, &pending.id, token.as_ref(), &event)
            .await?;
        tracing::warn!(udid = %id, fingerprint = %short_fp(&new_fp), "pending identity approved");
        Ok(new_fp)
    }

    /// Block a Mac: its certificates are refused at check-in and SCEP renewal until unblocked. With
    /// `clear_token` its escrowed token is deleted; otherwise it stays sealed. Returns whether a token was
    /// deleted.
    pub(crate) async fn admin_block_device(
        &self,
        id: &str,
        clear_token: bool,
        by: &Actor,
    ) -> Result<bool, ServiceError> {
        self.admin_device(id).await?;
        let detail = format!(
            "{}: blocked; its certificates are refused at check-in and SCEP renewal; Bootstrap Token {}",
            by.label(),
            if clear_token {
                "deleted"
            } else {
                "kept sealed"
            }
        );
        let event = self.event(
            id,
            Some(id),
            EventKind::DeviceBlocked,
            Outcome::Success,
            detail,
        );
        Ok(self
            .store
            .set_device_blocked(id, Some(self.now()), clear_token, &event)
            .await?)
    }

    pub(crate) async fn admin_unblock_device(
        &self,
        id: &str,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        self.admin_device(id).await?;
        let event = self.event(
            id,
            Some(id),
            EventKind::DeviceUnblocked,
            Outcome::Success,
            format!("{}: unblocked", by.label()),
        );
        self.store
            .set_device_blocked(id, None, false, &event)
            .await?;
        Ok(())
    }

    /// End a Mac's enrollment server-side (as a CheckOut would): its token is deleted, its queue emptied,
    /// its certificate no longer accepted; the next Authenticate for the UDID is a new enrollment.
    pub(crate) async fn admin_unenroll(&self, id: &str, by: &Actor) -> Result<bool, ServiceError> {
        let record = self.admin_device(id).await?;
        if !record.enrollment.enabled {
            return Err(ServiceError::Conflict(format!(
                "{id} is not enrolled (it checked out or was unenrolled already)"
            )));
        }
        let event = self.event(
            id,
            Some(id),
            EventKind::DeviceUnenrolled,
            Outcome::Success,
            format!(
                "{}: unenrolled; escrowed Bootstrap Token deleted; the next Authenticate is a new enrollment",
                by.label()
            ),
        );
        Ok(self.store.checkout(id, self.now(), &event).await?)
    }
}
