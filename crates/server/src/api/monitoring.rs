//! `GET /metrics` for Prometheus, on the admin listener (`--admin-listen`) and behind a read-scope key like
//! the rest of the admin API: the admin address is private, but a key still says who may read it. The
//! handler and the recorder are in `crate::metrics`.

use axum::routing::get;
use store::ApiScope;

use super::schema::{described, string};
use super::{Api, Body};

pub(super) fn routes(api: Api) -> Api {
    api.route(
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition format 0.0.4): requests, check-ins, pushes, queue depth, database pool.",
        Some(ApiScope::Read),
        get(crate::metrics::scrape),
    )
    .response(
        200,
        Body::Media(
            "text/plain",
            described(string(), "Prometheus text exposition, version 0.0.4"),
        ),
    )
}
