//! What `escrowd bench` measures and prints: latency percentiles, errors by kind, CPU and RSS of a process
//! from /proc, the machine, and the table or JSON.
//!
//! Guarantees: percentiles are nearest-rank over every completed request (none sampled away); a process
//! whose /proc entry cannot be read reports `None`, never a made-up zero; nothing here sees request bodies.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::Table;
use serde::Serialize;

/// Linux reports /proc/PID/stat times in USER_HZ ticks, fixed at 100 by the kernel ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentiles of latencies given in microseconds (sorted in place). Empty: all zero.
pub fn latency(us: &mut [u32]) -> Latency {
    if us.is_empty() {
        return Latency::default();
    }
    us.sort_unstable();
    let rank = |p: f64| {
        let r = ((p / 100.0) * us.len() as f64).ceil() as usize;
        f64::from(us[r.clamp(1, us.len()) - 1]) / 1000.0
    };
    let sum: u64 = us.iter().map(|&v| u64::from(v)).sum();
    Latency {
        p50: rank(50.0),
        p95: rank(95.0),
        p99: rank(99.0),
        max: f64::from(us[us.len() - 1]) / 1000.0,
        mean: sum as f64 / us.len() as f64 / 1000.0,
    }
}

/// The server's own latency over one window: how long escrowd took from a device request's head to its
/// response's head (`escrowd_http_request_duration_seconds` on `/mdm/…` routes in its `GET /metrics`), read
/// before and after the window. Percentiles are interpolated within the histogram's buckets, as Prometheus's
/// `histogram_quantile` does, so they are estimates bounded by the buckets (…, 2.5, 5, 10, 25 ms, …); the
/// difference from the generator's figures is time outside escrowd's handler: the connection, the kernel, and
/// on a shared machine the two processes waiting for each other's CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerLatency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Device requests the server answered in the window (all of them, not only the generator's).
    pub requests: u64,
}

const DEVICE_DURATION_BUCKET: &str = "escrowd_http_request_duration_seconds_bucket{";

/// Cumulative bucket counts of the device routes' request durations in a Prometheus text exposition, summed
/// over routes: upper bound in nanoseconds (`u64::MAX` for `+Inf`) → count. Lines it cannot read are skipped.
pub fn device_duration_buckets(exposition: &str) -> BTreeMap<u64, u64> {
    let mut buckets = BTreeMap::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(DEVICE_DURATION_BUCKET) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                kv.strip_prefix(name)
                    .and_then(|v| v.strip_prefix("=\""))
                    .and_then(|v| v.strip_suffix('"'))
            })
        };
        if !label("route").is_some_and(|r| r.starts_with("/mdm/")) {
            continue;
        }
        let bound = match label("le") {
            Some("+Inf") => u64::MAX,
            Some(le) => match le.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => (s * 1e9).round() as u64,
                _ => continue,
            },
            None => continue,
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        *buckets.entry(bound).or_insert(0) += count.max(0.0) as u64;
    }
    buckets
}

/// The window's percentiles from the cumulative buckets read `before` and `after` it; None when no device
/// request was answered in between (or the histogram was not there).
pub fn server_latency(
    before: &BTreeMap<u64, u64>,
    after: &BTreeMap<u64, u64>,
) -> Option<ServerLatency> {
    let window: Vec<(u64, u64)> = after
        .iter()
        .map(|(&bound, &n)| {
            (
                bound,
                n.saturating_sub(before.get(&bound).copied().unwrap_or(0)),
            )
        })
        .collect();
    let total = window.last().map(|&(_, n)| n).filter(|&n| n > 0)?;
    let quantile = |q: f64| {
        let rank = q * total as f64;
        let mut lower = (0u64, 0u64);
        for &(bound, n) in &window {
            if n as f64 >= rank {
                if bound == u64::MAX {
                    // Beyond the last finite bucket: that bound is all a histogram can say.
                    return lower.0 as f64 / 1e6;
                }
                let inside = (n - lower.1) as f64;
                let fraction = if inside > 0.0 {
                    (rank - lower.1 as f64) / inside
                } else {
                    1.0
                };
                return (lower.0 as f64 + (bound - lower.0) as f64 * fraction) / 1e6;
            }
            lower = (bound, n);
        }
        lower.0 as f64 / 1e6
    };
    Some(ServerLatency {
        p50: quantile(0.50),
        p95: quantile(0.95),
        p99: quantile(0.99),
        requests: total,
    })
}

/// One reading of a process: CPU time used so far, resident and peak resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
}

/// CPU seconds (user + system) from the text of /proc/PID/stat.
pub fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// A `Vm…:   123 kB` value from the text of /proc/PID/status.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Read process `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".into(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    Some(ProcSample {
        cpu_seconds: parse_stat_cpu(&stat)?,
        rss_kb: parse_status_kb(&status, "VmRSS")?,
        peak_rss_kb: parse_status_kb(&status, "VmHWM").unwrap_or(0),
    })
}

/// Several processes (e.g. instances) summed; `None` when any cannot be read or none are given.
pub fn sample_all(pids: &[u32]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    let mut total = ProcSample {
        cpu_seconds: 0.0,
        rss_kb: 0,
        peak_rss_kb: 0,
    };
    for &p in pids {
        let s = sample(Some(p))?;
        total.cpu_seconds += s.cpu_seconds;
        total.rss_kb += s.rss_kb;
        total.peak_rss_kb += s.peak_rss_kb;
    }
    Some(total)
}

/// What a process used during a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// Percent of one core (200 = both cores of a 2-core machine).
    pub cpu_percent: f64,
    /// CPU microseconds per completed request.
    pub cpu_us_per_request: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
}

pub fn usage(
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    elapsed: Duration,
    requests: u64,
) -> Option<Usage> {
    let (b, a) = (before?, after?);
    let cpu = (a.cpu_seconds - b.cpu_seconds).max(0.0);
    let secs = elapsed.as_secs_f64().max(1e-9);
    Some(Usage {
        cpu_seconds: cpu,
        cpu_percent: cpu / secs * 100.0,
        cpu_us_per_request: if requests == 0 {
            0.0
        } else {
            cpu * 1e6 / requests as f64
        },
        rss_mb: a.rss_kb as f64 / 1024.0,
        peak_rss_mb: a.peak_rss_kb as f64 / 1024.0,
    })
}

/// One workload against one target.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub target: String,
    pub workload: String,
    pub concurrency: usize,
    pub devices: usize,
    /// The fixed request rate of a paced window (`--rate`, `--paced`); `None` at full speed.
    pub paced_rps: Option<f64>,
    pub elapsed_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second (errors excluded).
    pub throughput_rps: f64,
    pub latency_ms: Latency,
    /// escrowd's own latency over the window from its `/metrics` (needs an API key); `None` for NanoMDM or when
    /// the metrics could not be read.
    pub server_latency_ms: Option<ServerLatency>,
    /// The server's processes (`--server-pid`, or the spawned NanoMDM); `None` when not visible.
    pub server: Option<Usage>,
    /// This load generator itself, over the same window.
    pub generator: Option<Usage>,
    /// Why the window ended before `--duration` (pre-signed bodies used up, every command delivered).
    pub ended_early: Option<String>,
}

/// escrowd's throughput over NanoMDM's for one workload.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ratio {
    pub workload: String,
    pub escrowd_rps: f64,
    pub nanomdm_rps: f64,
    /// escrowd ÷ NanoMDM (above 1: escrowd is faster).
    pub ratio: f64,
}

/// Pair each escrowd result with NanoMDM's for the same workload.
pub fn ratios(results: &[WorkloadResult]) -> Vec<Ratio> {
    let find = |target: &str, w: &str| {
        results
            .iter()
            .find(|r| r.target == target && r.workload == w)
    };
    let mut out = Vec::new();
    // Paced windows run each server at a fraction of its own peak, so their throughputs are not compared.
    for r in results
        .iter()
        .filter(|r| r.target == "escrowd" && r.paced_rps.is_none())
    {
        if let Some(n) = find("nanomdm", &r.workload)
            && n.throughput_rps > 0.0
        {
            out.push(Ratio {
                workload: r.workload.clone(),
                escrowd_rps: r.throughput_rps,
                nanomdm_rps: n.throughput_rps,
                ratio: r.throughput_rps / n.throughput_rps,
            });
        }
    }
    out
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// /proc/loadavg's 1-minute figure when the run started and ended (other work on the box).
    pub load_at_start: Option<f64>,
    pub load_at_end: Option<f64>,
}

pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        kernel,
        load_at_start: load_average(),
        load_at_end: None,
    }
}

/// Untimed work done before the windows.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub key_pool_dir: String,
    pub key_pool_size: usize,
    pub keys_generated: usize,
    pub signatures: u64,
    pub setup_seconds: f64,
}

/// Everything one `escrowd bench` run reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub devices: usize,
    pub concurrency: usize,
    pub duration_s: f64,
    pub setup: Setup,
    pub results: Vec<WorkloadResult>,
    pub ratios: Vec<Ratio>,
}

fn opt_usage(u: &Option<Usage>, f: impl Fn(&Usage) -> String) -> String {
    u.as_ref().map_or_else(|| "-".into(), f)
}

pub fn print_table(r: &BenchReport) {
    let mut t = Table::new();
    t.set_header(vec![
        "target",
        "workload",
        "ok req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "server p99 ms",
        "errors",
        "server CPU",
        "server RSS",
        "generator CPU",
    ]);
    for w in &r.results {
        let errors: Vec<String> = w.errors.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        t.add_row(vec![
            w.target.clone(),
            w.workload.clone(),
            format!("{:.0}", w.throughput_rps),
            format!("{:.2}", w.latency_ms.p50),
            format!("{:.2}", w.latency_ms.p95),
            format!("{:.2}", w.latency_ms.p99),
            format!("{:.2}", w.latency_ms.max),
            w.server_latency_ms
                .map_or_else(|| "-".into(), |l| format!("{:.2}", l.p99)),
            if errors.is_empty() {
                "0".into()
            } else {
                errors.join(" ")
            },
            opt_usage(&w.server, |u| {
                format!("{:.0}% ({:.0} µs/req)", u.cpu_percent, u.cpu_us_per_request)
            }),
            opt_usage(&w.server, |u| format!("{:.0} MB", u.rss_mb)),
            opt_usage(&w.generator, |u| {
                format!("{:.0}% ({:.0} µs/req)", u.cpu_percent, u.cpu_us_per_request)
            }),
        ]);
    }
    println!("{t}");
    for w in r.results.iter().filter(|w| w.ended_early.is_some()) {
        if let Some(why) = &w.ended_early {
            println!(
                "{} {}: ended after {:.1} s: {why}",
                w.target, w.workload, w.elapsed_s
            );
        }
    }
    if !r.ratios.is_empty() {
        let mut t = Table::new();
        t.set_header(vec![
            "workload",
            "escrowd req/s",
            "NanoMDM req/s",
            "escrowd ÷ NanoMDM",
        ]);
        for x in &r.ratios {
            t.add_row(vec![
                x.workload.clone(),
                format!("{:.0}", x.escrowd_rps),
                format!("{:.0}", x.nanomdm_rps),
                format!("{:.2}×", x.ratio),
            ]);
        }
        println!("{t}");
    }
    println!(
        "{} devices, concurrency {}, {} CPUs ({}), load {:.2} → {:.2}; setup (untimed) {:.1} s, {} signatures, key pool {} keys ({} generated)",
        r.devices,
        r.concurrency,
        r.machine.nproc,
        r.machine.cpu_model,
        r.machine.load_at_start.unwrap_or(f64::NAN),
        r.machine.load_at_end.unwrap_or(f64::NAN),
        r.setup.setup_seconds,
        r.setup.signatures,
        r.setup.key_pool_size,
        r.setup.keys_generated,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "# TYPE escrowd_http_request_duration_seconds histogram
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/checkin\",le=\"0.001\"} 50
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/checkin\",le=\"0.01\"} 90
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/checkin\",le=\"+Inf\"} 100
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/connect\",le=\"0.001\"} 0
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/connect\",le=\"0.01\"} 0
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/connect\",le=\"+Inf\"} 0
escrowd_http_request_duration_seconds_bucket{route=\"/v1/devices\",le=\"0.001\"} 7
escrowd_http_request_duration_seconds_bucket{route=\"/v1/devices\",le=\"+Inf\"} 7
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/checkin\",le=\"nonsense\"} 9
escrowd_http_request_duration_seconds_bucket{route=\"/mdm/checkin\",le=\"0.5\"} many
escrowd_http_request_duration_seconds_sum{route=\"/mdm/checkin\"} 0.5
";

    #[test]
    fn device_buckets_sum_device_routes_and_skip_what_they_cannot_read() {
        let b = device_duration_buckets(EXPOSITION);
        assert_eq!(
            b.into_iter().collect::<Vec<_>>(),
            [(1_000_000, 50), (10_000_000, 90), (u64::MAX, 100)],
            "the API route, the unreadable bound and the unreadable count are left out"
        );
        assert!(device_duration_buckets("").is_empty());
        assert!(
            device_duration_buckets("escrowd_http_request_duration_seconds_bucket{route")
                .is_empty()
        );
    }

    #[test]
    fn server_percentiles_are_interpolated_within_the_window_buckets() {
        let before = BTreeMap::from([(1_000_000, 10), (10_000_000, 10), (u64::MAX, 10)]);
        let after = device_duration_buckets(EXPOSITION);
        let l = server_latency(&before, &after).unwrap();
        // 90 in the window: 40 under 1 ms, 40 in 1–10 ms, 10 above 10 ms.
        assert_eq!(l.requests, 90);
        assert!(
            (l.p50 - (1.0 + 9.0 * (45.0 - 40.0) / 40.0)).abs() < 1e-9,
            "{l:?}"
        );
        assert_eq!(l.p95, 10.0, "beyond the last finite bucket: its bound");
        assert_eq!(l.p99, 10.0);
        assert!(
            server_latency(&after, &after).is_none(),
            "no request in the window"
        );
        assert!(server_latency(&BTreeMap::new(), &BTreeMap::new()).is_none());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut us: Vec<u32> = (1..=100).rev().map(|v| v * 1000).collect();
        let l = latency(&mut us);
        assert_eq!((l.p50, l.p95, l.p99, l.max), (50.0, 95.0, 99.0, 100.0));
        assert!((l.mean - 50.5).abs() < 1e-9);
        let mut one = vec![2500];
        let l = latency(&mut one);
        assert_eq!((l.p50, l.p99, l.max), (2.5, 2.5, 2.5));
        assert_eq!(latency(&mut []), Latency::default());
    }

    #[test]
    fn reads_cpu_and_memory_from_proc_text() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (escrowd (x) y) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 8 0 100 200 300";
        assert_eq!(parse_stat_cpu(stat), Some(4.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
        let status = "Name:\tescrowd\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
        // This process is always readable.
        let me = sample(None).unwrap();
        assert!(me.rss_kb > 0);
        assert!(sample_all(&[]).is_none());
    }

    #[test]
    fn usage_over_a_window_and_ratios_pair_targets_by_workload() {
        let b = ProcSample {
            cpu_seconds: 1.0,
            rss_kb: 1024,
            peak_rss_kb: 2048,
        };
        let a = ProcSample {
            cpu_seconds: 3.0,
            rss_kb: 4096,
            peak_rss_kb: 8192,
        };
        let u = usage(Some(b), Some(a), Duration::from_secs(4), 1000).unwrap();
        assert_eq!(u.cpu_percent, 50.0);
        assert_eq!(u.cpu_us_per_request, 2000.0);
        assert_eq!((u.rss_mb, u.peak_rss_mb), (4.0, 8.0));
        assert!(usage(None, Some(a), Duration::from_secs(1), 1).is_none());
        let result = |target: &str, workload: &str, rps: f64| WorkloadResult {
            target: target.into(),
            workload: workload.into(),
            concurrency: 1,
            devices: 1,
            paced_rps: None,
            elapsed_s: 1.0,
            requests: 1,
            ok: 1,
            errors: BTreeMap::new(),
            throughput_rps: rps,
            latency_ms: Latency::default(),
            server_latency_ms: None,
            server: None,
            generator: None,
            ended_early: None,
        };
        let rs = vec![
            result("escrowd", "get", 3000.0),
            result("nanomdm", "get", 1500.0),
            result("escrowd", "idle", 100.0),
        ];
        assert_eq!(
            ratios(&rs),
            vec![Ratio {
                workload: "get".into(),
                escrowd_rps: 3000.0,
                nanomdm_rps: 1500.0,
                ratio: 2.0
            }]
        );
    }
}
