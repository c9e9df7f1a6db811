//! The console's pages over HTTP (issue 15): the dashboard's counts, the device list's search, filters, sort
//! and pages, a device's Security / Users / Logs / Diagnosis tabs, the reports, the 404s, and no secret in any
//! page. A fleet of virtual Macs enrolls, answers its inventory and escrows tokens over the MDM protocol.

use plist::{Dictionary, Value};
use store::ApiScope;
use testkit::{ConsoleClient, TestDevice, TestServer, messages};

const TOKEN_A: &[u8] = b"PAGES-SECRET-TOKEN-A\x01\x02\x03 never shown";
const TOKEN_B: &[u8] = b"PAGES-SECRET-TOKEN-B\xfe\xff never shown";

/// What a virtual Mac answers to the inventory commands.
struct Facts {
    os: &'static str,
    silicon: bool,
    /// SecurityInfo's BootstrapTokenAllowedForAuthentication.
    auth: &'static str,
    /// (short name, full name, has a Secure Token)
    users: &'static [(&'static str, &'static str, bool)],
}

fn dict(pairs: &[(&str, Value)]) -> Dictionary {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// Poll and answer every queued command: SecurityInfo, DeviceInformation and UserList with `facts`, anything
/// else with an empty acknowledgement.
async fn answer_all(mac: &TestDevice, facts: &Facts) {
    let mut reply = mac.idle().await.unwrap();
    let mut n = 0;
    while !reply.body.is_empty() {
        assert_eq!(reply.status, 200);
        n += 1;
        assert!(n < 50, "the queue never empties");
        let v: Value = plist::from_bytes(&reply.body).unwrap();
        let top = v.as_dictionary().unwrap();
        let uuid = top["CommandUUID"].as_string().unwrap().to_string();
        let kind = top["Command"].as_dictionary().unwrap()["RequestType"]
            .as_string()
            .unwrap()
            .to_string();
        let extra = match kind.as_str() {
            "SecurityInfo" => dict(&[(
                "SecurityInfo",
                Value::Dictionary(dict(&[
                    ("FDE_Enabled", true.into()),
                    ("BootstrapTokenAllowedForAuthentication", facts.auth.into()),
                    (
                        "BootstrapTokenRequiredForSoftwareUpdate",
                        facts.silicon.into(),
                    ),
                    (
                        "BootstrapTokenRequiredForKernelExtensionApproval",
                        false.into(),
                    ),
                    ("EnrolledViaDEP", true.into()),
                    ("IsUserEnrollment", false.into()),
                ])),
            )]),
            "DeviceInformation" => dict(&[(
                "QueryResponses",
                Value::Dictionary(dict(&[
                    ("OSVersion", facts.os.into()),
                    ("IsAppleSilicon", facts.silicon.into()),
                    ("EACSPreflight", "success".into()),
                    ("IsSupervised", true.into()),
                    ("SerialNumber", format!("SER-{}", &mac.udid[6..]).into()),
                    ("DeviceName", format!("Mac of {}", &mac.udid[6..]).into()),
                ])),
            )]),
            "UserList" => dict(&[(
                "Users",
                Value::Array(
                    facts
                        .users
                        .iter()
                        .map(|(name, full, st)| {
                            Value::Dictionary(dict(&[
                                ("UserName", (*name).into()),
                                ("FullName", (*full).into()),
                                ("UserGUID", format!("GUID-{name}").into()),
                                ("HasSecureToken", (*st).into()),
                                ("IsLoggedIn", false.into()),
                                ("MobileAccount", false.into()),
                            ]))
                        })
                        .collect(),
                ),
            )]),
            _ => Dictionary::new(),
        };
        reply = mac
            .connect(messages::report(
                &mac.udid,
                "Acknowledged",
                Some(&uuid),
                extra,
            ))
            .await
            .unwrap();
    }
}

async fn mac(ts: &TestServer, udid: &str, facts: &Facts) -> TestDevice {
    let mac = ts.new_device(udid).unwrap();
    mac.enroll_keeping_queue().await.unwrap();
    answer_all(&mac, facts).await;
    mac
}

const SILICON_LOCKED: Facts = Facts {
    os: "14.5",
    silicon: true,
    auth: "disallowed",
    users: &[
        ("alice", "Alice Appleseed", true),
        ("bob", "Bob Builder", false),
    ],
};
const SILICON_OK: Facts = Facts {
    os: "14.5",
    silicon: true,
    auth: "allowed",
    users: &[("carol", "Carol Jones", true)],
};
const INTEL: Facts = Facts {
    os: "13.6",
    silicon: false,
    auth: "not supported",
    users: &[("dave", "Dave Smith", true)],
};
const MOJAVE: Facts = Facts {
    os: "10.14.6",
    silicon: false,
    auth: "not supported",
    users: &[("erin", "Erin Old", true)],
};

/// PAGES-A: Configured, never verified, Apple silicon whose token cannot authorize, bob without a Secure
/// Token. PAGES-B: Configured and verified. PAGES-C: Not configured. PAGES-D: NA (macOS 10.14).
/// PAGES-P0..P6: enrolled, no inventory answered (Not configured).
async fn fleet(ts: &TestServer) {
    let a = mac(ts, "PAGES-A", &SILICON_LOCKED).await;
    assert_eq!(
        a.set_bootstrap_token(Some(TOKEN_A)).await.unwrap().status,
        200
    );
    answer_all(&a, &SILICON_LOCKED).await;
    let b = mac(ts, "PAGES-B", &SILICON_OK).await;
    assert_eq!(
        b.set_bootstrap_token(Some(TOKEN_B)).await.unwrap().status,
        200
    );
    answer_all(&b, &SILICON_OK).await;
    let (reply, token) = b.get_bootstrap_token().await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(token.unwrap(), TOKEN_B);
    // PAGES-C's identity certificate expires in 10 days.
    let ca = ts.device_ca().unwrap();
    let key = testkit::device::new_key(testkit::device::KeyKind::Rsa2048).unwrap();
    let public =
        openssl::pkey::PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
    let cert = ca.issue_device_certificate("PAGES-C", &public, 10).unwrap();
    let c = TestDevice::with_identity("PAGES-C", cert, key, ts.base_url());
    c.enroll_keeping_queue().await.unwrap();
    answer_all(&c, &INTEL).await;
    mac(ts, "PAGES-D", &MOJAVE).await;
    for i in 0..7 {
        let p = ts.new_device(&format!("PAGES-P{i}")).unwrap();
        p.enroll().await.unwrap();
    }
}

/// A page's HTML, asserting a 200 and that no escrowed token is in it.
async fn page(admin: &ConsoleClient, path: &str) -> String {
    let r = admin.get(path).await.unwrap();
    let html = r.text();
    assert_eq!(r.status, 200, "{path}: {html}");
    testkit::assert_no_secret(&r.body, &[TOKEN_A, TOKEN_B]);
    // ESCROWD_CONSOLE_ARTIFACTS=DIR keeps every page read, to look at.
    if let Ok(dir) = std::env::var("ESCROWD_CONSOLE_ARTIFACTS") {
        let name: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(format!("{dir}/{name}.html"), &html);
    }
    html
}

/// The UDIDs a device list page links to, in order.
fn udids(html: &str) -> Vec<String> {
    html.split("<td class=\"udid\"><a href=\"/devices/")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

/// The href of the page's "Next page" link, unescaped.
fn next_link(html: &str) -> Option<String> {
    let end = html.find("\" rel=\"next\">Next page")?;
    let start = html[..end].rfind("href=\"")? + 6;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

fn card(html: &str, count: u64, label: &str) -> bool {
    html.contains(&format!(
        "<span class=\"count\">{count}</span> <span class=\"label\">{label}</span>"
    ))
}

#[tokio::test]
async fn the_dashboard_counts_the_fleet_by_status_and_links_to_the_filtered_list() {
    let ts = TestServer::start().await.unwrap();
    fleet(&ts).await;
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    let html = page(&admin, "/").await;
    for (count, label) in [
        (11, "Enrolled Macs"),
        (2, "Bootstrap Token: Configured"),
        (8, "Bootstrap Token: Not configured"),
        (1, "Bootstrap Token: NA"),
        (1, "Escrowed but never verified"),
        (2, "Apple silicon Macs"),
        (1, "Apple silicon Macs whose token cannot authorize updates"),
        (1, "Macs with users without a Secure Token"),
        (1, "Users without a Secure Token"),
        (1, "Identities expiring within 30 days"),
    ] {
        assert!(card(&html, count, label), "{count} {label}:\n{html}");
    }
    assert!(html.contains("href=\"/devices?status=not_supported\""));
    assert!(html.contains("<svg class=\"chart\""));
    assert!(!html.contains("style="), "no inline style (CSP)");
    assert!(!html.contains("<script"), "no inline script (CSP)");
    // Today's escrows are in the chart: two tokens escrowed, as its table says.
    assert!(
        html.contains("</td><td class=\"num\">2</td><td class=\"num\">0</td></tr>"),
        "{html}"
    );
    // Each dashboard link lists exactly the Macs it counted.
    for (link, expected) in [
        ("/devices?status=escrowed", vec!["PAGES-A", "PAGES-B"]),
        ("/devices?status=not_supported", vec!["PAGES-D"]),
        ("/devices?verified=false", vec!["PAGES-A"]),
        ("/devices?cannot_authorize=true", vec!["PAGES-A"]),
        ("/devices?users_without_secure_token=true", vec!["PAGES-A"]),
        ("/devices?apple_silicon=true", vec!["PAGES-A", "PAGES-B"]),
        ("/devices?identity_expiring=true", vec!["PAGES-C"]),
    ] {
        assert_eq!(udids(&page(&admin, link).await), expected, "{link}");
    }
    let reports = page(&admin, "/reports").await;
    assert!(reports.contains("href=\"/reports/without-bootstrap-token.csv\""));
    ts.stop().await;
}

#[tokio::test]
async fn the_device_list_searches_filters_sorts_and_pages() {
    let ts = TestServer::start().await.unwrap();
    fleet(&ts).await;
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    let all = page(&admin, "/devices").await;
    assert_eq!(udids(&all).len(), 11);
    assert!(
        all.contains("<label for=\"f-q\">Search</label>"),
        "labelled controls"
    );
    // Search: a user (MDM's UserList), a serial (inventory), a UDID in other case; LIKE wildcards are literal.
    assert_eq!(udids(&page(&admin, "/devices?q=bob").await), ["PAGES-A"]);
    assert_eq!(
        udids(&page(&admin, "/devices?q=Carol+Jones").await),
        ["PAGES-B"]
    );
    assert_eq!(udids(&page(&admin, "/devices?q=SER-C").await), ["PAGES-C"]);
    assert_eq!(
        udids(&page(&admin, "/devices?q=pages-d").await),
        ["PAGES-D"]
    );
    assert!(udids(&page(&admin, "/devices?q=%25").await).is_empty());
    assert!(udids(&page(&admin, "/devices?q=PAGES_A").await).is_empty());
    // Filters combine, and an empty form field is no filter.
    assert_eq!(
        udids(
            &page(
                &admin,
                "/devices?status=escrowed&verified=true&apple_silicon=true&q=&group="
            )
            .await
        ),
        ["PAGES-B"]
    );
    assert_eq!(
        udids(
            &page(
                &admin,
                "/devices?status=not_escrowed&apple_silicon=false&q=pages-c"
            )
            .await
        ),
        ["PAGES-C"]
    );
    // Pages of 4 walk the whole fleet once, in UDID order, and the links keep the filters.
    let mut seen = Vec::new();
    let mut path = "/devices?limit=4&status=not_escrowed".to_string();
    let mut pages = 0;
    loop {
        let html = page(&admin, &path).await;
        let ids = udids(&html);
        pages += 1;
        assert!(!ids.is_empty() && ids.len() <= 4, "{path}: {ids:?}");
        seen.extend(ids);
        match next_link(&html) {
            Some(next) => {
                assert!(
                    next.contains("status=not_escrowed") && next.contains("limit=4"),
                    "{next}"
                );
                path = next;
            }
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..7).map(|i| format!("PAGES-P{i}")).collect();
    expected.insert(0, "PAGES-C".into());
    assert_eq!(seen, expected);
    assert_eq!(pages, 2, "8 Macs in pages of 4, no empty last page");
    // Newest UDID first, also paged.
    let desc = page(&admin, "/devices?sort=-udid&limit=3").await;
    assert_eq!(udids(&desc), ["PAGES-P6", "PAGES-P5", "PAGES-P4"]);
    let next = next_link(&desc).unwrap();
    assert_eq!(
        udids(&page(&admin, &next).await),
        ["PAGES-P3", "PAGES-P2", "PAGES-P1"]
    );
    // Bad input: a clear 400, inside the layout.
    for bad in [
        "/devices?limit=0",
        "/devices?status=bogus",
        "/devices?verified=maybe",
        "/devices?sort=name",
    ] {
        let r = admin.get(bad).await.unwrap();
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.text().contains("must be"), "{bad}: {}", r.text());
    }
    ts.stop().await;
}

#[tokio::test]
async fn a_devices_tabs_show_what_the_mac_did_and_unknown_ones_are_404() {
    let ts = TestServer::start().await.unwrap();
    fleet(&ts).await;
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    let security = page(&admin, "/devices/PAGES-A").await;
    assert!(
        security.contains("Bootstrap Token: Configured"),
        "{security}"
    );
    assert!(
        security.contains("<th scope=\"row\">Verified</th><td>No</td>"),
        "{security}"
    );
    assert!(security.contains("<td>disallowed</td>"), "{security}");
    assert!(security.contains("<th scope=\"row\">Apple silicon</th><td>Yes</td>"));
    assert!(security.contains("<th scope=\"row\">EACS preflight</th><td>success</td>"));
    assert!(security.contains("<time datetime=\""), "times as <time>");
    assert!(security.contains("aria-current=\"page\">Security</a>"));
    let c = page(&admin, "/devices/PAGES-C").await;
    assert!(c.contains("Bootstrap Token: Not configured"), "{c}");
    let expiry = &c[c.find(">Identity expires<").unwrap()..];
    assert!(expiry[..300].contains(">in 10 days</time>"), "{expiry}");
    let b = page(&admin, "/devices/PAGES-B?tab=security").await;
    assert!(
        b.contains("<th scope=\"row\">Verified</th><td>Yes</td>"),
        "{b}"
    );

    let users = page(&admin, "/devices/PAGES-A?tab=users").await;
    assert!(
        users.contains("<th scope=\"row\">bob<br><span class=\"note\">Bob Builder</span></th>"),
        "{users}"
    );
    let bob = &users[users.find(">bob<").unwrap()..];
    assert!(
        bob.starts_with(">bob<")
            && bob.contains("<td><span class=\"bad\">No</span><br><span class=\"note\">MDM, <time"),
        "{bob}"
    );

    let logs = page(&admin, "/devices/PAGES-B?tab=logs").await;
    for kind in [
        "bootstrap_token.escrowed",
        "bootstrap_token.requested",
        "enrollment.authenticated",
    ] {
        assert!(logs.contains(&format!("<td>{kind}</td>")), "{kind}: {logs}");
    }
    let logs_c = page(&admin, "/devices/PAGES-C?tab=logs").await;
    assert!(
        !logs_c.contains("bootstrap_token.escrowed"),
        "only the device's own events"
    );

    let diagnosis = page(&admin, "/devices/PAGES-A?tab=diagnosis").await;
    assert!(
        diagnosis.contains("apple_silicon_token_cannot_authorize"),
        "{diagnosis}"
    );
    assert!(diagnosis.contains("<strong>Fix:</strong>"));

    let unknown = admin.get("/devices/NO-SUCH-MAC").await.unwrap();
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("No such device"));
    assert_eq!(
        admin.get("/devices/PAGES-A?tab=nope").await.unwrap().status,
        400
    );
    assert_eq!(admin.get("/reports/nope.csv").await.unwrap().status, 404);
    ts.stop().await;
}

#[tokio::test]
async fn reports_stream_csv_on_console_paths_without_secrets() {
    let ts = TestServer::start().await.unwrap();
    fleet(&ts).await;
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    let csv = admin
        .get("/reports/without-bootstrap-token.csv")
        .await
        .unwrap();
    assert_eq!(csv.status, 200);
    let text = csv.text();
    assert!(text.starts_with("device_id,serial_number"), "{text}");
    assert!(text.contains("\"PAGES-C\""), "{text}");
    assert!(!text.contains("\"PAGES-A\""), "{text}");
    let users = admin
        .get("/reports/users-without-secure-token.csv")
        .await
        .unwrap();
    assert!(users.text().contains("\"bob\""), "{}", users.text());
    testkit::assert_no_secret(&users.body, &[TOKEN_A, TOKEN_B]);
    testkit::assert_no_secret(&csv.body, &[TOKEN_A, TOKEN_B]);
    // Without a signed-in admin, nothing.
    let anonymous = testkit::http::send(testkit::http::client().get(format!(
        "{}/reports/without-bootstrap-token.csv",
        ts.admin_url()
    )))
    .await
    .unwrap();
    assert!(
        anonymous.status == 401 || anonymous.status == 303,
        "{}",
        anonymous.status
    );
    ts.stop().await;
}

/// The device list at fleet scale (default 100,000 Macs; `ESCROWD_CONSOLE_SCALE` for another size), seeded
/// through the store, then timed over HTTP: the first page, a filtered page, a search, a deep page. Prints the
/// times; asserts only that the pages are right. Run with
/// `cargo test -p server --test console_pages -- --ignored --nocapture device_list_pages_at_scale`.
#[tokio::test]
#[ignore = "fleet-scale measurement; run explicitly"]
async fn device_list_pages_at_scale() {
    let n: usize = std::env::var("ESCROWD_CONSOLE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let ts = TestServer::start().await.unwrap();
    let store = ts.store();
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..8usize {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (chunk..n).step_by(8) {
                let id = format!("SCALE-{i:06}");
                let e = store::Enrollment {
                    serial_number: Some(format!("C02{i:07}")),
                    device_name: Some(format!("Mac {i}")),
                    ..store::Enrollment::new_device(&id, 1_000)
                };
                let ev = store::NewEvent {
                    subject: id.clone(),
                    enrollment_id: Some(id.clone()),
                    kind: store::EventKind::EnrollmentAuthenticated,
                    outcome: store::Outcome::Success,
                    detail: "seeded".into(),
                    at: 1_000,
                };
                store.upsert_enrollment(&e, &ev).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    println!("seeded {n} Macs in {:?}", started.elapsed());
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    for path in [
        "/devices".to_string(),
        "/devices?status=not_escrowed".to_string(),
        "/devices?sort=-udid".to_string(),
        format!("/devices?after=SCALE-{:06}", n / 2),
        format!("/devices?q=C02{:07}", n - 1),
        "/devices?q=Mac+7".to_string(),
    ] {
        let t = std::time::Instant::now();
        let html = page(&admin, &path).await;
        println!("{path}: {:?}, {} rows", t.elapsed(), udids(&html).len());
        assert!(!udids(&html).is_empty(), "{path}");
    }
    let t = std::time::Instant::now();
    page(&admin, "/").await;
    println!("dashboard (whole-fleet summary): {:?}", t.elapsed());
    ts.stop().await;
}

/// The same fleet in headless Chromium: the dashboard's counts, its link to a filtered list, the search form,
/// and a device's Security / Users / Logs tabs, with a screenshot of each and no token in any page.
#[tokio::test]
async fn in_a_browser_the_dashboard_list_and_a_devices_tabs_show_what_the_macs_did() {
    let ts = TestServer::start().await.unwrap();
    let Some(b) = testkit::browser::Browser::launch(&ts.admin_url())
        .await
        .unwrap()
    else {
        ts.stop().await;
        return;
    };
    fleet(&ts).await;
    ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    b.open("/signin").await.unwrap();
    b.sign_in("ada", &testkit::console::test_password("ada"))
        .await
        .unwrap();
    b.open("/").await.unwrap();
    let html = b.html().await.unwrap();
    testkit::assert_no_secret(&html, &[TOKEN_A, TOKEN_B]);
    for (count, label) in [
        (11, "Enrolled Macs"),
        (2, "Bootstrap Token: Configured"),
        (8, "Bootstrap Token: Not configured"),
        (1, "Bootstrap Token: NA"),
    ] {
        assert!(card(&html, count, label), "{count} {label}:\n{html}");
    }
    b.screenshot("dashboard").await.unwrap();

    // The Configured card leads to exactly the two escrowed Macs.
    b.click("a[href='/devices?status=escrowed']").await.unwrap();
    assert!(b.url().await.unwrap().ends_with("/devices?status=escrowed"));
    assert_eq!(udids(&b.html().await.unwrap()), ["PAGES-A", "PAGES-B"]);
    b.screenshot("devices-configured").await.unwrap();

    // The search form, as an admin fills it in.
    b.open("/devices").await.unwrap();
    b.fill_label("Search", "bob").await.unwrap();
    b.click_button("Apply").await.unwrap();
    assert!(b.url().await.unwrap().contains("q=bob"));
    assert_eq!(udids(&b.html().await.unwrap()), ["PAGES-A"]);
    b.screenshot("devices-search").await.unwrap();

    // PAGES-A's tabs: what the Mac did.
    b.click("a[href='/devices/PAGES-A']").await.unwrap();
    let security = b.text("main").await.unwrap();
    assert!(security.contains("Configured"), "{security}");
    b.screenshot("device-security").await.unwrap();
    b.open("/devices/PAGES-A?tab=users").await.unwrap();
    let users = b.text("#users").await.unwrap();
    assert!(
        users.contains("bob") && users.contains("Bob Builder") && users.contains("alice"),
        "{users}"
    );
    b.screenshot("device-users").await.unwrap();
    b.open("/devices/PAGES-A?tab=logs").await.unwrap();
    let logs = b.text("#logs").await.unwrap();
    assert!(logs.to_lowercase().contains("escrow"), "{logs}");
    testkit::assert_no_secret(b.html().await.unwrap(), &[TOKEN_A, TOKEN_B]);
    b.screenshot("device-logs").await.unwrap();
    b.close().await.unwrap();
    ts.stop().await;
}
