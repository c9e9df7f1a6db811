//! Agent actions and agent install (issue 6): create (credentials sealed to the agent at once), list, show,
//! cancel. No answer ever carries a credential or its ciphertext; JSON errors on the create body name the
//! position only, never the text, so a mistyped password is not echoed.

use apitypes as t;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use service::agent::NewAgentAction;
use service::apikeys::Actor;
use store::{ActionStatus, AgentAction, ApiScope};
use vault::Secret;

use super::views::{answer, ok};
use super::{Api, Body, error, service_error};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let op = Some(ApiScope::Operate);
    let read = Some(ApiScope::Read);
    api.route("POST", "/api/v1/devices/{id}/agent", "Install the agent's settings on a Mac: queues an InstallProfile (sealed at rest) holding a com.escrowd.agent payload (ServerURL, a one-time RegistrationSecret, DeviceID). The secret works for --agent-secret-ttl (default 24 h) counted from when the Mac acknowledges the profile; queueing revokes the Mac's earlier unused secrets. A Mac that already has an agent re-registers only with that agent's signature, or with replace=true (admin scope; recorded as agent.replace_authorized). Body {server_url?, replace?}; server_url defaults to the Macs' address (--public-url, else --listen), never the admin listener. Audited.", op, post(install))
        .body::<t::AgentInstall>()
        .answer::<t::AgentInstalled>(202)
        .route("GET", "/api/v1/devices/{id}/agent", "The Mac's registered agent (id, registered_at, last_seen_at), or 404.", read, get(show_agent))
        .answer::<t::Agent>(200)
        .route("POST", "/api/v1/devices/{id}/actions", "Queue an agent action: {kind: grant_secure_token|create_user|secure_token_off|transfer_secure_token|validate_bootstrap_token|remove_bootstrap_token|reescrow_bootstrap_token|troubleshoot|reset_password (user_password = the NEW password, admin = a token holder), user?, admin?, full_name?, make_admin?, user_password?, admin_password?}. %serial%, %device_name%, %username% expand; passwords are HPKE-sealed to the agent at once and never returned. Audited.", op, post(create))
        .body::<t::NewAction>()
        .answer::<t::Action>(201)
        .route("GET", "/api/v1/devices/{id}/actions", "A Mac's agent actions, newest first (?limit=1-1000).", read, get(list))
        .answer::<t::Actions>(200)
        .route("GET", "/api/v1/devices/{id}/actions/{action}", "One action: status, reason, output.", read, get(show))
        .answer::<t::Action>(200)
        .route("POST", "/api/v1/devices/{id}/actions/{action}/cancel", "Cancel a queued or delivered action (its sealed credentials are deleted). Audited.", op, post(cancel))
        .request(Body::Empty)
        .answer::<t::Action>(200)
}

/// The answer view of an action: never a credential or its ciphertext.
pub(crate) fn action_view(a: &AgentAction) -> t::Action {
    t::Action {
        id: a.id.clone(),
        device_id: a.device_id.clone(),
        kind: a.kind.clone(),
        params: serde_json::from_str::<Value>(&a.params).ok(),
        has_credentials: a.sealed.is_some(),
        status: match a.status {
            ActionStatus::Queued => t::ActionStatus::Queued,
            ActionStatus::Delivered => t::ActionStatus::Delivered,
            ActionStatus::Succeeded => t::ActionStatus::Succeeded,
            ActionStatus::Failed => t::ActionStatus::Failed,
            ActionStatus::Cancelled => t::ActionStatus::Cancelled,
            ActionStatus::Expired => t::ActionStatus::Expired,
        },
        reason: a.reason.clone(),
        output: a.output.clone(),
        created_by: a.created_by.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        expires_at: a.expires_at,
    }
}

async fn install(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: t::AgentInstall = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")),
    };
    match s
        .mdm
        .admin_install_agent(
            &id,
            b.server_url.as_deref().unwrap_or(&s.public_url),
            b.replace,
            &actor,
        )
        .await
    {
        Ok(i) => answer(
            StatusCode::ACCEPTED,
            &t::AgentInstalled {
                command_uuid: i.command_uuid,
                secret_ttl_ms: i.secret_ttl_ms,
                revoked_secrets: i.revoked_secrets,
                replace: i.replace,
            },
        ),
        Err(e) => service_error(e),
    }
}

async fn show_agent(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_agent(&id).await {
        Ok(Some(a)) => ok(&t::Agent {
            agent_id: a.agent_id,
            device_id: a.device_id,
            registered_at: a.registered_at,
            last_seen_at: a.last_seen_at,
        }),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("device {id} has no registered agent"),
        ),
        Err(e) => service_error(e),
    }
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: t::NewAction = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "bad JSON body at line {} column {}: expected {{kind, user?, admin?, full_name?, make_admin?, user_password?, admin_password?}}",
                    e.line(),
                    e.column()
                ),
            );
        }
    };
    let new = NewAgentAction {
        kind: b.kind,
        user: b.user,
        admin: b.admin,
        full_name: b.full_name,
        make_admin: b.make_admin,
        user_password: b.user_password.map(|p| Secret::new(p.into_inner())),
        admin_password: b.admin_password.map(|p| Secret::new(p.into_inner())),
    };
    match s.mdm.admin_create_action(&id, new, &actor).await {
        Ok(a) => answer(StatusCode::CREATED, &action_view(&a)),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let limit = match q {
        Ok(Query(ListQuery { limit: None })) => 100,
        Ok(Query(ListQuery { limit: Some(l) })) if (1..=1000).contains(&l) => l,
        _ => return error(StatusCode::BAD_REQUEST, "limit must be 1-1000"),
    };
    match s.mdm.admin_actions(&id, limit).await {
        Ok(list) => ok(&t::Actions {
            actions: list.iter().map(action_view).collect(),
        }),
        Err(e) => service_error(e),
    }
}

async fn show(State(s): State<AppState>, Path((id, action)): Path<(String, String)>) -> Response {
    match s.mdm.admin_action(&id, &action).await {
        Ok(a) => ok(&action_view(&a)),
        Err(e) => service_error(e),
    }
}

async fn cancel(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    match s.mdm.admin_cancel_action(&id, &action, &actor).await {
        Ok(a) => ok(&action_view(&a)),
        Err(e) => service_error(e),
    }
}
