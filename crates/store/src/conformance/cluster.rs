//! Conformance: several instances on one database (issue 14): schedule-round claims, command delivery claims
//! (PostgreSQL only; SQLite reads), signals (PostgreSQL only; SQLite has none).

use std::sync::Arc;
use std::time::Duration;

use super::{device, event};
use crate::{CommandStatus, NewCommand, Notice, Signal, Store, StoreError};

async fn enrolled(store: &Arc<dyn Store>, id: &str) {
    store
        .upsert_enrollment(&device(id, None), &event(id, "enrollment.completed"))
        .await
        .unwrap();
}

fn cmd(uuid: &str) -> NewCommand {
    NewCommand {
        uuid: uuid.into(),
        request_type: "SecurityInfo".into(),
        payload: format!("<plist>{uuid}</plist>").into_bytes(),
        carries_secret: false,
    }
}

pub(super) async fn a_schedule_claim_holds_until_it_lapses_and_kinds_are_separate(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D-1").await;
    assert!(
        store
            .claim_schedule_round("inventory", "D-1", 1_000, 2_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_schedule_round("inventory", "D-1", 1_999, 3_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_schedule_round("identity_renewal", "D-1", 1_500, 2_500)
            .await
            .unwrap(),
        "another schedule's claim is separate"
    );
    assert!(
        store
            .claim_schedule_round("inventory", "D-1", 2_000, 3_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_schedule_round("inventory", "D-1", 2_500, 9_000)
            .await
            .unwrap()
    );
    assert!(matches!(
        store
            .claim_schedule_round("inventory", "NOBODY", 1_000, 2_000)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub(super) async fn a_released_schedule_claim_can_be_claimed_again_at_once(store: Arc<dyn Store>) {
    enrolled(&store, "D-1").await;
    enrolled(&store, "D-2").await;
    assert!(
        store
            .claim_schedule_round("inventory", "D-1", 1_000, 60_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_schedule_round("inventory", "D-2", 1_000, 60_000)
            .await
            .unwrap()
    );
    store
        .release_schedule_round("inventory", "D-1", 1_500)
        .await
        .unwrap();
    assert!(
        store
            .claim_schedule_round("inventory", "D-1", 1_500, 60_000)
            .await
            .unwrap(),
        "released: claimable from the release on"
    );
    assert!(
        !store
            .claim_schedule_round("inventory", "D-2", 1_500, 60_000)
            .await
            .unwrap(),
        "another device's claim is untouched"
    );
    // A lapsed claim is not moved forward, and releasing nothing (or an unknown device) is no error.
    store
        .release_schedule_round("identity_renewal", "D-2", 2_000)
        .await
        .unwrap();
    store
        .release_schedule_round("inventory", "NOBODY", 2_000)
        .await
        .unwrap();
    assert!(
        store
            .claim_schedule_round("identity_renewal", "D-2", 2_000, 3_000)
            .await
            .unwrap()
    );
}

pub(super) async fn concurrent_schedule_claims_let_one_win(store: Arc<dyn Store>) {
    enrolled(&store, "D-1").await;
    let claims = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_schedule_round("inventory", "D-1", 5_000 + i, 60_000)
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for c in claims {
        won += usize::from(c.await.unwrap());
    }
    assert_eq!(won, 1);
}

pub(super) async fn a_served_command_is_claimed_on_postgres_until_a_report(store: Arc<dyn Store>) {
    enrolled(&store, "D-1").await;
    let ids = vec!["D-1".to_string()];
    for uuid in ["C-1", "C-2"] {
        store.enqueue(&ids, &cmd(uuid), 3_000).await.unwrap();
    }
    let first = store
        .claim_next_command("D-1", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.uuid, "C-1");
    let again = store.claim_next_command("D-1", false).await.unwrap();
    if store.backend() == "sqlite" {
        // One instance: the head of the queue is served until the Mac reports on it.
        assert_eq!(again.unwrap().uuid, "C-1");
        return;
    }
    assert_eq!(again.unwrap().uuid, "C-2", "C-1 is claimed");
    assert_eq!(
        store
            .next_command("D-1", false)
            .await
            .unwrap()
            .unwrap()
            .uuid,
        "C-1",
        "a claim hides nothing from next_command"
    );
    assert!(
        store
            .claim_next_command("D-1", false)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.active_queue_len("D-1").await.unwrap(),
        2,
        "claims remove nothing"
    );
    // A NotNow releases the claim (offered again in the next session); an Acknowledged finishes the entry.
    store
        .record_command_result("D-1", "C-1", CommandStatus::NotNow, b"", 4_000)
        .await
        .unwrap();
    assert!(
        store
            .claim_next_command("D-1", true)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .claim_next_command("D-1", false)
            .await
            .unwrap()
            .unwrap()
            .uuid,
        "C-1"
    );
    store
        .record_command_result("D-1", "C-2", CommandStatus::Acknowledged, b"", 4_000)
        .await
        .unwrap();
    assert!(
        store
            .claim_next_command("D-1", false)
            .await
            .unwrap()
            .is_none()
    );
}

pub(super) async fn concurrent_polls_never_get_one_command_twice_on_postgres(
    store: Arc<dyn Store>,
) {
    if store.backend() == "sqlite" {
        return;
    }
    enrolled(&store, "D-1").await;
    let ids = vec!["D-1".to_string()];
    for i in 0..4 {
        store
            .enqueue(&ids, &cmd(&format!("C-{i}")), 3_000)
            .await
            .unwrap();
    }
    let polls = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_next_command("D-1", false).await.unwrap() })
    });
    let mut got = Vec::new();
    for p in polls {
        got.extend(p.await.unwrap().map(|c| c.uuid));
    }
    got.sort();
    assert_eq!(got, ["C-0", "C-1", "C-2", "C-3"]);
}

pub(super) async fn signals_reach_listeners_on_postgres_and_go_nowhere_on_sqlite(
    store: Arc<dyn Store>,
) {
    let signal = Signal::AgentActions {
        device_id: "D-1".into(),
    };
    let Some(mut listener) = store.listen_instances().await.unwrap() else {
        assert_eq!(store.backend(), "sqlite");
        store.notify_instances("me", &signal).await.unwrap();
        return;
    };
    store.notify_instances("inst-a", &signal).await.unwrap();
    store
        .notify_instances("inst-b", &Signal::PushCertificate)
        .await
        .unwrap();
    let heard = |n: Notice| (n.origin, n.signal);
    let wait = Duration::from_secs(20);
    let first = tokio::time::timeout(wait, listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(heard(first), ("inst-a".to_string(), signal));
    let second = tokio::time::timeout(wait, listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        heard(second),
        ("inst-b".to_string(), Signal::PushCertificate)
    );
}
