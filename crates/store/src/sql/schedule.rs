//! The automatic inventory schedule. Guarantees: only enabled device-channel enrollments that finished
//! enrolling (a TokenUpdate was received) are ever due; a device whose every inventory command is still
//! queued is never due; due devices come oldest request first (never asked first), then by id, at most one
//! page; request types are bound parameters.

use std::collections::HashMap;

use super::Db;

use super::{Backend, QueryBuilder, Script, Step, enrollments, query, query_scalar};
use crate::rows::page_limit;
use crate::{InventoryDue, Millis, Result};

pub(super) async fn due<DB: Backend>(
    pool: &Db<DB>,
    requested_before: Millis,
    request_types: &[String],
    limit: u32,
) -> Result<Vec<InventoryDue>> {
    if request_types.is_empty() {
        return Ok(Vec::new());
    }
    let wanted = i64::try_from(request_types.len()).unwrap_or(i64::MAX);
    let mut q = QueryBuilder::<DB>::new(
        "SELECT e.id, s.requested_at FROM enrollments e \
         LEFT JOIN inventory_schedule s ON s.device_id = e.id \
         WHERE e.channel = 'device' AND e.pending_for IS NULL AND e.enabled = TRUE AND e.token_update_count > 0 \
         AND (s.requested_at IS NULL OR s.requested_at < ",
    );
    q.push_bind(requested_before);
    q.push(
        ") AND (SELECT COUNT(DISTINCT c.request_type) FROM command_queue q \
         JOIN commands c ON c.uuid = q.command_uuid \
         WHERE q.enrollment_id = e.id AND c.request_type IN (",
    );
    let mut list = q.separated(", ");
    for t in request_types {
        list.push_bind(t.clone());
    }
    q.push(")) < ").push_bind(wanted);
    q.push(" ORDER BY COALESCE(s.requested_at, -1), e.id LIMIT ")
        .push_bind(page_limit(limit, 100, 10_000));
    let rows: Vec<(String, Option<Millis>)> = q.build_query_as().fetch_all(pool).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }

    let mut q = QueryBuilder::<DB>::new(
        "SELECT q.enrollment_id, c.request_type FROM command_queue q \
         JOIN commands c ON c.uuid = q.command_uuid WHERE q.enrollment_id IN (",
    );
    let mut list = q.separated(", ");
    for (id, _) in &rows {
        list.push_bind(id.clone());
    }
    q.push(") AND c.request_type IN (");
    let mut list = q.separated(", ");
    for t in request_types {
        list.push_bind(t.clone());
    }
    q.push(") ORDER BY q.seq");
    let active: Vec<(String, String)> = q.build_query_as().fetch_all(pool).await?;
    let mut pending: HashMap<String, Vec<String>> = HashMap::new();
    for (id, request_type) in active {
        let entry = pending.entry(id).or_default();
        if !entry.contains(&request_type) {
            entry.push(request_type);
        }
    }
    Ok(rows
        .into_iter()
        .map(|(device_id, requested_at)| InventoryDue {
            pending: pending.remove(&device_id).unwrap_or_default(),
            device_id,
            requested_at,
        })
        .collect())
}

pub(super) async fn mark_requested<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    at: Millis,
) -> Result<()> {
    // Through the writer, as every write: on SQLite an upsert on a pool connection waited for the database lock
    // the group-commit writer holds batch after batch (busy-handler sleeps of up to 100 ms under load), and on
    // every enrollment. An unknown device fails the row's foreign key: no lookup first.
    let device_id: std::sync::Arc<str> = device_id.into();
    pool.write(Box::new(move |conn| {
        let device_id = device_id.clone();
        Box::pin(async move {
            query::<DB>(
                "INSERT INTO inventory_schedule (device_id, requested_at) VALUES ($1, $2) \
                 ON CONFLICT (device_id) DO UPDATE SET requested_at = excluded.requested_at",
            )
            .bind(&*device_id)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(|e| enrollments::missing_if_unknown(e, &device_id))?;
            Ok(())
        })
    }))
    .await
}

pub(super) async fn requested_at<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Option<Millis>> {
    let at: Option<Millis> =
        query_scalar::<DB, _>("SELECT requested_at FROM inventory_schedule WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(pool)
            .await?;
    Ok(at)
}

pub(super) async fn active_request_types<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
) -> Result<Vec<String>> {
    const SQL: &str = "SELECT c.request_type FROM command_queue q JOIN commands c ON c.uuid = q.command_uuid \
         WHERE q.enrollment_id = $1 ORDER BY q.seq";
    // Read after every SetBootstrapToken (its follow-ups look at the queue): a local read on SQLite.
    if let Some(local) = pool.local() {
        let rows: Vec<(String,)> = local.all(SQL, &[&enrollment_id])?;
        return Ok(rows.into_iter().map(|(t,)| t).collect());
    }
    let types: Vec<String> = query_scalar::<DB, _>(SQL)
        .bind(enrollment_id)
        .fetch_all(pool)
        .await?;
    Ok(types)
}

/// Record `now` as the device's UserList refresh unless one was recorded at or after `not_since`; true when
/// recorded. One statement (an upsert whose update is conditional), so two processes cannot both win.
pub(super) async fn claim_user_list_refresh<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    now: Millis,
    not_since: Millis,
) -> Result<bool> {
    if user_list_asked_since(pool, device_id, not_since).await? {
        return Ok(false);
    }
    // Through the writer like every other write: on SQLite a write on a pool connection would wait for the
    // database lock the group-commit writer holds batch after batch (busy-handler sleeps, seconds under load).
    // A script: it runs on the writer's own connection with the batch's other writes (as a write job, one
    // round trip to sqlx's connection thread of its own).
    let mut script = Script::default();
    script.push(claim_user_list_step(device_id, now, not_since));
    let changed = pool.script(script).await?;
    Ok(changed.first() == Some(&1))
}

/// Whether the device's UserList refresh was claimed at or after `not_since` (requested_at only grows), so a
/// claim now cannot succeed: a read answers without a write. The common case: a Mac escrowing again within the
/// interval after its UserList was answered. (Written each time, a Set storm after the queues were answered
/// wrote one claim per SetBootstrapToken.)
pub(super) async fn user_list_asked_since<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    not_since: Millis,
) -> Result<bool> {
    const ASKED_SINCE: &str =
        "SELECT requested_at FROM user_list_refresh WHERE device_id = $1 AND requested_at >= $2";
    Ok(match pool.local() {
        Some(local) => local
            .optional::<(Millis,)>(ASKED_SINCE, &[&device_id, &not_since])?
            .is_some(),
        None => query_scalar::<DB, Millis>(ASKED_SINCE)
            .bind(device_id)
            .bind(not_since)
            .fetch_optional(pool)
            .await?
            .is_some(),
    })
}

/// The statement that claims the device's UserList refresh at `now` unless it was claimed at or after
/// `not_since`: it changes one row when it claims, none otherwise. An unknown device fails the row's foreign
/// key (NotFound): no lookup first.
pub(super) fn claim_user_list_step<DB: Backend>(
    device_id: &str,
    now: Millis,
    not_since: Millis,
) -> Step<DB> {
    let mut q =
        QueryBuilder::<DB>::new("INSERT INTO user_list_refresh (device_id, requested_at) VALUES (");
    q.separated(", ").push_bind(device_id).push_bind(now);
    q.push(
        ") ON CONFLICT (device_id) DO UPDATE SET requested_at = excluded.requested_at \
         WHERE user_list_refresh.requested_at < ",
    )
    .push_bind(not_since);
    Step::new(q.statement()).missing(format!("enrollment {device_id}"))
}
