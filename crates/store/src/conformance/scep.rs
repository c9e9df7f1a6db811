//! Conformance: standalone sealed secrets (CA keys) and SCEP replay protection.

use std::sync::Arc;

use crate::{SealedSecret, Store, StoreError};

fn secret(owner: &str, field: &str, key_id: &str, blob: &[u8], at: i64) -> SealedSecret {
    SealedSecret {
        owner: owner.into(),
        field: field.into(),
        key_id: key_id.into(),
        blob: blob.to_vec(),
        updated_at: at,
    }
}

pub(super) async fn put_sealed_secret_inserts_then_replaces_and_rotation_sees_it(
    store: Arc<dyn Store>,
) {
    assert_eq!(
        store
            .sealed_secret("escrowd", "device_ca_key")
            .await
            .unwrap(),
        None
    );
    let first = secret("escrowd", "device_ca_key", "k1", b"sealed-1", 10);
    store.put_sealed_secret(&first).await.unwrap();
    assert_eq!(
        store
            .sealed_secret("escrowd", "device_ca_key")
            .await
            .unwrap(),
        Some(first.clone())
    );
    let second = secret("escrowd", "device_ca_key", "k2", b"sealed-2", 20);
    store.put_sealed_secret(&second).await.unwrap();
    assert_eq!(
        store
            .sealed_secret("escrowd", "device_ca_key")
            .await
            .unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.sealed_secret("escrowd", "other").await.unwrap(), None);
    // Key rotation pages through it like any other secret.
    assert_eq!(
        store.sealed_secrets_page(None, 10).await.unwrap(),
        vec![second]
    );
    assert_eq!(
        store.sealed_secret_key_counts().await.unwrap(),
        vec![("k2".to_string(), 1)]
    );
}

pub(super) async fn put_sealed_secret_refuses_a_bootstrap_token_field(store: Arc<dyn Store>) {
    let err = store
        .put_sealed_secret(&secret("UDID", crate::BOOTSTRAP_TOKEN_FIELD, "k1", b"x", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(
        store
            .sealed_secrets_page(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn a_scep_nonce_is_claimed_once_and_forgotten_after_its_window(
    store: Arc<dyn Store>,
) {
    assert!(
        store
            .claim_scep_nonce("n1", "t1", 1_000, 0, 1000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_scep_nonce("n1", "t1", 2_000, 0, 1000)
            .await
            .unwrap(),
        "replay"
    );
    assert!(
        store
            .claim_scep_nonce("n2", "t1", 2_000, 0, 1000)
            .await
            .unwrap()
    );
    // Once the window has passed n1 (seen at 1000 < 1500), it is forgotten and can be claimed again.
    assert!(
        store
            .claim_scep_nonce("n1", "t1", 3_000, 1_500, 1000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_scep_nonce("n2", "t1", 3_000, 1_500, 1000)
            .await
            .unwrap()
    );
}

pub(super) async fn concurrent_claims_of_one_nonce_let_exactly_one_win(store: Arc<dyn Store>) {
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_scep_nonce("same", "t", 5, 0, 1000)
                .await
                .unwrap()
        })
    });
    let mut wins = 0;
    for claim in claims {
        if claim.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

pub(super) async fn scep_nonces_beyond_the_cap_forget_the_oldest(store: Arc<dyn Store>) {
    for i in 0..10 {
        let nonce = format!("cap-{i}");
        assert!(
            store
                .claim_scep_nonce(&nonce, "t", 1_000 + i, 0, 4)
                .await
                .unwrap()
        );
    }
    // Only the newest four (cap-6 … cap-9) are remembered: replays of those are refused, the oldest were
    // forgotten (and so can be claimed again; their challenge or signer refuses a real replay).
    for i in 6..10 {
        assert!(
            !store
                .claim_scep_nonce(&format!("cap-{i}"), "t", 2_000, 0, 1000)
                .await
                .unwrap(),
            "cap-{i} still remembered"
        );
    }
    assert!(
        store
            .claim_scep_nonce("cap-0", "t", 2_000, 0, 1000)
            .await
            .unwrap(),
        "cap-0 was forgotten"
    );
}
