//! Conformance: enrollment tokens, one-time SCEP challenges and issued-certificate records.

use std::sync::Arc;

use super::{event, event_count};
use crate::{
    EnrollmentToken, Group, IssuedCertificate, ScepChallenge, Store, StoreError, TokenRefusal,
};

fn group(id: &str) -> Group {
    Group {
        id: id.into(),
        name: format!("group {id}"),
        bootstrap_escrow_enabled: true,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 1,
        updated_at: 1,
    }
}

fn token(
    id: &str,
    group_id: &str,
    max_uses: Option<i64>,
    expires_at: Option<i64>,
) -> EnrollmentToken {
    EnrollmentToken {
        id: id.into(),
        name: format!("token {id}"),
        token_hash: format!("hash-{id}"),
        group_id: group_id.into(),
        max_uses,
        uses: 0,
        expires_at,
        created_at: 100,
        revoked_at: None,
    }
}

fn challenge(
    hash: &str,
    token_id: Option<&str>,
    group_id: Option<&str>,
    expires_at: i64,
) -> ScepChallenge {
    ScepChallenge {
        challenge_hash: hash.into(),
        token_id: token_id.map(str::to_string),
        group_id: group_id.map(str::to_string),
        created_at: 1_000,
        expires_at,
        used_at: None,
        device_id: None,
    }
}

pub(super) async fn enrollment_tokens_are_created_listed_and_revoked_with_events(
    store: Arc<dyn Store>,
) {
    store.create_group(&group("g1")).await.unwrap();
    let t1 = token("t1", "g1", Some(1), None);
    let t2 = token("t2", "g1", None, Some(5_000));
    store
        .create_enrollment_token(&t1, &event("t1", "admin.enroll_token.created"))
        .await
        .unwrap();
    store
        .create_enrollment_token(&t2, &event("t2", "admin.enroll_token.created"))
        .await
        .unwrap();
    assert_eq!(event_count(&store).await, 2);
    assert_eq!(
        store.enrollment_token("t1").await.unwrap(),
        Some(t1.clone())
    );
    assert_eq!(store.enrollment_token("nope").await.unwrap(), None);
    assert_eq!(
        store.list_enrollment_tokens().await.unwrap(),
        vec![t1.clone(), t2.clone()]
    );

    // Duplicate id or hash: Conflict; unknown group: NotFound; neither writes an event.
    let dup = store
        .create_enrollment_token(
            &token("t1", "g1", None, None),
            &event("t1", "enrollment.authenticated"),
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let same_hash = EnrollmentToken {
        id: "t3".into(),
        ..t1.clone()
    };
    let dup = store
        .create_enrollment_token(&same_hash, &event("t3", "enrollment.authenticated"))
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let missing = store
        .create_enrollment_token(
            &token("t4", "g-missing", None, None),
            &event("t4", "enrollment.authenticated"),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    assert_eq!(event_count(&store).await, 2);

    store
        .revoke_enrollment_token("t1", 300, &event("t1", "admin.enroll_token.revoked"))
        .await
        .unwrap();
    assert_eq!(
        store
            .enrollment_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(300)
    );
    let again = store
        .revoke_enrollment_token("t1", 400, &event("t1", "admin.enroll_token.revoked"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound(_)), "{again}");
    let unknown = store
        .revoke_enrollment_token("zz", 400, &event("zz", "enrollment.authenticated"))
        .await
        .unwrap_err();
    assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown}");
    assert_eq!(event_count(&store).await, 3);
}

pub(super) async fn redeeming_a_token_counts_a_use_and_stores_its_challenge_or_changes_nothing(
    store: Arc<dyn Store>,
) {
    store.create_group(&group("g1")).await.unwrap();
    store
        .create_enrollment_token(
            &token("once", "g1", Some(1), None),
            &event("once", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    store
        .create_enrollment_token(
            &token("old", "g1", None, Some(2_000)),
            &event("old", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    store
        .create_enrollment_token(
            &token("gone", "g1", None, None),
            &event("gone", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    store
        .revoke_enrollment_token("gone", 500, &event("gone", "enrollment.authenticated"))
        .await
        .unwrap();
    let before = event_count(&store).await;

    let c1 = challenge("ch1", Some("once"), Some("g1"), 10_000);
    let t = store
        .redeem_enrollment_token(
            "hash-once",
            1_000,
            &c1,
            &event("once", "enroll.profile_served"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.id.as_str(), t.uses), ("once", 1));
    assert_eq!(event_count(&store).await, before + 1);

    // Used up, expired, revoked, unknown: refused, no use counted, no challenge stored, no event.
    for (hash, at, why) in [
        ("hash-once", 1_100, TokenRefusal::UsedUp),
        ("hash-old", 2_000, TokenRefusal::Expired),
        ("hash-gone", 1_100, TokenRefusal::Revoked),
        ("hash-nobody", 1_100, TokenRefusal::Unknown),
    ] {
        let c = challenge(&format!("ch-{hash}"), None, Some("g1"), 10_000);
        let got = store
            .redeem_enrollment_token(hash, at, &c, &event("x", "enroll.profile_served"))
            .await
            .unwrap();
        assert_eq!(got, Err(why), "{hash}");
        assert_eq!(
            store
                .consume_scep_challenge(&c.challenge_hash, at)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store.enrollment_token("once").await.unwrap().unwrap().uses,
        1
    );
    assert_eq!(
        store.enrollment_token("old").await.unwrap().unwrap().uses,
        0
    );
    assert_eq!(event_count(&store).await, before + 1);

    // The expiring token still works just before its expiry.
    let c2 = challenge("ch2", Some("old"), Some("g1"), 10_000);
    assert!(
        store
            .redeem_enrollment_token(
                "hash-old",
                1_999,
                &c2,
                &event("old", "bootstrap_token.escrowed")
            )
            .await
            .unwrap()
            .is_ok()
    );

    // The stored challenge is consumed once.
    let used = store
        .consume_scep_challenge("ch1", 3_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        used,
        ScepChallenge {
            used_at: Some(3_000),
            ..c1
        }
    );
    assert_eq!(
        store.consume_scep_challenge("ch1", 3_001).await.unwrap(),
        None,
        "replay"
    );
}

pub(super) async fn concurrent_redeems_never_exceed_max_uses(store: Arc<dyn Store>) {
    store.create_group(&group("g1")).await.unwrap();
    store
        .create_enrollment_token(
            &token("three", "g1", Some(3), None),
            &event("t", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    let tasks = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let c = challenge(&format!("ch{i}"), Some("three"), Some("g1"), 10_000);
            store
                .redeem_enrollment_token(
                    "hash-three",
                    1_000,
                    &c,
                    &event("t", "enrollment.authenticated"),
                )
                .await
                .unwrap()
                .is_ok()
        })
    });
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 3);
    assert_eq!(
        store.enrollment_token("three").await.unwrap().unwrap().uses,
        3
    );
}

pub(super) async fn a_challenge_is_consumed_once_and_not_after_it_expires(store: Arc<dyn Store>) {
    store.create_group(&group("g1")).await.unwrap();
    store
        .create_enrollment_token(
            &token("t", "g1", None, None),
            &event("t", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    for (hash, expires) in [("a", 5_000), ("b", 2_000)] {
        let c = challenge(hash, Some("t"), Some("g1"), expires);
        store
            .redeem_enrollment_token("hash-t", 1_000, &c, &event("t", "enrollment.authenticated"))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        store.consume_scep_challenge("b", 2_000).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .consume_scep_challenge("unknown", 1_500)
            .await
            .unwrap(),
        None
    );
    let tasks = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .consume_scep_challenge("a", 3_000)
                .await
                .unwrap()
                .is_some()
        })
    });
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

pub(super) async fn an_issued_certificate_binds_to_its_first_device_only(store: Arc<dyn Store>) {
    store.create_group(&group("g1")).await.unwrap();
    let rec = IssuedCertificate {
        fingerprint: "fp1".into(),
        device_id: None,
        group_id: Some("g1".into()),
        token_id: None,
        issued_at: 10,
        proof: None,
    };
    store.record_issued_certificate(&rec).await.unwrap();
    let dup = store.record_issued_certificate(&rec).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let bad_group = IssuedCertificate {
        fingerprint: "fp2".into(),
        group_id: Some("nope".into()),
        ..rec.clone()
    };
    let err = store
        .record_issued_certificate(&bad_group)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(
        store.issued_certificate("fp1").await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(store.issued_certificate("fp2").await.unwrap(), None);

    let bound = store
        .bind_issued_certificate("fp1", "UDID-A")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bound.device_id.as_deref(), Some("UDID-A"));
    assert_eq!(bound.group_id.as_deref(), Some("g1"));
    // Same device again: fine. Another device: Conflict, binding unchanged.
    assert!(
        store
            .bind_issued_certificate("fp1", "UDID-A")
            .await
            .unwrap()
            .is_some()
    );
    let other = store
        .bind_issued_certificate("fp1", "UDID-B")
        .await
        .unwrap_err();
    assert!(matches!(other, StoreError::Conflict(_)), "{other}");
    assert_eq!(
        store
            .issued_certificate("fp1")
            .await
            .unwrap()
            .unwrap()
            .device_id
            .as_deref(),
        Some("UDID-A")
    );
    // Not SCEP-issued: None.
    assert_eq!(
        store
            .bind_issued_certificate("fp-dev-ca", "UDID-C")
            .await
            .unwrap(),
        None
    );

    // Deleting the group leaves the record without a group.
    store
        .delete_group("g1", &event("g1", "admin.group.deleted"))
        .await
        .unwrap();
    assert_eq!(
        store
            .issued_certificate("fp1")
            .await
            .unwrap()
            .unwrap()
            .group_id,
        None
    );
}
