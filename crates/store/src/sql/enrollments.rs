//! Enrollments and certificate binding. Guarantees: a certificate fingerprint is bound to at most one
//! enrollment (checked in the transaction and by a unique index); CheckOut disables, deletes the token and
//! empties the queue in one transaction with its event, and never deletes events.

use super::Db;

use super::{
    Backend, BulkRow, SqlStore, Stmt, events, groups, query, query_as, query_scalar, tokens,
};
use crate::rows::{EnrollmentQueueRow, EnrollmentRow, count, enrollment_columns};
use crate::{
    BOOTSTRAP_TOKEN_FIELD, BootstrapTokenRecord, Enrollment, Enrollments, Millis, NewEvent, Result,
    StoreError,
};

const UPSERT: &str = concat!(
    "INSERT INTO enrollments (",
    enrollment_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
     $21, $22, $23, $24, $25, $26, $27, $28) \
     ON CONFLICT (id) DO UPDATE SET device_id = excluded.device_id, channel = excluded.channel, \
     user_id = excluded.user_id, user_short_name = excluded.user_short_name, \
     user_long_name = excluded.user_long_name, group_id = excluded.group_id, \
     serial_number = excluded.serial_number, model = excluded.model, model_name = excluded.model_name, \
     device_name = excluded.device_name, os_version = excluded.os_version, \
     build_version = excluded.build_version, product_name = excluded.product_name, topic = excluded.topic, \
     push_token = excluded.push_token, push_magic = excluded.push_magic, \
     awaiting_configuration = excluded.awaiting_configuration, cert_fingerprint = excluded.cert_fingerprint, \
     enabled = excluded.enabled, token_update_count = excluded.token_update_count, \
     enrolled_at = excluded.enrolled_at, updated_at = excluded.updated_at, last_seen_at = excluded.last_seen_at, \
     pending_for = excluded.pending_for, cert_not_after = excluded.cert_not_after"
);

/// The enrollment ids a CheckOut of device `$1` touches: the device itself and its user channels.
macro_rules! device_and_users {
    () => {
        "(SELECT id FROM enrollments WHERE id = $1 OR device_id = $1)"
    };
}

pub(super) async fn upsert<DB: Backend>(
    pool: &Db<DB>,
    e: &Enrollment,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    upsert_in::<DB>(&mut tx, e).await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes `e` as a whole row (except `has_pending` and `blocked_at`, which only their own statements change on
/// an existing row) inside the caller's transaction, refusing a certificate bound to another enrollment.
async fn upsert_in<DB: Backend>(tx: &mut DB::Connection, e: &Enrollment) -> Result<()> {
    if let Some(fingerprint) = &e.cert_fingerprint {
        let holder: Option<String> = query_scalar::<DB, _>(
            "SELECT id FROM enrollments WHERE cert_fingerprint = $1 AND id <> $2",
        )
        .bind(fingerprint)
        .bind(&e.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!(
                "certificate is already bound to enrollment {holder}, not {}",
                e.id
            )));
        }
    }
    if let Some(group_id) = &e.group_id {
        groups::ensure_exists::<DB>(tx, group_id).await?;
    }
    query::<DB>(UPSERT)
        .bind(&e.id)
        .bind(&e.device_id)
        .bind(e.channel.as_str())
        .bind(&e.user_id)
        .bind(&e.user_short_name)
        .bind(&e.user_long_name)
        .bind(&e.group_id)
        .bind(&e.serial_number)
        .bind(&e.model)
        .bind(&e.model_name)
        .bind(&e.device_name)
        .bind(&e.os_version)
        .bind(&e.build_version)
        .bind(&e.product_name)
        .bind(&e.topic)
        .bind(&e.push_token)
        .bind(&e.push_magic)
        .bind(e.awaiting_configuration)
        .bind(&e.cert_fingerprint)
        .bind(e.enabled)
        .bind(e.token_update_count)
        .bind(e.enrolled_at)
        .bind(e.updated_at)
        .bind(e.last_seen_at)
        .bind(&e.pending_for)
        .bind(e.has_pending)
        .bind(e.blocked_at)
        .bind(e.cert_not_after)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// On the local reads where there are some (a push reads every Mac it wakes: one per SetBootstrapToken of
/// a Mac new to a storm), else on a pooled connection.
pub(super) async fn get<DB: Backend>(pool: &Db<DB>, id: &str) -> Result<Option<Enrollment>> {
    const SQL: &str = concat!(
        "SELECT ",
        enrollment_columns!(),
        " FROM enrollments WHERE id = $1"
    );
    let row: Option<EnrollmentRow> = match pool.local() {
        Some(local) => local.optional(SQL, &[&id])?,
        None => query_as::<DB, _>(SQL).bind(id).fetch_optional(pool).await?,
    };
    row.map(Enrollment::try_from).transpose()
}

pub(super) async fn by_fingerprint<DB: Backend>(
    pool: &Db<DB>,
    fingerprint: &str,
) -> Result<Option<Enrollment>> {
    let row: Option<EnrollmentRow> = query_as::<DB, _>(concat!(
        "SELECT ",
        enrollment_columns!(),
        " FROM enrollments WHERE cert_fingerprint = $1 AND channel = 'device'"
    ))
    .bind(fingerprint)
    .fetch_optional(pool)
    .await?;
    row.map(Enrollment::try_from).transpose()
}

pub(super) async fn by_fingerprint_with_queue<DB: Backend>(
    pool: &Db<DB>,
    fingerprint: &str,
) -> Result<Option<(Enrollment, bool)>> {
    const SQL: &str = concat!(
        "SELECT ",
        enrollment_columns!(),
        ", EXISTS (SELECT 1 FROM command_queue q WHERE q.enrollment_id = enrollments.id) AS queued \
         FROM enrollments WHERE cert_fingerprint = $1 AND channel = 'device'"
    );
    let row: Option<EnrollmentQueueRow> = match pool.local() {
        Some(local) => local.optional(SQL, &[&fingerprint])?,
        None => {
            query_as::<DB, _>(SQL)
                .bind(fingerprint)
                .fetch_optional(pool)
                .await?
        }
    };
    row.map(|r| Ok((Enrollment::try_from(r.enrollment)?, r.queued)))
        .transpose()
}

/// Fails with NotFound unless enrollment `id` exists.
pub(super) async fn ensure_exists<DB: Backend>(conn: &mut DB::Connection, id: &str) -> Result<()> {
    if exists::<DB>(conn, id).await? {
        Ok(())
    } else {
        Err(missing(id))
    }
}

const EXISTS: &str = "SELECT id FROM enrollments WHERE id = $1";

pub(super) async fn exists<DB: Backend>(conn: &mut DB::Connection, id: &str) -> Result<bool> {
    let found: Option<String> = query_scalar::<DB, _>(EXISTS)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// [`exists`] outside a transaction: on the local reads where there are some, else on a pooled connection.
pub(super) async fn exists_now<DB: Backend>(pool: &Db<DB>, id: &str) -> Result<bool> {
    match pool.local() {
        Some(local) => Ok(local.optional::<(String,)>(EXISTS, &[&id])?.is_some()),
        None => exists::<DB>(&mut *pool.acquire().await?, id).await,
    }
}

/// The error for a write naming an enrollment that does not exist.
pub(super) fn missing(id: &str) -> StoreError {
    StoreError::NotFound(format!("enrollment {id}"))
}

/// A write keyed by enrollment `id` failed: NotFound when its foreign key found no such enrollment (the
/// writes that skip a lookup first), else the database error as it is.
pub(super) fn missing_if_unknown(e: sqlx::Error, id: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => missing(id),
        _ => e.into(),
    }
}

pub(super) async fn touch_last_seen<DB: Backend>(
    pool: &Db<DB>,
    id: &str,
    at: Millis,
) -> Result<()> {
    let done = query::<DB>("UPDATE enrollments SET last_seen_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("enrollment {id}")));
    }
    Ok(())
}

/// A Mac's lagging `last_seen_at` ([`Db::defer`]): every check-in makes one, so the writer writes all those
/// waiting with one `UPDATE … FROM (VALUES …)` per [`events::BULK_CHUNK`] Macs.
struct LastSeen {
    id: String,
    at: Millis,
}

impl<DB: Backend> BulkRow<DB> for LastSeen {
    /// The later time wins, whatever the order the marks came in.
    fn merge(&mut self, newer: Self) {
        self.at = self.at.max(newer.at);
    }

    fn statements(rows: Vec<Self>) -> Vec<Stmt<DB>> {
        // Keyed by enrollment when deferred: one row per target, as UPDATE … FROM needs. Never moves a Mac's
        // last-seen backwards.
        events::chunked_values(
            &rows,
            events::BULK_CHUNK,
            "UPDATE enrollments SET last_seen_at = v.column2 FROM (VALUES ",
            |row, r| {
                row.push_bind(&r.id).push_bind(r.at);
            },
            ") AS v WHERE enrollments.id = v.column1 AND enrollments.last_seen_at < v.column2",
        )
    }
}

pub(super) async fn note_last_seen<DB: Backend>(pool: &Db<DB>, id: &str, at: Millis) -> Result<()> {
    pool.defer(
        id.to_string(),
        LastSeen {
            id: id.to_string(),
            at,
        },
    )
    .await
}

pub(super) async fn checkout<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    at: Millis,
    event: &NewEvent,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    query::<DB>(
        "UPDATE enrollments SET enabled = FALSE, updated_at = $2 WHERE id = $1 OR device_id = $1",
    )
    .bind(device_id)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let metadata = query::<DB>(concat!(
        "DELETE FROM bootstrap_tokens WHERE enrollment_id IN ",
        device_and_users!()
    ))
    .bind(device_id)
    .execute(&mut *tx)
    .await?;
    let secrets = query::<DB>(concat!(
        "DELETE FROM sealed_secrets WHERE field = $2 AND owner IN ",
        device_and_users!()
    ))
    .bind(device_id)
    .bind(BOOTSTRAP_TOKEN_FIELD)
    .execute(&mut *tx)
    .await?;
    query::<DB>(concat!(
        "DELETE FROM command_queue WHERE enrollment_id IN ",
        device_and_users!()
    ))
    .bind(device_id)
    .execute(&mut *tx)
    .await?;
    super::commands::drop_orphaned_sealed_payloads::<DB>(&mut tx).await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(metadata.rows_affected() + secrets.rows_affected() > 0)
}

pub(super) async fn count_all<DB: Backend>(pool: &Db<DB>) -> Result<u64> {
    let n: i64 = query_scalar::<DB, _>("SELECT COUNT(*) FROM enrollments")
        .fetch_one(pool)
        .await?;
    count(n)
}

/// Records (or refreshes) pending identity `pending` and marks the Mac it claims as claimed, in one transaction.
pub(super) async fn put_pending<DB: Backend>(
    pool: &Db<DB>,
    pending: &Enrollment,
    event: &NewEvent,
) -> Result<()> {
    let Some(device_id) = pending.pending_for.as_deref() else {
        return Err(StoreError::Conflict(format!(
            "enrollment {} is not a pending identity",
            pending.id
        )));
    };
    let mut tx = pool.begin_write().await?;
    ensure_exists::<DB>(&mut tx, device_id).await?;
    upsert_in::<DB>(&mut tx, pending).await?;
    query::<DB>("UPDATE enrollments SET has_pending = TRUE WHERE id = $1")
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// The pending identities claiming `device_id` (refused ones too), oldest first.
pub(super) async fn pending<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Vec<Enrollment>> {
    let rows: Vec<EnrollmentRow> = query_as::<DB, _>(concat!(
        "SELECT ",
        enrollment_columns!(),
        " FROM enrollments WHERE pending_for = $1 ORDER BY enrolled_at, id"
    ))
    .bind(device_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Enrollment::try_from).collect()
}

/// The bound certificate checked in again: every enabled pending identity of `device_id` is refused from now
/// on. Returns how many were; the event is written only when there were some.
pub(super) async fn refuse_pending<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    at: Millis,
    event: &NewEvent,
) -> Result<u64> {
    let mut tx = pool.begin_write().await?;
    // The Mac's row first: it is the lock `put_pending` also takes, so on PostgreSQL (READ COMMITTED) a claim
    // committing meanwhile is either seen by the UPDATE below (it held the lock first) or sets `has_pending`
    // again after this commits -- never a live pending identity with `has_pending` cleared.
    query::<DB>("UPDATE enrollments SET has_pending = FALSE WHERE id = $1")
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    let done = query::<DB>(
        "UPDATE enrollments SET enabled = FALSE, updated_at = $2 WHERE pending_for = $1 AND enabled = TRUE",
    )
    .bind(device_id)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        events::insert::<DB>(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Deletes every pending identity of `device_id` with its token, secrets and queue (a new enrollment of that
/// UDID starts clean). Returns how many there were.
pub(super) async fn drop_pending_in<DB: Backend>(
    conn: &mut DB::Connection,
    device_id: &str,
) -> Result<u64> {
    let ids: Vec<String> =
        query_scalar::<DB, _>("SELECT id FROM enrollments WHERE pending_for = $1")
            .bind(device_id)
            .fetch_all(&mut *conn)
            .await?;
    for id in &ids {
        delete_enrollment_in::<DB>(conn, id).await?;
    }
    query::<DB>("UPDATE enrollments SET has_pending = FALSE WHERE id = $1")
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
    Ok(ids.len() as u64)
}

/// Deletes enrollment `id` and everything keyed by it (token metadata, every sealed secret it owns, queue).
async fn delete_enrollment_in<DB: Backend>(conn: &mut DB::Connection, id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM bootstrap_tokens WHERE enrollment_id = $1",
        "DELETE FROM sealed_secrets WHERE owner = $1",
        "DELETE FROM command_queue WHERE enrollment_id = $1",
        "DELETE FROM enrollments WHERE id = $1",
    ] {
        query::<DB>(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A new enrollment of a UDID whose previous one ended (or never was): writes `e` and forgets any pending
/// identities of that UDID, in one transaction.
pub(super) async fn enroll_fresh<DB: Backend>(
    pool: &Db<DB>,
    e: &Enrollment,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    // The new row may be the certificate of a former pending identity: free its fingerprint first.
    drop_pending_in::<DB>(&mut tx, &e.id).await?;
    upsert_in::<DB>(&mut tx, e).await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// An admin approved pending identity `pending_id`: in one transaction the Mac's old token is discarded, the
/// pending row (its queue, its secrets) is deleted, `device` (already carrying the pending certificate and push
/// token) is written, and `token` — the pending identity's own token resealed for the device — is stored.
pub(super) async fn promote_pending<DB: Backend>(
    pool: &Db<DB>,
    device: &Enrollment,
    pending_id: &str,
    token: Option<&BootstrapTokenRecord>,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    let found: Option<String> =
        query_scalar::<DB, _>("SELECT pending_for FROM enrollments WHERE id = $1")
            .bind(pending_id)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
    if found.as_deref() != Some(device.id.as_str()) {
        return Err(StoreError::NotFound(format!(
            "pending identity {pending_id} of {}",
            device.id
        )));
    }
    delete_enrollment_in::<DB>(&mut tx, pending_id).await?;
    tokens::delete_in::<DB>(&mut tx, &device.id).await?;
    upsert_in::<DB>(&mut tx, device).await?;
    if let Some(rec) = token {
        if rec.enrollment_id != device.id || rec.sealed.owner != device.id {
            return Err(StoreError::Conflict(format!(
                "the promoted token must be sealed for {}",
                device.id
            )));
        }
        tokens::put_in::<DB>(&mut tx, rec).await?;
    }
    query::<DB>(
        "UPDATE enrollments SET has_pending = EXISTS \
         (SELECT 1 FROM enrollments p WHERE p.pending_for = $1 AND p.enabled = TRUE) WHERE id = $1",
    )
    .bind(&device.id)
    .execute(&mut *tx)
    .await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets or lifts an admin's block on device `device_id`; with `clear_token` the escrowed token is deleted too.
/// Returns whether a token was deleted.
pub(super) async fn set_blocked<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    blocked_at: Option<Millis>,
    clear_token: bool,
    event: &NewEvent,
) -> Result<bool> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE enrollments SET blocked_at = $2 WHERE id = $1 AND channel = 'device' AND pending_for IS NULL",
    )
    .bind(device_id)
    .bind(blocked_at)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("device {device_id}")));
    }
    let cleared = clear_token && tokens::delete_in::<DB>(&mut tx, device_id).await?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(cleared)
}

#[async_trait::async_trait]
impl<DB: Backend> Enrollments for SqlStore<DB> {
    async fn upsert_enrollment(&self, e: &Enrollment, event: &NewEvent) -> Result<()> {
        upsert(&self.pool, e, event).await
    }

    async fn enrollment(&self, id: &str) -> Result<Option<Enrollment>> {
        get(&self.pool, id).await
    }

    async fn enrollment_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Enrollment>> {
        by_fingerprint(&self.pool, fingerprint).await
    }

    async fn enrollment_by_fingerprint_with_queue(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(Enrollment, bool)>> {
        by_fingerprint_with_queue(&self.pool, fingerprint).await
    }

    async fn touch_last_seen(&self, id: &str, at: Millis) -> Result<()> {
        touch_last_seen(&self.pool, id, at).await
    }

    async fn note_last_seen(&self, id: &str, at: Millis) -> Result<()> {
        note_last_seen(&self.pool, id, at).await
    }

    async fn checkout(&self, device_id: &str, at: Millis, event: &NewEvent) -> Result<bool> {
        checkout(&self.pool, device_id, at, event).await
    }

    async fn count_enrollments(&self) -> Result<u64> {
        count_all(&self.pool).await
    }

    async fn put_pending_identity(&self, pending: &Enrollment, event: &NewEvent) -> Result<()> {
        put_pending(&self.pool, pending, event).await
    }

    async fn pending_identities(&self, device_id: &str) -> Result<Vec<Enrollment>> {
        pending(&self.pool, device_id).await
    }

    async fn refuse_pending_identities(
        &self,
        device_id: &str,
        at: Millis,
        event: &NewEvent,
    ) -> Result<u64> {
        refuse_pending(&self.pool, device_id, at, event).await
    }

    async fn enroll_fresh(&self, e: &Enrollment, event: &NewEvent) -> Result<()> {
        enroll_fresh(&self.pool, e, event).await
    }

    async fn promote_pending_identity(
        &self,
        device: &Enrollment,
        pending_id: &str,
        token: Option<&BootstrapTokenRecord>,
        event: &NewEvent,
    ) -> Result<()> {
        promote_pending(&self.pool, device, pending_id, token, event).await
    }

    async fn set_device_blocked(
        &self,
        device_id: &str,
        blocked_at: Option<Millis>,
        clear_token: bool,
        event: &NewEvent,
    ) -> Result<bool> {
        set_blocked(&self.pool, device_id, blocked_at, clear_token, event).await
    }
}
