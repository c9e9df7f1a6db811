//! The SQLite backend (the default). Guarantees: every connection runs in WAL mode with `synchronous=FULL`
//! (a committed write survives power loss, so a 200 to a device means the data is on disk), a 5 s busy
//! timeout and foreign keys on; the file is created if missing and migrated before first use; write
//! transactions take the write lock up front (`BEGIN IMMEDIATE`) so concurrent writers queue instead of
//! failing on a lock upgrade.
//!
//! The queries themselves live in `shared/*.rs` and are compiled once here and once in `postgres.rs` via
//! `#[path]`, against this module's `Db`, `Conn` and `begin_write`: one SQL text and one Rust body for both.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Pool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Result, StoreError};

type Db = sqlx::Sqlite;
type Conn = sqlx::SqliteConnection;
type Tx = sqlx::Transaction<'static, Db>;
type BackendStore = SqliteStore;
const BACKEND: &str = "sqlite";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[path = "shared/agents.rs"]
mod agents;
#[path = "shared/apikeys.rs"]
mod apikeys;
#[path = "shared/commands.rs"]
mod commands;
#[path = "shared/devices.rs"]
mod devices;
#[path = "shared/edge.rs"]
mod edge;
#[path = "shared/enroll.rs"]
mod enroll;
#[path = "shared/enrollments.rs"]
mod enrollments;
#[path = "shared/events.rs"]
mod events;
#[path = "shared/groups.rs"]
mod groups;
#[path = "shared/inventory.rs"]
mod inventory;
#[path = "shared/push.rs"]
mod push;
#[path = "shared/renewals.rs"]
mod renewals;
#[path = "shared/scep.rs"]
mod scep;
#[path = "shared/schedule.rs"]
mod schedule;
#[path = "shared/secrets.rs"]
mod secrets;
#[path = "shared/store_impl.rs"]
mod store_impl;
#[path = "shared/tokens.rs"]
mod tokens;

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: Pool<Db>,
}

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
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

/// Start a write transaction holding the database write lock from its first statement.
async fn begin_write(pool: &Pool<Db>) -> Result<Tx> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Enrollment, Store};

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
            assert_eq!(mode, "wal");
            assert_eq!(sync, 2, "synchronous must be FULL (2)");
            assert_eq!(fk, 1);
            assert_eq!(busy, 5000);
            conns.push(conn);
        }
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
