//! Issue 11 end to end over HTTP: agent registration secrets (a newer install revokes the older secret; the
//! TTL counts from the Mac's Acknowledged of the InstallProfile, on the service's clock; re-registering a Mac
//! with an agent needs that agent's signature or an admin's --replace) and secrets inside commands (EraseDevice
//! PIN, the agent's InstallProfile, raw commands with a Password) sealed at rest: absent from the SQLite files
//! while queued, delivered intact, kept after NotNow, deleted after Acknowledged, redacted in history.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{api, enrolled, raw, uuid_of};
use plist::Dictionary;
use protocol::agent_profile;
use serde_json::{Value as Json, json};
use service::{Clock, ManualClock, SharedClock};
use store::{ApiScope, COMMAND_PAYLOAD_FIELD, command_payload_owner};
use testkit::{TestDevice, TestServer, messages};

const HOUR: Duration = Duration::from_secs(3600);

async fn server(clock: &Arc<ManualClock>, ttl: Duration) -> TestServer {
    let clock = SharedClock(clock.clone());
    TestServer::start_with(|o| {
        o.clock = clock;
        o.agent_secret_ttl = ttl;
        // Nothing but the test queues commands.
        o.inventory_interval = Duration::ZERO;
    })
    .await
    .unwrap()
}

/// Queue an agent install (as `key`'s scope) and return the answer.
async fn install(ts: &TestServer, scope: ApiScope, udid: &str, replace: bool) -> (u16, Json) {
    api(ts, scope)
        .await
        .send(
            "POST",
            &format!("/api/v1/devices/{udid}/agent"),
            json!({"server_url": ts.base_url(), "replace": replace}),
        )
        .await
}

/// A command reply as its uuid and Command dict.
fn parse(body: &[u8]) -> (String, Dictionary) {
    assert!(!body.is_empty(), "nothing queued");
    let v: plist::Value = plist::from_bytes(body).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap()
        .clone();
    (uuid_of(body), cmd)
}

/// The command the Mac fetches next (an Idle report).
async fn fetch(mac: &TestDevice) -> (String, Dictionary) {
    let reply = mac.idle().await.unwrap();
    assert_eq!(reply.status, 200);
    parse(&reply.body)
}

/// Report `status` for `uuid`; the answer body (the next command, or empty).
async fn answer(mac: &TestDevice, uuid: &str, status: &str) -> Vec<u8> {
    let r = mac
        .connect(messages::report(
            &mac.udid,
            status,
            Some(uuid),
            Dictionary::new(),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    r.body
}

/// The Mac fetches its InstallProfile, acknowledges it, and the registration secret inside is returned.
async fn deliver_secret(mac: &TestDevice) -> String {
    let (uuid, cmd) = fetch(mac).await;
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    let settings = agent_profile::parse_agent_settings(cmd["Payload"].as_data().unwrap()).unwrap();
    assert_eq!(settings.device_id, mac.udid);
    answer(mac, &uuid, "Acknowledged").await;
    settings.registration_secret.expose().clone()
}

struct Keys {
    signing: SigningKey,
    hpke: HpkeKeyPair,
}

fn keys() -> Keys {
    Keys {
        signing: SigningKey::generate().unwrap(),
        hpke: HpkeKeyPair::generate(),
    }
}

fn register_body(udid: &str, secret: &str, k: &Keys) -> Vec<u8> {
    json!({
        "device_id": udid,
        "registration_secret": secret,
        "signing_key": B64.encode(k.signing.public_key()),
        "hpke_key": B64.encode(k.hpke.public_key()),
    })
    .to_string()
    .into_bytes()
}

/// Register, unsigned or signed by (`agent_id`, `key`) at the service clock's time.
async fn register(
    ts: &TestServer,
    clock: &ManualClock,
    udid: &str,
    secret: &str,
    k: &Keys,
    signer: Option<(&str, &SigningKey)>,
) -> (u16, Json) {
    let body = register_body(udid, secret, k);
    let headers = match signer {
        Some((id, key)) => agent::client::signed_headers(
            key,
            id,
            "POST",
            "/agent/v1/register",
            clock.now_millis() / 1000,
            &uuid::Uuid::new_v4().simple().to_string(),
            &body,
        ),
        None => Vec::new(),
    };
    raw(&ts.base_url(), "POST", "/agent/v1/register", &headers, body).await
}

async fn current_agent(ts: &TestServer, udid: &str) -> Option<String> {
    ts.store()
        .agent_for_device(udid)
        .await
        .unwrap()
        .map(|a| a.agent_id)
}

async fn events_of(ts: &TestServer, udid: &str, kind: &str) -> Vec<store::Event> {
    ts.store()
        .events(&store::EventFilter {
            subject: Some(udid.into()),
            kind: Some(kind.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_second_agent_install_revokes_the_first_secret() {
    let clock = ManualClock::now();
    let ts = server(&clock, HOUR * 24).await;
    let mac = enrolled(&ts, "REVOKE-MAC").await;
    let (s, first) = install(&ts, ApiScope::Operate, "REVOKE-MAC", false).await;
    assert_eq!(
        (s, first["revoked_secrets"].as_u64()),
        (202, Some(0)),
        "{first}"
    );
    let old = deliver_secret(&mac).await;
    let (s, second) = install(&ts, ApiScope::Operate, "REVOKE-MAC", false).await;
    assert_eq!(
        (s, second["revoked_secrets"].as_u64()),
        (202, Some(1)),
        "{second}"
    );
    let new = deliver_secret(&mac).await;
    assert_ne!(old, new);
    // The first secret no longer registers, and the refusal changes nothing.
    let (s, body) = register(&ts, &clock, "REVOKE-MAC", &old, &keys(), None).await;
    assert_eq!(s, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert_eq!(current_agent(&ts, "REVOKE-MAC").await, None);
    let refused = events_of(&ts, "REVOKE-MAC", "agent.registration_refused").await;
    assert!(refused[0].detail.contains("revoked"), "{:?}", refused[0]);
    // The second does.
    let (s, body) = register(&ts, &clock, "REVOKE-MAC", &new, &keys(), None).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        current_agent(&ts, "REVOKE-MAC").await.as_deref(),
        body["agent_id"].as_str()
    );
}

#[tokio::test]
async fn the_secret_expires_its_ttl_after_the_mac_acknowledges_the_profile_not_after_queueing() {
    let clock = ManualClock::now();
    // The setting, not the 24 h default, decides.
    let ts = server(&clock, HOUR * 2).await;
    assert_eq!(server::app::DEFAULT_AGENT_SECRET_TTL, HOUR * 24);
    let early = enrolled(&ts, "TTL-MAC-1").await;
    let late = enrolled(&ts, "TTL-MAC-2").await;
    for udid in ["TTL-MAC-1", "TTL-MAC-2"] {
        let (s, b) = install(&ts, ApiScope::Operate, udid, false).await;
        assert_eq!(
            (s, b["secret_ttl_ms"].as_i64()),
            (202, Some(7_200_000)),
            "{b}"
        );
    }
    // Queued for two days (ten TTLs), and a NotNow on the way: the clock has not started.
    clock.advance(HOUR * 24);
    let (uuid, _) = fetch(&early).await;
    answer(&early, &uuid, "NotNow").await;
    clock.advance(HOUR * 24);
    let secret_1 = deliver_secret(&early).await;
    let secret_2 = deliver_secret(&late).await;
    // Just inside the TTL counted from delivery: registers.
    clock.advance(HOUR * 2 - Duration::from_secs(1));
    let (s, b) = register(&ts, &clock, "TTL-MAC-1", &secret_1, &keys(), None).await;
    assert_eq!(s, 201, "{b}");
    // At the TTL: refused, with the reason in the audit trail, and nothing registered.
    clock.advance(Duration::from_secs(1));
    let (s, b) = register(&ts, &clock, "TTL-MAC-2", &secret_2, &keys(), None).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(current_agent(&ts, "TTL-MAC-2").await, None);
    let refused = events_of(&ts, "TTL-MAC-2", "agent.registration_refused").await;
    assert!(refused[0].detail.contains("expired"), "{:?}", refused[0]);
}

#[tokio::test]
async fn re_registering_needs_the_current_agents_signature_or_an_admins_replace() {
    let clock = ManualClock::now();
    let ts = server(&clock, HOUR * 24).await;
    let udid = "REREG-MAC";
    let mac = enrolled(&ts, udid).await;
    install(&ts, ApiScope::Operate, udid, false).await;
    let secret = deliver_secret(&mac).await;
    let first_keys = keys();
    let (s, b) = register(&ts, &clock, udid, &secret, &first_keys, None).await;
    assert_eq!(s, 201, "{b}");
    let first = b["agent_id"].as_str().unwrap().to_string();

    // A fresh secret, unsigned: refused with the reason, the agent and the secret unchanged.
    install(&ts, ApiScope::Operate, udid, false).await;
    let secret = deliver_secret(&mac).await;
    let second_keys = keys();
    let (s, b) = register(&ts, &clock, udid, &secret, &second_keys, None).await;
    assert_eq!(s, 409, "{b}");
    let why = b["error"].as_str().unwrap();
    assert!(
        why.contains("already has a registered agent") && why.contains("--replace"),
        "{why}"
    );
    assert_eq!(
        current_agent(&ts, udid).await.as_deref(),
        Some(first.as_str())
    );
    // Signed by a key that is not the agent's, or with only some signature headers: 401, nothing changes.
    let stranger = keys();
    let (s, _) = register(
        &ts,
        &clock,
        udid,
        &secret,
        &second_keys,
        Some((&first, &stranger.signing)),
    )
    .await;
    assert_eq!(s, 401);
    let body = register_body(udid, &secret, &second_keys);
    let (s, b) = raw(
        &ts.base_url(),
        "POST",
        "/agent/v1/register",
        &[(agent_profile::HEADER_AGENT, first.clone())],
        body,
    )
    .await;
    assert_eq!(s, 401, "{b}");
    assert!(b["error"].as_str().unwrap().contains("missing"), "{b}");
    assert_eq!(
        current_agent(&ts, udid).await.as_deref(),
        Some(first.as_str())
    );

    // Signed by the current agent: replaced, with an event saying how.
    let (s, b) = register(
        &ts,
        &clock,
        udid,
        &secret,
        &second_keys,
        Some((&first, &first_keys.signing)),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let second = b["agent_id"].as_str().unwrap().to_string();
    assert_eq!(
        current_agent(&ts, udid).await.as_deref(),
        Some(second.as_str())
    );
    let replaced = events_of(&ts, udid, "agent.replaced").await;
    assert!(
        replaced[0].detail.contains(&first) && replaced[0].detail.contains("signed"),
        "{:?}",
        replaced[0]
    );

    // A malformed install body is a 400 that queues nothing and creates no secret.
    let secrets_before = ts.store().agent_secrets(udid).await.unwrap().len();
    let admin = api(&ts, ApiScope::Admin).await;
    for body in [
        json!({"server_url": ts.base_url(), "replace": "yes"}),
        json!({"server_url": ts.base_url(), "replace": true, "force": true}),
    ] {
        let (s, b) = admin
            .send("POST", &format!("/api/v1/devices/{udid}/agent"), body)
            .await;
        assert_eq!(s, 400, "{b}");
    }
    assert_eq!(
        ts.store().agent_secrets(udid).await.unwrap().len(),
        secrets_before
    );
    assert_eq!(ts.store().active_queue_len(udid).await.unwrap(), 0);

    // The agent's key is lost: only an admin's --replace lets a new registration in (operators may not).
    let (s, _) = install(&ts, ApiScope::Operate, udid, true).await;
    assert_eq!(s, 403);
    let (s, b) = install(&ts, ApiScope::Admin, udid, true).await;
    assert_eq!((s, b["replace"].as_bool()), (202, Some(true)), "{b}");
    let authorized = events_of(&ts, udid, "agent.replace_authorized").await;
    assert_eq!(authorized.len(), 1);
    assert!(
        authorized[0].detail.contains(&second),
        "{:?}",
        authorized[0]
    );
    let secret = deliver_secret(&mac).await;
    let (s, b) = register(&ts, &clock, udid, &secret, &keys(), None).await;
    assert_eq!(s, 201, "{b}");
    let third = b["agent_id"].as_str().unwrap().to_string();
    assert_eq!(
        current_agent(&ts, udid).await.as_deref(),
        Some(third.as_str())
    );
    let replaced = events_of(&ts, udid, "agent.replaced").await;
    assert!(
        replaced[0].detail.contains(&second) && replaced[0].detail.contains("--replace"),
        "{:?}",
        replaced[0]
    );
}

/// What the database holds at rest (the SQLite files, or the PostgreSQL schema's rows).
async fn database_bytes(ts: &TestServer) -> Vec<u8> {
    let all = ts.database_dump().await.unwrap();
    assert!(all.len() > 4096, "no database content");
    all
}

/// Whether `secret` is in `haystack` raw, base64 or hex.
fn contains(haystack: &[u8], secret: &str) -> bool {
    testkit::secrets::leak(haystack, secret.as_bytes()).is_some()
}

async fn sealed_payload_exists(ts: &TestServer, uuid: &str) -> bool {
    ts.store()
        .sealed_secret(&command_payload_owner(uuid), COMMAND_PAYLOAD_FIELD)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn secrets_inside_commands_are_sealed_at_rest_delivered_intact_and_gone_once_answered() {
    const PIN: &str = "735911";
    const RAW_PASSWORD: &str = "Fw-Pa55-9c1d";
    let clock = ManualClock::now();
    let ts = server(&clock, HOUR * 24).await;
    let udid = "SEALED-MAC";
    let mac = enrolled(&ts, udid).await;
    let admin = api(&ts, ApiScope::Admin).await;
    let (s, b) = admin
        .send(
            "POST",
            "/api/v1/commands",
            json!({"devices": [udid], "command": {"type": "EraseDevice", "pin": PIN}, "force": true, "push": false}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let erase = b["command_uuid"].as_str().unwrap().to_string();
    let (s, b) = install(&ts, ApiScope::Operate, udid, false).await;
    assert_eq!(s, 202, "{b}");
    let profile = b["command_uuid"].as_str().unwrap().to_string();
    let raw_cmd = format!(
        r#"<?xml version="1.0"?><plist version="1.0"><dict><key>CommandUUID</key><string>RAW-FW-1</string>
<key>Command</key><dict><key>RequestType</key><string>SetFirmwarePassword</string>
<key>NewPassword</key><string>{RAW_PASSWORD}</string></dict></dict></plist>"#
    );
    let (s, b) = admin
        .call(
            "POST",
            &format!("/api/v1/commands/raw?devices={udid}&nopush"),
            Some(raw_cmd.into_bytes()),
        )
        .await;
    assert!(s == 201 || s == 200, "{s} {b}");

    // Queued: sealed, and neither the PIN nor the raw password is anywhere in the database files.
    for uuid in [&erase, &profile, "RAW-FW-1"] {
        assert!(sealed_payload_exists(&ts, uuid).await, "{uuid}");
    }
    let db = database_bytes(&ts).await;
    assert!(
        !contains(&db, PIN),
        "the PIN is in the database in plaintext"
    );
    assert!(
        !contains(&db, RAW_PASSWORD),
        "the raw password is in plaintext"
    );

    // `escrowd keys rotate` re-wraps them with every other secret; the running server still opens them.
    let key_file = ts.opts.data_dir.join("vault.key");
    let new_key = vault::Keyring::rotate_file(&key_file).unwrap();
    let rotated = vault::Vault::open_or_create(&key_file).unwrap();
    let report = service::keys::rewrap_all(&ts.store(), &rotated, |_| {})
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    for uuid in [&erase, &profile, "RAW-FW-1"] {
        let sealed = ts
            .store()
            .sealed_secret(&command_payload_owner(uuid), COMMAND_PAYLOAD_FIELD)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sealed.key_id, new_key);
    }

    // Sent intact; NotNow keeps the sealed payload for the resend.
    let (uuid, cmd) = fetch(&mac).await;
    assert_eq!(uuid, erase);
    assert_eq!(cmd["PIN"].as_string(), Some(PIN));
    let next = answer(&mac, &erase, "NotNow").await;
    assert!(sealed_payload_exists(&ts, &erase).await);
    // The same session goes on with the InstallProfile; its secret is not in the database either.
    let (uuid, cmd) = parse(&next);
    assert_eq!(uuid, profile);
    let secret = agent_profile::parse_agent_settings(cmd["Payload"].as_data().unwrap())
        .unwrap()
        .registration_secret
        .expose()
        .clone();
    assert!(!contains(&database_bytes(&ts).await, &secret));
    let next = answer(&mac, &profile, "Acknowledged").await;
    assert!(!sealed_payload_exists(&ts, &profile).await);
    // Outside the NotNow session the EraseDevice comes again, with the same PIN; an Error (the Mac did not
    // erase) deletes it. (An acknowledged erase would end the enrollment and empty its whole queue.)
    let (uuid, cmd) = parse(&next);
    assert_eq!(
        (uuid.as_str(), cmd["PIN"].as_string()),
        (erase.as_str(), Some(PIN))
    );
    assert!(sealed_payload_exists(&ts, &erase).await);
    let next = answer(&mac, &erase, "Error").await;
    assert!(!sealed_payload_exists(&ts, &erase).await);
    // The raw command; Acknowledged deletes its payload.
    let (uuid, cmd) = parse(&next);
    assert_eq!(uuid, "RAW-FW-1");
    assert_eq!(cmd["NewPassword"].as_string(), Some(RAW_PASSWORD));
    assert!(answer(&mac, "RAW-FW-1", "Acknowledged").await.is_empty());
    assert!(!sealed_payload_exists(&ts, "RAW-FW-1").await);
    assert_eq!(mac.idle().await.unwrap().body.len(), 0);

    // History and events show the commands redacted, never the secrets.
    let (s, history) = admin.get(&format!("/api/v1/devices/{udid}/commands")).await;
    assert_eq!(s, 200);
    let text = history.to_string();
    testkit::assert_no_secret(
        &text,
        &[PIN.as_bytes(), RAW_PASSWORD.as_bytes(), secret.as_bytes()],
    );
    let commands = history["commands"].as_array().unwrap();
    for uuid in [&erase, &profile, "RAW-FW-1"] {
        let c = commands
            .iter()
            .find(|c| c["uuid"] == json!(uuid))
            .unwrap_or_else(|| panic!("{uuid} not in {text}"));
        assert_eq!(c["carries_secret"], json!(true), "{c}");
        assert!(c["payload"].as_str().unwrap().contains("[redacted]"), "{c}");
    }
    let (_, events) = admin
        .get(&format!("/api/v1/devices/{udid}/events?limit=1000"))
        .await;
    testkit::assert_no_secret(
        events.to_string(),
        &[PIN.as_bytes(), RAW_PASSWORD.as_bytes(), secret.as_bytes()],
    );
    let db = database_bytes(&ts).await;
    for secret in [PIN, RAW_PASSWORD, secret.as_str()] {
        assert!(!contains(&db, secret), "a secret reached the database");
    }
}
