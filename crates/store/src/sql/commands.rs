//! The command queue. Guarantees: a command is stored once however many enrollments it is queued for; the
//! active queue holds only Pending/NotNow entries, served in enqueue order; a finished report moves its entry
//! to history in one transaction, and a second report for it changes nothing. A command that carries a secret
//! is stored with a redacted payload and its sealed payload (`sealed_secrets`, owner `command:<uuid>`) in the
//! same transaction; that sealed payload is deleted in the transaction that finishes the command's last
//! queued entry (a NotNow keeps it).
//!
//! Just over 500 lines on purpose: enqueue, claim, report and read share the row macros and the sealed
//! payload's lifecycle, and the role impl sits beside its queries; split, each half would need the other.

use std::sync::Arc;

use super::Db;

use super::{
    Backend, QueryBuilder, Script, SqlStore, Step, agents, enrollments, query, query_as,
    query_scalar,
};
use crate::rows::{QueuedCommandRow, convert_all, count, page_limit};
use crate::{
    COMMAND_PAYLOAD_FIELD, CommandStatus, Commands, Millis, NewCommand, NewEvent, QueueDepth,
    QueuedCommand, ReportOutcome, Result, SealedSecret, StoreError, UserListClaim,
    command_payload_owner,
};

/// Active entries of enrollment `$1` as [`QueuedCommandRow`] columns (plus `seq`).
macro_rules! active {
    () => {
        "SELECT q.enrollment_id, c.uuid, c.request_type, c.payload, c.carries_secret, q.status, NULL AS result, q.seq, \
         q.created_at, q.updated_at FROM command_queue q JOIN commands c ON c.uuid = q.command_uuid \
         WHERE q.enrollment_id = $1"
    };
}

/// Finished entries of enrollment `$1` as [`QueuedCommandRow`] columns (plus `seq`).
macro_rules! finished {
    () => {
        "SELECT r.enrollment_id, c.uuid, c.request_type, c.payload, c.carries_secret, r.status, r.result, r.seq, \
         r.created_at, r.updated_at FROM command_results r JOIN commands c ON c.uuid = r.command_uuid \
         WHERE r.enrollment_id = $1"
    };
}

pub(super) async fn enqueue<DB: Backend>(
    pool: &Db<DB>,
    enrollment_ids: &[String],
    cmd: &NewCommand,
    sealed: Option<&SealedSecret>,
    at: Millis,
    events: &[NewEvent],
) -> Result<()> {
    let Some(sealed) = sealed else {
        refuse_in_the_clear(cmd)?;
        let ids = distinct(enrollment_ids);
        if ids.is_empty() {
            return Ok(());
        }
        // One script (all or none; on SQLite run by the writer on its own connection, `script.rs`).
        let mut script = Script::<DB>::default();
        queue_recorded::<DB>(&mut script, &ids, cmd, events, at);
        return pool.script(script).await.map(drop);
    };
    // A write job: handed to the writer whole (on SQLite, run by the committer's thread), so the writer is not
    // held while this request's task waits for its turn between statements.
    let job = Arc::new((
        distinct_owned(enrollment_ids),
        cmd.clone(),
        sealed.clone(),
        events.to_vec(),
    ));
    pool.write(Box::new(move |conn| {
        let job = job.clone();
        Box::pin(async move {
            let (ids, cmd, sealed, events) = &*job;
            insert_sealed::<DB>(conn, ids, cmd, sealed, at).await?;
            let events: Vec<&NewEvent> = events.iter().collect();
            super::events::insert_many::<DB>(conn, &events).await
        })
    }))
    .await
}

/// [`crate::roles::Commands::enqueue_follow_ups`]: one script, so a first escrow's follow-ups cost one batch
/// (the claim, then the UserList's statements run only if the claim changed a row, then `cmds`).
pub(super) async fn enqueue_follow_ups<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    user_list: Option<&UserListClaim>,
    cmds: &[(NewCommand, Vec<NewEvent>)],
    at: Millis,
) -> Result<bool> {
    for cmd in user_list
        .map(|u| &u.command)
        .into_iter()
        .chain(cmds.iter().map(|(c, _)| c))
    {
        refuse_in_the_clear(cmd)?;
    }
    let ids = [device_id];
    let mut script = Script::<DB>::default();
    let mut claim = None;
    if let Some(user_list) = user_list
        && !super::schedule::user_list_asked_since(pool, device_id, user_list.not_since).await?
    {
        let index = script.len();
        script.push(super::schedule::claim_user_list_step(
            device_id,
            at,
            user_list.not_since,
        ));
        queue_recorded::<DB>(&mut script, &ids, &user_list.command, &user_list.events, at);
        script.only_if_changed_from(index + 1, index);
        claim = Some(index);
    }
    for (cmd, events) in cmds {
        queue_recorded::<DB>(&mut script, &ids, cmd, events, at);
    }
    if script.is_empty() {
        return Ok(false);
    }
    let changed = pool.script(script).await?;
    Ok(claim.is_some_and(|index| changed.get(index) == Some(&1)))
}

/// A Conflict for a command that carries a secret offered without its sealed payload.
fn refuse_in_the_clear(cmd: &NewCommand) -> Result<()> {
    if cmd.carries_secret {
        return Err(StoreError::Conflict(format!(
            "command {} carries a secret: it is queued sealed (enqueue_sealed), never in the clear",
            cmd.uuid
        )));
    }
    Ok(())
}

/// [`distinct`], owned (for a write job).
fn distinct_owned(enrollment_ids: &[String]) -> Vec<String> {
    distinct(enrollment_ids)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// The statements that store an unsealed command (once: a uuid stored before must be the same unsealed
/// command), queue it for `ids` (never for an enrollment it has finished on) and record `events`. Each queue
/// entry is written only where those hold, so the checks cost no read of their own.
fn queue_recorded<DB: Backend>(
    script: &mut Script<DB>,
    ids: &[&str],
    cmd: &NewCommand,
    events: &[NewEvent],
    at: Millis,
) {
    let uuid = &cmd.uuid;
    let mut q = QueryBuilder::<DB>::new(
        "INSERT INTO commands (uuid, request_type, payload, created_at) VALUES (",
    );
    q.separated(", ")
        .push_bind(uuid)
        .push_bind(&cmd.request_type)
        .push_bind(&cmd.payload)
        .push_bind(at);
    q.push(") ON CONFLICT (uuid) DO NOTHING");
    script.push(Step::new(q.statement()));
    for &id in ids {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO command_queue (enrollment_id, command_uuid, status, created_at, updated_at) SELECT ",
        );
        q.separated(", ")
            .push_bind(id)
            .push_bind(uuid)
            .push_bind(CommandStatus::Pending.as_str())
            .push_bind(at)
            .push_bind(at);
        q.push(" WHERE EXISTS (SELECT 1 FROM commands WHERE uuid = ")
            .push_bind(uuid)
            .push(" AND request_type = ")
            .push_bind(&cmd.request_type)
            .push(" AND payload = ")
            .push_bind(&cmd.payload)
            .push(" AND NOT carries_secret) AND NOT EXISTS (SELECT 1 FROM command_results WHERE enrollment_id = ")
            .push_bind(id)
            .push(" AND command_uuid = ")
            .push_bind(uuid)
            .push(")");
        // An unknown enrollment fails the entry's foreign key: no lookup of the enrollment first.
        script.push(
            Step::new(q.statement())
                .missing(format!("enrollment {id}"))
                .duplicate(format!(
                    "command {uuid} is already queued for enrollment {id}"
                ))
                .must_change(format!(
                    "command {uuid} was stored before with a different request type or payload, \
                     or has already finished for enrollment {id}"
                )),
        );
    }
    let events: Vec<&NewEvent> = events.iter().collect();
    script.extend(super::events::insert_statements::<DB>(&events));
}

/// Queue a command carrying a secret inside the caller's transaction: the command row (redacted payload),
/// its sealed payload and the queue entries. A uuid stored before is a Conflict: a secret is queued once.
pub(super) async fn insert_sealed<DB: Backend>(
    conn: &mut DB::Connection,
    enrollment_ids: &[String],
    cmd: &NewCommand,
    sealed: &SealedSecret,
    at: Millis,
) -> Result<()> {
    if !cmd.carries_secret
        || sealed.owner != command_payload_owner(&cmd.uuid)
        || sealed.field != COMMAND_PAYLOAD_FIELD
    {
        return Err(StoreError::Conflict(format!(
            "a sealed command payload must be marked carries_secret and sealed as ({}, {COMMAND_PAYLOAD_FIELD})",
            command_payload_owner(&cmd.uuid)
        )));
    }
    let ids = distinct(enrollment_ids);
    if ids.is_empty() {
        return Err(StoreError::Conflict(format!(
            "command {} carrying a secret names no enrollment",
            cmd.uuid
        )));
    }
    let inserted = query::<DB>(
        "INSERT INTO commands (uuid, request_type, payload, carries_secret, created_at) \
         VALUES ($1, $2, $3, TRUE, $4) ON CONFLICT (uuid) DO NOTHING",
    )
    .bind(&cmd.uuid)
    .bind(&cmd.request_type)
    .bind(&cmd.payload)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "command {} was stored before; a command carrying a secret is queued once",
            cmd.uuid
        )));
    }
    query::<DB>(
        "INSERT INTO sealed_secrets (owner, field, key_id, blob, updated_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&sealed.owner)
    .bind(&sealed.field)
    .bind(&sealed.key_id)
    .bind(&sealed.blob)
    .bind(sealed.updated_at)
    .execute(&mut *conn)
    .await?;
    queue_for::<DB>(conn, &ids, &cmd.uuid, at).await
}

fn distinct(enrollment_ids: &[String]) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::with_capacity(enrollment_ids.len());
    for id in enrollment_ids {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    ids
}

async fn queue_for<DB: Backend>(
    conn: &mut DB::Connection,
    ids: &[&str],
    uuid: &str,
    at: Millis,
) -> Result<()> {
    // Only for a command stored just now: it has no results anywhere, nothing to look up.
    for &id in ids {
        // An unknown enrollment fails the entry's foreign key (the command's own key exists: it was stored
        // first), so no lookup of the enrollment first: one statement per entry.
        query::<DB>(
            "INSERT INTO command_queue (enrollment_id, command_uuid, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id)
        .bind(uuid)
        .bind(CommandStatus::Pending.as_str())
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                "command {uuid} is already queued for enrollment {id}"
            )),
            _ => enrollments::missing_if_unknown(e, id),
        })?;
    }
    Ok(())
}

/// Delete the sealed payload of command `uuid` if no enrollment has it queued any more. A no-op for a command
/// without one.
pub(super) async fn drop_sealed_payload_if_done<DB: Backend>(
    conn: &mut DB::Connection,
    uuid: &str,
) -> Result<()> {
    query::<DB>(
        "DELETE FROM sealed_secrets WHERE owner = $1 AND field = $2 \
         AND NOT EXISTS (SELECT 1 FROM command_queue WHERE command_uuid = $3)",
    )
    .bind(command_payload_owner(uuid))
    .bind(COMMAND_PAYLOAD_FIELD)
    .bind(uuid)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Delete every sealed command payload whose command is no longer queued anywhere (after a CheckOut emptied
/// a device's queue).
pub(super) async fn drop_orphaned_sealed_payloads<DB: Backend>(
    conn: &mut DB::Connection,
) -> Result<()> {
    query::<DB>(
        "DELETE FROM sealed_secrets WHERE field = $1 AND NOT EXISTS \
         (SELECT 1 FROM command_queue q WHERE $2 || q.command_uuid = sealed_secrets.owner)",
    )
    .bind(COMMAND_PAYLOAD_FIELD)
    .bind(command_payload_owner(""))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn is_finished<DB: Backend>(
    conn: &mut DB::Connection,
    enrollment_id: &str,
    uuid: &str,
) -> Result<bool> {
    let n: i64 = query_scalar::<DB, _>(
        "SELECT COUNT(*) FROM command_results WHERE enrollment_id = $1 AND command_uuid = $2",
    )
    .bind(enrollment_id)
    .bind(uuid)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// How long a command handed to a Mac stays claimed (PostgreSQL only): no other /mdm/connect hands it out
/// again until the Mac reports on it (Acknowledged, Error, NotNow…) or this much time passes (a Mac that lost
/// the answer gets it again at a check-in after that).
pub(crate) const DELIVERY_CLAIM_MS: i64 = 60_000;

/// The first active entry of `enrollment_id` (without NotNow ones when `skip_notnow`), claimed or not.
pub(super) async fn next<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    skip_notnow: bool,
) -> Result<Option<QueuedCommand>> {
    let row: Option<QueuedCommandRow> = if skip_notnow {
        query_as::<DB, _>(concat!(
            active!(),
            " AND q.status <> 'notnow' ORDER BY q.seq LIMIT 1"
        ))
        .bind(enrollment_id)
        .fetch_optional(pool)
        .await?
    } else {
        query_as::<DB, _>(concat!(active!(), " ORDER BY q.seq LIMIT 1"))
            .bind(enrollment_id)
            .fetch_optional(pool)
            .await?
    };
    row.map(QueuedCommand::try_from).transpose()
}

/// The entry to hand to the Mac now. On PostgreSQL one UPDATE claims the oldest unclaimed entry (`FOR UPDATE
/// SKIP LOCKED`: rows another transaction is claiming are skipped, and a row claimed meanwhile fails the
/// re-checked WHERE), timed by the database's clock so the instances' clocks do not matter, and the claimed
/// entry is read in the same transaction: concurrent polls on any instances never get one entry twice. SQLite
/// serves one instance: [`next`].
pub(super) async fn claim_next<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    skip_notnow: bool,
) -> Result<Option<QueuedCommand>> {
    if DB::BACKEND != "postgres" {
        return next::<DB>(pool, enrollment_id, skip_notnow).await;
    }
    const NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
    let notnow = if skip_notnow {
        " AND status <> 'notnow'"
    } else {
        ""
    };
    let claim = format!(
        "UPDATE command_queue SET claimed_until = {NOW} + $2 WHERE seq = (SELECT seq FROM command_queue \
         WHERE enrollment_id = $1 AND (claimed_until IS NULL OR claimed_until <= {NOW}){notnow} \
         ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING seq"
    );
    let mut tx = pool.begin_write().await?;
    let seq: Option<i64> = query_scalar::<DB, _>(sqlx::AssertSqlSafe(claim))
        .bind(enrollment_id)
        .bind(DELIVERY_CLAIM_MS)
        .fetch_optional(&mut *tx)
        .await?;
    let row: Option<QueuedCommandRow> = match seq {
        Some(seq) => {
            query_as::<DB, _>(concat!(active!(), " AND q.seq = $2"))
                .bind(enrollment_id)
                .bind(seq)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    tx.commit().await?;
    row.map(QueuedCommand::try_from).transpose()
}

pub(super) async fn record_result<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    uuid: &str,
    status: CommandStatus,
    result: &[u8],
    at: Millis,
) -> Result<ReportOutcome> {
    let mut tx = pool.begin_write().await?;
    // The write comes first so concurrent reports of one command serialise on its queue row.
    let recorded = if status.is_finished() {
        let moved: Option<(i64, i64)> = query_as::<DB, _>(
            "DELETE FROM command_queue WHERE enrollment_id = $1 AND command_uuid = $2 RETURNING seq, created_at",
        )
        .bind(enrollment_id)
        .bind(uuid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((seq, created_at)) = moved {
            query::<DB>(
                "INSERT INTO command_results (enrollment_id, command_uuid, seq, status, result, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(enrollment_id)
            .bind(uuid)
            .bind(seq)
            .bind(status.as_str())
            .bind(result)
            .bind(created_at)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if moved.is_some() {
            drop_sealed_payload_if_done::<DB>(&mut tx, uuid).await?;
            agents::command_finished::<DB>(&mut tx, enrollment_id, uuid, status, at).await?;
        }
        moved.is_some()
    } else {
        let done = query::<DB>(
            // A report ends the delivery claim: after a NotNow the entry may be offered again (next session).
            "UPDATE command_queue SET status = $1, updated_at = $2, claimed_until = NULL \
             WHERE enrollment_id = $3 AND command_uuid = $4",
        )
        .bind(status.as_str())
        .bind(at)
        .bind(enrollment_id)
        .bind(uuid)
        .execute(&mut *tx)
        .await?;
        done.rows_affected() > 0
    };
    let outcome = if recorded {
        ReportOutcome::Recorded
    } else if is_finished::<DB>(&mut tx, enrollment_id, uuid).await? {
        ReportOutcome::Duplicate
    } else {
        ReportOutcome::UnknownCommand
    };
    tx.commit().await?;
    Ok(outcome)
}

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    uuid: &str,
) -> Result<Option<QueuedCommand>> {
    let row: Option<QueuedCommandRow> = query_as::<DB, _>(concat!(
        active!(),
        " AND c.uuid = $2 UNION ALL ",
        finished!(),
        " AND c.uuid = $2"
    ))
    .bind(enrollment_id)
    .bind(uuid)
    .fetch_optional(pool)
    .await?;
    row.map(QueuedCommand::try_from).transpose()
}

pub(super) async fn history<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    limit: u32,
) -> Result<Vec<QueuedCommand>> {
    let rows: Vec<QueuedCommandRow> = query_as::<DB, _>(concat!(
        active!(),
        " UNION ALL ",
        finished!(),
        " ORDER BY seq DESC LIMIT $2"
    ))
    .bind(enrollment_id)
    .bind(page_limit(limit, 100, 1000))
    .fetch_all(pool)
    .await?;
    convert_all(rows)
}

pub(super) async fn depth<DB: Backend>(pool: &Db<DB>) -> Result<QueueDepth> {
    let rows: Vec<(String, i64)> =
        query_as::<DB, _>("SELECT status, COUNT(*) FROM command_queue GROUP BY status")
            .fetch_all(pool)
            .await?;
    let mut depth = QueueDepth::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" => depth.pending = count(n)?,
            "notnow" => depth.not_now = count(n)?,
            other => {
                return Err(StoreError::Database(format!(
                    "command_queue status {other:?} is not pending or notnow"
                )));
            }
        }
    }
    Ok(depth)
}

pub(super) async fn active_len<DB: Backend>(pool: &Db<DB>, enrollment_id: &str) -> Result<u64> {
    let n: i64 =
        query_scalar::<DB, _>("SELECT COUNT(*) FROM command_queue WHERE enrollment_id = $1")
            .bind(enrollment_id)
            .fetch_one(pool)
            .await?;
    count(n)
}

#[async_trait::async_trait]
impl<DB: Backend> Commands for SqlStore<DB> {
    async fn enqueue(&self, enrollment_ids: &[String], cmd: &NewCommand, at: Millis) -> Result<()> {
        enqueue(&self.pool, enrollment_ids, cmd, None, at, &[]).await
    }

    async fn enqueue_sealed(
        &self,
        enrollment_ids: &[String],
        cmd: &NewCommand,
        sealed: &SealedSecret,
        at: Millis,
    ) -> Result<()> {
        enqueue(&self.pool, enrollment_ids, cmd, Some(sealed), at, &[]).await
    }

    async fn enqueue_recorded(
        &self,
        enrollment_ids: &[String],
        cmd: &NewCommand,
        sealed: Option<&SealedSecret>,
        at: Millis,
        events: &[NewEvent],
    ) -> Result<()> {
        enqueue(&self.pool, enrollment_ids, cmd, sealed, at, events).await
    }

    async fn enqueue_follow_ups(
        &self,
        device_id: &str,
        user_list: Option<&UserListClaim>,
        cmds: &[(NewCommand, Vec<NewEvent>)],
        at: Millis,
    ) -> Result<bool> {
        enqueue_follow_ups(&self.pool, device_id, user_list, cmds, at).await
    }

    async fn next_command(
        &self,
        enrollment_id: &str,
        skip_notnow: bool,
    ) -> Result<Option<QueuedCommand>> {
        next(&self.pool, enrollment_id, skip_notnow).await
    }

    async fn claim_next_command(
        &self,
        enrollment_id: &str,
        skip_notnow: bool,
    ) -> Result<Option<QueuedCommand>> {
        claim_next(&self.pool, enrollment_id, skip_notnow).await
    }

    async fn record_command_result(
        &self,
        enrollment_id: &str,
        uuid: &str,
        status: CommandStatus,
        result: &[u8],
        at: Millis,
    ) -> Result<ReportOutcome> {
        record_result(&self.pool, enrollment_id, uuid, status, result, at).await
    }

    async fn command(&self, enrollment_id: &str, uuid: &str) -> Result<Option<QueuedCommand>> {
        get(&self.pool, enrollment_id, uuid).await
    }

    async fn command_history(&self, enrollment_id: &str, limit: u32) -> Result<Vec<QueuedCommand>> {
        history(&self.pool, enrollment_id, limit).await
    }

    async fn active_queue_len(&self, enrollment_id: &str) -> Result<u64> {
        active_len(&self.pool, enrollment_id).await
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        depth(&self.pool).await
    }
}
