//! The OpenAPI document's body schemas: every route declares its request body (or that it reads none) and its
//! success answer, every `$ref` resolves, the schemas only use what the validator below understands, and real
//! answers from a running server validate against the schema of their route and status.
//!
//! The validator is a small one written here (not the `jsonschema` crate, to add no dependency) for exactly the
//! subset `api/schema.rs` writes: `type` (one name or a list), `properties`, `required`,
//! `additionalProperties` (false or a schema), `items`, `enum`, `anyOf`, `oneOf` and `$ref` into
//! `#/components/schemas`. Its own test shows it refuses what it should.

mod common;

use common::{api, enrolled};
use serde_json::{Value as Json, json};
use store::ApiScope;
use testkit::TestServer;

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "anyOf",
    "oneOf",
    "$ref",
    "description",
    "title",
];

fn type_matches(t: &str, v: &Json) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Checks `value` against `schema`; the error names where (a JSON pointer) and why.
fn validate(doc: &Json, schema: &Json, value: &Json, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref") {
        let target = r
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(|name| &doc["components"]["schemas"][name])
            .filter(|t| !t.is_null())
            .ok_or_else(|| format!("{at}: $ref {r} does not resolve"))?;
        return validate(doc, target, value, at);
    }
    if let Some(any) = schema.get("anyOf").and_then(Json::as_array)
        && !any.iter().any(|s| validate(doc, s, value, at).is_ok())
    {
        return Err(format!("{at}: matches none of anyOf: {value}"));
    }
    if let Some(one) = schema.get("oneOf").and_then(Json::as_array) {
        let matched = one
            .iter()
            .filter(|s| validate(doc, s, value, at).is_ok())
            .count();
        if matched != 1 {
            return Err(format!("{at}: matches {matched} of oneOf, not 1: {value}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let ok = match t {
            Json::String(t) => type_matches(t, value),
            Json::Array(ts) => ts
                .iter()
                .any(|t| t.as_str().is_some_and(|t| type_matches(t, value))),
            _ => false,
        };
        if !ok {
            return Err(format!("{at}: {value} is not of type {t}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Json::as_array)
        && !e.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {e:?}"));
    }
    if let Some(obj) = value.as_object() {
        for r in schema
            .get("required")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let name = r.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                return Err(format!("{at}: required field {name} is missing"));
            }
        }
        for (k, v) in obj {
            let here = format!("{at}/{k}");
            match (
                schema.get("properties").and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(doc, s, v, &here)?,
                (None, Some(Json::Bool(false))) => {
                    return Err(format!("{here}: not in the schema"));
                }
                (None, Some(s)) if s.is_object() => validate(doc, s, v, &here)?,
                _ => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}/{i}"))?;
        }
    }
    Ok(())
}

/// Every schema node under `v` (walking properties, items, anyOf/oneOf and object-valued
/// additionalProperties), with where it is.
fn schemas<'a>(v: &'a Json, at: String, out: &mut Vec<(String, &'a Json)>) {
    out.push((at.clone(), v));
    if let Some(props) = v.get("properties").and_then(Json::as_object) {
        for (k, s) in props {
            schemas(s, format!("{at}/properties/{k}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(s) = v.get(key).filter(|s| s.is_object()) {
            schemas(s, format!("{at}/{key}"), out);
        }
    }
    for key in ["anyOf", "oneOf"] {
        for (i, s) in v
            .get(key)
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            schemas(s, format!("{at}/{key}/{i}"), out);
        }
    }
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Json, out: &mut Vec<&'a str>) {
    match v {
        Json::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Json::as_str) {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Json::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_route_declares_its_bodies_and_every_ref_resolves() {
    let apidoc = server::api::api_doc();
    for d in &apidoc.routes {
        let route = format!("{} {}", d.method, d.path);
        assert!(d.response.is_some(), "{route} has no answer schema");
        match d.method {
            "POST" | "PUT" | "PATCH" => assert!(
                d.request.is_some(),
                "{route} does not say what body it reads (Body::Empty when none)"
            ),
            _ => assert!(d.request.is_none(), "{route} reads no body"),
        }
    }
    let doc = server::api::openapi_document();
    for name in [
        "Device",
        "DeviceDetail",
        "User",
        "Event",
        "Command",
        "Action",
        "Group",
        "ApiKey",
        "Finding",
        "Error",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "components/schemas/{name} is missing"
        );
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "only {} $refs", all.len());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} points outside components/schemas"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // Every schema in the document uses only what the validator understands, so a passing validation
    // really checked the whole schema.
    let mut nodes = Vec::new();
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        schemas(s, format!("components/{name}"), &mut nodes);
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut bodies: Vec<&Json> = op["responses"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|r| r.get("content"))
                .collect();
            bodies.extend(op.get("requestBody").map(|b| &b["content"]));
            for content in bodies {
                for (media, m) in content.as_object().unwrap() {
                    schemas(&m["schema"], format!("{method} {path} {media}"), &mut nodes);
                }
            }
        }
    }
    for (at, node) in nodes {
        let obj = node
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not a schema"));
        for k in obj.keys() {
            assert!(KEYWORDS.contains(&k.as_str()), "{at}: keyword {k}");
        }
    }
}

#[test]
fn the_validator_refuses_wrong_types_missing_and_extra_fields_enums_and_dangling_refs() {
    let doc = server::api::openapi_document();
    let event = json!({"id": 1, "subject": "D", "enrollment_id": null, "kind": "k", "outcome": "success", "detail": "x", "at": 5});
    let schema = json!({"$ref": "#/components/schemas/Event"});
    assert_eq!(validate(&doc, &schema, &event, ""), Ok(()));
    let mut bad = Vec::new();
    for (field, value) in [
        ("id", json!("1")),
        ("outcome", json!("maybe")),
        ("enrollment_id", json!(7)),
        ("at", json!(1.5)),
    ] {
        let mut e = event.clone();
        e[field] = value;
        bad.push(e);
    }
    let mut missing = event.clone();
    missing.as_object_mut().unwrap().remove("kind");
    bad.push(missing);
    let mut extra = event.clone();
    extra["token"] = json!("secret");
    bad.push(extra);
    for e in bad {
        assert!(validate(&doc, &schema, &e, "").is_err(), "accepted {e}");
    }
    let page = json!({"$ref": "#/components/schemas/EventPage"});
    assert!(
        validate(
            &doc,
            &page,
            &json!({"events": [event], "next_before_id": null}),
            ""
        )
        .is_ok()
    );
    assert!(
        validate(
            &doc,
            &page,
            &json!({"events": [{"id": 1}], "next_before_id": null}),
            ""
        )
        .is_err()
    );
    assert!(
        validate(
            &doc,
            &json!({"$ref": "#/components/schemas/Nope"}),
            &event,
            ""
        )
        .is_err()
    );
    let one = json!({"oneOf": [{"type": "string"}, {"type": ["string", "null"]}]});
    assert!(
        validate(&doc, &one, &json!("x"), "").is_err(),
        "two matches"
    );
    assert!(validate(&doc, &one, &Json::Null, "").is_ok());
}

/// The schema of `method path`'s answer with `status`.
fn answer_schema<'a>(doc: &'a Json, method: &str, path: &str, status: u16) -> &'a Json {
    let s = &doc["paths"][path][method.to_ascii_lowercase()]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        s.is_object(),
        "{method} {path} documents no JSON answer for {status}"
    );
    s
}

#[tokio::test]
async fn real_answers_validate_against_their_documented_schemas() {
    let ts = TestServer::start().await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    let (_, doc) = admin.get("/api/v1/openapi.json").await;
    assert_eq!(doc, server::api::openapi_document());
    let mac = enrolled(&ts, "UDID-OAS-1").await;
    mac.set_bootstrap_token(Some(b"TOKEN")).await.unwrap();
    enrolled(&ts, "UDID-OAS-2").await;
    let user = |name: &str, source: store::FactSource, st: bool| store::DeviceUser {
        device_id: "UDID-OAS-1".into(),
        source,
        user_key: name.into(),
        short_name: Some(name.into()),
        full_name: None,
        uid: Some(501),
        guid: None,
        has_secure_token: Some(st),
        mobile_account: Some(false),
        is_logged_in: Some(true),
        is_admin: Some(true),
        filevault_enabled: None,
        volume_owner: None,
        managed_admin: (source == store::FactSource::Agent).then_some(true),
        observed_at: 5,
    };
    ts.store()
        .replace_device_users(
            "UDID-OAS-1",
            store::FactSource::Agent,
            &[user("mgmt", store::FactSource::Agent, false)],
        )
        .await
        .unwrap();
    ts.store()
        .replace_device_users(
            "UDID-OAS-1",
            store::FactSource::Mdm,
            &[user("alice", store::FactSource::Mdm, true)],
        )
        .await
        .unwrap();

    let (s, group) = admin
        .send("POST", "/api/v1/groups", json!({"name": "Lab"}))
        .await;
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let calls: Vec<(&str, String, &str, Option<Json>, u16)> = vec![
        (
            "GET",
            "/api/v1/devices".into(),
            "/api/v1/devices",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/devices?limit=1".into(),
            "/api/v1/devices",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/devices/UDID-OAS-1".into(),
            "/api/v1/devices/{id}",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/devices/UDID-OAS-1/users".into(),
            "/api/v1/devices/{id}/users",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/devices/UDID-OAS-1/diagnosis".into(),
            "/api/v1/devices/{id}/diagnosis",
            None,
            200,
        ),
        (
            "PUT",
            "/api/v1/devices/UDID-OAS-1/group".into(),
            "/api/v1/devices/{id}/group",
            Some(json!({"group_id": gid})),
            200,
        ),
        (
            "POST",
            "/api/v1/commands".into(),
            "/api/v1/commands",
            Some(json!({"devices": ["UDID-OAS-1"], "command": {"type": "SecurityInfo"}})),
            201,
        ),
        (
            "GET",
            "/api/v1/devices/UDID-OAS-1/commands".into(),
            "/api/v1/devices/{id}/commands",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/devices/UDID-OAS-1/events".into(),
            "/api/v1/devices/{id}/events",
            None,
            200,
        ),
        ("GET", "/api/v1/events".into(), "/api/v1/events", None, 200),
        ("GET", "/api/v1/groups".into(), "/api/v1/groups", None, 200),
        (
            "PATCH",
            format!("/api/v1/groups/{gid}"),
            "/api/v1/groups/{id}",
            Some(json!({"bootstrap_escrow_enabled": false})),
            200,
        ),
        (
            "POST",
            "/api/v1/push".into(),
            "/api/v1/push",
            Some(json!({"devices": ["UDID-OAS-1"]})),
            200,
        ),
        (
            "POST",
            "/api/v1/apikeys".into(),
            "/api/v1/apikeys",
            Some(json!({"name": "ci", "scope": "read"})),
            201,
        ),
        (
            "GET",
            "/api/v1/apikeys".into(),
            "/api/v1/apikeys",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/devices/UDID-OAS-1/actions".into(),
            "/api/v1/devices/{id}/actions",
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/reports/summary".into(),
            "/api/v1/reports/summary",
            None,
            200,
        ),
        (
            "GET",
            "/v1/push/UDID-OAS-1,UDID-OAS-2".into(),
            "/v1/push/{ids}",
            None,
            500,
        ),
        (
            "DELETE",
            "/api/v1/devices/UDID-OAS-1/bootstrap-token".into(),
            "/api/v1/devices/{id}/bootstrap-token",
            None,
            200,
        ),
    ];
    for (method, url, path, body, expect) in calls {
        let (status, answer) = match body {
            Some(b) => admin.send(method, &url, b).await,
            None => admin.call(method, &url, None).await,
        };
        assert_eq!(status, expect, "{method} {url}: {answer}");
        // NanoMDM answers 200, 207 or 500 with the one documented shape.
        let documented = if path.starts_with("/v1/") {
            200
        } else {
            status
        };
        let schema = answer_schema(&doc, method, path, documented);
        if let Err(e) = validate(&doc, schema, &answer, "") {
            panic!("{method} {url}: {e}\nanswer: {answer}");
        }
    }
    // The users answer carried real facts (not all nulls), so the Fact schema was exercised.
    let (_, users) = admin.get("/api/v1/devices/UDID-OAS-1/users").await;
    assert_eq!(users["users"][1]["managed_admin"]["value"], true, "{users}");
    // A refusal answers with the documented error shape.
    let (s, err) = admin.get("/api/v1/devices/NOPE").await;
    assert_eq!(s, 404);
    let schema = &doc["paths"]["/api/v1/devices/{id}"]["get"]["responses"]["default"]["content"]["application/json"]
        ["schema"];
    assert_eq!(validate(&doc, schema, &err, ""), Ok(()));
}
