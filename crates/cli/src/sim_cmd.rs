//! `escrowd sim`: run a fleet of virtual Macs against a server (demo and load generator).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use comfy_table::Table;
use sim::fleet::{self, FleetConfig, Summary};

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Server base URL (plain HTTP: start the server with `escrowd serve --http`).
    #[arg(
        long,
        env = "ESCROWD_SIM_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// How many virtual Macs to run.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// How many Macs talk to the server at the same time.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Scenario mix: `all`, or names with optional weights, e.g. `s1=5,s4=2,s8`. Scenarios: s1 (first admin
    /// login escrows, mobile account gets a token), s4 (managed admin escrows at first login), s5 (10.15 mobile
    /// account), s6 (10.14, no Bootstrap Token), s7 (standard user takes the first token), s8 (no token
    /// holder), s9 (10.12, no Secure Tokens).
    #[arg(long, default_value = "all")]
    mix: String,
    /// The server's data directory: its development device CA is read (key sealed in the database).
    #[arg(long, env = "ESCROWD_DATA_DIR", default_value = "escrowd-data")]
    data_dir: PathBuf,
    /// Device CA certificate (PEM), instead of the one in --data-dir.
    #[arg(long, value_name = "PEM", requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// Device CA private key (PEM), instead of the one in --data-dir.
    #[arg(long, value_name = "PEM", requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Device key type: rsa (2048, what SCEP gives real Macs) or ec (P-256, much faster to generate for big
    /// runs). Keys are generated before the timed phase either way.
    #[arg(long, value_enum, default_value_t = KeyType::Rsa)]
    key_type: KeyType,
    /// Where the shared device keys are cached (PEM, mode 0600) and reused across runs; each Mac still gets
    /// its own UDID and certificate. Default: $XDG_CACHE_HOME/escrowd/keypool (or ~/.cache/escrowd/keypool).
    #[arg(long, value_name = "DIR", env = "ESCROWD_KEY_POOL")]
    key_pool: Option<PathBuf>,
    /// How many keys the pool holds (Macs share them round-robin).
    #[arg(long, value_name = "N", default_value_t = sim::keypool::DEFAULT_POOL_SIZE)]
    key_pool_size: usize,
    /// Generate a fresh key for every Mac instead of using the key pool (slow for RSA).
    #[arg(long, conflicts_with = "key_pool")]
    fresh_keys: bool,
    /// Enroll every Mac the real way with this enrollment token (`escrowd enroll-token create --group G
    /// --uses N`): /enroll → signed profile → SCEP → Authenticate. Without it, Macs get identities straight
    /// from the device CA. The token must allow --count uses; the group decides whether Macs escrow.
    #[arg(
        long,
        env = "ESCROWD_SIM_ENROLL_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    enroll_token: Option<String>,
    /// The server's profile-signing certificate (default: DATA_DIR/profile-signing.pem).
    #[arg(long, value_name = "PEM", requires = "enroll_token")]
    profile_signer: Option<PathBuf>,
    /// Print JSON instead of a table (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KeyType {
    Rsa,
    Ec,
}

pub const LONG_ABOUT: &str = "Run N virtual Macs against an escrowd server. Each Mac gets an identity \
certificate from the server's development device CA, enrolls (Authenticate, TokenUpdate), polls the command \
channel, and plays a scenario from docs/scenarios.md: users are created and log in, and macOS's Secure Token and \
Bootstrap Token rules decide when the Mac sends SetBootstrapToken and GetBootstrapToken. Ends with a summary: \
enrolled, escrowed, users with a Secure Token, requests, latency percentiles, failures by reason. Throughput and \
latency cover the protocol phase only; identity keys are generated first.\n\nExamples:\n  \
escrowd serve --http --listen 127.0.0.1:8080 --data-dir ./data &\n  escrowd sim --data-dir ./data --count 50\n  \
escrowd sim --server http://mdm.internal:8080 --ca-cert ca.pem --ca-key ca.key --count 200 --concurrency 32 \
--mix s1=5,s4=2,s8 --key-type ec --json\n  escrowd sim --data-dir ./data --count 20 --enroll-token \"$(escrowd enroll-token \
create --group Lab --uses 20 --json | jq -r .token)\"   # enroll via profile + SCEP";

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let mix = fleet::parse_mix(&args.mix).map_err(anyhow::Error::msg)?;
    if args.count == 0 {
        anyhow::bail!("--count must be at least 1");
    }
    let enroll_link = match &args.enroll_token {
        Some(token) => {
            let path = args.profile_signer.clone().unwrap_or_else(|| {
                server::datadir::DataDir::new(&args.data_dir).profile_signing_cert()
            });
            let pem = std::fs::read(&path).with_context(|| {
                format!(
                    "reading the profile-signing certificate {} (give --profile-signer or --data-dir)",
                    path.display()
                )
            })?;
            let signer = pki::DeviceIdentityVerifier::load_pem_bundle(&pem)
                .ok()
                .and_then(|certs| certs.into_iter().next())
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            Some(fleet::EnrollLink {
                token: token.clone(),
                signer,
            })
        }
        None => None,
    };
    let ca = match (&args.ca_cert, &args.ca_key) {
        // Link enrollment gets identities over SCEP; a throwaway CA satisfies the fleet's signature.
        _ if enroll_link.is_some() => pki::ca::CertificateAuthority::generate("unused")?,
        (Some(cert_path), Some(key_path)) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("reading the device CA at {}", p.display()))
            };
            pki::ca::CertificateAuthority::from_pem(&read(cert_path)?, &read(key_path)?)
                .context("loading the device CA")?
        }
        // The server keeps its CA key sealed in its database: open it read-only from the data directory.
        _ => server::device_ca::load_existing(&args.data_dir, None)
            .await
            .with_context(|| {
                format!(
                    "loading the device CA from the data directory {} (or give --ca-cert and --ca-key)",
                    args.data_dir.display()
                )
            })?,
    };
    if !args.server.starts_with("http://") {
        anyhow::bail!(
            "--server must be an http:// URL (got {}); run the server with `escrowd serve --http` or point the \
             simulator at the plain-HTTP side of your proxy",
            args.server
        );
    }
    let key_kind = match args.key_type {
        KeyType::Rsa => sim::client::KeyKind::Rsa2048,
        KeyType::Ec => sim::client::KeyKind::EcP256,
    };
    let key_pool = if args.fresh_keys || enroll_link.is_some() {
        None
    } else {
        Some(Arc::new(crate::bench::open_key_pool(
            args.key_pool.as_deref(),
            args.key_pool_size,
            key_kind,
        )?))
    };
    let bar = crate::bulk::bar(
        args.count as u64,
        args.json,
        "{msg:24} {bar:40} {pos}/{len} ({per_sec}, {eta})",
    );
    bar.set_message("issuing identities");
    let config = FleetConfig {
        server: args.server.clone(),
        count: args.count,
        concurrency: args.concurrency,
        mix,
        udid_prefix: run_prefix(),
        enroll_link,
        key_kind,
        key_pool,
    };
    let progress = bar.clone();
    let run = fleet::run(
        config,
        Arc::new(ca),
        Arc::new(move |p: fleet::Progress<'_>| match p {
            fleet::Progress::IdentityIssued => progress.inc(1),
            fleet::Progress::ProtocolStarted => {
                progress.reset();
                progress.set_message("virtual Macs");
            }
            fleet::Progress::Finished(o) => {
                if o.failure.is_some() {
                    progress.set_message("virtual Macs (failures)");
                }
                progress.inc(1);
            }
        }),
    )
    .await;
    let summary = fleet::summarize(&run.outcomes, run.protocol_elapsed);
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary, &args.server);
    }
    if summary.failed_macs > 0 {
        anyhow::bail!(
            "{} of {} virtual Macs failed (reasons above); check the server log (ESCROWD_LOG=debug)",
            summary.failed_macs,
            summary.macs
        );
    }
    Ok(())
}

/// A UDID prefix unique to this run, so runs against one server do not collide.
fn run_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("SIM-{:X}-{:X}", nanos, std::process::id())
}

fn print_table(s: &Summary, server: &str) {
    let mut t = Table::new();
    t.set_header(vec!["virtual Macs", server]);
    let mix: Vec<String> = s
        .by_scenario
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    let rows: Vec<(&str, String)> = vec![
        ("Macs", s.macs.to_string()),
        ("scenarios", mix.join(" ")),
        ("enrolled", s.enrolled.to_string()),
        ("Bootstrap Token escrowed", s.escrowed.to_string()),
        (
            "users with a Secure Token",
            s.users_with_secure_token.to_string(),
        ),
        ("requests", s.requests.to_string()),
        ("elapsed", format!("{:.2} s", s.elapsed_ms as f64 / 1000.0)),
        (
            "throughput",
            format!("{:.0} requests/s", s.requests_per_second),
        ),
        (
            "latency p50 / p90 / p99 / max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} ms",
                s.latency_ms.p50, s.latency_ms.p90, s.latency_ms.p99, s.latency_ms.max
            ),
        ),
        ("failed Macs", s.failed_macs.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    println!("{t}");
    if !s.failures_by_reason.is_empty() {
        let mut f = Table::new();
        f.set_header(vec!["failure", "Macs"]);
        for (reason, n) in &s.failures_by_reason {
            f.add_row(vec![reason.clone(), n.to_string()]);
        }
        println!("{f}");
    }
}
