//! End to end against a real escrowd server (testkit, plain HTTP): the agent profile is installed through
//! MDM, its settings are written where macOS puts managed preferences, and the REAL `escrow-agent` binary
//! registers and runs actions against the fake macOS tools. The grant succeeds and lands in the Users table;
//! a wrong admin password fails with its precise reason; no password reaches a tool's argv, the agent's
//! output, the server's answers or its events.

mod support;

use serde_json::{Value as Json, json};
use support::server::{agent_blocking, deliver, installed, installed_device};
use support::typical_mac;
use testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agent_registers_runs_actions_and_reports_inventory() {
    const UDID: &str = "E2E-AGENT-MAC";
    let ts = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (admin, config, device) = installed_device(&ts, UDID, dir.path()).await;
    let state = dir.path().join("state/agent.json");
    let (config_s, state_s) = (config.to_str().unwrap(), state.to_str().unwrap());
    let mut mac = typical_mac();
    let wrong_pw = "Wr0ng-Adm1n-pw";
    mac.passwords.push(wrong_pw.to_string());

    // Register: state file 0600, keys never printed; the secret works once.
    let run = agent_blocking(
        &mut mac,
        &[
            "register", "--config", config_s, "--state", state_s, "--json",
        ],
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let agent_id = run.json()["agent_id"].as_str().unwrap().to_string();
    assert!(ts.store().agent(&agent_id).await.unwrap().is_some());
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o600);
    }
    let saved = std::fs::read_to_string(&state).unwrap();
    let saved: Json = serde_json::from_str(&saved).unwrap();
    for k in ["signing_key", "hpke_key"] {
        let key = saved[k].as_str().unwrap();
        assert!(!run.stdout.contains(key) && !run.stderr.contains(key));
    }
    // Again: refused without --force; with --force the used secret is refused by the server.
    let again = agent_blocking(
        &mut mac,
        &["register", "--config", config_s, "--state", state_s],
    );
    assert_eq!(again.code, Some(2));
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    let forced = agent_blocking(
        &mut mac,
        &[
            "register", "--config", config_s, "--state", state_s, "--force",
        ],
    );
    assert_eq!(forced.code, Some(2));
    assert!(forced.stderr.contains("401"), "{}", forced.stderr);
    let kept: Json = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(
        kept == saved,
        "the failed re-registration changed the state file"
    );
    // A fresh install: --force re-registers, the request signed with the current agent's key (issue 11).
    let (s, b) = admin.call(
        "POST",
        &format!("/api/v1/devices/{UDID}/agent"),
        Some(json!({"server_url": ts.base_url()})),
    );
    assert_eq!(s, 202, "{b}");
    deliver(&device, dir.path()).await;
    let forced = agent_blocking(
        &mut mac,
        &[
            "register", "--config", config_s, "--state", state_s, "--force", "--json",
        ],
    );
    assert_eq!(forced.code, Some(0), "{}{}", forced.stdout, forced.stderr);
    let replaced_by = forced.json()["agent_id"].as_str().unwrap().to_string();
    assert_ne!(replaced_by, agent_id);
    assert!(ts.store().agent(&agent_id).await.unwrap().is_none());
    let agent_id = replaced_by;
    let saved: Json = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["agent_id"].as_str(), Some(agent_id.as_str()));
    // Without the old key (state file gone) the server refuses, naming --replace.
    let elsewhere = dir.path().join("other/agent.json");
    let (s, _) = admin.call(
        "POST",
        &format!("/api/v1/devices/{UDID}/agent"),
        Some(json!({"server_url": ts.base_url()})),
    );
    assert_eq!(s, 202);
    deliver(&device, dir.path()).await;
    let refused = agent_blocking(
        &mut mac,
        &[
            "register",
            "--config",
            config_s,
            "--state",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert_eq!(
        refused.code,
        Some(2),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(refused.stderr.contains("--replace"), "{}", refused.stderr);
    assert_eq!(
        ts.store()
            .agent_for_device(UDID)
            .await
            .unwrap()
            .unwrap()
            .agent_id,
        agent_id
    );

    // A wrong admin password: the action fails with its precise reason, alice gets nothing.
    let (s, bad) = admin.call(
        "POST",
        &format!("/api/v1/devices/{UDID}/actions"),
        Some(
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
                    "user_password": "al1ce pw%", "admin_password": wrong_pw}),
        ),
    );
    assert_eq!(s, 201, "{bad}");
    let bad_id = bad["id"].as_str().unwrap().to_string();
    let run = agent_blocking(&mut mac, &["run", "--once", "--state", state_s, "--json"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(!mac.has_token("alice"));
    let (_, shown) = admin.call(
        "GET",
        &format!("/api/v1/devices/{UDID}/actions/{bad_id}"),
        None,
    );
    assert_eq!(shown["status"], "failed", "{shown}");
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .starts_with("wrong_admin_password"),
        "{shown}"
    );

    // The right one: granted, verified by the fake Mac, and the Users table shows the agent's facts.
    let (s, good) = admin.call(
        "POST",
        &format!("/api/v1/devices/{UDID}/actions"),
        Some(
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
                    "user_password": "al1ce pw%", "admin_password": "Adm1n-pw!"}),
        ),
    );
    assert_eq!(s, 201, "{good}");
    let good_id = good["id"].as_str().unwrap().to_string();
    let run = agent_blocking(&mut mac, &["run", "--once", "--state", state_s, "--json"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let cycle = run.json();
    assert_eq!(cycle["actions"][0]["id"], good_id.as_str());
    assert_eq!(cycle["inventory_users"], 2);
    assert!(mac.has_token("alice"));
    let (_, shown) = admin.call(
        "GET",
        &format!("/api/v1/devices/{UDID}/actions/{good_id}"),
        None,
    );
    assert_eq!(shown["status"], "succeeded", "{shown}");
    let (s, users) = admin.call("GET", &format!("/api/v1/devices/{UDID}/users"), None);
    assert_eq!(s, 200, "{users}");
    let alice = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["short_name"] == "alice")
        .unwrap_or_else(|| panic!("{users}"));
    assert_eq!(alice["has_secure_token"]["value"], true, "{users}");
    assert_eq!(alice["has_secure_token"]["source"], "agent", "{users}");
    // Nothing more queued: the next cycle only reports inventory.
    let run = agent_blocking(&mut mac, &["run", "--once", "--state", state_s]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("inventory: 2 user(s)"),
        "{}",
        run.stdout
    );

    // No password in any answer or event (argv and agent output are checked on every run above).
    let (_, listed) = admin.call("GET", &format!("/api/v1/devices/{UDID}/actions"), None);
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!events.is_empty());
    let mut texts = vec![
        listed.to_string(),
        users.to_string(),
        shown.to_string(),
        bad.to_string(),
    ];
    texts.extend(events.iter().map(|e| e.detail.clone()));
    let secrets: Vec<&[u8]> = mac.passwords.iter().map(|p| p.as_bytes()).collect();
    for text in texts {
        testkit::assert_no_secret(&text, &secrets);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_registration_or_with_bad_settings_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut mac = typical_mac();
    let missing = dir.path().join("none.json");
    let run = agent_blocking(
        &mut mac,
        &["run", "--once", "--state", missing.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("escrow-agent register"),
        "{}",
        run.stderr
    );
    let bad = dir.path().join("bad.plist");
    std::fs::write(
        &bad,
        "<plist><dict><key>ServerURL</key><string>http://x</string></dict></plist>",
    )
    .unwrap();
    let state = dir.path().join("s.json");
    let run = agent_blocking(
        &mut mac,
        &[
            "register",
            "--config",
            bad.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("DeviceID") || run.stderr.contains("missing"),
        "{}",
        run.stderr
    );
    assert!(!state.exists());
    // A settings file whose server is not listening: clear error, no state written.
    let unreachable = dir.path().join("u.plist");
    std::fs::write(&unreachable, "<plist><dict><key>ServerURL</key><string>http://127.0.0.1:9</string><key>DeviceID</key><string>D</string><key>RegistrationSecret</key><string>s3cret-reg-value</string></dict></plist>").unwrap();
    mac.passwords.push("s3cret-reg-value".into());
    let run = agent_blocking(
        &mut mac,
        &[
            "register",
            "--config",
            unreachable.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert!(!state.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_only_the_given_ca_cert() {
    // testkit's Mac speaks plain HTTP only, so this checks the transport: a TLS server that answers the
    // registration (401 for a secret it never issued) proves the handshake and HTTP over it work.
    let ts = TestServer::start_with(|o| o.http = false).await.unwrap();
    assert!(ts.base_url().starts_with("https://"), "{}", ts.base_url());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.plist");
    std::fs::write(&config, format!("<plist><dict><key>ServerURL</key><string>{}</string><key>DeviceID</key><string>NO-SUCH-MAC</string><key>RegistrationSecret</key><string>never-issued-secret</string></dict></plist>", ts.base_url())).unwrap();
    let state = dir.path().join("state.json");
    let (config_s, state_s) = (config.to_str().unwrap(), state.to_str().unwrap());
    let mut mac = typical_mac();
    mac.passwords.push("never-issued-secret".into());
    // Without --ca-cert: refused before anything is sent.
    let run = agent_blocking(
        &mut mac,
        &["register", "--config", config_s, "--state", state_s],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--ca-cert"), "{}", run.stderr);
    // With an unrelated certificate: the handshake fails.
    let other = dir.path().join("other.pem");
    let (cert, _) = pki::ca::self_signed_tls_certificate(&["127.0.0.1"], 1).unwrap();
    std::fs::write(&other, cert).unwrap();
    let run = agent_blocking(
        &mut mac,
        &[
            "register",
            "--config",
            config_s,
            "--state",
            state_s,
            "--ca-cert",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
    // With the server's certificate: the server is reached and refuses the unknown secret.
    let pem = ts.opts.data_dir.join("tls.pem");
    let run = agent_blocking(
        &mut mac,
        &[
            "register",
            "--config",
            config_s,
            "--state",
            state_s,
            "--ca-cert",
            pem.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("answered 401"), "{}", run.stderr);
    assert!(!state.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troubleshoot_and_self_service_escrow_land_in_the_device_log() {
    const UDID: &str = "E2E-AGENT-TS";
    let ts = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (admin, config) = installed(&ts, UDID, dir.path()).await;
    let state = dir.path().join("state/agent.json");
    let (config_s, state_s) = (config.to_str().unwrap(), state.to_str().unwrap());
    let mut mac = typical_mac();
    let run = agent_blocking(
        &mut mac,
        &["register", "--config", config_s, "--state", state_s],
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);

    // Troubleshoot with the admin's credentials: every SOTI command, validate included, one event each.
    let (s, created) = admin.call(
        "POST",
        &format!("/api/v1/devices/{UDID}/actions"),
        Some(json!({"kind": "troubleshoot", "admin": "ladmin", "admin_password": "Adm1n-pw!"})),
    );
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let run = agent_blocking(&mut mac, &["run", "--once", "--state", state_s]);
    // The token is not escrowed yet, so validate fails: a failed troubleshoot, reported.
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("action {id} troubleshoot: failed: problems_found")),
        "{}",
        run.stdout
    );
    let (s, events) = admin.call(
        "GET",
        &format!("/api/v1/devices/{UDID}/events?kind=agent.troubleshoot"),
        None,
    );
    assert_eq!(s, 200, "{events}");
    let mut details: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    details.reverse();
    let commands: Vec<&str> = details
        .iter()
        .map(|d| d.split('`').nth(1).unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "profiles status -type bootstraptoken",
            "fdesetup list",
            "sysadminctl -secureTokenStatus alice",
            "sysadminctl -secureTokenStatus ladmin",
            "diskutil apfs listcryptousers /",
            "profiles validate -type bootstraptoken -user ladmin",
        ]
    );
    assert!(details[0].contains("exit 0\nprofiles: Bootstrap Token supported on server: YES"));
    assert!(
        details[5].contains("Unable to verify token"),
        "{}",
        details[5]
    );
    let (_, shown) = admin.call("GET", &format!("/api/v1/devices/{UDID}/actions/{id}"), None);
    assert_eq!(shown["status"], "failed", "{shown}");
    assert!(
        shown["output"]
            .as_str()
            .unwrap()
            .contains("$ `fdesetup list` exit 0\nladmin,")
    );

    // Self-service escrow tells the server (user and outcome, never the password).
    let escrow = [
        "escrow",
        "--console-user",
        "ladmin",
        "--prompt",
        "terminal",
        "--state",
        state_s,
        "--json",
    ];
    let run = tokio::task::block_in_place(|| mac.agent(&escrow, &["Adm1n-pw!"]));
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["server"], json!({"reported": true}));
    // Already escrowed now; a user who is not a FileVault user fails; both are reported.
    let run = tokio::task::block_in_place(|| mac.agent(&escrow, &[]));
    assert_eq!(run.json()["result"], "already_escrowed");
    let mut not_fv = escrow;
    not_fv[2] = "alice";
    let run = tokio::task::block_in_place(|| mac.agent(&not_fv, &[]));
    assert_eq!(run.code, Some(1));
    assert_eq!(run.json()["server"]["reported"], true);
    let (_, events) = admin.call(
        "GET",
        &format!("/api/v1/devices/{UDID}/events?kind=agent.self_service_escrow"),
        None,
    );
    let got: Vec<(String, String)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        (
            "success".into(),
            "self-service escrow by ladmin succeeded: escrowed_and_validated".into()
        )
    );
    assert!(got[1].1.ends_with("already_escrowed"));
    assert_eq!(got[2].0, "failure");
    assert!(
        got[2]
            .1
            .starts_with("self-service escrow by alice failed: not_filevault_user: ")
    );

    // Not registered: said, and the exit follows the local result.
    let missing = dir.path().join("none.json");
    let mut unregistered = escrow;
    unregistered[6] = missing.to_str().unwrap();
    let run = tokio::task::block_in_place(|| mac.agent(&unregistered, &[]));
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.json()["server"],
        json!({"reported": false, "reason": "not_registered"})
    );
    let run = tokio::task::block_in_place(|| mac.agent(&unregistered[..7], &[]));
    assert!(
        run.stderr.contains("not registered") && run.stderr.contains("escrow-agent register"),
        "{}",
        run.stderr
    );

    // No password in any event or answer.
    let all = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut texts: Vec<String> = all.iter().map(|e| e.detail.clone()).collect();
    texts.push(shown.to_string());
    let secrets: Vec<&[u8]> = mac.passwords.iter().map(|p| p.as_bytes()).collect();
    for text in texts {
        testkit::assert_no_secret(&text, &secrets);
    }
}
