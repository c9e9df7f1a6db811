//! The generic sealed-secret table. Guarantees: paging visits every secret exactly once in bytewise (owner,
//! field) order; a rewrap only lands if the blob is still the one the rewrapper read (compare-and-swap in one
//! statement).

use super::Db;

use super::{Backend, SqlStore, query, query_as};
use crate::rows::{SealedSecretRow, count, page_limit};
use crate::{Millis, Result, SealedSecret, Secrets};

pub(super) async fn page<DB: Backend>(
    pool: &Db<DB>,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<SealedSecret>> {
    let limit = page_limit(limit, 100, 1000);
    let rows: Vec<SealedSecretRow> = match after {
        None => {
            query_as::<DB, _>(
                "SELECT owner, field, key_id, blob, updated_at FROM sealed_secrets ORDER BY owner, field LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        Some((owner, field)) => {
            query_as::<DB, _>(
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

pub(super) async fn replace<DB: Backend>(
    pool: &Db<DB>,
    owner: &str,
    field: &str,
    expected_blob: &[u8],
    new_key_id: &str,
    new_blob: &[u8],
    at: Millis,
) -> Result<bool> {
    let done = query::<DB>(
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

pub(super) async fn key_counts<DB: Backend>(pool: &Db<DB>) -> Result<Vec<(String, u64)>> {
    let rows: Vec<(String, i64)> = query_as::<DB, _>(
        "SELECT key_id, COUNT(*) FROM sealed_secrets GROUP BY key_id ORDER BY key_id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(key, n)| Ok((key, count(n)?)))
        .collect()
}

pub(super) async fn put<DB: Backend>(pool: &Db<DB>, s: &SealedSecret) -> Result<()> {
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
    query::<DB>(
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

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    owner: &str,
    field: &str,
) -> Result<Option<SealedSecret>> {
    let row: Option<SealedSecretRow> = query_as::<DB, _>(
        "SELECT owner, field, key_id, blob, updated_at FROM sealed_secrets WHERE owner = $1 AND field = $2",
    )
    .bind(owner)
    .bind(field)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(SealedSecret::from))
}

#[async_trait::async_trait]
impl<DB: Backend> Secrets for SqlStore<DB> {
    async fn sealed_secrets_page(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<SealedSecret>> {
        page(&self.pool, after, limit).await
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
        replace(
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
        put(&self.pool, secret).await
    }

    async fn sealed_secret(&self, owner: &str, field: &str) -> Result<Option<SealedSecret>> {
        get(&self.pool, owner, field).await
    }

    async fn sealed_secret_key_counts(&self) -> Result<Vec<(String, u64)>> {
        key_counts(&self.pool).await
    }
}
