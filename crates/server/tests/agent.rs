//! End-to-end over HTTP: agent install through MDM (InstallProfile with the com.escrowd.agent payload),
//! registration with the one-time secret, signed requests (bad signature, replay, stale, unknown agent and
//! oversized bodies refused with nothing changed), actions with HPKE-sealed credentials that never appear in
//! any answer, event or stored row, results, cancel, and agent inventory in the Users table.

mod common;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{api, enrolled, event_count, raw, uuid_of};
use protocol::agent_profile::{self, action_seal_info};
use serde_json::{Value as Json, json};
use store::ApiScope;
use testkit::TestServer;

const ADMIN_PW: &str = "Adm1n-Pa55-XYZ";
const USER_PW: &str = "Us3r-Pa55-QRS";

struct Agent {
    base: String,
    id: String,
    key: SigningKey,
    hpke: HpkeKeyPair,
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Agent {
    fn headers(
        &self,
        method: &str,
        path: &str,
        ts: i64,
        nonce: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        agent::client::signed_headers(&self.key, &self.id, method, path, ts, nonce, body)
    }

    async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Json) {
        let h = self.headers(method, path, now_secs(), &nonce(), &body);
        raw(&self.base, method, path, &h, body).await
    }
}

async fn installed_agent(ts: &TestServer, udid: &str) -> Agent {
    installed_agent_with_mac(ts, udid).await.0
}

async fn installed_agent_with_mac(ts: &TestServer, udid: &str) -> (Agent, testkit::TestDevice) {
    let mac = enrolled(ts, udid).await;
    let op = api(ts, ApiScope::Operate).await;
    let (status, body) = op
        .send(
            "POST",
            &format!("/api/v1/devices/{udid}/agent"),
            json!({"server_url": ts.base_url()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // The Mac fetches the InstallProfile and the profile holds the settings.
    let reply = mac.idle().await.unwrap();
    assert_eq!(uuid_of(&reply.body), body["command_uuid"].as_str().unwrap());
    let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    let settings = agent_profile::parse_agent_settings(cmd["Payload"].as_data().unwrap()).unwrap();
    assert_eq!(settings.device_id, udid);
    let key = SigningKey::generate().unwrap();
    let hpke = HpkeKeyPair::generate();
    let reg = json!({
        "device_id": udid,
        "registration_secret": settings.registration_secret.expose(),
        "signing_key": B64.encode(key.public_key()),
        "hpke_key": B64.encode(hpke.public_key()),
    });
    let (status, answer) = raw(
        &ts.base_url(),
        "POST",
        "/agent/v1/register",
        &[],
        reg.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    // Single use.
    let (again, _) = raw(
        &ts.base_url(),
        "POST",
        "/agent/v1/register",
        &[],
        reg.to_string().into_bytes(),
    )
    .await;
    assert_eq!(again, 401);
    let agent = Agent {
        base: ts.base_url(),
        id: answer["agent_id"].as_str().unwrap().to_string(),
        key,
        hpke,
    };
    (agent, mac)
}

/// The Mac acknowledges its queued commands (answering a UserList with `users`) until it has answered one
/// UserList; returns the request types it saw.
async fn answer_user_list(mac: &testkit::TestDevice, users: &[plist::Dictionary]) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..10 {
        let reply = mac.idle().await.unwrap();
        assert!(!reply.body.is_empty(), "no UserList queued; saw {seen:?}");
        let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
        let request_type = v.as_dictionary().unwrap()["Command"]
            .as_dictionary()
            .unwrap()["RequestType"]
            .as_string()
            .unwrap()
            .to_string();
        let mut extra = plist::Dictionary::new();
        if request_type == "UserList" {
            extra.insert(
                "Users".into(),
                plist::Value::Array(
                    users
                        .iter()
                        .cloned()
                        .map(plist::Value::Dictionary)
                        .collect(),
                ),
            );
        }
        let r = mac
            .connect(testkit::messages::report(
                &mac.udid,
                "Acknowledged",
                Some(&uuid_of(&reply.body)),
                extra,
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        seen.push(request_type.clone());
        if request_type == "UserList" {
            return seen;
        }
    }
    panic!("no UserList among {seen:?}");
}

fn mdm_user(name: &str, guid: &str, secure_token: bool) -> plist::Dictionary {
    let mut d = plist::Dictionary::new();
    d.insert("UserName".into(), name.into());
    d.insert("UserGUID".into(), guid.into());
    d.insert("UID".into(), plist::Value::Integer(501.into()));
    d.insert("HasSecureToken".into(), secure_token.into());
    d.insert("IsLoggedIn".into(), false.into());
    d.insert("MobileAccount".into(), false.into());
    d
}

#[tokio::test]
async fn mdm_and_agent_facts_make_one_users_row_per_user_and_reports_and_diagnosis_agree() {
    const LADMIN: &str = "85F41F44-22B3-6CB7-85A1-BCC2EA2B887A";
    const KIOSK: &str = "11111111-2222-3333-4444-555555555555";
    let ts = TestServer::start().await.unwrap();
    let udid = "AGENT-MAC-USERS";
    let (agent, mac) = installed_agent_with_mac(&ts, udid).await;
    let op = api(&ts, ApiScope::Operate).await;
    // MDM: ladmin without a token (before a transfer), kiosk with one.
    let (s, b) = op
        .send(
            "POST",
            "/api/v1/commands",
            json!({"devices": [udid], "command": {"type": "UserList"}, "push": false}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    answer_user_list(
        &mac,
        &[
            mdm_user("ladmin", LADMIN, false),
            mdm_user("kiosk", KIOSK, true),
        ],
    )
    .await;
    // The agent, after the transfer: ladmin holds a token now. It sends GeneratedUID (in any case) for
    // ladmin; kiosk comes without one, as from an older agent, and is matched on its short name.
    let body = json!({"users": [
        {"short_name": "ladmin", "uid": 501, "admin": true, "secure_token": true, "filevault": true,
         "generated_uid": LADMIN.to_lowercase()},
        {"short_name": "kiosk", "uid": 502, "admin": false, "secure_token": true, "filevault": true}
    ]});
    let (s, r) = agent
        .call("POST", "/agent/v1/inventory", body.to_string().into_bytes())
        .await;
    assert_eq!(s, 200, "{r}");

    let (s, users) = op.get(&format!("/api/v1/devices/{udid}/users")).await;
    assert_eq!(s, 200, "{users}");
    let rows = users["users"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per user: {users}");
    let ladmin = rows.iter().find(|u| u["short_name"] == "ladmin").unwrap();
    assert_eq!(ladmin["guid"], LADMIN);
    assert_eq!(ladmin["has_secure_token"]["value"], true, "{ladmin}");
    assert_eq!(ladmin["has_secure_token"]["source"], "agent");
    // The older MDM word is kept as a conflict, not as a second row.
    assert_eq!(ladmin["has_secure_token"]["conflict"]["value"], false);
    assert_eq!(ladmin["has_secure_token"]["conflict"]["source"], "mdm");
    assert_eq!(ladmin["is_admin"]["value"], true);
    let kiosk = rows.iter().find(|u| u["short_name"] == "kiosk").unwrap();
    assert_eq!(kiosk["guid"], KIOSK);
    assert!(kiosk["has_secure_token"]["conflict"].is_null(), "{kiosk}");

    // Counts, the list filter and the report use the merged rows: nobody lacks a token any more.
    let (_, d) = op.get(&format!("/api/v1/devices/{udid}")).await;
    assert_eq!(
        (
            d["users"].as_u64(),
            d["users_without_secure_token"].as_u64()
        ),
        (Some(2), Some(0)),
        "{d}"
    );
    let (_, without) = op
        .get("/api/v1/devices?users_without_secure_token=true")
        .await;
    assert!(
        without["devices"].as_array().unwrap().is_empty(),
        "{without}"
    );
    let mdm = ts.running().state.mdm.clone();
    let (csv, _) = mdm
        .report_page(service::reports::Report::UsersWithoutSecureToken, None)
        .await
        .unwrap();
    assert!(!csv.contains("ladmin"), "{csv}");

    // Diagnosis names each token holder once.
    let (_, diag) = op.get(&format!("/api/v1/devices/{udid}/diagnosis")).await;
    let evidence = diag.to_string();
    assert!(evidence.contains("Secure Token holders"), "{evidence}");
    assert_eq!(evidence.matches("kiosk (").count(), 1, "{evidence}");

    // A GeneratedUID that is no GUID is refused and changes nothing.
    let bad = json!({"users": [{"short_name": "ladmin", "uid": 501, "admin": true, "filevault": true, "generated_uid": "not-a-guid"}]});
    let (s, b) = agent
        .call("POST", "/agent/v1/inventory", bad.to_string().into_bytes())
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.to_string().contains("generated_uid"), "{b}");
    assert_eq!(ts.store().device_users(udid).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_successful_agent_action_asks_user_list_again_once() {
    let ts = TestServer::start().await.unwrap();
    let udid = "AGENT-MAC-REFRESH";
    let agent = installed_agent(&ts, udid).await;
    let op = api(&ts, ApiScope::Operate).await;
    let finish = async |kind: &str, succeeded: bool| {
        let mut body = json!({"kind": kind, "admin": "ladmin", "admin_password": ADMIN_PW});
        if kind == "grant_secure_token" {
            body["user"] = json!("alice");
            body["user_password"] = json!(USER_PW);
        }
        let (s, created) = op
            .send("POST", &format!("/api/v1/devices/{udid}/actions"), body)
            .await;
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(agent.call("GET", "/agent/v1/actions", vec![]).await.0, 200);
        let (s, r) = agent
            .call(
                "POST",
                &format!("/agent/v1/actions/{id}/result"),
                json!({"succeeded": succeeded}).to_string().into_bytes(),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    };
    let user_lists = async || {
        ts.store()
            .active_request_types(udid)
            .await
            .unwrap()
            .iter()
            .filter(|t| *t == "UserList")
            .count()
    };
    // A failed action or a read-only one changes no users: nothing asked.
    finish("grant_secure_token", false).await;
    finish("validate_bootstrap_token", true).await;
    assert_eq!(user_lists().await, 0);
    // A successful grant: UserList queued once (no push of its own; it waits for the next check-in).
    finish("grant_secure_token", true).await;
    assert_eq!(user_lists().await, 1);
    finish("grant_secure_token", true).await;
    assert_eq!(user_lists().await, 1, "still queued, and within the window");
}

#[tokio::test]
async fn registration_secret_is_single_use_and_bound_to_its_device() {
    let ts = TestServer::start().await.unwrap();
    let _other = enrolled(&ts, "OTHER-MAC").await;
    let agent = installed_agent(&ts, "AGENT-MAC-1").await;
    assert!(ts.store().agent(&agent.id).await.unwrap().is_some());
    // A secret for one Mac does not register another; garbage bodies are 400.
    let op = api(&ts, ApiScope::Operate).await;
    let (s, _) = op
        .send(
            "POST",
            "/api/v1/devices/AGENT-MAC-1/agent",
            json!({"server_url": ts.base_url()}),
        )
        .await;
    assert_eq!(s, 202);
    for (body, want) in [
        (b"not json".to_vec(), 400),
        (json!({"device_id": "OTHER-MAC", "registration_secret": "00", "signing_key": B64.encode([1u8; 32]), "hpke_key": B64.encode(HpkeKeyPair::generate().public_key())}).to_string().into_bytes(), 401),
        (json!({"device_id": "OTHER-MAC", "registration_secret": "00", "signing_key": "short", "hpke_key": "x"}).to_string().into_bytes(), 400),
    ] {
        let (status, _) = raw(&ts.base_url(), "POST", "/agent/v1/register", &[], body).await;
        assert_eq!(status, want);
    }
    assert!(
        ts.store()
            .agent_for_device("OTHER-MAC")
            .await
            .unwrap()
            .is_none()
    );
    // Read keys may not install agents.
    let read = api(&ts, ApiScope::Read).await;
    let (s, _) = read
        .send(
            "POST",
            "/api/v1/devices/AGENT-MAC-1/agent",
            json!({"server_url": ts.base_url()}),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn hostile_agent_requests_are_refused_and_change_nothing() {
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, "AGENT-MAC-2").await;
    let before_seen = ts
        .store()
        .agent(&agent.id)
        .await
        .unwrap()
        .unwrap()
        .last_seen_at;
    // Counted per source and hour (anyone can send these), not stored one event each.
    let failures = || async { ts.auth_failure_total("agent.auth_failed").await };
    let path = "/agent/v1/inventory";
    let body = json!({"users": [{"short_name": "mallory", "uid": 501, "admin": true, "secure_token": true, "filevault": true}]})
        .to_string()
        .into_bytes();
    // Bad signature: signed by another key.
    let forger = Agent {
        key: SigningKey::generate().unwrap(),
        hpke: HpkeKeyPair::generate(),
        id: agent.id.clone(),
        base: agent.base.clone(),
    };
    assert_eq!(forger.call("POST", path, body.clone()).await.0, 401);
    // Body changed after signing.
    let mut h = agent.headers("POST", path, now_secs(), &nonce(), &body);
    assert_eq!(
        raw(&agent.base, "POST", path, &h, b"{\"users\":[]}".to_vec())
            .await
            .0,
        401
    );
    // Stale timestamp.
    h = agent.headers("POST", path, now_secs() - 600, &nonce(), &body);
    assert_eq!(
        raw(&agent.base, "POST", path, &h, body.clone()).await.0,
        401
    );
    // Unknown agent.
    let ghost = Agent {
        id: "no-such-agent".into(),
        key: SigningKey::generate().unwrap(),
        hpke: HpkeKeyPair::generate(),
        base: agent.base.clone(),
    };
    assert_eq!(ghost.call("POST", path, body.clone()).await.0, 401);
    // No headers at all, or one of the four missing: 401 naming the missing header.
    let (s, b) = raw(&agent.base, "POST", path, &[], body.clone()).await;
    assert_eq!(s, 401);
    assert!(b.to_string().contains("must be signed"), "{b}");
    let all = agent.headers("POST", path, now_secs(), &nonce(), &body);
    for skip in 0..all.len() {
        let some: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| h.clone())
            .collect();
        let (s, b) = raw(&agent.base, "POST", path, &some, body.clone()).await;
        assert_eq!(s, 401);
        assert!(b.to_string().contains(all[skip].0), "{b}");
    }
    assert_eq!(failures().await, 4);
    assert!(
        ts.store()
            .device_users("AGENT-MAC-2")
            .await
            .unwrap()
            .is_empty()
    );
    // Replay: the first use works, the same nonce again is refused.
    let n = nonce();
    let h = agent.headers("GET", "/agent/v1/actions", now_secs(), &n, b"");
    assert_eq!(
        raw(&agent.base, "GET", "/agent/v1/actions", &h, vec![])
            .await
            .0,
        200
    );
    assert_eq!(
        raw(&agent.base, "GET", "/agent/v1/actions", &h, vec![])
            .await
            .0,
        401
    );
    assert_eq!(failures().await, 5);
    // Oversized body: 413, nothing stored.
    let big = vec![b'x'; 512 * 1024];
    assert_eq!(agent.call("POST", path, big).await.0, 413);
    assert!(
        ts.store()
            .device_users("AGENT-MAC-2")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ts.store()
            .agent(&agent.id)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at
            >= before_seen
    );
}

#[tokio::test]
async fn action_credentials_are_sealed_to_the_agent_and_never_shown() {
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, "AGENT-MAC-3").await;
    let op = api(&ts, ApiScope::Operate).await;
    let (status, created) = op
        .send(
            "POST",
            "/api/v1/devices/AGENT-MAC-3/actions",
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
                   "user_password": USER_PW, "admin_password": format!("{ADMIN_PW}-%username%")}),
        )
        .await;
    // No user is logged in: the %username% wildcard cannot expand, nothing is stored.
    assert_eq!(status, 400, "{created}");
    testkit::assert_no_secret(created.to_string(), &[ADMIN_PW.as_bytes()]);
    let (status, created) = op
        .send(
            "POST",
            "/api/v1/devices/AGENT-MAC-3/actions",
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
                   "user_password": USER_PW, "admin_password": ADMIN_PW}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "queued");
    let id = created["id"].as_str().unwrap().to_string();
    // Malformed, unknown kinds and missing passwords are refused.
    for bad in [
        json!({"kind": "format_disk"}),
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin"}),
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin", "user_password": 5}),
    ] {
        let (s, b) = op
            .send("POST", "/api/v1/devices/AGENT-MAC-3/actions", bad)
            .await;
        assert_eq!(s, 400, "{b}");
    }
    // The agent receives it sealed and opens it.
    let (s, polled) = agent.call("GET", "/agent/v1/actions", vec![]).await;
    assert_eq!(s, 200);
    let a = &polled["actions"][0];
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["params"]["user"], "alice");
    let blob = B64.decode(a["sealed"].as_str().unwrap()).unwrap();
    let plain = agent
        .hpke
        .open(&action_seal_info(&id), id.as_bytes(), &blob)
        .unwrap();
    let creds: Json = serde_json::from_slice(plain.expose()).unwrap();
    assert_eq!(creds["admin_password"], ADMIN_PW);
    assert_eq!(creds["user_password"], USER_PW);
    // Bound to its action id.
    assert!(
        agent
            .hpke
            .open(&action_seal_info("other"), id.as_bytes(), &blob)
            .is_err()
    );
    // The result ends it and deletes the ciphertext.
    let (s, r) = agent
        .call("POST", &format!("/agent/v1/actions/{id}/result"),
              json!({"succeeded": false, "reason": "wrong_admin_password", "output": "sysadminctl: authentication failed"}).to_string().into_bytes())
        .await;
    assert_eq!(s, 200, "{r}");
    let stored = ts.store().agent_action(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, store::ActionStatus::Failed);
    assert_eq!(stored.sealed, None);
    let (s, shown) = op
        .get(&format!("/api/v1/devices/AGENT-MAC-3/actions/{id}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(shown["reason"], "wrong_admin_password");
    // A second result is a conflict; cancelling an ended action too.
    let (s, _) = agent
        .call(
            "POST",
            &format!("/agent/v1/actions/{id}/result"),
            json!({"succeeded": true}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = op
        .send(
            "POST",
            &format!("/api/v1/devices/AGENT-MAC-3/actions/{id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409);
    // Cancel a fresh one.
    let (_, second) = op
        .send("POST", "/api/v1/devices/AGENT-MAC-3/actions",
              json!({"kind": "validate_bootstrap_token", "admin": "ladmin", "admin_password": ADMIN_PW}))
        .await;
    let id2 = second["id"].as_str().unwrap();
    let (s, c) = op
        .send(
            "POST",
            &format!("/api/v1/devices/AGENT-MAC-3/actions/{id2}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(
        ts.store().agent_action(id2).await.unwrap().unwrap().sealed,
        None
    );
    let (s, listed) = op.get("/api/v1/devices/AGENT-MAC-3/actions").await;
    assert_eq!(s, 200);
    assert_eq!(listed["actions"].as_array().unwrap().len(), 2);
    // No password anywhere: answers, events.
    for text in [
        listed.to_string(),
        shown.to_string(),
        created.to_string(),
        polled.to_string(),
    ] {
        testkit::assert_no_secret(&text, &[ADMIN_PW.as_bytes(), USER_PW.as_bytes()]);
    }
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(events.len() >= event_count(&ts).await.min(1));
    for e in events {
        testkit::assert_no_secret(&e.detail, &[ADMIN_PW.as_bytes(), USER_PW.as_bytes()]);
    }
}

#[tokio::test]
async fn agent_inventory_lands_in_the_users_table_beside_mdm_facts() {
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, "AGENT-MAC-4").await;
    let body = json!({"os_version": "14.0", "problems": [], "users": [
        {"short_name": "ladmin", "uid": 501, "real_name": "Local Admin", "admin": true, "secure_token": true, "secure_token_tag": true, "filevault": true, "volume_owner": true, "managed_admin": false},
        {"short_name": "alice", "uid": 502, "admin": false, "secure_token": false, "filevault": false, "volume_owner": null}
    ]});
    let (s, r) = agent
        .call("POST", "/agent/v1/inventory", body.to_string().into_bytes())
        .await;
    assert_eq!(s, 200, "{r}");
    let op = api(&ts, ApiScope::Read).await;
    let (s, users) = op.get("/api/v1/devices/AGENT-MAC-4/users").await;
    assert_eq!(s, 200, "{users}");
    let text = users.to_string();
    assert!(text.contains("ladmin") && text.contains("alice"), "{text}");
    let rows = ts.store().device_users("AGENT-MAC-4").await.unwrap();
    let ladmin = rows.iter().find(|u| u.user_key == "ladmin").unwrap();
    assert_eq!(ladmin.has_secure_token, Some(true));
    assert_eq!(ladmin.source, store::FactSource::Agent);
    // A duplicate user is refused and changes nothing.
    let dup = json!({"users": [{"short_name": "x", "uid": 1, "admin": false, "filevault": false}, {"short_name": "x", "uid": 1, "admin": false, "filevault": false}]});
    let (s, _) = agent
        .call("POST", "/agent/v1/inventory", dup.to_string().into_bytes())
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        ts.store().device_users("AGENT-MAC-4").await.unwrap().len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_poll_is_nudged_by_a_new_action_and_bad_waits_are_refused() {
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, "AGENT-MAC-NUDGE").await;
    let op = api(&ts, ApiScope::Operate).await;

    // Nothing queued and a short wait: an empty answer once the wait is over.
    let (s, empty) = agent.call("GET", "/agent/v1/actions?wait=1", vec![]).await;
    assert_eq!(s, 200, "{empty}");
    assert_eq!(empty["actions"], json!([]));

    // A long wait, then an action is queued: the waiting poll answers with it. Without the nudge the poll
    // would only find the action when its 50 s wait ran out, after the 40 s this test allows (a liveness
    // bound far above the milliseconds a nudge takes, not a speed check).
    let waiting = {
        let base = agent.base.clone();
        let h = agent.headers(
            "GET",
            "/agent/v1/actions?wait=50",
            now_secs(),
            &nonce(),
            b"",
        );
        tokio::spawn(
            async move { raw(&base, "GET", "/agent/v1/actions?wait=50", &h, vec![]).await },
        )
    };
    // Give the poll time to start waiting (if it has not, it simply finds the action on its first read).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, created) = op
        .send(
            "POST",
            "/api/v1/devices/AGENT-MAC-NUDGE/actions",
            json!({"kind": "troubleshoot"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let (s, polled) = tokio::time::timeout(std::time::Duration::from_secs(40), waiting)
        .await
        .expect("the waiting poll was not nudged by the new action")
        .unwrap();
    assert_eq!(s, 200, "{polled}");
    assert_eq!(polled["actions"][0]["id"], created["id"], "{polled}");

    // Delivered actions come back until their result is in; then a poll has nothing.
    let id = created["id"].as_str().unwrap();
    let (_, again) = agent.call("GET", "/agent/v1/actions?wait=0", vec![]).await;
    assert_eq!(again["actions"][0]["id"], id);
    let (s, _) = agent
        .call(
            "POST",
            &format!("/agent/v1/actions/{id}/result"),
            json!({"succeeded": true}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, 200);
    let (_, next) = agent.call("GET", "/agent/v1/actions?wait=0", vec![]).await;
    assert_eq!(next["actions"], json!([]));

    // Bad waits: a clear 400, and nothing is delivered by them.
    let (s, _) = op
        .send(
            "POST",
            "/api/v1/devices/AGENT-MAC-NUDGE/actions",
            json!({"kind": "troubleshoot"}),
        )
        .await;
    assert_eq!(s, 201);
    for bad in [
        "/agent/v1/actions?wait=soon",
        "/agent/v1/actions?wait=-1",
        "/agent/v1/actions?wait=99999999999999999999999",
        "/agent/v1/actions?wait=1&extra=1",
    ] {
        let (s, b) = agent.call("GET", bad, vec![]).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b.to_string().contains("wait"), "{bad}: {b}");
    }
    let (_, left) = agent.call("GET", "/agent/v1/actions", vec![]).await;
    assert_eq!(left["actions"].as_array().unwrap().len(), 1, "{left}");
}

#[tokio::test]
async fn a_managed_admin_without_a_secure_token_in_agent_inventory_is_a_diagnosis_finding() {
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, "AGENT-MAC-5").await;
    let inventory = |mgmt_token: bool| {
        json!({"os_version": "14.0", "problems": [], "users": [
            {"short_name": "ladmin", "uid": 501, "admin": true, "secure_token": true, "secure_token_tag": true, "filevault": true, "volume_owner": true, "managed_admin": false},
            {"short_name": "mgmt", "uid": 480, "real_name": "Management", "admin": true, "secure_token": mgmt_token, "secure_token_tag": mgmt_token, "filevault": false, "volume_owner": mgmt_token, "managed_admin": true}
        ]})
        .to_string()
        .into_bytes()
    };
    let (s, r) = agent
        .call("POST", "/agent/v1/inventory", inventory(false))
        .await;
    assert_eq!(s, 200, "{r}");
    let read = api(&ts, ApiScope::Read).await;
    let (s, users) = read.get("/api/v1/devices/AGENT-MAC-5/users").await;
    assert_eq!(s, 200, "{users}");
    let mgmt = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["short_name"] == "mgmt")
        .unwrap();
    assert_eq!(mgmt["managed_admin"]["value"], true, "{mgmt}");
    assert_eq!(mgmt["managed_admin"]["source"], "agent", "{mgmt}");
    assert!(mgmt["managed_admin"]["at"].as_i64().is_some(), "{mgmt}");

    let (s, d) = read.get("/api/v1/devices/AGENT-MAC-5/diagnosis").await;
    assert_eq!(s, 200, "{d}");
    let finding = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "managed_admin_lacks_secure_token")
        .unwrap_or_else(|| panic!("no managed admin finding: {d}"))
        .clone();
    assert_eq!(finding["severity"], "warning", "{finding}");
    let evidence = finding["evidence"].to_string();
    assert!(
        evidence.contains("mgmt is the ADE managed admin (source agent"),
        "{evidence}"
    );
    assert!(
        evidence.contains("other Secure Token holders: ladmin"),
        "{evidence}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains(
            "escrowd action create AGENT-MAC-5 grant_secure_token --user mgmt --admin ladmin"
        ),
        "{fix}"
    );

    // Once the agent sees a token on the managed admin, the finding is gone.
    let (s, r) = agent
        .call("POST", "/agent/v1/inventory", inventory(true))
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, d) = read.get("/api/v1/devices/AGENT-MAC-5/diagnosis").await;
    assert!(
        !d.to_string().contains("managed_admin_lacks_secure_token"),
        "{d}"
    );
}

/// The device's events of one kind, oldest first, over the admin API.
async fn device_events(ts: &TestServer, udid: &str, kind: &str) -> Vec<Json> {
    let read = api(ts, ApiScope::Read).await;
    let (status, body) = read
        .get(&format!("/api/v1/devices/{udid}/events?kind={kind}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut events = body["events"].as_array().unwrap().clone();
    events.reverse();
    events
}

#[tokio::test]
async fn troubleshoot_results_become_one_cleaned_capped_event_per_command() {
    const UDID: &str = "AGENT-MAC-TS";
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, UDID).await;
    let op = api(&ts, ApiScope::Operate).await;
    let actions = format!("/api/v1/devices/{UDID}/actions");
    // The admin for profiles validate comes with its password or not at all.
    for half in [
        json!({"kind": "troubleshoot", "admin": "ladmin"}),
        json!({"kind": "troubleshoot", "admin_password": ADMIN_PW}),
    ] {
        let (status, body) = op.send("POST", &actions, half).await;
        assert_eq!(status, 400, "{body}");
        testkit::assert_no_secret(body.to_string(), &[ADMIN_PW.as_bytes()]);
    }
    let (status, plain) = op
        .send("POST", &actions, json!({"kind": "troubleshoot"}))
        .await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["has_credentials"], false);
    let (status, created) = op
        .send(
            "POST",
            &actions,
            json!({"kind": "troubleshoot", "admin": "ladmin", "admin_password": ADMIN_PW}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["has_credentials"], true);
    let id = created["id"].as_str().unwrap().to_string();
    let (status, polled) = agent.call("GET", "/agent/v1/actions", vec![]).await;
    assert_eq!(status, 200);
    let wire = polled["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap();
    assert_eq!(wire["params"]["admin"], "ladmin");
    assert!(wire["sealed"].is_string());

    let result_path = format!("/agent/v1/actions/{id}/result");
    let good = json!({"command": "profiles status -type bootstraptoken", "exit_code": 0,
                      "output": "profiles: Bootstrap Token supported on server: YES\r\n"});
    // Commands on a result are refused when malformed or too many; nothing ends.
    let too_many: Vec<Json> = (0..=agent_profile::MAX_TROUBLESHOOT_COMMANDS)
        .map(|_| good.clone())
        .collect();
    for bad in [
        json!({"succeeded": true, "commands": "fdesetup list"}),
        json!({"succeeded": true, "commands": [{"command": "x", "exit_code": "0", "output": ""}]}),
        json!({"succeeded": true, "commands": [{"command": "x", "exit_code": 0, "output": "", "evil": 1}]}),
        json!({"succeeded": true, "commands": too_many}),
    ] {
        let (status, body) = agent
            .call("POST", &result_path, bad.to_string().into_bytes())
            .await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (_, shown) = op.get(&format!("{actions}/{id}")).await;
    assert_eq!(shown["status"], "delivered", "{shown}");

    // Hostile output: huge, binary, terminal escapes, bidi overrides, a hostile command line.
    let hostile_output = format!(
        "\u{0}\u{7}\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}evil\r{}",
        "\u{fffd}BIN\u{1}".repeat(20_000)
    );
    let body = json!({
        "succeeded": false,
        "reason": "problems_found: `fdesetup list` exited 1\n\u{1b}[31m",
        "commands": [
            good,
            {"command": "fdesetup list\n\u{1b}[2Jrm -rf /", "exit_code": 1, "output": hostile_output},
            {"command": "diskutil apfs listcryptousers /", "exit_code": null, "output": "`diskutil` did not finish within 60 s and was stopped", "truncated": false},
        ],
    });
    let bytes = body.to_string().into_bytes();
    assert!(bytes.len() < server::agent::MAX_AGENT_BODY);
    let (status, answer) = agent.call("POST", &result_path, bytes).await;
    assert_eq!(status, 200, "{answer}");

    let events = device_events(&ts, UDID, "agent.troubleshoot").await;
    assert_eq!(events.len(), 3, "{events:?}");
    let details: Vec<&str> = events
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details[0],
        format!(
            "action {id}: `profiles status -type bootstraptoken` exit 0\nprofiles: Bootstrap Token supported on server: YES\n"
        )
    );
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(events[1]["outcome"], "failure");
    assert_eq!(events[2]["outcome"], "failure");
    assert!(
        details[1].starts_with(&format!(
            "action {id}: `fdesetup list \u{fffd}[2Jrm -rf /` exit 1 (output truncated)\n"
        )),
        "{}",
        &details[1][..200]
    );
    assert!(details[1].len() <= agent_profile::MAX_COMMAND_OUTPUT + 200);
    assert!(details[2].contains("no exit code"), "{}", details[2]);
    for d in &details {
        assert!(
            !d.chars()
                .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)),
            "control characters survived: {d:?}"
        );
        testkit::assert_no_secret(d, &[ADMIN_PW.as_bytes()]);
    }
    // The action keeps the whole transcript (cleaned) and a one-line reason.
    let (_, shown) = op.get(&format!("{actions}/{id}")).await;
    assert_eq!(shown["status"], "failed", "{shown}");
    assert_eq!(shown["has_credentials"], false);
    let output = shown["output"].as_str().unwrap();
    assert!(output.starts_with("$ `profiles status -type bootstraptoken` exit 0\n"));
    assert!(output.contains("$ `diskutil apfs listcryptousers /` no exit code"));
    assert!(!output.contains('\u{1b}') && !output.contains('\r'));
    assert!(!shown["reason"].as_str().unwrap().contains(['\n', '\u{1b}']));
    testkit::assert_no_secret(shown.to_string(), &[ADMIN_PW.as_bytes()]);
}

#[tokio::test]
async fn commands_on_a_result_of_another_kind_are_refused() {
    const UDID: &str = "AGENT-MAC-TS2";
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, UDID).await;
    let op = api(&ts, ApiScope::Operate).await;
    let (status, created) = op
        .send(
            "POST",
            &format!("/api/v1/devices/{UDID}/actions"),
            json!({"kind": "validate_bootstrap_token", "admin": "ladmin", "admin_password": ADMIN_PW}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    agent.call("GET", "/agent/v1/actions", vec![]).await;
    let body = json!({"succeeded": true, "commands": [{"command": "fdesetup list", "exit_code": 0, "output": "x"}]});
    let (status, answer) = agent
        .call(
            "POST",
            &format!("/agent/v1/actions/{id}/result"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        device_events(&ts, UDID, "agent.troubleshoot")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn self_service_escrow_reports_are_signed_checked_and_become_events() {
    const UDID: &str = "AGENT-MAC-ESC";
    let ts = TestServer::start().await.unwrap();
    let agent = installed_agent(&ts, UDID).await;
    let path = "/agent/v1/reports/escrow";
    let ok = json!({"succeeded": true, "user": "alice", "code": "escrowed_and_validated"});
    // Unsigned: refused, nothing recorded.
    let (status, _) = raw(&agent.base, "POST", path, &[], ok.to_string().into_bytes()).await;
    assert_eq!(status, 401);
    // Bad bodies.
    for bad in [
        json!({"succeeded": true, "user": "alice"}),
        json!({"succeeded": true, "user": "", "code": "x"}),
        json!({"succeeded": true, "user": "a\u{1b}b", "code": "x"}),
        json!({"succeeded": "yes", "user": "alice", "code": "x"}),
        json!({"succeeded": false, "user": "alice", "code": "Not A Code"}),
        json!({"succeeded": false, "user": "alice", "code": "x", "password": "hunter2"}),
    ] {
        let (status, body) = agent.call("POST", path, bad.to_string().into_bytes()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (status, _) = agent.call("POST", path, b"not json".to_vec()).await;
    assert_eq!(status, 400);
    // Oversized: 413 well before the general agent limit.
    let big =
        json!({"succeeded": false, "user": "alice", "code": "x", "message": "m".repeat(16 * 1024)});
    let (status, _) = agent.call("POST", path, big.to_string().into_bytes()).await;
    assert_eq!(status, 413);
    assert!(
        device_events(&ts, UDID, "agent.self_service_escrow")
            .await
            .is_empty()
    );

    let (status, body) = agent.call("POST", path, ok.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let failed = json!({"succeeded": false, "user": "bob", "code": "too_many_tries",
                        "message": "the password was wrong 3 times\n\u{1b}[31m"});
    let (status, _) = agent
        .call("POST", path, failed.to_string().into_bytes())
        .await;
    assert_eq!(status, 200);
    let events = device_events(&ts, UDID, "agent.self_service_escrow").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(
        events[0]["detail"],
        "self-service escrow by alice succeeded: escrowed_and_validated"
    );
    assert_eq!(events[1]["outcome"], "failure");
    assert_eq!(
        events[1]["detail"],
        "self-service escrow by bob failed: too_many_tries: the password was wrong 3 times \u{fffd}[31m"
    );
}
