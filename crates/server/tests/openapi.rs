//! The OpenAPI document's body schemas: every route declares its request body (or that it reads none) and its
//! success answer, every `$ref` resolves, every body schema is a valid JSON Schema 2020-12, and real answers
//! from a running server validate against the schema of their route and status. Validation is the
//! `jsonschema` crate's, with the document's `components` beside each schema so its `$ref`s resolve.

mod common;

use common::{api, enrolled};
use serde_json::{Value as Json, json};
use store::ApiScope;
use testkit::TestServer;

/// A validator for `schema`, a body schema of `doc` (its `$ref`s point into `doc`'s components).
fn validator(doc: &Json, schema: &Json) -> Result<jsonschema::Validator, String> {
    let mut root = schema.clone();
    root.as_object_mut()
        .ok_or_else(|| format!("not a schema: {schema}"))?
        .insert("components".into(), doc["components"].clone());
    jsonschema::draft202012::new(&root).map_err(|e| e.to_string())
}

/// Checks `value` against `schema`; the error lists every place (a JSON pointer) and why.
fn validate(doc: &Json, schema: &Json, value: &Json) -> Result<(), String> {
    let v = validator(doc, schema)?;
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Every body schema of the document (request and answers), with where it is.
fn body_schemas(doc: &Json) -> Vec<(String, &Json)> {
    let mut out = Vec::new();
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
                    out.push((format!("{method} {path} {media}"), &m["schema"]));
                }
            }
        }
    }
    out
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
    // Every body schema is a valid JSON Schema 2020-12 whose references resolve, and so is every shared shape.
    for (at, schema) in body_schemas(&doc) {
        if let Err(e) = validator(&doc, schema) {
            panic!("{at}: {e}");
        }
    }
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        let schema = json!({"$ref": format!("#/components/schemas/{name}")});
        if let Err(e) = validator(&doc, &schema) {
            panic!("components/schemas/{name}: {e}");
        }
    }
}

#[test]
fn the_schemas_refuse_wrong_types_missing_and_extra_fields_enums_and_dangling_refs() {
    let doc = server::api::openapi_document();
    let event = json!({"id": 1, "subject": "D", "enrollment_id": null, "kind": "k", "outcome": "success", "detail": "x", "at": 5});
    let schema = json!({"$ref": "#/components/schemas/Event"});
    assert_eq!(validate(&doc, &schema, &event), Ok(()));
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
        assert!(validate(&doc, &schema, &e).is_err(), "accepted {e}");
    }
    let page = json!({"$ref": "#/components/schemas/EventPage"});
    assert!(
        validate(
            &doc,
            &page,
            &json!({"events": [event], "next_before_id": null}),
        )
        .is_ok()
    );
    assert!(
        validate(
            &doc,
            &page,
            &json!({"events": [{"id": 1}], "next_before_id": null}),
        )
        .is_err()
    );
    assert!(validate(&doc, &json!({"$ref": "#/components/schemas/Nope"}), &event,).is_err());
    let one = json!({"oneOf": [{"type": "string"}, {"type": ["string", "null"]}]});
    assert!(validate(&doc, &one, &json!("x")).is_err(), "two matches");
    assert!(validate(&doc, &one, &Json::Null).is_ok());
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
        if let Err(e) = validate(&doc, schema, &answer) {
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
    assert_eq!(validate(&doc, schema, &err), Ok(()));
}
