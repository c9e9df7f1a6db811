//! `escrowd bench`: a load generator for Apple MDM servers (escrowd, and NanoMDM side by side).
//!
//! M virtual devices share a small cached pool of RSA-2048 keys (`sim::keypool`), each with its own UDID and
//! certificate from a device CA the server trusts. Every request body is built and signed (Mdm-Signature:
//! detached CMS, SHA-1, no signed attributes, like Macs) before the timed windows; setup that needs the
//! server's answers (enrolling, draining queued commands, setting the token Get will fetch, queueing
//! commands) happens outside them too. Each window runs one workload at a fixed concurrency for a fixed
//! duration over keep-alive connections, round-robin over the `--server` instances.
//!
//! Guarantees: bad input (unknown workload, zero devices, a non-http URL) is refused before any work; the
//! report holds counts, latencies and process figures only, never tokens, keys or the API key.

mod markdown;
mod peer;
mod report;
mod setup;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use report::BenchReport;
use workload::{Endpoints, Kind, Workload};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Server base URL (plain HTTP; `escrowd serve --http`). Repeat for several instances: requests go
    /// round-robin over them.
    #[arg(
        long = "server",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    servers: Vec<String>,
    /// The server's admin listener (plain HTTP; `escrowd serve --admin-listen`), where the commands workload
    /// queues its commands through the NanoMDM-compatible API. The default is `escrowd serve --http`'s.
    #[arg(
        long = "admin-server",
        value_name = "URL",
        env = "ESCROWD_ADMIN_SERVER",
        default_value = "http://127.0.0.1:8444"
    )]
    admin_server: String,
    /// Workloads to run, in order, comma-separated or repeated: idle, get, set, enroll, commands, mixed, or a
    /// mix like idle=8+get=2.
    #[arg(
        long = "workload",
        value_name = "W",
        value_delimiter = ',',
        default_value = "idle,get,set"
    )]
    workloads: Vec<String>,
    /// Virtual devices enrolled before the windows.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of each timed window, in seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    duration: f64,
    /// How many fresh bodies a consuming workload gets (set: SetBootstrapTokens; enroll: enrollments;
    /// commands: acknowledgements). A window that uses them up ends early and says so.
    #[arg(long, value_name = "N", default_value_t = 20000)]
    presign: usize,
    /// The server's data directory: its development device CA is read from it.
    #[arg(long, env = "ESCROWD_DATA_DIR", default_value = "escrowd-data")]
    data_dir: PathBuf,
    /// The server's database when it is not the SQLite file in --data-dir (PostgreSQL: the URL the server was
    /// started with), where the device CA is read from.
    #[arg(
        long,
        env = "ESCROWD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,
    /// Device CA certificate (PEM), instead of the one in --data-dir.
    #[arg(long, value_name = "PEM", requires = "device_ca_key")]
    device_ca_cert: Option<PathBuf>,
    /// Device CA private key (PEM), instead of the one in --data-dir.
    #[arg(long, value_name = "PEM", requires = "device_ca_cert")]
    device_ca_key: Option<PathBuf>,
    /// Where the shared RSA keys are cached (default: $XDG_CACHE_HOME/escrowd/keypool).
    #[arg(long, value_name = "DIR", env = "ESCROWD_KEY_POOL")]
    key_pool: Option<PathBuf>,
    /// How many RSA-2048 keys the devices share.
    #[arg(long, value_name = "N", default_value_t = sim::keypool::DEFAULT_POOL_SIZE)]
    key_pool_size: usize,
    /// An API key of scope operate (or admin), for the commands workload (sent as Basic nanomdm:KEY).
    #[arg(long, env = "ESCROWD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The server's process id(s), to report its CPU and memory from /proc (repeat per instance).
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    /// A NanoMDM binary: start it with the same device CA and run every workload against both servers.
    #[arg(long, value_name = "PATH")]
    peer_nanomdm: Option<PathBuf>,
    /// Send at most RPS requests per second in all (every window), on a fixed schedule. Latency then counts
    /// from when each request was due, not when a connection was free, so a stall shows in it in full.
    #[arg(long, value_name = "RPS", conflicts_with = "paced")]
    rate: Option<f64>,
    /// After each full-speed window, run the workload again at FRACTION of the throughput it reached
    /// (0.5: latency at half of peak), reported as `<workload> @50%`; paced as with --rate.
    #[arg(long, value_name = "FRACTION")]
    paced: Option<f64>,
    /// Print JSON instead of tables (no progress bar).
    #[arg(long)]
    json: bool,
    /// Also write the report as Markdown to FILE (tools/bench.sh writes BENCHMARKS.md this way).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// With --markdown: do not rewrite FILE, but put this run in it as a section titled TITLE, replacing the
    /// section of that title an earlier run wrote (tools/bench.sh adds its PostgreSQL runs this way).
    #[arg(long, value_name = "TITLE", requires = "markdown")]
    markdown_section: Option<String>,
}

pub const LONG_ABOUT: &str = "Measure an MDM server under signed check-in load. Enrolls --devices virtual \
Macs (RSA-2048 keys from a small cached pool, one certificate and UDID each, from the device CA in --data-dir \
or --device-ca-cert/--device-ca-key), signs every request body before the timed windows, then runs each \
--workload for --duration seconds at --concurrency: idle (signed Idle polls on /mdm/connect), get \
(GetBootstrapToken; a token is set first, untimed), set (SetBootstrapToken, a fresh token each), enroll \
(Authenticate + TokenUpdate of new devices), commands (ProfileList queued through the NanoMDM-compatible \
API /v1/enqueue on --admin-server, the admin listener, then fetched and acknowledged), or mixes such as idle=8+get=2. Reports successful requests \
per second, p50/p95/p99/max latency, errors by kind, server CPU and memory (--server-pid) and the \
generator's own CPU. With --peer-nanomdm it also starts NanoMDM with the same device CA and reports both \
and their ratio.\n\nExamples:\n  escrowd serve --http --listen 127.0.0.1:8080 --data-dir ./data & \n  \
escrowd bench --data-dir ./data --server-pid $! --workload get --devices 500 --duration 10\n  escrowd bench \
--data-dir ./data --workload idle,get,set,enroll --peer-nanomdm /usr/local/bin/nanomdm --json\n  escrowd bench \
--server http://10.0.0.1:8080 --server http://10.0.0.2:8080 --device-ca-cert ca.pem --device-ca-key ca.key \
--workload idle=8+get=2 --concurrency 64\n  ESCROWD_API_KEY=$(escrowd apikey create --data-dir ./data --scope \
operate --name bench --json | jq -r .key) escrowd bench --data-dir ./data --workload commands \
--admin-server http://127.0.0.1:8444\n\ntools/bench.sh \
runs the standard set against a fresh server (and NanoMDM) and rewrites BENCHMARKS.md.";

/// Bad input, found before any work.
pub fn validate(args: &BenchArgs) -> anyhow::Result<Vec<Workload>> {
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    if args.presign == 0 {
        bail!("--presign must be at least 1");
    }
    if args.key_pool_size == 0 {
        bail!("--key-pool-size must be at least 1");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of requests per second");
    }
    if args
        .paced
        .is_some_and(|f| !(f.is_finite() && f > 0.0 && f < 1.0))
    {
        bail!("--paced must be a fraction between 0 and 1 (0.5 for half of peak)");
    }
    if args.servers.is_empty() {
        bail!("give at least one --server URL");
    }
    for s in &args.servers {
        check_url("--server", s)?;
    }
    check_url("--admin-server", &args.admin_server)?;
    let workloads: Vec<Workload> = args
        .workloads
        .iter()
        .map(|w| workload::parse_workload(w).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    if workloads.is_empty() {
        bail!("give at least one --workload ({})", workload::WORKLOAD_HELP);
    }
    let count = |f: &dyn Fn(&Workload) -> bool| workloads.iter().filter(|w| f(w)).count();
    if count(&|w| w.uses(Kind::Set)) > 1
        || count(&|w| *w == Workload::Enroll) > 1
        || count(&|w| *w == Workload::Commands) > 1
    {
        bail!(
            "set (or a mix with set), enroll and commands may each run once per bench run: their pre-signed \
             bodies are sent once"
        );
    }
    if workloads.contains(&Workload::Commands) && args.api_key.is_none() {
        bail!(
            "the commands workload queues commands through the API: give --api-key (scope operate), e.g. from \
             `escrowd apikey create --scope operate --name bench`"
        );
    }
    Ok(workloads)
}

fn check_url(flag: &str, s: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(s).with_context(|| format!("{flag} {s:?} is not a URL"))?;
    if url.scheme() != "http" || url.host_str().is_none() {
        bail!(
            "{flag} must be an http:// URL with a host (got {s:?}); run the server with `escrowd serve --http` \
             or point the benchmark at the plain-HTTP side of your proxy"
        );
    }
    Ok(())
}

/// One server under test.
pub(crate) struct Target {
    pub name: &'static str,
    pub endpoints: Endpoints,
    /// Base URL of the API (escrowd's admin listener; NanoMDM's one listener).
    pub api_base: String,
    pub pids: Vec<u32>,
    pub api_key: Option<String>,
}

fn escrowd_target(args: &BenchArgs) -> anyhow::Result<Target> {
    let bases: Vec<String> = args
        .servers
        .iter()
        .map(|s| s.trim_end_matches('/').to_string())
        .collect();
    let urls = |path: &str| -> Vec<String> { bases.iter().map(|b| format!("{b}{path}")).collect() };
    Ok(Target {
        name: "escrowd",
        endpoints: Endpoints::parse(&urls("/mdm/checkin"), &urls("/mdm/connect"))?,
        api_base: args.admin_server.trim_end_matches('/').to_string(),
        pids: args.server_pids.clone(),
        api_key: args.api_key.clone(),
    })
}

fn nanomdm_target(p: &peer::NanoMdm) -> anyhow::Result<Target> {
    let mdm = [format!("{}/mdm", p.base_url)];
    Ok(Target {
        name: "nanomdm",
        endpoints: Endpoints::parse(&mdm, &mdm)?,
        api_base: p.base_url.clone(),
        pids: vec![p.pid()],
        api_key: Some(p.api_key.clone()),
    })
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    if let Some(path) = &args.markdown {
        let command = command_line(std::env::args());
        let md = match &args.markdown_section {
            None => markdown::render(&report, &command, &utc_date_now()),
            Some(title) => {
                let existing = match std::fs::read_to_string(path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                let section = markdown::render_section(&report, &command, &utc_date_now(), title);
                markdown::upsert_section(&existing, title, &section)
            }
        };
        std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print_table(&report);
    }
    let errors: u64 = report
        .results
        .iter()
        .map(|r| r.errors.values().sum::<u64>())
        .sum();
    if errors > 0 {
        bail!("{errors} requests failed (kinds above); check the server log");
    }
    Ok(())
}

/// The command line as recorded in BENCHMARKS.md: the API key hidden, a database URL's password hidden, and
/// every argument a shell would split quoted, so the line can be copied and run again.
fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut hide_next = false;
    let mut url_next = false;
    for (i, a) in args.enumerate() {
        if hide_next {
            out.push("…".into());
            hide_next = false;
        } else if url_next {
            out.push(shell_word(&without_password(&a)));
            url_next = false;
        } else if a == "--api-key" {
            out.push(a);
            hide_next = true;
        } else if a.starts_with("--api-key=") {
            out.push("--api-key=…".into());
        } else if a == "--database" {
            out.push(a);
            url_next = true;
        } else if let Some(url) = a.strip_prefix("--database=") {
            out.push(shell_word(&format!("--database={}", without_password(url))));
        } else if i == 0 {
            out.push("escrowd".into());
        } else {
            out.push(shell_word(&a));
        }
    }
    out.join(" ")
}

/// `url` with the password of its user info (`scheme://user:PASSWORD@host`) replaced by `…`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:…{}", &rest[at..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `word` as a POSIX shell reads it back: bare when it only has characters a shell leaves alone, else in single
/// quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%…".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Today's date in UTC, `YYYY-MM-DD HH:MM UTC`.
fn utc_date_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

fn utc_date(secs: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// Set up, run every workload against every target, and gather the report.
pub async fn measure(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    let workloads = validate(args)?;
    let mut machine = report::machine();
    let setup_started = Instant::now();
    let ca = setup::load_ca(args).await?;
    let pool_dir = match &args.key_pool {
        Some(d) => d.clone(),
        None => sim::keypool::default_dir().context(
            "no cache directory for the key pool ($XDG_CACHE_HOME and $HOME unset): give --key-pool DIR",
        )?,
    };
    let pool = open_key_pool(
        Some(pool_dir.as_path()),
        args.key_pool_size,
        sim::client::KeyKind::Rsa2048,
    )?;
    let keys_generated = pool.generated();
    let http = sim::client::http_client()?;
    let peer = match &args.peer_nanomdm {
        Some(path) => Some(peer::NanoMdm::start(path, &ca.cert_pem()?).await?),
        None => None,
    };
    let mut targets = vec![escrowd_target(args)?];
    if let Some(p) = &peer {
        targets.push(nanomdm_target(p)?);
    }
    let prepared = setup::Prepared::new(Arc::new(ca), Arc::new(pool), args, &workloads).await?;
    for t in &targets {
        prepared.enroll(&http, t, args.concurrency).await?;
    }
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for w in &workloads {
        for t in &targets {
            let full = window(args, &prepared, &http, t, w, args.rate).await?;
            let peak = full.throughput_rps;
            results.push(full);
            if let Some(fraction) = args.paced {
                if !w.repeatable() {
                    eprintln!(
                        "note: {} runs at full speed only: its signed requests are used up by one window",
                        w.name()
                    );
                    continue;
                }
                let rate = (peak * fraction).max(1.0);
                let mut paced = window(args, &prepared, &http, t, w, Some(rate)).await?;
                paced.workload = format!("{} @{:.0}%", paced.workload, fraction * 100.0);
                results.push(paced);
            }
        }
    }
    machine.load_at_end = report::load_average();
    let ratios = report::ratios(&results);
    Ok(BenchReport {
        machine,
        devices: args.devices,
        concurrency: args.concurrency,
        duration_s: args.duration,
        setup: report::Setup {
            key_pool_dir: pool_dir.display().to_string(),
            key_pool_size: args.key_pool_size,
            keys_generated,
            signatures: prepared.signatures(),
            setup_seconds,
        },
        results,
        ratios,
    })
}

/// One timed window of workload `w` against target `t`, at full speed or paced at `rate` requests/s.
async fn window(
    args: &BenchArgs,
    prepared: &setup::Prepared,
    http: &reqwest::Client,
    t: &Target,
    w: &Workload,
    rate: Option<f64>,
) -> anyhow::Result<report::WorkloadResult> {
    let plan = prepared.plan_for(http, t, w, args.concurrency).await?;
    let name = w.name();
    let done = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(args.duration);
    let bar = progress(args.json, t.name, &name, duration, done.clone());
    let latency_before = server_buckets(http, t).await;
    let (server_before, me_before) = (report::sample_all(&t.pids), report::sample(None));
    let window = workload::run_window(
        http.clone(),
        t.endpoints.clone(),
        plan,
        args.concurrency,
        duration,
        rate,
        done,
    )
    .await;
    let (server_after, me_after) = (report::sample_all(&t.pids), report::sample(None));
    let latency_after = server_buckets(http, t).await;
    bar.abort();
    let mut tally = window.tally;
    let requests = tally.requests();
    let secs = window.elapsed.as_secs_f64().max(1e-9);
    Ok(report::WorkloadResult {
        target: t.name.into(),
        workload: name,
        concurrency: args.concurrency,
        devices: args.devices,
        paced_rps: rate,
        elapsed_s: secs,
        requests,
        ok: tally.ok,
        throughput_rps: tally.ok as f64 / secs,
        latency_ms: report::latency(&mut tally.latencies_us),
        server_latency_ms: latency_before
            .zip(latency_after)
            .and_then(|(before, after)| report::server_latency(&before, &after)),
        errors: tally.errors,
        server: report::usage(server_before, server_after, window.elapsed, requests),
        generator: report::usage(me_before, me_after, window.elapsed, requests),
        ended_early: window.ended_early,
    })
}

/// escrowd's device-request duration histogram from its `GET /metrics` (admin listener, read scope: the API
/// key given for the commands workload serves). None for NanoMDM, without a key, or when it cannot be read:
/// the report then says nothing of the server's own latency rather than fail the run.
async fn server_buckets(
    http: &reqwest::Client,
    t: &Target,
) -> Option<std::collections::BTreeMap<u64, u64>> {
    if t.name != "escrowd" {
        return None;
    }
    let key = t.api_key.as_deref()?;
    let response = http
        .get(format!("{}/metrics", t.api_base))
        .bearer_auth(key)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(report::device_duration_buckets(
        &response.text().await.ok()?,
    ))
}

/// A progress bar over one window, updated ten times a second; hidden with `--json` or without a terminal.
fn progress(
    hidden: bool,
    target: &str,
    workload: &str,
    duration: Duration,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let total = duration.as_millis() as u64;
    let bar = crate::bulk::bar(
        total,
        hidden,
        "{prefix:28} {bar:40} {elapsed}/{duration} {msg}",
    );
    bar.set_prefix(format!("{target} {workload}"));
    let started = Instant::now();
    tokio::spawn(async move {
        let _finish = Finish(bar.clone());
        loop {
            let ms = started.elapsed().as_millis() as u64;
            let n = done.load(Ordering::Relaxed);
            bar.set_position(ms.min(total));
            bar.set_message(format!(
                "{n} requests ({:.0}/s)",
                n as f64 / started.elapsed().as_secs_f64().max(1e-3)
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Clears the bar when the ticker task is aborted.
struct Finish(indicatif::ProgressBar);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Open the shared key pool (`dir`, or the default cache directory), generating missing keys; used by
/// `escrowd sim` too.
pub fn open_key_pool(
    dir: Option<&std::path::Path>,
    size: usize,
    kind: sim::client::KeyKind,
) -> anyhow::Result<sim::keypool::KeyPool> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => sim::keypool::default_dir().context(
            "no cache directory for the key pool ($XDG_CACHE_HOME and $HOME unset): give --key-pool DIR",
        )?,
    };
    sim::keypool::KeyPool::open(&dir, size, kind).map_err(anyhow::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(extra.iter().copied()))
            .unwrap()
            .bench
    }

    #[test]
    fn bad_input_is_refused_with_a_clear_error() {
        let err = |a: &[&str]| validate(&args(a)).unwrap_err().to_string();
        assert!(err(&["--devices", "0"]).contains("--devices"));
        assert!(err(&["--workload", "idle,sett"]).contains("unknown workload"));
        assert!(err(&["--server", "https://x:1"]).contains("http://"));
        assert!(err(&["--server", "not a url"]).contains("not a URL"));
        assert!(
            err(&["--admin-server", "https://x:1"]).contains("--admin-server must be an http://")
        );
        assert!(err(&["--duration", "0"]).contains("--duration"));
        assert!(err(&["--concurrency", "0"]).contains("--concurrency"));
        assert!(err(&["--workload", "commands"]).contains("--api-key"));
        let ok = validate(&args(&[
            "--workload",
            "get,idle=3+set",
            "--workload",
            "enroll",
        ]))
        .unwrap();
        assert_eq!(
            ok.iter().map(Workload::name).collect::<Vec<_>>(),
            ["get", "idle=3+set=1", "enroll"]
        );
    }

    #[test]
    fn the_recorded_command_hides_the_api_key_and_dates_are_utc() {
        let argv = [
            "/x/escrowd",
            "bench",
            "--api-key",
            "s3cret",
            "--api-key=s3cret",
            "--json",
        ];
        let line = command_line(argv.iter().map(|s| s.to_string()));
        assert_eq!(line, "escrowd bench --api-key … --api-key=… --json");
        let argv = [
            "escrowd",
            "bench",
            "--database",
            "postgres://bench:pa55@db.example:5432/mdm?sslmode=require",
            "--database=postgres://u:p@h/d",
            "--database",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "--markdown-section",
            "PostgreSQL, two instances",
            "--workload",
            "idle=8+get=2",
        ];
        let line = command_line(argv.iter().map(|s| s.to_string()));
        assert_eq!(
            line,
            "escrowd bench --database 'postgres://bench:…@db.example:5432/mdm?sslmode=require' \
             --database=postgres://u:…@h/d --database postgres://postgres@127.0.0.1:5432/postgres \
             --markdown-section 'PostgreSQL, two instances' --workload idle=8+get=2"
        );
        assert!(!line.contains("pa55") && !line.contains(":p@"));
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(1_796_300_000), "2026-12-03 12:13 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn several_servers_make_round_robin_endpoints() {
        let a = args(&["--server", "http://a:1/", "--server", "http://b:2"]);
        let t = escrowd_target(&a).unwrap();
        let strings =
            |urls: &[reqwest::Url]| -> Vec<String> { urls.iter().map(|u| u.to_string()).collect() };
        assert_eq!(
            strings(&t.endpoints.checkin),
            ["http://a:1/mdm/checkin", "http://b:2/mdm/checkin"]
        );
        assert_eq!(
            strings(&t.endpoints.connect),
            ["http://a:1/mdm/connect", "http://b:2/mdm/connect"]
        );
    }

    #[test]
    fn a_server_that_is_not_a_url_is_refused_before_any_request() {
        let err = escrowd_target(&args(&["--server", "not a url"]))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("not a url") && err.contains("http://"),
            "{err}"
        );
    }
}
