//! Conformance: push token validity marks (APNs refused a token; the next TokenUpdate clears the mark).

use std::sync::Arc;

use super::{device, event, event_count};
use crate::{PushInvalid, Store};

fn pushable(id: &str, token: &[u8]) -> crate::Enrollment {
    crate::Enrollment {
        topic: Some("com.apple.mgmt.External.test".into()),
        push_token: Some(token.to_vec()),
        push_magic: Some("magic".into()),
        token_update_count: 1,
        ..device(id, None)
    }
}

pub(super) async fn a_push_mark_is_set_read_and_cleared_with_its_event(store: Arc<dyn Store>) {
    let e = pushable("D1", &[1, 2, 3]);
    store
        .upsert_enrollment(&e, &event("D1", "enrollment.authenticated"))
        .await
        .unwrap();
    assert_eq!(store.push_invalid("D1").await.unwrap(), None);
    let before = event_count(&store).await;
    assert!(
        store
            .mark_push_invalid(
                "D1",
                &[1, 2, 3],
                "Unregistered",
                5_000,
                &event("D1", "push.token_invalid")
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.push_invalid("D1").await.unwrap(),
        Some(PushInvalid {
            at: 5_000,
            reason: "Unregistered".into()
        })
    );
    assert_eq!(event_count(&store).await, before + 1);
    // Marking again replaces the reason.
    assert!(
        store
            .mark_push_invalid(
                "D1",
                &[1, 2, 3],
                "BadDeviceToken",
                6_000,
                &event("D1", "push.token_invalid")
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.push_invalid("D1").await.unwrap().unwrap().reason,
        "BadDeviceToken"
    );
    // The rest of the row is untouched, and an upsert (a later message) keeps the mark.
    let reread = store.enrollment("D1").await.unwrap().unwrap();
    assert_eq!(reread, e);
    store
        .upsert_enrollment(&e, &event("D1", "enrollment.authenticated"))
        .await
        .unwrap();
    assert!(store.push_invalid("D1").await.unwrap().is_some());
    assert!(store.clear_push_invalid("D1").await.unwrap());
    assert_eq!(store.push_invalid("D1").await.unwrap(), None);
    assert!(!store.clear_push_invalid("D1").await.unwrap());
}

pub(super) async fn a_push_mark_for_a_replaced_token_or_unknown_enrollment_changes_nothing(
    store: Arc<dyn Store>,
) {
    store
        .upsert_enrollment(
            &pushable("D1", &[9, 9]),
            &event("D1", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    let before = event_count(&store).await;
    // APNs refused the old token, but a TokenUpdate already brought a new one: no mark, no event.
    assert!(
        !store
            .mark_push_invalid(
                "D1",
                &[1, 2, 3],
                "Unregistered",
                5_000,
                &event("D1", "push.token_invalid")
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_push_invalid(
                "nope",
                &[9, 9],
                "Unregistered",
                5_000,
                &event("nope", "push.token_invalid")
            )
            .await
            .unwrap()
    );
    assert_eq!(store.push_invalid("D1").await.unwrap(), None);
    assert_eq!(store.push_invalid("nope").await.unwrap(), None);
    assert!(!store.clear_push_invalid("nope").await.unwrap());
    assert_eq!(event_count(&store).await, before);
}
