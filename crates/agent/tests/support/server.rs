//! The server side of the end-to-end tests: an admin API client and a Mac enrolled in a real escrowd
//! (testkit) that has received the agent's settings profile through MDM.

use agent::client::Http;
use serde_json::{Value as Json, json};
use service::apikeys::Actor;
use store::ApiScope;
use testkit::TestServer;

use super::FakeMac;

/// The admin API over the agent's own blocking client (off the async workers).
pub struct Admin {
    http: Http,
    auth: String,
}

impl Admin {
    pub fn call(&self, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, answer) = tokio::task::block_in_place(|| {
            self.http
                .request(method, path, &[("authorization", self.auth.clone())], &body)
                .unwrap()
        });
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(Json::Null),
        )
    }
}

pub fn agent_blocking(mac: &mut FakeMac, args: &[&str]) -> super::Run {
    tokio::task::block_in_place(|| mac.agent(args, &[]))
}

pub async fn installed(
    ts: &TestServer,
    udid: &str,
    dir: &std::path::Path,
) -> (Admin, std::path::PathBuf) {
    let (admin, config, _) = installed_device(ts, udid, dir).await;
    (admin, config)
}

/// As [`installed`], also handing back the enrolled Mac (to deliver later installs with [`deliver`]).
pub async fn installed_device(
    ts: &TestServer,
    udid: &str,
    dir: &std::path::Path,
) -> (Admin, std::path::PathBuf, testkit::TestDevice) {
    let device = ts.new_device(udid).unwrap();
    device.enroll().await.unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key("e2e", ApiScope::Operate, &Actor::offline("test"))
        .await
        .unwrap();
    let admin = Admin {
        http: Http::new(&ts.admin_url(), None).unwrap(),
        auth: format!("Bearer {}", key.expose()),
    };
    let (s, b) = admin.call(
        "POST",
        &format!("/api/v1/devices/{udid}/agent"),
        Some(json!({"server_url": ts.base_url()})),
    );
    assert_eq!(s, 202, "{b}");
    let config = deliver(&device, dir).await;
    (admin, config, device)
}

/// The Mac receives the queued InstallProfile and acknowledges it; macOS would write the payload's keys as
/// managed preferences, here `dir/com.escrowd.agent.plist`.
pub async fn deliver(device: &testkit::TestDevice, dir: &std::path::Path) -> std::path::PathBuf {
    let reply = device.idle().await.unwrap();
    let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let top = v.as_dictionary().unwrap();
    let cmd = top["Command"].as_dictionary().unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    let profile: plist::Value = plist::from_bytes(cmd["Payload"].as_data().unwrap()).unwrap();
    let payload = profile.as_dictionary().unwrap()["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(plist::Value::as_dictionary)
        .find(|d| {
            d.get("PayloadType").and_then(plist::Value::as_string) == Some("com.escrowd.agent")
        })
        .unwrap()
        .clone();
    let uuid = top["CommandUUID"].as_string().unwrap();
    let ack = testkit::messages::report(
        &device.udid,
        "Acknowledged",
        Some(uuid),
        plist::Dictionary::new(),
    );
    assert_eq!(device.connect(ack).await.unwrap().status, 200);
    let config = dir.join("com.escrowd.agent.plist");
    plist::to_file_xml(&config, &plist::Value::Dictionary(payload)).unwrap();
    config
}
