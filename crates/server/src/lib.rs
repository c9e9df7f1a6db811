//! server: the HTTP edge of escrowd (axum) and the wiring that starts it.
//!
//! Everything about HTTP lives here: routes, body caps, TLS and client certificates, status codes. Business
//! rules live in `service`; this crate maps `service::ErrorKind` to status codes and nothing more.

pub mod agent;
pub mod api;
pub mod apns;
pub mod app;
pub mod console;
pub mod datadir;
pub mod device_ca;
pub mod enroll;
pub mod listener;
pub mod mdm;
pub mod metrics;
pub mod profile_signer;
pub mod proxy;
pub mod scep;
pub mod schedule;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use service::MdmService;

pub use app::{AdminListen, RunningServer, ServeOptions, start};

/// State shared by every handler: one [`AppShared`] behind an `Arc`. axum clones the state for every request,
/// and cloning the fields themselves (the service's dozen `Arc`s, two `String`s) showed in the check-in's
/// profile; this is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    pub fn new(shared: AppShared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;
    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// What every handler reads ([`AppState`]).
pub struct AppShared {
    pub mdm: MdmService,
    /// Header a trusted TLS-terminating proxy puts the client certificate in; None = never read one.
    pub trusted_cert_header: Option<String>,
    /// Peers whose `trusted_cert_header` is honoured (`--trusted-proxy`); from anyone else it is ignored.
    pub trusted_proxies: Arc<Vec<proxy::Cidr>>,
    /// Also honour the header on requests that came over TLS (`--trusted-cert-header-on-tls`).
    pub trusted_cert_header_on_tls: bool,
    /// How to reach APNs; a new push certificate builds its provider from this.
    pub apns: Arc<apns::ApnsSettings>,
    /// Base URL devices reach this server at (`--public-url`), for enrollment profiles.
    pub public_url: String,
    /// Permits for reading a large request body (`--max-large-body-parses`).
    pub large_bodies: Arc<tokio::sync::Semaphore>,
    /// The process's metrics recorder; None with `ServeOptions::metrics` off (`GET /metrics` answers 404 and
    /// requests are not timed).
    pub metrics: Option<metrics::Metrics>,
}

/// Body size cap on device endpoints; bigger bodies get 413 before they are read whole.
pub const MAX_DEVICE_BODY: usize = protocol::guard::DEFAULT_MAX_BODY;

/// The routes Macs use: MDM check-in and commands, SCEP, enrollment and the agent. Served on `--listen`, the
/// address Macs reach (often from the internet).
fn device_routes() -> Router<AppState> {
    let mdm = Router::new()
        .route("/mdm/checkin", put(mdm::checkin))
        .route("/mdm/connect", put(mdm::connect))
        .route("/mdm", put(mdm::dispatch))
        .layer(DefaultBodyLimit::max(MAX_DEVICE_BODY));
    Router::new()
        .merge(mdm)
        .merge(
            Router::new()
                .route("/scep", get(scep::scep).post(scep::scep))
                .layer(DefaultBodyLimit::max(scep::MAX_SCEP_BODY)),
        )
        .merge(agent::router())
        .route("/enroll", get(enroll::enroll))
}

/// The routes admins use: the admin API (with the NanoMDM-compatible `/v1/...`), `/metrics` and the web
/// console. Served on `--admin-listen`, a private address.
fn admin_routes() -> Router<AppState> {
    Router::new().merge(api::router()).merge(console::router())
}

/// The Macs' listener: device routes and `/healthz`; an admin route answers 404 here.
pub fn device_router(state: AppState) -> Router {
    finish(device_routes(), state)
}

/// The admin listener: admin API, `/metrics`, console and `/healthz`; a device route answers 404 here.
pub fn admin_router(state: AppState) -> Router {
    finish(admin_routes(), state)
}

/// Every route on one listener: only for `--admin-listen same` (an explicit opt-in, e.g. behind one reverse
/// proxy that splits by path itself).
pub fn combined_router(state: AppState) -> Router {
    finish(device_routes().merge(admin_routes()), state)
}

/// The layers both listeners share: `/healthz`, the large-body limiter, request metrics and tracing.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let app = routes
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.large_bodies.clone(),
            limit_large_bodies,
        ));
    // Layered per route, so the matched route template is known to it; outside the large-body limiter so
    // its 503s are counted too.
    let app = if state.metrics.is_some() {
        app.layer(axum::middleware::from_fn(metrics::track_requests))
    } else {
        app
    };
    app.layer(axum::Extension(state))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                // The default span records the whole URI; its query can hold secrets (`/enroll?token=…`),
                // so only the method and path are kept.
                |req: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                },
            ),
        )
}

/// A request whose body is over [`listener::LARGE_BODY_BYTES`] (or of unknown length) is read only with one
/// of the large-body permits; without a free one it gets 503 with Retry-After and its body is never read.
async fn limit_large_bodies(
    axum::extract::State(permits): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = req.headers();
    let large = match headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(length) => length > listener::LARGE_BODY_BYTES,
        None => headers.contains_key(http::header::TRANSFER_ENCODING),
    };
    if !large {
        return next.run(req).await;
    }
    match permits.try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(_) => {
            tracing::debug!("large request refused: --max-large-body-parses reached");
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                [(http::header::RETRY_AFTER, "1")],
                "busy: too many large requests at once; retry shortly\n",
            )
                .into_response()
        }
    }
}
