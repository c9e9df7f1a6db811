//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of what escrowd records through the `metrics`
//! facade -- HTTP requests by matched route, check-in messages by type and outcome (`service::telemetry`),
//! APNs pushes, agent polls, the store's group-commit batches -- plus gauges read at scrape time (command queue
//! depth, database pool).
//!
//! One recorder per process: the facade has a single global recorder, and `service`/`store` record through
//! its macros, so a per-server recorder would miss everything they count. [`Metrics::install`] installs it
//! once (every later server of the process shares it, as tests do) and starts one upkeep thread, so histogram
//! samples are folded into buckets even when nobody scrapes. Counters therefore add up over every server in the
//! process; a scrape's gauges are the scraping server's.
//!
//! Guarantees: label values are static strings or matched route templates (`/api/v1/devices/{id}`), never a
//! raw path, UDID, fingerprint, token or key; latencies are histograms with fixed buckets, not summaries.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Counter `{route, status}`.
pub const HTTP_REQUESTS: &str = "escrowd_http_requests_total";
/// Histogram `{route}`, seconds until the response head is ready.
pub const HTTP_DURATION: &str = "escrowd_http_request_duration_seconds";
/// Counter `{outcome}`: APNs pushes by final outcome (`sent`, `rejected`, `gave_up`, `failed`).
pub const PUSH_TOTAL: &str = "escrowd_push_total";
/// Counter: APNs attempts that were retried (429/500/503, timeouts, broken connections).
pub const PUSH_RETRIES: &str = "escrowd_push_retries_total";
/// Counter `{outcome}`: agent polls (`actions`, `empty`, `error`).
pub const AGENT_POLLS: &str = "escrowd_agent_polls_total";
/// Gauge `{status}` (`pending`, `notnow`), read at scrape.
pub const QUEUE_DEPTH: &str = "escrowd_command_queue_depth";
/// Gauges read at scrape: open connections, idle ones, and the pool's cap.
pub const DB_POOL_SIZE: &str = "escrowd_db_pool_connections";
pub const DB_POOL_IDLE: &str = "escrowd_db_pool_idle_connections";
pub const DB_POOL_MAX: &str = "escrowd_db_pool_max_connections";
/// Counters read at scrape from the store's group-commit writer (SQLite; absent on PostgreSQL): batches
/// committed, writes in them (writes / batches = mean batch size), seconds spent in `COMMIT`, and batches by
/// size class (`max_writes`: 1, 3, 7, 15, 31, 63, +Inf).
pub const STORE_BATCHES: &str = "escrowd_store_batches_total";
pub const STORE_BATCHED_WRITES: &str = "escrowd_store_batched_writes_total";
pub const STORE_COMMIT_SECONDS: &str = "escrowd_store_commit_seconds_total";
pub const STORE_BATCHES_BY_SIZE: &str = "escrowd_store_batches_by_size_total";
const BATCH_SIZE_CLASSES: [&str; 7] = ["1", "3", "7", "15", "31", "63", "+Inf"];
/// Batches by how long their `COMMIT` took (`max_ms`: 1, 2.5, 5, 10, 25, 50, +Inf; each batch in one class,
/// not cumulative, like the size classes): a stall of the writer holds every write waiting behind it.
pub const STORE_COMMITS_BY_DURATION: &str = "escrowd_store_commits_by_duration_total";
const COMMIT_DURATION_CLASSES: [&str; 7] = ["1", "2.5", "5", "10", "25", "50", "+Inf"];

/// The `route` label of a request no route matched (a 404 from the fallback).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 0.5 ms to 5 s, roughly 1-2.5-5 per decade.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// How often histogram samples are folded into buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's Prometheus handle.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

static INSTALLED: OnceLock<Option<Metrics>> = OnceLock::new();

impl Metrics {
    /// The process-wide recorder, installed on first call. None if another recorder was installed first
    /// (an embedding program's): then `/metrics` answers 404 rather than an empty or partial page.
    pub fn install() -> Option<Metrics> {
        INSTALLED
            .get_or_init(|| {
                let recorder = builder().build_recorder();
                let handle = recorder.handle();
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!(
                        "another metrics recorder is already installed; GET /metrics is disabled"
                    );
                    return None;
                }
                describe();
                let upkeep = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = spawned {
                    // Scrapes still fold samples in; only an unscraped server keeps them longer.
                    tracing::warn!(error = %e, "metrics upkeep thread could not start");
                }
                Some(Metrics { handle })
            })
            .clone()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .expect("the bucket list is constant and non-empty")
}

/// HELP lines for everything recorded here and in `service`/`store`.
fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by matched route and status"
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (head ready), by matched route"
    );
    metrics::describe_counter!(
        service::telemetry::CHECKIN_TOTAL,
        "Check-in messages and command reports, by MessageType or Status and outcome"
    );
    metrics::describe_histogram!(
        service::telemetry::CHECKIN_DURATION,
        Unit::Seconds,
        "Time to handle a check-in message or command report, by MessageType or Status"
    );
    metrics::describe_counter!(PUSH_TOTAL, "APNs pushes, by final outcome");
    metrics::describe_counter!(PUSH_RETRIES, "APNs attempts retried");
    metrics::describe_counter!(AGENT_POLLS, "Agent action polls, by outcome");
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        "Queued MDM commands not yet finished, by status"
    );
    metrics::describe_gauge!(DB_POOL_SIZE, "Open database connections");
    metrics::describe_gauge!(DB_POOL_IDLE, "Idle database connections");
    metrics::describe_gauge!(DB_POOL_MAX, "Most database connections the pool opens");
    metrics::describe_counter!(STORE_BATCHES, "Group-commit batches committed (SQLite)");
    metrics::describe_counter!(
        STORE_BATCHED_WRITES,
        "Write transactions committed in group-commit batches (SQLite)"
    );
    metrics::describe_gauge!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time spent committing group-commit batches (SQLite)"
    );
    metrics::describe_counter!(
        STORE_BATCHES_BY_SIZE,
        "Group-commit batches by size class (max_writes = most writes in the batch)"
    );
}

/// Middleware: count and time every request by its matched route (or [`UNMATCHED_ROUTE`]).
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => UNMATCHED_ROUTE.to_owned(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_str().to_owned();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` (read scope, checked by the API's auth layer): refresh the scrape-time gauges, render.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let Some(metrics) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are off on this server\n").into_response();
    };
    let store = state.mdm.store();
    let pool = store.pool_stats();
    metrics::gauge!(DB_POOL_SIZE).set(pool.size);
    metrics::gauge!(DB_POOL_IDLE).set(pool.idle);
    metrics::gauge!(DB_POOL_MAX).set(pool.max);
    if let Some(stats) = store.write_batches() {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        metrics::counter!(STORE_BATCHES).absolute(get(&stats.batches));
        metrics::counter!(STORE_BATCHED_WRITES).absolute(get(&stats.jobs));
        // A gauge because the facade's counters are integers; it only ever grows.
        metrics::gauge!(STORE_COMMIT_SECONDS).set(get(&stats.commit_nanos) as f64 / 1e9);
        for (class, n) in BATCH_SIZE_CLASSES.iter().zip(&stats.size_buckets) {
            metrics::counter!(STORE_BATCHES_BY_SIZE, "max_writes" => *class).absolute(get(n));
        }
        for (class, n) in COMMIT_DURATION_CLASSES.iter().zip(&stats.commit_buckets) {
            metrics::counter!(STORE_COMMITS_BY_DURATION, "max_ms" => *class).absolute(get(n));
        }
    }
    match store.queue_depth().await {
        Ok(depth) => {
            metrics::gauge!(QUEUE_DEPTH, "status" => "pending").set(depth.pending as f64);
            metrics::gauge!(QUEUE_DEPTH, "status" => "notnow").set(depth.not_now as f64);
        }
        // The rest is still worth serving; the stale gauge keeps its last value.
        Err(e) => tracing::warn!(error = %e, "command queue depth unavailable for /metrics"),
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()).into_response()
}

/// Count one agent poll.
pub fn agent_poll(outcome: &'static str) {
    metrics::counter!(AGENT_POLLS, "outcome" => outcome).increment(1);
}

/// Count one push's final outcome.
pub fn push(outcome: &'static str) {
    metrics::counter!(PUSH_TOTAL, "outcome" => outcome).increment(1);
}

/// Count one retried push attempt.
pub fn push_retry() {
    metrics::counter!(PUSH_RETRIES).increment(1);
}
