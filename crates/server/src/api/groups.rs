//! Groups: CRUD and escrow settings (escrow on/off, PromptUserToAllowBootstrapTokenForAuthentication, keep or
//! clear escrowed tokens when escrow is switched off). Every change is audited.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use service::admin::{GroupChange, OnEscrowDisabled};
use service::apikeys::Actor;
use store::ApiScope;

use super::devices::bad_json;
use apitypes as t;

use super::views::ok;
use super::{Api, Body, error, service_error, views};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let read = Some(ApiScope::Read);
    let admin = Some(ApiScope::Admin);
    api.route("GET", "/api/v1/groups", "All groups, by name.", read, get(list))
        .answer::<t::Groups>(200)
        .route("POST", "/api/v1/groups", "Create a group: {name, bootstrap_escrow_enabled (default true), prompt_user_to_allow_bootstrap_token_for_authentication (default false)}. Audited.", admin, axum::routing::post(create))
        .body::<t::NewGroup>()
        .answer::<t::Group>(201)
        .route("GET", "/api/v1/groups/{id}", "One group.", read, get(one))
        .answer::<t::Group>(200)
        .route("PATCH", "/api/v1/groups/{id}", "Rename or change settings: {name?, bootstrap_escrow_enabled?, prompt_user_to_allow_bootstrap_token_for_authentication?, on_escrow_disabled: keep (default) | clear}. Audited.", admin, axum::routing::patch(update))
        .body::<t::GroupChange>()
        .answer::<t::GroupUpdated>(200)
        .route("DELETE", "/api/v1/groups/{id}", "Delete a group; members stay enrolled without a group. Audited.", admin, axum::routing::delete(remove))
        .response(204, Body::Empty)
        .route("GET", "/api/v1/groups/{id}/accounts", "The group's managed local admin for zero-touch (ADE) setup, or null, with warnings.", read, get(accounts))
        .answer::<t::GroupAccounts>(200)
        .route("PUT", "/api/v1/groups/{id}/accounts", "Set the group's managed local admin: {admin_short_name, admin_full_name?, admin_hidden?, primary_account: admin (default) | standard | skip, dont_auto_populate_primary_account_info?, lock_primary_account_info?, primary_account_full_name?, primary_account_user_name?}. An ADE Mac of the group that enrolls with AwaitingConfiguration true gets AccountConfiguration (password generated per Mac, sealed, never answered) before DeviceConfigured. `warnings` says when the group would leave no Secure Token holder (S4). Audited.", admin, axum::routing::put(set_accounts))
        .body::<t::NewAccountSettings>()
        .answer::<t::GroupAccounts>(200)
        .route("DELETE", "/api/v1/groups/{id}/accounts", "Remove the group's managed local admin (Macs already set up keep theirs). Audited.", admin, axum::routing::delete(clear_accounts))
        .answer::<t::GroupAccounts>(200)
}

fn accounts_json(a: &service::accounts::GroupAccounts) -> Response {
    let settings = a.settings.as_ref().map(|s| t::AccountSettings {
        admin_short_name: s.admin_short_name.clone(),
        admin_full_name: s.admin_full_name.clone(),
        admin_hidden: s.admin_hidden,
        primary_account: match s.primary_account {
            store::PrimaryAccount::Admin => t::PrimaryAccount::Admin,
            store::PrimaryAccount::Standard => t::PrimaryAccount::Standard,
            store::PrimaryAccount::Skip => t::PrimaryAccount::Skip,
        },
        dont_auto_populate_primary_account_info: s.dont_auto_populate_primary_account_info,
        lock_primary_account_info: s.lock_primary_account_info,
        primary_account_full_name: s.primary_account_full_name.clone(),
        primary_account_user_name: s.primary_account_user_name.clone(),
        updated_at: s.updated_at,
    });
    ok(&t::GroupAccounts {
        settings,
        warnings: a.warnings.clone(),
    })
}

async fn accounts(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_group_accounts(&id).await {
        Ok(a) => accounts_json(&a),
        Err(e) => service_error(e),
    }
}

async fn set_accounts(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<t::NewAccountSettings>, JsonRejection>,
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
        Ok(a) => accounts_json(&a),
        Err(e) => service_error(e),
    }
}

async fn clear_accounts(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.admin_set_group_accounts(&id, None, &actor).await {
        Ok(a) => accounts_json(&a),
        Err(e) => service_error(e),
    }
}

async fn list(State(s): State<AppState>) -> Response {
    match s.mdm.store().list_groups().await {
        Ok(g) => ok(&t::Groups {
            groups: g.iter().map(views::group).collect(),
        }),
        Err(e) => service_error(e.into()),
    }
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<t::NewGroup>, JsonRejection>,
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
        Ok(g) => views::answer(StatusCode::CREATED, &views::group(&g)),
        Err(e) => service_error(e),
    }
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_group(&id).await {
        Ok(g) => ok(&views::group(&g)),
        Err(e) => service_error(e),
    }
}

async fn update(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Result<Json<t::GroupChange>, JsonRejection>,
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
        Ok(u) => ok(&t::GroupUpdated {
            group: views::group(&u.group),
            tokens_cleared: u.tokens_cleared,
        }),
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
