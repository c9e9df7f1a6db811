//! NanoMDM-compatible endpoints, so tools written for NanoMDM drive escrowd unchanged: `PUT /v1/enqueue/{ids}`
//! (raw command plist, `?nopush`) and `GET|POST /v1/push/{ids}`, answered with NanoMDM's JSON shape
//! (`status.{id}.push_result|push_error|command_error`, `no_push`, `push_error`, `command_error`,
//! `command_uuid`, `request_type`) and its status codes: 200 all succeeded, 207 some failed, 500 all failed
//! (400 for a command that does not parse). Auth: Basic `nanomdm:<API key>` or Bearer.

use apitypes::NanoMdmResult;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use service::apikeys::Actor;
use service::push::PushResult;
use store::ApiScope;

use super::schema::{described, string};
use super::{Api, Body, split_ids};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let op = Some(ApiScope::Operate);
    api.route("PUT", "/v1/enqueue/{ids}", "NanoMDM-compatible: queue the raw command plist in the body for comma-separated enrollment ids, then push unless ?nopush. An EraseDevice is refused (409, reason in command_error) when a Mac has no usable Bootstrap Token unless ?force (or force=true). NanoMDM's JSON answer; 200/207/500.", op, put(enqueue))
        .request(Body::Media("application/x-plist", described(string(), "a command plist (XML)")))
        .open_answer::<NanoMdmResult>(200)
        .route("GET", "/v1/push/{ids}", "NanoMDM-compatible: push to comma-separated enrollment ids. NanoMDM's JSON answer; 200/207/500.", op, get(push))
        .open_answer::<NanoMdmResult>(200)
        .route("POST", "/v1/push/{ids}", "NanoMDM-compatible: same as GET /v1/push/{ids}.", op, axum::routing::post(push))
        .request(Body::Empty)
        .open_answer::<NanoMdmResult>(200)
}

fn add_push(result: &mut NanoMdmResult, pushes: Vec<PushResult>) {
    for p in pushes {
        let entry = result.status.entry(p.enrollment_id).or_default();
        entry.push_result = p.id;
        entry.push_error = p.error;
    }
}

/// 200 when nothing failed, 500 when everything did, 207 in between.
fn answer(result: NanoMdmResult, ids: usize) -> Response {
    let failed = result.failed();
    let status = if result.command_error.is_some()
        || result.push_error.is_some()
        || (ids > 0 && failed >= ids)
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if failed > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    (status, Json(result)).into_response()
}

/// A flag parameter: absent = false; `name`, `name=true` or `name=1` = true; `name=false` or `name=0` =
/// false; anything else is an error naming the parameter.
fn flag(query: &Option<String>, name: &str) -> Result<bool, String> {
    let mut value = false;
    for part in query.as_deref().unwrap_or("").split('&') {
        let (key, v) = part.split_once('=').unwrap_or((part, "true"));
        if key != name {
            continue;
        }
        value = match v {
            "" | "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(format!("{name} must be true or false")),
        };
    }
    Ok(value)
}

fn has_flag(query: &Option<String>, name: &str) -> bool {
    query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    })
}

async fn enqueue(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(ids): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let ids = match split_ids(&ids) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut result = NanoMdmResult {
        no_push: has_flag(&query, "nopush"),
        ..Default::default()
    };
    let force = match flag(&query, "force") {
        Ok(f) => f,
        Err(e) => {
            result.command_error = Some(e);
            return (StatusCode::BAD_REQUEST, Json(result)).into_response();
        }
    };
    let command = match protocol::command::Command::from_raw_plist(&body) {
        Ok(c) => c,
        Err(e) => {
            result.command_error = Some(e.to_string());
            return (StatusCode::BAD_REQUEST, Json(result)).into_response();
        }
    };
    result.request_type = Some(command.request_type.clone());
    match s.mdm.admin_enqueue_raw(&ids, &body, force, &actor).await {
        Ok(uuid) => result.command_uuid = Some(uuid),
        // A policy refusal (EraseDevice without a usable Bootstrap Token) is a 409, not a server failure.
        Err(e) if e.kind() == service::ErrorKind::Conflict => {
            result.command_error = Some(e.to_string());
            return (StatusCode::CONFLICT, Json(result)).into_response();
        }
        Err(e) => {
            result.command_error = Some(e.to_string());
            return answer(result, ids.len());
        }
    }
    if !result.no_push {
        match s.mdm.admin_push(&ids, &actor).await {
            Ok(p) => add_push(&mut result, p),
            Err(e) => result.push_error = Some(e.to_string()),
        }
    }
    answer(result, ids.len())
}

async fn push(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(ids): Path<String>,
) -> Response {
    let ids = match split_ids(&ids) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut result = NanoMdmResult::default();
    match s.mdm.admin_push(&ids, &actor).await {
        Ok(p) => add_push(&mut result, p),
        Err(e) => result.push_error = Some(e.to_string()),
    }
    answer(result, ids.len())
}
