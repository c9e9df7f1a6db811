//! The role traits [`crate::Store`] is the sum of: one small trait per concern, so a component can ask only for
//! the roles it uses (`Arc<dyn Tokens>` upcasts from `Arc<dyn Store>`). Each trait's doc comment states what
//! its methods guarantee; both backends implement every role next to its queries (see `sql/`).
//!
//! Every method that changes state and takes a [`NewEvent`] writes the event in the same transaction.
//!
//! Over 500 lines on purpose: it holds only trait declarations and the doc comments stating their guarantees
//! (no logic); together they are the store's whole contract, read and reviewed as one list. Queries live in
//! `sql/<concern>.rs`.

use crate::{
    ActionEnd, ActionStatus, AgentAction, AgentRegistration, AgentSecret, ApiKey, AuthFailureCount,
    AuthFailureFilter, BootstrapTokenRecord, CommandStatus, ConsoleAdminAccount, ConsoleSession,
    DeviceFacts, DeviceFilter, DeviceInventory, DeviceRecord, DeviceUser, Enrollment,
    EnrollmentToken, Event, EventFilter, FactSource, FleetCounts, Group, GroupAccountSettings,
    IdentityRenewal, InventoryDue, IssuedCertificate, Millis, NewCommand, NewEvent, PushInvalid,
    QueueDepth, QueuedCommand, ReportOutcome, Result, ScepChallenge, SealedSecret, SecurityFacts,
    Signal, SignalListener, TokenRefusal, UserListClaim,
};
#[allow(unused_imports)] // doc links
use crate::{
    BOOTSTRAP_TOKEN_FIELD, COMMAND_PAYLOAD_FIELD, MAX_AUTH_FAILURE_DETAIL, command_payload_owner,
};

/// Enrollments, certificate binding and identity continuity (pending identities, blocking). Guarantees: a
/// certificate fingerprint is bound to at most one enrollment (checked in the transaction and by a unique index);
/// CheckOut disables, deletes the Bootstrap Token and empties the queue in one transaction with its event, and
/// never deletes events; every change that takes a [`NewEvent`] writes it in the same transaction.
#[async_trait::async_trait]
pub trait Enrollments: Send + Sync {
    /// Insert or replace the whole row (keyed by id). If `cert_fingerprint` is Some and another enrollment
    /// holds it: Conflict. An unknown `group_id`: NotFound. Writes `event` in the same transaction.
    async fn upsert_enrollment(&self, e: &Enrollment, event: &NewEvent) -> Result<()>;
    async fn enrollment(&self, id: &str) -> Result<Option<Enrollment>>;
    /// The enabled-or-not device-channel enrollment currently bound to this certificate fingerprint.
    async fn enrollment_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Enrollment>>;
    /// [`Self::enrollment_by_fingerprint`] and, in the same read, whether that enrollment's command queue holds
    /// any entry (false: an Idle poll has nothing to fetch; true: read the queue). A check-in's first read.
    async fn enrollment_by_fingerprint_with_queue(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(Enrollment, bool)>>;
    /// NotFound if the enrollment does not exist.
    async fn touch_last_seen(&self, id: &str, at: Millis) -> Result<()>;
    /// Like [`Self::touch_last_seen`] for the hot path (Idle polls), but allowed to lag: on SQLite the
    /// group-commit writer writes the waiting notes once per [`crate::DEFER_BOUND`], and `close()` flushes
    /// them; several notes for one id before a flush cost one write (the latest time wins). Never moves `last_seen_at`
    /// backwards; an unknown id changes nothing (no error: the write may run after the call returned).
    async fn note_last_seen(&self, id: &str, at: Millis) -> Result<()>;
    /// CheckOut: disable the device enrollment and its user channels, delete the Bootstrap Token (secret +
    /// metadata), delete their active queue entries, write `event`; one transaction. Returns whether a
    /// Bootstrap Token was deleted. An unknown device changes nothing but still records `event`.
    async fn checkout(&self, device_id: &str, at: Millis, event: &NewEvent) -> Result<bool>;
    async fn count_enrollments(&self) -> Result<u64>;
    /// Records or refreshes pending identity `pending` (`pending_for` set) and marks the Mac it claims.
    async fn put_pending_identity(&self, pending: &Enrollment, event: &NewEvent) -> Result<()>;
    /// Pending identities claiming `device_id`, refused ones included, oldest first.
    async fn pending_identities(&self, device_id: &str) -> Result<Vec<Enrollment>>;
    /// The bound certificate checked in: refuse every enabled pending identity of `device_id` from now on.
    async fn refuse_pending_identities(
        &self,
        device_id: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<u64>;
    /// A new enrollment of `e.id` (none before, or the last one ended): writes it and forgets the UDID's
    /// pending identities.
    async fn enroll_fresh(&self, e: &Enrollment, event: &NewEvent) -> Result<()>;
    /// An admin approved pending identity `pending_id`: discards the Mac's old token, writes `device` (now
    /// carrying the pending certificate) and stores `token` (the pending identity's own, resealed for it).
    async fn promote_pending_identity(
        &self,
        device: &Enrollment,
        pending_id: &str,
        token: Option<&BootstrapTokenRecord>,
        event: &NewEvent,
    ) -> Result<()>;
    /// Blocks (`Some(at)`) or unblocks (`None`) a device; `clear_token` deletes its token too. Returns whether
    /// a token was deleted.
    async fn set_device_blocked(
        &self,
        device_id: &str,
        blocked_at: Option<Millis>,
        clear_token: bool,
        event: &NewEvent,
    ) -> Result<bool>;
}

/// Identity renewals (issue 11, renewal profiles). Guarantees: at most one renewal record per Mac (a new one
/// replaces it); a Mac is due only while it is an enabled, finished, unblocked device enrollment (never a pending
/// identity or a user channel) whose bound certificate expires by the given time and which has no renewal
/// outstanding (none recorded, or its challenge expired); due Macs come soonest expiry first, then by id, at most
/// one page.
#[async_trait::async_trait]
pub trait Renewals: Send + Sync {
    /// Records that a renewal profile was queued for device `r.device_id` (replacing an earlier record) and
    /// writes `event`, one transaction. NotFound for an unknown device enrollment (or a pending identity).
    async fn put_identity_renewal(&self, r: &IdentityRenewal, event: &NewEvent) -> Result<()>;
    async fn identity_renewal(&self, device_id: &str) -> Result<Option<IdentityRenewal>>;
    /// Forget the device's renewal record (its proven renewal happened). Returns whether there was one.
    async fn clear_identity_renewal(&self, device_id: &str) -> Result<bool>;
    /// Enabled, finished (`token_update_count > 0`), unblocked device enrollments (no pending identities)
    /// whose bound certificate's notAfter is at or before `expiring_by` and that have no renewal outstanding
    /// at `at` (none recorded, or its challenge expired). Soonest expiry first, then id. `limit` 0 means 100;
    /// at most 10,000.
    async fn identity_renewals_due(
        &self,
        expiring_by: Millis,
        at: Millis,
        limit: u32,
    ) -> Result<Vec<Enrollment>>;
    /// Record the bound certificate's notAfter on an enrollment bound before escrowd stored it (set only while
    /// `fingerprint` is still bound to `device_id` and none is recorded). Returns whether it was set.
    async fn backfill_cert_not_after(
        &self,
        device_id: &str,
        fingerprint: &str,
        not_after: Millis,
    ) -> Result<bool>;
}

/// Escrowed Bootstrap Tokens (metadata + sealed secret). Guarantees: the metadata row and its sealed secret
/// (owner = enrollment id, field = [`BOOTSTRAP_TOKEN_FIELD`]) are written and deleted together in one durable
/// transaction with the caller's event; a token is only stored for an existing enrollment, under its own owner
/// and field.
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    /// Upsert secret + metadata + event in one durable transaction. NotFound for an unknown enrollment;
    /// Conflict if `rec.sealed` is not owned by (`rec.enrollment_id`, [`BOOTSTRAP_TOKEN_FIELD`]).
    async fn put_bootstrap_token(&self, rec: &BootstrapTokenRecord, event: &NewEvent)
    -> Result<()>;
    async fn bootstrap_token(&self, enrollment_id: &str) -> Result<Option<BootstrapTokenRecord>>;
    /// A GetBootstrapToken's reads: [`Enrollments::enrollment_by_fingerprint_with_queue`] and, for that
    /// enrollment, [`Tokens::bootstrap_token`] (SQLite: one statement, one read transaction; PostgreSQL: the
    /// two reads).
    async fn enrollment_by_fingerprint_with_token(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(Enrollment, bool, Option<BootstrapTokenRecord>)>>;
    /// Delete secret + metadata, write event; returns whether something was deleted. The event is written
    /// either way.
    async fn clear_bootstrap_token(&self, enrollment_id: &str, event: &NewEvent) -> Result<bool>;
    /// A successful GetBootstrapToken, called after serving `served` (read with [`Tokens::bootstrap_token`]):
    /// the event is durable when this returns, always (a token released is always audited: when it was
    /// cleared in between, the event is still written and the mark matches nothing). A token not yet verified
    /// gets verified = true and last_requested_at = at in the same durable transaction. For one already
    /// verified only last_requested_at is left to write, and it may lag like a Mac's last-seen (SQLite: at
    /// most about [`crate::DEFER_BOUND`]); it never moves backwards and never lands on a token escrowed
    /// since (matched by `escrowed_at`).
    async fn mark_bootstrap_token_served(
        &self,
        served: &BootstrapTokenRecord,
        at: Millis,
        event: &NewEvent,
    ) -> Result<()>;
    /// Set the verified flag (false on a repeat Authenticate: the token is kept but not re-verified).
    /// No-op if there is no token.
    async fn set_bootstrap_token_verified(&self, enrollment_id: &str, verified: bool)
    -> Result<()>;
}

/// Generic sealed secrets (stand-alone keys, and every sealed value for key rotation). Guarantees: sealed values
/// are opaque bytes here and never appear in Debug output or errors; paging visits every secret exactly once in
/// bytewise (owner, field) order; a rewrap only lands if the blob is still the one the rewrapper read
/// (compare-and-swap in one statement).
#[async_trait::async_trait]
pub trait Secrets: Send + Sync {
    /// Page through every sealed secret ordered bytewise by (owner, field), strictly after `after`.
    /// `limit` 0 means 100; at most 1000.
    async fn sealed_secrets_page(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SealedSecret>>;
    /// Compare-and-swap: replace the blob only if it still equals `expected_blob` (a concurrent write wins).
    /// Returns whether it was replaced.
    async fn replace_sealed_secret(
        &self,
        owner: &str,
        field: &str,
        expected_blob: &[u8],
        new_key_id: &str,
        new_blob: &[u8],
        at: Millis,
    ) -> Result<bool>;
    /// Insert or replace a sealed secret that stands alone (a CA key, a push certificate key), keyed by
    /// (owner, field). Bootstrap Tokens and sealed command payloads are refused (Conflict): they go through
    /// `put_bootstrap_token` and `enqueue_sealed`.
    async fn put_sealed_secret(&self, secret: &SealedSecret) -> Result<()>;
    async fn sealed_secret(&self, owner: &str, field: &str) -> Result<Option<SealedSecret>>;
    /// How many secrets are sealed under each key id, ordered by key id.
    async fn sealed_secret_key_counts(&self) -> Result<Vec<(String, u64)>>;
}

/// Push token validity (APNs refused the token). Guarantees: a mark is only set while the enrollment still
/// holds the push token APNs refused (a TokenUpdate that arrived meanwhile wins), and is written in one
/// transaction with its event.
#[async_trait::async_trait]
pub trait Push: Send + Sync {
    /// Mark the enrollment's push token invalid with APNs' `reason`, but only while its push token is still
    /// `token` (a TokenUpdate that arrived meanwhile wins); writes `event` in the same transaction when it
    /// marks. Returns whether it marked (false for an unknown enrollment or a changed token; no event then).
    async fn mark_push_invalid(
        &self,
        enrollment_id: &str,
        token: &[u8],
        reason: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<bool>;
    /// Remove the mark (a new TokenUpdate). Returns whether there was one.
    async fn clear_push_invalid(&self, enrollment_id: &str) -> Result<bool>;
    /// The mark, if the enrollment has one (None for an unknown enrollment too).
    async fn push_invalid(&self, enrollment_id: &str) -> Result<Option<PushInvalid>>;
}

/// Enrollment tokens, one-time SCEP challenges, SCEP replay nonces and issued certificates. Guarantees: a token
/// use is consumed and its challenge stored in one transaction, and only when the token is valid at that moment
/// (concurrent redeemers never exceed `max_uses`); a challenge is consumed at most once; a nonce is claimed at
/// most once while it is remembered, and the remembered nonces stay bounded; a certificate binds to one device,
/// first Authenticate wins.
#[async_trait::async_trait]
pub trait Scep: Send + Sync {
    /// Store a new token (hash only) and its event in one transaction. NotFound for an unknown group;
    /// Conflict on a duplicate id or hash.
    async fn create_enrollment_token(&self, t: &EnrollmentToken, event: &NewEvent) -> Result<()>;
    async fn enrollment_token(&self, id: &str) -> Result<Option<EnrollmentToken>>;
    /// Every token (revoked, expired and used up included), oldest first.
    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>>;
    /// Mark an active token revoked + event. NotFound if unknown or already revoked.
    async fn revoke_enrollment_token(&self, id: &str, at: Millis, event: &NewEvent) -> Result<()>;
    /// Redeem a token at `at`: if it exists, is not revoked, not expired and not used up, count one use,
    /// store `challenge` (its token_id and group_id set from the token) and write `event` (its subject set
    /// to the token id), all in one transaction, and return the token (uses counted).
    /// Otherwise nothing changes and the reason is returned. Concurrent redeemers never exceed max_uses.
    async fn redeem_enrollment_token(
        &self,
        token_hash: &str,
        at: Millis,
        challenge: &ScepChallenge,
        event: &NewEvent,
    ) -> Result<std::result::Result<EnrollmentToken, TokenRefusal>>;
    /// Use a one-time challenge: Some (with used_at = at) the first time it is presented before it expires;
    /// None if unknown, expired or already used. Exactly one of concurrent consumers wins.
    async fn consume_scep_challenge(
        &self,
        challenge_hash: &str,
        at: Millis,
    ) -> Result<Option<ScepChallenge>>;
    /// Stores a one-time challenge minted outside `/enroll` (identity renewal, `device_id` set).
    async fn put_scep_challenge(&self, c: &ScepChallenge) -> Result<()>;
    /// Remember a certificate SCEP issued. Conflict if the fingerprint is already recorded; NotFound for an
    /// unknown group.
    async fn record_issued_certificate(&self, c: &IssuedCertificate) -> Result<()>;
    async fn issued_certificate(&self, fingerprint: &str) -> Result<Option<IssuedCertificate>>;
    /// Bind an issued certificate to `device_id` if it is not bound yet. Some(record) when it is (now)
    /// bound to `device_id`; None if SCEP never issued it; Conflict if it is bound to another device.
    async fn bind_issued_certificate(
        &self,
        fingerprint: &str,
        device_id: &str,
    ) -> Result<Option<IssuedCertificate>>;
    /// Remember a PKIOperation senderNonce: true the first time, false for a replay. Nonces seen before
    /// `forget_before` are forgotten first (a replay older than that is refused by its expired challenge or
    /// signer certificate instead), and beyond `keep_at_most` nonces the oldest are forgotten, so the table
    /// stays bounded.
    async fn claim_scep_nonce(
        &self,
        nonce: &str,
        transaction_id: &str,
        at: Millis,
        forget_before: Millis,
        keep_at_most: u32,
    ) -> Result<bool>;
}

/// Counted refusals of unauthenticated requests (issue 11). Guarantees: adding counts is one transaction: each
/// (kind, source, bucket) row is created or has the count added (first_at earliest, last_at and detail latest;
/// detail capped), then rows of old buckets are deleted and only the most recently seen rows are kept.
#[async_trait::async_trait]
pub trait Edge: Send + Sync {
    /// Add refusal counts in one transaction: each (kind, source, bucket) row is created or has `count`
    /// added, keeping the earliest `first_at` and the latest `last_at` and detail (capped at
    /// [`MAX_AUTH_FAILURE_DETAIL`] bytes). Then rows of buckets before `forget_before` are deleted, and only
    /// about the `keep_at_most` most recently seen rows are kept.
    async fn add_auth_failures(
        &self,
        counts: &[AuthFailureCount],
        forget_before: Millis,
        keep_at_most: u32,
    ) -> Result<()>;
    /// Matching counts, newest bucket first (then by kind and source).
    async fn auth_failures(&self, f: &AuthFailureFilter) -> Result<Vec<AuthFailureCount>>;
}

/// Groups of enrollments and their managed-admin settings. Guarantees: group ids and names are unique
/// (Conflict otherwise); an enrollment only ever points at an existing group; deleting a group keeps its members
/// enrolled, without a group.
#[async_trait::async_trait]
pub trait Groups: Send + Sync {
    /// Conflict on a duplicate name or id.
    async fn create_group(&self, g: &Group) -> Result<()>;
    /// Updates name, flags and updated_at (created_at is kept). NotFound if missing; Conflict on a taken name.
    async fn update_group(&self, g: &Group) -> Result<()>;
    async fn group(&self, id: &str) -> Result<Option<Group>>;
    async fn group_by_name(&self, name: &str) -> Result<Option<Group>>;
    /// All groups ordered by name.
    async fn list_groups(&self) -> Result<Vec<Group>>;
    /// A group's managed local admin for zero-touch setup (issue 12), if set.
    async fn group_account_settings(&self, group_id: &str) -> Result<Option<GroupAccountSettings>>;
    /// Set or replace a group's managed-admin settings and write `event` (one transaction); NotFound unless
    /// the group exists.
    async fn put_group_account_settings(
        &self,
        settings: &GroupAccountSettings,
        event: &NewEvent,
    ) -> Result<()>;
    /// Remove a group's managed-admin settings, writing `event` only if there were some; whether there were.
    async fn delete_group_account_settings(&self, group_id: &str, event: &NewEvent)
    -> Result<bool>;
    /// NotFound if the enrollment or the group is missing.
    async fn set_enrollment_group(&self, enrollment_id: &str, group_id: Option<&str>)
    -> Result<()>;
    /// Delete a group (members stay enrolled, without a group) + event. NotFound if missing.
    async fn delete_group(&self, id: &str, event: &NewEvent) -> Result<()>;
}

/// The command queue. Guarantees: a command is stored once however many enrollments it is queued for; the
/// active queue holds only unfinished (Pending/NotNow) entries, served in enqueue order; a finished report moves
/// its entry to history in one transaction, and a second report for it changes nothing. A command that carries a
/// secret is stored redacted, with its sealed payload in the same transaction; that sealed payload is kept only
/// while the command is queued somewhere.
#[async_trait::async_trait]
pub trait Commands: Send + Sync {
    /// Queue one command for several enrollments, all or nothing: an unknown enrollment id is NotFound and
    /// nothing is queued. Conflict if the uuid is already queued (or finished) for one of them, or was
    /// stored before with a different request type or payload or carrying a secret; Conflict for a command
    /// marked `carries_secret` (those go through [`Commands::enqueue_sealed`]). Events are the caller's business
    /// (or go along: [`Commands::enqueue_recorded`]).
    async fn enqueue(&self, enrollment_ids: &[String], cmd: &NewCommand, at: Millis) -> Result<()>;
    /// Queue a command that carries a secret, all or nothing: `cmd` (with `carries_secret` set and its redacted
    /// payload) is stored with `sealed` (owner [`command_payload_owner`]`(uuid)`, field [`COMMAND_PAYLOAD_FIELD`],
    /// sealed by the service) and queued for every enrollment in one transaction. The sealed payload is deleted
    /// in the transaction that finishes the command's last queued entry (Acknowledged, Error,
    /// CommandFormatError, or a CheckOut emptying the queue); NotNow keeps it. Conflict if the uuid was stored
    /// before (a secret is queued once), if `cmd` is not marked or `sealed` is keyed otherwise, or if no
    /// enrollment is named; NotFound for an unknown enrollment.
    async fn enqueue_sealed(
        &self,
        enrollment_ids: &[String],
        cmd: &NewCommand,
        sealed: &SealedSecret,
        at: Millis,
    ) -> Result<()>;
    /// [`Commands::enqueue`], or [`Commands::enqueue_sealed`] when `sealed` is given, with `events` (the caller's
    /// record of the queueing) written in the same transaction: the command is queued and recorded, or neither.
    async fn enqueue_recorded(
        &self,
        enrollment_ids: &[String],
        cmd: &NewCommand,
        sealed: Option<&SealedSecret>,
        at: Millis,
        events: &[NewEvent],
    ) -> Result<()>;
    /// The follow-ups of a SetBootstrapToken for one device, in one transaction: `user_list` first, queued
    /// with its events only if it claims the device's UserList refresh (as
    /// [`Inventory::claim_user_list_refresh`] at `at`; the claim and the command are both written or neither
    /// is), then `cmds`, each with its events. True when the UserList was claimed and
    /// queued. NotFound for an unknown enrollment; a command marked `carries_secret` is a Conflict and nothing
    /// is written.
    async fn enqueue_follow_ups(
        &self,
        device_id: &str,
        user_list: Option<&UserListClaim>,
        cmds: &[(NewCommand, Vec<NewEvent>)],
        at: Millis,
    ) -> Result<bool>;
    /// Oldest active command for the enrollment in enqueue order. `skip_notnow` skips NotNow entries (Apple:
    /// after a NotNow in the same session, don't resend it; on an Idle they become eligible again).
    async fn next_command(
        &self,
        enrollment_id: &str,
        skip_notnow: bool,
    ) -> Result<Option<QueuedCommand>>;
    /// The command to hand to the Mac now (`/mdm/connect`): as [`Commands::next_command`], but on PostgreSQL the
    /// entry is claimed in the same statement for a minute and entries claimed by earlier calls are skipped,
    /// so concurrent polls on any number of instances never get one entry twice. A report on the entry
    /// (NotNow releases the claim; a finished one removes the entry) or the claim's lapse makes it servable
    /// again. On SQLite (one instance) exactly [`Commands::next_command`].
    async fn claim_next_command(
        &self,
        enrollment_id: &str,
        skip_notnow: bool,
    ) -> Result<Option<QueuedCommand>>;
    /// Record a device report for (enrollment, uuid). NotNow (or Pending): status set, stays active.
    /// Acknowledged / Error / CommandFormatError: moved to history with `result` (one transaction). A report
    /// for a command already in history: Duplicate (nothing changes). Never queued here: UnknownCommand.
    async fn record_command_result(
        &self,
        enrollment_id: &str,
        uuid: &str,
        status: CommandStatus,
        result: &[u8],
        at: Millis,
    ) -> Result<ReportOutcome>;
    /// One command of an enrollment, active or finished.
    async fn command(&self, enrollment_id: &str, uuid: &str) -> Result<Option<QueuedCommand>>;
    /// Active + finished commands for an enrollment, newest (last enqueued) first; `limit` 0 means 100,
    /// at most 1000.
    async fn command_history(&self, enrollment_id: &str, limit: u32) -> Result<Vec<QueuedCommand>>;
    async fn active_queue_len(&self, enrollment_id: &str) -> Result<u64>;
    /// Entries in the active queue across every enrollment, by status (one count over the queue, which holds
    /// only unfinished commands; for `GET /metrics`).
    async fn queue_depth(&self) -> Result<QueueDepth>;
}

/// The audit trail. Guarantees: events are only ever appended; listing is newest first, filtered with bound
/// parameters, at most 1000 per page.
#[async_trait::async_trait]
pub trait Events: Send + Sync {
    async fn record_event(&self, e: &NewEvent) -> Result<()>;
    /// Matching events, newest first (id descending).
    async fn events(&self, f: &EventFilter) -> Result<Vec<Event>>;
}

/// Admin API keys and the admin device views. Guarantees: only an API key's hash is stored; creating and
/// revoking a key write their audit event in the same transaction; device views never select the sealed token,
/// filter with bound parameters and page in device id order.
#[async_trait::async_trait]
pub trait Admin: Send + Sync {
    /// Store a new API key and its event in one transaction. Conflict on a duplicate id or hash.
    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()>;
    /// The key (revoked or not) whose hash is `key_hash`.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>>;
    /// Every key, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// Mark an active key revoked + event. NotFound if unknown or already revoked.
    async fn revoke_api_key(&self, id: &str, at: Millis, event: &NewEvent) -> Result<()>;
    /// A device-channel enrollment with group, token metadata, inventory and user counts.
    async fn device_record(&self, device_id: &str) -> Result<Option<DeviceRecord>>;
    /// Devices matching the filter, ordered by id, one page.
    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceRecord>>;
    /// The enrolled fleet's counts in one query; identities expiring before `identity_expires_before`.
    async fn fleet_counts(&self, identity_expires_before: Millis) -> Result<FleetCounts>;
}

/// Console admin accounts, their sessions and failed sign-ins (issue 15). Guarantees: only an Argon2id PHC
/// string of a password and only the SHA-256 of a session token are stored; every change that takes a
/// [`NewEvent`] writes it in the same transaction; changing an admin's password or disabling them ends all
/// of their sessions in that transaction; names are unique.
#[async_trait::async_trait]
pub trait AdminAccounts: Send + Sync {
    /// Store a new admin + event. Conflict if the name exists.
    async fn create_console_admin(&self, a: &ConsoleAdminAccount, event: &NewEvent) -> Result<()>;
    async fn console_admin(&self, name: &str) -> Result<Option<ConsoleAdminAccount>>;
    /// Every admin, by name.
    async fn list_console_admins(&self) -> Result<Vec<ConsoleAdminAccount>>;
    /// Replace the password hash, end the admin's sessions, write `event`. NotFound for an unknown name.
    async fn set_console_admin_password(
        &self,
        name: &str,
        password_hash: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<()>;
    /// Disable the admin, end their sessions, write `event`. NotFound if unknown or already disabled.
    async fn disable_console_admin(&self, name: &str, at: Millis, event: &NewEvent) -> Result<()>;
    /// Store a new session + event (the sign-in), and forget sessions whose absolute expiry has passed
    /// `s.created_at`. Conflict on a duplicate token hash; NotFound for an unknown admin.
    async fn create_console_session(&self, s: &ConsoleSession, event: &NewEvent) -> Result<()>;
    async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>>;
    /// Move `last_seen_at` forward to `at` (never back). An unknown session changes nothing.
    async fn touch_console_session(&self, token_hash: &str, at: Millis) -> Result<()>;
    /// Delete a session; writes `event` only if it existed. Returns whether it existed.
    async fn delete_console_session(&self, token_hash: &str, event: &NewEvent) -> Result<bool>;
    /// Count one failed sign-in against each of `keys` at `at` and write `event`; forget failures older
    /// than `forget_before`.
    async fn record_signin_failure(
        &self,
        keys: &[String],
        at: Millis,
        forget_before: Millis,
        event: &NewEvent,
    ) -> Result<()>;
    /// When failed sign-ins against `key` happened at or after `since`, newest first, at most `limit`.
    async fn signin_failures(&self, key: &str, since: Millis, limit: u32) -> Result<Vec<Millis>>;
    /// Forget the failed sign-ins against `key` (a successful sign-in).
    async fn clear_signin_failures(&self, key: &str) -> Result<()>;
}

/// Device inventory (facts, users) and the automatic inventory schedule. Guarantees: a DeviceInformation write
/// replaces only the device columns and a SecurityInfo write only the security columns; a user list from one
/// source replaces that source's rows in one transaction and leaves the other source's rows alone; inventory
/// only exists for an existing enrollment (NotFound otherwise); only enabled device enrollments that finished
/// enrolling are ever due, and a device whose every inventory command is still queued is never due.
#[async_trait::async_trait]
pub trait Inventory: Send + Sync {
    /// Replace the DeviceInformation columns of a device's inventory. NotFound for an unknown enrollment.
    async fn put_device_facts(&self, device_id: &str, facts: &DeviceFacts) -> Result<()>;
    /// Replace the SecurityInfo columns of a device's inventory. NotFound for an unknown enrollment.
    async fn put_security_facts(&self, device_id: &str, facts: &SecurityFacts) -> Result<()>;
    async fn device_inventory(&self, device_id: &str) -> Result<Option<DeviceInventory>>;
    /// Replace what `source` says about the device's users (others' rows stay). NotFound for an unknown
    /// enrollment; Conflict if a user is listed twice or belongs to another device/source.
    async fn replace_device_users(
        &self,
        device_id: &str,
        source: FactSource,
        users: &[DeviceUser],
    ) -> Result<()>;
    /// Every source's rows for the device's users, by user key then source.
    async fn device_users(&self, device_id: &str) -> Result<Vec<DeviceUser>>;
    /// Devices whose inventory should be asked for again: enabled device-channel enrollments that finished
    /// enrolling (`token_update_count > 0`), last asked before `requested_before` (or never), and that do not
    /// already have every one of `request_types` in their active queue. Oldest request first (never asked
    /// first), then by id. `limit` 0 means 100; at most 10,000. Each row lists which of `request_types` are
    /// still queued for the device, so the caller queues only the others. Empty `request_types`: nothing due.
    async fn inventory_due(
        &self,
        requested_before: Millis,
        request_types: &[String],
        limit: u32,
    ) -> Result<Vec<InventoryDue>>;
    /// Record that inventory was asked of the device at `at`. NotFound for an unknown enrollment.
    async fn mark_inventory_requested(&self, device_id: &str, at: Millis) -> Result<()>;
    /// When inventory was last asked of the device (None: never).
    async fn inventory_requested_at(&self, device_id: &str) -> Result<Option<Millis>>;
    /// Request types of the enrollment's active (pending or NotNow) commands, in queue order.
    async fn active_request_types(&self, enrollment_id: &str) -> Result<Vec<String>>;
    /// Claim the device's UserList refresh (issue 12): when it was last claimed before `not_since` (or never),
    /// record `now` and return true; otherwise change nothing and return false. Atomic, so concurrent claims
    /// (several escrowd processes) let one win. NotFound for an unknown enrollment.
    async fn claim_user_list_refresh(
        &self,
        device_id: &str,
        now: Millis,
        not_since: Millis,
    ) -> Result<bool>;
}

/// The Mac agent (issue 6): registration secrets, registrations, request nonces and actions. Guarantees: a
/// registration secret is claimed at most once, only for its device and before it expires, in one transaction
/// with the registration and its event, and only while the device's current agent is the one the caller expects;
/// a new secret revokes the device's earlier unused ones and is queued with its sealed InstallProfile in one
/// transaction; a nonce is accepted once per agent; an action's sealed credentials are deleted in the same
/// statement that ends or expires it.
#[async_trait::async_trait]
pub trait Agents: Send + Sync {
    /// Store a one-time registration secret (hash only), revoke the device's earlier unused secrets, queue the
    /// InstallProfile carrying it for the device (`cmd` + `sealed`, as [`Commands::enqueue_sealed`];
    /// `secret.command_uuid` must be `cmd.uuid`) and write `events`; one transaction. Returns how many earlier
    /// secrets were revoked. NotFound for an unknown device.
    async fn create_agent_secret(
        &self,
        secret: &AgentSecret,
        cmd: &NewCommand,
        sealed: &SealedSecret,
        events: &[NewEvent],
    ) -> Result<u64>;
    async fn agent_secret(&self, secret_hash: &str) -> Result<Option<AgentSecret>>;
    /// A device's registration secrets, newest first.
    async fn agent_secrets(&self, device_id: &str) -> Result<Vec<AgentSecret>>;
    /// Claim the secret whose hash is `secret_hash` for `reg.device_id` (unused, not revoked, not expired at
    /// `reg.registered_at`) and store `reg` + event, but only while the device's current agent is `replaces`
    /// (None: no agent registered); the replaced agent is deleted. One transaction. Ok(false) and nothing
    /// written if the secret is unknown, used, revoked, expired or for another device, or the current agent
    /// is not `replaces`.
    async fn register_agent(
        &self,
        secret_hash: &str,
        reg: &AgentRegistration,
        replaces: Option<&str>,
        event: &NewEvent,
    ) -> Result<bool>;
    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRegistration>>;
    async fn agent_for_device(&self, device_id: &str) -> Result<Option<AgentRegistration>>;
    /// NotFound for an unknown agent.
    async fn touch_agent(&self, agent_id: &str, at: Millis) -> Result<()>;
    /// Remember a request nonce of an agent: true the first time, false for a replay. Nonces seen before
    /// `forget_before` are forgotten first (older requests are refused by their timestamp instead).
    async fn claim_agent_nonce(
        &self,
        agent_id: &str,
        nonce: &str,
        at: Millis,
        forget_before: Millis,
    ) -> Result<bool>;
    /// Store a new action + event. Conflict on a duplicate id; NotFound for an unknown device.
    async fn create_agent_action(&self, action: &AgentAction, event: &NewEvent) -> Result<()>;
    async fn agent_action(&self, id: &str) -> Result<Option<AgentAction>>;
    /// A device's actions, newest first; `limit` 0 means 100, at most 1000.
    async fn agent_actions(&self, device_id: &str, limit: u32) -> Result<Vec<AgentAction>>;
    /// Expire every open action whose `expires_at` <= `at` (credentials deleted); returns how many.
    async fn expire_agent_actions(&self, at: Millis) -> Result<u64>;
    /// Expire overdue actions, mark the device's queued actions delivered, and return every delivered (open)
    /// action of the device, oldest first, with its sealed credentials.
    async fn deliver_agent_actions(&self, device_id: &str, at: Millis) -> Result<Vec<AgentAction>>;
    /// End an open action of `device_id` with `status` (an end state), its reason and output; the sealed
    /// credentials are deleted in the same statement; `events` (in order: the action's own event, then e.g.
    /// one per troubleshooting command) are written in the same transaction, only if it ended here.
    #[allow(clippy::too_many_arguments)]
    async fn finish_agent_action(
        &self,
        device_id: &str,
        id: &str,
        status: ActionStatus,
        reason: Option<&str>,
        output: Option<&str>,
        at: Millis,
        events: &[NewEvent],
    ) -> Result<ActionEnd>;
}

/// Several escrowd instances on one database (issue 14). Guarantees: a schedule claim is one atomic statement,
/// so of two instances claiming the same device for the same round exactly one wins; a signal reaches every
/// instance listening on the same database and schema (the sender's too) after the sender's earlier writes
/// are visible. SQLite serves one instance: claims still work, signals go nowhere and nobody listens.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// Claim `device_id` for one round of schedule `kind` (`inventory`, `identity_renewal`): when it has no
    /// claim of that kind lasting past `now`, record one until `until` and return true; otherwise change
    /// nothing and return false. NotFound for an unknown enrollment.
    async fn claim_schedule_round(
        &self,
        kind: &str,
        device_id: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool>;
    /// End a claim of `kind` on `device_id` that lasts past `now` (its holder finished early): the next
    /// claim at `now` or later succeeds. Nothing to end is not an error. Claims name no holder, so only the
    /// one that won the claim calls this.
    async fn release_schedule_round(&self, kind: &str, device_id: &str, now: Millis) -> Result<()>;
    /// Send `signal`, tagged with the sending instance's `origin` (no spaces), to every listening instance.
    /// A no-op on SQLite.
    async fn notify_instances(&self, origin: &str, signal: &Signal) -> Result<()>;
    /// Listen for other instances' signals (PostgreSQL `LISTEN`, on a connection of its own); None on SQLite.
    async fn listen_instances(&self) -> Result<Option<SignalListener>>;
}
