//! `escrowd`: the Apple MDM server that keeps macOS Bootstrap Tokens safe.

mod actions;
mod admin;
mod apikey;
mod bench;
mod bulk;
mod client;
mod console_admin;
mod enroll;
mod identity;
mod keys;
mod push_cert;
mod renewal;
mod sim_cmd;
mod when;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "escrowd",
    version,
    about = "An Apple MDM server whose first job is keeping macOS Bootstrap Tokens safe.",
    long_about = "escrowd escrows the macOS Bootstrap Token that Macs hand to their MDM server, serves it back only \
to the Mac it belongs to, and keeps it sealed at rest.\n\nStart with `escrowd serve`: it creates a data directory \
with a SQLite database, a key file, a development device CA and a self-signed TLS certificate, and listens on \
https://127.0.0.1:8443 for Macs and on https://127.0.0.1:8444 for admins (API, /metrics, console)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the MDM server (check-in and command endpoints).
    #[command(
        long_about = "Run the MDM server.\n\nTwo listeners. --listen (default 127.0.0.1:8443) is the Macs' address, \
the one to expose to the internet: PUT /mdm/checkin (check-in protocol), PUT /mdm/connect (command protocol), \
PUT /mdm (dispatches on Content-Type), GET/POST /scep (SCEP enrollment, issuing from the device CA with \
--scep-challenge), GET /enroll (enrollment links) and /agent/v1/... (the escrowd agent). --admin-listen \
(default 127.0.0.1:8444) is the admins' address, to keep on a private network: the admin API /api/v1/... \
(and the NanoMDM-compatible /v1/enqueue, /v1/push), GET /metrics and the web console. An admin route \
answers 404 on the Macs' address and a device route 404 on the admins'; both serve GET /healthz and share \
the TLS certificate, --http and the connection limits (each listener has its own --max-connections). \
--admin-listen same serves everything on --listen (only where one address is all you have, e.g. one reverse \
proxy splitting by path; never the default).\n\nDevices prove who they are with Mdm-Signature \
(SignMessage in the enrollment profile) or a TLS client certificate; certificates must chain to the development \
device CA in the data directory or to a CA given with --device-ca.\n\nExamples:\n  escrowd serve\n  escrowd serve \
--data-dir /var/lib/escrowd --listen 0.0.0.0:443 --admin-listen 10.0.0.5:8444\n  escrowd serve --http --listen 127.0.0.1:8080 \
--trusted-cert-header X-Client-Cert --trusted-proxy 127.0.0.1   # behind nginx\n  ESCROWD_SCEP_CHALLENGE=s3cret escrowd serve   # devices enroll at /scep\n  escrowd serve --database postgres://escrowd@db/escrowd\n  escrowd serve --push-concurrency 32   # pace bulk APNs pushes\n  escrowd serve --apns-url https://127.0.0.1:2197 --apns-ca stand-in-ca.pem   # a test APNs stand-in"
    )]
    Serve(ServeArgs),
    /// Manage the keys that seal escrowed secrets (rotate, status, retire).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run a fleet of virtual Macs against a server: demo, end-to-end check and load generator.
    #[command(long_about = sim_cmd::LONG_ABOUT)]
    Sim(sim_cmd::SimArgs),
    /// Measure a server (and NanoMDM side by side) under signed check-in load.
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::BenchArgs),
    /// Make and list admin API keys (offline, directly in the database).
    #[command(subcommand)]
    Apikey(apikey::ApikeyCommand),
    /// Make and manage web console admins: create, list, disable, passwd (offline, in the database).
    #[command(subcommand)]
    Admin(console_admin::AdminCommand),
    /// List devices with their Bootstrap Token status (filters, paging).
    Devices(admin::DevicesArgs),
    /// One device in detail, with its diagnosis; or an action on it (identities, approve-identity, block,
    /// unblock, unenroll).
    Device(admin::DeviceCmdArgs),
    /// The users of a device: Secure Token, logged in, mobile, volume owner, with source.
    Users(admin::DeviceArgs),
    /// A device's command history, newest first, with each command's status.
    Commands(admin::CommandsArgs),
    /// Events, newest first: the whole fleet's, or one device's (filters: --kind, --outcome, --subject).
    Events(admin::EventsArgs),
    /// Groups and their escrow settings.
    #[command(subcommand)]
    Groups(admin::GroupsCommand),
    /// Queue a command for devices (and push).
    #[command(name = "command")]
    Enqueue(admin::CommandArgs),
    /// Push to devices.
    Push(admin::PushArgs),
    /// The APNs push certificate: upload (PEM or PKCS#12) and show (topic, expiry).
    #[command(subcommand, name = "push-cert")]
    PushCert(push_cert::PushCertCommand),
    /// Fleet summary or a CSV report.
    Report(admin::ReportArgs),
    /// Agent actions on a Mac: create (passwords from env or stdin, sealed to the agent), list, show, cancel.
    #[command(subcommand)]
    Action(actions::ActionCommand),
    /// Queue the agent's settings (one-time registration secret) for a Mac via MDM InstallProfile.
    AgentInstall(actions::AgentInstallArgs),
    /// Enrollment tokens: links a Mac opens to get a signed enrollment profile (/enroll?token=…).
    #[command(subcommand, name = "enroll-token")]
    EnrollToken(enroll::EnrollTokenCommand),
    /// Write a group's signed enrollment profile (static SCEP challenge) to standard output.
    Profile(enroll::ProfileArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Data directory: database (unless --database), key file, device CA, TLS certificate. Created if missing.
    #[arg(long, env = "ESCROWD_DATA_DIR", default_value = "escrowd-data")]
    data_dir: PathBuf,
    /// The Macs' address: MDM, SCEP, enrollment (/enroll) and agent routes only. Macs reach it, often
    /// from the internet.
    #[arg(long, env = "ESCROWD_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The admins' address: admin API (with the NanoMDM-compatible /v1/...), /metrics and the web console;
    /// keep it private. `same` serves them on --listen too (an explicit opt-in, e.g. behind one reverse
    /// proxy).
    #[arg(
        long,
        env = "ESCROWD_ADMIN_LISTEN",
        value_name = "ADDR|same",
        default_value = "127.0.0.1:8444"
    )]
    admin_listen: server::AdminListen,
    /// Also trust device identity certificates issued by this CA (PEM file; repeatable), e.g. an external SCEP CA.
    #[arg(long = "device-ca", value_name = "PEM")]
    device_ca: Vec<PathBuf>,
    /// Database URL: sqlite:PATH (default: sqlite in the data directory) or postgres://user@host/db for scale-out.
    #[arg(
        long,
        env = "ESCROWD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,
    /// Serve plain HTTP instead of HTTPS: behind a TLS-terminating proxy, or for tests.
    #[arg(long)]
    http: bool,
    /// Accept a client certificate forwarded by a trusted proxy in this header (URL-escaped PEM as nginx's
    /// $ssl_client_escaped_cert, or RFC 9440 Client-Cert). Needs --trusted-proxy; read only on an --http
    /// listener unless --trusted-cert-header-on-tls. Only set this when a proxy you control sets it.
    #[arg(long, value_name = "HEADER")]
    trusted_cert_header: Option<String>,
    /// A proxy allowed to set --trusted-cert-header: an address or network, e.g. 127.0.0.1, 10.0.0.0/8 or
    /// fd00::/8. Repeatable; required with --trusted-cert-header. From any other peer the header is ignored
    /// (the request counts as carrying no forwarded certificate) and counted under
    /// GET /api/v1/auth-failures.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxy: Vec<server::proxy::Cidr>,
    /// Also read --trusted-cert-header on requests that arrive over TLS (a proxy that re-encrypts to
    /// escrowd). Off by default: the header is read only on a plain --http listener.
    #[arg(long)]
    trusted_cert_header_on_tls: bool,
    /// Static SCEP challenge password devices must put in their certificate request to get an identity
    /// certificate at /scep. Prefer the environment variable: arguments are visible to other local users.
    #[arg(long, env = "ESCROWD_SCEP_CHALLENGE", value_name = "SECRET", value_parser = parse_secret, hide_env_values = true)]
    scep_challenge: Option<vault::Secret<Vec<u8>>>,
    /// Lifetime in days of device identity certificates issued over SCEP.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    scep_validity_days: u32,
    /// Re-ask every Mac for its inventory (SecurityInfo, UserList, DeviceInformation) once its last request is
    /// this old: a number with s, m, h or d (e.g. 12h, 7d). 0 turns the schedule off; enrollment and
    /// Bootstrap Token escrow still queue inventory.
    #[arg(long, env = "ESCROWD_INVENTORY_INTERVAL", default_value = "24h", value_parser = parse_duration)]
    inventory_interval: std::time::Duration,
    /// At most this many Macs are asked per minute by the inventory schedule, oldest first.
    #[arg(long, env = "ESCROWD_INVENTORY_BATCH", default_value_t = server::app::DEFAULT_INVENTORY_BATCH,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    inventory_batch: u32,
    /// APNs endpoint pushes go to (HTTP/2 with the push certificate as client certificate). Change it only
    /// for a test stand-in or an egress proxy.
    #[arg(long, env = "ESCROWD_APNS_URL", value_name = "URL", default_value = server::apns::PRODUCTION_URL)]
    apns_url: String,
    /// Verify the APNs endpoint with this CA (PEM) instead of the system CA bundle.
    #[arg(long, value_name = "PEM")]
    apns_ca: Option<PathBuf>,
    /// Most pushes in flight at once (bulk pushes to a fleet are paced to this).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1000))]
    push_concurrency: u32,
    /// Base URL Macs reach this server at, written into enrollment profiles (ServerURL, CheckInURL, SCEP URL)
    /// and /enroll links, e.g. https://mdm.example.com. Default: the --listen address (the Macs' one).
    #[arg(long, env = "ESCROWD_PUBLIC_URL", value_name = "URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Close a connection that has not sent a whole request header this long after its first byte (or after
    /// connecting): slow clients cannot hold connections open. A number with s, m or h (e.g. 10s).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_positive_duration)]
    header_read_timeout: std::time::Duration,
    /// Close a keep-alive connection that has had no request in flight and no traffic for this long
    /// (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_positive_duration)]
    idle_timeout: std::time::Duration,
    /// Most connections open at once; one more is answered 503 with Retry-After (plain HTTP) or closed (TLS)
    /// right away. Keep it below the process's open-file limit (ulimit -n).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Most requests with a large body (over 256 KiB, or of unknown length) read at once; one more gets 503
    /// with Retry-After instead of being read, so greedy clients cannot exhaust memory.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_large_body_parses: u32,
    /// How long the one-time registration secret queued by `escrowd agent-install` works, counted from when
    /// the Mac acknowledges the InstallProfile carrying it (not from queueing): a number with s, m, h or d,
    /// at least 1m (e.g. 24h, 2d). A newer agent-install for the Mac revokes its unused older secrets.
    #[arg(long, env = "ESCROWD_AGENT_SECRET_TTL", value_name = "DURATION", default_value = "24h",
          value_parser = parse_agent_secret_ttl)]
    agent_secret_ttl: std::time::Duration,
    /// Renew each Mac's identity certificate this many days before it expires, the way Macs renew: escrowd
    /// re-sends the enrollment profile (InstallProfile) with a one-time SCEP challenge minted for that Mac.
    /// 0 turns automatic renewal off (`escrowd device renew-identity UDID` still works); without renewal every
    /// Mac drops off when its certificate expires (--scep-validity-days).
    #[arg(long, env = "ESCROWD_IDENTITY_RENEWAL_DAYS", default_value_t = service::renewal::DEFAULT_RENEWAL_DAYS,
          value_parser = clap::value_parser!(u32).range(0..=3650))]
    identity_renewal_days: u32,
    /// A Mac whose bound identity expired at most this many days ago may still check in, but only to receive
    /// its renewal profile; everything else it sends is refused. 0 = no grace.
    #[arg(long, env = "ESCROWD_IDENTITY_GRACE_DAYS", default_value_t = service::renewal::DEFAULT_GRACE_DAYS,
          value_parser = clap::value_parser!(u32).range(0..=365))]
    identity_grace_days: u32,
    /// At most this many renewal profiles are queued per pass of the renewal schedule (every 10 minutes).
    #[arg(long, env = "ESCROWD_IDENTITY_RENEWAL_BATCH", default_value_t = service::renewal::DEFAULT_RENEWAL_BATCH,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    identity_renewal_batch: u32,
    /// Neither record metrics nor serve `GET /metrics` (Prometheus text for a read-scope API key: requests,
    /// check-ins by message and outcome, pushes, command queue depth, database pool).
    #[arg(long, env = "ESCROWD_NO_METRICS")]
    no_metrics: bool,
}

/// Like `parse_duration`, but zero is refused.
fn parse_positive_duration(value: &str) -> Result<std::time::Duration, String> {
    match parse_duration(value)? {
        d if d.is_zero() => Err("must be longer than zero, e.g. 10s".into()),
        d => Ok(d),
    }
}

/// A `parse_duration` of at least a minute.
fn parse_agent_secret_ttl(value: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(value)?;
    if d < std::time::Duration::from_secs(60) {
        return Err(format!(
            "'{value}' is too short: the agent needs at least 1m to register (e.g. 24h)"
        ));
    }
    Ok(d)
}

/// `90s`, `30m`, `12h`, `7d`, or `0`.
fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    let value = value.trim();
    if value == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = digits.parse().map_err(|_| {
        format!("'{value}' is not a duration: use a number with s, m, h or d, e.g. 24h")
    })?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => {
            return Err(format!(
                "'{value}' has no unit: use s, m, h or d, e.g. 24h (or 0 to disable)"
            ));
        }
    }
    .filter(|s| *s <= 365 * 86_400)
    .ok_or_else(|| format!("'{value}' is too long: at most 365d"))?;
    Ok(std::time::Duration::from_secs(secs))
}

fn parse_public_url(value: &str) -> Result<String, String> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && !value.contains(['?', '#', ' '])
        && value.len() <= 512;
    if ok {
        Ok(value.trim_end_matches('/').to_string())
    } else {
        Err("must be an http(s) URL without query or fragment, e.g. https://mdm.example.com".into())
    }
}

fn parse_secret(value: &str) -> Result<vault::Secret<Vec<u8>>, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(vault::Secret::new(value.as_bytes().to_vec()))
}

/// mimalloc instead of glibc's malloc: a check-in makes many small, short-lived allocations (HTTP, plist,
/// CMS), and glibc's malloc/free paths were about 9 % of the server's CPU under Idle polls.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ESCROWD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Keys(cmd) => keys::run(cmd).await,
        Command::Sim(args) => sim_cmd::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Apikey(cmd) => apikey::run(cmd).await,
        Command::Admin(cmd) => console_admin::run(cmd).await,
        Command::Devices(a) => admin::devices(a).await,
        Command::Device(mut a) => match a.action.take() {
            Some(action) => identity::run(action).await,
            None => match a.detail() {
                Some(detail) => admin::device(detail).await,
                None => Err(anyhow::anyhow!(
                    "name a device: escrowd device UDID (or see escrowd device --help)"
                )),
            },
        },
        Command::Commands(a) => admin::commands(a).await,
        Command::Users(a) => admin::users(a).await,
        Command::Events(a) => admin::events(a).await,
        Command::Groups(c) => admin::groups(c).await,
        Command::Enqueue(a) => admin::command(a).await,
        Command::Push(a) => admin::push(a).await,
        Command::Report(a) => admin::report(a).await,
        Command::Action(c) => actions::run(c).await,
        Command::AgentInstall(a) => actions::install(a).await,
        Command::PushCert(c) => push_cert::run(c).await,
        Command::EnrollToken(c) => enroll::enroll_token(c).await,
        Command::Profile(a) => enroll::profile(a).await,
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let opts =
        server::ServeOptions {
            data_dir: args.data_dir,
            listen: args.listen,
            admin_listen: args.admin_listen,
            device_cas: args.device_ca,
            database: args.database,
            http: args.http,
            trusted_cert_header: args.trusted_cert_header,
            trusted_proxies: args.trusted_proxy,
            trusted_cert_header_on_tls: args.trusted_cert_header_on_tls,
            scep_challenge: args.scep_challenge,
            scep_validity_days: args.scep_validity_days,
            inventory_interval: args.inventory_interval,
            inventory_batch: args.inventory_batch,
            public_url: args.public_url,
            limits: server::listener::Limits {
                header_read_timeout: args.header_read_timeout,
                idle_timeout: args.idle_timeout,
                max_connections: args.max_connections as usize,
                max_large_body_parses: args.max_large_body_parses as usize,
            },
            agent_secret_ttl: args.agent_secret_ttl,
            clock: service::SharedClock::default(),
            identity_renewal_days: args.identity_renewal_days,
            identity_grace_days: args.identity_grace_days,
            identity_renewal_batch: args.identity_renewal_batch,
            metrics: !args.no_metrics,
            apns: server::apns::ApnsSettings {
                url: args.apns_url,
                concurrency: args.push_concurrency as usize,
                ca_pem: match &args.apns_ca {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("reading --apns-ca {}: {e}", path.display())
                    })?),
                    None => None,
                },
                ..Default::default()
            },
        };
    let running = server::start(opts).await?;
    eprintln!(
        "escrowd listening on {} for Macs (MDM, SCEP, enrollment, agent)",
        running.base_url()
    );
    eprintln!(
        "escrowd listening on {} for admins (API, /metrics, console){} (Ctrl-C to stop)",
        running.admin_url(),
        if running.admin_addr == running.local_addr {
            ", the same address (--admin-listen same)"
        } else {
            ""
        }
    );
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_positive_duration};
    use std::time::Duration;

    #[test]
    fn agent_secret_ttl_takes_units_and_refuses_less_than_a_minute() {
        assert_eq!(
            super::parse_agent_secret_ttl("24h"),
            Ok(Duration::from_secs(86_400))
        );
        assert_eq!(
            super::parse_agent_secret_ttl("1m"),
            Ok(Duration::from_secs(60))
        );
        for bad in ["0", "59s", "soon", "-1h"] {
            assert!(super::parse_agent_secret_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inventory_interval_takes_units_and_refuses_garbage() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in [
            "",
            "h",
            "24",
            "24x",
            "-1h",
            "1.5h",
            "99999999999999999999d",
            "366d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn edge_timeouts_must_be_longer_than_zero() {
        assert_eq!(parse_positive_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_positive_duration("5m"), Ok(Duration::from_secs(300)));
        for bad in ["0", "0s", "10", "-1s", ""] {
            assert!(parse_positive_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
