//! `GET /api/v1/auth-failures`: refused unauthenticated requests, counted per kind, source and hour (issue 11)
//! instead of stored one event each, so the admin still sees who is knocking.

use apitypes as t;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use store::{ApiScope, AuthFailureCount, AuthFailureFilter};

use super::devices::bad_query;
use super::views::ok;
use super::{Api, error, service_error};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    api.route("GET", "/api/v1/auth-failures", "Refused unauthenticated requests, counted per kind, source and hour instead of one event each: device check-ins claiming a known Mac that failed authentication (auth.failed), agent signature failures (agent.auth_failed), SCEP refusals (scep.refused), /enroll refusals (enroll.refused), forwarded certificate headers from peers that are not --trusted-proxy (edge.forwarded_cert_untrusted). Newest hour first. Filters: kind, source (an IPv4 address, an IPv6 /64 like 2001:db8:1:2::/64, unknown, or other for sources beyond the in-memory cap), since (unix ms, hour start); limit (1-1000, default 100).", Some(ApiScope::Read), get(list))
        .answer::<t::AuthFailures>(200)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFailuresQuery {
    kind: Option<String>,
    source: Option<String>,
    since: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(s): State<AppState>,
    q: Result<Query<AuthFailuresQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 255);
    if too_long(&q.kind) || too_long(&q.source) {
        return error(
            StatusCode::BAD_REQUEST,
            "kind and source must be 1 to 255 characters",
        );
    }
    let limit = match q.limit {
        Some(l) if l == 0 || l > 1000 => {
            return error(StatusCode::BAD_REQUEST, "limit must be 1-1000");
        }
        Some(l) => l,
        None => 100,
    };
    let filter = AuthFailureFilter {
        kind: q.kind,
        source: q.source,
        since: q.since,
        limit,
    };
    match s.mdm.admin_auth_failures(&filter).await {
        Ok(rows) => ok(&t::AuthFailures {
            auth_failures: rows.iter().map(view).collect(),
        }),
        Err(e) => service_error(e),
    }
}

fn view(c: &AuthFailureCount) -> t::AuthFailureCount {
    t::AuthFailureCount {
        kind: c.kind.clone(),
        source: c.source.clone(),
        hour: c.bucket,
        count: c.count,
        first_at: c.first_at,
        last_at: c.last_at,
        detail: c.detail.clone(),
    }
}
