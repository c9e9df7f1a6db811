//! Enrollment tokens (admin scope) and a group's signed static-challenge profile.

use apitypes as t;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use service::apikeys::Actor;
use service::enroll::{NewEnrollmentToken, ProfileUrls};
use store::{ApiScope, EnrollmentToken};

use super::devices::bad_json;
use super::schema::{described, string};
use super::views::{answer, ok};
use super::{Api, Body, error, service_error};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let admin = Some(ApiScope::Admin);
    api.route("GET", "/api/v1/enrollment-tokens", "Enrollment tokens (metadata only; never the token or its hash).", admin, get(list))
        .answer::<t::EnrollmentTokens>(200)
        .route("POST", "/api/v1/enrollment-tokens", "Create a token: {group (id or name), name?, max_uses? (omit for unlimited), expires_in_seconds? (omit for never)}. The answer holds the token and its /enroll URL; neither can be shown again. Audited.", admin, axum::routing::post(create))
        .body::<t::NewEnrollmentToken>()
        .answer::<t::EnrollmentTokenCreated>(201)
        .route("DELETE", "/api/v1/enrollment-tokens/{id}", "Revoke a token. Audited.", admin, delete(revoke))
        .response(204, Body::Empty)
        .route("GET", "/api/v1/groups/{id}/profile", "The group's signed enrollment profile with its static SCEP challenge (application/x-apple-aspen-config). Audited.", admin, get(group_profile))
        .response(200, Body::Media(crate::enroll::PROFILE_CONTENT_TYPE, described(string(), "a signed configuration profile (CMS)")))
}

fn view(t: &EnrollmentToken) -> t::EnrollmentToken {
    t::EnrollmentToken {
        id: t.id.clone(),
        name: t.name.clone(),
        group_id: t.group_id.clone(),
        max_uses: t.max_uses,
        uses: t.uses,
        expires_at: t.expires_at,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

async fn list(State(s): State<AppState>) -> Response {
    match s.mdm.list_enrollment_tokens().await {
        Ok(list) => ok(&t::EnrollmentTokens {
            tokens: list.iter().map(view).collect(),
        }),
        Err(e) => service_error(e),
    }
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<t::NewEnrollmentToken>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let Some(expires_in_ms) = b
        .expires_in_seconds
        .map(|s| s.checked_mul(1000))
        .map_or(Some(None), |ms| ms.map(Some))
    else {
        return error(StatusCode::BAD_REQUEST, "expires_in_seconds is too large");
    };
    let req = NewEnrollmentToken {
        name: b.name.unwrap_or_else(|| format!("token for {}", b.group)),
        group: b.group,
        max_uses: b.max_uses,
        expires_in_ms,
    };
    match s.mdm.create_enrollment_token(&req, &actor).await {
        Ok((info, token)) => answer(
            StatusCode::CREATED,
            &t::EnrollmentTokenCreated {
                info: view(&info),
                token: token.expose().to_string(),
                enroll_url: format!(
                    "{}/enroll?token={}",
                    s.public_url.trim_end_matches('/'),
                    token.expose()
                ),
            },
        ),
        Err(e) => service_error(e),
    }
}

async fn revoke(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    match s.mdm.revoke_enrollment_token(&id, &actor).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => service_error(e),
    }
}

async fn group_profile(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    let urls = ProfileUrls {
        base_url: s.public_url.clone(),
    };
    match s.mdm.group_profile(&id, &urls, &actor).await {
        Ok(p) => crate::enroll::profile_response(p),
        Err(e) => service_error(e),
    }
}
