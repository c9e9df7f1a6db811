//! The PostgreSQL backend. Guarantees: migrated before first use; every write that must agree with an event
//! runs in one transaction (PostgreSQL's default READ COMMITTED, with each write statement first so concurrent
//! reports of the same command serialise on its row). Shares all queries with the SQLite backend (`sql/*.rs`);
//! this module only says how PostgreSQL connects, starts a write transaction and runs a statement.

use std::future::Future;
use std::str::FromStr;

use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgListener, PgPoolOptions, Postgres,
};
use sqlx::{Arguments as _, Pool, SqlStr};

use crate::sql::{Backend, Param, Row, SqlStore, Tx};
use crate::{Notice, Result, Signal, SignalListener, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A store in a PostgreSQL database (in the schema first on the connection's `search_path`).
pub type PgStore = SqlStore<Postgres>;

impl PgStore {
    /// Connect to `postgres://…` / `postgresql://…` and apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        // The parse error names the bad part, never the password; the URL itself is not echoed.
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore {
            pool: crate::sql::Db::per_transaction(pool),
        })
    }
}

impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";
    const OWN_HANDLE: bool = false;
    const STORE: &'static str = "PgStore";

    async fn begin_write(pool: &Pool<Self>) -> Result<Tx<Self>> {
        Ok(pool.begin().await?)
    }

    fn bind<'t, T: Param<'t>>(
        args: &mut PgArguments,
        value: T,
    ) -> std::result::Result<(), BoxDynError> {
        args.add(value)
    }

    async fn execute(conn: &mut PgConnection, sql: SqlStr, args: PgArguments) -> sqlx::Result<u64> {
        Ok(sqlx::query_with(sql, args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_all<R: Row>(
        conn: &mut PgConnection,
        sql: SqlStr,
        args: PgArguments,
    ) -> sqlx::Result<Vec<R>> {
        sqlx::query_as_with(sql, args).fetch_all(conn).await
    }

    async fn fetch_optional<R: Row>(
        conn: &mut PgConnection,
        sql: SqlStr,
        args: PgArguments,
    ) -> sqlx::Result<Option<R>> {
        sqlx::query_as_with(sql, args).fetch_optional(conn).await
    }

    /// PostgreSQL has no handle to run on (`OWN_HANDLE` is false): its writes go through sqlx.
    fn with_handle<'c, T: Send + 'c>(
        _conn: &'c mut PgConnection,
        _run: impl FnOnce(&rusqlite::Connection) -> T + Send + 'c,
    ) -> impl Future<Output = Result<T>> + Send + 'c {
        std::future::ready(Err(StoreError::Database(
            "PostgreSQL has no SQLite handle to write on".into(),
        )))
    }
}

/// The `NOTIFY` channel of the store's schema: instances share signals only when they share the schema (test
/// servers on one database each have their own). An md5 keeps it under PostgreSQL's 63-byte identifier limit.
const CHANNEL_SQL: &str = "'escrowd_' || md5(current_schema())";

/// Send `payload` to every instance listening on this store's schema (sent at once: not in a transaction).
pub(crate) async fn notify(pool: &Pool<Postgres>, payload: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_notify({CHANNEL_SQL}, $1)"
    )))
    .bind(payload)
    .execute(pool)
    .await?;
    Ok(())
}

/// Listen on this store's channel, on a connection of its own (not one of the pool's ten).
pub(crate) async fn listen(pool: &Pool<Postgres>) -> Result<SignalListener> {
    let channel: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {CHANNEL_SQL}")))
        .fetch_one(pool)
        .await?;
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let mut inner = PgListener::connect_with(&own).await?;
    inner.listen(&channel).await?;
    Ok(SignalListener { inner })
}

impl SignalListener {
    /// The next signal. [`Signal::Resync`] when the connection was lost (signals sent meanwhile are gone;
    /// the next call reconnects and listens again). Payloads this version does not know are skipped. An error
    /// means the database cannot be reached now; calling again retries.
    pub async fn recv(&mut self) -> Result<Notice> {
        loop {
            match self.inner.try_recv().await? {
                Some(n) => {
                    if let Some(notice) = Signal::decode(n.payload()) {
                        return Ok(notice);
                    }
                }
                None => {
                    return Ok(Notice {
                        origin: String::new(),
                        signal: Signal::Resync,
                    });
                }
            }
        }
    }
}
