//! What a fleet run adds up to: counts per outcome and scenario, failure reasons, throughput and request
//! latency percentiles (no token bytes).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::MacOutcome;

/// Totals over a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub macs: usize,
    pub enrolled: usize,
    pub escrowed: usize,
    pub users_with_secure_token: usize,
    pub requests: u64,
    pub failed_macs: usize,
    pub failures_by_reason: BTreeMap<String, usize>,
    pub by_scenario: BTreeMap<String, usize>,
    pub elapsed_ms: u64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
}

/// Request latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn summarize(outcomes: &[MacOutcome], elapsed: Duration) -> Summary {
    let mut latencies: Vec<u64> = outcomes
        .iter()
        .flat_map(|o| o.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, latencies.len()) - 1;
        latencies[idx] as f64 / 1000.0
    };
    let requests: u64 = outcomes.iter().map(|o| o.requests).sum();
    let mut failures_by_reason = BTreeMap::new();
    let mut by_scenario = BTreeMap::new();
    for o in outcomes {
        *by_scenario
            .entry(o.scenario.name().to_string())
            .or_default() += 1;
        if let Some(r) = &o.failure {
            *failures_by_reason.entry(r.clone()).or_default() += 1;
        }
    }
    let secs = elapsed.as_secs_f64();
    Summary {
        macs: outcomes.len(),
        enrolled: outcomes.iter().filter(|o| o.enrolled).count(),
        escrowed: outcomes.iter().filter(|o| o.escrowed).count(),
        users_with_secure_token: outcomes.iter().map(|o| o.users_with_secure_token).sum(),
        requests,
        failed_macs: outcomes.iter().filter(|o| o.failure.is_some()).count(),
        failures_by_reason,
        by_scenario,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        requests_per_second: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        latency_ms: Latency {
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: pct(100.0),
        },
    }
}
