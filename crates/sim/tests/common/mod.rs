//! Helpers for the scenario tests: a real escrowd (testkit), virtual Macs, and store look-ups.

#![allow(dead_code)]

use protocol::command::Command;
use sim::VirtualMac;
use sim::mac::{AddUser, Mac, MacSpec, UserKind};
use testkit::TestServer;

pub const PW: &str = "correct horse";

pub async fn server() -> TestServer {
    TestServer::start().await.expect("test server starts")
}

/// A virtual Mac for `ts`, enrolled (Authenticate + TokenUpdate answered 200).
pub async fn enrolled(ts: &TestServer, spec: MacSpec) -> VirtualMac {
    let ca = ts.device_ca().expect("device CA");
    let mut vm = VirtualMac::new(Mac::new(spec), &ca, &ts.base_url()).expect("virtual Mac");
    vm.enroll().await.expect("enrollment");
    vm
}

pub fn local(name: &str, admin: bool) -> AddUser {
    AddUser::new(name, admin, UserKind::Local, Some(PW))
}

pub fn mobile(name: &str) -> AddUser {
    AddUser::new(name, false, UserKind::Mobile, Some(PW))
}

/// Queue `command` for the Mac and let it poll until the queue is empty.
pub async fn run_command(ts: &TestServer, vm: &mut VirtualMac, command: Command) -> String {
    let ids = vec![vm.mac.udid.clone()];
    let uuid = ts
        .running()
        .state
        .mdm
        .enqueue(&ids, &command)
        .await
        .expect("enqueue");
    vm.poll().await.expect("poll");
    uuid
}

/// The ADE Mac leaves Setup Assistant: the server sends DeviceConfigured (§1.7).
pub async fn device_configured(ts: &TestServer, vm: &mut VirtualMac) {
    run_command(ts, vm, Command::device_configured(new_uuid())).await;
    assert!(!vm.mac.awaiting_configuration);
}

pub fn new_uuid() -> String {
    service::commands::new_command_uuid()
}

pub async fn server_token(ts: &TestServer, udid: &str) -> Option<store::BootstrapTokenRecord> {
    ts.store().bootstrap_token(udid).await.expect("store read")
}

/// Event kinds recorded for `udid`, oldest first.
pub async fn event_kinds(ts: &TestServer, udid: &str) -> Vec<String> {
    let mut events = ts
        .store()
        .events(&store::EventFilter {
            subject: Some(udid.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    events.reverse();
    events.into_iter().map(|e| e.kind).collect()
}

/// Put the enrollment in a group "Lab" with escrow `enabled`.
pub async fn put_in_group(ts: &TestServer, udid: &str, enabled: bool) -> store::Group {
    let group = store::Group {
        id: format!("g-{udid}"),
        name: format!("Lab {udid}"),
        bootstrap_escrow_enabled: enabled,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 0,
        updated_at: 0,
    };
    ts.store().create_group(&group).await.expect("group");
    ts.store()
        .set_enrollment_group(udid, Some(&group.id))
        .await
        .expect("set group");
    group
}

pub async fn set_escrow(ts: &TestServer, group: &mut store::Group, enabled: bool) {
    group.bootstrap_escrow_enabled = enabled;
    ts.store().update_group(group).await.expect("update group");
}

/// The stored result plist of command `uuid`.
pub async fn command_result(ts: &TestServer, udid: &str, uuid: &str) -> Vec<u8> {
    ts.store()
        .command(udid, uuid)
        .await
        .expect("store read")
        .and_then(|c| c.result)
        .expect("a result was recorded")
}
