//! The device CA key is sealed in the store: generated sealed on first start, migrated from an old plain
//! `device-ca.key` once (then the file is gone), and the same CA comes back after a restart.

use server::datadir::DataDir;
use service::secrets::{SecretField, SecretRef};
use testkit::TestServer;

/// Where escrowd keeps one of its own sealed secrets: (owner, field).
fn server_secret(field: SecretField) -> (String, &'static str) {
    SecretRef::server(field).to_strings()
}

#[tokio::test]
async fn a_fresh_server_seals_its_ca_key_and_writes_no_key_file() {
    let mut ts = TestServer::start().await.unwrap();
    let dir = DataDir::new(&ts.opts.data_dir);
    assert!(!dir.device_ca_key().exists());
    assert!(dir.device_ca_cert().exists());
    let store = ts.store();
    let (owner, key_field) = server_secret(SecretField::DeviceCaKey);
    let (_, cert_field) = server_secret(SecretField::DeviceCaCert);
    let sealed = store
        .sealed_secret(&owner, key_field)
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed.blob).contains("PRIVATE KEY"));
    assert!(
        store
            .sealed_secret(&owner, cert_field)
            .await
            .unwrap()
            .is_some()
    );
    let before = ts.device_ca().unwrap().cert_pem().unwrap();
    ts.restart().await.unwrap();
    assert_eq!(ts.device_ca().unwrap().cert_pem().unwrap(), before);
    // Devices issued before the restart are still trusted.
    let mac = ts.new_device("UDID-CA-1").unwrap();
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    ts.stop().await;
}

#[tokio::test]
async fn an_old_plain_key_file_is_sealed_once_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dir = DataDir::new(&data);
    let old = dir.device_ca().unwrap(); // what an older escrowd left behind
    assert!(dir.device_ca_key().exists());
    let ts = TestServer::start_with(|o| o.data_dir = data.clone())
        .await
        .unwrap();
    assert!(!dir.device_ca_key().exists(), "plain key file deleted");
    assert_eq!(
        ts.device_ca().unwrap().cert_pem().unwrap(),
        old.cert_pem().unwrap()
    );
    // A device with an identity from the old CA still checks in.
    let mac = ts.new_device("UDID-OLD-CA").unwrap();
    let legacy = testkit::TestDevice::new(
        "UDID-OLD-2",
        &old,
        testkit::device::KeyKind::Rsa2048,
        ts.base_url(),
    )
    .unwrap();
    assert_eq!(mac.authenticate().await.unwrap().status, 200);
    assert_eq!(legacy.authenticate().await.unwrap().status, 200);
    ts.stop().await;
}

#[tokio::test]
async fn key_rotation_rewraps_the_sealed_ca_and_the_server_still_loads_it() {
    let mut ts = TestServer::start().await.unwrap();
    let before = ts.device_ca().unwrap().cert_pem().unwrap();
    let key_file = DataDir::new(&ts.opts.data_dir).vault_key();
    let new_key_id = vault::Keyring::rotate_file(&key_file).unwrap();
    let vault = vault::Vault::open_or_create(&key_file).unwrap();
    let report = service::keys::rewrap_all(&ts.store(), &vault, |_| {})
        .await
        .unwrap();
    assert_eq!(
        report.rewrapped, 4,
        "CA and profile-signer keys and certificates: {report:?}"
    );
    let (owner, key_field) = server_secret(SecretField::DeviceCaKey);
    let sealed = ts
        .store()
        .sealed_secret(&owner, key_field)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sealed.key_id, new_key_id);
    ts.restart().await.unwrap();
    assert_eq!(ts.device_ca().unwrap().cert_pem().unwrap(), before);
    ts.stop().await;
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_start_makes_the_data_directory_and_its_database_files_private() {
    use std::os::unix::fs::PermissionsExt;
    // About SQLite's files in the data directory: stays on SQLite whatever the backend.
    let mut ts = TestServer::start_with(|o| {
        o.http = false;
        o.database = None;
    })
    .await
    .unwrap();
    let root = ts.opts.data_dir.clone();
    assert_eq!(mode(&root), 0o700);
    for name in [
        "escrowd.db",
        "escrowd.db-wal",
        "escrowd.db-shm",
        "vault.key",
        "tls.key",
    ] {
        assert_eq!(mode(&root.join(name)), 0o600, "{name} on first start");
    }
    // An older escrowd (or an admin) left them readable: the next start locks them down again.
    let open = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    for name in ["escrowd.db", "escrowd.db-wal", "escrowd.db-shm", "tls.key"] {
        open(&root.join(name), 0o644);
    }
    open(&root, 0o755);
    ts.restart().await.unwrap();
    assert_eq!(mode(&root), 0o700);
    for name in ["escrowd.db", "escrowd.db-wal", "escrowd.db-shm", "tls.key"] {
        assert_eq!(mode(&root.join(name)), 0o600, "{name} after restart");
    }
}

#[tokio::test]
async fn a_shared_open_directory_is_refused_with_how_to_fix_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("README"), b"not escrowd's").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut opts = server::ServeOptions::new(&shared);
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.http = true;
    let err = format!("{:#}", server::start(opts).await.err().expect("refused"));
    assert!(
        err.contains(&format!("chmod 700 {}", shared.display())),
        "{err}"
    );
    assert_eq!(mode(&shared), 0o755, "left alone");
    assert!(!shared.join("escrowd.db").exists(), "nothing created");
}
