//! The Bootstrap Token lifecycle (ARCHITECTURE.md): escrow, replacement, clearing and serving.
//!
//! Guarantees: the token is sealed (AEAD bound to enrollment id + field + key id) before it reaches the store;
//! the store write, its metadata and its event are one durable transaction that completes before the device
//! gets its 200; only the enrollment bound to the authenticated certificate gets its own token back; device
//! channel only; a group with escrow switched off refuses Set and answers Get with empty data. No event, log
//! line or error carries the token.

use openssl::sha::sha256;
use pki::CertInfo;
use protocol::checkin::{GetBootstrapToken, SetBootstrapToken};
use store::{BootstrapTokenRecord, Enrollment, Outcome, SealedSecret};
use vault::{SealContext, Secret};
use zeroize::Zeroize;

use crate::checkin::CheckinReply;
use crate::{EventKind, MdmService, ServiceError};

/// The field name sealed tokens are bound to.
pub const BOOTSTRAP_TOKEN_FIELD: &str = "bootstrap_token";

impl MdmService {
    /// Whether the device's group allows escrow; `Err(reason)` when it does not. No group = escrow on.
    pub(crate) async fn escrow_policy(
        &self,
        device: &Enrollment,
    ) -> Result<Result<(), String>, ServiceError> {
        let Some(group_id) = device.group_id.as_deref() else {
            return Ok(Ok(()));
        };
        match self.store.group(group_id).await? {
            Some(g) if !g.bootstrap_escrow_enabled => Ok(Err(format!(
                "Bootstrap Token escrow is disabled for group '{}'",
                g.name
            ))),
            _ => Ok(Ok(())),
        }
    }

    async fn refuse_user_channel(
        &self,
        device: &Enrollment,
        what: &str,
        kind: EventKind,
    ) -> Result<CheckinReply, ServiceError> {
        let reason = format!("{what} is only accepted on the device channel");
        let event = self.event(
            &device.id,
            Some(&device.id),
            kind,
            Outcome::Refused,
            reason.clone(),
        );
        self.store.record_event(&event).await?;
        Err(ServiceError::Refused(reason))
    }

    pub(crate) async fn set_bootstrap_token(
        &self,
        cert: &CertInfo,
        msg: SetBootstrapToken,
    ) -> Result<CheckinReply, ServiceError> {
        let device = self.bound_device(cert, &msg.identity).await?;
        if msg.identity.is_user_channel() {
            return self
                .refuse_user_channel(
                    &device,
                    "SetBootstrapToken",
                    EventKind::BootstrapEscrowRefused,
                )
                .await;
        }
        self.note_awaiting_configuration(&device, msg.awaiting_configuration)
            .await?;
        // A Mac clearing its own token (`profiles remove -type bootstraptoken` sends an empty
        // SetBootstrapToken) is honoured in any group: escrow off refuses new tokens, not their removal.
        let Some(token) = msg.token_to_store() else {
            let event = self.event(
                &device.id,
                Some(&device.id),
                EventKind::BootstrapCleared,
                Outcome::Success,
                "device sent SetBootstrapToken without a token: escrowed token removed",
            );
            self.store.clear_bootstrap_token(&device.id, &event).await?;
            if !device.is_pending() {
                self.refresh_user_list(&device.id, "a SetBootstrapToken")
                    .await;
            }
            return Ok(CheckinReply::Empty);
        };
        if let Err(reason) = self.escrow_policy(&device).await? {
            let event = self.event(
                &device.id,
                Some(&device.id),
                EventKind::BootstrapEscrowRefused,
                Outcome::Refused,
                reason.clone(),
            );
            self.store.record_event(&event).await?;
            return Err(ServiceError::Refused(reason));
        }
        self.escrow(&device, token).await?;
        if !device.is_pending() {
            // UserList first, so it rides on the push the SecurityInfo re-ask sends.
            self.refresh_user_list(&device.id, "a SetBootstrapToken")
                .await;
            self.requery_security_info(&device.id).await;
        }
        Ok(CheckinReply::Empty)
    }

    async fn escrow(
        &self,
        device: &Enrollment,
        token: &Secret<Vec<u8>>,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let ctx = SealContext {
            owner: &device.id,
            field: BOOTSTRAP_TOKEN_FIELD,
        };
        let sealed = self.vault.seal(ctx, token.expose())?;
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
            sealed: SealedSecret {
                owner: device.id.clone(),
                field: BOOTSTRAP_TOKEN_FIELD.to_string(),
                key_id: sealed.key_id,
                blob: sealed.blob,
                updated_at: now,
            },
            size: i64::try_from(token.len()).unwrap_or(i64::MAX),
            digest,
            escrowed_at: now,
            verified: false,
            last_requested_at: previous.and_then(|p| p.last_requested_at),
        };
        let event = self.event(&device.id, Some(&device.id), kind, Outcome::Success, detail);
        self.store.put_bootstrap_token(&record, &event).await?;
        Ok(())
    }

    pub(crate) async fn get_bootstrap_token(
        &self,
        cert: &CertInfo,
        msg: GetBootstrapToken,
    ) -> Result<CheckinReply, ServiceError> {
        let device = self.bound_device(cert, &msg.identity).await?;
        if msg.identity.is_user_channel() {
            return self
                .refuse_user_channel(&device, "GetBootstrapToken", EventKind::BootstrapRequested)
                .await;
        }
        self.note_awaiting_configuration(&device, msg.awaiting_configuration)
            .await?;
        let empty = || -> Result<CheckinReply, ServiceError> {
            Ok(CheckinReply::Plist(
                protocol::checkin::get_bootstrap_token_response(None)?,
            ))
        };
        if let Err(reason) = self.escrow_policy(&device).await? {
            let event = self.event(
                &device.id,
                Some(&device.id),
                EventKind::BootstrapRequested,
                Outcome::Refused,
                reason,
            );
            self.store.record_event(&event).await?;
            return empty();
        }
        let Some(record) = self.store.bootstrap_token(&device.id).await? else {
            let event = self.event(
                &device.id,
                Some(&device.id),
                EventKind::BootstrapRequested,
                Outcome::Failure,
                "no Bootstrap Token is escrowed for this device: answered with empty data",
            );
            self.store.record_event(&event).await?;
            return empty();
        };
        let ctx = SealContext {
            owner: &device.id,
            field: BOOTSTRAP_TOKEN_FIELD,
        };
        let token = match self.vault.open(ctx, &record.sealed.blob) {
            Ok(t) => t,
            Err(err) => {
                let event = self.event(
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
        let event = self.event(
            &device.id,
            Some(&device.id),
            EventKind::BootstrapRequested,
            Outcome::Success,
            format!("served {} bytes; token verified", token.len()),
        );
        self.store
            .mark_bootstrap_token_served(&device.id, now, &event)
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
