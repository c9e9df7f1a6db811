//! Escrowed Bootstrap Tokens. Guarantees: the metadata row and its sealed secret (owner = enrollment id,
//! field = `bootstrap_token`) are written and deleted together in one transaction with the caller's event; a
//! token is only stored for an existing enrollment, under its own owner and field.

use super::Db;

use super::{Backend, BulkRow, QueryBuilder, SqlStore, Stmt, enrollments, events, query, query_as};
use crate::rows::{BootstrapTokenRow, EnrollmentTokenRow, enrollment_columns};
use crate::{
    BOOTSTRAP_TOKEN_FIELD, BootstrapTokenRecord, Enrollment, Millis, NewEvent, Result, StoreError,
    Tokens,
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
    // The one ordinary failure, a missing enrollment, is found before anything is written; then the rows go
    // in bulk with the next batch (an enrollment deleted in between fails that batch on its foreign key).
    if !enrollments::exists_now(pool, &rec.enrollment_id).await? {
        return Err(enrollments::missing(&rec.enrollment_id));
    }
    pool.append(Escrowed {
        rec: rec.clone(),
        event: event.clone(),
    })
    .await
}

/// An escrowed token's two rows and its event, written in bulk by the group-commit writer.
struct Escrowed {
    rec: BootstrapTokenRecord,
    event: NewEvent,
}

impl<DB: Backend> BulkRow<DB> for Escrowed {
    fn statements(rows: Vec<Self>) -> Vec<Stmt<DB>> {
        let mut stmts = Vec::new();
        for chunk in rows.chunks(events::BULK_CHUNK) {
            // The last escrow of a Mac wins, as if they had been written one by one.
            let mut last: Vec<&BootstrapTokenRecord> = Vec::with_capacity(chunk.len());
            for r in chunk {
                match last
                    .iter_mut()
                    .find(|l| l.enrollment_id == r.rec.enrollment_id)
                {
                    Some(l) => *l = &r.rec,
                    None => last.push(&r.rec),
                }
            }
            stmts.extend(upsert_statements::<DB>(&last));
            let escrowed: Vec<&NewEvent> = chunk.iter().map(|r| &r.event).collect();
            stmts.extend(events::insert_statements::<DB>(&escrowed));
        }
        stmts
    }
}

/// Writes `rec` (already checked to be sealed under its own owner and field) inside the caller's transaction.
pub(super) async fn put_in<DB: Backend>(
    conn: &mut DB::Connection,
    rec: &BootstrapTokenRecord,
) -> Result<()> {
    enrollments::ensure_exists::<DB>(conn, &rec.enrollment_id).await?;
    upsert::<DB>(conn, &[rec]).await
}

/// The two rows of each record (at most [`events::BULK_CHUNK`]: 6 values each), one statement per table, for
/// enrollments known to exist. One record per enrollment: an upsert may not touch one row twice in a statement
/// (PostgreSQL refuses it).
async fn upsert<DB: Backend>(
    conn: &mut DB::Connection,
    recs: &[&BootstrapTokenRecord],
) -> Result<()> {
    for st in upsert_statements::<DB>(recs) {
        st.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`upsert`]'s two statements.
fn upsert_statements<DB: Backend>(recs: &[&BootstrapTokenRecord]) -> Vec<Stmt<DB>> {
    let mut q = QueryBuilder::<DB>::new(
        "INSERT INTO sealed_secrets (owner, field, key_id, blob, updated_at) VALUES ",
    );
    q.push_values(recs, |row, rec| {
        row.push_bind(&rec.sealed.owner)
            .push_bind(&rec.sealed.field)
            .push_bind(&rec.sealed.key_id)
            .push_bind(&rec.sealed.blob)
            .push_bind(rec.sealed.updated_at);
    });
    q.push(
        " ON CONFLICT (owner, field) DO UPDATE SET key_id = excluded.key_id, blob = excluded.blob, \
         updated_at = excluded.updated_at",
    );
    let secrets = q.statement();
    let mut q = QueryBuilder::<DB>::new(
        "INSERT INTO bootstrap_tokens (enrollment_id, size, digest, escrowed_at, verified, last_requested_at) \
         VALUES ",
    );
    q.push_values(recs, |row, rec| {
        row.push_bind(&rec.enrollment_id)
            .push_bind(rec.size)
            .push_bind(&rec.digest)
            .push_bind(rec.escrowed_at)
            .push_bind(rec.verified)
            .push_bind(rec.last_requested_at);
    });
    q.push(
        " ON CONFLICT (enrollment_id) DO UPDATE SET size = excluded.size, digest = excluded.digest, \
         escrowed_at = excluded.escrowed_at, verified = excluded.verified, \
         last_requested_at = excluded.last_requested_at",
    );
    vec![secrets, q.statement()]
}

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    enrollment_id: &str,
) -> Result<Option<BootstrapTokenRecord>> {
    const SQL: &str = "SELECT t.enrollment_id, t.size, t.digest, t.escrowed_at, t.verified, t.last_requested_at, \
         s.owner, s.field, s.key_id, s.blob, s.updated_at \
         FROM bootstrap_tokens t JOIN sealed_secrets s ON s.owner = t.enrollment_id AND s.field = $2 \
         WHERE t.enrollment_id = $1";
    let row: Option<BootstrapTokenRow> = match pool.local() {
        Some(local) => local.optional(SQL, &[&enrollment_id, &BOOTSTRAP_TOKEN_FIELD])?,
        None => {
            query_as::<DB, _>(SQL)
                .bind(enrollment_id)
                .bind(BOOTSTRAP_TOKEN_FIELD)
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(row.map(BootstrapTokenRecord::from))
}

/// `Tokens::enrollment_by_fingerprint_with_token`: on SQLite one statement (one read transaction, one lookup
/// of the certificate's enrollment), the token LEFT JOINed to the enrollment [`enrollments::by_fingerprint_with_queue`]
/// reads; elsewhere those two reads one after the other.
pub(super) async fn by_fingerprint_with_token<DB: Backend>(
    pool: &Db<DB>,
    fingerprint: &str,
) -> Result<Option<(Enrollment, bool, Option<BootstrapTokenRecord>)>> {
    let Some(local) = pool.local() else {
        let Some((enrollment, queued)) =
            enrollments::by_fingerprint_with_queue(pool, fingerprint).await?
        else {
            return Ok(None);
        };
        let token = get(pool, &enrollment.id).await?;
        return Ok(Some((enrollment, queued, token)));
    };
    // The enrollment's columns qualified (`e.updated_at`: the sealed secret has one too), named as they are.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let columns: Vec<String> = enrollment_columns!()
            .split(',')
            .map(|c| format!("e.{}", c.trim()))
            .collect();
        format!(
            "SELECT {}, EXISTS (SELECT 1 FROM command_queue q WHERE q.enrollment_id = e.id) AS queued, \
             t.enrollment_id AS token_enrollment_id, t.size AS token_size, t.digest AS token_digest, \
             t.escrowed_at AS token_escrowed_at, t.verified AS token_verified, \
             t.last_requested_at AS token_last_requested_at, s.owner AS token_owner, s.field AS token_field, \
             s.key_id AS token_key_id, s.blob AS token_blob, s.updated_at AS token_updated_at \
             FROM enrollments e \
             LEFT JOIN bootstrap_tokens t ON t.enrollment_id = e.id \
             LEFT JOIN sealed_secrets s ON s.owner = t.enrollment_id AND s.field = $2 \
             WHERE e.cert_fingerprint = $1 AND e.channel = 'device'",
            columns.join(", ")
        )
    });
    let row: Option<EnrollmentTokenRow> =
        local.optional(&SQL, &[&fingerprint, &BOOTSTRAP_TOKEN_FIELD])?;
    row.map(|r| {
        Ok((
            Enrollment::try_from(r.enrollment.enrollment)?,
            r.enrollment.queued,
            r.token.map(BootstrapTokenRecord::from),
        ))
    })
    .transpose()
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

/// A served token's mark and its audit event: written in bulk by the group-commit writer ([`Db::append`]),
/// since every GetBootstrapToken makes one.
struct Served {
    enrollment_id: String,
    at: Millis,
    event: NewEvent,
}

impl<DB: Backend> BulkRow<DB> for Served {
    fn statements(rows: Vec<Self>) -> Vec<Stmt<DB>> {
        let mut stmts = Vec::new();
        for chunk in rows.chunks(events::BULK_CHUNK) {
            // One mark per token, its latest: an UPDATE … FROM with two rows for one target is undefined.
            let mut latest: Vec<(&str, Millis)> = Vec::with_capacity(chunk.len());
            for r in chunk {
                match latest.iter_mut().find(|(id, _)| *id == r.enrollment_id) {
                    Some((_, at)) => *at = (*at).max(r.at),
                    None => latest.push((&r.enrollment_id, r.at)),
                }
            }
            let mut q = QueryBuilder::<DB>::new(
                "UPDATE bootstrap_tokens SET verified = TRUE, last_requested_at = CASE enrollment_id",
            );
            for (id, at) in &latest {
                q.push(" WHEN ")
                    .push_bind(*id)
                    .push(" THEN ")
                    .push_bind(*at);
            }
            q.push(" END WHERE enrollment_id IN (");
            {
                let mut ids = q.separated(", ");
                for (id, _) in &latest {
                    ids.push_bind(*id);
                }
            }
            q.push(")");
            stmts.push(q.statement());
            let served: Vec<&NewEvent> = chunk.iter().map(|r| &r.event).collect();
            stmts.extend(events::insert_statements::<DB>(&served));
        }
        stmts
    }
}

pub(super) async fn mark_served<DB: Backend>(
    pool: &Db<DB>,
    served: &BootstrapTokenRecord,
    at: Millis,
    event: &NewEvent,
) -> Result<()> {
    if !served.verified {
        return pool
            .append(Served {
                enrollment_id: served.enrollment_id.clone(),
                at,
                event: event.clone(),
            })
            .await;
    }
    // Already verified: only the time is left to write, and it may lag; the event may not.
    pool.defer(
        served.enrollment_id.clone(),
        Requested {
            enrollment_id: served.enrollment_id.clone(),
            escrowed_at: served.escrowed_at,
            at,
        },
    )
    .await?;
    events::record(pool, event).await
}

/// The lagging last_requested_at of an already verified token ([`Db::defer`], keyed by enrollment): one
/// `UPDATE … FROM (VALUES …)` per [`events::BULK_CHUNK`] tokens. Only the token that was served (same
/// `escrowed_at`), never backwards.
struct Requested {
    enrollment_id: String,
    escrowed_at: Millis,
    at: Millis,
}

impl<DB: Backend> BulkRow<DB> for Requested {
    /// The later time wins, whatever the order the marks came in.
    fn merge(&mut self, newer: Self) {
        self.at = self.at.max(newer.at);
    }

    fn statements(rows: Vec<Self>) -> Vec<Stmt<DB>> {
        events::chunked_values(
            &rows,
            events::BULK_CHUNK,
            "UPDATE bootstrap_tokens SET last_requested_at = v.column3 FROM (VALUES ",
            |row, r| {
                row.push_bind(&r.enrollment_id)
                    .push_bind(r.escrowed_at)
                    .push_bind(r.at);
            },
            ") AS v WHERE bootstrap_tokens.enrollment_id = v.column1 \
             AND bootstrap_tokens.escrowed_at = v.column2 \
             AND (bootstrap_tokens.last_requested_at IS NULL \
             OR bootstrap_tokens.last_requested_at < v.column3)",
        )
    }
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

    async fn enrollment_by_fingerprint_with_token(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(Enrollment, bool, Option<BootstrapTokenRecord>)>> {
        by_fingerprint_with_token(&self.pool, fingerprint).await
    }

    async fn clear_bootstrap_token(&self, enrollment_id: &str, event: &NewEvent) -> Result<bool> {
        clear(&self.pool, enrollment_id, event).await
    }

    async fn mark_bootstrap_token_served(
        &self,
        served: &BootstrapTokenRecord,
        at: Millis,
        event: &NewEvent,
    ) -> Result<()> {
        mark_served(&self.pool, served, at, event).await
    }

    async fn set_bootstrap_token_verified(
        &self,
        enrollment_id: &str,
        verified: bool,
    ) -> Result<()> {
        set_verified(&self.pool, enrollment_id, verified).await
    }
}
