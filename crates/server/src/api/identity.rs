//! Who may speak for a Mac (issue 11): its bound and pending identities, approving a re-enrolled Mac's new
//! identity, blocking and unblocking a Mac, unenrolling it. Every change is admin scope and audited.

use apitypes as t;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use service::apikeys::Actor;
use store::ApiScope;

use super::views::ok;
use super::{Api, Body, error, service_error};
use crate::AppState;

const READ: Option<ApiScope> = Some(ApiScope::Read);
const ADMIN: Option<ApiScope> = Some(ApiScope::Admin);

pub(super) fn routes(api: Api) -> Api {
    api.route("GET", "/api/v1/devices/{id}/identities", "The Mac's bound identity certificate and any pending identities: certificates that claimed this UDID without proof (a re-enrolled Mac, or an impostor). A pending identity gets none of the Mac's secrets.", READ, get(list))
        .answer::<t::Identities>(200)
        .route("POST", "/api/v1/devices/{id}/approve-identity", "Approve a pending identity as the Mac's: {fingerprint?} (full or a prefix of at least 8 hex digits; optional when exactly one is active). The Mac's old Bootstrap Token is discarded, never released; the token the pending identity escrowed itself is kept. Audited.", ADMIN, post(approve))
        .optional_body::<t::ApproveIdentity>()
        .answer::<t::IdentityApproved>(200)
        .route("POST", "/api/v1/devices/{id}/block", "Block a Mac: its certificates are refused at check-in and SCEP renewal until unblocked. {clear_token?: bool} (default false: the token stays sealed). Audited.", ADMIN, post(block))
        .optional_body::<t::BlockDevice>()
        .answer::<t::Blocked>(200)
        .route("POST", "/api/v1/devices/{id}/unblock", "Lift a block. Audited.", ADMIN, post(unblock))
        .request(Body::Empty)
        .answer::<t::Unblocked>(200)
        .route("POST", "/api/v1/devices/{id}/unenroll", "End the Mac's enrollment server-side (as a CheckOut would): token deleted, queue emptied; its next Authenticate is a new enrollment. Audited.", ADMIN, post(unenroll))
        .request(Body::Empty)
        .answer::<t::Unenrolled>(200)
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
    ok(&t::Identities {
        device: id,
        bound: t::BoundIdentity {
            fingerprint: e.cert_fingerprint.clone(),
            certificate_expires_at: e.cert_not_after,
            blocked_at: e.blocked_at,
        },
        pending: pending
            .iter()
            .map(|p| t::PendingIdentity {
                fingerprint: p.fingerprint.clone(),
                first_seen_at: p.first_seen_at,
                last_seen_at: p.last_seen_at,
                active: p.active,
                has_push_token: p.has_push_token,
                has_bootstrap_token: p.has_bootstrap_token,
                certificate_expires_at: p.cert_not_after,
            })
            .collect(),
    })
}

/// An empty body counts as `{}`; anything else must be the documented JSON object.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("bad JSON body: {e} (send {{}} or nothing for the defaults)"),
        )
    })
}

async fn approve(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match optional_body::<t::ApproveIdentity>(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s
        .mdm
        .admin_approve_identity(&id, body.fingerprint.as_deref(), &actor)
        .await
    {
        Ok(fingerprint) => ok(&t::IdentityApproved {
            device: id,
            fingerprint,
        }),
        Err(e) => service_error(e),
    }
}

async fn block(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match optional_body::<t::BlockDevice>(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match s
        .mdm
        .admin_block_device(&id, body.clear_token, &actor)
        .await
    {
        Ok(token_cleared) => ok(&t::Blocked {
            device: id,
            blocked: true,
            token_cleared,
        }),
        Err(e) => service_error(e),
    }
}

async fn unblock(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_unblock_device(&id, &actor).await {
        Ok(()) => ok(&t::Unblocked {
            device: id,
            blocked: false,
        }),
        Err(e) => service_error(e),
    }
}

async fn unenroll(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_unenroll(&id, &actor).await {
        Ok(token_deleted) => ok(&t::Unenrolled {
            device: id,
            token_deleted,
        }),
        Err(e) => service_error(e),
    }
}
