use super::*;

const INTEL: &str = "Cryptographic users for disk1s5 (4 found)
|
+-- FB756838-XXXX-XXXX-XXXX-40FB5E7D5D3F
|   Type: Local Open Directory User
|
+-- EBC6C064-XXXX-XXXX-XXXX-00306543ECAC
|   Type: Personal Recovery User
|
+-- 2457711A-XXXX-XXXX-XXXX-F48A571D5036
    Type: MDM Bootstrap Token External Key
";

const APPLE_SILICON: &str = "Cryptographic users for disk3s5 (2 found)
|
+-- 5D9A1E4C-1C0B-4E4B-9A7E-2F6C1B0A9D11
|   Type: Local Open Directory User
|   Volume Owner: Yes
|
+-- EBC6C064-0000-11AA-AA11-00306543ECAC
    Type: Personal Recovery User
    Volume Owner: Yes
";

#[test]
fn documented_intel_form_parses_with_the_bootstrap_token_key_and_no_owner_field() {
    let c = parse_listcryptousers(INTEL).unwrap();
    assert_eq!(c.disk, "disk1s5");
    assert_eq!(c.declared, 4);
    assert_eq!(c.users.len(), 3);
    assert_eq!(c.users[0].kind, CryptoUserKind::LocalOpenDirectoryUser);
    assert_eq!(c.users[1].kind, CryptoUserKind::PersonalRecoveryUser);
    assert!(c.has_bootstrap_token_key());
    assert!(c.users.iter().all(|u| u.volume_owner.is_none()));
    assert_eq!(c.token_holder_count(), 1);
    assert!(c.find("fb756838-xxxx-xxxx-xxxx-40fb5e7d5d3f").is_some());
}

#[test]
fn documented_apple_silicon_form_parses_volume_owners() {
    let c = parse_listcryptousers(APPLE_SILICON).unwrap();
    assert_eq!(c.disk, "disk3s5");
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].volume_owner, Some(true));
    assert_eq!(c.users[1].uuid, PERSONAL_RECOVERY_UUID);
    assert!(!c.has_bootstrap_token_key());
    assert_eq!(
        c.find("5D9A1E4C-1C0B-4E4B-9A7E-2F6C1B0A9D11")
            .and_then(|u| u.volume_owner),
        Some(true)
    );
}

#[test]
fn other_types_and_unknown_attributes_are_kept_or_skipped_not_fatal() {
    let text = "Cryptographic users for disk3s5 (2 found)\n|\n+-- 11111111-2222-3333-4444-555555555555\n|   Type: iCloud Recovery User\n|   Hint: something\n|\n+-- 11111111-2222-3333-4444-555555555556\n    Type: Quantum Key\n    Volume Owner: No\n";
    let c = parse_listcryptousers(text).unwrap();
    assert_eq!(c.users[0].kind, CryptoUserKind::IcloudRecoveryUser);
    assert_eq!(c.users[1].kind, CryptoUserKind::Other("Quantum Key".into()));
    assert_eq!(c.users[1].volume_owner, Some(false));
}

#[test]
fn no_crypto_users_is_an_empty_list() {
    let c = parse_listcryptousers("Cryptographic users for disk3s5 (0 found)\n").unwrap();
    assert!(c.users.is_empty());
}

#[test]
fn truncated_output_is_an_error() {
    let cut = &APPLE_SILICON[..APPLE_SILICON.find("    Type: Personal").unwrap()];
    assert!(matches!(
        parse_listcryptousers(cut),
        Err(ParseError::Truncated { .. })
    ));
    assert!(parse_listcryptousers("Cryptographic users for disk3s5 (2").is_err());
    assert!(parse_listcryptousers("+-- 5D9A1E4C-1C0B-4E4B-9A7E-2F6C1B0A9D11").is_err());
    let mid_uuid = "Cryptographic users for disk3s5 (1 found)\n|\n+-- 5D9A1E4C-1C0B";
    assert!(parse_listcryptousers(mid_uuid).is_err());
}

#[test]
fn more_entries_than_announced_is_refused() {
    let text = INTEL.replace("(4 found)", "(1 found)");
    assert!(parse_listcryptousers(&text).is_err());
}

#[test]
fn bad_owner_value_garbage_and_huge_input_are_typed_errors() {
    assert!(
        parse_listcryptousers(&APPLE_SILICON.replacen(
            "Volume Owner: Yes",
            "Volume Owner: Perhaps",
            1
        ))
        .is_err()
    );
    assert!(parse_listcryptousers("\u{1b}[2J garbage").is_err());
    assert!(matches!(
        parse_listcryptousers(" "),
        Err(ParseError::Empty { .. })
    ));
    let huge = format!("{}{}", APPLE_SILICON, "|\n".repeat(600_000));
    assert!(matches!(
        parse_listcryptousers(&huge),
        Err(ParseError::Oversized { .. })
    ));
}

#[test]
fn not_apfs_errors_are_recognised() {
    assert!(says_not_apfs("Error: / is not an APFS Volume"));
    assert!(!says_not_apfs(INTEL));
}
