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

/// The JSON request body of each route that reads one, and the `apitypes` type its handler parses.
const TYPED_BODIES: &[(&str, &str, &str)] = &[
    ("post", "/api/v1/devices/{id}/agent", "AgentInstall"),
    ("post", "/api/v1/devices/{id}/actions", "NewAction"),
    ("post", "/api/v1/enrollment-tokens", "NewEnrollmentToken"),
    ("put", "/api/v1/push-certificate", "PushCertificateUpload"),
    ("post", "/api/v1/groups", "NewGroup"),
    ("patch", "/api/v1/groups/{id}", "GroupChange"),
    ("put", "/api/v1/groups/{id}/accounts", "NewAccountSettings"),
    ("post", "/api/v1/commands", "EnqueueCommand"),
    ("post", "/api/v1/push", "PushDevices"),
    ("put", "/api/v1/devices/{id}/group", "SetGroup"),
    (
        "post",
        "/api/v1/devices/{id}/approve-identity",
        "ApproveIdentity",
    ),
    ("post", "/api/v1/devices/{id}/block", "BlockDevice"),
    ("post", "/api/v1/apikeys", "NewApiKey"),
];

#[test]
fn every_json_request_body_is_a_reference_to_its_typed_component() {
    let doc = server::api::openapi_document();
    // Every JSON request body in the document is a bare `$ref` to a component (derived from an apitypes
    // type), never an inline hand-written schema, and each is one of the routes listed above.
    let mut seen = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(schema) = op
                .get("requestBody")
                .and_then(|b| b["content"].get("application/json"))
                .map(|m| &m["schema"])
            else {
                continue;
            };
            let obj = schema.as_object().unwrap();
            assert_eq!(
                obj.len(),
                1,
                "{method} {path}: the request body is not a bare $ref: {schema}"
            );
            let name = obj["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .unwrap_or_else(|| panic!("{method} {path}: {schema}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{method} {path}: {name} is not a component"
            );
            seen.push((method.clone(), path.clone(), name.to_string()));
        }
    }
    let mut want: Vec<(String, String, String)> = TYPED_BODIES
        .iter()
        .map(|(m, p, n)| (m.to_string(), p.to_string(), n.to_string()))
        .collect();
    seen.sort();
    want.sort();
    assert_eq!(seen, want);
    // Approve and block take an empty body as `{}`: the document says the body may be left out.
    for (method, path, _) in TYPED_BODIES {
        let optional = path.ends_with("/approve-identity") || path.ends_with("/block");
        assert_eq!(
            doc["paths"][path][method]["requestBody"]["required"], !optional,
            "{method} {path}"
        );
    }
    // The secrets are documented as strings, never with an example or default that could hold one.
    let action = &doc["components"]["schemas"]["NewAction"];
    assert_eq!(action["additionalProperties"], false, "{action}");
    assert_eq!(action["required"], json!(["kind"]), "{action}");
    for secret in ["user_password", "admin_password"] {
        let p = &action["properties"][secret];
        assert!(
            p.get("example").is_none() && p.get("default").is_none(),
            "{p}"
        );
    }
}

/// `value` against the request schema of `method path`.
fn validate_request(doc: &Json, method: &str, path: &str, value: &Json) -> Result<(), String> {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} has no JSON request body"
    );
    validate(doc, schema, value)
}

/// Each valid sample passes the route's schema and its handler's parser (the apitypes type); each invalid one
/// is refused by both.
fn check_body<T: serde::de::DeserializeOwned>(
    doc: &Json,
    method: &str,
    path: &str,
    valid: &[Json],
    invalid: &[Json],
) {
    for v in valid {
        if let Err(e) = validate_request(doc, method, path, v) {
            panic!("{method} {path}: the schema refuses {v}: {e}");
        }
        if let Err(e) = serde_json::from_value::<T>(v.clone()) {
            panic!("{method} {path}: the parser refuses {v}: {e}");
        }
    }
    for v in invalid {
        assert!(
            validate_request(doc, method, path, v).is_err(),
            "{method} {path}: the schema accepts {v}"
        );
        assert!(
            serde_json::from_value::<T>(v.clone()).is_err(),
            "{method} {path}: the parser accepts {v}"
        );
    }
}

#[test]
fn sample_request_bodies_validate_against_their_schemas_and_parse() {
    use apitypes as t;
    let doc = server::api::openapi_document();
    let d = &doc;
    check_body::<t::NewAction>(
        d,
        "post",
        "/api/v1/devices/{id}/actions",
        &[
            json!({"kind": "troubleshoot"}),
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin", "full_name": null,
                   "make_admin": false, "user_password": "pw1", "admin_password": "pw2"}),
            json!({"kind": "create_user", "user": "bob", "user_password": null, "make_admin": true}),
        ],
        &[
            json!({}),
            json!({"kind": "troubleshoot", "extra": 1}),
            json!({"kind": "troubleshoot", "make_admin": null}),
            json!({"kind": "troubleshoot", "user_password": 5}),
        ],
    );
    // The kind is text to the parser (the service names the known kinds); the schema lists them.
    assert!(
        validate_request(
            d,
            "post",
            "/api/v1/devices/{id}/actions",
            &json!({"kind": "reboot"})
        )
        .is_err()
    );
    check_body::<t::PushCertificateUpload>(
        d,
        "put",
        "/api/v1/push-certificate",
        &[
            json!({"certificate_pem": "-----BEGIN CERTIFICATE-----", "private_key_pem": "-----BEGIN PRIVATE KEY-----"}),
            json!({"pkcs12_base64": "AAAA", "password": "pw"}),
            json!({"pkcs12_base64": "AAAA", "password": null}),
            json!({"pkcs12_base64": "AAAA"}),
        ],
        &[json!({"certificate_pem": "c", "private_key_pem": "k", "x": 1})],
    );
    // Mixes and halves parse (the handler answers them with a plain 400) but match neither documented form.
    for mix in [
        json!({"certificate_pem": "c"}),
        json!({}),
        json!({"certificate_pem": "c", "private_key_pem": "k", "pkcs12_base64": "AAAA"}),
        json!({"certificate_pem": "c", "private_key_pem": "k", "password": "pw"}),
    ] {
        assert!(
            validate_request(d, "put", "/api/v1/push-certificate", &mix).is_err(),
            "{mix}"
        );
        let parsed: t::PushCertificateUpload = serde_json::from_value(mix.clone()).unwrap();
        assert!(parsed.into_form().is_none(), "{mix}");
    }
    check_body::<t::NewGroup>(
        d,
        "post",
        "/api/v1/groups",
        &[
            json!({"name": "Lab"}),
            json!({"name": "Lab", "bootstrap_escrow_enabled": false,
                   "prompt_user_to_allow_bootstrap_token_for_authentication": true}),
        ],
        &[
            json!({"nam": "Lab"}),
            json!({"name": "Lab", "bootstrap_escrow_enabled": null}),
            json!({"name": 1}),
        ],
    );
    check_body::<t::GroupChange>(
        d,
        "patch",
        "/api/v1/groups/{id}",
        &[
            json!({}),
            json!({"name": "Lab 2", "bootstrap_escrow_enabled": false, "on_escrow_disabled": "clear"}),
            json!({"prompt_user_to_allow_bootstrap_token_for_authentication": null, "on_escrow_disabled": null}),
        ],
        &[
            json!({"escrow": false}),
            json!({"bootstrap_escrow_enabled": "no"}),
        ],
    );
    assert!(
        validate_request(
            d,
            "patch",
            "/api/v1/groups/{id}",
            &json!({"on_escrow_disabled": "shred"})
        )
        .is_err()
    );
    check_body::<t::NewAccountSettings>(
        d,
        "put",
        "/api/v1/groups/{id}/accounts",
        &[
            json!({"admin_short_name": "mgmt"}),
            json!({"admin_short_name": "mgmt", "admin_full_name": "IT", "admin_hidden": true,
                   "primary_account": "skip", "dont_auto_populate_primary_account_info": true,
                   "lock_primary_account_info": false, "primary_account_full_name": null,
                   "primary_account_user_name": "alice"}),
        ],
        &[
            json!({"admin_full_name": "IT"}),
            json!({"admin_short_name": "mgmt", "password": "x"}),
        ],
    );
    assert!(
        validate_request(
            d,
            "put",
            "/api/v1/groups/{id}/accounts",
            &json!({"admin_short_name": "mgmt", "primary_account": "root"})
        )
        .is_err()
    );
    check_body::<t::EnqueueCommand>(
        d,
        "post",
        "/api/v1/commands",
        &[
            json!({"devices": ["A"], "command": {"type": "SecurityInfo"}}),
            json!({"devices": ["A", "B"], "command": {"type": "UserList"}, "force": false, "push": null}),
            json!({"devices": ["A"], "command": {"type": "DeviceInformation"}, "push": false}),
            json!({"devices": ["A"], "command": {"type": "DeviceConfigured"}}),
            json!({"devices": ["A"], "command": {"type": "Settings", "bootstrap_token_allowed": true,
                   "prompt_user_to_allow_bootstrap_token_for_authentication": null}}),
            json!({"devices": ["A"], "command": {"type": "EraseDevice", "pin": "123456",
                   "obliteration_behavior": "DoNotObliterate"}, "force": true}),
        ],
        &[
            json!({"devices": ["A"], "command": {"type": "Reboot"}}),
            json!({"devices": ["A"]}),
            json!({"devices": "A", "command": {"type": "UserList"}}),
            json!({"devices": ["A"], "command": {"type": "UserList"}, "nopush": true}),
            json!({"devices": ["A"], "command": {"type": "Settings", "bootstrap_token_allowed": "yes"}}),
            json!({"devices": ["A"], "command": {"type": "EraseDevice", "pin": "1", "x": 1}}),
        ],
    );
    assert!(
        validate_request(
            d,
            "post",
            "/api/v1/commands",
            &json!({"devices": ["A"], "command": {"type": "EraseDevice", "obliteration_behavior": "Sometimes"}})
        )
        .is_err()
    );
    check_body::<t::PushDevices>(
        d,
        "post",
        "/api/v1/push",
        &[json!({"devices": ["A", "B"]})],
        &[json!({}), json!({"devices": ["A"], "x": 1})],
    );
    check_body::<t::SetGroup>(
        d,
        "put",
        "/api/v1/devices/{id}/group",
        &[json!({"group_id": "g1"}), json!({"group_id": null})],
        &[json!({"group": "g1"}), json!({"group_id": 1})],
    );
    check_body::<t::ApproveIdentity>(
        d,
        "post",
        "/api/v1/devices/{id}/approve-identity",
        &[json!({}), json!({"fingerprint": "0123456789abcdef"})],
        &[json!({"fp": "01234567"})],
    );
    check_body::<t::BlockDevice>(
        d,
        "post",
        "/api/v1/devices/{id}/block",
        &[json!({}), json!({"clear_token": true})],
        &[json!({"clear_token": "yes"}), json!({"clear": true})],
    );
    check_body::<t::NewApiKey>(
        d,
        "post",
        "/api/v1/apikeys",
        &[json!({"name": "ci", "scope": "read"})],
        &[
            json!({"name": "ci"}),
            json!({"scope": "read"}),
            json!({"name": "ci", "scope": "read", "key": "x"}),
        ],
    );
    assert!(
        validate_request(
            d,
            "post",
            "/api/v1/apikeys",
            &json!({"name": "ci", "scope": "root"})
        )
        .is_err()
    );
    check_body::<t::AgentInstall>(
        d,
        "post",
        "/api/v1/devices/{id}/agent",
        &[
            json!({}),
            json!({"server_url": "https://mdm.example", "replace": true}),
        ],
        &[json!({"url": "https://mdm.example"})],
    );
    check_body::<t::NewEnrollmentToken>(
        d,
        "post",
        "/api/v1/enrollment-tokens",
        &[
            json!({"group": "Lab"}),
            json!({"group": "Lab", "name": "n", "max_uses": 3, "expires_in_seconds": null}),
        ],
        &[json!({}), json!({"group": "Lab", "uses": 1})],
    );
}
