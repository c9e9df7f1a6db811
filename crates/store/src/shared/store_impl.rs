//! The role traits and `Store` for this backend: each method delegates to the shared query module for its concern (compiled per
//! backend, see `sqlite.rs`). Guarantees nothing beyond those modules; it only wires them to the trait.

use super::{
    BACKEND, BackendStore, agents, apikeys, commands, devices, edge, enroll, enrollments, events,
    groups, inventory, push, renewals, scep, schedule, secrets, tokens,
};
use crate::{
    ActionEnd, ActionStatus, Admin, AgentAction, AgentRegistration, AgentSecret, Agents, ApiKey,
    AuthFailureCount, AuthFailureFilter, BootstrapTokenRecord, CommandStatus, Commands,
    DeviceFacts, DeviceFilter, DeviceInventory, DeviceRecord, DeviceUser, Edge, Enrollment,
    EnrollmentToken, Enrollments, Event, EventFilter, Events, FactSource, Group,
    GroupAccountSettings, Groups, IdentityRenewal, Inventory, InventoryDue, IssuedCertificate,
    Millis, NewCommand, NewEvent, Push, PushInvalid, QueuedCommand, Renewals, ReportOutcome,
    Result, Scep, ScepChallenge, SealedSecret, Secrets, SecurityFacts, Store, TokenRefusal, Tokens,
};

#[async_trait::async_trait]
impl Store for BackendStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }
}

#[async_trait::async_trait]
impl Enrollments for BackendStore {
    async fn upsert_enrollment(&self, e: &Enrollment, event: &NewEvent) -> Result<()> {
        enrollments::upsert(&self.pool, e, event).await
    }

    async fn enrollment(&self, id: &str) -> Result<Option<Enrollment>> {
        enrollments::get(&self.pool, id).await
    }

    async fn enrollment_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Enrollment>> {
        enrollments::by_fingerprint(&self.pool, fingerprint).await
    }

    async fn touch_last_seen(&self, id: &str, at: Millis) -> Result<()> {
        enrollments::touch_last_seen(&self.pool, id, at).await
    }

    async fn checkout(&self, device_id: &str, at: Millis, event: &NewEvent) -> Result<bool> {
        enrollments::checkout(&self.pool, device_id, at, event).await
    }

    async fn count_enrollments(&self) -> Result<u64> {
        enrollments::count_all(&self.pool).await
    }

    async fn put_pending_identity(&self, pending: &Enrollment, event: &NewEvent) -> Result<()> {
        enrollments::put_pending(&self.pool, pending, event).await
    }

    async fn pending_identities(&self, device_id: &str) -> Result<Vec<Enrollment>> {
        enrollments::pending(&self.pool, device_id).await
    }

    async fn refuse_pending_identities(
        &self,
        device_id: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<u64> {
        enrollments::refuse_pending(&self.pool, device_id, at, event).await
    }

    async fn enroll_fresh(&self, e: &Enrollment, event: &NewEvent) -> Result<()> {
        enrollments::enroll_fresh(&self.pool, e, event).await
    }

    async fn promote_pending_identity(
        &self,
        device: &Enrollment,
        pending_id: &str,
        token: Option<&BootstrapTokenRecord>,
        event: &NewEvent,
    ) -> Result<()> {
        enrollments::promote_pending(&self.pool, device, pending_id, token, event).await
    }

    async fn set_device_blocked(
        &self,
        device_id: &str,
        blocked_at: Option<Millis>,
        clear_token: bool,
        event: &NewEvent,
    ) -> Result<bool> {
        enrollments::set_blocked(&self.pool, device_id, blocked_at, clear_token, event).await
    }
}

#[async_trait::async_trait]
impl Renewals for BackendStore {
    async fn put_identity_renewal(&self, r: &IdentityRenewal, event: &NewEvent) -> Result<()> {
        renewals::put(&self.pool, r, event).await
    }

    async fn identity_renewal(&self, device_id: &str) -> Result<Option<IdentityRenewal>> {
        renewals::get(&self.pool, device_id).await
    }

    async fn clear_identity_renewal(&self, device_id: &str) -> Result<bool> {
        renewals::clear(&self.pool, device_id).await
    }

    async fn identity_renewals_due(
        &self,
        expiring_by: Millis,
        at: Millis,
        limit: u32,
    ) -> Result<Vec<Enrollment>> {
        renewals::due(&self.pool, expiring_by, at, limit).await
    }

    async fn backfill_cert_not_after(
        &self,
        device_id: &str,
        fingerprint: &str,
        not_after: Millis,
    ) -> Result<bool> {
        renewals::backfill_not_after(&self.pool, device_id, fingerprint, not_after).await
    }
}

#[async_trait::async_trait]
impl Tokens for BackendStore {
    async fn put_bootstrap_token(
        &self,
        rec: &BootstrapTokenRecord,
        event: &NewEvent,
    ) -> Result<()> {
        tokens::put(&self.pool, rec, event).await
    }

    async fn bootstrap_token(&self, enrollment_id: &str) -> Result<Option<BootstrapTokenRecord>> {
        tokens::get(&self.pool, enrollment_id).await
    }

    async fn clear_bootstrap_token(&self, enrollment_id: &str, event: &NewEvent) -> Result<bool> {
        tokens::clear(&self.pool, enrollment_id, event).await
    }

    async fn mark_bootstrap_token_served(
        &self,
        enrollment_id: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<()> {
        tokens::mark_served(&self.pool, enrollment_id, at, event).await
    }

    async fn set_bootstrap_token_verified(
        &self,
        enrollment_id: &str,
        verified: bool,
    ) -> Result<()> {
        tokens::set_verified(&self.pool, enrollment_id, verified).await
    }
}

#[async_trait::async_trait]
impl Secrets for BackendStore {
    async fn sealed_secrets_page(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SealedSecret>> {
        secrets::page(&self.pool, after, limit).await
    }

    async fn replace_sealed_secret(
        &self,
        owner: &str,
        field: &str,
        expected_blob: &[u8],
        new_key_id: &str,
        new_blob: &[u8],
        at: Millis,
    ) -> Result<bool> {
        secrets::replace(
            &self.pool,
            owner,
            field,
            expected_blob,
            new_key_id,
            new_blob,
            at,
        )
        .await
    }

    async fn put_sealed_secret(&self, secret: &SealedSecret) -> Result<()> {
        secrets::put(&self.pool, secret).await
    }

    async fn sealed_secret(&self, owner: &str, field: &str) -> Result<Option<SealedSecret>> {
        secrets::get(&self.pool, owner, field).await
    }

    async fn sealed_secret_key_counts(&self) -> Result<Vec<(String, u64)>> {
        secrets::key_counts(&self.pool).await
    }
}

#[async_trait::async_trait]
impl Push for BackendStore {
    async fn mark_push_invalid(
        &self,
        enrollment_id: &str,
        token: &[u8],
        reason: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<bool> {
        push::mark_invalid(&self.pool, enrollment_id, token, reason, at, event).await
    }

    async fn clear_push_invalid(&self, enrollment_id: &str) -> Result<bool> {
        push::clear_invalid(&self.pool, enrollment_id).await
    }

    async fn push_invalid(&self, enrollment_id: &str) -> Result<Option<PushInvalid>> {
        push::invalid(&self.pool, enrollment_id).await
    }
}

#[async_trait::async_trait]
impl Scep for BackendStore {
    async fn create_enrollment_token(&self, t: &EnrollmentToken, event: &NewEvent) -> Result<()> {
        enroll::create_token(&self.pool, t, event).await
    }

    async fn enrollment_token(&self, id: &str) -> Result<Option<EnrollmentToken>> {
        enroll::token(&self.pool, id).await
    }

    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>> {
        enroll::list_tokens(&self.pool).await
    }

    async fn revoke_enrollment_token(&self, id: &str, at: Millis, event: &NewEvent) -> Result<()> {
        enroll::revoke_token(&self.pool, id, at, event).await
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &str,
        at: Millis,
        challenge: &ScepChallenge,
        event: &NewEvent,
    ) -> Result<std::result::Result<EnrollmentToken, TokenRefusal>> {
        enroll::redeem_token(&self.pool, token_hash, at, challenge, event).await
    }

    async fn consume_scep_challenge(
        &self,
        challenge_hash: &str,
        at: Millis,
    ) -> Result<Option<ScepChallenge>> {
        enroll::consume_challenge(&self.pool, challenge_hash, at).await
    }

    async fn put_scep_challenge(&self, c: &ScepChallenge) -> Result<()> {
        enroll::put_challenge(&self.pool, c).await
    }

    async fn record_issued_certificate(&self, c: &IssuedCertificate) -> Result<()> {
        enroll::record_issued(&self.pool, c).await
    }

    async fn issued_certificate(&self, fingerprint: &str) -> Result<Option<IssuedCertificate>> {
        enroll::issued(&self.pool, fingerprint).await
    }

    async fn bind_issued_certificate(
        &self,
        fingerprint: &str,
        device_id: &str,
    ) -> Result<Option<IssuedCertificate>> {
        enroll::bind_issued(&self.pool, fingerprint, device_id).await
    }

    async fn claim_scep_nonce(
        &self,
        nonce: &str,
        transaction_id: &str,
        at: Millis,
        forget_before: Millis,
        keep_at_most: u32,
    ) -> Result<bool> {
        scep::claim_nonce(
            &self.pool,
            nonce,
            transaction_id,
            at,
            forget_before,
            keep_at_most,
        )
        .await
    }
}

#[async_trait::async_trait]
impl Edge for BackendStore {
    async fn add_auth_failures(
        &self,
        counts: &[AuthFailureCount],
        forget_before: Millis,
        keep_at_most: u32,
    ) -> Result<()> {
        edge::add(&self.pool, counts, forget_before, keep_at_most).await
    }

    async fn auth_failures(&self, f: &AuthFailureFilter) -> Result<Vec<AuthFailureCount>> {
        edge::list(&self.pool, f).await
    }
}

#[async_trait::async_trait]
impl Groups for BackendStore {
    async fn create_group(&self, g: &Group) -> Result<()> {
        groups::create(&self.pool, g).await
    }

    async fn update_group(&self, g: &Group) -> Result<()> {
        groups::update(&self.pool, g).await
    }

    async fn group(&self, id: &str) -> Result<Option<Group>> {
        groups::get(&self.pool, id).await
    }

    async fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        groups::by_name(&self.pool, name).await
    }

    async fn list_groups(&self) -> Result<Vec<Group>> {
        groups::list(&self.pool).await
    }

    async fn group_account_settings(&self, group_id: &str) -> Result<Option<GroupAccountSettings>> {
        groups::account_settings(&self.pool, group_id).await
    }

    async fn put_group_account_settings(
        &self,
        settings: &GroupAccountSettings,
        event: &NewEvent,
    ) -> Result<()> {
        groups::put_account_settings(&self.pool, settings, event).await
    }

    async fn delete_group_account_settings(
        &self,
        group_id: &str,
        event: &NewEvent,
    ) -> Result<bool> {
        groups::delete_account_settings(&self.pool, group_id, event).await
    }

    async fn set_enrollment_group(
        &self,
        enrollment_id: &str,
        group_id: Option<&str>,
    ) -> Result<()> {
        groups::set_enrollment_group(&self.pool, enrollment_id, group_id).await
    }

    async fn delete_group(&self, id: &str, event: &NewEvent) -> Result<()> {
        groups::delete(&self.pool, id, event).await
    }
}

#[async_trait::async_trait]
impl Commands for BackendStore {
    async fn enqueue(&self, enrollment_ids: &[String], cmd: &NewCommand, at: Millis) -> Result<()> {
        commands::enqueue(&self.pool, enrollment_ids, cmd, at).await
    }

    async fn enqueue_sealed(
        &self,
        enrollment_ids: &[String],
        cmd: &NewCommand,
        sealed: &SealedSecret,
        at: Millis,
    ) -> Result<()> {
        commands::enqueue_sealed(&self.pool, enrollment_ids, cmd, sealed, at).await
    }

    async fn next_command(
        &self,
        enrollment_id: &str,
        skip_notnow: bool,
    ) -> Result<Option<QueuedCommand>> {
        commands::next(&self.pool, enrollment_id, skip_notnow).await
    }

    async fn record_command_result(
        &self,
        enrollment_id: &str,
        uuid: &str,
        status: CommandStatus,
        result: &[u8],
        at: Millis,
    ) -> Result<ReportOutcome> {
        commands::record_result(&self.pool, enrollment_id, uuid, status, result, at).await
    }

    async fn command(&self, enrollment_id: &str, uuid: &str) -> Result<Option<QueuedCommand>> {
        commands::get(&self.pool, enrollment_id, uuid).await
    }

    async fn command_history(&self, enrollment_id: &str, limit: u32) -> Result<Vec<QueuedCommand>> {
        commands::history(&self.pool, enrollment_id, limit).await
    }

    async fn active_queue_len(&self, enrollment_id: &str) -> Result<u64> {
        commands::active_len(&self.pool, enrollment_id).await
    }
}

#[async_trait::async_trait]
impl Events for BackendStore {
    async fn record_event(&self, e: &NewEvent) -> Result<()> {
        events::record(&self.pool, e).await
    }

    async fn events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        events::list(&self.pool, f).await
    }
}

#[async_trait::async_trait]
impl Admin for BackendStore {
    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()> {
        apikeys::create(&self.pool, key, event).await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        apikeys::by_hash(&self.pool, key_hash).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        apikeys::list(&self.pool).await
    }

    async fn revoke_api_key(&self, id: &str, at: Millis, event: &NewEvent) -> Result<()> {
        apikeys::revoke(&self.pool, id, at, event).await
    }

    async fn device_record(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        devices::record(&self.pool, device_id).await
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceRecord>> {
        devices::list(&self.pool, filter).await
    }
}

#[async_trait::async_trait]
impl Inventory for BackendStore {
    async fn put_device_facts(&self, device_id: &str, facts: &DeviceFacts) -> Result<()> {
        inventory::put_device(&self.pool, device_id, facts).await
    }

    async fn put_security_facts(&self, device_id: &str, facts: &SecurityFacts) -> Result<()> {
        inventory::put_security(&self.pool, device_id, facts).await
    }

    async fn device_inventory(&self, device_id: &str) -> Result<Option<DeviceInventory>> {
        inventory::get(&self.pool, device_id).await
    }

    async fn replace_device_users(
        &self,
        device_id: &str,
        source: FactSource,
        users: &[DeviceUser],
    ) -> Result<()> {
        inventory::replace_users(&self.pool, device_id, source, users).await
    }

    async fn device_users(&self, device_id: &str) -> Result<Vec<DeviceUser>> {
        inventory::users(&self.pool, device_id).await
    }

    async fn inventory_due(
        &self,
        requested_before: Millis,
        request_types: &[String],
        limit: u32,
    ) -> Result<Vec<InventoryDue>> {
        schedule::due(&self.pool, requested_before, request_types, limit).await
    }

    async fn mark_inventory_requested(&self, device_id: &str, at: Millis) -> Result<()> {
        schedule::mark_requested(&self.pool, device_id, at).await
    }

    async fn inventory_requested_at(&self, device_id: &str) -> Result<Option<Millis>> {
        schedule::requested_at(&self.pool, device_id).await
    }

    async fn active_request_types(&self, enrollment_id: &str) -> Result<Vec<String>> {
        schedule::active_request_types(&self.pool, enrollment_id).await
    }

    async fn claim_user_list_refresh(
        &self,
        device_id: &str,
        now: Millis,
        not_since: Millis,
    ) -> Result<bool> {
        schedule::claim_user_list_refresh(&self.pool, device_id, now, not_since).await
    }
}

#[async_trait::async_trait]
impl Agents for BackendStore {
    async fn create_agent_secret(
        &self,
        secret: &AgentSecret,
        cmd: &NewCommand,
        sealed: &SealedSecret,
        events: &[NewEvent],
    ) -> Result<u64> {
        agents::create_secret(&self.pool, secret, cmd, sealed, events).await
    }

    async fn agent_secret(&self, secret_hash: &str) -> Result<Option<AgentSecret>> {
        agents::secret(&self.pool, secret_hash).await
    }

    async fn agent_secrets(&self, device_id: &str) -> Result<Vec<AgentSecret>> {
        agents::secrets(&self.pool, device_id).await
    }

    async fn register_agent(
        &self,
        secret_hash: &str,
        reg: &AgentRegistration,
        replaces: Option<&str>,
        event: &NewEvent,
    ) -> Result<bool> {
        agents::register(&self.pool, secret_hash, reg, replaces, event).await
    }

    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRegistration>> {
        agents::get(&self.pool, agent_id).await
    }

    async fn agent_for_device(&self, device_id: &str) -> Result<Option<AgentRegistration>> {
        agents::for_device(&self.pool, device_id).await
    }

    async fn touch_agent(&self, agent_id: &str, at: Millis) -> Result<()> {
        agents::touch(&self.pool, agent_id, at).await
    }

    async fn claim_agent_nonce(
        &self,
        agent_id: &str,
        nonce: &str,
        at: Millis,
        forget_before: Millis,
    ) -> Result<bool> {
        agents::claim_nonce(&self.pool, agent_id, nonce, at, forget_before).await
    }

    async fn create_agent_action(&self, action: &AgentAction, event: &NewEvent) -> Result<()> {
        agents::create_action(&self.pool, action, event).await
    }

    async fn agent_action(&self, id: &str) -> Result<Option<AgentAction>> {
        agents::action(&self.pool, id).await
    }

    async fn agent_actions(&self, device_id: &str, limit: u32) -> Result<Vec<AgentAction>> {
        agents::list(&self.pool, device_id, limit).await
    }

    async fn expire_agent_actions(&self, at: Millis) -> Result<u64> {
        agents::expire(&self.pool, at).await
    }

    async fn deliver_agent_actions(&self, device_id: &str, at: Millis) -> Result<Vec<AgentAction>> {
        agents::deliver(&self.pool, device_id, at).await
    }

    async fn finish_agent_action(
        &self,
        device_id: &str,
        id: &str,
        status: ActionStatus,
        reason: Option<&str>,
        output: Option<&str>,
        at: Millis,
        events: &[NewEvent],
    ) -> Result<ActionEnd> {
        agents::finish(
            &self.pool, device_id, id, status, reason, output, at, events,
        )
        .await
    }
}
