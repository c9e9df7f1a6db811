//! Admin authentication: `Authorization: Bearer <key>` or NanoMDM's `Basic nanomdm:<key>`. Missing or wrong
//! key: 401 with `WWW-Authenticate`; a key without the route's scope: 403. The actor is put in the request's
//! extensions for the handler (and its audit events).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use store::ApiScope;

use super::{error, service_error};
use crate::AppState;

/// The presented key, from Bearer or Basic (user `nanomdm`).
fn presented_key(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return (user == "nanomdm").then(|| password.to_string());
    }
    None
}

fn unauthorized(message: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer, Basic realm=\"escrowd\""),
    );
    r
}

pub(super) async fn require_scope(
    State(scope): State<ApiScope>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(state) = req.extensions().get::<AppState>().cloned() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server wiring error");
    };
    let Some(key) = presented_key(&req) else {
        return unauthorized(
            "missing API key: send Authorization: Bearer <key> (make one with `escrowd apikey create`)",
        );
    };
    let actor = match state.mdm.authenticate_api_key(&key).await {
        Ok(a) => a,
        Err(e) if e.kind() == service::ErrorKind::AdminUnauthorized => {
            return unauthorized("unknown or revoked API key");
        }
        Err(e) => return service_error(e),
    };
    if let Err(e) = actor.require(scope) {
        return service_error(e);
    }
    req.extensions_mut().insert(actor);
    next.run(req).await
}
