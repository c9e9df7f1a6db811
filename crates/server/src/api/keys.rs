//! API keys over the API (admin scope): list, create (the key is in this one answer only), revoke.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use service::apikeys::Actor;
use store::ApiScope;

use super::devices::bad_json;
use apitypes as t;

use super::{Api, Body, error, service_error, views};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let admin = Some(ApiScope::Admin);
    api.route("GET", "/api/v1/apikeys", "API keys (metadata only, never the key or its hash).", admin, get(list))
        .answer::<t::ApiKeys>(200)
        .route("POST", "/api/v1/apikeys", "Create a key: {name, scope: read|operate|admin}. The answer holds the key; it is not stored and cannot be shown again. Audited.", admin, axum::routing::post(create))
        .body::<t::NewApiKey>()
        .answer::<t::ApiKeyCreated>(201)
        .route("DELETE", "/api/v1/apikeys/{id}", "Revoke a key. Audited.", admin, delete(revoke))
        .response(204, Body::Empty)
}

async fn list(State(s): State<AppState>) -> Response {
    match s.mdm.list_api_keys().await {
        Ok(k) => views::ok(&t::ApiKeys {
            keys: k.iter().map(views::api_key).collect(),
        }),
        Err(e) => service_error(e),
    }
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<t::NewApiKey>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let Some(scope) = ApiScope::parse(&b.scope) else {
        return error(
            StatusCode::BAD_REQUEST,
            "scope must be read, operate or admin",
        );
    };
    match s.mdm.create_api_key(&b.name, scope, &actor).await {
        Ok((k, key)) => {
            let created = t::ApiKeyCreated {
                info: views::api_key(&k),
                key: key.expose().to_string(),
            };
            views::answer(StatusCode::CREATED, &created)
        }
        Err(e) => service_error(e),
    }
}

async fn revoke(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.revoke_api_key(&id, &actor).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => service_error(e),
    }
}
