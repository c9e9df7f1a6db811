//! The Bootstrap Token handler (ARCHITECTURE.md): escrow, replacement, clearing and serving.
//!
//! Guarantees: the token is sealed (AEAD bound to enrollment id + field + key id) before it reaches the store;
//! the store write, its metadata and its event are one durable transaction that completes before the device
//! gets its 200; only a [`BoundDevice`] (the enrollment bound to the authenticated certificate) gets its own
//! token back; device channel only; a group with escrow switched off refuses Set and answers Get with empty
//! data. No event, log line or error carries the token.

use openssl::sha::sha256;
use protocol::checkin::{GetBootstrapToken, SetBootstrapToken};
use store::{BootstrapTokenRecord, Enrollment, Outcome};
use vault::Secret;
use zeroize::Zeroize;

use super::CheckinReply;
use super::enrollment::{EnrollmentLifecycle, LifecycleRoles};
use super::identity::BoundDevice;
use crate::secrets::Secrets;
use crate::{Clock, EventKind, ServiceError};

/// Whether the device's group allows escrow; `Err(reason)` when it does not. No group = escrow on.
pub(crate) async fn escrow_policy<S: ?Sized + store::Groups>(
    store: &S,
    device: &Enrollment,
) -> Result<Result<(), String>, ServiceError> {
    let Some(group_id) = device.group_id.as_deref() else {
        return Ok(Ok(()));
    };
    match store.group(group_id).await? {
        Some(g) if !g.bootstrap_escrow_enabled => Ok(Err(format!(
            "Bootstrap Token escrow is disabled for group '{}'",
            g.name
        ))),
        _ => Ok(Ok(())),
    }
}

/// What a SetBootstrapToken does, for the dispatcher's follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOutcome {
    /// The device sent no token: its escrowed token was removed.
    Cleared,
    /// The token was sealed and stored (new, or replacing the previous one).
    Escrowed,
}

/// Set/GetBootstrapToken of a bound device.
///
/// Store roles: Tokens (`bootstrap_token`, `put_bootstrap_token`, `clear_bootstrap_token`,
/// `mark_bootstrap_token_served`), Groups (`group`, for the escrow policy), Events; Enrollments only through
/// [`EnrollmentLifecycle::note_awaiting_configuration`].
pub(crate) struct BootstrapEscrow<'a, S: ?Sized = dyn store::Store> {
    store: &'a S,
    secrets: &'a Secrets,
    clock: &'a dyn Clock,
}

/// The store roles [`BootstrapEscrow`] takes.
pub(crate) trait EscrowRoles: store::Tokens + store::Groups + LifecycleRoles {}
impl<T: ?Sized + store::Tokens + store::Groups + LifecycleRoles> EscrowRoles for T {}

impl<'a, S: ?Sized + EscrowRoles> BootstrapEscrow<'a, S> {
    pub(crate) fn new(store: &'a S, secrets: &'a Secrets, clock: &'a dyn Clock) -> Self {
        BootstrapEscrow {
            store,
            secrets,
            clock,
        }
    }

    fn now(&self) -> store::Millis {
        self.clock.now_millis()
    }

    fn awaiting_configuration(&self) -> EnrollmentLifecycle<'a, S> {
        EnrollmentLifecycle::new(self.store, self.clock)
    }

    /// Refuse a user channel's Set/GetBootstrapToken, recording why; the error to answer with.
    async fn refuse_user_channel(
        &self,
        device: &BoundDevice,
        what: &str,
        kind: EventKind,
    ) -> ServiceError {
        let reason = format!("{what} is only accepted on the device channel");
        let event = crate::events::new_event(
            self.clock,
            device.id(),
            Some(device.id()),
            kind,
            Outcome::Refused,
            reason.clone(),
        );
        match self.store.record_event(&event).await {
            Ok(()) => ServiceError::Refused(reason),
            Err(e) => e.into(),
        }
    }

    /// SetBootstrapToken: escrow (seal, then store) the device's token, or clear it when the device sent none.
    ///
    /// `follow_ups` runs once the write is decided (the group allows it, the token is sealed), at the same
    /// time as the write: its own writes then ride the same group-commit batch, so the Mac's 200 waits for one
    /// batch, not two (in an escrow storm of Macs new to it, those sequential batches bounded the storm, not
    /// the CPU). The 200 still waits for both. Should the escrow's write fail, its follow-ups (commands asking
    /// the Mac about its users and security state) may have been queued all the same, which is harmless.
    pub(crate) async fn set<F: Future<Output = ()>>(
        &self,
        bound: &BoundDevice,
        msg: SetBootstrapToken,
        follow_ups: impl FnOnce(SetOutcome) -> F,
    ) -> Result<SetOutcome, ServiceError> {
        if msg.identity.is_user_channel() {
            return Err(self
                .refuse_user_channel(
                    bound,
                    "SetBootstrapToken",
                    EventKind::BootstrapEscrowRefused,
                )
                .await);
        }
        self.awaiting_configuration()
            .note_awaiting_configuration(bound, msg.awaiting_configuration)
            .await?;
        let device = bound.enrollment();
        // A Mac clearing its own token (`profiles remove -type bootstraptoken` sends an empty
        // SetBootstrapToken) is honoured in any group: escrow off refuses new tokens, not their removal.
        let Some(token) = msg.token_to_store() else {
            let event = crate::events::new_event(
                self.clock,
                &device.id,
                Some(&device.id),
                EventKind::BootstrapCleared,
                Outcome::Success,
                "device sent SetBootstrapToken without a token: escrowed token removed",
            );
            let (cleared, ()) = tokio::join!(
                self.store.clear_bootstrap_token(&device.id, &event),
                follow_ups(SetOutcome::Cleared)
            );
            cleared?;
            return Ok(SetOutcome::Cleared);
        };
        if let Err(reason) = escrow_policy(self.store, device).await? {
            let event = crate::events::new_event(
                self.clock,
                &device.id,
                Some(&device.id),
                EventKind::BootstrapEscrowRefused,
                Outcome::Refused,
                reason.clone(),
            );
            self.store.record_event(&event).await?;
            return Err(ServiceError::Refused(reason));
        }
        self.escrow(device, token, follow_ups(SetOutcome::Escrowed))
            .await?;
        Ok(SetOutcome::Escrowed)
    }

    /// Seal and store `token`; `follow_ups` is polled with the store write (see [`BootstrapEscrow::set`]).
    async fn escrow(
        &self,
        device: &Enrollment,
        token: &Secret<Vec<u8>>,
        follow_ups: impl Future<Output = ()>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let sealed = self.secrets.seal_token(&device.id, token.expose(), now)?;
        let digest = token_digest(&device.id, token);
        let previous = self.store.bootstrap_token(&device.id).await?;
        let (kind, detail) = match &previous {
            None => (
                EventKind::BootstrapEscrowed,
                format!("{} bytes sealed under key {}", token.len(), sealed.key_id),
            ),
            Some(p) if p.digest == digest => (
                EventKind::BootstrapReplaced,
                format!(
                    "same token escrowed again ({} bytes, key {})",
                    token.len(),
                    sealed.key_id
                ),
            ),
            Some(_) => (
                EventKind::BootstrapReplaced,
                format!(
                    "new token replaces the previous one ({} bytes, key {})",
                    token.len(),
                    sealed.key_id
                ),
            ),
        };
        let record = BootstrapTokenRecord {
            enrollment_id: device.id.clone(),
            sealed,
            size: i64::try_from(token.len()).unwrap_or(i64::MAX),
            digest,
            escrowed_at: now,
            verified: false,
            last_requested_at: previous.and_then(|p| p.last_requested_at),
        };
        let event = crate::events::new_event(
            self.clock,
            &device.id,
            Some(&device.id),
            kind,
            Outcome::Success,
            detail,
        );
        let (put, ()) = tokio::join!(self.store.put_bootstrap_token(&record, &event), follow_ups);
        put?;
        Ok(())
    }

    /// GetBootstrapToken: the device's own token, opened for it (empty data when none or escrow is off).
    /// `escrowed` is the bound enrollment's token as read with it
    /// ([`super::identity::DeviceIdentity::bound_device_with_token`]).
    pub(crate) async fn get(
        &self,
        bound: &BoundDevice,
        msg: GetBootstrapToken,
        escrowed: Option<store::BootstrapTokenRecord>,
    ) -> Result<CheckinReply, ServiceError> {
        if msg.identity.is_user_channel() {
            return Err(self
                .refuse_user_channel(bound, "GetBootstrapToken", EventKind::BootstrapRequested)
                .await);
        }
        self.awaiting_configuration()
            .note_awaiting_configuration(bound, msg.awaiting_configuration)
            .await?;
        let device = bound.enrollment();
        let empty = || -> Result<CheckinReply, ServiceError> {
            Ok(CheckinReply::Plist(
                protocol::checkin::get_bootstrap_token_response(None)?,
            ))
        };
        if let Err(reason) = escrow_policy(self.store, device).await? {
            let event = crate::events::new_event(
                self.clock,
                &device.id,
                Some(&device.id),
                EventKind::BootstrapRequested,
                Outcome::Refused,
                reason,
            );
            self.store.record_event(&event).await?;
            return empty();
        }
        let Some(record) = escrowed else {
            let event = crate::events::new_event(
                self.clock,
                &device.id,
                Some(&device.id),
                EventKind::BootstrapRequested,
                Outcome::Failure,
                "no Bootstrap Token is escrowed for this device: answered with empty data",
            );
            self.store.record_event(&event).await?;
            return empty();
        };
        let token = match self.secrets.open_token(&device.id, &record.sealed.blob) {
            Ok(t) => t,
            Err(err) => {
                let event = crate::events::new_event(
                    self.clock,
                    &device.id,
                    Some(&device.id),
                    EventKind::BootstrapRequested,
                    Outcome::Failure,
                    format!("escrowed token could not be opened: {err}"),
                );
                self.store.record_event(&event).await?;
                return Err(err.into());
            }
        };
        let body = protocol::checkin::get_bootstrap_token_response(Some(&token))?;
        let now = self.now();
        let event = crate::events::new_event(
            self.clock,
            &device.id,
            Some(&device.id),
            EventKind::BootstrapRequested,
            Outcome::Success,
            format!("served {} bytes; token verified", token.len()),
        );
        self.store
            .mark_bootstrap_token_served(&record, now, &event)
            .await?;
        Ok(CheckinReply::Plist(body))
    }
}

/// Short digest used to tell "same token re-escrowed" from "new token". Salted with the enrollment id so equal
/// digests cannot be correlated across devices; 64 bits of a SHA-256 reveal nothing usable about the token.
fn token_digest(enrollment_id: &str, token: &Secret<Vec<u8>>) -> String {
    let mut input = Vec::with_capacity(enrollment_id.len() + 1 + token.len());
    input.extend_from_slice(enrollment_id.as_bytes());
    input.push(0);
    input.extend_from_slice(token.expose());
    let digest = hex::encode(&sha256(&input)[..8]);
    input.zeroize();
    digest
}
