//! Start a whole escrowd server from options: data directory, database, vault, device CAs, TLS, listener.
//! Used by `escrowd serve`, by the test kit and by benchmarks, so all three run the same wiring.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use pki::DeviceIdentityVerifier;
use service::MdmService;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::datadir::DataDir;
use crate::{AppShared, AppState, listener, tls};

/// Everything `escrowd serve` can be told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// The Macs' address (`--listen`): MDM, SCEP, enrollment and agent routes only.
    pub listen: SocketAddr,
    /// The admins' address (`--admin-listen`): admin API, `/metrics` and the console.
    pub admin_listen: AdminListen,
    /// Extra CA certificates (PEM files) whose device identity certificates are trusted.
    pub device_cas: Vec<PathBuf>,
    /// `sqlite:…` or `postgres://…`; None = SQLite in the data directory.
    pub database: Option<String>,
    /// Plain HTTP (behind a TLS-terminating proxy, or for tests).
    pub http: bool,
    /// Read a client certificate forwarded by a trusted proxy from this header.
    pub trusted_cert_header: Option<String>,
    /// Peers the header is honoured from (`--trusted-proxy`); required whenever `trusted_cert_header` is set.
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
    /// Honour the header on the TLS listener too (`--trusted-cert-header-on-tls`); off, it is read only on
    /// a plain `--http` listener, where the proxy terminates TLS.
    pub trusted_cert_header_on_tls: bool,
    /// Static SCEP challenge password (`--scep-challenge`); None = SCEP PKCSReq is refused.
    pub scep_challenge: Option<vault::Secret<Vec<u8>>>,
    /// Lifetime of device identity certificates issued over SCEP.
    pub scep_validity_days: u32,
    /// Re-ask a device for its inventory once its last request is this old (`--inventory-interval`);
    /// zero disables the schedule (enrollment and escrow still queue inventory).
    pub inventory_interval: std::time::Duration,
    /// At most this many devices per schedule tick (`--inventory-batch`), so a fleet is never asked at once.
    pub inventory_batch: u32,
    /// APNs endpoint, pacing and retries (`--apns-url`, `--push-concurrency`, `--apns-ca`).
    pub apns: crate::apns::ApnsSettings,
    /// Base URL devices reach this server at, written into enrollment profiles
    /// (`https://mdm.example.com`); None = the Macs' listener's own address (`listen`).
    pub public_url: Option<String>,
    /// Slow and greedy clients: header and idle timeouts, connection and large-body caps.
    pub limits: crate::listener::Limits,
    /// How long an agent registration secret works once the Mac acknowledged the InstallProfile carrying it
    /// (`--agent-secret-ttl`).
    pub agent_secret_ttl: std::time::Duration,
    /// The service's time source (the system clock; tests hand in a `service::ManualClock`).
    pub clock: service::SharedClock,
    /// Queue a Mac's renewal profile this many days before its identity certificate's notAfter
    /// (`--identity-renewal-days`); 0 = no automatic renewal (admins can still renew one Mac).
    pub identity_renewal_days: u32,
    /// How many days past notAfter a still-bound identity may check in for its renewal profile, and nothing
    /// else (`--identity-grace-days`); 0 = none.
    pub identity_grace_days: u32,
    /// At most this many renewals per schedule pass (`--identity-renewal-batch`).
    pub identity_renewal_batch: u32,
    /// Record metrics and serve `GET /metrics` (`--no-metrics` turns it off). The recorder is per process:
    /// once any server of the process turned it on, `service` and `store` record for every server in it.
    pub metrics: bool,
}

/// Where the admin routes (admin API with the NanoMDM-compatible `/v1/...`, `/metrics`, console) are served.
///
/// Macs reach the MDM address from the internet; admins reach the console and API on a private address, so
/// by default the two are separate listeners and an admin route answers 404 on the Macs' one (and a device
/// route 404 on the admins'). `same` serves everything on `--listen`: an explicit opt-in for a deployment
/// that has one address only (one reverse proxy splitting by path itself), never the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    /// A listener of its own on this address (same TLS material, `--http` choice and limits).
    At(SocketAddr),
    /// The admin routes on the Macs' listener too (`--admin-listen same`).
    Same,
}

/// Default `--admin-listen`.
pub const DEFAULT_ADMIN_LISTEN: AdminListen = AdminListen::At(SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    8444,
));

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("same") {
            return Ok(AdminListen::Same);
        }
        value.parse().map(AdminListen::At).map_err(|_| {
            format!("'{value}' is neither an address with a port (e.g. 127.0.0.1:8444) nor 'same'")
        })
    }
}

impl std::fmt::Display for AdminListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminListen::At(addr) => write!(f, "{addr}"),
            AdminListen::Same => f.write_str("same"),
        }
    }
}

/// Default `--inventory-interval`: a day.
pub const DEFAULT_INVENTORY_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);
/// Default `--agent-secret-ttl`: a day.
pub const DEFAULT_AGENT_SECRET_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Default `--inventory-batch`.
pub const DEFAULT_INVENTORY_BATCH: u32 = 200;

impl ServeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeOptions {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            admin_listen: DEFAULT_ADMIN_LISTEN,
            device_cas: Vec::new(),
            database: None,
            http: false,
            trusted_cert_header: None,
            trusted_proxies: Vec::new(),
            trusted_cert_header_on_tls: false,
            scep_challenge: None,
            scep_validity_days: service::scep::DEFAULT_VALIDITY_DAYS,
            inventory_interval: DEFAULT_INVENTORY_INTERVAL,
            inventory_batch: DEFAULT_INVENTORY_BATCH,
            apns: crate::apns::ApnsSettings::default(),
            public_url: None,
            limits: crate::listener::Limits::default(),
            agent_secret_ttl: DEFAULT_AGENT_SECRET_TTL,
            clock: service::SharedClock::default(),
            identity_renewal_days: service::renewal::DEFAULT_RENEWAL_DAYS,
            identity_grace_days: service::renewal::DEFAULT_GRACE_DAYS,
            identity_renewal_batch: service::renewal::DEFAULT_RENEWAL_BATCH,
            metrics: true,
        }
    }
}

/// A server running in this process.
pub struct RunningServer {
    /// The Macs' listener.
    pub local_addr: SocketAddr,
    /// The admin listener; `local_addr` with `--admin-listen same`.
    pub admin_addr: SocketAddr,
    pub tls: bool,
    pub state: AppState,
    /// The device CA (its key sealed in the store), for tests that issue identities directly.
    pub device_ca: Arc<pki::ca::CertificateAuthority>,
    shutdown: watch::Sender<bool>,
    join: JoinHandle<()>,
    /// The inventory schedule; None when `inventory_interval` is zero.
    inventory: Option<JoinHandle<()>>,
    /// Writes counted auth failures to the store (and once more at stop).
    auth_failures: JoinHandle<()>,
    /// The identity renewal schedule; None when `identity_renewal_days` is zero.
    renewal: Option<JoinHandle<()>>,
    /// Hears the other instances on the same PostgreSQL database; None on SQLite.
    signals: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The Macs' listener (MDM, SCEP, enrollment, agent).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The admin listener (admin API, `/metrics`, console).
    pub fn admin_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.admin_addr)
    }

    /// Stop accepting on both listeners, let open requests finish, and wait.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.join.await;
        for task in [self.inventory, self.renewal, self.signals]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
        let _ = self.auth_failures.await;
        // Writes the store's lagging marks (last-seen) and commits its open batch.
        self.state.mdm.store().close().await;
    }

    /// Run until the listener task ends (it ends only after `stop` or a fatal error); after a requested
    /// shutdown, also flush the counted auth failures and close the store (writing its lagging marks).
    pub async fn wait(self) {
        let _ = self.join.await;
        if *self.shutdown.borrow() {
            let _ = self.auth_failures.await;
        }
        self.state.mdm.store().close().await;
    }

    /// A handle that can ask the server to stop from elsewhere (a signal handler).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Refuse option combinations that would make the forwarded-certificate header a way in for anyone.
pub fn check_forwarded_header_options(opts: &ServeOptions) -> anyhow::Result<()> {
    let Some(header) = &opts.trusted_cert_header else {
        if !opts.trusted_proxies.is_empty() || opts.trusted_cert_header_on_tls {
            tracing::warn!(
                "--trusted-proxy and --trusted-cert-header-on-tls do nothing without --trusted-cert-header"
            );
        }
        return Ok(());
    };
    if header.is_empty() || http::HeaderName::from_bytes(header.as_bytes()).is_err() {
        anyhow::bail!("--trusted-cert-header {header:?} is not a valid HTTP header name");
    }
    if opts.trusted_proxies.is_empty() {
        anyhow::bail!(
            "--trusted-cert-header {header} needs --trusted-proxy CIDR (repeatable) naming the proxies that \
             set it, e.g. --trusted-proxy 127.0.0.1 or --trusted-proxy 10.0.0.0/8; otherwise any client could \
             claim any device certificate"
        );
    }
    if let Some(all) = opts.trusted_proxies.iter().find(|c| c.prefix() == 0) {
        tracing::warn!(network = %all, "--trusted-proxy trusts every address of its family");
    }
    if !opts.http && !opts.trusted_cert_header_on_tls {
        tracing::warn!(
            header = %header,
            "--trusted-cert-header is ignored on the TLS listener; it is read only with --http (behind a \
             TLS-terminating proxy) unless --trusted-cert-header-on-tls is given"
        );
    }
    Ok(())
}

/// Refuse limits that would make the server unusable.
fn check_limits(limits: &crate::listener::Limits) -> anyhow::Result<()> {
    if limits.header_read_timeout.is_zero() || limits.idle_timeout.is_zero() {
        anyhow::bail!("--header-read-timeout and --idle-timeout must be longer than zero");
    }
    if limits.max_connections == 0 || limits.max_large_body_parses == 0 {
        anyhow::bail!("--max-connections and --max-large-body-parses must be at least 1");
    }
    Ok(())
}

/// Prepare the data directory and start serving. Returns once the listener is bound.
pub async fn start(opts: ServeOptions) -> anyhow::Result<RunningServer> {
    check_forwarded_header_options(&opts)?;
    check_limits(&opts.limits)?;
    let dir = DataDir::new(&opts.data_dir);
    dir.ensure()?;
    let vault = Arc::new(
        vault::Vault::open_or_create(&dir.vault_key())
            .with_context(|| format!("opening key file {}", dir.vault_key().display()))?,
    );
    if opts.database.is_none() {
        dir.precreate_database()?;
    }
    let database = opts.database.clone().unwrap_or_else(|| dir.database_url());
    let store = store::connect(&database)
        .await
        .with_context(|| format!("opening database {}", redact_url(&database)))?;
    // The WAL and SHM exist now; an older database may have made them readable by others.
    dir.secure_files()?;

    let secrets =
        service::secrets::Secrets::new(store.clone(), vault.clone(), opts.clock.0.clone());
    let device_ca = Arc::new(crate::device_ca::load_or_create(&dir, &secrets).await?);
    let mut cas = vec![device_ca.certificate().clone()];
    for path in &opts.device_cas {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading --device-ca {}", path.display()))?;
        let certs = DeviceIdentityVerifier::load_pem_bundle(&pem).with_context(|| {
            format!("--device-ca {} holds no usable certificate", path.display())
        })?;
        cas.extend(certs);
    }
    let verifier = Arc::new(DeviceIdentityVerifier::new(cas)?);

    let profile_signer = Arc::new(crate::profile_signer::load_or_create(&dir, &secrets).await?);
    let tls_config = if opts.http {
        None
    } else {
        let (cert, key) = dir.tls_material()?;
        dir.secure_files()?;
        Some(Arc::new(tls::server_config(&cert, key.expose())?))
    };
    let listener = listener::bind(opts.listen, "--listen").await?;
    let local_addr = listener.local_addr()?;
    let admin_listener = match opts.admin_listen {
        AdminListen::At(addr) => {
            if addr == opts.listen && addr.port() != 0 {
                anyhow::bail!(
                    "--admin-listen {addr} is the --listen address: give the admin listener its own address \
                     (e.g. 127.0.0.1:8444), or --admin-listen same to serve the admin routes on --listen too"
                );
            }
            Some(listener::bind(addr, "--admin-listen").await?)
        }
        AdminListen::Same => None,
    };
    let admin_addr = match &admin_listener {
        Some(l) => l.local_addr()?,
        None => local_addr,
    };
    let public_url = match &opts.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let scheme = if tls_config.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{local_addr}")
        }
    };
    let state = AppState::new(AppShared {
        mdm: MdmService::with_clock(store.clone(), vault, opts.clock.0.clone())
            .with_agent_secret_ttl(opts.agent_secret_ttl)
            .with_device_identity(verifier.clone())
            .with_scep(service::scep::ScepConfig {
                ca: device_ca.clone(),
                verifier: verifier.clone(),
                static_challenge: opts.scep_challenge.clone(),
                validity_days: opts.scep_validity_days,
            })
            .with_profile_signer(profile_signer)
            .with_identity_renewal(service::renewal::RenewalSettings::new(
                service::enroll::ProfileUrls {
                    base_url: public_url.clone(),
                },
                opts.identity_renewal_days,
                opts.identity_grace_days,
            )),
        trusted_cert_header: opts.trusted_cert_header.clone(),
        trusted_proxies: Arc::new(opts.trusted_proxies.clone()),
        trusted_cert_header_on_tls: opts.trusted_cert_header_on_tls,
        public_url,
        apns: Arc::new(opts.apns.clone()),
        large_bodies: Arc::new(tokio::sync::Semaphore::new(
            opts.limits.max_large_body_parses.max(1),
        )),
        metrics: if opts.metrics {
            crate::metrics::Metrics::install()
        } else {
            None
        },
    });
    // A stored push certificate wakes Macs from the start; a broken one is reported, not fatal (an admin
    // can upload a new one while serving).
    match crate::apns::install(&state.mdm, &opts.apns).await {
        Ok(Some(info)) => tracing::info!(topic = %info.topic, "push certificate loaded"),
        Ok(None) => tracing::info!(
            "no push certificate yet: upload one with `escrowd push-cert upload` to wake Macs"
        ),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the stored push certificate cannot be used; pushes fail until a new one is uploaded")
        }
    }
    let (tx, rx) = watch::channel(false);
    let tls_on = tls_config.is_some();
    let inventory = crate::schedule::spawn_inventory_schedule(
        state.mdm.clone(),
        opts.inventory_interval,
        opts.inventory_batch,
        rx.clone(),
    );
    let auth_failures = crate::schedule::spawn_auth_failure_flush(state.mdm.clone(), rx.clone());
    let renewal = crate::schedule::spawn_renewal_schedule(
        state.mdm.clone(),
        opts.identity_renewal_days,
        opts.identity_renewal_batch,
        rx.clone(),
    );
    let signals =
        crate::schedule::spawn_instance_signals(state.mdm.clone(), opts.apns.clone(), rx.clone())
            .await
            .context("listening for the other instances' signals")?;
    // Each listener has its own connection cap, so a flood on the Macs' address cannot lock admins out.
    let join = match admin_listener {
        Some(admin_listener) => {
            let devices = listener::serve(
                listener,
                crate::device_router(state.clone()),
                tls_config.clone(),
                rx.clone(),
                opts.limits.clone(),
            );
            let admins = listener::serve(
                admin_listener,
                crate::admin_router(state.clone()),
                tls_config,
                rx,
                opts.limits.clone(),
            );
            tokio::spawn(async move {
                tokio::join!(devices, admins);
            })
        }
        None => {
            tracing::warn!(
                address = %local_addr,
                "--admin-listen same: the admin API, /metrics and the console are served on the Macs' address"
            );
            tokio::spawn(listener::serve(
                listener,
                crate::combined_router(state.clone()),
                tls_config,
                rx,
                opts.limits.clone(),
            ))
        }
    };
    tracing::info!(
        address = %local_addr,
        admin_address = %admin_addr,
        tls = tls_on,
        database = store.backend(),
        "escrowd is listening: Macs (MDM, SCEP, enrollment, agent) on address, admins (API, /metrics, console) \
         on admin_address"
    );
    Ok(RunningServer {
        local_addr,
        admin_addr,
        tls: tls_on,
        state,
        device_ca,
        shutdown: tx,
        join,
        inventory,
        auth_failures,
        renewal,
        signals,
    })
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn admin_listen_is_an_address_or_same() {
        use super::AdminListen;
        assert_eq!(
            "127.0.0.1:8444".parse::<AdminListen>(),
            Ok(AdminListen::At("127.0.0.1:8444".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:0".parse::<AdminListen>().unwrap().to_string(),
            "[::1]:0"
        );
        assert_eq!("same".parse::<AdminListen>(), Ok(AdminListen::Same));
        assert_eq!(AdminListen::Same.to_string(), "same");
        for bad in ["", "8444", "localhost:8444", "127.0.0.1", "both"] {
            assert!(bad.parse::<AdminListen>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn database_password_is_redacted_in_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
    }
}
