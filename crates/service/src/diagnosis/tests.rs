//! One test per finding, on plain values; the API test drives the same rules through a test Mac.

use store::{
    DeviceFacts, DeviceInventory, DeviceRecord, Enrollment, FactSource, SecurityFacts, TokenInfo,
};

use super::findings;
use crate::admin::{Fact, MergedUser};

fn record() -> DeviceRecord {
    DeviceRecord {
        enrollment: Enrollment {
            token_update_count: 1,
            ..Enrollment::new_device("D", 1)
        },
        group_name: None,
        group_escrow_enabled: None,
        token: None,
        inventory: None,
        users_without_secure_token: 0,
        user_count: 0,
    }
}

fn with_inventory(os: &str, silicon: bool, security: SecurityFacts) -> DeviceRecord {
    DeviceRecord {
        inventory: Some(DeviceInventory {
            device_id: "D".into(),
            device: Some(DeviceFacts {
                os_version: Some(os.into()),
                os_version_num: store::os_version_num(os),
                is_apple_silicon: Some(silicon),
                at: 5,
                ..Default::default()
            }),
            security: Some(security),
        }),
        ..record()
    }
}

fn escrowed(mut d: DeviceRecord, verified: bool) -> DeviceRecord {
    d.token = Some(TokenInfo {
        size: 32,
        escrowed_at: 9,
        verified,
        last_requested_at: None,
    });
    d
}

fn fact(value: bool) -> Option<Fact<bool>> {
    Some(Fact::new(value, FactSource::Mdm, 7))
}

fn user(name: &str, secure_token: bool, logged_in: bool) -> MergedUser {
    MergedUser {
        user_key: name.into(),
        short_name: Some(name.into()),
        has_secure_token: fact(secure_token),
        is_logged_in: fact(logged_in),
        mobile_account: fact(false),
        ..Default::default()
    }
}

fn codes(d: &DeviceRecord, users: &[MergedUser], ever: bool) -> Vec<&'static str> {
    findings(d, users, ever).iter().map(|f| f.code).collect()
}

#[test]
fn a_healthy_verified_mac_has_no_findings() {
    let d = escrowed(
        with_inventory(
            "14.5",
            true,
            SecurityFacts {
                filevault_enabled: Some(true),
                bt_allowed_for_authentication: Some("allowed".into()),
                ..Default::default()
            },
        ),
        true,
    );
    assert!(codes(&d, &[user("alice", true, true)], true).is_empty());
}

#[test]
fn no_user_with_a_secure_token_and_no_bootstrap_token_is_a_broken_chain_needing_a_recovery_key() {
    let f = findings(&record(), &[user("admin", false, true)], false);
    let broken = f
        .iter()
        .find(|f| f.code == "chain_of_trust_broken")
        .unwrap();
    assert_eq!(broken.severity, super::Severity::Critical);
    assert!(broken.fix.contains("recovery key"));
    assert!(broken.evidence[0].contains("admin"));
}

#[test]
fn not_escrowed_with_a_holder_never_logged_in_says_to_log_in_and_check_the_capability() {
    let f = findings(&record(), &[user("alice", true, false)], false);
    let n = f.iter().find(|f| f.code == "not_escrowed").unwrap();
    assert!(n.fix.contains("log in"), "{}", n.fix);
    assert!(n.fix.contains("com.apple.mdm.bootstraptoken"));
    assert!(
        n.evidence
            .iter()
            .any(|e| e.contains("no SetBootstrapToken"))
    );
}

#[test]
fn not_escrowed_while_a_holder_is_logged_in_points_at_the_capability() {
    let f = findings(&record(), &[user("alice", true, true)], false);
    let n = f.iter().find(|f| f.code == "not_escrowed").unwrap();
    assert!(
        n.fix.starts_with("A token holder is logged in"),
        "{}",
        n.fix
    );
}

#[test]
fn an_account_without_a_token_beside_a_holder_is_flagged_as_created_without_one() {
    let users = [user("alice", true, false), user("mdmadmin", false, false)];
    let f = findings(&record(), &users, false);
    let a = f
        .iter()
        .find(|f| f.code == "admin_created_without_secure_token")
        .unwrap();
    assert!(a.evidence[0].contains("mdmadmin"));
    assert!(a.fix.contains("sysadminctl"));
}

#[test]
fn unknown_users_ask_for_an_inventory_instead_of_guessing() {
    assert_eq!(codes(&record(), &[], false), ["not_escrowed_unknown_users"]);
}

#[test]
fn apple_silicon_with_a_disallowed_token_warns_that_updates_kexts_and_erase_will_prompt() {
    let d = escrowed(
        with_inventory(
            "14.5",
            true,
            SecurityFacts {
                bt_allowed_for_authentication: Some("disallowed".into()),
                ..Default::default()
            },
        ),
        true,
    );
    let f = findings(&d, &[user("alice", true, true)], true);
    let a = f
        .iter()
        .find(|f| f.code == "apple_silicon_token_cannot_authorize")
        .unwrap();
    assert!(a.evidence[0].contains("disallowed"));
    let intel = escrowed(
        with_inventory(
            "14.5",
            false,
            SecurityFacts {
                bt_allowed_for_authentication: Some("not supported".into()),
                ..Default::default()
            },
        ),
        true,
    );
    assert!(codes(&intel, &[user("alice", true, true)], true).is_empty());
}

#[test]
fn filevault_users_without_a_secure_token_are_missing_at_the_login_window() {
    let d = escrowed(
        with_inventory(
            "14.5",
            false,
            SecurityFacts {
                filevault_enabled: Some(true),
                ..Default::default()
            },
        ),
        true,
    );
    let users = [user("alice", true, true), user("bob", false, false)];
    assert_eq!(
        codes(&d, &users, true),
        ["filevault_users_without_secure_token"]
    );
}

#[test]
fn macos_older_than_10_15_is_too_old() {
    let d = with_inventory("10.14.6", false, SecurityFacts::default());
    assert!(codes(&d, &[user("a", true, true)], false).contains(&"os_too_old"));
}

#[test]
fn macos_10_15_without_ade_cannot_escrow() {
    let d = with_inventory(
        "10.15.7",
        false,
        SecurityFacts {
            enrolled_via_dep: Some(false),
            ..Default::default()
        },
    );
    let c = codes(&d, &[user("a", true, true)], false);
    assert!(c.contains(&"macos_10_15_not_ade"), "{c:?}");
    assert!(
        !c.contains(&"not_escrowed"),
        "NA devices are not 'not escrowed': {c:?}"
    );
}

#[test]
fn an_escrowed_token_never_fetched_back_is_unverified() {
    let d = escrowed(record(), false);
    assert_eq!(
        codes(&d, &[user("a", true, true)], true),
        ["escrowed_never_verified"]
    );
}

fn managed_admin(name: &str, secure_token: bool) -> MergedUser {
    let agent = |value: bool, at: i64| Some(Fact::new(value, FactSource::Agent, at));
    MergedUser {
        has_secure_token: agent(secure_token, 11),
        is_admin: agent(true, 11),
        managed_admin: agent(true, 12),
        ..user(name, secure_token, false)
    }
}

fn managed_admin_finding(d: &DeviceRecord, users: &[MergedUser]) -> Option<super::Finding> {
    findings(d, users, false)
        .into_iter()
        .find(|f| f.code == "managed_admin_lacks_secure_token")
}

#[test]
fn a_managed_admin_without_a_token_on_an_escrowed_mac_is_told_to_log_in_once() {
    let d = escrowed(record(), true);
    let f = managed_admin_finding(
        &d,
        &[user("alice", true, true), managed_admin("mgmt", false)],
    )
    .unwrap();
    assert_eq!(f.severity, super::Severity::Warning);
    assert!(f.summary.contains("mgmt"), "{}", f.summary);
    assert_eq!(
        f.evidence[..3],
        [
            "mgmt is the ADE managed admin (source agent, observed at 12 ms)",
            "HasSecureToken = false for mgmt (source agent, observed at 11 ms)",
            "Bootstrap Token escrowed at 9 ms",
        ]
    );
    assert!(f.evidence[3].contains("alice"), "{:?}", f.evidence);
    assert!(f.fix.starts_with("Log in as mgmt once"), "{}", f.fix);
    // alice holds a token but is not known to be an admin: a grant would fail with not_admin, so the fix
    // names the transfer action (which promotes, grants and demotes) instead.
    assert!(
        f.fix
            .contains("escrowd action create D transfer_secure_token --user mgmt --admin alice"),
        "{}",
        f.fix
    );
    assert!(!f.fix.contains("grant_secure_token"), "{}", f.fix);
}

#[test]
fn a_managed_admin_without_a_token_beside_a_holder_but_no_bootstrap_token_is_granted_by_the_holder()
{
    let users = [
        user("bob", true, false),
        MergedUser {
            is_admin: fact(true),
            ..user("alice", true, false)
        },
        managed_admin("mgmt", false),
    ];
    let f = managed_admin_finding(&record(), &users).unwrap();
    assert_eq!(f.severity, super::Severity::Warning);
    assert!(
        f.evidence
            .contains(&"no Bootstrap Token is escrowed".to_string())
    );
    // alice, the holder known to be an admin, is the one named to grant.
    assert!(
        f.fix.starts_with(
            "Grant it through the agent, with alice as the token-holding admin: `ESCROWD_USER_PASSWORD=…"
        ),
        "{}",
        f.fix
    );
    assert!(
        f.fix
            .contains("grant_secure_token --user mgmt --admin alice`"),
        "{}",
        f.fix
    );
}

#[test]
fn a_managed_admin_without_a_token_and_nothing_to_grant_one_is_critical() {
    let f = managed_admin_finding(
        &record(),
        &[managed_admin("mgmt", false), user("kid", false, true)],
    )
    .unwrap();
    assert_eq!(f.severity, super::Severity::Critical);
    assert!(
        f.evidence
            .contains(&"no other user holds a Secure Token".to_string())
    );
    assert!(f.fix.contains("Log in as mgmt once"), "{}", f.fix);
    assert!(
        !f.fix.contains("grant_secure_token"),
        "nobody could grant: {}",
        f.fix
    );
}

#[test]
fn no_managed_admin_finding_with_a_token_without_the_mark_or_without_the_token_fact() {
    let d = escrowed(record(), true);
    assert!(managed_admin_finding(&d, &[managed_admin("mgmt", true)]).is_none());
    // Not marked by the agent: the general rules speak for it, not this one.
    assert!(managed_admin_finding(&record(), &[user("mgmt", false, false)]).is_none());
    let marked_false = MergedUser {
        managed_admin: fact(false),
        ..user("mgmt", false, false)
    };
    assert!(managed_admin_finding(&record(), &[marked_false]).is_none());
    // Token status unknown (sysadminctl failed): named nowhere rather than guessed.
    let unknown = MergedUser {
        has_secure_token: None,
        ..managed_admin("mgmt", false)
    };
    assert!(managed_admin_finding(&record(), &[unknown]).is_none());
}

#[test]
fn an_escrow_off_group_is_a_finding_with_its_reason_not_a_missing_token() {
    let mut d = record();
    d.enrollment.group_id = Some("g-lab".into());
    d.group_name = Some("Lab".into());
    d.group_escrow_enabled = Some(false);
    let users = [user("alice", true, true)];
    let all = findings(&d, &users, false);
    let c: Vec<_> = all.iter().map(|f| f.code).collect();
    assert_eq!(c, ["escrow_off_for_group"], "{c:?}");
    assert_eq!(all[0].summary, "escrow is off for group Lab");
    assert!(
        all[0].fix.contains("escrowd groups escrow g-lab true"),
        "{}",
        all[0].fix
    );
    assert!(all[0].evidence[1].contains("no Bootstrap Token"));
    // A token kept when escrow was switched off is named too (and the Mac is Configured).
    let kept = escrowed(d, true);
    let f = findings(&kept, &users, true);
    assert_eq!(f[0].code, "escrow_off_for_group");
    assert!(f[0].evidence[1].contains("kept"), "{:?}", f[0].evidence);
}

#[test]
fn token_holders_are_named_once_with_source_time_and_conflict() {
    let kiosk = MergedUser {
        has_secure_token: Some(Fact {
            conflict: Some(crate::admin::Conflict {
                value: false,
                source: FactSource::Mdm,
                at: 5,
            }),
            ..Fact::new(true, FactSource::Agent, 8)
        }),
        ..user("kiosk", true, false)
    };
    let f = findings(&record(), &[kiosk.clone(), kiosk], false);
    let not_escrowed = f.iter().find(|f| f.code == "not_escrowed").unwrap();
    assert_eq!(
        not_escrowed.evidence[0],
        "Secure Token holders: kiosk (agent, at 8 ms; conflict: mdm said false at 5 ms)",
        "each user once, with the fact's source, time and the other source's conflicting word"
    );
}

// ---- identity expiry (issue 11, renewal)

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_000 * DAY;

fn expiring(not_after: Option<i64>) -> DeviceRecord {
    let mut d = record();
    d.enrollment.cert_not_after = not_after;
    d.enrollment.cert_fingerprint = Some("ab".repeat(32));
    d
}

fn queued() -> store::IdentityRenewal {
    store::IdentityRenewal {
        device_id: "D".into(),
        command_uuid: "RENEW-1".into(),
        queued_at: NOW - DAY,
        challenge_expires_at: NOW + 13 * DAY,
        renews_not_after: Some(NOW + 10 * DAY),
    }
}

fn expiry_codes(d: &DeviceRecord, r: Option<&store::IdentityRenewal>) -> Vec<&'static str> {
    super::identity_expiry_findings(d, r, NOW, 30 * DAY, 30 * DAY)
        .iter()
        .map(|f| f.code)
        .collect()
}

#[test]
fn an_identity_expiring_within_the_window_says_whether_its_renewal_is_queued() {
    let d = expiring(Some(NOW + 10 * DAY));
    assert_eq!(
        expiry_codes(&d, None),
        ["identity_expiring_renewal_not_queued"]
    );
    let f = &super::identity_expiry_findings(&d, None, NOW, 30 * DAY, 30 * DAY)[0];
    assert!(
        f.fix.contains("escrowd device renew-identity D"),
        "{}",
        f.fix
    );
    assert!(f.summary.contains("10 days"), "{}", f.summary);
    assert_eq!(
        expiry_codes(&d, Some(&queued())),
        ["identity_expiring_renewal_queued"]
    );
    // Outside the window, unknown expiry, or a checked-out Mac: nothing to say.
    assert!(expiry_codes(&expiring(Some(NOW + 31 * DAY)), None).is_empty());
    assert!(expiry_codes(&expiring(None), None).is_empty());
    let mut gone = expiring(Some(NOW + DAY));
    gone.enrollment.enabled = false;
    assert!(expiry_codes(&gone, None).is_empty());
}

#[test]
fn an_expired_identity_is_in_grace_or_gone() {
    assert_eq!(
        expiry_codes(&expiring(Some(NOW - 2 * DAY)), Some(&queued())),
        ["identity_expired_in_grace"]
    );
    let f = &super::identity_expiry_findings(
        &expiring(Some(NOW - 2 * DAY)),
        None,
        NOW,
        30 * DAY,
        30 * DAY,
    )[0];
    assert!(f.summary.contains("not queued yet"), "{}", f.summary);
    assert_eq!(
        expiry_codes(&expiring(Some(NOW - 31 * DAY)), None),
        ["identity_expired"]
    );
    // No grace configured: expired is expired.
    let none = super::identity_expiry_findings(&expiring(Some(NOW - DAY)), None, NOW, 30 * DAY, 0);
    assert_eq!(none[0].code, "identity_expired");
}
