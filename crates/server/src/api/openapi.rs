//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document generated from the route records, so every route is in
//! it by construction. It lists paths, methods, summaries, path parameters, the security each needs, the
//! request body and success answer of each route as JSON Schemas (written beside each handler), the error
//! answers, and the shared shapes under `components/schemas`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::schema::{Body, described};
use super::{Api, ApiDoc, api_doc};

pub(super) fn routes(api: Api) -> Api {
    api.route(
        "GET",
        "/api/v1/openapi.json",
        "This OpenAPI document (no key needed).",
        None,
        get(document),
    )
    .response(
        200,
        Body::Json(described(
            json!({"type": "object", "required": ["openapi", "info", "paths", "components"]}),
            "an OpenAPI 3.1 document",
        )),
    )
}

async fn document() -> Response {
    Json(openapi(&api_doc())).into_response()
}

/// The `content` of a request or answer with this body, or None for no body.
fn content(body: &Body) -> Option<Value> {
    match body {
        Body::Empty => None,
        Body::Json(schema) => Some(json!({"application/json": {"schema": schema}})),
        Body::Media(media, schema) => {
            let mut c = Map::new();
            c.insert((*media).to_string(), json!({"schema": schema}));
            Some(Value::Object(c))
        }
    }
}

fn error_answer(description: String) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// The OpenAPI document for `doc`.
pub fn openapi(doc: &ApiDoc) -> Value {
    let mut paths = Map::new();
    for d in &doc.routes {
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
        let mut responses = Map::new();
        match &d.response {
            Some((status, body)) => {
                let mut answer = json!({"description": "success"});
                if let Some(c) = content(body) {
                    answer["content"] = c;
                }
                responses.insert(status.to_string(), answer);
            }
            None => {
                responses.insert("200".into(), json!({"description": "success"}));
            }
        }
        if let Some(scope) = d.scope {
            responses.insert(
                "401".into(),
                error_answer("missing or unknown API key".into()),
            );
            responses.insert(
                "403".into(),
                error_answer(format!("the key lacks scope {}", scope.as_str())),
            );
        }
        if d.path.starts_with("/api/") {
            responses.insert(
                "default".into(),
                error_answer(
                    "bad input (400), unknown id (404), conflict or refusal (409), too large (413), \
                     internal error (500)"
                        .into(),
                ),
            );
        }
        let mut op = json!({
            "summary": d.summary,
            "operationId": format!("{} {}", d.method, d.path),
            "parameters": params,
            "security": security,
            "responses": responses,
        });
        if let Some(c) = d.request.as_ref().and_then(content) {
            op["requestBody"] = json!({"required": !d.request_optional, "content": c});
        }
        let entry = paths
            .entry(d.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[d.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "escrowd admin API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": doc.components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an escrowd API key (escrowd apikey create)"},
                "nanomdmBasic": {"type": "http", "scheme": "basic", "description": "user nanomdm, an escrowd API key as password"}
            }
        },
    })
}
