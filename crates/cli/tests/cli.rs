//! The `escrowd` binary: help text, and key rotation against a server that keeps running.

use std::process::Command;

use testkit::TestServer;

fn escrowd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_escrowd"))
}

#[test]
fn serve_help_documents_every_flag() {
    let out = escrowd().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--data-dir",
        "--listen",
        "--admin-listen",
        "--device-ca",
        "--database",
        "--http",
        "--trusted-cert-header",
        "--trusted-proxy",
        "--trusted-cert-header-on-tls",
        "--header-read-timeout",
        "--idle-timeout",
        "--max-connections",
        "--max-large-body-parses",
    ] {
        assert!(help.contains(flag), "missing {flag} in:\n{help}");
    }
    assert!(help.contains("Examples"), "help teaches by example");
}

#[test]
fn a_forwarded_certificate_header_without_trusted_proxies_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = escrowd()
        .args([
            "serve",
            "--http",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--trusted-cert-header", "X-Client-Cert", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--trusted-proxy"), "{err}");
    // Refused before anything was created.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn a_bad_trusted_proxy_network_is_refused_with_a_hint() {
    for bad in ["10.0.0.0/33", "proxy.example.com", "::/129"] {
        let out = escrowd()
            .args(["serve", "--trusted-cert-header", "X-Client-Cert"])
            .args(["--trusted-proxy", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--trusted-proxy") && err.contains(bad),
            "{err}"
        );
    }
}

#[test]
fn keys_rotate_without_a_key_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = escrowd()
        .args(["keys", "rotate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("escrowd serve"), "{err}");
}

#[tokio::test]
async fn keys_rotate_rewraps_every_token_while_the_server_keeps_serving() {
    let ts = TestServer::start().await.unwrap();
    let data = ts.opts.data_dir.clone();
    let mut macs = Vec::new();
    for i in 0..5 {
        let mac = ts.new_device(&format!("UDID-ROT-{i}")).unwrap();
        mac.enroll().await.unwrap();
        assert_eq!(
            mac.set_bootstrap_token(Some(format!("token-{i}").as_bytes()))
                .await
                .unwrap()
                .status,
            200
        );
        macs.push(mac);
    }
    let out = escrowd()
        .args(["keys", "rotate", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Five Bootstrap Tokens plus the device CA's and the profile signer's sealed keys and certificates.
    assert_eq!(report["rewrapped"], 9, "{report}");
    let new_key = report["active_key"].as_str().unwrap().to_string();

    // The running server opens re-wrapped tokens and seals new ones under the new key.
    for (i, mac) in macs.iter().enumerate() {
        assert_eq!(
            mac.get_bootstrap_token().await.unwrap().1.unwrap(),
            format!("token-{i}").as_bytes()
        );
    }
    assert_eq!(
        macs[0]
            .set_bootstrap_token(Some(b"after-rotation"))
            .await
            .unwrap()
            .status,
        200
    );
    let counts = ts.store().sealed_secret_key_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![(new_key.clone(), 9)],
        "everything under the new key"
    );

    let out = escrowd()
        .args(["keys", "status", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let old_key = status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["active"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The active key cannot be retired; the old one can, and the server still serves.
    let out = escrowd()
        .args(["keys", "retire", "--data-dir"])
        .arg(&data)
        .arg(&new_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = escrowd()
        .args(["keys", "retire", "--data-dir"])
        .arg(&data)
        .arg(&old_key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        macs[1].get_bootstrap_token().await.unwrap().1.unwrap(),
        b"token-1"
    );
}

/// Start the real binary with the most verbose logging, escrow and fetch a token, and read every log line.
#[tokio::test]
async fn trace_level_server_logs_never_contain_a_token() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = escrowd()
        .args([
            "serve",
            "--http",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("ESCROWD_LOG", "trace")
        .stderr(log)
        .spawn()
        .unwrap();
    let mut base_url = None;
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("escrowd listening on "))
        {
            base_url = Some(
                line["escrowd listening on ".len()..]
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string(),
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let base_url = base_url.expect("server started");
    let ca = server::device_ca::load_existing(&data, None).await.unwrap();
    let mac = testkit::TestDevice::new(
        "UDID-LOGS",
        &ca,
        testkit::device::KeyKind::Rsa2048,
        base_url,
    )
    .unwrap();
    mac.enroll().await.unwrap();
    let token: Vec<u8> = b"LOGSECRET-"
        .iter()
        .copied()
        .chain((0..48u8).map(|i| i ^ 0x5a))
        .collect();
    assert_eq!(
        mac.set_bootstrap_token(Some(&token)).await.unwrap().status,
        200
    );
    assert_eq!(mac.get_bootstrap_token().await.unwrap().1.unwrap(), token);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = Vec::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_end(&mut logs)
        .unwrap();
    assert!(logs.len() > 1000, "trace logging produced output");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &token);
    assert!(
        !logs.windows(10).any(|w| w == b"LOGSECRET-"),
        "raw token in logs"
    );
    assert!(
        !logs.windows(b64.len()).any(|w| w == b64.as_bytes()),
        "base64 token in logs"
    );
    let text = String::from_utf8_lossy(&logs);
    let debug_form = format!("{:?}", &token[..10])
        .trim_end_matches(']')
        .to_string();
    let hex_form: String = token[..10].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&debug_form), "Debug-formatted token in logs");
    assert!(
        !text.to_lowercase().contains(&hex_form),
        "hex token in logs"
    );
}

#[tokio::test]
async fn apikey_create_prints_a_key_once_that_drives_the_admin_cli() {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-CLI-1").unwrap();
    mac.enroll().await.unwrap();
    let data_dir = ts.opts.data_dir.clone();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || escrowd().args(args).output().unwrap())
    };
    let dd = data_dir.display().to_string();
    let out = run(vec![
        "apikey".into(),
        "create".into(),
        "--data-dir".into(),
        dd.clone(),
        "--scope".into(),
        "read".into(),
        "--name".into(),
        "ci".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("escrowd_") && key.len() == 72, "{key}");

    let list = run(vec![
        "apikey".into(),
        "list".into(),
        "--data-dir".into(),
        dd.clone(),
        "--json".into(),
    ])
    .await
    .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(
        listed.contains("\"ci\"") && !listed.contains(&key),
        "the key is shown once: {listed}"
    );

    let server = ts.admin_url();
    let out = run(vec![
        "devices".into(),
        "--server".into(),
        server.clone(),
        "--api-key".into(),
        key.clone(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"][0]["id"], "UDID-CLI-1");
    let table = run(vec![
        "devices".into(),
        "--server".into(),
        server.clone(),
        "--api-key".into(),
        key.clone(),
    ])
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("Not configured"));

    // Events: the whole fleet (no device id), filtered by subject, and one device's, as JSON.
    let fleet = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["events".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([
            "--server".into(),
            server.clone(),
            "--api-key".into(),
            key.clone(),
            "--json".into(),
        ]);
        run(args)
    };
    for extra in [
        &[][..],
        &["--subject", "UDID-CLI-1"][..],
        &["UDID-CLI-1"][..],
    ] {
        let out = fleet(extra).await.unwrap();
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let events = v["events"].as_array().unwrap();
        assert!(!events.is_empty(), "{extra:?}");
        assert!(
            events.iter().any(|e| e["subject"] == "UDID-CLI-1"),
            "{extra:?}: {v}"
        );
    }
    let bad = fleet(&["--outcome", "meh"]).await.unwrap();
    assert!(!bad.status.success());

    let denied = run(vec![
        "groups".into(),
        "create".into(),
        "Lab".into(),
        "--server".into(),
        server.clone(),
        "--api-key".into(),
        key.clone(),
    ])
    .await
    .unwrap();
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("scope"),
        "says why"
    );
    let nokey = run(vec!["devices".into(), "--server".into(), server.clone()])
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&nokey.stderr).contains("escrowd apikey create"));

    // Offline revoke by id: the running server refuses the key from then on; a second revoke says what to do.
    let id = serde_json::from_str::<serde_json::Value>(&listed).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoke = |id: String| {
        run(vec![
            "apikey".into(),
            "revoke".into(),
            id,
            "--data-dir".into(),
            dd.clone(),
        ])
    };
    let out = revoke(id.clone()).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = run(vec![
        "devices".into(),
        "--server".into(),
        server,
        "--api-key".into(),
        key.clone(),
    ])
    .await
    .unwrap();
    assert!(!refused.status.success(), "a revoked key still works");
    let again = revoke(id).await.unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("escrowd apikey list"));
    let unknown = revoke("nope".into()).await.unwrap();
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn admin_cli_over_https_needs_the_servers_certificate_and_works_with_it() {
    let ts = TestServer::start_with(|o| o.http = false).await.unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            "tls",
            store::ApiScope::Read,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let key = key.expose().clone();
    let server = ts.admin_url();
    assert!(server.starts_with("https://"));
    let pem = ts.opts.data_dir.join("tls.pem").display().to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || escrowd().args(args).output().unwrap())
    };
    let base = vec![
        "report".to_string(),
        "--server".into(),
        server,
        "--api-key".into(),
        key,
        "--json".into(),
    ];
    let without = run(base.clone()).await.unwrap();
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("--ca-cert"),
        "says what to do"
    );
    let mut with = base;
    with.extend(["--ca-cert".to_string(), pem]);
    let out = run(with).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"], 0);
}

/// `n` enrolled devices `{prefix}-000000…`, written straight to the store (enrolling each over HTTP would
/// only slow the test down).
async fn seed_devices(ts: &TestServer, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i:06}");
        let e = store::Enrollment {
            token_update_count: 1,
            ..store::Enrollment::new_device(&id, 1)
        };
        let event = store::NewEvent {
            subject: id.clone(),
            enrollment_id: Some(id.clone()),
            kind: store::EventKind::EnrollmentAuthenticated,
            outcome: store::Outcome::Success,
            detail: "seeded".into(),
            at: 1,
        };
        ts.store().upsert_enrollment(&e, &event).await.unwrap();
        ids.push(id);
    }
    ids
}

/// Runs the binary with `args` plus the server and key, `stdin` piped in; (success, stdout, stderr).
async fn admin_cli(
    ts: &TestServer,
    key: &str,
    args: &[&str],
    stdin: Option<String>,
) -> (bool, String, String) {
    let mut cmd = escrowd();
    cmd.args(args)
        .args(["--server", &ts.admin_url(), "--api-key", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn bulk_commands_pushes_listing_and_report_files_go_in_batches_and_count_right() {
    // The inventory schedule is off: the seeded devices have no inventory, so its tick would queue
    // inventory commands beside the ones this test counts.
    let ts = TestServer::start_with(|o| o.inventory_interval = std::time::Duration::ZERO)
        .await
        .unwrap();
    let ids = seed_devices(&ts, "BULK", 1200).await;
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            "bulk",
            store::ApiScope::Operate,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let key = key.expose().clone();
    let dir = tempfile::tempdir().unwrap();

    // 1,200 ids from a file (with a comment, a blank line and a repeat) → three calls of 500, 500, 200.
    let file = dir.path().join("macs.txt");
    let mut text = format!("# exported from the inventory\n\n{}\n", ids.join("\n"));
    text.push_str(&ids[0]);
    std::fs::write(&file, text).unwrap();
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "SecurityInfo",
            "--from-file",
            file.to_str().unwrap(),
            "--no-push",
            "--json",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.is_empty(), "no progress bar with --json: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["queued"], 1200, "{v}");
    assert_eq!(v["batches"], 3, "{v}");
    let uuids: Vec<String> = v["command_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    let mut per_uuid = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let history = ts.store().command_history(id, 10).await.unwrap();
        assert_eq!(history.len(), 1, "{id} got {} commands", history.len());
        *per_uuid.entry(history[0].uuid.clone()).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_uuid.values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts, [200, 500, 500]);
    let mut listed = uuids.clone();
    listed.sort();
    assert_eq!(listed, per_uuid.keys().cloned().collect::<Vec<_>>());

    // The table form says the same in words.
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &["command", "UserList", "--no-push", "--batch-size", "1000"],
        Some(format!("{}\n{}\n", ids[0], ids[1])),
    )
    .await;
    assert!(!ok, "no ids and no --from-file -: refused");
    assert!(err.contains("--from-file FILE"), "{err}{out}");
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &["command", "UserList", "--from-file", "-", "--no-push"],
        Some(format!("{}\n{}\n", ids[0], ids[1])),
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("queued UserList for 2 devices in 1 batch: "),
        "{out}"
    );

    // A batch refused half way: what was queued before is said, nothing after it is sent.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "DeviceInformation",
            &ids[2],
            &ids[3],
            "NOT-A-DEVICE",
            &ids[4],
            "--batch-size",
            "2",
            "--no-push",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("batch 2 of 2 failed"), "{err}");
    assert!(err.contains("2 of 4 devices were queued"), "{err}");
    assert_eq!(
        ts.store().command_history(&ids[4], 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        ts.store().command_history(&ids[2], 10).await.unwrap().len(),
        2
    );

    // A bad line refuses the whole file before anything is sent.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("{}\n{} extra\n", ids[5], ids[6])).unwrap();
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &["command", "UserList", "--from-file", bad.to_str().unwrap()],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("bad.txt line 2"), "{err}");
    assert_eq!(
        ts.store().command_history(&ids[5], 10).await.unwrap().len(),
        1
    );

    // Every device, paged (1000 + 200).
    let (ok, out, err) = admin_cli(&ts, &key, &["devices", "--all", "--json"], None).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["devices"].as_array().unwrap().len(), 1200);
    assert!(v["next"].is_null());

    // Push to a group in batches of 2: three devices, two calls, every result reported (none can be pushed:
    // no push certificate).
    let group = ts
        .running()
        .state
        .mdm
        .admin_create_group(
            "Bulk",
            true,
            false,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    for id in &ids[10..13] {
        ts.store()
            .set_enrollment_group(id, Some(&group.id))
            .await
            .unwrap();
    }
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &["push", "--group", &group.id, "--batch-size", "2", "--json"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["devices"].clone(), v["batches"].clone()),
        (3.into(), 2.into()),
        "{v}"
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["error"].is_string()), "{v}");
    let (ok, out, _) = admin_cli(&ts, &key, &["push", "--group", &group.id], None).await;
    assert!(ok);
    assert!(out.contains("pushed to 0 of 3 devices; 3 failed"), "{out}");
    let (ok, _, err) = admin_cli(&ts, &key, &["push", "--group", "no-such-group"], None).await;
    assert!(!ok);
    assert!(err.contains("no-such-group"), "{err}");

    // The CSV report streamed to a file: header plus one row per device.
    let csv = dir.path().join("missing.csv");
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &[
            "report",
            "without-bootstrap-token",
            "--output",
            csv.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("wrote 1200 rows to {}", csv.display()));
    let written = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(written.lines().count(), 1201);
    assert!(written.starts_with("device_id,"));
    assert!(!dir.path().join("missing.part").exists());
    let nope = dir.path().join("nope.csv");
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "report",
            "no-such-report",
            "--output",
            nope.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("no report"), "{err}");
    assert!(!nope.exists() && !dir.path().join("nope.part").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_create_sends_passwords_from_the_environment_or_stdin_and_never_echoes_them() {
    use std::io::Write;
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-CLI-ACT").unwrap();
    mac.enroll().await.unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            "ops",
            store::ApiScope::Operate,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let server = ts.admin_url();
    let key = key.expose().clone();
    let base = move |extra: &[&str]| {
        let mut c = escrowd();
        c.args(["action", "create", "UDID-CLI-ACT"])
            .args(extra)
            .args(["--server", &server, "--api-key", &key])
            .env_remove("ESCROWD_USER_PASSWORD")
            .env_remove("ESCROWD_ADMIN_PASSWORD");
        c
    };
    const PW: &str = "Cl1-Adm1n \"pw\" \\ é";
    // troubleshoot with --admin needs the admin's password: said before anything is sent.
    let mut no_pw = base(&["troubleshoot", "--admin", "ladmin"]);
    let out = tokio::task::spawn_blocking(move || no_pw.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ESCROWD_ADMIN_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From the environment: the body parses on the server, which then says the Mac has no agent yet.
    let mut env = base(&["troubleshoot", "--admin", "ladmin"]);
    env.env("ESCROWD_ADMIN_PASSWORD", PW);
    let out = tokio::task::spawn_blocking(move || env.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        stderr.contains("409") && stderr.contains("no registered agent"),
        "{stderr}"
    );
    assert!(!stderr.contains(PW) && !String::from_utf8_lossy(&out.stdout).contains(PW));
    // From stdin, user's then admin's.
    let mut stdin = base(&[
        "grant_secure_token",
        "--user",
        "alice",
        "--admin",
        "ladmin",
        "--passwords-from-stdin",
    ]);
    let out = tokio::task::spawn_blocking(move || {
        let mut child = stdin
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "al1ce-pw\n{PW}").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("no registered agent"), "{stderr}");
    assert!(!stderr.contains(PW) && !stderr.contains("al1ce-pw"));
    // Nothing was stored for a Mac without an agent, and no event names a password.
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(events.iter().all(|e| !e.detail.contains(PW)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_clear_token_commands_history_and_action_output_as_json() {
    let ts = TestServer::start().await.unwrap();
    let udid = "UDID-CLI-12";
    let mac = ts.new_device(udid).unwrap();
    mac.enroll().await.unwrap();
    assert_eq!(
        mac.set_bootstrap_token(Some(b"cli-token"))
            .await
            .unwrap()
            .status,
        200
    );
    let mdm = ts.running().state.mdm.clone();
    let offline = service::apikeys::Actor::offline("test");
    let (_, admin) = mdm
        .create_api_key("admin", store::ApiScope::Admin, &offline)
        .await
        .unwrap();
    let (_, read) = mdm
        .create_api_key("read", store::ApiScope::Read, &offline)
        .await
        .unwrap();
    let (admin, read) = (admin.expose().clone(), read.expose().clone());

    // Command history: a table with each command's status, and --json.
    let (ok, out, err) = admin_cli(&ts, &read, &["commands", udid], None).await;
    assert!(ok, "{err}");
    for word in [
        "request type",
        "status",
        "SecurityInfo",
        "UserList",
        "acknowledged",
        "pending",
    ] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
    let (ok, out, err) = admin_cli(
        &ts,
        &read,
        &["commands", udid, "--json", "--limit", "2"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cmds = v["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 2, "{v}");
    assert!(
        cmds.iter()
            .all(|c| c["status"].is_string() && c["request_type"].is_string())
    );
    let (ok, _, err) = admin_cli(&ts, &read, &["commands", "NO-SUCH-MAC"], None).await;
    assert!(!ok);
    assert!(err.contains("404"), "{err}");

    // The device view shows each finding's evidence in the table too.
    let (ok, out, err) = admin_cli(&ts, &read, &["device", udid], None).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("evidence") && out.contains("verified = false"),
        "{out}"
    );

    // clear-token: refused for a read key, done with an admin key, then there is nothing left to clear.
    let (ok, _, err) = admin_cli(&ts, &read, &["device", "clear-token", udid], None).await;
    assert!(!ok);
    assert!(err.contains("403"), "{err}");
    assert!(ts.store().bootstrap_token(udid).await.unwrap().is_some());
    let (ok, out, err) = admin_cli(&ts, &admin, &["device", "clear-token", udid], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("cleared"), "{out}");
    assert!(ts.store().bootstrap_token(udid).await.unwrap().is_none());
    let (ok, out, _) = admin_cli(
        &ts,
        &admin,
        &["device", "clear-token", udid, "--json"],
        None,
    )
    .await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cleared"], false);

    // action show --json: the action's output is a JSON object, not a string holding JSON.
    let now = 1_000;
    let action = store::AgentAction {
        id: "act-12".into(),
        device_id: udid.into(),
        kind: "validate_bootstrap_token".into(),
        params: "{}".into(),
        sealed: None,
        status: store::ActionStatus::Queued,
        reason: None,
        output: None,
        created_by: "test".into(),
        created_at: now,
        updated_at: now,
        expires_at: i64::MAX / 2,
    };
    let event = store::NewEvent {
        subject: udid.into(),
        enrollment_id: Some(udid.into()),
        kind: store::EventKind::AgentActionCreated,
        outcome: store::Outcome::Success,
        detail: "seeded".into(),
        at: now,
    };
    ts.store()
        .create_agent_action(&action, &event)
        .await
        .unwrap();
    ts.store()
        .finish_agent_action(
            udid,
            "act-12",
            store::ActionStatus::Succeeded,
            None,
            Some(r#"{"outcome":"bootstrap_token_validated","user":"ladmin"}"#),
            now + 1,
            &[],
        )
        .await
        .unwrap();
    let (ok, out, err) = admin_cli(
        &ts,
        &read,
        &["action", "show", udid, "act-12", "--json"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["output"]["outcome"], "bootstrap_token_validated", "{v}");
    assert_eq!(v["output"]["user"], "ladmin");
    let (ok, out, _) = admin_cli(&ts, &read, &["action", "show", udid, "act-12"], None).await;
    assert!(ok);
    assert!(
        out.contains("\"outcome\": \"bootstrap_token_validated\""),
        "{out}"
    );
}

#[tokio::test]
async fn device_identity_actions_show_approve_block_and_unenroll() {
    let ts = TestServer::start().await.unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            "identity",
            store::ApiScope::Admin,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let key = key.expose().clone();
    let mac = ts.new_device("UDID-CLI-ID").unwrap();
    mac.enroll().await.unwrap();
    assert_eq!(
        mac.set_bootstrap_token(Some(b"old-token"))
            .await
            .unwrap()
            .status,
        200
    );
    // A second certificate claims the Mac: pending.
    let newcomer = ts.new_device("UDID-CLI-ID").unwrap();
    assert_eq!(newcomer.authenticate().await.unwrap().status, 200);
    let new_fp = pki::identity::fingerprint_sha256(&newcomer.cert.to_der().unwrap());

    let (ok, out, err) = admin_cli(&ts, &key, &["device", "identities", "UDID-CLI-ID"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains(&new_fp), "{out}");
    assert!(err.contains("approve-identity"), "says what to do: {err}");
    let (ok, out, _) = admin_cli(&ts, &key, &["device", "UDID-CLI-ID"], None).await;
    assert!(ok);
    assert!(out.contains("A second identity claims this Mac"), "{out}");

    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "device",
            "approve-identity",
            "UDID-CLI-ID",
            "--fingerprint",
            "00000000",
        ],
        None,
    )
    .await;
    assert!(!ok && err.contains("fingerprint"), "{err}");
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &[
            "device",
            "approve-identity",
            "UDID-CLI-ID",
            "--fingerprint",
            &new_fp[..12],
            "--json",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["fingerprint"], new_fp.as_str());
    assert!(
        ts.store()
            .bootstrap_token("UDID-CLI-ID")
            .await
            .unwrap()
            .is_none(),
        "old token discarded"
    );
    assert_eq!(
        newcomer.token_update().await.unwrap().status,
        200,
        "the approved identity is the Mac's"
    );

    let (ok, out, err) = admin_cli(&ts, &key, &["device", "block", "UDID-CLI-ID"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("unblock"), "{out}");
    assert_eq!(
        newcomer.token_update().await.unwrap().status,
        400,
        "blocked"
    );
    let (ok, _, err) = admin_cli(&ts, &key, &["device", "unblock", "UDID-CLI-ID"], None).await;
    assert!(ok, "{err}");
    assert_eq!(newcomer.token_update().await.unwrap().status, 200);

    let (ok, _, err) = admin_cli(&ts, &key, &["device", "unenroll", "UDID-CLI-ID"], None).await;
    assert!(!ok && err.contains("--yes"), "{err}");
    assert!(
        ts.store()
            .enrollment("UDID-CLI-ID")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &["device", "unenroll", "UDID-CLI-ID", "--yes"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        !ts.store()
            .enrollment("UDID-CLI-ID")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_settings_sends_the_full_effective_mdm_options() {
    let ts = TestServer::start_with(|o| o.inventory_interval = std::time::Duration::ZERO)
        .await
        .unwrap();
    let ids = seed_devices(&ts, "SET", 2).await;
    let by = service::apikeys::Actor::offline("test");
    let mdm = &ts.running().state.mdm;
    let prompt = mdm
        .admin_create_group("Prompt", true, true, &by)
        .await
        .unwrap();
    let plain = mdm
        .admin_create_group("Plain", true, false, &by)
        .await
        .unwrap();
    ts.store()
        .set_enrollment_group(&ids[0], Some(&prompt.id))
        .await
        .unwrap();
    ts.store()
        .set_enrollment_group(&ids[1], Some(&plain.id))
        .await
        .unwrap();
    let (_, key) = mdm
        .create_api_key("ops", store::ApiScope::Operate, &by)
        .await
        .unwrap();
    let key = key.expose().clone();

    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "Settings",
            &ids[0],
            "--bootstrap-token-allowed",
            "true",
            "--no-push",
            "--json",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["queued"], 1, "{v}");
    let history = ts.store().command_history(&ids[0], 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].request_type, "Settings");
    let cmd = protocol::command::Command::from_raw_plist(&history[0].payload).unwrap();
    let item = cmd.body["Settings"].as_array().unwrap()[0]
        .as_dictionary()
        .unwrap()
        .clone();
    let opts = item["MDMOptions"].as_dictionary().unwrap();
    let flag = |k: &str| opts.get(k).and_then(|v| v.as_boolean());
    assert_eq!(flag("BootstrapTokenAllowed"), Some(true));
    assert_eq!(
        flag("PromptUserToAllowBootstrapTokenForAuthentication"),
        Some(true),
        "from the group"
    );
    assert_eq!(flag("ActivationLockAllowedWhileSupervised"), Some(false));

    // Two groups that differ on the prompt key, which is left out: refused, nothing queued.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "Settings",
            &ids[0],
            &ids[1],
            "--bootstrap-token-allowed",
            "true",
            "--no-push",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("400") && err.contains("differ"), "{err}");
    assert_eq!(
        ts.store().command_history(&ids[1], 10).await.unwrap().len(),
        0
    );
    // Given explicitly, the same two Macs get one command.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "Settings",
            &ids[0],
            &ids[1],
            "--prompt-user-to-allow-bootstrap-token-for-authentication",
            "false",
            "--no-push",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        ts.store().command_history(&ids[1], 10).await.unwrap().len(),
        1
    );

    // Settings flags on another command, and a value that is not a bool, say what is wrong.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "UserList",
            &ids[0],
            "--bootstrap-token-allowed",
            "true",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("belong to the Settings command"), "{err}");
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "command",
            "Settings",
            &ids[0],
            "--bootstrap-token-allowed",
            "maybe",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("maybe"), "{err}");
    assert_eq!(
        ts.store().command_history(&ids[0], 10).await.unwrap().len(),
        2
    );

    let help = escrowd().args(["command", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("--bootstrap-token-allowed") && help.contains("Settings"),
        "{help}"
    );
}

/// `escrowd action create UDID reset_password`: the new password comes from the environment or stdin (never
/// argv), the help explains the kind, and nothing echoes the passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_create_reset_password_reads_the_new_password_and_never_echoes_it() {
    let ts = TestServer::start().await.unwrap();
    let mac = ts.new_device("UDID-CLI-RESET").unwrap();
    mac.enroll().await.unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            "ops",
            store::ApiScope::Operate,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let key = key.expose().clone();
    const NEW_PW: &str = "n3w-Reset pw \"x\"";
    const ADMIN_PW: &str = "adm1n-Reset pw";
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "action",
            "create",
            "UDID-CLI-RESET",
            "reset_password",
            "--user",
            "alice",
            "--admin",
            "ladmin",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("user's new password"), "{err}");
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &[
            "action",
            "create",
            "UDID-CLI-RESET",
            "reset_password",
            "--user",
            "alice",
            "--admin",
            "ladmin",
            "--passwords-from-stdin",
        ],
        Some(format!("{NEW_PW}\n{ADMIN_PW}\n")),
    )
    .await;
    assert!(!ok);
    // The body parsed on the server, which then says the Mac has no agent yet.
    assert!(err.contains("no registered agent"), "{err}");
    for pw in [NEW_PW, ADMIN_PW] {
        assert!(!err.contains(pw) && !out.contains(pw));
    }
    let help = escrowd()
        .args(["action", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("reset_password"), "{help}");
}

/// `escrowd groups accounts`: sets the zero-touch managed admin, warns on stderr when the group would leave
/// no Secure Token holder (S4), shows it, and removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_accounts_sets_warns_shows_and_removes_the_managed_admin() {
    let ts = TestServer::start().await.unwrap();
    let by = service::apikeys::Actor::offline("test");
    let mdm = &ts.running().state.mdm;
    let g = mdm
        .admin_create_group("ZT", true, false, &by)
        .await
        .unwrap();
    let (_, key) = mdm
        .create_api_key("adm", store::ApiScope::Admin, &by)
        .await
        .unwrap();
    let key = key.expose().clone();
    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &[
            "groups",
            "accounts",
            &g.id,
            "--admin",
            "mgmt",
            "--primary",
            "skip",
            "--hidden",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("warning: no Secure Token holder"), "{err}");
    assert!(out.contains("mgmt") && out.contains("skip"), "{out}");
    let (ok, out, err) = admin_cli(&ts, &key, &["groups", "accounts", &g.id, "--json"], None).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["settings"]["admin_short_name"], "mgmt", "{v}");
    assert_eq!(v["settings"]["admin_hidden"], true, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    // Bad input is a clear 400 and changes nothing.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "groups",
            "accounts",
            &g.id,
            "--admin",
            "9 bad",
            "--primary",
            "admin",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("400") && err.contains("short name"), "{err}");
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &[
            "groups",
            "accounts",
            &g.id,
            "--admin",
            "mgmt",
            "--primary",
            "sometimes",
        ],
        None,
    )
    .await;
    assert!(!ok && err.contains("sometimes"), "{err}");
    assert_eq!(
        ts.store()
            .group_account_settings(&g.id)
            .await
            .unwrap()
            .unwrap()
            .primary_account,
        store::PrimaryAccount::Skip
    );
    let (ok, out, err) =
        admin_cli(&ts, &key, &["groups", "accounts", &g.id, "--remove"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("no managed admin"), "{out}");
    assert!(
        ts.store()
            .group_account_settings(&g.id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn device_renew_identity_queues_the_renewal_and_device_shows_identity_expiry() {
    let ts = TestServer::start().await.unwrap();
    ts.install_push_certificate().await.unwrap();
    let mac = ts.new_device("UDID-CLI-REN").unwrap();
    mac.enroll().await.unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key(
            "renew",
            store::ApiScope::Admin,
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let key = key.expose().clone();

    let (ok, out, _) = admin_cli(&ts, &key, &["device", "UDID-CLI-REN"], None).await;
    assert!(ok);
    assert!(
        out.contains("identity expires") && out.contains("in 36"),
        "{out}"
    );
    assert!(out.contains("none outstanding"), "{out}");
    let (ok, out, _) = admin_cli(&ts, &key, &["devices"], None).await;
    assert!(ok && out.contains("identity expires"), "{out}");

    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &["device", "renew-identity", "UDID-CLI-REN", "--json"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let uuid = v["renewal"]["command_uuid"].as_str().unwrap().to_string();
    let r = ts
        .store()
        .identity_renewal("UDID-CLI-REN")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.command_uuid, uuid);
    let (ok, out, _) = admin_cli(&ts, &key, &["device", "UDID-CLI-REN"], None).await;
    assert!(ok && out.contains(&uuid), "{out}");

    let (ok, _, err) = admin_cli(&ts, &key, &["device", "renew-identity", "NOBODY"], None).await;
    assert!(!ok && err.contains("NOBODY"), "{err}");
}

/// Issue 15: every group argument takes the group's name as well as its id (as `profile --group` does), and
/// tables print times as a date and how long ago, while `--json` keeps the API's Unix milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_take_a_name_and_tables_show_times_in_peoples_terms() {
    let ts = TestServer::start().await.unwrap();
    ts.install_push_certificate().await.unwrap();
    let mac = ts.new_device("UDID-CLI-GRP").unwrap();
    mac.enroll().await.unwrap();
    let by = service::apikeys::Actor::offline("test");
    let mdm = &ts.running().state.mdm;
    let g = mdm
        .admin_create_group("Lab", true, false, &by)
        .await
        .unwrap();
    let (_, key) = mdm
        .create_api_key("grp", store::ApiScope::Admin, &by)
        .await
        .unwrap();
    let key = key.expose().clone();
    let group_of = || async {
        ts.store()
            .enrollment("UDID-CLI-GRP")
            .await
            .unwrap()
            .unwrap()
            .group_id
    };

    let (ok, out, err) = admin_cli(
        &ts,
        &key,
        &["groups", "assign", "UDID-CLI-GRP", "Lab"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("Lab"), "{out}");
    assert_eq!(group_of().await.as_deref(), Some(g.id.as_str()));
    // An unknown name is refused with a hint and changes nothing.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &["groups", "assign", "UDID-CLI-GRP", "Nope"],
        None,
    )
    .await;
    assert!(
        !ok && err.contains("Nope") && err.contains("groups list"),
        "{err}"
    );
    assert_eq!(group_of().await.as_deref(), Some(g.id.as_str()));
    // The id still works.
    let (ok, _, err) = admin_cli(
        &ts,
        &key,
        &["groups", "assign", "UDID-CLI-GRP", &g.id],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = admin_cli(&ts, &key, &["groups", "escrow", "Lab", "false"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("escrow off"), "{out}");
    let group = ts.store().group(&g.id).await.unwrap().unwrap();
    assert!(!group.bootstrap_escrow_enabled);
    let (ok, out, err) = admin_cli(&ts, &key, &["devices", "--group", "Lab", "--json"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("UDID-CLI-GRP"), "{out}");

    // Tables: a date and how long ago, never the epoch milliseconds; --json keeps the numbers.
    let (ok, out, err) = admin_cli(&ts, &key, &["events", "UDID-CLI-GRP", "--json"], None).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let times: Vec<String> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_i64().unwrap().to_string())
        .collect();
    assert!(!times.is_empty(), "{v}");
    let (ok, out, err) = admin_cli(&ts, &key, &["events", "UDID-CLI-GRP"], None).await;
    assert!(ok, "{err}");
    // Fresh events: a date and "just now" (the wording further off is unit-tested in `when.rs`).
    assert!(out.contains(" UTC (just now)"), "{out}");
    assert!(times.iter().all(|t| !out.contains(t.as_str())), "{out}");

    let (ok, out, err) = admin_cli(&ts, &key, &["push-cert", "show", "--json"], None).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let not_after = v["not_after"].as_i64().unwrap();
    assert!(not_after > 1_700_000_000_000, "{v}");
    let (ok, out, err) = admin_cli(&ts, &key, &["push-cert", "show"], None).await;
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.contains("not_after")).unwrap();
    assert!(line.contains(" UTC (in "), "{out}");
    assert!(!out.contains(&not_after.to_string()), "{out}");
}
