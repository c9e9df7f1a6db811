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
        .route("GET", "/api/v1/groups/{id}/accounts", "The group's managed local admin for zero-touch (ADE) setup, or null, with warnings.", read, get(accounts))
        .response(200, Body::Json(reference("GroupAccounts")))
        .route("PUT", "/api/v1/groups/{id}/accounts", "Set the group's managed local admin: {admin_short_name, admin_full_name?, admin_hidden?, primary_account: admin (default) | standard | skip, dont_auto_populate_primary_account_info?, lock_primary_account_info?, primary_account_full_name?, primary_account_user_name?}. An ADE Mac of the group that enrolls with AwaitingConfiguration true gets AccountConfiguration (password generated per Mac, sealed, never answered) before DeviceConfigured. `warnings` says when the group would leave no Secure Token holder (S4). Audited.", admin, axum::routing::put(set_accounts))
        .request(Body::Json(object_with(&[("admin_short_name", string())], &[("admin_full_name", string()), ("admin_hidden", boolean()), ("primary_account", one_of(&["admin", "standard", "skip"])), ("dont_auto_populate_primary_account_info", boolean()), ("lock_primary_account_info", boolean()), ("primary_account_full_name", string()), ("primary_account_user_name", string())])))
        .response(200, Body::Json(reference("GroupAccounts")))
        .route("DELETE", "/api/v1/groups/{id}/accounts", "Remove the group's managed local admin (Macs already set up keep theirs). Audited.", admin, axum::routing::delete(clear_accounts))
        .response(200, Body::Json(reference("GroupAccounts")))
        .component("GroupAccounts", object(&[
            ("settings", super::schema::nullable(object(&[
                ("admin_short_name", string()), ("admin_full_name", string()), ("admin_hidden", boolean()),
                ("primary_account", one_of(&["admin", "standard", "skip"])),
                ("dont_auto_populate_primary_account_info", boolean()), ("lock_primary_account_info", boolean()),
                ("primary_account_full_name", super::schema::nullable(string())),
                ("primary_account_user_name", super::schema::nullable(string())), ("updated_at", integer()),
            ]))),
            ("warnings", array(string())),
        ]))
}

fn accounts_json(a: &service::accounts::GroupAccounts) -> serde_json::Value {
    let settings = a.settings.as_ref().map(|s| {
        json!({
            "admin_short_name": s.admin_short_name, "admin_full_name": s.admin_full_name,
            "admin_hidden": s.admin_hidden, "primary_account": s.primary_account.as_str(),
            "dont_auto_populate_primary_account_info": s.dont_auto_populate_primary_account_info,
            "lock_primary_account_info": s.lock_primary_account_info,
            "primary_account_full_name": s.primary_account_full_name,
            "primary_account_user_name": s.primary_account_user_name, "updated_at": s.updated_at,
        })
    });
    json!({"settings": settings, "warnings": a.warnings})
}

async fn accounts(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_group_accounts(&id).await {
        Ok(a) => Json(accounts_json(&a)).into_response(),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsBody {
    admin_short_name: String,
    admin_full_name: Option<String>,
    #[serde(default)]
    admin_hidden: bool,
    primary_account: Option<String>,
    #[serde(default)]
    dont_auto_populate_primary_account_info: bool,
    #[serde(default)]
    lock_primary_account_info: bool,
    primary_account_full_name: Option<String>,
    primary_account_user_name: Option<String>,
}

async fn set_accounts(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<AccountsBody>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let primary_account = match b.primary_account.as_deref() {
        None => store::PrimaryAccount::Admin,
        Some(p) => match store::PrimaryAccount::parse(p) {
            Some(p) => p,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("primary_account {p:?} is not admin, standard or skip"),
                );
            }
        },
    };
    let input = service::accounts::GroupAccountsInput {
        admin_short_name: b.admin_short_name,
        admin_full_name: b.admin_full_name,
        admin_hidden: b.admin_hidden,
        primary_account,
        dont_auto_populate_primary_account_info: b.dont_auto_populate_primary_account_info,
        lock_primary_account_info: b.lock_primary_account_info,
        primary_account_full_name: b.primary_account_full_name,
        primary_account_user_name: b.primary_account_user_name,
    };
    match s
        .mdm
        .admin_set_group_accounts(&id, Some(&input), &actor)
        .await
    {
        Ok(a) => Json(accounts_json(&a)).into_response(),
        Err(e) => service_error(e),
    }
}

async fn clear_accounts(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_set_group_accounts(&id, None, &actor).await {
        Ok(a) => Json(accounts_json(&a)).into_response(),
        Err(e) => service_error(e),
    }
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
