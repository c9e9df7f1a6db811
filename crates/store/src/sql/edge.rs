//! Counted refusals of unauthenticated requests (see `edge_model.rs`). Guarantees: adding counts is one
//! transaction: each (kind, source, bucket) row is created or has the count added (first_at earliest, last_at
//! and detail latest; detail capped), then rows of buckets before `forget_before` are deleted and only the
//! `keep_at_most` most recently seen rows are kept.

use super::Db;

use super::{Backend, QueryBuilder, SqlStore, query};
use crate::rows::page_limit;
use crate::{
    AuthFailureCount, AuthFailureFilter, Edge, MAX_AUTH_FAILURE_DETAIL, Millis, Result, cap_text,
};

pub(super) async fn add<DB: Backend>(
    pool: &Db<DB>,
    counts: &[AuthFailureCount],
    forget_before: Millis,
    keep_at_most: u32,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    for c in counts {
        query::<DB>(
            "INSERT INTO auth_failures (kind, source, bucket, count, first_at, last_at, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (kind, source, bucket) DO UPDATE SET \
               count = auth_failures.count + excluded.count, \
               first_at = CASE WHEN excluded.first_at < auth_failures.first_at \
                          THEN excluded.first_at ELSE auth_failures.first_at END, \
               detail = CASE WHEN excluded.last_at >= auth_failures.last_at \
                        THEN excluded.detail ELSE auth_failures.detail END, \
               last_at = CASE WHEN excluded.last_at > auth_failures.last_at \
                         THEN excluded.last_at ELSE auth_failures.last_at END",
        )
        .bind(&c.kind)
        .bind(&c.source)
        .bind(c.bucket)
        .bind(c.count)
        .bind(c.first_at)
        .bind(c.last_at)
        .bind(cap_text(&c.detail, MAX_AUTH_FAILURE_DETAIL))
        .execute(&mut *tx)
        .await?;
    }
    query::<DB>("DELETE FROM auth_failures WHERE bucket < $1")
        .bind(forget_before)
        .execute(&mut *tx)
        .await?;
    // Beyond the cap the least recently seen rows go (ties at the boundary may keep a few more).
    query::<DB>(
        "DELETE FROM auth_failures WHERE last_at < \
         (SELECT last_at FROM auth_failures ORDER BY last_at DESC LIMIT 1 OFFSET $1)",
    )
    // The keep_at_most-th newest is the oldest kept.
    .bind(i64::from(keep_at_most.max(1)) - 1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list<DB: Backend>(
    pool: &Db<DB>,
    f: &AuthFailureFilter,
) -> Result<Vec<AuthFailureCount>> {
    let mut q = QueryBuilder::<DB>::new(
        "SELECT kind, source, bucket, count, first_at, last_at, detail FROM auth_failures WHERE 1 = 1",
    );
    if let Some(kind) = &f.kind {
        q.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(source) = &f.source {
        q.push(" AND source = ").push_bind(source.as_str());
    }
    if let Some(since) = f.since {
        q.push(" AND bucket >= ").push_bind(since);
    }
    q.push(" ORDER BY bucket DESC, kind, source LIMIT ")
        .push_bind(page_limit(f.limit, 100, 1000));
    let rows: Vec<(String, String, i64, i64, i64, i64, String)> =
        q.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(
            |(kind, source, bucket, count, first_at, last_at, detail)| AuthFailureCount {
                kind,
                source,
                bucket,
                count,
                first_at,
                last_at,
                detail,
            },
        )
        .collect())
}

#[async_trait::async_trait]
impl<DB: Backend> Edge for SqlStore<DB> {
    async fn add_auth_failures(
        &self,
        counts: &[AuthFailureCount],
        forget_before: Millis,
        keep_at_most: u32,
    ) -> Result<()> {
        add(&self.pool, counts, forget_before, keep_at_most).await
    }

    async fn auth_failures(&self, f: &AuthFailureFilter) -> Result<Vec<AuthFailureCount>> {
        list(&self.pool, f).await
    }
}
