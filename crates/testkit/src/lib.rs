//! testkit: a real escrowd server in-process plus a small signing device client, for end-to-end tests and
//! benchmarks. The device client speaks the wire protocol exactly as a Mac does: XML plists, `PUT` to the
//! check-in and connect URLs, the `Mdm-Signature` header (detached CMS over the exact body). The full virtual
//! Mac with macOS's token rules lives in the simulator; this is the minimum to drive the server.

pub mod apns;
pub mod backend;
pub mod browser;
pub mod console;
pub mod device;
pub mod enroll;
pub mod http;
pub mod messages;
pub mod scep;
pub mod secrets;

use std::sync::Arc;

use pki::ca::CertificateAuthority;
use server::{RunningServer, ServeOptions};
use tempfile::TempDir;

pub use console::ConsoleClient;
pub use device::{Reply, TestDevice};
pub use secrets::assert_no_secret;

/// A running escrowd on 127.0.0.1 with a fresh data directory (plain HTTP unless `tls` was asked for), its
/// Macs' listener at [`TestServer::base_url`] and its admin listener at [`TestServer::admin_url`], on
/// SQLite in that directory or, with `ESCROWD_TEST_BACKEND=postgres`, in a fresh PostgreSQL schema
/// ([`backend`]).
pub struct TestServer {
    pub dir: TempDir,
    pub opts: ServeOptions,
    server: Option<RunningServer>,
    /// Declared last: dropped after the server.
    pg: Option<backend::PgSchema>,
}

impl TestServer {
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_with(|_| {}).await
    }

    /// Start with options adjusted by `f` (data dir, both listen addresses and the backend's database are preset;
    /// a test about SQLite's files sets `opts.database = None` to stay on SQLite).
    pub async fn start_with(f: impl FnOnce(&mut ServeOptions)) -> anyhow::Result<TestServer> {
        let pg = if backend::postgres_selected() {
            Some(backend::PgSchema::create().await?)
        } else {
            None
        };
        Self::start_in(pg, f).await
    }

    /// Start on a fresh PostgreSQL schema whatever `ESCROWD_TEST_BACKEND` says (options adjusted by `f`);
    /// None when no PostgreSQL server is configured ([`backend::postgres_available`]).
    pub async fn start_on_postgres(
        f: impl FnOnce(&mut ServeOptions),
    ) -> anyhow::Result<Option<TestServer>> {
        if !backend::postgres_available() {
            return Ok(None);
        }
        let pg = backend::PgSchema::create().await?;
        Ok(Some(Self::start_in(Some(pg), f).await?))
    }

    /// A second escrowd instance beside this one, as on another machine behind the same balancer: the same
    /// PostgreSQL schema and the same options (the data directory too, so the same vault key file), its own
    /// listener and background tasks, options then adjusted by `f`. Refused on SQLite (one instance per
    /// database). Stop it before this server: this one owns the schema and the data directory.
    pub async fn start_instance(
        &self,
        f: impl FnOnce(&mut ServeOptions),
    ) -> anyhow::Result<TestServer> {
        anyhow::ensure!(
            self.pg.is_some() && self.opts.database.is_some(),
            "a second instance needs this server on PostgreSQL"
        );
        let dir = tempfile::tempdir()?;
        let mut opts = self.opts.clone();
        opts.listen = "127.0.0.1:0".parse()?;
        if opts.admin_listen != server::AdminListen::Same {
            opts.admin_listen = server::AdminListen::At("127.0.0.1:0".parse()?);
        }
        f(&mut opts);
        let server = server::start(opts.clone()).await?;
        Ok(TestServer {
            dir,
            opts,
            server: Some(server),
            pg: None,
        })
    }

    async fn start_in(
        pg: Option<backend::PgSchema>,
        f: impl FnOnce(&mut ServeOptions),
    ) -> anyhow::Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let mut opts = ServeOptions::new(dir.path().join("data"));
        opts.listen = "127.0.0.1:0".parse()?;
        opts.admin_listen = server::AdminListen::At("127.0.0.1:0".parse()?);
        opts.http = true;
        opts.database = pg.as_ref().map(|pg| pg.url.clone());
        f(&mut opts);
        let server = server::start(opts.clone()).await?;
        Ok(TestServer {
            dir,
            opts,
            server: Some(server),
            pg,
        })
    }

    /// What the database holds at rest, for scans: the SQLite files (`escrowd.db`, its WAL and SHM) or, on
    /// PostgreSQL, every row of the server's schema as text.
    pub async fn database_dump(&self) -> anyhow::Result<Vec<u8>> {
        if let (Some(pg), Some(_)) = (&self.pg, &self.opts.database) {
            return pg.dump().await;
        }
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(&self.opts.data_dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("escrowd.db"))
            {
                bytes.extend(std::fs::read(&path)?);
            }
        }
        anyhow::ensure!(
            !bytes.is_empty(),
            "no SQLite database in the data directory"
        );
        Ok(bytes)
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// The Macs' listener: MDM, SCEP, enrollment, agent.
    pub fn base_url(&self) -> String {
        self.running().base_url()
    }

    /// The admin listener: admin API (and the NanoMDM-compatible `/v1/...`), `/metrics`, console.
    pub fn admin_url(&self) -> String {
        self.running().admin_url()
    }

    pub fn store(&self) -> Arc<dyn store::Store> {
        self.running().state.mdm.store().clone()
    }

    /// Every event (up to 1,000) as text, one `kind subject detail` line each: for "was it recorded" checks
    /// and for `assert_no_secret` over the whole audit trail.
    pub async fn events_text(&self) -> String {
        self.store()
            .events(&store::EventFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("events")
            .iter()
            .map(|e| format!("{} {} {}\n", e.kind, e.subject, e.detail))
            .collect()
    }

    /// Counted refusals of unauthenticated requests of `kind` (what is in memory is flushed first), newest
    /// hour first.
    pub async fn auth_failures(&self, kind: &str) -> Vec<store::AuthFailureCount> {
        self.running()
            .state
            .mdm
            .admin_auth_failures(&store::AuthFailureFilter {
                kind: Some(kind.into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("auth failures")
    }

    /// How many refusals of `kind` were counted in total.
    pub async fn auth_failure_total(&self, kind: &str) -> i64 {
        self.auth_failures(kind).await.iter().map(|c| c.count).sum()
    }

    /// Stop and start again on the same data directory and ports.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let addr = self.running().local_addr;
        let admin_addr = self.running().admin_addr;
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let mut opts = self.opts.clone();
        opts.listen = addr;
        if opts.admin_listen != server::AdminListen::Same {
            opts.admin_listen = server::AdminListen::At(admin_addr);
        }
        self.server = Some(server::start(opts).await?);
        Ok(())
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// The development device CA the server runs with (its key is sealed in the store).
    pub fn device_ca(&self) -> anyhow::Result<Arc<CertificateAuthority>> {
        Ok(self.running().device_ca.clone())
    }

    /// A device with an RSA identity certificate from the server's development CA.
    pub fn new_device(&self, udid: &str) -> anyhow::Result<TestDevice> {
        TestDevice::new(
            udid,
            self.device_ca()?.as_ref(),
            device::KeyKind::Rsa2048,
            self.base_url(),
        )
    }
}
