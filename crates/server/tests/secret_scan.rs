//! The secret scan (issue 11): one full run through escrowd's secret-bearing paths — a static SCEP challenge, an
//! enrollment link and its one-time challenge, two escrowed Bootstrap Tokens (the Mac's and a pending
//! identity's own), an API key, the agent's registration secret and an action's passwords — and then every
//! log line (TRACE level), every event, every API answer collected on the way and every file in the data
//! directory is searched for each secret, raw, base64 and hex. None may be found.
//!
//! Carriers are not searched: the one place each secret is meant to travel (the enrollment profile to the Mac,
//! the GetBootstrapToken answer to its own Mac, the InstallProfile to the Mac, the API key's creation answer).

mod common;

use std::sync::{Arc, Mutex};

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{api, uuid_of};
use protocol::agent_profile;
use serde_json::{Value as Json, json};
use store::ApiScope;
use testkit::enroll::http_get;
use testkit::secrets::leak;
use testkit::{TestDevice, TestServer, messages};

const V: &str = "SCAN-MAC-0001";
const TOKEN_V: &[u8] = b"TOKSECRET-victim-4f9a1c2e7b5d8a3f6e0c9b2d";
const TOKEN_P: &[u8] = b"TOKSECRET-pending-8e1d3c5a7f9b2e4d6c0a";
const CHALLENGE: &str = "SCEPSECRET-static-challenge-71c3e9";
const ADMIN_PW: &str = "PWSECRET-Adm1n-93kq";
const USER_PW: &str = "PWSECRET-Us3r-58zx";

/// Everything written through `tracing` in this test binary, at TRACE.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn register_agent(ts: &TestServer, mac: &TestDevice) -> (String, Vec<Json>) {
    let op = api(ts, ApiScope::Operate).await;
    let (status, body) = op
        .send(
            "POST",
            &format!("/api/v1/devices/{V}/agent"),
            json!({"server_url": ts.base_url()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let reply = mac.idle().await.unwrap();
    let uuid = uuid_of(&reply.body);
    let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    let settings = agent_profile::parse_agent_settings(cmd["Payload"].as_data().unwrap()).unwrap();
    let secret = settings.registration_secret.expose().clone();
    // The Mac installs the profile and says so.
    let ack = mac
        .connect(messages::report(
            V,
            "Acknowledged",
            Some(&uuid),
            Default::default(),
        ))
        .await
        .unwrap();
    assert_eq!(ack.status, 200);
    let key = SigningKey::generate().unwrap();
    let hpke = HpkeKeyPair::generate();
    let reg = json!({
        "device_id": V,
        "registration_secret": secret,
        "signing_key": B64.encode(key.public_key()),
        "hpke_key": B64.encode(hpke.public_key()),
    });
    let (status, answer) = common::Api {
        base: ts.base_url(),
        auth: None,
    }
    .send("POST", "/agent/v1/register", reg)
    .await;
    assert_eq!(status, 201, "{answer}");
    (secret, vec![body, answer])
}

#[tokio::test]
async fn no_secret_used_in_a_full_run_is_in_any_log_event_answer_or_file() {
    let logs = LogBuffer::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let ts =
        TestServer::start_with(|o| o.scep_challenge = Some(vault::Secret::new(CHALLENGE.into())))
            .await
            .unwrap();
    ts.install_push_certificate().await.unwrap();
    let admin_key = common::key(&ts, ApiScope::Admin).await;
    let admin = common::Api {
        base: ts.admin_url(),
        auth: Some(format!("Bearer {admin_key}")),
    };
    let mut answers: Vec<Json> = Vec::new();

    // An enrollment link (its token and the profile's one-time challenge are secrets).
    let (status, g) = admin
        .send("POST", "/api/v1/groups", json!({"name": "Scan"}))
        .await;
    assert_eq!(status, 201, "{g}");
    let (status, t) = admin
        .send(
            "POST",
            "/api/v1/enrollment-tokens",
            json!({"group": "Scan", "max_uses": 3}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let link_token = t["token"].as_str().unwrap().to_string();
    let signed = http_get(&ts.base_url(), &format!("/enroll?token={link_token}"))
        .await
        .unwrap()
        .body;
    let profile = testkit::enroll::read_signed_profile(&signed, &ts.profile_signer_cert()).unwrap();
    let one_time = profile.scep.challenge.as_ref().unwrap().expose().clone();
    let (mac, _) = TestDevice::enroll_via_profile(V, &signed, &ts.profile_signer_cert())
        .await
        .unwrap()
        .unwrap_or_else(|rep| panic!("SCEP refused: {:?}", rep.fail_info));
    mac.enroll().await.unwrap();
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN_V)).await.unwrap().status,
        200
    );
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), TOKEN_V);

    // A pending identity from the static SCEP challenge escrows and fetches its own token.
    let pending = TestDevice::enroll_via_scep(V, &ts.base_url(), Some(CHALLENGE), 2048)
        .await
        .unwrap()
        .unwrap_or_else(|rep| panic!("SCEP refused: {:?}", rep.fail_info));
    assert_eq!(pending.authenticate().await.unwrap().status, 200);
    assert_eq!(
        pending
            .set_bootstrap_token(Some(TOKEN_P))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        pending.get_bootstrap_token().await.unwrap().1.unwrap(),
        TOKEN_P
    );

    // Drain the inventory queued at enrollment so the agent's InstallProfile is next.
    while !mac.idle().await.unwrap().body.is_empty() {
        let r = mac.idle().await.unwrap();
        if r.body.is_empty() {
            break;
        }
        let uuid = uuid_of(&r.body);
        mac.connect(messages::report(
            V,
            "Error",
            Some(&uuid),
            Default::default(),
        ))
        .await
        .unwrap();
    }
    let (registration_secret, mut agent_answers) = register_agent(&ts, &mac).await;
    answers.append(&mut agent_answers);
    let (status, created) = admin
        .send(
            "POST",
            &format!("/api/v1/devices/{V}/actions"),
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
                   "user_password": USER_PW, "admin_password": ADMIN_PW}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    answers.push(created);

    // Every admin view of the Mac.
    for path in [
        "/api/v1/devices".to_string(),
        format!("/api/v1/devices/{V}"),
        format!("/api/v1/devices/{V}/users"),
        format!("/api/v1/devices/{V}/events?limit=1000"),
        format!("/api/v1/devices/{V}/diagnosis"),
        format!("/api/v1/devices/{V}/commands?limit=1000"),
        format!("/api/v1/devices/{V}/identities"),
        format!("/api/v1/devices/{V}/actions"),
        "/api/v1/events?limit=1000".to_string(),
        "/api/v1/enrollment-tokens".to_string(),
        "/api/v1/apikeys".to_string(),
        "/api/v1/groups".to_string(),
    ] {
        let (status, body) = admin.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        answers.push(body);
    }
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(events.len() > 10, "the run wrote events");
    let data_dir = ts.opts.data_dir.clone();

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the Mac's Bootstrap Token", TOKEN_V.to_vec()),
        ("the pending identity's token", TOKEN_P.to_vec()),
        ("the static SCEP challenge", CHALLENGE.as_bytes().to_vec()),
        ("the enrollment link's token", link_token.into_bytes()),
        ("the one-time SCEP challenge", one_time.into_bytes()),
        ("the admin API key", admin_key.into_bytes()),
        (
            "the agent's registration secret",
            registration_secret.into_bytes(),
        ),
        ("an admin password", ADMIN_PW.as_bytes().to_vec()),
        ("a user password", USER_PW.as_bytes().to_vec()),
    ];
    let log_bytes = logs.0.lock().unwrap().clone();
    assert!(log_bytes.len() > 10_000, "TRACE logging produced output");
    let event_text: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("{} {} {} {:?}\n", e.subject, e.kind, e.detail, e).into_bytes())
        .collect();
    let answer_text: Vec<u8> = answers
        .iter()
        .flat_map(|a| a.to_string().into_bytes())
        .collect();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stack = vec![data_dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    if ts.opts.database.is_none() {
        assert!(
            files.iter().any(|(p, _)| p.ends_with(".db")),
            "{:?}",
            files.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
    }
    // What the database holds at rest (on PostgreSQL it is not in the data directory).
    files.push(("the database".into(), ts.database_dump().await.unwrap()));

    let mut found = Vec::new();
    for (what, secret) in &secrets {
        for (place, haystack) in [
            ("logs".to_string(), &log_bytes),
            ("events".to_string(), &event_text),
            ("API answers".to_string(), &answer_text),
        ]
        .into_iter()
        .chain(files.iter().map(|(p, b)| (p.clone(), b)))
        {
            if let Some(form) = leak(haystack, secret) {
                found.push(format!("{what} ({form}) in {place}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    // The control: the scan does find a secret where one is meant to be.
    assert_eq!(leak(&signed, CHALLENGE.as_bytes()), None);
    assert!(leak(b"xx TOKSECRET-victim-4f9a1c2e7b5d8a3f6e0c9b2d xx", TOKEN_V).is_some());
    for prefix in 0..3 {
        let mut wrapped = b"xyz"[..prefix].to_vec();
        wrapped.extend_from_slice(TOKEN_V);
        wrapped.extend_from_slice(b"tail");
        assert!(
            leak(B64.encode(&wrapped).as_bytes(), TOKEN_V).is_some(),
            "base64 at alignment {prefix}"
        );
    }
}
