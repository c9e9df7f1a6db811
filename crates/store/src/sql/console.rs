//! Console admin accounts, sessions and failed sign-ins (issue 15). Guarantees: only password hashes (Argon2id
//! PHC strings) and session token hashes are stored; events are written in the transaction of their change;
//! a password change or a disable ends the admin's sessions in the same transaction.

use super::{Backend, SqlStore, events, query, query_as, query_scalar};
use crate::{
    AdminAccounts, ApiScope, ConsoleAdminAccount, ConsoleSession, Millis, NewEvent, Result,
    StoreError,
};

#[derive(sqlx::FromRow)]
struct AdminRow {
    name: String,
    role: String,
    password_hash: String,
    created_at: i64,
    updated_at: i64,
    disabled_at: Option<i64>,
}

impl TryFrom<AdminRow> for ConsoleAdminAccount {
    type Error = StoreError;
    fn try_from(r: AdminRow) -> Result<Self> {
        Ok(ConsoleAdminAccount {
            role: ApiScope::from_stored(&r.role)?,
            name: r.name,
            password_hash: r.password_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
            disabled_at: r.disabled_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    token_hash: String,
    admin_name: String,
    csrf: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

impl From<SessionRow> for ConsoleSession {
    fn from(r: SessionRow) -> Self {
        ConsoleSession {
            token_hash: r.token_hash,
            admin_name: r.admin_name,
            csrf: r.csrf,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
        }
    }
}

macro_rules! select_admins {
    () => {
        "SELECT name, role, password_hash, created_at, updated_at, disabled_at FROM console_admins"
    };
}

async fn end_sessions_of<DB: Backend>(tx: &mut DB::Connection, name: &str) -> Result<()> {
    query::<DB>("DELETE FROM console_sessions WHERE admin_name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl<DB: Backend> AdminAccounts for SqlStore<DB> {
    async fn create_console_admin(&self, a: &ConsoleAdminAccount, event: &NewEvent) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        query::<DB>(
            "INSERT INTO console_admins (name, role, password_hash, created_at, updated_at, disabled_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&a.name)
        .bind(a.role.as_str())
        .bind(&a.password_hash)
        .bind(a.created_at)
        .bind(a.updated_at)
        .bind(a.disabled_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a console admin named {:?} exists", a.name))
            }
            other => other,
        })?;
        events::insert::<DB>(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn console_admin(&self, name: &str) -> Result<Option<ConsoleAdminAccount>> {
        let row: Option<AdminRow> =
            query_as::<DB, _>(concat!(select_admins!(), " WHERE name = $1"))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(ConsoleAdminAccount::try_from).transpose()
    }

    async fn list_console_admins(&self) -> Result<Vec<ConsoleAdminAccount>> {
        let rows: Vec<AdminRow> = query_as::<DB, _>(concat!(select_admins!(), " ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(ConsoleAdminAccount::try_from)
            .collect()
    }

    async fn set_console_admin_password(
        &self,
        name: &str,
        password_hash: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        let done = query::<DB>(
            "UPDATE console_admins SET password_hash = $1, updated_at = $2 WHERE name = $3",
        )
        .bind(password_hash)
        .bind(at)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("console admin {name:?}")));
        }
        end_sessions_of::<DB>(&mut tx, name).await?;
        events::insert::<DB>(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn disable_console_admin(&self, name: &str, at: Millis, event: &NewEvent) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        let done = query::<DB>(
            "UPDATE console_admins SET disabled_at = $1, updated_at = $1 \
             WHERE name = $2 AND disabled_at IS NULL",
        )
        .bind(at)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "enabled console admin {name:?}"
            )));
        }
        end_sessions_of::<DB>(&mut tx, name).await?;
        events::insert::<DB>(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_console_session(&self, s: &ConsoleSession, event: &NewEvent) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        query::<DB>("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        query::<DB>(
            "INSERT INTO console_sessions \
             (token_hash, admin_name, csrf, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.token_hash)
        .bind(&s.admin_name)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("session token exists".into()),
            StoreError::NotFound(_) => {
                StoreError::NotFound(format!("console admin {:?}", s.admin_name))
            }
            other => other,
        })?;
        events::insert::<DB>(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>> {
        let row: Option<SessionRow> = query_as::<DB, _>(
            "SELECT token_hash, admin_name, csrf, created_at, last_seen_at, expires_at \
             FROM console_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ConsoleSession::from))
    }

    async fn touch_console_session(&self, token_hash: &str, at: Millis) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        query::<DB>(
            "UPDATE console_sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1",
        )
        .bind(at)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_console_session(&self, token_hash: &str, event: &NewEvent) -> Result<bool> {
        let mut tx = self.pool.begin_write().await?;
        let done = query::<DB>("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        events::insert::<DB>(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_signin_failure(
        &self,
        keys: &[String],
        at: Millis,
        forget_before: Millis,
        event: &NewEvent,
    ) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        query::<DB>("DELETE FROM console_signin_failures WHERE at < $1")
            .bind(forget_before)
            .execute(&mut *tx)
            .await?;
        for key in keys {
            query::<DB>("INSERT INTO console_signin_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        events::insert::<DB>(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn signin_failures(&self, key: &str, since: Millis, limit: u32) -> Result<Vec<Millis>> {
        Ok(query_scalar::<DB, i64>(
            "SELECT at FROM console_signin_failures WHERE key = $1 AND at >= $2 \
             ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(key)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn clear_signin_failures(&self, key: &str) -> Result<()> {
        let mut tx = self.pool.begin_write().await?;
        query::<DB>("DELETE FROM console_signin_failures WHERE key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
