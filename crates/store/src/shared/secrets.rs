//! The generic sealed-secret table, shared by both backends (compiled per backend, see `sqlite.rs`).
//! Guarantees: paging visits every secret exactly once in bytewise (owner, field) order; a rewrap only lands
//! if the blob is still the one the rewrapper read (compare-and-swap in one statement).

use sqlx::Pool;

use super::Db;
use crate::rows::{SealedSecretRow, count, page_limit};
use crate::{Millis, Result, SealedSecret};

pub(super) async fn page(
    pool: &Pool<Db>,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<SealedSecret>> {
    let limit = page_limit(limit, 100, 1000);
    let rows: Vec<SealedSecretRow> = match after {
        None => {
            sqlx::query_as(
                "SELECT owner, field, key_id, blob, updated_at FROM sealed_secrets ORDER BY owner, field LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        Some((owner, field)) => {
            sqlx::query_as(
                "SELECT owner, field, key_id, blob, updated_at FROM sealed_secrets \
                 WHERE owner > $1 OR (owner = $1 AND field > $2) ORDER BY owner, field LIMIT $3",
            )
            .bind(owner)
            .bind(field)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(SealedSecret::from).collect())
}

pub(super) async fn replace(
    pool: &Pool<Db>,
    owner: &str,
    field: &str,
    expected_blob: &[u8],
    new_key_id: &str,
    new_blob: &[u8],
    at: Millis,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE sealed_secrets SET key_id = $1, blob = $2, updated_at = $3 \
         WHERE owner = $4 AND field = $5 AND blob = $6",
    )
    .bind(new_key_id)
    .bind(new_blob)
    .bind(at)
    .bind(owner)
    .bind(field)
    .bind(expected_blob)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn key_counts(pool: &Pool<Db>) -> Result<Vec<(String, u64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT key_id, COUNT(*) FROM sealed_secrets GROUP BY key_id ORDER BY key_id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(key, n)| Ok((key, count(n)?)))
        .collect()
}

pub(super) async fn put(pool: &Pool<Db>, s: &SealedSecret) -> Result<()> {
    if s.field == crate::BOOTSTRAP_TOKEN_FIELD {
        return Err(crate::StoreError::Conflict(
            "Bootstrap Tokens are written with put_bootstrap_token (secret and metadata together)"
                .into(),
        ));
    }
    if s.field == crate::COMMAND_PAYLOAD_FIELD {
        return Err(crate::StoreError::Conflict(
            "sealed command payloads are written with enqueue_sealed (with their command)".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO sealed_secrets (owner, field, key_id, blob, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (owner, field) DO UPDATE SET key_id = excluded.key_id, blob = excluded.blob, \
         updated_at = excluded.updated_at",
    )
    .bind(&s.owner)
    .bind(&s.field)
    .bind(&s.key_id)
    .bind(&s.blob)
    .bind(s.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get(pool: &Pool<Db>, owner: &str, field: &str) -> Result<Option<SealedSecret>> {
    let row: Option<SealedSecretRow> = sqlx::query_as(
        "SELECT owner, field, key_id, blob, updated_at FROM sealed_secrets WHERE owner = $1 AND field = $2",
    )
    .bind(owner)
    .bind(field)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(SealedSecret::from))
}
