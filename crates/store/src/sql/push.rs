//! Push token validity marks. Guarantees: a mark is only set while the enrollment still holds the push token
//! APNs refused (a TokenUpdate that arrived meanwhile wins), and is written in one transaction with its
//! event.

use super::Db;

use super::{Backend, SqlStore, events, query, query_as};
use crate::{Millis, NewEvent, Push, PushInvalid, Result};

pub(super) async fn mark_invalid<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
    token: &[u8],
    reason: &str,
    at: Millis,
    event: &NewEvent,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE enrollments SET push_invalid_at = $1, push_invalid_reason = $2 \
         WHERE id = $3 AND push_token = $4",
    )
    .bind(at)
    .bind(reason)
    .bind(enrollment_id)
    .bind(token)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn clear_invalid<DB: Backend>(pool: &Db<DB>, enrollment_id: &str) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE enrollments SET push_invalid_at = NULL, push_invalid_reason = NULL \
         WHERE id = $1 AND push_invalid_at IS NOT NULL",
    )
    .bind(enrollment_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn invalid<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
) -> Result<Option<PushInvalid>> {
    const SQL: &str = "SELECT push_invalid_at, push_invalid_reason FROM enrollments WHERE id = $1";
    // Local where there are reads of our own: every push reads it for each Mac it wakes.
    let row: Option<(Option<i64>, Option<String>)> = match pool.local() {
        Some(local) => local.optional(SQL, &[&enrollment_id])?,
        None => {
            query_as::<DB, _>(SQL)
                .bind(enrollment_id)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(match row {
        Some((Some(at), reason)) => Some(PushInvalid {
            at,
            reason: reason.unwrap_or_default(),
        }),
        _ => None,
    })
}

#[async_trait::async_trait]
impl<DB: Backend> Push for SqlStore<DB> {
    async fn mark_push_invalid(
        &self,
        enrollment_id: &str,
        token: &[u8],
        reason: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<bool> {
        mark_invalid(&self.pool, enrollment_id, token, reason, at, event).await
    }

    async fn clear_push_invalid(&self, enrollment_id: &str) -> Result<bool> {
        clear_invalid(&self.pool, enrollment_id).await
    }

    async fn push_invalid(&self, enrollment_id: &str) -> Result<Option<PushInvalid>> {
        invalid(&self.pool, enrollment_id).await
    }
}
