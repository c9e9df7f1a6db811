//! Who may speak for a Mac (issue 11): its bound and pending identities, approving a re-enrolled Mac's new
//! identity, blocking and unblocking a Mac, unenrolling it. Every change is admin scope and audited.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use service::apikeys::Actor;
use store::ApiScope;

use super::devices::bad_json;
use super::schema::{array, boolean, described, millis, nullable, object, object_with, string};
use super::{Api, Body, service_error};
use crate::AppState;

const READ: Option<ApiScope> = Some(ApiScope::Read);
const ADMIN: Option<ApiScope> = Some(ApiScope::Admin);

pub(super) fn routes(api: Api) -> Api {
    let pending = object(&[
        (
            "fingerprint",
            described(string(), "hex SHA-256 of the pending certificate"),
        ),
        ("first_seen_at", millis()),
        ("last_seen_at", millis()),
        (
            "active",
            described(
                boolean(),
                "false once refused: the Mac's bound identity checked in after it",
            ),
        ),
        ("has_push_token", boolean()),
        (
            "has_bootstrap_token",
            described(
                boolean(),
                "a token the pending identity escrowed itself (never the Mac's)",
            ),
        ),
        ("certificate_expires_at", nullable(millis())),
    ]);
    api.route("GET", "/api/v1/devices/{id}/identities", "The Mac's bound identity certificate and any pending identities: certificates that claimed this UDID without proof (a re-enrolled Mac, or an impostor). A pending identity gets none of the Mac's secrets.", READ, get(list))
        .response(200, Body::Json(object(&[
            ("device", string()),
            ("bound", object(&[("fingerprint", nullable(string())), ("certificate_expires_at", nullable(millis())), ("blocked_at", nullable(millis()))])),
            ("pending", array(pending)),
        ])))
        .route("POST", "/api/v1/devices/{id}/approve-identity", "Approve a pending identity as the Mac's: {fingerprint?} (full or a prefix of at least 8 hex digits; optional when exactly one is active). The Mac's old Bootstrap Token is discarded, never released; the token the pending identity escrowed itself is kept. Audited.", ADMIN, post(approve))
        .request(Body::Json(object_with(&[], &[("fingerprint", string())])))
        .response(200, Body::Json(object(&[("device", string()), ("fingerprint", string())])))
        .route("POST", "/api/v1/devices/{id}/block", "Block a Mac: its certificates are refused at check-in and SCEP renewal until unblocked. {clear_token?: bool} (default false: the token stays sealed). Audited.", ADMIN, post(block))
        .request(Body::Json(object_with(&[], &[("clear_token", boolean())])))
        .response(200, Body::Json(object(&[("device", string()), ("blocked", boolean()), ("token_cleared", boolean())])))
        .route("POST", "/api/v1/devices/{id}/unblock", "Lift a block. Audited.", ADMIN, post(unblock))
        .request(Body::Empty)
        .response(200, Body::Json(object(&[("device", string()), ("blocked", boolean())])))
        .route("POST", "/api/v1/devices/{id}/unenroll", "End the Mac's enrollment server-side (as a CheckOut would): token deleted, queue emptied; its next Authenticate is a new enrollment. Audited.", ADMIN, post(unenroll))
        .request(Body::Empty)
        .response(200, Body::Json(object(&[("device", string()), ("token_deleted", boolean())])))
}

async fn list(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let device = match s.mdm.admin_device(&id).await {
        Ok(d) => d,
        Err(e) => return service_error(e),
    };
    let pending = match s.mdm.admin_pending_identities(&id).await {
        Ok(p) => p,
        Err(e) => return service_error(e),
    };
    let e = &device.enrollment;
    Json(json!({
        "device": id,
        "bound": {
            "fingerprint": e.cert_fingerprint,
            "certificate_expires_at": e.cert_not_after,
            "blocked_at": e.blocked_at,
        },
        "pending": pending.iter().map(|p| json!({
            "fingerprint": p.fingerprint,
            "first_seen_at": p.first_seen_at,
            "last_seen_at": p.last_seen_at,
            "active": p.active,
            "has_push_token": p.has_push_token,
            "has_bootstrap_token": p.has_bootstrap_token,
            "certificate_expires_at": p.cert_not_after,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    fingerprint: Option<String>,
}

/// An absent body counts as `{}`; anything present must be the documented JSON object.
fn optional_body<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    match body {
        Ok(Json(b)) => Ok(b),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(bad_json(e)),
    }
}

async fn approve(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<ApproveBody>, JsonRejection>,
) -> Response {
    let body = match optional_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s
        .mdm
        .admin_approve_identity(&id, body.fingerprint.as_deref(), &actor)
        .await
    {
        Ok(fp) => Json(json!({"device": id, "fingerprint": fp})).into_response(),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    #[serde(default)]
    clear_token: bool,
}

async fn block(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<BlockBody>, JsonRejection>,
) -> Response {
    let body = match optional_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s
        .mdm
        .admin_block_device(&id, body.clear_token, &actor)
        .await
    {
        Ok(cleared) => {
            Json(json!({"device": id, "blocked": true, "token_cleared": cleared})).into_response()
        }
        Err(e) => service_error(e),
    }
}

async fn unblock(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_unblock_device(&id, &actor).await {
        Ok(()) => Json(json!({"device": id, "blocked": false})).into_response(),
        Err(e) => service_error(e),
    }
}

async fn unenroll(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_unenroll(&id, &actor).await {
        Ok(deleted) => Json(json!({"device": id, "token_deleted": deleted})).into_response(),
        Err(e) => service_error(e),
    }
}
