//! Groups: CRUD and escrow settings (escrow on/off, PromptUserToAllowBootstrapTokenForAuthentication, keep or
//! clear escrowed tokens when escrow is switched off). Every change is audited.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use service::admin::{GroupChange, OnEscrowDisabled};
use service::apikeys::Actor;
use store::ApiScope;

use super::devices::bad_json;
use super::schema::{
    array, boolean, extend, integer, object, object_with, one_of, reference, string,
};
use super::{Api, Body, error, service_error, views};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let read = Some(ApiScope::Read);
    let admin = Some(ApiScope::Admin);
    api.route("GET", "/api/v1/groups", "All groups, by name.", read, get(list))
        .response(200, Body::Json(object(&[("groups", array(reference("Group")))])))
        .route("POST", "/api/v1/groups", "Create a group: {name, bootstrap_escrow_enabled (default true), prompt_user_to_allow_bootstrap_token_for_authentication (default false)}. Audited.", admin, axum::routing::post(create))
        .request(Body::Json(object_with(&[("name", string())], &[("bootstrap_escrow_enabled", boolean()), ("prompt_user_to_allow_bootstrap_token_for_authentication", boolean())])))
        .response(201, Body::Json(reference("Group")))
        .route("GET", "/api/v1/groups/{id}", "One group.", read, get(one))
        .response(200, Body::Json(reference("Group")))
        .route("PATCH", "/api/v1/groups/{id}", "Rename or change settings: {name?, bootstrap_escrow_enabled?, prompt_user_to_allow_bootstrap_token_for_authentication?, on_escrow_disabled: keep (default) | clear}. Audited.", admin, axum::routing::patch(update))
        .request(Body::Json(object_with(&[], &[("name", string()), ("bootstrap_escrow_enabled", boolean()), ("prompt_user_to_allow_bootstrap_token_for_authentication", boolean()), ("on_escrow_disabled", one_of(&["keep", "clear"]))])))
        .response(200, Body::Json(extend(views::group_schema(), &[("tokens_cleared", integer())])))
        .route("DELETE", "/api/v1/groups/{id}", "Delete a group; members stay enrolled without a group. Audited.", admin, axum::routing::delete(remove))
        .response(204, Body::Empty)
}

async fn list(State(s): State<AppState>) -> Response {
    match s.mdm.store().list_groups().await {
        Ok(g) => {
            Json(json!({"groups": g.iter().map(views::group).collect::<Vec<_>>()})).into_response()
        }
        Err(e) => service_error(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default = "yes")]
    bootstrap_escrow_enabled: bool,
    #[serde(default)]
    prompt_user_to_allow_bootstrap_token_for_authentication: bool,
}

fn yes() -> bool {
    true
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    match s
        .mdm
        .admin_create_group(
            &b.name,
            b.bootstrap_escrow_enabled,
            b.prompt_user_to_allow_bootstrap_token_for_authentication,
            &actor,
        )
        .await
    {
        Ok(g) => (StatusCode::CREATED, Json(views::group(&g))).into_response(),
        Err(e) => service_error(e),
    }
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_group(&id).await {
        Ok(g) => Json(views::group(&g)).into_response(),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    bootstrap_escrow_enabled: Option<bool>,
    prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    on_escrow_disabled: Option<String>,
}

async fn update(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let on_escrow_disabled = match b.on_escrow_disabled.as_deref() {
        None | Some("keep") => OnEscrowDisabled::Keep,
        Some("clear") => OnEscrowDisabled::Clear,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("on_escrow_disabled {other:?} is not keep or clear"),
            );
        }
    };
    let change = GroupChange {
        name: b.name,
        bootstrap_escrow_enabled: b.bootstrap_escrow_enabled,
        prompt_user_to_allow_bootstrap_token_for_authentication: b
            .prompt_user_to_allow_bootstrap_token_for_authentication,
        on_escrow_disabled,
    };
    match s.mdm.admin_update_group(&id, &change, &actor).await {
        Ok(u) => {
            let mut v = views::group(&u.group);
            v["tokens_cleared"] = json!(u.tokens_cleared);
            Json(v).into_response()
        }
        Err(e) => service_error(e),
    }
}

async fn remove(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_delete_group(&id, &actor).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => service_error(e),
    }
}
