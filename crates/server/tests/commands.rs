//! End-to-end: the command queue over the connect endpoint, with Apple's NotNow and duplicate rules.

use plist::{Dictionary, Value};
use protocol::command::Command;
use testkit::{TestServer, messages};

fn uuid_of(reply: &[u8]) -> String {
    let v: Value = plist::from_bytes(reply).expect("command plist");
    v.as_dictionary()
        .unwrap()
        .get("CommandUUID")
        .unwrap()
        .as_string()
        .unwrap()
        .to_string()
}

fn request_type_of(reply: &[u8]) -> String {
    let v: Value = plist::from_bytes(reply).expect("command plist");
    let cmd = v
        .as_dictionary()
        .unwrap()
        .get("Command")
        .unwrap()
        .as_dictionary()
        .unwrap();
    cmd.get("RequestType")
        .unwrap()
        .as_string()
        .unwrap()
        .to_string()
}

async fn setup(udid: &str) -> (TestServer, testkit::TestDevice) {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device(udid).unwrap();
    mac.enroll().await.unwrap();
    (ts, mac)
}

#[tokio::test]
async fn queued_commands_are_delivered_in_order_and_acknowledged() {
    let (ts, mac) = setup("UDID-Q").await;
    let mdm = &ts.running().state.mdm;
    let ids = vec!["UDID-Q".to_string()];
    let first = mdm
        .enqueue(&ids, &Command::security_info("CMD-1".into()))
        .await
        .unwrap();
    let second = mdm
        .enqueue(&ids, &Command::user_list("CMD-2".into()))
        .await
        .unwrap();

    let r = mac.idle().await.unwrap();
    assert_eq!(uuid_of(&r.body), first);
    assert_eq!(request_type_of(&r.body), "SecurityInfo");
    let mut sec = Dictionary::new();
    let mut info = Dictionary::new();
    info.insert("FDE_Enabled".into(), true.into());
    sec.insert("SecurityInfo".into(), Value::Dictionary(info));
    let r = mac
        .connect(messages::report(
            "UDID-Q",
            "Acknowledged",
            Some(&first),
            sec,
        ))
        .await
        .unwrap();
    assert_eq!(uuid_of(&r.body), second);
    let r = mac
        .connect(messages::report(
            "UDID-Q",
            "Acknowledged",
            Some(&second),
            Dictionary::new(),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        ts.store().active_queue_len("UDID-Q").await.unwrap(),
        0,
        "acknowledged entries leave the queue"
    );
    let history = ts.store().command_history("UDID-Q", 10).await.unwrap();
    let done = history.iter().find(|c| c.uuid == first).unwrap();
    assert_eq!(done.status, store::CommandStatus::Acknowledged);
    assert!(String::from_utf8_lossy(done.result.as_deref().unwrap()).contains("FDE_Enabled"));
}

#[tokio::test]
async fn notnow_is_not_resent_in_the_same_session_but_is_after_idle() {
    let (ts, mac) = setup("UDID-NN").await;
    let mdm = &ts.running().state.mdm;
    let ids = vec!["UDID-NN".to_string()];
    let a = mdm
        .enqueue(
            &ids,
            &Command::device_information("CMD-A".into(), &["OSVersion"]),
        )
        .await
        .unwrap();
    let b = mdm
        .enqueue(&ids, &Command::security_info("CMD-B".into()))
        .await
        .unwrap();

    assert_eq!(uuid_of(&mac.idle().await.unwrap().body), a);
    let r = mac
        .connect(messages::report(
            "UDID-NN",
            "NotNow",
            Some(&a),
            Dictionary::new(),
        ))
        .await
        .unwrap();
    assert_eq!(
        uuid_of(&r.body),
        b,
        "after NotNow, the next command, not the same one"
    );
    let r = mac
        .connect(messages::report(
            "UDID-NN",
            "NotNow",
            Some(&b),
            Dictionary::new(),
        ))
        .await
        .unwrap();
    assert!(
        r.body.is_empty(),
        "only NotNow commands left: end the session"
    );
    // A new session (Idle) offers them again, oldest first.
    assert_eq!(uuid_of(&mac.idle().await.unwrap().body), a);
}

#[tokio::test]
async fn duplicate_and_unknown_reports_are_harmless() {
    let (ts, mac) = setup("UDID-DUP").await;
    let ids = vec!["UDID-DUP".to_string()];
    let a = ts
        .running()
        .state
        .mdm
        .enqueue(&ids, &Command::security_info("CMD-D".into()))
        .await
        .unwrap();
    assert_eq!(uuid_of(&mac.idle().await.unwrap().body), a);
    for _ in 0..3 {
        let r = mac
            .connect(messages::report(
                "UDID-DUP",
                "Acknowledged",
                Some(&a),
                Dictionary::new(),
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let r = mac
        .connect(messages::report(
            "UDID-DUP",
            "Acknowledged",
            Some("NEVER-QUEUED"),
            Dictionary::new(),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the device must not retry forever");
    let history = ts.store().command_history("UDID-DUP", 10).await.unwrap();
    assert_eq!(history.iter().filter(|c| c.uuid == a).count(), 1);
}

#[tokio::test]
async fn an_error_report_is_stored_with_its_error_chain() {
    let (ts, mac) = setup("UDID-ERR").await;
    let ids = vec!["UDID-ERR".to_string()];
    let a = ts
        .running()
        .state
        .mdm
        .enqueue(&ids, &Command::device_configured("CMD-E".into()))
        .await
        .unwrap();
    mac.idle().await.unwrap();
    let mut chain = Dictionary::new();
    chain.insert("ErrorCode".into(), 12021.into());
    chain.insert("ErrorDomain".into(), "MCMDMErrorDomain".into());
    chain.insert(
        "USEnglishDescription".into(),
        "Not awaiting configuration".into(),
    );
    let mut extra = Dictionary::new();
    extra.insert(
        "ErrorChain".into(),
        Value::Array(vec![Value::Dictionary(chain)]),
    );
    mac.connect(messages::report("UDID-ERR", "Error", Some(&a), extra))
        .await
        .unwrap();
    let history = ts.store().command_history("UDID-ERR", 10).await.unwrap();
    assert_eq!(history[0].status, store::CommandStatus::Error);
    let events = ts
        .store()
        .events(&store::EventFilter {
            subject: Some("UDID-ERR".into()),
            kind: Some("command.result".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events[0].detail.contains("Not awaiting configuration"),
        "{:?}",
        events[0]
    );
}

#[tokio::test]
async fn an_acknowledged_erase_clears_the_escrowed_token() {
    let (ts, mac) = setup("UDID-ERASE").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(b"token"))
            .await
            .unwrap()
            .status,
        200
    );
    // Escrow re-queries SecurityInfo and UserList; answer them first.
    assert_eq!(mac.drain().await.unwrap(), ["SecurityInfo", "UserList"]);
    let ids = vec!["UDID-ERASE".to_string()];
    let a = ts
        .running()
        .state
        .mdm
        .enqueue(&ids, &Command::erase_device("CMD-W".into(), None, None))
        .await
        .unwrap();
    assert_eq!(
        request_type_of(&mac.idle().await.unwrap().body),
        "EraseDevice"
    );
    // NotNow first: the token must survive.
    mac.connect(messages::report(
        "UDID-ERASE",
        "NotNow",
        Some(&a),
        Dictionary::new(),
    ))
    .await
    .unwrap();
    assert!(
        ts.store()
            .bootstrap_token("UDID-ERASE")
            .await
            .unwrap()
            .is_some()
    );
    mac.idle().await.unwrap();
    mac.connect(messages::report(
        "UDID-ERASE",
        "Acknowledged",
        Some(&a),
        Dictionary::new(),
    ))
    .await
    .unwrap();
    assert!(
        ts.store()
            .bootstrap_token("UDID-ERASE")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_raw_command_plist_is_queued_verbatim_and_bad_ones_are_refused() {
    let (ts, mac) = setup("UDID-RAW").await;
    let ids = vec!["UDID-RAW".to_string()];
    let raw = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>CommandUUID</key><string>RAW-1</string><key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict></dict></plist>"#;
    ts.running().state.mdm.enqueue_raw(&ids, raw).await.unwrap();
    let r = mac.idle().await.unwrap();
    assert_eq!(request_type_of(&r.body), "ProfileList");
    assert!(
        ts.running()
            .state
            .mdm
            .enqueue_raw(&ids, b"<plist><array/></plist>")
            .await
            .is_err()
    );
    assert!(
        ts.running()
            .state
            .mdm
            .enqueue_raw(&["NO-SUCH".to_string()], raw)
            .await
            .is_err()
    );
}
