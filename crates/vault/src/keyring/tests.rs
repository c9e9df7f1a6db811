//! Specifications of the key file: creation, permissions, parsing, rotation and retirement.

use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn write_key_file(path: &Path, json: &str, mode: u32) {
    fs::write(path, json).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn key_file_reason(result: Result<Keyring, VaultError>) -> String {
    match result {
        Err(VaultError::KeyFile { reason, .. }) => reason,
        other => panic!("expected a KeyFile error, got {other:?}"),
    }
}

const VALID: &str =
    r#"{"version":1,"active":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#;

#[test]
fn key_file_is_created_with_mode_0600_in_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/escrowd/keys.json");
    let ring = Keyring::load_or_create(&path).unwrap();
    assert_eq!(ring.active_key_id(), "k1");
    assert_eq!(ring.key_ids(), vec!["k1".to_owned()]);
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(path.parent().unwrap()) & 0o077, 0);
    let reloaded = Keyring::load(&path).unwrap();
    assert_eq!(reloaded.key("k1"), ring.key("k1"));
}

#[test]
fn load_or_create_keeps_an_existing_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_key_file(&path, VALID, 0o600);
    let ring = Keyring::load_or_create(&path).unwrap();
    let expected: Vec<u8> = (0u8..32).collect();
    assert_eq!(&ring.key("k1").unwrap()[..], &expected[..]);
    assert_eq!(fs::read_to_string(&path).unwrap(), VALID);
}

#[test]
fn key_file_readable_by_others_is_refused_with_chmod_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_key_file(&path, VALID, 0o644);
    let reason = key_file_reason(Keyring::load(&path));
    assert!(reason.contains("chmod 600"), "{reason}");
    assert!(reason.contains("0644"), "{reason}");
    let reason = key_file_reason(Keyring::load_or_create(&path));
    assert!(reason.contains("chmod 600"), "{reason}");
}

#[test]
fn key_file_writable_by_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_key_file(&path, VALID, 0o620);
    assert!(key_file_reason(Keyring::load(&path)).contains("chmod 600"));
}

#[test]
fn missing_key_file_is_reported_by_load() {
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::load(&dir.path().join("nope.json")).unwrap_err();
    assert!(
        err.to_string().contains("nope.json: does not exist"),
        "{err}"
    );
}

#[test]
fn corrupt_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    for junk in [
        "",
        "{",
        "not json",
        &VALID[..VALID.len() - 3],
        "\u{0}\u{1}\u{2}",
    ] {
        write_key_file(&path, junk, 0o600);
        let reason = key_file_reason(Keyring::load(&path));
        assert!(reason.contains("not valid JSON"), "{junk:?}: {reason}");
    }
}

#[test]
fn key_files_of_the_wrong_shape_are_refused_with_a_reason() {
    let k = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cases = [
        ("[]".to_owned(), "not a JSON object"),
        (
            format!(r#"{{"version":2,"active":"k1","keys":{{"k1":"{k}"}}}}"#),
            "version 2",
        ),
        (
            format!(r#"{{"active":"k1","keys":{{"k1":"{k}"}}}}"#),
            "\"version\" is missing",
        ),
        (
            format!(r#"{{"version":1,"keys":{{"k1":"{k}"}}}}"#),
            "\"active\" is missing",
        ),
        (
            r#"{"version":1,"active":"k1"}"#.to_owned(),
            "\"keys\" is missing",
        ),
        (
            format!(r#"{{"version":1,"active":"k2","keys":{{"k1":"{k}"}}}}"#),
            "active key \"k2\"",
        ),
        (
            r#"{"version":1,"active":"k1","keys":{"k1":"AAEC"}}"#.to_owned(),
            "3 bytes",
        ),
        (
            r#"{"version":1,"active":"k1","keys":{"k1":"!!!"}}"#.to_owned(),
            "not valid base64",
        ),
        (
            r#"{"version":1,"active":"k1","keys":{"k1":7}}"#.to_owned(),
            "not a base64 string",
        ),
        (
            format!(r#"{{"version":1,"active":"k 1","keys":{{"k 1":"{k}"}}}}"#),
            "is invalid",
        ),
        (
            format!(r#"{{"version":1,"active":"k1","keys":{{"k1":"{k}"}},"x":1}}"#),
            "unknown field",
        ),
    ];
    for (json, expected) in cases {
        let reason = Keyring::parse(json.as_bytes()).unwrap_err();
        assert!(reason.contains(expected), "{json}: {reason}");
    }
}

#[test]
fn key_file_errors_never_quote_key_material() {
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3Qtc2hvdw==";
    for json in [
        format!(r#"{{"version":"{secret}","active":"k1","keys":{{"k1":"{secret}"}}}}"#),
        format!(r#"{{"version":1,"active":"k1","keys":{{"k1":"{secret}"}}}}"#),
        format!(r#"{{"version":1,"active":"k1","keys":{{"k1":"{secret}!"}}}}"#),
        format!(r#"{{"version":1,"active":"k1","keys":{{"k1":["{secret}"]}}}}"#),
    ] {
        let reason = Keyring::parse(json.as_bytes()).unwrap_err();
        assert!(!reason.contains(secret), "{reason}");
    }
}

#[test]
fn oversized_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_key_file(&path, &" ".repeat(MAX_KEY_FILE_LEN as usize + 1), 0o600);
    assert!(key_file_reason(Keyring::load(&path)).contains("at most"));
}

#[test]
fn rotate_adds_an_active_key_and_keeps_the_old_ones_in_a_0600_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let before = Keyring::load_or_create(&path).unwrap();
    assert_eq!(Keyring::rotate_file(&path).unwrap(), "k2");
    assert_eq!(Keyring::rotate_file(&path).unwrap(), "k3");
    let after = Keyring::load(&path).unwrap();
    assert_eq!(after.active_key_id(), "k3");
    assert_eq!(after.key_ids(), vec!["k1", "k2", "k3"]);
    assert_eq!(after.key("k1"), before.key("k1"));
    assert_ne!(after.key("k2"), after.key("k3"));
    assert_eq!(mode_of(&path), 0o600);
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rotate_of_a_missing_key_file_fails_without_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    assert!(matches!(
        Keyring::rotate_file(&path),
        Err(VaultError::KeyFile { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn concurrent_rotations_lose_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    Keyring::load_or_create(&path).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Keyring::rotate_file(&path).unwrap())
        })
        .collect();
    let mut ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    assert_eq!(Keyring::load(&path).unwrap().key_ids().len(), 9);
}

#[test]
fn retiring_the_active_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    Keyring::load_or_create(&path).unwrap();
    let err = Keyring::retire_key_in_file(&path, "k1").unwrap_err();
    assert!(
        matches!(&err, VaultError::RetireActive(id) if id == "k1"),
        "{err:?}"
    );
    assert_eq!(Keyring::load(&path).unwrap().key_ids(), vec!["k1"]);
}

#[test]
fn retiring_an_old_key_removes_only_that_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    Keyring::load_or_create(&path).unwrap();
    Keyring::rotate_file(&path).unwrap();
    let k2 = *Keyring::load(&path).unwrap().key("k2").unwrap();
    Keyring::retire_key_in_file(&path, "k1").unwrap();
    let after = Keyring::load(&path).unwrap();
    assert_eq!(after.key_ids(), vec!["k2"]);
    assert_eq!(after.key("k2"), Some(&k2));
    assert_eq!(mode_of(&path), 0o600);
    assert!(matches!(
        Keyring::retire_key_in_file(&path, "k1"),
        Err(VaultError::UnknownKey(id)) if id == "k1"
    ));
    assert_eq!(Keyring::rotate_file(&path).unwrap(), "k3");
}

#[test]
fn keyring_debug_shows_key_ids_but_no_key_bytes() {
    let ring = Keyring::ephemeral();
    let key = ring.key("k1").unwrap();
    let debug = format!("{ring:?}");
    assert!(debug.contains("k1"));
    assert!(!debug.contains(&STANDARD.encode(key)));
    assert!(!debug.contains(&format!("{:?}", &key[..4]).trim_end_matches(']').to_owned()));
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!debug.contains(&hex[..8]));
}

#[test]
fn ephemeral_keyrings_have_distinct_random_keys() {
    let (a, b) = (Keyring::ephemeral(), Keyring::ephemeral());
    assert_ne!(a.key("k1"), b.key("k1"));
    assert_ne!(a.key("k1"), Some(&[0u8; KEY_LEN]));
}

#[test]
fn key_ids_are_short_printable_names() {
    assert!(is_valid_key_id("k1"));
    assert!(is_valid_key_id("hsm-2026.01_a"));
    assert!(!is_valid_key_id(""));
    assert!(!is_valid_key_id("k 1"));
    assert!(!is_valid_key_id("ключ"));
    assert!(!is_valid_key_id(&"k".repeat(MAX_KEY_ID_LEN + 1)));
}
