//! The Mac agent's tables (issue 6). Guarantees: a registration secret is claimed at most once, only for its
//! device and before it expires, and the claim and the registration land in one transaction with their event,
//! and only while the device's current agent is the one the caller expects (a registration never silently
//! replaces another); a new secret revokes the device's earlier unused ones and is queued with its sealed
//! InstallProfile in one transaction; its expiry clock starts in the transaction that records the Mac's
//! Acknowledged for that InstallProfile (an Error revokes it); a nonce is accepted once per agent; an
//! action's sealed credentials are set NULL in the same statement that ends or expires it.
//!
//! Over 500 lines on purpose: one concern (secrets, registrations, nonces, actions share the registration
//! rules) whose role impl sits beside its queries.

use super::Db;

use super::{Backend, SqlStore, commands, events, query, query_as, query_scalar};
use crate::{
    ActionEnd, ActionStatus, AgentAction, AgentRegistration, AgentSecret, Agents, CommandStatus,
    Millis, NewCommand, NewEvent, Result, SealedSecret, StoreError,
};

#[derive(sqlx::FromRow)]
struct SecretRow {
    secret_hash: String,
    device_id: String,
    command_uuid: Option<String>,
    created_at: i64,
    ttl_ms: i64,
    delivered_at: Option<i64>,
    expires_at: Option<i64>,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
    replace_authorized_by: Option<String>,
}

impl From<SecretRow> for AgentSecret {
    fn from(r: SecretRow) -> Self {
        AgentSecret {
            secret_hash: r.secret_hash,
            device_id: r.device_id,
            command_uuid: r.command_uuid,
            created_at: r.created_at,
            ttl_ms: r.ttl_ms,
            delivered_at: r.delivered_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            revoked_at: r.revoked_at,
            replace_authorized_by: r.replace_authorized_by,
        }
    }
}

const SECRET_SELECT: &str = "SELECT secret_hash, device_id, command_uuid, created_at, ttl_ms, delivered_at, \
     expires_at, used_at, revoked_at, replace_authorized_by FROM agent_secrets";

#[derive(sqlx::FromRow)]
struct RegistrationRow {
    agent_id: String,
    device_id: String,
    signing_key: Vec<u8>,
    hpke_key: Vec<u8>,
    registered_at: i64,
    last_seen_at: i64,
}

impl From<RegistrationRow> for AgentRegistration {
    fn from(r: RegistrationRow) -> Self {
        AgentRegistration {
            agent_id: r.agent_id,
            device_id: r.device_id,
            signing_key: r.signing_key,
            hpke_key: r.hpke_key,
            registered_at: r.registered_at,
            last_seen_at: r.last_seen_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ActionRow {
    id: String,
    device_id: String,
    kind: String,
    params: String,
    sealed: Option<Vec<u8>>,
    status: String,
    reason: Option<String>,
    output: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    expires_at: i64,
}

impl TryFrom<ActionRow> for AgentAction {
    type Error = StoreError;
    fn try_from(r: ActionRow) -> Result<Self> {
        Ok(AgentAction {
            status: ActionStatus::from_stored(&r.status)?,
            id: r.id,
            device_id: r.device_id,
            kind: r.kind,
            params: r.params,
            sealed: r.sealed,
            reason: r.reason,
            output: r.output,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        })
    }
}

const REG_COLUMNS: &str = "agent_id, device_id, signing_key, hpke_key, registered_at, last_seen_at";
const ACTION_SELECT: &str = "SELECT id, device_id, kind, params, sealed, status, reason, output, created_by, \
     created_at, updated_at, expires_at FROM agent_actions";

pub(super) async fn create_secret<DB: Backend>(
    pool: &Db<DB>,
    s: &AgentSecret,
    cmd: &NewCommand,
    sealed: &SealedSecret,
    events: &[NewEvent],
) -> Result<u64> {
    if s.command_uuid.as_deref() != Some(cmd.uuid.as_str()) {
        return Err(StoreError::Conflict(
            "a registration secret names the InstallProfile command that carries it".into(),
        ));
    }
    let mut tx = pool.begin_write().await?;
    let revoked = query::<DB>(
        "UPDATE agent_secrets SET revoked_at = $1 \
         WHERE device_id = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(s.created_at)
    .bind(&s.device_id)
    .execute(&mut *tx)
    .await?;
    query::<DB>(
        "INSERT INTO agent_secrets (secret_hash, device_id, command_uuid, created_at, ttl_ms, delivered_at, \
         expires_at, used_at, revoked_at, replace_authorized_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&s.secret_hash)
    .bind(&s.device_id)
    .bind(&s.command_uuid)
    .bind(s.created_at)
    .bind(s.ttl_ms)
    .bind(s.delivered_at)
    .bind(s.expires_at)
    .bind(s.used_at)
    .bind(s.revoked_at)
    .bind(&s.replace_authorized_by)
    .execute(&mut *tx)
    .await?;
    commands::insert_sealed::<DB>(
        &mut tx,
        std::slice::from_ref(&s.device_id),
        cmd,
        sealed,
        s.created_at,
    )
    .await?;
    for event in events {
        events::insert::<DB>(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(revoked.rows_affected())
}

pub(super) async fn secret<DB: Backend>(
    pool: &Db<DB>,
    secret_hash: &str,
) -> Result<Option<AgentSecret>> {
    let row: Option<SecretRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "{SECRET_SELECT} WHERE secret_hash = $1"
    )))
    .bind(secret_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(AgentSecret::from))
}

pub(super) async fn secrets<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Vec<AgentSecret>> {
    let rows: Vec<SecretRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "{SECRET_SELECT} WHERE device_id = $1 ORDER BY created_at DESC, secret_hash"
    )))
    .bind(device_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(AgentSecret::from).collect())
}

/// A device's report finished command `uuid`: an Acknowledged InstallProfile carrying a registration secret
/// starts that secret's expiry clock; an Error or CommandFormatError revokes it (the profile is not on the Mac).
pub(super) async fn command_finished<DB: Backend>(
    conn: &mut DB::Connection,
    enrollment_id: &str,
    uuid: &str,
    status: CommandStatus,
    at: Millis,
) -> Result<()> {
    let sql = if status == CommandStatus::Acknowledged {
        "UPDATE agent_secrets SET delivered_at = $1, expires_at = $1 + ttl_ms \
         WHERE command_uuid = $2 AND device_id = $3 AND delivered_at IS NULL"
    } else {
        "UPDATE agent_secrets SET revoked_at = $1 \
         WHERE command_uuid = $2 AND device_id = $3 AND used_at IS NULL AND revoked_at IS NULL"
    };
    query::<DB>(sql)
        .bind(at)
        .bind(uuid)
        .bind(enrollment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn register<DB: Backend>(
    pool: &Db<DB>,
    secret_hash: &str,
    reg: &AgentRegistration,
    replaces: Option<&str>,
    event: &NewEvent,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let claimed = query::<DB>(
        "UPDATE agent_secrets SET used_at = $1 \
         WHERE secret_hash = $2 AND device_id = $3 AND used_at IS NULL AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(reg.registered_at)
    .bind(secret_hash)
    .bind(&reg.device_id)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    let current: Option<String> =
        query_scalar::<DB, _>("SELECT agent_id FROM agent_registrations WHERE device_id = $1")
            .bind(&reg.device_id)
            .fetch_optional(&mut *tx)
            .await?;
    if current.as_deref() != replaces {
        tx.rollback().await?;
        return Ok(false);
    }
    query::<DB>("DELETE FROM agent_registrations WHERE device_id = $1")
        .bind(&reg.device_id)
        .execute(&mut *tx)
        .await?;
    query::<DB>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agent_registrations ({REG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    )))
    .bind(&reg.agent_id)
    .bind(&reg.device_id)
    .bind(&reg.signing_key)
    .bind(&reg.hpke_key)
    .bind(reg.registered_at)
    .bind(reg.last_seen_at)
    .execute(&mut *tx)
    .await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    agent_id: &str,
) -> Result<Option<AgentRegistration>> {
    let row: Option<RegistrationRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "SELECT {REG_COLUMNS} FROM agent_registrations WHERE agent_id = $1"
    )))
    .bind(agent_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(AgentRegistration::from))
}

pub(super) async fn for_device<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Option<AgentRegistration>> {
    let row: Option<RegistrationRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "SELECT {REG_COLUMNS} FROM agent_registrations WHERE device_id = $1"
    )))
    .bind(device_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(AgentRegistration::from))
}

pub(super) async fn touch<DB: Backend>(pool: &Db<DB>, agent_id: &str, at: Millis) -> Result<()> {
    let done = query::<DB>("UPDATE agent_registrations SET last_seen_at = $1 WHERE agent_id = $2")
        .bind(at)
        .bind(agent_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("agent {agent_id:?}")));
    }
    Ok(())
}

pub(super) async fn claim_nonce<DB: Backend>(
    pool: &Db<DB>,
    agent_id: &str,
    nonce: &str,
    at: Millis,
    forget_before: Millis,
) -> Result<bool> {
    query::<DB>("DELETE FROM agent_nonces WHERE seen_at < $1")
        .bind(forget_before)
        .execute(pool)
        .await?;
    let done = query::<DB>(
        "INSERT INTO agent_nonces (agent_id, nonce, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (agent_id, nonce) DO NOTHING",
    )
    .bind(agent_id)
    .bind(nonce)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn create_action<DB: Backend>(
    pool: &Db<DB>,
    a: &AgentAction,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    query::<DB>(
        "INSERT INTO agent_actions (id, device_id, kind, params, sealed, status, reason, output, created_by, \
         created_at, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&a.id)
    .bind(&a.device_id)
    .bind(&a.kind)
    .bind(&a.params)
    .bind(&a.sealed)
    .bind(a.status.as_str())
    .bind(&a.reason)
    .bind(&a.output)
    .bind(&a.created_by)
    .bind(a.created_at)
    .bind(a.updated_at)
    .bind(a.expires_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("action id {:?} exists", a.id)),
        StoreError::NotFound(_) => StoreError::NotFound(format!("device {:?}", a.device_id)),
        other => other,
    })?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn action<DB: Backend>(pool: &Db<DB>, id: &str) -> Result<Option<AgentAction>> {
    let row: Option<ActionRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "{ACTION_SELECT} WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(AgentAction::try_from).transpose()
}

pub(super) async fn list<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    limit: u32,
) -> Result<Vec<AgentAction>> {
    let rows: Vec<ActionRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "{ACTION_SELECT} WHERE device_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    )))
    .bind(device_id)
    .bind(crate::rows::page_limit(limit, 100, 1000))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(AgentAction::try_from).collect()
}

pub(super) async fn expire<DB: Backend>(pool: &Db<DB>, at: Millis) -> Result<u64> {
    let done = query::<DB>(
        "UPDATE agent_actions SET status = 'expired', sealed = NULL, updated_at = $1, \
         reason = 'the agent did not finish it before it expired' \
         WHERE status IN ('queued', 'delivered') AND expires_at <= $1",
    )
    .bind(at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn deliver<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    at: Millis,
) -> Result<Vec<AgentAction>> {
    expire(pool, at).await?;
    let mut tx = pool.begin_write().await?;
    query::<DB>(
        "UPDATE agent_actions SET status = 'delivered', updated_at = $1 \
         WHERE device_id = $2 AND status = 'queued'",
    )
    .bind(at)
    .bind(device_id)
    .execute(&mut *tx)
    .await?;
    let rows: Vec<ActionRow> = query_as::<DB, _>(sqlx::AssertSqlSafe(format!(
        "{ACTION_SELECT} WHERE device_id = $1 AND status = 'delivered' ORDER BY created_at, id LIMIT 100"
    )))
    .bind(device_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.into_iter().map(AgentAction::try_from).collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn finish<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    id: &str,
    status: ActionStatus,
    reason: Option<&str>,
    output: Option<&str>,
    at: Millis,
    events: &[NewEvent],
) -> Result<ActionEnd> {
    if status.is_open() {
        return Err(StoreError::Conflict(format!(
            "{} is not an end state",
            status.as_str()
        )));
    }
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE agent_actions SET status = $1, reason = $2, output = $3, sealed = NULL, updated_at = $4 \
         WHERE id = $5 AND device_id = $6 AND status IN ('queued', 'delivered')",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(output)
    .bind(at)
    .bind(id)
    .bind(device_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        for event in events {
            events::insert::<DB>(&mut tx, event).await?;
        }
        tx.commit().await?;
        return Ok(ActionEnd::Ended);
    }
    let current: Option<(String,)> =
        query_as::<DB, _>("SELECT status FROM agent_actions WHERE id = $1 AND device_id = $2")
            .bind(id)
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.rollback().await?;
    match current {
        None => Ok(ActionEnd::NotFound),
        Some((s,)) => Ok(ActionEnd::AlreadyEnded(ActionStatus::from_stored(&s)?)),
    }
}

#[async_trait::async_trait]
impl<DB: Backend> Agents for SqlStore<DB> {
    async fn create_agent_secret(
        &self,
        secret: &AgentSecret,
        cmd: &NewCommand,
        sealed: &SealedSecret,
        events: &[NewEvent],
    ) -> Result<u64> {
        create_secret(&self.pool, secret, cmd, sealed, events).await
    }

    async fn agent_secret(&self, secret_hash: &str) -> Result<Option<AgentSecret>> {
        secret(&self.pool, secret_hash).await
    }

    async fn agent_secrets(&self, device_id: &str) -> Result<Vec<AgentSecret>> {
        secrets(&self.pool, device_id).await
    }

    async fn register_agent(
        &self,
        secret_hash: &str,
        reg: &AgentRegistration,
        replaces: Option<&str>,
        event: &NewEvent,
    ) -> Result<bool> {
        register(&self.pool, secret_hash, reg, replaces, event).await
    }

    async fn agent(&self, agent_id: &str) -> Result<Option<AgentRegistration>> {
        get(&self.pool, agent_id).await
    }

    async fn agent_for_device(&self, device_id: &str) -> Result<Option<AgentRegistration>> {
        for_device(&self.pool, device_id).await
    }

    async fn touch_agent(&self, agent_id: &str, at: Millis) -> Result<()> {
        touch(&self.pool, agent_id, at).await
    }

    async fn claim_agent_nonce(
        &self,
        agent_id: &str,
        nonce: &str,
        at: Millis,
        forget_before: Millis,
    ) -> Result<bool> {
        claim_nonce(&self.pool, agent_id, nonce, at, forget_before).await
    }

    async fn create_agent_action(&self, action: &AgentAction, event: &NewEvent) -> Result<()> {
        create_action(&self.pool, action, event).await
    }

    async fn agent_action(&self, id: &str) -> Result<Option<AgentAction>> {
        action(&self.pool, id).await
    }

    async fn agent_actions(&self, device_id: &str, limit: u32) -> Result<Vec<AgentAction>> {
        list(&self.pool, device_id, limit).await
    }

    async fn expire_agent_actions(&self, at: Millis) -> Result<u64> {
        expire(&self.pool, at).await
    }

    async fn deliver_agent_actions(&self, device_id: &str, at: Millis) -> Result<Vec<AgentAction>> {
        deliver(&self.pool, device_id, at).await
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
        finish(
            &self.pool, device_id, id, status, reason, output, at, events,
        )
        .await
    }
}
