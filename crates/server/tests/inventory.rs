//! End-to-end: automatic inventory after enrollment and escrow, and the inventory schedule.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plist::{Dictionary, Value};
use service::push::{PushResult, PushTarget, Pusher};
use store::Group;
use testkit::{TestDevice, TestServer, messages};

/// `(uuid, request type, command dict)` of a command reply.
fn command_of(reply: &[u8]) -> (String, String, Dictionary) {
    let v: Value = plist::from_bytes(reply).expect("command plist");
    let top = v.as_dictionary().unwrap();
    let cmd = top["Command"].as_dictionary().unwrap().clone();
    (
        top["CommandUUID"].as_string().unwrap().to_string(),
        cmd["RequestType"].as_string().unwrap().to_string(),
        cmd,
    )
}

/// Poll with Idle and acknowledge everything queued, returning the commands in the order they came.
async fn drain(mac: &TestDevice) -> Vec<(String, Dictionary)> {
    let mut seen = Vec::new();
    let mut reply = mac.idle().await.unwrap();
    while !reply.body.is_empty() {
        assert_eq!(reply.status, 200);
        let (uuid, request_type, cmd) = command_of(&reply.body);
        seen.push((request_type, cmd));
        assert!(seen.len() < 50, "the queue never empties");
        reply = mac
            .connect(messages::report(
                &mac.udid,
                "Acknowledged",
                Some(&uuid),
                Dictionary::new(),
            ))
            .await
            .unwrap();
    }
    seen
}

fn types(cmds: &[(String, Dictionary)]) -> Vec<&str> {
    cmds.iter().map(|(t, _)| t.as_str()).collect()
}

fn authenticate_with_os(udid: &str, os: &str) -> Vec<u8> {
    let v: Value = plist::from_bytes(&messages::authenticate(udid)).unwrap();
    let mut d = v.into_dictionary().unwrap();
    d.insert("OSVersion".into(), os.into());
    messages::to_xml(d)
}

async fn group(ts: &TestServer, id: &str, escrow: bool) {
    ts.store()
        .create_group(&Group {
            id: id.into(),
            name: format!("group {id}"),
            bootstrap_escrow_enabled: escrow,
            prompt_user_to_allow_bootstrap_token_for_authentication: false,
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
}

/// Authenticate (as macOS `os`), optionally join `group_id`, then the first TokenUpdate.
async fn enroll_mac(ts: &TestServer, udid: &str, os: &str, group_id: Option<&str>) -> TestDevice {
    let mac = ts.new_device(udid).unwrap();
    assert_eq!(
        mac.checkin(authenticate_with_os(udid, os))
            .await
            .unwrap()
            .status,
        200
    );
    if let Some(g) = group_id {
        ts.store()
            .set_enrollment_group(udid, Some(g))
            .await
            .unwrap();
    }
    assert_eq!(mac.token_update().await.unwrap().status, 200);
    mac
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Pusher for Recorder {
    async fn push(&self, targets: &[PushTarget]) -> Vec<PushResult> {
        let mut seen = self.0.lock().unwrap();
        targets
            .iter()
            .map(|t| {
                seen.push(t.enrollment_id.clone());
                PushResult::sent(t.enrollment_id.clone(), Some("apns-id".into()))
            })
            .collect()
    }
}

#[tokio::test]
async fn enrollment_queues_security_info_user_list_and_device_information_in_order() {
    let ts = TestServer::start().await.unwrap();
    let mac = enroll_mac(&ts, "UDID-INV-1", "14.0", None).await;
    let cmds = drain(&mac).await;
    assert_eq!(
        types(&cmds),
        ["SecurityInfo", "UserList", "DeviceInformation"]
    );
    let queries: Vec<&str> = cmds[2].1["Queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_string().unwrap())
        .collect();
    for key in [
        "IsAppleSilicon",
        "OSVersion",
        "EACSPreflight",
        "MDMOptions",
        "AwaitingConfiguration",
    ] {
        assert!(queries.contains(&key), "{key} not asked: {queries:?}");
    }
    let events = ts
        .store()
        .events(&store::EventFilter {
            subject: Some("UDID-INV-1".into()),
            kind: Some("enrollment.completed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(
        ts.store()
            .inventory_requested_at("UDID-INV-1")
            .await
            .unwrap()
            .is_some()
    );

    // A second TokenUpdate (push token rotation) queues nothing.
    assert_eq!(mac.token_update().await.unwrap().status, 200);
    assert!(drain(&mac).await.is_empty());
}

#[tokio::test]
async fn a_catalina_mac_in_an_escrowing_group_is_also_allowed_to_escrow() {
    let ts = TestServer::start().await.unwrap();
    group(&ts, "G-ON", true).await;
    group(&ts, "G-OFF", false).await;

    let on = enroll_mac(&ts, "UDID-1015-ON", "10.15.7", Some("G-ON")).await;
    let cmds = drain(&on).await;
    assert_eq!(
        types(&cmds),
        ["SecurityInfo", "UserList", "DeviceInformation", "Settings"]
    );
    let settings = cmds[3].1["Settings"].as_array().unwrap();
    let item = settings[0].as_dictionary().unwrap();
    assert_eq!(item["Item"].as_string(), Some("MDMOptions"));
    let options = item["MDMOptions"].as_dictionary().unwrap();
    assert_eq!(options["BootstrapTokenAllowed"].as_boolean(), Some(true));

    let off = enroll_mac(&ts, "UDID-1015-OFF", "10.15.7", Some("G-OFF")).await;
    assert_eq!(
        types(&drain(&off).await),
        ["SecurityInfo", "UserList", "DeviceInformation"]
    );
    let big_sur = enroll_mac(&ts, "UDID-11", "11.7.10", Some("G-ON")).await;
    assert_eq!(
        types(&drain(&big_sur).await),
        ["SecurityInfo", "UserList", "DeviceInformation"]
    );
}

#[tokio::test]
async fn escrowing_a_bootstrap_token_re_queries_security_info_and_user_list_once() {
    let ts = TestServer::start().await.unwrap();
    let mac = enroll_mac(&ts, "UDID-INV-BT", "14.0", None).await;
    drain(&mac).await;
    assert_eq!(
        mac.set_bootstrap_token(Some(b"bootstrap-token-bytes"))
            .await
            .unwrap()
            .status,
        200
    );
    // Escrowed again before the Mac polled: the SecurityInfo and UserList still queued cover both.
    assert_eq!(
        mac.set_bootstrap_token(Some(b"bootstrap-token-bytes-2"))
            .await
            .unwrap()
            .status,
        200
    );
    // UserList too (the users may have changed), queued before the SecurityInfo push it rides on.
    assert_eq!(types(&drain(&mac).await), ["UserList", "SecurityInfo"]);
}

#[tokio::test]
async fn user_list_is_asked_again_after_a_set_but_never_after_a_get_and_once_per_window() {
    let ts = TestServer::start().await.unwrap();
    let mac = enroll_mac(&ts, "UDID-UL-1", "14.0", None).await;
    drain(&mac).await;
    // GetBootstrapToken (a login fetching the token) asks nothing.
    let (reply, _) = mac.get_bootstrap_token().await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(drain(&mac).await.is_empty());
    assert_eq!(
        mac.set_bootstrap_token(Some(b"token-1"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(types(&drain(&mac).await), ["UserList", "SecurityInfo"]);
    // Within the next few minutes another escrow re-asks SecurityInfo only: UserList was just asked.
    assert_eq!(
        mac.set_bootstrap_token(Some(b"token-2"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(types(&drain(&mac).await), ["SecurityInfo"]);
}

#[tokio::test]
async fn a_user_channel_token_update_asks_user_list_once_per_window() {
    let ts = TestServer::start().await.unwrap();
    let mac = enroll_mac(&ts, "UDID-UL-2", "14.0", None).await;
    drain(&mac).await;
    let user_id = "A1B2C3D4-0000-1111-2222-333344445555";
    let login = || messages::user_token_update("UDID-UL-2", user_id, "jdoe");
    assert_eq!(mac.checkin(login()).await.unwrap().status, 200);
    assert_eq!(types(&drain(&mac).await), ["UserList"]);
    // The next login within the window: nothing more.
    assert_eq!(mac.checkin(login()).await.unwrap().status, 200);
    assert!(drain(&mac).await.is_empty());
    // A device-channel TokenUpdate (push token rotation) never asks.
    assert_eq!(mac.token_update().await.unwrap().status, 200);
    assert!(drain(&mac).await.is_empty());
}

#[tokio::test]
async fn the_schedule_asks_the_oldest_devices_first_within_the_batch_and_skips_pending_ones() {
    let ts = TestServer::start_with(|o| o.inventory_interval = Duration::ZERO)
        .await
        .unwrap();
    let mdm = ts.running().state.mdm.clone();
    let mut macs = Vec::new();
    for i in 0..4 {
        let mac = enroll_mac(&ts, &format!("UDID-S{i}"), "14.0", None).await;
        // S3 never polls: its enrollment inventory stays queued.
        if i < 3 {
            drain(&mac).await;
        }
        macs.push(mac);
    }
    let store = ts.store();
    let hour = 3_600_000;
    let base = store
        .inventory_requested_at("UDID-S0")
        .await
        .unwrap()
        .unwrap();
    // Make the ages distinct and known: S2 oldest, then S0, then S1.
    store
        .mark_inventory_requested("UDID-S2", base - 3 * hour)
        .await
        .unwrap();
    store
        .mark_inventory_requested("UDID-S0", base - 2 * hour)
        .await
        .unwrap();
    store
        .mark_inventory_requested("UDID-S1", base - hour)
        .await
        .unwrap();
    store
        .mark_inventory_requested("UDID-S3", base - 4 * hour)
        .await
        .unwrap();

    let now = base + 25 * hour;
    let day = 24 * hour;
    let recorder = Arc::new(Recorder::default());
    mdm.set_pusher(Some(recorder.clone()));
    let tick = mdm.queue_due_inventory(now, day, 2).await.unwrap();
    assert_eq!(
        tick.queued,
        ["UDID-S2", "UDID-S0"],
        "oldest first, at most 2"
    );
    assert_eq!(tick.commands, 6);
    let pushed = recorder.0.lock().unwrap().clone();
    assert_eq!(
        pushed[pushed.len().saturating_sub(2)..],
        ["UDID-S2", "UDID-S0"],
        "one push batch"
    );

    // The same moment again: S1 is next; S2 and S0 were just asked; S3 still has all three queued.
    let tick = mdm.queue_due_inventory(now, day, 2).await.unwrap();
    assert_eq!(tick.queued, ["UDID-S1"]);
    let tick = mdm.queue_due_inventory(now, day, 2).await.unwrap();
    assert!(tick.queued.is_empty());

    // Nothing duplicated: each polled Mac gets exactly one inventory round, S3 still exactly its first one.
    for mac in &macs {
        assert_eq!(
            types(&drain(mac).await),
            ["SecurityInfo", "UserList", "DeviceInformation"],
            "{}",
            mac.udid
        );
    }
    // A day later S3 is due again (its commands were answered).
    let tick = mdm
        .queue_due_inventory(now + day + 1, day, 10)
        .await
        .unwrap();
    assert_eq!(tick.queued.len(), 4);
    // A limit of zero asks nobody.
    let tick = mdm
        .queue_due_inventory(now + 10 * day, day, 0)
        .await
        .unwrap();
    assert!(tick.queued.is_empty());
}

#[tokio::test]
async fn a_device_that_left_a_command_pending_gets_only_the_missing_inventory() {
    let ts = TestServer::start().await.unwrap();
    let mdm = ts.running().state.mdm.clone();
    let mac = enroll_mac(&ts, "UDID-P", "14.0", None).await;
    // Answer SecurityInfo and DeviceInformation; UserList gets NotNow (stays queued).
    let mut reply = mac.idle().await.unwrap();
    let mut guard = 0;
    while !reply.body.is_empty() {
        guard += 1;
        assert!(guard < 10);
        let (uuid, request_type, _) = command_of(&reply.body);
        let status = if request_type == "UserList" {
            "NotNow"
        } else {
            "Acknowledged"
        };
        reply = mac
            .connect(messages::report(
                &mac.udid,
                status,
                Some(&uuid),
                Dictionary::new(),
            ))
            .await
            .unwrap();
    }
    let now = mdm_now() + 2 * 24 * 3_600_000;
    let tick = mdm
        .queue_due_inventory(now, 24 * 3_600_000, 10)
        .await
        .unwrap();
    assert_eq!(tick.queued, ["UDID-P"]);
    assert_eq!(tick.commands, 2);
    assert_eq!(
        ts.store().active_request_types("UDID-P").await.unwrap(),
        ["UserList", "SecurityInfo", "DeviceInformation"]
    );
}

fn mdm_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_background_schedule_runs_with_the_server_and_stops_with_it() {
    let ts = TestServer::start_with(|o| {
        o.inventory_interval = Duration::from_secs(1);
        o.inventory_batch = 10;
    })
    .await
    .unwrap();
    let mac = enroll_mac(&ts, "UDID-BG", "14.0", None).await;
    drain(&mac).await;
    // Age its last request by a day so the next tick finds it due (no sleeping on the interval itself).
    let store = ts.store();
    store
        .mark_inventory_requested("UDID-BG", mdm_now() - 24 * 3_600_000)
        .await
        .unwrap();
    let mut waited = 0;
    let first_seen = loop {
        let active = store.active_request_types("UDID-BG").await.unwrap();
        if !active.is_empty() {
            break active;
        }
        waited += 1;
        assert!(waited < 600, "the schedule never queued inventory");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The round's commands are one write: the first look at the queue finds all of them (when they were queued
    // one by one, a look in between found SecurityInfo alone and the drain below missed the others).
    assert_eq!(
        first_seen,
        ["SecurityInfo", "UserList", "DeviceInformation"]
    );
    assert_eq!(
        types(&drain(&mac).await),
        ["SecurityInfo", "UserList", "DeviceInformation"]
    );
    ts.stop().await;
}

/// The schedule and a completing TokenUpdate race for a Mac that just finished enrolling (never asked, nothing
/// queued): the inventory round's claim lets one of them queue it, never both.
#[tokio::test]
async fn the_schedule_and_enrollment_never_both_queue_a_new_macs_inventory() {
    let ts = TestServer::start().await.unwrap();
    let mdm = ts.running().state.mdm.clone();
    let store = ts.store();
    let now = service::Clock::now_millis(&service::SystemClock);

    // The schedule found the Mac due and claimed it before the enrollment's own inventory ran: the enrollment
    // queues none (the schedule queues it), so the Mac is asked once.
    let mac = ts.new_device("UDID-RACE-1").unwrap();
    assert_eq!(
        mac.checkin(messages::authenticate("UDID-RACE-1"))
            .await
            .unwrap()
            .status,
        200
    );
    assert!(
        store
            .claim_schedule_round("inventory", "UDID-RACE-1", now, now + 60_000)
            .await
            .unwrap()
    );
    assert_eq!(mac.token_update().await.unwrap().status, 200);
    assert!(drain(&mac).await.is_empty(), "the schedule's round owns it");

    // The enrollment queued first: it let go of the round once the Mac was marked asked, so the schedule is
    // not held off by it: with a zero age the very next tick finds the Mac due, claims it and asks again.
    let other = enroll_mac(&ts, "UDID-RACE-2", "14.0", None).await;
    assert_eq!(
        types(&drain(&other).await),
        ["SecurityInfo", "UserList", "DeviceInformation"]
    );
    let asked = store
        .inventory_requested_at("UDID-RACE-2")
        .await
        .unwrap()
        .unwrap();
    let later = service::Clock::now_millis(&service::SystemClock).max(asked + 1);
    let tick = mdm.queue_due_inventory(later, 0, 10).await.unwrap();
    assert!(
        tick.queued.iter().any(|d| d == "UDID-RACE-2"),
        "{:?}",
        tick.queued
    );
    // A tick whose age limit the enrollment's request does not pass leaves the Mac alone.
    let tick = mdm.queue_due_inventory(later, 3_600_000, 10).await.unwrap();
    assert!(!tick.queued.iter().any(|d| d == "UDID-RACE-2"));
}
