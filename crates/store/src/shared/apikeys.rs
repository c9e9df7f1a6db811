//! Admin API keys, shared by both backends (compiled per backend, see `sqlite.rs`). Guarantees: only the key's
//! hash is stored; creating and revoking a key write their audit event in the same transaction.

use sqlx::Pool;

use super::{Db, begin_write, events};
use crate::{ApiKey, ApiScope, Millis, NewEvent, Result, StoreError};

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    scope: String,
    key_hash: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(ApiKey {
            scope: ApiScope::from_stored(&r.scope)?,
            id: r.id,
            name: r.name,
            key_hash: r.key_hash,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// `SELECT … FROM api_keys` matching [`ApiKeyRow`], for `concat!` into static SQL.
macro_rules! select_keys {
    () => {
        "SELECT id, name, scope, key_hash, created_at, revoked_at FROM api_keys"
    };
}

pub(super) async fn create(pool: &Pool<Db>, key: &ApiKey, event: &NewEvent) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO api_keys (id, name, scope, key_hash, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(key.scope.as_str())
    .bind(&key.key_hash)
    .bind(key.created_at)
    .bind(key.revoked_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("API key id {:?} exists", key.id)),
        other => other,
    })?;
    events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn by_hash(pool: &Pool<Db>, key_hash: &str) -> Result<Option<ApiKey>> {
    let row: Option<ApiKeyRow> = sqlx::query_as(concat!(select_keys!(), " WHERE key_hash = $1"))
        .bind(key_hash)
        .fetch_optional(pool)
        .await?;
    row.map(ApiKey::try_from).transpose()
}

pub(super) async fn list(pool: &Pool<Db>) -> Result<Vec<ApiKey>> {
    let rows: Vec<ApiKeyRow> = sqlx::query_as(concat!(select_keys!(), " ORDER BY created_at, id"))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

pub(super) async fn revoke(pool: &Pool<Db>, id: &str, at: Millis, event: &NewEvent) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("active API key {id}")));
    }
    events::insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}
