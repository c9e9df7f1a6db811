//! The two listeners (issue 15): the Macs' address serves only the MDM, SCEP, enrollment and agent routes;
//! the admin address (`--admin-listen`) serves the admin API (with the NanoMDM-compatible `/v1/...`),
//! `/metrics` and the console. Each answers 404 for the other's routes; both stop on shutdown; a taken admin
//! port is a clear error; `--admin-listen same` is the explicit way to put everything on one address.

mod common;

use common::key;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use server::AdminListen;
use store::ApiScope;
use testkit::{TestServer, messages};

/// Status of `method base+path` with an admin key (so a 404 is about the route, never the key).
async fn status(base: &str, method: &str, path: &str, key: &str) -> u16 {
    let method = testkit::http::Method::from_bytes(method.as_bytes()).unwrap();
    let req = testkit::http::client()
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body("{}");
    testkit::http::send(req).await.unwrap().status
}

/// Admin routes: the API, the NanoMDM-compatible API, `/metrics`, the console page and its assets.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/groups"),
    ("PUT", "/v1/enqueue/UDID-LISTEN"),
    ("GET", "/v1/push/UDID-LISTEN"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/assets/console.css"),
];

/// Device routes: check-in, command channel, SCEP, enrollment links, the agent.
const DEVICE_ROUTES: &[(&str, &str)] = &[
    ("PUT", "/mdm/checkin"),
    ("PUT", "/mdm/connect"),
    ("PUT", "/mdm"),
    ("GET", "/scep?operation=GetCACaps"),
    ("GET", "/enroll?token=nope"),
    ("POST", "/agent/v1/register"),
    ("GET", "/agent/v1/actions"),
];

#[tokio::test]
async fn admin_routes_answer_404_on_the_macs_listener_and_device_routes_404_on_the_admin_one() {
    let ts = TestServer::start().await.unwrap();
    let (device, admin) = (ts.base_url(), ts.admin_url());
    assert_ne!(device, admin, "two listeners by default");
    let key = key(&ts, ApiScope::Admin).await;

    for (method, path) in ADMIN_ROUTES {
        assert_eq!(
            status(&device, method, path, &key).await,
            404,
            "{method} {path} on the Macs' listener"
        );
        assert_ne!(
            status(&admin, method, path, &key).await,
            404,
            "{method} {path} on the admin listener"
        );
    }
    for (method, path) in DEVICE_ROUTES {
        assert_eq!(
            status(&admin, method, path, &key).await,
            404,
            "{method} {path} on the admin listener"
        );
        assert_ne!(
            status(&device, method, path, &key).await,
            404,
            "{method} {path} on the Macs' listener"
        );
    }
    // The real things work where they belong: a Mac enrolls on its listener, and the admin sees it on the
    // admin one.
    let mac = ts.new_device("UDID-LISTEN").unwrap();
    mac.enroll().await.unwrap();
    let api = common::api(&ts, ApiScope::Read).await;
    let (s, d) = api.get("/api/v1/devices/UDID-LISTEN").await;
    assert_eq!(s, 200, "{d}");
    // A Mac pointed at the admin address gets nowhere.
    let lost = mac.talking_to(admin.clone());
    assert_eq!(
        lost.checkin(messages::authenticate("UDID-LISTEN"))
            .await
            .unwrap()
            .status,
        404
    );
    for base in [&device, &admin] {
        let reply = testkit::enroll::http_get(base, "/healthz").await.unwrap();
        assert_eq!((reply.status, reply.text()), (200, "ok\n".to_string()));
    }
    ts.stop().await;
}

#[tokio::test]
async fn both_listeners_stop_on_shutdown() {
    let ts = TestServer::start().await.unwrap();
    let addrs = [ts.running().local_addr, ts.running().admin_addr];
    for addr in addrs {
        tokio::net::TcpStream::connect(addr).await.unwrap();
    }
    ts.stop().await;
    for addr in addrs {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after stop"
        );
    }
}

#[tokio::test]
async fn a_taken_admin_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = TestServer::start_with(|o| o.admin_listen = AdminListen::At(addr))
        .await
        .err()
        .expect("the admin port is taken");
    let text = format!("{err:#}");
    assert!(
        text.contains(&addr.to_string()) && text.contains("--admin-listen"),
        "{text}"
    );
    // The Macs' port is free again: a server starts on it at once.
    let ts = TestServer::start().await.unwrap();
    ts.stop().await;

    // The admin address equal to the Macs' one is refused with the way out.
    let mac_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let same = mac_port.local_addr().unwrap();
    drop(mac_port);
    let err = TestServer::start_with(|o| {
        o.listen = same;
        o.admin_listen = AdminListen::At(same);
    })
    .await
    .err()
    .expect("one address for both listeners is refused");
    let text = format!("{err:#}");
    assert!(text.contains("--admin-listen same"), "{text}");
}

#[tokio::test]
async fn admin_listen_same_serves_everything_on_one_address_only_when_asked() {
    let ts = TestServer::start_with(|o| o.admin_listen = AdminListen::Same)
        .await
        .unwrap();
    assert_eq!(ts.running().admin_addr, ts.running().local_addr);
    assert_eq!(ts.admin_url(), ts.base_url());
    let key = key(&ts, ApiScope::Admin).await;
    let base = ts.base_url();
    for (method, path) in ADMIN_ROUTES.iter().chain(DEVICE_ROUTES) {
        assert_ne!(
            status(&base, method, path, &key).await,
            404,
            "{method} {path}"
        );
    }
    ts.stop().await;
}

#[tokio::test]
async fn the_admin_listener_speaks_tls_with_the_same_certificate() {
    let ts = TestServer::start_with(|o| o.http = false).await.unwrap();
    assert!(ts.admin_url().starts_with("https://"), "{}", ts.admin_url());
    let tls_pem = std::fs::read(ts.opts.data_dir.join("tls.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&tls_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let key = key(&ts, ApiScope::Read).await;
    let client = testkit::http::tls_client(config);
    let devices = testkit::http::send(
        client
            .get(format!("{}/api/v1/devices", ts.admin_url()))
            .header("authorization", format!("Bearer {key}")),
    )
    .await
    .unwrap();
    assert_eq!(devices.status, 200, "{}", devices.text());
    let on_macs = testkit::http::send(
        client
            .get(format!("{}/api/v1/devices", ts.base_url()))
            .header("authorization", format!("Bearer {key}")),
    )
    .await
    .unwrap();
    assert_eq!(on_macs.status, 404);
    ts.stop().await;
}

/// `POST /api/v1/devices/{id}/agent` without `server_url` (as `escrowd agent-install` sends it unless told
/// otherwise) points the agent at the Macs' address: the agent's routes are not on the admin listener.
#[tokio::test]
async fn the_agent_is_installed_with_the_macs_address_not_the_admin_one() {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-AGENT-URL").unwrap();
    mac.enroll().await.unwrap();
    let op = common::api(&ts, ApiScope::Operate).await;
    let (s, b) = op
        .send(
            "POST",
            "/api/v1/devices/UDID-AGENT-URL/agent",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let reply = mac.idle().await.unwrap();
    let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap()
        .clone();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    let profile: plist::Value = plist::from_bytes(cmd["Payload"].as_data().unwrap()).unwrap();
    let agent = profile.as_dictionary().unwrap()["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(plist::Value::as_dictionary)
        .find(|d| {
            d.get("PayloadType").and_then(plist::Value::as_string) == Some("com.escrowd.agent")
        })
        .expect("the agent's payload")
        .clone();
    assert_eq!(
        agent["ServerURL"].as_string(),
        Some(ts.base_url().as_str()),
        "admin listener is {}",
        ts.admin_url()
    );
    ts.stop().await;
}
