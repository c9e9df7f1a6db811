//! Conformance: identity renewals (issue 11): the record per Mac and which Macs are due.

use std::sync::Arc;

use super::{device, event, event_count};
use crate::{Enrollment, IdentityRenewal, Store, StoreError};

const DAY: i64 = 86_400_000;

fn mac(id: &str, not_after: Option<i64>) -> Enrollment {
    Enrollment {
        token_update_count: 1,
        cert_not_after: not_after,
        ..device(id, Some(&format!("fp-{id}")))
    }
}

fn renewal(id: &str, queued_at: i64, expires: i64) -> IdentityRenewal {
    IdentityRenewal {
        device_id: id.into(),
        command_uuid: format!("CMD-{id}-{queued_at}"),
        queued_at,
        challenge_expires_at: expires,
        renews_not_after: Some(40 * DAY),
    }
}

async fn due_ids(store: &Arc<dyn Store>, by: i64, at: i64, limit: u32) -> Vec<String> {
    store
        .identity_renewals_due(by, at, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

pub(super) async fn a_renewal_is_recorded_replaced_and_cleared_with_its_event(
    store: Arc<dyn Store>,
) {
    store
        .upsert_enrollment(
            &mac("M1", Some(40 * DAY)),
            &event("M1", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    let before = event_count(&store).await;
    let first = renewal("M1", 10, 100);
    store
        .put_identity_renewal(&first, &event("M1", "identity.renewal_queued"))
        .await
        .unwrap();
    assert_eq!(store.identity_renewal("M1").await.unwrap(), Some(first));
    assert_eq!(event_count(&store).await, before + 1);
    let second = renewal("M1", 20, 200);
    store
        .put_identity_renewal(&second, &event("M1", "identity.renewal_queued"))
        .await
        .unwrap();
    assert_eq!(
        store.identity_renewal("M1").await.unwrap(),
        Some(second),
        "one record per Mac"
    );
    assert!(store.clear_identity_renewal("M1").await.unwrap());
    assert!(!store.clear_identity_renewal("M1").await.unwrap());
    assert_eq!(store.identity_renewal("M1").await.unwrap(), None);

    // An unknown device or a pending identity: NotFound, no event.
    let before = event_count(&store).await;
    for id in ["nobody", "M1/pending/abc"] {
        let err = store
            .put_identity_renewal(&renewal(id, 1, 2), &event(id, "identity.renewal_queued"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{id}: {err}");
    }
    assert_eq!(event_count(&store).await, before);
}

pub(super) async fn renewals_due_are_expiring_macs_without_an_outstanding_renewal(
    store: Arc<dyn Store>,
) {
    let rows = [
        mac("SOON-B", Some(20 * DAY)),
        mac("SOON-A", Some(20 * DAY)),
        mac("SOONEST", Some(5 * DAY)),
        mac("EXPIRED", Some(-DAY)),
        mac("LATER", Some(300 * DAY)),
        mac("UNKNOWN-EXPIRY", None),
        Enrollment {
            token_update_count: 0,
            ..mac("UNFINISHED", Some(DAY))
        },
        Enrollment {
            enabled: false,
            ..mac("CHECKED-OUT", Some(DAY))
        },
    ];
    for e in &rows {
        store
            .upsert_enrollment(e, &event(&e.id, "enrollment.authenticated"))
            .await
            .unwrap();
    }
    store
        .set_device_blocked(
            "SOON-B",
            Some(5),
            false,
            &event("SOON-B", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    // A pending identity claiming SOON-A with an expiring certificate is never due itself.
    let pending = Enrollment {
        pending_for: Some("SOON-A".into()),
        ..mac(
            &crate::pending_identity_id("SOON-A", "fp-pending"),
            Some(DAY),
        )
    };
    store
        .put_pending_identity(&pending, &event("SOON-A", "identity.pending"))
        .await
        .unwrap();
    let by = 30 * DAY;
    assert_eq!(
        due_ids(&store, by, 0, 0).await,
        ["EXPIRED", "SOONEST", "SOON-A"]
    );
    assert_eq!(due_ids(&store, by, 0, 2).await, ["EXPIRED", "SOONEST"]);

    // Outstanding while the challenge is unexpired; due again after.
    store
        .put_identity_renewal(
            &renewal("SOONEST", 0, 14 * DAY),
            &event("SOONEST", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    assert_eq!(due_ids(&store, by, DAY, 0).await, ["EXPIRED", "SOON-A"]);
    assert_eq!(
        due_ids(&store, by, 14 * DAY, 0).await,
        ["EXPIRED", "SOONEST", "SOON-A"]
    );
    store.clear_identity_renewal("SOONEST").await.unwrap();
    assert_eq!(
        due_ids(&store, by, DAY, 0).await,
        ["EXPIRED", "SOONEST", "SOON-A"]
    );
}

pub(super) async fn a_missing_not_after_is_backfilled_only_for_the_bound_certificate(
    store: Arc<dyn Store>,
) {
    store
        .upsert_enrollment(&mac("OLD", None), &event("OLD", "enrollment.authenticated"))
        .await
        .unwrap();
    assert!(
        !store
            .backfill_cert_not_after("OLD", "fp-other", 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .backfill_cert_not_after("NOBODY", "fp-OLD", 5)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .enrollment("OLD")
            .await
            .unwrap()
            .unwrap()
            .cert_not_after,
        None
    );
    assert!(
        store
            .backfill_cert_not_after("OLD", "fp-OLD", 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .backfill_cert_not_after("OLD", "fp-OLD", 9)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .enrollment("OLD")
            .await
            .unwrap()
            .unwrap()
            .cert_not_after,
        Some(5)
    );
}
