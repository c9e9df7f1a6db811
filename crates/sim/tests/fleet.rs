//! The fleet driver behind `escrowd sim`, against a real escrowd.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sim::fleet::{self, FleetConfig, Scenario};

#[tokio::test]
async fn a_mixed_fleet_enrolls_and_plays_every_scenario_without_failures() {
    let ts = testkit::TestServer::start().await.unwrap();
    let ca = ts.device_ca().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let config = FleetConfig {
        server: ts.base_url(),
        count: 14,
        concurrency: 4,
        mix: fleet::parse_mix("all").unwrap(),
        udid_prefix: "FLEET".into(),
        enroll_link: None,
        key_kind: sim::client::KeyKind::EcP256,
        key_pool: None,
    };
    let outcomes = fleet::run(
        config,
        ca,
        Arc::new(move |p| {
            if let fleet::Progress::Finished(_) = p {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }),
    )
    .await
    .outcomes;
    assert_eq!(done.load(Ordering::SeqCst), 14);
    let failures: Vec<_> = outcomes.iter().filter_map(|o| o.failure.clone()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let summary = fleet::summarize(&outcomes, std::time::Duration::from_secs(1));
    assert_eq!(summary.enrolled, 14);
    // s1, s4, s5 and s7 escrow; two Macs each.
    assert_eq!(summary.escrowed, 8);
    for o in &outcomes {
        let escrowed_on_server = ts.store().bootstrap_token(&o.udid).await.unwrap().is_some();
        assert_eq!(
            escrowed_on_server, o.escrowed,
            "{} ({:?})",
            o.udid, o.scenario
        );
    }
    assert!(outcomes.iter().any(|o| o.scenario == Scenario::S9));
    // Automatic inventory: every Mac was asked on enrollment and answered while polling, so each has its
    // DeviceInformation and SecurityInfo stored; an escrowing Mac was asked SecurityInfo again after escrow.
    for o in &outcomes {
        let inv = ts.store().device_inventory(&o.udid).await.unwrap();
        let inv = inv.unwrap_or_else(|| panic!("{}: no inventory stored", o.udid));
        let device = inv
            .device
            .unwrap_or_else(|| panic!("{}: no DeviceInformation", o.udid));
        assert!(device.os_version.is_some(), "{}", o.udid);
        let security = inv
            .security
            .unwrap_or_else(|| panic!("{}: no SecurityInfo", o.udid));
        if let Some(token) = ts.store().bootstrap_token(&o.udid).await.unwrap() {
            assert!(
                security.at >= token.escrowed_at,
                "{}: SecurityInfo not re-queried after escrow",
                o.udid
            );
        }
        let stored: Vec<String> = ts
            .store()
            .events(&store::EventFilter {
                subject: Some(o.udid.clone()),
                kind: Some("inventory.updated".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.detail)
            .collect();
        assert!(
            stored.iter().any(|d| d == "UserList stored"),
            "{}: no UserList stored: {stored:?}",
            o.udid
        );
        // Every Mac enrolled in Setup Assistant (AwaitingConfiguration true) and the server let it go on.
        assert!(o.failure.is_none() && o.enrolled, "{}", o.udid);
        let history = ts.store().command_history(&o.udid, 100).await.unwrap();
        assert!(
            history.iter().any(|c| c.request_type == "DeviceConfigured"
                && c.status == store::CommandStatus::Acknowledged),
            "{}: no acknowledged DeviceConfigured",
            o.udid
        );
        // The Users tab is not empty: the users the Mac made reached the server through UserList.
        let users = ts.store().device_users(&o.udid).await.unwrap();
        assert!(
            users.iter().any(|u| u.source == store::FactSource::Mdm),
            "{} ({:?}): no MDM user rows",
            o.udid,
            o.scenario
        );
    }
    // Users without a Secure Token show up too (S8's managed admin; S5's 10.15 users report no
    // HasSecureToken, so they are not counted here).
    let s8 = outcomes
        .iter()
        .find(|o| o.scenario == Scenario::S8)
        .unwrap();
    let users = ts.store().device_users(&s8.udid).await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.short_name.as_deref() == Some("mgmt") && u.has_secure_token == Some(false)),
        "{users:?}"
    );
    let s1 = outcomes
        .iter()
        .find(|o| o.scenario == Scenario::S1)
        .unwrap();
    let names: Vec<_> = ts
        .store()
        .device_users(&s1.udid)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|u| u.short_name)
        .collect();
    assert!(
        names.contains(&"ladmin".to_string()) && names.contains(&"jdoe".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_counted_failure_not_a_crash() {
    let ts = testkit::TestServer::start().await.unwrap();
    let ca = ts.device_ca().unwrap();
    let base = ts.base_url();
    ts.stop().await;
    let config = FleetConfig {
        server: base,
        count: 2,
        concurrency: 2,
        mix: fleet::parse_mix("s1").unwrap(),
        udid_prefix: "DOWN".into(),
        enroll_link: None,
        key_kind: sim::client::KeyKind::Rsa2048,
        key_pool: None,
    };
    let outcomes = fleet::run(config, ca, Arc::new(|_| {})).await.outcomes;
    let summary = fleet::summarize(&outcomes, std::time::Duration::from_secs(1));
    assert_eq!(summary.enrolled, 0);
    assert_eq!(
        summary.failures_by_reason.get("server unreachable"),
        Some(&2)
    );
}

/// `escrowd sim` on the shared key pool: two runs reuse the same cached RSA keys, every Mac of both runs
/// enrolls under its own UDID and certificate, and the cached key files are private (0600).
#[tokio::test]
async fn two_fleet_runs_share_a_cached_rsa_key_pool() {
    use std::os::unix::fs::PermissionsExt;
    let ts = testkit::TestServer::start().await.unwrap();
    let ca = ts.device_ca().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut generated = Vec::new();
    let mut udids = std::collections::BTreeSet::new();
    for run in 0..2 {
        let pool =
            sim::keypool::KeyPool::open(cache.path(), 2, sim::client::KeyKind::Rsa2048).unwrap();
        generated.push(pool.generated());
        let config = FleetConfig {
            server: ts.base_url(),
            count: 5,
            concurrency: 5,
            mix: fleet::parse_mix("s4").unwrap(),
            udid_prefix: format!("POOL{run}"),
            enroll_link: None,
            key_kind: sim::client::KeyKind::Rsa2048,
            key_pool: Some(Arc::new(pool)),
        };
        let outcomes = fleet::run(config, ca.clone(), Arc::new(|_| {}))
            .await
            .outcomes;
        let failures: Vec<_> = outcomes.iter().filter_map(|o| o.failure.clone()).collect();
        assert!(failures.is_empty(), "{failures:?}");
        let summary = fleet::summarize(&outcomes, std::time::Duration::from_secs(1));
        assert_eq!((summary.enrolled, summary.escrowed), (5, 5));
        udids.extend(outcomes.into_iter().map(|o| o.udid));
    }
    assert_eq!(generated, vec![2, 0], "the second run generates no key");
    assert_eq!(udids.len(), 10);
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
