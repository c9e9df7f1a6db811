//! Several escrowd instances on one PostgreSQL database (issue 14), each point proven with two in-process
//! servers on ONE fresh schema (`TestServer::start_instance`): a queued command is handed out once however
//! often the Mac polls both instances at once; both inventory schedules running the same round push each
//! device once; an agent action queued on one instance wakes the agent's long poll on the other; a push
//! certificate uploaded to one instance is used by the other. Runs when ESCROWD_TEST_DATABASE_URL is set,
//! whatever ESCROWD_TEST_BACKEND says (SQLite serves one instance); otherwise each test says SKIPPED.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{api, enrolled, raw, uuid_of};
use protocol::agent_profile;
use protocol::command::Command;
use serde_json::{Value as Json, json};
use server::ServeOptions;
use server::apns::ApnsSettings;
use store::ApiScope;
use testkit::apns::{ApnsStandIn, PushCa, device_token, token_update};
use testkit::messages::{self, TOPIC};
use testkit::{TestDevice, TestServer};

/// Two instances on one fresh schema (both with options adjusted by `f`), or None (SKIPPED) without
/// PostgreSQL. Returned as (first, second); drop the second first (the first owns the schema).
async fn two_instances(
    name: &str,
    f: impl Fn(&mut ServeOptions) + Clone,
) -> Option<(TestServer, TestServer)> {
    let Some(a) = TestServer::start_on_postgres(f.clone()).await.unwrap() else {
        eprintln!(
            "SKIPPED: {name} (set ESCROWD_TEST_DATABASE_URL to run several instances on PostgreSQL)"
        );
        return None;
    };
    let b = a.start_instance(f).await.unwrap();
    Some((a, b))
}

fn quiet(o: &mut ServeOptions) {
    // The schedules' own timers stay off; the tests run their rounds by hand, on both instances at once.
    o.inventory_interval = Duration::ZERO;
    o.identity_renewal_days = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_command_is_delivered_once_however_often_the_mac_polls_both_instances() {
    let Some((a, b)) = two_instances("command delivery", quiet).await else {
        return;
    };
    let mac_a = enrolled(&a, "SCALE-CMD").await;
    let mac_b = mac_a.talking_to(b.base_url());
    let ids = vec!["SCALE-CMD".to_string()];
    let mut queued = Vec::new();
    for i in 0..5 {
        let uuid = a
            .running()
            .state
            .mdm
            .enqueue(&ids, &Command::security_info(format!("SCALE-{i}")))
            .await
            .unwrap();
        queued.push(uuid);
    }

    // 60 Idle polls at once, half on each instance, in three waves: every command is handed out exactly
    // once in all, and the rest of the polls get an empty answer.
    let mut delivered: HashMap<String, usize> = HashMap::new();
    let mut answers = 0;
    for _ in 0..3 {
        let mut polls = Vec::new();
        for i in 0..20 {
            let mac = if i % 2 == 0 { &mac_a } else { &mac_b };
            let mac = mac.talking_to(mac.base_url.clone());
            polls.push(tokio::spawn(async move { mac.idle().await.unwrap() }));
        }
        for p in polls {
            let r = p.await.unwrap();
            assert_eq!(r.status, 200);
            answers += 1;
            if !r.body.is_empty() {
                *delivered.entry(uuid_of(&r.body)).or_default() += 1;
            }
        }
    }
    assert_eq!(answers, 60);
    for uuid in &queued {
        assert_eq!(
            delivered.get(uuid),
            Some(&1),
            "{uuid} handed out once: {delivered:?}"
        );
    }
    assert_eq!(delivered.len(), queued.len(), "{delivered:?}");

    // The Mac answers on either instance; the queue empties and nothing is handed out again.
    for (i, uuid) in queued.iter().enumerate() {
        let mac = if i % 2 == 0 { &mac_b } else { &mac_a };
        let r = mac
            .connect(messages::report(
                "SCALE-CMD",
                "Acknowledged",
                Some(uuid),
                plist::Dictionary::new(),
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(a.store().active_queue_len("SCALE-CMD").await.unwrap(), 0);
    assert!(mac_a.idle().await.unwrap().body.is_empty());
    assert!(mac_b.idle().await.unwrap().body.is_empty());

    // A NotNow ends the claim: the next session (an Idle, on the other instance) is offered it again.
    let uuid = a
        .running()
        .state
        .mdm
        .enqueue(&ids, &Command::security_info("SCALE-NOTNOW".into()))
        .await
        .unwrap();
    assert_eq!(uuid_of(&mac_a.idle().await.unwrap().body), uuid);
    let r = mac_a
        .connect(messages::report(
            "SCALE-CMD",
            "NotNow",
            Some(&uuid),
            plist::Dictionary::new(),
        ))
        .await
        .unwrap();
    assert!(r.body.is_empty());
    assert_eq!(uuid_of(&mac_b.idle().await.unwrap().body), uuid);
    b.stop().await;
}

fn apns_settings(standin: &ApnsStandIn) -> ApnsSettings {
    ApnsSettings {
        url: standin.url.clone(),
        ca_pem: Some(standin.server_ca_pem.clone()),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        ..Default::default()
    }
}

async fn upload(ts: &TestServer, cert: &[u8], key: &[u8]) {
    let admin = api(ts, ApiScope::Admin).await;
    let (status, up) = admin
        .send(
            "PUT",
            "/api/v1/push-certificate",
            json!({"certificate_pem": String::from_utf8(cert.to_vec()).unwrap(),
                   "private_key_pem": String::from_utf8(key.to_vec()).unwrap()}),
        )
        .await;
    assert_eq!(status, 200, "{up}");
}

/// An enrolled Mac with push token `n` (its queue drained), and the token in hex.
async fn pushable(ts: &TestServer, udid: &str, n: u32) -> (TestDevice, String) {
    let mac = ts.new_device(udid).unwrap();
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    let (token, hex) = device_token(n);
    let r = mac
        .checkin(token_update(udid, TOPIC, &token, &format!("MAGIC-{n}")))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    mac.drain().await.unwrap();
    (mac, hex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_inventory_schedules_in_one_round_push_and_queue_each_device_once() {
    let ca = PushCa::generate().unwrap();
    let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
    let settings = apns_settings(&standin);
    let Some((a, b)) = two_instances("schedules", move |o| {
        quiet(o);
        o.apns = settings.clone();
    })
    .await
    else {
        return;
    };
    let (cert, key) = ca.issue(TOPIC, -1, 365).unwrap();
    upload(&a, &cert, &key).await;
    let mut macs = Vec::new();
    for n in 0..12 {
        macs.push(pushable(&a, &format!("SCALE-INV-{n}"), n).await);
    }
    // B uses the certificate A stored (proven on its own below); wait until it has it.
    wait_for_pusher(&b).await;
    standin.clear();

    // Both schedules run the same round at the same moment, two days on: every device is due on both.
    let day = 24 * 3_600_000;
    let now = now_secs() * 1000 + 2 * day;
    let (ta, tb) = tokio::join!(
        a.running().state.mdm.queue_due_inventory(now, day, 100),
        b.running().state.mdm.queue_due_inventory(now, day, 100)
    );
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta.failed + tb.failed, 0);
    let mut all: Vec<String> = ta.queued.iter().chain(&tb.queued).cloned().collect();
    all.sort();
    let mut want: Vec<String> = (0..12).map(|n| format!("SCALE-INV-{n}")).collect();
    want.sort();
    assert_eq!(
        all, want,
        "each device queued by exactly one instance: A {ta:?}, B {tb:?}"
    );

    let mut per_token: HashMap<String, usize> = HashMap::new();
    for p in standin.pushes() {
        *per_token.entry(p.token_hex).or_default() += 1;
    }
    for (mac, hex) in &macs {
        assert_eq!(
            per_token.get(hex),
            Some(&1),
            "{}: one push in the round",
            mac.udid
        );
        let mut types = a.store().active_request_types(&mac.udid).await.unwrap();
        types.sort();
        assert_eq!(
            types,
            ["DeviceInformation", "SecurityInfo", "UserList"],
            "{}: one inventory round queued",
            mac.udid
        );
    }
    assert_eq!(per_token.len(), macs.len(), "{per_token:?}");
    b.stop().await;
}

/// Wait until `ts` has a push provider (it hears of an upload elsewhere through a signal). A liveness bound,
/// not a speed check: without the signal it never gets one.
async fn wait_for_pusher(ts: &TestServer) {
    for _ in 0..200 {
        if ts.running().state.mdm.pusher().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the other instance never put the uploaded push certificate in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_certificate_uploaded_to_one_instance_is_used_by_the_other() {
    let ca = PushCa::generate().unwrap();
    let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
    let settings = apns_settings(&standin);
    let Some((a, b)) = two_instances("push certificate", move |o| {
        quiet(o);
        o.apns = settings.clone();
    })
    .await
    else {
        return;
    };
    let (_mac, hex) = pushable(&b, "SCALE-PUSH", 7).await;
    let ids = vec!["SCALE-PUSH".to_string()];
    let before = b.running().state.mdm.push(&ids).await.unwrap();
    assert!(before[0].error.is_some(), "no certificate yet: {before:?}");
    assert!(standin.pushes().is_empty());

    let (cert, key) = ca.issue(TOPIC, -1, 365).unwrap();
    upload(&a, &cert, &key).await;
    wait_for_pusher(&b).await;
    let sent = b.running().state.mdm.push(&ids).await.unwrap();
    assert!(sent[0].error.is_none(), "{sent:?}");
    let pushes = standin.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].token_hex, hex);
    b.stop().await;
}

struct Agent {
    id: String,
    key: SigningKey,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Agent {
    fn headers(&self, method: &str, path: &str) -> Vec<(&'static str, String)> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        agent::client::signed_headers(&self.key, &self.id, method, path, now_secs(), &nonce, b"")
    }
}

/// Install and register an agent for an enrolled Mac through `ts`.
async fn installed_agent(ts: &TestServer, udid: &str) -> Agent {
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
    let reply = mac.idle().await.unwrap();
    let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    let settings = agent_profile::parse_agent_settings(cmd["Payload"].as_data().unwrap()).unwrap();
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
    Agent {
        id: answer["agent_id"].as_str().unwrap().to_string(),
        key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_queued_on_one_instance_wakes_the_agent_waiting_on_the_other() {
    let Some((a, b)) = two_instances("agent wake-up", quiet).await else {
        return;
    };
    let agent = installed_agent(&a, "SCALE-AGENT").await;
    let op = api(&a, ApiScope::Operate).await;
    for round in 0..2 {
        // The agent waits on B (up to 50 s); the action is queued on A. Without a signal between the instances
        // B's poll would only find it when its wait ran out, after the 40 s allowed here (a liveness bound far
        // above the milliseconds a signal takes, not a speed check).
        let path = "/agent/v1/actions?wait=50";
        let h = agent.headers("GET", path);
        let base = b.base_url();
        let waiting = tokio::spawn(async move { raw(&base, "GET", path, &h, vec![]).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (s, created) = op
            .send(
                "POST",
                "/api/v1/devices/SCALE-AGENT/actions",
                json!({"kind": "troubleshoot"}),
            )
            .await;
        assert_eq!(s, 201, "{created}");
        let (s, polled): (u16, Json) = tokio::time::timeout(Duration::from_secs(40), waiting)
            .await
            .expect("the poll waiting on the other instance was not woken")
            .unwrap();
        assert_eq!(s, 200, "{polled}");
        assert_eq!(
            polled["actions"][0]["id"], created["id"],
            "round {round}: {polled}"
        );
        let id = created["id"].as_str().unwrap();
        let path = format!("/agent/v1/actions/{id}/result");
        let body = json!({"succeeded": true}).to_string().into_bytes();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let h = agent::client::signed_headers(
            &agent.key,
            &agent.id,
            "POST",
            &path,
            now_secs(),
            &nonce,
            &body,
        );
        let (s, _) = raw(&b.base_url(), "POST", &path, &h, body).await;
        assert_eq!(s, 200);
    }
    b.stop().await;
}
