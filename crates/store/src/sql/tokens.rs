//! Escrowed Bootstrap Tokens. Guarantees: the metadata row and its sealed secret (owner = enrollment id,
//! field = `bootstrap_token`) are written and deleted together in one transaction with the caller's event; a
//! token is only stored for an existing enrollment, under its own owner and field.

use super::Db;

use super::{Backend, SqlStore, enrollments, events, query, query_as};
use crate::rows::BootstrapTokenRow;
use crate::{
    BOOTSTRAP_TOKEN_FIELD, BootstrapTokenRecord, Millis, NewEvent, Result, StoreError, Tokens,
};

pub(super) async fn put<DB: Backend>(
    pool: &Db<DB>,
    rec: &BootstrapTokenRecord,
    event: &NewEvent,
) -> Result<()> {
    if rec.sealed.owner != rec.enrollment_id || rec.sealed.field != BOOTSTRAP_TOKEN_FIELD {
        return Err(StoreError::Conflict(format!(
            "a Bootstrap Token for {} must be sealed as ({}, {BOOTSTRAP_TOKEN_FIELD})",
            rec.enrollment_id, rec.enrollment_id
        )));
    }
    let mut tx = pool.begin_write().await?;
    put_in::<DB>(&mut tx, rec).await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes `rec` (already checked to be sealed under its own owner and field) inside the caller's transaction.
pub(super) async fn put_in<DB: Backend>(
    conn: &mut DB::Connection,
    rec: &BootstrapTokenRecord,
) -> Result<()> {
    enrollments::ensure_exists::<DB>(conn, &rec.enrollment_id).await?;
    query::<DB>(
        "INSERT INTO sealed_secrets (owner, field, key_id, blob, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (owner, field) DO UPDATE SET key_id = excluded.key_id, blob = excluded.blob, \
         updated_at = excluded.updated_at",
    )
    .bind(&rec.sealed.owner)
    .bind(&rec.sealed.field)
    .bind(&rec.sealed.key_id)
    .bind(&rec.sealed.blob)
    .bind(rec.sealed.updated_at)
    .execute(&mut *conn)
    .await?;
    query::<DB>(
        "INSERT INTO bootstrap_tokens (enrollment_id, size, digest, escrowed_at, verified, last_requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (enrollment_id) DO UPDATE SET size = excluded.size, digest = excluded.digest, \
         escrowed_at = excluded.escrowed_at, verified = excluded.verified, \
         last_requested_at = excluded.last_requested_at",
    )
    .bind(&rec.enrollment_id)
    .bind(rec.size)
    .bind(&rec.digest)
    .bind(rec.escrowed_at)
    .bind(rec.verified)
    .bind(rec.last_requested_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
) -> Result<Option<BootstrapTokenRecord>> {
    let row: Option<BootstrapTokenRow> = query_as::<DB, _>(
        "SELECT t.enrollment_id, t.size, t.digest, t.escrowed_at, t.verified, t.last_requested_at, \
         s.owner, s.field, s.key_id, s.blob, s.updated_at \
         FROM bootstrap_tokens t JOIN sealed_secrets s ON s.owner = t.enrollment_id AND s.field = $2 \
         WHERE t.enrollment_id = $1",
    )
    .bind(enrollment_id)
    .bind(BOOTSTRAP_TOKEN_FIELD)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(BootstrapTokenRecord::from))
}

pub(super) async fn clear<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    event: &NewEvent,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let cleared = delete_in::<DB>(&mut tx, enrollment_id).await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(cleared)
}

/// Deletes `enrollment_id`'s token metadata and sealed token inside the caller's transaction; whether there
/// was one.
pub(super) async fn delete_in<DB: Backend>(
    conn: &mut DB::Connection,
    enrollment_id: &str,
) -> Result<bool> {
    let metadata = query::<DB>("DELETE FROM bootstrap_tokens WHERE enrollment_id = $1")
        .bind(enrollment_id)
        .execute(&mut *conn)
        .await?;
    let secret = query::<DB>("DELETE FROM sealed_secrets WHERE owner = $1 AND field = $2")
        .bind(enrollment_id)
        .bind(BOOTSTRAP_TOKEN_FIELD)
        .execute(&mut *conn)
        .await?;
    Ok(metadata.rows_affected() + secret.rows_affected() > 0)
}

pub(super) async fn mark_served<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    at: Millis,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    let done =
        query::<DB>("UPDATE bootstrap_tokens SET last_requested_at = $1, verified = TRUE WHERE enrollment_id = $2")
            .bind(at)
            .bind(enrollment_id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        // Dropping the transaction rolls it back: no event for a token that was not there.
        return Err(StoreError::NotFound(format!(
            "Bootstrap Token of {enrollment_id}"
        )));
    }
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_verified<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    verified: bool,
) -> Result<()> {
    query::<DB>("UPDATE bootstrap_tokens SET verified = $1 WHERE enrollment_id = $2")
        .bind(verified)
        .bind(enrollment_id)
        .execute(pool)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl<DB: Backend> Tokens for SqlStore<DB> {
    async fn put_bootstrap_token(
        &self,
        rec: &BootstrapTokenRecord,
        event: &NewEvent,
    ) -> Result<()> {
        put(&self.pool, rec, event).await
    }

    async fn bootstrap_token(&self, enrollment_id: &str) -> Result<Option<BootstrapTokenRecord>> {
        get(&self.pool, enrollment_id).await
    }

    async fn clear_bootstrap_token(&self, enrollment_id: &str, event: &NewEvent) -> Result<bool> {
        clear(&self.pool, enrollment_id, event).await
    }

    async fn mark_bootstrap_token_served(
        &self,
        enrollment_id: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<()> {
        mark_served(&self.pool, enrollment_id, at, event).await
    }

    async fn set_bootstrap_token_verified(
        &self,
        enrollment_id: &str,
        verified: bool,
    ) -> Result<()> {
        set_verified(&self.pool, enrollment_id, verified).await
    }
}
