//! End-to-end: erase refusal, token clear, NanoMDM-compatible endpoints, API keys and reports over HTTP.

mod common;

use common::{Api, api, enrolled, key, uuid_of};
use serde_json::json;
use store::ApiScope;
use testkit::TestServer;

#[tokio::test]
async fn erase_is_refused_without_a_usable_token_unless_forced_and_token_clear_is_audited() {
    let ts = TestServer::start().await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    let mac = enrolled(&ts, "UDID-ERASE").await;
    let erase = json!({"devices": ["UDID-ERASE"], "command": {"type": "EraseDevice", "obliteration_behavior": "DoNotObliterate"}, "push": false});
    let (s, b) = admin.send("POST", "/api/v1/commands", erase.clone()).await;
    assert_eq!(s, 409);
    assert!(
        b["error"].as_str().unwrap().contains("no Bootstrap Token"),
        "{b}"
    );
    assert_eq!(ts.store().active_queue_len("UDID-ERASE").await.unwrap(), 0);
    let mut forced = erase.clone();
    forced["force"] = json!(true);
    let (s, b) = admin.send("POST", "/api/v1/commands", forced).await;
    assert_eq!(s, 201, "{b}");
    let reply = mac.idle().await.unwrap();
    assert!(String::from_utf8_lossy(&reply.body).contains("DoNotObliterate"));

    mac.set_bootstrap_token(Some(b"tok")).await.unwrap();
    let (s, b) = admin
        .call("DELETE", "/api/v1/devices/UDID-ERASE/bootstrap-token", None)
        .await;
    assert_eq!((s, b["cleared"].as_bool()), (200, Some(true)));
    let (_, b) = admin
        .call("DELETE", "/api/v1/devices/UDID-ERASE/bootstrap-token", None)
        .await;
    assert_eq!(b["cleared"], false);
    let (_, ev) = admin
        .get("/api/v1/devices/UDID-ERASE/events?kind=admin.bootstrap_token.cleared")
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_raw_or_nanomdm_erase_is_refused_without_a_usable_token_unless_forced() {
    let ts = TestServer::start().await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    let key = key(&ts, ApiScope::Operate).await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("nanomdm:{key}"));
    let nano = Api {
        base: ts.admin_url(),
        auth: Some(format!("Basic {basic}")),
    };
    let mac = enrolled(&ts, "UDID-RAW-ERASE").await;
    let erase = |uuid: &str| {
        protocol::command::Command::erase_device(uuid.into(), None, None)
            .to_xml()
            .unwrap()
    };
    let queued = |ts: &TestServer| {
        let store = ts.store();
        async move { store.active_queue_len("UDID-RAW-ERASE").await.unwrap() }
    };

    // Raw admin API: refused (409, with the reason), nothing queued.
    let (s, b) = admin
        .call(
            "POST",
            "/api/v1/commands/raw?devices=UDID-RAW-ERASE&nopush",
            Some(erase("RAW-ERASE-1")),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("no Bootstrap Token"),
        "{b}"
    );
    // NanoMDM-compatible API: refused the same way, in NanoMDM's shape.
    let (s, b) = nano
        .call(
            "PUT",
            "/v1/enqueue/UDID-RAW-ERASE?nopush",
            Some(erase("NANO-ERASE-1")),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["command_error"]
            .as_str()
            .unwrap()
            .contains("no Bootstrap Token"),
        "{b}"
    );
    // force=false is no force, and a garbled force is a 400; neither queues anything.
    let (s, _) = nano
        .call(
            "PUT",
            "/v1/enqueue/UDID-RAW-ERASE?nopush&force=false",
            Some(erase("NANO-ERASE-2")),
        )
        .await;
    assert_eq!(s, 409);
    let (s, b) = nano
        .call(
            "PUT",
            "/v1/enqueue/UDID-RAW-ERASE?nopush&force=perhaps",
            Some(erase("NANO-ERASE-3")),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = admin
        .call(
            "POST",
            "/api/v1/commands/raw?devices=UDID-RAW-ERASE&nopush&force=perhaps",
            Some(erase("RAW-ERASE-2")),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(queued(&ts).await, 0);
    let (_, ev) = admin
        .get("/api/v1/devices/UDID-RAW-ERASE/events?kind=admin.command.refused")
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 3, "{ev}");

    // Other raw commands are not affected.
    let info = protocol::command::Command::security_info("RAW-INFO".into())
        .to_xml()
        .unwrap();
    let (s, _) = nano
        .call("PUT", "/v1/enqueue/UDID-RAW-ERASE?nopush", Some(info))
        .await;
    assert_eq!(s, 200);
    assert_eq!(uuid_of(&mac.idle().await.unwrap().body), "RAW-INFO");

    // Forced, both queue.
    let (s, b) = admin
        .call(
            "POST",
            "/api/v1/commands/raw?devices=UDID-RAW-ERASE&nopush&force=true",
            Some(erase("RAW-ERASE-F")),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = nano
        .call(
            "PUT",
            "/v1/enqueue/UDID-RAW-ERASE?nopush&force",
            Some(erase("NANO-ERASE-F")),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(queued(&ts).await, 3);
}

#[tokio::test]
async fn nanomdm_enqueue_and_push_answer_in_nanomdms_shape_with_basic_auth() {
    let ts = TestServer::start().await.unwrap();
    let key = key(&ts, ApiScope::Operate).await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("nanomdm:{key}"));
    let nano = Api {
        base: ts.admin_url(),
        auth: Some(format!("Basic {basic}")),
    };
    let mac = enrolled(&ts, "UDID-NANO").await;
    let cmd = protocol::command::Command::security_info("NANO-UUID-1".into())
        .to_xml()
        .unwrap();

    let (s, b) = nano
        .call("PUT", "/v1/enqueue/UDID-NANO?nopush", Some(cmd))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"no_push": true, "command_uuid": "NANO-UUID-1", "request_type": "SecurityInfo"})
    );
    assert_eq!(uuid_of(&mac.idle().await.unwrap().body), "NANO-UUID-1");

    let cmd2 = protocol::command::Command::user_list("NANO-UUID-2".into())
        .to_xml()
        .unwrap();
    let (s, b) = nano.call("PUT", "/v1/enqueue/UDID-NANO", Some(cmd2)).await;
    assert_eq!(s, 500, "every push failed: {b}");
    assert_eq!(
        b["status"]["UDID-NANO"]["push_error"],
        "no push certificate is configured"
    );
    assert_eq!(b["command_uuid"], "NANO-UUID-2");

    for method in ["GET", "POST"] {
        let (s, b) = nano.call(method, "/v1/push/UDID-NANO,NOPE", None).await;
        assert_eq!(s, 500);
        assert_eq!(b["status"]["NOPE"]["push_error"], "not enrolled");
    }
    let (s, b) = nano
        .call(
            "PUT",
            "/v1/enqueue/NOPE",
            Some(
                protocol::command::Command::user_list("U3".into())
                    .to_xml()
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(s, 500);
    assert!(b["command_error"].as_str().unwrap().contains("NOPE"));
    let (s, b) = nano
        .call("PUT", "/v1/enqueue/UDID-NANO", Some(b"garbage".to_vec()))
        .await;
    assert_eq!(s, 400);
    assert!(b["command_error"].is_string());
    let (s, _) = nano
        .call("PUT", "/v1/enqueue/UDID-NANO,", Some(vec![]))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_without_hashes_and_revoked_keys_stop_working() {
    let ts = TestServer::start().await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    let (s, k) = admin
        .send(
            "POST",
            "/api/v1/apikeys",
            json!({"name": "grafana", "scope": "read"}),
        )
        .await;
    assert_eq!(s, 201);
    let new = Api {
        base: ts.admin_url(),
        auth: Some(format!("Bearer {}", k["key"].as_str().unwrap())),
    };
    assert_eq!(new.get("/api/v1/devices").await.0, 200);
    let (_, list) = admin.get("/api/v1/apikeys").await;
    let text = list.to_string();
    assert!(
        !text.contains(k["key"].as_str().unwrap()) && !text.contains("hash"),
        "{text}"
    );
    let id = k["id"].as_str().unwrap();
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/v1/apikeys/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(new.get("/api/v1/devices").await.0, 401);
}

#[tokio::test]
async fn fleet_summary_and_csv_reports_list_macs_without_tokens_and_users_without_secure_token() {
    let ts = TestServer::start().await.unwrap();
    let read = api(&ts, ApiScope::Read).await;
    let with = enrolled(&ts, "UDID-REP-1").await;
    with.set_bootstrap_token(Some(b"tok")).await.unwrap();
    enrolled(&ts, "UDID-REP-2").await;
    let u = |name: &str, st: bool| store::DeviceUser {
        device_id: "UDID-REP-1".into(),
        source: store::FactSource::Mdm,
        user_key: name.into(),
        short_name: Some(name.into()),
        full_name: Some("=cmd|' /C calc'!A0".into()),
        uid: None,
        guid: None,
        has_secure_token: Some(st),
        mobile_account: None,
        is_logged_in: Some(false),
        is_admin: None,
        filevault_enabled: None,
        volume_owner: None,
        managed_admin: None,
        observed_at: 5,
    };
    ts.store()
        .replace_device_users(
            "UDID-REP-1",
            store::FactSource::Mdm,
            &[u("alice", true), u("bob", false)],
        )
        .await
        .unwrap();

    let (s, sum) = read.get("/api/v1/reports/summary").await;
    assert_eq!(s, 200);
    assert_eq!(sum["devices"], 2);
    assert_eq!(sum["bootstrap_token"]["escrowed"], 1);
    assert_eq!(sum["bootstrap_token"]["not_escrowed"], 1);
    assert_eq!(sum["users_without_secure_token"], 1);

    let raw = |path: &str| {
        let base = ts.admin_url();
        let auth = read.auth.clone().unwrap();
        let path = path.to_string();
        async move {
            let req = testkit::http::client()
                .get(format!("{base}{path}"))
                .header("authorization", auth);
            let reply = testkit::http::send(req).await.unwrap();
            (reply.status, String::from_utf8(reply.body).unwrap())
        }
    };
    let (s, csv) = raw("/api/v1/reports/without-bootstrap-token.csv").await;
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("device_id,"));
    assert!(lines[1].starts_with("\"UDID-REP-2\""));
    let (_, csv) = raw("/api/v1/reports/users-without-secure-token").await;
    assert!(
        csv.contains("\"bob\"") && !csv.contains("\"alice\""),
        "{csv}"
    );
    assert!(csv.contains("\"'=cmd"), "formula cells are defused: {csv}");
    assert_eq!(raw("/api/v1/reports/everything").await.0, 404);
}
