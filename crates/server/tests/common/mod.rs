//! Helpers shared by the admin API tests: an HTTP client with a key, test Macs, command answers.
#![allow(dead_code)]

use plist::{Dictionary, Value};
use serde_json::Value as Json;
use service::apikeys::Actor;
use store::ApiScope;
use testkit::{TestDevice, TestServer, messages};

pub struct Api {
    pub base: String,
    pub auth: Option<String>,
}

impl Api {
    pub async fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Json) {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(a) = &self.auth {
            headers.push(("authorization", a.clone()));
        }
        raw(&self.base, method, path, &headers, body.unwrap_or_default()).await
    }
    pub async fn get(&self, path: &str) -> (u16, Json) {
        self.call("GET", path, None).await
    }
    pub async fn send(&self, method: &str, path: &str, body: Json) -> (u16, Json) {
        self.call(method, path, Some(body.to_string().into_bytes()))
            .await
    }
}

pub async fn key(ts: &TestServer, scope: ApiScope) -> String {
    let (_, secret) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            &format!("{}-key", scope.as_str()),
            scope,
            &Actor::offline("test"),
        )
        .await
        .unwrap();
    secret.expose().clone()
}

pub async fn api(ts: &TestServer, scope: ApiScope) -> Api {
    Api {
        base: ts.admin_url(),
        auth: Some(format!("Bearer {}", key(ts, scope).await)),
    }
}

pub async fn enrolled(ts: &TestServer, udid: &str) -> TestDevice {
    let mac = ts.new_device(udid).unwrap();
    mac.enroll().await.unwrap();
    mac
}

pub fn uuid_of(reply: &[u8]) -> String {
    let v: Value = plist::from_bytes(reply).unwrap();
    v.as_dictionary().unwrap()["CommandUUID"]
        .as_string()
        .unwrap()
        .to_string()
}

/// The command each test Mac holds: the one handed out in the answer to its last report (by UDID).
static IN_HAND: std::sync::Mutex<Vec<(String, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());

/// The Mac answers the command it holds with `extra` as the result: the one the server handed out in the
/// answer to its previous report, or else the next one an Idle fetches. Like a real Mac, it never drops a
/// command it was handed (on PostgreSQL a handed-out command stays claimed, so an Idle would not see it again).
pub async fn answer_next(mac: &TestDevice, extra: Dictionary) {
    let held = {
        let mut in_hand = IN_HAND.lock().unwrap();
        let at = in_hand.iter().position(|(udid, _)| *udid == mac.udid);
        at.map(|i| in_hand.swap_remove(i).1)
    };
    let command = match held {
        Some(body) => body,
        None => {
            let reply = mac.idle().await.unwrap();
            assert_eq!(reply.status, 200);
            reply.body
        }
    };
    let uuid = uuid_of(&command);
    let r = mac
        .connect(messages::report(
            &mac.udid,
            "Acknowledged",
            Some(&uuid),
            extra,
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    if !r.body.is_empty() {
        IN_HAND.lock().unwrap().push((mac.udid.clone(), r.body));
    }
}

pub fn dict(pairs: &[(&str, Value)]) -> Dictionary {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

pub async fn event_count(ts: &TestServer) -> usize {
    ts.store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

pub fn concrete(path: &str) -> String {
    path.replace("{id}", "UNKNOWN")
        .replace("{ids}", "UNKNOWN")
        .replace("{action}", "UNKNOWN")
}

/// One request with arbitrary headers (the agent's signature headers, or none); the answer as JSON (Null if not).
pub async fn raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Json) {
    let method = testkit::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = testkit::http::client().request(method, format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let reply = testkit::http::send(req.body(body)).await.unwrap();
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or(Json::Null),
    )
}
