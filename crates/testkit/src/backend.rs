//! Which database a [`crate::TestServer`] runs on. SQLite in its data directory by default; with
//! `ESCROWD_TEST_BACKEND=postgres` (and `ESCROWD_TEST_DATABASE_URL`, as for the store's conformance suite)
//! every test server gets a fresh PostgreSQL schema of its own, reached through `search_path` the way the
//! conformance suite does, and dropped when the server is dropped. `.ci/run` runs the server's end-to-end
//! suite a second time that way.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection as _;

/// `postgres` runs every test server on PostgreSQL; unset or `sqlite` on SQLite.
pub const BACKEND_VAR: &str = "ESCROWD_TEST_BACKEND";
/// The PostgreSQL server to make the schemas in (the store suite's variable).
pub const PG_URL_VAR: &str = "ESCROWD_TEST_DATABASE_URL";
/// Schemas are named `escrowd_e2e_<unix seconds>_<random>`; ones older than this are swept (left behind by a
/// killed test run).
const STALE_SECS: u64 = 6 * 3600;

/// The backend test servers run on, from [`BACKEND_VAR`]. Panics on an unknown value or on `postgres`
/// without [`PG_URL_VAR`], so a misconfigured run never passes on SQLite unnoticed.
pub fn postgres_selected() -> bool {
    match std::env::var(BACKEND_VAR).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => {
            assert!(
                std::env::var(PG_URL_VAR).is_ok(),
                "{BACKEND_VAR}=postgres needs {PG_URL_VAR}"
            );
            true
        }
        Ok(other) => panic!("{BACKEND_VAR}={other:?}: use sqlite or postgres"),
    }
}

/// Whether a PostgreSQL server for tests is configured ([`PG_URL_VAR`]), whatever [`BACKEND_VAR`] says: tests
/// that only make sense on PostgreSQL (several instances on one database) run when it is.
pub fn postgres_available() -> bool {
    std::env::var(PG_URL_VAR).is_ok_and(|u| !u.is_empty())
}

/// A PostgreSQL schema owned by one test server; dropped with it (a second instance joining that server's
/// schema, [`crate::TestServer::start_instance`], shares it and does not own it).
pub struct PgSchema {
    base: String,
    schema: String,
    /// The database URL that puts the server in this schema.
    pub url: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl PgSchema {
    /// A fresh schema on the server of [`PG_URL_VAR`] (sweeping stale ones first).
    pub async fn create() -> anyhow::Result<PgSchema> {
        let base = std::env::var(PG_URL_VAR)?;
        let schema = format!(
            "escrowd_e2e_{}_{}",
            now_secs(),
            uuid::Uuid::new_v4().simple()
        );
        let mut admin = sqlx::PgConnection::connect(&base).await?;
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'escrowd\\_e2e\\_%'",
        )
        .fetch_all(&mut admin)
        .await?;
        for old in stale {
            let born = old
                .split('_')
                .nth(2)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if now_secs().saturating_sub(born) > STALE_SECS && born != u64::MAX {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {old} CASCADE"
                )))
                .execute(&mut admin)
                .await;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Ok(PgSchema { base, schema, url })
    }

    /// Every row of every table in the schema as text (bytea in PostgreSQL's hex form), for scans of what
    /// the database holds at rest.
    pub async fn dump(&self) -> anyhow::Result<Vec<u8>> {
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename",
        )
        .bind(&self.schema)
        .fetch_all(&mut conn)
        .await?;
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM {}.\"{table}\" t",
                self.schema
            )))
            .fetch_all(&mut conn)
            .await?;
            for row in rows {
                out.extend_from_slice(format!("{table} {row}\n").as_bytes());
            }
        }
        conn.close().await?;
        Ok(out)
    }
}

impl Drop for PgSchema {
    /// Drops the schema from a thread of its own (the test's runtime may be the one being dropped). A lock
    /// timeout keeps a server task still holding a row lock from hanging the test; such a schema is left to
    /// the sweep in [`PgSchema::create`].
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&base).await.ok()?;
                sqlx::query("SET lock_timeout = '5s'")
                    .execute(&mut admin)
                    .await
                    .ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut admin)
                .await
                .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}
