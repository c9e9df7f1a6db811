use super::*;

const USER: &str = "AuthenticationAuthority: ;ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2,SRP-RFC5054-4096-SHA512-PBKDF2> ;Kerberosv5;;jdm@LKDC:SHA1.0123;LKDC:SHA1.0123; ;SecureToken;
GeneratedUID: 85F41F44-22B3-6CB7-85A1-BCC2EA2B887A
RealName:
 Joshua D. Miller
UniqueID: 501
";

#[test]
fn user_list_parses_names_and_negative_uids() {
    let users = parse_user_list(
        "_amavisd                 83\nnobody                   -2\nalice                    501\n",
    )
    .unwrap();
    assert_eq!(
        users,
        vec![
            ("_amavisd".into(), 83),
            ("nobody".into(), -2),
            ("alice".into(), 501)
        ]
    );
}

#[test]
fn user_list_garbage_truncation_and_extra_columns_are_errors() {
    assert!(parse_user_list("alice").is_err());
    assert!(parse_user_list("alice 501 extra").is_err());
    assert!(parse_user_list("alice 50x").is_err());
    assert!(parse_user_list("").is_err());
    assert!(matches!(
        parse_user_list(&"a 1\n".repeat(300_000)),
        Err(ParseError::Oversized { .. })
    ));
}

#[test]
fn user_record_reads_realname_on_its_own_line_and_the_secure_token_tag() {
    let u = parse_user("jdm", USER).unwrap();
    assert_eq!(u.uid, 501);
    assert_eq!(u.real_name.as_deref(), Some("Joshua D. Miller"));
    assert_eq!(
        u.generated_uid.as_deref(),
        Some("85F41F44-22B3-6CB7-85A1-BCC2EA2B887A")
    );
    assert!(u.secure_token_tag);
    assert!(!u.secure_token_opted_out);
}

#[test]
fn single_word_realname_missing_keys_and_opt_out_tag() {
    let text = "AuthenticationAuthority: ;ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2> ;DisabledTags;SecureToken\nNo such key: GeneratedUID\nRealName: Zoë\nUniqueID: 502\n";
    let u = parse_user("zoe", text).unwrap();
    assert_eq!(u.real_name.as_deref(), Some("Zoë"));
    assert_eq!(u.generated_uid, None);
    assert!(!u.secure_token_tag);
    assert!(u.secure_token_opted_out);
}

#[test]
fn record_not_found_is_a_tool_error() {
    let err = parse_user("ghost", "<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\n").unwrap_err();
    assert!(matches!(err, ParseError::ToolError { .. }));
}

#[test]
fn truncated_or_hostile_records_are_typed_errors() {
    assert!(matches!(
        parse_user("x", "RealName:\n"),
        Err(ParseError::Truncated { .. })
    ));
    assert!(matches!(
        parse_user("x", "RealName: x\n"),
        Err(ParseError::Truncated { .. })
    ));
    assert!(parse_user("x", " orphan continuation line").is_err());
    assert!(parse_user("x", "no colon here").is_err());
    assert!(parse_user("x", "UniqueID: five\n").is_err());
    assert!(parse_user("x", "\u{0}\u{1}:\u{2}").is_err());
}

#[test]
fn group_membership_lists_members_or_none() {
    assert_eq!(
        parse_group_membership("GroupMembership: root alice bob\n").unwrap(),
        vec!["root", "alice", "bob"]
    );
    assert!(
        parse_group_membership("No such key: GroupMembership\n")
            .unwrap()
            .is_empty()
    );
    assert!(parse_group_membership("").unwrap().is_empty());
    assert!(parse_group_membership("garbage").is_err());
}
