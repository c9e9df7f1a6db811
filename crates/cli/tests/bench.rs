//! `escrowd bench` end to end: a few devices, about a second per workload, against a real escrowd (and
//! NanoMDM too when ESCROWD_BENCH_NANOMDM names its binary).

use service::apikeys::Actor;
use store::ApiScope;
use testkit::TestServer;

fn escrowd() -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
}

/// `escrowd bench` against `ts` with the test server's device CA, a two-key pool in `dir`, 3 devices, 3
/// connections, this process's pid as the server's, and an operate key in the environment (also returned).
async fn bench_against(
    ts: &TestServer,
    dir: &std::path::Path,
) -> (tokio::process::Command, String) {
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key("bench", ApiScope::Operate, &Actor::offline("test"))
        .await
        .unwrap();
    let ca = ts.device_ca().unwrap();
    let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    std::fs::write(&ca_cert, ca.cert_pem().unwrap()).unwrap();
    std::fs::write(&ca_key, ca.key_pem().unwrap().expose()).unwrap();
    let pid = std::process::id().to_string();
    let mut cmd = escrowd();
    cmd.args(["bench", "--server", &ts.base_url(), "--json"])
        .args(["--admin-server", &ts.admin_url()])
        .arg("--device-ca-cert")
        .arg(&ca_cert)
        .arg("--device-ca-key")
        .arg(&ca_key)
        .arg("--key-pool")
        .arg(dir.join("pool"))
        .args([
            "--key-pool-size",
            "2",
            "--devices",
            "3",
            "--concurrency",
            "3",
        ])
        .args(["--server-pid", &pid])
        .env("ESCROWD_API_KEY", key.expose());
    (cmd, key.expose().to_string())
}

// The benchmark runs as a child process; the server needs worker threads of its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_without_errors_and_the_json_has_the_fields() {
    let ts = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let (mut cmd, key) = bench_against(&ts, dir.path()).await;
    cmd.args(["--duration", "1", "--presign", "30"])
        .args(["--workload", "idle,get,set,enroll,commands,idle=2+get"]);
    let peer = std::env::var_os("ESCROWD_BENCH_NANOMDM");
    if let Some(p) = &peer {
        cmd.arg("--peer-nanomdm").arg(p);
    }
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    let targets = if peer.is_some() { 2 } else { 1 };
    assert_eq!(results.len(), 6 * targets, "{report:#}");
    for r in results {
        assert_eq!(r["errors"], serde_json::json!({}), "{r:#}");
        assert!(r["ok"].as_u64().unwrap() > 0, "{r:#}");
        assert_eq!(r["ok"], r["requests"]);
        assert!(r["throughput_rps"].as_f64().unwrap() > 0.0);
        for p in ["p50", "p95", "p99", "max", "mean"] {
            assert!(r["latency_ms"][p].as_f64().unwrap() > 0.0, "{p} in {r:#}");
        }
        assert!(r["generator"]["cpu_percent"].is_number(), "{r:#}");
        // The server runs in this test process, whose pid was given.
        if r["target"] == "escrowd" {
            assert!(r["server"]["rss_mb"].as_f64().unwrap() > 0.0, "{r:#}");
        }
    }
    let by = |w: &str| {
        results
            .iter()
            .find(|r| r["workload"] == w && r["target"] == "escrowd")
            .unwrap_or_else(|| panic!("no {w} in {report:#}"))
    };
    // 30 pre-signed bodies: a 1 s window may use them up; it must then say so rather than replay them.
    let set = by("set");
    assert!(set["ok"].as_u64().unwrap() <= 30);
    if set["ok"].as_u64().unwrap() == 30 {
        assert!(set["ended_early"].as_str().unwrap().contains("used up"));
    }
    // Enrollments: two requests each, at most 15 pre-signed.
    assert!(by("enroll")["ok"].as_u64().unwrap() <= 30);
    // Commands: 10 per device queued; each round trip is the Idle poll plus one acknowledgement each.
    assert!(by("commands")["ok"].as_u64().unwrap() <= 33);
    by("idle=2+get=1");
    assert_eq!(report["setup"]["key_pool_size"], 2);
    assert!(report["machine"]["nproc"].as_u64().unwrap() >= 1);
    assert!(report["machine"]["kernel"].is_string());
    assert!(report["setup"]["signatures"].as_u64().unwrap() > 0);
    assert_eq!(
        report["ratios"].as_array().unwrap().len(),
        6 * (targets - 1)
    );
    // The pool was cached for the next run, privately.
    use std::os::unix::fs::PermissionsExt;
    let files: Vec<_> = std::fs::read_dir(&pool).unwrap().collect();
    assert_eq!(files.len(), 2);
    for f in files {
        let mode = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // No secret in the output.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(key.as_str()) && !stderr.contains(key.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_windows_keep_to_their_schedule_and_stand_beside_the_full_speed_one() {
    let ts = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // --paced: each workload runs at full speed, then at half the throughput it reached.
    let (mut cmd, _) = bench_against(&ts, dir.path()).await;
    cmd.args(["--duration", "1", "--workload", "idle", "--paced", "0.5"]);
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{report:#}");
    let (full, paced) = (&results[0], &results[1]);
    assert_eq!(full["workload"], "idle");
    assert!(full["paced_rps"].is_null());
    assert_eq!(paced["workload"], "idle @50%");
    let peak = full["throughput_rps"].as_f64().unwrap();
    let rate = paced["paced_rps"].as_f64().unwrap();
    // The same number, give or take the last bit of its trip through JSON.
    let want = (peak * 0.5).max(1.0);
    assert!((rate - want).abs() <= want * 1e-9, "{rate} vs {want}");
    // Tickets are due every 1/rate s and none is sent after the window: at most rate × 1 s (+1) requests.
    let sent = paced["requests"].as_f64().unwrap();
    assert!(
        sent > 0.0 && sent <= rate + 1.0,
        "{sent} requests at {rate}/s"
    );
    assert_eq!(paced["errors"], serde_json::json!({}), "{paced:#}");
    // Paced windows are not compared with another server's peak.
    assert_eq!(report["ratios"], serde_json::json!([]));

    // --rate: every window at a fixed rate.
    let (mut cmd, _) = bench_against(&ts, dir.path()).await;
    cmd.args(["--duration", "1", "--workload", "get", "--rate", "20"]);
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get = &report["results"][0];
    assert_eq!(get["paced_rps"], 20.0);
    let sent = get["requests"].as_u64().unwrap();
    assert!((1..=21).contains(&sent), "{get:#}");
    assert_eq!(get["ok"], get["requests"], "{get:#}");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_work_and_help_teaches() {
    for (args, want) in [
        (&["--devices", "0"][..], "--devices must be at least 1"),
        (&["--workload", "idle,storm"][..], "unknown workload"),
        (&["--server", "ftp://example"][..], "http://"),
        (&["--workload", "set,idle+set"][..], "once per bench run"),
        (&["--paced", "1.5"][..], "--paced must be a fraction"),
        (&["--rate", "0"][..], "--rate must be a positive"),
        (
            &["--rate", "10", "--paced", "0.5"][..],
            "cannot be used with",
        ),
    ] {
        let out = escrowd()
            .arg("bench")
            .args(args)
            .args(["--data-dir", "/nonexistent"])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let help = escrowd().args(["bench", "--help"]).output().await.unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--server",
        "--admin-server",
        "--workload",
        "--peer-nanomdm",
        "--server-pid",
        "--key-pool",
        "Examples",
    ] {
        assert!(help.contains(flag), "{flag} missing in {help}");
    }
}
