//! Identity renewal (issue 11): an admin queues a Mac's renewal profile now (the schedule does it by itself
//! before identities expire). Admin scope, audited.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use service::apikeys::Actor;
use store::ApiScope;

use super::schema::{described, millis, nullable, object, string};
use super::{Api, Body, service_error};
use crate::AppState;

const ADMIN: Option<ApiScope> = Some(ApiScope::Admin);

/// The shape of a queued renewal, shared with the device detail.
pub(super) fn renewal_schema() -> serde_json::Value {
    object(&[
        (
            "command_uuid",
            described(string(), "the InstallProfile carrying the renewal profile"),
        ),
        ("queued_at", millis()),
        (
            "challenge_expires_at",
            described(
                millis(),
                "the profile's one-time SCEP challenge (minted for this Mac) is usable until then",
            ),
        ),
        ("renews_certificate_expiring_at", nullable(millis())),
    ])
}

pub(super) fn renewal_json(r: &store::IdentityRenewal) -> serde_json::Value {
    json!({
        "command_uuid": r.command_uuid,
        "queued_at": r.queued_at,
        "challenge_expires_at": r.challenge_expires_at,
        "renews_certificate_expiring_at": r.renews_not_after,
    })
}

pub(super) fn routes(api: Api) -> Api {
    api.route("POST", "/api/v1/devices/{id}/renew-identity", "Renew the Mac's identity certificate the way Macs do: queue its enrollment profile again (same PayloadIdentifier, Topic, ServerURL, CheckInURL, AccessRights) with a one-time SCEP challenge minted for this UDID (valid 14 days) as an InstallProfile, and push. The Mac's new certificate is proven to be its own and keeps the Bootstrap Token. escrowd also does this by itself before identities expire (--identity-renewal-days). 409 for a checked-out or blocked Mac or without a push certificate. Audited.", ADMIN, post(renew))
        .request(Body::Empty)
        .response(200, Body::Json(object(&[("device", string()), ("renewal", renewal_schema())])))
}

async fn renew(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_renew_identity(&id, &actor).await {
        Ok(r) => Json(json!({"device": id, "renewal": renewal_json(&r)})).into_response(),
        Err(e) => service_error(e),
    }
}
