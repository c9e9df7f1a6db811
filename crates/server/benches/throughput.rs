//! Throughput of the signed check-in path under concurrency: N clients (default 32) replay pre-signed
//! GetBootstrapToken, SetBootstrapToken (a fresh token each) and Idle polls for T seconds (default 5) against a
//! real in-process server on SQLite on disk (the test server's temporary data directory), or on PostgreSQL
//! with `ESCROWD_TEST_BACKEND=postgres`. Every body is signed before the timed window, so the figures are the
//! server's cost plus the HTTP client's, not signing. Prints requests/s and p50/p99/max latency per workload.
//!
//! Run: `cargo bench -p server --bench throughput --locked`
//! Knobs: `BENCH_CLIENTS` (32), `BENCH_SECS` (5), `BENCH_ONLY` (`get`, `set` or `idle`: one workload),
//! `BENCH_RATE` (requests/s cap over all clients, to measure latency below peak; unset = as fast as possible).

use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::device::{CHECKIN, CONNECT};
use testkit::{TestDevice, TestServer, messages};

/// One pre-signed request.
struct Signed {
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    signature: String,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per client for a workload: the same request again, or (Set) a pool of distinct tokens.
fn presign(mac: &TestDevice, workload: &str, n: usize) -> Vec<Signed> {
    let one = |path, content_type, body: Vec<u8>| Signed {
        path,
        content_type,
        signature: mac.signature(&body).expect("sign"),
        body,
    };
    match workload {
        "get" => vec![one(
            "/mdm/checkin",
            CHECKIN,
            messages::get_bootstrap_token(&mac.udid, None),
        )],
        "idle" => vec![one(
            "/mdm/connect",
            CONNECT,
            messages::report(&mac.udid, "Idle", None, plist::Dictionary::new()),
        )],
        "set" => (0..n)
            .map(|i| {
                let mut token = vec![0x5a_u8; 64];
                token[..8].copy_from_slice(&(i as u64).to_be_bytes());
                token[8..16].copy_from_slice(&(mac.udid.len() as u64).to_be_bytes());
                one(
                    "/mdm/checkin",
                    CHECKIN,
                    messages::set_bootstrap_token(&mac.udid, Some(&token), None),
                )
            })
            .collect(),
        other => panic!("unknown workload {other}"),
    }
}

struct Outcome {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u64>,
}

async fn run(
    macs: &[Arc<TestDevice>],
    requests: Vec<Arc<Vec<Signed>>>,
    secs: u64,
    rate: Option<u64>,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let per_client_gap = rate.map(|r| Duration::from_secs_f64(macs.len() as f64 / r as f64));
    let mut tasks = Vec::new();
    for (mac, reqs) in macs.iter().cloned().zip(requests) {
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                ok: 0,
                failed: 0,
                latencies_us: Vec::new(),
            };
            let mut i = 0usize;
            let mut next = Instant::now();
            while Instant::now() < deadline {
                if let Some(gap) = per_client_gap {
                    tokio::time::sleep_until(next.into()).await;
                    next += gap;
                }
                let r = &reqs[i % reqs.len()];
                i += 1;
                let start = Instant::now();
                let reply = mac
                    .put_raw(r.path, r.content_type, r.body.clone(), Some(&r.signature))
                    .await;
                out.latencies_us.push(start.elapsed().as_micros() as u64);
                match reply {
                    Ok(reply) if reply.status == 200 => out.ok += 1,
                    _ => out.failed += 1,
                }
            }
            out
        }));
    }
    let mut all = Outcome {
        ok: 0,
        failed: 0,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        let o = t.await.expect("client task");
        all.ok += o.ok;
        all.failed += o.failed;
        all.latencies_us.extend(o.latencies_us);
    }
    all
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, picks workloads by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let clients = env_num("BENCH_CLIENTS", 32) as usize;
    let secs = env_num("BENCH_SECS", 5);
    let rate = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok());
    let only = std::env::var("BENCH_ONLY").ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ts = TestServer::start().await.expect("server");
        let mut macs = Vec::new();
        for n in 0..clients {
            let mac = ts.new_device(&format!("UDID-TP-{n:04}")).expect("device");
            mac.enroll().await.expect("enroll");
            let token = [0x11_u8; 64];
            let r = mac.set_bootstrap_token(Some(&token)).await.expect("set");
            assert_eq!(r.status, 200, "initial SetBootstrapToken");
            macs.push(Arc::new(mac));
        }
        let backend = ts.store().backend();
        println!(
            "throughput: {clients} clients, {secs} s each, backend {backend}, data {}",
            ts.opts.data_dir.display()
        );
        for workload in ["get", "idle", "set"] {
            if only.as_deref().is_some_and(|o| o != workload)
                || (!filter.is_empty() && !filter.iter().any(|f| workload.contains(f.as_str())))
            {
                continue;
            }
            let requests = macs
                .iter()
                .map(|m| Arc::new(presign(m, workload, 64)))
                .collect();
            let start = Instant::now();
            let mut out = run(&macs, requests, secs, rate).await;
            let elapsed = start.elapsed().as_secs_f64();
            out.latencies_us.sort_unstable();
            println!(
                "{workload:>5}: {:>8.0} req/s  ok {:>7}  failed {:>5}  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
                out.ok as f64 / elapsed,
                out.ok,
                out.failed,
                percentile(&out.latencies_us, 0.50),
                percentile(&out.latencies_us, 0.99),
                percentile(&out.latencies_us, 1.0),
            );
        }
        ts.stop().await;
    });
}
