//! Groups of enrollments. Guarantees: group ids and names are unique (Conflict otherwise); an enrollment only
//! ever points at an existing group.

use super::Db;

use super::{Backend, SqlStore, enrollments, query, query_as, query_scalar};
use crate::rows::GroupRow;
use crate::{Group, GroupAccountSettings, Groups, NewEvent, Result, StoreError};

/// `SELECT … FROM device_groups` matching [`GroupRow`], for `concat!` into static SQL.
macro_rules! select_groups {
    () => {
        "SELECT id, name, bootstrap_escrow_enabled, prompt_user_to_allow_bootstrap_token_for_authentication, \
         created_at, updated_at FROM device_groups"
    };
}

/// A unique violation reported as `message`; anything else as usual.
fn unique_as_conflict(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => e.into(),
    }
}

pub(super) async fn create<DB: Backend>(pool: &Db<DB>, g: &Group) -> Result<()> {
    query::<DB>(
        "INSERT INTO device_groups (id, name, bootstrap_escrow_enabled, \
         prompt_user_to_allow_bootstrap_token_for_authentication, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&g.id)
    .bind(&g.name)
    .bind(g.bootstrap_escrow_enabled)
    .bind(g.prompt_user_to_allow_bootstrap_token_for_authentication)
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(pool)
    .await
    .map_err(|e| {
        unique_as_conflict(e, || {
            format!(
                "a group with id {:?} or name {:?} already exists",
                g.id, g.name
            )
        })
    })?;
    Ok(())
}

pub(super) async fn update<DB: Backend>(pool: &Db<DB>, g: &Group) -> Result<()> {
    let done = query::<DB>(
        "UPDATE device_groups SET name = $1, bootstrap_escrow_enabled = $2, \
         prompt_user_to_allow_bootstrap_token_for_authentication = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(&g.name)
    .bind(g.bootstrap_escrow_enabled)
    .bind(g.prompt_user_to_allow_bootstrap_token_for_authentication)
    .bind(g.updated_at)
    .bind(&g.id)
    .execute(pool)
    .await
    .map_err(|e| unique_as_conflict(e, || format!("another group is already named {:?}", g.name)))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("group {}", g.id)));
    }
    Ok(())
}

pub(super) async fn get<DB: Backend>(pool: &Db<DB>, id: &str) -> Result<Option<Group>> {
    const SQL: &str = concat!(select_groups!(), " WHERE id = $1");
    let row: Option<GroupRow> = match pool.local() {
        Some(local) => local.optional(SQL, &[&id])?,
        None => query_as::<DB, _>(SQL).bind(id).fetch_optional(pool).await?,
    };
    Ok(row.map(Group::from))
}

pub(super) async fn by_name<DB: Backend>(pool: &Db<DB>, name: &str) -> Result<Option<Group>> {
    let row: Option<GroupRow> = query_as::<DB, _>(concat!(select_groups!(), " WHERE name = $1"))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Group::from))
}

pub(super) async fn list<DB: Backend>(pool: &Db<DB>) -> Result<Vec<Group>> {
    let rows: Vec<GroupRow> = query_as::<DB, _>(concat!(select_groups!(), " ORDER BY name, id"))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Group::from).collect())
}

/// Fails with NotFound unless group `id` exists.
pub(super) async fn ensure_exists<DB: Backend>(conn: &mut DB::Connection, id: &str) -> Result<()> {
    let found: Option<String> = query_scalar::<DB, _>("SELECT id FROM device_groups WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("group {id}"))),
    }
}

pub(super) async fn set_enrollment_group<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    group_id: Option<&str>,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    enrollments::ensure_exists::<DB>(&mut tx, enrollment_id).await?;
    if let Some(group_id) = group_id {
        ensure_exists::<DB>(&mut tx, group_id).await?;
    }
    query::<DB>("UPDATE enrollments SET group_id = $1 WHERE id = $2")
        .bind(group_id)
        .bind(enrollment_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Delete a group (its members keep their enrollment, without a group) and write `event`, one transaction.
pub(super) async fn delete<DB: Backend>(
    pool: &Db<DB>,
    id: &str,
    event: &crate::NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    query::<DB>("UPDATE enrollments SET group_id = NULL WHERE group_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // Also on SQLite connections without foreign-key enforcement.
    query::<DB>("DELETE FROM group_account_settings WHERE group_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = query::<DB>("DELETE FROM device_groups WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("group {id}")));
    }
    super::events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// A group's managed-admin settings, if any.
pub(super) async fn account_settings<DB: Backend>(
    pool: &Db<DB>,
    group_id: &str,
) -> Result<Option<crate::GroupAccountSettings>> {
    let row: Option<crate::rows::GroupAccountSettingsRow> = query_as::<DB, _>(
        "SELECT group_id, admin_short_name, admin_full_name, admin_hidden, primary_account, \
         dont_auto_populate_primary_account_info, lock_primary_account_info, primary_account_full_name, \
         primary_account_user_name, updated_at FROM group_account_settings WHERE group_id = $1",
    )
    .bind(group_id)
    .fetch_optional(pool)
    .await?;
    row.map(crate::GroupAccountSettings::try_from).transpose()
}

/// Set (insert or replace) a group's managed-admin settings and write `event`, one transaction; NotFound
/// unless the group exists.
pub(super) async fn put_account_settings<DB: Backend>(
    pool: &Db<DB>,
    s: &crate::GroupAccountSettings,
    event: &crate::NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    ensure_exists::<DB>(&mut tx, &s.group_id).await?;
    query::<DB>(
        "INSERT INTO group_account_settings (group_id, admin_short_name, admin_full_name, admin_hidden, \
         primary_account, dont_auto_populate_primary_account_info, lock_primary_account_info, \
         primary_account_full_name, primary_account_user_name, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (group_id) DO UPDATE SET admin_short_name = excluded.admin_short_name, \
         admin_full_name = excluded.admin_full_name, admin_hidden = excluded.admin_hidden, \
         primary_account = excluded.primary_account, \
         dont_auto_populate_primary_account_info = excluded.dont_auto_populate_primary_account_info, \
         lock_primary_account_info = excluded.lock_primary_account_info, \
         primary_account_full_name = excluded.primary_account_full_name, \
         primary_account_user_name = excluded.primary_account_user_name, updated_at = excluded.updated_at",
    )
    .bind(&s.group_id)
    .bind(&s.admin_short_name)
    .bind(&s.admin_full_name)
    .bind(s.admin_hidden)
    .bind(s.primary_account.as_str())
    .bind(s.dont_auto_populate_primary_account_info)
    .bind(s.lock_primary_account_info)
    .bind(&s.primary_account_full_name)
    .bind(&s.primary_account_user_name)
    .bind(s.updated_at)
    .execute(&mut *tx)
    .await?;
    super::events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Remove a group's managed-admin settings; writes `event` only when there were some. Whether a row went.
pub(super) async fn delete_account_settings<DB: Backend>(
    pool: &Db<DB>,
    group_id: &str,
    event: &crate::NewEvent,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>("DELETE FROM group_account_settings WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    super::events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

#[async_trait::async_trait]
impl<DB: Backend> Groups for SqlStore<DB> {
    async fn create_group(&self, g: &Group) -> Result<()> {
        create(&self.pool, g).await
    }

    async fn update_group(&self, g: &Group) -> Result<()> {
        update(&self.pool, g).await
    }

    async fn group(&self, id: &str) -> Result<Option<Group>> {
        get(&self.pool, id).await
    }

    async fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        by_name(&self.pool, name).await
    }

    async fn list_groups(&self) -> Result<Vec<Group>> {
        list(&self.pool).await
    }

    async fn group_account_settings(&self, group_id: &str) -> Result<Option<GroupAccountSettings>> {
        account_settings(&self.pool, group_id).await
    }

    async fn put_group_account_settings(
        &self,
        settings: &GroupAccountSettings,
        event: &NewEvent,
    ) -> Result<()> {
        put_account_settings(&self.pool, settings, event).await
    }

    async fn delete_group_account_settings(
        &self,
        group_id: &str,
        event: &NewEvent,
    ) -> Result<bool> {
        delete_account_settings(&self.pool, group_id, event).await
    }

    async fn set_enrollment_group(
        &self,
        enrollment_id: &str,
        group_id: Option<&str>,
    ) -> Result<()> {
        set_enrollment_group(&self.pool, enrollment_id, group_id).await
    }

    async fn delete_group(&self, id: &str, event: &NewEvent) -> Result<()> {
        delete(&self.pool, id, event).await
    }
}
