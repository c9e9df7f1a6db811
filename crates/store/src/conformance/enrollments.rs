//! Conformance: enrollments, certificate binding and CheckOut.

use std::sync::Arc;

use super::{device, event, event_count, token, user};
use crate::{Channel, NewCommand, Store, StoreError};

fn full_device() -> crate::Enrollment {
    crate::Enrollment {
        serial_number: Some("C02XX0XXJG5H".into()),
        model: Some("Mac14,2".into()),
        model_name: Some("MacBook Air".into()),
        device_name: Some("Alice’s MacBook Air".into()),
        os_version: Some("15.5".into()),
        build_version: Some("24F74".into()),
        product_name: Some("Mac14,2".into()),
        topic: Some("com.apple.mgmt.External.0f0f".into()),
        push_token: Some(vec![0, 1, 2, 254, 255]),
        push_magic: Some("8C4B5E4B-MAGIC".into()),
        awaiting_configuration: Some(false),
        token_update_count: 2,
        enrolled_at: 10,
        updated_at: 20,
        last_seen_at: 30,
        ..device("UDID-A", Some("fp-a"))
    }
}

pub(super) async fn enrollment_upsert_then_get_and_by_fingerprint_return_the_same_row(
    store: Arc<dyn Store>,
) {
    let e = full_device();
    store
        .upsert_enrollment(&e, &event("UDID-A", "enrollment.authenticated"))
        .await
        .unwrap();
    assert_eq!(store.enrollment("UDID-A").await.unwrap(), Some(e.clone()));
    assert_eq!(
        store.enrollment_by_fingerprint("fp-a").await.unwrap(),
        Some(e.clone())
    );
    assert_eq!(
        store.enrollment_by_fingerprint("fp-other").await.unwrap(),
        None
    );
    assert_eq!(store.enrollment("UDID-missing").await.unwrap(), None);
    assert_eq!(store.count_enrollments().await.unwrap(), 1);

    // The whole row is replaced, including fields going back to None.
    let replaced = crate::Enrollment {
        push_token: None,
        awaiting_configuration: None,
        enabled: false,
        token_update_count: 3,
        updated_at: 40,
        ..e
    };
    store
        .upsert_enrollment(&replaced, &event("UDID-A", "enrollment.token_update"))
        .await
        .unwrap();
    assert_eq!(store.enrollment("UDID-A").await.unwrap(), Some(replaced));
    assert_eq!(store.count_enrollments().await.unwrap(), 1);
    assert_eq!(event_count(&store).await, 2);
}

pub(super) async fn fingerprint_bound_to_another_enrollment_is_a_conflict_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    store
        .upsert_enrollment(
            &device("UDID-A", Some("fp-x")),
            &event("UDID-A", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    let err = store
        .upsert_enrollment(
            &device("UDID-B", Some("fp-x")),
            &event("UDID-B", "enrollment.authenticated"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.enrollment("UDID-B").await.unwrap(), None);
    assert_eq!(
        store
            .enrollment_by_fingerprint("fp-x")
            .await
            .unwrap()
            .unwrap()
            .id,
        "UDID-A"
    );
    assert_eq!(
        event_count(&store).await,
        1,
        "the refused upsert must not leave its event"
    );
}

pub(super) async fn rebinding_a_new_fingerprint_frees_the_old_one(store: Arc<dyn Store>) {
    store
        .upsert_enrollment(
            &device("UDID-A", Some("fp-old")),
            &event("UDID-A", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    store
        .upsert_enrollment(
            &device("UDID-A", Some("fp-new")),
            &event("UDID-A", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.enrollment_by_fingerprint("fp-old").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .enrollment_by_fingerprint("fp-new")
            .await
            .unwrap()
            .unwrap()
            .id,
        "UDID-A"
    );
    // The freed fingerprint can now be bound elsewhere.
    store
        .upsert_enrollment(
            &device("UDID-B", Some("fp-old")),
            &event("UDID-B", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .enrollment_by_fingerprint("fp-old")
            .await
            .unwrap()
            .unwrap()
            .id,
        "UDID-B"
    );
}

pub(super) async fn user_channel_rows_live_beside_their_device(store: Arc<dyn Store>) {
    let d = device("UDID-A", Some("fp-a"));
    let u = user("UDID-A", "USER-1");
    store
        .upsert_enrollment(&d, &event("UDID-A", "enrollment.authenticated"))
        .await
        .unwrap();
    store
        .upsert_enrollment(&u, &event("UDID-A", "enrollment.authenticated"))
        .await
        .unwrap();
    let got = store.enrollment("UDID-A:USER-1").await.unwrap().unwrap();
    assert_eq!(got, u);
    assert_eq!(got.channel, Channel::User);
    assert_eq!(got.device_id, "UDID-A");
    assert_eq!(store.enrollment("UDID-A").await.unwrap(), Some(d.clone()));
    assert_eq!(
        store.enrollment_by_fingerprint("fp-a").await.unwrap(),
        Some(d)
    );
    assert_eq!(store.count_enrollments().await.unwrap(), 2);
}

pub(super) async fn touch_last_seen_changes_only_last_seen_and_unknown_id_is_not_found(
    store: Arc<dyn Store>,
) {
    let e = full_device();
    store
        .upsert_enrollment(&e, &event("UDID-A", "enrollment.authenticated"))
        .await
        .unwrap();
    store.touch_last_seen("UDID-A", 99_999).await.unwrap();
    let got = store.enrollment("UDID-A").await.unwrap().unwrap();
    assert_eq!(
        got,
        crate::Enrollment {
            last_seen_at: 99_999,
            ..e
        }
    );
    let err = store.touch_last_seen("UDID-ghost", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

pub(super) async fn noted_last_seen_lands_for_every_mac_never_backwards_and_an_unknown_id_is_no_error(
    store: Arc<dyn Store>,
) {
    for id in ["UDID-N1", "UDID-N2", "UDID-N3"] {
        store
            .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
            .await
            .unwrap();
    }
    let before = store
        .enrollment("UDID-N2")
        .await
        .unwrap()
        .unwrap()
        .last_seen_at;
    store
        .note_last_seen("UDID-N1", before + 1_000)
        .await
        .unwrap();
    store.note_last_seen("UDID-N2", before - 500).await.unwrap();
    store
        .note_last_seen("UDID-N3", before + 3_000)
        .await
        .unwrap();
    store
        .note_last_seen("UDID-ghost", before + 4_000)
        .await
        .unwrap();
    store
        .note_last_seen("UDID-N1", before + 1_500)
        .await
        .unwrap();
    // Allowed to lag (SQLite: within DEFER_BOUND): polled, the lag is not what this checks.
    let expected = vec![before + 1_500, before, before + 3_000];
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen.clear();
        for id in ["UDID-N1", "UDID-N2", "UDID-N3"] {
            seen.push(store.enrollment(id).await.unwrap().unwrap().last_seen_at);
        }
        if seen == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        seen, expected,
        "the latest note of each Mac, an older one ignored"
    );
    assert_eq!(
        store.count_enrollments().await.unwrap(),
        3,
        "no row for the unknown id"
    );
}

pub(super) async fn upsert_with_an_unknown_group_is_not_found_and_writes_nothing(
    store: Arc<dyn Store>,
) {
    let e = crate::Enrollment {
        group_id: Some("no-such-group".into()),
        ..device("UDID-A", None)
    };
    let err = store
        .upsert_enrollment(&e, &event("UDID-A", "enrollment.authenticated"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.enrollment("UDID-A").await.unwrap(), None);
    assert_eq!(event_count(&store).await, 0);
}

pub(super) async fn checkout_disables_device_and_user_channels_deletes_token_empties_queue_keeps_events(
    store: Arc<dyn Store>,
) {
    for e in [
        device("UDID-A", Some("fp-a")),
        user("UDID-A", "USER-1"),
        device("UDID-B", Some("fp-b")),
    ] {
        store
            .upsert_enrollment(&e, &event(&e.device_id, "enrollment.authenticated"))
            .await
            .unwrap();
    }
    store
        .put_bootstrap_token(
            &token("UDID-A", "k1", b"sealed-a"),
            &event("UDID-A", "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
    store
        .put_bootstrap_token(
            &token("UDID-B", "k1", b"sealed-b"),
            &event("UDID-B", "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
    let ids: Vec<String> = ["UDID-A", "UDID-A:USER-1", "UDID-B"]
        .map(String::from)
        .to_vec();
    let cmd = NewCommand {
        uuid: "CMD-1".into(),
        request_type: "DeviceInformation".into(),
        payload: b"<plist/>".to_vec(),
        carries_secret: false,
    };
    store.enqueue(&ids, &cmd, 4_000).await.unwrap();
    let before = event_count(&store).await;

    assert!(
        store
            .checkout("UDID-A", 5_000, &event("UDID-A", "enrollment.checked_out"))
            .await
            .unwrap()
    );

    let a = store.enrollment("UDID-A").await.unwrap().unwrap();
    assert!(!a.enabled);
    assert_eq!(a.updated_at, 5_000);
    assert!(
        !store
            .enrollment("UDID-A:USER-1")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(
        store.enrollment("UDID-B").await.unwrap().unwrap().enabled,
        "another device is untouched"
    );
    // Still findable by certificate (enabled or not), so a re-enrollment can be recognised.
    assert_eq!(
        store
            .enrollment_by_fingerprint("fp-a")
            .await
            .unwrap()
            .unwrap()
            .id,
        "UDID-A"
    );

    assert_eq!(store.bootstrap_token("UDID-A").await.unwrap(), None);
    assert!(store.bootstrap_token("UDID-B").await.unwrap().is_some());
    let owners: Vec<String> = store
        .sealed_secrets_page(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.owner)
        .collect();
    assert_eq!(
        owners,
        ["UDID-B"],
        "the sealed secret goes with the metadata"
    );

    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 0);
    assert_eq!(store.active_queue_len("UDID-A:USER-1").await.unwrap(), 0);
    assert_eq!(store.next_command("UDID-A", false).await.unwrap(), None);
    assert_eq!(store.active_queue_len("UDID-B").await.unwrap(), 1);

    let events = store
        .events(&crate::EventFilter {
            subject: Some("UDID-A".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(event_count(&store).await, before + 1);
    assert_eq!(events[0].kind, "enrollment.checked_out");
    assert!(
        events.iter().any(|e| e.kind == "bootstrap_token.escrowed"),
        "earlier events are kept"
    );

    assert!(
        !store
            .checkout("UDID-A", 6_000, &event("UDID-A", "enrollment.checked_out"))
            .await
            .unwrap()
    );
}

pub(super) async fn checkout_of_an_unknown_device_changes_nothing_but_records_the_event(
    store: Arc<dyn Store>,
) {
    store
        .upsert_enrollment(
            &device("UDID-B", None),
            &event("UDID-B", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    assert!(
        !store
            .checkout(
                "UDID-ghost",
                5_000,
                &event("UDID-ghost", "enrollment.checked_out")
            )
            .await
            .unwrap()
    );
    assert!(store.enrollment("UDID-B").await.unwrap().unwrap().enabled);
    assert_eq!(store.count_enrollments().await.unwrap(), 1);
    assert_eq!(event_count(&store).await, 2);
}
