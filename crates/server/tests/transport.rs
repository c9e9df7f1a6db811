//! End-to-end: the other ways a device proves its identity — a TLS client certificate on HTTPS, and a
//! certificate forwarded by a trusted proxy (only when configured).

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use testkit::{TestServer, messages};

/// The TLS listener's certificate as the only trusted root.
fn server_roots(ts: &TestServer) -> rustls::RootCertStore {
    let tls_pem = std::fs::read(ts.opts.data_dir.join("tls.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&tls_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// PUT over HTTPS with the device's certificate as the TLS client certificate and no Mdm-Signature.
async fn put_mtls(
    ts: &TestServer,
    device: &testkit::TestDevice,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let chain = vec![CertificateDer::from(device.cert.to_der().unwrap())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        device.key.private_key_to_pkcs8().unwrap(),
    ));
    let config = rustls::ClientConfig::builder_with_provider(server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(server_roots(ts))
        .with_client_auth_cert(chain, key)
        .unwrap();
    let req = testkit::http::tls_client(config)
        .put(format!("{}{path}", ts.base_url()))
        .header("content-type", content_type)
        .body(body);
    let reply = testkit::http::send(req).await.unwrap();
    (reply.status, reply.body)
}

#[tokio::test]
async fn https_with_a_tls_client_certificate_escrows_and_serves_without_mdm_signature() {
    let ts = TestServer::start_with(|o| o.http = false).await.unwrap();
    assert!(ts.base_url().starts_with("https://"));
    let mac = ts.new_device("UDID-MTLS").unwrap();
    let ct = testkit::device::CHECKIN;
    assert_eq!(
        put_mtls(
            &ts,
            &mac,
            "/mdm/checkin",
            ct,
            messages::authenticate("UDID-MTLS")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        put_mtls(
            &ts,
            &mac,
            "/mdm/checkin",
            ct,
            messages::token_update("UDID-MTLS", None)
        )
        .await
        .0,
        200
    );
    let set = messages::set_bootstrap_token("UDID-MTLS", Some(b"tls-token"), None);
    assert_eq!(put_mtls(&ts, &mac, "/mdm/checkin", ct, set).await.0, 200);
    let (status, body) = put_mtls(
        &ts,
        &mac,
        "/mdm/checkin",
        ct,
        messages::get_bootstrap_token("UDID-MTLS", None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(messages::bootstrap_token_of(&body).unwrap(), b"tls-token");

    // A client certificate from a foreign CA is refused with 400.
    let foreign_ca = pki::ca::CertificateAuthority::generate("foreign").unwrap();
    let foreign = testkit::TestDevice::new(
        "UDID-MTLS",
        &foreign_ca,
        testkit::device::KeyKind::Rsa2048,
        ts.base_url(),
    )
    .unwrap();
    let (status, _) = put_mtls(
        &ts,
        &foreign,
        "/mdm/checkin",
        ct,
        messages::get_bootstrap_token("UDID-MTLS", None),
    )
    .await;
    assert_eq!(status, 400);
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_forwarded_certificate_is_accepted_only_when_a_trusted_header_is_configured() {
    let header = "X-Client-Cert";
    let ts = TestServer::start_with(|o| {
        o.trusted_cert_header = Some(header.to_string());
        o.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    .unwrap();
    let mac = ts.new_device("UDID-PROXY").unwrap();
    let pem = String::from_utf8(mac.cert.to_pem().unwrap()).unwrap();
    let client = testkit::http::client();
    let send = |body: Vec<u8>, value: Option<String>, url: String| {
        let mut req = client
            .put(format!("{url}/mdm/checkin"))
            .header("content-type", testkit::device::CHECKIN)
            .body(body);
        if let Some(v) = value {
            req = req.header(header, v);
        }
        async move { testkit::http::send(req).await.unwrap().status }
    };
    let escaped = url_escape(&pem);
    assert_eq!(
        send(
            messages::authenticate("UDID-PROXY"),
            Some(escaped.clone()),
            ts.base_url()
        )
        .await,
        200
    );
    assert_eq!(
        send(
            messages::token_update("UDID-PROXY", None),
            Some(escaped.clone()),
            ts.base_url()
        )
        .await,
        200
    );
    // RFC 9440 form works too.
    let rfc9440 = format!(
        ":{}:",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            mac.cert.to_der().unwrap()
        )
    );
    let set = messages::set_bootstrap_token("UDID-PROXY", Some(b"proxied"), None);
    assert_eq!(send(set, Some(rfc9440), ts.base_url()).await, 200);
    // A malformed header value is a 400, not a crash.
    assert_eq!(
        send(
            messages::get_bootstrap_token("UDID-PROXY", None),
            Some("%%%garbage".into()),
            ts.base_url()
        )
        .await,
        400
    );

    // A server without the option ignores the header entirely.
    let plain = TestServer::start().await.unwrap();
    let other = plain.new_device("UDID-NOPROXY").unwrap();
    let pem = url_escape(&String::from_utf8(other.cert.to_pem().unwrap()).unwrap());
    assert_eq!(
        send(
            messages::authenticate("UDID-NOPROXY"),
            Some(pem),
            plain.base_url()
        )
        .await,
        400
    );
}

/// PUT over plain HTTP with the forwarded-certificate header set to the device's certificate (no signature).
async fn put_forwarded(base: &str, header: &str, mac: &testkit::TestDevice, body: Vec<u8>) -> u16 {
    let pem = url_escape(&String::from_utf8(mac.cert.to_pem().unwrap()).unwrap());
    let req = testkit::http::client()
        .put(format!("{base}/mdm/checkin"))
        .header("content-type", testkit::device::CHECKIN)
        .header(header, pem)
        .body(body);
    testkit::http::send(req).await.unwrap().status
}

#[tokio::test]
async fn a_forwarded_certificate_from_a_peer_outside_the_trusted_proxies_is_ignored() {
    let header = "X-Client-Cert";
    // Only 10.0.0.0/8 and an IPv6 network may forward; this test's client is 127.0.0.1.
    let ts = TestServer::start_with(|o| {
        o.trusted_cert_header = Some(header.to_string());
        o.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
    })
    .await
    .unwrap();
    let mac = ts.new_device("UDID-UNTRUSTED-PROXY").unwrap();
    let status = put_forwarded(
        &ts.base_url(),
        header,
        &mac,
        messages::authenticate("UDID-UNTRUSTED-PROXY"),
    )
    .await;
    assert_eq!(status, 400, "the header counted as no certificate at all");
    assert!(
        ts.store()
            .enrollment("UDID-UNTRUSTED-PROXY")
            .await
            .unwrap()
            .is_none(),
        "nothing enrolled"
    );
    // Counted (per source and hour) for the admin to see.
    let counted = ts.auth_failures("edge.forwarded_cert_untrusted").await;
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(
        (counted[0].source.as_str(), counted[0].count),
        ("127.0.0.1", 1)
    );
    // The same request from a trusted peer enrolls: the refusal above was the peer, not the certificate.
    let trusted = TestServer::start_with(|o| {
        o.trusted_cert_header = Some(header.to_string());
        o.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    .unwrap();
    let mac = trusted.new_device("UDID-TRUSTED-PROXY").unwrap();
    let status = put_forwarded(
        &trusted.base_url(),
        header,
        &mac,
        messages::authenticate("UDID-TRUSTED-PROXY"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_forwarded_certificate_header_without_trusted_proxies_refuses_to_start() {
    let err = TestServer::start_with(|o| o.trusted_cert_header = Some("X-Client-Cert".into()))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("--trusted-proxy"), "{err:#}");
    let err = TestServer::start_with(|o| {
        o.trusted_cert_header = Some("bad header\n".into());
        o.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    .err()
    .expect("refused");
    assert!(format!("{err:#}").contains("header name"), "{err:#}");
}

/// PUT over HTTPS without a client certificate, carrying the forwarded-certificate header.
async fn put_tls_with_header(
    ts: &TestServer,
    header: &str,
    mac: &testkit::TestDevice,
    body: Vec<u8>,
) -> u16 {
    let config = rustls::ClientConfig::builder_with_provider(server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(server_roots(ts))
        .with_no_client_auth();
    let pem = url_escape(&String::from_utf8(mac.cert.to_pem().unwrap()).unwrap());
    let req = testkit::http::tls_client(config)
        .put(format!("{}/mdm/checkin", ts.base_url()))
        .header("content-type", testkit::device::CHECKIN)
        .header(header, pem)
        .body(body);
    testkit::http::send(req).await.unwrap().status
}

#[tokio::test]
async fn the_forwarded_header_is_ignored_on_the_tls_listener_unless_explicitly_allowed() {
    let header = "X-Client-Cert";
    for on_tls in [false, true] {
        let ts = TestServer::start_with(|o| {
            o.http = false;
            o.trusted_cert_header = Some(header.to_string());
            o.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            o.trusted_cert_header_on_tls = on_tls;
        })
        .await
        .unwrap();
        let udid = format!("UDID-TLS-HEADER-{on_tls}");
        let mac = ts.new_device(&udid).unwrap();
        let status = put_tls_with_header(&ts, header, &mac, messages::authenticate(&udid)).await;
        assert_eq!(status, if on_tls { 200 } else { 400 }, "on_tls={on_tls}");
        let ignored = ts.auth_failure_total("edge.forwarded_cert_untrusted").await;
        assert_eq!(ignored, i64::from(!on_tls), "on_tls={on_tls}");
    }
}
