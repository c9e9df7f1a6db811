//! APNs end to end: push certificate upload through the admin API, a device's TokenUpdate, enqueue, and the
//! local APNs stand-in (HTTP/2, TLS with a mandatory client certificate) seeing the exact request; APNs errors
//! marking devices, retries, pacing, bad uploads, and no key material in any answer.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Api, api};
use serde_json::json;
use server::apns::{ApnsClient, ApnsSettings};
use service::push::{PushTarget, Pusher};
use store::ApiScope;
use testkit::apns::{Answer, ApnsStandIn, PushCa, device_token, token_update};
use testkit::{TestDevice, TestServer, messages::TOPIC};
use vault::Secret;

const MAGIC_PREFIX: &str = "8E1B6A3C-0000-4A27-8742-";

fn fast(standin: &ApnsStandIn, concurrency: usize) -> ApnsSettings {
    ApnsSettings {
        url: standin.url.clone(),
        ca_pem: Some(standin.server_ca_pem.clone()),
        concurrency,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        ..Default::default()
    }
}

struct Setup {
    ts: TestServer,
    standin: ApnsStandIn,
    ca: PushCa,
    admin: Api,
    cert: Vec<u8>,
    key: Vec<u8>,
}

async fn setup() -> Setup {
    let ca = PushCa::generate().unwrap();
    let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
    let settings = fast(&standin, 8);
    let ts = TestServer::start_with(|o| o.apns = settings).await.unwrap();
    let admin = api(&ts, ApiScope::Admin).await;
    let (cert, key) = ca.issue(TOPIC, -1, 365).unwrap();
    Setup {
        ts,
        standin,
        ca,
        admin,
        cert,
        key,
    }
}

async fn upload_pem(s: &Setup) -> (u16, serde_json::Value) {
    s.admin
        .send(
            "PUT",
            "/api/v1/push-certificate",
            json!({"certificate_pem": String::from_utf8(s.cert.clone()).unwrap(),
                   "private_key_pem": String::from_utf8(s.key.clone()).unwrap()}),
        )
        .await
}

/// An enrolled device whose TokenUpdate carried token `n` and its own PushMagic.
async fn pushable(ts: &TestServer, udid: &str, n: u32) -> (TestDevice, String, String) {
    let mac = ts.new_device(udid).unwrap();
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    let (token, hex) = device_token(n);
    let magic = format!("{MAGIC_PREFIX}{n:012}");
    let r = mac
        .checkin(token_update(udid, TOPIC, &token, &magic))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    (mac, hex, magic)
}

fn no_key_material(v: &serde_json::Value, key: &[u8]) {
    let text = v.to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let key = String::from_utf8_lossy(key);
    let marker = &key.lines().nth(3).unwrap()[..40];
    assert!(!text.contains(marker), "{text}");
}

#[tokio::test]
async fn upload_then_enqueue_pushes_the_exact_apns_request() {
    let s = setup().await;
    let (status, none) = s.admin.get("/api/v1/push-certificate").await;
    assert_eq!(status, 404);
    assert!(
        none["error"].as_str().unwrap().contains("push-cert upload"),
        "{none}"
    );
    let (status, up) = upload_pem(&s).await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["topic"], TOPIC);
    assert!(up["days_left"].as_i64().unwrap() >= 363, "{up}");
    assert!(up["warning"].is_null());
    no_key_material(&up, &s.key);
    let (status, shown) = s.admin.get("/api/v1/push-certificate").await;
    assert_eq!(status, 200);
    assert_eq!(shown, up);
    no_key_material(&shown, &s.key);

    let (mac, hex, magic) = pushable(&s.ts, "APNS-1", 1).await;
    let (status, queued) = s
        .admin
        .send(
            "POST",
            "/api/v1/commands",
            json!({"devices": [mac.udid], "command": {"type": "SecurityInfo"}}),
        )
        .await;
    assert_eq!(status, 201, "{queued}");
    let result = &queued["push"][0];
    assert!(result["error"].is_null(), "{queued}");
    let pushes = s.standin.pushes();
    assert_eq!(pushes.len(), 1);
    let p = &pushes[0];
    assert_eq!(result["push_id"].as_str(), Some(p.apns_id.as_str()));
    assert_eq!(p.token_hex, hex);
    assert_eq!(p.topic, TOPIC);
    assert_eq!(p.body, format!("{{\"mdm\":\"{magic}\"}}").into_bytes());
    assert_eq!(p.priority.as_deref(), Some("10"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(p.expiration.as_deref().unwrap().parse::<u64>().unwrap() > now);

    // NanoMDM enqueue pushes too, ?nopush does not; every push reuses the one connection.
    let raw = |uuid: &str| {
        protocol::command::Command::security_info(uuid.into())
            .to_xml()
            .unwrap()
    };
    let nano = Api {
        base: s.admin.base.clone(),
        auth: s.admin.auth.clone(),
    };
    let (status, body) = nano
        .call(
            "PUT",
            &format!("/v1/enqueue/{}", mac.udid),
            Some(raw("C-NANO-1")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.standin.pushes().len(), 2);
    let (status, _) = nano
        .call(
            "PUT",
            &format!("/v1/enqueue/{}?nopush", mac.udid),
            Some(raw("C-NANO-2")),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.standin.pushes().len(), 2);
    assert_eq!(s.standin.connections(), 1);
    assert!(
        s.standin.violations().is_empty(),
        "{:?}",
        s.standin.violations()
    );

    // Events record the upload without key material.
    let events =
        s.ts.store()
            .events(&store::EventFilter::default())
            .await
            .unwrap();
    let uploaded = events
        .iter()
        .find(|e| e.kind == "push_certificate.uploaded")
        .unwrap();
    assert!(uploaded.detail.contains(TOPIC) && !uploaded.detail.contains("PRIVATE"));

    // After a restart the stored certificate is loaded and pushes work without a new upload.
    let mut ts = s.ts;
    ts.restart().await.unwrap();
    let admin = api(&ts, ApiScope::Operate).await;
    let (status, pushed) = admin
        .send("POST", "/api/v1/push", json!({"devices": [mac.udid]}))
        .await;
    assert_eq!(status, 200);
    assert!(pushed["results"][0]["error"].is_null(), "{pushed}");
    assert_eq!(s.standin.pushes().len(), 3);
}

#[tokio::test]
async fn refused_tokens_mark_the_device_until_its_next_token_update() {
    let s = setup().await;
    assert_eq!(upload_pem(&s).await.0, 200);
    let (a, hex_a, _) = pushable(&s.ts, "APNS-A", 10).await;
    let (b, hex_b, _) = pushable(&s.ts, "APNS-B", 11).await;
    let (c, hex_c, _) = pushable(&s.ts, "APNS-C", 12).await;
    let (d, hex_d, _) = pushable(&s.ts, "APNS-D", 13).await;
    s.standin.script(&hex_a, [Answer::Unregistered]);
    s.standin.script(&hex_b, [Answer::BadDeviceToken]);
    s.standin.script(&hex_c, [Answer::DeviceTokenNotForTopic]);
    s.standin.script(&hex_d, [Answer::BadCertificate]);
    let ids = [&a.udid, &b.udid, &c.udid, &d.udid];
    let (status, pushed) = s
        .admin
        .send("POST", "/api/v1/push", json!({"devices": ids}))
        .await;
    assert_eq!(status, 200);
    let error = |i: usize| {
        pushed["results"][i]["error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(error(0).contains("410 Unregistered"), "{pushed}");
    assert!(error(1).contains("400 BadDeviceToken"), "{pushed}");
    assert!(error(2).contains("400 DeviceTokenNotForTopic"), "{pushed}");
    assert!(error(3).contains("403 BadCertificate"), "{pushed}");
    assert_eq!(s.standin.requests(), 4);

    let (_, detail) = s.admin.get(&format!("/api/v1/devices/{}", a.udid)).await;
    assert_eq!(
        detail["push"]["token_refused"]["reason"], "Unregistered",
        "{detail}"
    );
    let (_, detail_d) = s.admin.get(&format!("/api/v1/devices/{}", d.udid)).await;
    assert!(
        detail_d["push"]["token_refused"].is_null(),
        "403 is not about the token: {detail_d}"
    );

    // Marked devices are skipped (APNs is not asked); the unmarked one is pushed.
    let (_, again) = s
        .admin
        .send("POST", "/api/v1/push", json!({"devices": ids}))
        .await;
    let results = again["results"].as_array().unwrap();
    for r in results
        .iter()
        .filter(|r| r["enrollment_id"] != d.udid.as_str())
    {
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("skipped: APNs refused"),
            "{again}"
        );
    }
    assert_eq!(s.standin.requests(), 5);
    let events =
        s.ts.store()
            .events(&store::EventFilter {
                kind: Some("push.token_invalid".into()),
                ..Default::default()
            })
            .await
            .unwrap();
    assert_eq!(events.len(), 3);

    // A new TokenUpdate (even with the same token) lifts the mark.
    let (token, _) = device_token(10);
    a.checkin(token_update(&a.udid, TOPIC, &token, "NEW-MAGIC"))
        .await
        .unwrap();
    let (_, detail) = s.admin.get(&format!("/api/v1/devices/{}", a.udid)).await;
    assert!(detail["push"]["token_refused"].is_null(), "{detail}");
    let (_, ok) = s
        .admin
        .send("POST", "/api/v1/push", json!({"devices": [a.udid]}))
        .await;
    assert!(ok["results"][0]["error"].is_null(), "{ok}");
    assert_eq!(
        s.standin.pushes().last().unwrap().body,
        br#"{"mdm":"NEW-MAGIC"}"#.to_vec()
    );
    assert!(
        s.standin.violations().is_empty(),
        "{:?}",
        s.standin.violations()
    );
}

#[tokio::test]
async fn retryable_answers_are_retried_with_backoff_and_bounded() {
    let s = setup().await;
    assert_eq!(upload_pem(&s).await.0, 200);
    let (a, hex_a, _) = pushable(&s.ts, "RETRY-A", 20).await;
    let (b, hex_b, _) = pushable(&s.ts, "RETRY-B", 21).await;
    s.standin.script(
        &hex_a,
        [
            Answer::TooManyRequests,
            Answer::ServiceUnavailable,
            Answer::InternalServerError,
        ],
    );
    s.standin.script(&hex_b, [Answer::ServiceUnavailable; 6]);
    let (_, pushed) = s
        .admin
        .send("POST", "/api/v1/push", json!({"devices": [a.udid, b.udid]}))
        .await;
    assert!(pushed["results"][0]["error"].is_null(), "{pushed}");
    let gave_up = pushed["results"][1]["error"].as_str().unwrap();
    assert!(
        gave_up.contains("503 ServiceUnavailable") && gave_up.contains("after 4 attempts"),
        "{gave_up}"
    );
    // a: 3 failures + 1 success; b: 4 attempts (the default bound).
    assert_eq!(s.standin.requests(), 8);
    assert_eq!(s.standin.pushes().len(), 1);
    let (_, detail) = s.admin.get(&format!("/api/v1/devices/{}", b.udid)).await;
    assert!(detail["push"]["token_refused"].is_null());
}

#[tokio::test]
async fn bulk_pushes_are_paced_over_one_connection() {
    let ca = PushCa::generate().unwrap();
    let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
    let (cert, key) = ca.issue(TOPIC, -1, 30).unwrap();
    let limit = 6;
    let client = ApnsClient::new(fast(&standin, limit), &cert, &Secret::new(key)).unwrap();
    let targets: Vec<PushTarget> = (0..120)
        .map(|n| PushTarget {
            enrollment_id: format!("D{n}"),
            token: device_token(n).0,
            push_magic: format!("magic-{n}"),
            topic: TOPIC.into(),
        })
        .collect();
    // Requests are held until `limit` are in flight at once: the client must reach, and never pass, it.
    standin.hold_until(limit);
    standin.set_delay(Duration::from_millis(2));
    let results = client.push(&targets).await;
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    assert_eq!(
        results
            .iter()
            .map(|r| r.enrollment_id.as_str())
            .collect::<Vec<_>>(),
        targets
            .iter()
            .map(|t| t.enrollment_id.as_str())
            .collect::<Vec<_>>()
    );
    assert_eq!(standin.max_in_flight(), limit);
    assert_eq!(standin.pushes().len(), 120);
    assert_eq!(standin.connections(), 1);
    assert_eq!(client.connections_opened(), 1);
    assert!(
        standin.violations().is_empty(),
        "{:?}",
        standin.violations()
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_by_apns_tls() {
    let ca = PushCa::generate().unwrap();
    let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
    let (cert, key) = PushCa::generate().unwrap().issue(TOPIC, -1, 30).unwrap();
    let mut settings = fast(&standin, 2);
    settings.max_attempts = 2;
    let client = ApnsClient::new(settings, &cert, &Secret::new(key.clone())).unwrap();
    let target = PushTarget {
        enrollment_id: "D1".into(),
        token: device_token(1).0,
        push_magic: "m".into(),
        topic: TOPIC.into(),
    };
    let r = client.push(std::slice::from_ref(&target)).await;
    let err = r[0].error.as_deref().unwrap();
    assert!(err.contains("after 2 attempts"), "{err}");
    assert!(!err.contains("PRIVATE"), "{err}");
    assert_eq!(standin.requests(), 0);
    // The right CA but a topic that is not the certificate's: APNs' TopicDisallowed, not retried.
    let (cert, key) = ca.issue(TOPIC, -1, 30).unwrap();
    let client = ApnsClient::new(fast(&standin, 2), &cert, &Secret::new(key)).unwrap();
    let r = client
        .push(&[PushTarget {
            topic: "com.apple.mgmt.External.other".into(),
            ..target
        }])
        .await;
    assert_eq!(r[0].apns_reason.as_deref(), Some("TopicDisallowed"));
    assert_eq!(standin.requests(), 1);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let s = setup().await;
    let (other_cert, _) = s.ca.issue(TOPIC, -1, 365).unwrap();
    let (expired, expired_key) = s.ca.issue(TOPIC, -400, -1).unwrap();
    let (not_mdm, not_mdm_key) = s.ca.issue("com.example.app", -1, 365).unwrap();
    let pem = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    let cases = vec![
        (
            "garbage cert",
            json!({"certificate_pem": "nope", "private_key_pem": pem(&s.key)}),
        ),
        (
            "mismatched key",
            json!({"certificate_pem": pem(&other_cert), "private_key_pem": pem(&s.key)}),
        ),
        (
            "expired",
            json!({"certificate_pem": pem(&expired), "private_key_pem": pem(&expired_key)}),
        ),
        (
            "not mdm",
            json!({"certificate_pem": pem(&not_mdm), "private_key_pem": pem(&not_mdm_key)}),
        ),
        ("cert only", json!({"certificate_pem": pem(&s.cert)})),
        (
            "both forms",
            json!({"certificate_pem": pem(&s.cert), "private_key_pem": pem(&s.key), "pkcs12_base64": "AA=="}),
        ),
        ("neither", json!({})),
        (
            "unknown field",
            json!({"certificate_pem": pem(&s.cert), "private_key_pem": pem(&s.key), "x": 1}),
        ),
        (
            "p12 not base64",
            json!({"pkcs12_base64": "***", "password": "pw"}),
        ),
        (
            "p12 garbage",
            json!({"pkcs12_base64": "AAAA", "password": "pw"}),
        ),
        (
            "huge p12",
            json!({"pkcs12_base64": base64::engine::general_purpose::STANDARD.encode(vec![0x30u8; 70_000]), "password": "pw"}),
        ),
    ];
    for (what, body) in cases {
        let (status, answer) = s.admin.send("PUT", "/api/v1/push-certificate", body).await;
        assert!(status == 400 || status == 422, "{what}: {status} {answer}");
        no_key_material(&answer, &s.key);
        assert_eq!(
            s.admin.get("/api/v1/push-certificate").await.0,
            404,
            "{what}"
        );
    }
    let (status, _) = s
        .admin
        .call(
            "PUT",
            "/api/v1/push-certificate",
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(status, 400);
    // Scopes: operate may not upload, read may look; no key: 401.
    let operate = api(&s.ts, ApiScope::Operate).await;
    let (status, _) = operate
        .send(
            "PUT",
            "/api/v1/push-certificate",
            json!({"certificate_pem": pem(&s.cert), "private_key_pem": pem(&s.key)}),
        )
        .await;
    assert_eq!(status, 403);
    let anonymous = Api {
        base: s.admin.base.clone(),
        auth: None,
    };
    assert_eq!(anonymous.get("/api/v1/push-certificate").await.0, 401);
    assert!(s.ts.running().state.mdm.pusher().is_none());

    // A PKCS#12 upload works and replaces the provider at once; a wrong password changes nothing.
    let x509 = openssl::x509::X509::from_pem(&s.cert).unwrap();
    let pkey = openssl::pkey::PKey::private_key_from_pem(&s.key).unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder()
        .name("push")
        .pkey(&pkey)
        .cert(&x509)
        .build2("correct horse")
        .unwrap()
        .to_der()
        .unwrap();
    let p12 = base64::engine::general_purpose::STANDARD.encode(p12);
    let (status, wrong) = s
        .admin
        .send(
            "PUT",
            "/api/v1/push-certificate",
            json!({"pkcs12_base64": p12, "password": "wrong"}),
        )
        .await;
    assert_eq!(status, 400, "{wrong}");
    assert!(!wrong.to_string().contains("correct horse"));
    let (status, up) = s
        .admin
        .send(
            "PUT",
            "/api/v1/push-certificate",
            json!({"pkcs12_base64": p12, "password": "correct horse"}),
        )
        .await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["topic"], TOPIC);
    no_key_material(&up, &s.key);
    let (mac, _, _) = pushable(&s.ts, "P12", 30).await;
    let (_, pushed) = s
        .admin
        .send("POST", "/api/v1/push", json!({"devices": [mac.udid]}))
        .await;
    assert!(pushed["results"][0]["error"].is_null(), "{pushed}");
}

#[tokio::test]
async fn the_openapi_document_lists_the_push_certificate_routes() {
    let docs = server::api::route_docs();
    for method in ["GET", "PUT"] {
        assert!(
            docs.iter()
                .any(|d| d.method == method && d.path == "/api/v1/push-certificate")
        );
    }
}
