//! Specifications of sealing, opening and rotation; hostile blobs must fail cleanly, never panic.

use super::*;
use base64::Engine as _;

const ALICE_TOKEN: SealContext<'static> = SealContext {
    owner: "enrollment-alice",
    field: "bootstrap_token",
};

fn vault() -> Vault {
    Vault::from_keyring(Keyring::ephemeral())
}

fn opens_to(vault: &Vault, ctx: SealContext<'_>, blob: &[u8], expected: &[u8]) {
    let opened = vault.open(ctx, blob).unwrap();
    assert_eq!(opened.expose().as_slice(), expected);
}

/// Offset of the key id bytes in a blob: magic (2) + version (1) + length (1).
const KEY_ID_AT: usize = 4;

#[test]
fn sealed_value_opens_for_the_same_owner_and_field() {
    let v = vault();
    let sealed = v.seal(ALICE_TOKEN, b"bootstrap token bytes").unwrap();
    assert_eq!(sealed.key_id, "k1");
    assert!(!sealed.blob.windows(9).any(|w| w == b"bootstrap"));
    opens_to(&v, ALICE_TOKEN, &sealed.blob, b"bootstrap token bytes");
}

#[test]
fn empty_plaintext_round_trips() {
    let v = vault();
    let sealed = v.seal(ALICE_TOKEN, b"").unwrap();
    assert!(v.open(ALICE_TOKEN, &sealed.blob).unwrap().is_empty());
}

#[test]
fn large_plaintext_round_trips() {
    let v = vault();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let sealed = v.seal(ALICE_TOKEN, &big).unwrap();
    opens_to(&v, ALICE_TOKEN, &sealed.blob, &big);
}

#[test]
fn sealing_twice_gives_different_blobs() {
    let v = vault();
    let a = v.seal(ALICE_TOKEN, b"same").unwrap();
    let b = v.seal(ALICE_TOKEN, b"same").unwrap();
    assert_ne!(a.blob, b.blob);
}

#[test]
fn sealed_value_opened_as_another_owner_fails() {
    let v = vault();
    let sealed = v.seal(ALICE_TOKEN, b"secret").unwrap();
    let bob = SealContext {
        owner: "enrollment-bob",
        ..ALICE_TOKEN
    };
    assert!(matches!(
        v.open(bob, &sealed.blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn sealed_value_opened_as_another_field_fails() {
    let v = vault();
    let sealed = v.seal(ALICE_TOKEN, b"secret").unwrap();
    let other = SealContext {
        field: "unlock_token",
        ..ALICE_TOKEN
    };
    assert!(matches!(
        v.open(other, &sealed.blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn owner_and_field_boundaries_cannot_be_shifted() {
    let v = vault();
    let sealed = v
        .seal(
            SealContext {
                owner: "ab",
                field: "c",
            },
            b"secret",
        )
        .unwrap();
    let shifted = SealContext {
        owner: "a",
        field: "bc",
    };
    assert!(matches!(
        v.open(shifted, &sealed.blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn blob_sealed_under_another_keyring_fails_to_open() {
    let sealed = vault().seal(ALICE_TOKEN, b"secret").unwrap();
    assert!(matches!(
        vault().open(ALICE_TOKEN, &sealed.blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn blob_relabelled_to_another_existing_key_fails_to_open() {
    let v = Vault::from_keyring(Keyring::with_keys("k1", &["k1", "k2"]));
    let sealed = v.seal(ALICE_TOKEN, b"secret").unwrap();
    let mut relabelled = sealed.blob.clone();
    assert_eq!(&relabelled[KEY_ID_AT..KEY_ID_AT + 2], b"k1");
    relabelled[KEY_ID_AT + 1] = b'2';
    assert_eq!(Vault::key_id_of(&relabelled).unwrap(), "k2");
    assert!(matches!(
        v.open(ALICE_TOKEN, &relabelled),
        Err(VaultError::OpenFailed)
    ));
    assert!(matches!(
        v.rewrap(ALICE_TOKEN, &relabelled),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn blob_under_a_key_the_vault_lacks_is_unknown_key() {
    let v = vault();
    let mut blob = v.seal(ALICE_TOKEN, b"secret").unwrap().blob;
    blob[KEY_ID_AT + 1] = b'9';
    assert!(matches!(v.open(ALICE_TOKEN, &blob), Err(VaultError::UnknownKey(id)) if id == "k9"));
}

#[test]
fn every_flipped_bit_makes_the_blob_fail_to_open() {
    let v = vault();
    let blob = v.seal(ALICE_TOKEN, b"tok").unwrap().blob;
    for i in 0..blob.len() {
        for bit in 0..8 {
            let mut bad = blob.clone();
            bad[i] ^= 1 << bit;
            assert!(
                v.open(ALICE_TOKEN, &bad).is_err(),
                "byte {i} bit {bit} flipped still opens"
            );
            assert!(
                v.rewrap(ALICE_TOKEN, &bad).is_err(),
                "byte {i} bit {bit} flipped still rewraps"
            );
        }
    }
}

#[test]
fn truncated_blob_at_every_length_is_refused_without_panic() {
    let v = vault();
    let blob = v.seal(ALICE_TOKEN, b"token").unwrap().blob;
    for len in 0..blob.len() {
        let result = v.open(ALICE_TOKEN, &blob[..len]);
        assert!(
            matches!(result, Err(VaultError::Malformed | VaultError::OpenFailed)),
            "truncated to {len}: {result:?}"
        );
    }
}

#[test]
fn appended_bytes_make_the_blob_fail_to_open() {
    let v = vault();
    let mut blob = v.seal(ALICE_TOKEN, b"token").unwrap().blob;
    blob.push(0);
    assert!(matches!(
        v.open(ALICE_TOKEN, &blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn garbage_blobs_are_malformed() {
    let v = vault();
    let mut long_id = b"EV\x01\xffk".to_vec();
    long_id.resize(400, b'k');
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"EV".to_vec(),
        b"EV\x02\x02k1".to_vec(),
        b"XX\x01\x02k1".to_vec(),
        b"EV\x01\x00".to_vec(),
        long_id,
        b"EV\x01\x02\xff\xfe"
            .iter()
            .copied()
            .chain([0u8; 200])
            .collect(),
        b"EV\x01\x02k 1".iter().copied().chain([0u8; 200]).collect(),
        vec![0xff; 1000],
    ];
    for garbage in cases {
        assert!(
            matches!(v.open(ALICE_TOKEN, &garbage), Err(VaultError::Malformed)),
            "{garbage:?}"
        );
        assert!(
            matches!(Vault::key_id_of(&garbage), Err(VaultError::Malformed)),
            "{garbage:?}"
        );
        assert!(
            matches!(v.rewrap(ALICE_TOKEN, &garbage), Err(VaultError::Malformed)),
            "{garbage:?}"
        );
    }
}

#[test]
fn key_id_of_reads_the_header() {
    let v = Vault::from_keyring(Keyring::with_keys("hsm-2", &["k1", "hsm-2"]));
    let sealed = v.seal(ALICE_TOKEN, b"x").unwrap();
    assert_eq!(sealed.key_id, "hsm-2");
    assert_eq!(Vault::key_id_of(&sealed.blob).unwrap(), "hsm-2");
}

#[test]
fn rewrap_refuses_a_blob_that_does_not_open_for_the_context() {
    let v = Vault::from_keyring(Keyring::with_keys("k2", &["k1", "k2"]));
    let old = Vault::from_keyring(Keyring::with_keys("k1", &["k1"]));
    let sealed = v.seal(ALICE_TOKEN, b"x").unwrap();
    let bob = SealContext {
        owner: "enrollment-bob",
        ..ALICE_TOKEN
    };
    assert!(matches!(
        v.rewrap(bob, &sealed.blob),
        Err(VaultError::OpenFailed)
    ));
    // Same for a blob under a key the vault lacks.
    let foreign = old.seal(ALICE_TOKEN, b"x").unwrap();
    assert!(matches!(
        v.rewrap(ALICE_TOKEN, &foreign.blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn rewrap_with_a_corrupt_ciphertext_but_intact_wrap_is_refused() {
    let ring = Keyring::with_keys("k1", &["k1", "k2"]);
    let v = Vault::from_keyring(ring);
    let mut blob = v.seal(ALICE_TOKEN, b"x").unwrap().blob;
    let last = blob.len() - 1;
    blob[last] ^= 1;
    assert!(matches!(
        v.rewrap(ALICE_TOKEN, &blob),
        Err(VaultError::OpenFailed)
    ));
}

#[test]
fn debug_of_vault_and_sealed_shows_no_key_or_blob_bytes() {
    let ring = Keyring::ephemeral();
    let key = *ring.key("k1").unwrap();
    let v = Vault::from_keyring(ring);
    let sealed = v.seal(ALICE_TOKEN, b"secret").unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let decimal = |bytes: &[u8]| {
        format!("{:?}", &bytes[..4])
            .trim_end_matches(']')
            .to_owned()
    };
    let vault_debug = format!("{v:?}");
    assert!(vault_debug.contains("k1"), "{vault_debug}");
    for shown in [format!("{sealed:?}"), vault_debug] {
        assert!(
            !shown.contains(&base64::engine::general_purpose::STANDARD.encode(key)),
            "{shown}"
        );
        assert!(!shown.contains(&hex(&key)[..8]), "{shown}");
        assert!(!shown.contains(&decimal(&key)), "{shown}");
        assert!(
            !shown.contains(&decimal(&sealed.blob[KEY_ID_AT + 2..])),
            "{shown}"
        );
    }
    assert_eq!(
        format!("{sealed:?}"),
        format!(
            "Sealed {{ key_id: \"k1\", blob_len: {} }}",
            sealed.blob.len()
        )
    );
}

#[test]
fn vault_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
}

#[test]
fn from_keyring_reload_is_a_no_op() {
    let v = vault();
    let sealed = v.seal(ALICE_TOKEN, b"x").unwrap();
    v.reload().unwrap();
    opens_to(&v, ALICE_TOKEN, &sealed.blob, b"x");
}

mod rotation {
    use super::*;
    use std::path::PathBuf;

    fn key_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        (dir, path)
    }

    #[test]
    fn running_vault_opens_old_blobs_after_rotation() {
        let (_dir, path) = key_file();
        let running = Vault::open_or_create(&path).unwrap();
        let old = running.seal(ALICE_TOKEN, b"old").unwrap();
        Keyring::rotate_file(&path).unwrap();
        opens_to(&running, ALICE_TOKEN, &old.blob, b"old");
    }

    #[test]
    fn running_vault_opens_blobs_sealed_by_another_instance_under_the_new_key() {
        let (_dir, path) = key_file();
        let keys = Arc::new(KeyFile::open_or_create(&path).unwrap());
        let running = Vault::new(keys.clone());
        Keyring::rotate_file(&path).unwrap();
        let other = Vault::open_or_create(&path).unwrap();
        let fresh = other.seal(ALICE_TOKEN, b"new").unwrap();
        assert_eq!(fresh.key_id, "k2");
        // `open` does not stat the file; it is the unknown key id that triggers the reload.
        assert_eq!(keys.current().key_ids(), vec!["k1"]);
        opens_to(&running, ALICE_TOKEN, &fresh.blob, b"new");
    }

    #[test]
    fn running_vault_seals_under_the_new_key_after_rotation() {
        let (_dir, path) = key_file();
        let running = Vault::open_or_create(&path).unwrap();
        assert_eq!(running.seal(ALICE_TOKEN, b"a").unwrap().key_id, "k1");
        Keyring::rotate_file(&path).unwrap();
        let sealed = running.seal(ALICE_TOKEN, b"b").unwrap();
        assert_eq!(sealed.key_id, "k2");
        assert_eq!(running.active_key_id().unwrap(), "k2");
        let other = Vault::open_or_create(&path).unwrap();
        opens_to(&other, ALICE_TOKEN, &sealed.blob, b"b");
    }

    #[test]
    fn rewrap_moves_old_blobs_to_the_new_key_and_leaves_current_ones() {
        let (_dir, path) = key_file();
        let running = Vault::open_or_create(&path).unwrap();
        let old = running.seal(ALICE_TOKEN, b"old token").unwrap();
        Keyring::rotate_file(&path).unwrap();
        let moved = running
            .rewrap(ALICE_TOKEN, &old.blob)
            .unwrap()
            .expect("old blob is re-wrapped");
        assert_eq!(moved.key_id, "k2");
        assert_eq!(Vault::key_id_of(&moved.blob).unwrap(), "k2");
        assert_eq!(moved.blob.len(), old.blob.len());
        opens_to(&running, ALICE_TOKEN, &moved.blob, b"old token");
        assert!(running.rewrap(ALICE_TOKEN, &moved.blob).unwrap().is_none());
        let current = running.seal(ALICE_TOKEN, b"current").unwrap();
        assert!(
            running
                .rewrap(ALICE_TOKEN, &current.blob)
                .unwrap()
                .is_none()
        );

        // Once k1 is retired, only the re-wrapped blob still opens.
        Keyring::retire_key_in_file(&path, "k1").unwrap();
        running.reload().unwrap();
        opens_to(&running, ALICE_TOKEN, &moved.blob, b"old token");
        assert!(
            matches!(running.open(ALICE_TOKEN, &old.blob), Err(VaultError::UnknownKey(id)) if id == "k1")
        );
    }

    #[test]
    fn rewrapped_blob_is_still_bound_to_its_owner() {
        let (_dir, path) = key_file();
        let running = Vault::open_or_create(&path).unwrap();
        let old = running.seal(ALICE_TOKEN, b"x").unwrap();
        Keyring::rotate_file(&path).unwrap();
        let moved = running.rewrap(ALICE_TOKEN, &old.blob).unwrap().unwrap();
        let bob = SealContext {
            owner: "enrollment-bob",
            ..ALICE_TOKEN
        };
        assert!(matches!(
            running.open(bob, &moved.blob),
            Err(VaultError::OpenFailed)
        ));
    }

    #[test]
    fn seal_fails_loudly_when_the_key_file_becomes_open_to_others() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, path) = key_file();
        let running = Vault::open_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = running.seal(ALICE_TOKEN, b"x").unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn vault_refuses_a_key_file_open_to_others() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, path) = key_file();
        Vault::open_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Vault::open_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
