//! The SQLite backend (the default). Guarantees: every connection runs in WAL mode with `synchronous=FULL`
//! (a committed write survives power loss, so a 200 to a device means the data is on disk), a 5 s busy
//! timeout and foreign keys on; the file is created if missing and migrated before first use; write
//! transactions take the write lock up front (`BEGIN IMMEDIATE`) so concurrent writers queue instead of
//! failing on a lock upgrade.
//!
//! The queries themselves live in `sql/*.rs`, written once for both backends; this module only says how
//! SQLite connects, starts a write transaction and runs a statement ([`Backend`] for [`Sqlite`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments as _, Pool, SqlStr};

use crate::sql::{Backend, Param, Row, SqlStore, Tx};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A store in one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqliteStore {
    /// Open `sqlite:PATH` or `sqlite://PATH` (created if missing) and apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_string()))?;
        if options.get_filename().as_os_str().is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        Self::open_with(options).await
    }

    /// Open the database file at `path` (created if missing) and apply migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma(
                "wal_autocheckpoint",
                crate::sql::WAL_AUTOCHECKPOINT.to_string(),
            );
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A local file's connection cannot go stale, and the default ping before every checkout is one
            // more round trip to the connection's thread on every read.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore {
            pool: crate::sql::Db::group_commit(pool, path.clone())?.with_local_reads(path),
        })
    }
}

impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const OWN_HANDLE: bool = true;
    const STORE: &'static str = "SqliteStore";

    /// Takes the database write lock from its first statement (`BEGIN IMMEDIATE`), so concurrent writers queue
    /// instead of failing on a lock upgrade.
    async fn begin_write(pool: &Pool<Self>) -> Result<Tx<Self>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn bind<'t, T: Param<'t>>(
        args: &mut SqliteArguments,
        value: T,
    ) -> std::result::Result<(), BoxDynError> {
        args.add(value)
    }

    async fn execute(
        conn: &mut SqliteConnection,
        sql: SqlStr,
        args: SqliteArguments,
    ) -> sqlx::Result<u64> {
        Ok(sqlx::query_with(sql, args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_all<R: Row>(
        conn: &mut SqliteConnection,
        sql: SqlStr,
        args: SqliteArguments,
    ) -> sqlx::Result<Vec<R>> {
        sqlx::query_as_with(sql, args).fetch_all(conn).await
    }

    async fn fetch_optional<R: Row>(
        conn: &mut SqliteConnection,
        sql: SqlStr,
        args: SqliteArguments,
    ) -> sqlx::Result<Option<R>> {
        sqlx::query_as_with(sql, args).fetch_optional(conn).await
    }

    async fn with_handle<'c, T: Send + 'c>(
        conn: &'c mut SqliteConnection,
        run: impl FnOnce(&rusqlite::Connection) -> T + Send + 'c,
    ) -> Result<T> {
        let mut locked = conn.lock_handle().await?;
        // SAFETY: the handle is valid, and ours alone, while `locked` lives (sqlx's connection thread waits for
        // it); `from_handle` makes a Connection that never closes it, dropped (its statements finalized) before
        // `locked` is.
        let raw = unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr()) }
            .map_err(crate::sql::local_error)?;
        let out = run(&raw);
        drop(raw);
        drop(locked);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Enrollment;
    use crate::prelude::*;

    #[tokio::test]
    async fn sqlite_file_runs_in_wal_mode_with_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("escrowd.sqlite"))
            .await
            .unwrap();
        // Check several pooled connections, not just the first.
        let mut conns = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool.acquire().await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            assert_eq!(sync, 2, "synchronous must be FULL (2)");
            assert_eq!(fk, 1);
            assert_eq!(busy, 5000);
            assert_eq!(checkpoint, crate::sql::WAL_AUTOCHECKPOINT);
            conns.push(conn);
        }
        // The group-commit writer's own connection, which commits every Idle poll, Get and Set.
        let own = store
            .pool
            .writer_pragmas(&[
                "journal_mode",
                "synchronous",
                "foreign_keys",
                "busy_timeout",
                "wal_autocheckpoint",
            ])
            .await
            .expect("a SQLite store has a writer");
        assert_eq!(
            own,
            [
                "wal".to_string(),
                "2".into(),
                "1".into(),
                "5000".into(),
                crate::sql::WAL_AUTOCHECKPOINT.to_string(),
            ],
            "journal_mode, synchronous (FULL), foreign_keys, busy_timeout, wal_autocheckpoint"
        );
    }

    /// `.cargo/config.toml` builds SQLite without its process-wide page-cache and allocation-statistics
    /// mutexes (every connection took them on every page and allocation); a build that lost the setting
    /// (say, the file dropped, or a `LIBSQLITE3_FLAGS` of one's own) fails here rather than quietly slower.
    #[tokio::test]
    async fn sqlite_is_built_without_its_global_page_cache_and_malloc_mutexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("escrowd.sqlite"))
            .await
            .unwrap();
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&*store.pool)
            .await
            .unwrap();
        assert!(
            options.iter().any(|o| o == "THREADSAFE=1"),
            "the options are read: {options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "one page-cache mutex for every connection: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "allocation statistics (a global mutex per malloc) are on: {options:?}"
        );
    }

    #[tokio::test]
    async fn data_survives_closing_and_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested-name.sqlite");
        let url = format!("sqlite:{}", path.display());
        let e = crate::conformance::device("UDID-REOPEN", Some("fp-reopen"));
        {
            let store = crate::connect(&url).await.unwrap();
            store
                .upsert_enrollment(
                    &e,
                    &crate::conformance::event("UDID-REOPEN", "enrollment.authenticated"),
                )
                .await
                .unwrap();
            store.close().await;
        }
        let store = crate::connect(&url).await.unwrap();
        assert_eq!(store.enrollment("UDID-REOPEN").await.unwrap(), Some(e));
        assert_eq!(store.events(&Default::default()).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_user_list_refresh_asked_inside_its_window_is_refused_without_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("x.sqlite"))
            .await
            .unwrap();
        let e = crate::conformance::device("UDID-ULR", None);
        store
            .upsert_enrollment(
                &e,
                &crate::conformance::event("UDID-ULR", "enrollment.authenticated"),
            )
            .await
            .unwrap();
        assert!(
            store
                .claim_user_list_refresh("UDID-ULR", 1_000, 700)
                .await
                .unwrap()
        );
        let batches = || {
            store
                .write_batches()
                .unwrap()
                .batches
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = batches();
        for at in 1_001..1_051 {
            assert!(
                !store
                    .claim_user_list_refresh("UDID-ULR", at, at - 300)
                    .await
                    .unwrap()
            );
        }
        assert_eq!(batches(), before, "refused claims went through the writer");
        // Past the window the claim writes (and wins) again.
        assert!(
            store
                .claim_user_list_refresh("UDID-ULR", 2_000, 1_001)
                .await
                .unwrap()
        );
        assert_eq!(batches(), before + 1);
    }

    #[tokio::test]
    async fn a_row_with_an_unknown_channel_is_a_database_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("x.sqlite"))
            .await
            .unwrap();
        let e = crate::conformance::device("UDID-BAD", None);
        store
            .upsert_enrollment(
                &e,
                &crate::conformance::event("UDID-BAD", "enrollment.authenticated"),
            )
            .await
            .unwrap();
        // Simulate a row written by something else: bypass the CHECK on one connection.
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("UPDATE enrollments SET channel = 'martian' WHERE id = 'UDID-BAD'")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        assert!(matches!(
            store.enrollment("UDID-BAD").await,
            Err(StoreError::Database(_))
        ));
    }

    #[tokio::test]
    async fn sqlite_url_without_a_path_is_unsupported() {
        assert!(matches!(
            SqliteStore::connect("sqlite:").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }

    #[tokio::test]
    async fn opening_a_file_that_is_not_a_database_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.sqlite");
        std::fs::write(&path, vec![0xAB; 8192]).unwrap();
        let err = SqliteStore::open(&path)
            .await
            .expect_err("garbage file must not open");
        assert!(
            matches!(err, StoreError::Database(_) | StoreError::Migration(_)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn oversized_values_are_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("big.sqlite"))
            .await
            .unwrap();
        let mut e: Enrollment = crate::conformance::device("UDID-BIG", None);
        e.device_name = Some("n".repeat(1 << 20));
        e.push_token = Some(vec![7; 1 << 20]);
        store
            .upsert_enrollment(
                &e,
                &crate::conformance::event("UDID-BIG", "enrollment.authenticated"),
            )
            .await
            .unwrap();
        assert_eq!(store.enrollment("UDID-BIG").await.unwrap(), Some(e));
    }
}
