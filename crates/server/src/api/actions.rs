//! Agent actions and agent install (issue 6): create (credentials sealed to the agent at once), list, show,
//! cancel. No answer ever carries a credential or its ciphertext; JSON errors on the create body name the
//! position only, never the text, so a mistyped password is not echoed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use service::agent::NewAgentAction;
use service::apikeys::Actor;
use store::{AgentAction, ApiScope};
use vault::Secret;

use super::schema::{
    array, boolean, described, millis, nullable, object, object_with, one_of, reference, string,
};
use super::{Api, Body, error, service_error};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let op = Some(ApiScope::Operate);
    let read = Some(ApiScope::Read);
    api.route("POST", "/api/v1/devices/{id}/agent", "Install the agent's settings on a Mac: queues an InstallProfile (sealed at rest) holding a com.escrowd.agent payload (ServerURL, a one-time RegistrationSecret, DeviceID). The secret works for --agent-secret-ttl (default 24 h) counted from when the Mac acknowledges the profile; queueing revokes the Mac's earlier unused secrets. A Mac that already has an agent re-registers only with that agent's signature, or with replace=true (admin scope; recorded as agent.replace_authorized). Body {server_url, replace?}. Audited.", op, post(install))
        .request(Body::Json(object_with(&[("server_url", described(string(), "the https URL the agent reaches escrowd at"))], &[("replace", described(boolean(), "let the registration with this secret replace the Mac's current agent (admin scope)"))])))
        .response(202, Body::Json(object(&[("command_uuid", string()), ("secret_ttl_ms", described(json!({"type": "integer"}), "how long the secret works once the Mac acknowledged the profile")), ("revoked_secrets", json!({"type": "integer"})), ("replace", boolean())])))
        .route("GET", "/api/v1/devices/{id}/agent", "The Mac's registered agent (id, registered_at, last_seen_at), or 404.", read, get(show_agent))
        .response(200, Body::Json(object(&[("agent_id", string()), ("device_id", string()), ("registered_at", millis()), ("last_seen_at", millis())])))
        .route("POST", "/api/v1/devices/{id}/actions", "Queue an agent action: {kind: grant_secure_token|create_user|secure_token_off|transfer_secure_token|validate_bootstrap_token|remove_bootstrap_token|reescrow_bootstrap_token|troubleshoot|reset_password (user_password = the NEW password, admin = a token holder), user?, admin?, full_name?, make_admin?, user_password?, admin_password?}. %serial%, %device_name%, %username% expand; passwords are HPKE-sealed to the agent at once and never returned. Audited.", op, post(create))
        .request(Body::Json(create_schema()))
        .response(201, Body::Json(reference("Action")))
        .route("GET", "/api/v1/devices/{id}/actions", "A Mac's agent actions, newest first (?limit=1-1000).", read, get(list))
        .response(200, Body::Json(object(&[("actions", array(reference("Action")))])))
        .route("GET", "/api/v1/devices/{id}/actions/{action}", "One action: status, reason, output.", read, get(show))
        .response(200, Body::Json(reference("Action")))
        .route("POST", "/api/v1/devices/{id}/actions/{action}/cancel", "Cancel a queued or delivered action (its sealed credentials are deleted). Audited.", op, post(cancel))
        .request(Body::Empty)
        .response(200, Body::Json(reference("Action")))
        .component("Action", action_schema())
}

fn action_schema() -> Value {
    let text = || nullable(string());
    object(&[
        ("id", string()),
        ("device_id", string()),
        ("kind", string()),
        (
            "params",
            described(
                json!({"type": ["object", "null"]}),
                "user, admin, full_name, make_admin as given (never a password)",
            ),
        ),
        ("has_credentials", boolean()),
        (
            "status",
            one_of(&[
                "queued",
                "delivered",
                "succeeded",
                "failed",
                "cancelled",
                "expired",
            ]),
        ),
        ("reason", text()),
        ("output", text()),
        ("created_by", string()),
        ("created_at", millis()),
        ("updated_at", millis()),
        ("expires_at", millis()),
    ])
}

fn create_schema() -> Value {
    let text = || nullable(string());
    object_with(
        &[("kind", one_of(protocol::action_kind::ActionKind::NAMES))],
        &[
            ("user", text()),
            ("admin", text()),
            ("full_name", text()),
            ("make_admin", boolean()),
            (
                "user_password",
                described(text(), "sealed to the agent at once; never returned"),
            ),
            (
                "admin_password",
                described(text(), "sealed to the agent at once; never returned"),
            ),
        ],
    )
}

pub(crate) fn action_json(a: &AgentAction) -> Value {
    json!({
        "id": a.id,
        "device_id": a.device_id,
        "kind": a.kind,
        "params": serde_json::from_str::<Value>(&a.params).unwrap_or(Value::Null),
        "has_credentials": a.sealed.is_some(),
        "status": a.status.as_str(),
        "reason": a.reason,
        "output": a.output,
        "created_by": a.created_by,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "expires_at": a.expires_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    server_url: String,
    #[serde(default)]
    replace: bool,
}

async fn install(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: InstallBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")),
    };
    match s
        .mdm
        .admin_install_agent(&id, &b.server_url, b.replace, &actor)
        .await
    {
        Ok(i) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "command_uuid": i.command_uuid,
                "secret_ttl_ms": i.secret_ttl_ms,
                "revoked_secrets": i.revoked_secrets,
                "replace": i.replace,
            })),
        )
            .into_response(),
        Err(e) => service_error(e),
    }
}

async fn show_agent(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.mdm.admin_agent(&id).await {
        Ok(Some(a)) => Json(json!({
            "agent_id": a.agent_id,
            "device_id": a.device_id,
            "registered_at": a.registered_at,
            "last_seen_at": a.last_seen_at,
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("device {id} has no registered agent"),
        ),
        Err(e) => service_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    kind: String,
    user: Option<String>,
    admin: Option<String>,
    full_name: Option<String>,
    #[serde(default)]
    make_admin: bool,
    user_password: Option<String>,
    admin_password: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b: CreateBody = match serde_json::from_slice(&body) {
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
        user_password: b.user_password.map(Secret::new),
        admin_password: b.admin_password.map(Secret::new),
    };
    match s.mdm.admin_create_action(&id, new, &actor).await {
        Ok(a) => (StatusCode::CREATED, Json(action_json(&a))).into_response(),
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
        Ok(list) => Json(json!({"actions": list.iter().map(action_json).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => service_error(e),
    }
}

async fn show(State(s): State<AppState>, Path((id, action)): Path<(String, String)>) -> Response {
    match s.mdm.admin_action(&id, &action).await {
        Ok(a) => Json(action_json(&a)).into_response(),
        Err(e) => service_error(e),
    }
}

async fn cancel(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    match s.mdm.admin_cancel_action(&id, &action, &actor).await {
        Ok(a) => Json(action_json(&a)).into_response(),
        Err(e) => service_error(e),
    }
}
