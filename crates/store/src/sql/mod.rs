//! The SQL both backends run, written once: each module here holds the queries of one concern as generic
//! functions over [`Backend`] and implements that concern's role trait for [`SqlStore`] right beside them.
//! Guarantees: a query module sees no backend-specific sqlx types; everything that differs between SQLite and
//! PostgreSQL (how a write transaction starts, how a value is bound, how a statement runs) is one
//! [`Backend`] impl per backend, in `sqlite.rs` and `postgres.rs`. The SQL texts themselves are the same on
//! both (`$n` placeholders, `ON CONFLICT`, `RETURNING`).

mod agents;
mod apikeys;
mod cluster;
mod commands;
mod console;
mod devices;
mod edge;
mod enroll;
mod enrollments;
mod events;
mod groups;
mod inventory;
mod local;
mod push;
mod renewals;
mod scep;
mod schedule;
mod script;
mod secrets;
mod tokens;
mod writer;

pub(crate) use local::{ByName, LocalReads, LocalRow, WAL_AUTOCHECKPOINT};

pub(crate) use local::store_error as local_error;
pub(crate) use script::{Script, Step, Violation};
pub use writer::{BatchStats, COMMIT_BUCKETS_MS, DEFER_BOUND};
pub(crate) use writer::{BulkRow, Db};

use std::fmt::{self, Display, Write as _};
use std::future::Future;
use std::marker::PhantomData;

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{Arguments as _, Database, Encode, FromRow, Pool, SqlSafeStr, SqlStr, Type};

use crate::{Result, Store};

/// A write transaction on `DB`.
pub(crate) type Tx<DB> = sqlx::Transaction<'static, DB>;

/// A store in one database of backend `DB`: [`crate::SqliteStore`] or [`crate::PgStore`].
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Db<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(DB::STORE)
            .field("pool", &*self.pool)
            .finish()
    }
}

#[async_trait::async_trait]
impl<DB: Backend> Store for SqlStore<DB> {
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn write_batches(&self) -> Option<&BatchStats> {
        self.pool.stats()
    }

    fn pool_stats(&self) -> crate::PoolStats {
        crate::PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }
}

/// What a query module needs from a backend: its name, how a write transaction starts, and how a statement
/// with bound values runs. Implemented for [`Sqlite`] (`sqlite.rs`) and [`Postgres`] (`postgres.rs`).
pub trait Backend: Database {
    /// `"sqlite"` or `"postgres"`.
    const BACKEND: &'static str;
    /// The public name of this backend's store type (for Debug).
    const STORE: &'static str;

    /// Start a write transaction.
    fn begin_write(pool: &Pool<Self>) -> impl Future<Output = Result<Tx<Self>>> + Send;

    /// Append `value` to `args`.
    fn bind<'t, T: Param<'t>>(
        args: &mut Self::Arguments,
        value: T,
    ) -> std::result::Result<(), BoxDynError>;

    /// Run a statement; the number of rows it affected.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        args: Self::Arguments,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send + 'c;

    /// Run a query; every row.
    fn fetch_all<'c, R: Row>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        args: Self::Arguments,
    ) -> impl Future<Output = sqlx::Result<Vec<R>>> + Send + 'c;

    /// Run a query; its first row, if any.
    fn fetch_optional<'c, R: Row>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        args: Self::Arguments,
    ) -> impl Future<Output = sqlx::Result<Option<R>>> + Send + 'c;

    /// Whether the connection has a SQLite handle of its own for [`Self::with_handle`] (SQLite).
    const OWN_HANDLE: bool;

    /// Run `run` on the connection's own SQLite handle, synchronously on the calling thread: one round trip to
    /// the connection's thread to take the handle, however many statements `run` makes (each statement sent
    /// through sqlx is a round trip of its own). Only where [`Self::OWN_HANDLE`]; elsewhere an error.
    fn with_handle<'c, T: Send + 'c>(
        conn: &'c mut Self::Connection,
        run: impl FnOnce(&rusqlite::Connection) -> T + Send + 'c,
    ) -> impl Future<Output = Result<T>> + Send + 'c;
}

/// A value either backend can bind (every column type this store writes).
pub trait Param<'q>:
    Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>
{
}
impl<'q, T> Param<'q> for T where
    T: Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>
{
}

/// A row type either backend can decode.
pub trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}
impl<T> Row for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

/// Where a statement runs: a connection (usually a transaction's) or the pool (one pooled connection).
pub(crate) enum On<'c, DB: Database> {
    Conn(&'c mut DB::Connection),
    Pool(&'c Pool<DB>),
    /// A store's handle: reads on the pool, a write statement as its own write transaction (on SQLite a job
    /// of the group-commit writer).
    Db(&'c Db<DB>),
}

/// Anything a statement can run on: `&mut *tx`, `&mut *conn`, `conn`, or `pool`.
pub(crate) trait Exec<'c, DB: Database>: Send {
    fn on(self) -> On<'c, DB>;
}

impl<'c, DB: Database> Exec<'c, DB> for &'c mut DB::Connection {
    fn on(self) -> On<'c, DB> {
        On::Conn(self)
    }
}

impl<'c, DB: Database> Exec<'c, DB> for &'c Pool<DB> {
    fn on(self) -> On<'c, DB> {
        On::Pool(self)
    }
}

/// A store error where a statement's sqlx error is expected (the writer's own failures carry their message).
fn store_to_sqlx(e: crate::StoreError) -> sqlx::Error {
    sqlx::Error::Protocol(e.to_string())
}

/// The outcome of a statement.
pub(crate) struct Done(u64);

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

/// A statement with its bound values (the backend-neutral `sqlx::query`).
pub(crate) struct Query<DB: Database> {
    sql: SqlStr,
    args: std::result::Result<DB::Arguments, BoxDynError>,
}

/// A query whose rows decode as `R` (the backend-neutral `sqlx::query_as`).
pub(crate) struct QueryAs<DB: Database, R> {
    inner: Query<DB>,
    row: PhantomData<fn() -> R>,
}

/// A query whose rows are one column of type `O` (the backend-neutral `sqlx::query_scalar`).
pub(crate) struct QueryScalar<DB: Database, O> {
    inner: Query<DB>,
    value: PhantomData<fn() -> O>,
}

pub(crate) fn query<DB: Backend>(sql: impl SqlSafeStr) -> Query<DB> {
    Query {
        sql: sql.into_sql_str(),
        args: Ok(DB::Arguments::default()),
    }
}

pub(crate) fn query_as<DB: Backend, R: Row>(sql: impl SqlSafeStr) -> QueryAs<DB, R> {
    QueryAs {
        inner: query(sql),
        row: PhantomData,
    }
}

pub(crate) fn query_scalar<DB: Backend, O>(sql: impl SqlSafeStr) -> QueryScalar<DB, O>
where
    (O,): Row,
{
    QueryScalar {
        inner: query(sql),
        value: PhantomData,
    }
}

impl<DB: Backend> Query<DB> {
    /// Bind the next `$n`. An encoding failure surfaces when the statement runs.
    pub(crate) fn bind<'t, T: Param<'t>>(mut self, value: T) -> Self {
        if let Ok(args) = &mut self.args
            && let Err(e) = DB::bind(args, value)
        {
            self.args = Err(e);
        }
        self
    }

    pub(crate) async fn execute<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Done> {
        let args = self.args.map_err(sqlx::Error::Encode)?;
        let n = match on.on() {
            On::Conn(conn) => DB::execute(conn, self.sql, args).await?,
            On::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                DB::execute(&mut *conn, self.sql, args).await?
            }
            On::Db(db) if !db.batched() => {
                let mut conn = db.pool.acquire().await?;
                DB::execute(&mut *conn, self.sql, args).await?
            }
            On::Db(db) => {
                let mut tx = db.begin_write().await.map_err(store_to_sqlx)?;
                let n = DB::execute(&mut *tx, self.sql, args).await?;
                tx.commit().await.map_err(store_to_sqlx)?;
                n
            }
        };
        Ok(Done(n))
    }

    async fn all<'c, R: Row>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Vec<R>> {
        let args = self.args.map_err(sqlx::Error::Encode)?;
        match on.on() {
            On::Conn(conn) => DB::fetch_all(conn, self.sql, args).await,
            On::Pool(pool) | On::Db(Db { pool, .. }) => {
                let mut conn = pool.acquire().await?;
                DB::fetch_all(&mut *conn, self.sql, args).await
            }
        }
    }

    async fn optional<'c, R: Row>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Option<R>> {
        let args = self.args.map_err(sqlx::Error::Encode)?;
        match on.on() {
            On::Conn(conn) => DB::fetch_optional(conn, self.sql, args).await,
            On::Pool(pool) | On::Db(Db { pool, .. }) => {
                let mut conn = pool.acquire().await?;
                DB::fetch_optional(&mut *conn, self.sql, args).await
            }
        }
    }
}

impl<DB: Backend, R: Row> QueryAs<DB, R> {
    pub(crate) fn bind<'t, T: Param<'t>>(mut self, value: T) -> Self {
        self.inner = self.inner.bind(value);
        self
    }

    pub(crate) async fn fetch_all<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Vec<R>> {
        self.inner.all(on).await
    }

    pub(crate) async fn fetch_optional<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Option<R>> {
        self.inner.optional(on).await
    }

    pub(crate) async fn fetch_one<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<R> {
        self.inner
            .optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

impl<DB: Backend, O> QueryScalar<DB, O>
where
    (O,): Row,
{
    pub(crate) fn bind<'t, T: Param<'t>>(mut self, value: T) -> Self {
        self.inner = self.inner.bind(value);
        self
    }

    pub(crate) async fn fetch_all<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Vec<O>> {
        let rows: Vec<(O,)> = self.inner.all(on).await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    pub(crate) async fn fetch_optional<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<Option<O>> {
        let row: Option<(O,)> = self.inner.optional(on).await?;
        Ok(row.map(|(v,)| v))
    }

    pub(crate) async fn fetch_one<'c>(self, on: impl Exec<'c, DB>) -> sqlx::Result<O> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// SQL assembled piece by piece with bound values (the backend-neutral `sqlx::QueryBuilder`).
pub(crate) struct QueryBuilder<DB: Database> {
    sql: String,
    args: std::result::Result<DB::Arguments, BoxDynError>,
    /// SQLite: the bound values again, owned, for running the statement on a raw handle ([`Stmt::run_on`]).
    raw: std::result::Result<Vec<rusqlite::types::Value>, String>,
}

impl<DB: Backend> QueryBuilder<DB> {
    pub(crate) fn new(init: impl Into<String>) -> Self {
        QueryBuilder {
            sql: init.into(),
            args: Ok(DB::Arguments::default()),
            raw: Ok(Vec::new()),
        }
    }

    pub(crate) fn push(&mut self, sql: impl Display) -> &mut Self {
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Bind a value and write its placeholder.
    pub(crate) fn push_bind<'t, T: Param<'t> + rusqlite::types::ToSql>(
        &mut self,
        value: T,
    ) -> &mut Self {
        if DB::BACKEND == "sqlite"
            && let Ok(raw) = &mut self.raw
        {
            match local::owned_value(&value) {
                Ok(v) => raw.push(v),
                Err(e) => self.raw = Err(e),
            }
        }
        if let Ok(args) = &mut self.args {
            match DB::bind(args, value) {
                Ok(()) => {
                    let _ = args.format_placeholder(&mut self.sql);
                }
                Err(e) => self.args = Err(e),
            }
        }
        self
    }

    /// Push `rows` as a VALUES list, `(…), (…)`, each row's values bound by `bind` (the backend-neutral
    /// `sqlx::QueryBuilder::push_values`).
    pub(crate) fn push_values<I: IntoIterator>(
        &mut self,
        rows: I,
        mut bind: impl FnMut(&mut Separated<'_, DB>, I::Item),
    ) -> &mut Self {
        for (i, row) in rows.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            bind(&mut self.separated(", "), row);
            self.push(")");
        }
        self
    }

    /// Push values separated by `separator`.
    pub(crate) fn separated(&mut self, separator: &'static str) -> Separated<'_, DB> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    pub(crate) fn build(&mut self) -> Query<DB> {
        self.raw = Ok(Vec::new());
        Query {
            sql: sqlx::AssertSqlSafe(std::mem::take(&mut self.sql)).into_sql_str(),
            args: std::mem::replace(&mut self.args, Ok(DB::Arguments::default())),
        }
    }

    /// The statement as data, to run later through sqlx ([`Stmt::execute`]) or, on SQLite, on a raw handle
    /// ([`Stmt::run_on`]).
    pub(crate) fn statement(&mut self) -> Stmt<DB> {
        Stmt {
            sql: std::mem::take(&mut self.sql),
            args: std::mem::replace(&mut self.args, Ok(DB::Arguments::default())),
            raw: std::mem::replace(&mut self.raw, Ok(Vec::new())),
        }
    }

    pub(crate) fn build_query_as<R: Row>(&mut self) -> QueryAs<DB, R> {
        QueryAs {
            inner: self.build(),
            row: PhantomData,
        }
    }
}

/// A list being pushed into a [`QueryBuilder`], separator before every item but the first.
pub(crate) struct Separated<'b, DB: Database> {
    builder: &'b mut QueryBuilder<DB>,
    separator: &'static str,
    first: bool,
}

impl<DB: Backend> Separated<'_, DB> {
    pub(crate) fn push_bind<'t, T: Param<'t> + rusqlite::types::ToSql>(
        &mut self,
        value: T,
    ) -> &mut Self {
        if !self.first {
            self.builder.push(self.separator);
        }
        self.first = false;
        self.builder.push_bind(value);
        self
    }
}

/// A statement built by a [`QueryBuilder`], held as data: the bulk writes of the group-commit writer
/// (`writer.rs`), which runs a batch's statements on SQLite's raw handle all at once.
pub(crate) struct Stmt<DB: Database> {
    sql: String,
    args: std::result::Result<DB::Arguments, BoxDynError>,
    raw: std::result::Result<Vec<rusqlite::types::Value>, String>,
}

impl<DB: Backend> Stmt<DB> {
    /// Run it through sqlx; the number of rows it changed.
    pub(crate) async fn execute(self, conn: &mut DB::Connection) -> Result<u64> {
        self.execute_checked(conn).await.map_err(|(_, e)| e)
    }

    /// Run it on a raw SQLite handle (see [`Backend::with_handle`]); the number of rows it changed.
    pub(crate) fn run_on(&self, conn: &rusqlite::Connection) -> Result<u64> {
        self.run_checked(conn).map_err(|(_, e)| e)
    }

    /// [`Self::execute`], its failure with the constraint it broke, if any (a [`Script`] step says what that
    /// means).
    pub(crate) async fn execute_checked(
        self,
        conn: &mut DB::Connection,
    ) -> std::result::Result<u64, (Option<Violation>, crate::StoreError)> {
        let args = self
            .args
            .map_err(|e| (None, sqlx::Error::Encode(e).into()))?;
        DB::execute(conn, sqlx::AssertSqlSafe(self.sql).into_sql_str(), args)
            .await
            .map_err(|e| (Violation::of_sqlx(&e), e.into()))
    }

    /// [`Self::run_on`], its failure with the constraint it broke, if any.
    pub(crate) fn run_checked(
        &self,
        conn: &rusqlite::Connection,
    ) -> std::result::Result<u64, (Option<Violation>, crate::StoreError)> {
        let values = self.raw.as_ref().map_err(|e| {
            (
                None,
                crate::StoreError::Database(format!("a value could not be bound: {e}")),
            )
        })?;
        local::execute(conn, &self.sql, values)
            .map_err(|e| (Violation::of_sqlite(&e), local::store_error(e)))
    }
}
