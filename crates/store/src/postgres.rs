//! The PostgreSQL backend. Guarantees: migrated before first use; every write that must agree with an event
//! runs in one transaction (PostgreSQL's default READ COMMITTED, with each write statement first so concurrent
//! reports of the same command serialise on its row). Shares all queries with the SQLite backend (`sql/*.rs`);
//! this module only says how PostgreSQL connects, starts a write transaction and runs a statement.

use std::str::FromStr;

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPoolOptions, Postgres};
use sqlx::{Arguments as _, Pool, SqlStr};

use crate::sql::{Backend, Param, Row, SqlStore, Tx};
use crate::{Result, StoreError};

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
}
