//! `escrowd push-cert upload | show` against a running server (with the APNs stand-in as its APNs).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use service::apikeys::Actor;
use store::ApiScope;
use testkit::TestServer;
use testkit::apns::{ApnsStandIn, PushCa};
use testkit::messages::TOPIC;

fn escrowd(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_escrowd"));
    cmd.args(args)
        .env_remove("ESCROWD_PKCS12_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// The CLI runs synchronously; the server needs worker threads of its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_cert_upload_and_show() {
    let ca = PushCa::generate().unwrap();
    let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
    let (url, server_ca) = (standin.url.clone(), standin.server_ca_pem.clone());
    let ts = TestServer::start_with(|o| {
        o.apns.url = url;
        o.apns.ca_pem = Some(server_ca);
    })
    .await
    .unwrap();
    let (_, key) = ts
        .running()
        .state
        .mdm
        .create_api_key("cli", ApiScope::Admin, &Actor::offline("test"))
        .await
        .unwrap();
    let key = key.expose().clone();
    let server = ts.admin_url();
    let dir = tempfile::tempdir().unwrap();
    let (cert, pkey) = ca.issue(TOPIC, -1, 10).unwrap();
    let cert_path = dir.path().join("push.pem");
    let key_path = dir.path().join("push.key");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &pkey).unwrap();
    let base = ["--server", server.as_str(), "--api-key", key.as_str()];
    let run = |args: &[&str], env: &[(&str, &str)], stdin: Option<&str>| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&base);
        escrowd(&all, env, stdin)
    };

    let none = run(&["push-cert", "show"], &[], None);
    assert!(!none.status.success());
    assert!(
        text(&none.stderr).contains("push-cert upload"),
        "{}",
        text(&none.stderr)
    );

    let up = run(
        &[
            "push-cert",
            "upload",
            "--cert",
            cert_path.to_str().unwrap(),
            "--key",
            key_path.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert!(text(&up.stdout).contains(TOPIC), "{}", text(&up.stdout));
    assert!(
        text(&up.stderr).contains("expires in"),
        "warns: {}",
        text(&up.stderr)
    );
    assert!(!text(&up.stdout).contains("PRIVATE") && !text(&up.stderr).contains("PRIVATE"));

    let shown = run(&["push-cert", "show", "--json"], &[], None);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["topic"], TOPIC);
    assert!(v["days_left"].as_i64().unwrap() <= 10);

    // PKCS#12: password from stdin or the environment, never from argv; a wrong one changes nothing.
    let x509 = openssl::x509::X509::from_pem(&cert).unwrap();
    let pk = openssl::pkey::PKey::private_key_from_pem(&pkey).unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder()
        .name("push")
        .pkey(&pk)
        .cert(&x509)
        .build2("s3cret pw")
        .unwrap()
        .to_der()
        .unwrap();
    let p12_path = dir.path().join("push.p12");
    std::fs::write(&p12_path, p12).unwrap();
    let p12_arg = p12_path.to_str().unwrap();
    let wrong = run(
        &["push-cert", "upload", "--pkcs12", p12_arg],
        &[],
        Some("nope\n"),
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("wrong password"),
        "{}",
        text(&wrong.stderr)
    );
    let from_stdin = run(
        &["push-cert", "upload", "--pkcs12", p12_arg, "--json"],
        &[],
        Some("s3cret pw\n"),
    );
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
    let from_env = run(
        &["push-cert", "upload", "--pkcs12", p12_arg],
        &[("ESCROWD_PKCS12_PASSWORD", "s3cret pw")],
        None,
    );
    assert!(from_env.status.success(), "{}", text(&from_env.stderr));
    let no_password = run(&["push-cert", "upload", "--pkcs12", p12_arg], &[], Some(""));
    assert!(!no_password.status.success());
    assert!(text(&no_password.stderr).contains("ESCROWD_PKCS12_PASSWORD"));

    let mixed = run(
        &[
            "push-cert",
            "upload",
            "--cert",
            cert_path.to_str().unwrap(),
            "--pkcs12",
            p12_arg,
        ],
        &[],
        None,
    );
    assert!(!mixed.status.success());
    let help = escrowd(&["push-cert", "upload", "--help"], &[], None);
    assert!(text(&help.stdout).contains("Examples"));
}
