//! The agent's HTTP endpoints under `/agent/v1/` (issue 6): register (one-time secret; when the Mac already
//! has an agent, signed by that agent's key unless an admin queued the install with --replace), then signed
//! requests only: poll actions, post a result, post inventory, report a self-service escrow. The signature headers are read here and
//! verified in `service`; a request that fails verification gets 401 with the reason and changes nothing.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use protocol::agent_profile::{HEADER_AGENT, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use service::agent::SignedRequest;
use store::AgentRegistration;

use crate::AppState;
use crate::api::{error, service_error};
use crate::listener::PeerAddr;

/// Body cap for agent requests (inventory of many users, action output).
pub const MAX_AGENT_BODY: usize = 256 * 1024;
/// Body cap for a self-service escrow report (a user name, a code and a one-line message).
pub const MAX_ESCROW_REPORT_BODY: usize = 8 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agent/v1/register", post(register))
        .route("/agent/v1/actions", get(poll))
        .route("/agent/v1/actions/{id}/result", post(result))
        .route("/agent/v1/inventory", post(inventory))
        .route(
            "/agent/v1/reports/escrow",
            post(escrow_report).layer(DefaultBodyLimit::max(MAX_ESCROW_REPORT_BODY)),
        )
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY))
}

/// Unsigned (a first registration), or signed by the Mac's current agent (a re-registration proving itself).
/// Any one signature header makes the request a signed one: then all four must be there and verify.
async fn register(
    State(s): State<AppState>,
    peer: Option<axum::Extension<PeerAddr>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = [
        HEADER_AGENT,
        HEADER_TIMESTAMP,
        HEADER_NONCE,
        HEADER_SIGNATURE,
    ]
    .iter()
    .any(|h| headers.contains_key(*h));
    let proof = if signed {
        match signed_request(&method, &uri, &headers, &body) {
            Ok(req) => Some(req),
            Err(missing) => return missing,
        }
    } else {
        None
    };
    let source = PeerAddr::source(peer.as_ref().map(|p| &p.0));
    match s.mdm.agent_register(&body, proof.as_ref(), &source).await {
        Ok(r) => (StatusCode::CREATED, Json(r)).into_response(),
        Err(e) => service_error(e),
    }
}

#[allow(clippy::result_large_err)]
/// A request signed by a registered agent, verified before the handler runs (401 with the reason
/// otherwise), with its body (within the route's body limit) and URI.
struct Signed {
    agent: AgentRegistration,
    body: Bytes,
    uri: Uri,
}

impl FromRequest<AppState> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (method, uri, headers) = (
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
        );
        let source = PeerAddr::source(req.extensions().get::<PeerAddr>());
        let body = Bytes::from_request(req, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let agent = verified(s, &method, &uri, &headers, &body, &source).await?;
        Ok(Signed { agent, body, uri })
    }
}

async fn verified(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    source: &service::edge::Source,
) -> Result<AgentRegistration, Response> {
    let req = signed_request(method, uri, headers, body)?;
    s.mdm
        .agent_verify(&req, source)
        .await
        .map_err(service_error)
}

/// The signature headers as a request to verify; 401 naming the first one missing.
#[allow(clippy::result_large_err)]
fn signed_request<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<SignedRequest<'a>, Response> {
    let header = |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or(name);
    let missing = |name: &str| {
        error(
            StatusCode::UNAUTHORIZED,
            format!("missing {name}: agent requests must be signed (register the agent first)"),
        )
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    Ok(SignedRequest {
        agent_id: header(HEADER_AGENT).map_err(missing)?,
        timestamp: header(HEADER_TIMESTAMP).map_err(missing)?,
        nonce: header(HEADER_NONCE).map_err(missing)?,
        signature: header(HEADER_SIGNATURE).map_err(missing)?,
        method: method.as_str(),
        path,
        body,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    /// Seconds to hold the answer while no action is queued (capped by the service).
    wait: Option<u64>,
}

async fn poll(State(s): State<AppState>, Signed { agent, uri, .. }: Signed) -> Response {
    let query: PollQuery = match serde_urlencoded::from_str(uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query ({e}): the only parameter is wait=SECONDS"),
            );
        }
    };
    let wait = std::time::Duration::from_secs(query.wait.unwrap_or(0));
    match s.mdm.agent_poll(&agent, wait).await {
        Ok(r) => {
            crate::metrics::agent_poll(if r.actions.is_empty() {
                "empty"
            } else {
                "actions"
            });
            Json(r).into_response()
        }
        Err(e) => {
            crate::metrics::agent_poll("error");
            service_error(e)
        }
    }
}

async fn result(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Signed { agent, body, .. }: Signed,
) -> Response {
    match s.mdm.agent_action_result(&agent, &id, &body).await {
        Ok(status) => Json(serde_json::json!({"status": status.as_str()})).into_response(),
        Err(e) => service_error(e),
    }
}

async fn inventory(State(s): State<AppState>, Signed { agent, body, .. }: Signed) -> Response {
    match s.mdm.agent_inventory(&agent, &body).await {
        Ok(n) => Json(serde_json::json!({"users": n})).into_response(),
        Err(e) => service_error(e),
    }
}

async fn escrow_report(State(s): State<AppState>, Signed { agent, body, .. }: Signed) -> Response {
    match s.mdm.agent_escrow_report(&agent, &body).await {
        Ok(()) => Json(serde_json::json!({"recorded": true})).into_response(),
        Err(e) => service_error(e),
    }
}
