//! A real `escrowd serve --http` process for the process-level tests (crash, memory): started on a data
//! directory and port that outlive it, SIGKILLed and restarted at will.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (the server binds it a moment later; reused across restarts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One `escrowd serve --http` process on a fixed data directory and ports (the Macs' and the admin listener).
pub struct Server {
    pub data_dir: PathBuf,
    /// `--database` (PostgreSQL); None: SQLite in the data directory.
    pub database: Option<String>,
    pub port: u16,
    /// `--admin-listen` port.
    pub admin_port: u16,
    /// More `serve` arguments.
    pub args: Vec<String>,
    /// stdout and stderr of every incarnation, appended.
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Server {
    /// A server whose data directory (created by escrowd) and log live under `root`.
    pub fn new(root: &Path, database: Option<String>, args: &[&str]) -> Server {
        Server {
            log: root.join("serve.log"),
            data_dir: root.join("data"),
            database,
            port: free_port(),
            admin_port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        }
    }

    /// The Macs' listener.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The admin listener (admin API, `/metrics`, console). Not every test binary of this module calls it.
    #[allow(dead_code)]
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts the server and waits until /healthz answers.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_escrowd"));
        cmd.args(["serve", "--http", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env("ESCROWD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if let Some(db) = &self.database {
            cmd.arg("--database").arg(db);
        }
        self.child = Some(cmd.spawn().expect("spawn escrowd serve"));
        let http = sim::client::http_client().expect("HTTP client");
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "escrowd serve exited with {status} while starting; log:\n{}",
                    self.log_text()
                );
            }
            let up = http
                .get(format!("{}/healthz", self.base_url()))
                .timeout(Duration::from_millis(500))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "escrowd serve did not answer /healthz within 60 s; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL (`Child::kill` is SIGKILL on Unix): no shutdown hook, no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL escrowd");
            child.wait().expect("reap escrowd");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
