//! Identity renewal (issue 11): an admin queues a Mac's renewal profile now (the schedule does it by itself
//! before identities expire). Admin scope, audited.

use axum::extract::{Extension, Path, State};
use axum::response::Response;
use axum::routing::post;
use service::apikeys::Actor;
use store::ApiScope;

use super::{Api, Body, service_error, views};
use crate::AppState;

const ADMIN: Option<ApiScope> = Some(ApiScope::Admin);

pub(super) fn routes(api: Api) -> Api {
    api.route("POST", "/api/v1/devices/{id}/renew-identity", "Renew the Mac's identity certificate the way Macs do: queue its enrollment profile again (same PayloadIdentifier, Topic, ServerURL, CheckInURL, AccessRights) with a one-time SCEP challenge minted for this UDID (valid 14 days) as an InstallProfile, and push. The Mac's new certificate is proven to be its own and keeps the Bootstrap Token. escrowd also does this by itself before identities expire (--identity-renewal-days). 409 for a checked-out or blocked Mac or without a push certificate. Audited.", ADMIN, post(renew))
        .request(Body::Empty)
        .answer::<apitypes::RenewalQueued>(200)
}

async fn renew(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_renew_identity(&id, &actor).await {
        Ok(r) => views::ok(&apitypes::RenewalQueued {
            device: id,
            renewal: views::renewal(&r),
        }),
        Err(e) => service_error(e),
    }
}
