//! End-to-end: the admin API and the NanoMDM-compatible endpoints, driven over HTTP against a real server
//! with a signing test Mac. Every route is checked for 401 without a key and 403 with too small a scope.

mod common;

use common::{Api, answer_next, api, concrete, dict, enrolled, event_count};
use plist::Value;
use serde_json::{Value as Json, json};
use store::ApiScope;
use testkit::TestServer;

#[tokio::test]
async fn every_documented_route_exists_and_refuses_missing_wrong_and_too_small_keys() {
    let ts = TestServer::start().await.unwrap();
    let docs = server::api::route_docs();
    let (_, doc) = Api {
        base: ts.admin_url(),
        auth: None,
    }
    .get("/api/v1/openapi.json")
    .await;
    let read = api(&ts, ApiScope::Read).await;
    let operate = api(&ts, ApiScope::Operate).await;
    let before = event_count(&ts).await;
    for d in &docs {
        let documented = &doc["paths"][d.path][d.method.to_ascii_lowercase()];
        assert!(
            documented["summary"].is_string(),
            "{} {} is not in the OpenAPI document",
            d.method,
            d.path
        );
        let Some(scope) = d.scope else { continue };
        let path = concrete(d.path);
        for auth in [
            None,
            Some("Bearer escrowd_wrong".to_string()),
            Some("Basic bm9wZTpub3Bl".to_string()),
        ] {
            let (status, body) = Api {
                base: ts.admin_url(),
                auth,
            }
            .call(d.method, &path, None)
            .await;
            assert_eq!(status, 401, "{} {}", d.method, d.path);
            assert!(body["error"].is_string());
        }
        let small = match scope {
            ApiScope::Read => continue,
            ApiScope::Operate => &read,
            ApiScope::Admin => &operate,
        };
        let (status, body) = small.call(d.method, &path, Some(b"{}".to_vec())).await;
        assert_eq!(status, 403, "{} {}: {body}", d.method, d.path);
    }
    assert_eq!(
        event_count(&ts).await,
        before,
        "refused calls change nothing"
    );
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        docs.len()
    );
}

#[tokio::test]
async fn device_views_show_inventory_from_command_results_and_never_the_token() {
    let ts = TestServer::start().await.unwrap();
    let op = api(&ts, ApiScope::Operate).await;
    let mac = enrolled(&ts, "UDID-API-1").await;
    mac.set_bootstrap_token(Some(b"TOKEN-SECRET-BYTES"))
        .await
        .unwrap();
    // Escrow re-queries UserList and SecurityInfo on its own; answer them so the commands below come next.
    assert_eq!(mac.drain().await.unwrap(), ["UserList", "SecurityInfo"]);

    let (s, list) = op.get("/api/v1/devices").await;
    assert_eq!(s, 200);
    assert_eq!(list["devices"][0]["id"], "UDID-API-1");
    assert_eq!(list["devices"][0]["bootstrap_token"]["label"], "Configured");

    for command in ["SecurityInfo", "DeviceInformation", "UserList"] {
        let (s, body) = op
            .send(
                "POST",
                "/api/v1/commands",
                json!({"devices": ["UDID-API-1"], "command": {"type": command}}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(
            body["push"][0]["error"],
            "no push certificate is configured"
        );
    }
    let security = dict(&[
        ("FDE_Enabled", true.into()),
        (
            "BootstrapTokenAllowedForAuthentication",
            "disallowed".into(),
        ),
        ("BootstrapTokenRequiredForSoftwareUpdate", true.into()),
        (
            "BootstrapTokenRequiredForKernelExtensionApproval",
            true.into(),
        ),
    ]);
    answer_next(&mac, dict(&[("SecurityInfo", Value::Dictionary(security))])).await;
    let info = dict(&[
        ("OSVersion", "14.5".into()),
        ("IsAppleSilicon", true.into()),
        ("EACSPreflight", "success".into()),
        ("IsSupervised", true.into()),
    ]);
    answer_next(&mac, dict(&[("QueryResponses", Value::Dictionary(info))])).await;
    let users = vec![
        Value::Dictionary(dict(&[
            ("UserName", "alice".into()),
            ("UserGUID", "G-A".into()),
            ("HasSecureToken", true.into()),
            ("IsLoggedIn", true.into()),
            ("MobileAccount", false.into()),
        ])),
        Value::Dictionary(dict(&[
            ("UserName", "bob".into()),
            ("UserGUID", "G-B".into()),
            ("HasSecureToken", false.into()),
            ("IsLoggedIn", false.into()),
            ("MobileAccount", false.into()),
        ])),
    ];
    answer_next(&mac, dict(&[("Users", Value::Array(users))])).await;

    let (s, d) = op.get("/api/v1/devices/UDID-API-1").await;
    assert_eq!(s, 200);
    assert_eq!(d["os_version"], "14.5");
    assert_eq!(d["apple_silicon"], true);
    assert_eq!(d["supervised"], true);
    assert_eq!(d["filevault_enabled"], true);
    assert_eq!(d["eacs_preflight"], "success");
    assert_eq!(
        d["bootstrap_token_allowed_for_authentication"],
        "disallowed"
    );
    assert_eq!(
        d["bootstrap_token_required_for_kernel_extension_approval"],
        true
    );
    assert_eq!(d["bootstrap_token"]["verified"], false);
    assert_eq!(d["users_without_secure_token"], 1);
    assert!(
        !d.to_string().contains("TOKEN-SECRET"),
        "no view carries the token"
    );

    let (_, u) = op.get("/api/v1/devices/UDID-API-1/users").await;
    assert_eq!(u["users"][0]["short_name"], "alice");
    assert_eq!(u["users"][1]["has_secure_token"]["value"], false);
    assert_eq!(u["users"][1]["has_secure_token"]["source"], "mdm");

    let (_, f) = op.get("/api/v1/devices/UDID-API-1/diagnosis").await;
    let codes: Vec<&str> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"apple_silicon_token_cannot_authorize"),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"filevault_users_without_secure_token"),
        "{codes:?}"
    );
    assert!(codes.contains(&"escrowed_never_verified"), "{codes:?}");

    let filtered = op.get("/api/v1/devices?apple_silicon=true&os_version=14&users_without_secure_token=true&status=escrowed").await;
    assert_eq!(filtered.1["devices"].as_array().unwrap().len(), 1);
    let none = op.get("/api/v1/devices?status=not_escrowed").await;
    assert_eq!(none.1["devices"].as_array().unwrap().len(), 0);

    let (_, h) = op.get("/api/v1/devices/UDID-API-1/commands").await;
    // The three above, after the enrollment inventory (3) and the UserList and SecurityInfo escrow asked for (2).
    assert_eq!(h["commands"].as_array().unwrap().len(), 8);
    assert_eq!(h["commands"][0]["status"], "acknowledged");
    let (_, ev) = op
        .get("/api/v1/devices/UDID-API-1/events?kind=admin.command.enqueued")
        .await;
    let detail = ev["events"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("operate-key"),
        "audited with the key's name: {detail}"
    );
    let all_events = op
        .get("/api/v1/devices/UDID-API-1/events?limit=1000")
        .await
        .1
        .to_string();
    assert!(!all_events.contains("TOKEN-SECRET"));
}

#[tokio::test]
async fn bad_filters_unknown_ids_and_bad_bodies_are_clear_4xx_and_change_nothing() {
    let ts = TestServer::start().await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    enrolled(&ts, "UDID-BAD-1").await;
    let before = event_count(&ts).await;
    for path in [
        "/api/v1/devices?status=maybe",
        "/api/v1/devices?apple_silicon=perhaps",
        "/api/v1/devices?os_version=fourteen",
        "/api/v1/devices?limit=0",
        "/api/v1/devices?limit=5000",
        "/api/v1/devices?escrowed_before=yesterday",
        "/api/v1/devices?colour=blue",
        "/api/v1/devices/UDID-BAD-1/events?outcome=meh",
        "/api/v1/events?outcome=meh",
        "/api/v1/events?limit=0",
        "/api/v1/events?since=yesterday",
        "/api/v1/events?subject=",
        "/api/v1/events?colour=blue",
    ] {
        let (s, b) = admin.get(path).await;
        assert_eq!(s, 400, "{path}: {b}");
        assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}");
    }
    for path in [
        "/api/v1/devices/NOPE",
        "/api/v1/devices/NOPE/users",
        "/api/v1/devices/NOPE/events",
        "/api/v1/devices/NOPE/diagnosis",
        "/api/v1/devices/NOPE/commands",
        "/api/v1/groups/NOPE",
        "/api/v1/devices?group=NOPE",
    ] {
        assert_eq!(admin.get(path).await.0, 404, "{path}");
    }
    let cases = [
        (
            "POST",
            "/api/v1/commands",
            json!({"devices": ["NOPE"], "command": {"type": "UserList"}}),
            404,
        ),
        (
            "POST",
            "/api/v1/commands",
            json!({"devices": [], "command": {"type": "UserList"}}),
            400,
        ),
        (
            "POST",
            "/api/v1/commands",
            json!({"devices": ["UDID-BAD-1"], "command": {"type": "Reboot"}}),
            422,
        ),
        (
            "POST",
            "/api/v1/commands",
            json!({"devices": ["UDID-BAD-1"], "command": {"type": "EraseDevice", "obliteration_behavior": "Sometimes"}}),
            400,
        ),
        (
            "PUT",
            "/api/v1/devices/NOPE/group",
            json!({"group_id": null}),
            404,
        ),
        (
            "PUT",
            "/api/v1/devices/UDID-BAD-1/group",
            json!({"group_id": "NOPE"}),
            404,
        ),
        (
            "DELETE",
            "/api/v1/devices/NOPE/bootstrap-token",
            json!({}),
            404,
        ),
        ("POST", "/api/v1/groups", json!({"name": ""}), 400),
        ("POST", "/api/v1/groups", json!({"nam": "x"}), 422),
        ("PATCH", "/api/v1/groups/NOPE", json!({"name": "x"}), 404),
        ("DELETE", "/api/v1/groups/NOPE", json!({}), 404),
        (
            "POST",
            "/api/v1/apikeys",
            json!({"name": "x", "scope": "root"}),
            400,
        ),
        ("DELETE", "/api/v1/apikeys/NOPE", json!({}), 404),
        ("POST", "/api/v1/push", json!({"devices": []}), 400),
    ];
    for (method, path, body, want) in cases {
        let (s, b) = admin.send(method, path, body.clone()).await;
        assert_eq!(s, want, "{method} {path} {body}: {b}");
    }
    let (s, _) = admin
        .call(
            "POST",
            "/api/v1/commands/raw?devices=UDID-BAD-1",
            Some(b"<plist><dict>".to_vec()),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = admin
        .call("POST", "/api/v1/commands", Some(b"{not json".to_vec()))
        .await;
    assert_eq!(s, 400);
    let (s, _) = admin
        .call(
            "POST",
            "/api/v1/commands/raw?devices=UDID-BAD-1",
            Some(vec![b'<'; 2 << 20]),
        )
        .await;
    assert_eq!(s, 413, "oversized bodies are refused");
    assert_eq!(event_count(&ts).await, before, "nothing was recorded");
    assert_eq!(
        ts.store().active_queue_len("UDID-BAD-1").await.unwrap(),
        0,
        "nothing was queued"
    );
}

#[tokio::test]
async fn groups_crud_membership_and_escrow_off_with_clear_removes_tokens_audited() {
    let ts = TestServer::start().await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    let mac = enrolled(&ts, "UDID-GRP-1").await;
    mac.set_bootstrap_token(Some(b"tok")).await.unwrap();
    let (s, g) = admin
        .send("POST", "/api/v1/groups", json!({"name": "Lab"}))
        .await;
    assert_eq!(s, 201);
    let id = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["bootstrap_escrow_enabled"], true);
    assert_eq!(
        admin
            .send("POST", "/api/v1/groups", json!({"name": "Lab"}))
            .await
            .0,
        409
    );
    let (s, _) = admin
        .send(
            "PUT",
            "/api/v1/devices/UDID-GRP-1/group",
            json!({"group_id": id}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, list) = admin.get(&format!("/api/v1/devices?group={id}")).await;
    assert_eq!(list["devices"][0]["id"], "UDID-GRP-1");

    // Switching escrow off keeps tokens by default …
    let (s, u) = admin
        .send(
            "PATCH",
            &format!("/api/v1/groups/{id}"),
            json!({"bootstrap_escrow_enabled": false}),
        )
        .await;
    assert_eq!((s, u["tokens_cleared"].as_u64()), (200, Some(0)));
    assert!(
        ts.store()
            .bootstrap_token("UDID-GRP-1")
            .await
            .unwrap()
            .is_some()
    );
    // … and with on_escrow_disabled=clear (from on) clears them, one audited event per device.
    admin.send("PATCH", &format!("/api/v1/groups/{id}"), json!({"bootstrap_escrow_enabled": true, "prompt_user_to_allow_bootstrap_token_for_authentication": true})).await;
    let (s, u) = admin
        .send("PATCH", &format!("/api/v1/groups/{id}"), json!({"bootstrap_escrow_enabled": false, "on_escrow_disabled": "clear", "name": "Lab 2"}))
        .await;
    assert_eq!(
        (s, u["tokens_cleared"].as_u64(), u["name"].as_str()),
        (200, Some(1), Some("Lab 2"))
    );
    assert_eq!(
        u["prompt_user_to_allow_bootstrap_token_for_authentication"],
        true
    );
    assert!(
        ts.store()
            .bootstrap_token("UDID-GRP-1")
            .await
            .unwrap()
            .is_none()
    );
    let (_, ev) = admin
        .get("/api/v1/devices/UDID-GRP-1/events?kind=admin.bootstrap_token.cleared")
        .await;
    assert!(
        ev["events"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("escrow switched off")
    );
    // A supported Mac in an escrow-off group is Not configured with the reason beside it, not NA (SOTI: NA
    // means the device does not support a Bootstrap Token); diagnosis says the same.
    let (_, d) = admin.get("/api/v1/devices/UDID-GRP-1").await;
    assert_eq!(d["bootstrap_token"]["label"], "Not configured");
    assert_eq!(d["bootstrap_token"]["status"], "not_escrowed");
    assert_eq!(
        d["bootstrap_token"]["reason"],
        "escrow is off for group Lab 2"
    );
    let (_, diag) = admin.get("/api/v1/devices/UDID-GRP-1/diagnosis").await;
    let finding = diag["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "escrow_off_for_group")
        .unwrap_or_else(|| panic!("{diag}"));
    assert_eq!(finding["summary"], "escrow is off for group Lab 2");
    let (_, na) = admin.get("/api/v1/devices?status=not_supported").await;
    assert!(na["devices"].as_array().unwrap().is_empty(), "{na}");

    assert_eq!(
        admin.get("/api/v1/groups").await.1["groups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/v1/groups/{id}"), None)
            .await
            .0,
        204
    );
    let (_, d) = admin.get("/api/v1/devices/UDID-GRP-1").await;
    assert_eq!(d["group"], Json::Null);
}

#[tokio::test]
async fn a_malformed_inventory_result_is_recorded_as_rejected_and_stores_nothing() {
    let ts = TestServer::start().await.unwrap();
    let op = api(&ts, ApiScope::Operate).await;
    let mac = enrolled(&ts, "UDID-MAL").await;
    // enrolled() answered the enrollment inventory with empty results: those rejections are the baseline.
    let (_, before) = op
        .get("/api/v1/devices/UDID-MAL/events?kind=inventory.rejected&outcome=failure")
        .await;
    let before = before["events"].as_array().unwrap().len();
    for command in ["SecurityInfo", "UserList", "DeviceInformation"] {
        let (s, _) = op
            .send(
                "POST",
                "/api/v1/commands",
                json!({"devices": ["UDID-MAL"], "command": {"type": command}, "push": false}),
            )
            .await;
        assert_eq!(s, 201);
    }
    // Wrong types where dicts and arrays belong, and a UserList whose item is not a dict.
    answer_next(&mac, dict(&[("SecurityInfo", Value::String("yes".into()))])).await;
    answer_next(
        &mac,
        dict(&[("Users", Value::Array(vec![Value::Integer(7.into())]))]),
    )
    .await;
    answer_next(&mac, dict(&[("QueryResponses", Value::Array(vec![]))])).await;
    assert_eq!(ts.store().device_inventory("UDID-MAL").await.unwrap(), None);
    assert!(
        ts.store()
            .device_users("UDID-MAL")
            .await
            .unwrap()
            .is_empty()
    );
    let (_, ev) = op
        .get("/api/v1/devices/UDID-MAL/events?kind=inventory.rejected&outcome=failure")
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), before + 3, "{ev}");
    let (_, d) = op.get("/api/v1/devices/UDID-MAL").await;
    assert_eq!(d["inventory_at"]["security_info"], Json::Null);
}

#[tokio::test]
async fn fleet_events_span_devices_filter_and_page() {
    let ts = TestServer::start().await.unwrap();
    let read = api(&ts, ApiScope::Read).await;
    enrolled(&ts, "UDID-EV-1").await;
    enrolled(&ts, "UDID-EV-2").await;
    let (status, all) = read.get("/api/v1/events?limit=1000").await;
    assert_eq!(status, 200, "{all}");
    let events = all["events"].as_array().unwrap();
    let subjects: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains("UDID-EV-1") && subjects.contains("UDID-EV-2"),
        "{subjects:?}"
    );
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    let (_, one) = read
        .get("/api/v1/events?subject=UDID-EV-2&limit=1000")
        .await;
    let one = one["events"].as_array().unwrap();
    assert!(!one.is_empty());
    assert!(one.iter().all(|e| e["subject"] == "UDID-EV-2"));

    let kind = events[0]["kind"].as_str().unwrap().to_string();
    let (_, by_kind) = read
        .get(&format!("/api/v1/events?kind={kind}&limit=1000"))
        .await;
    assert!(
        by_kind["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == kind.as_str())
    );

    // Paging: pages of 2 walk every event once, in order.
    let mut walked = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/events?limit=2&before_id={b}"),
            None => "/api/v1/events?limit=2".to_string(),
        };
        let (_, page) = read.get(&path).await;
        walked.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next_before_id"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, ids);
}
