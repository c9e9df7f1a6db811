//! The admin REST API under `/api/v1` and the NanoMDM-compatible `/v1/enqueue` and `/v1/push`.
//!
//! Every route is registered through `Api::route`, which records its method, path, summary and required
//! scope; each module then adds its request body type (`Api::body`, the schema derived from the `apitypes`
//! type the handler deserializes; `Api::request` only for no body or a non-JSON one) and its answer type
//! (`Api::answer`, the schema derived from the `apitypes` type the handler serializes) right beside its
//! handlers. The OpenAPI document is
//! generated from that record, so a route cannot exist undocumented. Handlers
//! only translate HTTP to `service` calls and back: auth (Bearer key, or NanoMDM's Basic `nanomdm:<key>`)
//! gives 401 without a valid key and 403 without the scope; service errors map to 400/404/409/500 with a JSON
//! `{"error": …}`. No response ever carries a Bootstrap Token or an API key's hash.

// Helpers return a ready HTTP answer as their error, once per request; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod actions;
mod auth;
mod commands;
mod devices;
mod edge;
mod enroll;
mod groups;
mod identity;
mod keys;
mod monitoring;
mod nanomdm;
mod openapi;
mod push_cert;
mod renewal;
pub(crate) mod reports;
mod schema;
mod views;

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::Value;
use service::{ErrorKind, ServiceError};
use store::ApiScope;

pub use schema::Body;

use crate::AppState;

/// Body cap for admin requests (raw command plists included).
pub const MAX_API_BODY: usize = 1 << 20;

/// One documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// None: no key needed.
    pub scope: Option<ApiScope>,
    /// The request body; None: the route reads none.
    pub request: Option<Body>,
    /// The request body may be left out (an empty body counts as `{}`).
    pub request_optional: bool,
    /// The success status and its body; None only until the module documents it (the OpenAPI test
    /// refuses that).
    pub response: Option<(u16, Body)>,
}

/// Everything the OpenAPI document is made from.
#[derive(Debug, Clone, Default)]
pub struct ApiDoc {
    pub routes: Vec<RouteDoc>,
    /// `components/schemas`: shapes shared by several routes, by name.
    pub components: BTreeMap<String, Value>,
    /// The components derived from `apitypes` answer types (closed and all fields required once every route
    /// is in; see [`schema::close`]).
    typed: BTreeSet<String>,
}

/// A router that documents what it routes.
pub struct Api {
    router: Router<AppState>,
    doc: ApiDoc,
}

impl Api {
    fn new() -> Self {
        Api {
            router: Router::new(),
            doc: ApiDoc::default(),
        }
    }

    /// Add `handler` for `method path`, guarded by `scope` (None = public).
    fn route(
        mut self,
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        scope: Option<ApiScope>,
        handler: MethodRouter<AppState>,
    ) -> Self {
        let handler = match scope {
            Some(scope) => handler.route_layer(axum::middleware::from_fn_with_state(
                scope,
                auth::require_scope,
            )),
            None => handler,
        };
        self.router = self.router.route(path, handler);
        self.doc.routes.push(RouteDoc {
            method,
            path,
            summary,
            scope,
            request: None,
            request_optional: false,
            response: None,
        });
        self
    }

    fn last(&mut self) -> &mut RouteDoc {
        self.doc
            .routes
            .last_mut()
            .expect("request/response follow a route")
    }

    /// The request body of the route just added: none, or a non-JSON one (a plist). A JSON body is typed:
    /// `Api::body`.
    fn request(mut self, body: Body) -> Self {
        assert!(
            !matches!(body, Body::Json(_)),
            "a JSON request body is an apitypes type: use Api::body::<T>()"
        );
        self.last().request = Some(body);
        self
    }

    /// The success answer (status and body) of the route just added.
    fn response(mut self, status: u16, body: Body) -> Self {
        self.last().response = Some((status, body));
        self
    }

    /// The answer type `T` (and every type it refers to) under `components/schemas`.
    fn component_of<T: apitypes::utoipa::ToSchema>(mut self) -> Self {
        self.register::<T>();
        self
    }

    /// The success answer of the route just added: `status` with a body of type `T`.
    fn answer<T: apitypes::utoipa::ToSchema>(mut self, status: u16) -> Self {
        let schema = self.register::<T>();
        self.response(status, Body::Json(schema))
    }

    /// The request body of the route just added: JSON of type `T`, its schema derived as is (a request may
    /// leave out its optional fields).
    fn body<T: apitypes::utoipa::ToSchema>(mut self) -> Self {
        let schema = self.register_as::<T>(false);
        self.last().request = Some(Body::Json(schema));
        self
    }

    /// Like `Api::body` for a route that also takes an empty body as `{}`.
    fn optional_body<T: apitypes::utoipa::ToSchema>(self) -> Self {
        let mut api = self.body::<T>();
        api.last().request_optional = true;
        api
    }

    /// Like `Api::answer` for a type whose fields may be left out (NanoMDM's shapes): its schema is used
    /// as derived, not closed.
    fn open_answer<T: apitypes::utoipa::ToSchema>(mut self, status: u16) -> Self {
        let schema = self.register_as::<T>(false);
        self.response(status, Body::Json(schema))
    }

    /// Adds `T`'s schema and those it refers to (closed, see [`schema::close`]); `$ref` to `T`.
    fn register<T: apitypes::utoipa::ToSchema>(&mut self) -> Value {
        self.register_as::<T>(true)
    }

    fn register_as<T: apitypes::utoipa::ToSchema>(&mut self, closed: bool) -> Value {
        let mut all = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut all);
        for (name, s) in all {
            let s = serde_json::to_value(s).expect("a schema serializes");
            match self.doc.components.get(&name) {
                Some(old) => assert_eq!(old, &s, "two different schemas are named {name}"),
                None => {
                    self.doc.components.insert(name.clone(), s);
                    if closed {
                        self.doc.typed.insert(name);
                    }
                }
            }
        }
        schema::reference(&T::name())
    }
}

/// Every API route, documented.
pub fn api() -> (Router<AppState>, ApiDoc) {
    let api = Api::new();
    let api = devices::routes(api);
    let api = edge::routes(api);
    let api = groups::routes(api);
    let api = identity::routes(api);
    let api = renewal::routes(api);
    let api = enroll::routes(api);
    let api = commands::routes(api);
    let api = actions::routes(api);
    let api = keys::routes(api);
    let api = nanomdm::routes(api);
    let api = push_cert::routes(api);
    let api = reports::routes(api);
    let api = monitoring::routes(api);
    let api = openapi::routes(api);
    let api = views::components(api);
    let mut doc = api.doc.clone();
    schema::close(&mut doc.components, &doc.typed);
    (api.router.layer(DefaultBodyLimit::max(MAX_API_BODY)), doc)
}

/// The API router, to merge into the server's router.
pub fn router() -> Router<AppState> {
    api().0
}

/// The documented routes (for the OpenAPI document and its test).
pub fn route_docs() -> Vec<RouteDoc> {
    api().1.routes
}

/// The routes and shared shapes (for the OpenAPI document and its test).
pub fn api_doc() -> ApiDoc {
    api().1
}

/// The OpenAPI document, as `GET /api/v1/openapi.json` serves it.
pub fn openapi_document() -> Value {
    openapi::openapi(&api_doc())
}

/// A JSON error answer.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = apitypes::ErrorAnswer {
        error: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

/// The HTTP status of a service error's kind, for the API and the console alike.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest | ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::Refused => StatusCode::CONFLICT,
        ErrorKind::AdminUnauthorized | ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Map a service error to an admin answer. Internal details stay in the log.
pub(crate) fn service_error(err: ServiceError) -> Response {
    if matches!(err.kind(), ErrorKind::Internal) {
        tracing::error!(error = %err, "admin API call failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        );
    }
    error(status_of(err.kind()), err.to_string())
}

/// Split `a,b,c` into ids; empty parts are refused.
pub(crate) fn split_ids(ids: &str) -> Result<Vec<String>, Response> {
    let parts: Vec<String> = ids.split(',').map(|s| s.trim().to_string()).collect();
    if parts.iter().any(String::is_empty) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "ids must be a comma-separated list without empty entries",
        ));
    }
    Ok(parts)
}
