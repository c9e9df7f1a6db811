//! Identity renewal the way Macs do it (issue 11): escrowd re-sends the whole enrollment profile with
//! InstallProfile, the same identity keys as the installed one (see `MdmService::signed_profile`) and a new
//! SCEP payload whose one-time challenge is minted *for that UDID*. The Mac gets a certificate over SCEP that is
//! bound to its UDID at issuance, sends Authenticate and TokenUpdate with it, and `authenticate` treats it as a
//! proven renewal: the Bootstrap Token is kept and the renewal record cleared.
//!
//! Guarantees: a renewal is queued only for an enabled, unblocked device enrollment (never a pending identity
//! or a user channel); its challenge is stored hashed, valid [`RENEWAL_CHALLENGE_TTL_MS`], and never appears in
//! events, errors or logs; every renewal writes an `identity.renewal_queued` event (an admin's with their label).
//! The grace path (`MdmService::grace_connect`) answers a still-bound identity at most `grace_ms` past its
//! notAfter with nothing but its renewal profile, and only on the device command channel; everything else with
//! an expired certificate is refused as before.

use std::sync::Arc;

use protocol::command::{Command, CommandReport, Status};
use store::{CommandStatus, Enrollment, Group, IdentityRenewal, Millis, Outcome, ScepChallenge};
use vault::Secret;

use crate::apikeys::Actor;
use crate::checkin::{BoundDevice, ConnectReply, short_fp};
use crate::commands::new_command_uuid;
use crate::enroll::{ProfileUrls, random_hex, secret_hash};
use crate::{EventKind, MdmService, Scoped, ServiceError};

const DAY_MS: Millis = 24 * 3600 * 1000;
/// How long a renewal profile's one-time challenge stays usable: 14 days, far longer than `/enroll`'s hour,
/// because a Mac may be asleep or travelling when its renewal is queued. After that the renewal is no longer
/// outstanding and the schedule queues a new one.
pub const RENEWAL_CHALLENGE_TTL_MS: Millis = 14 * DAY_MS;
/// Default `--identity-renewal-days`: renew this many days before notAfter.
pub const DEFAULT_RENEWAL_DAYS: u32 = 30;
/// Default `--identity-grace-days`: how long past notAfter a bound identity may still fetch its renewal.
pub const DEFAULT_GRACE_DAYS: u32 = 30;
/// Default `--identity-renewal-batch`: at most this many renewals per schedule pass.
pub const DEFAULT_RENEWAL_BATCH: u32 = 100;

/// How renewal profiles are built and when they are sent.
#[derive(Debug, Clone)]
pub struct RenewalSettings {
    /// Where the profile points the Mac (the same URLs `/enroll` writes).
    pub urls: ProfileUrls,
    /// Renew automatically this long before notAfter; 0 = no automatic renewal (admins can still renew).
    pub renew_before_ms: Millis,
    /// How long past notAfter a still-bound identity may check in for its renewal profile; 0 = never.
    pub grace_ms: Millis,
}

impl RenewalSettings {
    pub fn new(urls: ProfileUrls, renewal_days: u32, grace_days: u32) -> Self {
        RenewalSettings {
            urls,
            renew_before_ms: i64::from(renewal_days) * DAY_MS,
            grace_ms: i64::from(grace_days) * DAY_MS,
        }
    }
}

/// What one pass of the renewal schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewalTick {
    /// Devices a renewal profile was queued for.
    pub queued: Vec<String>,
    pub failed: u64,
}

/// Where a Mac's identity stands, for the API, the CLI and diagnosis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityExpiry {
    /// notAfter of the bound certificate (Unix ms), when known.
    pub expires_at: Option<Millis>,
    /// The outstanding renewal (queued, challenge unexpired), if any.
    pub renewal: Option<IdentityRenewal>,
}

impl MdmService {
    /// Install the renewal settings (without them, renewal profiles cannot be queued and there is no grace).
    pub fn with_identity_renewal(mut self, settings: RenewalSettings) -> Self {
        self.renewal = Some(Arc::new(settings));
        self
    }

    pub fn renewal_settings(&self) -> Option<&RenewalSettings> {
        self.scoped().renewal_settings()
    }

    /// A Mac's identity expiry and outstanding renewal (404 for an unknown device).
    pub async fn identity_expiry(&self, id: &str) -> Result<IdentityExpiry, ServiceError> {
        self.scoped().identity_expiry(id).await
    }

    /// `POST /api/v1/devices/{id}/renew-identity`: queue a renewal profile for the Mac now (admin, audited).
    /// 404 for an unknown device; 409 for a checked-out or blocked Mac or without a push certificate.
    pub async fn admin_renew_identity(
        &self,
        id: &str,
        by: &Actor,
    ) -> Result<IdentityRenewal, ServiceError> {
        self.scoped().admin_renew_identity(id, by).await
    }

    /// One pass of the renewal schedule at `now`: queue renewal profiles for at most `limit` Macs whose bound
    /// certificate expires within the renewal window and that have no renewal outstanding, soonest first, then
    /// push them. Nothing when automatic renewal is off.
    pub async fn renew_expiring_identities(&self, limit: u32) -> Result<RenewalTick, ServiceError> {
        self.scoped().renew_expiring_identities(limit).await
    }

    /// The command channel of a Mac whose bound certificate is past its notAfter by at most the grace period
    /// (the identity layer checked that: `checkin::identity::DeviceIdentity::grace_device`): answered with
    /// nothing but its renewal profile (queued now if none is outstanding), recording only that command's
    /// result.
    pub(crate) async fn grace_connect(
        &self,
        bound: &BoundDevice,
        report: &CommandReport,
        body: &[u8],
    ) -> Result<ConnectReply, ServiceError> {
        self.scoped().grace_connect(bound, report, body).await
    }

    /// The Mac answered its renewal profile with an error (it refused the update): the renewal is no longer
    /// outstanding, so the schedule (or an admin) may queue another; the error itself is the command's result.
    pub(crate) async fn renewal_refused(
        &self,
        device_id: &str,
        uuid: &str,
    ) -> Result<(), ServiceError> {
        self.scoped().renewal_refused(device_id, uuid).await
    }
}

impl<'a, S: ?Sized> Scoped<'a, S> {
    pub(crate) fn renewal_settings(&self) -> Option<&'a RenewalSettings> {
        self.renewal.as_deref()
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait RenewalRoles:
    store::Renewals
    + store::Groups
    + store::Scep
    + store::Events
    + store::Enrollments
    + store::Commands
    + store::Push
    + store::Admin
    + store::Cluster
{
}
impl<
    T: ?Sized
        + store::Cluster
        + store::Renewals
        + store::Groups
        + store::Scep
        + store::Events
        + store::Enrollments
        + store::Commands
        + store::Push
        + store::Admin,
> RenewalRoles for T
{
}

impl<S: ?Sized + RenewalRoles> Scoped<'_, S> {
    fn require_renewal(&self) -> Result<&RenewalSettings, ServiceError> {
        self.renewal.as_deref().ok_or_else(|| {
            ServiceError::Internal("identity renewal is not configured on this server".into())
        })
    }

    /// A Mac's identity expiry and outstanding renewal (404 for an unknown device).
    pub(crate) async fn identity_expiry(&self, id: &str) -> Result<IdentityExpiry, ServiceError> {
        let device = self.admin_device(id).await?.enrollment;
        let renewal = self.outstanding_renewal(&device.id).await?;
        Ok(IdentityExpiry {
            expires_at: device.cert_not_after,
            renewal,
        })
    }

    /// `POST /api/v1/devices/{id}/renew-identity`: queue a renewal profile for the Mac now (admin, audited).
    /// 404 for an unknown device; 409 for a checked-out or blocked Mac or without a push certificate.
    pub(crate) async fn admin_renew_identity(
        &self,
        id: &str,
        by: &Actor,
    ) -> Result<IdentityRenewal, ServiceError> {
        by.require(store::ApiScope::Admin)?;
        let device = self.admin_device(id).await?.enrollment;
        if device.blocked_at.is_some() {
            return Err(ServiceError::Conflict(format!(
                "{id} is blocked; unblock it before renewing its identity"
            )));
        }
        if !device.enabled {
            return Err(ServiceError::Conflict(format!(
                "{id} is not enrolled (checked out); it must enroll again"
            )));
        }
        let renewal = self
            .queue_identity_renewal(&device, &format!("by {}", by.label()))
            .await?;
        self.nudge(&device.id).await;
        Ok(renewal)
    }

    /// Mint a one-time challenge for the Mac's UDID, build its enrollment profile with it, queue it as an
    /// InstallProfile and record the renewal (replacing an earlier one) with an event naming `why`.
    pub(crate) async fn queue_identity_renewal(
        &self,
        device: &Enrollment,
        why: &str,
    ) -> Result<IdentityRenewal, ServiceError> {
        let settings = self.require_renewal()?;
        if device.is_pending() || device.channel != store::Channel::Device {
            return Err(ServiceError::Invalid(
                "only a Mac's own device enrollment can be renewed".into(),
            ));
        }
        let topic = self.require_topic().await?;
        self.require_signer()?;
        let group = match &device.group_id {
            Some(g) => self.store.group(g).await?,
            None => None,
        }
        .unwrap_or_else(|| ungrouped(self.now()));
        let now = self.now();
        let challenge = Secret::new(random_hex(32)?);
        let record = ScepChallenge {
            challenge_hash: secret_hash(challenge.expose().as_bytes()),
            token_id: None,
            group_id: device.group_id.clone(),
            created_at: now,
            expires_at: now.saturating_add(RENEWAL_CHALLENGE_TTL_MS),
            used_at: None,
            device_id: Some(device.id.clone()),
        };
        let profile = self.signed_profile(&group, challenge, &topic, &settings.urls)?;
        self.store.put_scep_challenge(&record).await?;
        // carries_secret: true once sealed payloads land (the profile holds the one-time challenge).
        let command = Command::install_profile(new_command_uuid(), profile);
        let command_uuid = self
            .enqueue(std::slice::from_ref(&device.id), &command)
            .await?;
        let renewal = IdentityRenewal {
            device_id: device.id.clone(),
            command_uuid,
            queued_at: now,
            challenge_expires_at: record.expires_at,
            renews_not_after: device.cert_not_after,
        };
        let expires = device
            .cert_not_after
            .map_or("an unknown date".to_string(), |ms| {
                format!("{ms} (Unix ms)")
            });
        let detail = format!(
            "{why}: renewal profile {} queued for the identity certificate {} expiring at {expires}; its \
             one-time challenge is valid 14 days",
            renewal.command_uuid,
            device
                .cert_fingerprint
                .as_deref()
                .map(short_fp)
                .unwrap_or("none"),
        );
        let event = self.event(
            &device.id,
            Some(&device.id),
            EventKind::IdentityRenewalQueued,
            Outcome::Success,
            detail,
        );
        self.store.put_identity_renewal(&renewal, &event).await?;
        tracing::info!(udid = %device.id, command = %renewal.command_uuid, "identity renewal queued");
        Ok(renewal)
    }

    /// One pass of the renewal schedule at `now`: queue renewal profiles for at most `limit` Macs whose bound
    /// certificate expires within the renewal window and that have no renewal outstanding, soonest first, then
    /// push them. Nothing when automatic renewal is off.
    pub(crate) async fn renew_expiring_identities(
        &self,
        limit: u32,
    ) -> Result<RenewalTick, ServiceError> {
        let mut tick = RenewalTick::default();
        let Some(settings) = self.renewal.as_deref() else {
            return Ok(tick);
        };
        if settings.renew_before_ms <= 0 || limit == 0 {
            return Ok(tick);
        }
        let now = self.now();
        let due = self
            .store
            .identity_renewals_due(now.saturating_add(settings.renew_before_ms), now, limit)
            .await?;
        for device in due {
            // Another instance's pass may have the same list: one of them queues each device's renewal.
            if !self
                .claim_schedule_round("identity_renewal", &device.id, now)
                .await?
            {
                continue;
            }
            match self
                .queue_identity_renewal(&device, "automatic (the identity expires soon)")
                .await
            {
                Ok(_) => tick.queued.push(device.id),
                Err(e) => {
                    tick.failed += 1;
                    tracing::warn!(udid = %device.id, error = %e, "queueing an identity renewal failed");
                }
            }
        }
        if !tick.queued.is_empty()
            && let Err(e) = self.push(&tick.queued).await
        {
            tracing::debug!(error = %e, "renewal schedule: push failed");
        }
        Ok(tick)
    }

    async fn nudge(&self, device_id: &str) {
        if let Err(e) = self.push(&[device_id.to_string()]).await {
            tracing::debug!(udid = %device_id, error = %e, "push after queueing a renewal failed");
        }
    }

    /// The command channel of a Mac whose bound certificate is past its notAfter by at most the grace period
    /// (the identity layer checked that: `checkin::identity::DeviceIdentity::grace_device`): answered with
    /// nothing but its renewal profile (queued now if none is outstanding), recording only that command's
    /// result.
    pub(crate) async fn grace_connect(
        &self,
        bound: &BoundDevice,
        report: &CommandReport,
        body: &[u8],
    ) -> Result<ConnectReply, ServiceError> {
        let settings = self.require_renewal()?;
        let cert = bound.cert();
        let device = bound.enrollment();
        let now = self.now();
        let not_after = cert.not_after_unix.saturating_mul(1000);
        let mut renewal = self.outstanding_renewal(&device.id).await?;
        let mut active = match &renewal {
            Some(r) => self.active_command(&device.id, &r.command_uuid).await?,
            None => None,
        };
        // The Mac may report on its renewal profile with the old certificate (a NotNow, say).
        if let (Some(r), Some(uuid)) = (&renewal, report.command_uuid.as_deref())
            && uuid == r.command_uuid
            && report.status != Status::Idle
            && active.is_some()
        {
            let status = match report.status {
                Status::Acknowledged => CommandStatus::Acknowledged,
                Status::Error => CommandStatus::Error,
                Status::CommandFormatError => CommandStatus::CommandFormatError,
                Status::NotNow | Status::Idle => CommandStatus::NotNow,
            };
            self.store
                .record_command_result(&device.id, uuid, status, body, now)
                .await?;
            active = self.active_command(&device.id, uuid).await?;
        }
        if active.is_none() {
            let r = self
                .queue_identity_renewal(
                    device,
                    "grace: the expired identity checked in without a renewal outstanding",
                )
                .await?;
            active = self.active_command(&device.id, &r.command_uuid).await?;
            renewal = Some(r);
        }
        let detail = format!(
            "identity certificate {} expired {} s ago (grace {} days): answered only with its renewal profile {}",
            short_fp(&cert.fingerprint),
            (now - not_after) / 1000,
            settings.grace_ms / DAY_MS,
            renewal.as_ref().map_or("", |r| r.command_uuid.as_str()),
        );
        let event = self.event(
            &device.id,
            Some(&device.id),
            EventKind::IdentityRenewalGrace,
            Outcome::Success,
            detail,
        );
        self.store.record_event(&event).await?;
        self.store.touch_last_seen(&device.id, now).await?;
        tracing::info!(udid = %device.id, "expired identity within grace: renewal profile only");
        Ok(match active {
            // After a NotNow, Apple's rule: not again in the same session.
            Some(cmd)
                if !(report.status == Status::NotNow && cmd.status == CommandStatus::NotNow) =>
            {
                ConnectReply::Command(cmd.payload)
            }
            _ => ConnectReply::Idle,
        })
    }

    /// The Mac answered its renewal profile with an error (it refused the update): the renewal is no longer
    /// outstanding, so the schedule (or an admin) may queue another; the error itself is the command's result.
    pub(crate) async fn renewal_refused(
        &self,
        device_id: &str,
        uuid: &str,
    ) -> Result<(), ServiceError> {
        let Some(r) = self.store.identity_renewal(device_id).await? else {
            return Ok(());
        };
        if r.command_uuid == uuid {
            self.store.clear_identity_renewal(device_id).await?;
            tracing::warn!(udid = %device_id, command = %uuid, "the Mac refused its renewal profile");
        }
        Ok(())
    }

    async fn active_command(
        &self,
        device_id: &str,
        uuid: &str,
    ) -> Result<Option<store::QueuedCommand>, ServiceError> {
        Ok(self
            .store
            .command(device_id, uuid)
            .await?
            .filter(|c| matches!(c.status, CommandStatus::Pending | CommandStatus::NotNow)))
    }
}

/// The profile settings of a Mac in no group: escrow on (escrowd's default policy), no prompt.
fn ungrouped(now: Millis) -> Group {
    Group {
        id: String::new(),
        name: "no group".into(),
        bootstrap_escrow_enabled: true,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: now,
        updated_at: now,
    }
}

impl<S: ?Sized + store::Renewals> Scoped<'_, S> {
    /// The device's renewal record while its challenge is unexpired.
    pub(crate) async fn outstanding_renewal(
        &self,
        device_id: &str,
    ) -> Result<Option<IdentityRenewal>, ServiceError> {
        let now = self.now();
        Ok(self
            .store
            .identity_renewal(device_id)
            .await?
            .filter(|r| r.challenge_expires_at > now))
    }
}
