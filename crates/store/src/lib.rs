//! Persistence for escrowd behind one [`Store`] trait, the sum of small [`roles`] (one per concern), with a
//! SQLite backend (default) and a PostgreSQL backend that pass the same conformance suite.
//!
//! Guarantees: every method that changes state and takes a [`NewEvent`] writes the event in the same
//! transaction, so the audit trail never disagrees with the data; a Bootstrap Token's metadata and its sealed
//! secret are written and deleted together; on SQLite a successful write is durable (WAL, `synchronous=FULL`);
//! the active command queue holds only unfinished commands; a command carrying a secret is stored redacted,
//! its sealed payload kept only while it is queued somewhere; sealed values are opaque bytes here and never
//! appear in Debug output or errors.

mod admin_model;
mod agent_model;
mod cluster_model;
mod console_model;
mod edge_model;
mod enroll_model;
mod error;
mod event_kind;
mod model;
mod postgres;
pub mod roles;
mod rows;
mod sql;
mod sqlite;

#[cfg(test)]
mod conformance;

use std::sync::Arc;

pub use admin_model::*;
pub use agent_model::*;
pub use cluster_model::{Notice, Signal, SignalListener};
pub use console_model::*;
pub use edge_model::*;
pub use enroll_model::*;
pub use error::{Result, StoreError};
pub use event_kind::{EventKind, UnknownEventKind};
pub use model::*;
pub use postgres::PgStore;
pub use roles::{
    Admin, AdminAccounts, Agents, Cluster, Commands, Edge, Enrollments, Events, Groups, Inventory,
    Push, Renewals, Scep, Secrets, Tokens,
};
pub use sql::{BatchStats, COMMIT_BUCKETS_MS, DEFER_BOUND};
pub use sqlite::SqliteStore;

/// Everything escrowd persists: the sum of the [`roles`], implemented by [`SqliteStore`] and [`PgStore`].
/// `Arc<dyn Store>` upcasts to any single role (`let t: Arc<dyn Tokens> = store;`). Call its methods with
/// `use store::prelude::*;` in scope.
#[async_trait::async_trait]
pub trait Store:
    Enrollments
    + Renewals
    + Tokens
    + Secrets
    + Push
    + Scep
    + Edge
    + Groups
    + Commands
    + Events
    + Admin
    + AdminAccounts
    + Inventory
    + Agents
    + Cluster
    + Send
    + Sync
    + 'static
{
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Close every connection (on SQLite this also checkpoints the WAL). Calls after this fail.
    async fn close(&self) {}

    /// The group-commit writer's counters (SQLite), for metrics; `None` where writes are not batched.
    fn write_batches(&self) -> Option<&BatchStats> {
        None
    }

    /// The connection pool right now (no I/O; for `GET /metrics`).
    fn pool_stats(&self) -> PoolStats;
}

/// A snapshot of the database connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

/// Brings every role trait (and [`Store`]) into scope, unnamed, so their methods can be called on a store:
/// `use store::prelude::*;`.
pub mod prelude {
    pub use crate::Store as _;
    pub use crate::roles::{
        Admin as _, AdminAccounts as _, Agents as _, Cluster as _, Commands as _, Edge as _,
        Enrollments as _, Events as _, Groups as _, Inventory as _, Push as _, Renewals as _,
        Scep as _, Secrets as _, Tokens as _,
    };
}

/// Connect by URL: `sqlite:/path/to/db.sqlite` (also `sqlite://…`; created if missing) or `postgres://…` /
/// `postgresql://…`; runs migrations. Anything else: UnsupportedUrl (with any password redacted).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let is = |scheme: &str, name: &str| scheme.eq_ignore_ascii_case(name);
    match url.split_once(':') {
        Some((scheme, _)) if is(scheme, "sqlite") => Ok(Arc::new(SqliteStore::connect(url).await?)),
        Some((scheme, rest))
            if (is(scheme, "postgres") || is(scheme, "postgresql")) && rest.starts_with("//") =>
        {
            Ok(Arc::new(PgStore::connect(url).await?))
        }
        _ => Err(StoreError::UnsupportedUrl(error::redact_url(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_rejects_other_schemes_without_echoing_the_password() {
        for url in [
            "mysql://root:s3cret@db/escrow",
            "",
            "/var/lib/escrowd.db",
            "postgres:/no-slashes",
        ] {
            match connect(url).await {
                Err(StoreError::UnsupportedUrl(shown)) => {
                    assert!(!shown.contains("s3cret"), "{shown}")
                }
                Err(other) => panic!("{url:?}: expected UnsupportedUrl, got {other}"),
                Ok(_) => panic!("{url:?}: expected UnsupportedUrl, got a store"),
            }
        }
    }

    #[tokio::test]
    async fn a_store_upcasts_to_each_role_it_is_made_of() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("roles.sqlite"))
                .await
                .unwrap(),
        );
        let tokens: Arc<dyn Tokens> = store.clone();
        let events: Arc<dyn Events> = store.clone();
        let enrollments: &dyn Enrollments = &*store;
        assert_eq!(tokens.bootstrap_token("UDID-NONE").await.unwrap(), None);
        assert!(
            events
                .events(&EventFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(enrollments.count_enrollments().await.unwrap(), 0);
        store.close().await;
    }

    #[tokio::test]
    async fn connect_accepts_both_sqlite_url_forms() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.sqlite");
        let b = dir.path().join("b.sqlite");
        for url in [
            format!("sqlite:{}", a.display()),
            format!("sqlite://{}", b.display()),
        ] {
            let store = connect(&url).await.unwrap();
            assert_eq!(store.backend(), "sqlite");
            store.close().await;
        }
        assert!(a.exists() && b.exists());
    }
}
