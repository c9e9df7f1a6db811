//! The NanoMDM peer: `--peer-nanomdm PATH` starts NanoMDM on a free local port with the same device CA, a
//! file store in a temporary directory and a random API key, so both servers get the same workload in one
//! run. NanoMDM serves check-ins and commands on one endpoint, `/mdm`, takes the device certificate from
//! `Mdm-Signature` (no `-cert-header`), checks it chains to `-ca` with the clientAuth EKU, and answers
//! GetBootstrapToken with what SetBootstrapToken stored.
//!
//! Guarantees: the child is killed and its directory removed when the peer is dropped, on every path; a peer
//! that does not come up within 15 s is an error carrying the tail of its log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct NanoMdm {
    child: Child,
    pub base_url: String,
    pub api_key: String,
    _dir: tempfile::TempDir,
}

impl NanoMdm {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn start(binary: &Path, device_ca_pem: &[u8]) -> anyhow::Result<NanoMdm> {
        let dir = tempfile::tempdir().context("making NanoMDM's temporary directory")?;
        let ca = dir.path().join("device-ca.pem");
        std::fs::write(&ca, device_ca_pem)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for NanoMDM")?
            .port();
        let mut key = [0u8; 16];
        openssl::rand::rand_bytes(&mut key)?;
        let api_key = hex(&key);
        let log = std::fs::File::create(dir.path().join("nanomdm.log"))?;
        let child = Command::new(binary)
            .arg("-ca")
            .arg(&ca)
            .args(["-listen", &format!("127.0.0.1:{port}")])
            .args(["-storage", "filekv", "-storage-dsn"])
            .arg(dir.path().join("db"))
            .args(["-api", &api_key])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting NanoMDM at {}", binary.display()))?;
        let mut peer = NanoMdm {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            api_key,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = peer.child.try_wait()? {
                bail!(
                    "NanoMDM exited at start ({status}); its log:\n{}",
                    peer.log_tail()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(peer);
            }
            if started.elapsed() > Duration::from_secs(15) {
                bail!(
                    "NanoMDM did not listen on port {port} within 15 s; its log:\n{}",
                    peer.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self._dir.path().join("nanomdm.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for NanoMdm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
