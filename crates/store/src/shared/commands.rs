//! The command queue, shared by both backends (compiled per backend, see `sqlite.rs`). Guarantees: a command
//! is stored once however many enrollments it is queued for; the active queue holds only Pending/NotNow
//! entries, served in enqueue order; a finished report moves its entry to history in one transaction, and a
//! second report for it changes nothing.

use sqlx::Pool;

use super::{Conn, Db, begin_write, enrollments};
use crate::rows::{QueuedCommandRow, convert_all, count, page_limit};
use crate::{CommandStatus, Millis, NewCommand, QueuedCommand, ReportOutcome, Result, StoreError};

/// Active entries of enrollment `$1` as [`QueuedCommandRow`] columns (plus `seq`).
macro_rules! active {
    () => {
        "SELECT q.enrollment_id, c.uuid, c.request_type, c.payload, q.status, NULL AS result, q.seq, \
         q.created_at, q.updated_at FROM command_queue q JOIN commands c ON c.uuid = q.command_uuid \
         WHERE q.enrollment_id = $1"
    };
}

/// Finished entries of enrollment `$1` as [`QueuedCommandRow`] columns (plus `seq`).
macro_rules! finished {
    () => {
        "SELECT r.enrollment_id, c.uuid, c.request_type, c.payload, r.status, r.result, r.seq, \
         r.created_at, r.updated_at FROM command_results r JOIN commands c ON c.uuid = r.command_uuid \
         WHERE r.enrollment_id = $1"
    };
}

pub(super) async fn enqueue(
    pool: &Pool<Db>,
    enrollment_ids: &[String],
    cmd: &NewCommand,
    at: Millis,
) -> Result<()> {
    let mut ids: Vec<&str> = Vec::with_capacity(enrollment_ids.len());
    for id in enrollment_ids {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = begin_write(pool).await?;
    store_command(&mut tx, cmd, at).await?;
    for id in ids {
        enrollments::ensure_exists(&mut tx, id).await?;
        if is_finished(&mut tx, id, &cmd.uuid).await? {
            return Err(StoreError::Conflict(format!(
                "command {} already finished for enrollment {id}",
                cmd.uuid
            )));
        }
        sqlx::query(
            "INSERT INTO command_queue (enrollment_id, command_uuid, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id)
        .bind(&cmd.uuid)
        .bind(CommandStatus::Pending.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(format!("command {} is already queued for enrollment {id}", cmd.uuid))
            }
            _ => e.into(),
        })?;
    }
    tx.commit().await?;
    Ok(())
}

/// Insert the command body once; a uuid seen before must carry the same request type and payload. The insert
/// comes first so two concurrent enqueues of one command wait for each other instead of both inserting.
async fn store_command(conn: &mut Conn, cmd: &NewCommand, at: Millis) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO commands (uuid, request_type, payload, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (uuid) DO NOTHING",
    )
    .bind(&cmd.uuid)
    .bind(&cmd.request_type)
    .bind(&cmd.payload)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(());
    }
    let (request_type, payload): (String, Vec<u8>) =
        sqlx::query_as("SELECT request_type, payload FROM commands WHERE uuid = $1")
            .bind(&cmd.uuid)
            .fetch_one(conn)
            .await?;
    if request_type == cmd.request_type && payload == cmd.payload {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "command {} was stored before with a different request type or payload",
            cmd.uuid
        )))
    }
}

async fn is_finished(conn: &mut Conn, enrollment_id: &str, uuid: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM command_results WHERE enrollment_id = $1 AND command_uuid = $2",
    )
    .bind(enrollment_id)
    .bind(uuid)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

pub(super) async fn next(
    pool: &Pool<Db>,
    enrollment_id: &str,
    skip_notnow: bool,
) -> Result<Option<QueuedCommand>> {
    let row: Option<QueuedCommandRow> = if skip_notnow {
        sqlx::query_as(concat!(
            active!(),
            " AND q.status <> 'notnow' ORDER BY q.seq LIMIT 1"
        ))
        .bind(enrollment_id)
        .fetch_optional(pool)
        .await?
    } else {
        sqlx::query_as(concat!(active!(), " ORDER BY q.seq LIMIT 1"))
            .bind(enrollment_id)
            .fetch_optional(pool)
            .await?
    };
    row.map(QueuedCommand::try_from).transpose()
}

pub(super) async fn record_result(
    pool: &Pool<Db>,
    enrollment_id: &str,
    uuid: &str,
    status: CommandStatus,
    result: &[u8],
    at: Millis,
) -> Result<ReportOutcome> {
    let mut tx = begin_write(pool).await?;
    // The write comes first so concurrent reports of one command serialise on its queue row.
    let recorded = if status.is_finished() {
        let moved: Option<(i64, i64)> = sqlx::query_as(
            "DELETE FROM command_queue WHERE enrollment_id = $1 AND command_uuid = $2 RETURNING seq, created_at",
        )
        .bind(enrollment_id)
        .bind(uuid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((seq, created_at)) = moved {
            sqlx::query(
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
        moved.is_some()
    } else {
        let done = sqlx::query(
            "UPDATE command_queue SET status = $1, updated_at = $2 WHERE enrollment_id = $3 AND command_uuid = $4",
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
    } else if is_finished(&mut tx, enrollment_id, uuid).await? {
        ReportOutcome::Duplicate
    } else {
        ReportOutcome::UnknownCommand
    };
    tx.commit().await?;
    Ok(outcome)
}

pub(super) async fn get(
    pool: &Pool<Db>,
    enrollment_id: &str,
    uuid: &str,
) -> Result<Option<QueuedCommand>> {
    let row: Option<QueuedCommandRow> = sqlx::query_as(concat!(
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

pub(super) async fn history(
    pool: &Pool<Db>,
    enrollment_id: &str,
    limit: u32,
) -> Result<Vec<QueuedCommand>> {
    let rows: Vec<QueuedCommandRow> = sqlx::query_as(concat!(
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

pub(super) async fn active_len(pool: &Pool<Db>, enrollment_id: &str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM command_queue WHERE enrollment_id = $1")
        .bind(enrollment_id)
        .fetch_one(pool)
        .await?;
    count(n)
}
