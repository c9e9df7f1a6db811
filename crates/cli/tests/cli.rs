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
        "--device-ca",
        "--database",
        "--http",
        "--trusted-cert-header",
    ] {
        assert!(help.contains(flag), "missing {flag} in:\n{help}");
    }
    assert!(help.contains("Examples"), "help teaches by example");
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
        .args(["serve", "--http", "--listen", "127.0.0.1:0", "--data-dir"])
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

    let server = ts.base_url();
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
    let server = ts.base_url();
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
            kind: "enrollment.authenticated".into(),
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
        .args(["--server", &ts.base_url(), "--api-key", key])
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
    let server = ts.base_url();
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
