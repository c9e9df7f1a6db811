//! Conformance: escrowed Bootstrap Tokens (metadata + sealed secret + event, together).

use std::sync::Arc;

use super::{device, event, event_count, token};
use crate::{EventFilter, Store, StoreError};

async fn enrolled(store: &Arc<dyn Store>, id: &str) {
    store
        .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
        .await
        .unwrap();
}

async fn kind_count(store: &Arc<dyn Store>, kind: &str) -> usize {
    store
        .events(&EventFilter {
            kind: Some(kind.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

pub(super) async fn bootstrap_token_put_then_get_round_trips(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    let rec = token("UDID-A", "k1", &[0, 1, 2, 3, 255]);
    store
        .put_bootstrap_token(&rec, &event("UDID-A", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    assert_eq!(store.bootstrap_token("UDID-A").await.unwrap(), Some(rec));
    assert_eq!(store.bootstrap_token("UDID-other").await.unwrap(), None);
}

pub(super) async fn bootstrap_token_replace_overwrites_secret_and_metadata(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    let mut first = token("UDID-A", "k1", b"first-sealed");
    first.verified = true;
    first.last_requested_at = Some(3_500);
    store
        .put_bootstrap_token(&first, &event("UDID-A", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    let mut second = token("UDID-A", "k2", b"second-sealed-longer");
    second.escrowed_at = 7_000;
    second.sealed.updated_at = 7_000;
    store
        .put_bootstrap_token(&second, &event("UDID-A", "bootstrap_token.replaced"))
        .await
        .unwrap();
    assert_eq!(store.bootstrap_token("UDID-A").await.unwrap(), Some(second));
    assert_eq!(
        store.sealed_secrets_page(None, 100).await.unwrap().len(),
        1,
        "replaced, not added"
    );
}

pub(super) async fn bootstrap_token_clear_deletes_secret_and_metadata_and_writes_the_event_either_way(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    store
        .put_bootstrap_token(
            &token("UDID-A", "k1", b"sealed"),
            &event("UDID-A", "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
    assert!(
        store
            .clear_bootstrap_token("UDID-A", &event("UDID-A", "bootstrap_token.cleared"))
            .await
            .unwrap()
    );
    assert_eq!(store.bootstrap_token("UDID-A").await.unwrap(), None);
    assert!(
        store
            .sealed_secrets_page(None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .clear_bootstrap_token("UDID-A", &event("UDID-A", "bootstrap_token.cleared"))
            .await
            .unwrap()
    );
    assert_eq!(kind_count(&store, "bootstrap_token.cleared").await, 2);
}

pub(super) async fn bootstrap_token_served_sets_verified_and_last_requested_with_its_event(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    let rec = token("UDID-A", "k1", b"sealed");
    store
        .put_bootstrap_token(&rec, &event("UDID-A", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    store
        .mark_bootstrap_token_served(&rec, 8_000, &event("UDID-A", "bootstrap_token.requested"))
        .await
        .unwrap();
    let got = store.bootstrap_token("UDID-A").await.unwrap().unwrap();
    assert!(got.verified);
    assert_eq!(got.last_requested_at, Some(8_000));
    assert_eq!(got.sealed, rec.sealed, "serving does not touch the secret");
    assert_eq!(kind_count(&store, "bootstrap_token.requested").await, 1);
}

pub(super) async fn serving_a_token_cleared_since_is_still_audited_and_marks_nothing(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    // Served as read, then cleared before the mark.
    store
        .mark_bootstrap_token_served(
            &token("UDID-A", "k1", b"sealed"),
            8_000,
            &event("UDID-A", "bootstrap_token.requested"),
        )
        .await
        .unwrap();
    assert_eq!(kind_count(&store, "bootstrap_token.requested").await, 1);
    assert!(
        store.bootstrap_token("UDID-A").await.unwrap().is_none(),
        "the mark creates no token"
    );
}

pub(super) async fn serving_a_verified_token_audits_at_once_and_its_time_lands_never_on_a_newer_token(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    let rec = token("UDID-A", "k1", b"sealed");
    store
        .put_bootstrap_token(&rec, &event("UDID-A", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    let requested = event("UDID-A", "bootstrap_token.requested");
    store
        .mark_bootstrap_token_served(&rec, 8_000, &requested)
        .await
        .unwrap();
    let verified = store.bootstrap_token("UDID-A").await.unwrap().unwrap();
    assert!(verified.verified);
    // Served again, as read now (verified): the event is there when the call returns, the time follows.
    store
        .mark_bootstrap_token_served(&verified, 9_000, &requested)
        .await
        .unwrap();
    store
        .mark_bootstrap_token_served(&verified, 8_500, &requested)
        .await
        .unwrap();
    assert_eq!(kind_count(&store, "bootstrap_token.requested").await, 3);
    let mut got = None;
    for _ in 0..200 {
        got = store
            .bootstrap_token("UDID-A")
            .await
            .unwrap()
            .unwrap()
            .last_requested_at;
        if got == Some(9_000) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(got, Some(9_000), "the latest time, never moved backwards");
    // A serve of the old token whose time lands after a new token was escrowed leaves the new one alone.
    let newer = crate::BootstrapTokenRecord {
        escrowed_at: 12_000,
        ..token("UDID-A", "k1", b"newer")
    };
    store
        .mark_bootstrap_token_served(&verified, 10_000, &requested)
        .await
        .unwrap();
    store
        .put_bootstrap_token(&newer, &event("UDID-A", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    tokio::time::sleep(crate::DEFER_BOUND * 4).await;
    let now = store.bootstrap_token("UDID-A").await.unwrap().unwrap();
    assert_eq!(now.escrowed_at, 12_000);
    assert_eq!(
        now.last_requested_at, None,
        "not marked by the old token's serve"
    );
    assert!(!now.verified);
}

pub(super) async fn set_verified_toggles_and_without_a_token_does_nothing(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    store
        .set_bootstrap_token_verified("UDID-A", true)
        .await
        .unwrap();
    assert_eq!(
        store.bootstrap_token("UDID-A").await.unwrap(),
        None,
        "no token appears"
    );
    store
        .put_bootstrap_token(
            &token("UDID-A", "k1", b"sealed"),
            &event("UDID-A", "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
    store
        .set_bootstrap_token_verified("UDID-A", true)
        .await
        .unwrap();
    assert!(
        store
            .bootstrap_token("UDID-A")
            .await
            .unwrap()
            .unwrap()
            .verified
    );
    store
        .set_bootstrap_token_verified("UDID-A", false)
        .await
        .unwrap();
    let got = store.bootstrap_token("UDID-A").await.unwrap().unwrap();
    assert!(!got.verified);
    assert_eq!(got.sealed.blob, b"sealed", "the token is kept");
}

pub(super) async fn bootstrap_token_and_its_event_are_written_together_or_not_at_all(
    store: Arc<dyn Store>,
) {
    // Unknown enrollment: neither secret nor event.
    let err = store
        .put_bootstrap_token(
            &token("UDID-ghost", "k1", b"s"),
            &event("UDID-ghost", "bootstrap_token.escrowed"),
        )
        .await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "{err:?}");
    // Sealed under another owner: refused, neither secret nor event.
    enrolled(&store, "UDID-A").await;
    let mut moved = token("UDID-A", "k1", b"s");
    moved.sealed.owner = "UDID-B".into();
    let err = store
        .put_bootstrap_token(&moved, &event("UDID-A", "bootstrap_token.escrowed"))
        .await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    let mut wrong_field = token("UDID-A", "k1", b"s");
    wrong_field.sealed.field = "other".into();
    assert!(
        store
            .put_bootstrap_token(&wrong_field, &event("UDID-A", "bootstrap_token.escrowed"))
            .await
            .is_err()
    );
    assert_eq!(kind_count(&store, "bootstrap_token.escrowed").await, 0);
    assert!(
        store
            .sealed_secrets_page(None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Success: exactly one of each.
    let before = event_count(&store).await;
    store
        .put_bootstrap_token(
            &token("UDID-A", "k1", b"s"),
            &event("UDID-A", "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
    assert_eq!(event_count(&store).await, before + 1);
    assert_eq!(kind_count(&store, "bootstrap_token.escrowed").await, 1);
    assert_eq!(store.sealed_secrets_page(None, 100).await.unwrap().len(), 1);
}

/// `enrollment_by_fingerprint_with_token` is the two reads it stands for, column for column (the enrollment's
/// and the sealed secret's `updated_at` differ here, so a mixed-up column shows), and only the bound Mac's token.
pub(super) async fn a_bound_enrollment_read_with_its_token_is_the_two_reads_it_replaces(
    store: Arc<dyn Store>,
) {
    let separate = |store: Arc<dyn Store>, fp: &'static str| async move {
        let found = store
            .enrollment_by_fingerprint_with_queue(fp)
            .await
            .unwrap();
        match found {
            Some((e, queued)) => {
                let token = store.bootstrap_token(&e.id).await.unwrap();
                Some((e, queued, token))
            }
            None => None,
        }
    };
    let together = |store: Arc<dyn Store>, fp: &'static str| async move {
        store
            .enrollment_by_fingerprint_with_token(fp)
            .await
            .unwrap()
    };
    for (id, fp, serial) in [("UDID-A", "fp-a", "C02AAAA"), ("UDID-B", "fp-b", "C02BBBB")] {
        let mut e = device(id, Some(fp));
        e.serial_number = Some(serial.into());
        e.device_name = Some(format!("{id}'s Mac"));
        e.os_version = Some("15.2".into());
        e.updated_at = 1_500;
        store
            .upsert_enrollment(&e, &event(id, "enrollment.authenticated"))
            .await
            .unwrap();
    }
    let (a, queued, none) = together(store.clone(), "fp-a").await.unwrap();
    assert_eq!((a.id.as_str(), queued, none), ("UDID-A", false, None));
    assert_eq!(
        Some((a, false, None)),
        separate(store.clone(), "fp-a").await
    );

    let b_token = token("UDID-B", "k1", b"sealed-b");
    store
        .put_bootstrap_token(&b_token, &event("UDID-B", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    assert_eq!(
        together(store.clone(), "fp-a").await.unwrap().2,
        None,
        "another Mac's token is not this one's"
    );
    let a_token = token("UDID-A", "k2", &[0, 1, 2, 255]);
    store
        .put_bootstrap_token(&a_token, &event("UDID-A", "bootstrap_token.escrowed"))
        .await
        .unwrap();
    let read = together(store.clone(), "fp-a").await;
    assert_eq!(read, separate(store.clone(), "fp-a").await);
    let (a, _, served) = read.unwrap();
    assert_eq!(served, Some(a_token));
    assert_eq!(a.serial_number.as_deref(), Some("C02AAAA"));
    assert_eq!(a.updated_at, 1_500);
    assert_eq!(
        together(store.clone(), "fp-b").await.unwrap().2,
        Some(b_token)
    );

    store
        .enqueue(&["UDID-A".to_string()], &super::commands::cmd("C-1"), 5_000)
        .await
        .unwrap();
    let read = together(store.clone(), "fp-a").await;
    assert!(read.as_ref().unwrap().1, "the queue flag is read with it");
    assert_eq!(read, separate(store.clone(), "fp-a").await);

    store
        .clear_bootstrap_token("UDID-A", &event("UDID-A", "bootstrap_token.cleared"))
        .await
        .unwrap();
    assert_eq!(together(store.clone(), "fp-a").await.unwrap().2, None);
    assert_eq!(together(store.clone(), "fp-unknown").await, None);
}
