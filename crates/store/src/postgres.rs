//! The PostgreSQL backend. Guarantees: migrated before first use; every write that must agree with an event
//! runs in one transaction (PostgreSQL's default READ COMMITTED, with each write statement first so concurrent
//! reports of the same command serialise on its row). Shares all queries with the SQLite backend: see
//! `sqlite.rs` for how `shared/*.rs` is compiled once per backend.

// Deliberate: `shared/*.rs` is compiled once per backend (see `sqlite.rs`).
#![allow(clippy::duplicate_mod)]

use std::str::FromStr;

use sqlx::Pool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Result, StoreError};

type Db = sqlx::Postgres;
type Conn = sqlx::PgConnection;
type Tx = sqlx::Transaction<'static, Db>;
type BackendStore = PgStore;
const BACKEND: &str = "postgres";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

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

/// A store in a PostgreSQL database (in the schema first on the connection's `search_path`).
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: Pool<Db>,
}

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
        Ok(PgStore { pool })
    }
}

/// Start a write transaction.
async fn begin_write(pool: &Pool<Db>) -> Result<Tx> {
    Ok(pool.begin().await?)
}
