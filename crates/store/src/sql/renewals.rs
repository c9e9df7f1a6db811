//! Identity renewals (issue 11). Guarantees: at most one renewal record per Mac (a new one replaces it); a
//! Mac is due only while it is an enabled, finished, unblocked device enrollment (never a pending identity or
//! a user channel) whose bound certificate expires by the given time and which has no renewal outstanding
//! (none recorded, or its challenge expired); due Macs come soonest expiry first, then by id, at most one
//! page.

use super::Db;

use super::{Backend, SqlStore, events, query, query_as, query_scalar};
use crate::rows::{EnrollmentRow, convert_all, enrollment_columns, page_limit};
use crate::{Enrollment, IdentityRenewal, Millis, NewEvent, Renewals, Result, StoreError};

pub(super) async fn put<DB: Backend>(
    pool: &Db<DB>,
    r: &IdentityRenewal,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    let device: Option<String> = query_scalar::<DB, _>(
        "SELECT id FROM enrollments WHERE id = $1 AND channel = 'device' AND pending_for IS NULL",
    )
    .bind(&r.device_id)
    .fetch_optional(&mut *tx)
    .await?;
    if device.is_none() {
        return Err(StoreError::NotFound(format!("device {}", r.device_id)));
    }
    query::<DB>(
        "INSERT INTO identity_renewals \
         (device_id, command_uuid, queued_at, challenge_expires_at, renews_not_after) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (device_id) DO UPDATE SET command_uuid = excluded.command_uuid, \
         queued_at = excluded.queued_at, challenge_expires_at = excluded.challenge_expires_at, \
         renews_not_after = excluded.renews_not_after",
    )
    .bind(&r.device_id)
    .bind(&r.command_uuid)
    .bind(r.queued_at)
    .bind(r.challenge_expires_at)
    .bind(r.renews_not_after)
    .execute(&mut *tx)
    .await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RenewalRow {
    device_id: String,
    command_uuid: String,
    queued_at: i64,
    challenge_expires_at: i64,
    renews_not_after: Option<i64>,
}

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Option<IdentityRenewal>> {
    let row: Option<RenewalRow> = query_as::<DB, _>(
        "SELECT device_id, command_uuid, queued_at, challenge_expires_at, renews_not_after \
         FROM identity_renewals WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| IdentityRenewal {
        device_id: r.device_id,
        command_uuid: r.command_uuid,
        queued_at: r.queued_at,
        challenge_expires_at: r.challenge_expires_at,
        renews_not_after: r.renews_not_after,
    }))
}

pub(super) async fn clear<DB: Backend>(pool: &Db<DB>, device_id: &str) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>("DELETE FROM identity_renewals WHERE device_id = $1")
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn due<DB: Backend>(
    pool: &Db<DB>,
    expiring_by: Millis,
    at: Millis,
    limit: u32,
) -> Result<Vec<Enrollment>> {
    let rows: Vec<EnrollmentRow> = query_as::<DB, _>(concat!(
        "SELECT ",
        enrollment_columns!(),
        " FROM enrollments WHERE channel = 'device' AND pending_for IS NULL AND enabled = TRUE \
         AND blocked_at IS NULL AND token_update_count > 0 \
         AND cert_not_after IS NOT NULL AND cert_not_after <= $1 \
         AND NOT EXISTS (SELECT 1 FROM identity_renewals r WHERE r.device_id = enrollments.id \
         AND r.challenge_expires_at > $2) \
         ORDER BY cert_not_after, id LIMIT $3"
    ))
    .bind(expiring_by)
    .bind(at)
    .bind(page_limit(limit, 100, 10_000))
    .fetch_all(pool)
    .await?;
    convert_all(rows)
}

pub(super) async fn backfill_not_after<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    fingerprint: &str,
    not_after: Millis,
) -> Result<bool> {
    let done = query::<DB>(
        "UPDATE enrollments SET cert_not_after = $3 \
         WHERE id = $1 AND cert_fingerprint = $2 AND cert_not_after IS NULL",
    )
    .bind(device_id)
    .bind(fingerprint)
    .bind(not_after)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[async_trait::async_trait]
impl<DB: Backend> Renewals for SqlStore<DB> {
    async fn put_identity_renewal(&self, r: &IdentityRenewal, event: &NewEvent) -> Result<()> {
        put(&self.pool, r, event).await
    }

    async fn identity_renewal(&self, device_id: &str) -> Result<Option<IdentityRenewal>> {
        get(&self.pool, device_id).await
    }

    async fn clear_identity_renewal(&self, device_id: &str) -> Result<bool> {
        clear(&self.pool, device_id).await
    }

    async fn identity_renewals_due(
        &self,
        expiring_by: Millis,
        at: Millis,
        limit: u32,
    ) -> Result<Vec<Enrollment>> {
        due(&self.pool, expiring_by, at, limit).await
    }

    async fn backfill_cert_not_after(
        &self,
        device_id: &str,
        fingerprint: &str,
        not_after: Millis,
    ) -> Result<bool> {
        backfill_not_after(&self.pool, device_id, fingerprint, not_after).await
    }
}
