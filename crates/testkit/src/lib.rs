//! testkit: a real escrowd server in-process plus a small signing device client, for end-to-end tests and
//! benchmarks. The device client speaks the wire protocol exactly as a Mac does: XML plists, `PUT` to the
//! check-in and connect URLs, the `Mdm-Signature` header (detached CMS over the exact body). The full virtual
//! Mac with macOS's token rules lives in the simulator; this is the minimum to drive the server.

pub mod apns;
pub mod device;
pub mod enroll;
pub mod messages;
pub mod scep;

use std::sync::Arc;

use pki::ca::CertificateAuthority;
use server::{RunningServer, ServeOptions};
use tempfile::TempDir;

pub use device::{Reply, TestDevice};

/// A running escrowd on 127.0.0.1 with a fresh data directory (plain HTTP unless `tls` was asked for).
pub struct TestServer {
    pub dir: TempDir,
    pub opts: ServeOptions,
    server: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_with(|_| {}).await
    }

    /// Start with options adjusted by `f` (data dir and listen address are preset).
    pub async fn start_with(f: impl FnOnce(&mut ServeOptions)) -> anyhow::Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let mut opts = ServeOptions::new(dir.path().join("data"));
        opts.listen = "127.0.0.1:0".parse()?;
        opts.http = true;
        f(&mut opts);
        let server = server::start(opts.clone()).await?;
        Ok(TestServer {
            dir,
            opts,
            server: Some(server),
        })
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    pub fn base_url(&self) -> String {
        self.running().base_url()
    }

    pub fn store(&self) -> Arc<dyn store::Store> {
        self.running().state.mdm.store().clone()
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

    /// Stop and start again on the same data directory and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let addr = self.running().local_addr;
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        let mut opts = self.opts.clone();
        opts.listen = addr;
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
