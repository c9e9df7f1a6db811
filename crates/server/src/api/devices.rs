//! Devices: list with filters, detail, users, events, diagnosis, command history, group membership, token
//! clear.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, put};
use serde::Deserialize;
use service::apikeys::Actor;
use service::status::BootstrapStatus;
use store::{ApiScope, DeviceFilter, EventFilter, Outcome};

use apitypes as t;

use super::views::ok;
use super::{Api, error, service_error, views};
use crate::AppState;

const READ: Option<ApiScope> = Some(ApiScope::Read);
const ADMIN: Option<ApiScope> = Some(ApiScope::Admin);

pub(super) fn routes(api: Api) -> Api {
    api.route("GET", "/api/v1/devices", "List devices. Filters: status (not_supported|not_escrowed|escrowed), apple_silicon, os_version (prefix like 14 or 14.5), group, escrowed_before/escrowed_after (unix ms), users_without_secure_token, include_checked_out; paging: after (last id of the previous page), limit (max 1000). Answer: {devices, next}.", READ, get(list))
        .answer::<t::DevicePage>(200)
        .route("GET", "/api/v1/devices/{id}", "One device: identity, OS, model, enrollment, Bootstrap Token status (never the token), Apple silicon flags, EACS preflight, FileVault; push: has_token, topic, token_refused {at, reason} when APNs refused the push token (pushes skipped until the next TokenUpdate).", READ, get(detail))
        .answer::<t::DeviceDetail>(200)
        .route("GET", "/api/v1/devices/{id}/users", "The device's users: MDM (UserList) and agent facts merged, each with source and time.", READ, get(users))
        .answer::<t::Users>(200)
        .route("GET", "/api/v1/devices/{id}/events", "The device's events, newest first. Filters: kind, outcome (success|failure|refused), since (unix ms); paging: before_id, limit.", READ, get(events))
        .answer::<t::EventPage>(200)
        .route("GET", "/api/v1/events", "Every event of the fleet (devices, admin actions, the server), newest first. Filters: subject (a UDID, server or unknown), kind, outcome (success|failure|refused), since (unix ms); paging: before_id, limit.", READ, get(fleet_events))
        .answer::<t::EventPage>(200)
        .route("GET", "/api/v1/devices/{id}/diagnosis", "Findings for the device, each with evidence and the fix.", READ, get(diagnosis))
        .answer::<t::Diagnosis>(200)
        .route("GET", "/api/v1/devices/{id}/commands", "Command history (queued and finished, with results), newest first; limit.", READ, get(commands))
        .answer::<t::Commands>(200)
        .route("PUT", "/api/v1/devices/{id}/group", "Set the device's group: {\"group_id\": \"…\" | null}. Audited.", ADMIN, put(set_group))
        .body::<t::SetGroup>()
        .answer::<t::GroupSet>(200)
        .route("DELETE", "/api/v1/devices/{id}/bootstrap-token", "Delete the escrowed Bootstrap Token. Audited. Answer: {cleared: bool}.", ADMIN, delete(clear_token))
        .answer::<t::TokenCleared>(200)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    apple_silicon: Option<bool>,
    os_version: Option<String>,
    group: Option<String>,
    escrowed_before: Option<i64>,
    escrowed_after: Option<i64>,
    users_without_secure_token: Option<bool>,
    #[serde(default)]
    include_checked_out: bool,
    after: Option<String>,
    limit: Option<u32>,
}

pub(super) fn bad_query(e: QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("bad query: {}", e.body_text()),
    )
}

pub(super) fn bad_json(e: JsonRejection) -> Response {
    error(e.status(), format!("bad JSON body: {}", e.body_text()))
}

fn check_limit(limit: Option<u32>) -> Result<u32, Response> {
    match limit {
        Some(l) if l == 0 || l > 1000 => {
            Err(error(StatusCode::BAD_REQUEST, "limit must be 1-1000"))
        }
        Some(l) => Ok(l),
        None => Ok(100),
    }
}

pub(super) fn filter(q: ListQuery) -> Result<DeviceFilter, Response> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(BootstrapStatus::parse(s).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                format!("status {s:?} is not one of not_supported, not_escrowed, escrowed"),
            )
        })?),
    };
    let mut f = DeviceFilter {
        apple_silicon: q.apple_silicon,
        os_version: q.os_version,
        group_id: q.group,
        escrowed_before: q.escrowed_before,
        escrowed_after: q.escrowed_after,
        users_without_secure_token: q.users_without_secure_token,
        include_checked_out: q.include_checked_out,
        after_id: q.after,
        limit: check_limit(q.limit)?,
        ..Default::default()
    };
    if let Some(status) = status {
        status.restrict(&mut f);
    }
    Ok(f)
}

async fn list(State(s): State<AppState>, q: Result<Query<ListQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let f = match filter(q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match s.mdm.admin_devices(&f).await {
        Ok(devices) => {
            let next = (devices.len() as u32 == f.limit)
                .then(|| devices.last().map(|d| d.enrollment.id.clone()))
                .flatten();
            let devices = devices
                .iter()
                .map(service::device_view::device_view)
                .collect();
            ok(&t::DevicePage { devices, next })
        }
        Err(e) => service_error(e),
    }
}

async fn detail(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let d = match s.mdm.admin_device(&id).await {
        Ok(d) => d,
        Err(e) => return service_error(e),
    };
    let mark = match s.mdm.push_mark(&id).await {
        Ok(m) => m,
        Err(e) => return service_error(e),
    };
    let expiry = match s.mdm.identity_expiry(&id).await {
        Ok(x) => x,
        Err(e) => return service_error(e),
    };
    ok(&t::DeviceDetail {
        device: service::device_view::device_view(&d),
        push: t::PushState {
            has_token: d.enrollment.push_token.is_some(),
            topic: d.enrollment.topic.clone(),
            token_refused: mark.map(|m| t::TokenRefused {
                at: m.at,
                reason: m.reason,
            }),
        },
        identity_renewal: expiry.renewal.as_ref().map(views::renewal),
    })
}

async fn users(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_device_users(&id).await {
        Ok(users) => ok(&t::Users {
            users: users.iter().map(views::user).collect(),
        }),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    kind: Option<String>,
    outcome: Option<String>,
    since: Option<i64>,
    before_id: Option<i64>,
    limit: Option<u32>,
}

/// The filter an events query asks for (the subject is set by the caller), or the 400 to answer.
fn event_filter(q: EventsQuery) -> Result<EventFilter, Response> {
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some("success") => Some(Outcome::Success),
        Some("failure") => Some(Outcome::Failure),
        Some("refused") => Some(Outcome::Refused),
        Some(o) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("outcome {o:?} is not one of success, failure, refused"),
            ));
        }
    };
    Ok(EventFilter {
        subject: None,
        kind: q.kind,
        outcome,
        since: q.since,
        before_id: q.before_id,
        limit: check_limit(q.limit)?,
    })
}

fn events_page(events: Vec<store::Event>, limit: u32) -> Response {
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    ok(&t::EventPage {
        events: events.iter().map(views::event).collect(),
        next_before_id: next,
    })
}

async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let f = match q.map_err(bad_query).and_then(|Query(q)| event_filter(q)) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let limit = f.limit;
    match s.mdm.admin_device_events(&id, f).await {
        Ok(events) => events_page(events, limit),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetEventsQuery {
    /// A device id (UDID), `server`, or `unknown`.
    subject: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    since: Option<i64>,
    before_id: Option<i64>,
    limit: Option<u32>,
}

/// Every event of the fleet (devices, admins, the server), newest first.
async fn fleet_events(
    State(s): State<AppState>,
    q: Result<Query<FleetEventsQuery>, QueryRejection>,
) -> Response {
    let (subject, f) = match q.map_err(bad_query).and_then(|Query(q)| {
        let rest = EventsQuery {
            kind: q.kind,
            outcome: q.outcome,
            since: q.since,
            before_id: q.before_id,
            limit: q.limit,
        };
        Ok((q.subject, event_filter(rest)?))
    }) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(subject) = &subject
        && (subject.is_empty() || subject.len() > 255)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "subject must be a device id, `server` or `unknown` (1 to 255 characters)",
        );
    }
    let limit = f.limit;
    match s.mdm.admin_events(EventFilter { subject, ..f }).await {
        Ok(events) => events_page(events, limit),
        Err(e) => service_error(e),
    }
}

async fn diagnosis(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.diagnose(&id).await {
        Ok(f) => ok(&t::Diagnosis {
            device: id,
            findings: f.iter().map(views::finding).collect(),
        }),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<u32>,
}

async fn commands(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Response {
    let limit = match q
        .map_err(bad_query)
        .and_then(|Query(q)| check_limit(q.limit))
    {
        Ok(l) => l,
        Err(r) => return r,
    };
    match s.mdm.admin_command_history(&id, limit).await {
        Ok(c) => ok(&t::Commands {
            commands: c.iter().map(views::command).collect(),
        }),
        Err(e) => service_error(e),
    }
}

async fn set_group(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<t::SetGroup>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    match s
        .mdm
        .admin_set_group(&id, body.group_id.as_deref(), &actor)
        .await
    {
        Ok(()) => ok(&t::GroupSet {
            device: id,
            group_id: body.group_id,
        }),
        Err(e) => service_error(e),
    }
}

async fn clear_token(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_clear_token(&id, &actor).await {
        Ok(cleared) => ok(&t::TokenCleared {
            device: id,
            cleared,
        }),
        Err(e) => service_error(e),
    }
}
