//! Admin API keys. Guarantees: only the key's hash is stored; creating and revoking a key write their audit
//! event in the same transaction.

use super::Db;

use super::{Backend, SqlStore, events, query, query_as};
use crate::{
    Admin, ApiKey, ApiScope, DeviceFilter, DeviceRecord, Millis, NewEvent, Result, StoreError,
};

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

pub(super) async fn create<DB: Backend>(
    pool: &Db<DB>,
    key: &ApiKey,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    query::<DB>(
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
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn by_hash<DB: Backend>(pool: &Db<DB>, key_hash: &str) -> Result<Option<ApiKey>> {
    let row: Option<ApiKeyRow> = query_as::<DB, _>(concat!(select_keys!(), " WHERE key_hash = $1"))
        .bind(key_hash)
        .fetch_optional(pool)
        .await?;
    row.map(ApiKey::try_from).transpose()
}

pub(super) async fn list<DB: Backend>(pool: &Db<DB>) -> Result<Vec<ApiKey>> {
    let rows: Vec<ApiKeyRow> =
        query_as::<DB, _>(concat!(select_keys!(), " ORDER BY created_at, id"))
            .fetch_all(pool)
            .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

pub(super) async fn revoke<DB: Backend>(
    pool: &Db<DB>,
    id: &str,
    at: Millis,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    let done =
        query::<DB>("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("active API key {id}")));
    }
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait::async_trait]
impl<DB: Backend> Admin for SqlStore<DB> {
    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()> {
        create(&self.pool, key, event).await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        by_hash(&self.pool, key_hash).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        list(&self.pool).await
    }

    async fn revoke_api_key(&self, id: &str, at: Millis, event: &NewEvent) -> Result<()> {
        revoke(&self.pool, id, at, event).await
    }

    async fn device_record(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        super::devices::record(&self.pool, device_id).await
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceRecord>> {
        super::devices::list(&self.pool, filter).await
    }

    async fn fleet_counts(&self, identity_expires_before: Millis) -> Result<crate::FleetCounts> {
        super::devices::counts(&self.pool, identity_expires_before).await
    }
}
