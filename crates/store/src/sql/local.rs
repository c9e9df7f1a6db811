//! Reads on SQLite without a thread hop: the reads every signed check-in makes.
//!
//! sqlx runs each SQLite connection on a thread of its own. A statement is sent to that thread and the task is
//! woken with its rows, and a pooled connection is pinged on its way back to the pool: two thread round trips
//! per read, each about 30–60 µs of CPU on a 2-core machine (under load, the kernel's task-switch and futex
//! paths were about 40 % of the server's samples; BENCHMARKS.md). The hot reads run here instead:
//! synchronously, on the calling thread, on connections of our own (rusqlite over the same libsqlite3 as sqlx),
//! with their statements prepared once per connection. A reader in WAL mode never waits for the writer, so
//! such a read takes tens of microseconds, less than the CMS verify the same task already does inline.
//!
//! The SQL is the same text the pool runs (`$1`-style parameters, bound by number here too), so a query is
//! written once for both paths and for PostgreSQL. Connections are opened on first use, kept while idle (one per
//! thread that reads at once, so at most a few), and are `query_only`: every write still goes through the pool
//! and the group-commit writer. A write committed there is seen by the next read here, as on the pool.
//!
//! Written by hand: no crate runs a sqlx query on a caller-owned SQLite connection.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{ToSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, Statement};

use crate::{Result, StoreError};

/// Idle connections kept; more only when more threads read at once (the server runs one per core).
const MAX_IDLE: usize = 8;
/// Prepared statements kept per connection (the hot reads are a handful).
const STATEMENT_CACHE: usize = 32;
/// Prepared statements kept by the writer's connection: each kind of bulk row is a few statements, one text
/// per number of rows in a chunk.
const WRITER_STATEMENT_CACHE: usize = 128;
/// Pages the WAL grows to before the committing connection copies them back into the database file
/// (SQLite's default is 1,000; the pool's connections use this too, `sqlite.rs`). Under a token storm a commit
/// adds a dozen pages or so, and the same hot pages (the events table's tail, its indexes, the tokens) are
/// rewritten in most of them: checkpointed every 10,000 pages instead of every 1,000, each is copied back
/// once instead of ten times, for a WAL of at most ~40 MB. Get +3–6 % in alternating runs.
pub(crate) const WAL_AUTOCHECKPOINT: i64 = 10_000;
/// The writer connection's page cache, in KiB (SQLite's default is 2 MB). Every first escrow of a Mac touches
/// a random leaf page of each table and index keyed by its id (its token, its events by subject, its queued
/// commands): with 2 MB, a fleet of 100,000 Macs (a database of about 1 GB) meant a `pread` for most of them.
/// Bounded: at most this much more resident memory.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// As the pool's connections (`sqlite.rs`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A row type the local reads decode, by column name as sqlx's `FromRow` does (`rows.rs`, `local_row!`).
pub(crate) trait LocalRow: Sized {
    fn from_local(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// A one-column row (`query_scalar`).
impl<T: rusqlite::types::FromSql> LocalRow for (T,) {
    fn from_local(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

/// A two-column row, by position (`query_as` into a pair).
impl<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql> LocalRow for (A, B) {
    fn from_local(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

/// A row's columns by name, as sqlx's `FromRow` reads them (`local_row!`), without rusqlite's lookup by name
/// for every field: that one compares the name with each column's (a `strlen` and a case-folding compare
/// apiece), a few percent of an Idle poll's CPU for the enrollment's 28 columns. Names are matched exactly,
/// as sqlx does; fields read in the columns' order cost one comparison each.
pub(crate) struct ByName<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: Vec<&'r str>,
    next: std::cell::Cell<usize>,
}

impl<'r, 's> ByName<'r, 's> {
    pub(crate) fn new(row: &'r rusqlite::Row<'s>) -> Self {
        ByName {
            row,
            names: row.as_ref().column_names(),
            next: std::cell::Cell::new(0),
        }
    }

    pub(crate) fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> rusqlite::Result<T> {
        let guess = self.next.get();
        let index = if self.names.get(guess) == Some(&name) {
            guess
        } else {
            self.names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| rusqlite::Error::InvalidColumnName(name.to_string()))?
        };
        self.next.set(index + 1);
        self.row.get(index)
    }
}

/// Read-only connections to one SQLite file, used on the calling thread.
pub(crate) struct LocalReads {
    path: PathBuf,
    /// None once the store is closed.
    idle: Mutex<Option<Vec<Connection>>>,
}

impl LocalReads {
    pub(crate) fn new(path: PathBuf) -> Self {
        LocalReads {
            path,
            idle: Mutex::new(Some(Vec::new())),
        }
    }

    /// Close the idle connections and refuse further reads, as the closed pool does.
    pub(crate) fn close(&self) {
        self.idle_conns().take();
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Option<Vec<Connection>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first row of `sql` with `params` (`params[n - 1]` binds `$n`), if any.
    pub(crate) fn optional<R: LocalRow>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Option<R>> {
        self.with(sql, params, |st| {
            let mut rows = st.raw_query();
            rows.next()?.map(R::from_local).transpose()
        })
    }

    /// Every row of `sql` with `params`.
    pub(crate) fn all<R: LocalRow>(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<R>> {
        self.with(sql, params, |st| {
            let mut rows = st.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(R::from_local(row)?);
            }
            Ok(out)
        })
    }

    fn with<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        run: impl FnOnce(&mut Statement<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let taken = match self.idle_conns().as_mut() {
            Some(idle) => idle.pop(),
            None => return Err(StoreError::Database("the store is closed".into())),
        };
        let conn = match taken {
            Some(conn) => conn,
            None => self.open().map_err(store_error)?,
        };
        let result = conn
            .prepare_cached(sql)
            .and_then(|mut st| {
                bind(&mut st, params)?;
                run(&mut st)
            })
            .map_err(store_error);
        if let Some(idle) = self.idle_conns().as_mut()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = open_existing(&self.path)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }
}

/// A connection of our own to the SQLite file at `path`, which exists: the pool created and migrated it first.
/// Used by one thread at a time, so without SQLite's per-connection mutex; the pool's busy timeout.
fn open_existing(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// The group-commit writer's own connection to the SQLite file at `path` (`writer.rs`), set up as the pool's
/// (`sqlite.rs`): WAL, `synchronous=FULL` (a commit is on disk when it returns), foreign keys on, the same
/// busy timeout and checkpoint size. Only the holder of the writer's lock uses it; its prepared statements are
/// kept for the next batches.
pub(crate) fn open_writer(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = open_existing(path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
    Ok(conn)
}

/// Bind `params` by the number in each parameter's name (`$3` takes `params[2]`), as sqlx-sqlite does, so a
/// parameter may appear more than once and in any order.
fn bind(st: &mut Statement<'_>, params: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for index in 1..=st.parameter_count() {
        let number = match st.parameter_name(index) {
            Some(name) => name
                .strip_prefix(['$', '?'])
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?,
            None => index,
        };
        let value = number
            .checked_sub(1)
            .and_then(|at| params.get(at))
            .ok_or(rusqlite::Error::InvalidParameterCount(number, params.len()))?;
        st.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

/// `value` as the owned SQLite value it binds as (what `Stmt::run_on` binds). The message never quotes it.
pub(super) fn owned_value(value: &dyn ToSql) -> std::result::Result<Value, String> {
    match value.to_sql() {
        Ok(ToSqlOutput::Borrowed(v)) => Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(
                String::from_utf8(t.to_vec())
                    .map_err(|_| "a text value is not UTF-8".to_string())?,
            ),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }),
        Ok(ToSqlOutput::Owned(v)) => Ok(v),
        Ok(_) => Err("a value of a kind the raw path does not bind".into()),
        Err(e) => Err(kind_of(&e).into()),
    }
}

/// Prepare `sql` (with `?` or `$N` parameters) on `conn`, bind `values`, run it; the rows it changed. Prepared
/// through `conn`'s statement cache: the statements of one batch that share a text are prepared once.
pub(super) fn execute(conn: &Connection, sql: &str, values: &[Value]) -> rusqlite::Result<u64> {
    let mut st = conn.prepare_cached(sql)?;
    let params: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
    bind(&mut st, &params)?;
    Ok(st.raw_execute()? as u64)
}

/// As `From<sqlx::Error>` (`error.rs`): the database's message and code, never a bound or stored value.
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(err, msg) => StoreError::Database(format!(
            "{} (code {})",
            msg.unwrap_or_else(|| err.to_string()),
            err.extended_code
        )),
        rusqlite::Error::FromSqlConversionFailure(index, ..)
        | rusqlite::Error::InvalidColumnType(index, ..)
        | rusqlite::Error::IntegralValueOutOfRange(index, _) => StoreError::Database(format!(
            "stored value in column {index} could not be decoded"
        )),
        rusqlite::Error::InvalidColumnName(name) => {
            StoreError::Database(format!("no column named {name}"))
        }
        other => StoreError::Database(format!("SQLite call failed: {}", kind_of(&other))),
    }
}

/// A short name for an error whose Display might quote a value.
fn kind_of(e: &rusqlite::Error) -> &'static str {
    match e {
        rusqlite::Error::InvalidParameterName(_) => "a parameter is not named $N",
        rusqlite::Error::InvalidParameterCount(..) => "too few parameters",
        rusqlite::Error::InvalidPath(_) => "the database path is not valid",
        rusqlite::Error::Utf8Error(..) => "a stored text is not UTF-8",
        _ => "SQLite error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL database with a two-row table, and local reads on it.
    fn reads() -> (tempfile::TempDir, LocalReads) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL); \
                 INSERT INTO t VALUES ('x', 1), ('y', 2);",
            )
            .unwrap();
        (dir, LocalReads::new(path))
    }

    fn message(e: StoreError) -> String {
        match e {
            StoreError::Database(m) => m,
            other => panic!("expected a database error, got {other:?}"),
        }
    }

    #[test]
    fn parameters_bind_by_their_number_in_any_order_and_more_than_once() {
        let (_dir, local) = reads();
        let row: Option<(String,)> = local
            .optional("SELECT a FROM t WHERE b = $2 AND a = $1", &[&"y", &2])
            .unwrap();
        assert_eq!(row, Some(("y".to_string(),)));
        let rows: Vec<(i64,)> = local
            .all(
                "SELECT b FROM t WHERE a = $1 OR (a <> $1 AND b > $2) ORDER BY b",
                &[&"x", &5],
            )
            .unwrap();
        assert_eq!(rows, vec![(1,)]);
        let none: Option<(String,)> = local
            .optional("SELECT a FROM t WHERE b = $1", &[&3])
            .unwrap();
        assert_eq!(none, None);
    }

    /// Two fields read by name, in either order; an unknown name is an error naming it.
    #[derive(Debug, PartialEq)]
    struct Ab(String, i64);

    impl LocalRow for Ab {
        fn from_local(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
            let columns = ByName::new(row);
            let b = columns.get("b")?;
            Ok(Ab(columns.get("a")?, b))
        }
    }

    #[test]
    fn columns_are_read_by_their_exact_name_in_any_order() {
        let (_dir, local) = reads();
        let in_order: Option<Ab> = local
            .optional("SELECT a, b FROM t WHERE b = $1", &[&2])
            .unwrap();
        assert_eq!(in_order, Some(Ab("y".into(), 2)));
        let reversed: Option<Ab> = local
            .optional("SELECT b, a FROM t WHERE b = $1", &[&1])
            .unwrap();
        assert_eq!(reversed, Some(Ab("x".into(), 1)));
        let err = local
            .optional::<Ab>("SELECT a, b AS B FROM t WHERE b = $1", &[&1])
            .unwrap_err();
        assert!(message(err).contains("no column named b"));
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error_not_a_panic() {
        let (_dir, local) = reads();
        let err = local
            .optional::<(String,)>("SELECT a FROM t WHERE b = $3", &[&1])
            .unwrap_err();
        assert!(message(err).contains("too few parameters"));
        let err = local
            .optional::<(String,)>("SELECT a FROM t WHERE b = :b", &[&1])
            .unwrap_err();
        assert!(message(err).contains("not named $N"));
    }

    #[test]
    fn malformed_sql_and_a_wrong_column_type_are_errors_that_quote_no_stored_value() {
        let (_dir, local) = reads();
        let err = local
            .optional::<(String,)>("SELEC a FROM t", &[])
            .unwrap_err();
        assert!(message(err).contains("syntax error"));
        let err = local
            .optional::<(i64,)>("SELECT 'hunter2-sealed' AS a FROM t WHERE b = $1", &[&1])
            .unwrap_err();
        let msg = message(err);
        assert!(msg.contains("could not be decoded"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn a_local_connection_cannot_write() {
        let (_dir, local) = reads();
        let err = local
            .optional::<(i64,)>("INSERT INTO t VALUES ('z', 3) RETURNING b", &[])
            .unwrap_err();
        assert!(message(err).contains("readonly"));
        let count: Option<(i64,)> = local.optional("SELECT COUNT(*) FROM t", &[]).unwrap();
        assert_eq!(count, Some((2,)));
    }

    #[test]
    fn a_write_committed_elsewhere_is_seen_by_the_next_read() {
        let (dir, local) = reads();
        let before: Option<(i64,)> = local.optional("SELECT COUNT(*) FROM t", &[]).unwrap();
        assert_eq!(before, Some((2,)));
        Connection::open(dir.path().join("local.db"))
            .unwrap()
            .execute("INSERT INTO t VALUES ('z', 3)", [])
            .unwrap();
        let after: Option<(i64,)> = local.optional("SELECT COUNT(*) FROM t", &[]).unwrap();
        assert_eq!(after, Some((3,)));
    }

    #[test]
    fn connections_are_reused_and_a_closed_reader_refuses() {
        let (_dir, local) = reads();
        for _ in 0..3 {
            let _: Option<(i64,)> = local.optional("SELECT 1", &[]).unwrap();
        }
        assert_eq!(local.idle_conns().as_ref().map(Vec::len), Some(1));
        local.close();
        let err = local.optional::<(i64,)>("SELECT 1", &[]).unwrap_err();
        assert_eq!(message(err), "the store is closed");
    }
}
