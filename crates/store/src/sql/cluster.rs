//! Several instances on one database (issue 14): schedule-round claims (one atomic upsert, the same SQL on both
//! backends) and signals between instances (PostgreSQL `NOTIFY`/`LISTEN`, in `postgres.rs`; nothing on SQLite,
//! which serves one instance).

use std::any::Any;

use sqlx::{Pool, Postgres};

use super::{Backend, Db, SqlStore, enrollments, query};
use crate::{Cluster, Millis, Result, Signal, SignalListener};

pub(super) async fn claim_round<DB: Backend>(
    pool: &Db<DB>,
    kind: &str,
    device_id: &str,
    now: Millis,
    until: Millis,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    enrollments::ensure_exists::<DB>(&mut tx, device_id).await?;
    // The update is conditional: of two concurrent claims the second waits for the first row and then finds
    // its claim still running (PostgreSQL re-checks the WHERE on the committed row; SQLite has one writer).
    let done = query::<DB>(
        "INSERT INTO schedule_claims (kind, device_id, claimed_until) VALUES ($1, $2, $3) \
         ON CONFLICT (kind, device_id) DO UPDATE SET claimed_until = excluded.claimed_until \
         WHERE schedule_claims.claimed_until <= $4",
    )
    .bind(kind)
    .bind(device_id)
    .bind(until)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn release_round<DB: Backend>(
    pool: &Db<DB>,
    kind: &str,
    device_id: &str,
    now: Millis,
) -> Result<()> {
    // A write job, as every write off the hot path: on SQLite it joins the writer's next batch.
    let (kind, device_id): (std::sync::Arc<str>, std::sync::Arc<str>) =
        (kind.into(), device_id.into());
    pool.write(Box::new(move |conn| {
        let (kind, device_id) = (kind.clone(), device_id.clone());
        Box::pin(async move {
            query::<DB>(
                "UPDATE schedule_claims SET claimed_until = $1 \
                 WHERE kind = $2 AND device_id = $3 AND claimed_until > $1",
            )
            .bind(now)
            .bind(&*kind)
            .bind(&*device_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }))
    .await
}

/// The pool as a PostgreSQL pool, when this store is one (signals exist only there).
fn postgres<DB: Backend>(pool: &Pool<DB>) -> Option<&Pool<Postgres>> {
    (pool as &dyn Any).downcast_ref::<Pool<Postgres>>()
}

#[async_trait::async_trait]
impl<DB: Backend> Cluster for SqlStore<DB> {
    async fn claim_schedule_round(
        &self,
        kind: &str,
        device_id: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        claim_round(&self.pool, kind, device_id, now, until).await
    }

    async fn release_schedule_round(&self, kind: &str, device_id: &str, now: Millis) -> Result<()> {
        release_round(&self.pool, kind, device_id, now).await
    }

    async fn notify_instances(&self, origin: &str, signal: &Signal) -> Result<()> {
        match (postgres(&self.pool), signal.encode(origin)) {
            (Some(pool), Some(payload)) => crate::postgres::notify(pool, &payload).await,
            _ => Ok(()),
        }
    }

    async fn listen_instances(&self) -> Result<Option<SignalListener>> {
        match postgres(&self.pool) {
            Some(pool) => Ok(Some(crate::postgres::listen(pool).await?)),
            None => Ok(None),
        }
    }
}
