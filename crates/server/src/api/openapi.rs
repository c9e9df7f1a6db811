//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document generated from the route records, so every route is in
//! it by construction. It lists paths, methods, summaries, path parameters and the security each needs;
//! request and answer bodies are described in the summaries, not as schemas.

use axum::Json;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Api, RouteDoc, route_docs};

pub(super) fn routes(api: Api) -> Api {
    api.route(
        "GET",
        "/api/v1/openapi.json",
        "This OpenAPI document (no key needed).",
        None,
        get(document),
    )
}

async fn document() -> Response {
    Json(openapi(&route_docs())).into_response()
}

/// The OpenAPI document for `docs`.
pub fn openapi(docs: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for d in docs {
        let params: Vec<Value> = d
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match d.scope {
            Some(scope) => {
                json!([{"bearer": [scope.as_str()]}, {"nanomdmBasic": [scope.as_str()]}])
            }
            None => json!([]),
        };
        let mut responses = json!({"200": {"description": "OK (application/json)"}});
        if d.scope.is_some() {
            responses["401"] = json!({"description": "missing or unknown API key"});
            responses["403"] = json!({"description": format!("the key lacks scope {}", d.scope.map(|s| s.as_str()).unwrap_or(""))})
        }
        let op = json!({
            "summary": d.summary,
            "operationId": format!("{} {}", d.method, d.path),
            "parameters": params,
            "security": security,
            "responses": responses,
        });
        let entry = paths
            .entry(d.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[d.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "escrowd admin API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an escrowd API key (escrowd apikey create)"},
            "nanomdmBasic": {"type": "http", "scheme": "basic", "description": "user nanomdm, an escrowd API key as password"}
        }},
    })
}
