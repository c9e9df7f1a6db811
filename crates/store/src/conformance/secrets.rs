//! Conformance: the generic sealed-secret table used by key rotation.

use std::sync::Arc;

use super::{device, event, token};
use crate::Store;

async fn escrowed(store: &Arc<dyn Store>, id: &str, key_id: &str, blob: &[u8]) {
    store
        .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
        .await
        .unwrap();
    store
        .put_bootstrap_token(
            &token(id, key_id, blob),
            &event(id, "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
}

pub(super) async fn sealed_secret_cas_with_a_stale_blob_returns_false_and_changes_nothing(
    store: Arc<dyn Store>,
) {
    escrowed(&store, "UDID-A", "k1", b"current").await;
    let before = store.sealed_secrets_page(None, 10).await.unwrap();
    let swapped = store.replace_sealed_secret(
        "UDID-A",
        "bootstrap_token",
        b"stale",
        "k2",
        b"rewrapped",
        9_000,
    );
    assert!(!swapped.await.unwrap());
    assert_eq!(store.sealed_secrets_page(None, 10).await.unwrap(), before);
    assert_eq!(
        store
            .bootstrap_token("UDID-A")
            .await
            .unwrap()
            .unwrap()
            .sealed
            .key_id,
        "k1"
    );
}

pub(super) async fn sealed_secret_cas_with_the_current_blob_rewraps_it(store: Arc<dyn Store>) {
    escrowed(&store, "UDID-A", "k1", b"current").await;
    let swapped = store.replace_sealed_secret(
        "UDID-A",
        "bootstrap_token",
        b"current",
        "k2",
        b"rewrapped",
        9_000,
    );
    assert!(swapped.await.unwrap());
    let rec = store.bootstrap_token("UDID-A").await.unwrap().unwrap();
    assert_eq!(rec.sealed.key_id, "k2");
    assert_eq!(rec.sealed.blob, b"rewrapped");
    assert_eq!(rec.sealed.updated_at, 9_000);
    assert_eq!(rec.digest, "digest-7", "metadata is untouched by a rewrap");
    // The old blob is now stale.
    let again =
        store.replace_sealed_secret("UDID-A", "bootstrap_token", b"current", "k3", b"x", 9_500);
    assert!(!again.await.unwrap());
}

pub(super) async fn sealed_secret_cas_on_a_missing_secret_returns_false(store: Arc<dyn Store>) {
    let swapped =
        store.replace_sealed_secret("UDID-ghost", "bootstrap_token", b"a", "k2", b"b", 9_000);
    assert!(!swapped.await.unwrap());
    assert!(
        store
            .sealed_secrets_page(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn paging_through_sealed_secrets_visits_each_once_in_bytewise_order(
    store: Arc<dyn Store>,
) {
    // Mixed case and a non-ASCII id: the order must be bytewise on every backend.
    let mut ids: Vec<String> = (0..13).map(|i| format!("UDID-{i:02}")).collect();
    ids.extend(["a-lower", "Z-upper", "Ä-umlaut", "UDID-1"].map(String::from));
    for id in &ids {
        escrowed(&store, id, "k1", id.as_bytes()).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store
            .sealed_secrets_page(after.as_ref().map(|(o, f)| (o.as_str(), f.as_str())), 4)
            .await
            .unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = Some((last.owner.clone(), last.field.clone()));
        seen.extend(page.into_iter().map(|s| s.owner));
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    // limit 0 means the default page, not an empty one.
    assert_eq!(
        store.sealed_secrets_page(None, 0).await.unwrap().len(),
        ids.len()
    );
}

pub(super) async fn key_counts_follow_puts_rewraps_and_clears(store: Arc<dyn Store>) {
    assert!(store.sealed_secret_key_counts().await.unwrap().is_empty());
    for (id, key) in [
        ("UDID-1", "k1"),
        ("UDID-2", "k1"),
        ("UDID-3", "k1"),
        ("UDID-4", "k2"),
        ("UDID-5", "k2"),
    ] {
        escrowed(&store, id, key, id.as_bytes()).await;
    }
    assert_eq!(
        store.sealed_secret_key_counts().await.unwrap(),
        [("k1".to_string(), 3), ("k2".to_string(), 2)]
    );
    let swapped =
        store.replace_sealed_secret("UDID-1", "bootstrap_token", b"UDID-1", "k2", b"new", 9_000);
    assert!(swapped.await.unwrap());
    store
        .clear_bootstrap_token("UDID-2", &event("UDID-2", "bootstrap_token.cleared"))
        .await
        .unwrap();
    assert_eq!(
        store.sealed_secret_key_counts().await.unwrap(),
        [("k1".to_string(), 1), ("k2".to_string(), 3)]
    );
}
