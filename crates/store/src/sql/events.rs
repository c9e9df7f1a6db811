//! Audit events. Guarantees: events are only ever appended; listing is newest first, filtered with bound
//! parameters, at most 1000 per page.

use super::{BulkRow, Db, Stmt};

use super::{Backend, QueryBuilder, Separated, SqlStore};
use crate::rows::{EventRow, convert_all, page_limit};
use crate::{Event, EventFilter, Events, NewEvent, Result};

/// Append `e` on `conn`, typically inside the transaction of the change it records.
pub(super) async fn insert<DB: Backend>(conn: &mut DB::Connection, e: &NewEvent) -> Result<()> {
    insert_many::<DB>(conn, &[e]).await
}

/// Rows per multi-row statement: 6 values each, far below SQLite's 32,766 and PostgreSQL's 65,535.
pub(super) const BULK_CHUNK: usize = 500;

/// One statement per `per_statement` rows (the bulk writes pass [`BULK_CHUNK`]): `head`, the chunk's rows as
/// a `VALUES` list (each bound by `bind`), then `tail`. The shape of every bulk write: `INSERT … VALUES …` and
/// `UPDATE … FROM (VALUES …)`.
pub(super) fn chunked_values<DB: Backend, R>(
    rows: &[R],
    per_statement: usize,
    head: &str,
    bind: impl Fn(&mut Separated<'_, DB>, &R),
    tail: &str,
) -> Vec<Stmt<DB>> {
    rows.chunks(per_statement)
        .map(|chunk| {
            let mut q = QueryBuilder::<DB>::new(head);
            q.push_values(chunk, |row, r| bind(row, r));
            q.push(tail);
            q.statement()
        })
        .collect()
}

/// Insert `events` in order, with the statements of [`insert_statements`].
pub(super) async fn insert_many<DB: Backend>(
    conn: &mut DB::Connection,
    events: &[&NewEvent],
) -> Result<()> {
    for st in insert_statements::<DB>(events) {
        st.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The statements inserting `events` in order: on PostgreSQL [`BULK_CHUNK`] rows per statement (one round
/// trip each); on SQLite one statement per row, the same text each time, which the batch prepares once
/// (`local::execute`). A multi-row INSERT there costs more than the round trips it saves, which SQLite does not
/// have: it is prepared anew for every row count, and, as a statement that writes several rows and may fail
/// halfway, it keeps a statement journal of every page it touches (about a tenth of the writer's time under a
/// stream of GetBootstrapTokens). A failed statement fails its whole batch either way.
pub(super) fn insert_statements<DB: Backend>(events: &[&NewEvent]) -> Vec<Stmt<DB>> {
    const HEAD: &str =
        "INSERT INTO events (subject, enrollment_id, kind, outcome, detail, at) VALUES ";
    let bind = |row: &mut Separated<'_, DB>, e: &&NewEvent| {
        row.push_bind(&e.subject)
            .push_bind(&e.enrollment_id)
            .push_bind(e.kind.as_str())
            .push_bind(e.outcome.as_str())
            .push_bind(&e.detail)
            .push_bind(e.at);
    };
    let per_statement = if DB::OWN_HANDLE { 1 } else { BULK_CHUNK };
    chunked_values(events, per_statement, HEAD, bind, "")
}

/// An event recorded on its own (no other change to go with): a bulk row of the group-commit writer on
/// SQLite (one multi-row INSERT per batch, answered by its COMMIT), its own transaction on PostgreSQL. An event
/// row can only fail to insert when the database does (no foreign key; `kind` and `outcome` come from enums).
pub(super) async fn record<DB: Backend>(pool: &Db<DB>, e: &NewEvent) -> Result<()> {
    pool.append(Recorded(e.clone())).await
}

struct Recorded(NewEvent);

impl<DB: Backend> BulkRow<DB> for Recorded {
    fn statements(rows: Vec<Self>) -> Vec<Stmt<DB>> {
        let events: Vec<&NewEvent> = rows.iter().map(|r| &r.0).collect();
        insert_statements::<DB>(&events)
    }
}

pub(super) async fn list<DB: Backend>(pool: &Db<DB>, f: &EventFilter) -> Result<Vec<Event>> {
    let mut q = QueryBuilder::<DB>::new(
        "SELECT id, subject, enrollment_id, kind, outcome, detail, at FROM events WHERE 1 = 1",
    );
    if let Some(subject) = &f.subject {
        q.push(" AND subject = ").push_bind(subject.as_str());
    }
    if let Some(kind) = &f.kind {
        q.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(outcome) = f.outcome {
        q.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(since) = f.since {
        q.push(" AND at >= ").push_bind(since);
    }
    if let Some(before) = f.before_id {
        q.push(" AND id < ").push_bind(before);
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(page_limit(f.limit, 100, 1000));
    let rows: Vec<EventRow> = q.build_query_as().fetch_all(pool).await?;
    convert_all(rows)
}

#[async_trait::async_trait]
impl<DB: Backend> Events for SqlStore<DB> {
    async fn record_event(&self, e: &NewEvent) -> Result<()> {
        record(&self.pool, e).await
    }

    async fn events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        list(&self.pool, f).await
    }
}
